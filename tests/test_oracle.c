/* SPDX-License-Identifier: MIT */
/* tests/test_oracle.c — Django 3.2 as the oracle: runs tests/oracle/oracle.py
 * (random queries over seeded data, each through Django on PostgreSQL and
 * through `dorm query` on PostgreSQL and SQLite; see docs/oracle.md) on the
 * suite's fixed seeds, with the dorm binary of this test's own build
 * (build/ or build-san/, so the sanitizers watch the command too), against
 * the suite's PostgreSQL.  Any disagreement fails the test; the script
 * prints the query, the answers and the SQL of both sides.
 *
 * Under valgrind (DORM_UNDER_VALGRIND) the run is skipped: valgrind does
 * not follow the script's children, so it would watch only this wrapper.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "support/support.h"

static char dorm_bin[PATH_MAX];

static void test_fixed_seeds(void **state) {
  (void)state;
  if (getenv("DORM_UNDER_VALGRIND")) {
    fprintf(stderr, "test_oracle: skipped under valgrind\n");
    return;
  }
  dorm_test_skip_without_pg();
  char cmd[PATH_MAX + 128];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 tests/oracle/oracle.py --dorm '%s' 2>&1",
           dorm_bin);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char line[4096];
  while (fgets(line, sizeof line, p)) fputs(line, stderr);
  int st = pclose(p);
  if (st != 0)
    fail_msg(
        "tests/oracle/oracle.py: Django and dorm disagree, or the run "
        "failed (exit status %d)",
        WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int main(int argc, char **argv) {
  /* build/tests/test_oracle -> build/dorm */
  const char *self = argc > 0 ? argv[0] : "build/tests/test_oracle";
  const char *slash = strstr(self, "/tests/");
  if (slash)
    snprintf(dorm_bin, sizeof dorm_bin, "%.*s/dorm", (int)(slash - self), self);
  else
    snprintf(dorm_bin, sizeof dorm_bin, "build/dorm");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixed_seeds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
