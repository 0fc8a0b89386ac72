/*
 * The queue's window: which queued messages have a record in memory.
 *
 * Every message in the spool with a recipient still pending is queued, but
 * at most QUEUE_WINDOW of them have a record in memory (out_msg, a couple
 * of hundred octets), so a queue of millions never holds millions of
 * records. The others wait in the spool with the time of their next
 * attempt (the envelope's modification time, queue/spool.h), and memory
 * keeps only two facts about them: the soonest any of them may be due, and
 * whether held ones are among them.
 *
 * A record leaves memory when the window is full and a message due sooner
 * needs its place: held ones first, then those due furthest ahead; never
 * one in an attempt, nor one already due. Nothing is written when a record
 * leaves: a record's due time is never earlier than the one in the spool,
 * so a message never waits longer for having left.
 *
 * A scan brings them back. On the worker pool it lists the spool (one
 * stat(2) per message, no envelope read) and picks, of those not in memory
 * and not held, the ones due soonest, up to the window; on the loop they
 * fill the room and take the places of records due after them
 * (queue/window.h). A scan runs when the spool may hold a message due
 * before what memory holds: when a message leaves the queue (room), when
 * nothing in memory is due but something outside is, when an administrator
 * retries or releases, and once a minute of the queue's clock while
 * anything is outside (messages whose time came). Never two at once, and
 * after each a pause of four times what it took, so scanning a huge spool
 * keeps a worker busy a fifth of the time at most. The start-up rescan
 * hands over what it found the same way: a restart loads a window too.
 */
#include "runtime/queue_int.h"

#include "core/mem.h"
#include "maild/error.h"
#include "queue/window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCAN_PERIOD_MS  (60u * 1000u) /* queue clock, while any is outside */
#define SCAN_PAUSE_MIN  100u          /* loop ms between two scans, at least */
#define SCAN_PAUSE_COST 4u            /* ... and this many times the last */
#define LEAVE_SHARE     16u /* a full window frees 1/16 of it at a time */

/* ---- Records and their index ---- */

static size_t bucket(const maild_server *srv, const char *id) {
  uint32_t h = 2166136261u; /* FNV-1a */
  size_t i;

  for (i = 0; i < MAILD_SPOOL_ID_LEN; i++) {
    h ^= (uint8_t)id[i];
    h *= 16777619u;
  }
  return h & (srv->out_index_size - 1);
}

static void index_put(maild_server *srv, out_msg *m) {
  size_t b = bucket(srv, m->id);

  m->hnext = srv->out_index[b];
  srv->out_index[b] = m;
}

/* Doubles the index; when that fails the old one serves on. */
static int index_grow(maild_server *srv) {
  size_t size = srv->out_index_size ? srv->out_index_size * 2 : 64;
  out_msg **t = maild__calloc(&srv->mem, size, sizeof(*t)), *m;

  if (t == NULL)
    return MAILD_ERR_NOMEM;
  maild__free(&srv->mem, srv->out_index);
  srv->out_index = t;
  srv->out_index_size = size;
  for (m = srv->out_msgs; m != NULL; m = m->next)
    index_put(srv, m);
  return 0;
}

out_msg *maild__queue_find(const maild_server *srv, const char *id) {
  out_msg *m;

  if (srv->out_index_size == 0)
    return NULL;
  for (m = srv->out_index[bucket(srv, id)]; m != NULL; m = m->hnext)
    if (strcmp(m->id, id) == 0)
      return m;
  return NULL;
}

out_msg *maild__queue_record_new(maild_server *srv, const char *id,
                                 int64_t arrival_usec, uint64_t due,
                                 unsigned attempts) {
  out_msg *m;

  if (srv->out_queued >= srv->out_index_size && index_grow(srv) != 0 &&
      srv->out_index_size == 0)
    return NULL;
  m = maild__calloc(&srv->mem, 1, sizeof(*m));
  if (m == NULL)
    return NULL;
  m->srv = srv;
  snprintf(m->id, sizeof(m->id), "%s", id);
  m->arrival_usec = arrival_usec;
  m->fd = -1;
  m->due = due;
  m->attempts = attempts;
  m->next = srv->out_msgs;
  if (m->next != NULL)
    m->next->prev = m;
  srv->out_msgs = m;
  index_put(srv, m);
  srv->out_queued++;
  return m;
}

