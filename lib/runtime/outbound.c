/*
 * The queue's attempts: the SMTP client sessions that hand messages to
 * other domains' servers, and the local deliveries that failed before.
 *
 * A queued message (out_msg, runtime/queue_int.h) is only an id, its
 * arrival time and its retry state; everything else stays in the spool,
 * and queue.c decides which messages have a record in memory. When one is
 * due, an attempt loads the envelope on the worker pool, delivers its
 * pending local recipients into their mailboxes (one job on the worker
 * pool), splits the pending remote recipients by domain into jobs, and
 * queues each job at its destination (the route's address and port). A
 * destination runs up to OUTBOUND_CONNECTIONS sessions; each session takes
 * jobs one after another over the same connection (the SMTP client engine,
 * opportunistic STARTTLS) and reads the body from the spool file on the
 * worker pool. When every job of an attempt has its results, they are made
 * durable in the envelope, with the time of the next attempt by the retry
 * schedule (queue/schedule.h), and the spool entry is removed once every
 * recipient is final: at least once, never lost.
 *
 * Results: 2xx delivered (DONE), 5xx bounced (FAILED), anything else
 * retried; locally, a mailbox that does not exist bounces (5.1.1), a full
 * one is retried (or bounces with QUOTA_PERMANENT), any other failure is
 * retried. A message still pending when its lifetime ends expires: its
 * remaining recipients fail with 5.4.7. One log line per recipient and
 * attempt, in the style of Postfix's.
 */
#include "runtime/queue_int.h"

#include "core/ascii.h"
#include "core/mem.h"
#include "maild/directory.h"
#include "maild/error.h"
#include "maild/esmtp.h"
#include "maild/reply.h"
#include "maild/resolver.h"
#include "maild/smtp_client.h"
#include "maild/store.h"
#include "dns/codec.h"
#include "io/addr.h"
#include "queue/dsn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define READ_PIECE   (64u * 1024u)
#define RESULT_TEMP  3u    /* a temporary failure: retried */
#define RESULT_INJOB 4u    /* in a job of the attempt, no result yet */
#define MSGS_ACTIVE  1000u /* attempts in flight at once */

typedef struct out_job out_job;

struct out_job {
  out_job *next;
  out_msg *m;
  size_t *idx; /* recipients of the envelope in this job */
  size_t n;
  char domain[256];
  /* Where it may go, in order (from the resolver); `cur` is being tried. */
  struct sockaddr_storage *targets;
  size_t ntargets, cur;
  out_job *rnext, *rprev; /* waiting for the resolver */
  char *user, *password;  /* the route's login, until its destination has it */
  unsigned port;          /* for resolved targets; 0: outbound-port */
};

struct out_dest {
  out_dest *next;
  maild_server *srv;
  struct sockaddr_storage addr;
  char name[80];         /* "[192.0.2.1]:25" for the log */
  char *user, *password; /* AUTH, from the route that named it */
  out_job *jobs, **tail;
  size_t njobs;    /* in `jobs` */
  size_t sessions; /* open */
  size_t starting; /* open and not yet ready for a first job */
};

struct out_session {
  out_session *next, *prev;
  maild_server *srv;
  out_dest *dest;
  maild_conn *conn;
  maild_smtp_client *eng;
  out_job *job;
  int connected, closing, conn_gone;
  int took_job; /* at least one job went through this session */
  int failed;   /* it ended on an error, not after QUIT */
  int starting; /* counted in dest->starting */
  int last_phase;
  char why[200]; /* how the session ended, when it failed */
  /* Body reads. */
  uv_work_t req;
  int reading;
  uint8_t *buf;
  size_t len, pos;
  uint64_t off; /* octets of the body read so far */
  int eof, rerr;
};

static void slot_freed(maild_server *srv);
static void on_timer(uv_timer_t *t);
static void dest_kick(out_dest *d);
static void attempt_done(out_msg *m);

/* ---- Setup ---- */

int maild__outbound_init(maild_server *srv, const maild_options *opt) {
#define U(name) maild_options_get_uint(opt, MAILD_OPT_##name)
  maild__retry_policy_default(&srv->retry_policy);
  srv->retry_policy.first_ms = U(RETRY_FIRST);
  srv->retry_policy.max_ms = U(RETRY_MAX);
  if (srv->retry_policy.max_ms < srv->retry_policy.first_ms)
    srv->retry_policy.max_ms = srv->retry_policy.first_ms;
  srv->retry_policy.lifetime_ms = U(QUEUE_LIFETIME);
  srv->outbound_port = (unsigned)U(OUTBOUND_PORT);
  srv->outbound_conns = (size_t)U(OUTBOUND_CONNECTIONS);
  srv->timeout_connect = U(TIMEOUT_CONNECT);
  srv->timeout_outbound = U(TIMEOUT_OUTBOUND);
  srv->out_window = (size_t)U(QUEUE_WINDOW);
  srv->delay_warning = U(DELAY_WARNING);
#undef U
  srv->out_outside_due = srv->out_outside_new = UINT64_MAX;
  srv->out_scan_due = UINT64_MAX;
  if (uv_mutex_init(&srv->env_lock) != 0)
    return MAILD_ERR_NOMEM;
  uv_timer_init(srv->loop, &srv->out_timer);
  srv->out_timer.data = srv;
  return 0;
}

static void free_routes(maild_server *srv, out_route *r, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    maild__free(&srv->mem, r[i].domain);
    maild__free(&srv->mem, r[i].host);
    maild__free(&srv->mem, r[i].user);
    if (r[i].password != NULL)
      maild__wipe(r[i].password, strlen(r[i].password));
    maild__free(&srv->mem, r[i].password);
  }
  maild__free(&srv->mem, r);
}

void maild_server_set_resolver(maild_server *srv, maild_resolver *r) {
  if (srv != NULL)
    srv->resolver = r;
}

int maild_server_set_routes(maild_server *srv, const maild_route *routes,
                            size_t n) {
  out_route *r;
  size_t i;

  if (srv == NULL || (routes == NULL && n > 0))
    return MAILD_ERR_INVAL;
  r = n > 0 ? maild__calloc(&srv->mem, n, sizeof(*r)) : NULL;
  if (n > 0 && r == NULL)
    return MAILD_ERR_NOMEM;
  for (i = 0; i < n; i++) {
    const maild_route *in = &routes[i];
    unsigned port = in->port != 0 ? in->port : srv->outbound_port;
    char name[MAILD_DNS_NAME_MAX + 1];
    int is_addr = maild__addr_parse(in->host, port, &r[i].addr) == 0;
    if (in->domain == NULL || in->domain[0] == '\0' || in->host == NULL ||
        in->port > 65535 ||
        (!is_addr && maild__dns_name(in->host, name) != 0)) {
      free_routes(srv, r, n);
      return MAILD_ERR_INVAL;
    }
    r[i].port = port;
    if (!is_addr) { /* a name, looked up when used */
      r[i].host = maild__strndup(&srv->mem, name, strlen(name));
      if (r[i].host == NULL) {
        free_routes(srv, r, n);
        return MAILD_ERR_NOMEM;
      }
    }
    r[i].domain = maild__strndup(&srv->mem, in->domain, strlen(in->domain));
    if (in->user != NULL && in->password != NULL) {
      r[i].user = maild__strndup(&srv->mem, in->user, strlen(in->user));
      r[i].password =
          maild__strndup(&srv->mem, in->password, strlen(in->password));
    }
    if (r[i].domain == NULL || (in->user != NULL && in->password != NULL &&
                                (r[i].user == NULL || r[i].password == NULL))) {
      free_routes(srv, r, n);
      return MAILD_ERR_NOMEM;
    }
  }
  free_routes(srv, srv->routes, srv->nroutes);
  srv->routes = r;
  srv->nroutes = n;
  return 0;
}

