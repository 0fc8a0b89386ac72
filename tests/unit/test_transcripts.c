/*
 * Replays every transcript in tests/transcripts against the SMTP server
 * engine at every chunk split, then sweeps allocation failures over each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transcript.h"

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t list_transcripts(char ***out) {
  DIR *d = opendir(MAILD_TRANSCRIPT_DIR);
  struct dirent *e;
  char **names = NULL;
  size_t n = 0;

  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".txt") != 0)
      continue;
    names = realloc(names, (n + 1) * sizeof(*names));
    assert_non_null(names);
    names[n] = malloc(strlen(MAILD_TRANSCRIPT_DIR) + len + 2);
    assert_non_null(names[n]);
    sprintf(names[n], "%s/%s", MAILD_TRANSCRIPT_DIR, e->d_name);
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof(*names), by_name);
  *out = names;
  return n;
}

static void each_transcript(int sweep) {
  char **names;
  size_t n = list_transcripts(&names), i, failed = 0;

  assert_true(n > 0);
  for (i = 0; i < n; i++) {
    transcript *t = transcript_load(names[i]);
    assert_non_null(t);
    if (sweep)
      printf("%s: %zu allocation-failure runs\n", names[i],
             transcript_alloc_sweep(t));
    else if (transcript_run_all_splits(t) != 0)
      failed++;
    transcript_free(t);
    free(names[i]);
  }
  free(names);
  assert_int_equal(failed, 0);
}

static void test_all_splits(void **state) {
  (void)state;
  each_transcript(0);
}

static void test_alloc_failure_sweep(void **state) {
  (void)state;
  each_transcript(1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_splits),
      cmocka_unit_test(test_alloc_failure_sweep),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
