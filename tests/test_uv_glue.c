/* SPDX-License-Identifier: MIT */
/* tests/test_uv_glue.c — deferreds on a real libuv loop: fire-soon (rule
 * R2 of dorm/deferred.h), gather (success, failure, all outcomes,
 * cancellation), timeouts, jobs on worker threads with results back on the loop
 * thread (checked by thread id), socket watchers, timers, wake-ups from another
 * thread, a complete asynchronous close, and allocation failure at every N. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "dorm/deferred.h"
#include "dorm/loop.h"
#include "support/support.h"

#define C(x) ((void *)(intptr_t)(x))

static uv_loop_t g_uv;
static dorm_loop *g_loop;
static uv_thread_t g_main_thread;
static int g_reported;
static int g_freed;
static int g_closed_cb;
static char g_log[128];

static void log_add(char c) {
  size_t n = strlen(g_log);
  if (n + 1 < sizeof g_log) {
    g_log[n] = c;
    g_log[n + 1] = '\0';
  }
}

static void on_loop_thread(void) {
  uv_thread_t self = uv_thread_self();
  assert_true(uv_thread_equal(&self, &g_main_thread));
}

static void hook(const dorm_result *err, void *arg) {
  (void)err;
  (void)arg;
  g_reported++;
}

static void count_free(void *p) {
  (void)p;
  g_freed++;
}

static void loop_closed(void *arg) {
  (void)arg;
  g_closed_cb++;
}

static int setup(void **state) {
  (void)state;
  g_main_thread = uv_thread_self();
  g_reported = g_freed = g_closed_cb = 0;
  g_log[0] = '\0';
  dorm_set_unhandled_error_hook(hook, NULL);
  assert_int_equal(uv_loop_init(&g_uv), 0);
  g_loop = dorm_loop_new(&g_uv);
  assert_non_null(g_loop);
  assert_ptr_equal(dorm_loop_uv(g_loop), &g_uv);
  return 0;
}

/* Close dorm, then check that nothing of dorm is left on the loop. */
static int teardown(void **state) {
  (void)state;
  dorm_test_alloc_reset();
  dorm_loop_close(g_loop, loop_closed, NULL);
  dorm_loop_close(g_loop, loop_closed, NULL); /* twice: nothing */
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_int_equal(g_closed_cb, 1);
  assert_int_equal(uv_loop_close(&g_uv), 0);
  dorm_set_unhandled_error_hook(NULL, NULL);
  return 0;
}

static dorm_result cb_log(dorm_result *res, void *arg) {
  on_loop_thread();
  log_add((char)(intptr_t)arg);
  return *res;
}

static dorm_result eb_code(dorm_result *res, void *arg) {
  on_loop_thread();
  assert_int_equal(dorm_result_code(res), (int)(intptr_t)arg);
  log_add('!');
  return dorm_result_none();
}

/* A maker that fires after ms milliseconds, from a timer. */
typedef struct later {
  dorm_timer *t;
  dorm_deferred *d;
  dorm_result r;
} later;

static void later_cb(dorm_timer *t, void *arg) {
  later *l = arg;
  dorm_deferred_fire(l->d, l->r);
  dorm_timer_close(t);
  free(l);
}

static int g_cancels;
static void count_cancel(dorm_deferred *d, void *arg) {
  (void)d;
  (void)arg;
  g_cancels++;
}

static dorm_deferred *fire_later(uint64_t ms, dorm_result r) {
  later *l = malloc(sizeof *l);
  l->d = dorm_deferred_new(count_cancel, NULL);
  l->r = r;
  l->t = dorm_timer_new(g_loop, later_cb, l);
  dorm_timer_start(l->t, ms, 0);
  return l->d;
}

/* ---- R2: fire soon ---- */

