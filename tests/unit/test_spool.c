/*
 * Unit tests for the durable spool (TESTPLAN D1, D2, D3, D5, D6): the order
 * of the calls behind a commit, a failure injected at every call, a real
 * kill -9 (a forked child SIGKILLs itself) before and after every call
 * followed by a restart scan, and the scan's handling of temporary,
 * truncated, bit-flipped, garbage and orphaned files. Each test works in its
 * own directory under /tmp and removes it.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "maild/error.h"
#include "maild/esmtp.h"
#include "core/crc32.h"
#include "queue/spool.h"
#include "testmem.h"

#define ARRIVAL  INT64_C(1700000000123456)
#define MSG_SIZE (150u * 1024u) /* spans a few writer buffers */

/* ---- Temporary directories ----------------------------------------------- */

static void remove_tree_at(int dirfd, const char *name) {
  struct stat st;
  struct dirent *de;
  DIR *d;
  int fd;

  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return;
  if (!S_ISDIR(st.st_mode)) {
    assert_int_equal(unlinkat(dirfd, name, 0), 0);
    return;
  }
  fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  assert_true(fd >= 0);
  d = fdopendir(fd);
  assert_non_null(d);
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      remove_tree_at(fd, de->d_name);
  closedir(d);
  assert_int_equal(unlinkat(dirfd, name, AT_REMOVEDIR), 0);
}

static char *make_tmpdir(void) {
  char *dir = strdup("/tmp/maild-spool-test-XXXXXX");
  assert_non_null(dir);
  assert_non_null(mkdtemp(dir));
  return dir;
}

static void remove_tmpdir(char *dir) {
  remove_tree_at(AT_FDCWD, dir);
  free(dir);
}

/* Number of entries in dir/sub (0 if it does not exist). */
static int count_files(const char *dir, const char *sub) {
  char path[512];
  struct dirent *de;
  DIR *d;
  int n = 0;

  snprintf(path, sizeof(path), "%s/%s", dir, sub);
  d = opendir(path);
  if (d == NULL)
    return 0;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      n++;
  closedir(d);
  return n;
}

static int file_exists(const char *dir, const char *sub, const char *name) {
  char path[512];
  struct stat st;
  if (snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name) >=
      (int)sizeof(path))
    return 0;
  return lstat(path, &st) == 0;
}

static void write_file(const char *dir, const char *sub, const char *name,
                       const void *data, size_t len) {
  char path[512];
  int fd;

  snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close(fd);
}

/* Reads dir/sub/name into a malloc'd buffer. */
static uint8_t *read_file(const char *dir, const char *sub, const char *name,
                          size_t *len) {
  char path[512];
  struct stat st;
  uint8_t *p;
  int fd;

  snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
  fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(fstat(fd, &st), 0);
  p = malloc((size_t)st.st_size + 1);
  assert_non_null(p);
  assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
  close(fd);
  *len = (size_t)st.st_size;
  return p;
}

static void unlink_in(const char *dir, const char *sub, const char *name) {
  char path[512];

  snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
  assert_int_equal(unlink(path), 0);
}

static void clear_dir(const char *dir, const char *sub) {
  char path[512];
  int fd;
  struct dirent *de;
  DIR *d;

  snprintf(path, sizeof(path), "%s/%s", dir, sub);
  fd = open(path, O_RDONLY | O_DIRECTORY);
  assert_true(fd >= 0);
  d = fdopendir(fd);
  assert_non_null(d);
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      remove_tree_at(fd, de->d_name);
  closedir(d);
}

/* ---- Recording, failing and killing system-call hooks ---------------------
 */

#define MAX_LOG 512

typedef struct rec {
  int calls;   /* hooked calls so far */
  int fail_at; /* 1-based call that fails with fail_errno; 0 = none */
  int fail_errno;
  int kill_at;     /* 1-based call at which the process SIGKILLs itself */
  int kill_after;  /* ... after doing the call (else before) */
  int real_fsync;  /* 0: fsync does nothing (fast bulk tests) */
  int store_calls; /* calls made by store_hooked()'s store */
  int failed_call; /* the call that failed, 0 if none */
  int nlog;
  char log[MAX_LOG][24];
  char fdkind[1024][8]; /* "msg", "env", "queue", "tmp"... by descriptor */
} rec;

static const char *kind_of_name(const char *name) {
  size_t n = strlen(name);
  if (n > 4 && strcmp(name + n - 4, ".msg") == 0)
    return "msg";
  if (n > 4 && strcmp(name + n - 4, ".env") == 0)
    return "env";
  if (strcmp(name, "queue") == 0 || strcmp(name, "tmp") == 0 ||
      strcmp(name, "corrupt") == 0)
    return name;
  return "other";
}

static const char *kind_of_fd(rec *r, int fd) {
  if (fd >= 0 && fd < 1024 && r->fdkind[fd][0] != '\0')
    return r->fdkind[fd];
  return "other";
}

/* Counts a call; returns 1 if it must fail (errno set). */
static int step(rec *r, const char *what, const char *kind) {
  int n = ++r->calls;

  if (r->nlog < MAX_LOG)
    snprintf(r->log[r->nlog++], sizeof(r->log[0]), "%s %s", what, kind);
  if (r->kill_at == n && !r->kill_after)
    raise(SIGKILL);
  if (r->fail_at == n) {
    r->failed_call = n;
    errno = r->fail_errno;
    return 1;
  }
  return 0;
}

static void after(rec *r) {
  if (r->kill_at == r->calls && r->kill_after)
    raise(SIGKILL);
}

static int h_openat(int dirfd, const char *name, int flags, mode_t mode,
                    void *ud) {
  rec *r = ud;
  int fd;
  if (step(r, "openat", kind_of_name(name)))
    return -1;
  fd = openat(dirfd, name, flags, mode);
  if (fd >= 0 && fd < 1024)
    snprintf(r->fdkind[fd], sizeof(r->fdkind[0]), "%s", kind_of_name(name));
  after(r);
  return fd;
}

static ssize_t h_write(int fd, const void *p, size_t n, void *ud) {
  rec *r = ud;
  ssize_t k;
  if (step(r, "write", kind_of_fd(r, fd)))
    return -1;
  k = write(fd, p, n);
  after(r);
  return k;
}

static int h_fsync(int fd, void *ud) {
  rec *r = ud;
  int rc = 0;
  if (step(r, "fsync", kind_of_fd(r, fd)))
    return -1;
  if (r->real_fsync)
    rc = fsync(fd);
  after(r);
  return rc;
}

static int h_renameat(int a, const char *from, int b, const char *to,
                      void *ud) {
  rec *r = ud;
  int rc;
  if (step(r, "rename", kind_of_name(from)))
    return -1;
  rc = renameat(a, from, b, to);
  after(r);
  return rc;
}

static int h_unlinkat(int dirfd, const char *name, int flags, void *ud) {
  rec *r = ud;
  int rc;
  if (step(r, "unlink", kind_of_name(name)))
    return -1;
  rc = unlinkat(dirfd, name, flags);
  after(r);
  return rc;
}

static int h_close(int fd, void *ud) {
  rec *r = ud;
  const char *k = kind_of_fd(r, fd);
  int rc;
  if (step(r, "close", k))
    return -1;
  if (fd >= 0 && fd < 1024)
    r->fdkind[fd][0] = '\0';
  rc = close(fd);
  after(r);
  return rc;
}

