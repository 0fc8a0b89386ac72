/*
 * Bounded byte buffers: a growable region with a read offset and a hard
 * maximum, used for pending output and unfinished input. Growth goes
 * through the owner's allocator; nothing grows past `max`.
 */
#ifndef MAILD_CORE_BUF_H
#define MAILD_CORE_BUF_H

#include "maild/common.h"

typedef struct maild_buf {
  uint8_t *data;
  size_t off; /* first unread octet */
  size_t len; /* end of stored octets */
  size_t cap; /* allocated octets */
  size_t max; /* most octets ever stored (len - off) */
} maild_buf;

void maild__buf_init(maild_buf *b, size_t max);
void maild__buf_free(maild_buf *b, const maild_mem *m);

/* Octets stored and not yet consumed. */
static inline size_t maild__buf_used(const maild_buf *b) {
  return b->len - b->off;
}

static inline const uint8_t *maild__buf_peek(const maild_buf *b) {
  return b->data + b->off;
}

/*
 * Makes room for `n` more octets, compacting or growing the region.
 * Returns a pointer to the free space, or NULL with *err set to
 * MAILD_ERR_LIMIT (would exceed max) or MAILD_ERR_NOMEM.
 */
uint8_t *maild__buf_reserve(maild_buf *b, const maild_mem *m, size_t n,
                            int *err);

/* Marks `n` reserved octets as stored. */
static inline void maild__buf_commit(maild_buf *b, size_t n) {
  b->len += n;
}

/* Appends `n` octets. Returns 0, MAILD_ERR_LIMIT or MAILD_ERR_NOMEM. */
int maild__buf_append(maild_buf *b, const maild_mem *m, const void *p,
                      size_t n);

/* Drops `n` octets from the front. */
void maild__buf_consume(maild_buf *b, size_t n);

/* Drops everything (keeps the allocation). */
static inline void maild__buf_clear(maild_buf *b) {
  b->off = b->len = 0;
}

#endif
