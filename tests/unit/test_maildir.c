/*
 * Unit tests for the Maildir backend (TESTPLAN M1-M4): delivery by copy
 * and by hard link, unique names under a pinned clock, unsafe addresses
 * and planted symlinks that must never reach outside the root, quota at
 * the limit and one past it, and an allocation-failure sweep. Every test
 * works in its own mkdtemp directory under /tmp and removes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maild/error.h"
#include "maild/store.h"
#include "testmem.h"

#include "maildir_fixture.h"

static int fx_setup(void **state) {
  return fx_setup_in(state, "/tmp/maild_maildir_XXXXXX");
}

/* ---- File system helpers ---------------------------------------------- */

/* Entries below `path`, recursively, never following symlinks. */
static size_t count_tree_at(int parent, const char *name) {
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  struct dirent *e;
  size_t n = 0;
  DIR *d;

  if (fd < 0)
    return 0;
  d = fdopendir(fd);
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    n += 1 + count_tree_at(fd, e->d_name);
  }
  closedir(d);
  return n;
}

static size_t count_tree(const fx *f, const char *rel) {
  return count_tree_at(f->base_fd, rel);
}

/* The base directory holds only what the test made: root and spool (and
   `extra` more entries the test planted beside them). */
static void assert_base_clean(const fx *f, size_t extra) {
  assert_int_equal(count_tree_at(AT_FDCWD, f->base),
                   count_tree(f, "root") + count_tree(f, "spool") + 2 + extra);
}

/* Reads the whole file base/rel and compares it with the message. */
static void assert_content(const fx *f, const char *rel) {
  char buf[sizeof(mail_text) + 16];
  int fd = openat(f->base_fd, rel, O_RDONLY);
  ssize_t n;

  assert_true(fd >= 0);
  n = read(fd, buf, sizeof(buf));
  close(fd);
  assert_int_equal(n, (ssize_t)f->msg_size);
  assert_memory_equal(buf, mail_text, f->msg_size);
}

static void mailbox_path(char *out, size_t cap, const char *box,
                         const char *sub, const char *file) {
  int n = snprintf(out, cap, "root/%s/%s%s%s", box, sub, file ? "/" : "",
                   file ? file : "");
  assert_true(n > 0 && (size_t)n < cap);
}

/* ---- Fixture ---------------------------------------------------------- */

static maild_store_message fx_msg(const fx *f, const char *link_name) {
  maild_store_message m;
  memset(&m, 0, sizeof(m));
  m.fd = f->msg_fd;
  m.size = f->msg_size;
  m.link_dirfd = f->spool_fd;
  m.link_name = link_name;
  return m;
}

static int deliver(fx *f, const char *link_name, const char *domain,
                   const char *local, maild_store_result *res) {
  maild_store_message m = fx_msg(f, link_name);
  return maild_store_deliver(f->st, &m, domain, strlen(domain), local,
                             strlen(local), res);
}

/* Checks <sec>.M<usec>P<pid>Q<n>R<8 hex>.<host>,S=<size>. */
static void assert_name_format(const char *name, const char *host,
                               uint64_t size) {
  unsigned long long sec, usec, pid, q, sz;
  char rnd[9], rest[128];
  int used = 0;

  assert_int_equal(sscanf(name, "%llu.M%lluP%lluQ%lluR%8[0-9a-f].%n", &sec,
                          &usec, &pid, &q, rnd, &used),
                   5);
  assert_int_equal(strlen(rnd), 8);
  assert_true(used > 0);
  assert_true(usec < 1000000 && q > 0 && sec > 0);
  snprintf(rest, sizeof(rest), "%s,S=%llu", host, (unsigned long long)size);
  assert_string_equal(name + used, rest);
  assert_int_equal(pid, (unsigned long long)getpid());
  assert_int_equal(sscanf(strstr(name, ",S="), ",S=%llu", &sz), 1);
  assert_int_equal(sz, size);
  assert_true(strlen(name) <= 255);
}

/* ---- M1: delivery ----------------------------------------------------- */

