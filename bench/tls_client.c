/*
 * tls_client -- SMTP STARTTLS load generator (OpenSSL), for tls_load.py.
 *
 * Runs -s sessions in parallel from one thread (epoll, non-blocking
 * sockets) until -m sessions in all have finished. Each session is a new
 * connection:
 *
 *   connect, 220, EHLO, 250 (must offer STARTTLS), STARTTLS, 220,
 *   TLS handshake (full: no session resumption, no tickets), EHLO, 250,
 *   [with -t: MAIL FROM, 250, RCPT TO, 250, DATA, 354, message, 250,]
 *   QUIT, 221, close_notify, close.
 *
 * Without -t it measures handshakes; with -t RCPT every session sends one
 * message of about -l octets (headers plus lines of 80 octets, like
 * smtp-source -l) to RCPT. -P (plaintext) skips STARTTLS and the second
 * EHLO: the same sessions without TLS, for a baseline.
 *
 * The TLS client is pinned down so that every server is offered the same
 * handshake: TLS 1.2 only (--tls13 allows 1.3), one cipher suite (-C,
 * default ECDHE-ECDSA-AES256-GCM-SHA384, maild's first choice) and the
 * groups X25519 then P-256 (-G; P-256 must be offered too, or a server
 * with a P-256 ECDSA certificate cannot use it in TLS 1.2, RFC 8422
 * section 5.1; both servers follow the client's order and pick X25519).
 * The server certificate is not
 * verified unless --ca FILE is given (the ServerKeyExchange signature is
 * checked either way: that is part of every TLS 1.2 ECDHE handshake).
 *
 * Prints one JSON object on stdout: sessions done and failed, elapsed
 * time, handshakes, the client's own CPU time (getrusage), handshake
 * latency percentiles (STARTTLS sent to handshake done), and the protocol,
 * suite and group of the first handshake. Exit status 1 when any session
 * failed (the first failures are printed on stderr), 2 on usage errors.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IBUF 8192

enum state {
  S_FREE,
  S_CONNECT,
  S_GREET,     /* waiting for 220 */
  S_EHLO1,     /* waiting for 250 to the plaintext EHLO */
  S_STARTTLS,  /* waiting for 220 to STARTTLS */
  S_HANDSHAKE, /* TLS handshake running */
  S_EHLO2,     /* waiting for 250 to EHLO over TLS */
  S_MAIL,
  S_RCPT,
  S_DATA,
  S_DOT, /* waiting for 250 after the message */
  S_QUIT
};

struct conn {
  int fd;
  enum state st;
  SSL *ssl;
  char ibuf[IBUF];
  size_t ilen;
  char *obuf; /* points at cmd or at the message */
  size_t olen, opos;
  char cmd[512];
  int want_out; /* EPOLLOUT armed */
  int offers_starttls;
  double t_start, t_tls, deadline;
  long id;
};

static struct {
  const char *host;
  int port;
  int conc;
  long total;
  long size;
  const char *from, *rcpt, *helo, *cipher, *groups, *ca;
  int tls13, plain;
  double timeout;
} opt;

static SSL_CTX *ctx;
static int ep;
static struct sockaddr_in addr;
static long started, done_ok, failed, handshakes;
static double *hs_lat;
static char *message;
static size_t message_len;
static char first_proto[32], first_suite[64], first_group[32];
static int printed_errors;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void conn_close(struct conn *c) {
  if (c->ssl != NULL) {
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
  }
  c->st = S_FREE;
}

static const char *state_name(enum state s) {
  static const char *const names[] = {
      "free",     "connect",   "greeting",       "EHLO",
      "STARTTLS", "handshake", "EHLO after TLS", "MAIL",
      "RCPT",     "DATA",      "end of data",    "QUIT"};
  return names[s];
}

static void fail(struct conn *c, const char *fmt, ...) {
  va_list ap;
  char msg[512];

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  failed++;
  if (printed_errors < 10) {
    fprintf(stderr, "tls_client: session %ld (%s): %s\n", c->id,
            state_name(c->st), msg);
    printed_errors++;
  }
  conn_close(c);
}