static void want_scan(maild_server *srv);

static int spilled(const maild_server *srv) {
  return srv->out_outside_due != UINT64_MAX;
}

void maild__queue_record_free(out_msg *m, int finished) {
  maild_server *srv = m->srv;
  int k;
  out_msg **p = &srv->out_index[bucket(srv, m->id)];

  while (*p != m)
    p = &(*p)->hnext;
  *p = m->hnext;
  if (m->prev != NULL)
    m->prev->next = m->next;
  else
    srv->out_msgs = m->next;
  if (m->next != NULL)
    m->next->prev = m->prev;
  srv->out_queued--;
  if (m->fd >= 0)
    close(m->fd);
  maild__spool_envelope_free(srv->spool, m->env);
  maild__free(&srv->mem, m->result);
  maild__free(&srv->mem, m->fail);
  for (k = 0; k < OUT_REPORTS; k++)
    maild__buf_free(&m->report[k], &srv->mem);
  maild__free(&srv->mem, m);
  if (finished && spilled(srv))
    want_scan(srv); /* room for one waiting in the spool */
}

void maild__queue_free(maild_server *srv) {
  while (srv->out_msgs != NULL)
    maild__queue_record_free(srv->out_msgs, 0);
  maild__free(&srv->mem, srv->out_index);
  srv->out_index = NULL;
  srv->out_index_size = 0;
}

void maild__queue_may_leave(maild_server *srv) {
  srv->out_may_leave = 1;
  if (spilled(srv) && srv->out_outside_due <= maild__queue_now(srv))
    want_scan(srv); /* one that is due may take its place */
}

/* ---- Messages outside memory ---- */

/* Plans the periodic scan while anything is outside, and says so in the
   log when that starts or ends. */
static void set_outside_due(maild_server *srv, uint64_t due, uint64_t now) {
  int was = spilled(srv);

  srv->out_outside_due = due;
  if (!spilled(srv)) {
    srv->out_scan_due = UINT64_MAX;
    if (was)
      maild__log(srv, MAILD_LOG_INFO,
                 "queue: every queued message is in memory again");
    return;
  }
  if (!was || srv->out_scan_due == UINT64_MAX)
    srv->out_scan_due = now + SCAN_PERIOD_MS;
  if (!was)
    maild__log(srv, MAILD_LOG_INFO,
               "queue: %zu messages in memory (queue-window %zu); more wait "
               "in the spool",
               srv->out_queued, srv->out_window);
  maild__queue_schedule(
      srv, srv->out_scan_due < due || due <= now ? srv->out_scan_due : due);
}

/* A message is outside memory from now on, due at `due` (UINT64_MAX:
   held). */
static void went_outside(maild_server *srv, uint64_t due) {
  if (due == UINT64_MAX) {
    srv->out_held_outside = srv->out_held_new = 1;
    return;
  }
  if (due < srv->out_outside_new)
    srv->out_outside_new = due;
  if (due < srv->out_outside_due)
    set_outside_due(srv, due, maild__queue_now(srv));
}

/* A record that may leave memory for one due at `due`, as a pick's key
   (UINT64_MAX first: held); 0 when it may not. */
static uint64_t leave_key(const out_msg *m, uint64_t now, uint64_t due) {
  if (m->busy)
    return 0;
  if (m->held)
    return UINT64_MAX;
  return m->due > now && m->due > due ? m->due : 0;
}

/* Leaves memory: the spool keeps the message and its due time. */
static void leave(out_msg *m) {
  maild_server *srv = m->srv;

  went_outside(srv, m->held ? UINT64_MAX : m->due);
  maild__queue_record_free(m, 0);
}

/* A full window makes room for a message due at `due`: a share of the
   records due furthest after it leave. Returns 1 if any did. */
