/* SPDX-License-Identifier: MIT */
/* tests/test_pg.c — the PostgreSQL backend against a real server: URLs,
 * parameter types, the pipeline (an error aborts only its request),
 * prepared statements, and the faults: a backend killed with
 * pg_terminate_backend while queries are in flight, while idle in the pool
 * and inside a transaction; the server restarted; a query cancelled and
 * timed out; connecting to nothing, to a server that never answers, and
 * through a multi-host URL.  Then load: 10,000 queries in flight, fairness
 * across the pool, the queue limit.
 *
 * In every fault case each pending request must complete exactly once with
 * its own error code, nothing may hang, and the next query must succeed on
 * a fresh connection.  The suite's server comes from tests/run.sh
 * (tests/pg_harness.sh); a separate blocking libpq connection plays the
 * administrator (blocking is fine in a test, never in dorm).
 */
#include <libpq-fe.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dbtest.h"
#include "support/support.h"
#include "backends/pg/pg_int.h"

/* ---- helpers ------------------------------------------------------------- */

static const char *conninfo(void) {
  const char *c = dorm_test_pg_conninfo();
  if (!c) {
    fprintf(stderr, "DORM_TEST_PG is not set: run under tests/run.sh\n");
    fail();
  }
  return c;
}

static PGconn *admin(void) {
  char ci[512];
  snprintf(ci, sizeof ci, "%s application_name=dorm_admin", conninfo());
  PGconn *pg = PQconnectdb(ci);
  if (PQstatus(pg) != CONNECTION_OK) {
    fprintf(stderr, "admin: %s", PQerrorMessage(pg));
    fail();
  }
  return pg;
}

/* Run sql on a blocking admin connection; returns the first value as an
 * integer (0 when none). */
static long admin_exec(const char *sql) {
  PGconn *pg = admin();
  PGresult *r = PQexec(pg, sql);
  ExecStatusType s = PQresultStatus(r);
  if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
    fprintf(stderr, "admin: %s: %s", sql, PQresultErrorMessage(r));
    fail();
  }
  long v = 0;
  if (s == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
    v = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  PQfinish(pg);
  return v;
}

/* Every database a test opens has its own application_name. */
static char g_app[32];
static int g_app_n;

/* Terminate every session of the current test's database; returns how
 * many. */
static long kill_dorm_sessions(void) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
           "WHERE application_name = '%s'",
           g_app);
  return admin_exec(sql);
}

/* Wait (running the loop) until the current test's database has n
 * sessions on the server that started after since_ms (server clock, ms
 * since the epoch; 0 for any): a pool connects its connections in the
 * background, the later ones after the first query may have answered, and
 * after a kill it reconnects them. */
static void wait_sessions(long n, long since_ms) {
  char sql[320];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
           "'%s' AND backend_start > to_timestamp(%ld / 1000.0)",
           g_app, since_ms);
  for (int i = 0; i < 1000 && admin_exec(sql) != n; i++) t_run_for(10);
  assert_int_equal(admin_exec(sql), n);
}

/* The server's clock, ms since the epoch. */
static long server_ms(void) {
  return admin_exec(
      "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint");
}

static dorm_db *open_db(const char *extra, int pool, size_t max_pending) {
  char url[1024];
  snprintf(g_app, sizeof g_app, "dorm_t%d_%d", (int)getpid(), ++g_app_n);
  snprintf(url, sizeof url, "%s application_name=%s %s", conninfo(), g_app,
           extra ? extra : "");
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.pool_size = pool;
  o.max_pending = max_pending;
  return t_open_ready(url, &o);
}

static int64_t scalar(dorm_db *db, const char *sql) {
  dorm_result r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  assert_int_equal(r.kind, DORM_RESULT_ROWS);
  const dorm_row *row = dorm_rows_row(dorm_result_rows_of(&r), 0);
  assert_non_null(row);
  int64_t v =
      dorm_row_int(row, dorm_rows_column_name(dorm_result_rows_of(&r), 0));
  dorm_result_free(&r);
  return v;
}

#define run_for t_run_for

/* A batch of deferreds and their outcomes, counted exactly once each. */
typedef struct batch {
  int n;
  int fired[64];
  int code[64];
} batch;
typedef struct bslot {
  batch *b;
  int i;
} bslot;
static bslot g_slots[64];

static dorm_result batch_step(dorm_result *res, void *arg) {
  bslot *s = arg;
  t_on_loop_thread();
  s->b->fired[s->i]++;
  s->b->code[s->i] = dorm_result_code(res);
  return dorm_result_none();
}

static void batch_add(batch *b, dorm_deferred *d) {
  assert_non_null(d);
  assert_false(dorm_deferred_fired(d));
  int i = b->n++;
  g_slots[i].b = b;
  g_slots[i].i = i;
  assert_int_equal(dorm_deferred_add_both(d, batch_step, &g_slots[i]), 0);
}

static void batch_wait(batch *b) {
  for (;;) {
    int all = 1;
    for (int i = 0; i < b->n; i++)
      if (!b->fired[i]) all = 0;
    if (all) break;
    uv_run(&T_uv, UV_RUN_ONCE);
  }
  for (int i = 0; i < b->n; i++) assert_int_equal(b->fired[i], 1);
}

static int setup(void **state) {
  (void)state;
  t_loop_open();
  return 0;
}
static int teardown(void **state) {
  (void)state;
  return 0;
}

/* ---- URLs ---------------------------------------------------------------- */

