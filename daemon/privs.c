/*
 * Privilege drop (see privs.h). The order matters: supplementary groups
 * first, then the group, then the user, since after setuid() nothing else
 * may be changed. Afterwards setuid(0) must fail, or the drop is refused.
 */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int maild_privs_lookup(const char *user, uid_t *uid, gid_t *gid, char *err,
                       size_t errlen) {
  struct passwd *pw;

  errno = 0;
  pw = getpwnam(user);
  if (pw == NULL) {
    snprintf(err, errlen, "user %s: %s", user,
             errno ? strerror(errno) : "no such user");
    return -1;
  }
  if (pw->pw_uid == 0) {
    snprintf(err, errlen, "user %s: is root", user);
    return -1;
  }
  *uid = pw->pw_uid;
  *gid = pw->pw_gid;
  return 0;
}

int maild_privs_drop(uid_t uid, gid_t gid, char *err, size_t errlen) {
  if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
    snprintf(err, errlen, "cannot drop privileges: %s", strerror(errno));
    return -1;
  }
  if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
    snprintf(err, errlen, "root privileges could be regained");
    return -1;
  }
  return 0;
}