static const out_route *find_route(const maild_server *srv, const char *dom) {
  const out_route *star = NULL;
  size_t i;

  for (i = 0; i < srv->nroutes; i++) {
    const char *rd = srv->routes[i].domain;
    if (strcmp(rd, "*") == 0)
      star = star != NULL ? star : &srv->routes[i];
    else if (maild__ascii_caseeq(dom, strlen(dom), rd) &&
             strlen(rd) == strlen(dom))
      return &srv->routes[i];
  }
  return star;
}

/* ---- The queue ---- */

uint64_t maild__queue_now(const maild_server *srv) {
  uv_timeval64_t tv;

  if (srv->clock != NULL)
    return srv->clock(srv->clock_ud);
  if (uv_gettimeofday(&tv) != 0)
    return 0;
  return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

void maild_server_set_clock(maild_server *srv, maild_clock_cb now_ms,
                            void *user_data) {
  if (srv == NULL)
    return;
  srv->clock = now_ms;
  srv->clock_ud = user_data;
}

/* ---- Logging ---- */

static void log_result(out_msg *m, size_t i, const char *relay,
                       const maild_smtp_client_reply *r, const char *status) {
  maild_server *srv = m->srv;
  double delay =
      (double)(maild__queue_now(m->srv) - (uint64_t)(m->arrival_usec / 1000)) /
      1000.0;
  int n = (int)(r->text_len < REASON_MAX ? r->text_len : REASON_MAX);
  char text[REASON_MAX + 1];
  int k;

  memcpy(text, r->text, (size_t)n);
  for (k = 0; k < n; k++)
    if (text[k] == '\n' || maild__ascii_is_ctl((unsigned char)text[k]))
      text[k] = ' ';
  /* A server's text starts with its enhanced code already. */
  maild__log(srv, status[0] == 's' ? MAILD_LOG_INFO : MAILD_LOG_WARNING,
             "%s: to=<%s>, relay=%s, delay=%.2f, status=%s (%d%s%s %.*s)",
             m->id, m->env->rcpt[i].addr, relay, delay < 0 ? 0.0 : delay,
             status, r->code, r->local && r->enhanced[0] ? " " : "",
             r->local ? r->enhanced : "", n, text);
}

/* Keeps what a report will say about recipient `i`: `action` NULL for a
   failure, else "delivered" or "relayed". */
static void note(out_msg *m, size_t i, const char *relay,
                 const maild_smtp_client_reply *r, const char *action) {
  out_fail *f;
  size_t n;

  if (m->fail == NULL)
    m->fail = maild__calloc(&m->srv->mem, m->env->nrcpt, sizeof(*m->fail));
  if (m->fail == NULL)
    return; /* the bounce says less; no success report */
  f = &m->fail[i];
  f->action = action;
  snprintf(f->status, sizeof(f->status), "%s",
           r->enhanced[0]   ? r->enhanced
           : r->code >= 500 ? "5.0.0"
           : r->code >= 400 ? "4.0.0"
                            : "2.0.0");
  snprintf(f->relay, sizeof(f->relay), "%s", r->local ? "" : relay);
  n = (size_t)snprintf(f->diag, sizeof(f->diag), "%d ", r->code);
  if (r->local && r->enhanced[0])
    n += (size_t)snprintf(f->diag + n, sizeof(f->diag) - n, "%s ", r->enhanced);
  if (n < sizeof(f->diag)) {
    size_t k = r->text_len < sizeof(f->diag) - 1 - n ? r->text_len
                                                     : sizeof(f->diag) - 1 - n;
    memcpy(f->diag + n, r->text, k);
    f->diag[n + k] = '\0';
  }
}

/* The result of recipient `i`. On success, `action` says what a
   NOTIFY=SUCCESS report would call it ("delivered", "relayed"), or NULL
   when the next server reports itself (it took the DSN parameters). */
static void set_result(out_msg *m, size_t i, const char *relay,
                       const maild_smtp_client_reply *r, const char *action) {
  unsigned notify = m->env->rcpt[i].notify;
  const char *status;

  if (r->code >= 200 && r->code < 300) {
    m->result[i] = MAILD_RCPT_DONE;
    status = "sent";
    if (action != NULL && maild__notify_success(notify))
      note(m, i, relay, r, action);
    else if (m->fail != NULL)
      m->fail[i].action = NULL; /* an earlier host's deferral is moot */
  } else if (r->code >= 500) {
    m->result[i] = MAILD_RCPT_FAILED;
    status = "bounced";
    note(m, i, relay, r, NULL);
  } else {
    m->result[i] = RESULT_TEMP;
    status = "deferred";
    note(m, i, relay, r, "delayed"); /* for a delay warning */
  }
  log_result(m, i, relay, r, status);
}

static void job_finish(out_job *j) {
  out_msg *m = j->m;

  maild__free(&m->srv->mem, j->targets);
  maild__free(&m->srv->mem, j->idx);
  maild__free(&m->srv->mem, j->user);
  if (j->password != NULL)
    maild__wipe(j->password, strlen(j->password));
  maild__free(&m->srv->mem, j->password);
  maild__free(&m->srv->mem, j);
  if (--m->jobs_left == 0)
    attempt_done(m);
}

/* Every recipient of the job gets `r` (a local failure), then it ends. */
static void job_fail(out_job *j, const char *relay, int code, const char *enh,
                     const char *text) {
  maild_smtp_client_reply r = {code, enh, text, strlen(text), 1};
  size_t k;

  for (k = 0; k < j->n; k++)
    set_result(j->m, j->idx[k], relay, &r, NULL);
  job_finish(j);
}

/* ---- Sessions ---- */

static void session_pump(out_session *s);
static void session_free(out_session *s);

static int on_read_body(maild_smtp_client *c, uint8_t *buf, size_t cap,
                        size_t *len, void *ud);

static void body_work(uv_work_t *req) {
  out_session *s = req->data;
  out_msg *m = s->job->m;
  uint64_t at = (uint64_t)m->env->return_path_len + s->off;
  ssize_t n;

  do
    n = pread(m->fd, s->buf, READ_PIECE, (off_t)at);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    s->rerr = MAILD_ERR_IO;
    s->len = 0;
    return;
  }
  s->len = (size_t)n;
  s->pos = 0;
  s->off += (uint64_t)n;
  s->eof = n == 0 || at + (uint64_t)n >= m->env->msg_size;
}

