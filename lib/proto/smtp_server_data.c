/*
 * SMTP server message bodies: DATA (RFC 5321 4.1.1.4, dot-stuffed, ends
 * only at CRLF.CRLF) and BDAT (RFC 3030, counted chunks).
 *
 * Bodies stream: each decoded piece goes to on_data_chunk and nothing is
 * kept. A body over the size limit, or with too many Received: headers
 * (a mail loop, RFC 5321 6.3), is still read to its end, so the next
 * command is found where the client put it, and then refused (552 5.3.4,
 * 554 5.4.0). BDAT chunks are always read whole, even when the command is
 * refused, since their length is known and the octets are not commands.
 */
#include "proto/smtp_server_int.h"

#include "core/ascii.h"
#include "maild/error.h"

#include <string.h>

/* Counts "Received:" header lines up to the empty line that ends the
   header section (RFC 5322 2.1). */
static void scan_headers(smtp_tx *tx, const uint8_t *p, size_t n) {
  static const char pat[] = "received:";
  size_t i;

  for (i = 0; i < n && tx->in_headers; i++) {
    int c = p[i];
    if (c == '\n') {
      if (tx->line_len == 0)
        tx->in_headers = 0;
      tx->line_len = 0;
      tx->line_match = 1;
      continue;
    }
    if (c == '\r')
      continue;
    if (tx->line_match && tx->line_len < sizeof(pat) - 1) {
      if (maild__ascii_lower((unsigned)c) != (unsigned char)pat[tx->line_len])
        tx->line_match = 0;
      else if (tx->line_len == sizeof(pat) - 2)
        tx->received++;
    }
    tx->line_len++;
  }
}

/* Hands body octets to the embedder, unless the body is already doomed. */
static int body_bytes(maild_smtp_server *s, const uint8_t *p, size_t n) {
  smtp_tx *tx = s->tx;
  int rc;

  if (tx == NULL || tx->fault != BODY_OK || n == 0)
    return 0;
  scan_headers(tx, p, n);
  if (tx->received > s->max_received) {
    tx->fault = BODY_LOOP;
    return 0;
  }
  if (n > s->max_message_size - tx->body_size) {
    tx->fault = BODY_TOO_BIG;
    return 0;
  }
  tx->body_size += n;
  rc = s->cb.on_data_chunk ? s->cb.on_data_chunk(s, p, n, s->user_data) : 0;
  if (rc == MAILD_ERR_DEFER) {
    s->pending = PEND_CHUNK;
    return 0;
  }
  if (rc < 0)
    return maild__smtp_close(s, 421, "4.3.0", "Error: local error");
  return 0;
}

/* The body is complete: refuse it or ask the embedder to commit it. */
static int body_end(maild_smtp_server *s) {
  smtp_tx *tx = s->tx;
  maild_reply r = {0, NULL, NULL};
  int rc;

  s->body_done = 0;
  s->input = IN_COMMAND;
  if (tx == NULL)
    return 0;
  if (tx->fault == BODY_TOO_BIG) {
    maild__smtp_tx_end(s, MAILD_SMTP_ABORT_TOO_BIG);
    return maild__smtp_reply(s, 552, "5.3.4",
                             "Error: message size exceeds fixed limit");
  }
  if (tx->fault == BODY_LOOP) {
    maild__smtp_tx_end(s, MAILD_SMTP_ABORT_LOOP);
    return maild__smtp_reply(s, 554, "5.4.0",
                             "Error: too many Received headers (mail loop)");
  }
  /* on_data_end concludes the transaction whatever the answer. */
  s->tx = NULL;
  maild__smtp_tx_free(s, tx);
  rc = s->cb.on_data_end ? s->cb.on_data_end(s, &r, s->user_data) : 0;
  return maild__smtp_decide(s, PEND_DATA_END, rc, &r);
}

int maild__smtp_data_end_done(maild_smtp_server *s, const maild_reply *r) {
  int code = maild__smtp_answer(s, r, 250, "2.0.0", "Ok");

  if (code >= 200 && code < 300)
    s->junk = 0; /* a client that sends mail is not idling */
  return code < 0 ? code : 0;
}

/* ---- DATA ---- */

int maild__smtp_cmd_data(maild_smtp_server *s, const char *arg, size_t len) {
  maild_reply r = {0, NULL, NULL};
  int rc;

  (void)arg;
  if (len != 0)
    return maild__smtp_error(s, 501, "5.5.4", "Syntax: DATA");
  if (s->tx == NULL)
    return maild__smtp_error(s, 503, "5.5.1", "Error: need MAIL command");
  if (s->tx->used_bdat)
    return maild__smtp_error(s, 503, "5.5.1", "Error: DATA after BDAT");
  /* RFC 2920 3.1: DATA after all RCPTs failed gets 554, not 354. */
  if (s->tx->rcpt_accepted == 0)
    return maild__smtp_error(s, 554, "5.5.1", "Error: no valid recipients");
  rc = s->cb.on_data_start ? s->cb.on_data_start(s, &r, s->user_data) : 0;
  return maild__smtp_decide(s, PEND_DATA_START, rc, &r);
}

maild_ssize maild__smtp_data_input(maild_smtp_server *s, const uint8_t *in,
                                   size_t len) {
  size_t take = len < sizeof(s->scratch) - MAILD_DOT_DECODE_SLACK
                    ? len
                    : sizeof(s->scratch) - MAILD_DOT_DECODE_SLACK;
  size_t out = 0, used;
  int done = 0, err;

  used = maild_dot_decode(&s->dot, in, take, s->scratch, &out, &done);
  err = body_bytes(s, s->scratch, out);
  if (err < 0)
    return err;
  if (done) {
    s->body_done = 1;
    if (s->pending == PEND_NONE && !s->closing)
      err = body_end(s);
  }
  return err < 0 ? err : (maild_ssize)used;
}

