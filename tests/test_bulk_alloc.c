/* SPDX-License-Identifier: MIT */
/* tests/test_bulk_alloc.c — the bulk writes when memory runs out: every
 * allocation of bulk_create_returning (two chunks joined), bulk_update
 * (two chunks) and, on PostgreSQL, bulk_create by COPY fails in turn,
 * first from allocation N on, then only allocation N (recovery paths).
 * Each call must fire its deferred exactly once, with DORM_ENOMEM and
 * nothing written, or with exactly the result of a run without failures;
 * nothing may leak (SAN=1, valgrind).  The queries are built before the
 * failures start: the calls are under test, not the builder
 * (tests/test_alloc.c covers it).
 */
#include "dbtest.h"
#include "support/support.h"

#define MAX_N 100000
enum { NROWS = 520 }; /* past one chunk of 500 */

static dorm_schema *S;
static const dorm_model *Tag;

static void exec_ok(dorm_db *db, const char *sql) {
  dorm_result r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  dorm_result_free(&r);
}

static long scalar(dorm_db *db, const char *sql) {
  dorm_result r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  const dorm_rows *rows = dorm_result_rows_of(&r);
  assert_non_null(rows);
  const dorm_value *v = dorm_row_value_at(dorm_rows_row(rows, 0), 0);
  long n = v->type == DORM_T_INT ? (long)v->u.i : 0;
  dorm_result_free(&r);
  return n;
}

static dorm_query *tag_rows(const char *fmt, int with_id) {
  dorm_query *q = dorm_insert(Tag);
  for (int i = 0; i < NROWS; i++) {
    char name[32];
    if (i) dorm_insert_next_row(q);
    if (with_id) dorm_set(q, "id", dorm_int(i + 1));
    snprintf(name, sizeof name, fmt, i);
    dorm_set(q, "name", dorm_str(name));
  }
  return q;
}

/* op 0: bulk_create_returning; 1: bulk_update; 2: bulk_create (COPY on
 * PostgreSQL) */
static void reset(dorm_db *db, int op) {
  exec_ok(db, "DELETE FROM tag");
  if (op == 1) {
    dorm_query *q = tag_rows("t%04d", 1);
    assert_int_equal(t_count(dorm_async_bulk_create(db, q)), NROWS);
    dorm_query_free(q);
  }
}

static long state_of(dorm_db *db, int op) {
  if (op == 1)
    return scalar(db, "SELECT count(*) FROM tag WHERE name LIKE 'u%'");
  return scalar(db, "SELECT count(*) FROM tag");
}

static void check_result(int op, dorm_result *res) {
  if (op == 0) {
    const dorm_rows *rows = dorm_result_rows_of(res);
    assert_non_null(rows);
    assert_int_equal(dorm_rows_count(rows), NROWS);
    char name[32];
    snprintf(name, sizeof name, "n%04d", NROWS - 1);
    assert_string_equal(dorm_row_text(dorm_rows_row(rows, NROWS - 1), "name"),
                        name);
  } else {
    assert_int_equal(res->kind, DORM_RESULT_COUNT);
    assert_int_equal(res->u.count, NROWS);
  }
}

static void sweep(const char *url, int ops_from, int ops_to) {
  static const char *const names[] = {"bulk_create_returning", "bulk_update",
                                      "bulk_create"};
  t_loop_open();
  dorm_db *db = t_open_ready(url, NULL);
  static const char *const models[] = {"Tag", NULL};
  exec_ok(db, "DROP TABLE IF EXISTS tag");
  t_create_tables(db, S, models);
  const char *const fields[] = {"name"};
  for (int op = ops_from; op <= ops_to; op++) {
    dorm_query *q = tag_rows(op == 1 ? "u%04d" : "n%04d", op == 1);
    for (int once = 0; once < 2; once++) {
      long n, enomem = 0;
      for (n = 1; n < MAX_N; n++) {
        reset(db, op);
        t_wait w = {0, dorm_result_none()};
        if (once)
          dorm_test_fail_alloc_once(n);
        else
          dorm_test_fail_alloc_at(n);
        dorm_deferred *d = op == 0   ? dorm_async_bulk_create_returning(db, q)
                           : op == 1 ? dorm_async_bulk_update(db, q, fields, 1)
                                     : dorm_async_bulk_create(db, q);
        dorm_test_alloc_pause(1);
        if (d) assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
        dorm_test_alloc_pause(0);
        while (d && !w.done) uv_run(&T_uv, UV_RUN_ONCE);
        long used = dorm_test_alloc_count();
        dorm_test_alloc_reset();
        int ok = d && !dorm_result_is_error(&w.res);
        long st = state_of(db, op);
        if (ok) {
          check_result(op, &w.res);
          if (st != NROWS)
            fail_msg("%s, allocation %ld: success, and the state is %ld",
                     names[op], n, st);
        } else {
          int code = d ? dorm_result_code(&w.res) : DORM_ENOMEM;
          if (code != DORM_ENOMEM)
            fail_msg("%s, allocation %ld: %s %s", names[op], n,
                     dorm_err_name(code), dorm_result_message(&w.res));
          if (st != 0)
            fail_msg("%s, allocation %ld: failed, and the state is %ld",
                     names[op], n, st);
          enomem++;
        }
        dorm_result_free(&w.res);
        if (once ? used < n : ok) break;
      }
      assert_true(n < MAX_N);
      printf("%s (%s), %s: done at N = %ld (%ld DORM_ENOMEM)\n", names[op],
             dorm_db_backend_name(db),
             once ? "only allocation N fails" : "allocations N.. fail", n,
             enomem);
    }
    dorm_query_free(q);
  }
  t_loop_close(db);
}

static void test_sqlite(void **state) {
  (void)state;
  char path[256], url[300];
  dorm_test_sqlite_temp("dorm-test-bulk-alloc", path, sizeof path, url,
                        sizeof url);
  sweep(url, 0, 1);
  dorm_test_sqlite_remove(path);
}

static void test_pg_copy(void **state) {
  (void)state;
  dorm_test_skip_without_pg();
  char url[1024];
  assert_int_equal(dorm_test_pg_fresh_schema("ba", url, sizeof url), 0);
  sweep(url, 2, 2);
}

int main(void) {
  S = dorm_schema_load_file("tests/data/query_models.json", NULL);
  if (!S) return 1;
  Tag = dorm_schema_model(S, "Tag");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sqlite),
      cmocka_unit_test(test_pg_copy),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  dorm_schema_free(S);
  return rc;
}
