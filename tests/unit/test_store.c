/*
 * Unit tests for the generic mailbox store: a fake third-party backend
 * (an in-memory mailbox table) plugged in through maild_store_backend,
 * showing the vtable is usable on its own, plus the checks and error
 * normalisation the library does for every backend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maild/error.h"
#include "maild/store.h"
#include "testmem.h"

/* ---- The fake backend ------------------------------------------------- */

#define FAKE_MAX 8

typedef struct fake_mail {
  char domain[MAILD_STORE_NAME_MAX + 1];
  char local[MAILD_STORE_NAME_MAX + 1];
  char body[256];
  size_t len;
} fake_mail;

typedef struct fake_db {
  fake_mail mail[FAKE_MAX];
  size_t count;
  int calls;
  int destroyed;
  int synced;
  int withdrawn;
  int force_rc; /* returned as is when nonzero */
} fake_db;

/* Knows only "alice" and "bob" (case-sensitive, as a database might be);
   "full" is over quota. */
static int fake_deliver(maild_store *st, const maild_store_message *msg,
                        const char *domain, const char *local,
                        maild_store_result *res, void *backend_data) {
  fake_db *db = backend_data;
  fake_mail *m;
  ssize_t n;

  assert_string_equal(maild_store_name(st), "fake");
  db->calls++;
  if (db->force_rc != 0)
    return db->force_rc;
  if (strcmp(local, "full") == 0) {
    res->quota = 10;
    res->used = 10;
    return MAILD_ERR_LIMIT;
  }
  if (strcmp(local, "alice") != 0 && strcmp(local, "bob") != 0)
    return MAILD_ERR_NOT_FOUND;
  if (db->count == FAKE_MAX || msg->size >= sizeof(m->body))
    return MAILD_ERR_IO;
  m = &db->mail[db->count];
  n = pread(msg->fd, m->body, (size_t)msg->size, 0);
  if (n < 0 || (uint64_t)n != msg->size) {
    res->sys_errno = 5;
    return MAILD_ERR_IO;
  }
  m->len = (size_t)n;
  strcpy(m->domain, domain);
  strcpy(m->local, local);
  /* A row id for logs. */
  res->id[0] = (char)('0' + db->count);
  res->id[1] = '\0';
  db->count++;
  return 0;
}

static void fake_destroy(maild_store *st, void *backend_data) {
  fake_db *db = backend_data;
  (void)st;
  db->destroyed++;
}

static int fake_sync(maild_store *st, void *data) {
  fake_db *db = data;
  (void)st;
  db->synced++;
  return db->force_rc == MAILD_ERR_IO ? 42 : 0; /* 42: not a valid code */
}

static int fake_withdraw(maild_store *st, const char *domain, const char *local,
                         const char *id, void *data) {
  fake_db *db = data;
  (void)st, (void)domain, (void)local;
  db->withdrawn++;
  return strcmp(id, "gone") == 0 ? MAILD_ERR_NOT_FOUND : 77;
}

static const maild_store_backend fake_backend = {
    .struct_size = sizeof(maild_store_backend),
    .name = "fake",
    .deliver = fake_deliver,
    .destroy = fake_destroy,
    .sync = fake_sync,
    .withdraw = fake_withdraw,
};

/* A message in an unlinked temporary file, read from offset 0. */
static int message_fd(const char *text) {
  char path[] = "/tmp/maild_store_msgXXXXXX";
  int fd = mkstemp(path);
  size_t len = strlen(text);
  assert_true(fd >= 0);
  unlink(path);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  return fd; /* offset left at the end on purpose: stores use pread */
}

static const char mail_text[] =
    "Return-Path: <s@example.net>\r\nReceived: from x\r\n\r\nHi.\r\n";

/* ---- Tests ------------------------------------------------------------ */

