/*
 * Unit tests for the CRLF line reader: flags for every kind of line end,
 * the length limit at and past its edge for CRLF and bare-LF lines, bounded
 * memory under 10 MiB without a LF, identical results for every chunk
 * split, zero copy, and allocation failure at every allocation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maild/error.h"
#include "maild/line.h"
#include "testmem.h"

/* A textual record of the lines a run produced, for comparisons. */
typedef struct record {
  char text[8192];
  size_t len;
} record;

static void record_line(record *r, const maild_line *l) {
  int n = snprintf(r->text + r->len, sizeof(r->text) - r->len,
                   "[%x:%zu:", l->flags, l->len);
  assert_true(n > 0 && (size_t)n < sizeof(r->text) - r->len);
  r->len += (size_t)n;
  assert_true(l->len + 1 < sizeof(r->text) - r->len);
  memcpy(r->text + r->len, l->data, l->len);
  r->len += l->len;
  r->text[r->len++] = ']';
  r->text[r->len] = '\0';
}

/* Feeds in[from, to) completely, recording every line. */
static void feed_span(maild_linereader *lr, const uint8_t *in, size_t from,
                      size_t to, record *r) {
  while (from < to) {
    maild_line l;
    maild_ssize n = maild_linereader_feed(lr, in + from, to - from, &l);
    assert_true(n > 0 && (size_t)n <= to - from);
    if (l.data != NULL)
      record_line(r, &l);
    else
      assert_int_equal((size_t)n, to - from);
    from += (size_t)n;
  }
}

/* Runs a fresh reader over `in` cut at positions a <= b. */
static void run_cut(const char *in, size_t max, size_t a, size_t b, record *r) {
  const uint8_t *p = (const uint8_t *)in;
  size_t len = strlen(in);
  maild_linereader *lr;

  r->len = 0;
  r->text[0] = '\0';
  assert_int_equal(maild_linereader_new(&lr, max, NULL), 0);
  feed_span(lr, p, 0, a, r);
  feed_span(lr, p, a, b, r);
  feed_span(lr, p, b, len, r);
  maild_linereader_del(lr);
}

/* Every pair of cut points gives the same lines as one whole feed. */
static void assert_split_invariant(const char *in, size_t max,
                                   const char *expect) {
  size_t len = strlen(in), a, b;
  record whole, split;

  run_cut(in, max, len, len, &whole);
  if (expect != NULL)
    assert_string_equal(whole.text, expect);
  for (a = 0; a <= len; a++) {
    for (b = a; b <= len; b++) {
      run_cut(in, max, a, b, &split);
      assert_string_equal(split.text, whole.text);
    }
  }
}

static void test_line_basic(void **state) {
  const uint8_t in[] = "HELO x\r\nNOOP\r\n";
  maild_linereader *lr;
  maild_line l;
  (void)state;

  assert_int_equal(maild_linereader_new(&lr, 512, NULL), 0);
  assert_int_equal(maild_linereader_feed(lr, in, 14, &l), 8);
  assert_int_equal(l.len, 6);
  assert_memory_equal(l.data, "HELO x", 6);
  assert_int_equal(l.flags, 0);
  /* Zero copy: a whole line in one chunk points into the input. */
  assert_ptr_equal(l.data, (const char *)in);
  assert_int_equal(maild_linereader_feed(lr, in + 8, 6, &l), 6);
  assert_int_equal(l.len, 4);
  assert_ptr_equal(l.data, (const char *)in + 8);
  assert_int_equal(maild_linereader_feed(lr, in, 0, &l), 0);
  assert_null(l.data);
  maild_linereader_del(lr);
  maild_linereader_del(NULL);
}

static void test_line_flags(void **state) {
  (void)state;
  assert_split_invariant("a\r\nb\n\r\n\n", 512, "[0:1:a][1:1:b][0:0:][1:0:]");
  assert_split_invariant("a\rb\r\n", 512, "[2:3:a\rb]");
  assert_split_invariant("a\r\r\n", 512, "[2:2:a\r]");
  assert_split_invariant("a\r\n\rb\n", 512, "[0:1:a][3:2:\rb]");
  assert_split_invariant("x\r", 512, "");
  assert_split_invariant("a\rb\n", 512, "[3:3:a\rb]");
}

