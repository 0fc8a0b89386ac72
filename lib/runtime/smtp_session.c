/*
 * One SMTP session: the glue between a connection (lib/io), the SMTP
 * engine (lib/proto) and the delivery of the message (delivery.c).
 *
 * Input the engine does not consume (a decision pending, output backed
 * up) waits in a small buffer and reading stops until the engine wants
 * more, so a client that never reads cannot make the server buffer without
 * limit (TESTPLAN L4). The command deadline runs from the start of a
 * command, not from the last octet, so a client that trickles one octet
 * every few seconds is still cut off (TESTPLAN L1); during a body, the
 * deadline is an inactivity timeout. Nothing here blocks: the spool and
 * the mailboxes are written on the worker pool.
 */
#include "runtime/server_int.h"

#include "proto/received.h"

#include "core/mem.h"
#include "maild/error.h"
#include "maild/cidr.h"
#include "maild/directory.h"
#include "maild/sasl.h"
#include "maild/users.h"

#include <stdio.h>
#include <string.h>

#define INPUT_MAX (256u * 1024u)
/* Output queued on the socket above which the engine keeps its replies
   (and so stops reading commands): a client that never reads costs at
   most this plus the engine's own backlog (TESTPLAN L4). */
#define OUTPUT_MAX (64u * 1024u)

struct smtp_session {
  smtp_session *next, *prev;
  maild_server *srv;
  maild_conn *conn;
  maild_smtp_server *eng;
  maild_buf in;            /* client octets the engine has not consumed yet */
  delivery *d;             /* the transaction's message, from MAIL on */
  int d_busy;              /* a job is working on `d` */
  int at_command;          /* the last octet consumed ended a command line */
  int phase;               /* engine phase after the last pump */
  int conn_gone;           /* on_close came */
  int ended;               /* peer gone or session over: no more input */
  int tls;                 /* 0 plaintext, 1 handshake running, 2 TLS up */
  maild_sasl_server *sasl; /* AUTH exchange in progress */
  int auth_busy;           /* a password check runs on the worker pool */
  int auth_delay;          /* a refusal waits out its delay */
  unsigned auth_failures;
  int auth_malformed; /* the refusal is 501 (undecodable), not 535 */
  char challenge[MAILD_SASL_CHALLENGE_SIZE];
  char auth_user[MAILD_USERS_ADDRESS_SIZE]; /* after AUTH: canonical */
  maild_service service;
  char tls_info[128]; /* for the Received header */
  char peer[64];
};

static void pump(smtp_session *s);
static void end_connection(smtp_session *s);
static void set_deadline(smtp_session *s, int got_input);

/* No more input: the session is over for the client, so its address no
   longer counts toward MAX_CONNECTIONS_PER_IP (a client that reconnects
   right after QUIT is not refused while the old socket closes). */
static void set_ended(smtp_session *s) {
  if (s->ended)
    return;
  s->ended = 1;
  maild__server_release_ip(s->srv, s->peer);
}

smtp_session *maild__smtp_session_next(smtp_session *s) {
  return s->next;
}

static void session_free(smtp_session *s) {
  maild_server *srv = s->srv;

  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    srv->sessions = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  maild_smtp_server_del(s->eng);
  maild_sasl_server_del(s->sasl);
  maild__buf_free(&s->in, &srv->mem);
  maild__server_session_gone(srv, s);
  maild__free(&srv->mem, s);
}

/* The session goes when its connection is closed and no job uses it. */
static void maybe_free(smtp_session *s) {
  if (s->conn_gone && !s->d_busy && !s->auth_busy)
    session_free(s);
}

static void drop_delivery(smtp_session *s) {
  if (s->d == NULL || s->d_busy)
    return;
  maild__delivery_free(s->d);
  s->d = NULL;
}

/* ---- Engine callbacks ---- */

static char *dup_str(maild_server *srv, const char *p, size_t n) {
  return maild__strndup(&srv->mem, p, n);
}

/* Whether the logged-in user may send as `from`: the null sender, the
   user's own address, or an alias that delivers to the user. */
