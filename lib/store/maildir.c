/*
 * The built-in Maildir backend of the mailbox store (layout, naming and
 * quota rules are documented in include/maild/store.h).
 *
 * Two concerns shape this file. Durability: a message becomes visible in
 * new/ only once its content is on stable storage, and new/ is fsync'd
 * before delivery reports success (DESIGN.md "Durability"); the spool's
 * committed file is hard-linked when it can be, so a large message is not
 * copied once per recipient. Safety: an address is never used as a path.
 * Each part is checked, encoded injectively, and every directory level is
 * opened relative to the root descriptor with O_NOFOLLOW, so neither a
 * crafted local part nor a planted symlink can reach outside the root.
 *
 * The read side (POP3) locks a mailbox with flock() on a lock file, takes
 * a snapshot of new/ and cur/, sizes each message as it will be sent
 * (CRLF), and derives the UIDL from the unique part of the name, which no
 * move or flag changes. Opening moves nothing: a session is served from
 * where the messages lie, and only when it closes do the messages it
 * listed (and did not delete) move from new/ to cur/, with the size cached
 * in the name (",W=") and the ":2," info (Maildir++). So a login costs one
 * directory scan, the client gets its answers before any rename, and mail
 * it deletes is never moved first.
 *
 * Plain blocking POSIX I/O: the runtime calls this on worker threads, and
 * several threads may deliver through one store at once (the only shared
 * mutable state is an atomic counter). Time and randomness come from the
 * configuration so tests can pin them.
 */
#define _GNU_SOURCE /* syncfs(2), renameat2(2) */
#include "maild/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h> /* qsort() */
#include <stdio.h>  /* renameat(), renameat2(): declared here; no streams */
#include <string.h>
#include <sys/file.h>   /* flock() */
#include <sys/random.h> /* getentropy(): glibc declares it here unguarded */
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "maild/error.h"

/* Longest file or directory name this backend writes (NAME_MAX). */
#define MAILDIR_NAME_MAX 255
/* Host names longer than this (raw octets) are refused in the config. */
#define MAILDIR_HOST_MAX 64
/* Longest encoded host part of a file name; keeps names under NAME_MAX. */
#define MAILDIR_HOST_ENC_MAX 100
/* Unique names tried before giving up (collisions need a clock jump). */
#define MAILDIR_ATTEMPTS 8
/* Copy buffer size, allocated per copied delivery. */
#define MAILDIR_COPY_CHUNK 65536
/* Internal: the chosen name exists already; try another one. */
#define MAILDIR_RETRY MAILD_ERR_EXISTS

enum { BOX_TMP, BOX_NEW, BOX_CUR, BOX_DIRS };
static const char *const box_dir_names[BOX_DIRS] = {"tmp", "new", "cur"};

typedef struct maildir {
  maild_mem mem;
  int root_fd;
  uint64_t quota;
  uint64_t (*quota_of)(const char *domain, const char *local, void *ud);
  uint64_t (*now_usec)(void *user_data);
  uint32_t (*random32)(void *user_data);
  void *user_data;
  atomic_uint_fast64_t counter;
  char host[MAILDIR_HOST_ENC_MAX + 1];
} maildir;

static int io_error(maild_store_result *res, int err) {
  res->sys_errno = err;
  return MAILD_ERR_IO;
}

/* ---- Names ------------------------------------------------------------ */

static int keep_octet(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '+' || c == '-' || c >= 0x80;
}

/*
 * Writes the on-disk form of the (already folded) address part `src` into
 * `dst` (MAILDIR_NAME_MAX + 1 octets): kept octets as they are, any other
 * as %XX. Refuses names that start with '.' (".", "..", hidden files) or
 * contain '/', and encodings longer than NAME_MAX.
 */
static int maildir_encode(char *dst, const char *src) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;

  if (src[0] == '\0' || src[0] == '.')
    return MAILD_ERR_INVAL;
  for (; *src != '\0'; src++) {
    unsigned char c = (unsigned char)*src;
    if (c == '/')
      return MAILD_ERR_INVAL;
    if (keep_octet(c)) {
      if (n + 1 > MAILDIR_NAME_MAX)
        return MAILD_ERR_INVAL;
      dst[n++] = (char)c;
    } else {
      if (n + 3 > MAILDIR_NAME_MAX)
        return MAILD_ERR_INVAL;
      dst[n++] = '%';
      dst[n++] = hex[c >> 4];
      dst[n++] = hex[c & 15];
    }
  }
  dst[n] = '\0';
  return 0;
}

/* ASCII lower-case copy of `src` into `dst` (same capacity). */
static void fold_ascii(char *dst, const char *src) {
  for (; *src != '\0'; src++, dst++) {
    unsigned char c = (unsigned char)*src;
    *dst = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  *dst = '\0';
}

/*
 * Host part of file names: printable ASCII kept, but '/', ':' and ','
 * (Maildir and Maildir++ separators), '\\' and everything else written as
 * \ooo, the way qmail does. Cut at a whole escape past the limit.
 */
static void encode_host(char *dst, const char *src, size_t len) {
  size_t i, n = 0;

  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)src[i];
    if (c > 0x20 && c < 0x7f && c != '/' && c != ':' && c != ',' && c != '\\') {
      if (n + 1 > MAILDIR_HOST_ENC_MAX)
        break;
      dst[n++] = (char)c;
    } else {
      if (n + 4 > MAILDIR_HOST_ENC_MAX)
        break;
      dst[n++] = '\\';
      dst[n++] = (char)('0' + (c >> 6));
      dst[n++] = (char)('0' + ((c >> 3) & 7));
      dst[n++] = (char)('0' + (c & 7));
    }
  }
  dst[n] = '\0';
}

