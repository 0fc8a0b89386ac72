/*
 * Unit tests for the read side of the Maildir backend and the generic
 * mailbox wrapper (TESTPLAN P1, P2, P4 at store level): listing with exact
 * CRLF sizes, reading at every offset and chunk size, stable unique UIDLs
 * across sessions and restarts, the exclusive lock, durable deletion, the
 * move from new/ to cur/ at close, unsafe names, and an allocation-failure
 * sweep. Every test works in its own mkdtemp directory under /tmp and removes
 * it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "maild/error.h"
#include "maild/store.h"
#include "testmem.h"

#include "maildir_fixture.h"

static int fx_setup(void **state) {
  return fx_setup_in(state, "/tmp/maild_mdread_XXXXXX");
}

static size_t count_dir(const fx *f, const char *rel) {
  int fd = openat(f->base_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  struct dirent *e;
  size_t n = 0;
  DIR *d;

  if (fd < 0)
    return 0;
  d = fdopendir(fd);
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      n++;
  }
  closedir(d);
  return n;
}

/* The one entry of directory `rel` (which must hold exactly one). */
static void only_entry(const fx *f, const char *rel, char *out, size_t cap) {
  int fd = openat(f->base_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  struct dirent *e;
  size_t n = 0;
  DIR *d;

  assert_true(fd >= 0);
  d = fdopendir(fd);
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    assert_true(strlen(e->d_name) < cap);
    strcpy(out, e->d_name);
    n++;
  }
  closedir(d);
  assert_int_equal(n, 1);
}

/* Delivers `text` (copied, no link) to local@example.org. */
static void deliver_text(fx *f, const char *local, const char *text) {
  maild_store_message m;
  maild_store_result res;
  char path[] = "/tmp/maild_mdread_msgXXXXXX";
  int fd = mkstemp(path);
  size_t len = strlen(text);

  assert_true(fd >= 0);
  unlink(path);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  memset(&m, 0, sizeof(m));
  m.fd = fd;
  m.size = len;
  m.link_dirfd = AT_FDCWD;
  assert_int_equal(maild_store_deliver(f->st, &m, "example.org", 11, local,
                                       strlen(local), &res),
                   0);
  close(fd);
}

static maild_mailbox *box_open(fx *f, const char *local) {
  maild_mailbox *mb = NULL;
  assert_int_equal(
      maild_store_open(f->st, "example.org", 11, local, strlen(local), &mb), 0);
  assert_non_null(mb);
  return mb;
}

/* Reads message `i` whole, in pieces of `chunk` octets. */
static size_t read_all(maild_mailbox *mb, size_t i, size_t chunk, char *out,
                       size_t cap) {
  size_t len = 0;
  for (;;) {
    maild_ssize n;
    size_t want = cap - len < chunk ? cap - len : chunk;
    assert_true(want > 0);
    n = maild_mailbox_read(mb, i, len, (uint8_t *)out + len, want);
    assert_true(n >= 0);
    if (n == 0)
      return len;
    len += (size_t)n;
  }
}

static void assert_uidl_valid(const char *u) {
  size_t n = strlen(u), i;
  assert_true(n >= 1 && n <= 70);
  for (i = 0; i < n; i++)
    assert_true((unsigned char)u[i] >= 0x21 && (unsigned char)u[i] <= 0x7e);
}

/* ---- Listing and reading ---------------------------------------------- */

static const char *const texts[] = {
    "Subject: one\r\n\r\nfirst\r\n",
    "Subject: two\r\n\r\nsecond message, a bit longer\r\n.dot\r\n",
    "Subject: three\r\n\r\n",
};

