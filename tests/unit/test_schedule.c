/*
 * The retry schedule (TESTPLAN Q1, schedule half): with an injected clock,
 * five days of failing attempts pass in microseconds; the waits double
 * from 5 minutes to the 4 hour cap, the last attempt falls exactly at the
 * end of the lifetime, and exactly one expiry (one bounce) follows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>

#include "queue/schedule.h"

#define MIN (60u * 1000u)

static void test_delays_double_to_cap(void **state) {
  maild_retry_policy p;
  const uint64_t want[] = {5 * MIN,  10 * MIN,  20 * MIN,  40 * MIN,
                           80 * MIN, 160 * MIN, 240 * MIN, 240 * MIN};
  unsigned i;

  (void)state;
  maild__retry_policy_default(&p);
  for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    assert_int_equal(maild__retry_delay(&p, i + 1), want[i]);
  assert_int_equal(maild__retry_delay(&p, 0), 5 * MIN);
  assert_int_equal(maild__retry_delay(&p, 100000), 240 * MIN);
  p.max_ms = UINT64_MAX;
  assert_int_equal(maild__retry_delay(&p, 200), UINT64_MAX); /* no wrap */
}

/* Q1: days of retries with an injected clock; one expiry at the end. */
static void test_q1_five_days(void **state) {
  maild_retry_policy p;
  uint64_t arrival = UINT64_C(1764200000000), now = arrival, end;
  unsigned attempt = 0, expiries = 0;

  (void)state;
  maild__retry_policy_default(&p);
  end = arrival + p.lifetime_ms;
  for (;;) {
    uint64_t next;
    attempt++; /* an attempt at `now` fails temporarily */
    next = maild__retry_next(&p, arrival, now, attempt);
    if (next == 0) {
      expiries++;
      break;
    }
    assert_true(next > now);
    assert_true(next <= end);
    now = next;
  }
  assert_int_equal(expiries, 1);
  assert_int_equal(now, end); /* the last attempt at the very end */
  /* 5+10+20+40+80+160 min = 315 min, then every 4 h: (7200-315)/240 =
     28.6 -> 28 full waits, one short wait to the end; plus the first. */
  assert_int_equal(attempt, 1 + 6 + 28 + 1);
}

static void test_lifetime_edges(void **state) {
  maild_retry_policy p;

  (void)state;
  maild__retry_policy_default(&p);
  p.lifetime_ms = 0;
  assert_int_equal(maild__retry_next(&p, 1000, 1000, 1), 0);
  p.lifetime_ms = UINT64_MAX; /* arrival + lifetime overflows: no end */
  assert_int_equal(maild__retry_next(&p, 1000, 2000, 1), 2000 + 5 * MIN);
  p.lifetime_ms = 7 * MIN; /* the second wait is cut to the end */
  assert_int_equal(maild__retry_next(&p, 0, 5 * MIN, 2), 7 * MIN);
  assert_int_equal(maild__retry_next(&p, 0, 7 * MIN, 3), 0);
  assert_int_equal(maild__retry_warn_due(&p, 0, UINT64_C(1) << 40), 0);
  p.warn_ms = 4 * 60 * MIN;
  assert_int_equal(maild__retry_warn_due(&p, 0, 4 * 60 * MIN - 1), 0);
  assert_int_equal(maild__retry_warn_due(&p, 0, 4 * 60 * MIN), 1);
  assert_int_equal(maild__retry_warn_due(&p, 10, 5), 0);
}

/* A message read back from the spool has no attempt count: it is worked
   out from its arrival and due times, and gives back the count that made
   each due time of the schedule, so the waits go on doubling. */
static void test_attempts_from_due_time(void **state) {
  maild_retry_policy p;
  uint64_t arrival = UINT64_C(1764200000000), now = arrival, next;
  unsigned attempt = 0;

  (void)state;
  maild__retry_policy_default(&p);
  /* Never tried: due at arrival or a little after (its commit). */
  assert_int_equal(maild__retry_attempts(&p, arrival, arrival), 0);
  assert_int_equal(maild__retry_attempts(&p, arrival, arrival + 1500), 0);
  assert_int_equal(maild__retry_attempts(&p, arrival, arrival - 1), 0);
  assert_int_equal(maild__retry_attempts(&p, arrival, 0), 0);
  for (;;) {
    attempt++;
    next = maild__retry_next(&p, arrival, now, attempt);
    if (next == 0)
      break;
    if (next == arrival + p.lifetime_ms) { /* the last wait, cut short */
      assert_int_equal(maild__retry_attempts(&p, arrival, next), attempt - 1);
    } else {
      assert_int_equal(maild__retry_attempts(&p, arrival, next), attempt);
      /* Attempts that came late still count as theirs. */
      assert_int_equal(maild__retry_attempts(&p, arrival, next + 60000u),
                       attempt);
    }
    now = next;
  }
  assert_int_equal(attempt, 36);
  /* Tried once: due 5 min on; the next wait is then 10 min. */
  assert_int_equal(maild__retry_attempts(&p, arrival, arrival + 5 * MIN), 1);
  assert_int_equal(maild__retry_attempts(&p, arrival, arrival + 5 * MIN - 1),
                   0);
  assert_int_equal(maild__retry_attempts(&p, arrival, arrival + 15 * MIN), 2);
}

/* Far due times with a tiny cap take no long loop and never wrap. */
static void test_attempts_bounded(void **state) {
  maild_retry_policy p;

  (void)state;
  maild__retry_policy_default(&p);
  p.first_ms = 1;
  p.max_ms = 2;
  /* Waits 1, 2, 2, 2...: after k >= 1 attempts the next is due at 2k - 1. */
  assert_int_equal(maild__retry_attempts(&p, 0, 1), 1);
  assert_int_equal(maild__retry_attempts(&p, 0, 3), 2);
  assert_int_equal(maild__retry_attempts(&p, 0, 4), 2);
  assert_int_equal(maild__retry_attempts(&p, 0, UINT64_C(1999999999)),
                   1000000000u);
  assert_int_equal(maild__retry_attempts(&p, 0, UINT64_C(2000000001)),
                   1000000001u);
  assert_int_equal(maild__retry_attempts(&p, 0, UINT64_MAX), UINT_MAX);
  p.max_ms = UINT64_MAX; /* doubling never reaches the cap */
  assert_int_equal(maild__retry_attempts(&p, 0, UINT64_MAX), 64);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_delays_double_to_cap),
      cmocka_unit_test(test_q1_five_days),
      cmocka_unit_test(test_lifetime_edges),
      cmocka_unit_test(test_attempts_from_due_time),
      cmocka_unit_test(test_attempts_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
