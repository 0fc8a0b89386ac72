/*
 * TLS sessions over memory buffers (see tls.h). mbedTLS moves records
 * through two callbacks (mbedtls_ssl_set_bio) that take ciphertext from
 * `in` and append ciphertext to `out`, both bounded buffers; "nothing
 * buffered" and "no room" become WANT_READ and WANT_WRITE, so the backend
 * never blocks and never holds more than its own two record buffers. The
 * backend pulls exactly the octets of the record it is parsing, so what
 * follows the handshake stays in `in` for maild__tls_read().
 *
 * Application writes are sized before they reach the backend so that a
 * whole record always fits in `out`: after WANT_WRITE mbedTLS requires the
 * same write to be repeated, which a caller handing in fresh engine output
 * cannot promise. `out` keeps a little room beyond what writes may use, so
 * alerts and close_notify fit even when application data filled it.
 *
 * Failures are sticky: once the backend reports a fatal error the session
 * answers every call with the same code and a one-line reason, as mbedTLS
 * forbids further use of the context.
 */
#include "io/tls.h"

#include "core/buf.h"
#include "core/mem.h"
#include "maild/error.h"

#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_internal.h> /* mbedtls_ssl_flush_output() */
#include <mbedtls/x509_crt.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Room kept in `out` beyond what application writes may fill, for alerts
   and close_notify (each well under 100 octets). */
#define OUT_RESERVE 1024u

struct maild_tls {
  mbedtls_ssl_context ssl;
  maild_tls_config *cfg;
  maild_mem mem;
  maild_buf in;  /* ciphertext from the peer, not yet taken by mbedTLS */
  maild_buf out; /* ciphertext for the peer */
  int handshake_done;
  int peer_closed; /* close_notify received */
  int closing;     /* close_notify queued by us */
  int fail;        /* 0, or the code every later call returns */
  int nomem;       /* `out` failed to grow inside a backend callback */
  int first_octet; /* the first octet the peer sent, -1 before any */
  int resumed;     /* the handshake resumed an earlier session */
  char error[MAILD__TLS_TEXT_MAX];
  char info[MAILD__TLS_TEXT_MAX];
};

static int bio_send(void *ctx, const unsigned char *buf, size_t len) {
  maild_tls *t = ctx;
  size_t room = t->out.max - maild__buf_used(&t->out);

  if (room == 0)
    return MBEDTLS_ERR_SSL_WANT_WRITE;
  if (len > room)
    len = room;
  if (maild__buf_append(&t->out, &t->mem, buf, len) != 0) {
    t->nomem = 1;
    return MBEDTLS_ERR_SSL_ALLOC_FAILED;
  }
  return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len) {
  maild_tls *t = ctx;
  size_t used = maild__buf_used(&t->in);

  if (used == 0)
    return MBEDTLS_ERR_SSL_WANT_READ;
  if (len > used)
    len = used;
  memcpy(buf, maild__buf_peek(&t->in), len);
  maild__buf_consume(&t->in, len);
  return (int)len;
}

static const char *alert_name(unsigned desc) {
  switch (desc) {
  case MBEDTLS_SSL_ALERT_MSG_UNEXPECTED_MESSAGE:
    return "unexpected message";
  case MBEDTLS_SSL_ALERT_MSG_BAD_RECORD_MAC:
    return "bad record MAC";
  case MBEDTLS_SSL_ALERT_MSG_RECORD_OVERFLOW:
    return "record overflow";
  case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE:
    return "handshake failure";
  case MBEDTLS_SSL_ALERT_MSG_BAD_CERT:
    return "bad certificate";
  case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT:
    return "unsupported certificate";
  case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED:
    return "certificate revoked";
  case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
    return "certificate expired";
  case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN:
    return "certificate unknown";
  case MBEDTLS_SSL_ALERT_MSG_ILLEGAL_PARAMETER:
    return "illegal parameter";
  case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
    return "unknown CA";
  case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED:
    return "access denied";
  case MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR:
    return "decode error";
  case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR:
    return "decrypt error";
  case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION:
    return "protocol version";
  case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY:
    return "insufficient security";
  case MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR:
    return "internal error";
  case MBEDTLS_SSL_ALERT_MSG_INAPROPRIATE_FALLBACK:
    return "inappropriate fallback";
  case MBEDTLS_SSL_ALERT_MSG_USER_CANCELED:
    return "user canceled";
  case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME:
    return "unrecognized name";
  default:
    return NULL;
  }
}

