/*
 * Fuzz harness for the CRLF line reader (TESTPLAN F1). The input is fed
 * once whole and once in chunks whose sizes the fuzzer picks, with one
 * allocation failed on the way (the refused chunk is fed again, as the
 * header allows); both runs must give the same lines and flags, and every
 * line must respect the reader's limit. Any violation aborts.
 *
 * Input layout: [max][chunk][fail_at][seed] then the octets to read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maild/error.h"
#include "maild/line.h"

/* The lines of one run, serialised. */
typedef struct record {
  uint8_t *p;
  size_t len, cap;
} record;

static void record_add(record *r, const void *p, size_t n) {
  if (r->cap - r->len < n) {
    size_t cap = (r->cap + n) * 2;
    uint8_t *np = realloc(r->p, cap);
    if (np == NULL)
      abort();
    r->p = np;
    r->cap = cap;
  }
  if (n > 0)
    memcpy(r->p + r->len, p, n);
  r->len += n;
}

static void record_line(record *r, const maild_line *l, size_t max) {
  if (l->len > max - 1 ||
      ((l->flags & MAILD_LINE_TOO_LONG) && l->len != max - 2))
    abort();
  record_add(r, &l->flags, sizeof(l->flags));
  record_add(r, &l->len, sizeof(l->len));
  record_add(r, l->data, l->len);
}

/* An allocator that refuses the fail_at-th allocation. */
typedef struct failmem {
  maild_mem mem;
  unsigned calls, fail_at;
} failmem;

static int refuse(failmem *fm) {
  return ++fm->calls == fm->fail_at;
}

static void *fm_malloc(size_t size, void *ud) {
  return refuse(ud) ? NULL : malloc(size);
}

static void fm_free(void *ptr, void *ud) {
  (void)ud;
  free(ptr);
}

static void *fm_calloc(size_t n, size_t size, void *ud) {
  return refuse(ud) ? NULL : calloc(n, size);
}

static void *fm_realloc(void *ptr, size_t size, void *ud) {
  return refuse(ud) ? NULL : realloc(ptr, size);
}

static uint32_t next_rand(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* Feeds in[0, len) to `lr` in chunks of 1..max_chunk octets (0: whole). */
static void run(maild_linereader *lr, const uint8_t *in, size_t len,
                size_t max_line, size_t max_chunk, uint32_t seed, record *r) {
  size_t off = 0;

  while (off < len) {
    size_t chunk = max_chunk ? 1 + next_rand(&seed) % max_chunk : len, end;
    end = chunk < len - off ? off + chunk : len;
    while (off < end) {
      maild_line l;
      maild_ssize n = maild_linereader_feed(lr, in + off, end - off, &l);
      if (n == MAILD_ERR_NOMEM)
        continue; /* unchanged: feed the same octets again */
      if (n <= 0 || (size_t)n > end - off)
        abort();
      if (l.data != NULL)
        record_line(r, &l, max_line);
      else if ((size_t)n != end - off)
        abort();
      if (maild_linereader_pending(lr) > max_line - 1)
        abort();
      off += (size_t)n;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  failmem fm = {{NULL, fm_malloc, fm_free, fm_calloc, fm_realloc}, 0, 0};
  record whole = {NULL, 0, 0}, split = {NULL, 0, 0};
  maild_linereader *lr;
  size_t max_line, max_chunk;
  uint32_t seed;

  if (size < 4)
    return 0;
  max_line =
      data[0] & 0x80 ? 3 + (size_t)(data[0] & 0x7f) * 8 : 3 + (size_t)data[0];
  max_chunk = 1 + data[1] % 64u;
  fm.fail_at = data[2] % 8u;
  seed = 0x9e3779b9u ^ data[3];
  fm.mem.user_data = &fm;
  if (maild_linereader_new(&lr, max_line, NULL) != 0)
    abort();
  run(lr, data + 4, size - 4, max_line, 0, seed, &whole);
  maild_linereader_del(lr);
  if (maild_linereader_new(&lr, max_line, &fm.mem) != 0 &&
      maild_linereader_new(&lr, max_line, &fm.mem) != 0)
    abort();
  run(lr, data + 4, size - 4, max_line, max_chunk, seed, &split);
  maild_linereader_del(lr);
  if (whole.len != split.len ||
      (whole.len > 0 && memcmp(whole.p, split.p, whole.len) != 0))
    abort();
  free(whole.p);
  free(split.p);
  return 0;
}
