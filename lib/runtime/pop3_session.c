/*
 * One POP3 session: the POP3 engine (lib/proto) between a connection
 * (lib/io) and a mailbox of the store. Everything that touches the disk or
 * runs crypt(3) is a worker-pool job: the login (password check, then
 * opening and listing the mailbox under its exclusive lock), each read of
 * message content (prefetched into a 128 KiB buffer the engine then
 * consumes), the deletions at QUIT, and closing the mailbox once the
 * connection is gone (the store's bookkeeping, such as Maildir's new/ to
 * cur/ moves, happens after the client has its last answer). Only one job
 * runs per session, because the engine waits for each answer. A read job
 * reads ahead: after the piece asked for, the messages that follow it,
 * whole, as far as the buffer goes, so a client that pipelines RETR 1..n
 * costs one job per buffer, not one per message. Logins fail the same way
 * for an unknown user and a wrong password, after a delay that doubles per
 * failure, as for SMTP AUTH (TESTPLAN A2).
 */
#include "runtime/server_int.h"

#include "core/mem.h"
#include "maild/error.h"
#include "maild/pop3_server.h"
#include "maild/sasl.h"
#include "maild/store.h"
#include "maild/users.h"

#include <stdio.h>
#include <string.h>

#define INPUT_MAX         (64u * 1024u)
#define OUTPUT_MAX        (64u * 1024u)
#define PREFETCH          (128u * 1024u)
#define PREFETCH_PIECES   32u
#define AUTOLOGOUT_MS     (10u * 60u * 1000u) /* RFC 1939 3: at least 10 min */
#define AUTH_FAILURES_MAX 3
#define AUTH_DELAY_MS     1000u

/* Octets [off, off + len) of message `index`, at rd_buf + at. */
typedef struct {
  size_t index;
  uint64_t off;
  size_t at, len;
  int ends; /* the message ends there */
} rd_piece;

struct pop3_session {
  pop3_session *next, *prev;
  maild_server *srv;
  maild_conn *conn;
  maild_pop3_server *eng;
  maild_buf in;
  maild_service service;
  int tls;       /* 0 plaintext, 1 handshake, 2 TLS up */
  int busy;      /* a job uses this session */
  int ended;     /* no more input */
  int conn_gone; /* on_close came */
  int delay;     /* a refused login waits out its delay */
  int closing;   /* the close job runs: the mailbox is still locked */
  int waiting;   /* a login waits for a closing session of the user */
  unsigned failures;
  maild_sasl_server *sasl;
  char challenge[MAILD_SASL_CHALLENGE_SIZE];
  maild_mailbox *box;
  /* The job's input and output. */
  uv_work_t req;
  char user[MAILD_USERS_ADDRESS_SIZE];
  char hash[MAILD_USERS_HASH_SIZE];
  char password[MAILD_SASL_PASSWORD_MAX + 1];
  size_t password_len;
  int rc;
  maild_pop3_msg *msgs;
  size_t nmsgs;
  size_t *deleted;
  size_t ndeleted;
  /* Prefetched content: the read asked for (rd_index at rd_off), then
     read-ahead. No pieces while a read job runs. */
  uint8_t *rd_buf;
  rd_piece pieces[PREFETCH_PIECES];
  size_t npieces;
  size_t rd_index;
  uint64_t rd_off;
  char peer[64];
};

static void pump(pop3_session *s);

pop3_session *maild__pop3_session_next(pop3_session *s) {
  return s->next;
}

static void session_free(pop3_session *s) {
  maild_server *srv = s->srv;

  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    srv->pop3_sessions = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  maild_mailbox_close(s->box); /* NULL unless the close job could not run */
  maild_pop3_server_del(s->eng);
  maild_sasl_server_del(s->sasl);
  maild__buf_free(&s->in, &srv->mem);
  maild__free(&srv->mem, s->msgs);
  maild__free(&srv->mem, s->deleted);
  maild__free(&srv->mem, s->rd_buf);
  maild__wipe(s->password, sizeof(s->password));
  maild__server_session_gone(srv, NULL);
  maild__free(&srv->mem, s);
}

static int run_job(pop3_session *s, uv_work_cb work, uv_after_work_cb done);
static void wake_waiting(maild_server *srv, const char *user);

