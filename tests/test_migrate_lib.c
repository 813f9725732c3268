/* SPDX-License-Identifier: MIT */
/* tests/test_migrate_lib.c — dorm_async_migrate, the library's migrate, on
 * a real SQLite file and a real PostgreSQL schema: apply all, a target by
 * prefix, "zero", a plan that changes nothing, a history with two leaves
 * refused naming both, an unknown target, and a failing migration that is
 * rolled back alone and named in the error.  The progress and finished
 * callbacks are recorded and compared in order; every deferred is awaited
 * through t_await, which checks it fires once, after the call returned.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "dbtest.h"
#include "support/support.h"

/* ---- a migrations folder ---------------------------------------------------
 */

static char g_dir[256];

static void put(const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void drop(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  unlink(path);
}

static void make_dir(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/dorm-migrate-lib.%ld", (long)getpid());
  mkdir(g_dir, 0700);
  put("0001_initial.json",
      "{\"name\": \"0001_initial\", \"dependencies\": [], \"operations\": ["
      "{\"op\": \"create_model\", \"name\": \"Author\", \"table\": "
      "\"author\", \"fields\": [{\"name\": \"id\", \"type\": \"auto\", "
      "\"primary_key\": true}, {\"name\": \"name\", \"type\": \"varchar\", "
      "\"max_length\": 100}]}]}\n");
  put("0002_author_age.json",
      "{\"name\": \"0002_author_age\", \"dependencies\": [\"0001_initial\"], "
      "\"operations\": [{\"op\": \"add_field\", \"model\": \"Author\", "
      "\"field\": {\"name\": \"age\", \"type\": \"integer\", \"default\": "
      "0}}]}\n");
  put("0003_tag.json",
      "{\"name\": \"0003_tag\", \"dependencies\": [\"0002_author_age\"], "
      "\"operations\": [{\"op\": \"create_model\", \"name\": \"Tag\", "
      "\"table\": \"tag\", \"fields\": [{\"name\": \"id\", \"type\": "
      "\"auto\", \"primary_key\": true}, {\"name\": \"label\", \"type\": "
      "\"varchar\", \"max_length\": 50}]}]}\n");
}

static void remove_dir(void) {
  drop("0001_initial.json");
  drop("0002_author_age.json");
  drop("0003_tag.json");
  drop("0004_bad.json");
  drop("0002_other.json");
  rmdir(g_dir);
}

/* ---- what the callbacks saw ------------------------------------------------
 */

typedef struct seen {
  char log[1024]; /* "+0001_initial ok;-0003_tag failed;" */
} seen;

static void on_progress(void *arg, const char *name, dorm_migrate_direction d) {
  t_on_loop_thread();
  seen *s = arg;
  size_t n = strlen(s->log);
  snprintf(s->log + n, sizeof s->log - n, "%c%s",
           d == DORM_MIGRATE_BACKWARDS ? '-' : '+', name);
}

static void on_finished(void *arg, const char *name, dorm_migrate_outcome o) {
  t_on_loop_thread();
  seen *s = arg;
  size_t n = strlen(s->log);
  static const char *const words[] = {" ok;", " faked;", " skipped;",
                                      " failed;"};
  (void)name;
  snprintf(s->log + n, sizeof s->log - n, "%s", words[o]);
}

/* Migrate to target; the count it succeeds with (or -1 and msg filled on
 * an error); s->log reset first. */
static long migrate(dorm_db *db, const char *target, int plan, seen *s,
                    char *msg, size_t cap) {
  s->log[0] = '\0';
  dorm_migrate_options o;
  memset(&o, 0, sizeof o);
  o.progress = on_progress;
  o.finished = on_finished;
  o.arg = s;
  o.plan = plan;
  dorm_result r = t_await(dorm_async_migrate(db, g_dir, target, &o));
  if (dorm_result_is_error(&r)) {
    if (msg) snprintf(msg, cap, "%s", dorm_result_message(&r));
    dorm_result_free(&r);
    return -1;
  }
  assert_int_equal(r.kind, DORM_RESULT_COUNT);
  long n = (long)r.u.count;
  dorm_result_free(&r);
  return n;
}

/* 1 when sql runs without an error. */
static int runs(dorm_db *db, const char *sql) {
  dorm_result r = t_await(dorm_async_execute(db, sql, NULL, 0));
  int ok = !dorm_result_is_error(&r);
  dorm_result_free(&r);
  return ok;
}

static long applied_count(dorm_db *db) {
  dorm_result r =
      t_ok(dorm_async_execute(db, "SELECT name FROM dorm_migrations", NULL, 0));
  long n = (long)dorm_rows_count(dorm_result_rows_of(&r));
  dorm_result_free(&r);
  return n;
}

/* dorm_async_migrations_applied, joined by spaces into buf. */
static const char *applied_names(dorm_db *db, char *buf, size_t cap) {
  dorm_result r = t_ok(dorm_async_migrations_applied(db));
  assert_int_equal(r.kind, DORM_RESULT_PTR);
  const dorm_migration_names *n = r.u.ptr.ptr;
  buf[0] = '\0';
  for (size_t i = 0; i < n->n; i++) {
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "%s%s", i ? " " : "", n->names[i]);
  }
  dorm_result_free(&r);
  return buf;
}