static void test_fake_backend_delivers(void **state) {
  maild_store_message msg = {0};
  maild_store_result res;
  maild_store *st;
  fake_db db = {0};
  testmem tm;
  (void)state;

  testmem_init(&tm, 0);
  assert_int_equal(maild_store_new(&st, &fake_backend, &db, NULL, &tm.mem), 0);
  msg.fd = message_fd(mail_text);
  msg.size = strlen(mail_text);
  msg.link_dirfd = -1;
  assert_int_equal(
      maild_store_deliver(st, &msg, "Example.ORG", 11, "alice", 5, &res), 0);
  assert_string_equal(res.id, "0");
  assert_int_equal(db.count, 1);
  /* The domain reaches the backend lower-cased, the local part as is. */
  assert_string_equal(db.mail[0].domain, "example.org");
  assert_string_equal(db.mail[0].local, "alice");
  assert_int_equal(db.mail[0].len, strlen(mail_text));
  assert_memory_equal(db.mail[0].body, mail_text, strlen(mail_text));
  /* Counted strings: only `len` octets count. */
  assert_int_equal(
      maild_store_deliver(st, &msg, "example.orgXX", 11, "bobby", 3, NULL), 0);
  assert_string_equal(db.mail[1].local, "bob");
  assert_string_equal(db.mail[1].domain, "example.org");
  /* Backend answers pass through, with `res` filled. */
  assert_int_equal(
      maild_store_deliver(st, &msg, "example.org", 11, "Alice", 5, &res),
      MAILD_ERR_NOT_FOUND);
  assert_int_equal(
      maild_store_deliver(st, &msg, "example.org", 11, "full", 4, &res),
      MAILD_ERR_LIMIT);
  assert_int_equal(res.quota, 10);
  assert_int_equal(res.used, 10);
  maild_store_del(st);
  assert_int_equal(db.destroyed, 1);
  assert_int_equal(tm.live, 0);
  close(msg.fd);
}

static void test_library_checks_before_backend(void **state) {
  static const struct {
    const char *s;
    size_t len;
  } bad_local[] = {
      {"", 0},         {"x\0y", 3}, {"a\rb", 3},
      {"a\nb", 3},     {"\x1f", 1}, {"a\x7f", 2},
      {"\xc3\x28", 2}, {"\xff", 1}, {"\xed\xa0\x80", 3},
  };
  char longname[MAILD_STORE_NAME_MAX + 2];
  maild_store_message msg = {0};
  maild_store_result res;
  maild_store *st;
  fake_db db = {0};
  size_t i;
  (void)state;

  assert_int_equal(maild_store_new(&st, &fake_backend, &db, NULL, NULL), 0);
  msg.fd = message_fd(mail_text);
  msg.size = strlen(mail_text);
  for (i = 0; i < sizeof(bad_local) / sizeof(bad_local[0]); i++) {
    assert_int_equal(maild_store_deliver(st, &msg, "example.org", 11,
                                         bad_local[i].s, bad_local[i].len,
                                         &res),
                     MAILD_ERR_INVAL);
    assert_int_equal(maild_store_deliver(st, &msg, bad_local[i].s,
                                         bad_local[i].len, "alice", 5, &res),
                     MAILD_ERR_INVAL);
  }
  /* Length: at the limit reaches the backend, one past does not. */
  memset(longname, 'a', sizeof(longname));
  assert_int_equal(maild_store_deliver(st, &msg, "example.org", 11, longname,
                                       MAILD_STORE_NAME_MAX, &res),
                   MAILD_ERR_NOT_FOUND);
  assert_int_equal(db.calls, 1);
  assert_int_equal(maild_store_deliver(st, &msg, "example.org", 11, longname,
                                       MAILD_STORE_NAME_MAX + 1, &res),
                   MAILD_ERR_INVAL);
  /* UTF-8 is fine. */
  assert_int_equal(
      maild_store_deliver(st, &msg, "example.org", 11, "j\xc3\xb6rg", 5, &res),
      MAILD_ERR_NOT_FOUND);
  assert_int_equal(db.calls, 2);
  assert_int_equal(
      maild_store_deliver(st, &msg, "example.org", 11, NULL, 5, &res),
      MAILD_ERR_INVAL);
  assert_int_equal(
      maild_store_deliver(st, NULL, "example.org", 11, "alice", 5, &res),
      MAILD_ERR_INVAL);
  assert_int_equal(
      maild_store_deliver(NULL, &msg, "example.org", 11, "alice", 5, &res),
      MAILD_ERR_INVAL);
  msg.fd = -1;
  assert_int_equal(
      maild_store_deliver(st, &msg, "example.org", 11, "alice", 5, &res),
      MAILD_ERR_INVAL);
  assert_int_equal(db.calls, 2);
  maild_store_del(st);
}

