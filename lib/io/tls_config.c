/*
 * TLS configurations (see tls.h): what every session of one listener or of
 * one outbound context shares — certificate chain and key, or trusted CAs;
 * the protocol and cipher-suite policy; a random generator. The policy is
 * written out explicitly rather than taken from the backend's defaults, so
 * an upgrade of mbedTLS cannot quietly widen it: TLS 1.2 only, ECDHE with
 * AEAD suites only (RFC 7525 section 4.2), no renegotiation (the source of
 * CVE-2009-3555 and of CPU-exhaustion attacks), no compression (CRIME).
 * Files are read with plain open/read so errors can name the file and the
 * reason, and so key material is wiped from our buffers after parsing.
 */
#include "io/tls.h"

#include "core/mem.h"
#include "maild/error.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CERT_FILE_MAX  (1024u * 1024u)
#define CA_FILE_MAX    (4u * 1024u * 1024u)
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* Seconds a session ticket stays good; the ticket key is replaced as
   often (RFC 5077; Postfix's smtpd_tls_session_cache_timeout). */
#define TICKET_LIFETIME 3600

/* The allowed suites, strongest first; the server picks in this order.
   IANA numbers with the names OpenSSL (and most Received headers) use. */
static const struct {
  int id;
  const char *name;
} allowed_suites[] = {
    {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
     "ECDHE-ECDSA-AES256-GCM-SHA384"},
    {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
     "ECDHE-RSA-AES256-GCM-SHA384"},
    {MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
     "ECDHE-ECDSA-CHACHA20-POLY1305"},
    {MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
     "ECDHE-RSA-CHACHA20-POLY1305"},
    {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
     "ECDHE-ECDSA-AES128-GCM-SHA256"},
    {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
     "ECDHE-RSA-AES128-GCM-SHA256"},
};

#define N_SUITES (sizeof(allowed_suites) / sizeof(allowed_suites[0]))

struct maild_tls_config {
  mbedtls_ssl_config conf;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_x509_crt chain; /* server: own chain, leaf first; client: CAs */
  mbedtls_pk_context key; /* server only */
  /* Server: session tickets (RFC 5077), so a returning client skips the
     key exchange and the signature. The backend locks it for handshakes
     on several threads. */
  mbedtls_ssl_ticket_context ticket;
  /*
   * SNI hook: one certificate per listener for now. Serving several names
   * means a table of (name, chain, key) here, consulted by a callback
   * installed with mbedtls_ssl_conf_sni() that calls
   * mbedtls_ssl_set_hs_own_cert() for the matching entry.
   */
  void *sni;
  int suites[N_SUITES + 1]; /* the list the backend points to */
  maild_mem mem;
  int is_server;
  int verify;
  int refs; /* the creator's plus one per session */
};

static const mbedtls_ecp_group_id curves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};

/* Signature hashes offered and accepted in the handshake: no SHA-1. */
static const int sig_hashes[] = {MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384,
                                 MBEDTLS_MD_SHA512, MBEDTLS_MD_NONE};

const char *maild__tls_suite_name(int iana_id) {
  size_t i;

  for (i = 0; i < N_SUITES; i++)
    if (allowed_suites[i].id == iana_id)
      return allowed_suites[i].name;
  return NULL;
}