static int sender_owned(smtp_session *s, const maild_path *from) {
  maild_directory_result res;
  char canon[MAILD_USERS_ADDRESS_SIZE];
  size_t i;

  if (from->flags & MAILD_PATH_NULL)
    return 1;
  if (maild_users_canonical_path(from, canon, sizeof(canon)) >= 0 &&
      strcmp(canon, s->auth_user) == 0)
    return 1;
  if (s->srv->directory == NULL ||
      maild_directory_lookup(s->srv->directory, from, &res) != 0 ||
      res.kind != MAILD_RCPT_LOCAL)
    return 0;
  for (i = 0; i < res.nmailboxes; i++) {
    if (strcmp(res.mailboxes[i], s->auth_user) == 0)
      return 1;
  }
  return 0;
}

/* Submission (RFC 6409; on 587 and on 465, RFC 8314): logged-in users
   only, and a logged-in user sends as themselves. */
static int submission_refusal(smtp_session *s, maild_smtp_server *eng,
                              const maild_path *from, maild_reply *reply) {
  if (!maild_smtp_server_is_authenticated(eng)) {
    if (s->service != MAILD_SERVICE_SUBMISSION &&
        s->service != MAILD_SERVICE_SMTPS)
      return 0;
    *reply = (maild_reply){530, "5.7.0", "Error: authentication required"};
    return 1;
  }
  if (s->srv->any_sender || sender_owned(s, from))
    return 0;
  *reply = (maild_reply){553, "5.7.1",
                         "Error: sender address not owned by the user"};
  return 1;
}

static int on_mail(maild_smtp_server *eng, const maild_smtp_mail *m,
                   maild_reply *reply, void *ud) {
  smtp_session *s = ud;
  maild_server *srv = s->srv;
  char addr[MAILD_PATH_MAX * 2];
  maild_ssize n = maild_path_format(m->from, addr, sizeof(addr));
  const char *helo = maild_smtp_server_helo_name(eng);
  const char *tls = s->tls == 2 ? s->tls_info : NULL;
  uv_timeval64_t tv;
  delivery *d;

  drop_delivery(s);
  if (submission_refusal(s, eng, m->from, reply))
    return 0;
  if (!maild__server_spool_room(
          srv, (m->params->present & MAILD_PARAM_SIZE) ? m->params->size : 0)) {
    /* TESTPLAN D4: a resource problem is never a 5xx. */
    maild__log(srv, MAILD_LOG_WARNING,
               "client=[%s] MAIL refused: spool space low", s->peer);
    reply->code = 452;
    reply->enhanced = "4.3.1";
    reply->text = "Error: insufficient system storage";
    return 0;
  }
  d = maild__delivery_new(srv);
  if (d == NULL || n < 0)
    goto nomem;
  s->d = d;
  d->sender = dup_str(srv, addr, (size_t)n);
  d->helo = dup_str(srv, helo ? helo : "", helo ? strlen(helo) : 0);
  d->peer = dup_str(srv, s->peer, strlen(s->peer));
  d->tls_info = tls != NULL ? dup_str(srv, tls, strlen(tls)) : NULL;
  if (d->sender == NULL || d->helo == NULL || d->peer == NULL ||
      (tls != NULL && d->tls_info == NULL))
    goto nomem;
  d->esmtp = maild_smtp_server_is_esmtp(eng);
  d->tls = s->tls == 2;
  d->auth = maild_smtp_server_is_authenticated(eng);
  d->smtputf8 = (m->params->present & MAILD_PARAM_SMTPUTF8) != 0;
  d->ret = m->params->ret;
  d->body_type = m->params->body;
  if (m->params->envid_len > 0) {
    d->envid = dup_str(srv, m->params->envid, m->params->envid_len);
    if (d->envid == NULL)
      goto nomem;
  }
  uv_gettimeofday(&tv);
  d->arrival_usec = tv.tv_sec * 1000000 + tv.tv_usec;
  return 0;
nomem:
  drop_delivery(s);
  reply->code = 451;
  reply->enhanced = "4.3.0";
  reply->text = "Error: insufficient system resources";
  return 0;
}

