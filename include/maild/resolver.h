/*
 * The MX resolver (RFC 5321 5.1): a domain to the ordered list of
 * addresses to try for its mail, asynchronous on a libuv loop. Usable on
 * its own (see examples/send_one.c).
 *
 * Queries go by UDP to the configured name servers (or those of
 * /etc/resolv.conf), from a random port with a random ID, each answer
 * checked against its query; TCP when an answer is truncated. Answers are
 * cached by their TTL (negative ones by the SOA's, RFC 2308).
 *
 * The order: MX records by preference, random among equal preferences;
 * for each host its IPv6 then IPv4 addresses. A domain without MX records
 * is its own mail host (implicit MX, preference 0). CNAMEs are followed,
 * at most 8 deep.
 *
 * Permanent failures (the message bounces): the domain does not exist
 * (NXDOMAIN: 5.1.2), it accepts no mail (null MX, RFC 7505: 5.1.10), its
 * mail loops back here (every MX at or below this server's own
 * preference: 5.4.6), or no host of it has an address (5.1.2). Temporary
 * ones (retried): SERVFAIL, REFUSED, timeouts, malformed answers (4.4.3).
 */
#ifndef MAILD_RESOLVER_H
#define MAILD_RESOLVER_H

#include <uv.h>

#include "maild/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct maild_resolver maild_resolver;

typedef struct maild_resolver_config {
  /* Name servers: "192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:53".
     NULL or none: the nameserver lines of /etc/resolv.conf. */
  const char *const *servers;
  size_t nservers;
  uint64_t timeout_ms; /* per try; 0: 2000 */
  unsigned tries;      /* rounds over the servers; 0: 2 */
  /* This server's own names: an MX host with one of them is a loop. */
  const char *const *self;
  size_t nself;
  /* Randomness for query IDs and the order of equal preferences; NULL:
     the system's (uv_random). Tests inject their own. */
  uint32_t (*rand)(void *user_data);
  void *rand_user_data;
} maild_resolver_config;

typedef struct maild_mx_target {
  const char *host; /* the MX host name */
  unsigned pref;
  struct sockaddr_storage addr; /* port 0: the caller's to choose */
} maild_mx_target;

typedef struct maild_mx_result {
  int permanent;        /* 1: bounce; 0 with no targets: retry later */
  const char *enhanced; /* "5.1.2", "5.1.10", "5.4.6", "4.4.3"; "" on success */
  const char *text;     /* why, for logs and bounces; "" on success */
  const maild_mx_target *targets; /* in the order to try; valid during cb */
  size_t ntargets;
} maild_mx_result;

typedef void (*maild_mx_cb)(void *user_data, const maild_mx_result *res);

/*
 * Creates a resolver on `loop`. `cfg` and `mem` are copied (NULL cfg:
 * defaults). Reads /etc/resolv.conf when no servers are given (a small
 * read at set-up). Returns 0, MAILD_ERR_INVAL (a server that is not an
 * address), MAILD_ERR_NOT_FOUND (no name server anywhere) or
 * MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_resolver_new(maild_resolver **out, uv_loop_t *loop,
                                    const maild_resolver_config *cfg,
                                    const maild_mem *mem);

/*
 * Resolves where mail for `domain` goes; `cb` runs later on the loop
 * (never from inside this call), exactly once unless the resolver is
 * closed first. Returns 0, MAILD_ERR_INVAL (not a domain name: no
 * callback) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_resolver_mx(maild_resolver *r, const char *domain,
                                   maild_mx_cb cb, void *user_data);

/*
 * The addresses of one host (AAAA and A records; CNAMEs followed), for a
 * route that names its host: as maild_resolver_mx() with the host as its
 * only mail host, preference 0. Returns 0, MAILD_ERR_INVAL or
 * MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_resolver_host(maild_resolver *r, const char *host,
                                     maild_mx_cb cb, void *user_data);

/* Cancels the lookups started with this `cb` and `user_data`: their
   callbacks do not run. */
MAILD_EXTERN void maild_resolver_cancel(maild_resolver *r, maild_mx_cb cb,
                                        void *user_data);

/* Cancels every lookup (their callbacks do not run) and frees the resolver
   once libuv has let go of its handles. NULL is a no-op. */
MAILD_EXTERN void maild_resolver_close(maild_resolver *r);

#ifdef __cplusplus
}
#endif

#endif
