/*
 * TLS credentials for the server runtime: a certificate chain and its key,
 * loaded once and shared by every session of the listeners that use them.
 * The TLS library behind them (mbedTLS today) never shows in this API.
 */
#ifndef MAILD_TLS_H
#define MAILD_TLS_H

#include "maild/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct maild_tls_credentials maild_tls_credentials;

/*
 * Loads a PEM certificate chain and its private key. Blocks (reads files,
 * seeds a random generator): call it at set-up, on reload, or on a worker
 * thread. On failure `err` (may be NULL) says which file and why, e.g.
 * "key does not match certificate". Returns 0, MAILD_ERR_INVAL,
 * MAILD_ERR_NOT_FOUND, MAILD_ERR_PERM, MAILD_ERR_IO, MAILD_ERR_SYNTAX (not
 * PEM, or unreadable), MAILD_ERR_TLS (unusable key) or MAILD_ERR_NOMEM.
 */
MAILD_EXTERN int maild_tls_credentials_load(maild_tls_credentials **out,
                                            const char *cert_path,
                                            const char *key_path,
                                            const maild_mem *mem, char *err,
                                            size_t errlen);

/* Drops the caller's reference; sessions that use the credentials keep
   them alive until they end. NULL is a no-op. */
MAILD_EXTERN void maild_tls_credentials_del(maild_tls_credentials *cred);

/*
 * Creates a self-signed certificate for `hostname` (also naming localhost
 * and 127.0.0.1) with a new ECDSA P-256 key: the key file is created mode
 * 0600, the certificate 0644, each written to a temporary name, synced and
 * renamed into place. Existing files are kept unless `overwrite`. Blocks.
 * Returns 0, MAILD_ERR_EXISTS, MAILD_ERR_INVAL, MAILD_ERR_PERM,
 * MAILD_ERR_NOT_FOUND (no such directory), MAILD_ERR_IO, MAILD_ERR_TLS or
 * MAILD_ERR_NOMEM, with `err` saying why.
 */
MAILD_EXTERN int maild_tls_generate_self_signed(const char *cert_path,
                                                const char *key_path,
                                                const char *hostname,
                                                int overwrite, char *err,
                                                size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
