/*
 * The durable spool: the files behind every "250 OK" (DESIGN.md,
 * "Durability and delivery semantics"). A message is written to tmp/, then
 * moved into queue/ in two renames: the content first, the envelope last.
 * The envelope's rename is the commit point, so a crash at any step leaves
 * either a committed message or files a scan recognises as never committed
 * (anything in tmp/, a .msg without .env), and the client got 250 only if
 * the directory entry was fsync'd too.
 *
 * Everything is relative to directory descriptors opened once, so a writer
 * never resolves a path and writers on several worker threads share nothing
 * mutable. The few calls that change the disk go through replaceable hooks
 * (maild_spool_ops) so the tests can record their order (TESTPLAN D2), fail
 * each in turn (D3) and kill the process at each (D1). Failures never
 * retry an fsync: after a failed fsync the kernel may have dropped the dirty
 * pages, so the only honest answer is to remove the files and say 451.
 */
#define _GNU_SOURCE /* syncfs(2) */
#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>  /* renameat(2) only: no FILE I/O in the library */
#include <stdlib.h> /* qsort, bsearch */
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/crc32.h"
#include "core/mem.h"
#include "maild/error.h"

#define FILE_FLAGS (O_CLOEXEC | O_NOFOLLOW)
/* Reads of files that may be anything (scan, load): a FIFO must not block. */
#define PROBE_FLAGS     (O_RDONLY | O_NONBLOCK | FILE_FLAGS)
#define CREATE_FLAGS    (O_WRONLY | O_CREAT | O_EXCL | FILE_FLAGS)
#define DIR_FLAGS       (O_RDONLY | O_DIRECTORY | O_CLOEXEC)
#define READ_BUF        (64u * 1024u)
#define ASIDE_TRIES     1000
#define ASIDE_NAME_SIZE 256 /* 200 + "." + 10 digits + NUL fits */

struct maild_spool {
  maild_mem mem;
  maild_spool_ops ops;
  int tmp_fd;
  int queue_fd;
  int corrupt_fd;
  char *root; /* the spool directory, for hold/ (made when first used) */
};

struct maild_spool_writer {
  maild_spool *sp;
  char id[MAILD_SPOOL_ID_LEN + 1];
  int64_t arrival_usec;
  int fd;        /* tmp/<id>.msg while open, else -1 */
  int staged;    /* tmp/<id>.msg and tmp/<id>.env written, not synced */
  int err;       /* first error, then every call returns it */
  int sys_errno; /* errno of that error */
  uint64_t size;
  uint32_t crc;
  size_t used; /* octets in buf */
  uint8_t buf[];
};

/* ---- Real system calls (the default hooks) ------------------------------ */

static int sys_openat(int dirfd, const char *name, int flags, mode_t mode,
                      void *ud) {
  (void)ud;
  return openat(dirfd, name, flags, mode);
}

static ssize_t sys_write(int fd, const void *data, size_t len, void *ud) {
  (void)ud;
  return write(fd, data, len);
}

static int sys_fsync(int fd, void *ud) {
  (void)ud;
  return fsync(fd);
}

static int sys_renameat(int from_dirfd, const char *from, int to_dirfd,
                        const char *to, void *ud) {
  (void)ud;
  return renameat(from_dirfd, from, to_dirfd, to);
}

static int sys_unlinkat(int dirfd, const char *name, int flags, void *ud) {
  (void)ud;
  return unlinkat(dirfd, name, flags);
}

static int sys_close(int fd, void *ud) {
  (void)ud;
  return close(fd);
}

static int sys_syncfs(int fd, void *ud) {
  (void)ud;
  return syncfs(fd);
}

static void ops_init(maild_spool_ops *dst, const maild_spool_ops *ops) {
  if (ops != NULL)
    *dst = *ops;
  else
    memset(dst, 0, sizeof(*dst));
  if (dst->openat == NULL)
    dst->openat = sys_openat;
  if (dst->write == NULL)
    dst->write = sys_write;
  if (dst->fsync == NULL)
    dst->fsync = sys_fsync;
  if (dst->renameat == NULL)
    dst->renameat = sys_renameat;
  if (dst->unlinkat == NULL)
    dst->unlinkat = sys_unlinkat;
  if (dst->close == NULL)
    dst->close = sys_close;
  if (dst->syncfs == NULL)
    dst->syncfs = sys_syncfs;
}

/* ---- Small helpers ------------------------------------------------------- */

#define UD(sp) ((sp)->ops.user_data)

static int sp_openat(maild_spool *sp, int dirfd, const char *name, int flags) {
  return sp->ops.openat(dirfd, name, flags, (mode_t)0600, UD(sp));
}

static int sp_fsync(maild_spool *sp, int fd) {
  return sp->ops.fsync(fd, UD(sp));
}

static int sp_rename(maild_spool *sp, int from_fd, const char *from, int to_fd,
                     const char *to) {
  return sp->ops.renameat(from_fd, from, to_fd, to, UD(sp));
}

/* Unlinks, keeping errno: used on cleanup paths. */
static void sp_unlink_quiet(maild_spool *sp, int dirfd, const char *name) {
  int e = errno;
  (void)sp->ops.unlinkat(dirfd, name, 0, UD(sp));
  errno = e;
}

/* Closes; EINTR counts as closed (Linux frees the descriptor regardless). */
static int sp_close(maild_spool *sp, int fd) {
  if (sp->ops.close(fd, UD(sp)) != 0 && errno != EINTR)
    return -1;
  return 0;
}

static void sp_close_quiet(maild_spool *sp, int fd) {
  int e = errno;
  if (fd >= 0)
    (void)sp->ops.close(fd, UD(sp));
  errno = e;
}

/* Writes all of `p[0..n)`, retrying after EINTR and short writes. */
static int write_all(maild_spool *sp, int fd, const uint8_t *p, size_t n) {
  ssize_t k;

  while (n > 0) {
    k = sp->ops.write(fd, p, n, UD(sp));
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return -1;
    if (k == 0) {
      errno = EIO;
      return -1;
    }
    p += (size_t)k;
    n -= (size_t)k;
  }
  return 0;
}

static void make_name(char buf[MAILD_SPOOL_NAME_SIZE], const char *id,
                      const char *ext) {
  memcpy(buf, id, MAILD_SPOOL_ID_LEN);
  memcpy(buf + MAILD_SPOOL_ID_LEN, ext, 5);
}

