/*
 * The durable spool (layer 1, internal): where an accepted message lives
 * until every recipient is done. Blocking POSIX file I/O; the runtime calls
 * these functions only on its worker pool, never on the loop thread.
 *
 * Layout under the spool directory (all 0700, same filesystem):
 *   tmp/      files being written; anything here at start is incomplete
 *   queue/    committed messages: <id>.msg (content) and <id>.env (envelope)
 *   corrupt/  files set aside by maild__spool_scan(), kept for an operator
 *
 * A message is committed when queue/<id>.env appears (the rename of the
 * envelope is the commit point) and is durable when queue/ has been fsync'd
 * after that; maild__spool_commit() returns 0 only then. The .msg file holds
 * exactly the octets a mailbox gets, so a Maildir on the same filesystem can
 * hard-link it (maild__spool_msg_name() with maild__spool_queue_fd()).
 *
 * Errors: every function returns 0 or a negative maild error. On
 * MAILD_ERR_IO, `errno` holds the system error of the first call that
 * failed (cleanup never overwrites it); ENOSPC and EDQUOT mean the disk or
 * quota is full (452 4.3.1), anything else is a local error (451 4.3.0).
 *
 * Threading: the spool is read-only after maild__spool_open(); different
 * writers of one spool may be used from different threads at the same time,
 * each writer by one thread at a time. maild__spool_scan() must run alone
 * (at start, before any writer exists): it sets aside everything in tmp/.
 */
#ifndef MAILD_QUEUE_SPOOL_H
#define MAILD_QUEUE_SPOOL_H

#include <sys/types.h>

#include "maild/common.h"

/* An id: 16 hex digits of the arrival time in microseconds, then 8 of a
   random 32-bit value, all lower case. */
#define MAILD_SPOOL_ID_LEN 24
/* Size of a buffer for "<id>.msg" or "<id>.env" with its NUL. */
#define MAILD_SPOOL_NAME_SIZE (MAILD_SPOOL_ID_LEN + 5)
/* Writer buffer: octets collected before one write(2). */
#define MAILD_SPOOL_WRITE_BUF (64u * 1024u)
/* Fresh ids tried by maild__spool_begin() when the name exists. */
#define MAILD_SPOOL_ID_TRIES 8

/* Envelope limits, enforced by the codec in both directions. */
#define MAILD_ENV_ADDR_MAX 1024 /* sender, recipient and ORCPT, octets */
#define MAILD_ENV_TYPE_MAX 32   /* ORCPT address type ("rfc822") */
#define MAILD_ENV_TEXT_MAX 1024 /* ENVID, client address, HELO, auth id */
#define MAILD_ENV_RCPT_MAX 100000
#define MAILD_ENV_FILE_MAX (64u * 1024u * 1024u) /* an encoded envelope */
#define MAILD_ENV_VERSION  1

/* Per-recipient delivery state (for the outbound agent). */
enum maild_rcpt_state {
  MAILD_RCPT_PENDING = 0,
  MAILD_RCPT_DONE = 1,  /* delivered, or relayed with 250 */
  MAILD_RCPT_FAILED = 2 /* bounced (or failed with NOTIFY=NEVER) */
};

typedef struct maild_envelope_rcpt {
  const char *addr;       /* "local@domain", as accepted at RCPT */
  const char *orcpt_type; /* ORCPT address type, lower case; "" if none */
  const char *orcpt;      /* ORCPT original recipient, decoded; "" if none */
  unsigned notify;        /* maild_notify bits (esmtp.h), 0 if not given */
  uint8_t state;          /* maild_rcpt_state */
} maild_envelope_rcpt;

/*
 * An envelope. Strings are NUL-terminated, never NULL in a decoded
 * envelope (NULL is read as "" when encoding), and hold any octet but NUL.
 * A decoded envelope is one allocation: the strings and the recipient array
 * live inside it, and recipients' `state` may be changed in place before
 * maild__spool_update().
 */
typedef struct maild_envelope {
  char id[MAILD_SPOOL_ID_LEN + 1];
  int64_t arrival_usec;     /* microseconds since the epoch, >= 0 */
  const char *sender;       /* reverse-path without <>, "" = null sender */
  const char *envid;        /* DSN ENVID, decoded; "" if none */
  int ret;                  /* maild_ret_type (esmtp.h) */
  int body;                 /* maild_body_type (esmtp.h) */
  int smtputf8;             /* 0 or 1 */
  int delay_warned;         /* 1: the sender has had its delay warning */
  const char *client_addr;  /* text, e.g. "192.0.2.1" or "local" */
  const char *client_helo;  /* HELO/EHLO argument */
  const char *auth_id;      /* authenticated user; "" if none */
  uint64_t msg_size;        /* octets in <id>.msg */
  uint32_t msg_crc32;       /* CRC-32 of <id>.msg (core/crc32.h) */
  uint32_t return_path_len; /* octets of the "Return-Path: ...\r\n" line
                               starting <id>.msg; <= msg_size */
  size_t nrcpt;             /* 1 .. MAILD_ENV_RCPT_MAX */
  maild_envelope_rcpt *rcpt;
} maild_envelope;

