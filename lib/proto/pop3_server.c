/*
 * POP3 server engine (RFC 1939, RFC 2449, RFC 2595, RFC 5034), sans-I/O.
 *
 * Shaped like the SMTP engine: one session object, a command table with
 * the states each verb is valid in, and one *_done function per decision
 * the embedder may defer (login, update), so a deferred answer and an
 * immediate one run the same code. Multi-line responses that can be large
 * (LIST, UIDL, RETR, TOP) are "jobs" produced piecewise while output is
 * under OUTPUT_BACKLOG; a message is pulled from the embedder in chunks and
 * dot-stuffed on the way out, never held whole (RFC 1939 3). The engine
 * knows no mailbox: the embedder gives sizes and UIDLs at login and reads
 * content on demand.
 */
#include "maild/pop3_server.h"

#include <stdio.h>
#include <string.h>

#include "core/ascii.h"
#include "core/buf.h"
#include "core/mem.h"
#include "maild/dotstuff.h"
#include "maild/error.h"
#include "maild/line.h"

#define POP3_CHUNK     4096  /* octets pulled from on_read at once */
#define POP3_OUT_SLACK 32768 /* room past the backlog for one step */
#define POP3_MAX_TEXT  400   /* longest embedder text we copy */
#define POP3_MAX_MECHS 32    /* longest SASL mechanism name */

enum pop3_state { ST_AUTHORIZATION = 1, ST_TRANSACTION = 2, ST_UPDATE = 4 };
enum pop3_pending { PEND_NONE, PEND_AUTH, PEND_UPDATE };
enum pop3_job { JOB_NONE, JOB_LIST, JOB_UIDL, JOB_RETR };

struct maild_pop3_server {
  maild_mem mem;
  maild_pop3_server_callbacks cb;
  void *user_data;
  char *hostname;
  char *mechs; /* space separated, as configured; NULL: no AUTH */
  int stls_offered, tls, tls_wait, plaintext_ok;
  size_t max_auth_line, max_errors, errors, backlog;
  maild_linereader *lr;
  maild_buf out;
  unsigned state;
  int closing;
  enum pop3_pending pending;
  /* Login. */
  char *user; /* from USER; NULL when none */
  size_t user_len;
  int sasl;                      /* in an AUTH exchange */
  char mech[POP3_MAX_MECHS + 1]; /* its mechanism */
  unsigned sasl_step;
  /* Maildrop. */
  uint64_t *sizes;
  char **uidls;
  uint8_t *deleted;
  size_t count;
  /* The streaming response. */
  enum pop3_job job;
  size_t job_next; /* LIST/UIDL: next index */
  size_t msg;      /* RETR/TOP: index */
  uint64_t offset;
  int read_deferred, started, top;
  uint64_t top_left; /* body lines still to send */
  int top_body, top_prev_cr, top_empty;
  maild_dot_encoder enc;
  uint8_t *chunk;
};

/* ---- Output ---- */

static void drop_maildrop(maild_pop3_server *s) {
  size_t i;

  for (i = 0; i < s->count; i++)
    maild__free(&s->mem, s->uidls[i]);
  maild__free(&s->mem, s->uidls);
  maild__free(&s->mem, s->sizes);
  maild__free(&s->mem, s->deleted);
  s->uidls = NULL;
  s->sizes = NULL;
  s->deleted = NULL;
  s->count = 0;
}

static void forget_user(maild_pop3_server *s) {
  maild__free(&s->mem, s->user);
  s->user = NULL;
  s->user_len = 0;
  s->sasl = 0;
}

static int append(maild_pop3_server *s, const void *p, size_t n) {
  if (maild__buf_append(&s->out, &s->mem, p, n) != 0) {
    s->closing = 1;
    s->job = JOB_NONE;
    return MAILD_ERR_NOMEM;
  }
  return 0;
}

/* Appends `text` with control octets replaced, at most POP3_MAX_TEXT. */
static int append_text(maild_pop3_server *s, const char *text) {
  char tmp[POP3_MAX_TEXT];
  size_t n = 0;

  for (; text[n] != '\0' && n < sizeof(tmp); n++)
    tmp[n] = maild__ascii_is_ctl((unsigned char)text[n]) ? '?' : text[n];
  return append(s, tmp, n);
}

/* Queues "+OK text", "-ERR [code] text" or "+ text". Fails only when the
   output cannot grow, which ends the session. */
