/*
 * SMTP client engine (see include/maild/smtp_client.h).
 *
 * Every command sent waits for its reply in `expect`, a queue in sending
 * order; replies are matched to it one by one, which is all PIPELINING
 * needs (RFC 2920 3.1: replies come in command order). The session part
 * (greeting, EHLO/HELO, STARTTLS, AUTH, RSET, QUIT) expects one reply at a
 * time; a message may have MAIL, every RCPT and DATA outstanding at once.
 * BDAT chunks are counted rather than queued, since a body may have
 * thousands of them.
 */
#include "maild/smtp_client.h"

#include "core/ascii.h"
#include "core/buf.h"
#include "core/mem.h"
#include "maild/base64.h"
#include "maild/dotstuff.h"
#include "maild/error.h"
#include "maild/reply.h"

#include <stdio.h>
#include <string.h>

#define REPLY_LINE_MAX  2048u /* RFC 5321 says 512; real servers exceed it */
#define REPLY_LINES_MAX 200u
#define PATH_MAX_LEN    256u /* RFC 5321 4.5.3.1.3 */
#define PARAM_MAX_LEN   500u
#define CRED_MAX        255u
#define BODY_PIECE      16384u /* octets asked of on_read at a time */
#define OUT_SLACK       (64u * 1024u)
#define LOCAL_TEXT_MAX  200u

typedef enum {
  ST_GREETING,
  ST_EHLO,
  ST_HELO,
  ST_STARTTLS,
  ST_TLS, /* the caller's handshake runs */
  ST_AUTH,
  ST_AUTH_USER, /* LOGIN: the user name was sent */
  ST_AUTH_PASS, /* LOGIN: the password was sent */
  ST_READY,
  ST_RSET,
  ST_TX,
  ST_QUIT,
  ST_CLOSED
} client_state;

/* What a reply in the message part answers. */
typedef enum { EXP_MAIL, EXP_RCPT, EXP_DATA, EXP_END, EXP_IGNORE } expect_kind;

typedef struct {
  expect_kind kind;
  size_t index; /* EXP_RCPT: the recipient */
} expect;

/* Where a message stands. */
typedef enum {
  TX_ENVELOPE, /* MAIL/RCPT/DATA to send */
  TX_WAIT,     /* waiting for envelope replies (and 354) */
  TX_BODY,     /* body going out (DATA or BDAT chunks) */
  TX_END,      /* waiting for the reply that ends it */
} tx_stage;

typedef struct {
  char *from;
  char **rcpt, **notify, **orcpt;
  size_t n;
  uint64_t size;
  int body_8bit, smtputf8;
  char *ret, *envid;
  /* Progress. */
  tx_stage stage;
  size_t next_rcpt;   /* next RCPT to send (without PIPELINING) */
  int data_sent;      /* DATA queued */
  int mail_failed;    /* MAIL was refused: rcpts get its reply */
  int *done;          /* per recipient: result given */
  int *accepted;      /* per recipient: RCPT answered 2xx */
  size_t naccepted;   /* RCPTs answered 2xx */
  int bdat;           /* the body goes in BDAT chunks */
  int body_end;       /* on_read said the end */
  int deferred;       /* on_read deferred */
  int last_octet;     /* of the body so far, -1 before any (BDAT line ends) */
  size_t bdat_due;    /* BDAT replies still to come */
  int bdat_last_sent; /* BDAT ... LAST queued */
  int bdat_failed;    /* a BDAT was refused: its reply is kept */
  int kept_code;      /* the reply kept for the end (MAIL/BDAT refusal) */
  char kept_enh[MAILD_ENHANCED_MAX + 1];
  char *kept_text;
  size_t kept_len;
  maild_dot_encoder enc;
} client_tx;

struct maild_smtp_client {
  maild_mem mem;
  maild_smtp_client_callbacks cb;
  void *user_data;
  char *hostname;
  int opt_starttls, opt_tls_required, opt_chunking, opt_auth_plaintext;
  uint64_t backlog;
  char *user, *password;

  maild_reply_parser *parser;
  maild_buf out;
  size_t out_taken; /* returned by the last _send() */

  client_state state;
  int tls;
  int tls_tried; /* STARTTLS was sent once: never again */
  int quit_wanted;
  int in_callback; /* guards against re-entry from callbacks */
  unsigned ext;
  uint64_t size_limit;
  int need_rset; /* the last message did not end cleanly */

  expect *exp;
  size_t exp_head, exp_len, exp_cap;
  client_tx *tx;
  uint8_t *piece; /* body octets from on_read, then room for their CRLF
                     copy (BDAT): 3 * BODY_PIECE */

  maild_smtp_client_reply last;
  char last_enh[MAILD_ENHANCED_MAX + 1];
  char last_text[LOCAL_TEXT_MAX];
};

/* ---- Small helpers ---- */

uint64_t maild_smtp_client_phase_timeout(maild_smtp_client_phase phase) {
  switch (phase) {
  case MAILD_SMTP_CLIENT_GREETING:
  case MAILD_SMTP_CLIENT_COMMAND:
  case MAILD_SMTP_CLIENT_MAIL:
    return 300000;
  case MAILD_SMTP_CLIENT_TLS:
    return 60000;
  case MAILD_SMTP_CLIENT_DATA:
  case MAILD_SMTP_CLIENT_QUIT:
    return 120000;
  case MAILD_SMTP_CLIENT_BODY:
    return 180000;
  case MAILD_SMTP_CLIENT_DATA_END:
    return 600000;
  default:
    return 0;
  }
}

static int out_add(maild_smtp_client *c, const void *p, size_t n) {
  return maild__buf_append(&c->out, &c->mem, p, n);
}