static void test_list_and_read(void **state) {
  fx *f = *state;
  maild_mailbox *mb;
  char buf[256], name[300];
  const char *u[3];
  uint64_t size;
  size_t i, j, chunk;

  fx_open(f);
  for (i = 0; i < 3; i++) {
    f->now = NOW_USEC + i * 1000; /* delivery order = time order */
    deliver_text(f, "alice", texts[i]);
  }
  assert_int_equal(count_dir(f, "root/example.org/alice/new"), 3);
  mb = box_open(f, "alice");
  /* Opening moves nothing: the session reads them from new/. */
  assert_int_equal(count_dir(f, "root/example.org/alice/new"), 3);
  assert_int_equal(count_dir(f, "root/example.org/alice/cur"), 0);
  assert_int_equal(maild_mailbox_count(mb), 3);
  for (i = 0; i < 3; i++) {
    assert_int_equal(maild_mailbox_info(mb, i, &size, &u[i]), 0);
    assert_int_equal(size, strlen(texts[i]));
    assert_uidl_valid(u[i]);
    for (j = 0; j < i; j++)
      assert_string_not_equal(u[i], u[j]);
    for (chunk = 1; chunk <= 64; chunk++) {
      memset(buf, 0, sizeof(buf));
      assert_int_equal(read_all(mb, i, chunk, buf, sizeof(buf)),
                       strlen(texts[i]));
      assert_memory_equal(buf, texts[i], strlen(texts[i]));
    }
    /* Past the end, and cap 0. */
    assert_int_equal(maild_mailbox_read(mb, i, 10000, (uint8_t *)buf, 10), 0);
    assert_int_equal(maild_mailbox_read(mb, i, 0, (uint8_t *)buf, 0), 0);
  }
  /* Out of range and NULL. */
  assert_int_equal(maild_mailbox_info(mb, 3, &size, &u[0]), MAILD_ERR_INVAL);
  assert_int_equal(maild_mailbox_read(mb, 3, 0, (uint8_t *)buf, 1),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_mailbox_read(mb, 0, 0, NULL, 1), MAILD_ERR_INVAL);
  assert_int_equal(maild_mailbox_info(NULL, 0, &size, &u[0]), MAILD_ERR_INVAL);
  assert_int_equal(maild_mailbox_count(NULL), 0);
  maild_mailbox_close(mb);
  maild_mailbox_close(NULL);
  /* Closing moved them to cur/. */
  assert_int_equal(count_dir(f, "root/example.org/alice/new"), 0);
  assert_int_equal(count_dir(f, "root/example.org/alice/cur"), 3);

  /* The cur/ names carry ",W=<size>:2,". */
  deliver_text(f, "bob", texts[0]);
  mb = box_open(f, "bob");
  maild_mailbox_close(mb);
  only_entry(f, "root/example.org/bob/cur", name, sizeof(name));
  snprintf(buf, sizeof(buf), ",W=%zu:2,", strlen(texts[0]));
  assert_non_null(strstr(name, buf));
  assert_string_equal(name + strlen(name) - strlen(buf), buf);
}

/* A message written by another program with LF-only lines (and a bare CR,
   and no final line end): the size counts every line end as CRLF. */