static int respond(maild_pop3_server *s, maild_pop3_status st, const char *code,
                   const char *text) {
  const char *head = st == MAILD_POP3_OK         ? "+OK"
                     : st == MAILD_POP3_CONTINUE ? "+"
                                                 : "-ERR";
  int r = append(s, head, strlen(head));

  if (r == 0 && code != NULL && st == MAILD_POP3_ERR) {
    r = append(s, " [", 2);
    if (r == 0)
      r = append_text(s, code);
    if (r == 0)
      r = append(s, "]", 1);
  }
  if (r == 0 && text != NULL && (text[0] != '\0' || st == MAILD_POP3_CONTINUE))
    r = append(s, " ", 1);
  if (r == 0 && text != NULL)
    r = append_text(s, text);
  if (r == 0)
    r = append(s, "\r\n", 2);
  return r;
}

static int ok(maild_pop3_server *s, const char *text) {
  return respond(s, MAILD_POP3_OK, NULL, text);
}

static int append_str(maild_pop3_server *s, const char *str) {
  return append(s, str, strlen(str));
}

/* "+OK <hostname> <text>" for the greeting and the goodbye. */
static int ok_host(maild_pop3_server *s, const char *text) {
  int r = append_str(s, "+OK ");

  if (r == 0)
    r = append_text(s, s->hostname);
  if (r == 0)
    r = append_str(s, text);
  return r == 0 ? append_str(s, "\r\n") : r;
}

/* An error the engine found itself: counted toward MAX_ERRORS. */
static int refuse(maild_pop3_server *s, const char *code, const char *text,
                  const maild_line *line) {
  int r = respond(s, MAILD_POP3_ERR, code, text);

  if (s->cb.on_error != NULL && line != NULL)
    s->cb.on_error(s, line->data, line->len < 80 ? line->len : 80,
                   s->user_data);
  if (r == 0 && ++s->errors >= s->max_errors) {
    r = respond(s, MAILD_POP3_ERR, NULL, "Too many errors, closing");
    s->closing = 1;
  }
  return r;
}

/* The embedder failed or memory ran out: tell the client and close
   (RFC 3206 4: SYS/TEMP). */
static int close_with_error(maild_pop3_server *s) {
  s->closing = 1;
  s->job = JOB_NONE;
  return respond(s, MAILD_POP3_ERR, "SYS/TEMP", "Internal error, closing");
}

static int out_full(const maild_pop3_server *s) {
  return maild__buf_used(&s->out) >= s->backlog;
}

/* ---- Streaming responses ---- */

static int end_job(maild_pop3_server *s) {
  uint8_t end[MAILD_DOT_END_MAX];
  size_t n;

  s->job = JOB_NONE;
  if (s->started) {
    n = maild_dot_encode_end(&s->enc, end);
    return append(s, end, n);
  }
  return append(s, ".\r\n", 3);
}

static int pump_listing(maild_pop3_server *s) {
  char line[32 + MAILD_POP3_MAX_UIDL];

  while (!out_full(s) && s->job_next < s->count) {
    size_t i = s->job_next++;
    int n;

    if (s->deleted[i])
      continue;
    if (s->job == JOB_LIST)
      n = snprintf(line, sizeof(line), "%zu %llu\r\n", i + 1,
                   (unsigned long long)s->sizes[i]);
    else
      n = snprintf(line, sizeof(line), "%zu %s\r\n", i + 1, s->uidls[i]);
    if (append(s, line, (size_t)n) != 0)
      return MAILD_ERR_NOMEM;
  }
  if (s->job_next < s->count)
    return 0;
  s->started = 0;
  return end_job(s);
}

/* TOP: how many of `n` source octets to send; sets top_left to 0 and
   job state when the requested body lines are complete (RFC 1939 7). Line
   ends are CRLF, bare CR or bare LF, as the dot encoder sees them. */
static size_t top_scan(maild_pop3_server *s, const uint8_t *p, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    uint8_t c = p[i];

    if (c == '\n' && s->top_prev_cr) {
      s->top_prev_cr = 0;
      continue;
    }
    s->top_prev_cr = c == '\r';
    if (c != '\r' && c != '\n') {
      s->top_empty = 0;
      continue;
    }
    if (!s->top_body) {
      s->top_body = s->top_empty;
      s->top_empty = 1;
      if (s->top_body && s->top_left == 0)
        return i + 1;
      continue;
    }
    s->top_empty = 1;
    if (--s->top_left == 0)
      return i + 1;
  }
  return n;
}

static int top_complete(const maild_pop3_server *s) {
  return s->top && s->top_body && s->top_left == 0;
}

