/*
 * CRLF line reader for command protocols (SMTP, POP3, SMTP replies).
 *
 * Lines end at LF. A line that ends in a bare LF, or that holds a bare CR
 * (one not followed by LF) or a NUL byte, is still returned, with a flag
 * saying so: the protocol decides (SMTP refuses it, RFC 5321 2.3.8). Memory
 * is bounded: a line longer than the reader's maximum is not stored; its
 * first bytes are returned at its end with MAILD_LINE_TOO_LONG, whatever its
 * length, so 10 MiB of junk costs no more than one maximum line.
 */
#ifndef MAILD_LINE_H
#define MAILD_LINE_H

#include "maild/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum maild_line_flags {
  MAILD_LINE_BARE_LF = 1u << 0,  /* ended in LF without CR */
  MAILD_LINE_BARE_CR = 1u << 1,  /* a CR not followed by LF inside the line */
  MAILD_LINE_NUL = 1u << 2,      /* a NUL byte inside the line */
  MAILD_LINE_TOO_LONG = 1u << 3, /* longer than the maximum; data truncated */
};

typedef struct maild_line {
  /* The line without its CRLF or LF; NULL when no line is complete. Points
     into the caller's input or into the reader's buffer, valid until the
     next call on the reader. Not NUL-terminated. */
  const char *data;
  size_t len;
  unsigned flags; /* maild_line_flags */
} maild_line;

typedef struct maild_linereader maild_linereader;

/*
 * Creates a reader for lines of at most `max_line` octets counting the line
 * terminator (512 for SMTP commands). Memory grows on demand up to
 * `max_line` octets and no further. Returns 0, MAILD_ERR_INVAL (max_line
 * below 3) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_linereader_new(maild_linereader **out, size_t max_line,
                                      const maild_mem *mem);

/* Frees the reader; NULL is a no-op. */
MAILD_EXTERN void maild_linereader_del(maild_linereader *lr);

/*
 * Consumes input up to and including the end of the first complete line,
 * and returns the number of octets consumed (all of `len` when no line
 * ended in it: the unfinished tail is kept, bounded). When a line ended,
 * `*line` describes it; otherwise line->data is NULL. Returns
 * MAILD_ERR_NOMEM if the tail could not be stored (the reader is unchanged
 * and the same input may be fed again).
 */
MAILD_EXTERN maild_ssize maild_linereader_feed(maild_linereader *lr,
                                               const uint8_t *in, size_t len,
                                               maild_line *line);

/* Octets of an unfinished line held by the reader. */
MAILD_EXTERN size_t maild_linereader_pending(const maild_linereader *lr);

/* Forgets any unfinished line (used when STARTTLS discards plaintext). */
MAILD_EXTERN void maild_linereader_reset(maild_linereader *lr);

#ifdef __cplusplus
}
#endif
#endif
