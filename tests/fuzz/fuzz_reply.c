/*
 * Fuzz harness for SMTP replies (TESTPLAN F1). Properties:
 *  1. The parser gives the same replies (code, enhanced code, lines, text)
 *     and the same error whether the input is fed whole or in chunks the
 *     fuzzer picks, and every reply respects the parser's limits.
 *  2. Whatever text is formatted (with or without an enhanced code), the
 *     parser reads the formatted reply back as exactly one reply with the
 *     same code, one line per '\n' and the sanitised text.
 * Any violation aborts.
 *
 * Input layout: [max_line][max_lines][chunk][seed][code][enh] then text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maild/error.h"
#include "maild/reply.h"

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

static uint32_t next_rand(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void check_reply(const maild_parsed_reply *r, size_t max_line,
                        size_t max_lines) {
  if (r->code < 200 || r->code > 599 || r->lines == 0 || r->lines > max_lines ||
      r->text_len > r->lines * max_line)
    abort();
  if (r->enhanced[0] != '\0' && (maild_enhanced_check(r->enhanced) != 0 ||
                                 r->enhanced[0] - '0' != r->code / 100))
    abort();
}

static void record_reply(bytes *rec, const maild_parsed_reply *r) {
  bytes_add(rec, &r->code, sizeof(r->code));
  bytes_add(rec, r->enhanced, sizeof(r->enhanced));
  bytes_add(rec, &r->lines, sizeof(r->lines));
  bytes_add(rec, &r->text_len, sizeof(r->text_len));
  bytes_add(rec, r->text, r->text_len);
}

/* Parses in chunks of 1..max_chunk (0: whole), recording replies and the
   error that stopped the parser, if any. */
static void run(const uint8_t *in, size_t len, size_t max_line,
                size_t max_lines, size_t max_chunk, uint32_t seed, bytes *rec) {
  maild_reply_parser *p;
  size_t off = 0;
  maild_ssize n = 0;

  if (maild_reply_parser_new(&p, max_line, max_lines, NULL) != 0)
    abort();
  while (off < len && n >= 0) {
    size_t chunk = max_chunk ? 1 + next_rand(&seed) % max_chunk : len;
    size_t end = chunk < len - off ? off + chunk : len;
    while (off < end) {
      maild_parsed_reply r;
      n = maild_reply_parser_feed(p, in + off, end - off, &r);
      if (n < 0)
        break;
      if (n == 0 || (size_t)n > end - off ||
          (r.code == 0 && (size_t)n != end - off))
        abort();
      if (r.code != 0) {
        check_reply(&r, max_line, max_lines);
        record_reply(rec, &r);
      }
      off += (size_t)n;
    }
  }
  if (n < 0)
    bytes_add(rec, &n, sizeof(n));
  maild_reply_parser_del(p);
}

static void check_splits(const uint8_t *data, size_t size) {
  size_t max_line = 5 + data[0] % 64u, max_lines = 1 + data[1] % 8u;
  size_t max_chunk = 1 + data[2] % 32u;
  uint32_t seed = 0x9e3779b9u ^ data[3];
  bytes whole = {NULL, 0, 0}, split = {NULL, 0, 0};

  run(data + 6, size - 6, max_line, max_lines, 0, seed, &whole);
  run(data + 6, size - 6, max_line, max_lines, max_chunk, seed, &split);
  if (whole.len != split.len ||
      (whole.len > 0 && memcmp(whole.p, split.p, whole.len) != 0))
    abort();
  free(whole.p);
  free(split.p);
}

/* The text the parser should give back for a formatted reply. */
static void expected_text(const char *text, const char *enh, bytes *out) {
  size_t i = 0;

  for (;;) {
    size_t n = strcspn(text + i, "\n");
    if (enh != NULL) {
      bytes_add(out, enh, strlen(enh));
      if (n > 0)
        bytes_add(out, " ", 1);
    }
    for (; n > 0; n--, i++) {
      unsigned char c = (unsigned char)text[i];
      bytes_add(out, (c < 0x20 && c != '\t') || c == 0x7f ? "?" : text + i, 1);
    }
    if (text[i] == '\0')
      return;
    bytes_add(out, "\n", 1);
    i++;
  }
}

static void check_format(const uint8_t *data, size_t size) {
  int code = 200 + (data[4] * 7) % 400;
  char enh[MAILD_ENHANCED_MAX + 1], *text = malloc(size - 6 + 1), *out;
  /* RFC 3463 3.1: 3xx replies have no enhanced code. */
  const char *e = data[5] & 1 && code / 100 != 3 ? enh : NULL;
  maild_parsed_reply r;
  bytes expect = {NULL, 0, 0};
  maild_reply_parser *p;
  maild_ssize len;
  size_t lines = 1, i;

  if (text == NULL)
    abort();
  memcpy(text, data + 6, size - 6);
  text[size - 6] = '\0';
  for (i = 0; text[i] != '\0'; i++)
    lines += text[i] == '\n';
  snprintf(enh, sizeof(enh), "%d.%d.%d", code / 100, data[5] >> 4,
           (data[5] >> 1) & 7);
  expected_text(text, e, &expect);
  len = maild_reply_format(NULL, 0, code, e, text);
  out = malloc(len > 0 ? (size_t)len : 1);
  if (len <= 0 || out == NULL ||
      maild_reply_format(out, (size_t)len, code, e, text) != len ||
      maild_reply_parser_new(&p, (size_t)len, lines, NULL) != 0)
    abort();
  if (maild_reply_parser_feed(p, (const uint8_t *)out, (size_t)len, &r) !=
          len ||
      r.code != code || r.lines != lines || r.text_len != expect.len ||
      (expect.len > 0 && memcmp(r.text, expect.p, expect.len) != 0) ||
      (e != NULL && strcmp(r.enhanced, e) != 0))
    abort();
  maild_reply_parser_del(p);
  free(expect.p);
  free(out);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 6)
    return 0;
  check_splits(data, size);
  check_format(data, size);
  return 0;
}
