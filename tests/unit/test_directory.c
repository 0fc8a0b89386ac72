/* Unit tests for the local directory: users, aliases (recursive, cyclic,
   catch-all, external), postmaster, and unknown vs. not local. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maild/directory.h"
#include "maild/error.h"
#include "testmem.h"

#define NONE ((size_t)-1)

static const char users_text[] = "alice@example.com:!\n"
                                 "bob@example.com:!\n"
                                 "carol@example.org:!\n"
                                 "zed@other.net:!\n"
                                 "\"q@x.y\"@example.org:!\n";

static const char *const domains[] = {"example.com", "Example.ORG",
                                      "empty.example"};

static maild_users *make_users(const char *text) {
  maild_users *u;

  assert_int_equal(maild_users_new(&u, NULL, NULL), 0);
  assert_int_equal(maild_users_parse(u, text, strlen(text), NULL), 0);
  return u;
}

/* A config over `users_text` and the three domains; the catch-all of
   empty.example keeps its postmaster resolvable. */
typedef struct fixture {
  maild_users *users;
  maild_directory_config cfg;
} fixture;

static const char *const t_carol[] = {"carol@example.org"};

static void fixture_init(fixture *f, const maild_alias *aliases, size_t n) {
  memset(f, 0, sizeof(*f));
  f->users = make_users(users_text);
  f->cfg.domains = domains;
  f->cfg.ndomains = 3;
  f->cfg.users = f->users;
  f->cfg.aliases = aliases;
  f->cfg.naliases = n;
}

static maild_directory *build_ok(const fixture *f) {
  maild_directory_where w;
  maild_directory *d = NULL;

  assert_int_equal(maild_directory_new(&d, &f->cfg, &w, NULL, NULL), 0);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_NONE);
  return d;
}

static int build_err(const fixture *f, maild_directory_where *w) {
  maild_directory *d = NULL;
  int rc = maild_directory_new(&d, &f->cfg, w, NULL, NULL);

  assert_true(rc < 0);
  assert_null(d);
  return rc;
}

static maild_directory_result look(const maild_directory *d, const char *s) {
  maild_directory_result r;
  maild_path p;
  maild_ssize n;

  n = maild_path_parse(&p, s, strlen(s),
                       MAILD_PATH_ALLOW_POSTMASTER | MAILD_PATH_ALLOW_UTF8);
  assert_int_equal(n, (maild_ssize)strlen(s));
  assert_int_equal(maild_directory_lookup(d, &p, &r), 0);
  return r;
}

/* Checks a LOCAL result: `want` lists mailboxes, then NULL, then external
   addresses, then NULL. */
static void expect_local(const maild_directory *d, const char *rcpt,
                         const char *const *want) {
  maild_directory_result r = look(d, rcpt);
  size_t i;

  assert_int_equal(r.kind, MAILD_RCPT_LOCAL);
  for (i = 0; want[i] != NULL; i++) {
    assert_true(i < r.nmailboxes);
    assert_string_equal(r.mailboxes[i], want[i]);
  }
  assert_int_equal(r.nmailboxes, i);
  want += i + 1;
  for (i = 0; want[i] != NULL; i++) {
    assert_true(i < r.nexternal);
    assert_string_equal(r.external[i], want[i]);
  }
  assert_int_equal(r.nexternal, i);
}

static void expect_kind(const maild_directory *d, const char *rcpt,
                        maild_rcpt_kind kind) {
  maild_directory_result r = look(d, rcpt);
  assert_int_equal(r.kind, kind);
  assert_int_equal(r.nmailboxes + r.nexternal, 0);
}

static void fixture_free(fixture *f, maild_directory *d) {
  maild_directory_del(d);
  maild_users_del(f->users);
}

