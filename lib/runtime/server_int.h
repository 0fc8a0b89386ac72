/*
 * Private state of the server runtime, shared by server.c (listeners,
 * connection caps, shutdown, logging), smtp_session.c (one SMTP session
 * per connection), delivery.c (commit to the spool and local delivery
 * on the worker pool, spool rescan), outbound.c (the queue's attempts)
 * and queue.c (the queue's records in memory).
 */
#ifndef MAILD_RUNTIME_SERVER_INT_H
#define MAILD_RUNTIME_SERVER_INT_H

#include "maild/server.h"
#include "maild/smtp_server.h"
#include "maild/store.h"
#include "core/buf.h"
#include "io/conn.h"
#include "io/listener.h"
#include "io/tls.h"
#include "maild/tls.h"
#include "queue/schedule.h"
#include "queue/spool.h"

#define MAX_LISTENERS 16

typedef struct smtp_session smtp_session;
typedef struct pop3_session pop3_session;
typedef struct delivery delivery;
typedef struct out_msg out_msg;
typedef struct out_dest out_dest;
typedef struct out_session out_session;

/* A route (outbound.c): mail for `domain` ("*": any) goes to `addr`. */
typedef struct out_route {
  char *domain;
  struct sockaddr_storage addr;
  char *host;            /* a host name to resolve, or NULL: `addr` */
  unsigned port;         /* for `host` */
  char *user, *password; /* AUTH towards it, or NULL */
} out_route;

typedef struct listener_slot {
  maild_listener *l;
  maild_service service;
  maild_server *srv;
} listener_slot;

/* Connections per client address, for MAX_CONNECTIONS_PER_IP. */
typedef struct ip_count {
  char addr[64];
  size_t n;
  struct ip_count *next;
} ip_count;

struct maild_server {
  uv_loop_t *loop;
  maild_mem mem;
  maild_server_callbacks cb;
  void *user_data;
  maild_options *opt;          /* our copy, for plaintext sessions */
  maild_options *opt_starttls; /* the same with STARTTLS offered */
  maild_options *opt_implicit; /* the same for implicit TLS (smtps) */
  maild_tls_config *tls;       /* NULL: no TLS */
  maild_conn_scratch *scratch; /* read buffers shared by all connections */
  char *hostname;
  uint64_t timeout_command, timeout_data, timeout_shutdown, timeout_tls;
  uint64_t max_conn, max_conn_ip, body_memory;
  int quota_permanent;
  int any_sender; /* ANY_SENDER: logged-in users may send as anyone */

  /* Free space on the spool for the check at MAIL FROM (TESTPLAN D4),
     measured on the worker pool at most once per SPACE_MAX_AGE_MS. */
  uint64_t spool_min_free;
  uint64_t space_avail, space_new;
  uint64_t space_checked; /* uv_now() of the last measurement */
  int space_known, space_busy, space_rc;
  uv_work_t space_req;

  maild_spool *spool;
  maild_store *store;
  const maild_directory *directory;
  const maild_users *users;         /* for AUTH; NULL: every login fails */
  const maild_cidr_set *trusted;    /* may relay without AUTH */
  unsigned crypt_running;           /* password checks in flight */
  unsigned crypt_max;               /* ... at most (0: not worked out yet) */
  struct crypt_wait *crypt_waiting; /* and those waiting their turn */

  listener_slot listeners[MAX_LISTENERS];
  size_t nlisteners;
  int started;

  smtp_session *sessions;      /* doubly linked */
  pop3_session *pop3_sessions; /* doubly linked */
  size_t nsessions;
  ip_count *ips;
  size_t jobs; /* worker-pool jobs in flight */

  /* Group commit: messages staged and waiting for the next batch, and
     the batch being committed (see delivery.c). */
  delivery *commit_queue;
  delivery **commit_tail;
  delivery *commit_batch;
  uv_work_t commit_req;

  uv_timer_t shutdown_timer;
  int closing;
  int handles_open;
  void (*close_cb)(maild_server *srv, void *user_data);
  uint32_t rng; /* xorshift state for queue ids, seeded at creation */

