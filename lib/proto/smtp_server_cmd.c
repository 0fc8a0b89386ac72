/*
 * SMTP server commands: the command table and one handler per command
 * (RFC 5321 4.1.1), plus the STARTTLS (RFC 3207) and AUTH (RFC 4954)
 * hooks. A handler checks sequence and syntax, then hands the event to the
 * embedder's callback; the matching *_done function applies the decision,
 * now or later (maild__smtp_finish), so deferred and immediate answers
 * take exactly the same path.
 */
#include "proto/smtp_server_int.h"

#include "core/ascii.h"
#include "core/mem.h"
#include "maild/error.h"

#include <string.h>

/* Command flags: which line-length limit applies. */
enum {
  CMD_PARAMS = 1u << 0, /* MAIL/RCPT: ESMTP parameters extend the limit */
  CMD_AUTH = 1u << 1,   /* AUTH: RFC 4954 4 allows 12288 octets */
};

typedef int (*smtp_cmd_fn)(maild_smtp_server *s, const char *arg, size_t len);

typedef struct smtp_cmd {
  const char *verb;
  smtp_cmd_fn run;
  unsigned flags;
} smtp_cmd;

static int iprefix(const char *a, size_t alen, const char *prefix) {
  size_t n = strlen(prefix);
  return alen >= n && maild__ascii_caseeq(a, n, prefix);
}

/* Appends `str` to a bounded text buffer; returns the new length. */
static size_t put(char *buf, size_t cap, size_t at, const char *str) {
  size_t n = strlen(str);

  if (at >= cap)
    return at;
  if (n > cap - at - 1)
    n = cap - at - 1;
  memcpy(buf + at, str, n);
  buf[at + n] = '\0';
  return at + n;
}

