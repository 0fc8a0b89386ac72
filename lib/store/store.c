/*
 * The generic half of the mailbox store: a maild_store wraps a backend
 * vtable and its data, checks what every backend would otherwise have to
 * check (address octets, lengths, UTF-8), lower-cases the domain, and
 * holds backends to the documented set of error codes, so the runtime can
 * tell temporary from permanent failures whatever backend it drives. The
 * vtable is copied up to its struct_size, which lets a backend compiled
 * against an older header work with a newer library and the reverse.
 */
#include "maild/store.h"

#include <stdint.h>
#include <stdlib.h> /* qsort */
#include <string.h>

#include "core/mem.h"
#include "maild/address.h"
#include "maild/error.h"

struct maild_store {
  maild_mem mem;
  maild_store_backend backend; /* zero past the backend's struct_size */
  void *backend_data;
};

/* Bytes of the vtable a backend must provide: everything up to `deliver`. */
#define STORE_BACKEND_MIN                   \
  (offsetof(maild_store_backend, deliver) + \
   sizeof(((maild_store_backend *)0)->deliver))

int maild_store_new(maild_store **out, const maild_store_backend *backend,
                    void *backend_data, const maild_options *opt,
                    const maild_mem *mem) {
  maild_store *st;
  maild_mem m;
  size_t n;

  (void)opt;
  if (out == NULL)
    return MAILD_ERR_INVAL;
  *out = NULL;
  if (backend == NULL || backend->struct_size < STORE_BACKEND_MIN ||
      backend->deliver == NULL || backend->name == NULL)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  st = maild__calloc(&m, 1, sizeof(*st));
  if (st == NULL)
    return MAILD_ERR_NOMEM;
  st->mem = m;
  n = backend->struct_size < sizeof(st->backend) ? backend->struct_size
                                                 : sizeof(st->backend);
  memcpy(&st->backend, backend, n);
  st->backend.struct_size = sizeof(st->backend);
  st->backend_data = backend_data;
  *out = st;
  return 0;
}

void maild_store_del(maild_store *st) {
  if (st == NULL)
    return;
  if (st->backend.destroy != NULL)
    st->backend.destroy(st, st->backend_data);
  maild__free(&st->mem, st);
}

const char *maild_store_name(const maild_store *st) {
  return st->backend.name;
}

int maild_store_sync(maild_store *st) {
  int rc;

  if (st == NULL)
    return MAILD_ERR_INVAL;
  if (st->backend.sync == NULL)
    return 0;
  rc = st->backend.sync(st, st->backend_data);
  return rc == 0 || rc == MAILD_ERR_TIMEOUT ? rc : MAILD_ERR_IO;
}

/*
 * Checks one address part and copies it NUL-terminated into `dst` (which
 * holds MAILD_STORE_NAME_MAX + 1 octets), ASCII lower-cased if `fold`.
 */
static int store_copy_name(char *dst, const char *src, size_t len, int fold) {
  size_t i;

  if (src == NULL || len == 0 || len > MAILD_STORE_NAME_MAX)
    return MAILD_ERR_INVAL;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)src[i];
    if (c < 0x20 || c == 0x7f)
      return MAILD_ERR_INVAL;
    if (fold && c >= 'A' && c <= 'Z')
      c = (unsigned char)(c - 'A' + 'a');
    dst[i] = (char)c;
  }
  dst[len] = '\0';
  if (maild_utf8_check(dst, len) != 0)
    return MAILD_ERR_INVAL;
  return 0;
}

/* Holds a backend's answer to the documented codes (store.h). */
static int store_check_result(int rc, maild_store_result *res) {
  switch (rc) {
  case 0:
  case MAILD_ERR_IO:
  case MAILD_ERR_NOMEM:
  case MAILD_ERR_TIMEOUT:
  case MAILD_ERR_LIMIT:
  case MAILD_ERR_NOT_FOUND:
  case MAILD_ERR_INVAL:
    return rc;
  default:
    res->backend_err = rc;
    return MAILD_ERR_IO;
  }
}