  /* The queue (outbound.c: attempts; queue.c: which records are in
     memory). */
  out_route *routes;
  size_t nroutes;
  out_msg *out_msgs; /* the queued messages that have a record in memory */
  size_t out_queued, out_active;
  size_t out_window;        /* QUEUE_WINDOW: records at most */
  out_msg **out_index;      /* the records by id, chained */
  size_t out_index_size;    /* buckets: 0 or a power of 2 */
  uint64_t out_outside_due; /* no unheld message outside memory is due
                               before this; UINT64_MAX: none is outside */
  uint64_t out_outside_new; /* the same for those that left during a scan */
  int out_held_outside;     /* held messages may be outside memory */
  int out_held_new;         /* one became so during a scan */
  int out_may_leave;        /* a record may leave memory (a hint) */
  int out_scanning;         /* a scan of the spool runs */
  int out_known;            /* the start-up rescan is over */
  int out_scan_wanted;      /* another scan is wanted */
  uint64_t out_scan_due;    /* queue clock: the next periodic scan */
  uint64_t out_retry_at;    /* the next scan makes messages due then */
  uint64_t out_scan_cost;   /* loop ms the last scan took */
  uint64_t out_scan_ended;  /* loop ms it ended at; 0: none yet */
  uv_timer_t scan_timer;    /* the pause between scans */
  out_dest *dests;
  out_session *out_sessions;
  size_t nout_sessions;
  uv_timer_t out_timer;
  uint64_t out_timer_due;          /* when out_timer fires, if active */
  int out_waiting;                 /* due messages wait for an attempt slot */
  maild_tls_config *tls_client;    /* opportunistic STARTTLS; NULL: none */
  struct maild_resolver *resolver; /* borrowed; NULL: routes only */
  maild_clock_cb clock;            /* the queue's clock; NULL: system */
  void *clock_ud;
  struct out_job *resolving; /* jobs waiting for it */
  maild_retry_policy retry_policy;
  unsigned outbound_port;
  size_t outbound_conns;
  uint64_t timeout_connect;
  uint64_t timeout_outbound; /* caps each phase; 0: RFC 5321 values */
  uint64_t delay_warning;    /* queue ms before a delay warning; 0: none */
  uv_mutex_t env_lock;       /* serialises load-modify-update of envelopes */
};