/* Hooks recording into `r` as it is. */
static maild_spool_ops hook_ops(rec *r) {
  maild_spool_ops ops;
  ops.user_data = r;
  ops.openat = h_openat;
  ops.write = h_write;
  ops.fsync = h_fsync;
  ops.renameat = h_renameat;
  ops.unlinkat = h_unlinkat;
  ops.close = h_close;
  return ops;
}

/* Hooks recording into a cleared `r`. */
static maild_spool_ops hooks(rec *r) {
  memset(r, 0, sizeof(*r));
  return hook_ops(r);
}

/* ---- A message and its envelope ----------------------------------------- */

static uint8_t *message(size_t len, unsigned seed) {
  static const char rp[] = "Return-Path: <sender@example.com>\r\n";
  uint8_t *p = malloc(len);
  size_t i;

  assert_non_null(p);
  for (i = 0; i < len; i++)
    p[i] = (uint8_t)(i * 31u + seed);
  memcpy(p, rp, sizeof(rp) - 1);
  return p;
}

static maild_envelope_rcpt env_rcpts[2] = {
    {"alice@example.org", "rfc822", "alice@example.org", MAILD_NOTIFY_FAILURE,
     MAILD_RCPT_PENDING},
    {"bob@example.net", "", "", 0, MAILD_RCPT_PENDING},
};

static void envelope(maild_envelope *e) {
  memset(e, 0, sizeof(*e));
  e->sender = "sender@example.com";
  e->envid = "";
  e->client_addr = "192.0.2.7";
  e->client_helo = "client.example";
  e->auth_id = "sender";
  e->return_path_len = 35;
  e->body = MAILD_BODY_8BITMIME;
  e->nrcpt = 2;
  e->rcpt = env_rcpts;
}

static uint32_t rand_fixed(void *ud) {
  return *(uint32_t *)ud;
}

/* Returns the values of an array in turn (ud points at a cursor). */
typedef struct rand_seq {
  const uint32_t *v;
  int n, i, calls;
} rand_seq;

static uint32_t rand_next(void *ud) {
  rand_seq *s = ud;
  s->calls++;
  return s->v[s->i < s->n - 1 ? s->i++ : s->i];
}

/*
 * Writes `len` octets in uneven pieces and commits. Returns the first
 * error (the rest of the message is still written, as the runtime does
 * after a failed write: it reads to the final dot).
 */
static int store(maild_spool *sp, const uint8_t *msg, size_t len, uint32_t rnd,
                 char id[MAILD_SPOOL_ID_LEN + 1]) {
  maild_spool_writer *w;
  maild_envelope e;
  size_t off = 0, n, piece = 1000;
  int rc, first = 0;

  rc = maild__spool_begin(sp, ARRIVAL, rand_fixed, &rnd, &w);
  if (rc != 0)
    return rc;
  while (off < len) {
    n = len - off < piece ? len - off : piece;
    rc = maild__spool_write(w, msg + off, n);
    if (rc != 0 && first == 0)
      first = rc;
    off += n;
    piece = piece * 3 + 1; /* 1000, 3001, 9004, 27013, 81040 */
  }
  envelope(&e);
  rc = maild__spool_commit(w, &e, id);
  return first != 0 ? first : rc;
}

/* ---- Scan results ---------------------------------------------------------
 */

typedef struct found {
  int valid, temp, orphan, corrupt;
  char valid_id[4][MAILD_SPOOL_ID_LEN + 1];
  char reason[128];
  char moved_to[256];
  int stop_with; /* returned by the callback when nonzero */
  maild_envelope *kept;
} found;

static int on_item(maild_spool_scan_item *it, void *ud) {
  found *f = ud;

  switch (it->kind) {
  case MAILD_SPOOL_VALID:
    assert_non_null(it->env);
    assert_null(it->reason);
    assert_string_equal(it->env->id, it->id);
    if (f->valid < 4)
      snprintf(f->valid_id[f->valid], sizeof(f->valid_id[0]), "%s", it->id);
    f->valid++;
    if (f->kept == NULL) {
      f->kept = it->env; /* keep one: the scan must not free it */
      it->env = NULL;
    }
    break;
  case MAILD_SPOOL_TEMP:
    f->temp++;
    break;
  case MAILD_SPOOL_ORPHAN:
    f->orphan++;
    break;
  case MAILD_SPOOL_CORRUPT:
    f->corrupt++;
    break;
  }
  if (it->kind != MAILD_SPOOL_VALID) {
    assert_non_null(it->reason);
    assert_non_null(it->moved_to);
    assert_null(it->env);
    snprintf(f->reason, sizeof(f->reason), "%s", it->reason);
    snprintf(f->moved_to, sizeof(f->moved_to), "%s", it->moved_to);
  }
  return f->stop_with;
}

static found scan_fresh(const char *dir, const maild_spool_ops *ops) {
  maild_spool *sp;
  found f;

  memset(&f, 0, sizeof(f));
  assert_int_equal(maild__spool_open(&sp, dir, ops, NULL), 0);
  assert_int_equal(maild__spool_scan(sp, on_item, &f), 0);
  maild__spool_envelope_free(sp, f.kept);
  f.kept = NULL;
  maild__spool_close(sp);
  return f;
}

/* ---- Tests ------------------------------------------------------------------
 */

