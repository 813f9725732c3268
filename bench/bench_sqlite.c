/* SPDX-License-Identifier: MIT */
/* bench/bench_sqlite.c — B3 and B4 (docs/performance.md) on SQLite, each beside
 * its ceiling measured in the same run.
 *
 * B4: 100,000 Author rows through dorm_async_bulk_create (building the
 *     INSERT query included), against the sqlite3 shell's `.import` of the
 *     same rows as CSV into the same table shape.
 * B3: point lookups `SELECT id, name, age, country FROM author WHERE id =
 *     ?` on those 100,000 rows (WAL): dorm_async_get with 256 in flight,
 *     rows decoded and read by name in the callback, against a direct
 *     synchronous C loop on one prepared statement over the same file.
 *     node-sqlite3 (node/sqlite_pk.js of the peers) runs after, when node,
 *     the package and the peers are there.  The peers are not part of this
 *     repository: they are read from $DORM_PEERS, by default
 *     ../shared/peers beside it, and the run says when they are missing.
 *
 * Medians of several runs; each line gives the ratio to the ceiling.
 * Usage: bench_sqlite [runs]   (DORM_BENCH_READERS sets reader threads)
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dorm.h"

#define NROWS 100000
#define NLOOKUPS 200000
#define INFLIGHT 256

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[n / 2];
}

static uv_loop_t uv;
static dorm_loop *loop;
static const dorm_model *Author;
static char dir[128];

/* ---- waiting for a deferred --------------------------------------------- */

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
  dorm_deferred_add_both(d, w_step, NULL);
  while (!w_done) uv_run(&uv, UV_RUN_ONCE);
  return w_err;
}

/* ---- B4 ----------------------------------------------------------------- */

static void row_values(int i, char *name, size_t cap, char *country) {
  snprintf(name, cap, "name%d", i);
  country[0] = 'A' + (char)(i % 26);
  country[1] = 'A' + (char)((i / 26) % 26);
  country[2] = '\0';
}

static double b4_dorm(const char *file) {
  char url[512];
  snprintf(url, sizeof url, "sqlite:///%s", file);
  unlink(file);
  dorm_db *db = dorm_db_open(loop, url, NULL, NULL);
  dorm_ddl ddl;
  dorm_ddl_init(&ddl);
  dorm_ddl_create_model(Author, NULL, 0, DORM_DIALECT_SQLITE, &ddl, NULL);
  wait_for(dorm_async_execute_many(db, (const char *const *)ddl.stmts, ddl.n));
  dorm_ddl_free(&ddl);
  double t = now();
  dorm_query *q = dorm_insert(Author);
  char name[32], country[3];
  for (int i = 0; i < NROWS; i++) {
    if (i) dorm_insert_next_row(q);
    row_values(i, name, sizeof name, country);
    dorm_set(q, "name", dorm_str(name));
    dorm_set(q, "age", dorm_int(i % 90));
    dorm_set(q, "country", dorm_str(country));
  }
  dorm_deferred *d = dorm_async_bulk_create(db, q);
  dorm_query_free(q);
  if (wait_for(d) || w_count != NROWS) {
    fprintf(stderr, "bulk_create failed\n");
    exit(1);
  }
  double el = now() - t;
  dorm_db_close(db, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  return NROWS / el;
}

static double b4_import(const char *csv, const char *file) {
  unlink(file);
  sqlite3 *db;
  sqlite3_open(file, &db);
  /* .import fills every column of the table: the same shape without the
   * id column (the rowid is the key either way) */
  sqlite3_exec(db,
               "CREATE TABLE author (name varchar(100) NOT NULL, age integer "
               "NULL, country varchar(2) NOT NULL)",
               NULL, NULL, NULL);
  sqlite3_close(db);
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "sqlite3 '%s' -cmd '.mode csv' '.import %s author' >/dev/null", file,
           csv);
  double t = now();
  if (system(cmd) != 0) return 0;
  double el = now() - t;
  return NROWS / el;
}

/* ---- B3 ----------------------------------------------------------------- */

static double b3_direct(const char *file) {
  sqlite3 *db;
  sqlite3_stmt *st;
  if (sqlite3_open(file, &db)) return 0;
  sqlite3_prepare_v2(db,
                     "SELECT \"author\".\"id\", \"author\".\"name\", "
                     "\"author\".\"age\", \"author\".\"country\" FROM "
                     "\"author\" WHERE \"author\".\"id\" = ?",
                     -1, &st, 0);
  long sum = 0;
  double t = now();
  for (int i = 0; i < NLOOKUPS; i++) {
    sqlite3_bind_int(st, 1, 1 + (i * 7919) % NROWS);
    if (sqlite3_step(st) == SQLITE_ROW)
      sum += sqlite3_column_int(st, 2) + sqlite3_column_bytes(st, 1);
    sqlite3_reset(st);
  }
  double el = now() - t;
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (sum == 0) fprintf(stderr, "no rows?\n");
  return NLOOKUPS / el;
}

