/*
 * The local directory (see maild/directory.h): which recipients are ours,
 * and whose mailboxes they reach.
 *
 * Every address the configuration names (users, aliases, alias targets,
 * and each local domain as "@domain", which is also the key of its
 * catch-all) becomes one node in a hash table keyed by its canonical form.
 * Aliases are expanded once, at build time, by a depth-first walk that
 * memoises each alias's result: a cycle is seen as a node met again while
 * it is being expanded, and the depth limit bounds both the alias chains
 * and the recursion. Building everything up front keeps lookups free of
 * recursion and allocation, and the object immutable, so the runtime can
 * share one directory between threads and swap in a new one on reload.
 *
 * postmaster@domain (RFC 5321 4.5.1) is made an alias of its own for each
 * local domain that has no explicit one, so that alias targets may name it
 * and it expands like any other alias.
 */
#include "maild/directory.h"
#include "maild/error.h"
#include "core/ascii.h"
#include "core/mem.h"

#include <string.h>

#define NONE ((size_t)-1)

enum node_flags {
  NODE_USER = 1u << 0,       /* an account of the users file */
  NODE_ALIAS = 1u << 1,      /* an alias, a catch-all or a postmaster default */
  NODE_DOMAIN = 1u << 2,     /* "@domain" of a local domain */
  NODE_DEFAULT_PM = 1u << 3, /* postmaster@D made up for domain `dom` */
};

enum node_state { NODE_NEW, NODE_EXPANDING, NODE_DONE };

/* A growable list of node ids. */
typedef struct id_list {
  size_t *ids;
  size_t n, cap;
} id_list;

typedef struct dir_node {
  char *key; /* canonical "local@domain", or "@domain" */
  unsigned flags;
  /* Result of an alias: `nmbox` mailboxes, then `next` external
     addresses, pointing at node keys. */
  const char **list;
  size_t nmbox, next;
  /* Where the alias came from, for build errors. */
  maild_directory_part part;
  size_t index;
  /* Build-time only. */
  size_t dom; /* NODE_DEFAULT_PM: the node of its domain */
  id_list targets, mbox, ext;
  unsigned state, height;
  size_t stamp;
} dir_node;

struct maild_directory {
  maild_mem mem;
  dir_node *nodes;
  size_t nnodes, nodes_cap;
  size_t *table; /* open addressing over node ids; NONE is empty */
  size_t table_cap;
  size_t first_domain; /* node of "@" + domains[0] */
  size_t stamp;        /* build-time: de-duplication generation */
};

/* ---- Keys and the table ---- */

static size_t table_slot(const maild_directory *d, const char *key) {
  size_t mask = d->table_cap - 1, i = maild__str_hash(key) & mask;

  while (d->table[i] != NONE && strcmp(d->nodes[d->table[i]].key, key) != 0)
    i = (i + 1) & mask;
  return i;
}

static size_t find(const maild_directory *d, const char *key) {
  return d->table_cap == 0 ? NONE : d->table[table_slot(d, key)];
}

static int has(const maild_directory *d, size_t id, unsigned flags) {
  return id != NONE && (d->nodes[id].flags & flags) != 0;
}

/* The domain node of a canonical address, if the domain is local: its key
   is the address from the '@' after the local-part on. */
static size_t domain_of(const maild_directory *d, const char *addr) {
  const char *at = maild_users_domain(addr);
  size_t id = at != NULL ? find(d, at) : NONE;
  return has(d, id, NODE_DOMAIN) ? id : NONE;
}

static int table_grow(maild_directory *d) {
  size_t cap = d->table_cap ? d->table_cap * 2 : 64, i;
  size_t *t;

  t = maild__malloc(&d->mem, cap * sizeof(*t));
  if (t == NULL)
    return MAILD_ERR_NOMEM;
  maild__free(&d->mem, d->table);
  d->table = t;
  d->table_cap = cap;
  for (i = 0; i < cap; i++)
    t[i] = NONE;
  for (i = 0; i < d->nnodes; i++)
    t[table_slot(d, d->nodes[i].key)] = i;
  return 0;
}

