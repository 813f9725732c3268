/* SPDX-License-Identifier: MIT */
/* tests/support/support.h — helpers shared by the test programs.
 *
 * An allocator that fails the Nth allocation (jansson's test_chaos idea):
 * install it, run the code under test for N = 1, 2, ... until it succeeds,
 * and check that every failure came back as a clean DORM_ENOMEM with no
 * leak (ASan and valgrind watch the leak half).
 */
#ifndef DORM_TEST_SUPPORT_H
#define DORM_TEST_SUPPORT_H

#include <stddef.h>

/* Fail the n-th allocation from now (1-based) and every one after it until
 * reset; n = 0 turns failing off.  Installs itself as dorm's allocator. */
void dorm_test_fail_alloc_at(long n);
/* Fail only the n-th allocation from now (the ones after it succeed, as
 * when memory comes back): recovery paths.  jansson's allocations are left
 * out of this mode: jansson 2.14 itself does not survive it. */
void dorm_test_fail_alloc_once(long n);
/* Allocations seen since the last dorm_test_fail_alloc_at call. */
long dorm_test_alloc_count(void);
/* 1: allocations succeed and are not counted (the test's own steps);
 * 0: counting and failing resume. */
void dorm_test_alloc_pause(int paused);
/* Back to malloc/realloc/free. */
void dorm_test_alloc_reset(void);

/* Read a whole file into a malloc'd NUL-terminated string (NULL if absent). */
char *dorm_test_read_file(const char *path);
/* How many times needle occurs in text from byte `from` on (a log read
 * twice: count what was written in between). */
int dorm_test_count_from(const char *text, size_t from, const char *needle);

/* A fresh SQLite database file name under /tmp (the file itself does not
 * exist yet) and its sqlite:/// URL; prefix names the test. */
void dorm_test_sqlite_temp(const char *prefix, char *path, size_t path_cap,
                           char *url, size_t url_cap);
/* Remove a SQLite database file with its -wal and -shm companions. */
void dorm_test_sqlite_remove(const char *path);

/* The conninfo of the suite's throwaway PostgreSQL, or NULL when
 * DORM_TEST_PG is not set or empty: the run has no PostgreSQL. */
const char *dorm_test_pg_conninfo(void);

/* The rule for tests that need PostgreSQL (docs/testing.md): with no
 * DORM_TEST_PG a program runs what it can and skips the rest, saying so;
 * `sh tests/run.sh quick` runs every program that way, while the full
 * tests/run.sh always sets DORM_TEST_PG and counts a skipped program as
 * failed, so make test skips nothing.
 * dorm_test_skip_without_pg: inside a cmocka test, skip that test
 * (cmocka's skip()) when there is no server.
 * dorm_test_exit_without_pg: first thing in main of a program that can do
 * nothing without a server: exit 77 (skipped) when there is none. */
void dorm_test_skip_without_pg(void);

/* Inside a cmocka test: run `sh script DORM kind` (kind "sqlite" or
 * "postgresql"), DORM the dorm binary of the calling program's own build
 * (argv0 build/tests/test_x -> build/dorm; build-san too), its output on
 * stderr; fails the test unless the script exits 0. */
void dorm_test_run_dorm_script(const char *script, const char *argv0,
                               const char *kind);
void dorm_test_exit_without_pg(const char *program);

/* An empty database for one test: a new schema named <prefix>_<pid>_<n>
 * on the suite's PostgreSQL, and in buf (cap bytes) a conninfo that puts
 * it first on the search_path.  -1 when there is no server or the schema
 * cannot be made (said on stderr).  Blocking libpq: a test's set-up. */
int dorm_test_pg_fresh_schema(const char *prefix, char *buf, size_t cap);

#endif