static void session_close(out_session *s) {
  if (s->closing)
    return;
  s->closing = 1;
  maild__conn_close_after_flush(s->conn);
}

static void body_done(uv_work_t *req, int status) {
  out_session *s = req->data;

  (void)status;
  s->reading = 0;
  s->srv->jobs--;
  if (s->conn_gone) {
    session_free(s);
    return;
  }
  if (s->closing)
    return;
  maild_smtp_client_resume(s->eng);
  session_pump(s);
}

static int on_read_body(maild_smtp_client *c, uint8_t *buf, size_t cap,
                        size_t *len, void *ud) {
  out_session *s = ud;
  size_t n;

  (void)c;
  if (s->rerr != 0)
    return s->rerr;
  if (s->pos < s->len) {
    n = s->len - s->pos < cap ? s->len - s->pos : cap;
    memcpy(buf, s->buf + s->pos, n);
    s->pos += n;
    *len = n;
    return 0;
  }
  if (s->eof) {
    *len = 0;
    return 0;
  }
  if (s->buf == NULL) {
    s->buf = maild__malloc(&s->srv->mem, READ_PIECE);
    if (s->buf == NULL)
      return MAILD_ERR_NOMEM;
  }
  s->req.data = s;
  if (uv_queue_work(s->srv->loop, &s->req, body_work, body_done) != 0)
    return MAILD_ERR_IO;
  s->reading = 1;
  s->srv->jobs++;
  return MAILD_ERR_DEFER;
}

/* The DSN parameters as the next server gets them (RFC 3461 4); the
   engine sends them only to servers that offer DSN. */
typedef struct dsn_text {
  char notify[40];
  char orcpt[MAILD_ENV_ADDR_MAX * 3 + 16];
} dsn_text;

static void dsn_rcpt(const maild_envelope_rcpt *er, dsn_text *t,
                     maild_smtp_client_rcpt *rc) {
  unsigned n = er->notify;
  size_t len;

  t->notify[0] = '\0';
  if (n & MAILD_NOTIFY_NEVER)
    snprintf(t->notify, sizeof(t->notify), "NEVER");
  else {
    static const struct {
      unsigned bit;
      const char *word;
    } words[] = {{MAILD_NOTIFY_SUCCESS, "SUCCESS"},
                 {MAILD_NOTIFY_FAILURE, "FAILURE"},
                 {MAILD_NOTIFY_DELAY, "DELAY"}};
    size_t k;
    for (k = 0; k < 3; k++)
      if (n & words[k].bit) {
        if (t->notify[0] != '\0')
          strcat(t->notify, ",");
        strcat(t->notify, words[k].word);
      }
  }
  rc->notify = t->notify[0] ? t->notify : NULL;
  rc->orcpt = NULL;
  if (er->orcpt[0] != '\0') {
    len = (size_t)snprintf(t->orcpt, sizeof(t->orcpt), "%s;",
                           er->orcpt_type[0] ? er->orcpt_type : "rfc822");
    if (len < sizeof(t->orcpt) &&
        maild_xtext_encode(er->orcpt, strlen(er->orcpt), t->orcpt + len,
                           sizeof(t->orcpt) - len) > 0)
      rc->orcpt = t->orcpt;
  }
}

/* The next job for this session, or QUIT. */
static void on_ready(maild_smtp_client *c, void *ud) {
  out_session *s = ud;
  out_dest *d = s->dest;
  out_job *j = d->jobs;
  maild_smtp_client_rcpt *rc;
  maild_smtp_client_message msg;
  const maild_envelope *env;
  dsn_text *dt;
  char envid[MAILD_ENV_TEXT_MAX * 3 + 1];
  size_t k;

  if (s->starting) {
    s->starting = 0;
    d->starting--;
  }
  if (j == NULL || s->srv->closing) {
    maild_smtp_client_quit(c);
    return;
  }
  d->jobs = j->next;
  if (d->jobs == NULL)
    d->tail = &d->jobs;
  d->njobs--;
  j->next = NULL;
  env = j->m->env;
  rc = maild__calloc(&s->srv->mem, j->n, sizeof(*rc));
  dt = maild__calloc(&s->srv->mem, j->n, sizeof(*dt));
  if (rc == NULL || dt == NULL) {
    maild__free(&s->srv->mem, rc);
    maild__free(&s->srv->mem, dt);
    job_fail(j, d->name, 451, "4.3.0", "Out of memory");
    maild_smtp_client_quit(c);
    return;
  }
  for (k = 0; k < j->n; k++) {
    rc[k].address = env->rcpt[j->idx[k]].addr;
    dsn_rcpt(&env->rcpt[j->idx[k]], &dt[k], &rc[k]);
  }
  memset(&msg, 0, sizeof(msg));
  msg.from = env->sender;
  msg.rcpts = rc;
  msg.nrcpts = j->n;
  msg.size = env->msg_size - env->return_path_len;
  msg.body_8bit = env->body == MAILD_BODY_8BITMIME;
  msg.smtputf8 = env->smtputf8;
  msg.ret = env->ret == MAILD_RET_FULL   ? "FULL"
            : env->ret == MAILD_RET_HDRS ? "HDRS"
                                         : NULL;
  if (env->envid[0] != '\0' &&
      maild_xtext_encode(env->envid, strlen(env->envid), envid, sizeof(envid)) >
          0)
    msg.envid = envid;
  s->job = j;
  s->took_job = 1;
  s->len = s->pos = 0;
  s->off = 0;
  s->eof = 0;
  s->rerr = 0;
  if (maild_smtp_client_submit(c, &msg) != 0) {
    s->job = NULL;
    job_fail(j, d->name, 451, "4.3.0", "The message could not be sent");
    maild_smtp_client_quit(c);
  }
  maild__free(&s->srv->mem, rc);
  maild__free(&s->srv->mem, dt);
}

static int on_starttls(maild_smtp_client *c, void *ud) {
  out_session *s = ud;
  maild_tls *t;

  (void)c;
  if (s->srv->tls_client == NULL)
    return MAILD_ERR_TLS;
  if (maild__tls_new(&t, s->srv->tls_client, NULL, &s->srv->mem) != 0)
    return MAILD_ERR_NOMEM;
  if (maild__conn_tls_connect(s->conn, t) != 0) {
    maild__tls_del(t);
    return MAILD_ERR_STATE;
  }
  return 0;
}

static void on_rcpt(maild_smtp_client *c, size_t index,
                    const maild_smtp_client_reply *r, void *ud) {
  out_session *s = ud;

  if (s->job != NULL && index < s->job->n)
    set_result(s->job->m, s->job->idx[index], s->dest->name, r,
               (maild_smtp_client_extensions(c) & MAILD_SMTP_EXT_DSN)
                   ? NULL
                   : "relayed");
}

