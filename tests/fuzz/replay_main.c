/*
 * Corpus replay driver for compilers without libFuzzer: feeds every file of
 * the directories (or files) named on the command line to the harness once.
 * Fails if a directory is missing or empty, so a lost corpus is noticed.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long n;

  if (f == NULL)
    return -1;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc(n > 0 ? (size_t)n : 1);
  if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(buf);
    return -1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  int i, files = 0;

  for (i = 1; i < argc; i++) {
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (stat(argv[i], &st) != 0)
      return fprintf(stderr, "%s: missing\n", argv[i]), 1;
    if (!S_ISDIR(st.st_mode)) {
      files += run_file(argv[i]) == 0;
      continue;
    }
    d = opendir(argv[i]);
    while (d != NULL && (e = readdir(d)) != NULL) {
      char path[4096];
      if (e->d_name[0] == '.')
        continue;
      snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
      files += run_file(path) == 0;
    }
    if (d != NULL)
      closedir(d);
  }
  printf("replayed %d inputs\n", files);
  return files > 0 ? 0 : 1;
}