/* The mailbox's close may do I/O (Maildir moves new/ to cur/ then): on the
   worker pool, after the client has its last answer. */
static void close_work(uv_work_t *req) {
  pop3_session *s = req->data;

  maild_mailbox_close(s->box);
  s->box = NULL;
}

static void close_done(uv_work_t *req, int status) {
  pop3_session *s = req->data;
  maild_server *srv = s->srv;
  char user[MAILD_USERS_ADDRESS_SIZE];

  (void)status;
  s->busy = 0;
  srv->jobs--;
  memcpy(user, s->user, sizeof(user));
  session_free(s); /* tells the server, which may be closing */
  wake_waiting(srv, user);
}

static void maybe_free(pop3_session *s) {
  if (!s->conn_gone || s->busy)
    return;
  if (s->box != NULL && run_job(s, close_work, close_done) == 0) {
    s->closing = 1;
    return;
  }
  session_free(s);
}

static void set_ended(pop3_session *s) {
  if (s->ended)
    return;
  s->ended = 1;
  maild__server_release_ip(s->srv, s->peer);
}

static void end_connection(pop3_session *s) {
  set_ended(s);
  maild__conn_close_after_flush(s->conn);
}

/* ---- Jobs ---- */

static int run_job(pop3_session *s, uv_work_cb work, uv_after_work_cb done) {
  s->req.data = s;
  if (uv_queue_work(s->srv->loop, &s->req, work, done) != 0)
    return MAILD_ERR_IO;
  s->busy = 1;
  s->srv->jobs++;
  return 0;
}

/* Returns nonzero (and frees the session if it is gone) when the job's
   answer has nobody to go to. */
static int job_finished(pop3_session *s) {
  maild_server *srv = s->srv;

  s->busy = 0;
  srv->jobs--;
  if (s->conn_gone || s->ended) {
    maybe_free(s); /* may free s */
    maild__server_maybe_closed(srv);
    return 1;
  }
  return 0;
}

/* Opens and lists the mailbox of the logged-in user. */
static void open_mailbox(pop3_session *s) {
  const char *at = maild_users_domain(s->user);
  size_t i;

  if (at == NULL) {
    s->rc = MAILD_ERR_PERM;
    return;
  }
  s->rc = maild_store_open(s->srv->store, at + 1, strlen(at + 1), s->user,
                           (size_t)(at - s->user), &s->box);
  if (s->rc != 0)
    return;
  s->nmsgs = maild_mailbox_count(s->box);
  s->msgs = maild__calloc(&s->srv->mem, s->nmsgs + 1, sizeof(*s->msgs));
  if (s->msgs == NULL) {
    s->rc = MAILD_ERR_NOMEM;
    return;
  }
  for (i = 0; i < s->nmsgs && s->rc == 0; i++)
    s->rc = maild_mailbox_info(s->box, i, &s->msgs[i].size, &s->msgs[i].uidl);
}

/* Login: the password, then the mailbox, opened and listed. */
static void login_work(uv_work_t *req) {
  pop3_session *s = req->data;

  s->rc = maild_users_verify_hash(s->hash, s->password, s->password_len, NULL);
  maild__wipe(s->password, sizeof(s->password));
  if (s->rc == 0)
    open_mailbox(s);
}

/* The mailbox again, once a closing session of the same user let it go. */
static void open_work(uv_work_t *req) {
  open_mailbox(req->data);
}

static void log_failure(pop3_session *s, const char *mech) {
  char safe[MAILD_USERS_ADDRESS_SIZE];
  size_t i;

  for (i = 0; s->user[i] != '\0' && i < sizeof(safe) - 1; i++)
    safe[i] = s->user[i] > 0x20 && s->user[i] < 0x7f ? s->user[i] : '?';
  safe[i] = '\0';
  maild__log(s->srv, MAILD_LOG_WARNING,
             "pop3 auth failed: client=[%s] user=<%s> mechanism=%s", s->peer,
             safe, mech);
}

/* A refused login waits; after AUTH_FAILURES_MAX the session ends. */
static void refuse_later(pop3_session *s) {
  s->failures++;
  s->delay = 1;
  maild__conn_deadline(s->conn, (uint64_t)AUTH_DELAY_MS << (s->failures - 1));
}

static void login_answer(pop3_session *s, int status);