static void test_urls(void **state) {
  (void)state;
  dorm_error err;
  const char *bad[] = {"postgresql://localhost/db?nosuchoption=1",
                       "postgresql://localhost/db?pool_size=0",
                       "host=/tmp nosuchkeyword=1", "postgres://[bad"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dorm_error_clear(&err);
    assert_null(dorm_db_open(T_loop, bad[i], NULL, &err));
    assert_int_equal(err.code, DORM_EURL);
  }
  /* a URI with dorm's pool_size parameter and libpq's own */
  char url[512];
  snprintf(url, sizeof url,
           "postgresql:///dorm_test?host=%s&port=%s&user=dorm&pool_size=3"
           "&application_name=dorm",
           getenv("DORM_TEST_PGSOCK"), getenv("DORM_TEST_PGPORT"));
  dorm_error_clear(&err);
  dorm_db *db = dorm_db_open(T_loop, url, NULL, &err);
  assert_non_null(db);
  assert_string_equal(dorm_db_backend_name(db), "postgresql");
  assert_int_equal(dorm_db_dialect(db), DORM_DIALECT_POSTGRES);
  dorm_result r = t_ok(dorm_db_ready(db));
  dorm_result_free(&r);
  /* our session settings */
  r = t_ok(dorm_async_execute(db,
                              "SELECT current_setting('TimeZone') AS tz, "
                              "current_setting('client_encoding') AS enc",
                              NULL, 0));
  const dorm_row *row = dorm_result_row_of(&r);
  assert_string_equal(dorm_row_text(row, "tz"), "UTC");
  assert_string_equal(dorm_row_text(row, "enc"), "UTF8");
  dorm_result_free(&r);
  /* the pool connects every slot at open */
  int64_t n = 0;
  for (int i = 0; i < 100 && n != 3; i++) {
    run_for(20);
    n = scalar(db,
               "SELECT count(*) FROM pg_stat_activity "
               "WHERE application_name = 'dorm'");
  }
  assert_int_equal(n, 3);
  t_loop_close(db);
}

/* No message about a URL holds its password: libpq's parse errors quote
 * the URI, a URL naming no backend is echoed, and a replica list or a
 * keyword string can hold one too.  Every shape here is refused. */
static void test_url_secrets(void **state) {
  (void)state;
  static const char *const bad[] = {
      "postgresql://app:hunter2@[::1/app",
      "postgresql:/app:hunter2@db.example/app?sslmode=require",
      "postgres://app:hunter2@db/app?nosuchoption=1",
      "postgresql://app:hunter2@db/app?pool_size=0",
      "postgresql://app:hunter2@db/app?pool_size=000000000000005junk",
      "postgresql://app:hunter2@db/app?connect_timeout=hunter2",
      "postgresql://app:hunter2@db/app?pgbouncer=hunter2",
      "postgresql://app:hun%74er2@db/app?x=1",
      "postgresql://app@db/app?password=hunter2&nosuch=1",
      "host=db password=hunter2 nosuchkeyword=1",
      "host=db password='hunter2' sslmode",
      "host=db password = hunter2 bad\\",
      "mysql://app:hunter2@db/app",
      "sqlite://app:hunter2@host/x.db",
      "app:hunter2@db",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dorm_error err;
    dorm_error_clear(&err);
    assert_null(dorm_db_open(T_loop, bad[i], NULL, &err));
    assert_true(err.code != 0 && strlen(err.message) > 10);
    if (strstr(err.message, "hunter2") || strstr(err.message, "hun%74er2"))
      fail_msg("%s: the message shows the password: %s", bad[i], err.message);
  }
  /* replicas */
  static const char *const replicas[] = {
      "postgresql://r:hunter2@[::1/app", "host=r password=hunter2",
      "postgresql://r@db/app?password=hunter2&nosuch=1"};
  char url[512];
  snprintf(url, sizeof url, "postgresql:///dorm_test?host=%s&port=%s",
           getenv("DORM_TEST_PGSOCK"), getenv("DORM_TEST_PGPORT"));
  for (size_t i = 0; i < sizeof replicas / sizeof replicas[0]; i++) {
    dorm_db_options o;
    dorm_db_options_init(&o);
    o.replicas = replicas[i];
    dorm_error err;
    dorm_error_clear(&err);
    assert_null(dorm_db_open(T_loop, url, &o, &err));
    if (!err.code || strstr(err.message, "hunter2"))
      fail_msg("replicas %s: %s", replicas[i], err.message);
  }
  /* a URL that parses but cannot connect: the errback's message */
  dorm_error err;
  dorm_error_clear(&err);
  dorm_db *db = dorm_db_open(
      T_loop, "postgresql://app:hunter2@/x?host=/nonexistent&port=5999", NULL,
      &err);
  assert_non_null(db);
  char msg[512];
  assert_int_equal(t_err(dorm_db_ready(db), msg, sizeof msg), DORM_ECONN);
  assert_null(strstr(msg, "hunter2"));
  t_loop_close(db);
  t_loop_open();
  /* integers are checked whole, before any arithmetic */
  static const char *const numbers[] = {
      "postgresql://db/app?pool_size=000000000000005junk",
      "postgresql://db/app?pool_size=5junk",
      "postgresql://db/app?pool_size=",
      "postgresql://db/app?pool_size=99999999999999999999999",
      "postgresql://db/app?pool_size=-5",
      "postgresql://db/app?connect_timeout=99999999999999999999",
      "postgresql://db/app?connect_timeout=4294967297"};
  for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
    dorm_error_clear(&err);
    assert_null(dorm_db_open(T_loop, numbers[i], NULL, &err));
    if (err.code != DORM_EURL)
      fail_msg("%s: %s %s", numbers[i], dorm_err_name(err.code), err.message);
  }
  /* leading zeros are still a number */
  snprintf(url, sizeof url,
           "postgresql:///dorm_test?host=%s&port=%s&user=dorm&pool_size=0002",
           getenv("DORM_TEST_PGSOCK"), getenv("DORM_TEST_PGPORT"));
  dorm_error_clear(&err);
  db = dorm_db_open(T_loop, url, NULL, &err);
  assert_non_null(db);
  dorm_result r = t_ok(dorm_db_ready(db));
  dorm_result_free(&r);
  t_loop_close(db);
}

/* ---- parameters and results ---------------------------------------------- */

