/*
 * Unit tests for the POP3 server engine. A small transcript runner replays
 * C:/S:/E: scripts (client lines, server lines, embedder events) with the
 * client's octets offered in chunks of every size, with and without every
 * decision deferred, and compares output and events byte for byte. Focused
 * tests cover TESTPLAN P1, P2, P3, P5, P6 and T4, streaming under a small
 * output backlog, and an allocation-failure sweep that must end without
 * leaks.
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
#include "maild/pop3_server.h"
#include "testmem.h"

/* The maildrop every test logs in to. */
static const char *const contents[] = {
    "Subject: a\r\n\r\nHello\r\n",
    "Subject: b\r\nX: y\r\n\r\n.dot line\r\nline2\r\n..\r\nend\r\n",
    "Subject: c\n\nbody1\nbody2\rbody3",
};
static const char *const uidls[] = {"uid-a", "uid-b", "uid-c"};
#define NMSG 3

enum {
  F_PLAIN = 1u << 0, /* AUTH_PLAINTEXT */
  F_STLS = 1u << 1,  /* STARTTLS offered */
  F_SASL = 1u << 2,  /* AUTH_MECHANISMS "PLAIN" */
  F_TLS = 1u << 3,   /* TLS_ACTIVE */
};

typedef struct harness {
  testmem tm;
  maild_pop3_server *s;
  int defer;        /* callbacks defer their answers */
  int pending;      /* a decision was deferred */
  int read_pending; /* an on_read was deferred */
  int read_toggle;  /* alternates deferral of reads */
  maild_pop3_reply planned;
  const char *const *msgs; /* message contents */
  size_t nmsgs;
  size_t read_size; /* octets on_read gives at most */
  size_t reads;     /* on_read calls that gave data */
  int updates;      /* on_update calls */
  char events[2048];
  char out[1 << 16];
  size_t out_len;
  size_t max_send; /* largest single send() */
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

/* Size with every line end as CRLF (RFC 1939 11). */
static uint64_t crlf_len(const char *p) {
  uint64_t n = 0;

  for (; *p != '\0'; p++) {
    if (*p == '\r' && p[1] == '\n')
      continue;
    n += (*p == '\r' || *p == '\n') ? 2 : 1;
  }
  return n;
}

static int give_maildrop(harness *h, maild_pop3_server *s) {
  maild_pop3_msg m[8];
  size_t i;

  for (i = 0; i < h->nmsgs; i++) {
    m[i].size = crlf_len(h->msgs[i]);
    m[i].uidl = uidls[i % NMSG];
  }
  return maild_pop3_server_set_maildrop(s, m, h->nmsgs);
}

static int finish(harness *h, maild_pop3_reply *reply) {
  if (h->defer) {
    h->pending = 1;
    return MAILD_ERR_DEFER;
  }
  *reply = h->planned;
  return 0;
}

static int on_auth(maild_pop3_server *s, const maild_pop3_auth *a,
                   maild_pop3_reply *reply, void *ud) {
  harness *h = ud;
  static const char plain[] = "AGFsaWNlAHNlY3JldA=="; /* \0alice\0secret */
  int good = 0, busy = 0;

  if (strcmp(a->mechanism, "USER") == 0) {
    event(h, "auth %.*s %.*s", (int)a->user_len, a->user, (int)a->password_len,
          a->password);
    good = a->user_len == 5 && memcmp(a->user, "alice", 5) == 0 &&
           a->password_len == 6 && memcmp(a->password, "secret", 6) == 0;
    busy = a->user_len == 4 && memcmp(a->user, "busy", 4) == 0;
  } else {
    event(h, "sasl %s %u %.*s", a->mechanism, a->step,
          a->response != NULL ? (int)a->response_len : 4,
          a->response != NULL ? a->response : "NULL");
    if (a->response == NULL) {
      h->planned.status = MAILD_POP3_CONTINUE;
      h->planned.code = NULL;
      h->planned.text = "";
      return finish(h, reply);
    }
    good = a->response_len == strlen(plain) &&
           memcmp(a->response, plain, a->response_len) == 0;
  }
  h->planned.text = NULL;
  h->planned.code = NULL;
  if (good) {
    if (give_maildrop(h, s) != 0)
      return MAILD_ERR_NOMEM;
    h->planned.status = MAILD_POP3_OK;
  } else if (busy) {
    h->planned.status = MAILD_POP3_ERR;
    h->planned.code = "IN-USE";
    h->planned.text = "Mailbox locked by another session";
  } else {
    h->planned.status = MAILD_POP3_ERR;
    h->planned.code = "AUTH";
    h->planned.text = "Invalid credentials";
  }
  return finish(h, reply);
}

static int on_read(maild_pop3_server *s, size_t index, uint64_t offset,
                   uint8_t *buf, size_t cap, size_t *len, void *ud) {
  harness *h = ud;
  const char *m = h->msgs[index];
  size_t total = strlen(m), n;

  (void)s;
  if (h->defer && (h->read_toggle ^= 1) != 0) {
    h->read_pending = 1;
    return MAILD_ERR_DEFER;
  }
  assert_true(offset <= total);
  n = total - (size_t)offset;
  if (n > cap)
    n = cap;
  if (n > h->read_size)
    n = h->read_size;
  memcpy(buf, m + offset, n);
  *len = n;
  if (n > 0)
    h->reads++;
  return 0;
}

static int on_update(maild_pop3_server *s, const size_t *deleted, size_t n,
                     maild_pop3_reply *reply, void *ud) {
  harness *h = ud;
  char text[256] = "update";
  size_t i, len = strlen(text);

  (void)s;
  h->updates++;
  for (i = 0; i < n; i++)
    len += (size_t)snprintf(text + len, sizeof(text) - len, " %zu", deleted[i]);
  event(h, "%s", text);
  h->planned.status = MAILD_POP3_DEFAULT;
  h->planned.code = NULL;
  h->planned.text = NULL;
  return finish(h, reply);
}

static const maild_pop3_server_callbacks callbacks = {on_auth, on_read,
                                                      on_update, NULL};

/* Creates the session; returns the constructor's result. */
static int start(harness *h, unsigned flags, size_t fail_at, size_t backlog) {
  maild_options *opt;
  int r;

  memset(h, 0, sizeof(*h));
  testmem_init(&h->tm, 0);
  h->msgs = contents;
  h->nmsgs = NMSG;
  h->read_size = 7;
  assert_int_equal(maild_options_new(&opt, NULL), 0);
  assert_int_equal(maild_options_set_string(opt, MAILD_OPT_HOSTNAME, "mx.test"),
                   0);
  maild_options_set_uint(opt, MAILD_OPT_AUTH_PLAINTEXT,
                         flags & F_PLAIN ? 1 : 0);
  maild_options_set_uint(opt, MAILD_OPT_STARTTLS, flags & F_STLS ? 1 : 0);
  maild_options_set_uint(opt, MAILD_OPT_TLS_ACTIVE, flags & F_TLS ? 1 : 0);
  maild_options_set_uint(opt, MAILD_OPT_MAX_ERRORS, 30);
  if (backlog != 0)
    maild_options_set_uint(opt, MAILD_OPT_OUTPUT_BACKLOG, backlog);
  if (flags & F_SASL)
    maild_options_set_string(opt, MAILD_OPT_AUTH_MECHANISMS, "PLAIN");
  h->tm.fail_at = fail_at;
  r = maild_pop3_server_new(&h->s, &callbacks, h, opt, &h->tm.mem);
  maild_options_del(opt);
  return r;
}

static void stop(harness *h) {
  maild_pop3_server_del(h->s);
  h->s = NULL;
  assert_int_equal(h->tm.live, 0);
}

/* Takes all pending output; returns nonzero if there was any. */
static int drain(harness *h) {
  const uint8_t *p;
  maild_ssize n;
  int any = 0;

  while ((n = maild_pop3_server_send(h->s, &p)) > 0) {
    any = 1;
    if ((size_t)n > h->max_send)
      h->max_send = (size_t)n;
    assert_true(h->out_len + (size_t)n < sizeof(h->out));
    {
      memcpy(h->out + h->out_len, p, (size_t)n);
      h->out_len += (size_t)n;
    }
  }
  h->out[h->out_len] = '\0';
  return any || n < 0;
}

/* Answers what was deferred; returns nonzero if something was. */
static int answer(harness *h) {
  if (h->pending) {
    h->pending = 0;
    assert_int_equal(maild_pop3_server_reply(h->s, &h->planned), 0);
    return 1;
  }
  if (h->read_pending) {
    h->read_pending = 0;
    assert_int_equal(maild_pop3_server_resume(h->s), 0);
    return 1;
  }
  return 0;
}

/* Plays the client: offers `in` in pieces of at most `chunk` octets,
   answers deferrals, drains output. Stops at the end or when closing.
   With `tolerate_nomem`, MAILD_ERR_NOMEM ends the run. */
static void play(harness *h, const char *in, size_t chunk, int tolerate_nomem) {
  size_t len = strlen(in), pos = 0, idle = 0;

  while (idle < 4) {
    int progress = drain(h) || answer(h);
    maild_ssize n = 0;

    if (maild_pop3_server_closing(h->s)) {
      drain(h);
      return;
    }
    if (maild_pop3_server_phase(h->s) == MAILD_POP3_PHASE_TLS)
      assert_int_equal(maild_pop3_server_tls_started(h->s), 0);
    if (pos < len || maild_pop3_server_want_write(h->s)) {
      size_t k = len - pos < chunk ? len - pos : chunk;

      n = maild_pop3_server_recv(h->s, (const uint8_t *)in + pos, k);
      if (n < 0) {
        assert_true(tolerate_nomem);
        assert_int_equal(n, MAILD_ERR_NOMEM);
        if (maild_pop3_server_closing(h->s))
          return;
        n = 0;
      }
      pos += (size_t)n;
    }
    idle = progress || n > 0 ? 0 : idle + 1;
  }
  drain(h);
}

/* ---- Transcripts ---- */

typedef struct transcript {
  const char *name;
  unsigned flags;
  const char *const *lines; /* "C: ", "S: ", "E: ", NULL-terminated */
} transcript;

static void build(const transcript *t, char *in, char *out, char *ev,
                  size_t cap) {
  size_t i;

  in[0] = out[0] = ev[0] = '\0';
  for (i = 0; t->lines[i] != NULL; i++) {
    const char *l = t->lines[i];
    char *dst = l[0] == 'C' ? in : l[0] == 'S' ? out : ev;
    const char *end = l[0] == 'E' ? "\n" : "\r\n";

    assert_true(strlen(dst) + strlen(l) + 2 < cap);
    strcat(dst, l + 3);
    strcat(dst, end);
  }
}

static void run_transcript(const transcript *t) {
  static char in[4096], out[8192], ev[2048];
  size_t chunk, len;
  int defer;

  build(t, in, out, ev, sizeof(in));
  len = strlen(in);
  for (defer = 0; defer < 2; defer++)
    for (chunk = 1; chunk <= len; chunk++) {
      harness h;

      assert_int_equal(start(&h, t->flags, 0, 0), 0);
      h.defer = defer;
      play(&h, in, chunk, 0);
      if (strcmp(h.out, out) != 0 || strcmp(h.events, ev) != 0)
        fail_msg("%s (chunk %zu, defer %d):\n--- got:\n%s\n--- want:\n%s\n"
                 "--- events:\n%s--- want:\n%s",
                 t->name, chunk, defer, h.out, out, h.events, ev);
      stop(&h);
    }
}

static const char *const t_basic[] = {
    "S: +OK mx.test POP3 server ready",
    "C: USER alice",
    "S: +OK Send password",
    "C: pass secret",
    "E: auth alice secret",
    "S: +OK Logged in",
    "C: STAT",
    "S: +OK 3 101",
    "C: LIST",
    "S: +OK Scan listing follows",
    "S: 1 21",
    "S: 2 47",
    "S: 3 33",
    "S: .",
    "C: LIST 2",
    "S: +OK 2 47",
    "C: UIDL",
    "S: +OK Unique-id listing follows",
    "S: 1 uid-a",
    "S: 2 uid-b",
    "S: 3 uid-c",
    "S: .",
    "C: uidl 3",
    "S: +OK 3 uid-c",
    "C: RETR 1",
    "S: +OK 21 octets",
    "S: Subject: a",
    "S: ",
    "S: Hello",
    "S: .",
    "C: DELE 1",
    "S: +OK Message deleted",
    "C: DELE 3",
    "S: +OK Message deleted",
    "C: STAT",
    "S: +OK 1 47",
    "C: LIST",
    "S: +OK Scan listing follows",
    "S: 2 47",
    "S: .",
    "C: NOOP",
    "S: +OK",
    "C: QUIT",
    "E: update 0 2",
    "S: +OK mx.test POP3 server signing off",
    NULL,
};

/* P3: dot-stuffing, CRLF normalisation, TOP. */
static const char *const t_retr[] = {
    "S: +OK mx.test POP3 server ready",
    "C: USER alice",
    "S: +OK Send password",
    "C: PASS secret",
    "E: auth alice secret",
    "S: +OK Logged in",
    "C: RETR 2",
    "S: +OK 47 octets",
    "S: Subject: b",
    "S: X: y",
    "S: ",
    "S: ..dot line",
    "S: line2",
    "S: ...",
    "S: end",
    "S: .",
    "C: RETR 3",
    "S: +OK 33 octets",
    "S: Subject: c",
    "S: ",
    "S: body1",
    "S: body2",
    "S: body3",
    "S: .",
    "C: TOP 2 0",
    "S: +OK Top of message follows",
    "S: Subject: b",
    "S: X: y",
    "S: ",
    "S: .",
    "C: TOP 2 2",
    "S: +OK Top of message follows",
    "S: Subject: b",
    "S: X: y",
    "S: ",
    "S: ..dot line",
    "S: line2",
    "S: .",
    "C: TOP 3 1",
    "S: +OK Top of message follows",
    "S: Subject: c",
    "S: ",
    "S: body1",
    "S: .",
    "C: TOP 1 99",
    "S: +OK Top of message follows",
    "S: Subject: a",
    "S: ",
    "S: Hello",
    "S: .",
    "C: QUIT",
    "E: update",
    "S: +OK mx.test POP3 server signing off",
    NULL,
};

/* Every engine-side error. */
static const char *const t_errors[] = {
    "S: +OK mx.test POP3 server ready",
    "C: STAT",
    "S: -ERR Command not valid in this state",
    "C: PASS secret",
    "S: -ERR USER first",
    "C: XYZZY",
    "S: -ERR Unknown command",
    "C: ",
    "S: -ERR Unknown command",
    "C: USER",
    "S: -ERR Missing user name",
    "C: STLS",
    "S: -ERR STLS not available",
    "C: AUTH PLAIN",
    "S: -ERR Unsupported mechanism",
    "C: USER bob",
    "S: +OK Send password",
    "C: PASS wrong",
    "E: auth bob wrong",
    "S: -ERR [AUTH] Invalid credentials",
    "C: USER alice",
    "S: +OK Send password",
    "C: PASS secret",
    "E: auth alice secret",
    "S: +OK Logged in",
    "C: USER alice",
    "S: -ERR Command not valid in this state",
    "C: RETR",
    "S: -ERR Invalid message number",
    "C: RETR 0",
    "S: -ERR No such message",
    "C: RETR 4",
    "S: -ERR No such message",
    "C: RETR x1",
    "S: -ERR Invalid message number",
    "C: RETR 1 2",
    "S: -ERR Syntax error",
    "C: TOP 1",
    "S: -ERR Syntax error",
    "C: TOP 1 -1",
    "S: -ERR Syntax error",
    "C: DELE 2",
    "S: +OK Message deleted",
    "C: DELE 2",
    "S: -ERR No such message",
    "C: LIST 2",
    "S: -ERR No such message",
    "C: UIDL 2",
    "S: -ERR No such message",
    "C: RSET",
    "S: +OK",
    "C: LIST 2",
    "S: +OK 2 47",
    "C: QUIT",
    "E: update",
    "S: +OK mx.test POP3 server signing off",
    NULL,
};

/* P2: the lock failure passes through; QUIT before login updates
   nothing. */
static const char *const t_in_use[] = {
    "S: +OK mx.test POP3 server ready",
    "C: USER busy",
    "S: +OK Send password",
    "C: PASS x y",
    "E: auth busy x y",
    "S: -ERR [IN-USE] Mailbox locked by another session",
    "C: QUIT",
    "S: +OK mx.test POP3 server signing off",
    NULL,
};

/* RFC 5034: initial response, continuation, cancel. */
static const char *const t_sasl[] = {
    "S: +OK mx.test POP3 server ready",
    "C: CAPA",
    "S: +OK Capability list follows",
    "S: TOP",
    "S: UIDL",
    "S: RESP-CODES",
    "S: AUTH-RESP-CODE",
    "S: PIPELINING",
    "S: USER",
    "S: SASL PLAIN",
    "S: IMPLEMENTATION libmaild",
    "S: .",
    "C: AUTH PLAIN",
    "E: sasl PLAIN 0 NULL",
    "S: + ",
    "C: *",
    "S: -ERR Authentication cancelled",
    "C: AUTH plain",
    "E: sasl PLAIN 0 NULL",
    "S: + ",
    "C: AGZvbwBiYXI=",
    "E: sasl PLAIN 1 AGZvbwBiYXI=",
    "S: -ERR [AUTH] Invalid credentials",
    "C: AUTH PLAIN AGFsaWNlAHNlY3JldA==",
    "E: sasl PLAIN 0 AGFsaWNlAHNlY3JldA==",
    "S: +OK Logged in",
    "C: CAPA",
    "S: +OK Capability list follows",
    "S: TOP",
    "S: UIDL",
    "S: RESP-CODES",
    "S: AUTH-RESP-CODE",
    "S: PIPELINING",
    "S: IMPLEMENTATION libmaild",
    "S: .",
    "C: QUIT",
    "E: update",
    "S: +OK mx.test POP3 server signing off",
    NULL,
};

/* T4: no USER/PASS/AUTH in the clear unless allowed. */
static const char *const t_tls_required[] = {
    "S: +OK mx.test POP3 server ready",
    "C: CAPA",
    "S: +OK Capability list follows",
    "S: TOP",
    "S: UIDL",
    "S: RESP-CODES",
    "S: AUTH-RESP-CODE",
    "S: PIPELINING",
    "S: STLS",
    "S: IMPLEMENTATION libmaild",
    "S: .",
    "C: USER alice",
    "S: -ERR [AUTH] Plaintext authentication disallowed without TLS",
    "C: PASS secret",
    "S: -ERR [AUTH] Plaintext authentication disallowed without TLS",
    "C: AUTH PLAIN AGFsaWNlAHNlY3JldA==",
    "S: -ERR [AUTH] Authentication disallowed without TLS",
    "C: QUIT",
    "S: +OK mx.test POP3 server signing off",
    NULL,
};

static const transcript transcripts[] = {
    {"basic", F_PLAIN, t_basic},
    {"retr", F_PLAIN, t_retr},
    {"errors", F_PLAIN, t_errors},
    {"in_use", F_PLAIN, t_in_use},
    {"sasl", F_PLAIN | F_SASL, t_sasl},
    {"tls_required", F_STLS | F_SASL, t_tls_required},
};

static void test_transcripts(void **state) {
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(transcripts) / sizeof(transcripts[0]); i++)
    run_transcript(&transcripts[i]);
}

