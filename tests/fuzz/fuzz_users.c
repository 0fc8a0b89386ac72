/*
 * libFuzzer harness for the users-file parser. The file is edited by hand,
 * so no content may crash the parser. Whatever it accepts must hold up:
 * every address is canonical (no ASCII capitals) and found by lookup, the
 * formatted content parses back to the same accounts and formats the same,
 * removing an account works, and a directory builds from the accounts'
 * domains with each account resolving to its own mailbox. No verify or
 * set-password: crypt(3) is too slow for a fuzzer. Aborts on violation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maild/directory.h"
#include "maild/error.h"
#include "maild/users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok)
    abort();
}

static int parse_error(int rc) {
  return rc == MAILD_ERR_SYNTAX || rc == MAILD_ERR_BAD_CHAR ||
         rc == MAILD_ERR_TOO_LONG || rc == MAILD_ERR_NUL ||
         rc == MAILD_ERR_BARE_CR || rc == MAILD_ERR_UNSUPPORTED ||
         rc == MAILD_ERR_DUPLICATE;
}

static char *format(const maild_users *u, size_t *len) {
  maild_ssize n = maild_users_format(u, NULL, 0);
  char *buf;

  check(n >= 0);
  buf = malloc((size_t)n + 1);
  check(buf != NULL);
  check(maild_users_format(u, buf, (size_t)n) == n);
  *len = (size_t)n;
  return buf;
}

static void check_accounts(const maild_users *u) {
  const char *a;
  unsigned flags;
  size_t i;

  for (i = 0; i < maild_users_count(u); i++) {
    a = maild_users_address(u, i);
    check(a != NULL && strlen(a) < MAILD_USERS_ADDRESS_SIZE);
    for (const char *p = a; *p != '\0'; p++)
      check(!(*p >= 'A' && *p <= 'Z'));
    check(maild_users_lookup(u, a, strlen(a), &flags) == 0);
  }
  check(maild_users_address(u, i) == NULL);
}

/* Formatting is stable: parse(format(u)) formats to the same bytes. */
static void check_roundtrip(const maild_users *u) {
  char *a, *b;
  size_t na, nb, i;
  maild_users *v;

  a = format(u, &na);
  check(maild_users_new(&v, NULL, NULL) == 0);
  check(maild_users_parse(v, a, na, NULL) == 0);
  check(maild_users_count(v) == maild_users_count(u));
  for (i = 0; i < maild_users_count(u); i++)
    check(strcmp(maild_users_address(u, i), maild_users_address(v, i)) == 0);
  b = format(v, &nb);
  check(na == nb && memcmp(a, b, na) == 0);
  free(a);
  free(b);
  maild_users_del(v);
}

/* A directory of every account's domain: each account is its mailbox. */
static void check_directory(const maild_users *u) {
  const char *doms[8];
  size_t n = 0, i, j, count = maild_users_count(u);
  maild_directory_config cfg;
  maild_directory_result r;
  maild_directory *d;
  maild_path p;
  char path[MAILD_USERS_ADDRESS_SIZE + 2];

  for (i = 0; i < count && n < 8; i++) {
    const char *dom = maild_users_domain(maild_users_address(u, i)) + 1;
    for (j = 0; j < n && strcmp(doms[j], dom) != 0; j++)
      ;
    if (j == n)
      doms[n++] = dom;
  }
  if (n == 0)
    return;
  memset(&cfg, 0, sizeof(cfg));
  cfg.domains = doms;
  cfg.ndomains = n;
  cfg.users = u;
  check(maild_directory_new(&d, &cfg, NULL, NULL, NULL) == 0);
  for (i = 0; i < count; i++) {
    const char *a = maild_users_address(u, i);
    size_t len = strlen(a);
    path[0] = '<';
    memcpy(path + 1, a, len);
    path[len + 1] = '>';
    check(maild_path_parse(&p, path, len + 2, MAILD_PATH_ALLOW_UTF8) ==
          (maild_ssize)(len + 2));
    check(maild_directory_lookup(d, &p, &r) == 0);
    if (maild_directory_is_local_domain(d, p.domain, p.domain_len)) {
      check(r.kind == MAILD_RCPT_LOCAL && r.nmailboxes == 1);
      check(strcmp(r.mailboxes[0], a) == 0);
    }
  }
  maild_directory_del(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  maild_users *u;
  size_t line = 0, count;
  int rc;

  check(maild_users_new(&u, NULL, NULL) == 0);
  rc = maild_users_parse(u, in, size, &line);
  if (rc < 0) {
    check(parse_error(rc) && line >= 1 && maild_users_count(u) == 0);
    maild_users_del(u);
    return 0;
  }
  check(line == 0);
  check_accounts(u);
  check_roundtrip(u);
  check_directory(u);
  count = maild_users_count(u);
  if (count > 0) {
    char first[MAILD_USERS_ADDRESS_SIZE];
    strcpy(first, maild_users_address(u, 0));
    check(maild_users_remove(u, first) == 0);
    check(maild_users_count(u) == count - 1);
    check(maild_users_lookup(u, first, strlen(first), NULL) ==
          MAILD_ERR_NOT_FOUND);
    check(maild_users_add(u, first, NULL, 0) == 0);
    check(maild_users_count(u) == count);
    check_roundtrip(u);
  }
  maild_users_del(u);
  return 0;
}
