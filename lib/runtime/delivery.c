/*
 * Delivery: from an accepted body to mailboxes, on libuv's worker pool.
 *
 * One job per message does the durable part in order: write the spool
 * file (Return-Path, Received, body), commit it (fsync, rename, directory
 * fsync), then deliver to each local mailbox through the store (a hard
 * link of the spool file when they share a filesystem), then remove the
 * spool entry. The client's 250 waits for the whole job, so "250" means
 * "in the spool, and in the mailboxes unless a mailbox failed". When no
 * mailbox took the message, the entry is removed and the client gets the
 * failure (quota: 452 4.2.2 or 552 5.2.2; disk: 451/452), so nothing
 * partial is left. When some did, the rest stay in the spool with their
 * state recorded, and the queue (outbound.c, queue.c) tries them again on
 * its retry schedule, as it does recipients in other domains. At start, the
 * spool is rescanned and what it holds is queued (at least once: a crash
 * may repeat a delivery, never lose one).
 */
#include "runtime/server_int.h"

#include "core/ascii.h"
#include "core/mem.h"
#include "maild/error.h"
#include "proto/received.h"
#include "queue/dsn.h"
#include "queue/window.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

delivery *maild__delivery_new(maild_server *srv) {
  delivery *d = maild__calloc(&srv->mem, 1, sizeof(*d));

  if (d == NULL)
    return NULL;
  d->srv = srv;
  d->rand_state = maild__server_random(srv) | 1u;
  maild__buf_init(&d->body, SIZE_MAX / 2);
  return d;
}

void maild__delivery_free(delivery *d) {
  maild_mem *m;
  size_t i;

  if (d == NULL)
    return;
  m = &d->srv->mem;
  maild__spool_abort(d->writer);
  for (i = 0; i < d->nrcpts; i++) {
    maild__free(m, d->rcpts[i].addr);
    maild__free(m, d->rcpts[i].orig);
    maild__free(m, d->rcpts[i].domain);
    maild__free(m, d->rcpts[i].local);
    maild__free(m, d->rcpts[i].store_id);
  }
  maild__free(m, d->rcpts);
  maild__buf_free(&d->body, m);
  maild__buf_free(&d->report, m);
  maild__free(m, d->sender);
  maild__free(m, d->envid);
  maild__free(m, d->helo);
  maild__free(m, d->peer);
  maild__free(m, d->tls_info);
  maild__free(m, d);
}

int maild__delivery_add_rcpt(delivery *d, const char *orig, const char *domain,
                             size_t dlen, const char *local, size_t llen) {
  maild_mem *m = &d->srv->mem;
  delivery_rcpt *r;
  size_t i;

  /* One copy per mailbox, however many recipients lead to it (the same
     address twice, or an alias and one of its targets), as Postfix does. */
  for (i = 0; i < d->nrcpts; i++) {
    if (maild__ascii_caseeq(domain, dlen, d->rcpts[i].domain) &&
        maild__ascii_caseeq(local, llen, d->rcpts[i].local))
      return 0;
  }
  r = maild__realloc(m, d->rcpts, (d->nrcpts + 1) * sizeof(*r));
  if (r == NULL)
    return MAILD_ERR_NOMEM;
  d->rcpts = r;
  r = &d->rcpts[d->nrcpts];
  memset(r, 0, sizeof(*r));
  r->addr = maild__malloc(m, llen + dlen + 2);
  r->orig = maild__strndup(m, orig, strlen(orig));
  r->domain = maild__strndup(m, domain, dlen);
  r->local = maild__strndup(m, local, llen);
  if (r->addr == NULL || r->orig == NULL || r->domain == NULL ||
      r->local == NULL) {
    maild__free(m, r->addr);
    maild__free(m, r->orig);
    maild__free(m, r->domain);
    maild__free(m, r->local);
    return MAILD_ERR_NOMEM;
  }
  for (i = 0; i < dlen; i++) {
    if (r->domain[i] >= 'A' && r->domain[i] <= 'Z')
      r->domain[i] = (char)(r->domain[i] + 32);
  }
  memcpy(r->addr, local, llen);
  r->addr[llen] = '@';
  memcpy(r->addr + llen + 1, r->domain, dlen + 1);
  if (strcmp(r->orig, r->addr) == 0)
    r->orig[0] = '\0';
  d->nrcpts++;
  return 0;
}

/* ---- Worker-thread side ---- */

