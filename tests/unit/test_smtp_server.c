/*
 * Engine-level tests of the SMTP server for what transcripts cannot
 * express or would make huge: line and path limits at and one past their
 * edge (TESTPLAN S4, S5), memory bounds under floods (10 MiB of junk, an
 * oversized body, 100,000 pipelined NOOPs from a client that never reads:
 * S4, S7, L4), the recipient cap (S6), the size and loop limits at their
 * defaults (S7, S13), pre-greeting talk (S15), and the embedder contract:
 * deferred decisions, body back-pressure, terminate(), tls_started() and
 * replies an embedder gets wrong.
 *
 * Every session allocates through an allocator that tracks live and peak
 * bytes, so a test can state how much memory a flood may cost, and
 * ASan's leak check covers every path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maild/maild.h"

/* ---- An allocator that tracks live and peak bytes ---- */

typedef struct peakmem {
  maild_mem mem;
  size_t live;    /* bytes allocated and not freed */
  size_t peak;    /* most bytes live at once */
  size_t largest; /* largest single block */
  long blocks;    /* blocks live */
} peakmem;

/* Each block is preceded by its size, in a header that keeps the
   alignment malloc gives. */
#define HDR sizeof(max_align_t)

static void note_alloc(peakmem *pm, size_t n) {
  pm->live += n;
  if (pm->live > pm->peak)
    pm->peak = pm->live;
  if (n > pm->largest)
    pm->largest = n;
}

static void *pm_malloc(size_t n, void *ud) {
  peakmem *pm = ud;
  unsigned char *p = malloc(HDR + n);

  if (p == NULL)
    return NULL;
  memcpy(p, &n, sizeof(n));
  note_alloc(pm, n);
  pm->blocks++;
  return p + HDR;
}

static void pm_free(void *ptr, void *ud) {
  peakmem *pm = ud;
  unsigned char *p;
  size_t n;

  if (ptr == NULL)
    return;
  p = (unsigned char *)ptr - HDR;
  memcpy(&n, p, sizeof(n));
  pm->live -= n;
  pm->blocks--;
  free(p);
}

static void *pm_calloc(size_t n, size_t size, void *ud) {
  void *p;

  if (size != 0 && n > (SIZE_MAX - HDR) / size)
    return NULL;
  p = pm_malloc(n * size, ud);
  if (p != NULL)
    memset(p, 0, n * size);
  return p;
}

static void *pm_realloc(void *ptr, size_t n, void *ud) {
  peakmem *pm = ud;
  unsigned char *p, *q;
  size_t old;

  if (ptr == NULL)
    return pm_malloc(n, ud);
  p = (unsigned char *)ptr - HDR;
  memcpy(&old, p, sizeof(old));
  q = realloc(p, HDR + n);
  if (q == NULL)
    return NULL;
  memcpy(q, &n, sizeof(n));
  pm->live -= old;
  note_alloc(pm, n);
  return q + HDR;
}

static void peakmem_init(peakmem *pm) {
  memset(pm, 0, sizeof(*pm));
  pm->mem.user_data = pm;
  pm->mem.malloc = pm_malloc;
  pm->mem.free = pm_free;
  pm->mem.calloc = pm_calloc;
  pm->mem.realloc = pm_realloc;
}

/* ---- A session with an embedder that records and answers events ---- */

typedef struct harness {
  maild_smtp_server *s;
  peakmem pm;
  char *out; /* every octet taken with _send(), NUL-terminated */
  size_t out_len, out_cap;
  size_t out_seen; /* how much of `out` expect() has checked */

  /* What the callbacks saw. */
  unsigned helo, mail, rcpt, data_start, chunks, data_end, aborts;
  size_t tx_rcpts; /* on_rcpt calls since the last on_mail */
  int helo_valid;
  maild_smtp_abort last_abort;
  uint64_t body; /* octets passed to on_data_chunk */

  /* What the callbacks answer. */
  int defer_rcpt;         /* on_rcpt defers */
  int defer_chunks;       /* on_data_chunk defers this many times */
  int fail_rcpt;          /* on_rcpt fails */
  maild_reply rcpt_reply; /* code 0: default */
  maild_reply data_reply; /* on_data_end's answer */
} harness;

static int on_helo(maild_smtp_server *s, const maild_smtp_helo *helo,
                   maild_reply *reply, void *ud) {
  harness *h = ud;
  (void)s;
  (void)reply;
  h->helo++;
  h->helo_valid = helo->name_valid;
  return 0;
}

static int on_mail(maild_smtp_server *s, const maild_smtp_mail *mail,
                   maild_reply *reply, void *ud) {
  harness *h = ud;
  (void)s;
  (void)mail;
  (void)reply;
  h->mail++;
  h->tx_rcpts = 0;
  return 0;
}

static int on_rcpt(maild_smtp_server *s, const maild_smtp_rcpt *rcpt,
                   maild_reply *reply, void *ud) {
  harness *h = ud;
  (void)s;
  assert_int_equal(rcpt->index, h->tx_rcpts);
  h->tx_rcpts++;
  h->rcpt++;
  if (h->fail_rcpt)
    return MAILD_ERR_INVAL;
  if (h->defer_rcpt)
    return MAILD_ERR_DEFER;
  *reply = h->rcpt_reply;
  return 0;
}

static int on_data_start(maild_smtp_server *s, maild_reply *reply, void *ud) {
  harness *h = ud;
  (void)s;
  (void)reply;
  h->data_start++;
  h->body = 0;
  return 0;
}

static int on_data_chunk(maild_smtp_server *s, const uint8_t *data, size_t len,
                         void *ud) {
  harness *h = ud;
  (void)s;
  (void)data;
  assert_true(len > 0);
  h->chunks++;
  h->body += len;
  if (h->defer_chunks > 0) {
    h->defer_chunks--;
    return MAILD_ERR_DEFER;
  }
  return 0;
}

static int on_data_end(maild_smtp_server *s, maild_reply *reply, void *ud) {
  harness *h = ud;
  (void)s;
  h->data_end++;
  *reply = h->data_reply;
  return 0;
}

static void on_tx_abort(maild_smtp_server *s, maild_smtp_abort why, void *ud) {
  harness *h = ud;
  (void)s;
  h->aborts++;
  h->last_abort = why;
}