static void test_backend_codes_normalised(void **state) {
  maild_store_message msg = {0};
  maild_store_result res;
  maild_store *st;
  fake_db db = {0};
  (void)state;

  assert_int_equal(maild_store_new(&st, &fake_backend, &db, NULL, NULL), 0);
  msg.fd = 0;
  db.force_rc = MAILD_ERR_SYNTAX;
  assert_int_equal(
      maild_store_deliver(st, &msg, "example.org", 11, "alice", 5, &res),
      MAILD_ERR_IO);
  assert_int_equal(res.backend_err, MAILD_ERR_SYNTAX);
  db.force_rc = 7; /* a positive value is a backend bug, not success */
  assert_int_equal(
      maild_store_deliver(st, &msg, "example.org", 11, "alice", 5, &res),
      MAILD_ERR_IO);
  assert_int_equal(res.backend_err, 7);
  db.force_rc = MAILD_ERR_TIMEOUT;
  assert_int_equal(
      maild_store_deliver(st, &msg, "example.org", 11, "alice", 5, &res),
      MAILD_ERR_TIMEOUT);
  assert_int_equal(res.backend_err, 0);
  maild_store_del(st);
}

/* A backend built against an older, shorter vtable (no destroy), and the
   struct_size rules. */
typedef struct old_backend {
  size_t struct_size;
  const char *name;
  int (*deliver)(maild_store *, const maild_store_message *, const char *,
                 const char *, maild_store_result *, void *);
} old_backend;

static void test_struct_size(void **state) {
  old_backend old = {sizeof(old_backend), "fake", fake_deliver};
  maild_store_backend be = fake_backend;
  maild_store_message msg = {0};
  maild_store *st;
  fake_db db = {0};
  testmem tm;
  (void)state;

  testmem_init(&tm, 0);
  assert_int_equal(maild_store_new(&st, (const maild_store_backend *)&old, &db,
                                   NULL, &tm.mem),
                   0);
  msg.fd = message_fd("x");
  msg.size = 1;
  assert_int_equal(maild_store_deliver(st, &msg, "a.b", 3, "bob", 3, NULL), 0);
  /* No sync slot: deliveries are always durable, sync is a no-op. */
  assert_int_equal(maild_store_sync(st), 0);
  assert_int_equal(db.synced, 0);
  maild_store_del(st); /* no destroy slot: not called, nothing read past */
  assert_int_equal(db.destroyed, 0);
  assert_int_equal(tm.live, 0);

  be.struct_size = offsetof(maild_store_backend, deliver);
  assert_int_equal(maild_store_new(&st, &be, &db, NULL, NULL), MAILD_ERR_INVAL);
  assert_null(st);
  be = fake_backend;
  be.deliver = NULL;
  assert_int_equal(maild_store_new(&st, &be, &db, NULL, NULL), MAILD_ERR_INVAL);
  be = fake_backend;
  be.name = NULL;
  assert_int_equal(maild_store_new(&st, &be, &db, NULL, NULL), MAILD_ERR_INVAL);
  assert_int_equal(maild_store_new(&st, NULL, &db, NULL, NULL),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_store_new(NULL, &fake_backend, &db, NULL, NULL),
                   MAILD_ERR_INVAL);
  assert_int_equal(db.destroyed, 0);
  maild_store_del(NULL);
  close(msg.fd);
}

/* If maild_store_new fails, destroy is never called. */
static void test_new_nomem(void **state) {
  maild_store *st;
  fake_db db = {0};
  testmem tm;
  (void)state;

  testmem_init(&tm, 1);
  assert_int_equal(maild_store_new(&st, &fake_backend, &db, NULL, &tm.mem),
                   MAILD_ERR_NOMEM);
  assert_null(st);
  assert_int_equal(db.destroyed, 0);
  assert_int_equal(tm.live, 0);
}

/* maild_store_sync() calls the backend's barrier and keeps its errors to
   the documented set. */