static int out_str(maild_smtp_client *c, const char *s) {
  return out_add(c, s, strlen(s));
}

/* Octets allowed in an address or parameter we put on a command line. */
static int word_ok(const char *s, size_t max, int empty_ok) {
  size_t n;

  if (s == NULL)
    return 0;
  for (n = 0; s[n] != '\0'; n++) {
    unsigned ch = (unsigned char)s[n];
    if (maild__ascii_is_ctl(ch) || ch == ' ' || ch == '<' || ch == '>')
      return 0;
  }
  return n <= max && (n > 0 || empty_ok);
}

static char *dup_str(maild_smtp_client *c, const char *s, int *err) {
  char *d;

  if (s == NULL)
    return NULL;
  d = maild__strndup(&c->mem, s, strlen(s));
  if (d == NULL)
    *err = MAILD_ERR_NOMEM;
  return d;
}

static void tx_free(maild_smtp_client *c, client_tx *tx) {
  size_t i;

  if (tx == NULL)
    return;
  for (i = 0; i < tx->n; i++) {
    maild__free(&c->mem, tx->rcpt ? tx->rcpt[i] : NULL);
    maild__free(&c->mem, tx->notify ? tx->notify[i] : NULL);
    maild__free(&c->mem, tx->orcpt ? tx->orcpt[i] : NULL);
  }
  maild__free(&c->mem, tx->rcpt);
  maild__free(&c->mem, tx->notify);
  maild__free(&c->mem, tx->orcpt);
  maild__free(&c->mem, tx->done);
  maild__free(&c->mem, tx->accepted);
  maild__free(&c->mem, tx->from);
  maild__free(&c->mem, tx->ret);
  maild__free(&c->mem, tx->envid);
  maild__free(&c->mem, tx->kept_text);
  maild__free(&c->mem, tx);
}

/* ---- Results ---- */

static void rcpt_result(maild_smtp_client *c, client_tx *tx, size_t i,
                        const maild_smtp_client_reply *r) {
  if (i >= tx->n || tx->done[i])
    return;
  tx->done[i] = 1;
  if (c->cb.on_rcpt != NULL)
    c->cb.on_rcpt(c, i, r, c->user_data);
}

/* Gives `r` to every recipient still without a result, then ends the
   message. The message is detached first, so a callback that submits the
   next one or terminates the session finds a consistent state. */
static void tx_finish(maild_smtp_client *c, const maild_smtp_client_reply *r,
                      int clean) {
  client_tx *tx = c->tx;
  size_t i;

  if (tx == NULL)
    return;
  c->tx = NULL;
  c->need_rset = !clean;
  for (i = 0; i < tx->n; i++)
    rcpt_result(c, tx, i, r);
  if (c->cb.on_message != NULL)
    c->cb.on_message(c, r, c->user_data);
  tx_free(c, tx);
}

static void set_last(maild_smtp_client *c, int code, const char *enh,
                     const char *text, size_t len, int local) {
  size_t n = len < sizeof(c->last_text) ? len : sizeof(c->last_text);

  c->last.code = code;
  snprintf(c->last_enh, sizeof(c->last_enh), "%s", enh ? enh : "");
  memcpy(c->last_text, text, n);
  c->last.enhanced = c->last_enh;
  c->last.text = c->last_text;
  c->last.text_len = n;
  c->last.local = local;
}

/* The session is over: the message in progress (or one waiting) gets
   `code` for every recipient without a result. */
static void fail_session(maild_smtp_client *c, int code, const char *enh,
                         const char *text, size_t len, int local) {
  if (c->state == ST_CLOSED)
    return;
  set_last(c, code, enh, text, len, local);
  c->state = ST_CLOSED;
  c->exp_head = c->exp_len = 0;
  if (c->tx != NULL) {
    maild_smtp_client_reply r = c->last;
    /* A permanent refusal of the session (554 greeting, 5xx HELO) is the
       server's word; anything local or 421 stays temporary. */
    tx_finish(c, &r, 0);
  }
}

static void fail_local(maild_smtp_client *c, int code, const char *enh,
                       const char *text) {
  fail_session(c, code, enh, text, strlen(text), 1);
}

static void fail_reply(maild_smtp_client *c, const maild_parsed_reply *p) {
  fail_session(c, p->code, p->enhanced, p->text, p->text_len, 0);
}

static maild_smtp_client_reply to_reply(const maild_parsed_reply *p) {
  maild_smtp_client_reply r;

  r.code = p->code;
  r.enhanced = p->enhanced;
  r.text = p->text;
  r.text_len = p->text_len;
  r.local = 0;
  return r;
}

/* ---- Construction ---- */

int maild_smtp_client_new(maild_smtp_client **out,
                          const maild_smtp_client_callbacks *cb,
                          void *user_data, const maild_options *opt,
                          const maild_mem *mem) {
  maild_mem m;
  maild_smtp_client *c;
  const char *host;
  int err = 0;

  if (out == NULL)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  c = maild__calloc(&m, 1, sizeof(*c));
  if (c == NULL)
    return MAILD_ERR_NOMEM;
  c->mem = m;
  if (cb != NULL)
    c->cb = *cb;
  c->user_data = user_data;
  host = maild_options_get_string(opt, MAILD_OPT_HOSTNAME);
  c->hostname = dup_str(c, host != NULL ? host : "localhost", &err);
#define U(name) maild_options_get_uint(opt, MAILD_OPT_##name)
  c->opt_starttls = U(STARTTLS) != 0;
  c->opt_tls_required = U(TLS_REQUIRED) != 0;
  c->opt_chunking = U(CHUNKING) != 0;
  c->opt_auth_plaintext = U(AUTH_PLAINTEXT) != 0;
  c->tls = U(TLS_ACTIVE) != 0;
  c->backlog = U(OUTPUT_BACKLOG);
#undef U
  maild__buf_init(&c->out, (size_t)c->backlog + OUT_SLACK);
  if (err == 0)
    err = maild_reply_parser_new(&c->parser, REPLY_LINE_MAX, REPLY_LINES_MAX,
                                 &c->mem);
  if (err != 0) {
    maild_smtp_client_del(c);
    return err;
  }
  c->state = ST_GREETING;
  *out = c;
  return 0;
}

