/*
 * TLS over memory buffers: the building blocks the runtime puts between a
 * libuv connection (io/conn.h) and a protocol engine, for STARTTLS (RFC
 * 3207), implicit TLS (RFC 8314) and outbound opportunistic TLS.
 *
 * Nothing here performs I/O on sockets. The caller feeds ciphertext that it
 * read from the peer, drives the handshake, reads and writes plaintext, and
 * sends whatever ciphertext the session leaves in its output buffer. Every
 * buffer is bounded, so a peer that sends garbage, plaintext, a truncated
 * handshake or oversized records cannot make memory grow without limit.
 *
 * The backend (mbedTLS 2.28 today) stays behind opaque types: this header
 * and its callers never see a backend type or error code, so the backend
 * can be replaced without touching the runtime.
 *
 * Allocation: the objects here, their buffers and the strings they return
 * are allocated through the caller's maild_mem. The backend's own
 * allocations (mbedTLS contexts, its 16 KiB record buffers, certificate and
 * key structures, handshake state) go through the C library allocator: the
 * only way to redirect them is mbedtls_platform_set_calloc_free(), which is
 * process-global, and the library sets no globals. This is a known exception
 * to "every allocation through maild_mem"; a failed backend allocation is
 * still reported as MAILD_ERR_NOMEM.
 *
 * Threading: a configuration and the sessions made from it belong to one
 * thread (the loop thread), which creates and deletes sessions (the
 * configuration's reference count has no lock). A configuration may be
 * created on another thread (a worker) and then handed over. One exception:
 * when maild__tls_handshake_threadsafe() says so, maild__tls_handshake()
 * may run on worker threads, several sessions of one configuration at
 * once, as long as each session is used by one thread at a time and
 * handed over with a memory barrier (as uv_queue_work does).
 */
#ifndef MAILD_IO_TLS_H
#define MAILD_IO_TLS_H

#include "maild/common.h"

/* One TLS record on the wire at most: 5 header octets plus the largest
   TLSCiphertext.fragment (2^14 + 2048, RFC 5246 section 6.2.3). */
#define MAILD__TLS_RECORD_MAX (5u + 16384u + 2048u)

/* The most ciphertext a session buffers in each direction: two records plus
   slack. Input beyond this is refused (maild__tls_feed); application data
   stops there (maild__tls_write takes fewer octets), leaving 1 KiB more for
   alerts and close_notify. */
#define MAILD__TLS_BUFFER_MAX (2u * MAILD__TLS_RECORD_MAX + 4096u)

/* Longest string maild__tls_error() and maild__tls_info() return. */
#define MAILD__TLS_TEXT_MAX 160u

typedef struct maild_tls_config maild_tls_config;
typedef struct maild_tls maild_tls;

/* --- Configuration ------------------------------------------------------
 *
 * A configuration is made once per listener (server) or per outbound
 * context (client) and is immutable afterwards, except for the random
 * generator state its sessions advance. It owns its own entropy source and
 * CTR_DRBG (seeded from the platform entropy source), so there are no
 * process-wide globals.
 *
 * Protocol: TLS 1.2 only (the version this mbedTLS build offers), cipher
 * suites ECDHE-ECDSA and ECDHE-RSA with AES-128-GCM, AES-256-GCM and
 * ChaCha20-Poly1305 (no CBC, no static RSA, no SHA-1 MACs), curves X25519,
 * P-256 and P-384, no renegotiation, no compression. A server issues
 * session tickets (RFC 5077; key made at creation and replaced hourly,
 * tickets good for an hour) so returning clients resume without a key
 * exchange; a client does not ask for them.
 *
 * Creation reads files and gathers entropy: it blocks, so the runtime does
 * it at start-up, on reload (SIGHUP) or on its worker pool, not on the loop.
 *
 * Lifetime: sessions hold a reference to their configuration, so
 * maild__tls_config_del() may be called while sessions made from it are
 * still open (e.g. after a certificate reload): the configuration is freed
 * when the last of them is deleted.
 *
 * `err` (may be NULL when `errlen` is 0) receives a one-line reason on
 * failure, naming the file, e.g. "/etc/maild/key.pem: key does not match
 * certificate /etc/maild/cert.pem". It is always NUL-terminated when
 * `errlen` > 0.
 */