static int make_room(maild_server *srv, uint64_t now, uint64_t due) {
  size_t share = srv->out_window / LEAVE_SHARE, n, i;
  const maild_due_entry *e;
  maild_due_pick p;
  out_msg *m;
  uint64_t key;

  if (!srv->out_may_leave ||
      maild__due_pick_init(&p, share > 0 ? share : 1, MAILD_DUE_LATEST,
                           &srv->mem) != 0)
    return 0;
  for (m = srv->out_msgs; m != NULL; m = m->next)
    if ((key = leave_key(m, now, due)) != 0)
      maild__due_pick_offer(&p, m->id, key);
  e = maild__due_pick_sort(&p, &n);
  if (n == 0)
    srv->out_may_leave = 0; /* until a record may leave again */
  for (i = 0; i < n; i++)
    leave(maild__queue_find(srv, e[i].id));
  maild__due_pick_free(&p);
  return n > 0;
}

/* The attempts a message read back from the spool has had, as its age says
   (queue/schedule.h). */
static unsigned attempts_by_age(const maild_server *srv, int64_t arrival_usec,
                                uint64_t due) {
  return maild__retry_attempts(
      &srv->retry_policy, arrival_usec > 0 ? (uint64_t)arrival_usec / 1000u : 0,
      due);
}

static void add_due(maild_server *srv, const char *id, int64_t arrival_usec,
                    uint64_t due, unsigned attempts) {
  uint64_t now = maild__queue_now(srv);
  out_msg *m;

  if (srv->closing)
    return; /* found again at the next start */
  m = maild__queue_find(srv, id);
  if (m != NULL) {
    if (!m->busy && due < m->due) {
      m->due = due;
      maild__queue_schedule(srv, due);
    }
    return;
  }
  if (srv->out_queued >= srv->out_window && !make_room(srv, now, due)) {
    went_outside(srv, due);
    return;
  }
  m = maild__queue_record_new(srv, id, arrival_usec, due, attempts);
  if (m == NULL) {
    maild__log(srv, MAILD_LOG_ERROR,
               "%s: out of memory; it waits in the spool for a scan", id);
    went_outside(srv, due);
    return;
  }
  maild__queue_schedule(srv, due);
}

void maild__queue_add(maild_server *srv, const char *id, int64_t arrival_usec,
                      int tried) {
  uint64_t now = maild__queue_now(srv);

  add_due(srv, id, arrival_usec,
          tried ? now + maild__retry_delay(&srv->retry_policy, 1) : now,
          tried ? 1 : 0);
}

/* ---- Scans ---- */

typedef struct queue_scan {
  maild_server *srv;
  uv_work_t req;
  char *mine; /* the ids in memory when it started, MAILD_SPOOL_ID_LEN
                 octets each (sorted on the worker) */
  size_t nmine;
  maild_due_pick pick; /* the unheld ones outside memory due soonest */
  size_t held;         /* held ones outside memory */
  uint64_t retry_at;   /* 0, or every due time after it becomes it */
  uint64_t started;    /* loop ms */
  int err;
} queue_scan;

static int id_cmp(const void *a, const void *b) {
  return memcmp(a, b, MAILD_SPOOL_ID_LEN);
}

static int scan_entry(const char *id, uint64_t due, int held, void *ud) {
  queue_scan *sc = ud;

  if (sc->nmine > 0 &&
      bsearch(id, sc->mine, sc->nmine, MAILD_SPOOL_ID_LEN, id_cmp) != NULL)
    return 0;
  if (held) {
    sc->held++;
    return 0;
  }
  if (sc->retry_at != 0 && due > sc->retry_at &&
      maild__spool_set_due(sc->srv->spool, id, sc->retry_at) == 0)
    due = sc->retry_at;
  maild__due_pick_offer(&sc->pick, id, due);
  return 0;
}

static void scan_work(uv_work_t *req) {
  queue_scan *sc = req->data;

  if (sc->nmine > 1)
    qsort(sc->mine, sc->nmine, MAILD_SPOOL_ID_LEN, id_cmp);
  sc->err = maild__spool_list(sc->srv->spool, scan_entry, sc);
}

/* The earliest arrival among the messages being committed now: those are
   in the spool, but not handed to the queue yet (it happens when their
   commit is over), so a scan must not take them. */
static int64_t committing_since(const maild_server *srv) {
  int64_t t = INT64_MAX;
  delivery *d;

  for (d = srv->commit_batch; d != NULL; d = d->next)
    if (d->arrival_usec < t)
      t = d->arrival_usec;
  return t;
}