static const maild_smtp_server_callbacks callbacks = {
    on_helo,     on_mail,     on_rcpt, on_data_start, on_data_chunk,
    on_data_end, on_tx_abort, NULL,    NULL,          NULL};

static maild_options *options(void) {
  maild_options *opt;

  assert_int_equal(maild_options_new(&opt, NULL), 0);
  assert_int_equal(maild_options_set_string(opt, MAILD_OPT_HOSTNAME, "mx.test"),
                   0);
  return opt;
}

static maild_options *options_uint(maild_option key, uint64_t value) {
  maild_options *opt = options();

  assert_int_equal(maild_options_set_uint(opt, key, value), 0);
  return opt;
}

/* Takes all pending output into h->out. */
static void take(harness *h) {
  const uint8_t *data;
  maild_ssize n;

  while ((n = maild_smtp_server_send(h->s, &data)) > 0) {
    if (h->out_len + (size_t)n + 1 > h->out_cap) {
      h->out_cap = (h->out_len + (size_t)n + 1) * 2;
      h->out = realloc(h->out, h->out_cap);
      assert_non_null(h->out);
    }
    memcpy(h->out + h->out_len, data, (size_t)n);
    h->out_len += (size_t)n;
    h->out[h->out_len] = '\0';
  }
  assert_int_equal(n, 0);
  assert_false(maild_smtp_server_want_write(h->s));
}

/* Asserts that the output since the last check is exactly `want`. */
static void expect(harness *h, const char *want) {
  const char *got = h->out != NULL ? h->out + h->out_seen : "";

  assert_string_equal(got, want);
  h->out_seen = h->out_len;
}

/* Starts a session with `opt` (deleted here; NULL: defaults with the host
   name mx.test) and, unless the greeting is deferred, takes it. */
static void start(harness *h, maild_options *opt) {
  memset(h, 0, sizeof(*h));
  peakmem_init(&h->pm);
  if (opt == NULL)
    opt = options();
  assert_int_equal(maild_smtp_server_new(&h->s, &callbacks, h, opt, &h->pm.mem),
                   0);
  if (!maild_options_get_uint(opt, MAILD_OPT_DEFER_GREETING)) {
    take(h);
    expect(h, "220 mx.test ESMTP\r\n");
  }
  maild_options_del(opt);
}

static void finish(harness *h) {
  maild_smtp_server_del(h->s);
  assert_int_equal(h->pm.blocks, 0);
  assert_int_equal(h->pm.live, 0);
  free(h->out);
}

/* Offers `len` octets as one segment, again and again while the engine
   makes progress, taking output after each call. Returns the octets
   consumed (fewer than `len` when the engine stalled). */
static size_t feed(harness *h, const void *p, size_t len) {
  size_t off = 0;

  while (off < len) {
    maild_ssize n =
        maild_smtp_server_recv(h->s, (const uint8_t *)p + off, len - off);
    assert_true(n >= 0);
    assert_true((size_t)n <= len - off);
    take(h);
    if (n == 0)
      break;
    off += (size_t)n;
  }
  return off;
}

/* Feeds a string that must be consumed whole. */
static void say(harness *h, const char *str) {
  assert_int_equal(feed(h, str, strlen(str)), strlen(str));
}

/* Feeds a string and checks the replies it produced. */
static void chat(harness *h, const char *str, const char *want) {
  say(h, str);
  expect(h, want);
}

static const char ehlo_reply[] = "250-mx.test\r\n"
                                 "250-PIPELINING\r\n"
                                 "250-SIZE 26214400\r\n"
                                 "250-ENHANCEDSTATUSCODES\r\n"
                                 "250-8BITMIME\r\n"
                                 "250-DSN\r\n"
                                 "250-SMTPUTF8\r\n"
                                 "250 CHUNKING\r\n";

/* EHLO; the reply is checked whole when the size limit is the default. */
static void ehlo(harness *h) {
  const char *got;

  say(h, "EHLO c.test\r\n");
  got = h->out + h->out_seen;
  if (strstr(got, "250-SIZE 26214400\r\n") != NULL)
    assert_string_equal(got, ehlo_reply);
  assert_true(strncmp(got, "250-mx.test\r\n", 13) == 0);
  assert_non_null(strstr(got, "250 CHUNKING\r\n"));
  h->out_seen = h->out_len;
}