static uint32_t next_random(void *ud) {
  delivery *d = ud;
  uint32_t x = d->rand_state;

  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  d->rand_state = x;
  return x;
}

static void refuse(delivery *d, int code, const char *enh, const char *text) {
  d->result = MAILD_ERR_IO;
  d->reply_code = code;
  d->reply_enh = enh;
  d->reply_text = text;
}

static void refuse_io(delivery *d, int sys_errno) {
  d->sys_errno = sys_errno;
  if (sys_errno == ENOSPC || sys_errno == EDQUOT)
    refuse(d, 452, "4.3.1", "Error: insufficient system storage");
  else
    refuse(d, 451, "4.3.0", "Error: local error in processing");
}

/* Creates the spool file and writes the trace headers (RFC 5321 4.4). */
static int open_writer(delivery *d) {
  maild_server *srv = d->srv;
  maild_received_info ri;
  char head[4096];
  size_t rp, n;
  int err;

  err = maild__spool_begin(srv->spool, d->arrival_usec, next_random, d,
                           &d->writer);
  if (err != 0)
    return err;
  rp = (size_t)snprintf(head, sizeof(head), "Return-Path: <%s>\r\n", d->sender);
  if (rp >= sizeof(head))
    return MAILD_ERR_TOO_LONG;
  memset(&ri, 0, sizeof(ri));
  ri.helo = d->helo;
  ri.client_addr = d->peer;
  ri.hostname = srv->hostname;
  ri.id = maild__spool_writer_id(d->writer);
  ri.for_rcpt = d->nrcpts == 1 ? d->rcpts[0].addr : NULL;
  ri.tls_info = d->tls_info;
  ri.time = d->arrival_usec / 1000000;
  ri.esmtp = d->esmtp;
  ri.tls = d->tls;
  ri.auth = d->auth;
  ri.smtputf8 = d->smtputf8;
  n = maild__received_format(head + rp, sizeof(head) - rp, &ri);
  if (n >= sizeof(head) - rp)
    return MAILD_ERR_TOO_LONG;
  d->return_path_len = (uint32_t)rp;
  d->msg_size = rp + n;
  return maild__spool_write(d->writer, head, rp + n);
}

/* Moves the buffered body into the spool file. */
static int write_body(delivery *d) {
  int err = 0;

  if (d->writer == NULL)
    err = open_writer(d);
  if (err == 0)
    err = maild__spool_write(d->writer, maild__buf_peek(&d->body),
                             maild__buf_used(&d->body));
  d->msg_size += maild__buf_used(&d->body);
  maild__buf_clear(&d->body);
  return err;
}

/* Writes the envelope beside the content in tmp/; the group commit
   (commit_work) makes both durable and moves them into queue/. */
static int stage(delivery *d) {
  maild_mem *m = &d->srv->mem;
  maild_envelope env;
  maild_envelope_rcpt *er;
  size_t i;
  int err;

  er = maild__calloc(m, d->nrcpts, sizeof(*er));
  if (er == NULL)
    return MAILD_ERR_NOMEM;
  for (i = 0; i < d->nrcpts; i++) {
    er[i].addr = d->rcpts[i].addr;
    er[i].orcpt_type = d->rcpts[i].orig[0] ? "rfc822" : "";
    er[i].orcpt = d->rcpts[i].orig;
    er[i].notify = d->rcpts[i].notify;
  }
  memset(&env, 0, sizeof(env));
  env.sender = d->sender;
  env.envid = d->envid;
  env.ret = d->ret;
  env.body = d->body_type;
  env.client_addr = d->peer;
  env.client_helo = d->helo;
  env.smtputf8 = d->smtputf8;
  env.msg_size = d->msg_size;
  env.return_path_len = d->return_path_len;
  env.nrcpt = d->nrcpts;
  env.rcpt = er;
  err = maild__spool_stage(d->writer, &env);
  maild__free(m, er);
  return err;
}

void maild__delivery_set_notify(delivery *d, size_t from, unsigned notify) {
  size_t i;

  if (d->nrcpts - from > 1 && d->rcpts[from].orig[0] != '\0' &&
      maild__notify_success(notify)) {
    d->rcpts[from].expanded = 1;
    notify &= ~(unsigned)MAILD_NOTIFY_SUCCESS;
    if (notify == 0)
      notify = MAILD_NOTIFY_NEVER; /* SUCCESS alone: nothing more */
  }
  for (i = from; i < d->nrcpts; i++)
    d->rcpts[i].notify = notify;
}

