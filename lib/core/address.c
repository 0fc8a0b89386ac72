/*
 * RFC 5321 path parser (see maild/address.h). It reads the reverse-path of
 * MAIL and the forward-path of RCPT exactly as RFC 5321 4.1.2 writes them,
 * with the RFC 6531 3.3 additions for SMTPUTF8, and nothing more: no
 * RFC 5322 comments, no folding, no leniency, because every leniency in an
 * address parser is a way to smuggle a second meaning past the policy layer.
 *
 * It is a recursive-descent scanner over a cursor, one function per ABNF
 * rule, writing into the caller's maild_path: no allocation. A source route
 * is read and dropped (4.1.1.3, appendix C), and the local-part is stored in
 * one canonical form so that "alice"@x and alice@x compare equal. Address
 * routing characters ("%", "!", a quoted "@") are kept as plain local-part
 * characters: deciding what they mean is the relay policy's job.
 */
#include "core/ascii.h"
#include "maild/address.h"
#include "maild/error.h"

#include <arpa/inet.h>
#include <string.h>

/* The longest label of a domain (RFC 1035 2.3.4, RFC 5321 4.5.3.1.2). */
#define LABEL_MAX 63

typedef struct path_cursor {
  const unsigned char *s;
  size_t len;
  size_t pos;
  unsigned allow; /* maild_path_allow */
  unsigned flags; /* maild_path_flags found so far */
} path_cursor;

static int is_alpha(unsigned ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int is_digit(unsigned ch) {
  return ch >= '0' && ch <= '9';
}

/* Let-dig = ALPHA / DIGIT (RFC 5321 4.1.2). */
static int is_let_dig(unsigned ch) {
  return is_alpha(ch) || is_digit(ch);
}

/* atext (RFC 5322 3.2.3, used by RFC 5321 4.1.2 Atom); ASCII only. */
static int is_atext(unsigned ch) {
  static const char specials[] = "!#$%&'*+-/=?^_`{|}~";
  return is_let_dig(ch) || (ch != 0 && strchr(specials, (int)ch) != NULL);
}

/*
 * Length of the well-formed UTF-8 sequence at s[0] (2 to 4), or 0. The
 * ranges are those of RFC 3629 4 (UTF8-2, UTF8-3, UTF8-4): no overlong
 * forms, no surrogates, nothing above U+10FFFF.
 */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned lo = 0x80, hi = 0xbf;
  size_t want, i;

  if (n == 0 || s[0] < 0xc2 || s[0] > 0xf4)
    return 0;
  want = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
  if (s[0] == 0xe0)
    lo = 0xa0;
  else if (s[0] == 0xed)
    hi = 0x9f;
  else if (s[0] == 0xf0)
    lo = 0x90;
  else if (s[0] == 0xf4)
    hi = 0x8f;
  if (n < want || s[1] < lo || s[1] > hi)
    return 0;
  for (i = 2; i < want; i++)
    if (s[i] < 0x80 || s[i] > 0xbf)
      return 0;
  return want;
}

int maild_utf8_check(const char *in, size_t len) {
  const unsigned char *s = (const unsigned char *)in;
  size_t i = 0, n;

  while (i < len) {
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    n = utf8_seq(s + i, len - i);
    if (n == 0)
      return MAILD_ERR_BAD_CHAR;
    i += n;
  }
  return 0;
}

/* Control octets never, non-ASCII only as RFC 6531 UTF-8. */
static int check_octets(const char *in, size_t len, unsigned allow) {
  size_t i;

  for (i = 0; i < len; i++) {
    unsigned ch = (unsigned char)in[i];
    if (maild__ascii_is_ctl(ch) ||
        (ch >= 0x80 && !(allow & MAILD_PATH_ALLOW_UTF8)))
      return MAILD_ERR_BAD_CHAR;
  }
  return maild_utf8_check(in, len);
}

static int has_non_ascii(const char *in, size_t len) {
  size_t i;

  for (i = 0; i < len; i++)
    if ((unsigned char)in[i] >= 0x80)
      return 1;
  return 0;
}

/* ---- Domains (RFC 5321 4.1.2 Domain, 4.1.3 address literals) ---- */

/*
 * sub-domain = Let-dig [Ldh-str] (RFC 5321 4.1.2), or a U-label
 * (RFC 6531 3.3), taken here as LDH plus UTF-8 with the same rule for the
 * ends. At most 63 octets (RFC 5321 4.5.3.1.2); for a U-label that is
 * stricter than the A-label limit, which errs on the safe side.
 */
