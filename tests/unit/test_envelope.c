/*
 * Unit tests for the envelope record codec and CRC-32: round trips, one
 * encoding per envelope, every limit at and past its bound, and that torn
 * (every truncation), bit-flipped and hand-made bad files are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "maild/error.h"
#include "maild/esmtp.h"
#include "core/buf.h"
#include "core/crc32.h"
#include "core/mem.h"
#include "queue/spool.h"
#include "testmem.h"

static maild_envelope_rcpt test_rcpts[3] = {
    {"alice@example.org", "rfc822", "Alice@Example.ORG",
     MAILD_NOTIFY_SUCCESS | MAILD_NOTIFY_FAILURE, MAILD_RCPT_PENDING},
    {"b\xc3\xbc@example.net", "", "", 0, MAILD_RCPT_DONE},
    {"carol@example.com", "utf-8", "carol@example.com", MAILD_NOTIFY_NEVER,
     MAILD_RCPT_FAILED},
};

static void sample(maild_envelope *e) {
  memset(e, 0, sizeof(*e));
  memcpy(e->id, "00060a2418ab3c4ddeadbeef", MAILD_SPOOL_ID_LEN + 1);
  e->arrival_usec = 1700000000123456;
  e->sender = "sender@example.com";
  e->envid = "QQ314159";
  e->ret = MAILD_RET_HDRS;
  e->body = MAILD_BODY_8BITMIME;
  e->smtputf8 = 1;
  e->client_addr = "2001:db8::1";
  e->client_helo = "mail.example.com";
  e->auth_id = "";
  e->msg_size = 12345;
  e->msg_crc32 = 0xcafef00du;
  e->return_path_len = 36;
  e->nrcpt = 3;
  e->rcpt = test_rcpts;
}

static void encode_ok(const maild_envelope *e, maild_buf *b, maild_mem *m) {
  maild__buf_init(b, MAILD_ENV_FILE_MAX);
  assert_int_equal(maild__envelope_encode(e, b, m), 0);
}

/* Recomputes the END record's CRC after a test edited the octets. */
static void fix_crc(uint8_t *p, size_t len) {
  uint32_t c = maild__crc32(0, p, len - 4);
  p[len - 4] = (uint8_t)(c >> 24);
  p[len - 3] = (uint8_t)(c >> 16);
  p[len - 2] = (uint8_t)(c >> 8);
  p[len - 1] = (uint8_t)c;
}

static int decode_rc(const uint8_t *p, size_t len, const char **why) {
  maild_envelope *e = NULL;
  maild_mem m;
  int rc;

  maild__mem_init(&m, NULL);
  rc = maild__envelope_decode(&e, p, len, &m, why);
  if (rc == 0)
    assert_non_null(e);
  else
    assert_null(e);
  maild__envelope_free(e, &m);
  return rc;
}

static void test_crc32_vectors(void **state) {
  (void)state;
  assert_int_equal(maild__crc32(0, "123456789", 9), 0xcbf43926u);
  assert_int_equal(maild__crc32(0, "", 0), 0);
  assert_int_equal(maild__crc32(maild__crc32(0, "1234", 4), "56789", 5),
                   0xcbf43926u);
  assert_int_equal(
      maild__crc32(0, "The quick brown fox jumps over the lazy dog", 43),
      0x414fa339u);
}