/*
 * A server configuration presenting the certificate chain in `cert_path`
 * (PEM, leaf first, then intermediates) with the private key in `key_path`
 * (PEM, unencrypted; EC or RSA). One certificate per listener for now; the
 * configuration keeps a slot where SNI selection will go.
 *
 * Returns 0 and sets *out, or:
 *   MAILD_ERR_INVAL      an argument is NULL;
 *   MAILD_ERR_NOT_FOUND  a file does not exist;
 *   MAILD_ERR_PERM       a file cannot be opened for reading;
 *   MAILD_ERR_IO         a read failed, or a file is larger than 1 MiB;
 *   MAILD_ERR_SYNTAX     no certificate / no key could be parsed (or the key
 *                        is encrypted);
 *   MAILD_ERR_TLS        the key does not match the leaf certificate, or
 *                        the key type is unusable with the allowed suites,
 *                        or the random generator could not be seeded;
 *   MAILD_ERR_NOMEM      an allocation failed.
 * On failure *out is left untouched and nothing is allocated.
 */
int maild__tls_config_server_new(maild_tls_config **out, const char *cert_path,
                                 const char *key_path, const maild_mem *mem,
                                 char *err, size_t errlen);

/*
 * A client configuration. With `verify` 1 the server's certificate must
 * chain to a CA in `ca_path` (PEM bundle) or, when `ca_path` is NULL, in the
 * system store /etc/ssl/certs/ca-certificates.crt, and must match the
 * server name given to maild__tls_new(); otherwise the handshake fails.
 * With `verify` 0 (opportunistic TLS, RFC 7435) any certificate is
 * accepted; if `ca_path` is given the result of verifying against it is
 * still reported by maild__tls_peer_verified().
 *
 * Returns 0 and sets *out, or MAILD_ERR_INVAL (`out` NULL or `verify` not
 * 0/1), MAILD_ERR_NOT_FOUND, MAILD_ERR_PERM, MAILD_ERR_IO (CA file as
 * above, limit 4 MiB), MAILD_ERR_SYNTAX (no CA certificate could be
 * parsed), MAILD_ERR_TLS (random generator) or MAILD_ERR_NOMEM.
 */
int maild__tls_config_client_new(maild_tls_config **out, const char *ca_path,
                                 int verify, const maild_mem *mem, char *err,
                                 size_t errlen);

/* Drops the creator's reference; the configuration is freed now or when its
   last session is deleted. NULL is a no-op. */
void maild__tls_config_del(maild_tls_config *cfg);

/* --- Sessions -----------------------------------------------------------
 *
 * How the runtime drives a session (the same loop for STARTTLS after the
 * 220 reply and for implicit TLS from accept):
 *
 *   on bytes from the socket:
 *     feed them (at most maild__tls_feed_room() at a time);
 *     until the handshake is done: maild__tls_handshake(), then send
 *       output; AGAIN means wait for more bytes;
 *     then maild__tls_read() until AGAIN, handing plaintext to the engine;
 *   whenever the engine has output: maild__tls_write() (may take fewer
 *     octets), then send output;
 *   sending output: n = maild__tls_output(t, &p); write p[0..n);
 *     maild__tls_consume(t, n).
 *
 * Output must be collected after every call (handshake, read, write,
 * close), including after a failure: the session may have queued a fatal
 * alert for the peer. The handshake deadline is the runtime's timer.
 */

/*
 * A session using `cfg` (which it references until maild__tls_del). On a
 * client configuration `server_name` is sent as SNI (RFC 6066) and is the
 * name the certificate must match; it is required when the configuration
 * verifies (a DNS name: this backend does not match IP address SANs). On a
 * server configuration `server_name` must be NULL. `mem` is copied (NULL:
 * the C library allocator).
 *
 * Returns 0 and sets *out, or MAILD_ERR_INVAL (NULL `out`/`cfg`, a server
 * name on a server configuration, or none on a verifying client),
 * MAILD_ERR_NOMEM.
 */
int maild__tls_new(maild_tls **out, maild_tls_config *cfg,
                   const char *server_name, const maild_mem *mem);

/* Frees the session and drops its configuration reference. No close_notify
   is sent (call maild__tls_close() first for a clean close). NULL is a
   no-op. */
void maild__tls_del(maild_tls *t);

/* How many octets maild__tls_feed() accepts right now (free room in the
   input buffer). */
size_t maild__tls_feed_room(const maild_tls *t);

