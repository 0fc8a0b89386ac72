/*
 * SMTP server engine: the session object, the input loop, output and
 * deferred decisions (RFC 5321; PIPELINING per RFC 2920).
 *
 * Input is processed one unit at a time (a command line, or a piece of a
 * body) and only while nothing stops it: a pending decision, the TLS
 * handshake, or an output backlog above its cap. Because every unit is
 * answered before the next is read, replies leave in command order however
 * the client pipelines, and a deferred answer simply pauses the loop; the
 * caller keeps the octets recv() did not consume and offers them again.
 */
#include "proto/smtp_server_int.h"

#include "core/mem.h"
#include "maild/error.h"
#include "maild/reply.h"

#include <string.h>

/* Room for replies queued past the backlog cap by the unit in progress. */
#define OUT_SLACK   (64u * 1024u)
#define OUT_INITIAL 1024u

static int copy_options(maild_smtp_server *s, const maild_options *opt) {
  const char *host = maild_options_get_string(opt, MAILD_OPT_HOSTNAME);
  const char *mechs = maild_options_get_string(opt, MAILD_OPT_AUTH_MECHANISMS);

  if (host == NULL)
    host = "localhost";
  s->hostname = maild__strndup(&s->mem, host, strlen(host));
  if (s->hostname == NULL)
    return MAILD_ERR_NOMEM;
  if (mechs != NULL && mechs[0] != '\0') {
    s->auth_mechs = maild__strndup(&s->mem, mechs, strlen(mechs));
    if (s->auth_mechs == NULL)
      return MAILD_ERR_NOMEM;
  }
#define U(name) maild_options_get_uint(opt, MAILD_OPT_##name)
  s->max_command_line = U(MAX_COMMAND_LINE);
  s->max_params_extra = U(MAX_PARAMS_EXTRA);
  s->max_auth_line = U(MAX_AUTH_LINE);
  s->max_recipients = U(MAX_RECIPIENTS);
  s->max_message_size = U(MAX_MESSAGE_SIZE);
  s->max_errors = U(MAX_ERRORS);
  s->max_junk = U(MAX_JUNK_COMMANDS);
  s->max_received = U(MAX_RECEIVED_HEADERS);
  s->output_backlog = U(OUTPUT_BACKLOG);
  s->opt_starttls = U(STARTTLS) != 0;
  s->tls = U(TLS_ACTIVE) != 0;
  s->opt_auth_plaintext = U(AUTH_PLAINTEXT) != 0;
  s->opt_smtputf8 = U(SMTPUTF8) != 0;
  s->opt_chunking = U(CHUNKING) != 0;
  s->opt_dsn = U(DSN) != 0;
  s->opt_lenient_spaces = U(LENIENT_SPACES) != 0;
#undef U
  return 0;
}

/* The line reader must hold the longest line any command may have; each
   command then checks its own limit. */
static size_t reader_limit(const maild_smtp_server *s) {
  uint64_t max = s->max_command_line + s->max_params_extra;
  if (s->auth_mechs != NULL && s->max_auth_line > max)
    max = s->max_auth_line;
  return (size_t)max;
}

static int session_init(maild_smtp_server *s, const maild_options *opt) {
  int err = copy_options(s, opt);

  if (err != 0)
    return err;
  err = maild_linereader_new(&s->lr, reader_limit(s), &s->mem);
  if (err != 0)
    return err;
  maild__buf_init(&s->out, (size_t)s->output_backlog + OUT_SLACK);
  if (maild__buf_reserve(&s->out, &s->mem, OUT_INITIAL, &err) == NULL)
    return err;
  return 0;
}

int maild_smtp_server_new(maild_smtp_server **out,
                          const maild_smtp_server_callbacks *cb,
                          void *user_data, const maild_options *opt,
                          const maild_mem *mem) {
  maild_mem m;
  maild_smtp_server *s;
  int err;

  if (out == NULL)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  s = maild__calloc(&m, 1, sizeof(*s));
  if (s == NULL)
    return MAILD_ERR_NOMEM;
  s->mem = m;
  if (cb != NULL)
    s->cb = *cb;
  s->user_data = user_data;
  err = session_init(s, opt);
  if (err == 0 && !maild_options_get_uint(opt, MAILD_OPT_DEFER_GREETING))
    err = maild_smtp_server_greet(s, NULL);
  if (err != 0) {
    maild_smtp_server_del(s);
    return err;
  }
  *out = s;
  return 0;
}

void maild__smtp_tx_free(maild_smtp_server *s, smtp_tx *tx) {
  maild__free(&s->mem, tx);
}