static int pump_message(maild_pop3_server *s) {
  char line[64];

  if (s->chunk == NULL) {
    s->chunk = maild__malloc(&s->mem, POP3_CHUNK);
    if (s->chunk == NULL) {
      s->closing = 1;
      s->job = JOB_NONE;
      return MAILD_ERR_NOMEM;
    }
  }
  while (!out_full(s) && s->job == JOB_RETR) {
    size_t got = 0, take, used = 0, w;
    uint8_t *dst;
    int r = 0, err = 0;

    if (s->cb.on_read != NULL)
      r = s->cb.on_read(s, s->msg, s->offset, s->chunk, POP3_CHUNK, &got,
                        s->user_data);
    if (r == MAILD_ERR_DEFER) {
      s->read_deferred = 1;
      return 0;
    }
    if (r < 0 || got > POP3_CHUNK) {
      if (s->started) { /* mid-response: nothing sane can follow */
        s->closing = 1;
        s->job = JOB_NONE;
        return 0;
      }
      s->job = JOB_NONE;
      return respond(s, MAILD_POP3_ERR, "SYS/TEMP", "Cannot read message");
    }
    if (!s->started) {
      s->started = 1;
      snprintf(line, sizeof(line), "%llu octets",
               (unsigned long long)s->sizes[s->msg]);
      if ((r = ok(s, s->top ? "Top of message follows" : line)) != 0)
        return r;
    }
    if (got == 0)
      return end_job(s);
    s->offset += got;
    take = s->top ? top_scan(s, s->chunk, got) : got;
    dst = maild__buf_reserve(&s->out, &s->mem, 2 * take, &err);
    if (dst == NULL) {
      s->closing = 1;
      s->job = JOB_NONE;
      return MAILD_ERR_NOMEM;
    }
    w = maild_dot_encode(&s->enc, s->chunk, take, dst, 2 * take, &used);
    maild__buf_commit(&s->out, w);
    if (top_complete(s))
      return end_job(s);
  }
  return 0;
}

/* Produces more of the current multi-line response, up to the backlog. */
static int pump(maild_pop3_server *s) {
  if (s->closing || s->read_deferred)
    return 0;
  if (s->job == JOB_LIST || s->job == JOB_UIDL)
    return pump_listing(s);
  if (s->job == JOB_RETR)
    return pump_message(s);
  return 0;
}

/* ---- Decisions ---- */

static int login_allowed(const maild_pop3_server *s) {
  return s->tls || s->plaintext_ok; /* RFC 2595 2.1 */
}

/* Applies the answer to a login attempt (USER/PASS or a SASL step). */
static int auth_done(maild_pop3_server *s, const maild_pop3_reply *rep) {
  maild_pop3_status st = rep != NULL ? rep->status : MAILD_POP3_DEFAULT;

  s->pending = PEND_NONE;
  if (st == MAILD_POP3_OK) {
    forget_user(s);
    s->state = ST_TRANSACTION;
    return ok(s, rep->text != NULL ? rep->text : "Logged in");
  }
  if (st == MAILD_POP3_CONTINUE && s->sasl) {
    s->sasl_step++;
    return respond(s, MAILD_POP3_CONTINUE, NULL,
                   rep->text != NULL ? rep->text : "");
  }
  forget_user(s);
  drop_maildrop(s);
  if (st == MAILD_POP3_DEFAULT || st == MAILD_POP3_CONTINUE)
    return refuse(s, "AUTH", "Authentication failed", NULL);
  /* With AUTH-RESP-CODE every refused login carries a code (RFC 3206 5). */
  return refuse(s, rep->code != NULL ? rep->code : "AUTH",
                rep->text != NULL ? rep->text : "Authentication failed", NULL);
}

static int run_auth(maild_pop3_server *s, const maild_pop3_auth *a) {
  maild_pop3_reply rep = {MAILD_POP3_DEFAULT, NULL, NULL};
  int r = 0;

  if (s->cb.on_auth != NULL)
    r = s->cb.on_auth(s, a, &rep, s->user_data);
  if (r == MAILD_ERR_DEFER) {
    s->pending = PEND_AUTH;
    return 0;
  }
  if (r < 0) {
    drop_maildrop(s);
    return close_with_error(s);
  }
  return auth_done(s, &rep);
}

static int update_done(maild_pop3_server *s, const maild_pop3_reply *rep) {
  s->pending = PEND_NONE;
  s->closing = 1;
  if (rep != NULL && rep->status == MAILD_POP3_ERR)
    return respond(
        s, MAILD_POP3_ERR, rep->code != NULL ? rep->code : "SYS/TEMP",
        rep->text != NULL ? rep->text : "Some deleted messages not removed");
  if (rep != NULL && rep->status == MAILD_POP3_OK && rep->text != NULL)
    return ok(s, rep->text);
  return ok_host(s, " POP3 server signing off");
}

/* ---- Commands ---- */

typedef struct pop3_args {
  const char *arg; /* everything after the keyword and one space */
  size_t arg_len;
  const maild_line *line;
} pop3_args;