static void test_lf_only_size(void **state) {
  fx *f = *state;
  static const char lf_text[] = "Subject: lf\n\nline\nbare\rcr\r\nend";
  maild_mailbox *mb;
  int fd;
  uint64_t size;
  const char *u;
  char buf[64];

  fx_open(f);
  mb = box_open(f, "carol"); /* creates the (empty) mailbox */
  assert_int_equal(maild_mailbox_count(mb), 0);
  maild_mailbox_close(mb);
  fd = openat(f->base_fd, "root/example.org/carol/new", O_RDONLY | O_DIRECTORY);
  assert_true(fd >= 0);
  write_file_at(fd, "1600000000.12345.otherhost", lf_text, strlen(lf_text));
  close(fd);
  /* And one already in cur/ with flags, delivered later. */
  fd = openat(f->base_fd, "root/example.org/carol/cur", O_RDONLY | O_DIRECTORY);
  assert_true(fd >= 0);
  write_file_at(fd, "1600000001.999.otherhost:2,S", "a\nb\n", 4);
  close(fd);

  mb = box_open(f, "carol");
  assert_int_equal(maild_mailbox_count(mb), 2);
  assert_int_equal(maild_mailbox_info(mb, 0, &size, &u), 0);
  /* 4 LF-ish line ends (3 LF + 1 bare CR) add one each; CRLF stays 2. */
  assert_int_equal(size, strlen(lf_text) + 4);
  assert_string_equal(u, "1600000000.12345.otherhost");
  assert_int_equal(read_all(mb, 0, 5, buf, sizeof(buf)), strlen(lf_text));
  assert_memory_equal(buf, lf_text, strlen(lf_text)); /* as stored */
  assert_int_equal(maild_mailbox_info(mb, 1, &size, &u), 0);
  assert_int_equal(size, 6);
  assert_string_equal(u, "1600000001.999.otherhost");
  maild_mailbox_close(mb);
  /* Same sizes next time (from the W= tag now). */
  mb = box_open(f, "carol");
  assert_int_equal(maild_mailbox_info(mb, 0, &size, &u), 0);
  assert_int_equal(size, strlen(lf_text) + 4);
  assert_string_equal(u, "1600000000.12345.otherhost");
  maild_mailbox_close(mb);
}

/* A CRLF split across the 64 KiB scan chunks counts once; reads of a big
   message at odd offsets give the stored octets. */
static void test_big_message(void **state) {
  fx *f = *state;
  const size_t len = 65535 + 2 + 2 + 100000;
  char *text = malloc(len + 1), *back = malloc(len + 16);
  maild_mailbox *mb;
  uint64_t size;
  size_t i;
  int fd;

  assert_non_null(text);
  assert_non_null(back);
  for (i = 0; i < len; i++)
    text[i] = (char)('a' + i % 26);
  memcpy(text + 65535, "\r\nb\n", 4); /* CR ends the first chunk */
  text[len] = '\0';
  fx_open(f);
  mb = box_open(f, "big");
  maild_mailbox_close(mb);
  fd = openat(f->base_fd, "root/example.org/big/new", O_RDONLY | O_DIRECTORY);
  assert_true(fd >= 0);
  write_file_at(fd, "1600000000.big.host", text, len);
  close(fd);
  mb = box_open(f, "big");
  assert_int_equal(maild_mailbox_info(mb, 0, &size, NULL), 0);
  assert_int_equal(size, len + 1); /* one bare LF */
  assert_int_equal(read_all(mb, 0, 4093, back, len + 16), len);
  assert_memory_equal(back, text, len);
  assert_int_equal(maild_mailbox_read(mb, 0, len - 3, (uint8_t *)back, 100), 3);
  assert_memory_equal(back, text + len - 3, 3);
  maild_mailbox_close(mb);
  free(text);
  free(back);
}

/* ---- P4: UIDLs -------------------------------------------------------- */