static int check_label(const unsigned char *s, size_t n) {
  size_t i;

  if (n == 0)
    return MAILD_ERR_SYNTAX;
  if (n > LABEL_MAX)
    return MAILD_ERR_TOO_LONG;
  if (s[0] == '-' || s[n - 1] == '-')
    return MAILD_ERR_SYNTAX;
  for (i = 0; i < n; i++)
    if (!is_let_dig(s[i]) && s[i] != '-' && s[i] < 0x80)
      return MAILD_ERR_SYNTAX;
  return 0;
}

/* Domain = sub-domain *("." sub-domain) (RFC 5321 4.1.2). */
static int check_hostname(const char *in, size_t len) {
  const unsigned char *s = (const unsigned char *)in;
  size_t start = 0, i;
  int rc;

  for (i = 0; i <= len; i++) {
    if (i < len && s[i] != '.')
      continue;
    rc = check_label(s + start, i - start);
    if (rc < 0)
      return rc;
    start = i + 1;
  }
  return 0;
}

/* Copies a literal's content so inet_pton(3) can read it. */
static int pton(int af, const char *in, size_t len) {
  char tmp[64];
  unsigned char addr[16];

  if (len >= sizeof(tmp))
    return MAILD_ERR_SYNTAX;
  memcpy(tmp, in, len);
  tmp[len] = '\0';
  return inet_pton(af, tmp, addr) == 1 ? 0 : MAILD_ERR_SYNTAX;
}

/* Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig (RFC 5321 4.1.2). */
static int is_ldh_str(const char *s, size_t n) {
  size_t i;

  if (n == 0 || !is_let_dig((unsigned char)s[n - 1]))
    return 0;
  for (i = 0; i < n; i++)
    if (!is_let_dig((unsigned char)s[i]) && s[i] != '-')
      return 0;
  return 1;
}

/*
 * General-address-literal = Standardized-tag ":" 1*dcontent;
 * dcontent = %d33-90 / %d94-126 (RFC 5321 4.1.3).
 */
static int check_general_literal(const char *tag, size_t tag_len, const char *v,
                                 size_t n) {
  size_t i;

  if (!is_ldh_str(tag, tag_len) || n == 0)
    return MAILD_ERR_SYNTAX;
  for (i = 0; i < n; i++) {
    unsigned ch = (unsigned char)v[i];
    if (ch < 33 || ch > 126 || (ch >= 91 && ch <= 93))
      return MAILD_ERR_SYNTAX;
  }
  return 0;
}

/*
 * address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 * General-address-literal ) "]" (RFC 5321 4.1.3). IPv4 and IPv6 are checked
 * by inet_pton(3), which also refuses ambiguous leading zeros in IPv4.
 */
static int check_literal(const char *in, size_t len) {
  const char *v = in + 1, *colon;
  size_t n = len - 2;

  if (len < 3 || in[len - 1] != ']')
    return MAILD_ERR_SYNTAX;
  colon = memchr(v, ':', n);
  if (colon == NULL)
    return pton(AF_INET, v, n);
  if (maild__ascii_caseeq(v, (size_t)(colon - v), "IPv6"))
    return pton(AF_INET6, colon + 1, n - 5);
  return check_general_literal(v, (size_t)(colon - v), colon + 1,
                               n - (size_t)(colon - v) - 1);
}

int maild_domain_check(const char *in, size_t len, unsigned allow,
                       int literal_ok) {
  int rc;

  if (len > MAILD_DOMAIN_MAX)
    return MAILD_ERR_TOO_LONG;
  if (len == 0)
    return MAILD_ERR_SYNTAX;
  rc = check_octets(in, len, allow);
  if (rc < 0)
    return rc;
  if (in[0] == '[')
    return literal_ok ? check_literal(in, len) : MAILD_ERR_SYNTAX;
  return check_hostname(in, len);
}

/* ---- The cursor ---- */

static int peek(const path_cursor *c) {
  return c->pos < c->len ? c->s[c->pos] : -1;
}

/*
 * The error for an octet the grammar does not allow at the cursor: a control
 * octet or a non-ASCII octet that is not allowed UTF-8 is a bad character,
 * anything else (including the end of input) a syntax error.
 */