/* EHLO, MAIL and one RCPT. */
static void open_tx(harness *h) {
  ehlo(h);
  chat(h, "MAIL FROM:<a@c.test>\r\nRCPT TO:<v@mx.test>\r\n",
       "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
}

/* A heap string: `prefix`, then `fill` up to `total` octets minus the
   length of `suffix`, then `suffix`. */
static char *padded(const char *prefix, char fill, size_t total,
                    const char *suffix) {
  size_t pl = strlen(prefix), sl = strlen(suffix);
  char *p = malloc(total + 1);

  assert_non_null(p);
  assert_true(pl + sl <= total);
  memcpy(p, prefix, pl);
  memset(p + pl, fill, total - pl - sl);
  memcpy(p + total - sl, suffix, sl);
  p[total] = '\0';
  return p;
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0, nl = strlen(needle);

  while ((hay = strstr(hay, needle)) != NULL) {
    n++;
    hay += nl;
  }
  return n;
}

/* ---- S4: command line length ---- */

/* RFC 5321 4.5.3.1.4: 512 octets with the CRLF are accepted, 513 are
   refused with 500, and the session goes on. */
static void test_command_line_512(void **state) {
  harness h;
  char *ok = padded("NOOP ", 'x', 512, "\r\n");
  char *over = padded("NOOP ", 'x', 513, "\r\n");

  (void)state;
  start(&h, NULL);
  chat(&h, ok, "250 2.0.0 Ok\r\n");
  chat(&h, over, "500 5.5.2 Error: line too long\r\n");
  chat(&h, ok, "250 2.0.0 Ok\r\n");
  free(ok);
  free(over);
  finish(&h);
}

/* The limit is an option: at it and one past it. */
static void test_command_line_option(void **state) {
  harness h;
  char *ok = padded("NOOP ", 'x', 1000, "\r\n");
  char *over = padded("NOOP ", 'x', 1001, "\r\n");

  (void)state;
  start(&h, options_uint(MAILD_OPT_MAX_COMMAND_LINE, 1000));
  chat(&h, ok, "250 2.0.0 Ok\r\n");
  chat(&h, over, "500 5.5.2 Error: line too long\r\n");
  free(ok);
  free(over);
  finish(&h);
}

/* TESTPLAN S4: 10 MiB without a line end, in 64 KiB segments, is all
   consumed, answered once when the line ends, and costs no more memory
   than a session at rest. */
static void test_junk_flood_bounded(void **state) {
  enum { SEG = 64 * 1024, TOTAL = 10 * 1024 * 1024 };
  harness h;
  uint8_t *junk = malloc(SEG);
  size_t at_rest, done;

  (void)state;
  assert_non_null(junk);
  memset(junk, 'A', SEG);
  start(&h, NULL);
  ehlo(&h);
  at_rest = h.pm.peak;
  for (done = 0; done < TOTAL; done += SEG) {
    assert_int_equal(maild_smtp_server_recv(h.s, junk, SEG), SEG);
    assert_false(maild_smtp_server_want_write(h.s));
  }
  chat(&h, "\r\n", "500 5.5.2 Error: line too long\r\n");
  chat(&h, "NOOP\r\n", "250 2.0.0 Ok\r\n");
  fprintf(stderr, "S4: at rest %zu bytes, peak %zu, largest block %zu\n",
          at_rest, h.pm.peak, h.pm.largest);
  /* One maximum line (MAIL/RCPT with parameters: 1536) at most. */
  assert_true(h.pm.peak <= at_rest + 2048);
  assert_true(h.pm.largest <= 16 * 1024);
  free(junk);
  finish(&h);
}

/* MAIL and RCPT lines may be longer by MAX_PARAMS_EXTRA (RFC 1869 4.1.2,
   RFC 3461 4): 512 + 1024 with the CRLF, not one more. Other commands
   keep 512. */
static void test_params_line_limit(void **state) {
  harness h;
  char *mail = padded("MAIL FROM:<a@c.test> SIZE=100", ' ', 1536, "\r\n");
  char *mail_over = padded("MAIL FROM:<a@c.test> SIZE=100", ' ', 1537, "\r\n");
  static const char orcpt[] =
      "RCPT TO:<v@mx.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;v+40mx.test";
  char *rcpt, *rcpt_over;
  char *noop = padded("NOOP ", 'x', 1536, "\r\n");

  (void)state;
  rcpt = padded(orcpt, ' ', 1536, "\r\n");
  rcpt_over = padded(orcpt, ' ', 1537, "\r\n");
  start(&h, NULL);
  ehlo(&h);
  chat(&h, mail_over, "500 5.5.2 Error: line too long\r\n");
  chat(&h, mail, "250 2.1.0 Ok\r\n");
  chat(&h, rcpt_over, "500 5.5.2 Error: line too long\r\n");
  chat(&h, rcpt, "250 2.1.5 Ok\r\n");
  chat(&h, noop, "500 5.5.2 Error: line too long\r\n");
  assert_int_equal(h.mail, 1);
  assert_int_equal(h.rcpt, 1);
  finish(&h);

  /* Without the extra, MAIL has the plain 512. */
  start(&h, options_uint(MAILD_OPT_MAX_PARAMS_EXTRA, 0));
  ehlo(&h);
  free(mail);
  free(mail_over);
  mail = padded("MAIL FROM:<a@c.test> SIZE=100", ' ', 512, "\r\n");
  mail_over = padded("MAIL FROM:<a@c.test> SIZE=100", ' ', 513, "\r\n");
  chat(&h, mail_over, "500 5.5.2 Error: line too long\r\n");
  chat(&h, mail, "250 2.1.0 Ok\r\n");
  finish(&h);
  free(mail);
  free(mail_over);
  free(rcpt);
  free(rcpt_over);
  free(noop);
}

/* ---- S5: address limits (RFC 5321 4.5.3.1.1-3) ---- */

/* A valid domain of `len` octets: labels of 63 octets (RFC 1035 2.3.4)
   joined by dots, the last one shorter. */
static char *label_domain(size_t len) {
  char *d = malloc(len + 1);
  size_t i;

  assert_non_null(d);
  for (i = 0; i < len; i++)
    d[i] = (i % 64 == 63) ? '.' : 'd';
  if (d[len - 1] == '.') {
    d[len - 2] = '.';
    d[len - 1] = 'd';
  }
  d[len] = '\0';
  return d;
}

static void test_path_limits(void **state) {
  harness h;
  char line[700], local[70];
  char *dom;

  (void)state;
  start(&h, NULL);
  ehlo(&h);

  /* Local-part: 64 octets accepted, 65 refused. */
  memset(local, 'l', 65);
  local[64] = '\0';
  snprintf(line, sizeof(line), "MAIL FROM:<%s@c.test>\r\n", local);
  chat(&h, line, "250 2.1.0 Ok\r\n");
  chat(&h, "RSET\r\n", "250 2.0.0 Ok\r\n");
  local[64] = 'l';
  local[65] = '\0';
  snprintf(line, sizeof(line), "MAIL FROM:<%s@c.test>\r\n", local);
  chat(&h, line, "501 5.1.7 Error: address too long\r\n");
  chat(&h, "MAIL FROM:<a@c.test>\r\n", "250 2.1.0 Ok\r\n");

  /* Path: 256 octets with the brackets accepted, 257 refused. */
  local[64] = '\0';
  dom = label_domain(256 - 3 - 64);
  snprintf(line, sizeof(line), "RCPT TO:<%s@%s>\r\n", local, dom);
  assert_int_equal(strlen(line), strlen("RCPT TO:") + 256 + 2);
  chat(&h, line, "250 2.1.5 Ok\r\n");
  free(dom);
  dom = label_domain(257 - 3 - 64);
  snprintf(line, sizeof(line), "RCPT TO:<%s@%s>\r\n", local, dom);
  chat(&h, line, "501 5.1.3 Error: address too long\r\n");
  free(dom);
  assert_int_equal(h.rcpt, 1);

  /* Domain: 255 octets is a valid HELO name, 256 is not. */
  dom = label_domain(255);
  snprintf(line, sizeof(line), "HELO %s\r\n", dom);
  chat(&h, line, "250 mx.test\r\n");
  assert_int_equal(h.helo_valid, 1);
  free(dom);
  dom = label_domain(256);
  snprintf(line, sizeof(line), "HELO %s\r\n", dom);
  chat(&h, line, "250 mx.test\r\n");
  assert_int_equal(h.helo_valid, 0);
  free(dom);
  finish(&h);
}

/* ---- S6: recipients ---- */

/* `n` pipelined RCPT commands in a heap buffer. */
static void rcpts(unsigned from, unsigned n, char **buf, size_t *len) {
  unsigned i;

  *buf = malloc((size_t)n * 32 + 1);
  assert_non_null(*buf);
  *len = 0;
  for (i = from; i < from + n; i++) {
    int k = snprintf(*buf + *len, 32, "RCPT TO:<r%u@mx.test>\r\n", i);
    *len += (size_t)k;
  }
}

/* RFC 5321 4.5.3.1.8: at least 100 recipients by default. */
static void test_recipients_default(void **state) {
  harness h;
  char *buf;
  size_t len;

  (void)state;
  start(&h, NULL);
  ehlo(&h);
  chat(&h, "MAIL FROM:<a@c.test>\r\n", "250 2.1.0 Ok\r\n");
  rcpts(0, 100, &buf, &len);
  assert_int_equal(feed(&h, buf, len), len);
  assert_int_equal(count(h.out + h.out_seen, "250 2.1.5 Ok\r\n"), 100);
  h.out_seen = h.out_len;
  assert_int_equal(h.rcpt, 100);
  chat(&h, "RCPT TO:<one-more@mx.test>\r\n", "250 2.1.5 Ok\r\n");
  free(buf);
  finish(&h);
}

/* RFC 5321 4.5.3.1.10: past the cap, 452 4.5.3 without asking the
   embedder; the message still goes to the accepted ones. */
static void test_recipients_cap(void **state) {
  harness h;
  char *buf;
  size_t len;

  (void)state;
  start(&h, options_uint(MAILD_OPT_MAX_RECIPIENTS, 100));
  ehlo(&h);
  chat(&h, "MAIL FROM:<a@c.test>\r\n", "250 2.1.0 Ok\r\n");
  rcpts(0, 100, &buf, &len);
  assert_int_equal(feed(&h, buf, len), len);
  assert_int_equal(count(h.out + h.out_seen, "250 2.1.5 Ok\r\n"), 100);
  h.out_seen = h.out_len;
  chat(&h, "RCPT TO:<r100@mx.test>\r\n",
       "452 4.5.3 Error: too many recipients\r\n");
  assert_int_equal(h.rcpt, 100);
  chat(&h, "DATA\r\nhi\r\n.\r\n",
       "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok\r\n");
  assert_int_equal(h.data_end, 1);
  free(buf);
  finish(&h);
}

/* TESTPLAN S6: a flood of RCPTs past the cap is a run of errors; the
   20th ends the session with 421 and the rest is never read. */
static void test_recipients_flood(void **state) {
  static const char flood_end[] = "452 4.5.3 Error: too many recipients\r\n"
                                  "421 4.7.0 Error: too many errors\r\n";
  harness h;
  char *buf;
  size_t len;

  (void)state;
  start(&h, options_uint(MAILD_OPT_MAX_RECIPIENTS, 100));
  ehlo(&h);
  chat(&h, "MAIL FROM:<a@c.test>\r\n", "250 2.1.0 Ok\r\n");
  rcpts(0, 1000, &buf, &len);
  assert_int_equal(feed(&h, buf, len), len);
  assert_int_equal(count(h.out + h.out_seen, "250 2.1.5 Ok\r\n"), 100);
  assert_int_equal(count(h.out + h.out_seen, "452 4.5.3 "), 20);
  assert_true(h.out_len > strlen(flood_end));
  assert_string_equal(h.out + h.out_len - strlen(flood_end), flood_end);
  assert_true(maild_smtp_server_closing(h.s));
  assert_int_equal(h.aborts, 1);
  assert_int_equal(h.last_abort, MAILD_SMTP_ABORT_CLOSE);
  assert_int_equal(h.rcpt, 100);
  free(buf);
  finish(&h);
}

/* Sends `n` commands that move no mail (NOOP, RSET, VRFY, HELP in turn),
   each answered with its usual reply. */
static void junk(harness *h, size_t n) {
  static const char *const cmd[] = {"NOOP\r\n", "RSET\r\n", "VRFY a\r\n",
                                    "HELP\r\n"};
  static const char *const reply[] = {"250 2.0.0 Ok\r\n", "250 2.0.0 Ok\r\n",
                                      "252 2.0.0 ", "214 2.0.0 "};
  size_t i;

  for (i = 0; i < n; i++) {
    say(h, cmd[i % 4]);
    assert_true(
        strncmp(h->out + h->out_seen, reply[i % 4], strlen(reply[i % 4])) == 0);
    h->out_seen = h->out_len;
    assert_false(maild_smtp_server_closing(h->s));
  }
}

/* MAX_JUNK_COMMANDS: that many NOOP/RSET/VRFY/HELP cost nothing; each one
   past it counts as an error. An accepted message starts the count again;
   a refused one does not. */
static void test_junk_command_limit(void **state) {
  static const char msg[] =
      "MAIL FROM:<a@c.test>\r\nRCPT TO:<v@mx.test>\r\nDATA\r\nhi\r\n.\r\n";
  static const char accepted[] = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                                 "354 End data with <CR><LF>.<CR><LF>\r\n"
                                 "250 2.0.0 Ok\r\n";
  maild_options *opt = options_uint(MAILD_OPT_MAX_JUNK_COMMANDS, 10);
  harness h;

  (void)state;
  assert_int_equal(maild_options_set_uint(opt, MAILD_OPT_MAX_ERRORS, 3), 0);
  start(&h, opt);
  ehlo(&h);
  junk(&h, 10); /* at the limit */
  chat(&h, msg, accepted);
  junk(&h, 10); /* counted again from the accepted message */
  junk(&h, 1);  /* one past: error 1 */
  h.data_reply.code = 554;
  say(&h, msg); /* refused: error 2, and the count goes on */
  assert_non_null(strstr(h.out + h.out_seen, "\r\n554 "));
  h.out_seen = h.out_len;
  assert_false(maild_smtp_server_closing(h.s));
  chat(&h, "NOOP\r\n", "250 2.0.0 Ok\r\n421 4.7.0 Error: too many errors\r\n");
  assert_true(maild_smtp_server_closing(h.s));
  finish(&h);
}

/* The default limit is Postfix's: 100 junk commands, then 20 errors. */
static void test_junk_command_default(void **state) {
  harness h;

  (void)state;
  assert_int_equal(maild_options_get_uint(NULL, MAILD_OPT_MAX_JUNK_COMMANDS),
                   100);
  start(&h, NULL);
  ehlo(&h);
  junk(&h, 119);
  chat(&h, "NOOP\r\n", "250 2.0.0 Ok\r\n421 4.7.0 Error: too many errors\r\n");
  finish(&h);
}

/* ---- S7: message size (RFC 1870) ---- */

/* SIZE= at MAIL with the default limit: at it accepted, past it 552. */
static void test_size_param_default(void **state) {
  harness h;

  (void)state;
  start(&h, NULL);
  ehlo(&h);
  chat(&h, "MAIL FROM:<a@c.test> SIZE=26214401\r\n",
       "552 5.3.4 Error: message size exceeds fixed limit\r\n");
  chat(&h, "MAIL FROM:<a@c.test> SIZE=99999999999999999999999\r\n",
       "501 5.5.4 Error: bad parameter\r\n");
  assert_int_equal(h.mail, 0);
  chat(&h, "MAIL FROM:<a@c.test> SIZE=26214400\r\n", "250 2.1.0 Ok\r\n");
  assert_int_equal(h.mail, 1);
  finish(&h);
}

/* Feeds `segments` 64 KiB segments of 64-octet body lines; with `longer`,
   the last line of the last segment is one octet longer. */
static void feed_body(harness *h, size_t segments, int longer) {
  enum { SEG = 64 * 1024 };
  char *seg = malloc(SEG + 1);
  size_t i;

  assert_non_null(seg);
  for (i = 0; i < SEG; i += 64) {
    memset(seg + i, 'b', 62);
    seg[i + 62] = '\r';
    seg[i + 63] = '\n';
  }
  for (i = 0; i < segments; i++) {
    size_t n = SEG;
    if (longer && i + 1 == segments) {
      seg[SEG - 2] = 'b';
      seg[SEG - 1] = '\r';
      seg[SEG] = '\n';
      n++;
    }
    assert_int_equal(feed(h, seg, n), n);
  }
  free(seg);
}

/* TESTPLAN S7: a body over the default limit is read to its end (its
   lines are never commands), the embedder gets no more than the limit,
   the answer is 552 5.3.4, the next command works, and memory stays
   bounded throughout. */
static void test_oversized_body_default(void **state) {
  harness h;
  size_t at_rest;

  (void)state;
  start(&h, NULL);
  open_tx(&h);
  chat(&h, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
  at_rest = h.pm.peak;
  feed_body(&h, 26214400 / 65536 + 2, 0);
  expect(&h, "");
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_DATA);
  chat(&h, ".\r\nNOOP\r\n",
       "552 5.3.4 Error: message size exceeds fixed limit\r\n"
       "250 2.0.0 Ok\r\n");
  assert_true(h.body <= 26214400);
  assert_int_equal(h.data_end, 0);
  assert_int_equal(h.aborts, 1);
  assert_int_equal(h.last_abort, MAILD_SMTP_ABORT_TOO_BIG);
  assert_true(h.pm.peak <= at_rest + 1024);
  /* The next transaction is normal. */
  chat(&h, "MAIL FROM:<a@c.test>\r\n", "250 2.1.0 Ok\r\n");
  finish(&h);
}

/* A body of exactly the limit is accepted, one octet more is refused
   (MAX_MESSAGE_SIZE 1 MiB), with DATA and with BDAT. */
static void test_body_at_limit(void **state) {
  static const char too_big[] =
      "552 5.3.4 Error: message size exceeds fixed limit\r\n";
  harness h;
  char *chunk = malloc(1024 * 1024 + 1);

  (void)state;
  assert_non_null(chunk);
  memset(chunk, 'c', 1024 * 1024 + 1);
  start(&h, options_uint(MAILD_OPT_MAX_MESSAGE_SIZE, 1024 * 1024));
  open_tx(&h);
  chat(&h, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
  feed_body(&h, 16, 0);
  chat(&h, ".\r\n", "250 2.0.0 Ok\r\n");
  assert_int_equal(h.body, 1024 * 1024);
  assert_int_equal(h.data_end, 1);
  chat(&h, "MAIL FROM:<a@c.test>\r\nRCPT TO:<v@mx.test>\r\nDATA\r\n",
       "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
       "354 End data with <CR><LF>.<CR><LF>\r\n");
  feed_body(&h, 16, 1);
  chat(&h, ".\r\n", too_big);
  assert_int_equal(h.data_end, 1);

  chat(&h, "MAIL FROM:<a@c.test>\r\nRCPT TO:<v@mx.test>\r\n",
       "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  say(&h, "BDAT 1048576 LAST\r\n");
  assert_int_equal(feed(&h, chunk, 1024 * 1024), 1024 * 1024);
  expect(&h, "250 2.0.0 Ok\r\n");
  assert_int_equal(h.data_end, 2);
  chat(&h, "MAIL FROM:<a@c.test>\r\nRCPT TO:<v@mx.test>\r\n",
       "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  say(&h, "BDAT 1048577 LAST\r\n");
  assert_int_equal(feed(&h, chunk, 1024 * 1024 + 1), 1024 * 1024 + 1);
  expect(&h, too_big);
  assert_int_equal(h.data_end, 2);
  assert_int_equal(h.last_abort, MAILD_SMTP_ABORT_TOO_BIG);
  free(chunk);
  finish(&h);
}

/* ---- S13: Received headers at the default limit (RFC 5321 6.3) ---- */

static void send_received(harness *h, unsigned n) {
  char line[64];
  unsigned i;

  chat(h, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
  for (i = 0; i < n; i++) {
    snprintf(line, sizeof(line), "Received: from hop%u by x;\r\n", i);
    say(h, line);
  }
  say(h, "Subject: hops\r\n\r\nbody\r\n");
}

static void test_received_default(void **state) {
  harness h;

  (void)state;
  start(&h, NULL);
  open_tx(&h);
  send_received(&h, 100);
  chat(&h, ".\r\n", "250 2.0.0 Ok\r\n");
  assert_int_equal(h.data_end, 1);
  chat(&h, "MAIL FROM:<a@c.test>\r\nRCPT TO:<v@mx.test>\r\n",
       "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  send_received(&h, 101);
  chat(&h, ".\r\n",
       "554 5.4.0 Error: too many Received headers (mail loop)\r\n");
  assert_int_equal(h.data_end, 1);
  assert_int_equal(h.last_abort, MAILD_SMTP_ABORT_LOOP);
  chat(&h, "NOOP\r\n", "250 2.0.0 Ok\r\n");
  finish(&h);
}

/* ---- S15: talking before the greeting (RFC 5321 3.1, 4.3.1) ---- */

static void test_pregreet(void **state) {
  harness h;
  maild_ssize n;

  (void)state;
  memset(&h, 0, sizeof(h));
  peakmem_init(&h.pm);
  assert_int_equal(maild_smtp_server_new(&h.s, &callbacks, &h, NULL, &h.pm.mem),
                   0);
  assert_true(maild_smtp_server_want_write(h.s));
  /* The greeting is queued but not taken: the client did not see it. */
  n = maild_smtp_server_recv(h.s, (const uint8_t *)"EHLO x\r\n", 8);
  assert_int_equal(n, 8);
  assert_true(maild_smtp_server_closing(h.s));
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_CLOSING);
  assert_false(maild_smtp_server_want_read(h.s));
  take(&h);
  expect(&h, "554 5.5.1 Error: client spoke before the greeting\r\n");
  assert_int_equal(h.helo, 0);
  assert_int_equal(maild_smtp_server_recv(h.s, (const uint8_t *)"QUIT\r\n", 6),
                   6);
  take(&h);
  expect(&h, "");
  finish(&h);
}

/* DEFER_GREETING: the embedder greets when it chooses (after a pre-greet
   pause); talk before that is refused the same way. */
static void test_deferred_greeting(void **state) {
  harness h;
  const uint8_t *data;
  maild_reply no = {554, NULL, "No SMTP service here"};

  (void)state;
  start(&h, options_uint(MAILD_OPT_DEFER_GREETING, 1));
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_GREETING);
  assert_false(maild_smtp_server_want_write(h.s));
  assert_int_equal(maild_smtp_server_send(h.s, &data), 0);
  assert_int_equal(maild_smtp_server_greet(h.s, NULL), 0);
  assert_int_equal(maild_smtp_server_greet(h.s, NULL), MAILD_ERR_STATE);
  take(&h);
  expect(&h, "220 mx.test ESMTP\r\n");
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_COMMAND);
  chat(&h, "NOOP\r\n", "250 2.0.0 Ok\r\n");
  finish(&h);

  /* The client speaks before greet(). */
  start(&h, options_uint(MAILD_OPT_DEFER_GREETING, 1));
  assert_int_equal(
      maild_smtp_server_recv(h.s, (const uint8_t *)"HELO x\r\n", 8), 8);
  assert_true(maild_smtp_server_closing(h.s));
  assert_int_equal(maild_smtp_server_greet(h.s, NULL), MAILD_ERR_STATE);
  take(&h);
  expect(&h, "554 5.5.1 Error: client spoke before the greeting\r\n");
  assert_int_equal(h.helo, 0);
  finish(&h);

  /* Turned away at the greeting (RFC 5321 3.1: 554). */
  start(&h, options_uint(MAILD_OPT_DEFER_GREETING, 1));
  assert_int_equal(maild_smtp_server_greet(h.s, &no), 0);
  take(&h);
  expect(&h, "554 5.3.2 No SMTP service here\r\n");
  assert_true(maild_smtp_server_closing(h.s));
  finish(&h);
}

/* ---- L4: a client that never reads ---- */

static void test_output_backlog(void **state) {
  enum { N = 100000 };
  static const char reply[] = "250 2.0.0 Ok\r\n";
  harness h;
  char *buf = malloc((size_t)N * 6);
  size_t len = (size_t)N * 6, off = 0, replies = 0, rounds = 0, i;
  const uint8_t *data;

  (void)state;
  assert_non_null(buf);
  for (i = 0; i < N; i++)
    memcpy(buf + i * 6, "NOOP\r\n", 6);
  start(&h, options_uint(MAILD_OPT_MAX_JUNK_COMMANDS, N));
  while (off < len) {
    maild_ssize n =
        maild_smtp_server_recv(h.s, (uint8_t *)buf + off, len - off);
    maild_ssize out;

    assert_true(n > 0);
    off += (size_t)n;
    if (off == len)
      break;
    /* Stalled on output: nothing more is read until it drains. */
    assert_false(maild_smtp_server_want_read(h.s));
    assert_true(maild_smtp_server_want_write(h.s));
    assert_int_equal(
        maild_smtp_server_recv(h.s, (uint8_t *)buf + off, len - off), 0);
    out = maild_smtp_server_send(h.s, &data);
    assert_true(out > 65536);
    assert_true(out <= 65536 + (maild_ssize)sizeof(reply));
    assert_int_equal((size_t)out % (sizeof(reply) - 1), 0);
    assert_memory_equal(data, reply, sizeof(reply) - 1);
    replies += (size_t)out / (sizeof(reply) - 1);
    assert_true(maild_smtp_server_want_read(h.s));
    rounds++;
  }
  take(&h);
  replies += count(h.out + h.out_seen, reply);
  assert_int_equal(replies, N);
  assert_true(rounds >= 20);
  fprintf(stderr, "L4: %zu rounds, peak %zu bytes, largest block %zu\n", rounds,
          h.pm.peak, h.pm.largest);
  assert_true(h.pm.peak <= 65536 + 64 * 1024 + 16 * 1024);
  free(buf);
  finish(&h);
}

/* ---- The embedder contract ---- */

/* A deferred decision stops input: recv() takes only the command that
   asked, the phase is DECISION, and replies keep their order. */
static void test_deferral_contract(void **state) {
  static const char two[] = "RCPT TO:<a@mx.test>\r\nRCPT TO:<b@mx.test>\r\n";
  harness h;
  maild_reply no = {550, "5.1.1", "No such user here"};
  size_t first = strlen("RCPT TO:<a@mx.test>\r\n");

  (void)state;
  start(&h, NULL);
  assert_int_equal(maild_smtp_server_reply(h.s, NULL), MAILD_ERR_STATE);
  assert_int_equal(maild_smtp_server_resume(h.s), MAILD_ERR_STATE);
  ehlo(&h);
  chat(&h, "MAIL FROM:<a@c.test>\r\n", "250 2.1.0 Ok\r\n");
  h.defer_rcpt = 1;
  assert_int_equal(maild_smtp_server_recv(h.s, (const uint8_t *)two, 42),
                   (maild_ssize)first);
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_DECISION);
  assert_false(maild_smtp_server_want_read(h.s));
  assert_false(maild_smtp_server_want_write(h.s));
  assert_int_equal(
      maild_smtp_server_recv(h.s, (const uint8_t *)two + first, 42 - first), 0);
  assert_int_equal(h.rcpt, 1);
  assert_int_equal(maild_smtp_server_reply(h.s, &no), 0);
  assert_int_equal(maild_smtp_server_reply(h.s, &no), MAILD_ERR_STATE);
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_COMMAND);
  assert_true(maild_smtp_server_want_read(h.s));
  take(&h);
  expect(&h, "550 5.1.1 No such user here\r\n");
  assert_int_equal(
      maild_smtp_server_recv(h.s, (const uint8_t *)two + first, 42 - first),
      (maild_ssize)(42 - first));
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_DECISION);
  assert_int_equal(maild_smtp_server_resume(h.s), 0);
  take(&h);
  expect(&h, "250 2.1.5 Ok\r\n");
  h.defer_rcpt = 0;
  /* Only the accepted recipient counts: DATA goes on. */
  chat(&h, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_DATA);
  finish(&h);
}

