/* SPDX-License-Identifier: MIT */
/* tests/test_scaleout.c — read replicas, read-your-writes, failover and
 * PgBouncer against a real cluster: a primary and two streaming replicas
 * (pg_basebackup -R) and PgBouncer in transaction pooling mode, started by
 * tests/pg_cluster.sh into a temp directory for this run and removed
 * after.
 *
 * Which server answered is read from the server itself:
 * current_setting('port') (each node has its own port) and
 * pg_is_in_recovery().  The destructive cases (a replica killed under
 * load, the primary killed and a replica promoted) run last, in that
 * order.  A blocking libpq connection plays the administrator (pausing a
 * replica's replay, writing behind dorm's back): blocking is fine in a
 * test, never in dorm.
 */
#include <libpq-fe.h>
#include <unistd.h>

#include "dbtest.h"
#include "support/support.h"

/* ---- the cluster --------------------------------------------------------- */

static char g_dir[128];
static char g_primary[256], g_replicas[512], g_bouncer[256], g_failover[256];
static int g_port[3]; /* primary, replica1, replica2 */
static int g_up;

static int sh(const char *fmt, ...) {
  char cmd[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  fflush(NULL);
  return system(cmd);
}

static void copy_val(char *dst, size_t cap, const char *line) {
  const char *v = strchr(line, '=') + 1;
  if (*v == '\'') v++;
  snprintf(dst, cap, "%s", v);
  size_t n = strlen(dst);
  while (n && (dst[n - 1] == '\n' || dst[n - 1] == '\'')) dst[--n] = 0;
}

static int cluster_start(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/dorm-cluster.%d", (int)getpid());
  if (sh("sh tests/pg_cluster.sh start %s", g_dir)) return -1;
  g_up = 1;
  char cmd[256], line[1024];
  snprintf(cmd, sizeof cmd, "sh tests/pg_cluster.sh env %s", g_dir);
  FILE *f = popen(cmd, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "DORM_CLUSTER_PRIMARY=", 21))
      copy_val(g_primary, sizeof g_primary, line);
    else if (!strncmp(line, "DORM_CLUSTER_REPLICAS=", 22))
      copy_val(g_replicas, sizeof g_replicas, line);
    else if (!strncmp(line, "DORM_CLUSTER_BOUNCER=", 21))
      copy_val(g_bouncer, sizeof g_bouncer, line);
    else if (!strncmp(line, "DORM_CLUSTER_FAILOVER=", 22))
      copy_val(g_failover, sizeof g_failover, line);
    else if (!strncmp(line, "DORM_CLUSTER_PORTS=", 19)) {
      char v[64];
      copy_val(v, sizeof v, line);
      sscanf(v, "%d,%d,%d", &g_port[0], &g_port[1], &g_port[2]);
    }
  }
  pclose(f);
  return g_primary[0] && g_replicas[0] && g_port[2] ? 0 : -1;
}

static void cluster_stop(void) {
  if (g_up) sh("sh tests/pg_cluster.sh stop %s", g_dir);
  g_up = 0;
}

static const char *node_name(int i) {
  return i == 0 ? "primary" : i == 1 ? "replica1" : "replica2";
}

/* Run sql on node i with a blocking connection; the first value as a
 * long (0 when none). */
static long admin_on(int i, const char *sql) {
  char ci[256];
  snprintf(ci, sizeof ci,
           "host=127.0.0.1 port=%d user=dorm dbname=dorm_test "
           "application_name=dorm_admin",
           g_port[i]);
  PGconn *pg = PQconnectdb(ci);
  if (PQstatus(pg) != CONNECTION_OK) {
    fprintf(stderr, "admin %s: %s", node_name(i), PQerrorMessage(pg));
    PQfinish(pg);
    fail();
  }
  PGresult *r = PQexec(pg, sql);
  ExecStatusType s = PQresultStatus(r);
  if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
    fprintf(stderr, "admin %s: %s: %s", node_name(i), sql,
            PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
    fail();
  }
  long v = 0;
  if (s == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
    const char *t = PQgetvalue(r, 0, 0);
    v = !strcmp(t, "t") ? 1 : atol(t);
  }
  PQclear(r);
  PQfinish(pg);
  return v;
}

/* Pause replica i's replay and wait until it has really stopped (the
 * request takes effect asynchronously). */