/* ---- Envelope record codec (envelope.c) ---------------------------------
 *
 * File format, version 1. Records of 1 type octet, a 4-octet big-endian
 * payload length and the payload, in this fixed order:
 *   'M' "MAILDENV" + version octet         (magic, always first)
 *   'I' id (24 lower-case hex)
 *   'T' arrival_usec (8 octets, big-endian)
 *   'B' msg_size (8), msg_crc32 (4), return_path_len (4)
 *   'F' ret (1), body (1), flags (1: smtputf8 = 1, delay_warned = 2)
 *   'S' sender   'N' envid   'C' client_addr   'H' client_helo   'A' auth_id
 *   'R' one per recipient: state (1), notify (1), addr length (2) + addr,
 *       ORCPT type length (1) + type, ORCPT length (2) + ORCPT
 *   'E' CRC-32 of every octet of the file before this CRC (4)
 * The order and presence are fixed, so an envelope has exactly one
 * encoding: decode then encode gives back the same octets.
 */

/*
 * Appends the encoding of `env` to `out` (allocations through `mem`).
 * Returns 0 or MAILD_ERR_INVAL (bad id, negative time, a ret, body,
 * smtputf8, state or notify value out of range, return_path_len >
 * msg_size, no recipient or an empty one), MAILD_ERR_TOO_LONG (a string over
 * its limit, more than MAILD_ENV_RCPT_MAX recipients, or more than
 * MAILD_ENV_FILE_MAX octets in all), MAILD_ERR_LIMIT (`out` cannot grow that
 * far) or MAILD_ERR_NOMEM. On error `out` holds what it held before.
 */
struct maild_buf;
int maild__envelope_encode(const maild_envelope *env, struct maild_buf *out,
                           const maild_mem *mem);

/*
 * Decodes the envelope file in `data[0..len)` into a new envelope allocated
 * (as one block) through `mem`, which the caller frees with
 * maild__envelope_free(). Never reads outside `data`, whatever it holds.
 * Returns 0, MAILD_ERR_SYNTAX (torn or corrupt: missing or bad record,
 * bad CRC, bound exceeded, NUL in a string, trailing octets after END),
 * MAILD_ERR_UNSUPPORTED (a version other than MAILD_ENV_VERSION) or
 * MAILD_ERR_NOMEM. If `why` is not NULL it is set to a static text naming
 * the problem ("bad CRC"), or NULL on success.
 */
int maild__envelope_decode(maild_envelope **out, const uint8_t *data,
                           size_t len, const maild_mem *mem, const char **why);

/* Frees a decoded envelope. NULL is a no-op. */
void maild__envelope_free(maild_envelope *env, const maild_mem *mem);

/* Nonzero if `id` is MAILD_SPOOL_ID_LEN lower-case hex digits then NUL. */
int maild__spool_id_valid(const char *id);

/* ---- Spool --------------------------------------------------------------- */

/*
 * System-call hooks, so tests can record the call order and fail any call
 * (syncfs: the group-commit barrier, called with the queue/ descriptor).
 * Each follows its system call's contract (-1 and errno on failure) with
 * `user_data` last. NULL members mean the real call. Directory listing,
 * fstat, fstatat and read are not hooked.
 */
typedef struct maild_spool_ops {
  void *user_data;
  int (*openat)(int dirfd, const char *name, int flags, mode_t mode,
                void *user_data);
  ssize_t (*write)(int fd, const void *data, size_t len, void *user_data);
  int (*fsync)(int fd, void *user_data);
  int (*renameat)(int from_dirfd, const char *from, int to_dirfd,
                  const char *to, void *user_data);
  int (*unlinkat)(int dirfd, const char *name, int flags, void *user_data);
  int (*close)(int fd, void *user_data);
  int (*syncfs)(int fd, void *user_data);
} maild_spool_ops;

typedef struct maild_spool maild_spool;
typedef struct maild_spool_writer maild_spool_writer;

