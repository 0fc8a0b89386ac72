/*
 * Users and directory from a configuration (see site.h), and two small
 * file-system helpers shared by maild and maildctl.
 */
#include "site.h"

#include "maild/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

static const char *part_name(const maild_config *cfg,
                             const maild_directory_where *w, char *buf,
                             size_t len) {
  if (w->part == MAILD_DIRECTORY_PART_DOMAIN && w->index < cfg->ndomains)
    snprintf(buf, len, "domain %s", cfg->domains[w->index]);
  else if (w->part == MAILD_DIRECTORY_PART_ALIAS && w->index < cfg->naliases)
    snprintf(buf, len, "line %u: alias %s", cfg->aliases[w->index].line,
             cfg->aliases[w->index].address);
  else
    snprintf(buf, len, "directory");
  return buf;
}

static int build_directory(maild_site *site, const maild_config *cfg, char *err,
                           size_t errlen) {
  maild_directory_config dc;
  maild_directory_where where;
  maild_alias *aliases = calloc(cfg->naliases + 1, sizeof(*aliases));
  char what[512];
  size_t i;
  int rc;

  if (aliases == NULL)
    return MAILD_ERR_NOMEM;
  for (i = 0; i < cfg->naliases; i++) {
    aliases[i].address = cfg->aliases[i].address;
    aliases[i].targets = (const char *const *)cfg->aliases[i].targets;
    aliases[i].ntargets = cfg->aliases[i].ntargets;
  }
  memset(&dc, 0, sizeof(dc));
  dc.domains = (const char *const *)cfg->domains;
  dc.ndomains = cfg->ndomains;
  dc.users = site->users;
  dc.aliases = aliases;
  dc.naliases = cfg->naliases;
  memset(&where, 0, sizeof(where));
  rc = maild_directory_new(&site->directory, &dc, &where, NULL, NULL);
  free(aliases);
  if (rc == MAILD_ERR_NOT_FOUND && where.part == MAILD_DIRECTORY_PART_DOMAIN)
    snprintf(err, errlen,
             "domain %s has no postmaster (RFC 5321 4.5.1): add a user of "
             "that domain (maildctl user add postmaster@%s) or "
             "'alias postmaster@%s ADDRESS' to the configuration",
             cfg->domains[where.index], cfg->domains[where.index],
             cfg->domains[where.index]);
  else if (rc == MAILD_ERR_NOT_FOUND)
    snprintf(err, errlen, "%s: a target is neither a user nor an alias",
             part_name(cfg, &where, what, sizeof(what)));
  else if (rc != 0)
    snprintf(err, errlen, "%s: %s", part_name(cfg, &where, what, sizeof(what)),
             maild_strerror(rc));
  return rc;
}

int maild_site_load(maild_site *site, const maild_config *cfg, char *err,
                    size_t errlen) {
  size_t line = 0;
  int rc;

  memset(site, 0, sizeof(*site));
  rc = maild_users_new(&site->users, NULL, NULL);
  if (rc == 0) {
    rc = maild_users_load(site->users, cfg->users_path, &line);
    if (rc == MAILD_ERR_NOT_FOUND)
      rc = 0;
    if (rc != 0 && line > 0)
      snprintf(err, errlen, "%s:%zu: %s", cfg->users_path, line,
               maild_strerror(rc));
    else if (rc != 0)
      snprintf(err, errlen, "%s: %s", cfg->users_path, maild_strerror(rc));
  }
  if (rc == 0)
    rc = build_directory(site, cfg, err, errlen);
  if (rc != 0)
    maild_site_free(site);
  return rc;
}

void maild_site_free(maild_site *site) {
  maild_directory_del(site->directory);
  maild_users_del(site->users);
  memset(site, 0, sizeof(*site));
}

int maild_mkdirs(const char *path) {
  char buf[4096];
  size_t i, n = strlen(path);

  if (n == 0 || n >= sizeof(buf))
    return errno = EINVAL, -1;
  memcpy(buf, path, n + 1);
  for (i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    buf[i] = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
      return -1;
    buf[i] = path[i];
  }
  return 0;
}

int maild_random_password(char *buf, size_t len) {
  static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz"
                                 "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  unsigned char r[64];
  size_t i;

  if (len >= sizeof(r) || getrandom(r, len, 0) != (ssize_t)len)
    return -1;
  for (i = 0; i < len; i++)
    buf[i] = alphabet[r[i] % (sizeof(alphabet) - 1)];
  buf[len] = '\0';
  return 0;
}