static void test_copy_delivery(void **state) {
  fx *f = *state;
  maild_store_result res;
  char path[512], expect[256];
  struct stat sb;

  fx_open(f);
  assert_int_equal(deliver(f, NULL, "example.org", "alice", &res), 0);
  assert_int_equal(res.linked, 0);
  assert_int_equal(res.sys_errno, 0);
  snprintf(expect, sizeof(expect),
           "1700000000.M123456P%lluQ1R0000abcd.mx.example,S=%llu",
           (unsigned long long)getpid(), (unsigned long long)f->msg_size);
  assert_string_equal(res.id, expect);
  assert_name_format(res.id, "mx.example", f->msg_size);
  mailbox_path(path, sizeof(path), "example.org/alice", "new", res.id);
  assert_content(f, path);
  assert_int_equal(fstatat(f->base_fd, path, &sb, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal(sb.st_nlink, 1);
  assert_int_equal(sb.st_mode & 0777, 0600);
  /* Only in new/: tmp/ and cur/ are empty. */
  assert_int_equal(count_tree(f, "root/example.org/alice/new"), 1);
  assert_int_equal(count_tree(f, "root/example.org/alice/tmp"), 0);
  assert_int_equal(count_tree(f, "root/example.org/alice/cur"), 0);
  assert_int_equal(count_tree(f, "root"), 6);
  /* Directories are private. */
  assert_int_equal(fstatat(f->base_fd, "root/example.org/alice", &sb, 0), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);
  /* The message descriptor's offset is not used or moved. */
  assert_int_equal(lseek(f->msg_fd, 0, SEEK_CUR), 0);
  assert_base_clean(f, 0);
}

static void test_link_delivery(void **state) {
  fx *f = *state;
  maild_store_result res;
  struct stat spool, sb;
  char path[512];

  fx_open(f);
  assert_int_equal(fstat(f->msg_fd, &spool), 0);
  assert_int_equal(deliver(f, "msg", "example.org", "alice", &res), 0);
  assert_int_equal(res.linked, 1);
  mailbox_path(path, sizeof(path), "example.org/alice", "new", res.id);
  assert_int_equal(fstatat(f->base_fd, path, &sb, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal(sb.st_nlink, 2);
  assert_int_equal(sb.st_ino, spool.st_ino);
  assert_int_equal(sb.st_dev, spool.st_dev);
  assert_content(f, path);
  assert_int_equal(count_tree(f, "root/example.org/alice/tmp"), 0);
  assert_int_equal(count_tree(f, "root/example.org/alice/new"), 1);
  /* A second recipient shares the file too. */
  assert_int_equal(deliver(f, "msg", "example.org", "bob", &res), 0);
  assert_int_equal(res.linked, 1);
  assert_int_equal(fstat(f->msg_fd, &sb), 0);
  assert_int_equal(sb.st_nlink, 3);
  /* The spool may remove its file: the mailboxes keep theirs. */
  assert_int_equal(unlinkat(f->spool_fd, "msg", 0), 0);
  assert_content(f, path);
  assert_base_clean(f, 0);
}

/* A delivery made without its barrier can be taken back (group commit
   whose barrier failed); the mailbox is as before. */
static void test_no_sync_and_withdraw(void **state) {
  fx *f = *state;
  maild_store_message m;
  maild_store_result res;

  fx_open(f);
  memset(&m, 0, sizeof(m));
  m.fd = f->msg_fd;
  m.size = f->msg_size;
  m.link_dirfd = f->spool_fd;
  m.link_name = "msg";
  m.flags = MAILD_STORE_NO_SYNC;
  assert_int_equal(
      maild_store_deliver(f->st, &m, "example.org", 11, "alice", 5, &res), 0);
  assert_int_equal(count_tree(f, "root/example.org/alice/new"), 1);
  assert_int_equal(maild_store_sync(f->st), 0);
  assert_int_equal(
      maild_store_withdraw(f->st, "example.org", 11, "Alice", 5, res.id), 0);
  assert_int_equal(count_tree(f, "root/example.org/alice/new"), 0);
  assert_int_equal(
      maild_store_withdraw(f->st, "example.org", 11, "alice", 5, res.id),
      MAILD_ERR_NOT_FOUND);
  assert_int_equal(
      maild_store_withdraw(f->st, "example.org", 11, "alice", 5, "../x"),
      MAILD_ERR_INVAL);
  assert_base_clean(f, 0);
}

/* Linking fails or names the wrong file: the message is copied. */
static void test_link_fallback(void **state) {
  fx *f = *state;
  maild_store_message m;
  maild_store_result res;
  char path[512], other[sizeof(mail_text)];
  struct stat sb;
  int i;

  fx_open(f);
  /* Same size, different file: must not be linked. */
  memset(other, 'X', sizeof(other));
  write_file_at(f->spool_fd, "other", other, (size_t)f->msg_size);
  for (i = 0; i < 4; i++) {
    m = fx_msg(f, "msg");
    if (i == 0)
      m.link_dirfd = -1; /* EBADF, like EXDEV: any link error */
    else if (i == 1)
      m.link_name = "missing";
    else if (i == 2)
      m.link_name = "other";
    else
      m.link_dirfd = f->base_fd; /* unrelated directory, no such name */
    assert_int_equal(
        maild_store_deliver(f->st, &m, "example.org", 11, "carol", 5, &res), 0);
    assert_int_equal(res.linked, 0);
    mailbox_path(path, sizeof(path), "example.org/carol", "new", res.id);
    assert_int_equal(fstatat(f->base_fd, path, &sb, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(sb.st_nlink, 1);
    assert_content(f, path);
  }
  assert_int_equal(count_tree(f, "root/example.org/carol/new"), 4);
  assert_int_equal(count_tree(f, "root/example.org/carol/tmp"), 0);
  assert_int_equal(fstat(f->msg_fd, &sb), 0);
  assert_int_equal(sb.st_nlink, 1);
  assert_int_equal(fstatat(f->spool_fd, "other", &sb, 0), 0);
  assert_int_equal(sb.st_nlink, 1);
}

/* Content shorter than msg.size: a temporary error, nothing left. */
static void test_short_content(void **state) {
  fx *f = *state;
  maild_store_message m;
  maild_store_result res;

  fx_open(f);
  m = fx_msg(f, NULL);
  m.size += 1;
  assert_int_equal(
      maild_store_deliver(f->st, &m, "example.org", 11, "dave", 4, &res),
      MAILD_ERR_IO);
  assert_int_equal(res.sys_errno, 0);
  assert_string_equal(res.id, "");
  assert_int_equal(count_tree(f, "root/example.org/dave/new"), 0);
  assert_int_equal(count_tree(f, "root/example.org/dave/tmp"), 0);
  /* Same with linking asked for: the size check refuses the link. */
  m.link_name = "msg";
  assert_int_equal(
      maild_store_deliver(f->st, &m, "example.org", 11, "dave", 4, &res),
      MAILD_ERR_IO);
  assert_int_equal(count_tree(f, "root/example.org/dave/new"), 0);
  assert_int_equal(count_tree(f, "root/example.org/dave/tmp"), 0);
}

/* ---- M2: unique names ------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_thousand_in_one_second(void **state) {
  fx *f = *state;
  maild_store_result res;
  char **ids;
  int i;

  fx_open(f); /* clock and random pinned: only the counter differs */
  ids = calloc(1000, sizeof(*ids));
  assert_non_null(ids);
  for (i = 0; i < 1000; i++) {
    assert_int_equal(
        deliver(f, i % 2 ? "msg" : NULL, "example.org", "m2", &res), 0);
    assert_name_format(res.id, "mx.example", f->msg_size);
    ids[i] = strdup(res.id);
    assert_non_null(ids[i]);
  }
  qsort(ids, 1000, sizeof(*ids), cmp_str);
  for (i = 1; i < 1000; i++)
    assert_string_not_equal(ids[i - 1], ids[i]);
  for (i = 0; i < 1000; i++)
    free(ids[i]);
  free(ids);
  assert_int_equal(count_tree(f, "root/example.org/m2/new"), 1000);
  assert_int_equal(count_tree(f, "root/example.org/m2/tmp"), 0);
}

/* A name already taken in tmp/ or new/ is skipped, never overwritten. */
static void test_name_collision(void **state) {
  fx *f = *state;
  maild_store_result res;
  char name[256], path[512];
  unsigned long long pid = (unsigned long long)getpid();
  unsigned long long sz = (unsigned long long)f->msg_size;
  int dfd;

  fx_open(f);
  assert_int_equal(deliver(f, NULL, "example.org", "erin", &res), 0);
  assert_non_null(strstr(res.id, "Q1R"));
  /* Plant the next name (Q2) in tmp/ and the one after (Q3) in new/. */
  dfd = openat(f->base_fd, "root/example.org/erin", O_RDONLY | O_DIRECTORY);
  assert_true(dfd >= 0);
  snprintf(name, sizeof(name),
           "tmp/1700000000.M123456P%lluQ2R0000abcd.mx.example,S=%llu", pid, sz);
  write_file_at(dfd, name, "old", 3);
  snprintf(name, sizeof(name),
           "new/1700000000.M123456P%lluQ3R0000abcd.mx.example,S=%llu", pid, sz);
  write_file_at(dfd, name, "old", 3);
  close(dfd);
  assert_int_equal(deliver(f, "msg", "example.org", "erin", &res), 0);
  assert_non_null(strstr(res.id, "Q4R"));
  mailbox_path(path, sizeof(path), "example.org/erin", "new", res.id);
  assert_content(f, path);
  /* The planted files are untouched. */
  snprintf(path, sizeof(path), "root/example.org/erin/%s", name);
  assert_int_equal(count_tree(f, "root/example.org/erin/new"), 3);
  assert_int_equal(count_tree(f, "root/example.org/erin/tmp"), 1);
  {
    struct stat sb;
    assert_int_equal(fstatat(f->base_fd, path, &sb, 0), 0);
    assert_int_equal(sb.st_size, 3);
  }
}

typedef struct thread_arg {
  fx *f;
  int fails;
} thread_arg;

static void *deliver_many(void *p) {
  thread_arg *a = p;
  maild_store_result res;
  int i;
  for (i = 0; i < 250; i++)
    if (deliver(a->f, i % 2 ? "msg" : NULL, "example.org", "busy", &res) != 0)
      a->fails++;
  return NULL;
}

/* Several worker threads deliver through one store into one mailbox. */
static void test_concurrent_deliveries(void **state) {
  fx *f = *state;
  pthread_t t[4];
  thread_arg a[4];
  int i;

  fx_open(f);
  for (i = 0; i < 4; i++) {
    a[i].f = f;
    a[i].fails = 0;
    assert_int_equal(pthread_create(&t[i], NULL, deliver_many, &a[i]), 0);
  }
  for (i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(a[i].fails, 0);
  }
  assert_int_equal(count_tree(f, "root/example.org/busy/new"), 1000);
  assert_int_equal(count_tree(f, "root/example.org/busy/tmp"), 0);
}

/* ---- M3: unsafe addresses --------------------------------------------- */

typedef struct addr {
  const char *s;
  size_t len;
} addr;

#define A(lit) \
  { lit, sizeof(lit) - 1 }

static void test_unsafe_addresses(void **state) {
  static const addr bad[] = {
      A("../x"), A("a/b"), A(".x"),   A("x\0y"), A(".."),       A("."),
      A("/"),    A("x/"),  A("/etc"), A("\x01"), A("a\tb"),     A("x\r\n"),
      A("\x7f"), A(""),    A("..."),  A("./x"),  A("\xc0\xaf"),
  };
  fx *f = *state;
  maild_store_message m;
  maild_store_result res;
  char big[300];
  size_t i;

  fx_open(f);
  m = fx_msg(f, "msg");
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(maild_store_deliver(f->st, &m, "example.org", 11, bad[i].s,
                                         bad[i].len, &res),
                     MAILD_ERR_INVAL);
    assert_int_equal(count_tree(f, "root"), 0);
    assert_base_clean(f, 0);
    assert_int_equal(
        maild_store_deliver(f->st, &m, bad[i].s, bad[i].len, "alice", 5, &res),
        MAILD_ERR_INVAL);
    assert_int_equal(count_tree(f, "root"), 0);
    assert_base_clean(f, 0);
  }
  /* Very long: over 255 octets, or an encoding over 255 octets. */
  memset(big, 'a', sizeof(big));
  assert_int_equal(
      maild_store_deliver(f->st, &m, "example.org", 11, big, 256, &res),
      MAILD_ERR_INVAL);
  memset(big, '%', sizeof(big));
  assert_int_equal(
      maild_store_deliver(f->st, &m, "example.org", 11, big, 86, &res),
      MAILD_ERR_INVAL); /* 86 * 3 = 258 */
  assert_int_equal(maild_store_deliver(f->st, &m, big, 255, "x", 1, &res),
                   MAILD_ERR_INVAL);
  assert_int_equal(count_tree(f, "root"), 0);
  assert_base_clean(f, 0);
  /* At the limits: 255 plain octets, 85 escaped ones (255 encoded). */
  assert_int_equal(
      maild_store_deliver(f->st, &m, "example.org", 11, big, 85, &res), 0);
  memset(big, 'a', sizeof(big));
  assert_int_equal(
      maild_store_deliver(f->st, &m, "example.org", 11, big, 255, &res), 0);
  /* Everything stayed in the two mailboxes, each with tmp, new, cur and
     one message. */
  assert_int_equal(count_tree(f, "root"), 1 + 2 * 5);
  assert_base_clean(f, 0);
}

/* ---- On-disk names ---------------------------------------------------- */

static void assert_box_exists(const fx *f, const char *box) {
  char path[512];
  struct stat sb;
  mailbox_path(path, sizeof(path), box, "new", NULL);
  assert_int_equal(fstatat(f->base_fd, path, &sb, AT_SYMLINK_NOFOLLOW), 0);
  assert_true(S_ISDIR(sb.st_mode));
}

static void test_case_folding(void **state) {
  fx *f = *state;
  maild_store_result res;

  fx_open(f);
  assert_int_equal(deliver(f, NULL, "Example.ORG", "Alice", &res), 0);
  assert_int_equal(deliver(f, NULL, "example.org", "alice", &res), 0);
  assert_int_equal(deliver(f, NULL, "EXAMPLE.org", "ALICE", &res), 0);
  assert_int_equal(count_tree(f, "root"), 1 + 1 + 3 + 3);
  assert_int_equal(count_tree(f, "root/example.org/alice/new"), 3);
  /* Non-ASCII is not folded: two mailboxes. */
  assert_int_equal(deliver(f, NULL, "example.org", "\xc3\x84rger", &res), 0);
  assert_int_equal(deliver(f, NULL, "example.org", "\xc3\xa4rger", &res), 0);
  assert_box_exists(f, "example.org/\xc3\x84rger");
  assert_box_exists(f, "example.org/\xc3\xa4rger");
}

static void test_encoding_injective(void **state) {
  static const struct {
    const char *local;
    const char *dir;
  } cases[] = {
      {"a b", "a%20b"},
      {"a%20b", "a%2520b"},
      {"a%2520b", "a%252520b"},
      {"\"q\"", "%22q%22"},
      {"q", "q"},
      {"%22q%22", "%2522q%2522"},
      {"x:y", "x%3Ay"},
      {"x%3ay", "x%253ay"},
      {"a\\b", "a%5Cb"},
      {"a.b+tag-1_2", "a.b+tag-1_2"},
      {"x.", "x."},
      {"x..y", "x..y"},
      {"~x", "%7Ex"},
      {"*", "%2A"},
      {"j\xc3\xb6rg", "j\xc3\xb6rg"},
  };
  const size_t n = sizeof(cases) / sizeof(cases[0]);
  fx *f = *state;
  maild_store_result res;
  char box[300];
  size_t i;

  fx_open(f);
  for (i = 0; i < n; i++) {
    assert_int_equal(deliver(f, NULL, "example.org", cases[i].local, &res), 0);
    snprintf(box, sizeof(box), "example.org/%s", cases[i].dir);
    assert_box_exists(f, box);
  }
  /* One directory per address: none shared. */
  assert_int_equal(count_tree(f, "root/example.org"), n * 5);
  /* Domains are encoded the same way (address literals). */
  assert_int_equal(deliver(f, NULL, "[IPv6:2001:DB8::1]", "x", &res), 0);
  assert_box_exists(f, "%5Bipv6%3A2001%3Adb8%3A%3A1%5D/x");
  assert_base_clean(f, 0);
}

/* ---- Symlinks and non-directories ------------------------------------- */

/* O_NOFOLLOW|O_DIRECTORY on a symlink: Linux says ENOTDIR, POSIX ELOOP. */
static void assert_symlink_errno(int err) {
  assert_true(err == ELOOP || err == ENOTDIR);
}

static void test_symlink_refused(void **state) {
  fx *f = *state;
  maild_store_result res;
  char target[128];

  fx_open(f);
  assert_int_equal(mkdirat(f->base_fd, "outside", 0700), 0);
  snprintf(target, sizeof(target), "%s/outside", f->base);
  /* The mailbox directory itself. */
  assert_int_equal(mkdirat(f->base_fd, "root/example.org", 0700), 0);
  assert_int_equal(symlinkat(target, f->base_fd, "root/example.org/bob"), 0);
  assert_int_equal(deliver(f, "msg", "example.org", "bob", &res), MAILD_ERR_IO);
  assert_symlink_errno(res.sys_errno);
  assert_int_equal(deliver(f, NULL, "example.org", "BOB", &res), MAILD_ERR_IO);
  /* A domain directory. */
  assert_int_equal(symlinkat(target, f->base_fd, "root/evil.org"), 0);
  assert_int_equal(deliver(f, NULL, "evil.org", "alice", &res), MAILD_ERR_IO);
  assert_symlink_errno(res.sys_errno);
  /* new/ inside a real mailbox. */
  assert_int_equal(deliver(f, NULL, "example.org", "carol", &res), 0);
  rm_tree_at(f->base_fd, "root/example.org/carol/new");
  assert_int_equal(symlinkat(target, f->base_fd, "root/example.org/carol/new"),
                   0);
  assert_int_equal(deliver(f, NULL, "example.org", "carol", &res),
                   MAILD_ERR_IO);
  assert_symlink_errno(res.sys_errno);
  assert_int_equal(count_tree(f, "root/example.org/carol/tmp"), 0);
  /* A regular file where a directory should be. */
  write_file_at(f->base_fd, "root/example.org/dave", "x", 1);
  assert_int_equal(deliver(f, NULL, "example.org", "dave", &res), MAILD_ERR_IO);
  assert_int_equal(res.sys_errno, ENOTDIR);
  /* Nothing reached the target. */
  assert_int_equal(count_tree(f, "outside"), 0);
  assert_base_clean(f, 1);
}

/* ---- M4: quota -------------------------------------------------------- */

static void test_quota(void **state) {
  fx *f = *state;
  maild_store_result res;
  uint64_t sz = f->msg_size;
  char legacy[40];
  int dfd;

  f->cfg.quota = 2 * sz;
  fx_open(f);
  assert_int_equal(deliver(f, NULL, "example.org", "q", &res), 0);
  assert_int_equal(res.quota, 2 * sz);
  assert_int_equal(res.used, 0);
  /* Exactly at the limit: accepted. */
  assert_int_equal(deliver(f, "msg", "example.org", "q", &res), 0);
  assert_int_equal(res.used, sz);
  /* One octet past: refused, nothing left behind. */
  assert_int_equal(deliver(f, NULL, "example.org", "q", &res), MAILD_ERR_LIMIT);
  assert_int_equal(res.quota, 2 * sz);
  assert_int_equal(res.used, 2 * sz);
  assert_string_equal(res.id, "");
  assert_int_equal(deliver(f, "msg", "example.org", "q", &res),
                   MAILD_ERR_LIMIT);
  assert_int_equal(count_tree(f, "root/example.org/q/new"), 2);
  assert_int_equal(count_tree(f, "root/example.org/q/tmp"), 0);
  assert_int_equal(count_tree(f, "root/example.org/q/cur"), 0);

  /* Limit one octet smaller: the second message no longer fits. */
  f->cfg.quota = 2 * sz - 1;
  fx_open(f);
  assert_int_equal(deliver(f, NULL, "example.org", "r", &res), 0);
  assert_int_equal(deliver(f, NULL, "example.org", "r", &res), MAILD_ERR_LIMIT);
  assert_int_equal(count_tree(f, "root/example.org/r/new"), 1);
  assert_int_equal(count_tree(f, "root/example.org/r/tmp"), 0);

  /* cur/ counts too: a tagged name with flags, an untagged file (stat)
     and a dot file (ignored). */
  f->cfg.quota = 3 * sz + 500 + sizeof(legacy) - 1;
  fx_open(f);
  assert_int_equal(deliver(f, NULL, "example.org", "s", &res), 0);
  dfd = openat(f->base_fd, "root/example.org/s/cur", O_RDONLY | O_DIRECTORY);
  assert_true(dfd >= 0);
  write_file_at(dfd, "1.M1P1.h,S=500:2,S", "", 0);
  memset(legacy, 'L', sizeof(legacy));
  write_file_at(dfd, "2.legacy:2,", legacy, sizeof(legacy));
  write_file_at(dfd, ".hidden,S=900", "", 0);
  close(dfd);
  assert_int_equal(deliver(f, NULL, "example.org", "s", &res), 0);
  assert_int_equal(res.used, sz + 500 + sizeof(legacy));
  assert_int_equal(deliver(f, NULL, "example.org", "s", &res), MAILD_ERR_LIMIT);
  assert_int_equal(count_tree(f, "root/example.org/s/new"), 2);
}

static uint64_t quota_by_user(const char *domain, const char *local, void *ud) {
  fx *f = ud;
  assert_string_equal(domain, "example.org");
  if (strcmp(local, "small") == 0)
    return f->msg_size - 1;
  return 0; /* no limit */
}

static void test_quota_callback(void **state) {
  fx *f = *state;
  maild_store_result res;

  f->cfg.quota = 1; /* overridden by the callback */
  f->cfg.quota_of = quota_by_user;
  fx_open(f);
  assert_int_equal(deliver(f, NULL, "Example.org", "SMALL", &res),
                   MAILD_ERR_LIMIT);
  assert_int_equal(res.quota, f->msg_size - 1);
  assert_int_equal(count_tree(f, "root/example.org/small/new"), 0);
  assert_int_equal(count_tree(f, "root/example.org/small/tmp"), 0);
  assert_int_equal(deliver(f, NULL, "example.org", "big", &res), 0);
  assert_int_equal(res.quota, 0);
}

/* ---- Construction and allocation failures ----------------------------- */

static void test_new_errors(void **state) {
  fx *f = *state;
  maild_store_maildir_config cfg;
  maild_store_result res;
  maild_store *st = NULL;
  char path[200];

  assert_int_equal(maild_store_maildir_new(NULL, f->root, NULL, NULL),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_store_maildir_new(&st, NULL, NULL, NULL),
                   MAILD_ERR_INVAL);
  assert_null(st);
  snprintf(path, sizeof(path), "%s/nonexistent", f->base);
  assert_int_equal(maild_store_maildir_new(&st, path, NULL, NULL),
                   MAILD_ERR_NOT_FOUND);
  snprintf(path, sizeof(path), "%s/spool/msg", f->base);
  assert_int_equal(maild_store_maildir_new(&st, path, NULL, NULL),
                   MAILD_ERR_IO);
  memset(&cfg, 0, sizeof(cfg));
  cfg.hostname = "";
  assert_int_equal(maild_store_maildir_new(&st, f->root, &cfg, NULL),
                   MAILD_ERR_INVAL);
  cfg.hostname =
      "a23456789012345678901234567890123456789012345678901234567890123456";
  assert_int_equal(maild_store_maildir_new(&st, f->root, &cfg, NULL),
                   MAILD_ERR_INVAL);
  assert_null(st);
  /* Defaults: real clock, gethostname(). */
  assert_int_equal(maild_store_maildir_new(&st, f->root, NULL, NULL), 0);
  maild_store_del(st);
  /* Separators in the host name are escaped. */
  f->cfg.hostname = "h/x:y,z\\w";
  fx_open(f);
  assert_int_equal(deliver(f, NULL, "example.org", "h", &res), 0);
  assert_name_format(res.id, "h\\057x\\072y\\054z\\134w", f->msg_size);
}

static void test_alloc_failure_sweep(void **state) {
  fx *f = *state;
  maild_store_result res;
  maild_store *st;
  size_t n, ok = 0;
  testmem tm;
  int rc;

  for (n = 1; n < 100; n++) {
    maild_store_message m = fx_msg(f, NULL);
    testmem_init(&tm, n);
    st = NULL;
    rc = maild_store_maildir_new(&st, f->root, &f->cfg, &tm.mem);
    if (rc == 0) {
      rc = maild_store_deliver(st, &m, "example.org", 11, "sweep", 5, &res);
      if (rc == 0)
        ok++;
      maild_store_del(st);
    } else {
      assert_null(st);
    }
    assert_true(rc == 0 || rc == MAILD_ERR_NOMEM);
    assert_int_equal(tm.live, 0);
    assert_int_equal(count_tree(f, "root/example.org/sweep/tmp"), 0);
    assert_int_equal(count_tree(f, "root/example.org/sweep/new"), ok);
    if (tm.failures == 0)
      break;
  }
  assert_true(n >= 4); /* backend, store, copy buffer all failed once */
  assert_int_equal(ok, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
      T(test_copy_delivery),
      T(test_link_delivery),
      T(test_no_sync_and_withdraw),
      T(test_link_fallback),
      T(test_short_content),
      T(test_thousand_in_one_second),
      T(test_name_collision),
      T(test_concurrent_deliveries),
      T(test_unsafe_addresses),
      T(test_case_folding),
      T(test_encoding_injective),
      T(test_symlink_refused),
      T(test_quota),
      T(test_quota_callback),
      T(test_new_errors),
      T(test_alloc_failure_sweep),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