static void test_types(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 1, 0);
  static const unsigned char bytes[] = {0, 1, 0xff, '\\', 'x'};
  dorm_value p[] = {dorm_int(-9007199254740993LL),
                    dorm_float(0.1),
                    dorm_bool(1),
                    dorm_str("héllo 'q' \"d\""),
                    dorm_bytes(bytes, sizeof bytes),
                    dorm_decimal("-12.50"),
                    dorm_date("2024-05-01"),
                    dorm_time("13:45:00.25"),
                    dorm_datetime("2024-05-01 13:45:00"),
                    dorm_uuid("123E4567-E89B-12D3-A456-426614174000"),
                    dorm_json_text("{\"a\": [1, 2]}"),
                    dorm_null()};
  dorm_result r = t_ok(dorm_async_execute(
      db,
      "SELECT $1 AS i, $2 AS f, $3 AS b, $4::text AS t, $5 AS by, $6 AS d, "
      "$7 AS da, $8 AS ti, $9 AS dt, $10 AS u, $11 AS j, $12::int AS n, "
      "$9::timestamptz = '2024-05-01 13:45:00+00' AS utc",
      p, sizeof p / sizeof p[0]));
  const dorm_row *row = dorm_result_row_of(&r);
  assert_non_null(row);
  assert_true(dorm_row_int(row, "i") == -9007199254740993LL);
  assert_true(dorm_row_float(row, "f") == 0.1);
  assert_int_equal(dorm_row_bool(row, "b"), 1);
  assert_string_equal(dorm_row_text(row, "t"), "héllo 'q' \"d\"");
  size_t n = 0;
  const void *bp = dorm_row_bytes(row, "by", &n);
  assert_int_equal(n, sizeof bytes);
  assert_memory_equal(bp, bytes, n);
  assert_string_equal(dorm_row_text(row, "d"), "-12.50");
  assert_string_equal(dorm_row_text(row, "da"), "2024-05-01");
  assert_string_equal(dorm_row_text(row, "ti"), "13:45:00.25");
  assert_string_equal(dorm_row_text(row, "dt"), "2024-05-01T13:45:00Z");
  assert_string_equal(dorm_row_text(row, "u"),
                      "123e4567-e89b-12d3-a456-426614174000");
  json_t *j = dorm_row_json(row, "j");
  assert_non_null(j);
  assert_int_equal(json_array_size(json_object_get(j, "a")), 2);
  json_decref(j);
  assert_true(dorm_row_is_null(row, "n"));
  assert_int_equal(dorm_row_bool(row, "utc"), 1);
  dorm_result_free(&r);

  /* integers as the server prints them: up to 18 digits are read
   * directly, int8's extremes through strtoll */
  r = t_ok(dorm_async_execute(
      db,
      "SELECT 0::int8 AS z, -7 AS m, 999999999999999999 AS e18, "
      "-999999999999999999 AS me18, 9223372036854775807 AS mx, "
      "(-9223372036854775807 - 1) AS mn, 32767::int2 AS s",
      NULL, 0));
  row = dorm_result_row_of(&r);
  assert_true(dorm_row_int(row, "z") == 0);
  assert_true(dorm_row_int(row, "m") == -7);
  assert_true(dorm_row_int(row, "e18") == 999999999999999999LL);
  assert_true(dorm_row_int(row, "me18") == -999999999999999999LL);
  assert_true(dorm_row_int(row, "mx") == INT64_MAX);
  assert_true(dorm_row_int(row, "mn") == INT64_MIN);
  assert_true(dorm_row_int(row, "s") == 32767);
  dorm_result_free(&r);
  /* results sized from the PGresult: small ones in one block, more text
   * or more rows than fit spill into the arena's blocks */
  for (int k = 0; k < 3; k++) {
    static const char *const q[] = {
        "SELECT g AS i, repeat('x', g) AS s FROM generate_series(1, 3) g",
        "SELECT g AS i, repeat('x', 1000 * g) AS s "
        "FROM generate_series(1, 50) g",
        "SELECT g AS i, repeat('x', g % 97) AS s "
        "FROM generate_series(1, 3000) g"};
    static const int rows[] = {3, 50, 3000};
    r = t_ok(dorm_async_execute(db, q[k], NULL, 0));
    const dorm_rows *rs = dorm_result_rows_of(&r);
    assert_int_equal(dorm_rows_count(rs), rows[k]);
    for (int i = 0; i < rows[k]; i++) {
      const dorm_row *w = dorm_rows_row(rs, (size_t)i);
      assert_true(dorm_row_int(w, "i") == i + 1);
      size_t want = k == 0   ? (size_t)i + 1
                    : k == 1 ? 1000u * (size_t)(i + 1)
                             : (size_t)((i + 1) % 97);
      assert_int_equal(strlen(dorm_row_text(w, "s")), want);
    }
    dorm_result_free(&r);
  }

  /* text goes untyped: the server infers the column's type */
  r = t_ok(dorm_async_execute(db, "SELECT 1 WHERE 5 = $1 AND 'a' = $2",
                              (dorm_value[]){dorm_str("5"), dorm_str("a")}, 2));
  assert_int_equal(dorm_rows_count(dorm_result_rows_of(&r)), 1);
  dorm_result_free(&r);
  /* a NUL inside text cannot travel: refused, not truncated */
  char msg[200];
  assert_int_equal(
      t_err(dorm_async_execute(db, "SELECT $1::text",
                               (dorm_value[]){dorm_strn("a\0b", 3)}, 1),
            msg, sizeof msg),
      DORM_ETYPE);
  /* a statement without rows gives a count */
  assert_int_equal(
      t_count(dorm_async_execute(db, "CREATE TEMP TABLE tt (x int)", NULL, 0)),
      0);
  assert_int_equal(
      t_count(dorm_async_execute(
          db, "INSERT INTO tt SELECT generate_series(1, 7)", NULL, 0)),
      7);
  t_loop_close(db);
}

/* ---- the pipeline -------------------------------------------------------- */

static void test_pipeline_errors(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 1, 0); /* one connection: one pipeline */
  batch b = {0};
  for (int i = 0; i < 30; i++) {
    const char *sql = i % 3 == 1 ? "SELECT 1/0" : "SELECT 1";
    batch_add(&b, dorm_async_execute(db, sql, NULL, 0));
  }
  batch_wait(&b);
  for (int i = 0; i < 30; i++)
    assert_int_equal(b.code[i], i % 3 == 1 ? DORM_ERANGE : 0); /* 22012 */

  /* a request is atomic: its statements commit together or not at all */
  assert_int_equal(
      t_count(dorm_async_execute(db, "CREATE TABLE pipe_t (id int primary key)",
                                 NULL, 0)),
      0);
  const char *two[] = {"INSERT INTO pipe_t VALUES (1)",
                       "INSERT INTO pipe_t VALUES (1)"};
  assert_int_equal(t_err(dorm_async_execute_many(db, two, 2), NULL, 0),
                   DORM_EINTEGRITY);
  assert_int_equal(scalar(db, "SELECT count(*) FROM pipe_t"), 0);
  t_count(dorm_async_execute(db, "DROP TABLE pipe_t", NULL, 0));

  /* prepared once per connection, then reused */
  for (int i = 0; i < 20; i++) {
    dorm_value v = dorm_int(i);
    dorm_result r = t_ok(dorm_async_execute(db, "SELECT $1 + 1 AS x", &v, 1));
    assert_int_equal(dorm_row_int(dorm_result_row_of(&r), "x"), i + 1);
    dorm_result_free(&r);
  }
  assert_int_equal(scalar(db,
                          "SELECT count(*) FROM pg_prepared_statements "
                          "WHERE statement = 'SELECT $1 + 1 AS x'"),
                   1);
  /* a statement that fails to prepare fails every request that uses it,
   * with its own error, and is prepared again next time */
  batch c = {0};
  for (int i = 0; i < 3; i++)
    batch_add(&c, dorm_async_execute(db, "SELECT nosuchcolumn", NULL, 0));
  batch_wait(&c);
  for (int i = 0; i < 3; i++) assert_int_equal(c.code[i], DORM_EDB);
  assert_int_equal(scalar(db, "SELECT 5"), 5);
  t_loop_close(db);
}

