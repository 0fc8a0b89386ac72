/*
 * Users: the accounts of this server, read from a passwd-style file.
 *
 * The file has one account per line, `address:hash`, in the style of
 * Dovecot's passwd-file:
 *
 *   # comment
 *   alice@example.com:$y$j9T$...$...
 *   bob@example.com:!
 *   "carol smith"@example.com:$6$...$...:anything after a second ':'
 *
 * - address is a full RFC 5321 Mailbox (local@domain), read with
 *   maild_path_parse() (SMTPUTF8 syntax allowed) and stored canonically:
 *   the parser's canonical local-part, then ASCII letters of local-part and
 *   domain lower-cased. So `"Alice"@Example.COM` is alice@example.com.
 * - hash is a crypt(3) hash: yescrypt `$y$` (what this module writes),
 *   `$gy$`, scrypt `$7$`, sha512-crypt `$6$`, bcrypt `$2b$` / `$2y$` /
 *   `$2a$`. A hash of another method (md5-crypt `$1$`, DES, ...) is
 *   refused at load with MAILD_ERR_UNSUPPORTED; a truncated or mangled one
 *   with MAILD_ERR_SYNTAX. An empty hash or `!` means "no password yet":
 *   the account exists and receives mail, but cannot log in.
 * - Everything from a second ':' to the end of the line is kept verbatim
 *   and otherwise ignored (room for future fields).
 * - Blank lines (spaces and tabs only) and lines whose first non-blank
 *   character is '#' are comments. A CR before the LF is dropped. Entry
 *   lines have no leading or trailing blanks: they would be part of the
 *   address or the hash, and make the line malformed.
 * - A NUL anywhere, a CR other than in a CRLF line end, a line over
 *   MAILD_USERS_LINE_MAX octets, a malformed line and a second line for
 *   the same (canonical) address are errors that name the line; the whole
 *   file is refused, never half-loaded.
 *
 * Rewriting (maild_users_add(), _remove(), _set_password(), then
 * maild_users_save()) keeps comments, blank lines, the order of lines and
 * every unchanged line as it was read; a changed or added line is written
 * as `canonical-address:hash` plus the kept extra fields. Lines end in LF.
 *
 * Threads: once loaded, a maild_users that is not modified any more may be
 * read from several threads at once (lookup, verify, count, address,
 * format, save). Modifying functions need exclusive access. The runtime
 * calls _load() and _verify() on its worker pool: they block on file I/O
 * and on crypt(3). A reload builds a new object.
 *
 * Allocations go through the maild_mem given to maild_users_new(); when
 * _verify() runs on several threads at once those hooks must be
 * thread-safe (the default malloc hooks are). libxcrypt's own scratch
 * memory (yescrypt uses 16 MiB per call at the default cost) does not go
 * through the hooks.
 */
#ifndef MAILD_USERS_H
#define MAILD_USERS_H

#include "maild/common.h"
#include "maild/address.h"
#include "maild/options.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest users file (_load(); MAILD_ERR_TOO_LONG past it): 64 MiB. */
#define MAILD_USERS_FILE_MAX ((size_t)64 * 1024 * 1024)
/* Longest line of a users file in octets, without its line end. */
#define MAILD_USERS_LINE_MAX 4096
/* Longest password in octets (libxcrypt's CRYPT_MAX_PASSPHRASE_SIZE - 1).
   Note that bcrypt hashes only the first 72 octets. */
#define MAILD_USERS_PASSWORD_MAX 511
/* Buffer size that holds any canonical address and its NUL. */
#define MAILD_USERS_ADDRESS_SIZE (MAILD_LOCAL_MAX + 1 + MAILD_DOMAIN_MAX + 1)

/* maild_users_lookup() flags. */
enum maild_users_flags {
  MAILD_USERS_HAS_PASSWORD = 1u << 0 /* a hash is set: the user can log in */
};

typedef struct maild_users maild_users;

/*
 * Creates an empty set of users. `opt` (reserved for limits; NULL: the
 * defaults above) and `mem` (NULL: malloc) are copied.
 * Returns 0, MAILD_ERR_INVAL (`out` NULL) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_users_new(maild_users **out, const maild_options *opt,
                                 const maild_mem *mem);

/* Frees `u` and everything it returned; NULL is a no-op. */
MAILD_EXTERN void maild_users_del(maild_users *u);