static void test_open_creates_layout(void **state) {
  char *dir = make_tmpdir(), sub[512];
  maild_spool *sp;
  struct stat st;
  uint64_t avail = 0;
  (void)state;

  snprintf(sub, sizeof(sub), "%s/spool", dir);
  assert_int_equal(maild__spool_open(&sp, sub, NULL, NULL), 0);
  assert_int_equal(stat(sub, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_true(file_exists(sub, "", "tmp"));
  assert_true(file_exists(sub, "", "queue"));
  assert_true(file_exists(sub, "", "corrupt"));
  snprintf(sub, sizeof(sub), "%s/spool/queue", dir);
  assert_int_equal(stat(sub, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_int_equal(maild__spool_space(sp, &avail), 0);
  assert_true(avail > 0);
  assert_true(maild__spool_queue_fd(sp) >= 0);
  maild__spool_close(sp);
  maild__spool_close(NULL);
  /* Reopening an existing spool works; a missing parent does not. */
  snprintf(sub, sizeof(sub), "%s/spool", dir);
  assert_int_equal(maild__spool_open(&sp, sub, NULL, NULL), 0);
  maild__spool_close(sp);
  snprintf(sub, sizeof(sub), "%s/no/such/spool", dir);
  assert_int_equal(maild__spool_open(&sp, sub, NULL, NULL), MAILD_ERR_IO);
  assert_int_equal(errno, ENOENT);
  assert_null(sp);
  assert_int_equal(maild__spool_open(&sp, "", NULL, NULL), MAILD_ERR_INVAL);
  remove_tmpdir(dir);
}

static void test_commit_load_read_remove(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1], name[64];
  char path[512];
  uint8_t *msg = message(MSG_SIZE, 1), *got;
  maild_spool *sp;
  maild_envelope *e;
  size_t len;
  struct stat st;
  int fd;
  (void)state;

  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  assert_int_equal(store(sp, msg, MSG_SIZE, 0xdeadbeefu, id), 0);
  /* 16 hex digits of the time, then 8 of the random value. */
  assert_string_equal(id, "00060a2418202240deadbeef");
  assert_int_equal(count_files(dir, "tmp"), 0);
  assert_int_equal(count_files(dir, "queue"), 2);
  got = read_file(dir, "queue", "00060a2418202240deadbeef.msg", &len);
  assert_int_equal(len, MSG_SIZE);
  assert_memory_equal(got, msg, MSG_SIZE);
  free(got);
  snprintf(path, sizeof(path), "%s/queue/%s.env", dir, id);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);

  assert_int_equal(maild__spool_load(sp, id, &e), 0);
  assert_string_equal(e->id, id);
  assert_true(e->arrival_usec == ARRIVAL);
  assert_true(e->msg_size == MSG_SIZE);
  assert_int_equal(e->msg_crc32, maild__crc32(0, msg, MSG_SIZE));
  assert_int_equal(e->return_path_len, 35);
  assert_string_equal(e->sender, "sender@example.com");
  assert_string_equal(e->auth_id, "sender");
  assert_int_equal(e->nrcpt, 2);
  assert_string_equal(e->rcpt[1].addr, "bob@example.net");

  /* Record a recipient's state durably. */
  e->rcpt[0].state = MAILD_RCPT_DONE;
  assert_int_equal(maild__spool_update(sp, e, 0), 0);
  maild__spool_envelope_free(sp, e);
  assert_int_equal(maild__spool_load(sp, id, &e), 0);
  assert_int_equal(e->rcpt[0].state, MAILD_RCPT_DONE);
  assert_int_equal(e->rcpt[1].state, MAILD_RCPT_PENDING);
  maild__spool_envelope_free(sp, e);
  assert_int_equal(count_files(dir, "tmp"), 0);

  /* Hard link the content the way a Maildir on this filesystem would. */
  assert_int_equal(maild__spool_msg_name(id, name), 0);
  assert_string_equal(name, "00060a2418202240deadbeef.msg");
  snprintf(path, sizeof(path), "%s/linked", dir);
  assert_int_equal(linkat(maild__spool_queue_fd(sp), name, AT_FDCWD, path, 0),
                   0);
  assert_int_equal(maild__spool_open_msg(sp, id, &fd), 0);
  assert_int_equal(fstat(fd, &st), 0);
  assert_int_equal(st.st_size, MSG_SIZE);
  assert_int_equal(st.st_nlink, 2);
  close(fd);

  assert_int_equal(maild__spool_remove(sp, id), 0);
  assert_int_equal(count_files(dir, "queue"), 0);
  assert_int_equal(maild__spool_remove(sp, id), MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild__spool_load(sp, id, &e), MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild__spool_update(sp, &(maild_envelope){.id = ""}, 0),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild__spool_open_msg(sp, id, &fd), MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild__spool_open_msg(sp, "../x", &fd), MAILD_ERR_INVAL);
  assert_int_equal(maild__spool_msg_name("nope", name), MAILD_ERR_INVAL);
  assert_int_equal(maild__spool_load(sp, "0123", &e), MAILD_ERR_INVAL);
  assert_int_equal(maild__spool_remove(sp, "0123"), MAILD_ERR_INVAL);
  maild__spool_close(sp);
  unlink(path);
  free(msg);
  remove_tmpdir(dir);
}

/* Group commit: staged messages become valid only once published, and the
   barrier is the one place they are made durable. */
static void test_group_commit(void **state) {
  char *dir = make_tmpdir();
  maild_spool *sp;
  maild_spool_writer *w[3];
  maild_envelope e;
  char id[3][MAILD_SPOOL_ID_LEN + 1];
  uint8_t *msg = message(5000, 7);
  uint32_t rnd[3] = {1, 2, 3};
  maild_envelope *loaded;
  found f;
  int i;

  (void)state;
  envelope(&e);
  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  for (i = 0; i < 3; i++) {
    assert_int_equal(
        maild__spool_begin(sp, ARRIVAL, rand_fixed, &rnd[i], &w[i]), 0);
    assert_int_equal(maild__spool_write(w[i], msg, 5000), 0);
    assert_int_equal(maild__spool_stage(w[i], &e), 0);
    assert_int_equal(maild__spool_stage(w[i], &e), MAILD_ERR_INVAL);
  }
  /* Staged: both files in tmp/, nothing in queue/. */
  assert_int_equal(count_files(dir, "tmp"), 6);
  assert_int_equal(count_files(dir, "queue"), 0);
  assert_int_equal(maild__spool_sync(sp), 0);
  assert_int_equal(maild__spool_publish(w[0], id[0]), 0);
  assert_int_equal(maild__spool_publish(w[1], id[1]), 0);
  maild__spool_abort(w[2]); /* e.g. its client went away */
  assert_int_equal(maild__spool_sync(sp), 0);
  assert_int_equal(count_files(dir, "tmp"), 0);
  assert_int_equal(count_files(dir, "queue"), 4);
  assert_int_equal(maild__spool_load(sp, id[1], &loaded), 0);
  assert_int_equal(loaded->msg_size, 5000);
  maild__spool_envelope_free(sp, loaded);
  maild__spool_close(sp);
  f = scan_fresh(dir, NULL);
  assert_int_equal(f.valid, 2);
  assert_int_equal(f.temp + f.orphan + f.corrupt, 0);
  free(msg);
  remove_tmpdir(dir);
}

/* A crash between stage and publish leaves only tmp/ files: never
   delivered, set aside at the next start. */
static void test_staged_but_not_published(void **state) {
  char *dir = make_tmpdir();
  maild_spool *sp;
  maild_spool_writer *w;
  maild_envelope e;
  uint8_t *msg = message(300, 9);
  uint32_t rnd = 5;
  found f;

  (void)state;
  envelope(&e);
  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  assert_int_equal(maild__spool_begin(sp, ARRIVAL, rand_fixed, &rnd, &w), 0);
  assert_int_equal(maild__spool_write(w, msg, 300), 0);
  assert_int_equal(maild__spool_stage(w, &e), 0);
  assert_int_equal(maild__spool_sync(sp), 0);
  /* The process dies here: the writer is never published nor aborted. */
  free(w); /* (simulated: its memory goes with the process) */
  maild__spool_close(sp);
  f = scan_fresh(dir, NULL);
  assert_int_equal(f.valid, 0);
  assert_int_equal(f.temp, 2);
  assert_int_equal(count_files(dir, "tmp"), 0);
  free(msg);
  remove_tmpdir(dir);
}

static void test_update_of_removed_message(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  uint8_t *msg = message(100, 2);
  maild_spool *sp;
  maild_envelope *e;
  (void)state;

  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  assert_int_equal(store(sp, msg, 100, 7, id), 0);
  assert_int_equal(maild__spool_load(sp, id, &e), 0);
  assert_int_equal(maild__spool_remove(sp, id), 0);
  assert_int_equal(maild__spool_update(sp, e, 0), MAILD_ERR_NOT_FOUND);
  assert_int_equal(count_files(dir, "queue"), 0);
  maild__spool_envelope_free(sp, e);
  maild__spool_close(sp);
  free(msg);
  remove_tmpdir(dir);
}

static void test_empty_message_and_abort(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  maild_spool *sp;
  maild_spool_writer *w;
  maild_envelope e;
  uint32_t rnd = 1;
  found f;
  (void)state;

  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  /* An empty message with an empty Return-Path is storable. */
  assert_int_equal(maild__spool_begin(sp, 5, rand_fixed, &rnd, &w), 0);
  envelope(&e);
  e.return_path_len = 0;
  assert_int_equal(maild__spool_commit(w, &e, id), 0);
  assert_string_equal(id, "000000000000000500000001");
  /* Abort leaves nothing. */
  rnd = 2;
  assert_int_equal(maild__spool_begin(sp, 5, rand_fixed, &rnd, &w), 0);
  assert_string_equal(maild__spool_writer_id(w), "000000000000000500000002");
  assert_int_equal(count_files(dir, "tmp"), 1);
  assert_int_equal(maild__spool_write(w, "abc", 3), 0);
  maild__spool_abort(w);
  maild__spool_abort(NULL);
  assert_int_equal(count_files(dir, "tmp"), 0);
  /* A bad envelope is refused and leaves nothing either. */
  rnd = 3;
  assert_int_equal(maild__spool_begin(sp, 5, rand_fixed, &rnd, &w), 0);
  assert_int_equal(maild__spool_write(w, "abc", 3), 0);
  e.return_path_len = 4; /* longer than the message */
  assert_int_equal(maild__spool_commit(w, &e, id), MAILD_ERR_INVAL);
  assert_int_equal(count_files(dir, "tmp"), 0);
  assert_int_equal(count_files(dir, "queue"), 2);
  assert_int_equal(maild__spool_begin(sp, -1, rand_fixed, &rnd, &w),
                   MAILD_ERR_INVAL);
  maild__spool_close(sp);
  f = scan_fresh(dir, NULL);
  assert_int_equal(f.valid, 1);
  assert_int_equal(f.temp + f.orphan + f.corrupt, 0);
  remove_tmpdir(dir);
}

static void test_id_collisions(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  static const uint32_t same[] = {0x11111111u};
  static const uint32_t seq[] = {0x11111111u, 0x11111111u, 0x22222222u};
  uint8_t *msg = message(64, 3);
  maild_spool *sp;
  maild_spool_writer *w1, *w2;
  rand_seq s;
  (void)state;

  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  /* Same id as a writer in progress (tmp/): every try collides. */
  s = (rand_seq){same, 1, 0, 0};
  assert_int_equal(maild__spool_begin(sp, ARRIVAL, rand_next, &s, &w1), 0);
  s = (rand_seq){same, 1, 0, 0};
  assert_int_equal(maild__spool_begin(sp, ARRIVAL, rand_next, &s, &w2),
                   MAILD_ERR_EXISTS);
  assert_int_equal(s.calls, MAILD_SPOOL_ID_TRIES);
  assert_null(w2);
  /* A fresh value after two collisions is taken. */
  s = (rand_seq){seq, 3, 0, 0};
  assert_int_equal(maild__spool_begin(sp, ARRIVAL, rand_next, &s, &w2), 0);
  assert_int_equal(s.calls, 3);
  assert_string_equal(maild__spool_writer_id(w2), "00060a241820224022222222");
  maild__spool_abort(w2);
  assert_int_equal(maild__spool_write(w1, msg, 64), 0);
  {
    maild_envelope e;
    envelope(&e);
    assert_int_equal(maild__spool_commit(w1, &e, id), 0);
  }
  /* Same id as a committed message (queue/): never overwrites it. */
  s = (rand_seq){seq, 3, 0, 0};
  assert_int_equal(maild__spool_begin(sp, ARRIVAL, rand_next, &s, &w2), 0);
  assert_string_equal(maild__spool_writer_id(w2), "00060a241820224022222222");
  maild__spool_abort(w2);
  assert_int_equal(count_files(dir, "queue"), 2);
  assert_int_equal(count_files(dir, "tmp"), 0);
  maild__spool_close(sp);
  free(msg);
  remove_tmpdir(dir);
}

/* Drops consecutive repeats ("write msg" x 3 -> once). */
static int squeeze(rec *r, const char **out, int max) {
  int i, n = 0;
  for (i = 0; i < r->nlog && n < max; i++)
    if (n == 0 || strcmp(out[n - 1], r->log[i]) != 0)
      out[n++] = r->log[i];
  return n;
}

/* D2: file fsync, rename, directory fsync, in that order, before success. */
static void test_commit_call_order(void **state) {
  static const char *want[] = {
      "write msg", "fsync msg", "close msg", "rename msg", "openat env",
      "write env", "fsync env", "close env", "rename env", "fsync queue"};
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  uint8_t *msg = message(MSG_SIZE, 4);
  maild_spool_ops ops;
  maild_spool_writer *w;
  maild_spool *sp;
  maild_envelope e;
  const char *got[64];
  uint32_t rnd = 9;
  rec *r = malloc(sizeof(*r));
  int i, n;
  (void)state;

  ops = hooks(r);
  r->real_fsync = 1;
  assert_int_equal(maild__spool_open(&sp, dir, &ops, NULL), 0);
  assert_int_equal(maild__spool_begin(sp, ARRIVAL, rand_fixed, &rnd, &w), 0);
  assert_string_equal(r->log[r->nlog - 1], "openat msg");
  assert_int_equal(maild__spool_write(w, msg, 100), 0);
  assert_int_equal(maild__spool_write(w, msg + 100, MSG_SIZE - 110), 0);
  assert_int_equal(maild__spool_write(w, msg + MSG_SIZE - 10, 10), 0);
  r->nlog = 0;
  envelope(&e);
  assert_int_equal(maild__spool_commit(w, &e, id), 0);
  n = squeeze(r, got, 64);
  assert_int_equal(n, 10);
  for (i = 0; i < n; i++)
    assert_string_equal(got[i], want[i]);
  maild__spool_close(sp);
  free(r);
  free(msg);
  remove_tmpdir(dir);
}

/*
 * Runs begin + writes + commit with hooks `r` (fail_at / kill_at set by the
 * caller, counted from begin on: opening the spool is not counted).
 */
static int store_hooked(const char *dir, rec *r, const uint8_t *msg,
                        char id[MAILD_SPOOL_ID_LEN + 1]) {
  maild_spool_ops ops = hook_ops(r);
  maild_spool *sp;
  int rc, fail_at = r->fail_at, kill_at = r->kill_at;

  r->fail_at = r->kill_at = 0;
  assert_int_equal(maild__spool_open(&sp, dir, &ops, NULL), 0);
  r->calls = r->nlog = 0;
  r->fail_at = fail_at;
  r->kill_at = kill_at;
  rc = store(sp, msg, MSG_SIZE, 0xabcdef01u, id);
  r->store_calls = r->calls;
  maild__spool_close(sp);
  return rc;
}

/* Hooked calls of one nominal store, and the index of the env rename. */
static int nominal_calls(const uint8_t *msg, int *env_rename) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  rec *r = calloc(1, sizeof(*r));
  int i, n;

  assert_int_equal(store_hooked(dir, r, msg, id), 0);
  n = r->store_calls;
  *env_rename = 0;
  for (i = 0; i < r->nlog; i++)
    if (strcmp(r->log[i], "rename env") == 0)
      *env_rename = i + 1;
  assert_true(*env_rename > 0);
  assert_string_equal(r->log[n - 1], "fsync queue");
  free(r);
  remove_tmpdir(dir);
  return n;
}

/*
 * D3 and D5: each call of a store fails in turn (EIO, and ENOSPC for the
 * writes). The store reports MAILD_ERR_IO with errno intact, no fsync is
 * ever tried after a failure, nothing of that id is left in tmp/ or queue/,
 * and the spool takes the next message.
 */
static void test_fail_every_call(void **state) {
  uint8_t *msg = message(MSG_SIZE, 5);
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  rec *r = calloc(1, sizeof(*r));
  maild_spool *sp;
  int total, env_rename, k, i, e;
  found f;
  (void)state;

  total = nominal_calls(msg, &env_rename);
  for (k = 1; k <= total; k++) {
    e = k % 2 ? ENOSPC : EIO;
    memset(r, 0, sizeof(*r));
    r->fail_at = k;
    r->fail_errno = e;
    errno = 0;
    assert_int_equal(store_hooked(dir, r, msg, id), MAILD_ERR_IO);
    assert_int_equal(r->failed_call, k);
    assert_int_equal(errno, e);
    for (i = k; i < r->nlog; i++)
      assert_true(strncmp(r->log[i], "fsync", 5) != 0);
    assert_int_equal(count_files(dir, "tmp"), 0);
    assert_int_equal(count_files(dir, "queue"), 0);
    /* Still usable. */
    assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
    assert_int_equal(store(sp, msg, MSG_SIZE, (uint32_t)k, id), 0);
    assert_int_equal(count_files(dir, "queue"), 2);
    assert_int_equal(maild__spool_remove(sp, id), 0);
    maild__spool_close(sp);
  }
  f = scan_fresh(dir, NULL);
  assert_int_equal(f.valid + f.temp + f.orphan + f.corrupt, 0);
  assert_int_equal(count_files(dir, "corrupt"), 0);
  free(r);
  free(msg);
  remove_tmpdir(dir);
}

/*
 * Recording a recipient's state fails at each call in turn: tmp/ is left
 * empty, and the envelope on disk is the old one unless the failure came
 * after the rename (the directory fsync), when it is the new one.
 */
static void test_update_fail_every_call(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  uint8_t *msg = message(300, 15);
  rec *r = malloc(sizeof(*r));
  maild_spool_ops ops;
  maild_spool *sp;
  maild_envelope *e, *now;
  int k, total = 0, rc;
  (void)state;

  ops = hooks(r);
  assert_int_equal(maild__spool_open(&sp, dir, &ops, NULL), 0);
  assert_int_equal(store(sp, msg, 300, 1, id), 0);
  assert_int_equal(maild__spool_load(sp, id, &e), 0);
  for (k = 1; total == 0 || k <= total; k++) {
    /* A state other than the one on disk. */
    assert_int_equal(maild__spool_load(sp, id, &now), 0);
    e->rcpt[1].state = now->rcpt[1].state == MAILD_RCPT_DONE ? MAILD_RCPT_FAILED
                                                             : MAILD_RCPT_DONE;
    maild__spool_envelope_free(sp, now);
    r->calls = 0;
    r->fail_at = total == 0 ? 0 : k;
    r->fail_errno = EIO;
    r->nlog = 0;
    rc = maild__spool_update(sp, e, 0);
    if (total == 0) { /* first round: count the calls */
      assert_int_equal(rc, 0);
      total = r->calls;
      assert_string_equal(r->log[total - 1], "fsync queue");
      assert_string_equal(r->log[total - 2], "rename env");
      k = 0;
      continue;
    }
    assert_int_equal(rc, MAILD_ERR_IO);
    assert_int_equal(errno, EIO);
    assert_int_equal(count_files(dir, "tmp"), 0);
    assert_int_equal(maild__spool_load(sp, id, &now), 0);
    assert_int_equal(now->rcpt[1].state == e->rcpt[1].state, k == total);
    maild__spool_envelope_free(sp, now);
  }
  maild__spool_envelope_free(sp, e);
  maild__spool_close(sp);
  free(r);
  free(msg);
  remove_tmpdir(dir);
}

/* D5: disk full in the middle of the data: the partial file goes at once. */
static void test_write_enospc(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  uint8_t *msg = message(MSG_SIZE, 6);
  rec *r = malloc(sizeof(*r));
  maild_spool_ops ops;
  maild_spool_writer *w;
  maild_spool *sp;
  maild_envelope e;
  uint32_t rnd = 1;
  int calls;
  (void)state;

  ops = hooks(r);
  assert_int_equal(maild__spool_open(&sp, dir, &ops, NULL), 0);
  assert_int_equal(maild__spool_begin(sp, ARRIVAL, rand_fixed, &rnd, &w), 0);
  r->fail_at = r->calls + 1;
  r->fail_errno = ENOSPC;
  assert_int_equal(maild__spool_write(w, msg, MSG_SIZE), MAILD_ERR_IO);
  assert_int_equal(errno, ENOSPC);
  assert_int_equal(maild__spool_writer_errno(w), ENOSPC);
  assert_true(maild__spool_errno_is_full(ENOSPC));
  assert_true(maild__spool_errno_is_full(EDQUOT));
  assert_false(maild__spool_errno_is_full(EIO));
  assert_int_equal(count_files(dir, "tmp"), 0);
  calls = r->calls;
  errno = 0;
  assert_int_equal(maild__spool_write(w, msg, 10), MAILD_ERR_IO);
  assert_int_equal(errno, ENOSPC);
  envelope(&e);
  assert_int_equal(maild__spool_commit(w, &e, id), MAILD_ERR_IO);
  assert_int_equal(errno, ENOSPC);
  assert_int_equal(r->calls, calls); /* no I/O after the failure */
  assert_int_equal(count_files(dir, "queue"), 0);
  maild__spool_close(sp);
  free(r);
  free(msg);
  remove_tmpdir(dir);
}

/*
 * D1: the process is killed (SIGKILL, in a forked child) before and after
 * each call of a store. After a restart scan the message is VALID exactly
 * when the envelope's rename happened, with its content intact, and nothing
 * else is left in tmp/ or queue/.
 */
static void test_kill_at_every_call(void **state) {
  uint8_t *msg = message(MSG_SIZE, 8);
  char id[MAILD_SPOOL_ID_LEN + 1], *dir;
  int total, env_rename, k, after_call, status, committed;
  pid_t pid;
  found f;
  (void)state;

  total = nominal_calls(msg, &env_rename);
  for (k = 1; k <= total; k++)
    for (after_call = 0; after_call <= 1; after_call++) {
      dir = make_tmpdir();
      pid = fork();
      assert_true(pid >= 0);
      if (pid == 0) {
        rec *r = calloc(1, sizeof(*r));
        r->kill_at = k;
        r->kill_after = after_call;
        _exit(store_hooked(dir, r, msg, id) == 0 ? 0 : 1);
      }
      assert_int_equal(waitpid(pid, &status, 0), pid);
      assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
      committed = k > env_rename || (k == env_rename && after_call);
      f = scan_fresh(dir, NULL);
      assert_int_equal(f.valid, committed);
      assert_int_equal(count_files(dir, "tmp"), 0);
      assert_int_equal(count_files(dir, "queue"), committed ? 2 : 0);
      if (committed) {
        size_t len;
        char name[64];
        uint8_t *got;
        snprintf(name, sizeof(name), "%s.msg", f.valid_id[0]);
        got = read_file(dir, "queue", name, &len);
        assert_int_equal(len, MSG_SIZE);
        assert_memory_equal(got, msg, MSG_SIZE);
        free(got);
      }
      remove_tmpdir(dir);
    }
  free(msg);
}

/* Puts a valid message with `env` octets as its envelope in queue/. */
static void plant(const char *dir, const char *id, const uint8_t *msg,
                  size_t msglen, const uint8_t *env, size_t envlen) {
  char name[64];
  snprintf(name, sizeof(name), "%s.msg", id);
  write_file(dir, "queue", name, msg, msglen);
  snprintf(name, sizeof(name), "%s.env", id);
  write_file(dir, "queue", name, env, envlen);
}

/* D6: truncated and bit-flipped envelopes are set aside with their .msg. */
static void test_scan_torn_and_flipped(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1], name[64];
  uint8_t *msg = message(500, 9), *env;
  maild_spool_ops ops;
  maild_spool *sp;
  size_t envlen, i;
  rec *r = malloc(sizeof(*r));
  int bit;
  found f;
  (void)state;

  ops = hooks(r); /* fsync does nothing: hundreds of scans */
  assert_int_equal(maild__spool_open(&sp, dir, &ops, NULL), 0);
  {
    maild_spool_writer *w;
    maild_envelope e;
    uint32_t rnd = 77;
    assert_int_equal(maild__spool_begin(sp, ARRIVAL, rand_fixed, &rnd, &w), 0);
    assert_int_equal(maild__spool_write(w, msg, 500), 0);
    envelope(&e);
    assert_int_equal(maild__spool_commit(w, &e, id), 0);
  }
  maild__spool_close(sp);
  snprintf(name, sizeof(name), "%s.env", id);
  env = read_file(dir, "queue", name, &envlen);
  clear_dir(dir, "queue");

  for (i = 0; i < envlen; i++) {
    plant(dir, id, msg, 500, env, i);
    f = scan_fresh(dir, &ops);
    assert_int_equal(f.valid, 0);
    assert_int_equal(f.corrupt, 1);
    assert_int_equal(count_files(dir, "queue"), 0);
    assert_int_equal(count_files(dir, "corrupt"), 2);
    clear_dir(dir, "corrupt");
  }
  for (i = 0; i < envlen; i++)
    for (bit = 0; bit < 8; bit++) {
      env[i] ^= (uint8_t)(1u << bit);
      plant(dir, id, msg, 500, env, envlen);
      f = scan_fresh(dir, &ops);
      assert_int_equal(f.valid, 0);
      assert_int_equal(f.corrupt, 1);
      assert_int_equal(count_files(dir, "queue"), 0);
      clear_dir(dir, "corrupt");
      env[i] ^= (uint8_t)(1u << bit);
    }
  /* The untouched file is still valid, and the content is checked too. */
  plant(dir, id, msg, 500, env, envlen);
  f = scan_fresh(dir, &ops);
  assert_int_equal(f.valid, 1);
  clear_dir(dir, "queue");
  msg[400] ^= 1;
  plant(dir, id, msg, 500, env, envlen);
  f = scan_fresh(dir, &ops);
  assert_int_equal(f.corrupt, 1);
  assert_string_equal(f.reason, "message CRC differs from envelope");
  clear_dir(dir, "corrupt");
  plant(dir, id, msg, 499, env, envlen);
  f = scan_fresh(dir, &ops);
  assert_int_equal(f.corrupt, 1);
  assert_string_equal(f.reason, "message size differs from envelope");
  assert_int_equal(count_files(dir, "queue"), 0);
  free(env);
  free(msg);
  free(r);
  remove_tmpdir(dir);
}

