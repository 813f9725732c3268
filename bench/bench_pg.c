/* SPDX-License-Identifier: MIT */
/* bench/bench_pg.c — B2: PostgreSQL primary-key lookups through
 * dorm_async_get, rows decoded, many in flight (docs/performance.md).
 *
 *   SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid = $1
 *
 * on a `pgbench -i -s 1` database, random keys, the Unix socket.  Each
 * completed lookup reads its row (dorm_row_int / dorm_row_text) and issues
 * the next, keeping `inflight` requests outstanding; the latency of each
 * is measured from the call to its callback.  Prints one line per pool
 * size: queries/s, p50 and p99 latency.
 *
 *   DORM_BENCH_PG="host=... dbname=bench" bench_pg [seconds] [inflight]
 *                                                  [none|hook|both]
 *
 * The third argument measures the query hooks of dorm/observe.h: "hook"
 * registers a counting hook (start and end, each adding one) before the
 * run, "both" runs each pool twice in a row, without and with it (the
 * default is "none").
 * Without DORM_BENCH_PG it runs bench/b2.sh, which starts a throwaway
 * server, loads pgbench's tables, runs this program for pools of 2 and 4
 * and the peers (pgbench's pipeline script, postgres.js) in the same run,
 * and prints the ratio.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "dorm.h"

static const char *MODELS =
    "{\"models\": [{\"name\": \"Account\", \"table\": \"pgbench_accounts\","
    " \"fields\": ["
    "  {\"name\": \"aid\", \"type\": \"integer\", \"primary_key\": true},"
    "  {\"name\": \"bid\", \"type\": \"integer\", \"null\": true},"
    "  {\"name\": \"abalance\", \"type\": \"integer\", \"null\": true},"
    "  {\"name\": \"filler\", \"type\": \"varchar\", \"max_length\": 84,"
    "   \"null\": true}]}]}";

static uv_loop_t uv;
static dorm_db *db;
static const dorm_model *Account;
static uint64_t issued, completed, failed, limit_ns, t_start;
static int measuring, stopping;
static uint32_t rng = 2463534242u;
static uint64_t *lat;
static size_t nlat, caplat;
static int64_t checksum;

static uint32_t xorshift(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

typedef struct slot {
  uint64_t t0;
} slot;

static void issue_with(slot *s);

static dorm_result on_row(dorm_result *res, void *arg) {
  slot *s = arg;
  uint64_t now = uv_hrtime();
  if (dorm_result_is_error(res)) {
    if (failed++ < 5)
      fprintf(stderr, "bench_pg: %s\n", dorm_result_message(res));
  } else {
    const dorm_row *row = dorm_result_row_of(res);
    checksum += dorm_row_int(row, "abalance") + dorm_row_int(row, "aid");
    const char *f = dorm_row_text(row, "filler");
    checksum += f ? (int64_t)f[0] : 0;
  }
  completed++;
  if (measuring && nlat < caplat) lat[nlat++] = now - s->t0;
  if (!stopping && now - t_start >= limit_ns) stopping = 1;
  if (!stopping) {
    s->t0 = uv_hrtime();
    issue_with(s);
  } else {
    free(s);
  }
  return dorm_result_none();
}

static void issue_with(slot *s) {
  dorm_query *q = dorm_select(Account);
  dorm_filter(q, "aid", dorm_int(1 + xorshift() % 100000));
  dorm_deferred *d = dorm_async_get(db, q);
  dorm_query_free(q);
  if (!d || dorm_deferred_add_both(d, on_row, s)) {
    fprintf(stderr, "bench_pg: out of memory\n");
    exit(1);
  }
  issued++;
}

static void issue(void) {
  slot *s = malloc(sizeof *s);
  s->t0 = uv_hrtime();
  issue_with(s);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void closed(void *arg) { (void)arg; }

/* The counting hook: what a user's cheapest observer costs. */
static uint64_t hook_starts, hook_ends;
static void count_start(const dorm_query_event *ev, void *arg, void **user) {
  (void)ev;
  (void)arg;
  (void)user;
  hook_starts++;
}
static void count_end(const dorm_query_event *ev, void *arg, void *user) {
  (void)ev;
  (void)arg;
  (void)user;
  hook_ends++;
}

