/*
 * Unit tests for the SASL PLAIN and LOGIN server: the RFC 4616 examples,
 * both ways of starting (initial response or empty challenge), LOGIN's two
 * challenges, every field limit at the limit and one past, strict base64,
 * NUL, control octets and invalid UTF-8, the end states, an
 * allocation-failure sweep, and a check that deleting the object leaves
 * no trace of the password in the freed memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "maild/base64.h"
#include "maild/error.h"
#include "maild/sasl.h"
#include "testmem.h"

/* Room for the base64 of anything these tests send. */
#define B64_CAP 4096

typedef struct exchange {
  maild_sasl_server *s;
  char challenge[MAILD_SASL_CHALLENGE_SIZE];
  size_t challenge_len;
} exchange;

static void start(exchange *x, const char *mech) {
  assert_int_equal(maild_sasl_server_new(&x->s, mech, NULL, NULL), 0);
  x->challenge_len = 99;
}

/* One step with the response given as base64 text (NULL: none). */
static int step_text(exchange *x, const char *text) {
  return maild_sasl_server_step(x->s, text, text ? strlen(text) : 0,
                                x->challenge, sizeof(x->challenge),
                                &x->challenge_len);
}

/* One step with `data[0..n)` sent base64-encoded. */
static int step_data(exchange *x, const void *data, size_t n) {
  char b64[B64_CAP];
  maild_ssize m = maild_base64_encode(data, n, b64, sizeof(b64));

  assert_true(m >= 0);
  return maild_sasl_server_step(x->s, b64, (size_t)m, x->challenge,
                                sizeof(x->challenge), &x->challenge_len);
}

static void assert_field(const char *got, size_t got_len, const char *want,
                         size_t want_len) {
  assert_non_null(got);
  assert_int_equal(got_len, want_len);
  assert_memory_equal(got, want, want_len);
  assert_int_equal(got[want_len], '\0');
}

static void assert_creds(const exchange *x, const char *authzid, size_t zlen,
                         const char *authcid, size_t clen, const char *pass,
                         size_t plen) {
  size_t n = 99;
  const char *p;

  p = maild_sasl_server_authzid(x->s, &n);
  assert_field(p, n, authzid, zlen);
  p = maild_sasl_server_authcid(x->s, &n);
  assert_field(p, n, authcid, clen);
  p = maild_sasl_server_password(x->s, &n);
  assert_field(p, n, pass, plen);
}

static void assert_no_creds(const exchange *x) {
  size_t n = 99;

  assert_null(maild_sasl_server_authcid(x->s, &n));
  assert_int_equal(n, 0);
  assert_null(maild_sasl_server_authzid(x->s, NULL));
  assert_null(maild_sasl_server_password(x->s, &n));
  assert_int_equal(n, 0);
}

/* A PLAIN exchange with the message as initial response; returns the
   result and deletes the object. */
static int plain_once(const void *msg, size_t n) {
  exchange x;
  int rc;

  start(&x, "PLAIN");
  rc = step_data(&x, msg, n);
  if (rc < 0)
    assert_no_creds(&x);
  maild_sasl_server_del(x.s);
  return rc;
}

/* A LOGIN exchange without initial response; returns the last result. */
static int login_once(const void *user, size_t ulen, const void *pass,
                      size_t plen) {
  exchange x;
  int rc;

  start(&x, "LOGIN");
  assert_int_equal(step_text(&x, NULL), MAILD_SASL_CONTINUE);
  rc = step_data(&x, user, ulen);
  if (rc == MAILD_SASL_CONTINUE)
    rc = step_data(&x, pass, plen);
  if (rc < 0)
    assert_no_creds(&x);
  maild_sasl_server_del(x.s);
  return rc;
}