static dorm_db *b3_db;
static long issued, finished, errors, checksum;

static void issue(void);
static dorm_result on_row(dorm_result *res, void *arg) {
  (void)arg;
  finished++;
  const dorm_row *row = dorm_result_row_of(res);
  if (!row) {
    errors++;
    if (errors < 3) fprintf(stderr, "error: %s\n", dorm_result_message(res));
  } else {
    checksum += dorm_row_int(row, "age") +
                (long)strlen(dorm_row_text(row, "name")) +
                (dorm_row_text(row, "country") ? 1 : 0);
  }
  issue();
  return dorm_result_none();
}

static void issue(void) {
  if (issued >= NLOOKUPS) return;
  long i = issued++;
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "id", dorm_int(1 + (i * 7919) % NROWS));
  dorm_order_by(q, NULL);
  dorm_deferred *d = dorm_async_get(b3_db, q);
  dorm_query_free(q);
  dorm_deferred_add_both(d, on_row, NULL);
}

static double b3_dorm(const char *file, int readers) {
  char url[512];
  snprintf(url, sizeof url, "sqlite:///%s?readers=%d", file, readers);
  b3_db = dorm_db_open(loop, url, NULL, NULL);
  wait_for(dorm_db_ready(b3_db));
  issued = finished = errors = checksum = 0;
  double t = now();
  for (int i = 0; i < INFLIGHT; i++) issue();
  while (finished < NLOOKUPS) uv_run(&uv, UV_RUN_ONCE);
  double el = now() - t;
  if (errors) fprintf(stderr, "%ld errors\n", errors);
  dorm_db_close(b3_db, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  return NLOOKUPS / el;
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 5;
  if (runs < 1) runs = 1;
  int readers =
      getenv("DORM_BENCH_READERS") ? atoi(getenv("DORM_BENCH_READERS")) : 2;
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
  Author = dorm_schema_model(s, "Author");
  snprintf(dir, sizeof dir, "/tmp/dorm-bench-sqlite.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  char file[256], file2[256], csv[256];
  snprintf(file, sizeof file, "%s/b.db", dir);
  snprintf(file2, sizeof file2, "%s/import.db", dir);
  snprintf(csv, sizeof csv, "%s/rows.csv", dir);
  FILE *f = fopen(csv, "w");
  char name[32], country[3];
  for (int i = 0; i < NROWS; i++) {
    row_values(i, name, sizeof name, country);
    fprintf(f, "%s,%d,%s\n", name, i % 90, country);
  }
  fclose(f);
  uv_loop_init(&uv);
  loop = dorm_loop_new(&uv);

  double d4[16], i4[16];
  if (runs > 16) runs = 16;
  for (int r = 0; r < runs; r++) {
    i4[r] = b4_import(csv, file2);
    d4[r] = b4_dorm(file);
  }
  double md4 = median(d4, runs), mi4 = median(i4, runs);
  printf("B4 sqlite3 .import (CSV, shell):       %9.0f rows/s\n", mi4);
  printf(
      "B4 dorm_async_bulk_create (incl. build):%9.0f rows/s  (%.0f%% of "
      ".import)\n",
      md4, mi4 > 0 ? 100 * md4 / mi4 : 0);

  double c3[16], d3[16];
  for (int r = 0; r < runs; r++) {
    c3[r] = b3_direct(file);
    d3[r] = b3_dorm(file, readers);
  }
  double mc3 = median(c3, runs), md3 = median(d3, runs);
  printf("B3 C direct, synchronous (ceiling):    %9.0f queries/s\n", mc3);
  printf(
      "B3 dorm_async_get, %d in flight, %d readers: %9.0f queries/s  (%.0f%% "
      "of direct C)\n",
      INFLIGHT, readers, md3, 100 * md3 / mc3);
  fflush(stdout);

  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  uv_loop_close(&uv);
  dorm_schema_free(s);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) return 1;

  /* the node-sqlite3 peer, same session */
  const char *peers = getenv("DORM_PEERS");
  if (!peers || !*peers) peers = "../shared/peers";
  char peer[1024];
  snprintf(peer, sizeof peer, "%s/node/sqlite_pk.js", peers);
  if (access(peer, F_OK) != 0) {
    printf("B3 node-sqlite3 peer skipped: no peers at %s (set DORM_PEERS)\n",
           peers);
  } else if (access("build/peers/node/node_modules/sqlite3", F_OK) == 0) {
    printf("B3 peers (%s):\n", peer);
    fflush(stdout);
    char run[1200];
    snprintf(run, sizeof run,
             "NODE_PATH=build/peers/node/node_modules node '%s'", peer);
    if (system(run)) printf("  (node peer failed)\n");
  } else {
    printf("B3 node-sqlite3 peer not installed (sh bench/peers.sh)\n");
  }
  return 0;
}