static void test_fire_soon(void **state) {
  (void)state;
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  assert_int_equal(dorm_deferred_fire_soon(g_loop, d, dorm_result_count(3)), 0);
  assert_int_equal(dorm_deferred_fire_soon(g_loop, d, dorm_result_count(4)),
                   DORM_ESTATE);
  assert_int_equal(dorm_deferred_fire(d, dorm_result_none()), DORM_ESTATE);
  dorm_deferred_add_callback(d, cb_log, C('a'));
  assert_false(dorm_deferred_fired(d));
  assert_string_equal(g_log, "");
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_string_equal(g_log, "a");
  /* cancelled while queued: the chain gets DORM_ECANCELED once */
  g_log[0] = '\0';
  d = dorm_deferred_new(NULL, NULL);
  dorm_deferred_fire_soon(g_loop, d, dorm_result_ptr(C(1), count_free));
  dorm_deferred_add_errback(d, eb_code, C(DORM_ECANCELED));
  dorm_deferred_cancel(d);
  assert_int_equal(g_freed, 1);
  assert_string_equal(g_log, "!");
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_string_equal(g_log, "!");
  assert_int_equal(g_reported, 0);
}

/* ---- gather ---- */

static dorm_result check_list(dorm_result *res, void *arg) {
  on_loop_thread();
  assert_int_equal(res->kind, DORM_RESULT_LIST);
  assert_int_equal(res->u.list.n, (size_t)(intptr_t)arg);
  for (size_t i = 0; i < res->u.list.n; i++) {
    assert_int_equal(res->u.list.items[i].kind, DORM_RESULT_COUNT);
    assert_int_equal(res->u.list.items[i].u.count, (int64_t)i);
  }
  log_add('L');
  return *res; /* the chain frees the list */
}

static void test_gather_success(void **state) {
  (void)state;
  /* fired in reverse order; results come in input order */
  dorm_deferred *ds[3];
  for (int i = 0; i < 3; i++)
    ds[i] = fire_later((uint64_t)(30 - 10 * i), dorm_result_count(i));
  dorm_deferred *g = dorm_gather(g_loop, ds, 3, 0);
  assert_non_null(g);
  dorm_deferred_add_callback(g, check_list, C(3));
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_string_equal(g_log, "L");
  /* empty: still not inside the call */
  g_log[0] = '\0';
  g = dorm_gather(g_loop, NULL, 0, 0);
  dorm_deferred_add_callback(g, check_list, C(0));
  assert_string_equal(g_log, "");
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_string_equal(g_log, "L");
  /* inputs that had already fired (held by references) */
  g_log[0] = '\0';
  for (int i = 0; i < 3; i++) {
    ds[i] = dorm_deferred_retain(dorm_deferred_new(NULL, NULL));
    dorm_deferred_fire(ds[i], dorm_result_count(i));
  }
  g = dorm_gather(g_loop, ds, 3, 0);
  dorm_deferred_add_callback(g, check_list, C(3));
  assert_string_equal(g_log, "");
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_string_equal(g_log, "L");
  for (int i = 0; i < 3; i++) {
    assert_int_equal(dorm_deferred_result(ds[i])->kind, DORM_RESULT_NONE);
    dorm_deferred_release(ds[i]);
  }
  assert_null(dorm_gather(NULL, ds, 3, 0));
  assert_int_equal(g_reported, 0);
}

static void test_gather_failure(void **state) {
  (void)state;
  dorm_deferred *ds[3];
  ds[0] = fire_later(1, dorm_result_ptr(C(1), count_free));
  ds[1] = fire_later(5, dorm_result_error(DORM_EINTEGRITY, "dup"));
  ds[2] = fire_later(30, dorm_result_ptr(C(2), count_free));
  dorm_deferred *g = dorm_gather(g_loop, ds, 3, DORM_GATHER_FIRST_ERROR);
  dorm_deferred_add_callback(g, cb_log, C('X'));
  dorm_deferred_add_errback(g, eb_code, C(DORM_EINTEGRITY));
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_string_equal(g_log, "!");
  assert_int_equal(g_freed, 2); /* both successes discarded, once each */
  assert_int_equal(g_reported, 0);

  /* cancel the rest on the first error */
  g_log[0] = '\0';
  g_cancels = 0;
  ds[0] = fire_later(1, dorm_result_error(DORM_ECONN, NULL));
  ds[1] = fire_later(300, dorm_result_count(1));
  ds[2] = fire_later(300, dorm_result_count(2));
  g = dorm_gather(g_loop, ds, 3, DORM_GATHER_CANCEL_REST);
  dorm_deferred_add_errback(g, eb_code, C(DORM_ECONN));
  uint64_t t0 = uv_now(&g_uv);
  /* the makers' timers still run out (their late fires are ignored); stop
   * after the first error has come */
  while (strcmp(g_log, "!") != 0) uv_run(&g_uv, UV_RUN_ONCE);
  assert_int_equal(g_cancels, 2);
  assert_true(uv_now(&g_uv) - t0 < 250);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_int_equal(g_reported, 0);
}