static void test_sasl_plain_rfc4616_examples(void **state) {
  static const char m1[] = "\0tim\0tanstaaftanstaaf";
  static const char m2[] = "Ursel\0Kurt\0xipj3plmq";
  exchange x;
  (void)state;

  start(&x, "PLAIN");
  assert_string_equal(maild_sasl_server_mechanism(x.s), "PLAIN");
  assert_no_creds(&x);
  assert_int_equal(step_data(&x, m1, sizeof(m1) - 1), MAILD_SASL_DONE);
  assert_int_equal(x.challenge_len, 0);
  assert_string_equal(x.challenge, "");
  assert_creds(&x, "", 0, "tim", 3, "tanstaaftanstaaf", 16);
  maild_sasl_server_del(x.s);

  /* The authzid differs from the authcid: passed through as is. */
  start(&x, "plain");
  assert_int_equal(step_data(&x, m2, sizeof(m2) - 1), MAILD_SASL_DONE);
  assert_creds(&x, "Ursel", 5, "Kurt", 4, "xipj3plmq", 9);
  maild_sasl_server_del(x.s);
}

static void test_sasl_plain_empty_challenge(void **state) {
  static const char m[] = "\0alice@example.com\0s3cr\xc3\xa9t";
  exchange x;
  (void)state;

  start(&x, "Plain");
  assert_int_equal(step_text(&x, NULL), MAILD_SASL_CONTINUE);
  assert_int_equal(x.challenge_len, 0); /* RFC 4954 4: "334 " */
  assert_string_equal(x.challenge, "");
  assert_no_creds(&x);
  assert_int_equal(step_data(&x, m, sizeof(m) - 1), MAILD_SASL_DONE);
  assert_creds(&x, "", 0, "alice@example.com", 17, "s3cr\xc3\xa9t", 7);
  maild_sasl_server_del(x.s);

  /* An empty continuation line is an empty message: malformed. */
  start(&x, "PLAIN");
  assert_int_equal(step_text(&x, NULL), MAILD_SASL_CONTINUE);
  assert_int_equal(step_text(&x, ""), MAILD_ERR_SYNTAX);
  maild_sasl_server_del(x.s);
}

static void test_sasl_empty_initial_response(void **state) {
  exchange x;
  (void)state;

  /* "=" is an empty initial response (RFC 4954 4): an empty PLAIN
     message is malformed, and so is an empty LOGIN user name. */
  start(&x, "PLAIN");
  assert_int_equal(step_text(&x, "="), MAILD_ERR_SYNTAX);
  assert_no_creds(&x);
  maild_sasl_server_del(x.s);
  start(&x, "LOGIN");
  assert_int_equal(step_text(&x, "="), MAILD_ERR_SYNTAX);
  maild_sasl_server_del(x.s);

  /* After the first step "=" is nothing special: bad base64. */
  start(&x, "PLAIN");
  assert_int_equal(step_text(&x, NULL), MAILD_SASL_CONTINUE);
  assert_int_equal(step_text(&x, "="), MAILD_ERR_SYNTAX);
  maild_sasl_server_del(x.s);
  start(&x, "LOGIN");
  assert_int_equal(step_text(&x, NULL), MAILD_SASL_CONTINUE);
  assert_int_equal(step_text(&x, "="), MAILD_ERR_SYNTAX);
  maild_sasl_server_del(x.s);
}