static void test_users_and_domains(void **state) {
  static const char *const alice[] = {"alice@example.com", NULL, NULL};
  static const char *const carol[] = {"carol@example.org", NULL, NULL};
  maild_directory_result r;
  maild_directory *d;
  maild_path p;
  fixture f;
  (void)state;

  fixture_init(&f, NULL, 0);
  f.cfg.aliases = (const maild_alias[]){{"@empty.example", t_carol, 1}};
  f.cfg.naliases = 1;
  d = build_ok(&f);
  expect_local(d, "<alice@example.com>", alice);
  expect_local(d, "<\"Alice\"@EXAMPLE.Com>", alice);
  expect_local(d, "<@relay.example:ALICE@example.com>", alice);
  expect_local(d, "<carol@example.org>", carol);
  {
    static const char *const q[] = {"\"q@x.y\"@example.org", NULL, NULL};
    expect_local(d, "<\"Q@X.Y\"@example.ORG>", q);
    expect_kind(d, "<\"q@example.org\"@x.y>", MAILD_RCPT_NOT_LOCAL);
  }
  /* Our domain, no such user: 550 5.1.1. */
  expect_kind(d, "<nobody@example.com>", MAILD_RCPT_UNKNOWN);
  expect_kind(d, "<alice@example.org>", MAILD_RCPT_UNKNOWN);
  expect_kind(d, "<\"alice \"@example.com>", MAILD_RCPT_UNKNOWN);
  /* Not our domain: relay (refused for now). A user of a domain that is
     not local receives no mail here. */
  expect_kind(d, "<alice@example.net>", MAILD_RCPT_NOT_LOCAL);
  expect_kind(d, "<alice@sub.example.com>", MAILD_RCPT_NOT_LOCAL);
  expect_kind(d, "<zed@other.net>", MAILD_RCPT_NOT_LOCAL);
  assert_int_equal(maild_directory_is_local_domain(d, "EXAMPLE.com", 11), 1);
  assert_int_equal(maild_directory_is_local_domain(d, "example.org", 11), 1);
  assert_int_equal(maild_directory_is_local_domain(d, "example", 7), 0);
  assert_int_equal(maild_directory_is_local_domain(d, "example.com\0", 12), 0);
  assert_int_equal(maild_directory_is_local_domain(NULL, "a", 1), 0);
  /* The null path is no recipient. */
  assert_int_equal(maild_path_parse(&p, "<>", 2, MAILD_PATH_ALLOW_NULL), 2);
  assert_int_equal(maild_directory_lookup(d, &p, &r), MAILD_ERR_INVAL);
  assert_int_equal(maild_directory_lookup(d, NULL, &r), MAILD_ERR_INVAL);
  fixture_free(&f, d);
}

static void test_aliases(void **state) {
  static const char *const t_sales[] = {"alice@example.com", "Bob@Example.com"};
  static const char *const t_info[] = {"sales@example.com", "alice@example.com",
                                       "team@example.org"};
  static const char *const t_team[] = {"bob@example.com", "carol@example.org",
                                       "friend@gmail.example"};
  static const char *const t_fwd[] = {"Someone@Gmail.Example",
                                      "someone@gmail.example"};
  static const char *const t_self[] = {"alice@example.com",
                                       "copy@elsewhere.net", "bob@example.com"};
  const maild_alias aliases[] = {
      {"sales@example.com", t_sales, 2}, {"info@example.com", t_info, 3},
      {"team@example.org", t_team, 3},   {"fwd@example.com", t_fwd, 2},
      {"alice@example.com", t_self, 3},  {"@empty.example", t_carol, 1},
  };
  static const char *const sales[] = {"alice@example.com", "bob@example.com",
                                      NULL, "copy@elsewhere.net", NULL};
  static const char *const info[] = {"alice@example.com",
                                     "bob@example.com",
                                     "carol@example.org",
                                     NULL,
                                     "copy@elsewhere.net",
                                     "friend@gmail.example",
                                     NULL};
  static const char *const fwd[] = {NULL, "someone@gmail.example", NULL};
  static const char *const alice[] = {"alice@example.com", "bob@example.com",
                                      NULL, "copy@elsewhere.net", NULL};
  maild_directory *d;
  fixture f;
  (void)state;

  fixture_init(&f, aliases, 6);
  d = build_ok(&f);
  /* sales -> alice (itself an alias: alice, copy, bob), bob; de-duplicated
     in first-seen order. */
  expect_local(d, "<Sales@example.com>", sales);
  expect_local(d, "<info@example.com>", info);
  /* Only external targets: still ours, nothing to store locally. */
  expect_local(d, "<fwd@example.com>", fwd);
  /* An alias overrides the user of the same address; listing itself
     keeps the mailbox. */
  expect_local(d, "<alice@example.com>", alice);
  expect_kind(d, "<sales@example.org>", MAILD_RCPT_UNKNOWN);
  fixture_free(&f, d);
}

