/*
 * Mailbox store: where a local recipient's mail ends up.
 *
 * The store is a pluggable backend behind one small vtable, so the same
 * runtime can deliver into Maildir on a local disk (built in) or into a
 * shared database that several maild nodes use (DESIGN.md "Growing past one
 * machine"). The library wraps a backend in an opaque `maild_store`:
 *
 *   maild_store *st;
 *   maild_store_maildir_new(&st, "/var/mail/vhosts", NULL, NULL);
 *   ...on a worker thread, once per local recipient:
 *   rc = maild_store_deliver(st, &msg, "example.org", 11, "alice", 5, &res);
 *   ...
 *   maild_store_del(st);
 *
 * Store functions block (file I/O, fsync, network): call them only off the
 * event-loop thread (the runtime uses libuv's worker pool).
 *
 * Threading. maild_store_deliver() may be called on one store from several
 * threads at once; every backend must allow that (see maild_store_backend).
 * maild_store_new() and maild_store_del() must not overlap any other call on
 * the same store.
 *
 * What a delivery error means (the runtime's answer in brackets):
 *   MAILD_ERR_IO         temporary: disk full, fsync failed, database down,
 *                        mailbox unusable until an admin looks (a symlink or
 *                        a file where a directory should be, permission
 *                        denied). Retry later. [451 4.3.0 / keep queued]
 *   MAILD_ERR_NOMEM      temporary. [451 4.3.0 / keep queued]
 *   MAILD_ERR_TIMEOUT    temporary: a network backend gave up waiting.
 *   MAILD_ERR_LIMIT      the mailbox is over quota; temporary or permanent
 *                        as the runtime is configured. [452 4.2.2 or
 *                        552 5.2.2]
 *   MAILD_ERR_NOT_FOUND  permanent: no such mailbox. [550 5.1.1]
 *   MAILD_ERR_INVAL      permanent: the address cannot name a mailbox
 *                        (empty, control octets, bad UTF-8, too long, or
 *                        unsafe for the backend), or a bad argument.
 *                        [550 5.1.3]
 * Nothing else is ever returned by maild_store_deliver(): a backend that
 * returns another code is reported as MAILD_ERR_IO (see backend_err).
 */
#ifndef MAILD_STORE_H
#define MAILD_STORE_H

#include "maild/common.h"
#include "maild/options.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest domain or local part, in octets, that a store accepts. */
#define MAILD_STORE_NAME_MAX 255

/* Size of maild_store_result.id, NUL included. */
#define MAILD_STORE_ID_MAX 256

typedef struct maild_store maild_store;

/*
 * One message to deliver. The content is exactly what the mailbox must
 * hold: it already starts with the Return-Path and Received headers and
 * uses CRLF line ends. A store never alters it.
 */
typedef struct maild_store_message {
  /* Readable descriptor of the content, octets [0, size). Stores read it
     with pread() only: the file offset is neither used nor moved, so one
     descriptor may serve deliveries on several threads at once. Not
     closed by the store. */
  int fd;
  uint64_t size;
  /* Optional: the same file by name, `link_name` relative to the
     directory `link_dirfd` (or AT_FDCWD). A backend on the same filesystem
     may hard-link it instead of copying; the Maildir backend does, and
     copies when linking fails for any reason (EXDEV, EPERM, ...) or when
     the name turns out not to be the file behind `fd`. The file must
     never change afterwards: a link shares it with the mailbox. NULL: no
     link, always copy. */
  int link_dirfd;
  const char *link_name;
  /* Optional (NULL): the queue id of the message, for a backend's logs
     and so that it can make a redelivery after a crash idempotent.
     Maildir ignores it. */
  const char *queue_id;
  /* maild_store_flags. */
  unsigned flags;
} maild_store_message;

/* maild_store_message.flags */
enum maild_store_flags {
  /* The caller calls maild_store_sync() before it relies on this delivery
     (group commit: one barrier for many deliveries), so the backend may
     skip its own final barrier. The content must still never be visible
     before it is complete. Ignored by backends without `sync`. */
  MAILD_STORE_NO_SYNC = 1u << 0,
};

/* What a delivery did; filled by maild_store_deliver() on success and on
   failure alike (fields a backend does not know stay 0). */
