/*
 * SMTP replies (RFC 5321 4.2) with enhanced status codes (RFC 3463,
 * RFC 2034). Servers build replies with a formatter that works like
 * snprintf, so an engine can size its output buffer with one call and
 * never holds a half-written reply; the text is sanitised on the way out
 * because it often carries embedder or peer strings. Clients parse replies
 * with a streaming parser layered on the line reader, so it inherits its
 * bounded memory and its indifference to where segments split.
 *
 * Format decisions: every line carries the code and, when given, the
 * enhanced code (RFC 2034 3); an empty text gives "250" or "250 2.0.0"
 * with no trailing space, since RFC 5321 4.2's textstring is never empty.
 * The parser is lenient where a client can afford it (bare LF line ends,
 * "DDD-" and "DDD " without text) and strict where a server's answer could
 * be misread (codes, continuation codes, NUL, limits).
 */
#include "maild/reply.h"
#include "maild/error.h"
#include "maild/line.h"
#include "core/buf.h"
#include "core/mem.h"

#include <string.h>

/* Length of a 1-3 digit number without leading zero at `p`, or 0. */
static size_t number_len(const char *p, size_t len) {
  size_t n = 0;

  while (n < len && n < 4 && p[n] >= '0' && p[n] <= '9')
    n++;
  if (n == 0 || n > 3 || (n > 1 && p[0] == '0'))
    return 0;
  return n;
}

/* Length of the "class.subject.detail" code opening `p` (RFC 3463 2). */
static size_t enhanced_len(const char *p, size_t len) {
  size_t i = 2, n;

  if (len < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
    return 0;
  n = number_len(p + i, len - i);
  if (n == 0 || i + n >= len || p[i + n] != '.')
    return 0;
  i += n + 1;
  n = number_len(p + i, len - i);
  return n == 0 ? 0 : i + n;
}

int maild_enhanced_check(const char *enh) {
  size_t len;

  if (enh == NULL)
    return MAILD_ERR_SYNTAX;
  len = strlen(enh);
  return len > 0 && enhanced_len(enh, len) == len ? 0 : MAILD_ERR_SYNTAX;
}

/* ---- Formatter ---- */

/* Output that counts everything and stores what fits, like snprintf. */
typedef struct reply_out {
  char *out;
  size_t cap;
  size_t n;
} reply_out;

static void put(reply_out *w, const char *p, size_t len) {
  if (w->n < w->cap) {
    size_t room = w->cap - w->n;
    memcpy(w->out + w->n, p, len < room ? len : room);
  }
  w->n += len;
}

/* Text octets; controls become '?' so they cannot end or forge a line. */
static void put_text(reply_out *w, const char *p, size_t len) {
  size_t i;

  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    char safe = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : p[i];
    put(w, &safe, 1); /* RFC 5321 4.2: textstring is HT and SP..~ */
  }
}

/* One line: "CODE-ENH text" before the last, "CODE ENH text" last. */
static void put_line(reply_out *w, const char code[3], const char *enh,
                     const char *text, size_t len, int last) {
  put(w, code, 3);
  if (!last || enh != NULL || len > 0)
    put(w, last ? " " : "-", 1);
  if (enh != NULL)
    put(w, enh, strlen(enh));
  if (enh != NULL && len > 0)
    put(w, " ", 1);
  put_text(w, text, len);
  put(w, "\r\n", 2);
}

/* NULL or "" means none; otherwise well formed and of the code's class. */
static int enhanced_fits(const char *enh, int code) {
  if (enh == NULL || enh[0] == '\0')
    return 1;
  return maild_enhanced_check(enh) == 0 && enh[0] - '0' == code / 100;
}

maild_ssize maild_reply_format(char *out, size_t cap, int code,
                               const char *enhanced, const char *text) {
  reply_out w = {out, cap, 0};
  char digits[3];
  const char *nl;

  if (code < 200 || code > 599 || !enhanced_fits(enhanced, code) ||
      (out == NULL && cap > 0))
    return MAILD_ERR_INVAL;
  if (enhanced != NULL && enhanced[0] == '\0')
    enhanced = NULL;
  if (text == NULL)
    text = "";
  digits[0] = (char)('0' + code / 100);
  digits[1] = (char)('0' + code / 10 % 10);
  digits[2] = (char)('0' + code % 10);
  while ((nl = strchr(text, '\n')) != NULL) {
    put_line(&w, digits, enhanced, text, (size_t)(nl - text), 0);
    text = nl + 1;
  }
  put_line(&w, digits, enhanced, text, strlen(text), 1);
  return (maild_ssize)w.n;
}

/* ---- Parser ---- */

struct maild_reply_parser {
  maild_mem mem;
  maild_linereader *lr;
  maild_buf text; /* text of the lines so far, joined with '\n' */
  size_t max_lines;
  size_t lines; /* lines of the reply so far */
  int code;     /* code of its first line */
  int complete; /* the last feed ended a reply: the next starts afresh */
  int err;      /* sticky error until reset */
  char enhanced[MAILD_ENHANCED_MAX + 1];
};

