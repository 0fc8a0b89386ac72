/*
 * bench_smtp_engine: how fast the SMTP server engine turns a client's octets
 * into callbacks and replies, with no sockets, no event loop and no disk in
 * the way. It replays one recorded session (greeting, EHLO, MAIL FROM, ten
 * RCPT TO, DATA, a body of realistic ~70-octet text lines, some of them
 * dot-stuffed, ".", QUIT) through a fresh session object again and again,
 * the way an embedder would, draining the output after every recv. The
 * stream arrives in 4096-octet reads (a pipelining client), in one read, or
 * one command per read (a client without PIPELINING). The figure is the
 * ceiling the protocol layer puts on a real server; everything a server
 * adds (syscalls, TLS, fsync) comes on top.
 *
 *   bench_smtp_engine [seconds]      seconds per case, default 2
 *
 * Before timing, each case is run once with its transcript checked (reply
 * codes in order, body size), so a fast but wrong engine fails loudly.
 */
#include <maild/maild.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NUM_RCPTS  10
#define READ_CHUNK 4096

/* What the callbacks saw and the engine wrote, for one session. */
typedef struct counters {
  uint64_t body_octets;
  uint64_t out_octets;
  unsigned messages;
  /* When set, the replies are copied here for checking. */
  char *transcript;
  size_t transcript_len, transcript_cap;
} counters;

typedef struct stream {
  uint8_t *data;
  size_t len, cap;
  size_t body_start, body_end; /* after "DATA\r\n", after ".\r\n" */
} stream;

/* How the client stream is cut into reads. */
typedef enum feed {
  FEED_CHUNKS,   /* READ_CHUNK octets per read, as a pipelining client */
  FEED_ONE,      /* the whole stream in one read */
  FEED_COMMANDS, /* one command per read, the body in READ_CHUNK reads, as
                    a client without PIPELINING */
} feed;

static const char *const feed_names[] = {"4096-octet reads", "one read",
                                         "one command/read"};

/* Where each read ends. */
typedef struct reads {
  size_t *end;
  size_t n;
} reads;

static int on_data_chunk(maild_smtp_server *s, const uint8_t *data, size_t len,
                         void *user_data) {
  counters *k = user_data;
  (void)s;
  (void)data;
  k->body_octets += len;
  return 0;
}

static int on_data_end(maild_smtp_server *s, maild_reply *reply,
                       void *user_data) {
  counters *k = user_data;
  (void)s;
  (void)reply;
  k->messages++;
  return 0;
}

static const maild_smtp_server_callbacks callbacks = {
    .on_data_chunk = on_data_chunk,
    .on_data_end = on_data_end,
};

static void stream_put(stream *st, const char *text, size_t len) {
  if (st->len + len > st->cap) {
    st->cap = (st->len + len) * 2;
    st->data = realloc(st->data, st->cap);
    if (st->data == NULL) {
      fputs("bench_smtp_engine: out of memory\n", stderr);
      exit(1);
    }
  }
  memcpy(st->data + st->len, text, len);
  st->len += len;
}

static void stream_puts(stream *st, const char *text) {
  stream_put(st, text, strlen(text));
}

/*
 * Appends a message body of at least `body_size` octets (after
 * dot-unstuffing) as the client sends it, and returns its unstuffed size.
 * Every seventh line starts with a dot, as quoted text and ASCII art do.
 */
static uint64_t put_body(stream *st, size_t body_size) {
  static const char *const words[] = {
      "the",   "queue",   "message", "server", "delivery", "of",
      "and",   "retry",   "mailbox", "client", "to",       "a",
      "relay", "session", "header",  "body",   "line",     "is"};
  static const char headers[] = "From: Sender <sender@example.org>\r\n"
                                "To: Recipient <rcpt0@example.net>\r\n"
                                "Subject: benchmark message\r\n"
                                "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
                                "Message-ID: <bench.1@example.org>\r\n"
                                "MIME-Version: 1.0\r\n"
                                "Content-Type: text/plain; charset=us-ascii\r\n"
                                "\r\n";
  uint64_t size = sizeof(headers) - 1;
  unsigned w = 0, line_no = 0;
  stream_puts(st, headers);
  while (size < body_size) {
    char line[128];
    size_t n = 0;
    if (++line_no % 7 == 0)
      line[n++] = '.';
    while (n < 68) {
      const char *word = words[w++ % (sizeof(words) / sizeof(words[0]))];
      size_t wl = strlen(word);
      memcpy(line + n, word, wl);
      n += wl;
      line[n++] = ' ';
    }
    line[n - 1] = '\r';
    line[n++] = '\n';
    size += n;
    if (line[0] == '.')
      stream_put(st, ".", 1); /* dot-stuffing, RFC 5321 4.5.2 */
    stream_put(st, line, n);
  }
  return size;
}