static void test_sync_reaches_backend(void **state) {
  fake_db db;
  maild_store *st;

  (void)state;
  memset(&db, 0, sizeof(db));
  assert_int_equal(maild_store_new(&st, &fake_backend, &db, NULL, NULL), 0);
  assert_int_equal(maild_store_sync(st), 0);
  assert_int_equal(db.synced, 1);
  db.force_rc = MAILD_ERR_IO;
  assert_int_equal(maild_store_sync(st), MAILD_ERR_IO);
  assert_int_equal(db.synced, 2);
  assert_int_equal(maild_store_sync(NULL), MAILD_ERR_INVAL);
  /* Withdraw: names checked first, codes kept to the documented set. */
  assert_int_equal(maild_store_withdraw(st, "a.b", 3, "bob", 3, "gone"),
                   MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild_store_withdraw(st, "a.b", 3, "bob", 3, "x"),
                   MAILD_ERR_IO);
  assert_int_equal(maild_store_withdraw(st, "a.b", 3, "b\nb", 3, "x"),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_store_withdraw(st, "a.b", 3, "bob", 3, ""),
                   MAILD_ERR_INVAL);
  assert_int_equal(db.withdrawn, 2);
  maild_store_del(st);
}

/* ---- The read side through the wrapper -------------------------------- */

typedef struct fake_box {
  fake_db *db;
  int closed;
  int bad_uidl;
  int read_rc;
  int expunge_rc;
  size_t got[FAKE_MAX];
  size_t ngot;
} fake_box;

static fake_box the_box;

static int fake_box_open(maild_store *st, const char *domain, const char *local,
                         void **box, void *backend_data) {
  (void)st;
  assert_string_equal(domain, "a.b"); /* lower-cased by the library */
  if (strcmp(local, "busy") == 0)
    return MAILD_ERR_EXISTS;
  if (strcmp(local, "weird") == 0)
    return 55;
  if (strcmp(local, "bob") != 0)
    return MAILD_ERR_NOT_FOUND;
  the_box.db = backend_data;
  *box = &the_box;
  return 0;
}

static void fake_box_close(maild_store *st, void *box, void *backend_data) {
  (void)st, (void)backend_data;
  ((fake_box *)box)->closed++;
}

static size_t fake_box_count(maild_store *st, void *box, void *backend_data) {
  (void)st, (void)backend_data;
  return ((fake_box *)box)->db->count;
}

static int fake_box_info(maild_store *st, void *box, size_t i, uint64_t *size,
                         const char **uidl, void *backend_data) {
  fake_box *b = box;
  (void)st, (void)backend_data;
  *size = b->db->mail[i].len;
  *uidl = b->bad_uidl ? "has space" : b->db->mail[i].local;
  return 0;
}

static maild_ssize fake_box_read(maild_store *st, void *box, size_t i,
                                 uint64_t offset, uint8_t *buf, size_t cap,
                                 void *backend_data) {
  fake_box *b = box;
  const fake_mail *m = &b->db->mail[i];
  size_t n;
  (void)st, (void)backend_data;
  if (b->read_rc != 0)
    return b->read_rc;
  if (offset >= m->len)
    return 0;
  n = m->len - (size_t)offset < cap ? m->len - (size_t)offset : cap;
  memcpy(buf, m->body + offset, n);
  return (maild_ssize)n;
}

static int fake_box_expunge(maild_store *st, void *box, const size_t *indexes,
                            size_t n, void *backend_data) {
  fake_box *b = box;
  (void)st, (void)backend_data;
  memcpy(b->got, indexes, n * sizeof(*indexes));
  b->ngot = n;
  return b->expunge_rc;
}