/* ---- Focused tests ---- */

static void login(harness *h) {
  play(h, "USER alice\r\nPASS secret\r\n", 4096, 0);
  assert_true(maild_pop3_server_is_authenticated(h->s));
  h->out_len = 0;
  h->out[0] = '\0';
}

/* P1: deletions apply only on QUIT. */
static void test_p1_disconnect_keeps(void **state) {
  harness h;

  (void)state;
  assert_int_equal(start(&h, F_PLAIN, 0, 0), 0);
  login(&h);
  play(&h, "DELE 1\r\nDELE 2\r\n", 4096, 0);
  assert_string_equal(h.out, "+OK Message deleted\r\n+OK Message deleted\r\n");
  assert_false(maild_pop3_server_closing(h.s));
  stop(&h);
  assert_int_equal(h.updates, 0);

  assert_int_equal(start(&h, F_PLAIN, 0, 0), 0);
  login(&h);
  play(&h, "DELE 1\r\nDELE 3\r\nQUIT\r\n", 4096, 0);
  assert_int_equal(h.updates, 1);
  assert_non_null(strstr(h.events, "update 0 2\n"));
  assert_true(maild_pop3_server_closing(h.s));
  stop(&h);
}

/* A failed update is reported with a response code. */
static void test_update_failure(void **state) {
  harness h;

  (void)state;
  assert_int_equal(start(&h, F_PLAIN, 0, 0), 0);
  login(&h);
  h.defer = 1;
  play(&h, "DELE 1\r\n", 4096, 0);
  assert_int_equal(maild_pop3_server_recv(h.s, (const uint8_t *)"QUIT\r\n", 6),
                   6);
  assert_int_equal(maild_pop3_server_phase(h.s), MAILD_POP3_PHASE_DECISION);
  assert_false(maild_pop3_server_want_read(h.s));
  h.planned.status = MAILD_POP3_ERR;
  h.planned.code = NULL;
  h.planned.text = NULL;
  assert_int_equal(maild_pop3_server_reply(h.s, &h.planned), 0);
  assert_int_equal(maild_pop3_server_reply(h.s, NULL), MAILD_ERR_STATE);
  drain(&h);
  assert_string_equal(h.out, "+OK Message deleted\r\n"
                             "-ERR [SYS/TEMP] Some deleted messages not "
                             "removed\r\n");
  assert_true(maild_pop3_server_closing(h.s));
  stop(&h);
}