static void pause_replay(int i) {
  admin_on(i, "SELECT pg_wal_replay_pause()");
  for (int k = 0; k < 500; k++) {
    if (admin_on(i, "SELECT pg_get_wal_replay_pause_state() = 'paused'"))
      return;
    usleep(10000);
  }
  fprintf(stderr, "%s: replay did not pause\n", node_name(i));
  fail();
}

/* ---- dorm on the cluster ------------------------------------------------- */

static dorm_schema *S;
static const dorm_model *Author;

static dorm_db *open_with(const char *primary, const char *replicas,
                          int ryw, int window_ms, int max_lag_ms) {
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.pool_size = 2;
  o.replicas = replicas;
  o.replica_check_ms = 50;
  o.read_your_writes = ryw;
  o.read_your_writes_ms = window_ms;
  o.replica_max_lag_ms = max_lag_ms;
  return t_open_ready(primary, &o);
}

/* The port of the server that ran a read through db. */
static int read_port(dorm_db *db) {
  dorm_result r = t_ok(dorm_async_execute_read(
      db, "SELECT current_setting('port')::int AS port", NULL, 0));
  const dorm_row *row = dorm_rows_row(dorm_result_rows_of(&r), 0);
  assert_non_null(row);
  int port = (int)dorm_row_int(row, "port");
  dorm_result_free(&r);
  return port;
}

static int node_of_port(int port) {
  for (int i = 0; i < 3; i++)
    if (g_port[i] == port) return i;
  fprintf(stderr, "port %d is no node of the cluster\n", port);
  fail();
  return -1;
}

#define run_for t_run_for

/* Read until a replica answers (they are used once probed). */
static int wait_replica_read(dorm_db *db, uint64_t ms) {
  for (uint64_t waited = 0; waited < ms; waited += 20) {
    int n = node_of_port(read_port(db));
    if (n > 0) return n;
    run_for(20);
  }
  return 0;
}

static void closed_cb(void *arg) { *(int *)arg = 1; }

/* Close db, leaving the loop open. */
static void close_db(dorm_db *db) {
  int closed = 0;
  dorm_db_close(db, closed_cb, &closed);
  while (!closed) uv_run(&T_uv, UV_RUN_ONCE);
}

/* Reads in flight: each result's port is counted by node. */
static long g_done, g_ok, g_bad;
static int g_seen[3];

static dorm_result count_read(dorm_result *res, void *arg) {
  (void)arg;
  g_done++;
  if (dorm_result_is_error(res)) {
    g_bad++;
    fprintf(stderr, "read failed: %s\n", dorm_result_message(res));
  } else {
    g_ok++;
    const dorm_row *row = dorm_rows_row(dorm_result_rows_of(res), 0);
    g_seen[node_of_port((int)dorm_row_int(row, "port"))]++;
  }
  return dorm_result_none();
}

static void reads_start(dorm_db *db, int n, const char *sql) {
  g_done = g_ok = g_bad = 0;
  memset(g_seen, 0, sizeof g_seen);
  for (int i = 0; i < n; i++) {
    dorm_deferred *d = dorm_async_execute_read(db, sql, NULL, 0);
    assert_non_null(d);
    assert_int_equal(dorm_deferred_add_both(d, count_read, NULL), 0);
  }
}

static void reads_wait(int n) {
  while (g_done < n) uv_run(&T_uv, UV_RUN_ONCE);
}

static int64_t add_author(dorm_db *db, const char *name) {
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str(name));
  dorm_result r = t_ok(dorm_async_create(db, q));
  dorm_query_free(q);
  int64_t id = dorm_row_int(r.u.row.row, "id");
  dorm_result_free(&r);
  return id;
}

static int64_t count_named(dorm_db *db, const char *name) {
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "name", dorm_str(name));
  int64_t n = t_count(dorm_async_count(db, q));
  dorm_query_free(q);
  return n;
}

static int setup(void **state) {
  (void)state;
  t_loop_open();
  return 0;
}

/* Nodes a test stopped with SIGSTOP (pg_cluster.sh freeze): thawed in
 * teardown whatever happened to the test, so a failure never leaves a
 * server stopped for the cases after it. */
static int g_frozen[3];

static void freeze(int i) {
  g_frozen[i] = 1;
  assert_int_equal(
      sh("sh tests/pg_cluster.sh freeze %s %s", node_name(i), g_dir), 0);
}

static void thaw(int i) {
  if (!g_frozen[i]) return;
  g_frozen[i] = 0;
  assert_int_equal(sh("sh tests/pg_cluster.sh thaw %s %s", node_name(i), g_dir),
                   0);
}

