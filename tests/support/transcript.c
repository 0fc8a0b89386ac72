/*
 * Transcript driver (see transcript.h). The driver plays both the network
 * and the embedder: it offers the client octets as if they arrived in
 * chunks of a given size, keeps what the engine did not consume, answers
 * deferred decisions when the engine stalls, and records every callback as
 * one line of text so a transcript can state the expected events.
 */
#include "transcript.h"

#include "maild/maild.h"
#include "testmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SECTIONS 8
#define MAX_OPTS     32
#define MAX_ACTIONS  512

typedef struct action {
  char event[16];
  int defer;
  int fail;
  int code;
  char enh[16];
  char text[256];
} action;

typedef struct strbuf {
  char *p;
  size_t len, cap;
} strbuf;

struct transcript {
  char path[512];
  char opt_name[MAX_OPTS][64];
  char opt_value[MAX_OPTS][256];
  int nopts;
  strbuf input[MAX_SECTIONS];
  int nsections;
  strbuf out;
  strbuf events;
  action actions[MAX_ACTIONS];
  int nactions;
  int expect_closed; /* -1: not stated */
};

typedef struct run {
  const transcript *t;
  maild_smtp_server *s;
  strbuf out, events, body;
  unsigned char used[MAX_ACTIONS];
  const action *deferred; /* answer to give when the engine stalls */
  int sweep;
} run;

static void sb_add(strbuf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    b->p = realloc(b->p, cap);
    if (b->p == NULL)
      abort();
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s) {
  sb_add(b, s, strlen(s));
}

static void sb_free(strbuf *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

/* Appends `p` with the escapes of the file format. */
static void sb_escaped(strbuf *b, const char *p, size_t n) {
  size_t i;
  char tmp[8];

  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '\r')
      sb_str(b, "\\r");
    else if (c == '\n')
      sb_str(b, "\\n");
    else if (c == '\t')
      sb_str(b, "\\t");
    else if (c == '\\')
      sb_str(b, "\\\\");
    else if (c < 0x20 || c == 0x7f) {
      snprintf(tmp, sizeof(tmp), "\\x%02X", c);
      sb_str(b, tmp);
    } else
      sb_add(b, &c, 1);
  }
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decodes the file format's escapes. */
static void sb_unescape(strbuf *b, const char *p) {
  while (*p != '\0') {
    char c = *p++;
    if (c == '\\' && *p != '\0') {
      char e = *p++;
      if (e == 'r')
        c = '\r';
      else if (e == 'n')
        c = '\n';
      else if (e == 't')
        c = '\t';
      else if (e == '0')
        c = '\0';
      else if (e == 'x' && hexval(p[0]) >= 0 && hexval(p[1]) >= 0) {
        c = (char)(hexval(p[0]) * 16 + hexval(p[1]));
        p += 2;
      } else
        c = e;
    }
    sb_add(b, &c, 1);
  }
}

static int parse_action(action *a, const char *spec) {
  char rest[300];
  int n = 0;

  memset(a, 0, sizeof(*a));
  if (sscanf(spec, "%15s %n", a->event, &n) < 1)
    return -1;
  snprintf(rest, sizeof(rest), "%s", spec + n);
  if (strncmp(rest, "defer", 5) == 0) {
    a->defer = 1;
    memmove(rest, rest + 5, strlen(rest + 5) + 1);
    while (rest[0] == ' ')
      memmove(rest, rest + 1, strlen(rest));
  }
  if (strcmp(rest, "fail") == 0) {
    a->fail = 1;
    return 0;
  }
  if (rest[0] == '\0')
    return 0;
  n = 0;
  if (sscanf(rest, "%d %15s %n", &a->code, a->enh, &n) < 2)
    return -1;
  if (strcmp(a->enh, "-") == 0)
    a->enh[0] = '\0';
  snprintf(a->text, sizeof(a->text), "%s", rest + n);
  return 0;
}

