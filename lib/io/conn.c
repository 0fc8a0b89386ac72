/*
 * TCP connections on libuv (see conn.h). Writes first try uv_try_write,
 * which on a loopback or an idle socket sends a reply with no copy and no
 * callback; what does not fit waits in `wq` and leaves in one uv_write
 * from `wf` when the previous write completed. Closing closes the socket
 * and the timer; the last close callback frees everything (libuv's rule:
 * memory of a handle is reused only after its close callback).
 */
#include "io/conn.h"

#include "core/mem.h"
#include "io/tls.h"
#include "maild/error.h"

#include <string.h>

/* How long the last output may take to leave once closing began. */
#define FLUSH_TIMEOUT_MS 10000
#define WRITE_MAX        (64u * 1024u * 1024u)

struct maild_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  uv_work_t hs_req; /* a handshake step on the worker pool */
  uv_connect_t creq;
  maild_mem mem;
  maild_conn_cb cb;
  void *ud;
  maild_buf wq; /* queued output */
  maild_buf wf; /* output in flight */
  int writing;
  int reading;    /* the protocol wants input */
  int uv_reading; /* libuv is reading */
  int closing;
  int close_after_flush;
  int handles_open; /* and handshake steps in flight */
  char peer[64];
  maild_tls *tls;  /* NULL: plaintext */
  int tls_ready;   /* handshake done */
  int tls_failed;  /* handshake or record failed: no more input */
  int hs_busy;     /* a worker runs a handshake step: hands off `tls` */
  int hs_rc;       /* its result */
  int stash_lost;  /* input arriving meanwhile could not be kept */
  maild_buf stash; /* ciphertext that arrived while hs_busy */
  maild_buf early; /* plaintext written before the handshake completed */
  maild_buf held;  /* written while corked */
  int corked;
  maild_conn_scratch *scratch; /* shared read and plaintext buffers */
};

/* One handle closed or one handshake step returned after closing began:
   the last one frees the connection. */
static void release(maild_conn *c) {
  if (--c->handles_open > 0)
    return;
  if (c->cb.on_close != NULL)
    c->cb.on_close(c, c->ud);
  maild__tls_del(c->tls);
  maild__buf_free(&c->early, &c->mem);
  maild__buf_free(&c->held, &c->mem);
  maild__buf_free(&c->stash, &c->mem);
  maild__buf_free(&c->wq, &c->mem);
  maild__buf_free(&c->wf, &c->mem);
  maild__free(&c->mem, c);
}

static void on_handle_closed(uv_handle_t *h) {
  release(h->data);
}

static void on_timer(uv_timer_t *t) {
  maild_conn *c = t->data;

  if (c->closing)
    return;
  if (c->close_after_flush) {
    maild__conn_close(c); /* the peer would not take the last octets */
    return;
  }
  if (c->cb.on_timeout != NULL)
    c->cb.on_timeout(c, c->ud);
}

int maild__conn_new(maild_conn **out, uv_loop_t *loop, const maild_conn_cb *cb,
                    void *ud, maild_conn_scratch *scratch,
                    const maild_mem *mem) {
  maild_mem m;
  maild_conn *c;

  maild__mem_init(&m, mem);
  c = maild__calloc(&m, 1, sizeof(*c));
  if (c == NULL)
    return MAILD_ERR_NOMEM;
  c->mem = m;
  c->cb = *cb;
  c->ud = ud;
  c->scratch = scratch;
  maild__buf_init(&c->wq, WRITE_MAX);
  maild__buf_init(&c->wf, WRITE_MAX);
  maild__buf_init(&c->early, WRITE_MAX);
  maild__buf_init(&c->held, WRITE_MAX);
  maild__buf_init(&c->stash, MAILD_CONN_READ_BUF); /* reads pause meanwhile */
  if (uv_tcp_init(loop, &c->tcp) != 0) {
    maild__free(&m, c);
    return MAILD_ERR_IO;
  }
  uv_timer_init(loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->handles_open = 2;
  *out = c;
  return 0;
}

void maild__conn_rebind(maild_conn *c, const maild_conn_cb *cb, void *ud) {
  c->cb = *cb;
  c->ud = ud;
}

uv_stream_t *maild__conn_stream(maild_conn *c) {
  return (uv_stream_t *)&c->tcp;
}

static void peer_name(maild_conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);

  c->peer[0] = '\0';
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
    return;
  if (ss.ss_family == AF_INET)
    uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
  else if (ss.ss_family == AF_INET6)
    uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof(c->peer));
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  maild_conn *c = h->data;

  (void)hint;
  buf->base = (char *)c->scratch->rbuf;
  buf->len = sizeof(c->scratch->rbuf);
}