/*
 * Copies `len` octets of ciphertext received from the peer into the
 * session's input buffer (at most MAILD__TLS_BUFFER_MAX octets buffered).
 * All or nothing. Returns 0, or:
 *   MAILD_ERR_LIMIT  more than maild__tls_feed_room() octets were offered;
 *                    nothing was copied. The caller first lets the session
 *                    consume what it holds (maild__tls_handshake() /
 *                    maild__tls_read()) and feeds the rest afterwards; if
 *                    the room stays short (the application is not reading
 *                    plaintext), it must stop reading from the socket
 *                    until it does.
 *   MAILD_ERR_NOMEM  the buffer could not grow; nothing was copied, the
 *                    session is unchanged.
 *   MAILD_ERR_INVAL  `in` is NULL with `len` > 0.
 * Feeding after a failure or after close is accepted and ignored.
 */
int maild__tls_feed(maild_tls *t, const uint8_t *in, size_t len);

/*
 * Advances the handshake as far as the buffered input allows. Returns:
 *   0                 the handshake is complete (also on later calls).
 *                     Records that followed it may already be buffered:
 *                     call maild__tls_read() now, not only on new input.
 *   MAILD_ERR_AGAIN   more input is needed (or output must be sent first):
 *                     send the output, then wait for the peer.
 *   MAILD_ERR_CLOSED  the peer sent close_notify during the handshake.
 *   MAILD_ERR_TLS     the handshake failed; maild__tls_error() says why
 *                     ("peer sent plaintext, not TLS", "certificate verify
 *                     failed (name mismatch)", "handshake failure alert
 *                     from peer", "no shared cipher suite", ...). Send the
 *                     output (an alert), then close the connection.
 *   MAILD_ERR_NOMEM   the output buffer could not grow, or the backend
 *                     failed to allocate.
 * After CLOSED, TLS or NOMEM the session is finished: every later call
 * returns the same code; only output, consume and del remain useful.
 */
int maild__tls_handshake(maild_tls *t);

/*
 * 1 when handshakes of sessions sharing a configuration may run on
 * different threads at once: the backend locks the shared random generator
 * and key (mbedTLS built with MBEDTLS_THREADING_C, as Debian's is), and the
 * configuration's key was used once at creation, so nothing in it is
 * computed lazily later. 0 otherwise: handshakes stay on the loop thread.
 */
int maild__tls_handshake_threadsafe(void);

/*
 * Decrypts buffered input into `out[0..cap)`. Returns the number of octets
 * (> 0), or:
 *   0                 the peer sent close_notify (a clean close); again on
 *                     every later call. The runtime then calls
 *                     maild__tls_close(), sends the output and closes.
 *   MAILD_ERR_AGAIN   no complete record is buffered; feed more input.
 *   MAILD_ERR_STATE   the handshake is not complete.
 *   MAILD_ERR_INVAL   `out` is NULL or `cap` is 0.
 *   MAILD_ERR_TLS     a bad record (authentication failure, malformed,
 *                     oversized) or a fatal alert; see maild__tls_error().
 *   MAILD_ERR_NOMEM   as for maild__tls_handshake().
 * A TCP end of stream without close_notify is the runtime's to notice: it
 * means the data may have been truncated (RFC 5246 section 7.2.1).
 */
maild_ssize maild__tls_read(maild_tls *t, uint8_t *out, size_t cap);

/*
 * Encrypts up to `len` octets of `in` into the output buffer and returns
 * how many it took (> 0; possibly fewer than `len`: at most one record's
 * worth, 16 KiB, and never more than the output buffer has room for), or:
 *   MAILD_ERR_AGAIN   the output buffer is full: send output first.
 *   MAILD_ERR_STATE   the handshake is not complete.
 *   MAILD_ERR_CLOSED  close_notify was sent or received.
 *   MAILD_ERR_INVAL   `len` is 0, or `in` is NULL.
 *   MAILD_ERR_TLS     encryption failed; see maild__tls_error().
 *   MAILD_ERR_NOMEM   as for maild__tls_handshake().
 */
maild_ssize maild__tls_write(maild_tls *t, const uint8_t *in, size_t len);

/*
 * Ciphertext waiting to be sent to the peer: sets *data and returns its
 * length (0, with *data NULL, when none). The pointer is valid until the next
 * call on the session. Call maild__tls_consume() with what was actually sent.
 */
maild_ssize maild__tls_output(maild_tls *t, const uint8_t **data);

/* Drops `n` octets from the front of the output (n larger than the output
   drops all of it). */
void maild__tls_consume(maild_tls *t, size_t n);

