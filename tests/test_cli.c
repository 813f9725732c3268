/* SPDX-License-Identifier: MIT */
/* tests/test_cli.c — the dorm command end to end: runs tests/test_cli.sh
 * (the walk of a real project, see there) against the dorm binary of this
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

static const char *g_argv0; /* this program: its build's dorm is used */

static void test_walk_sqlite(void **state) {
  (void)state;
  dorm_test_run_dorm_script("tests/test_cli.sh", g_argv0, "sqlite");
}

static void test_walk_postgresql(void **state) {
  (void)state;
  dorm_test_skip_without_pg();
  dorm_test_run_dorm_script("tests/test_cli.sh", g_argv0, "postgresql");
}

int main(int argc, char **argv) {
  g_argv0 = argc > 0 ? argv[0] : NULL;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_walk_sqlite),
      cmocka_unit_test(test_walk_postgresql),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