static void on_message(maild_smtp_client *c, const maild_smtp_client_reply *r,
                       void *ud) {
  out_session *s = ud;
  out_job *j = s->job;

  (void)c;
  (void)r;
  s->job = NULL;
  if (j != NULL)
    job_finish(j);
}

static const maild_smtp_client_callbacks client_cb = {
    on_ready, on_starttls, on_read_body, on_rcpt, on_message};

static void session_pump(out_session *s) {
  const uint8_t *p;
  maild_ssize n;
  int phase;

  if (s->closing)
    return;
  while ((n = maild_smtp_client_send(s->eng, &p)) > 0)
    if (maild__conn_write(s->conn, p, (size_t)n) != 0) {
      maild_smtp_client_terminate(s->eng, 451, "4.4.2", "Write failed");
      break;
    }
  phase = (int)maild_smtp_client_get_phase(s->eng);
  if (phase == MAILD_SMTP_CLIENT_CLOSED) {
    session_close(s);
    return;
  }
  if (phase != s->last_phase) {
    uint64_t t =
        maild_smtp_client_phase_timeout((maild_smtp_client_phase)phase);
    if (s->srv->timeout_outbound > 0 &&
        (t == 0 || t > s->srv->timeout_outbound))
      t = s->srv->timeout_outbound;
    s->last_phase = phase;
    maild__conn_deadline(s->conn, t);
  }
}

static void on_conn_read(maild_conn *c, const uint8_t *data, size_t len,
                         void *ud) {
  out_session *s = ud;

  (void)c;
  if (s->closing)
    return;
  maild_smtp_client_recv(s->eng, data, len);
  session_pump(s);
}

static void lost(out_session *s, const char *why) {
  if (maild_smtp_client_get_phase(s->eng) != MAILD_SMTP_CLIENT_CLOSED)
    s->failed = 1; /* not the end of a finished session */
  snprintf(s->why, sizeof(s->why), "%s with %s", why, s->dest->name);
  maild_smtp_client_terminate(s->eng, 451, "4.4.2", s->why);
  session_pump(s);
  session_close(s);
}

static void on_conn_eof(maild_conn *c, int err, void *ud) {
  (void)c;
  (void)err;
  lost(ud, "Lost connection");
}

static void on_conn_drain(maild_conn *c, void *ud) {
  (void)c;
  session_pump(ud);
}

static void on_conn_timeout(maild_conn *c, void *ud) {
  out_session *s = ud;

  (void)c;
  lost(s, s->connected ? "Timeout" : "Connection timed out");
}

static void on_conn_tls(maild_conn *c, int err, void *ud) {
  out_session *s = ud;

  (void)c;
  if (err != 0) {
    char text[200];
    snprintf(text, sizeof(text), "TLS handshake with %s failed: %s",
             s->dest->name, maild__conn_tls_error(s->conn));
    snprintf(s->why, sizeof(s->why), "%s", text);
    s->failed = 1;
    maild_smtp_client_terminate(s->eng, 451, "4.7.5", text);
    session_close(s);
    return;
  }
  maild_smtp_client_tls_started(s->eng);
  session_pump(s);
}

static void on_conn_connect(maild_conn *c, int err, void *ud) {
  out_session *s = ud;

  (void)c;
  if (err != 0) {
    lost(s, "Connection refused");
    return;
  }
  s->connected = 1;
  session_pump(s);
}

static void enqueue(maild_server *srv, out_job *j);

static void dest_free(maild_server *srv, out_dest *d) {
  maild__free(&srv->mem, d->user);
  if (d->password != NULL)
    maild__wipe(d->password, strlen(d->password));
  maild__free(&srv->mem, d->password);
  maild__free(&srv->mem, d);
}

/* A destination with no session and no job left goes, so the list holds
   only the next hops in use, not every address ever tried. (A later job
   for it makes a new one; the route's login comes with the job.) */
static void dest_forget(out_dest *d) {
  maild_server *srv = d->srv;
  out_dest **pp;

  for (pp = &srv->dests; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == d) {
      *pp = d->next;
      dest_free(srv, d);
      return;
    }
  }
}

static void session_free(out_session *s) {
  maild_server *srv = s->srv;
  out_dest *d = s->dest;

  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    srv->out_sessions = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  srv->nout_sessions--;
  d->sessions--;
  if (s->starting)
    d->starting--;
  /* A session that failed before it could take a job (the destination
     refuses connections or greetings): the waiting jobs move on to their
     next host, or fail for now, rather than reconnect at once. */
  if (!s->took_job && s->failed) {
    out_job *j;
    while ((j = d->jobs) != NULL) {
      d->jobs = j->next;
      j->next = NULL;
      d->njobs--;
      if (j->cur + 1 < j->ntargets) { /* the next MX host */
        j->cur++;
        enqueue(srv, j);
        continue;
      }
      job_fail(j, d->name, 451, "4.4.1",
               s->why[0] ? s->why : "No usable connection");
    }
    d->tail = &d->jobs;
  }
  maild_smtp_client_del(s->eng);
  maild__free(&srv->mem, s->buf);
  maild__free(&srv->mem, s);
  dest_kick(d);
  if (d->sessions == 0 && d->jobs == NULL)
    dest_forget(d);
  maild__server_maybe_closed(srv);
}

static void on_conn_close(maild_conn *c, void *ud) {
  out_session *s = ud;

  (void)c;
  if (!s->closing)
    lost(s, "Connection closed");
  s->conn_gone = 1;
  s->conn = NULL;
  if (!s->reading) /* else the body job frees it when it returns */
    session_free(s);
}

static const maild_conn_cb conn_cb = {
    on_conn_read,  on_conn_eof, on_conn_drain,  on_conn_timeout,
    on_conn_close, on_conn_tls, on_conn_connect};

static int session_start(out_dest *d) {
  maild_server *srv = d->srv;
  out_session *s = maild__calloc(&srv->mem, 1, sizeof(*s));
  maild_options *opt = NULL;
  int err;

  if (s == NULL)
    return MAILD_ERR_NOMEM;
  s->srv = srv;
  s->dest = d;
  s->last_phase = -1;
  err = maild_options_new(&opt, &srv->mem);
  if (err == 0)
    err = maild_options_set_string(opt, MAILD_OPT_HOSTNAME, srv->hostname);
  if (err == 0)
    err = maild_options_set_uint(opt, MAILD_OPT_STARTTLS,
                                 srv->tls_client != NULL);
  if (err == 0)
    err = maild_smtp_client_new(&s->eng, &client_cb, s, opt, &srv->mem);
  if (err == 0 && d->user != NULL)
    err = maild_smtp_client_set_auth(s->eng, d->user, d->password);
  maild_options_del(opt);
  if (err == 0)
    err = maild__conn_new(&s->conn, srv->loop, &conn_cb, s, srv->scratch,
                          &srv->mem);
  if (err != 0) {
    maild_smtp_client_del(s->eng);
    maild__free(&srv->mem, s);
    return err;
  }
  s->next = srv->out_sessions;
  if (s->next != NULL)
    s->next->prev = s;
  srv->out_sessions = s;
  srv->nout_sessions++;
  d->sessions++;
  d->starting++;
  s->starting = 1;
  maild__conn_deadline(s->conn, srv->timeout_connect);
  if (maild__conn_connect(s->conn, (const struct sockaddr *)&d->addr) != 0)
    lost(s, "Connection failed");
  return 0;
}

