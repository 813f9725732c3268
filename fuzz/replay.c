/* SPDX-License-Identifier: MIT */
/* fuzz/replay.c — main() for a harness built without libFuzzer: feed
 * every file named on the command line (a folder: every file in it) to
 * LLVMFuzzerTestOneInput once.  Without arguments it replays
 * fuzz/corpus/<name> and fuzz/crashes/<name> of the harness it is linked
 * with (FUZZ_NAME), relative to the repository root, which is where
 * tests/run.sh runs it.  So `make test` replays the seeds and every saved
 * crash input under the plain build, ASan+UBSan and valgrind: a crash once
 * fixed stays fixed.  Exits 1 when a folder or file cannot be read (a
 * crash aborts on its own).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"

#ifndef FUZZ_NAME
#error "build with -DFUZZ_NAME=\"<harness>\""
#endif

static size_t nrun;

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return -1;
  }
  size_t cap = 4096, n = 0;
  unsigned char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      unsigned char *nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  fclose(f);
  if (!buf) return -1;
  /* an exact-size copy, so ASan sees a read past the input's end */
  unsigned char *in = malloc(n ? n : 1);
  if (!in) abort();
  memcpy(in, buf, n);
  free(buf);
  fprintf(stderr, "replay: %s\n", path);
  LLVMFuzzerTestOneInput(in, n);
  free(in);
  nrun++;
  return 0;
}

static int cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* path is a file or a folder; a missing folder is fine when optional */
static int run_path(const char *path, int optional) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (optional) return 0;
    fprintf(stderr, "replay: %s: no such file or folder\n", path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) return run_file(path);
  DIR *d = opendir(path);
  if (!d) return -1;
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue; /* ., .., .gitkeep */
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc(names, cap * sizeof *names);
      if (!nn) abort();
      names = nn;
    }
    size_t len = strlen(path) + strlen(e->d_name) + 2;
    names[n] = malloc(len);
    if (!names[n]) abort();
    snprintf(names[n], len, "%s/%s", path, e->d_name);
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp); /* the same order every run */
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    if (run_file(names[i])) rc = -1;
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  int rc = 0;
  if (argc > 1) {
    for (int i = 1; i < argc; i++)
      if (run_path(argv[i], 0)) rc = 1;
  } else {
    if (run_path("fuzz/corpus/" FUZZ_NAME, 0)) rc = 1;
    if (run_path("fuzz/crashes/" FUZZ_NAME, 1)) rc = 1;
  }
  printf("replay %s: %zu inputs, %s\n", FUZZ_NAME, nrun, rc ? "FAILED" : "ok");
  return rc;
}
