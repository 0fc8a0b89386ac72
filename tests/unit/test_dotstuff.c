/*
 * Unit tests for the dot-stuffing codec: the end of data only at CRLF "."
 * CRLF (every smuggling variant of TESTPLAN S1 is content), dot removal,
 * output bounds, identical output for every chunk split, the encoder's
 * line-end normalisation and output cap, and the roundtrip property.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "maild/dotstuff.h"

typedef struct bytes {
  uint8_t data[4096];
  size_t len;
} bytes;

static void bytes_add(bytes *b, const void *p, size_t n) {
  assert_true(n <= sizeof(b->data) - b->len);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

/* Decodes in[from, to) with an exactly sized output; returns consumed. */
static size_t decode_span(maild_dot_decoder *d, const uint8_t *in, size_t from,
                          size_t to, bytes *out, int *done) {
  size_t len = to - from, out_len = 0, n;
  uint8_t *buf = malloc(len + MAILD_DOT_DECODE_SLACK);

  assert_non_null(buf);
  n = maild_dot_decode(d, in + from, len, buf, &out_len, done);
  assert_true(n <= len);
  assert_true(out_len <= len + MAILD_DOT_DECODE_SLACK);
  assert_true(*done || n == len);
  bytes_add(out, buf, out_len);
  free(buf);
  return n;
}

/* Decodes `in` cut at a <= b; returns where the data ended (or len + 1). */
static size_t decode_cut(const uint8_t *in, size_t len, size_t a, size_t b,
                         bytes *out) {
  const size_t cuts[3] = {a, b, len};
  maild_dot_decoder d;
  size_t from = 0, i;
  int done = 0;

  out->len = 0;
  maild_dot_decoder_init(&d);
  for (i = 0; i < 3 && !done; i++) {
    size_t n = decode_span(&d, in, from, cuts[i], out, &done);
    from += n;
  }
  return done ? from : len + 1;
}

static size_t decode_bytewise(const uint8_t *in, size_t len, bytes *out) {
  maild_dot_decoder d;
  size_t i;
  int done = 0;

  out->len = 0;
  maild_dot_decoder_init(&d);
  for (i = 0; i < len && !done; i++)
    assert_int_equal(decode_span(&d, in, i, i + 1, out, &done), 1);
  return done ? i : len + 1;
}

/*
 * Decodes `in` whole, byte by byte and cut at every pair of positions;
 * all must agree. Returns the end position and the output in `out`.
 */
static size_t decode_all_splits(const char *in, size_t len, bytes *out) {
  const uint8_t *p = (const uint8_t *)in;
  size_t end = decode_cut(p, len, len, len, out), a, b;
  bytes other;

  assert_int_equal(decode_bytewise(p, len, &other), end);
  assert_int_equal(other.len, out->len);
  assert_memory_equal(other.data, out->data, out->len);
  for (a = 0; a <= len; a++) {
    for (b = a; b <= len; b++) {
      assert_int_equal(decode_cut(p, len, a, b, &other), end);
      assert_int_equal(other.len, out->len);
      assert_memory_equal(other.data, out->data, out->len);
    }
  }
  return end;
}

static void assert_decodes(const char *in, const char *expect, size_t end) {
  bytes out;

  assert_int_equal(decode_all_splits(in, strlen(in), &out), end);
  assert_int_equal(out.len, strlen(expect));
  assert_memory_equal(out.data, expect, out.len);
}

static void test_decode_basic(void **state) {
  (void)state;
  assert_decodes("Hello\r\n.\r\n", "Hello\r\n", 10);
  assert_decodes("Hi\r\n.\r\nQUIT\r\n", "Hi\r\n", 7);
  assert_decodes("..a\r\n.b\r\na.b\r\n..\r\n.\r\n", ".a\r\nb\r\na.b\r\n.\r\n",
                 21);
  assert_decodes("no end\r\n", "no end\r\n", 9);
  assert_decodes("a\r\n.", "a\r\n", 5);
  assert_decodes("a\r\n.\r", "a\r\n", 6);
}

/* ".\r\n" at the very start is the empty message; "\r\n.\r\n" one empty
   line: the CRLF that makes the start a line start is DATA's own. */
static void test_decode_empty(void **state) {
  (void)state;
  assert_decodes(".\r\n", "", 3);
  assert_decodes(".\r\nNOOP\r\n", "", 3);
  assert_decodes("\r\n.\r\n", "\r\n", 5);
}

static void test_decode_after_done(void **state) {
  maild_dot_decoder d;
  uint8_t out[16];
  size_t out_len;
  int done;
  (void)state;

  maild_dot_decoder_init(&d);
  assert_int_equal(
      maild_dot_decode(&d, (const uint8_t *)".\r\nX", 4, out, &out_len, &done),
      3);
  assert_int_equal(done, 1);
  assert_int_equal(out_len, 0);
  assert_int_equal(
      maild_dot_decode(&d, (const uint8_t *)"X", 1, out, &out_len, &done), 0);
  assert_int_equal(done, 1);
  assert_int_equal(
      maild_dot_decode(&d, (const uint8_t *)"", 0, out, &out_len, &done), 0);
  maild_dot_decoder_init(&d);
  assert_int_equal(
      maild_dot_decode(&d, (const uint8_t *)"X", 1, out, &out_len, &done), 1);
  assert_int_equal(done, 0);
  assert_int_equal(out_len, 1);
}

