/*
 * Unit tests for the daemon's configuration parser (daemon/config.c): the
 * defaults, every setting, every error message with its line number, the
 * limits of sizes, durations and ports, path resolution, loading a real
 * file (including docs/maild.conf.example, as `maild -n` would), and a
 * randomized robustness run: mutations of a valid file must parse or fail
 * cleanly, without a crash or a leak (ASan/LSan in CI).
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "maild/error.h"
#include "maild/options.h"

#define EXAMPLE_CONF MAILD_TRANSCRIPT_DIR "/../../docs/maild.conf.example"

static char err[512];

static int parse_as(maild_config *cfg, const char *name, const char *text) {
  assert_int_equal(maild_config_defaults(cfg), 0);
  err[0] = '\0';
  return maild_config_parse(cfg, name, text, strlen(text), err, sizeof(err));
}

static int parse(maild_config *cfg, const char *text) {
  return parse_as(cfg, "maild.conf", text);
}

/* `text` is refused with exactly `message`. */
static void expect_error(const char *text, const char *message) {
  maild_config cfg;
  int rc = parse(&cfg, text);

  if (rc != MAILD_ERR_SYNTAX || strcmp(err, message) != 0)
    fail_msg("input:\n%s\nrc %d, message\n  %s\nexpected\n  %s", text, rc, err,
             message);
  /* The configuration is unchanged: still the defaults. */
  assert_string_equal(cfg.domains[0], "localhost");
  assert_int_equal(cfg.nlisteners, 2); /* smtp and pop3 */
  maild_config_free(&cfg);
}

/* `text` parses; the caller checks and frees `cfg`. */
static void expect_ok(maild_config *cfg, const char *text) {
  int rc = parse(cfg, text);

  if (rc != 0)
    fail_msg("input:\n%s\nrc %d: %s", text, rc, err);
}

static void test_defaults(void **state) {
  maild_config cfg;
  char host[256];
  (void)state;

  assert_int_equal(maild_config_defaults(&cfg), 0);
  assert_int_equal(gethostname(host, sizeof(host)), 0);
  assert_non_null(cfg.hostname);
  assert_true(strlen(cfg.hostname) > 0);
  assert_int_equal(cfg.ndomains, 1);
  assert_string_equal(cfg.domains[0], "localhost");
  assert_string_equal(cfg.data_dir, "./maild-data");
  assert_string_equal(cfg.users_path, "./maild-data/users");
  assert_null(cfg.run_user);
  assert_int_equal(cfg.nlisteners, 2);
  assert_int_equal(cfg.listeners[0].service, MAILD_CONFIG_SMTP);
  assert_string_equal(cfg.listeners[0].address, "127.0.0.1");
  assert_int_equal(cfg.listeners[0].family, AF_INET);
  assert_int_equal(cfg.listeners[0].port, 2525);
  assert_int_equal(cfg.listeners[0].line, 0);
  assert_int_equal(cfg.listeners[1].service, MAILD_CONFIG_POP3);
  assert_int_equal(cfg.listeners[1].port, 1110);
  assert_int_equal(cfg.naliases, 0);
  assert_int_equal(cfg.max_message_size, 25 * 1024 * 1024);
  assert_int_equal(cfg.quota, 0);
  assert_int_equal(cfg.quota_permanent, 0);
  assert_int_equal(cfg.log, MAILD_CONFIG_LOG_AUTO);
  assert_int_equal(cfg.max_recipients, 1000);
  assert_int_equal(cfg.max_junk_commands, 100);
  assert_int_equal(cfg.max_connections, 1000);
  assert_int_equal(cfg.max_connections_per_ip, 50);
  assert_int_equal(cfg.timeout_command_ms, 300000);
  assert_int_equal(cfg.timeout_data_ms, 180000);
  maild_config_free(&cfg);
  assert_null(cfg.hostname);
  maild_config_free(&cfg); /* twice is harmless: it was zeroed */
  maild_config_free(NULL);
}

static void test_empty_file_gives_defaults(void **state) {
  maild_config cfg;
  (void)state;

  expect_ok(&cfg, "");
  assert_string_equal(cfg.domains[0], "localhost");
  assert_string_equal(cfg.data_dir, "./maild-data");
  assert_string_equal(cfg.users_path, "./maild-data/users");
  assert_int_equal(cfg.nlisteners, 2);
  maild_config_free(&cfg);

  expect_ok(&cfg, "\n  \n\t\n# only comments\n   # indented\n");
  assert_int_equal(cfg.ndomains, 1);
  maild_config_free(&cfg);
}

