/* Bounces: RFC 3464 delivery status notifications (see dsn.h). */
#include "queue/dsn.h"

#include "core/ascii.h"
#include "core/buf.h"
#include "core/date.h"
#include "maild/error.h"

#include <stdio.h>
#include <string.h>

typedef struct out {
  maild_buf *b;
  const maild_mem *mem;
  int err;
} out;

static void add(out *o, const void *p, size_t n) {
  if (o->err == 0 && n > 0)
    o->err = maild__buf_append(o->b, o->mem, p, n);
}

static void adds(out *o, const char *s) {
  add(o, s, strlen(s));
}

/* Text from a peer or the envelope, one line, printable ASCII only. */
static void add_safe(out *o, const char *s, size_t max) {
  size_t i;

  for (i = 0; s[i] != '\0' && i < max; i++) {
    unsigned char c = (unsigned char)s[i];
    char ch = c == '\n'                              ? ' '
              : (maild__ascii_is_ctl(c) || c > 0x7e) ? '?'
                                                     : (char)c;
    add(o, &ch, 1);
  }
}

size_t maild__dsn_header_len(const uint8_t *msg, size_t len) {
  size_t i;

  for (i = 0; i < len; i++) {
    if (msg[i] != '\n')
      continue;
    if (i + 1 < len && msg[i + 1] == '\n')
      return i + 2;
    if (i + 2 < len && msg[i + 1] == '\r' && msg[i + 2] == '\n')
      return i + 3;
  }
  return len;
}

/* The original, with every line end CRLF. */
static void add_original(out *o, const uint8_t *p, size_t n) {
  size_t i, start = 0;

  for (i = 0; i < n; i++) {
    if (p[i] != '\n' && p[i] != '\r')
      continue;
    add(o, p + start, i - start);
    add(o, "\r\n", 2);
    if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
      i++;
    start = i + 1;
  }
  add(o, p + start, n - start);
  if (start < n)
    add(o, "\r\n", 2);
}

enum { KIND_FAILED, KIND_DELAYED, KIND_SUCCESS };

static const struct {
  const char *subject, *text, *original;
} kinds[] = {
    [KIND_FAILED] = {"Undelivered Mail Returned to Sender",
                     "I'm sorry to have to inform you that your message could "
                     "not\r\nbe delivered to one or more recipients.\r\n\r\n",
                     "Undelivered Message"},
    [KIND_DELAYED] = {"Delayed Mail (still being retried)",
                      "Your message could not be delivered yet to the "
                      "recipients\r\nbelow. The mail system will keep trying; "
                      "you do not need to\r\nsend it again.\r\n\r\n",
                      "Undelivered Message"},
    [KIND_SUCCESS] = {"Successful Mail Delivery Report",
                      "Your message was successfully delivered to the "
                      "destinations\r\nlisted below. Where it was relayed "
                      "to a system that does not\r\nsend delivery reports, "
                      "you may still hear of errors from\r\nthere.\r\n\r\n",
                      "Delivered Message"},
};

static int kind_of(const char *action) {
  if (strcmp(action, "delayed") == 0)
    return KIND_DELAYED;
  if (strcmp(action, "delivered") == 0 || strcmp(action, "relayed") == 0 ||
      strcmp(action, "expanded") == 0)
    return KIND_SUCCESS;
  return KIND_FAILED;
}