/*
 * Opens the spool at `dir`, creating `dir` (one level) and tmp/, queue/,
 * corrupt/ when missing (0700; then fsyncs what it created in). Keeps an
 * O_DIRECTORY descriptor of each; subdirectories may not be symlinks.
 * `ops` and `mem` are copied (NULL = real calls, C allocator).
 * Returns 0, MAILD_ERR_INVAL, MAILD_ERR_NOMEM or MAILD_ERR_IO.
 */
int maild__spool_open(maild_spool **out, const char *dir,
                      const maild_spool_ops *ops, const maild_mem *mem);

/* Closes the directories and frees the spool. Every writer must be gone.
   NULL is a no-op. */
void maild__spool_close(maild_spool *sp);

/*
 * The queue/ directory descriptor, for linkat(2) of a message file into a
 * mailbox. Borrowed: valid until maild__spool_close(); do not close it.
 */
int maild__spool_queue_fd(const maild_spool *sp);

/*
 * Free space for an unprivileged writer on the spool's filesystem, in
 * octets (fstatvfs), for the "452 4.3.1" check at MAIL FROM. Returns 0 or
 * MAILD_ERR_IO.
 */
int maild__spool_space(const maild_spool *sp, uint64_t *avail);

/*
 * Whether a message announced at `declared` octets (0: not announced) may
 * begin with `avail` octets free: `min_free` must stay free after it.
 * Saturating: a sum past 2^64 - 1 never fits.
 */
int maild__spool_room(uint64_t avail, uint64_t min_free, uint64_t declared);

/*
 * Nonzero if `sys_errno` (from a MAILD_ERR_IO) means the disk or the quota
 * is full (ENOSPC, EDQUOT): answer 452 4.3.1 rather than 451 4.3.0.
 */
int maild__spool_errno_is_full(int sys_errno);

/* Returns a random 32-bit value; called by maild__spool_begin(). */
typedef uint32_t (*maild_spool_rand_cb)(void *user_data);

/*
 * Starts a message: picks an id from `arrival_usec` (>= 0) and `rand_cb`
 * and creates tmp/<id>.msg (O_CREAT|O_EXCL|O_NOFOLLOW, 0600). When that
 * name, or the id in queue/, exists, asks `rand_cb` again, at most
 * MAILD_SPOOL_ID_TRIES times in all. The writer is released by
 * maild__spool_commit() or maild__spool_abort(), exactly once.
 * Returns 0, MAILD_ERR_INVAL, MAILD_ERR_NOMEM, MAILD_ERR_EXISTS (no free id
 * after the tries) or MAILD_ERR_IO.
 */
int maild__spool_begin(maild_spool *sp, int64_t arrival_usec,
                       maild_spool_rand_cb rand_cb, void *rand_ud,
                       maild_spool_writer **out);

/* The writer's id (MAILD_SPOOL_ID_LEN hex digits), valid while `w` is. */
const char *maild__spool_writer_id(const maild_spool_writer *w);

/*
 * Appends message octets (buffered; a write(2) each MAILD_SPOOL_WRITE_BUF).
 * On the first failure the temporary file is closed and removed at once
 * (a full disk keeps no partial file) and every later call returns the
 * same error without I/O, so the caller can go on reading the message to
 * its end and report the error then. Returns 0 or MAILD_ERR_IO (errno set;
 * also kept in maild__spool_writer_errno()).
 */
int maild__spool_write(maild_spool_writer *w, const void *data, size_t len);

/* The errno of the writer's first failure, or 0. */
int maild__spool_writer_errno(const maild_spool_writer *w);

/*
 * Commits the message and releases `w`, whatever the result. The envelope
 * stored is `env` with its id, arrival_usec, msg_size and msg_crc32 replaced
 * by the writer's; `env` is only read. In this order: flush, fsync(msg),
 * close, rename tmp/<id>.msg -> queue/<id>.msg, write tmp/<id>.env,
 * fsync(env), close, rename tmp/<id>.env -> queue/<id>.env (the commit
 * point), fsync(queue/). On success copies the id, NUL-terminated, to
 * `id_out` (may be NULL). On any failure removes every file of this id from
 * tmp/ and queue/ and never calls fsync again on the same data. Returns 0,
 * an encode error of maild__envelope_encode() (INVAL, TOO_LONG, NOMEM), or
 * MAILD_ERR_IO (errno set; also after an earlier write failure).
 */
int maild__spool_commit(maild_spool_writer *w, const maild_envelope *env,
                        char id_out[MAILD_SPOOL_ID_LEN + 1]);

/* Removes the message's files and releases `w`. NULL is a no-op. */
void maild__spool_abort(maild_spool_writer *w);

