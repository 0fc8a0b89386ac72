/*
 * Unit tests for SMTP replies: enhanced code checks, the formatter (line
 * shapes, empty text, sanitising, snprintf-like truncation, code and class
 * checks) and the streaming parser (multi-line replies, enhanced code
 * extraction, every error, both limits at and past their edge, every chunk
 * split, allocation failure at every allocation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "maild/error.h"
#include "maild/reply.h"
#include "testmem.h"

static void test_enhanced_check(void **state) {
  static const char *const good[] = {"2.0.0", "4.4.1", "5.7.1", "5.123.999",
                                     "2.10.0"};
  static const char *const bad[] = {"",         "1.0.0",  "3.0.0", "6.0.0",
                                    "2.01.0",   "2.0.00", "2.0",   "2.0.0.0",
                                    "2.1000.0", "2..0",   "x",     "2.0.0 ",
                                    "22.0.0",   " 2.0.0", "2.0.",  "2.a.0"};
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    assert_int_equal(maild_enhanced_check(good[i]), 0);
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(maild_enhanced_check(bad[i]), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_enhanced_check(NULL), MAILD_ERR_SYNTAX);
}

static void assert_format(int code, const char *enh, const char *text,
                          const char *expect) {
  char out[512];
  maild_ssize n = maild_reply_format(out, sizeof(out), code, enh, text);

  assert_int_equal(n, strlen(expect));
  assert_memory_equal(out, expect, (size_t)n);
}

static void test_format_lines(void **state) {
  (void)state;
  assert_format(250, "2.1.0", "Sender ok", "250 2.1.0 Sender ok\r\n");
  assert_format(250, NULL, "OK", "250 OK\r\n");
  assert_format(250, NULL, "mx\nPIPELINING\nSIZE 10",
                "250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
  assert_format(550, "5.1.1", "No such user\nhere",
                "550-5.1.1 No such user\r\n550 5.1.1 here\r\n");
  assert_format(421, "", "bye", "421 bye\r\n");
}

/* Empty text: no trailing space (RFC 5321 4.2: textstring is not empty). */
static void test_format_empty_text(void **state) {
  (void)state;
  assert_format(250, NULL, NULL, "250\r\n");
  assert_format(250, NULL, "", "250\r\n");
  assert_format(250, "2.0.0", "", "250 2.0.0\r\n");
  assert_format(250, "2.0.0", NULL, "250 2.0.0\r\n");
  assert_format(250, NULL, "a\n", "250-a\r\n250\r\n");
  assert_format(250, NULL, "\nb", "250-\r\n250 b\r\n");
  assert_format(250, "2.0.0", "\n", "250-2.0.0\r\n250 2.0.0\r\n");
}

static void test_format_sanitises(void **state) {
  (void)state;
  assert_format(250, NULL,
                "a\rb\x01"
                "c\x7f"
                "d\te\x80",
                "250 a?b?c?d\te\x80\r\n");
  assert_format(250, NULL, "x\r\n250 forged", "250-x?\r\n250 250 forged\r\n");
}

static void test_format_codes(void **state) {
  char out[64];
  (void)state;

  assert_format(200, NULL, "x", "200 x\r\n");
  assert_format(599, NULL, "x", "599 x\r\n");
  assert_int_equal(maild_reply_format(out, sizeof(out), 199, NULL, "x"),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_reply_format(out, sizeof(out), 600, NULL, "x"),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_reply_format(out, sizeof(out), 250, "5.0.0", "x"),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_reply_format(out, sizeof(out), 450, "5.0.0", "x"),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_reply_format(out, sizeof(out), 250, "2.0", "x"),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_reply_format(NULL, 5, 250, NULL, "x"),
                   MAILD_ERR_INVAL);
  assert_format(450, "4.2.0", "x", "450 4.2.0 x\r\n");
}

/* Like snprintf: the full length always, and only `cap` octets written. */
static void test_format_truncates(void **state) {
  const char *expect = "250-a\r\n250 bc\r\n";
  size_t full = strlen(expect), cap;
  (void)state;

  assert_int_equal(maild_reply_format(NULL, 0, 250, NULL, "a\nbc"), full);
  for (cap = 0; cap <= full; cap++) {
    char out[32];
    memset(out, '#', sizeof(out));
    assert_int_equal(maild_reply_format(out, cap, 250, NULL, "a\nbc"), full);
    assert_memory_equal(out, expect, cap);
    assert_int_equal(out[cap], '#');
  }
}

/* A textual record of the replies a run produced. */
typedef struct record {
  char text[4096];
  size_t len;
} record;

static void record_reply(record *rec, const maild_parsed_reply *r) {
  int n = snprintf(rec->text + rec->len, sizeof(rec->text) - rec->len,
                   "[%d|%s|%zu|%.*s]", r->code, r->enhanced, r->lines,
                   (int)r->text_len, r->text);
  assert_true(n > 0 && (size_t)n < sizeof(rec->text) - rec->len);
  rec->len += (size_t)n;
}

