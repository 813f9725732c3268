/* SPDX-License-Identifier: MIT */
/* bench/bench_bulk.c — B4 on PostgreSQL (docs/performance.md): 100,000
 * Author rows (name, age, country) through dorm_async_bulk_create, which
 * goes by COPY FROM STDIN (backends/pg/pg_copy.c), building the INSERT
 * query included, as B4 on SQLite counts it.  bench/b4_pg.sh runs it
 * beside psql's \copy of the same rows as CSV in the same run.
 *
 *   DORM_BENCH_PG=conninfo bench_bulk csv FILE   write the rows as CSV
 *   DORM_BENCH_PG=conninfo bench_bulk copy       one timed bulk_create
 *   DORM_BENCH_PG=conninfo bench_bulk insert     the same rows by
 *       multi-row INSERT (an ON CONFLICT DO NOTHING clause keeps the
 *       bulk_create off COPY): what COPY replaced
 *
 * Each timed run makes the table afresh and prints one line, "rows/s N";
 * the connection is made before the clock starts.  Without DORM_BENCH_PG
 * (make bench) it runs bench/b4_pg.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dorm.h"

#define NROWS 100000

static uv_loop_t uv;
static dorm_loop *loop;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int w_done, w_err;
static int64_t w_count;
static dorm_result w_step(dorm_result *res, void *arg) {
  (void)arg;
  w_done = 1;
  w_err = dorm_result_code(res);
  if (w_err) fprintf(stderr, "error: %s\n", dorm_result_message(res));
  if (res->kind == DORM_RESULT_COUNT) w_count = res->u.count;
  return dorm_result_none();
}
static int wait_for(dorm_deferred *d) {
  w_done = 0;
  if (!d) return -1;
  dorm_deferred_add_both(d, w_step, NULL);
  while (!w_done) uv_run(&uv, UV_RUN_ONCE);
  return w_err;
}

static void row_values(int i, char *name, size_t cap, char *country) {
  snprintf(name, cap, "name%d", i);
  country[0] = 'A' + (char)(i % 26);
  country[1] = 'A' + (char)((i / 26) % 26);
  country[2] = '\0';
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "copy";
  dorm_schema_builder *b = dorm_schema_builder_new();
  dorm_schema_builder_model(b, "Author", NULL);
  dorm_schema_builder_field(b, "name", DORM_FIELD_VARCHAR, 0);
  dorm_schema_builder_max_length(b, 100);
  dorm_schema_builder_field(b, "age", DORM_FIELD_INTEGER, DORM_FIELD_NULL);
  dorm_schema_builder_field(b, "country", DORM_FIELD_VARCHAR, 0);
  dorm_schema_builder_max_length(b, 2);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_builder_finish(b, &err);
  if (!s) {
    fprintf(stderr, "schema: %s\n", err.message);
    return 1;
  }
  const dorm_model *Author = dorm_schema_model(s, "Author");
  char name[32], country[3];
  if (!strcmp(mode, "csv")) {
    FILE *f = argc > 2 ? fopen(argv[2], "w") : NULL;
    if (!f) return 1;
    for (int i = 0; i < NROWS; i++) {
      row_values(i, name, sizeof name, country);
      fprintf(f, "%s,%d,%s\n", name, i % 90, country);
    }
    fclose(f);
    dorm_schema_free(s);
    return 0;
  }
  const char *url = getenv("DORM_BENCH_PG");
  if (!url) {
    /* make bench: the driver starts a server and runs psql beside us */
    dorm_schema_free(s);
    return system("sh bench/b4_pg.sh") == 0 ? 0 : 1;
  }
  uv_loop_init(&uv);
  loop = dorm_loop_new(&uv);
  dorm_db *db = dorm_db_open(loop, url, NULL, &err);
  if (!db || wait_for(dorm_db_ready(db))) {
    fprintf(stderr, "open: %s\n", err.message);
    return 1;
  }
  /* the table, as the DDL compiler makes it, empty */
  dorm_ddl ddl;
  dorm_ddl_init(&ddl);
  dorm_ddl_create_model(Author, NULL, 0, DORM_DIALECT_POSTGRES, &ddl, NULL);
  wait_for(dorm_async_execute(db, "DROP TABLE IF EXISTS author", NULL, 0));
  if (wait_for(
          dorm_async_execute_many(db, (const char *const *)ddl.stmts, ddl.n)))
    return 1;
  dorm_ddl_free(&ddl);
  double t = now();
  dorm_query *q = dorm_insert(Author);
  for (int i = 0; i < NROWS; i++) {
    if (i) dorm_insert_next_row(q);
    row_values(i, name, sizeof name, country);
    dorm_set(q, "name", dorm_str(name));
    dorm_set(q, "age", dorm_int(i % 90));
    dorm_set(q, "country", dorm_str(country));
  }
  if (!strcmp(mode, "insert")) dorm_on_conflict_do_nothing(q);
  double built = now();
  dorm_deferred *d = dorm_async_bulk_create(db, q);
  double called = now();
  dorm_query_free(q);
  if (wait_for(d) || w_count != NROWS) {
    fprintf(stderr, "bulk_create failed (%lld rows)\n", (long long)w_count);
    return 1;
  }
  double el = now() - t;
  printf("rows/s %.0f\n", NROWS / el);
  if (getenv("DORM_BENCH_SPLIT"))
    fprintf(stderr, "build %.1f ms, call (compile) %.1f ms, wait %.1f ms\n",
            (built - t) * 1e3, (called - built) * 1e3,
            (el - (called - t)) * 1e3);
  dorm_db_close(db, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  uv_loop_close(&uv);
  dorm_schema_free(s);
  return 0;
}