static void make_id(char id[MAILD_SPOOL_ID_LEN + 1], uint64_t usec,
                    uint32_t rnd) {
  static const char hex[] = "0123456789abcdef";
  int i;

  for (i = 15; i >= 0; i--, usec >>= 4)
    id[i] = hex[usec & 15u];
  for (i = 23; i >= 16; i--, rnd >>= 4)
    id[i] = hex[rnd & 15u];
  id[MAILD_SPOOL_ID_LEN] = '\0';
}

/* 1 if `name` exists in `dirfd`, 0 if not, -1 on error. */
static int name_exists(int dirfd, const char *name) {
  struct stat st;

  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return 1;
  return errno == ENOENT ? 0 : -1;
}

/* ---- Open and close ------------------------------------------------------ */

static void spool_free(maild_spool *sp) {
  int *fds[3];
  int i;

  fds[0] = &sp->tmp_fd;
  fds[1] = &sp->queue_fd;
  fds[2] = &sp->corrupt_fd;
  for (i = 0; i < 3; i++)
    sp_close_quiet(sp, *fds[i]);
  maild__free(&sp->mem, sp->root);
  maild__free(&sp->mem, sp);
}

/* Opens (creating if missing) the subdirectory `name` of `root`. */
static int open_subdir(maild_spool *sp, int root, const char *name,
                       int *created) {
  if (mkdirat(root, name, 0700) == 0)
    *created = 1;
  else if (errno != EEXIST)
    return -1;
  return sp_openat(sp, root, name, DIR_FLAGS | O_NOFOLLOW);
}

static int open_dirs(maild_spool *sp, const char *dir) {
  int root, created = 0, rc = -1;

  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return -1;
  root = sp_openat(sp, AT_FDCWD, dir, DIR_FLAGS);
  if (root < 0)
    return -1;
  if ((sp->tmp_fd = open_subdir(sp, root, "tmp", &created)) >= 0 &&
      (sp->queue_fd = open_subdir(sp, root, "queue", &created)) >= 0 &&
      (sp->corrupt_fd = open_subdir(sp, root, "corrupt", &created)) >= 0 &&
      (!created || sp_fsync(sp, root) == 0))
    rc = 0;
  sp_close_quiet(sp, root);
  return rc;
}

int maild__spool_open(maild_spool **out, const char *dir,
                      const maild_spool_ops *ops, const maild_mem *mem) {
  maild_mem m;
  maild_spool *sp;

  if (out == NULL)
    return MAILD_ERR_INVAL;
  *out = NULL;
  if (dir == NULL || dir[0] == '\0')
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  sp = maild__malloc(&m, sizeof(*sp));
  if (sp == NULL)
    return MAILD_ERR_NOMEM;
  sp->mem = m;
  ops_init(&sp->ops, ops);
  sp->tmp_fd = sp->queue_fd = sp->corrupt_fd = -1;
  sp->root = maild__strndup(&m, dir, strlen(dir));
  if (sp->root == NULL) {
    spool_free(sp);
    return MAILD_ERR_NOMEM;
  }
  if (open_dirs(sp, dir) != 0) {
    spool_free(sp);
    return MAILD_ERR_IO;
  }
  *out = sp;
  return 0;
}

void maild__spool_close(maild_spool *sp) {
  if (sp != NULL)
    spool_free(sp);
}

int maild__spool_queue_fd(const maild_spool *sp) {
  return sp->queue_fd;
}

int maild__spool_space(const maild_spool *sp, uint64_t *avail) {
  struct statvfs st;

  if (sp == NULL || avail == NULL)
    return MAILD_ERR_INVAL;
  if (fstatvfs(sp->queue_fd, &st) != 0)
    return MAILD_ERR_IO;
  *avail = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
  return 0;
}

int maild__spool_room(uint64_t avail, uint64_t min_free, uint64_t declared) {
  if (declared > UINT64_MAX - min_free)
    return 0;
  return avail >= min_free + declared;
}

int maild__spool_errno_is_full(int sys_errno) {
#ifdef EDQUOT
  if (sys_errno == EDQUOT)
    return 1;
#endif
  return sys_errno == ENOSPC;
}

/* ---- Writer ---------------------------------------------------------------
 */

static void writer_free(maild_spool_writer *w) {
  maild__free(&w->sp->mem, w);
}

/* Creates tmp/<id>.msg for a fresh id; 0, -1 (errno) or 1 (id taken). */
static int create_tmp(maild_spool_writer *w, uint32_t rnd) {
  maild_spool *sp = w->sp;
  char msg[MAILD_SPOOL_NAME_SIZE], env[MAILD_SPOOL_NAME_SIZE];
  int taken;

  make_id(w->id, (uint64_t)w->arrival_usec, rnd);
  make_name(msg, w->id, ".msg");
  make_name(env, w->id, ".env");
  w->fd = sp_openat(sp, sp->tmp_fd, msg, CREATE_FLAGS);
  if (w->fd < 0)
    return errno == EEXIST ? 1 : -1;
  /* Checked after the exclusive create, so a writer of the same id that
     already moved its file into queue/ is always seen. */
  taken = name_exists(sp->queue_fd, msg);
  if (taken == 0)
    taken = name_exists(sp->queue_fd, env);
  if (taken == 0)
    return 0;
  sp_close_quiet(sp, w->fd);
  sp_unlink_quiet(sp, sp->tmp_fd, msg);
  w->fd = -1;
  return taken;
}

int maild__spool_begin(maild_spool *sp, int64_t arrival_usec,
                       maild_spool_rand_cb rand_cb, void *rand_ud,
                       maild_spool_writer **out) {
  maild_spool_writer *w;
  int i, rc = 1, e;

  if (out == NULL)
    return MAILD_ERR_INVAL;
  *out = NULL;
  if (sp == NULL || rand_cb == NULL || arrival_usec < 0)
    return MAILD_ERR_INVAL;
  w = maild__malloc(&sp->mem, sizeof(*w) + MAILD_SPOOL_WRITE_BUF);
  if (w == NULL)
    return MAILD_ERR_NOMEM;
  memset(w, 0, sizeof(*w));
  w->sp = sp;
  w->arrival_usec = arrival_usec;
  w->fd = -1;
  for (i = 0; i < MAILD_SPOOL_ID_TRIES && rc == 1; i++)
    rc = create_tmp(w, rand_cb(rand_ud));
  if (rc != 0) {
    e = errno;
    writer_free(w);
    errno = e;
    return rc == 1 ? MAILD_ERR_EXISTS : MAILD_ERR_IO;
  }
  *out = w;
  return 0;
}