/* A bounded string builder for unique names. */
typedef struct namebuf {
  char *p;
  size_t len;
  size_t cap; /* NUL included */
  int overflow;
} namebuf;

static void nb_str(namebuf *b, const char *s) {
  size_t n = strlen(s);
  if (b->len + n >= b->cap) {
    b->overflow = 1;
    return;
  }
  memcpy(b->p + b->len, s, n + 1);
  b->len += n;
}

static void nb_u64(namebuf *b, uint64_t v) {
  char tmp[24];
  size_t i = sizeof(tmp) - 1;
  tmp[i] = '\0';
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  nb_str(b, tmp + i);
}

static void nb_hex32(namebuf *b, uint32_t v) {
  static const char hex[] = "0123456789abcdef";
  char tmp[9];
  int i;
  for (i = 7; i >= 0; i--) {
    tmp[i] = hex[v & 15];
    v >>= 4;
  }
  tmp[8] = '\0';
  nb_str(b, tmp);
}

/* <sec>.M<usec>P<pid>Q<counter>R<random>.<host>,S=<size> */
static int maildir_unique_name(maildir *md, uint64_t size, char *dst,
                               size_t cap) {
  namebuf b = {dst, 0, cap, 0};
  uint64_t now = md->now_usec(md->user_data);
  uint64_t q = atomic_fetch_add(&md->counter, 1) + 1;

  dst[0] = '\0';
  nb_u64(&b, now / 1000000);
  nb_str(&b, ".M");
  nb_u64(&b, now % 1000000);
  nb_str(&b, "P");
  nb_u64(&b, (uint64_t)getpid());
  nb_str(&b, "Q");
  nb_u64(&b, q);
  nb_str(&b, "R");
  nb_hex32(&b, md->random32(md->user_data));
  nb_str(&b, ".");
  nb_str(&b, md->host);
  nb_str(&b, ",S=");
  nb_u64(&b, size);
  return b.overflow ? MAILD_ERR_INTERNAL : 0;
}

/* ---- Directories ------------------------------------------------------ */

/*
 * Opens the directory `name` under `parent` without following a symlink,
 * creating it (0700) when missing. Another thread creating it at the same
 * time is fine. A new directory is fsync'd into its parent so the mailbox
 * does not vanish in a crash after a successful delivery.
 */
static int open_dir(int parent, const char *name, maild_store_result *res) {
  const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int fd = openat(parent, name, flags);

  if (fd >= 0)
    return fd;
  if (errno != ENOENT)
    return io_error(res, errno);
  if (mkdirat(parent, name, 0700) != 0 && errno != EEXIST)
    return io_error(res, errno);
  if (fsync(parent) != 0)
    return io_error(res, errno);
  fd = openat(parent, name, flags);
  if (fd < 0)
    return io_error(res, errno);
  return fd;
}

static void close_box(int fds[BOX_DIRS]) {
  int i;
  for (i = 0; i < BOX_DIRS; i++) {
    if (fds[i] >= 0)
      close(fds[i]);
    fds[i] = -1;
  }
}

/* Opens (creating as needed) tmp/, new/ and cur/ of one mailbox. */
static int open_box(const maildir *md, const char *dom, const char *loc,
                    int fds[BOX_DIRS], maild_store_result *res) {
  int dfd, lfd, i;

  for (i = 0; i < BOX_DIRS; i++)
    fds[i] = -1;
  dfd = open_dir(md->root_fd, dom, res);
  if (dfd < 0)
    return dfd;
  lfd = open_dir(dfd, loc, res);
  close(dfd);
  if (lfd < 0)
    return lfd;
  for (i = 0; i < BOX_DIRS; i++) {
    fds[i] = open_dir(lfd, box_dir_names[i], res);
    if (fds[i] < 0) {
      int rc = fds[i];
      fds[i] = -1;
      close(lfd);
      close_box(fds);
      return rc;
    }
  }
  close(lfd);
  return 0;
}

/* ---- Quota ------------------------------------------------------------ */

/* The Maildir++ tag ",<key>=<digits>" before any ':' of a file name, if
   any: S= is the size on disk (quota), W= the size with CRLF line ends
   (POP3). */
static int parse_tag(const char *name, char key, uint64_t *out) {
  const char *p;
  uint64_t v = 0;

  for (p = name; *p != '\0' && *p != ':'; p++) {
    if (p[0] != ',' || p[1] != key || p[2] != '=')
      continue;
    p += 3;
    if (*p < '0' || *p > '9')
      return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
      unsigned d = (unsigned)(*p - '0');
      if (v > (UINT64_MAX - d) / 10)
        return -1;
      v = v * 10 + d;
    }
    if (*p != '\0' && *p != ',' && *p != ':')
      return -1;
    *out = v;
    return 0;
  }
  return -1;
}