void maild_smtp_server_del(maild_smtp_server *s) {
  if (s == NULL)
    return;
  maild__smtp_tx_free(s, s->tx);
  maild__smtp_tx_free(s, s->pending_tx);
  maild__free(&s->mem, s->pending_helo);
  maild__free(&s->mem, s->helo_name);
  maild__free(&s->mem, s->tls_info);
  maild__free(&s->mem, s->auth_mech);
  maild__free(&s->mem, s->hostname);
  maild__free(&s->mem, s->auth_mechs);
  maild_linereader_del(s->lr);
  maild__buf_free(&s->out, &s->mem);
  maild__free(&s->mem, s);
}

const char *maild__smtp_host(const maild_smtp_server *s) {
  return s->hostname;
}

/* Ends the open transaction without on_data_end. */
void maild__smtp_tx_end(maild_smtp_server *s, maild_smtp_abort why) {
  smtp_tx *tx = s->tx;

  if (tx == NULL)
    return;
  s->tx = NULL;
  if (s->input == IN_DATA || s->input == IN_BDAT)
    s->input = IN_COMMAND;
  if (s->cb.on_tx_abort != NULL)
    s->cb.on_tx_abort(s, why, s->user_data);
  maild__smtp_tx_free(s, tx);
}

static void drop_pending(maild_smtp_server *s) {
  maild__smtp_tx_free(s, s->pending_tx);
  s->pending_tx = NULL;
  maild__free(&s->mem, s->pending_helo);
  s->pending_helo = NULL;
  s->pending = PEND_NONE;
}

/* Queues one reply. Fails only when the output cannot grow, which ends
   the session: a client must never miss a reply and carry on. */
static int queue_reply(maild_smtp_server *s, int code, const char *enh,
                       const char *text) {
  maild_ssize need = maild_reply_format(NULL, 0, code, enh, text);
  uint8_t *dst;
  int err = 0;

  if (need < 0)
    return (int)need;
  dst = maild__buf_reserve(&s->out, &s->mem, (size_t)need, &err);
  if (dst == NULL) {
    s->closing = 1;
    drop_pending(s);
    return MAILD_ERR_NOMEM;
  }
  maild_reply_format((char *)dst, (size_t)need, code, enh, text);
  maild__buf_commit(&s->out, (size_t)need);
  return 0;
}

int maild__smtp_close(maild_smtp_server *s, int code, const char *enh,
                      const char *text) {
  int err = 0;

  drop_pending(s);
  maild__smtp_tx_end(s, MAILD_SMTP_ABORT_CLOSE);
  if (code != 0)
    err = queue_reply(s, code, enh, text);
  s->closing = 1;
  return err;
}

/* Counts one more error; reaching MAX_ERRORS ends the session with 421
   (Postfix's hard limit). */
static int count_error(maild_smtp_server *s) {
  if (++s->errors < s->max_errors)
    return 0;
  return maild__smtp_close(s, 421, "4.7.0", "Error: too many errors");
}

/* Queues a reply to a client command; error replies count toward the
   error limit. */
int maild__smtp_reply(maild_smtp_server *s, int code, const char *enh,
                      const char *text) {
  int err = queue_reply(s, code, enh, text);

  if (err != 0 || code < 400 || s->closing)
    return err;
  return count_error(s);
}

/* The reply to a command that moves no mail (NOOP, RSET, VRFY, HELP): past
   MAX_JUNK_COMMANDS of them each counts as an error too, so they cannot
   hold a connection open for ever. */
int maild__smtp_junk_reply(maild_smtp_server *s, int code, const char *enh,
                           const char *text) {
  int err = maild__smtp_reply(s, code, enh, text);

  if (err != 0 || s->closing || ++s->junk <= s->max_junk)
    return err;
  return count_error(s);
}

/* Turns the embedder's reply into one that is safe to send: a code outside
   200..599 becomes a local error (never an accidental acceptance), and an
   enhanced code that is missing or of the wrong class is replaced by the
   default's when the classes agree, else by "class.0.0" (RFC 3463). */
void maild__smtp_normalize(const maild_reply *r, int def_code,
                           const char *def_enh, const char *def_text,
                           maild_reply *out, char enh_buf[8]) {
  int cls;

  if (r == NULL || r->code == 0) {
    out->code = def_code;
    out->enhanced = def_enh;
    out->text = def_text;
    return;
  }
  if (r->code < 200 || r->code > 599) {
    out->code = 451;
    out->enhanced = "4.3.0";
    out->text = "Error: local error";
    return;
  }
  cls = r->code / 100;
  out->code = r->code;
  out->enhanced = r->enhanced;
  if (out->enhanced == NULL || maild_enhanced_check(out->enhanced) != 0 ||
      out->enhanced[0] != '0' + cls) {
    enh_buf[0] = (char)('0' + cls);
    memcpy(enh_buf + 1, ".0.0", 5);
    out->enhanced =
        def_enh != NULL && def_enh[0] == '0' + cls ? def_enh : enh_buf;
  }
  out->text = r->text;
  if (out->text == NULL)
    out->text = cls == def_code / 100 ? def_text
                : cls == 5            ? "Rejected"
                : cls == 4            ? "Try again later"
                                      : "Ok";
}