/* The client's side of one session. Returns the unstuffed body size. */
static uint64_t build_session(stream *st, size_t body_size) {
  char rcpt[64];
  stream_puts(st, "EHLO client.example.org\r\n"
                  "MAIL FROM:<sender@example.org>\r\n");
  for (int i = 0; i < NUM_RCPTS; i++) {
    snprintf(rcpt, sizeof(rcpt), "RCPT TO:<rcpt%d@example.net>\r\n", i);
    stream_puts(st, rcpt);
  }
  stream_puts(st, "DATA\r\n");
  st->body_start = st->len;
  uint64_t size = put_body(st, body_size);
  stream_puts(st, ".\r\n");
  st->body_end = st->len;
  stream_puts(st, "QUIT\r\n");
  return size;
}

static void reads_add(reads *r, size_t end) {
  r->end[r->n++] = end;
}

/* Cuts `st` into reads the way `how` says. */
static reads plan_reads(const stream *st, feed how) {
  reads r = {calloc(st->len / READ_CHUNK + 64, sizeof(size_t)), 0};
  if (r.end == NULL)
    exit(1);
  if (how == FEED_ONE) {
    reads_add(&r, st->len);
  } else if (how == FEED_CHUNKS) {
    for (size_t off = READ_CHUNK; off < st->len; off += READ_CHUNK)
      reads_add(&r, off);
    reads_add(&r, st->len);
  } else {
    for (size_t i = 0; i < st->body_start; i++) {
      if (st->data[i] == '\n')
        reads_add(&r, i + 1);
    }
    for (size_t off = st->body_start + READ_CHUNK; off < st->body_end;
         off += READ_CHUNK)
      reads_add(&r, off);
    reads_add(&r, st->body_end);
    reads_add(&r, st->len);
  }
  return r;
}

/* Takes every pending reply. Returns the octets taken. */
static size_t drain(maild_smtp_server *s, counters *k) {
  const uint8_t *out;
  maild_ssize m;
  size_t total = 0;
  while ((m = maild_smtp_server_send(s, &out)) > 0) {
    total += (size_t)m;
    if (k->transcript != NULL &&
        k->transcript_len + (size_t)m < k->transcript_cap) {
      memcpy(k->transcript + k->transcript_len, out, (size_t)m);
      k->transcript_len += (size_t)m;
    }
  }
  k->out_octets += total;
  return total;
}