/* D6: temporary files, orphans, garbage and foreign names, beside a valid
   message that must survive them all. */
static void test_scan_garbage(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1], path[512];
  uint8_t *msg = message(300, 10);
  maild_spool *sp;
  maild_envelope *e;
  found f;
  (void)state;

  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  assert_int_equal(store(sp, msg, 300, 1, id), 0);
  maild__spool_close(sp);
  write_file(dir, "tmp", "00060a241820224000000002.msg", msg, 100);
  write_file(dir, "tmp", "00060a241820224000000002.env", "MAIL", 4);
  write_file(dir, "queue", "00060a241820224000000003.msg", msg, 300);
  write_file(dir, "queue", "00060a241820224000000004.env", "garbage", 7);
  write_file(dir, "queue", "00060a241820224000000005.env", "", 0);
  write_file(dir, "queue", "README", "hello", 5);
  write_file(dir, "queue", "00060A24181E4F4000000006.msg", "x", 1);
  snprintf(path, sizeof(path), "%s/queue/00060a241820224000000007.env", dir);
  assert_int_equal(mkdir(path, 0700), 0);
  snprintf(path, sizeof(path), "%s/queue/00060a241820224000000008.env", dir);
  assert_int_equal(symlink("/etc/passwd", path), 0);
  snprintf(path, sizeof(path), "%s/queue/00060a241820224000000009.env", dir);
  assert_int_equal(mkfifo(path, 0600), 0);
  /* An envelope valid in itself, under another id's name. */
  {
    size_t len;
    char name[64];
    uint8_t *env;
    snprintf(name, sizeof(name), "%s.env", id);
    env = read_file(dir, "queue", name, &len);
    write_file(dir, "queue", "00060a24182022400000000a.env", env, len);
    free(env);
  }
  /* An envelope whose message is gone. */
  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  {
    char id2[MAILD_SPOOL_ID_LEN + 1];
    assert_int_equal(store(sp, msg, 300, 0x0b, id2), 0);
    snprintf(path, sizeof(path), "%s/queue/%s.msg", dir, id2);
    assert_int_equal(unlink(path), 0);
  }
  maild__spool_close(sp);
  /* A name already taken in corrupt/ gets a suffix. */
  write_file(dir, "corrupt", "README", "older", 5);

  f = scan_fresh(dir, NULL);
  assert_int_equal(f.valid, 1);
  assert_string_equal(f.valid_id[0], id);
  assert_int_equal(f.temp, 2);
  assert_int_equal(f.orphan, 1);
  assert_int_equal(f.corrupt, 9);
  assert_int_equal(count_files(dir, "tmp"), 0);
  assert_int_equal(count_files(dir, "queue"), 2);
  assert_int_equal(count_files(dir, "corrupt"), 13);
  assert_true(file_exists(dir, "corrupt", "README.1"));
  assert_true(file_exists(dir, "corrupt", "00060a241820224000000003.msg"));

  /* A second scan finds the same valid message and nothing else. */
  f = scan_fresh(dir, NULL);
  assert_int_equal(f.valid, 1);
  assert_int_equal(f.temp + f.orphan + f.corrupt, 0);
  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  assert_int_equal(maild__spool_load(sp, id, &e), 0);
  maild__spool_envelope_free(sp, e);
  maild__spool_close(sp);
  free(msg);
  remove_tmpdir(dir);
}

