/* The control socket (see control.h). */
#include "control.h"

#include "maild/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct maild_control {
  uv_pipe_t pipe;
  maild_server *srv;
  char path[256];
};

typedef struct client {
  uv_pipe_t pipe;
  maild_control *ctl;
  char line[MAILD_CONTROL_LINE_MAX + 1];
  size_t len;
  uv_write_t wreq;
  char reply[MAILD_CONTROL_LINE_MAX];
  int answered;
} client;

void maild_control_run(maild_server *srv, const char *line, char *reply,
                       size_t cap) {
  char cmd[32] = "", id[64] = "", extra[8] = "";
  int n = sscanf(line, "%31s %63s %7s", cmd, id, extra), rc;

  if (n < 1 || n > 2) {
    snprintf(reply, cap,
             "error: usage: retry [ID] | hold ID | release ID | "
             "delete ID | stats\n");
    return;
  }
  if (n == 1 && strcmp(cmd, "stats") == 0) {
    maild_queue_stats st;
    rc = maild_server_queue_stats(srv, &st);
    if (rc == 0)
      snprintf(reply, cap,
               "ok in-memory=%zu active=%zu window=%zu outside=%d\n",
               st.in_memory, st.active, st.window, st.outside);
    else
      snprintf(reply, cap, "error: %s\n", maild_strerror(rc));
    return;
  }
  if (strcmp(cmd, "retry") == 0)
    rc = maild_server_queue_retry(srv, n == 2 ? id : NULL);
  else if (n == 2 && strcmp(cmd, "hold") == 0)
    rc = maild_server_queue_hold(srv, id);
  else if (n == 2 && strcmp(cmd, "release") == 0)
    rc = maild_server_queue_release(srv, id);
  else if (n == 2 && strcmp(cmd, "delete") == 0)
    rc = maild_server_queue_delete(srv, id);
  else {
    snprintf(reply, cap, "error: unknown command '%s'\n", cmd);
    return;
  }
  if (rc == 0)
    snprintf(reply, cap, "ok\n");
  else if (rc == MAILD_ERR_NOT_FOUND)
    snprintf(reply, cap, "error: %s is not in the queue\n", id);
  else if (rc == MAILD_ERR_INVAL)
    snprintf(reply, cap, "error: '%s' is not a queue id\n", id);
  else
    snprintf(reply, cap, "error: %s\n", maild_strerror(rc));
}

static void on_client_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_written(uv_write_t *req, int status) {
  client *cl = req->data;

  (void)status;
  uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  client *cl = h->data;

  (void)hint;
  buf->base = cl->line + cl->len;
  buf->len = MAILD_CONTROL_LINE_MAX - cl->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  client *cl = s->data;
  char *nl;
  uv_buf_t b;

  (void)buf;
  if (cl->answered)
    return;
  if (n < 0 || (n == 0 && cl->len == MAILD_CONTROL_LINE_MAX)) {
    uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
    return;
  }
  cl->len += (size_t)n;
  cl->line[cl->len] = '\0';
  nl = strchr(cl->line, '\n');
  if (nl == NULL && cl->len < MAILD_CONTROL_LINE_MAX)
    return; /* more to come */
  if (nl != NULL)
    *nl = '\0';
  cl->answered = 1;
  uv_read_stop(s);
  if (nl == NULL)
    snprintf(cl->reply, sizeof(cl->reply), "error: line too long\n");
  else
    maild_control_run(cl->ctl->srv, cl->line, cl->reply, sizeof(cl->reply));
  b = uv_buf_init(cl->reply, (unsigned)strlen(cl->reply));
  cl->wreq.data = cl;
  if (uv_write(&cl->wreq, s, &b, 1, on_written) != 0)
    uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
}

static void on_connection(uv_stream_t *server, int status) {
  maild_control *ctl = server->data;
  client *cl;

  if (status != 0)
    return;
  cl = calloc(1, sizeof(*cl));
  if (cl == NULL)
    return;
  cl->ctl = ctl;
  uv_pipe_init(server->loop, &cl->pipe, 0);
  cl->pipe.data = cl;
  if (uv_accept(server, (uv_stream_t *)&cl->pipe) != 0 ||
      uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) != 0)
    uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
}

int maild_control_start(maild_control **out, uv_loop_t *loop, const char *path,
                        maild_server *srv) {
  maild_control *c;
  mode_t old;
  int rc;

  if (strlen(path) >= sizeof(c->path))
    return MAILD_ERR_TOO_LONG;
  c = calloc(1, sizeof(*c));
  if (c == NULL)
    return MAILD_ERR_NOMEM;
  c->srv = srv;
  snprintf(c->path, sizeof(c->path), "%s", path);
  uv_pipe_init(loop, &c->pipe, 0);
  c->pipe.data = c;
  unlink(path); /* a socket left by a daemon that did not stop cleanly */
  old = umask(077);
  rc = uv_pipe_bind(&c->pipe, path);
  umask(old);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&c->pipe, 16, on_connection);
  if (rc != 0) {
    uv_close((uv_handle_t *)&c->pipe, on_client_closed);
    return MAILD_ERR_IO;
  }
  *out = c;
  return 0;
}

void maild_control_stop(maild_control *c) {
  if (c == NULL)
    return;
  unlink(c->path);
  uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}