static void test_roundtrip(void **state) {
  maild_envelope e, *d;
  maild_buf b, b2;
  maild_mem m;
  size_t i;
  (void)state;

  maild__mem_init(&m, NULL);
  sample(&e);
  encode_ok(&e, &b, &m);
  assert_int_equal(maild__envelope_decode(&d, maild__buf_peek(&b),
                                          maild__buf_used(&b), &m, NULL),
                   0);
  assert_string_equal(d->id, e.id);
  assert_true(d->arrival_usec == e.arrival_usec);
  assert_string_equal(d->sender, e.sender);
  assert_string_equal(d->envid, e.envid);
  assert_int_equal(d->ret, e.ret);
  assert_int_equal(d->body, e.body);
  assert_int_equal(d->smtputf8, 1);
  assert_string_equal(d->client_addr, e.client_addr);
  assert_string_equal(d->client_helo, e.client_helo);
  assert_string_equal(d->auth_id, "");
  assert_true(d->msg_size == 12345);
  assert_int_equal(d->msg_crc32, 0xcafef00du);
  assert_int_equal(d->return_path_len, 36);
  assert_int_equal(d->nrcpt, 3);
  for (i = 0; i < 3; i++) {
    assert_string_equal(d->rcpt[i].addr, test_rcpts[i].addr);
    assert_string_equal(d->rcpt[i].orcpt_type, test_rcpts[i].orcpt_type);
    assert_string_equal(d->rcpt[i].orcpt, test_rcpts[i].orcpt);
    assert_int_equal(d->rcpt[i].notify, test_rcpts[i].notify);
    assert_int_equal(d->rcpt[i].state, test_rcpts[i].state);
  }
  /* One encoding per envelope: decode then encode gives the same octets. */
  encode_ok(d, &b2, &m);
  assert_int_equal(maild__buf_used(&b2), maild__buf_used(&b));
  assert_memory_equal(maild__buf_peek(&b2), maild__buf_peek(&b),
                      maild__buf_used(&b));
  /* Starts with the magic record, ends with END. */
  assert_memory_equal(maild__buf_peek(&b), "M\0\0\0\x09MAILDENV\x01", 14);
  assert_int_equal(maild__buf_peek(&b)[maild__buf_used(&b) - 9], 'E');
  maild__envelope_free(d, &m);
  maild__buf_free(&b, &m);
  maild__buf_free(&b2, &m);

  /* The delay-warning flag shares the octet with SMTPUTF8, both ways. */
  for (i = 0; i < 4; i++) {
    sample(&e);
    e.smtputf8 = (int)(i & 1);
    e.delay_warned = (int)(i >> 1);
    encode_ok(&e, &b, &m);
    assert_int_equal(maild__envelope_decode(&d, maild__buf_peek(&b),
                                            maild__buf_used(&b), &m, NULL),
                     0);
    assert_int_equal(d->smtputf8, e.smtputf8);
    assert_int_equal(d->delay_warned, e.delay_warned);
    maild__envelope_free(d, &m);
    maild__buf_free(&b, &m);
  }
}

static void test_null_strings_and_null_sender(void **state) {
  maild_envelope e, *d;
  maild_envelope_rcpt r = {"x@y", NULL, NULL, 0, 0};
  maild_buf b;
  maild_mem m;
  (void)state;

  maild__mem_init(&m, NULL);
  sample(&e);
  e.sender = "";
  e.envid = e.client_addr = e.client_helo = e.auth_id = NULL;
  e.rcpt = &r;
  e.nrcpt = 1;
  e.return_path_len = 0;
  e.msg_size = 0;
  encode_ok(&e, &b, &m);
  assert_int_equal(maild__envelope_decode(&d, maild__buf_peek(&b),
                                          maild__buf_used(&b), &m, NULL),
                   0);
  assert_string_equal(d->sender, "");
  assert_string_equal(d->envid, "");
  assert_string_equal(d->client_helo, "");
  assert_string_equal(d->rcpt[0].orcpt_type, "");
  assert_string_equal(d->rcpt[0].orcpt, "");
  maild__envelope_free(d, &m);
  maild__buf_free(&b, &m);
}

static void test_encode_refuses_bad_values(void **state) {
  maild_envelope e;
  maild_envelope_rcpt r;
  maild_buf b;
  maild_mem m;
  (void)state;

  maild__mem_init(&m, NULL);
  maild__buf_init(&b, MAILD_ENV_FILE_MAX);
#define EXPECT_ENC(rc, edit)                                  \
  do {                                                        \
    sample(&e);                                               \
    r = test_rcpts[0];                                        \
    e.rcpt = &r;                                              \
    e.nrcpt = 1;                                              \
    edit;                                                     \
    assert_int_equal(maild__envelope_encode(&e, &b, &m), rc); \
    assert_int_equal(maild__buf_used(&b), 0);                 \
  } while (0)
  EXPECT_ENC(MAILD_ERR_INVAL, e.id[3] = 'A');
  EXPECT_ENC(MAILD_ERR_INVAL, e.id[23] = '\0');
  EXPECT_ENC(MAILD_ERR_INVAL, e.arrival_usec = -1);
  EXPECT_ENC(MAILD_ERR_INVAL, e.ret = 3);
  EXPECT_ENC(MAILD_ERR_INVAL, e.body = 4);
  EXPECT_ENC(MAILD_ERR_INVAL, e.smtputf8 = 2);
  EXPECT_ENC(MAILD_ERR_INVAL, e.delay_warned = 2);
  EXPECT_ENC(MAILD_ERR_INVAL, e.return_path_len = 12346);
  EXPECT_ENC(MAILD_ERR_INVAL, e.nrcpt = 0);
  EXPECT_ENC(MAILD_ERR_INVAL, e.rcpt = NULL);
  EXPECT_ENC(MAILD_ERR_INVAL, r.addr = "");
  EXPECT_ENC(MAILD_ERR_INVAL, r.addr = NULL);
  EXPECT_ENC(MAILD_ERR_INVAL, r.state = 3);
  EXPECT_ENC(MAILD_ERR_INVAL, r.notify = 0x10);
  /* At the bound: the Return-Path may be the whole message. */
  sample(&e);
  e.return_path_len = 12345;
  assert_int_equal(maild__envelope_encode(&e, &b, &m), 0);
  maild__buf_free(&b, &m);
}

