/*
 * Dropping root (TESTPLAN X1): started as root with `user NAME`, maild
 * binds its ports and opens its files, then becomes NAME for good.
 */
#ifndef MAILD_DAEMON_PRIVS_H
#define MAILD_DAEMON_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

/* Looks up `user`; returns 0 and its ids, or -1 with `err` set. */
int maild_privs_lookup(const char *user, uid_t *uid, gid_t *gid, char *err,
                       size_t errlen);

/* Becomes uid/gid (setgroups, setgid, setuid), then checks that root
   cannot be regained. Returns 0 or -1 with `err` set. */
int maild_privs_drop(uid_t uid, gid_t gid, char *err, size_t errlen);

#endif