/* Relaying (mail for other domains) is for logged-in users and clients
   on the trusted networks only. */
static int may_relay(smtp_session *s, maild_smtp_server *eng) {
  return maild_smtp_server_is_authenticated(eng) ||
         (s->srv->trusted != NULL &&
          maild_cidr_set_contains(s->srv->trusted, s->peer));
}

static int on_rcpt(maild_smtp_server *eng, const maild_smtp_rcpt *rc,
                   maild_reply *reply, void *ud) {
  smtp_session *s = ud;

  char addr[MAILD_PATH_MAX * 2];

  size_t before = s->d != NULL ? s->d->nrcpts : 0;

  (void)eng;
  if (s->d == NULL || maild__rcpt_resolve(s->srv, rc->to, s->d,
                                          may_relay(s, eng), reply) != 0) {
    reply->code = 451;
    reply->enhanced = "4.3.0";
    reply->text = "Error: insufficient system resources";
  }
  /* The DSN requests go with the recipient (and the alias targets it
     became). */
  if (reply->code == 0)
    maild__delivery_set_notify(s->d, before, rc->params->notify);
  if (reply->code != 0 && maild_path_format(rc->to, addr, sizeof(addr)) >= 0)
    maild__log(s->srv, MAILD_LOG_INFO,
               "reject: RCPT from [%s]: %d %s <%s>: %s; from=<%s>", s->peer,
               reply->code, reply->enhanced ? reply->enhanced : "", addr,
               reply->text ? reply->text : "",
               s->d != NULL ? s->d->sender : "");
  return 0;
}

/* The body is streamed to the spool in pieces of BODY_MEMORY octets. */
static void on_flushed(delivery *d, void *ud) {
  smtp_session *s = ud;

  (void)d;
  s->d_busy = 0;
  if (s->conn_gone) {
    drop_delivery(s);
    maybe_free(s);
    return;
  }
  maild_smtp_server_resume(s->eng);
  pump(s);
}

static int on_data_chunk(maild_smtp_server *eng, const uint8_t *data,
                         size_t len, void *ud) {
  smtp_session *s = ud;
  delivery *d = s->d;

  (void)eng;
  if (d == NULL || d->result != 0)
    return 0; /* failed already: read to the end, answer then (D5) */
  d->body_size += len;
  if (maild__buf_append(&d->body, &s->srv->mem, data, len) != 0) {
    d->result = MAILD_ERR_NOMEM;
    return 0;
  }
  if (maild__buf_used(&d->body) < s->srv->body_memory)
    return 0;
  if (maild__delivery_flush(d, on_flushed, s) != 0) {
    d->result = MAILD_ERR_IO;
    return 0;
  }
  s->d_busy = 1;
  return MAILD_ERR_DEFER;
}

static void log_accepted(smtp_session *s, delivery *d) {
  maild__log(s->srv, MAILD_LOG_INFO,
             "%s: from=<%s>, size=%llu, nrcpt=%zu, client=[%s], helo=<%s>, "
             "proto=%s",
             d->id, d->sender, (unsigned long long)d->body_size, d->nrcpts,
             s->peer, d->helo,
             maild__received_protocol(d->esmtp, d->tls, d->auth, d->smtputf8));
}

static void on_committed(delivery *d, void *ud) {
  smtp_session *s = ud;
  maild_reply reply = {0, NULL, NULL};
  char text[96];

  s->d_busy = 0;
  s->d = NULL;
  if (d->result == 0) {
    snprintf(text, sizeof(text), "Ok: queued as %s", d->id);
    reply.code = 250;
    reply.enhanced = "2.0.0";
    reply.text = text;
    log_accepted(s, d);
    maild__delivery_log(d);
  } else {
    reply.code = d->reply_code;
    reply.enhanced = d->reply_enh;
    reply.text = d->reply_text;
    maild__log(s->srv, MAILD_LOG_WARNING,
               "refused message from=<%s> client=[%s]: %d %s %s", d->sender,
               s->peer, d->reply_code, d->reply_enh, d->reply_text);
  }
  maild__delivery_done(d);
  if (s->conn_gone) {
    maybe_free(s);
    return;
  }
  maild_smtp_server_reply(s->eng, &reply);
  pump(s);
}

