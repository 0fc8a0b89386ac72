/*
 * The fixture the Maildir unit tests share: a temporary directory with a
 * Maildir root and a spool file holding one message, a pinned clock and
 * random source, and the file-system helpers to build and remove it.
 * Included by test_maildir.c and test_maildir_read.c after cmocka.
 */
#ifndef MAILD_TEST_MAILDIR_FIXTURE_H
#define MAILD_TEST_MAILDIR_FIXTURE_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maild/store.h"

static const char mail_text[] =
    "Return-Path: <sender@example.net>\r\n"
    "Received: from client.example.net by mx.example\r\n"
    "Subject: test\r\n"
    "\r\n"
    "Body line one.\r\n"
    ".leading dot stays as stored\r\n";

#define NOW_USEC UINT64_C(1700000000123456)

typedef struct fx {
  char base[64]; /* the mkdtemp directory */
  char root[96]; /* base/root: the Maildir root */
  int base_fd;
  int spool_fd; /* base/spool */
  int msg_fd;   /* base/spool/msg, read-only */
  uint64_t msg_size;
  uint64_t now;
  uint32_t rnd;
  maild_store_maildir_config cfg;
  maild_store *st;
} fx;

static uint64_t fx_now(void *ud) {
  return ((fx *)ud)->now;
}

static uint32_t fx_random(void *ud) {
  return ((fx *)ud)->rnd;
}

static void rm_tree_at(int parent, const char *name) {
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  struct dirent *e;
  DIR *d;

  if (fd < 0) {
    unlinkat(parent, name, 0);
    return;
  }
  d = fdopendir(fd);
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    rm_tree_at(fd, e->d_name);
  }
  closedir(d);
  assert_int_equal(unlinkat(parent, name, AT_REMOVEDIR), 0);
}

static void write_file_at(int dirfd, const char *name, const char *text,
                          size_t len) {
  int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  assert_int_equal(close(fd), 0);
}

/* A fresh mkdtemp directory (from `tmpl`, ending in XXXXXX) holding an
   empty root/ and spool/msg with mail_text. */
static int fx_setup_in(void **state, const char *tmpl) {
  fx *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  assert_true(strlen(tmpl) < sizeof(f->base));
  strcpy(f->base, tmpl);
  assert_non_null(mkdtemp(f->base));
  snprintf(f->root, sizeof(f->root), "%s/root", f->base);
  f->base_fd = open(f->base, O_RDONLY | O_DIRECTORY);
  assert_true(f->base_fd >= 0);
  assert_int_equal(mkdirat(f->base_fd, "root", 0700), 0);
  assert_int_equal(mkdirat(f->base_fd, "spool", 0700), 0);
  f->spool_fd = openat(f->base_fd, "spool", O_RDONLY | O_DIRECTORY);
  assert_true(f->spool_fd >= 0);
  f->msg_size = strlen(mail_text);
  write_file_at(f->spool_fd, "msg", mail_text, (size_t)f->msg_size);
  f->msg_fd = openat(f->spool_fd, "msg", O_RDONLY);
  assert_true(f->msg_fd >= 0);
  f->now = NOW_USEC;
  f->rnd = 0xabcd;
  f->cfg.hostname = "mx.example";
  f->cfg.now_usec = fx_now;
  f->cfg.random32 = fx_random;
  f->cfg.user_data = f;
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx *f = *state;
  maild_store_del(f->st);
  close(f->msg_fd);
  close(f->spool_fd);
  close(f->base_fd);
  rm_tree_at(AT_FDCWD, f->base);
  free(f);
  return 0;
}

/* A new store object on the same root: what a restart sees. */
static void fx_open(fx *f) {
  maild_store_del(f->st);
  f->st = NULL;
  assert_int_equal(maild_store_maildir_new(&f->st, f->root, &f->cfg, NULL), 0);
  assert_string_equal(maild_store_name(f->st), "maildir");
}

#endif