static void test_read_side_wrapper(void **state) {
  maild_store_backend be = fake_backend;
  maild_store_message msg = {0};
  maild_mailbox *mb = NULL;
  maild_store *st;
  fake_db db;
  testmem tm;
  uint64_t size;
  const char *uidl;
  uint8_t buf[8];
  size_t idx[4] = {1, 0, 1, 0};
  (void)state;

  memset(&db, 0, sizeof(db));
  memset(&the_box, 0, sizeof(the_box));
  testmem_init(&tm, 0);
  /* Without the read side: UNSUPPORTED. */
  assert_int_equal(maild_store_new(&st, &be, &db, NULL, &tm.mem), 0);
  assert_int_equal(maild_store_open(st, "a.b", 3, "bob", 3, &mb),
                   MAILD_ERR_UNSUPPORTED);
  assert_null(mb);
  maild_store_del(st);
  db.destroyed = 0;

  be.box_open = fake_box_open;
  be.box_close = fake_box_close;
  be.box_count = fake_box_count;
  be.box_info = fake_box_info;
  be.box_read = fake_box_read;
  be.box_expunge = fake_box_expunge;
  assert_int_equal(maild_store_new(&st, &be, &db, NULL, &tm.mem), 0);
  msg.fd = message_fd("hello");
  msg.size = 5;
  assert_int_equal(maild_store_deliver(st, &msg, "a.b", 3, "bob", 3, NULL), 0);
  assert_int_equal(maild_store_deliver(st, &msg, "a.b", 3, "alice", 5, NULL),
                   0);
  close(msg.fd);

  assert_int_equal(maild_store_open(st, "A.B", 3, "busy", 4, &mb),
                   MAILD_ERR_EXISTS);
  assert_int_equal(maild_store_open(st, "a.b", 3, "weird", 5, &mb),
                   MAILD_ERR_IO);
  assert_int_equal(maild_store_open(st, "a.b", 3, "nobody", 6, &mb),
                   MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild_store_open(st, "a.b", 3, "b\rb", 3, &mb),
                   MAILD_ERR_INVAL);
  assert_null(mb);
  assert_int_equal(tm.live, 1); /* the store only */

  assert_int_equal(maild_store_open(st, "A.B", 3, "bob", 3, &mb), 0);
  assert_int_equal(maild_mailbox_count(mb), 2);
  assert_int_equal(maild_mailbox_info(mb, 1, &size, &uidl), 0);
  assert_int_equal(size, 5);
  assert_string_equal(uidl, "alice");
  assert_int_equal(maild_mailbox_info(mb, 2, &size, &uidl), MAILD_ERR_INVAL);
  the_box.bad_uidl = 1; /* not a valid UIDL: refused */
  assert_int_equal(maild_mailbox_info(mb, 0, &size, &uidl), MAILD_ERR_IO);
  the_box.bad_uidl = 0;
  assert_int_equal(maild_mailbox_read(mb, 0, 1, buf, 3), 3);
  assert_memory_equal(buf, "ell", 3);
  assert_int_equal(maild_mailbox_read(mb, 0, 5, buf, 3), 0);
  the_box.read_rc = MAILD_ERR_NOT_FOUND;
  assert_int_equal(maild_mailbox_read(mb, 0, 0, buf, 3), MAILD_ERR_NOT_FOUND);
  the_box.read_rc = 77; /* outside the set */
  assert_int_equal(maild_mailbox_read(mb, 0, 0, buf, 3), MAILD_ERR_IO);
  /* Deletion: sorted, duplicates dropped; codes normalised. */
  assert_int_equal(maild_mailbox_delete(mb, idx, 4), 0);
  assert_int_equal(the_box.ngot, 2);
  assert_int_equal(the_box.got[0], 0);
  assert_int_equal(the_box.got[1], 1);
  the_box.expunge_rc = 99;
  assert_int_equal(maild_mailbox_delete(mb, idx, 1), MAILD_ERR_IO);
  idx[0] = 2;
  assert_int_equal(maild_mailbox_delete(mb, idx, 1), MAILD_ERR_INVAL);
  maild_mailbox_close(mb);
  assert_int_equal(the_box.closed, 1);
  maild_store_del(st);
  assert_int_equal(tm.live, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fake_backend_delivers),
      cmocka_unit_test(test_sync_reaches_backend),
      cmocka_unit_test(test_library_checks_before_backend),
      cmocka_unit_test(test_backend_codes_normalised),
      cmocka_unit_test(test_struct_size),
      cmocka_unit_test(test_new_nomem),
      cmocka_unit_test(test_read_side_wrapper),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
