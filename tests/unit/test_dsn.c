/*
 * Bounces (RFC 3464) byte for byte: the report's parts and fields, a
 * remote text that tries to inject a header, RET=HDRS cutting the
 * original at its header section, RET=FULL with bare line ends made CRLF,
 * a success report with the ENVID, and the argument checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "maild/error.h"
#include "queue/dsn.h"

static const char original[] = "Subject: hello\r\nFrom: a@example.test\r\n"
                               "\r\nbody line\r\nsecond\n";

static const char want_hdrs[] =
    "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"
    "To: <a@example.test>\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "Date: Fri, 27 Nov 2026 06:30:38 +0000\r\n"
    "Message-ID: <0006613c30658d745451a531.dsn@mx.example.test>\r\n"
    "Auto-Submitted: auto-replied\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
    "\tboundary=\"0006613c30658d745451a531.dsn\"\r\n"
    "\r\n"
    "This is a MIME-encapsulated message.\r\n"
    "\r\n"
    "--0006613c30658d745451a531.dsn\r\n"
    "Content-Description: Notification\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "This is the mail system at host mx.example.test.\r\n"
    "\r\n"
    "I'm sorry to have to inform you that your message could not\r\n"
    "be delivered to one or more recipients.\r\n"
    "\r\n"
    "<bob@elsewhere.test>: host [192.0.2.1]:25 said: 550 5.1.1 No such "
    "user Bcc: x@evil.test\r\n"
    "\r\n"
    "<carol@elsewhere.test>: 5.4.7\r\n"
    "\r\n"
    "--0006613c30658d745451a531.dsn\r\n"
    "Content-Description: Delivery report\r\n"
    "Content-Type: message/delivery-status\r\n"
    "\r\n"
    "Reporting-MTA: dns; mx.example.test\r\n"
    "X-Maild-Queue-ID: 0006613c30658d745451a531\r\n"
    "Arrival-Date: Fri, 27 Nov 2026 06:00:38 +0000\r\n"
    "\r\n"
    "Final-Recipient: rfc822; bob@elsewhere.test\r\n"
    "Original-Recipient: rfc822; bobby@example.test\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Remote-MTA: dns; [192.0.2.1]:25\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 No such user Bcc: x@evil.test\r\n"
    "\r\n"
    "Final-Recipient: rfc822; carol@elsewhere.test\r\n"
    "Action: failed\r\n"
    "Status: 5.4.7\r\n"
    "\r\n"
    "--0006613c30658d745451a531.dsn\r\n"
    "Content-Description: Undelivered Message Headers\r\n"
    "Content-Type: text/rfc822-headers\r\n"
    "\r\n"
    "Subject: hello\r\n"
    "From: a@example.test\r\n"
    "\r\n"
    "\r\n"
    "--0006613c30658d745451a531.dsn--\r\n";

static const maild_dsn_rcpt rcpts[] = {
    {"bob@elsewhere.test", "bobby@example.test", "failed", "5.1.1",
     "[192.0.2.1]:25", "550 5.1.1 No such user\nBcc: x@evil.test"},
    {"carol@elsewhere.test", "", "failed", "5.4.7", "", ""},
};

static maild_mem mem;

static void fill(maild_dsn *d) {
  maild__mem_init(&mem, NULL);
  memset(d, 0, sizeof(*d));
  d->hostname = "mx.example.test";
  d->id = "0006613c30658d745451a531";
  d->to = "a@example.test";
  d->arrival = INT64_C(1795759238);
  d->now = INT64_C(1795761038);
  d->rcpts = rcpts;
  d->nrcpts = 2;
  d->original = (const uint8_t *)original;
  d->original_len = strlen(original);
}

static void test_hdrs(void **state) {
  maild_buf b;
  maild_dsn d;

  (void)state;
  fill(&d);
  maild__buf_init(&b, 1 << 20);
  assert_int_equal(maild__dsn_build(&d, &b, &mem), 0);
  assert_int_equal(maild__buf_used(&b), strlen(want_hdrs));
  assert_memory_equal(maild__buf_peek(&b), want_hdrs, strlen(want_hdrs));
  maild__buf_free(&b, &mem);
}

static void test_full(void **state) {
  static const char tail[] =
      "Content-Type: message/rfc822\r\n\r\n"
      "Subject: hello\r\nFrom: a@example.test\r\n\r\nbody line\r\nsecond\r\n"
      "\r\n--0006613c30658d745451a531.dsn--\r\n";
  maild_buf b;
  maild_dsn d;
  const char *s;

  (void)state;
  fill(&d);
  d.full = 1;
  maild__buf_init(&b, 1 << 20);
  assert_int_equal(maild__dsn_build(&d, &b, &mem), 0);
  s = (const char *)maild__buf_peek(&b);
  assert_true(maild__buf_used(&b) > strlen(tail));
  assert_memory_equal(s + maild__buf_used(&b) - strlen(tail), tail,
                      strlen(tail));
  maild__buf_free(&b, &mem);
}

/* NOTIFY=SUCCESS: a success report, with the ENVID the client gave. */
static void test_success(void **state) {
  static const maild_dsn_rcpt ok[] = {
      {"bob@elsewhere.test", "", "relayed", "2.0.0", "[192.0.2.1]:25",
       "250 2.0.0 Ok: queued"},
  };
  static const char *const want[] = {
      "\r\nSubject: Successful Mail Delivery Report\r\n",
      "\r\n\r\nYour message was successfully delivered to the "
      "destinations\r\n",
      "Content-Type: message/delivery-status\r\n\r\n"
      "Original-Envelope-Id: QQ314159\r\n"
      "Reporting-MTA: dns; mx.example.test\r\n",
      "\r\nFinal-Recipient: rfc822; bob@elsewhere.test\r\n"
      "Action: relayed\r\nStatus: 2.0.0\r\n"
      "Remote-MTA: dns; [192.0.2.1]:25\r\n"
      "Diagnostic-Code: smtp; 250 2.0.0 Ok: queued\r\n",
      "Content-Description: Delivered Message Headers\r\n"
      "Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n",
  };
  maild_buf b;
  maild_dsn d;
  char *text;
  size_t i;

  (void)state;
  fill(&d);
  d.rcpts = ok;
  d.nrcpts = 1;
  d.envid = "QQ314159";
  maild__buf_init(&b, 1 << 20);
  assert_int_equal(maild__dsn_build(&d, &b, &mem), 0);
  text = strndup((const char *)maild__buf_peek(&b), maild__buf_used(&b));
  assert_non_null(text);
  for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    assert_non_null(strstr(text, want[i]));
  assert_null(strstr(text, "Undelivered"));
  free(text);
  maild__buf_free(&b, &mem);
}

static void test_edges(void **state) {
  maild_buf b;
  maild_dsn d;
  maild_dsn_rcpt bad = rcpts[0];

  (void)state;
  maild__buf_init(&b, 100); /* too small: nothing is left behind */
  fill(&d);
  assert_int_equal(maild__dsn_build(&d, &b, &mem), MAILD_ERR_LIMIT);
  assert_int_equal(maild__buf_used(&b), 0);
  d.nrcpts = 0;
  assert_int_equal(maild__dsn_build(&d, &b, &mem), MAILD_ERR_INVAL);
  fill(&d);
  bad.diag = NULL;
  d.rcpts = &bad;
  d.nrcpts = 1;
  assert_int_equal(maild__dsn_build(&d, &b, &mem), MAILD_ERR_INVAL);
  assert_int_equal(maild__dsn_header_len((const uint8_t *)"a: b\n\nx", 7), 6);
  assert_int_equal(maild__dsn_header_len((const uint8_t *)"a: b\r\n", 6), 6);
  maild__buf_free(&b, &mem);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hdrs),
      cmocka_unit_test(test_full),
      cmocka_unit_test(test_success),
      cmocka_unit_test(test_edges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