static void test_every_setting(void **state) {
  maild_config cfg;
  (void)state;

  expect_ok(&cfg, "hostname mx.example.com\n"
                  "domains Example.COM example.net\n"
                  "domains example.org\n"
                  "data-dir /var/lib/maild/\n"
                  "users /etc/maild/users\n"
                  "user _maild\n"
                  "listen smtp 0.0.0.0:25\n"
                  "listen submission [::]:587\n"
                  "listen smtps 192.0.2.1:465\n"
                  "listen pop3 [2001:db8::1]:110\n"
                  "listen pop3s 127.0.0.1:995\n"
                  "max-message-size 10M\n"
                  "quota 2G\n"
                  "quota-answer 552\n"
                  "max-recipients 200\n"
                  "max-connections 300\n"
                  "max-connections-per-ip 10\n"
                  "timeout-command 2m\n"
                  "timeout-data 90s\n"
                  "alias Postmaster@Example.com admin@example.com\n"
                  "alias @example.org Bob@Elsewhere.EXAMPLE c@example.net\n"
                  "log syslog\n"
                  "max-junk-commands 1000\n");
  assert_string_equal(cfg.hostname, "mx.example.com");
  assert_int_equal(cfg.ndomains, 3);
  assert_string_equal(cfg.domains[0], "example.com");
  assert_string_equal(cfg.domains[1], "example.net");
  assert_string_equal(cfg.domains[2], "example.org");
  assert_string_equal(cfg.data_dir, "/var/lib/maild");
  assert_string_equal(cfg.users_path, "/etc/maild/users");
  assert_string_equal(cfg.run_user, "_maild");
  assert_int_equal(cfg.nlisteners, 5);
  assert_int_equal(cfg.listeners[0].service, MAILD_CONFIG_SMTP);
  assert_string_equal(cfg.listeners[0].address, "0.0.0.0");
  assert_int_equal(cfg.listeners[0].port, 25);
  assert_int_equal(cfg.listeners[0].line, 7);
  assert_int_equal(cfg.listeners[1].service, MAILD_CONFIG_SUBMISSION);
  assert_string_equal(cfg.listeners[1].address, "::");
  assert_int_equal(cfg.listeners[1].family, AF_INET6);
  assert_int_equal(cfg.listeners[1].port, 587);
  assert_int_equal(cfg.listeners[2].service, MAILD_CONFIG_SMTPS);
  assert_int_equal(cfg.listeners[3].service, MAILD_CONFIG_POP3);
  assert_string_equal(cfg.listeners[3].address, "2001:db8::1");
  assert_int_equal(cfg.listeners[4].service, MAILD_CONFIG_POP3S);
  assert_int_equal(cfg.listeners[4].port, 995);
  assert_int_equal(cfg.max_message_size, 10 * 1024 * 1024);
  assert_int_equal(cfg.quota, UINT64_C(2) << 30);
  assert_int_equal(cfg.quota_permanent, 1);
  assert_int_equal(cfg.max_recipients, 200);
  assert_int_equal(cfg.max_junk_commands, 1000);
  assert_int_equal(cfg.max_connections, 300);
  assert_int_equal(cfg.max_connections_per_ip, 10);
  assert_int_equal(cfg.timeout_command_ms, 120000);
  assert_int_equal(cfg.timeout_data_ms, 90000);
  assert_int_equal(cfg.naliases, 2);
  assert_string_equal(cfg.aliases[0].address, "postmaster@example.com");
  assert_int_equal(cfg.aliases[0].ntargets, 1);
  assert_string_equal(cfg.aliases[0].targets[0], "admin@example.com");
  assert_int_equal(cfg.aliases[0].line, 20);
  assert_string_equal(cfg.aliases[1].address, "@example.org");
  assert_int_equal(cfg.aliases[1].ntargets, 2);
  /* A target's local-part keeps its case; its domain does not. */
  assert_string_equal(cfg.aliases[1].targets[0], "Bob@elsewhere.example");
  assert_string_equal(cfg.aliases[1].targets[1], "c@example.net");
  assert_int_equal(cfg.log, MAILD_CONFIG_LOG_SYSLOG);
  maild_config_free(&cfg);
}

static void test_syntax_details(void **state) {
  maild_config cfg;
  (void)state;

  /* Tabs, trailing comments, '#' inside a value, CRLF, a byte order mark
     and a last line without LF. */
  expect_ok(&cfg, "\xef\xbb\xbfhostname\tmx.example.com   # the name\r\n"
                  "domains a.example\t b.example #c.example\r\n"
                  "data-dir /srv/mail#1\n"
                  "quota-answer 452");
  assert_string_equal(cfg.hostname, "mx.example.com");
  assert_string_equal(cfg.data_dir, "/srv/mail#1");
  assert_int_equal(cfg.ndomains, 2);
  assert_string_equal(cfg.domains[1], "b.example");
  assert_int_equal(cfg.quota_permanent, 0);
  maild_config_free(&cfg);

  /* Non-ASCII is fine where the value allows it (an IDN U-label). */
  expect_ok(&cfg, "domains b\xc3\xbc"
                  "cher.example\n");
  assert_string_equal(cfg.domains[0], "b\xc3\xbc"
                                      "cher.example");
  maild_config_free(&cfg);

  /* A '#' first on a line is a comment even right before a keyword. */
  expect_ok(&cfg, "#hostname x\n");
  maild_config_free(&cfg);
}

struct error_case {
  const char *text;
  const char *message;
};

