/*
 * pop3_load -- POP3 retrieval load generator (OpenSSL), for pop3_load.py.
 *
 * Runs -s sessions in parallel (one thread each, blocking sockets). Each
 * session: connect, TLS (implicit, pop3s; full handshake, no resumption,
 * no tickets; or -P plaintext, or -S STLS), +OK greeting, USER/PASS, then
 * RETR 1..M with up to -w commands in flight (pipelined; -w 1 is
 * sequential), QUIT. User names are -u with "%d" replaced by the session
 * number (e.g. "u%d@example.test"), or the same user for all sessions.
 *
 * Every RETR reply is checked: +OK, then the multi-line body up to
 * ".\r\n"; the body's octets (dot-unstuffed, CRLF line ends) are counted
 * and, with -l N, must equal N.
 *
 * Prints one JSON object: sessions ok/failed, messages, octets, elapsed
 * seconds (first connect to last QUIT reply), msgs/s, client CPU.
 * Exit 1 when anything failed.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct {
  const char *host, *user, *pass, *cipher;
  int port, conc, msgs, window, plain, stls;
  long size;
} opt = {"127.0.0.1",
         "u%d@example.test",
         "bench-password",
         "ECDHE-ECDSA-AES256-GCM-SHA384",
         0,
         1,
         100,
         16,
         0,
         0,
         -1};

static SSL_CTX *ctx;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long tot_msgs, tot_octets, sess_ok, sess_fail;
static int printed;

struct sess {
  int id, fd;
  SSL *ssl;
  char buf[65536];
  size_t pos, len;
  char err[256];
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fill(struct sess *s) {
  int n;
  if (s->pos > 0 && s->pos == s->len)
    s->pos = s->len = 0;
  if (s->len == sizeof(s->buf)) {
    memmove(s->buf, s->buf + s->pos, s->len - s->pos);
    s->len -= s->pos;
    s->pos = 0;
  }
  if (s->ssl) {
    n = SSL_read(s->ssl, s->buf + s->len, (int)(sizeof(s->buf) - s->len));
    if (n <= 0) {
      snprintf(s->err, sizeof(s->err), "SSL_read failed (%d)",
               SSL_get_error(s->ssl, n));
      return -1;
    }
  } else {
    ssize_t r = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, 0);
    if (r <= 0) {
      snprintf(s->err, sizeof(s->err), "recv: %s",
               r == 0 ? "connection closed" : strerror(errno));
      return -1;
    }
    n = (int)r;
  }
  s->len += (size_t)n;
  return 0;
}

/* One line (with CRLF) into *line and *ll; valid until the next call. */
static int getline_(struct sess *s, const char **line, size_t *ll) {
  for (;;) {
    char *nl = memchr(s->buf + s->pos, '\n', s->len - s->pos);
    if (nl) {
      *line = s->buf + s->pos;
      *ll = (size_t)(nl - *line) + 1;
      s->pos += *ll;
      return 0;
    }
    if (s->pos > 0) {
      memmove(s->buf, s->buf + s->pos, s->len - s->pos);
      s->len -= s->pos;
      s->pos = 0;
    }
    if (s->len == sizeof(s->buf)) {
      snprintf(s->err, sizeof(s->err), "line too long");
      return -1;
    }
    if (fill(s) < 0)
      return -1;
  }
}

static int put(struct sess *s, const char *p, size_t n) {
  while (n > 0) {
    if (s->ssl) {
      int w = SSL_write(s->ssl, p, (int)n);
      if (w <= 0) {
        snprintf(s->err, sizeof(s->err), "SSL_write failed");
        return -1;
      }
      p += w, n -= (size_t)w;
    } else {
      ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
      if (w < 0) {
        snprintf(s->err, sizeof(s->err), "send: %s", strerror(errno));
        return -1;
      }
      p += w, n -= (size_t)w;
    }
  }
  return 0;
}

static int ok_line(struct sess *s, const char *what) {
  const char *l;
  size_t ll;
  if (getline_(s, &l, &ll) < 0)
    return -1;
  if (ll < 3 || strncmp(l, "+OK", 3) != 0) {
    snprintf(s->err, sizeof(s->err), "%s: %.*s", what,
             (int)(ll > 150 ? 150 : ll), l);
    return -1;
  }
  return 0;
}

static int start_tls(struct sess *s) {
  s->ssl = SSL_new(ctx);
  if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1 || SSL_connect(s->ssl) != 1) {
    snprintf(s->err, sizeof(s->err), "TLS handshake: %s",
             ERR_error_string(ERR_get_error(), NULL));
    return -1;
  }
  return 0;
}

