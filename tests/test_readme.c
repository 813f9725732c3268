/* SPDX-License-Identifier: MIT */
/* tests/test_readme.c — every program the README and docs/ show with a
 * build line, built with that line and run as a newcomer would.
 *
 * A documented program is found from a marker (a heading, or the README's
 * line naming this file): the first ```c block after it is the program,
 * the first line after it starting with `cc ` (with its `\`
 * continuations) is its build line, and the first bare ``` block after
 * the program, when the page has one, is what it prints.  The program is
 * written to a directory of its own under the name its build line uses,
 * beside `include` and `build` links to this checkout's headers and this
 * test's own build of libdorm.a (build-san/ for the sanitizer build), and
 * the build line runs there verbatim; a `cc` first on PATH adds -Werror
 * (and the sanitizers, in build-san/).  So a page whose program or build
 * line no longer works fails here, and a page that says the program
 * prints something else fails too.
 *
 * The README's complete program runs on the throwaway PostgreSQL of the
 * suite (DORM_TEST_PG) and on a new SQLite file, its output checked line
 * by line; examples/pg_example is run the same way, and
 * examples/migrate_at_startup (twice on one new SQLite file: the second
 * run has nothing to migrate).  A last test scans the
 * README and the pages of docs/ for build lines no entry here runs.
 *
 * The README's program is also built as a user of an installed dorm builds
 * it: `make install PREFIX=<temp dir>`, then the README's line for that
 * case (`cc prog.c -o prog $(pkg-config --cflags --libs dorm)`, found in
 * the README and run as written) with PKG_CONFIG_PATH pointing into the
 * tree, and run against the installed libdorm.so.MAJOR on SQLite; the
 * versioned file names, the soname and dorm.pc's version are checked on
 * the way.
 */
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

#include "dorm/version.h"
#include "support/support.h"

static char g_build[PATH_MAX]; /* build or build-san, this test's own */
static char g_root[PATH_MAX];  /* the checkout: the suite runs from it */
static char g_dir[] = "/tmp/dorm-readme.XXXXXX";

/* Run a shell command; its standard output in *out (malloc'd), its exit
 * status returned (-1 when it did not exit).  The programs run under
 * `timeout 60`, so one that hangs fails its test rather than the suite. */
static int sh_out(char **out, const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  fflush(NULL);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  size_t k;
  while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
    n += k;
    if (cap - n < 2) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
  }
  buf[n] = '\0';
  int st = pclose(p);
  *out = buf;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A documented program: where it is, and how it is run. */
typedef struct doc_program {
  const char *doc;    /* the page, from the repository root */
  const char *marker; /* a line containing this starts the search */
  const char *dir;    /* its directory under g_dir */
  const char *json;   /* write the first ```json block here, or NULL */
  int run;            /* 1: run it and compare with the page's output */
  int any_order;      /* 1: its lines may come in any order */
} doc_program;

static const doc_program readme_program = {
    "README.md", "tests/test_readme.c", "readme", NULL, 0, 0};

static const doc_program doc_programs[] = {
    {"docs/async.md", "## A complete program", "async", NULL, 1, 0},
    {"docs/deferreds.md", "## A worked example", "deferreds", NULL, 1, 1},
    {"docs/queries.md", "## A first query", "queries", "models.json", 1, 0},
    /* a server on port 8080 until Ctrl-C: built, not run */
    {"docs/http.md", "## A complete program", "http", NULL, 0, 0},
};
enum { N_DOC_PROGRAMS = sizeof doc_programs / sizeof doc_programs[0] };

/* What extract_doc_program cut out of a page (all malloc'd). */
typedef struct extracted {
  char *program, *json, *output, *build;
} extracted;

static void extracted_free(extracted *x) {
  free(x->program);
  free(x->json);
  free(x->output);
  free(x->build);
}

static void append(char **dst, const char *text, size_t n) {
  size_t have = *dst ? strlen(*dst) : 0;
  char *p = realloc(*dst, have + n + 1);
  assert_non_null(p);
  memcpy(p + have, text, n);
  p[have + n] = '\0';
  *dst = p;
}

/* The line with its leading blanks skipped. */
static const char *skip_blanks(const char *line) {
  while (*line == ' ' || *line == '\t') line++;
  return line;
}

/* Cut the program of e out of its page: 0, or -1 when the page lacks the
 * marker, the program or its build line.  The search ends at the next
 * heading of level 2 or 3 outside a code block. */
