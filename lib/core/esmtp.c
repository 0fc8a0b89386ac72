/*
 * ESMTP parameters of MAIL and RCPT (see maild/esmtp.h), and the xtext
 * codec of RFC 3461 4.
 *
 * The parameters are a table, as in OpenSMTPD and Postfix: each keyword
 * names the verb(s) it belongs to, the extension(s) that must have been
 * offered in the EHLO reply, whether it takes a value, and the function
 * that checks and decodes that value into the caller's maild_esmtp_params.
 * Adding a parameter is one row and one small function.
 *
 * Every value is checked twice for control octets: raw, before anything
 * else looks at it, and after decoding (xtext "+0D", RFC 6533 "\x{0}"). A
 * CR, LF or NUL smuggled through a parameter would otherwise reach the
 * spool file or a log line (TESTPLAN S8). No allocation: values are decoded
 * into the fixed buffers of the result struct.
 */
#include "core/ascii.h"
#include "maild/esmtp.h"
#include "maild/error.h"

#include <string.h>

/* RFC 1870 4: size-value = 1*20DIGIT. */
#define SIZE_DIGITS_MAX 20

typedef int (*param_fn)(maild_esmtp_params *out, const char *v, size_t n,
                        unsigned exts);

typedef struct esmtp_keyword {
  const char *name;
  unsigned verbs; /* maild_esmtp_verb values, or-ed */
  unsigned exts;  /* offered if any of these extensions is */
  unsigned param; /* maild_esmtp_param bit */
  int has_value;  /* 1: "KEY=value" required; 0: bare "KEY" */
  param_fn parse;
} esmtp_keyword;

/* A word of an enumerated value (BODY=, RET=, NOTIFY=). */
typedef struct esmtp_word {
  const char *name;
  int value;
  unsigned exts; /* extension the word needs, 0 for none more */
} esmtp_word;

static int has_ctl(const char *s, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (maild__ascii_is_ctl((unsigned char)s[i]))
      return 1;
  return 0;
}

static int is_alnum(unsigned ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9');
}

static const esmtp_word *find_word(const esmtp_word *w, size_t count,
                                   const char *s, size_t n) {
  size_t i;

  for (i = 0; i < count; i++)
    if (maild__ascii_caseeq(s, n, w[i].name))
      return &w[i];
  return NULL;
}

/* ---- xtext (RFC 3461 4) ---- */

static int hex_upper(unsigned ch) {
  if (ch >= '0' && ch <= '9')
    return (int)(ch - '0');
  if (ch >= 'A' && ch <= 'F')
    return (int)(ch - 'A' + 10);
  return -1;
}

/* xchar = any ASCII from "!" to "~" except "+" and "=" (RFC 3461 4). */
static int is_xchar(unsigned ch) {
  return ch >= '!' && ch <= '~' && ch != '+' && ch != '=';
}

/* hexchar = "+" 2(%x30-39 / %x41-46), upper case only (RFC 3461 4). */
static int xtext_octet(const char *in, size_t len, size_t *i) {
  int hi, lo;
  unsigned ch = (unsigned char)in[*i];

  if (ch != '+') {
    (*i)++;
    return is_xchar(ch) ? (int)ch : MAILD_ERR_SYNTAX;
  }
  if (len - *i < 3)
    return MAILD_ERR_SYNTAX;
  hi = hex_upper((unsigned char)in[*i + 1]);
  lo = hex_upper((unsigned char)in[*i + 2]);
  if (hi < 0 || lo < 0)
    return MAILD_ERR_SYNTAX;
  *i += 3;
  return hi * 16 + lo;
}

maild_ssize maild_xtext_decode(const char *in, size_t len, char *out,
                               size_t cap) {
  size_t i = 0, n = 0;
  int ch;

  while (i < len) {
    ch = xtext_octet(in, len, &i);
    if (ch < 0)
      return ch;
    if (maild__ascii_is_ctl((unsigned)ch))
      return MAILD_ERR_BAD_CHAR;
    if (n + 1 >= cap)
      return MAILD_ERR_NOSPC;
    out[n++] = (char)ch;
  }
  if (cap == 0)
    return MAILD_ERR_NOSPC;
  out[n] = '\0';
  return (maild_ssize)n;
}