static void test_uidl_stable(void **state) {
  fx *f = *state;
  char first[5][80];
  maild_mailbox *mb;
  const char *u;
  size_t i, j;
  int fd;
  char longname[200];

  fx_open(f);
  for (i = 0; i < 4; i++)
    deliver_text(f, "dave", texts[i % 3]);
  /* A foreign name too long for a UIDL: hashed. */
  memset(longname, 'x', sizeof(longname));
  memcpy(longname, "1700000001.", 11);
  longname[150] = '\0';
  fd = openat(f->base_fd, "root/example.org/dave/new", O_RDONLY | O_DIRECTORY);
  assert_true(fd >= 0);
  write_file_at(fd, longname, "x\r\n", 3);
  close(fd);

  mb = box_open(f, "dave");
  assert_int_equal(maild_mailbox_count(mb), 5);
  for (i = 0; i < 5; i++) {
    assert_int_equal(maild_mailbox_info(mb, i, NULL, &u), 0);
    assert_uidl_valid(u);
    strcpy(first[i], u);
    if (i == 4) /* the foreign long name (delivered last): hashed */
      assert_true(u[0] == '~' && strlen(u) == 33);
    for (j = 0; j < i; j++)
      assert_string_not_equal(first[i], first[j]);
  }
  maild_mailbox_close(mb);
  /* Same session object again, then a new store (restart). */
  for (j = 0; j < 2; j++) {
    if (j == 1)
      fx_open(f);
    mb = box_open(f, "dave");
    assert_int_equal(maild_mailbox_count(mb), 5);
    for (i = 0; i < 5; i++) {
      assert_int_equal(maild_mailbox_info(mb, i, NULL, &u), 0);
      assert_string_equal(u, first[i]);
    }
    maild_mailbox_close(mb);
  }
  /* A new arrival does not change the others' UIDLs. */
  f->now += 5000000;
  deliver_text(f, "dave", texts[0]);
  mb = box_open(f, "dave");
  assert_int_equal(maild_mailbox_count(mb), 6);
  for (i = 0; i < 5; i++) {
    assert_int_equal(maild_mailbox_info(mb, i, NULL, &u), 0);
    assert_string_equal(u, first[i]);
  }
  assert_int_equal(maild_mailbox_info(mb, 5, NULL, &u), 0);
  for (i = 0; i < 5; i++)
    assert_string_not_equal(u, first[i]);
  maild_mailbox_close(mb);
}

/* Two files with one base (copied by another program): UIDLs still unique
   and stable. */
static void test_uidl_duplicates(void **state) {
  fx *f = *state;
  static const char *const names[] = {
      "1600000000.dup:2,S", "1600000000.dup,X=1", "1600000000.dup:2,"};
  char first[3][80];
  maild_mailbox *mb;
  const char *u;
  size_t i, j, round;
  int fd;

  fx_open(f);
  mb = box_open(f, "dup");
  maild_mailbox_close(mb);
  fd = openat(f->base_fd, "root/example.org/dup/cur", O_RDONLY | O_DIRECTORY);
  assert_true(fd >= 0);
  for (i = 0; i < 3; i++)
    write_file_at(fd, names[i], "x\r\n", 3);
  close(fd);
  for (round = 0; round < 2; round++) {
    fx_open(f);
    mb = box_open(f, "dup");
    assert_int_equal(maild_mailbox_count(mb), 3);
    for (i = 0; i < 3; i++) {
      assert_int_equal(maild_mailbox_info(mb, i, NULL, &u), 0);
      assert_uidl_valid(u);
      if (round == 0)
        strcpy(first[i], u);
      else
        assert_string_equal(u, first[i]);
      for (j = 0; j < i; j++)
        assert_string_not_equal(first[i], first[j]);
    }
    maild_mailbox_close(mb);
  }
  assert_int_equal(strcmp(first[0], "1600000000.dup") == 0 ||
                       strcmp(first[1], "1600000000.dup") == 0 ||
                       strcmp(first[2], "1600000000.dup") == 0,
                   1);
}

/* ---- P2: the lock ----------------------------------------------------- */

static void test_lock(void **state) {
  fx *f = *state;
  maild_mailbox *mb, *mb2 = NULL, *other;
  maild_store *st2 = NULL;

  fx_open(f);
  deliver_text(f, "erin", texts[0]);
  mb = box_open(f, "erin");
  assert_int_equal(maild_store_open(f->st, "example.org", 11, "erin", 4, &mb2),
                   MAILD_ERR_EXISTS);
  assert_null(mb2);
  /* Case-folded: the same mailbox. */
  assert_int_equal(maild_store_open(f->st, "EXAMPLE.org", 11, "Erin", 4, &mb2),
                   MAILD_ERR_EXISTS);
  /* Another store object (another process would be the same). */
  assert_int_equal(maild_store_maildir_new(&st2, f->root, &f->cfg, NULL), 0);
  assert_int_equal(maild_store_open(st2, "example.org", 11, "erin", 4, &mb2),
                   MAILD_ERR_EXISTS);
  /* Another mailbox is free. */
  other = box_open(f, "frank");
  maild_mailbox_close(other);
  /* Delivery goes on while locked. */
  deliver_text(f, "erin", texts[1]);
  maild_mailbox_close(mb);
  assert_int_equal(maild_store_open(st2, "example.org", 11, "erin", 4, &mb2),
                   0);
  assert_int_equal(maild_mailbox_count(mb2), 2);
  maild_mailbox_close(mb2);
  maild_store_del(st2);
}

