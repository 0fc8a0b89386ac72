/*
 * Options: one opaque object that carries every tunable limit of the
 * engines, so constructors keep one signature forever (DESIGN.md "Public API
 * conventions"). Pass NULL to a constructor for the defaults below; the
 * constructor copies what it needs, so the options object may be deleted or
 * changed afterwards without affecting existing sessions.
 *
 * Every limit has an RFC-minded default; the table gives name, kind, default
 * and the accepted range.
 */
#ifndef MAILD_OPTIONS_H
#define MAILD_OPTIONS_H

#include "maild/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(NAME, kind, default, min, max)  -- kind is UINT or STRING. */
#define MAILD_OPTION_MAP(XX)                                                   \
  /* Host name in the greeting, EHLO reply and Received header. */             \
  XX(HOSTNAME, STRING, 0, 0, 0)                                                \
  /* Longest command line, CRLF included (RFC 5321 4.5.3.1.4). */              \
  XX(MAX_COMMAND_LINE, UINT, 512, 512, 65536)                                  \
  /* Extra octets allowed on MAIL and RCPT lines for ESMTP parameters          \
     (RFC 1869 4.1.2, RFC 3461 4: ENVID, ORCPT). */                            \
  XX(MAX_PARAMS_EXTRA, UINT, 1024, 0, 65536)                                   \
  /* Longest AUTH command or SASL response line (RFC 4954 4: 12288). */        \
  XX(MAX_AUTH_LINE, UINT, 12288, 512, 65536)                                   \
  /* Recipients per transaction; past it 452 4.5.3 (RFC 5321 4.5.3.1.8). */    \
  XX(MAX_RECIPIENTS, UINT, 1000, 100, 1000000)                                 \
  /* Largest message body in octets (advertised with SIZE, RFC 1870). */       \
  XX(MAX_MESSAGE_SIZE, UINT, 26214400, 1024, UINT64_C(0x7fffffffffffffff))     \
  /* Error replies before the session ends with 421 (Postfix: 20). */          \
  XX(MAX_ERRORS, UINT, 20, 1, 100000)                                          \
  /* More Received: headers than this is a mail loop: 554 5.4.0. */            \
  XX(MAX_RECEIVED_HEADERS, UINT, 100, 1, 100000)                               \
  /* Pending output above which the engine stops consuming input. */           \
  XX(OUTPUT_BACKLOG, UINT, 65536, 1024, UINT64_C(0x7fffffff))                  \
  /* 1: the greeting waits for maild_smtp_server_greet(). */                   \
  XX(DEFER_GREETING, UINT, 0, 0, 1)                                            \
  /* 1: offer STARTTLS (the embedder can run a TLS handshake). */              \
  XX(STARTTLS, UINT, 0, 0, 1)                                                  \
  /* 1: the session is already TLS (implicit TLS port, RFC 8314). */           \
  XX(TLS_ACTIVE, UINT, 0, 0, 1)                                                \
  /* SMTP client: 1: never send a message without TLS (fail with 4xx). */      \
  XX(TLS_REQUIRED, UINT, 0, 0, 1)                                              \
  /* SASL mechanisms to offer, space separated ("PLAIN LOGIN"); unset: no      \
     AUTH. */                                                                  \
  XX(AUTH_MECHANISMS, STRING, 0, 0, 0)                                         \
  /* 1: offer AUTH without TLS (a security risk outside tests). */             \
  XX(AUTH_PLAINTEXT, UINT, 0, 0, 1)                                            \
  /* 1: offer and accept SMTPUTF8 (RFC 6531). */                               \
  XX(SMTPUTF8, UINT, 1, 0, 1)                                                  \
  /* 1: offer and accept CHUNKING/BDAT (RFC 3030). */                          \
  XX(CHUNKING, UINT, 1, 0, 1)                                                  \
  /* 1: offer and accept the DSN parameters (RFC 3461). */                     \
  XX(DSN, UINT, 1, 0, 1)                                                       \
  /* 1: accept "MAIL FROM: <a@b>" with spaces after the colon, as many         \
     servers do (RFC 5321 forbids the space). */                               \
  XX(LENIENT_SPACES, UINT, 1, 0, 1)                                            \
  /* Runtime (lib/runtime) options. */                                         \
  /* Milliseconds a client has for one command (RFC 5321 4.5.3.2.7: 5 min). */ \
  XX(TIMEOUT_COMMAND, UINT, 300000, 10, 86400000)                              \
  /* Milliseconds without body octets during DATA/BDAT (4.5.3.2.5: 3 min). */  \
  XX(TIMEOUT_DATA, UINT, 180000, 10, 86400000)                                 \
  /* Milliseconds a TLS handshake may take (STARTTLS or implicit TLS). */      \
  XX(TIMEOUT_TLS, UINT, 60000, 10, 86400000)                                   \
  /* 1: a logged-in user may use any envelope sender, not only their own       \
     addresses (for shared senders such as noreply@). */                       \
  XX(ANY_SENDER, UINT, 0, 0, 1)                                                \
  /* Milliseconds a session may take to end once shutdown begins. */           \
  XX(TIMEOUT_SHUTDOWN, UINT, 30000, 0, 86400000)                               \
  /* Concurrent connections in all; past it 421 4.7.0 at once. */              \
  XX(MAX_CONNECTIONS, UINT, 1000, 1, 1000000)                                  \
  /* Concurrent connections from one client address; past it 421. */           \
  XX(MAX_CONNECTIONS_PER_IP, UINT, 50, 1, 1000000)                             \
  /* 1: a mailbox over quota is a permanent failure (552 5.2.2), else a        \
     temporary one (452 4.2.2). */                                             \
  XX(QUOTA_PERMANENT, UINT, 0, 0, 1)                                           \
  /* Bodies up to this size are kept in memory until the commit; larger        \
     ones are written to the spool as they arrive. */                          \
  XX(BODY_MEMORY, UINT, 262144, 4096, 67108864)                                \
  /* Octets that must stay free on the spool's file system after a message     \
     of the size MAIL FROM announces (SIZE=, else 0); less: 452 4.3.1. */      \
  XX(SPOOL_MIN_FREE, UINT, 67108864, 0, UINT64_C(0x7fffffffffffffff))          \
  /* Outbound delivery (relay). The port of other domains' servers. */         \
  XX(OUTBOUND_PORT, UINT, 25, 1, 65535)                                        \
  /* Milliseconds before the first retry; it doubles up to RETRY_MAX. */       \
  XX(RETRY_FIRST, UINT, 300000, 1, UINT64_C(31536000000))                      \
  XX(RETRY_MAX, UINT, 14400000, 1, UINT64_C(31536000000))                      \
  /* Milliseconds a message may wait in the queue before it bounces. */        \
  XX(QUEUE_LIFETIME, UINT, 432000000, 0, UINT64_C(31536000000))                \
  /* Connections at once to one destination (host and port). */                \
  XX(OUTBOUND_CONNECTIONS, UINT, 5, 1, 1000)                                   \
  /* Milliseconds to connect to another server. */                             \
  XX(TIMEOUT_CONNECT, UINT, 30000, 10, 86400000)                               \
  /* Milliseconds an outbound session may wait in any phase; 0: the            \
     RFC 5321 4.5.3.2 value of each phase (5 min, 10 min after the dot). */    \
  XX(TIMEOUT_OUTBOUND, UINT, 0, 0, 86400000)                                   \
  /* Queued messages with a record in memory at most (a couple of hundred      \
     octets each); the others wait in the spool, and are found by scans. */    \
  XX(QUEUE_WINDOW, UINT, 10000, 1, 100000000)                                  \
  /* Milliseconds a message may wait in the queue before its sender gets       \
     one delay warning (recipients with NOTIFY=DELAY or no NOTIFY); 0:         \
     none. */                                                                  \
  XX(DELAY_WARNING, UINT, 14400000, 0, UINT64_C(31536000000))                  \
  /* NOOP, RSET, VRFY and HELP commands an SMTP client may send (counted       \
     from the start or its last accepted message) before each one more         \
     also counts toward MAX_ERRORS (Postfix's smtpd_junk_command_limit). */    \
  XX(MAX_JUNK_COMMANDS, UINT, 100, 1, 1000000000)

