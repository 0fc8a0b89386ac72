/*
 * maild: the mail server daemon. A thin program over libmaild: it reads
 * the configuration, prepares the data directory, builds the server with
 * a Maildir store and the site's users and aliases, drops root, and runs
 * the loop until SIGTERM. SIGHUP reloads users, domains and aliases (a
 * configuration that does not load keeps the running one). maild never
 * runs a shell or any other program.
 *
 *   maild [-d] [-n] [-f FILE]
 *     -f FILE   configuration (default: built-in defaults)
 *     -n        check the configuration and exit
 *     -d        stay in the foreground, log to stderr
 */
#include "config.h"
#include "control.h"
#include "privs.h"
#include "site.h"

#include "maild/error.h"
#include "maild/resolver.h"
#include "maild/server.h"
#include "maild/store.h"
#include "maild/tls.h"
#include "maild/cidr.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define MAX_BOUND 16 /* listeners; the server takes no more */

typedef struct daemon_state {
  maild_config cfg;
  const char *cfg_path;
  int foreground;
  int use_syslog;
  uv_loop_t *loop;
  maild_options *opt;
  maild_store *store;
  maild_server *srv;
  maild_resolver *resolver;
  maild_control *control;
  uint64_t clock_start; /* MAILD_CLOCK_SCALE: real ms at start */
  uint64_t clock_scale;
  maild_site site;
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_work_t reload_req;
  int reloading;
  maild_config new_cfg;
  maild_site new_site;
  maild_tls_credentials *new_cred;
  maild_cidr_set *trusted, *new_trusted;
  int reload_rc;
  char reload_err[1024];
  char pidfile[4096];
  int ready_fd;
  int bound_port[MAX_BOUND];
} daemon_state;

/* ---- Logging ---- */

