/*
 * Base64 (RFC 4648 4) for SASL exchanges (RFC 4954 4) and MIME. SASL
 * credentials arrive from unauthenticated peers, so the decoder accepts
 * exactly one spelling of each octet string: the canonical one. RFC 4648
 * 3.1-3.5 let implementations refuse line breaks, characters outside the
 * alphabet, missing padding and non-zero pad bits; refusing all of them
 * keeps two different inputs from decoding to the same credentials. The
 * input is checked in full before any error is reported, so a malformed
 * input is always MAILD_ERR_SYNTAX whatever the room given for output.
 */
#include "maild/base64.h"
#include "maild/error.h"

#include <string.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

maild_ssize maild_base64_encode(const uint8_t *in, size_t len, char *out,
                                size_t cap) {
  size_t i, o = 0;

  if (len / 3 >= (size_t)PTRDIFF_MAX / 4 - 1 ||
      cap <= MAILD_BASE64_ENCODED_LEN(len))
    return MAILD_ERR_NOSPC;
  for (i = 0; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = alphabet[v >> 6 & 63];
    out[o++] = alphabet[v & 63];
  }
  if (i < len) { /* one or two octets left: pad with '=' (RFC 4648 4) */
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)in[i + 1] << 8;
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  return (maild_ssize)o;
}

/* Value of an alphabet character, or -1. */
static int sextet(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  return c == '/' ? 63 : -1;
}

/*
 * Decodes one group of four characters into `dst`; `final` says whether it
 * may carry padding. Returns the octets it holds or MAILD_ERR_SYNTAX.
 */
static int decode_quad(const char *q, int final, uint8_t dst[3]) {
  int pad = q[3] != '=' ? 0 : q[2] != '=' ? 1 : 2;
  uint32_t v = 0;
  int i;

  if (pad > 0 && !final)
    return MAILD_ERR_SYNTAX;
  for (i = 0; i < 4 - pad; i++) {
    int s = sextet(q[i]);
    if (s < 0)
      return MAILD_ERR_SYNTAX;
    v = v << 6 | (uint32_t)s;
  }
  v <<= 6 * pad;
  if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0))
    return MAILD_ERR_SYNTAX; /* RFC 4648 3.5: pad bits must be zero */
  dst[0] = (uint8_t)(v >> 16);
  dst[1] = (uint8_t)(v >> 8);
  dst[2] = (uint8_t)v;
  return 3 - pad;
}

maild_ssize maild_base64_decode(const char *in, size_t len, uint8_t *out,
                                size_t cap) {
  size_t i, o = 0;

  if (len % 4 != 0)
    return MAILD_ERR_SYNTAX; /* padding is required, RFC 4648 3.2 */
  for (i = 0; i < len; i += 4) {
    uint8_t dst[3];
    int n = decode_quad(in + i, i + 4 == len, dst);

    if (n < 0)
      return n;
    if (o <= cap && (size_t)n <= cap - o)
      memcpy(out + o, dst, (size_t)n);
    o += (size_t)n; /* past cap: keep checking, report NOSPC at the end */
  }
  return o > cap ? MAILD_ERR_NOSPC : (maild_ssize)o;
}