/*
 * Reads the users file content `buf[0..len)` into `u`, which must be
 * empty (MAILD_ERR_STATE otherwise). All or nothing: on error `u` is left
 * empty. `*line` (may be NULL) is set to the 1-based number of the line at
 * fault, or 0 when the error is not about one line. Returns 0 or:
 *   MAILD_ERR_SYNTAX       malformed line (no ':', bad address or hash)
 *   MAILD_ERR_BAD_CHAR     control or invalid UTF-8 octets in the address
 *   MAILD_ERR_TOO_LONG     line over MAILD_USERS_LINE_MAX, or an address
 *                          over the RFC 5321 limits
 *   MAILD_ERR_NUL          a NUL octet in the line
 *   MAILD_ERR_BARE_CR      a CR not just before the LF
 *   MAILD_ERR_UNSUPPORTED  a hash of a method not listed above
 *   MAILD_ERR_DUPLICATE    a second line for an address (the later line
 *                          is named)
 *   MAILD_ERR_STATE, MAILD_ERR_INVAL (`u` NULL, or `buf` NULL with `len`
 *                          > 0), MAILD_ERR_NOMEM
 */
MAILD_EXTERN int maild_users_parse(maild_users *u, const char *buf, size_t len,
                                   size_t *line);

/*
 * Opens and reads the file at `path`, then as maild_users_parse(). Blocks.
 * Besides the errors of _parse(): MAILD_ERR_NOT_FOUND (no such file),
 * MAILD_ERR_PERM (no permission), MAILD_ERR_TOO_LONG with `*line` 0 (file
 * over MAILD_USERS_FILE_MAX), MAILD_ERR_IO (not a regular file, or a read
 * error).
 */
MAILD_EXTERN int maild_users_load(maild_users *u, const char *path,
                                  size_t *line);

/* Number of accounts. */
MAILD_EXTERN size_t maild_users_count(const maild_users *u);

/*
 * The canonical address of the `i`-th account in file order, or NULL if
 * `i` >= count. Valid until `u` is modified or deleted.
 */
MAILD_EXTERN const char *maild_users_address(const maild_users *u, size_t i);

/*
 * Canonical form of the address `in[0..len)` ("local@domain", no angle
 * brackets) into `buf`, NUL-terminated; MAILD_USERS_ADDRESS_SIZE always
 * suffices. Returns its length, or MAILD_ERR_SYNTAX, MAILD_ERR_BAD_CHAR,
 * MAILD_ERR_TOO_LONG (see maild_path_parse(); a NUL in `in` is BAD_CHAR)
 * or MAILD_ERR_NOSPC.
 */
MAILD_EXTERN maild_ssize maild_users_canonical(const char *in, size_t len,
                                               char *buf, size_t size);

/*
 * The same for a parsed path, which must have a local-part and a domain
 * (MAILD_ERR_INVAL for "<>" and the bare "<postmaster>").
 */
MAILD_EXTERN maild_ssize maild_users_canonical_path(const maild_path *p,
                                                    char *buf, size_t size);

/*
 * The '@' that ends the local-part of the canonical address `address`, or
 * NULL if it has none. Not simply the last '@': a quoted local-part and a
 * general address literal (RFC 5321 4.1.3) may both hold '@'.
 */
MAILD_EXTERN const char *maild_users_domain(const char *address);

/*
 * Whether `address[0..len)` is an account. Returns 0 and sets `*flags`
 * (may be NULL) to maild_users_flags, or MAILD_ERR_NOT_FOUND, or an error
 * of maild_users_canonical() for a malformed address.
 */
MAILD_EXTERN int maild_users_lookup(const maild_users *u, const char *address,
                                    size_t len, unsigned *flags);

/*
 * Checks a login: the account `address[0..address_len)` exists, has a
 * password, and crypt(3) of `password[0..password_len)` gives its hash.
 * Blocks for one hash computation (about 20 ms for default yescrypt).
 *
 * Returns 0, or MAILD_ERR_PERM for every refusal alike: unknown or
 * malformed address, account without password, wrong password, a
 * password holding a NUL or longer than MAILD_USERS_PASSWORD_MAX. Each
 * refusal takes the same path: a refused login with no hash to check is
 * checked against a fixed yescrypt hash of default cost, so timing does
 * not tell an unknown user from a wrong password (it may still if the
 * account's hash is of another method or cost than the default). The
 * comparison is constant-time. Also MAILD_ERR_NOMEM (the 32 KiB crypt(3)
 * work area) and MAILD_ERR_INVAL (`u` NULL).
 */
