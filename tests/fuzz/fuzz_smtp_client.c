/*
 * Fuzz harness for the SMTP client engine (TESTPLAN F1, Q6, Q7): the
 * fuzzer plays the server. Properties:
 *  1. Every recipient of every submitted message gets exactly one result,
 *     and each message exactly one on_message, once the session is over
 *     (the harness terminates it at the end of the input as a runtime
 *     would on a lost connection).
 *  2. Results carry codes 200..599, and those the engine makes up itself
 *     are 4xx or 5xx.
 *  3. Everything the client sends has CRLF line ends only: its command
 *     lines (and DATA bodies), and the concatenated payload of its BDAT
 *     chunks, checked apart because RFC 3030 lets a chunk end anywhere,
 *     between a CR and its LF too.
 * Any violation aborts.
 *
 * Input layout: [flags][chunk][read size][defer] then the server's octets.
 */
#include <stdlib.h>
#include <string.h>

#include "maild/error.h"
#include "maild/options.h"
#include "maild/smtp_client.h"

#define MAX_MSGS 3

static const char body[] = ".dot\nbare lf\r\n..two\rcr\r\n.\r\nend";

typedef struct state {
  maild_smtp_client *c;
  size_t submitted;
  size_t results[MAX_MSGS][2];
  size_t messages[MAX_MSGS];
  size_t cur; /* message in progress (index into the arrays) */
  size_t body_pos, read_size;
  int defer, deferred;
  int prev_cr;    /* of the command stream */
  int payload_cr; /* of the BDAT payload stream */
  size_t payload; /* BDAT octets still to come */
  char line[32];  /* the start of the command line being sent */
  size_t line_len;
} state;

static void submit(state *s) {
  static const maild_smtp_client_rcpt rcpts[] = {
      {"b@y.test", "SUCCESS,FAILURE", "rfc822;b@y.test"},
      {"c@y.test", NULL, NULL}};
  maild_smtp_client_message m;

  if (s->submitted >= MAX_MSGS)
    return;
  memset(&m, 0, sizeof(m));
  m.from = s->submitted == 1 ? "" : "a@x.test";
  m.rcpts = rcpts;
  m.nrcpts = s->submitted == 2 ? 1 : 2;
  m.size = sizeof(body) - 1;
  m.body_8bit = 1;
  m.ret = "HDRS";
  m.envid = "id+2B1";
  m.smtputf8 = s->submitted == 2;
  if (maild_smtp_client_submit(s->c, &m) == 0) {
    s->cur = s->submitted++;
    s->body_pos = 0;
  }
}

static void on_ready(maild_smtp_client *c, void *ud) {
  state *s = ud;

  if (s->submitted < MAX_MSGS)
    submit(s);
  else
    maild_smtp_client_quit(c);
}

static int on_starttls(maild_smtp_client *c, void *ud) {
  (void)c;
  (void)ud;
  return 0;
}

static int on_read(maild_smtp_client *c, uint8_t *buf, size_t cap, size_t *len,
                   void *ud) {
  state *s = ud;
  size_t n = sizeof(body) - 1 - s->body_pos;

  (void)c;
  if (s->defer && !s->deferred) {
    s->deferred = 1;
    return MAILD_ERR_DEFER;
  }
  s->deferred = 0;
  if (n > s->read_size)
    n = s->read_size;
  if (n > cap)
    n = cap;
  memcpy(buf, body + s->body_pos, n);
  s->body_pos += n;
  *len = n;
  return 0;
}

static void check_reply(const maild_smtp_client_reply *r) {
  if (r->code < 200 || r->code > 599)
    abort();
  if (r->local && r->code < 400)
    abort();
}

static void on_rcpt(maild_smtp_client *c, size_t i,
                    const maild_smtp_client_reply *r, void *ud) {
  state *s = ud;

  (void)c;
  check_reply(r);
  if (i >= 2 || ++s->results[s->cur][i] > 1)
    abort();
}

static void on_message(maild_smtp_client *c, const maild_smtp_client_reply *r,
                       void *ud) {
  state *s = ud;
  size_t want = s->cur == 2 ? 1 : 2, i;

  (void)c;
  check_reply(r);
  for (i = 0; i < want; i++)
    if (s->results[s->cur][i] != 1)
      abort();
  if (++s->messages[s->cur] > 1)
    abort();
}

static const maild_smtp_client_callbacks callbacks = {
    on_ready, on_starttls, on_read, on_rcpt, on_message};

