/* Unit tests for the users file: parsing, canonical addresses, crypt(3)
   verification, editing and the atomic save. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "maild/error.h"
#include "maild/users.h"
#include "testmem.h"

/* Hashes of "correct horse" made by libxcrypt (crypt_gensalt_rn +
   crypt_rn), one per method the file accepts and the tests cover. */
#define Y_HASH \
  "$y$j9T$mqV4Aq2hYzHUNEaGP6g441$fuo65Fk1a//uyZ2tYGAvRwhJWffGIXas1yrMJGxG2UC"
#define SHA512_HASH                                                           \
  "$6$odyDZiSX.nFjqwvb$dETIqu.qZsA9nIRr9hYMbft..Vl71FRaex9iDa8qAVZU6cuRpY67D" \
  "gjQ0ytOBry294crSJbJqnUjtM.BgwPJ9."
#define BCRYPT_HASH \
  "$2b$05$IqJmXeU.t1FzkKwIynY.0O0cbz0oRgH8qaO4S2IHYnxE.ekIQj14S"
#define PW "correct horse"

static const char sample[] =
    "# accounts of example.com\n"
    "\n"
    "alice@example.com:" Y_HASH "\n"
    "  # indented comment\n"
    "\"Bob\"@Example.COM:" SHA512_HASH ":uid=1000:future\r\n"
    "carol@example.org:" BCRYPT_HASH "\n"
    "dave@example.com:!\n"
    "erin@example.com:\n"
    "\"frank smith\"@example.com:!\n"
    "\"x:y\"@[IPv6:2001:db8::1]:!\n"
    "j\xc3\xb6rg@example.com:!"; /* no final newline */

static maild_users *parse_ok(const char *text, size_t len) {
  maild_users *u;
  size_t line = 99;

  assert_int_equal(maild_users_new(&u, NULL, NULL), 0);
  assert_int_equal(maild_users_parse(u, text, len, &line), 0);
  assert_int_equal(line, 0);
  return u;
}

static int parse_err(const char *text, size_t len, size_t *line) {
  maild_users *u;
  int rc;

  assert_int_equal(maild_users_new(&u, NULL, NULL), 0);
  rc = maild_users_parse(u, text, len, line);
  if (rc < 0)
    assert_int_equal(maild_users_count(u), 0); /* all or nothing */
  maild_users_del(u);
  return rc;
}

static void test_parse_good(void **state) {
  static const char *const want[] = {
      "alice@example.com",          "bob@example.com",
      "carol@example.org",          "dave@example.com",
      "erin@example.com",           "\"frank smith\"@example.com",
      "\"x:y\"@[ipv6:2001:db8::1]", "j\xc3\xb6rg@example.com",
  };
  maild_users *u;
  unsigned flags;
  size_t i;
  (void)state;

  u = parse_ok(sample, strlen(sample));
  assert_int_equal(maild_users_count(u), 8);
  for (i = 0; i < 8; i++)
    assert_string_equal(maild_users_address(u, i), want[i]);
  assert_null(maild_users_address(u, 8));
  assert_int_equal(maild_users_lookup(u, "alice@example.com", 17, &flags), 0);
  assert_int_equal(flags, MAILD_USERS_HAS_PASSWORD);
  assert_int_equal(maild_users_lookup(u, "BOB@example.com", 15, &flags), 0);
  assert_int_equal(flags, MAILD_USERS_HAS_PASSWORD);
  assert_int_equal(maild_users_lookup(u, "dave@example.com", 16, &flags), 0);
  assert_int_equal(flags, 0);
  assert_int_equal(maild_users_lookup(u, "erin@example.com", 16, &flags), 0);
  assert_int_equal(flags, 0);
  assert_int_equal(maild_users_lookup(u, "nobody@example.com", 18, &flags),
                   MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild_users_lookup(u, "not an address", 14, &flags),
                   MAILD_ERR_SYNTAX);
  maild_users_del(u);

  /* An empty file and a file of comments hold no accounts. */
  u = parse_ok("", 0);
  assert_int_equal(maild_users_count(u), 0);
  maild_users_del(u);
  u = parse_ok("#\n\n \t\n", 6);
  assert_int_equal(maild_users_count(u), 0);
  maild_users_del(u);
}

