/*
 * Internal allocation helpers. Every allocation in the library goes through
 * an object's copied maild_mem, so tests can fail any single one.
 */
#ifndef MAILD_CORE_MEM_H
#define MAILD_CORE_MEM_H

#include "maild/common.h"

/* Copies `mem` into `dst`, or the C library allocator when `mem` is NULL. */
void maild__mem_init(maild_mem *dst, const maild_mem *mem);

void *maild__malloc(const maild_mem *m, size_t size);
void *maild__calloc(const maild_mem *m, size_t nmemb, size_t size);
void *maild__realloc(const maild_mem *m, void *ptr, size_t size);
void maild__free(const maild_mem *m, void *ptr);

/* A NUL-terminated copy of `s[0..len)`, or NULL. */
char *maild__strndup(const maild_mem *m, const char *s, size_t len);

/* Zeroes `n` bytes at `p` through a volatile pointer, so the stores of a
   secret (a password, a hash) are not removed as dead. */
void maild__wipe(void *p, size_t n);

#endif
