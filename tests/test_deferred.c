/* SPDX-License-Identifier: MIT */
/* tests/test_deferred.c — the deferred without a loop: chain order, error
 * switching and recovery, chaining (100,000 deep), cancel, ownership of
 * results, unhandled-error reporting, and allocation failure at every N.
 * Gather, timeouts and the libuv glue are in test_uv_glue.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dorm/deferred.h"
#include "support/support.h"

/* ---- helpers ---- */

static char g_log[256];
static int g_freed;    /* destructor calls for PTR results */
static int g_reported; /* unhandled errors reported */
static int g_last_reported_code;

static void log_add(char c) {
  size_t n = strlen(g_log);
  if (n + 1 < sizeof g_log) {
    g_log[n] = c;
    g_log[n + 1] = '\0';
  }
}

static void count_free(void *p) {
  (void)p;
  g_freed++;
}

static void hook(const dorm_result *err, void *arg) {
  (void)arg;
  g_reported++;
  g_last_reported_code = dorm_result_code(err);
}

static int setup(void **state) {
  (void)state;
  g_log[0] = '\0';
  g_freed = 0;
  g_reported = 0;
  g_last_reported_code = 0;
  dorm_set_unhandled_error_hook(hook, NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  dorm_set_unhandled_error_hook(NULL, NULL);
  dorm_test_alloc_reset();
  return 0;
}

/* Appends the char in arg to the log; passes the result on. */
static dorm_result cb_log(dorm_result *res, void *arg) {
  log_add((char)(intptr_t)arg);
  return *res;
}

/* Adds one to a count. */
static dorm_result cb_inc(dorm_result *res, void *arg) {
  log_add((char)(intptr_t)arg);
  return dorm_result_count(res->u.count + 1);
}

static dorm_result cb_fail(dorm_result *res, void *arg) {
  (void)res;
  log_add((char)(intptr_t)arg);
  return dorm_result_error(DORM_EDB, "failed in %c", (char)(intptr_t)arg);
}

static dorm_result eb_recover(dorm_result *res, void *arg) {
  log_add((char)(intptr_t)arg);
  assert_int_equal(res->kind, DORM_RESULT_ERROR);
  return dorm_result_count(42);
}

static dorm_result eb_log(dorm_result *res, void *arg) {
  assert_int_equal(res->kind, DORM_RESULT_ERROR);
  log_add((char)(intptr_t)arg);
  return *res;
}

static dorm_result eb_swallow(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  return dorm_result_none();
}

#define C(ch) ((void *)(intptr_t)(ch))

/* ---- order ---- */

static void test_callback_order(void **state) {
  (void)state;
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  assert_non_null(d);
  assert_int_equal(dorm_deferred_add_callback(d, cb_inc, C('a')), 0);
  assert_int_equal(dorm_deferred_add_callback(d, cb_inc, C('b')), 0);
  assert_int_equal(dorm_deferred_add_errback(d, eb_log, C('X')), 0);
  assert_int_equal(dorm_deferred_add_callback(d, cb_inc, C('c')), 0);
  assert_int_equal(dorm_deferred_add_both(d, cb_log, C('d')), 0);
  /* spill past the inline steps */
  for (int i = 0; i < 20; i++) dorm_deferred_add_callback(d, cb_inc, C('e'));
  assert_string_equal(g_log, "");
  dorm_deferred_retain(d);
  assert_int_equal(dorm_deferred_fire(d, dorm_result_count(0)), 0);
  assert_string_equal(g_log, "abcdeeeeeeeeeeeeeeeeeeee");
  const dorm_result *r = dorm_deferred_result(d);
  assert_non_null(r);
  assert_int_equal(r->kind, DORM_RESULT_COUNT);
  assert_int_equal(r->u.count, 23);
  /* Steps added after the result arrived run at once, in order. */
  g_log[0] = '\0';
  dorm_deferred_add_callback(d, cb_inc, C('x'));
  dorm_deferred_add_callback(d, cb_inc, C('y'));
  assert_string_equal(g_log, "xy");
  assert_int_equal(dorm_deferred_result(d)->u.count, 25);
  dorm_deferred_release(d);
  assert_int_equal(g_reported, 0);
}

static void test_error_switching(void **state) {
  (void)state;
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_callback(d, cb_inc, C('a'));
  dorm_deferred_add_callback(d, cb_fail, C('b'));
  dorm_deferred_add_callback(d, cb_inc, C('X')); /* skipped: error */
  dorm_deferred_add_errback(d, eb_log, C('c'));  /* error stays */
  dorm_deferred_add_callback(d, cb_inc, C('Y')); /* skipped */
  dorm_deferred_add_errback(d, eb_recover, C('d'));
  dorm_deferred_add_errback(d, eb_log, C('Z')); /* skipped: recovered */
  dorm_deferred_add_callback(d, cb_inc, C('e'));
  dorm_deferred_retain(d);
  dorm_deferred_fire(d, dorm_result_count(0));
  assert_string_equal(g_log, "abcde");
  assert_int_equal(dorm_deferred_result(d)->u.count, 43);
  dorm_deferred_release(d);
  assert_int_equal(g_reported, 0);
}

static void test_add_callbacks_pair(void **state) {
  (void)state;
  /* In one step the errback does not see the callback's error. */
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_callbacks(d, cb_fail, eb_log, C('a'));
  dorm_deferred_add_callbacks(d, cb_inc, eb_recover, C('b'));
  dorm_deferred_fire(d, dorm_result_count(1));
  assert_string_equal(g_log, "ab");
  assert_int_equal(g_reported, 0);
  /* Firing with an error starts on the errback side. */
  g_log[0] = '\0';
  d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_callbacks(d, cb_inc, eb_log, C('c'));
  dorm_deferred_add_callbacks(d, cb_inc, eb_recover, C('d'));
  dorm_deferred_fire(d, dorm_result_error(DORM_ECONN, "lost"));
  assert_string_equal(g_log, "cd");
  assert_int_equal(dorm_deferred_add_callbacks(NULL, cb_inc, NULL, NULL),
                   DORM_EINVAL);
}

/* ---- ownership ---- */

static dorm_result cb_replace(dorm_result *res, void *arg) {
  (void)arg;
  assert_int_equal(res->kind, DORM_RESULT_PTR);
  return dorm_result_ptr(C(2), count_free);
}

static dorm_result *g_kept;
static dorm_result cb_take(dorm_result *res, void *arg) {
  (void)arg;
  *g_kept = dorm_result_take(res);
  return dorm_result_count(7);
}

static void test_ownership(void **state) {
  (void)state;
  /* pass-through: freed once, when the deferred goes */
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_callback(d, cb_log, C('a'));
  dorm_deferred_add_callback(d, cb_log, C('b'));
  dorm_deferred_fire(d, dorm_result_ptr(C(1), count_free));
  assert_int_equal(g_freed, 1);
  /* replaced: the old one is freed by the chain, the new one at the end */
  g_freed = 0;
  d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_retain(d);
  dorm_deferred_add_callback(d, cb_replace, NULL);
  dorm_deferred_fire(d, dorm_result_ptr(C(1), count_free));
  assert_int_equal(g_freed, 1);
  assert_ptr_equal(dorm_deferred_result(d)->u.ptr.ptr, C(2));
  dorm_deferred_release(d);
  assert_int_equal(g_freed, 2);
  /* taken: the callback owns it */
  g_freed = 0;
  dorm_result kept = dorm_result_none();
  g_kept = &kept;
  d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_callback(d, cb_take, NULL);
  dorm_deferred_fire(d, dorm_result_ptr(C(1), count_free));
  assert_int_equal(g_freed, 0);
  assert_int_equal(kept.kind, DORM_RESULT_PTR);
  dorm_result_free(&kept);
  assert_int_equal(g_freed, 1);
  assert_int_equal(kept.kind, DORM_RESULT_NONE);
  dorm_result_free(NULL);
}

static void test_results(void **state) {
  (void)state;
  dorm_result e = dorm_result_error_sql(DORM_EINTEGRITY, "23505",
                                        "duplicate key %s", "email");
  assert_true(dorm_result_is_error(&e));
  assert_int_equal(dorm_result_code(&e), DORM_EINTEGRITY);
  assert_string_equal(dorm_result_message(&e), "duplicate key email");
  assert_string_equal(dorm_result_sqlstate(&e), "23505");
  dorm_error err;
  assert_int_equal(dorm_result_to_error(&e, &err), DORM_EINTEGRITY);
  assert_string_equal(err.message, "duplicate key email");
  assert_string_equal(err.sqlstate, "23505");
  dorm_result e2 = dorm_result_error_from(&err);
  assert_string_equal(dorm_result_message(&e2), "duplicate key email");
  assert_string_equal(dorm_result_sqlstate(&e2), "23505");
  dorm_result_free(&e);
  dorm_result_free(&e2);
  /* no message: the code's text; positive codes are not errors */
  e = dorm_result_error(DORM_ETIMEDOUT, NULL);
  assert_string_equal(dorm_result_message(&e), "operation timed out");
  dorm_result_free(&e);
  e = dorm_result_error(5, "x");
  assert_int_equal(dorm_result_code(&e), DORM_EINVAL);
  dorm_result_free(&e);
  /* a long message */
  char big[1000];
  memset(big, 'm', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  e = dorm_result_error(DORM_EDB, "%s", big);
  assert_int_equal(strlen(dorm_result_message(&e)), 999);
  dorm_result_free(&e);
  dorm_result c = dorm_result_count(3);
  assert_string_equal(dorm_result_message(&c), "");
  assert_int_equal(dorm_result_to_error(&c, &err), 0);
  assert_int_equal(err.code, 0);
  /* values: copy owns its strings */
  char text[] = "hello";
  dorm_value items[2] = {dorm_int(1), dorm_str(text)};
  dorm_result v = dorm_result_value_copy(dorm_list(items, 2));
  text[0] = 'X';
  items[0] = dorm_int(9);
  assert_int_equal(v.kind, DORM_RESULT_VALUE);
  assert_int_equal(v.u.value.v.type, DORM_T_LIST);
  assert_int_equal(v.u.value.v.u.list.items[0].u.i, 1);
  assert_string_equal(v.u.value.v.u.list.items[1].u.s.ptr, "hello");
  dorm_result_free(&v);
  v = dorm_result_value_copy(dorm_int(5));
  assert_null(v.u.value.owner);
  dorm_result_free(&v);
  dorm_value ex;
  memset(&ex, 0, sizeof ex);
  ex.type = DORM_T_EXPR;
  v = dorm_result_value_copy(ex);
  assert_int_equal(dorm_result_code(&v), DORM_EINVAL);
  dorm_result_free(&v);
}

/* ---- chaining ---- */

static dorm_deferred *g_inner;
static dorm_result cb_return_inner(dorm_result *res, void *arg) {
  (void)res;
  log_add((char)(intptr_t)arg);
  return dorm_result_deferred(g_inner);
}

static void test_chaining(void **state) {
  (void)state;
  dorm_deferred *outer = dorm_deferred_new(NULL, NULL);
  g_inner = dorm_deferred_new(NULL, NULL);
  dorm_deferred *inner = g_inner;
  dorm_deferred_add_callback(inner, cb_inc, C('i'));
  dorm_deferred_add_callback(outer, cb_return_inner, C('a'));
  dorm_deferred_add_callback(outer, cb_inc, C('b'));
  dorm_deferred_retain(outer);
  dorm_deferred_fire(outer, dorm_result_count(0));
  assert_string_equal(g_log, "a");
  assert_null(dorm_deferred_result(outer)); /* paused */
  assert_true(dorm_deferred_fired(outer));
  /* A step added while paused waits too. */
  dorm_deferred_add_callback(outer, cb_inc, C('c'));
  assert_string_equal(g_log, "a");
  dorm_deferred_fire(inner, dorm_result_count(10));
  assert_string_equal(g_log, "aibc");
  assert_int_equal(dorm_deferred_result(outer)->u.count, 13);
  dorm_deferred_release(outer);

  /* An inner deferred that already fired (held by a reference): its result
   * is taken at once. */
  g_log[0] = '\0';
  g_inner = dorm_deferred_new(NULL, NULL);
  dorm_deferred_retain(g_inner);
  dorm_deferred_fire(g_inner, dorm_result_count(100));
  outer = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_callback(outer, cb_return_inner, C('a'));
  dorm_deferred_add_callback(outer, cb_inc, C('b'));
  dorm_deferred_retain(outer);
  dorm_deferred_fire(outer, dorm_result_count(0));
  assert_string_equal(g_log, "ab");
  assert_int_equal(dorm_deferred_result(outer)->u.count, 101);
  assert_int_equal(dorm_deferred_result(g_inner)->kind, DORM_RESULT_NONE);
  dorm_deferred_release(outer);
  dorm_deferred_release(g_inner);

  /* An inner error goes down the outer errbacks. */
  g_log[0] = '\0';
  g_inner = dorm_deferred_new(NULL, NULL);
  inner = g_inner;
  outer = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_callback(outer, cb_return_inner, C('a'));
  dorm_deferred_add_errback(outer, eb_recover, C('r'));
  dorm_deferred_fire(outer, dorm_result_count(0));
  dorm_deferred_fire(inner, dorm_result_error(DORM_ECONN, NULL));
  assert_string_equal(g_log, "ar");
  assert_int_equal(g_reported, 0);
}

static dorm_deferred *g_self;
static dorm_result cb_return_self(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  return dorm_result_deferred(g_self);
}

static void test_chain_to_self(void **state) {
  (void)state;
  g_self = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_callback(g_self, cb_return_self, NULL);
  dorm_deferred_fire(g_self, dorm_result_none());
  assert_int_equal(g_reported, 1);
  assert_int_equal(g_last_reported_code, DORM_EINVAL);
}

/* d[i]'s callback returns d[i+1]. */
#define DEEP 100000
static dorm_deferred **g_chain;
static dorm_result cb_next(dorm_result *res, void *arg) {
  (void)res;
  return dorm_result_deferred(g_chain[(intptr_t)arg + 1]);
}

static void test_chain_deep(void **state) {
  (void)state;
  g_chain = test_malloc((DEEP + 1) * sizeof *g_chain);
  for (intptr_t i = 0; i <= DEEP; i++) {
    g_chain[i] = dorm_deferred_new(NULL, NULL);
    assert_non_null(g_chain[i]);
  }
  for (intptr_t i = 0; i < DEEP; i++)
    dorm_deferred_add_callback(g_chain[i], cb_next, (void *)i);
  dorm_deferred_add_callback(g_chain[0], cb_inc, C('z'));
  dorm_deferred_retain(g_chain[0]);
  /* Fire 0..DEEP-1 in order: each pauses on the next, building a stack of
   * DEEP paused deferreds; firing the last unwinds all of them at once. */
  for (intptr_t i = 0; i < DEEP; i++)
    dorm_deferred_fire(g_chain[i], dorm_result_none());
  assert_null(dorm_deferred_result(g_chain[0]));
  dorm_deferred_fire(g_chain[DEEP], dorm_result_count(41));
  assert_string_equal(g_log, "z");
  assert_int_equal(dorm_deferred_result(g_chain[0])->u.count, 42);
  dorm_deferred_release(g_chain[0]);

  /* The other order: the last fires first, each takes a fired result. */
  g_log[0] = '\0';
  for (intptr_t i = 0; i <= DEEP; i++) {
    g_chain[i] = dorm_deferred_new(NULL, NULL);
    dorm_deferred_retain(g_chain[i]); /* fired ones are returned later */
  }
  for (intptr_t i = 0; i < DEEP; i++)
    dorm_deferred_add_callback(g_chain[i], cb_next, (void *)i);
  dorm_deferred_add_callback(g_chain[0], cb_inc, C('y'));
  dorm_deferred_fire(g_chain[DEEP], dorm_result_count(1));
  for (intptr_t i = DEEP; i-- > 0;)
    dorm_deferred_fire(g_chain[i], dorm_result_none());
  assert_string_equal(g_log, "y");
  assert_int_equal(dorm_deferred_result(g_chain[0])->u.count, 2);
  for (intptr_t i = 0; i <= DEEP; i++) dorm_deferred_release(g_chain[i]);

  /* One deferred with DEEP steps. */
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  for (int i = 0; i < DEEP; i++)
    assert_int_equal(dorm_deferred_add_callback(d, cb_inc, C('.')), 0);
  dorm_deferred_retain(d);
  dorm_deferred_fire(d, dorm_result_count(0));
  assert_int_equal(dorm_deferred_result(d)->u.count, DEEP);
  dorm_deferred_release(d);
  test_free(g_chain);
}

/* ---- cancel ---- */

static int g_cancels;
static void canceller(dorm_deferred *d, void *arg) {
  (void)d;
  (void)arg;
  g_cancels++;
}
static void canceller_fires(dorm_deferred *d, void *arg) {
  (void)arg;
  g_cancels++;
  dorm_deferred_fire(d, dorm_result_error(DORM_ECLOSED, "stopped"));
}

static dorm_result eb_expect_canceled(dorm_result *res, void *arg) {
  assert_int_equal(dorm_result_code(res), (int)(intptr_t)arg);
  log_add('!');
  return dorm_result_none();
}

static void test_cancel(void **state) {
  (void)state;
  g_cancels = 0;
  dorm_deferred *d = dorm_deferred_new(canceller, NULL);
  dorm_deferred_add_callback(d, cb_inc, C('X'));
  dorm_deferred_add_errback(d, eb_expect_canceled, C(DORM_ECANCELED));
  dorm_deferred_retain(d);
  dorm_deferred_cancel(d);
  assert_int_equal(g_cancels, 1);
  assert_string_equal(g_log, "!");
  dorm_deferred_cancel(d); /* twice: nothing */
  assert_int_equal(g_cancels, 1);
  /* the maker's later fire is ignored and its result freed */
  assert_int_equal(dorm_deferred_fire(d, dorm_result_ptr(C(1), count_free)), 0);
  assert_int_equal(g_freed, 1);
  assert_string_equal(g_log, "!");
  dorm_deferred_release(d);

  /* The canceller may fire with its own result. */
  g_log[0] = '\0';
  d = dorm_deferred_new(canceller_fires, NULL);
  dorm_deferred_add_errback(d, eb_expect_canceled, C(DORM_ECLOSED));
  dorm_deferred_cancel(d);
  assert_string_equal(g_log, "!");
  assert_int_equal(g_cancels, 2);

  /* After firing: nothing. */
  g_log[0] = '\0';
  d = dorm_deferred_new(canceller, NULL);
  dorm_deferred_retain(d);
  dorm_deferred_fire(d, dorm_result_count(1));
  dorm_deferred_cancel(d);
  assert_int_equal(g_cancels, 2);
  assert_int_equal(dorm_deferred_result(d)->u.count, 1);
  dorm_deferred_release(d);

  /* Paused on an inner deferred: the inner one is cancelled. */
  g_inner = dorm_deferred_new(canceller, NULL);
  dorm_deferred *inner = g_inner;
  d = dorm_deferred_new(canceller, NULL);
  dorm_deferred_add_callback(d, cb_return_inner, C('a'));
  dorm_deferred_add_errback(d, eb_expect_canceled, C(DORM_ECANCELED));
  dorm_deferred_retain(d);
  dorm_deferred_fire(d, dorm_result_none());
  dorm_deferred_cancel(d);
  assert_int_equal(g_cancels, 3);
  assert_string_equal(g_log, "a!");
  dorm_deferred_fire(inner, dorm_result_none()); /* ignored */
  dorm_deferred_release(d);
  assert_int_equal(g_reported, 0);
  dorm_deferred_cancel(NULL);
}

/* ---- unhandled errors, references, misuse ---- */

static dorm_result cb_release_self(dorm_result *res, void *arg) {
  dorm_deferred_release(arg); /* freeing from inside: postponed */
  log_add('r');
  return *res;
}

static void test_unhandled(void **state) {
  (void)state;
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_callback(d, cb_fail, C('a'));
  dorm_deferred_fire(d, dorm_result_none());
  assert_int_equal(g_reported, 1);
  assert_int_equal(g_last_reported_code, DORM_EDB);
  /* handled: nothing */
  d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_errback(d, eb_swallow, NULL);
  dorm_deferred_fire(d, dorm_result_error(DORM_EDB, NULL));
  assert_int_equal(g_reported, 1);
  /* reported when released, not when the chain ends */
  d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_retain(d);
  dorm_deferred_fire(d, dorm_result_error(DORM_ECONN, NULL));
  assert_int_equal(g_reported, 1);
  dorm_deferred_add_errback(d, eb_log, C('e')); /* still error */
  dorm_deferred_release(d);
  assert_int_equal(g_reported, 2);
  /* the default hook writes one line to stderr */
  dorm_set_unhandled_error_hook(NULL, NULL);
  d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_fire(
      d, dorm_result_error_sql(DORM_EDB, "42P01", "relation does not exist"));
  dorm_set_unhandled_error_hook(hook, NULL);
}

static void test_refs_and_misuse(void **state) {
  (void)state;
  /* release of a deferred from inside its own chain */
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_retain(d);
  dorm_deferred_add_callback(d, cb_release_self, d);
  dorm_deferred_add_callback(d, cb_log, C('s'));
  dorm_deferred_fire(d, dorm_result_ptr(C(1), count_free));
  assert_string_equal(g_log, "rs");
  assert_int_equal(g_freed, 1);
  /* firing twice */
  d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_retain(d);
  assert_int_equal(dorm_deferred_fire(d, dorm_result_none()), 0);
  assert_int_equal(dorm_deferred_fire(d, dorm_result_ptr(C(1), count_free)),
                   DORM_ESTATE);
  assert_int_equal(g_freed, 2);
  dorm_deferred_release(d);
  /* firing with a deferred */
  d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_errback(d, eb_expect_canceled, C(DORM_EINVAL));
  assert_int_equal(dorm_deferred_fire(d, dorm_result_deferred(d)), DORM_EINVAL);
  /* a maker that gives up without firing: the steps still run */
  g_log[0] = '\0';
  d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_add_errback(d, eb_expect_canceled, C(DORM_ECANCELED));
  dorm_deferred_release(d);
  assert_string_equal(g_log, "!");
  assert_int_equal(dorm_deferred_fire(NULL, dorm_result_none()), DORM_EINVAL);
  assert_int_equal(dorm_deferred_add_callback(NULL, NULL, NULL), DORM_EINVAL);
  assert_false(dorm_deferred_fired(NULL));
  assert_null(dorm_deferred_result(NULL));
  assert_int_equal(g_reported, 0);
}

/* ---- allocation failure at every N ---- */

static int g_runs;
static dorm_result cb_count_run(dorm_result *res, void *arg) {
  (void)arg;
  g_runs++;
  return *res;
}

/* Returns 1 when everything succeeded. */
static int oom_scenario(void) {
  int ok = 1;
  g_runs = 0;
  int accepted = 0;
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  if (!d) return 0;
  g_inner = dorm_deferred_new(NULL, NULL);
  if (!g_inner) ok = 0;
  for (int i = 0; i < 40; i++) {
    int rc = dorm_deferred_add_callback(d, cb_count_run, NULL);
    if (rc == 0)
      accepted++;
    else {
      assert_int_equal(rc, DORM_ENOMEM);
      ok = 0;
    }
  }
  if (g_inner) {
    if (dorm_deferred_add_callback(d, cb_return_inner, C('i')) == 0)
      accepted++;
    else
      ok = 0;
    for (int i = 0; i < 8; i++) {
      if (dorm_deferred_add_callback(g_inner, cb_count_run, NULL) == 0)
        accepted++;
      else
        ok = 0;
    }
  }
  dorm_deferred_add_errback(d, eb_swallow, NULL);
  dorm_result v = dorm_result_value_copy(dorm_str("copied"));
  if (v.kind != DORM_RESULT_VALUE) {
    assert_int_equal(dorm_result_code(&v), DORM_ENOMEM);
    ok = 0;
  }
  dorm_deferred_fire(d, v);
  if (g_inner) {
    dorm_result e = dorm_result_error(DORM_EDB, "message %d", 1);
    if (!e.u.error.message) ok = 0; /* code kept, text falls back */
    assert_int_equal(dorm_result_code(&e), DORM_EDB);
    dorm_result_free(&e);
    dorm_deferred_fire(g_inner, dorm_result_count(1));
  }
  /* every accepted step except cb_return_inner counts itself */
  int expect = accepted - (g_inner ? 1 : 0);
  if (g_runs != expect) {
    /* a failed continuation (ENOMEM) skips the rest of d's callbacks */
    assert_true(g_runs <= expect);
    ok = 0;
  }
  return ok;
}

static void test_alloc_failure(void **state) {
  (void)state;
  int n;
  for (n = 1; n < 1000; n++) {
    dorm_test_fail_alloc_at(n);
    int ok = oom_scenario();
    dorm_test_alloc_reset();
    if (ok) break;
  }
  assert_true(n > 3); /* it did fail on the way */
  assert_true(n < 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_callback_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_switching, setup, teardown),
      cmocka_unit_test_setup_teardown(test_add_callbacks_pair, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ownership, setup, teardown),
      cmocka_unit_test_setup_teardown(test_results, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chaining, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chain_to_self, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chain_deep, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unhandled, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refs_and_misuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alloc_failure, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