static void login_done(uv_work_t *req, int status) {
  pop3_session *s = req->data;

  maild__crypt_finished(s->srv);
  login_answer(s, status);
}

static void open_done(uv_work_t *req, int status) {
  login_answer(req->data, status);
}

/* Whether a session of `user` is closing its mailbox (a close job). */
static int user_closing(const maild_server *srv, const char *user) {
  const pop3_session *o;

  for (o = srv->pop3_sessions; o != NULL; o = o->next)
    if (o->closing && strcmp(o->user, user) == 0)
      return 1;
  return 0;
}

static void login_answer(pop3_session *s, int status) {
  maild_pop3_reply ok = {MAILD_POP3_OK, NULL, "Logged in"};
  maild_pop3_reply inuse = {MAILD_POP3_ERR, "IN-USE",
                            "Mailbox in use by another session"};
  maild_pop3_reply temp = {MAILD_POP3_ERR, "SYS/TEMP",
                           "Mailbox unavailable, try again later"};

  (void)status;
  if (job_finished(s))
    return;
  if (s->rc == MAILD_ERR_PERM) {
    log_failure(s, s->sasl ? maild_sasl_server_mechanism(s->sasl) : "USER");
    refuse_later(s);
    return;
  }
  if (s->rc == MAILD_ERR_EXISTS && user_closing(s->srv, s->user)) {
    /* The same user's last session is still closing (a client that
       reconnects at once): the answer waits for its close_done. */
    s->waiting = 1;
    return;
  }
  maild_sasl_server_del(s->sasl);
  s->sasl = NULL;
  if (s->rc == 0 &&
      maild_pop3_server_set_maildrop(s->eng, s->msgs, s->nmsgs) == 0) {
    maild__log(s->srv, MAILD_LOG_INFO,
               "pop3 login: client=[%s] user=<%s> messages=%zu", s->peer,
               s->user, s->nmsgs);
    maild_pop3_server_reply(s->eng, &ok);
  } else {
    maild_mailbox_close(s->box); /* nothing read: no I/O but close(2) */
    s->box = NULL;
    maild_pop3_server_reply(s->eng, s->rc == MAILD_ERR_EXISTS ? &inuse : &temp);
  }
  pump(s);
}

/* Logins of `user` that found the mailbox locked by a closing session try
   to open it again. */
static void wake_waiting(maild_server *srv, const char *user) {
  pop3_session *o, *next;

  for (o = srv->pop3_sessions; o != NULL; o = next) {
    next = o->next; /* login_answer may free o */
    if (!o->waiting || strcmp(o->user, user) != 0)
      continue;
    o->waiting = 0;
    if (run_job(o, open_work, open_done) != 0) {
      o->rc = MAILD_ERR_IO;
      o->busy = 1; /* login_answer's job_finished takes it back */
      srv->jobs++;
      login_answer(o, 0);
    }
  }
}

/* Starts a login with the given credentials (copied). */
static int start_login(pop3_session *s, const char *user, size_t ulen,
                       const char *pw, size_t plen) {
  maild_ssize n;

  s->user[0] = '\0';
  s->hash[0] = '\0';
  n = maild_users_canonical(user, ulen, s->user, sizeof(s->user));
  if (n < 0) {
    size_t k = ulen < sizeof(s->user) - 1 ? ulen : sizeof(s->user) - 1;
    memcpy(s->user, user, k); /* for the log only */
    s->user[k] = '\0';
  } else if (s->srv->users != NULL) {
    maild_users_login_hash(s->srv->users, s->user, (size_t)n, s->hash,
                           sizeof(s->hash));
  }
  if (plen > MAILD_SASL_PASSWORD_MAX)
    plen = 0; /* checked against the dummy hash: refused the same way */
  memcpy(s->password, pw, plen);
  s->password_len = plen;
  if (n < 0)
    s->hash[0] = '\0';
  s->req.data = s;
  if (maild__crypt_queue(s->srv, &s->req, login_work, login_done) != 0)
    return MAILD_ERR_IO;
  s->busy = 1;
  s->srv->jobs++;
  return MAILD_ERR_DEFER;
}

