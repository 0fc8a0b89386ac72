/*
 * maildctl: manage a maild site from the command line.
 *
 *   maildctl [-f FILE] user add ADDRESS [--password-stdin | --no-password]
 *   maildctl [-f FILE] user passwd ADDRESS [--password-stdin]
 *   maildctl [-f FILE] user del ADDRESS
 *   maildctl [-f FILE] user list
 *   maildctl [-f FILE] queue [list [--json] | show ID | retry [ID] |
 *                             hold ID | release ID | delete ID]
 *
 * It edits the users file named by the configuration (atomically: a new
 * file is written, synced and renamed into place), then asks a running
 * maild to reload (SIGHUP to the pid in <data-dir>/maild.pid). A password
 * comes from the terminal (asked twice, not echoed) or, for scripts, as
 * one line on standard input with --password-stdin.
 *
 * `queue` alone prints a summary (messages, recipients, size, held, by
 * destination domain, and from a running daemon how many messages it has
 * in memory); `list` and `show` read the spool's committed envelopes, so
 * they see every queued message, in the daemon's memory or not; retry,
 * hold, release and delete go to the running daemon through its control
 * socket (<data-dir>/control), so they take effect at once.
 */
#include "config.h"
#include "site.h"

#include "maild/error.h"
#include "maild/users.h"
#include "queue/spool.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PASSWORD_MAX 512

static int usage(void) {
  fprintf(stderr,
          "usage: maildctl [-f FILE] user add ADDRESS "
          "[--password-stdin|--no-password]\n"
          "       maildctl [-f FILE] user passwd ADDRESS [--password-stdin]\n"
          "       maildctl [-f FILE] user del ADDRESS\n"
          "       maildctl [-f FILE] user list\n"
          "       maildctl [-f FILE] queue [list [--json] | show ID]\n"
          "       maildctl [-f FILE] queue retry [ID] | hold ID | release ID "
          "| delete ID\n");
  return 2;
}

static int fail(const char *what, int err) {
  fprintf(stderr, "maildctl: %s: %s\n", what, maild_strerror(err));
  return 1;
}

/* Reads one line into `buf` without its line end; returns its length or
   -1. With `echo_off`, the terminal does not show it. */
static ssize_t read_line(char *buf, size_t size, int echo_off) {
  struct termios old, quiet;
  int restore = 0;
  size_t n;

  if (echo_off && tcgetattr(0, &old) == 0) {
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    restore = tcsetattr(0, TCSAFLUSH, &quiet) == 0;
  }
  if (fgets(buf, (int)size, stdin) == NULL)
    buf[0] = '\0';
  if (restore) {
    tcsetattr(0, TCSAFLUSH, &old);
    fputc('\n', stderr);
  }
  n = strcspn(buf, "\r\n");
  if (buf[n] == '\0' && n == size - 1)
    return -1; /* longer than the buffer */
  buf[n] = '\0';
  return (ssize_t)n;
}

static ssize_t get_password(char *buf, int from_stdin) {
  char again[PASSWORD_MAX];
  ssize_t n;

  if (from_stdin)
    return read_line(buf, PASSWORD_MAX, 0);
  if (!isatty(0)) {
    fprintf(stderr, "maildctl: no terminal: use --password-stdin\n");
    return -1;
  }
  fprintf(stderr, "Password: ");
  n = read_line(buf, PASSWORD_MAX, 1);
  fprintf(stderr, "Again: ");
  if (n < 0 || read_line(again, sizeof(again), 1) != n ||
      strcmp(buf, again) != 0) {
    fprintf(stderr, "maildctl: the passwords differ\n");
    return -1;
  }
  return n;
}

/* Asks a running maild to reload its users. */
static void notify_daemon(const maild_config *cfg) {
  char path[4096];
  long pid = 0;
  FILE *f;

  snprintf(path, sizeof(path), "%s/maild.pid", cfg->data_dir);
  f = fopen(path, "r");
  if (f == NULL)
    return;
  if (fscanf(f, "%ld", &pid) == 1 && pid > 1 && kill((pid_t)pid, SIGHUP) == 0)
    fprintf(stderr, "maildctl: maild (pid %ld) reloads\n", pid);
  fclose(f);
}