static const struct error_case syntax_errors[] = {
    {"hostname mx.example\n\n\n\n\n\nhostnam x\n",
     "maild.conf:7: unknown setting 'hostnam'"},
    {"Hostname x\n", "maild.conf:1: unknown setting 'Hostname'"},
    {"hostname\n", "maild.conf:1: hostname takes 1 value, got 0"},
    {"hostname a.example b.example\n",
     "maild.conf:1: hostname takes 1 value, got 2"},
    {"domains\n", "maild.conf:1: domains takes at least 1 value, got 0"},
    {"# c\nlisten smtp\n", "maild.conf:2: listen takes 2 values, got 1"},
    {"listen smtp 127.0.0.1:25 x\n",
     "maild.conf:1: listen takes 2 values, got 3"},
    {"alias a@localhost\n",
     "maild.conf:1: alias takes at least 2 values, got 1"},
    {"data-dir   # nothing\n", "maild.conf:1: data-dir takes 1 value, got 0"},
    {"hostname a.example\nquota 1M\n\n\n\n\n\n\nhostname b.example\n",
     "maild.conf:9: hostname already set on line 1"},
    {"data-dir a\ndata-dir b\n",
     "maild.conf:2: data-dir already set on line 1"},
    {"users a\nusers b\n", "maild.conf:2: users already set on line 1"},
    {"user a\nuser b\n", "maild.conf:2: user already set on line 1"},
    {"quota 1\nquota 1\n", "maild.conf:2: quota already set on line 1"},
    {"quota-answer 452\nquota-answer 552\n",
     "maild.conf:2: quota-answer already set on line 1"},
    {"max-message-size 1M\nmax-message-size 2M\n",
     "maild.conf:2: max-message-size already set on line 1"},
    {"max-recipients 100\nmax-recipients 100\n",
     "maild.conf:2: max-recipients already set on line 1"},
    {"max-connections 1\nmax-connections 1\n",
     "maild.conf:2: max-connections already set on line 1"},
    {"max-connections-per-ip 1\nmax-connections-per-ip 1\n",
     "maild.conf:2: max-connections-per-ip already set on line 1"},
    {"timeout-command 1m\ntimeout-command 1m\n",
     "maild.conf:2: timeout-command already set on line 1"},
    {"timeout-data 1m\ntimeout-data 1m\n",
     "maild.conf:2: timeout-data already set on line 1"},
    {"log stderr\nlog stderr\n", "maild.conf:2: log already set on line 1"},
    /* Values. */
    {"hostname -bad-.example\n",
     "maild.conf:1: hostname: bad host name '-bad-.example'"},
    {"hostname [192.0.2.1]\n",
     "maild.conf:1: hostname: bad host name '[192.0.2.1]'"},
    {"domains good.example bad..example\n",
     "maild.conf:1: domains: bad domain 'bad..example'"},
    {"domains a.example\ndomains A.example\n",
     "maild.conf:2: domains: 'a.example' is listed twice"},
    {"user -x\n", "maild.conf:1: user: bad user name '-x'"},
    {"user a:b\n", "maild.conf:1: user: bad user name 'a:b'"},
    {"quota-answer 550\n",
     "maild.conf:1: quota-answer: '550' is not 452 or 552"},
    {"log file\n", "maild.conf:1: log: 'file' is not stderr or syslog"},
    {"quota 25MB\n",
     "maild.conf:1: quota: bad size '25MB' (digits with an optional K, M, G, "
     "T, P or E suffix)"},
    {"quota M\n",
     "maild.conf:1: quota: bad size 'M' (digits with an optional K, M, G, T, "
     "P or E suffix)"},
    {"quota -1\n",
     "maild.conf:1: quota: bad size '-1' (digits with an optional K, M, G, "
     "T, P or E suffix)"},
    {"quota 16E\n", "maild.conf:1: quota: '16E' is too large"},
    {"quota 18446744073709551616\n",
     "maild.conf:1: quota: '18446744073709551616' is too large"},
    {"quota 99999999999999999999999\n",
     "maild.conf:1: quota: '99999999999999999999999' is too large"},
    {"max-message-size 1023\n",
     "maild.conf:1: max-message-size: '1023' is out of range (1K to "
     "9223372036854775807)"},
    {"max-message-size 8E\n",
     "maild.conf:1: max-message-size: '8E' is out of range (1K to "
     "9223372036854775807)"},
    {"max-recipients 99\n",
     "maild.conf:1: max-recipients: '99' is out of range (100 to 1000000)"},
    {"max-recipients 1000001\n",
     "maild.conf:1: max-recipients: '1000001' is out of range (100 to "
     "1000000)"},
    {"max-recipients 1k\n", "maild.conf:1: max-recipients: bad number '1k'"},
    {"max-junk-commands 0\n",
     "maild.conf:1: max-junk-commands: '0' is out of range (1 to "
     "1000000000)"},
    {"max-junk-commands 1000000001\n",
     "maild.conf:1: max-junk-commands: '1000000001' is out of range (1 to "
     "1000000000)"},
    {"max-connections 0\n",
     "maild.conf:1: max-connections: '0' is out of range (1 to 1000000)"},
    {"max-connections-per-ip 1000001\n",
     "maild.conf:1: max-connections-per-ip: '1000001' is out of range (1 to "
     "1000000)"},
    {"queue-window 0\n",
     "maild.conf:1: queue-window: '0' is out of range (1 to 100000000)"},
    {"queue-window 100000001\n",
     "maild.conf:1: queue-window: '100000001' is out of range (1 to "
     "100000000)"},
    {"timeout-command 9ms\n",
     "maild.conf:1: timeout-command: '9ms' is out of range (10ms to 1d)"},
    {"timeout-data 25h\n",
     "maild.conf:1: timeout-data: '25h' is out of range (10ms to 1d)"},
    {"timeout-data 5x\n",
     "maild.conf:1: timeout-data: bad duration '5x' (digits with an optional "
     "unit ms, s, m, h or d)"},
    {"timeout-data m\n",
     "maild.conf:1: timeout-data: bad duration 'm' (digits with an optional "
     "unit ms, s, m, h or d)"},
    {"timeout-data 5M\n",
     "maild.conf:1: timeout-data: bad duration '5M' (digits with an optional "
     "unit ms, s, m, h or d)"},
    {"timeout-data 99999999999999999d\n",
     "maild.conf:1: timeout-data: '99999999999999999d' is too large"},
    /* listen */
    {"\n\nlisten smtp 127.0.0.1:99999\n",
     "maild.conf:3: listen: bad port '99999'"},
    {"listen smtp 127.0.0.1:65536\n", "maild.conf:1: listen: bad port '65536'"},
    {"listen smtp 127.0.0.1:000025\n",
     "maild.conf:1: listen: bad port '000025'"},
    {"listen smtp 127.0.0.1:+25\n", "maild.conf:1: listen: bad port '+25'"},
    {"listen smtp 127.0.0.1:\n", "maild.conf:1: listen: bad port ''"},
    {"listen smtp [::1]:\n", "maild.conf:1: listen: bad port ''"},
    {"listen smtp 127.0.0.1\n",
     "maild.conf:1: listen: missing port in '127.0.0.1' (write ADDRESS:PORT)"},
    {"listen smtp ::1:25\n",
     "maild.conf:1: listen: IPv6 address needs brackets in '::1:25' (write "
     "[::1]:PORT)"},
    {"listen smtp [::1]25\n",
     "maild.conf:1: listen: bad address '[::1]25' (write [IPv6]:PORT)"},
    {"listen smtp [::1\n",
     "maild.conf:1: listen: bad address '[::1' (write [IPv6]:PORT)"},
    {"listen smtp [127.0.0.1]:25\n",
     "maild.conf:1: listen: bad address '127.0.0.1' (a numeric IPv4 or "
     "[IPv6] address)"},
    {"listen smtp localhost:25\n",
     "maild.conf:1: listen: bad address 'localhost' (a numeric IPv4 or "
     "[IPv6] address)"},
    {"listen smtp 256.0.0.1:25\n",
     "maild.conf:1: listen: bad address '256.0.0.1' (a numeric IPv4 or "
     "[IPv6] address)"},
    {"listen imap 127.0.0.1:143\n",
     "maild.conf:1: listen: unknown service 'imap' (smtp, submission, smtps, "
     "pop3 or pop3s)"},
    {"listen smtp 127.0.0.1:25\nlisten submission 127.0.0.1:25\n",
     "maild.conf:2: listen: 127.0.0.1:25 is already used on line 1"},
    {"listen smtp [::1]:25\nlisten smtp [0:0::1]:25\n",
     "maild.conf:2: listen: [::1]:25 is already used on line 1"},
    /* alias */
    {"alias bob admin@localhost\n",
     "maild.conf:1: alias: bad address 'bob' (expected local@domain or "
     "@domain)"},
    {"alias @ admin@localhost\n",
     "maild.conf:1: alias: bad address '@' (expected local@domain or "
     "@domain)"},
    {"alias a@localhost bob\n",
     "maild.conf:1: alias: bad target 'bob' (expected local@domain)"},
    {"alias a@localhost <b@localhost>\n",
     "maild.conf:1: alias: bad target '<b@localhost>' (expected "
     "local@domain)"},
    {"alias a@localhost @localhost\n",
     "maild.conf:1: alias: bad target '@localhost' (expected local@domain)"},
    {"alias a@localhost b@localhost b@LOCALHOST\n",
     "maild.conf:1: alias: target 'b@LOCALHOST' is given twice"},
    {"alias a@localhost "
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx@x\n",
     "maild.conf:1: alias: bad target "
     "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx@x' "
     "(item exceeds its length limit)"},
    {"alias a@localhost b@localhost\nalias A@LocalHost c@localhost\n",
     "maild.conf:2: alias: a@localhost is already defined on line 1"},
    /* The alias's domain is checked after the whole file, at its line. */
    {"domains example.com\n"
     "alias a@example.com b@example.com\n"
     "\n"
     "alias postmaster@example.org b@example.com\n"
     "domains example.net\n",
     "maild.conf:4: alias: domain 'example.org' of postmaster@example.org is "
     "not in domains"},
    {"domains example.com\nalias @localhost b@example.com\n",
     "maild.conf:2: alias: domain 'localhost' of @localhost is not in "
     "domains"},
    /* Octets a line may not hold. */
    {"hostname a\x01.example\n",
     "maild.conf:1: control character 0x01 in line"},
    {"\nhostname a.example\rquota 1\n",
     "maild.conf:2: control character 0x0d in line"},
    {"hostname a.example\x7f\n",
     "maild.conf:1: control character 0x7f in line"},
    {"# ok\n\n# caf\xc3\n", "maild.conf:3: invalid UTF-8"},
    {"hostname \xc0\xaf\n", "maild.conf:1: invalid UTF-8"},
    {"domains \xed\xa0\x80.example\n", "maild.conf:1: invalid UTF-8"},
};