static int on_auth(maild_pop3_server *eng, const maild_pop3_auth *a,
                   maild_pop3_reply *reply, void *ud) {
  pop3_session *s = ud;
  size_t clen, ul, pl;
  const char *u, *p;
  int rc;

  (void)eng;
  if (strcmp(a->mechanism, "USER") == 0)
    return start_login(s, a->user, a->user_len, a->password, a->password_len);
  if (a->step == 0) {
    maild_sasl_server_del(s->sasl);
    s->sasl = NULL;
    if (maild_sasl_server_new(&s->sasl, a->mechanism, NULL, &s->srv->mem) !=
        0) {
      *reply =
          (maild_pop3_reply){MAILD_POP3_ERR, NULL, "Unsupported mechanism"};
      return 0;
    }
  }
  if (s->sasl == NULL)
    return MAILD_ERR_INVAL;
  rc = maild_sasl_server_step(s->sasl, a->response, a->response_len,
                              s->challenge, sizeof(s->challenge), &clen);
  if (rc == MAILD_SASL_CONTINUE) {
    *reply = (maild_pop3_reply){MAILD_POP3_CONTINUE, NULL, s->challenge};
    return 0;
  }
  u = maild_sasl_server_authcid(s->sasl, &ul);
  p = maild_sasl_server_password(s->sasl, &pl);
  if (rc == MAILD_SASL_DONE && u != NULL && p != NULL)
    return start_login(s, u, ul, p, pl);
  maild_sasl_server_del(s->sasl);
  s->sasl = NULL;
  *reply = (maild_pop3_reply){MAILD_POP3_ERR, "AUTH", "Invalid response"};
  return 0;
}

/* Content: served from the prefetched pieces, else fetched by a job. */
static int fill_piece(maild_mailbox *box, rd_piece *p, uint8_t *buf,
                      size_t room) {
  p->len = 0;
  p->ends = 0;
  while (p->len < room) {
    maild_ssize n = maild_mailbox_read(box, p->index, p->off + p->len,
                                       buf + p->len, room - p->len);
    if (n < 0)
      return (int)n;
    if (n == 0) {
      p->ends = 1;
      break;
    }
    p->len += (size_t)n;
  }
  return 0;
}

static void read_work(uv_work_t *req) {
  pop3_session *s = req->data;
  size_t count = maild_mailbox_count(s->box), used = 0;
  size_t index = s->rd_index;
  uint64_t off = s->rd_off;

  s->rc = 0;
  while (s->npieces < PREFETCH_PIECES && used < PREFETCH && index < count) {
    rd_piece *p = &s->pieces[s->npieces];
    int rc;
    p->index = index;
    p->off = off;
    p->at = used;
    rc = fill_piece(s->box, p, s->rd_buf + used, PREFETCH - used);
    if (rc != 0) {
      if (s->npieces == 0)
        s->rc = rc; /* read-ahead failing is no one's error */
      break;
    }
    s->npieces++;
    used += p->len;
    if (!p->ends)
      break;
    index++;
    off = 0;
  }
}

static void read_done(uv_work_t *req, int status) {
  pop3_session *s = req->data;

  (void)status;
  if (job_finished(s))
    return;
  maild_pop3_server_resume(s->eng);
  pump(s);
}

static int on_read(maild_pop3_server *eng, size_t index, uint64_t offset,
                   uint8_t *buf, size_t cap, size_t *len, void *ud) {
  pop3_session *s = ud;
  size_t k;

  (void)eng;
  for (k = 0; k < s->npieces; k++) {
    const rd_piece *p = &s->pieces[k];
    size_t skip, n;
    if (p->index != index || offset < p->off || offset > p->off + p->len ||
        (offset == p->off + p->len && !p->ends))
      continue;
    skip = (size_t)(offset - p->off);
    n = p->len - skip < cap ? p->len - skip : cap;
    memcpy(buf, s->rd_buf + p->at + skip, n);
    *len = n; /* 0 at the end of the message */
    return 0;
  }
  if (s->rc != 0 && s->npieces == 0 && s->rd_index == index &&
      s->rd_off == offset) {
    int err = s->rc;
    s->rc = 0;
    return err; /* the job just failed for this very read */
  }
  if (s->rd_buf == NULL) {
    s->rd_buf = maild__malloc(&s->srv->mem, PREFETCH);
    if (s->rd_buf == NULL)
      return MAILD_ERR_NOMEM;
  }
  s->rd_index = index;
  s->rd_off = offset;
  s->npieces = 0;
  s->rc = 0;
  return run_job(s, read_work, read_done) == 0 ? MAILD_ERR_DEFER : MAILD_ERR_IO;
}

