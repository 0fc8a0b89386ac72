/*
 * Unit tests for the RFC 5321 path parser: every grammar rule, every limit
 * at the limit and one past it (TESTPLAN S5), the canonical local-part,
 * address literals, relay-trick shapes (TESTPLAN S11: parsed, never routed)
 * and SMTPUTF8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "maild/address.h"
#include "maild/error.h"

#define ALL_ALLOW \
  (MAILD_PATH_ALLOW_NULL | MAILD_PATH_ALLOW_POSTMASTER | MAILD_PATH_ALLOW_UTF8)

static maild_ssize parse(maild_path *p, const char *s, unsigned allow) {
  return maild_path_parse(p, s, strlen(s), allow);
}

/* Parses `in` and checks the canonical local-part and the domain. */
static void expect_ok(const char *in, unsigned allow, const char *local,
                      const char *domain) {
  maild_path p;

  assert_int_equal(parse(&p, in, allow), (maild_ssize)strlen(in));
  assert_string_equal(p.local, local);
  assert_int_equal(p.local_len, strlen(local));
  assert_string_equal(p.domain, domain);
  assert_int_equal(p.domain_len, strlen(domain));
}

static void expect_err(const char *in, unsigned allow, int err) {
  maild_path p;

  assert_int_equal(parse(&p, in, allow), err);
}

/* A string of `n` copies of `ch`, in a static buffer. */
static char *fill(char *buf, char ch, size_t n) {
  memset(buf, ch, n);
  buf[n] = '\0';
  return buf;
}

static void test_simple(void **state) {
  maild_path p;
  (void)state;

  expect_ok("<alice@example.com>", 0, "alice", "example.com");
  expect_ok("<Alice.B-C@Mail.Example.COM>", 0, "Alice.B-C", "Mail.Example.COM");
  expect_ok("<a!#$%&'*+-/=?^_`{|}~z@x>", 0, "a!#$%&'*+-/=?^_`{|}~z", "x");
  expect_ok("<u@1.2.3>", 0, "u", "1.2.3");
  expect_ok("<u@a-b.c--d.e>", 0, "u", "a-b.c--d.e");
  expect_ok("<u@xn--bcher-kva.example>", 0, "u", "xn--bcher-kva.example");
  assert_int_equal(parse(&p, "<a@b>", 0), 5);
  assert_int_equal(p.flags, 0);
}

static void test_consumed_stops_at_bracket(void **state) {
  maild_path p;
  (void)state;

  assert_int_equal(parse(&p, "<a@b> SIZE=100", 0), 5);
  assert_int_equal(parse(&p, "<\"x>y\"@b> BODY=8BITMIME", 0), 9);
  assert_string_equal(p.local, "\"x>y\"");
}