static void test_line_nul(void **state) {
  const char in[] = "a\0b\r\nc\r\n";
  maild_linereader *lr;
  record r = {{0}, 0};
  (void)state;

  assert_int_equal(maild_linereader_new(&lr, 512, NULL), 0);
  feed_span(lr, (const uint8_t *)in, 0, sizeof(in) - 1, &r);
  assert_int_equal(r.len, 16);
  assert_memory_equal(r.text, "[4:3:a\0b][0:1:c]", 16);
  maild_linereader_del(lr);
}

static void test_line_cr_across_chunks(void **state) {
  maild_linereader *lr;
  maild_line l;
  (void)state;

  assert_int_equal(maild_linereader_new(&lr, 512, NULL), 0);
  assert_int_equal(maild_linereader_feed(lr, (const uint8_t *)"ab\r", 3, &l),
                   3);
  assert_null(l.data);
  assert_int_equal(maild_linereader_pending(lr), 3);
  assert_int_equal(maild_linereader_feed(lr, (const uint8_t *)"\nX", 2, &l), 1);
  assert_int_equal(l.flags, 0);
  assert_int_equal(l.len, 2);
  assert_memory_equal(l.data, "ab", 2);
  assert_int_equal(maild_linereader_pending(lr), 0);
  /* A CR at the end of a chunk followed by anything but LF is bare. */
  assert_int_equal(maild_linereader_feed(lr, (const uint8_t *)"a\r", 2, &l), 2);
  assert_int_equal(maild_linereader_feed(lr, (const uint8_t *)"b\r\n", 3, &l),
                   3);
  assert_int_equal(l.flags, MAILD_LINE_BARE_CR);
  assert_int_equal(l.len, 3);
  maild_linereader_del(lr);
}

/* max 10: CRLF content 8 is at the limit, 9 is past it; bare LF 9 and 10. */
static void test_line_limit(void **state) {
  (void)state;
  assert_split_invariant("12345678\r\n", 10, "[0:8:12345678]");
  assert_split_invariant("123456789\r\n", 10, "[8:8:12345678]");
  assert_split_invariant("123456789\n", 10, "[1:9:123456789]");
  assert_split_invariant("1234567890\n", 10, "[9:8:12345678]");
  assert_split_invariant("1234567\r\r\n", 10, "[2:8:1234567\r]");
  assert_split_invariant("12345678\r\r\n", 10, "[a:8:12345678]");
  assert_split_invariant("12345678901234567890\r\nok\r\n", 10,
                         "[8:8:12345678][0:2:ok]");
  /* The smallest reader: one content octet. */
  assert_split_invariant("a\r\nab\r\n\n", 3, "[0:1:a][8:1:a][1:0:]");
}

static void test_line_mixed_splits(void **state) {
  (void)state;
  assert_split_invariant("EHLO a\r\n\rX\n.\r\n\r\r\n\0\r\n"
                         "0123456789abcdef\r\nlast\r",
                         12, NULL);
  assert_split_invariant("\n\n\r\n\r\r\r\n\r", 4, NULL);
}

static void test_line_new_inval(void **state) {
  maild_linereader *lr = NULL;
  (void)state;

  assert_int_equal(maild_linereader_new(&lr, 2, NULL), MAILD_ERR_INVAL);
  assert_int_equal(maild_linereader_new(NULL, 512, NULL), MAILD_ERR_INVAL);
  assert_int_equal(maild_linereader_new(&lr, 3, NULL), 0);
  maild_linereader_del(lr);
}

/* Records the largest block asked for, to show memory stays bounded. */
typedef struct peak_mem {
  maild_mem mem;
  size_t peak;
} peak_mem;

static void *peak_malloc(size_t size, void *ud) {
  peak_mem *pm = ud;
  pm->peak = size > pm->peak ? size : pm->peak;
  return malloc(size);
}

static void peak_free(void *ptr, void *ud) {
  (void)ud;
  free(ptr);
}

static void *peak_calloc(size_t n, size_t size, void *ud) {
  peak_mem *pm = ud;
  pm->peak = n * size > pm->peak ? n * size : pm->peak;
  return calloc(n, size);
}

static void *peak_realloc(void *ptr, size_t size, void *ud) {
  peak_mem *pm = ud;
  pm->peak = size > pm->peak ? size : pm->peak;
  return realloc(ptr, size);
}