static int on_data_end(maild_smtp_server *eng, maild_reply *reply, void *ud) {
  smtp_session *s = ud;

  (void)eng;
  if (s->d == NULL || maild__delivery_run(s->d, on_committed, s) != 0) {
    drop_delivery(s);
    reply->code = 451;
    reply->enhanced = "4.3.0";
    reply->text = "Error: local error in processing";
    return 0;
  }
  s->d_busy = 1;
  return MAILD_ERR_DEFER;
}

static void on_tx_abort(maild_smtp_server *eng, maild_smtp_abort why,
                        void *ud) {
  smtp_session *s = ud;

  (void)eng;
  (void)why;
  drop_delivery(s);
}

static void on_error(maild_smtp_server *eng, int code, const char *line,
                     size_t len, void *ud) {
  smtp_session *s = ud;
  char safe[128];
  size_t i;

  (void)eng;
  for (i = 0; i < len && i < sizeof(safe) - 1; i++)
    safe[i] = (line[i] >= 0x20 && line[i] < 0x7f) ? line[i] : '?';
  safe[i] = '\0';
  maild__log(s->srv, MAILD_LOG_INFO, "client=[%s] error %d: %s", s->peer, code,
             safe);
}

/* STARTTLS (RFC 3207): offered only when the server has a certificate;
   the handshake starts once the 220 is on its way (see pump). */
static int on_starttls(maild_smtp_server *eng, maild_reply *reply, void *ud) {
  smtp_session *s = ud;

  (void)eng;
  if (s->srv->tls != NULL)
    return 0;
  reply->code = 454;
  reply->enhanced = "4.7.0";
  reply->text = "TLS not available due to local problem";
  return 0;
}

/* ---- AUTH (RFC 4954) ---- */

/* Failed logins a session may make; the delay before each refusal doubles
   from AUTH_DELAY_MS (TESTPLAN A2). */
#define AUTH_FAILURES_MAX 3
#define AUTH_DELAY_MS     1000u

static void log_auth_failure(smtp_session *s, const char *user) {
  char safe[MAILD_USERS_ADDRESS_SIZE];
  size_t i;

  for (i = 0; user[i] != '\0' && i < sizeof(safe) - 1; i++)
    safe[i] = user[i] > 0x20 && user[i] < 0x7f ? user[i] : '?';
  safe[i] = '\0';
  maild__log(s->srv, MAILD_LOG_WARNING,
             "auth failed: client=[%s] user=<%s> mechanism=%s", s->peer, safe,
             s->sasl != NULL ? maild_sasl_server_mechanism(s->sasl) : "?");
}

/* A failed login: the answer waits out a delay that doubles with each
   failure (on_timeout gives it), and after AUTH_FAILURES_MAX the session
   ends instead. Returns the AUTH decision: deferred. */
static int auth_refuse(smtp_session *s, const char *user, int malformed) {
  log_auth_failure(s, user);
  s->auth_malformed = malformed;
  maild_sasl_server_del(s->sasl);
  s->sasl = NULL;
  s->auth_failures++;
  s->auth_delay = 1;
  maild__conn_deadline(s->conn,
                       (uint64_t)AUTH_DELAY_MS << (s->auth_failures - 1));
  return MAILD_ERR_DEFER;
}

static void auth_checked(void *ud, int ok, const char *user) {
  smtp_session *s = ud;
  maild_reply r = {235, "2.7.0", "Authentication successful"};

  s->auth_busy = 0;
  if (s->conn_gone || s->ended) {
    maild_sasl_server_del(s->sasl);
    s->sasl = NULL;
    maybe_free(s);
    return;
  }
  if (!ok) {
    auth_refuse(s, user, 0);
    return;
  }
  maild__log(s->srv, MAILD_LOG_INFO, "auth: client=[%s] user=<%s> mechanism=%s",
             s->peer, user, maild_sasl_server_mechanism(s->sasl));
  snprintf(s->auth_user, sizeof(s->auth_user), "%s", user);
  maild_sasl_server_del(s->sasl);
  s->sasl = NULL;
  maild_smtp_server_reply(s->eng, &r);
  pump(s);
  set_deadline(s, 0);
}