static int extract_doc_program(const doc_program *e, extracted *x) {
  memset(x, 0, sizeof *x);
  FILE *in = fopen(e->doc, "r");
  if (!in) return -1;
  char line[2048];
  int started = 0, in_build = 0;
  char **into = NULL; /* the block being captured, if any */
  int in_fence = 0;
  while (fgets(line, sizeof line, in)) {
    if (!started) {
      started = strstr(line, e->marker) != NULL;
      continue;
    }
    if (in_build) { /* a continuation of the build line */
      append(&x->build, line, strlen(line));
      in_build = strstr(line, "\\\n") != NULL;
      continue;
    }
    if (!strncmp(line, "```", 3)) {
      if (in_fence) {
        in_fence = 0;
        into = NULL;
        continue;
      }
      in_fence = 1;
      if (!strncmp(line, "```c\n", 5) && !x->program)
        into = &x->program;
      else if (!strncmp(line, "```json", 7) && e->json && !x->json)
        into = &x->json;
      else if (!strcmp(line, "```\n") && x->program && !x->output)
        into = &x->output;
      if (into) append(into, "", 0);
      continue;
    }
    if (into) {
      append(into, line, strlen(line));
      continue;
    }
    if (!in_fence && line[0] == '#' && line[1] == '#' &&
        (line[2] == ' ' || (line[2] == '#' && line[3] == ' ')))
      break; /* the next section */
    if (!x->build && !strncmp(skip_blanks(line), "cc ", 3)) {
      append(&x->build, skip_blanks(line), strlen(skip_blanks(line)));
      in_build = strstr(line, "\\\n") != NULL;
    }
  }
  fclose(in);
  if (!x->program || !x->build || (e->json && !x->json)) {
    extracted_free(x);
    return -1;
  }
  return 0;
}

/* The word of the build line that follows `flag` (e.g. "-o"), or the
 * first word ending in `suffix` when flag is NULL; "" when there is none.
 * Written to out (size n). */
static void build_word(const char *build, const char *flag, const char *suffix,
                       char *out, size_t n) {
  out[0] = '\0';
  const char *p = build;
  int take = 0;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == '\\' || *p == '\n') p++;
    const char *w = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n') p++;
    size_t len = (size_t)(p - w);
    if (len == 0) continue;
    if (take || (!flag && len > strlen(suffix) &&
                 !strncmp(p - strlen(suffix), suffix, strlen(suffix)))) {
      snprintf(out, n, "%.*s", (int)len, w);
      return;
    }
    take = flag && len == strlen(flag) && !strncmp(w, flag, len);
  }
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[PATH_MAX + 256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Cut e's program out of its page into g_dir/e->dir and build it there
 * with the page's build line, verbatim.  Fills x (the caller frees it)
 * and dir; the program's file name in out (the build line's -o, else
 * a.out). */
static void build_doc_program(const doc_program *e, extracted *x, char *dir,
                              size_t dirn, char *exe, size_t exen) {
  if (extract_doc_program(e, x))
    fail_msg("%s: no program, or no build line, after \"%s\"", e->doc,
             e->marker);
  snprintf(dir, dirn, "%s/%s", g_dir, e->dir);
  char *out;
  int rc = sh_out(&out,
                  "rm -rf '%s' && mkdir '%s' && ln -s '%s/include' '%s/include'"
                  " && ln -s '%s' '%s/build' 2>&1",
                  dir, dir, g_root, dir, g_build, dir);
  free(out);
  assert_int_equal(rc, 0);
  char src[256];
  build_word(x->build, NULL, ".c", src, sizeof src);
  if (!src[0]) fail_msg("%s: the build line names no .c file", e->doc);
  write_file(dir, src, x->program);
  if (x->json) write_file(dir, e->json, x->json);
  write_file(dir, "build.sh", x->build);
  build_word(x->build, "-o", "", exe, exen);
  if (!exe[0]) snprintf(exe, exen, "a.out");
  rc = sh_out(&out, "cd '%s' && PATH='%s/bin':\"$PATH\" sh build.sh 2>&1", dir,
              g_dir);
  if (rc != 0)
    fprintf(stderr, "%s: the build line failed:\n%s%s", e->doc, x->build, out);
  free(out);
  assert_int_equal(rc, 0);
}