/* on_data_chunk deferring is back-pressure: the octets were taken, input
   pauses until _resume(), and the body then goes on where it was. */
static void test_chunk_backpressure(void **state) {
  static const char part1[] = "line one\r\n";
  static const char part2[] = "line two\r\n.\r\nNOOP\r\n";
  harness h;

  (void)state;
  start(&h, NULL);
  open_tx(&h);
  chat(&h, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
  h.defer_chunks = 1;
  assert_int_equal(maild_smtp_server_recv(h.s, (const uint8_t *)part1, 10), 10);
  assert_int_equal(h.body, 10);
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_DECISION);
  assert_false(maild_smtp_server_want_read(h.s));
  assert_int_equal(maild_smtp_server_recv(h.s, (const uint8_t *)part2, 19), 0);
  assert_int_equal(maild_smtp_server_resume(h.s), 0);
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_DATA);
  take(&h);
  expect(&h, "");
  /* The last piece defers too: the end of data waits for _resume(). */
  h.defer_chunks = 1;
  assert_int_equal(maild_smtp_server_recv(h.s, (const uint8_t *)part2, 19), 13);
  assert_int_equal(h.data_end, 0);
  take(&h);
  expect(&h, "");
  assert_int_equal(maild_smtp_server_resume(h.s), 0);
  assert_int_equal(h.data_end, 1);
  assert_int_equal(h.body, 20);
  take(&h);
  expect(&h, "250 2.0.0 Ok\r\n");
  chat(&h, part2 + 13, "250 2.0.0 Ok\r\n");
  finish(&h);
}

