/*
 * The users file (see maild/users.h): a passwd-file of `address:hash`
 * lines, checked with crypt(3) from libxcrypt.
 *
 * The file is written by people, so the parser names the line of every
 * error and refuses the whole file rather than load part of it; it is also
 * rewritten by maildctl, so the object keeps every line (comments, unknown
 * fields, the spelling of unchanged addresses) and only formats the lines
 * it changed. Addresses are read with the RFC 5321 path parser and kept in
 * one canonical form, the key of a small open-addressing hash table.
 *
 * Logins are the reason this module exists, and two rules shape them:
 * every refusal returns the same code after the same work (an unknown user
 * is hashed against a fixed dummy hash), and only the reentrant crypt_rn()
 * is used, never crypt(), since the runtime verifies on several worker
 * threads at once. Saving follows the spool's durability rule: tmp file
 * with O_EXCL, fsync, rename, fsync of the directory.
 */
#include "maild/users.h"
#include "maild/error.h"
#include "core/ascii.h"
#include "core/mem.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* rename(2) only: no streams here */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * A yescrypt hash, at libxcrypt's default cost, of a random phrase that
 * was thrown away: unknown users and accounts without a password are
 * checked against it so that they cost what a wrong password costs.
 */
static const char dummy_hash[] =
    "$y$j9T$64DmB5fHpkUDpyCCJMC2E0$wFdQBZYELBoC5Jtu.Ymq/SVCrSjGsa4k/4To2izSZn9";

#define TABLE_EMPTY ((size_t)-1)
#define TMP_TRIES   100

/* One line of the file. `block` holds the strings; `text` is the line as
   read (NULL once the line changed), `addr` NULL for comments. */
typedef struct users_line {
  char *block;
  const char *text;
  const char *addr;  /* canonical address */
  const char *hash;  /* "", "!" or a crypt(3) hash */
  const char *extra; /* "" or ":..." to the end of the line */
} users_line;

struct maild_users {
  maild_mem mem;
  users_line *lines;
  size_t nlines, lines_cap;
  size_t *accounts; /* index in `lines` of each account, in file order */
  size_t naccounts, accounts_cap;
  size_t *table; /* open addressing over `lines` indices; TABLE_EMPTY */
  size_t table_cap;
};

/* Scratch for one crypt(3) call, on the heap: struct crypt_data is 32 KiB. */
typedef struct crypt_work {
  struct crypt_data data;
  char phrase[MAILD_USERS_PASSWORD_MAX + 1];
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
} crypt_work;

/* ---- Small helpers ---- */

static int is_blank(char ch) {
  return ch == ' ' || ch == '\t';
}

/* Equality of two NUL-terminated strings in time that depends only on
   their lengths (hash lengths, not secrets). */
static int ct_equal(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b), i;
  unsigned diff = na != nb;

  for (i = 0; i < na && i < nb; i++)
    diff |= (unsigned)((unsigned char)a[i] ^ (unsigned char)b[i]);
  return diff == 0;
}

static int errno_to_err(int e) {
  switch (e) {
  case ENOENT:
  case ENOTDIR:
    return MAILD_ERR_NOT_FOUND;
  case EACCES:
  case EPERM:
  case EROFS:
    return MAILD_ERR_PERM;
  case ENOMEM:
    return MAILD_ERR_NOMEM;
  default:
    return MAILD_ERR_IO;
  }
}

/* ---- Canonical addresses ---- */

maild_ssize maild_users_canonical_path(const maild_path *p, char *buf,
                                       size_t size) {
  size_t i, n;

  if (p == NULL || buf == NULL ||
      (p->flags & (MAILD_PATH_NULL | MAILD_PATH_POSTMASTER)) ||
      p->local_len == 0 || p->domain_len == 0)
    return MAILD_ERR_INVAL;
  n = p->local_len + 1 + p->domain_len;
  if (n >= size)
    return MAILD_ERR_NOSPC;
  for (i = 0; i < p->local_len; i++)
    buf[i] = (char)maild__ascii_lower((unsigned char)p->local[i]);
  buf[i] = '@';
  for (i = 0; i < p->domain_len; i++)
    buf[p->local_len + 1 + i] =
        (char)maild__ascii_lower((unsigned char)p->domain[i]);
  buf[n] = '\0';
  return (maild_ssize)n;
}

