/*
 * One DNS exchange over libuv (layer 2): the query goes by UDP from a
 * fresh socket each try (so the kernel picks a new random source port),
 * to each server in turn, each try with its own deadline; over TCP
 * (RFC 7766, two-octet length prefix) when asked, e.g. after a truncated
 * answer. Datagrams from any address but the server's are ignored; those
 * from the server go to `accept`, which says whether they answer the
 * query (ID and question checked by the caller's codec), so a spoofed or
 * stale datagram cannot end the exchange.
 */
#ifndef MAILD_IO_DNS_TRANSPORT_H
#define MAILD_IO_DNS_TRANSPORT_H

#include <uv.h>

#include "maild/common.h"

typedef struct maild_dns_xfer maild_dns_xfer;

/* A message from the server: return 1 to take it (the exchange ends) or
   0 to ignore it. */
typedef int (*maild_dns_accept_cb)(void *ud, const uint8_t *msg, size_t len);

/* The end: 0 (a message was taken), MAILD_ERR_TIMEOUT (no server gave an
   answer in time) or MAILD_ERR_IO. Not called after a cancel. */
typedef void (*maild_dns_done_cb)(void *ud, int err);

/*
 * Starts the exchange for `query` (a UDP query: no length prefix), copied.
 * `servers` (copied) are tried in order, `tries` rounds in all, each try
 * waiting `timeout_ms`. Returns 0, MAILD_ERR_INVAL or MAILD_ERR_NOMEM.
 */
int maild__dns_xfer_start(maild_dns_xfer **out, uv_loop_t *loop,
                          const struct sockaddr_storage *servers,
                          size_t nservers, const uint8_t *query, size_t qlen,
                          int tcp, uint64_t timeout_ms, unsigned tries,
                          maild_dns_accept_cb accept, maild_dns_done_cb done,
                          void *ud, const maild_mem *mem);

/* Stops the exchange; `done` is not called. The memory goes once libuv
   has closed the handles. */
void maild__dns_xfer_cancel(maild_dns_xfer *x);

#endif