/* terminate() (a timeout, a shutdown) in the middle of DATA: the
   transaction is aborted, never committed, and the 421 goes out. */
static void test_terminate_during_data(void **state) {
  harness h;
  maild_reply bye = {421, "4.4.2", "mx.test Error: timeout exceeded"};

  (void)state;
  start(&h, NULL);
  open_tx(&h);
  chat(&h, "DATA\r\nSubject: half\r\n",
       "354 End data with <CR><LF>.<CR><LF>\r\n");
  assert_int_equal(maild_smtp_server_terminate(h.s, &bye), 0);
  assert_int_equal(h.aborts, 1);
  assert_int_equal(h.last_abort, MAILD_SMTP_ABORT_CLOSE);
  assert_true(maild_smtp_server_closing(h.s));
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_CLOSING);
  assert_false(maild_smtp_server_want_read(h.s));
  assert_true(maild_smtp_server_want_write(h.s));
  take(&h);
  expect(&h, "421 4.4.2 mx.test Error: timeout exceeded\r\n");
  /* The rest of the body is ignored; nothing is committed. */
  chat(&h, "body\r\n.\r\n", "");
  assert_int_equal(h.data_end, 0);
  assert_int_equal(maild_smtp_server_terminate(h.s, &bye), 0);
  take(&h);
  expect(&h, "");
  finish(&h);

  /* Without a reply: silent close; with a decision pending: dropped. */
  start(&h, NULL);
  ehlo(&h);
  chat(&h, "MAIL FROM:<a@c.test>\r\n", "250 2.1.0 Ok\r\n");
  h.defer_rcpt = 1;
  say(&h, "RCPT TO:<v@mx.test>\r\n");
  assert_int_equal(maild_smtp_server_terminate(h.s, NULL), 0);
  assert_int_equal(h.last_abort, MAILD_SMTP_ABORT_CLOSE);
  assert_int_equal(maild_smtp_server_reply(h.s, NULL), MAILD_ERR_STATE);
  take(&h);
  expect(&h, "");
  assert_true(maild_smtp_server_closing(h.s));
  finish(&h);
}