static int load_line(transcript *t, char *line) {
  size_t n = strlen(line);
  strbuf *in = &t->input[t->nsections - 1];

  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  if (n == 0 || line[0] == '#')
    return 0;
  if (n < 2 || (line[2] != ' ' && line[2] != '\0'))
    return -1;
  if (n == 2)
    line[3] = '\0'; /* "C:" alone: an empty line */
  if (strncmp(line, "C:", 2) == 0) {
    sb_unescape(in, line + 3);
    sb_str(in, "\r\n");
  } else if (strncmp(line, "C~", 2) == 0) {
    sb_unescape(in, line + 3);
  } else if (strncmp(line, "S:", 2) == 0) {
    sb_unescape(&t->out, line + 3);
    sb_str(&t->out, "\r\n");
  } else if (strncmp(line, "E:", 2) == 0) {
    sb_str(&t->events, line + 3); /* events are logged escaped */
    sb_str(&t->events, "\n");
  } else if (strncmp(line, "A:", 2) == 0) {
    if (t->nactions == MAX_ACTIONS ||
        parse_action(&t->actions[t->nactions++], line + 3) != 0)
      return -1;
  } else if (strncmp(line, "O:", 2) == 0) {
    if (t->nopts == MAX_OPTS ||
        sscanf(line + 3, "%63s %255[^\n]", t->opt_name[t->nopts],
               t->opt_value[t->nopts]) != 2)
      return -1;
    t->nopts++;
  } else if (strncmp(line, "T:", 2) == 0) {
    if (t->nsections == MAX_SECTIONS)
      return -1;
    t->nsections++;
  } else if (strncmp(line, "X:", 2) == 0) {
    t->expect_closed = strcmp(line + 3, "closed") == 0;
  } else
    return -1;
  return 0;
}

transcript *transcript_load(const char *path) {
  transcript *t = calloc(1, sizeof(*t));
  char line[70000];
  FILE *f = fopen(path, "r");
  int lineno = 0;

  if (t == NULL || f == NULL) {
    fprintf(stderr, "%s: cannot open\n", path);
    free(t);
    if (f != NULL)
      fclose(f);
    return NULL;
  }
  snprintf(t->path, sizeof(t->path), "%s", path);
  t->nsections = 1;
  t->expect_closed = -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    lineno++;
    if (load_line(t, line) != 0) {
      fprintf(stderr, "%s:%d: bad transcript line\n", path, lineno);
      fclose(f);
      transcript_free(t);
      return NULL;
    }
  }
  fclose(f);
  return t;
}

void transcript_free(transcript *t) {
  int i;

  if (t == NULL)
    return;
  for (i = 0; i < MAX_SECTIONS; i++)
    sb_free(&t->input[i]);
  sb_free(&t->out);
  sb_free(&t->events);
  free(t);
}

size_t transcript_input_len(const transcript *t) {
  size_t n = 0;
  int i;

  for (i = 0; i < t->nsections; i++)
    n += t->input[i].len;
  return n;
}

/* ---- Callbacks: log the event, then answer as scripted ---- */

static const action *next_action(run *r, const char *event) {
  int i;

  for (i = 0; i < r->t->nactions; i++) {
    if (!r->used[i] && strcmp(r->t->actions[i].event, event) == 0) {
      r->used[i] = 1;
      return &r->t->actions[i];
    }
  }
  return NULL;
}

static void fill_reply(const action *a, maild_reply *reply) {
  reply->code = a->code;
  reply->enhanced = a->enh[0] ? a->enh : NULL;
  reply->text = a->text[0] ? a->text : NULL;
}

static int answer(run *r, const char *event, maild_reply *reply) {
  const action *a = next_action(r, event);

  if (a == NULL)
    return 0;
  if (a->fail)
    return MAILD_ERR_INVAL;
  if (a->defer) {
    r->deferred = a;
    return MAILD_ERR_DEFER;
  }
  if (reply != NULL)
    fill_reply(a, reply);
  return 0;
}

static void log_path(run *r, const maild_path *p) {
  char buf[600];
  maild_ssize n = maild_path_format(p, buf, sizeof(buf));

  sb_str(&r->events, " <");
  if (n >= 0)
    sb_escaped(&r->events, buf, (size_t)n);
  sb_str(&r->events, ">");
}

static void log_kv(run *r, const char *key, const char *value, size_t len) {
  sb_str(&r->events, " ");
  sb_str(&r->events, key);
  sb_str(&r->events, "=");
  sb_escaped(&r->events, value, len);
}

