/*
 * Base64 (RFC 4648 4) for SASL exchanges (RFC 4954) and MIME. Decoding is
 * strict: padding is required, no white space, no characters outside the
 * alphabet, and non-zero trailing bits are refused.
 */
#ifndef MAILD_BASE64_H
#define MAILD_BASE64_H

#include "maild/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Octets needed to encode `n` octets (without a NUL). */
#define MAILD_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Octets at most produced by decoding `n` characters. */
#define MAILD_BASE64_DECODED_MAX(n) (((n) / 4) * 3)

/*
 * Encodes `in` into `out` (room for MAILD_BASE64_ENCODED_LEN(len) + 1; a NUL
 * is added). Returns the encoded length or MAILD_ERR_NOSPC.
 */
MAILD_EXTERN maild_ssize maild_base64_encode(const uint8_t *in, size_t len,
                                             char *out, size_t cap);

/*
 * Decodes `in` into `out`. Returns the decoded length, MAILD_ERR_SYNTAX
 * (invalid character, bad length or padding) or MAILD_ERR_NOSPC.
 */
MAILD_EXTERN maild_ssize maild_base64_decode(const char *in, size_t len,
                                             uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