/* tls_started() only in the TLS phase (after 220 to STARTTLS). */
static void test_tls_started_state(void **state) {
  harness h;

  (void)state;
  start(&h, NULL);
  assert_int_equal(maild_smtp_server_tls_started(h.s, "TLSv1.2 x"),
                   MAILD_ERR_STATE);
  chat(&h, "STARTTLS\r\n", "502 5.5.1 Error: command not implemented\r\n");
  assert_int_equal(maild_smtp_server_tls_started(h.s, NULL), MAILD_ERR_STATE);
  finish(&h);

  start(&h, options_uint(MAILD_OPT_STARTTLS, 1));
  chat(&h, "HELO c.test\r\n", "250 mx.test\r\n");
  assert_int_equal(maild_smtp_server_tls_started(h.s, "TLSv1.2 x"),
                   MAILD_ERR_STATE);
  assert_false(maild_smtp_server_is_tls(h.s));
  chat(&h, "STARTTLS\r\nNOOP\r\n", "220 2.0.0 Ready to start TLS\r\n");
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_TLS);
  assert_false(maild_smtp_server_want_read(h.s));
  assert_int_equal(maild_smtp_server_tls_started(h.s, "TLSv1.2 x"), 0);
  assert_int_equal(maild_smtp_server_tls_started(h.s, "TLSv1.2 x"),
                   MAILD_ERR_STATE);
  assert_true(maild_smtp_server_is_tls(h.s));
  assert_string_equal(maild_smtp_server_tls_info(h.s), "TLSv1.2 x");
  assert_null(maild_smtp_server_helo_name(h.s));
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_COMMAND);
  assert_true(maild_smtp_server_want_read(h.s));
  chat(&h, "NOOP\r\n", "250 2.0.0 Ok\r\n");
  finish(&h);
}

