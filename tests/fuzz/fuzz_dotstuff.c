/*
 * Fuzz harness for the dot-stuffing codec (TESTPLAN F1, S1). Properties:
 *  1. Decoding the input (with a real end appended) in fuzzer-chosen chunks
 *     gives the same end position and output as decoding it whole, and as
 *     a naive reference that ends only at a line-start ".\r\n" (a line
 *     starts only after CRLF) and drops the first dot of every line.
 *     Each call's output fits in len + MAILD_DOT_DECODE_SLACK exactly.
 *  2. Encoding the input in chunks under fuzzer-chosen caps, then decoding,
 *     gives the input with line ends normalised to CRLF (plus a final CRLF
 *     if it lacked one), and the decoder ends exactly at the encoded end.
 * Any violation aborts.
 *
 * Input layout: [seed][chunk][cap] then the octets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maild/dotstuff.h"

typedef struct bytes {
  uint8_t *p;
  size_t len, cap;
} bytes;

static void bytes_add(bytes *b, const void *p, size_t n) {
  if (b->cap - b->len < n) {
    size_t cap = (b->cap + n) * 2;
    uint8_t *np = realloc(b->p, cap);
    if (np == NULL)
      abort();
    b->p = np;
    b->cap = cap;
  }
  if (n > 0)
    memcpy(b->p + b->len, p, n);
  b->len += n;
}

static int bytes_equal(const bytes *a, const bytes *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static uint32_t next_rand(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* The naive reading of RFC 5321 4.5.2; returns the end or len + 1. */
static size_t reference_decode(const uint8_t *in, size_t len, bytes *out) {
  size_t i;

  for (i = 0; i < len; i++) {
    int bol = i == 0 || (i >= 2 && in[i - 2] == '\r' && in[i - 1] == '\n');
    if (bol && in[i] == '.') {
      if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n')
        return i + 3;
      continue;
    }
    bytes_add(out, in + i, 1);
  }
  return len + 1;
}

/* Decodes in chunks of 1..max_chunk (0: whole); returns the end or len + 1. */
static size_t chunked_decode(const uint8_t *in, size_t len, size_t max_chunk,
                             uint32_t seed, bytes *out) {
  maild_dot_decoder d;
  size_t off = 0;
  int done = 0;

  maild_dot_decoder_init(&d);
  while (off < len && !done) {
    size_t chunk = max_chunk ? 1 + next_rand(&seed) % max_chunk : len;
    size_t n = chunk < len - off ? chunk : len - off, out_len = 0, used;
    uint8_t *buf = malloc(n + MAILD_DOT_DECODE_SLACK);

    if (buf == NULL)
      abort();
    used = maild_dot_decode(&d, in + off, n, buf, &out_len, &done);
    if (used > n || (!done && used != n) || out_len > n + 2)
      abort();
    bytes_add(out, buf, out_len);
    free(buf);
    off += used;
  }
  return done ? off : len + 1;
}

static void check_decode(const uint8_t *data, size_t size, size_t max_chunk,
                         uint32_t seed) {
  bytes in = {NULL, 0, 0}, ref = {NULL, 0, 0}, whole = {NULL, 0, 0},
        split = {NULL, 0, 0};
  size_t end;

  bytes_add(&in, data, size);
  bytes_add(&in, "\r\n.\r\n", 5);
  end = reference_decode(in.p, in.len, &ref);
  if (end > in.len || chunked_decode(in.p, in.len, 0, seed, &whole) != end ||
      chunked_decode(in.p, in.len, max_chunk, seed, &split) != end ||
      !bytes_equal(&ref, &whole) || !bytes_equal(&ref, &split))
    abort();
  free(in.p);
  free(ref.p);
  free(whole.p);
  free(split.p);
}

/* Encodes in chunks of 1..max_chunk under caps of 2..max_cap + 1. */
static void chunked_encode(const uint8_t *in, size_t len, size_t max_chunk,
                           size_t max_cap, uint32_t seed, bytes *out) {
  maild_dot_encoder e;
  uint8_t buf[512 + MAILD_DOT_END_MAX];
  size_t off = 0;

  maild_dot_encoder_init(&e);
  while (off < len) {
    size_t chunk = 1 + next_rand(&seed) % max_chunk;
    size_t n = chunk < len - off ? chunk : len - off, used;
    size_t cap = 2 + next_rand(&seed) % max_cap;
    size_t w = maild_dot_encode(&e, in + off, n, buf, cap, &used);

    if (w > cap || used > n || used == 0 || (cap >= 2 * n && used != n))
      abort();
    bytes_add(out, buf, w);
    off += used;
  }
  bytes_add(out, buf, maild_dot_encode_end(&e, buf));
}

/* `x` with every line end made CRLF, plus CRLF if it lacks a final one. */
static void normalise(const uint8_t *x, size_t len, bytes *out) {
  size_t i;

  for (i = 0; i < len; i++) {
    if (x[i] == '\r' && i + 1 < len && x[i + 1] == '\n')
      continue;
    if (x[i] == '\r' || x[i] == '\n')
      bytes_add(out, "\r\n", 2);
    else
      bytes_add(out, x + i, 1);
  }
  if (len > 0 && x[len - 1] != '\r' && x[len - 1] != '\n')
    bytes_add(out, "\r\n", 2);
}

static void check_roundtrip(const uint8_t *data, size_t size, size_t max_chunk,
                            size_t max_cap, uint32_t seed) {
  bytes enc = {NULL, 0, 0}, dec = {NULL, 0, 0}, expect = {NULL, 0, 0};

  chunked_encode(data, size, max_chunk, max_cap, seed, &enc);
  normalise(data, size, &expect);
  if (chunked_decode(enc.p, enc.len, max_chunk, seed, &dec) != enc.len ||
      !bytes_equal(&dec, &expect))
    abort();
  free(enc.p);
  free(dec.p);
  free(expect.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint32_t seed;
  size_t max_chunk, max_cap;

  if (size < 3)
    return 0;
  seed = 0x9e3779b9u ^ data[0];
  max_chunk = 1 + data[1] % 64u;
  max_cap = 1 + data[2];
  check_decode(data + 3, size - 3, max_chunk, seed);
  check_roundtrip(data + 3, size - 3, max_chunk, max_cap, seed);
  return 0;
}
