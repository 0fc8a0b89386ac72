/*
 * Delivery status notifications: RFC 3464 multipart/report messages from
 * MAILER-DAEMON (bounces, delay warnings and, for NOTIFY=SUCCESS, success
 * reports), built by a pure function so they are tested byte for byte. The
 * runtime sends them with the null reverse-path, so a bounce is never bounced
 * (RFC 5321 4.5.5).
 *
 * Layout: a human-readable part (what failed and what the remote server
 * said), the message/delivery-status part (per-message then per-recipient
 * fields), and the original message's header section (text/rfc822-headers,
 * RET=HDRS) or the whole message (message/rfc822, RET=FULL).
 */
#ifndef MAILD_QUEUE_DSN_H
#define MAILD_QUEUE_DSN_H

#include "maild/common.h"

struct maild_buf;

typedef struct maild_dsn_rcpt {
  const char *addr;  /* Final-Recipient */
  const char *orcpt; /* Original-Recipient address, or "" */
  /* "failed", "delayed", or "delivered"/"relayed" (success); one kind
     per report: the first recipient's sets the text. */
  const char *action;
  const char *status;     /* enhanced code, "5.1.1" */
  const char *remote_mta; /* "[192.0.2.1]:25", or "" when none answered */
  const char *diag;       /* the reply ("550 5.1.1 No such user"), or "" */
} maild_dsn_rcpt;

typedef struct maild_dsn {
  const char *hostname; /* this server: Reporting-MTA, From domain */
  const char *id;       /* the original message's queue id */
  const char *to;       /* the original sender */
  const char *envid;    /* the original's ENVID (RFC 3461), or NULL */
  int64_t arrival;      /* the original's arrival, seconds since the epoch */
  int64_t now;          /* the bounce's Date */
  int full;             /* 1: the whole message (RET=FULL), 0: headers */
  const maild_dsn_rcpt *rcpts;
  size_t nrcpts;
  /* The original message as stored (without Return-Path): all of it with
     `full`, else at least its header section (more is ignored). */
  const uint8_t *original;
  size_t original_len;
} maild_dsn;

/*
 * Appends the notification (headers and body, CRLF line ends) to `out`.
 * Control octets and line ends in the remote text are replaced, so a
 * server cannot inject fields. Returns 0, MAILD_ERR_INVAL (no recipient or
 * a NULL field), MAILD_ERR_LIMIT or MAILD_ERR_NOMEM.
 */
int maild__dsn_build(const maild_dsn *d, struct maild_buf *out,
                     const maild_mem *mem);

/* Octets of the header section of `msg` (through the empty line, or all of
   it when there is none). */
size_t maild__dsn_header_len(const uint8_t *msg, size_t len);

#endif
