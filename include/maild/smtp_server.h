/*
 * SMTP server engine (RFC 5321, sans-I/O).
 *
 * The engine turns the octets a client sent into callbacks and the octets
 * to send back. It opens no socket, reads no clock and knows no event loop:
 *
 *   n = maild_smtp_server_recv(s, in, len);       consumed, or < 0
 *   while ((m = maild_smtp_server_send(s, &out)) > 0)
 *     write_to_peer(out, m);
 *   if (!maild_smtp_server_want_read(s) && !maild_smtp_server_want_write(s))
 *     close_connection();
 *
 * recv() may consume less than it was given: while a callback's decision is
 * pending (MAILD_ERR_DEFER), while output is backed up past the
 * OUTPUT_BACKLOG option, or after STARTTLS. The caller keeps the rest and
 * offers it again after maild_smtp_server_reply() / _resume() or after
 * draining output. Replies always leave in command order (RFC 2920).
 *
 * Extensions: PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8,
 * DSN (parameters parsed and handed over), CHUNKING/BDAT (RFC 3030), and
 * the STARTTLS (RFC 3207) and AUTH (RFC 4954) hooks.
 *
 * Callbacks. Each gets the session first and `user_data` last, and returns:
 *   0                 go on; if it filled `*reply` (code != 0) that reply is
 *                     sent instead of the default one (a 4xx/5xx refuses);
 *   MAILD_ERR_DEFER   the answer comes later through _reply()/_resume();
 *                     strings in the event are valid only during the call;
 *   other negative    the embedder failed: the engine answers 421 4.3.0
 *                     and the session is closing (take the output, then
 *                     close the connection).
 * Callbacks must not call _recv()/_send()/_del() on the same session. Any
 * callback may be NULL (default reply).
 */
#ifndef MAILD_SMTP_SERVER_H
#define MAILD_SMTP_SERVER_H

#include "maild/common.h"
#include "maild/address.h"
#include "maild/esmtp.h"
#include "maild/options.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct maild_smtp_server maild_smtp_server;

/* What the session waits for; the runtime picks a timeout per phase
   (RFC 5321 4.5.3.2). */
typedef enum maild_smtp_phase {
  MAILD_SMTP_PHASE_GREETING, /* greeting not sent yet (DEFER_GREETING) */
  MAILD_SMTP_PHASE_COMMAND,  /* waiting for a command (4.5.3.2.7: 5 min) */
  MAILD_SMTP_PHASE_DATA,     /* reading a DATA body (4.5.3.2.5: 3 min) */
  MAILD_SMTP_PHASE_BDAT,     /* reading a BDAT chunk */
  MAILD_SMTP_PHASE_AUTH,     /* waiting for a SASL response line */
  MAILD_SMTP_PHASE_DECISION, /* waiting for the embedder, not the client */
  MAILD_SMTP_PHASE_TLS,      /* 220 to STARTTLS sent; handshake pending */
  MAILD_SMTP_PHASE_CLOSING,  /* session over; flush output, then close */
} maild_smtp_phase;

/* Why a transaction ended without on_data_end (on_tx_abort). */
typedef enum maild_smtp_abort {
  MAILD_SMTP_ABORT_RSET = 1, /* RSET, or HELO/EHLO restarting */
  MAILD_SMTP_ABORT_TOO_BIG,  /* body over MAX_MESSAGE_SIZE: 552 sent */
  MAILD_SMTP_ABORT_LOOP,     /* too many Received headers: 554 sent */
  MAILD_SMTP_ABORT_REFUSED,  /* on_data_start or a BDAT chunk refused */
  MAILD_SMTP_ABORT_TLS,      /* STARTTLS reset the session */
  MAILD_SMTP_ABORT_CLOSE,    /* session ended (QUIT, error, terminate) */
} maild_smtp_abort;

typedef struct maild_smtp_helo {
  const char *name; /* the argument as sent; not NUL-terminated */
  size_t name_len;
  int esmtp;      /* 1 for EHLO */
  int name_valid; /* 1 if a domain or address literal (RFC 5321 4.1.1.1) */
} maild_smtp_helo;

typedef struct maild_smtp_mail {
  const maild_path *from;           /* reverse-path */
  const maild_esmtp_params *params; /* SIZE, BODY, SMTPUTF8, RET, ENVID */
} maild_smtp_mail;