static dorm_result check_all(dorm_result *res, void *arg) {
  (void)arg;
  assert_int_equal(res->kind, DORM_RESULT_LIST);
  assert_int_equal(res->u.list.n, 3);
  assert_int_equal(res->u.list.items[0].u.count, 0);
  assert_int_equal(dorm_result_code(&res->u.list.items[1]), DORM_ENOTFOUND);
  assert_int_equal(res->u.list.items[2].u.count, 2);
  log_add('A');
  return dorm_result_none();
}

static void test_gather_all(void **state) {
  (void)state;
  dorm_deferred *ds[3];
  ds[0] = fire_later(10, dorm_result_count(0));
  ds[1] = fire_later(1, dorm_result_error(DORM_ENOTFOUND, NULL));
  ds[2] = fire_later(5, dorm_result_count(2));
  dorm_deferred *g = dorm_gather(g_loop, ds, 3, DORM_GATHER_ALL);
  dorm_deferred_add_callback(g, check_all, NULL);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_string_equal(g_log, "A");
  assert_int_equal(g_reported, 0); /* collected errors are not reported */
}

static void test_gather_cancel(void **state) {
  (void)state;
  g_cancels = 0;
  dorm_deferred *ds[3];
  ds[0] = fire_later(1, dorm_result_count(0));
  ds[1] = fire_later(50, dorm_result_ptr(C(1), count_free));
  ds[2] = fire_later(50, dorm_result_count(2));
  dorm_deferred_add_callback(ds[0], cb_log, C('f')); /* before the gather */
  dorm_deferred *g = dorm_gather(g_loop, ds, 3, DORM_GATHER_ALL);
  dorm_deferred_retain(g);
  dorm_deferred_add_callback(g, cb_log, C('X'));
  dorm_deferred_add_errback(g, eb_code, C(DORM_ECANCELED));
  while (g_log[0] == '\0') uv_run(&g_uv, UV_RUN_ONCE);
  /* ds[0] has fired (and may be gone): cancel the gather */
  dorm_deferred_cancel(g);
  assert_string_equal(g_log, "f!");
  assert_int_equal(g_cancels, 2); /* the two unfinished inputs */
  dorm_deferred_cancel(g);        /* twice: nothing */
  dorm_deferred_release(g);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_int_equal(g_freed, 1); /* the late result, freed unseen */
  assert_int_equal(g_reported, 0);
}

static dorm_result expect_count(dorm_result *res, void *arg) {
  assert_int_equal(res->kind, DORM_RESULT_COUNT);
  assert_int_equal(res->u.count, (int64_t)(intptr_t)arg);
  log_add('c');
  return *res;
}