static void tls_input(maild_conn *c, const uint8_t *data, size_t len);

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  maild_conn *c = st->data;

  (void)buf;
  if (c->closing || n == 0)
    return;
  if (n < 0) {
    maild__conn_read(c, 0);
    if (c->cb.on_eof != NULL)
      c->cb.on_eof(c, n == UV_EOF ? 0 : MAILD_ERR_IO, c->ud);
    return;
  }
  if (c->tls != NULL)
    tls_input(c, c->scratch->rbuf, (size_t)n);
  else
    c->cb.on_read(c, c->scratch->rbuf, (size_t)n, c->ud);
}

int maild__conn_start(maild_conn *c) {
  uv_tcp_nodelay(&c->tcp, 1);
  peer_name(c);
  c->reading = c->uv_reading = 1;
  return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0
             ? 0
             : MAILD_ERR_IO;
}

static void on_connected(uv_connect_t *req, int status) {
  maild_conn *c = req->data;

  if (c->closing)
    return;
  if (status == 0 && maild__conn_start(c) != 0)
    status = -1;
  if (c->cb.on_connect != NULL)
    c->cb.on_connect(c, status == 0 ? 0 : MAILD_ERR_IO, c->ud);
}

int maild__conn_connect(maild_conn *c, const struct sockaddr *addr) {
  c->creq.data = c;
  if (uv_tcp_connect(&c->creq, &c->tcp, addr, on_connected) != 0)
    return MAILD_ERR_IO;
  return 0;
}

/* Reads while the protocol wants input and no handshake step is away. */
static void sync_read(maild_conn *c) {
  int want = c->reading && !c->hs_busy;

  if (c->closing || want == c->uv_reading)
    return;
  c->uv_reading = want;
  if (want)
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  else
    uv_read_stop((uv_stream_t *)&c->tcp);
}

void maild__conn_read(maild_conn *c, int on) {
  if (c->closing)
    return;
  c->reading = on;
  sync_read(c);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  maild__conn_close(req->data);
}

static void flush_done(maild_conn *c) {
  if (c->close_after_flush) {
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
      maild__conn_close(c);
    return;
  }
  if (c->cb.on_drain != NULL)
    c->cb.on_drain(c, c->ud);
}

static void start_write(maild_conn *c);

static void on_write(uv_write_t *req, int status) {
  maild_conn *c = req->data;

  c->writing = 0;
  maild__buf_clear(&c->wf);
  if (c->closing)
    return;
  if (status != 0) {
    if (c->cb.on_eof != NULL)
      c->cb.on_eof(c, MAILD_ERR_IO, c->ud);
    return;
  }
  if (maild__buf_used(&c->wq) > 0)
    start_write(c);
  else
    flush_done(c);
}

static void start_write(maild_conn *c) {
  maild_buf t = c->wf;
  uv_buf_t b;

  c->wf = c->wq;
  c->wq = t;
  b.base = (char *)maild__buf_peek(&c->wf);
  b.len = maild__buf_used(&c->wf);
  c->wreq.data = c;
  c->writing = 1;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
    c->writing = 0;
    if (c->cb.on_eof != NULL)
      c->cb.on_eof(c, MAILD_ERR_IO, c->ud);
  }
}

/* Octets onto the socket, as they are. */
static int raw_write(maild_conn *c, const uint8_t *data, size_t len) {
  int err;

  if (c->closing)
    return MAILD_ERR_IO;
  if (len == 0)
    return 0;
  if (!c->writing && maild__buf_used(&c->wq) == 0) {
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)len)
      return 0;
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      return MAILD_ERR_IO;
    }
  }
  err = maild__buf_append(&c->wq, &c->mem, data, len);
  if (err != 0)
    return err;
  if (!c->writing)
    start_write(c);
  return 0;
}

/* Moves the TLS session's ciphertext onto the socket. */
static int tls_flush(maild_conn *c) {
  const uint8_t *p;
  maild_ssize n;

  while ((n = maild__tls_output(c->tls, &p)) > 0) {
    int err = raw_write(c, p, (size_t)n);
    maild__tls_consume(c->tls, (size_t)n);
    if (err != 0)
      return err;
  }
  return 0;
}

/* Encrypts plaintext onto the socket (the handshake is done): records
   gather in the session's output until it is full, then leave together. */
static int tls_send(maild_conn *c, const uint8_t *data, size_t len) {
  while (len > 0) {
    maild_ssize n = maild__tls_write(c->tls, data, len);
    if (n == MAILD_ERR_AGAIN) {
      int err = tls_flush(c);
      if (err != 0)
        return err;
      continue;
    }
    if (n < 0)
      return MAILD_ERR_IO;
    data += n;
    len -= (size_t)n;
  }
  return tls_flush(c);
}