int maild__tls_errf(char *err, size_t errlen, int code, const char *fmt, ...) {
  va_list ap;

  if (err != NULL && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

static const char *errno_text(int e, char *buf, size_t len) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(e, buf, len);
#else
  if (strerror_r(e, buf, len) != 0)
    snprintf(buf, len, "error %d", e);
  return buf;
#endif
}

int maild__tls_errno(char *err, size_t errlen, const char *path, int e) {
  char eb[96];
  int code = MAILD_ERR_IO;

  if (e == ENOENT || e == ENOTDIR)
    code = MAILD_ERR_NOT_FOUND;
  else if (e == EACCES || e == EPERM || e == EROFS)
    code = MAILD_ERR_PERM;
  else if (e == EEXIST)
    code = MAILD_ERR_EXISTS;
  else if (e == ENOMEM)
    code = MAILD_ERR_NOMEM;
  return maild__tls_errf(err, errlen, code, "%s: %s", path,
                         errno_text(e, eb, sizeof(eb)));
}

/* Reads all of `path` (at most `max` octets) into a NUL-terminated buffer,
   as the backend's PEM parser wants it. */
static int read_file(const maild_mem *m, const char *path, size_t max,
                     uint8_t **out, size_t *outlen, char *err, size_t errlen) {
  struct stat st;
  uint8_t *buf;
  size_t len = 0, size;
  ssize_t n;
  int fd, e;

  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return maild__tls_errno(err, errlen, path, errno);
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
      (uint64_t)st.st_size > max) {
    close(fd);
    return maild__tls_errf(err, errlen, MAILD_ERR_IO,
                           "%s: not a regular file of at most %zu octets", path,
                           max);
  }
  size = (size_t)st.st_size;
  buf = maild__malloc(m, size + 1);
  if (buf == NULL) {
    close(fd);
    return maild__tls_errf(err, errlen, MAILD_ERR_NOMEM, "%s: out of memory",
                           path);
  }
  for (;;) {
    n = read(fd, buf + len, size + 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
    if (len > size)
      break; /* the file grew while we read it */
  }
  e = errno;
  close(fd);
  if (n < 0 || len > size) {
    mbedtls_platform_zeroize(buf, len);
    maild__free(m, buf);
    if (n < 0)
      return maild__tls_errno(err, errlen, path, e);
    return maild__tls_errf(err, errlen, MAILD_ERR_IO,
                           "%s: file changed while being read", path);
  }
  buf[len] = '\0';
  *out = buf;
  *outlen = len;
  return 0;
}

static void config_free(maild_tls_config *c) {
  maild_mem m = c->mem;

  mbedtls_ssl_config_free(&c->conf);
  mbedtls_x509_crt_free(&c->chain);
  mbedtls_pk_free(&c->key);
  mbedtls_ssl_ticket_free(&c->ticket);
  mbedtls_ctr_drbg_free(&c->drbg);
  mbedtls_entropy_free(&c->entropy);
  maild__free(&m, c);
}

/* Allocates a configuration with initialised (empty) backend contexts, a
   seeded random generator and the protocol policy applied. */
static int config_alloc(maild_tls_config **out, int endpoint,
                        const maild_mem *mem, char *err, size_t errlen) {
  static const char pers[] = "libmaild tls config";
  maild_tls_config *c;
  maild_mem m;
  size_t i;
  int rc;

  maild__mem_init(&m, mem);
  c = maild__calloc(&m, 1, sizeof(*c));
  if (c == NULL)
    return maild__tls_errf(err, errlen, MAILD_ERR_NOMEM, "out of memory");
  c->mem = m;
  c->refs = 1;
  c->is_server = endpoint == MBEDTLS_SSL_IS_SERVER;
  mbedtls_ssl_config_init(&c->conf);
  mbedtls_entropy_init(&c->entropy);
  mbedtls_ctr_drbg_init(&c->drbg);
  mbedtls_x509_crt_init(&c->chain);
  mbedtls_pk_init(&c->key);
  mbedtls_ssl_ticket_init(&c->ticket);
  rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                             (const unsigned char *)pers, sizeof(pers) - 1);
  if (rc != 0) {
    config_free(c);
    return maild__tls_errf(
        err, errlen, MAILD_ERR_TLS,
        "cannot seed the random generator (mbedTLS error -0x%04x)",
        (unsigned)-rc);
  }
  rc = mbedtls_ssl_config_defaults(&c->conf, endpoint,
                                   MBEDTLS_SSL_TRANSPORT_STREAM,
                                   MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) {
    config_free(c);
    return maild__tls_errf(err, errlen, MAILD_ERR_TLS,
                           "cannot set TLS defaults (mbedTLS error -0x%04x)",
                           (unsigned)-rc);
  }
  mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
  mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                               MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                               MBEDTLS_SSL_MINOR_VERSION_3);
  for (i = 0; i < N_SUITES; i++)
    c->suites[i] = allowed_suites[i].id;
  c->suites[N_SUITES] = 0;
  mbedtls_ssl_conf_ciphersuites(&c->conf, c->suites);
  mbedtls_ssl_conf_curves(&c->conf, curves);
  mbedtls_ssl_conf_sig_hashes(&c->conf, sig_hashes);
  mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
  mbedtls_ssl_conf_session_tickets(&c->conf,
                                   MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#endif
  *out = c;
  return 0;
}