static int on_auth(maild_smtp_server *eng, const maild_smtp_auth *auth,
                   maild_reply *reply, void *ud) {
  smtp_session *s = ud;
  size_t clen = 0;
  int rc;

  (void)eng;
  if (auth->step == 0) {
    maild_sasl_server_del(s->sasl);
    s->sasl = NULL;
    if (maild_sasl_server_new(&s->sasl, auth->mechanism, NULL, &s->srv->mem) !=
        0) {
      *reply = (maild_reply){504, "5.5.4", "Error: unsupported mechanism"};
      return 0;
    }
  }
  if (s->sasl == NULL) {
    *reply = (maild_reply){503, "5.5.1", "Error: no AUTH in progress"};
    return 0;
  }
  rc = maild_sasl_server_step(s->sasl, auth->response, auth->response_len,
                              s->challenge, sizeof(s->challenge), &clen);
  if (rc == MAILD_SASL_CONTINUE) {
    *reply = (maild_reply){334, NULL, s->challenge};
    return 0;
  }
  if (rc == MAILD_SASL_DONE &&
      maild__auth_check(s->srv, s->sasl, auth_checked, s) == 0) {
    s->auth_busy = 1;
    return MAILD_ERR_DEFER;
  }
  if (rc == MAILD_SASL_DONE) {
    *reply = (maild_reply){454, "4.7.0",
                           "Error: temporary authentication "
                           "failure"};
    maild_sasl_server_del(s->sasl);
    s->sasl = NULL;
    return 0;
  }
  /* RFC 4954 4: a response that cannot be decoded gets 501; it counts as
     a failed login all the same. */
  return auth_refuse(s, "", 1);
}

static const maild_smtp_server_callbacks engine_cb = {
    NULL,        on_mail,     on_rcpt,     NULL,    on_data_chunk,
    on_data_end, on_tx_abort, on_starttls, on_auth, on_error};

/* Puts a TLS session between the connection and the engine: after the
   220 to STARTTLS, or at once on an smtps listener. */
static int start_tls(smtp_session *s) {
  maild_tls *t;

  if (maild__tls_new(&t, s->srv->tls, NULL, &s->srv->mem) != 0)
    return MAILD_ERR_NOMEM;
  if (maild__conn_tls_start(s->conn, t) != 0) {
    maild__tls_del(t);
    return MAILD_ERR_STATE;
  }
  s->tls = 1;
  maild__conn_deadline(s->conn, s->srv->timeout_tls);
  return 0;
}

/* ---- Driving the engine ---- */

/* The last replies go out (with a TLS close_notify when TLS is up), then
   the connection closes. */
static void end_connection(smtp_session *s) {
  set_ended(s);
  maild__conn_close_after_flush(s->conn);
}

/* Offers input to the engine; returns octets consumed or < 0. */
static maild_ssize feed(smtp_session *s, const uint8_t *p, size_t len) {
  maild_ssize n = maild_smtp_server_recv(s->eng, p, len);

  if (n > 0)
    s->at_command = p[n - 1] == '\n';
  return n;
}

static void set_deadline(smtp_session *s, int got_input) {
  int phase = (int)maild_smtp_server_phase(s->eng);
  int changed = phase != s->phase;

  if (s->tls == 1 || s->auth_delay)
    return; /* the handshake, or a refusal's delay, has its own timer */
  s->phase = phase;
  switch (phase) {
  case MAILD_SMTP_PHASE_DATA:
  case MAILD_SMTP_PHASE_BDAT:
    if (got_input || changed)
      maild__conn_deadline(s->conn, s->srv->timeout_data);
    break;
  case MAILD_SMTP_PHASE_DECISION:
    maild__conn_deadline(s->conn, 0);
    break;
  default:
    /* A new command starts after a line end or a phase change. */
    if (changed || (got_input && s->at_command))
      maild__conn_deadline(s->conn, s->srv->timeout_command);
    break;
  }
}

