/*
 * libFuzzer harness for the whole POP3 server engine (TESTPLAN F1). The
 * harness plays network and embedder at once, the way the runtime does.
 *
 * Input layout:
 *   byte 0  options: bit 0 STARTTLS, bit 1 AUTH_MECHANISMS "PLAIN LOGIN",
 *           bit 2 AUTH_PLAINTEXT, bit 3 OUTPUT_BACKLOG 1024, bit 4
 *           TLS_ACTIVE, bit 5 fail one allocation, bit 6 MAX_ERRORS 3
 *   byte 1  which events defer (bit 0 login, 1 read, 2 update)
 *   byte 2  which events refuse or fail (same bits)
 *   byte 3  seed for chunk sizes, read sizes, the maildrop and the
 *           allocation to fail
 *   rest    the client's octets, offered in chunks of varying size
 *
 * Any USER/PASS or SASL response is accepted unless refusal is chosen. The
 * run aborts if the engine crashes, leaks (ASan), writes output that is not
 * CRLF-terminated lines without bare CR/LF, lets one send() exceed the
 * backlog plus one step, waits for a decision nobody owes, or stalls.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maild/error.h"
#include "maild/options.h"
#include "maild/pop3_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
  EV_AUTH = 1u << 0,
  EV_READ = 1u << 1,
  EV_UPDATE = 1u << 2,
};

enum {
  OPT_STLS = 1u << 0,
  OPT_SASL = 1u << 1,
  OPT_PLAIN = 1u << 2,
  OPT_SMALL_BACKLOG = 1u << 3,
  OPT_TLS_ACTIVE = 1u << 4,
  OPT_FAIL_ALLOC = 1u << 5,
  OPT_FEW_ERRORS = 1u << 6,
};

static const char *const messages[] = {
    "Subject: a\r\n\r\nHello\r\n",
    "Subject: b\r\n\r\n.dot\r\n..\r\n.\r\nend",
    "Subject: c\n\nbare\nlf\rcr\r\n",
    "",
    "no header line at all",
};
#define NMESSAGES (sizeof(messages) / sizeof(messages[0]))
#define BIG_SIZE  20000

typedef struct fuzz {
  maild_pop3_server *s;
  unsigned defer_mask, refuse_mask;
  uint32_t rng;
  int deferred, read_deferred;
  maild_pop3_reply planned;
  uint64_t backlog;
  size_t calls, fail_at;
  char big[BIG_SIZE + 1];
  /* Output line checker. */
  int saw_cr;
} fuzz;

static void check(int ok) {
  if (!ok)
    abort();
}

static uint32_t next(fuzz *f) {
  f->rng ^= f->rng << 13;
  f->rng ^= f->rng >> 17;
  f->rng ^= f->rng << 5;
  return f->rng;
}

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

static const char *content(fuzz *f, size_t i) {
  return i < NMESSAGES ? messages[i] : f->big;
}

static uint64_t crlf_len(const char *p) {
  uint64_t n = 0;

  for (; *p != '\0'; p++) {
    if (*p == '\r' && p[1] == '\n')
      continue;
    n += (*p == '\r' || *p == '\n') ? 2 : 1;
  }
  return n;
}

/* DEFER, or 0 with the planned answer in *reply. */
static int decide(fuzz *f, unsigned ev, maild_pop3_reply *reply) {
  if ((f->defer_mask & ev) && (next(f) & 3) != 0) {
    f->deferred = 1;
    return MAILD_ERR_DEFER;
  }
  *reply = f->planned;
  return 0;
}

static int on_auth(maild_pop3_server *s, const maild_pop3_auth *a,
                   maild_pop3_reply *reply, void *ud) {
  static const char *const uidls[] = {"u1", "u2", "u3", "u4", "u5", "u6"};
  fuzz *f = ud;
  maild_pop3_msg m[NMESSAGES + 1];
  size_t i, n = 1 + next(f) % (NMESSAGES + 1);
  uint32_t r = next(f);

  check(a->mechanism != NULL);
  memset(&f->planned, 0, sizeof(f->planned));
  if (a->step == 0 && a->response == NULL && strcmp(a->mechanism, "USER")) {
    f->planned.status = MAILD_POP3_CONTINUE;
    f->planned.text = "";
  } else if ((f->refuse_mask & EV_AUTH) && (r & 1)) {
    f->planned.status = MAILD_POP3_ERR;
    f->planned.code = (r & 2) ? "IN-USE" : "AUTH";
    if ((r >> 8) % 17 == 0)
      return MAILD_ERR_IO;
  } else {
    for (i = 0; i < n; i++) {
      m[i].size = crlf_len(content(f, i));
      m[i].uidl = uidls[i];
    }
    if (maild_pop3_server_set_maildrop(s, m, n) != 0)
      return MAILD_ERR_NOMEM;
    f->planned.status = MAILD_POP3_OK;
  }
  return decide(f, EV_AUTH, reply);
}

static int on_read(maild_pop3_server *s, size_t index, uint64_t offset,
                   uint8_t *buf, size_t cap, size_t *len, void *ud) {
  fuzz *f = ud;
  const char *m = content(f, index);
  size_t total = strlen(m), n;
  uint32_t r = next(f);

  (void)s;
  check(offset <= total);
  if ((f->defer_mask & EV_READ) && (r & 3) == 0) {
    f->read_deferred = 1;
    return MAILD_ERR_DEFER;
  }
  if ((f->refuse_mask & EV_READ) && (r >> 2) % 7 == 0)
    return MAILD_ERR_IO;
  n = total - (size_t)offset;
  if (n > cap)
    n = cap;
  if (n > 1 + (r >> 8) % 3000)
    n = 1 + (r >> 8) % 3000;
  memcpy(buf, m + offset, n);
  *len = n;
  return 0;
}