/*
 * Group commit: one file-system barrier for many messages.
 *
 *   for each message: maild__spool_stage(w, env)    (no sync)
 *   maild__spool_sync(sp)                            (content durable)
 *   for each message: maild__spool_publish(w, id)    (renames into queue/)
 *   maild__spool_sync(sp)                            (names durable)
 *
 * A message is committed once a sync has returned 0 after its publish.
 *
 * maild__spool_stage() flushes the content to tmp/<id>.msg, closes it and
 * writes the envelope (as commit stores it) to tmp/<id>.env. The writer
 * stays the caller's: publish or abort it. Returns 0, an encode error, or
 * MAILD_ERR_IO (errno set; the writer keeps the error).
 *
 * maild__spool_sync() is syncfs(2) on the spool's file system: everything
 * written or renamed before it is on stable storage when it returns 0.
 * Returns 0 or MAILD_ERR_IO (errno set).
 *
 * maild__spool_publish() renames tmp/<id>.msg then tmp/<id>.env into
 * queue/ and releases `w` whatever the result; on success copies the id to
 * `id_out` (may be NULL). Returns 0, MAILD_ERR_INVAL (not staged, or
 * failed before) or MAILD_ERR_IO (the message's files are removed).
 */
int maild__spool_stage(maild_spool_writer *w, const maild_envelope *env);
int maild__spool_sync(maild_spool *sp);
int maild__spool_publish(maild_spool_writer *w,
                         char id_out[MAILD_SPOOL_ID_LEN + 1]);

/*
 * Reads and decodes queue/<id>.env into a new envelope (free with
 * maild__spool_envelope_free()). Does not read the .msg file.
 * Returns 0, MAILD_ERR_INVAL (bad id), MAILD_ERR_NOT_FOUND, MAILD_ERR_SYNTAX
 * (not a valid envelope of this id), MAILD_ERR_UNSUPPORTED, MAILD_ERR_NOMEM
 * or MAILD_ERR_IO.
 */
int maild__spool_load(maild_spool *sp, const char *id, maild_envelope **out);

/* Frees an envelope from maild__spool_load() or _scan(). NULL: no-op. */
void maild__spool_envelope_free(maild_spool *sp, maild_envelope *env);

/*
 * Opens queue/<id>.msg read-only (O_CLOEXEC|O_NOFOLLOW); the caller closes
 * `*fd` with close(2). Returns 0, MAILD_ERR_INVAL, MAILD_ERR_NOT_FOUND or
 * MAILD_ERR_IO.
 */
int maild__spool_open_msg(maild_spool *sp, const char *id, int *fd);

/*
 * Writes "<id>.msg", the message's name relative to maild__spool_queue_fd(),
 * into `buf`. Returns 0 or MAILD_ERR_INVAL (bad id).
 */
int maild__spool_msg_name(const char *id, char buf[MAILD_SPOOL_NAME_SIZE]);

/*
 * Durably replaces queue/<id>.env with `env` (to record recipients' state):
 * write tmp/<id>.env, set its due time to `due_ms` (see "Due times"
 * below; 0 leaves it the time of writing: due at once), fsync, close,
 * rename over queue/<id>.env, fsync queue/. `env` is stored as given (from
 * maild__spool_load(), states changed). Returns 0, MAILD_ERR_NOT_FOUND (no
 * such message), an encode error, or MAILD_ERR_IO; on error before the
 * rename the old envelope stays. Only one thread at a time may update or
 * remove a given id.
 */
int maild__spool_update(maild_spool *sp, const maild_envelope *env,
                        uint64_t due_ms);

/*
 * Holds (`hold` 1) or releases a message: a marker hold/<id> beside the
 * queue, made durable (the directory is fsync'd); the outbound queue does
 * not try a held message. Releasing one that is not held is not an
 * error. Returns 0, MAILD_ERR_INVAL or MAILD_ERR_IO.
 */
int maild__spool_hold(maild_spool *sp, const char *id, int hold);

/* 1 when the message is held. */
int maild__spool_held(maild_spool *sp, const char *id);

/*
 * Removes a message: unlinks queue/<id>.env first (un-commit), then
 * queue/<id>.msg. Not fsync'd: after a crash the message may come back
 * and be delivered again (at least once, never lost). Returns 0,
 * MAILD_ERR_INVAL, MAILD_ERR_NOT_FOUND (neither file existed) or MAILD_ERR_IO
 * (if the .env could not be unlinked the .msg is kept; a .msg left without .env
 * is an ORPHAN at the next scan).
 */
int maild__spool_remove(maild_spool *sp, const char *id);

