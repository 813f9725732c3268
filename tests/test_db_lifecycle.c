/* SPDX-License-Identifier: MIT */
/* tests/test_db_lifecycle.c — the database facade on every backend,
 * transactions (commit, rollback, nesting, a failing step), every callback
 * exactly once on the loop thread, and closing with requests pending.
 *
 * tests/dbsuite.h runs every test once per backend (SQLite file and
 * memory, PostgreSQL, and through replicas and PgBouncer when the run has
 * the cluster).
 */
#include "dbsuite.h"

/* ---- transactions ------------------------------------------------------- */

static dorm_deferred *insert_in(dorm_db *tx, const char *name) {
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str(name));
  dorm_deferred *d = dorm_async_create(tx, q);
  dorm_query_free(q);
  return d;
}

static int64_t count_named(const char *name) {
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "name", dorm_str(name));
  int64_t n = t_count(dorm_async_count(DB, q));
  dorm_query_free(q);
  return n;
}

static dorm_deferred *body_commit(dorm_db *tx, void *arg) {
  (void)arg;
  t_on_loop_thread();
  assert_true(dorm_db_in_transaction(tx));
  insert_in(tx, "t1"); /* not chained: still runs before COMMIT */
  return insert_in(tx, "t2");
}

static dorm_result fail_step(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  return dorm_result_error(DORM_EINVAL, "changed my mind");
}

static dorm_deferred *body_rollback(dorm_db *tx, void *arg) {
  (void)arg;
  insert_in(tx, "r1");
  dorm_deferred *d = insert_in(tx, "r2");
  dorm_deferred_add_callback(d, fail_step, NULL);
  return d;
}

static dorm_deferred *body_inner_fails(dorm_db *tx, void *arg) {
  (void)arg;
  return body_rollback(tx, NULL);
}

static int g_inner_code;
static dorm_result note_inner(dorm_result *res, void *arg) {
  (void)arg;
  g_inner_code = dorm_result_code(res);
  return dorm_result_none(); /* recover: the outer block goes on */
}

static dorm_db *g_tx;
static dorm_result after_inner(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  dorm_deferred *d = insert_in(g_tx, "o2");
  return d ? dorm_result_deferred(d) : dorm_result_error(DORM_ENOMEM, NULL);
}

static dorm_deferred *body_nested(dorm_db *tx, void *arg) {
  (void)arg;
  g_tx = tx;
  insert_in(tx, "o1");
  dorm_deferred *inner = dorm_async_atomic(tx, body_inner_fails, NULL);
  dorm_deferred_add_errback(inner, note_inner, NULL);
  dorm_deferred_add_callback(inner, after_inner, NULL);
  return inner;
}

static dorm_deferred *body_bad_query(dorm_db *tx, void *arg) {
  (void)arg;
  insert_in(tx, "b1");
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str("b2"));
  dorm_set(q, "email", dorm_str("same"));
  dorm_async_create(tx, q);
  dorm_deferred *d = dorm_async_create(tx, q); /* unique violation */
  dorm_query_free(q);
  return d;
}

static void test_transactions(void **state) {
  (void)state;
  dorm_result r = t_ok(dorm_async_atomic(DB, body_commit, NULL));
  assert_int_equal(r.kind, DORM_RESULT_ROW); /* the block's result */
  assert_string_equal(dorm_row_text(r.u.row.row, "name"), "t2");
  dorm_result_free(&r);
  assert_int_equal(count_named("t1"), 1);
  assert_int_equal(count_named("t2"), 1);

  char msg[128];
  assert_int_equal(
      t_err(dorm_async_atomic(DB, body_rollback, NULL), msg, sizeof msg),
      DORM_EINVAL);
  assert_string_equal(msg, "changed my mind");
  assert_int_equal(count_named("r1"), 0);
  assert_int_equal(count_named("r2"), 0);

  g_inner_code = 0;
  r = t_ok(dorm_async_atomic(DB, body_nested, NULL));
  dorm_result_free(&r);
  assert_int_equal(g_inner_code, DORM_EINVAL);
  assert_int_equal(count_named("o1"), 1);
  assert_int_equal(count_named("r1"), 0); /* rolled back to the savepoint */
  assert_int_equal(count_named("o2"), 1);

  assert_int_equal(t_err(dorm_async_atomic(DB, body_bad_query, NULL), NULL, 0),
                   DORM_EINTEGRITY);
  assert_int_equal(count_named("b1"), 0);
  assert_int_equal(count_named("b2"), 0);

  /* a write outside the transaction waits for it and then goes through */
  dorm_deferred *a = dorm_async_atomic(DB, body_commit, NULL);
  dorm_deferred *w = insert_in(DB, "outside");
  t_wait ww = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(w, t_keep, &ww), 0);
  r = t_ok(a);
  dorm_result_free(&r);
  while (!ww.done) uv_run(&T_uv, UV_RUN_ONCE);
  assert_false(dorm_result_is_error(&ww.res));
  dorm_result_free(&ww.res);
  assert_int_equal(count_named("outside"), 1);
  assert_int_equal(count_named("t1"), 2);
}

