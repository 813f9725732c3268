/* SPDX-License-Identifier: MIT */
/* tests/support/support.c — the failing allocator and small file helpers
 * the test programs share. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "dorm/error.h"

/* Atomic: SQLite's worker threads allocate through dorm too. */
static long g_fail_at;
static long g_count;
static int g_paused;
static int g_once;

static int fails(void) {
  if (__atomic_load_n(&g_paused, __ATOMIC_SEQ_CST)) return 0;
  long c = __atomic_add_fetch(&g_count, 1, __ATOMIC_SEQ_CST);
  long at = __atomic_load_n(&g_fail_at, __ATOMIC_SEQ_CST);
  return at > 0 && (g_once ? c == at : c >= at);
}

static void *fail_malloc(size_t n) { return fails() ? NULL : malloc(n); }

static void *fail_realloc(void *p, size_t n) {
  return fails() ? NULL : realloc(p, n);
}

void dorm_test_alloc_pause(int paused) {
  __atomic_store_n(&g_paused, paused, __ATOMIC_SEQ_CST);
}

void dorm_test_fail_alloc_once(long n) {
  dorm_test_fail_alloc_at(n);
  __atomic_store_n(&g_once, 1, __ATOMIC_SEQ_CST);
  /* jansson does not survive one failure followed by successes (2.14:
   * its parser double-frees or asserts, its dump leaves a key out), so
   * in this mode its allocations do not fail */
  json_set_alloc_funcs(malloc, free);
}

void dorm_test_fail_alloc_at(long n) {
  __atomic_store_n(&g_once, 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&g_fail_at, n, __ATOMIC_SEQ_CST);
  __atomic_store_n(&g_count, 0, __ATOMIC_SEQ_CST);
  dorm_set_allocator(fail_malloc, fail_realloc, free);
}

long dorm_test_alloc_count(void) {
  return __atomic_load_n(&g_count, __ATOMIC_SEQ_CST);
}

void dorm_test_alloc_reset(void) {
  __atomic_store_n(&g_fail_at, 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&g_count, 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&g_paused, 0, __ATOMIC_SEQ_CST);
  dorm_set_allocator(NULL, NULL, NULL);
}

char *dorm_test_read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = '\0';
  fclose(f);
  return s;
}

int dorm_test_count_from(const char *text, size_t from, const char *needle) {
  int n = 0;
  size_t len = strlen(text);
  for (const char *p = text + (from < len ? from : len);
       (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

const char *dorm_test_pg_conninfo(void) {
  const char *c = getenv("DORM_TEST_PG");
  return c && *c ? c : NULL;
}

void dorm_test_skip_without_pg(void) {
  if (dorm_test_pg_conninfo()) return;
  printf(
      "[ SKIPPED  ] needs PostgreSQL: DORM_TEST_PG is not set "
      "(docs/testing.md)\n");
  skip();
}

void dorm_test_exit_without_pg(const char *program) {
  if (dorm_test_pg_conninfo()) return;
  printf(
      "[ SKIPPED  ] %s needs PostgreSQL: DORM_TEST_PG is not set "
      "(docs/testing.md)\n",
      program);
  exit(77);
}

void dorm_test_sqlite_temp(const char *prefix, char *path, size_t path_cap,
                           char *url, size_t url_cap) {
  snprintf(path, path_cap, "/tmp/%s.XXXXXX", prefix);
  int fd = mkstemp(path);
  if (fd >= 0) close(fd);
  unlink(path); /* SQLite creates it; only the unique name was wanted */
  snprintf(url, url_cap, "sqlite:///%s", path);
}

void dorm_test_sqlite_remove(const char *path) {
  char p[4096];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

int dorm_test_pg_fresh_schema(const char *prefix, char *buf, size_t cap) {
  const char *c = dorm_test_pg_conninfo();
  if (!c) return -1;
  static int n;
  char schema[64], sql[128];
  snprintf(schema, sizeof schema, "%s_%d_%d", prefix, (int)getpid(), ++n);
  PGconn *pg = PQconnectdb(c);
  if (PQstatus(pg) != CONNECTION_OK) {
    fprintf(stderr, "dorm_test_pg_fresh_schema: %s", PQerrorMessage(pg));
    PQfinish(pg);
    return -1;
  }
  snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
  PGresult *r = PQexec(pg, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) fprintf(stderr, "dorm_test_pg_fresh_schema: %s", PQerrorMessage(pg));
  PQclear(r);
  PQfinish(pg);
  if (!ok) return -1;
  snprintf(buf, cap, "%s options='-csearch_path=%s'", c, schema);
  return 0;
}

void dorm_test_run_dorm_script(const char *script, const char *argv0,
                               const char *kind) {
  char dorm[1024], cmd[2400];
  const char *slash = argv0 ? strstr(argv0, "/tests/") : NULL;
  if (slash)
    snprintf(dorm, sizeof dorm, "%.*s/dorm", (int)(slash - argv0), argv0);
  else
    snprintf(dorm, sizeof dorm, "build/dorm");
  snprintf(cmd, sizeof cmd, "sh %s '%s' %s 2>&1", script, dorm, kind);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char line[1024];
  while (fgets(line, sizeof line, p)) fputs(line, stderr);
  int st = pclose(p);
  if (st != 0) fail_msg("%s %s failed (status %d)", script, kind, st);
}
