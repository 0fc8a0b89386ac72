/*
 * SASL server mechanisms PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login-00), sans-I/O.
 *
 * One maild_sasl_server runs one authentication exchange. The protocol
 * engine (SMTP AUTH, RFC 4954; POP3 AUTH, RFC 5034) hands each client
 * response to maild_sasl_server_step() as the base64 text the client sent,
 * and sends back what the step returns:
 *
 *   rc = maild_sasl_server_step(s, resp, resp_len, ch, sizeof(ch), &n);
 *   MAILD_SASL_CONTINUE  send "334 " (SMTP) or "+ " (POP3) and ch[0..n)
 *   MAILD_SASL_DONE      check authcid/password (and authzid, see below)
 *   MAILD_ERR_SYNTAX     SMTP 501 5.5.2 (RFC 4954 4): bad base64 or a
 *                        malformed message
 *   other negative       a failed exchange (SMTP 501 5.5.2 / 535 5.7.8 as
 *                        the embedder prefers; POP3 -ERR)
 *
 * The client's "*" (cancel, RFC 4954 4) is the engine's business: it never
 * reaches this module; the engine just deletes the object.
 *
 * Mechanisms:
 *   PLAIN  one message "authzid NUL authcid NUL passwd" (RFC 4616 2). With
 *          no initial response the first step returns an empty challenge
 *          (RFC 4954 4: "334 " alone) and the message comes next.
 *   LOGIN  challenges "Username:" then "Password:" (base64 "VXNlcm5hbWU6",
 *          "UGFzc3dvcmQ6"). An initial response, which some clients send
 *          with AUTH LOGIN, is taken as the user name.
 *
 * The first step's `response` is the AUTH command's initial response: NULL
 * when there was none, "=" for an empty one (RFC 4954 4, RFC 5034 4).
 * Later steps take the continuation line as sent; an empty line is an
 * empty response and "=" is not special there (it is bad base64).
 *
 * Credentials after MAILD_SASL_DONE (both mechanisms):
 *   authcid   1..MAILD_SASL_NAME_MAX octets of UTF-8 (RFC 3629), no NUL and
 *             no ASCII control octet (0x00-0x1f, 0x7f). For maild this is
 *             the full login address (alice@example.com).
 *   authzid   0..MAILD_SASL_NAME_MAX octets, same rules; empty when the
 *             client sent none (always empty for LOGIN). A non-empty
 *             authzid different from authcid is passed through unchanged:
 *             the embedder decides. maild's runtime refuses it (535 5.7.8)
 *             unless it equals the authcid.
 *   password  1..MAILD_SASL_PASSWORD_MAX octets, no NUL; control octets
 *             allowed. PLAIN requires UTF-8 in it (RFC 4616 2: SAFE);
 *             LOGIN, which names no charset, takes any other octet, since
 *             older clients send their local 8-bit charset.
 * The limits are fixed (no option yet): MAILD_SASL_PASSWORD_MAX equals
 * MAILD_USERS_PASSWORD_MAX, so any password the users file can verify
 * fits.
 *
 * Memory: one allocation per object, through the maild_mem given to
 * maild_sasl_server_new() (copied; NULL means malloc). The object keeps
 * the decoded credentials; maild_sasl_server_del() overwrites all of them
 * (and every decoded response) before freeing, and a failed step
 * overwrites them at once. No globals, no I/O; objects are independent, so
 * different objects may be used from different threads.
 */
#ifndef MAILD_SASL_H
#define MAILD_SASL_H

#include "maild/common.h"
#include "maild/options.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest authcid or authzid in octets. */
#define MAILD_SASL_NAME_MAX 255
/* Longest password in octets (same as MAILD_USERS_PASSWORD_MAX). */
#define MAILD_SASL_PASSWORD_MAX 511
/* Room the challenge buffer of maild_sasl_server_step() must have. */
#define MAILD_SASL_CHALLENGE_SIZE 16

/* Non-negative results of maild_sasl_server_step(). */
enum {
  MAILD_SASL_DONE = 0,    /* credentials available */
  MAILD_SASL_CONTINUE = 1 /* send the challenge, pass the next response */
};

typedef struct maild_sasl_server maild_sasl_server;

/*
 * Nonzero if `name[0..len)` is a mechanism this module implements
 * ("PLAIN", "LOGIN"; ASCII case ignored, RFC 4422 3.1). `name` NULL gives
 * 0.
 */
