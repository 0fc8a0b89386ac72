/*
 * The MX resolver (see include/maild/resolver.h): a small state machine
 * per lookup over the DNS codec (dns/codec.h, ldns) and the transport
 * (io/dns_transport.h, libuv). A lookup asks for the domain's MX records,
 * then for the A and AAAA records of every host at once, and calls back
 * when the last answer is in. Answers are cached by (name, type) until
 * their TTL runs out. Callbacks always run from the loop, never from
 * inside maild_resolver_mx(): a lookup that finishes at once (everything
 * cached, or a failure) waits for the resolver's zero-delay timer.
 */
#include "maild/resolver.h"

#include "core/mem.h"
#include "dns/codec.h"
#include "io/addr.h"
#include "io/dns_transport.h"
#include "maild/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVERS_MAX 8
#define CNAME_DEPTH 8
#define HOSTS_MAX   16
#define ADDRS_MAX   8 /* per host and family */
#define CACHE_MAX   512
#define TTL_MAX     86400u
#define NEG_TTL_MAX 3600u
#define QUERY_BUF   (MAILD_DNS_QUERY_MAX + 2)
#define RESOLV_CONF "/etc/resolv.conf"
#define RESOLV_MAX  (64u * 1024u)

typedef struct cache_entry {
  struct cache_entry *next;
  char name[MAILD_DNS_NAME_MAX + 1];
  uint16_t type;
  uint64_t expires; /* uv_now() */
  maild_dns_answer ans;
} cache_entry;

typedef struct lookup lookup;

typedef struct mx_host {
  char name[MAILD_DNS_NAME_MAX + 1];
  unsigned pref;
  struct sockaddr_storage addr[2 * ADDRS_MAX];
  size_t naddr6, naddr4; /* IPv6 first in addr[0..ADDRS_MAX) */
  int temp, perm;
} mx_host;

typedef struct query {
  struct query *next; /* in the resolver's list */
  lookup *lk;
  char name[MAILD_DNS_NAME_MAX + 1];
  uint16_t type, id;
  int host; /* index into the lookup's hosts; -1 for MX */
  int tcp;
  maild_dns_xfer *x;
  maild_dns_answer ans;
  int err;
} query;

struct lookup {
  lookup *next;
  maild_resolver *r;
  char domain[MAILD_DNS_NAME_MAX + 1];
  char mxname[MAILD_DNS_NAME_MAX + 1]; /* after CNAMEs */
  int depth;
  maild_mx_cb cb;
  void *ud;
  mx_host hosts[HOSTS_MAX];
  size_t nhosts;
  size_t pending; /* queries in flight */
  int done;       /* the result is set; waiting for delivery */
  int permanent;
  const char *enhanced;
  char text[300];
};

struct maild_resolver {
  uv_loop_t *loop;
  maild_mem mem;
  struct sockaddr_storage servers[SERVERS_MAX];
  size_t nservers;
  uint64_t timeout_ms;
  unsigned tries;
  char **self;
  size_t nself;
  uint32_t (*rand)(void *ud);
  void *rand_ud;
  lookup *lookups;
  query *queries;
  cache_entry *cache;
  size_t ncache;
  uv_timer_t kick; /* delivers finished lookups */
  int closing;
};

static void query_done(query *q);
static void lookup_step(lookup *lk);

/* ---- Set-up ---- */

static uint32_t sys_rand(void *ud) {
  uint32_t v = 0;

  (void)ud;
  if (uv_random(NULL, NULL, &v, sizeof(v), 0, NULL) != 0)
    v = (uint32_t)uv_hrtime() * 2654435761u;
  return v;
}

static int parse_server(const char *s, struct sockaddr_storage *ss) {
  char host[64];
  const char *port = NULL, *end;
  unsigned p = 53;
  size_t n;

  if (s[0] == '[') {
    end = strchr(s, ']');
    if (end == NULL || (end[1] != '\0' && end[1] != ':'))
      return MAILD_ERR_INVAL;
    n = (size_t)(end - s - 1);
    if (n >= sizeof(host))
      return MAILD_ERR_INVAL;
    memcpy(host, s + 1, n);
    host[n] = '\0';
    if (end[1] == ':')
      port = end + 2;
  } else {
    end = strchr(s, ':');
    if (end != NULL && strchr(end + 1, ':') != NULL)
      end = NULL; /* a bare IPv6 address */
    n = end != NULL ? (size_t)(end - s) : strlen(s);
    if (n >= sizeof(host))
      return MAILD_ERR_INVAL;
    memcpy(host, s, n);
    host[n] = '\0';
    if (end != NULL)
      port = end + 1;
  }
  if (port != NULL) {
    char *e;
    unsigned long v = strtoul(port, &e, 10);
    if (*port == '\0' || *e != '\0' || v == 0 || v > 65535)
      return MAILD_ERR_INVAL;
    p = (unsigned)v;
  }
  return maild__addr_parse(host, p, ss);
}