/* A holder that dies without closing (a crash) leaves no stale lock. */
static void test_lock_crash(void **state) {
  fx *f = *state;
  maild_mailbox *mb = NULL;
  int pfd[2];
  char c = 0;
  pid_t pid;
  int status;

  fx_open(f);
  deliver_text(f, "kim", texts[0]);
  assert_int_equal(pipe(pfd), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    maild_mailbox *held = NULL;
    close(pfd[0]);
    c = maild_store_open(f->st, "example.org", 11, "kim", 3, &held) == 0;
    (void)!write(pfd[1], &c, 1);
    pause(); /* killed below, never closes */
    _exit(0);
  }
  close(pfd[1]);
  assert_int_equal(read(pfd[0], &c, 1), 1);
  assert_int_equal(c, 1);
  assert_int_equal(maild_store_open(f->st, "example.org", 11, "kim", 3, &mb),
                   MAILD_ERR_EXISTS);
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  close(pfd[0]);
  assert_int_equal(maild_store_open(f->st, "example.org", 11, "kim", 3, &mb),
                   0);
  assert_int_equal(maild_mailbox_count(mb), 1);
  maild_mailbox_close(mb);
}

/* ---- P1: deletion ----------------------------------------------------- */

static void test_delete(void **state) {
  fx *f = *state;
  maild_mailbox *mb;
  const char *u;
  char keep[80];
  size_t idx[3] = {2, 0, 2};
  size_t i;

  fx_open(f);
  for (i = 0; i < 4; i++) {
    f->now = NOW_USEC + i;
    deliver_text(f, "gina", texts[i % 3]);
  }
  /* Close without delete keeps everything. */
  mb = box_open(f, "gina");
  assert_int_equal(maild_mailbox_count(mb), 4);
  maild_mailbox_close(mb);
  mb = box_open(f, "gina");
  assert_int_equal(maild_mailbox_count(mb), 4);
  assert_int_equal(maild_mailbox_info(mb, 1, NULL, &u), 0);
  strcpy(keep, u);
  /* Bad index: nothing removed. */
  idx[1] = 4;
  assert_int_equal(maild_mailbox_delete(mb, idx, 2), MAILD_ERR_INVAL);
  assert_int_equal(maild_mailbox_delete(mb, NULL, 1), MAILD_ERR_INVAL);
  assert_int_equal(maild_mailbox_delete(mb, NULL, 0), 0);
  assert_int_equal(count_dir(f, "root/example.org/gina/cur"), 4);
  /* Any order, repeats fine; one file already gone is fine too. */
  idx[1] = 0;
  assert_int_equal(maild_mailbox_delete(mb, idx, 3), 0);
  assert_int_equal(count_dir(f, "root/example.org/gina/cur"), 2);
  assert_int_equal(maild_mailbox_delete(mb, idx, 1), 0);
  /* A deleted message reads as NOT_FOUND. */
  {
    uint8_t b[4];
    assert_int_equal(maild_mailbox_read(mb, 0, 0, b, sizeof(b)),
                     MAILD_ERR_NOT_FOUND);
  }
  maild_mailbox_close(mb);
  fx_open(f);
  mb = box_open(f, "gina");
  assert_int_equal(maild_mailbox_count(mb), 2);
  assert_int_equal(maild_mailbox_info(mb, 0, NULL, &u), 0);
  assert_string_equal(u, keep);
  maild_mailbox_close(mb);
}