MAILD_EXTERN int maild_sasl_mechanism_supported(const char *name, size_t len);

/*
 * Starts an exchange for `mechanism` (NUL-terminated, ASCII case ignored).
 * `opt` is reserved for future limits and may be NULL; it is not kept.
 * `mem` (NULL: malloc) is copied. Returns 0 and sets `*out`, or
 * MAILD_ERR_INVAL (`out` or `mechanism` NULL), MAILD_ERR_UNSUPPORTED (not
 * PLAIN or LOGIN) or MAILD_ERR_NOMEM; on error `*out` is set to NULL (when
 * `out` is not NULL).
 */
MAILD_EXTERN int maild_sasl_server_new(maild_sasl_server **out,
                                       const char *mechanism,
                                       const maild_options *opt,
                                       const maild_mem *mem);

/* Wipes the credentials and frees the object; NULL is a no-op. */
MAILD_EXTERN void maild_sasl_server_del(maild_sasl_server *s);

/*
 * One step of the exchange. `response[0..len)` is the client's base64 text
 * as sent, without CRLF (see above for NULL and "="). `challenge` must have
 * room for MAILD_SASL_CHALLENGE_SIZE octets; on MAILD_SASL_CONTINUE it
 * holds the base64 challenge, NUL-terminated, `*challenge_len` octets long
 * (0 for PLAIN's empty challenge). On any other result `*challenge_len` is
 * 0 and challenge[0] is NUL.
 *
 * Returns:
 *   MAILD_SASL_CONTINUE   send the challenge and call again with the reply;
 *   MAILD_SASL_DONE       the credentials are available (getters below);
 *   MAILD_ERR_SYNTAX      the response is not strict base64 (RFC 4648, see
 *                         base64.h: padding required, no white space), or
 *                         a PLAIN message is not exactly
 *                         authzid NUL authcid NUL passwd, or the authcid
 *                         or password is empty;
 *   MAILD_ERR_TOO_LONG    a field is over its limit (authcid or authzid
 *                         over MAILD_SASL_NAME_MAX, password over
 *                         MAILD_SASL_PASSWORD_MAX), or the decoded PLAIN
 *                         message is longer than any valid one;
 *   MAILD_ERR_BAD_CHAR    a NUL or ASCII control octet in authcid or
 *                         authzid, a NUL in a LOGIN password, or invalid
 *                         UTF-8 where UTF-8 is required (see above);
 *   MAILD_ERR_STATE       the exchange already ended (DONE or an error);
 *   MAILD_ERR_INVAL       `s`, `challenge` or `challenge_len` NULL,
 *                         `cap` under MAILD_SASL_CHALLENGE_SIZE, or
 *                         `response` NULL after the first step (`len` is
 *                         then ignored). Nothing changes: the step may be
 *                         retried.
 * SYNTAX, TOO_LONG and BAD_CHAR end the exchange: later steps give
 * MAILD_ERR_STATE and the getters NULL. Never MAILD_ERR_NOMEM (no
 * allocation after _new()).
 */
MAILD_EXTERN int maild_sasl_server_step(maild_sasl_server *s,
                                        const char *response, size_t len,
                                        char *challenge, size_t cap,
                                        size_t *challenge_len);

/*
 * The credentials, once a step returned MAILD_SASL_DONE; NULL before (and
 * after an error). Each is NUL-terminated (none may hold a NUL) and its
 * length is stored in `*len` when `len` is not NULL (0 when NULL is
 * returned). The strings belong to the object and stay valid until
 * maild_sasl_server_del(), which wipes them.
 */
MAILD_EXTERN const char *maild_sasl_server_authcid(const maild_sasl_server *s,
                                                   size_t *len);
MAILD_EXTERN const char *maild_sasl_server_authzid(const maild_sasl_server *s,
                                                   size_t *len);
MAILD_EXTERN const char *maild_sasl_server_password(const maild_sasl_server *s,
                                                    size_t *len);

/* The mechanism in upper case ("PLAIN", "LOGIN"); static string; NULL for
   `s` NULL. */
MAILD_EXTERN const char *
maild_sasl_server_mechanism(const maild_sasl_server *s);

#ifdef __cplusplus
}
#endif
#endif