maild_ssize maild_users_canonical(const char *in, size_t len, char *buf,
                                  size_t size) {
  char tmp[MAILD_PATH_MAX];
  maild_path p;
  maild_ssize rc;

  if (in == NULL && len > 0)
    return MAILD_ERR_INVAL;
  /* 256 octets including the brackets (RFC 5321 4.5.3.1.3). */
  if (len > MAILD_PATH_MAX - 2)
    return MAILD_ERR_TOO_LONG;
  tmp[0] = '<';
  if (len > 0)
    memcpy(tmp + 1, in, len);
  tmp[len + 1] = '>';
  rc = maild_path_parse(&p, tmp, len + 2, MAILD_PATH_ALLOW_UTF8);
  if (rc < 0)
    return rc;
  if ((size_t)rc != len + 2 || (p.flags & MAILD_PATH_ROUTE))
    return MAILD_ERR_SYNTAX;
  return maild_users_canonical_path(&p, buf, size);
}

const char *maild_users_domain(const char *address) {
  const char *s = address;

  if (s == NULL)
    return NULL;
  if (*s == '"') {
    for (s++; *s != '\0' && *s != '"'; s++)
      if (*s == '\\' && s[1] != '\0')
        s++;
    if (*s == '"')
      s++;
    return *s == '@' ? s : NULL;
  }
  return strchr(s, '@');
}

/* ---- Hashes ---- */

/* The crypt(3) methods accepted in the file, with the length of the last
   '$'-separated field (the hash) and, for bcrypt, of the whole string. */
static const struct hash_method {
  const char *prefix;
  size_t last;
  size_t total;
} hash_methods[] = {
    {"$y$", 43, 0},   {"$gy$", 43, 0},  {"$7$", 43, 0},   {"$6$", 86, 0},
    {"$2b$", 53, 60}, {"$2y$", 53, 60}, {"$2a$", 53, 60},
};

static int is_hash_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '.' || ch == '/';
}

static int is_setting_char(char ch) {
  return is_hash_char(ch) || ch == '$' || ch == '=' || ch == ',';
}

static int hash_is_none(const char *h, size_t n) {
  return n == 0 || (n == 1 && h[0] == '!');
}

static const struct hash_method *hash_method_of(const char *h, size_t n) {
  size_t i, plen;

  for (i = 0; i < sizeof(hash_methods) / sizeof(hash_methods[0]); i++) {
    plen = strlen(hash_methods[i].prefix);
    if (n >= plen && memcmp(h, hash_methods[i].prefix, plen) == 0)
      return &hash_methods[i];
  }
  return NULL;
}

/*
 * Checks the shape of a stored hash: a method we accept, its settings,
 * and a hash field of the method's length, so that a truncated paste is
 * found at load and not as a login that can never succeed.
 */
static int hash_check(const char *h, size_t n) {
  const struct hash_method *m;
  char tmp[CRYPT_OUTPUT_SIZE];
  size_t i, last = 0;

  if (hash_is_none(h, n))
    return 0;
  if (n >= sizeof(tmp))
    return MAILD_ERR_SYNTAX;
  for (i = 0; i < n; i++) {
    if (!is_setting_char(h[i]))
      return MAILD_ERR_SYNTAX;
    if (h[i] == '$')
      last = i;
  }
  m = hash_method_of(h, n);
  if (m == NULL)
    return MAILD_ERR_UNSUPPORTED;
  if (last < strlen(m->prefix) || n - last - 1 != m->last ||
      (m->total != 0 && n != m->total))
    return MAILD_ERR_SYNTAX;
  for (i = last + 1; i < n; i++)
    if (!is_hash_char(h[i]))
      return MAILD_ERR_SYNTAX;
  memcpy(tmp, h, n);
  tmp[n] = '\0';
  return crypt_checksalt(tmp) == CRYPT_SALT_OK ? 0 : MAILD_ERR_UNSUPPORTED;
}