int maild_store_deliver(maild_store *st, const maild_store_message *msg,
                        const char *domain, size_t domain_len,
                        const char *local, size_t local_len,
                        maild_store_result *res) {
  char dom[MAILD_STORE_NAME_MAX + 1];
  char loc[MAILD_STORE_NAME_MAX + 1];
  maild_store_result scratch;
  int rc;

  if (res == NULL)
    res = &scratch;
  memset(res, 0, sizeof(*res));
  if (st == NULL || msg == NULL || msg->fd < 0)
    return MAILD_ERR_INVAL;
  rc = store_copy_name(dom, domain, domain_len, 1);
  if (rc == 0)
    rc = store_copy_name(loc, local, local_len, 0);
  if (rc != 0)
    return rc;
  rc = st->backend.deliver(st, msg, dom, loc, res, st->backend_data);
  res->id[MAILD_STORE_ID_MAX - 1] = '\0';
  return store_check_result(rc, res);
}

int maild_store_withdraw(maild_store *st, const char *domain, size_t domain_len,
                         const char *local, size_t local_len, const char *id) {
  char dom[MAILD_STORE_NAME_MAX + 1];
  char loc[MAILD_STORE_NAME_MAX + 1];
  int rc;

  if (st == NULL || id == NULL || id[0] == '\0')
    return MAILD_ERR_INVAL;
  if (st->backend.withdraw == NULL)
    return MAILD_ERR_UNSUPPORTED;
  rc = store_copy_name(dom, domain, domain_len, 1);
  if (rc == 0)
    rc = store_copy_name(loc, local, local_len, 0);
  if (rc != 0)
    return rc;
  rc = st->backend.withdraw(st, dom, loc, id, st->backend_data);
  return rc == 0 || rc == MAILD_ERR_NOT_FOUND || rc == MAILD_ERR_INVAL
             ? rc
             : MAILD_ERR_IO;
}

/* ---- Reading a mailbox ------------------------------------------------ */

struct maild_mailbox {
  maild_store *st;
  void *box;
  size_t count;
};

static int store_has_read_side(const maild_store *st) {
  const maild_store_backend *b = &st->backend;
  return b->box_open != NULL && b->box_close != NULL && b->box_count != NULL &&
         b->box_info != NULL && b->box_read != NULL && b->box_expunge != NULL;
}

int maild_store_open(maild_store *st, const char *domain, size_t domain_len,
                     const char *local, size_t local_len, maild_mailbox **out) {
  char dom[MAILD_STORE_NAME_MAX + 1];
  char loc[MAILD_STORE_NAME_MAX + 1];
  maild_mailbox *mb;
  void *box = NULL;
  int rc;

  if (out == NULL)
    return MAILD_ERR_INVAL;
  *out = NULL;
  if (st == NULL)
    return MAILD_ERR_INVAL;
  if (!store_has_read_side(st))
    return MAILD_ERR_UNSUPPORTED;
  rc = store_copy_name(dom, domain, domain_len, 1);
  if (rc == 0)
    rc = store_copy_name(loc, local, local_len, 0);
  if (rc != 0)
    return rc;
  mb = maild__calloc(&st->mem, 1, sizeof(*mb));
  if (mb == NULL)
    return MAILD_ERR_NOMEM;
  rc = st->backend.box_open(st, dom, loc, &box, st->backend_data);
  if (rc == 0 && box == NULL)
    rc = MAILD_ERR_IO;
  if (rc != 0) {
    maild__free(&st->mem, mb);
    switch (rc) {
    case MAILD_ERR_EXISTS:
    case MAILD_ERR_NOT_FOUND:
    case MAILD_ERR_INVAL:
    case MAILD_ERR_NOMEM:
    case MAILD_ERR_IO:
    case MAILD_ERR_TIMEOUT:
      return rc;
    default:
      return MAILD_ERR_IO;
    }
  }
  mb->st = st;
  mb->box = box;
  mb->count = st->backend.box_count(st, box, st->backend_data);
  *out = mb;
  return 0;
}