static int unexpected(const path_cursor *c) {
  unsigned ch;

  if (c->pos >= c->len)
    return MAILD_ERR_SYNTAX;
  ch = c->s[c->pos];
  if (maild__ascii_is_ctl(ch))
    return MAILD_ERR_BAD_CHAR;
  if (ch >= 0x80 && (!(c->allow & MAILD_PATH_ALLOW_UTF8) ||
                     utf8_seq(c->s + c->pos, c->len - c->pos) == 0))
    return MAILD_ERR_BAD_CHAR;
  return MAILD_ERR_SYNTAX;
}

/* UTF8-non-ascii in atext and qtextSMTP (RFC 6531 3.3). */
static int scan_utf8(path_cursor *c, size_t *n) {
  if (!(c->allow & MAILD_PATH_ALLOW_UTF8))
    return MAILD_ERR_BAD_CHAR;
  *n = utf8_seq(c->s + c->pos, c->len - c->pos);
  if (*n == 0)
    return MAILD_ERR_BAD_CHAR;
  c->flags |= MAILD_PATH_UTF8;
  return 0;
}

/*
 * A control octet anywhere before the first '>', which is always inside
 * the path, is reported as such even if a syntax error comes first; so is
 * non-ASCII without SMTPUTF8. Looks at no more than one path's worth.
 */
static int prescan(const char *in, size_t len, unsigned allow) {
  size_t i;

  if (len > MAILD_PATH_MAX)
    len = MAILD_PATH_MAX;
  for (i = 0; i < len && in[i] != '>'; i++) {
    unsigned ch = (unsigned char)in[i];
    if (maild__ascii_is_ctl(ch) ||
        (ch >= 0x80 && !(allow & MAILD_PATH_ALLOW_UTF8)))
      return MAILD_ERR_BAD_CHAR;
  }
  return 0;
}

/* ---- Local-part (RFC 5321 4.1.2) ---- */

/* A bounded scratch string for the decoded local-part. */
typedef struct local_buf {
  char s[MAILD_PATH_MAX];
  size_t n;
} local_buf;

static int local_put(local_buf *b, const unsigned char *s, size_t n) {
  if (n > sizeof(b->s) - b->n)
    return MAILD_ERR_TOO_LONG;
  memcpy(b->s + b->n, s, n);
  b->n += n;
  return 0;
}

/* Atom = 1*atext, atext =/ UTF8-non-ascii (RFC 5321 4.1.2, RFC 6531 3.3). */
static int scan_atom(path_cursor *c, local_buf *b) {
  size_t start = c->pos, n;
  int rc;

  while (c->pos < c->len) {
    n = 1;
    if (c->s[c->pos] >= 0x80) {
      rc = scan_utf8(c, &n);
      if (rc < 0)
        return rc;
    } else if (!is_atext(c->s[c->pos])) {
      break;
    }
    rc = local_put(b, c->s + c->pos, n);
    if (rc < 0)
      return rc;
    c->pos += n;
  }
  return c->pos > start ? 0 : unexpected(c);
}

/* Dot-string = Atom *("." Atom) (RFC 5321 4.1.2). */
static int scan_dot_string(path_cursor *c, local_buf *b) {
  int rc;

  for (;;) {
    rc = scan_atom(c, b);
    if (rc < 0 || peek(c) != '.')
      return rc;
    rc = local_put(b, c->s + c->pos, 1);
    if (rc < 0)
      return rc;
    c->pos++;
  }
}

/*
 * One QcontentSMTP: qtextSMTP = %d32-33 / %d35-91 / %d93-126,
 * quoted-pairSMTP = %d92 %d32-126 (RFC 5321 4.1.2), qtextSMTP =/
 * UTF8-non-ascii (RFC 6531 3.3). Appends the decoded octets.
 */