typedef struct maild_store_result {
  /* MAILD_ERR_IO: the errno behind it, or 0 when no system call failed
     (e.g. the content was shorter than `size`). Otherwise 0. */
  int sys_errno;
  /* When a backend returned a code outside the documented set, that code
     (the call then returns MAILD_ERR_IO); otherwise 0. */
  int backend_err;
  /* 1 if the message was stored as a hard link of link_name, 0 if copied
     (or the backend does not store files). */
  int linked;
  /* The mailbox limit in octets (0: none) and its size before this
     delivery, when the backend checked a quota. */
  uint64_t quota;
  uint64_t used;
  /* The backend's name for the stored message, for logs, NUL-terminated;
     "" if none. Maildir: the file name under new/. */
  char id[MAILD_STORE_ID_MAX];
} maild_store_result;

/*
 * A storage backend. A third party fills one of these (usually a static
 * const) and hands it to maild_store_new() with its own `backend_data`.
 *
 * Every function gets the store first and `backend_data` last. The
 * strings a function gets are valid only during the call.
 *
 * Growth. `struct_size` is sizeof(maild_store_backend) as the backend was
 * compiled. New operations are only ever appended; the library reads a
 * member only if it lies within struct_size, and treats a missing one as
 * NULL (operation not supported). The POP3 operations (open a mailbox with
 * an exclusive lock, list messages with exact sizes and stable unique ids,
 * read one, apply deletions) come after `withdraw` (box_open ...
 * box_expunge).
 */
typedef struct maild_store_backend {
  /* sizeof(maild_store_backend); at least up to and including `deliver`. */
  size_t struct_size;
  /* Short name for logs ("maildir", "pgsql"); static, not NULL. */
  const char *name;
  /*
   * Stores one message for one recipient. Required.
   * `domain` and `local` are NUL-terminated and already checked by the
   * library: 1..MAILD_STORE_NAME_MAX octets, valid UTF-8, no NUL or
   * control octet (0x00-0x1f, 0x7f). `domain` is ASCII lower-cased;
   * `local` is as the sender wrote it (canonical form, see maild_path):
   * case folding and any further checks are the backend's choice.
   * `res` is zeroed before the call.
   * May be called on several threads at once, also for the same mailbox.
   * Must return 0 only once the message is on stable storage, and on
   * failure must leave nothing visible to a mailbox reader. Returns 0 or
   * one of the codes listed at the top of this header.
   */
  int (*deliver)(maild_store *st, const maild_store_message *msg,
                 const char *domain, const char *local, maild_store_result *res,
                 void *backend_data);
  /* Called once by maild_store_del() to free `backend_data`; may be
     NULL. */
  void (*destroy)(maild_store *st, void *backend_data);
  /* Makes every delivery made with MAILD_STORE_NO_SYNC that returned
     before this call durable. May be NULL (then deliveries are always
     synced). Returns 0, MAILD_ERR_IO or MAILD_ERR_TIMEOUT. */
  int (*sync)(maild_store *st, void *backend_data);
  /* Takes back a delivery made with MAILD_STORE_NO_SYNC whose barrier
     failed, so the client's retry does not leave two copies. `id` is the
     result's id. May be NULL. Returns 0, MAILD_ERR_NOT_FOUND or
     MAILD_ERR_IO. */
  int (*withdraw)(maild_store *st, const char *domain, const char *local,
                  const char *id, void *backend_data);

  /*
   * The read side, for POP3 (see maild_store_open() for what each one
   * means to the caller). Optional as a group: a backend without all six
   * (NULL, or beyond its struct_size) has no read side and
   * maild_store_open() returns MAILD_ERR_UNSUPPORTED. `box` is the
   * backend's own session object, made by box_open. A session is used by
   * one thread at a time; different sessions may be used at once. The
   * library checks indexes against box_count and buffers for NULL before
   * calling, and holds the answers to the documented codes.
   */
  /* Opens and exclusively locks the mailbox of local@domain (checked as
     for deliver) and takes a snapshot of its messages. Returns 0 and sets
     `*box`, or MAILD_ERR_EXISTS (locked by another session),
     MAILD_ERR_NOT_FOUND, MAILD_ERR_INVAL, MAILD_ERR_NOMEM, MAILD_ERR_IO
     or MAILD_ERR_TIMEOUT. */
  int (*box_open)(maild_store *st, const char *domain, const char *local,
                  void **box, void *backend_data);
  /* Finishes the session's bookkeeping (may do I/O), releases the lock and
     frees `box`; deletions not applied by box_expunge are forgotten. */
  void (*box_close)(maild_store *st, void *box, void *backend_data);
  /* Messages in the snapshot (fixed for the session). */
  size_t (*box_count)(maild_store *st, void *box, void *backend_data);
  /* Message `i` (< count): its size as sent (CRLF line ends) and its
     unique id (1..70 octets 0x21..0x7e, NUL-terminated, valid until
     box_close). Returns 0 or MAILD_ERR_IO. */
  int (*box_info)(maild_store *st, void *box, size_t i, uint64_t *size,
                  const char **uidl, void *backend_data);
  /* Copies up to `cap` (> 0) octets of message `i` as stored, from
     `offset`; returns the count (0 at the end), MAILD_ERR_NOT_FOUND (the
     message is gone), MAILD_ERR_IO, MAILD_ERR_NOMEM or
     MAILD_ERR_TIMEOUT. */
  maild_ssize (*box_read)(maild_store *st, void *box, size_t i, uint64_t offset,
                          uint8_t *buf, size_t cap, void *backend_data);
  /* Removes messages `indexes[0..n)` (each < count, ascending, no
     duplicates) durably; already gone is fine. Returns 0, MAILD_ERR_IO or
     MAILD_ERR_TIMEOUT (some may then be removed and others not). */
  int (*box_expunge)(maild_store *st, void *box, const size_t *indexes,
                     size_t n, void *backend_data);
} maild_store_backend;