/* An error inside a transaction: the later statements of that transaction
 * fail with "transaction aborted", and the block with the first error. */
static dorm_deferred *body_abort(dorm_db *tx, void *arg) {
  dorm_deferred **second = arg;
  dorm_deferred *a = dorm_async_execute(tx, "SELECT 1/0", NULL, 0);
  dorm_deferred_add_errback(a, batch_step, &g_slots[0]);
  *second = dorm_async_execute(tx, "SELECT 1", NULL, 0);
  return *second;
}

static void test_transaction_aborted(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 1, 0);
  batch b = {0};
  b.n = 1;
  g_slots[0].b = &b;
  g_slots[0].i = 0;
  dorm_deferred *second = NULL;
  char msg[256];
  assert_int_equal(
      t_err(dorm_async_atomic(db, body_abort, &second), msg, sizeof msg),
      DORM_ERANGE); /* the first error's code: 1/0 */
  assert_non_null(strstr(msg, "division by zero"));
  assert_int_equal(b.fired[0], 1);
  assert_int_equal(b.code[0], DORM_ERANGE);    /* 1/0 */
  assert_int_equal(scalar(db, "SELECT 3"), 3); /* the slot is usable */
  t_loop_close(db);
}

/* ---- faults -------------------------------------------------------------- */

static void test_kill_in_flight(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 1, 0);
  batch b = {0};
  batch_add(&b, dorm_async_execute(db, "SELECT pg_sleep(30)", NULL, 0));
  for (int i = 0; i < 10; i++)
    batch_add(&b, dorm_async_execute(db, "SELECT 1", NULL, 0));
  run_for(200); /* everything is on the wire, the sleep is running */
  assert_int_equal(kill_dorm_sessions(), 1);
  batch_wait(&b);
  for (int i = 0; i < b.n; i++) assert_int_equal(b.code[i], DORM_ECONN);
  /* the next query succeeds on a fresh connection */
  assert_int_equal(scalar(db, "SELECT 7"), 7);
  t_loop_close(db);
}

static void test_kill_idle(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 2, 0);
  assert_int_equal(scalar(db, "SELECT 1"), 1);
  wait_sessions(2, 0);
  long killed_at = server_ms();
  assert_int_equal(kill_dorm_sessions(), 2);
  /* the pool notices and reconnects in the background: queries made once
   * it has succeed (one made before may be on a connection whose end has
   * not reached us yet, and fail with DORM_ECONN: test_kill_in_flight) */
  wait_sessions(2, killed_at);
  run_for(50);
  batch b = {0};
  for (int i = 0; i < 20; i++)
    batch_add(&b, dorm_async_execute(db, "SELECT 1", NULL, 0));
  batch_wait(&b);
  for (int i = 0; i < b.n; i++) assert_int_equal(b.code[i], 0);
  t_loop_close(db);
}

/* Kill our session, then go on in the (lost) transaction. */
static dorm_result kill_then_more(dorm_result *res, void *arg) {
  dorm_db *tx = arg;
  (void)res;
  assert_int_equal(kill_dorm_sessions(), 1);
  return dorm_result_deferred(dorm_async_execute(tx, "SELECT 2", NULL, 0));
}

static dorm_deferred *body_killed(dorm_db *tx, void *arg) {
  (void)arg;
  dorm_async_execute(tx, "INSERT INTO kill_t VALUES (1)", NULL, 0);
  dorm_deferred *d = dorm_async_execute(tx, "SELECT 1", NULL, 0);
  dorm_deferred_add_callback(d, kill_then_more, tx);
  return d;
}

static void test_kill_in_transaction(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 1, 0);
  t_count(dorm_async_execute(db, "CREATE TABLE kill_t (id int)", NULL, 0));
  assert_int_equal(t_err(dorm_async_atomic(db, body_killed, NULL), NULL, 0),
                   DORM_ECONN);
  /* nothing of the transaction stayed, and the pool works again */
  assert_int_equal(scalar(db, "SELECT count(*) FROM kill_t"), 0);
  t_count(dorm_async_execute(db, "DROP TABLE kill_t", NULL, 0));
  t_loop_close(db);
}

static void pg_ctl(const char *what) {
  char cmd[1024];
  const char *bin = getenv("DORM_TEST_PGBIN");
  const char *data = getenv("DORM_TEST_PGDATA");
  const char *sock = getenv("DORM_TEST_PGSOCK");
  assert_non_null(bin);
  assert_non_null(data);
  assert_non_null(sock);
  /* pg_ctl restart reuses postmaster.opts: the harness's -k, -p, -c; the
   * log goes on in the harness's server.log (test_serve_m2m reads it) */
  if (getuid() == 0)
    snprintf(cmd, sizeof cmd,
             "su postgres -s /bin/sh -c \"'%s/pg_ctl' -D '%s' -l "
             "'%s/server.log' -w -t 60 -m fast %s >/dev/null 2>&1\"",
             bin, data, sock, what);
  else
    snprintf(cmd, sizeof cmd,
             "'%s/pg_ctl' -D '%s' -l '%s/server.log' -w -t 60 -m fast %s "
             ">/dev/null 2>&1",
             bin, data, sock, what);
  assert_int_equal(system(cmd), 0);
}

static void test_server_restart(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 2, 0);
  batch b = {0};
  batch_add(&b, dorm_async_execute(db, "SELECT pg_sleep(30)", NULL, 0));
  run_for(100);
  pg_ctl("restart"); /* blocks the loop: fine here, the server is away */
  batch_wait(&b);
  assert_int_equal(b.code[0], DORM_ECONN);
  run_for(300);
  batch c = {0};
  for (int i = 0; i < 10; i++)
    batch_add(&c, dorm_async_execute(db, "SELECT 1", NULL, 0));
  batch_wait(&c);
  for (int i = 0; i < c.n; i++) assert_int_equal(c.code[i], 0);
  t_loop_close(db);
}

