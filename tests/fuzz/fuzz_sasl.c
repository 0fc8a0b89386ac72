/*
 * libFuzzer harness for the SASL PLAIN/LOGIN server. The input is the
 * mechanism name on the first line, then one client response per line
 * ("!" alone stands for "no response", as for an AUTH command without an
 * initial response). Any input must be handled without a crash or leak,
 * and what comes out must obey sasl.h: challenges are the documented ones,
 * credentials after DONE respect every field rule and re-encode to exactly
 * the response that carried them (the decoder is strict), and an ended
 * exchange refuses further steps. Aborts on violation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maild/address.h"
#include "maild/base64.h"
#include "maild/error.h"
#include "maild/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok)
    abort();
}

static void check_name(const char *p, size_t len, size_t min) {
  size_t i;

  check(p != NULL && strlen(p) == len);
  check(len >= min && len <= MAILD_SASL_NAME_MAX);
  for (i = 0; i < len; i++)
    check((unsigned char)p[i] >= 0x20 && (unsigned char)p[i] != 0x7f);
  check(maild_utf8_check(p, len) == 0);
}

/* base64 of `a[0..n)` equals the response `resp[0..rlen)`. */
static void check_encodes_to(const char *a, size_t n, const char *resp,
                             size_t rlen) {
  char *b64 = malloc(MAILD_BASE64_ENCODED_LEN(n) + 1);

  check(b64 != NULL);
  check(maild_base64_encode((const uint8_t *)a, n, b64,
                            MAILD_BASE64_ENCODED_LEN(n) + 1) ==
        (maild_ssize)rlen);
  check(memcmp(b64, resp, rlen) == 0);
  free(b64);
}

static void check_done(const maild_sasl_server *s, int plain, const char *resp,
                       size_t rlen) {
  size_t zlen = 99, clen = 99, plen = 99;
  const char *z = maild_sasl_server_authzid(s, &zlen);
  const char *c = maild_sasl_server_authcid(s, &clen);
  const char *p = maild_sasl_server_password(s, &plen);

  check(resp != NULL);
  check_name(z, zlen, 0);
  check_name(c, clen, 1);
  check(p != NULL && strlen(p) == plen);
  check(plen >= 1 && plen <= MAILD_SASL_PASSWORD_MAX);
  if (plain) {
    char msg[MAILD_SASL_NAME_MAX * 2 + MAILD_SASL_PASSWORD_MAX + 2];
    check(maild_utf8_check(p, plen) == 0);
    memcpy(msg, z, zlen + 1);
    memcpy(msg + zlen + 1, c, clen + 1);
    memcpy(msg + zlen + clen + 2, p, plen);
    check_encodes_to(msg, zlen + clen + 2 + plen, resp, rlen);
  } else {
    check(zlen == 0);
    check_encodes_to(p, plen, resp, rlen);
  }
}

static void check_ended(maild_sasl_server *s) {
  char ch[MAILD_SASL_CHALLENGE_SIZE];
  size_t n = 99;

  check(maild_sasl_server_step(s, "", 0, ch, sizeof(ch), &n) ==
        MAILD_ERR_STATE);
  check(n == 0 && ch[0] == '\0');
}

static int step_error(int rc) {
  return rc == MAILD_ERR_SYNTAX || rc == MAILD_ERR_TOO_LONG ||
         rc == MAILD_ERR_BAD_CHAR;
}

static void run(maild_sasl_server *s, int plain, const char *in, size_t size) {
  char ch[MAILD_SASL_CHALLENGE_SIZE];
  size_t pos = 0, n;
  int first = 1, ended = 0, rc;

  while (pos <= size && !ended) {
    const char *line = in + pos, *nl = memchr(line, '\n', size - pos);
    size_t len = nl ? (size_t)(nl - line) : size - pos;
    const char *resp = len == 1 && line[0] == '!' ? NULL : line;

    n = 99;
    rc = maild_sasl_server_step(s, resp, len, ch, sizeof(ch), &n);
    if (rc == MAILD_SASL_CONTINUE) {
      check(n == strlen(ch));
      check(plain ? first && resp == NULL && n == 0
                  : strcmp(ch, "VXNlcm5hbWU6") == 0 ||
                        strcmp(ch, "UGFzc3dvcmQ6") == 0);
    } else if (rc == MAILD_SASL_DONE) {
      check(n == 0 && ch[0] == '\0');
      check_done(s, plain, resp, len);
      ended = 1;
    } else if (rc == MAILD_ERR_INVAL) {
      check(!first && resp == NULL);
    } else {
      check(step_error(rc) && n == 0);
      check(maild_sasl_server_authcid(s, NULL) == NULL);
      check(maild_sasl_server_password(s, NULL) == NULL);
      ended = 1;
    }
    if (rc != MAILD_ERR_INVAL)
      first = 0;
    if (nl == NULL)
      break;
    pos += len + 1;
  }
  if (ended)
    check_ended(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  const char *nl = memchr(in, '\n', size);
  size_t mlen = nl ? (size_t)(nl - in) : size;
  char mech[64];
  maild_sasl_server *s;
  int rc;

  if (mlen >= sizeof(mech))
    return 0;
  memcpy(mech, in, mlen);
  mech[mlen] = '\0';
  rc = maild_sasl_server_new(&s, mech, NULL, NULL);
  check(rc == (maild_sasl_mechanism_supported(mech, strlen(mech))
                   ? 0
                   : MAILD_ERR_UNSUPPORTED));
  if (rc < 0) {
    check(s == NULL);
    return 0;
  }
  check(maild_sasl_mechanism_supported(maild_sasl_server_mechanism(s), 5));
  if (nl != NULL)
    run(s, strcmp(maild_sasl_server_mechanism(s), "PLAIN") == 0, nl + 1,
        size - mlen - 1);
  maild_sasl_server_del(s);
  return 0;
}