static int session(struct sess *s, long *msgs, long *octets) {
  struct sockaddr_in a;
  char cmd[512], user[256];
  int one = 1, sent = 0, got = 0, n;
  const char *l;
  size_t ll;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)opt.port);
  inet_pton(AF_INET, opt.host, &a.sin_addr);
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    snprintf(s->err, sizeof(s->err), "connect: %s", strerror(errno));
    return -1;
  }
  if (!opt.plain && !opt.stls && start_tls(s) < 0)
    return -1;
  if (ok_line(s, "greeting") < 0)
    return -1;
  if (opt.stls) {
    if (put(s, "STLS\r\n", 6) < 0 || ok_line(s, "STLS") < 0)
      return -1;
    if (s->pos != s->len) {
      snprintf(s->err, sizeof(s->err), "data after STLS reply");
      return -1;
    }
    if (start_tls(s) < 0)
      return -1;
  }
  { /* -u: "%d" in the template is the session number */
    const char *pct = strstr(opt.user, "%d");
    if (pct != NULL)
      snprintf(user, sizeof(user), "%.*s%d%s", (int)(pct - opt.user), opt.user,
               s->id, pct + 2);
    else
      snprintf(user, sizeof(user), "%s", opt.user);
  }
  n = snprintf(cmd, sizeof(cmd), "USER %s\r\n", user);
  if (put(s, cmd, (size_t)n) < 0 || ok_line(s, "USER") < 0)
    return -1;
  n = snprintf(cmd, sizeof(cmd), "PASS %s\r\n", opt.pass);
  if (put(s, cmd, (size_t)n) < 0 || ok_line(s, "PASS") < 0)
    return -1;
  while (got < opt.msgs) {
    /* Top the window up: all commands that fit go in one write. */
    size_t cl = 0;
    while (sent < opt.msgs && sent - got < opt.window &&
           cl + 32 < sizeof(cmd)) {
      cl += (size_t)snprintf(cmd + cl, sizeof(cmd) - cl, "RETR %d\r\n", ++sent);
    }
    if (cl > 0 && put(s, cmd, cl) < 0)
      return -1;
    /* One reply. */
    if (ok_line(s, "RETR") < 0)
      return -1;
    long body = 0;
    for (;;) {
      if (getline_(s, &l, &ll) < 0)
        return -1;
      if (ll == 3 && l[0] == '.' && l[1] == '\r')
        break;
      if (l[0] == '.')
        body += (long)ll - 1;
      else
        body += (long)ll;
    }
    got++;
    if (opt.size >= 0 && body != opt.size) {
      snprintf(s->err, sizeof(s->err), "RETR %d: %ld octets, expected %ld", got,
               body, opt.size);
      return -1;
    }
    *msgs += 1;
    *octets += body;
  }
  if (put(s, "QUIT\r\n", 6) < 0 || ok_line(s, "QUIT") < 0)
    return -1;
  if (s->ssl)
    SSL_shutdown(s->ssl);
  return 0;
}

static void *run(void *arg) {
  struct sess *s = calloc(1, sizeof(*s));
  long m = 0, o = 0;
  int rc;
  s->id = (int)(long)arg;
  s->fd = -1;
  rc = session(s, &m, &o);
  pthread_mutex_lock(&mu);
  tot_msgs += m;
  tot_octets += o;
  if (rc == 0)
    sess_ok++;
  else {
    sess_fail++;
    if (printed++ < 10)
      fprintf(stderr, "pop3_load: session %d: %s\n", s->id, s->err);
  }
  pthread_mutex_unlock(&mu);
  if (s->ssl)
    SSL_free(s->ssl);
  if (s->fd >= 0)
    close(s->fd);
  free(s);
  return NULL;
}

static void usage(void) {
  fprintf(stderr,
          "usage: pop3_load -p PORT [-h HOST] [-s SESSIONS] [-m MSGS] "
          "[-w WINDOW] [-l SIZE] [-u USERFMT] [-k PASS] [-P|-S] [-C CIPHER]\n");
  exit(2);
}

int main(int argc, char **argv) {
  int c;
  pthread_t *th;
  double t0, t1;
  struct rusage ru;

  while ((c = getopt(argc, argv, "h:p:s:m:w:l:u:k:PSC:")) != -1) {
    switch (c) {
    case 'h':
      opt.host = optarg;
      break;
    case 'p':
      opt.port = atoi(optarg);
      break;
    case 's':
      opt.conc = atoi(optarg);
      break;
    case 'm':
      opt.msgs = atoi(optarg);
      break;
    case 'w':
      opt.window = atoi(optarg);
      break;
    case 'l':
      opt.size = atol(optarg);
      break;
    case 'u':
      opt.user = optarg;
      break;
    case 'k':
      opt.pass = optarg;
      break;
    case 'P':
      opt.plain = 1;
      break;
    case 'S':
      opt.stls = 1;
      break;
    case 'C':
      opt.cipher = optarg;
      break;
    default:
      usage();
    }
  }
  if (opt.port <= 0 || opt.conc <= 0 || opt.msgs <= 0 || opt.window <= 0)
    usage();
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx, opt.cipher);
  SSL_CTX_set1_groups_list(ctx, "X25519:P-256");
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  th = calloc((size_t)opt.conc, sizeof(*th));
  t0 = now();
  for (c = 0; c < opt.conc; c++)
    pthread_create(&th[c], NULL, run, (void *)(long)c);
  for (c = 0; c < opt.conc; c++)
    pthread_join(th[c], NULL);
  t1 = now();
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"sessions_ok\": %ld, \"sessions_failed\": %ld, \"messages\": %ld, "
         "\"octets\": %ld, \"elapsed\": %.4f, \"msgs_per_s\": %.1f, "
         "\"client_cpu\": %.3f}\n",
         sess_ok, sess_fail, tot_msgs, tot_octets, t1 - t0,
         (double)tot_msgs / (t1 - t0),
         (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
             (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
  return sess_fail ? 1 : 0;
}
