/*
 * Checking SMTP AUTH credentials (RFC 4954). The SASL module gives the
 * user and password; here the account's hash is looked up on the event
 * loop (an in-memory lookup) and copied into a job, and crypt(3) runs on
 * the worker pool against that copy, so nothing on the worker refers to
 * the users object, which a reload may replace meanwhile. An unknown user
 * and a wrong password take the same path and give the same answer
 * (TESTPLAN A2).
 */
#include "runtime/server_int.h"

#include "core/mem.h"
#include "maild/error.h"
#include "maild/sasl.h"
#include "maild/users.h"

#include <string.h>

/* Password checks in flight at most: one per core, between 2 and 8. A
   yescrypt check takes 16 MiB and a core for ~10 ms, so more at once than
   there are cores only adds memory (measured on 2 cores: the same logins
   per second with 2 as with 4, at half the peak memory), and the worker
   pool must stay free for deliveries. */
#define CRYPT_MIN 2u
#define CRYPT_MAX 8u

static unsigned crypt_max(maild_server *srv) {
  if (srv->crypt_max == 0) {
    unsigned n = uv_available_parallelism();
    srv->crypt_max = n < CRYPT_MIN ? CRYPT_MIN : n > CRYPT_MAX ? CRYPT_MAX : n;
  }
  return srv->crypt_max;
}

typedef struct crypt_wait {
  uv_work_t *req;
  uv_work_cb work;
  uv_after_work_cb done;
  struct crypt_wait *next;
} crypt_wait;

int maild__crypt_queue(maild_server *srv, uv_work_t *req, uv_work_cb work,
                       uv_after_work_cb done) {
  crypt_wait *w, **pp;

  if (srv->crypt_running < crypt_max(srv)) {
    if (uv_queue_work(srv->loop, req, work, done) != 0)
      return MAILD_ERR_IO;
    srv->crypt_running++;
    return 0;
  }
  w = maild__calloc(&srv->mem, 1, sizeof(*w));
  if (w == NULL)
    return MAILD_ERR_NOMEM;
  w->req = req;
  w->work = work;
  w->done = done;
  for (pp = &srv->crypt_waiting; *pp != NULL; pp = &(*pp)->next)
    ;
  *pp = w;
  return 0;
}

void maild__crypt_finished(maild_server *srv) {
  crypt_wait *w;

  srv->crypt_running--;
  while ((w = srv->crypt_waiting) != NULL) {
    srv->crypt_waiting = w->next;
    if (uv_queue_work(srv->loop, w->req, w->work, w->done) == 0) {
      srv->crypt_running++;
      maild__free(&srv->mem, w);
      return;
    }
    maild__free(&srv->mem, w); /* cannot happen with a live loop */
  }
}

typedef struct auth_job {
  uv_work_t req;
  maild_server *srv;
  void (*done)(void *ud, int ok, const char *user);
  void *ud;
  char user[MAILD_USERS_ADDRESS_SIZE]; /* canonical, when it parses */
  char hash[MAILD_USERS_HASH_SIZE];    /* "" for no such login */
  char password[MAILD_SASL_PASSWORD_MAX + 1];
  size_t password_len;
  int ok;
} auth_job;

static void auth_work(uv_work_t *req) {
  auth_job *j = req->data;

  j->ok =
      maild_users_verify_hash(j->hash, j->password, j->password_len, NULL) == 0;
  maild__wipe(j->password, sizeof(j->password));
}

static void auth_done(uv_work_t *req, int status) {
  auth_job *j = req->data;
  maild_server *srv = j->srv;

  (void)status;
  srv->jobs--;
  maild__crypt_finished(srv);
  j->done(j->ud, j->ok, j->user);
  maild__wipe(j->hash, sizeof(j->hash));
  maild__free(&srv->mem, j);
  maild__server_maybe_closed(srv);
}

/* The account the client asked for, canonical; "" when it cannot be one.
   An authorization identity other than the user's own is refused like a
   wrong password (no acting for others). */
static void account_of(const maild_sasl_server *sasl, char *out, size_t size) {
  char z[MAILD_USERS_ADDRESS_SIZE];
  size_t ul, zl;
  const char *u = maild_sasl_server_authcid(sasl, &ul);
  const char *a = maild_sasl_server_authzid(sasl, &zl);

  out[0] = '\0';
  if (u == NULL || maild_users_canonical(u, ul, out, size) < 0) {
    out[0] = '\0';
    return;
  }
  if (a != NULL && zl > 0 &&
      (maild_users_canonical(a, zl, z, sizeof(z)) < 0 || strcmp(z, out) != 0))
    out[0] = '\0';
}

int maild__auth_check(maild_server *srv, const maild_sasl_server *sasl,
                      void (*done)(void *ud, int ok, const char *user),
                      void *ud) {
  size_t pl;
  const char *p = maild_sasl_server_password(sasl, &pl);
  auth_job *j;

  if (p == NULL || pl > MAILD_SASL_PASSWORD_MAX)
    return MAILD_ERR_INVAL;
  j = maild__calloc(&srv->mem, 1, sizeof(*j));
  if (j == NULL)
    return MAILD_ERR_NOMEM;
  j->srv = srv;
  j->done = done;
  j->ud = ud;
  account_of(sasl, j->user, sizeof(j->user));
  if (j->user[0] != '\0' && srv->users != NULL)
    maild_users_login_hash(srv->users, j->user, strlen(j->user), j->hash,
                           sizeof(j->hash));
  memcpy(j->password, p, pl);
  j->password_len = pl;
  j->req.data = j;
  if (maild__crypt_queue(srv, &j->req, auth_work, auth_done) != 0) {
    maild__wipe(j->password, sizeof(j->password));
    maild__free(&srv->mem, j);
    return MAILD_ERR_IO;
  }
  srv->jobs++;
  return 0;
}