typedef struct maild_smtp_rcpt {
  const maild_path *to;             /* forward-path */
  const maild_esmtp_params *params; /* NOTIFY, ORCPT */
  size_t index;                     /* 0 for the first RCPT of the tx */
} maild_smtp_rcpt;

typedef struct maild_smtp_auth {
  const char *mechanism; /* upper-cased, NUL-terminated */
  /* The client's response for this step, as sent (base64 text), or NULL
     when the AUTH command had no initial response. "=" is an empty initial
     response (RFC 4954 4). Not NUL-terminated. */
  const char *response;
  size_t response_len;
  unsigned step; /* 0 for the AUTH command, 1.. for continuation lines */
} maild_smtp_auth;

typedef struct maild_smtp_server_callbacks {
  /* HELO/EHLO accepted syntactically. Default: 250 (EHLO: with the
     extension list). A refusal leaves the session without a HELO. */
  int (*on_helo)(maild_smtp_server *s, const maild_smtp_helo *helo,
                 maild_reply *reply, void *user_data);
  /* MAIL FROM; a transaction begins if accepted. Default 250 2.1.0. */
  int (*on_mail)(maild_smtp_server *s, const maild_smtp_mail *mail,
                 maild_reply *reply, void *user_data);
  /* RCPT TO. Default 250 2.1.5. */
  int (*on_rcpt)(maild_smtp_server *s, const maild_smtp_rcpt *rcpt,
                 maild_reply *reply, void *user_data);
  /* DATA (before 354) or the first BDAT of a transaction. Default: go on.
     A refusal ends the transaction (on_tx_abort with REFUSED). */
  int (*on_data_start)(maild_smtp_server *s, maild_reply *reply,
                       void *user_data);
  /* Body octets, dot-unstuffed, CRLFs as sent; at most the size limit in
     total. MAILD_ERR_DEFER here means "consumed, but pause input until
     _resume()" (back-pressure); `reply` is not used. */
  int (*on_data_chunk)(maild_smtp_server *s, const uint8_t *data, size_t len,
                       void *user_data);
  /* The whole body arrived: commit it. Default 250 2.0.0. This ends the
     transaction whatever the reply; on_tx_abort is not called after it. */
  int (*on_data_end)(maild_smtp_server *s, maild_reply *reply, void *user_data);
  /* The open transaction ended without on_data_end; drop what was kept.
     Return value ignored. */
  void (*on_tx_abort)(maild_smtp_server *s, maild_smtp_abort why,
                      void *user_data);
  /* STARTTLS. Default: 220 2.0.0, then the phase becomes TLS: the embedder
     runs the handshake and calls maild_smtp_server_tls_started(). A
     refusal (e.g. 454 4.7.0) keeps the session in plaintext. */
  int (*on_starttls)(maild_smtp_server *s, maild_reply *reply, void *user_data);
  /* One SASL step. The reply must be given (no default): 334 continues
     (its text is the base64 challenge), 235 authenticates the session,
     anything else ends the exchange. */
  int (*on_auth)(maild_smtp_server *s, const maild_smtp_auth *auth,
                 maild_reply *reply, void *user_data);
  /* A command was refused by the engine itself (syntax, sequence,
     limits); for logging. `line` is the command (truncated, controls not
     removed); `code` the reply code. Return value ignored. */
  void (*on_error)(maild_smtp_server *s, int code, const char *line, size_t len,
                   void *user_data);
} maild_smtp_server_callbacks;

/*
 * Creates a session. `cb` and `opt` are copied (NULL: defaults); `mem`
 * (NULL: malloc) is copied and used for every allocation of the session.
 * Unless the DEFER_GREETING option is set, the 220 greeting is queued at
 * once. A client that sends octets before it has taken the greeting with
 * _send() is a pre-greeting talker (TESTPLAN S15): its octets are dropped
 * and it gets 554 5.5.1 and the session closes.
 * Returns 0, MAILD_ERR_INVAL (`out` NULL) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_smtp_server_new(maild_smtp_server **out,
                                       const maild_smtp_server_callbacks *cb,
                                       void *user_data,
                                       const maild_options *opt,
                                       const maild_mem *mem);

/* Frees the session without calling callbacks; NULL is a no-op. */
MAILD_EXTERN void maild_smtp_server_del(maild_smtp_server *s);

