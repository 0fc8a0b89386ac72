/*
 * Public TLS credentials (maild/tls.h) over the internal TLS layer: a
 * credentials object is a reference to a server configuration of
 * lib/io/tls, which counts its users, so a reload can replace the
 * credentials while sessions still hold the old ones.
 */
#include "runtime/server_int.h"

#include "core/mem.h"
#include "maild/error.h"

struct maild_tls_credentials {
  maild_mem mem;
  maild_tls_config *cfg;
};

int maild_tls_credentials_load(maild_tls_credentials **out,
                               const char *cert_path, const char *key_path,
                               const maild_mem *mem, char *err, size_t errlen) {
  maild_tls_credentials *cred;
  char scratch[8];
  maild_mem m;
  int rc;

  if (out == NULL || cert_path == NULL || key_path == NULL)
    return MAILD_ERR_INVAL;
  if (err == NULL) {
    err = scratch;
    errlen = sizeof(scratch);
  }
  maild__mem_init(&m, mem);
  cred = maild__calloc(&m, 1, sizeof(*cred));
  if (cred == NULL)
    return MAILD_ERR_NOMEM;
  cred->mem = m;
  rc = maild__tls_config_server_new(&cred->cfg, cert_path, key_path, &m, err,
                                    errlen);
  if (rc != 0) {
    maild__free(&m, cred);
    return rc;
  }
  *out = cred;
  return 0;
}

void maild_tls_credentials_del(maild_tls_credentials *cred) {
  if (cred == NULL)
    return;
  maild__tls_config_del(cred->cfg);
  maild__free(&cred->mem, cred);
}

int maild_tls_generate_self_signed(const char *cert_path, const char *key_path,
                                   const char *hostname, int overwrite,
                                   char *err, size_t errlen) {
  char scratch[8];

  if (err == NULL) {
    err = scratch;
    errlen = sizeof(scratch);
  }
  return maild__tls_generate_self_signed(cert_path, key_path, hostname,
                                         overwrite, NULL, err, errlen);
}

/* For the server: the configuration behind the credentials. */
maild_tls_config *maild__tls_credentials_config(maild_tls_credentials *cred) {
  return cred->cfg;
}