static void test_parse_bad(void **state) {
  static const struct {
    const char *text;
    int rc;
    size_t line;
  } cases[] = {
      {"a@b.c:!\nno colon here\n", MAILD_ERR_SYNTAX, 2},
      {"\n\nnot-an-address:!\n", MAILD_ERR_SYNTAX, 3},
      {"postmaster:!\n", MAILD_ERR_SYNTAX, 1},
      {"<a@b.c>:!\n", MAILD_ERR_SYNTAX, 1},
      {"@route.example:a@b.c:!\n", MAILD_ERR_SYNTAX, 1},
      {" a@b.c:!\n", MAILD_ERR_SYNTAX, 1},
      {"a@b.c :!\n", MAILD_ERR_SYNTAX, 1},
      {"a@b.c:! \n", MAILD_ERR_SYNTAX, 1},
      {"a@b.c:" Y_HASH " \n", MAILD_ERR_SYNTAX, 1},
      {"a\x01@b.c:!\n", MAILD_ERR_BAD_CHAR, 1},
      {"a\xff@b.c:!\n", MAILD_ERR_BAD_CHAR, 1},
      {"ok@b.c:!\na@b.c:!\n#\nA@B.C:!\n", MAILD_ERR_DUPLICATE, 4},
      {"\"a\"@b.c:!\na@b.c:" Y_HASH "\n", MAILD_ERR_DUPLICATE, 2},
      /* Hashes: truncated, wrong length, bad characters, other methods. */
      {"a@b.c:$y$j9T$mqV4Aq2hYzHUNEaGP6g441\n", MAILD_ERR_SYNTAX, 1},
      {"a@b.c:$y$j9T$mqV4Aq2hYzHUNEaGP6g441$fuo65\n", MAILD_ERR_SYNTAX, 1},
      {"a@b.c:$2b$05$IqJmXeU.t1FzkKwIynY.0O\n", MAILD_ERR_SYNTAX, 1},
      {"a@b.c:$6$salt$h*sh\n", MAILD_ERR_SYNTAX, 1},
      {"a@b.c:!!\n", MAILD_ERR_SYNTAX, 1},
      {"a@b.c:$1$abcdefgh$0123456789012345678901\n", MAILD_ERR_UNSUPPORTED, 1},
      {"a@b.c:abcdefghijklm\n", MAILD_ERR_UNSUPPORTED, 1},
      {"a@b.c:hunter2\n", MAILD_ERR_UNSUPPORTED, 1},
      /* RFC 5321 4.5.3.1.1: a local-part of 65 octets. */
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@b.c:!"
       "\n",
       MAILD_ERR_TOO_LONG, 1},
  };
  size_t i, line;
  (void)state;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    line = 0;
    assert_int_equal(parse_err(cases[i].text, strlen(cases[i].text), &line),
                     cases[i].rc);
    assert_int_equal(line, cases[i].line);
  }
  /* A NUL in a comment or an entry. */
  line = 0;
  assert_int_equal(parse_err("a@b.c:!\n# x\0y\n", 14, &line), MAILD_ERR_NUL);
  assert_int_equal(line, 2);
  assert_int_equal(parse_err("a@b.c\0:!\n", 9, &line), MAILD_ERR_NUL);
  assert_int_equal(line, 1);
  /* A CR only as part of CRLF. */
  assert_int_equal(parse_err("a@b.c:!\r\n# x\ry\n", 15, &line),
                   MAILD_ERR_BARE_CR);
  assert_int_equal(line, 2);
  assert_int_equal(parse_err("a@b.c:!\r\r\n", 10, &line), MAILD_ERR_BARE_CR);
  assert_int_equal(line, 1);
  assert_int_equal(parse_err("a@b.c:!\r", 8, &line), 0);
  /* `line` may be NULL. */
  assert_int_equal(parse_err("x\n", 2, NULL), MAILD_ERR_SYNTAX);
}