typedef enum maild_option {
#define MAILD_OPT_ENUM_(name, kind, def, min, max) MAILD_OPT_##name,
  MAILD_OPTION_MAP(MAILD_OPT_ENUM_)
#undef MAILD_OPT_ENUM_
      MAILD_OPT__COUNT
} maild_option;

typedef struct maild_options maild_options;

/*
 * Creates an options object holding every default. `mem` (NULL: malloc) is
 * copied and used for the object and its strings.
 * Returns 0, MAILD_ERR_INVAL (out is NULL) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_options_new(maild_options **out, const maild_mem *mem);

/* Frees `opt`; NULL is a no-op. */
MAILD_EXTERN void maild_options_del(maild_options *opt);

/*
 * Sets a numeric option. Returns 0, or MAILD_ERR_INVAL if `key` is unknown
 * or a string option, or MAILD_ERR_RANGE if `value` is outside the range in
 * the table above (the option keeps its old value).
 */
MAILD_EXTERN int maild_options_set_uint(maild_options *opt, maild_option key,
                                        uint64_t value);

/*
 * Sets a string option to a copy of `value` (NULL unsets it). Returns 0,
 * MAILD_ERR_INVAL (unknown key, numeric option, or a value with control
 * characters) or MAILD_ERR_NOMEM (the option keeps its old value).
 */
MAILD_EXTERN int maild_options_set_string(maild_options *opt, maild_option key,
                                          const char *value);

/* The value of a numeric option; `opt` NULL gives the default. */
MAILD_EXTERN uint64_t maild_options_get_uint(const maild_options *opt,
                                             maild_option key);

/*
 * The value of a string option, or NULL when unset. Valid until the option
 * is set again or `opt` is deleted.
 */
MAILD_EXTERN const char *maild_options_get_string(const maild_options *opt,
                                                  maild_option key);

#ifdef __cplusplus
}
#endif
#endif