/* An envelope copied under another id's name is not that message. */
static void test_scan_id_mismatch(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1], name[64];
  uint8_t *msg = message(300, 11), *env;
  maild_spool *sp;
  maild_envelope *e;
  size_t len;
  found f;
  (void)state;

  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  assert_int_equal(store(sp, msg, 300, 1, id), 0);
  snprintf(name, sizeof(name), "%s.env", id);
  env = read_file(dir, "queue", name, &len);
  plant(dir, "00060a2418202240000000ff", msg, 300, env, len);
  assert_int_equal(maild__spool_load(sp, "00060a2418202240000000ff", &e),
                   MAILD_ERR_SYNTAX);
  maild__spool_close(sp);
  f = scan_fresh(dir, NULL);
  assert_int_equal(f.valid, 1);
  assert_int_equal(f.corrupt, 1);
  assert_string_equal(f.reason, "id differs from file name");
  free(env);
  free(msg);
  remove_tmpdir(dir);
}

static void test_scan_callback_stops(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  uint8_t *msg = message(300, 12);
  maild_spool *sp;
  found f;
  (void)state;

  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  assert_int_equal(store(sp, msg, 300, 1, id), 0);
  assert_int_equal(store(sp, msg, 300, 2, id), 0);
  memset(&f, 0, sizeof(f));
  f.stop_with = MAILD_ERR_CALLBACK;
  assert_int_equal(maild__spool_scan(sp, on_item, &f), MAILD_ERR_CALLBACK);
  assert_int_equal(f.valid, 1);
  maild__spool_envelope_free(sp, f.kept);
  maild__spool_close(sp);
  free(msg);
  remove_tmpdir(dir);
}