static int teardown(void **state) {
  (void)state;
  for (int i = 0; i < 3; i++)
    if (g_frozen[i]) {
      g_frozen[i] = 0;
      sh("sh tests/pg_cluster.sh thaw %s %s", node_name(i), g_dir);
    }
  return 0;
}

/* ---- routing ------------------------------------------------------------- */

static int g_notified;

static void on_notify(dorm_db *db, const dorm_notification *n, void *arg) {
  (void)db;
  (void)n;
  (void)arg;
  g_notified++;
}

static dorm_deferred *tx_read_port(dorm_db *tx, void *arg) {
  (void)arg;
  return dorm_async_execute_read(
      tx, "SELECT current_setting('port')::int AS port", NULL, 0);
}

static void test_routing(void **state) {
  (void)state;
  dorm_db *db = open_with(g_primary, g_replicas, DORM_RYW_LSN, 0, 0);
  assert_true(wait_replica_read(db, 10000) > 0);
  /* a replica takes reads once its first probe has answered; until both
   * have, a burst may fairly land on one (CI once saw exactly that) */
  for (int tries = 0; tries < 500; tries++) {
    reads_start(db, 4,
                "SELECT current_setting('port')::int AS port, pg_sleep(0.01)");
    reads_wait(4);
    if (g_seen[1] > 0 && g_seen[2] > 0) break;
    run_for(20);
  }
  /* reads spread over both replicas, never the primary */
  reads_start(db, 40,
              "SELECT current_setting('port')::int AS port, pg_sleep(0.01)");
  reads_wait(40);
  assert_int_equal(g_bad, 0);
  assert_int_equal(g_seen[0], 0);
  assert_true(g_seen[1] > 0);
  assert_true(g_seen[2] > 0);
  /* the server itself says so */
  dorm_result rec = t_ok(dorm_async_execute_read(
      db, "SELECT pg_is_in_recovery() AS rec", NULL, 0));
  assert_true(dorm_row_bool(dorm_rows_row(dorm_result_rows_of(&rec), 0), "rec"));
  dorm_result_free(&rec);
  rec = t_ok(dorm_async_execute_read(dorm_db_primary(db),
                                     "SELECT pg_is_in_recovery() AS rec", NULL,
                                     0));
  assert_false(
      dorm_row_bool(dorm_rows_row(dorm_result_rows_of(&rec), 0), "rec"));
  dorm_result_free(&rec);
  /* the primary handle, a transaction, raw writes: the primary */
  assert_int_equal(node_of_port(read_port(dorm_db_primary(db))), 0);
  dorm_result r = t_ok(dorm_async_atomic(db, tx_read_port, NULL));
  const dorm_row *row = dorm_result_row_of(&r);
  assert_non_null(row);
  assert_int_equal(node_of_port((int)dorm_row_int(row, "port")), 0);
  dorm_result_free(&r);
  r = t_ok(dorm_async_execute(
      db, "SELECT current_setting('port')::int AS port", NULL, 0));
  assert_int_equal(
      node_of_port((int)dorm_row_int(
          dorm_rows_row(dorm_result_rows_of(&r), 0), "port")),
      0);
  dorm_result_free(&r);
  /* a row lock is only possible on the primary (a replica refuses it) */
  run_for(300); /* past the raw write's read-your-writes */
  dorm_query *q = dorm_select(Author);
  dorm_select_for_update(q, 0);
  r = t_ok(dorm_async_filter(db, q));
  dorm_result_free(&r);
  dorm_query_free(q);
  /* LISTEN is on the primary, through the primary handle too */
  g_notified = 0;
  r = t_ok(dorm_listen(dorm_db_primary(db), "dorm_chan", on_notify, NULL));
  dorm_result_free(&r);
  r = t_ok(dorm_async_execute(db, "NOTIFY dorm_chan, 'hi'", NULL, 0));
  dorm_result_free(&r);
  for (int i = 0; i < 500 && !g_notified; i++) t_run_for(10);
  assert_int_equal(g_notified, 1);
  /* a raw read that writes fails on a replica: it was sent there */
  char msg[256];
  assert_true(wait_replica_read(db, 10000) > 0);
  assert_int_equal(
      t_err(dorm_async_execute_read(
                db, "INSERT INTO author (name) VALUES ('x')", NULL, 0),
            msg, sizeof msg),
      DORM_EDB);
  assert_non_null(strstr(msg, "read-only"));
  t_loop_close(db);
}