/* P3: LIST octets equal the octets between "+OK" and ".". */
static void test_p3_list_matches_retr(void **state) {
  static char big[50000];
  const char *msgs[1];
  harness h;
  size_t i, n = 0;
  char *body, *end;
  unsigned long long listed;

  (void)state;
  for (i = 0; n + 80 < sizeof(big) - 1; i++)
    n += (size_t)snprintf(big + n, sizeof(big) - n,
                          "%sLine %zu of a long message body\r\n",
                          i == 3 ? "\r\n" : "", i);
  msgs[0] = big;
  assert_int_equal(start(&h, F_PLAIN, 0, 1024), 0);
  h.msgs = msgs;
  h.nmsgs = 1;
  h.read_size = 100000;
  login(&h);
  play(&h, "LIST 1\r\n", 4096, 0);
  assert_int_equal(sscanf(h.out, "+OK 1 %llu", &listed), 1);
  h.out_len = 0;
  h.max_send = 0;
  play(&h, "RETR 1\r\n", 4096, 0);
  body = strstr(h.out, "\r\n");
  assert_non_null(body);
  body += 2;
  end = h.out + h.out_len - 3;
  assert_string_equal(end, ".\r\n");
  assert_int_equal((unsigned long long)(end - body), listed);
  assert_memory_equal(body, big, strlen(big));
  /* Streamed under the backlog: never much more than 1024 + one chunk. */
  assert_true(h.max_send <= 1024 + 2 * 4096 + 64);
  /* TOP stops pulling once it has its lines. */
  h.reads = 0;
  h.out_len = 0;
  play(&h, "TOP 1 1\r\n", 4096, 0);
  assert_int_equal(h.reads, 1);
  assert_non_null(strstr(h.out, "\r\n\r\nLine 3 of a long message body\r\n."
                                "\r\n"));
  stop(&h);
}