static void set_events(struct conn *c, int out) {
  struct epoll_event ev;

  if (out == c->want_out)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN | (out ? (uint32_t)EPOLLOUT : 0u);
  ev.data.ptr = c;
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = out;
}

static const char *ssl_err_text(void) {
  static char buf[256];
  unsigned long e = ERR_get_error();

  if (e == 0)
    return "no OpenSSL error";
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

/* Writes what is left of the output; 1 when all is out, 0 to wait, -1 on
   error (the connection is closed). */
static int flush(struct conn *c) {
  while (c->opos < c->olen) {
    size_t left = c->olen - c->opos;
    if (c->ssl != NULL) {
      int n = SSL_write(c->ssl, c->obuf + c->opos,
                        left > 65536 ? 65536 : (int)left);
      if (n <= 0) {
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
          set_events(c, e == SSL_ERROR_WANT_WRITE);
          return 0;
        }
        fail(c, "SSL_write: %s", ssl_err_text());
        return -1;
      }
      c->opos += (size_t)n;
    } else {
      ssize_t n = send(c->fd, c->obuf + c->opos, left, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          set_events(c, 1);
          return 0;
        }
        fail(c, "send: %s", strerror(errno));
        return -1;
      }
      c->opos += (size_t)n;
    }
  }
  set_events(c, 0);
  return 1;
}

static void send_cmd(struct conn *c, enum state next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void send_cmd(struct conn *c, enum state next, const char *fmt, ...) {
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(c->cmd, sizeof(c->cmd), fmt, ap);
  va_end(ap);
  c->obuf = c->cmd;
  c->olen = (size_t)n;
  c->opos = 0;
  c->st = next;
  flush(c);
}

static void start_conn(struct conn *c) {
  struct epoll_event ev;
  int one = 1;

  memset(c, 0, sizeof(*c));
  c->id = started++;
  c->t_start = now();
  c->deadline = c->t_start + opt.timeout;
  c->st = S_CONNECT;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    fail(c, "socket: %s", strerror(errno));
    return;
  }
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 &&
      errno != EINPROGRESS) {
    fail(c, "connect: %s", strerror(errno));
    return;
  }
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.ptr = c;
  c->want_out = 1;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
    fail(c, "epoll_ctl: %s", strerror(errno));
    return;
  }
}

static void record_first(SSL *ssl) {
  EVP_PKEY *key = NULL;

  if (first_proto[0] != '\0')
    return;
  snprintf(first_proto, sizeof(first_proto), "%s", SSL_get_version(ssl));
  snprintf(first_suite, sizeof(first_suite), "%s",
           SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
  if (SSL_get_peer_tmp_key(ssl, &key) && key != NULL) {
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key, first_group, sizeof(first_group), &len) !=
        1)
      snprintf(first_group, sizeof(first_group), "%s",
               EVP_PKEY_get0_type_name(key));
    EVP_PKEY_free(key);
  }
}

static void handshake(struct conn *c) {
  int rc = SSL_do_handshake(c->ssl);

  if (rc == 1) {
    if (handshakes < opt.total)
      hs_lat[handshakes] = now() - c->t_tls;
    handshakes++;
    record_first(c->ssl);
    send_cmd(c, S_EHLO2, "EHLO %s\r\n", opt.helo);
    return;
  }
  switch (SSL_get_error(c->ssl, rc)) {
  case SSL_ERROR_WANT_READ:
    set_events(c, 0);
    return;
  case SSL_ERROR_WANT_WRITE:
    set_events(c, 1);
    return;
  default:
    fail(c, "TLS handshake: %s", ssl_err_text());
  }
}

static void begin_tls(struct conn *c) {
  if (c->ilen != 0) {
    fail(c, "data after the 220 to STARTTLS");
    return;
  }
  c->ssl = SSL_new(ctx);
  if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
    fail(c, "SSL_new: %s", ssl_err_text());
    return;
  }
  SSL_set_connect_state(c->ssl);
  c->st = S_HANDSHAKE;
  handshake(c);
}

