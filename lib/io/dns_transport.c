/* DNS exchanges over libuv UDP and TCP (see dns_transport.h). */
#include "io/dns_transport.h"

#include "core/mem.h"
#include "maild/error.h"

#include <string.h>

#define DNS_MSG_MAX 65535u

struct maild_dns_xfer {
  uv_loop_t *loop;
  maild_mem mem;
  struct sockaddr_storage *servers;
  size_t nservers;
  uint8_t *query; /* with two spare octets in front for TCP's prefix */
  size_t qlen;
  int tcp;
  uint64_t timeout_ms;
  unsigned tries_left;
  size_t server; /* index of the server of the current try */
  maild_dns_accept_cb accept;
  maild_dns_done_cb done;
  void *ud;
  /* The current try. */
  uv_timer_t timer;
  uv_udp_t *udp;
  uv_tcp_t *tcp_h;
  uv_connect_t creq;
  uv_write_t wreq;
  uint8_t *rbuf; /* UDP datagram, or the TCP message being assembled */
  size_t rlen;
  int finished;
  int cancelled;
  int handles; /* open handles, the timer included */
};

static void start_try(maild_dns_xfer *x);

static void release(maild_dns_xfer *x) {
  if (--x->handles > 0)
    return;
  maild__free(&x->mem, x->servers);
  maild__free(&x->mem, x->query);
  maild__free(&x->mem, x->rbuf);
  maild__free(&x->mem, x);
}

static void on_closed(uv_handle_t *h) {
  maild_dns_xfer *x = h->data;

  maild__free(&x->mem, h);
  release(x);
}

static void on_timer_closed(uv_handle_t *h) {
  release(h->data);
}

/* Closes the current try's socket. */
static void end_try(maild_dns_xfer *x) {
  if (x->udp != NULL) {
    uv_close((uv_handle_t *)x->udp, on_closed);
    x->udp = NULL;
  }
  if (x->tcp_h != NULL) {
    uv_close((uv_handle_t *)x->tcp_h, on_closed);
    x->tcp_h = NULL;
  }
  x->rlen = 0;
}

static void finish(maild_dns_xfer *x, int err) {
  if (x->finished)
    return;
  x->finished = 1;
  end_try(x);
  uv_timer_stop(&x->timer);
  uv_close((uv_handle_t *)&x->timer, on_timer_closed);
  if (!x->cancelled)
    x->done(x->ud, err);
}

static void next_try(maild_dns_xfer *x) {
  end_try(x);
  if (x->tries_left == 0) {
    finish(x, MAILD_ERR_TIMEOUT);
    return;
  }
  x->server = (x->server + 1) % x->nservers;
  start_try(x);
}

static void on_timeout(uv_timer_t *t) {
  next_try(t->data);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  maild_dns_xfer *x = h->data;

  (void)hint;
  if (x->tcp) {
    buf->base = (char *)x->rbuf + x->rlen;
    buf->len = DNS_MSG_MAX + 2 - x->rlen;
  } else {
    buf->base = (char *)x->rbuf;
    buf->len = DNS_MSG_MAX;
  }
}

static int same_addr(const struct sockaddr *a,
                     const struct sockaddr_storage *b) {
  if (a->sa_family != b->ss_family)
    return 0;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
  }
  return 0;
}

static void on_udp(uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
                   const struct sockaddr *from, unsigned flags) {
  maild_dns_xfer *x = h->data;

  (void)buf;
  (void)flags;
  if (x->finished || n <= 0 || from == NULL ||
      !same_addr(from, &x->servers[x->server]))
    return; /* nothing, an error, or not from the server we asked */
  if (x->accept(x->ud, x->rbuf, (size_t)n))
    finish(x, 0);
}

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  maild_dns_xfer *x = s->data;
  size_t want;

  (void)buf;
  if (x->finished)
    return;
  if (n < 0) {
    next_try(x);
    return;
  }
  x->rlen += (size_t)n;
  if (x->rlen < 2)
    return;
  want = ((size_t)x->rbuf[0] << 8 | x->rbuf[1]) + 2;
  if (x->rlen < want)
    return;
  if (x->accept(x->ud, x->rbuf + 2, want - 2))
    finish(x, 0);
  else
    next_try(x); /* a TCP answer that does not match: this server is off */
}

static void on_tcp_written(uv_write_t *req, int status) {
  maild_dns_xfer *x = req->data;

  if (x->finished || status == UV_ECANCELED)
    return;
  if (status != 0)
    next_try(x);
}