/* Records that may leave for `nfound` finds, latest first: into `p`. */
static void pick_leavers(maild_server *srv, maild_due_pick *p, size_t nfound,
                         uint64_t now) {
  out_msg *m;
  uint64_t key;

  if (maild__due_pick_init(p, nfound, MAILD_DUE_LATEST, &srv->mem) != 0)
    return; /* then nothing leaves */
  for (m = srv->out_msgs; m != NULL; m = m->next)
    if ((key = leave_key(m, now, 0)) != 0)
      maild__due_pick_offer(p, m->id, key);
}

/*
 * Takes what a scan found (`found`: a sorted pick of the unheld messages
 * outside memory due soonest; `held`: how many held ones are outside) into
 * the window, and works out what stays outside. Returns the soonest any
 * unheld message left outside may be due (UINT64_MAX: none).
 */
static uint64_t take(maild_server *srv, maild_due_pick *found, size_t held) {
  uint64_t now = maild__queue_now(srv), outside = UINT64_MAX;
  uint64_t *fdue = NULL, *ldue = NULL;
  const maild_due_entry *e, *l = NULL, **f = NULL;
  int64_t since = committing_since(srv);
  size_t n, nf = 0, nl = 0, i, in, out = 0;
  size_t room =
      srv->out_window > srv->out_queued ? srv->out_window - srv->out_queued : 0;
  maild_due_pick lp;

  memset(&lp, 0, sizeof(lp));
  e = maild__due_pick_sort(found, &n);
  if (found->passed > 0) /* not kept: due no sooner than the last kept */
    outside = n > 0 ? e[n - 1].due : now;
  srv->out_held_outside = held > 0;
  f = maild__calloc(&srv->mem, n + 1, sizeof(*f));
  fdue = maild__calloc(&srv->mem, n + 1, sizeof(*fdue));
  if (f == NULL || fdue == NULL) {
    if (n > 0 && e[0].due < outside)
      outside = e[0].due;
    goto out;
  }
  for (i = 0; i < n; i++) {
    if (maild__queue_find(srv, e[i].id) != NULL)
      continue; /* came in meanwhile */
    if (maild__spool_id_arrival(e[i].id) >= since) {
      if (e[i].due < outside)
        outside = e[i].due;
      continue;
    }
    f[nf] = &e[i];
    fdue[nf++] = e[i].due;
  }
  if (nf > room) {
    pick_leavers(srv, &lp, nf - room, now);
    l = maild__due_pick_sort(&lp, &nl);
    ldue = maild__calloc(&srv->mem, nl + 1, sizeof(*ldue));
    if (ldue == NULL)
      nl = 0;
    for (i = 0; i < nl; i++)
      ldue[i] = l[i].due;
  }
  in = maild__window_trade(fdue, nf, ldue, nl, room, &out);
  for (i = 0; i < out; i++) {
    out_msg *m = maild__queue_find(srv, l[i].id);
    if (m->held)
      srv->out_held_outside = 1;
    else if (m->due < outside)
      outside = m->due;
    maild__queue_record_free(m, 0);
  }
  for (i = 0; i < in; i++) {
    int64_t arrival = maild__spool_id_arrival(f[i]->id);
    out_msg *m =
        maild__queue_record_new(srv, f[i]->id, arrival, f[i]->due,
                                attempts_by_age(srv, arrival, f[i]->due));
    if (m == NULL) {
      in = i; /* the rest stays outside */
      break;
    }
    maild__queue_schedule(srv, m->due);
  }
  if (in < nf && fdue[in] < outside)
    outside = fdue[in];
out:
  maild__free(&srv->mem, f);
  maild__free(&srv->mem, fdue);
  maild__free(&srv->mem, ldue);
  maild__due_pick_free(&lp);
  maild__due_pick_free(found);
  return outside;
}

/* A scan (or the rescan) is over: what it found comes in, and what left
   memory meanwhile stays counted outside. */
