/* Counting, failing allocator for tests (see testmem.h). */
#include "testmem.h"

#include <stdlib.h>

static int should_fail(testmem *tm) {
  tm->calls++;
  if (tm->fail_at != 0 && tm->calls == tm->fail_at) {
    tm->failures++;
    return 1;
  }
  return 0;
}

static void *tm_malloc(size_t size, void *ud) {
  testmem *tm = ud;
  void *p;
  if (should_fail(tm))
    return NULL;
  p = malloc(size ? size : 1);
  if (p != NULL)
    tm->live++;
  return p;
}

static void tm_free(void *ptr, void *ud) {
  testmem *tm = ud;
  if (ptr == NULL)
    return;
  tm->live--;
  free(ptr);
}

static void *tm_calloc(size_t n, size_t size, void *ud) {
  testmem *tm = ud;
  void *p;
  if (should_fail(tm))
    return NULL;
  p = calloc(n ? n : 1, size ? size : 1);
  if (p != NULL)
    tm->live++;
  return p;
}

static void *tm_realloc(void *ptr, size_t size, void *ud) {
  testmem *tm = ud;
  void *p;
  if (should_fail(tm))
    return NULL;
  p = realloc(ptr, size ? size : 1);
  if (p != NULL && ptr == NULL)
    tm->live++;
  return p;
}

void testmem_init(testmem *tm, size_t fail_at) {
  tm->mem.user_data = tm;
  tm->mem.malloc = tm_malloc;
  tm->mem.free = tm_free;
  tm->mem.calloc = tm_calloc;
  tm->mem.realloc = tm_realloc;
  tm->calls = 0;
  tm->fail_at = fail_at;
  tm->failures = 0;
  tm->live = 0;
}
