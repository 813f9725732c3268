/* SPDX-License-Identifier: MIT */
/* bench/bench_stream.c — B6: a whole table streamed through
 * dorm_async_iterate, every row decoded (docs/performance.md).
 *
 *   SELECT id, a, b, c FROM b6 ORDER BY id     -- 4 columns
 *
 * (bigint, integer, varchar(32), double precision), chunk_rows rows at a
 * time.  The callback reads every value of every row (by column
 * position, dorm_row_value_at, the columns found once per chunk) into a
 * checksum and asks for the next chunk.  Prints the rows, the seconds, rows/s
 * and the process's peak RSS (getrusage: the whole program, libraries
 * included).
 *
 *   bench_stream URL [chunk_rows]
 *
 * bench/b6.sh starts a throwaway server, fills b6 with 1,000,000 and
 * 5,000,000 rows and runs this beside psql's COPY TO STDOUT (and Bun.sql
 * when its runtime is there), in the same run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include "dorm.h"

static const char *MODELS =
    "{\"models\": [{\"name\": \"B6\", \"table\": \"b6\", \"fields\": ["
    "  {\"name\": \"id\", \"type\": \"bigint\", \"primary_key\": true},"
    "  {\"name\": \"a\", \"type\": \"integer\"},"
    "  {\"name\": \"b\", \"type\": \"varchar\", \"max_length\": 32},"
    "  {\"name\": \"c\", \"type\": \"float\"}]}]}";

static uv_loop_t uv;
static dorm_loop *loop;
static dorm_db *db;
static uint64_t rows, checksum;
static int status = 1;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int on_chunk(dorm_iter *it, const dorm_rows *chunk, void *arg) {
  (void)it;
  (void)arg;
  size_t n = dorm_rows_count(chunk);
  /* the columns by position, looked up once per chunk */
  int ci = dorm_rows_column_index(chunk, "id"),
      ca = dorm_rows_column_index(chunk, "a");
  int cb = dorm_rows_column_index(chunk, "b"),
      cc = dorm_rows_column_index(chunk, "c");
  for (size_t i = 0; i < n; i++) {
    const dorm_row *r = dorm_rows_row(chunk, i);
    const dorm_value *id = dorm_row_value_at(r, (size_t)ci);
    const dorm_value *a = dorm_row_value_at(r, (size_t)ca);
    const dorm_value *b = dorm_row_value_at(r, (size_t)cb);
    const dorm_value *c = dorm_row_value_at(r, (size_t)cc);
    checksum += (uint64_t)id->u.i + (uint64_t)a->u.i +
                (b->u.s.len ? (uint64_t)(unsigned char)b->u.s.ptr[0] : 0) +
                (uint64_t)c->u.f;
  }
  rows += n;
  return DORM_ITER_CONTINUE;
}

static void closed(void *arg) {
  (void)arg;
  dorm_loop_close(loop, NULL, NULL);
}

static dorm_result done(dorm_result *res, void *arg) {
  if (dorm_result_is_error(res))
    fprintf(stderr, "bench_stream: %s\n", dorm_result_message(res));
  else
    status = 0;
  dorm_db_close(db, closed, NULL);
  return dorm_result_none();
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_stream URL [chunk_rows]\n");
    return 2;
  }
  size_t chunk = argc > 2 ? (size_t)atol(argv[2]) : 2000;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_string(MODELS, NULL, &err);
  if (!s) {
    fprintf(stderr, "%s\n", err.message);
    return 1;
  }
  uv_loop_init(&uv);
  loop = dorm_loop_new(&uv);
  db = dorm_db_open(loop, argv[1], NULL, &err);
  if (!db) {
    fprintf(stderr, "%s\n", err.message);
    return 1;
  }
  dorm_query *q = dorm_select(dorm_schema_model(s, "B6"));
  dorm_order_by(q, "id");
  double t0 = now_s();
  dorm_deferred *d = dorm_async_iterate(db, q, chunk, on_chunk, NULL);
  dorm_query_free(q);
  dorm_deferred_add_both(d, done, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  double secs = now_s() - t0;
  uv_loop_close(&uv);
  dorm_schema_free(s);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf(
      "dorm_async_iterate (chunk %zu): %llu rows in %.3f s = %.0f rows/s, "
      "peak RSS %.1f MiB (checksum %llu)\n",
      chunk, (unsigned long long)rows, secs, rows / secs, ru.ru_maxrss / 1024.0,
      (unsigned long long)checksum);
  return status;
}