/* ---- read-your-writes ---------------------------------------------------- */

static void test_read_your_writes(void **state) {
  (void)state;
  dorm_db *db = open_with(g_primary, g_replicas, DORM_RYW_LSN, 0, 0);
  assert_true(wait_replica_read(db, 10000) > 0);
  pause_replay(1);
  pause_replay(2);
  add_author(db, "ryw-1");
  /* both replicas are paused: the write is only on the primary, and the
   * reads that follow it see it */
  assert_int_equal(count_named(db, "ryw-1"), 1);
  assert_int_equal(node_of_port(read_port(db)), 0);
  for (int i = 0; i < 10; i++) {
    run_for(30);
    assert_int_equal(count_named(db, "ryw-1"), 1);
    assert_int_equal(node_of_port(read_port(db)), 0);
  }
  /* a handle with read-your-writes off reads the stale replicas */
  dorm_db *off = open_with(g_primary, g_replicas, DORM_RYW_OFF, 0, 0);
  assert_true(wait_replica_read(off, 10000) > 0);
  assert_int_equal(count_named(off, "ryw-1"), 0);
  close_db(off);
  /* replica 1 replays again: reads go there once it has the write, and
   * never to replica 2, still behind */
  admin_on(1, "SELECT pg_wal_replay_resume()");
  int n = wait_replica_read(db, 10000);
  assert_int_equal(n, 1);
  for (int i = 0; i < 20; i++) {
    int k = node_of_port(read_port(db));
    assert_true(k == 1);
    assert_int_equal(count_named(db, "ryw-1"), 1);
  }
  admin_on(2, "SELECT pg_wal_replay_resume()");
  t_loop_close(db);
}

static void test_read_your_writes_window(void **state) {
  (void)state;
  dorm_db *db = open_with(g_primary, g_replicas, DORM_RYW_WINDOW, 400, 0);
  assert_true(wait_replica_read(db, 10000) > 0);
  add_author(db, "window-1");
  uint64_t t0 = uv_now(&T_uv);
  assert_int_equal(node_of_port(read_port(db)), 0);
  assert_int_equal(count_named(db, "window-1"), 1);
  /* after the window, replicas again */
  int n = wait_replica_read(db, 5000);
  assert_true(n > 0);
  uv_update_time(&T_uv);
  assert_true(uv_now(&T_uv) - t0 >= 390);
  t_loop_close(db);
}

/* ---- lag bound ----------------------------------------------------------- */

static void test_lag_bound(void **state) {
  (void)state;
  dorm_db *db = open_with(g_primary, g_replicas, DORM_RYW_OFF, 0, 300);
  assert_true(wait_replica_read(db, 10000) > 0);
  pause_replay(2);
  /* the primary moves on (writes behind dorm's back) */
  for (int i = 0; i < 12; i++) {
    admin_on(0, "INSERT INTO tick VALUES (1)");
    run_for(60);
  }
  /* replica 2 is now > 300 ms behind: skipped */
  for (int i = 0; i < 30; i++) assert_int_equal(node_of_port(read_port(db)), 1);
  admin_on(2, "SELECT pg_wal_replay_resume()");
  /* it catches up and is used again */
  int seen2 = 0;
  for (int i = 0; i < 200 && !seen2; i++) {
    if (node_of_port(read_port(db)) == 2) seen2 = 1;
    run_for(10);
  }
  assert_true(seen2);
  t_loop_close(db);
}

/* ---- PgBouncer ----------------------------------------------------------- */

/* Two inserts in one transaction (the body returns without waiting). */
static dorm_deferred *tx_insert_two(dorm_db *tx, void *arg) {
  (void)arg;
  dorm_deferred *ds[2];
  for (int i = 0; i < 2; i++)
    ds[i] = dorm_async_execute(
        tx,
        "INSERT INTO author (name, country, bio, active) "
        "VALUES ('bouncer-tx', 'GB', '', true)",
        NULL, 0);
  return dorm_gather(T_loop, ds, 2, 0);
}

static dorm_result check_value(dorm_result *res, void *arg) {
  g_done++;
  if (!dorm_result_is_error(res) &&
      dorm_row_int(dorm_rows_row(dorm_result_rows_of(res), 0), "v") ==
          (intptr_t)arg)
    g_ok++;
  else
    fprintf(stderr, "read %d: %s\n", (int)(intptr_t)arg,
            dorm_result_is_error(res) ? dorm_result_message(res) : "wrong");
  return dorm_result_none();
}