/* One complete reply (lines in c->ibuf up to `end`) arrived. */
static void on_reply(struct conn *c, const char *rep, size_t len) {
  char code[4];
  const char *want;

  memcpy(code, rep, 3);
  code[3] = '\0';
  switch (c->st) {
  case S_GREET:
  case S_STARTTLS:
    want = "220";
    break;
  case S_DATA:
    want = "354";
    break;
  case S_QUIT:
    want = "221";
    break;
  default:
    want = "250";
  }
  if (strcmp(code, want) != 0) {
    fail(c, "expected %s, got: %.*s", want, (int)(len > 200 ? 200 : len - 2),
         rep);
    return;
  }
  switch (c->st) {
  case S_GREET:
    send_cmd(c, S_EHLO1, "EHLO %s\r\n", opt.helo);
    break;
  case S_EHLO1: {
    /* Look for a STARTTLS line ("250-STARTTLS" or "250 STARTTLS"). */
    size_t i = 0;
    while (i < len) {
      const char *nl = memchr(rep + i, '\n', len - i);
      size_t ll = (size_t)(nl - (rep + i)) + 1;
      if (ll >= 12 && strncasecmp(rep + i + 4, "STARTTLS", 8) == 0)
        c->offers_starttls = 1;
      i += ll;
    }
    if (opt.plain) {
      if (opt.rcpt != NULL)
        send_cmd(c, S_MAIL, "MAIL FROM:<%s>\r\n", opt.from);
      else
        send_cmd(c, S_QUIT, "QUIT\r\n");
      break;
    }
    if (!c->offers_starttls) {
      fail(c, "server does not offer STARTTLS");
      return;
    }
    send_cmd(c, S_STARTTLS, "STARTTLS\r\n");
    break;
  }
  case S_STARTTLS:
    c->t_tls = now(); /* approximately: the 220 is one round trip */
    begin_tls(c);
    break;
  case S_EHLO2:
    if (opt.rcpt != NULL)
      send_cmd(c, S_MAIL, "MAIL FROM:<%s>\r\n", opt.from);
    else
      send_cmd(c, S_QUIT, "QUIT\r\n");
    break;
  case S_MAIL:
    send_cmd(c, S_RCPT, "RCPT TO:<%s>\r\n", opt.rcpt);
    break;
  case S_RCPT:
    send_cmd(c, S_DATA, "DATA\r\n");
    break;
  case S_DATA:
    c->obuf = message;
    c->olen = message_len;
    c->opos = 0;
    c->st = S_DOT;
    flush(c);
    break;
  case S_DOT:
    send_cmd(c, S_QUIT, "QUIT\r\n");
    break;
  case S_QUIT:
    if (c->ssl != NULL) {
      SSL_shutdown(c->ssl); /* our close_notify; no wait for theirs */
      ERR_clear_error();
    }
    done_ok++;
    conn_close(c);
    break;
  default:
    fail(c, "reply in an unexpected state");
  }
}

/* Splits c->ibuf into complete replies. */
static void parse(struct conn *c) {
  size_t i = 0, start = 0;

  while (c->st != S_FREE && c->st != S_HANDSHAKE && i < c->ilen) {
    char *nl = memchr(c->ibuf + i, '\n', c->ilen - i);
    size_t ll;
    if (nl == NULL)
      break;
    ll = (size_t)(nl - (c->ibuf + i)) + 1;
    if (ll < 5 || c->ibuf[i + 3] == ' ' || c->ibuf[i + 3] == '\r') {
      /* Last line of a reply. */
      size_t end = i + ll;
      char rep[IBUF];
      size_t rl = end - start;
      memcpy(rep, c->ibuf + start, rl);
      memmove(c->ibuf, c->ibuf + end, c->ilen - end);
      c->ilen -= end;
      i = start = 0;
      if (rl < 5) {
        fail(c, "malformed reply");
        return;
      }
      on_reply(c, rep, rl);
      continue;
    }
    i += ll;
  }
  if (c->st != S_FREE && c->ilen == sizeof(c->ibuf))
    fail(c, "reply too long");
}