/* P5: commands pipelined behind STLS are discarded. */
static void test_p5_stls_discards(void **state) {
  static const char in[] = "STLS\r\nUSER alice\r\nPASS secret\r\n";
  harness h;

  (void)state;
  assert_int_equal(start(&h, F_STLS, 0, 0), 0);
  drain(&h);
  h.out_len = 0;
  assert_int_equal(
      maild_pop3_server_recv(h.s, (const uint8_t *)in, sizeof(in) - 1),
      (maild_ssize)(sizeof(in) - 1));
  drain(&h);
  assert_string_equal(h.out, "+OK Begin TLS negotiation\r\n");
  assert_int_equal(maild_pop3_server_phase(h.s), MAILD_POP3_PHASE_TLS);
  assert_false(maild_pop3_server_want_read(h.s));
  assert_int_equal(maild_pop3_server_recv(h.s, (const uint8_t *)"NOOP\r\n", 6),
                   6);
  assert_string_equal(h.events, "");
  assert_int_equal(maild_pop3_server_tls_started(h.s), 0);
  assert_int_equal(maild_pop3_server_tls_started(h.s), MAILD_ERR_STATE);
  assert_true(maild_pop3_server_is_tls(h.s));
  h.out_len = 0;
  play(&h, "STLS\r\nCAPA\r\nUSER alice\r\nPASS secret\r\n", 4096, 0);
  assert_string_equal(h.events, "auth alice secret\n");
  assert_non_null(strstr(h.out, "-ERR Command not permitted when TLS active"));
  assert_non_null(strstr(h.out, "\r\nUSER\r\n"));
  assert_null(strstr(h.out, "STLS\r\n"));
  assert_true(maild_pop3_server_is_authenticated(h.s));
  stop(&h);
}