/* Sends the embedder's reply `r`, or the default one; returns the code
   sent (the caller accepts or refuses by its class) or a negative error. */
int maild__smtp_answer(maild_smtp_server *s, const maild_reply *r, int def_code,
                       const char *def_enh, const char *def_text) {
  maild_reply out;
  char enh[8];
  int err;

  maild__smtp_normalize(r, def_code, def_enh, def_text, &out, enh);
  err = maild__smtp_reply(s, out.code, out.enhanced, out.text);
  return err < 0 ? err : out.code;
}

/* A callback gave a decision now, deferred it, or failed. */
int maild__smtp_decide(maild_smtp_server *s, smtp_pending kind, int rc,
                       maild_reply *r) {
  if (rc == MAILD_ERR_DEFER) {
    s->pending = kind;
    return 0;
  }
  if (rc < 0)
    return maild__smtp_close(s, 421, "4.3.0", "Error: local error");
  return maild__smtp_finish(s, kind, r);
}

static int pregreet(maild_smtp_server *s) {
  maild__buf_clear(&s->out);
  s->greeted = 1;
  return maild__smtp_close(s, 554, "5.5.1",
                           "Error: client spoke before the greeting");
}

static int can_consume(const maild_smtp_server *s) {
  return !s->closing && s->pending == PEND_NONE && s->input != IN_TLS &&
         maild__buf_used(&s->out) <= s->output_backlog;
}

static maild_ssize line_input(maild_smtp_server *s, const uint8_t *in,
                              size_t len) {
  maild_line line;
  maild_ssize n = maild_linereader_feed(s->lr, in, len, &line);
  int err;

  if (n < 0 || line.data == NULL)
    return n;
  if (s->input == IN_AUTH)
    err = maild__smtp_auth_line(s, &line);
  else
    err = maild__smtp_command(s, &line);
  return err < 0 ? err : n;
}

static maild_ssize input_unit(maild_smtp_server *s, const uint8_t *in,
                              size_t len) {
  switch (s->input) {
  case IN_DATA:
    return maild__smtp_data_input(s, in, len);
  case IN_BDAT:
  case IN_BDAT_SKIP:
    return maild__smtp_bdat_input(s, in, len);
  case IN_TLS:
    return (maild_ssize)len;
  case IN_COMMAND:
  case IN_AUTH:
  default:
    return line_input(s, in, len);
  }
}

maild_ssize maild_smtp_server_recv(maild_smtp_server *s, const uint8_t *in,
                                   size_t len) {
  size_t off = 0;
  maild_ssize n;

  if (s == NULL || (in == NULL && len > 0))
    return MAILD_ERR_INVAL;
  if (s->closing)
    return (maild_ssize)len;
  if (len > 0 && !s->greeting_sent) {
    n = pregreet(s);
    return n < 0 ? n : (maild_ssize)len;
  }
  while (off < len && can_consume(s)) {
    n = input_unit(s, in + off, len - off);
    if (n < 0)
      return (n == MAILD_ERR_NOMEM && off > 0 && !s->closing) ? (maild_ssize)off
                                                              : n;
    off += (size_t)n;
  }
  /* After QUIT or 421 the rest is ignored; after STARTTLS it is plaintext
     that must never be executed (RFC 3207 4.2). */
  if (s->closing || s->input == IN_TLS)
    return (maild_ssize)len;
  return (maild_ssize)off;
}

maild_ssize maild_smtp_server_send(maild_smtp_server *s, const uint8_t **data) {
  size_t n;

  if (s == NULL || data == NULL)
    return MAILD_ERR_INVAL;
  n = maild__buf_used(&s->out);
  *data = maild__buf_peek(&s->out);
  maild__buf_consume(&s->out, n);
  if (n > 0 && s->greeted)
    s->greeting_sent = 1;
  return (maild_ssize)n;
}

int maild_smtp_server_want_read(const maild_smtp_server *s) {
  return s != NULL && can_consume(s);
}

int maild_smtp_server_want_write(const maild_smtp_server *s) {
  return s != NULL && maild__buf_used(&s->out) > 0;
}

int maild_smtp_server_closing(const maild_smtp_server *s) {
  return s == NULL || s->closing;
}