static void on_readable(struct conn *c) {
  for (;;) {
    size_t room = sizeof(c->ibuf) - c->ilen;
    if (c->st == S_FREE)
      return;
    if (c->st == S_HANDSHAKE) {
      handshake(c);
      if (c->st == S_HANDSHAKE)
        return; /* waits for more */
      continue;
    }
    if (room == 0) {
      fail(c, "reply too long");
      return;
    }
    if (c->ssl != NULL) {
      int n = SSL_read(c->ssl, c->ibuf + c->ilen, (int)room);
      if (n <= 0) {
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
          return;
        if (e == SSL_ERROR_WANT_WRITE) {
          set_events(c, 1);
          return;
        }
        fail(c, "SSL_read: %s",
             e == SSL_ERROR_ZERO_RETURN ? "server closed (close_notify)"
             : e == SSL_ERROR_SYSCALL   ? "connection closed or reset"
                                        : ssl_err_text());
        return;
      }
      c->ilen += (size_t)n;
    } else {
      ssize_t n = recv(c->fd, c->ibuf + c->ilen, room, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
          return;
        fail(c, "recv: %s", strerror(errno));
        return;
      }
      if (n == 0) {
        fail(c, "connection closed by the server");
        return;
      }
      c->ilen += (size_t)n;
    }
    parse(c);
  }
}

static void on_event(struct conn *c, uint32_t ev) {
  if (c->st == S_CONNECT) {
    int err = 0;
    socklen_t l = sizeof(err);
    if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
      return;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err != 0) {
      fail(c, "connect: %s", strerror(err));
      return;
    }
    c->st = S_GREET;
    set_events(c, 0);
    if (!(ev & EPOLLIN))
      return;
  }
  if ((ev & EPOLLOUT) && c->st != S_FREE) {
    if (c->st == S_HANDSHAKE)
      handshake(c);
    else if (c->opos < c->olen)
      flush(c);
    else
      set_events(c, 0);
  }
  if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->st != S_FREE)
    on_readable(c);
}

static void make_message(void) {
  size_t cap = (size_t)opt.size + 1024, len = 0;
  long left = opt.size, n = 0;

  message = malloc(cap);
  if (message == NULL) {
    perror("malloc");
    exit(2);
  }
  len += (size_t)snprintf(message + len, cap - len,
                          "From: <%s>\r\nTo: <%s>\r\nSubject: tls load\r\n"
                          "\r\n",
                          opt.from, opt.rcpt);
  while (left > 0) {
    char line[96];
    int ll = snprintf(line, sizeof(line), "%ld", ++n);
    while (ll < 80)
      line[ll++] = 'X';
    if (ll > left)
      ll = (int)left;
    memcpy(message + len, line, (size_t)ll);
    len += (size_t)ll;
    memcpy(message + len, "\r\n", 2);
    len += 2;
    left -= ll + 2;
  }
  memcpy(message + len, ".\r\n", 3);
  message_len = len + 3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double p) {
  long n = handshakes < opt.total ? handshakes : opt.total;
  long i;
  if (n == 0)
    return 0;
  i = (long)(p * (double)(n - 1) + 0.5);
  return hs_lat[i] * 1000.0;
}

static int usage(void) {
  fprintf(
      stderr,
      "usage: tls_client [-s SESSIONS] [-m TOTAL] [-l OCTETS] [-t RCPT]\n"
      "                  [-f SENDER] [-H HELO] [-C CIPHER] [-G GROUPS]\n"
      "                  [--ca FILE] [--tls13] [-P] [-T TIMEOUT] HOST:PORT\n");
  return 2;
}