static void test_line_junk_bounded(void **state) {
  peak_mem pm = {{NULL, peak_malloc, peak_free, peak_calloc, peak_realloc}, 0};
  uint8_t chunk[4096];
  maild_linereader *lr;
  maild_line l;
  size_t total;
  (void)state;

  pm.mem.user_data = &pm;
  memset(chunk, 'j', sizeof(chunk));
  assert_int_equal(maild_linereader_new(&lr, 512, &pm.mem), 0);
  for (total = 0; total < 10u << 20; total += sizeof(chunk)) {
    assert_int_equal(maild_linereader_feed(lr, chunk, sizeof(chunk), &l),
                     sizeof(chunk));
    assert_null(l.data);
    assert_true(maild_linereader_pending(lr) <= 511);
  }
  assert_int_equal(
      maild_linereader_feed(lr, (const uint8_t *)"\r\nQUIT\r\n", 8, &l), 2);
  assert_int_equal(l.flags, MAILD_LINE_TOO_LONG);
  assert_int_equal(l.len, 510);
  assert_memory_equal(l.data, chunk, 510);
  assert_int_equal(
      maild_linereader_feed(lr, (const uint8_t *)"QUIT\r\n", 6, &l), 6);
  assert_int_equal(l.flags, 0);
  assert_memory_equal(l.data, "QUIT", 4);
  assert_true(pm.peak <= 512);
  maild_linereader_del(lr);
}

static void test_line_grows_on_demand(void **state) {
  peak_mem pm = {{NULL, peak_malloc, peak_free, peak_calloc, peak_realloc}, 0};
  maild_linereader *lr;
  maild_line l;
  (void)state;

  pm.mem.user_data = &pm;
  assert_int_equal(maild_linereader_new(&lr, 65536, &pm.mem), 0);
  assert_int_equal(maild_linereader_feed(lr, (const uint8_t *)"ab", 2, &l), 2);
  assert_true(pm.peak < 4096);
  maild_linereader_del(lr);
}

static void test_line_reset(void **state) {
  maild_linereader *lr;
  maild_line l;
  (void)state;

  assert_int_equal(maild_linereader_new(&lr, 512, NULL), 0);
  assert_int_equal(maild_linereader_feed(lr, (const uint8_t *)"junk\r", 5, &l),
                   5);
  assert_int_equal(maild_linereader_pending(lr), 5);
  maild_linereader_reset(lr);
  assert_int_equal(maild_linereader_pending(lr), 0);
  assert_int_equal(maild_linereader_feed(lr, (const uint8_t *)"\nA\r\n", 4, &l),
                   1);
  assert_int_equal(l.flags, MAILD_LINE_BARE_LF);
  assert_int_equal(l.len, 0);
  maild_linereader_del(lr);
}

/* Fails the N-th allocation for every N; a refused feed changes nothing. */
static void test_line_nomem_sweep(void **state) {
  const char *in = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n";
  size_t fail_at;
  (void)state;

  for (fail_at = 1;; fail_at++) {
    maild_linereader *lr;
    record r = {{0}, 0};
    size_t off = 0;
    testmem tm;
    int err;

    testmem_init(&tm, fail_at);
    err = maild_linereader_new(&lr, 64, &tm.mem);
    if (err != 0) {
      assert_int_equal(err, MAILD_ERR_NOMEM);
      assert_int_equal(tm.live, 0);
      continue;
    }
    while (off < strlen(in)) {
      maild_line l;
      size_t n = strlen(in) - off < 5 ? strlen(in) - off : 5;
      maild_ssize got =
          maild_linereader_feed(lr, (const uint8_t *)in + off, n, &l);
      if (got == MAILD_ERR_NOMEM)
        continue; /* the same input again */
      assert_true(got > 0);
      if (l.data != NULL)
        record_line(&r, &l);
      off += (size_t)got;
    }
    assert_string_equal(r.text, "[0:15:MAIL FROM:<a@b>][0:13:RCPT TO:<c@d>]");
    maild_linereader_del(lr);
    assert_int_equal(tm.live, 0);
    if (tm.failures == 0)
      break;
  }
  assert_true(fail_at > 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_line_basic),
      cmocka_unit_test(test_line_flags),
      cmocka_unit_test(test_line_nul),
      cmocka_unit_test(test_line_cr_across_chunks),
      cmocka_unit_test(test_line_limit),
      cmocka_unit_test(test_line_mixed_splits),
      cmocka_unit_test(test_line_new_inval),
      cmocka_unit_test(test_line_junk_bounded),
      cmocka_unit_test(test_line_grows_on_demand),
      cmocka_unit_test(test_line_reset),
      cmocka_unit_test(test_line_nomem_sweep),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