static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* Every limit at its bound (accepted both ways) and one past it. */
static void test_string_limits(void **state) {
  maild_envelope e, *d;
  maild_envelope_rcpt r;
  maild_buf b;
  maild_mem m;
  char *a1024 = repeat('a', 1024), *a1025 = repeat('a', 1025);
  char *t32 = repeat('t', 32), *t33 = repeat('t', 33);
  (void)state;

  maild__mem_init(&m, NULL);
  sample(&e);
  r = test_rcpts[0];
  e.rcpt = &r;
  e.nrcpt = 1;
  e.sender = e.envid = e.client_addr = e.client_helo = e.auth_id = a1024;
  r.addr = r.orcpt = a1024;
  r.orcpt_type = t32;
  encode_ok(&e, &b, &m);
  assert_int_equal(maild__envelope_decode(&d, maild__buf_peek(&b),
                                          maild__buf_used(&b), &m, NULL),
                   0);
  assert_int_equal(strlen(d->rcpt[0].orcpt), 1024);
  maild__envelope_free(d, &m);
  maild__buf_clear(&b);
#define PAST(field, val)                                                      \
  do {                                                                        \
    const char *save_ = (field);                                              \
    (field) = (val);                                                          \
    assert_int_equal(maild__envelope_encode(&e, &b, &m), MAILD_ERR_TOO_LONG); \
    (field) = save_;                                                          \
  } while (0)
  PAST(e.sender, a1025);
  PAST(e.envid, a1025);
  PAST(e.client_addr, a1025);
  PAST(e.client_helo, a1025);
  PAST(e.auth_id, a1025);
  PAST(r.addr, a1025);
  PAST(r.orcpt, a1025);
  PAST(r.orcpt_type, t33);
  /* The decoder enforces the same bound: lengthen the sender by one octet
     by hand (the sender record follows the 'F' record). */
  {
    maild_buf h;
    uint8_t *p;
    size_t off;
    e.sender = "";
    encode_ok(&e, &h, &m);
    p = (uint8_t *)maild__buf_peek(&h);
    off = 14 + 29 + 13 + 21 + 8; /* M, I, T, B, F */
    assert_int_equal(p[off], 'S');
    {
      size_t len = maild__buf_used(&h), n = len + 1025;
      uint8_t *q = malloc(n);
      const char *why;
      memcpy(q, p, off);
      q[off] = 'S';
      q[off + 1] = 0;
      q[off + 2] = 0;
      q[off + 3] = 0x04;
      q[off + 4] = 0x01;
      memset(q + off + 5, 's', 1025);
      memcpy(q + off + 5 + 1025, p + off + 5, len - off - 5);
      fix_crc(q, n);
      assert_int_equal(decode_rc(q, n, &why), MAILD_ERR_SYNTAX);
      assert_string_equal(why, "string too long");
      /* ... and 1024 is fine. */
      memmove(q + off + 5 + 1024, q + off + 5 + 1025, len - off - 5);
      q[off + 4] = 0x00;
      fix_crc(q, n - 1);
      assert_int_equal(decode_rc(q, n - 1, NULL), 0);
      free(q);
    }
    maild__buf_free(&h, &m);
  }
  maild__buf_free(&b, &m);
  free(a1024);
  free(a1025);
  free(t32);
  free(t33);
}