/* The main reason a certificate was refused, from the backend's flags. */
static const char *verify_reason(uint32_t flags) {
  if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
    return "name mismatch";
  if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
    return "expired";
  if (flags & MBEDTLS_X509_BADCERT_FUTURE)
    return "not yet valid";
  if (flags & MBEDTLS_X509_BADCERT_REVOKED)
    return "revoked";
  if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
    return "not trusted";
  if (flags &
      (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
       MBEDTLS_X509_BADCERT_NS_CERT_TYPE))
    return "not valid for a TLS server";
  if (flags & (MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK |
               MBEDTLS_X509_BADCERT_BAD_KEY))
    return "weak or unsupported algorithm";
  if (flags & MBEDTLS_X509_BADCERT_MISSING)
    return "no certificate";
  return "other reason";
}

/* A record starts with its content type, 20..23 (RFC 5246 section
   6.2.1). */
static int is_content_type(int octet) {
  return octet >= MBEDTLS_SSL_MSG_CHANGE_CIPHER_SPEC &&
         octet <= MBEDTLS_SSL_MSG_APPLICATION_DATA;
}

/* Printable ASCII where a TLS record's content type belongs: the
   peer speaks a text protocol, e.g. "EHLO" on port 465 or "220" from a
   server that never started TLS. */
static int looks_plaintext(int octet) {
  return octet >= 0x20 && octet < 0x7f;
}

static void describe(maild_tls *t, int rc) {
  char eb[120];
  const char *name;

  if (!t->handshake_done && t->first_octet >= 0 &&
      !is_content_type(t->first_octet)) {
    snprintf(t->error, sizeof(t->error), "%s",
             looks_plaintext(t->first_octet)
                 ? "peer sent plaintext, not TLS"
                 : "peer sent data that is not TLS");
    return;
  }
  switch (rc) {
  case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
    snprintf(t->error, sizeof(t->error), "certificate verify failed (%s)",
             verify_reason(mbedtls_ssl_get_verify_result(&t->ssl)));
    return;
  case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
    /* mbedTLS 2.28 leaves the alert in in_msg: level, description. */
    name = t->ssl.in_msg != NULL ? alert_name(t->ssl.in_msg[1]) : NULL;
    if (name != NULL)
      snprintf(t->error, sizeof(t->error), "%s alert from peer", name);
    else
      snprintf(t->error, sizeof(t->error), "fatal alert %u from peer",
               t->ssl.in_msg != NULL ? (unsigned)t->ssl.in_msg[1] : 0u);
    return;
  case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
    snprintf(t->error, sizeof(t->error), "no shared cipher suite");
    return;
  case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
    snprintf(t->error, sizeof(t->error),
             "unsupported protocol version (TLS 1.2 required)");
    return;
  case MBEDTLS_ERR_SSL_INVALID_MAC:
    snprintf(t->error, sizeof(t->error), "bad record MAC");
    return;
  case MBEDTLS_ERR_SSL_INVALID_RECORD:
    snprintf(t->error, sizeof(t->error), "malformed or oversized record");
    return;
  case MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO:
    snprintf(t->error, sizeof(t->error), "malformed ClientHello");
    return;
  case MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO:
    snprintf(t->error, sizeof(t->error), "malformed ServerHello");
    return;
  case MBEDTLS_ERR_SSL_CA_CHAIN_REQUIRED:
    snprintf(t->error, sizeof(t->error), "no CA certificates to verify with");
    return;
  default:
    mbedtls_strerror(rc, eb, sizeof(eb));
    snprintf(t->error, sizeof(t->error), "%s", eb);
  }
}

/* Records a fatal backend error; every later call returns the same code. */
static int session_fail(maild_tls *t, int rc) {
  if (t->nomem || rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ||
      rc == MBEDTLS_ERR_X509_ALLOC_FAILED) {
    t->fail = MAILD_ERR_NOMEM;
    snprintf(t->error, sizeof(t->error), "out of memory");
  } else if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
    t->fail = MAILD_ERR_CLOSED;
    snprintf(t->error, sizeof(t->error), "peer closed during the handshake");
  } else {
    t->fail = MAILD_ERR_TLS;
    describe(t, rc);
  }
  return t->fail;
}