maild_smtp_phase maild_smtp_server_phase(const maild_smtp_server *s) {
  if (s->closing)
    return MAILD_SMTP_PHASE_CLOSING;
  if (s->pending != PEND_NONE)
    return MAILD_SMTP_PHASE_DECISION;
  if (!s->greeted)
    return MAILD_SMTP_PHASE_GREETING;
  switch (s->input) {
  case IN_DATA:
    return MAILD_SMTP_PHASE_DATA;
  case IN_BDAT:
  case IN_BDAT_SKIP:
    return MAILD_SMTP_PHASE_BDAT;
  case IN_AUTH:
    return MAILD_SMTP_PHASE_AUTH;
  case IN_TLS:
    return MAILD_SMTP_PHASE_TLS;
  case IN_COMMAND:
  default:
    return MAILD_SMTP_PHASE_COMMAND;
  }
}

int maild_smtp_server_greet(maild_smtp_server *s, const maild_reply *reply) {
  int code = reply != NULL ? reply->code : 0;
  int err;

  if (s == NULL)
    return MAILD_ERR_INVAL;
  if (s->greeted || s->closing)
    return MAILD_ERR_STATE;
  if (code == 0 || code == 220) {
    const char *text =
        reply != NULL && reply->text != NULL ? reply->text : "ESMTP";
    char line[512];
    size_t hl = strlen(s->hostname);
    size_t tl = strlen(text);

    if (hl + 1 + tl >= sizeof(line))
      tl = sizeof(line) - hl - 2;
    memcpy(line, s->hostname, hl);
    line[hl] = ' ';
    memcpy(line + hl + 1, text, tl);
    line[hl + 1 + tl] = '\0';
    err = queue_reply(s, 220, NULL, line);
    if (err == 0)
      s->greeted = 1;
    return err;
  }
  /* RFC 5321 3.1: a 554 (or 421) greeting turns the client away. */
  s->greeted = 1;
  return maild__smtp_close(
      s, code >= 500 ? 554 : 421, code >= 500 ? "5.3.2" : "4.3.2",
      reply->text != NULL ? reply->text : "Service not available");
}

int maild_smtp_server_reply(maild_smtp_server *s, const maild_reply *reply) {
  smtp_pending kind;

  if (s == NULL)
    return MAILD_ERR_INVAL;
  if (s->pending == PEND_NONE || s->closing)
    return MAILD_ERR_STATE;
  kind = s->pending;
  s->pending = PEND_NONE;
  return maild__smtp_finish(s, kind, reply);
}

int maild_smtp_server_resume(maild_smtp_server *s) {
  return maild_smtp_server_reply(s, NULL);
}

/* RFC 3207 4.2: forget everything learned before TLS. */
int maild_smtp_server_tls_started(maild_smtp_server *s, const char *tls_info) {
  char *info = NULL;

  if (s == NULL)
    return MAILD_ERR_INVAL;
  if (s->input != IN_TLS || s->closing)
    return MAILD_ERR_STATE;
  if (tls_info != NULL) {
    info = maild__strndup(&s->mem, tls_info, strlen(tls_info));
    if (info == NULL)
      return MAILD_ERR_NOMEM;
  }
  maild__free(&s->mem, s->tls_info);
  s->tls_info = info;
  maild__free(&s->mem, s->helo_name);
  s->helo_name = NULL;
  s->esmtp = 0;
  s->authenticated = 0;
  s->tls = 1;
  maild_linereader_reset(s->lr);
  s->input = IN_COMMAND;
  return 0;
}

int maild_smtp_server_terminate(maild_smtp_server *s,
                                const maild_reply *reply) {
  if (s == NULL)
    return MAILD_ERR_INVAL;
  if (s->closing)
    return 0;
  maild_reply out;
  char enh[8];

  if (reply == NULL || reply->code == 0)
    return maild__smtp_close(s, 0, NULL, NULL);
  maild__smtp_normalize(reply, 421, "4.4.2", "Error: timeout exceeded", &out,
                        enh);
  return maild__smtp_close(s, out.code, out.enhanced, out.text);
}

const char *maild_smtp_server_helo_name(const maild_smtp_server *s) {
  return s->helo_name;
}

int maild_smtp_server_is_esmtp(const maild_smtp_server *s) {
  return s->esmtp;
}

int maild_smtp_server_is_tls(const maild_smtp_server *s) {
  return s->tls;
}

const char *maild_smtp_server_tls_info(const maild_smtp_server *s) {
  return s->tls_info;
}

int maild_smtp_server_is_authenticated(const maild_smtp_server *s) {
  return s->authenticated;
}
