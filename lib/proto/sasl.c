/*
 * SASL server side of PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login-00) for the SMTP (RFC 4954) and POP3
 * (RFC 5034) engines. It is a small state machine with no I/O: each step
 * takes the client's base64 text and gives back the next base64 challenge
 * or the decoded credentials, which the runtime then checks against the
 * users file. Credentials come from unauthenticated peers, so every field
 * is bounded and checked before it is kept, the object is one fixed-size
 * allocation (no allocation after _new(), so a step cannot fail for
 * memory), and every octet that ever held a decoded response is
 * overwritten when the exchange fails or the object is deleted.
 */
#include "maild/sasl.h"

#include <string.h>

#include "core/ascii.h"
#include "core/mem.h"
#include "maild/address.h"
#include "maild/base64.h"
#include "maild/error.h"

/* Longest valid PLAIN message: authzid NUL authcid NUL passwd. */
#define PLAIN_MESSAGE_MAX \
  (MAILD_SASL_NAME_MAX + 1 + MAILD_SASL_NAME_MAX + 1 + MAILD_SASL_PASSWORD_MAX)

/* base64 of "Username:" and "Password:" (draft-murchison-sasl-login 2). */
#define LOGIN_USERNAME_CHALLENGE "VXNlcm5hbWU6"
#define LOGIN_PASSWORD_CHALLENGE "UGFzc3dvcmQ6"

typedef enum sasl_mech { SASL_PLAIN, SASL_LOGIN } sasl_mech;

static const char *const mech_names[] = {"PLAIN", "LOGIN"};

typedef enum sasl_state {
  STATE_START,      /* nothing received yet */
  STATE_PLAIN_MSG,  /* empty challenge sent; PLAIN message expected */
  STATE_LOGIN_USER, /* "Username:" sent */
  STATE_LOGIN_PASS, /* "Password:" sent */
  STATE_DONE,       /* credentials available */
  STATE_FAILED      /* exchange ended with an error */
} sasl_state;

struct maild_sasl_server {
  maild_mem mem;
  sasl_mech mech;
  sasl_state state;
  size_t authzid_len, authcid_len, password_len;
  char authzid[MAILD_SASL_NAME_MAX + 1];
  char authcid[MAILD_SASL_NAME_MAX + 1];
  char password[MAILD_SASL_PASSWORD_MAX + 1];
  /* The decoded response; wiped after every step. */
  uint8_t scratch[PLAIN_MESSAGE_MAX + 1];
};

static int mech_lookup(const char *name, size_t len, sasl_mech *mech) {
  size_t i;

  for (i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++) {
    if (maild__ascii_caseeq(name, len, mech_names[i])) {
      *mech = (sasl_mech)i;
      return 1;
    }
  }
  return 0;
}

int maild_sasl_mechanism_supported(const char *name, size_t len) {
  sasl_mech mech;

  return name != NULL && mech_lookup(name, len, &mech);
}

int maild_sasl_server_new(maild_sasl_server **out, const char *mechanism,
                          const maild_options *opt, const maild_mem *mem) {
  maild_sasl_server *s;
  maild_mem m;
  sasl_mech mech;

  (void)opt; /* no SASL option yet */
  if (out == NULL)
    return MAILD_ERR_INVAL;
  *out = NULL;
  if (mechanism == NULL)
    return MAILD_ERR_INVAL;
  if (!mech_lookup(mechanism, strlen(mechanism), &mech))
    return MAILD_ERR_UNSUPPORTED;
  maild__mem_init(&m, mem);
  s = maild__calloc(&m, 1, sizeof(*s));
  if (s == NULL)
    return MAILD_ERR_NOMEM;
  s->mem = m;
  s->mech = mech;
  s->state = STATE_START;
  *out = s;
  return 0;
}

void maild_sasl_server_del(maild_sasl_server *s) {
  maild_mem m;

  if (s == NULL)
    return;
  m = s->mem;
  maild__wipe(s, sizeof(*s));
  maild__free(&m, s);
}