static void wipe_free(maild_smtp_client *c, char *s) {
  if (s == NULL)
    return;
  maild__wipe(s, strlen(s));
  maild__free(&c->mem, s);
}

void maild_smtp_client_del(maild_smtp_client *c) {
  if (c == NULL)
    return;
  tx_free(c, c->tx);
  wipe_free(c, c->user);
  wipe_free(c, c->password);
  maild__free(&c->mem, c->hostname);
  maild__free(&c->mem, c->exp);
  maild__free(&c->mem, c->piece);
  maild_reply_parser_del(c->parser);
  maild__buf_free(&c->out, &c->mem);
  maild__free(&c->mem, c);
}

int maild_smtp_client_set_auth(maild_smtp_client *c, const char *user,
                               const char *password) {
  int err = 0;

  if (c == NULL || user == NULL || password == NULL || user[0] == '\0' ||
      password[0] == '\0' || strlen(user) > CRED_MAX ||
      strlen(password) > CRED_MAX)
    return MAILD_ERR_INVAL;
  if (c->state != ST_GREETING)
    return MAILD_ERR_STATE;
  wipe_free(c, c->user);
  wipe_free(c, c->password);
  c->user = dup_str(c, user, &err);
  c->password = dup_str(c, password, &err);
  return err;
}

/* ---- The reply queue ---- */

static int expect_push(maild_smtp_client *c, expect_kind kind, size_t index) {
  if (c->exp_head + c->exp_len == c->exp_cap) {
    if (c->exp_head > 0) {
      memmove(c->exp, c->exp + c->exp_head, c->exp_len * sizeof(*c->exp));
      c->exp_head = 0;
    } else {
      size_t cap = c->exp_cap ? 2 * c->exp_cap : 16;
      expect *e = maild__realloc(&c->mem, c->exp, cap * sizeof(*e));
      if (e == NULL)
        return MAILD_ERR_NOMEM;
      c->exp = e;
      c->exp_cap = cap;
    }
  }
  c->exp[c->exp_head + c->exp_len].kind = kind;
  c->exp[c->exp_head + c->exp_len].index = index;
  c->exp_len++;
  return 0;
}

/* ---- Commands ---- */

static int send_ehlo(maild_smtp_client *c, int esmtp) {
  int err = out_str(c, esmtp ? "EHLO " : "HELO ");

  if (err == 0)
    err = out_str(c, c->hostname);
  if (err == 0)
    err = out_str(c, "\r\n");
  c->state = esmtp ? ST_EHLO : ST_HELO;
  return err;
}

static int send_auth(maild_smtp_client *c) {
  size_t ul = strlen(c->user), pl = strlen(c->password);
  uint8_t plain[2 * CRED_MAX + 2];
  char b64[MAILD_BASE64_ENCODED_LEN(sizeof(plain)) + 1];
  maild_ssize n;
  int err;

  if (c->ext & MAILD_SMTP_EXT_AUTH_PLAIN) {
    /* RFC 4616: authzid (empty) NUL authcid NUL password. */
    plain[0] = '\0';
    memcpy(plain + 1, c->user, ul);
    plain[1 + ul] = '\0';
    memcpy(plain + 2 + ul, c->password, pl);
    n = maild_base64_encode(plain, ul + pl + 2, b64, sizeof(b64));
    maild__wipe(plain, sizeof(plain));
    if (n < 0)
      return (int)n;
    err = out_str(c, "AUTH PLAIN ");
    if (err == 0)
      err = out_add(c, b64, (size_t)n);
    maild__wipe(b64, sizeof(b64));
    if (err == 0)
      err = out_str(c, "\r\n");
    c->state = ST_AUTH;
    return err;
  }
  c->state = ST_AUTH_USER;
  return out_str(c, "AUTH LOGIN\r\n");
}

static int send_login_part(maild_smtp_client *c, const char *s) {
  char b64[MAILD_BASE64_ENCODED_LEN(CRED_MAX) + 1];
  maild_ssize n =
      maild_base64_encode((const uint8_t *)s, strlen(s), b64, sizeof(b64));
  int err;

  if (n < 0)
    return (int)n;
  err = out_add(c, b64, (size_t)n);
  maild__wipe(b64, sizeof(b64));
  return err == 0 ? out_str(c, "\r\n") : err;
}

static void become_ready(maild_smtp_client *c);

/* After EHLO/HELO (and again after TLS): TLS, then AUTH, then ready. */
static int after_hello(maild_smtp_client *c) {
  if (!c->tls && !c->tls_tried && c->opt_starttls &&
      (c->ext & MAILD_SMTP_EXT_STARTTLS)) {
    c->tls_tried = 1;
    c->state = ST_STARTTLS;
    return out_str(c, "STARTTLS\r\n");
  }
  if (!c->tls && c->opt_tls_required) {
    fail_local(c, 421, "4.7.10",
               (c->ext & MAILD_SMTP_EXT_STARTTLS) || c->tls_tried
                   ? "TLS is required and could not be started"
                   : "TLS is required and the server does not offer it");
    return 0;
  }
  if (c->user != NULL) {
    if (!c->tls && !c->opt_auth_plaintext) {
      fail_local(c, 421, "4.7.10", "AUTH is configured, but not without TLS");
      return 0;
    }
    if (!(c->ext & (MAILD_SMTP_EXT_AUTH_PLAIN | MAILD_SMTP_EXT_AUTH_LOGIN))) {
      fail_local(c, 421, "4.7.10",
                 "AUTH is configured and the server offers no PLAIN or LOGIN");
      return 0;
    }
    return send_auth(c);
  }
  become_ready(c);
  return 0;
}