/* Offers buffered input to the engine; returns nonzero if it took any. */
static int feed_buffered(smtp_session *s) {
  int took = 0;
  maild_ssize n;

  while (!s->ended && maild__buf_used(&s->in) > 0 &&
         maild_smtp_server_want_read(s->eng)) {
    n = feed(s, maild__buf_peek(&s->in), maild__buf_used(&s->in));
    if (n <= 0)
      break;
    maild__buf_consume(&s->in, (size_t)n);
    took = 1;
  }
  return took;
}

/* Moves the engine's replies to the socket while it has room; returns
   nonzero if any moved, -1 if the connection failed. */
static int flush_output(smtp_session *s) {
  const uint8_t *out;
  maild_ssize n;
  int moved = 0;

  while (maild__conn_pending(s->conn) < OUTPUT_MAX &&
         (n = maild_smtp_server_send(s->eng, &out)) > 0) {
    if (maild__conn_write(s->conn, out, (size_t)n) != 0)
      return -1;
    moved = 1;
  }
  return moved;
}

static void pump(smtp_session *s) {
  int fed, moved;

  /* Feeding fills the engine's output; sending it (often at once, by
     uv_try_write) lets the engine take more input. Go round until
     neither moves, or a pipelining client that does read would wait for
     a drain callback that never comes. */
  do {
    fed = feed_buffered(s);
    moved = flush_output(s);
    if (moved < 0) {
      maild_smtp_server_terminate(s->eng, NULL);
      end_connection(s);
      return;
    }
  } while ((fed || moved) && !s->ended);
  if (s->ended)
    return;
  if (s->tls == 0 && maild_smtp_server_phase(s->eng) == MAILD_SMTP_PHASE_TLS) {
    /* RFC 3207 4.2: whatever the client sent after STARTTLS, before it
       saw the 220, is plaintext and is dropped, never executed. */
    maild__buf_clear(&s->in);
    if (start_tls(s) != 0) {
      maild_smtp_server_terminate(s->eng, NULL);
      end_connection(s);
      return;
    }
  }
  if (maild_smtp_server_closing(s->eng) &&
      !maild_smtp_server_want_write(s->eng)) {
    end_connection(s);
    return;
  }
  /* During the handshake the engine waits (TLS phase, or no greeting
     yet on smtps) but the connection must read the client's records. */
  maild__conn_read(s->conn,
                   s->tls == 1 || (maild_smtp_server_want_read(s->eng) &&
                                   maild__buf_used(&s->in) < INPUT_MAX &&
                                   maild__conn_pending(s->conn) < OUTPUT_MAX));
}

static void on_read(maild_conn *c, const uint8_t *data, size_t len, void *ud) {
  smtp_session *s = ud;
  maild_ssize n = 0;

  (void)c;
  if (s->ended)
    return;
  /* Fast path: nothing waiting, hand the read buffer straight over. */
  if (maild__buf_used(&s->in) == 0 && maild_smtp_server_want_read(s->eng)) {
    n = feed(s, data, len);
    if (n < 0) {
      end_connection(s);
      return;
    }
  }
  if ((size_t)n < len &&
      maild__buf_append(&s->in, &s->srv->mem, data + n, len - (size_t)n) != 0) {
    maild_smtp_server_terminate(s->eng, NULL);
    end_connection(s);
    return;
  }
  pump(s);
  set_deadline(s, 1);
}

static void on_eof(maild_conn *c, int err, void *ud) {
  smtp_session *s = ud;

  (void)c;
  (void)err;
  maild_smtp_server_terminate(s->eng, NULL);
  set_ended(s);
  maild__conn_close(s->conn);
}

static void on_drain(maild_conn *c, void *ud) {
  smtp_session *s = ud;

  (void)c;
  pump(s);
  set_deadline(s, 0);
}