static void test_sasl_login_two_steps(void **state) {
  exchange x;
  size_t n;
  (void)state;

  start(&x, "LOGIN");
  assert_string_equal(maild_sasl_server_mechanism(x.s), "LOGIN");
  assert_int_equal(step_text(&x, NULL), MAILD_SASL_CONTINUE);
  assert_string_equal(x.challenge, "VXNlcm5hbWU6"); /* "Username:" */
  assert_int_equal(x.challenge_len, 12);
  assert_int_equal(step_text(&x, "dGlt"), MAILD_SASL_CONTINUE); /* tim */
  assert_string_equal(x.challenge, "UGFzc3dvcmQ6"); /* "Password:" */
  assert_int_equal(x.challenge_len, 12);
  assert_no_creds(&x);
  /* "tanstaaf" */
  assert_int_equal(step_text(&x, "dGFuc3RhYWY="), MAILD_SASL_DONE);
  assert_int_equal(x.challenge_len, 0);
  assert_creds(&x, "", 0, "tim", 3, "tanstaaf", 8);
  n = 99;
  assert_string_equal(maild_sasl_server_authzid(x.s, &n), "");
  assert_int_equal(n, 0);
  maild_sasl_server_del(x.s);

  /* AUTH LOGIN with the user name as initial response. */
  start(&x, "login");
  assert_int_equal(step_text(&x, "dGlt"), MAILD_SASL_CONTINUE);
  assert_string_equal(x.challenge, "UGFzc3dvcmQ6");
  assert_int_equal(step_text(&x, "dGFuc3RhYWY="), MAILD_SASL_DONE);
  assert_creds(&x, "", 0, "tim", 3, "tanstaaf", 8);
  maild_sasl_server_del(x.s);

  /* Empty user name or password. */
  assert_int_equal(login_once("", 0, "pw", 2), MAILD_ERR_SYNTAX);
  assert_int_equal(login_once("tim", 3, "", 0), MAILD_ERR_SYNTAX);
}

static void test_sasl_mechanisms(void **state) {
  maild_sasl_server *s = (maild_sasl_server *)&s;
  (void)state;

  assert_true(maild_sasl_mechanism_supported("PLAIN", 5));
  assert_true(maild_sasl_mechanism_supported("login", 5));
  assert_true(maild_sasl_mechanism_supported("PLAINX", 5));
  assert_false(maild_sasl_mechanism_supported("PLAINX", 6));
  assert_false(maild_sasl_mechanism_supported("PLAI", 4));
  assert_false(maild_sasl_mechanism_supported("CRAM-MD5", 8));
  assert_false(maild_sasl_mechanism_supported("", 0));
  assert_false(maild_sasl_mechanism_supported(NULL, 5));

  assert_int_equal(maild_sasl_server_new(&s, "CRAM-MD5", NULL, NULL),
                   MAILD_ERR_UNSUPPORTED);
  assert_null(s);
  assert_int_equal(maild_sasl_server_new(&s, "", NULL, NULL),
                   MAILD_ERR_UNSUPPORTED);
  assert_int_equal(maild_sasl_server_new(&s, "PLAIN ", NULL, NULL),
                   MAILD_ERR_UNSUPPORTED);
  assert_int_equal(maild_sasl_server_new(&s, NULL, NULL, NULL),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_sasl_server_new(NULL, "PLAIN", NULL, NULL),
                   MAILD_ERR_INVAL);
  maild_sasl_server_del(NULL);
  assert_null(maild_sasl_server_mechanism(NULL));
  assert_null(maild_sasl_server_authcid(NULL, NULL));
}

/* PLAIN message with fields of the given lengths (filled with letters). */
static int plain_sizes(size_t zlen, size_t clen, size_t plen) {
  char msg[2048];
  size_t n = 0;

  assert_true(zlen + clen + plen + 2 <= sizeof(msg));
  memset(msg + n, 'z', zlen);
  n += zlen;
  msg[n++] = '\0';
  memset(msg + n, 'c', clen);
  n += clen;
  msg[n++] = '\0';
  memset(msg + n, 'p', plen);
  n += plen;
  return plain_once(msg, n);
}