/* At close, the messages still in new/ move to cur/, except the deleted
   ones (never moved first); a message a later delivery put in new/ during
   the session is not in the snapshot and stays new. */
static void test_close_moves(void **state) {
  fx *f = *state;
  maild_mailbox *mb;
  const char *u;
  char before[3][80], name[300];
  size_t i, del = 1;

  fx_open(f);
  for (i = 0; i < 3; i++) {
    f->now = NOW_USEC + i;
    deliver_text(f, "ivan", texts[i]);
  }
  mb = box_open(f, "ivan");
  assert_int_equal(maild_mailbox_count(mb), 3);
  for (i = 0; i < 3; i++) {
    assert_int_equal(maild_mailbox_info(mb, i, NULL, &u), 0);
    strcpy(before[i], u);
  }
  assert_int_equal(maild_mailbox_delete(mb, &del, 1), 0);
  f->now = NOW_USEC + 10;
  deliver_text(f, "ivan", texts[0]);
  assert_int_equal(count_dir(f, "root/example.org/ivan/new"), 3);
  assert_int_equal(count_dir(f, "root/example.org/ivan/cur"), 0);
  maild_mailbox_close(mb);
  assert_int_equal(count_dir(f, "root/example.org/ivan/new"), 1);
  assert_int_equal(count_dir(f, "root/example.org/ivan/cur"), 2);
  only_entry(f, "root/example.org/ivan/new", name, sizeof(name));
  assert_null(strchr(name, ':'));
  /* The moved ones keep their UIDLs; the late one is listed after them. */
  mb = box_open(f, "ivan");
  assert_int_equal(maild_mailbox_count(mb), 3);
  assert_int_equal(maild_mailbox_info(mb, 0, NULL, &u), 0);
  assert_string_equal(u, before[0]);
  assert_int_equal(maild_mailbox_info(mb, 1, NULL, &u), 0);
  assert_string_equal(u, before[2]);
  maild_mailbox_close(mb);
  assert_int_equal(count_dir(f, "root/example.org/ivan/new"), 0);
  assert_int_equal(count_dir(f, "root/example.org/ivan/cur"), 3);
}

/* A message removed by another program after the listing. */
static void test_vanished(void **state) {
  fx *f = *state;
  maild_mailbox *mb;
  char name[300], path[400];
  uint8_t b[8];

  fx_open(f);
  deliver_text(f, "hal", texts[0]);
  mb = box_open(f, "hal");
  only_entry(f, "root/example.org/hal/new", name, sizeof(name));
  snprintf(path, sizeof(path), "root/example.org/hal/new/%s", name);
  assert_int_equal(unlinkat(f->base_fd, path, 0), 0);
  assert_int_equal(maild_mailbox_read(mb, 0, 0, b, sizeof(b)),
                   MAILD_ERR_NOT_FOUND);
  maild_mailbox_close(mb);
}

/* ---- Unsafe names and arguments --------------------------------------- */

static void test_unsafe_names(void **state) {
  fx *f = *state;
  static const char *const bad[] = {"..", ".", ".x", "a/b", "../x"};
  maild_mailbox *mb = (maild_mailbox *)&mb;
  size_t i;

  fx_open(f);
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(
        maild_store_open(f->st, "example.org", 11, bad[i], strlen(bad[i]), &mb),
        MAILD_ERR_INVAL);
    assert_null(mb);
  }
  assert_int_equal(maild_store_open(f->st, "example.org", 11, "a\nb", 3, &mb),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_store_open(f->st, "example.org", 11, "a\0b", 3, &mb),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_store_open(f->st, "..", 2, "x", 1, &mb),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_store_open(f->st, "example.org", 11, "", 0, &mb),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_store_open(NULL, "example.org", 11, "x", 1, &mb),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_store_open(f->st, "example.org", 11, "x", 1, NULL),
                   MAILD_ERR_INVAL);
  /* Nothing was created outside a mailbox directory. */
  assert_int_equal(count_dir(f, "root"), 0);
  assert_int_equal(count_dir(f, "."), 2);
}

