/*
 * POP3 server engine (RFC 1939, sans-I/O) with CAPA and RESP-CODES
 * (RFC 2449), STLS (RFC 2595) and AUTH (RFC 5034).
 *
 * The engine turns the octets a client sent into callbacks and the octets
 * to send back. It opens no socket, reads no clock and knows no mailbox:
 *
 *   n = maild_pop3_server_recv(s, in, len);       consumed, or < 0
 *   while ((m = maild_pop3_server_send(s, &out)) > 0)
 *     write_to_peer(out, m);
 *   if (!maild_pop3_server_want_read(s) && !maild_pop3_server_want_write(s))
 *     close_connection();
 *
 * recv() may consume less than it was given: while a callback's decision is
 * pending (MAILD_ERR_DEFER), while a RETR/TOP/LIST/UIDL response is still
 * being produced, while output is backed up past OUTPUT_BACKLOG, or after
 * STLS. The caller keeps the rest and offers it again later. Responses
 * always leave in command order (RFC 2449 6.6 PIPELINING).
 *
 * Message contents stream: for RETR and TOP the engine pulls octets from
 * on_read() in pieces, dot-stuffs them (line ends become CRLF) and stops
 * pulling while output is above OUTPUT_BACKLOG; send() pulls again when the
 * output has drained, so want_write() stays nonzero while a response is
 * being produced and the embedder is not being waited for.
 *
 * While the phase is DECISION the embedder owes an answer (_reply() or
 * _resume()); want_read() and want_write() may both be 0 then, which does
 * not mean the session is over: closing() says that.
 *
 * Messages are numbered 1..count on the wire; callbacks get 0-based
 * indexes into the maildrop given with maild_pop3_server_set_maildrop().
 *
 * Callbacks get the session first and `user_data` last and return:
 *   0                 go on; a filled `*reply` (status != DEFAULT) replaces
 *                     the default response;
 *   MAILD_ERR_DEFER   the answer comes later through _reply()/_resume();
 *                     strings in the event are valid only during the call;
 *   other negative    the embedder failed: "-ERR [SYS/TEMP]" and the
 *                     session closes.
 * Callbacks must not call _recv()/_send()/_del() on the same session. Any
 * callback may be NULL (default response).
 *
 * Options used: HOSTNAME, STARTTLS (offer STLS), TLS_ACTIVE (implicit TLS,
 * RFC 8314), AUTH_MECHANISMS (SASL mechanisms for AUTH and CAPA),
 * AUTH_PLAINTEXT (allow USER/PASS/AUTH without TLS), MAX_AUTH_LINE (AUTH
 * command and SASL response lines), MAX_ERRORS, OUTPUT_BACKLOG. Other
 * command lines are limited to MAILD_POP3_MAX_COMMAND octets (RFC 2449 4).
 */
#ifndef MAILD_POP3_SERVER_H
#define MAILD_POP3_SERVER_H

#include "maild/common.h"
#include "maild/options.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest command line, CRLF included (RFC 2449 4). */
#define MAILD_POP3_MAX_COMMAND 255
/* Longest UIDL string (RFC 1939 7: 1 to 70 characters 0x21..0x7e). */
#define MAILD_POP3_MAX_UIDL 70

typedef struct maild_pop3_server maild_pop3_server;

/* What the session waits for; the runtime picks a timeout per phase
   (RFC 1939 3: the autologout timer is at least 10 minutes). */
typedef enum maild_pop3_phase {
  MAILD_POP3_PHASE_AUTHORIZATION, /* waiting for USER/PASS/AUTH */
  MAILD_POP3_PHASE_AUTH,          /* waiting for a SASL response line */
  MAILD_POP3_PHASE_TRANSACTION,   /* logged in, waiting for a command */
  MAILD_POP3_PHASE_DECISION,      /* waiting for the embedder */
  MAILD_POP3_PHASE_TLS,           /* +OK to STLS sent; handshake pending */
  MAILD_POP3_PHASE_CLOSING,       /* session over; flush output, close */
} maild_pop3_phase;