static int conn_send(maild_conn *c, const uint8_t *data, size_t len) {
  if (c->tls == NULL)
    return raw_write(c, data, len);
  if (c->tls_failed)
    return MAILD_ERR_IO;
  if (!c->tls_ready)
    return maild__buf_append(&c->early, &c->mem, data, len);
  return tls_send(c, data, len);
}

int maild__conn_write(maild_conn *c, const uint8_t *data, size_t len) {
  if (c->closing)
    return MAILD_ERR_IO;
  if (c->corked)
    return maild__buf_append(&c->held, &c->mem, data, len);
  return conn_send(c, data, len);
}

void maild__conn_cork(maild_conn *c) {
  c->corked = 1;
}

int maild__conn_uncork(maild_conn *c) {
  int err;

  if (!c->corked)
    return 0;
  c->corked = 0;
  if (c->closing || maild__buf_used(&c->held) == 0) {
    maild__buf_clear(&c->held);
    return c->closing ? MAILD_ERR_IO : 0;
  }
  err = conn_send(c, maild__buf_peek(&c->held), maild__buf_used(&c->held));
  maild__buf_clear(&c->held);
  return err;
}

size_t maild__conn_pending(const maild_conn *c) {
  return maild__buf_used(&c->wq) + maild__buf_used(&c->wf) +
         maild__buf_used(&c->early) + maild__buf_used(&c->held);
}

int maild__conn_tls_start(maild_conn *c, struct maild_tls *tls) {
  if (c->tls != NULL || c->closing)
    return MAILD_ERR_STATE;
  c->tls = tls;
  return 0;
}

static int tls_stepped(maild_conn *c, int rc);
static int hs_start(maild_conn *c);

int maild__conn_tls_connect(maild_conn *c, struct maild_tls *tls) {
  int err = maild__conn_tls_start(c, tls);

  if (err != 0)
    return err;
  if (hs_start(c) != 0)
    tls_stepped(c, maild__tls_handshake(c->tls));
  return 0;
}

const char *maild__conn_tls_info(const maild_conn *c) {
  return c->tls != NULL && c->tls_ready ? maild__tls_info(c->tls) : NULL;
}

int maild__conn_tls_resumed(const maild_conn *c) {
  return c->tls != NULL && c->tls_ready && maild__tls_resumed(c->tls);
}

const char *maild__conn_tls_error(const maild_conn *c) {
  return c->tls != NULL ? maild__tls_error(c->tls) : "";
}

/* The handshake failed or a record was bad: send any alert, then stop. */
static void tls_fail(maild_conn *c, int err) {
  int was_ready = c->tls_ready;

  c->tls_failed = 1;
  tls_flush(c);
  maild__conn_read(c, 0);
  if (!was_ready && c->cb.on_tls != NULL)
    c->cb.on_tls(c, err, c->ud);
  else if (c->cb.on_eof != NULL)
    c->cb.on_eof(c, err == MAILD_ERR_CLOSED ? 0 : MAILD_ERR_IO, c->ud);
}

/* Acts on a handshake step's result `rc` (its output goes out first);
   returns 1 when the handshake just completed, 0 to wait, -1 on failure
   (reported). */
static int tls_stepped(maild_conn *c, int rc) {
  if (tls_flush(c) != 0) {
    tls_fail(c, MAILD_ERR_IO);
    return -1;
  }
  if (rc == MAILD_ERR_AGAIN)
    return 0;
  if (rc != 0) {
    tls_fail(c, rc);
    return -1;
  }
  c->tls_ready = 1;
  if (c->cb.on_tls != NULL)
    c->cb.on_tls(c, 0, c->ud);
  if (c->closing || c->tls_failed)
    return -1;
  /* What was written while the handshake ran goes out now. */
  if (maild__buf_used(&c->early) > 0) {
    int err =
        tls_send(c, maild__buf_peek(&c->early), maild__buf_used(&c->early));
    maild__buf_clear(&c->early);
    if (err != 0) {
      tls_fail(c, MAILD_ERR_IO);
      return -1;
    }
  }
  return 1;
}

/* Hands every decrypted octet to the protocol. Returns -1 when the
   connection ended. */
