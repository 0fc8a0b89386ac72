/*
 * send_one: sends one message to one address, the way a mail server
 * would, with only the MX resolver and the SMTP client engine of libmaild
 * on a libuv loop.
 *
 *   send_one [-s DNS-SERVER] [-p PORT] [-H HELO] FROM TO FILE
 *   send_one [-s DNS-SERVER] [-S SELF] -m DOMAIN   (where its mail goes)
 *   send_one [-s DNS-SERVER] -a HOST               (a host's addresses)
 *
 * The resolver finds the recipient domain's mail hosts (MX by preference,
 * or the domain itself); each address is tried in turn until one takes
 * the message or refuses it for good. FILE is the message (any line
 * ends: the engine sends CRLF and dot-stuffs). The exit status is 0 when
 * the recipient was accepted, 1 on a permanent failure, 2 on a temporary
 * one (try later), 3 on bad usage.
 */
#include <maild/maild.h>
#include <maild/resolver.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

typedef struct app {
  uv_loop_t *loop;
  const char *from, *to, *helo;
  unsigned port;
  uint8_t *msg; /* the message file */
  size_t msg_len, msg_pos;
  maild_mx_target *targets; /* copied from the resolver's answer */
  size_t ntargets, next;
  uv_tcp_t tcp;
  uv_connect_t creq;
  maild_smtp_client *c;
  int status; /* exit status so far */
  char last[512];
} app;

static void try_next(app *a);

/* ---- The SMTP client engine's callbacks ---- */

static void on_ready(maild_smtp_client *c, void *ud) {
  app *a = ud;
  maild_smtp_client_rcpt rcpt = {a->to, NULL, NULL};
  maild_smtp_client_message m;

  if (a->status != 2) { /* the message is done: say goodbye */
    maild_smtp_client_quit(c);
    return;
  }
  memset(&m, 0, sizeof(m));
  m.from = a->from;
  m.rcpts = &rcpt;
  m.nrcpts = 1;
  m.size = a->msg_len;
  a->msg_pos = 0;
  if (maild_smtp_client_submit(c, &m) != 0)
    maild_smtp_client_quit(c);
}

static int on_read(maild_smtp_client *c, uint8_t *buf, size_t cap, size_t *len,
                   void *ud) {
  app *a = ud;
  size_t n = a->msg_len - a->msg_pos;

  (void)c;
  if (n > cap)
    n = cap;
  memcpy(buf, a->msg + a->msg_pos, n);
  a->msg_pos += n;
  *len = n;
  return 0;
}

static void on_rcpt(maild_smtp_client *c, size_t i,
                    const maild_smtp_client_reply *r, void *ud) {
  app *a = ud;

  (void)c;
  (void)i;
  snprintf(a->last, sizeof(a->last), "%d %.*s", r->code, (int)r->text_len,
           r->text);
  a->status = r->code < 300 ? 0 : r->code >= 500 ? 1 : 2;
}

static void on_message(maild_smtp_client *c, const maild_smtp_client_reply *r,
                       void *ud) {
  (void)c;
  (void)r;
  (void)ud;
}

static const maild_smtp_client_callbacks client_cb = {on_ready, NULL, on_read,
                                                      on_rcpt, on_message};

/* ---- The connection ---- */

static void pump(app *a);

static void on_written(uv_write_t *req, int status) {
  free(req->data);
  free(req);
  (void)status;
}

static void on_closed(uv_handle_t *h) {
  app *a = h->data;

  maild_smtp_client_del(a->c);
  a->c = NULL;
  if (a->status == 2) /* this host could not take it: the next one */
    try_next(a);
}

static void pump(app *a) {
  const uint8_t *p;
  maild_ssize n;

  while ((n = maild_smtp_client_send(a->c, &p)) > 0) {
    uv_write_t *req = malloc(sizeof(*req));
    char *copy = malloc((size_t)n);
    uv_buf_t b;
    if (req == NULL || copy == NULL) {
      free(req);
      free(copy);
      maild_smtp_client_terminate(a->c, 451, "4.3.0", "out of memory");
      break;
    }
    memcpy(copy, p, (size_t)n);
    req->data = copy;
    b = uv_buf_init(copy, (unsigned)n);
    uv_write(req, (uv_stream_t *)&a->tcp, &b, 1, on_written);
  }
  if (maild_smtp_client_get_phase(a->c) == MAILD_SMTP_CLIENT_CLOSED &&
      !uv_is_closing((uv_handle_t *)&a->tcp))
    uv_close((uv_handle_t *)&a->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static char space[65536];

  (void)h;
  (void)hint;
  buf->base = space;
  buf->len = sizeof(space);
}

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  app *a = s->data;

  if (n < 0)
    maild_smtp_client_terminate(a->c, 451, "4.4.2", "connection lost");
  else if (n > 0)
    maild_smtp_client_recv(a->c, (const uint8_t *)buf->base, (size_t)n);
  pump(a);
}

static void on_connect(uv_connect_t *req, int status) {
  app *a = req->data;

  if (status != 0) {
    snprintf(a->last, sizeof(a->last), "connect: %s", uv_strerror(status));
    maild_smtp_client_terminate(a->c, 451, "4.4.1", a->last);
    pump(a);
    return;
  }
  uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_tcp_read);
  pump(a);
}