static void test_pgbouncer(void **state) {
  (void)state;
  char url[300];
  snprintf(url, sizeof url, "%s%spgbouncer=1", g_bouncer,
           strchr(g_bouncer, '?') ? "&" : "?");
  admin_on(0, "ALTER DATABASE dorm_test SET TimeZone = 'Asia/Tokyo'");
  dorm_db *db = open_with(url, NULL, DORM_RYW_LSN, 0, 0);
  /* many requests in flight through the bouncer, each its own result */
  enum { N = 200 };
  g_done = g_ok = g_bad = 0;
  for (int i = 0; i < N; i++) {
    dorm_value p = dorm_int(i);
    dorm_deferred *d = dorm_async_execute_read(db, "SELECT $1::int AS v", &p, 1);
    assert_int_equal(
        dorm_deferred_add_both(d, check_value, (void *)(intptr_t)i), 0);
  }
  reads_wait(N);
  assert_int_equal(g_ok, N);
  /* a transaction keeps its server connection from BEGIN to COMMIT */
  dorm_result r = t_ok(dorm_async_atomic(db, tx_insert_two, NULL));
  dorm_result_free(&r);
  assert_int_equal(count_named(db, "bouncer-tx"), 2);
  /* date-times keep their instant without dorm's session time zone: the
   * bouncer's server sessions run in Asia/Tokyo (the database's setting;
   * dorm's direct sessions override it with their startup options) */
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str("bouncer-dt"));
  dorm_set(q, "joined", dorm_datetime("2024-05-01T13:45:00Z"));
  r = t_ok(dorm_async_create(db, q));
  dorm_query_free(q);
  assert_string_equal(dorm_row_text(r.u.row.row, "joined"),
                      "2024-05-01T13:45:00Z");
  dorm_result_free(&r);
  assert_int_equal(admin_on(0, "SELECT joined = '2024-05-01 13:45:00+00' "
                               "FROM author WHERE name = 'bouncer-dt'"),
                   1);
  q = dorm_select(Author);
  dorm_filter(q, "joined", dorm_datetime("2024-05-01 13:45:00"));
  assert_int_equal(t_count(dorm_async_count(db, q)), 1);
  dorm_query_free(q);
  /* LISTEN needs a session */
  char msg[256];
  assert_int_equal(
      t_err(dorm_listen(db, "chan", on_notify, NULL), msg, sizeof msg),
      DORM_EUNSUPPORTED);
  t_loop_close(db);
  admin_on(0, "ALTER DATABASE dorm_test RESET TimeZone");
}

/* Streaming reads (dorm_async_iterate) through PgBouncer's transaction
 * pooling and on a handle with replicas.  The stream's BEGIN ... DECLARE
 * ... FETCH ... COMMIT is one transaction, so the bouncer keeps it on one
 * server connection; other requests through the bouncer go on meanwhile.
 * With replicas the stream reads the primary, so it sees the handle's
 * own write made just before it. */
static int stream_count(dorm_iter *it, const dorm_rows *chunk, void *arg) {
  (void)it;
  int64_t *n = arg;
  *n += (int64_t)dorm_rows_count(chunk);
  return DORM_ITER_CONTINUE;
}

static void test_stream(void **state) {
  (void)state;
  admin_on(0,
           "INSERT INTO author (name, country, bio, active) SELECT "
           "'stream-' || x, 'US', '', true FROM generate_series(1, 3000) x");
  char url[300];
  snprintf(url, sizeof url, "%s%spgbouncer=1", g_bouncer,
           strchr(g_bouncer, '?') ? "&" : "?");
  const char *urls[2] = {url, g_primary};
  for (int k = 0; k < 2; k++) {
    dorm_db *db = k == 0 ? open_with(urls[k], NULL, DORM_RYW_LSN, 0, 0)
                         : open_with(urls[k], g_replicas, DORM_RYW_LSN, 0, 0);
    if (k == 1) add_author(db, "stream-own");
    dorm_query *q = dorm_select(Author);
    dorm_filter(q, "name__startswith", dorm_str("stream-"));
    int64_t rows = 0;
    dorm_deferred *d = dorm_async_iterate(db, q, 100, stream_count, &rows);
    dorm_query_free(q);
    /* requests beside it through the same bouncer / pool */
    reads_start(db, 20, "SELECT current_setting('port')::int AS port");
    reads_wait(20);
    assert_int_equal(g_ok, 20);
    assert_int_equal(t_count(d), 3000 + k);
    assert_int_equal(rows, 3000 + k);
    t_loop_close(db);
    if (k == 0) t_loop_open();
  }
  admin_on(0, "DELETE FROM author WHERE name LIKE 'stream-%'");
}

