/* tests/test_readme.c — the README's complete program and the PostgreSQL
 * example, built and run as a newcomer would.
 *
 * The README's "A complete program" block (the ```c block after the line
 * naming this file) is cut out of README.md, compiled with the build line
 * the README gives, against this test's own build of libdorm.a (build-san/
 * with the sanitizers), and run on the throwaway PostgreSQL of the suite
 * (DORM_TEST_PG) and on a new SQLite file: its output is checked line by
 * line, so a README that no longer compiles, or a program that says
 * something else, fails here.  examples/pg_example is run the same way,
 * and examples/migrate_at_startup (twice on one new SQLite file: the
 * second run has nothing to migrate).
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
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_readme_program_postgresql),
      cmocka_unit_test(test_readme_program_sqlite),
      cmocka_unit_test(test_pg_example),
      cmocka_unit_test(test_migrate_at_startup),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  char *out;
  sh_out(&out, "rm -rf '%s'", g_dir);
  free(out);
  return failed;
}