static void walk(const char *url) {
  t_loop_open();
  make_dir();
  dorm_db *db = t_open_ready(url, NULL);
  seen s;
  char msg[1024], names[512];

  /* nothing applied yet, and asking creates nothing */
  assert_string_equal(applied_names(db, names, sizeof names), "");
  assert_false(runs(db, "SELECT 1 FROM dorm_migrations"));

  /* a target by prefix: it and its ancestors */
  assert_int_equal(migrate(db, "0002", 0, &s, msg, sizeof msg), 2);
  assert_string_equal(s.log, "+0001_initial ok;+0002_author_age ok;");
  assert_true(runs(db, "SELECT age FROM author"));
  assert_false(runs(db, "SELECT label FROM tag"));
  assert_string_equal(applied_names(db, names, sizeof names),
                      "0001_initial 0002_author_age");

  /* all the rest, then nothing */
  assert_int_equal(migrate(db, NULL, 0, &s, msg, sizeof msg), 1);
  assert_string_equal(s.log, "+0003_tag ok;");
  assert_true(runs(db, "SELECT label FROM tag"));
  assert_int_equal(migrate(db, NULL, 0, &s, msg, sizeof msg), 0);
  assert_string_equal(s.log, "");

  /* a plan changes nothing */
  assert_int_equal(migrate(db, "zero", 1, &s, msg, sizeof msg), 3);
  assert_string_equal(s.log, "-0003_tag-0002_author_age-0001_initial");
  assert_int_equal(applied_count(db), 3);

  /* backwards to a target: what depends on it, newest first */
  assert_int_equal(migrate(db, "0001_initial", 0, &s, msg, sizeof msg), 2);
  assert_string_equal(s.log, "-0003_tag ok;-0002_author_age ok;");
  assert_false(runs(db, "SELECT age FROM author"));
  assert_true(runs(db, "SELECT name FROM author"));

  /* zero: everything */
  assert_int_equal(migrate(db, "zero", 0, &s, msg, sizeof msg), 1);
  assert_string_equal(s.log, "-0001_initial ok;");
  assert_false(runs(db, "SELECT name FROM author"));
  assert_int_equal(applied_count(db), 0);
  assert_int_equal(migrate(db, NULL, 0, &s, msg, sizeof msg), 3);

  /* a failing migration: rolled back alone, named with its operation */
  put("0004_bad.json",
      "{\"name\": \"0004_bad\", \"dependencies\": [\"0003_tag\"], "
      "\"operations\": [{\"op\": \"add_field\", \"model\": \"Tag\", "
      "\"field\": {\"name\": \"slug\", \"type\": \"varchar\", "
      "\"max_length\": 50, \"default\": \"\"}}, {\"op\": \"run_sql\", "
      "\"sql\": \"SELECT * FROM no_such_table_here\"}]}\n");
  assert_int_equal(migrate(db, NULL, 0, &s, msg, sizeof msg), -1);
  assert_string_equal(s.log, "+0004_bad failed;");
  assert_non_null(strstr(msg, "migration 0004_bad failed at operation 2"));
  assert_non_null(strstr(msg, "nothing of it was applied"));
  assert_false(runs(db, "SELECT slug FROM tag")); /* rolled back */
  assert_int_equal(applied_count(db), 3);         /* the others stay */
  drop("0004_bad.json");

  /* two leaves: refused before anything runs, naming both */
  put("0002_other.json",
      "{\"name\": \"0002_other\", \"dependencies\": [\"0001_initial\"], "
      "\"operations\": []}\n");
  assert_int_equal(migrate(db, NULL, 0, &s, msg, sizeof msg), -1);
  assert_string_equal(s.log, "");
  assert_non_null(strstr(msg, "conflicting migrations"));
  assert_non_null(strstr(msg, "0002_other"));
  assert_non_null(strstr(msg, "0003_tag"));
  assert_int_equal(applied_count(db), 3);
  drop("0002_other.json");

  /* an unknown target */
  assert_int_equal(migrate(db, "0009", 0, &s, msg, sizeof msg), -1);
  assert_non_null(strstr(msg, "no migration named '0009'"));
  assert_int_equal(applied_count(db), 3);

  t_loop_close(db);
  remove_dir();
}

/* Two programs migrating one database at once (two handles, two pools):
 * each migration is applied once, the other run skips it or finds
 * nothing to do, and neither fails. */
