/*
 * libFuzzer harness for the MAIL/RCPT ESMTP parameter parser and the xtext
 * codec (TESTPLAN F1, S8). The first input byte picks the verb (bit 0) and
 * the offered extensions (bits 1-6); the rest is the parameter list. No
 * decoded value may hold a control octet or exceed its buffer, and xtext
 * must round-trip. Aborts on violation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maild/esmtp.h"
#include "maild/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok)
    abort();
}

/* NUL-terminated at n, no control octet before it. */
static void check_value(const char *s, size_t n, size_t max) {
  size_t i;

  check(n <= max && s[n] == '\0');
  for (i = 0; i < n; i++)
    check((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] != 0x7f);
}

static void check_params(const maild_esmtp_params *p, unsigned verb,
                         unsigned exts) {
  check_value(p->envid, p->envid_len, MAILD_ENVID_MAX);
  check_value(p->orcpt, p->orcpt_len, MAILD_ORCPT_MAX);
  check_value(p->auth, p->auth_len, MAILD_AUTH_PARAM_MAX);
  check_value(p->orcpt_type, strlen(p->orcpt_type), MAILD_ADDRTYPE_MAX);
  check(!(p->notify & MAILD_NOTIFY_NEVER) || p->notify == MAILD_NOTIFY_NEVER);
  if (verb == MAILD_ESMTP_MAIL)
    check(!(p->present & (MAILD_PARAM_NOTIFY | MAILD_PARAM_ORCPT)));
  else
    check(!(p->present & ~(unsigned)(MAILD_PARAM_NOTIFY | MAILD_PARAM_ORCPT)));
  check(!(p->present & MAILD_PARAM_SIZE) || (exts & MAILD_EXT_SIZE));
  check(!(p->present & MAILD_PARAM_ORCPT) || (exts & MAILD_EXT_DSN));
  check(p->body != MAILD_BODY_BINARYMIME || (exts & MAILD_EXT_BINARYMIME));
}

/* xtext: encode, then decode gives the input back unless it held controls. */
static void check_xtext(const char *in, size_t n) {
  char enc[3 * 256 + 1], dec[257];
  maild_ssize e, d;
  size_t i;
  int ctl = 0;

  if (n > 256)
    n = 256;
  for (i = 0; i < n; i++)
    ctl |= (unsigned char)in[i] < 0x20 || (unsigned char)in[i] == 0x7f;
  e = maild_xtext_encode(in, n, enc, sizeof(enc));
  check(e >= 0 && (size_t)e == strlen(enc) && (size_t)e <= 3 * n);
  d = maild_xtext_decode(enc, (size_t)e, dec, sizeof(dec));
  if (ctl) {
    check(d == MAILD_ERR_BAD_CHAR);
    return;
  }
  check(d == (maild_ssize)n && memcmp(dec, in, n) == 0);
  d = maild_xtext_decode(in, n, dec, sizeof(dec));
  if (d >= 0)
    check_value(dec, (size_t)d, 256);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  maild_esmtp_params p;
  const char *in, *bad = NULL;
  unsigned verb, exts;
  int rc;

  if (size < 1)
    return 0;
  verb = data[0] & 1u ? MAILD_ESMTP_RCPT : MAILD_ESMTP_MAIL;
  exts = (data[0] >> 1) & 0x3fu;
  in = (const char *)data + 1;
  size--;
  rc = maild_esmtp_parse(&p, in, size, (maild_esmtp_verb)verb, exts, &bad);
  if (rc == 0)
    check_params(&p, verb, exts);
  else
    check(rc < 0 && bad >= in && bad < in + size && *bad != ' ');
  check_xtext(in, size);
  return 0;
}
