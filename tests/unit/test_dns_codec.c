/*
 * The DNS codec: names, the query on the wire byte for byte, and the
 * checks a response must pass (RFC 5452: ID, QR, the question) before any
 * record in it is used; records of every kind the resolver reads, CNAME
 * chains, negative answers with their SOA TTL, and malformed packets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "dns/codec.h"
#include "maild/error.h"

static void test_names(void **state) {
  char out[MAILD_DNS_NAME_MAX + 1], longname[300];

  (void)state;
  assert_int_equal(maild__dns_name("Mx1.Example.TEST.", out), 0);
  assert_string_equal(out, "mx1.example.test");
  assert_int_equal(maild__dns_name("a", out), 0);
  assert_int_equal(maild__dns_name("", out), MAILD_ERR_SYNTAX);
  assert_int_equal(maild__dns_name(".", out), MAILD_ERR_SYNTAX);
  assert_int_equal(maild__dns_name("a..b", out), MAILD_ERR_SYNTAX);
  assert_int_equal(maild__dns_name("-a.b", out), MAILD_ERR_SYNTAX);
  assert_int_equal(maild__dns_name("a-.b", out), MAILD_ERR_SYNTAX);
  assert_int_equal(maild__dns_name("a b", out), MAILD_ERR_SYNTAX);
  assert_int_equal(maild__dns_name("[127.0.0.1]", out), MAILD_ERR_SYNTAX);
  memset(longname, 'a', 63);
  strcpy(longname + 63, ".test");
  assert_int_equal(maild__dns_name(longname, out), 0); /* 63: the limit */
  memset(longname, 'a', 64);
  strcpy(longname + 64, ".test");
  assert_int_equal(maild__dns_name(longname, out), MAILD_ERR_SYNTAX);
  memset(longname, 0, sizeof(longname));
  while (strlen(longname) + 4 <= 253)
    strcat(longname, "abc.");
  longname[strlen(longname) - 1] = '\0';
  assert_int_equal(maild__dns_name(longname, out), 0); /* 251 */
  strcat(longname, ".ab");                             /* 254 */
  assert_int_equal(maild__dns_name(longname, out), MAILD_ERR_SYNTAX);
}

static const uint8_t want_query[] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00,
                                     0x00, 0x00, 0x00, 0x00, 0x00, 4,    'm',
                                     'a',  'i',  'l',  4,    't',  'e',  's',
                                     't',  0,    0x00, 0x0f, 0x00, 0x01};

static void test_query(void **state) {
  uint8_t buf[MAILD_DNS_QUERY_MAX + 2];
  maild_ssize n;

  (void)state;
  n = maild__dns_query(buf, sizeof(buf), 0x1234, "mail.test", MAILD_DNS_MX, 0);
  assert_int_equal(n, sizeof(want_query));
  assert_memory_equal(buf, want_query, sizeof(want_query));
  n = maild__dns_query(buf, sizeof(buf), 0x1234, "mail.test", MAILD_DNS_MX, 1);
  assert_int_equal(n, sizeof(want_query) + 2);
  assert_int_equal(buf[0], 0);
  assert_int_equal(buf[1], sizeof(want_query));
  assert_memory_equal(buf + 2, want_query, sizeof(want_query));
  assert_int_equal(maild__dns_query(buf, 10, 1, "mail.test", MAILD_DNS_MX, 0),
                   MAILD_ERR_NOSPC);
}

/* A response to want_query: QR set, `an` answers appended. */
static size_t response(uint8_t *out, const uint8_t *answers, size_t alen,
                       unsigned an, unsigned rcode, unsigned ns) {
  memcpy(out, want_query, sizeof(want_query));
  out[2] = 0x81;                    /* QR, RD */
  out[3] = (uint8_t)(0x80 | rcode); /* RA */
  out[7] = (uint8_t)an;
  out[9] = (uint8_t)ns;
  memcpy(out + sizeof(want_query), answers, alen);
  return sizeof(want_query) + alen;
}

/* MX 10 mx1.mail.test, a CNAME that is skipped as unrelated, A and AAAA. */
static const uint8_t answers[] = {
    0xc0, 0x0c, 0x00, 0x0f, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00,
    0x08, 0x00, 0x0a, 3,    'm',  'x',  '1',  0xc0, 0x0c, /* MX 10 mx1.<name> */
    0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00,
    0x05, 2,    'M',  'X',  0xc0, 0x0c, /* CNAME MX.mail.test (upper case) */
    0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0a, 0x00,
    0x04, 192,  0,    2,    1, /* A */
    0xc0, 0x0c, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0a, 0x00,
    0x03, 2,    'b',  'c', /* TXT "bc": not for us */
};