/* QUIT: the deletions, durably, then the lock goes with the mailbox. */
static void update_work(uv_work_t *req) {
  pop3_session *s = req->data;

  s->rc = s->ndeleted > 0
              ? maild_mailbox_delete(s->box, s->deleted, s->ndeleted)
              : 0;
}

static void update_done(uv_work_t *req, int status) {
  pop3_session *s = req->data;
  maild_pop3_reply temp = {MAILD_POP3_ERR, "SYS/TEMP",
                           "Some messages could not be deleted"};

  (void)status;
  if (job_finished(s))
    return;
  maild__log(s->srv, MAILD_LOG_INFO, "pop3 logout: user=<%s> deleted=%zu%s",
             s->user, s->ndeleted, s->rc != 0 ? " (failed)" : "");
  maild_pop3_server_reply(s->eng, s->rc != 0 ? &temp : NULL);
  pump(s);
}

static int on_update(maild_pop3_server *eng, const size_t *deleted, size_t n,
                     maild_pop3_reply *reply, void *ud) {
  pop3_session *s = ud;

  (void)eng;
  (void)reply;
  s->deleted = maild__calloc(&s->srv->mem, n + 1, sizeof(*deleted));
  if (s->deleted == NULL)
    return MAILD_ERR_NOMEM;
  if (n > 0)
    memcpy(s->deleted, deleted, n * sizeof(*deleted));
  s->ndeleted = n;
  return run_job(s, update_work, update_done) == 0 ? MAILD_ERR_DEFER
                                                   : MAILD_ERR_IO;
}

static const maild_pop3_server_callbacks engine_cb = {on_auth, on_read,
                                                      on_update, NULL};

/* ---- Driving ---- */