static void test_gather_oom_changes_nothing(void **state) {
  (void)state;
  dorm_deferred *ds[2];
  ds[0] = dorm_deferred_new(NULL, NULL);
  ds[1] = dorm_deferred_new(NULL, NULL);
  for (int i = 0; i < 4; i++) /* ds[1]'s inline steps are full */
    dorm_deferred_add_callback(ds[1], cb_log, C('.'));
  /* allocations: state, items, output, then ds[1]'s spill: fail that */
  dorm_test_fail_alloc_at(4);
  assert_null(dorm_gather(g_loop, ds, 2, 0));
  dorm_test_alloc_reset();
  /* the inputs behave as if the gather had never been asked for */
  dorm_deferred_add_callback(ds[0], expect_count, C(7));
  dorm_deferred_add_callback(ds[1], expect_count, C(8));
  dorm_deferred_fire(ds[0], dorm_result_count(7));
  dorm_deferred_fire(ds[1], dorm_result_count(8));
  assert_string_equal(g_log, "c....c");
  uv_run(&g_uv, UV_RUN_DEFAULT);
}

/* ---- timeouts ---- */

static void test_timeout(void **state) {
  (void)state;
  g_cancels = 0;
  /* the maker is too slow */
  dorm_deferred *d = fire_later(300, dorm_result_ptr(C(1), count_free));
  dorm_deferred_add_callback(d, cb_log, C('X'));
  assert_int_equal(dorm_deferred_set_timeout(d, g_loop, 20), 0);
  dorm_deferred_add_errback(d, eb_code, C(DORM_ETIMEDOUT));
  uint64_t t0 = uv_now(&g_uv);
  while (g_log[0] == '\0') uv_run(&g_uv, UV_RUN_ONCE);
  assert_true(uv_now(&g_uv) - t0 >= 19);
  assert_true(uv_now(&g_uv) - t0 < 250);
  assert_string_equal(g_log, "!");
  assert_int_equal(g_cancels, 1); /* the work behind it was cancelled */
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_int_equal(g_freed, 1);

  /* fast enough: the timer goes away with the result */
  g_log[0] = '\0';
  d = fire_later(5, dorm_result_count(1));
  dorm_deferred_set_timeout(d, g_loop, 10000);
  dorm_deferred_add_callback(d, cb_log, C('k'));
  t0 = uv_now(&g_uv);
  uv_run(&g_uv, UV_RUN_DEFAULT); /* returns without waiting 10 s */
  assert_true(uv_now(&g_uv) - t0 < 5000);
  assert_string_equal(g_log, "k");

  /* already fired: nothing to do */
  d = dorm_deferred_retain(dorm_deferred_new(NULL, NULL));
  dorm_deferred_fire(d, dorm_result_none());
  assert_int_equal(dorm_deferred_set_timeout(d, g_loop, 1), 0);
  dorm_deferred_release(d);
  assert_int_equal(dorm_deferred_set_timeout(NULL, g_loop, 1), DORM_EINVAL);
  assert_int_equal(g_reported, 0);
}

/* ---- thread jobs ---- */

static uv_sem_t g_gate;
static int g_ran; /* written on workers: read after the loop has run */

static dorm_result work_square(void *arg) {
  uv_thread_t self = uv_thread_self();
  /* not the loop thread */
  if (uv_thread_equal(&self, &g_main_thread)) return dorm_result_none();
  intptr_t x = (intptr_t)arg;
  return dorm_result_count(x * x);
}

static int g_job_results;
static dorm_result on_square(dorm_result *res, void *arg) {
  on_loop_thread();
  intptr_t x = (intptr_t)arg;
  assert_int_equal(res->kind, DORM_RESULT_COUNT);
  assert_int_equal(res->u.count, x * x);
  g_job_results++;
  return dorm_result_none();
}

static uv_sem_t g_started;
static dorm_result work_block(void *arg) {
  (void)arg;
  uv_sem_post(&g_started);
  uv_sem_wait(&g_gate);
  return dorm_result_ptr(C(1), count_free);
}

static dorm_result work_never(void *arg) {
  (void)arg;
  g_ran++;
  return dorm_result_none();
}