static void scanned(maild_server *srv, maild_due_pick *found, size_t held) {
  uint64_t outside = take(srv, found, held), now = maild__queue_now(srv);
  out_msg *m;

  if (srv->out_retry_at != 0) {
    /* A retry of everything came during the scan: what it brought in is
       due then too; the next scan moves the others in the spool. */
    for (m = srv->out_msgs; m != NULL; m = m->next)
      if (!m->busy && m->due > srv->out_retry_at)
        m->due = srv->out_retry_at;
    maild__queue_schedule(srv, srv->out_retry_at);
  }
  srv->out_known = 1;
  if (srv->out_outside_new < outside)
    outside = srv->out_outside_new;
  if (srv->out_held_new)
    srv->out_held_outside = 1;
  srv->out_scanning = 0;
  srv->out_scan_due = UINT64_MAX; /* the next periodic one from now */
  set_outside_due(srv, outside, now);
  if (srv->out_retry_at != 0 && spilled(srv))
    srv->out_scan_wanted = 1;
  else
    srv->out_retry_at = 0;
}

static void scan_when_allowed(maild_server *srv);

static void scan_done(uv_work_t *req, int status) {
  queue_scan *sc = req->data;
  maild_server *srv = sc->srv;
  uint64_t now = uv_now(srv->loop);

  (void)status;
  srv->jobs--;
  srv->out_scan_cost = now - sc->started;
  srv->out_scan_ended = now > 0 ? now : 1;
  if (srv->closing) {
    srv->out_scanning = 0;
    maild__due_pick_free(&sc->pick);
  } else if (sc->err != 0) {
    maild__log(srv, MAILD_LOG_ERROR, "queue: cannot list the spool: %s",
               maild_strerror(sc->err));
    srv->out_scanning = 0;
    maild__due_pick_free(&sc->pick);
    if (sc->retry_at != 0 && srv->out_retry_at == 0)
      srv->out_retry_at = sc->retry_at; /* the periodic scan tries again */
  } else {
    scanned(srv, &sc->pick, sc->held);
  }
  maild__free(&srv->mem, sc->mine);
  maild__free(&srv->mem, sc);
  scan_when_allowed(srv);
  maild__server_maybe_closed(srv);
}

static void scan_start(maild_server *srv) {
  queue_scan *sc = maild__calloc(&srv->mem, 1, sizeof(*sc));
  out_msg *m;
  size_t i = 0;

  if (sc != NULL && srv->out_queued > 0)
    sc->mine = maild__malloc(&srv->mem, srv->out_queued * MAILD_SPOOL_ID_LEN);
  if (sc == NULL || (srv->out_queued > 0 && sc->mine == NULL) ||
      maild__due_pick_init(&sc->pick, srv->out_window, MAILD_DUE_SOONEST,
                           &srv->mem) != 0) {
    if (sc != NULL)
      maild__free(&srv->mem, sc->mine);
    maild__free(&srv->mem, sc);
    return; /* the periodic scan tries again */
  }
  for (m = srv->out_msgs; m != NULL; m = m->next)
    memcpy(sc->mine + MAILD_SPOOL_ID_LEN * i++, m->id, MAILD_SPOOL_ID_LEN);
  sc->nmine = i;
  sc->srv = srv;
  sc->started = uv_now(srv->loop);
  sc->retry_at = srv->out_retry_at;
  sc->req.data = sc;
  if (uv_queue_work(srv->loop, &sc->req, scan_work, scan_done) != 0) {
    maild__due_pick_free(&sc->pick);
    maild__free(&srv->mem, sc->mine);
    maild__free(&srv->mem, sc);
    return;
  }
  srv->jobs++;
  srv->out_retry_at = 0;
  srv->out_scan_wanted = 0;
  srv->out_scanning = 1;
  if (srv->out_scan_due != UINT64_MAX)
    srv->out_scan_due = maild__queue_now(srv) + SCAN_PERIOD_MS;
  srv->out_outside_new = UINT64_MAX;
  srv->out_held_new = 0;
}

static void on_scan_timer(uv_timer_t *t) {
  scan_when_allowed(t->data);
}

/* Starts the scan that is wanted, when none runs and the pause after the
   last one is over. */