static int start_tls(pop3_session *s) {
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

/*
 * One pass: input to the engine and its output to the connection, corked,
 * so the replies of the pass leave together. Returns 1 when it stopped at
 * the output limit, 0 when the engine has nothing more for now, -1 when
 * the session ended.
 */
static int pump_pass(pop3_session *s) {
  const uint8_t *out;
  maild_ssize n;
  int progress, full = 0;

  maild__conn_cork(s->conn);
  do {
    progress = 0;
    while (!s->ended && maild__buf_used(&s->in) > 0 &&
           maild_pop3_server_want_read(s->eng)) {
      n = maild_pop3_server_recv(s->eng, maild__buf_peek(&s->in),
                                 maild__buf_used(&s->in));
      if (n <= 0)
        break;
      maild__buf_consume(&s->in, (size_t)n);
      progress = 1;
    }
    while (!(full = maild__conn_pending(s->conn) >= OUTPUT_MAX) &&
           (n = maild_pop3_server_send(s->eng, &out)) > 0) {
      if (maild__conn_write(s->conn, out, (size_t)n) != 0) {
        maild_pop3_server_terminate(s->eng, NULL);
        end_connection(s);
        return -1;
      }
      progress = 1;
    }
  } while (progress && !full && !s->ended);
  if (maild__conn_uncork(s->conn) != 0 && !s->ended) {
    maild_pop3_server_terminate(s->eng, NULL);
    end_connection(s);
  }
  return s->ended ? -1 : full;
}

static void pump(pop3_session *s) {
  int r;

  /* The socket may take a full pass at once: then no drain event follows,
     so go on while it keeps up. */
  do
    r = pump_pass(s);
  while (r == 1 && maild__conn_pending(s->conn) < OUTPUT_MAX);
  if (r < 0)
    return;
  if (s->tls == 0 && maild_pop3_server_phase(s->eng) == MAILD_POP3_PHASE_TLS) {
    maild__buf_clear(&s->in); /* RFC 2595 4: plaintext after STLS */
    if (start_tls(s) != 0) {
      end_connection(s);
      return;
    }
  }
  if (maild_pop3_server_closing(s->eng) &&
      !maild_pop3_server_want_write(s->eng)) {
    end_connection(s);
    return;
  }
  maild__conn_read(s->conn,
                   s->tls == 1 || (maild_pop3_server_want_read(s->eng) &&
                                   maild__buf_used(&s->in) < INPUT_MAX &&
                                   maild__conn_pending(s->conn) < OUTPUT_MAX));
}

static void on_read_conn(maild_conn *c, const uint8_t *data, size_t len,
                         void *ud) {
  pop3_session *s = ud;

  (void)c;
  if (s->ended)
    return;
  if (maild__buf_append(&s->in, &s->srv->mem, data, len) != 0) {
    maild_pop3_server_terminate(s->eng, NULL);
    end_connection(s);
    return;
  }
  pump(s);
  if (s->tls != 1 && !s->delay)
    maild__conn_deadline(s->conn, AUTOLOGOUT_MS);
}

static void on_eof(maild_conn *c, int err, void *ud) {
  pop3_session *s = ud;

  (void)err;
  maild_pop3_server_terminate(s->eng, NULL);
  set_ended(s);
  maild__conn_close(c);
}

static void on_drain(maild_conn *c, void *ud) {
  (void)c;
  pump(ud);
}

static void on_timeout(maild_conn *c, void *ud) {
  pop3_session *s = ud;
  maild_pop3_reply refused = {MAILD_POP3_ERR, "AUTH", "Authentication failed"};

  (void)c;
  if (s->delay) {
    s->delay = 0;
    maild_sasl_server_del(s->sasl);
    s->sasl = NULL;
    if (s->failures >= AUTH_FAILURES_MAX) {
      maild_pop3_server_terminate(s->eng, "[AUTH] Too many failures");
      pump(s);
      end_connection(s);
      return;
    }
    maild_pop3_server_reply(s->eng, &refused);
    pump(s);
    maild__conn_deadline(s->conn, AUTOLOGOUT_MS);
    return;
  }
  maild_pop3_server_terminate(s->eng, "Autologout; idle for too long");
  pump(s);
  end_connection(s);
}

static void on_close(maild_conn *c, void *ud) {
  pop3_session *s = ud;

  (void)c;
  s->conn_gone = 1;
  set_ended(s);
  maybe_free(s);
}

static void on_tls(maild_conn *c, int err, void *ud) {
  pop3_session *s = ud;

  if (err != 0) {
    maild__log(s->srv, MAILD_LOG_INFO, "TLS handshake failed from [%s]: %s",
               s->peer, maild__server_tls_failure(c, err));
    maild_pop3_server_terminate(s->eng, NULL);
    end_connection(s);
    return;
  }
  s->tls = 2;
  maild__server_tls_log(s->srv, s->peer, c);
  if (s->service != MAILD_SERVICE_POP3S &&
      maild_pop3_server_tls_started(s->eng) != 0) {
    end_connection(s);
    return;
  }
  pump(s);
  maild__conn_deadline(s->conn, AUTOLOGOUT_MS);
}

void maild__pop3_session_shutdown(pop3_session *s) {
  if (s->ended)
    return;
  maild_pop3_server_terminate(s->eng, "Server shutting down");
  pump(s);
  end_connection(s);
}

int maild__pop3_session_start(maild_server *srv, maild_conn *conn,
                              const char *peer, maild_service service) {
  static const maild_conn_cb conn_cb = {
      on_read_conn, on_eof, on_drain, on_timeout, on_close, on_tls, NULL};
  const maild_options *opt = maild__server_options(srv, service);
  pop3_session *s = maild__calloc(&srv->mem, 1, sizeof(*s));

  if (s == NULL)
    return MAILD_ERR_NOMEM;
  s->srv = srv;
  s->conn = conn;
  s->service = service;
  snprintf(s->peer, sizeof(s->peer), "%s", peer);
  maild__buf_init(&s->in, INPUT_MAX + 65536);
  if (maild_pop3_server_new(&s->eng, &engine_cb, s, opt, &srv->mem) != 0) {
    maild__free(&srv->mem, s);
    return MAILD_ERR_NOMEM;
  }
  maild__conn_rebind(conn, &conn_cb, s);
  s->next = srv->pop3_sessions;
  if (s->next != NULL)
    s->next->prev = s;
  srv->pop3_sessions = s;
  if (service == MAILD_SERVICE_POP3S && start_tls(s) != 0) {
    end_connection(s);
    return 0;
  }
  pump(s);
  if (s->tls != 1)
    maild__conn_deadline(conn, AUTOLOGOUT_MS);
  return 0;
}
