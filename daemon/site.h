/*
 * The parts of a running mail site that maild and maildctl both build
 * from a configuration: the users, and the directory of who is local.
 * Building blocks (file reads, crypt): maild calls this at start and on
 * SIGHUP from libuv's worker pool.
 */
#ifndef MAILD_DAEMON_SITE_H
#define MAILD_DAEMON_SITE_H

#include "config.h"
#include "maild/directory.h"
#include "maild/users.h"

typedef struct maild_site {
  maild_users *users;
  maild_directory *directory;
} maild_site;

/* Loads the users file (a missing file is no users) and builds the
   directory. On error `err` says why, naming the file and line. Returns 0
   or a maild error. */
int maild_site_load(maild_site *site, const maild_config *cfg, char *err,
                    size_t errlen);
void maild_site_free(maild_site *site);

/* Creates `path` and its parents as directories (0700). Returns 0 or -1
   with errno set. */
int maild_mkdirs(const char *path);

/* Fills `buf` with a random password of `len` characters from an
   unambiguous alphabet, NUL-terminated. Returns 0 or -1. */
int maild_random_password(char *buf, size_t len);

#endif