/* One EHLO keyword line. */
static void parse_ehlo_line(maild_smtp_client *c, const char *p, size_t n) {
  size_t k = 0, i;

  while (k < n && p[k] != ' ' && p[k] != '=')
    k++;
#define IS(word) maild__ascii_caseeq(p, k, word)
  if (IS("PIPELINING"))
    c->ext |= MAILD_SMTP_EXT_PIPELINING;
  else if (IS("8BITMIME"))
    c->ext |= MAILD_SMTP_EXT_8BITMIME;
  else if (IS("SMTPUTF8"))
    c->ext |= MAILD_SMTP_EXT_SMTPUTF8;
  else if (IS("DSN"))
    c->ext |= MAILD_SMTP_EXT_DSN;
  else if (IS("STARTTLS"))
    c->ext |= MAILD_SMTP_EXT_STARTTLS;
  else if (IS("CHUNKING"))
    c->ext |= MAILD_SMTP_EXT_CHUNKING;
  else if (IS("ENHANCEDSTATUSCODES"))
    c->ext |= MAILD_SMTP_EXT_ENHANCEDSTATUSCODES;
  else if (IS("SIZE")) {
    uint64_t v = 0;
    c->ext |= MAILD_SMTP_EXT_SIZE;
    for (i = k + 1; i < n && p[i] >= '0' && p[i] <= '9'; i++)
      v = v > UINT64_MAX / 10 ? UINT64_MAX : v * 10 + (uint64_t)(p[i] - '0');
    c->size_limit = v;
  } else if (IS("AUTH")) {
    i = k;
    while (i < n) {
      size_t j;
      while (i < n && (p[i] == ' ' || p[i] == '='))
        i++;
      for (j = i; j < n && p[j] != ' '; j++)
        ;
      if (maild__ascii_caseeq(p + i, j - i, "PLAIN"))
        c->ext |= MAILD_SMTP_EXT_AUTH_PLAIN;
      else if (maild__ascii_caseeq(p + i, j - i, "LOGIN"))
        c->ext |= MAILD_SMTP_EXT_AUTH_LOGIN;
      i = j;
    }
  }
#undef IS
}

static void parse_ehlo(maild_smtp_client *c, const maild_parsed_reply *r) {
  const char *p = r->text, *end = r->text + r->text_len;
  int first = 1;

  c->ext = 0;
  c->size_limit = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
    if (!first) /* the first line is the server's name */
      parse_ehlo_line(c, p, n);
    first = 0;
    p += n + (nl != NULL);
  }
}

/* ---- Messages ---- */

static int add_param(maild_smtp_client *c, const char *name, const char *v) {
  int err = out_str(c, " ");

  if (err == 0)
    err = out_str(c, name);
  if (err == 0 && v != NULL) {
    err = out_str(c, "=");
    if (err == 0)
      err = out_str(c, v);
  }
  return err;
}

static int send_mail(maild_smtp_client *c) {
  client_tx *tx = c->tx;
  char num[24];
  int dsn = (c->ext & MAILD_SMTP_EXT_DSN) != 0;
  int err = out_str(c, "MAIL FROM:<");

  if (err == 0)
    err = out_str(c, tx->from);
  if (err == 0)
    err = out_str(c, ">");
  if (err == 0 && (c->ext & MAILD_SMTP_EXT_SIZE) && tx->size > 0) {
    snprintf(num, sizeof(num), "%llu", (unsigned long long)tx->size);
    err = add_param(c, "SIZE", num);
  }
  if (err == 0 && tx->body_8bit && (c->ext & MAILD_SMTP_EXT_8BITMIME))
    err = add_param(c, "BODY", "8BITMIME");
  if (err == 0 && tx->smtputf8)
    err = add_param(c, "SMTPUTF8", NULL);
  if (err == 0 && dsn && tx->ret != NULL)
    err = add_param(c, "RET", tx->ret);
  if (err == 0 && dsn && tx->envid != NULL)
    err = add_param(c, "ENVID", tx->envid);
  if (err == 0)
    err = out_str(c, "\r\n");
  return err == 0 ? expect_push(c, EXP_MAIL, 0) : err;
}

static int send_rcpt(maild_smtp_client *c, size_t i) {
  client_tx *tx = c->tx;
  int dsn = (c->ext & MAILD_SMTP_EXT_DSN) != 0;
  int err = out_str(c, "RCPT TO:<");

  if (err == 0)
    err = out_str(c, tx->rcpt[i]);
  if (err == 0)
    err = out_str(c, ">");
  if (err == 0 && dsn && tx->notify[i] != NULL)
    err = add_param(c, "NOTIFY", tx->notify[i]);
  if (err == 0 && dsn && tx->orcpt[i] != NULL)
    err = add_param(c, "ORCPT", tx->orcpt[i]);
  if (err == 0)
    err = out_str(c, "\r\n");
  return err == 0 ? expect_push(c, EXP_RCPT, i) : err;
}

static int send_data(maild_smtp_client *c) {
  int err = out_str(c, "DATA\r\n");

  c->tx->data_sent = 1;
  return err == 0 ? expect_push(c, EXP_DATA, 0) : err;
}

/* A local refusal of the whole message before anything was sent. */
static void tx_refuse(maild_smtp_client *c, int code, const char *enh,
                      const char *text) {
  maild_smtp_client_reply r = {code, enh, text, strlen(text), 1};

  tx_finish(c, &r, 1);
}