/* Forgets everything learned: the exchange failed. */
static void fail(maild_sasl_server *s) {
  maild__wipe(s->authzid, sizeof(s->authzid));
  maild__wipe(s->authcid, sizeof(s->authcid));
  maild__wipe(s->password, sizeof(s->password));
  s->authzid_len = s->authcid_len = s->password_len = 0;
  s->state = STATE_FAILED;
}

/*
 * Decodes a response into s->scratch. On the first step "=" is an empty
 * initial response (RFC 4954 4, RFC 5034 4). Returns the decoded length,
 * MAILD_ERR_SYNTAX or MAILD_ERR_TOO_LONG (longer than any valid message).
 */
static maild_ssize decode(maild_sasl_server *s, const char *in, size_t len) {
  maild_ssize n;

  if (s->state == STATE_START && len == 1 && in[0] == '=')
    return 0;
  n = maild_base64_decode(in, len, s->scratch, sizeof(s->scratch));
  return n == MAILD_ERR_NOSPC ? MAILD_ERR_TOO_LONG : n;
}

/* authcid and authzid: no NUL, no control octet, UTF-8 (RFC 4616 2). */
static int check_name(const uint8_t *p, size_t len) {
  size_t i;

  if (len > MAILD_SASL_NAME_MAX)
    return MAILD_ERR_TOO_LONG;
  for (i = 0; i < len; i++)
    if (maild__ascii_is_ctl(p[i]))
      return MAILD_ERR_BAD_CHAR;
  return maild_utf8_check((const char *)p, len);
}

static void keep(char *dst, size_t *dst_len, const uint8_t *src, size_t len) {
  memcpy(dst, src, len);
  dst[len] = '\0';
  *dst_len = len;
}

static int set_challenge(char *challenge, size_t *challenge_len,
                         const char *text) {
  size_t n = strlen(text);

  memcpy(challenge, text, n + 1);
  *challenge_len = n;
  return MAILD_SASL_CONTINUE;
}

/*
 * RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd, where
 * no field holds a NUL and authcid and passwd are not empty.
 */
static int plain_message(maild_sasl_server *s, const uint8_t *msg, size_t n) {
  const uint8_t *nul1, *nul2, *authcid, *pass;
  size_t zlen, clen, plen;
  int rc;

  nul1 = memchr(msg, 0, n);
  if (nul1 == NULL)
    return MAILD_ERR_SYNTAX;
  authcid = nul1 + 1;
  nul2 = memchr(authcid, 0, n - (size_t)(authcid - msg));
  if (nul2 == NULL)
    return MAILD_ERR_SYNTAX;
  pass = nul2 + 1;
  plen = n - (size_t)(pass - msg);
  zlen = (size_t)(nul1 - msg);
  clen = (size_t)(nul2 - authcid);
  if (memchr(pass, 0, plen) != NULL || clen == 0 || plen == 0)
    return MAILD_ERR_SYNTAX;
  if (zlen > MAILD_SASL_NAME_MAX || clen > MAILD_SASL_NAME_MAX ||
      plen > MAILD_SASL_PASSWORD_MAX)
    return MAILD_ERR_TOO_LONG;
  if ((rc = check_name(msg, zlen)) < 0 || (rc = check_name(authcid, clen)) < 0)
    return rc;
  if ((rc = maild_utf8_check((const char *)pass, plen)) < 0)
    return rc;
  keep(s->authzid, &s->authzid_len, msg, zlen);
  keep(s->authcid, &s->authcid_len, authcid, clen);
  keep(s->password, &s->password_len, pass, plen);
  s->state = STATE_DONE;
  return MAILD_SASL_DONE;
}

