/*
 * libFuzzer harness for the whole SMTP server engine (TESTPLAN F1). The
 * harness plays network and embedder at once, the way the runtime does.
 *
 * Input layout:
 *   byte 0  options: bit 0 STARTTLS, bit 1 AUTH (PLAIN LOGIN; allowed
 *           in plaintext unless STARTTLS is offered), bit 2 small limits (size
 * 1024, 100 recipients, 5 errors, 3 Received, backlog 1024, no parameter
 * extra), bit 3 DEFER_GREETING, bit 4 TLS_ACTIVE, bit 5 no CHUNKING, bit 6 no
 * SMTPUTF8/DSN, bit 7 fail one allocation byte 1  which events defer (bit per
 * event, see `enum ev`) byte 2  which events refuse byte 3  seed for chunk
 * sizes, late answers, slow reading and the allocation to fail rest    the
 * client's octets, offered in chunks of varying size
 *
 * Callbacks answer from these bits and a small generator seeded by them,
 * so every run is reproducible. Deferred decisions are answered after the
 * engine has stalled on them; the TLS handshake "completes" whenever the
 * phase is TLS. The run aborts if the engine crashes, leaks (ASan), writes
 * a malformed reply line, lets output grow past its cap, waits for a
 * decision nobody owes, or stalls: recv() returning 0 again and again
 * while it wants to read, nothing is pending and output was drained.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maild/maild.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum ev {
  EV_HELO,
  EV_MAIL,
  EV_RCPT,
  EV_DATA_START,
  EV_CHUNK,
  EV_DATA_END,
  EV_STARTTLS,
  EV_AUTH,
};

enum {
  OPT_STARTTLS = 1u << 0,
  OPT_AUTH = 1u << 1,
  OPT_SMALL = 1u << 2,
  OPT_DEFER_GREETING = 1u << 3,
  OPT_TLS_ACTIVE = 1u << 4,
  OPT_NO_CHUNKING = 1u << 5,
  OPT_NO_UTF8_DSN = 1u << 6,
  OPT_FAIL_ALLOC = 1u << 7,
};

typedef struct fuzz {
  maild_smtp_server *s;
  unsigned defer_mask, refuse_mask;
  uint32_t rng;
  int deferred;       /* a callback returned MAILD_ERR_DEFER, not answered */
  int in_tx;          /* on_mail accepted (as far as the harness knows) */
  unsigned auth_step; /* SASL steps answered with 334 */
  uint64_t backlog;   /* OUTPUT_BACKLOG in force */
  /* Allocation failure. */
  size_t calls, fail_at;
} fuzz;

static void check(int ok) {
  if (!ok)
    abort();
}

static uint32_t next(fuzz *f) {
  /* xorshift32: deterministic, never 0 once seeded non-zero. */
  f->rng ^= f->rng << 13;
  f->rng ^= f->rng >> 17;
  f->rng ^= f->rng << 5;
  return f->rng;
}

/* ---- An allocator that can fail one allocation ---- */

static int fail_now(fuzz *f) {
  return ++f->calls == f->fail_at;
}

static void *f_malloc(size_t n, void *ud) {
  return fail_now(ud) ? NULL : malloc(n ? n : 1);
}

static void f_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

static void *f_calloc(size_t n, size_t m, void *ud) {
  return fail_now(ud) ? NULL : calloc(n ? n : 1, m ? m : 1);
}

static void *f_realloc(void *p, size_t n, void *ud) {
  return fail_now(ud) ? NULL : realloc(p, n ? n : 1);
}

/* ---- Callbacks ---- */

static const maild_reply refusals[] = {
    {550, "5.7.1", "Refused by policy"},
    {451, "4.3.0", "Try again later"},
    {554, NULL, NULL},
    {421, "4.7.0", "Closing"},
    {999, "9.9.9", "Out of range"},
    {550, "4.1.1", "Wrong class\r\n250 forged"},
};

/* The answer for one event: 0 (default), a refusal in *reply, or DEFER. */
static int decide(fuzz *f, enum ev e, maild_reply *reply) {
  uint32_t r = next(f);

  if (f->defer_mask & (1u << e)) {
    /* Defer about three times in four, so both paths stay covered. */
    if ((r & 3) != 0) {
      f->deferred = 1;
      return MAILD_ERR_DEFER;
    }
  }
  if ((f->refuse_mask & (1u << e)) && reply != NULL && ((r >> 2) & 1)) {
    *reply = refusals[(r >> 3) % (sizeof(refusals) / sizeof(refusals[0]))];
    return 0;
  }
  /* Rarely, a callback fails outright. */
  if ((r >> 8) % 257 == 0)
    return MAILD_ERR_INVAL;
  return 0;
}

