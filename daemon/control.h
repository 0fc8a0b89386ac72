/*
 * The daemon's control socket: <data-dir>/control, a Unix stream socket
 * (mode 0600) on which maildctl sends one command line and reads the
 * answer, so queue changes take effect in the running daemon at once.
 *
 *   retry [ID]      try queued messages now (all, or one)
 *   hold ID         do not try a message until released
 *   release ID      try a held message now
 *   delete ID       remove a message from the queue
 *   stats           the queue in memory: "ok in-memory=N active=N
 *                   window=N outside=0|1" (maild_queue_stats)
 *
 * The answer is one line: "ok" (stats: with its figures) or
 * "error: REASON".
 */
#ifndef MAILD_DAEMON_CONTROL_H
#define MAILD_DAEMON_CONTROL_H

#include <uv.h>

#include "maild/server.h"

#define MAILD_CONTROL_LINE_MAX 256

typedef struct maild_control maild_control;

/* Runs one command line against `srv`; writes the answer (with its line
   end) to `reply`. */
void maild_control_run(maild_server *srv, const char *line, char *reply,
                       size_t cap);

/* Listens on `path` (an old socket there is replaced). Returns 0 or a
   maild error. */
int maild_control_start(maild_control **out, uv_loop_t *loop, const char *path,
                        maild_server *srv);

/* Stops listening and removes the socket; the memory goes once libuv has
   closed the handles. NULL is a no-op. */
void maild_control_stop(maild_control *c);

#endif