/* A byte string that may hold NULs. */
typedef struct sample {
  const char *s;
  size_t len;
} sample;
#define SAMPLE(lit) \
  { lit, sizeof(lit) - 1 }

/* TESTPLAN S1: none of these ends the data; only the real end does. */
static void test_decode_no_smuggling(void **state) {
  static const sample fake[] = {
      SAMPLE("\n.\n"),       SAMPLE("\r.\r"),         SAMPLE("\r.\n"),
      SAMPLE("\n.\r"),       SAMPLE("\n.\r\n"),       SAMPLE("\r\n.\n"),
      SAMPLE("\r.\r\n"),     SAMPLE("\r\n.\r"),       SAMPLE("\r\n.\0\r\n"),
      SAMPLE("\r\n\0.\r\n"), SAMPLE("\r\n.\r\0\n"),   SAMPLE("\r\n \r\n"),
      SAMPLE("\r\n..\r\n"),  SAMPLE("\r\r\n.\r\r\n"), SAMPLE("\n\r\n.\n\r\n"),
  };
  static const char smuggled[] = "MAIL FROM:<x@y>\r\n";
  static const char tail[] = "more\r\n.\r\nQUIT\r\n";
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(fake) / sizeof(fake[0]); i++) {
    char in[128];
    size_t n = 0, end;
    bytes out;

    memcpy(in + n, "body", 4);
    n += 4;
    memcpy(in + n, fake[i].s, fake[i].len);
    n += fake[i].len;
    memcpy(in + n, smuggled, sizeof(smuggled) - 1);
    n += sizeof(smuggled) - 1;
    memcpy(in + n, tail, sizeof(tail) - 1);
    n += sizeof(tail) - 1;
    end = decode_all_splits(in, n, &out);
    assert_int_equal(end, n - strlen("QUIT\r\n"));
    assert_true(out.len > 4 + 17 + 6);
    assert_memory_equal(out.data + out.len - 6 - 17, smuggled, 17);
    assert_memory_equal(out.data + out.len - 6, "more\r\n", 6);
  }
}

static void test_decode_exact_smuggling_output(void **state) {
  (void)state;
  assert_decodes("a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", 10);
  assert_decodes("a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n", 11);
  assert_decodes("a\r\n.\rb\r\n.\r\n", "a\r\n\rb\r\n", 11);
  assert_decodes("a\r\n.\r\rb\r\n.\r\n", "a\r\n\r\rb\r\n", 12);
}

/* The slack: ".\r" held back, then a bare CR and one more octet. */
static void test_decode_slack(void **state) {
  maild_dot_decoder d;
  uint8_t out[1 + MAILD_DOT_DECODE_SLACK];
  size_t out_len;
  int done;
  (void)state;

  maild_dot_decoder_init(&d);
  assert_int_equal(
      maild_dot_decode(&d, (const uint8_t *)".\r", 2, out, &out_len, &done), 2);
  assert_int_equal(out_len, 0);
  assert_int_equal(
      maild_dot_decode(&d, (const uint8_t *)"x", 1, out, &out_len, &done), 1);
  assert_int_equal(out_len, 2);
  assert_memory_equal(out, "\rx", 2);
}

static size_t encode_whole(const char *in, size_t len, bytes *out) {
  maild_dot_encoder e;
  size_t used;

  maild_dot_encoder_init(&e);
  out->len = maild_dot_encode(&e, (const uint8_t *)in, len, out->data,
                              sizeof(out->data), &used);
  assert_int_equal(used, len);
  out->len += maild_dot_encode_end(&e, out->data + out->len);
  return out->len;
}

static void assert_encodes(const char *in, const char *expect) {
  bytes out;

  encode_whole(in, strlen(in), &out);
  assert_int_equal(out.len, strlen(expect));
  assert_memory_equal(out.data, expect, out.len);
}

static void test_encode_basic(void **state) {
  (void)state;
  assert_encodes("", ".\r\n");
  assert_encodes("a", "a\r\n.\r\n");
  assert_encodes("a\r\n", "a\r\n.\r\n");
  assert_encodes("a\r", "a\r\n.\r\n");
  assert_encodes("a\n", "a\r\n.\r\n");
  assert_encodes("a\nb\rc\r\nd", "a\r\nb\r\nc\r\nd\r\n.\r\n");
  assert_encodes("\r\r\n\n", "\r\n\r\n\r\n.\r\n");
  assert_encodes(".x\n.y", "..x\r\n..y\r\n.\r\n");
  assert_encodes("a.b\r\n.\r\n", "a.b\r\n..\r\n.\r\n");
  assert_encodes("\r.\n.", "\r\n..\r\n..\r\n.\r\n");
}

