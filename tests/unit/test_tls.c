/*
 * Unit tests for the TLS building blocks (lib/io/tls*.c): self-signed
 * certificate generation, configurations, and client/server sessions
 * driven entirely in memory by shuttling ciphertext between them, in
 * whole flights, in small chunks and byte by byte. Hostile input (random
 * bytes, plaintext SMTP on a TLS port, oversized records, a handshake that
 * stops half-way) must end in MAILD_ERR_TLS or MAILD_ERR_AGAIN with
 * bounded buffers. Allocation failures are swept over our own allocations
 * (mbedTLS allocates internally with calloc; see tls.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maild/error.h"
#include "io/tls.h"
#include "testmem.h"

/* The temporary directory with a certificate made by the group setup. */
static char dir[64];
static char cert_path[128], key_path[128];

static void join(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s", dir, name);
}

static int group_setup(void **state) {
  char err[256];
  (void)state;

  snprintf(dir, sizeof(dir), "/tmp/maild-test-tls-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  join(cert_path, sizeof(cert_path), "cert.pem");
  join(key_path, sizeof(key_path), "key.pem");
  if (maild__tls_generate_self_signed(cert_path, key_path, "mx.test.example", 0,
                                      NULL, err, sizeof(err)) != 0) {
    fprintf(stderr, "generate: %s\n", err);
    return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  char path[600];
  struct dirent *e;
  DIR *d;
  (void)state;

  d = opendir(dir);
  if (d != NULL) {
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
      unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
  return 0;
}

/* Number of entries in the test directory (no temporary files linger). */
static int dir_entries(void) {
  struct dirent *e;
  DIR *d = opendir(dir);
  int n = 0;

  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static void read_text(const char *path, char *buf, size_t size) {
  FILE *f = fopen(path, "r");
  size_t n;

  assert_non_null(f);
  n = fread(buf, 1, size - 1, f);
  buf[n] = '\0';
  fclose(f);
}

/* --- Shuttling ciphertext ----------------------------------------------*/

/* Moves up to `chunk` octets of `from`'s output into `to`. Returns the
   number moved. */
static size_t move(maild_tls *from, maild_tls *to, size_t chunk) {
  const uint8_t *p;
  maild_ssize n = maild__tls_output(from, &p);
  size_t k;

  if (n <= 0)
    return 0;
  k = (size_t)n < chunk ? (size_t)n : chunk;
  if (k > maild__tls_feed_room(to))
    k = maild__tls_feed_room(to);
  if (k == 0)
    return 0;
  assert_int_equal(maild__tls_feed(to, p, k), 0);
  maild__tls_consume(from, k);
  return k;
}

/* Runs the handshake between client `c` and server `s`, moving at most
   `chunk` octets before each handshake call, until both are done, one
   fails and the other saw the outcome, or nothing moves. */
static void handshake(maild_tls *c, maild_tls *s, size_t chunk, int *crc,
                      int *src) {
  int moved, rounds = 0;

  *crc = maild__tls_handshake(c);
  *src = MAILD_ERR_AGAIN;
  do {
    moved = 0;
    if (move(c, s, chunk) > 0) {
      moved = 1;
      *src = maild__tls_handshake(s);
    }
    if (move(s, c, chunk) > 0) {
      moved = 1;
      *crc = maild__tls_handshake(c);
    }
    assert_true(++rounds < 1000000);
  } while (moved && !(*crc == 0 && *src == 0));
}

typedef struct pair {
  maild_tls_config *scfg, *ccfg;
  maild_tls *s, *c;
} pair;

static void pair_new(pair *p, const char *ca, int verify,
                     const char *server_name) {
  char err[256];

  assert_int_equal(maild__tls_config_server_new(&p->scfg, cert_path, key_path,
                                                NULL, err, sizeof(err)),
                   0);
  assert_int_equal(maild__tls_config_client_new(&p->ccfg, ca, verify, NULL, err,
                                                sizeof(err)),
                   0);
  assert_int_equal(maild__tls_new(&p->s, p->scfg, NULL, NULL), 0);
  assert_int_equal(maild__tls_new(&p->c, p->ccfg, server_name, NULL), 0);
}

static void pair_del(pair *p) {
  maild__tls_del(p->c);
  maild__tls_del(p->s);
  maild__tls_config_del(p->ccfg);
  maild__tls_config_del(p->scfg);
}

static void assert_allowed_info(const maild_tls *t) {
  static const int ids[] = {0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA8, 0xCCA9};
  const char *info = maild__tls_info(t);
  char want[MAILD__TLS_TEXT_MAX];
  size_t i;

  for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
    assert_non_null(maild__tls_suite_name(ids[i]));
    snprintf(want, sizeof(want), "TLSv1.2 with cipher %s",
             maild__tls_suite_name(ids[i]));
    if (strcmp(info, want) == 0)
      return;
  }
  fail_msg("unexpected TLS info \"%s\"", info);
}

/* --- Certificates and configurations -----------------------------------*/

static void test_generate_modes_and_names(void **state) {
  char text[8192], c2[128], k2[128], err[256];
  maild_tls_config *cfg;
  struct stat st;
  testmem tm;
  (void)state;

  assert_int_equal(stat(key_path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(stat(cert_path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0644);
  read_text(cert_path, text, sizeof(text));
  assert_non_null(strstr(text, "-----BEGIN CERTIFICATE-----"));
  read_text(key_path, text, sizeof(text));
  assert_non_null(strstr(text, "-----BEGIN EC PRIVATE KEY-----"));
  assert_int_equal(dir_entries(), 2);

  /* The pair parses and matches; the certificate is usable as a CA. */
  testmem_init(&tm, 0);
  assert_int_equal(maild__tls_config_server_new(&cfg, cert_path, key_path,
                                                &tm.mem, err, sizeof(err)),
                   0);
  maild__tls_config_del(cfg);
  assert_int_equal(maild__tls_config_client_new(&cfg, cert_path, 1, &tm.mem,
                                                err, sizeof(err)),
                   0);
  maild__tls_config_del(cfg);
  assert_int_equal(tm.live, 0);

  /* Never overwritten unless asked; nothing left behind either way. */
  assert_int_equal(maild__tls_generate_self_signed(cert_path, key_path,
                                                   "x.example", 0, NULL, err,
                                                   sizeof(err)),
                   MAILD_ERR_EXISTS);
  assert_non_null(strstr(err, "already exists"));
  join(c2, sizeof(c2), "c2.pem");
  join(k2, sizeof(k2), "k2.pem");
  assert_int_equal(maild__tls_generate_self_signed(c2, key_path, "x.example", 0,
                                                   NULL, err, sizeof(err)),
                   MAILD_ERR_EXISTS);
  assert_int_equal(dir_entries(), 2);
  testmem_init(&tm, 0);
  assert_int_equal(maild__tls_generate_self_signed(c2, k2, "x.example", 0,
                                                   &tm.mem, err, sizeof(err)),
                   0);
  assert_int_equal(tm.live, 0);
  assert_int_equal(maild__tls_generate_self_signed(c2, k2, "localhost", 1, NULL,
                                                   err, sizeof(err)),
                   0);
  assert_int_equal(stat(k2, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(dir_entries(), 4);
  unlink(c2);
  unlink(k2);
}

static void test_generate_bad_arguments(void **state) {
  char err[256], c2[128], k2[128];
  (void)state;

  join(c2, sizeof(c2), "bad-c.pem");
  join(k2, sizeof(k2), "bad-k.pem");
  assert_int_equal(maild__tls_generate_self_signed(c2, k2, "bad,name", 0, NULL,
                                                   err, sizeof(err)),
                   MAILD_ERR_INVAL);
  assert_int_equal(
      maild__tls_generate_self_signed(c2, k2, "", 0, NULL, err, sizeof(err)),
      MAILD_ERR_INVAL);
  assert_int_equal(maild__tls_generate_self_signed(c2, k2, "CN=x,O=evil", 0,
                                                   NULL, err, sizeof(err)),
                   MAILD_ERR_INVAL);
  assert_int_equal(
      maild__tls_generate_self_signed(c2, c2, "x", 0, NULL, err, sizeof(err)),
      MAILD_ERR_INVAL);
  assert_int_equal(
      maild__tls_generate_self_signed("/nonexistent-maild-dir/c.pem",
                                      "/nonexistent-maild-dir/k.pem", "x", 0,
                                      NULL, err, sizeof(err)),
      MAILD_ERR_NOT_FOUND);
  assert_non_null(strstr(err, "/nonexistent-maild-dir/k.pem"));
  assert_int_equal(dir_entries(), 2);
}

static void test_config_errors(void **state) {
  char err[256], c2[128], k2[128], junk[128];
  maild_tls_config *cfg = NULL;
  FILE *f;
  testmem tm;
  (void)state;

  testmem_init(&tm, 0);
  assert_int_equal(maild__tls_config_server_new(&cfg, "/nonexistent/c.pem",
                                                key_path, &tm.mem, err,
                                                sizeof(err)),
                   MAILD_ERR_NOT_FOUND);
  assert_non_null(strstr(err, "/nonexistent/c.pem"));
  assert_null(cfg);

  /* A key from another pair. */
  join(c2, sizeof(c2), "other-c.pem");
  join(k2, sizeof(k2), "other-k.pem");
  assert_int_equal(maild__tls_generate_self_signed(c2, k2, "other.example", 0,
                                                   NULL, err, sizeof(err)),
                   0);
  assert_int_equal(maild__tls_config_server_new(&cfg, cert_path, k2, &tm.mem,
                                                err, sizeof(err)),
                   MAILD_ERR_TLS);
  assert_non_null(strstr(err, "key does not match certificate"));
  assert_non_null(strstr(err, k2));

  /* Not PEM at all; a key where the certificate belongs. */
  join(junk, sizeof(junk), "junk.pem");
  f = fopen(junk, "w");
  assert_non_null(f);
  fputs("this is not a certificate\n", f);
  fclose(f);
  assert_int_equal(maild__tls_config_server_new(&cfg, junk, key_path, &tm.mem,
                                                err, sizeof(err)),
                   MAILD_ERR_SYNTAX);
  assert_non_null(strstr(err, junk));
  assert_int_equal(maild__tls_config_server_new(&cfg, cert_path, junk, &tm.mem,
                                                err, sizeof(err)),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(maild__tls_config_server_new(&cfg, key_path, key_path,
                                                &tm.mem, err, sizeof(err)),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(
      maild__tls_config_client_new(&cfg, junk, 1, &tm.mem, err, sizeof(err)),
      MAILD_ERR_SYNTAX);
  assert_int_equal(maild__tls_config_client_new(&cfg, "/nonexistent/ca.pem", 0,
                                                &tm.mem, err, sizeof(err)),
                   MAILD_ERR_NOT_FOUND);
  assert_int_equal(
      maild__tls_config_client_new(&cfg, NULL, 2, &tm.mem, err, sizeof(err)),
      MAILD_ERR_INVAL);
  /* Verifying without a CA file means the system store. */
  if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0) {
    assert_int_equal(
        maild__tls_config_client_new(&cfg, NULL, 1, &tm.mem, err, sizeof(err)),
        0);
    maild__tls_config_del(cfg);
  }
  assert_int_equal(tm.live, 0);
  unlink(c2);
  unlink(k2);
  unlink(junk);
}

static void test_config_nomem_sweep(void **state) {
  maild_tls_config *cfg;
  char err[256];
  size_t n;
  testmem tm;
  int rc;
  (void)state;

  for (n = 1;; n++) {
    testmem_init(&tm, n);
    rc = maild__tls_config_server_new(&cfg, cert_path, key_path, &tm.mem, err,
                                      sizeof(err));
    if (rc == 0)
      maild__tls_config_del(cfg);
    else
      assert_int_equal(rc, MAILD_ERR_NOMEM);
    assert_int_equal(tm.live, 0);
    if (tm.failures == 0)
      break;
  }
  assert_true(n > 1);
  for (n = 1;; n++) {
    testmem_init(&tm, n);
    rc = maild__tls_config_client_new(&cfg, cert_path, 1, &tm.mem, err,
                                      sizeof(err));
    if (rc == 0)
      maild__tls_config_del(cfg);
    else
      assert_int_equal(rc, MAILD_ERR_NOMEM);
    assert_int_equal(tm.live, 0);
    if (tm.failures == 0)
      break;
  }
}

static void test_session_arguments(void **state) {
  maild_tls_config *scfg, *ccfg;
  maild_tls *t;
  uint8_t buf[16];
  char err[256];
  (void)state;

  assert_int_equal(maild__tls_config_server_new(&scfg, cert_path, key_path,
                                                NULL, err, sizeof(err)),
                   0);
  assert_int_equal(
      maild__tls_config_client_new(&ccfg, cert_path, 1, NULL, err, sizeof(err)),
      0);
  assert_int_equal(maild__tls_new(&t, scfg, "name", NULL), MAILD_ERR_INVAL);
  assert_int_equal(maild__tls_new(&t, ccfg, NULL, NULL), MAILD_ERR_INVAL);
  assert_int_equal(maild__tls_new(&t, NULL, NULL, NULL), MAILD_ERR_INVAL);
  assert_int_equal(maild__tls_new(&t, scfg, NULL, NULL), 0);
  assert_int_equal(maild__tls_read(t, buf, sizeof(buf)), MAILD_ERR_STATE);
  assert_int_equal(maild__tls_write(t, buf, sizeof(buf)), MAILD_ERR_STATE);
  assert_int_equal(maild__tls_close(t), 0);
  assert_string_equal(maild__tls_info(t), "");
  assert_string_equal(maild__tls_error(t), "");
  assert_int_equal(maild__tls_peer_verified(t), 0);
  assert_int_equal(maild__tls_handshake(t), MAILD_ERR_AGAIN);
  maild__tls_del(t);
  maild__tls_del(NULL);
  maild__tls_config_del(NULL);
  maild__tls_config_del(ccfg);
  maild__tls_config_del(scfg);
}

/* --- Handshakes --------------------------------------------------------*/

static void test_handshake_verified(void **state) {
  pair p;
  int crc, src;
  (void)state;

  pair_new(&p, cert_path, 1, "localhost");
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(crc, 0);
  assert_int_equal(src, 0);
  assert_int_equal(maild__tls_peer_verified(p.c), 1);
  assert_int_equal(maild__tls_peer_verified(p.s), 0);
  assert_allowed_info(p.c);
  assert_string_equal(maild__tls_info(p.c), maild__tls_info(p.s));
  /* An ECDSA certificate: the server's first choice. */
  assert_string_equal(maild__tls_info(p.s),
                      "TLSv1.2 with cipher ECDHE-ECDSA-AES256-GCM-SHA384");
  assert_int_equal(maild__tls_handshake(p.c), 0);
  pair_del(&p);
}

static void test_handshake_hostname_is_a_san(void **state) {
  pair p;
  int crc, src;
  (void)state;

  pair_new(&p, cert_path, 1, "mx.test.example");
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(crc, 0);
  assert_int_equal(src, 0);
  assert_int_equal(maild__tls_peer_verified(p.c), 1);
  pair_del(&p);
}

static void test_handshake_wrong_name(void **state) {
  const uint8_t *out;
  pair p;
  int crc, src;
  (void)state;

  pair_new(&p, cert_path, 1, "wrong.example");
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(crc, MAILD_ERR_TLS);
  assert_string_equal(maild__tls_error(p.c),
                      "certificate verify failed (name mismatch)");
  assert_int_equal(maild__tls_peer_verified(p.c), 0);
  /* The client's alert reached the server. */
  assert_int_equal(src, MAILD_ERR_TLS);
  assert_non_null(strstr(maild__tls_error(p.s), "alert from peer"));
  /* Sticky. */
  assert_int_equal(maild__tls_handshake(p.c), MAILD_ERR_TLS);
  assert_int_equal(maild__tls_write(p.c, (const uint8_t *)"x", 1),
                   MAILD_ERR_TLS);
  assert_int_equal(maild__tls_feed(p.c, (const uint8_t *)"x", 1), 0);
  assert_true(maild__tls_output(p.s, &out) >= 0);
  pair_del(&p);
}

static void test_handshake_untrusted_ca(void **state) {
  char c2[128], k2[128], err[256];
  pair p;
  int crc, src;
  (void)state;

  join(c2, sizeof(c2), "ca-c.pem");
  join(k2, sizeof(k2), "ca-k.pem");
  assert_int_equal(maild__tls_generate_self_signed(c2, k2, "localhost", 0, NULL,
                                                   err, sizeof(err)),
                   0);
  pair_new(&p, c2, 1, "localhost");
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(crc, MAILD_ERR_TLS);
  assert_string_equal(maild__tls_error(p.c),
                      "certificate verify failed (not trusted)");
  pair_del(&p);
  /* Opportunistic with the wrong CA: works, reported unverified. */
  pair_new(&p, c2, 0, "localhost");
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(crc, 0);
  assert_int_equal(src, 0);
  assert_int_equal(maild__tls_peer_verified(p.c), 0);
  pair_del(&p);
  unlink(c2);
  unlink(k2);
}

static void test_handshake_opportunistic(void **state) {
  pair p;
  int crc, src;
  (void)state;

  /* No CA at all, any name (or none). */
  pair_new(&p, NULL, 0, NULL);
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(crc, 0);
  assert_int_equal(src, 0);
  assert_int_equal(maild__tls_peer_verified(p.c), 0);
  assert_allowed_info(p.c);
  pair_del(&p);
  /* With the CA but a wrong name: still works, not verified. */
  pair_new(&p, cert_path, 0, "wrong.example");
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(crc, 0);
  assert_int_equal(maild__tls_peer_verified(p.c), 0);
  pair_del(&p);
  /* With the CA and the right name: verified. */
  pair_new(&p, cert_path, 0, "localhost");
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(crc, 0);
  assert_int_equal(maild__tls_peer_verified(p.c), 1);
  pair_del(&p);
}

static void test_handshake_byte_by_byte(void **state) {
  static const size_t chunks[] = {1, 2, 5, 7, 100, 1000};
  size_t i;
  pair p;
  int crc, src;
  (void)state;

  for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
    pair_new(&p, cert_path, 1, "localhost");
    handshake(p.c, p.s, chunks[i], &crc, &src);
    assert_int_equal(crc, 0);
    assert_int_equal(src, 0);
    assert_int_equal(maild__tls_peer_verified(p.c), 1);
    pair_del(&p);
  }
}

/* --- Data ----------------------------------------------------------------*/

static uint8_t pattern(size_t i) {
  return (uint8_t)(i * 7u + i / 251u);
}

/* Streams `total` octets from `w` to `r`, writing `wchunk` at a time and
   moving ciphertext `fchunk` at a time; checks every octet. */
static void stream(maild_tls *w, maild_tls *r, size_t total, size_t wchunk,
                   size_t fchunk) {
  static uint8_t src[65536], dst[65536];
  size_t sent = 0, got = 0, i, k;
  maild_ssize n;
  int rounds = 0;

  while (got < total) {
    if (sent < total) {
      k = total - sent < wchunk ? total - sent : wchunk;
      if (k > sizeof(src))
        k = sizeof(src);
      for (i = 0; i < k; i++)
        src[i] = pattern(sent + i);
      n = maild__tls_write(w, src, k);
      if (n != MAILD_ERR_AGAIN) {
        assert_true(n > 0 && (size_t)n <= k);
        sent += (size_t)n;
      }
    }
    move(w, r, fchunk);
    while ((n = maild__tls_read(r, dst, sizeof(dst))) > 0) {
      for (i = 0; i < (size_t)n; i++)
        assert_int_equal(dst[i], pattern(got + i));
      got += (size_t)n;
    }
    assert_int_equal(n, MAILD_ERR_AGAIN);
    assert_true(++rounds < 10000000);
  }
  assert_int_equal(sent, total);
}

static void test_data_both_ways_and_close(void **state) {
  uint8_t buf[256];
  pair p;
  int crc, src;
  (void)state;

  pair_new(&p, cert_path, 1, "localhost");
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(crc, 0);
  assert_int_equal(maild__tls_read(p.s, buf, sizeof(buf)), MAILD_ERR_AGAIN);

  assert_int_equal(maild__tls_write(p.s, (const uint8_t *)"220 hi\r\n", 8), 8);
  move(p.s, p.c, SIZE_MAX);
  assert_int_equal(maild__tls_read(p.c, buf, sizeof(buf)), 8);
  assert_memory_equal(buf, "220 hi\r\n", 8);
  assert_int_equal(maild__tls_write(p.c, (const uint8_t *)"EHLO c\r\n", 8), 8);
  move(p.c, p.s, SIZE_MAX);
  /* Small reads take a record in pieces. */
  assert_int_equal(maild__tls_read(p.s, buf, 3), 3);
  assert_int_equal(maild__tls_read(p.s, buf + 3, sizeof(buf) - 3), 5);
  assert_memory_equal(buf, "EHLO c\r\n", 8);

  stream(p.c, p.s, 1024 * 1024, 4093, 1500);
  stream(p.s, p.c, 1024 * 1024, 65536, SIZE_MAX);
  stream(p.c, p.s, 100000, 1, 7);

  /* close_notify: the peer reads 0, again and again. */
  assert_int_equal(maild__tls_close(p.c), 0);
  assert_int_equal(maild__tls_close(p.c), 0);
  assert_int_equal(maild__tls_write(p.c, buf, 1), MAILD_ERR_CLOSED);
  move(p.c, p.s, SIZE_MAX);
  assert_int_equal(maild__tls_read(p.s, buf, sizeof(buf)), 0);
  assert_int_equal(maild__tls_read(p.s, buf, sizeof(buf)), 0);
  assert_int_equal(maild__tls_write(p.s, buf, 1), MAILD_ERR_CLOSED);
  assert_int_equal(maild__tls_close(p.s), 0);
  move(p.s, p.c, SIZE_MAX);
  assert_int_equal(maild__tls_read(p.c, buf, sizeof(buf)), 0);
  assert_string_equal(maild__tls_error(p.s), "");
  pair_del(&p);
}

static void test_data_after_handshake_in_same_flight(void **state) {
  uint8_t buf[64];
  pair p;
  int crc, src, rounds;
  (void)state;

  pair_new(&p, NULL, 0, NULL);
  /* Drive the server to completion, then queue the greeting right after
     its Finished, and deliver both at once. */
  crc = maild__tls_handshake(p.c);
  src = MAILD_ERR_AGAIN;
  for (rounds = 0; src != 0; rounds++) {
    assert_true(rounds < 100);
    move(p.c, p.s, SIZE_MAX);
    src = maild__tls_handshake(p.s);
    if (src == 0)
      break;
    move(p.s, p.c, SIZE_MAX);
    crc = maild__tls_handshake(p.c);
  }
  assert_int_equal(maild__tls_write(p.s, (const uint8_t *)"220 x\r\n", 7), 7);
  move(p.s, p.c, SIZE_MAX);
  assert_int_equal(maild__tls_handshake(p.c), 0);
  assert_int_equal(maild__tls_read(p.c, buf, sizeof(buf)), 7);
  (void)crc;
  pair_del(&p);
}

static void test_write_bounded_by_output(void **state) {
  static uint8_t big[65536];
  const uint8_t *out;
  maild_ssize n;
  size_t total = 0;
  pair p;
  int crc, src;
  (void)state;

  pair_new(&p, NULL, 0, NULL);
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(src, 0);
  /* Without sending, writes stop short of the bound. */
  while ((n = maild__tls_write(p.s, big, sizeof(big))) > 0) {
    assert_true((size_t)n <= 16384);
    total += (size_t)n;
  }
  assert_int_equal(n, MAILD_ERR_AGAIN);
  assert_true(total > 16384);
  n = maild__tls_output(p.s, &out);
  assert_true((size_t)n <= MAILD__TLS_BUFFER_MAX);
  /* Closing still fits. */
  assert_int_equal(maild__tls_close(p.s), 0);
  assert_true((size_t)maild__tls_output(p.s, &out) > (size_t)n);
  pair_del(&p);
}

/* --- Hostile peers -------------------------------------------------------*/

static maild_tls_config *server_config(void) {
  maild_tls_config *cfg;
  char err[256];

  assert_int_equal(maild__tls_config_server_new(&cfg, cert_path, key_path, NULL,
                                                err, sizeof(err)),
                   0);
  return cfg;
}

static void test_plaintext_to_server(void **state) {
  static const char *inputs[] = {"EHLO x\r\n", "GET / HTTP/1.0\r\n\r\n",
                                 "HELO"};
  maild_tls_config *cfg = server_config();
  const uint8_t *out;
  maild_tls *t;
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
    assert_int_equal(maild__tls_new(&t, cfg, NULL, NULL), 0);
    assert_int_equal(
        maild__tls_feed(t, (const uint8_t *)inputs[i], strlen(inputs[i])), 0);
    assert_int_equal(maild__tls_handshake(t), MAILD_ERR_TLS);
    assert_string_equal(maild__tls_error(t), "peer sent plaintext, not TLS");
    assert_int_equal(maild__tls_handshake(t), MAILD_ERR_TLS);
    assert_true(maild__tls_output(t, &out) >= 0);
    maild__tls_del(t);
  }
  maild__tls_config_del(cfg);
}

static void test_plaintext_to_client(void **state) {
  static const char banner[] = "220 mx.example ESMTP\r\n";
  maild_tls_config *cfg;
  maild_tls *t;
  char err[256];
  (void)state;

  assert_int_equal(
      maild__tls_config_client_new(&cfg, NULL, 0, NULL, err, sizeof(err)), 0);
  assert_int_equal(maild__tls_new(&t, cfg, "mx.example", NULL), 0);
  assert_int_equal(maild__tls_handshake(t), MAILD_ERR_AGAIN);
  assert_int_equal(
      maild__tls_feed(t, (const uint8_t *)banner, sizeof(banner) - 1), 0);
  assert_int_equal(maild__tls_handshake(t), MAILD_ERR_TLS);
  assert_string_equal(maild__tls_error(t), "peer sent plaintext, not TLS");
  maild__tls_del(t);
  maild__tls_config_del(cfg);
}

static uint32_t xorshift(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void test_garbage_to_server(void **state) {
  maild_tls_config *cfg = server_config();
  uint8_t junk[4096];
  uint32_t seed = 12345;
  maild_tls *t;
  size_t i, len;
  int round, rc;
  (void)state;

  for (round = 0; round < 200; round++) {
    len = 1 + xorshift(&seed) % sizeof(junk);
    for (i = 0; i < len; i++)
      junk[i] = (uint8_t)xorshift(&seed);
    /* Some rounds look like a handshake record header. */
    if (round % 3 == 0 && len >= 5) {
      junk[0] = 0x16;
      junk[1] = 3;
      junk[2] = (uint8_t)(round % 4);
    }
    assert_int_equal(maild__tls_new(&t, cfg, NULL, NULL), 0);
    assert_int_equal(maild__tls_feed(t, junk, len), 0);
    rc = maild__tls_handshake(t);
    /* A plausible header with a long length waits for the rest. */
    assert_true(rc == MAILD_ERR_TLS || rc == MAILD_ERR_AGAIN);
    if (rc == MAILD_ERR_TLS)
      assert_true(strlen(maild__tls_error(t)) > 0);
    assert_true(maild__tls_feed_room(t) + len >= MAILD__TLS_BUFFER_MAX);
    maild__tls_del(t);
  }
  maild__tls_config_del(cfg);
}

/* Handshake flights with one octet changed, to a fresh peer each time:
   every outcome is a clean AGAIN or TLS failure, never a crash. */
static void test_mutated_handshake(void **state) {
  static uint8_t flight[8192];
  uint32_t seed = 777;
  const uint8_t *out;
  maild_ssize n;
  size_t len;
  pair p;
  int round, rc, crc, src, passed = 0;
  (void)state;

  for (round = 0; round < 120; round++) {
    pair_new(&p, cert_path, 1, "localhost");
    assert_int_equal(maild__tls_handshake(p.c), MAILD_ERR_AGAIN);
    if (round % 2 == 1) {
      /* Mutate the server's flight instead of the ClientHello. */
      move(p.c, p.s, SIZE_MAX);
      assert_int_equal(maild__tls_handshake(p.s), MAILD_ERR_AGAIN);
      n = maild__tls_output(p.s, &out);
    } else {
      n = maild__tls_output(p.c, &out);
    }
    assert_true(n > 0 && (size_t)n <= sizeof(flight));
    len = (size_t)n;
    memcpy(flight, out, len);
    flight[xorshift(&seed) % len] ^= (uint8_t)(1 + xorshift(&seed) % 255);
    if (round % 2 == 1) {
      maild__tls_consume(p.s, len);
      assert_int_equal(maild__tls_feed(p.c, flight, len), 0);
      rc = maild__tls_handshake(p.c);
    } else {
      maild__tls_consume(p.c, len);
      assert_int_equal(maild__tls_feed(p.s, flight, len), 0);
      rc = maild__tls_handshake(p.s);
    }
    assert_true(rc == MAILD_ERR_AGAIN || rc == MAILD_ERR_TLS);
    /* Play on. A changed handshake message fails the Finished check; a
       changed record header (not part of the transcript) may pass. */
    handshake(p.c, p.s, SIZE_MAX, &crc, &src);
    assert_true(crc == 0 || crc == MAILD_ERR_AGAIN || crc == MAILD_ERR_TLS);
    assert_true(src == 0 || src == MAILD_ERR_AGAIN || src == MAILD_ERR_TLS);
    if (crc == 0 && src == 0)
      passed++;
    pair_del(&p);
  }
  assert_true(passed < 20);
}

static void test_oversized_record(void **state) {
  static const uint8_t huge[] = {0x16, 0x03, 0x01, 0xff, 0xff};
  static const uint8_t huge_app[] = {0x17, 0x03, 0x03, 0x48, 0x01};
  maild_tls_config *cfg = server_config();
  uint8_t buf[64];
  maild_tls *t;
  pair p;
  int crc, src;
  (void)state;

  assert_int_equal(maild__tls_new(&t, cfg, NULL, NULL), 0);
  assert_int_equal(maild__tls_feed(t, huge, sizeof(huge)), 0);
  assert_int_equal(maild__tls_handshake(t), MAILD_ERR_TLS);
  maild__tls_del(t);
  maild__tls_config_del(cfg);

  /* After the handshake: a record longer than 2^14 + 2048 is refused. */
  pair_new(&p, NULL, 0, NULL);
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(src, 0);
  assert_int_equal(maild__tls_feed(p.s, huge_app, sizeof(huge_app)), 0);
  assert_int_equal(maild__tls_read(p.s, buf, sizeof(buf)), MAILD_ERR_TLS);
  assert_true(strlen(maild__tls_error(p.s)) > 0);
  pair_del(&p);
}

static void test_tampered_record(void **state) {
  uint8_t buf[64];
  const uint8_t *out;
  uint8_t copy[64];
  maild_ssize n;
  pair p;
  int crc, src;
  (void)state;

  pair_new(&p, NULL, 0, NULL);
  handshake(p.c, p.s, SIZE_MAX, &crc, &src);
  assert_int_equal(maild__tls_write(p.c, (const uint8_t *)"DATA\r\n", 6), 6);
  n = maild__tls_output(p.c, &out);
  assert_true(n > 10 && (size_t)n <= sizeof(copy));
  memcpy(copy, out, (size_t)n);
  copy[n - 1] ^= 1; /* flip a bit of the authentication tag */
  maild__tls_consume(p.c, (size_t)n);
  assert_int_equal(maild__tls_feed(p.s, copy, (size_t)n), 0);
  assert_int_equal(maild__tls_read(p.s, buf, sizeof(buf)), MAILD_ERR_TLS);
  assert_string_equal(maild__tls_error(p.s), "bad record MAC");
  assert_int_equal(maild__tls_read(p.s, buf, sizeof(buf)), MAILD_ERR_TLS);
  pair_del(&p);
}

static void test_truncated_handshake(void **state) {
  const uint8_t *out;
  maild_ssize n;
  size_t half;
  pair p;
  int i;
  (void)state;

  /* Half a ClientHello: the server waits (the runtime's timer ends it). */
  pair_new(&p, cert_path, 1, "localhost");
  assert_int_equal(maild__tls_handshake(p.c), MAILD_ERR_AGAIN);
  n = maild__tls_output(p.c, &out);
  assert_true(n > 10);
  half = (size_t)n / 2;
  assert_int_equal(maild__tls_feed(p.s, out, half), 0);
  for (i = 0; i < 100; i++)
    assert_int_equal(maild__tls_handshake(p.s), MAILD_ERR_AGAIN);
  assert_int_equal(maild__tls_output(p.s, &out), 0);
  assert_int_equal(maild__tls_feed_room(p.s), MAILD__TLS_BUFFER_MAX);
  pair_del(&p);

  /* A whole ClientHello, then silence: the server sent its flight and
     waits, holding nothing more than that flight. */
  pair_new(&p, cert_path, 1, "localhost");
  assert_int_equal(maild__tls_handshake(p.c), MAILD_ERR_AGAIN);
  move(p.c, p.s, SIZE_MAX);
  assert_int_equal(maild__tls_handshake(p.s), MAILD_ERR_AGAIN);
  n = maild__tls_output(p.s, &out);
  assert_true(n > 0 && (size_t)n < MAILD__TLS_BUFFER_MAX);
  for (i = 0; i < 100; i++)
    assert_int_equal(maild__tls_handshake(p.s), MAILD_ERR_AGAIN);
  assert_int_equal(maild__tls_output(p.s, &out), n);
  pair_del(&p);
}

static void test_feed_limit(void **state) {
  static uint8_t big[MAILD__TLS_BUFFER_MAX + 1];
  maild_tls_config *cfg = server_config();
  maild_tls *t;
  (void)state;

  memset(big, 0x16, sizeof(big));
  assert_int_equal(maild__tls_new(&t, cfg, NULL, NULL), 0);
  assert_int_equal(maild__tls_feed_room(t), MAILD__TLS_BUFFER_MAX);
  /* One past the limit: refused, nothing copied. */
  assert_int_equal(maild__tls_feed(t, big, sizeof(big)), MAILD_ERR_LIMIT);
  assert_int_equal(maild__tls_feed_room(t), MAILD__TLS_BUFFER_MAX);
  /* At the limit: accepted; then not one more octet. */
  assert_int_equal(maild__tls_feed(t, big, MAILD__TLS_BUFFER_MAX), 0);
  assert_int_equal(maild__tls_feed_room(t), 0);
  assert_int_equal(maild__tls_feed(t, big, 1), MAILD_ERR_LIMIT);
  assert_int_equal(maild__tls_feed(t, big, 0), 0);
  assert_int_equal(maild__tls_feed(t, NULL, 1), MAILD_ERR_INVAL);
  /* 0x16 0x16 ... is a record of an unknown version: refused. */
  assert_int_equal(maild__tls_handshake(t), MAILD_ERR_TLS);
  maild__tls_del(t);
  maild__tls_config_del(cfg);
}

/* Plaintext alerts where the ServerHello belongs (RFC 5246 section 7.2). */
static void test_alerts_during_handshake(void **state) {
  static const uint8_t close_notify[] = {0x15, 3, 3, 0, 2, 1, 0};
  static const uint8_t hs_failure[] = {0x15, 3, 3, 0, 2, 2, 40};
  maild_tls_config *cfg;
  maild_tls *t;
  char err[256];
  (void)state;

  assert_int_equal(
      maild__tls_config_client_new(&cfg, NULL, 0, NULL, err, sizeof(err)), 0);
  assert_int_equal(maild__tls_new(&t, cfg, "mx.example", NULL), 0);
  assert_int_equal(maild__tls_handshake(t), MAILD_ERR_AGAIN);
  assert_int_equal(maild__tls_feed(t, close_notify, sizeof(close_notify)), 0);
  assert_int_equal(maild__tls_handshake(t), MAILD_ERR_CLOSED);
  assert_int_equal(maild__tls_handshake(t), MAILD_ERR_CLOSED);
  maild__tls_del(t);

  assert_int_equal(maild__tls_new(&t, cfg, "mx.example", NULL), 0);
  assert_int_equal(maild__tls_handshake(t), MAILD_ERR_AGAIN);
  assert_int_equal(maild__tls_feed(t, hs_failure, sizeof(hs_failure)), 0);
  assert_int_equal(maild__tls_handshake(t), MAILD_ERR_TLS);
  assert_string_equal(maild__tls_error(t), "handshake failure alert from peer");
  maild__tls_del(t);
  maild__tls_config_del(cfg);
}

static void test_config_outlives_creator(void **state) {
  maild_tls_config *scfg, *ccfg;
  maild_tls *s, *c;
  char err[256];
  testmem tm;
  int crc, src;
  (void)state;

  testmem_init(&tm, 0);
  assert_int_equal(maild__tls_config_server_new(&scfg, cert_path, key_path,
                                                &tm.mem, err, sizeof(err)),
                   0);
  assert_int_equal(
      maild__tls_config_client_new(&ccfg, NULL, 0, &tm.mem, err, sizeof(err)),
      0);
  assert_int_equal(maild__tls_new(&s, scfg, NULL, &tm.mem), 0);
  assert_int_equal(maild__tls_new(&c, ccfg, NULL, &tm.mem), 0);
  /* A reload drops the old configurations while sessions run. */
  maild__tls_config_del(scfg);
  maild__tls_config_del(ccfg);
  handshake(c, s, SIZE_MAX, &crc, &src);
  assert_int_equal(crc, 0);
  assert_int_equal(src, 0);
  assert_true(tm.live > 0);
  maild__tls_del(s);
  maild__tls_del(c);
  assert_int_equal(tm.live, 0);
}

/* Session creation and a whole handshake with the N-th of the session's
   own allocations failing, for every N, on either side. */
static void test_nomem_sweep(void **state) {
  maild_tls_config *scfg, *ccfg;
  maild_tls *s, *c;
  char err[256];
  testmem tm;
  size_t n;
  int side, rc, crc, src, rounds;
  (void)state;

  scfg = server_config();
  assert_int_equal(
      maild__tls_config_client_new(&ccfg, cert_path, 1, NULL, err, sizeof(err)),
      0);
  for (side = 0; side < 2; side++) {
    for (n = 1;; n++) {
      testmem_init(&tm, n);
      s = c = NULL;
      rc = maild__tls_new(&s, scfg, NULL, side == 0 ? &tm.mem : NULL);
      if (rc == 0)
        rc = maild__tls_new(&c, ccfg, "localhost", side == 1 ? &tm.mem : NULL);
      if (rc == 0) {
        const uint8_t *p;
        maild_ssize k;
        crc = maild__tls_handshake(c);
        src = MAILD_ERR_AGAIN;
        for (rounds = 0; rounds < 100 && !(crc == 0 && src == 0); rounds++) {
          if ((k = maild__tls_output(c, &p)) > 0) {
            rc = maild__tls_feed(s, p, (size_t)k);
            if (rc != 0)
              break;
            maild__tls_consume(c, (size_t)k);
            src = maild__tls_handshake(s);
          }
          if ((k = maild__tls_output(s, &p)) > 0) {
            rc = maild__tls_feed(c, p, (size_t)k);
            if (rc != 0)
              break;
            maild__tls_consume(s, (size_t)k);
            crc = maild__tls_handshake(c);
          }
          if (crc == MAILD_ERR_NOMEM || src == MAILD_ERR_NOMEM)
            break;
        }
        if (rc == 0 && crc == 0 && src == 0)
          assert_int_equal(tm.failures, 0);
        else
          assert_true(rc == MAILD_ERR_NOMEM || crc == MAILD_ERR_NOMEM ||
                      src == MAILD_ERR_NOMEM);
      } else {
        assert_int_equal(rc, MAILD_ERR_NOMEM);
      }
      maild__tls_del(c);
      maild__tls_del(s);
      assert_int_equal(tm.live, 0);
      if (tm.failures == 0)
        break;
    }
    assert_true(n > 2);
  }
  maild__tls_config_del(ccfg);
  maild__tls_config_del(scfg);
}

/* `test_tls --generate CERT KEY HOSTNAME` only writes a certificate, for
   tests/integration/test_tls_openssl.py to inspect with openssl. */
static int generate_only(char **argv) {
  char err[256];

  if (maild__tls_generate_self_signed(argv[2], argv[3], argv[4], 0, NULL, err,
                                      sizeof(err)) != 0) {
    fprintf(stderr, "test_tls: %s\n", err);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_generate_modes_and_names),
      cmocka_unit_test(test_generate_bad_arguments),
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_config_nomem_sweep),
      cmocka_unit_test(test_session_arguments),
      cmocka_unit_test(test_handshake_verified),
      cmocka_unit_test(test_handshake_hostname_is_a_san),
      cmocka_unit_test(test_handshake_wrong_name),
      cmocka_unit_test(test_handshake_untrusted_ca),
      cmocka_unit_test(test_handshake_opportunistic),
      cmocka_unit_test(test_handshake_byte_by_byte),
      cmocka_unit_test(test_data_both_ways_and_close),
      cmocka_unit_test(test_data_after_handshake_in_same_flight),
      cmocka_unit_test(test_write_bounded_by_output),
      cmocka_unit_test(test_plaintext_to_server),
      cmocka_unit_test(test_plaintext_to_client),
      cmocka_unit_test(test_garbage_to_server),
      cmocka_unit_test(test_mutated_handshake),
      cmocka_unit_test(test_oversized_record),
      cmocka_unit_test(test_tampered_record),
      cmocka_unit_test(test_truncated_handshake),
      cmocka_unit_test(test_feed_limit),
      cmocka_unit_test(test_alerts_during_handshake),
      cmocka_unit_test(test_config_outlives_creator),
      cmocka_unit_test(test_nomem_sweep),
  };

  if (argc == 5 && strcmp(argv[1], "--generate") == 0)
    return generate_only(argv);
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
