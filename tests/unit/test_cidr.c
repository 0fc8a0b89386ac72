/* CIDR sets: parsing, prefix limits, host bits, matching across families. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "maild/cidr.h"
#include "maild/error.h"
#include "testmem.h"

static void test_add_and_contains(void **state) {
  maild_cidr_set *set;
  (void)state;

  assert_int_equal(maild_cidr_set_new(&set, NULL), 0);
  assert_int_equal(maild_cidr_set_contains(set, "127.0.0.1"), 0);
  assert_int_equal(maild_cidr_set_add(set, "192.0.2.0/24"), 0);
  assert_int_equal(maild_cidr_set_add(set, "2001:db8::/32"), 0);
  assert_int_equal(maild_cidr_set_add(set, "198.51.100.7"), 0);
  assert_int_equal(maild_cidr_set_count(set), 3);
  assert_int_equal(maild_cidr_set_contains(set, "192.0.2.0"), 1);
  assert_int_equal(maild_cidr_set_contains(set, "192.0.2.255"), 1);
  assert_int_equal(maild_cidr_set_contains(set, "192.0.3.0"), 0);
  assert_int_equal(maild_cidr_set_contains(set, "::ffff:192.0.2.9"), 1);
  assert_int_equal(maild_cidr_set_contains(set, "2001:db8:ffff::1"), 1);
  assert_int_equal(maild_cidr_set_contains(set, "2001:db9::1"), 0);
  assert_int_equal(maild_cidr_set_contains(set, "198.51.100.7"), 1);
  assert_int_equal(maild_cidr_set_contains(set, "198.51.100.8"), 0);
  assert_int_equal(maild_cidr_set_contains(set, "not an address"), 0);
  assert_int_equal(maild_cidr_set_contains(set, ""), 0);
  maild_cidr_set_del(set);
}

static void test_limits_and_errors(void **state) {
  maild_cidr_set *set;
  (void)state;

  assert_int_equal(maild_cidr_set_new(&set, NULL), 0);
  /* Prefixes at the limit and one past. */
  assert_int_equal(maild_cidr_set_add(set, "10.0.0.1/32"), 0);
  assert_int_equal(maild_cidr_set_add(set, "10.0.0.1/33"), MAILD_ERR_RANGE);
  assert_int_equal(maild_cidr_set_add(set, "::1/128"), 0);
  assert_int_equal(maild_cidr_set_add(set, "::1/129"), MAILD_ERR_RANGE);
  assert_int_equal(maild_cidr_set_add(set, "0.0.0.0/0"), 0);
  assert_int_equal(maild_cidr_set_contains(set, "203.0.113.1"), 1);
  assert_int_equal(maild_cidr_set_contains(set, "2001:db8::1"), 0);
  /* Host bits set, garbage, empty prefix. */
  assert_int_equal(maild_cidr_set_add(set, "192.0.2.1/24"), MAILD_ERR_INVAL);
  assert_int_equal(maild_cidr_set_add(set, "192.0.2.0/"), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_cidr_set_add(set, "192.0.2.0/2x"), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_cidr_set_add(set, "192.0.2/24"), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_cidr_set_add(set, "example.org"), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_cidr_set_add(set, "1.2.3.4/-1"), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_cidr_set_add(NULL, "1.2.3.4"), MAILD_ERR_INVAL);
  assert_int_equal(maild_cidr_set_count(set), 3);
  maild_cidr_set_del(set);
  maild_cidr_set_del(NULL);
}

static void test_nomem(void **state) {
  maild_cidr_set *set;
  testmem tm;
  (void)state;

  testmem_init(&tm, 1);
  assert_int_equal(maild_cidr_set_new(&set, &tm.mem), MAILD_ERR_NOMEM);
  testmem_init(&tm, 2);
  assert_int_equal(maild_cidr_set_new(&set, &tm.mem), 0);
  assert_int_equal(maild_cidr_set_add(set, "10.0.0.0/8"), MAILD_ERR_NOMEM);
  assert_int_equal(maild_cidr_set_count(set), 0);
  maild_cidr_set_del(set);
  assert_int_equal(tm.live, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add_and_contains),
      cmocka_unit_test(test_limits_and_errors),
      cmocka_unit_test(test_nomem),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
