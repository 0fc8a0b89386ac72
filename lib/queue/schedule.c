/* The retry schedule (see schedule.h). */
#include "queue/schedule.h"

#include <limits.h>

void maild__retry_policy_default(maild_retry_policy *p) {
  p->first_ms = MAILD_RETRY_FIRST_MS;
  p->max_ms = MAILD_RETRY_MAX_MS;
  p->lifetime_ms = MAILD_RETRY_LIFETIME_MS;
  p->warn_ms = 0;
}

uint64_t maild__retry_delay(const maild_retry_policy *p, unsigned attempt) {
  uint64_t d = p->first_ms > 0 ? p->first_ms : 1;
  unsigned i;

  for (i = 1; i < attempt && d < p->max_ms; i++)
    d = d > p->max_ms / 2 ? p->max_ms : d * 2;
  return d < p->max_ms ? d : p->max_ms;
}

uint64_t maild__retry_next(const maild_retry_policy *p, uint64_t arrival_ms,
                           uint64_t now_ms, unsigned attempt) {
  uint64_t end = arrival_ms + p->lifetime_ms, next;

  if (end < arrival_ms)
    end = UINT64_MAX; /* no end in sight */
  if (now_ms >= end)
    return 0;
  next = now_ms + maild__retry_delay(p, attempt);
  if (next < now_ms || next > end)
    next = end; /* one last try when the lifetime ends */
  return next;
}

unsigned maild__retry_attempts(const maild_retry_policy *p, uint64_t arrival_ms,
                               uint64_t due_ms) {
  uint64_t t = arrival_ms, d, rest; /* t: when attempt k+1 was due */
  unsigned k = 0;

  if (due_ms < t)
    return 0;
  for (;;) {
    d = maild__retry_delay(p, k + 1);
    if (d >= p->max_ms) { /* every wait from here on is max_ms */
      rest = (due_ms - t) / d;
      return rest >= (uint64_t)(UINT_MAX - k) ? UINT_MAX : k + (unsigned)rest;
    }
    if (d > due_ms - t || k == UINT_MAX)
      return k;
    t += d;
    k++;
  }
}

int maild__retry_warn_due(const maild_retry_policy *p, uint64_t arrival_ms,
                          uint64_t now_ms) {
  return p->warn_ms > 0 && now_ms >= arrival_ms &&
         now_ms - arrival_ms >= p->warn_ms;
}