/* A chain of `n` aliases a1 -> a2 -> ... -> an -> alice. */
static int chain(size_t n, maild_directory_where *w) {
  char names[12][48];
  const char *targets[12][1];
  maild_alias aliases[13];
  maild_directory *d = NULL;
  fixture f;
  size_t i;
  int rc;

  assert_true(n <= 12);
  for (i = 0; i < n; i++)
    snprintf(names[i], sizeof(names[i]), "a%zu@example.com", i + 1);
  for (i = 0; i < n; i++) {
    targets[i][0] = i + 1 < n ? names[i + 1] : "alice@example.com";
    aliases[i].address = names[i];
    aliases[i].targets = targets[i];
    aliases[i].ntargets = 1;
  }
  aliases[n].address = "@empty.example";
  aliases[n].targets = t_carol;
  aliases[n].ntargets = 1;
  fixture_init(&f, aliases, n + 1);
  rc = maild_directory_new(&d, &f.cfg, w, NULL, NULL);
  if (rc == 0) {
    static const char *const alice[] = {"alice@example.com", NULL, NULL};
    expect_local(d, "<a1@example.com>", alice);
  }
  fixture_free(&f, d);
  return rc;
}

static void test_alias_depth(void **state) {
  maild_directory_where w;
  (void)state;

  assert_int_equal(chain(1, &w), 0);
  assert_int_equal(chain(MAILD_DIRECTORY_DEPTH_MAX, &w), 0);
  assert_int_equal(chain(MAILD_DIRECTORY_DEPTH_MAX + 1, &w), MAILD_ERR_LIMIT);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_ALIAS);
  assert_int_equal(w.index, 0);
  assert_int_equal(chain(MAILD_DIRECTORY_DEPTH_MAX + 2, &w), MAILD_ERR_LIMIT);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_ALIAS);
}

static void test_alias_cycles(void **state) {
  static const char *const t_a[] = {"bob@example.com", "b@example.com"};
  static const char *const t_b[] = {"c@example.com"};
  static const char *const t_c[] = {"A@example.com"};
  static const char *const t_self[] = {"self@example.com"};
  static const char *const t_bob[] = {"alice@example.com", "BOB@example.com"};
  maild_alias three[] = {{"a@example.com", t_a, 2},
                         {"b@example.com", t_b, 1},
                         {"c@example.com", t_c, 1},
                         {"@empty.example", t_carol, 1}};
  maild_alias self[] = {{"self@example.com", t_self, 1},
                        {"@empty.example", t_carol, 1}};
  /* bob -> alice, bob and alice -> bob: bob is a user, but not named by
     its own alias, so alice -> bob -> bob's alias -> alice is a cycle. */
  static const char *const t_alice[] = {"bob@example.com"};
  maild_alias mutual[] = {{"bob@example.com", t_bob, 2},
                          {"alice@example.com", t_alice, 1},
                          {"@empty.example", t_carol, 1}};
  maild_directory_where w;
  fixture f;
  (void)state;

  fixture_init(&f, three, 4);
  assert_int_equal(build_err(&f, &w), MAILD_ERR_INVAL);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_ALIAS);
  assert_int_equal(w.index, 2); /* c -> a closes the cycle */
  assert_int_equal(w.target, 0);
  maild_users_del(f.users);

  fixture_init(&f, self, 2);
  assert_int_equal(build_err(&f, &w), MAILD_ERR_INVAL);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_ALIAS);
  assert_int_equal(w.index, 0);
  maild_users_del(f.users);

  fixture_init(&f, mutual, 3);
  assert_int_equal(build_err(&f, &w), MAILD_ERR_INVAL);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_ALIAS);
  maild_users_del(f.users);
}