/* Hashes a new password with yescrypt at the default cost into `out`, or
   writes "!" (no password) when `password` is NULL. */
static int hash_password(const maild_users *u, const char *password, size_t len,
                         char out[CRYPT_OUTPUT_SIZE]) {
  crypt_work *w;
  const char *h;
  int rc = 0;

  if (password == NULL) {
    memcpy(out, "!", 2);
    return 0;
  }
  if (len == 0 || memchr(password, '\0', len) != NULL)
    return MAILD_ERR_INVAL;
  if (len > MAILD_USERS_PASSWORD_MAX)
    return MAILD_ERR_TOO_LONG;
  w = maild__calloc(&u->mem, 1, sizeof(*w));
  if (w == NULL)
    return MAILD_ERR_NOMEM;
  memcpy(w->phrase, password, len);
  w->phrase[len] = '\0';
  if (crypt_gensalt_rn("$y$", 0, NULL, 0, w->salt, sizeof(w->salt)) == NULL) {
    rc = MAILD_ERR_IO;
  } else {
    h = crypt_rn(w->phrase, w->salt, &w->data, sizeof(w->data));
    if (h == NULL || h[0] == '*' || strlen(h) >= CRYPT_OUTPUT_SIZE)
      rc = MAILD_ERR_IO;
    else
      memcpy(out, h, strlen(h) + 1);
  }
  maild__wipe(w, sizeof(*w));
  maild__free(&u->mem, w);
  return rc;
}

/* ---- The table of accounts ---- */

static size_t table_slot(const maild_users *u, const char *addr) {
  size_t mask = u->table_cap - 1, i = maild__str_hash(addr) & mask;

  while (u->table[i] != TABLE_EMPTY &&
         strcmp(u->lines[u->table[i]].addr, addr) != 0)
    i = (i + 1) & mask;
  return i;
}

/* Index in `lines` of the account `addr` (canonical), or TABLE_EMPTY. */
static size_t find_line(const maild_users *u, const char *addr) {
  if (u->table_cap == 0)
    return TABLE_EMPTY;
  return u->table[table_slot(u, addr)];
}

/* Rebuilds the table and the account list from `lines`; no allocation. */
static void reindex(maild_users *u) {
  size_t i;

  u->naccounts = 0;
  for (i = 0; i < u->table_cap; i++)
    u->table[i] = TABLE_EMPTY;
  for (i = 0; i < u->nlines; i++) {
    if (u->lines[i].addr == NULL)
      continue;
    u->accounts[u->naccounts++] = i;
    u->table[table_slot(u, u->lines[i].addr)] = i;
  }
}

static int grow_array(const maild_users *u, void **arr, size_t *cap,
                      size_t need, size_t elem) {
  size_t n = *cap ? *cap : 16;
  void *p;

  while (n < need)
    n *= 2;
  if (n == *cap)
    return 0;
  p = maild__realloc(&u->mem, *arr, n * elem);
  if (p == NULL)
    return MAILD_ERR_NOMEM;
  *arr = p;
  *cap = n;
  return 0;
}

/* Makes room for one more line (and account), so that what follows cannot
   fail half-way. Keeps the table at most half full. */
static int reserve(maild_users *u, int account) {
  void *p;
  size_t cap;
  int rc;

  rc = grow_array(u, (void **)&u->lines, &u->lines_cap, u->nlines + 1,
                  sizeof(*u->lines));
  if (rc < 0 || !account)
    return rc;
  rc = grow_array(u, (void **)&u->accounts, &u->accounts_cap, u->naccounts + 1,
                  sizeof(*u->accounts));
  if (rc < 0 || (u->naccounts + 1) * 2 <= u->table_cap)
    return rc;
  cap = u->table_cap ? u->table_cap * 2 : 16;
  p = maild__malloc(&u->mem, cap * sizeof(*u->table));
  if (p == NULL)
    return MAILD_ERR_NOMEM;
  maild__free(&u->mem, u->table);
  u->table = p;
  u->table_cap = cap;
  reindex(u);
  return 0;
}

/* ---- Lines ---- */