static void add_sat(uint64_t *sum, uint64_t v) {
  *sum = v > UINT64_MAX - *sum ? UINT64_MAX : *sum + v;
}

/* Adds the sizes of the messages in one Maildir subdirectory to `*sum`. */
static int dir_size(int dirfd_, uint64_t *sum, maild_store_result *res) {
  struct dirent *e;
  struct stat sb;
  uint64_t v;
  DIR *d;
  int fd, rc = 0;

  /* A fresh open file description, so readdir's offset is our own. */
  fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return io_error(res, errno);
  d = fdopendir(fd);
  if (d == NULL) {
    rc = io_error(res, errno);
    close(fd);
    return rc;
  }
  for (;;) {
    errno = 0;
    e = readdir(d);
    if (e == NULL) {
      if (errno != 0)
        rc = io_error(res, errno);
      break;
    }
    if (e->d_name[0] == '.')
      continue;
    if (parse_tag(e->d_name, 'S', &v) == 0) {
      add_sat(sum, v);
      continue;
    }
    /* Untagged (written by another program): ask the file. A file moved
       away meanwhile (a reader took it from new/ to cur/) is skipped. */
    if (fstatat(fd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT)
        continue;
      rc = io_error(res, errno);
      break;
    }
    if (S_ISREG(sb.st_mode) && sb.st_size > 0)
      add_sat(sum, (uint64_t)sb.st_size);
  }
  closedir(d);
  return rc;
}

static int check_quota(const maildir *md, const char *domain, const char *local,
                       const int fds[BOX_DIRS], uint64_t size,
                       maild_store_result *res) {
  uint64_t limit, used = 0;
  int rc;

  limit = md->quota_of != NULL ? md->quota_of(domain, local, md->user_data)
                               : md->quota;
  if (limit == 0)
    return 0;
  rc = dir_size(fds[BOX_NEW], &used, res);
  if (rc == 0)
    rc = dir_size(fds[BOX_CUR], &used, res);
  if (rc != 0)
    return rc;
  res->quota = limit;
  res->used = used;
  if (used > limit || size > limit - used)
    return MAILD_ERR_LIMIT;
  return 0;
}

/* ---- Writing one message ---------------------------------------------- */

/*
 * Tries to place the message in tmp/ as a hard link of the spool file.
 * Returns 0 (linked), 1 (not linked: copy instead) or MAILDIR_RETRY
 * (name taken).
 */
