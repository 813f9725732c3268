/* SPDX-License-Identifier: MIT */
/* tests/dbsuite.h — the behavioural suite of the database facade
 * (tests/test_db_*.c, one program per feature), written once and run
 * against every backend in the table below: the same calls must give the
 * same results, errors and callback behaviour on SQLite and PostgreSQL.
 *
 * Each test opens a fresh database (SQLite: a file in a new temporary
 * directory), creates the tables of tests/data/query_models.json with the
 * DDL compiler, and runs on a real libuv loop.  t_await (tests/dbtest.h)
 * checks on every call that the deferred had not fired when the call
 * returned (rule R2 of dorm/deferred.h), that its steps run on the loop
 * thread and exactly once.
 *
 * Adding a backend is one line in `backends`: a name and a function that
 * gives a URL for a fresh, empty database (or returns -1 to skip it, e.g.
 * when its server is not configured).  PostgreSQL runs three ways: on the
 * suite's server, on the scale-out cluster's primary with its two
 * replicas (reads on the replicas, read-your-writes keeping every result
 * the same), and through PgBouncer in transaction pooling mode (the
 * cluster comes from tests/run.sh: tests/pg_cluster.sh).  A backend that is
 * not compiled in (dorm_db_open says DORM_EUNSUPPORTED) or not configured
 * (no DORM_TEST_PG: sh tests/run.sh quick) is skipped with a message.
 *
 * Header-only (static inline functions) so each program has its own copy;
 * a program's main is dbsuite_main(tests) with T(test) entries.
 */
#ifndef DORM_TEST_DBSUITE_H
#define DORM_TEST_DBSUITE_H

#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbtest.h"
#include "support/support.h"

/* ---- backends ----------------------------------------------------------- */

static char T_dir[256];
/* dorm_db_options.replicas for the database the url function gave */
static char T_replicas[1024];

static inline void rm_dir(void) {
  if (!T_dir[0]) return;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", T_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", T_dir);
  T_dir[0] = '\0';
}

static inline int sqlite_url(char *buf, size_t cap) {
  snprintf(T_dir, sizeof T_dir, "/tmp/dorm-test-db.XXXXXX");
  if (!mkdtemp(T_dir)) return -1;
  snprintf(buf, cap, "sqlite:///%s/t.db", T_dir); /* four slashes: absolute */
  return 0;
}

static inline int memory_url(char *buf, size_t cap) {
  snprintf(buf, cap, "sqlite::memory:");
  return 0;
}

/* The PostgreSQL backend: a fresh schema per test on the suite's server. */
static inline int pg_url(char *buf, size_t cap) {
  return dorm_test_pg_fresh_schema("t", buf, cap);
}

typedef struct backend_case {
  const char *name;
  int (*url)(char *buf, size_t cap);
} backend_case;

/* Run sql on the cluster's primary (blocking: a test's set-up). */
static inline int cluster_admin(const char *sql) {
  const char *primary = getenv("DORM_CLUSTER_PRIMARY");
  if (!primary) return -1;
  PGconn *pg = PQconnectdb(primary);
  int ok = PQstatus(pg) == CONNECTION_OK;
  if (ok) {
    PGresult *r = PQexec(pg, sql);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "cluster: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
  } else {
    fprintf(stderr, "cluster: %s", PQerrorMessage(pg));
  }
  PQfinish(pg);
  return ok ? 0 : -1;
}

/* The cluster's primary and replicas, a fresh schema per test: every URI
 * gets options=-csearch_path=<schema> (percent-encoded). */
static inline int replicas_url(char *buf, size_t cap) {
  const char *primary = getenv("DORM_CLUSTER_PRIMARY");
  const char *replicas = getenv("DORM_CLUSTER_REPLICAS");
  if (!primary || !replicas) return -1;
  static int n;
  char schema[64], sql[128];
  snprintf(schema, sizeof schema, "r_%d_%d", (int)getpid(), ++n);
  snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
  if (cluster_admin(sql)) return -1;
  snprintf(buf, cap, "%s?options=-csearch_path%%3D%s", primary, schema);
  size_t off = 0;
  T_replicas[0] = 0;
  const char *p = replicas;
  while (*p) {
    const char *comma = strchr(p + 1, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    off += (size_t)snprintf(T_replicas + off, sizeof T_replicas - off,
                            "%s%.*s?options=-csearch_path%%3D%s",
                            off ? "," : "", (int)len, p, schema);
    p += len;
    if (*p == ',') p++;
  }
  return 0;
}

/* Through PgBouncer (transaction pooling): a fresh database per test,
 * since the bouncer drops startup options such as search_path. */
static inline int bouncer_url(char *buf, size_t cap) {
  const char *bouncer = getenv("DORM_CLUSTER_BOUNCER");
  if (!bouncer) return -1;
  static int n;
  char name[64], sql[128];
  snprintf(name, sizeof name, "b_%d_%d", (int)getpid(), ++n);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  if (cluster_admin(sql)) return -1;
  const char *slash = strrchr(bouncer, '/');
  snprintf(buf, cap, "%.*s/%s?pgbouncer=1", (int)(slash - bouncer), bouncer,
           name);
  return 0;
}

static const backend_case backends[] = {
    {"sqlite (file)", sqlite_url},
    {"sqlite (memory)", memory_url},
    {"postgresql", pg_url},
    {"postgresql (primary + 2 replicas)", replicas_url},
    {"postgresql (pgbouncer)", bouncer_url},
};

static const backend_case *B; /* the backend being tested */
static char T_url[1024];      /* the URL the test's database was opened on */

/* ---- fixtures ----------------------------------------------------------- */

static dorm_schema *S;
static const dorm_model *Author, *Entry, *Tag;
static dorm_db *DB;

static inline int setup(void **state) {
  (void)state;
  char url[512];
  t_loop_open();
  T_replicas[0] = 0;
  if (B->url(url, sizeof url)) return -1;
  snprintf(T_url, sizeof T_url, "%s", url);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.replicas = T_replicas;
  o.replica_check_ms = 20;
  DB = dorm_db_open(T_loop, url, &o, &err);
  if (!DB) {
    fprintf(stderr, "open %s: %s\n", url, err.message);
    return -1;
  }
  static const char *const models[] = {"Author", "Tag", "Entry", NULL};
  t_create_tables(DB, S, models);
  return 0;
}

static inline int teardown(void **state) {
  (void)state;
  t_loop_close(DB);
  DB = NULL;
  rm_dir();
  return 0;
}

/* Insert an author; returns its id. */
static inline int64_t add_author(const char *name, int age,
                                 const char *country) {
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str(name));
  if (age >= 0) dorm_set(q, "age", dorm_int(age));
  if (country) dorm_set(q, "country", dorm_str(country));
  dorm_result r = t_ok(dorm_async_create(DB, q));
  dorm_query_free(q);
  assert_int_equal(r.kind, DORM_RESULT_ROW);
  int64_t id = dorm_row_int(r.u.row.row, "id");
  assert_true(id > 0);
  dorm_result_free(&r);
  return id;
}