/* Parses a decimal number of at most 19 digits; -1 if not one. */
static int parse_number(const char *p, size_t n, uint64_t *v) {
  size_t i;

  if (n == 0 || n > 19)
    return -1;
  *v = 0;
  for (i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return -1;
    *v = *v * 10 + (uint64_t)(p[i] - '0');
  }
  return 0;
}

/* Splits the next space-separated word off `*p`. */
static int next_word(const char **p, size_t *n, const char **w, size_t *wn) {
  size_t i = 0, j;

  while (i < *n && (*p)[i] == ' ')
    i++;
  j = i;
  while (j < *n && (*p)[j] != ' ')
    j++;
  *w = *p + i;
  *wn = j - i;
  *p += j;
  *n -= j;
  return *wn > 0 ? 0 : -1;
}

static int rest_is_blank(const char *p, size_t n) {
  while (n > 0 && *p == ' ') {
    p++;
    n--;
  }
  return n == 0;
}

/* A message-number argument: a 0-based index of a live message, or
   refuses. `*idx` is set on success. */
static int arg_message(maild_pop3_server *s, const char **p, size_t *n,
                       size_t *idx, const pop3_args *a, int *answered) {
  const char *w;
  size_t wn;
  uint64_t v;

  *answered = 0;
  if (next_word(p, n, &w, &wn) != 0 || parse_number(w, wn, &v) != 0) {
    *answered = 1;
    return refuse(s, NULL, "Invalid message number", a->line);
  }
  if (v == 0 || v > s->count || s->deleted[v - 1]) {
    *answered = 1;
    return refuse(s, NULL, "No such message", a->line);
  }
  *idx = (size_t)(v - 1);
  return 0;
}

static int cmd_capa(maild_pop3_server *s, const pop3_args *a) {
  int r;

  (void)a;
  r = ok(s, "Capability list follows");
  if (r == 0)
    r = append_str(s, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
                      "PIPELINING\r\n");
  if (r == 0 && login_allowed(s) && s->state == ST_AUTHORIZATION)
    r = append_str(s, "USER\r\n");
  if (r == 0 && login_allowed(s) && s->mechs != NULL &&
      s->state == ST_AUTHORIZATION) {
    r = append_str(s, "SASL ");
    if (r == 0)
      r = append_text(s, s->mechs);
    if (r == 0)
      r = append_str(s, "\r\n");
  }
  if (r == 0 && s->stls_offered && !s->tls && s->state == ST_AUTHORIZATION)
    r = append_str(s, "STLS\r\n");
  if (r == 0)
    r = append_str(s, "IMPLEMENTATION libmaild\r\n.\r\n");
  return r;
}

static int cmd_quit(maild_pop3_server *s, const pop3_args *a) {
  maild_pop3_reply rep = {MAILD_POP3_DEFAULT, NULL, NULL};
  size_t *del = NULL, n = 0, i;
  int r = 0;

  (void)a;
  if (s->state == ST_AUTHORIZATION)
    return update_done(s, NULL);
  s->state = ST_UPDATE; /* RFC 1939 6 */
  for (i = 0; i < s->count; i++)
    n += s->deleted[i];
  if (n > 0 && (del = maild__calloc(&s->mem, n, sizeof(*del))) == NULL) {
    close_with_error(s);
    return MAILD_ERR_NOMEM;
  }
  for (i = 0, n = 0; i < s->count; i++)
    if (s->deleted[i])
      del[n++] = i;
  if (s->cb.on_update != NULL)
    r = s->cb.on_update(s, del, n, &rep, s->user_data);
  maild__free(&s->mem, del);
  if (r == MAILD_ERR_DEFER) {
    s->pending = PEND_UPDATE;
    return 0;
  }
  if (r < 0)
    return close_with_error(s);
  return update_done(s, &rep);
}

static int cmd_stls(maild_pop3_server *s, const pop3_args *a) {
  if (s->tls)
    return refuse(s, NULL, "Command not permitted when TLS active", a->line);
  if (!s->stls_offered)
    return refuse(s, NULL, "STLS not available", a->line);
  s->tls_wait = 1; /* RFC 2595 4: nothing more is read in the clear */
  maild_linereader_reset(s->lr);
  return ok(s, "Begin TLS negotiation");
}

static int cmd_user(maild_pop3_server *s, const pop3_args *a) {
  if (!login_allowed(s))
    return refuse(s, "AUTH", "Plaintext authentication disallowed without TLS",
                  a->line);
  if (a->arg_len == 0)
    return refuse(s, NULL, "Missing user name", a->line);
  forget_user(s);
  s->user = maild__strndup(&s->mem, a->arg, a->arg_len);
  if (s->user == NULL) {
    close_with_error(s);
    return MAILD_ERR_NOMEM;
  }
  s->user_len = a->arg_len;
  return ok(s, "Send password");
}