/*
 * Feeds in[from, to) completely, recording each reply; returns 0 or the
 * first error.
 */
static int feed_span(maild_reply_parser *p, const char *in, size_t from,
                     size_t to, record *rec) {
  while (from < to) {
    maild_parsed_reply r;
    maild_ssize n =
        maild_reply_parser_feed(p, (const uint8_t *)in + from, to - from, &r);
    if (n < 0)
      return (int)n;
    assert_true(n > 0);
    if (r.code != 0)
      record_reply(rec, &r);
    else
      assert_int_equal((size_t)n, to - from);
    from += (size_t)n;
  }
  return 0;
}

/* Parses `in` cut at a <= b; the record ends with "!err" on an error. */
static void parse_cut(const char *in, size_t max_line, size_t max_lines,
                      size_t a, size_t b, record *rec) {
  const size_t cuts[3] = {a, b, strlen(in)};
  maild_reply_parser *p;
  size_t from = 0, i;
  int err = 0;

  rec->len = 0;
  rec->text[0] = '\0';
  assert_int_equal(maild_reply_parser_new(&p, max_line, max_lines, NULL), 0);
  for (i = 0; i < 3 && err == 0; i++) {
    err = feed_span(p, in, from, cuts[i], rec);
    from = cuts[i];
  }
  if (err != 0)
    rec->len += (size_t)snprintf(rec->text + rec->len,
                                 sizeof(rec->text) - rec->len, "!%d", err);
  maild_reply_parser_del(p);
}

/* Whole input and every pair of cuts give `expect`. */
static void assert_parses_lim(const char *in, size_t max_line, size_t max_lines,
                              const char *expect) {
  size_t len = strlen(in), a, b;
  record rec;

  for (a = 0; a <= len; a++) {
    for (b = a; b <= len; b++) {
      parse_cut(in, max_line, max_lines, a, b, &rec);
      assert_string_equal(rec.text, expect);
    }
  }
}

static void assert_parses(const char *in, const char *expect) {
  assert_parses_lim(in, 512, 100, expect);
}

static void test_parse_replies(void **state) {
  (void)state;
  assert_parses("220 mx.example ESMTP\r\n", "[220||1|mx.example ESMTP]");
  assert_parses("250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
                "[250||3|mx.example\nPIPELINING\nSIZE 1000]");
  assert_parses("250\r\n250 \r\n250-\r\n250 x\r\n",
                "[250||1|][250||1|][250||2|\nx]");
  assert_parses("250 OK\n354 go\r\n", "[250||1|OK][354||1|go]");
  assert_parses("250-a\r\n", "");
}

static void test_parse_enhanced(void **state) {
  (void)state;
  assert_parses("250 2.1.0 Sender ok\r\n", "[250|2.1.0|1|2.1.0 Sender ok]");
  assert_parses("250 2.1.0\r\n", "[250|2.1.0|1|2.1.0]");
  assert_parses("550-5.1.1 no\r\n550 5.1.1 user\r\n",
                "[550|5.1.1|2|5.1.1 no\n5.1.1 user]");
  assert_parses("550 2.1.0 x\r\n", "[550||1|2.1.0 x]");
  assert_parses("250 2.1.0x\r\n", "[250||1|2.1.0x]");
  assert_parses("250 2.01.0 x\r\n", "[250||1|2.01.0 x]");
  assert_parses("250-hi\r\n250 2.0.0 x\r\n", "[250||2|hi\n2.0.0 x]");
  assert_parses("450 4.123.456 x\r\n", "[450|4.123.456|1|4.123.456 x]");
}

static void test_parse_errors(void **state) {
  char expect[64];
  (void)state;

  snprintf(expect, sizeof(expect), "!%d", MAILD_ERR_SYNTAX);
  assert_parses("2500 x\r\n", expect);
  assert_parses("199 x\r\n", expect);
  assert_parses("600 x\r\n", expect);
  assert_parses("25 x\r\n", expect);
  assert_parses("2x0 x\r\n", expect);
  assert_parses("\r\n", expect);
  assert_parses("250_x\r\n", expect);
  snprintf(expect, sizeof(expect), "[220||1|hi]!%d", MAILD_ERR_SYNTAX);
  assert_parses("220 hi\r\n250-a\r\n251 b\r\n", expect);
}

static void test_parse_nul(void **state) {
  maild_reply_parser *p;
  maild_parsed_reply r;
  (void)state;

  assert_int_equal(maild_reply_parser_new(&p, 512, 100, NULL), 0);
  assert_int_equal(
      maild_reply_parser_feed(p, (const uint8_t *)"250 a\0b\r\n", 9, &r),
      MAILD_ERR_BAD_CHAR);
  assert_int_equal(r.code, 0);
  maild_reply_parser_del(p);
}