typedef struct line_parts {
  const char *text; /* NULL: the line is formatted from the fields */
  size_t text_len;
  const char *addr; /* NUL-terminated, or NULL for a comment */
  const char *hash;
  size_t hash_len;
  const char *extra;
  size_t extra_len;
} line_parts;

static char *put(char *dst, const char *src, size_t n, const char **field) {
  *field = dst;
  if (n > 0)
    memcpy(dst, src, n);
  dst[n] = '\0';
  return dst + n + 1;
}

/* Builds a line in one allocation. */
static int line_make(const maild_users *u, const line_parts *lp,
                     users_line *out) {
  size_t addr_len = lp->addr ? strlen(lp->addr) : 0;
  size_t n = lp->text_len + addr_len + lp->hash_len + lp->extra_len + 4;
  char *p;

  memset(out, 0, sizeof(*out));
  out->block = maild__malloc(&u->mem, n);
  if (out->block == NULL)
    return MAILD_ERR_NOMEM;
  p = put(out->block, lp->text, lp->text_len, &out->text);
  if (lp->text == NULL)
    out->text = NULL;
  if (lp->addr == NULL)
    return 0;
  p = put(p, lp->addr, addr_len, &out->addr);
  p = put(p, lp->hash, lp->hash_len, &out->hash);
  put(p, lp->extra, lp->extra_len, &out->extra);
  return 0;
}

static int line_append(maild_users *u, const line_parts *lp) {
  users_line l;
  int rc;

  rc = reserve(u, lp->addr != NULL);
  if (rc == 0)
    rc = line_make(u, lp, &l);
  if (rc < 0)
    return rc;
  u->lines[u->nlines] = l;
  if (l.addr != NULL) {
    u->accounts[u->naccounts++] = u->nlines;
    u->table[table_slot(u, l.addr)] = u->nlines;
  }
  u->nlines++;
  return 0;
}

static void clear(maild_users *u) {
  size_t i;

  for (i = 0; i < u->nlines; i++)
    maild__free(&u->mem, u->lines[i].block);
  maild__free(&u->mem, u->lines);
  maild__free(&u->mem, u->accounts);
  maild__free(&u->mem, u->table);
  u->lines = NULL;
  u->accounts = u->table = NULL;
  u->nlines = u->lines_cap = u->naccounts = u->accounts_cap = 0;
  u->table_cap = 0;
}

/* The ':' that ends the address: the first one outside a quoted-string
   and outside an address literal ("[IPv6:...]"). */
static const char *find_separator(const char *s, size_t n) {
  int quoted = 0, literal = 0;
  size_t i;

  for (i = 0; i < n; i++) {
    if (quoted && s[i] == '\\')
      i++;
    else if (s[i] == '"' && !literal)
      quoted = !quoted;
    else if (!quoted && s[i] == '[')
      literal = 1;
    else if (!quoted && s[i] == ']')
      literal = 0;
    else if (!quoted && !literal && s[i] == ':')
      return s + i;
  }
  return NULL;
}

static int is_comment(const char *s, size_t n) {
  size_t i = 0;

  while (i < n && is_blank(s[i]))
    i++;
  return i == n || s[i] == '#';
}

/* One line of the file, without its line end. */
static int parse_line(maild_users *u, const char *s, size_t n) {
  char addr[MAILD_USERS_ADDRESS_SIZE];
  const char *sep, *end;
  line_parts lp;
  maild_ssize rc;

  if (n > 0 && s[n - 1] == '\r')
    n--;
  if (memchr(s, '\0', n) != NULL)
    return MAILD_ERR_NUL;
  if (memchr(s, '\r', n) != NULL)
    return MAILD_ERR_BARE_CR;
  if (n > MAILD_USERS_LINE_MAX)
    return MAILD_ERR_TOO_LONG;
  memset(&lp, 0, sizeof(lp));
  lp.text = s;
  lp.text_len = n;
  if (is_comment(s, n))
    return line_append(u, &lp);
  sep = find_separator(s, n);
  if (sep == NULL)
    return MAILD_ERR_SYNTAX;
  rc = maild_users_canonical(s, (size_t)(sep - s), addr, sizeof(addr));
  if (rc < 0)
    return (int)rc;
  lp.addr = addr;
  lp.hash = sep + 1;
  end = memchr(lp.hash, ':', n - (size_t)(lp.hash - s));
  lp.hash_len = end ? (size_t)(end - lp.hash) : n - (size_t)(lp.hash - s);
  lp.extra = lp.hash + lp.hash_len;
  lp.extra_len = n - (size_t)(lp.extra - s);
  rc = hash_check(lp.hash, lp.hash_len);
  if (rc < 0)
    return (int)rc;
  if (find_line(u, addr) != TABLE_EMPTY)
    return MAILD_ERR_DUPLICATE;
  return line_append(u, &lp);
}