static int on_helo(maild_smtp_server *s, const maild_smtp_helo *helo,
                   maild_reply *reply, void *ud) {
  (void)s;
  check(helo->name != NULL && helo->name_len > 0);
  return decide(ud, EV_HELO, reply);
}

static int on_mail(maild_smtp_server *s, const maild_smtp_mail *mail,
                   maild_reply *reply, void *ud) {
  fuzz *f = ud;
  size_t i;

  (void)s;
  /* Decoded parameter values never hold control octets (S8). */
  for (i = 0; i < mail->params->envid_len; i++)
    check((unsigned char)mail->params->envid[i] >= 0x20);
  for (i = 0; i < mail->from->local_len; i++)
    check(mail->from->local[i] != '\0');
  f->in_tx = 1;
  return decide(f, EV_MAIL, reply);
}

static int on_rcpt(maild_smtp_server *s, const maild_smtp_rcpt *rcpt,
                   maild_reply *reply, void *ud) {
  size_t i;

  (void)s;
  for (i = 0; i < rcpt->params->orcpt_len; i++)
    check((unsigned char)rcpt->params->orcpt[i] >= 0x20);
  return decide(ud, EV_RCPT, reply);
}

static int on_data_start(maild_smtp_server *s, maild_reply *reply, void *ud) {
  (void)s;
  return decide(ud, EV_DATA_START, reply);
}

static int on_data_chunk(maild_smtp_server *s, const uint8_t *p, size_t len,
                         void *ud) {
  fuzz *f = ud;

  uint32_t r = next(f);

  (void)s;
  check(p != NULL && len > 0);
  if ((f->defer_mask & (1u << EV_CHUNK)) && (r & 1)) {
    f->deferred = 1;
    return MAILD_ERR_DEFER;
  }
  return (r >> 8) % 509 == 0 ? MAILD_ERR_IO : 0;
}

static int on_data_end(maild_smtp_server *s, maild_reply *reply, void *ud) {
  fuzz *f = ud;

  (void)s;
  f->in_tx = 0;
  return decide(f, EV_DATA_END, reply);
}

static void on_tx_abort(maild_smtp_server *s, maild_smtp_abort why, void *ud) {
  fuzz *f = ud;

  (void)s;
  check(why >= MAILD_SMTP_ABORT_RSET && why <= MAILD_SMTP_ABORT_CLOSE);
  f->in_tx = 0;
}

static int on_starttls(maild_smtp_server *s, maild_reply *reply, void *ud) {
  (void)s;
  return decide(ud, EV_STARTTLS, reply);
}

static const maild_reply auth_replies[] = {
    {334, NULL, "VXNlcm5hbWU6"},
    {334, NULL, NULL},
    {235, "2.7.0", "Authentication successful"},
    {535, "5.7.8", "Authentication credentials invalid"},
    {454, "4.7.0", "Temporary authentication failure"},
};

static int on_auth(maild_smtp_server *s, const maild_smtp_auth *auth,
                   maild_reply *reply, void *ud) {
  fuzz *f = ud;
  int rc;

  (void)s;
  check(auth->mechanism != NULL);
  check(auth->response != NULL || auth->response_len == 0);
  rc = decide(f, EV_AUTH, reply);
  if (rc != 0 || reply->code != 0)
    return rc;
  /* A SASL step needs an answer: continue a few times, then end. */
  *reply = auth_replies[f->auth_step < 3 ? next(f) % 5 : 2 + next(f) % 3];
  f->auth_step++;
  return 0;
}

static void on_error(maild_smtp_server *s, int code, const char *line,
                     size_t len, void *ud) {
  (void)s;
  (void)ud;
  check(code >= 400 && code <= 599);
  check(line != NULL || len == 0);
}

static const maild_smtp_server_callbacks callbacks = {
    on_helo,     on_mail,     on_rcpt,     on_data_start, on_data_chunk,
    on_data_end, on_tx_abort, on_starttls, on_auth,       on_error};

/* ---- Output ---- */

/* Every reply line is "DDD" then " " or "-" then text, ending in CRLF,
   with no other CR, LF or NUL: a reply can never be forged by text. */
