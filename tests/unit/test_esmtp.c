/*
 * Unit tests for the MAIL/RCPT ESMTP parameter parser and the xtext codec:
 * every keyword, the verb and extension gates, every limit at the limit and
 * one past it, and control octets raw and decoded (TESTPLAN S8).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "maild/esmtp.h"
#include "maild/error.h"

#define ALL_EXTS                                                              \
  (MAILD_EXT_SIZE | MAILD_EXT_8BITMIME | MAILD_EXT_SMTPUTF8 | MAILD_EXT_DSN | \
   MAILD_EXT_AUTH | MAILD_EXT_BINARYMIME)

static int mail(maild_esmtp_params *p, const char *s, unsigned exts) {
  return maild_esmtp_parse(p, s, strlen(s), MAILD_ESMTP_MAIL, exts, NULL);
}

static int rcpt(maild_esmtp_params *p, const char *s, unsigned exts) {
  return maild_esmtp_parse(p, s, strlen(s), MAILD_ESMTP_RCPT, exts, NULL);
}

/* Checks the error and that *bad points at `bad_at` within `in`. */
static void expect_bad(const char *in, size_t len, maild_esmtp_verb verb,
                       unsigned exts, int err, size_t bad_at) {
  maild_esmtp_params p;
  const char *bad = NULL;

  assert_int_equal(maild_esmtp_parse(&p, in, len, verb, exts, &bad), err);
  assert_ptr_equal(bad, in + bad_at);
}

static void expect_mail(const char *in, unsigned exts, int err) {
  maild_esmtp_params p;

  assert_int_equal(mail(&p, in, exts), err);
}

static void expect_rcpt(const char *in, unsigned exts, int err) {
  maild_esmtp_params p;

  assert_int_equal(rcpt(&p, in, exts), err);
}

static void test_empty_and_spaces(void **state) {
  maild_esmtp_params p;
  (void)state;

  assert_int_equal(mail(&p, "", 0), 0);
  assert_int_equal(p.present, 0);
  assert_int_equal(mail(&p, "   ", 0), 0);
  assert_int_equal(mail(&p, "  SIZE=10   BODY=8BITMIME  ", ALL_EXTS), 0);
  assert_int_equal(p.present, MAILD_PARAM_SIZE | MAILD_PARAM_BODY);
  assert_int_equal(p.size, 10);
  assert_int_equal(p.body, MAILD_BODY_8BITMIME);
  expect_mail("SIZE=10\tBODY=7BIT", ALL_EXTS, MAILD_ERR_BAD_CHAR);
}