static void test_recipient_limit(void **state) {
  maild_envelope e, *d;
  maild_envelope_rcpt *rs;
  maild_buf b;
  maild_mem m;
  size_t i, len, rlen;
  uint8_t *q;
  const uint8_t *p;
  const char *why;
  (void)state;

  maild__mem_init(&m, NULL);
  rs = calloc(MAILD_ENV_RCPT_MAX + 1, sizeof(*rs));
  assert_non_null(rs);
  for (i = 0; i <= MAILD_ENV_RCPT_MAX; i++)
    rs[i].addr = "u@example.org";
  sample(&e);
  e.rcpt = rs;
  e.nrcpt = MAILD_ENV_RCPT_MAX + 1;
  maild__buf_init(&b, MAILD_ENV_FILE_MAX);
  assert_int_equal(maild__envelope_encode(&e, &b, &m), MAILD_ERR_TOO_LONG);
  e.nrcpt = MAILD_ENV_RCPT_MAX;
  assert_int_equal(maild__envelope_encode(&e, &b, &m), 0);
  p = maild__buf_peek(&b);
  len = maild__buf_used(&b);
  assert_int_equal(maild__envelope_decode(&d, p, len, &m, NULL), 0);
  assert_int_equal(d->nrcpt, MAILD_ENV_RCPT_MAX);
  maild__envelope_free(d, &m);
  /* One more recipient record, added by hand, is refused on decode. */
  rlen = 5 + 7 + strlen("u@example.org");
  q = malloc(len + rlen);
  assert_non_null(q);
  memcpy(q, p, len - 9);
  memcpy(q + len - 9, p + len - 9 - rlen, rlen);
  memcpy(q + len - 9 + rlen, p + len - 9, 9);
  fix_crc(q, len + rlen);
  assert_int_equal(decode_rc(q, len + rlen, &why), MAILD_ERR_SYNTAX);
  assert_string_equal(why, "too many recipients");
  free(q);
  free(rs);
  maild__buf_free(&b, &m);
}

static void test_buf_limit_leaves_buf(void **state) {
  maild_envelope e;
  maild_buf b;
  maild_mem m;
  (void)state;

  maild__mem_init(&m, NULL);
  sample(&e);
  maild__buf_init(&b, 100);
  assert_int_equal(maild__buf_append(&b, &m, "xyz", 3), 0);
  assert_int_equal(maild__envelope_encode(&e, &b, &m), MAILD_ERR_LIMIT);
  assert_int_equal(maild__buf_used(&b), 3);
  maild__buf_free(&b, &m);
}

/* A torn file (every proper prefix) is never an envelope. */
static void test_every_truncation(void **state) {
  maild_envelope e;
  maild_buf b;
  maild_mem m;
  size_t i;
  (void)state;

  maild__mem_init(&m, NULL);
  sample(&e);
  encode_ok(&e, &b, &m);
  for (i = 0; i < maild__buf_used(&b); i++)
    assert_int_equal(decode_rc(maild__buf_peek(&b), i, NULL), MAILD_ERR_SYNTAX);
  assert_int_equal(decode_rc(maild__buf_peek(&b), maild__buf_used(&b), NULL),
                   0);
  maild__buf_free(&b, &m);
}

static void test_every_bit_flip(void **state) {
  maild_envelope e;
  maild_buf b;
  maild_mem m;
  uint8_t *p;
  size_t i, len;
  int bit, rc;
  (void)state;

  maild__mem_init(&m, NULL);
  sample(&e);
  encode_ok(&e, &b, &m);
  p = b.data + b.off;
  len = maild__buf_used(&b);
  for (i = 0; i < len; i++)
    for (bit = 0; bit < 8; bit++) {
      p[i] ^= (uint8_t)(1u << bit);
      rc = decode_rc(p, len, NULL);
      assert_true(rc == MAILD_ERR_SYNTAX ||
                  (rc == MAILD_ERR_UNSUPPORTED && i == 13));
      p[i] ^= (uint8_t)(1u << bit);
    }
  maild__buf_free(&b, &m);
}

