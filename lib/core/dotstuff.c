/*
 * Streaming dot-stuffing codec (RFC 5321 4.5.2) for SMTP DATA and POP3
 * multi-line responses (RFC 1939 3). Messages are large and arrive in
 * segments split anywhere, so both directions are small state machines
 * that keep only their state between calls, never message octets: the
 * decoder holds back at most the CR of a ".\r" that may still turn into the
 * end line, which is why its output may exceed its input by the slack.
 *
 * The decoder is deliberately strict: a line starts only after CRLF (or at
 * the start of data), so the end of data is only CRLF "." CRLF (RFC 5321
 * 4.1.1.4). Bare CR and bare LF are content; treating them as line ends is
 * what lets a sender smuggle a second message past a filtering hop (SMTP
 * smuggling, TESTPLAN S1). The encoder, on the other hand, normalises every
 * line end it is given to CRLF (RFC 5321 2.3.8), so what it sends always
 * means the same to every receiver.
 */
#include "maild/dotstuff.h"

#include <string.h>

/* Decoder states. */
enum {
  DEC_BOL,    /* start of data or just after CRLF */
  DEC_MID,    /* inside a line */
  DEC_CR,     /* inside a line, just after CR (already copied) */
  DEC_DOT,    /* after a line's first "." (dropped) */
  DEC_DOT_CR, /* after "." CR at a line start (CR held back) */
  DEC_DONE    /* after CRLF "." CRLF */
};

/* Encoder states. */
enum {
  ENC_BOL, /* start of message or after a line end */
  ENC_MID, /* inside a line */
  ENC_CR   /* after a CR, written as CRLF: a LF now is part of it */
};

void maild_dot_decoder_init(maild_dot_decoder *d) {
  d->state = DEC_BOL;
}

/* Copies octets up to the next CR, which is the only one MID cares about. */
static size_t decode_plain(const uint8_t *in, size_t len, uint8_t *out) {
  const uint8_t *cr = memchr(in, '\r', len);
  size_t n = cr != NULL ? (size_t)(cr - in) : len;

  memcpy(out, in, n);
  return n;
}

/* Decodes one octet, writing at most two; returns the next state. */
static unsigned decode_octet(unsigned st, uint8_t c, uint8_t *out, size_t *o) {
  if (st == DEC_BOL && c == '.')
    return DEC_DOT; /* RFC 5321 4.5.2: the first dot of a line goes */
  if (st == DEC_DOT && c == '\r')
    return DEC_DOT_CR;
  if (st == DEC_DOT_CR) {
    if (c == '\n')
      return DEC_DONE;  /* CRLF "." CRLF, RFC 5321 4.1.1.4 */
    out[(*o)++] = '\r'; /* "." CR x: a bare CR, content */
  }
  out[(*o)++] = c;
  if (c == '\r')
    return DEC_CR;
  return st == DEC_CR && c == '\n' ? DEC_BOL : DEC_MID;
}

size_t maild_dot_decode(maild_dot_decoder *d, const uint8_t *in, size_t len,
                        uint8_t *out, size_t *out_len, int *done) {
  size_t i = 0, o = 0;

  while (i < len && d->state != DEC_DONE) {
    if (d->state == DEC_MID) {
      size_t n = decode_plain(in + i, len - i, out + o);
      i += n;
      o += n;
      if (i == len)
        break;
    }
    d->state = decode_octet(d->state, in[i++], out, &o);
  }
  *out_len = o;
  *done = d->state == DEC_DONE;
  return i;
}

void maild_dot_encoder_init(maild_dot_encoder *e) {
  e->state = ENC_BOL;
}

/* Copies octets inside a line until CR, LF or the end of room. */
static size_t encode_plain(const uint8_t *in, size_t len, uint8_t *out,
                           size_t room) {
  size_t n = 0, max = len < room ? len : room;

  while (n < max && in[n] != '\r' && in[n] != '\n') {
    out[n] = in[n];
    n++;
  }
  return n;
}

/* Encodes one octet into `tmp`; returns its length and sets *st. */
static size_t encode_octet(unsigned *st, uint8_t c, uint8_t tmp[2]) {
  if (*st == ENC_CR && c == '\n') {
    *st = ENC_BOL; /* the LF of a CRLF whose CR was written as CRLF */
    return 0;
  }
  if (c == '\r' || c == '\n') { /* every line end is CRLF, RFC 5321 2.3.8 */
    tmp[0] = '\r';
    tmp[1] = '\n';
    *st = c == '\r' ? ENC_CR : ENC_BOL;
    return 2;
  }
  tmp[0] = c;
  tmp[1] = c;
  if (c == '.' && *st != ENC_MID) {
    *st = ENC_MID;
    return 2; /* RFC 5321 4.5.2: a leading dot is doubled */
  }
  *st = ENC_MID;
  return 1;
}

size_t maild_dot_encode(maild_dot_encoder *e, const uint8_t *in, size_t len,
                        uint8_t *out, size_t cap, size_t *consumed) {
  size_t i = 0, o = 0;

  while (i < len) {
    uint8_t tmp[2];
    unsigned st = e->state;
    size_t n;

    if (st == ENC_MID) {
      n = encode_plain(in + i, len - i, out + o, cap - o);
      i += n;
      o += n;
      if (i == len || o == cap)
        break;
    }
    n = encode_octet(&st, in[i], tmp);
    if (n > cap - o)
      break; /* never a partial expansion */
    memcpy(out + o, tmp, n);
    o += n;
    i++;
    e->state = st;
  }
  *consumed = i;
  return o;
}

size_t maild_dot_encode_end(maild_dot_encoder *e, uint8_t *out) {
  size_t n = 0;

  if (e->state == ENC_MID) {
    out[n++] = '\r';
    out[n++] = '\n';
  }
  memcpy(out + n, ".\r\n", 3);
  e->state = ENC_BOL;
  return n + 3;
}