/* One reply line split into its parts. */
typedef struct reply_line {
  int code;
  int last;
  const char *text;
  size_t len;
} reply_line;

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* Parses "DDD", "DDD text" or "DDD-text" with DDD 200-599 (RFC 5321 4.2). */
static int parse_line(const char *p, size_t len, reply_line *rl) {
  if (len < 3 || p[0] < '2' || p[0] > '5' || !is_digit(p[1]) || !is_digit(p[2]))
    return MAILD_ERR_SYNTAX;
  if (len > 3 && p[3] != ' ' && p[3] != '-')
    return MAILD_ERR_SYNTAX;
  rl->code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
  rl->last = len == 3 || p[3] == ' ';
  rl->text = len > 3 ? p + 4 : p + 3;
  rl->len = len > 3 ? len - 4 : 0;
  return 0;
}

/* Keeps the first line's enhanced code when its text opens with one. */
static void take_enhanced(maild_reply_parser *p, const reply_line *rl) {
  size_t n = enhanced_len(rl->text, rl->len);

  if (n == 0 || n > MAILD_ENHANCED_MAX || (n < rl->len && rl->text[n] != ' '))
    return;
  if (rl->text[0] - '0' != rl->code / 100)
    return; /* RFC 3463 3.1: the class repeats the code's first digit */
  memcpy(p->enhanced, rl->text, n);
  p->enhanced[n] = '\0';
}

static int take_text(maild_reply_parser *p, const reply_line *rl) {
  int err = 0;

  if (p->lines > 0)
    err = maild__buf_append(&p->text, &p->mem, "\n", 1);
  if (err == 0)
    err = maild__buf_append(&p->text, &p->mem, rl->text, rl->len);
  return err == MAILD_ERR_LIMIT ? MAILD_ERR_TOO_LONG : err;
}

/* Adds one line to the reply; sets *last when it ends the reply. */
static int take_line(maild_reply_parser *p, const maild_line *l, int *last) {
  reply_line rl;
  int err;

  if (l->flags & MAILD_LINE_TOO_LONG)
    return MAILD_ERR_TOO_LONG; /* RFC 5321 4.5.3.1.5 */
  if (l->flags & MAILD_LINE_NUL)
    return MAILD_ERR_BAD_CHAR;
  err = parse_line(l->data, l->len, &rl);
  if (err != 0)
    return err;
  if (p->lines == p->max_lines)
    return MAILD_ERR_TOO_LONG;
  if (p->lines > 0 && rl.code != p->code)
    return MAILD_ERR_SYNTAX; /* RFC 5321 4.2.1: one code per reply */
  if (p->lines == 0) {
    p->code = rl.code;
    take_enhanced(p, &rl);
  }
  err = take_text(p, &rl);
  if (err != 0)
    return err;
  p->lines++;
  *last = rl.last;
  return 0;
}

static void start_reply(maild_reply_parser *p) {
  maild__buf_clear(&p->text);
  p->lines = 0;
  p->code = 0;
  p->complete = 0;
  p->enhanced[0] = '\0';
}

static void finish_reply(maild_reply_parser *p, maild_parsed_reply *r) {
  r->code = p->code;
  memcpy(r->enhanced, p->enhanced, sizeof(r->enhanced));
  r->text_len = maild__buf_used(&p->text);
  r->text = r->text_len > 0 ? (const char *)maild__buf_peek(&p->text) : "";
  r->lines = p->lines;
  p->complete = 1;
}

static maild_ssize fail(maild_reply_parser *p, int err) {
  p->err = err;
  return err;
}

int maild_reply_parser_new(maild_reply_parser **out, size_t max_line,
                           size_t max_lines, const maild_mem *mem) {
  maild_mem m;
  maild_reply_parser *p;
  int err;

  if (out == NULL || max_line < 5 || max_lines == 0 ||
      max_line > SIZE_MAX / max_lines)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  p = maild__malloc(&m, sizeof(*p));
  if (p == NULL)
    return MAILD_ERR_NOMEM;
  memset(p, 0, sizeof(*p));
  p->mem = m;
  p->max_lines = max_lines;
  maild__buf_init(&p->text, max_line * max_lines);
  err = maild_linereader_new(&p->lr, max_line, &p->mem);
  if (err != 0) {
    maild__free(&m, p);
    return err;
  }
  *out = p;
  return 0;
}

void maild_reply_parser_del(maild_reply_parser *p) {
  if (p == NULL)
    return;
  maild_linereader_del(p->lr);
  maild__buf_free(&p->text, &p->mem);
  maild__free(&p->mem, p);
}

maild_ssize maild_reply_parser_feed(maild_reply_parser *p, const uint8_t *in,
                                    size_t len, maild_parsed_reply *r) {
  size_t off = 0;
  int last = 0;

  memset(r, 0, sizeof(*r));
  if (p->err != 0)
    return p->err;
  if (p->complete)
    start_reply(p);
  while (off < len && !last) {
    maild_line l;
    maild_ssize n = maild_linereader_feed(p->lr, in + off, len - off, &l);
    int err = n < 0 ? (int)n : 0;

    if (err == 0 && l.data != NULL)
      err = take_line(p, &l, &last);
    if (err != 0)
      return fail(p, err);
    off += (size_t)n;
  }
  if (last)
    finish_reply(p, r);
  return (maild_ssize)off;
}

void maild_reply_parser_reset(maild_reply_parser *p) {
  maild_linereader_reset(p->lr);
  start_reply(p);
  p->err = 0;
}