size_t maild_mailbox_count(const maild_mailbox *mb) {
  return mb == NULL ? 0 : mb->count;
}

/* A UIDL as RFC 1939 7 allows: 1..70 octets 0x21..0x7e. */
static int store_uidl_ok(const char *u) {
  size_t n;

  if (u == NULL)
    return 0;
  for (n = 0; u[n] != '\0'; n++) {
    if (n >= 70 || (unsigned char)u[n] < 0x21 || (unsigned char)u[n] > 0x7e)
      return 0;
  }
  return n > 0;
}

int maild_mailbox_info(const maild_mailbox *mb, size_t i, uint64_t *size,
                       const char **uidl) {
  maild_store *st;
  uint64_t sz = 0;
  const char *u = NULL;
  int rc;

  if (mb == NULL || i >= mb->count)
    return MAILD_ERR_INVAL;
  st = mb->st;
  rc = st->backend.box_info(st, mb->box, i, &sz, &u, st->backend_data);
  if (rc == 0 && !store_uidl_ok(u))
    rc = MAILD_ERR_IO;
  if (rc != 0)
    return MAILD_ERR_IO;
  if (size != NULL)
    *size = sz;
  if (uidl != NULL)
    *uidl = u;
  return 0;
}

maild_ssize maild_mailbox_read(maild_mailbox *mb, size_t i, uint64_t offset,
                               uint8_t *buf, size_t cap) {
  maild_store *st;
  maild_ssize n;

  if (mb == NULL || i >= mb->count || (buf == NULL && cap > 0))
    return MAILD_ERR_INVAL;
  if (cap == 0)
    return 0;
  if (cap > (size_t)PTRDIFF_MAX)
    cap = (size_t)PTRDIFF_MAX;
  st = mb->st;
  n = st->backend.box_read(st, mb->box, i, offset, buf, cap, st->backend_data);
  if (n >= 0)
    return (size_t)n <= cap ? n : MAILD_ERR_IO;
  switch (n) {
  case MAILD_ERR_NOT_FOUND:
  case MAILD_ERR_IO:
  case MAILD_ERR_NOMEM:
  case MAILD_ERR_TIMEOUT:
    return n;
  default:
    return MAILD_ERR_IO;
  }
}

static int store_cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

int maild_mailbox_delete(maild_mailbox *mb, const size_t *indexes, size_t n) {
  maild_store *st;
  size_t *sorted, i, m = 0;
  int rc;

  if (mb == NULL || (indexes == NULL && n > 0))
    return MAILD_ERR_INVAL;
  for (i = 0; i < n; i++) {
    if (indexes[i] >= mb->count)
      return MAILD_ERR_INVAL;
  }
  if (n == 0)
    return 0;
  st = mb->st;
  sorted = maild__malloc(&st->mem, n * sizeof(*sorted));
  if (sorted == NULL)
    return MAILD_ERR_NOMEM;
  memcpy(sorted, indexes, n * sizeof(*sorted));
  qsort(sorted, n, sizeof(*sorted), store_cmp_size);
  for (i = 0; i < n; i++) {
    if (m == 0 || sorted[m - 1] != sorted[i])
      sorted[m++] = sorted[i];
  }
  rc = st->backend.box_expunge(st, mb->box, sorted, m, st->backend_data);
  maild__free(&st->mem, sorted);
  return rc == 0 || rc == MAILD_ERR_TIMEOUT ? rc : MAILD_ERR_IO;
}

void maild_mailbox_close(maild_mailbox *mb) {
  maild_store *st;

  if (mb == NULL)
    return;
  st = mb->st;
  st->backend.box_close(st, mb->box, st->backend_data);
  maild__free(&st->mem, mb);
}