/* Replies an embedder gets wrong never turn into something else: a code
   outside 200..599 is a local error (never an acceptance), an enhanced
   code of the wrong class or malformed is replaced, and line breaks in
   the text cannot forge a reply line. */
static void test_invalid_replies(void **state) {
  static const struct {
    maild_reply r;
    const char *want;
  } cases[] = {
      {{999, "2.1.5", "fine"}, "451 4.3.0 Error: local error\r\n"},
      {{199, NULL, NULL}, "451 4.3.0 Error: local error\r\n"},
      {{-250, NULL, NULL}, "451 4.3.0 Error: local error\r\n"},
      {{550, "4.1.1", "No"}, "550 5.0.0 No\r\n"},
      {{550, "5.1", "No"}, "550 5.0.0 No\r\n"},
      {{550, "5.01.1", "No"}, "550 5.0.0 No\r\n"},
      {{450, NULL, NULL}, "450 4.0.0 Try again later\r\n"},
      {{250, "5.1.5", NULL}, "250 2.1.5 Ok\r\n"},
      {{550, "5.1.1", "bad\r\n250 2.1.5 Ok"},
       "550-5.1.1 bad?\r\n550 5.1.1 250 2.1.5 Ok\r\n"},
  };
  harness h;
  size_t i;

  (void)state;
  start(&h, NULL);
  ehlo(&h);
  chat(&h, "MAIL FROM:<a@c.test>\r\n", "250 2.1.0 Ok\r\n");
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    h.rcpt_reply = cases[i].r;
    chat(&h, "RCPT TO:<v@mx.test>\r\n", cases[i].want);
  }
  /* Only the one 250 counts: DATA goes on. */
  h.rcpt_reply.code = 0;
  h.data_reply.code = 1000;
  chat(&h, "DATA\r\n.\r\n",
       "354 End data with <CR><LF>.<CR><LF>\r\n"
       "451 4.3.0 Error: local error\r\n");
  assert_int_equal(h.data_end, 1);
  finish(&h);
}