/* ---- cancel and timeout (the pool, below the facade) --------------------- */

typedef struct preq {
  dorm__req req;
  dorm__stmt st;
  int done;
  int code;
  dorm_result res;
} preq;

static void preq_done(dorm__req *r) {
  preq *p = (preq *)r;
  t_on_loop_thread();
  p->done++;
  p->code = dorm_result_code(&r->result);
  p->res = r->result;
  r->result = dorm_result_none();
}

static void preq_init(preq *p, const char *sql) {
  memset(p, 0, sizeof *p);
  p->st.sql = sql;
  p->st.len = strlen(sql);
  p->st.returns_rows = 1;
  p->req.stmts = &p->st;
  p->req.nstmts = 1;
  p->req.done = preq_done;
}

static int g_ready, g_closed;
static void pool_ready(void *arg, const dorm_error *err) {
  (void)arg;
  g_ready = err ? err->code : 1;
}
static void pool_closed(void *arg) {
  (void)arg;
  g_closed = 1;
}

static dorm__pg_pool *pool_open(const char *url, int size) {
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.pool_size = size;
  dorm__pg_pool *p = NULL;
  dorm_error err;
  dorm_error_clear(&err);
  g_ready = g_closed = 0;
  assert_int_equal(dorm__pg_pool_open(T_loop, url, &o, pool_ready, pool_closed,
                                      NULL, &p, &err),
                   0);
  while (!g_ready) uv_run(&T_uv, UV_RUN_ONCE);
  return p;
}

static void pool_close(dorm__pg_pool *p) {
  dorm__pg_pool_close(p);
  while (!g_closed) uv_run(&T_uv, UV_RUN_ONCE);
  dorm_loop_close(T_loop, NULL, NULL);
  uv_run(&T_uv, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&T_uv), 0);
}

/* The answer deadline and the TCP settings, as the configuration reads
 * them (the deadline's behaviour is test_scaleout's: it needs a server
 * that can be stopped). */
static const char *cfg_val(const dorm__pg_config *cfg, const char *key) {
  const char *v = NULL;
  for (size_t i = 0; i < cfg->nkeys; i++)
    if (!strcmp(cfg->keys[i], key)) {
      assert_null(v); /* given once */
      v = cfg->vals[i];
    }
  return v;
}

static void test_silent_config(void **state) {
  (void)state;
  dorm__pg_config cfg;
  dorm_error err;
  dorm_db_options o;
  dorm_db_options_init(&o);
  /* defaults: no deadline on the primary; keepalives and user timeout */
  dorm_error_clear(&err);
  assert_int_equal(dorm__pg_config_parse("postgresql://h/db", &o, &cfg, &err),
                   0);
  assert_int_equal(cfg.answer_timeout_ms, 0);
  assert_string_equal(cfg_val(&cfg, "keepalives"), "1");
  assert_string_equal(cfg_val(&cfg, "keepalives_idle"), "15");
  assert_string_equal(cfg_val(&cfg, "keepalives_interval"), "5");
  assert_string_equal(cfg_val(&cfg, "keepalives_count"), "3");
  assert_string_equal(cfg_val(&cfg, "tcp_user_timeout"), "30000");
  dorm__pg_config_free(&cfg);
  /* the option; the URI parameter wins over it (0: none); the user's own
   * TCP settings are kept, in a keyword string too */
  o.answer_timeout_ms = 2500;
  assert_int_equal(dorm__pg_config_parse("host=h dbname=db keepalives=0 "
                                         "tcp_user_timeout=0",
                                         &o, &cfg, &err),
                   0);
  assert_int_equal(cfg.answer_timeout_ms, 2500);
  assert_string_equal(cfg_val(&cfg, "keepalives"), "0");
  assert_string_equal(cfg_val(&cfg, "tcp_user_timeout"), "0");
  assert_string_equal(cfg_val(&cfg, "keepalives_idle"), "15");
  dorm__pg_config_free(&cfg);
  assert_int_equal(
      dorm__pg_config_parse(
          "postgresql://h/db?answer_timeout_ms=0&keepalives_idle=7", &o, &cfg,
          &err),
      0);
  assert_int_equal(cfg.answer_timeout_ms, 0);
  assert_string_equal(cfg_val(&cfg, "keepalives_idle"), "7");
  assert_null(cfg_val(&cfg, "answer_timeout_ms")); /* not libpq's */
  dorm__pg_config_free(&cfg);
  o.answer_timeout_ms = -1; /* none */
  assert_int_equal(
      dorm__pg_config_parse("postgresql://h/db?answer_timeout_ms=900", &o, &cfg,
                            &err),
      0);
  assert_int_equal(cfg.answer_timeout_ms, 900);
  dorm__pg_config_free(&cfg);
  const char *bad[] = {"postgresql://h/db?answer_timeout_ms=",
                       "postgresql://h/db?answer_timeout_ms=-5",
                       "postgresql://h/db?answer_timeout_ms=10s",
                       "postgresql://h/db?answer_timeout_ms=86400001",
                       /* read whole: not cut to its first 15 digits */
                       "postgresql://h/db?answer_timeout_ms=0000000000000005junk"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dorm_error_clear(&err);
    assert_int_equal(dorm__pg_config_parse(bad[i], NULL, &cfg, &err),
                     DORM_EURL);
    assert_non_null(strstr(err.message, "answer_timeout_ms="));
  }
  /* replicas: 10 s by default, the option, -1 for none, their URI's
   * parameter; the primary keeps its own */
  char rep[600];
  snprintf(rep, sizeof rep,
           "postgresql:///dorm_test?host=%s&port=%s&user=dorm,"
           "postgresql:///dorm_test?host=%s&port=%s&user=dorm"
           "&answer_timeout_ms=700",
           getenv("DORM_TEST_PGSOCK"), getenv("DORM_TEST_PGPORT"),
           getenv("DORM_TEST_PGSOCK"), getenv("DORM_TEST_PGPORT"));
  int opt[] = {0, 4000, -1};
  uint64_t want[] = {10000, 4000, 0};
  for (int k = 0; k < 3; k++) {
    dorm_db_options_init(&o);
    o.pool_size = 1;
    o.replicas = rep;
    o.replica_answer_timeout_ms = opt[k];
    o.answer_timeout_ms = 3000;
    dorm__pg_pool *p = NULL;
    g_ready = g_closed = 0;
    assert_int_equal(dorm__pg_pool_open(T_loop, conninfo(), &o, pool_ready,
                                        pool_closed, NULL, &p, &err),
                     0);
    assert_int_equal(p->nnodes, 3);
    assert_int_equal(p->nodes[0].cfg->answer_timeout_ms, 3000);
    assert_int_equal(p->nodes[1].cfg->answer_timeout_ms, want[k]);
    assert_int_equal(p->nodes[2].cfg->answer_timeout_ms, 700);
    while (!g_ready) uv_run(&T_uv, UV_RUN_ONCE);
    dorm__pg_pool_close(p);
    while (!g_closed) uv_run(&T_uv, UV_RUN_ONCE);
  }
  t_loop_close(NULL);
}