/* Parses PEM certificates from `path` into `chain`. A CA bundle may hold
   some certificates the backend cannot parse (`partial_ok`); a server's own
   chain may not. */
static int load_certs(maild_tls_config *c, mbedtls_x509_crt *chain,
                      const char *path, size_t max, int partial_ok, char *err,
                      size_t errlen) {
  uint8_t *buf;
  size_t len;
  int rc;

  rc = read_file(&c->mem, path, max, &buf, &len, err, errlen);
  if (rc != 0)
    return rc;
  rc = mbedtls_x509_crt_parse(chain, buf, len + 1);
  maild__free(&c->mem, buf);
  if (rc == MBEDTLS_ERR_X509_ALLOC_FAILED || rc == MBEDTLS_ERR_PEM_ALLOC_FAILED)
    return maild__tls_errf(err, errlen, MAILD_ERR_NOMEM, "%s: out of memory",
                           path);
  if (chain->version == 0)
    return maild__tls_errf(err, errlen, MAILD_ERR_SYNTAX,
                           "%s: no PEM certificate could be parsed", path);
  if (rc != 0 && !partial_ok)
    return maild__tls_errf(err, errlen, MAILD_ERR_SYNTAX,
                           "%s: a certificate in the file could not be parsed",
                           path);
  return 0;
}

static int load_key(maild_tls_config *c, const char *path, char *err,
                    size_t errlen) {
  uint8_t *buf;
  size_t len;
  int rc;

  rc = read_file(&c->mem, path, CERT_FILE_MAX, &buf, &len, err, errlen);
  if (rc != 0)
    return rc;
  rc = mbedtls_pk_parse_key(&c->key, buf, len + 1, NULL, 0);
  mbedtls_platform_zeroize(buf, len);
  maild__free(&c->mem, buf);
  if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED)
    return maild__tls_errf(
        err, errlen, MAILD_ERR_SYNTAX,
        "%s: key is encrypted (passphrases are not supported)", path);
  if (rc == MBEDTLS_ERR_PK_ALLOC_FAILED || rc == MBEDTLS_ERR_PEM_ALLOC_FAILED)
    return maild__tls_errf(err, errlen, MAILD_ERR_NOMEM, "%s: out of memory",
                           path);
  if (rc != 0)
    return maild__tls_errf(err, errlen, MAILD_ERR_SYNTAX,
                           "%s: no PEM private key could be parsed", path);
  return 0;
}

/*
 * Signs once, so that whatever the backend computes and keeps on first use
 * of the key (an EC key's table of multiples of the base point, in some
 * builds) exists before handshakes on several worker threads share it.
 */
static int warm_key(maild_tls_config *c) {
  unsigned char hash[32] = {0};
  unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
  size_t len = 0;

  return mbedtls_pk_sign(&c->key, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig,
                         &len, mbedtls_ctr_drbg_random, &c->drbg);
}