static void log_params(run *r, const maild_esmtp_params *p) {
  static const char *const body[] = {"", "7BIT", "8BITMIME", "BINARYMIME"};
  static const char *const notify[] = {"NEVER", "SUCCESS", "FAILURE", "DELAY"};
  char tmp[64];
  int i, first = 1;

  if (p->present & MAILD_PARAM_SIZE) {
    snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)p->size);
    log_kv(r, "size", tmp, strlen(tmp));
  }
  if (p->present & MAILD_PARAM_BODY)
    log_kv(r, "body", body[p->body], strlen(body[p->body]));
  if (p->present & MAILD_PARAM_SMTPUTF8)
    sb_str(&r->events, " smtputf8");
  if (p->present & MAILD_PARAM_RET)
    log_kv(r, "ret", p->ret == MAILD_RET_FULL ? "FULL" : "HDRS", 4);
  if (p->present & MAILD_PARAM_ENVID)
    log_kv(r, "envid", p->envid, p->envid_len);
  if (p->present & MAILD_PARAM_AUTH)
    log_kv(r, "auth", p->auth, p->auth_len);
  if (p->present & MAILD_PARAM_NOTIFY) {
    sb_str(&r->events, " notify=");
    for (i = 0; i < 4; i++) {
      if (p->notify & (1u << i)) {
        sb_str(&r->events, first ? "" : ",");
        sb_str(&r->events, notify[i]);
        first = 0;
      }
    }
  }
  if (p->present & MAILD_PARAM_ORCPT) {
    sb_str(&r->events, " orcpt=");
    sb_escaped(&r->events, p->orcpt_type, strlen(p->orcpt_type));
    sb_str(&r->events, ";");
    sb_escaped(&r->events, p->orcpt, p->orcpt_len);
  }
}

static int on_helo(maild_smtp_server *s, const maild_smtp_helo *h,
                   maild_reply *reply, void *ud) {
  run *r = ud;
  (void)s;
  sb_str(&r->events, "helo ");
  sb_escaped(&r->events, h->name, h->name_len);
  sb_str(&r->events, h->esmtp ? " esmtp" : "");
  sb_str(&r->events, h->name_valid ? "\n" : " invalid\n");
  return answer(r, "helo", reply);
}

static int on_mail(maild_smtp_server *s, const maild_smtp_mail *m,
                   maild_reply *reply, void *ud) {
  run *r = ud;
  (void)s;
  sb_str(&r->events, "mail");
  log_path(r, m->from);
  log_params(r, m->params);
  sb_str(&r->events, "\n");
  return answer(r, "mail", reply);
}

static int on_rcpt(maild_smtp_server *s, const maild_smtp_rcpt *rc,
                   maild_reply *reply, void *ud) {
  run *r = ud;
  (void)s;
  sb_str(&r->events, "rcpt");
  log_path(r, rc->to);
  log_params(r, rc->params);
  sb_str(&r->events, "\n");
  return answer(r, "rcpt", reply);
}

static int on_data_start(maild_smtp_server *s, maild_reply *reply, void *ud) {
  run *r = ud;
  (void)s;
  sb_str(&r->events, "data_start\n");
  r->body.len = 0;
  return answer(r, "data_start", reply);
}

static int on_data_chunk(maild_smtp_server *s, const uint8_t *data, size_t len,
                         void *ud) {
  run *r = ud;
  (void)s;
  sb_add(&r->body, data, len);
  return answer(r, "chunk", NULL);
}

static int on_data_end(maild_smtp_server *s, maild_reply *reply, void *ud) {
  run *r = ud;
  char tmp[64];
  (void)s;
  snprintf(tmp, sizeof(tmp), "data_end size=%zu", r->body.len);
  sb_str(&r->events, tmp);
  if (r->body.len <= 400) {
    sb_str(&r->events, " body=");
    sb_escaped(&r->events, r->body.p ? r->body.p : "", r->body.len);
  }
  sb_str(&r->events, "\n");
  r->body.len = 0;
  return answer(r, "data_end", reply);
}

