/*
 * Streaming dot-stuffing codec (RFC 5321 4.5.2) for SMTP DATA and POP3
 * multi-line responses. Neither direction ever holds a message: both work
 * on chunks of any size, carrying a few bits of state between calls.
 *
 * Decoding recognises the end of data only at CRLF "." CRLF (the first CRLF
 * may be the start of data). Bare CR or bare LF never start a line, so
 * "\n.\n", "\r.\r", "\r\n.\n" and their kin are content, not an end: no SMTP
 * smuggling (TESTPLAN S1).
 */
#ifndef MAILD_DOTSTUFF_H
#define MAILD_DOTSTUFF_H

#include "maild/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Transparent so that it can live inside other objects; treat as opaque. */
typedef struct maild_dot_decoder {
  unsigned state;
} maild_dot_decoder;

typedef struct maild_dot_encoder {
  unsigned state;
} maild_dot_encoder;

/* Extra room beyond the input length that maild_dot_decode() may write. */
#define MAILD_DOT_DECODE_SLACK 2

/* Prepares a decoder for the first octet after the 354 reply. */
MAILD_EXTERN void maild_dot_decoder_init(maild_dot_decoder *d);

/*
 * Decodes `len` octets of DATA content into `out`, which must have room for
 * `len + MAILD_DOT_DECODE_SLACK` octets: leading dots are removed, the end
 * line is not copied, everything else (CRLFs included) is. Stops right after
 * the end line: `*done` is set to 1 and the return value is the number of
 * octets consumed, which may be less than `len` (the rest is the next
 * command). Otherwise consumes everything and sets `*done` to 0.
 * `*out_len` gets the number of octets written. After the end, the decoder
 * must be initialised again. Never fails.
 */
MAILD_EXTERN size_t maild_dot_decode(maild_dot_decoder *d, const uint8_t *in,
                                     size_t len, uint8_t *out, size_t *out_len,
                                     int *done);

/* Prepares an encoder for the first octet of a message. */
MAILD_EXTERN void maild_dot_encoder_init(maild_dot_encoder *e);

/*
 * Encodes message octets for transmission: every line end (CRLF, bare LF or
 * bare CR) becomes CRLF, and a line that starts with "." gets a second one.
 * Writes at most `cap` octets to `out`, consuming as much input as fits;
 * `*consumed` gets the input octets used. Returns the octets written.
 * With `cap >= 2 * len` all input is always consumed.
 */
MAILD_EXTERN size_t maild_dot_encode(maild_dot_encoder *e, const uint8_t *in,
                                     size_t len, uint8_t *out, size_t cap,
                                     size_t *consumed);

/*
 * Writes the end of data: CRLF first if the message did not end with a line
 * end, then ".\r\n". `out` needs 5 octets (MAILD_DOT_END_MAX). Returns the
 * octets written.
 */
#define MAILD_DOT_END_MAX 5
MAILD_EXTERN size_t maild_dot_encode_end(maild_dot_encoder *e, uint8_t *out);

#ifdef __cplusplus
}
#endif
#endif