static int link_into_tmp(int tmpfd, const char *name,
                         const maild_store_message *msg) {
  struct stat a, b;

  if (msg->link_name == NULL)
    return 1;
  if (linkat(msg->link_dirfd, msg->link_name, tmpfd, name, 0) != 0)
    return errno == EEXIST ? MAILDIR_RETRY : 1;
  /* The name must lead to the very file behind `fd`, with its size:
     otherwise we would deliver something else. Copy instead. */
  if (fstat(msg->fd, &a) != 0 ||
      fstatat(tmpfd, name, &b, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISREG(b.st_mode) || a.st_dev != b.st_dev || a.st_ino != b.st_ino ||
      b.st_size < 0 || (uint64_t)b.st_size != msg->size) {
    (void)unlinkat(tmpfd, name, 0);
    return 1;
  }
  /* No fsync of the file: its content is already durable (the spool
     committed it), and the link's inode update is journaled with the
     directory entries that the fsync of new/ makes durable. */
  return 0;
}

/* Copies octets [0, size) of the message into `fd`, by pread(). */
static int copy_content(const maildir *md, int fd,
                        const maild_store_message *msg,
                        maild_store_result *res) {
  size_t chunk =
      msg->size < MAILDIR_COPY_CHUNK ? (size_t)msg->size : MAILDIR_COPY_CHUNK;
  uint64_t off = 0;
  char *buf;
  int rc = 0;

  if (msg->size == 0)
    return 0;
  buf = maild__malloc(&md->mem, chunk);
  if (buf == NULL)
    return MAILD_ERR_NOMEM;
  while (off < msg->size && rc == 0) {
    uint64_t left = msg->size - off;
    size_t want = left < chunk ? (size_t)left : chunk;
    size_t done = 0;
    ssize_t n = pread(msg->fd, buf, want, (off_t)off);
    if (n < 0) {
      if (errno != EINTR)
        rc = io_error(res, errno);
      continue;
    }
    if (n == 0) {
      rc = io_error(res, 0); /* content shorter than msg->size */
      continue;
    }
    while (done < (size_t)n && rc == 0) {
      ssize_t w = write(fd, buf + done, (size_t)n - done);
      if (w > 0)
        done += (size_t)w;
      else if (w < 0 && errno != EINTR)
        rc = io_error(res, errno);
      else if (w == 0)
        rc = io_error(res, EIO);
    }
    off += (uint64_t)n;
  }
  maild__free(&md->mem, buf);
  return rc;
}

/*
 * Creates tmp/<name> exclusively and copies the message into it, fsync'd.
 * Returns 0, MAILDIR_RETRY, MAILD_ERR_IO or MAILD_ERR_NOMEM; on failure
 * the file is gone.
 */
static int copy_into_tmp(const maildir *md, int tmpfd, const char *name,
                         const maild_store_message *msg,
                         maild_store_result *res) {
  int fd, rc;

  fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
  if (fd < 0)
    return errno == EEXIST ? MAILDIR_RETRY : io_error(res, errno);
  rc = copy_content(md, fd, msg, res);
  if (rc == 0 && fsync(fd) != 0)
    rc = io_error(res, errno);
  if (close(fd) != 0 && rc == 0)
    rc = io_error(res, errno);
  if (rc != 0)
    (void)unlinkat(tmpfd, name, 0);
  return rc;
}

/*
 * Moves tmp/<name> to new/<name> and makes it durable. A link refuses to
 * replace an existing file (rename would not); rename is the fallback for
 * filesystems without hard links. Returns 0, MAILDIR_RETRY or
 * MAILD_ERR_IO; on failure the file is in neither directory.
 */
static int publish(int tmpfd, int newfd, const char *name, int sync,
                   maild_store_result *res) {
  int err;

  if (linkat(tmpfd, name, newfd, name, 0) == 0) {
    (void)unlinkat(tmpfd, name, 0); /* a leftover in tmp/ is harmless */
  } else if (errno == EEXIST) {
    (void)unlinkat(tmpfd, name, 0);
    return MAILDIR_RETRY;
  } else if (renameat(tmpfd, name, newfd, name) != 0) {
    err = errno;
    (void)unlinkat(tmpfd, name, 0);
    return io_error(res, err);
  }
  if (sync && fsync(newfd) != 0) {
    err = errno;
    /* Not known to be durable: withdraw it so a retry does not make a
       duplicate (at-least-once holds either way). */
    (void)unlinkat(newfd, name, 0);
    return io_error(res, err);
  }
  return 0;
}

static int write_message(maildir *md, const int fds[BOX_DIRS],
                         const maild_store_message *msg,
                         maild_store_result *res) {
  char name[MAILD_STORE_ID_MAX];
  int attempt, rc = MAILDIR_RETRY;

  for (attempt = 0; attempt < MAILDIR_ATTEMPTS && rc == MAILDIR_RETRY;
       attempt++) {
    rc = maildir_unique_name(md, msg->size, name, sizeof(name));
    if (rc != 0)
      return rc;
    res->linked = 0;
    rc = link_into_tmp(fds[BOX_TMP], name, msg);
    if (rc == 0)
      res->linked = 1;
    else if (rc == 1)
      rc = copy_into_tmp(md, fds[BOX_TMP], name, msg, res);
    if (rc == 0)
      rc = publish(fds[BOX_TMP], fds[BOX_NEW], name,
                   !(msg->flags & MAILD_STORE_NO_SYNC), res);
  }
  if (rc == MAILDIR_RETRY)
    return io_error(res, EEXIST);
  if (rc != 0) {
    res->linked = 0;
    return rc;
  }
  memcpy(res->id, name, strlen(name) + 1);
  return 0;
}

/* ---- The backend ------------------------------------------------------ */

static int maildir_deliver(maild_store *st, const maild_store_message *msg,
                           const char *domain, const char *local,
                           maild_store_result *res, void *backend_data) {
  maildir *md = backend_data;
  char folded[MAILD_STORE_NAME_MAX + 1];
  char dom[MAILDIR_NAME_MAX + 1], loc[MAILDIR_NAME_MAX + 1];
  int fds[BOX_DIRS];
  int rc;

  (void)st;
  if (msg->size > (uint64_t)INT64_MAX)
    return MAILD_ERR_INVAL;
  fold_ascii(folded, local);
  rc = maildir_encode(dom, domain);
  if (rc == 0)
    rc = maildir_encode(loc, folded);
  if (rc != 0)
    return rc;
  rc = open_box(md, dom, loc, fds, res);
  if (rc != 0)
    return rc;
  rc = check_quota(md, domain, folded, fds, msg->size, res);
  if (rc == 0)
    rc = write_message(md, fds, msg, res);
  close_box(fds);
  return rc;
}

static void maildir_destroy(maild_store *st, void *backend_data) {
  maildir *md = backend_data;
  (void)st;
  close(md->root_fd);
  maild__free(&md->mem, md);
}

/* One barrier for the whole file system holding the mailboxes. */
static int maildir_sync(maild_store *st, void *backend_data) {
  maildir *md = backend_data;

  (void)st;
  return syncfs(md->root_fd) == 0 ? 0 : MAILD_ERR_IO;
}

/* Removes new/<id> again (see maild_store_withdraw). */
static int maildir_withdraw(maild_store *st, const char *domain,
                            const char *local, const char *id,
                            void *backend_data) {
  maildir *md = backend_data;
  maild_store_result res;
  char folded[MAILD_STORE_NAME_MAX + 1];
  char dom[MAILDIR_NAME_MAX + 1], loc[MAILDIR_NAME_MAX + 1];
  int fds[BOX_DIRS];
  int rc;

  (void)st;
  if (strchr(id, '/') != NULL || id[0] == '.')
    return MAILD_ERR_INVAL;
  memset(&res, 0, sizeof(res));
  fold_ascii(folded, local);
  rc = maildir_encode(dom, domain);
  if (rc == 0)
    rc = maildir_encode(loc, folded);
  if (rc == 0)
    rc = open_box(md, dom, loc, fds, &res);
  if (rc != 0)
    return rc;
  if (unlinkat(fds[BOX_NEW], id, 0) != 0)
    rc = errno == ENOENT ? MAILD_ERR_NOT_FOUND : MAILD_ERR_IO;
  close_box(fds);
  return rc;
}

/* ---- Reading (POP3) --------------------------------------------------- */

#define MAILDIR_LOCK_NAME  "maild-pop3.lock"
#define MAILDIR_UIDL_MAX   70
#define MAILDIR_SCAN_CHUNK 65536

typedef struct box_msg {
  char *name;    /* file name in its directory */
  int dir;       /* BOX_NEW or BOX_CUR */
  int tagged;    /* the name carries its W= size */
  int gone;      /* expunged */
  uint64_t size; /* as sent: CRLF line ends */
  uint64_t sec, usec;
  char uidl[MAILDIR_UIDL_MAX + 1];
} box_msg;

typedef struct maildir_box {
  maildir *md;
  int fds[BOX_DIRS];
  int lock_fd;
  box_msg *msgs;
  size_t count, cap;
  size_t open_i; /* message behind read_fd */
  int read_fd;
} maildir_box;

/* <sec>.M<usec> at the start of a name (0 where absent). */
static void parse_time(const char *name, uint64_t *sec, uint64_t *usec) {
  const char *p = name;
  uint64_t v = 0;

  *sec = *usec = 0;
  for (; *p >= '0' && *p <= '9' && v < UINT64_MAX / 100; p++)
    v = v * 10 + (uint64_t)(*p - '0');
  *sec = v;
  if (p[0] != '.' || p[1] != 'M')
    return;
  v = 0;
  for (p += 2; *p >= '0' && *p <= '9' && v < UINT64_MAX / 100; p++)
    v = v * 10 + (uint64_t)(*p - '0');
  *usec = v;
}

static uint64_t fnv1a(const char *s, size_t n, uint64_t h) {
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

static void hash_uidl(char *dst, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  uint64_t h[2];
  int i, j, k = 0;

  h[0] = fnv1a(s, n, UINT64_C(0xcbf29ce484222325));
  h[1] = fnv1a(s, n, UINT64_C(0x84222325cbf29ce4) ^ (uint64_t)n);
  dst[k++] = '~';
  for (j = 0; j < 2; j++)
    for (i = 60; i >= 0; i -= 4)
      dst[k++] = hex[(h[j] >> i) & 15];
  dst[k] = '\0';
}

/* The UIDL of a file name: its base (up to the first ',' or ':'). */
static void make_uidl(char *dst, const char *name) {
  size_t n = strcspn(name, ",:"), i;
  int ok = n > 0 && n <= MAILDIR_UIDL_MAX;

  for (i = 0; ok && i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c < 0x21 || c > 0x7e)
      ok = 0;
  }
  if (!ok) {
    hash_uidl(dst, name, n);
    return;
  }
  memcpy(dst, name, n);
  dst[n] = '\0';
}

/* Size with every line end (CRLF, bare LF, bare CR) counted as CRLF. */
static int crlf_size(maildir *md, int fd, uint64_t *size) {
  uint8_t *buf = maild__malloc(&md->mem, MAILDIR_SCAN_CHUNK);
  uint64_t off = 0, sz = 0;
  int prev_cr = 0, rc = 0;

  if (buf == NULL)
    return MAILD_ERR_NOMEM;
  for (;;) {
    ssize_t n = pread(fd, buf, MAILDIR_SCAN_CHUNK, (off_t)off);
    ssize_t i;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      rc = MAILD_ERR_IO;
      break;
    }
    if (n == 0)
      break;
    for (i = 0; i < n; i++) {
      if (buf[i] == '\r') {
        sz += 2;
        prev_cr = 1;
      } else {
        sz += buf[i] == '\n' ? (prev_cr ? 0 : 2) : 1;
        prev_cr = 0;
      }
    }
    off += (uint64_t)n;
  }
  maild__free(&md->mem, buf);
  *size = sz;
  return rc;
}

