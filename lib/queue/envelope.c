/*
 * The envelope record codec: how a message's envelope is laid out in
 * queue/<id>.env (format in spool.h). The file is read back after crashes,
 * so it is self-validating in Postfix's record style: type-length-value
 * records, a magic first record, and a last END record with the CRC-32 of
 * everything before it. A torn write (no END, or a short record), a flipped
 * bit (bad CRC) or anything unexpected makes the whole file invalid; half an
 * envelope is never believed.
 *
 * Records come in one fixed order and all are always present, so each
 * envelope has exactly one encoding. That keeps the decoder a straight
 * sequence of "expect this record" steps and lets the fuzzer check that
 * whatever decodes encodes back to the same octets. The decoder walks the
 * records twice, once to validate and measure and once to copy, so a
 * decoded envelope is a single allocation.
 */
#include "queue/spool.h"

#include <string.h>

#include "core/buf.h"
#include "core/crc32.h"
#include "core/mem.h"
#include "maild/error.h"
#include "maild/esmtp.h"

#define REC_HDR   5 /* type octet + 4-octet length */
#define MAGIC     "MAILDENV"
#define MAGIC_LEN 8

enum {
  REC_MAGIC = 'M',
  REC_ID = 'I',
  REC_TIME = 'T',
  REC_BODYINFO = 'B',
  REC_FLAGS = 'F',
  REC_SENDER = 'S',
  REC_ENVID = 'N',
  REC_CLIENT = 'C',
  REC_HELO = 'H',
  REC_AUTH = 'A',
  REC_RCPT = 'R',
  REC_END = 'E'
};

#define BODYINFO_LEN 16
#define FLAGS_LEN    3
#define RCPT_FIXED   7 /* state, notify, 2 + 1 + 2 length octets */
#define NOTIFY_BITS                                       \
  ((unsigned)(MAILD_NOTIFY_NEVER | MAILD_NOTIFY_SUCCESS | \
              MAILD_NOTIFY_FAILURE | MAILD_NOTIFY_DELAY))

int maild__spool_id_valid(const char *id) {
  size_t i;

  if (id == NULL)
    return 0;
  for (i = 0; i < MAILD_SPOOL_ID_LEN; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return 0;
  return id[i] == '\0';
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)(v >> 32));
  put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