static int cmd_pass(maild_pop3_server *s, const pop3_args *a) {
  maild_pop3_auth au;

  if (!login_allowed(s))
    return refuse(s, "AUTH", "Plaintext authentication disallowed without TLS",
                  a->line);
  if (s->user == NULL)
    return refuse(s, NULL, "USER first", a->line);
  memset(&au, 0, sizeof(au));
  au.mechanism = "USER";
  au.user = s->user;
  au.user_len = s->user_len;
  au.password = a->arg; /* may hold spaces (RFC 1939 13) */
  au.password_len = a->arg_len;
  return run_auth(s, &au);
}

/* Nonzero if the upper-cased `m` is one of the configured mechanisms. */
static int mech_offered(const maild_pop3_server *s, const char *m) {
  const char *p = s->mechs;
  size_t len = p != NULL ? strlen(p) : 0, wn;
  const char *w;

  if (p == NULL)
    return 0;
  while (next_word(&p, &len, &w, &wn) == 0)
    if (maild__ascii_caseeq(w, wn, m))
      return 1;
  return 0;
}

static int cmd_auth(maild_pop3_server *s, const pop3_args *a) {
  const char *p = a->arg, *w, *ir;
  size_t n = a->arg_len, wn, irn, i;
  maild_pop3_auth au;

  if (!login_allowed(s))
    return refuse(s, "AUTH", "Authentication disallowed without TLS", a->line);
  if (next_word(&p, &n, &w, &wn) != 0)
    return refuse(s, NULL, "Missing mechanism", a->line);
  if (wn > POP3_MAX_MECHS)
    return refuse(s, NULL, "Unsupported mechanism", a->line);
  for (i = 0; i < wn; i++)
    s->mech[i] = (char)(w[i] >= 'a' && w[i] <= 'z' ? w[i] - 32 : w[i]);
  s->mech[wn] = '\0';
  if (!mech_offered(s, s->mech))
    return refuse(s, NULL, "Unsupported mechanism", a->line);
  memset(&au, 0, sizeof(au));
  if (next_word(&p, &n, &ir, &irn) == 0) {
    if (!rest_is_blank(p, n))
      return refuse(s, NULL, "Syntax error", a->line);
    au.response = ir;
    au.response_len = irn;
  }
  forget_user(s);
  s->sasl = 1;
  s->sasl_step = 0;
  au.mechanism = s->mech;
  return run_auth(s, &au);
}

/* A line during the AUTH exchange (RFC 5034 4). */
static int sasl_line(maild_pop3_server *s, const maild_line *line) {
  maild_pop3_auth au;

  if (line->len == 1 && line->data[0] == '*') {
    s->sasl = 0;
    return refuse(s, NULL, "Authentication cancelled", line);
  }
  memset(&au, 0, sizeof(au));
  au.mechanism = s->mech;
  au.response = line->data;
  au.response_len = line->len;
  au.step = s->sasl_step;
  return run_auth(s, &au);
}

static int cmd_stat(maild_pop3_server *s, const pop3_args *a) {
  char text[64];
  uint64_t octets = 0;
  size_t i, n = 0;

  (void)a;
  for (i = 0; i < s->count; i++)
    if (!s->deleted[i]) {
      n++;
      octets += s->sizes[i];
    }
  snprintf(text, sizeof(text), "%zu %llu", n, (unsigned long long)octets);
  return ok(s, text);
}

/* LIST and UIDL: one line for a message, or a listing (RFC 1939 5, 7). */
static int cmd_listing(maild_pop3_server *s, const pop3_args *a,
                       enum pop3_job job) {
  char text[32 + MAILD_POP3_MAX_UIDL];
  const char *p = a->arg;
  size_t n = a->arg_len, idx;
  int answered, r;

  if (!rest_is_blank(p, n)) {
    r = arg_message(s, &p, &n, &idx, a, &answered);
    if (answered)
      return r;
    if (!rest_is_blank(p, n))
      return refuse(s, NULL, "Syntax error", a->line);
    if (job == JOB_LIST)
      snprintf(text, sizeof(text), "%zu %llu", idx + 1,
               (unsigned long long)s->sizes[idx]);
    else
      snprintf(text, sizeof(text), "%zu %s", idx + 1, s->uidls[idx]);
    return ok(s, text);
  }
  s->job = job;
  s->job_next = 0;
  if ((r = ok(s, job == JOB_LIST ? "Scan listing follows"
                                 : "Unique-id listing follows")) != 0)
    return r;
  return pump(s);
}

static int cmd_list(maild_pop3_server *s, const pop3_args *a) {
  return cmd_listing(s, a, JOB_LIST);
}

static int cmd_uidl(maild_pop3_server *s, const pop3_args *a) {
  return cmd_listing(s, a, JOB_UIDL);
}