/* ---- BDAT ---- */

/* Parses "size [LAST]"; returns 0 or -1. */
static int parse_bdat(const char *arg, size_t len, uint64_t *size, int *last) {
  size_t i = 0;
  uint64_t v = 0;

  while (i < len && arg[i] >= '0' && arg[i] <= '9') {
    unsigned d = (unsigned)(arg[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
    i++;
  }
  if (i == 0)
    return -1;
  *size = v;
  *last = 0;
  if (i == len)
    return 0;
  if (arg[i] != ' ')
    return -1; /* "BDAT 100LAST" */
  while (i < len && arg[i] == ' ')
    i++;
  if (maild__ascii_caseeq(arg + i, len - i, "LAST")) {
    *last = 1;
    return 0;
  }
  return -1;
}

static int chunk_end(maild_smtp_server *s) {
  char text[64] = "Ok: ";
  uint64_t v;
  size_t n = 4, i;
  char digits[24];

  if (s->bdat_last)
    return body_end(s);
  s->input = IN_COMMAND;
  if (s->tx != NULL && s->tx->fault == BODY_TOO_BIG) {
    /* RFC 3030 2: a failed chunk fails the transaction. */
    maild__smtp_tx_end(s, MAILD_SMTP_ABORT_TOO_BIG);
    return maild__smtp_reply(s, 552, "5.3.4",
                             "Error: message size exceeds fixed limit");
  }
  v = s->tx != NULL ? s->tx->body_size : 0;
  i = sizeof(digits);
  do {
    digits[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  memcpy(text + n, digits + i, sizeof(digits) - i);
  n += sizeof(digits) - i;
  memcpy(text + n, " octets received", 17);
  return maild__smtp_reply(s, 250, "2.0.0", text);
}

static int skip_end(maild_smtp_server *s) {
  s->input = IN_COMMAND;
  if (s->bdat_reply_code == 0)
    return 0;
  return maild__smtp_error(s, s->bdat_reply_code, s->bdat_reply_enh,
                           s->bdat_reply_text);
}

/* Reads the chunk only to drop it, then sends the given reply. */
static int bdat_skip(maild_smtp_server *s, int code, const char *enh,
                     const char *text) {
  s->input = IN_BDAT_SKIP;
  s->bdat_reply_code = code;
  s->bdat_reply_enh = enh;
  s->bdat_reply_text = text;
  return s->bdat_left == 0 ? skip_end(s) : 0;
}

static int bdat_read(maild_smtp_server *s) {
  s->input = IN_BDAT;
  return s->bdat_left == 0 ? chunk_end(s) : 0;
}

int maild__smtp_cmd_bdat(maild_smtp_server *s, const char *arg, size_t len) {
  maild_reply r = {0, NULL, NULL};
  int rc;

  if (parse_bdat(arg, len, &s->bdat_left, &s->bdat_last) != 0)
    return maild__smtp_error(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
  if (!s->opt_chunking)
    return bdat_skip(s, 502, "5.5.1", "Error: command not implemented");
  if (s->tx == NULL)
    return bdat_skip(s, 503, "5.5.1", "Error: need MAIL command");
  if (s->tx->rcpt_accepted == 0)
    return bdat_skip(s, 554, "5.5.1", "Error: no valid recipients");
  if (s->tx->body_started)
    return bdat_read(s);
  s->tx->used_bdat = 1;
  rc = s->cb.on_data_start ? s->cb.on_data_start(s, &r, s->user_data) : 0;
  return maild__smtp_decide(s, PEND_BDAT_START, rc, &r);
}

maild_ssize maild__smtp_bdat_input(maild_smtp_server *s, const uint8_t *in,
                                   size_t len) {
  size_t n = len < s->bdat_left ? len : (size_t)s->bdat_left;
  int err = 0;

  if (s->input == IN_BDAT)
    err = body_bytes(s, in, n);
  if (err < 0)
    return err;
  s->bdat_left -= n;
  if (s->bdat_left == 0 && s->pending == PEND_NONE && !s->closing)
    err = s->input == IN_BDAT ? chunk_end(s) : skip_end(s);
  return err < 0 ? err : (maild_ssize)n;
}

int maild__smtp_data_start_done(maild_smtp_server *s, smtp_pending kind,
                                const maild_reply *r) {
  int code;

  if (kind == PEND_BDAT_START) {
    if (r == NULL || r->code == 0 || r->code / 100 <= 3) {
      if (s->tx != NULL)
        s->tx->body_started = 1;
      return bdat_read(s);
    }
    /* Refused: the answer goes out now; the chunk is read and dropped. */
    code = maild__smtp_answer(s, r, 554, "5.0.0", "Rejected");
    maild__smtp_tx_end(s, MAILD_SMTP_ABORT_REFUSED);
    return code < 0 ? code : bdat_skip(s, 0, NULL, NULL);
  }
  code = maild__smtp_answer(s, r, 354, NULL, "End data with <CR><LF>.<CR><LF>");
  if (code < 0)
    return code;
  if (code == 354 && s->tx != NULL && !s->closing) {
    s->tx->body_started = 1;
    maild_dot_decoder_init(&s->dot);
    s->input = IN_DATA;
  } else if (code >= 400) {
    maild__smtp_tx_end(s, MAILD_SMTP_ABORT_REFUSED);
  }
  return 0;
}

/* The embedder took the last chunk; go on where the body left off. */
int maild__smtp_chunk_done(maild_smtp_server *s) {
  if (s->body_done)
    return body_end(s);
  if (s->input == IN_BDAT && s->bdat_left == 0)
    return chunk_end(s);
  return 0;
}