static int cmp_lines(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* text with its lines sorted (modified in place; returns a new string). */
static char *sorted_lines(char *text) {
  char *lines[256];
  size_t n = 0;
  for (char *save, *l = strtok_r(text, "\n", &save); l && n < 256;
       l = strtok_r(NULL, "\n", &save))
    lines[n++] = l;
  qsort(lines, n, sizeof *lines, cmp_lines);
  char *out = NULL;
  append(&out, "", 0);
  for (size_t i = 0; i < n; i++) {
    append(&out, lines[i], strlen(lines[i]));
    append(&out, "\n", 1);
  }
  return out;
}

static void test_doc_programs(void **state) {
  (void)state;
  for (size_t i = 0; i < N_DOC_PROGRAMS; i++) {
    const doc_program *e = &doc_programs[i];
    extracted x;
    char dir[PATH_MAX + 64], exe[256];
    build_doc_program(e, &x, dir, sizeof dir, exe, sizeof exe);
    if (e->run) {
      if (!x.output) fail_msg("%s: no output shown after the program", e->doc);
      char *out;
      int rc = sh_out(&out, "cd '%s' && timeout 60 './%s' 2>&1", dir, exe);
      if (e->any_order) {
        char *got = sorted_lines(out), *want = sorted_lines(x.output);
        assert_string_equal(got, want);
        free(got);
        free(want);
      } else {
        assert_string_equal(out, x.output);
      }
      free(out);
      assert_int_equal(rc, 0);
    }
    extracted_free(&x);
  }
}

/* Every build line of README.md and the pages of docs/ is one that an entry
 * above runs (a new documented program needs an entry here). */
static void check_build_lines_of(const char *doc, char **tested, size_t n) {
  FILE *in = fopen(doc, "r");
  assert_non_null(in);
  char line[2048];
  int no = 0;
  while (fgets(line, sizeof line, in)) {
    no++;
    const char *l = skip_blanks(line);
    if (strstr(l, "`cc "))
      fail_msg(
          "%s:%d: a build line in running text; put it in a code block "
          "after its program and give it an entry in "
          "tests/test_readme.c",
          doc, no);
    if (strncmp(l, "cc ", 3)) continue;
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
      found = !strncmp(tested[i], l, strlen(l));
    if (!found) fail_msg("%s:%d: a build line no test runs: %s", doc, no, l);
  }
  fclose(in);
}

static void test_every_build_line_is_run(void **state) {
  (void)state;
  char *tested[N_DOC_PROGRAMS + 1];
  extracted x;
  for (size_t i = 0; i <= N_DOC_PROGRAMS; i++) {
    const doc_program *e =
        i < N_DOC_PROGRAMS ? &doc_programs[i] : &readme_program;
    assert_int_equal(extract_doc_program(e, &x), 0);
    tested[i] = x.build;
    x.build = NULL;
    extracted_free(&x);
  }
  check_build_lines_of("README.md", tested, N_DOC_PROGRAMS + 1);
  DIR *d = opendir("docs");
  assert_non_null(d);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t len = strlen(de->d_name);
    if (len < 4 || strcmp(de->d_name + len - 3, ".md")) continue;
    char path[300];
    snprintf(path, sizeof path, "docs/%s", de->d_name);
    check_build_lines_of(path, tested, N_DOC_PROGRAMS + 1);
  }
  closedir(d);
  for (size_t i = 0; i <= N_DOC_PROGRAMS; i++) free(tested[i]);
}

static const char expected_output[] =
    "inserted 1000 rows\n"
    "first: author 1, last: author 100\n"
    "adults: 792\n";

static char g_readme_exe[PATH_MAX + 400]; /* the README program, built */

static void build_readme_program(void) {
  extracted x;
  char dir[PATH_MAX + 64], exe[256];
  build_doc_program(&readme_program, &x, dir, sizeof dir, exe, sizeof exe);
  extracted_free(&x);
  snprintf(g_readme_exe, sizeof g_readme_exe, "%s/%s", dir, exe);
}

static void test_readme_program_postgresql(void **state) {
  (void)state;
  dorm_test_skip_without_pg();
  const char *pg = dorm_test_pg_conninfo();
  build_readme_program();
  char *out;
  /* twice: the program drops its table first, so it runs again */
  for (int i = 0; i < 2; i++) {
    int rc = sh_out(&out, "DATABASE_URL='%s' timeout 60 %s", pg, g_readme_exe);
    assert_string_equal(out, expected_output);
    free(out);
    assert_int_equal(rc, 0);
  }
  /* a server that is not there: the error, and exit 1 */
  int rc = sh_out(&out,
                  "DATABASE_URL='postgresql://nobody@127.0.0.1:1/x' "
                  "timeout 60 %s 2>&1",
                  g_readme_exe);
  assert_non_null(strstr(out, "error: postgresql: connection to server"));
  free(out);
  assert_int_equal(rc, 1);
}