static void test_size(void **state) {
  maild_esmtp_params p;
  (void)state;

  assert_int_equal(mail(&p, "SIZE=0", MAILD_EXT_SIZE), 0);
  assert_int_equal(p.present, MAILD_PARAM_SIZE);
  assert_int_equal(p.size, 0);
  assert_int_equal(mail(&p, "size=1048576", MAILD_EXT_SIZE), 0);
  assert_int_equal(p.size, 1048576);
  /* 20 digits accepted when they fit, 21 refused (RFC 1870 4). */
  assert_int_equal(mail(&p, "SIZE=18446744073709551615", MAILD_EXT_SIZE), 0);
  assert_true(p.size == UINT64_MAX);
  assert_int_equal(mail(&p, "SIZE=00000000000000000001", MAILD_EXT_SIZE), 0);
  assert_int_equal(p.size, 1);
  expect_mail("SIZE=18446744073709551616", MAILD_EXT_SIZE, MAILD_ERR_RANGE);
  expect_mail("SIZE=99999999999999999999", MAILD_EXT_SIZE, MAILD_ERR_RANGE);
  expect_mail("SIZE=000000000000000000001", MAILD_EXT_SIZE, MAILD_ERR_RANGE);
  expect_mail("SIZE=", MAILD_EXT_SIZE, MAILD_ERR_SYNTAX);
  expect_mail("SIZE", MAILD_EXT_SIZE, MAILD_ERR_SYNTAX);
  expect_mail("SIZE=-1", MAILD_EXT_SIZE, MAILD_ERR_SYNTAX);
  expect_mail("SIZE=+1", MAILD_EXT_SIZE, MAILD_ERR_SYNTAX);
  expect_mail("SIZE=1k", MAILD_EXT_SIZE, MAILD_ERR_SYNTAX);
  expect_mail("SIZE=0x10", MAILD_EXT_SIZE, MAILD_ERR_SYNTAX);
  expect_mail("SIZE=1=2", MAILD_EXT_SIZE, MAILD_ERR_SYNTAX);
  expect_mail("SIZE=10", 0, MAILD_ERR_UNSUPPORTED);
  expect_mail("SIZE=10", ALL_EXTS & ~MAILD_EXT_SIZE, MAILD_ERR_UNSUPPORTED);
  expect_rcpt("SIZE=10", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
}

static void test_body(void **state) {
  maild_esmtp_params p;
  (void)state;

  assert_int_equal(mail(&p, "BODY=7BIT", MAILD_EXT_8BITMIME), 0);
  assert_int_equal(p.body, MAILD_BODY_7BIT);
  assert_int_equal(mail(&p, "body=8bitmime", MAILD_EXT_8BITMIME), 0);
  assert_int_equal(p.body, MAILD_BODY_8BITMIME);
  assert_int_equal(
      mail(&p, "BODY=BINARYMIME", MAILD_EXT_8BITMIME | MAILD_EXT_BINARYMIME),
      0);
  assert_int_equal(p.body, MAILD_BODY_BINARYMIME);
  expect_mail("BODY=BINARYMIME", MAILD_EXT_8BITMIME, MAILD_ERR_UNSUPPORTED);
  expect_mail("BODY=8BITMIME", MAILD_EXT_BINARYMIME, MAILD_ERR_UNSUPPORTED);
  expect_mail("BODY=8BITMIME", MAILD_EXT_SIZE, MAILD_ERR_UNSUPPORTED);
  expect_mail("BODY=8BIT", MAILD_EXT_8BITMIME, MAILD_ERR_SYNTAX);
  expect_mail("BODY=", MAILD_EXT_8BITMIME, MAILD_ERR_SYNTAX);
  expect_mail("BODY", MAILD_EXT_8BITMIME, MAILD_ERR_SYNTAX);
  expect_rcpt("BODY=7BIT", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
}

static void test_smtputf8(void **state) {
  maild_esmtp_params p;
  (void)state;

  assert_int_equal(mail(&p, "SMTPUTF8", MAILD_EXT_SMTPUTF8), 0);
  assert_int_equal(p.present, MAILD_PARAM_SMTPUTF8);
  assert_int_equal(mail(&p, "smtputf8 BODY=8BITMIME", ALL_EXTS), 0);
  expect_mail("SMTPUTF8=x", MAILD_EXT_SMTPUTF8, MAILD_ERR_SYNTAX);
  expect_mail("SMTPUTF8=", MAILD_EXT_SMTPUTF8, MAILD_ERR_SYNTAX);
  expect_mail("SMTPUTF8", ALL_EXTS & ~MAILD_EXT_SMTPUTF8,
              MAILD_ERR_UNSUPPORTED);
  expect_rcpt("SMTPUTF8", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
}

static void test_ret(void **state) {
  maild_esmtp_params p;
  (void)state;

  assert_int_equal(mail(&p, "RET=FULL", MAILD_EXT_DSN), 0);
  assert_int_equal(p.ret, MAILD_RET_FULL);
  assert_int_equal(mail(&p, "ret=hdrs", MAILD_EXT_DSN), 0);
  assert_int_equal(p.ret, MAILD_RET_HDRS);
  expect_mail("RET=BODY", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_mail("RET=FULLX", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_mail("RET=", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_mail("RET=FULL", ALL_EXTS & ~MAILD_EXT_DSN, MAILD_ERR_UNSUPPORTED);
  expect_rcpt("RET=FULL", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
}

static void test_envid(void **state) {
  maild_esmtp_params p;
  char in[400];
  size_t i;
  (void)state;

  assert_int_equal(mail(&p, "ENVID=QQ314159+2Bx+20y", MAILD_EXT_DSN), 0);
  assert_string_equal(p.envid, "QQ314159+x y");
  assert_int_equal(p.envid_len, 12);
  /* 100 decoded octets accepted, 101 refused (RFC 3461 4.4). */
  strcpy(in, "ENVID=");
  for (i = 0; i < 100; i++)
    strcat(in, "+41");
  assert_int_equal(mail(&p, in, MAILD_EXT_DSN), 0);
  assert_int_equal(p.envid_len, 100);
  strcat(in, "A");
  expect_mail(in, MAILD_EXT_DSN, MAILD_ERR_TOO_LONG);
  expect_mail("ENVID=a+2", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_mail("ENVID=a+2b", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_mail("ENVID=a+G0", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_mail("ENVID=\xc3\xa9", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_mail("ENVID=+C3+A9", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_mail("ENVID=", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_mail("ENVID=x", ALL_EXTS & ~MAILD_EXT_DSN, MAILD_ERR_UNSUPPORTED);
  expect_rcpt("ENVID=x", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
}

static void test_auth(void **state) {
  maild_esmtp_params p;
  char in[700];
  size_t i;
  (void)state;

  assert_int_equal(mail(&p, "AUTH=<>", MAILD_EXT_AUTH), 0);
  assert_int_equal(p.present, MAILD_PARAM_AUTH);
  assert_string_equal(p.auth, "<>");
  assert_int_equal(p.auth_len, 2);
  assert_int_equal(mail(&p, "AUTH=e+3Dmc2@example.com", MAILD_EXT_AUTH), 0);
  assert_string_equal(p.auth, "e=mc2@example.com");
  assert_int_equal(mail(&p, "AUTH=j+C3+B6rg@x", MAILD_EXT_AUTH), 0);
  assert_string_equal(p.auth, "j\xc3\xb6rg@x");
  expect_mail("AUTH=+C3@x", MAILD_EXT_AUTH, MAILD_ERR_BAD_CHAR);
  /* 512 decoded octets accepted, 513 refused. */
  strcpy(in, "AUTH=");
  for (i = 0; i < MAILD_AUTH_PARAM_MAX; i++)
    strcat(in, "a");
  assert_int_equal(mail(&p, in, MAILD_EXT_AUTH), 0);
  assert_int_equal(p.auth_len, MAILD_AUTH_PARAM_MAX);
  strcat(in, "a");
  expect_mail(in, MAILD_EXT_AUTH, MAILD_ERR_TOO_LONG);
  expect_mail("AUTH=", MAILD_EXT_AUTH, MAILD_ERR_SYNTAX);
  expect_mail("AUTH=a=b", MAILD_EXT_AUTH, MAILD_ERR_SYNTAX);
  expect_mail("AUTH=<>", ALL_EXTS & ~MAILD_EXT_AUTH, MAILD_ERR_UNSUPPORTED);
  expect_rcpt("AUTH=<>", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
}

static void test_notify(void **state) {
  maild_esmtp_params p;
  (void)state;

  assert_int_equal(rcpt(&p, "NOTIFY=NEVER", MAILD_EXT_DSN), 0);
  assert_int_equal(p.present, MAILD_PARAM_NOTIFY);
  assert_int_equal(p.notify, MAILD_NOTIFY_NEVER);
  assert_int_equal(rcpt(&p, "notify=success,Failure,DELAY", MAILD_EXT_DSN), 0);
  assert_int_equal(p.notify, MAILD_NOTIFY_SUCCESS | MAILD_NOTIFY_FAILURE |
                                 MAILD_NOTIFY_DELAY);
  assert_int_equal(rcpt(&p, "NOTIFY=DELAY", MAILD_EXT_DSN), 0);
  assert_int_equal(p.notify, MAILD_NOTIFY_DELAY);
  expect_rcpt("NOTIFY=NEVER,SUCCESS", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("NOTIFY=FAILURE,NEVER", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("NOTIFY=NEVER,NEVER", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("NOTIFY=SUCCESS,SUCCESS", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("NOTIFY=SUCCESS,", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("NOTIFY=,SUCCESS", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("NOTIFY=SUCCESS,,DELAY", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("NOTIFY=SOMETIMES", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("NOTIFY=", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("NOTIFY=NEVER", ALL_EXTS & ~MAILD_EXT_DSN, MAILD_ERR_UNSUPPORTED);
  expect_mail("NOTIFY=NEVER", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
}

static void test_orcpt(void **state) {
  maild_esmtp_params p;
  (void)state;

  assert_int_equal(rcpt(&p, "ORCPT=rfc822;bob+2Bx@example.com", MAILD_EXT_DSN),
                   0);
  assert_int_equal(p.present, MAILD_PARAM_ORCPT);
  assert_string_equal(p.orcpt_type, "rfc822");
  assert_string_equal(p.orcpt, "bob+x@example.com");
  assert_int_equal(p.orcpt_len, 17);
  assert_int_equal(rcpt(&p, "ORCPT=RFC822;a@b", MAILD_EXT_DSN), 0);
  assert_string_equal(p.orcpt_type, "rfc822");
  assert_int_equal(rcpt(&p, "ORCPT=X-Local;a+20b", MAILD_EXT_DSN), 0);
  assert_string_equal(p.orcpt_type, "x-local");
  assert_string_equal(p.orcpt, "a b");
  expect_rcpt("ORCPT=rfc822", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=rfc822;", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=;a@b", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=rf(c;a@b", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=rfc822;a+2g", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=rfc822;a@b", ALL_EXTS & ~MAILD_EXT_DSN,
              MAILD_ERR_UNSUPPORTED);
  expect_mail("ORCPT=rfc822;a@b", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
}

static void test_orcpt_utf8(void **state) {
  maild_esmtp_params p;
  (void)state;

  /* RFC 6533 3: utf-8-addr-xtext and utf-8-addr-unitext. */
  assert_int_equal(
      rcpt(&p, "ORCPT=UTF-8;j\\x{F6}rg\\x{2B}tag@example.com", MAILD_EXT_DSN),
      0);
  assert_string_equal(p.orcpt_type, "utf-8");
  assert_string_equal(p.orcpt, "j\xc3\xb6rg+tag@example.com");
  assert_int_equal(
      rcpt(&p, "ORCPT=utf-8;\\x{1F4E7}@\\x{4F8B}.example", MAILD_EXT_DSN), 0);
  assert_string_equal(p.orcpt, "\xf0\x9f\x93\xa7@\xe4\xbe\x8b.example");
  assert_int_equal(
      rcpt(&p, "ORCPT=utf-8;\\x{10FFFF}\\x{20}\\x{3d}", MAILD_EXT_DSN), 0);
  assert_string_equal(p.orcpt, "\xf4\x8f\xbf\xbf =");
  assert_int_equal(rcpt(&p, "ORCPT=utf-8;j\xc3\xb6rg@x", MAILD_EXT_DSN), 0);
  assert_string_equal(p.orcpt, "j\xc3\xb6rg@x");
  expect_rcpt("ORCPT=utf-8;a+2Bb", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=utf-8;a\\b", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=utf-8;a\\x{}", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=utf-8;a\\x{41", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=utf-8;a\\x41", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=utf-8;a\\x{G1}", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=utf-8;a\\x{0000041}", MAILD_EXT_DSN, MAILD_ERR_SYNTAX);
  expect_rcpt("ORCPT=utf-8;a\\x{110000}", MAILD_EXT_DSN, MAILD_ERR_BAD_CHAR);
  expect_rcpt("ORCPT=utf-8;a\\x{D800}", MAILD_EXT_DSN, MAILD_ERR_BAD_CHAR);
  expect_rcpt("ORCPT=utf-8;\xc0\xaf", MAILD_EXT_DSN, MAILD_ERR_BAD_CHAR);
  expect_rcpt("ORCPT=utf-8;\xc3", MAILD_EXT_DSN, MAILD_ERR_BAD_CHAR);
}

/* 500 decoded octets accepted, 501 refused (RFC 3461 4.2). */
static void test_orcpt_limit(void **state) {
  maild_esmtp_params p;
  char in[2000];
  size_t i;
  (void)state;

  strcpy(in, "ORCPT=rfc822;");
  for (i = 0; i < MAILD_ORCPT_MAX; i++)
    strcat(in, i % 2 ? "+41" : "b");
  assert_int_equal(rcpt(&p, in, MAILD_EXT_DSN), 0);
  assert_int_equal(p.orcpt_len, MAILD_ORCPT_MAX);
  strcat(in, "c");
  expect_rcpt(in, MAILD_EXT_DSN, MAILD_ERR_TOO_LONG);
  strcpy(in, "ORCPT=utf-8;");
  for (i = 0; i < MAILD_ORCPT_MAX / 2; i++)
    strcat(in, "\\x{E9}");
  assert_int_equal(rcpt(&p, in, MAILD_EXT_DSN), 0);
  assert_int_equal(p.orcpt_len, MAILD_ORCPT_MAX);
  strcat(in, "c");
  expect_rcpt(in, MAILD_EXT_DSN, MAILD_ERR_TOO_LONG);
  /* addr-type: 32 accepted, 33 refused. */
  strcpy(in, "ORCPT=");
  for (i = 0; i < MAILD_ADDRTYPE_MAX; i++)
    strcat(in, "T");
  strcat(in, ";a");
  assert_int_equal(rcpt(&p, in, MAILD_EXT_DSN), 0);
  assert_int_equal(strlen(p.orcpt_type), MAILD_ADDRTYPE_MAX);
  memmove(in + 7, in + 6, strlen(in + 6) + 1);
  expect_rcpt(in, MAILD_EXT_DSN, MAILD_ERR_TOO_LONG);
}

/* TESTPLAN S8: CR, LF and NUL raw, as xtext and as RFC 6533 are refused. */
static void test_control_octets(void **state) {
  static const char *decoded[] = {
      "ENVID=a+0Db",
      "ENVID=a+0Ab",
      "ENVID=a+00b",
      "ENVID=a+7Fb",
      "AUTH=a+0D+0A@b",
      "AUTH=a+00@b",
      "AUTH=+09",
      "ORCPT=rfc822;a+0Db",
      "ORCPT=rfc822;a+0Ab",
      "ORCPT=rfc822;a+00b",
      "ORCPT=utf-8;a\\x{0}b",
      "ORCPT=utf-8;a\\x{D}b",
      "ORCPT=utf-8;a\\x{A}b",
      "ORCPT=utf-8;a\\x{7F}b",
      "ORCPT=utf-8;a\\x{1F}",
  };
  static const char ctl[] = {'\r', '\n', '\0', '\t', 0x1b, 0x7f};
  static const char *raw[] = {
      "ENVID=abc",       "AUTH=abc",     "SIZE=123",     "ORCPT=rfc822;abc",
      "ORCPT=utf-8;abc", "NOTIFY=NEVER", "X-UNKNOWN=abc"};
  maild_esmtp_params p;
  char in[64];
  size_t i, j, n;
  (void)state;

  for (i = 0; i < sizeof(decoded) / sizeof(decoded[0]); i++) {
    expect_bad(decoded[i], strlen(decoded[i]), MAILD_ESMTP_MAIL, ALL_EXTS,
               strncmp(decoded[i], "ORCPT", 5) ? MAILD_ERR_BAD_CHAR
                                               : MAILD_ERR_UNSUPPORTED,
               0);
    if (strncmp(decoded[i], "ORCPT", 5) == 0)
      expect_bad(decoded[i], strlen(decoded[i]), MAILD_ESMTP_RCPT, ALL_EXTS,
                 MAILD_ERR_BAD_CHAR, 0);
  }
  for (i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
    for (j = 0; j < sizeof(ctl); j++) {
      n = strlen(raw[i]);
      memcpy(in, raw[i], n);
      in[n - 2] = ctl[j];
      expect_bad(in, n, MAILD_ESMTP_MAIL, ALL_EXTS, MAILD_ERR_BAD_CHAR, 0);
      expect_bad(in, n, MAILD_ESMTP_RCPT, ALL_EXTS, MAILD_ERR_BAD_CHAR, 0);
    }
  }
  assert_int_equal(
      maild_esmtp_parse(&p, "SIZE=1\r\n", 8, MAILD_ESMTP_MAIL, ALL_EXTS, NULL),
      MAILD_ERR_BAD_CHAR);
}

static void test_keywords(void **state) {
  static const char in[] = "SIZE=1 X-FOO=bar";
  static const char dup[] = "SIZE=1  size=2";
  static const char bad_kw[] = "SIZE=1 -X=1";
  (void)state;

  expect_bad(in, strlen(in), MAILD_ESMTP_MAIL, ALL_EXTS, MAILD_ERR_UNSUPPORTED,
             7);
  expect_bad(dup, strlen(dup), MAILD_ESMTP_MAIL, ALL_EXTS, MAILD_ERR_DUPLICATE,
             8);
  expect_bad(bad_kw, strlen(bad_kw), MAILD_ESMTP_MAIL, ALL_EXTS,
             MAILD_ERR_SYNTAX, 7);
  expect_mail("=1", ALL_EXTS, MAILD_ERR_SYNTAX);
  expect_mail("SI_ZE=1", ALL_EXTS, MAILD_ERR_SYNTAX);
  expect_mail("SIZE\xc3\xa9=1", ALL_EXTS, MAILD_ERR_SYNTAX);
  expect_mail("SIZES=1", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
  expect_mail("SIZ=1", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
  expect_mail("FOO", ALL_EXTS, MAILD_ERR_UNSUPPORTED);
  expect_mail("RET=FULL RET=HDRS", ALL_EXTS, MAILD_ERR_DUPLICATE);
  expect_rcpt("NOTIFY=NEVER NOTIFY=NEVER", ALL_EXTS, MAILD_ERR_DUPLICATE);
  expect_rcpt("ORCPT=rfc822;a ORCPT=rfc822;b", ALL_EXTS, MAILD_ERR_DUPLICATE);
  expect_mail("SMTPUTF8 SMTPUTF8", ALL_EXTS, MAILD_ERR_DUPLICATE);
}

static void test_all_together(void **state) {
  maild_esmtp_params p;
  (void)state;

  assert_int_equal(mail(&p,
                        "SIZE=1000 BODY=BINARYMIME SMTPUTF8 RET=HDRS "
                        "ENVID=id1 AUTH=u+40x",
                        ALL_EXTS),
                   0);
  assert_int_equal(p.present, MAILD_PARAM_SIZE | MAILD_PARAM_BODY |
                                  MAILD_PARAM_SMTPUTF8 | MAILD_PARAM_RET |
                                  MAILD_PARAM_ENVID | MAILD_PARAM_AUTH);
  assert_string_equal(p.auth, "u@x");
  assert_int_equal(
      rcpt(&p, "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@x", ALL_EXTS), 0);
  assert_int_equal(p.present, MAILD_PARAM_NOTIFY | MAILD_PARAM_ORCPT);
  assert_int_equal(p.size, 0);
  assert_int_equal(p.body, MAILD_BODY_UNSPEC);
}

static void test_xtext(void **state) {
  char out[16];
  (void)state;

  assert_int_equal(maild_xtext_decode("a+2Bb+3D", 8, out, sizeof(out)), 4);
  assert_string_equal(out, "a+b=");
  assert_int_equal(maild_xtext_decode("", 0, out, sizeof(out)), 0);
  assert_string_equal(out, "");
  assert_int_equal(maild_xtext_decode("", 0, out, 0), MAILD_ERR_NOSPC);
  assert_int_equal(maild_xtext_decode("abc", 3, out, 4), 3);
  assert_int_equal(maild_xtext_decode("abc", 3, out, 3), MAILD_ERR_NOSPC);
  assert_int_equal(maild_xtext_decode("a+2b", 4, out, 16), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_xtext_decode("a+2", 3, out, 16), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_xtext_decode("a+", 2, out, 16), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_xtext_decode("a=b", 3, out, 16), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_xtext_decode("a b", 3, out, 16), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_xtext_decode("a\rb", 3, out, 16), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_xtext_decode("\xc3\xa9", 2, out, 16),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(maild_xtext_decode("+0D", 3, out, 16), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_xtext_decode("+0A", 3, out, 16), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_xtext_decode("+00", 3, out, 16), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_xtext_decode("+FF", 3, out, 16), 1);
  assert_int_equal((unsigned char)out[0], 0xff);
}

static void test_xtext_encode(void **state) {
  char out[32], back[32];
  static const char in[] = "a+b=c d\r\n\xc3\xa9~!";
  (void)state;

  assert_int_equal(maild_xtext_encode(in, sizeof(in) - 1, out, sizeof(out)),
                   27);
  assert_string_equal(out, "a+2Bb+3Dc+20d+0D+0A+C3+A9~!");
  assert_int_equal(maild_xtext_encode("ab+", 3, out, 6), 5);
  assert_int_equal(maild_xtext_encode("ab+", 3, out, 5), MAILD_ERR_NOSPC);
  assert_int_equal(maild_xtext_encode("", 0, out, 1), 0);
  assert_int_equal(maild_xtext_encode("", 0, out, 0), MAILD_ERR_NOSPC);
  assert_int_equal(maild_xtext_encode("x+y", 3, out, sizeof(out)), 5);
  assert_int_equal(maild_xtext_decode(out, 5, back, sizeof(back)), 3);
  assert_string_equal(back, "x+y");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_and_spaces),
      cmocka_unit_test(test_size),
      cmocka_unit_test(test_body),
      cmocka_unit_test(test_smtputf8),
      cmocka_unit_test(test_ret),
      cmocka_unit_test(test_envid),
      cmocka_unit_test(test_auth),
      cmocka_unit_test(test_notify),
      cmocka_unit_test(test_orcpt),
      cmocka_unit_test(test_orcpt_utf8),
      cmocka_unit_test(test_orcpt_limit),
      cmocka_unit_test(test_control_octets),
      cmocka_unit_test(test_keywords),
      cmocka_unit_test(test_all_together),
      cmocka_unit_test(test_xtext),
      cmocka_unit_test(test_xtext_encode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