static int box_add(maildir_box *b, const char *name, int dir) {
  box_msg *m;

  if (b->count == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    box_msg *p = maild__realloc(&b->md->mem, b->msgs, cap * sizeof(*p));
    if (p == NULL)
      return MAILD_ERR_NOMEM;
    b->msgs = p;
    b->cap = cap;
  }
  m = &b->msgs[b->count];
  memset(m, 0, sizeof(*m));
  m->name = maild__strndup(&b->md->mem, name, strlen(name));
  if (m->name == NULL)
    return MAILD_ERR_NOMEM;
  m->dir = dir;
  b->count++;
  return 0;
}

/*
 * Moves `from` in new/ to `to` in cur/ without ever replacing a file in
 * cur/ (the scan of cur/ listed it already): renameat2(RENAME_NOREPLACE)
 * where the file system has it, else link and unlink; plain rename only
 * for file systems without hard links. Returns 0 when moved, 1 when the
 * message stays in new/ (the name is taken in cur/, or the old name could
 * not be removed), 2 when `from` vanished, MAILD_ERR_IO otherwise.
 */
static int move_to_cur(maildir_box *b, const char *from, const char *to) {
#ifdef RENAME_NOREPLACE
  if (renameat2(b->fds[BOX_NEW], from, b->fds[BOX_CUR], to, RENAME_NOREPLACE) ==
      0)
    return 0;
  if (errno == EEXIST)
    return 1;
  if (errno == ENOENT)
    return 2;
  if (errno != EINVAL && errno != ENOSYS)
    return MAILD_ERR_IO;
#endif
  if (linkat(b->fds[BOX_NEW], from, b->fds[BOX_CUR], to, 0) == 0) {
    if (unlinkat(b->fds[BOX_NEW], from, 0) != 0 && errno != ENOENT) {
      (void)unlinkat(b->fds[BOX_CUR], to, 0);
      return 1;
    }
    return 0;
  }
  if (errno == EEXIST)
    return 1;
  if (errno == ENOENT)
    return 2;
  if (renameat(b->fds[BOX_NEW], from, b->fds[BOX_CUR], to) != 0)
    return errno == ENOENT ? 2 : MAILD_ERR_IO;
  return 0;
}

