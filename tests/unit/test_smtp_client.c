/*
 * Unit tests for the SMTP client engine. A transcript runner plays the
 * server: S: lines are its replies, fed only once the client has sent
 * every C: line before them (as a real server would answer), each turn
 * offered in chunks of every size; the message body is read in small
 * pieces, with and without every read deferred. Client output and events
 * (E: lines) must match byte for byte. Then TESTPLAN Q3 (a 452 retries
 * only its recipients), Q5 (a lost connection after the dot leaves the
 * message temporary), Q6 (malformed and multi-line replies), Q7 (CRLF only
 * and doubled dots), Q8 (bytes after the 220 to STARTTLS), an allocation
 * failure sweep, and the API's argument checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maild/error.h"
#include "maild/options.h"
#include "maild/smtp_client.h"
#include "testmem.h"

enum {
  F_STARTTLS = 1,   /* option STARTTLS */
  F_CHUNKING = 2,   /* option CHUNKING */
  F_AUTH = 4,       /* credentials user/pass */
  F_TLS = 8,        /* TLS_ACTIVE */
  F_REQUIRE = 16,   /* TLS_REQUIRED */
  F_EARLY = 32,     /* the first message is submitted before the greeting */
  F_WHOLE = 64,     /* the body is read in one piece */
  F_TWO = 128,      /* two messages, the second to d@y.test */
  F_NULLFROM = 256, /* the null reverse-path */
  F_DSN = 512       /* DSN parameters on the message */
};

static const char body_text[] =
    "Subject: t\r\n\r\n.leading dot\nbare lf\rbare cr\r\nend";

typedef struct harness {
  testmem tm;
  maild_smtp_client *c;
  unsigned flags;
  const char *body;
  size_t body_pos, read_size;
  int defer, read_pending;
  size_t submitted, quit;
  char out[16384];
  size_t out_len;
  char events[2048];
  int nomem;
} harness;