/* P6: overlong lines get -ERR; 10 MiB without LF stays bounded. */
static void test_p6_long_lines(void **state) {
  char line[300];
  harness h;
  size_t i, calls;
  static uint8_t junk[1 << 16];

  (void)state;
  assert_int_equal(start(&h, F_PLAIN, 0, 0), 0);
  drain(&h);
  h.out_len = 0;
  /* 255 octets with CRLF is the limit (RFC 2449 4). */
  memset(line, 'x', sizeof(line));
  memcpy(line, "NOOP ", 5);
  memcpy(line + 253, "\r\n", 3);
  play(&h, line, 4096, 0);
  assert_string_equal(h.out, "-ERR Command not valid in this state\r\n");
  h.out_len = 0;
  memcpy(line + 253, "x\r\n", 4);
  play(&h, line, 4096, 0);
  assert_string_equal(h.out, "-ERR Line too long\r\n");
  h.out_len = 0;
  memset(junk, 'j', sizeof(junk));
  calls = h.tm.calls;
  for (i = 0; i < 160; i++)
    assert_int_equal(maild_pop3_server_recv(h.s, junk, sizeof(junk)),
                     (maild_ssize)sizeof(junk));
  assert_true(h.tm.calls - calls < 8);
  play(&h, "\r\nNOOP\r\n", 4096, 0);
  assert_string_equal(h.out, "-ERR Line too long\r\n"
                             "-ERR Command not valid in this state\r\n");
  stop(&h);
}