static void success_rcpt(maild_dsn_rcpt *r, const char *addr, const char *orcpt,
                         const char *action, const char *diag) {
  r->addr = addr;
  r->orcpt = orcpt;
  r->action = action;
  r->status = "2.0.0";
  r->remote_mta = "";
  r->diag = diag;
}

/* The NOTIFY=SUCCESS report at arrival: the recipients delivered into
   mailboxes now (`fresh`) and the aliases expanded. Built while the spool
   file is open; sent only if the message is accepted
   (maild__delivery_done). */
static void build_report(delivery *d, int fd, const uint8_t *fresh) {
  static const char diag[] = "250 2.0.0 Delivered to mailbox";
  static const char expanded[] = "250 2.0.0 Expanded by alias";
  maild_dsn_rcpt *dr;
  maild_report rep;
  size_t i, n = 0;

  if (d->sender == NULL || d->sender[0] == '\0')
    return;
  for (i = 0; i < d->nrcpts; i++)
    n += (size_t)(fresh[i] && maild__notify_success(d->rcpts[i].notify)) +
         (size_t)(d->rcpts[i].expanded != 0);
  if (n == 0)
    return; /* the usual case: no allocation */
  dr = maild__calloc(&d->srv->mem, n, sizeof(*dr));
  if (dr == NULL)
    return;
  for (i = n = 0; i < d->nrcpts; i++) {
    const delivery_rcpt *r = &d->rcpts[i];
    if (r->expanded)
      success_rcpt(&dr[n++], r->orig, "", "expanded", expanded);
    if (fresh[i] && maild__notify_success(r->notify))
      success_rcpt(&dr[n++], r->addr, r->orig, "delivered", diag);
  }
  memset(&rep, 0, sizeof(rep));
  rep.id = d->id;
  rep.sender = d->sender;
  rep.envid = d->envid;
  rep.arrival_usec = d->arrival_usec;
  rep.ret_full = d->ret == MAILD_RET_FULL;
  rep.fd = fd;
  rep.msg_size = d->msg_size;
  rep.return_path_len = d->return_path_len;
  rep.rcpts = dr;
  rep.nrcpts = n;
  maild__buf_free(&d->report, &d->srv->mem);
  (void)maild__report_build(d->srv, &rep, &d->report);
  maild__free(&d->srv->mem, dr);
}

/* Delivers to every local recipient; returns how many are done. The
   store's barrier is left to the caller (group commit). */
static size_t deliver_all(delivery *d) {
  maild_server *srv = d->srv;
  maild_store_message msg;
  maild_store_result res;
  char name[MAILD_SPOOL_NAME_SIZE];
  size_t i, done = 0;
  uint8_t *fresh;
  int fd;

  if (maild__spool_open_msg(srv->spool, d->id, &fd) != 0 ||
      maild__spool_msg_name(d->id, name) != 0) {
    for (i = 0; i < d->nrcpts; i++) {
      if (!d->rcpts[i].done) {
        d->rcpts[i].status = MAILD_ERR_IO;
        d->rcpts[i].sys_errno = errno;
      }
    }
    return 0;
  }
  memset(&msg, 0, sizeof(msg));
  msg.fd = fd;
  msg.size = d->msg_size;
  msg.flags = MAILD_STORE_NO_SYNC;
  msg.link_dirfd = maild__spool_queue_fd(srv->spool);
  msg.link_name = name;
  msg.queue_id = d->id;
  /* Which recipients this call delivers (for a success report); without
     it, there is no report. */
  fresh = maild__calloc(&srv->mem, d->nrcpts, 1);
  for (i = 0; i < d->nrcpts; i++) {
    delivery_rcpt *r = &d->rcpts[i];
    if (r->done) {
      done++;
      continue;
    }
    if (r->remote)
      continue; /* waits for outbound delivery */
    r->status =
        maild_store_deliver(srv->store, &msg, r->domain, strlen(r->domain),
                            r->local, strlen(r->local), &res);
    r->sys_errno = res.sys_errno;
    r->done = r->status == 0;
    if (r->done) /* kept in case the barrier fails */
      r->store_id = maild__strndup(&srv->mem, res.id, strlen(res.id));
    if (fresh != NULL)
      fresh[i] = (uint8_t)r->done;
    done += (size_t)r->done;
  }
  if (fresh != NULL)
    build_report(d, fd, fresh);
  maild__free(&srv->mem, fresh);
  close(fd);
  return done;
}

