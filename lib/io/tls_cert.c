/*
 * Self-signed certificates (see tls.h), so that maild speaks TLS out of the
 * box: on first start with no certificate configured the runtime generates
 * one for its hostname and reuses it afterwards. The certificate is its own
 * CA (basicConstraints CA:TRUE) so test clients and cautious users can pin
 * it as a trust anchor; its names cover the hostname, localhost and
 * 127.0.0.1 (RFC 6125 wants subjectAltName, not the CN). mbedTLS 2.28 has
 * no helper for subjectAltName or extendedKeyUsage, so their DER is encoded
 * here. Files follow the project's durability rule: a new temporary file
 * (O_EXCL, final mode from the start), fsync, atomic move into place, fsync
 * of the directory; the key never exists with a wider mode than 0600.
 */
#include "io/tls.h"

#include "core/mem.h"
#include "maild/error.h"

#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PEM_MAX      4096u
#define EXT_MAX      512u
#define HOSTNAME_MAX 253u
#define SERIAL_LEN   16u

/* Everything one generation needs, allocated once through maild_mem. */
typedef struct cert_gen {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_pk_context key;
  mbedtls_x509write_cert crt;
  mbedtls_mpi serial;
  unsigned char key_pem[PEM_MAX];
  unsigned char crt_pem[PEM_MAX];
  unsigned char ext[EXT_MAX];
} cert_gen;

/* A DNS name we can put in CN and a dNSName without quoting: LDH labels. */
static int hostname_ok(const char *h) {
  size_t i, n = strlen(h);

  if (n == 0 || n > HOSTNAME_MAX || h[0] == '.' || h[0] == '-' ||
      h[n - 1] == '.')
    return 0;
  for (i = 0; i < n; i++) {
    char c = h[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '.'))
      return 0;
    if (c == '.' && h[i + 1] == '.')
      return 0;
  }
  return 1;
}

/* Prepends one GeneralName (RFC 5280 section 4.2.1.6) with implicit tag
   [tag] to the DER being written backwards at *p. */
static int prepend_general_name(unsigned char **p, unsigned char *start,
                                unsigned char tag, const void *data, size_t n,
                                size_t *total) {
  size_t len;
  int r;

  r = mbedtls_asn1_write_raw_buffer(p, start, data, n);
  if (r < 0)
    return r;
  len = (size_t)r;
  r = mbedtls_asn1_write_len(p, start, len);
  if (r < 0)
    return r;
  len += (size_t)r;
  r = mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONTEXT_SPECIFIC | tag);
  if (r < 0)
    return r;
  *total += len + (size_t)r;
  return 0;
}

/* Wraps the `len` octets before the end of the buffer in a SEQUENCE. */
static int wrap_sequence(unsigned char **p, unsigned char *start, size_t *len) {
  int r;

  r = mbedtls_asn1_write_len(p, start, *len);
  if (r < 0)
    return r;
  *len += (size_t)r;
  r = mbedtls_asn1_write_tag(p, start,
                             MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
  if (r < 0)
    return r;
  *len += (size_t)r;
  return 0;
}

/* subjectAltName: DNS:hostname, DNS:localhost, IP:127.0.0.1 (written last
   to first). */
static int add_subject_alt_name(cert_gen *g, const char *hostname) {
  static const unsigned char loopback[4] = {127, 0, 0, 1};
  unsigned char *start = g->ext, *p = g->ext + EXT_MAX;
  size_t len = 0;
  int r;

  r = prepend_general_name(&p, start, 7, loopback, sizeof(loopback), &len);
  if (r == 0)
    r = prepend_general_name(&p, start, 2, "localhost", 9, &len);
  if (r == 0 && strcmp(hostname, "localhost") != 0)
    r = prepend_general_name(&p, start, 2, hostname, strlen(hostname), &len);
  if (r == 0)
    r = wrap_sequence(&p, start, &len);
  if (r == 0)
    r = mbedtls_x509write_crt_set_extension(
        &g->crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
        MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, p, len);
  return r;
}

/* extendedKeyUsage: serverAuth (RFC 5280 section 4.2.1.12). */
static int add_ext_key_usage(cert_gen *g) {
  unsigned char *start = g->ext, *p = g->ext + EXT_MAX;
  size_t len;
  int r;

  r = mbedtls_asn1_write_oid(&p, start, MBEDTLS_OID_SERVER_AUTH,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH));
  if (r < 0)
    return r;
  len = (size_t)r;
  r = wrap_sequence(&p, start, &len);
  if (r == 0)
    r = mbedtls_x509write_crt_set_extension(
        &g->crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
        MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, p, len);
  return r;
}

/* "YYYYMMDDhhmmss" for `when` plus `years` (29 February becomes the 28th
   in a year that has none). */