static void test_thread_jobs(void **state) {
  (void)state;
  g_job_results = 0;
  for (intptr_t i = 0; i < 100; i++) {
    dorm_deferred *d = dorm_run_in_thread(g_loop, work_square, (void *)i);
    assert_non_null(d);
    assert_false(dorm_deferred_fired(d)); /* R2 */
    dorm_deferred_add_callback(d, on_square, (void *)i);
  }
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_int_equal(g_job_results, 100);
  assert_null(dorm_run_in_thread(g_loop, NULL, NULL));

  /* A running job whose timeout strikes: the chain fails at once with
   * DORM_ETIMEDOUT; the job completes and its result is freed unseen. */
  uv_sem_init(&g_gate, 0);
  uv_sem_init(&g_started, 0);
  g_ran = 0;
  g_freed = 0;
  dorm_deferred *slow = dorm_run_in_thread(g_loop, work_block, NULL);
  dorm_deferred_set_timeout(slow, g_loop, 10);
  dorm_deferred_add_callback(slow, cb_log, C('X'));
  dorm_deferred_add_errback(slow, eb_code, C(DORM_ETIMEDOUT));
  uv_sem_wait(&g_started); /* it is running */
  while (g_log[0] == '\0') uv_run(&g_uv, UV_RUN_ONCE);
  assert_string_equal(g_log, "!");
  uv_sem_post(&g_gate);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_int_equal(g_freed, 1);

  /* Cancel a job that has not started: it never runs.  The pool's four
   * threads are held by blockers first. */
  for (int i = 0; i < 4; i++)
    dorm_deferred_add_callback(dorm_run_in_thread(g_loop, work_block, NULL),
                               cb_log, C('b'));
  dorm_deferred *victim = dorm_run_in_thread(g_loop, work_never, NULL);
  dorm_deferred_add_callback(victim, cb_log, C('X'));
  dorm_deferred_add_errback(victim, eb_code, C(DORM_ECANCELED));
  dorm_deferred_cancel(victim);
  assert_string_equal(g_log, "!!");
  for (int i = 0; i < 4; i++) uv_sem_post(&g_gate);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_string_equal(g_log, "!!bbbb");
  assert_int_equal(g_ran, 0);
  assert_int_equal(g_freed, 5);
  uv_sem_destroy(&g_gate);
  uv_sem_destroy(&g_started);
  assert_int_equal(g_reported, 0);
}

/* ---- socket watcher, timer, wake-up ---- */

static int g_readable;
static void on_readable(dorm_poll *p, int status, int events, void *arg) {
  on_loop_thread();
  assert_int_equal(status, 0);
  assert_true(events & DORM_READABLE);
  char buf[16];
  assert_true(read((int)(intptr_t)arg, buf, sizeof buf) > 0);
  g_readable++;
  dorm_poll_set(p, 0); /* stop until asked again */
}

