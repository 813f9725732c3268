/* SPDX-License-Identifier: MIT */
/* tests/dbtest.h — helpers for tests that run queries on a real loop
 * (test_db_*.c, test_sqlite.c, ...): a loop per test, waiting for a
 * deferred by running the loop, and checks that every result arrives on
 * the loop thread, after the call that made it has returned, exactly once.
 *
 * Header-only (static functions) so each test program has its own copy.
 */
#ifndef DORM_TEST_DBTEST_H
#define DORM_TEST_DBTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "dorm.h"

static uv_loop_t T_uv;
static dorm_loop *T_loop;
static uv_thread_t T_main;
static long T_fired;    /* results delivered through await */
static int T_db_closed; /* close callbacks seen */

static void t_on_loop_thread(void) {
  uv_thread_t self = uv_thread_self();
  assert_true(uv_thread_equal(&self, &T_main));
}

static void t_loop_open(void) {
  T_main = uv_thread_self();
  assert_int_equal(uv_loop_init(&T_uv), 0);
  T_loop = dorm_loop_new(&T_uv);
  assert_non_null(T_loop);
  T_fired = 0;
  T_db_closed = 0;
}

static void t_db_closed_cb(void *arg) {
  (void)arg;
  t_on_loop_thread();
  T_db_closed++;
}

/* Close db (may be NULL) and the loop; the loop must then end and close
 * cleanly (nothing of dorm left on it). */
static void t_loop_close(dorm_db *db) {
  if (db) {
    dorm_db_close(db, t_db_closed_cb, NULL);
    uv_run(&T_uv, UV_RUN_DEFAULT);
    assert_int_equal(T_db_closed, 1);
  }
  dorm_loop_close(T_loop, NULL, NULL);
  uv_run(&T_uv, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&T_uv), 0);
}

typedef struct t_wait {
  int done;
  dorm_result res;
} t_wait;

static dorm_result t_keep(dorm_result *res, void *arg) {
  t_wait *w = arg;
  t_on_loop_thread();
  assert_int_equal(w->done, 0); /* exactly once */
  w->done = 1;
  w->res = dorm_result_take(res);
  T_fired++;
  return dorm_result_none();
}

/* Wait for d (just returned by an async call) and return its result, owned
 * by the caller (dorm_result_free).  Checks rule R2 of dorm/deferred.h: d
 * has not fired yet. */
static dorm_result t_await(dorm_deferred *d) {
  assert_non_null(d);
  assert_false(dorm_deferred_fired(d));
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
  while (!w.done) uv_run(&T_uv, UV_RUN_ONCE);
  return w.res;
}

/* Await and require success; print the error otherwise. */
static dorm_result t_ok(dorm_deferred *d) {
  dorm_result r = t_await(d);
  if (dorm_result_is_error(&r)) {
    fprintf(stderr, "unexpected error: %s: %s [%s]\n",
            dorm_err_name(dorm_result_code(&r)), dorm_result_message(&r),
            dorm_result_sqlstate(&r));
    fail();
  }
  return r;
}

/* Await an error and return its code (the result is freed). */
static inline int t_err(dorm_deferred *d, char *msg, size_t cap) {
  dorm_result r = t_await(d);
  if (!dorm_result_is_error(&r)) {
    fprintf(stderr, "expected an error, got result kind %d\n", r.kind);
    dorm_result_free(&r);
    fail();
  }
  int code = dorm_result_code(&r);
  if (msg) snprintf(msg, cap, "%s", dorm_result_message(&r));
  dorm_result_free(&r);
  return code;
}

static inline int64_t t_count(dorm_deferred *d) {
  dorm_result r = t_ok(d);
  assert_int_equal(r.kind, DORM_RESULT_COUNT);
  int64_t n = r.u.count;
  dorm_result_free(&r);
  return n;
}

static inline void t_noop_timer(uv_timer_t *t) { (void)t; }

/* Run the loop for about ms milliseconds (inline: not every test program
 * needs it). */
static inline void t_run_for(uint64_t ms) {
  uint64_t end = uv_now(&T_uv) + ms;
  uv_timer_t t;
  uv_timer_init(&T_uv, &t);
  uv_timer_start(&t, t_noop_timer, ms, 0);
  while (uv_now(&T_uv) < end) uv_run(&T_uv, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&T_uv, UV_RUN_NOWAIT);
}

/* Open url with o (may be NULL) and wait until it is connected; the test
 * fails with the reason otherwise. */
static inline dorm_db *t_open_ready(const char *url, const dorm_db_options *o) {
  dorm_error err;
  dorm_error_clear(&err);
  dorm_db *db = dorm_db_open(T_loop, url, o, &err);
  if (!db) {
    fprintf(stderr, "open: %s\n", err.message);
    fail();
  }
  dorm_result r = t_ok(dorm_db_ready(db));
  dorm_result_free(&r);
  return db;
}

/* Create every model of schema s (in the order given) with the DDL
 * compiler. */
static void t_create_tables(dorm_db *db, const dorm_schema *s,
                            const char *const *names) {
  for (size_t i = 0; names[i]; i++) {
    const dorm_model *m = dorm_schema_model(s, names[i]);
    assert_non_null(m);
    dorm_ddl ddl;
    dorm_ddl_init(&ddl);
    dorm_error err;
    dorm_error_clear(&err);
    assert_int_equal(
        dorm_ddl_create_model(m, NULL, 0, dorm_db_dialect(db), &ddl, &err), 0);
    dorm_result r = t_ok(
        dorm_async_execute_many(db, (const char *const *)ddl.stmts, ddl.n));
    dorm_result_free(&r);
    dorm_ddl_free(&ddl);
  }
}

#endif