static int format_time(char *out, size_t size, time_t when, int years) {
  struct tm tm;
  int year;

  if (gmtime_r(&when, &tm) == NULL)
    return -1;
  year = tm.tm_year + 1900 + years;
  if (years != 0 && tm.tm_mon == 1 && tm.tm_mday == 29)
    tm.tm_mday = 28;
  snprintf(out, size, "%04d%02d%02d%02d%02d%02d", year, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return 0;
}

static int set_serial_and_validity(cert_gen *g) {
  unsigned char serial[SERIAL_LEN];
  char from[32], until[32];
  time_t start = time(NULL) - 86400;
  int r;

  /* A positive 128-bit number (RFC 5280 section 4.1.2.2: at most 20
     octets, positive, unpredictable). */
  r = mbedtls_ctr_drbg_random(&g->drbg, serial, sizeof(serial));
  if (r != 0)
    return r;
  serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
  r = mbedtls_mpi_read_binary(&g->serial, serial, sizeof(serial));
  if (r == 0)
    r = mbedtls_x509write_crt_set_serial(&g->crt, &g->serial);
  if (r != 0)
    return r;
  if (format_time(from, sizeof(from), start, 0) != 0 ||
      format_time(until, sizeof(until), start, 10) != 0)
    return MBEDTLS_ERR_X509_BAD_INPUT_DATA;
  return mbedtls_x509write_crt_set_validity(&g->crt, from, until);
}

/* Builds the key and the certificate as PEM into g->key_pem, g->crt_pem. */
static int build(cert_gen *g, const char *hostname) {
  static const char pers[] = "libmaild self-signed certificate";
  char subject[HOSTNAME_MAX + 8];
  int r;

  r = mbedtls_ctr_drbg_seed(&g->drbg, mbedtls_entropy_func, &g->entropy,
                            (const unsigned char *)pers, sizeof(pers) - 1);
  if (r == 0)
    r = mbedtls_pk_setup(&g->key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (r == 0)
    r = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(g->key),
                            mbedtls_ctr_drbg_random, &g->drbg);
  if (r != 0)
    return r;
  snprintf(subject, sizeof(subject), "CN=%s", hostname);
  mbedtls_x509write_crt_set_version(&g->crt, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&g->crt, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&g->crt, &g->key);
  mbedtls_x509write_crt_set_issuer_key(&g->crt, &g->key);
  r = mbedtls_x509write_crt_set_subject_name(&g->crt, subject);
  if (r == 0)
    r = mbedtls_x509write_crt_set_issuer_name(&g->crt, subject);
  if (r == 0)
    r = set_serial_and_validity(g);
  if (r == 0)
    r = mbedtls_x509write_crt_set_basic_constraints(&g->crt, 1, -1);
  if (r == 0)
    r = mbedtls_x509write_crt_set_key_usage(&g->crt,
                                            MBEDTLS_X509_KU_DIGITAL_SIGNATURE |
                                                MBEDTLS_X509_KU_KEY_CERT_SIGN);
  if (r == 0)
    r = add_ext_key_usage(g);
  if (r == 0)
    r = add_subject_alt_name(g, hostname);
  if (r == 0)
    r = mbedtls_x509write_crt_set_subject_key_identifier(&g->crt);
  if (r == 0)
    r = mbedtls_x509write_crt_set_authority_key_identifier(&g->crt);
  if (r == 0)
    r = mbedtls_x509write_crt_pem(&g->crt, g->crt_pem, sizeof(g->crt_pem),
                                  mbedtls_ctr_drbg_random, &g->drbg);
  if (r == 0)
    r = mbedtls_pk_write_key_pem(&g->key, g->key_pem, sizeof(g->key_pem));
  return r;
}

/* fsync of the directory holding `path`, so a rename into it is durable.
   File systems that cannot sync a directory (EINVAL) are tolerated. */
static int sync_dir_of(const char *path, const maild_mem *m, char *err,
                       size_t errlen) {
  const char *slash = strrchr(path, '/');
  char *dir;
  int fd, e = 0;

  if (slash == NULL)
    dir = maild__strndup(m, ".", 1);
  else
    dir = maild__strndup(m, path, slash == path ? 1 : (size_t)(slash - path));
  if (dir == NULL)
    return maild__tls_errf(err, errlen, MAILD_ERR_NOMEM, "out of memory");
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || (fsync(fd) < 0 && errno != EINVAL))
    e = errno;
  if (fd >= 0)
    close(fd);
  if (e != 0) {
    e = maild__tls_errno(err, errlen, dir, e);
    maild__free(m, dir);
    return e;
  }
  maild__free(m, dir);
  return 0;
}