/* MAX_ERRORS ends the session. */
static void test_max_errors(void **state) {
  harness h;
  int i;

  (void)state;
  assert_int_equal(start(&h, F_PLAIN, 0, 0), 0);
  for (i = 0; i < 29; i++)
    play(&h, "BAD\r\n", 4096, 0);
  assert_false(maild_pop3_server_closing(h.s));
  play(&h, "BAD\r\n", 4096, 0);
  assert_true(maild_pop3_server_closing(h.s));
  assert_non_null(strstr(h.out, "-ERR Too many errors, closing\r\n"));
  stop(&h);
}

/* A deferred login holds back the pipelined commands behind it. */
static void test_deferral_keeps_order(void **state) {
  static const char in[] = "USER alice\r\nPASS secret\r\nSTAT\r\nNOOP\r\n";
  harness h;
  maild_ssize n;

  (void)state;
  assert_int_equal(start(&h, F_PLAIN, 0, 0), 0);
  drain(&h);
  h.out_len = 0;
  h.defer = 1;
  n = maild_pop3_server_recv(h.s, (const uint8_t *)in, sizeof(in) - 1);
  assert_int_equal(n, 25); /* up to and including PASS */
  assert_int_equal(maild_pop3_server_phase(h.s), MAILD_POP3_PHASE_DECISION);
  assert_int_equal(maild_pop3_server_recv(h.s, (const uint8_t *)in + n, 6), 0);
  drain(&h);
  assert_string_equal(h.out, "+OK Send password\r\n");
  assert_true(h.pending);
  h.pending = 0;
  h.defer = 0;
  assert_int_equal(maild_pop3_server_reply(h.s, &h.planned), 0);
  play(&h, in + n, 4096, 0);
  assert_string_equal(h.out, "+OK Send password\r\n+OK Logged in\r\n"
                             "+OK 3 101\r\n+OK\r\n");
  stop(&h);
}

