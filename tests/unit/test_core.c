/* Unit tests for the error table, options and bounded buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "maild/error.h"
#include "maild/options.h"
#include "core/buf.h"
#include "core/mem.h"
#include "testmem.h"

static void test_error_table(void **state) {
  (void)state;
  assert_string_equal(maild_strerror(MAILD_ERR_NOMEM), "out of memory");
  assert_string_equal(maild_err_name(MAILD_ERR_DEFER), "MAILD_ERR_DEFER");
  assert_string_equal(maild_err_name(12345), "MAILD_ERR_UNKNOWN");
  assert_string_equal(maild_strerror(-777), "unknown error");
  assert_true(MAILD_ERR_IS_FATAL(MAILD_ERR_CALLBACK));
  assert_false(MAILD_ERR_IS_FATAL(MAILD_ERR_NOMEM));
}

static void test_options_defaults_and_ranges(void **state) {
  maild_options *opt;
  testmem tm;
  (void)state;

  testmem_init(&tm, 0);
  assert_int_equal(maild_options_new(&opt, &tm.mem), 0);
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_MAX_COMMAND_LINE),
                   512);
  assert_int_equal(maild_options_get_uint(NULL, MAILD_OPT_MAX_ERRORS), 20);
  /* At the limit and one past it. */
  assert_int_equal(maild_options_set_uint(opt, MAILD_OPT_MAX_COMMAND_LINE, 512),
                   0);
  assert_int_equal(maild_options_set_uint(opt, MAILD_OPT_MAX_COMMAND_LINE, 511),
                   MAILD_ERR_RANGE);
  assert_int_equal(maild_options_set_uint(opt, MAILD_OPT_MAX_RECIPIENTS, 99),
                   MAILD_ERR_RANGE);
  assert_int_equal(maild_options_set_uint(opt, MAILD_OPT_HOSTNAME, 1),
                   MAILD_ERR_INVAL);
  assert_int_equal(
      maild_options_set_string(opt, MAILD_OPT_HOSTNAME, "mx.example"), 0);
  assert_string_equal(maild_options_get_string(opt, MAILD_OPT_HOSTNAME),
                      "mx.example");
  assert_int_equal(
      maild_options_set_string(opt, MAILD_OPT_HOSTNAME, "bad\r\nname"),
      MAILD_ERR_INVAL);
  assert_string_equal(maild_options_get_string(opt, MAILD_OPT_HOSTNAME),
                      "mx.example");
  maild_options_del(opt);
  assert_int_equal(tm.live, 0);
}

static void test_options_nomem(void **state) {
  maild_options *opt;
  testmem tm;
  (void)state;

  testmem_init(&tm, 1);
  assert_int_equal(maild_options_new(&opt, &tm.mem), MAILD_ERR_NOMEM);
  testmem_init(&tm, 2);
  assert_int_equal(maild_options_new(&opt, &tm.mem), 0);
  assert_int_equal(maild_options_set_string(opt, MAILD_OPT_HOSTNAME, "x"),
                   MAILD_ERR_NOMEM);
  assert_null(maild_options_get_string(opt, MAILD_OPT_HOSTNAME));
  maild_options_del(opt);
  assert_int_equal(tm.live, 0);
}

static void test_buf_bounded(void **state) {
  maild_buf b;
  maild_mem m;
  uint8_t chunk[100];
  int i;
  (void)state;

  maild__mem_init(&m, NULL);
  memset(chunk, 'x', sizeof(chunk));
  maild__buf_init(&b, 1000);
  for (i = 0; i < 10; i++)
    assert_int_equal(maild__buf_append(&b, &m, chunk, 100), 0);
  /* At the maximum: one more octet is refused. */
  assert_int_equal(maild__buf_used(&b), 1000);
  assert_int_equal(maild__buf_append(&b, &m, chunk, 1), MAILD_ERR_LIMIT);
  maild__buf_consume(&b, 1);
  assert_int_equal(maild__buf_append(&b, &m, "y", 1), 0);
  assert_int_equal(maild__buf_used(&b), 1000);
  assert_int_equal(maild__buf_peek(&b)[999], 'y');
  maild__buf_consume(&b, 5000);
  assert_int_equal(maild__buf_used(&b), 0);
  maild__buf_free(&b, &m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_table),
      cmocka_unit_test(test_options_defaults_and_ranges),
      cmocka_unit_test(test_options_nomem),
      cmocka_unit_test(test_buf_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