static void check_output(const uint8_t *p, size_t n) {
  size_t i = 0;

  check(n >= 6 && p[n - 2] == '\r' && p[n - 1] == '\n');
  while (i < n) {
    const uint8_t *lf = memchr(p + i, '\n', n - i);
    size_t end = (size_t)(lf - p), j;

    check(lf != NULL && end >= i + 5 && p[end - 1] == '\r');
    check(p[i] >= '2' && p[i] <= '5');
    check(p[i + 1] >= '0' && p[i + 1] <= '9');
    check(p[i + 2] >= '0' && p[i + 2] <= '9');
    check(p[i + 3] == ' ' || p[i + 3] == '-');
    for (j = i; j < end - 1; j++)
      check(p[j] != '\r' && p[j] != '\0');
    i = end + 1;
  }
}

static void drain(fuzz *f) {
  const uint8_t *out;
  maild_ssize n;

  while ((n = maild_smtp_server_send(f->s, &out)) > 0) {
    /* The backlog cap, plus room for what the last unit queued. */
    check((uint64_t)n <= f->backlog + 64u * 1024u + 1024u);
    check_output(out, (size_t)n);
  }
  check(n == 0);
}

/* ---- Setup ---- */

static maild_options *make_options(unsigned o) {
  maild_options *opt;

  if (maild_options_new(&opt, NULL) != 0)
    abort();
  check(maild_options_set_string(opt, MAILD_OPT_HOSTNAME, "mx.test") == 0);
  if (o & OPT_STARTTLS)
    maild_options_set_uint(opt, MAILD_OPT_STARTTLS, 1);
  if (o & OPT_AUTH) {
    if (!(o & OPT_STARTTLS))
      maild_options_set_uint(opt, MAILD_OPT_AUTH_PLAINTEXT, 1);
    maild_options_set_string(opt, MAILD_OPT_AUTH_MECHANISMS, "PLAIN LOGIN");
  }
  if (o & OPT_SMALL) {
    maild_options_set_uint(opt, MAILD_OPT_MAX_MESSAGE_SIZE, 1024);
    maild_options_set_uint(opt, MAILD_OPT_MAX_RECIPIENTS, 100);
    maild_options_set_uint(opt, MAILD_OPT_MAX_ERRORS, 5);
    maild_options_set_uint(opt, MAILD_OPT_MAX_RECEIVED_HEADERS, 3);
    maild_options_set_uint(opt, MAILD_OPT_OUTPUT_BACKLOG, 1024);
    maild_options_set_uint(opt, MAILD_OPT_MAX_PARAMS_EXTRA, 0);
    maild_options_set_uint(opt, MAILD_OPT_MAX_AUTH_LINE, 512);
  }
  if (o & OPT_DEFER_GREETING)
    maild_options_set_uint(opt, MAILD_OPT_DEFER_GREETING, 1);
  if (o & OPT_TLS_ACTIVE)
    maild_options_set_uint(opt, MAILD_OPT_TLS_ACTIVE, 1);
  if (o & OPT_NO_CHUNKING)
    maild_options_set_uint(opt, MAILD_OPT_CHUNKING, 0);
  if (o & OPT_NO_UTF8_DSN) {
    maild_options_set_uint(opt, MAILD_OPT_SMTPUTF8, 0);
    maild_options_set_uint(opt, MAILD_OPT_DSN, 0);
  }
  return opt;
}

/* Answers the pending decision: the default, a refusal, or a bad one. */
static void answer(fuzz *f) {
  maild_reply r = {0, NULL, NULL};
  uint32_t x = next(f);
  int err, tries = 0;

  if ((x & 3) == 0)
    r = refusals[(x >> 2) % (sizeof(refusals) / sizeof(refusals[0]))];
  do {
    f->deferred = 0; /* the answer may defer again (chunk, then end) */
    if (r.code == 0 && (x & 4))
      err = maild_smtp_server_resume(f->s);
    else
      err = maild_smtp_server_reply(f->s, r.code != 0 ? &r : NULL);
  } while (err == MAILD_ERR_NOMEM && ++tries < 3);
  if (err == MAILD_ERR_NOMEM) {
    f->deferred = 1;
    return;
  }
  check(err == 0 ||
        (err == MAILD_ERR_STATE && maild_smtp_server_closing(f->s)));
}