static void test_error_messages(void **state) {
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(syntax_errors) / sizeof(syntax_errors[0]); i++)
    expect_error(syntax_errors[i].text, syntax_errors[i].message);
}

static void test_nul_and_long_lines(void **state) {
  static char text[3 * MAILD_CONFIG_LINE_MAX];
  maild_config cfg;
  size_t n;
  (void)state;

  /* A NUL byte. */
  assert_int_equal(maild_config_defaults(&cfg), 0);
  assert_int_equal(maild_config_parse(&cfg, "c", "quota 1\nquota\0 1\n", 17,
                                      err, sizeof(err)),
                   MAILD_ERR_SYNTAX);
  assert_string_equal(err, "c:2: NUL byte in line");
  maild_config_free(&cfg);

  /* A line of exactly MAILD_CONFIG_LINE_MAX octets (a comment, then with a
     CR before the LF) is fine; one more octet is not. */
  memset(text, ' ', sizeof(text));
  text[0] = '#';
  text[MAILD_CONFIG_LINE_MAX] = '\n';
  n = MAILD_CONFIG_LINE_MAX + 1;
  assert_int_equal(parse_as(&cfg, "c", ""), 0);
  assert_int_equal(maild_config_parse(&cfg, "c", text, n, err, sizeof(err)), 0);
  text[MAILD_CONFIG_LINE_MAX] = '\r';
  text[MAILD_CONFIG_LINE_MAX + 1] = '\n';
  assert_int_equal(maild_config_parse(&cfg, "c", text, n + 1, err, sizeof(err)),
                   0);
  memcpy(text + n + 1, "# two\n", 6);
  text[MAILD_CONFIG_LINE_MAX] = ' ';
  assert_int_equal(maild_config_parse(&cfg, "c", text, n + 7, err, sizeof(err)),
                   MAILD_ERR_SYNTAX);
  assert_string_equal(err, "c:1: line longer than 4096 octets");
  maild_config_free(&cfg);

  /* A long line of many values. */
  memset(text, 0, sizeof(text));
  strcpy(text, "alias a@localhost");
  for (n = 0; n < 250; n++)
    snprintf(text + strlen(text), sizeof(text) - strlen(text),
             " t%zu@x.example", n);
  strcat(text, "\n");
  assert_true(strlen(text) < MAILD_CONFIG_LINE_MAX);
  expect_ok(&cfg, text);
  assert_int_equal(cfg.aliases[0].ntargets, 250);
  assert_string_equal(cfg.aliases[0].targets[249], "t249@x.example");
  maild_config_free(&cfg);
}