static void on_timeout(maild_conn *c, void *ud) {
  smtp_session *s = ud;
  maild_reply refused = {535, "5.7.8", "Error: authentication failed"};
  maild_reply malformed = {501, "5.5.2", "Error: invalid SASL response"};

  if (s->auth_delay) { /* the delay before a refused login is over */
    maild_reply bye = {421, "4.7.0", "Error: too many authentication failures"};
    s->auth_delay = 0;
    if (s->auth_failures >= AUTH_FAILURES_MAX) {
      maild_smtp_server_terminate(s->eng, &bye);
      pump(s);
      end_connection(s);
      return;
    }
    maild_smtp_server_reply(s->eng, s->auth_malformed ? &malformed : &refused);
    pump(s);
    set_deadline(s, 0);
    return;
  }
  maild_reply r = {421, "4.4.2", "Error: timeout exceeded"};

  (void)c;
  maild__log(s->srv, MAILD_LOG_INFO, "timeout after phase %d from [%s]",
             s->phase, s->peer);
  maild_smtp_server_terminate(s->eng, &r);
  pump(s);
  end_connection(s);
}

static void on_close(maild_conn *c, void *ud) {
  smtp_session *s = ud;

  (void)c;
  s->conn_gone = 1;
  set_ended(s);
  drop_delivery(s);
  maild__log(s->srv, MAILD_LOG_DEBUG, "disconnect from [%s]", s->peer);
  maybe_free(s);
}

static void on_tls(maild_conn *c, int err, void *ud) {
  smtp_session *s = ud;
  const char *info = maild__conn_tls_info(c);

  if (err != 0) {
    maild__log(s->srv, MAILD_LOG_INFO, "TLS handshake failed from [%s]: %s",
               s->peer, maild__server_tls_failure(c, err));
    maild_smtp_server_terminate(s->eng, NULL);
    end_connection(s);
    return;
  }
  s->tls = 2;
  snprintf(s->tls_info, sizeof(s->tls_info), "%s", info ? info : "TLS");
  maild__server_tls_log(s->srv, s->peer, c);
  s->phase = -1; /* re-arm the command deadline */
  if (s->service != MAILD_SERVICE_SMTPS &&
      maild_smtp_server_tls_started(s->eng, s->tls_info) != 0) {
    maild_smtp_server_terminate(s->eng, NULL);
    end_connection(s);
    return;
  }
  pump(s);
  set_deadline(s, 0);
}

void maild__smtp_session_shutdown(smtp_session *s, int force) {
  maild_reply r = {421, "4.3.2", "Error: service shutting down"};

  if (s->ended || (!force && s->d != NULL))
    return;
  maild_smtp_server_terminate(s->eng, &r);
  pump(s);
  end_connection(s);
}

int maild__smtp_session_start(maild_server *srv, maild_conn *conn,
                              const char *peer, maild_service service) {
  static const maild_conn_cb conn_cb = {on_read,  on_eof, on_drain, on_timeout,
                                        on_close, on_tls, NULL};
  const maild_options *opt = maild__server_options(srv, service);
  smtp_session *s = maild__calloc(&srv->mem, 1, sizeof(*s));

  if (s == NULL)
    return MAILD_ERR_NOMEM;
  s->srv = srv;
  s->conn = conn;
  snprintf(s->peer, sizeof(s->peer), "%s", peer);
  maild__buf_init(&s->in, INPUT_MAX + 65536);
  s->service = service;
  if (maild_smtp_server_new(&s->eng, &engine_cb, s, opt, &srv->mem) != 0) {
    maild__free(&srv->mem, s);
    return MAILD_ERR_NOMEM;
  }
  maild__conn_rebind(conn, &conn_cb, s);
  s->next = srv->sessions;
  if (s->next != NULL)
    s->next->prev = s;
  srv->sessions = s;
  s->phase = -1;
  maild__log(srv, MAILD_LOG_DEBUG, "connect from [%s]", peer);
  /* Implicit TLS: the greeting waits for the handshake (RFC 8314 3.3). */
  if (service == MAILD_SERVICE_SMTPS && start_tls(s) != 0) {
    maild_smtp_server_terminate(s->eng, NULL);
    end_connection(s);
    return 0;
  }
  pump(s);
  set_deadline(s, 0);
  return 0;
}