/* Saves the users file, creating its directory on first use. */
static int save_users(const maild_users *u, const char *path) {
  char dir[4096];
  char *slash;

  snprintf(dir, sizeof(dir), "%s", path);
  slash = strrchr(dir, '/');
  if (slash != NULL && slash != dir) {
    *slash = '\0';
    if (maild_mkdirs(dir) != 0)
      return MAILD_ERR_IO;
  }
  return maild_users_save(u, path);
}

/* The Maildir store refuses local parts that look like paths (see
   maild/store.h: '/', a leading '.', control octets); an account it could
   never deliver to is refused here rather than at the first message. */
static int mailbox_name_ok(const char *addr) {
  const char *at = strrchr(addr, '@');
  const char *p = addr;

  if (at == NULL)
    return 1; /* not an address: maild_users_add() says why */
  if (*p == '"')
    p++; /* the quoted form: judge its content */
  if (*p == '.')
    return 0;
  for (; p < at; p++) {
    if (*p == '/' || (unsigned char)*p < 0x20 || *p == 0x7f)
      return 0;
  }
  return 1;
}

static int user_cmd(const maild_config *cfg, int argc, char **argv) {
  const char *op = argc > 0 ? argv[0] : "";
  const char *addr = argc > 1 ? argv[1] : NULL;
  const char *flag = argc > 2 ? argv[2] : "";
  char password[PASSWORD_MAX];
  ssize_t plen = 0;
  maild_users *u;
  size_t line = 0, i;
  int rc;

  if (maild_users_new(&u, NULL, NULL) != 0)
    return fail("users", MAILD_ERR_NOMEM);
  rc = maild_users_load(u, cfg->users_path, &line);
  if (rc != 0 && rc != MAILD_ERR_NOT_FOUND) {
    fprintf(stderr, "maildctl: %s:%zu: %s\n", cfg->users_path, line,
            maild_strerror(rc));
    maild_users_del(u);
    return 1;
  }
  if (strcmp(op, "list") == 0 && argc == 1) {
    for (i = 0; i < maild_users_count(u); i++)
      printf("%s\n", maild_users_address(u, i));
    maild_users_del(u);
    return 0;
  }
  if (addr == NULL || argc > 3 ||
      (flag[0] && strcmp(flag, "--password-stdin") != 0 &&
       strcmp(flag, "--no-password") != 0)) {
    maild_users_del(u);
    return usage();
  }
  if ((strcmp(op, "add") == 0 || strcmp(op, "passwd") == 0) &&
      strcmp(flag, "--no-password") != 0) {
    plen = get_password(password, strcmp(flag, "--password-stdin") == 0);
    if (plen <= 0) {
      maild_users_del(u);
      return fail("password", MAILD_ERR_INVAL);
    }
  }
  if (strcmp(op, "add") == 0 && !mailbox_name_ok(addr)) {
    fprintf(stderr,
            "maildctl: %s: this local part cannot name a mailbox "
            "('/', a leading '.', or control characters)\n",
            addr);
    maild_users_del(u);
    return 1;
  }
  if (strcmp(op, "add") == 0)
    rc = maild_users_add(u, addr, plen > 0 ? password : NULL, (size_t)plen);
  else if (strcmp(op, "passwd") == 0)
    rc = maild_users_set_password(u, addr, password, (size_t)plen);
  else if (strcmp(op, "del") == 0)
    rc = maild_users_remove(u, addr);
  else {
    maild_users_del(u);
    return usage();
  }
  if (rc == 0)
    rc = save_users(u, cfg->users_path);
  memset(password, 0, sizeof(password));
  maild_users_del(u);
  if (rc != 0)
    return fail(addr, rc);
  notify_daemon(cfg);
  return 0;
}

/* ---- queue ---- */

typedef struct queue_walk {
  maild_spool *sp;
  char dir[4096];
  char holddir[4096];
} queue_walk;

static int walk_open(queue_walk *w, const maild_config *cfg) {
  int rc;

  snprintf(w->dir, sizeof(w->dir), "%s/spool", cfg->data_dir);
  rc = maild__spool_open(&w->sp, w->dir, NULL, NULL);
  if (rc != 0)
    return fail(w->dir, rc);
  snprintf(w->holddir, sizeof(w->holddir), "%s/spool/hold", cfg->data_dir);
  snprintf(w->dir, sizeof(w->dir), "%s/spool/queue", cfg->data_dir);
  return 0;
}

static int is_held(const queue_walk *w, const char *id) {
  char path[4200];

  snprintf(path, sizeof(path), "%s/%s", w->holddir, id);
  return access(path, F_OK) == 0;
}