/* Starts sessions for the jobs no session is about to take, up to the
   destination's limit. Jobs left with no session at all (none could be
   made) fail for now. */
static void dest_kick(out_dest *d) {
  maild_server *srv = d->srv;

  while (d->njobs > d->starting && d->sessions < srv->outbound_conns &&
         !srv->closing) {
    if (session_start(d) != 0)
      break;
  }
  if (d->jobs != NULL && d->sessions == 0) {
    out_job *j;
    while ((j = d->jobs) != NULL) {
      d->jobs = j->next;
      j->next = NULL;
      d->njobs--;
      job_fail(j, d->name, 451, "4.4.1",
               srv->closing ? "Shutting down" : "No connection");
    }
    d->tail = &d->jobs;
  }
}

static out_dest *dest_get(maild_server *srv, const struct sockaddr *sa) {
  out_dest *d;
  size_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                         : sizeof(struct sockaddr_in);
  char host[64];

  for (d = srv->dests; d != NULL; d = d->next)
    if (memcmp(&d->addr, sa, len) == 0)
      return d;
  d = maild__calloc(&srv->mem, 1, sizeof(*d));
  if (d == NULL)
    return NULL;
  d->srv = srv;
  memcpy(&d->addr, sa, len);
  d->tail = &d->jobs;
  if (sa->sa_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof(host));
  else
    uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof(host));
  snprintf(d->name, sizeof(d->name), "[%s]:%u", host,
           maild__addr_port(&d->addr));
  d->next = srv->dests;
  srv->dests = d;
  return d;
}

/* ---- Attempts ---- */

static void load_work(uv_work_t *req) {
  out_msg *m = req->data;
  maild_server *srv = m->srv;

  m->err = 0;
  if (maild__spool_held(srv->spool, m->id)) {
    m->held = m->was_held = 1;
    return;
  }
  uv_mutex_lock(&srv->env_lock);
  m->err = maild__spool_load(srv->spool, m->id, &m->env);
  uv_mutex_unlock(&srv->env_lock);
  if (m->err == 0)
    m->err = maild__spool_open_msg(srv->spool, m->id, &m->fd);
  if (m->err != 0 && m->err != MAILD_ERR_NOT_FOUND) /* tried again later */
    maild__spool_set_due(srv->spool, m->id, m->disk_due);
}

/* Queues the job at the destination of its current target. */
static void enqueue(maild_server *srv, out_job *j) {
  out_dest *d = dest_get(srv, (const struct sockaddr *)&j->targets[j->cur]);

  if (d == NULL) {
    job_fail(j, "none", 451, "4.3.0", "Out of memory");
    return;
  }
  if (j->user != NULL && d->user == NULL) { /* the route's login */
    d->user = j->user;
    d->password = j->password;
    j->user = j->password = NULL;
  }
  *d->tail = j;
  d->tail = &j->next;
  d->njobs++;
  dest_kick(d);
}

static void unlink_resolving(maild_server *srv, out_job *j) {
  if (j->rprev != NULL)
    j->rprev->rnext = j->rnext;
  else
    srv->resolving = j->rnext;
  if (j->rnext != NULL)
    j->rnext->rprev = j->rprev;
  j->rnext = j->rprev = NULL;
}

/* Where the domain's mail goes, by its MX records. */
static void on_job_mx(void *ud, const maild_mx_result *res) {
  out_job *j = ud;
  maild_server *srv = j->m->srv;
  size_t i;

  unlink_resolving(srv, j);
  if (res->ntargets == 0) {
    job_fail(j, "none", res->permanent ? 550 : 451, res->enhanced, res->text);
    return;
  }
  j->targets = maild__calloc(&srv->mem, res->ntargets, sizeof(*j->targets));
  if (j->targets == NULL) {
    job_fail(j, "none", 451, "4.3.0", "Out of memory");
    return;
  }
  for (i = 0; i < res->ntargets; i++) {
    j->targets[i] = res->targets[i].addr;
    maild__addr_set_port(&j->targets[i],
                         j->port ? j->port : srv->outbound_port);
  }
  j->ntargets = res->ntargets;
  enqueue(srv, j);
}

/* Looks up where the job goes: the domain's MX hosts, or the host a
   route names (`host`, without MX). */
static void resolve(maild_server *srv, out_job *j, const char *host) {
  int rc;

  j->rnext = srv->resolving;
  if (j->rnext != NULL)
    j->rnext->rprev = j;
  srv->resolving = j;
  rc = host != NULL ? maild_resolver_host(srv->resolver, host, on_job_mx, j)
                    : maild_resolver_mx(srv->resolver, j->domain, on_job_mx, j);
  if (rc != 0) {
    unlink_resolving(srv, j);
    job_fail(j, "none", 451, "4.4.3", "The domain could not be resolved");
  }
}

/* The job carries a copy of its route's login (routes may be replaced by a
   reload while it waits for the resolver). */
static void take_login(maild_server *srv, out_job *j, const out_route *rt) {
  if (rt->user == NULL)
    return;
  j->user = maild__strndup(&srv->mem, rt->user, strlen(rt->user));
  j->password = maild__strndup(&srv->mem, rt->password, strlen(rt->password));
  if (j->user == NULL || j->password == NULL) {
    maild__free(&srv->mem, j->user);
    maild__free(&srv->mem, j->password);
    j->user = j->password = NULL; /* then no login: the server says why */
  }
}

/* ---- Local recipients ----
 *
 * A local recipient is still pending when its mailbox failed at arrival
 * (over quota, a disk error): each attempt delivers it again, as one job
 * on the worker pool for all such recipients of the message.
 */

typedef struct out_local {
  uv_work_t req;
  out_msg *m;
  size_t *idx; /* the recipients */
  int *status; /* maild_store_deliver()'s result for each */
  size_t n;
} out_local;

static void local_work(uv_work_t *req) {
  out_local *l = req->data;
  out_msg *m = l->m;
  maild_server *srv = m->srv;
  char name[MAILD_SPOOL_NAME_SIZE];
  maild_store_message msg;
  maild_store_result res;
  size_t k;

  memset(&msg, 0, sizeof(msg));
  msg.fd = m->fd;
  msg.size = m->env->msg_size;
  if (maild__spool_msg_name(m->id, name) == 0) {
    msg.link_dirfd = maild__spool_queue_fd(srv->spool);
    msg.link_name = name;
  }
  msg.queue_id = m->id;
  for (k = 0; k < l->n; k++) {
    const char *addr = m->env->rcpt[l->idx[k]].addr, *at = strrchr(addr, '@');
    l->status[k] = maild_store_deliver(srv->store, &msg, at + 1, strlen(at + 1),
                                       addr, (size_t)(at - addr), &res);
  }
}