static void race(const char *url) {
  t_loop_open();
  make_dir();
  dorm_db *a = t_open_ready(url, NULL), *b = t_open_ready(url, NULL);
  seen sa = {{0}}, sb = {{0}};
  dorm_migrate_options oa, ob;
  memset(&oa, 0, sizeof oa);
  oa.progress = on_progress;
  oa.finished = on_finished;
  ob = oa;
  oa.arg = &sa;
  ob.arg = &sb;
  t_wait wa = {0, dorm_result_none()}, wb = {0, dorm_result_none()};
  dorm_deferred *da = dorm_async_migrate(a, g_dir, NULL, &oa);
  dorm_deferred *db_ = dorm_async_migrate(b, g_dir, NULL, &ob);
  assert_non_null(da);
  assert_non_null(db_);
  assert_int_equal(dorm_deferred_add_both(da, t_keep, &wa), 0);
  assert_int_equal(dorm_deferred_add_both(db_, t_keep, &wb), 0);
  while (!wa.done || !wb.done) uv_run(&T_uv, UV_RUN_ONCE);
  if (dorm_result_is_error(&wa.res) || dorm_result_is_error(&wb.res))
    fail_msg("a racing migrate failed: %s / %s",
             dorm_result_is_error(&wa.res) ? dorm_result_message(&wa.res) : "",
             dorm_result_is_error(&wb.res) ? dorm_result_message(&wb.res) : "");
  int ok = dorm_test_count_from(sa.log, 0, " ok;") +
           dorm_test_count_from(sb.log, 0, " ok;");
  if (ok != 3) fail_msg("applied %d times: [%s] [%s]", ok, sa.log, sb.log);
  printf("race on %s: [%s] [%s]\n",
         strncmp(url, "sqlite", 6) ? "postgresql" : "sqlite", sa.log, sb.log);
  assert_int_equal(applied_count(a), 3);
  dorm_result_free(&wa.res);
  dorm_result_free(&wb.res);
  dorm_db_close(b, NULL, NULL);
  t_loop_close(a);
  remove_dir();
}

static void test_sqlite(void **state) {
  (void)state;
  char path[256], url[300];
  dorm_test_sqlite_temp("migrate_lib", path, sizeof path, url, sizeof url);
  walk(url);
  dorm_test_sqlite_remove(path);
  dorm_test_sqlite_temp("migrate_lib_race", path, sizeof path, url, sizeof url);
  race(url);
  dorm_test_sqlite_remove(path);
}

static void test_postgresql(void **state) {
  (void)state;
  dorm_test_skip_without_pg();
  char conninfo[1024];
  if (dorm_test_pg_fresh_schema("mlib", conninfo, sizeof conninfo))
    fail_msg("no PostgreSQL (DORM_TEST_PG)");
  walk(conninfo);
  if (dorm_test_pg_fresh_schema("mlibr", conninfo, sizeof conninfo))
    fail_msg("no PostgreSQL (DORM_TEST_PG)");
  race(conninfo);
}

/* Cancelled at once: the deferred fails with DORM_ECANCELED and no
 * migration starts (the job still ends, and frees itself, later). */
static void test_cancel(void **state) {
  (void)state;
  char path[256], url[300];
  dorm_test_sqlite_temp("migrate_lib_cancel", path, sizeof path, url,
                        sizeof url);
  t_loop_open();
  make_dir();
  dorm_db *db = t_open_ready(url, NULL);
  seen s = {{0}};
  dorm_migrate_options o;
  memset(&o, 0, sizeof o);
  o.progress = on_progress;
  o.arg = &s;
  dorm_deferred *d = dorm_async_migrate(db, g_dir, NULL, &o);
  assert_non_null(d);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
  dorm_deferred_cancel(d);
  assert_int_equal(w.done, 1);
  assert_int_equal(dorm_result_code(&w.res), DORM_ECANCELED);
  dorm_result_free(&w.res);
  t_run_for(500);
  assert_string_equal(s.log, "");
  assert_false(runs(db, "SELECT name FROM author"));
  t_loop_close(db);
  remove_dir();
  dorm_test_sqlite_remove(path);
}

/* Bad input is refused with a clear error, through the deferred. */
static void test_bad_folder(void **state) {
  (void)state;
  char path[256], url[300];
  dorm_test_sqlite_temp("migrate_lib_bad", path, sizeof path, url, sizeof url);
  t_loop_open();
  dorm_db *db = t_open_ready(url, NULL);
  snprintf(g_dir, sizeof g_dir, "/tmp/dorm-migrate-lib-bad.%ld",
           (long)getpid());
  mkdir(g_dir, 0700);
  put("0001_x.json",
      "{\"name\": \"0001_x\", \"dependencies\": [\"nope\"], "
      "\"operations\": []}\n");
  char msg[1024];
  int code = t_err(dorm_async_migrate(db, g_dir, NULL, NULL), msg, sizeof msg);
  assert_int_equal(code, DORM_EMIGRATION);
  assert_non_null(strstr(msg, "nope"));
  drop("0001_x.json");
  rmdir(g_dir);
  t_loop_close(db);
  dorm_test_sqlite_remove(path);
}

int main(void) {
  (void)t_count; /* dbtest.h helpers this program does not need */
  (void)t_create_tables;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sqlite),
      cmocka_unit_test(test_postgresql),
      cmocka_unit_test(test_bad_folder),
      cmocka_unit_test(test_cancel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