/* ---- the dorm command ---------------------------------------------------- */

static char g_dorm[512]; /* the dorm binary beside this test's build */

/* dorm query reads $DATABASE_REPLICA_URLS: a good list works, a bad one
 * is refused by name (so the variable is read); dorm serve uses it too. */
static void test_cli_replicas(void **state) {
  (void)state;
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "DATABASE_REPLICA_URLS='%s' %s query --models "
           "tests/data/query_models.json --db '%s' 'Author.filter(name=\"cli\").count()'"
           " >/dev/null 2>&1",
           g_replicas, g_dorm, g_primary);
  assert_int_equal(sh("%s", cmd), 0);
  snprintf(cmd, sizeof cmd,
           "DATABASE_REPLICA_URLS='nonsense' %s query --models "
           "tests/data/query_models.json --db '%s' 'Author.count()' 2>&1 | "
           "grep -q 'replica 1: not a postgresql:// URI'",
           g_dorm, g_primary);
  assert_int_equal(sh("%s", cmd), 0);
  /* dorm serve with the database from $DATABASE_URL (no --db): it starts
   * listening with its replicas, and stops cleanly on SIGTERM */
  snprintf(cmd, sizeof cmd,
           "log=%s/serve.log; DATABASE_URL='%s' DATABASE_REPLICA_URLS='%s' "
           "%s serve --models tests/data/query_models.json --port 0 "
           "2>$log & pid=$!; "
           "for i in $(seq 1 100); do grep -q 'listening on' $log && break; "
           "sleep 0.05; done; grep -q 'listening on' $log || exit 1; "
           "kill -TERM $pid; wait $pid",
           g_dir, g_primary, g_replicas, g_dorm);
  assert_int_equal(sh("%s", cmd), 0);
  t_loop_close(NULL);
}

/* ---- faults -------------------------------------------------------------- */

/* Silent servers: a server stopped with SIGSTOP keeps its connections
 * open and the kernel keeps acknowledging what is sent to it; nothing
 * answers.  Only the answer deadline can tell. */

static uint64_t now_ms(void) {
  uv_update_time(&T_uv);
  return uv_now(&T_uv);
}

static void test_silent_replica(void **state) {
  (void)state;
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.pool_size = 2;
  o.replicas = g_replicas;
  o.replica_check_ms = 50;
  o.read_your_writes = DORM_RYW_OFF;
  o.replica_answer_timeout_ms = 1500;
  dorm_db *db = t_open_ready(g_primary, &o);
  /* both replicas take reads before replica 1 goes silent */
  int both = 0;
  for (int tries = 0; tries < 500 && !both; tries++) {
    reads_start(db, 4,
                "SELECT current_setting('port')::int AS port, pg_sleep(0.01)");
    reads_wait(4);
    both = g_seen[1] > 0 && g_seen[2] > 0;
    if (!both) run_for(20);
  }
  assert_true(both);
  /* reads in flight on both replicas (each connection runs its pipeline
   * in order: a few take a while), then replica 1 stops */
  enum { N = 16 };
  reads_start(db, N,
              "SELECT current_setting('port')::int AS port, pg_sleep(0.3)");
  run_for(50);
  uint64_t t0 = now_ms();
  freeze(1);
  reads_wait(N);
  uint64_t took = now_ms() - t0;
  /* every read answered, none from the stopped replica (it could not
   * answer): those that were on it were sent once more, elsewhere, after
   * the deadline — and well before it woke (it has not) */
  assert_int_equal(g_done, N);
  assert_int_equal(g_bad, 0);
  assert_int_equal(g_seen[1], 0);
  assert_int_equal(g_seen[0] + g_seen[2], N);
  fprintf(stderr, "silent replica: %d reads answered %llu ms after the stop\n",
          N, (unsigned long long)took);
  assert_true(took < 20000);
  /* each deferred fired exactly once: nothing more arrives later */
  run_for(300);
  assert_int_equal(g_done, N);
  /* while it is silent, reads go elsewhere, at once */
  for (int i = 0; i < 10; i++)
    assert_int_not_equal(node_of_port(read_port(db)), 1);
  /* awake: it is used again */
  thaw(1);
  int back = 0;
  for (int i = 0; i < 1000 && !back; i++) {
    if (node_of_port(read_port(db)) == 1) back = 1;
    run_for(10);
  }
  assert_true(back);
  t_loop_close(db);
}

