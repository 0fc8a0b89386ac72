/*
 * The local directory: what a recipient address means to this server.
 *
 * Built once from the local domains, the users (maild/users.h) and the
 * aliases, it answers for each RCPT TO path one of:
 *
 *   MAILD_RCPT_LOCAL      ours: deliver to `mailboxes` (users' canonical
 *                         addresses) and forward to `external` (alias
 *                         targets outside our domains; the outbound path
 *                         is not written yet, so today the runtime refuses
 *                         or queues those);
 *   MAILD_RCPT_NOT_LOCAL  the domain is not ours: relaying, which the
 *                         runtime refuses for now (554 5.7.1 Relay access
 *                         denied);
 *   MAILD_RCPT_UNKNOWN    our domain, no such user or alias: 550 5.1.1
 *                         (RFC 3463) at RCPT, never a bounce later.
 *
 * Addresses compare in the canonical form of maild_users_canonical():
 * RFC 5321 canonical local-part, ASCII case folded, domain lower-cased.
 * Non-ASCII octets compare as they are (no IDNA or Unicode folding).
 *
 * For an address in a local domain the first rule that matches wins:
 *   1. an alias of that address (aliases override users, as in Postfix
 *      virtual(5); an alias listing its own address among its targets
 *      delivers to that user's mailbox as well);
 *   2. a user of that address;
 *   3. postmaster@domain (below);
 *   4. the domain's catch-all alias, written "@domain";
 *   5. otherwise UNKNOWN.
 *
 * Postmaster (RFC 5321 4.5.1) always resolves. postmaster@D, for each
 * local domain D, goes to an explicit alias or user postmaster@D if there
 * is one, else to the configured `postmaster` fallback address, else to
 * the first user of D in users-file order, else to D's catch-all; if none
 * of those exists the directory is not built (MAILD_ERR_NOT_FOUND naming
 * the domain). The bare "<postmaster>" is postmaster@ the first local
 * domain. The local-part "postmaster" is matched case-insensitively, like
 * every local-part here.
 *
 * Aliases expand recursively at build time, so a lookup neither recurses
 * nor allocates. A target in a local domain must be a user or an alias
 * (else MAILD_ERR_NOT_FOUND: a typo fails the build rather than bouncing
 * mail); a target in another domain is external. Results are
 * de-duplicated and keep first-seen order. A chain deeper than
 * MAILD_DIRECTORY_DEPTH_MAX aliases fails with MAILD_ERR_LIMIT, a cycle
 * with MAILD_ERR_INVAL, an alias expanding to more than
 * MAILD_DIRECTORY_EXPAND_MAX addresses with MAILD_ERR_LIMIT.
 *
 * Users whose domain is not local can still log in, but receive no mail
 * (their address is NOT_LOCAL).
 *
 * A directory is immutable once built: any number of threads may look up
 * at once. A reload builds a new directory; the users object, domain and
 * alias strings given to maild_directory_new() are copied and may be freed
 * right after it returns.
 */
#ifndef MAILD_DIRECTORY_H
#define MAILD_DIRECTORY_H

#include "maild/common.h"
#include "maild/address.h"
#include "maild/options.h"
#include "maild/users.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest chain of aliases: a -> b -> ... -> mailbox with 10 aliases. */
#define MAILD_DIRECTORY_DEPTH_MAX 10
/* Most mailboxes plus external addresses one alias expands to. */
#define MAILD_DIRECTORY_EXPAND_MAX 10000

typedef struct maild_directory maild_directory;

/* One alias: `address` ("local@domain" in a local domain, or "@domain"
   for that domain's catch-all) delivers to each of `targets` (full
   addresses, at least one). */
typedef struct maild_alias {
  const char *address;
  const char *const *targets;
  size_t ntargets;
} maild_alias;