static int tls_deliver(maild_conn *c) {
  for (;;) {
    maild_ssize n =
        maild__tls_read(c->tls, c->scratch->plain, sizeof(c->scratch->plain));
    if (n == MAILD_ERR_AGAIN) {
      /* Reading may have queued records for the peer, such as the
         no_renegotiation alert: send them. */
      if (tls_flush(c) != 0) {
        tls_fail(c, MAILD_ERR_IO);
        return -1;
      }
      return 0;
    }
    if (n == 0) {
      /* close_notify: answer it, then the peer is gone. */
      maild__tls_close(c->tls);
      tls_flush(c);
      c->tls_failed = 1;
      if (c->cb.on_eof != NULL)
        c->cb.on_eof(c, 0, c->ud);
      return -1;
    }
    if (n < 0) {
      tls_fail(c, (int)n);
      return -1;
    }
    c->cb.on_read(c, c->scratch->plain, (size_t)n, c->ud);
    if (c->closing || c->tls_failed)
      return -1;
  }
}

/*
 * Handshake steps with public-key work in them (ECDHE, signing, checking a
 * certificate chain: about a millisecond with mbedTLS) run on the worker
 * pool when the backend allows it, so that handshakes use every core and
 * the loop keeps serving other connections meanwhile. The session belongs
 * to the worker until the step returns: input that arrives meanwhile waits
 * in `stash` (reading pauses, so that is one read at most), and nothing
 * else touches `tls` (writes wait in `early`, as for any handshake).
 */
static void tls_input(maild_conn *c, const uint8_t *data, size_t len);

static void hs_work(uv_work_t *req) {
  maild_conn *c = req->data;

  c->hs_rc = maild__tls_handshake(c->tls);
}

static void hs_done(uv_work_t *req, int status) {
  maild_conn *c = req->data;
  maild_buf rest;

  (void)status;
  c->hs_busy = 0;
  if (c->closing) {
    release(c);
    return;
  }
  c->handles_open--;
  if (c->stash_lost) {
    tls_fail(c, MAILD_ERR_NOMEM);
    return;
  }
  if (tls_stepped(c, c->hs_rc) < 0)
    return;
  /* Records that followed the handshake, then what arrived meanwhile. */
  if (c->tls_ready && tls_deliver(c) != 0)
    return;
  if (maild__buf_used(&c->stash) > 0) {
    rest = c->stash;
    maild__buf_init(&c->stash, MAILD_CONN_READ_BUF);
    tls_input(c, maild__buf_peek(&rest), maild__buf_used(&rest));
    maild__buf_free(&rest, &c->mem);
  }
  sync_read(c);
}

/* Starts a handshake step on the worker pool; 0, or -1 to run it here. */
static int hs_start(maild_conn *c) {
  if (!maild__tls_handshake_threadsafe())
    return -1;
  c->hs_req.data = c;
  if (uv_queue_work(c->tcp.loop, &c->hs_req, hs_work, hs_done) != 0)
    return -1;
  c->hs_busy = 1;
  c->handles_open++;
  sync_read(c);
  return 0;
}

/* Ciphertext from the peer, fed in pieces the session can hold. */
static void tls_input(maild_conn *c, const uint8_t *data, size_t len) {
  while (len > 0 && !c->closing && !c->tls_failed) {
    size_t room, n;
    if (c->hs_busy) {
      if (maild__buf_append(&c->stash, &c->mem, data, len) != 0)
        c->stash_lost = 1; /* reported when the step returns */
      return;
    }
    room = maild__tls_feed_room(c->tls);
    n = len < room ? len : room;
    if (n == 0 || maild__tls_feed(c->tls, data, n) != 0) {
      tls_fail(c, MAILD_ERR_TLS);
      return;
    }
    data += n;
    len -= n;
    if (!c->tls_ready) {
      if (hs_start(c) == 0)
        continue; /* the rest waits for the step */
      if (tls_stepped(c, maild__tls_handshake(c->tls)) < 0)
        return;
      if (!c->tls_ready)
        continue; /* the handshake needs more input */
    }
    if (tls_deliver(c) != 0)
      return;
  }
}

void maild__conn_deadline(maild_conn *c, uint64_t ms) {
  if (c->closing || c->close_after_flush)
    return;
  if (ms == 0)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

void maild__conn_close(maild_conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

void maild__conn_close_after_flush(maild_conn *c) {
  if (c->closing || c->close_after_flush)
    return;
  maild__conn_uncork(c);
  if (c->tls != NULL && c->tls_ready && !c->tls_failed) {
    maild__tls_close(c->tls); /* close_notify before the FIN */
    tls_flush(c);
  }
  c->close_after_flush = 1;
  maild__conn_read(c, 0);
  /* A peer that never reads must not keep the connection open. */
  uv_timer_start(&c->timer, on_timer, FLUSH_TIMEOUT_MS, 0);
  if (!c->writing && maild__buf_used(&c->wq) == 0)
    flush_done(c);
}

const char *maild__conn_peer(const maild_conn *c) {
  return c->peer;
}
