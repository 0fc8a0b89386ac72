/*
 * Embedding the maild server in a libuv program: SMTP on 127.0.0.1, mail
 * for any address stored in Maildirs under DIR/mail, spool in DIR/spool.
 *
 *   embed_server [DIR [PORT]]      (PORT 0: any free port)
 *   swaks --server 127.0.0.1:2525 --to alice@example.org
 *   ls DIR/mail/example.org/alice/new/
 *
 * Ctrl-C shuts down gracefully. Everything else the server needs runs on
 * the loop you give it; blocking file work goes to libuv's worker pool.
 */
#include <maild/maild.h>
#include <maild/server.h>
#include <maild/store.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static void on_log(maild_server *srv, maild_log_level level, const char *line,
                   void *ud) {
  (void)srv, (void)level, (void)ud;
  fprintf(stderr, "%s\n", line);
}

static void on_closed(maild_server *srv, void *ud) {
  (void)srv, (void)ud;
}

static void on_signal(uv_signal_t *sig, int signum) {
  (void)signum;
  maild_server_close(sig->data, on_closed);
  uv_close((uv_handle_t *)sig, NULL);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "embed-data";
  int port = argc > 2 ? atoi(argv[2]) : 2525;
  char mail[4096], spool[4096];
  maild_server_callbacks cb = {.on_log = on_log};
  uv_loop_t *loop = uv_default_loop();
  maild_store *store;
  maild_server *srv;
  uv_signal_t sig;

  snprintf(mail, sizeof(mail), "%s/mail", dir);
  snprintf(spool, sizeof(spool), "%s/spool", dir);
  mkdir(dir, 0700);
  mkdir(mail, 0700);
  if (maild_store_maildir_new(&store, mail, NULL, NULL) != 0 ||
      maild_server_new(&srv, loop, &cb, NULL, NULL, NULL) != 0 ||
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
