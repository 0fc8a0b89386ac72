/*
 * The mail server runtime on libuv: listeners, one session per connection
 * driving the SMTP engine, the durable spool, and local delivery into a
 * store. This is the only public header that includes <uv.h>.
 *
 *   maild_server *srv;
 *   maild_server_new(&srv, loop, &callbacks, ud, opt, NULL);
 *   maild_server_set_spool(srv, "/var/spool/maild");
 *   maild_server_set_store(srv, store);           Maildir or your own
 *   maild_server_set_directory(srv, directory);   who is local
 *   maild_server_listen(srv, MAILD_SERVICE_SMTP, "127.0.0.1", 2525, &port);
 *   maild_server_start(srv);                      deliver what the spool holds
 *   uv_run(loop, UV_RUN_DEFAULT);
 *   ... maild_server_close(srv, on_closed);       graceful; frees in on_closed
 *
 * Threading: every function is called on the loop's thread. Blocking work
 * (spool writes, fsync, renames, Maildir delivery, directory scans) runs on
 * libuv's worker pool, never on the loop thread.
 */
#ifndef MAILD_SERVER_H
#define MAILD_SERVER_H

#include <uv.h>

#include "maild/common.h"
#include "maild/options.h"
#include "maild/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct maild_server maild_server;
typedef struct maild_store maild_store;
typedef struct maild_directory maild_directory;

typedef enum maild_service {
  MAILD_SERVICE_SMTP = 1,   /* port 25: mail from other servers */
  MAILD_SERVICE_SUBMISSION, /* port 587 (AUTH: later) */
  MAILD_SERVICE_SMTPS,      /* port 465, implicit TLS (RFC 8314) */
  MAILD_SERVICE_POP3,       /* port 110 (later) */
  MAILD_SERVICE_POP3S,      /* port 995 (later) */
} maild_service;

typedef enum maild_log_level {
  MAILD_LOG_ERROR = 3,
  MAILD_LOG_WARNING = 4,
  MAILD_LOG_INFO = 6,
  MAILD_LOG_DEBUG = 7,
} maild_log_level; /* syslog(3) priorities */

typedef struct maild_server_callbacks {
  /* One log line, without a newline (e.g. "0123abcd: from=<a@b> ...").
     Valid during the call only. NULL: no logging. */
  void (*on_log)(maild_server *srv, maild_log_level level, const char *line,
                 void *user_data);
} maild_server_callbacks;

/*
 * Creates a server on `loop`. `cb`, `opt` and `mem` are copied (NULL:
 * defaults). Tunables come from the options: hostname, the SMTP engine's
 * limits, TIMEOUT_*, MAX_CONNECTIONS*, QUOTA_PERMANENT, BODY_MEMORY.
 * Returns 0, MAILD_ERR_INVAL or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_server_new(maild_server **out, uv_loop_t *loop,
                                  const maild_server_callbacks *cb,
                                  void *user_data, const maild_options *opt,
                                  const maild_mem *mem);

/*
 * Opens (creating if needed) the spool directory. Call before start, from
 * set-up code: it creates directories synchronously. Returns 0,
 * MAILD_ERR_NOMEM or MAILD_ERR_IO.
 */
MAILD_EXTERN int maild_server_set_spool(maild_server *srv, const char *dir);

/* Sets the store local mail is delivered to (borrowed: it must outlive
   the server). Required before start. */
MAILD_EXTERN void maild_server_set_store(maild_server *srv, maild_store *st);

/*
 * Where mail for other domains goes: `domain` ("*" for every domain
 * without a route of its own; matched without regard to case) to `host`
 * (an IPv4 or IPv6 address, or a host name the resolver looks up without
 * MX) and `port` (0: the OUTBOUND_PORT option).
 * Without a route, mail for a domain goes to its MX hosts, found by the
 * resolver (maild_server_set_resolver()), on port OUTBOUND_PORT.
 */
typedef struct maild_route {
  const char *domain;
  const char *host;
  unsigned port;
  /* AUTH towards this host (a smarthost that wants a login), or NULL: the
     session does STARTTLS when offered, then AUTH PLAIN or LOGIN. */
  const char *user;
  const char *password;
} maild_route;

/*
 * Replaces the routes (copied). May be called again (reload); attempts in
 * progress finish on the old routes. Returns 0, MAILD_ERR_INVAL (a NULL or
 * empty domain, a host that is neither an address nor a host name, port
 * over 65535) or
 * MAILD_ERR_NOMEM (the old routes stay).
 */
MAILD_EXTERN int maild_server_set_routes(maild_server *srv,
                                         const maild_route *routes, size_t n);

/*
 * The MX resolver for domains without a route (borrowed: it must outlive
 * the server; NULL: such mail is deferred). Its `self` names should hold
 * this server's host name, so that an MX pointing here is a loop.
 */
typedef struct maild_resolver maild_resolver;
MAILD_EXTERN void maild_server_set_resolver(maild_server *srv,
                                            maild_resolver *r);

/*
 * The clock the outbound queue reads (milliseconds since the epoch) for
 * message ages and retry times; NULL: the system's. Tests pass one that
 * runs faster than real time to play days of retries in seconds (the
 * queue then looks at it every 10 ms of real time). Set before start.
 */
typedef uint64_t (*maild_clock_cb)(void *user_data);
MAILD_EXTERN void maild_server_set_clock(maild_server *srv,
                                         maild_clock_cb now_ms,
                                         void *user_data);