/*
 * Creates a store around `backend`. The vtable is copied (up to its
 * struct_size); `backend_data` is owned by the store from a successful
 * return on and given to backend->destroy() by maild_store_del(). If this
 * fails, destroy is never called and `backend_data` stays the caller's.
 * `opt` is unused for now and may be NULL. `mem` (NULL: malloc) is copied
 * and used for every allocation of the store.
 * Returns 0, MAILD_ERR_INVAL (`out` or `backend` NULL, struct_size too
 * small to hold `deliver`, `deliver` or `name` NULL) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_store_new(maild_store **out,
                                 const maild_store_backend *backend,
                                 void *backend_data, const maild_options *opt,
                                 const maild_mem *mem);

/* Calls the backend's destroy and frees the store; NULL is a no-op. */
MAILD_EXTERN void maild_store_del(maild_store *st);

/* The backend's name (static, for logs). */
MAILD_EXTERN const char *maild_store_name(const maild_store *st);

/*
 * Delivers `msg` to the mailbox of local@domain, given as counted strings
 * (`local` as in maild_path.local: unquoted when possible). Blocks. `res`
 * (may be NULL) is zeroed and then filled, see maild_store_result.
 * On return the message is either durably stored (0) or not visible in
 * the mailbox at all. The message descriptor is not moved or closed.
 * Returns 0 or one of the codes listed at the top of this header;
 * MAILD_ERR_INVAL also for `st`/`msg` NULL or a negative msg->fd.
 */
MAILD_EXTERN int maild_store_deliver(maild_store *st,
                                     const maild_store_message *msg,
                                     const char *domain, size_t domain_len,
                                     const char *local, size_t local_len,
                                     maild_store_result *res);

/*
 * Makes the deliveries made with MAILD_STORE_NO_SYNC durable (see
 * maild_store_flags). Blocks. Returns 0 (also for a backend without
 * `sync`, whose deliveries are always durable), MAILD_ERR_IO or
 * MAILD_ERR_TIMEOUT.
 */
MAILD_EXTERN int maild_store_sync(maild_store *st);

/*
 * Takes back the delivery of message `id` (maild_store_result.id) to
 * local@domain, for a group commit whose barrier failed: the client is told
 * to try again, and must not find the first copy as well. Blocks. Returns
 * 0, MAILD_ERR_NOT_FOUND, MAILD_ERR_UNSUPPORTED (no `withdraw` in the
 * backend), MAILD_ERR_INVAL or MAILD_ERR_IO.
 */
MAILD_EXTERN int maild_store_withdraw(maild_store *st, const char *domain,
                                      size_t domain_len, const char *local,
                                      size_t local_len, const char *id);

/* ---- Reading a mailbox (POP3) ---------------------------------------- */

/* An open, exclusively locked mailbox: a snapshot of its messages for one
   POP3 session. Used by one thread at a time; different mailboxes may be
   used on different threads at once. All calls block. */
typedef struct maild_mailbox maild_mailbox;