/* ---- Due times ---- */

typedef struct listed {
  int n, held;
  char id[4][MAILD_SPOOL_ID_LEN + 1];
  uint64_t due[4];
  int stop_after; /* stop the walk after this many; 0: never */
} listed;

static int on_listed(const char *id, uint64_t due, int held, void *ud) {
  listed *l = ud;

  assert_int_equal(strlen(id), MAILD_SPOOL_ID_LEN);
  if (l->n < 4) {
    snprintf(l->id[l->n], sizeof(l->id[0]), "%s", id);
    l->due[l->n] = due;
  }
  l->n++;
  l->held += held;
  return l->stop_after > 0 && l->n == l->stop_after ? MAILD_ERR_CALLBACK : 0;
}

static uint64_t listed_due(const listed *l, const char *id) {
  int i;

  for (i = 0; i < l->n && i < 4; i++)
    if (strcmp(l->id[i], id) == 0)
      return l->due[i];
  fail_msg("%s not listed", id);
  return 0;
}

typedef struct due_seen {
  uint64_t due;
  int valid, held;
} due_seen;

static int on_item_due(maild_spool_scan_item *it, void *ud) {
  due_seen *d = ud;

  if (it->kind == MAILD_SPOOL_VALID) {
    d->due = it->due_ms;
    d->valid++;
    d->held += it->held;
  }
  return 0;
}