/* The answer deadline on a live server: an answer that arrived while the
 * loop was blocked is no silence; a statement longer than the deadline is
 * cut off (the documented price), and the connection comes back. */
static void test_answer_deadline(void **state) {
  (void)state;
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.pool_size = 1;
  o.answer_timeout_ms = 300;
  dorm_db *db = t_open_ready(conninfo(), &o);
  t_wait w = {0, dorm_result_none()};
  dorm_deferred *d =
      dorm_async_execute(db, "SELECT pg_sleep(0.05) AS s", NULL, 0);
  assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
  run_for(20);        /* sent */
  usleep(700 * 1000); /* the loop is blocked; the answer arrives */
  while (!w.done) uv_run(&T_uv, UV_RUN_ONCE);
  if (dorm_result_is_error(&w.res))
    fprintf(stderr, "%s\n", dorm_result_message(&w.res));
  assert_false(dorm_result_is_error(&w.res));
  dorm_result_free(&w.res);
  uv_update_time(&T_uv);
  uint64_t t0 = uv_now(&T_uv);
  char msg[256];
  assert_int_equal(t_err(dorm_async_execute(db, "SELECT pg_sleep(5)", NULL, 0),
                         msg, sizeof msg),
                   DORM_ETIMEDOUT);
  uv_update_time(&T_uv);
  assert_non_null(strstr(msg, "answer_timeout_ms"));
  assert_true(uv_now(&T_uv) - t0 < 4000);
  /* a live server goes on with the statement cut off (it sees the closed
   * connection only when it answers): stop it for the cases after this */
  admin_exec("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE query = 'SELECT pg_sleep(5)'");
  int ok = 0;
  for (int i = 0; i < 100 && !ok; i++) {
    run_for(20);
    dorm_result r = t_await(dorm_async_execute(db, "SELECT 1", NULL, 0));
    ok = !dorm_result_is_error(&r);
    dorm_result_free(&r);
  }
  assert_true(ok);
  t_loop_close(db);
}

static void preq_wait(preq *p) {
  while (!p->done) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(p->done, 1);
}

static void test_cancel(void **state) {
  (void)state;
  dorm__pg_pool *pool = pool_open(conninfo(), 1);
  assert_int_equal(g_ready, 1);
  preq sleep, after;
  preq_init(&sleep, "SELECT pg_sleep(30)");
  preq_init(&after, "SELECT 42");
  dorm__pg_pool_submit(pool, 0, &sleep.req);
  run_for(200);
  assert_int_equal(sleep.done, 0);
  uint64_t t0 = uv_now(&T_uv);
  dorm__pg_pool_cancel(pool, 0, &sleep.req);
  assert_int_equal(sleep.done, 0); /* never inside the cancel */
  /* submitted after the cancel: must wait until the server answered */
  dorm__pg_pool_submit(pool, 0, &after.req);
  preq_wait(&sleep);
  assert_int_equal(sleep.code, DORM_ECANCELED);
  assert_true(uv_now(&T_uv) - t0 < 5000);
  preq_wait(&after);
  assert_int_equal(after.code, 0);
  dorm_result_free(&after.res);
  dorm_result_free(&sleep.res);
  /* nothing is left running on the server */
  assert_int_equal(admin_exec("SELECT count(*) FROM pg_stat_activity WHERE "
                              "query LIKE 'SELECT pg_sleep%' AND state = "
                              "'active'"),
                   0);

  /* a request that is still waiting is cancelled without the server */
  preq a, w;
  preq_init(&a, "SELECT 1");
  preq_init(&w, "SELECT 2");
  dorm__pg_pool_submit(pool, 0, &a.req);
  dorm__pg_pool_submit(pool, 0, &w.req);
  dorm__pg_pool_cancel(pool, 0, &w.req);
  assert_int_equal(w.done, 0);
  preq_wait(&a);
  preq_wait(&w);
  assert_int_equal(a.code, 0);
  assert_int_equal(w.code, DORM_ECANCELED);
  dorm_result_free(&a.res);
  dorm_result_free(&w.res);

  /* a per-query timeout is a cancel on a timer */
  preq t;
  preq_init(&t, "SELECT pg_sleep(30)");
  dorm__pg_pool_submit(pool, 0, &t.req);
  t0 = uv_now(&T_uv);
  run_for(300);
  dorm__pg_pool_cancel(pool, 0, &t.req);
  preq_wait(&t);
  assert_int_equal(t.code, DORM_ECANCELED);
  assert_true(uv_now(&T_uv) - t0 < 5000);
  dorm_result_free(&t.res);
  pool_close(pool);
}

/* Cancelling through the deferred reaches the server: on a pool of one
 * connection, the query after a cancelled pg_sleep(30) answers at once
 * (without the cancel it would wait 30 s); a timeout cancels too. */
static void test_cancel_through_deferred(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 1, 0);
  uint64_t t0 = uv_now(&T_uv);
  dorm_deferred *d = dorm_async_execute(db, "SELECT pg_sleep(30)", NULL, 0);
  batch b;
  memset(&b, 0, sizeof b);
  batch_add(&b, d);
  run_for(200);
  dorm_deferred_cancel(d);
  batch_wait(&b);
  assert_int_equal(b.code[0], DORM_ECANCELED);
  assert_int_equal(scalar(db, "SELECT 7"), 7);
  assert_true(uv_now(&T_uv) - t0 < 5000);
  assert_int_equal(admin_exec("SELECT count(*) FROM pg_stat_activity WHERE "
                              "query LIKE 'SELECT pg_sleep%' AND state = "
                              "'active'"),
                   0);
  t0 = uv_now(&T_uv);
  d = dorm_async_execute(db, "SELECT pg_sleep(30)", NULL, 0);
  assert_int_equal(dorm_deferred_set_timeout(d, T_loop, 100), 0);
  assert_int_equal(t_err(d, NULL, 0), DORM_ETIMEDOUT);
  assert_int_equal(scalar(db, "SELECT 8"), 8);
  assert_true(uv_now(&T_uv) - t0 < 5000);
  t_loop_close(db);
}