/* ---- Public API ---- */

int maild_users_new(maild_users **out, const maild_options *opt,
                    const maild_mem *mem) {
  maild_mem m;
  maild_users *u;

  (void)opt;
  if (out == NULL)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  u = maild__calloc(&m, 1, sizeof(*u));
  if (u == NULL)
    return MAILD_ERR_NOMEM;
  u->mem = m;
  *out = u;
  return 0;
}

void maild_users_del(maild_users *u) {
  maild_mem m;

  if (u == NULL)
    return;
  m = u->mem;
  clear(u);
  maild__free(&m, u);
}

int maild_users_parse(maild_users *u, const char *buf, size_t len,
                      size_t *line) {
  const char *nl;
  size_t pos = 0, n = 0, end;
  int rc;

  if (line != NULL)
    *line = 0;
  if (u == NULL || (buf == NULL && len > 0))
    return MAILD_ERR_INVAL;
  if (u->nlines > 0)
    return MAILD_ERR_STATE;
  while (pos < len) {
    nl = memchr(buf + pos, '\n', len - pos);
    end = nl ? (size_t)(nl - buf) : len;
    n++;
    rc = parse_line(u, buf + pos, end - pos);
    if (rc < 0) {
      if (line != NULL && rc != MAILD_ERR_NOMEM)
        *line = n;
      clear(u);
      return rc;
    }
    pos = end + 1;
  }
  return 0;
}