/* How the embedder answers an event. */
typedef enum maild_pop3_status {
  MAILD_POP3_DEFAULT = 0, /* the engine's default response */
  MAILD_POP3_OK,          /* "+OK text" */
  MAILD_POP3_ERR,         /* "-ERR [code] text" */
  MAILD_POP3_CONTINUE,    /* AUTH only: "+ text" (base64 challenge) */
} maild_pop3_status;

/*
 * A response chosen by the embedder. `code` is an RFC 2449 response code
 * without brackets ("IN-USE", "AUTH", "SYS/TEMP", "SYS/PERM") or NULL;
 * `text` may be NULL (default text). Control octets become '?'. The engine
 * copies the strings before the call returns.
 */
typedef struct maild_pop3_reply {
  maild_pop3_status status;
  const char *code;
  const char *text;
} maild_pop3_reply;

/* One message of the maildrop. */
typedef struct maild_pop3_msg {
  /* Exact size in octets as it will be sent: CRLF line ends, before
     dot-stuffing (RFC 1939 11). */
  uint64_t size;
  /* Unique id, 1..70 octets 0x21..0x7e (RFC 1939 7); NUL-terminated. */
  const char *uidl;
} maild_pop3_msg;

/* A login attempt: USER/PASS, or one SASL step of AUTH. */
typedef struct maild_pop3_auth {
  /* "USER" for USER/PASS; else the SASL mechanism, upper-cased. */
  const char *mechanism;
  /* USER/PASS: the name given with USER and the password (not
     NUL-terminated). AUTH: user NULL, and `response` is the client's
     base64 text for this step, or NULL when AUTH had no initial response
     ("=" is an empty one, RFC 5034 4). */
  const char *user;
  size_t user_len;
  const char *password;
  size_t password_len;
  const char *response;
  size_t response_len;
  unsigned step; /* 0 for PASS or the AUTH command, 1.. for responses */
} maild_pop3_auth;

typedef struct maild_pop3_server_callbacks {
  /* A login attempt. The embedder checks the credentials and locks the
     maildrop. OK logs in (call maild_pop3_server_set_maildrop() before
     answering, else the maildrop is empty). ERR refuses: code "AUTH" for
     bad credentials (RFC 3206 5; the default when `code` is NULL),
     "IN-USE" when the lock failed (RFC 2449 8.1.1), "SYS/TEMP" for a
     store failure. CONTINUE (AUTH only) sends "+ text" and waits for the
     next response line. DEFAULT means "-ERR [AUTH] Authentication
     failed". A failed attempt counts toward MAX_ERRORS. */
  int (*on_auth)(maild_pop3_server *s, const maild_pop3_auth *auth,
                 maild_pop3_reply *reply, void *user_data);
  /* Reads message `index` from `offset`: copy up to `cap` octets into
     `buf` and set `*len`; `*len` 0 means the end of the message. Returns
     0; MAILD_ERR_DEFER (nothing read now: call _resume() when data is
     ready, the engine calls again with the same arguments); or a negative
     error: before any content left, the client gets "-ERR [SYS/TEMP]";
     afterwards the response cannot be completed and the session closes.
     The engine stops calling once TOP has what it needs. */
  int (*on_read)(maild_pop3_server *s, size_t index, uint64_t offset,
                 uint8_t *buf, size_t cap, size_t *len, void *user_data);
  /* QUIT in TRANSACTION (the UPDATE state, RFC 1939 6): remove the
     messages `deleted[0..n)` (indexes, ascending) durably, then unlock.
     Default "+OK"; an ERR (e.g. "SYS/TEMP") tells the client some
     deletions failed. Never called when the session ends without QUIT. */
  int (*on_update)(maild_pop3_server *s, const size_t *deleted, size_t n,
                   maild_pop3_reply *reply, void *user_data);
  /* A command was refused by the engine itself (syntax, sequence,
     limits); for logging. `line` is the command (truncated). */
  void (*on_error)(maild_pop3_server *s, const char *line, size_t len,
                   void *user_data);
} maild_pop3_server_callbacks;