/* A failing callback ends the session with 421; nothing after it runs. */
static void test_callback_failure(void **state) {
  harness h;
  maild_ssize n;
  static const char in[] = "RCPT TO:<v@mx.test>\r\nRSET\r\n";

  (void)state;
  start(&h, NULL);
  ehlo(&h);
  chat(&h, "MAIL FROM:<a@c.test>\r\n", "250 2.1.0 Ok\r\n");
  h.fail_rcpt = 1;
  n = maild_smtp_server_recv(h.s, (const uint8_t *)in, sizeof(in) - 1);
  assert_true(n == (maild_ssize)(sizeof(in) - 1) || n == MAILD_ERR_CALLBACK);
  assert_true(maild_smtp_server_closing(h.s));
  take(&h);
  expect(&h, "421 4.3.0 Error: local error\r\n");
  assert_int_equal(h.aborts, 1);
  assert_int_equal(h.last_abort, MAILD_SMTP_ABORT_CLOSE);
  finish(&h);
}

/* The phase follows the input: command, DATA, BDAT, closing. */
static void test_phases(void **state) {
  harness h;

  (void)state;
  start(&h, NULL);
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_COMMAND);
  open_tx(&h);
  chat(&h, "BDAT 10\r\nhalf", "");
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_BDAT);
  chat(&h, "-done", "");
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_BDAT);
  chat(&h, "X", "250 2.0.0 Ok: 10 octets received\r\n");
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_COMMAND);
  chat(&h, "BDAT 0 LAST\r\n", "250 2.0.0 Ok\r\n");
  assert_int_equal(h.body, 10);
  assert_int_equal(h.data_end, 1);
  chat(&h, "QUIT\r\n", "221 2.0.0 Bye\r\n");
  assert_int_equal(maild_smtp_server_phase(h.s), MAILD_SMTP_PHASE_CLOSING);
  assert_false(maild_smtp_server_want_read(h.s));
  assert_false(maild_smtp_server_want_write(h.s));
  finish(&h);
}

/* Arguments the API refuses. */
static void test_api_arguments(void **state) {
  harness h;

  (void)state;
  assert_int_equal(maild_smtp_server_new(NULL, &callbacks, NULL, NULL, NULL),
                   MAILD_ERR_INVAL);
  maild_smtp_server_del(NULL);
  start(&h, NULL);
  assert_int_equal(maild_smtp_server_recv(h.s, NULL, 1), MAILD_ERR_INVAL);
  assert_int_equal(maild_smtp_server_recv(h.s, NULL, 0), 0);
  assert_int_equal(maild_smtp_server_send(h.s, NULL), MAILD_ERR_INVAL);
  finish(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_command_line_512),
      cmocka_unit_test(test_command_line_option),
      cmocka_unit_test(test_junk_flood_bounded),
      cmocka_unit_test(test_params_line_limit),
      cmocka_unit_test(test_path_limits),
      cmocka_unit_test(test_recipients_default),
      cmocka_unit_test(test_recipients_cap),
      cmocka_unit_test(test_recipients_flood),
      cmocka_unit_test(test_junk_command_limit),
      cmocka_unit_test(test_junk_command_default),
      cmocka_unit_test(test_size_param_default),
      cmocka_unit_test(test_oversized_body_default),
      cmocka_unit_test(test_body_at_limit),
      cmocka_unit_test(test_received_default),
      cmocka_unit_test(test_pregreet),
      cmocka_unit_test(test_deferred_greeting),
      cmocka_unit_test(test_output_backlog),
      cmocka_unit_test(test_deferral_contract),
      cmocka_unit_test(test_chunk_backpressure),
      cmocka_unit_test(test_terminate_during_data),
      cmocka_unit_test(test_tls_started_state),
      cmocka_unit_test(test_invalid_replies),
      cmocka_unit_test(test_callback_failure),
      cmocka_unit_test(test_phases),
      cmocka_unit_test(test_api_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