static void test_sasl_limits(void **state) {
  char big[1024];
  exchange x;
  size_t n;
  (void)state;

  assert_int_equal(plain_sizes(0, 255, 1), MAILD_SASL_DONE);
  assert_int_equal(plain_sizes(0, 256, 1), MAILD_ERR_TOO_LONG);
  assert_int_equal(plain_sizes(255, 1, 1), MAILD_SASL_DONE);
  assert_int_equal(plain_sizes(256, 1, 1), MAILD_ERR_TOO_LONG);
  assert_int_equal(plain_sizes(0, 1, 511), MAILD_SASL_DONE);
  assert_int_equal(plain_sizes(0, 1, 512), MAILD_ERR_TOO_LONG);
  /* The longest valid message, and one octet more. */
  assert_int_equal(plain_sizes(255, 255, 511), MAILD_SASL_DONE);
  assert_int_equal(plain_sizes(255, 255, 512), MAILD_ERR_TOO_LONG);
  assert_int_equal(plain_sizes(1000, 1, 1), MAILD_ERR_TOO_LONG);

  /* The kept fields are exactly what was sent at the limit. */
  memset(big, 'c', sizeof(big));
  start(&x, "PLAIN");
  {
    char msg[1 + 255 + 1 + 511];
    memset(msg, 0, sizeof(msg));
    memset(msg + 1, 'c', 255);
    memset(msg + 257, 'p', 511);
    assert_int_equal(step_data(&x, msg, sizeof(msg)), MAILD_SASL_DONE);
    assert_int_equal(strlen(maild_sasl_server_authcid(x.s, &n)), 255);
    assert_int_equal(n, 255);
    assert_int_equal(strlen(maild_sasl_server_password(x.s, &n)), 511);
    assert_int_equal(n, 511);
  }
  maild_sasl_server_del(x.s);

  assert_int_equal(login_once(big, 255, "pw", 2), MAILD_SASL_DONE);
  assert_int_equal(login_once(big, 256, "pw", 2), MAILD_ERR_TOO_LONG);
  assert_int_equal(login_once(big, 1024, "pw", 2), MAILD_ERR_TOO_LONG);
  assert_int_equal(login_once("tim", 3, big, 511), MAILD_SASL_DONE);
  assert_int_equal(login_once("tim", 3, big, 512), MAILD_ERR_TOO_LONG);
  assert_int_equal(login_once("tim", 3, big, 1024), MAILD_ERR_TOO_LONG);
}

static void test_sasl_bad_base64(void **state) {
  static const char *const bad[] = {
      "dGl",       /* length not a multiple of 4 */
      "dGltAA=",   /* padding cut short */
      "dGm=",      /* non-zero pad bits */
      "dA==dGlt",  /* padding in the middle */
      "dGl*",      /* character outside the alphabet */
      "dG l0",     /* white space inside */
      "dGlt ",     /* trailing white space */
      " dGlt",     /* leading white space */
      "dGlt\r\n",  /* line end left in */
      "dGltAA==\t" /* tab */
  };
  exchange x;
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    start(&x, "PLAIN");
    assert_int_equal(step_text(&x, bad[i]), MAILD_ERR_SYNTAX);
    maild_sasl_server_del(x.s);
    start(&x, "LOGIN");
    assert_int_equal(step_text(&x, NULL), MAILD_SASL_CONTINUE);
    assert_int_equal(step_text(&x, bad[i]), MAILD_ERR_SYNTAX);
    maild_sasl_server_del(x.s);
    start(&x, "LOGIN");
    assert_int_equal(step_text(&x, "dGlt"), MAILD_SASL_CONTINUE);
    assert_int_equal(step_text(&x, bad[i]), MAILD_ERR_SYNTAX);
    assert_no_creds(&x);
    maild_sasl_server_del(x.s);
  }
  /* A NUL inside the base64 text is bad base64 too. */
  start(&x, "PLAIN");
  assert_int_equal(maild_sasl_server_step(x.s, "dGlt\0AAA", 8, x.challenge,
                                          sizeof(x.challenge),
                                          &x.challenge_len),
                   MAILD_ERR_SYNTAX);
  maild_sasl_server_del(x.s);
}

#define PLAIN(lit) plain_once(lit, sizeof(lit) - 1)