/* What a mailbox's answer means for the recipient (as at arrival: see
   delivery.c), as a reply for the log and the bounce. */
static void local_reply(const maild_server *srv, int status,
                        maild_smtp_client_reply *r) {
  static const char *const texts[] = {"Delivered to mailbox",
                                      "Mailbox unavailable", "Mailbox full",
                                      "Local error in processing"};
  int k = status == 0                                                  ? 0
          : status == MAILD_ERR_NOT_FOUND || status == MAILD_ERR_INVAL ? 1
          : status == MAILD_ERR_LIMIT                                  ? 2
                                                                       : 3;

  r->code = k == 0                           ? 250
            : k == 1                         ? 550
            : k == 2 && srv->quota_permanent ? 552
            : k == 2                         ? 452
                                             : 451;
  r->enhanced = k == 0   ? "2.0.0"
                : k == 1 ? "5.1.1"
                : k == 2 ? (srv->quota_permanent ? "5.2.2" : "4.2.2")
                         : "4.3.0";
  r->text = texts[k];
  r->text_len = strlen(texts[k]);
  r->local = 1;
}

static void local_done(uv_work_t *req, int status) {
  out_local *l = req->data;
  out_msg *m = l->m;
  maild_server *srv = m->srv;
  maild_smtp_client_reply r;
  size_t k;

  (void)status;
  srv->jobs--;
  for (k = 0; k < l->n; k++) {
    local_reply(srv, l->status[k], &r);
    set_result(m, l->idx[k], "local", &r, "delivered");
  }
  maild__free(&srv->mem, l->idx);
  maild__free(&srv->mem, l->status);
  maild__free(&srv->mem, l);
  if (--m->jobs_left == 0)
    attempt_done(m);
}

/* Delivers the local recipients `idx[0..n)` (taken over). */
static void deliver_local(out_msg *m, size_t *idx, size_t n) {
  maild_server *srv = m->srv;
  out_local *l = maild__calloc(&srv->mem, 1, sizeof(*l));
  size_t k;

  if (l != NULL)
    l->status = maild__calloc(&srv->mem, n, sizeof(*l->status));
  if (l == NULL || l->status == NULL) {
    maild__free(&srv->mem, l);
    for (k = 0; k < n; k++)
      m->result[idx[k]] = RESULT_TEMP; /* retried */
    maild__free(&srv->mem, idx);
    return;
  }
  l->m = m;
  l->idx = idx;
  l->n = n;
  l->req.data = l;
  if (uv_queue_work(srv->loop, &l->req, local_work, local_done) != 0) {
    for (k = 0; k < n; k++)
      m->result[idx[k]] = RESULT_TEMP;
    maild__free(&srv->mem, l->status);
    maild__free(&srv->mem, l->idx);
    maild__free(&srv->mem, l);
    return;
  }
  srv->jobs++;
  m->jobs_left++;
}

/* 1 when `domain` is one of ours: without a directory, every domain is
   (each recipient is a mailbox of its own address). */
static int is_local(const maild_server *srv, const char *domain) {
  return srv->directory == NULL || maild_directory_is_local_domain(
                                       srv->directory, domain, strlen(domain));
}

/* Delivers the pending local recipients and splits the pending remote
   ones by domain into jobs. */
static void dispatch(out_msg *m) {
  maild_server *srv = m->srv;
  maild_envelope *env = m->env;
  size_t i, k, nlocal = 0, *local = NULL;

  for (i = 0; i < env->nrcpt; i++) {
    const char *addr = env->rcpt[i].addr, *at = strrchr(addr, '@');
    const out_route *rt;
    out_job *j;
    if (env->rcpt[i].state != MAILD_RCPT_PENDING || m->result[i] != 0 ||
        at == NULL)
      continue;
    if (is_local(srv, at + 1)) {
      if (local == NULL)
        local = maild__calloc(&srv->mem, env->nrcpt, sizeof(*local));
      if (local == NULL) {
        m->result[i] = RESULT_TEMP; /* retried */
        continue;
      }
      local[nlocal++] = i;
      m->result[i] = RESULT_INJOB;
      continue;
    }
    j = maild__calloc(&srv->mem, 1, sizeof(*j));
    if (j != NULL)
      j->idx = maild__calloc(&srv->mem, env->nrcpt, sizeof(size_t));
    if (j == NULL || j->idx == NULL) {
      maild__free(&srv->mem, j);
      m->result[i] = RESULT_TEMP; /* retried */
      continue;
    }
    j->m = m;
    snprintf(j->domain, sizeof(j->domain), "%s", at + 1);
    /* This recipient and the later ones of the same domain. */
    for (k = i; k < env->nrcpt; k++) {
      const char *a2 = strrchr(env->rcpt[k].addr, '@');
      if (env->rcpt[k].state == MAILD_RCPT_PENDING && m->result[k] == 0 &&
          a2 != NULL && strlen(a2 + 1) == strlen(j->domain) &&
          maild__ascii_caseeq(a2 + 1, strlen(a2 + 1), j->domain)) {
        j->idx[j->n++] = k;
        m->result[k] = RESULT_INJOB;
      }
    }
    m->jobs_left++;
    rt = find_route(srv, j->domain);
    if (rt == NULL && srv->resolver != NULL) {
      resolve(srv, j, NULL);
      continue;
    }
    if (rt != NULL && rt->host != NULL) {
      if (srv->resolver == NULL) {
        job_fail(j, "none", 451, "4.4.3", "No resolver for the route's host");
        continue;
      }
      j->port = rt->port;
      take_login(srv, j, rt);
      resolve(srv, j, rt->host);
      continue;
    }
    if (rt == NULL) {
      char text[320];
      snprintf(text, sizeof(text), "No route to %s", j->domain);
      job_fail(j, "none", 451, "4.4.3", text);
      continue;
    }
    j->targets = maild__malloc(&srv->mem, sizeof(*j->targets));
    if (j->targets == NULL) {
      job_fail(j, "none", 451, "4.3.0", "Out of memory");
      continue;
    }
    j->targets[0] = rt->addr;
    j->ntargets = 1;
    take_login(srv, j, rt);
    enqueue(srv, j);
  }
  if (nlocal > 0)
    deliver_local(m, local, nlocal);
  else
    maild__free(&srv->mem, local);
}