static void test_size_limits(void **state) {
  maild_config cfg;
  (void)state;

  expect_ok(&cfg, "quota 18446744073709551615\n");
  assert_true(cfg.quota == UINT64_MAX);
  maild_config_free(&cfg);
  expect_ok(&cfg, "quota 15E\n");
  assert_true(cfg.quota == UINT64_C(15) << 60);
  maild_config_free(&cfg);
  expect_ok(&cfg, "quota 0\nmax-message-size 1K\n");
  assert_int_equal(cfg.quota, 0);
  assert_int_equal(cfg.max_message_size, 1024);
  maild_config_free(&cfg);
  expect_ok(&cfg, "quota 3k\nmax-message-size 9223372036854775807\n");
  assert_int_equal(cfg.quota, 3072);
  assert_true(cfg.max_message_size == UINT64_C(0x7fffffffffffffff));
  maild_config_free(&cfg);
  expect_ok(&cfg, "quota 1T\nmax-message-size 7E\n");
  assert_true(cfg.quota == UINT64_C(1) << 40);
  assert_true(cfg.max_message_size == UINT64_C(7) << 60);
  maild_config_free(&cfg);
  expect_ok(&cfg, "quota 2p\nmax-message-size 0025m\n");
  assert_true(cfg.quota == UINT64_C(2) << 50);
  assert_int_equal(cfg.max_message_size, 25 * 1024 * 1024);
  maild_config_free(&cfg);
}

static void test_duration_and_count_limits(void **state) {
  maild_config cfg;
  (void)state;

  expect_ok(&cfg, "timeout-command 10ms\ntimeout-data 1d\n");
  assert_int_equal(cfg.timeout_command_ms, 10);
  assert_int_equal(cfg.timeout_data_ms, 86400000);
  maild_config_free(&cfg);
  expect_ok(&cfg, "timeout-command 24h\ntimeout-data 30\n");
  assert_int_equal(cfg.timeout_command_ms, 86400000);
  assert_int_equal(cfg.timeout_data_ms, 30000);
  maild_config_free(&cfg);
  expect_ok(&cfg, "timeout-command 1440m\ntimeout-data 86400s\n");
  assert_int_equal(cfg.timeout_command_ms, 86400000);
  maild_config_free(&cfg);
  expect_ok(&cfg, "max-recipients 100\nmax-connections 1\n"
                  "max-connections-per-ip 1000000\n");
  assert_int_equal(cfg.max_recipients, 100);
  assert_int_equal(cfg.max_connections, 1);
  assert_int_equal(cfg.max_connections_per_ip, 1000000);
  maild_config_free(&cfg);
}

static void test_listen(void **state) {
  maild_config cfg;
  (void)state;

  expect_ok(&cfg, "listen smtp 127.0.0.1:65535\n"
                  "listen smtp [::1]:2525\n"
                  "listen pop3 127.0.0.1:0\n"
                  "listen pop3s 127.0.0.1:0\n"
                  "listen submission [0:0:0:0:0:ffff:7f00:1]:1\n");
  assert_int_equal(cfg.nlisteners, 5); /* the default is replaced */
  assert_string_equal(cfg.listeners[0].address, "127.0.0.1");
  assert_int_equal(cfg.listeners[0].port, 65535);
  assert_int_equal(cfg.listeners[0].family, AF_INET);
  assert_int_equal(cfg.listeners[0].line, 1);
  assert_string_equal(cfg.listeners[1].address, "::1");
  assert_int_equal(cfg.listeners[1].family, AF_INET6);
  assert_int_equal(cfg.listeners[1].port, 2525);
  /* Port 0 (ephemeral) may repeat. */
  assert_int_equal(cfg.listeners[2].port, 0);
  assert_int_equal(cfg.listeners[3].port, 0);
  assert_string_equal(cfg.listeners[4].address, "::ffff:127.0.0.1");
  assert_string_equal(maild_config_service_name(cfg.listeners[4].service),
                      "submission");
  maild_config_free(&cfg);
  assert_string_equal(maild_config_service_name(MAILD_CONFIG_POP3S), "pop3s");
  assert_string_equal(maild_config_service_name((maild_config_service)99), "?");
}