static void test_sasl_plain_malformed(void **state) {
  (void)state;

  assert_int_equal(PLAIN("tim"), MAILD_ERR_SYNTAX);          /* no NUL */
  assert_int_equal(PLAIN("\0tim"), MAILD_ERR_SYNTAX);        /* one */
  assert_int_equal(PLAIN("\0tim\0pw\0"), MAILD_ERR_SYNTAX);  /* three */
  assert_int_equal(PLAIN("\0tim\0pw\0x"), MAILD_ERR_SYNTAX); /* three */
  assert_int_equal(PLAIN("a\0\0tim\0pw"), MAILD_ERR_SYNTAX); /* three */
  assert_int_equal(PLAIN("\0\0pw"), MAILD_ERR_SYNTAX);       /* authcid */
  assert_int_equal(PLAIN("\0tim\0"), MAILD_ERR_SYNTAX);      /* passwd */
  assert_int_equal(PLAIN("\0\0"), MAILD_ERR_SYNTAX);         /* both */
  assert_int_equal(PLAIN("\0t\0p"), MAILD_SASL_DONE);        /* minimal */
}

static void test_sasl_bad_chars(void **state) {
  (void)state;

  /* Control octets in authcid and authzid; allowed in the password. */
  assert_int_equal(PLAIN("\0t\x01m\0pw"), MAILD_ERR_BAD_CHAR);
  assert_int_equal(PLAIN("\0tim\x1f\0pw"), MAILD_ERR_BAD_CHAR);
  assert_int_equal(PLAIN("\0t\x7fm\0pw"), MAILD_ERR_BAD_CHAR);
  assert_int_equal(PLAIN("\0tim\r\n\0pw"), MAILD_ERR_BAD_CHAR);
  assert_int_equal(PLAIN("a\x7f\0tim\0pw"), MAILD_ERR_BAD_CHAR);
  assert_int_equal(PLAIN("\x1b\0tim\0pw"), MAILD_ERR_BAD_CHAR);
  assert_int_equal(PLAIN("\0tim\0p\x01\x7f\tw"), MAILD_SASL_DONE);
  /* UTF-8 (RFC 4616 2) in every PLAIN field. */
  assert_int_equal(PLAIN("\0j\xc3\xb6rg\0p\xe2\x82\xacw"), MAILD_SASL_DONE);
  assert_int_equal(PLAIN("\0j\xc3\x28rg\0pw"), MAILD_ERR_BAD_CHAR);
  assert_int_equal(PLAIN("\0\xc0\xaf\0pw"), MAILD_ERR_BAD_CHAR); /* overlong */
  assert_int_equal(PLAIN("\xed\xa0\x80\0tim\0pw"), MAILD_ERR_BAD_CHAR);
  assert_int_equal(PLAIN("\0tim\0p\xff"), MAILD_ERR_BAD_CHAR);
  assert_int_equal(PLAIN("\0tim\0pw\xe2\x82"), MAILD_ERR_BAD_CHAR); /* cut */
  assert_int_equal(PLAIN("\0tim\0\xf4\x90\x80\x80"), MAILD_ERR_BAD_CHAR);

  /* LOGIN: NUL in the user name or password, controls in the name. */
  assert_int_equal(login_once("t\0m", 3, "pw", 2), MAILD_ERR_BAD_CHAR);
  assert_int_equal(login_once("tim\0", 4, "pw", 2), MAILD_ERR_BAD_CHAR);
  assert_int_equal(login_once("t\tm", 3, "pw", 2), MAILD_ERR_BAD_CHAR);
  assert_int_equal(login_once("j\xc3\x28", 3, "pw", 2), MAILD_ERR_BAD_CHAR);
  assert_int_equal(login_once("j\xc3\xb6rg", 5, "pw", 2), MAILD_SASL_DONE);
  assert_int_equal(login_once("tim", 3, "p\0w", 3), MAILD_ERR_BAD_CHAR);
  /* A LOGIN password may be in a legacy 8-bit charset. */
  assert_int_equal(login_once("tim", 3, "p\xe4\xff\x01", 4), MAILD_SASL_DONE);
}