/* A BDAT command line starts a payload of the size it names. */
static size_t bdat_size(const state *s) {
  size_t n = 0, i;

  if (s->line_len < 6 || memcmp(s->line, "BDAT ", 5) != 0)
    return 0;
  for (i = 5; i < s->line_len && s->line[i] >= '0' && s->line[i] <= '9'; i++)
    n = n * 10 + (size_t)(s->line[i] - '0');
  return n;
}

static void check_crlf(int *prev_cr, uint8_t ch) {
  if (ch == '\n' && !*prev_cr)
    abort(); /* a bare LF */
  if (*prev_cr && ch != '\n')
    abort(); /* a bare CR */
  *prev_cr = ch == '\r';
}

static void check_output(state *s, const uint8_t *p, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    if (s->payload > 0) {
      check_crlf(&s->payload_cr, p[i]);
      s->payload--;
      continue;
    }
    check_crlf(&s->prev_cr, p[i]);
    if (p[i] == '\n') {
      if (s->line_len >= 5 && memcmp(s->line, "MAIL ", 5) == 0)
        s->payload_cr = 0; /* a new message: an abandoned one may end in CR */
      s->payload = bdat_size(s);
      s->line_len = 0;
    } else if (s->line_len < sizeof(s->line)) {
      s->line[s->line_len++] = (char)p[i];
    }
  }
}

static void drain(state *s) {
  const uint8_t *p;
  maild_ssize n;

  while ((n = maild_smtp_client_send(s->c, &p)) > 0)
    check_output(s, p, (size_t)n);
  if (s->deferred && !maild_smtp_client_want_write(s->c))
    maild_smtp_client_resume(s->c);
  if (maild_smtp_client_get_phase(s->c) == MAILD_SMTP_CLIENT_TLS)
    maild_smtp_client_tls_started(s->c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  maild_options *opt;
  state s;
  size_t pos = 4, chunk, i, k;
  unsigned flags;

  if (size < 4)
    return 0;
  memset(&s, 0, sizeof(s));
  flags = data[0];
  chunk = (size_t)data[1] + 1;
  s.read_size = (size_t)data[2] % 40 + 1;
  s.defer = data[3] & 1;
  if (maild_options_new(&opt, NULL) != 0)
    return 0;
  maild_options_set_string(opt, MAILD_OPT_HOSTNAME, "client.test");
  maild_options_set_uint(opt, MAILD_OPT_STARTTLS, flags & 1);
  maild_options_set_uint(opt, MAILD_OPT_CHUNKING, (flags >> 1) & 1);
  maild_options_set_uint(opt, MAILD_OPT_TLS_ACTIVE, (flags >> 2) & 1);
  maild_options_set_uint(opt, MAILD_OPT_TLS_REQUIRED, (flags >> 3) & 1);
  maild_options_set_uint(opt, MAILD_OPT_AUTH_PLAINTEXT, (flags >> 4) & 1);
  maild_options_set_uint(opt, MAILD_OPT_OUTPUT_BACKLOG, 1024);
  if (maild_smtp_client_new(&s.c, &callbacks, &s, opt, NULL) != 0) {
    maild_options_del(opt);
    return 0;
  }
  maild_options_del(opt);
  if (flags & 32)
    maild_smtp_client_set_auth(s.c, "user", "pass");
  if (flags & 64)
    submit(&s);
  while (pos < size &&
         maild_smtp_client_get_phase(s.c) != MAILD_SMTP_CLIENT_CLOSED) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    maild_ssize used = maild_smtp_client_recv(s.c, data + pos, n);
    if (used < 0)
      break;
    pos += (size_t)used;
    drain(&s);
    if (used == 0)
      drain(&s);
    if (used == 0 && maild_smtp_client_get_phase(s.c) != MAILD_SMTP_CLIENT_TLS)
      break; /* the engine takes no more: stop feeding */
  }
  drain(&s);
  maild_smtp_client_terminate(s.c, 451, "4.4.2", "end of input");
  /* Property 1: every submitted message is finished, every result given. */
  for (k = 0; k < s.submitted; k++) {
    size_t want = k == 2 ? 1 : 2;
    if (s.messages[k] != 1)
      abort();
    for (i = 0; i < want; i++)
      if (s.results[k][i] != 1)
        abort();
  }
  maild_smtp_client_del(s.c);
  return 0;
}