/* Starts the message that waits: checks what the server can take, then
   MAIL, the RCPTs and (pipelined) DATA. */
static int tx_start(maild_smtp_client *c) {
  client_tx *tx = c->tx;
  int pipe = (c->ext & MAILD_SMTP_EXT_PIPELINING) != 0;
  size_t i;
  int err;

  if (tx->smtputf8 && !(c->ext & MAILD_SMTP_EXT_SMTPUTF8)) {
    tx_refuse(c, 550, "5.6.7",
              "The message needs SMTPUTF8 and the server does not offer it");
    become_ready(c);
    return 0;
  }
  if (c->size_limit > 0 && tx->size > c->size_limit) {
    tx_refuse(c, 552, "5.3.4", "The message is larger than the server takes");
    become_ready(c);
    return 0;
  }
  tx->bdat = c->opt_chunking && pipe && (c->ext & MAILD_SMTP_EXT_CHUNKING);
  c->state = ST_TX;
  tx->stage = TX_WAIT;
  err = send_mail(c);
  if (!pipe)
    return err;
  for (i = 0; err == 0 && i < tx->n; i++)
    err = send_rcpt(c, i);
  tx->next_rcpt = tx->n;
  if (err == 0 && !tx->bdat)
    err = send_data(c);
  return err;
}

static void become_ready(maild_smtp_client *c) {
  int err = 0;

  c->state = ST_READY;
  if (c->tx == NULL && !c->quit_wanted && c->cb.on_ready != NULL) {
    c->cb.on_ready(c, c->user_data);
    if (c->state != ST_READY)
      return;
  }
  if (c->tx != NULL) {
    if (c->need_rset) {
      c->need_rset = 0;
      c->state = ST_RSET;
      err = out_str(c, "RSET\r\n");
    } else {
      err = tx_start(c);
    }
  } else if (c->quit_wanted) {
    c->state = ST_QUIT;
    err = out_str(c, "QUIT\r\n");
  }
  if (err != 0)
    fail_local(c, 421, "4.3.0", "Out of memory");
}

int maild_smtp_client_submit(maild_smtp_client *c,
                             const maild_smtp_client_message *m) {
  client_tx *tx;
  size_t i;
  int err = 0;

  if (c == NULL || m == NULL || m->nrcpts == 0 || m->rcpts == NULL ||
      !word_ok(m->from, PATH_MAX_LEN, 1) ||
      (m->ret != NULL && !word_ok(m->ret, PARAM_MAX_LEN, 0)) ||
      (m->envid != NULL && !word_ok(m->envid, PARAM_MAX_LEN, 0)))
    return MAILD_ERR_INVAL;
  for (i = 0; i < m->nrcpts; i++) {
    const maild_smtp_client_rcpt *r = &m->rcpts[i];
    if (!word_ok(r->address, PATH_MAX_LEN, 0) ||
        (r->notify != NULL && !word_ok(r->notify, PARAM_MAX_LEN, 0)) ||
        (r->orcpt != NULL && !word_ok(r->orcpt, PARAM_MAX_LEN, 0)))
      return MAILD_ERR_INVAL;
  }
  if (c->tx != NULL || c->quit_wanted || c->state == ST_QUIT ||
      c->state == ST_CLOSED)
    return MAILD_ERR_STATE;
  tx = maild__calloc(&c->mem, 1, sizeof(*tx));
  if (tx == NULL)
    return MAILD_ERR_NOMEM;
  tx->rcpt = maild__calloc(&c->mem, m->nrcpts, sizeof(char *));
  tx->notify = maild__calloc(&c->mem, m->nrcpts, sizeof(char *));
  tx->orcpt = maild__calloc(&c->mem, m->nrcpts, sizeof(char *));
  tx->done = maild__calloc(&c->mem, m->nrcpts, sizeof(int));
  tx->accepted = maild__calloc(&c->mem, m->nrcpts, sizeof(int));
  if (tx->rcpt == NULL || tx->notify == NULL || tx->orcpt == NULL ||
      tx->done == NULL || tx->accepted == NULL)
    err = MAILD_ERR_NOMEM;
  tx->n = m->nrcpts;
  for (i = 0; err == 0 && i < m->nrcpts; i++) {
    tx->rcpt[i] = dup_str(c, m->rcpts[i].address, &err);
    tx->notify[i] = dup_str(c, m->rcpts[i].notify, &err);
    tx->orcpt[i] = dup_str(c, m->rcpts[i].orcpt, &err);
  }
  if (err == 0) {
    tx->from = dup_str(c, m->from, &err);
    tx->ret = dup_str(c, m->ret, &err);
    tx->envid = dup_str(c, m->envid, &err);
  }
  if (err != 0) {
    tx_free(c, tx);
    return err;
  }
  tx->size = m->size;
  tx->body_8bit = m->body_8bit != 0;
  tx->smtputf8 = m->smtputf8 != 0;
  tx->last_octet = -1;
  maild_dot_encoder_init(&tx->enc);
  c->tx = tx;
  if (c->state == ST_READY && !c->in_callback)
    become_ready(c);
  return 0;
}

int maild_smtp_client_quit(maild_smtp_client *c) {
  if (c == NULL || c->quit_wanted || c->state == ST_QUIT ||
      c->state == ST_CLOSED)
    return MAILD_ERR_STATE;
  c->quit_wanted = 1;
  if (c->state == ST_READY && c->tx == NULL && !c->in_callback) {
    c->state = ST_QUIT;
    if (out_str(c, "QUIT\r\n") != 0)
      fail_local(c, 421, "4.3.0", "Out of memory");
  }
  return 0;
}

