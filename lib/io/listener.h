/*
 * A listening TCP socket on libuv. Port 0 picks an ephemeral port, which
 * maild__listener_port() reads back (tests never bind fixed ports).
 */
#ifndef MAILD_IO_LISTENER_H
#define MAILD_IO_LISTENER_H

#include <uv.h>

#include "maild/common.h"

typedef struct maild_listener maild_listener;

typedef void (*maild_listener_cb)(maild_listener *l, void *ud);

/* Binds `addr` ("127.0.0.1", "::1", "0.0.0.0", "::") and `port`, and
   listens; `on_conn` runs for each pending connection (accept it with
   uv_accept on maild__listener_stream). Returns 0, MAILD_ERR_INVAL (bad
   address), MAILD_ERR_NOMEM, MAILD_ERR_EXISTS (address in use),
   MAILD_ERR_PERM or MAILD_ERR_IO. */
int maild__listener_new(maild_listener **out, uv_loop_t *loop, const char *addr,
                        int port, maild_listener_cb on_conn, void *ud,
                        const maild_mem *mem);

uv_stream_t *maild__listener_stream(maild_listener *l);

/* The bound port. */
int maild__listener_port(const maild_listener *l);

/* Stops listening and frees the listener once libuv closed the handle. */
void maild__listener_close(maild_listener *l);

#endif