static void test_catch_all(void **state) {
  static const char *const t_all[] = {"alice@example.com", "x@remote.example"};
  const maild_alias aliases[] = {{"@Example.COM", t_all, 2},
                                 {"@empty.example", t_carol, 1}};
  static const char *const all[] = {"alice@example.com", NULL,
                                    "x@remote.example", NULL};
  static const char *const bob[] = {"bob@example.com", NULL, NULL};
  static const char *const carol[] = {"carol@example.org", NULL, NULL};
  maild_directory *d;
  fixture f;
  (void)state;

  fixture_init(&f, aliases, 2);
  d = build_ok(&f);
  /* Users match first; anything else in the domain is caught. */
  expect_local(d, "<bob@example.com>", bob);
  expect_local(d, "<anything@example.com>", all);
  expect_local(d, "<\"Quoted Thing\"@EXAMPLE.com>", all);
  expect_local(d, "<whoever@empty.example>", carol);
  /* No catch-all in example.org. */
  expect_kind(d, "<anything@example.org>", MAILD_RCPT_UNKNOWN);
  fixture_free(&f, d);
}

static void test_postmaster(void **state) {
  static const char *const t_pm[] = {"bob@example.com"};
  static const char *const t_abuse[] = {"postmaster@example.org"};
  static const char *const alice[] = {"alice@example.com", NULL, NULL};
  static const char *const bob[] = {"bob@example.com", NULL, NULL};
  static const char *const carol[] = {"carol@example.org", NULL, NULL};
  static const char *const ext[] = {NULL, "hostmaster@isp.example", NULL};
  maild_alias aliases[] = {{"@empty.example", t_carol, 1},
                           {"abuse@example.com", t_abuse, 1},
                           {"postmaster@example.com", t_pm, 1}};
  maild_directory_where w;
  maild_directory *d;
  fixture f;
  (void)state;

  /* Default: the first user of each domain, else its catch-all. The bare
     <postmaster> is postmaster of the first domain; alias targets may
     name a default postmaster. */
  fixture_init(&f, aliases, 2);
  d = build_ok(&f);
  expect_local(d, "<postmaster>", alice);
  expect_local(d, "<PostMaster>", alice);
  expect_local(d, "<postmaster@example.com>", alice);
  expect_local(d, "<POSTMASTER@Example.Org>", carol);
  expect_local(d, "<postmaster@empty.example>", carol);
  expect_local(d, "<abuse@example.com>", carol);
  maild_directory_del(d);

  /* An explicit alias wins, for the bare form too. */
  f.cfg.naliases = 3;
  d = build_ok(&f);
  expect_local(d, "<postmaster>", bob);
  expect_local(d, "<postmaster@example.com>", bob);
  expect_local(d, "<postmaster@example.org>", carol);
  maild_directory_del(d);

  /* The fallback wins over the defaults, not over explicit aliases. */
  f.cfg.postmaster = "hostmaster@ISP.example";
  d = build_ok(&f);
  expect_local(d, "<postmaster>", bob);
  expect_local(d, "<postmaster@example.org>", ext);
  expect_local(d, "<postmaster@empty.example>", ext);
  maild_directory_del(d);
  f.cfg.naliases = 2;
  f.cfg.postmaster = "alice@example.com";
  d = build_ok(&f);
  expect_local(d, "<postmaster@example.org>", alice);
  expect_local(d, "<abuse@example.com>", alice);
  maild_directory_del(d);

  /* A bad fallback, and one that loops through a default postmaster. */
  f.cfg.postmaster = "nobody@example.com";
  assert_int_equal(build_err(&f, &w), MAILD_ERR_NOT_FOUND);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_POSTMASTER);
  f.cfg.postmaster = "not an address";
  assert_int_equal(build_err(&f, &w), MAILD_ERR_SYNTAX);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_POSTMASTER);
  f.cfg.postmaster = "postmaster@example.org";
  assert_int_equal(build_err(&f, &w), MAILD_ERR_INVAL);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_POSTMASTER);

  /* A domain with no user, no catch-all and no fallback cannot have a
     postmaster: the build fails and names the domain. */
  f.cfg.postmaster = NULL;
  f.cfg.naliases = 0;
  assert_int_equal(build_err(&f, &w), MAILD_ERR_NOT_FOUND);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_DOMAIN);
  assert_int_equal(w.index, 2);
  maild_users_del(f.users);

  /* A user named postmaster is the postmaster. */
  fixture_init(&f, aliases, 1);
  maild_users_del(f.users);
  f.users = make_users("x@example.com:!\npostmaster@example.com:!\n"
                       "carol@example.org:!\n");
  f.cfg.users = f.users;
  d = build_ok(&f);
  {
    static const char *const pm[] = {"postmaster@example.com", NULL, NULL};
    expect_local(d, "<postmaster>", pm);
  }
  fixture_free(&f, d);

  /* No users at all: the fallback carries it. */
  fixture_init(&f, NULL, 0);
  f.cfg.users = NULL;
  f.cfg.postmaster = "admin@isp.example";
  d = build_ok(&f);
  {
    static const char *const pm[] = {NULL, "admin@isp.example", NULL};
    expect_local(d, "<postmaster>", pm);
  }
  expect_kind(d, "<alice@example.com>", MAILD_RCPT_UNKNOWN);
  fixture_free(&f, d);
}