/*
 * Feeds client octets. Returns the number consumed (possibly fewer than
 * `len`, see above; always 0 < n when the engine can make progress), or
 * MAILD_ERR_NOMEM or MAILD_ERR_INVAL. After MAILD_ERR_NOMEM either
 * nothing happened (an unfinished line could not be stored: offer the
 * same input again later) or, if maild_smtp_server_closing() says so, a
 * reply could not be queued and the session is over.
 * Octets fed after the session is closing are consumed and ignored.
 */
MAILD_EXTERN maild_ssize maild_smtp_server_recv(maild_smtp_server *s,
                                                const uint8_t *in, size_t len);

/*
 * Takes pending output: `*data` points at it and the length is returned
 * (0 when nothing is pending). The octets count as sent; the pointer stays
 * valid until the next call on the session.
 */
MAILD_EXTERN maild_ssize maild_smtp_server_send(maild_smtp_server *s,
                                                const uint8_t **data);

/* Nonzero while the session will take more input (not closing, not
   stalled on a decision, a handshake or output back-pressure). */
MAILD_EXTERN int maild_smtp_server_want_read(const maild_smtp_server *s);

/* Nonzero while output is pending. */
MAILD_EXTERN int maild_smtp_server_want_write(const maild_smtp_server *s);

/* Nonzero once the session is over (QUIT, 421, terminate, fatal error):
   the embedder closes the connection when want_write() becomes 0. */
MAILD_EXTERN int maild_smtp_server_closing(const maild_smtp_server *s);

MAILD_EXTERN maild_smtp_phase
maild_smtp_server_phase(const maild_smtp_server *s);

/*
 * Sends the greeting when the DEFER_GREETING option is set: `reply` NULL
 * or code 0 gives "220 <hostname> ESMTP"; a 421 or 554 turns the
 * connection away (the session closes after it). Returns 0,
 * MAILD_ERR_STATE (already greeted) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_smtp_server_greet(maild_smtp_server *s,
                                         const maild_reply *reply);

/*
 * Answers the pending decision (the callback returned MAILD_ERR_DEFER):
 * `reply` NULL or code 0 means the default reply. Input is consumed again
 * from the next recv(). Returns 0, MAILD_ERR_STATE (nothing pending) or
 * MAILD_ERR_NOMEM (the decision stays pending; try again).
 */
MAILD_EXTERN int maild_smtp_server_reply(maild_smtp_server *s,
                                         const maild_reply *reply);

/* Same as maild_smtp_server_reply(s, NULL). */
MAILD_EXTERN int maild_smtp_server_resume(maild_smtp_server *s);

/*
 * The TLS handshake after STARTTLS completed. Everything learned before is
 * forgotten (RFC 3207 4.2): HELO, authentication, any transaction; the
 * client must send EHLO again. `tls_info` ("TLSv1.2 ECDHE-...") is kept
 * for maild_smtp_server_tls_info(). Returns 0, MAILD_ERR_STATE (not in the
 * TLS phase) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_smtp_server_tls_started(maild_smtp_server *s,
                                               const char *tls_info);

/*
 * Ends the session from outside (timeout, shutdown, peer gone): the open
 * transaction is aborted (on_tx_abort with CLOSE), `reply` (e.g. 421 4.4.2)
 * is queued if not NULL, and the session is closing. Returns 0 or
 * MAILD_ERR_NOMEM (the reply could not be queued; the session still
 * closes).
 */
MAILD_EXTERN int maild_smtp_server_terminate(maild_smtp_server *s,
                                             const maild_reply *reply);

/* Session facts, valid until the next call that changes them. */
MAILD_EXTERN const char *maild_smtp_server_helo_name(
    const maild_smtp_server *s); /* NUL-terminated; NULL before HELO */
MAILD_EXTERN int maild_smtp_server_is_esmtp(const maild_smtp_server *s);
MAILD_EXTERN int maild_smtp_server_is_tls(const maild_smtp_server *s);
MAILD_EXTERN const char *maild_smtp_server_tls_info(const maild_smtp_server *s);
MAILD_EXTERN int maild_smtp_server_is_authenticated(const maild_smtp_server *s);

#ifdef __cplusplus
}
#endif
#endif