/* At the line limit, one past it, and a CR that is not counted. */
static void test_line_limit(void **state) {
  char *buf = malloc(MAILD_USERS_LINE_MAX + 64);
  size_t n, line;
  (void)state;

  assert_non_null(buf);
  n = (size_t)sprintf(buf, "#\na@b.c:!:");
  memset(buf + n, 'x', MAILD_USERS_LINE_MAX - (n - 2));
  n = MAILD_USERS_LINE_MAX + 2;
  memcpy(buf + n, "\r\n", 2);
  assert_int_equal(parse_err(buf, n + 2, &line), 0);
  buf[n] = 'x';
  assert_int_equal(parse_err(buf, n + 2, &line), MAILD_ERR_TOO_LONG);
  assert_int_equal(line, 2);
  free(buf);
}

static void test_canonical(void **state) {
  char buf[MAILD_USERS_ADDRESS_SIZE];
  maild_path p;
  (void)state;

  assert_int_equal(
      maild_users_canonical("\"alice\"@Example.COM", 19, buf, sizeof(buf)), 17);
  assert_string_equal(buf, "alice@example.com");
  assert_int_equal(
      maild_users_canonical("\"Alice Smith\"@X.Org", 19, buf, sizeof(buf)), 19);
  assert_string_equal(buf, "\"alice smith\"@x.org");
  assert_int_equal(maild_users_canonical("\"a\\\"B\"@X", 8, buf, sizeof(buf)),
                   8);
  assert_string_equal(buf, "\"a\\\"b\"@x");
  /* Non-ASCII octets stay as they are. */
  assert_int_equal(maild_users_canonical("\xc3\x96@X", 4, buf, sizeof(buf)), 4);
  assert_string_equal(buf, "\xc3\x96@x");
  assert_int_equal(maild_users_canonical("a@b.c\0d", 7, buf, sizeof(buf)),
                   MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_users_canonical("<a@b.c>", 7, buf, sizeof(buf)),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(maild_users_canonical("a@b.c> <c@d", 11, buf, sizeof(buf)),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(maild_users_canonical("@r.s:a@b.c", 10, buf, sizeof(buf)),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(maild_users_canonical("", 0, buf, sizeof(buf)),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(maild_users_canonical("a@b.c", 5, buf, 5), MAILD_ERR_NOSPC);
  assert_int_equal(maild_users_canonical("a@b.c", 5, buf, 6), 5);
  /* The domain starts after the local-part, which may hold '@', and a
     general address literal may hold '@' too. */
  assert_string_equal(maild_users_domain("a@b.c"), "@b.c");
  assert_string_equal(maild_users_domain("\"x@y\\\"@z\"@b.c"), "@b.c");
  assert_string_equal(maild_users_domain("a@[tag:x@y]"), "@[tag:x@y]");
  assert_null(maild_users_domain("\"a@b\""));
  assert_null(maild_users_domain("ab"));
  assert_null(maild_users_domain(NULL));
  assert_int_equal(
      maild_path_parse(&p, "<Postmaster>", 12, MAILD_PATH_ALLOW_POSTMASTER),
      12);
  assert_int_equal(maild_users_canonical_path(&p, buf, sizeof(buf)),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_path_parse(&p, "<>", 2, MAILD_PATH_ALLOW_NULL), 2);
  assert_int_equal(maild_users_canonical_path(&p, buf, sizeof(buf)),
                   MAILD_ERR_INVAL);
}

static int verify(const maild_users *u, const char *addr, const char *pw) {
  return maild_users_verify(u, addr, strlen(addr), pw, strlen(pw));
}

static void test_verify(void **state) {
  char longpw[MAILD_USERS_PASSWORD_MAX + 2];
  maild_users *u;
  (void)state;

  u = parse_ok(sample, strlen(sample));
  /* One account per hash method: $y$, $6$, $2b$. */
  assert_int_equal(verify(u, "alice@example.com", PW), 0);
  assert_int_equal(verify(u, "bob@example.com", PW), 0);
  assert_int_equal(verify(u, "carol@example.org", PW), 0);
  assert_int_equal(verify(u, "\"Alice\"@EXAMPLE.com", PW), 0);
  /* Every refusal is the same error. */
  assert_int_equal(verify(u, "alice@example.com", "correct horsE"),
                   MAILD_ERR_PERM);
  assert_int_equal(verify(u, "alice@example.com", ""), MAILD_ERR_PERM);
  assert_int_equal(verify(u, "bob@example.com", "wrong"), MAILD_ERR_PERM);
  assert_int_equal(verify(u, "carol@example.org", "wrong"), MAILD_ERR_PERM);
  assert_int_equal(verify(u, "nobody@example.com", PW), MAILD_ERR_PERM);
  assert_int_equal(verify(u, "dave@example.com", PW), MAILD_ERR_PERM);
  assert_int_equal(verify(u, "dave@example.com", ""), MAILD_ERR_PERM);
  assert_int_equal(verify(u, "erin@example.com", ""), MAILD_ERR_PERM);
  assert_int_equal(verify(u, "not an address", PW), MAILD_ERR_PERM);
  assert_int_equal(verify(u, "", ""), MAILD_ERR_PERM);
  /* Embedded NULs are not cut short. */
  assert_int_equal(maild_users_verify(u, "alice@example.com\0x", 19, PW, 13),
                   MAILD_ERR_PERM);
  assert_int_equal(maild_users_verify(u, "alice@example.com", 17, PW "\0x", 15),
                   MAILD_ERR_PERM);
  memset(longpw, 'a', sizeof(longpw) - 1);
  longpw[sizeof(longpw) - 1] = '\0';
  assert_int_equal(verify(u, "alice@example.com", longpw), MAILD_ERR_PERM);
  assert_int_equal(maild_users_verify(NULL, "a@b", 3, "x", 1), MAILD_ERR_INVAL);
  maild_users_del(u);
}

/* The split verify: the hash copied on one thread, checked on another
   after the users object is gone. */
static void test_verify_split(void **state) {
  char hash[MAILD_USERS_HASH_SIZE], small[8];
  maild_users *u;
  (void)state;

  u = parse_ok(sample, strlen(sample));
  assert_int_equal(maild_users_login_hash(u, "\"Alice\"@EXAMPLE.com", 19, hash,
                                          sizeof(hash)),
                   0);
  assert_memory_equal(hash, "$y$", 3);
  assert_int_equal(
      maild_users_login_hash(u, "alice@example.com", 17, small, sizeof(small)),
      MAILD_ERR_NOSPC);
  maild_users_del(u); /* the copy outlives the object */
  assert_int_equal(maild_users_verify_hash(hash, PW, strlen(PW), NULL), 0);
  assert_int_equal(maild_users_verify_hash(hash, "wrong", 5, NULL),
                   MAILD_ERR_PERM);
  assert_int_equal(maild_users_verify_hash("", PW, strlen(PW), NULL),
                   MAILD_ERR_PERM);
  assert_int_equal(maild_users_verify_hash(NULL, PW, strlen(PW), NULL),
                   MAILD_ERR_PERM);
  u = parse_ok(sample, strlen(sample));
  /* Unknown users and accounts without a password give "". */
  assert_int_equal(
      maild_users_login_hash(u, "nobody@example.com", 18, hash, sizeof(hash)),
      0);
  assert_string_equal(hash, "");
  assert_int_equal(
      maild_users_login_hash(u, "dave@example.com", 16, hash, sizeof(hash)), 0);
  assert_string_equal(hash, "");
  maild_users_del(u);
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An unknown user costs a yescrypt computation like a wrong password does
   (loose bound: this only catches a refusal that skips the hash). */
static void test_verify_timing(void **state) {
  double t0, wrong = 0, unknown = 0, nopass = 0;
  maild_users *u;
  int i;
  (void)state;

  u = parse_ok(sample, strlen(sample));
  for (i = 0; i < 3; i++) {
    t0 = seconds();
    assert_int_equal(verify(u, "alice@example.com", "x"), MAILD_ERR_PERM);
    wrong += seconds() - t0;
    t0 = seconds();
    assert_int_equal(verify(u, "nobody@example.com", "x"), MAILD_ERR_PERM);
    unknown += seconds() - t0;
    t0 = seconds();
    assert_int_equal(verify(u, "dave@example.com", "x"), MAILD_ERR_PERM);
    nopass += seconds() - t0;
  }
  assert_true(unknown > wrong / 3 && unknown < wrong * 3);
  assert_true(nopass > wrong / 3 && nopass < wrong * 3);
  maild_users_del(u);
}

static char *format_all(const maild_users *u) {
  maild_ssize n = maild_users_format(u, NULL, 0);
  char *buf;

  assert_true(n >= 0);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(maild_users_format(u, buf, (size_t)n), n);
  if (n > 0)
    assert_int_equal(maild_users_format(u, buf, (size_t)n - 1),
                     MAILD_ERR_NOSPC);
  buf[n] = '\0';
  return buf;
}

/* The line of `addr` in formatted content (NUL-terminated copy). */
static void line_of(const char *text, const char *addr, char *out, size_t sz) {
  const char *p = strstr(text, addr), *e;
  size_t n;

  assert_non_null(p);
  e = strchr(p, '\n');
  n = e ? (size_t)(e - p) : strlen(p);
  assert_true(n < sz);
  memcpy(out, p, n);
  out[n] = '\0';
}

static void test_edit(void **state) {
  char *text, line[512], pw[255];
  maild_users *u, *v;
  unsigned flags;
  size_t i;
  (void)state;

  u = parse_ok(sample, strlen(sample));
  /* Add with a password, add without, add twice. */
  assert_int_equal(maild_users_add(u, "New@Example.COM", "s3cret", 6), 0);
  assert_int_equal(maild_users_add(u, "new@example.com", "x", 1),
                   MAILD_ERR_EXISTS);
  assert_int_equal(maild_users_add(u, "nopw@example.com", NULL, 0), 0);
  assert_int_equal(maild_users_add(u, "bad address", NULL, 0),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(maild_users_add(u, "e@example.com", "", 0), MAILD_ERR_INVAL);
  assert_int_equal(maild_users_add(u, "e@example.com", "a\0b", 3),
                   MAILD_ERR_INVAL);
  /* "#x" is a dot-string, but at the start of a line a comment: it is
     written quoted. */
  assert_int_equal(maild_users_add(u, "\"#hash\"@example.com", NULL, 0), 0);
  assert_string_equal(maild_users_address(u, 10), "#hash@example.com");
  assert_int_equal(maild_users_count(u), 11);
  assert_string_equal(maild_users_address(u, 8), "new@example.com");
  assert_int_equal(verify(u, "new@example.com", "s3cret"), 0);
  assert_int_equal(verify(u, "new@example.com", "s3cres"), MAILD_ERR_PERM);
  assert_int_equal(maild_users_lookup(u, "nopw@example.com", 16, &flags), 0);
  assert_int_equal(flags, 0);

  /* Change a password: the old one stops working, extra fields stay. */
  assert_int_equal(maild_users_set_password(u, "bob@example.com", "new pw", 6),
                   0);
  assert_int_equal(verify(u, "bob@example.com", PW), MAILD_ERR_PERM);
  assert_int_equal(verify(u, "bob@example.com", "new pw"), 0);
  assert_int_equal(maild_users_set_password(u, "ghost@example.com", "x", 1),
                   MAILD_ERR_NOT_FOUND);
  /* Clear one: the account stays, without login. */
  assert_int_equal(maild_users_set_password(u, "alice@example.com", NULL, 0),
                   0);
  assert_int_equal(maild_users_lookup(u, "alice@example.com", 17, &flags), 0);
  assert_int_equal(flags, 0);
  assert_int_equal(verify(u, "alice@example.com", PW), MAILD_ERR_PERM);

  /* Remove. */
  assert_int_equal(maild_users_remove(u, "CAROL@example.org"), 0);
  assert_int_equal(maild_users_remove(u, "carol@example.org"),
                   MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild_users_lookup(u, "carol@example.org", 17, NULL),
                   MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild_users_count(u), 10);
  assert_int_equal(maild_users_lookup(u, "dave@example.com", 16, NULL), 0);

  /* Comments and unchanged lines are kept as they were; changed lines are
     canonical with their extra fields; every line ends in LF. */
  text = format_all(u);
  assert_non_null(strstr(text, "# accounts of example.com\n\n"));
  assert_non_null(strstr(text, "\n  # indented comment\n"));
  assert_non_null(strstr(text, "\nalice@example.com:!\n"));
  line_of(text, "bob@example.com:$y$", line, sizeof(line));
  assert_non_null(strstr(line, ":uid=1000:future"));
  assert_null(strchr(text, '\r'));
  assert_null(strstr(text, "carol"));
  assert_non_null(strstr(text, "\nerin@example.com:\n"));
  assert_non_null(
      strstr(text, "\nj\xc3\xb6rg@example.com:!\nnew@example.com:"));
  assert_non_null(strstr(text, "\nnopw@example.com:!\n"));
  assert_non_null(strstr(text, "\n\"#hash\"@example.com:!\n"));
  assert_int_equal(text[strlen(text) - 1], '\n');

  /* What was written reads back the same, and formats the same. */
  v = parse_ok(text, strlen(text));
  assert_int_equal(maild_users_count(v), maild_users_count(u));
  for (i = 0; i < maild_users_count(u); i++)
    assert_string_equal(maild_users_address(v, i), maild_users_address(u, i));
  assert_int_equal(verify(v, "bob@example.com", "new pw"), 0);
  free(text);
  text = format_all(v);
  {
    char *again = format_all(u);
    assert_string_equal(text, again);
    free(again);
  }
  free(text);
  maild_users_del(v);

  /* Any byte but NUL may be in a password; at the length limit and past. */
  for (i = 0; i < sizeof(pw); i++)
    pw[i] = (char)(i + 1);
  assert_int_equal(
      maild_users_set_password(u, "dave@example.com", pw, sizeof(pw)), 0);
  assert_int_equal(
      maild_users_verify(u, "dave@example.com", 16, pw, sizeof(pw)), 0);
  {
    char big[MAILD_USERS_PASSWORD_MAX + 1];
    memset(big, 'p', sizeof(big));
    assert_int_equal(maild_users_set_password(u, "dave@example.com", big,
                                              MAILD_USERS_PASSWORD_MAX),
                     0);
    assert_int_equal(maild_users_verify(u, "dave@example.com", 16, big,
                                        MAILD_USERS_PASSWORD_MAX),
                     0);
    assert_int_equal(maild_users_set_password(u, "dave@example.com", big,
                                              MAILD_USERS_PASSWORD_MAX + 1),
                     MAILD_ERR_TOO_LONG);
  }
  maild_users_del(u);
}

static void test_parse_state(void **state) {
  maild_users *u;
  size_t line;
  (void)state;

  u = parse_ok("a@b.c:!\n", 8);
  assert_int_equal(maild_users_parse(u, "x@y.z:!\n", 8, &line),
                   MAILD_ERR_STATE);
  assert_int_equal(maild_users_load(u, "/nonexistent", &line), MAILD_ERR_STATE);
  assert_int_equal(maild_users_parse(NULL, "", 0, &line), MAILD_ERR_INVAL);
  assert_int_equal(maild_users_parse(u, NULL, 1, &line), MAILD_ERR_INVAL);
  maild_users_del(u);
  maild_users_del(NULL);
  assert_int_equal(maild_users_new(NULL, NULL, NULL), MAILD_ERR_INVAL);
  /* After a failed parse the object is empty and usable again. */
  assert_int_equal(maild_users_new(&u, NULL, NULL), 0);
  assert_int_equal(maild_users_parse(u, "a@b.c:!\nbad\n", 12, &line),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(maild_users_parse(u, "a@b.c:!\n", 8, &line), 0);
  assert_int_equal(maild_users_count(u), 1);
  maild_users_del(u);
}

/* ---- Files ---- */

static void make_tmpdir(char *dir, size_t size) {
  const char *base = getenv("TMPDIR");

  snprintf(dir, size, "%s/maild-users-XXXXXX", base ? base : "/tmp");
  assert_non_null(mkdtemp(dir));
}

/* Number of directory entries other than "." and "..". */
static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;

  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      n++;
  closedir(d);
  return n;
}

static void write_file(const char *path, const char *data, size_t len,
                       mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close(fd);
}

static void test_save_and_load(void **state) {
  char dir[256], path[300], stale[340], *text, *back;
  maild_users *u, *v;
  struct stat st;
  size_t line;
  mode_t old;
  (void)state;

  make_tmpdir(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/users", dir);
  u = parse_ok(sample, strlen(sample));
  assert_int_equal(maild_users_add(u, "new@example.com", NULL, 0), 0);

  /* A new file: mode 0600 whatever the umask, no tmp file left. */
  old = umask(0277);
  assert_int_equal(maild_users_save(u, path), 0);
  umask(old);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(count_entries(dir), 1);

  /* It loads back the same. */
  assert_int_equal(maild_users_new(&v, NULL, NULL), 0);
  assert_int_equal(maild_users_load(v, path, &line), 0);
  text = format_all(u);
  back = format_all(v);
  assert_string_equal(text, back);
  free(back);
  maild_users_del(v);

  /* Replacing a world-readable file gives 0600 too; a stale tmp file of
     this process (left by a crash) is not reused or removed. */
  chmod(path, 0644);
  snprintf(stale, sizeof(stale), "%s.tmp.%ld.0", path, (long)getpid());
  write_file(stale, "stale", 5, 0600);
  assert_int_equal(maild_users_remove(u, "new@example.com"), 0);
  assert_int_equal(maild_users_save(u, path), 0);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(count_entries(dir), 2);
  assert_int_equal(unlink(stale), 0);
  assert_int_equal(maild_users_new(&v, NULL, NULL), 0);
  assert_int_equal(maild_users_load(v, path, &line), 0);
  assert_int_equal(maild_users_lookup(v, "new@example.com", 15, NULL),
                   MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild_users_count(v), 8);
  maild_users_del(v);
  free(text);

  /* A relative path saves in the current directory. */
  {
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(maild_users_save(u, "rel"), 0);
    assert_int_equal(chdir(cwd), 0);
    snprintf(stale, sizeof(stale), "%s/rel", dir);
    assert_int_equal(unlink(stale), 0);
  }

  /* Errors: no such directory, no such file, a directory. */
  snprintf(stale, sizeof(stale), "%s/missing/users", dir);
  assert_int_equal(maild_users_save(u, stale), MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild_users_new(&v, NULL, NULL), 0);
  assert_int_equal(maild_users_load(v, stale, &line), MAILD_ERR_NOT_FOUND);
  assert_int_equal(maild_users_load(v, dir, &line), MAILD_ERR_IO);
  assert_int_equal(count_entries(dir), 1);

  /* A malformed file names its line. */
  write_file(path, "a@b.c:!\n\nbroken\n", 16, 0600);
  assert_int_equal(maild_users_load(v, path, &line), MAILD_ERR_SYNTAX);
  assert_int_equal(line, 3);
  maild_users_del(v);
  maild_users_del(u);
  unlink(path);
  rmdir(dir);
}

/* The file size limit: at the limit the file is read (and refused for
   its NULs: it is sparse), one octet past it is not read at all. */
static void test_file_limit(void **state) {
  char dir[256], path[300];
  maild_users *u;
  size_t line;
  int fd;
  (void)state;

  make_tmpdir(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/big", dir);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)MAILD_USERS_FILE_MAX), 0);
  assert_int_equal(maild_users_new(&u, NULL, NULL), 0);
  assert_int_equal(maild_users_load(u, path, &line), MAILD_ERR_NUL);
  assert_int_equal(line, 1);
  assert_int_equal(ftruncate(fd, (off_t)MAILD_USERS_FILE_MAX + 1), 0);
  assert_int_equal(maild_users_load(u, path, &line), MAILD_ERR_TOO_LONG);
  assert_int_equal(line, 0);
  close(fd);
  maild_users_del(u);
  unlink(path);
  rmdir(dir);
}

/* ---- Allocation failures: every one is reported, nothing leaks ---- */

static void test_nomem_parse(void **state) {
  maild_users *u;
  testmem tm;
  size_t n, line;
  int rc;
  (void)state;

  for (n = 1;; n++) {
    testmem_init(&tm, n);
    rc = maild_users_new(&u, NULL, &tm.mem);
    if (rc == 0) {
      rc = maild_users_parse(u, sample, strlen(sample), &line);
      if (rc == 0)
        assert_int_equal(maild_users_count(u), 8);
      maild_users_del(u);
    }
    assert_int_equal(tm.live, 0);
    if (tm.failures == 0) {
      assert_int_equal(rc, 0);
      break;
    }
    assert_int_equal(rc, MAILD_ERR_NOMEM);
  }
  assert_true(n > 5);
}

/* Runs `op` on a freshly parsed sample with allocation `n` failing after
   the parse; returns op's result. `u` is unchanged when op fails. */
static int edit_op(int op, size_t n, testmem *tm) {
  maild_users *u;
  int rc = 0;
  size_t before;
  char *a, *b;

  testmem_init(tm, 0);
  assert_int_equal(maild_users_new(&u, NULL, &tm->mem), 0);
  assert_int_equal(maild_users_parse(u, sample, strlen(sample), NULL), 0);
  a = format_all(u);
  before = tm->calls;
  tm->fail_at = before + n;
  switch (op) {
  case 0:
    rc = maild_users_add(u, "new@example.com", "pw", 2);
    break;
  case 1:
    rc = maild_users_add(u, "new@example.com", NULL, 0);
    break;
  case 2:
    rc = maild_users_set_password(u, "bob@example.com", "pw", 2);
    break;
  case 3:
    rc = maild_users_verify(u, "alice@example.com", 17, PW, strlen(PW));
    break;
  default:
    rc = maild_users_remove(u, "bob@example.com");
    break;
  }
  if (rc < 0) {
    b = format_all(u);
    assert_string_equal(a, b);
    free(b);
  }
  free(a);
  maild_users_del(u);
  assert_int_equal(tm->live, 0);
  return rc;
}

static void test_nomem_edit(void **state) {
  testmem tm;
  size_t n;
  int op, rc;
  (void)state;

  for (op = 0; op < 5; op++) {
    for (n = 1;; n++) {
      rc = edit_op(op, n, &tm);
      if (tm.failures == 0) {
        assert_int_equal(rc, 0);
        break;
      }
      assert_int_equal(rc, MAILD_ERR_NOMEM);
    }
  }
}

static void test_nomem_files(void **state) {
  char dir[256], path[300];
  maild_users *u;
  testmem tm;
  size_t n, line;
  int rc;
  (void)state;

  make_tmpdir(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/users", dir);
  write_file(path, sample, strlen(sample), 0600);
  for (n = 1;; n++) {
    testmem_init(&tm, n);
    rc = maild_users_new(&u, NULL, &tm.mem);
    if (rc == 0) {
      rc = maild_users_load(u, path, &line);
      if (rc == 0)
        rc = maild_users_save(u, path);
      maild_users_del(u);
    }
    assert_int_equal(tm.live, 0);
    assert_int_equal(count_entries(dir), 1);
    if (tm.failures == 0) {
      assert_int_equal(rc, 0);
      break;
    }
    assert_int_equal(rc, MAILD_ERR_NOMEM);
  }
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_good),
      cmocka_unit_test(test_parse_bad),
      cmocka_unit_test(test_line_limit),
      cmocka_unit_test(test_canonical),
      cmocka_unit_test(test_verify),
      cmocka_unit_test(test_verify_split),
      cmocka_unit_test(test_verify_timing),
      cmocka_unit_test(test_edit),
      cmocka_unit_test(test_parse_state),
      cmocka_unit_test(test_save_and_load),
      cmocka_unit_test(test_file_limit),
      cmocka_unit_test(test_nomem_parse),
      cmocka_unit_test(test_nomem_edit),
      cmocka_unit_test(test_nomem_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