/* Routes and name servers: addresses, brackets, ports, host names. */
static void test_routes_and_dns_servers(void **state) {
  maild_config cfg;
  (void)state;

  expect_ok(&cfg, "route * [::1]:2525\n"
                  "route A.Example 192.0.2.1\n"
                  "route b.example smtp.provider.example:587\n"
                  "dns-servers 127.0.0.1:5353 ::1 [::1]:53\n");
  assert_int_equal(cfg.nroutes, 3);
  assert_string_equal(cfg.routes[0].domain, "*");
  assert_string_equal(cfg.routes[0].address, "::1");
  assert_int_equal(cfg.routes[0].port, 2525);
  assert_string_equal(cfg.routes[1].domain, "a.example");
  assert_string_equal(cfg.routes[1].address, "192.0.2.1");
  assert_int_equal(cfg.routes[1].port, 0);
  assert_string_equal(cfg.routes[2].address, "smtp.provider.example");
  assert_int_equal(cfg.routes[2].port, 587);
  assert_null(cfg.routes[2].user);
  assert_int_equal(cfg.ndns_servers, 3);
  maild_config_free(&cfg);
  expect_error("route * ::1\n",
               "maild.conf:1: route: IPv6 address needs brackets in '::1'");
  expect_error("route * [::1:25\n",
               "maild.conf:1: route: bad address '[::1:25' (write "
               "[IPv6]:PORT)");
  expect_error("route * 192.0.2.1:0\n", "maild.conf:1: route: bad port '0'");
  expect_error("route * bad_host!\n",
               "maild.conf:1: route: 'bad_host!' is neither a host name nor a "
               "numeric IPv4 or [IPv6] address");
  expect_error("route * 192.0.2.1 login f\n",
               "maild.conf:1: route: expected DOMAIN HOST[:PORT] [auth FILE]");
  expect_error("route x.example 192.0.2.1\nroute x.example 192.0.2.2\n",
               "maild.conf:2: route: x.example already has a route on line 1");
  expect_error("dns-servers [::1\n",
               "maild.conf:1: dns-servers: bad address '[::1'");
  expect_error("dns-servers 127.0.0.1:99999\n",
               "maild.conf:1: dns-servers: bad port in '127.0.0.1:99999'");
  expect_error("dns-servers ns.example\n",
               "maild.conf:1: dns-servers: 'ns.example' is not a numeric "
               "IPv4 or [IPv6] address");
}

static void test_aliases(void **state) {
  maild_config cfg;
  (void)state;

  /* The alias comes before the domains line: checked at the end. */
  expect_ok(&cfg, "alias \"John@Doe\"@Example.Com jd@example.net\n"
                  "alias \"jane\"@example.com \"x,y\"@elsewhere.example\n"
                  "domains example.com\n");
  assert_int_equal(cfg.naliases, 2);
  assert_string_equal(cfg.aliases[0].address, "\"john@doe\"@example.com");
  /* The canonical local-part drops needless quotes. */
  assert_string_equal(cfg.aliases[1].address, "jane@example.com");
  assert_string_equal(cfg.aliases[1].targets[0], "\"x,y\"@elsewhere.example");
  maild_config_free(&cfg);
}

static void test_paths_relative_to_file(void **state) {
  maild_config cfg;
  (void)state;

  assert_int_equal(parse_as(&cfg, "/etc/maild/maild.conf", "data-dir spool\n"),
                   0);
  assert_string_equal(cfg.data_dir, "/etc/maild/spool");
  assert_string_equal(cfg.users_path, "/etc/maild/spool/users");
  maild_config_free(&cfg);

  assert_int_equal(
      parse_as(&cfg, "/etc/maild/maild.conf", "data-dir ././x/\nusers ../u\n"),
      0);
  assert_string_equal(cfg.data_dir, "/etc/maild/x");
  assert_string_equal(cfg.users_path, "/etc/maild/../u");
  maild_config_free(&cfg);

  /* The default data-dir is next to the file, too. */
  assert_int_equal(parse_as(&cfg, "/m.conf", "users /u\n"), 0);
  assert_string_equal(cfg.data_dir, "/maild-data");
  assert_string_equal(cfg.users_path, "/u");
  maild_config_free(&cfg);

  assert_int_equal(parse_as(&cfg, "conf/m.conf", "data-dir .\n"), 0);
  assert_string_equal(cfg.data_dir, "conf");
  assert_string_equal(cfg.users_path, "conf/users");
  maild_config_free(&cfg);

  /* A name without a directory leaves relative paths as they are. */
  assert_int_equal(parse_as(&cfg, "m.conf", "data-dir d\n"), 0);
  assert_string_equal(cfg.data_dir, "d");
  assert_string_equal(cfg.users_path, "d/users");
  maild_config_free(&cfg);

  assert_int_equal(parse_as(&cfg, "m.conf", "data-dir /\n"), 0);
  assert_string_equal(cfg.data_dir, "/");
  assert_string_equal(cfg.users_path, "/users");
  maild_config_free(&cfg);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");

  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
  assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state) {
  char dir[] = "/tmp/maild-config-XXXXXX", path[64], want[PATH_MAX];
  char *real;
  maild_config cfg;
  (void)state;

  assert_non_null(mkdtemp(dir));
  real = realpath(dir, NULL);
  assert_non_null(real);
  snprintf(path, sizeof(path), "%s/maild.conf", dir);
  write_file(path, "hostname mx.example\n"
                   "data-dir spool\n"
                   "listen smtp 127.0.0.1:0\n");
  assert_int_equal(maild_config_defaults(&cfg), 0);
  assert_int_equal(maild_config_load(&cfg, path, err, sizeof(err)), 0);
  assert_string_equal(cfg.hostname, "mx.example");
  snprintf(want, sizeof(want), "%s/spool", real);
  assert_string_equal(cfg.data_dir, want);
  snprintf(want, sizeof(want), "%s/spool/users", real);
  assert_string_equal(cfg.users_path, want);

  /* A broken file changes nothing and names the path as given. */
  write_file(path, "hostname other.example\n"
                   "listen smtp 127.0.0.1:99999\n");
  assert_int_equal(maild_config_load(&cfg, path, err, sizeof(err)),
                   MAILD_ERR_SYNTAX);
  snprintf(want, sizeof(want), "%s:2: listen: bad port '99999'", path);
  assert_string_equal(err, want);
  assert_string_equal(cfg.hostname, "mx.example");

  /* A missing file. */
  unlink(path);
  assert_int_equal(maild_config_load(&cfg, path, err, sizeof(err)),
                   MAILD_ERR_IO);
  snprintf(want, sizeof(want), "%s: No such file or directory", path);
  assert_string_equal(err, want);

  /* A directory is not a configuration file. */
  assert_int_equal(maild_config_load(&cfg, dir, err, sizeof(err)),
                   MAILD_ERR_IO);
  snprintf(want, sizeof(want), "%s: Is a directory", dir);
  assert_string_equal(err, want);
  assert_string_equal(cfg.hostname, "mx.example");
  maild_config_free(&cfg);

  assert_int_equal(rmdir(dir), 0);
  free(real);
}