static void test_build_errors(void **state) {
  static const char *const t_ok[] = {"alice@example.com"};
  static const char *const t_typo[] = {"alice@example.com",
                                       "alcie@example.com"};
  static const char *const t_catch[] = {"@example.com"};
  static const char *const t_bad[] = {"not an address"};
  static const char *const t_null[] = {NULL};
  static const struct {
    maild_alias alias;
    int rc;
    size_t target;
  } cases[] = {
      {{"x@example.com", t_typo, 2}, MAILD_ERR_NOT_FOUND, 1},
      {{"x@example.com", t_catch, 1}, MAILD_ERR_SYNTAX, 0},
      {{"x@example.com", t_bad, 1}, MAILD_ERR_SYNTAX, 0},
      {{"x@example.com", t_null, 1}, MAILD_ERR_INVAL, 0},
      {{"x@example.com", t_ok, 0}, MAILD_ERR_INVAL, NONE},
      {{"x@example.com", NULL, 1}, MAILD_ERR_INVAL, NONE},
      {{"x@elsewhere.com", t_ok, 1}, MAILD_ERR_INVAL, NONE},
      {{"@elsewhere.com", t_ok, 1}, MAILD_ERR_INVAL, NONE},
      {{"x", t_ok, 1}, MAILD_ERR_SYNTAX, NONE},
      {{"@", t_ok, 1}, MAILD_ERR_SYNTAX, NONE},
      {{NULL, t_ok, 1}, MAILD_ERR_INVAL, NONE},
      {{"Alice@Example.com", t_ok, 1}, MAILD_ERR_DUPLICATE, NONE},
  };
  maild_alias aliases[3] = {{"@empty.example", t_carol, 1},
                            {"alice@example.com", t_ok, 1}};
  static const char *const dup[] = {"example.com", "EXAMPLE.COM."};
  static const char *const dup2[] = {"example.com", "EXAMPLE.COM"};
  static const char *const bad[] = {"example.com", "exa mple.com"};
  maild_directory_where w;
  maild_directory *d;
  fixture f;
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    aliases[2] = cases[i].alias;
    fixture_init(&f, aliases, 3);
    assert_int_equal(build_err(&f, &w), cases[i].rc);
    assert_int_equal(w.part, MAILD_DIRECTORY_PART_ALIAS);
    assert_int_equal(w.index, 2);
    assert_int_equal(w.target, cases[i].target);
    maild_users_del(f.users);
  }

  fixture_init(&f, aliases, 1);
  f.cfg.domains = dup2;
  f.cfg.ndomains = 2;
  assert_int_equal(build_err(&f, &w), MAILD_ERR_DUPLICATE);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_DOMAIN);
  assert_int_equal(w.index, 1);
  f.cfg.domains = dup;
  assert_int_equal(build_err(&f, &w), MAILD_ERR_SYNTAX);
  f.cfg.domains = bad;
  assert_int_equal(build_err(&f, &w), MAILD_ERR_SYNTAX);
  assert_int_equal(w.index, 1);
  f.cfg.ndomains = 0;
  assert_int_equal(build_err(&f, &w), MAILD_ERR_INVAL);
  assert_int_equal(w.part, MAILD_DIRECTORY_PART_NONE);
  assert_int_equal(maild_directory_new(&d, NULL, &w, NULL, NULL),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_directory_new(NULL, &f.cfg, NULL, NULL, NULL),
                   MAILD_ERR_INVAL);
  maild_directory_del(NULL);
  maild_users_del(f.users);
}