static void test_encode_cr_across_chunks(void **state) {
  maild_dot_encoder e;
  uint8_t out[16];
  size_t used, n;
  (void)state;

  maild_dot_encoder_init(&e);
  n = maild_dot_encode(&e, (const uint8_t *)"a\r", 2, out, sizeof(out), &used);
  assert_int_equal(n, 3);
  n += maild_dot_encode(&e, (const uint8_t *)"\n.", 2, out + n, 16 - n, &used);
  assert_int_equal(used, 2);
  n += maild_dot_encode_end(&e, out + n);
  assert_int_equal(n, 10);
  assert_memory_equal(out, "a\r\n..\r\n.\r\n", 10);
}

/* The cap: nothing past it, never half of "\r\n" or "..". */
static void test_encode_cap(void **state) {
  static const char in[] = ".a\r\n.b\nc\r.\r\n";
  size_t len = sizeof(in) - 1, cap;
  bytes whole;
  (void)state;

  whole.len = 0;
  encode_whole(in, len, &whole);
  whole.len -= 3; /* without ".\r\n" */
  for (cap = 2; cap <= 2 * len; cap++) {
    maild_dot_encoder e;
    bytes out;
    size_t off = 0;

    out.len = 0;
    maild_dot_encoder_init(&e);
    while (off < len) {
      uint8_t buf[64];
      size_t used, n;

      memset(buf, 0xee, sizeof(buf));
      n = maild_dot_encode(&e, (const uint8_t *)in + off, len - off, buf, cap,
                           &used);
      assert_true(n <= cap);
      assert_true(used > 0);
      assert_int_equal(buf[cap], 0xee);
      if (cap >= 2 * (len - off))
        assert_int_equal(used, len - off);
      bytes_add(&out, buf, n);
      off += used;
    }
    out.len += maild_dot_encode_end(&e, out.data + out.len);
    assert_int_equal(out.len, whole.len + 3);
    assert_memory_equal(out.data, whole.data, whole.len);
  }
}

static void test_encode_cap_small(void **state) {
  maild_dot_encoder e;
  uint8_t out[4] = {0};
  size_t used;
  (void)state;

  maild_dot_encoder_init(&e);
  assert_int_equal(
      maild_dot_encode(&e, (const uint8_t *)".x", 2, out, 1, &used), 0);
  assert_int_equal(used, 0);
  assert_int_equal(
      maild_dot_encode(&e, (const uint8_t *)".x", 2, out, 0, &used), 0);
  assert_int_equal(used, 0);
  assert_int_equal(
      maild_dot_encode(&e, (const uint8_t *)".x", 2, out, 2, &used), 2);
  assert_int_equal(used, 1);
  assert_memory_equal(out, "..", 2);
  assert_int_equal(
      maild_dot_encode(&e, (const uint8_t *)"x\n", 2, out, 2, &used), 1);
  assert_int_equal(used, 1);
}

/* x with every line end made CRLF, and one more CRLF if x lacks an end. */
static void normalise(const char *x, size_t len, bytes *out) {
  size_t i;

  out->len = 0;
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

/* decode(encode(x)) is x normalised, for every split of the encoder input. */
static void assert_roundtrip(const char *x, size_t len) {
  bytes expect, enc, dec;
  size_t a, end;

  normalise(x, len, &expect);
  encode_whole(x, len, &enc);
  for (a = 0; a <= len; a++) {
    maild_dot_encoder e;
    bytes split;
    size_t used;

    maild_dot_encoder_init(&e);
    split.len = maild_dot_encode(&e, (const uint8_t *)x, a, split.data,
                                 sizeof(split.data), &used);
    split.len += maild_dot_encode(&e, (const uint8_t *)x + a, len - a,
                                  split.data + split.len,
                                  sizeof(split.data) - split.len, &used);
    split.len += maild_dot_encode_end(&e, split.data + split.len);
    assert_int_equal(split.len, enc.len);
    assert_memory_equal(split.data, enc.data, enc.len);
  }
  end = decode_all_splits((const char *)enc.data, enc.len, &dec);
  assert_int_equal(end, enc.len);
  assert_int_equal(dec.len, expect.len);
  assert_memory_equal(dec.data, expect.data, expect.len);
}

static void test_roundtrip(void **state) {
  static const char *const samples[] = {
      "",
      "a",
      "\r\n",
      "\n",
      "\r",
      ".",
      "..",
      ".\r\n",
      "\r\n.\r\n",
      "a\r\n.\r\nb",
      "\n.\n",
      "\r.\r",
      "x\r\r\n\n.",
      ".\r.\n.",
      "Subject: hi\r\n\r\n.body\r\n..\r\n",
  };
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
    assert_roundtrip(samples[i], strlen(samples[i]));
  assert_roundtrip("a\0.\r\n\0", 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_basic),
      cmocka_unit_test(test_decode_empty),
      cmocka_unit_test(test_decode_after_done),
      cmocka_unit_test(test_decode_no_smuggling),
      cmocka_unit_test(test_decode_exact_smuggling_output),
      cmocka_unit_test(test_decode_slack),
      cmocka_unit_test(test_encode_basic),
      cmocka_unit_test(test_encode_cr_across_chunks),
      cmocka_unit_test(test_encode_cap),
      cmocka_unit_test(test_encode_cap_small),
      cmocka_unit_test(test_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
