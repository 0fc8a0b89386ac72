/*
 * SMTP replies (RFC 5321 4.2) with enhanced status codes (RFC 3463,
 * RFC 2034): a builder for servers and a streaming parser for clients.
 */
#ifndef MAILD_REPLY_H
#define MAILD_REPLY_H

#include "maild/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MAILD_ENHANCED_MAX 15 /* "5.123.456" fits with room */

/*
 * Checks an enhanced status code "class.subject.detail": class 2, 4 or 5,
 * subject and detail 0-999 without leading zeros. Returns 0 or
 * MAILD_ERR_SYNTAX.
 */
MAILD_EXTERN int maild_enhanced_check(const char *enh);

/*
 * Formats a reply like snprintf: writes at most `cap` octets to `out` and
 * returns the full length the reply needs (so a return value above `cap`
 * means nothing usable was written; `out` may be NULL when `cap` is 0).
 * `text` holds one line per '\n' (NULL or "" is one empty line); each line
 * becomes "CODE-ENH text\r\n", the last "CODE ENH text\r\n". `enhanced` may
 * be NULL. Control octets in `text` become '?'. Returns
 * MAILD_ERR_INVAL if `code` is not 200..599, or `enhanced` is malformed or
 * its class differs from the first digit of `code`.
 */
MAILD_EXTERN maild_ssize maild_reply_format(char *out, size_t cap, int code,
                                            const char *enhanced,
                                            const char *text);

/* A parsed reply (client side). */
typedef struct maild_parsed_reply {
  int code; /* 0 until a reply is complete */
  /* Enhanced code of the first line, or "" when absent/malformed. */
  char enhanced[MAILD_ENHANCED_MAX + 1];
  /* The text of every line, without code and separator, joined with '\n'
     (the enhanced code is kept in the text). Valid until the next call on
     the parser; not NUL-terminated. */
  const char *text;
  size_t text_len;
  size_t lines;
} maild_parsed_reply;

typedef struct maild_reply_parser maild_reply_parser;

/*
 * Creates a parser that accepts lines up to `max_line` octets (RFC 5321
 * 4.5.3.1.5: 512) and replies of up to `max_lines` lines. Returns 0,
 * MAILD_ERR_INVAL or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_reply_parser_new(maild_reply_parser **out,
                                        size_t max_line, size_t max_lines,
                                        const maild_mem *mem);

/* Frees the parser; NULL is a no-op. */
MAILD_EXTERN void maild_reply_parser_del(maild_reply_parser *p);

/*
 * Consumes input up to the end of the first complete reply and returns the
 * octets consumed; `r->code` is nonzero when a reply completed. Returns:
 *  MAILD_ERR_SYNTAX  a line that is not "DDD", "DDD text" or "DDD-text"
 *                    with a code of 2xx-5xx, or a continuation line whose
 *                    code differs from the first,
 *  MAILD_ERR_TOO_LONG a line over max_line, or more than max_lines lines,
 *  MAILD_ERR_BAD_CHAR a NUL octet,
 *  MAILD_ERR_NOMEM.
 * After an error the parser must be reset before further use.
 */
MAILD_EXTERN maild_ssize maild_reply_parser_feed(maild_reply_parser *p,
                                                 const uint8_t *in, size_t len,
                                                 maild_parsed_reply *r);

/* Forgets any partial reply. */
MAILD_EXTERN void maild_reply_parser_reset(maild_reply_parser *p);

#ifdef __cplusplus
}
#endif
#endif