/* Reads a whole regular file of at most MAILD_USERS_FILE_MAX octets. */
static int read_file(const maild_users *u, int fd, char **out, size_t *len) {
  struct stat st;
  size_t cap, n = 0;
  ssize_t r;
  char *buf, *p;

  if (fstat(fd, &st) < 0)
    return errno_to_err(errno);
  if (!S_ISREG(st.st_mode))
    return MAILD_ERR_IO;
  if ((uint64_t)st.st_size > MAILD_USERS_FILE_MAX)
    return MAILD_ERR_TOO_LONG;
  cap = (size_t)st.st_size + 1;
  buf = maild__malloc(&u->mem, cap);
  if (buf == NULL)
    return MAILD_ERR_NOMEM;
  for (;;) {
    if (n == cap) { /* the file grew while we read it */
      if (cap > MAILD_USERS_FILE_MAX) {
        maild__free(&u->mem, buf);
        return MAILD_ERR_TOO_LONG;
      }
      cap = cap * 2 > MAILD_USERS_FILE_MAX + 1 ? MAILD_USERS_FILE_MAX + 1
                                               : cap * 2;
      p = maild__realloc(&u->mem, buf, cap);
      if (p == NULL) {
        maild__free(&u->mem, buf);
        return MAILD_ERR_NOMEM;
      }
      buf = p;
    }
    r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      maild__free(&u->mem, buf);
      return MAILD_ERR_IO;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  *out = buf;
  *len = n;
  return 0;
}

int maild_users_load(maild_users *u, const char *path, size_t *line) {
  char *buf = NULL;
  size_t len = 0;
  int fd, rc;

  if (line != NULL)
    *line = 0;
  if (u == NULL || path == NULL)
    return MAILD_ERR_INVAL;
  if (u->nlines > 0)
    return MAILD_ERR_STATE;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno_to_err(errno);
  rc = read_file(u, fd, &buf, &len);
  close(fd);
  if (rc < 0)
    return rc;
  rc = maild_users_parse(u, buf, len, line);
  maild__free(&u->mem, buf);
  return rc;
}

size_t maild_users_count(const maild_users *u) {
  return u != NULL ? u->naccounts : 0;
}

const char *maild_users_address(const maild_users *u, size_t i) {
  if (u == NULL || i >= u->naccounts)
    return NULL;
  return u->lines[u->accounts[i]].addr;
}

int maild_users_lookup(const maild_users *u, const char *address, size_t len,
                       unsigned *flags) {
  char addr[MAILD_USERS_ADDRESS_SIZE];
  maild_ssize rc;
  size_t i;

  if (u == NULL)
    return MAILD_ERR_INVAL;
  rc = maild_users_canonical(address, len, addr, sizeof(addr));
  if (rc < 0)
    return (int)rc;
  i = find_line(u, addr);
  if (i == TABLE_EMPTY)
    return MAILD_ERR_NOT_FOUND;
  if (flags != NULL) {
    const char *h = u->lines[i].hash;
    *flags = hash_is_none(h, strlen(h)) ? 0 : MAILD_USERS_HAS_PASSWORD;
  }
  return 0;
}

/* The stored hash to check a login against, or NULL to refuse it. */
static const char *login_hash(const maild_users *u, const char *address,
                              size_t len) {
  char addr[MAILD_USERS_ADDRESS_SIZE];
  const char *h;
  size_t i;

  if (maild_users_canonical(address, len, addr, sizeof(addr)) < 0)
    return NULL;
  i = find_line(u, addr);
  if (i == TABLE_EMPTY)
    return NULL;
  h = u->lines[i].hash;
  return hash_is_none(h, strlen(h)) ? NULL : h;
}

int maild_users_login_hash(const maild_users *u, const char *address,
                           size_t address_len, char *out, size_t size) {
  const char *h;
  size_t n;

  if (u == NULL || out == NULL || size == 0)
    return MAILD_ERR_INVAL;
  h = login_hash(u, address, address_len);
  n = h != NULL ? strlen(h) : 0;
  if (n >= size) {
    out[0] = '\0';
    return MAILD_ERR_NOSPC;
  }
  memcpy(out, h != NULL ? h : "", n + 1);
  return 0;
}

int maild_users_verify_hash(const char *hash, const char *password,
                            size_t password_len, const maild_mem *mem) {
  const char *setting = hash, *got;
  maild_mem m;
  crypt_work *w;
  int ok = 1, match;

  if (password == NULL && password_len > 0)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  w = maild__calloc(&m, 1, sizeof(*w));
  if (w == NULL)
    return MAILD_ERR_NOMEM;
  if (setting == NULL || setting[0] == '\0') {
    ok = 0;
    setting = dummy_hash;
  }
  if (password_len > MAILD_USERS_PASSWORD_MAX ||
      (password_len > 0 && memchr(password, '\0', password_len) != NULL))
    ok = 0;
  else if (password_len > 0)
    memcpy(w->phrase, password, password_len);
  /* Always one hash computation, whatever made the login fail. */
  got = crypt_rn(w->phrase, setting, &w->data, sizeof(w->data));
  match = got != NULL && ct_equal(got, setting);
  maild__wipe(w, sizeof(*w));
  maild__free(&m, w);
  return ok && match ? 0 : MAILD_ERR_PERM;
}

int maild_users_verify(const maild_users *u, const char *address,
                       size_t address_len, const char *password,
                       size_t password_len) {
  if (u == NULL || (password == NULL && password_len > 0))
    return MAILD_ERR_INVAL;
  return maild_users_verify_hash(login_hash(u, address, address_len), password,
                                 password_len, &u->mem);
}

int maild_users_add(maild_users *u, const char *address, const char *password,
                    size_t password_len) {
  char addr[MAILD_USERS_ADDRESS_SIZE], hash[CRYPT_OUTPUT_SIZE];
  line_parts lp;
  maild_ssize rc;

  if (u == NULL || address == NULL)
    return MAILD_ERR_INVAL;
  rc = maild_users_canonical(address, strlen(address), addr, sizeof(addr));
  if (rc < 0)
    return (int)rc;
  if (find_line(u, addr) != TABLE_EMPTY)
    return MAILD_ERR_EXISTS;
  rc = hash_password(u, password, password_len, hash);
  if (rc < 0)
    return (int)rc;
  memset(&lp, 0, sizeof(lp));
  lp.addr = addr;
  lp.hash = hash;
  lp.hash_len = strlen(hash);
  lp.extra = "";
  return line_append(u, &lp);
}

int maild_users_remove(maild_users *u, const char *address) {
  char addr[MAILD_USERS_ADDRESS_SIZE];
  maild_ssize rc;
  size_t i;

  if (u == NULL || address == NULL)
    return MAILD_ERR_INVAL;
  rc = maild_users_canonical(address, strlen(address), addr, sizeof(addr));
  if (rc < 0)
    return (int)rc;
  i = find_line(u, addr);
  if (i == TABLE_EMPTY)
    return MAILD_ERR_NOT_FOUND;
  maild__free(&u->mem, u->lines[i].block);
  memmove(&u->lines[i], &u->lines[i + 1],
          (u->nlines - i - 1) * sizeof(*u->lines));
  u->nlines--;
  reindex(u);
  return 0;
}

int maild_users_set_password(maild_users *u, const char *address,
                             const char *password, size_t password_len) {
  char addr[MAILD_USERS_ADDRESS_SIZE], hash[CRYPT_OUTPUT_SIZE];
  users_line *old, l;
  line_parts lp;
  maild_ssize rc;
  size_t i;

  if (u == NULL || address == NULL)
    return MAILD_ERR_INVAL;
  rc = maild_users_canonical(address, strlen(address), addr, sizeof(addr));
  if (rc < 0)
    return (int)rc;
  i = find_line(u, addr);
  if (i == TABLE_EMPTY)
    return MAILD_ERR_NOT_FOUND;
  rc = hash_password(u, password, password_len, hash);
  if (rc < 0)
    return (int)rc;
  old = &u->lines[i];
  memset(&lp, 0, sizeof(lp));
  lp.addr = addr;
  lp.hash = hash;
  lp.hash_len = strlen(hash);
  lp.extra = old->extra;
  lp.extra_len = strlen(old->extra);
  rc = line_make(u, &lp, &l);
  maild__wipe(hash, sizeof(hash));
  if (rc < 0)
    return (int)rc;
  maild__free(&u->mem, old->block);
  *old = l;
  return 0;
}

/* Appends `s[0..n)` at `*pos` when it fits; counts it either way. */
static void emit(char *buf, size_t size, size_t *pos, const char *s, size_t n) {
  if (buf != NULL && *pos + n <= size)
    memcpy(buf + *pos, s, n);
  *pos += n;
}

/* `addr` (the address or its rest), then ":hash" and the extra fields. */
static void emit_entry(char *buf, size_t size, size_t *pos, const char *addr,
                       const users_line *l) {
  emit(buf, size, pos, addr, strlen(addr));
  emit(buf, size, pos, ":", 1);
  emit(buf, size, pos, l->hash, strlen(l->hash));
  emit(buf, size, pos, l->extra, strlen(l->extra));
}

maild_ssize maild_users_format(const maild_users *u, char *buf, size_t size) {
  const users_line *l;
  const char *at;
  size_t i, pos = 0;

  if (u == NULL)
    return MAILD_ERR_INVAL;
  for (i = 0; i < u->nlines; i++) {
    l = &u->lines[i];
    if (l->text != NULL) {
      emit(buf, size, &pos, l->text, strlen(l->text));
    } else if (l->addr[0] == '#') {
      /* "#x"@y: unquoted, the line would read as a comment. A dot-string
         holds no '"' or '\\' to escape. */
      at = maild_users_domain(l->addr);
      emit(buf, size, &pos, "\"", 1);
      emit(buf, size, &pos, l->addr, (size_t)(at - l->addr));
      emit(buf, size, &pos, "\"", 1);
      emit_entry(buf, size, &pos, at, l);
    } else {
      emit_entry(buf, size, &pos, l->addr, l);
    }
    emit(buf, size, &pos, "\n", 1);
  }
  if (buf != NULL && pos > size)
    return MAILD_ERR_NOSPC;
  return (maild_ssize)pos;
}

/* ---- Atomic save ---- */

/* Writes the decimal digits of `v` at `p`; returns the end. */
static char *put_uint(char *p, unsigned long v) {
  char tmp[24];
  size_t n = 0;

  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0)
    *p++ = tmp[--n];
  return p;
}