/* Nobody got the message: the client's answer says why. */
static void refuse_delivery(delivery *d) {
  size_t i;
  int temp = 0, quota = 0, unknown = 0;

  for (i = 0; i < d->nrcpts; i++) {
    int st = d->rcpts[i].status;
    quota |= st == MAILD_ERR_LIMIT;
    unknown |= st == MAILD_ERR_NOT_FOUND || st == MAILD_ERR_INVAL;
    temp |= st != MAILD_ERR_LIMIT && st != MAILD_ERR_NOT_FOUND &&
            st != MAILD_ERR_INVAL;
  }
  if (temp)
    refuse_io(d, d->rcpts[0].sys_errno);
  else if (quota && d->srv->quota_permanent)
    refuse(d, 552, "5.2.2", "Error: mailbox full");
  else if (quota)
    refuse(d, 452, "4.2.2", "Error: mailbox full");
  else if (unknown)
    refuse(d, 550, "5.1.1", "Error: mailbox unavailable");
}

/* Records the recipients' state so a retry skips those done; removes the
   entry once no recipient is pending (outbound may have finished its
   part meanwhile: the lock keeps the two from losing each other's
   updates). */
static void record_progress(delivery *d) {
  maild_server *srv = d->srv;
  maild_envelope *env;
  size_t i;
  int final = 1;

  uv_mutex_lock(&srv->env_lock);
  if (maild__spool_load(srv->spool, d->id, &env) == 0) {
    for (i = 0; i < env->nrcpt; i++) {
      if (i < d->nrcpts && d->rcpts[i].done)
        env->rcpt[i].state = MAILD_RCPT_DONE;
      if (env->rcpt[i].state == MAILD_RCPT_PENDING)
        final = 0;
    }
    if (final)
      maild__spool_remove(srv->spool, d->id);
    else
      maild__spool_update(srv->spool, env, 0);
    maild__spool_envelope_free(srv->spool, env);
  }
  uv_mutex_unlock(&srv->env_lock);
}

static size_t remote_count(const delivery *d) {
  size_t i, n = 0;

  for (i = 0; i < d->nrcpts; i++)
    n += (size_t)d->rcpts[i].remote;
  return n;
}

/* After the commit and the local deliveries: what is left to do. */
static void finish_attempt(delivery *d, size_t done) {
  size_t remote = remote_count(d);

  if (remote > 0) {
    /* Relay mail stays in the spool for the queue; the local recipients
       are recorded as done, and retried by the queue if they failed. */
    if (done > 0)
      record_progress(d);
    d->retry_later = done + remote < d->nrcpts;
    return;
  }
  if (done == d->nrcpts) {
    maild__spool_remove(d->srv->spool, d->id);
    d->retry_later = 0;
    return;
  }
  if (done == 0) {
    /* Un-commit: the client is told, and nothing is left half done. */
    maild__spool_remove(d->srv->spool, d->id);
    refuse_delivery(d);
    return;
  }
  if (done > 0)
    record_progress(d);
  d->retry_later = 1;
}

/* Per message, in parallel: everything but the barriers. */
static void run_work(uv_work_t *req) {
  delivery *d = req->data;
  int err;

  if (d->result != 0) {
    refuse_io(d, d->writer ? maild__spool_writer_errno(d->writer) : 0);
    return;
  }
  err = write_body(d);
  if (err == 0)
    err = stage(d);
  if (err != 0) {
    refuse_io(d, err == MAILD_ERR_IO ? errno : 0);
    return;
  }
  d->staged = 1;
}

/* Takes back the mailbox links of a batch whose barrier failed. */
static void withdraw_all(delivery *d) {
  size_t i;
  int e = errno;

  for (i = 0; i < d->nrcpts; i++) {
    delivery_rcpt *r = &d->rcpts[i];
    if (!r->done || r->store_id == NULL)
      continue;
    maild_store_withdraw(d->srv->store, r->domain, strlen(r->domain), r->local,
                         strlen(r->local), r->store_id);
    r->done = 0;
  }
  errno = e;
}

/*
 * Group commit, one batch at a time: one barrier makes every staged
 * message's content durable; then each is moved into queue/ and linked
 * into its mailboxes; a second barrier makes all those names durable.
 * Only then do the clients get their 250s. Two syncs serve the whole
 * batch instead of four fsyncs per message.
 */