/*
 * Sizes message `m`: from its W= tag, else by reading it. Returns 1 when
 * the file vanished or is not a regular file (skip it), 0, or an error.
 */
static int box_size(maildir_box *b, box_msg *m) {
  struct stat sb;
  int fd, rc;

  m->tagged = parse_tag(m->name, 'W', &m->size) == 0;
  if (m->tagged)
    return 0;
  /* O_NONBLOCK: a planted FIFO must not hang the open. */
  fd = openat(b->fds[m->dir], m->name,
              O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 1 : errno == ELOOP ? 1 : MAILD_ERR_IO;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return 1;
  }
  rc = crlf_size(b->md, fd, &m->size);
  close(fd);
  return rc;
}

/*
 * Moves the session's messages that are still in new/ (all but the
 * expunged ones: the client has seen them listed) to cur/ as
 * <name>[,W=<size>]:2, and makes the moves durable. Best effort: a message that
 * cannot move stays in new/ and keeps its UIDL, so nothing is lost or changed
 * for POP3 either way.
 */
static void box_settle(maildir_box *b) {
  char name[MAILDIR_NAME_MAX + 1];
  size_t i;
  int moved = 0;

  for (i = 0; i < b->count; i++) {
    const box_msg *m = &b->msgs[i];
    namebuf nb = {name, 0, sizeof(name), 0};

    if (m->gone || m->dir != BOX_NEW)
      continue;
    nb_str(&nb, m->name);
    if (strchr(m->name, ':') == NULL) {
      if (!m->tagged) {
        nb_str(&nb, ",W=");
        nb_u64(&nb, m->size);
      }
      nb_str(&nb, ":2,");
    }
    if (!nb.overflow && move_to_cur(b, m->name, name) == 0)
      moved = 1;
  }
  if (moved) {
    (void)fsync(b->fds[BOX_CUR]);
    (void)fsync(b->fds[BOX_NEW]);
  }
}

static int box_scan(maildir_box *b, int dir) {
  struct dirent *e;
  DIR *d;
  int fd, rc = 0;

  fd = openat(b->fds[dir], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return MAILD_ERR_IO;
  d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return MAILD_ERR_IO;
  }
  for (;;) {
    errno = 0;
    e = readdir(d);
    if (e == NULL) {
      if (errno != 0)
        rc = MAILD_ERR_IO;
      break;
    }
    if (e->d_name[0] == '.')
      continue;
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
      continue;
    rc = box_add(b, e->d_name, dir);
    if (rc != 0)
      break;
  }
  closedir(d);
  return rc;
}

static int box_msg_cmp(const void *pa, const void *pb) {
  const box_msg *a = pa, *b = pb;

  if (a->sec != b->sec)
    return a->sec < b->sec ? -1 : 1;
  if (a->usec != b->usec)
    return a->usec < b->usec ? -1 : 1;
  return strcmp(a->name, b->name);
}

static void box_free(maildir_box *b) {
  size_t i;

  for (i = 0; i < b->count; i++)
    maild__free(&b->md->mem, b->msgs[i].name);
  maild__free(&b->md->mem, b->msgs);
  if (b->read_fd >= 0)
    close(b->read_fd);
  close_box(b->fds);
  if (b->lock_fd >= 0)
    close(b->lock_fd); /* drops the flock */
  maild__free(&b->md->mem, b);
}

