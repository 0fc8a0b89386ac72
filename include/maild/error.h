/*
 * Error codes. Every libmaild function that can fail returns 0 (or a byte
 * count) on success and one of these negative codes on failure. One table
 * (MAILD_ERRNO_MAP) generates the enum, maild_strerror() and
 * maild_err_name(), so they never drift apart.
 *
 * Codes at or below MAILD_ERR_FATAL leave the object that returned them
 * usable only for its _del function. SMTP and POP3 reply codes are never
 * error codes; libuv, mbedTLS and ldns codes never cross the public API.
 */
#ifndef MAILD_ERROR_H
#define MAILD_ERROR_H

#include "maild/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(NAME, value, "message") */
#define MAILD_ERRNO_MAP(XX)                                       \
  XX(INVAL, -1, "invalid argument")                               \
  XX(NOMEM, -2, "out of memory")                                  \
  XX(DEFER, -3, "decision deferred; answer comes later")          \
  XX(AGAIN, -4, "more input is needed")                           \
  XX(STATE, -5, "operation not valid in the current state")       \
  XX(SYNTAX, -6, "syntax error")                                  \
  XX(TOO_LONG, -7, "item exceeds its length limit")               \
  XX(LIMIT, -8, "configured limit reached")                       \
  XX(BARE_CR, -9, "bare CR in line")                              \
  XX(BARE_LF, -10, "bare LF in line")                             \
  XX(NUL, -11, "NUL byte in line")                                \
  XX(BAD_CHAR, -12, "character not allowed here")                 \
  XX(UNSUPPORTED, -13, "unsupported parameter or feature")        \
  XX(DUPLICATE, -14, "parameter given twice")                     \
  XX(RANGE, -15, "value out of range")                            \
  XX(NOSPC, -16, "no space in output buffer")                     \
  XX(CLOSED, -17, "session is closed")                            \
  XX(IO, -18, "input/output error")                               \
  XX(NOT_FOUND, -19, "not found")                                 \
  XX(EXISTS, -20, "already exists")                               \
  XX(PERM, -21, "permission denied")                              \
  XX(TIMEOUT, -22, "timed out")                                   \
  XX(TLS, -23, "TLS failure")                                     \
  XX(DNS, -24, "DNS failure")                                     \
  XX(FATAL, -900, "fatal error; object usable only for deletion") \
  XX(CALLBACK, -901, "a callback failed")                         \
  XX(INTERNAL, -902, "internal error")

typedef enum maild_error {
#define MAILD_ERR_ENUM_(name, value, msg) MAILD_ERR_##name = (value),
  MAILD_ERRNO_MAP(MAILD_ERR_ENUM_)
#undef MAILD_ERR_ENUM_
} maild_error;

/* Nonzero if `err` leaves its object usable only for deletion. */
#define MAILD_ERR_IS_FATAL(err) ((err) <= MAILD_ERR_FATAL)

/*
 * Human-readable message for `err`, e.g. "out of memory". Never NULL: an
 * unknown code gives "unknown error". The string is static.
 */
MAILD_EXTERN const char *maild_strerror(int err);

/*
 * Symbolic name for `err`, e.g. "MAILD_ERR_NOMEM"; "MAILD_ERR_UNKNOWN" for
 * an unknown code. The string is static.
 */
MAILD_EXTERN const char *maild_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
