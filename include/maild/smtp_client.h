/*
 * SMTP client engine (RFC 5321), sans-I/O: the mirror of the server
 * engine. It turns messages into commands and the server's replies into
 * per-recipient results, and never touches a socket, a clock or a
 * resolver. The caller connects, feeds what the server sends to
 * maild_smtp_client_recv(), writes what maild_smtp_client_send() returns,
 * runs the TLS handshake when asked, and enforces the per-phase timeouts
 * (maild_smtp_client_phase_timeout()).
 *
 * A session: the server's greeting, EHLO (HELO when EHLO is refused),
 * STARTTLS when the server offers it and the options ask for it (RFC 3207;
 * a server that sends anything after its 220 before the handshake is
 * dropped, TESTPLAN Q8), EHLO again, AUTH PLAIN or LOGIN when credentials
 * are set (RFC 4954, for smarthosts), then messages one after another on
 * the same connection, then QUIT.
 *
 * A message: MAIL FROM with SIZE, BODY=8BITMIME, SMTPUTF8 and the DSN
 * parameters the server supports (RFC 1870, 6152, 6531, 3461), one RCPT
 * per recipient, then the body. MAIL, the RCPTs and DATA go in one write
 * when the server offers PIPELINING (RFC 2920), one at a time otherwise.
 * The body comes from the on_read callback in pieces, with any line ends;
 * it leaves with CRLF line ends only and, after DATA, with leading dots
 * doubled (TESTPLAN Q7). When the server offers CHUNKING and PIPELINING
 * and the option CHUNKING is 1, the body goes in BDAT chunks instead (RFC
 * 3030) once the RCPT replies are in.
 *
 * Results: every recipient of a message gets exactly one on_rcpt call:
 * at its RCPT reply when refused, else at the reply that ends the message
 * (the reply after the final dot or BDAT LAST, or the refusal of DATA).
 * A failure of the session itself (a 421, a reply that cannot be parsed,
 * a timeout or a lost connection reported through
 * maild_smtp_client_terminate()) gives every recipient without a result a
 * temporary failure, so mail is retried and never lost; replies the engine
 * makes up itself are marked `local`.
 */
#ifndef MAILD_SMTP_CLIENT_H
#define MAILD_SMTP_CLIENT_H

#include "maild/common.h"
#include "maild/options.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct maild_smtp_client maild_smtp_client;

/* What the engine waits for; the caller's timer follows it. */
typedef enum maild_smtp_client_phase {
  MAILD_SMTP_CLIENT_GREETING, /* the 220 greeting */
  MAILD_SMTP_CLIENT_COMMAND,  /* a reply to EHLO, HELO, STARTTLS, AUTH, RSET */
  MAILD_SMTP_CLIENT_TLS,      /* the caller's TLS handshake */
  MAILD_SMTP_CLIENT_IDLE,     /* ready: waiting for a message or QUIT */
  MAILD_SMTP_CLIENT_MAIL,     /* replies to MAIL and RCPT */
  MAILD_SMTP_CLIENT_DATA,     /* the reply to DATA (354) */
  MAILD_SMTP_CLIENT_BODY,     /* sending the body (also BDAT replies) */
  MAILD_SMTP_CLIENT_DATA_END, /* the reply after the final dot */
  MAILD_SMTP_CLIENT_QUIT,     /* the reply to QUIT */
  MAILD_SMTP_CLIENT_CLOSED    /* finished: close the connection once the
                                 output is written */
} maild_smtp_client_phase;

/*
 * RFC 5321 4.5.3.2 timeouts in milliseconds for a phase: greeting 5 min,
 * commands (EHLO, MAIL, RCPT, ...) 5 min, DATA initiation 2 min, each body
 * block 3 min, the reply after the final dot 10 min, QUIT 2 min; TLS 1 min;
 * 0 for IDLE and CLOSED (no timer: the caller's own idle limit applies).
 */
MAILD_EXTERN uint64_t
maild_smtp_client_phase_timeout(maild_smtp_client_phase phase);

/* Extensions the server announced (after the last EHLO). */
enum {
  MAILD_SMTP_EXT_PIPELINING = 1u << 0,
  MAILD_SMTP_EXT_SIZE = 1u << 1,
  MAILD_SMTP_EXT_8BITMIME = 1u << 2,
  MAILD_SMTP_EXT_SMTPUTF8 = 1u << 3,
  MAILD_SMTP_EXT_DSN = 1u << 4,
  MAILD_SMTP_EXT_STARTTLS = 1u << 5,
  MAILD_SMTP_EXT_CHUNKING = 1u << 6,
  MAILD_SMTP_EXT_AUTH_PLAIN = 1u << 7,
  MAILD_SMTP_EXT_AUTH_LOGIN = 1u << 8,
  MAILD_SMTP_EXT_ENHANCEDSTATUSCODES = 1u << 9
};