static int on_update(maild_pop3_server *s, const size_t *deleted, size_t n,
                     maild_pop3_reply *reply, void *ud) {
  fuzz *f = ud;
  size_t i;

  (void)s;
  for (i = 0; i < n; i++)
    check(deleted[i] <= NMESSAGES && (i == 0 || deleted[i] > deleted[i - 1]));
  memset(&f->planned, 0, sizeof(f->planned));
  if ((f->refuse_mask & EV_UPDATE) && (next(f) & 1))
    f->planned.status = MAILD_POP3_ERR;
  return decide(f, EV_UPDATE, reply);
}

/* Output is CRLF lines: no bare CR, no bare LF, no NUL. */
static void check_output(fuzz *f, const uint8_t *p, size_t n) {
  size_t i;

  check(n <= f->backlog + 32768 + 8192);
  for (i = 0; i < n; i++) {
    check(p[i] != '\0');
    if (f->saw_cr)
      check(p[i] == '\n');
    else
      check(p[i] != '\n');
    f->saw_cr = p[i] == '\r';
  }
}

static int drain(fuzz *f) {
  const uint8_t *p;
  maild_ssize n;
  int any = 0;

  while ((n = maild_pop3_server_send(f->s, &p)) > 0) {
    check_output(f, p, (size_t)n);
    any = 1;
  }
  check(n == 0 || n == MAILD_ERR_NOMEM);
  return any;
}

static int answer(fuzz *f) {
  int r;

  if (f->deferred) {
    f->deferred = 0;
    r = maild_pop3_server_reply(f->s, &f->planned);
    check(r == 0 || r == MAILD_ERR_NOMEM);
    return 1;
  }
  if (f->read_deferred) {
    f->read_deferred = 0;
    check(maild_pop3_server_resume(f->s) == 0);
    return 1;
  }
  return 0;
}

static void run(fuzz *f, const uint8_t *in, size_t len) {
  size_t pos = 0, idle = 0;

  while (idle < 8) {
    int progress = drain(f) | answer(f);
    maild_ssize n = 0;

    if (maild_pop3_server_closing(f->s))
      break;
    if (maild_pop3_server_phase(f->s) == MAILD_POP3_PHASE_TLS) {
      check(maild_pop3_server_tls_started(f->s) == 0);
      progress = 1;
    }
    if (maild_pop3_server_phase(f->s) == MAILD_POP3_PHASE_DECISION)
      check(f->deferred || f->read_deferred);
    if (pos < len) {
      size_t k = 1 + next(f) % 64;

      n = maild_pop3_server_recv(f->s, in + pos, k < len - pos ? k : len - pos);
      check(n >= 0 || n == MAILD_ERR_NOMEM);
      if (n > 0)
        pos += (size_t)n;
    }
    if (progress || n > 0)
      idle = 0;
    else if (pos < len && maild_pop3_server_want_read(f->s) &&
             !maild_pop3_server_want_write(f->s))
      check(++idle < 8 || f->fail_at != 0); /* stall */
    else
      idle++;
  }
  drain(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz f;
  maild_options *opt;
  maild_mem mem;
  size_t i;

  if (size < 4)
    return 0;
  memset(&f, 0, sizeof(f));
  f.defer_mask = data[1];
  f.refuse_mask = data[2];
  f.rng = 0x9e3779b9u ^ data[3];
  for (i = 0; i < BIG_SIZE; i++)
    f.big[i] = i % 61 == 60 ? '\n' : (char)(i % 61 == 0 ? '.' : 'a' + i % 26);
  if (maild_options_new(&opt, NULL) != 0)
    return 0;
  maild_options_set_uint(opt, MAILD_OPT_STARTTLS, data[0] & OPT_STLS ? 1 : 0);
  if (data[0] & OPT_SASL)
    maild_options_set_string(opt, MAILD_OPT_AUTH_MECHANISMS, "PLAIN LOGIN");
  maild_options_set_uint(opt, MAILD_OPT_AUTH_PLAINTEXT,
                         data[0] & OPT_PLAIN ? 1 : 0);
  if (data[0] & OPT_SMALL_BACKLOG)
    maild_options_set_uint(opt, MAILD_OPT_OUTPUT_BACKLOG, 1024);
  maild_options_set_uint(opt, MAILD_OPT_TLS_ACTIVE,
                         data[0] & OPT_TLS_ACTIVE ? 1 : 0);
  if (data[0] & OPT_FEW_ERRORS)
    maild_options_set_uint(opt, MAILD_OPT_MAX_ERRORS, 3);
  f.backlog = maild_options_get_uint(opt, MAILD_OPT_OUTPUT_BACKLOG);
  if (data[0] & OPT_FAIL_ALLOC)
    f.fail_at = 1 + data[3] % 40;
  mem.user_data = &f;
  mem.malloc = f_malloc;
  mem.free = f_free;
  mem.calloc = f_calloc;
  mem.realloc = f_realloc;
  {
    static const maild_pop3_server_callbacks cb = {on_auth, on_read, on_update,
                                                   NULL};

    if (maild_pop3_server_new(&f.s, &cb, &f, opt, &mem) != 0) {
      maild_options_del(opt);
      return 0;
    }
  }
  maild_options_del(opt);
  run(&f, data + 4, size - 4);
  maild_pop3_server_del(f.s);
  return 0;
}