static uint64_t get64(const uint8_t *p) {
  return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* ---- Encoding ------------------------------------------------------------ */

static const char *str_or_empty(const char *s) {
  return s != NULL ? s : "";
}

/* Adds the record size of a string field to *total, or fails. */
static int measure_str(const char *s, size_t max, size_t *total) {
  size_t n = strlen(str_or_empty(s));
  if (n > max)
    return MAILD_ERR_TOO_LONG;
  *total += REC_HDR + n;
  return 0;
}

static int measure_rcpt(const maild_envelope_rcpt *r, size_t *total) {
  size_t a = strlen(str_or_empty(r->addr));
  size_t t = strlen(str_or_empty(r->orcpt_type));
  size_t o = strlen(str_or_empty(r->orcpt));

  if (a == 0 || r->state > MAILD_RCPT_FAILED || (r->notify & ~NOTIFY_BITS))
    return MAILD_ERR_INVAL;
  if (a > MAILD_ENV_ADDR_MAX || t > MAILD_ENV_TYPE_MAX ||
      o > MAILD_ENV_ADDR_MAX)
    return MAILD_ERR_TOO_LONG;
  *total += REC_HDR + RCPT_FIXED + a + t + o;
  return 0;
}

static int check_fixed_fields(const maild_envelope *env) {
  if (!maild__spool_id_valid(env->id) || env->arrival_usec < 0)
    return MAILD_ERR_INVAL;
  if (env->ret < MAILD_RET_UNSPEC || env->ret > MAILD_RET_HDRS ||
      env->body < MAILD_BODY_UNSPEC || env->body > MAILD_BODY_BINARYMIME ||
      (env->smtputf8 != 0 && env->smtputf8 != 1) ||
      (env->delay_warned != 0 && env->delay_warned != 1))
    return MAILD_ERR_INVAL;
  if (env->return_path_len > env->msg_size)
    return MAILD_ERR_INVAL;
  if (env->nrcpt == 0 || env->rcpt == NULL)
    return MAILD_ERR_INVAL;
  if (env->nrcpt > MAILD_ENV_RCPT_MAX)
    return MAILD_ERR_TOO_LONG;
  return 0;
}

/* Validates `env` and sets *total to its encoded size. */
static int measure(const maild_envelope *env, size_t *total) {
  size_t i;
  int rc;

  rc = check_fixed_fields(env);
  if (rc != 0)
    return rc;
  *total = REC_HDR + MAGIC_LEN + 1 + REC_HDR + MAILD_SPOOL_ID_LEN + REC_HDR +
           8 + REC_HDR + BODYINFO_LEN + REC_HDR + FLAGS_LEN + REC_HDR + 4;
  if ((rc = measure_str(env->sender, MAILD_ENV_ADDR_MAX, total)) != 0 ||
      (rc = measure_str(env->envid, MAILD_ENV_TEXT_MAX, total)) != 0 ||
      (rc = measure_str(env->client_addr, MAILD_ENV_TEXT_MAX, total)) != 0 ||
      (rc = measure_str(env->client_helo, MAILD_ENV_TEXT_MAX, total)) != 0 ||
      (rc = measure_str(env->auth_id, MAILD_ENV_TEXT_MAX, total)) != 0)
    return rc;
  for (i = 0; i < env->nrcpt; i++) {
    rc = measure_rcpt(&env->rcpt[i], total);
    if (rc != 0)
      return rc;
    if (*total > MAILD_ENV_FILE_MAX)
      return MAILD_ERR_TOO_LONG;
  }
  return 0;
}

/* Writes a record header at `p`; returns the payload position. */
static uint8_t *put_hdr(uint8_t *p, int type, size_t len) {
  p[0] = (uint8_t)type;
  put32(p + 1, (uint32_t)len);
  return p + REC_HDR;
}

static uint8_t *put_bytes(uint8_t *p, const void *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

static uint8_t *put_str(uint8_t *p, int type, const char *s) {
  size_t n = strlen(str_or_empty(s));
  p = put_hdr(p, type, n);
  return put_bytes(p, str_or_empty(s), n);
}

static uint8_t *put_rcpt(uint8_t *p, const maild_envelope_rcpt *r) {
  const char *a = str_or_empty(r->addr);
  const char *t = str_or_empty(r->orcpt_type);
  const char *o = str_or_empty(r->orcpt);
  size_t an = strlen(a), tn = strlen(t), on = strlen(o);

  p = put_hdr(p, REC_RCPT, RCPT_FIXED + an + tn + on);
  *p++ = r->state;
  *p++ = (uint8_t)r->notify;
  *p++ = (uint8_t)(an >> 8);
  *p++ = (uint8_t)an;
  p = put_bytes(p, a, an);
  *p++ = (uint8_t)tn;
  p = put_bytes(p, t, tn);
  *p++ = (uint8_t)(on >> 8);
  *p++ = (uint8_t)on;
  return put_bytes(p, o, on);
}

/* Writes everything before the END record's CRC; returns the CRC's place. */
static uint8_t *put_records(uint8_t *p, const maild_envelope *env) {
  size_t i;

  p = put_hdr(p, REC_MAGIC, MAGIC_LEN + 1);
  p = put_bytes(p, MAGIC, MAGIC_LEN);
  *p++ = MAILD_ENV_VERSION;
  p = put_hdr(p, REC_ID, MAILD_SPOOL_ID_LEN);
  p = put_bytes(p, env->id, MAILD_SPOOL_ID_LEN);
  p = put_hdr(p, REC_TIME, 8);
  put64(p, (uint64_t)env->arrival_usec);
  p = put_hdr(p + 8, REC_BODYINFO, BODYINFO_LEN);
  put64(p, env->msg_size);
  put32(p + 8, env->msg_crc32);
  put32(p + 12, env->return_path_len);
  p = put_hdr(p + BODYINFO_LEN, REC_FLAGS, FLAGS_LEN);
  *p++ = (uint8_t)env->ret;
  *p++ = (uint8_t)env->body;
  *p++ = (uint8_t)(env->smtputf8 | env->delay_warned << 1);
  p = put_str(p, REC_SENDER, env->sender);
  p = put_str(p, REC_ENVID, env->envid);
  p = put_str(p, REC_CLIENT, env->client_addr);
  p = put_str(p, REC_HELO, env->client_helo);
  p = put_str(p, REC_AUTH, env->auth_id);
  for (i = 0; i < env->nrcpt; i++)
    p = put_rcpt(p, &env->rcpt[i]);
  return put_hdr(p, REC_END, 4);
}

int maild__envelope_encode(const maild_envelope *env, maild_buf *out,
                           const maild_mem *mem) {
  uint8_t *start, *crc_at;
  size_t total;
  int rc;

  if (env == NULL || out == NULL || mem == NULL)
    return MAILD_ERR_INVAL;
  rc = measure(env, &total);
  if (rc != 0)
    return rc;
  start = maild__buf_reserve(out, mem, total, &rc);
  if (start == NULL)
    return rc;
  crc_at = put_records(start, env);
  put32(crc_at, maild__crc32(0, start, (size_t)(crc_at - start)));
  maild__buf_commit(out, total);
  return 0;
}

/* ---- Decoding ------------------------------------------------------------ */

/*
 * One walk over the records. With `env` NULL it validates and measures;
 * with `env` set (second walk, over input already validated) it copies.
 */
typedef struct walker {
  const uint8_t *p;
  size_t len;
  size_t off;
  maild_envelope *env; /* NULL while measuring */
  char *str;           /* next free string octet while copying */
  size_t nrcpt;
  size_t strbytes;
  const char *why;
} walker;

static int bad(walker *w, const char *why) {
  w->why = why;
  return MAILD_ERR_SYNTAX;
}

/* Takes the next record, which must be of `type`. */
static int take(walker *w, int type, const uint8_t **pl, size_t *n) {
  uint32_t len;

  if (w->len - w->off < REC_HDR)
    return bad(w, "truncated record header");
  if (w->p[w->off] != type)
    return bad(w, "unexpected record type");
  len = get32(w->p + w->off + 1);
  if (len > w->len - w->off - REC_HDR)
    return bad(w, "record runs past the end");
  *pl = w->p + w->off + REC_HDR;
  *n = len;
  w->off += REC_HDR + (size_t)len;
  return 0;
}

static int take_fixed(walker *w, int type, size_t want, const uint8_t **pl) {
  size_t n;
  int rc = take(w, type, pl, &n);
  if (rc != 0)
    return rc;
  if (n != want)
    return bad(w, "fixed-size record of wrong size");
  return 0;
}

/* Checks (measuring) or copies (copying) a string of `n` octets at `s`. */
static int str_field(walker *w, const uint8_t *s, size_t n, size_t max,
                     const char **dst) {
  if (w->env == NULL) {
    if (n > max)
      return bad(w, "string too long");
    if (memchr(s, '\0', n) != NULL)
      return bad(w, "NUL in string");
    w->strbytes += n + 1;
    return 0;
  }
  if (n > 0)
    memcpy(w->str, s, n);
  w->str[n] = '\0';
  *dst = w->str;
  w->str += n + 1;
  return 0;
}

static int str_record(walker *w, int type, size_t max, const char **dst) {
  const uint8_t *pl;
  size_t n;
  int rc = take(w, type, &pl, &n);
  if (rc != 0)
    return rc;
  return str_field(w, pl, n, max, dst);
}

/* Reads a length-prefixed field of a recipient record. */
static int rcpt_part(walker *w, const uint8_t **pl, size_t *left, size_t lenlen,
                     size_t max, const char **dst) {
  size_t n;

  if (*left < lenlen)
    return bad(w, "truncated recipient");
  n = lenlen == 2 ? (size_t)((*pl)[0] << 8 | (*pl)[1]) : (size_t)(*pl)[0];
  *pl += lenlen;
  *left -= lenlen;
  if (n > *left)
    return bad(w, "truncated recipient");
  if (str_field(w, *pl, n, max, dst) != 0)
    return MAILD_ERR_SYNTAX;
  *pl += n;
  *left -= n;
  return 0;
}

static int rcpt_record(walker *w) {
  maild_envelope_rcpt dummy, *r;
  const uint8_t *pl;
  size_t n;
  int rc = take(w, REC_RCPT, &pl, &n);

  if (rc != 0)
    return rc;
  r = w->env != NULL ? &w->env->rcpt[w->nrcpt] : &dummy;
  if (n < 2)
    return bad(w, "truncated recipient");
  if (pl[0] > MAILD_RCPT_FAILED || (pl[1] & ~NOTIFY_BITS))
    return bad(w, "bad recipient state or NOTIFY");
  r->state = pl[0];
  r->notify = pl[1];
  pl += 2;
  n -= 2;
  if (n >= 2 && pl[0] == 0 && pl[1] == 0)
    return bad(w, "empty recipient");
  if ((rc = rcpt_part(w, &pl, &n, 2, MAILD_ENV_ADDR_MAX, &r->addr)) != 0 ||
      (rc = rcpt_part(w, &pl, &n, 1, MAILD_ENV_TYPE_MAX, &r->orcpt_type)) !=
          0 ||
      (rc = rcpt_part(w, &pl, &n, 2, MAILD_ENV_ADDR_MAX, &r->orcpt)) != 0)
    return rc;
  if (n != 0)
    return bad(w, "octets after recipient fields");
  if (++w->nrcpt > MAILD_ENV_RCPT_MAX)
    return bad(w, "too many recipients");
  return 0;
}

static int head_records(walker *w) {
  maild_envelope tmp, *e = w->env != NULL ? w->env : &tmp;
  const uint8_t *pl;
  int rc;

  if ((rc = take_fixed(w, REC_MAGIC, MAGIC_LEN + 1, &pl)) != 0 ||
      (rc = take_fixed(w, REC_ID, MAILD_SPOOL_ID_LEN, &pl)) != 0)
    return rc;
  memcpy(e->id, pl, MAILD_SPOOL_ID_LEN);
  e->id[MAILD_SPOOL_ID_LEN] = '\0';
  if (!maild__spool_id_valid(e->id))
    return bad(w, "bad id");
  if ((rc = take_fixed(w, REC_TIME, 8, &pl)) != 0)
    return rc;
  if (pl[0] & 0x80u)
    return bad(w, "negative arrival time");
  e->arrival_usec = (int64_t)get64(pl);
  if ((rc = take_fixed(w, REC_BODYINFO, BODYINFO_LEN, &pl)) != 0)
    return rc;
  e->msg_size = get64(pl);
  e->msg_crc32 = get32(pl + 8);
  e->return_path_len = get32(pl + 12);
  if (e->return_path_len > e->msg_size)
    return bad(w, "Return-Path longer than message");
  if ((rc = take_fixed(w, REC_FLAGS, FLAGS_LEN, &pl)) != 0)
    return rc;
  if (pl[0] > MAILD_RET_HDRS || pl[1] > MAILD_BODY_BINARYMIME || pl[2] > 3)
    return bad(w, "bad RET, BODY or flags value");
  e->ret = pl[0];
  e->body = pl[1];
  e->smtputf8 = pl[2] & 1;
  e->delay_warned = pl[2] >> 1;
  return 0;
}

static int walk(walker *w) {
  maild_envelope tmp, *e = w->env != NULL ? w->env : &tmp;
  int rc;

  w->off = 0;
  w->nrcpt = 0;
  if ((rc = head_records(w)) != 0 ||
      (rc = str_record(w, REC_SENDER, MAILD_ENV_ADDR_MAX, &e->sender)) != 0 ||
      (rc = str_record(w, REC_ENVID, MAILD_ENV_TEXT_MAX, &e->envid)) != 0 ||
      (rc = str_record(w, REC_CLIENT, MAILD_ENV_TEXT_MAX, &e->client_addr)) !=
          0 ||
      (rc = str_record(w, REC_HELO, MAILD_ENV_TEXT_MAX, &e->client_helo)) !=
          0 ||
      (rc = str_record(w, REC_AUTH, MAILD_ENV_TEXT_MAX, &e->auth_id)) != 0)
    return rc;
  if (w->len - w->off < REC_HDR || w->p[w->off] != REC_RCPT)
    return bad(w, "no recipient");
  do {
    if ((rc = rcpt_record(w)) != 0)
      return rc;
  } while (w->len - w->off > 0 && w->p[w->off] == REC_RCPT);
  e->nrcpt = w->nrcpt;
  /* The END record was checked by check_frame(); it must come next. */
  if (w->len - w->off != REC_HDR + 4 || w->p[w->off] != REC_END)
    return bad(w, "unexpected record type");
  return 0;
}

/*
 * Checks the frame before believing any field: a version-1 magic, a chain
 * of records whose lengths stay inside the data, ending with an END record
 * that is the last thing in the file and holds the right CRC.
 */
static int check_frame(walker *w) {
  size_t off = 0;
  uint32_t len;

  if (w->len > MAILD_ENV_FILE_MAX)
    return bad(w, "file too large");
  if (w->len < REC_HDR + MAGIC_LEN + 1 || w->p[0] != REC_MAGIC ||
      get32(w->p + 1) != MAGIC_LEN + 1 ||
      memcmp(w->p + REC_HDR, MAGIC, MAGIC_LEN) != 0)
    return bad(w, "bad magic");
  if (w->p[REC_HDR + MAGIC_LEN] != MAILD_ENV_VERSION) {
    w->why = "unsupported version";
    return MAILD_ERR_UNSUPPORTED;
  }
  for (;;) {
    if (w->len - off < REC_HDR)
      return bad(w, off == w->len ? "no END record" : "truncated record");
    len = get32(w->p + off + 1);
    if (len > w->len - off - REC_HDR)
      return bad(w, "record runs past the end");
    if (w->p[off] == REC_END)
      break;
    off += REC_HDR + (size_t)len;
  }
  if (len != 4)
    return bad(w, "END record of wrong size");
  if (w->len - off != REC_HDR + 4)
    return bad(w, "octets after END record");
  if (get32(w->p + off + REC_HDR) != maild__crc32(0, w->p, off + REC_HDR))
    return bad(w, "bad CRC");
  return 0;
}

int maild__envelope_decode(maild_envelope **out, const uint8_t *data,
                           size_t len, const maild_mem *mem, const char **why) {
  walker w;
  maild_envelope *env;
  size_t head;
  int rc;

  if (why != NULL)
    *why = NULL;
  if (out == NULL || (data == NULL && len > 0) || mem == NULL)
    return MAILD_ERR_INVAL;
  *out = NULL;
  memset(&w, 0, sizeof(w));
  w.p = data;
  w.len = len;
  rc = check_frame(&w);
  if (rc == 0)
    rc = walk(&w);
  if (rc != 0) {
    if (why != NULL)
      *why = w.why;
    return rc;
  }
  head = sizeof(*env) + w.nrcpt * sizeof(maild_envelope_rcpt);
  env = maild__malloc(mem, head + w.strbytes);
  if (env == NULL)
    return MAILD_ERR_NOMEM;
  memset(env, 0, head);
  env->rcpt = (maild_envelope_rcpt *)(env + 1);
  w.env = env;
  w.str = (char *)env + head;
  rc = walk(&w);
  if (rc != 0) { /* cannot happen: the first walk accepted these octets */
    maild__free(mem, env);
    if (why != NULL)
      *why = w.why;
    return rc;
  }
  *out = env;
  return 0;
}

void maild__envelope_free(maild_envelope *env, const maild_mem *mem) {
  if (env != NULL)
    maild__free(mem, env);
}
