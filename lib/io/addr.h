/*
 * Numeric socket addresses: the one parser the listener, the outbound
 * routes and the resolver's server list share.
 */
#ifndef MAILD_IO_ADDR_H
#define MAILD_IO_ADDR_H

#include <uv.h>

#include "maild/common.h"

/*
 * Fills `ss` with the numeric IPv4 or IPv6 address `host` (no brackets)
 * and `port`. Returns 0, or MAILD_ERR_INVAL with `ss` zeroed (its family
 * 0: libuv's parsers set the family before they fail, so their result
 * alone cannot tell an address from a name).
 */
int maild__addr_parse(const char *host, unsigned port,
                      struct sockaddr_storage *ss);

/* The port of `ss` (host order). */
unsigned maild__addr_port(const struct sockaddr_storage *ss);

/* Sets the port of `ss`. */
void maild__addr_set_port(struct sockaddr_storage *ss, unsigned port);

#endif