/* Calls `fn` for every committed envelope, in id (arrival) order. */
static size_t walk(queue_walk *w,
                   void (*fn)(const queue_walk *w, const maild_envelope *env,
                              void *ud),
                   void *ud) {
  struct dirent **names = NULL;
  size_t count = 0;
  int n, i;

  n = scandir(w->dir, &names, NULL, alphasort);
  for (i = 0; i < n; i++) {
    const char *name = names[i]->d_name;
    char id[MAILD_SPOOL_ID_LEN + 1];
    maild_envelope *env;
    if (strlen(name) == MAILD_SPOOL_ID_LEN + 4 &&
        strcmp(name + MAILD_SPOOL_ID_LEN, ".env") == 0) {
      memcpy(id, name, MAILD_SPOOL_ID_LEN);
      id[MAILD_SPOOL_ID_LEN] = '\0';
      if (maild__spool_load(w->sp, id, &env) == 0) {
        fn(w, env, ud);
        maild__spool_envelope_free(w->sp, env);
        count++;
      }
    }
    free(names[i]);
  }
  free(names);
  return count;
}

static void when(char *buf, size_t cap, int64_t usec) {
  time_t t = (time_t)(usec / 1000000);
  struct tm tm;

  gmtime_r(&t, &tm);
  strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static const char *state_name(int state) {
  return state == MAILD_RCPT_DONE     ? "delivered"
         : state == MAILD_RCPT_FAILED ? "bounced"
                                      : "pending";
}

static void print_human(const queue_walk *w, const maild_envelope *env,
                        void *ud) {
  char t[32];
  size_t i;

  (void)ud;
  when(t, sizeof(t), env->arrival_usec);
  printf("%s%s %8llu %s UTC <%s>\n", env->id, is_held(w, env->id) ? "!" : "",
         (unsigned long long)env->msg_size, t, env->sender);
  for (i = 0; i < env->nrcpt; i++)
    if (env->rcpt[i].state == MAILD_RCPT_PENDING)
      printf("    <%s>\n", env->rcpt[i].addr);
}

/* A JSON string: the octets as they are, with JSON's escapes. */
static void json_str(const char *s) {
  putchar('"');
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

/* When the queue tries the message next (see queue/spool.h), as text;
   "" if unknown. */
static void next_attempt(const queue_walk *w, const char *id, char *buf,
                         size_t cap) {
  uint64_t due;

  buf[0] = '\0';
  if (maild__spool_due(w->sp, id, &due) == 0 && due < INT64_MAX / 1000)
    when(buf, cap, (int64_t)due * 1000);
}

static void print_json(const queue_walk *w, const maild_envelope *env,
                       void *ud) {
  int *first = ud;
  char t[32], next[32];
  size_t i;

  when(t, sizeof(t), env->arrival_usec);
  next_attempt(w, env->id, next, sizeof(next));
  printf("%s\n  {\"id\": ", *first ? "" : ",");
  *first = 0;
  json_str(env->id);
  printf(", \"size\": %llu, \"arrival\": \"%sZ\", \"sender\": ",
         (unsigned long long)env->msg_size, t);
  json_str(env->sender);
  printf(", \"held\": %s, \"next_attempt\": \"%s%s\", \"recipients\": [",
         is_held(w, env->id) ? "true" : "false", next, next[0] ? "Z" : "");
  for (i = 0; i < env->nrcpt; i++) {
    printf("%s{\"address\": ", i ? ", " : "");
    json_str(env->rcpt[i].addr);
    printf(", \"state\": \"%s\"}", state_name(env->rcpt[i].state));
  }
  printf("]}");
}

static int queue_list(const maild_config *cfg, int json) {
  queue_walk w;
  size_t n;
  int first = 1;

  if (walk_open(&w, cfg) != 0)
    return 1;
  if (json) {
    printf("[");
    walk(&w, print_json, &first);
    printf("%s]\n", first ? "" : "\n");
  } else {
    n = walk(&w, print_human, NULL);
    printf("-- %zu message%s in the queue\n", n, n == 1 ? "" : "s");
  }
  maild__spool_close(w.sp);
  return 0;
}

typedef struct summary {
  size_t msgs, rcpts, held;
  uint64_t size;
  struct {
    char domain[256];
    size_t n;
  } dom[64];
  size_t ndom, other;
} summary;

static void count(const queue_walk *w, const maild_envelope *env, void *ud) {
  summary *s = ud;
  size_t i, k;

  s->msgs++;
  s->size += env->msg_size;
  s->held += (size_t)is_held(w, env->id);
  for (i = 0; i < env->nrcpt; i++) {
    const char *at = strrchr(env->rcpt[i].addr, '@');
    if (env->rcpt[i].state != MAILD_RCPT_PENDING)
      continue;
    s->rcpts++;
    at = at ? at + 1 : "";
    for (k = 0; k < s->ndom; k++)
      if (strcmp(s->dom[k].domain, at) == 0)
        break;
    if (k == s->ndom && s->ndom < 64)
      snprintf(s->dom[s->ndom++].domain, sizeof(s->dom[0].domain), "%s", at);
    if (k < s->ndom)
      s->dom[k].n++;
    else
      s->other++;
  }
}

static int ask_daemon(const maild_config *cfg, const char *cmd, const char *id,
                      char *reply, size_t cap, int quiet);

/* What the running daemon holds in memory, if one runs. */
static void print_daemon_stats(const maild_config *cfg) {
  char reply[256];
  unsigned long long mem, active, window;
  int outside;

  if (ask_daemon(cfg, "stats", NULL, reply, sizeof(reply), 1) != 0 ||
      sscanf(reply, "ok in-memory=%llu active=%llu window=%llu outside=%d",
             &mem, &active, &window, &outside) != 4)
    return;
  printf("in memory: %llu (queue-window %llu), %llu being tried%s\n", mem,
         window, active, outside ? "; more wait in the spool" : "");
}

static int queue_summary(const maild_config *cfg) {
  queue_walk w;
  summary *s = calloc(1, sizeof(*s));
  size_t k;

  if (s == NULL || walk_open(&w, cfg) != 0) {
    free(s);
    return 1;
  }
  walk(&w, count, s);
  maild__spool_close(w.sp);
  printf("%zu message%s, %zu pending recipient%s, %llu octets, %zu held\n",
         s->msgs, s->msgs == 1 ? "" : "s", s->rcpts, s->rcpts == 1 ? "" : "s",
         (unsigned long long)s->size, s->held);
  for (k = 0; k < s->ndom; k++)
    printf("%8zu  %s\n", s->dom[k].n, s->dom[k].domain);
  if (s->other > 0)
    printf("%8zu  (other domains)\n", s->other);
  free(s);
  print_daemon_stats(cfg);
  return 0;
}

static int queue_show(const maild_config *cfg, const char *id) {
  char path[4200], buf[8192], next[32];
  queue_walk w;
  maild_envelope *env;
  size_t i, n;
  FILE *f;
  int rc;

  if (!maild__spool_id_valid(id))
    return fail(id, MAILD_ERR_INVAL);
  if (walk_open(&w, cfg) != 0)
    return 1;
  rc = maild__spool_load(w.sp, id, &env);
  if (rc != 0) {
    maild__spool_close(w.sp);
    return fail(id, rc);
  }
  when(buf, sizeof(buf), env->arrival_usec);
  next_attempt(&w, id, next, sizeof(next));
  printf("id: %s\narrival: %s UTC\nnext attempt: %s%s\nsize: %llu\n"
         "sender: <%s>\nheld: %s\nclient: [%s] helo=<%s>%s%s\n",
         env->id, buf, next[0] ? next : "?", next[0] ? " UTC" : "",
         (unsigned long long)env->msg_size, env->sender,
         is_held(&w, id) ? "yes" : "no", env->client_addr, env->client_helo,
         env->auth_id[0] ? " auth=" : "", env->auth_id);
  for (i = 0; i < env->nrcpt; i++)
    printf("recipient: <%s> %s\n", env->rcpt[i].addr,
           state_name(env->rcpt[i].state));
  /* The header section, as stored. */
  snprintf(path, sizeof(path), "%s/%s.msg", w.dir, id);
  f = fopen(path, "rb");
  if (f != NULL) {
    printf("\n");
    while (fgets(buf, sizeof(buf), f) != NULL && strcmp(buf, "\r\n") != 0 &&
           strcmp(buf, "\n") != 0) {
      n = strlen(buf);
      fwrite(buf, 1, n, stdout);
    }
    fclose(f);
  }
  maild__spool_envelope_free(w.sp, env);
  maild__spool_close(w.sp);
  return 0;
}

/* Sends one command to the running daemon; its answer goes to `reply`.
   Returns 0 (answered "ok"), 1 (an error, printed unless `quiet`). */
static int ask_daemon(const maild_config *cfg, const char *cmd, const char *id,
                      char *reply, size_t cap, int quiet) {
  struct sockaddr_un sa;
  char line[256];
  ssize_t n;
  size_t got = 0;
  int fd;

  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control",
                       cfg->data_dir) >= sizeof(sa.sun_path)) {
    if (!quiet)
      fprintf(stderr, "maildctl: %s/control: path too long\n", cfg->data_dir);
    return 1;
  }
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    if (!quiet)
      fprintf(stderr, "maildctl: %s: %s (is maild running?)\n", sa.sun_path,
              strerror(errno));
    if (fd >= 0)
      close(fd);
    return 1;
  }
  snprintf(line, sizeof(line), "%s%s%s\n", cmd, id ? " " : "", id ? id : "");
  if (write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
    close(fd);
    return quiet ? 1 : fail("control socket", MAILD_ERR_IO);
  }
  while (got < cap - 1 && (n = read(fd, reply + got, cap - 1 - got)) > 0)
    got += (size_t)n;
  close(fd);
  reply[got] = '\0';
  if (strncmp(reply, "ok", 2) == 0)
    return 0;
  if (!quiet)
    fprintf(stderr, "maildctl: %s", got ? reply : "no answer\n");
  return 1;
}