static int write_all(int fd, const unsigned char *data, size_t len) {
  ssize_t n;

  while (len > 0) {
    n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Moves `tmp` to `path`: rename() when replacing is allowed, else link()
   (atomic, fails if `path` exists) and unlink(). File systems without
   hard links fall back to a check and rename(). */
static int place(const char *tmp, const char *path, int overwrite) {
  if (overwrite)
    return rename(tmp, path);
  if (link(tmp, path) == 0)
    return unlink(tmp);
  if (errno != EPERM && errno != EOPNOTSUPP && errno != EMLINK)
    return -1;
  if (access(path, F_OK) == 0) {
    errno = EEXIST;
    return -1;
  }
  return rename(tmp, path);
}

/* Writes `data` to `path` with `mode` through a temporary file beside it. */
static int write_file(cert_gen *g, const char *path, const unsigned char *data,
                      size_t len, mode_t mode, int overwrite,
                      const maild_mem *m, char *err, size_t errlen) {
  unsigned char rnd[8];
  size_t plen = strlen(path), tlen = plen + 6 + 2 * sizeof(rnd) + 1;
  char *tmp;
  int fd, rc = 0, e = 0;
  size_t i;

  if (mbedtls_ctr_drbg_random(&g->drbg, rnd, sizeof(rnd)) != 0)
    return maild__tls_errf(err, errlen, MAILD_ERR_TLS,
                           "random generator failed");
  tmp = maild__malloc(m, tlen);
  if (tmp == NULL)
    return maild__tls_errf(err, errlen, MAILD_ERR_NOMEM, "out of memory");
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp-", 5);
  for (i = 0; i < sizeof(rnd); i++)
    snprintf(tmp + plen + 5 + 2 * i, 3, "%02x", rnd[i]);
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    rc = maild__tls_errno(err, errlen, tmp, errno);
    maild__free(m, tmp);
    return rc;
  }
  /* The umask may have narrowed the mode; the result must be exact. */
  if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0)
    e = errno;
  if (close(fd) < 0 && e == 0)
    e = errno;
  if (e == 0 && place(tmp, path, overwrite) < 0)
    e = errno;
  if (e != 0) {
    unlink(tmp);
    rc = maild__tls_errno(err, errlen, path, e);
    if (e == EEXIST)
      maild__tls_errf(err, errlen, rc, "%s: already exists", path);
  }
  maild__free(m, tmp);
  if (rc == 0)
    rc = sync_dir_of(path, m, err, errlen);
  return rc;
}

static int check_absent(const char *path, char *err, size_t errlen) {
  struct stat st;

  if (lstat(path, &st) == 0)
    return maild__tls_errf(err, errlen, MAILD_ERR_EXISTS, "%s: already exists",
                           path);
  if (errno != ENOENT)
    return maild__tls_errno(err, errlen, path, errno);
  return 0;
}

int maild__tls_generate_self_signed(const char *cert_path, const char *key_path,
                                    const char *hostname, int overwrite,
                                    const maild_mem *mem, char *err,
                                    size_t errlen) {
  char eb[120];
  cert_gen *g;
  maild_mem m;
  int rc;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (cert_path == NULL || key_path == NULL || hostname == NULL ||
      strcmp(cert_path, key_path) == 0 || (overwrite != 0 && overwrite != 1))
    return maild__tls_errf(err, errlen, MAILD_ERR_INVAL, "invalid argument");
  if (!hostname_ok(hostname))
    return maild__tls_errf(err, errlen, MAILD_ERR_INVAL,
                           "invalid hostname for a certificate: \"%.64s\"",
                           hostname);
  if (!overwrite) {
    rc = check_absent(key_path, err, errlen);
    if (rc == 0)
      rc = check_absent(cert_path, err, errlen);
    if (rc != 0)
      return rc;
  }
  maild__mem_init(&m, mem);
  g = maild__calloc(&m, 1, sizeof(*g));
  if (g == NULL)
    return maild__tls_errf(err, errlen, MAILD_ERR_NOMEM, "out of memory");
  mbedtls_entropy_init(&g->entropy);
  mbedtls_ctr_drbg_init(&g->drbg);
  mbedtls_pk_init(&g->key);
  mbedtls_x509write_crt_init(&g->crt);
  mbedtls_mpi_init(&g->serial);
  rc = build(g, hostname);
  if (rc != 0) {
    mbedtls_strerror(rc, eb, sizeof(eb));
    rc = maild__tls_errf(err, errlen, MAILD_ERR_TLS,
                         "cannot generate a certificate: %s", eb);
  }
  if (rc == 0)
    rc = write_file(g, key_path, g->key_pem, strlen((const char *)g->key_pem),
                    0600, overwrite, &m, err, errlen);
  if (rc == 0)
    rc = write_file(g, cert_path, g->crt_pem, strlen((const char *)g->crt_pem),
                    0644, overwrite, &m, err, errlen);
  mbedtls_mpi_free(&g->serial);
  mbedtls_x509write_crt_free(&g->crt);
  mbedtls_pk_free(&g->key);
  mbedtls_ctr_drbg_free(&g->drbg);
  mbedtls_entropy_free(&g->entropy);
  mbedtls_platform_zeroize(g, sizeof(*g));
  maild__free(&m, g);
  return rc;
}
