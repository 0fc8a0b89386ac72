/*
 * The server runtime: listeners, connection caps, logging and graceful
 * shutdown. A connection over the total or per-address cap is answered
 * "421 4.7.0" and closed before any session exists (TESTPLAN L2); every
 * other connection gets an SMTP session (smtp_session.c).
 */
#include "runtime/server_int.h"

#include "core/mem.h"
#include "maild/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void maild__log(maild_server *srv, maild_log_level level, const char *fmt,
                ...) {
  char line[2048];
  va_list ap;

  if (srv->cb.on_log == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  srv->cb.on_log(srv, level, line, srv->user_data);
}

/* Queue-id randomness (uniqueness, not secrecy): xorshift32. */
uint32_t maild__server_random(maild_server *srv) {
  uint32_t x = srv->rng;

  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  srv->rng = x;
  return x;
}

/* A copy of `opt` (NULL: defaults) with one numeric option changed. */
static int clone_options(maild_server *srv, const maild_options *opt,
                         maild_options **out, maild_option key,
                         uint64_t value) {
  int err = maild_options_new(out, &srv->mem);
  int i;

  if (err != 0)
    return err;
  for (i = 0; i < MAILD_OPT__COUNT; i++) {
    const char *s = maild_options_get_string(opt, (maild_option)i);
    if (s != NULL)
      err = maild_options_set_string(*out, (maild_option)i, s);
    else
      err = maild_options_set_uint(
          *out, (maild_option)i, maild_options_get_uint(opt, (maild_option)i));
    if (err != 0 && err != MAILD_ERR_INVAL)
      return err;
  }
  /* Sessions greet at once: the runtime accepted the connection. */
  err = maild_options_set_uint(*out, MAILD_OPT_DEFER_GREETING, 0);
  return err != 0 ? err : maild_options_set_uint(*out, key, value);
}

static int copy_options(maild_server *srv, const maild_options *opt) {
  const char *host = maild_options_get_string(opt, MAILD_OPT_HOSTNAME);
  int err = clone_options(srv, opt, &srv->opt, MAILD_OPT_STARTTLS, 0);

  if (err == 0)
    err = clone_options(srv, opt, &srv->opt_starttls, MAILD_OPT_STARTTLS, 1);
  if (err == 0)
    err = clone_options(srv, opt, &srv->opt_implicit, MAILD_OPT_TLS_ACTIVE, 1);
  if (err != 0)
    return err;
  if (host == NULL)
    host = "localhost";
  srv->hostname = maild__strndup(&srv->mem, host, strlen(host));
  if (srv->hostname == NULL)
    return MAILD_ERR_NOMEM;
#define U(name) maild_options_get_uint(opt, MAILD_OPT_##name)
  srv->timeout_command = U(TIMEOUT_COMMAND);
  srv->timeout_data = U(TIMEOUT_DATA);
  srv->timeout_shutdown = U(TIMEOUT_SHUTDOWN);
  srv->timeout_tls = U(TIMEOUT_TLS);
  srv->max_conn = U(MAX_CONNECTIONS);
  srv->max_conn_ip = U(MAX_CONNECTIONS_PER_IP);
  srv->body_memory = U(BODY_MEMORY);
  srv->quota_permanent = U(QUOTA_PERMANENT) != 0;
  srv->any_sender = U(ANY_SENDER) != 0;
  srv->spool_min_free = U(SPOOL_MIN_FREE);
#undef U
  return 0;
}

int maild_server_new(maild_server **out, uv_loop_t *loop,
                     const maild_server_callbacks *cb, void *user_data,
                     const maild_options *opt, const maild_mem *mem) {
  maild_mem m;
  maild_server *srv;
  int err;

  if (out == NULL || loop == NULL)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  srv = maild__calloc(&m, 1, sizeof(*srv));
  if (srv == NULL)
    return MAILD_ERR_NOMEM;
  srv->mem = m;
  srv->loop = loop;
  if (cb != NULL)
    srv->cb = *cb;
  srv->user_data = user_data;
  srv->rng = (uint32_t)uv_hrtime() ^ (uint32_t)(uintptr_t)srv ^ 0x9e3779b9u;
  if (srv->rng == 0)
    srv->rng = 1;
  err = copy_options(srv, opt);
  if (err != 0) {
    maild_options_del(srv->opt);
    maild_options_del(srv->opt_starttls);
    maild_options_del(srv->opt_implicit);
    maild__free(&m, srv->hostname);
    maild__free(&m, srv);
    return err;
  }
  srv->commit_tail = &srv->commit_queue;
  srv->scratch = maild__malloc(&m, sizeof(*srv->scratch));
  if (srv->scratch == NULL) {
    maild_options_del(srv->opt);
    maild_options_del(srv->opt_starttls);
    maild_options_del(srv->opt_implicit);
    maild__free(&m, srv->hostname);
    maild__free(&m, srv);
    return MAILD_ERR_NOMEM;
  }
  if (maild__outbound_init(srv, opt) != 0) {
    maild_options_del(srv->opt);
    maild_options_del(srv->opt_starttls);
    maild_options_del(srv->opt_implicit);
    maild__free(&m, srv->scratch);
    maild__free(&m, srv->hostname);
    maild__free(&m, srv);
    return MAILD_ERR_NOMEM;
  }
  uv_timer_init(loop, &srv->scan_timer);
  uv_timer_init(loop, &srv->shutdown_timer);
  srv->scan_timer.data = srv;
  srv->shutdown_timer.data = srv;
  srv->handles_open = 3; /* with outbound.c's timer */
  *out = srv;
  return 0;
}

int maild_server_set_spool(maild_server *srv, const char *dir) {
  maild_spool *sp;
  int err = maild__spool_open(&sp, dir, NULL, &srv->mem);

  if (err != 0)
    return err;
  maild__spool_close(srv->spool);
  srv->spool = sp;
  return 0;
}

void maild_server_set_store(maild_server *srv, maild_store *st) {
  srv->store = st;
}

void maild_server_set_tls(maild_server *srv, maild_tls_credentials *cred) {
  maild_tls_config *cfg =
      cred != NULL ? maild__tls_credentials_config(cred) : NULL;

  if (cfg != NULL)
    maild__tls_config_hold(cfg);
  if (srv->tls != NULL)
    maild__tls_config_release(srv->tls);
  srv->tls = cfg;
}

void maild_server_set_users(maild_server *srv, const maild_users *users) {
  srv->users = users;
}

void maild_server_set_trusted(maild_server *srv,
                              const maild_cidr_set *networks) {
  srv->trusted = networks;
}

void maild_server_set_directory(maild_server *srv, const maild_directory *dir) {
  srv->directory = dir;
}

size_t maild_server_sessions(const maild_server *srv) {
  return srv->nsessions;
}

/* ---- Connection caps (TESTPLAN L2) ---- */

static ip_count *ip_find(maild_server *srv, const char *addr) {
  ip_count *c;

  for (c = srv->ips; c != NULL; c = c->next) {
    if (strcmp(c->addr, addr) == 0)
      return c;
  }
  return NULL;
}

static int ip_take(maild_server *srv, const char *addr) {
  ip_count *c = ip_find(srv, addr);

  if (c == NULL) {
    c = maild__calloc(&srv->mem, 1, sizeof(*c));
    if (c == NULL)
      return MAILD_ERR_NOMEM;
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->next = srv->ips;
    srv->ips = c;
  }
  c->n++;
  return 0;
}

static void ip_release(maild_server *srv, const char *addr) {
  ip_count **pp, *c;

  for (pp = &srv->ips; (c = *pp) != NULL; pp = &c->next) {
    if (strcmp(c->addr, addr) != 0)
      continue;
    if (--c->n == 0) {
      *pp = c->next;
      maild__free(&srv->mem, c);
    }
    return;
  }
}

void maild__server_release_ip(maild_server *srv, const char *peer) {
  ip_release(srv, peer);
}

void maild__server_session_gone(maild_server *srv, smtp_session *s) {
  (void)s;
  srv->nsessions--;
  maild__server_maybe_closed(srv);
}

static void on_refused_close(maild_conn *c, void *ud) {
  (void)c;
  (void)ud;
}

static void on_refused_eof(maild_conn *c, int err, void *ud) {
  (void)err;
  (void)ud;
  maild__conn_close(c);
}

/* Ports where the client speaks TLS first (RFC 8314). */
static int implicit_tls(maild_service service) {
  return service == MAILD_SERVICE_SMTPS || service == MAILD_SERVICE_POP3S;
}

const maild_options *maild__server_options(const maild_server *srv,
                                           maild_service service) {
  if (implicit_tls(service))
    return srv->opt_implicit;
  return srv->tls != NULL ? srv->opt_starttls : srv->opt;
}

/* A refused connection: one 421 line, then close. On an implicit-TLS
   port the client expects a handshake, and plaintext would only confuse
   it, while answering over TLS would cost a handshake the server has no
   room for: it is closed without a word. */
static void refuse(maild_server *srv, maild_conn *c, maild_service service,
                   const char *why) {
  char line[512];
  int n = snprintf(line, sizeof(line), "421 4.7.0 %s Error: %s\r\n",
                   srv->hostname, why);

  maild__log(srv, MAILD_LOG_WARNING, "connect from [%s] refused: %s",
             maild__conn_peer(c), why);
  if (implicit_tls(service) ||
      maild__conn_write(c, (const uint8_t *)line, (size_t)n) != 0)
    maild__conn_close(c);
  else
    maild__conn_close_after_flush(c);
}

static int start_session(maild_server *srv, maild_conn *c, const char *peer,
                         maild_service service) {
  if (service == MAILD_SERVICE_POP3 || service == MAILD_SERVICE_POP3S)
    return maild__pop3_session_start(srv, c, peer, service);
  return maild__smtp_session_start(srv, c, peer, service);
}

static void on_connection(maild_listener *l, void *ud) {
  listener_slot *slot = ud;
  maild_server *srv = slot->srv;
  static const maild_conn_cb refused_cb = {
      NULL, on_refused_eof, NULL, NULL, on_refused_close, NULL, NULL};
  maild_conn *c;
  const char *peer;
  ip_count *ipc;

  if (maild__conn_new(&c, srv->loop, &refused_cb, NULL, srv->scratch,
                      &srv->mem) != 0)
    return;
  if (uv_accept(maild__listener_stream(l), maild__conn_stream(c)) != 0 ||
      maild__conn_start(c) != 0) {
    maild__conn_close(c);
    return;
  }
  peer = maild__conn_peer(c);
  ipc = ip_find(srv, peer);
  if (srv->closing)
    refuse(srv, c, slot->service, "server shutting down");
  else if (srv->nsessions >= srv->max_conn)
    refuse(srv, c, slot->service, "too many connections");
  else if (ipc != NULL && ipc->n >= srv->max_conn_ip)
    refuse(srv, c, slot->service, "too many connections from your address");
  else if (implicit_tls(slot->service) && srv->tls == NULL)
    maild__conn_close(c); /* no certificate: no TLS to speak */
  else if (ip_take(srv, peer) != 0)
    refuse(srv, c, slot->service, "insufficient resources");
  else if (start_session(srv, c, peer, slot->service) != 0) {
    ip_release(srv, peer);
    refuse(srv, c, slot->service, "insufficient resources");
  } else
    srv->nsessions++;
}

int maild_server_listen(maild_server *srv, maild_service service,
                        const char *addr, int port, int *bound_port) {
  listener_slot *slot;
  int err;

  if (srv == NULL || addr == NULL || srv->closing)
    return MAILD_ERR_INVAL;
  if (service < MAILD_SERVICE_SMTP || service > MAILD_SERVICE_POP3S)
    return MAILD_ERR_INVAL;
  if (srv->nlisteners == MAX_LISTENERS)
    return MAILD_ERR_LIMIT;
  slot = &srv->listeners[srv->nlisteners];
  slot->srv = srv;
  slot->service = service;
  err = maild__listener_new(&slot->l, srv->loop, addr, port, on_connection,
                            slot, &srv->mem);
  if (err != 0)
    return err;
  srv->nlisteners++;
  if (bound_port != NULL)
    *bound_port = maild__listener_port(slot->l);
  maild__log(srv, MAILD_LOG_INFO, "listening on %s%s%s:%d",
             strchr(addr, ':') ? "[" : "", addr, strchr(addr, ':') ? "]" : "",
             maild__listener_port(slot->l));
  return 0;
}

const char *maild__server_tls_failure(maild_conn *c, int err) {
  const char *why = maild__conn_tls_error(c);

  return why != NULL && why[0] != '\0' ? why
         : err == MAILD_ERR_CLOSED     ? "peer closed"
                                       : maild_strerror(err);
}

void maild__server_tls_log(maild_server *srv, const char *peer,
                           const maild_conn *c) {
  const char *info = maild__conn_tls_info(c);

  maild__log(srv, MAILD_LOG_DEBUG, "TLS from [%s]: %s%s", peer,
             info != NULL ? info : "TLS",
             maild__conn_tls_resumed(c) ? " (resumed)" : "");
}

/* ---- Spool space (TESTPLAN D4) ---- */

#define SPACE_MAX_AGE_MS 1000u

static void space_work(uv_work_t *req) {
  maild_server *srv = req->data;

  srv->space_rc = maild__spool_space(srv->spool, &srv->space_new);
}

static void space_done(uv_work_t *req, int status) {
  maild_server *srv = req->data;

  srv->space_busy = 0;
  srv->jobs--;
  srv->space_checked = uv_now(srv->loop);
  if (status == 0 && srv->space_rc == 0) {
    srv->space_avail = srv->space_new;
    srv->space_known = 1;
  }
  maild__server_maybe_closed(srv);
}

/* fstatvfs(2) can block (a network file system): on the worker pool. */
static void space_refresh(maild_server *srv) {
  if (srv->space_busy || srv->closing || srv->spool == NULL ||
      (srv->space_checked != 0 &&
       uv_now(srv->loop) - srv->space_checked < SPACE_MAX_AGE_MS))
    return;
  srv->space_req.data = srv;
  if (uv_queue_work(srv->loop, &srv->space_req, space_work, space_done) != 0)
    return;
  srv->space_busy = 1;
  srv->jobs++;
}

int maild__server_spool_room(maild_server *srv, uint64_t declared) {
  space_refresh(srv);
  return !srv->space_known ||
         maild__spool_room(srv->space_avail, srv->spool_min_free, declared);
}

int maild_server_start(maild_server *srv) {
  if (srv == NULL || srv->spool == NULL || srv->store == NULL)
    return MAILD_ERR_STATE;
  if (srv->started)
    return 0;
  srv->started = 1;
  /* Opportunistic STARTTLS for outbound mail (RFC 7435): no verification,
     so no CA file to read; a failure only means plaintext. */
  if (srv->tls_client == NULL &&
      maild__tls_config_client_new(&srv->tls_client, NULL, 0, &srv->mem, NULL,
                                   0) != 0)
    srv->tls_client = NULL;
  space_refresh(srv);
  return maild__delivery_rescan(srv);
}

/* ---- Shutdown ---- */

static void on_handle_closed(uv_handle_t *h) {
  maild_server *srv = h->data;
  ip_count *c;

  if (--srv->handles_open > 0)
    return;
  while ((c = srv->ips) != NULL) {
    srv->ips = c->next;
    maild__free(&srv->mem, c);
  }
  maild__outbound_free(srv);
  maild__spool_close(srv->spool);
  if (srv->tls != NULL)
    maild__tls_config_release(srv->tls);
  maild_options_del(srv->opt);
  maild_options_del(srv->opt_starttls);
  maild_options_del(srv->opt_implicit);
  maild__free(&srv->mem, srv->hostname);
  maild__free(&srv->mem, srv->scratch);
  if (srv->close_cb != NULL)
    srv->close_cb(srv, srv->user_data);
  maild__free(&srv->mem, srv);
}

/* Frees the server once no session and no job is left. */
void maild__server_maybe_closed(maild_server *srv) {
  if (!srv->closing || srv->nsessions > 0 || srv->jobs > 0 ||
      srv->commit_queue != NULL || srv->commit_batch != NULL ||
      !maild__outbound_idle(srv) || srv->handles_open != 3)
    return;
  uv_timer_stop(&srv->scan_timer);
  uv_timer_stop(&srv->shutdown_timer);
  uv_close((uv_handle_t *)&srv->scan_timer, on_handle_closed);
  uv_close((uv_handle_t *)&srv->shutdown_timer, on_handle_closed);
  uv_close((uv_handle_t *)&srv->out_timer, on_handle_closed);
}

/* Ends every session; `force` also ends those in a transaction. */
static void shutdown_sessions(maild_server *srv, int force) {
  smtp_session *s = srv->sessions, *next;
  pop3_session *p = srv->pop3_sessions, *pnext;

  while (s != NULL) {
    next = maild__smtp_session_next(s);
    maild__smtp_session_shutdown(s, force);
    s = next;
  }
  /* A POP3 session changes nothing until QUIT: it can always end now. */
  while (p != NULL) {
    pnext = maild__pop3_session_next(p);
    maild__pop3_session_shutdown(p);
    p = pnext;
  }
}

static void on_shutdown_timeout(uv_timer_t *t) {
  shutdown_sessions(t->data, 1);
}

void maild_server_close(maild_server *srv,
                        void (*close_cb)(maild_server *srv, void *ud)) {
  size_t i;

  if (srv == NULL || srv->closing)
    return;
  srv->closing = 1;
  srv->close_cb = close_cb;
  for (i = 0; i < srv->nlisteners; i++)
    maild__listener_close(srv->listeners[i].l);
  srv->nlisteners = 0;
  maild__outbound_shutdown(srv);
  if (srv->nsessions > 0) {
    shutdown_sessions(srv, 0);
    uv_timer_start(&srv->shutdown_timer, on_shutdown_timeout,
                   srv->timeout_shutdown, 0);
  }
  maild__server_maybe_closed(srv);
}
