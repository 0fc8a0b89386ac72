/*
 * Bounded byte buffers (see buf.h). The region grows by doubling up to the
 * buffer's maximum; consumed octets are reclaimed by moving the rest to the
 * front only when room is needed, so a steady producer/consumer pair does
 * not copy on every call.
 */
#include "core/buf.h"
#include "core/mem.h"
#include "maild/error.h"

#include <string.h>

void maild__buf_init(maild_buf *b, size_t max) {
  memset(b, 0, sizeof(*b));
  b->max = max;
}

void maild__buf_free(maild_buf *b, const maild_mem *m) {
  maild__free(m, b->data);
  b->data = NULL;
  b->off = b->len = b->cap = 0;
}

uint8_t *maild__buf_reserve(maild_buf *b, const maild_mem *m, size_t n,
                            int *err) {
  size_t used = b->len - b->off;
  size_t want, cap;
  uint8_t *p;

  if (n > b->max || used > b->max - n) {
    *err = MAILD_ERR_LIMIT;
    return NULL;
  }
  if (b->cap - b->len >= n)
    return b->data + b->len;
  if (b->off > 0) {
    memmove(b->data, b->data + b->off, used);
    b->off = 0;
    b->len = used;
    if (b->cap - b->len >= n)
      return b->data + b->len;
  }
  want = used + n;
  cap = b->cap ? b->cap : 256;
  while (cap < want)
    cap = cap > SIZE_MAX / 2 ? want : cap * 2;
  if (cap > b->max)
    cap = b->max > want ? b->max : want;
  p = maild__realloc(m, b->data, cap);
  if (p == NULL) {
    *err = MAILD_ERR_NOMEM;
    return NULL;
  }
  b->data = p;
  b->cap = cap;
  return b->data + b->len;
}

int maild__buf_append(maild_buf *b, const maild_mem *m, const void *p,
                      size_t n) {
  int err = 0;
  uint8_t *dst;

  if (n == 0)
    return 0;
  dst = maild__buf_reserve(b, m, n, &err);
  if (dst == NULL)
    return err;
  memcpy(dst, p, n);
  b->len += n;
  return 0;
}

void maild__buf_consume(maild_buf *b, size_t n) {
  if (n >= b->len - b->off) {
    b->off = b->len = 0;
    return;
  }
  b->off += n;
}