static void set_info(maild_tls *t) {
  const char *suite = mbedtls_ssl_get_ciphersuite(&t->ssl);
  const char *name = NULL;

  if (suite != NULL)
    name = maild__tls_suite_name(mbedtls_ssl_get_ciphersuite_id(suite));
  snprintf(t->info, sizeof(t->info), "%s with cipher %s",
           mbedtls_ssl_get_version(&t->ssl),
           name != NULL ? name : (suite != NULL ? suite : "unknown"));
}

int maild__tls_new(maild_tls **out, maild_tls_config *cfg,
                   const char *server_name, const maild_mem *mem) {
  maild_tls *t;
  maild_mem m;
  int rc;

  if (out == NULL || cfg == NULL)
    return MAILD_ERR_INVAL;
  if (maild__tls_config_is_server(cfg)
          ? server_name != NULL
          : (server_name == NULL && maild__tls_config_verifies(cfg)))
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  t = maild__calloc(&m, 1, sizeof(*t));
  if (t == NULL)
    return MAILD_ERR_NOMEM;
  t->mem = m;
  t->first_octet = -1;
  maild__buf_init(&t->in, MAILD__TLS_BUFFER_MAX);
  maild__buf_init(&t->out, MAILD__TLS_BUFFER_MAX + OUT_RESERVE);
  mbedtls_ssl_init(&t->ssl);
  rc = mbedtls_ssl_setup(&t->ssl, maild__tls_config_backend(cfg));
  if (rc == 0 && server_name != NULL)
    rc = mbedtls_ssl_set_hostname(&t->ssl, server_name);
  if (rc != 0) {
    mbedtls_ssl_free(&t->ssl);
    maild__free(&m, t);
    return rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? MAILD_ERR_NOMEM
                                              : MAILD_ERR_INVAL;
  }
  mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
  maild__tls_config_hold(cfg);
  t->cfg = cfg;
  *out = t;
  return 0;
}

void maild__tls_del(maild_tls *t) {
  maild_mem m;

  if (t == NULL)
    return;
  m = t->mem;
  mbedtls_ssl_free(&t->ssl);
  maild__tls_config_release(t->cfg);
  maild__buf_free(&t->in, &m);
  maild__buf_free(&t->out, &m);
  maild__free(&m, t);
}

size_t maild__tls_feed_room(const maild_tls *t) {
  return t->in.max - maild__buf_used(&t->in);
}

int maild__tls_feed(maild_tls *t, const uint8_t *in, size_t len) {
  int rc;

  if (len == 0)
    return 0;
  if (in == NULL)
    return MAILD_ERR_INVAL;
  if (t->fail != 0 || t->peer_closed)
    return 0;
  if (len > maild__tls_feed_room(t))
    return MAILD_ERR_LIMIT;
  rc = maild__buf_append(&t->in, &t->mem, in, len);
  if (rc == 0 && t->first_octet < 0)
    t->first_octet = in[0];
  return rc;
}

int maild__tls_handshake(maild_tls *t) {
  int rc;

  if (t->fail != 0)
    return t->fail;
  if (t->handshake_done)
    return 0;
  /* One octet tells "HELO" from a TLS record: no need to wait for five. */
  if (t->first_octet >= 0 && !is_content_type(t->first_octet))
    return session_fail(t, MBEDTLS_ERR_SSL_INVALID_RECORD);
  /* mbedtls_ssl_handshake() step by step, to see whether the peer
     resumed a session: the backend knows only while the handshake runs. */
  rc = 0;
  while (t->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
    rc = mbedtls_ssl_handshake_step(&t->ssl);
    if (t->ssl.handshake != NULL && t->ssl.handshake->resume)
      t->resumed = 1;
    if (rc != 0)
      break;
  }
  if (rc == 0) {
    t->handshake_done = 1;
    set_info(t);
    return 0;
  }
  if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
    return MAILD_ERR_AGAIN;
  return session_fail(t, rc);
}

int maild__tls_handshake_threadsafe(void) {
#if defined(MBEDTLS_THREADING_C)
  return 1;
#else
  return 0;
#endif
}

/* Pushes ciphertext the backend still holds from an earlier WANT_WRITE
   (an alert written while reading) into `out`. Returns 0, MAILD_ERR_AGAIN
   or a failure code. */
static int flush_backend(maild_tls *t) {
  int rc;

  if (t->ssl.out_left == 0)
    return 0;
  rc = mbedtls_ssl_flush_output(&t->ssl);
  if (rc == 0)
    return 0;
  if (rc == MBEDTLS_ERR_SSL_WANT_WRITE)
    return MAILD_ERR_AGAIN;
  return session_fail(t, rc);
}