/* The node of `key`, created without flags if new. */
static int intern(maild_directory *d, const char *key, size_t *id) {
  dir_node *n;
  size_t cap;

  *id = find(d, key);
  if (*id != NONE)
    return 0;
  if ((d->nnodes + 1) * 2 > d->table_cap && table_grow(d) < 0)
    return MAILD_ERR_NOMEM;
  if (d->nnodes == d->nodes_cap) {
    cap = d->nodes_cap ? d->nodes_cap * 2 : 32;
    n = maild__realloc(&d->mem, d->nodes, cap * sizeof(*n));
    if (n == NULL)
      return MAILD_ERR_NOMEM;
    d->nodes = n;
    d->nodes_cap = cap;
  }
  n = &d->nodes[d->nnodes];
  memset(n, 0, sizeof(*n));
  n->key = maild__strndup(&d->mem, key, strlen(key));
  if (n->key == NULL)
    return MAILD_ERR_NOMEM;
  *id = d->nnodes++;
  d->table[table_slot(d, key)] = *id;
  return 0;
}

static int list_add(const maild_directory *d, id_list *l, size_t id) {
  size_t cap;
  size_t *p;

  if (l->n == l->cap) {
    cap = l->cap ? l->cap * 2 : 4;
    p = maild__realloc(&d->mem, l->ids, cap * sizeof(*p));
    if (p == NULL)
      return MAILD_ERR_NOMEM;
    l->ids = p;
    l->cap = cap;
  }
  l->ids[l->n++] = id;
  return 0;
}

static void list_free(const maild_directory *d, id_list *l) {
  maild__free(&d->mem, l->ids);
  memset(l, 0, sizeof(*l));
}

/* ---- Building: domains, users, aliases ---- */

/* "@" + the domain, lower-cased, into `key` (MAILD_USERS_ADDRESS_SIZE). */
static int domain_key(const char *dom, size_t len, char *key) {
  size_t i;
  int rc;

  rc = maild_domain_check(dom, len, MAILD_PATH_ALLOW_UTF8, 1);
  if (rc < 0)
    return rc;
  key[0] = '@';
  for (i = 0; i < len; i++)
    key[i + 1] = (char)maild__ascii_lower((unsigned char)dom[i]);
  key[len + 1] = '\0';
  return 0;
}

static int add_domains(maild_directory *d, const maild_directory_config *cfg,
                       maild_directory_where *w) {
  char key[MAILD_USERS_ADDRESS_SIZE];
  const char *dom;
  size_t i, id;
  int rc;

  for (i = 0; i < cfg->ndomains; i++) {
    w->part = MAILD_DIRECTORY_PART_DOMAIN;
    w->index = i;
    dom = cfg->domains[i];
    if (dom == NULL)
      return MAILD_ERR_INVAL;
    rc = domain_key(dom, strlen(dom), key);
    if (rc == 0)
      rc = intern(d, key, &id);
    if (rc < 0)
      return rc;
    if (has(d, id, NODE_DOMAIN))
      return MAILD_ERR_DUPLICATE;
    d->nodes[id].flags |= NODE_DOMAIN;
    if (i == 0)
      d->first_domain = id;
  }
  return 0;
}

static int add_users(maild_directory *d, const maild_users *users) {
  size_t i, id, n = maild_users_count(users);
  int rc;

  for (i = 0; i < n; i++) {
    rc = intern(d, maild_users_address(users, i), &id);
    if (rc < 0)
      return rc;
    d->nodes[id].flags |= NODE_USER;
  }
  return 0;
}