static int write_all(int fd, const char *buf, size_t len) {
  ssize_t r;

  while (len > 0) {
    r = write(fd, buf, len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return errno_to_err(errno);
    buf += r;
    len -= (size_t)r;
  }
  return 0;
}

/* Creates `path.tmp.PID.N` with O_EXCL for the first free N. */
static int open_tmp(const char *path, char *tmp) {
  size_t plen = strlen(path);
  unsigned long n;
  char *p;
  int fd;

  for (n = 0; n < TMP_TRIES; n++) {
    memcpy(tmp, path, plen);
    p = tmp + plen;
    memcpy(p, ".tmp.", 5);
    p = put_uint(p + 5, (unsigned long)getpid());
    *p++ = '.';
    p = put_uint(p, n);
    *p = '\0';
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0 || errno != EEXIST)
      return fd < 0 ? errno_to_err(errno) : fd;
  }
  return MAILD_ERR_IO;
}

/* Mode 0600 whatever the umask, and the owner of the file it replaces. */
static int set_owner(int fd, const char *path) {
  struct stat old, cur;

  if (fchmod(fd, 0600) < 0 || fstat(fd, &cur) < 0)
    return errno_to_err(errno);
  if (stat(path, &old) < 0)
    return errno == ENOENT ? 0 : errno_to_err(errno);
  if (old.st_uid == cur.st_uid && old.st_gid == cur.st_gid)
    return 0;
  return fchown(fd, old.st_uid, old.st_gid) < 0 ? MAILD_ERR_PERM : 0;
}

