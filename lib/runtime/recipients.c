/*
 * What RCPT TO means on this server (RFC 5321 4.1.1.3, 4.5.1). With a
 * directory, users and aliases become mailbox targets, and an unknown
 * local user gets 550 5.1.1 at RCPT (never a bounce later). A domain that
 * is not ours is relaying: allowed only for a client that logged in, whose
 * mail for it then waits in the spool for outbound delivery; anyone else
 * gets 554 5.7.1, and address literals are never relayed to. An alias
 * that forwards to another domain is refused until outbound delivery
 * exists. Without a directory (an embedder that wants every message),
 * each recipient is a mailbox of its own address and the bare
 * <postmaster> is postmaster at this host.
 */
#include "runtime/server_int.h"

#include "maild/directory.h"
#include "maild/error.h"

#include <string.h>

static void set_reply(maild_reply *r, int code, const char *enh,
                      const char *text) {
  r->code = code;
  r->enhanced = enh;
  r->text = text;
}

/* Adds the mailbox "local@domain" for the RCPT address `orig`. */
static int add_mailbox(delivery *d, const char *orig, const char *mailbox) {
  const char *at = strrchr(mailbox, '@');

  if (at == NULL)
    return MAILD_ERR_INVAL;
  return maild__delivery_add_rcpt(d, orig, at + 1, strlen(at + 1), mailbox,
                                  (size_t)(at - mailbox));
}

/* A recipient in another domain, for a client allowed to relay: it waits
   in the spool for outbound delivery. Route tricks are not followed: the
   address is the one given, source route already dropped by the parser. */
static int add_remote(delivery *d, const maild_path *to, const char *orig) {
  size_t before = d->nrcpts;
  int err = maild__delivery_add_rcpt(d, orig, to->domain, to->domain_len,
                                     to->local, to->local_len);

  if (err == 0 && d->nrcpts > before) /* not a duplicate */
    d->rcpts[d->nrcpts - 1].remote = 1;
  return err;
}

static int resolve_with(const maild_directory *dir, const maild_path *to,
                        const char *orig, delivery *d, int may_relay,
                        maild_reply *reply) {
  maild_directory_result res;
  size_t i;
  int err;

  if (maild_directory_lookup(dir, to, &res) != 0) {
    set_reply(reply, 501, "5.1.3", "Error: bad recipient address syntax");
    return 0;
  }
  if (res.kind == MAILD_RCPT_NOT_LOCAL && may_relay &&
      !(to->flags & MAILD_PATH_LITERAL))
    return add_remote(d, to, orig);
  if (res.kind == MAILD_RCPT_NOT_LOCAL) {
    set_reply(reply, 554, "5.7.1", "Error: Relay access denied");
    return 0;
  }
  if (res.kind != MAILD_RCPT_LOCAL) {
    set_reply(reply, 550, "5.1.1",
              "Error: Recipient address rejected: User unknown");
    return 0;
  }
  for (i = 0; i < res.nmailboxes; i++) {
    err = add_mailbox(d, orig, res.mailboxes[i]);
    if (err != 0)
      return err;
  }
  /* An alias that forwards elsewhere: the targets go out by the outbound
     queue, whoever the client is (the site's own configuration chose
     them; the hop count cuts forwarding loops). */
  for (i = 0; i < res.nexternal; i++) {
    size_t before = d->nrcpts;
    err = add_mailbox(d, orig, res.external[i]);
    if (err != 0)
      return err;
    if (d->nrcpts > before)
      d->rcpts[d->nrcpts - 1].remote = 1;
  }
  return 0;
}

int maild__rcpt_resolve(maild_server *srv, const maild_path *to, delivery *d,
                        int may_relay, maild_reply *reply) {
  char addr[MAILD_PATH_MAX * 2];

  if (maild_path_format(to, addr, sizeof(addr)) < 0)
    return MAILD_ERR_NOMEM;
  if (srv->directory != NULL)
    return resolve_with(srv->directory, to, addr, d, may_relay, reply);
  if (to->flags & MAILD_PATH_POSTMASTER)
    return maild__delivery_add_rcpt(d, addr, srv->hostname,
                                    strlen(srv->hostname), "postmaster", 10);
  return maild__delivery_add_rcpt(d, addr, to->domain, to->domain_len,
                                  to->local, to->local_len);
}
