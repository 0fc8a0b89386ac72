/*
 * CRLF line reader (see line.h). A peer controls both how long its lines
 * are and where its segments split, so the reader is shaped around two
 * guarantees: memory stays bounded by one maximum line whatever the peer
 * sends, and every split of the same octets gives the same lines and flags.
 * To get the second, everything known about the unfinished line (octets
 * seen, flags, whether the last octet was CR) is carried between calls, and
 * a CR is classified only once the octet after it is known. Most lines
 * arrive whole in one chunk; those are returned in place, without a copy.
 *
 * Line ends are only classified here (CRLF, bare LF, bare CR: RFC 5321
 * 2.3.8); refusing them is the protocol's decision. A line is too long when
 * its octets, terminator included, exceed max_line (RFC 5321 4.5.3.1.4 and
 * 4.5.3.1.5 count the CRLF); such a line keeps only its first max_line - 2
 * octets, the content a legal CRLF line could have held.
 */
#include "maild/line.h"
#include "maild/error.h"
#include "core/buf.h"
#include "core/mem.h"

#include <string.h>

struct maild_linereader {
  maild_mem mem;
  maild_buf buf;   /* first octets of the unfinished line, CRs included */
  size_t max_line; /* longest line, terminator included */
  size_t seen;     /* octets of the unfinished line so far (saturating) */
  unsigned flags;  /* flags of the unfinished line so far */
  int last_cr;     /* the last octet of the unfinished line is CR */
};

/* What a scan of a line's octets (before its LF) has learnt so far. */
typedef struct line_scan {
  unsigned flags;
  int last_cr;
} line_scan;

/* Scans octets that hold no LF: a CR followed by anything is bare. */
static void scan_octets(line_scan *s, const uint8_t *p, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    if (s->last_cr)
      s->flags |= MAILD_LINE_BARE_CR;
    if (p[i] == '\0')
      s->flags |= MAILD_LINE_NUL;
    s->last_cr = p[i] == '\r';
  }
}

static size_t add_saturating(size_t a, size_t b) {
  return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* Describes a line of `seen` octets before its LF, starting at `data`. */
static void finish_line(const maild_linereader *lr, const uint8_t *data,
                        size_t seen, const line_scan *s, maild_line *line) {
  line->data = (const char *)data;
  line->flags = s->flags;
  if (!s->last_cr)
    line->flags |= MAILD_LINE_BARE_LF;
  if (seen >= lr->max_line) { /* seen + LF > max_line */
    line->flags |= MAILD_LINE_TOO_LONG;
    line->len = lr->max_line - 2;
    return;
  }
  line->len = s->last_cr ? seen - 1 : seen;
}

/* Keeps what fits of `n` octets of the unfinished line; drops the rest. */
static int store_octets(maild_linereader *lr, const uint8_t *p, size_t n) {
  size_t room = lr->buf.max - maild__buf_used(&lr->buf);

  return maild__buf_append(&lr->buf, &lr->mem, p, n < room ? n : room);
}

static void forget_line(maild_linereader *lr) {
  maild__buf_clear(&lr->buf);
  lr->seen = 0;
  lr->flags = 0;
  lr->last_cr = 0;
}

int maild_linereader_new(maild_linereader **out, size_t max_line,
                         const maild_mem *mem) {
  maild_mem m;
  maild_linereader *lr;

  if (out == NULL || max_line < 3)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  lr = maild__malloc(&m, sizeof(*lr));
  if (lr == NULL)
    return MAILD_ERR_NOMEM;
  memset(lr, 0, sizeof(*lr));
  lr->mem = m;
  lr->max_line = max_line;
  /* Enough for a bare-LF line of max_line - 1 octets, or CRLF content. */
  maild__buf_init(&lr->buf, max_line - 1);
  *out = lr;
  return 0;
}

void maild_linereader_del(maild_linereader *lr) {
  if (lr == NULL)
    return;
  maild__buf_free(&lr->buf, &lr->mem);
  maild__free(&lr->mem, lr);
}

maild_ssize maild_linereader_feed(maild_linereader *lr, const uint8_t *in,
                                  size_t len, maild_line *line) {
  const uint8_t *lf = len > 0 ? memchr(in, '\n', len) : NULL;
  size_t seg = lf != NULL ? (size_t)(lf - in) : len;
  line_scan s = {lr->flags, lr->last_cr};
  int err;

  memset(line, 0, sizeof(*line));
  scan_octets(&s, in, seg);
  if (lf != NULL && lr->seen == 0) { /* whole line in the input: no copy */
    finish_line(lr, in, seg, &s, line);
    return (maild_ssize)seg + 1;
  }
  err = store_octets(lr, in, seg);
  if (err != 0)
    return err; /* nothing committed: the caller may feed the same again */
  lr->seen = add_saturating(lr->seen, seg);
  lr->flags = s.flags;
  lr->last_cr = s.last_cr;
  if (lf == NULL)
    return (maild_ssize)len;
  finish_line(lr, maild__buf_peek(&lr->buf), lr->seen, &s, line);
  forget_line(lr); /* the octets stay in place until the next call */
  return (maild_ssize)seg + 1;
}

size_t maild_linereader_pending(const maild_linereader *lr) {
  return maild__buf_used(&lr->buf);
}

void maild_linereader_reset(maild_linereader *lr) {
  forget_line(lr);
}