/* The nameserver lines of /etc/resolv.conf. */
static int read_resolv_conf(maild_resolver *r) {
  char buf[RESOLV_MAX + 1], *line, *save = NULL;
  FILE *f = fopen(RESOLV_CONF, "r");
  size_t n;

  if (f == NULL)
    return MAILD_ERR_NOT_FOUND;
  n = fread(buf, 1, RESOLV_MAX, f);
  fclose(f);
  buf[n] = '\0';
  for (line = strtok_r(buf, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    char addr[64];
    if (sscanf(line, " nameserver %63s", addr) == 1 &&
        r->nservers < SERVERS_MAX &&
        parse_server(addr, &r->servers[r->nservers]) == 0)
      r->nservers++;
  }
  return r->nservers > 0 ? 0 : MAILD_ERR_NOT_FOUND;
}

static void free_self(maild_resolver *r) {
  size_t i;

  for (i = 0; i < r->nself; i++)
    maild__free(&r->mem, r->self[i]);
  maild__free(&r->mem, r->self);
}

int maild_resolver_new(maild_resolver **out, uv_loop_t *loop,
                       const maild_resolver_config *cfg, const maild_mem *mem) {
  maild_resolver_config none;
  maild_mem m;
  maild_resolver *r;
  size_t i;
  int err = 0;

  if (out == NULL || loop == NULL)
    return MAILD_ERR_INVAL;
  if (cfg == NULL) {
    memset(&none, 0, sizeof(none));
    cfg = &none;
  }
  maild__mem_init(&m, mem);
  r = maild__calloc(&m, 1, sizeof(*r));
  if (r == NULL)
    return MAILD_ERR_NOMEM;
  r->mem = m;
  r->loop = loop;
  r->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 2000;
  r->tries = cfg->tries > 0 ? cfg->tries : 2;
  r->rand = cfg->rand != NULL ? cfg->rand : sys_rand;
  r->rand_ud = cfg->rand_user_data;
  for (i = 0; i < cfg->nservers && err == 0; i++) {
    if (r->nservers == SERVERS_MAX)
      break;
    err = parse_server(cfg->servers[i], &r->servers[r->nservers++]);
  }
  if (err == 0 && r->nservers == 0)
    err = read_resolv_conf(r);
  if (err == 0 && cfg->nself > 0) {
    r->self = maild__calloc(&m, cfg->nself, sizeof(char *));
    if (r->self == NULL)
      err = MAILD_ERR_NOMEM;
    for (i = 0; err == 0 && i < cfg->nself; i++) {
      char name[MAILD_DNS_NAME_MAX + 1];
      if (maild__dns_name(cfg->self[i], name) != 0)
        continue;
      r->self[r->nself] = maild__strndup(&m, name, strlen(name));
      if (r->self[r->nself] == NULL)
        err = MAILD_ERR_NOMEM;
      else
        r->nself++;
    }
  }
  if (err != 0) {
    free_self(r);
    maild__free(&m, r);
    return err;
  }
  uv_timer_init(loop, &r->kick);
  r->kick.data = r;
  *out = r;
  return 0;
}

/* ---- Cache ---- */

static const maild_dns_answer *cache_get(maild_resolver *r, const char *name,
                                         uint16_t type) {
  cache_entry *e, **pp = &r->cache;
  uint64_t now = uv_now(r->loop);

  while ((e = *pp) != NULL) {
    if (e->expires <= now) {
      *pp = e->next;
      r->ncache--;
      maild__free(&r->mem, e);
      continue;
    }
    if (e->type == type && strcmp(e->name, name) == 0)
      return &e->ans;
    pp = &e->next;
  }
  return NULL;
}

static void cache_put(maild_resolver *r, const char *name, uint16_t type,
                      const maild_dns_answer *ans) {
  cache_entry *e, **pp;
  uint32_t ttl = UINT32_MAX;
  size_t i;

  if (ans->rcode != MAILD_DNS_NOERROR && ans->rcode != MAILD_DNS_NXDOMAIN)
    return; /* failures are not cached */
  for (i = 0; i < ans->n; i++)
    if (ans->rr[i].ttl < ttl)
      ttl = ans->rr[i].ttl;
  if (ans->n == 0)
    ttl = ans->neg_ttl < NEG_TTL_MAX ? ans->neg_ttl : NEG_TTL_MAX;
  if (ttl > TTL_MAX)
    ttl = TTL_MAX;
  if (ttl == 0)
    return;
  e = maild__calloc(&r->mem, 1, sizeof(*e));
  if (e == NULL)
    return;
  snprintf(e->name, sizeof(e->name), "%s", name);
  e->type = type;
  e->expires = uv_now(r->loop) + (uint64_t)ttl * 1000u;
  e->ans = *ans;
  e->next = r->cache;
  r->cache = e;
  if (++r->ncache > CACHE_MAX) { /* drop the oldest */
    for (pp = &r->cache; (*pp)->next != NULL; pp = &(*pp)->next)
      ;
    maild__free(&r->mem, *pp);
    *pp = NULL;
    r->ncache--;
  }
}

/* ---- Queries ---- */

static void unlink_query(query *q) {
  query **pp;

  for (pp = &q->lk->r->queries; *pp != NULL; pp = &(*pp)->next)
    if (*pp == q) {
      *pp = q->next;
      return;
    }
}

static int on_message(void *ud, const uint8_t *msg, size_t len) {
  query *q = ud;

  return maild__dns_parse(msg, len, q->id, q->name, q->type, &q->ans) == 0;
}

static void on_xfer_done(void *ud, int err) {
  query *q = ud;

  q->x = NULL;
  q->err = err;
  if (err == 0 && q->ans.truncated && !q->tcp) {
    /* RFC 7766: ask again over TCP. */
    uint8_t buf[QUERY_BUF];
    maild_ssize n;
    q->tcp = 1;
    q->id = (uint16_t)q->lk->r->rand(q->lk->r->rand_ud);
    n = maild__dns_query(buf, sizeof(buf), q->id, q->name, q->type, 0);
    if (n > 0 &&
        maild__dns_xfer_start(&q->x, q->lk->r->loop, q->lk->r->servers,
                              q->lk->r->nservers, buf, (size_t)n, 1,
                              q->lk->r->timeout_ms, q->lk->r->tries, on_message,
                              on_xfer_done, q, &q->lk->r->mem) == 0)
      return;
    q->err = MAILD_ERR_IO;
  }
  if (q->err == 0)
    cache_put(q->lk->r, q->name, q->type, &q->ans);
  unlink_query(q);
  query_done(q);
}

/* Asks `name` `type` for the lookup (host -1: the MX query). */
static void ask(lookup *lk, const char *name, uint16_t type, int host) {
  maild_resolver *r = lk->r;
  const maild_dns_answer *hit = cache_get(r, name, type);
  uint8_t buf[QUERY_BUF];
  maild_ssize n;
  query *q = maild__calloc(&r->mem, 1, sizeof(*q));

  lk->pending++;
  if (q == NULL) {
    lk->pending--;
    if (host < 0) {
      lk->done = 1;
      lk->enhanced = "4.4.3";
      snprintf(lk->text, sizeof(lk->text), "Out of memory");
    } else {
      lk->hosts[host].temp = 1;
    }
    lookup_step(lk);
    return;
  }
  q->lk = lk;
  snprintf(q->name, sizeof(q->name), "%s", name);
  q->type = type;
  q->host = host;
  if (hit != NULL) {
    q->ans = *hit;
    query_done(q); /* lookups finish through the kick timer */
    return;
  }
  q->id = (uint16_t)r->rand(r->rand_ud);
  n = maild__dns_query(buf, sizeof(buf), q->id, q->name, type, 0);
  if (n < 0 ||
      maild__dns_xfer_start(&q->x, r->loop, r->servers, r->nservers, buf,
                            (size_t)n, 0, r->timeout_ms, r->tries, on_message,
                            on_xfer_done, q, &r->mem) != 0) {
    q->err = MAILD_ERR_IO;
    query_done(q);
    return;
  }
  q->next = r->queries;
  r->queries = q;
}

/* ---- Lookups ---- */

static void fail(lookup *lk, int permanent, const char *enh, const char *fmt,
                 const char *arg) __attribute__((format(printf, 4, 0)));
static void fail(lookup *lk, int permanent, const char *enh, const char *fmt,
                 const char *arg) {
  if (lk->done)
    return;
  lk->done = 1;
  lk->permanent = permanent;
  lk->enhanced = enh;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  snprintf(lk->text, sizeof(lk->text), fmt, arg); /* callers: literals */
#pragma GCC diagnostic pop
}

static int is_self(const maild_resolver *r, const char *name) {
  size_t i;

  for (i = 0; i < r->nself; i++)
    if (strcmp(r->self[i], name) == 0)
      return 1;
  return 0;
}

/* The name `name` leads to through the answer's CNAMEs. */
static const char *follow(const maild_dns_answer *a, const char *name) {
  int depth;
  size_t i;

  for (depth = 0; depth < CNAME_DEPTH; depth++) {
    for (i = 0; i < a->n; i++)
      if (a->rr[i].type == MAILD_DNS_CNAME && strcmp(a->rr[i].owner, name) == 0)
        break;
    if (i == a->n)
      return name;
    name = a->rr[i].target;
  }
  return NULL; /* too deep */
}

static int by_pref(const void *pa, const void *pb) {
  const mx_host *a = pa, *b = pb;

  return a->pref < b->pref ? -1 : a->pref > b->pref;
}

static void on_mx(lookup *lk, query *q) {
  maild_resolver *r = lk->r;
  const maild_dns_answer *a = &q->ans;
  const char *name;
  size_t i, j, nmx = 0, nnull = 0;
  unsigned self_pref = UINT32_MAX;

  if (q->err != 0) {
    fail(lk, 0, "4.4.3", "DNS: no answer for %s MX", lk->mxname);
    return;
  }
  if (a->rcode == MAILD_DNS_NXDOMAIN) {
    fail(lk, 1, "5.1.2", "Host or domain name not found: %s", lk->mxname);
    return;
  }
  if (a->rcode != MAILD_DNS_NOERROR) {
    fail(lk, 0, "4.4.3", "DNS: server failure for %s MX", lk->mxname);
    return;
  }
  name = follow(a, lk->mxname);
  if (name == NULL) {
    fail(lk, 1, "5.1.2", "CNAME chain too long for %s", lk->domain);
    return;
  }
  for (i = 0; i < a->n; i++) {
    const maild_dns_rr *rr = &a->rr[i];
    if (rr->type != MAILD_DNS_MX || strcmp(rr->owner, name) != 0)
      continue;
    nmx++;
    if (rr->target[0] == '\0') {
      nnull++;
      continue;
    }
    for (j = 0; j < lk->nhosts; j++)
      if (strcmp(lk->hosts[j].name, rr->target) == 0)
        break;
    if (j < lk->nhosts)
      continue;                    /* listed twice */
    if (lk->nhosts == HOSTS_MAX) { /* keep the best: replace the worst */
      size_t worst = 0;
      for (j = 1; j < lk->nhosts; j++)
        if (lk->hosts[j].pref > lk->hosts[worst].pref)
          worst = j;
      if (lk->hosts[worst].pref <= rr->pref)
        continue;
      j = worst;
    } else {
      j = lk->nhosts++;
    }
    snprintf(lk->hosts[j].name, MAILD_DNS_NAME_MAX + 1, "%s", rr->target);
    lk->hosts[j].pref = rr->pref;
  }
  if (nmx == 0 && strcmp(name, lk->mxname) != 0) {
    /* A CNAME without the MX records of its target: ask for those. */
    if (++lk->depth > CNAME_DEPTH) {
      fail(lk, 1, "5.1.2", "CNAME chain too long for %s", lk->domain);
      return;
    }
    snprintf(lk->mxname, sizeof(lk->mxname), "%s", name);
    ask(lk, lk->mxname, MAILD_DNS_MX, -1);
    return;
  }
  if (nmx > 0 && nnull == nmx) {
    fail(lk, 1, "5.1.10", "Domain %s accepts no mail (null MX)", lk->domain);
    return;
  }
  if (nmx == 0) { /* RFC 5321 5.1: the domain is its own mail host */
    snprintf(lk->hosts[0].name, MAILD_DNS_NAME_MAX + 1, "%s", name);
    lk->hosts[0].pref = 0;
    lk->nhosts = 1;
  }
  /* Shuffle, then a stable sort by preference: random among equals. */
  for (i = lk->nhosts; i > 1; i--) {
    mx_host t;
    j = r->rand(r->rand_ud) % i;
    t = lk->hosts[i - 1];
    lk->hosts[i - 1] = lk->hosts[j];
    lk->hosts[j] = t;
  }
  for (i = 1; i < lk->nhosts; i++) /* insertion sort: stable */
    for (j = i; j > 0 && by_pref(&lk->hosts[j - 1], &lk->hosts[j]) > 0; j--) {
      mx_host t = lk->hosts[j];
      lk->hosts[j] = lk->hosts[j - 1];
      lk->hosts[j - 1] = t;
    }
  /* RFC 5321 5.1: this server and every MX not better than it go. */
  for (i = 0; i < lk->nhosts; i++)
    if (is_self(r, lk->hosts[i].name) && lk->hosts[i].pref < self_pref)
      self_pref = lk->hosts[i].pref;
  if (self_pref != UINT32_MAX) {
    for (i = 0; i < lk->nhosts && lk->hosts[i].pref < self_pref; i++)
      ;
    lk->nhosts = i;
    if (i == 0) {
      fail(lk, 1, "5.4.6", "Mail for %s loops back to myself", lk->domain);
      return;
    }
  }
  for (i = 0; i < lk->nhosts; i++) {
    ask(lk, lk->hosts[i].name, MAILD_DNS_AAAA, (int)i);
    ask(lk, lk->hosts[i].name, MAILD_DNS_A, (int)i);
  }
}

static void on_addr(lookup *lk, query *q) {
  mx_host *h = &lk->hosts[q->host];
  const maild_dns_answer *a = &q->ans;
  const char *name;
  size_t i;

  if (q->err != 0 ||
      (a->rcode != MAILD_DNS_NOERROR && a->rcode != MAILD_DNS_NXDOMAIN)) {
    h->temp = 1;
    return;
  }
  if (a->rcode == MAILD_DNS_NXDOMAIN) {
    h->perm = 1;
    return;
  }
  name = follow(a, h->name);
  for (i = 0; name != NULL && i < a->n; i++) {
    const maild_dns_rr *rr = &a->rr[i];
    if (rr->type != q->type || strcmp(rr->owner, name) != 0)
      continue;
    if (rr->type == MAILD_DNS_AAAA && h->naddr6 < ADDRS_MAX) {
      struct sockaddr_in6 *s6 = (void *)&h->addr[h->naddr6++];
      memset(s6, 0, sizeof(*s6));
      s6->sin6_family = AF_INET6;
      memcpy(&s6->sin6_addr, rr->addr, 16);
    } else if (rr->type == MAILD_DNS_A && h->naddr4 < ADDRS_MAX) {
      struct sockaddr_in *s4 = (void *)&h->addr[ADDRS_MAX + h->naddr4++];
      memset(s4, 0, sizeof(*s4));
      s4->sin_family = AF_INET;
      memcpy(&s4->sin_addr, rr->addr, 4);
    }
  }
}

static void query_done(query *q) {
  lookup *lk = q->lk;

  if (!lk->done) {
    if (q->host < 0)
      on_mx(lk, q);
    else
      on_addr(lk, q);
  }
  maild__free(&lk->r->mem, q);
  lk->pending--;
  lookup_step(lk);
}

/* Delivers the lookups that are over. */
static void on_kick(uv_timer_t *t) {
  maild_resolver *r = t->data;
  lookup **pp = &r->lookups, *lk;

  while ((lk = *pp) != NULL) {
    maild_mx_target targets[HOSTS_MAX * 2 * ADDRS_MAX];
    maild_mx_result res;
    size_t i, k, n = 0;
    int temp = 0;
    if (lk->pending > 0) {
      pp = &lk->next;
      continue;
    }
    *pp = lk->next;
    memset(&res, 0, sizeof(res));
    if (!lk->done) {
      for (i = 0; i < lk->nhosts; i++) {
        mx_host *h = &lk->hosts[i];
        temp |= h->temp;
        for (k = 0; k < h->naddr6; k++)
          targets[n++] = (maild_mx_target){h->name, h->pref, h->addr[k]};
        for (k = 0; k < h->naddr4; k++)
          targets[n++] =
              (maild_mx_target){h->name, h->pref, h->addr[ADDRS_MAX + k]};
      }
      if (n == 0 && temp)
        fail(lk, 0, "4.4.3", "DNS: no address for the mail hosts of %s yet",
             lk->domain);
      else if (n == 0)
        fail(lk, 1, "5.1.2", "No address for any mail host of %s", lk->domain);
    }
    res.permanent = n == 0 && lk->permanent;
    res.enhanced = n > 0 ? "" : lk->enhanced;
    res.text = n > 0 ? "" : lk->text;
    res.targets = targets;
    res.ntargets = n;
    lk->cb(lk->ud, &res);
    maild__free(&r->mem, lk);
  }
}

static void lookup_step(lookup *lk) {
  if (lk->pending == 0 && !lk->r->closing)
    uv_timer_start(&lk->r->kick, on_kick, 0, 0);
}

/* A new lookup for `domain` (checked and lower-cased), linked in; NULL
   with *err set when it cannot be. */
static lookup *lookup_new(maild_resolver *r, const char *domain, maild_mx_cb cb,
                          void *user_data, int *err) {
  char name[MAILD_DNS_NAME_MAX + 1];
  lookup *lk;

  *err = MAILD_ERR_INVAL;
  if (r == NULL || domain == NULL || cb == NULL || r->closing ||
      maild__dns_name(domain, name) != 0)
    return NULL;
  *err = MAILD_ERR_NOMEM;
  lk = maild__calloc(&r->mem, 1, sizeof(*lk));
  if (lk == NULL)
    return NULL;
  lk->r = r;
  lk->cb = cb;
  lk->ud = user_data;
  snprintf(lk->domain, sizeof(lk->domain), "%s", name);
  snprintf(lk->mxname, sizeof(lk->mxname), "%s", name);
  lk->next = r->lookups;
  r->lookups = lk;
  *err = 0;
  return lk;
}

int maild_resolver_mx(maild_resolver *r, const char *domain, maild_mx_cb cb,
                      void *user_data) {
  int err;
  lookup *lk = lookup_new(r, domain, cb, user_data, &err);

  if (lk != NULL)
    ask(lk, lk->mxname, MAILD_DNS_MX, -1);
  return err;
}

void maild_resolver_cancel(maild_resolver *r, maild_mx_cb cb, void *user_data) {
  lookup **pp, *lk;
  query **qq, *q;

  if (r == NULL)
    return;
  for (pp = &r->lookups; (lk = *pp) != NULL;) {
    if (lk->cb != cb || lk->ud != user_data) {
      pp = &lk->next;
      continue;
    }
    *pp = lk->next;
    for (qq = &r->queries; (q = *qq) != NULL;) {
      if (q->lk != lk) {
        qq = &q->next;
        continue;
      }
      *qq = q->next;
      maild__dns_xfer_cancel(q->x);
      maild__free(&r->mem, q);
    }
    maild__free(&r->mem, lk);
  }
}

int maild_resolver_host(maild_resolver *r, const char *host, maild_mx_cb cb,
                        void *user_data) {
  int err;
  lookup *lk = lookup_new(r, host, cb, user_data, &err);

  if (lk == NULL)
    return err;
  snprintf(lk->hosts[0].name, sizeof(lk->hosts[0].name), "%s", lk->domain);
  lk->nhosts = 1;
  lk->pending++; /* held while both questions go out */
  ask(lk, lk->domain, MAILD_DNS_AAAA, 0);
  ask(lk, lk->domain, MAILD_DNS_A, 0);
  lk->pending--;
  lookup_step(lk);
  return 0;
}

static void on_kick_closed(uv_handle_t *h) {
  maild_resolver *r = h->data;
  cache_entry *e;

  while ((e = r->cache) != NULL) {
    r->cache = e->next;
    maild__free(&r->mem, e);
  }
  free_self(r);
  maild__free(&r->mem, r);
}

void maild_resolver_close(maild_resolver *r) {
  query *q;
  lookup *lk;

  if (r == NULL || r->closing)
    return;
  r->closing = 1;
  while ((q = r->queries) != NULL) {
    r->queries = q->next;
    maild__dns_xfer_cancel(q->x);
    maild__free(&r->mem, q);
  }
  while ((lk = r->lookups) != NULL) {
    r->lookups = lk->next;
    maild__free(&r->mem, lk);
  }
  uv_timer_stop(&r->kick);
  uv_close((uv_handle_t *)&r->kick, on_kick_closed);
}