static int fsync_dir_of(const maild_users *u, const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  size_t n;
  int fd, rc = 0;

  if (slash == NULL) {
    dir = maild__strndup(&u->mem, ".", 1);
  } else {
    n = slash == path ? 1 : (size_t)(slash - path);
    dir = maild__strndup(&u->mem, path, n);
  }
  if (dir == NULL)
    return MAILD_ERR_NOMEM;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  maild__free(&u->mem, dir);
  if (fd < 0)
    return errno_to_err(errno);
  if (fsync(fd) < 0)
    rc = MAILD_ERR_IO;
  close(fd);
  return rc;
}

/* Writes, syncs and renames the tmp file; removes it on failure. */
static int commit(const maild_users *u, const char *path, char *tmp,
                  const char *buf, size_t len) {
  int fd, rc;

  fd = open_tmp(path, tmp);
  if (fd < 0)
    return fd;
  rc = set_owner(fd, path);
  if (rc == 0)
    rc = write_all(fd, buf, len);
  if (rc == 0 && fsync(fd) < 0)
    rc = MAILD_ERR_IO;
  if (close(fd) < 0 && rc == 0)
    rc = MAILD_ERR_IO;
  if (rc == 0 && rename(tmp, path) < 0)
    rc = errno_to_err(errno);
  if (rc < 0) {
    unlink(tmp);
    return rc;
  }
  return fsync_dir_of(u, path);
}

int maild_users_save(const maild_users *u, const char *path) {
  char *buf, *tmp;
  maild_ssize len;
  int rc;

  if (u == NULL || path == NULL || path[0] == '\0')
    return MAILD_ERR_INVAL;
  len = maild_users_format(u, NULL, 0);
  if (len < 0)
    return (int)len;
  buf = maild__malloc(&u->mem, (size_t)len + 1);
  tmp = maild__malloc(&u->mem, strlen(path) + 64);
  if (buf == NULL || tmp == NULL) {
    maild__free(&u->mem, buf);
    maild__free(&u->mem, tmp);
    return MAILD_ERR_NOMEM;
  }
  maild_users_format(u, buf, (size_t)len);
  rc = commit(u, path, tmp, buf, (size_t)len);
  maild__wipe(buf, (size_t)len);
  maild__free(&u->mem, buf);
  maild__free(&u->mem, tmp);
  return rc;
}