static void test_load_relative_name(void **state) {
  char dir[] = "/tmp/maild-config-XXXXXX", old[PATH_MAX], want[PATH_MAX];
  char *real;
  maild_config cfg;
  (void)state;

  assert_non_null(getcwd(old, sizeof(old)));
  assert_non_null(mkdtemp(dir));
  real = realpath(dir, NULL);
  assert_non_null(real);
  assert_int_equal(chdir(dir), 0);
  write_file("m.conf", "hostnam x\n");
  assert_int_equal(maild_config_defaults(&cfg), 0);
  assert_int_equal(maild_config_load(&cfg, "m.conf", err, sizeof(err)),
                   MAILD_ERR_SYNTAX);
  assert_string_equal(err, "m.conf:1: unknown setting 'hostnam'");
  /* A relative name gives absolute paths: the daemon may chdir later. */
  write_file("m.conf", "");
  assert_int_equal(maild_config_load(&cfg, "m.conf", err, sizeof(err)), 0);
  snprintf(want, sizeof(want), "%s/maild-data", real);
  assert_string_equal(cfg.data_dir, want);
  maild_config_free(&cfg);
  unlink("m.conf");
  assert_int_equal(chdir(old), 0);
  assert_int_equal(rmdir(dir), 0);
  free(real);
}

/* What `maild -n -f docs/maild.conf.example` does: load, then apply. */
static void test_example_config_checks(void **state) {
  maild_config cfg;
  maild_options *opt;
  (void)state;

  assert_int_equal(maild_config_defaults(&cfg), 0);
  if (maild_config_load(&cfg, EXAMPLE_CONF, err, sizeof(err)) != 0)
    fail_msg("%s", err);
  assert_int_equal(maild_options_new(&opt, NULL), 0);
  assert_int_equal(maild_config_apply_options(&cfg, opt, err, sizeof(err)), 0);
  assert_string_equal(cfg.hostname, "mx.example.com");
  assert_int_equal(cfg.ndomains, 3);
  assert_int_equal(cfg.nlisteners, 3);
  assert_int_equal(cfg.naliases, 4);
  assert_string_equal(cfg.run_user, "maild");
  assert_string_equal(cfg.data_dir, "/var/lib/maild");
  assert_string_equal(maild_options_get_string(opt, MAILD_OPT_HOSTNAME),
                      "mx.example.com");
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_MAX_MESSAGE_SIZE),
                   25 * 1024 * 1024);
  maild_options_del(opt);
  maild_config_free(&cfg);
}

static void test_apply_options(void **state) {
  maild_config cfg;
  maild_options *opt;
  (void)state;

  assert_int_equal(maild_options_new(&opt, NULL), 0);
  expect_ok(&cfg, "hostname mx.example\n"
                  "max-message-size 1M\n"
                  "quota-answer 552\n"
                  "max-recipients 150\n"
                  "max-junk-commands 7\n"
                  "max-connections 20\n"
                  "max-connections-per-ip 2\n"
                  "timeout-command 1m\n"
                  "timeout-data 20s\n"
                  "queue-window 5\n");
  assert_int_equal(maild_config_apply_options(&cfg, opt, err, sizeof(err)), 0);
  assert_string_equal(maild_options_get_string(opt, MAILD_OPT_HOSTNAME),
                      "mx.example");
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_MAX_MESSAGE_SIZE),
                   1048576);
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_QUOTA_PERMANENT), 1);
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_MAX_RECIPIENTS), 150);
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_MAX_JUNK_COMMANDS), 7);
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_MAX_CONNECTIONS), 20);
  assert_int_equal(
      maild_options_get_uint(opt, MAILD_OPT_MAX_CONNECTIONS_PER_IP), 2);
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_TIMEOUT_COMMAND),
                   60000);
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_TIMEOUT_DATA), 20000);
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_QUEUE_WINDOW), 5);

  /* A configuration edited by hand past a limit. */
  cfg.max_recipients = 5;
  assert_int_equal(maild_config_apply_options(&cfg, opt, err, sizeof(err)),
                   MAILD_ERR_RANGE);
  assert_string_equal(err,
                      "max-recipients: 5 is out of range (100 to 1000000)");
  cfg.max_recipients = 100;
  cfg.timeout_data_ms = 5;
  assert_int_equal(maild_config_apply_options(&cfg, opt, err, sizeof(err)),
                   MAILD_ERR_RANGE);
  assert_string_equal(err, "timeout-data: 5ms is out of range (10ms to 1d)");
  maild_config_free(&cfg);

  /* The defaults apply cleanly too. */
  assert_int_equal(maild_config_defaults(&cfg), 0);
  assert_int_equal(maild_config_apply_options(&cfg, opt, err, sizeof(err)), 0);
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_QUOTA_PERMANENT), 0);
  assert_int_equal(maild_options_get_uint(opt, MAILD_OPT_QUEUE_WINDOW), 10000);
  maild_config_free(&cfg);
  maild_options_del(opt);
}