maild_ssize maild_xtext_encode(const char *in, size_t len, char *out,
                               size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i, n = 0;

  for (i = 0; i < len; i++) {
    unsigned ch = (unsigned char)in[i];
    size_t need = is_xchar(ch) ? 1 : 3;
    if (n + need >= cap)
      return MAILD_ERR_NOSPC;
    if (need == 1) {
      out[n++] = (char)ch;
      continue;
    }
    out[n++] = '+';
    out[n++] = hex[ch >> 4];
    out[n++] = hex[ch & 15];
  }
  if (cap == 0)
    return MAILD_ERR_NOSPC;
  out[n] = '\0';
  return (maild_ssize)n;
}

/* Decodes xtext into a result buffer; over its limit is TOO_LONG. */
static maild_ssize decode_value(const char *v, size_t n, char *out,
                                size_t cap) {
  maild_ssize rc = maild_xtext_decode(v, n, out, cap);
  return rc == MAILD_ERR_NOSPC ? MAILD_ERR_TOO_LONG : rc;
}

/* ---- RFC 6533 utf-8-addr-xtext / utf-8-addr-unitext (ORCPT utf-8) ---- */

/* HEXDIG, either case (RFC 5234 B.1). */
static int hex_any(unsigned ch) {
  if (ch >= 'a' && ch <= 'f')
    return (int)(ch - 'a' + 10);
  return hex_upper(ch);
}

/*
 * EmbeddedUnicodeChar = %x5C.78 "{" HEXPOINT "}" (RFC 6533 3): "\x{" one to
 * six hex digits "}". Sets *cp and returns the octets read. A code point
 * that is a control character is MAILD_ERR_BAD_CHAR, as is a surrogate or
 * one above U+10FFFF.
 */
static int embedded_char(const char *in, size_t len, unsigned long *cp) {
  size_t i = 3;
  int d;

  if (len < 5 || in[1] != 'x' || in[2] != '{')
    return MAILD_ERR_SYNTAX;
  *cp = 0;
  for (; i < len && i < 9 && in[i] != '}'; i++) {
    d = hex_any((unsigned char)in[i]);
    if (d < 0)
      return MAILD_ERR_SYNTAX;
    *cp = *cp * 16 + (unsigned long)d;
  }
  if (i == 3 || i >= len || in[i] != '}')
    return MAILD_ERR_SYNTAX;
  if (*cp < 0x20 || *cp == 0x7f || *cp > 0x10ffff ||
      (*cp >= 0xd800 && *cp <= 0xdfff))
    return MAILD_ERR_BAD_CHAR;
  return (int)i + 1;
}

