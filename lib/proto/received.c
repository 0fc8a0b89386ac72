/*
 * Received: header formatting (RFC 5321 4.4, RFC 5322 3.6.7). Only the
 * HELO name and the recipient come from the client; the HELO is filtered
 * to domain characters and cut to 255 octets, and the recipient was
 * already parsed as a path, so the header is always one well-formed field.
 */
#include "proto/received.h"

#include "core/date.h"

#include <string.h>
#include <time.h>

typedef struct out {
  char *p;
  size_t cap, len;
} out;

static void add(out *o, const char *s, size_t n) {
  if (o->len < o->cap) {
    size_t k = o->cap - o->len < n ? o->cap - o->len : n;
    memcpy(o->p + o->len, s, k);
  }
  o->len += n;
}

static void adds(out *o, const char *s) {
  add(o, s, strlen(s));
}

static int helo_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
         c == ':' || c == '[' || c == ']';
}

static void add_helo(out *o, const char *helo) {
  size_t i;

  if (helo == NULL || helo[0] == '\0') {
    adds(o, "unknown");
    return;
  }
  for (i = 0; helo[i] != '\0' && i < 255; i++) {
    char c = helo_char((unsigned char)helo[i]) ? helo[i] : '?';
    add(o, &c, 1);
  }
}

static void add_date(out *o, int64_t t) {
  char buf[MAILD_DATE_SIZE];

  add(o, buf, maild__date_format(buf, t));
}

const char *maild__received_protocol(int esmtp, int tls, int auth,
                                     int smtputf8) {
  static const char *const names[] = {"ESMTP",     "ESMTPA",    "ESMTPS",
                                      "ESMTPSA",   "UTF8SMTP",  "UTF8SMTPA",
                                      "UTF8SMTPS", "UTF8SMTPSA"};

  if (!esmtp)
    return "SMTP";
  return names[(smtputf8 ? 4 : 0) + (tls ? 2 : 0) + (auth ? 1 : 0)];
}

size_t maild__received_format(char *dst, size_t cap,
                              const maild_received_info *ri) {
  out o = {dst, cap, 0};
  const char *addr = ri->client_addr != NULL ? ri->client_addr : "";

  adds(&o, "Received: from ");
  add_helo(&o, ri->helo);
  adds(&o, strchr(addr, ':') != NULL ? " ([IPv6:" : " ([");
  adds(&o, addr);
  adds(&o, "])\r\n\tby ");
  adds(&o, ri->hostname);
  adds(&o, " (maild) with ");
  adds(&o,
       maild__received_protocol(ri->esmtp, ri->tls, ri->auth, ri->smtputf8));
  adds(&o, " id ");
  adds(&o, ri->id);
  if (ri->tls_info != NULL && ri->tls_info[0] != '\0') {
    adds(&o, "\r\n\t(using ");
    adds(&o, ri->tls_info);
    adds(&o, ")");
  }
  if (ri->for_rcpt != NULL) {
    adds(&o, "\r\n\tfor <");
    adds(&o, ri->for_rcpt);
    adds(&o, ">");
  }
  adds(&o, ";\r\n\t");
  add_date(&o, ri->time);
  adds(&o, "\r\n");
  return o.len;
}