static void load_done(uv_work_t *req, int status) {
  out_msg *m = req->data;
  maild_server *srv = m->srv;

  (void)status;
  srv->jobs--;
  if (m->held && m->err == 0 && m->env == NULL) { /* waits for a release */
    m->busy = 0;
    srv->out_active--;
    maild__queue_may_leave(srv);
    slot_freed(srv);
    maild__server_maybe_closed(srv);
    return;
  }
  if (m->err != 0 && m->err != MAILD_ERR_NOT_FOUND && !srv->closing) {
    maild__log(srv, MAILD_LOG_ERROR, "%s: cannot read the queue entry: %s",
               m->id, maild_strerror(m->err));
    maild__spool_envelope_free(srv->spool, m->env);
    m->env = NULL;
    if (m->fd >= 0)
      close(m->fd);
    m->fd = -1;
    m->busy = 0;
    m->due = m->disk_due;
    srv->out_active--;
    maild__queue_may_leave(srv);
    maild__queue_schedule(srv, m->due);
    slot_freed(srv);
    maild__server_maybe_closed(srv);
    return;
  }
  if (m->err != 0 || srv->closing) {
    /* Gone (delivered or deleted meanwhile), or found again at start. */
    srv->out_active--;
    maild__queue_record_free(m, m->err == MAILD_ERR_NOT_FOUND);
    slot_freed(srv);
    maild__server_maybe_closed(srv);
    return;
  }
  m->result = maild__calloc(&srv->mem, m->env->nrcpt, 1);
  if (m->result == NULL) {
    m->jobs_left = 1;
    attempt_done(m);
    return;
  }
  m->jobs_left = 1; /* held until dispatch is over */
  dispatch(m);
  if (--m->jobs_left == 0)
    attempt_done(m);
}

static void start_attempt(out_msg *m) {
  maild_server *srv = m->srv;

  m->busy = 1;
  m->disk_due = maild__queue_now(srv) + srv->retry_policy.max_ms;
  m->req.data = m;
  if (uv_queue_work(srv->loop, &m->req, load_work, load_done) != 0) {
    m->busy = 0;
    m->due = maild__queue_now(srv) + srv->retry_policy.first_ms;
    return;
  }
  srv->jobs++;
  srv->out_active++;
}

/* Whether recipient `i`, deferred in this attempt, is one the delay
   warning is about: it did not opt out (NOTIFY=DELAY or no NOTIFY), the
   warning is due (the message waited delay_warning) and not sent yet, and
   the message goes on waiting (its lifetime is not over). */
static int delay_due(const out_msg *m, size_t i) {
  const maild_server *srv = m->srv;
  unsigned notify = m->env->rcpt[i].notify;
  uint64_t arrival = (uint64_t)(m->arrival_usec / 1000);

  return srv->delay_warning > 0 && !m->env->delay_warned && m->next_due != 0 &&
         m->ended >= arrival + srv->delay_warning &&
         !(notify & MAILD_NOTIFY_NEVER) &&
         (notify == 0 || (notify & MAILD_NOTIFY_DELAY));
}

/*
 * The reports on this attempt: a bounce for the recipients that failed
 * (unless the message is itself a report, null sender, or they asked
 * NOTIFY=NEVER or without FAILURE), a success report for those done that
 * asked NOTIFY=SUCCESS (delivered here, or relayed to a server without
 * DSN), and the one delay warning for those still waiting (delay_due).
 * On the worker, while the spool file is open.
 */
static void build_reports(out_msg *m) {
  static const out_fail none = {NULL, "", "", ""};
  maild_server *srv = m->srv;
  const maild_envelope *env = m->env;
  maild_dsn_rcpt *dr;
  maild_report rep;
  size_t i, n[OUT_REPORTS] = {0};
  int k;

  if (env->sender[0] == '\0' || m->result == NULL)
    return;
  dr = maild__calloc(&srv->mem, OUT_REPORTS * env->nrcpt, sizeof(*dr));
  if (dr == NULL)
    return;
  /* Kind k's recipients go to dr[k * nrcpt ...]. */
  for (i = 0; i < env->nrcpt; i++) {
    const out_fail *f = m->fail != NULL ? &m->fail[i] : &none;
    unsigned notify = env->rcpt[i].notify;
    maild_dsn_rcpt *r;

    if (m->result[i] == MAILD_RCPT_FAILED && f->action == NULL &&
        !(notify & MAILD_NOTIFY_NEVER) &&
        (notify == 0 || (notify & MAILD_NOTIFY_FAILURE)))
      k = OUT_BOUNCE;
    else if (m->result[i] == MAILD_RCPT_DONE && f->action != NULL)
      k = OUT_SUCCESS;
    else if (m->result[i] == RESULT_TEMP && f->action != NULL &&
             delay_due(m, i))
      k = OUT_DELAY;
    else
      continue;
    r = &dr[(size_t)k * env->nrcpt + n[k]++];
    r->addr = env->rcpt[i].addr;
    r->orcpt = env->rcpt[i].orcpt;
    r->action = f->action != NULL ? f->action : "failed";
    r->status = f->status[0] ? f->status : "5.0.0";
    r->remote_mta = f->relay;
    r->diag = f->diag;
  }
  memset(&rep, 0, sizeof(rep));
  rep.id = m->id;
  rep.sender = env->sender;
  rep.envid = env->envid;
  rep.arrival_usec = m->arrival_usec;
  rep.ret_full = env->ret == MAILD_RET_FULL;
  rep.fd = m->fd;
  rep.msg_size = env->msg_size;
  rep.return_path_len = env->return_path_len;
  for (k = 0; k < OUT_REPORTS; k++) {
    rep.rcpts = dr + (size_t)k * env->nrcpt;
    rep.nrcpts = n[k];
    (void)maild__report_build(srv, &rep, &m->report[k]);
  }
  maild__free(&srv->mem, dr);
}

/* Records the attempt's results; removes the entry when all are final. */
static void persist_work(uv_work_t *req) {
  out_msg *m = req->data;
  maild_server *srv = m->srv;
  maild_envelope *env;
  size_t i;
  int final = 1;

  if (m->env != NULL && m->fd >= 0)
    build_reports(m); /* before the files may go */
  uv_mutex_lock(&srv->env_lock);
  m->err = m->deleted ? MAILD_ERR_NOT_FOUND
                      : maild__spool_load(srv->spool, m->id, &env);
  if (m->err == 0) {
    for (i = 0; i < env->nrcpt && i < m->env->nrcpt; i++) {
      uint8_t r = m->result != NULL ? m->result[i] : 0;
      if (r == MAILD_RCPT_DONE || r == MAILD_RCPT_FAILED)
        env->rcpt[i].state = r;
      if (env->rcpt[i].state == MAILD_RCPT_PENDING)
        final = 0;
    }
    if (maild__buf_used(&m->report[OUT_DELAY]) > 0)
      env->delay_warned = 1; /* sent once this is on record */
    m->err = final ? maild__spool_remove(srv->spool, m->id)
                   : maild__spool_update(srv->spool, env, m->disk_due);
    maild__spool_envelope_free(srv->spool, env);
  }
  uv_mutex_unlock(&srv->env_lock);
  m->all_final = m->err == 0 && final;
  if (m->err == MAILD_ERR_NOT_FOUND)
    m->all_final = 1; /* removed meanwhile */
  if (m->all_final && m->was_held)
    maild__spool_hold(srv->spool, m->id, 0);
}

static void persist_done(uv_work_t *req, int status);

/* Makes the attempt's results durable, with the time of the next attempt
   (by the schedule, from now: the spool keeps it for a restart and for
   when the record leaves memory). */
