/*
 * RFC 5321 paths and domains (4.1.2, 4.1.3), with the RFC 6531 (SMTPUTF8)
 * extensions and the size limits of 4.5.3.1: local-part 64 octets, domain
 * 255 octets, path 256 octets including the angle brackets.
 *
 * The parser never allocates and never routes: a source route is parsed and
 * dropped (RFC 5321 4.1.1.3, appendix C), and "%", "!" or a quoted "@" stay
 * plain characters of the local-part for the policy layer to judge.
 */
#ifndef MAILD_ADDRESS_H
#define MAILD_ADDRESS_H

#include "maild/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MAILD_LOCAL_MAX  64
#define MAILD_DOMAIN_MAX 255
#define MAILD_PATH_MAX   256

/* What the parser found (maild_path.flags). */
enum maild_path_flags {
  MAILD_PATH_NULL = 1u << 0,       /* "<>" */
  MAILD_PATH_POSTMASTER = 1u << 1, /* "<postmaster>" with no domain */
  MAILD_PATH_QUOTED = 1u << 2,     /* local-part must be a quoted-string */
  MAILD_PATH_UTF8 = 1u << 3,       /* non-ASCII octets: needs SMTPUTF8 */
  MAILD_PATH_LITERAL = 1u << 4,    /* domain is an address literal "[...]" */
  MAILD_PATH_ROUTE = 1u << 5,      /* a source route was given and dropped */
};

/* What the parser may accept (the `allow` argument). */
enum maild_path_allow {
  MAILD_PATH_ALLOW_NULL = 1u << 0,       /* "<>" (reverse-path) */
  MAILD_PATH_ALLOW_POSTMASTER = 1u << 1, /* "<postmaster>" (RCPT) */
  MAILD_PATH_ALLOW_UTF8 = 1u << 2,       /* RFC 6531 syntax */
};

typedef struct maild_path {
  /* Canonical local-part, NUL-terminated: unquoted when its content is a
     dot-string, else a quoted-string with only the necessary backslashes
     (so "alice"@x and alice@x compare equal). Empty for "<>". The
     canonical form is never longer than what was sent. */
  char local[MAILD_LOCAL_MAX + 1];
  size_t local_len;
  /* Domain as sent (case kept), or an address literal with its brackets.
     Empty for "<>" and "<postmaster>". NUL-terminated. */
  char domain[MAILD_DOMAIN_MAX + 1];
  size_t domain_len;
  unsigned flags; /* maild_path_flags */
} maild_path;

/*
 * Parses the path that starts at in[0] (which must be '<') and ends at the
 * matching '>'. Returns the octets consumed, through the '>', or:
 * MAILD_ERR_SYNTAX (malformed, or "<>"/"<postmaster>" not allowed),
 * MAILD_ERR_TOO_LONG (local-part over 64, domain over 255 or path over 256
 * octets), MAILD_ERR_BAD_CHAR (control octets, NUL, invalid UTF-8, or
 * non-ASCII without MAILD_PATH_ALLOW_UTF8). On error `*out` is unspecified.
 */
MAILD_EXTERN maild_ssize maild_path_parse(maild_path *out, const char *in,
                                          size_t len, unsigned allow);

/*
 * Writes the address as "local@domain" ("" for the null path, "postmaster"
 * for the bare postmaster) plus a NUL into `buf`. Returns the length without
 * the NUL, or MAILD_ERR_NOSPC if `size` is too small.
 */
MAILD_EXTERN maild_ssize maild_path_format(const maild_path *p, char *buf,
                                           size_t size);

/*
 * Checks that `in` is a domain (RFC 5321 4.1.2 Domain: LDH labels; with
 * MAILD_PATH_ALLOW_UTF8 also UTF-8 U-labels) or, if `literal_ok`, an
 * address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"). Returns 0,
 * MAILD_ERR_SYNTAX, MAILD_ERR_TOO_LONG (over 255 octets, or a label over
 * 63) or MAILD_ERR_BAD_CHAR.
 */
MAILD_EXTERN int maild_domain_check(const char *in, size_t len, unsigned allow,
                                    int literal_ok);

/*
 * Checks that `in` is well-formed UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF). Returns 0 or MAILD_ERR_BAD_CHAR.
 */
MAILD_EXTERN int maild_utf8_check(const char *in, size_t len);

#ifdef __cplusplus
}
#endif
#endif