static void test_sasl_states(void **state) {
  exchange x;
  (void)state;

  /* After DONE every step is refused and the credentials stay. */
  start(&x, "PLAIN");
  assert_int_equal(step_text(&x, "AHRpbQB0YW5zdGFhZg=="), MAILD_SASL_DONE);
  assert_int_equal(step_text(&x, "AHRpbQB0YW5zdGFhZg=="), MAILD_ERR_STATE);
  assert_int_equal(step_text(&x, NULL), MAILD_ERR_STATE);
  assert_int_equal(x.challenge_len, 0);
  assert_creds(&x, "", 0, "tim", 3, "tanstaaf", 8);
  maild_sasl_server_del(x.s);

  /* After an error too, and the user name learned so far is gone. */
  start(&x, "LOGIN");
  assert_int_equal(step_text(&x, "dGlt"), MAILD_SASL_CONTINUE);
  assert_int_equal(step_text(&x, "!!!!"), MAILD_ERR_SYNTAX);
  assert_int_equal(step_text(&x, "dGFuc3RhYWY="), MAILD_ERR_STATE);
  assert_no_creds(&x);
  maild_sasl_server_del(x.s);

  /* Invalid calls change nothing. */
  start(&x, "LOGIN");
  assert_int_equal(step_text(&x, NULL), MAILD_SASL_CONTINUE);
  assert_int_equal(step_text(&x, NULL), MAILD_ERR_INVAL);
  assert_int_equal(maild_sasl_server_step(x.s, "dGlt", 4, x.challenge,
                                          MAILD_SASL_CHALLENGE_SIZE - 1,
                                          &x.challenge_len),
                   MAILD_ERR_INVAL);
  assert_int_equal(
      maild_sasl_server_step(x.s, "dGlt", 4, NULL, 0, &x.challenge_len),
      MAILD_ERR_INVAL);
  assert_int_equal(maild_sasl_server_step(x.s, "dGlt", 4, x.challenge,
                                          sizeof(x.challenge), NULL),
                   MAILD_ERR_INVAL);
  assert_int_equal(maild_sasl_server_step(NULL, "dGlt", 4, x.challenge,
                                          sizeof(x.challenge),
                                          &x.challenge_len),
                   MAILD_ERR_INVAL);
  assert_int_equal(step_text(&x, "dGlt"), MAILD_SASL_CONTINUE);
  assert_string_equal(x.challenge, "UGFzc3dvcmQ6");
  assert_int_equal(step_text(&x, "dGFuc3RhYWY="), MAILD_SASL_DONE);
  maild_sasl_server_del(x.s);
}

static void test_sasl_nomem(void **state) {
  maild_sasl_server *s;
  size_t fail_at;
  testmem tm;
  int rc;
  (void)state;

  for (fail_at = 1;; fail_at++) {
    testmem_init(&tm, fail_at);
    rc = maild_sasl_server_new(&s, "PLAIN", NULL, &tm.mem);
    if (rc == MAILD_ERR_NOMEM) {
      assert_null(s);
      assert_int_equal(tm.live, 0);
      continue;
    }
    assert_int_equal(rc, 0);
    {
      exchange x;
      x.s = s;
      assert_int_equal(step_text(&x, NULL), MAILD_SASL_CONTINUE);
      assert_int_equal(step_text(&x, "AHRpbQB0YW5zdGFhZg=="), MAILD_SASL_DONE);
    }
    maild_sasl_server_del(s);
    assert_int_equal(tm.live, 0);
    if (tm.failures == 0)
      break;
  }
  assert_true(fail_at >= 2);
}

/*
 * An allocator that, before releasing a block, looks for the password in
 * it: the size of each block is kept in a header in front of it.
 */
typedef struct spymem {
  maild_mem mem;
  const char *secret;
  size_t secret_len;
  int blocks_freed;
  int secret_seen;
} spymem;

typedef union spy_header {
  size_t size;
  max_align_t align;
} spy_header;

static void *spy_malloc(size_t size, void *ud) {
  spy_header *h = malloc(sizeof(*h) + size);
  (void)ud;
  if (h == NULL)
    return NULL;
  h->size = size;
  return h + 1;
}

