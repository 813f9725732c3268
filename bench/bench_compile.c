/* SPDX-License-Identifier: MIT */
/* bench/bench_compile.c — B1: build and compile the representative query.
 *
 *   Author.filter(age__gte=18, name__startswith="A")
 *         .exclude(Q(country__in=["US", "GB"]) | Q(age__isnull=True))
 *         .order_by("-name")[20:30]
 *
 * built from scratch and compiled for PostgreSQL on every iteration (see
 * docs/performance.md, B1).  Two variants: a fresh
 * dorm_select/dorm_query_free per query, and one query object reset per
 * iteration (the loop a server would run).  Prints the median of 9 runs in ns
 * per query; bench/peers.sh runs Knex and Django on the same query for the
 * ratio.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dorm.h"

static const char *models =
    "{\"models\": [{\"name\": \"Author\", \"fields\": ["
    "{\"name\": \"name\", \"type\": \"varchar\", \"max_length\": 100},"
    "{\"name\": \"age\", \"type\": \"integer\", \"null\": true},"
    "{\"name\": \"country\", \"type\": \"varchar\", \"max_length\": 2}]}]}";

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void build(dorm_query *q) {
  dorm_filter(q, "age__gte", dorm_int(18));
  dorm_filter(q, "name__startswith", dorm_str("A"));
  dorm_value cc[] = {dorm_str("US"), dorm_str("GB")};
  dorm_exclude_q(q, dorm_q_or(q, dorm_Q(q, "country__in", dorm_list(cc, 2)),
                              dorm_Q(q, "age__isnull", dorm_bool(1))));
  dorm_order_by(q, "-name");
  dorm_slice(q, 20, 30);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(void) {
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_string(models, "bench", &err);
  if (!s) {
    fprintf(stderr, "bench_compile: %s\n", err.message);
    return 1;
  }
  const dorm_model *author = dorm_schema_model(s, "Author");
  dorm_sql sql;
  dorm_sql_init(&sql);
  enum { RUNS = 9 };
  /* DORM_BENCH_N: fewer iterations, for callgrind */
  const int N = getenv("DORM_BENCH_N") ? atoi(getenv("DORM_BENCH_N")) : 200000;
  double fresh[RUNS], reuse[RUNS];
  size_t check = 0;

  for (int r = 0; r < RUNS; r++) {
    double t0 = now_ns();
    for (int i = 0; i < N; i++) {
      dorm_query *q = dorm_select(author);
      build(q);
      if (dorm_compile(q, DORM_DIALECT_POSTGRES, &sql, &err)) return 1;
      check += sql.len;
      dorm_query_free(q);
    }
    fresh[r] = (now_ns() - t0) / N;

    dorm_query *q = dorm_select(author);
    t0 = now_ns();
    for (int i = 0; i < N; i++) {
      dorm_query_reset(q, DORM_QUERY_SELECT, author);
      build(q);
      if (dorm_compile(q, DORM_DIALECT_POSTGRES, &sql, &err)) return 1;
      check += sql.len;
    }
    reuse[r] = (now_ns() - t0) / N;
    dorm_query_free(q);
  }
  qsort(fresh, RUNS, sizeof fresh[0], cmp);
  qsort(reuse, RUNS, sizeof reuse[0], cmp);
  printf("%s\n", sql.text);
  printf(
      "B1 dorm build+compile (fresh query each time): %.0f ns/query "
      "(median of %d runs of %d)\n",
      fresh[RUNS / 2], RUNS, N);
  printf("B1 dorm build+compile (query reset and reused): %.0f ns/query\n",
         reuse[RUNS / 2]);
  printf(
      "B1 target: <= 500 ns/query; Knex and Django in the same run: "
      "bench/peers.sh b1\n");
  (void)check;
  dorm_sql_free(&sql);
  dorm_schema_free(s);
  return 0;
}
