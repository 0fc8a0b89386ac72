/*
 * maildctl: manage a maild site from the command line.
 *
 *   maildctl [-f FILE] user add ADDRESS [--password-stdin | --no-password]
 *   maildctl [-f FILE] user passwd ADDRESS [--password-stdin]
 *   maildctl [-f FILE] user del ADDRESS
 *   maildctl [-f FILE] user list
 *   maildctl [-f FILE] queue list
 *
 * It edits the users file named by the configuration (atomically: a new
 * file is written, synced and renamed into place), then asks a running
 * maild to reload (SIGHUP to the pid in <data-dir>/maild.pid). A password
 * comes from the terminal (asked twice, not echoed) or, for scripts, as
 * one line on standard input with --password-stdin.
 */
#include "config.h"
#include "site.h"

#include "maild/error.h"
#include "maild/users.h"
#include "queue/spool.h"

#include <dirent.h>
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
          "       maildctl [-f FILE] queue list\n");
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

/* Lists the messages waiting in the spool, mailq style: id, size,
   arrival, sender, then each recipient still pending. Reads the spool's
   committed envelopes only; changes nothing. */
static int queue_list(const maild_config *cfg) {
  char dir[4096], when[32];
  maild_spool *sp;
  maild_envelope *env;
  struct dirent *e;
  size_t i, n = 0;
  DIR *d;
  int rc;

  snprintf(dir, sizeof(dir), "%s/spool", cfg->data_dir);
  rc = maild__spool_open(&sp, dir, NULL, NULL);
  if (rc != 0)
    return fail(dir, rc);
  snprintf(dir, sizeof(dir), "%s/spool/queue", cfg->data_dir);
  d = opendir(dir);
  while (d != NULL && (e = readdir(d)) != NULL) {
    char id[MAILD_SPOOL_ID_LEN + 1];
    size_t len = strlen(e->d_name);
    time_t t;
    if (len != MAILD_SPOOL_ID_LEN + 4 ||
        strcmp(e->d_name + MAILD_SPOOL_ID_LEN, ".env") != 0)
      continue;
    memcpy(id, e->d_name, MAILD_SPOOL_ID_LEN);
    id[MAILD_SPOOL_ID_LEN] = '\0';
    if (maild__spool_load(sp, id, &env) != 0)
      continue; /* removed meanwhile, or not ours to judge */
    t = (time_t)(env->arrival_usec / 1000000);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", gmtime(&t));
    printf("%s %8llu %s UTC <%s>\n", env->id, (unsigned long long)env->msg_size,
           when, env->sender);
    for (i = 0; i < env->nrcpt; i++) {
      if (env->rcpt[i].state == MAILD_RCPT_PENDING)
        printf("    <%s>\n", env->rcpt[i].addr);
    }
    maild__spool_envelope_free(sp, env);
    n++;
  }
  if (d != NULL)
    closedir(d);
  maild__spool_close(sp);
  printf("-- %zu message%s in the queue\n", n, n == 1 ? "" : "s");
  return 0;
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
    rc = argc - optind == 2 && strcmp(argv[optind + 1], "list") == 0
             ? queue_list(&cfg)
             : usage();
  else
    rc = user_cmd(&cfg, argc - optind - 1, argv + optind + 1);
  maild_config_free(&cfg);
  return rc;
}