int main(int argc, char **argv) {
  struct conn *conns;
  struct epoll_event evs[256];
  struct rusage ru;
  double t0, t1;
  int i;
  const char *target = NULL;

  opt.conc = 1;
  opt.total = 1;
  opt.size = 1024;
  opt.from = "load@example.net";
  opt.helo = "load.example.net";
  opt.cipher = "ECDHE-ECDSA-AES256-GCM-SHA384";
  opt.groups = "X25519:P-256";
  opt.timeout = 60;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--tls13") == 0) {
      opt.tls13 = 1;
      continue;
    }
    if (strcmp(a, "-P") == 0) {
      opt.plain = 1;
      continue;
    }
    if (a[0] != '-') {
      target = a;
      continue;
    }
    if (v == NULL)
      return usage();
    i++;
    if (strcmp(a, "-s") == 0)
      opt.conc = atoi(v);
    else if (strcmp(a, "-m") == 0)
      opt.total = atol(v);
    else if (strcmp(a, "-l") == 0)
      opt.size = atol(v);
    else if (strcmp(a, "-t") == 0)
      opt.rcpt = v;
    else if (strcmp(a, "-f") == 0)
      opt.from = v;
    else if (strcmp(a, "-H") == 0)
      opt.helo = v;
    else if (strcmp(a, "-C") == 0)
      opt.cipher = v;
    else if (strcmp(a, "-G") == 0)
      opt.groups = v;
    else if (strcmp(a, "--ca") == 0)
      opt.ca = v;
    else if (strcmp(a, "-T") == 0)
      opt.timeout = atof(v);
    else
      return usage();
  }
  if (target == NULL || opt.conc < 1 || opt.conc > 10000 || opt.total < 1 ||
      opt.size < 0 || opt.timeout <= 0)
    return usage();
  {
    const char *colon = strrchr(target, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - target) >= sizeof(host))
      return usage();
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = '\0';
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
      fprintf(stderr, "tls_client: %s: give an IPv4 address\n", host);
      return 2;
    }
  }
  if (opt.conc > opt.total)
    opt.conc = (int)opt.total;

  ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, opt.tls13 ? TLS1_3_VERSION
                                                   : TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx, opt.cipher) != 1 ||
      SSL_CTX_set1_groups_list(ctx, opt.groups) != 1) {
    fprintf(stderr, "tls_client: TLS setup: %s\n", ssl_err_text());
    return 2;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (opt.ca != NULL) {
    if (SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1) {
      fprintf(stderr, "tls_client: %s: %s\n", opt.ca, ssl_err_text());
      return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  if (opt.rcpt != NULL)
    make_message();
  hs_lat = calloc((size_t)opt.total, sizeof(double));
  conns = calloc((size_t)opt.conc, sizeof(*conns));
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (hs_lat == NULL || conns == NULL || ep < 0) {
    perror("tls_client");
    return 2;
  }

  t0 = now();
  for (i = 0; i < opt.conc; i++) {
    conns[i].fd = -1;
    start_conn(&conns[i]);
  }
  for (;;) {
    int n = epoll_wait(ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), 100);
    int active = 0;
    double t;
    for (i = 0; i < n; i++)
      on_event(evs[i].data.ptr, evs[i].events);
    t = now();
    for (i = 0; i < opt.conc; i++) {
      struct conn *c = &conns[i];
      if (c->st != S_FREE && t > c->deadline)
        fail(c, "timeout after %.0f s", opt.timeout);
      if (c->st == S_FREE && started < opt.total)
        start_conn(c);
      if (c->st != S_FREE)
        active++;
    }
    if (active == 0 && started >= opt.total)
      break;
  }
  t1 = now();
  getrusage(RUSAGE_SELF, &ru);
  qsort(hs_lat, (size_t)(handshakes < opt.total ? handshakes : opt.total),
        sizeof(double), cmp_double);
  printf("{\"sessions\": %ld, \"ok\": %ld, \"failed\": %ld, "
         "\"handshakes\": %ld, \"elapsed_s\": %.6f, "
         "\"client_cpu_s\": %.6f, \"hs_ms_p50\": %.3f, \"hs_ms_p90\": %.3f, "
         "\"hs_ms_p99\": %.3f, \"hs_ms_max\": %.3f, \"protocol\": \"%s\", "
         "\"suite\": \"%s\", \"group\": \"%s\"}\n",
         started, done_ok, failed, handshakes, t1 - t0,
         (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
         pct(0.5), pct(0.9), pct(0.99), pct(1.0), first_proto, first_suite,
         first_group);
  SSL_CTX_free(ctx);
  free(conns);
  free(hs_lat);
  free(message);
  close(ep);
  return failed ? 1 : 0;
}