static void commit_work(uv_work_t *req) {
  maild_server *srv = req->data;
  delivery *d;
  int err = maild__spool_sync(srv->spool), published = 0;

  for (d = srv->commit_batch; d != NULL; d = d->next) {
    if (err == 0 && maild__spool_publish(d->writer, d->id) == 0) {
      d->writer = NULL;
      d->done_count = deliver_all(d);
      published = 1;
      continue;
    }
    maild__spool_abort(d->writer); /* NULL after a failed publish */
    d->writer = NULL;
    d->id[0] = '\0';
    refuse_io(d, errno);
  }
  if (published &&
      (maild_store_sync(srv->store) != 0 || maild__spool_sync(srv->spool) != 0))
    err = MAILD_ERR_IO;
  for (d = srv->commit_batch; d != NULL; d = d->next) {
    if (d->id[0] == '\0')
      continue;
    if (err != 0) {
      /* Not known to be durable: take it all back, and the client is told
         to try again (nothing is left that its retry would duplicate). */
      withdraw_all(d);
      maild__spool_remove(srv->spool, d->id);
      refuse_io(d, errno);
      continue;
    }
    finish_attempt(d, d->done_count);
  }
}

static void flush_work(uv_work_t *req) {
  delivery *d = req->data;

  if (write_body(d) != 0)
    d->result = MAILD_ERR_IO;
}

/* ---- Loop-thread side ---- */

void maild__delivery_log(delivery *d) {
  maild_server *srv = d->srv;
  uv_timeval64_t tv;
  double delay;
  size_t i;

  uv_gettimeofday(&tv);
  delay = (double)(tv.tv_sec * 1000000 + tv.tv_usec - d->arrival_usec) / 1e6;
  for (i = 0; i < d->nrcpts; i++) {
    delivery_rcpt *r = &d->rcpts[i];
    const char *status = r->remote ? "queued (waiting for outbound delivery)"
                         : r->status == 0
                             ? "sent (delivered to mailbox)"
                             : (d->retry_later ? "deferred" : "refused");
    if (r->logged)
      continue; /* delivered in an earlier attempt */
    maild__log(srv, r->status == 0 ? MAILD_LOG_INFO : MAILD_LOG_WARNING,
               "%s: to=<%s>%s%s%s, relay=%s, delay=%.2f, status=%s%s%s", d->id,
               r->addr, r->orig[0] ? ", orig_to=<" : "", r->orig,
               r->orig[0] ? ">" : "", r->remote ? "none" : "local", delay,
               status, r->status != 0 && !r->remote ? " " : "",
               r->status != 0 && !r->remote ? maild_strerror(r->status) : "");
    r->logged = r->done || r->remote;
  }
}

static void kick_commit(maild_server *srv);

static void commit_done(uv_work_t *req, int status) {
  maild_server *srv = req->data;
  delivery *d = srv->commit_batch, *next;

  (void)status;
  srv->jobs--;
  srv->commit_batch = NULL;
  for (; d != NULL; d = next) {
    next = d->next;
    d->next = NULL;
    d->done(d, d->ud);
  }
  kick_commit(srv);
  maild__server_maybe_closed(srv);
}

/* Starts a batch with every message staged since the last one. */
static void kick_commit(maild_server *srv) {
  if (srv->commit_batch != NULL || srv->commit_queue == NULL)
    return;
  srv->commit_batch = srv->commit_queue;
  srv->commit_queue = NULL;
  srv->commit_tail = &srv->commit_queue;
  srv->commit_req.data = srv;
  srv->jobs++;
  if (uv_queue_work(srv->loop, &srv->commit_req, commit_work, commit_done) !=
      0) {
    /* Only for invalid arguments; answer rather than hang. */
    delivery *d;
    for (d = srv->commit_batch; d != NULL; d = d->next)
      refuse_io(d, 0);
    commit_done(&srv->commit_req, 0);
  }
}

static void job_done(uv_work_t *req, int status) {
  delivery *d = req->data;
  maild_server *srv = d->srv;

  (void)status;
  srv->jobs--;
  if (d->staged && d->result == 0) {
    d->staged = 0;
    d->next = NULL;
    *srv->commit_tail = d;
    srv->commit_tail = &d->next;
    kick_commit(srv);
  } else {
    d->done(d, d->ud);
  }
  maild__server_maybe_closed(srv);
}