const char *maild__spool_writer_id(const maild_spool_writer *w) {
  return w->id;
}

int maild__spool_writer_errno(const maild_spool_writer *w) {
  return w->sys_errno;
}

/* Closes and removes tmp/<id>.msg after a failure, keeping errno. */
static int writer_fail(maild_spool_writer *w) {
  char msg[MAILD_SPOOL_NAME_SIZE];

  w->err = MAILD_ERR_IO;
  w->sys_errno = errno;
  if (w->fd >= 0) {
    sp_close_quiet(w->sp, w->fd);
    w->fd = -1;
    make_name(msg, w->id, ".msg");
    sp_unlink_quiet(w->sp, w->sp->tmp_fd, msg);
  }
  return MAILD_ERR_IO;
}

static int flush(maild_spool_writer *w) {
  if (w->used > 0 && write_all(w->sp, w->fd, w->buf, w->used) != 0)
    return -1;
  w->used = 0;
  return 0;
}

int maild__spool_write(maild_spool_writer *w, const void *data, size_t len) {
  const uint8_t *p = data;
  size_t n;

  if (w == NULL || (data == NULL && len > 0))
    return MAILD_ERR_INVAL;
  if (w->err != 0) {
    errno = w->sys_errno;
    return w->err;
  }
  w->crc = maild__crc32(w->crc, p, len);
  w->size += len;
  while (len > 0) {
    if (w->used == 0 && len >= MAILD_SPOOL_WRITE_BUF) {
      /* A large write with nothing buffered goes straight out. */
      if (write_all(w->sp, w->fd, p, len) != 0)
        return writer_fail(w);
      break;
    }
    n = MAILD_SPOOL_WRITE_BUF - w->used;
    n = n < len ? n : len;
    memcpy(w->buf + w->used, p, n);
    w->used += n;
    p += n;
    len -= n;
    if (w->used == MAILD_SPOOL_WRITE_BUF && flush(w) != 0)
      return writer_fail(w);
  }
  return 0;
}

void maild__spool_abort(maild_spool_writer *w) {
  char msg[MAILD_SPOOL_NAME_SIZE];
  int e = errno;

  if (w == NULL)
    return;
  if (w->fd >= 0)
    sp_close_quiet(w->sp, w->fd);
  if (w->fd >= 0 || w->staged) {
    make_name(msg, w->id, ".msg");
    sp_unlink_quiet(w->sp, w->sp->tmp_fd, msg);
  }
  if (w->staged) {
    make_name(msg, w->id, ".env");
    sp_unlink_quiet(w->sp, w->sp->tmp_fd, msg);
  }
  writer_free(w);
  errno = e;
}

/* A due time as a file time (atime left alone). */
static void due_times(struct timespec ts[2], uint64_t due_ms) {
  ts[0].tv_sec = 0;
  ts[0].tv_nsec = UTIME_OMIT;
  ts[1].tv_sec = (time_t)(due_ms / 1000u);
  ts[1].tv_nsec = (long)(due_ms % 1000u) * 1000000L;
}

/* A file's modification time as a due time. */
static uint64_t due_of(const struct stat *st) {
  if (st->st_mtim.tv_sec < 0)
    return 0;
  return (uint64_t)st->st_mtim.tv_sec * 1000u +
         (uint64_t)st->st_mtim.tv_nsec / 1000000u;
}

/*
 * Writes the envelope `b` to tmp/<name>, sets its due time (unless
 * `due_ms` is 0), fsyncs and closes it, renames it to queue/<name> and
 * fsyncs queue/. On failure removes tmp/<name> and returns -1 with errno;
 * *renamed tells whether queue/<name> was replaced.
 */
static int install_env(maild_spool *sp, const char *name, const maild_buf *b,
                       uint64_t due_ms, int *renamed) {
  struct timespec ts[2];
  int fd, closed = 0;

  *renamed = 0;
  fd = sp_openat(sp, sp->tmp_fd, name, CREATE_FLAGS);
  if (fd < 0)
    return -1;
  due_times(ts, due_ms);
  if (write_all(sp, fd, maild__buf_peek(b), maild__buf_used(b)) != 0 ||
      (due_ms != 0 && futimens(fd, ts) != 0) || sp_fsync(sp, fd) != 0)
    goto fail;
  closed = 1;
  if (sp_close(sp, fd) != 0 ||
      sp_rename(sp, sp->tmp_fd, name, sp->queue_fd, name) != 0)
    goto fail;
  *renamed = 1;
  return sp_fsync(sp, sp->queue_fd);

fail:
  if (!closed)
    sp_close_quiet(sp, fd);
  sp_unlink_quiet(sp, sp->tmp_fd, name);
  return -1;
}

/* Encodes `env` for writer `w`: its id, time, size and CRC replace env's. */
static int encode_for(const maild_spool_writer *w, const maild_envelope *env,
                      maild_buf *b) {
  maild_envelope e = *env;

  memcpy(e.id, w->id, sizeof(e.id));
  e.arrival_usec = w->arrival_usec;
  e.msg_size = w->size;
  e.msg_crc32 = w->crc;
  maild__buf_init(b, MAILD_ENV_FILE_MAX);
  return maild__envelope_encode(&e, b, &w->sp->mem);
}

/* Flushes, syncs and moves the content to queue/<id>.msg. */
static int commit_msg(maild_spool_writer *w, const char *msg) {
  maild_spool *sp = w->sp;
  int fd;

  if (flush(w) != 0 || sp_fsync(sp, w->fd) != 0)
    return -1;
  fd = w->fd;
  w->fd = -1;
  if (sp_close(sp, fd) != 0 ||
      sp_rename(sp, sp->tmp_fd, msg, sp->queue_fd, msg) != 0) {
    sp_unlink_quiet(sp, sp->tmp_fd, msg);
    return -1;
  }
  return 0;
}