/* server.c */
void maild__log(maild_server *srv, maild_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint32_t maild__server_random(maild_server *srv);
/* The engine options for a session on `service`: TLS already active on
   implicit-TLS ports, STARTTLS offered when the server has credentials. */
const maild_options *maild__server_options(const maild_server *srv,
                                           maild_service service);
/* The session's client is gone: free its per-address slot. */
void maild__server_release_ip(maild_server *srv, const char *peer);
/* Why a server-side TLS handshake failed, for the log: the TLS layer's
   reason, else "peer closed" or the error's text. Never NULL. */
const char *maild__server_tls_failure(maild_conn *c, int err);
/* Logs (debug) a server-side handshake done: protocol, cipher, and
   whether it resumed a session. */
void maild__server_tls_log(maild_server *srv, const char *peer,
                           const maild_conn *c);
/* The session is freed. */
void maild__server_session_gone(maild_server *srv, smtp_session *s);
void maild__server_maybe_closed(maild_server *srv);
/* Whether the spool has room for a message announced at `declared`
   octets (0: unknown), by the last measurement; starts a new one when that
   is old. Nonzero (room) while nothing has been measured yet. */
int maild__server_spool_room(maild_server *srv, uint64_t declared);

/* smtp_session.c */
int maild__smtp_session_start(maild_server *srv, maild_conn *conn,
                              const char *peer, maild_service service);

/* auth.c: checks the credentials of a finished SASL exchange; `done` runs
   on the loop thread with ok and the canonical user (for the log: "" if
   the name was not an address). Returns 0, MAILD_ERR_INVAL,
   MAILD_ERR_NOMEM or MAILD_ERR_IO (then `done` is not called). */
struct maild_sasl_server;
/* Runs a password-check job through the gate that bounds how many run at
   once (the others wait in order); its done callback must call
   maild__crypt_finished() first. Returns 0, MAILD_ERR_NOMEM or
   MAILD_ERR_IO. */
int maild__crypt_queue(maild_server *srv, uv_work_t *req, uv_work_cb work,
                       uv_after_work_cb done);
void maild__crypt_finished(maild_server *srv);
int maild__auth_check(maild_server *srv, const struct maild_sasl_server *sasl,
                      void (*done)(void *ud, int ok, const char *user),
                      void *ud);

/* tls_credentials.c */
maild_tls_config *maild__tls_credentials_config(maild_tls_credentials *cred);
/* Ends the session with 421 4.3.2 if it is idle, or always if `force`. */
void maild__smtp_session_shutdown(smtp_session *s, int force);
smtp_session *maild__smtp_session_next(smtp_session *s);

/* recipients.c: what RCPT TO means here. Fills `reply` with a refusal
   (550 5.1.1 unknown user, 554 5.7.1 relay denied unless `may_relay`), or
   adds the targets to `d` (another domain's as remote) and leaves
   reply->code 0. Returns 0 or MAILD_ERR_NOMEM. */
int maild__rcpt_resolve(maild_server *srv, const maild_path *to, delivery *d,
                        int may_relay, maild_reply *reply);

/* pop3_session.c */
int maild__pop3_session_start(maild_server *srv, maild_conn *conn,
                              const char *peer, maild_service service);
void maild__pop3_session_shutdown(pop3_session *s);
pop3_session *maild__pop3_session_next(pop3_session *s);

/* outbound.c */
int maild__outbound_init(maild_server *srv, const maild_options *opt);
/* Ends the outbound sessions (their recipients stay queued). */
void maild__outbound_shutdown(maild_server *srv);
/* 1 when no outbound session or attempt is left. */
int maild__outbound_idle(const maild_server *srv);
/* Frees the queue and routes (after every handle closed). */
void maild__outbound_free(maild_server *srv);

/* queue.c */
/* Queues a committed message with recipients still pending: due at once,
   or, when `tried` (its local deliveries failed just now), after the
   schedule's first wait. When the window is full it may stay outside
   memory; a scan of the spool finds it. */
void maild__queue_add(maild_server *srv, const char *id, int64_t arrival_usec,
                      int tried);
/* The start-up rescan: no other scan may run from begin to end. `found`
   holds the unheld valid messages due soonest (a pick of the window's
   size, see queue/window.h), `held` counts the held ones; `found` is
   consumed. */
struct maild_due_pick;
void maild__queue_rescan_begin(maild_server *srv);
void maild__queue_rescan_end(maild_server *srv, struct maild_due_pick *found,
                             size_t held);
/* Frees every record and the index (after every handle closed). */
void maild__queue_free(maild_server *srv);

/* delivery.c */
typedef struct delivery_rcpt {
  char *addr;   /* the mailbox's address, local@domain */
  char *orig;   /* the RCPT TO address when an alias led here, else "" */
  char *domain; /* mailbox: domain, lower-cased */
  char *local;  /* mailbox: local part */
  int done;
  int status; /* last maild_store_deliver() result */
  int sys_errno;
  int logged;      /* its delivery has been logged */
  char *store_id;  /* the store's name for it, to withdraw it */
  int remote;      /* another domain: waits in the spool for outbound */
  unsigned notify; /* DSN NOTIFY bits (maild_notify), 0 if not given */
  int expanded;    /* first target of an alias of several whose RCPT asked
                      for SUCCESS: `orig` is reported "expanded" */
} delivery_rcpt;

/* One message on its way from the session into the spool and mailboxes. */
struct delivery {
  maild_server *srv;
  uv_work_t req;
  /* Input, filled by the session. */
  char *sender;
  char *envid;   /* DSN ENVID (decoded), or NULL */
  int ret;       /* DSN RET (maild_ret_type) */
  int body_type; /* BODY= (maild_body_type) */
  delivery_rcpt *rcpts;
  size_t nrcpts;
  maild_buf body;             /* body octets not yet in the spool */
  maild_spool_writer *writer; /* open once the spool file exists */
  uint32_t rand_state;        /* queue-id randomness for this message */
  uint64_t msg_size;          /* octets in the spool's .msg file */
  uint32_t return_path_len;
  char *helo;
  char *peer;
  char *tls_info;
  int esmtp, tls, auth, smtputf8;
  int64_t arrival_usec;
  uint64_t body_size;
  /* Output, filled by the job. */
  char id[32];
  int result;     /* 0: accepted; else the reply below */
  int reply_code; /* for a refusal */
  const char *reply_enh;
  const char *reply_text;
  int sys_errno;
  int retry_later; /* committed, some recipients still pending */
  int staged;      /* in tmp/, waiting for the group commit */
  size_t done_count;
  void (*done)(delivery *d, void *ud);
  void *ud;
  int outbound_queued; /* handed to the queue */
  maild_buf report;    /* NOTIFY=SUCCESS report on the local deliveries */
  delivery *next;      /* group-commit list */
};

/* report.c: delivery reports (RFC 3464) to a message's sender. */
struct maild_dsn_rcpt;
typedef struct maild_report {
  const char *id, *sender, *envid; /* envid may be NULL */
  int64_t arrival_usec;
  int ret_full; /* RET=FULL: the whole original (up to 1 MiB) */
  int fd;       /* the spool's .msg file, open */
  uint64_t msg_size;
  uint32_t return_path_len;
  const struct maild_dsn_rcpt *rcpts;
  size_t nrcpts;
} maild_report;
/* On the worker pool: the report on `rcpts` into `out` (initialised
   here; empty when there is none to send: no recipient or null sender).
   Returns 0, MAILD_ERR_IO, MAILD_ERR_NOMEM or MAILD_ERR_LIMIT. */
/* Whether a recipient's NOTIFY asks for a success report. */
static inline int maild__notify_success(unsigned notify) {
  return (notify & MAILD_NOTIFY_SUCCESS) && !(notify & MAILD_NOTIFY_NEVER);
}
int maild__report_build(maild_server *srv, const maild_report *rep,
                        maild_buf *out);
/* On the loop, once what it reports is on record: sends `report` (taken
   over; freed whatever happens) from the null sender to `sender`. `what`
   names it in the log ("non-delivery", "success"). */
void maild__report_send(maild_server *srv, const char *id, const char *sender,
                        int smtputf8, maild_buf *report, const char *what);

/* Gives the recipients added from index `from` on (the targets one RCPT
   became) the RCPT's NOTIFY. An alias of several targets is itself
   reported "expanded" when SUCCESS is asked for, and its targets are not
   asked SUCCESS again (RFC 3461 6.2.7.3): the sender learns that the mail
   arrived, not who is behind the alias. */
void maild__delivery_set_notify(delivery *d, size_t from, unsigned notify);
delivery *maild__delivery_new(maild_server *srv);
void maild__delivery_free(delivery *d);
/* Commits the message and delivers it locally on the worker pool; `done`
   runs on the loop thread. Returns 0 or MAILD_ERR_IO. */
int maild__delivery_run(delivery *d, void (*done)(delivery *d, void *ud),
                        void *ud);
/* Writes the body buffer to the spool on the worker pool (large bodies);
   `done` runs on the loop thread. */
int maild__delivery_flush(delivery *d, void (*done)(delivery *d, void *ud),
                          void *ud);
/* Adds one mailbox target (copies the strings; lower-cases the domain).
   Returns 0 or MAILD_ERR_NOMEM. */
int maild__delivery_add_rcpt(delivery *d, const char *orig, const char *domain,
                             size_t dlen, const char *local, size_t llen);
/* Logs one line per recipient not logged yet (Postfix style). */
void maild__delivery_log(delivery *d);
/* After the session's done callback: hands a message with recipients
   still pending to the queue, and frees `d`. */
void maild__delivery_done(delivery *d);
/* Rescans the spool and queues what it holds. */
int maild__delivery_rescan(maild_server *srv);

#endif