/* The facade's timeout: the deferred fails with DORM_ETIMEDOUT, the pool
 * stays usable. */
static void test_timeout(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 1, 0);
  dorm_deferred *d = dorm_async_execute(db, "SELECT pg_sleep(1)", NULL, 0);
  assert_int_equal(dorm_deferred_set_timeout(d, T_loop, 100), 0);
  assert_int_equal(t_err(d, NULL, 0), DORM_ETIMEDOUT);
  assert_int_equal(scalar(db, "SELECT 9"), 9);
  /* the server's own statement_timeout is a timeout too */
  t_count(dorm_async_execute(db, "SET statement_timeout = 100", NULL, 0));
  assert_int_equal(
      t_err(dorm_async_execute(db, "SELECT pg_sleep(5)", NULL, 0), NULL, 0),
      DORM_ETIMEDOUT);
  t_loop_close(db);
}

/* ---- connecting ---------------------------------------------------------- */

static void test_connect_failures(void **state) {
  (void)state;
  /* nothing listens there */
  dorm_error err;
  dorm_error_clear(&err);
  dorm_db *db =
      dorm_db_open(T_loop, "host=/nonexistent port=5999 dbname=x", NULL, &err);
  assert_non_null(db);
  /* await the query first: it is borrowed, and once fired (by the failed
   * connect, which also fails ready) it frees itself */
  dorm_deferred *q = dorm_async_execute(db, "SELECT 1", NULL, 0);
  assert_int_equal(t_err(q, NULL, 0), DORM_ECONN);
  char msg[512];
  assert_int_equal(t_err(dorm_db_ready(db), msg, sizeof msg), DORM_ECONN);
  t_loop_close(db);

  /* a server that accepts the socket and never answers: our timer */
  t_loop_open();
  char dir[] = "/tmp/dorm-pg-hang.XXXXXX";
  assert_non_null(mkdtemp(dir));
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/.s.PGSQL.5998", dir);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(fd, 8), 0);
  char url[256];
  snprintf(url, sizeof url, "host=%s port=5998 dbname=x connect_timeout=2",
           dir);
  dorm_error_clear(&err);
  db = dorm_db_open(T_loop, url, NULL, &err);
  assert_non_null(db);
  uint64_t t0 = uv_now(&T_uv);
  assert_int_equal(t_err(dorm_db_ready(db), msg, sizeof msg), DORM_ECONN);
  assert_non_null(strstr(msg, "timed out"));
  uint64_t dt = uv_now(&T_uv) - t0;
  assert_true(dt >= 1900 && dt < 6000);
  t_loop_close(db);

  /* multi-host: the first host never answers; after its connect_timeout
   * the next host gets its turn (libpq's per-host timeout, which it only
   * applies when blocking) */
  t_loop_open();
  snprintf(url, sizeof url,
           "host=%s,%s port=5998,%s user=dorm dbname=dorm_test "
           "connect_timeout=2",
           dir, getenv("DORM_TEST_PGSOCK"), getenv("DORM_TEST_PGPORT"));
  dorm_error_clear(&err);
  dorm_db_options one;
  dorm_db_options_init(&one);
  one.pool_size = 1;
  db = dorm_db_open(T_loop, url, &one, &err);
  assert_non_null(db);
  t0 = uv_now(&T_uv);
  assert_int_equal(scalar(db, "SELECT 12"), 12);
  dt = uv_now(&T_uv) - t0;
  assert_true(dt >= 1900 && dt < 6000);
  t_loop_close(db);
  close(fd);
  unlink(sa.sun_path);
  rmdir(dir);

  /* multi-host: the first host is down, the second answers */
  t_loop_open();
  snprintf(url, sizeof url,
           "host=/nonexistent,%s port=%s,%s user=dorm dbname=dorm_test "
           "target_session_attrs=read-write",
           getenv("DORM_TEST_PGSOCK"), getenv("DORM_TEST_PGPORT"),
           getenv("DORM_TEST_PGPORT"));
  dorm_error_clear(&err);
  db = dorm_db_open(T_loop, url, NULL, &err);
  assert_non_null(db);
  assert_int_equal(scalar(db, "SELECT 11"), 11);
  t_loop_close(db);

  /* no standby anywhere */
  t_loop_open();
  snprintf(url, sizeof url, "%s target_session_attrs=standby", conninfo());
  dorm_error_clear(&err);
  db = dorm_db_open(T_loop, url, NULL, &err);
  assert_non_null(db);
  assert_int_equal(t_err(dorm_db_ready(db), NULL, 0), DORM_ECONN);
  t_loop_close(db);
}

/* ---- load ---------------------------------------------------------------- */

static long g_ok, g_bad;
static dorm_result count_step(dorm_result *res, void *arg) {
  (void)arg;
  if (dorm_result_is_error(res))
    g_bad++;
  else
    g_ok++;
  return dorm_result_none();
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  long v = 0;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) v = atol(line + 6);
  fclose(f);
  return v;
}