static void test_parse(void **state) {
  uint8_t buf[512];
  maild_dns_answer a;
  size_t n = response(buf, answers, sizeof(answers), 4, 0, 0);

  (void)state;
  assert_int_equal(
      maild__dns_parse(buf, n, 0x1234, "mail.test", MAILD_DNS_MX, &a), 0);
  assert_int_equal(a.rcode, MAILD_DNS_NOERROR);
  assert_int_equal(a.truncated, 0);
  assert_int_equal(a.n, 3);
  assert_int_equal(a.rr[0].type, MAILD_DNS_MX);
  assert_int_equal(a.rr[0].pref, 10);
  assert_int_equal(a.rr[0].ttl, 300);
  assert_string_equal(a.rr[0].owner, "mail.test");
  assert_string_equal(a.rr[0].target, "mx1.mail.test");
  assert_int_equal(a.rr[1].type, MAILD_DNS_CNAME);
  assert_string_equal(a.rr[1].target, "mx.mail.test");
  assert_int_equal(a.rr[2].type, MAILD_DNS_A);
  assert_memory_equal(a.rr[2].addr, "\xc0\x00\x02\x01", 4);
  /* What must not be believed. */
  assert_int_equal(
      maild__dns_parse(buf, n, 0x1235, "mail.test", MAILD_DNS_MX, &a),
      MAILD_ERR_SYNTAX);
  assert_int_equal(
      maild__dns_parse(buf, n, 0x1234, "other.test", MAILD_DNS_MX, &a),
      MAILD_ERR_SYNTAX);
  assert_int_equal(
      maild__dns_parse(buf, n, 0x1234, "mail.test", MAILD_DNS_A, &a),
      MAILD_ERR_SYNTAX);
  buf[2] &= 0x7f; /* a query, not a response */
  assert_int_equal(
      maild__dns_parse(buf, n, 0x1234, "mail.test", MAILD_DNS_MX, &a),
      MAILD_ERR_SYNTAX);
  buf[2] |= 0x80;
  assert_int_equal(
      maild__dns_parse(buf, n - 5, 0x1234, "mail.test", MAILD_DNS_MX, &a),
      MAILD_ERR_SYNTAX); /* cut short */
  assert_int_equal(
      maild__dns_parse(buf, 11, 0x1234, "mail.test", MAILD_DNS_MX, &a),
      MAILD_ERR_SYNTAX);
  /* An A record of the wrong length is malformed: the whole is refused. */
  {
    uint8_t bad[sizeof(answers)];
    memcpy(bad, answers, sizeof(answers));
    bad[47] = 0x03; /* RDLENGTH 3 for the A record */
    n = response(buf, bad, 51, 3, 0, 0);
    assert_int_equal(
        maild__dns_parse(buf, n, 0x1234, "mail.test", MAILD_DNS_MX, &a),
        MAILD_ERR_SYNTAX);
  }
}

/* NXDOMAIN with a SOA: the negative TTL is min(SOA TTL, MINIMUM). */
static void test_negative(void **state) {
  static const uint8_t soa[] = {
      0xc0, 0x11, 0x00, 0x06, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00,
      0x1e, 2,    'n',  's',  0xc0, 0x11, 2,    'h',  'm',  0xc0, 0x11,
      0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x03,
      0x84, 0x00, 0x09, 0x3a, 0x80, 0x00, 0x00, 0x01, 0x2c};
  uint8_t buf[512];
  maild_dns_answer a;
  size_t n = response(buf, soa, sizeof(soa), 0, MAILD_DNS_NXDOMAIN, 1);

  (void)state;
  assert_int_equal(
      maild__dns_parse(buf, n, 0x1234, "mail.test", MAILD_DNS_MX, &a), 0);
  assert_int_equal(a.rcode, MAILD_DNS_NXDOMAIN);
  assert_int_equal(a.n, 0);
  assert_int_equal(a.neg_ttl, 300);
  buf[2] |= 0x02; /* TC */
  assert_int_equal(
      maild__dns_parse(buf, n, 0x1234, "mail.test", MAILD_DNS_MX, &a), 0);
  assert_int_equal(a.truncated, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_query),
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_negative),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