/* Edits that keep the CRC right: the structure itself must be checked. */
static void test_bad_structure(void **state) {
  maild_envelope e;
  maild_buf b;
  maild_mem m;
  uint8_t *p, *q;
  size_t len, off;
  const char *why;
  (void)state;

  maild__mem_init(&m, NULL);
  sample(&e);
  e.sender = "a\001b";
  encode_ok(&e, &b, &m);
  p = b.data + b.off;
  len = maild__buf_used(&b);
  q = malloc(len + 16);
  assert_non_null(q);
  off = 14 + 29 + 13 + 21 + 8; /* the 'S' record */

  memcpy(q, p, len);
  q[off + 6] = '\0'; /* NUL inside the sender */
  fix_crc(q, len);
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_SYNTAX);
  assert_string_equal(why, "NUL in string");

  memcpy(q, p, len);
  q[off] = 'X'; /* unknown record type */
  fix_crc(q, len);
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_SYNTAX);
  assert_string_equal(why, "unexpected record type");

  memcpy(q, p, len);
  q[off] = 'N'; /* known type, wrong place */
  fix_crc(q, len);
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_SYNTAX);

  memcpy(q, p, len);
  q[13] = 2; /* another version */
  fix_crc(q, len);
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_UNSUPPORTED);
  assert_string_equal(why, "unsupported version");

  memcpy(q, p, len);
  q[len] = 'x'; /* octets after END */
  assert_int_equal(decode_rc(q, len + 1, &why), MAILD_ERR_SYNTAX);
  assert_string_equal(why, "octets after END record");

  memcpy(q, p, len);
  q[len - 1] ^= 1;
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_SYNTAX);
  assert_string_equal(why, "bad CRC");

  memcpy(q, p, len);
  q[5] = 'm'; /* "mAILDENV" */
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_SYNTAX);
  assert_string_equal(why, "bad magic");

  memcpy(q, p, len);
  q[off + 1] = 0x7f; /* length past the end */
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_SYNTAX);
  assert_string_equal(why, "record runs past the end");

  memcpy(q, p, len);
  q[14 + 5 + 3] = 'G'; /* id not hex */
  fix_crc(q, len);
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_SYNTAX);
  assert_string_equal(why, "bad id");

  memcpy(q, p, len);
  q[14 + 29 + 5] = 0x80; /* negative time */
  fix_crc(q, len);
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_SYNTAX);

  memcpy(q, p, len);
  q[off - 3] = 3; /* RET out of range */
  fix_crc(q, len);
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_SYNTAX);
  assert_string_equal(why, "bad RET, BODY or flags value");

  memcpy(q, p, len);
  q[off - 1] = 4; /* a flag bit nobody defined */
  fix_crc(q, len);
  assert_int_equal(decode_rc(q, len, &why), MAILD_ERR_SYNTAX);
  assert_string_equal(why, "bad RET, BODY or flags value");

  assert_int_equal(decode_rc(q, 0, &why), MAILD_ERR_SYNTAX);
  assert_int_equal(decode_rc((const uint8_t *)"", 0, NULL), MAILD_ERR_SYNTAX);
  free(q);
  maild__buf_free(&b, &m);
}

static void test_nomem_sweep(void **state) {
  maild_envelope e, *d;
  maild_buf b;
  testmem tm;
  size_t n;
  int rc, ok = 0;
  (void)state;

  sample(&e);
  for (n = 1; !ok; n++) {
    testmem_init(&tm, n);
    maild__buf_init(&b, MAILD_ENV_FILE_MAX);
    rc = maild__envelope_encode(&e, &b, &tm.mem);
    if (rc == 0) {
      rc = maild__envelope_decode(&d, maild__buf_peek(&b), maild__buf_used(&b),
                                  &tm.mem, NULL);
      if (rc == 0) {
        maild__envelope_free(d, &tm.mem);
        ok = 1;
      }
    }
    if (!ok) {
      assert_int_equal(rc, MAILD_ERR_NOMEM);
      assert_int_equal(tm.failures, 1);
    }
    maild__buf_free(&b, &tm.mem);
    assert_int_equal(tm.live, 0);
  }
  assert_true(n > 2);
}

static void test_id_valid(void **state) {
  (void)state;
  assert_true(maild__spool_id_valid("0123456789abcdef01234567"));
  assert_false(maild__spool_id_valid("0123456789abcdef0123456"));
  assert_false(maild__spool_id_valid("0123456789abcdef012345678"));
  assert_false(maild__spool_id_valid("0123456789ABCDEF01234567"));
  assert_false(maild__spool_id_valid("../3456789abcdef01234567"));
  assert_false(maild__spool_id_valid(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32_vectors),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_null_strings_and_null_sender),
      cmocka_unit_test(test_encode_refuses_bad_values),
      cmocka_unit_test(test_string_limits),
      cmocka_unit_test(test_recipient_limit),
      cmocka_unit_test(test_buf_limit_leaves_buf),
      cmocka_unit_test(test_every_truncation),
      cmocka_unit_test(test_every_bit_flip),
      cmocka_unit_test(test_bad_structure),
      cmocka_unit_test(test_nomem_sweep),
      cmocka_unit_test(test_id_valid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
