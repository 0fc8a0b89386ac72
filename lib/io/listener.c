/*
 * Listening sockets (see listener.h). An IPv6 wildcard is bound v6-only so
 * that "0.0.0.0" and "::" can both be configured on one port.
 */
#include "io/listener.h"

#include "io/addr.h"

#include "core/mem.h"
#include "maild/error.h"

#include <string.h>

struct maild_listener {
  uv_tcp_t tcp;
  maild_mem mem;
  maild_listener_cb on_conn;
  void *ud;
  int port;
};

static void on_connection(uv_stream_t *st, int status) {
  maild_listener *l = st->data;

  if (status == 0)
    l->on_conn(l, l->ud);
}

static int uv_to_maild(int err) {
  switch (err) {
  case UV_EADDRINUSE:
    return MAILD_ERR_EXISTS;
  case UV_EACCES:
  case UV_EPERM:
    return MAILD_ERR_PERM;
  case UV_EINVAL:
  case UV_EADDRNOTAVAIL:
    return MAILD_ERR_INVAL;
  default:
    return MAILD_ERR_IO;
  }
}

static void on_closed(uv_handle_t *h) {
  maild_listener *l = h->data;
  maild__free(&l->mem, l);
}

static int bind_and_listen(maild_listener *l, const char *addr, int port) {
  struct sockaddr_storage ss;
  int len = sizeof(ss), err;
  unsigned flags = 0;

  if (port < 0 || maild__addr_parse(addr, (unsigned)port, &ss) != 0)
    return MAILD_ERR_INVAL;
  if (ss.ss_family == AF_INET6)
    flags = UV_TCP_IPV6ONLY;
  err = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, flags);
  if (err == 0)
    err = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
  if (err == 0)
    err = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
  if (err != 0)
    return uv_to_maild(err);
  l->port = (int)maild__addr_port(&ss);
  return 0;
}

int maild__listener_new(maild_listener **out, uv_loop_t *loop, const char *addr,
                        int port, maild_listener_cb on_conn, void *ud,
                        const maild_mem *mem) {
  maild_mem m;
  maild_listener *l;
  int err;

  if (port < 0 || port > 65535)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  l = maild__calloc(&m, 1, sizeof(*l));
  if (l == NULL)
    return MAILD_ERR_NOMEM;
  l->mem = m;
  l->on_conn = on_conn;
  l->ud = ud;
  if (uv_tcp_init(loop, &l->tcp) != 0) {
    maild__free(&m, l);
    return MAILD_ERR_IO;
  }
  l->tcp.data = l;
  err = bind_and_listen(l, addr, port);
  if (err != 0) {
    uv_close((uv_handle_t *)&l->tcp, on_closed);
    return err;
  }
  *out = l;
  return 0;
}

uv_stream_t *maild__listener_stream(maild_listener *l) {
  return (uv_stream_t *)&l->tcp;
}

int maild__listener_port(const maild_listener *l) {
  return l->port;
}

void maild__listener_close(maild_listener *l) {
  uv_close((uv_handle_t *)&l->tcp, on_closed);
}