static void scan_when_allowed(maild_server *srv) {
  uint64_t now, pause, ready;

  if (!srv->out_scan_wanted || srv->out_scanning || srv->closing ||
      !srv->started)
    return;
  now = uv_now(srv->loop);
  pause = SCAN_PAUSE_COST * srv->out_scan_cost;
  if (pause < SCAN_PAUSE_MIN)
    pause = SCAN_PAUSE_MIN;
  ready = srv->out_scan_ended + pause;
  if (srv->out_scan_ended != 0 && now < ready) {
    if (!uv_is_active((uv_handle_t *)&srv->scan_timer))
      uv_timer_start(&srv->scan_timer, on_scan_timer, ready - now, 0);
    return;
  }
  scan_start(srv);
}

static void want_scan(maild_server *srv) {
  srv->out_scan_wanted = 1;
  scan_when_allowed(srv);
}

uint64_t maild__queue_pass_done(maild_server *srv, uint64_t now,
                                uint64_t soonest, int may_leave) {
  uint64_t wake = UINT64_MAX;

  if (!spilled(srv))
    return wake;
  if (now >= srv->out_scan_due)
    want_scan(srv); /* the periodic look */
  else if (srv->out_outside_due <= now &&
           ((soonest > now && may_leave) || srv->out_queued < srv->out_window))
    want_scan(srv); /* something outside is due, and it may come in */
  if (srv->out_scan_due > now)
    wake = srv->out_scan_due;
  if (srv->out_outside_due > now && srv->out_outside_due < wake)
    wake = srv->out_outside_due;
  return wake;
}

void maild__queue_rescan_begin(maild_server *srv) {
  srv->out_scanning = 1;
  srv->out_outside_new = UINT64_MAX;
  srv->out_held_new = 0;
}

void maild__queue_rescan_end(maild_server *srv, maild_due_pick *found,
                             size_t held) {
  if (srv->closing) {
    srv->out_scanning = 0;
    maild__due_pick_free(found);
    return;
  }
  scanned(srv, found, held);
  scan_when_allowed(srv);
}

/* ---- Queue control (maildctl through the daemon) ---- */

/* Messages may be outside memory: whether one is queued cannot be known
   without the spool. */
static int any_outside(const maild_server *srv) {
  return !srv->out_known || spilled(srv) || srv->out_held_outside;
}

enum { CTL_HOLD, CTL_RELEASE, CTL_DELETE, CTL_RETRY };

typedef struct ctl_job {
  maild_server *srv;
  uv_work_t req;
  char id[MAILD_SPOOL_ID_LEN + 1];
  int op;
  uint64_t now; /* the queue's clock at the command */
  int found;    /* the message is in the spool */
  int held;     /* and held (retry) */
} ctl_job;

static int exists(maild_spool *sp, const char *id) {
  uint64_t due;

  return maild__spool_due(sp, id, &due) == 0;
}

static void ctl_work(uv_work_t *req) {
  ctl_job *c = req->data;
  maild_spool *sp = c->srv->spool;

  switch (c->op) {
  case CTL_DELETE:
    uv_mutex_lock(&c->srv->env_lock);
    maild__spool_remove(sp, c->id);
    uv_mutex_unlock(&c->srv->env_lock);
    maild__spool_hold(sp, c->id, 0);
    c->found = 1;
    break;
  case CTL_HOLD:
    c->found = exists(sp, c->id); /* no marker for a message not there */
    if (c->found)
      maild__spool_hold(sp, c->id, 1);
    break;
  case CTL_RELEASE: /* and due now */
    maild__spool_hold(sp, c->id, 0);
    c->found = maild__spool_set_due(sp, c->id, c->now) == 0;
    break;
  case CTL_RETRY: /* a message outside memory: due now */
    c->held = maild__spool_held(sp, c->id);
    c->found = c->held ? exists(sp, c->id)
                       : maild__spool_set_due(sp, c->id, c->now) == 0;
    break;
  }
}