int maild__tls_config_server_new(maild_tls_config **out, const char *cert_path,
                                 const char *key_path, const maild_mem *mem,
                                 char *err, size_t errlen) {
  maild_tls_config *c;
  int rc;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (out == NULL || cert_path == NULL || key_path == NULL)
    return maild__tls_errf(err, errlen, MAILD_ERR_INVAL, "invalid argument");
  rc = config_alloc(&c, MBEDTLS_SSL_IS_SERVER, mem, err, errlen);
  if (rc != 0)
    return rc;
  rc = load_certs(c, &c->chain, cert_path, CERT_FILE_MAX, 0, err, errlen);
  if (rc == 0)
    rc = load_key(c, key_path, err, errlen);
  if (rc == 0 && !mbedtls_pk_can_do(&c->key, MBEDTLS_PK_ECDSA) &&
      !mbedtls_pk_can_do(&c->key, MBEDTLS_PK_RSA))
    rc = maild__tls_errf(err, errlen, MAILD_ERR_TLS,
                         "%s: key type %s is not usable (EC or RSA keys only)",
                         key_path, mbedtls_pk_get_name(&c->key));
  if (rc == 0 && mbedtls_pk_check_pair(&c->chain.pk, &c->key) != 0)
    rc = maild__tls_errf(err, errlen, MAILD_ERR_TLS,
                         "%s: key does not match certificate %s", key_path,
                         cert_path);
  if (rc == 0 && warm_key(c) != 0)
    rc = maild__tls_errf(err, errlen, MAILD_ERR_TLS,
                         "%s: signing with the key failed", key_path);
  if (rc == 0 && mbedtls_ssl_conf_own_cert(&c->conf, &c->chain, &c->key) != 0)
    rc = maild__tls_errf(err, errlen, MAILD_ERR_NOMEM, "out of memory");
  if (rc == 0 && mbedtls_ssl_ticket_setup(&c->ticket, mbedtls_ctr_drbg_random,
                                          &c->drbg, MBEDTLS_CIPHER_AES_256_GCM,
                                          TICKET_LIFETIME) != 0)
    rc = maild__tls_errf(err, errlen, MAILD_ERR_TLS,
                         "cannot make a session ticket key");
  if (rc == 0)
    mbedtls_ssl_conf_session_tickets_cb(&c->conf, mbedtls_ssl_ticket_write,
                                        mbedtls_ssl_ticket_parse, &c->ticket);
  if (rc != 0) {
    config_free(c);
    return rc;
  }
  /* We ask for no client certificates (AUTH is SASL over TLS). */
  mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
  *out = c;
  return 0;
}

int maild__tls_config_client_new(maild_tls_config **out, const char *ca_path,
                                 int verify, const maild_mem *mem, char *err,
                                 size_t errlen) {
  maild_tls_config *c;
  int rc, mode;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (out == NULL || (verify != 0 && verify != 1))
    return maild__tls_errf(err, errlen, MAILD_ERR_INVAL, "invalid argument");
  rc = config_alloc(&c, MBEDTLS_SSL_IS_CLIENT, mem, err, errlen);
  if (rc != 0)
    return rc;
  c->verify = verify;
  if (verify && ca_path == NULL)
    ca_path = SYSTEM_CA_FILE;
  if (ca_path != NULL) {
    rc = load_certs(c, &c->chain, ca_path, CA_FILE_MAX, 1, err, errlen);
    if (rc != 0) {
      config_free(c);
      return rc;
    }
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->chain, NULL);
  }
  /* Opportunistic with CAs: verify, record the result, go on regardless. */
  if (verify)
    mode = MBEDTLS_SSL_VERIFY_REQUIRED;
  else if (ca_path != NULL)
    mode = MBEDTLS_SSL_VERIFY_OPTIONAL;
  else
    mode = MBEDTLS_SSL_VERIFY_NONE;
  mbedtls_ssl_conf_authmode(&c->conf, mode);
  *out = c;
  return 0;
}

void maild__tls_config_del(maild_tls_config *cfg) {
  maild__tls_config_release(cfg);
}

const void *maild__tls_config_backend(const maild_tls_config *cfg) {
  return &cfg->conf;
}

int maild__tls_config_is_server(const maild_tls_config *cfg) {
  return cfg->is_server;
}

int maild__tls_config_verifies(const maild_tls_config *cfg) {
  return cfg->verify;
}

void maild__tls_config_hold(maild_tls_config *cfg) {
  cfg->refs++;
}

void maild__tls_config_release(maild_tls_config *cfg) {
  if (cfg != NULL && --cfg->refs == 0)
    config_free(cfg);
}