/*
 * Opens the mailbox of local@domain (counted strings, checked as for
 * maild_store_deliver) for one POP3 session and locks it: no other session
 * can open it until maild_mailbox_close(). The message list is fixed at
 * open (mail arriving later shows in the next session).
 * Returns 0 and sets `*out`, or (the runtime's answer in brackets):
 *   MAILD_ERR_EXISTS       another session holds the lock [-ERR [IN-USE]]
 *   MAILD_ERR_NOT_FOUND    no such mailbox (the Maildir backend never says
 *                          so: a mailbox not yet created is empty)
 *   MAILD_ERR_UNSUPPORTED  the backend has no read side
 *   MAILD_ERR_INVAL        bad argument or an address that names no mailbox
 *   MAILD_ERR_NOMEM, MAILD_ERR_IO, MAILD_ERR_TIMEOUT  temporary
 *                          [-ERR [SYS/TEMP]]
 */
MAILD_EXTERN int maild_store_open(maild_store *st, const char *domain,
                                  size_t domain_len, const char *local,
                                  size_t local_len, maild_mailbox **out);

/* Number of messages in the session's snapshot; 0 for NULL. */
MAILD_EXTERN size_t maild_mailbox_count(const maild_mailbox *mb);

/*
 * Message `i` (0-based, < count): `*size` (may be NULL) is its size exactly
 * as POP3 sends it (every line end CRLF, before dot-stuffing), `*uidl` (may
 * be NULL) its unique id: 1..70 octets 0x21..0x7e, NUL-terminated, stable
 * across sessions and restarts, valid until maild_mailbox_close().
 * Returns 0, MAILD_ERR_INVAL (NULL or `i` out of range) or MAILD_ERR_IO.
 */
MAILD_EXTERN int maild_mailbox_info(const maild_mailbox *mb, size_t i,
                                    uint64_t *size, const char **uidl);

/*
 * Copies up to `cap` octets of message `i`, as stored, from `offset` into
 * `buf`. Returns the number copied (0 at the end or for cap 0),
 * MAILD_ERR_NOT_FOUND (removed meanwhile by another program),
 * MAILD_ERR_INVAL, MAILD_ERR_IO, MAILD_ERR_NOMEM or MAILD_ERR_TIMEOUT.
 */
MAILD_EXTERN maild_ssize maild_mailbox_read(maild_mailbox *mb, size_t i,
                                            uint64_t offset, uint8_t *buf,
                                            size_t cap);

/*
 * Removes messages `indexes[0..n)` durably (POP3 QUIT in the UPDATE state);
 * indexes may come in any order and repeat. A message already removed by
 * someone else counts as removed. Returns 0, MAILD_ERR_INVAL (NULL or an
 * index out of range: nothing is removed), MAILD_ERR_NOMEM (nothing is
 * removed), MAILD_ERR_IO or MAILD_ERR_TIMEOUT (some may be removed).
 */
MAILD_EXTERN int maild_mailbox_delete(maild_mailbox *mb, const size_t *indexes,
                                      size_t n);

/* Finishes the session's bookkeeping, releases the lock and frees;
   deletions not applied are forgotten. May block like the other calls
   (the Maildir backend moves the session's messages from new/ to cur/
   here). NULL is a no-op. */
MAILD_EXTERN void maild_mailbox_close(maild_mailbox *mb);

/* ---- The built-in Maildir backend ------------------------------------ */