static void test_parse_sticky_error_and_reset(void **state) {
  maild_reply_parser *p;
  maild_parsed_reply r;
  (void)state;

  assert_int_equal(maild_reply_parser_new(&p, 512, 100, NULL), 0);
  assert_int_equal(
      maild_reply_parser_feed(p, (const uint8_t *)"250-a\r\nxyz\r\n", 12, &r),
      MAILD_ERR_SYNTAX);
  assert_int_equal(
      maild_reply_parser_feed(p, (const uint8_t *)"250 ok\r\n", 8, &r),
      MAILD_ERR_SYNTAX);
  maild_reply_parser_reset(p);
  assert_int_equal(
      maild_reply_parser_feed(p, (const uint8_t *)"250 ok\r\n", 8, &r), 8);
  assert_int_equal(r.code, 250);
  assert_int_equal(r.lines, 1);
  maild_reply_parser_del(p);
  maild_reply_parser_del(NULL);
}

/* max_line 20 counts the CRLF: 20 octets pass, 21 do not. */
static void test_parse_line_limit(void **state) {
  char expect[64];
  (void)state;

  assert_parses_lim("250 456789012345678\r\n", 21, 2,
                    "[250||1|456789012345678]");
  assert_parses_lim("250 45678901234567\r\n", 20, 2, "[250||1|45678901234567]");
  snprintf(expect, sizeof(expect), "!%d", MAILD_ERR_TOO_LONG);
  assert_parses_lim("250 456789012345678\r\n", 20, 2, expect);
  assert_parses_lim("250 4567890123456789\n", 20, 2, expect);
  assert_parses_lim("250 456789012345678\n", 20, 2, "[250||1|456789012345678]");
}

static void test_parse_lines_limit(void **state) {
  char expect[64];
  (void)state;

  assert_parses_lim("250-a\r\n250-b\r\n250 c\r\n", 512, 3, "[250||3|a\nb\nc]");
  snprintf(expect, sizeof(expect), "!%d", MAILD_ERR_TOO_LONG);
  assert_parses_lim("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", 512, 3, expect);
  assert_parses_lim("250 a\r\n250 b\r\n", 512, 1, "[250||1|a][250||1|b]");
}

static void test_parse_new_inval(void **state) {
  maild_reply_parser *p;
  (void)state;

  assert_int_equal(maild_reply_parser_new(&p, 4, 10, NULL), MAILD_ERR_INVAL);
  assert_int_equal(maild_reply_parser_new(&p, 512, 0, NULL), MAILD_ERR_INVAL);
  assert_int_equal(maild_reply_parser_new(&p, SIZE_MAX / 2, 3, NULL),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_reply_parser_new(NULL, 512, 10, NULL),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_reply_parser_new(&p, 5, 1, NULL), 0);
  maild_reply_parser_del(p);
}

/* Fails the N-th allocation for every N: NOMEM, then no leak. */
static void test_parse_nomem_sweep(void **state) {
  const char *in = "250-mx.example\r\n250-SIZE 1000\r\n250 HELP\r\n";
  size_t fail_at;
  (void)state;

  for (fail_at = 1;; fail_at++) {
    maild_reply_parser *p;
    record rec = {{0}, 0};
    size_t off = 0;
    testmem tm;
    int err;

    testmem_init(&tm, fail_at);
    err = maild_reply_parser_new(&p, 512, 10, &tm.mem);
    if (err == 0) {
      for (; off < strlen(in) && err == 0; off += 7) {
        size_t end = off + 7 < strlen(in) ? off + 7 : strlen(in);
        err = feed_span(p, in, off, end, &rec);
      }
      maild_reply_parser_del(p);
    }
    assert_true(err == 0 || err == MAILD_ERR_NOMEM);
    assert_int_equal(tm.live, 0);
    if (err == 0)
      assert_string_equal(rec.text, "[250||3|mx.example\nSIZE 1000\nHELP]");
    if (tm.failures == 0)
      break;
    assert_int_equal(err, MAILD_ERR_NOMEM);
  }
  assert_true(fail_at > 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_enhanced_check),
      cmocka_unit_test(test_format_lines),
      cmocka_unit_test(test_format_empty_text),
      cmocka_unit_test(test_format_sanitises),
      cmocka_unit_test(test_format_codes),
      cmocka_unit_test(test_format_truncates),
      cmocka_unit_test(test_parse_replies),
      cmocka_unit_test(test_parse_enhanced),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_parse_nul),
      cmocka_unit_test(test_parse_sticky_error_and_reset),
      cmocka_unit_test(test_parse_line_limit),
      cmocka_unit_test(test_parse_lines_limit),
      cmocka_unit_test(test_parse_new_inval),
      cmocka_unit_test(test_parse_nomem_sweep),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