int maild__spool_commit(maild_spool_writer *w, const maild_envelope *env,
                        char id_out[MAILD_SPOOL_ID_LEN + 1]) {
  maild_spool *sp;
  char msg[MAILD_SPOOL_NAME_SIZE], name[MAILD_SPOOL_NAME_SIZE];
  maild_buf b;
  int rc, renamed, e;

  if (w == NULL)
    return MAILD_ERR_INVAL;
  if (env == NULL) {
    maild__spool_abort(w);
    return MAILD_ERR_INVAL;
  }
  if (w->err != 0) {
    rc = w->err;
    e = w->sys_errno;
    maild__spool_abort(w);
    errno = e;
    return rc;
  }
  rc = encode_for(w, env, &b);
  if (rc != 0) {
    maild__spool_abort(w);
    return rc;
  }
  sp = w->sp;
  make_name(msg, w->id, ".msg");
  make_name(name, w->id, ".env");
  rc = 0;
  if (commit_msg(w, msg) != 0) {
    rc = writer_fail(w);
  } else if (install_env(sp, name, &b, 0, &renamed) != 0) {
    if (renamed)
      sp_unlink_quiet(sp, sp->queue_fd, name);
    sp_unlink_quiet(sp, sp->queue_fd, msg);
    rc = MAILD_ERR_IO;
  }
  e = errno;
  if (rc == 0 && id_out != NULL)
    memcpy(id_out, w->id, MAILD_SPOOL_ID_LEN + 1);
  maild__buf_free(&b, &sp->mem);
  maild__spool_abort(w);
  errno = e;
  return rc;
}

/* ---- Group commit ---------------------------------------------------------
 *
 * maild__spool_commit() pays three fsyncs per message. When many messages
 * arrive at once, one file-system barrier can serve them all: stage each
 * (content and envelope written to tmp/, nothing synced), sync once (now
 * the content is durable), publish each (renames into queue/), sync once
 * more (now the names are durable: committed). The order that matters for
 * a crash is the same as commit's: no name in queue/ before its content
 * is durable, and no success before the name is.
 */

int maild__spool_stage(maild_spool_writer *w, const maild_envelope *env) {
  maild_spool *sp;
  char name[MAILD_SPOOL_NAME_SIZE];
  maild_buf b;
  int rc, fd, ok;

  if (w == NULL || env == NULL || w->staged)
    return MAILD_ERR_INVAL;
  if (w->err != 0) {
    errno = w->sys_errno;
    return w->err;
  }
  rc = encode_for(w, env, &b);
  if (rc != 0)
    return rc;
  sp = w->sp;
  if (flush(w) != 0) {
    maild__buf_free(&b, &sp->mem);
    return writer_fail(w); /* closes and removes tmp/<id>.msg */
  }
  fd = w->fd;
  w->fd = -1;
  w->staged = 1; /* from here abort removes both tmp files */
  if (sp_close(sp, fd) != 0) {
    maild__buf_free(&b, &sp->mem);
    return writer_fail(w);
  }
  make_name(name, w->id, ".env");
  fd = sp_openat(sp, sp->tmp_fd, name, CREATE_FLAGS);
  ok = fd >= 0 &&
       write_all(sp, fd, maild__buf_peek(&b), maild__buf_used(&b)) == 0;
  if (fd >= 0 && sp_close(sp, fd) != 0)
    ok = 0;
  maild__buf_free(&b, &sp->mem);
  return ok ? 0 : writer_fail(w);
}

int maild__spool_sync(maild_spool *sp) {
  if (sp == NULL)
    return MAILD_ERR_INVAL;
  return sp->ops.syncfs(sp->queue_fd, UD(sp)) == 0 ? 0 : MAILD_ERR_IO;
}

int maild__spool_publish(maild_spool_writer *w,
                         char id_out[MAILD_SPOOL_ID_LEN + 1]) {
  maild_spool *sp;
  char msg[MAILD_SPOOL_NAME_SIZE], env[MAILD_SPOOL_NAME_SIZE];
  int e;

  if (w == NULL)
    return MAILD_ERR_INVAL;
  if (!w->staged || w->err != 0) {
    maild__spool_abort(w);
    return MAILD_ERR_INVAL;
  }
  sp = w->sp;
  make_name(msg, w->id, ".msg");
  make_name(env, w->id, ".env");
  if (sp_rename(sp, sp->tmp_fd, msg, sp->queue_fd, msg) != 0) {
    maild__spool_abort(w);
    return MAILD_ERR_IO;
  }
  if (sp_rename(sp, sp->tmp_fd, env, sp->queue_fd, env) != 0) {
    e = errno;
    sp_unlink_quiet(sp, sp->queue_fd, msg);
    maild__spool_abort(w);
    errno = e;
    return MAILD_ERR_IO;
  }
  if (id_out != NULL)
    memcpy(id_out, w->id, MAILD_SPOOL_ID_LEN + 1);
  w->staged = 0;
  writer_free(w);
  return 0;
}

/* ---- Reading ------------------------------------------------------------- */

/*
 * Reads all of `dirfd`/`name` (a regular file of at most `max` octets)
 * into a new buffer. Returns 0, MAILD_ERR_NOT_FOUND, MAILD_ERR_SYNTAX (a
 * symlink, not a regular file, too large, or it shrank: *why says which),
 * MAILD_ERR_NOMEM or MAILD_ERR_IO.
 */