/* Canonical key of an alias address: "local@domain" or "@domain". */
static int alias_key(const char *addr, char *key) {
  maild_ssize rc;

  if (addr == NULL)
    return MAILD_ERR_INVAL;
  if (addr[0] == '@') {
    if (strlen(addr + 1) > MAILD_DOMAIN_MAX)
      return MAILD_ERR_TOO_LONG;
    return domain_key(addr + 1, strlen(addr + 1), key);
  }
  rc = maild_users_canonical(addr, strlen(addr), key, MAILD_USERS_ADDRESS_SIZE);
  return rc < 0 ? (int)rc : 0;
}

static int add_alias(maild_directory *d, const maild_alias *a, size_t i) {
  char key[MAILD_USERS_ADDRESS_SIZE];
  size_t id;
  int rc;

  rc = alias_key(a->address, key);
  if (rc < 0)
    return rc;
  /* "@domain" is its own domain key; "local@domain" has one inside. */
  if (a->ntargets == 0 || a->targets == NULL ||
      (key[0] != '@' && domain_of(d, key) == NONE) ||
      (key[0] == '@' && !has(d, find(d, key), NODE_DOMAIN)))
    return MAILD_ERR_INVAL;
  rc = intern(d, key, &id);
  if (rc < 0)
    return rc;
  if (has(d, id, NODE_ALIAS))
    return MAILD_ERR_DUPLICATE;
  d->nodes[id].flags |= NODE_ALIAS;
  d->nodes[id].part = MAILD_DIRECTORY_PART_ALIAS;
  d->nodes[id].index = i;
  return 0;
}

