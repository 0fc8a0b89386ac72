/*
 * The Received: header (TESTPLAN S9): one well-formed header field, with
 * the HELO name and client identity sanitised.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proto/received.h"

static maild_received_info base(void) {
  maild_received_info ri;

  memset(&ri, 0, sizeof(ri));
  ri.helo = "client.example";
  ri.client_addr = "192.0.2.7";
  ri.hostname = "mx.example";
  ri.id = "0123456789abcdef01234567";
  ri.time = 1795749665; /* Fri, 27 Nov 2026 03:21:05 +0000 */
  ri.esmtp = 1;
  return ri;
}

static void format(const maild_received_info *ri, char *buf, size_t cap) {
  size_t n = maild__received_format(buf, cap, ri);

  assert_true(n < cap);
  buf[n] = '\0';
}

/* A header field: starts with the name, every line but the first starts
   with white space, only CRLF line ends, ends with CRLF, and no line is
   over 998 octets (RFC 5322 2.1.1, 2.2). */
static void assert_one_field(const char *h) {
  const char *p = h;
  size_t line = 0;

  assert_memory_equal(h, "Received: ", 10);
  for (; *p != '\0'; p++) {
    if (*p == '\n') {
      assert_true(p > h && p[-1] == '\r');
      assert_true(p[1] == '\0' || p[1] == ' ' || p[1] == '\t');
      line = 0;
      continue;
    }
    if (*p == '\r')
      assert_int_equal(p[1], '\n');
    else
      assert_true((unsigned char)*p >= 0x20 || *p == '\t');
    assert_true(++line <= 998);
  }
  assert_true(p - h >= 2 && p[-2] == '\r' && p[-1] == '\n');
}

static void test_plain(void **state) {
  maild_received_info ri = base();
  char buf[1024];

  (void)state;
  ri.for_rcpt = "bob@mx.example";
  format(&ri, buf, sizeof(buf));
  assert_string_equal(buf, "Received: from client.example ([192.0.2.7])\r\n"
                           "\tby mx.example (maild) with ESMTP id "
                           "0123456789abcdef01234567\r\n"
                           "\tfor <bob@mx.example>;\r\n"
                           "\tFri, 27 Nov 2026 03:21:05 +0000\r\n");
  assert_one_field(buf);
}

static void test_hostile_helo_is_sanitised(void **state) {
  maild_received_info ri = base();
  char helo[600], buf[2048];

  (void)state;
  ri.helo = "evil\r\nX-Injected: yes (\"x\") <y>";
  format(&ri, buf, sizeof(buf));
  assert_one_field(buf);
  assert_null(strstr(buf, "\nX-Injected"));
  assert_non_null(strstr(buf, "from evil??X-Injected:?yes"));
  /* Overlong: cut at 255 octets. */
  memset(helo, 'a', sizeof(helo) - 1);
  helo[sizeof(helo) - 1] = '\0';
  ri.helo = helo;
  format(&ri, buf, sizeof(buf));
  assert_one_field(buf);
  assert_non_null(strstr(buf, " ([192.0.2.7])"));
  assert_int_equal(strstr(buf, " ([") - (buf + 15), 255);
  ri.helo = NULL;
  format(&ri, buf, sizeof(buf));
  assert_non_null(strstr(buf, "from unknown ([192.0.2.7])"));
}

static void test_ipv6_tls_and_protocols(void **state) {
  maild_received_info ri = base();
  char buf[1024];

  (void)state;
  ri.client_addr = "2001:db8::1";
  ri.tls = 1;
  ri.tls_info = "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384";
  format(&ri, buf, sizeof(buf));
  assert_one_field(buf);
  assert_non_null(strstr(buf, "([IPv6:2001:db8::1])"));
  assert_non_null(strstr(buf, "with ESMTPS id"));
  assert_non_null(strstr(buf, "(using TLSv1.2 with cipher"));
  assert_string_equal(maild__received_protocol(0, 0, 0, 0), "SMTP");
  assert_string_equal(maild__received_protocol(1, 1, 1, 0), "ESMTPSA");
  assert_string_equal(maild__received_protocol(1, 0, 1, 0), "ESMTPA");
  assert_string_equal(maild__received_protocol(1, 0, 0, 1), "UTF8SMTP");
  assert_string_equal(maild__received_protocol(1, 1, 1, 1), "UTF8SMTPSA");
}

static void test_snprintf_contract(void **state) {
  maild_received_info ri = base();
  char buf[1024], small[10];
  size_t need = maild__received_format(NULL, 0, &ri);

  (void)state;
  assert_int_equal(maild__received_format(small, sizeof(small), &ri), need);
  assert_memory_equal(small, "Received:", 9);
  format(&ri, buf, sizeof(buf));
  assert_int_equal(strlen(buf), need);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain),
      cmocka_unit_test(test_hostile_helo_is_sanitised),
      cmocka_unit_test(test_ipv6_tls_and_protocols),
      cmocka_unit_test(test_snprintf_contract),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
