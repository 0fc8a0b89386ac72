/*
 * The retry schedule of the outbound queue (layer 1): pure functions of
 * the attempt number and the message's age, so that tests can play days
 * of retries in microseconds and the runtime needs no state beyond what
 * the spool keeps: the arrival time and the time of the next attempt (the
 * envelope file's modification time, as Postfix keeps it in its queue
 * file's). The attempt count is not stored: for a message read back from
 * the spool it is worked out from those two times
 * (maild__retry_attempts()), so the waits go on doubling where they were.
 *
 * Defaults (DESIGN.md): the first retry 5 minutes after the first attempt,
 * doubling to a 4 hour cap; give up 5 days after arrival; warn the sender
 * of the delay after 4 hours (when enabled).
 */
#ifndef MAILD_QUEUE_SCHEDULE_H
#define MAILD_QUEUE_SCHEDULE_H

#include "maild/common.h"

typedef struct maild_retry_policy {
  uint64_t first_ms;    /* wait after the first failed attempt (> 0) */
  uint64_t max_ms;      /* the longest wait (>= first_ms) */
  uint64_t lifetime_ms; /* give up this long after arrival */
  uint64_t warn_ms;     /* delay warning after this long; 0: never */
} maild_retry_policy;

#define MAILD_RETRY_FIRST_MS    (5u * 60u * 1000u)
#define MAILD_RETRY_MAX_MS      (4u * 3600u * 1000u)
#define MAILD_RETRY_LIFETIME_MS (UINT64_C(5) * 24u * 3600u * 1000u)

/* The defaults above, delay warnings off. */
void maild__retry_policy_default(maild_retry_policy *p);

/*
 * How long to wait after failed attempt number `attempt` (1 for the first
 * attempt): first_ms * 2^(attempt-1), at most max_ms. Never overflows.
 */
uint64_t maild__retry_delay(const maild_retry_policy *p, unsigned attempt);

/*
 * When the next attempt is due (milliseconds since the epoch), after
 * attempt `attempt` failed at `now_ms`, for a message that arrived at
 * `arrival_ms`; returns 0 when there is none: the lifetime ends first and
 * the remaining recipients expire (bounce) now. A last attempt is still
 * made at the very end of the lifetime when a full delay would pass it.
 */
uint64_t maild__retry_next(const maild_retry_policy *p, uint64_t arrival_ms,
                           uint64_t now_ms, unsigned attempt);

/*
 * How many attempts a message has had when its next one is due at
 * `due_ms`: the most attempts whose schedule, followed from the arrival on
 * without delays (the first attempt at arrival, then each wait as
 * maild__retry_delay() says), puts the next one at or before `due_ms`. A
 * message never tried (due at its arrival, or a little after) gets 0; one
 * whose attempts came late, or whose last wait the lifetime cut short, may
 * get one less than it had, and so waits a little less next time.
 * Constant time once the waits reach max_ms.
 */
unsigned maild__retry_attempts(const maild_retry_policy *p, uint64_t arrival_ms,
                               uint64_t due_ms);

/* 1 when a delay warning is due at `now_ms` for a message that arrived at
   `arrival_ms` and has not had one. */
int maild__retry_warn_due(const maild_retry_policy *p, uint64_t arrival_ms,
                          uint64_t now_ms);

#endif