static int add_aliases(maild_directory *d, const maild_directory_config *cfg,
                       maild_directory_where *w) {
  size_t i;
  int rc;

  for (i = 0; i < cfg->naliases; i++) {
    w->part = MAILD_DIRECTORY_PART_ALIAS;
    w->index = i;
    rc = add_alias(d, &cfg->aliases[i], i);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/*
 * postmaster@D for each local domain D without an explicit one: an alias
 * whose target postmaster_targets() chooses. Domain i is node i, since
 * add_domains() ran first on an empty table.
 */
static int add_postmasters(maild_directory *d,
                           const maild_directory_config *cfg) {
  char key[MAILD_USERS_ADDRESS_SIZE];
  size_t i, id;
  dir_node *n;
  int rc;

  for (i = 0; i < cfg->ndomains; i++) {
    memcpy(key, "postmaster", 10);
    memcpy(key + 10, d->nodes[i].key, strlen(d->nodes[i].key) + 1);
    rc = intern(d, key, &id);
    if (rc < 0)
      return rc;
    n = &d->nodes[id];
    if (n->flags & (NODE_USER | NODE_ALIAS))
      continue;
    n->flags |= NODE_ALIAS | NODE_DEFAULT_PM;
    n->dom = i;
    n->part = cfg->postmaster ? MAILD_DIRECTORY_PART_POSTMASTER
                              : MAILD_DIRECTORY_PART_DOMAIN;
    n->index = cfg->postmaster ? 0 : i;
  }
  return 0;
}

/* A target address: any full address; in a local domain it must name a
   user or an alias. */
static int resolve_target(maild_directory *d, const char *addr, size_t *id) {
  char key[MAILD_USERS_ADDRESS_SIZE];
  maild_ssize rc;

  if (addr == NULL)
    return MAILD_ERR_INVAL;
  rc = maild_users_canonical(addr, strlen(addr), key, sizeof(key));
  if (rc < 0)
    return (int)rc;
  rc = intern(d, key, id);
  if (rc < 0)
    return (int)rc;
  if (domain_of(d, key) != NONE && !has(d, *id, NODE_USER | NODE_ALIAS))
    return MAILD_ERR_NOT_FOUND;
  return 0;
}

static int add_targets(maild_directory *d, const maild_directory_config *cfg,
                       maild_directory_where *w) {
  char key[MAILD_USERS_ADDRESS_SIZE];
  const maild_alias *a;
  size_t i, j, id, tid;
  int rc;

  for (i = 0; i < cfg->naliases; i++) {
    a = &cfg->aliases[i];
    w->part = MAILD_DIRECTORY_PART_ALIAS;
    w->index = i;
    alias_key(a->address, key);
    id = find(d, key);
    for (j = 0; j < a->ntargets; j++) {
      w->target = j;
      rc = resolve_target(d, a->targets[j], &tid);
      if (rc == 0)
        rc = list_add(d, &d->nodes[id].targets, tid);
      if (rc < 0)
        return rc;
    }
  }
  w->target = NONE;
  return 0;
}

/* The first user of the domain node `dom`, in users-file order. */
static size_t first_user(const maild_directory *d, const maild_users *users,
                         size_t dom) {
  size_t i, n = maild_users_count(users);
  const char *addr;

  for (i = 0; i < n; i++) {
    addr = maild_users_address(users, i);
    if (strcmp(maild_users_domain(addr), d->nodes[dom].key) == 0)
      return find(d, addr);
  }
  return NONE;
}

/* Fallback, else first user of the domain, else its catch-all. */
static int postmaster_targets(maild_directory *d,
                              const maild_directory_config *cfg,
                              maild_directory_where *w) {
  size_t i, dom, pm = NONE, t;
  int rc;

  if (cfg->postmaster != NULL) {
    w->part = MAILD_DIRECTORY_PART_POSTMASTER;
    w->index = 0;
    rc = resolve_target(d, cfg->postmaster, &pm);
    if (rc < 0)
      return rc;
  }
  for (i = 0; i < d->nnodes; i++) {
    if (!has(d, i, NODE_DEFAULT_PM))
      continue;
    dom = d->nodes[i].dom;
    t = pm != NONE ? pm : first_user(d, cfg->users, dom);
    if (t == NONE && has(d, dom, NODE_ALIAS))
      t = dom;
    if (t == NONE) {
      w->part = MAILD_DIRECTORY_PART_DOMAIN;
      w->index = dom;
      return MAILD_ERR_NOT_FOUND;
    }
    rc = list_add(d, &d->nodes[i].targets, t);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* ---- Expansion ---- */

static void blame(const maild_directory *d, size_t id, size_t target,
                  maild_directory_where *w) {
  w->part = d->nodes[id].part;
  w->index = d->nodes[id].index;
  w->target = w->part == MAILD_DIRECTORY_PART_ALIAS ? target : NONE;
}

/* Adds `t` to the mailboxes or externals of `n`, once. */
static int merge_one(maild_directory *d, dir_node *n, size_t t) {
  dir_node *tn = &d->nodes[t];

  if (tn->stamp == d->stamp)
    return 0;
  tn->stamp = d->stamp;
  if (n->mbox.n + n->ext.n >= MAILD_DIRECTORY_EXPAND_MAX)
    return MAILD_ERR_LIMIT;
  return list_add(d, domain_of(d, tn->key) != NONE ? &n->mbox : &n->ext, t);
}

/* The union of the targets' results, in first-seen order. */
static int merge(maild_directory *d, size_t id) {
  dir_node *n = &d->nodes[id], *tn;
  size_t j, k, t;
  int rc = 0;

  d->stamp++;
  for (j = 0; j < n->targets.n && rc == 0; j++) {
    t = n->targets.ids[j];
    tn = &d->nodes[t];
    if (t == id || !(tn->flags & NODE_ALIAS)) {
      rc = merge_one(d, n, t);
      continue;
    }
    for (k = 0; k < tn->mbox.n && rc == 0; k++)
      rc = merge_one(d, n, tn->mbox.ids[k]);
    for (k = 0; k < tn->ext.n && rc == 0; k++)
      rc = merge_one(d, n, tn->ext.ids[k]);
  }
  return rc;
}

/*
 * Expands alias `id` after its alias targets. `depth` counts the aliases
 * on the current path; it bounds the recursion, `height` (the longest
 * chain below an alias) bounds the chains.
 */
static int expand(maild_directory *d, size_t id, unsigned depth,
                  maild_directory_where *w) {
  unsigned height = 0;
  size_t j, t;
  int rc;

  if (depth > MAILD_DIRECTORY_DEPTH_MAX + 1) {
    blame(d, id, NONE, w);
    return MAILD_ERR_LIMIT;
  }
  d->nodes[id].state = NODE_EXPANDING;
  for (j = 0; j < d->nodes[id].targets.n; j++) {
    t = d->nodes[id].targets.ids[j];
    if (t == id && has(d, t, NODE_USER))
      continue; /* "a: a, b": a's own mailbox, as in Postfix */
    if (!has(d, t, NODE_ALIAS))
      continue;
    if (d->nodes[t].state == NODE_EXPANDING) {
      blame(d, id, j, w);
      return MAILD_ERR_INVAL; /* a cycle */
    }
    if (d->nodes[t].state == NODE_NEW) {
      rc = expand(d, t, depth + 1, w);
      if (rc < 0)
        return rc;
    }
    if (d->nodes[t].height > height)
      height = d->nodes[t].height;
  }
  d->nodes[id].height = height + 1;
  if (d->nodes[id].height > MAILD_DIRECTORY_DEPTH_MAX) {
    blame(d, id, NONE, w);
    return MAILD_ERR_LIMIT;
  }
  rc = merge(d, id);
  if (rc < 0) {
    blame(d, id, NONE, w);
    return rc;
  }
  d->nodes[id].state = NODE_DONE;
  return 0;
}

/* The final result arrays of alias `n`: mailboxes, then externals. */
static int finish(maild_directory *d, dir_node *n) {
  size_t k, total = n->mbox.n + n->ext.n;

  n->list = maild__malloc(&d->mem, total * sizeof(*n->list));
  if (n->list == NULL)
    return MAILD_ERR_NOMEM;
  for (k = 0; k < n->mbox.n; k++)
    n->list[k] = d->nodes[n->mbox.ids[k]].key;
  for (k = 0; k < n->ext.n; k++)
    n->list[n->mbox.n + k] = d->nodes[n->ext.ids[k]].key;
  n->nmbox = n->mbox.n;
  n->next = n->ext.n;
  return 0;
}

static int expand_all(maild_directory *d, maild_directory_where *w) {
  size_t i;
  int rc;

  for (i = 0; i < d->nnodes; i++) {
    if (has(d, i, NODE_ALIAS) && d->nodes[i].state == NODE_NEW) {
      rc = expand(d, i, 1, w);
      if (rc < 0)
        return rc;
    }
  }
  w->part = MAILD_DIRECTORY_PART_NONE;
  for (i = 0; i < d->nnodes; i++) {
    if (has(d, i, NODE_ALIAS)) {
      rc = finish(d, &d->nodes[i]);
      if (rc < 0)
        return rc;
    }
  }
  return 0;
}

static void free_build_data(maild_directory *d) {
  size_t i;

  for (i = 0; i < d->nnodes; i++) {
    list_free(d, &d->nodes[i].targets);
    list_free(d, &d->nodes[i].mbox);
    list_free(d, &d->nodes[i].ext);
  }
}

static int build(maild_directory *d, const maild_directory_config *cfg,
                 maild_directory_where *w) {
  int rc;

  rc = add_domains(d, cfg, w);
  if (rc == 0) {
    w->part = MAILD_DIRECTORY_PART_NONE;
    rc = add_users(d, cfg->users);
  }
  if (rc == 0)
    rc = add_aliases(d, cfg, w);
  if (rc == 0) {
    w->part = MAILD_DIRECTORY_PART_NONE;
    rc = add_postmasters(d, cfg);
  }
  if (rc == 0)
    rc = add_targets(d, cfg, w);
  if (rc == 0)
    rc = postmaster_targets(d, cfg, w);
  if (rc == 0)
    rc = expand_all(d, w);
  free_build_data(d);
  return rc;
}

/* ---- Public API ---- */

int maild_directory_new(maild_directory **out,
                        const maild_directory_config *cfg,
                        maild_directory_where *where, const maild_options *opt,
                        const maild_mem *mem) {
  maild_directory_where scratch;
  maild_directory *d;
  maild_mem m;
  int rc;

  (void)opt;
  if (where == NULL)
    where = &scratch;
  where->part = MAILD_DIRECTORY_PART_NONE;
  where->index = 0;
  where->target = NONE;
  if (out == NULL || cfg == NULL || cfg->ndomains == 0 ||
      cfg->domains == NULL || (cfg->naliases > 0 && cfg->aliases == NULL))
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  d = maild__calloc(&m, 1, sizeof(*d));
  if (d == NULL)
    return MAILD_ERR_NOMEM;
  d->mem = m;
  rc = build(d, cfg, where);
  if (rc < 0) {
    if (rc == MAILD_ERR_NOMEM)
      where->part = MAILD_DIRECTORY_PART_NONE;
    maild_directory_del(d);
    return rc;
  }
  *out = d;
  return 0;
}

void maild_directory_del(maild_directory *d) {
  size_t i;

  if (d == NULL)
    return;
  for (i = 0; i < d->nnodes; i++) {
    maild__free(&d->mem, d->nodes[i].key);
    maild__free(&d->mem, (void *)d->nodes[i].list);
  }
  maild__free(&d->mem, d->nodes);
  maild__free(&d->mem, d->table);
  maild__free(&d->mem, d);
}

static void set_alias(const dir_node *n, maild_directory_result *out) {
  out->kind = MAILD_RCPT_LOCAL;
  out->mailboxes = n->list;
  out->nmailboxes = n->nmbox;
  out->external = n->list + n->nmbox;
  out->nexternal = n->next;
}

int maild_directory_lookup(const maild_directory *d, const maild_path *rcpt,
                           maild_directory_result *out) {
  char key[MAILD_USERS_ADDRESS_SIZE];
  size_t id, dom;
  const char *dk;

  if (d == NULL || rcpt == NULL || out == NULL ||
      (rcpt->flags & MAILD_PATH_NULL))
    return MAILD_ERR_INVAL;
  memset(out, 0, sizeof(*out));
  if (rcpt->flags & MAILD_PATH_POSTMASTER) {
    /* "<postmaster>" is postmaster of the first local domain. */
    dk = d->nodes[d->first_domain].key;
    memcpy(key, "postmaster", 10);
    memcpy(key + 10, dk, strlen(dk) + 1);
  } else if (maild_users_canonical_path(rcpt, key, sizeof(key)) < 0) {
    return MAILD_ERR_INVAL;
  }
  dom = domain_of(d, key);
  if (dom == NONE) {
    out->kind = MAILD_RCPT_NOT_LOCAL;
    return 0;
  }
  id = find(d, key);
  if (has(d, id, NODE_ALIAS)) {
    set_alias(&d->nodes[id], out);
  } else if (has(d, id, NODE_USER)) {
    out->kind = MAILD_RCPT_LOCAL;
    out->mailboxes = (const char *const *)&d->nodes[id].key;
    out->nmailboxes = 1;
  } else if (has(d, dom, NODE_ALIAS)) {
    set_alias(&d->nodes[dom], out);
  } else {
    out->kind = MAILD_RCPT_UNKNOWN;
  }
  return 0;
}

int maild_directory_is_local_domain(const maild_directory *d,
                                    const char *domain, size_t len) {
  char key[MAILD_USERS_ADDRESS_SIZE];
  size_t i;

  if (d == NULL || domain == NULL || len > MAILD_DOMAIN_MAX ||
      memchr(domain, '\0', len) != NULL)
    return 0;
  key[0] = '@';
  for (i = 0; i < len; i++)
    key[i + 1] = (char)maild__ascii_lower((unsigned char)domain[i]);
  key[len + 1] = '\0';
  return has(d, find(d, key), NODE_DOMAIN);
}