/* ---- Replies in a message ---- */

static void keep_reply(maild_smtp_client *c, const maild_parsed_reply *p) {
  client_tx *tx = c->tx;

  tx->kept_code = p->code;
  snprintf(tx->kept_enh, sizeof(tx->kept_enh), "%s", p->enhanced);
  maild__free(&c->mem, tx->kept_text);
  tx->kept_len = 0;
  tx->kept_text = maild__malloc(&c->mem, p->text_len + 1);
  if (tx->kept_text != NULL) {
    memcpy(tx->kept_text, p->text, p->text_len);
    tx->kept_len = p->text_len;
  }
}

static maild_smtp_client_reply kept(const client_tx *tx) {
  maild_smtp_client_reply r = {tx->kept_code, tx->kept_enh,
                               tx->kept_text ? tx->kept_text : "", tx->kept_len,
                               0};
  return r;
}

/* Every envelope reply is in: what next. */
static int envelope_done(maild_smtp_client *c) {
  client_tx *tx = c->tx;

  if (tx->mail_failed || tx->naccepted == 0) {
    maild_smtp_client_reply r = kept(tx);
    /* With DATA pipelined its refusal (503/554) arrived already. */
    tx_finish(c, &r, !tx->data_sent);
    become_ready(c);
    return 0;
  }
  if (tx->bdat) {
    tx->stage = TX_BODY;
    return 0;
  }
  return 0; /* DATA's reply decides */
}

static int on_tx_reply(maild_smtp_client *c, const maild_parsed_reply *p,
                       expect e) {
  client_tx *tx = c->tx;
  maild_smtp_client_reply r = to_reply(p);
  int ok = p->code >= 200 && p->code < 300;
  int pipe = (c->ext & MAILD_SMTP_EXT_PIPELINING) != 0;

  switch (e.kind) {
  case EXP_MAIL:
    if (!ok) {
      tx->mail_failed = 1;
      keep_reply(c, p);
      if (!pipe) { /* nothing else was sent */
        tx_finish(c, &r, 1);
        become_ready(c);
        return 0;
      }
    } else if (!pipe) {
      tx->next_rcpt = 1;
      return send_rcpt(c, 0);
    }
    break;
  case EXP_RCPT:
    if (tx->mail_failed) {
      maild_smtp_client_reply k = kept(tx);
      rcpt_result(c, tx, e.index, &k);
    } else if (ok) {
      tx->accepted[e.index] = 1;
      tx->naccepted++;
    } else {
      rcpt_result(c, tx, e.index, &r);
      if (tx->naccepted == 0)
        keep_reply(c, p); /* the message's reply if none is accepted */
    }
    if (!pipe && tx->next_rcpt < tx->n)
      return send_rcpt(c, tx->next_rcpt++);
    if (!pipe && tx->naccepted > 0 && !tx->bdat)
      return send_data(c);
    break;
  case EXP_DATA:
    if (p->code == 354) {
      if (tx->mail_failed || tx->naccepted == 0) {
        /* A server that says 354 with no recipient: end the empty
           message and ignore its answer. */
        if (expect_push(c, EXP_IGNORE, 0) != 0 || out_str(c, ".\r\n") != 0)
          return MAILD_ERR_NOMEM;
        break;
      }
      tx->stage = TX_BODY;
      return 0;
    }
    if (!tx->mail_failed && tx->naccepted > 0) {
      tx_finish(c, &r, 0); /* RSET before the next: the envelope may stand */
      become_ready(c);
      return 0;
    }
    break;
  case EXP_END:
    tx_finish(c, &r, 1);
    become_ready(c);
    return 0;
  case EXP_IGNORE:
    break;
  }
  /* Every envelope reply is in once nothing more is expected. */
  if (c->exp_len == 0 && tx->stage == TX_WAIT)
    return envelope_done(c);
  return 0;
}

/* A BDAT reply (no queue entry: counted). */
static void on_bdat_reply(maild_smtp_client *c, const maild_parsed_reply *p) {
  client_tx *tx = c->tx;

  tx->bdat_due--;
  if ((p->code < 200 || p->code >= 300) && !tx->bdat_failed) {
    tx->bdat_failed = 1;
    keep_reply(c, p);
  }
  if (tx->bdat_due == 0 && tx->bdat_last_sent) {
    maild_smtp_client_reply r = tx->bdat_failed ? kept(tx) : to_reply(p);
    tx_finish(c, &r, !tx->bdat_failed);
    become_ready(c);
  }
}

/* ---- Replies in the session part ---- */

static int on_session_reply(maild_smtp_client *c, const maild_parsed_reply *p) {
  int ok = p->code >= 200 && p->code < 300;

  switch (c->state) {
  case ST_GREETING:
    if (p->code != 220) {
      fail_reply(c, p); /* 554: no service here */
      return 0;
    }
    return send_ehlo(c, 1);
  case ST_EHLO:
    if (ok) {
      parse_ehlo(c, p);
      return after_hello(c);
    }
    if (p->code == 421) {
      fail_reply(c, p);
      return 0;
    }
    c->ext = 0;
    return send_ehlo(c, 0); /* RFC 5321 3.2: fall back to HELO */
  case ST_HELO:
    if (!ok) {
      fail_reply(c, p);
      return 0;
    }
    c->ext = 0;
    return after_hello(c);
  case ST_STARTTLS:
    if (p->code == 220) {
      c->state = ST_TLS;
      maild_reply_parser_reset(c->parser);
      if (c->cb.on_starttls == NULL || c->cb.on_starttls(c, c->user_data) != 0)
        fail_local(c, 421, "4.7.0", "TLS could not be started");
      return 0;
    }
    return after_hello(c); /* refused: plaintext, unless TLS is required */
  case ST_AUTH:
  case ST_AUTH_PASS:
    if (p->code == 235) {
      become_ready(c);
      return 0;
    }
    fail_reply(c, p);
    return 0;
  case ST_AUTH_USER:
    if (p->code != 334) {
      fail_reply(c, p);
      return 0;
    }
    c->state = ST_AUTH_PASS; /* the next 334 asks for the password */
    if (send_login_part(c, c->user) != 0)
      return MAILD_ERR_NOMEM;
    return 0;
  case ST_RSET:
    if (!ok) {
      fail_reply(c, p);
      return 0;
    }
    become_ready(c);
    return 0;
  case ST_QUIT:
    set_last(c, p->code, p->enhanced, p->text, p->text_len, 0);
    c->state = ST_CLOSED;
    return 0;
  default:
    return 0;
  }
}