static int slurp(maild_spool *sp, int dirfd, const char *name, size_t max,
                 uint8_t **data, size_t *len, const char **why) {
  struct stat st;
  uint8_t *p = NULL;
  size_t got = 0;
  ssize_t k;
  int fd, rc = MAILD_ERR_IO, e;

  fd = sp_openat(sp, dirfd, name, PROBE_FLAGS);
  if (fd < 0) {
    *why = errno == ELOOP ? "envelope is a symlink" : NULL;
    return errno == ENOENT  ? MAILD_ERR_NOT_FOUND
           : errno == ELOOP ? MAILD_ERR_SYNTAX
                            : MAILD_ERR_IO;
  }
  if (fstat(fd, &st) != 0)
    goto out;
  rc = MAILD_ERR_SYNTAX;
  *why = !S_ISREG(st.st_mode)         ? "envelope not a regular file"
         : (uint64_t)st.st_size > max ? "envelope too large"
                                      : NULL;
  if (*why != NULL)
    goto out;
  rc = MAILD_ERR_NOMEM;
  p = maild__malloc(&sp->mem, (size_t)st.st_size + 1);
  if (p == NULL)
    goto out;
  rc = MAILD_ERR_IO;
  while (got <= (size_t)st.st_size) { /* one extra read sees growth */
    k = read(fd, p + got, (size_t)st.st_size + 1 - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      goto out;
    if (k == 0)
      break;
    got += (size_t)k;
  }
  rc = MAILD_ERR_SYNTAX;
  *why = "envelope changed while read";
  if (got != (size_t)st.st_size)
    goto out;
  *why = NULL;
  *data = p;
  *len = got;
  p = NULL;
  rc = 0;
out:
  e = errno;
  maild__free(&sp->mem, p);
  sp_close_quiet(sp, fd);
  errno = e;
  return rc;
}

/* Reads and decodes queue/<id>.env; errors as maild__spool_load(). */
static int load_env(maild_spool *sp, const char *id, maild_envelope **out,
                    const char **why) {
  char name[MAILD_SPOOL_NAME_SIZE];
  uint8_t *data;
  size_t len;
  int rc;

  *why = NULL;
  make_name(name, id, ".env");
  rc = slurp(sp, sp->queue_fd, name, MAILD_ENV_FILE_MAX, &data, &len, why);
  if (rc != 0)
    return rc;
  rc = maild__envelope_decode(out, data, len, &sp->mem, why);
  maild__free(&sp->mem, data);
  if (rc == 0 && strcmp((*out)->id, id) != 0) {
    maild__envelope_free(*out, &sp->mem);
    *out = NULL;
    *why = "id differs from file name";
    rc = MAILD_ERR_SYNTAX;
  }
  return rc;
}

int maild__spool_load(maild_spool *sp, const char *id, maild_envelope **out) {
  const char *why;

  if (out == NULL)
    return MAILD_ERR_INVAL;
  *out = NULL;
  if (sp == NULL || !maild__spool_id_valid(id))
    return MAILD_ERR_INVAL;
  return load_env(sp, id, out, &why);
}

void maild__spool_envelope_free(maild_spool *sp, maild_envelope *env) {
  maild__envelope_free(env, &sp->mem);
}

int maild__spool_open_msg(maild_spool *sp, const char *id, int *fd) {
  char name[MAILD_SPOOL_NAME_SIZE];

  if (fd == NULL)
    return MAILD_ERR_INVAL;
  *fd = -1;
  if (sp == NULL || !maild__spool_id_valid(id))
    return MAILD_ERR_INVAL;
  make_name(name, id, ".msg");
  *fd = sp_openat(sp, sp->queue_fd, name, O_RDONLY | FILE_FLAGS);
  if (*fd >= 0)
    return 0;
  return errno == ENOENT ? MAILD_ERR_NOT_FOUND : MAILD_ERR_IO;
}

int maild__spool_msg_name(const char *id, char buf[MAILD_SPOOL_NAME_SIZE]) {
  if (buf == NULL || !maild__spool_id_valid(id))
    return MAILD_ERR_INVAL;
  make_name(buf, id, ".msg");
  return 0;
}

int maild__spool_update(maild_spool *sp, const maild_envelope *env,
                        uint64_t due_ms) {
  char name[MAILD_SPOOL_NAME_SIZE];
  maild_buf b;
  int rc, renamed, e;

  if (sp == NULL || env == NULL || !maild__spool_id_valid(env->id))
    return MAILD_ERR_INVAL;
  make_name(name, env->id, ".env");
  rc = name_exists(sp->queue_fd, name);
  if (rc <= 0)
    return rc == 0 ? MAILD_ERR_NOT_FOUND : MAILD_ERR_IO;
  maild__buf_init(&b, MAILD_ENV_FILE_MAX);
  rc = maild__envelope_encode(env, &b, &sp->mem);
  if (rc == 0 && install_env(sp, name, &b, due_ms, &renamed) != 0)
    rc = MAILD_ERR_IO;
  e = errno;
  maild__buf_free(&b, &sp->mem);
  errno = e;
  return rc;
}

int maild__spool_remove(maild_spool *sp, const char *id) {
  char name[MAILD_SPOOL_NAME_SIZE];
  int found = 0;

  if (sp == NULL || !maild__spool_id_valid(id))
    return MAILD_ERR_INVAL;
  make_name(name, id, ".env");
  if (sp->ops.unlinkat(sp->queue_fd, name, 0, UD(sp)) == 0)
    found = 1;
  else if (errno != ENOENT)
    return MAILD_ERR_IO;
  make_name(name, id, ".msg");
  if (sp->ops.unlinkat(sp->queue_fd, name, 0, UD(sp)) == 0)
    found = 1;
  else if (errno != ENOENT)
    return MAILD_ERR_IO;
  /* No fsync of queue/: if a crash loses the unlinks, the message is
     delivered again (at least once), never lost; and removal is on every
     message's path, so the fsync would cost every message. */
  return found ? 0 : MAILD_ERR_NOT_FOUND;
}

/* ---- Hold ---------------------------------------------------------------- */

/* hold/ under the spool, created (0700) when `create`; -1 with errno. */
static int hold_dir(maild_spool *sp, int create) {
  int root = sp_openat(sp, AT_FDCWD, sp->root, DIR_FLAGS), fd, created = 0;

  if (root < 0)
    return -1;
  if (create)
    fd = open_subdir(sp, root, "hold", &created);
  else
    fd = sp_openat(sp, root, "hold", DIR_FLAGS | O_NOFOLLOW);
  if (fd >= 0 && created && sp_fsync(sp, root) != 0) {
    sp_close_quiet(sp, fd);
    fd = -1;
  }
  sp_close_quiet(sp, root);
  return fd;
}

int maild__spool_hold(maild_spool *sp, const char *id, int hold) {
  int dir, fd, rc = 0;

  if (sp == NULL || !maild__spool_id_valid(id))
    return MAILD_ERR_INVAL;
  dir = hold_dir(sp, hold);
  if (dir < 0)
    return !hold && errno == ENOENT ? 0 : MAILD_ERR_IO;
  if (hold) {
    fd = sp->ops.openat(dir, id, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                        0600, UD(sp));
    if (fd < 0 || sp->ops.close(fd, UD(sp)) != 0)
      rc = MAILD_ERR_IO;
  } else if (sp->ops.unlinkat(dir, id, 0, UD(sp)) != 0 && errno != ENOENT) {
    rc = MAILD_ERR_IO;
  }
  if (rc == 0 && sp_fsync(sp, dir) != 0)
    rc = MAILD_ERR_IO;
  sp_close_quiet(sp, dir);
  return rc;
}

int maild__spool_held(maild_spool *sp, const char *id) {
  int dir, r;

  if (sp == NULL || !maild__spool_id_valid(id))
    return 0;
  dir = hold_dir(sp, 0);
  if (dir < 0)
    return 0;
  r = name_exists(dir, id) == 1;
  sp_close_quiet(sp, dir);
  return r;
}

/* ---- Due times ----------------------------------------------------------- */

int maild__spool_due(maild_spool *sp, const char *id, uint64_t *due_ms) {
  char name[MAILD_SPOOL_NAME_SIZE];
  struct stat st;

  if (sp == NULL || due_ms == NULL || !maild__spool_id_valid(id))
    return MAILD_ERR_INVAL;
  make_name(name, id, ".env");
  if (fstatat(sp->queue_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? MAILD_ERR_NOT_FOUND : MAILD_ERR_IO;
  *due_ms = due_of(&st);
  return 0;
}

int maild__spool_set_due(maild_spool *sp, const char *id, uint64_t due_ms) {
  char name[MAILD_SPOOL_NAME_SIZE];
  struct timespec ts[2];

  if (sp == NULL || !maild__spool_id_valid(id))
    return MAILD_ERR_INVAL;
  make_name(name, id, ".env");
  due_times(ts, due_ms);
  if (utimensat(sp->queue_fd, name, ts, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? MAILD_ERR_NOT_FOUND : MAILD_ERR_IO;
  return 0;
}

int64_t maild__spool_id_arrival(const char *id) {
  int64_t t = 0;
  size_t i;

  if (!maild__spool_id_valid(id) || id[0] > '7')
    return -1; /* not an id, or not a time maild__spool_begin() makes */
  for (i = 0; i < 16; i++)
    t = t * 16 + (id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
  return t;
}

/*
 * Hands each name in the directory open on `fd` (taken over: closed here)
 * to `fn` until it returns nonzero, which is returned. Entries renamed
 * away during the walk are fine: POSIX only leaves it open whether those
 * are returned. errno is kept across the close for a MAILD_ERR_IO.
 */
static int walk_dir(maild_spool *sp, int fd,
                    int (*fn)(const char *name, void *ud), void *ud) {
  struct dirent *de;
  DIR *d;
  int rc = 0, e;

  if (fd < 0)
    return MAILD_ERR_IO;
  d = fdopendir(fd);
  if (d == NULL) {
    sp_close_quiet(sp, fd);
    return MAILD_ERR_IO;
  }
  for (;;) {
    errno = 0;
    de = readdir(d);
    if (de == NULL) {
      rc = errno != 0 ? MAILD_ERR_IO : 0;
      break;
    }
    rc = fn(de->d_name, ud);
    if (rc != 0)
      break;
  }
  e = errno;
  (void)closedir(d);
  errno = e;
  return rc;
}

static int id_cmp(const void *a, const void *b) {
  return memcmp(a, b, MAILD_SPOOL_ID_LEN);
}

typedef struct hold_list {
  maild_spool *sp;
  char *ids; /* MAILD_SPOOL_ID_LEN octets each, no NUL */
  size_t n, cap;
} hold_list;

static int hold_add(const char *name, void *ud) {
  hold_list *h = ud;
  char *more;

  if (!maild__spool_id_valid(name))
    return 0;
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    more = maild__realloc(&h->sp->mem, h->ids, cap * MAILD_SPOOL_ID_LEN);
    if (more == NULL)
      return MAILD_ERR_NOMEM;
    h->ids = more;
    h->cap = cap;
  }
  memcpy(h->ids + h->n * MAILD_SPOOL_ID_LEN, name, MAILD_SPOOL_ID_LEN);
  h->n++;
  return 0;
}

/* The names in hold/ that are ids, sorted, MAILD_SPOOL_ID_LEN octets each
   (no NUL); *n 0 and *out NULL when there are none. */
static int read_holds(maild_spool *sp, char **out, size_t *n) {
  hold_list h = {sp, NULL, 0, 0};
  int fd, rc, e;

  *out = NULL;
  *n = 0;
  fd = hold_dir(sp, 0);
  if (fd < 0)
    return errno == ENOENT ? 0 : MAILD_ERR_IO;
  rc = walk_dir(sp, fd, hold_add, &h);
  if (rc != 0) {
    e = errno;
    maild__free(&sp->mem, h.ids);
    errno = e;
    return rc;
  }
  if (h.n > 1)
    qsort(h.ids, h.n, MAILD_SPOOL_ID_LEN, id_cmp);
  *out = h.ids;
  *n = h.n;
  return 0;
}

static int is_held(const char *holds, size_t nholds, const char *id) {
  return nholds > 0 &&
         bsearch(id, holds, nholds, MAILD_SPOOL_ID_LEN, id_cmp) != NULL;
}

typedef struct list_walk {
  maild_spool *sp;
  const char *holds;
  size_t nholds;
  maild_spool_list_cb cb;
  void *ud;
} list_walk;

/* Reports queue/<name> to the callback if it is a committed envelope. */
static int list_entry(const char *name, void *ud) {
  list_walk *w = ud;
  char id[MAILD_SPOOL_ID_LEN + 1];
  struct stat st;

  if (strlen(name) != MAILD_SPOOL_ID_LEN + 4 ||
      strcmp(name + MAILD_SPOOL_ID_LEN, ".env") != 0)
    return 0;
  memcpy(id, name, MAILD_SPOOL_ID_LEN);
  id[MAILD_SPOOL_ID_LEN] = '\0';
  if (!maild__spool_id_valid(id))
    return 0;
  if (fstatat(w->sp->queue_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? 0 : MAILD_ERR_IO; /* gone since listed */
  if (!S_ISREG(st.st_mode))
    return 0;
  return w->cb(id, due_of(&st), is_held(w->holds, w->nholds, id), w->ud);
}

int maild__spool_list(maild_spool *sp, maild_spool_list_cb cb,
                      void *user_data) {
  list_walk w = {sp, NULL, 0, cb, user_data};
  char *holds;
  int rc, e;

  if (sp == NULL || cb == NULL)
    return MAILD_ERR_INVAL;
  rc = read_holds(sp, &holds, &w.nholds);
  if (rc != 0)
    return rc;
  w.holds = holds;
  rc = walk_dir(sp, openat(sp->queue_fd, ".", DIR_FLAGS), list_entry, &w);
  e = errno;
  maild__free(&sp->mem, holds);
  errno = e;
  return rc;
}

/* ---- Scan ---------------------------------------------------------------- */

typedef struct scan {
  maild_spool *sp;
  maild_spool_scan_cb cb;
  void *ud;
  uint8_t *buf; /* READ_BUF octets for checking message files */
  int moved_tmp;
  int moved_queue;
  uint64_t due_ms; /* of the envelope being reported VALID */
  char *holds;     /* hold/'s ids, sorted (read_holds()) */
  size_t nholds;
} scan;

/* Result of checking one message, when no system error stopped it. */
enum { MSG_VALID = 0, MSG_CORRUPT = 1 };

/* Copies the id out of "<id>.env" / "<id>.msg"; returns ".env", ".msg" or
   NULL (then `id` is ""). */
static const char *parse_name(const char *name,
                              char id[MAILD_SPOOL_ID_LEN + 1]) {
  const char *ext;

  id[0] = '\0';
  if (strlen(name) != MAILD_SPOOL_ID_LEN + 4)
    return NULL;
  ext = name + MAILD_SPOOL_ID_LEN;
  if (strcmp(ext, ".env") != 0 && strcmp(ext, ".msg") != 0)
    return NULL;
  memcpy(id, name, MAILD_SPOOL_ID_LEN);
  id[MAILD_SPOOL_ID_LEN] = '\0';
  if (!maild__spool_id_valid(id)) {
    id[0] = '\0';
    return NULL;
  }
  return ext;
}

/* Candidate name `i` in corrupt/ for `name`: the name itself, then with
   ".1", ".2"...; names over 200 octets are cut and always get a suffix. */
static void aside_name(char to[ASIDE_NAME_SIZE], const char *name, unsigned i) {
  size_t n = strlen(name), keep = n > 200 ? 200 : n, nd = 0;
  char digits[12];

  memcpy(to, name, keep);
  if (i > 0 || keep < n) {
    do {
      digits[nd++] = (char)('0' + i % 10);
      i /= 10;
    } while (i > 0);
    to[keep++] = '.';
    while (nd > 0)
      to[keep++] = digits[--nd];
  }
  to[keep] = '\0';
}

/*
 * Renames `dirfd`/`name` into corrupt/ without replacing anything there;
 * `to` receives the new name. Returns 0 or -1 (errno).
 */
static int set_aside(scan *sc, int dirfd, const char *name,
                     char to[ASIDE_NAME_SIZE]) {
  maild_spool *sp = sc->sp;
  unsigned i;
  int used;

  for (i = 0; i < ASIDE_TRIES; i++) {
    aside_name(to, name, i);
    used = name_exists(sp->corrupt_fd, to);
    if (used < 0)
      return -1;
    if (used == 0)
      return sp_rename(sp, dirfd, name, sp->corrupt_fd, to);
  }
  errno = EEXIST;
  return -1;
}

static int report(scan *sc, maild_spool_scan_kind kind, const char *name,
                  const char *id, const char *reason, const char *moved_to,
                  maild_envelope **env) {
  maild_spool_scan_item item;
  int rc;

  item.kind = kind;
  item.name = name;
  item.id = id;
  item.reason = reason;
  item.moved_to = moved_to;
  item.env = env != NULL ? *env : NULL;
  item.due_ms = kind == MAILD_SPOOL_VALID ? sc->due_ms : 0;
  item.held = kind == MAILD_SPOOL_VALID && is_held(sc->holds, sc->nholds, id);
  rc = sc->cb(&item, sc->ud);
  if (env != NULL)
    *env = item.env;
  return rc;
}

/* Sets `dirfd`/`name` aside and reports it. */
static int aside_and_report(scan *sc, int dirfd, const char *name,
                            maild_spool_scan_kind kind, const char *reason) {
  char to[ASIDE_NAME_SIZE], id[MAILD_SPOOL_ID_LEN + 1];

  if (set_aside(sc, dirfd, name, to) != 0)
    return MAILD_ERR_IO;
  if (dirfd == sc->sp->tmp_fd)
    sc->moved_tmp = 1;
  else
    sc->moved_queue = 1;
  (void)parse_name(name, id);
  return report(sc, kind, name, id, reason, to, NULL);
}

/*
 * Checks queue/<id>.msg against `env`. Returns MSG_VALID, MSG_CORRUPT with
 * *why, or MAILD_ERR_IO when reading failed (the file is not judged).
 */
static int check_msg(scan *sc, const maild_envelope *env, const char **why) {
  maild_spool *sp = sc->sp;
  char name[MAILD_SPOOL_NAME_SIZE];
  struct stat st;
  uint64_t got = 0;
  uint32_t crc = 0;
  ssize_t k;
  int fd, rc = MAILD_ERR_IO, e;

  make_name(name, env->id, ".msg");
  fd = sp_openat(sp, sp->queue_fd, name, PROBE_FLAGS);
  if (fd < 0) {
    *why = errno == ENOENT  ? "message file missing"
           : errno == ELOOP ? "message file is a symlink"
                            : NULL;
    return *why != NULL ? MSG_CORRUPT : MAILD_ERR_IO;
  }
  if (fstat(fd, &st) != 0)
    goto out;
  rc = MSG_CORRUPT;
  *why = !S_ISREG(st.st_mode) ? "message not a regular file"
         : (uint64_t)st.st_size != env->msg_size
             ? "message size differs from envelope"
             : NULL;
  if (*why != NULL)
    goto out;
  for (;;) {
    k = read(fd, sc->buf, READ_BUF);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0) {
      rc = MAILD_ERR_IO;
      goto out;
    }
    if (k == 0)
      break;
    crc = maild__crc32(crc, sc->buf, (size_t)k);
    got += (uint64_t)k;
  }
  *why = got != env->msg_size    ? "message changed while read"
         : crc != env->msg_crc32 ? "message CRC differs from envelope"
                                 : NULL;
  rc = *why != NULL ? MSG_CORRUPT : MSG_VALID;
out:
  e = errno;
  sp_close_quiet(sp, fd);
  errno = e;
  return rc;
}

/* Sets aside queue/<id>.env and, if present, queue/<id>.msg. */
static int aside_message(scan *sc, const char *name, const char *id,
                         const char *why) {
  char msg[MAILD_SPOOL_NAME_SIZE], to[ASIDE_NAME_SIZE];
  int rc;

  make_name(msg, id, ".msg");
  if (set_aside(sc, sc->sp->queue_fd, name, to) != 0)
    return MAILD_ERR_IO;
  sc->moved_queue = 1;
  rc = name_exists(sc->sp->queue_fd, msg);
  if (rc < 0)
    return MAILD_ERR_IO;
  if (rc > 0) {
    char msg_to[ASIDE_NAME_SIZE];
    if (set_aside(sc, sc->sp->queue_fd, msg, msg_to) != 0)
      return MAILD_ERR_IO;
  }
  return report(sc, MAILD_SPOOL_CORRUPT, name, id, why, to, NULL);
}

/* Handles one queue/<id>.env: report VALID or set the message aside. */
static int scan_env(scan *sc, const char *name, const char *id) {
  maild_envelope *env = NULL;
  const char *why = NULL;
  int rc;

  rc = load_env(sc->sp, id, &env, &why);
  if (rc == MAILD_ERR_NOT_FOUND)
    return 0; /* gone since listed */
  if (rc == MAILD_ERR_SYNTAX || rc == MAILD_ERR_UNSUPPORTED)
    return aside_message(sc, name, id, why);
  if (rc != 0)
    return rc;
  rc = check_msg(sc, env, &why);
  if (rc == MSG_VALID && maild__spool_due(sc->sp, id, &sc->due_ms) != 0)
    rc = MAILD_ERR_IO; /* it was there a moment ago: not judged */
  if (rc == MSG_VALID)
    rc = report(sc, MAILD_SPOOL_VALID, name, id, NULL, NULL, &env);
  else if (rc == MSG_CORRUPT)
    rc = aside_message(sc, name, id, why);
  maild__envelope_free(env, &sc->sp->mem);
  return rc;
}

/* Second look at queue/: .msg files without .env, and foreign names. */
static int scan_leftover(scan *sc, const char *name, const char *id,
                         const char *ext) {
  char env[MAILD_SPOOL_NAME_SIZE];
  int rc;

  if (ext == NULL)
    return aside_and_report(sc, sc->sp->queue_fd, name, MAILD_SPOOL_CORRUPT,
                            "not a spool file name");
  if (strcmp(ext, ".env") == 0)
    return 0;
  make_name(env, id, ".env");
  rc = name_exists(sc->sp->queue_fd, env);
  if (rc != 0)
    return rc < 0 ? MAILD_ERR_IO : 0;
  return aside_and_report(sc, sc->sp->queue_fd, name, MAILD_SPOOL_ORPHAN,
                          "message without envelope: never committed");
}

enum { PASS_TMP, PASS_ENV, PASS_LEFTOVER };

static int scan_entry(scan *sc, int pass, const char *name) {
  char id[MAILD_SPOOL_ID_LEN + 1];
  const char *ext;

  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return 0;
  if (pass == PASS_TMP)
    return aside_and_report(sc, sc->sp->tmp_fd, name, MAILD_SPOOL_TEMP,
                            "incomplete: left in tmp/");
  ext = parse_name(name, id);
  if (pass == PASS_ENV)
    return ext != NULL && strcmp(ext, ".env") == 0 ? scan_env(sc, name, id) : 0;
  return scan_leftover(sc, name, id, ext);
}

typedef struct scan_pass {
  scan *sc;
  int pass;
} scan_pass;

static int scan_name(const char *name, void *ud) {
  scan_pass *p = ud;
  return scan_entry(p->sc, p->pass, name);
}

/* Lists `dirfd` through a descriptor of its own and hands each entry to
   scan_entry(). */
static int scan_dir(scan *sc, int dirfd, int pass) {
  scan_pass p = {sc, pass};

  return walk_dir(sc->sp, openat(dirfd, ".", DIR_FLAGS), scan_name, &p);
}

/* Makes the renames into corrupt/ durable: the new names, then the old. */
static int scan_sync(scan *sc) {
  maild_spool *sp = sc->sp;

  if (!sc->moved_tmp && !sc->moved_queue)
    return 0;
  if (sp_fsync(sp, sp->corrupt_fd) != 0 ||
      (sc->moved_tmp && sp_fsync(sp, sp->tmp_fd) != 0) ||
      (sc->moved_queue && sp_fsync(sp, sp->queue_fd) != 0))
    return MAILD_ERR_IO;
  return 0;
}

int maild__spool_scan(maild_spool *sp, maild_spool_scan_cb cb,
                      void *user_data) {
  scan sc;
  int rc, rc2, e;

  if (sp == NULL || cb == NULL)
    return MAILD_ERR_INVAL;
  memset(&sc, 0, sizeof(sc));
  sc.sp = sp;
  sc.cb = cb;
  sc.ud = user_data;
  sc.buf = maild__malloc(&sp->mem, READ_BUF);
  if (sc.buf == NULL)
    return MAILD_ERR_NOMEM;
  rc = read_holds(sp, &sc.holds, &sc.nholds);
  if (rc != 0) {
    maild__free(&sp->mem, sc.buf);
    return rc;
  }
  rc = scan_dir(&sc, sp->tmp_fd, PASS_TMP);
  if (rc == 0)
    rc = scan_dir(&sc, sp->queue_fd, PASS_ENV);
  if (rc == 0)
    rc = scan_dir(&sc, sp->queue_fd, PASS_LEFTOVER);
  e = errno;
  rc2 = scan_sync(&sc);
  if (rc == 0) {
    rc = rc2;
    e = errno;
  }
  maild__free(&sp->mem, sc.buf);
  maild__free(&sp->mem, sc.holds);
  errno = e;
  return rc;
}