/* A command for the running daemon. One that names a message is checked
   against the spool first: the daemon may not have every queued message
   in memory, so only the spool can say that one is not queued. */
static int queue_control(const maild_config *cfg, const char *cmd,
                         const char *id) {
  char reply[256];
  queue_walk w;
  uint64_t due;
  int rc;

  if (id != NULL && strcmp(cmd, "delete") != 0) {
    if (!maild__spool_id_valid(id)) {
      fprintf(stderr, "maildctl: error: '%s' is not a queue id\n", id);
      return 1;
    }
    if (walk_open(&w, cfg) != 0)
      return 1;
    rc = maild__spool_due(w.sp, id, &due);
    maild__spool_close(w.sp);
    if (rc == MAILD_ERR_NOT_FOUND) {
      fprintf(stderr, "maildctl: error: %s is not in the queue\n", id);
      return 1;
    }
  }
  return ask_daemon(cfg, cmd, id, reply, sizeof(reply), 0);
}

static int queue_cmd(const maild_config *cfg, int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : NULL;

  if (sub == NULL)
    return queue_summary(cfg);
  if (strcmp(sub, "list") == 0 && argc == 1)
    return queue_list(cfg, 0);
  if (strcmp(sub, "list") == 0 && argc == 2 && strcmp(argv[1], "--json") == 0)
    return queue_list(cfg, 1);
  if (strcmp(sub, "show") == 0 && argc == 2)
    return queue_show(cfg, argv[1]);
  if (strcmp(sub, "retry") == 0 && argc <= 2)
    return queue_control(cfg, sub, argc == 2 ? argv[1] : NULL);
  if ((strcmp(sub, "hold") == 0 || strcmp(sub, "release") == 0 ||
       strcmp(sub, "delete") == 0) &&
      argc == 2)
    return queue_control(cfg, sub, argv[1]);
  return usage();
}

int main(int argc, char **argv) {
  const char *path = NULL;
  char err[1024];
  maild_config cfg;
  int c, rc;

  while ((c = getopt(argc, argv, "+f:h")) != -1) {
    if (c == 'f')
      path = optarg;
    else
      return usage();
  }
  if (optind >= argc ||
      (strcmp(argv[optind], "user") != 0 && strcmp(argv[optind], "queue") != 0))
    return usage();
  if (maild_config_defaults(&cfg) != 0 ||
      (path != NULL && maild_config_load(&cfg, path, err, sizeof(err)) != 0)) {
    fprintf(stderr, "maildctl: %s\n", path ? err : "out of memory");
    return 1;
  }
  if (strcmp(argv[optind], "queue") == 0)
    rc = queue_cmd(&cfg, argc - optind - 1, argv + optind + 1);
  else
    rc = user_cmd(&cfg, argc - optind - 1, argv + optind + 1);
  maild_config_free(&cfg);
  return rc;
}