/* Everything the embedder owes the engine before it reads again. */
static void serve(fuzz *f) {
  int i;

  for (i = 0; i < 8; i++) {
    if (maild_smtp_server_closing(f->s))
      return;
    if (f->deferred) {
      answer(f);
      continue;
    }
    if (maild_smtp_server_phase(f->s) == MAILD_SMTP_PHASE_GREETING) {
      /* Now and then the embedder turns the client away (RFC 5321 3.1). */
      static const maild_reply away[] = {{554, NULL, "No service"},
                                         {421, "4.3.2", NULL}};
      uint32_t x = next(f);
      int err =
          maild_smtp_server_greet(f->s, (x & 7) ? NULL : &away[x >> 3 & 1]);
      check(err == 0 || err == MAILD_ERR_NOMEM);
      continue;
    }
    if (maild_smtp_server_phase(f->s) == MAILD_SMTP_PHASE_TLS) {
      int err = maild_smtp_server_tls_started(f->s, "TLSv1.2 fuzz");
      check(err == 0 || err == MAILD_ERR_NOMEM);
      if (err == 0) {
        /* RFC 3207 4.2: the session starts over. */
        check(maild_smtp_server_is_tls(f->s));
        check(!maild_smtp_server_is_authenticated(f->s));
        check(!maild_smtp_server_is_esmtp(f->s));
        check(maild_smtp_server_helo_name(f->s) == NULL);
        check(strcmp(maild_smtp_server_tls_info(f->s), "TLSv1.2 fuzz") == 0);
      }
      f->auth_step = 0;
      continue;
    }
    return;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  maild_options *opt;
  maild_mem mem = {0};
  fuzz f;
  size_t off = 0, len, rounds = 0, limit;
  const uint8_t *in;
  unsigned o;
  int stalls = 0, slow;

  if (size < 4)
    return 0;
  memset(&f, 0, sizeof(f));
  o = data[0];
  f.defer_mask = data[1];
  f.refuse_mask = data[2];
  f.rng = 0x9e3779b9u ^ ((uint32_t)data[1] << 16) ^ ((uint32_t)data[2] << 8) ^
          data[3];
  slow = (data[3] & 0xc0) == 0xc0; /* take output only now and then */
  in = data + 4;
  len = size - 4;
  opt = make_options(o);
  f.backlog = maild_options_get_uint(opt, MAILD_OPT_OUTPUT_BACKLOG);
  mem.user_data = &f;
  mem.malloc = f_malloc;
  mem.free = f_free;
  mem.calloc = f_calloc;
  mem.realloc = f_realloc;
  if (o & OPT_FAIL_ALLOC)
    f.fail_at = 2 + (data[3] & 0x3f);
  if (maild_smtp_server_new(&f.s, &callbacks, &f, opt, &mem) != 0) {
    maild_options_del(opt);
    return 0;
  }
  maild_options_del(opt);
  /* The client waits for the greeting (a pre-greet talker is covered by
     the unit tests); a fuzzed one talks first when byte 3 says so. */
  if (!(data[3] & 0x20)) {
    serve(&f);
    drain(&f);
  }
  limit = 4 * len + 64;
  while (off < len && rounds++ < limit) {
    size_t chunk = 1 + next(&f) % (1 + (data[3] & 0x1f) * 64u);
    maild_ssize n;

    if (chunk > len - off)
      chunk = len - off;
    n = maild_smtp_server_recv(f.s, in + off, chunk);
    if (n == MAILD_ERR_NOMEM)
      continue; /* nothing happened; offer the same octets again */
    if (n < 0) {
      check(n == MAILD_ERR_CALLBACK);
      break;
    }
    check((size_t)n <= chunk);
    off += (size_t)n;
    if (maild_smtp_server_closing(f.s)) {
      check(!maild_smtp_server_want_read(f.s));
      check((size_t)n == chunk);
    }
    /* The engine waits for a decision only if one is owed. */
    if (maild_smtp_server_phase(f.s) == MAILD_SMTP_PHASE_DECISION)
      check(f.deferred);
    if (!slow || (next(&f) & 7) == 0 || !maild_smtp_server_want_read(f.s))
      drain(&f);
    serve(&f);
    if (n > 0) {
      stalls = 0;
      continue;
    }
    if (maild_smtp_server_want_read(f.s) &&
        !maild_smtp_server_want_write(f.s) && !f.deferred && ++stalls > 3)
      abort(); /* wants input, owes nothing, yet takes none */
  }
  drain(&f);
  if ((data[3] & 0x10) && !maild_smtp_server_closing(f.s)) {
    maild_reply bye = {421, "4.4.2", "Timeout"};
    maild_smtp_server_terminate(f.s, (data[2] & 1) ? NULL : &bye);
    check(maild_smtp_server_closing(f.s));
    check(!maild_smtp_server_want_read(f.s));
    drain(&f);
  }
  maild_smtp_server_del(f.s);
  return 0;
}