static int start_message(maild_pop3_server *s, size_t idx, int top,
                         uint64_t lines) {
  s->job = JOB_RETR;
  s->msg = idx;
  s->offset = 0;
  s->started = 0;
  s->read_deferred = 0;
  s->top = top;
  s->top_left = lines;
  s->top_body = 0;
  s->top_prev_cr = 0;
  s->top_empty = 1;
  maild_dot_encoder_init(&s->enc);
  return pump(s);
}

static int cmd_retr(maild_pop3_server *s, const pop3_args *a) {
  const char *p = a->arg;
  size_t n = a->arg_len, idx;
  int answered, r = arg_message(s, &p, &n, &idx, a, &answered);

  if (answered)
    return r;
  if (!rest_is_blank(p, n))
    return refuse(s, NULL, "Syntax error", a->line);
  return start_message(s, idx, 0, 0);
}

static int cmd_top(maild_pop3_server *s, const pop3_args *a) {
  const char *p = a->arg, *w;
  size_t n = a->arg_len, idx, wn;
  uint64_t lines;
  int answered, r = arg_message(s, &p, &n, &idx, a, &answered);

  if (answered)
    return r;
  if (next_word(&p, &n, &w, &wn) != 0 || parse_number(w, wn, &lines) != 0 ||
      !rest_is_blank(p, n))
    return refuse(s, NULL, "Syntax error", a->line);
  return start_message(s, idx, 1, lines);
}

static int cmd_dele(maild_pop3_server *s, const pop3_args *a) {
  const char *p = a->arg;
  size_t n = a->arg_len, idx;
  int answered, r = arg_message(s, &p, &n, &idx, a, &answered);

  if (answered)
    return r;
  if (!rest_is_blank(p, n))
    return refuse(s, NULL, "Syntax error", a->line);
  s->deleted[idx] = 1; /* applied only in UPDATE, RFC 1939 6 */
  return ok(s, "Message deleted");
}

static int cmd_noop(maild_pop3_server *s, const pop3_args *a) {
  (void)a;
  return ok(s, NULL);
}

static int cmd_rset(maild_pop3_server *s, const pop3_args *a) {
  (void)a;
  if (s->count > 0)
    memset(s->deleted, 0, s->count);
  return ok(s, NULL);
}

typedef struct pop3_command {
  const char *name;
  unsigned states; /* pop3_state bits the command is valid in */
  int (*run)(maild_pop3_server *s, const pop3_args *a);
} pop3_command;

static const pop3_command commands[] = {
    {"CAPA", ST_AUTHORIZATION | ST_TRANSACTION, cmd_capa}, /* RFC 2449 5 */
    {"QUIT", ST_AUTHORIZATION | ST_TRANSACTION, cmd_quit},
    {"STLS", ST_AUTHORIZATION, cmd_stls}, /* RFC 2595 4 */
    {"USER", ST_AUTHORIZATION, cmd_user},
    {"PASS", ST_AUTHORIZATION, cmd_pass},
    {"AUTH", ST_AUTHORIZATION, cmd_auth}, /* RFC 5034 4 */
    {"STAT", ST_TRANSACTION, cmd_stat},
    {"LIST", ST_TRANSACTION, cmd_list},
    {"RETR", ST_TRANSACTION, cmd_retr},
    {"DELE", ST_TRANSACTION, cmd_dele},
    {"NOOP", ST_TRANSACTION, cmd_noop},
    {"RSET", ST_TRANSACTION, cmd_rset},
    {"TOP", ST_TRANSACTION, cmd_top},
    {"UIDL", ST_TRANSACTION, cmd_uidl},
};

static int process_line(maild_pop3_server *s, const maild_line *line) {
  const char *p = line->data;
  size_t n = line->len, kn = 0, i, limit;
  pop3_args a;
  int is_auth;

  if (s->sasl) {
    if (line->flags & (MAILD_LINE_TOO_LONG | MAILD_LINE_NUL)) {
      s->sasl = 0;
      return refuse(s, NULL, "Response too long or malformed", line);
    }
    return sasl_line(s, line);
  }
  while (kn < n && p[kn] != ' ')
    kn++;
  is_auth = maild__ascii_caseeq(p, kn, "AUTH");
  limit = is_auth ? s->max_auth_line : MAILD_POP3_MAX_COMMAND; /* RFC 2449 4 */
  if ((line->flags & MAILD_LINE_TOO_LONG) || line->len + 2 > limit)
    return refuse(s, NULL, "Line too long", line);
  if (line->flags & (MAILD_LINE_NUL | MAILD_LINE_BARE_CR))
    return refuse(s, NULL, "Invalid characters in command", line);
  a.line = line;
  a.arg = kn < n ? p + kn + 1 : p + n;
  a.arg_len = kn < n ? n - kn - 1 : 0;
  for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    if (!maild__ascii_caseeq(p, kn, commands[i].name))
      continue;
    if (!(commands[i].states & s->state))
      return refuse(s, NULL, "Command not valid in this state", line);
    return commands[i].run(s, &a);
  }
  return refuse(s, NULL, "Unknown command", line);
}