/* The time of the next attempt is the envelope's modification time: a new
   message is due at its commit, an update or set_due moves it (to the
   millisecond), the listing reports it with the holds and skips anything
   that is not an envelope, and the start-up scan reports both too. */
static void test_due_times(void **state) {
  const uint64_t later = UINT64_C(2000000000123), sooner = 1700000000456u;
  char *dir = make_tmpdir(), a[MAILD_SPOOL_ID_LEN + 1],
       b[MAILD_SPOOL_ID_LEN + 1], c[MAILD_SPOOL_ID_LEN + 1];
  uint8_t *msg = message(300, 14);
  uint64_t due, now = (uint64_t)time(NULL) * 1000u;
  maild_envelope *e;
  maild_spool *sp;
  due_seen seen;
  listed l;
  (void)state;

  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  assert_int_equal(store(sp, msg, 300, 1, a), 0);
  assert_int_equal(store(sp, msg, 300, 2, b), 0);
  assert_int_equal(store(sp, msg, 300, 3, c), 0);
  assert_int_equal(maild__spool_due(sp, a, &due), 0);
  assert_true(due + 60000u >= now && due <= now + 60000u); /* its commit */

  /* An update carries the due time, and 0 leaves the time of writing. */
  assert_int_equal(maild__spool_load(sp, a, &e), 0);
  assert_int_equal(maild__spool_update(sp, e, later), 0);
  assert_int_equal(maild__spool_due(sp, a, &due), 0);
  assert_true(due == later);
  assert_int_equal(maild__spool_update(sp, e, 0), 0);
  assert_int_equal(maild__spool_due(sp, a, &due), 0);
  assert_true(due + 60000u >= now && due <= now + 60000u);
  assert_int_equal(maild__spool_update(sp, e, later), 0);
  maild__spool_envelope_free(sp, e);
  assert_int_equal(maild__spool_set_due(sp, b, sooner), 0);
  assert_int_equal(maild__spool_due(sp, b, &due), 0);
  assert_true(due == sooner);
  assert_int_equal(maild__spool_set_due(sp, "00060a2418202240000000ff", 1),
                   MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild__spool_due(sp, "00060a2418202240000000ff", &due),
                   MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild__spool_set_due(sp, "../x", 1), MAILD_ERR_INVAL);
  assert_int_equal(maild__spool_due(sp, "0123", &due), MAILD_ERR_INVAL);

  /* The listing: three envelopes, one held; no .msg, no stray name. */
  write_file(dir, "queue", "junk", "x", 1);
  write_file(dir, "queue", "00060a24182022400000abcd.msg", "x", 1);
  memset(&l, 0, sizeof(l));
  assert_int_equal(maild__spool_list(sp, on_listed, &l), 0);
  assert_int_equal(l.n, 3);
  assert_int_equal(l.held, 0);
  assert_true(listed_due(&l, a) == later);
  assert_true(listed_due(&l, b) == sooner);
  assert_int_equal(maild__spool_hold(sp, c, 1), 0);
  memset(&l, 0, sizeof(l));
  assert_int_equal(maild__spool_list(sp, on_listed, &l), 0);
  assert_int_equal(l.n, 3);
  assert_int_equal(l.held, 1);
  memset(&l, 0, sizeof(l));
  l.stop_after = 2;
  assert_int_equal(maild__spool_list(sp, on_listed, &l), MAILD_ERR_CALLBACK);
  assert_int_equal(l.n, 2);
  assert_int_equal(maild__spool_list(sp, NULL, &l), MAILD_ERR_INVAL);

  /* The start-up scan reports the due time of a valid message. */
  unlink_in(dir, "queue", "junk");
  unlink_in(dir, "queue", "00060a24182022400000abcd.msg");
  assert_int_equal(maild__spool_remove(sp, b), 0);
  assert_int_equal(maild__spool_remove(sp, c), 0);
  memset(&seen, 0, sizeof(seen));
  assert_int_equal(maild__spool_scan(sp, on_item_due, &seen), 0);
  assert_int_equal(seen.valid, 1);
  assert_int_equal(seen.held, 0);
  assert_true(seen.due == later);
  assert_int_equal(maild__spool_hold(sp, a, 1), 0); /* and with its hold */
  memset(&seen, 0, sizeof(seen));
  assert_int_equal(maild__spool_scan(sp, on_item_due, &seen), 0);
  assert_int_equal(seen.valid, 1);
  assert_int_equal(seen.held, 1);
  maild__spool_close(sp);
  free(msg);
  remove_tmpdir(dir);
}

/* The listing reads hold/ into memory: every allocation of it fails in
   turn (70 holds: the list of names grows twice), without a leak. */
