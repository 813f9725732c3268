/* SPDX-License-Identifier: MIT */
/* tests/test_fixtures.c — dorm dumpdata and loaddata end to end: runs
 * tests/test_fixtures.sh (see there) against the dorm binary of this
 * test's own build (build/ or build-san/, so the sanitizers watch the
 * command too), on SQLite and on the suite's PostgreSQL.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "support/support.h"

static char dorm_bin[PATH_MAX];

static void walk(const char *kind) {
  char cmd[PATH_MAX + 128];
  snprintf(cmd, sizeof cmd, "sh tests/test_fixtures.sh '%s' %s 2>&1", dorm_bin,
           kind);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char line[1024];
  while (fgets(line, sizeof line, p)) fputs(line, stderr);
  int st = pclose(p);
  if (st != 0) fail_msg("tests/test_fixtures.sh %s failed (status %d)", kind, st);
}

static void test_fixtures_sqlite(void **state) {
  (void)state;
  walk("sqlite");
}

static void test_fixtures_postgresql(void **state) {
  (void)state;
  dorm_test_skip_without_pg();
  walk("postgresql");
}

int main(int argc, char **argv) {
  /* build/tests/test_fixtures -> build/dorm */
  const char *self = argc > 0 ? argv[0] : "build/tests/test_fixtures";
  const char *slash = strstr(self, "/tests/");
  if (slash)
    snprintf(dorm_bin, sizeof dorm_bin, "%.*s/dorm", (int)(slash - self), self);
  else
    snprintf(dorm_bin, sizeof dorm_bin, "build/dorm");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixtures_sqlite),
      cmocka_unit_test(test_fixtures_postgresql),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