static void on_tcp_connect(uv_connect_t *req, int status) {
  maild_dns_xfer *x = req->data;
  uv_buf_t b;

  if (x->finished || status == UV_ECANCELED || x->tcp_h == NULL ||
      req->handle != (uv_stream_t *)x->tcp_h)
    return;
  if (status != 0) {
    next_try(x);
    return;
  }
  b = uv_buf_init((char *)x->query, (unsigned)(x->qlen + 2));
  x->wreq.data = x;
  if (uv_write(&x->wreq, (uv_stream_t *)x->tcp_h, &b, 1, on_tcp_written) != 0 ||
      uv_read_start((uv_stream_t *)x->tcp_h, on_alloc, on_tcp_read) != 0)
    next_try(x);
}

static void start_try(maild_dns_xfer *x) {
  const struct sockaddr *to = (const struct sockaddr *)&x->servers[x->server];
  int rc;

  x->tries_left--;
  x->rlen = 0;
  uv_timer_start(&x->timer, on_timeout, x->timeout_ms, 0);
  if (x->tcp) {
    x->tcp_h = maild__malloc(&x->mem, sizeof(*x->tcp_h));
    if (x->tcp_h == NULL || uv_tcp_init(x->loop, x->tcp_h) != 0) {
      maild__free(&x->mem, x->tcp_h);
      x->tcp_h = NULL;
      return; /* the timer moves on */
    }
    x->tcp_h->data = x;
    x->handles++;
    x->creq.data = x;
    if (uv_tcp_connect(&x->creq, x->tcp_h, to, on_tcp_connect) != 0)
      end_try(x);
    return;
  }
  x->udp = maild__malloc(&x->mem, sizeof(*x->udp));
  if (x->udp == NULL || uv_udp_init(x->loop, x->udp) != 0) {
    maild__free(&x->mem, x->udp);
    x->udp = NULL;
    return;
  }
  x->udp->data = x;
  x->handles++;
  {
    uv_buf_t b = uv_buf_init((char *)x->query + 2, (unsigned)x->qlen);
    rc = uv_udp_try_send(x->udp, &b, 1, to);
    if (rc < 0 || uv_udp_recv_start(x->udp, on_alloc, on_udp) != 0)
      end_try(x); /* the timer moves on to the next server */
  }
}

int maild__dns_xfer_start(maild_dns_xfer **out, uv_loop_t *loop,
                          const struct sockaddr_storage *servers,
                          size_t nservers, const uint8_t *query, size_t qlen,
                          int tcp, uint64_t timeout_ms, unsigned tries,
                          maild_dns_accept_cb accept, maild_dns_done_cb done,
                          void *ud, const maild_mem *mem) {
  maild_mem m;
  maild_dns_xfer *x;

  if (out == NULL || loop == NULL || servers == NULL || nservers == 0 ||
      query == NULL || qlen == 0 || qlen > DNS_MSG_MAX || accept == NULL ||
      done == NULL || tries == 0)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  x = maild__calloc(&m, 1, sizeof(*x));
  if (x == NULL)
    return MAILD_ERR_NOMEM;
  x->mem = m;
  x->servers = maild__calloc(&m, nservers, sizeof(*servers));
  x->query = maild__malloc(&m, qlen + 2);
  x->rbuf = maild__malloc(&m, DNS_MSG_MAX + 2);
  if (x->servers == NULL || x->query == NULL || x->rbuf == NULL) {
    maild__free(&m, x->servers);
    maild__free(&m, x->query);
    maild__free(&m, x->rbuf);
    maild__free(&m, x);
    return MAILD_ERR_NOMEM;
  }
  memcpy(x->servers, servers, nservers * sizeof(*servers));
  x->query[0] = (uint8_t)(qlen >> 8);
  x->query[1] = (uint8_t)qlen;
  memcpy(x->query + 2, query, qlen);
  x->loop = loop;
  x->nservers = nservers;
  x->qlen = qlen;
  x->tcp = tcp;
  x->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
  x->tries_left = tries * (unsigned)nservers;
  x->accept = accept;
  x->done = done;
  x->ud = ud;
  uv_timer_init(loop, &x->timer);
  x->timer.data = x;
  x->handles = 1;
  start_try(x);
  *out = x;
  return 0;
}

void maild__dns_xfer_cancel(maild_dns_xfer *x) {
  if (x == NULL || x->finished)
    return;
  x->cancelled = 1;
  finish(x, MAILD_ERR_IO);
}
