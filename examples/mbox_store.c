/*
 * A custom storage backend: every mailbox is one mbox file,
 * DIR/<domain>/<local>.mbox, in the mboxrd format (RFC 4155; "From " lines
 * in the body are quoted with '>'). It is wired into a server exactly like
 * the Maildir store in embed_server.c.
 *
 *   mbox_store [DIR [PORT]]
 *   swaks --server 127.0.0.1:2525 --to bob@example.org
 *   cat DIR/example.org/bob.mbox
 *
 * What a backend must do is in <maild/store.h>: deliver() runs on worker
 * threads, possibly several at once, returns 0 only once the message is
 * on disk, and leaves nothing behind when it fails. This one reads the
 * whole message into memory to keep the example short.
 */
#define _DEFAULT_SOURCE /* flock(2) */
#include <maild/maild.h>
#include <maild/server.h>
#include <maild/store.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The envelope sender, from the Return-Path line the server put first;
   "MAILER-DAEMON" for the null sender (RFC 4155 asks for the sender). */
static void sender_of(const char *msg, size_t len, char *out, size_t size) {
  const char *lt = memchr(msg, '<', len < 1024 ? len : 1024);
  const char *gt = lt ? memchr(lt, '>', (size_t)(msg + len - lt)) : NULL;
  size_t n = lt && gt ? (size_t)(gt - lt - 1) : 0;

  if (strncmp(msg, "Return-Path: <", 14) != 0 || n == 0 || n >= size ||
      memchr(lt + 1, ' ', n) != NULL) {
    snprintf(out, size, "MAILER-DAEMON");
    return;
  }
  memcpy(out, lt + 1, n);
  out[n] = '\0';
}

/* Appends `len` octets of `msg` as one mboxrd entry to `fd`. */
static int append_entry(int fd, const char *msg, size_t len) {
  time_t now = time(NULL);
  char sender[512], date[64];
  size_t i = 0;
  FILE *f = fdopen(dup(fd), "a");

  if (f == NULL)
    return -1;
  sender_of(msg, len, sender, sizeof(sender));
  strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", gmtime(&now));
  fprintf(f, "From %s %s\n", sender, date);
  while (i < len) {
    const char *eol = memchr(msg + i, '\n', len - i);
    size_t n = eol ? (size_t)(eol - (msg + i)) : len - i, q = 0;
    while (q < n && msg[i + q] == '>')
      q++;
    if (n - q >= 5 && memcmp(msg + i + q, "From ", 5) == 0)
      fputc('>', f); /* mboxrd quoting */
    fwrite(msg + i, 1, n > 0 && msg[i + n - 1] == '\r' ? n - 1 : n, f);
    fputc('\n', f);
    i += n + 1;
  }
  fputc('\n', f);
  return fclose(f) == 0 && fsync(fd) == 0 ? 0 : -1;
}

static int mbox_deliver(maild_store *st, const maild_store_message *msg,
                        const char *domain, const char *local,
                        maild_store_result *res, void *data) {
  const char *root = data;
  char path[4096], *body = NULL;
  struct stat before;
  int fd, rc = MAILD_ERR_IO;

  (void)st;
  if (strchr(local, '/') || strchr(domain, '/') || local[0] == '.' ||
      domain[0] == '.')
    return MAILD_ERR_INVAL; /* never a path outside DIR */
  snprintf(path, sizeof(path), "%s/%s", root, domain);
  mkdir(path, 0700);
  snprintf(path, sizeof(path), "%s/%s/%s.mbox", root, domain, local);
  fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || flock(fd, LOCK_EX) != 0 || fstat(fd, &before) != 0)
    goto out;
  body = malloc(msg->size + 1);
  if (body == NULL || pread(msg->fd, body, msg->size, 0) != (ssize_t)msg->size)
    goto out;
  if (append_entry(fd, body, msg->size) == 0)
    rc = 0;
  else if (ftruncate(fd, before.st_size) != 0) /* leave nothing behind */
    rc = MAILD_ERR_IO;
out:
  res->sys_errno = rc == 0 ? 0 : errno;
  free(body);
  if (fd >= 0)
    close(fd);
  return rc;
}

static const maild_store_backend mbox_backend = {
    .struct_size = sizeof(maild_store_backend),
    .name = "mbox",
    .deliver = mbox_deliver,
};

static void on_closed(maild_server *srv, void *ud) {
  (void)srv, (void)ud;
}

static void on_signal(uv_signal_t *sig, int signum) {
  (void)signum;
  maild_server_close(sig->data, on_closed);
  uv_close((uv_handle_t *)sig, NULL);
}

int main(int argc, char **argv) {
  char *dir = argc > 1 ? argv[1] : "mbox-data";
  int port = argc > 2 ? atoi(argv[2]) : 2525;
  char spool[4096];
  uv_loop_t *loop = uv_default_loop();
  maild_store *store;
  maild_server *srv;
  uv_signal_t sig;

  snprintf(spool, sizeof(spool), "%s/.spool", dir);
  mkdir(dir, 0700);
  if (maild_store_new(&store, &mbox_backend, dir, NULL, NULL) != 0 ||
      maild_server_new(&srv, loop, NULL, NULL, NULL, NULL) != 0 ||
      maild_server_set_spool(srv, spool) != 0)
    return fprintf(stderr, "cannot set up in %s\n", dir), 1;
  maild_server_set_store(srv, store);
  if (maild_server_listen(srv, MAILD_SERVICE_SMTP, "127.0.0.1", port, &port) !=
          0 ||
      maild_server_start(srv) != 0)
    return fprintf(stderr, "cannot listen on port %d\n", port), 1;
  printf("listening on 127.0.0.1:%d\n", port);
  fflush(stdout);
  uv_signal_init(loop, &sig);
  sig.data = srv;
  uv_signal_start(&sig, on_signal, SIGINT);
  uv_run(loop, UV_RUN_DEFAULT);
  maild_store_del(store);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