/* ---- Public API ---- */

static int can_consume(const maild_pop3_server *s) {
  return !s->closing && s->pending == PEND_NONE && !s->tls_wait &&
         s->job == JOB_NONE && !out_full(s);
}

int maild_pop3_server_new(maild_pop3_server **out,
                          const maild_pop3_server_callbacks *cb,
                          void *user_data, const maild_options *opt,
                          const maild_mem *mem) {
  maild_pop3_server *s;
  const char *host, *mechs;
  maild_mem m;

  if (out == NULL)
    return MAILD_ERR_INVAL;
  *out = NULL;
  maild__mem_init(&m, mem);
  s = maild__calloc(&m, 1, sizeof(*s));
  if (s == NULL)
    return MAILD_ERR_NOMEM;
  s->mem = m;
  if (cb != NULL)
    s->cb = *cb;
  s->user_data = user_data;
  s->state = ST_AUTHORIZATION;
  s->stls_offered = (int)maild_options_get_uint(opt, MAILD_OPT_STARTTLS);
  s->tls = (int)maild_options_get_uint(opt, MAILD_OPT_TLS_ACTIVE);
  s->plaintext_ok = (int)maild_options_get_uint(opt, MAILD_OPT_AUTH_PLAINTEXT);
  s->max_auth_line =
      (size_t)maild_options_get_uint(opt, MAILD_OPT_MAX_AUTH_LINE);
  s->max_errors = (size_t)maild_options_get_uint(opt, MAILD_OPT_MAX_ERRORS);
  s->backlog = (size_t)maild_options_get_uint(opt, MAILD_OPT_OUTPUT_BACKLOG);
  maild__buf_init(&s->out, s->backlog + POP3_OUT_SLACK);
  host = maild_options_get_string(opt, MAILD_OPT_HOSTNAME);
  mechs = maild_options_get_string(opt, MAILD_OPT_AUTH_MECHANISMS);
  s->hostname = maild__strndup(&s->mem, host != NULL ? host : "localhost",
                               strlen(host != NULL ? host : "localhost"));
  if (mechs != NULL && mechs[0] != '\0')
    s->mechs = maild__strndup(&s->mem, mechs, strlen(mechs));
  if (s->hostname == NULL ||
      (mechs != NULL && mechs[0] != '\0' && s->mechs == NULL) ||
      maild_linereader_new(&s->lr, s->max_auth_line, &s->mem) != 0 ||
      ok_host(s, " POP3 server ready") != 0) {
    maild_pop3_server_del(s);
    return MAILD_ERR_NOMEM;
  }
  *out = s;
  return 0;
}

void maild_pop3_server_del(maild_pop3_server *s) {
  maild_mem m;

  if (s == NULL)
    return;
  m = s->mem;
  drop_maildrop(s);
  forget_user(s);
  maild_linereader_del(s->lr);
  maild__buf_free(&s->out, &m);
  maild__free(&m, s->hostname);
  maild__free(&m, s->mechs);
  maild__free(&m, s->chunk);
  maild__free(&m, s);
}

maild_ssize maild_pop3_server_recv(maild_pop3_server *s, const uint8_t *in,
                                   size_t len) {
  size_t used = 0;

  if (s == NULL || (in == NULL && len > 0))
    return MAILD_ERR_INVAL;
  if (s->closing || s->tls_wait)
    return (maild_ssize)len; /* RFC 2595 4: plaintext after STLS is dropped */
  if (s->job != JOB_NONE && pump(s) != 0)
    return MAILD_ERR_NOMEM;
  while (used < len && can_consume(s)) {
    maild_line line;
    maild_ssize n = maild_linereader_feed(s->lr, in + used, len - used, &line);

    if (n < 0)
      return used > 0 ? (maild_ssize)used : n;
    used += (size_t)n;
    if (line.data == NULL)
      break;
    if (process_line(s, &line) != 0) {
      s->closing = 1;
      return MAILD_ERR_NOMEM;
    }
    if (s->tls_wait || s->closing)
      return (maild_ssize)len;
  }
  return (maild_ssize)used;
}

maild_ssize maild_pop3_server_send(maild_pop3_server *s, const uint8_t **data) {
  size_t n;

  if (s == NULL || data == NULL)
    return MAILD_ERR_INVAL;
  if (s->job != JOB_NONE && !out_full(s) && pump(s) != 0) {
    s->closing = 1;
    return MAILD_ERR_NOMEM;
  }
  n = maild__buf_used(&s->out);
  *data = maild__buf_peek(&s->out);
  maild__buf_consume(&s->out, n);
  return (maild_ssize)n;
}

