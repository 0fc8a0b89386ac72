/*
 * The Received: trace header a receiving server adds (RFC 5321 4.4), with
 * the protocol keywords of RFC 3848 and RFC 6531. A pure function: the
 * caller supplies the time, so it is testable byte for byte.
 */
#ifndef MAILD_PROTO_RECEIVED_H
#define MAILD_PROTO_RECEIVED_H

#include "maild/common.h"

typedef struct maild_received_info {
  const char *helo;        /* as the client sent it; NULL: "unknown" */
  const char *client_addr; /* "192.0.2.1" or "2001:db8::1" */
  const char *hostname;    /* this server */
  const char *id;          /* queue id */
  const char *for_rcpt;    /* the one recipient, or NULL (several) */
  const char *tls_info;    /* "TLSv1.2 cipher ..." or NULL */
  int64_t time;            /* seconds since the epoch, UTC */
  int esmtp, tls, auth, smtputf8;
} maild_received_info;

/* The "with" keyword: SMTP, ESMTP, ESMTPA, ESMTPS, ESMTPSA, UTF8SMTP… */
const char *maild__received_protocol(int esmtp, int tls, int auth,
                                     int smtputf8);

/*
 * Formats the header, folded, ending in CRLF, like snprintf: writes at most
 * `cap` octets and returns the length needed. The HELO name is reduced to
 * the characters a domain or address literal may hold (others become
 * '?'), so a client cannot inject header text.
 */
size_t maild__received_format(char *out, size_t cap,
                              const maild_received_info *ri);

#endif