static void vlog_line(daemon_state *d, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vlog_line(daemon_state *d, int level, const char *fmt, va_list ap) {
  char line[2048], stamp[32];
  time_t now = time(NULL);
  struct tm tm;

  vsnprintf(line, sizeof(line), fmt, ap);
  if (d->use_syslog) {
    syslog(level, "%s", line);
    return;
  }
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
  fprintf(stderr, "%s maild[%ld]: %s\n", stamp, (long)getpid(), line);
}

static void log_line(daemon_state *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_line(daemon_state *d, int level, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vlog_line(d, level, fmt, ap);
  va_end(ap);
}

static void on_server_log(maild_server *srv, maild_log_level level,
                          const char *line, void *ud) {
  (void)srv;
  log_line(ud, (int)level, "%s", line);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...) {
  va_list ap;

  fputs("maild: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return 1;
}

/* ---- Set-up ---- */

static int load_config(daemon_state *d, int check_only) {
  char err[1024];

  if (maild_config_defaults(&d->cfg) != 0)
    return fail("out of memory");
  if (d->cfg_path != NULL &&
      maild_config_load(&d->cfg, d->cfg_path, err, sizeof(err)) != 0)
    return fail("%s", err);
  err[0] = '\0';
  if (maild_options_new(&d->opt, NULL) != 0 ||
      maild_config_apply_options(&d->cfg, d->opt, err, sizeof(err)) != 0)
    return fail("%s", err[0] ? err : "out of memory");
  /* SMTP AUTH for the accounts of the users file, offered over TLS
     only (RFC 4954 4, TESTPLAN T4). */
  if (maild_options_set_string(d->opt, MAILD_OPT_AUTH_MECHANISMS,
                               "PLAIN LOGIN") != 0)
    return fail("out of memory");
  if (!check_only)
    return 0;
  /* Before the first start there are no users yet: the first start
     creates the file with one account. */
  if (access(d->cfg.users_path, F_OK) != 0 && errno == ENOENT)
    printf("maild: %s does not exist yet; the first start creates it\n",
           d->cfg.users_path);
  else if (maild_site_load(&d->site, &d->cfg, err, sizeof(err)) != 0)
    return fail("%s", err);
  printf("maild: %s: configuration ok\n",
         d->cfg_path ? d->cfg_path : "built-in defaults");
  return 0;
}

static int join(char *buf, size_t len, const char *a, const char *b) {
  return snprintf(buf, len, "%s/%s", a, b) < (int)len ? 0 : -1;
}

/* First start: one account, its password shown once. */
static int first_account(daemon_state *d) {
  char addr[512], password[17];
  struct stat st;
  maild_users *u;
  int rc;

  if (stat(d->cfg.users_path, &st) == 0 || errno != ENOENT)
    return 0;
  snprintf(addr, sizeof(addr), "postmaster@%s", d->cfg.domains[0]);
  if (maild_random_password(password, 16) != 0 ||
      maild_users_new(&u, NULL, NULL) != 0)
    return fail("cannot create the first account");
  rc = maild_users_add(u, addr, password, strlen(password));
  if (rc == 0)
    rc = maild_users_save(u, d->cfg.users_path);
  maild_users_del(u);
  if (rc != 0)
    return fail("%s: %s", d->cfg.users_path, maild_strerror(rc));
  printf("maild: created account %s with password %s\n"
         "maild: (shown once; change it with: maildctl user passwd %s)\n",
         addr, password, addr);
  fflush(stdout);
  return 0;
}

static int prepare_data(daemon_state *d) {
  char mail[4096];

  if (maild_mkdirs(d->cfg.data_dir) != 0)
    return fail("%s: %s", d->cfg.data_dir, strerror(errno));
  if (join(mail, sizeof(mail), d->cfg.data_dir, "mail") != 0 ||
      (mkdir(mail, 0700) != 0 && errno != EEXIST))
    return fail("%s: %s", mail, strerror(errno));
  return 0;
}

/* The networks that may relay without logging in (checked when the
   configuration was read). */
static maild_cidr_set *trusted_set(const maild_config *cfg) {
  maild_cidr_set *set;
  size_t i;

  if (maild_cidr_set_new(&set, NULL) != 0)
    return NULL;
  for (i = 0; i < cfg->ntrusted; i++) {
    if (maild_cidr_set_add(set, cfg->trusted_networks[i]) != 0) {
      maild_cidr_set_del(set);
      return NULL;
    }
  }
  return set;
}

/* The configuration's routes, handed to the server. */
static int apply_routes(maild_server *srv, const maild_config *cfg) {
  maild_route *r = calloc(cfg->nroutes + 1, sizeof(*r));
  size_t i;
  int rc;

  if (r == NULL)
    return MAILD_ERR_NOMEM;
  for (i = 0; i < cfg->nroutes; i++) {
    r[i].domain = cfg->routes[i].domain;
    r[i].host = cfg->routes[i].address;
    r[i].port = cfg->routes[i].port;
    r[i].user = cfg->routes[i].user;
    r[i].password = cfg->routes[i].password;
  }
  rc = maild_server_set_routes(srv, r, cfg->nroutes);
  free(r);
  return rc;
}

/* MAILD_CLOCK_SCALE=N (a testing aid): the queue's clock runs N times
   faster than real time from the start, so days of retries pass in
   seconds. */
static uint64_t real_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t scaled_clock(void *ud) {
  const daemon_state *d = ud;

  return d->clock_start + (real_ms() - d->clock_start) * d->clock_scale;
}

/* Users and aliases, after the listeners: a start that cannot bind its
   ports creates no account. Then says where it listens. */
static int load_site(daemon_state *d) {
  char err[1024];
  size_t i;

  if (first_account(d) != 0)
    return 1;
  if (maild_site_load(&d->site, &d->cfg, err, sizeof(err)) != 0)
    return fail("%s", err);
  maild_server_set_directory(d->srv, d->site.directory);
  maild_server_set_users(d->srv, d->site.users);
  d->trusted = trusted_set(&d->cfg);
  if (d->trusted == NULL)
    return fail("out of memory");
  maild_server_set_trusted(d->srv, d->trusted);
  if (apply_routes(d->srv, &d->cfg) != 0)
    return fail("out of memory");
  for (i = 0; i < d->cfg.nlisteners && i < MAX_BOUND; i++) {
    const maild_config_listener *l = &d->cfg.listeners[i];
    printf("maild: %s listening on %s%s%s:%d\n",
           maild_config_service_name(l->service),
           strchr(l->address, ':') ? "[" : "", l->address,
           strchr(l->address, ':') ? "]" : "", d->bound_port[i]);
  }
  fflush(stdout);
  return 0;
}

/* The certificate's paths: configured, or made on first start. */
static void tls_paths(const maild_config *cfg, char *cert, char *key,
                      size_t len) {
  if (cfg->tls_cert != NULL) {
    snprintf(cert, len, "%s", cfg->tls_cert);
    snprintf(key, len, "%s", cfg->tls_key);
    return;
  }
  snprintf(cert, len, "%s/tls/cert.pem", cfg->data_dir);
  snprintf(key, len, "%s/tls/key.pem", cfg->data_dir);
}

/* Loads the certificate, creating a self-signed one for the hostname
   (and localhost, 127.0.0.1) on first start when none is configured. */
static int load_tls(const maild_config *cfg, maild_tls_credentials **cred,
                    int may_create, char *err, size_t errlen) {
  char cert[4096], key[4096], dir[4096];
  int rc;

  if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
    snprintf(err, errlen, "tls-cert and tls-key go together");
    return MAILD_ERR_INVAL;
  }
  tls_paths(cfg, cert, key, sizeof(cert));
  if (cfg->tls_cert == NULL && may_create && access(cert, F_OK) != 0) {
    snprintf(dir, sizeof(dir), "%s/tls", cfg->data_dir);
    if (maild_mkdirs(dir) != 0) {
      if (snprintf(err, errlen, "%s: %s", dir, strerror(errno)) >= (int)errlen)
        err[errlen - 1] = '\0'; /* a long path is cut in the message */
      return MAILD_ERR_IO;
    }
    /* A key without a certificate is what a crash between the two
       writes leaves: make both again. */
    rc = maild_tls_generate_self_signed(cert, key, cfg->hostname, 1, err,
                                        errlen);
    if (rc != 0)
      return rc;
    printf("maild: created a self-signed certificate for %s in %s\n",
           cfg->hostname, dir);
  }
  return maild_tls_credentials_load(cred, cert, key, NULL, err, errlen);
}

static int make_server(daemon_state *d) {
  maild_store_maildir_config mc;
  maild_server_callbacks cb = {on_server_log};
  char mail[4096], spool[4096];
  size_t i;
  int rc;

  memset(&mc, 0, sizeof(mc));
  mc.quota = d->cfg.quota;
  mc.hostname = d->cfg.hostname;
  join(mail, sizeof(mail), d->cfg.data_dir, "mail");
  join(spool, sizeof(spool), d->cfg.data_dir, "spool");
  rc = maild_store_maildir_new(&d->store, mail, &mc, NULL);
  if (rc != 0)
    return fail("%s: %s", mail, maild_strerror(rc));
  rc = maild_server_new(&d->srv, d->loop, &cb, d, d->opt, NULL);
  if (rc == 0)
    rc = maild_server_set_spool(d->srv, spool);
  if (rc != 0)
    return fail("%s: %s", spool, maild_strerror(rc));
  maild_server_set_store(d->srv, d->store);
  if (getenv("MAILD_CLOCK_SCALE") != NULL) {
    d->clock_scale = strtoull(getenv("MAILD_CLOCK_SCALE"), NULL, 10);
    d->clock_start = real_ms();
    if (d->clock_scale > 1)
      maild_server_set_clock(d->srv, scaled_clock, d);
  }
  {
    /* MX lookups for domains without a route: the configured name
       servers, else those of /etc/resolv.conf. */
    maild_resolver_config rc_cfg;
    const char *self[1] = {d->cfg.hostname};
    memset(&rc_cfg, 0, sizeof(rc_cfg));
    rc_cfg.servers = (const char *const *)d->cfg.dns_servers;
    rc_cfg.nservers = d->cfg.ndns_servers;
    rc_cfg.self = self;
    rc_cfg.nself = 1;
    rc = maild_resolver_new(&d->resolver, d->loop, &rc_cfg, NULL);
    if (rc == 0)
      maild_server_set_resolver(d->srv, d->resolver);
    else
      log_line(d, LOG_WARNING,
               "no name server (%s): mail for domains without a route waits "
               "in the queue",
               maild_strerror(rc));
  }
  {
    maild_tls_credentials *cred;
    char err[1024];
    if (load_tls(&d->cfg, &cred, 1, err, sizeof(err)) != 0)
      return fail("TLS: %s", err);
    maild_server_set_tls(d->srv, cred);
    maild_tls_credentials_del(cred);
  }
  if (d->cfg.nlisteners > MAX_BOUND)
    return fail("at most %d listen settings", MAX_BOUND);
  for (i = 0; i < d->cfg.nlisteners; i++) {
    const maild_config_listener *l = &d->cfg.listeners[i];
    maild_service svc = l->service == MAILD_CONFIG_SMTP ? MAILD_SERVICE_SMTP
                        : l->service == MAILD_CONFIG_SUBMISSION
                            ? MAILD_SERVICE_SUBMISSION
                        : l->service == MAILD_CONFIG_SMTPS ? MAILD_SERVICE_SMTPS
                        : l->service == MAILD_CONFIG_POP3  ? MAILD_SERVICE_POP3
                        : l->service == MAILD_CONFIG_POP3S ? MAILD_SERVICE_POP3S
                                                           : 0;
    int port = 0;
    if (svc == 0)
      return fail("listen %s: not available in this version",
                  maild_config_service_name(l->service));
    rc = maild_server_listen(d->srv, svc, l->address, l->port, &port);
    if (rc != 0)
      return fail("listen %s %s:%u: %s", maild_config_service_name(l->service),
                  l->address, (unsigned)l->port,
                  rc == MAILD_ERR_EXISTS ? "address already in use"
                  : rc == MAILD_ERR_PERM ? "permission denied"
                                         : maild_strerror(rc));
    d->bound_port[i] = port;
  }
  return 0;
}

/* ---- Privileges ---- */

static uid_t chown_uid;
static gid_t chown_gid;

static int chown_one(const char *path, const struct stat *st, int flag,
                     struct FTW *ftw) {
  (void)flag, (void)ftw;
  if (st->st_uid != chown_uid || st->st_gid != chown_gid)
    return lchown(path, chown_uid, chown_gid) == 0 ? 0 : -1;
  return 0;
}

static int drop_root(daemon_state *d) {
  char err[1024];
  uid_t uid;
  gid_t gid;

  if (geteuid() != 0)
    return 0;
  if (d->cfg.run_user == NULL) {
    log_line(d, LOG_WARNING,
             "running as root: set 'user NAME' in the "
             "configuration to drop privileges");
    return 0;
  }
  if (maild_privs_lookup(d->cfg.run_user, &uid, &gid, err, sizeof(err)) != 0)
    return fail("%s", err);
  /* The data belongs to the user maild runs as. */
  chown_uid = uid;
  chown_gid = gid;
  if (nftw(d->cfg.data_dir, chown_one, 32, FTW_PHYS) != 0 ||
      (access(d->cfg.users_path, F_OK) == 0 &&
       chown(d->cfg.users_path, uid, gid) != 0))
    return fail("cannot give %s to %s: %s", d->cfg.data_dir, d->cfg.run_user,
                strerror(errno));
  if (maild_privs_drop(uid, gid, err, sizeof(err)) != 0)
    return fail("%s", err);
  log_line(d, LOG_INFO, "running as %s (uid %ld)", d->cfg.run_user, (long)uid);
  return 0;
}

/* ---- Signals ---- */

static void on_server_closed(maild_server *srv, void *ud) {
  daemon_state *d = ud;

  (void)srv;
  d->srv = NULL;
  maild_resolver_close(d->resolver);
  d->resolver = NULL;
  maild_control_stop(d->control);
  d->control = NULL;
  uv_close((uv_handle_t *)&d->sig_term, NULL);
  uv_close((uv_handle_t *)&d->sig_int, NULL);
  uv_close((uv_handle_t *)&d->sig_hup, NULL);
}

static void on_stop(uv_signal_t *sig, int signum) {
  daemon_state *d = sig->data;

  if (d->srv == NULL)
    return;
  log_line(d, LOG_INFO, "signal %d: shutting down", signum);
  maild_server_close(d->srv, on_server_closed);
}

static void reload_work(uv_work_t *req) {
  daemon_state *d = req->data;

  d->reload_err[0] = '\0';
  d->reload_rc = maild_config_defaults(&d->new_cfg);
  if (d->reload_rc == 0 && d->cfg_path != NULL)
    d->reload_rc = maild_config_load(&d->new_cfg, d->cfg_path, d->reload_err,
                                     sizeof(d->reload_err));
  if (d->reload_rc == 0)
    d->reload_rc = maild_site_load(&d->new_site, &d->new_cfg, d->reload_err,
                                   sizeof(d->reload_err));
  d->new_cred = NULL;
  if (d->reload_rc == 0) {
    d->reload_rc = load_tls(&d->new_cfg, &d->new_cred, 0, d->reload_err,
                            sizeof(d->reload_err));
    if (d->reload_rc != 0)
      maild_site_free(&d->new_site);
  }
  d->new_trusted = NULL;
  if (d->reload_rc == 0 &&
      (d->new_trusted = trusted_set(&d->new_cfg)) == NULL) {
    d->reload_rc = MAILD_ERR_NOMEM;
    snprintf(d->reload_err, sizeof(d->reload_err), "out of memory");
    maild_site_free(&d->new_site);
    maild_tls_credentials_del(d->new_cred);
    d->new_cred = NULL;
  }
}

static void reload_done(uv_work_t *req, int status) {
  daemon_state *d = req->data;

  (void)status;
  d->reloading = 0;
  if (d->reload_rc != 0) {
    log_line(d, LOG_ERR,
             "reload failed, keeping the running configuration: "
             "%s",
             d->reload_err);
    maild_config_free(&d->new_cfg);
    return;
  }
  if (d->srv != NULL) {
    maild_server_set_directory(d->srv, d->new_site.directory);
    maild_server_set_users(d->srv, d->new_site.users);
    maild_server_set_tls(d->srv, d->new_cred);
    maild_server_set_trusted(d->srv, d->new_trusted);
    if (apply_routes(d->srv, &d->new_cfg) != 0)
      log_line(d, LOG_ERR, "reload: out of memory; routes unchanged");
  }
  maild_tls_credentials_del(d->new_cred);
  d->new_cred = NULL;
  maild_cidr_set_del(d->trusted);
  d->trusted = d->new_trusted;
  d->new_trusted = NULL;
  maild_site_free(&d->site);
  d->site = d->new_site;
  maild_config_free(&d->new_cfg);
  log_line(d, LOG_INFO,
           "reloaded users, domains, aliases and certificate (%zu users)",
           maild_users_count(d->site.users));
}

static void on_hup(uv_signal_t *sig, int signum) {
  daemon_state *d = sig->data;

  (void)signum;
  if (d->reloading || d->srv == NULL)
    return;
  d->reloading = 1;
  d->reload_req.data = d;
  if (uv_queue_work(d->loop, &d->reload_req, reload_work, reload_done) != 0)
    d->reloading = 0;
}

static void watch_signals(daemon_state *d) {
  uv_signal_init(d->loop, &d->sig_term);
  uv_signal_init(d->loop, &d->sig_int);
  uv_signal_init(d->loop, &d->sig_hup);
  d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
  uv_signal_start(&d->sig_term, on_stop, SIGTERM);
  uv_signal_start(&d->sig_int, on_stop, SIGINT);
  uv_signal_start(&d->sig_hup, on_hup, SIGHUP);
}

/* ---- Background and pid file ---- */

/* Forks; the parent waits until the child is serving (or failed), so an
   error like a port in use is reported by the command that started it. */
static int background(daemon_state *d) {
  int fds[2];
  pid_t pid;
  char c = 0;

  if (pipe(fds) != 0 || (pid = fork()) < 0)
    return fail("cannot fork: %s", strerror(errno));
  if (pid > 0) {
    close(fds[1]);
    if (read(fds[0], &c, 1) != 1 || c != 'k')
      exit(1);
    exit(0);
  }
  close(fds[0]);
  d->ready_fd = fds[1];
  setsid();
  return 0;
}

static void ready(daemon_state *d) {
  int null;

  if (d->ready_fd < 0)
    return;
  null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
  }
  if (write(d->ready_fd, "k", 1) != 1)
    log_line(d, LOG_WARNING, "cannot tell the parent process we are up");
  close(d->ready_fd);
  d->ready_fd = -1;
}

static void write_pidfile(daemon_state *d) {
  FILE *f;

  if (join(d->pidfile, sizeof(d->pidfile), d->cfg.data_dir, "maild.pid") != 0)
    return;
  f = fopen(d->pidfile, "w");
  if (f == NULL) {
    d->pidfile[0] = '\0';
    return;
  }
  fprintf(f, "%ld\n", (long)getpid());
  fclose(f);
}

static int usage(void) {
  fprintf(stderr, "usage: maild [-d] [-n] [-f FILE]\n"
                  "  -f FILE  configuration file (default: built-in)\n"
                  "  -n       check the configuration and exit\n"
                  "  -d       stay in the foreground, log to stderr\n");
  return 2;
}

static int run(daemon_state *d, int check_only) {
  if (load_config(d, check_only) != 0)
    return 1;
  if (check_only)
    return 0;
  d->use_syslog = d->cfg.log == MAILD_CONFIG_LOG_SYSLOG ||
                  (d->cfg.log == MAILD_CONFIG_LOG_AUTO && !d->foreground);
  if (d->use_syslog)
    openlog("maild", LOG_PID | LOG_NDELAY, LOG_MAIL);
  if (prepare_data(d) != 0 || (!d->foreground && background(d) != 0))
    return 1;
  d->loop = uv_default_loop();
  if (make_server(d) != 0 || load_site(d) != 0 || drop_root(d) != 0)
    return 1;
  write_pidfile(d);
  if (maild_server_start(d->srv) != 0)
    return fail("cannot start the server");
  {
    char path[4096];
    join(path, sizeof(path), d->cfg.data_dir, "control");
    if (maild_control_start(&d->control, d->loop, path, d->srv) != 0)
      log_line(d, LOG_WARNING,
               "no control socket at %s: maildctl queue commands will not "
               "reach this daemon",
               path);
  }
  watch_signals(d);
  log_line(d, LOG_INFO, "maild %d.%d.%d started as %s", MAILD_VERSION_MAJOR,
           MAILD_VERSION_MINOR, MAILD_VERSION_PATCH, d->cfg.hostname);
  ready(d);
  uv_run(d->loop, UV_RUN_DEFAULT);
  log_line(d, LOG_INFO, "stopped");
  if (d->pidfile[0] != '\0')
    unlink(d->pidfile);
  return 0;
}

int main(int argc, char **argv) {
  daemon_state d;
  int c, check_only = 0, rc;

  memset(&d, 0, sizeof(d));
  d.ready_fd = -1;
  signal(SIGPIPE, SIG_IGN);
  /* Spool commits and Maildir deliveries wait on fsync in libuv's worker
     pool; with many sessions committing at once, more threads let the
     file system group their journal commits (libuv's default is 4). The
     environment variable, if set, wins. */
  setenv("UV_THREADPOOL_SIZE", "32", 0);
  while ((c = getopt(argc, argv, "df:nh")) != -1) {
    if (c == 'd')
      d.foreground = 1;
    else if (c == 'f')
      d.cfg_path = optarg;
    else if (c == 'n')
      check_only = 1;
    else
      return usage();
  }
  if (optind != argc)
    return usage();
  rc = run(&d, check_only);
  maild_store_del(d.store);
  maild_cidr_set_del(d.trusted);
  maild_site_free(&d.site);
  maild_options_del(d.opt);
  maild_config_free(&d.cfg);
  if (d.loop != NULL)
    uv_loop_close(d.loop);
  return rc;
}