static void test_load(void **state) {
  (void)state;
  int slow = getenv("DORM_UNDER_VALGRIND") != NULL;
  dorm_db *db = open_db(NULL, 4, 0);
  const int N = slow ? 1000 : 10000;
  g_ok = g_bad = 0;
  long before = rss_kib();
  for (int i = 0; i < N; i++) {
    dorm_value v = dorm_int(i);
    dorm_deferred *d =
        dorm_async_execute(db, "SELECT $1 AS x, 'some text' AS t", &v, 1);
    assert_non_null(d);
    dorm_deferred_add_both(d, count_step, NULL);
  }
  while (g_ok + g_bad < N) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(g_bad, 0);
  long after = rss_kib();
  fprintf(stderr, "# %d in flight: peak RSS %ld KiB (before %ld KiB)\n", N,
          after, before);
  /* the sanitizers' shadow memory is not ours: TSan alone takes ~70 MiB
   * here (the plain build ~16 MiB) */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  if (!slow) assert_true(after < 64 * 1024);
#endif

  /* fairness: both connections of a pool of two take their share */
  t_loop_close(db);
  t_loop_open();
  db = open_db(NULL, 2, 0);
  enum { M = 40 };
  dorm_deferred *ds[M];
  for (int i = 0; i < M; i++) {
    ds[i] = dorm_async_execute(db, "SELECT pg_backend_pid() AS p", NULL, 0);
    dorm_deferred_retain(ds[i]);
  }
  for (int i = 0; i < M; i++)
    while (!dorm_deferred_fired(ds[i])) uv_run(&T_uv, UV_RUN_ONCE);
  int64_t pid0 = 0;
  int n0 = 0, n1 = 0;
  for (int i = 0; i < M; i++) {
    const dorm_result *r = dorm_deferred_result(ds[i]);
    int64_t pid = dorm_row_int(dorm_result_row_of(r), "p");
    if (!pid0) pid0 = pid;
    if (pid == pid0)
      n0++;
    else
      n1++;
    dorm_deferred_release(ds[i]);
  }
  assert_true(n0 >= M / 4 && n1 >= M / 4);

  /* the queue limit fails fast */
  t_loop_close(db);
  t_loop_open();
  db = open_db(NULL, 1, 5);
  batch b = {0};
  for (int i = 0; i < 8; i++)
    batch_add(&b, dorm_async_execute(db, "SELECT 1", NULL, 0));
  batch_wait(&b);
  int full = 0;
  for (int i = 0; i < 8; i++) full += b.code[i] == DORM_EQUEUEFULL;
  assert_int_equal(full, 3);
  t_loop_close(db);
}

/* Close with queries in flight: they fail with DORM_ECLOSED and the close
 * does not wait for the server. */
static void test_close_in_flight(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 2, 0);
  batch b = {0};
  batch_add(&b, dorm_async_execute(db, "SELECT pg_sleep(30)", NULL, 0));
  batch_add(&b, dorm_async_execute(db, "SELECT 1", NULL, 0));
  run_for(100);
  uint64_t t0 = uv_hrtime();
  t_loop_close(db);
  fprintf(stderr, "# closed in %.1f ms\n", (uv_hrtime() - t0) / 1e6);
  assert_true(uv_hrtime() - t0 < 3000 * 1000000ull);
  for (int i = 0; i < b.n; i++) assert_int_equal(b.fired[i], 1);
  assert_int_equal(b.code[0], DORM_ECLOSED);
}

/* ---- LISTEN / NOTIFY ----------------------------------------------------- */

typedef struct heard {
  int n, gaps;
  char last[64];
  char channel[64];
} heard;

static void on_notify(dorm_db *db, const dorm_notification *n, void *arg) {
  heard *h = arg;
  t_on_loop_thread();
  assert_non_null(db);
  if (n->gap) {
    assert_null(n->payload);
    h->gaps++;
  } else {
    h->n++;
    snprintf(h->last, sizeof h->last, "%s", n->payload);
    assert_true(n->pid > 0);
  }
  snprintf(h->channel, sizeof h->channel, "%s", n->channel);
}

static void wait_until(int *v, int want) {
  for (int i = 0; i < 500 && *v < want; i++) run_for(10);
  assert_int_equal(*v, want);
}

static void test_listen(void **state) {
  (void)state;
  dorm_db *db = open_db(NULL, 1, 0);
  heard a = {0}, b = {0};
  dorm_result r = t_ok(dorm_listen(db, "Jobs", on_notify, &a));
  dorm_result_free(&r);
  r = t_ok(dorm_listen(db, "Jobs", on_notify, &b));
  dorm_result_free(&r);
  admin_exec("SELECT pg_notify('Jobs', 'first')");
  wait_until(&a.n, 1);
  wait_until(&b.n, 1);
  assert_string_equal(a.last, "first");
  assert_string_equal(a.channel, "Jobs");
  /* an unquoted NOTIFY folds to lower case: another channel */
  admin_exec("NOTIFY Jobs, 'lower'");
  /* NOTIFY from dorm itself, in a transaction: delivered at commit */
  dorm_value v[] = {dorm_str("Jobs"), dorm_str("from dorm")};
  r = t_ok(dorm_async_execute(db, "SELECT pg_notify($1, $2)", v, 2));
  dorm_result_free(&r);
  wait_until(&a.n, 2);
  assert_string_equal(a.last, "from dorm");

  /* the channel is an identifier */
  assert_int_equal(
      t_err(dorm_listen(db, "no-such; DROP", on_notify, &a), NULL, 0),
      DORM_EIDENT);
  /* one subscriber goes, the other stays */
  r = t_ok(dorm_unlisten(db, "Jobs", on_notify, &b));
  dorm_result_free(&r);
  assert_int_equal(t_err(dorm_unlisten(db, "Jobs", on_notify, &b), NULL, 0),
                   DORM_EINVAL);

  /* the listener's connection is killed: restored, and told of the gap */
  kill_dorm_sessions();
  wait_until(&a.gaps, 1);
  assert_int_equal(b.gaps, 0);
  admin_exec("SELECT pg_notify('Jobs', 'after')");
  wait_until(&a.n, 3);
  assert_string_equal(a.last, "after");
  assert_int_equal(b.n, 2);

  r = t_ok(dorm_unlisten(db, "Jobs", on_notify, &a));
  dorm_result_free(&r);
  admin_exec("SELECT pg_notify('Jobs', 'unheard')");
  run_for(200);
  assert_int_equal(a.n, 3);

  /* a subscription left open is dropped by the close */
  r = t_ok(dorm_listen(db, "other", on_notify, &a));
  dorm_result_free(&r);
  t_loop_close(db);
}

int main(void) {
  (void)t_create_tables;
  dorm_test_exit_without_pg("test_pg");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_urls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_silent_config, setup, teardown),
      cmocka_unit_test_setup_teardown(test_answer_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_url_secrets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_types, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipeline_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_transaction_aborted, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_kill_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill_idle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill_in_transaction, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_through_deferred, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_connect_failures, setup, teardown),
      cmocka_unit_test_setup_teardown(test_load, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_listen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_server_restart, setup, teardown),
  };
  /* DORM_TEST_FILTER=test_cancel runs one test (cmocka's pattern) */
  if (getenv("DORM_TEST_FILTER"))
    cmocka_set_test_filter(getenv("DORM_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