static dorm_result count_done(dorm_result *res, void *arg) {
  int *n = arg;
  (*n)++;
  g_done++;
  if (dorm_result_is_error(res)) g_bad++;
  return dorm_result_none();
}

static void test_silent_primary(void **state) {
  (void)state;
  /* the deadline as a URI parameter this time */
  char url[300];
  snprintf(url, sizeof url, "%s%sanswer_timeout_ms=1500", g_primary,
           strchr(g_primary, '?') ? "&" : "?");
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.pool_size = 2;
  dorm_db *db = t_open_ready(url, &o);
  admin_on(0, "DELETE FROM tick WHERE n = 7");
  add_author(db, "before-silence");
  /* dorm's TCP connections have keepalives, probing after 15 s idle (the
   * kernel's default is two hours): ss shows the timer of our sockets */
  assert_int_equal(
      sh("command -v ss >/dev/null || exit 0; "
         "ss -tnopH state established '( dport = :%d )' | grep 'pid=%d,' | "
         "grep -Eq 'timer:\\(keepalive,[0-9.]+(ms|sec),'",
         g_port[0], (int)getpid()),
      0);
  freeze(0);
  /* a write on the stopped primary: sent (the kernel takes it), never
   * answered; it fails after the deadline, with DORM_ETIMEDOUT */
  uint64_t t0 = now_ms();
  char msg[256];
  int fired = 0;
  g_done = g_bad = 0;
  dorm_deferred *d =
      dorm_async_execute(db, "INSERT INTO tick VALUES (7)", NULL, 0);
  assert_non_null(d);
  assert_int_equal(dorm_deferred_add_both(d, count_done, &fired), 0);
  assert_int_equal(
      t_err(dorm_async_execute(db, "INSERT INTO tick VALUES (7)", NULL, 0), msg,
            sizeof msg),
      DORM_ETIMEDOUT);
  uint64_t took = now_ms() - t0;
  fprintf(stderr, "silent primary: %s after %llu ms\n", msg,
          (unsigned long long)took);
  assert_non_null(strstr(msg, "answer_timeout_ms"));
  assert_true(took >= 1000 && took < 20000);
  while (!fired) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(g_bad, 1); /* the other write failed too */
  /* writes arriving while it is silent fail at once (DORM_ECONN), without
   * waiting for the deadline or a connect timeout */
  t0 = now_ms();
  for (int i = 0; i < 5; i++) {
    int code =
        t_err(dorm_async_execute(db, "INSERT INTO tick VALUES (8)", NULL, 0),
              msg, sizeof msg);
    assert_int_equal(code, DORM_ECONN);
  }
  took = now_ms() - t0;
  fprintf(stderr, "silent primary: 5 writes failed in %llu ms: %s\n",
          (unsigned long long)took, msg);
  assert_true(took < 1000);
  /* awake: the writes that timed out were never sent again (each ran at
   * most once: the server reads what was sent before the connection
   * closed), and writes work again */
  thaw(0);
  int ok = 0;
  for (int i = 0; i < 300 && !ok; i++) {
    dorm_result r =
        t_await(dorm_async_execute(db, "INSERT INTO tick VALUES (9)", NULL, 0));
    ok = !dorm_result_is_error(&r);
    dorm_result_free(&r);
    if (!ok) run_for(100);
  }
  assert_true(ok);
  run_for(500);
  long n7 = admin_on(0, "SELECT count(*) FROM tick WHERE n = 7");
  fprintf(stderr, "silent primary: the timed-out writes ran %ld times\n", n7);
  assert_true(n7 <= 2);
  assert_int_equal(admin_on(0, "SELECT count(*) FROM tick WHERE n = 8"), 0);
  assert_int_equal(fired, 1); /* once, however long we waited */
  t_loop_close(db);
}