/* One alias expanding to `n` users, for the expansion limit. */
static int wide(size_t n) {
  const char **targets = calloc(n, sizeof(*targets));
  char *text = malloc(n * 32 + 1), *p = text;
  maild_alias alias;
  maild_directory *d = NULL;
  fixture f;
  size_t i;
  int rc;

  assert_non_null(targets);
  assert_non_null(text);
  for (i = 0; i < n; i++)
    p += sprintf(p, "u%zu@example.com:!\n", i);
  memset(&f, 0, sizeof(f));
  f.users = make_users(text);
  for (i = 0; i < n; i++)
    targets[i] = maild_users_address(f.users, i);
  alias = (maild_alias){"all@example.com", targets, n};
  f.cfg = (maild_directory_config){domains, 1, f.users, &alias, 1, NULL};
  rc = maild_directory_new(&d, &f.cfg, NULL, NULL, NULL);
  if (rc == 0) {
    maild_directory_result r = look(d, "<all@example.com>");
    assert_int_equal(r.nmailboxes, n);
    assert_string_equal(r.mailboxes[n - 1], targets[n - 1]);
  }
  fixture_free(&f, d);
  free(targets);
  free(text);
  return rc;
}

static void test_expand_limit(void **state) {
  (void)state;
  assert_int_equal(wide(MAILD_DIRECTORY_EXPAND_MAX), 0);
  assert_int_equal(wide(MAILD_DIRECTORY_EXPAND_MAX + 1), MAILD_ERR_LIMIT);
}

static void test_nomem(void **state) {
  static const char *const t_sales[] = {"alice@example.com", "bob@example.com",
                                        "x@remote.example"};
  static const char *const t_info[] = {"sales@example.com", "postmaster@a.b"};
  const maild_alias aliases[] = {{"sales@example.com", t_sales, 3},
                                 {"info@example.com", t_info, 2},
                                 {"@empty.example", t_carol, 1}};
  static const char *const want[] = {
      "alice@example.com", "bob@example.com", NULL,
      "x@remote.example",  "postmaster@a.b",  NULL};
  maild_directory_where w;
  maild_directory *d;
  testmem tm;
  fixture f;
  size_t n;
  int rc;
  (void)state;

  fixture_init(&f, aliases, 3);
  for (n = 1;; n++) {
    testmem_init(&tm, n);
    d = NULL;
    rc = maild_directory_new(&d, &f.cfg, &w, NULL, &tm.mem);
    if (rc == 0) {
      expect_local(d, "<info@example.com>", want);
      maild_directory_del(d);
    }
    assert_int_equal(tm.live, 0);
    if (tm.failures == 0) {
      assert_int_equal(rc, 0);
      break;
    }
    assert_int_equal(rc, MAILD_ERR_NOMEM);
    assert_int_equal(w.part, MAILD_DIRECTORY_PART_NONE);
    assert_null(d);
  }
  assert_true(n > 10);
  maild_users_del(f.users);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_users_and_domains),
      cmocka_unit_test(test_aliases),
      cmocka_unit_test(test_alias_depth),
      cmocka_unit_test(test_alias_cycles),
      cmocka_unit_test(test_catch_all),
      cmocka_unit_test(test_postmaster),
      cmocka_unit_test(test_build_errors),
      cmocka_unit_test(test_expand_limit),
      cmocka_unit_test(test_nomem),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
