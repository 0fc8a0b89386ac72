/*
 * libFuzzer harness for the RFC 5321 path parser (TESTPLAN F1). The first
 * input byte picks the allow flags, the rest is the path. Checks the
 * invariants the SMTP engine relies on: never more consumed than given,
 * local-part and domain within their limits and NUL-terminated, and the
 * canonical form formats and parses back to itself. Aborts on violation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maild/address.h"
#include "maild/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok)
    abort();
}

static int has_non_ascii(const char *s) {
  for (; *s != '\0'; s++)
    if ((unsigned char)*s >= 0x80)
      return 1;
  return 0;
}

/* "<" + formatted + ">" parses to the same canonical local and domain. */
static void check_roundtrip(const maild_path *p, const char *fmt, size_t n,
                            unsigned allow) {
  char in[402];
  maild_path q;
  maild_ssize rc;

  in[0] = '<';
  memcpy(in + 1, fmt, n);
  in[n + 1] = '>';
  rc = maild_path_parse(&q, in, n + 2, allow);
  check(rc == (maild_ssize)(n + 2));
  check(strcmp(p->local, q.local) == 0 && strcmp(p->domain, q.domain) == 0);
  check(p->flags == q.flags);
}

static void check_path(const maild_path *p, const char *in, maild_ssize rc,
                       unsigned allow) {
  char fmt[400];
  maild_ssize n;

  check(rc <= MAILD_PATH_MAX && in[0] == '<' && in[rc - 1] == '>');
  check(p->local_len == strlen(p->local) && p->local_len <= MAILD_LOCAL_MAX);
  check(p->domain_len == strlen(p->domain) &&
        p->domain_len <= MAILD_DOMAIN_MAX);
  check(!(p->flags & MAILD_PATH_UTF8) || (allow & MAILD_PATH_ALLOW_UTF8));
  check(!(p->flags & MAILD_PATH_NULL) || (allow & MAILD_PATH_ALLOW_NULL));
  check(!(p->flags & MAILD_PATH_POSTMASTER) ||
        (allow & MAILD_PATH_ALLOW_POSTMASTER));
  n = maild_path_format(p, fmt, sizeof(fmt));
  check(n >= 0 && (size_t)n == strlen(fmt));
  if (p->flags & (MAILD_PATH_ROUTE | MAILD_PATH_NULL | MAILD_PATH_POSTMASTER))
    return;
  check(p->local_len > 0 && p->domain_len > 0);
  check(!!(p->flags & MAILD_PATH_UTF8) ==
        (has_non_ascii(p->local) || has_non_ascii(p->domain)));
  check(maild_domain_check(p->domain, p->domain_len, allow, 1) == 0);
  check_roundtrip(p, fmt, (size_t)n, allow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in;
  maild_path p;
  maild_ssize rc;
  unsigned allow;

  if (size < 1)
    return 0;
  allow = data[0] & 7u;
  in = (const char *)data + 1;
  size--;
  rc = maild_path_parse(&p, in, size, allow);
  check(rc <= (maild_ssize)size);
  check(rc != 0);
  if (rc > 0)
    check_path(&p, in, rc, allow);
  rc = maild_domain_check(in, size, allow, data[0] & 8u);
  check(rc == 0 || rc == MAILD_ERR_SYNTAX || rc == MAILD_ERR_TOO_LONG ||
        rc == MAILD_ERR_BAD_CHAR);
  if (rc == 0)
    check(size <= MAILD_DOMAIN_MAX && maild_utf8_check(in, size) == 0);
  return 0;
}
