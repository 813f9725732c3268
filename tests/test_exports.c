/* SPDX-License-Identifier: MIT */
/* tests/test_exports.c — libdorm.so exports exactly the public API.
 *
 * The library is built with -fvisibility=hidden and its public functions
 * are marked DORM_EXTERN (include/dorm/version.h).  This test runs
 * `nm -D --defined-only` over the shared library of this test's build
 * (the plain build's for the sanitizer builds, which make no .so) and
 * compares the names with tests/exports.txt, one a line, sorted: a symbol
 * exported but not listed (an internal that lost its static or its
 * dorm__ function leaking out) and a listed one not exported (a public
 * function that lost its DORM_EXTERN) both fail, naming each difference.
 * A new public function goes into the list in the same commit.
 */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static char g_lib[PATH_MAX + 32];

typedef struct {
  char **names;
  size_t n, cap;
} name_list;

static void list_add(name_list *l, const char *name) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 256;
    l->names = realloc(l->names, l->cap * sizeof *l->names);
    assert_non_null(l->names);
  }
  l->names[l->n] = strdup(name);
  assert_non_null(l->names[l->n]);
  l->n++;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_free(name_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->names[i]);
  free(l->names);
}

/* The names of the lines of f: the last whitespace-separated word of each
 * (nm prints "address type name"; exports.txt just the name), without a
 * symbol version ("@@V").  Blank lines and '#' comments are skipped. */
static void read_names(FILE *f, name_list *out) {
  char line[512];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    char *last = NULL, *save = NULL;
    for (char *w = strtok_r(line, " \t", &save); w;
         w = strtok_r(NULL, " \t", &save))
      last = w;
    if (!last || last[0] == '#') continue;
    last[strcspn(last, "@")] = '\0';
    list_add(out, last);
  }
}

static void test_exports_match_the_list(void **state) {
  (void)state;
  name_list listed = {0}, exported = {0};
  FILE *f = fopen("tests/exports.txt", "r");
  if (!f) fail_msg("tests/exports.txt: cannot open (run from the repository)");
  read_names(f, &listed);
  fclose(f);
  if (access(g_lib, R_OK) != 0) fail_msg("%s: not built", g_lib);
  char cmd[sizeof g_lib + 64];
  snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", g_lib);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  read_names(p, &exported);
  if (pclose(p) != 0) fail_msg("`%s` failed (is binutils installed?)", cmd);
  qsort(listed.names, listed.n, sizeof *listed.names, cmp_names);
  qsort(exported.names, exported.n, sizeof *exported.names, cmp_names);

  /* merge the two sorted lists, reporting what only one side has */
  size_t i = 0, j = 0, extra = 0, missing = 0;
  while (i < exported.n || j < listed.n) {
    int c = i == exported.n ? 1
            : j == listed.n ? -1
                            : strcmp(exported.names[i], listed.names[j]);
    if (c < 0) {
      fprintf(stderr, "exported, not in tests/exports.txt: %s\n",
              exported.names[i++]);
      extra++;
    } else if (c > 0) {
      fprintf(stderr, "in tests/exports.txt, not exported: %s\n",
              listed.names[j++]);
      missing++;
    } else {
      i++, j++;
    }
  }
  fprintf(stderr, "%s: %zu exported, %zu listed\n", g_lib, exported.n,
          listed.n);
  size_t nlisted = listed.n;
  list_free(&listed);
  list_free(&exported);
  if (extra || missing)
    fail_msg(
        "%zu unlisted export(s), %zu listed symbol(s) not exported "
        "(tests/exports.txt, include/dorm/version.h)",
        extra, missing);
  assert_true(nlisted > 0);
}

int main(void) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = '\0';
  /* <build>/tests/test_exports -> <build>/libdorm.so; the sanitizer
   * builds make no shared library: theirs is the plain build's */
  char *build = dirname(dirname(self));
  const char *base = strrchr(build, '/') ? strrchr(build, '/') + 1 : build;
  if (!strcmp(base, "build-san") || !strcmp(base, "build-tsan"))
    snprintf(g_lib, sizeof g_lib, "%.*s/build/libdorm.so",
             (int)(base - build - 1), build);
  else
    snprintf(g_lib, sizeof g_lib, "%s/libdorm.so", build);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exports_match_the_list),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