int maild__dsn_build(const maild_dsn *d, maild_buf *out_buf,
                     const maild_mem *mem) {
  out o = {out_buf, mem, 0};
  char date[MAILD_DATE_SIZE], line[600];
  size_t i, before = maild__buf_used(out_buf);
  int kind;

  if (d == NULL || d->nrcpts == 0 || d->rcpts == NULL || d->hostname == NULL ||
      d->id == NULL || d->to == NULL ||
      (d->original == NULL && d->original_len))
    return MAILD_ERR_INVAL;
  for (i = 0; i < d->nrcpts; i++)
    if (d->rcpts[i].addr == NULL || d->rcpts[i].orcpt == NULL ||
        d->rcpts[i].action == NULL || d->rcpts[i].status == NULL ||
        d->rcpts[i].remote_mta == NULL || d->rcpts[i].diag == NULL)
      return MAILD_ERR_INVAL;
  kind = kind_of(d->rcpts[0].action);
  maild__date_format(date, d->now);
  adds(&o, "From: Mail Delivery System <MAILER-DAEMON@");
  add_safe(&o, d->hostname, 255);
  adds(&o, ">\r\nTo: <");
  add_safe(&o, d->to, 512);
  adds(&o, ">\r\nSubject: ");
  adds(&o, kinds[kind].subject);
  adds(&o, "\r\nDate: ");
  adds(&o, date);
  adds(&o, "\r\nMessage-ID: <");
  add_safe(&o, d->id, 64);
  adds(&o, ".dsn@");
  add_safe(&o, d->hostname, 255);
  adds(&o, ">\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status;\r\n"
           "\tboundary=\"");
  snprintf(line, sizeof(line), "%.64s.dsn", d->id);
  adds(&o, line);
  adds(&o, "\"\r\n\r\nThis is a MIME-encapsulated message.\r\n\r\n--");
  adds(&o, line);
  adds(&o, "\r\nContent-Description: Notification\r\n"
           "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
           "This is the mail system at host ");
  add_safe(&o, d->hostname, 255);
  adds(&o, ".\r\n\r\n");
  adds(&o, kinds[kind].text);
  for (i = 0; i < d->nrcpts; i++) {
    const maild_dsn_rcpt *r = &d->rcpts[i];
    adds(&o, "<");
    add_safe(&o, r->addr, 512);
    adds(&o, ">: ");
    if (r->remote_mta[0] != '\0') {
      adds(&o, "host ");
      add_safe(&o, r->remote_mta, 128);
      adds(&o, " said: ");
    }
    add_safe(&o, r->diag[0] ? r->diag : r->status, 500);
    adds(&o, "\r\n\r\n");
  }
  adds(&o, "--");
  adds(&o, line);
  adds(&o, "\r\nContent-Description: Delivery report\r\n"
           "Content-Type: message/delivery-status\r\n\r\n");
  if (d->envid != NULL && d->envid[0] != '\0') {
    adds(&o, "Original-Envelope-Id: ");
    add_safe(&o, d->envid, 100);
    adds(&o, "\r\n");
  }
  adds(&o, "Reporting-MTA: dns; ");
  add_safe(&o, d->hostname, 255);
  adds(&o, "\r\nX-Maild-Queue-ID: ");
  add_safe(&o, d->id, 64);
  maild__date_format(date, d->arrival);
  adds(&o, "\r\nArrival-Date: ");
  adds(&o, date);
  adds(&o, "\r\n");
  for (i = 0; i < d->nrcpts; i++) {
    const maild_dsn_rcpt *r = &d->rcpts[i];
    adds(&o, "\r\nFinal-Recipient: rfc822; ");
    add_safe(&o, r->addr, 512);
    if (r->orcpt[0] != '\0') {
      adds(&o, "\r\nOriginal-Recipient: rfc822; ");
      add_safe(&o, r->orcpt, 512);
    }
    adds(&o, "\r\nAction: ");
    add_safe(&o, r->action, 16);
    adds(&o, "\r\nStatus: ");
    add_safe(&o, r->status, 16);
    if (r->remote_mta[0] != '\0') {
      adds(&o, "\r\nRemote-MTA: dns; ");
      add_safe(&o, r->remote_mta, 128);
    }
    if (r->diag[0] != '\0') {
      adds(&o, "\r\nDiagnostic-Code: smtp; ");
      add_safe(&o, r->diag, 500);
    }
    adds(&o, "\r\n");
  }
  adds(&o, "\r\n--");
  adds(&o, line);
  adds(&o, "\r\nContent-Description: ");
  adds(&o, kinds[kind].original);
  if (d->full) {
    adds(&o, "\r\nContent-Type: message/rfc822\r\n\r\n");
    add_original(&o, d->original, d->original_len);
  } else {
    adds(&o, " Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n");
    add_original(&o, d->original,
                 maild__dsn_header_len(d->original, d->original_len));
  }
  adds(&o, "\r\n--");
  adds(&o, line);
  adds(&o, "--\r\n");
  if (o.err != 0) {
    out_buf->len = out_buf->off + before; /* drop the partial text */
    return o.err;
  }
  return 0;
}