/*
 * The two halves of maild_users_verify(), for a caller that checks the
 * password on another thread than the one that owns `u` (the runtime: the
 * lookup on the event loop, crypt(3) on a worker, so a reload may free
 * `u` meanwhile).
 *
 * maild_users_login_hash() copies into `out` the hash of the account
 * `address[0..address_len)` if it exists and has a password, else "".
 * Never blocks. Returns 0, MAILD_ERR_INVAL or MAILD_ERR_NOSPC (`out` too
 * small; 256 octets always suffice for the accepted methods).
 *
 * maild_users_verify_hash() checks the password against `hash` (NULL or
 * "": no such login, checked against a dummy hash all the same). Blocks
 * for one hash computation. Returns 0, MAILD_ERR_PERM (every refusal
 * alike), MAILD_ERR_INVAL or MAILD_ERR_NOMEM. `mem` as everywhere (NULL:
 * malloc).
 */
#define MAILD_USERS_HASH_SIZE 256
MAILD_EXTERN int maild_users_login_hash(const maild_users *u,
                                        const char *address, size_t address_len,
                                        char *out, size_t size);
MAILD_EXTERN int maild_users_verify_hash(const char *hash, const char *password,
                                         size_t password_len,
                                         const maild_mem *mem);

MAILD_EXTERN int maild_users_verify(const maild_users *u, const char *address,
                                    size_t address_len, const char *password,
                                    size_t password_len);

/*
 * Adds the account `address` (NUL-terminated, canonicalised) at the end,
 * with a yescrypt hash of `password[0..password_len)`, or with no password
 * ("!") when `password` is NULL. The salt comes from the system's random
 * source (crypt_gensalt_rn(3)). Returns 0, MAILD_ERR_EXISTS, an error of
 * maild_users_canonical(), MAILD_ERR_INVAL (empty password, or a NUL in
 * it), MAILD_ERR_TOO_LONG (password over MAILD_USERS_PASSWORD_MAX),
 * MAILD_ERR_IO (crypt(3) or its random source failed), MAILD_ERR_NOMEM.
 * On error `u` is unchanged.
 */
MAILD_EXTERN int maild_users_add(maild_users *u, const char *address,
                                 const char *password, size_t password_len);

/*
 * Removes the account `address` (its line; comments around it stay). Never
 * allocates. Returns 0, MAILD_ERR_NOT_FOUND, or an error of
 * maild_users_canonical().
 */
MAILD_EXTERN int maild_users_remove(maild_users *u, const char *address);

/*
 * Sets the password of `address` (a new yescrypt hash), or clears it
 * ("!", the account cannot log in) when `password` is NULL. Extra fields
 * of the line are kept. Errors as maild_users_add(), with
 * MAILD_ERR_NOT_FOUND instead of MAILD_ERR_EXISTS.
 */
MAILD_EXTERN int maild_users_set_password(maild_users *u, const char *address,
                                          const char *password,
                                          size_t password_len);

/*
 * Writes the file content for `u` into `buf` (no NUL added). Returns its
 * length; with `buf` NULL only the length needed; MAILD_ERR_NOSPC if
 * `size` is too small.
 */
MAILD_EXTERN maild_ssize maild_users_format(const maild_users *u, char *buf,
                                            size_t size);

/*
 * Replaces the file at `path` atomically with the content of `u`: writes
 * `path.tmp.PID.N` in the same directory (O_EXCL, mode 0600), fsyncs it,
 * renames it over `path`, fsyncs the directory. The new file has mode 0600
 * and, when it replaces a file, that file's owner and group (so root
 * running maildctl leaves the file readable by the daemon's user). A
 * reader sees the old file or the new one, never a mix; after a crash
 * either may be there, and at worst a stale tmp file. Blocks.
 * Returns 0, MAILD_ERR_PERM (no permission, or the owner could not be
 * kept), MAILD_ERR_NOT_FOUND (no such directory), MAILD_ERR_IO,
 * MAILD_ERR_NOMEM. On error the old file is untouched and the tmp file
 * removed. Concurrent writers are not locked out: the last rename wins.
 */
MAILD_EXTERN int maild_users_save(const maild_users *u, const char *path);

#ifdef __cplusplus
}
#endif
#endif