static int login_username(maild_sasl_server *s, const uint8_t *p, size_t n,
                          char *challenge, size_t *challenge_len) {
  int rc;

  if (n == 0)
    return MAILD_ERR_SYNTAX;
  if ((rc = check_name(p, n)) < 0)
    return rc;
  keep(s->authcid, &s->authcid_len, p, n);
  s->state = STATE_LOGIN_PASS;
  return set_challenge(challenge, challenge_len, LOGIN_PASSWORD_CHALLENGE);
}

/* Any octet but NUL: the draft names no charset for the password. */
static int login_password(maild_sasl_server *s, const uint8_t *p, size_t n) {
  if (n == 0)
    return MAILD_ERR_SYNTAX;
  if (n > MAILD_SASL_PASSWORD_MAX)
    return MAILD_ERR_TOO_LONG;
  if (memchr(p, 0, n) != NULL)
    return MAILD_ERR_BAD_CHAR;
  keep(s->password, &s->password_len, p, n);
  s->state = STATE_DONE;
  return MAILD_SASL_DONE;
}

/* The first step without an initial response: send the first challenge. */
static int first_challenge(maild_sasl_server *s, char *challenge,
                           size_t *challenge_len) {
  if (s->mech == SASL_PLAIN) {
    s->state = STATE_PLAIN_MSG; /* RFC 4954 4: "334 " with nothing after */
    return set_challenge(challenge, challenge_len, "");
  }
  s->state = STATE_LOGIN_USER;
  return set_challenge(challenge, challenge_len, LOGIN_USERNAME_CHALLENGE);
}

static int dispatch(maild_sasl_server *s, const char *response, size_t len,
                    char *challenge, size_t *challenge_len) {
  maild_ssize n;

  if (response == NULL)
    return first_challenge(s, challenge, challenge_len);
  n = decode(s, response, len);
  if (n < 0)
    return (int)n;
  if (s->mech == SASL_PLAIN)
    return plain_message(s, s->scratch, (size_t)n);
  if (s->state == STATE_LOGIN_PASS)
    return login_password(s, s->scratch, (size_t)n);
  return login_username(s, s->scratch, (size_t)n, challenge, challenge_len);
}

int maild_sasl_server_step(maild_sasl_server *s, const char *response,
                           size_t len, char *challenge, size_t cap,
                           size_t *challenge_len) {
  int rc;

  if (s == NULL || challenge == NULL || challenge_len == NULL ||
      cap < MAILD_SASL_CHALLENGE_SIZE)
    return MAILD_ERR_INVAL;
  challenge[0] = '\0';
  *challenge_len = 0;
  if (s->state == STATE_DONE || s->state == STATE_FAILED)
    return MAILD_ERR_STATE;
  if (response == NULL && s->state != STATE_START)
    return MAILD_ERR_INVAL;
  rc = dispatch(s, response, len, challenge, challenge_len);
  maild__wipe(s->scratch, sizeof(s->scratch));
  if (rc < 0)
    fail(s);
  return rc;
}

static const char *field(const maild_sasl_server *s, const char *value,
                         size_t value_len, size_t *len) {
  int done = s != NULL && s->state == STATE_DONE;

  if (len != NULL)
    *len = done ? value_len : 0;
  return done ? value : NULL;
}

const char *maild_sasl_server_authcid(const maild_sasl_server *s, size_t *len) {
  return s == NULL ? field(s, NULL, 0, len)
                   : field(s, s->authcid, s->authcid_len, len);
}

const char *maild_sasl_server_authzid(const maild_sasl_server *s, size_t *len) {
  return s == NULL ? field(s, NULL, 0, len)
                   : field(s, s->authzid, s->authzid_len, len);
}

const char *maild_sasl_server_password(const maild_sasl_server *s,
                                       size_t *len) {
  return s == NULL ? field(s, NULL, 0, len)
                   : field(s, s->password, s->password_len, len);
}

const char *maild_sasl_server_mechanism(const maild_sasl_server *s) {
  return s == NULL ? NULL : mech_names[s->mech];
}