maild_ssize maild__tls_read(maild_tls *t, uint8_t *out, size_t cap) {
  int rc;

  if (t->fail != 0)
    return t->fail;
  if (!t->handshake_done)
    return MAILD_ERR_STATE;
  if (out == NULL || cap == 0)
    return MAILD_ERR_INVAL;
  if (t->peer_closed)
    return 0;
  if (cap > INT_MAX)
    cap = INT_MAX;
  rc = mbedtls_ssl_read(&t->ssl, out, cap);
  if (rc > 0)
    return rc;
  if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
    t->peer_closed = 1;
    return 0;
  }
  /* 0 would mean the transport ended, which our callback never reports. */
  if (rc == 0 || rc == MBEDTLS_ERR_SSL_WANT_READ ||
      rc == MBEDTLS_ERR_SSL_WANT_WRITE)
    return MAILD_ERR_AGAIN;
  return session_fail(t, rc);
}

maild_ssize maild__tls_write(maild_tls *t, const uint8_t *in, size_t len) {
  size_t room, used, expansion, max;
  int rc;

  if (t->fail != 0)
    return t->fail;
  if (!t->handshake_done)
    return MAILD_ERR_STATE;
  if (t->closing || t->peer_closed)
    return MAILD_ERR_CLOSED;
  if (in == NULL || len == 0)
    return MAILD_ERR_INVAL;
  rc = flush_backend(t);
  if (rc != 0)
    return rc;
  rc = mbedtls_ssl_get_record_expansion(&t->ssl);
  if (rc < 0)
    return session_fail(t, rc);
  expansion = (size_t)rc;
  rc = mbedtls_ssl_get_max_out_record_payload(&t->ssl);
  if (rc <= 0)
    return session_fail(t, rc < 0 ? rc : MBEDTLS_ERR_SSL_INTERNAL_ERROR);
  max = (size_t)rc;
  used = maild__buf_used(&t->out);
  room = used < MAILD__TLS_BUFFER_MAX ? MAILD__TLS_BUFFER_MAX - used : 0;
  if (room <= expansion)
    return MAILD_ERR_AGAIN;
  if (len > room - expansion)
    len = room - expansion;
  if (len > max)
    len = max;
  rc = mbedtls_ssl_write(&t->ssl, in, len);
  if (rc >= 0)
    return rc;
  /* The record was sized to fit, so WANT_WRITE cannot happen; if it did,
     the backend would demand this exact write again. Treat it as fatal. */
  return session_fail(t, rc == MBEDTLS_ERR_SSL_WANT_WRITE
                             ? MBEDTLS_ERR_SSL_INTERNAL_ERROR
                             : rc);
}

maild_ssize maild__tls_output(maild_tls *t, const uint8_t **data) {
  size_t n = maild__buf_used(&t->out);

  *data = n > 0 ? maild__buf_peek(&t->out) : NULL;
  return (maild_ssize)n;
}

void maild__tls_consume(maild_tls *t, size_t n) {
  maild__buf_consume(&t->out, n);
}

int maild__tls_close(maild_tls *t) {
  int rc;

  if (t->fail != 0)
    return t->fail;
  if (!t->handshake_done)
    return 0;
  if (t->closing) /* queued; maybe still partly inside the backend */
    return flush_backend(t);
  rc = flush_backend(t);
  if (rc != 0)
    return rc;
  t->closing = 1;
  rc = mbedtls_ssl_close_notify(&t->ssl);
  if (rc == 0)
    return 0;
  if (rc == MBEDTLS_ERR_SSL_WANT_WRITE)
    return MAILD_ERR_AGAIN;
  return session_fail(t, rc);
}

const char *maild__tls_error(const maild_tls *t) {
  return t->error;
}

const char *maild__tls_info(const maild_tls *t) {
  return t->info;
}

int maild__tls_resumed(const maild_tls *t) {
  return t->handshake_done && t->resumed;
}

int maild__tls_peer_verified(const maild_tls *t) {
  if (!t->handshake_done || maild__tls_config_is_server(t->cfg))
    return 0;
  /* The certificate was checked (not VERIFY_NONE) and passed. */
  return t->ssl.conf->authmode != MBEDTLS_SSL_VERIFY_NONE &&
         mbedtls_ssl_get_verify_result(&t->ssl) == 0;
}