static void test_list_nomem(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  uint8_t *msg = message(300, 15);
  maild_spool *sp;
  testmem tm;
  listed l;
  size_t n;
  int rc, i;
  (void)state;

  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  assert_int_equal(store(sp, msg, 300, 1, id), 0);
  for (i = 0; i < 70; i++) {
    char held[MAILD_SPOOL_ID_LEN + 1];
    snprintf(held, sizeof(held), "00060a24182022400000%04x", (unsigned)i);
    assert_int_equal(maild__spool_hold(sp, held, 1), 0);
  }
  assert_int_equal(maild__spool_hold(sp, id, 1), 0);
  maild__spool_close(sp);
  for (n = 1;; n++) {
    testmem_init(&tm, 0);
    assert_int_equal(maild__spool_open(&sp, dir, NULL, &tm.mem), 0);
    tm.fail_at = tm.calls + n;
    memset(&l, 0, sizeof(l));
    rc = maild__spool_list(sp, on_listed, &l);
    maild__spool_close(sp);
    assert_int_equal(tm.live, 0);
    if (rc == 0)
      break;
    assert_int_equal(rc, MAILD_ERR_NOMEM);
  }
  assert_int_equal(n, 3); /* two allocations, then none fails */
  assert_int_equal(l.n, 1);
  assert_int_equal(l.held, 1);
  free(msg);
  remove_tmpdir(dir);
}

/* The arrival time an id carries. */
static void test_id_arrival(void **state) {
  (void)state;
  assert_true(maild__spool_id_arrival("00060a2418202240deadbeef") ==
              INT64_C(0x00060a2418202240));
  assert_true(maild__spool_id_arrival("0000000000000000ffffffff") == 0);
  assert_true(maild__spool_id_arrival("7fffffffffffffff00000000") == INT64_MAX);
  assert_true(maild__spool_id_arrival("8000000000000000ffffffff") == -1);
  assert_true(maild__spool_id_arrival("00060A2418202240deadbeef") == -1);
  assert_true(maild__spool_id_arrival("00060a2418202240") == -1);
  assert_true(maild__spool_id_arrival(NULL) == -1);
}

/* Every allocation of open, begin, write, commit, load and scan fails in
   turn: the error is NOMEM, nothing leaks, no file is left half made, and
   a scan short of memory never sets a valid message aside. */
static void test_nomem_sweep(void **state) {
  char *dir = make_tmpdir(), id[MAILD_SPOOL_ID_LEN + 1];
  uint8_t *msg = message(MSG_SIZE, 13);
  maild_spool *sp;
  maild_envelope *e;
  testmem tm;
  size_t n;
  int rc, done = 0;
  found f;
  (void)state;

  for (n = 1; !done; n++) {
    testmem_init(&tm, n);
    rc = maild__spool_open(&sp, dir, NULL, &tm.mem);
    if (rc == 0) {
      rc = store(sp, msg, MSG_SIZE, (uint32_t)n, id);
      if (rc == 0)
        rc = maild__spool_load(sp, id, &e);
      if (rc == 0) {
        maild__spool_envelope_free(sp, e);
        memset(&f, 0, sizeof(f));
        rc = maild__spool_scan(sp, on_item, &f);
        maild__spool_envelope_free(sp, f.kept);
        assert_int_equal(f.corrupt + f.orphan + f.temp, 0);
        assert_int_equal(count_files(dir, "queue"), 2);
        done = rc == 0;
      }
      if (count_files(dir, "queue") == 2)
        assert_int_equal(maild__spool_remove(sp, id), 0);
      maild__spool_close(sp);
    }
    if (!done)
      assert_int_equal(rc, MAILD_ERR_NOMEM);
    assert_int_equal(tm.live, 0);
    assert_int_equal(count_files(dir, "tmp"), 0);
    assert_int_equal(count_files(dir, "queue"), 0);
    assert_int_equal(count_files(dir, "corrupt"), 0);
  }
  assert_true(n > 4);
  free(msg);
  remove_tmpdir(dir);
}

/* Writers of one spool on several threads at once. */
typedef struct worker {
  maild_spool *sp;
  const uint8_t *msg;
  uint32_t base;
  int failures;
} worker;

static void *worker_main(void *arg) {
  worker *wk = arg;
  char id[MAILD_SPOOL_ID_LEN + 1];
  int i;

  for (i = 0; i < 25; i++)
    if (store(wk->sp, wk->msg, 5000, wk->base + (uint32_t)i, id) != 0)
      wk->failures++;
  return NULL;
}

static void test_concurrent_writers(void **state) {
  char *dir = make_tmpdir();
  uint8_t *msg = message(5000, 14);
  maild_spool *sp;
  pthread_t th[4];
  worker wk[4];
  int i;
  found f;
  (void)state;

  assert_int_equal(maild__spool_open(&sp, dir, NULL, NULL), 0);
  for (i = 0; i < 4; i++) {
    wk[i] = (worker){sp, msg, (uint32_t)i * 1000u, 0};
    assert_int_equal(pthread_create(&th[i], NULL, worker_main, &wk[i]), 0);
  }
  for (i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(wk[i].failures, 0);
  }
  maild__spool_close(sp);
  assert_int_equal(count_files(dir, "queue"), 200);
  f = scan_fresh(dir, NULL);
  assert_int_equal(f.valid, 100);
  free(msg);
  remove_tmpdir(dir);
}

/* D4's rule: `min_free` stays free after the announced size, at the
   limit and one past it, and sums past 2^64 never fit. */
static void test_room(void **state) {
  const uint64_t mib = 1024 * 1024;

  (void)state;
  assert_true(maild__spool_room(64 * mib, 64 * mib, 0));
  assert_false(maild__spool_room(64 * mib - 1, 64 * mib, 0));
  assert_true(maild__spool_room(64 * mib + 1000, 64 * mib, 1000));
  assert_false(maild__spool_room(64 * mib + 1000, 64 * mib, 1001));
  assert_true(maild__spool_room(0, 0, 0));
  assert_false(maild__spool_room(0, 0, 1));
  assert_true(maild__spool_room(UINT64_MAX, UINT64_MAX, 0));
  assert_false(maild__spool_room(UINT64_MAX, UINT64_MAX, 1));
  assert_false(maild__spool_room(UINT64_MAX, 2, UINT64_MAX - 1));
  assert_true(maild__spool_room(UINT64_MAX, 1, UINT64_MAX - 1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_creates_layout),
      cmocka_unit_test(test_commit_load_read_remove),
      cmocka_unit_test(test_group_commit),
      cmocka_unit_test(test_staged_but_not_published),
      cmocka_unit_test(test_update_of_removed_message),
      cmocka_unit_test(test_empty_message_and_abort),
      cmocka_unit_test(test_id_collisions),
      cmocka_unit_test(test_commit_call_order),
      cmocka_unit_test(test_fail_every_call),
      cmocka_unit_test(test_write_enospc),
      cmocka_unit_test(test_update_fail_every_call),
      cmocka_unit_test(test_kill_at_every_call),
      cmocka_unit_test(test_scan_torn_and_flipped),
      cmocka_unit_test(test_scan_garbage),
      cmocka_unit_test(test_scan_id_mismatch),
      cmocka_unit_test(test_scan_callback_stops),
      cmocka_unit_test(test_nomem_sweep),
      cmocka_unit_test(test_concurrent_writers),
      cmocka_unit_test(test_room),
      cmocka_unit_test(test_due_times),
      cmocka_unit_test(test_id_arrival),
      cmocka_unit_test(test_list_nomem),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