static inline int64_t add_entry(int64_t author, int64_t editor,
                                const char *headline, double rating) {
  dorm_query *q = dorm_insert(Entry);
  dorm_set(q, "author", dorm_int(author));
  if (editor > 0) dorm_set(q, "editor", dorm_int(editor));
  dorm_set(q, "headline", dorm_str(headline));
  dorm_set(q, "rating", dorm_float(rating));
  dorm_result r = t_ok(dorm_async_create(DB, q));
  dorm_query_free(q);
  int64_t id = dorm_row_int(r.u.row.row, "id");
  dorm_result_free(&r);
  return id;
}

static inline void seed(void) {
  add_author("Ann", 30, "GB");
  add_author("Bob", 17, NULL);
  add_author("Cid", 45, "FR");
  add_author("Dee", -1, NULL);
  add_author("ann b", 22, "GB");
}

/* Names of rows, joined by ',' */
static inline void names_of(const dorm_rows *rows, char *buf, size_t cap) {
  buf[0] = '\0';
  for (size_t i = 0; i < dorm_rows_count(rows); i++) {
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s%s", i ? "," : "",
             dorm_row_text(dorm_rows_row(rows, i), "name"));
  }
}

static inline void expect_names(dorm_query *q, const char *want) {
  dorm_result r = t_ok(dorm_async_filter(DB, q));
  assert_int_equal(r.kind, DORM_RESULT_ROWS);
  char got[512];
  names_of(r.u.rows.rows, got, sizeof got);
  assert_string_equal(got, want);
  dorm_result_free(&r);
  dorm_query_free(q);
}

/* Insert a tag; returns its id. */
static inline int64_t add_tag(const char *name) {
  dorm_query *q = dorm_insert(Tag);
  dorm_set(q, "name", dorm_str(name));
  dorm_result r = t_ok(dorm_async_create(DB, q));
  dorm_query_free(q);
  int64_t id = dorm_row_int(r.u.row.row, "id");
  dorm_result_free(&r);
  return id;
}

/* ---- main --------------------------------------------------------------- */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

static inline int compiled_in(const backend_case *b) {
  char url[512];
  if (b->url(url, sizeof url)) return 0;
  uv_loop_t uv;
  uv_loop_init(&uv);
  dorm_loop *loop = dorm_loop_new(&uv);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_db *db = dorm_db_open(loop, url, NULL, &err);
  if (db) {
    dorm_db_close(db, NULL, NULL);
    uv_run(&uv, UV_RUN_DEFAULT); /* the close finishes before the loop's */
  }
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  uv_loop_close(&uv);
  rm_dir();
  if (!db && err.code != DORM_EUNSUPPORTED)
    fprintf(stderr, "%s: %s\n", b->name, err.message);
  return db != NULL;
}

/* Run the n tests once per backend (those not there are skipped, said on
 * stdout); 0 when every run passed. */
static inline int dbsuite_run(const struct CMUnitTest *tests, size_t n) {
  S = dorm_schema_load_file("tests/data/query_models.json", NULL);
  if (!S) {
    fprintf(stderr, "cannot load tests/data/query_models.json\n");
    return 1;
  }
  Author = dorm_schema_model(S, "Author");
  Entry = dorm_schema_model(S, "Entry");
  Tag = dorm_schema_model(S, "Tag");
  int failed = 0;
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
    B = &backends[i];
    if (!compiled_in(B)) {
      printf("[ SKIPPED  ] backend %s: not compiled in or not configured\n",
             B->name);
      continue;
    }
    failed += _cmocka_run_group_tests(B->name, tests, n, NULL, NULL);
  }
  dorm_schema_free(S);
  S = NULL;
  return failed ? 1 : 0;
}

#define dbsuite_main(tests) dbsuite_run(tests, sizeof tests / sizeof tests[0])

#endif /* DORM_TEST_DBSUITE_H */