static void test_replica_killed(void **state) {
  (void)state;
  dorm_db *db = open_with(g_primary, g_replicas, DORM_RYW_LSN, 0, 0);
  assert_true(wait_replica_read(db, 10000) > 0);
  /* reads in flight on both replicas while replica 1 dies */
  enum { N = 300 };
  reads_start(db, N,
              "SELECT current_setting('port')::int AS port, pg_sleep(0.002)");
  run_for(20);
  assert_int_equal(sh("sh tests/pg_cluster.sh kill replica1 %s", g_dir), 0);
  reads_wait(N);
  /* every read ran once, on a live server: none failed */
  assert_int_equal(g_done, N);
  assert_int_equal(g_bad, 0);
  /* while it is down, reads go to replica 2 */
  for (int i = 0; i < 10; i++) assert_int_equal(node_of_port(read_port(db)), 2);
  /* back: it is used again */
  assert_int_equal(sh("sh tests/pg_cluster.sh restart replica1 %s", g_dir), 0);
  int back = 0;
  for (int i = 0; i < 400 && !back; i++) {
    if (node_of_port(read_port(db)) == 1) back = 1;
    run_for(10);
  }
  assert_true(back);
  t_loop_close(db);
}

static void test_failover(void **state) {
  (void)state;
  /* the primary as a multi-host URL: primary, then replica 1 */
  dorm_db *db = open_with(g_failover, NULL, DORM_RYW_LSN, 0, 0);
  add_author(db, "before-failover");
  assert_int_equal(sh("sh tests/pg_cluster.sh kill primary %s", g_dir), 0);
  /* writes fail (each once) until a primary is found again */
  char msg[256];
  int code = t_err(dorm_async_execute(
                       db, "INSERT INTO tick VALUES (0)", NULL, 0),
                   msg, sizeof msg);
  assert_int_equal(code, DORM_ECONN);
  assert_int_equal(sh("sh tests/pg_cluster.sh promote replica1 %s", g_dir), 0);
  int ok = 0;
  for (int i = 0; i < 300 && !ok; i++) {
    dorm_result r = t_await(dorm_async_execute(
        db, "INSERT INTO tick VALUES (1) "
            "RETURNING current_setting('port')::int AS port",
        NULL, 0));
    if (!dorm_result_is_error(&r)) {
      ok = 1;
      assert_int_equal(
          node_of_port((int)dorm_row_int(
              dorm_rows_row(dorm_result_rows_of(&r), 0), "port")),
          1);
    } else {
      if (i % 10 == 0)
        fprintf(stderr, "failover: still %s\n", dorm_result_message(&r));
      assert_int_equal(dorm_result_code(&r), DORM_ECONN);
    }
    dorm_result_free(&r);
    if (!ok) run_for(100);
  }
  assert_true(ok);
  /* the new primary has what the old one had replicated */
  assert_int_equal(count_named(db, "before-failover"), 1);
  t_loop_close(db);
}

int main(void) {
  /* it starts its own cluster, from the PostgreSQL the run has */
  dorm_test_exit_without_pg("test_scaleout");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_your_writes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_your_writes_window, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_lag_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pgbouncer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_replicas, setup, teardown),
      cmocka_unit_test_setup_teardown(test_silent_replica, setup, teardown),
      cmocka_unit_test_setup_teardown(test_silent_primary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replica_killed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
  };
  S = dorm_schema_load_file("tests/data/query_models.json", NULL);
  if (!S) return 1;
  /* build/tests/test_scaleout -> build/dorm */
  char self[400];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = 0;
  char *slash = strrchr(self, '/');
  if (slash) *slash = 0;
  slash = strrchr(self, '/');
  snprintf(g_dorm, sizeof g_dorm, "%.*s/dorm", slash ? (int)(slash - self) : 0,
           self);
  Author = dorm_schema_model(S, "Author");
  if (cluster_start()) {
    fprintf(stderr, "test_scaleout: the cluster did not start\n");
    cluster_stop();
    dorm_schema_free(S);
    return 1;
  }
  /* the table, on the primary (the replicas get it by replication) */
  T_main = uv_thread_self();
  t_loop_open();
  dorm_db *db = open_with(g_primary, NULL, DORM_RYW_LSN, 0, 0);
  static const char *const models[] = {"Author", NULL};
  t_create_tables(db, S, models);
  dorm_result r = t_ok(dorm_async_execute(db, "CREATE TABLE tick (n int)", NULL, 0));
  dorm_result_free(&r);
  t_loop_close(db);
  /* DORM_TEST_ONLY=test_pgbouncer runs one case (by hand) */
  if (getenv("DORM_TEST_ONLY")) cmocka_set_test_filter(getenv("DORM_TEST_ONLY"));
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  cluster_stop();
  dorm_schema_free(S);
  return failed ? 1 : 0;
}
