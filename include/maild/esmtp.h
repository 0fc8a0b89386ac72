/*
 * ESMTP parameters of MAIL and RCPT (RFC 5321 4.1.2 Mail-parameters):
 * SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET,
 * ENVID, NOTIFY, ORCPT (RFC 3461, with xtext) and AUTH= (RFC 4954 5).
 *
 * Values are decoded and checked: a value holding CR, LF, NUL or another
 * control octet, raw or after xtext decoding, is refused, so it can never
 * reach a spool file or a log line (TESTPLAN S8).
 */
#ifndef MAILD_ESMTP_H
#define MAILD_ESMTP_H

#include "maild/common.h"
#include "maild/address.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MAILD_ENVID_MAX      100 /* RFC 3461 4.4 */
#define MAILD_ORCPT_MAX      500 /* RFC 3461 4.2 */
#define MAILD_ADDRTYPE_MAX   32  /* "rfc822", "utf-8" */
#define MAILD_AUTH_PARAM_MAX 512

typedef enum maild_esmtp_verb {
  MAILD_ESMTP_MAIL = 1,
  MAILD_ESMTP_RCPT = 2,
} maild_esmtp_verb;

/* Which extensions the session offers (the `exts` argument). A parameter of
   an extension not offered is MAILD_ERR_UNSUPPORTED. */
enum maild_esmtp_ext {
  MAILD_EXT_SIZE = 1u << 0,
  MAILD_EXT_8BITMIME = 1u << 1,
  MAILD_EXT_SMTPUTF8 = 1u << 2,
  MAILD_EXT_DSN = 1u << 3,
  MAILD_EXT_AUTH = 1u << 4,
  MAILD_EXT_BINARYMIME = 1u << 5,
};

/* Parameters that were present (maild_esmtp_params.present). */
enum maild_esmtp_param {
  MAILD_PARAM_SIZE = 1u << 0,
  MAILD_PARAM_BODY = 1u << 1,
  MAILD_PARAM_SMTPUTF8 = 1u << 2,
  MAILD_PARAM_RET = 1u << 3,
  MAILD_PARAM_ENVID = 1u << 4,
  MAILD_PARAM_NOTIFY = 1u << 5,
  MAILD_PARAM_ORCPT = 1u << 6,
  MAILD_PARAM_AUTH = 1u << 7,
};

enum maild_body_type {
  MAILD_BODY_UNSPEC = 0,
  MAILD_BODY_7BIT,
  MAILD_BODY_8BITMIME,
  MAILD_BODY_BINARYMIME,
};

enum maild_ret_type { MAILD_RET_UNSPEC = 0, MAILD_RET_FULL, MAILD_RET_HDRS };

enum maild_notify {
  MAILD_NOTIFY_NEVER = 1u << 0,
  MAILD_NOTIFY_SUCCESS = 1u << 1,
  MAILD_NOTIFY_FAILURE = 1u << 2,
  MAILD_NOTIFY_DELAY = 1u << 3,
};

typedef struct maild_esmtp_params {
  unsigned present; /* maild_esmtp_param bits */
  uint64_t size;    /* SIZE=, octets */
  int body;         /* maild_body_type */
  int ret;          /* maild_ret_type */
  unsigned notify;  /* maild_notify bits; NEVER is never combined */
  /* ENVID, xtext-decoded, printable US-ASCII. NUL-terminated. */
  char envid[MAILD_ENVID_MAX + 1];
  size_t envid_len;
  /* ORCPT address type ("rfc822", "utf-8"), lower-cased, and the decoded
     original recipient. NUL-terminated. */
  char orcpt_type[MAILD_ADDRTYPE_MAX + 1];
  char orcpt[MAILD_ORCPT_MAX + 1];
  size_t orcpt_len;
  /* AUTH= mailbox, xtext-decoded ("<>" when unknown). NUL-terminated. */
  char auth[MAILD_AUTH_PARAM_MAX + 1];
  size_t auth_len;
} maild_esmtp_params;

/*
 * Parses the parameters after the path of a MAIL or RCPT command: zero or
 * more space-separated "keyword[=value]" (keywords case-insensitive),
 * leading and trailing spaces allowed. On error, if `bad` is not NULL,
 * `*bad` points at the offending keyword inside `in` (for the reply text).
 * Returns 0 or:
 *  MAILD_ERR_SYNTAX      malformed list or value (reply 501 5.5.4),
 *  MAILD_ERR_UNSUPPORTED unknown keyword, one of an extension not in
 *                        `exts`, or one not valid for `verb` (555 5.5.4),
 *  MAILD_ERR_DUPLICATE   a keyword given twice (501 5.5.4),
 *  MAILD_ERR_BAD_CHAR    control octets in a value, raw or decoded (501),
 *  MAILD_ERR_TOO_LONG    a value over its limit (501 5.5.4),
 *  MAILD_ERR_RANGE       SIZE not a decimal number that fits (501 5.5.4).
 */
MAILD_EXTERN int maild_esmtp_parse(maild_esmtp_params *out, const char *in,
                                   size_t len, maild_esmtp_verb verb,
                                   unsigned exts, const char **bad);

/*
 * Decodes xtext (RFC 3461 4: "+" followed by two upper-case hex digits)
 * into `out` (NUL-terminated). Returns the decoded length, or
 * MAILD_ERR_SYNTAX (bad "+XX", or a raw octet outside "!".."~" or "+"/"="),
 * MAILD_ERR_BAD_CHAR (a decoded control octet or NUL) or MAILD_ERR_NOSPC.
 */
MAILD_EXTERN maild_ssize maild_xtext_decode(const char *in, size_t len,
                                            char *out, size_t cap);

/*
 * Encodes `in` as xtext into `out` (NUL-terminated). Returns the encoded
 * length or MAILD_ERR_NOSPC.
 */
MAILD_EXTERN maild_ssize maild_xtext_encode(const char *in, size_t len,
                                            char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