/*
 * Creates a session and queues "+OK <hostname> POP3 server ready". `cb`
 * and `opt` are copied (NULL: defaults); `mem` (NULL: malloc) is copied
 * and used for every allocation of the session.
 * Returns 0, MAILD_ERR_INVAL (`out` NULL) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_pop3_server_new(maild_pop3_server **out,
                                       const maild_pop3_server_callbacks *cb,
                                       void *user_data,
                                       const maild_options *opt,
                                       const maild_mem *mem);

/* Frees the session without calling callbacks; NULL is a no-op. A session
   freed without QUIT deletes nothing (RFC 1939 6). */
MAILD_EXTERN void maild_pop3_server_del(maild_pop3_server *s);

/*
 * Feeds client octets. Returns the number consumed (possibly fewer, see
 * above), or MAILD_ERR_NOMEM or MAILD_ERR_INVAL. After MAILD_ERR_NOMEM
 * either nothing happened (offer the same input again later) or, if
 * maild_pop3_server_closing() says so, the session is over. Octets fed
 * after the session is closing are consumed and ignored.
 */
MAILD_EXTERN maild_ssize maild_pop3_server_recv(maild_pop3_server *s,
                                                const uint8_t *in, size_t len);

/*
 * Takes pending output, producing more of a streaming response first when
 * nothing is pending: `*data` points at it and the length is returned (0
 * when nothing is pending). The octets count as sent; the pointer stays
 * valid until the next call on the session. Returns MAILD_ERR_NOMEM if a
 * streaming response could not go on (the session is closing).
 */
MAILD_EXTERN maild_ssize maild_pop3_server_send(maild_pop3_server *s,
                                                const uint8_t **data);

/* Nonzero while the session will take more input. */
MAILD_EXTERN int maild_pop3_server_want_read(const maild_pop3_server *s);

/* Nonzero while output is pending or a response can be produced. */
MAILD_EXTERN int maild_pop3_server_want_write(const maild_pop3_server *s);

/* Nonzero once the session is over (QUIT, fatal error, terminate). */
MAILD_EXTERN int maild_pop3_server_closing(const maild_pop3_server *s);

MAILD_EXTERN maild_pop3_phase
maild_pop3_server_phase(const maild_pop3_server *s);

/*
 * Gives the maildrop of the user logging in; call it from on_auth (or
 * before the deferred answer) when the answer is OK. `msgs` and the UIDL
 * strings are copied. Returns 0, MAILD_ERR_INVAL (a UIDL that breaks RFC
 * 1939 7, or `msgs` NULL with n > 0), MAILD_ERR_STATE (already logged in)
 * or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_pop3_server_set_maildrop(maild_pop3_server *s,
                                                const maild_pop3_msg *msgs,
                                                size_t n);

/*
 * Answers the pending on_auth or on_update decision; `reply` NULL means
 * the default. Returns 0, MAILD_ERR_STATE (nothing pending) or
 * MAILD_ERR_NOMEM (the session is closing).
 */
MAILD_EXTERN int maild_pop3_server_reply(maild_pop3_server *s,
                                         const maild_pop3_reply *reply);

/* on_read data is ready (after MAILD_ERR_DEFER), or the same as
   maild_pop3_server_reply(s, NULL). Returns 0 or MAILD_ERR_STATE. */
MAILD_EXTERN int maild_pop3_server_resume(maild_pop3_server *s);

/*
 * The TLS handshake after STLS completed: the session is back in
 * AUTHORIZATION with nothing learned in the clear (RFC 2595 4). Returns 0
 * or MAILD_ERR_STATE (not in the TLS phase).
 */
MAILD_EXTERN int maild_pop3_server_tls_started(maild_pop3_server *s);

/*
 * Ends the session from outside (autologout timer, shutdown): `text`, if
 * not NULL, is queued as "-ERR text" and the session is closing. No
 * deletion happens. Returns 0 or MAILD_ERR_NOMEM (the session still
 * closes).
 */
MAILD_EXTERN int maild_pop3_server_terminate(maild_pop3_server *s,
                                             const char *text);

MAILD_EXTERN int maild_pop3_server_is_tls(const maild_pop3_server *s);
MAILD_EXTERN int maild_pop3_server_is_authenticated(const maild_pop3_server *s);

#ifdef __cplusplus
}
#endif
#endif
