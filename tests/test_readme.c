/* tests/test_readme.c — the README's complete program and the PostgreSQL
 * example, built and run as a newcomer would.
 *
 * The README's "A complete program" block (the ```c block after the line
 * naming this file) is cut out of README.md, compiled with the build line
 * the README gives, against this test's own build of libdorm.a (build-san/
 * with the sanitizers), and run on the throwaway PostgreSQL of the suite
 * (DORM_TEST_PG) and on a new SQLite file: its output is checked line by
 * line, so a README that no longer compiles, or a program that says
 * something else, fails here.  examples/pg_example is run the same way.
 *
 * The same program is built as a user of an installed dorm builds it:
 * `make install PREFIX=<temp dir>`, then the README's line for that case
 * (`cc prog.c -o prog $(pkg-config --cflags --libs dorm)`, found in the
 * README and run as written) with PKG_CONFIG_PATH pointing into the tree,
 * and run against the installed libdorm.so.MAJOR on SQLite; the
 * versioned file names, the soname and dorm.pc's version are checked on
 * the way.
 */
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

#include "dorm/version.h"

static char g_build[PATH_MAX]; /* build or build-san, this test's own */
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

/* The ```c block that follows the line mentioning this file in README.md,
 * written to path.  Returns 0, or -1 when there is none. */
static int extract_readme_program(const char *path) {
  FILE *in = fopen("README.md", "r");
  if (!in) return -1;
  FILE *out = fopen(path, "w");
  assert_non_null(out);
  char line[1024];
  int state = 0; /* 0 before the marker, 1 before ```c, 2 inside, 3 done */
  while (state < 3 && fgets(line, sizeof line, in)) {
    if (state == 0 && strstr(line, "tests/test_readme.c"))
      state = 1;
    else if (state == 1 && !strncmp(line, "```c", 4))
      state = 2;
    else if (state == 2 && !strncmp(line, "```", 3))
      state = 3;
    else if (state == 2)
      fputs(line, out);
  }
  fclose(in);
  fclose(out);
  return state == 3 ? 0 : -1;
}

static const char expected_output[] =
    "inserted 1000 rows\n"
    "first: author 1, last: author 100\n"
    "adults: 792\n";

static void build_readme_program(void) {
  char src[PATH_MAX + 16];
  snprintf(src, sizeof src, "%s/prog.c", g_dir);
  assert_int_equal(extract_readme_program(src), 0);
  /* the README's build line, with this build's library (and its
   * sanitizers, when this is the sanitizer build) */
  const char *san = strstr(g_build, "build-san")
                        ? "-fsanitize=address,undefined -fno-omit-frame-pointer"
                        : "";
  char *out;
  int rc = sh_out(&out,
                  "cc -Wall -Wextra -Werror -Wno-unused-parameter %s %s "
                  "-o %s/prog -Iinclude %s/libdorm.a "
                  "$(pkg-config --libs libuv jansson sqlite3 libpq) "
                  "-lhttp_parser -lpthread -lm 2>&1",
                  san, src, g_dir, g_build);
  if (rc != 0) fprintf(stderr, "%s", out);
  free(out);
  assert_int_equal(rc, 0);
}

static void test_readme_program_postgresql(void **state) {
  (void)state;
  const char *pg = getenv("DORM_TEST_PG");
  if (!pg) fail_msg("DORM_TEST_PG is not set: no PostgreSQL to run against");
  build_readme_program();
  char *out;
  /* twice: the program drops its table first, so it runs again */
  for (int i = 0; i < 2; i++) {
    int rc = sh_out(&out, "DATABASE_URL='%s' timeout 60 %s/prog", pg, g_dir);
    assert_string_equal(out, expected_output);
    free(out);
    assert_int_equal(rc, 0);
  }
  /* a server that is not there: the error, and exit 1 */
  int rc = sh_out(&out,
                  "DATABASE_URL='postgresql://nobody@127.0.0.1:1/x' "
                  "timeout 60 %s/prog 2>&1",
                  g_dir);
  assert_non_null(strstr(out, "error: postgresql: connection to server"));
  free(out);
  assert_int_equal(rc, 1);
}

static void test_readme_program_sqlite(void **state) {
  (void)state;
  build_readme_program();
  char *out;
  int rc =
      sh_out(&out, "DATABASE_URL='sqlite:///%s/readme.db' timeout 60 %s/prog",
             g_dir, g_dir);
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
  char src[PATH_MAX + 16], line[512];
  snprintf(src, sizeof src, "%s/prog.c", g_dir);
  assert_int_equal(extract_readme_program(src), 0);
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
  const char *pg = getenv("DORM_TEST_PG");
  if (!pg) fail_msg("DORM_TEST_PG is not set: no PostgreSQL to run against");
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

int main(void) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = '\0';
  snprintf(g_build, sizeof g_build, "%s", dirname(dirname(self)));
  if (!mkdtemp(g_dir)) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_readme_program_postgresql),
      cmocka_unit_test(test_readme_program_sqlite),
      cmocka_unit_test(test_readme_program_installed),
      cmocka_unit_test(test_pg_example),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  char *out;
  sh_out(&out, "rm -rf '%s'", g_dir);
  free(out);
  return failed;
}
