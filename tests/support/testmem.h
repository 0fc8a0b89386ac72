/*
 * A counting allocator for tests: counts allocations and live blocks, and
 * can fail the N-th allocation (nghttp2's failmalloc idea), so every test
 * can sweep N over all allocations of a scenario.
 */
#ifndef MAILD_TESTMEM_H
#define MAILD_TESTMEM_H

#include "maild/common.h"

typedef struct testmem {
  maild_mem mem;   /* pass &tm.mem to constructors */
  size_t calls;    /* allocations attempted (malloc, calloc, realloc) */
  size_t fail_at;  /* 1-based allocation to fail; 0 = never */
  size_t failures; /* allocations refused */
  long live;       /* blocks allocated and not yet freed */
} testmem;

void testmem_init(testmem *tm, size_t fail_at);

#endif