static void ctl_done(uv_work_t *req, int status) {
  ctl_job *c = req->data;
  maild_server *srv = c->srv;
  out_msg *m = maild__queue_find(srv, c->id);
  static const char *const done[] = {"held", "released", "deleted", "retried"};

  (void)status;
  srv->jobs--;
  if (c->op == CTL_RELEASE && m != NULL && !m->busy) {
    m->held = 0;
    m->due = maild__queue_now(srv);
    maild__queue_schedule(srv, m->due);
  } else if (c->found && m == NULL && !srv->closing &&
             (c->op == CTL_RELEASE || (c->op == CTL_RETRY && !c->held))) {
    int64_t arrival = maild__spool_id_arrival(c->id);
    add_due(srv, c->id, arrival, c->now, attempts_by_age(srv, arrival, c->now));
    if (c->op == CTL_RELEASE && srv->out_held_outside)
      want_scan(srv); /* to know whether held ones are still outside */
  } else if (c->found && m == NULL && c->op == CTL_HOLD) {
    went_outside(srv, UINT64_MAX);
  }
  if (c->found && c->op == CTL_RETRY && c->held)
    maild__log(srv, MAILD_LOG_INFO, "%s: held, so not retried", c->id);
  else if (c->found)
    maild__log(srv, MAILD_LOG_INFO, "%s: %s by the administrator", c->id,
               done[c->op]);
  else
    maild__log(srv, MAILD_LOG_WARNING, "%s: not in the queue", c->id);
  maild__free(&srv->mem, c);
  maild__server_maybe_closed(srv);
}

static int ctl(maild_server *srv, const char *id, int op) {
  ctl_job *c;
  out_msg *m;

  if (srv == NULL || id == NULL || !maild__spool_id_valid(id))
    return MAILD_ERR_INVAL;
  if (srv->closing)
    return MAILD_ERR_STATE;
  m = maild__queue_find(srv, id);
  if (m == NULL && op != CTL_DELETE && !any_outside(srv))
    return MAILD_ERR_NOT_FOUND;
  c = maild__calloc(&srv->mem, 1, sizeof(*c));
  if (c == NULL)
    return MAILD_ERR_NOMEM;
  c->srv = srv;
  snprintf(c->id, sizeof(c->id), "%s", id);
  c->op = op;
  c->now = maild__queue_now(srv);
  c->req.data = c;
  if (uv_queue_work(srv->loop, &c->req, ctl_work, ctl_done) != 0) {
    maild__free(&srv->mem, c);
    return MAILD_ERR_IO;
  }
  srv->jobs++;
  if (m != NULL) {
    if (op == CTL_HOLD) {
      m->held = m->was_held = 1;
      maild__queue_may_leave(srv);
    } else if (op == CTL_DELETE && m->busy) {
      m->deleted = 1; /* the attempt finds it gone */
    } else if (op == CTL_DELETE) {
      maild__queue_record_free(m, 1);
    }
  }
  return 0;
}

int maild_server_queue_hold(maild_server *srv, const char *id) {
  return ctl(srv, id, CTL_HOLD);
}

int maild_server_queue_release(maild_server *srv, const char *id) {
  return ctl(srv, id, CTL_RELEASE);
}

int maild_server_queue_delete(maild_server *srv, const char *id) {
  return ctl(srv, id, CTL_DELETE);
}

int maild_server_queue_retry(maild_server *srv, const char *id) {
  uint64_t now;
  out_msg *m;

  if (srv == NULL)
    return MAILD_ERR_INVAL;
  now = maild__queue_now(srv);
  if (id != NULL) {
    m = maild__queue_find(srv, id);
    if (m == NULL)
      return ctl(srv, id, CTL_RETRY);
    if (!m->busy)
      m->due = now;
    maild__queue_schedule(srv, now);
    return 0;
  }
  for (m = srv->out_msgs; m != NULL; m = m->next)
    if (!m->busy)
      m->due = now;
  maild__queue_schedule(srv, now);
  if ((spilled(srv) || srv->out_scanning) && !srv->closing) {
    srv->out_retry_at = now; /* the next scan moves theirs in the spool */
    want_scan(srv);
  }
  return 0;
}

int maild_server_queue_stats(const maild_server *srv, maild_queue_stats *st) {
  if (srv == NULL || st == NULL)
    return MAILD_ERR_INVAL;
  st->in_memory = srv->out_queued;
  st->active = srv->out_active;
  st->window = srv->out_window;
  st->outside = any_outside(srv);
  return 0;
}