/* A read failure before any content is a -ERR; after, the session ends. */
static int failing_read(maild_pop3_server *s, size_t index, uint64_t offset,
                        uint8_t *buf, size_t cap, size_t *len, void *ud) {
  (void)s;
  (void)index;
  (void)buf;
  (void)cap;
  (void)ud;
  if (offset > 0)
    return MAILD_ERR_IO;
  memcpy(buf, "Subject: x\r\n", 12);
  *len = index == 0 ? 0 : 12;
  return index == 0 ? MAILD_ERR_IO : 0;
}

static void test_read_failure(void **state) {
  maild_pop3_server_callbacks cb = callbacks;
  maild_options *opt;
  harness h;

  (void)state;
  assert_int_equal(start(&h, F_PLAIN, 0, 0), 0);
  maild_pop3_server_del(h.s);
  cb.on_read = failing_read;
  assert_int_equal(maild_options_new(&opt, NULL), 0);
  maild_options_set_uint(opt, MAILD_OPT_AUTH_PLAINTEXT, 1);
  assert_int_equal(maild_pop3_server_new(&h.s, &cb, &h, opt, &h.tm.mem), 0);
  maild_options_del(opt);
  login(&h);
  play(&h, "RETR 1\r\nRETR 2\r\nNOOP\r\n", 4096, 0);
  assert_string_equal(h.out, "-ERR [SYS/TEMP] Cannot read message\r\n"
                             "+OK 47 octets\r\nSubject: x\r\n");
  assert_true(maild_pop3_server_closing(h.s));
  stop(&h);
}

/* An embedder answer without a code, and an embedder failure. */
static int bare_auth(maild_pop3_server *s, const maild_pop3_auth *a,
                     maild_pop3_reply *reply, void *ud) {
  (void)s;
  (void)ud;
  if (a->password_len == 4 && memcmp(a->password, "fail", 4) == 0)
    return MAILD_ERR_IO;
  reply->status = MAILD_POP3_ERR;
  return 0;
}