/* Encodes a code point as UTF-8 (RFC 3629 3); returns the octets written. */
static size_t utf8_put(unsigned long cp, unsigned char *o) {
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xc0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xe0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (unsigned char)(0xf0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
  o[3] = (unsigned char)(0x80 | (cp & 0x3f));
  return 4;
}

/* Length of the raw UTF-8 character at in[0] if well-formed, else 0. */
static size_t utf8_char_len(const char *in, size_t len) {
  unsigned ch = (unsigned char)in[0];
  size_t n = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;

  if (ch < 0xc2 || n > len || maild_utf8_check(in, n) != 0)
    return 0;
  return n;
}

/*
 * One unit of utf-8-addr-xtext or utf-8-addr-unitext into o[]: QCHAR =
 * %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e, QUCHAR adds raw UTF-8, and
 * EmbeddedUnicodeChar (RFC 6533 3). Returns the octets written.
 */
static int utf8_addr_unit(const char *in, size_t len, size_t *i,
                          unsigned char *o) {
  unsigned ch = (unsigned char)in[*i];
  unsigned long cp;
  size_t n;
  int used;

  if (ch == '\\') {
    used = embedded_char(in + *i, len - *i, &cp);
    if (used < 0)
      return used;
    *i += (size_t)used;
    return (int)utf8_put(cp, o);
  }
  if (ch >= 0x80) {
    n = utf8_char_len(in + *i, len - *i);
    if (n == 0)
      return MAILD_ERR_BAD_CHAR;
    memcpy(o, in + *i, n);
    *i += n;
    return (int)n;
  }
  if (!is_xchar(ch))
    return MAILD_ERR_SYNTAX;
  o[0] = (unsigned char)ch;
  (*i)++;
  return 1;
}

static maild_ssize utf8_addr_decode(const char *in, size_t len, char *out,
                                    size_t cap) {
  unsigned char o[4];
  size_t i = 0, n = 0;
  int k;

  while (i < len) {
    k = utf8_addr_unit(in, len, &i, o);
    if (k < 0)
      return k;
    if (n + (size_t)k >= cap)
      return MAILD_ERR_TOO_LONG;
    memcpy(out + n, o, (size_t)k);
    n += (size_t)k;
  }
  out[n] = '\0';
  return (maild_ssize)n;
}

/* ---- Parameter values ---- */

/* SIZE=size-value, 1*20DIGIT (RFC 1870 4). */
static int param_size(maild_esmtp_params *out, const char *v, size_t n,
                      unsigned exts) {
  uint64_t size = 0;
  size_t i;
  unsigned d;

  (void)exts;
  for (i = 0; i < n; i++)
    if (v[i] < '0' || v[i] > '9')
      return MAILD_ERR_SYNTAX;
  if (n > SIZE_DIGITS_MAX)
    return MAILD_ERR_RANGE;
  for (i = 0; i < n; i++) {
    d = (unsigned)(v[i] - '0');
    if (size > (UINT64_MAX - d) / 10)
      return MAILD_ERR_RANGE;
    size = size * 10 + d;
  }
  out->size = size;
  return 0;
}

/* BODY=7BIT/8BITMIME (RFC 6152 2), BODY=BINARYMIME (RFC 3030 3). */
static int param_body(maild_esmtp_params *out, const char *v, size_t n,
                      unsigned exts) {
  static const esmtp_word words[] = {
      {"7BIT", MAILD_BODY_7BIT, MAILD_EXT_8BITMIME},
      {"8BITMIME", MAILD_BODY_8BITMIME, MAILD_EXT_8BITMIME},
      {"BINARYMIME", MAILD_BODY_BINARYMIME, MAILD_EXT_BINARYMIME},
  };
  const esmtp_word *w = find_word(words, 3, v, n);

  if (w == NULL)
    return MAILD_ERR_SYNTAX;
  if (!(w->exts & exts))
    return MAILD_ERR_UNSUPPORTED;
  out->body = w->value;
  return 0;
}

/* SMTPUTF8 takes no value (RFC 6531 3.4); the table enforces that. */
static int param_smtputf8(maild_esmtp_params *out, const char *v, size_t n,
                          unsigned exts) {
  (void)out;
  (void)v;
  (void)n;
  (void)exts;
  return 0;
}

/* RET=FULL / HDRS (RFC 3461 4.3). */
static int param_ret(maild_esmtp_params *out, const char *v, size_t n,
                     unsigned exts) {
  static const esmtp_word words[] = {
      {"FULL", MAILD_RET_FULL, 0},
      {"HDRS", MAILD_RET_HDRS, 0},
  };
  const esmtp_word *w = find_word(words, 2, v, n);

  (void)exts;
  if (w == NULL)
    return MAILD_ERR_SYNTAX;
  out->ret = w->value;
  return 0;
}

/*
 * ENVID=xtext, at most 100 octets once decoded, of printable US-ASCII
 * (RFC 3461 4.4).
 */
static int param_envid(maild_esmtp_params *out, const char *v, size_t n,
                       unsigned exts) {
  maild_ssize rc = decode_value(v, n, out->envid, sizeof(out->envid));
  size_t i;

  (void)exts;
  if (rc < 0)
    return (int)rc;
  for (i = 0; i < (size_t)rc; i++)
    if ((unsigned char)out->envid[i] > '~')
      return MAILD_ERR_SYNTAX;
  out->envid_len = (size_t)rc;
  return 0;
}

/* AUTH=xtext mailbox, or "<>" when the submitter is unknown (RFC 4954 5). */
static int param_auth(maild_esmtp_params *out, const char *v, size_t n,
                      unsigned exts) {
  maild_ssize rc = decode_value(v, n, out->auth, sizeof(out->auth));

  (void)exts;
  if (rc < 0)
    return (int)rc;
  if (maild_utf8_check(out->auth, (size_t)rc) != 0)
    return MAILD_ERR_BAD_CHAR;
  out->auth_len = (size_t)rc;
  return 0;
}

/*
 * NOTIFY="NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) (RFC 3461 4.1):
 * NEVER stands alone and each other word appears at most once.
 */
static int param_notify(maild_esmtp_params *out, const char *v, size_t n,
                        unsigned exts) {
  static const esmtp_word words[] = {
      {"NEVER", MAILD_NOTIFY_NEVER, 0},
      {"SUCCESS", MAILD_NOTIFY_SUCCESS, 0},
      {"FAILURE", MAILD_NOTIFY_FAILURE, 0},
      {"DELAY", MAILD_NOTIFY_DELAY, 0},
  };
  const esmtp_word *w;
  const char *end = v + n, *comma;
  unsigned bits = 0;

  (void)exts;
  for (;;) {
    comma = memchr(v, ',', (size_t)(end - v));
    w = find_word(words, 4, v, (size_t)((comma ? comma : end) - v));
    if (w == NULL || (bits & (unsigned)w->value))
      return MAILD_ERR_SYNTAX;
    bits |= (unsigned)w->value;
    if (comma == NULL)
      break;
    v = comma + 1;
  }
  if ((bits & MAILD_NOTIFY_NEVER) && bits != MAILD_NOTIFY_NEVER)
    return MAILD_ERR_SYNTAX;
  out->notify = bits;
  return 0;
}

/* atom (RFC 822 3.3, as RFC 3461 4.2 addr-type uses it). */
static int is_atom(const char *s, size_t n) {
  static const char specials[] = "()<>@,;:\\\".[]";
  size_t i;

  if (n == 0)
    return 0;
  for (i = 0; i < n; i++) {
    unsigned ch = (unsigned char)s[i];
    if (ch <= ' ' || ch > '~' || strchr(specials, (int)ch) != NULL)
      return 0;
  }
  return 1;
}

/* Stores the ORCPT addr-type, lower-cased. */
static int orcpt_type(maild_esmtp_params *out, const char *s, size_t n) {
  size_t i;

  if (!is_atom(s, n))
    return MAILD_ERR_SYNTAX;
  if (n > MAILD_ADDRTYPE_MAX)
    return MAILD_ERR_TOO_LONG;
  for (i = 0; i < n; i++)
    out->orcpt_type[i] = (char)maild__ascii_lower((unsigned char)s[i]);
  out->orcpt_type[n] = '\0';
  return 0;
}

/*
 * ORCPT=addr-type ";" xtext (RFC 3461 4.2); for addr-type "utf-8" the
 * address is utf-8-addr-xtext or utf-8-addr-unitext instead (RFC 6533 3).
 * At most 500 octets once decoded.
 */
static int param_orcpt(maild_esmtp_params *out, const char *v, size_t n,
                       unsigned exts) {
  const char *semi = memchr(v, ';', n);
  size_t tn, an;
  maild_ssize rc;

  (void)exts;
  if (semi == NULL)
    return MAILD_ERR_SYNTAX;
  tn = (size_t)(semi - v);
  an = n - tn - 1;
  rc = orcpt_type(out, v, tn);
  if (rc < 0)
    return (int)rc;
  if (an == 0)
    return MAILD_ERR_SYNTAX;
  if (strcmp(out->orcpt_type, "utf-8") == 0)
    rc = utf8_addr_decode(semi + 1, an, out->orcpt, sizeof(out->orcpt));
  else
    rc = decode_value(semi + 1, an, out->orcpt, sizeof(out->orcpt));
  if (rc < 0)
    return (int)rc;
  if (maild_utf8_check(out->orcpt, (size_t)rc) != 0)
    return MAILD_ERR_BAD_CHAR;
  out->orcpt_len = (size_t)rc;
  return 0;
}

/* ---- The keyword table and the list ---- */

#define VERB_MAIL ((unsigned)MAILD_ESMTP_MAIL)
#define VERB_RCPT ((unsigned)MAILD_ESMTP_RCPT)

static const esmtp_keyword keywords[] = {
    /* RFC 1870 */
    {"SIZE", VERB_MAIL, MAILD_EXT_SIZE, MAILD_PARAM_SIZE, 1, param_size},
    /* RFC 6152, RFC 3030 */
    {"BODY", VERB_MAIL, MAILD_EXT_8BITMIME | MAILD_EXT_BINARYMIME,
     MAILD_PARAM_BODY, 1, param_body},
    /* RFC 6531 3.4 */
    {"SMTPUTF8", VERB_MAIL, MAILD_EXT_SMTPUTF8, MAILD_PARAM_SMTPUTF8, 0,
     param_smtputf8},
    /* RFC 3461 4.3, 4.4 */
    {"RET", VERB_MAIL, MAILD_EXT_DSN, MAILD_PARAM_RET, 1, param_ret},
    {"ENVID", VERB_MAIL, MAILD_EXT_DSN, MAILD_PARAM_ENVID, 1, param_envid},
    /* RFC 4954 5 */
    {"AUTH", VERB_MAIL, MAILD_EXT_AUTH, MAILD_PARAM_AUTH, 1, param_auth},
    /* RFC 3461 4.1, 4.2 */
    {"NOTIFY", VERB_RCPT, MAILD_EXT_DSN, MAILD_PARAM_NOTIFY, 1, param_notify},
    {"ORCPT", VERB_RCPT, MAILD_EXT_DSN, MAILD_PARAM_ORCPT, 1, param_orcpt},
};

static const esmtp_keyword *find_keyword(const char *s, size_t n) {
  size_t i;

  for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
    if (maild__ascii_caseeq(s, n, keywords[i].name))
      return &keywords[i];
  return NULL;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") (RFC 5321 4.1.2). */
static int is_keyword(const char *s, size_t n) {
  size_t i;

  if (n == 0 || !is_alnum((unsigned char)s[0]))
    return 0;
  for (i = 1; i < n; i++)
    if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
      return 0;
  return 1;
}

/*
 * The value part of "keyword[=value]": esmtp-value = 1*(%d33-60 /
 * %d62-126), no "=" (RFC 5321 4.1.2), or UTF-8 (RFC 6531 3.3), which the
 * per-keyword checks judge. Presence must match the table.
 */
static int check_value(const esmtp_keyword *kw, const char *eq,
                       const char *end) {
  if (eq == NULL)
    return kw->has_value ? MAILD_ERR_SYNTAX : 0;
  if (!kw->has_value || eq + 1 == end)
    return MAILD_ERR_SYNTAX;
  if (memchr(eq + 1, '=', (size_t)(end - eq - 1)) != NULL)
    return MAILD_ERR_SYNTAX;
  return 0;
}

/* One "keyword[=value]" (RFC 5321 4.1.2 esmtp-param). */
static int parse_param(maild_esmtp_params *out, const char *tok, size_t n,
                       unsigned verb, unsigned exts) {
  const char *eq = memchr(tok, '=', n), *end = tok + n, *val;
  size_t klen = eq ? (size_t)(eq - tok) : n;
  const esmtp_keyword *kw;
  int rc;

  if (has_ctl(tok, n))
    return MAILD_ERR_BAD_CHAR;
  if (!is_keyword(tok, klen))
    return MAILD_ERR_SYNTAX;
  kw = find_keyword(tok, klen);
  if (kw == NULL || !(kw->verbs & verb) || !(kw->exts & exts))
    return MAILD_ERR_UNSUPPORTED;
  if (out->present & kw->param)
    return MAILD_ERR_DUPLICATE;
  rc = check_value(kw, eq, end);
  if (rc < 0)
    return rc;
  val = eq != NULL ? eq + 1 : end;
  rc = kw->parse(out, val, (size_t)(end - val), exts);
  if (rc == 0)
    out->present |= kw->param;
  return rc;
}

/* Mail-parameters = esmtp-param *(SP esmtp-param) (RFC 5321 4.1.2). */
int maild_esmtp_parse(maild_esmtp_params *out, const char *in, size_t len,
                      maild_esmtp_verb verb, unsigned exts, const char **bad) {
  const char *end = in + len, *sp;
  int rc;

  memset(out, 0, sizeof(*out));
  while (in < end) {
    if (*in == ' ') {
      in++;
      continue;
    }
    sp = memchr(in, ' ', (size_t)(end - in));
    if (sp == NULL)
      sp = end;
    rc = parse_param(out, in, (size_t)(sp - in), (unsigned)verb, exts);
    if (rc < 0) {
      if (bad != NULL)
        *bad = in;
      return rc;
    }
    in = sp;
  }
  return 0;
}