static void test_poll(void **state) {
  (void)state;
  int sv[2], sv2[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
  dorm_poll *p = dorm_poll_new(g_loop, sv[0], on_readable, C(sv[0]));
  assert_non_null(p);
  assert_int_equal(dorm_poll_set(p, DORM_READABLE), 0);
  assert_int_equal(dorm_poll_set(p, DORM_READABLE), 0); /* no change */
  assert_int_equal(write(sv[1], "x", 1), 1);
  uv_run(&g_uv, UV_RUN_DEFAULT); /* stops: the watcher has no interest */
  assert_int_equal(g_readable, 1);
  /* a new socket, as libpq may have after a failed attempt */
  dorm_poll_close(p);
  p = dorm_poll_new(g_loop, -1, on_readable, C(sv2[0]));
  assert_int_equal(dorm_poll_set(p, DORM_READABLE), 0);
  assert_int_equal(dorm_poll_set_fd(p, sv2[0]), 0);
  assert_int_equal(write(sv2[1], "y", 1), 1);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_int_equal(g_readable, 2);
  /* the old socket closed and a new one with the same number */
  int old = sv2[0];
  dorm_poll_set(p, DORM_READABLE);
  close(sv2[0]);
  close(sv2[1]);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
  assert_int_equal(sv2[0], old);
  assert_int_equal(dorm_poll_set_fd(p, sv2[0]), 0);
  assert_int_equal(write(sv2[1], "z", 1), 1);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_int_equal(g_readable, 3);
  dorm_poll_close(p);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  close(sv[0]);
  close(sv[1]);
  close(sv2[0]);
  close(sv2[1]);
}

static int g_ticks;
static void on_tick(dorm_timer *t, void *arg) {
  (void)arg;
  on_loop_thread();
  if (++g_ticks == 3) dorm_timer_close(t);
}

static void test_timer(void **state) {
  (void)state;
  g_ticks = 0;
  dorm_timer *t = dorm_timer_new(g_loop, on_tick, NULL);
  assert_int_equal(dorm_timer_start(t, 1, 2), 0);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  assert_int_equal(g_ticks, 3);
  t = dorm_timer_new(g_loop, on_tick, NULL);
  dorm_timer_start(t, 1, 0);
  dorm_timer_stop(t);
  uv_run(&g_uv, UV_RUN_DEFAULT); /* a stopped timer keeps nothing alive */
  assert_int_equal(g_ticks, 3);
  dorm_timer_close(t);
}

#define SENDS 1000
static int g_sent; /* guarded by g_mutex */
static uv_mutex_t g_mutex;
static int g_wakeups;

static void sender(void *arg) {
  dorm_wakeup *w = arg;
  for (int i = 0; i < SENDS; i++) {
    uv_mutex_lock(&g_mutex);
    g_sent++;
    uv_mutex_unlock(&g_mutex);
    dorm_wakeup_send(w);
  }
}

static void on_wakeup(dorm_wakeup *w, void *arg) {
  (void)arg;
  on_loop_thread();
  g_wakeups++;
  uv_mutex_lock(&g_mutex);
  int done = g_sent == SENDS;
  uv_mutex_unlock(&g_mutex);
  if (done) dorm_wakeup_close(w);
}

static void test_wakeup(void **state) {
  (void)state;
  uv_mutex_init(&g_mutex);
  g_sent = g_wakeups = 0;
  dorm_wakeup *w = dorm_wakeup_new(g_loop, on_wakeup, NULL);
  assert_non_null(w);
  uv_thread_t th;
  assert_int_equal(uv_thread_create(&th, sender, w), 0);
  uv_run(&g_uv, UV_RUN_DEFAULT); /* ends when the wake-up is closed */
  uv_thread_join(&th);
  assert_true(g_wakeups >= 1 && g_wakeups <= SENDS);
  uv_mutex_destroy(&g_mutex);
  /* an unref'd wake-up does not keep the loop alive */
  w = dorm_wakeup_new(g_loop, on_wakeup, NULL);
  dorm_wakeup_unref(w);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  /* left open on purpose: dorm_loop_close closes it */
}

/* ---- closing ---- */

static void ignore_poll(dorm_poll *p, int status, int events, void *arg) {
  (void)p;
  (void)status;
  (void)events;
  (void)arg;
  fail();
}
static void ignore_timer(dorm_timer *t, void *arg) {
  (void)t;
  (void)arg;
  fail();
}
static void ignore_wakeup(dorm_wakeup *w, void *arg) {
  (void)w;
  (void)arg;
}

static void test_close_everything(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  dorm_poll *p = dorm_poll_new(g_loop, sv[0], ignore_poll, NULL);
  dorm_poll_set(p, DORM_READABLE);
  dorm_timer *t = dorm_timer_new(g_loop, ignore_timer, NULL);
  dorm_timer_start(t, 100000, 100000);
  dorm_wakeup_new(g_loop, ignore_wakeup, NULL);
  dorm_deferred *pending = dorm_deferred_new(NULL, NULL);
  dorm_deferred_set_timeout(pending, g_loop, 100000);
  dorm_deferred_add_callback(pending, cb_log, C('p'));
  uv_sem_init(&g_gate, 0);
  uv_sem_init(&g_started, 0);
  dorm_deferred *job = dorm_run_in_thread(g_loop, work_block, NULL);
  dorm_deferred_add_callback(job, cb_log, C('j'));
  uv_sem_wait(&g_started); /* running: closing waits for it */
  dorm_deferred *soon = dorm_deferred_new(NULL, NULL);
  dorm_deferred_fire_soon(g_loop, soon, dorm_result_none());
  dorm_deferred_add_callback(soon, cb_log, C('s'));
  g_freed = 0;
  dorm_loop_close(g_loop, loop_closed, NULL);
  assert_null(dorm_timer_new(g_loop, ignore_timer, NULL));
  uv_sem_post(&g_gate);
  uv_run(&g_uv, UV_RUN_DEFAULT); /* returns: nothing of dorm is left */
  assert_int_equal(g_closed_cb, 1);
  assert_non_null(strchr(g_log, 'j'));
  assert_non_null(strchr(g_log, 's'));
  assert_int_equal(g_freed, 1);
  assert_int_equal(uv_loop_close(&g_uv), 0);
  /* the deferred outlives the loop; its timeout step finds the timer gone */
  dorm_deferred_fire(pending, dorm_result_none());
  assert_non_null(strchr(g_log, 'p'));
  uv_sem_destroy(&g_gate);
  uv_sem_destroy(&g_started);
  close(sv[0]);
  close(sv[1]);
  /* for teardown */
  g_closed_cb = 0;
  assert_int_equal(uv_loop_init(&g_uv), 0);
  g_loop = dorm_loop_new(&g_uv);
}

/* ---- allocation failure at every N ---- */

static dorm_result check_len(dorm_result *res, void *arg) {
  assert_int_equal(res->kind, DORM_RESULT_LIST);
  assert_int_equal(res->u.list.n, (size_t)(intptr_t)arg);
  log_add('L');
  return *res;
}

static int oom_scenario(void) {
  int ok = 1;
  g_job_results = 0;
  dorm_loop *loop = dorm_loop_new(&g_uv);
  if (!loop) return 0;
  dorm_timer *t = dorm_timer_new(loop, on_tick, NULL);
  if (t)
    dorm_timer_close(t);
  else
    ok = 0;
  dorm_deferred *ds[3] = {NULL, NULL, NULL};
  int n = 0;
  for (intptr_t i = 0; i < 3; i++) {
    dorm_deferred *d = dorm_run_in_thread(loop, work_square, (void *)i);
    if (d) {
      ds[n++] = d;
      if (dorm_deferred_set_timeout(d, loop, 100000)) ok = 0;
    } else {
      ok = 0;
    }
  }
  if (n < 3) ok = 0;
  dorm_deferred *g = dorm_gather(loop, ds, (size_t)n, 0);
  if (g) {
    if (dorm_deferred_add_callback(g, check_len, C(n)) ||
        dorm_deferred_add_errback(g, eb_code, C(DORM_ENOMEM)))
      ok = 0;
  } else {
    ok = 0;
  }
  dorm_deferred *s = dorm_deferred_new(NULL, NULL);
  if (s) {
    dorm_deferred_fire_soon(loop, s, dorm_result_error(DORM_EDB, "x %d", 1));
    dorm_deferred_add_errback(s, eb_code, C(DORM_EDB));
  } else {
    ok = 0;
  }
  uv_run(&g_uv, UV_RUN_DEFAULT);
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  if (!strchr(g_log, 'L')) ok = 0;
  return ok;
}

static void test_alloc_failure(void **state) {
  (void)state;
  int n;
  for (n = 1; n < 1000; n++) {
    g_log[0] = '\0';
    dorm_test_fail_alloc_at(n);
    int ok = oom_scenario();
    dorm_test_alloc_reset();
    if (ok) break;
  }
  assert_true(n > 5);
  assert_true(n < 1000);
}

int main(void) {
  /* test_thread_jobs holds every pool thread: know how many there are */
  setenv("UV_THREADPOOL_SIZE", "4", 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fire_soon, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gather_success, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gather_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gather_all, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gather_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gather_oom_changes_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_thread_jobs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wakeup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_everything, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alloc_failure, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
