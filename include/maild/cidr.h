/*
 * Sets of IPv4 and IPv6 networks in CIDR notation ("192.0.2.0/24",
 * "2001:db8::/32", or a single address), for access rules such as the
 * networks allowed to relay without logging in.
 */
#ifndef MAILD_CIDR_H
#define MAILD_CIDR_H

#include "maild/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct maild_cidr_set maild_cidr_set;

/* Creates an empty set; `mem` (NULL: malloc) is copied. Returns 0,
   MAILD_ERR_INVAL or MAILD_ERR_NOMEM. */
MAILD_EXTERN int maild_cidr_set_new(maild_cidr_set **out, const maild_mem *mem);

/* Frees the set; NULL is a no-op. */
MAILD_EXTERN void maild_cidr_set_del(maild_cidr_set *set);

/*
 * Adds one network. Host bits beyond the prefix must be zero
 * ("192.0.2.1/24" is refused: almost always a typo). Returns 0,
 * MAILD_ERR_SYNTAX (not an address or prefix), MAILD_ERR_RANGE (prefix
 * longer than the address), MAILD_ERR_INVAL (host bits set, or NULL) or
 * MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_cidr_set_add(maild_cidr_set *set, const char *cidr);

/* 1 if the address (text: "192.0.2.7", "2001:db8::1"; an IPv4-mapped
   IPv6 address counts as IPv4) is in one of the networks, else 0. Never
   allocates; safe to call from several threads on an unchanging set. */
MAILD_EXTERN int maild_cidr_set_contains(const maild_cidr_set *set,
                                         const char *addr);

/* Networks in the set. */
MAILD_EXTERN size_t maild_cidr_set_count(const maild_cidr_set *set);

#ifdef __cplusplus
}
#endif
#endif