/* AUTH LOGIN's second 334 (password) arrives in ST_AUTH_PASS. */
static int on_auth_pass_prompt(maild_smtp_client *c,
                               const maild_parsed_reply *p) {
  if (p->code != 334)
    return on_session_reply(c, p);
  c->state = ST_AUTH;
  return send_login_part(c, c->password);
}

static int on_reply(maild_smtp_client *c, const maild_parsed_reply *p) {
  if (p->code == 421 && c->state != ST_QUIT) {
    fail_reply(c, p); /* the server is closing the channel */
    return 0;
  }
  if (c->state == ST_TX) {
    client_tx *tx = c->tx;
    if (c->exp_len > 0) {
      expect e = c->exp[c->exp_head];
      c->exp_head++;
      c->exp_len--;
      if (c->exp_len == 0)
        c->exp_head = 0;
      return on_tx_reply(c, p, e);
    }
    if (tx != NULL && tx->bdat_due > 0) {
      on_bdat_reply(c, p);
      return 0;
    }
  } else if (c->state == ST_AUTH_PASS) {
    return on_auth_pass_prompt(c, p);
  } else if (c->state != ST_READY && c->state != ST_TLS &&
             c->state != ST_CLOSED) {
    return on_session_reply(c, p);
  }
  fail_local(c, 421, "4.5.0", "The server sent a reply nobody asked for");
  return 0;
}

maild_ssize maild_smtp_client_recv(maild_smtp_client *c, const uint8_t *in,
                                   size_t len) {
  size_t used = 0;

  if (c == NULL || (in == NULL && len > 0))
    return MAILD_ERR_INVAL;
  c->in_callback = 1;
  while (used < len && c->state != ST_CLOSED) {
    maild_parsed_reply r;
    maild_ssize n;
    int err;
    if (c->state == ST_TLS) {
      /* RFC 3207 5 / TESTPLAN Q8: nothing may follow the 220 in the
         clear; it could be an attacker's injection. */
      fail_local(c, 421, "4.7.0",
                 "The server sent data after its 220 to STARTTLS");
      break;
    }
    n = maild_reply_parser_feed(c->parser, in + used, len - used, &r);
    if (n < 0) {
      if (n == MAILD_ERR_NOMEM) {
        fail_local(c, 421, "4.3.0", "Out of memory");
        c->in_callback = 0;
        return MAILD_ERR_NOMEM;
      }
      fail_local(c, 421, "4.5.0", "The server's reply is malformed");
      break;
    }
    used += (size_t)n;
    if (r.code == 0)
      continue;
    err = on_reply(c, &r);
    if (err != 0) {
      fail_local(c, 421, "4.3.0", "Out of memory");
      c->in_callback = 0;
      return err;
    }
  }
  c->in_callback = 0;
  /* A message submitted, or QUIT asked, from a callback. */
  if (c->state == ST_READY && (c->tx != NULL || c->quit_wanted))
    become_ready(c);
  return c->state == ST_CLOSED ? (maild_ssize)len : (maild_ssize)used;
}

/* ---- The body ---- */

/* CRLF line ends for BDAT: a bare LF gets its CR, a bare CR its LF. */
static size_t crlf_copy(client_tx *tx, const uint8_t *in, size_t n,
                        uint8_t *out) {
  size_t i, w = 0;

  for (i = 0; i < n; i++) {
    uint8_t ch = in[i];
    if (tx->last_octet == '\r' && ch != '\n')
      out[w++] = '\n';
    if (ch == '\n' && tx->last_octet != '\r')
      out[w++] = '\r';
    out[w++] = ch;
    tx->last_octet = ch;
  }
  return w;
}