static void test_syntax_errors(void **state) {
  (void)state;

  expect_err("", 0, MAILD_ERR_SYNTAX);
  expect_err("a@b", 0, MAILD_ERR_SYNTAX);
  expect_err(" <a@b>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@b", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@", 0, MAILD_ERR_SYNTAX);
  expect_err("<a", 0, MAILD_ERR_SYNTAX);
  expect_err("<", 0, MAILD_ERR_SYNTAX);
  expect_err("<\"a@b", 0, MAILD_ERR_SYNTAX);
  expect_err("<@a.example", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@b >", 0, MAILD_ERR_SYNTAX);
  expect_err("< a@b>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a @b>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@>", 0, MAILD_ERR_SYNTAX);
  expect_err("<@b>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@b@c>", 0, MAILD_ERR_SYNTAX);
  expect_err("<.a@b>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a.@b>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a..b@c>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a(b)@c>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a,b@c>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@b.>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@.b>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@b..c>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@-b.c>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@b-.c>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@b_c.d>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@b\"c>", 0, MAILD_ERR_SYNTAX);
  expect_err("<<a@b>>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a@b>>", 0, 5); /* the caller judges what follows */
}

static void test_null_path(void **state) {
  maild_path p;
  char buf[8];
  (void)state;

  assert_int_equal(parse(&p, "<>", MAILD_PATH_ALLOW_NULL), 2);
  assert_int_equal(p.flags, MAILD_PATH_NULL);
  assert_string_equal(p.local, "");
  assert_string_equal(p.domain, "");
  assert_int_equal(maild_path_format(&p, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "");
  assert_int_equal(parse(&p, "<> SIZE=1", MAILD_PATH_ALLOW_NULL), 2);
  expect_err("<>", 0, MAILD_ERR_SYNTAX);
  expect_err("<>", MAILD_PATH_ALLOW_POSTMASTER | MAILD_PATH_ALLOW_UTF8,
             MAILD_ERR_SYNTAX);
  expect_err("< >", MAILD_PATH_ALLOW_NULL, MAILD_ERR_SYNTAX);
  expect_err("<", MAILD_PATH_ALLOW_NULL, MAILD_ERR_SYNTAX);
}

static void test_postmaster(void **state) {
  maild_path p;
  char buf[16];
  (void)state;

  assert_int_equal(parse(&p, "<Postmaster>", MAILD_PATH_ALLOW_POSTMASTER), 12);
  assert_int_equal(p.flags, MAILD_PATH_POSTMASTER);
  assert_string_equal(p.domain, "");
  assert_int_equal(maild_path_format(&p, buf, sizeof(buf)), 10);
  assert_string_equal(buf, "postmaster");
  assert_int_equal(parse(&p, "<POSTMASTER>", MAILD_PATH_ALLOW_POSTMASTER), 12);
  assert_int_equal(parse(&p, "<\"postmaster\">", MAILD_PATH_ALLOW_POSTMASTER),
                   14);
  assert_int_equal(p.flags, MAILD_PATH_POSTMASTER);
  expect_err("<postmaster>", MAILD_PATH_ALLOW_NULL | MAILD_PATH_ALLOW_UTF8,
             MAILD_ERR_SYNTAX);
  expect_err("<postmaste>", MAILD_PATH_ALLOW_POSTMASTER, MAILD_ERR_SYNTAX);
  expect_err("<postmasterx>", MAILD_PATH_ALLOW_POSTMASTER, MAILD_ERR_SYNTAX);
  expect_err("<@a.example:postmaster>", MAILD_PATH_ALLOW_POSTMASTER,
             MAILD_ERR_SYNTAX);
  /* With a domain it is an ordinary address. */
  assert_int_equal(parse(&p, "<postmaster@example.org>", 0), 24);
  assert_int_equal(p.flags, 0);
  assert_string_equal(p.local, "postmaster");
  assert_string_equal(p.domain, "example.org");
}

static void test_canonical_local(void **state) {
  maild_path p;
  (void)state;

  expect_ok("<\"alice\"@x>", 0, "alice", "x");
  assert_int_equal(parse(&p, "<\"alice\"@x>", 0), 11);
  assert_int_equal(p.flags & MAILD_PATH_QUOTED, 0);
  expect_ok("<\"a.b\"@x>", 0, "a.b", "x");
  expect_ok("<\"\\a\\l\\i\\c\\e\"@x>", 0, "alice", "x");
  expect_ok("<\"a b\"@x>", 0, "\"a b\"", "x");
  assert_int_equal(parse(&p, "<\"a b\"@x>", 0), 9);
  assert_true(p.flags & MAILD_PATH_QUOTED);
  expect_ok("<\"a\\ b\"@x>", 0, "\"a b\"", "x");
  expect_ok("<\"a\\\\b\"@x>", 0, "\"a\\\\b\"", "x");
  expect_ok("<\"a\\\"b\"@x>", 0, "\"a\\\"b\"", "x");
  expect_ok("<\"\"@x>", 0, "\"\"", "x");
  expect_ok("<\"a..b\"@x>", 0, "\"a..b\"", "x");
  expect_ok("<\".a\"@x>", 0, "\".a\"", "x");
  expect_ok("<\"a.\"@x>", 0, "\"a.\"", "x");
  expect_ok("<\"a@b\"@x>", 0, "\"a@b\"", "x");
  expect_ok("<\"(c)\"@x>", 0, "\"(c)\"", "x");
  expect_ok("<\"\\@\"@x>", 0, "\"@\"", "x");
  expect_ok("<\"a>b\"@x>", 0, "\"a>b\"", "x");
  /* quoted-pairSMTP is "\" %d32-126 only. */
  expect_err("<\"a\\\tb\"@x>", 0, MAILD_ERR_BAD_CHAR);
  expect_err("<\"a\\", 0, MAILD_ERR_SYNTAX);
  expect_err("<\"a\"b@x>", 0, MAILD_ERR_SYNTAX);
  expect_err("<a\"b\"@x>", 0, MAILD_ERR_SYNTAX);
}

static void test_relay_tricks_parse_without_routing(void **state) {
  maild_path p;
  (void)state;

  expect_ok("<user%other.example@relay.example>", 0, "user%other.example",
            "relay.example");
  expect_ok("<other.example!user@relay.example>", 0, "other.example!user",
            "relay.example");
  expect_ok("<\"user@other.example\"@relay.example>", 0,
            "\"user@other.example\"", "relay.example");
  assert_int_equal(parse(&p, "<@a.example,@b.example:user@c.example>", 0), 38);
  assert_int_equal(p.flags, MAILD_PATH_ROUTE);
  assert_string_equal(p.local, "user");
  assert_string_equal(p.domain, "c.example");
  assert_int_equal(parse(&p, "<@a.example:user@c.example>", 0), 27);
  assert_int_equal(p.flags, MAILD_PATH_ROUTE);
  expect_ok("<user@[192.0.2.1]>", 0, "user", "[192.0.2.1]");
  expect_err("<@a.example,user@c.example>", 0, MAILD_ERR_SYNTAX);
  expect_err("<@a.example,:user@c.example>", 0, MAILD_ERR_SYNTAX);
  expect_err("<@:user@c.example>", 0, MAILD_ERR_SYNTAX);
  expect_err("<@a..b:user@c.example>", 0, MAILD_ERR_SYNTAX);
  expect_err("<@[192.0.2.1]:user@c.example>", 0, MAILD_ERR_SYNTAX);
  expect_err("<@a.example@b.example:user@c.example>", 0, MAILD_ERR_SYNTAX);
  expect_err("<@a.example:>", 0, MAILD_ERR_SYNTAX);
  expect_err("<@a.example:@b:u@c>", 0, MAILD_ERR_SYNTAX);
}

static void test_ipv4_literal(void **state) {
  maild_path p;
  (void)state;

  assert_int_equal(parse(&p, "<u@[192.0.2.1]>", 0), 15);
  assert_int_equal(p.flags, MAILD_PATH_LITERAL);
  assert_string_equal(p.domain, "[192.0.2.1]");
  expect_ok("<u@[0.0.0.0]>", 0, "u", "[0.0.0.0]");
  expect_ok("<u@[255.255.255.255]>", 0, "u", "[255.255.255.255]");
  expect_err("<u@[256.0.0.1]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[1.2.3]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[1.2.3.4.5]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[1.2.3.4 ]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[a.b.c.d]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[1.2.3.4>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[1.2.3.4]x>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@1.2.3.4]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[1.2.3.4\r]>", 0, MAILD_ERR_BAD_CHAR);
}

static void test_ipv6_literal(void **state) {
  maild_path p;
  (void)state;

  assert_int_equal(parse(&p, "<u@[IPv6:2001:db8::1]>", 0), 22);
  assert_int_equal(p.flags, MAILD_PATH_LITERAL);
  assert_string_equal(p.domain, "[IPv6:2001:db8::1]");
  expect_ok("<u@[ipv6:::1]>", 0, "u", "[ipv6:::1]");
  expect_ok("<u@[IPv6:2001:db8:0:0:0:0:0:1]>", 0, "u",
            "[IPv6:2001:db8:0:0:0:0:0:1]");
  expect_ok("<u@[IPv6:::ffff:192.0.2.1]>", 0, "u", "[IPv6:::ffff:192.0.2.1]");
  expect_err("<u@[IPv6:2001:db8::g]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[IPv6:]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[IPv6:1::2::3]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[IPv6:fe80::1%eth0]>", 0, MAILD_ERR_SYNTAX);
  /* Without the tag it is a General-address-literal with tag "2001". */
  expect_ok("<u@[2001:db8::1]>", 0, "u", "[2001:db8::1]");
}

static void test_general_literal(void **state) {
  (void)state;

  expect_ok("<u@[x-tag:some-content!]>", 0, "u", "[x-tag:some-content!]");
  expect_ok("<u@[tag9:a:b]>", 0, "u", "[tag9:a:b]");
  expect_err("<u@[tag-:abc]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[:abc]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[tag:]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[ta_g:abc]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[tag:a[b]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[tag:a\\b]>", 0, MAILD_ERR_SYNTAX);
  expect_err("<u@[tag:a b]>", 0, MAILD_ERR_SYNTAX);
}

static void test_domain_check(void **state) {
  char buf[300];
  (void)state;

  assert_int_equal(maild_domain_check("example.com", 11, 0, 0), 0);
  assert_int_equal(maild_domain_check("", 0, 0, 1), MAILD_ERR_SYNTAX);
  assert_int_equal(maild_domain_check("[192.0.2.1]", 11, 0, 1), 0);
  assert_int_equal(maild_domain_check("[192.0.2.1]", 11, 0, 0),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(maild_domain_check("[IPv6:::1]", 10, 0, 1), 0);
  assert_int_equal(maild_domain_check("a\nb", 3, 0, 0), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_domain_check("a\0b", 3, 0, 0), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_domain_check("a b", 3, 0, 0), MAILD_ERR_SYNTAX);
  /* Label 63 accepted, 64 refused (RFC 5321 4.5.3.1.2). */
  fill(buf, 'a', 63);
  assert_int_equal(maild_domain_check(buf, 63, 0, 0), 0);
  fill(buf, 'a', 64);
  assert_int_equal(maild_domain_check(buf, 64, 0, 0), MAILD_ERR_TOO_LONG);
}

/* Domain 255 accepted, 256 refused (TESTPLAN S5, RFC 5321 4.5.3.1.2). */
static void test_domain_limit(void **state) {
  char buf[300];
  size_t i;
  (void)state;

  /* 63 + 1 + 63 + 1 + 63 + 1 + 63 = 255 */
  fill(buf, 'a', 256);
  for (i = 63; i < 256; i += 64)
    buf[i] = '.';
  assert_int_equal(maild_domain_check(buf, 255, 0, 0), 0);
  buf[255] = 'b';
  assert_int_equal(maild_domain_check(buf, 256, 0, 0), MAILD_ERR_TOO_LONG);
  buf[255] = '.';
  assert_int_equal(maild_domain_check(buf, 256, 0, 0), MAILD_ERR_TOO_LONG);
}

/* Local-part 64 accepted, 65 refused (TESTPLAN S5, RFC 5321 4.5.3.1.1). */
static void test_local_limit(void **state) {
  char local[80], in[120];
  maild_path p;
  (void)state;

  fill(local, 'l', 64);
  strcpy(in, "<");
  strcat(strcat(strcat(in, local), "@x"), ">");
  expect_ok(in, 0, local, "x");
  fill(local, 'l', 65);
  strcpy(in, "<");
  strcat(strcat(strcat(in, local), "@x"), ">");
  expect_err(in, 0, MAILD_ERR_TOO_LONG);
  /* Counted on the canonical form: quotes that go away do not count. */
  fill(local, 'q', 64);
  strcpy(in, "<\"");
  strcat(strcat(strcat(in, local), "\"@x"), ">");
  expect_ok(in, 0, local, "x");
  /* A quoted local-part keeps its quotes: 62 + 2 accepted, 63 + 2 not. */
  fill(local, 'q', 60);
  strcpy(in, "<\"a ");
  strcat(strcat(in, local), "\"@x>");
  assert_int_equal(parse(&p, in, 0), (maild_ssize)strlen(in));
  assert_int_equal(p.local_len, 64);
  fill(local, 'q', 61);
  strcpy(in, "<\"a ");
  strcat(strcat(in, local), "\"@x>");
  expect_err(in, 0, MAILD_ERR_TOO_LONG);
  /* An escape that stays costs its backslash. */
  fill(local, 'q', 60);
  strcpy(in, "<\"\\\"");
  strcat(strcat(in, local), "\"@x>");
  assert_int_equal(parse(&p, in, 0), (maild_ssize)strlen(in));
  assert_int_equal(p.local_len, 64);
  fill(local, 'q', 61);
  strcpy(in, "<\"\\\"");
  strcat(strcat(in, local), "\"@x>");
  expect_err(in, 0, MAILD_ERR_TOO_LONG);
  /* Very long local-parts stay bounded. */
  {
    char big[2000];
    fill(big, 'z', sizeof(big) - 1);
    big[0] = '<';
    assert_int_equal(maild_path_parse(&p, big, sizeof(big) - 1, 0),
                     MAILD_ERR_TOO_LONG);
    big[1] = '"';
    assert_int_equal(maild_path_parse(&p, big, sizeof(big) - 1, 0),
                     MAILD_ERR_TOO_LONG);
  }
}

/* Builds "<" local "@" labels ">" of exactly `total` octets. */
static void make_path(char *out, size_t total, const char *route) {
  size_t n = strlen(route), i;

  strcpy(out, "<");
  strcat(out, route);
  n += 1;
  strcat(out, "u@");
  n += 2;
  for (i = 0; n < total - 1; i++, n++)
    out[n] = (i % 50 == 49 && n + 2 < total) ? '.' : 'd';
  out[n++] = '>';
  out[n] = '\0';
}

/* Whole path 256 accepted, 257 refused (TESTPLAN S5, RFC 5321 4.5.3.1.3). */
static void test_path_limit(void **state) {
  char in[400];
  maild_path p;
  char route[120];
  (void)state;

  make_path(in, 256, "");
  assert_int_equal(strlen(in), 256);
  assert_int_equal(parse(&p, in, 0), 256);
  assert_int_equal(p.domain_len, 252);
  make_path(in, 257, "");
  assert_int_equal(strlen(in), 257);
  expect_err(in, 0, MAILD_ERR_TOO_LONG);
  /* The source route counts too. */
  strcpy(route, "@r.example,@s.example:");
  make_path(in, 256, route);
  assert_int_equal(parse(&p, in, 0), 256);
  assert_true(p.flags & MAILD_PATH_ROUTE);
  make_path(in, 257, route);
  expect_err(in, 0, MAILD_ERR_TOO_LONG);
  /* A route longer than any path is cut short. */
  {
    char big[4000];
    size_t i;
    big[0] = '<';
    for (i = 1; i + 4 < sizeof(big); i += 4)
      memcpy(big + i, "@ab,", 4);
    assert_int_equal(maild_path_parse(&p, big, i, 0), MAILD_ERR_TOO_LONG);
  }
}

static void test_control_octets(void **state) {
  maild_path p;
  static const char ctl[] = {0x00, 0x01, 0x09, 0x0a, 0x0d, 0x1b, 0x1f, 0x7f};
  char in[32];
  size_t i, at;
  (void)state;

  for (i = 0; i < sizeof(ctl); i++) {
    for (at = 1; at < 5; at++) {
      memcpy(in, "<ab@cd>", 7);
      in[at] = ctl[i];
      assert_int_equal(maild_path_parse(&p, in, 7, ALL_ALLOW),
                       MAILD_ERR_BAD_CHAR);
    }
    memcpy(in, "<\"a b\"@cd>", 10);
    in[3] = ctl[i];
    assert_int_equal(maild_path_parse(&p, in, 10, ALL_ALLOW),
                     MAILD_ERR_BAD_CHAR);
  }
  expect_err("<a..b\r@x>", 0, MAILD_ERR_BAD_CHAR);
  expect_err("<a@b\r\n", 0, MAILD_ERR_BAD_CHAR);
  expect_err("\r<a@b>", 0, MAILD_ERR_BAD_CHAR);
  /* After a quoted '>' the parser still sees it. */
  expect_err("<\"a>b\"@x\r>", 0, MAILD_ERR_BAD_CHAR);
}

static void test_utf8(void **state) {
  maild_path p;
  char buf[400];
  (void)state;

  /* RFC 6531 3.3: atext, qtextSMTP and sub-domain (U-label). */
  assert_int_equal(parse(&p,
                         "<j\xc3\xb6rg@b\xc3\xbc"
                         "cher.example>",
                         MAILD_PATH_ALLOW_UTF8),
                   23);
  assert_int_equal(p.flags, MAILD_PATH_UTF8);
  assert_string_equal(p.local, "j\xc3\xb6rg");
  assert_string_equal(p.domain, "b\xc3\xbc"
                                "cher.example");
  assert_int_equal(maild_path_format(&p, buf, sizeof(buf)), 21);
  expect_ok("<\"\xe7\x94\xa8 \xe6\x88\xb7\"@x>", MAILD_PATH_ALLOW_UTF8,
            "\"\xe7\x94\xa8 \xe6\x88\xb7\"", "x");
  expect_ok("<\"\xe7\x94\xa8\"@x>", MAILD_PATH_ALLOW_UTF8, "\xe7\x94\xa8", "x");
  expect_ok("<\xf0\x9f\x93\xa7@\xe4\xbe\x8b.example>", MAILD_PATH_ALLOW_UTF8,
            "\xf0\x9f\x93\xa7", "\xe4\xbe\x8b.example");
  assert_int_equal(parse(&p, "<a@\xc3\xa9.example>", MAILD_PATH_ALLOW_UTF8),
                   14);
  assert_int_equal(p.flags, MAILD_PATH_UTF8);
  /* Without SMTPUTF8 any non-ASCII is a bad character. */
  expect_err("<j\xc3\xb6rg@x>", 0, MAILD_ERR_BAD_CHAR);
  expect_err("<a@b\xc3\xbc>", 0, MAILD_ERR_BAD_CHAR);
  expect_err("<\"\xc3\xb6\"@x>", 0, MAILD_ERR_BAD_CHAR);
  /* Ill-formed UTF-8 is refused even with SMTPUTF8. */
  expect_err("<\xc0\xaf@x>", MAILD_PATH_ALLOW_UTF8, MAILD_ERR_BAD_CHAR);
  expect_err("<\xe0\x80\xaf@x>", MAILD_PATH_ALLOW_UTF8, MAILD_ERR_BAD_CHAR);
  expect_err("<\xed\xa0\x80@x>", MAILD_PATH_ALLOW_UTF8, MAILD_ERR_BAD_CHAR);
  expect_err("<\xf4\x90\x80\x80@x>", MAILD_PATH_ALLOW_UTF8, MAILD_ERR_BAD_CHAR);
  expect_err("<\xc3@x>", MAILD_PATH_ALLOW_UTF8, MAILD_ERR_BAD_CHAR);
  expect_err("<a\xbf@x>", MAILD_PATH_ALLOW_UTF8, MAILD_ERR_BAD_CHAR);
  expect_err("<a@b\xc3>", MAILD_PATH_ALLOW_UTF8, MAILD_ERR_BAD_CHAR);
  expect_err("<\"\xff\"@x>", MAILD_PATH_ALLOW_UTF8, MAILD_ERR_BAD_CHAR);
  /* UTF-8 where no rule allows it is a syntax error. */
  expect_err("<a@[\xc3\xa9]>", MAILD_PATH_ALLOW_UTF8, MAILD_ERR_SYNTAX);
}

static void test_utf8_check(void **state) {
  (void)state;

  assert_int_equal(maild_utf8_check("", 0), 0);
  assert_int_equal(maild_utf8_check("plain\r\n", 7), 0);
  assert_int_equal(maild_utf8_check("\xc2\x80", 2), 0);
  assert_int_equal(maild_utf8_check("\xdf\xbf", 2), 0);
  assert_int_equal(maild_utf8_check("\xe0\xa0\x80", 3), 0);
  assert_int_equal(maild_utf8_check("\xef\xbf\xbf", 3), 0);
  assert_int_equal(maild_utf8_check("\xf0\x90\x80\x80", 4), 0);
  assert_int_equal(maild_utf8_check("\xf4\x8f\xbf\xbf", 4), 0);
  /* Overlong forms. */
  assert_int_equal(maild_utf8_check("\xc0\x80", 2), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_utf8_check("\xc1\xbf", 2), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_utf8_check("\xe0\x9f\xbf", 3), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_utf8_check("\xf0\x8f\xbf\xbf", 4), MAILD_ERR_BAD_CHAR);
  /* Surrogates, above U+10FFFF, stray and truncated sequences. */
  assert_int_equal(maild_utf8_check("\xed\xa0\x80", 3), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_utf8_check("\xed\xbf\xbf", 3), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_utf8_check("\xf4\x90\x80\x80", 4), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_utf8_check("\xf5\x80\x80\x80", 4), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_utf8_check("\x80", 1), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_utf8_check("\xe2\x82", 2), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_utf8_check("\xe2\x28\xa1", 3), MAILD_ERR_BAD_CHAR);
  assert_int_equal(maild_utf8_check("\xff", 1), MAILD_ERR_BAD_CHAR);
}

static void test_format(void **state) {
  maild_path p;
  char buf[300];
  (void)state;

  assert_int_equal(parse(&p, "<\"a b\"@[192.0.2.1]>", 0), 19);
  assert_int_equal(maild_path_format(&p, buf, sizeof(buf)), 17);
  assert_string_equal(buf, "\"a b\"@[192.0.2.1]");
  /* The buffer must hold the NUL too. */
  assert_int_equal(maild_path_format(&p, buf, 18), 17);
  assert_int_equal(maild_path_format(&p, buf, 17), MAILD_ERR_NOSPC);
  assert_int_equal(maild_path_format(&p, buf, 0), MAILD_ERR_NOSPC);
  assert_int_equal(parse(&p, "<>", MAILD_PATH_ALLOW_NULL), 2);
  assert_int_equal(maild_path_format(&p, buf, 1), 0);
  assert_int_equal(maild_path_format(&p, buf, 0), MAILD_ERR_NOSPC);
  assert_int_equal(parse(&p, "<@r:\"x\"@y>", 0), 10);
  assert_int_equal(maild_path_format(&p, buf, sizeof(buf)), 3);
  assert_string_equal(buf, "x@y");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple),
      cmocka_unit_test(test_consumed_stops_at_bracket),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_null_path),
      cmocka_unit_test(test_postmaster),
      cmocka_unit_test(test_canonical_local),
      cmocka_unit_test(test_relay_tricks_parse_without_routing),
      cmocka_unit_test(test_ipv4_literal),
      cmocka_unit_test(test_ipv6_literal),
      cmocka_unit_test(test_general_literal),
      cmocka_unit_test(test_domain_check),
      cmocka_unit_test(test_domain_limit),
      cmocka_unit_test(test_local_limit),
      cmocka_unit_test(test_path_limit),
      cmocka_unit_test(test_control_octets),
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_utf8_check),
      cmocka_unit_test(test_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