int maild_pop3_server_want_read(const maild_pop3_server *s) {
  return s != NULL && can_consume(s);
}

int maild_pop3_server_want_write(const maild_pop3_server *s) {
  return s != NULL &&
         (maild__buf_used(&s->out) > 0 ||
          (s->job != JOB_NONE && !s->read_deferred && !s->closing));
}

int maild_pop3_server_closing(const maild_pop3_server *s) {
  return s == NULL || s->closing;
}

maild_pop3_phase maild_pop3_server_phase(const maild_pop3_server *s) {
  if (s == NULL || s->closing)
    return MAILD_POP3_PHASE_CLOSING;
  if (s->tls_wait)
    return MAILD_POP3_PHASE_TLS;
  if (s->pending != PEND_NONE || s->read_deferred)
    return MAILD_POP3_PHASE_DECISION;
  if (s->sasl)
    return MAILD_POP3_PHASE_AUTH;
  return s->state == ST_AUTHORIZATION ? MAILD_POP3_PHASE_AUTHORIZATION
                                      : MAILD_POP3_PHASE_TRANSACTION;
}

static int uidl_valid(const char *u) {
  size_t n;

  if (u == NULL)
    return 0;
  for (n = 0; u[n] != '\0'; n++)
    if ((unsigned char)u[n] < 0x21 || (unsigned char)u[n] > 0x7e)
      return 0;
  return n >= 1 && n <= MAILD_POP3_MAX_UIDL;
}

int maild_pop3_server_set_maildrop(maild_pop3_server *s,
                                   const maild_pop3_msg *msgs, size_t n) {
  size_t i;

  if (s == NULL || (msgs == NULL && n > 0))
    return MAILD_ERR_INVAL;
  if (s->state != ST_AUTHORIZATION)
    return MAILD_ERR_STATE;
  for (i = 0; i < n; i++)
    if (!uidl_valid(msgs[i].uidl))
      return MAILD_ERR_INVAL;
  drop_maildrop(s);
  if (n == 0)
    return 0;
  s->sizes = maild__calloc(&s->mem, n, sizeof(*s->sizes));
  s->uidls = maild__calloc(&s->mem, n, sizeof(*s->uidls));
  s->deleted = maild__calloc(&s->mem, n, 1);
  if (s->sizes == NULL || s->uidls == NULL || s->deleted == NULL) {
    drop_maildrop(s);
    return MAILD_ERR_NOMEM;
  }
  for (i = 0; i < n; i++) {
    s->sizes[i] = msgs[i].size;
    s->uidls[i] = maild__strndup(&s->mem, msgs[i].uidl, strlen(msgs[i].uidl));
    s->count = i + 1;
    if (s->uidls[i] == NULL) {
      drop_maildrop(s);
      return MAILD_ERR_NOMEM;
    }
  }
  return 0;
}

int maild_pop3_server_reply(maild_pop3_server *s,
                            const maild_pop3_reply *reply) {
  if (s == NULL)
    return MAILD_ERR_INVAL;
  if (s->pending == PEND_NONE)
    return MAILD_ERR_STATE;
  return s->pending == PEND_AUTH ? auth_done(s, reply) : update_done(s, reply);
}

int maild_pop3_server_resume(maild_pop3_server *s) {
  if (s == NULL)
    return MAILD_ERR_INVAL;
  if (s->read_deferred) {
    s->read_deferred = 0;
    return 0;
  }
  return maild_pop3_server_reply(s, NULL);
}

int maild_pop3_server_tls_started(maild_pop3_server *s) {
  if (s == NULL)
    return MAILD_ERR_INVAL;
  if (!s->tls_wait)
    return MAILD_ERR_STATE;
  s->tls_wait = 0;
  s->tls = 1;
  s->state = ST_AUTHORIZATION;
  forget_user(s);
  maild_linereader_reset(s->lr);
  return 0;
}

int maild_pop3_server_terminate(maild_pop3_server *s, const char *text) {
  int r = 0;

  if (s == NULL)
    return MAILD_ERR_INVAL;
  s->job = JOB_NONE;
  s->pending = PEND_NONE;
  if (text != NULL && !s->closing)
    r = respond(s, MAILD_POP3_ERR, NULL, text);
  s->closing = 1;
  return r;
}

int maild_pop3_server_is_tls(const maild_pop3_server *s) {
  return s != NULL && s->tls;
}

int maild_pop3_server_is_authenticated(const maild_pop3_server *s) {
  return s != NULL && s->state != ST_AUTHORIZATION;
}