/* A symlink planted as the mailbox is refused, never followed. */
static void test_symlink(void **state) {
  fx *f = *state;
  maild_mailbox *mb = NULL;

  fx_open(f);
  assert_int_equal(mkdirat(f->base_fd, "root/example.org", 0700), 0);
  assert_int_equal(symlinkat("../../spool", f->base_fd, "root/example.org/ivy"),
                   0);
  assert_int_equal(maild_store_open(f->st, "example.org", 11, "ivy", 3, &mb),
                   MAILD_ERR_IO);
  assert_null(mb);
  assert_int_equal(count_dir(f, "spool"), 1);
}

/* ---- Allocation failures ---------------------------------------------- */

static void test_alloc_failure_sweep(void **state) {
  fx *f = *state;
  maild_store *st;
  maild_mailbox *mb;
  size_t n, idx = 0, i, ok = 0;
  testmem tm;
  int rc;

  fx_open(f);
  for (i = 0; i < 20; i++)
    deliver_text(f, "sweep", texts[i % 3]);
  for (n = 1; n < 200; n++) {
    testmem_init(&tm, n);
    st = NULL;
    rc = maild_store_maildir_new(&st, f->root, &f->cfg, &tm.mem);
    if (rc == 0) {
      mb = NULL;
      rc = maild_store_open(st, "example.org", 11, "sweep", 5, &mb);
      if (rc == 0) {
        assert_int_equal(maild_mailbox_count(mb), 20 - ok);
        rc = maild_mailbox_delete(mb, &idx, 1);
        if (rc == 0)
          ok++;
        maild_mailbox_close(mb);
      } else {
        assert_null(mb);
      }
      maild_store_del(st);
    }
    assert_true(rc == 0 || rc == MAILD_ERR_NOMEM);
    assert_int_equal(tm.live, 0);
    /* Nothing lost: every message is in cur/ or new/ (partly moved). */
    assert_int_equal(count_dir(f, "root/example.org/sweep/cur") +
                         count_dir(f, "root/example.org/sweep/new"),
                     20 - ok);
    if (tm.failures == 0)
      break;
  }
  assert_true(n > 20);
  assert_int_equal(ok, 1);
}

/* ---- The generic wrapper without a read side -------------------------- */

static int fake_deliver(maild_store *st, const maild_store_message *msg,
                        const char *domain, const char *local,
                        maild_store_result *res, void *backend_data) {
  (void)st, (void)msg, (void)domain, (void)local, (void)res;
  (void)backend_data;
  return 0;
}

static void test_unsupported(void **state) {
  maild_store_backend be;
  maild_store *st = NULL;
  maild_mailbox *mb = (maild_mailbox *)&mb;

  (void)state;
  memset(&be, 0, sizeof(be));
  be.struct_size = offsetof(maild_store_backend, box_open);
  be.name = "old";
  be.deliver = fake_deliver;
  assert_int_equal(maild_store_new(&st, &be, NULL, NULL, NULL), 0);
  assert_int_equal(maild_store_open(st, "example.org", 11, "x", 1, &mb),
                   MAILD_ERR_UNSUPPORTED);
  assert_null(mb);
  maild_store_del(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
      T(test_list_and_read),       T(test_lf_only_size),
      T(test_big_message),         T(test_uidl_stable),
      T(test_uidl_duplicates),     T(test_lock),
      T(test_lock_crash),          T(test_delete),
      T(test_close_moves),         T(test_vanished),
      T(test_unsafe_names),        T(test_symlink),
      T(test_alloc_failure_sweep), T(test_unsupported),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
