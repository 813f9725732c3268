/* SPDX-License-Identifier: MIT */
/* bench/bench_deferred.c — the cost of a deferred, and of a round trip
 * through a worker thread, against bare libuv in the same run.
 *
 * 1. Life cycle: create a deferred, add two callbacks, fire it, let it free
 *    itself; one million times.  Target: <= 100 ns per deferred.
 * 2. Thread round trip: dorm_run_in_thread (a deferred fired on the loop
 *    thread with the worker's result) against a bare uv_queue_work (malloc
 *    a uv_work_t, free it in the after-work callback), one job in flight
 *    at a time (latency) and 64 at a time (throughput).  Target: within 2x
 *    of bare uv_queue_work.
 * Runs of the two sides alternate and medians are printed, because the
 * machines are shared and noisy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include "dorm/deferred.h"
#include "dorm/loop.h"

#define RUNS 7
#define LIFECYCLES 1000000
#define TRIPS 20000

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

/* ---- 1. life cycle ---- */

static int64_t g_sum;

static dorm_result add_one(dorm_result *res, void *arg) {
  (void)arg;
  return dorm_result_count(res->u.count + 1);
}

static dorm_result sink(dorm_result *res, void *arg) {
  (void)arg;
  g_sum += res->u.count;
  return *res;
}

static double lifecycle_run(void) {
  double t0 = now_ns();
  for (int i = 0; i < LIFECYCLES; i++) {
    dorm_deferred *d = dorm_deferred_new(NULL, NULL);
    if (!d) abort();
    dorm_deferred_add_callback(d, add_one, NULL);
    dorm_deferred_add_callback(d, sink, NULL);
    dorm_deferred_fire(d, dorm_result_count(i));
  }
  return (now_ns() - t0) / LIFECYCLES;
}

/* ---- 2. thread round trips ---- */

static uv_loop_t g_uv;
static dorm_loop *g_loop;
static int g_left; /* jobs still to start */
static int g_done;

static dorm_result work_dorm(void *arg) {
  return dorm_result_count((intptr_t)arg);
}

static dorm_result next_dorm(dorm_result *res, void *arg);

static void start_dorm(void) {
  g_left--;
  dorm_deferred *d = dorm_run_in_thread(g_loop, work_dorm, (void *)1);
  if (!d) abort();
  dorm_deferred_add_callback(d, next_dorm, NULL);
}

static dorm_result next_dorm(dorm_result *res, void *arg) {
  (void)arg;
  g_done += (int)res->u.count;
  if (g_left > 0) start_dorm();
  return *res;
}

static void work_bare(uv_work_t *req) { req->data = (void *)1; }

static void next_bare(uv_work_t *req, int status);

static void start_bare(void) {
  g_left--;
  uv_work_t *req = malloc(sizeof *req);
  if (!req || uv_queue_work(&g_uv, req, work_bare, next_bare)) abort();
}

static void next_bare(uv_work_t *req, int status) {
  (void)status;
  g_done += (int)(intptr_t)req->data;
  free(req);
  if (g_left > 0) start_bare();
}

/* Microseconds per job with `inflight` jobs kept in flight. */
static double trips_run(int dorm, int inflight) {
  g_left = TRIPS;
  g_done = 0;
  double t0 = now_ns();
  for (int i = 0; i < inflight; i++) dorm ? start_dorm() : start_bare();
  uv_run(&g_uv, UV_RUN_DEFAULT);
  double t = now_ns() - t0;
  if (g_done != TRIPS) abort();
  return t / TRIPS / 1000.0;
}

int main(void) {
  double v[RUNS];
  lifecycle_run(); /* warm up */
  for (int r = 0; r < RUNS; r++) v[r] = lifecycle_run();
  double ns = median(v, RUNS);
  printf(
      "deferred life cycle (new, 2 callbacks, fire, free): %.1f ns "
      "(target <= 100 ns)%s\n",
      ns, ns <= 100.0 ? "" : "  ** over target **");

  uv_loop_init(&g_uv);
  g_loop = dorm_loop_new(&g_uv);
  int inflights[2] = {1, 64};
  int status = ns <= 100.0 ? 0 : 1;
  for (int k = 0; k < 2; k++) {
    double vd[RUNS], vb[RUNS];
    trips_run(1, inflights[k]); /* warm up the pool */
    trips_run(0, inflights[k]);
    for (int r = 0; r < RUNS; r++) {
      vd[r] = trips_run(1, inflights[k]);
      vb[r] = trips_run(0, inflights[k]);
    }
    double d = median(vd, RUNS), b = median(vb, RUNS);
    printf(
        "thread round trip, %2d in flight: dorm_run_in_thread %.2f us, "
        "bare uv_queue_work %.2f us, ratio %.2fx (target <= 2x)%s\n",
        inflights[k], d, b, d / b, d / b <= 2.0 ? "" : "  ** over **");
    if (d / b > 2.0) status = 1;
  }
  dorm_loop_close(g_loop, NULL, NULL);
  uv_run(&g_uv, UV_RUN_DEFAULT);
  uv_loop_close(&g_uv);
  if (g_sum == 42) puts(""); /* keep the sum observable */
  return status;
}