/* ---- Due times ------------------------------------------------------------
 *
 * When the outbound queue next tries a message is the modification time of
 * its queue/<id>.env, in milliseconds since the epoch on the queue's clock,
 * as Postfix keeps it in its queue file's. maild__spool_update() writes it
 * with the recipients' state, so it is durable with them; a newly committed
 * envelope carries the time of its commit, so a message never tried is due
 * at once. Reading it is one stat(2): no envelope is read to know which
 * messages are due.
 */

/* When the message is due. Returns 0, MAILD_ERR_INVAL, MAILD_ERR_NOT_FOUND
   or MAILD_ERR_IO. */
int maild__spool_due(maild_spool *sp, const char *id, uint64_t *due_ms);

/*
 * Sets when the message is due (an administrator's retry or release: now).
 * Not synced: after a crash the message may be due at the time its last
 * attempt recorded instead. Returns 0, MAILD_ERR_INVAL, MAILD_ERR_NOT_FOUND
 * or MAILD_ERR_IO.
 */
int maild__spool_set_due(maild_spool *sp, const char *id, uint64_t due_ms);

/* One committed message for maild__spool_list(): `id` is valid during the
   call; `held` is 1 when hold/<id> exists. Returns 0 to go on or a negative
   maild error to stop. */
typedef int (*maild_spool_list_cb)(const char *id, uint64_t due_ms, int held,
                                   void *user_data);

/*
 * Lists the committed messages (each queue/<id>.env) with their due times,
 * in directory order, reading no envelope: one stat(2) per message, and
 * hold/ read once (memory for its names only). It changes nothing, so it
 * may run beside writers, updates and removals; a message removed during
 * the walk may or may not be reported. Returns 0, the callback's error,
 * MAILD_ERR_NOMEM or MAILD_ERR_IO.
 */
int maild__spool_list(maild_spool *sp, maild_spool_list_cb cb, void *user_data);

/* The arrival time in microseconds that an id carries in its first 16
   digits, or -1 when `id` is not an id. */
int64_t maild__spool_id_arrival(const char *id);

/* ---- Scan at start --------------------------------------------------------
 */

typedef enum maild_spool_scan_kind {
  MAILD_SPOOL_VALID = 1, /* committed and intact: schedule it */
  MAILD_SPOOL_TEMP,      /* a file left in tmp/: never committed */
  MAILD_SPOOL_ORPHAN,    /* queue/<id>.msg without .env: never committed */
  MAILD_SPOOL_CORRUPT    /* bad .env, .msg missing or not matching it, or
                            a name that is not a spool file */
} maild_spool_scan_kind;

typedef struct maild_spool_scan_item {
  maild_spool_scan_kind kind;
  const char *name;     /* the file's name in tmp/ or queue/ (the .env for
                           VALID and a bad envelope) */
  const char *id;       /* the id, or "" if the name holds none */
  const char *reason;   /* static text; NULL for VALID */
  const char *moved_to; /* name under corrupt/; NULL for VALID */
  maild_envelope *env;  /* VALID only: the decoded envelope */
  uint64_t due_ms;      /* VALID only: its due time (see "Due times") */
  int held;             /* VALID only: 1 when hold/<id> exists */
} maild_spool_scan_item;

/*
 * Called once per finding; strings are valid during the call only. For
 * VALID the callback may keep the envelope by setting item->env to NULL
 * (then frees it later with maild__spool_envelope_free()); otherwise the
 * scan frees it. Returns 0 to go on or a negative maild error to stop.
 */
typedef int (*maild_spool_scan_cb)(maild_spool_scan_item *item,
                                   void *user_data);

/*
 * Reads hold/ (once), then walks tmp/ and queue/ and reports every file to
 * `cb`: each file in tmp/
 * is set aside (TEMP); each queue/<id>.env is decoded and checked against
 * queue/<id>.msg (exists, regular, size and CRC-32 equal to the envelope's)
 * and reported VALID, or set aside with its .msg (CORRUPT); a .msg without
 * .env is set aside (ORPHAN); other names are set aside (CORRUPT). Setting
 * aside renames into corrupt/ under the same name (".1", ".2"... appended
 * if taken); corrupt/ and the source directories are fsync'd before the
 * scan returns. Nothing valid is ever set aside because of a system error:
 * the scan stops instead, leaving the rest in place.
 * Returns 0, the callback's error, MAILD_ERR_NOMEM or MAILD_ERR_IO (errno
 * set: reading a directory or file, or renaming, failed).
 */
int maild__spool_scan(maild_spool *sp, maild_spool_scan_cb cb, void *user_data);

#endif