static void on_tx_abort(maild_smtp_server *s, maild_smtp_abort why, void *ud) {
  static const char *const names[] = {"",        "rset", "too_big", "loop",
                                      "refused", "tls",  "close"};
  run *r = ud;
  (void)s;
  sb_str(&r->events, "abort ");
  sb_str(&r->events, names[why]);
  sb_str(&r->events, "\n");
  r->body.len = 0;
}

static int on_starttls(maild_smtp_server *s, maild_reply *reply, void *ud) {
  run *r = ud;
  (void)s;
  sb_str(&r->events, "starttls\n");
  return answer(r, "starttls", reply);
}

static int on_auth(maild_smtp_server *s, const maild_smtp_auth *a,
                   maild_reply *reply, void *ud) {
  run *r = ud;
  char tmp[64];
  (void)s;
  snprintf(tmp, sizeof(tmp), "auth %s step=%u resp=", a->mechanism, a->step);
  sb_str(&r->events, tmp);
  if (a->response == NULL)
    sb_str(&r->events, "none");
  else
    sb_escaped(&r->events, a->response, a->response_len);
  sb_str(&r->events, "\n");
  return answer(r, "auth", reply);
}

static const maild_smtp_server_callbacks callbacks = {
    on_helo,     on_mail,     on_rcpt,     on_data_start, on_data_chunk,
    on_data_end, on_tx_abort, on_starttls, on_auth,       NULL};

/* ---- Driving ---- */

static const struct {
  const char *name;
  maild_option key;
} option_names[] = {
#define OPT_NAME_(name, kind, def, min, max) {#name, MAILD_OPT_##name},
    MAILD_OPTION_MAP(OPT_NAME_)
#undef OPT_NAME_
};

static maild_options *make_options(const transcript *t, const maild_mem *mem) {
  maild_options *opt;
  int i;
  size_t k;

  if (maild_options_new(&opt, mem) != 0)
    return NULL;
  if (maild_options_set_string(opt, MAILD_OPT_HOSTNAME, "mx.test") != 0) {
    maild_options_del(opt);
    return NULL;
  }
  for (i = 0; i < t->nopts; i++) {
    for (k = 0; k < sizeof(option_names) / sizeof(option_names[0]); k++) {
      if (strcmp(option_names[k].name, t->opt_name[i]) != 0)
        continue;
      if (maild_options_set_uint(opt, option_names[k].key,
                                 strtoull(t->opt_value[i], NULL, 10)) ==
          MAILD_ERR_INVAL)
        maild_options_set_string(opt, option_names[k].key, t->opt_value[i]);
    }
  }
  return opt;
}

static void drain(run *r) {
  const uint8_t *data;
  maild_ssize n;

  while ((n = maild_smtp_server_send(r->s, &data)) > 0)
    sb_add(&r->out, data, (size_t)n);
}

/* Answers a deferred decision; in a sweep the answer may fail for lack of
   memory, and is then retried (the decision stays pending). */
static int give_deferred(run *r) {
  maild_reply reply;
  const action *a = r->deferred;
  int err, tries = 0;

  fill_reply(a, &reply);
  /* Cleared first: the answer may run the next callback, which may defer
     again. */
  r->deferred = NULL;
  do
    err = maild_smtp_server_reply(r->s, a->code ? &reply : NULL);
  while (err == MAILD_ERR_NOMEM && r->sweep && ++tries < 3);
  return err;
}

/* Feeds one section; returns 0, or -1 when the engine misbehaved. */
static int feed_section(run *r, const strbuf *in, size_t chunk) {
  size_t pos = 0, avail = 0;
  int stalls = 0;

  for (;;) {
    maild_ssize n;

    drain(r);
    if (r->deferred != NULL) {
      if (give_deferred(r) != 0)
        return r->sweep ? 1 : -1;
      continue;
    }
    if (pos == avail) {
      if (avail == in->len)
        return 0;
      avail = chunk == 0 || in->len - avail < chunk ? in->len : avail + chunk;
      continue;
    }
    n = maild_smtp_server_recv(r->s, (const uint8_t *)in->p + pos, avail - pos);
    if (n < 0)
      return r->sweep ? 1 : -1;
    if (n == 0 && ++stalls > 3) {
      fprintf(stderr, "engine stalled at input offset %zu (phase %d)\n", pos,
              (int)maild_smtp_server_phase(r->s));
      return -1;
    }
    if (n > 0)
      stalls = 0;
    pos += (size_t)n;
  }
}

