/*
 * DNS packets for the MX resolver (layer 1): a query builder and a
 * response parser, on ldns used as a codec only (never its resolver). No
 * I/O: the transport (io/dns_transport.c) moves the octets.
 *
 * The parser checks what a response must match before anything in it is
 * believed (RFC 5452): the ID, the QR bit, exactly one question equal to
 * the query's name (ignoring case), type and class. Answers are reduced to
 * the records the resolver uses (A, AAAA, MX, CNAME) with their TTLs.
 *
 * Allocation: ldns allocates with the C library while encoding and
 * decoding (it has no allocator hooks); nothing it allocates outlives a
 * call.
 */
#ifndef MAILD_DNS_CODEC_H
#define MAILD_DNS_CODEC_H

#include "maild/common.h"

#define MAILD_DNS_NAME_MAX  253 /* without the root dot */
#define MAILD_DNS_RR_MAX    64  /* records kept from one answer section */
#define MAILD_DNS_QUERY_MAX 300 /* a query's octets at most */

enum maild_dns_type {
  MAILD_DNS_A = 1,
  MAILD_DNS_CNAME = 5,
  MAILD_DNS_MX = 15,
  MAILD_DNS_AAAA = 28
};

enum maild_dns_rcode {
  MAILD_DNS_NOERROR = 0,
  MAILD_DNS_FORMERR = 1,
  MAILD_DNS_SERVFAIL = 2,
  MAILD_DNS_NXDOMAIN = 3,
  MAILD_DNS_REFUSED = 5
};

typedef struct maild_dns_rr {
  uint16_t type;
  uint32_t ttl;
  char owner[MAILD_DNS_NAME_MAX + 1];  /* lower case, no final dot */
  uint16_t pref;                       /* MX */
  char target[MAILD_DNS_NAME_MAX + 1]; /* MX exchange, CNAME; "" for "." */
  uint8_t addr[16];                    /* A: 4 octets, AAAA: 16 */
} maild_dns_rr;

typedef struct maild_dns_answer {
  int rcode;
  int truncated; /* TC: ask again over TCP */
  size_t n;      /* records in rr (extra ones are dropped) */
  maild_dns_rr rr[MAILD_DNS_RR_MAX];
  uint32_t neg_ttl; /* from the SOA of a negative answer; 0 if none */
} maild_dns_answer;

/*
 * Checks and lower-cases a domain for a query: LDH labels of 1..63
 * octets, at most MAILD_DNS_NAME_MAX in all, one final dot allowed (and
 * dropped). Writes the result to `out`. Returns 0 or MAILD_ERR_SYNTAX.
 */
int maild__dns_name(const char *in, char out[MAILD_DNS_NAME_MAX + 1]);

/*
 * A query (RD set, one question, class IN) for `name` (from
 * maild__dns_name) and `type` with `id`, into out[0..cap). With `tcp` the
 * two-octet length prefix of RFC 1035 4.2.2 comes first. Returns the
 * length, or MAILD_ERR_INVAL / MAILD_ERR_NOSPC / MAILD_ERR_NOMEM.
 */
maild_ssize maild__dns_query(uint8_t *out, size_t cap, uint16_t id,
                             const char *name, uint16_t type, int tcp);

/*
 * Parses a response (without a TCP length prefix) to the query (`id`,
 * `name`, `type`). Returns 0 and fills `ans` (records of other types or
 * classes are skipped), or MAILD_ERR_SYNTAX: malformed, or it does not
 * answer that query (then it must be ignored, not believed).
 */
int maild__dns_parse(const uint8_t *in, size_t len, uint16_t id,
                     const char *name, uint16_t type, maild_dns_answer *ans);

#endif