/*
 * Maildir layout and naming. A mailbox is the directory
 * <root>/<domain>/<local>/ with tmp/, new/ and cur/ inside, created on
 * demand (mode 0700; new files 0600 or, when hard-linked, the spool
 * file's). The domain is ASCII lower-cased, and so is the local part
 * (UTF-8 octets are kept as they are, so "Alice" and "alice" share a
 * mailbox, "Ärger" and "ärger" do not). Any address that passes the
 * checks below gets a mailbox, so the runtime delivers only to recipients
 * it has verified as local (unknown ones are refused at RCPT); this
 * backend never returns MAILD_ERR_NOT_FOUND.
 *
 * Neither part is ever used as a path as it was sent. Refused with
 * MAILD_ERR_INVAL (besides the library checks): "." and "..", anything
 * starting with '.', containing '/', or whose encoded form is longer than
 * 255 octets. The on-disk name keeps a-z 0-9 . _ + - and every octet
 * 0x80-0xff (UTF-8) as they are and writes any other octet as %XX
 * (upper-case hex, '%' itself included). The mapping is injective after
 * case folding: two different addresses never share a directory.
 *
 * Every level below the root is opened with O_NOFOLLOW and O_DIRECTORY:
 * a symlink or a non-directory anywhere in the mailbox path fails the
 * delivery with MAILD_ERR_IO (sys_errno ELOOP or ENOTDIR). The root itself
 * may be a symlink.
 *
 * Delivery follows the Maildir protocol: a unique name
 *   <sec>.M<usec>P<pid>Q<counter>R<random>.<host>,S=<size>
 * (Maildir++ size tag; <counter> counts deliveries of this store, <random>
 * is 8 hex digits, <host> has '/', ':', ',' and non-printing octets written
 * as \ooo) is created exclusively in tmp/ (by hard link of the spool file,
 * or by creating and copying), the file is fsync'd, linked into new/
 * (renamed where the filesystem has no hard links) and removed from tmp/,
 * and new/ is fsync'd. Directories created on the way are fsync'd into
 * their parents. On any error the file is removed again.
 *
 * Quota: the mailbox size is the sum of the S= tags of the files in new/
 * and cur/ (files without a tag are stat'ed); a message that would take
 * it past the limit is refused with MAILD_ERR_LIMIT and nothing is left
 * behind; exactly reaching the limit is allowed. The check is soft: two
 * deliveries to one mailbox at the same moment may both pass it, so the
 * limit can be overshot by the messages in flight.
 *
 * Reading (maild_store_open). A mailbox that does not exist yet is created
 * (empty), as for delivery. The lock is flock(LOCK_EX | LOCK_NB) on the file
 * "maild-pop3.lock" in the mailbox directory (created 0600, never removed):
 * the kernel drops it when the holder exits or crashes, and two sessions
 * in one process conflict too. Open only lists new/ and cur/; the session
 * reads each message where it lies. At close (maild_mailbox_close) every
 * message of the session still in new/ and not deleted moves to cur/ with
 * ",W=<size>" (Maildir++: the size with CRLF line ends) and the info ":2,"
 * appended (a name that already has info keeps it; one that would grow
 * past 255 octets stays in new/), and cur/ and new/ are fsync'd; the lock
 * is held until that is done. Messages are ordered by the delivery time
 * in their names (<sec>.M<usec>), then by name. The size is the W= tag of
 * a name when there is one (maild's deliveries have it in new/ already),
 * else the file is scanned (CRLF, bare LF and bare CR each count 2). The UIDL
 * is the name up to its first ',' or ':' (unchanged by the move and by flags),
 * or "~" and a 128-bit hash in hex when that is longer than 70 octets or not
 * printable ASCII; when two files share one, all but the first get the hash of
 * their whole name. Deletion unlinks each file and fsyncs cur/ and new/.
 * Non-regular entries and names starting with '.' are ignored.
 */
typedef struct maild_store_maildir_config {
  /* Per-mailbox limit in octets; 0: no limit. */
  uint64_t quota;
  /* Optional per-mailbox limit, overriding `quota`: gets the folded
     domain and local part (NUL-terminated) and returns the limit (0:
     none). Called on delivery threads, possibly at once. */
  uint64_t (*quota_of)(const char *domain, const char *local, void *user_data);
  /* Host name in file names; NULL: gethostname(). Copied. */
  const char *hostname;
  /* Microseconds since the epoch; NULL: clock_gettime(CLOCK_REALTIME). */
  uint64_t (*now_usec)(void *user_data);
  /* 32 random bits; NULL: getentropy(). */
  uint32_t (*random32)(void *user_data);
  /* Passed last to the callbacks above. */
  void *user_data;
} maild_store_maildir_config;

/*
 * Creates a store with the Maildir backend under the existing directory
 * `root`, which stays open (as a descriptor) for the life of the store;
 * mailboxes are created below it on demand. `cfg` (NULL: all defaults;
 * zero-initialise it so fields added later keep their defaults) is copied.
 * `mem` (NULL: malloc) is copied and used for every allocation. The
 * callbacks in `cfg` may be called on several threads at once.
 * Blocks (opens `root`). Returns 0, MAILD_ERR_INVAL (`out` or `root`
 * NULL, hostname empty or longer than 64 octets), MAILD_ERR_NOT_FOUND
 * (`root` does not exist), MAILD_ERR_IO (`root` cannot be opened as a
 * directory) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_store_maildir_new(maild_store **out, const char *root,
                                         const maild_store_maildir_config *cfg,
                                         const maild_mem *mem);

#ifdef __cplusplus
}
#endif
#endif
