/*
 * Allocator hooks: the default hooks wrap the C library; objects copy the
 * hooks they were given so that a test allocator reaches every allocation.
 * The defaults are read-only function pointers, not mutable global state.
 */
#include "core/mem.h"

#include <stdlib.h>
#include <string.h>

static void *default_malloc(size_t size, void *user_data) {
  (void)user_data;
  return malloc(size);
}

static void default_free(void *ptr, void *user_data) {
  (void)user_data;
  free(ptr);
}

static void *default_calloc(size_t nmemb, size_t size, void *user_data) {
  (void)user_data;
  return calloc(nmemb, size);
}

static void *default_realloc(void *ptr, size_t size, void *user_data) {
  (void)user_data;
  return realloc(ptr, size);
}

void maild__mem_init(maild_mem *dst, const maild_mem *mem) {
  if (mem != NULL) {
    *dst = *mem;
    return;
  }
  dst->user_data = NULL;
  dst->malloc = default_malloc;
  dst->free = default_free;
  dst->calloc = default_calloc;
  dst->realloc = default_realloc;
}

void *maild__malloc(const maild_mem *m, size_t size) {
  return m->malloc(size, m->user_data);
}

void *maild__calloc(const maild_mem *m, size_t nmemb, size_t size) {
  return m->calloc(nmemb, size, m->user_data);
}

void *maild__realloc(const maild_mem *m, void *ptr, size_t size) {
  return m->realloc(ptr, size, m->user_data);
}

void maild__free(const maild_mem *m, void *ptr) {
  if (ptr != NULL)
    m->free(ptr, m->user_data);
}

char *maild__strndup(const maild_mem *m, const char *s, size_t len) {
  char *p = maild__malloc(m, len + 1);
  if (p == NULL)
    return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

void maild__wipe(void *p, size_t n) {
  volatile unsigned char *v = p;

  while (n-- > 0)
    *v++ = 0;
}