static void test_small_error_buffers(void **state) {
  maild_config cfg;
  char small[8];
  (void)state;

  assert_int_equal(maild_config_defaults(&cfg), 0);
  assert_int_equal(maild_config_parse(&cfg, "maild.conf", "x\n", 2, NULL, 0),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(
      maild_config_parse(&cfg, "maild.conf", "x\n", 2, small, sizeof(small)),
      MAILD_ERR_SYNTAX);
  assert_string_equal(small, "maild.c");
  assert_int_equal(maild_config_parse(&cfg, "a-very-long-name.conf", "x\n", 2,
                                      small, sizeof(small)),
                   MAILD_ERR_SYNTAX);
  assert_int_equal(strlen(small), 7);
  maild_config_free(&cfg);
}

/* ---- Robustness: random mutations of a valid file ---- */

static const char valid_conf[] =
    "hostname mx.example.com\n"
    "domains example.com example.net\n"
    "data-dir /var/lib/maild\n"
    "users users.txt\n"
    "user maild\n"
    "listen smtp 0.0.0.0:25\n"
    "listen submission [::1]:587\n"
    "max-message-size 25M\n"
    "quota 1G\n"
    "quota-answer 552\n"
    "max-recipients 1000\n"
    "max-connections 100\n"
    "max-connections-per-ip 5\n"
    "timeout-command 5m\n"
    "timeout-data 3m\n"
    "alias postmaster@example.com admin@example.com b@x.example\n"
    "alias @example.net admin@example.com\n"
    "log syslog # comment\n";

/* Octets and words that reach the interesting branches. */
static const char *const splices[] = {
    "\n",      "\r",       "\0",
    " ",       "\t",       "#",
    ":",       "[",        "]",
    "@",       "<",        ">",
    "\"",      "\\",       "\xc3",
    "\xff",    "\xe2\x82", "16E",
    "0",       "99999",    "65536",
    "[::]:0",  "listen",   "alias",
    "domains", "quota",    "M",
    "ms",      "x@y",      "@",
    "..",      "./",       "\xef\xbb\xbf",
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void) { /* xorshift64 */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static size_t mutate(char *buf, size_t len, size_t cap) {
  size_t pos = len ? (size_t)(rng() % len) : 0, n, k;
  const char *word;

  switch (rng() % 6) {
  case 0: /* flip a byte */
    if (len > 0)
      buf[pos] = (char)(rng() & 0xff);
    break;
  case 1: /* delete a run */
    n = (size_t)(rng() % 16);
    if (n > len - pos)
      n = len - pos;
    memmove(buf + pos, buf + pos + n, len - pos - n);
    len -= n;
    break;
  case 2: /* insert a splice */
    k = (size_t)(rng() % (sizeof(splices) / sizeof(splices[0])));
    word = splices[k];
    n = word[0] == '\0' ? 1 : strlen(word);
    if (len + n <= cap) {
      memmove(buf + pos + n, buf + pos, len - pos);
      memcpy(buf + pos, word, n);
      len += n;
    }
    break;
  case 3: /* duplicate a run (repeats lines) */
    n = (size_t)(rng() % 64);
    if (n > len - pos)
      n = len - pos;
    if (len + n <= cap) {
      memmove(buf + pos + n, buf + pos, len - pos);
      len += n;
    }
    break;
  case 4: /* a very long run of one octet */
    n = (size_t)(rng() % 5000);
    if (len + n <= cap) {
      memmove(buf + pos + n, buf + pos, len - pos);
      memset(buf + pos, rng() % 2 ? 'a' : ' ', n);
      len += n;
    }
    break;
  default: /* truncate */
    len = pos;
    break;
  }
  return len;
}

static void test_random_mutations(void **state) {
  static char buf[32768];
  maild_config cfg;
  maild_options *opt;
  size_t len, rounds, i;
  int rc, accepted = 0;
  (void)state;

  assert_int_equal(maild_options_new(&opt, NULL), 0);
  assert_int_equal(maild_config_defaults(&cfg), 0);
  for (i = 0; i < 20000; i++) {
    memcpy(buf, valid_conf, sizeof(valid_conf) - 1);
    len = sizeof(valid_conf) - 1;
    for (rounds = 1 + (size_t)(rng() % 4); rounds > 0; rounds--)
      len = mutate(buf, len, sizeof(buf));
    err[0] = '\0';
    rc = maild_config_parse(&cfg, "/m/maild.conf", buf, len, err, sizeof(err));
    if (rc == 0) {
      accepted++;
      assert_true(cfg.ndomains > 0);
      assert_true(cfg.nlisteners > 0);
      assert_non_null(cfg.data_dir);
      assert_non_null(cfg.users_path);
      assert_int_equal(maild_config_apply_options(&cfg, opt, err, sizeof(err)),
                       0);
    } else {
      assert_int_equal(rc, MAILD_ERR_SYNTAX);
      assert_memory_equal(err, "/m/maild.conf:", 14);
    }
  }
  /* Both paths were exercised. */
  assert_true(accepted > 100);
  assert_true(accepted < 19000);
  maild_config_free(&cfg);
  maild_options_del(opt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_empty_file_gives_defaults),
      cmocka_unit_test(test_every_setting),
      cmocka_unit_test(test_syntax_details),
      cmocka_unit_test(test_error_messages),
      cmocka_unit_test(test_nul_and_long_lines),
      cmocka_unit_test(test_size_limits),
      cmocka_unit_test(test_duration_and_count_limits),
      cmocka_unit_test(test_listen),
      cmocka_unit_test(test_routes_and_dns_servers),
      cmocka_unit_test(test_aliases),
      cmocka_unit_test(test_paths_relative_to_file),
      cmocka_unit_test(test_load_file),
      cmocka_unit_test(test_load_relative_name),
      cmocka_unit_test(test_example_config_checks),
      cmocka_unit_test(test_apply_options),
      cmocka_unit_test(test_small_error_buffers),
      cmocka_unit_test(test_random_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