typedef struct maild_directory_config {
  const char *const *domains; /* local domains (or address literals) */
  size_t ndomains;            /* at least one */
  const maild_users *users;   /* may be NULL: no users */
  const maild_alias *aliases;
  size_t naliases;
  /* Where postmaster@D goes when D has no explicit postmaster; a full
     address, local or not. NULL: the first user of D, else the catch-all
     of D. */
  const char *postmaster;
} maild_directory_config;

/* Which part of the configuration a build error is about. */
typedef enum maild_directory_part {
  MAILD_DIRECTORY_PART_NONE,       /* not about one item (NOMEM, INVAL) */
  MAILD_DIRECTORY_PART_DOMAIN,     /* domains[index] */
  MAILD_DIRECTORY_PART_ALIAS,      /* aliases[index], targets[target] */
  MAILD_DIRECTORY_PART_POSTMASTER, /* the `postmaster` fallback */
} maild_directory_part;

typedef struct maild_directory_where {
  maild_directory_part part;
  size_t index;
  size_t target; /* (size_t)-1: the alias address itself */
} maild_directory_where;

typedef enum maild_rcpt_kind {
  MAILD_RCPT_LOCAL = 1,
  MAILD_RCPT_NOT_LOCAL,
  MAILD_RCPT_UNKNOWN,
} maild_rcpt_kind;

/* The answer for one recipient. Arrays and strings belong to the
   directory and are valid until it is deleted. */
typedef struct maild_directory_result {
  maild_rcpt_kind kind;
  const char *const *mailboxes; /* LOCAL: canonical user addresses */
  size_t nmailboxes;
  const char *const *external; /* LOCAL: canonical addresses elsewhere */
  size_t nexternal;
} maild_directory_result;

/*
 * Builds a directory. `cfg` and everything it points to is read and
 * copied; `opt` (reserved for limits; NULL: the defaults above) and `mem`
 * (NULL: malloc) are copied. On a build error `*where` (may be NULL) tells
 * which item is at fault. Returns 0 or:
 *   MAILD_ERR_INVAL      `out` or `cfg` NULL, no local domains, an alias
 *                        outside the local domains or without targets, an
 *                        alias cycle
 *   MAILD_ERR_SYNTAX, MAILD_ERR_BAD_CHAR, MAILD_ERR_TOO_LONG
 *                        a malformed domain, alias address or target (a
 *                        catch-all "@domain" is no target: SYNTAX)
 *   MAILD_ERR_DUPLICATE  a domain or an alias given twice
 *   MAILD_ERR_NOT_FOUND  an alias target in a local domain that is no
 *                        user or alias, or a domain whose postmaster
 *                        resolves to nothing (PART_DOMAIN)
 *   MAILD_ERR_LIMIT      alias chain deeper than MAILD_DIRECTORY_DEPTH_MAX,
 *                        or expanding to more than
 *                        MAILD_DIRECTORY_EXPAND_MAX addresses
 *   MAILD_ERR_NOMEM
 */
MAILD_EXTERN int maild_directory_new(maild_directory **out,
                                     const maild_directory_config *cfg,
                                     maild_directory_where *where,
                                     const maild_options *opt,
                                     const maild_mem *mem);

/* Frees `d`; NULL is a no-op. Results from it become invalid. */
MAILD_EXTERN void maild_directory_del(maild_directory *d);

/*
 * Classifies the forward-path of a RCPT (as maild_path_parse() gave it
 * with MAILD_PATH_ALLOW_POSTMASTER). Never allocates or blocks. Returns 0
 * and fills `*out`, or MAILD_ERR_INVAL (NULL argument, or the null path).
 */
MAILD_EXTERN int maild_directory_lookup(const maild_directory *d,
                                        const maild_path *rcpt,
                                        maild_directory_result *out);

/* 1 if `domain[0..len)` is a local domain (ASCII case-insensitive), else
   0. */
MAILD_EXTERN int maild_directory_is_local_domain(const maild_directory *d,
                                                 const char *domain,
                                                 size_t len);

#ifdef __cplusplus
}
#endif
#endif