/* A reply as the callbacks see it. */
typedef struct maild_smtp_client_reply {
  int code;             /* 200..599 */
  const char *enhanced; /* "4.4.2", or "" when the server gave none */
  const char *text;     /* the lines joined with '\n'; not NUL-terminated */
  size_t text_len;
  int local; /* 1: made by the engine (no such reply came from the server) */
} maild_smtp_client_reply;

typedef struct maild_smtp_client_rcpt {
  const char *address; /* forward-path without <>, NUL-terminated */
  const char *notify;  /* NULL, or RFC 3461 NOTIFY value ("SUCCESS,DELAY") */
  const char *orcpt;   /* NULL, or RFC 3461 ORCPT value, xtext already */
} maild_smtp_client_rcpt;

typedef struct maild_smtp_client_message {
  const char *from; /* reverse-path without <>; "" is the null path */
  const maild_smtp_client_rcpt *rcpts;
  size_t nrcpts;     /* at least 1 */
  uint64_t size;     /* body octets, announced with SIZE; 0: unknown */
  int body_8bit;     /* announce BODY=8BITMIME when offered */
  int smtputf8;      /* the message needs SMTPUTF8 (RFC 6531) */
  const char *ret;   /* NULL, "FULL" or "HDRS" (RFC 3461) */
  const char *envid; /* NULL, or RFC 3461 ENVID value, xtext already */
} maild_smtp_client_message;

typedef struct maild_smtp_client_callbacks {
  /*
   * The session is ready for a message: after the greeting, EHLO,
   * STARTTLS and AUTH, and again after each message. The caller may call
   * maild_smtp_client_submit() or maild_smtp_client_quit() here or later.
   */
  void (*on_ready)(maild_smtp_client *c, void *user_data);
  /*
   * The server accepted STARTTLS: start the handshake on the connection,
   * then call maild_smtp_client_tls_started(). Return 0, or nonzero when
   * TLS cannot start (the session then fails with a local 4xx).
   */
  int (*on_starttls)(maild_smtp_client *c, void *user_data);
  /*
   * Message content, as stored (any line ends): copy up to `cap` octets of
   * the next part into `buf`, set *len (0 at the end) and return 0; or
   * return MAILD_ERR_DEFER and call maild_smtp_client_resume() once the
   * octets are ready (the engine calls on_read again then); or return an
   * error: the message fails with a local 451 4.3.0 and the session ends.
   */
  int (*on_read)(maild_smtp_client *c, uint8_t *buf, size_t cap, size_t *len,
                 void *user_data);
  /* One recipient's result (index into the message's rcpts). */
  void (*on_rcpt)(maild_smtp_client *c, size_t index,
                  const maild_smtp_client_reply *r, void *user_data);
  /* The message is finished: every on_rcpt call has been made. `r` is the
     reply that ended it (the final reply, the refusal of MAIL or DATA, the
     last RCPT refusal, or the session's failure). */
  void (*on_message)(maild_smtp_client *c, const maild_smtp_client_reply *r,
                     void *user_data);
} maild_smtp_client_callbacks;

/*
 * Creates a client session waiting for the greeting. Options used:
 * HOSTNAME (the EHLO name; default "localhost"), STARTTLS (1: use STARTTLS
 * when offered), TLS_REQUIRED (1: fail with a local 4xx rather than send
 * without TLS), TLS_ACTIVE (1: the connection is TLS already), CHUNKING
 * (1: use BDAT when offered with PIPELINING), AUTH_PLAINTEXT (1: AUTH
 * without TLS), OUTPUT_BACKLOG (how much output the engine prepares before
 * the caller takes it). `cb`, `opt` and `mem` are copied.
 * Returns 0, MAILD_ERR_INVAL or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_smtp_client_new(maild_smtp_client **out,
                                       const maild_smtp_client_callbacks *cb,
                                       void *user_data,
                                       const maild_options *opt,
                                       const maild_mem *mem);

/* Frees the session (credentials are wiped). NULL is a no-op. */
MAILD_EXTERN void maild_smtp_client_del(maild_smtp_client *c);