static void test_embedder_answers(void **state) {
  maild_pop3_server_callbacks cb = callbacks;
  maild_options *opt;
  harness h;

  (void)state;
  assert_int_equal(start(&h, F_PLAIN, 0, 0), 0);
  maild_pop3_server_del(h.s);
  cb.on_auth = bare_auth;
  assert_int_equal(maild_options_new(&opt, NULL), 0);
  maild_options_set_uint(opt, MAILD_OPT_TLS_ACTIVE, 1);
  maild_options_set_uint(opt, MAILD_OPT_STARTTLS, 1);
  assert_int_equal(maild_pop3_server_new(&h.s, &cb, &h, opt, &h.tm.mem), 0);
  maild_options_del(opt);
  play(&h, "CAPA\r\nUSER a\r\nPASS b\r\nUSER a\r\nPASS fail\r\nNOOP\r\n", 4096,
       0);
  assert_string_equal(h.out, "+OK localhost POP3 server ready\r\n"
                             "+OK Capability list follows\r\n"
                             "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
                             "PIPELINING\r\nUSER\r\n"
                             "IMPLEMENTATION libmaild\r\n.\r\n"
                             "+OK Send password\r\n"
                             "-ERR [AUTH] Authentication failed\r\n"
                             "+OK Send password\r\n"
                             "-ERR [SYS/TEMP] Internal error, closing\r\n");
  assert_true(maild_pop3_server_closing(h.s));
  assert_false(maild_pop3_server_want_read(h.s));
  assert_false(maild_pop3_server_want_write(h.s));
  stop(&h);
}

static void test_api_edges(void **state) {
  harness h;
  maild_pop3_msg bad = {1, "has space"};
  const uint8_t *p;

  (void)state;
  assert_int_equal(maild_pop3_server_new(NULL, NULL, NULL, NULL, NULL),
                   MAILD_ERR_INVAL);
  maild_pop3_server_del(NULL);
  assert_int_equal(start(&h, 0, 0, 0), 0);
  assert_int_equal(maild_pop3_server_set_maildrop(h.s, &bad, 1),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_pop3_server_set_maildrop(h.s, NULL, 1),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_pop3_server_reply(h.s, NULL), MAILD_ERR_STATE);
  assert_int_equal(maild_pop3_server_resume(h.s), MAILD_ERR_STATE);
  assert_int_equal(maild_pop3_server_phase(h.s),
                   MAILD_POP3_PHASE_AUTHORIZATION);
  assert_int_equal(maild_pop3_server_send(h.s, NULL), MAILD_ERR_INVAL);
  assert_int_equal(maild_pop3_server_terminate(h.s, "Autologout"), 0);
  assert_true(maild_pop3_server_send(h.s, &p) > 0);
  assert_int_equal(maild_pop3_server_phase(h.s), MAILD_POP3_PHASE_CLOSING);
  assert_int_equal(maild_pop3_server_recv(h.s, (const uint8_t *)"x", 1), 1);
  stop(&h);
  /* Implicit TLS: USER allowed, no STLS. */
  assert_int_equal(start(&h, F_STLS | F_TLS, 0, 0), 0);
  login(&h);
  stop(&h);
}

/* Every allocation fails once somewhere in a full session: no crash, no
   leak. */
static void test_nomem_sweep(void **state) {
  static char in[4096], out[8192], ev[2048];
  size_t fail_at, total;
  harness h;

  (void)state;
  build(&transcripts[0], in, out, ev, sizeof(in));
  strcat(in, "");
  assert_int_equal(start(&h, F_PLAIN | F_SASL, 0, 0), 0);
  play(&h, in, 5, 0);
  total = h.tm.calls;
  stop(&h);
  for (fail_at = 1; fail_at <= total + 1; fail_at++) {
    int r = start(&h, F_PLAIN | F_SASL, fail_at, 0);

    if (r != 0) {
      assert_int_equal(r, MAILD_ERR_NOMEM);
      assert_null(h.s);
      assert_int_equal(h.tm.live, 0);
      continue;
    }
    play(&h, in, 5, 1);
    stop(&h);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_transcripts),
      cmocka_unit_test(test_p1_disconnect_keeps),
      cmocka_unit_test(test_update_failure),
      cmocka_unit_test(test_p3_list_matches_retr),
      cmocka_unit_test(test_p5_stls_discards),
      cmocka_unit_test(test_p6_long_lines),
      cmocka_unit_test(test_max_errors),
      cmocka_unit_test(test_deferral_keeps_order),
      cmocka_unit_test(test_read_failure),
      cmocka_unit_test(test_embedder_answers),
      cmocka_unit_test(test_api_edges),
      cmocka_unit_test(test_nomem_sweep),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
