/*
 * A TCP connection on libuv: reads into one reusable buffer, writes through
 * a two-buffer queue (one being filled, one in flight) so output never
 * needs an allocation per reply, and carries one deadline timer. The
 * protocol on top sees only octets and a few events; TLS will slot in
 * between (lib/io is the only layer that touches libuv and mbedTLS).
 */
#ifndef MAILD_IO_CONN_H
#define MAILD_IO_CONN_H

#include <uv.h>

#include "maild/common.h"
#include "core/buf.h"

typedef struct maild_conn maild_conn;

#define MAILD_CONN_READ_BUF 65536

/*
 * Buffers every connection of a loop can share, since libuv reads one
 * stream at a time and each read is handed over (and what is kept, copied)
 * before the next: the socket read buffer and the decrypted-text buffer.
 * Without sharing, each connection would carry 128 KiB of them.
 */
typedef struct maild_conn_scratch {
  uint8_t rbuf[MAILD_CONN_READ_BUF];
  uint8_t plain[MAILD_CONN_READ_BUF];
} maild_conn_scratch;

typedef struct maild_conn_cb {
  /* Octets from the peer; valid only during the call. */
  void (*on_read)(maild_conn *c, const uint8_t *data, size_t len, void *ud);
  /* The peer closed (err 0) or the connection failed (err < 0). */
  void (*on_eof)(maild_conn *c, int err, void *ud);
  /* Everything queued has been written. */
  void (*on_drain)(maild_conn *c, void *ud);
  /* The deadline set with maild__conn_deadline() passed. */
  void (*on_timeout)(maild_conn *c, void *ud);
  /* All handles are closed; the connection is freed after this returns. */
  void (*on_close)(maild_conn *c, void *ud);
  /* The TLS handshake started with maild__conn_tls_start() ended: 0, or
     a negative error with maild__conn_tls_error() saying why. */
  void (*on_tls)(maild_conn *c, int err, void *ud);
  /* maild__conn_connect() ended: 0 (reading has started), or
     MAILD_ERR_IO. */
  void (*on_connect)(maild_conn *c, int err, void *ud);
} maild_conn_cb;

struct maild_tls;

/*
 * From now on the connection speaks TLS through `tls` (taken over; freed
 * with the connection): what the peer sends next is the handshake, and
 * octets written before the handshake completes wait until it has. Used
 * after "220 Ready to start TLS" (RFC 3207) and at accept for implicit TLS
 * (RFC 8314). Returns 0 or MAILD_ERR_STATE (already TLS).
 */
int maild__conn_tls_start(maild_conn *c, struct maild_tls *tls);

/* As maild__conn_tls_start() for the client side: also sends the first
   handshake flight (ClientHello) now. */
int maild__conn_tls_connect(maild_conn *c, struct maild_tls *tls);

/* "TLSv1.2 with cipher ..." once the handshake is done, else NULL. */
const char *maild__conn_tls_info(const maild_conn *c);

/* 1 once a handshake that resumed an earlier session is done, else 0. */
int maild__conn_tls_resumed(const maild_conn *c);

/* Why the handshake or a record failed; "" if it did not. */
const char *maild__conn_tls_error(const maild_conn *c);

/* Creates the handles on `loop`; `scratch` is borrowed and must outlive
   the connection (one per loop). Returns 0, MAILD_ERR_NOMEM or
   MAILD_ERR_IO. */
int maild__conn_new(maild_conn **out, uv_loop_t *loop, const maild_conn_cb *cb,
                    void *ud, maild_conn_scratch *scratch,
                    const maild_mem *mem);

/* Replaces the callbacks and their user data (e.g. once a session takes
   over an accepted connection). */
void maild__conn_rebind(maild_conn *c, const maild_conn_cb *cb, void *ud);

/* The stream to pass to uv_accept(). */
uv_stream_t *maild__conn_stream(maild_conn *c);

/* Starts reading after a successful accept and records the peer address.
   Returns 0 or MAILD_ERR_IO. */
int maild__conn_start(maild_conn *c);

/* Connects to `addr` (outbound); on_connect follows. Returns 0 or
   MAILD_ERR_IO. */
int maild__conn_connect(maild_conn *c, const struct sockaddr *addr);

/* Starts or stops reading (idempotent). */
void maild__conn_read(maild_conn *c, int on);

/* Queues octets (copied). Returns 0, MAILD_ERR_NOMEM or MAILD_ERR_IO. */
int maild__conn_write(maild_conn *c, const uint8_t *data, size_t len);

/*
 * Corking: while corked, writes are only collected; uncorking sends them
 * together, as few TLS records and system calls as they fit in. A session
 * corks around one pass over its engine's output so that many small replies
 * (pipelined commands) leave in one piece. Uncorking returns what
 * maild__conn_write would (0, MAILD_ERR_NOMEM or MAILD_ERR_IO); corking
 * twice, or uncorking when not corked, is harmless.
 */
void maild__conn_cork(maild_conn *c);
int maild__conn_uncork(maild_conn *c);

/* Octets queued and not yet written (corked ones included). */
size_t maild__conn_pending(const maild_conn *c);

/* Arms the deadline `ms` milliseconds from now; 0 disarms it. */
void maild__conn_deadline(maild_conn *c, uint64_t ms);

/* Closes the connection; pending output is dropped. on_close follows. */
void maild__conn_close(maild_conn *c);

/* Shuts down the sending side once the pending output is written, then
   closes. */
void maild__conn_close_after_flush(maild_conn *c);

/* Peer address as text ("192.0.2.1", "2001:db8::1"); "" before start. */
const char *maild__conn_peer(const maild_conn *c);

#endif