/*
 * Queues close_notify (RFC 5246 section 7.2.1); later writes return
 * MAILD_ERR_CLOSED. Returns 0 (also before the handshake completed, when
 * nothing is sent, and when called again), MAILD_ERR_AGAIN (the output
 * buffer is full: send output and call again), MAILD_ERR_TLS or
 * MAILD_ERR_NOMEM.
 */
int maild__tls_close(maild_tls *t);

/* Why the session failed: one line (at most MAILD__TLS_TEXT_MAX - 1
   octets) owned by the session, valid until maild__tls_del; "" when
   nothing failed. */
const char *maild__tls_error(const maild_tls *t);

/*
 * After the handshake, the protocol and cipher as mail servers print
 * them in the comment of a Received header whose protocol is ESMTPS (RFC
 * 3848), e.g. "TLSv1.2 with cipher ECDHE-ECDSA-AES256-GCM-SHA384"
 * (OpenSSL's suite names). Owned by the session, valid until
 * maild__tls_del; "" before the handshake completes.
 */
const char *maild__tls_info(const maild_tls *t);

/* 1 if the handshake completed by resuming an earlier session (a session
   ticket), without a key exchange; 0 otherwise. */
int maild__tls_resumed(const maild_tls *t);

/* 1 if the handshake completed and the peer's certificate was verified
   (chain and name) against the configured CAs; 0 otherwise (always 0 on a
   server, which does not ask for client certificates). */
int maild__tls_peer_verified(const maild_tls *t);

/* --- Certificates -------------------------------------------------------*/

/*
 * Generates a self-signed certificate for `hostname` (letters, digits,
 * '-', '.', at most 253 octets): ECDSA P-256 key, X.509 v3, random serial,
 * valid from a day ago for ten years, CN=hostname, subjectAltName
 * DNS:hostname, DNS:localhost and IP:127.0.0.1, basicConstraints CA:TRUE
 * (so clients can use it as its own trust anchor), keyUsage
 * digitalSignature and keyCertSign, extendedKeyUsage serverAuth.
 *
 * The key goes to `key_path` (PEM, mode 0600), the certificate to
 * `cert_path` (PEM, mode 0644). Each is written to a new temporary file
 * beside it (O_EXCL), fsync'd, moved into place atomically and the
 * directory fsync'd; the key is placed first, the certificate last, so a
 * certificate file on disk always has its key. Unless `overwrite` is 1,
 * existing files are never replaced.
 *
 * This blocks (entropy, file writes, fsync): not for the loop thread.
 *
 * Returns 0, or MAILD_ERR_INVAL (bad argument or hostname), MAILD_ERR_EXISTS
 * (a file exists and `overwrite` is 0), MAILD_ERR_PERM, MAILD_ERR_NOT_FOUND
 * (directory missing), MAILD_ERR_IO (write, fsync or rename failed),
 * MAILD_ERR_TLS (key or certificate generation failed) or MAILD_ERR_NOMEM;
 * `err` as for the configuration functions. On failure no temporary file is
 * left behind; the key may already be in place if only the certificate
 * could not be placed.
 */
int maild__tls_generate_self_signed(const char *cert_path, const char *key_path,
                                    const char *hostname, int overwrite,
                                    const maild_mem *mem, char *err,
                                    size_t errlen);

/* The OpenSSL-style name of an allowed cipher suite given its IANA number
   (0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384"), or NULL if the suite is not
   one the configurations allow. The string is static. */
const char *maild__tls_suite_name(int iana_id);

/* --- Backend glue (between tls.c and tls_config.c only) -----------------*/

/* The backend's configuration object (mbedtls_ssl_config *). */
const void *maild__tls_config_backend(const maild_tls_config *cfg);

/* 1 for a server configuration, 0 for a client. */
int maild__tls_config_is_server(const maild_tls_config *cfg);

/* 1 for a verifying client configuration. */
int maild__tls_config_verifies(const maild_tls_config *cfg);

/* Formats a reason into `err` (as the configuration functions describe)
   and returns `code`. */
int maild__tls_errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "path: <strerror(e)>" into `err`; returns the maild code for errno `e`
   (NOT_FOUND, PERM, EXISTS, NOMEM, else IO). */
int maild__tls_errno(char *err, size_t errlen, const char *path, int e);

/* Session reference counting (maild__tls_new / maild__tls_del). */
void maild__tls_config_hold(maild_tls_config *cfg);
void maild__tls_config_release(maild_tls_config *cfg);

#endif