static void test_readme_program_sqlite(void **state) {
  (void)state;
  build_readme_program();
  char *out;
  int rc = sh_out(&out, "DATABASE_URL='sqlite:///%s/readme.db' timeout 60 %s",
                  g_dir, g_readme_exe);
  assert_string_equal(out, expected_output);
  free(out);
  assert_int_equal(rc, 0);
}

/* The README's build line for an installed dorm: from "cc prog.c" to the
 * end of "$(pkg-config --cflags --libs dorm)", written to cmd. */
static int readme_installed_build_line(char *cmd, size_t cap) {
  static const char tail[] = "$(pkg-config --cflags --libs dorm)";
  FILE *in = fopen("README.md", "r");
  if (!in) return -1;
  char line[1024];
  int found = -1;
  while (found < 0 && fgets(line, sizeof line, in)) {
    char *start = strstr(line, "cc prog.c");
    char *end = start ? strstr(start, tail) : NULL;
    if (!end) continue;
    snprintf(cmd, cap, "%.*s", (int)(end + sizeof tail - 1 - start), start);
    found = 0;
  }
  fclose(in);
  return found;
}

static void test_readme_program_installed(void **state) {
  (void)state;
  if (strstr(g_build, "build-san") || strstr(g_build, "build-tsan"))
    skip(); /* the plain build's run installs and checks the tree */
  char *out;
  /* a make of its own: not the suite's jobserver, if make started us */
  int rc = sh_out(&out,
                  "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s "
                  "--no-print-directory install PREFIX='%s/inst' 2>&1",
                  g_dir);
  if (rc != 0) fprintf(stderr, "make install:\n%s", out);
  free(out);
  assert_int_equal(rc, 0);

  /* libdorm.so -> libdorm.so.MAJOR -> libdorm.so.MAJOR.MINOR.PATCH, whose
   * soname is libdorm.so.MAJOR */
  char path[PATH_MAX], target[PATH_MAX];
  const char *soname = "libdorm.so." DORM_VERSION_STR(DORM_VERSION_MAJOR);
  const char *real = "libdorm.so." DORM_VERSION_STRING;
  snprintf(path, sizeof path, "%s/inst/lib/libdorm.so", g_dir);
  ssize_t n = readlink(path, target, sizeof target - 1);
  assert_true(n > 0);
  target[n] = '\0';
  assert_string_equal(target, soname);
  snprintf(path, sizeof path, "%s/inst/lib/%s", g_dir, soname);
  n = readlink(path, target, sizeof target - 1);
  assert_true(n > 0);
  target[n] = '\0';
  assert_string_equal(target, real);
  rc = sh_out(&out, "readelf -d '%s/inst/lib/%s' | grep SONAME", g_dir, real);
  assert_int_equal(rc, 0);
  char want[64];
  snprintf(want, sizeof want, "[%s]", soname);
  assert_non_null(strstr(out, want));
  free(out);
  rc = sh_out(&out,
              "PKG_CONFIG_PATH='%s/inst/lib/pkgconfig' "
              "pkg-config --modversion dorm",
              g_dir);
  assert_string_equal(out, DORM_VERSION_STRING "\n");
  free(out);
  assert_int_equal(rc, 0);

  /* the README's program, built with the README's line as written (the
   * variable exported: the shell expands $(pkg-config) before running cc) */
  char line[512];
  extracted x;
  assert_int_equal(extract_doc_program(&readme_program, &x), 0);
  write_file(g_dir, "prog.c", x.program);
  extracted_free(&x);
  if (readme_installed_build_line(line, sizeof line) != 0)
    fail_msg(
        "README.md has no `cc prog.c ... $(pkg-config --cflags --libs "
        "dorm)` line");
  rc = sh_out(&out,
              "cd '%s' && export PKG_CONFIG_PATH='%s/inst/lib/pkgconfig' && %s "
              "-o installed_prog 2>&1",
              g_dir, g_dir, line);
  if (rc != 0) fprintf(stderr, "%s:\n%s", line, out);
  free(out);
  assert_int_equal(rc, 0);
  /* it runs on the installed shared library, not a copy of the archive */
  rc = sh_out(&out, "LD_LIBRARY_PATH='%s/inst/lib' ldd '%s/installed_prog'",
              g_dir, g_dir);
  snprintf(path, sizeof path, "%s => %s/inst/lib/%s", soname, g_dir, soname);
  if (!strstr(out, path)) fprintf(stderr, "ldd:\n%s", out);
  assert_non_null(strstr(out, path));
  free(out);
  rc = sh_out(&out,
              "LD_LIBRARY_PATH='%s/inst/lib' "
              "DATABASE_URL='sqlite:///%s/installed.db' timeout 60 "
              "'%s/installed_prog'",
              g_dir, g_dir, g_dir);
  assert_string_equal(out, expected_output);
  free(out);
  assert_int_equal(rc, 0);
}