/* Runs one session over `st`, cut into reads `r`. Returns 0 or -1. */
static int run_session(const maild_options *opt, const stream *st,
                       const reads *r, counters *k) {
  maild_smtp_server *s;
  if (maild_smtp_server_new(&s, &callbacks, k, opt, NULL) < 0)
    return -1;
  drain(s, k); /* the greeting */
  for (size_t i = 0, off = 0; i < r->n; i++) {
    size_t len = r->end[i] - off;
    /* The engine may take less than a whole read; offer the rest again
       after draining, as a socket loop would. */
    for (size_t done = 0; done < len;) {
      maild_ssize n =
          maild_smtp_server_recv(s, st->data + off + done, len - done);
      size_t drained = drain(s, k);
      if (n < 0 || (n == 0 && drained == 0)) {
        fprintf(stderr, "bench_smtp_engine: recv at offset %zu: %s\n",
                off + done, n < 0 ? maild_err_name((int)n) : "stalled");
        maild_smtp_server_del(s);
        return -1;
      }
      done += (size_t)n;
    }
    off += len;
  }
  int closing = maild_smtp_server_closing(s);
  maild_smtp_server_del(s);
  return closing ? 0 : -1;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The reply codes of a transcript, in order; -1 if it cannot be parsed. */
static int reply_codes(const char *t, size_t len, int *codes, int max) {
  int n = 0;
  for (size_t i = 0; i < len;) {
    const char *eol = memchr(t + i, '\n', len - i);
    if (eol == NULL || eol - (t + i) < 4 || n == max)
      return -1;
    if (t[i + 3] == ' ') /* the last line of a reply */
      codes[n++] = atoi(t + i);
    i = (size_t)(eol - t) + 1;
  }
  return n;
}

/* Runs the case once with its replies recorded; exits when they are wrong. */
static void check_case(const maild_options *opt, const stream *st,
                       const reads *r, uint64_t body_size) {
  static const int want[] = {220, 250, 250, 250, 250, 250, 250, 250,
                             250, 250, 250, 250, 250, 354, 250, 221};
  int got[32];
  char t[8192];
  counters k = {0};
  k.transcript = t;
  k.transcript_cap = sizeof(t);
  int rc = run_session(opt, st, r, &k);
  int n = reply_codes(t, k.transcript_len, got, 32);
  int ok = rc == 0 && k.messages == 1 && k.body_octets == body_size &&
           n == (int)(sizeof(want) / sizeof(want[0])) &&
           memcmp(got, want, sizeof(want)) == 0;
  if (!ok) {
    fprintf(stderr,
            "bench_smtp_engine: wrong result (%zu reads): rc %d, "
            "%u messages, body %" PRIu64 " of %" PRIu64
            " octets; replies:\n%.*s",
            r->n, rc, k.messages, k.body_octets, body_size,
            (int)k.transcript_len, t);
    exit(1);
  }
}

/* Times `iters` sessions; exits on an engine error. */
static double time_sessions(const maild_options *opt, const stream *st,
                            const reads *r, unsigned long iters) {
  counters k = {0};
  double t0 = now();
  for (unsigned long i = 0; i < iters; i++) {
    if (run_session(opt, st, r, &k) < 0)
      exit(1);
  }
  return now() - t0;
}

static void bench_case(const maild_options *opt, const char *name,
                       size_t body_target, feed how, double seconds) {
  stream st = {0};
  uint64_t body_size = build_session(&st, body_target);
  reads r = plan_reads(&st, how);
  check_case(opt, &st, &r, body_size);

  /* Grow a trial run until it lasts long enough to extrapolate from, then
     run the count that should take `seconds`. */
  unsigned long iters = 1;
  double t = time_sessions(opt, &st, &r, iters);
  while (t < 0.25 && iters < 100000000UL) {
    iters *= 2;
    t = time_sessions(opt, &st, &r, iters);
  }
  double want = (double)iters * seconds / (t > 0 ? t : 1e-9);
  iters = want < 1 ? 1 : want > 1e9 ? 1000000000UL : (unsigned long)want;
  t = time_sessions(opt, &st, &r, iters);

  printf("%-8s %-17s %8zu %6zu %10lu %7.2f %11.0f %8.1f\n", name,
         feed_names[how], st.len, r.n, iters, t, (double)iters / t,
         (double)iters * (double)st.len / t / 1e6);
  fflush(stdout);
  free(r.end);
  free(st.data);
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 2.0;
  if (argc > 2 || seconds <= 0) {
    fputs("usage: bench_smtp_engine [seconds]\n", stderr);
    return 2;
  }
  maild_options *opt;
  if (maild_options_new(&opt, NULL) < 0 ||
      maild_options_set_string(opt, MAILD_OPT_HOSTNAME, "bench.localhost") < 0)
    return 1;

  printf("SMTP server engine alone, one core, %d recipients per message, "
         "~%.1f s per case\n"
         "stream: client octets per session; reads: recv() calls per "
         "session;\nMB/s: 10^6 stream octets per second\n\n",
         NUM_RCPTS, seconds);
  printf("%-8s %-17s %8s %6s %10s %7s %11s %8s\n", "body", "feed", "stream",
         "reads", "sessions", "time s", "sessions/s", "MB/s");
  static const size_t sizes[] = {1024, 100 * 1024};
  static const char *const size_names[] = {"1 KiB", "100 KiB"};
  for (int i = 0; i < 2; i++) {
    bench_case(opt, size_names[i], sizes[i], FEED_CHUNKS, seconds);
    bench_case(opt, size_names[i], sizes[i], FEED_ONE, seconds);
    bench_case(opt, size_names[i], sizes[i], FEED_COMMANDS, seconds);
  }
  maild_options_del(opt);
  return 0;
}