/* One run: pool of `pool`, `inflight` outstanding, `secs` seconds after a
 * one-second warm-up. */
static void run(const char *conninfo, int pool, int inflight, double secs,
                int hook) {
  dorm_loop *loop = dorm_loop_new(&uv);
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.pool_size = pool;
  /* bench/bench_scaleout.sh: the same lookups spread over read replicas */
  o.replicas = getenv("DORM_BENCH_REPLICAS");
  dorm_error err;
  dorm_error_clear(&err);
  db = dorm_db_open(loop, conninfo, &o, &err);
  if (!db) {
    fprintf(stderr, "bench_pg: %s\n", err.message);
    exit(1);
  }
  hook_starts = hook_ends = 0;
  if (hook && !dorm_db_add_hook(db, count_start, count_end, NULL, 0)) {
    fprintf(stderr, "bench_pg: cannot add the hook\n");
    exit(1);
  }
  /* warm-up: connections, prepared statements, caches */
  stopping = 0;
  measuring = 0;
  limit_ns = 1000000000ull;
  t_start = uv_hrtime();
  for (int i = 0; i < inflight; i++) issue();
  while (completed < issued) uv_run(&uv, UV_RUN_ONCE);
  /* measured run */
  issued = completed = failed = 0;
  nlat = 0;
  stopping = 0;
  measuring = 1;
  limit_ns = (uint64_t)(secs * 1e9);
  t_start = uv_hrtime();
  for (int i = 0; i < inflight; i++) issue();
  while (completed < issued) uv_run(&uv, UV_RUN_ONCE);
  double dt = (uv_hrtime() - t_start) / 1e9;
  qsort(lat, nlat, sizeof *lat, cmp_u64);
  double p50 = nlat ? lat[nlat / 2] / 1e6 : 0;
  double p99 = nlat ? lat[nlat * 99 / 100] / 1e6 : 0;
  printf(
      "dorm_async_get, pool %d, %d in flight%s: %.0f queries/s  "
      "p50 %.2f ms  p99 %.2f ms  (%llu queries, %llu errors)\n",
      pool, inflight, hook ? ", counting hook" : "", completed / dt, p50, p99,
      (unsigned long long)completed, (unsigned long long)failed);
  if (hook && hook_ends < completed) {
    fprintf(stderr, "bench_pg: the hook saw %llu of %llu queries\n",
            (unsigned long long)hook_ends, (unsigned long long)completed);
    exit(1);
  }
  fflush(stdout);
  dorm_db_close(db, closed, NULL);
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
}

int main(int argc, char **argv) {
  const char *conninfo = getenv("DORM_BENCH_PG");
  if (!conninfo) {
    /* the driver starts a server and runs the peers beside us */
    return system("sh bench/b2.sh") == 0 ? 0 : 1;
  }
  double secs = argc > 1 ? atof(argv[1]) : 5;
  int inflight = argc > 2 ? atoi(argv[2]) : 256;
  const char *hooks = argc > 3 ? argv[3] : "none";
  if (strcmp(hooks, "none") && strcmp(hooks, "hook") && strcmp(hooks, "both")) {
    fprintf(stderr, "bench_pg: '%s': expected none, hook or both\n", hooks);
    return 2;
  }
  const char *pools = getenv("DORM_BENCH_POOLS");
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_string(MODELS, "bench", &err);
  if (!s) {
    fprintf(stderr, "bench_pg: %s\n", err.message);
    return 1;
  }
  Account = dorm_schema_model(s, "Account");
  caplat = 20000000;
  lat = malloc(caplat * sizeof *lat);
  uv_loop_init(&uv);
  int list[8], n = 0;
  if (pools) {
    for (const char *p = pools; *p && n < 8;) {
      list[n++] = atoi(p);
      p = strchr(p, ',');
      if (!p) break;
      p++;
    }
  } else {
    list[n++] = 2;
    list[n++] = 4;
  }
  for (int i = 0; i < n; i++) {
    if (strcmp(hooks, "hook")) run(conninfo, list[i], inflight, secs, 0);
    if (strcmp(hooks, "none")) run(conninfo, list[i], inflight, secs, 1);
  }
  uv_loop_close(&uv);
  free(lat);
  dorm_schema_free(s);
  if (checksum == 42) printf("\n"); /* keep the reads */
  return 0;
}