static void *spy_calloc(size_t nmemb, size_t size, void *ud) {
  void *p;
  if (size != 0 && nmemb > SIZE_MAX / size)
    return NULL;
  p = spy_malloc(nmemb * size, ud);
  if (p != NULL)
    memset(p, 0, nmemb * size);
  return p;
}

static void spy_free(void *ptr, void *ud) {
  spymem *spy = ud;
  spy_header *h;
  const unsigned char *p = ptr;
  size_t i;

  if (ptr == NULL)
    return;
  h = (spy_header *)ptr - 1;
  spy->blocks_freed++;
  for (i = 0; i + spy->secret_len <= h->size; i++)
    if (memcmp(p + i, spy->secret, spy->secret_len) == 0)
      spy->secret_seen = 1;
  free(h);
}

static void *spy_realloc(void *ptr, size_t size, void *ud) {
  (void)ptr;
  (void)size;
  (void)ud;
  fail_msg("the SASL module does not realloc");
  return NULL;
}

static void spy_init(spymem *spy, const char *secret) {
  spy->mem.user_data = spy;
  spy->mem.malloc = spy_malloc;
  spy->mem.free = spy_free;
  spy->mem.calloc = spy_calloc;
  spy->mem.realloc = spy_realloc;
  spy->secret = secret;
  spy->secret_len = strlen(secret);
  spy->blocks_freed = 0;
  spy->secret_seen = 0;
}

static void spy_exchange(const char *mech, const char *const *steps,
                         size_t nsteps, int last_rc) {
  static const char secret[] = "tanstaaf";
  exchange x;
  spymem spy;
  size_t i;
  int rc = 0;

  spy_init(&spy, secret);
  assert_int_equal(maild_sasl_server_new(&x.s, mech, NULL, &spy.mem), 0);
  for (i = 0; i < nsteps; i++)
    rc = step_text(&x, steps[i]);
  assert_int_equal(rc, last_rc);
  if (rc == MAILD_SASL_DONE)
    assert_string_equal(maild_sasl_server_password(x.s, NULL), secret);
  maild_sasl_server_del(x.s);
  assert_int_equal(spy.blocks_freed, 1);
  assert_false(spy.secret_seen);
}

static void test_sasl_password_wiped(void **state) {
  static const char *const plain[] = {"AHRpbQB0YW5zdGFhZg=="};
  static const char *const plain_bad[] = {"AHTpbQB0YW5zdGFhZg=="};
  static const char *const login[] = {NULL, "dGlt", "dGFuc3RhYWY="};
  (void)state;

  /* The spy sees the secret if nothing wipes it: check the spy first. */
  {
    spymem spy;
    char *p;
    spy_init(&spy, "tanstaaf");
    p = spy_malloc(32, &spy);
    assert_non_null(p);
    strcpy(p, "xx tanstaaf");
    spy_free(p, &spy);
    assert_true(spy.secret_seen);
  }
  spy_exchange("PLAIN", plain, 1, MAILD_SASL_DONE);
  spy_exchange("LOGIN", login, 3, MAILD_SASL_DONE);
  /* Refused (authcid not UTF-8): the password was decoded all the same. */
  spy_exchange("PLAIN", plain_bad, 1, MAILD_ERR_BAD_CHAR);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sasl_plain_rfc4616_examples),
      cmocka_unit_test(test_sasl_plain_empty_challenge),
      cmocka_unit_test(test_sasl_empty_initial_response),
      cmocka_unit_test(test_sasl_login_two_steps),
      cmocka_unit_test(test_sasl_mechanisms),
      cmocka_unit_test(test_sasl_limits),
      cmocka_unit_test(test_sasl_bad_base64),
      cmocka_unit_test(test_sasl_plain_malformed),
      cmocka_unit_test(test_sasl_bad_chars),
      cmocka_unit_test(test_sasl_states),
      cmocka_unit_test(test_sasl_nomem),
      cmocka_unit_test(test_sasl_password_wiped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