static int scan_qcontent(path_cursor *c, local_buf *b) {
  size_t n = 1;
  unsigned ch = c->s[c->pos];
  int rc;

  if (ch == '\\') {
    c->pos++;
    if (c->pos >= c->len || c->s[c->pos] < 32 || c->s[c->pos] > 126)
      return unexpected(c);
  } else if (ch >= 0x80) {
    rc = scan_utf8(c, &n);
    if (rc < 0)
      return rc;
  } else if (ch < 32 || ch > 126) {
    return unexpected(c);
  }
  rc = local_put(b, c->s + c->pos, n);
  c->pos += n;
  return rc;
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE (RFC 5321 4.1.2). */
static int scan_quoted_string(path_cursor *c, local_buf *b) {
  int rc;

  c->pos++;
  for (;;) {
    if (c->pos >= c->len)
      return MAILD_ERR_SYNTAX;
    if (c->s[c->pos] == '"') {
      c->pos++;
      return 0;
    }
    rc = scan_qcontent(c, b);
    if (rc < 0)
      return rc;
  }
}

/* Whether decoded content is a Dot-string (RFC 5321 4.1.2). */
static int is_dot_string(const char *s, size_t n) {
  size_t i;

  if (n == 0 || s[0] == '.' || s[n - 1] == '.')
    return 0;
  for (i = 0; i < n; i++) {
    unsigned ch = (unsigned char)s[i];
    if (ch == '.' ? s[i + 1] == '.' : !(ch >= 0x80 || is_atext(ch)))
      return 0;
  }
  return 1;
}

static size_t count_escapes(const local_buf *b) {
  size_t i, n = 0;

  for (i = 0; i < b->n; i++)
    if (b->s[i] == '"' || b->s[i] == '\\')
      n++;
  return n;
}

/* Writes the content as a Quoted-string escaping only DQUOTE and "\\". */
static void quote_local(maild_path *out, const local_buf *b) {
  size_t i, n = 0;

  out->local[n++] = '"';
  for (i = 0; i < b->n; i++) {
    if (b->s[i] == '"' || b->s[i] == '\\')
      out->local[n++] = '\\';
    out->local[n++] = b->s[i];
  }
  out->local[n++] = '"';
  out->local[n] = '\0';
  out->local_len = n;
}

/*
 * Stores the canonical local-part: the Dot-string when the content is one
 * (RFC 5321 4.1.2: a Quoted-string SHOULD NOT be used then), else a
 * Quoted-string with only the backslashes it needs. At most 64 octets
 * (RFC 5321 4.5.3.1.1), counted on the canonical form, which is never
 * longer than what was sent.
 */
static int store_local(path_cursor *c, maild_path *out, const local_buf *b) {
  if (is_dot_string(b->s, b->n)) {
    if (b->n > MAILD_LOCAL_MAX)
      return MAILD_ERR_TOO_LONG;
    memcpy(out->local, b->s, b->n);
    out->local[b->n] = '\0';
    out->local_len = b->n;
    return 0;
  }
  if (b->n + count_escapes(b) + 2 > MAILD_LOCAL_MAX)
    return MAILD_ERR_TOO_LONG;
  quote_local(out, b);
  c->flags |= MAILD_PATH_QUOTED;
  return 0;
}

/* Local-part = Dot-string / Quoted-string (RFC 5321 4.1.2). */
static int parse_local(path_cursor *c, maild_path *out) {
  local_buf b;
  int rc;

  b.n = 0;
  if (peek(c) == '"')
    rc = scan_quoted_string(c, &b);
  else
    rc = scan_dot_string(c, &b);
  return rc < 0 ? rc : store_local(c, out, &b);
}

/* ---- Domain part, source route, whole path ---- */

/* Consumes the octets a Domain may hold; maild_domain_check judges them. */
static void scan_hostname(path_cursor *c) {
  while (c->pos < c->len) {
    unsigned ch = c->s[c->pos];
    if (!is_let_dig(ch) && ch != '-' && ch != '.' && ch < 0x80)
      break;
    c->pos++;
  }
}

/* Consumes "[" *dcontent "]" (RFC 5321 4.1.3); the content is judged later. */
static int scan_literal(path_cursor *c) {
  c->pos++;
  while (c->pos < c->len && c->s[c->pos] > 32 && c->s[c->pos] < 127 &&
         c->s[c->pos] != ']')
    c->pos++;
  if (peek(c) != ']')
    return unexpected(c);
  c->pos++;
  return 0;
}

/* Scans and checks a Domain (or, if literal_ok, an address-literal). */
static int scan_domain(path_cursor *c, int literal_ok, size_t *start) {
  const char *s;
  size_t n;
  int rc;

  *start = c->pos;
  if (literal_ok && peek(c) == '[') {
    rc = scan_literal(c);
    if (rc < 0)
      return rc;
  } else {
    scan_hostname(c);
  }
  if (c->pos == *start)
    return unexpected(c);
  s = (const char *)c->s + *start;
  n = c->pos - *start;
  rc = maild_domain_check(s, n, c->allow, literal_ok);
  if (rc == 0 && has_non_ascii(s, n))
    c->flags |= MAILD_PATH_UTF8;
  return rc;
}

/*
 * A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain, followed by
 * ":" (RFC 5321 4.1.2). Servers accept and ignore a source route
 * (4.1.1.3, appendix C): it is checked, then dropped.
 */
static int skip_route(path_cursor *c) {
  size_t start;
  int rc;

  for (;;) {
    if (peek(c) != '@')
      return unexpected(c);
    c->pos++;
    rc = scan_domain(c, 0, &start);
    if (rc < 0)
      return rc;
    if (c->pos > MAILD_PATH_MAX)
      return MAILD_ERR_TOO_LONG;
    if (peek(c) == ':')
      break;
    if (peek(c) != ',')
      return unexpected(c);
    c->pos++;
  }
  c->pos++;
  c->flags |= MAILD_PATH_ROUTE;
  return 0;
}

/* "<Postmaster>" without a domain, RCPT only (RFC 5321 4.1.1.3, 4.5.1). */
static int accept_postmaster(path_cursor *c, const maild_path *out) {
  if (!(c->allow & MAILD_PATH_ALLOW_POSTMASTER) ||
      (c->flags & (MAILD_PATH_ROUTE | MAILD_PATH_QUOTED)) ||
      !maild__ascii_caseeq(out->local, out->local_len, "postmaster"))
    return MAILD_ERR_SYNTAX;
  c->flags |= MAILD_PATH_POSTMASTER;
  return 0;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ) (RFC 5321 4.1.2). */
static int parse_mailbox(path_cursor *c, maild_path *out) {
  size_t start;
  int rc;

  rc = parse_local(c, out);
  if (rc < 0)
    return rc;
  if (peek(c) == '>')
    return accept_postmaster(c, out);
  if (peek(c) != '@')
    return unexpected(c);
  c->pos++;
  rc = scan_domain(c, 1, &start);
  if (rc < 0)
    return rc;
  if (c->s[start] == '[')
    c->flags |= MAILD_PATH_LITERAL;
  out->domain_len = c->pos - start;
  memcpy(out->domain, c->s + start, out->domain_len);
  out->domain[out->domain_len] = '\0';
  return 0;
}

/* Reverse-path = Path / "<>" (RFC 5321 4.1.2). */
static maild_ssize accept_null(path_cursor *c) {
  if (!(c->allow & MAILD_PATH_ALLOW_NULL))
    return MAILD_ERR_SYNTAX;
  c->flags |= MAILD_PATH_NULL;
  return 2;
}

/* Path = "<" [ A-d-l ":" ] Mailbox ">" (RFC 5321 4.1.2). */
static maild_ssize parse_path(path_cursor *c, maild_path *out) {
  int rc;

  if (peek(c) != '<')
    return unexpected(c);
  c->pos++;
  if (peek(c) == '>')
    return accept_null(c);
  if (peek(c) == '@') {
    rc = skip_route(c);
    if (rc < 0)
      return rc;
  }
  rc = parse_mailbox(c, out);
  if (rc < 0)
    return rc;
  if (peek(c) != '>')
    return unexpected(c);
  c->pos++;
  /* 256 octets including the brackets (RFC 5321 4.5.3.1.3). */
  if (c->pos > MAILD_PATH_MAX)
    return MAILD_ERR_TOO_LONG;
  return (maild_ssize)c->pos;
}

maild_ssize maild_path_parse(maild_path *out, const char *in, size_t len,
                             unsigned allow) {
  path_cursor c;
  maild_ssize rc;

  memset(out, 0, sizeof(*out));
  rc = prescan(in, len, allow);
  if (rc < 0)
    return rc;
  c.s = (const unsigned char *)in;
  c.len = len;
  c.pos = 0;
  c.allow = allow;
  c.flags = 0;
  rc = parse_path(&c, out);
  out->flags = c.flags;
  return rc;
}

maild_ssize maild_path_format(const maild_path *p, char *buf, size_t size) {
  const char *local = p->local;
  size_t local_len = p->local_len, domain_len = p->domain_len, n;

  if (p->flags & MAILD_PATH_NULL) {
    local_len = domain_len = 0;
  } else if (p->flags & MAILD_PATH_POSTMASTER) {
    local = "postmaster";
    local_len = strlen(local);
    domain_len = 0;
  }
  n = local_len + (domain_len > 0 ? 1 + domain_len : 0);
  if (size == 0 || n > size - 1)
    return MAILD_ERR_NOSPC;
  memcpy(buf, local, local_len);
  if (domain_len > 0) {
    buf[local_len] = '@';
    memcpy(buf + local_len + 1, p->domain, domain_len);
  }
  buf[n] = '\0';
  return (maild_ssize)n;
}