static void event(harness *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void event(harness *h, const char *fmt, ...) {
  size_t n = strlen(h->events);
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(h->events + n, sizeof(h->events) - n, fmt, ap);
  va_end(ap);
  n = strlen(h->events);
  if (n + 1 < sizeof(h->events)) {
    h->events[n] = '\n';
    h->events[n + 1] = '\0';
  }
}

static int submit(harness *h) {
  static const maild_smtp_client_rcpt rcpts[] = {{"b@y.test", NULL, NULL},
                                                 {"c@y.test", NULL, NULL}};
  static const maild_smtp_client_rcpt second[] = {{"d@y.test", NULL, NULL}};
  static const maild_smtp_client_rcpt dsn[] = {
      {"b@y.test", "SUCCESS,FAILURE", "rfc822;b+2Bx@y.test"},
      {"c@y.test", "NEVER", NULL}};
  maild_smtp_client_message m;
  int r;

  memset(&m, 0, sizeof(m));
  m.from = h->flags & F_NULLFROM ? "" : "a@x.test";
  m.rcpts = h->submitted == 0 ? (h->flags & F_DSN ? dsn : rcpts) : second;
  if (h->flags & F_DSN) {
    m.ret = "HDRS";
    m.envid = "QQ+2B1";
    m.body_8bit = 1;
  }
  m.nrcpts = h->submitted == 0 ? 2 : 1;
  m.size = strlen(h->body);
  h->body_pos = 0;
  r = maild_smtp_client_submit(h->c, &m);
  if (r == MAILD_ERR_NOMEM) {
    h->nomem = 1;
    return r;
  }
  assert_int_equal(r, 0);
  h->submitted++;
  return 0;
}

static void on_ready(maild_smtp_client *c, void *ud) {
  harness *h = ud;
  size_t want = h->flags & F_TWO ? 2 : 1;

  (void)c;
  event(h, "ready");
  if (h->submitted < want) {
    submit(h);
  } else if (!h->quit) {
    h->quit = 1;
    assert_int_equal(maild_smtp_client_quit(h->c), 0);
  }
}

static int on_starttls(maild_smtp_client *c, void *ud) {
  (void)c;
  event(ud, "starttls");
  return 0;
}

static int on_read(maild_smtp_client *c, uint8_t *buf, size_t cap, size_t *len,
                   void *ud) {
  harness *h = ud;
  size_t left = strlen(h->body) - h->body_pos, n;

  (void)c;
  if (h->defer && !h->read_pending) {
    h->read_pending = 1;
    return MAILD_ERR_DEFER;
  }
  h->read_pending = 0;
  n = h->flags & F_WHOLE ? left : h->read_size;
  if (n > left)
    n = left;
  if (n > cap)
    n = cap;
  memcpy(buf, h->body + h->body_pos, n);
  h->body_pos += n;
  *len = n;
  return 0;
}

static void on_rcpt(maild_smtp_client *c, size_t i,
                    const maild_smtp_client_reply *r, void *ud) {
  (void)c;
  event(ud, "rcpt %zu %d%s", i, r->code, r->local ? " local" : "");
}

static void on_message(maild_smtp_client *c, const maild_smtp_client_reply *r,
                       void *ud) {
  (void)c;
  event(ud, "message %d%s", r->code, r->local ? " local" : "");
}

static const maild_smtp_client_callbacks callbacks = {
    on_ready, on_starttls, on_read, on_rcpt, on_message};

static int start(harness *h, unsigned flags, size_t fail_at) {
  maild_options *opt;
  int r;

  memset(h, 0, sizeof(*h));
  testmem_init(&h->tm, 0);
  h->flags = flags;
  h->body = body_text;
  h->read_size = 7;
  assert_int_equal(maild_options_new(&opt, NULL), 0);
  assert_int_equal(
      maild_options_set_string(opt, MAILD_OPT_HOSTNAME, "client.test"), 0);
  maild_options_set_uint(opt, MAILD_OPT_STARTTLS, flags & F_STARTTLS ? 1 : 0);
  maild_options_set_uint(opt, MAILD_OPT_CHUNKING, flags & F_CHUNKING ? 1 : 0);
  maild_options_set_uint(opt, MAILD_OPT_TLS_ACTIVE, flags & F_TLS ? 1 : 0);
  maild_options_set_uint(opt, MAILD_OPT_TLS_REQUIRED,
                         flags & F_REQUIRE ? 1 : 0);
  h->tm.fail_at = fail_at;
  r = maild_smtp_client_new(&h->c, &callbacks, h, opt, &h->tm.mem);
  maild_options_del(opt);
  if (r != 0)
    return r;
  if (flags & F_AUTH) {
    r = maild_smtp_client_set_auth(h->c, "user", "pass");
    if (r != 0)
      return r;
  }
  if (flags & F_EARLY)
    return submit(h);
  return 0;
}

static void stop(harness *h) {
  maild_smtp_client_del(h->c);
  h->c = NULL;
  assert_int_equal(h->tm.live, 0);
}

/* Takes the client's output; returns nonzero if there was any. */
static int drain(harness *h) {
  const uint8_t *p;
  maild_ssize n;
  int any = 0;

  while ((n = maild_smtp_client_send(h->c, &p)) > 0) {
    any = 1;
    assert_true(h->out_len + (size_t)n < sizeof(h->out));
    memcpy(h->out + h->out_len, p, (size_t)n);
    h->out_len += (size_t)n;
  }
  if (n < 0)
    h->nomem = 1;
  h->out[h->out_len] = '\0';
  return any;
}

/* Resumes a deferred read, or finishes a TLS handshake; nonzero if so. */
static int answer(harness *h) {
  if (h->read_pending && maild_smtp_client_want_write(h->c) == 0) {
    assert_int_equal(maild_smtp_client_resume(h->c), 0);
    return 1;
  }
  if (maild_smtp_client_get_phase(h->c) == MAILD_SMTP_CLIENT_TLS) {
    assert_int_equal(maild_smtp_client_tls_started(h->c), 0);
    return 1;
  }
  return 0;
}

/* Lets the client work until it has sent `need` octets in all or is
   stuck. */
static void settle(harness *h, size_t need) {
  int idle = 0;

  while (idle < 3 && h->out_len < need && !h->nomem) {
    int progress = drain(h);
    if (h->out_len < need)
      progress |= answer(h);
    idle = progress ? 0 : idle + 1;
  }
}

/* ---- Transcripts ---- */

typedef struct transcript {
  const char *name;
  unsigned flags;
  const char *const *lines; /* "S: ", "C: ", "E: ", NULL-terminated */
} transcript;

/* The server's turns: input octets and how much output precedes each. */
typedef struct turns {
  char in[4096], out[8192], ev[2048];
  size_t start[64], need[64], n;
} turns;

static void build(const transcript *t, turns *tu) {
  size_t i, in_len = 0;
  int in_turn = 0;

  memset(tu, 0, sizeof(*tu));
  for (i = 0; t->lines[i] != NULL; i++) {
    const char *l = t->lines[i];
    if (l[0] == 'S') {
      if (!in_turn) {
        assert_true(tu->n < 64);
        tu->start[tu->n] = in_len;
        tu->need[tu->n] = strlen(tu->out);
        tu->n++;
        in_turn = 1;
      }
      strcat(tu->in, l + 3);
      strcat(tu->in, "\r\n");
      in_len = strlen(tu->in);
    } else {
      in_turn = 0;
      strcat(l[0] == 'C' ? tu->out : tu->ev, l + 3);
      strcat(l[0] == 'C' ? tu->out : tu->ev, l[0] == 'C' ? "\r\n" : "\n");
    }
  }
  tu->start[tu->n] = strlen(tu->in);
}

/* Plays the server's turns in chunks of `chunk`; returns 0, or nonzero
   when an allocation failed (only allowed when sweeping). */
static int play(harness *h, const turns *tu, size_t chunk) {
  size_t k;

  for (k = 0; k < tu->n && !h->nomem; k++) {
    size_t pos = tu->start[k], end = tu->start[k + 1];
    settle(h, tu->need[k]);
    while (pos < end && !h->nomem) {
      size_t len = end - pos < chunk ? end - pos : chunk;
      maild_ssize n =
          maild_smtp_client_recv(h->c, (const uint8_t *)tu->in + pos, len);
      if (n < 0) {
        assert_int_equal(n, MAILD_ERR_NOMEM);
        h->nomem = 1;
        break;
      }
      if (maild_smtp_client_get_phase(h->c) == MAILD_SMTP_CLIENT_CLOSED) {
        pos = end;
        break;
      }
      assert_true(n > 0 || h->read_pending);
      pos += (size_t)n;
      if (n == 0)
        settle(h, (size_t)-1);
    }
  }
  settle(h, (size_t)-1);
  if (maild_smtp_client_get_phase(h->c) == MAILD_SMTP_CLIENT_CLOSED) {
    const maild_smtp_client_reply *r = maild_smtp_client_last_error(h->c);
    assert_non_null(r);
    event(h, "closed %d%s", r->code, r->local ? " local" : "");
  }
  return h->nomem;
}

static void run_transcript(const transcript *t) {
  static turns tu;
  size_t chunk, maxlen = 0, k;
  int defer;

  build(t, &tu);
  for (k = 0; k < tu.n; k++)
    if (tu.start[k + 1] - tu.start[k] > maxlen)
      maxlen = tu.start[k + 1] - tu.start[k];
  for (defer = 0; defer < 2; defer++)
    for (chunk = 1; chunk <= maxlen; chunk++) {
      harness h;
      assert_int_equal(start(&h, t->flags, 0), 0);
      h.defer = defer;
      assert_int_equal(play(&h, &tu, chunk), 0);
      if (strcmp(h.out, tu.out) != 0 || strcmp(h.events, tu.ev) != 0)
        fail_msg("%s (chunk %zu, defer %d):\n--- got:\n%s--- want:\n%s"
                 "--- events:\n%s--- want:\n%s",
                 t->name, chunk, defer, h.out, tu.out, h.events, tu.ev);
      stop(&h);
    }
}

/* Q7: CRLF line ends only, a leading dot doubled, CRLF added at the end. */
#define BODY_DATA                                                         \
  "C: Subject: t", "C: ", "C: ..leading dot", "C: bare lf", "C: bare cr", \
      "C: end", "C: ."

static const char *const t_pipelined[] = {"S: 220 mx.test ESMTP",
                                          "C: EHLO client.test",
                                          "S: 250-mx.test greets client.test",
                                          "S: 250-PIPELINING",
                                          "S: 250-SIZE 1000000",
                                          "S: 250-8BITMIME",
                                          "S: 250 ENHANCEDSTATUSCODES",
                                          "E: ready",
                                          "C: MAIL FROM:<a@x.test> SIZE=47",
                                          "C: RCPT TO:<b@y.test>",
                                          "C: RCPT TO:<c@y.test>",
                                          "C: DATA",
                                          "S: 250 2.1.0 Ok",
                                          "S: 250 2.1.5 Ok",
                                          "S: 550-5.1.1 No such user",
                                          "S: 550 5.1.1 here, really",
                                          "E: rcpt 1 550",
                                          "S: 354 Go ahead",
                                          BODY_DATA,
                                          "S: 250 2.0.0 Queued as 1234",
                                          "E: rcpt 0 250",
                                          "E: message 250",
                                          "E: ready",
                                          "C: QUIT",
                                          "S: 221 2.0.0 Bye",
                                          "E: closed 221",
                                          NULL};

static const char *const t_lockstep[] = {"S: 220 old.test",
                                         "C: EHLO client.test",
                                         "S: 502 Command not implemented",
                                         "C: HELO client.test",
                                         "S: 250 old.test",
                                         "E: ready",
                                         "C: MAIL FROM:<a@x.test>",
                                         "S: 250 Ok",
                                         "C: RCPT TO:<b@y.test>",
                                         "S: 250 Ok",
                                         "C: RCPT TO:<c@y.test>",
                                         "S: 452 4.5.3 Too many recipients",
                                         "E: rcpt 1 452",
                                         "C: DATA",
                                         "S: 354 Go ahead",
                                         BODY_DATA,
                                         "S: 250 Ok",
                                         "E: rcpt 0 250",
                                         "E: message 250",
                                         "E: ready",
                                         "C: QUIT",
                                         "S: 221 Bye",
                                         "E: closed 221",
                                         NULL};

static const char *const t_starttls_bdat[] = {"S: 220 mx.test ESMTP",
                                              "C: EHLO client.test",
                                              "S: 250-mx.test",
                                              "S: 250-STARTTLS",
                                              "S: 250-AUTH PLAIN",
                                              "S: 250 PIPELINING",
                                              "C: STARTTLS",
                                              "S: 220 2.0.0 Ready to start TLS",
                                              "E: starttls",
                                              "C: EHLO client.test",
                                              "S: 250-mx.test",
                                              "S: 250-PIPELINING",
                                              "S: 250-CHUNKING",
                                              "S: 250-AUTH LOGIN PLAIN",
                                              "S: 250 SIZE 1000",
                                              "C: AUTH PLAIN AHVzZXIAcGFzcw==",
                                              "S: 235 2.7.0 Authenticated",
                                              "E: ready",
                                              "C: MAIL FROM:<a@x.test> SIZE=47",
                                              "C: RCPT TO:<b@y.test>",
                                              "C: RCPT TO:<c@y.test>",
                                              "S: 250 Ok",
                                              "S: 250 Ok",
                                              "S: 250 Ok",
                                              "C: BDAT 49",
                                              "C: Subject: t",
                                              "C: ",
                                              "C: .leading dot",
                                              "C: bare lf",
                                              "C: bare cr",
                                              "C: endBDAT 2 LAST",
                                              "C: ",
                                              "S: 250 2.0.0 49 octets",
                                              "S: 250 2.0.0 Queued",
                                              "E: rcpt 0 250",
                                              "E: rcpt 1 250",
                                              "E: message 250",
                                              "E: ready",
                                              "C: QUIT",
                                              "S: 221 Bye",
                                              "E: closed 221",
                                              NULL};

static const char *const t_auth_login[] = {"S: 220 mx.test",
                                           "C: EHLO client.test",
                                           "S: 250-mx.test",
                                           "S: 250 AUTH=LOGIN",
                                           "C: AUTH LOGIN",
                                           "S: 334 VXNlcm5hbWU6",
                                           "C: dXNlcg==",
                                           "S: 334 UGFzc3dvcmQ6",
                                           "C: cGFzcw==",
                                           "S: 235 Ok",
                                           "E: ready",
                                           "C: MAIL FROM:<>",
                                           "S: 250 Ok",
                                           "C: RCPT TO:<b@y.test>",
                                           "S: 250 Ok",
                                           "C: RCPT TO:<c@y.test>",
                                           "S: 250 Ok",
                                           "C: DATA",
                                           "S: 554 5.7.1 Rejected",
                                           "E: rcpt 0 554",
                                           "E: rcpt 1 554",
                                           "E: message 554",
                                           "E: ready",
                                           "C: QUIT",
                                           "S: 221 Bye",
                                           "E: closed 221",
                                           NULL};

/* MAIL refused with the rest pipelined; then the session is reused. */
static const char *const t_mail_refused[] = {"S: 220 mx.test",
                                             "C: EHLO client.test",
                                             "S: 250-mx.test",
                                             "S: 250-DSN",
                                             "S: 250 PIPELINING",
                                             "E: ready",
                                             "C: MAIL FROM:<a@x.test>",
                                             "C: RCPT TO:<b@y.test>",
                                             "C: RCPT TO:<c@y.test>",
                                             "C: DATA",
                                             "S: 550 5.7.1 Sender refused",
                                             "S: 503 5.5.1 Need MAIL",
                                             "S: 503 5.5.1 Need MAIL",
                                             "S: 503 5.5.1 Need MAIL",
                                             "E: rcpt 0 550",
                                             "E: rcpt 1 550",
                                             "E: message 550",
                                             "E: ready",
                                             "C: RSET",
                                             "S: 250 Ok",
                                             "C: MAIL FROM:<a@x.test>",
                                             "C: RCPT TO:<d@y.test>",
                                             "C: DATA",
                                             "S: 250 Ok",
                                             "S: 550 5.1.1 Unknown",
                                             "S: 554 5.5.1 No valid recipients",
                                             "E: rcpt 0 550",
                                             "E: message 550",
                                             "E: ready",
                                             "C: QUIT",
                                             "S: 221 Bye",
                                             "E: closed 221",
                                             NULL};

static const char *const t_421[] = {"S: 220 mx.test",
                                    "C: EHLO client.test",
                                    "S: 250 mx.test",
                                    "E: ready",
                                    "C: MAIL FROM:<a@x.test>",
                                    "S: 250 Ok",
                                    "C: RCPT TO:<b@y.test>",
                                    "S: 421 4.3.2 Shutting down",
                                    "E: rcpt 0 421",
                                    "E: rcpt 1 421",
                                    "E: message 421",
                                    "E: closed 421",
                                    NULL};

/* Q8: bytes after the 220 to STARTTLS, in the same packet. */
static const char *const t_starttls_injection[] = {"S: 220 mx.test",
                                                   "C: EHLO client.test",
                                                   "S: 250-mx.test",
                                                   "S: 250 STARTTLS",
                                                   "C: STARTTLS",
                                                   "S: 220 Ready to start TLS",
                                                   "S: 250 injected",
                                                   "E: starttls",
                                                   "E: rcpt 0 421 local",
                                                   "E: rcpt 1 421 local",
                                                   "E: message 421 local",
                                                   "E: closed 421 local",
                                                   NULL};

/* Q6: a malformed line ends the session; recipients stay temporary. */
static const char *const t_malformed[] = {
    "S: 220 mx.test",       "C: EHLO client.test", "S: 250-mx.test",
    "S: 25O PIPELINING",    "E: rcpt 0 421 local", "E: rcpt 1 421 local",
    "E: message 421 local", "E: closed 421 local", NULL};

static const char *const t_tls_required[] = {
    "S: 220 mx.test",      "C: EHLO client.test",
    "S: 250 mx.test",      "E: rcpt 0 421 local",
    "E: rcpt 1 421 local", "E: message 421 local",
    "E: closed 421 local", NULL};

static const char *const t_too_big[] = {"S: 220 mx.test",
                                        "C: EHLO client.test",
                                        "S: 250-mx.test",
                                        "S: 250 SIZE 20",
                                        "E: ready",
                                        "E: rcpt 0 552 local",
                                        "E: rcpt 1 552 local",
                                        "E: message 552 local",
                                        "E: ready",
                                        "C: QUIT",
                                        "S: 221 Bye",
                                        "E: closed 221",
                                        NULL};

static const char *const t_greeting_refused[] = {
    "S: 554 5.7.1 No service for you",
    "E: rcpt 0 554",
    "E: rcpt 1 554",
    "E: message 554",
    "E: closed 554",
    NULL};

/* DSN and BODY parameters go to a server that offers them. */
static const char *const t_dsn[] = {
    "S: 220 mx.test",
    "C: EHLO client.test",
    "S: 250-mx.test",
    "S: 250-DSN",
    "S: 250-8BITMIME",
    "S: 250-SIZE",
    "S: 250 PIPELINING",
    "E: ready",
    "C: MAIL FROM:<a@x.test> SIZE=47 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1",
    "C: RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@y.test",
    "C: RCPT TO:<c@y.test> NOTIFY=NEVER",
    "C: DATA",
    "S: 250 Ok",
    "S: 250 Ok",
    "S: 250 Ok",
    "S: 354 Go",
    BODY_DATA,
    "S: 250 Ok",
    "E: rcpt 0 250",
    "E: rcpt 1 250",
    "E: message 250",
    "E: ready",
    "C: QUIT",
    "S: 221 Bye",
    "E: closed 221",
    NULL};

/* The same message to a server without DSN: the parameters stay home. */
static const char *const t_no_dsn[] = {"S: 220 mx.test",
                                       "C: EHLO client.test",
                                       "S: 250-mx.test",
                                       "S: 250 PIPELINING",
                                       "E: ready",
                                       "C: MAIL FROM:<a@x.test>",
                                       "C: RCPT TO:<b@y.test>",
                                       "C: RCPT TO:<c@y.test>",
                                       "C: DATA",
                                       "S: 250 Ok",
                                       "S: 250 Ok",
                                       "S: 250 Ok",
                                       "S: 354 Go",
                                       BODY_DATA,
                                       "S: 250 Ok",
                                       "E: rcpt 0 250",
                                       "E: rcpt 1 250",
                                       "E: message 250",
                                       "E: ready",
                                       "C: QUIT",
                                       "S: 221 Bye",
                                       "E: closed 221",
                                       NULL};

static const transcript transcripts[] = {
    {"dsn", F_DSN, t_dsn},
    {"no_dsn", F_DSN, t_no_dsn},
    {"pipelined", 0, t_pipelined},
    {"lockstep", 0, t_lockstep},
    {"starttls_bdat", F_STARTTLS | F_CHUNKING | F_AUTH | F_WHOLE,
     t_starttls_bdat},
    {"auth_login", F_AUTH | F_TLS | F_NULLFROM, t_auth_login},
    {"mail_refused", F_TWO, t_mail_refused},
    {"421", 0, t_421},
    {"starttls_injection", F_STARTTLS | F_EARLY, t_starttls_injection},
    {"malformed", F_EARLY, t_malformed},
    {"tls_required", F_REQUIRE | F_EARLY, t_tls_required},
    {"too_big", 0, t_too_big},
    {"greeting_refused", F_EARLY, t_greeting_refused},
};

#define NTRANSCRIPTS (sizeof(transcripts) / sizeof(transcripts[0]))

static void test_transcripts(void **state) {
  size_t i;

  (void)state;
  for (i = 0; i < NTRANSCRIPTS; i++)
    run_transcript(&transcripts[i]);
}

/* Every allocation of every transcript fails in turn: the run ends early
   but never crashes, and nothing leaks. */
static void test_alloc_sweep(void **state) {
  static turns tu;
  size_t i;

  (void)state;
  for (i = 0; i < NTRANSCRIPTS; i++) {
    size_t fail_at, total;
    harness h;
    build(&transcripts[i], &tu);
    assert_int_equal(start(&h, transcripts[i].flags, 0), 0);
    play(&h, &tu, 5);
    total = h.tm.calls;
    stop(&h);
    for (fail_at = 1; fail_at <= total; fail_at++) {
      if (start(&h, transcripts[i].flags, fail_at) == 0)
        play(&h, &tu, 5);
      stop(&h);
    }
  }
}

/* Q5: the connection drops after the final dot: the caller terminates and
   every accepted recipient is left temporary (the queue retries). */
static void test_q5_lost_after_dot(void **state) {
  static turns tu;
  static const char *const lines[] = {"S: 220 mx.test",
                                      "C: EHLO client.test",
                                      "S: 250 mx.test",
                                      "E: ready",
                                      "C: MAIL FROM:<a@x.test>",
                                      "S: 250 Ok",
                                      "C: RCPT TO:<b@y.test>",
                                      "S: 250 Ok",
                                      "C: RCPT TO:<c@y.test>",
                                      "S: 550 No",
                                      "C: DATA",
                                      "S: 354 Go",
                                      BODY_DATA,
                                      NULL};
  const transcript t = {"q5", 0, lines};
  harness h;

  (void)state;
  build(&t, &tu);
  assert_int_equal(start(&h, 0, 0), 0);
  assert_int_equal(play(&h, &tu, 1000), 0);
  assert_string_equal(h.out, tu.out);
  assert_int_equal(maild_smtp_client_get_phase(h.c),
                   MAILD_SMTP_CLIENT_DATA_END);
  assert_int_equal(maild_smtp_client_phase_timeout(MAILD_SMTP_CLIENT_DATA_END),
                   600000);
  assert_int_equal(maild_smtp_client_terminate(h.c, 451, "4.4.2",
                                               "connection lost after data"),
                   0);
  assert_string_equal(h.events, "ready\nrcpt 1 550\nrcpt 0 451 local\n"
                                "message 451 local\n");
  assert_int_equal(maild_smtp_client_get_phase(h.c), MAILD_SMTP_CLIENT_CLOSED);
  assert_int_equal(maild_smtp_client_want_read(h.c), 0);
  assert_int_equal(maild_smtp_client_last_error(h.c)->code, 451);
  stop(&h);
}

/* A large body streams under the output backlog, with dots and bare line
   ends at every piece boundary. */
static void test_q7_large_body(void **state) {
  static char body[200000], want[420000];
  static turns tu;
  static const char *const lines[] = {"S: 220 mx.test", "C: EHLO client.test",
                                      "S: 250-mx.test", "S: 250 PIPELINING",
                                      NULL};
  const transcript t = {"big", 0, lines};
  size_t i, w = 0, sent = 0;
  harness h;
  const uint8_t *p;
  maild_ssize n;
  char *got;
  static const char replies[] = "250 a\r\n250 b\r\n250 c\r\n354 d\r\n";

  (void)state;
  for (i = 0; i + 1 < sizeof(body); i++)
    body[i] = "a.\n\r.b\r\n."[i % 10];
  body[sizeof(body) - 1] = '\0';
  /* The expected form: CRLF ends, doubled leading dots, ".\r\n" at end. */
  {
    int bol = 1;
    for (i = 0; body[i] != '\0'; i++) {
      char ch = body[i];
      if (ch == '\r' || ch == '\n') {
        if (ch == '\r' && body[i + 1] == '\n')
          i++;
        want[w++] = '\r';
        want[w++] = '\n';
        bol = 1;
        continue;
      }
      if (bol && ch == '.')
        want[w++] = '.';
      want[w++] = ch;
      bol = 0;
    }
    if (!bol) {
      want[w++] = '\r';
      want[w++] = '\n';
    }
    memcpy(want + w, ".\r\n", 4);
    w += 3;
  }
  build(&t, &tu);
  assert_int_equal(start(&h, 0, 0), 0);
  h.body = body;
  h.read_size = 4093;
  assert_int_equal(play(&h, &tu, 1000), 0);
  assert_true(strstr(h.out, "DATA\r\n") != NULL);
  assert_int_equal(
      maild_smtp_client_recv(h.c, (const uint8_t *)replies, strlen(replies)),
      (maild_ssize)strlen(replies));
  got = malloc(sizeof(want));
  assert_non_null(got);
  while ((n = maild_smtp_client_send(h.c, &p)) > 0) {
    assert_true(sent + (size_t)n <= sizeof(want));
    assert_true((size_t)n <= 65536 + 64 * 1024); /* the backlog holds */
    memcpy(got + sent, p, (size_t)n);
    sent += (size_t)n;
  }
  assert_int_equal(n, 0);
  assert_int_equal(sent, w);
  assert_memory_equal(got, want, w);
  free(got);
  stop(&h);
}

/* Q6: multi-line replies and replies split at every octet are covered by
   the transcripts; here a line past the parser's limit. */
static void test_q6_reply_limits(void **state) {
  harness h;
  char line[4000];
  maild_ssize n;

  (void)state;
  assert_int_equal(start(&h, F_EARLY, 0), 0);
  memset(line, 'x', sizeof(line));
  memcpy(line, "220 ", 4);
  memcpy(line + sizeof(line) - 2, "\r\n", 2);
  n = maild_smtp_client_recv(h.c, (const uint8_t *)line, sizeof(line));
  assert_true(n >= 0);
  assert_int_equal(maild_smtp_client_get_phase(h.c), MAILD_SMTP_CLIENT_CLOSED);
  assert_int_equal(maild_smtp_client_last_error(h.c)->code, 421);
  assert_int_equal(maild_smtp_client_last_error(h.c)->local, 1);
  assert_string_equal(h.events, "rcpt 0 421 local\nrcpt 1 421 local\n"
                                "message 421 local\n");
  stop(&h);
}

static void test_api_edges(void **state) {
  harness h;
  maild_smtp_client_message m;
  maild_smtp_client_rcpt r = {"b@y.test", NULL, NULL};
  const uint8_t *p;

  (void)state;
  assert_int_equal(maild_smtp_client_new(NULL, NULL, NULL, NULL, NULL),
                   MAILD_ERR_INVAL);
  assert_int_equal(start(&h, 0, 0), 0);
  memset(&m, 0, sizeof(m));
  m.from = "a@x.test";
  m.rcpts = &r;
  m.nrcpts = 0;
  assert_int_equal(maild_smtp_client_submit(h.c, &m), MAILD_ERR_INVAL);
  m.nrcpts = 1;
  m.from = "a@x.test>\r\nRCPT TO:<evil@z.test";
  assert_int_equal(maild_smtp_client_submit(h.c, &m), MAILD_ERR_INVAL);
  m.from = "a b@x.test";
  assert_int_equal(maild_smtp_client_submit(h.c, &m), MAILD_ERR_INVAL);
  m.from = "a@x.test";
  r.address = "";
  assert_int_equal(maild_smtp_client_submit(h.c, &m), MAILD_ERR_INVAL);
  r.address = "b@y.test";
  r.notify = "NEVER\r\nQUIT";
  assert_int_equal(maild_smtp_client_submit(h.c, &m), MAILD_ERR_INVAL);
  r.notify = NULL;
  assert_int_equal(maild_smtp_client_submit(h.c, &m), 0);
  assert_int_equal(maild_smtp_client_submit(h.c, &m), MAILD_ERR_STATE);
  assert_int_equal(maild_smtp_client_resume(h.c), MAILD_ERR_STATE);
  assert_int_equal(maild_smtp_client_tls_started(h.c), MAILD_ERR_STATE);
  assert_int_equal(maild_smtp_client_set_auth(h.c, "", "x"), MAILD_ERR_INVAL);
  assert_int_equal(maild_smtp_client_terminate(h.c, 250, NULL, "x"),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_smtp_client_terminate(h.c, 451, "5.0.0", "x"),
                   MAILD_ERR_INVAL);
  assert_null(maild_smtp_client_last_error(h.c));
  assert_int_equal(maild_smtp_client_send(h.c, &p), 0);
  assert_int_equal(maild_smtp_client_get_phase(h.c),
                   MAILD_SMTP_CLIENT_GREETING);
  assert_int_equal(maild_smtp_client_quit(h.c), 0);
  assert_int_equal(maild_smtp_client_quit(h.c), MAILD_ERR_STATE);
  stop(&h);
  assert_int_equal(maild_smtp_client_phase_timeout(MAILD_SMTP_CLIENT_GREETING),
                   300000);
  assert_int_equal(maild_smtp_client_phase_timeout(MAILD_SMTP_CLIENT_DATA),
                   120000);
  assert_int_equal(maild_smtp_client_phase_timeout(MAILD_SMTP_CLIENT_BODY),
                   180000);
  assert_int_equal(maild_smtp_client_phase_timeout(MAILD_SMTP_CLIENT_IDLE), 0);
  maild_smtp_client_del(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_transcripts),
      cmocka_unit_test(test_alloc_sweep),
      cmocka_unit_test(test_q5_lost_after_dot),
      cmocka_unit_test(test_q7_large_body),
      cmocka_unit_test(test_q6_reply_limits),
      cmocka_unit_test(test_api_edges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