/* Pulls body pieces while the output has room. */
static int pump_body(maild_smtp_client *c) {
  client_tx *tx = c->tx;

  if (c->piece == NULL) {
    c->piece = maild__malloc(&c->mem, 3 * BODY_PIECE);
    if (c->piece == NULL)
      return MAILD_ERR_NOMEM;
  }
  while (tx->stage == TX_BODY && !tx->deferred &&
         maild__buf_used(&c->out) < c->backlog) {
    size_t got = 0;
    int rc = c->cb.on_read != NULL
                 ? c->cb.on_read(c, c->piece, BODY_PIECE, &got, c->user_data)
                 : 0;
    uint8_t *dst;
    int err = 0;
    if (c->tx != tx || c->state == ST_CLOSED)
      return 0; /* the callback ended the session */
    if (rc == MAILD_ERR_DEFER) {
      tx->deferred = 1;
      return 0;
    }
    if (rc != 0 || got > BODY_PIECE) {
      fail_local(c, 451, "4.3.0", "The message could not be read");
      return 0;
    }
    if (got == 0) {
      if (tx->bdat) {
        char line[48];
        const char *tail = "";
        size_t extra = 0;
        if (tx->last_octet == '\r')
          tail = "\n", extra = 1;
        else if (tx->last_octet != '\n' && tx->last_octet != -1)
          tail = "\r\n", extra = 2;
        snprintf(line, sizeof(line), "BDAT %zu LAST\r\n", extra);
        err = out_str(c, line);
        if (err == 0)
          err = out_str(c, tail);
        tx->bdat_due++;
        tx->bdat_last_sent = 1;
      } else {
        uint8_t end[MAILD_DOT_END_MAX];
        size_t n = maild_dot_encode_end(&tx->enc, end);
        err = out_add(c, end, n);
        if (err == 0)
          err = expect_push(c, EXP_END, 0);
      }
      tx->stage = TX_END;
      return err;
    }
    if (tx->bdat) {
      char line[48];
      uint8_t *tmp = c->piece + BODY_PIECE;
      size_t w = crlf_copy(tx, c->piece, got, tmp);
      snprintf(line, sizeof(line), "BDAT %zu\r\n", w);
      err = out_str(c, line);
      if (err == 0)
        err = out_add(c, tmp, w);
      tx->bdat_due++;
    } else {
      size_t consumed = 0, w;
      dst = maild__buf_reserve(&c->out, &c->mem, 2 * got, &err);
      if (dst == NULL)
        return err;
      w = maild_dot_encode(&tx->enc, c->piece, got, dst, 2 * got, &consumed);
      maild__buf_commit(&c->out, w);
    }
    if (err != 0)
      return err;
  }
  return 0;
}

int maild_smtp_client_resume(maild_smtp_client *c) {
  if (c == NULL || c->tx == NULL || !c->tx->deferred)
    return MAILD_ERR_STATE;
  c->tx->deferred = 0;
  return 0;
}

maild_ssize maild_smtp_client_send(maild_smtp_client *c, const uint8_t **data) {
  size_t n;

  if (c == NULL || data == NULL)
    return MAILD_ERR_INVAL;
  maild__buf_consume(&c->out, c->out_taken);
  c->out_taken = 0;
  if (c->state == ST_TX && c->tx != NULL && c->tx->stage == TX_BODY) {
    int err;
    c->in_callback = 1;
    err = pump_body(c);
    c->in_callback = 0;
    if (err != 0) {
      fail_local(c, 421, "4.3.0", "Out of memory");
      return err;
    }
  }
  n = maild__buf_used(&c->out);
  *data = n > 0 ? maild__buf_peek(&c->out) : NULL;
  c->out_taken = n;
  return (maild_ssize)n;
}

/* ---- State ---- */

int maild_smtp_client_want_read(const maild_smtp_client *c) {
  return c != NULL && c->state != ST_CLOSED && c->state != ST_TLS;
}

int maild_smtp_client_want_write(const maild_smtp_client *c) {
  if (c == NULL)
    return 0;
  if (maild__buf_used(&c->out) > c->out_taken)
    return 1;
  return c->state == ST_TX && c->tx != NULL && c->tx->stage == TX_BODY &&
         !c->tx->deferred;
}

maild_smtp_client_phase
maild_smtp_client_get_phase(const maild_smtp_client *c) {
  if (c == NULL)
    return MAILD_SMTP_CLIENT_CLOSED;
  switch (c->state) {
  case ST_GREETING:
    return MAILD_SMTP_CLIENT_GREETING;
  case ST_TLS:
    return MAILD_SMTP_CLIENT_TLS;
  case ST_READY:
    return MAILD_SMTP_CLIENT_IDLE;
  case ST_QUIT:
    return MAILD_SMTP_CLIENT_QUIT;
  case ST_CLOSED:
    return MAILD_SMTP_CLIENT_CLOSED;
  case ST_TX:
    if (c->tx == NULL)
      return MAILD_SMTP_CLIENT_IDLE;
    if (c->tx->stage == TX_BODY)
      return MAILD_SMTP_CLIENT_BODY;
    if (c->tx->stage == TX_END)
      return MAILD_SMTP_CLIENT_DATA_END;
    if (c->exp_len > 0 && c->exp[c->exp_head].kind == EXP_DATA)
      return MAILD_SMTP_CLIENT_DATA;
    return MAILD_SMTP_CLIENT_MAIL;
  default:
    return MAILD_SMTP_CLIENT_COMMAND;
  }
}

int maild_smtp_client_tls_started(maild_smtp_client *c) {
  if (c == NULL || c->state != ST_TLS)
    return MAILD_ERR_STATE;
  c->tls = 1;
  c->ext = 0; /* RFC 3207 4.2: forget what was learnt in the clear */
  c->size_limit = 0;
  if (send_ehlo(c, 1) != 0)
    fail_local(c, 421, "4.3.0", "Out of memory");
  return 0;
}

int maild_smtp_client_terminate(maild_smtp_client *c, int code,
                                const char *enhanced, const char *text) {
  if (c == NULL || code < 400 || code > 599 ||
      (enhanced != NULL && (maild_enhanced_check(enhanced) != 0 ||
                            enhanced[0] - '0' != code / 100)))
    return MAILD_ERR_INVAL;
  fail_local(c, code, enhanced, text != NULL ? text : "");
  return 0;
}

unsigned maild_smtp_client_extensions(const maild_smtp_client *c) {
  return c != NULL ? c->ext : 0;
}

uint64_t maild_smtp_client_size_limit(const maild_smtp_client *c) {
  return c != NULL ? c->size_limit : 0;
}

int maild_smtp_client_is_tls(const maild_smtp_client *c) {
  return c != NULL && c->tls;
}

const maild_smtp_client_reply *
maild_smtp_client_last_error(const maild_smtp_client *c) {
  return c != NULL && c->state == ST_CLOSED ? &c->last : NULL;
}