static int queue_job(delivery *d, uv_work_cb work,
                     void (*done)(delivery *d, void *ud), void *ud) {
  d->req.data = d;
  d->done = done;
  d->ud = ud;
  if (uv_queue_work(d->srv->loop, &d->req, work, job_done) != 0)
    return MAILD_ERR_IO;
  d->srv->jobs++;
  return 0;
}

int maild__delivery_run(delivery *d, void (*done)(delivery *d, void *ud),
                        void *ud) {
  return queue_job(d, run_work, done, ud);
}

int maild__delivery_flush(delivery *d, void (*done)(delivery *d, void *ud),
                          void *ud) {
  return queue_job(d, flush_work, done, ud);
}

void maild__delivery_done(delivery *d) {
  maild_server *srv = d->srv;

  /* Committed with recipients still pending, in other domains or in
     mailboxes that failed: the queue takes them (once per message). */
  if (!d->outbound_queued && d->result == 0 && d->id[0] != '\0' &&
      (remote_count(d) > 0 || d->retry_later) && !srv->closing) {
    d->outbound_queued = 1;
    maild__queue_add(srv, d->id, d->arrival_usec, remote_count(d) == 0);
  }
  if (d->result == 0 && d->id[0] != '\0')
    maild__report_send(srv, d->id, d->sender, d->smtputf8, &d->report,
                       "success");
  maild__delivery_free(d);
}

/* ---- Rescan at start ---- */

typedef struct rescan {
  maild_server *srv;
  uv_work_t req;
  maild_due_pick found; /* the valid unheld messages due soonest */
  size_t valid, held, set_aside;
  maild_buf log; /* lines for the set-aside files, NUL-separated */
  int err;
} rescan;

static int on_found(maild_spool_scan_item *it, void *ud) {
  rescan *r = ud;
  char line[512];
  int n;

  if (it->kind == MAILD_SPOOL_VALID) {
    r->valid++;
    if (it->held)
      r->held++;
    else
      maild__due_pick_offer(&r->found, it->id, it->due_ms);
    return 0;
  }
  r->set_aside++;
  n = snprintf(line, sizeof(line), "spool: set aside %s (%s) as corrupt/%s",
               it->name, it->reason ? it->reason : "?",
               it->moved_to ? it->moved_to : "?");
  if (n > 0 && r->log.len < 64 * 1024)
    maild__buf_append(&r->log, &r->srv->mem, line, (size_t)n + 1);
  return 0;
}

static void rescan_work(uv_work_t *req) {
  rescan *r = req->data;

  r->err = maild__spool_scan(r->srv->spool, on_found, r);
}

static void rescan_done(uv_work_t *req, int status) {
  rescan *r = req->data;
  maild_server *srv = r->srv;
  size_t off = 0;

  (void)status;
  srv->jobs--;
  while (off < maild__buf_used(&r->log)) {
    const char *line = (const char *)maild__buf_peek(&r->log) + off;
    maild__log(srv, MAILD_LOG_WARNING, "%s", line);
    off += strlen(line) + 1;
  }
  if (r->err != 0)
    maild__log(srv, MAILD_LOG_ERROR, "spool: scan failed: %s",
               maild_strerror(r->err));
  maild__log(srv, MAILD_LOG_INFO, "spool: %zu message(s) found, %zu set aside",
             r->valid, r->set_aside);
  /* The queue takes those due soonest, up to its window; scans of the
     spool find the others when their time comes. */
  maild__queue_rescan_end(srv, &r->found, r->held);
  maild__buf_free(&r->log, &srv->mem);
  maild__free(&srv->mem, r);
  maild__server_maybe_closed(srv);
}

int maild__delivery_rescan(maild_server *srv) {
  rescan *r = maild__calloc(&srv->mem, 1, sizeof(*r));

  if (r == NULL)
    return MAILD_ERR_NOMEM;
  r->srv = srv;
  r->req.data = r;
  if (maild__due_pick_init(&r->found, srv->out_window, MAILD_DUE_SOONEST,
                           &srv->mem) != 0) {
    maild__free(&srv->mem, r);
    return MAILD_ERR_NOMEM;
  }
  maild__buf_init(&r->log, 128 * 1024);
  if (uv_queue_work(srv->loop, &r->req, rescan_work, rescan_done) != 0) {
    maild__due_pick_free(&r->found);
    maild__free(&srv->mem, r);
    return MAILD_ERR_IO;
  }
  srv->jobs++;
  maild__queue_rescan_begin(srv);
  return 0;
}