/*
 * Queue control (maildctl talks to the daemon, which calls these). `id`
 * is a queue id as maildctl lists it.
 *
 * retry: messages waiting for their next attempt try now (`id` NULL:
 * all, those outside memory included). hold: the message is not tried
 * until released (durable: a hold survives a restart). release: it is
 * tried now. delete: its files are removed (whether queued or not); an
 * attempt in progress finishes without effect. hold, release, delete and
 * a retry of a message outside memory take effect on the worker pool right
 * after the call.
 * Returns 0, MAILD_ERR_INVAL (malformed id), MAILD_ERR_NOT_FOUND (not in
 * the queue; retry, hold and release: known at once only while every
 * queued message is in memory, see maild_queue_stats; otherwise the
 * worker finds out and logs "not in the queue"), MAILD_ERR_STATE (the
 * server is closing), MAILD_ERR_NOMEM or MAILD_ERR_IO.
 */
MAILD_EXTERN int maild_server_queue_retry(maild_server *srv, const char *id);
MAILD_EXTERN int maild_server_queue_hold(maild_server *srv, const char *id);
MAILD_EXTERN int maild_server_queue_release(maild_server *srv, const char *id);
MAILD_EXTERN int maild_server_queue_delete(maild_server *srv, const char *id);

/*
 * The queue in memory. Every message in the spool with a recipient still
 * pending is queued, but at most QUEUE_WINDOW of them have a record in
 * memory; the others wait in the spool with the time of their next
 * attempt, and scans of the spool on the worker pool bring back those due
 * soonest.
 */
typedef struct maild_queue_stats {
  size_t in_memory; /* queued messages with a record in memory */
  size_t active;    /* of those, attempts under way */
  size_t window;    /* QUEUE_WINDOW: in_memory never exceeds it */
  int outside;      /* 1: the spool may hold queued messages not in memory */
} maild_queue_stats;

/* Fills `*st`. Returns 0 or MAILD_ERR_INVAL (a NULL argument). */
MAILD_EXTERN int maild_server_queue_stats(const maild_server *srv,
                                          maild_queue_stats *st);

/*
 * Sets the certificate for STARTTLS (offered on smtp and submission
 * listeners once set) and for smtps listeners (implicit TLS, RFC 8314),
 * whose connections are closed while none is set. The server takes its
 * own reference: the caller may delete `cred` afterwards. May be called
 * again at any time (reload); sessions keep the credentials they started
 * with. NULL stops offering TLS.
 */
MAILD_EXTERN void maild_server_set_tls(maild_server *srv,
                                       maild_tls_credentials *cred);

/*
 * Sets the accounts that may log in with SMTP AUTH. AUTH is offered when
 * the AUTH_MECHANISMS option names mechanisms (PLAIN and LOGIN are
 * supported), and only over TLS unless AUTH_PLAINTEXT is set. Borrowed,
 * like the directory, and replaceable at any time: logins under way check
 * a copy of the account's hash, so the old object may be freed as soon as
 * this returns. NULL: every login fails.
 */
typedef struct maild_users maild_users;
MAILD_EXTERN void maild_server_set_users(maild_server *srv,
                                         const maild_users *users);

/*
 * Sets the networks whose clients may relay (send to other domains)
 * without logging in; such mail waits in the spool for outbound delivery.
 * Borrowed and replaceable like the directory. NULL: none.
 */
typedef struct maild_cidr_set maild_cidr_set;
MAILD_EXTERN void maild_server_set_trusted(maild_server *srv,
                                           const maild_cidr_set *networks);

/*
 * Sets who is local (borrowed; may be replaced at any time, e.g. on
 * reload: sessions already past RCPT keep their answers). NULL, the
 * default, accepts every recipient as a mailbox of its own address.
 */
MAILD_EXTERN void maild_server_set_directory(maild_server *srv,
                                             const maild_directory *dir);

/*
 * Listens on `addr`:`port` (port 0: ephemeral). `*bound_port` (if not
 * NULL) gets the port. Returns 0, MAILD_ERR_INVAL (bad address or a
 * service not available yet), MAILD_ERR_EXISTS (in use), MAILD_ERR_PERM,
 * MAILD_ERR_NOMEM or MAILD_ERR_IO.
 */
MAILD_EXTERN int maild_server_listen(maild_server *srv, maild_service service,
                                     const char *addr, int port,
                                     int *bound_port);

/*
 * Starts delivering: rescans the spool on the worker pool, sets aside
 * incomplete or corrupt files, and delivers the valid ones. Listeners
 * accept from maild_server_listen() on. Returns 0 or MAILD_ERR_STATE (no
 * spool or store).
 */
MAILD_EXTERN int maild_server_start(maild_server *srv);

/*
 * Graceful shutdown: stops accepting, answers idle sessions 421 4.3.2,
 * lets transactions in progress finish within TIMEOUT_SHUTDOWN, waits for
 * deliveries under way, closes every handle, then calls `close_cb` and
 * frees the server. Messages still in the spool are delivered on the next
 * start.
 */
MAILD_EXTERN void maild_server_close(maild_server *srv,
                                     void (*close_cb)(maild_server *srv,
                                                      void *user_data));

/* Sessions open now (for tests and metrics). */
MAILD_EXTERN size_t maild_server_sessions(const maild_server *srv);

#ifdef __cplusplus
}
#endif
#endif