static void try_next(app *a) {
  maild_options *opt;
  struct sockaddr_storage ss;
  char host[64];

  if (a->next >= a->ntargets) {
    fprintf(stderr, "send_one: no mail host took it%s%s\n",
            a->last[0] ? ": " : "", a->last);
    return; /* the loop ends; status stays 2 */
  }
  ss = a->targets[a->next++].addr;
  if (ss.ss_family == AF_INET6) {
    ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)a->port);
    uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
  } else {
    ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)a->port);
    uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
  }
  fprintf(stderr, "send_one: trying %s port %u\n", host, a->port);
  if (maild_options_new(&opt, NULL) != 0)
    return;
  maild_options_set_string(opt, MAILD_OPT_HOSTNAME, a->helo);
  if (maild_smtp_client_new(&a->c, &client_cb, a, opt, NULL) != 0) {
    maild_options_del(opt);
    return;
  }
  maild_options_del(opt);
  uv_tcp_init(a->loop, &a->tcp);
  a->tcp.data = a;
  a->creq.data = a;
  if (uv_tcp_connect(&a->creq, &a->tcp, (struct sockaddr *)&ss, on_connect) !=
      0) {
    maild_smtp_client_terminate(a->c, 451, "4.4.1", "cannot connect");
    uv_close((uv_handle_t *)&a->tcp, on_closed);
  }
}

/* ---- Resolution ---- */

static void print_targets(const maild_mx_result *res) {
  size_t i;

  if (res->ntargets == 0) {
    printf("%s %s %s\n", res->permanent ? "permanent" : "temporary",
           res->enhanced, res->text);
    return;
  }
  for (i = 0; i < res->ntargets; i++) {
    char host[64];
    const maild_mx_target *t = &res->targets[i];
    if (t->addr.ss_family == AF_INET6)
      uv_ip6_name((const struct sockaddr_in6 *)&t->addr, host, sizeof(host));
    else
      uv_ip4_name((const struct sockaddr_in *)&t->addr, host, sizeof(host));
    printf("%u %s %s\n", t->pref, t->host, host);
  }
}

static void on_mx_print(void *ud, const maild_mx_result *res) {
  app *a = ud;

  print_targets(res);
  a->status = res->ntargets > 0 ? 0 : res->permanent ? 1 : 2;
}

static void on_mx(void *ud, const maild_mx_result *res) {
  app *a = ud;

  if (res->ntargets == 0) {
    fprintf(stderr, "send_one: %s %s\n", res->enhanced, res->text);
    a->status = res->permanent ? 1 : 2;
    return;
  }
  a->targets = malloc(res->ntargets * sizeof(*a->targets));
  if (a->targets == NULL)
    return;
  memcpy(a->targets, res->targets, res->ntargets * sizeof(*a->targets));
  a->ntargets = res->ntargets;
  try_next(a);
}

static int read_file(app *a, const char *path) {
  FILE *f = fopen(path, "rb");
  long n;

  if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    if (f != NULL)
      fclose(f);
    return -1;
  }
  a->msg = malloc((size_t)n + 1);
  if (a->msg == NULL || fread(a->msg, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    return -1;
  }
  fclose(f);
  a->msg_len = (size_t)n;
  return 0;
}

int main(int argc, char **argv) {
  const char *servers[1], *self[1], *mx_only = NULL, *host_only = NULL, *at;
  maild_resolver_config rc;
  maild_resolver *r;
  app a;
  int opt, err;

  memset(&a, 0, sizeof(a));
  memset(&rc, 0, sizeof(rc));
  a.port = 25;
  a.helo = "localhost";
  a.status = 2;
  while ((opt = getopt(argc, argv, "s:S:p:H:m:a:")) != -1) {
    switch (opt) {
    case 's':
      servers[0] = optarg;
      rc.servers = servers;
      rc.nservers = 1;
      break;
    case 'S': /* this host's name: an MX naming it is a loop */
      self[0] = optarg;
      rc.self = self;
      rc.nself = 1;
      break;
    case 'p':
      a.port = (unsigned)atoi(optarg);
      break;
    case 'H':
      a.helo = optarg;
      break;
    case 'm':
      mx_only = optarg;
      break;
    case 'a':
      host_only = optarg;
      break;
    default:
      return 3;
    }
  }
  if (mx_only == NULL && host_only == NULL && argc - optind != 3) {
    fprintf(stderr, "usage: send_one [-s DNS] [-p PORT] [-H HELO] FROM TO "
                    "FILE\n       send_one [-s DNS] [-S SELF] -m DOMAIN\n");
    return 3;
  }
  a.loop = uv_default_loop();
  if (maild_resolver_new(&r, a.loop, &rc, NULL) != 0) {
    fprintf(stderr, "send_one: no usable name server\n");
    return 2;
  }
  if (mx_only != NULL) {
    err = maild_resolver_mx(r, mx_only, on_mx_print, &a);
  } else if (host_only != NULL) {
    err = maild_resolver_host(r, host_only, on_mx_print, &a);
  } else {
    a.from = argv[optind];
    a.to = argv[optind + 1];
    at = strrchr(a.to, '@');
    if (at == NULL || read_file(&a, argv[optind + 2]) != 0) {
      fprintf(stderr, "send_one: bad recipient or unreadable file\n");
      return 3;
    }
    err = maild_resolver_mx(r, at + 1, on_mx, &a);
  }
  if (err != 0) {
    fprintf(stderr, "send_one: %s\n", maild_strerror(err));
    return 3;
  }
  uv_run(a.loop, UV_RUN_DEFAULT);
  maild_resolver_close(r);
  uv_run(a.loop, UV_RUN_DEFAULT);
  if (mx_only == NULL && host_only == NULL)
    fprintf(stderr, "send_one: %s: %s\n",
            a.status == 0   ? "sent"
            : a.status == 1 ? "refused"
                            : "deferred",
            a.last);
  free(a.targets);
  free(a.msg);
  return a.status;
}