static int play(run *r, size_t chunk) {
  int i, rc = 0;

  for (i = 0; i < r->t->nsections && rc == 0; i++) {
    if (i > 0) {
      if (maild_smtp_server_phase(r->s) != MAILD_SMTP_PHASE_TLS) {
        if (r->sweep)
          return 1;
        fprintf(stderr, "T: reached but the session is not in the TLS phase\n");
        return -1;
      }
      if (maild_smtp_server_tls_started(r->s, "TLSv1.2 test") != 0)
        return r->sweep ? 1 : -1;
    }
    rc = feed_section(r, &r->t->input[i], chunk);
  }
  drain(r);
  return rc;
}

static int compare(const transcript *t, run *r, size_t chunk) {
  int ok = 1;
  strbuf a = {0}, b = {0};

  if (r->out.len != t->out.len ||
      memcmp(r->out.p ? r->out.p : "", t->out.p ? t->out.p : "", t->out.len))
    ok = 0;
  if (r->events.len != t->events.len ||
      memcmp(r->events.p ? r->events.p : "", t->events.p ? t->events.p : "",
             t->events.len))
    ok = 0;
  if (t->expect_closed >= 0 &&
      maild_smtp_server_closing(r->s) != t->expect_closed)
    ok = 0;
  if (ok)
    return 0;
  sb_escaped(&a, t->out.p ? t->out.p : "", t->out.len);
  sb_escaped(&b, r->out.p ? r->out.p : "", r->out.len);
  fprintf(stderr,
          "%s: mismatch at chunk size %zu\n"
          "--- expected output:\n%s\n--- actual output:\n%s\n",
          t->path, chunk, a.p ? a.p : "", b.p ? b.p : "");
  fprintf(stderr, "--- expected events:\n%s--- actual events:\n%s",
          t->events.p ? t->events.p : "", r->events.p ? r->events.p : "");
  fprintf(stderr, "--- closing: %d (expected %d)\n",
          maild_smtp_server_closing(r->s), t->expect_closed);
  sb_free(&a);
  sb_free(&b);
  return -1;
}

int transcript_run(const transcript *t, size_t chunk) {
  run r;
  maild_options *opt = make_options(t, NULL);
  int rc = -1;

  memset(&r, 0, sizeof(r));
  r.t = t;
  if (opt != NULL &&
      maild_smtp_server_new(&r.s, &callbacks, &r, opt, NULL) == 0) {
    rc = play(&r, chunk);
    if (rc == 0)
      rc = compare(t, &r, chunk);
    else
      fprintf(stderr, "%s: replay failed at chunk size %zu\n", t->path, chunk);
  }
  maild_smtp_server_del(r.s);
  maild_options_del(opt);
  sb_free(&r.out);
  sb_free(&r.events);
  sb_free(&r.body);
  return rc;
}

int transcript_run_all_splits(const transcript *t) {
  size_t len = transcript_input_len(t), k;

  if (transcript_run(t, 0) != 0)
    return -1;
  for (k = 1; k <= len; k++) {
    if (transcript_run(t, k) != 0)
      return -1;
  }
  return 0;
}

size_t transcript_alloc_sweep(const transcript *t) {
  size_t n;

  for (n = 1; n < 100000; n++) {
    testmem tm;
    run r;
    maild_options *opt;

    testmem_init(&tm, n);
    memset(&r, 0, sizeof(r));
    r.t = t;
    r.sweep = 1;
    opt = make_options(t, &tm.mem);
    if (opt != NULL &&
        maild_smtp_server_new(&r.s, &callbacks, &r, opt, &tm.mem) == 0)
      play(&r, 0);
    maild_smtp_server_del(r.s);
    maild_options_del(opt);
    sb_free(&r.out);
    sb_free(&r.events);
    sb_free(&r.body);
    if (tm.live != 0) {
      fprintf(stderr, "%s: %ld blocks leaked when allocation %zu failed\n",
              t->path, tm.live, n);
      abort();
    }
    if (tm.failures == 0)
      return n;
  }
  return n;
}
