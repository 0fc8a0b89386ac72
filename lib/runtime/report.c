/*
 * Delivery reports the server sends (RFC 3464, queue/dsn.h): bounces for
 * recipients that failed for good, and success reports for recipients
 * whose sender asked NOTIFY=SUCCESS (RFC 3461 5.2.2: "delivered" into a
 * mailbox here, "relayed" to a server that does not report itself,
 * "expanded" for an alias of several targets).
 *
 * A report is built on the worker pool, while the original's spool file is
 * open (its header section, or all of it with RET=FULL), and sent on the
 * loop once the results it reports are on record, as a new message from
 * the null sender, so a report is never reported on (RFC 5321 4.5.5).
 */
#include "runtime/server_int.h"

#include "core/mem.h"
#include "maild/error.h"
#include "queue/dsn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FULL_MAX    (1024u * 1024u) /* RET=FULL up to this, else headers */
#define HEADERS_MAX (64u * 1024u)   /* header section read for a report */

int maild__report_build(maild_server *srv, const maild_report *rep,
                        maild_buf *out) {
  uint64_t body = rep->msg_size - rep->return_path_len;
  int full = rep->ret_full && body <= FULL_MAX;
  size_t want = full ? (size_t)body : HEADERS_MAX;
  maild_dsn dsn;
  uint8_t *orig;
  ssize_t got;
  uv_timeval64_t tv;
  int rc;

  if (rep->nrcpts == 0 || rep->sender[0] == '\0')
    return 0;
  if (rep->msg_size < rep->return_path_len)
    return MAILD_ERR_INVAL;
  if (want > body)
    want = (size_t)body;
  orig = maild__malloc(&srv->mem, want + 1);
  if (orig == NULL)
    return MAILD_ERR_NOMEM;
  do
    got = pread(rep->fd, orig, want, (off_t)rep->return_path_len);
  while (got < 0 && errno == EINTR);
  if (got < 0) {
    maild__free(&srv->mem, orig);
    return MAILD_ERR_IO;
  }
  uv_gettimeofday(&tv);
  memset(&dsn, 0, sizeof(dsn));
  dsn.hostname = srv->hostname;
  dsn.id = rep->id;
  dsn.to = rep->sender;
  dsn.envid = rep->envid;
  dsn.arrival = rep->arrival_usec / 1000000;
  dsn.now = tv.tv_sec;
  dsn.full = full;
  dsn.rcpts = rep->rcpts;
  dsn.nrcpts = rep->nrcpts;
  dsn.original = orig;
  dsn.original_len = (size_t)got;
  maild__buf_init(out, 4 * FULL_MAX);
  rc = maild__dsn_build(&dsn, out, &srv->mem);
  if (rc != 0)
    maild__buf_free(out, &srv->mem);
  maild__free(&srv->mem, orig);
  return rc;
}

static void report_committed(delivery *d, void *ud) {
  (void)ud;
  maild__delivery_log(d);
  maild__delivery_done(d);
}

void maild__report_send(maild_server *srv, const char *id, const char *sender,
                        int smtputf8, maild_buf *report, const char *what) {
  char text[MAILD_PATH_MAX * 2 + 3];
  maild_reply reply = {0, NULL, NULL};
  maild_path path;
  uv_timeval64_t tv;
  delivery *d = NULL;
  int n;

  if (maild__buf_used(report) == 0 || srv->closing || sender[0] == '\0')
    goto drop;
  n = snprintf(text, sizeof(text), "<%s>", sender);
  d = maild__delivery_new(srv);
  if (d == NULL || n <= 0 || (size_t)n >= sizeof(text) ||
      maild_path_parse(&path, text, (size_t)n, MAILD_PATH_ALLOW_UTF8) != n)
    goto fail;
  d->sender = maild__strndup(&srv->mem, "", 0);
  d->helo = maild__strndup(&srv->mem, srv->hostname, strlen(srv->hostname));
  d->peer = maild__strndup(&srv->mem, "local", 5);
  if (d->sender == NULL || d->helo == NULL || d->peer == NULL ||
      maild__rcpt_resolve(srv, &path, d, 1, &reply) != 0 || reply.code != 0 ||
      d->nrcpts == 0)
    goto fail;
  d->esmtp = 1;
  d->smtputf8 = smtputf8;
  uv_gettimeofday(&tv);
  d->arrival_usec = tv.tv_sec * 1000000 + tv.tv_usec;
  /* The report's buffer is handed over as it is. */
  d->body = *report;
  maild__buf_init(report, 0);
  d->body_size = maild__buf_used(&d->body);
  if (maild__delivery_run(d, report_committed, NULL) != 0)
    goto fail;
  maild__log(srv, MAILD_LOG_INFO, "%s: sender %s notification to <%s>", id,
             what, sender);
  return;
fail:
  maild__log(srv, MAILD_LOG_ERROR,
             "%s: cannot send the %s notification to <%s>%s%s", id, what,
             sender, reply.code ? ": " : "", reply.code ? reply.text : "");
  maild__delivery_free(d);
drop:
  maild__buf_free(report, &srv->mem);
}