/* ---- callbacks: exactly once, on the loop thread, never inside ---------- */

static int g_in_call;
static long g_ok, g_err;
static dorm_result count_ok(dorm_result *res, void *arg) {
  (void)arg;
  t_on_loop_thread();
  assert_false(g_in_call);
  g_ok++;
  return *res;
}
static dorm_result count_err(dorm_result *res, void *arg) {
  int *seen = arg;
  t_on_loop_thread();
  assert_false(g_in_call);
  (*seen)++;
  g_err++;
  (void)res;
  return dorm_result_none();
}

static void test_callbacks_once(void **state) {
  (void)state;
  seed();
  enum { N = 300 };
  static int seen[N];
  memset(seen, 0, sizeof seen);
  g_ok = g_err = 0;
  for (int i = 0; i < N; i++) {
    dorm_query *q = dorm_select(Author);
    dorm_filter(q, "age__gte", dorm_int(i % 50));
    g_in_call = 1;
    dorm_deferred *d;
    switch (i % 4) {
      case 0: d = dorm_async_filter(DB, q); break;
      case 1: d = dorm_async_count(DB, q); break;
      case 2: d = dorm_async_get(DB, q); break; /* often an error */
      default: d = insert_in(DB, "many"); break;
    }
    g_in_call = 0;
    assert_non_null(d);
    assert_false(dorm_deferred_fired(d));
    dorm_deferred_add_callbacks(d, count_ok, count_err, &seen[i]);
    dorm_deferred_add_errback(d, count_err, &seen[i]);
    dorm_query_free(q);
  }
  while (g_ok + g_err < N) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(g_ok + g_err, N);
  for (int i = 0; i < N; i++) assert_true(seen[i] <= 1);
  assert_int_equal(count_named("many"), N / 4);
}

/* ---- closing with requests pending --------------------------------------- */

static long g_closed_err, g_closed_ok;
static dorm_result on_closed_result(dorm_result *res, void *arg) {
  (void)arg;
  t_on_loop_thread();
  if (dorm_result_is_error(res)) {
    assert_int_equal(dorm_result_code(res), DORM_ECLOSED);
    g_closed_err++;
  } else {
    g_closed_ok++;
  }
  return dorm_result_none();
}

static dorm_deferred *body_never_ends(dorm_db *tx, void *arg) {
  (void)arg;
  return insert_in(tx, "never");
}

static void test_close_pending(void **state) {
  (void)state;
  seed();
  g_closed_err = g_closed_ok = 0;
  enum { N = 200 };
  for (int i = 0; i < N; i++) {
    dorm_query *q = dorm_select(Author);
    dorm_deferred *d =
        i % 2 ? dorm_async_filter(DB, q) : insert_in(DB, "pending");
    dorm_deferred_add_both(d, on_closed_result, NULL);
    dorm_query_free(q);
  }
  dorm_deferred *a = dorm_async_atomic(DB, body_never_ends, NULL);
  dorm_deferred_add_both(a, on_closed_result, NULL);
  dorm_deferred *ready = dorm_db_ready(DB);
  dorm_deferred_add_both(ready, on_closed_result, NULL);
  dorm_db_close(DB, t_db_closed_cb, NULL);
  /* every pending request has failed, inside the close (the ready
   * deferred may have had its answer already: it fires on the next turn) */
  assert_true(g_closed_err + g_closed_ok >= N + 1);
  /* requests after close fail too, through the errback */
  dorm_query *q = dorm_select(Author);
  assert_int_equal(t_err(dorm_async_filter(DB, q), NULL, 0), DORM_ECLOSED);
  dorm_query_free(q);
  uv_run(&T_uv, UV_RUN_DEFAULT); /* returns: nothing of the db is left */
  assert_int_equal(T_db_closed, 1);
  assert_int_equal(g_closed_err + g_closed_ok, N + 2);
  assert_true(g_closed_err >= N + 1);
  DB = NULL;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_transactions),
      T(test_callbacks_once),
      T(test_close_pending),
  };
  return dbsuite_main(tests);
}
