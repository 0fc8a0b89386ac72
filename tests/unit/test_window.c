/*
 * The queue's window (queue/window.h): a pick keeps the K entries due
 * soonest (or latest) of any number offered, whatever their order, with
 * ties by id; a pick of 0 only counts; every allocation fails cleanly.
 * The trade fills the room first, then swaps finds for records due after
 * them, and never more than either side has.
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
#include "queue/window.h"
#include "testmem.h"

static void make_id(char id[MAILD_SPOOL_ID_LEN + 1], unsigned n) {
  snprintf(id, MAILD_SPOOL_ID_LEN + 1, "00060a2418202240%08x", n);
}

/* A fixed shuffle of 0..n-1 (a multiplier coprime with n). */
static unsigned shuffled(unsigned i, unsigned n) {
  return (i * 7919u + 13u) % n;
}

static void test_soonest_of_many(void **state) {
  maild_due_pick p;
  const maild_due_entry *e;
  char id[MAILD_SPOOL_ID_LEN + 1];
  size_t n, i;

  (void)state;
  assert_int_equal(maild__due_pick_init(&p, 10, MAILD_DUE_SOONEST, NULL), 0);
  for (i = 0; i < 1000; i++) {
    unsigned k = shuffled((unsigned)i, 1000);
    make_id(id, k);
    maild__due_pick_offer(&p, id, 5000u + k * 10u);
  }
  assert_true(p.passed == 990);
  e = maild__due_pick_sort(&p, &n);
  assert_int_equal(n, 10);
  for (i = 0; i < n; i++) {
    make_id(id, (unsigned)i);
    assert_string_equal(e[i].id, id);
    assert_true(e[i].due == 5000u + i * 10u);
  }
  maild__due_pick_free(&p);
}

static void test_latest_of_many(void **state) {
  maild_due_pick p;
  const maild_due_entry *e;
  char id[MAILD_SPOOL_ID_LEN + 1];
  size_t n, i;

  (void)state;
  assert_int_equal(maild__due_pick_init(&p, 3, MAILD_DUE_LATEST, NULL), 0);
  for (i = 0; i < 100; i++) {
    unsigned k = shuffled((unsigned)i, 100);
    make_id(id, k);
    maild__due_pick_offer(&p, id, k == 42 ? UINT64_MAX : k);
  }
  e = maild__due_pick_sort(&p, &n);
  assert_int_equal(n, 3);
  assert_true(e[0].due == UINT64_MAX); /* held: the first to leave */
  assert_true(e[1].due == 99);
  assert_true(e[2].due == 98);
  maild__due_pick_free(&p);
}

/* Equal due times: the earlier arrivals (smaller ids) are kept for
   SOONEST, the later ones for LATEST, in any offer order. */
static void test_ties_by_id(void **state) {
  maild_due_pick p;
  const maild_due_entry *e;
  char id[MAILD_SPOOL_ID_LEN + 1];
  size_t n, i;
  int order;

  (void)state;
  for (order = MAILD_DUE_SOONEST; order <= MAILD_DUE_LATEST; order++) {
    assert_int_equal(maild__due_pick_init(&p, 4, order, NULL), 0);
    for (i = 0; i < 50; i++) {
      make_id(id, shuffled((unsigned)i, 50));
      maild__due_pick_offer(&p, id, 777);
    }
    e = maild__due_pick_sort(&p, &n);
    assert_int_equal(n, 4);
    for (i = 0; i < n; i++) {
      make_id(id, order == MAILD_DUE_SOONEST ? (unsigned)i : 49u - (unsigned)i);
      assert_string_equal(e[i].id, id);
    }
    maild__due_pick_free(&p);
  }
}

/* Fewer offers than places, and a pick of none. */
static void test_small_and_empty(void **state) {
  maild_due_pick p;
  const maild_due_entry *e;
  char id[MAILD_SPOOL_ID_LEN + 1];
  size_t n;

  (void)state;
  assert_int_equal(maild__due_pick_init(&p, 8, MAILD_DUE_SOONEST, NULL), 0);
  e = maild__due_pick_sort(&p, &n);
  assert_int_equal(n, 0);
  maild__due_pick_free(&p);
  assert_int_equal(maild__due_pick_init(&p, 8, MAILD_DUE_SOONEST, NULL), 0);
  make_id(id, 2);
  maild__due_pick_offer(&p, id, 30);
  make_id(id, 1);
  maild__due_pick_offer(&p, id, 10);
  e = maild__due_pick_sort(&p, &n);
  assert_int_equal(n, 2);
  assert_true(e[0].due == 10 && e[1].due == 30);
  assert_true(p.passed == 0);
  maild__due_pick_free(&p);
  assert_int_equal(maild__due_pick_init(&p, 0, MAILD_DUE_LATEST, NULL), 0);
  maild__due_pick_offer(&p, id, 10);
  maild__due_pick_offer(&p, id, 20);
  assert_true(p.passed == 2);
  e = maild__due_pick_sort(&p, &n);
  assert_int_equal(n, 0);
  maild__due_pick_free(&p);
}

static void test_init_nomem(void **state) {
  maild_due_pick p;
  testmem tm;

  (void)state;
  testmem_init(&tm, 1);
  assert_int_equal(maild__due_pick_init(&p, 5, MAILD_DUE_SOONEST, &tm.mem),
                   MAILD_ERR_NOMEM);
  maild__due_pick_free(&p);
  assert_int_equal(tm.live, 0);
  testmem_init(&tm, 2);
  assert_int_equal(maild__due_pick_init(&p, 5, MAILD_DUE_SOONEST, &tm.mem), 0);
  maild__due_pick_free(&p);
  assert_int_equal(tm.live, 0);
}

static void test_trade(void **state) {
  const uint64_t found[] = {10, 20, 30, 40, 50};
  const uint64_t mine[] = {100, 35, 25, 5}; /* latest first */
  size_t leave, in;

  (void)state;
  /* Room for all: nothing leaves. */
  in = maild__window_trade(found, 5, mine, 4, 5, &leave);
  assert_int_equal(in, 5);
  assert_int_equal(leave, 0);
  /* Room for two; 30 replaces 100; 40 is not before 35: stop. */
  in = maild__window_trade(found, 5, mine, 4, 2, &leave);
  assert_int_equal(in, 3);
  assert_int_equal(leave, 1);
  /* No room: 10 for 100, 20 for 35, 30 is not before 25. */
  in = maild__window_trade(found, 5, mine, 4, 0, &leave);
  assert_int_equal(in, 2);
  assert_int_equal(leave, 2);
  /* Equal times do not trade (nothing to gain). */
  in = maild__window_trade((const uint64_t[]){100}, 1, mine, 4, 0, &leave);
  assert_int_equal(in, 0);
  assert_int_equal(leave, 0);
  /* Nothing found, or nothing that may leave. */
  in = maild__window_trade(found, 0, mine, 4, 0, &leave);
  assert_int_equal(in + leave, 0);
  in = maild__window_trade(found, 5, mine, 0, 1, &leave);
  assert_int_equal(in, 1);
  assert_int_equal(leave, 0);
  /* More finds than records: each record leaves at most once. */
  in = maild__window_trade(found, 5, (const uint64_t[]){1000}, 1, 0, &leave);
  assert_int_equal(in, 1);
  assert_int_equal(leave, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_soonest_of_many),
      cmocka_unit_test(test_latest_of_many),
      cmocka_unit_test(test_ties_by_id),
      cmocka_unit_test(test_small_and_empty),
      cmocka_unit_test(test_init_nomem),
      cmocka_unit_test(test_trade),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