/* examples/pg_example.c: every step it prints, in order (the slow query
 * starts once the notification came back), and exit 0 */
static void test_pg_example(void **state) {
  (void)state;
  dorm_test_skip_without_pg();
  const char *pg = dorm_test_pg_conninfo();
  char *out;
  int rc =
      sh_out(&out, "DATABASE_URL='%s' timeout 60 %s/examples/pg_example 2>&1",
             pg, g_build);
  assert_string_equal(out,
                      "transaction committed\n"
                      "100 lookups in flight at once, 100 rows\n"
                      "notify on pg_example: all done\n"
                      "slow query: DORM_ETIMEDOUT\n");
  free(out);
  assert_int_equal(rc, 0);
}

/* examples/migrate_at_startup: migrates its new file at startup, then
 * uses the tables; run again, it finds nothing to migrate. */
static void test_migrate_at_startup(void **state) {
  (void)state;
  char *out;
  int rc = sh_out(&out,
                  "timeout 60 %s/examples/migrate_at_startup %s/startup.db "
                  "examples/blog/migrations 2>&1",
                  g_build, g_dir);
  assert_string_equal(out,
                      "applying 0001_initial\n"
                      "migrated: 1 applied\n"
                      "tags: 1\n");
  free(out);
  assert_int_equal(rc, 0);
  rc = sh_out(&out,
              "timeout 60 %s/examples/migrate_at_startup %s/startup.db "
              "examples/blog/migrations 2>&1",
              g_build, g_dir);
  assert_string_equal(out,
                      "migrated: 0 applied\n"
                      "tags: 2\n");
  free(out);
  assert_int_equal(rc, 0);
  /* a folder with a broken history: the error, and exit 1 */
  rc = sh_out(&out,
              "mkdir -p %s/bad && printf '{\"name\": \"0001_a\", "
              "\"dependencies\": [\"0000_gone\"], \"operations\": []}' > "
              "%s/bad/0001_a.json && timeout 60 "
              "%s/examples/migrate_at_startup %s/startup.db %s/bad 2>&1",
              g_dir, g_dir, g_build, g_dir, g_dir);
  assert_non_null(strstr(out, "error: "));
  assert_non_null(strstr(out, "0000_gone"));
  free(out);
  assert_int_equal(rc, 1);
}

int main(void) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = '\0';
  snprintf(g_build, sizeof g_build, "%s", dirname(dirname(self)));
  if (!mkdtemp(g_dir)) return 1;
  if (!getcwd(g_root, sizeof g_root)) return 1;
  /* the `cc` of the build lines: the real one, with -Werror, and the
   * sanitizers when this is the sanitizer build */
  char *real_cc = NULL;
  if (sh_out(&real_cc, "command -v cc") != 0) return 1;
  real_cc[strcspn(real_cc, "\n")] = '\0';
  char wrapper[PATH_MAX + 32];
  snprintf(wrapper, sizeof wrapper, "%s/bin", g_dir);
  mkdir(wrapper, 0755);
  snprintf(wrapper, sizeof wrapper, "%s/bin/cc", g_dir);
  FILE *w = fopen(wrapper, "w");
  if (!w) return 1;
  fprintf(w,
          "#!/bin/sh\nexec '%s' -Wall -Wextra -Werror -Wno-unused-parameter %s "
          "\"$@\"\n",
          real_cc,
          strstr(g_build, "build-san")
              ? "-fsanitize=address,undefined -fno-omit-frame-pointer"
              : "");
  fclose(w);
  free(real_cc);
  chmod(wrapper, 0755);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_readme_program_postgresql),
      cmocka_unit_test(test_readme_program_sqlite),
      cmocka_unit_test(test_readme_program_installed),
      cmocka_unit_test(test_pg_example),
      cmocka_unit_test(test_doc_programs),
      cmocka_unit_test(test_every_build_line_is_run),
      cmocka_unit_test(test_migrate_at_startup),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  char *out;
  sh_out(&out, "rm -rf '%s'", g_dir);
  free(out);
  return failed;
}