static void persist(out_msg *m) {
  maild_server *srv = m->srv;
  uint64_t now = maild__queue_now(srv);

  m->ended = now;
  m->next_due =
      maild__retry_next(&srv->retry_policy, (uint64_t)(m->arrival_usec / 1000),
                        now, m->attempts + 1);
  m->disk_due = m->next_due != 0 ? m->next_due : now;
  m->req.data = m;
  if (uv_queue_work(srv->loop, &m->req, persist_work, persist_done) != 0) {
    persist_done(&m->req, 0);
    return;
  }
  srv->jobs++;
}

/* Every job of the attempt has its results: make them durable. */
static void attempt_done(out_msg *m) {
  persist(m);
}

static void persist_done(uv_work_t *req, int status) {
  static const char *const report_names[OUT_REPORTS] = {"non-delivery",
                                                        "success", "delay"};
  out_msg *m = req->data;
  maild_server *srv = m->srv;
  maild_envelope *env = m->env;
  int recorded = m->err == 0 || m->all_final, k;
  size_t i, pending = 0;
  uint64_t next;

  (void)status;
  srv->jobs--;
  if (!recorded)
    maild__log(srv, MAILD_LOG_ERROR, "%s: cannot record delivery state: %s",
               m->id, maild_strerror(m->err));
  for (k = 0; k < OUT_REPORTS; k++) {
    /* Sent only once the results they report are on record. */
    if (recorded && env != NULL)
      maild__report_send(srv, m->id, env->sender, env->smtputf8, &m->report[k],
                         report_names[k]);
    maild__buf_free(&m->report[k], &srv->mem);
  }
  for (i = 0; env != NULL && m->result != NULL && i < env->nrcpt; i++)
    pending += m->result[i] == RESULT_TEMP;
  if (m->result == NULL)
    pending = 1; /* out of memory before dispatch: try again */
  if (m->all_final || pending == 0 || srv->closing) {
    srv->out_active--;
    maild__queue_record_free(m, m->all_final || pending == 0);
    slot_freed(srv);
    maild__server_maybe_closed(srv);
    return;
  }
  m->attempts++;
  next = m->next_due;
  if (next == 0 && !m->expired && m->result != NULL) {
    /* The lifetime is over: the remaining recipients fail for good. */
    maild_smtp_client_reply r = {554, "5.4.7", NULL, 0, 1};
    char text[80];
    snprintf(text, sizeof(text), "Message expired: undeliverable for %.1f days",
             (double)srv->retry_policy.lifetime_ms / 86400000.0);
    r.text = text;
    r.text_len = strlen(text);
    m->expired = 1;
    for (i = 0; i < env->nrcpt; i++)
      if (m->result[i] == RESULT_TEMP) {
        m->result[i] = MAILD_RCPT_FAILED;
        note(m, i, "none", &r, NULL);
        log_result(m, i, "none", &r, "expired");
      }
    persist(m);
    return;
  }
  maild__spool_envelope_free(srv->spool, m->env);
  m->env = NULL;
  maild__free(&srv->mem, m->result);
  m->result = NULL;
  maild__free(&srv->mem, m->fail);
  m->fail = NULL;
  close(m->fd);
  m->fd = -1;
  m->busy = 0;
  srv->out_active--;
  m->due = next != 0 ? next : m->disk_due;
  maild__queue_may_leave(srv);
  slot_freed(srv);
  maild__queue_schedule(srv, m->due);
  maild__server_maybe_closed(srv);
}

/* ---- The timer ----
 *
 * One timer for the whole queue. It fires at the earliest due time (or at
 * once when an attempt slot frees up while due messages wait for one), and
 * one pass over the records starts what is due and finds the next time, so
 * the cost per message stays constant however long the queue is. The pass
 * also tells queue.c what memory holds, for its scans of the spool.
 */

/* Makes the timer fire by `due` (queue clock) at the latest. With an
   embedder's clock, which may run faster than the loop's, the timer looks
   again every CLOCK_POLL_MS at most. */
#define CLOCK_POLL_MS 10u

void maild__queue_schedule(maild_server *srv, uint64_t due) {
  uint64_t now, wait;

  if (srv->closing)
    return;
  if (uv_is_active((uv_handle_t *)&srv->out_timer) && srv->out_timer_due <= due)
    return;
  now = maild__queue_now(srv);
  wait = due > now ? due - now : 0;
  if (srv->clock != NULL && wait > CLOCK_POLL_MS)
    wait = CLOCK_POLL_MS;
  srv->out_timer_due = due;
  uv_timer_start(&srv->out_timer, on_timer, wait, 0);
}

/* An attempt ended: if due messages waited for a slot, go on. */
static void slot_freed(maild_server *srv) {
  if (srv->out_waiting && srv->out_active < MSGS_ACTIVE) {
    srv->out_waiting = 0;
    maild__queue_schedule(srv, maild__queue_now(srv));
  }
}

static void on_timer(uv_timer_t *t) {
  maild_server *srv = t->data;
  uint64_t now = maild__queue_now(srv), soonest = UINT64_MAX, wake;
  out_msg *m, *next;
  int may_leave = 0;

  srv->out_waiting = 0;
  for (m = srv->out_msgs; m != NULL; m = next) {
    next = m->next;
    if (m->busy)
      continue;
    if (m->held) {
      may_leave = 1;
      continue;
    }
    if (m->due <= now && srv->out_active < MSGS_ACTIVE) {
      start_attempt(m);
      if (m->busy)
        continue;
    }
    if (m->due < soonest)
      soonest = m->due;
    may_leave |= m->due > now;
  }
  wake = maild__queue_pass_done(srv, now, soonest, may_leave);
  if (soonest <= now)
    srv->out_waiting = 1; /* slot_freed() goes on */
  else if (soonest < wake)
    wake = soonest;
  if (wake != UINT64_MAX)
    maild__queue_schedule(srv, wake);
}

/* ---- Shutdown ---- */

void maild__outbound_shutdown(maild_server *srv) {
  out_session *s, *next;
  out_job *j;

  uv_timer_stop(&srv->out_timer);
  uv_timer_stop(&srv->scan_timer);
  while ((j = srv->resolving) != NULL) {
    unlink_resolving(srv, j);
    maild_resolver_cancel(srv->resolver, on_job_mx, j);
    job_fail(j, "none", 451, "4.3.2", "Shutting down");
  }
  for (s = srv->out_sessions; s != NULL; s = next) {
    next = s->next;
    if (!s->closing)
      lost(s, "Shutting down");
  }
}

int maild__outbound_idle(const maild_server *srv) {
  return srv->nout_sessions == 0 && srv->out_active == 0;
}

void maild__outbound_free(maild_server *srv) {
  out_dest *d;

  maild__queue_free(srv);
  while ((d = srv->dests) != NULL) {
    srv->dests = d->next;
    dest_free(srv, d);
  }
  free_routes(srv, srv->routes, srv->nroutes);
  srv->routes = NULL;
  srv->nroutes = 0;
  if (srv->tls_client != NULL)
    maild__tls_config_release(srv->tls_client);
  srv->tls_client = NULL;
  uv_mutex_destroy(&srv->env_lock);
}