static size_t put_u64(char *buf, size_t cap, size_t at, uint64_t v) {
  char digits[24];
  size_t i = sizeof(digits) - 1;

  digits[i] = '\0';
  do {
    digits[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  return put(buf, cap, at, digits + i);
}

/* An error reply produced by the engine itself (not by a callback). */
int maild__smtp_error(maild_smtp_server *s, int code, const char *enh,
                      const char *text) {
  if (s->cb.on_error != NULL && s->line != NULL)
    s->cb.on_error(s, code, s->line, s->line_len, s->user_data);
  return maild__smtp_reply(s, code, enh, text);
}

static int nomem_reply(maild_smtp_server *s) {
  return maild__smtp_error(s, 451, "4.3.0",
                           "Error: insufficient system resources");
}

static int auth_offered(const maild_smtp_server *s) {
  return s->auth_mechs != NULL && !s->authenticated &&
         (s->tls || s->opt_auth_plaintext);
}

static unsigned session_exts(const maild_smtp_server *s) {
  unsigned exts = MAILD_EXT_SIZE | MAILD_EXT_8BITMIME;

  if (!s->esmtp)
    return 0;
  if (s->opt_smtputf8)
    exts |= MAILD_EXT_SMTPUTF8;
  if (s->opt_dsn)
    exts |= MAILD_EXT_DSN;
  if (s->auth_mechs != NULL && (s->tls || s->opt_auth_plaintext))
    exts |= MAILD_EXT_AUTH;
  return exts;
}

/* ---- HELO / EHLO (RFC 5321 4.1.1.1) ---- */

static int ehlo_reply(maild_smtp_server *s) {
  char text[1024];
  size_t n = put(text, sizeof(text), 0, s->hostname);

  n = put(text, sizeof(text), n, "\nPIPELINING\nSIZE ");
  n = put_u64(text, sizeof(text), n, s->max_message_size);
  if (s->opt_starttls && !s->tls)
    n = put(text, sizeof(text), n, "\nSTARTTLS");
  if (auth_offered(s)) {
    n = put(text, sizeof(text), n, "\nAUTH ");
    n = put(text, sizeof(text), n, s->auth_mechs);
  }
  n = put(text, sizeof(text), n, "\nENHANCEDSTATUSCODES\n8BITMIME");
  if (s->opt_dsn)
    n = put(text, sizeof(text), n, "\nDSN");
  if (s->opt_smtputf8)
    n = put(text, sizeof(text), n, "\nSMTPUTF8");
  if (s->opt_chunking)
    put(text, sizeof(text), n, "\nCHUNKING");
  return maild__smtp_reply(s, 250, NULL, text);
}

static int helo_done(maild_smtp_server *s, const maild_reply *r) {
  char *name = s->pending_helo;
  maild_reply out;
  char enh[8];
  int err;

  s->pending_helo = NULL;
  maild__smtp_normalize(r, 250, NULL, s->hostname, &out, enh);
  if (out.code / 100 != 2) {
    maild__free(&s->mem, name);
    err = maild__smtp_reply(s, out.code, out.enhanced, out.text);
    return err;
  }
  /* RFC 5321 4.1.4: HELO/EHLO in a session implies RSET. */
  maild__smtp_tx_end(s, MAILD_SMTP_ABORT_RSET);
  maild__free(&s->mem, s->helo_name);
  s->helo_name = name;
  s->esmtp = s->pending_helo_esmtp;
  if (s->esmtp)
    return ehlo_reply(s);
  return maild__smtp_reply(s, 250, NULL, s->hostname);
}

static int helo_common(maild_smtp_server *s, const char *arg, size_t len,
                       int esmtp) {
  maild_smtp_helo ev;
  maild_reply r = {0, NULL, NULL};
  int rc;

  if (len == 0)
    return maild__smtp_error(s, 501, "5.5.4",
                             esmtp ? "Syntax: EHLO hostname"
                                   : "Syntax: HELO hostname");
  s->pending_helo = maild__strndup(&s->mem, arg, len);
  if (s->pending_helo == NULL)
    return nomem_reply(s);
  s->pending_helo_esmtp = esmtp;
  ev.name = arg;
  ev.name_len = len;
  ev.esmtp = esmtp;
  ev.name_valid = maild_domain_check(arg, len, MAILD_PATH_ALLOW_UTF8, 1) == 0;
  rc = s->cb.on_helo ? s->cb.on_helo(s, &ev, &r, s->user_data) : 0;
  return maild__smtp_decide(s, PEND_HELO, rc, &r);
}

static int cmd_helo(maild_smtp_server *s, const char *arg, size_t len) {
  return helo_common(s, arg, len, 0);
}

static int cmd_ehlo(maild_smtp_server *s, const char *arg, size_t len) {
  return helo_common(s, arg, len, 1);
}

/* ---- MAIL and RCPT (RFC 5321 4.1.1.2, 4.1.1.3) ---- */

/* Finds the path after "FROM:" or "TO:"; returns its offset or -1. */
static maild_ssize path_start(const maild_smtp_server *s, const char *arg,
                              size_t len, const char *keyword) {
  size_t i = strlen(keyword);

  if (!iprefix(arg, len, keyword))
    return -1;
  if (s->opt_lenient_spaces) {
    while (i < len && arg[i] == ' ')
      i++;
  }
  if (i >= len || arg[i] != '<')
    return -1;
  return (maild_ssize)i;
}

/* Maps an ESMTP parameter error to its reply (RFC 5321 4.1.1.11, RFC 1869
   6: 555 for unknown or unsupported parameters). */
static int param_error(maild_smtp_server *s, int err) {
  if (err == MAILD_ERR_UNSUPPORTED)
    return maild__smtp_error(s, 555, "5.5.4", "Error: unsupported parameter");
  return maild__smtp_error(s, 501, "5.5.4", "Error: bad parameter");
}

/* Parses "<path> [params]" at `arg`; returns 0 or the reply already sent
   (a positive 1) or a negative error. */
static int parse_path_params(maild_smtp_server *s, const char *arg, size_t len,
                             const char *keyword, unsigned allow,
                             maild_esmtp_verb verb, maild_path *path,
                             maild_esmtp_params *params) {
  int is_mail = verb == MAILD_ESMTP_MAIL;
  maild_ssize at = path_start(s, arg, len, keyword);
  maild_ssize n;
  int err;

  if (at < 0)
    return maild__smtp_error(s, 501, "5.5.4",
                             is_mail ? "Syntax: MAIL FROM:<address>"
                                     : "Syntax: RCPT TO:<address>") < 0
               ? MAILD_ERR_NOMEM
               : 1;
  n = maild_path_parse(path, arg + at, len - (size_t)at, allow);
  if (n < 0 || ((size_t)(at + n) < len && arg[at + n] != ' ')) {
    err = maild__smtp_error(
        s, 501, is_mail ? "5.1.7" : "5.1.3",
        n == MAILD_ERR_TOO_LONG
            ? "Error: address too long"
            : (is_mail ? "Error: bad sender address syntax"
                       : "Error: bad recipient address syntax"));
    return err < 0 ? err : 1;
  }
  at += n;
  err = maild_esmtp_parse(params, arg + at, len - (size_t)at, verb,
                          session_exts(s), NULL);
  if (err != 0)
    return param_error(s, err) < 0 ? MAILD_ERR_NOMEM : 1;
  return 0;
}

static int mail_done(maild_smtp_server *s, const maild_reply *r) {
  smtp_tx *tx = s->pending_tx;
  int code;

  s->pending_tx = NULL;
  code = maild__smtp_answer(s, r, 250, "2.1.0", "Ok");
  if (code / 100 == 2 && !s->closing) {
    s->tx = tx;
    return 0;
  }
  maild__free(&s->mem, tx);
  return code < 0 ? code : 0;
}

static int cmd_mail(maild_smtp_server *s, const char *arg, size_t len) {
  maild_esmtp_params params;
  maild_smtp_mail ev;
  maild_path path;
  maild_reply r = {0, NULL, NULL};
  unsigned allow = MAILD_PATH_ALLOW_NULL;
  int rc;

  if (s->helo_name == NULL)
    return maild__smtp_error(s, 503, "5.5.1", "Error: send HELO/EHLO first");
  if (s->tx != NULL)
    return maild__smtp_error(s, 503, "5.5.1", "Error: nested MAIL command");
  if (s->esmtp && s->opt_smtputf8)
    allow |= MAILD_PATH_ALLOW_UTF8;
  rc = parse_path_params(s, arg, len, "FROM:", allow, MAILD_ESMTP_MAIL, &path,
                         &params);
  if (rc != 0)
    return rc < 0 ? rc : 0;
  if ((params.present & MAILD_PARAM_SIZE) && params.size > s->max_message_size)
    return maild__smtp_error(s, 552, "5.3.4",
                             "Error: message size exceeds fixed limit");
  /* RFC 6531 3.4: a non-ASCII address needs the SMTPUTF8 parameter. */
  if ((path.flags & MAILD_PATH_UTF8) &&
      !(params.present & MAILD_PARAM_SMTPUTF8))
    return maild__smtp_error(s, 553, "5.6.7",
                             "Error: SMTPUTF8 is required for this address");
  s->pending_tx = maild__calloc(&s->mem, 1, sizeof(smtp_tx));
  if (s->pending_tx == NULL)
    return nomem_reply(s);
  s->pending_tx->from = path;
  s->pending_tx->smtputf8 = (params.present & MAILD_PARAM_SMTPUTF8) != 0;
  s->pending_tx->in_headers = 1;
  s->pending_tx->line_match = 1;
  ev.from = &s->pending_tx->from;
  ev.params = &params;
  rc = s->cb.on_mail ? s->cb.on_mail(s, &ev, &r, s->user_data) : 0;
  return maild__smtp_decide(s, PEND_MAIL, rc, &r);
}

static int rcpt_done(maild_smtp_server *s, const maild_reply *r) {
  int code = maild__smtp_answer(s, r, 250, "2.1.5", "Ok");

  if (code / 100 == 2 && s->tx != NULL)
    s->tx->rcpt_accepted++;
  return code < 0 ? code : 0;
}

static int cmd_rcpt(maild_smtp_server *s, const char *arg, size_t len) {
  maild_esmtp_params params;
  maild_smtp_rcpt ev;
  maild_path path;
  maild_reply r = {0, NULL, NULL};
  unsigned allow = MAILD_PATH_ALLOW_POSTMASTER;
  int rc;

  if (s->tx == NULL)
    return maild__smtp_error(s, 503, "5.5.1", "Error: need MAIL command");
  if (s->esmtp && s->opt_smtputf8)
    allow |= MAILD_PATH_ALLOW_UTF8;
  rc = parse_path_params(s, arg, len, "TO:", allow, MAILD_ESMTP_RCPT, &path,
                         &params);
  if (rc != 0)
    return rc < 0 ? rc : 0;
  /* RFC 6531 3.5: a non-ASCII address needs SMTPUTF8 on the MAIL. */
  if ((path.flags & MAILD_PATH_UTF8) && !s->tx->smtputf8)
    return maild__smtp_error(s, 553, "5.6.7",
                             "Error: SMTPUTF8 is required for this address");
  /* RFC 5321 4.5.3.1.10: past the cap, 452 and the client tries later. */
  if (s->tx->rcpt_accepted >= s->max_recipients)
    return maild__smtp_error(s, 452, "4.5.3", "Error: too many recipients");
  ev.to = &path;
  ev.params = &params;
  ev.index = s->tx->rcpt_seen++;
  rc = s->cb.on_rcpt ? s->cb.on_rcpt(s, &ev, &r, s->user_data) : 0;
  return maild__smtp_decide(s, PEND_RCPT, rc, &r);
}

/* ---- RSET, NOOP, QUIT, VRFY, EXPN, HELP (RFC 5321 4.1.1.5-10) ---- */

static int cmd_rset(maild_smtp_server *s, const char *arg, size_t len) {
  (void)arg;
  if (len != 0)
    return maild__smtp_error(s, 501, "5.5.4", "Syntax: RSET");
  maild__smtp_tx_end(s, MAILD_SMTP_ABORT_RSET);
  return maild__smtp_junk_reply(s, 250, "2.0.0", "Ok");
}

static int cmd_noop(maild_smtp_server *s, const char *arg, size_t len) {
  (void)arg;
  (void)len;
  return maild__smtp_junk_reply(s, 250, "2.0.0", "Ok");
}

static int cmd_quit(maild_smtp_server *s, const char *arg, size_t len) {
  (void)arg;
  (void)len;
  return maild__smtp_close(s, 221, "2.0.0", "Bye");
}

static int cmd_vrfy(maild_smtp_server *s, const char *arg, size_t len) {
  (void)arg;
  if (len == 0)
    return maild__smtp_error(s, 501, "5.5.4", "Syntax: VRFY address");
  /* RFC 5321 3.5.3: 252 when the server will not verify. */
  return maild__smtp_junk_reply(
      s, 252, "2.0.0",
      "Cannot VRFY user, but will accept message and attempt delivery");
}

static int cmd_expn(maild_smtp_server *s, const char *arg, size_t len) {
  (void)arg;
  (void)len;
  return maild__smtp_error(s, 502, "5.5.1", "Error: EXPN not supported");
}

static int cmd_help(maild_smtp_server *s, const char *arg, size_t len) {
  (void)arg;
  (void)len;
  return maild__smtp_junk_reply(s, 214, "2.0.0",
                                "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET "
                                "NOOP QUIT VRFY HELP STARTTLS AUTH");
}

/* ---- STARTTLS (RFC 3207) ---- */

static int starttls_done(maild_smtp_server *s, const maild_reply *r) {
  int code = maild__smtp_answer(s, r, 220, "2.0.0", "Ready to start TLS");

  if (code != 220 || s->closing)
    return code < 0 ? code : 0;
  /* RFC 3207 4.2: nothing learned in the clear survives; octets that
     follow the command are plaintext and are never executed. */
  maild__smtp_tx_end(s, MAILD_SMTP_ABORT_TLS);
  maild_linereader_reset(s->lr);
  s->input = IN_TLS;
  return 0;
}

static int cmd_starttls(maild_smtp_server *s, const char *arg, size_t len) {
  maild_reply r = {0, NULL, NULL};
  int rc;

  (void)arg;
  if (len != 0)
    return maild__smtp_error(s, 501, "5.5.4", "Syntax: STARTTLS");
  if (s->tls)
    return maild__smtp_error(s, 554, "5.5.1", "Error: TLS already active");
  if (!s->opt_starttls)
    return maild__smtp_error(s, 502, "5.5.1", "Error: command not implemented");
  rc = s->cb.on_starttls ? s->cb.on_starttls(s, &r, s->user_data) : 0;
  return maild__smtp_decide(s, PEND_STARTTLS, rc, &r);
}

/* ---- AUTH (RFC 4954) ---- */

/* Is `m` one of the space-separated mechanisms offered? */
static int mech_offered(const maild_smtp_server *s, const char *m, size_t len) {
  const char *p = s->auth_mechs;

  while (*p != '\0') {
    size_t n = strcspn(p, " ");
    if (n == len && n > 0) {
      size_t i = 0;
      while (i < n && maild__ascii_lower((unsigned char)m[i]) ==
                          maild__ascii_lower((unsigned char)p[i]))
        i++;
      if (i == n)
        return 1;
    }
    p += n;
    while (*p == ' ')
      p++;
  }
  return 0;
}

static void auth_end(maild_smtp_server *s) {
  maild__free(&s->mem, s->auth_mech);
  s->auth_mech = NULL;
  if (s->input == IN_AUTH)
    s->input = IN_COMMAND;
}

static int auth_done(maild_smtp_server *s, const maild_reply *r) {
  maild_reply out;
  char enh[8];
  int err;

  /* No default exists for a SASL step: an empty answer is a failure. */
  maild__smtp_normalize(r, 454, "4.7.0",
                        "Error: temporary authentication failure", &out, enh);
  if (out.code == 334) {
    /* RFC 4954 4: "334" SP [base64] CRLF, no enhanced code. */
    const char *t = r != NULL && r->text != NULL ? r->text : "";
    err = t[0] == '\0' ? maild__buf_append(&s->out, &s->mem, "334 \r\n", 6)
                       : maild__smtp_reply(s, 334, NULL, t);
    s->auth_step++;
    s->input = IN_AUTH;
    return err;
  }
  auth_end(s);
  if (out.code == 235)
    s->authenticated = 1;
  return maild__smtp_reply(s, out.code, out.enhanced, out.text);
}

static int auth_call(maild_smtp_server *s, const char *resp, size_t len) {
  maild_smtp_auth ev;
  maild_reply r = {0, NULL, NULL};
  int rc;

  ev.mechanism = s->auth_mech;
  ev.response = resp;
  ev.response_len = len;
  ev.step = s->auth_step;
  rc = s->cb.on_auth(s, &ev, &r, s->user_data);
  return maild__smtp_decide(s, PEND_AUTH, rc, &r);
}

/* Why AUTH cannot be used now (RFC 4954 4, 6), or 0 if it can. */
static int auth_refusal(maild_smtp_server *s) {
  if (s->auth_mechs == NULL || s->cb.on_auth == NULL)
    return maild__smtp_error(s, 503, "5.5.1",
                             "Error: authentication not enabled");
  if (!s->tls && !s->opt_auth_plaintext)
    return maild__smtp_error(s, 538, "5.7.11",
                             "Error: encryption required for authentication");
  if (!s->esmtp)
    return maild__smtp_error(s, 503, "5.5.1", "Error: send EHLO first");
  if (s->authenticated)
    return maild__smtp_error(s, 503, "5.5.1", "Error: already authenticated");
  if (s->tx != NULL)
    return maild__smtp_error(s, 503, "5.5.1",
                             "Error: MAIL transaction in progress");
  return 1;
}

static int cmd_auth(maild_smtp_server *s, const char *arg, size_t len) {
  size_t mlen = 0, i;
  int ok = auth_refusal(s);

  if (ok != 1)
    return ok;
  while (mlen < len && arg[mlen] != ' ')
    mlen++;
  if (mlen == 0 || mlen > 20)
    return maild__smtp_error(s, 501, "5.5.4", "Syntax: AUTH mechanism");
  if (!mech_offered(s, arg, mlen))
    return maild__smtp_error(s, 504, "5.5.4",
                             "Error: unsupported authentication mechanism");
  s->auth_mech = maild__strndup(&s->mem, arg, mlen);
  if (s->auth_mech == NULL)
    return nomem_reply(s);
  for (i = 0; i < mlen; i++) {
    if (s->auth_mech[i] >= 'a' && s->auth_mech[i] <= 'z')
      s->auth_mech[i] = (char)(s->auth_mech[i] - 32);
  }
  s->auth_step = 0;
  if (mlen == len)
    return auth_call(s, NULL, 0);
  return auth_call(s, arg + mlen + 1, len - mlen - 1);
}

int maild__smtp_auth_line(maild_smtp_server *s, const maild_line *line) {
  s->line = NULL;
  if (line->flags & MAILD_LINE_TOO_LONG || line->len + 2 > s->max_auth_line) {
    auth_end(s);
    return maild__smtp_reply(s, 500, "5.5.6",
                             "Error: authentication exchange line too long");
  }
  if (line->flags != 0) {
    auth_end(s);
    return maild__smtp_reply(s, 501, "5.5.2", "Error: invalid SASL response");
  }
  if (line->len == 1 && line->data[0] == '*') {
    auth_end(s);
    return maild__smtp_reply(s, 501, "5.0.0",
                             "Error: authentication cancelled");
  }
  return auth_call(s, line->data, line->len);
}

/* ---- Dispatch ---- */

static const smtp_cmd commands[] = {
    {"HELO", cmd_helo, 0},
    {"EHLO", cmd_ehlo, 0},
    {"MAIL", cmd_mail, CMD_PARAMS},
    {"RCPT", cmd_rcpt, CMD_PARAMS},
    {"DATA", maild__smtp_cmd_data, 0},
    {"BDAT", maild__smtp_cmd_bdat, 0},
    {"RSET", cmd_rset, 0},
    {"NOOP", cmd_noop, 0},
    {"QUIT", cmd_quit, 0},
    {"VRFY", cmd_vrfy, 0},
    {"EXPN", cmd_expn, 0},
    {"HELP", cmd_help, 0},
    {"STARTTLS", cmd_starttls, 0},
    {"AUTH", cmd_auth, CMD_AUTH},
};

/* Web requests sent to a mail port (cross-protocol attacks): close at
   once, as Postfix's smtpd_forbidden_commands does. */
static int is_http(const char *verb, size_t len) {
  static const char *const http[] = {"GET", "POST",   "CONNECT", "HEAD",
                                     "PUT", "DELETE", "OPTIONS"};
  size_t i;

  if (len > 1 && verb[len - 1] == ':')
    return 1;
  for (i = 0; i < sizeof(http) / sizeof(http[0]); i++) {
    if (maild__ascii_caseeq(verb, len, http[i]))
      return 1;
  }
  return 0;
}

static size_t line_limit(const maild_smtp_server *s, const smtp_cmd *cmd) {
  if ((cmd->flags & CMD_AUTH) && s->auth_mechs != NULL)
    return (size_t)s->max_auth_line;
  if (cmd->flags & CMD_PARAMS)
    return (size_t)(s->max_command_line + s->max_params_extra);
  return (size_t)s->max_command_line;
}

static const smtp_cmd *find_command(const char *verb, size_t len) {
  size_t i;

  for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    if (maild__ascii_caseeq(verb, len, commands[i].verb))
      return &commands[i];
  }
  return NULL;
}

static int line_fault(maild_smtp_server *s, unsigned flags) {
  if (flags & MAILD_LINE_TOO_LONG)
    return maild__smtp_error(s, 500, "5.5.2", "Error: line too long");
  /* RFC 5321 2.3.8: CR and LF only as CRLF (no SMTP smuggling). */
  if (flags & MAILD_LINE_BARE_LF)
    return maild__smtp_error(s, 500, "5.5.2", "Error: bare <LF> received");
  if (flags & MAILD_LINE_BARE_CR)
    return maild__smtp_error(s, 500, "5.5.2", "Error: bare <CR> received");
  return maild__smtp_error(s, 500, "5.5.2", "Error: NUL character received");
}

int maild__smtp_command(maild_smtp_server *s, const maild_line *line) {
  const char *p = line->data;
  size_t len = line->len, vlen = 0, at;
  const smtp_cmd *cmd;
  int err;

  s->line = p;
  s->line_len = len;
  if (line->flags != 0)
    err = line_fault(s, line->flags);
  else {
    while (vlen < len && p[vlen] != ' ')
      vlen++;
    cmd = find_command(p, vlen);
    if (cmd == NULL && is_http(p, vlen))
      err = maild__smtp_close(s, 421, "4.7.0",
                              "Error: HTTP is not SMTP; closing connection");
    else if (cmd == NULL)
      err = maild__smtp_error(s, 500, "5.5.2", "Error: command not recognized");
    else if (len + 2 > line_limit(s, cmd))
      err = maild__smtp_error(s, 500, "5.5.2", "Error: line too long");
    else {
      at = vlen;
      while (at < len && p[at] == ' ')
        at++;
      while (len > at && p[len - 1] == ' ')
        len--;
      err = cmd->run(s, p + at, len - at);
    }
  }
  s->line = NULL;
  return err;
}

int maild__smtp_finish(maild_smtp_server *s, smtp_pending kind,
                       const maild_reply *r) {
  switch (kind) {
  case PEND_HELO:
    return helo_done(s, r);
  case PEND_MAIL:
    return mail_done(s, r);
  case PEND_RCPT:
    return rcpt_done(s, r);
  case PEND_DATA_START:
  case PEND_BDAT_START:
    return maild__smtp_data_start_done(s, kind, r);
  case PEND_CHUNK:
    return maild__smtp_chunk_done(s);
  case PEND_DATA_END:
    return maild__smtp_data_end_done(s, r);
  case PEND_STARTTLS:
    return starttls_done(s, r);
  case PEND_AUTH:
    return auth_done(s, r);
  case PEND_NONE:
  default:
    return 0;
  }
}