/* Opens the mailbox directories (creating them) and takes the lock. */
static int box_lock(maildir_box *b, const char *dom, const char *loc) {
  maild_store_result res;
  int dfd, lfd, i, rc = 0;

  memset(&res, 0, sizeof(res));
  dfd = open_dir(b->md->root_fd, dom, &res);
  if (dfd < 0)
    return dfd;
  lfd = open_dir(dfd, loc, &res);
  close(dfd);
  if (lfd < 0)
    return lfd;
  b->lock_fd = openat(lfd, MAILDIR_LOCK_NAME,
                      O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (b->lock_fd < 0)
    rc = MAILD_ERR_IO;
  else if (flock(b->lock_fd, LOCK_EX | LOCK_NB) != 0)
    rc = errno == EWOULDBLOCK ? MAILD_ERR_EXISTS : MAILD_ERR_IO;
  for (i = 0; i < BOX_DIRS && rc == 0; i++) {
    b->fds[i] = open_dir(lfd, box_dir_names[i], &res);
    if (b->fds[i] < 0) {
      rc = b->fds[i];
      b->fds[i] = -1;
    }
  }
  close(lfd);
  return rc;
}

static int uidl_ptr_cmp(const void *pa, const void *pb) {
  const box_msg *a = *(const box_msg *const *)pa;
  const box_msg *b = *(const box_msg *const *)pb;
  int c = strcmp(a->uidl, b->uidl);
  return c != 0 ? c : (a < b ? -1 : a > b);
}

/*
 * Two files with one base (a copy made by another program): all but the
 * first in message order get a hash of their whole name (unique within a
 * directory; stable while their flags do not change), so UIDLs stay
 * unique. O(n log n): mailboxes may hold many thousand messages.
 */
static int box_unique_uidls(maildir_box *b) {
  box_msg **v;
  size_t i;

  if (b->count < 2)
    return 0;
  v = maild__malloc(&b->md->mem, b->count * sizeof(*v));
  if (v == NULL)
    return MAILD_ERR_NOMEM;
  for (i = 0; i < b->count; i++)
    v[i] = &b->msgs[i];
  qsort(v, b->count, sizeof(*v), uidl_ptr_cmp);
  for (i = b->count - 1; i > 0; i--) {
    if (strcmp(v[i]->uidl, v[i - 1]->uidl) == 0)
      hash_uidl(v[i]->uidl, v[i]->name, strlen(v[i]->name));
  }
  maild__free(&b->md->mem, v);
  return 0;
}

static int maildir_box_open(maild_store *st, const char *domain,
                            const char *local, void **out, void *backend_data) {
  maildir *md = backend_data;
  char folded[MAILD_STORE_NAME_MAX + 1];
  char dom[MAILDIR_NAME_MAX + 1], loc[MAILDIR_NAME_MAX + 1];
  maildir_box *b;
  size_t i, j;
  int rc;

  (void)st;
  fold_ascii(folded, local);
  rc = maildir_encode(dom, domain);
  if (rc == 0)
    rc = maildir_encode(loc, folded);
  if (rc != 0)
    return rc;
  b = maild__calloc(&md->mem, 1, sizeof(*b));
  if (b == NULL)
    return MAILD_ERR_NOMEM;
  b->md = md;
  b->lock_fd = b->read_fd = -1;
  for (i = 0; i < BOX_DIRS; i++)
    b->fds[i] = -1;
  rc = box_lock(b, dom, loc);
  if (rc == 0)
    rc = box_scan(b, BOX_NEW);
  if (rc == 0)
    rc = box_scan(b, BOX_CUR);
  /* Size every message; drop the ones that vanished. */
  for (i = j = 0; rc == 0 && i < b->count; i++) {
    int r = box_size(b, &b->msgs[i]);
    if (r < 0) {
      rc = r;
      break;
    }
    if (r == 1) {
      maild__free(&md->mem, b->msgs[i].name);
      continue;
    }
    b->msgs[j++] = b->msgs[i];
  }
  if (rc != 0) {
    /* Entries [j, i) were moved down or freed; keep the count right. */
    for (; i < b->count; i++)
      b->msgs[j++] = b->msgs[i];
  }
  b->count = j;
  if (rc != 0) {
    box_free(b);
    return rc;
  }
  for (i = 0; i < b->count; i++) {
    box_msg *m = &b->msgs[i];
    parse_time(m->name, &m->sec, &m->usec);
    make_uidl(m->uidl, m->name);
  }
  if (b->count > 1)
    qsort(b->msgs, b->count, sizeof(*b->msgs), box_msg_cmp);
  rc = box_unique_uidls(b);
  if (rc != 0) {
    box_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

static void maildir_box_close(maild_store *st, void *box, void *backend_data) {
  (void)st;
  (void)backend_data;
  box_settle(box);
  box_free(box);
}

static size_t maildir_box_count(maild_store *st, void *box,
                                void *backend_data) {
  (void)st;
  (void)backend_data;
  return ((maildir_box *)box)->count;
}

static int maildir_box_info(maild_store *st, void *box, size_t i,
                            uint64_t *size, const char **uidl,
                            void *backend_data) {
  maildir_box *b = box;

  (void)st;
  (void)backend_data;
  *size = b->msgs[i].size;
  *uidl = b->msgs[i].uidl;
  return 0;
}

static maild_ssize maildir_box_read(maild_store *st, void *box, size_t i,
                                    uint64_t offset, uint8_t *buf, size_t cap,
                                    void *backend_data) {
  maildir_box *b = box;
  ssize_t n;

  (void)st;
  (void)backend_data;
  if (b->read_fd < 0 || b->open_i != i) {
    if (b->read_fd >= 0)
      close(b->read_fd);
    b->read_fd = openat(b->fds[b->msgs[i].dir], b->msgs[i].name,
                        O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (b->read_fd < 0)
      return errno == ENOENT ? MAILD_ERR_NOT_FOUND : MAILD_ERR_IO;
    b->open_i = i;
  }
  if (offset > (uint64_t)INT64_MAX)
    return 0;
  do
    n = pread(b->read_fd, buf, cap, (off_t)offset);
  while (n < 0 && errno == EINTR);
  return n < 0 ? MAILD_ERR_IO : (maild_ssize)n;
}

static int maildir_box_expunge(maild_store *st, void *box,
                               const size_t *indexes, size_t n,
                               void *backend_data) {
  maildir_box *b = box;
  int rc = 0, used[BOX_DIRS] = {0, 0, 0};
  size_t k;

  (void)st;
  (void)backend_data;
  for (k = 0; k < n; k++) {
    box_msg *m = &b->msgs[indexes[k]];
    if (b->read_fd >= 0 && b->open_i == indexes[k]) {
      close(b->read_fd);
      b->read_fd = -1;
    }
    if (unlinkat(b->fds[m->dir], m->name, 0) == 0 || errno == ENOENT)
      m->gone = 1;
    else
      rc = MAILD_ERR_IO;
    used[m->dir] = 1;
  }
  if (used[BOX_CUR] && fsync(b->fds[BOX_CUR]) != 0)
    rc = MAILD_ERR_IO;
  if (used[BOX_NEW] && fsync(b->fds[BOX_NEW]) != 0)
    rc = MAILD_ERR_IO;
  return rc;
}

static const maild_store_backend maildir_backend = {sizeof(maild_store_backend),
                                                    "maildir",
                                                    maildir_deliver,
                                                    maildir_destroy,
                                                    maildir_sync,
                                                    maildir_withdraw,
                                                    maildir_box_open,
                                                    maildir_box_close,
                                                    maildir_box_count,
                                                    maildir_box_info,
                                                    maildir_box_read,
                                                    maildir_box_expunge};

static uint64_t default_now_usec(void *user_data) {
  struct timespec ts;
  (void)user_data;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
    return 0;
  return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Uniqueness does not rest on this alone (pid, counter and O_EXCL do
   the work), so a failing entropy source gives 0 rather than an error. */
static uint32_t default_random32(void *user_data) {
  uint32_t v = 0;
  (void)user_data;
  if (getentropy(&v, sizeof(v)) != 0)
    v = 0;
  return v;
}

static int maildir_config(maildir *md, const maild_store_maildir_config *cfg) {
  char host[256];
  const char *h = NULL;
  size_t hlen;

  if (cfg != NULL) {
    md->quota = cfg->quota;
    md->quota_of = cfg->quota_of;
    md->now_usec = cfg->now_usec;
    md->random32 = cfg->random32;
    md->user_data = cfg->user_data;
    h = cfg->hostname;
  }
  if (md->now_usec == NULL)
    md->now_usec = default_now_usec;
  if (md->random32 == NULL)
    md->random32 = default_random32;
  if (h != NULL) {
    hlen = strlen(h);
    if (hlen == 0 || hlen > MAILDIR_HOST_MAX)
      return MAILD_ERR_INVAL;
  } else {
    if (gethostname(host, sizeof(host)) != 0)
      host[0] = '\0';
    host[sizeof(host) - 1] = '\0';
    h = host[0] != '\0' ? host : "localhost";
    hlen = strlen(h);
    if (hlen > MAILDIR_HOST_MAX)
      hlen = MAILDIR_HOST_MAX;
  }
  encode_host(md->host, h, hlen);
  return 0;
}

int maild_store_maildir_new(maild_store **out, const char *root,
                            const maild_store_maildir_config *cfg,
                            const maild_mem *mem) {
  maildir *md;
  maild_mem m;
  int rc;

  if (out == NULL)
    return MAILD_ERR_INVAL;
  *out = NULL;
  if (root == NULL)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  md = maild__calloc(&m, 1, sizeof(*md));
  if (md == NULL)
    return MAILD_ERR_NOMEM;
  md->mem = m;
  md->root_fd = -1;
  atomic_init(&md->counter, 0);
  rc = maildir_config(md, cfg);
  if (rc == 0) {
    md->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (md->root_fd < 0)
      rc = errno == ENOENT ? MAILD_ERR_NOT_FOUND : MAILD_ERR_IO;
  }
  if (rc == 0)
    rc = maild_store_new(out, &maildir_backend, md, NULL, mem);
  if (rc != 0) {
    if (md->root_fd >= 0)
      close(md->root_fd);
    maild__free(&m, md);
  }
  return rc;
}