/*
 * Credentials for AUTH (a smarthost); copied. Set before the greeting is
 * fed. AUTH PLAIN is used when offered, else LOGIN; a server that offers
 * neither fails the session with a local 4xx, as does one without TLS
 * unless AUTH_PLAINTEXT is 1. Returns 0, MAILD_ERR_INVAL (NULL, empty, too
 * long: 255 octets each, or a NUL inside), MAILD_ERR_STATE or
 * MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_smtp_client_set_auth(maild_smtp_client *c,
                                            const char *user,
                                            const char *password);

/*
 * Feeds octets from the server. Returns how many were consumed (all of
 * them, except while the engine waits for the TLS handshake or after the
 * session ended), or MAILD_ERR_INVAL or MAILD_ERR_NOMEM (the session has
 * then failed as if terminated). Malformed replies are not an error of
 * this call: they end the session with a local 421 result.
 */
MAILD_EXTERN maild_ssize maild_smtp_client_recv(maild_smtp_client *c,
                                                const uint8_t *in, size_t len);

/*
 * Output for the server: sets *data and returns its length (0 when there
 * is none now). The octets stay valid until the next call on the session.
 * This is where body content is pulled through on_read. Returns
 * MAILD_ERR_INVAL or MAILD_ERR_NOMEM (the session has then failed).
 */
MAILD_EXTERN maild_ssize maild_smtp_client_send(maild_smtp_client *c,
                                                const uint8_t **data);

/* 1 when the engine wants input from the server now. */
MAILD_EXTERN int maild_smtp_client_want_read(const maild_smtp_client *c);

/* 1 when maild_smtp_client_send() has (or can make) output now. */
MAILD_EXTERN int maild_smtp_client_want_write(const maild_smtp_client *c);

MAILD_EXTERN maild_smtp_client_phase
maild_smtp_client_get_phase(const maild_smtp_client *c);

/*
 * Starts a message (copied). Allowed before the session is ready (it
 * waits) and when idle; one message at a time. Returns 0, MAILD_ERR_STATE
 * (a message is in progress, or the session is ending), MAILD_ERR_INVAL
 * (no recipients, or an address or parameter that is empty where not
 * allowed, over 256 octets, or holds control octets, spaces, '<' or '>')
 * or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_smtp_client_submit(maild_smtp_client *c,
                                          const maild_smtp_client_message *m);

/* After on_read returned MAILD_ERR_DEFER. Returns 0 or MAILD_ERR_STATE. */
MAILD_EXTERN int maild_smtp_client_resume(maild_smtp_client *c);

/* The TLS handshake after STARTTLS succeeded: EHLO again. Returns 0 or
   MAILD_ERR_STATE. */
MAILD_EXTERN int maild_smtp_client_tls_started(maild_smtp_client *c);

/* Sends QUIT once idle (now, or after the message in progress). Returns 0
   or MAILD_ERR_STATE (already quitting or closed). */
MAILD_EXTERN int maild_smtp_client_quit(maild_smtp_client *c);

/*
 * The caller ends the session: a timeout, a lost connection, a failed TLS
 * handshake. Every recipient without a result gets `code` (a 4xx keeps the
 * mail for a retry) with `enhanced` (may be NULL) and `text`, marked local;
 * the phase becomes CLOSED. Returns 0, or MAILD_ERR_INVAL (`code` not
 * 400..599 or a malformed `enhanced`).
 */
MAILD_EXTERN int maild_smtp_client_terminate(maild_smtp_client *c, int code,
                                             const char *enhanced,
                                             const char *text);

/* MAILD_SMTP_EXT_* bits the server announced in its last EHLO reply. */
MAILD_EXTERN unsigned maild_smtp_client_extensions(const maild_smtp_client *c);

/* The SIZE limit the server announced (0: none or not announced). */
MAILD_EXTERN uint64_t maild_smtp_client_size_limit(const maild_smtp_client *c);

/* 1 when TLS is active (after tls_started or with TLS_ACTIVE). */
MAILD_EXTERN int maild_smtp_client_is_tls(const maild_smtp_client *c);

/* The reply that ended the session (QUIT's answer, or the failure), valid
   until the session is deleted; NULL while it runs. */
MAILD_EXTERN const maild_smtp_client_reply *
maild_smtp_client_last_error(const maild_smtp_client *c);

#ifdef __cplusplus
}
#endif

#endif
