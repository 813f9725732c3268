/* SPDX-License-Identifier: MIT */
/* tests/test_hooks.c — query hooks, statistics and the query counter of
 * dorm/observe.h, on every backend of tests/dbsuite.h (SQLite file and
 * memory, PostgreSQL, and in the suite's cluster the primary with two
 * replicas and PgBouncer): every request is seen exactly once starting
 * and once ending, in that order, with its kind, model, rows and error
 * (a failing query, a cancelled one, a timed-out one, a transaction, a
 * replica read sent once more), never after dorm_db_close returns; the
 * statistics match what the test did.
 *
 * The statement log ($DORM_LOG) is read once per process, so its tests
 * run this program again as a child (--log-child) with the variables set
 * and its stderr in a file, and read the lines.
 */
#include <fcntl.h>
#include <jansson.h>
#include <sys/wait.h>

#include "dbsuite.h"

/* ---- a recording hook --------------------------------------------------- */

#define MAXEV 256

typedef struct rec_ev {
  int kind, code, internal, in_tx, role, retried;
  int64_t rows;
  char model[32];
  char sql[160];
  char sqlstate[8];
  size_t nparams;
  int had_params;
  uint64_t queue_ns, exec_ns;
} rec_ev;

typedef struct rec {
  int starts, ends;
  /* the same without the facade's internal requests (with replicas, a
   * position read of the set-up's writes may start during a test) */
  int ustarts, uends;
  int open_now; /* started, not ended */
  int bad_user; /* an end whose user data was not its start's */
  int after_close;
  int closed; /* dorm_db_close has returned */
  rec_ev ev[MAXEV];
} rec;

static rec R;
static int tokens[MAXEV];

static void rec_start(const dorm_query_event *ev, void *arg, void **user) {
  rec *r = arg;
  t_on_loop_thread();
  if (r->closed) r->after_close++;
  assert_null(*user);
  assert_true(r->starts < MAXEV);
  tokens[r->starts] = r->starts + 1;
  *user = &tokens[r->starts];
  r->starts++;
  if (!ev->internal) r->ustarts++;
  r->open_now++;
  assert_int_equal(ev->rows, 0); /* end fields are empty */
  assert_int_equal(ev->code, 0);
}

static void rec_end(const dorm_query_event *ev, void *arg, void *user) {
  rec *r = arg;
  t_on_loop_thread();
  if (r->closed) r->after_close++;
  assert_non_null(user);
  int i = *(int *)user - 1;
  if (i < 0 || i >= r->starts || tokens[i] < 0) r->bad_user++;
  tokens[i] = -1; /* ended once */
  r->ends++;
  if (!ev->internal) r->uends++;
  r->open_now--;
  rec_ev *e = &r->ev[i];
  e->kind = ev->kind;
  e->code = ev->code;
  e->internal = ev->internal;
  e->in_tx = ev->in_transaction;
  e->role = ev->role;
  e->retried = ev->retried;
  e->rows = ev->rows;
  e->nparams = ev->nparams;
  e->had_params = ev->params != NULL || ev->message != NULL;
  e->queue_ns = ev->queue_ns;
  e->exec_ns = ev->exec_ns;
  snprintf(e->model, sizeof e->model, "%s", ev->model ? ev->model : "");
  snprintf(e->sql, sizeof e->sql, "%.*s", (int)ev->sql_len, ev->sql);
  snprintf(e->sqlstate, sizeof e->sqlstate, "%s", ev->sqlstate);
}

static dorm_hook *hook_on(void) {
  memset(&R, 0, sizeof R);
  dorm_hook *h = dorm_db_add_hook(DB, rec_start, rec_end, &R, 0);
  assert_non_null(h);
  return h;
}

/* The user-visible requests recorded (internal ones skipped), from the
 * start index `from`: their events, in start order. */
static int user_events(int from, rec_ev **out, int cap) {
  int n = 0;
  for (int i = from; i < R.starts && n < cap; i++)
    if (!R.ev[i].internal) out[n++] = &R.ev[i];
  return n;
}

static void settle(void) {
  /* internal requests (replica positions) may still be out */
  for (int i = 0; i < 200 && R.open_now; i++) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(R.open_now, 0);
  assert_int_equal(R.starts, R.ends);
  assert_int_equal(R.bad_user, 0);
}

static int is_pg(void) { return dorm_db_dialect(DB) == DORM_DIALECT_POSTGRES; }

static const char *slow_sql(void) {
  if (is_pg()) return "SELECT pg_sleep(0.3)";
  /* SQLite runs a cancelled statement to its end: under valgrind (about
   * 50 times slower) a tenth of the rows is still far over the 30 ms
   * timeout, and keeps the suite's valgrind run short */
  return getenv("DORM_UNDER_VALGRIND")
             ? "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
               "FROM c WHERE x < 300000) SELECT count(*) FROM c"
             : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
               "FROM c WHERE x < 3000000) SELECT count(*) FROM c";
}

/* ---- tests -------------------------------------------------------------- */

static void run_ok(dorm_deferred *d) {
  dorm_result r = t_ok(d);
  dorm_result_free(&r);
}

/* Each kind of call: one start and one end, with kind, model, rows,
 * errors; never the values. */
static void test_each_request(void **state) {
  (void)state;
  hook_on();
  seed(); /* 5 creates */
  dorm_query *q = dorm_select(Author);
  run_ok(dorm_async_filter(DB, q));
  assert_int_equal(t_count(dorm_async_count(DB, q)), 5);
  dorm_query_free(q);
  q = dorm_update(Author);
  dorm_filter(q, "name", dorm_str("Bob"));
  dorm_set(q, "age", dorm_int(18));
  assert_int_equal(t_count(dorm_async_update(DB, q)), 1);
  dorm_query_free(q);
  dorm_value p = dorm_str("sekrit");
  run_ok(dorm_async_execute_read(
      DB,
      is_pg() ? "SELECT count(*) FROM author WHERE name = $1"
              : "SELECT count(*) FROM author WHERE name = ?",
      &p, 1));
  assert_int_equal(
      t_err(dorm_async_execute_read(DB, "SELECT * FROM no_such_table", NULL, 0),
            NULL, 0),
      DORM_EDB);
  run_ok(dorm_async_execute(DB, "CREATE TABLE obs_x (id integer)", NULL, 0));
  settle();
  rec_ev *e[64];
  int n = user_events(0, e, 64);
  assert_int_equal(n, 5 + 6);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(e[i]->kind, DORM_STMT_WRITE);
    assert_string_equal(e[i]->model, "Author");
    assert_int_equal(e[i]->rows, 1); /* INSERT ... RETURNING: one row */
    assert_int_equal(e[i]->code, 0);
    assert_true(e[i]->nparams > 0);
    assert_false(e[i]->had_params);
    assert_true(e[i]->role == DORM_ROLE_PRIMARY ||
                e[i]->role == DORM_ROLE_SQLITE_WRITER);
  }
  assert_int_equal(e[5]->kind, DORM_STMT_READ); /* filter */
  assert_int_equal(e[5]->rows, 5);
  assert_string_equal(e[5]->model, "Author");
  assert_int_equal(e[6]->kind, DORM_STMT_READ); /* count */
  assert_int_equal(e[6]->rows, 1);
  assert_int_equal(e[7]->kind, DORM_STMT_WRITE); /* update */
  assert_int_equal(e[7]->rows, 1);
  assert_int_equal(e[8]->kind, DORM_STMT_READ); /* raw, one parameter */
  assert_int_equal(e[8]->nparams, 1);
  assert_false(e[8]->had_params);
  assert_string_equal(e[8]->model, "");
  assert_int_equal(e[9]->kind, DORM_STMT_READ); /* the failing one */
  assert_int_equal(e[9]->code, DORM_EDB);
  assert_int_equal(e[9]->rows, -1);
  if (is_pg()) assert_string_equal(e[9]->sqlstate, "42P01");
  assert_int_equal(e[10]->kind, DORM_STMT_DDL);
  assert_string_equal(e[10]->sql, "CREATE TABLE obs_x (id integer)");
  for (int i = 0; i < n; i++) assert_false(e[i]->in_tx);
}

/* DORM_HOOK_VALUES gives the parameters and the error text. */
static const dorm_value *seen_params;
static size_t seen_nparams;
static char seen_text[64];
static void values_end(const dorm_query_event *ev, void *arg, void *user) {
  (void)arg;
  (void)user;
  seen_params = ev->params;
  seen_nparams = ev->nparams;
  if (ev->params && ev->nparams && ev->params[0].type == DORM_T_TEXT)
    snprintf(seen_text, sizeof seen_text, "%.*s", (int)ev->params[0].u.s.len,
             ev->params[0].u.s.ptr);
}

static void test_values_on_request(void **state) {
  (void)state;
  dorm_hook *h = dorm_db_add_hook(DB, NULL, values_end, NULL, DORM_HOOK_VALUES);
  assert_non_null(h);
  seen_text[0] = '\0';
  dorm_value p = dorm_str("sekrit");
  run_ok(dorm_async_execute_read(
      DB, is_pg() ? "SELECT $1::text AS v" : "SELECT ? AS v", &p, 1));
  assert_int_equal(seen_nparams, 1);
  assert_non_null(seen_params);
  assert_string_equal(seen_text, "sekrit");
  dorm_db_remove_hook(DB, h);
  /* bad arguments */
  assert_null(dorm_db_add_hook(DB, NULL, NULL, NULL, 0));
  assert_null(dorm_db_add_hook(DB, NULL, values_end, NULL, 0x100));
  assert_null(dorm_db_add_hook(NULL, NULL, values_end, NULL, 0));
}

static dorm_deferred *tx_block(dorm_db *tx, void *arg) {
  (void)arg;
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str("Tx"));
  dorm_deferred *d = dorm_async_create(tx, q);
  dorm_query_free(q);
  return d;
}

/* A transaction: BEGIN, the write, COMMIT, all in_transaction. */
static void test_transaction(void **state) {
  (void)state;
  hook_on();
  run_ok(dorm_async_atomic(DB, tx_block, NULL));
  settle();
  rec_ev *e[16];
  int n = user_events(0, e, 16);
  assert_int_equal(n, 3);
  assert_int_equal(e[0]->kind, DORM_STMT_TX);
  assert_true(!strncmp(e[0]->sql, "BEGIN", 5));
  assert_int_equal(e[1]->kind, DORM_STMT_WRITE);
  assert_string_equal(e[1]->model, "Author");
  assert_int_equal(e[2]->kind, DORM_STMT_TX);
  assert_string_equal(e[2]->sql, "COMMIT");
  for (int i = 0; i < 3; i++) {
    assert_true(e[i]->in_tx);
    assert_int_equal(e[i]->code, 0);
  }
}

/* Cancelled and timed out: the end says so; the statistics count them. */
static void test_cancel_and_timeout(void **state) {
  (void)state;
  dorm_stats s0, s1;
  assert_int_equal(dorm_db_stats(DB, &s0), 0);
  hook_on();
  dorm_deferred *d = dorm_async_execute_read(DB, slow_sql(), NULL, 0);
  assert_non_null(d);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
  dorm_deferred_cancel(d);
  while (!w.done) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(dorm_result_code(&w.res), DORM_ECANCELED);
  dorm_result_free(&w.res);
  settle();
  d = dorm_async_execute_read(DB, slow_sql(), NULL, 0);
  assert_non_null(d);
  assert_int_equal(dorm_deferred_set_timeout(d, T_loop, 30), 0);
  assert_int_equal(t_err(d, NULL, 0), DORM_ETIMEDOUT);
  settle();
  rec_ev *e[8];
  assert_int_equal(user_events(0, e, 8), 2);
  assert_int_equal(e[0]->code, DORM_ECANCELED);
  assert_int_equal(e[1]->code, DORM_ETIMEDOUT);
  assert_int_equal(dorm_db_stats(DB, &s1), 0);
  assert_int_equal(s1.cancelled - s0.cancelled, 1);
  assert_int_equal(s1.timed_out - s0.timed_out, 1);
  assert_int_equal(
      s1.failed_by_code[-DORM_ECANCELED] - s0.failed_by_code[-DORM_ECANCELED],
      1);
  assert_int_equal(
      s1.failed_by_code[-DORM_ETIMEDOUT] - s0.failed_by_code[-DORM_ETIMEDOUT],
      1);
}

/* dorm_db_close ends what is out (DORM_ECLOSED), then nothing more. */
static void test_close_ends_all(void **state) {
  (void)state;
  hook_on();
  dorm_deferred *d = dorm_async_execute_read(DB, slow_sql(), NULL, 0);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
  assert_int_equal(R.ustarts, 1);
  assert_int_equal(R.uends, 0);
  T_db_closed = 0;
  dorm_db_close(DB, t_db_closed_cb, NULL);
  R.closed = 1;
  assert_int_equal(R.uends, 1);
  assert_int_equal(R.starts, R.ends); /* internal ones too */
  rec_ev *e[4];
  assert_int_equal(user_events(0, e, 4), 1);
  assert_int_equal(e[0]->code, DORM_ECLOSED);
  /* a request made now never reaches a connection: no hook */
  dorm_query *q = dorm_select(Author);
  dorm_deferred *d2 = dorm_async_count(DB, q);
  dorm_query_free(q);
  assert_int_equal(t_err(d2, NULL, 0), DORM_ECLOSED);
  while (!w.done || !T_db_closed) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(dorm_result_code(&w.res), DORM_ECLOSED);
  dorm_result_free(&w.res);
  assert_int_equal(R.ustarts, 1);
  assert_int_equal(R.uends, 1);
  assert_int_equal(R.starts, R.ends);
  assert_int_equal(R.after_close, 0);
  DB = NULL; /* closed: teardown has nothing to close */
}

/* The statistics match what was done. */
static void test_stats(void **state) {
  (void)state;
  dorm_stats s0, s1;
  assert_int_equal(dorm_db_stats(DB, &s0), 0);
  assert_true(s0.started > 0); /* the set-up's CREATE TABLEs */
  assert_int_equal(s0.started, s0.succeeded + s0.failed + s0.in_flight);
  seed();
  dorm_query *q = dorm_select(Author);
  assert_int_equal(t_count(dorm_async_count(DB, q)), 5);
  dorm_query_free(q);
  assert_int_equal(
      t_err(dorm_async_execute(DB, "INSERT INTO no_such_table VALUES (1)", NULL,
                               0),
            NULL, 0),
      DORM_EDB);
  for (int i = 0; i < 100; i++) { /* position reads (replicas) */
    assert_int_equal(dorm_db_stats(DB, &s1), 0);
    if (!s1.in_flight) break;
    uv_run(&T_uv, UV_RUN_ONCE);
  }
  assert_int_equal(s1.in_flight, 0);
  assert_int_equal(s1.queued, 0);
  uint64_t internal =
      s1.nreplicas ? s1.by_kind[DORM_STMT_READ] - s0.by_kind[DORM_STMT_READ] - 1
                   : 0;
  assert_int_equal(s1.started - s0.started, 7 + internal);
  /* every request started is answered or out (a position read of the
   * set-up's writes may have started before s0 and ended after it) */
  assert_int_equal(s1.started, s1.succeeded + s1.failed + s1.in_flight);
  if (!s1.nreplicas) assert_int_equal(s1.succeeded - s0.succeeded, 6);
  assert_int_equal(s1.failed - s0.failed, 1);
  assert_int_equal(s1.failed_by_code[-DORM_EDB] - s0.failed_by_code[-DORM_EDB],
                   1);
  assert_int_equal(s1.by_kind[DORM_STMT_WRITE] - s0.by_kind[DORM_STMT_WRITE],
                   6);
  assert_int_equal(s1.hooks, s0.hooks);
  uint64_t sum = 0;
  size_t cached = 0;
  for (size_t i = 0; i < s1.nconns; i++) {
    dorm_conn_stats c;
    assert_int_equal(dorm_db_conn_stats(DB, i, &c), 0);
    sum += c.requests;
    cached += c.statements_cached;
    assert_int_equal(c.in_flight, 0);
    assert_false(c.pinned);
    if (!strcmp(dorm_db_backend_name(DB), "sqlite")) {
      assert_int_equal(c.state, DORM_CONN_READY);
      assert_true(c.role == DORM_ROLE_SQLITE_WRITER ||
                  c.role == DORM_ROLE_SQLITE_READER);
    } else {
      assert_true(c.role == DORM_ROLE_PRIMARY || c.role == DORM_ROLE_REPLICA);
    }
  }
  assert_int_equal(sum, s1.started + s1.retried);
  /* compiled queries are prepared once per connection (not through
   * PgBouncer, which has no named statements) */
  dorm_conn_stats c0;
  assert_int_equal(dorm_db_conn_stats(DB, 0, &c0), 0);
  if (!c0.pgbouncer) assert_true(cached > 0);
  assert_int_equal(dorm_db_conn_stats(DB, s1.nconns, &c0), DORM_EINVAL);
  assert_int_equal(dorm_db_stats(NULL, &s1), DORM_EINVAL);
  if (!strcmp(dorm_db_backend_name(DB), "sqlite")) {
    assert_int_equal(s1.nreplicas, 0);
    assert_int_equal(s1.reads_replica, 0);
  }
  if (s1.nreplicas) {
    /* once the replicas have replayed the writes, reads go there */
    t_run_for(300);
    q = dorm_select(Author);
    for (int i = 0; i < 4; i++)
      assert_int_equal(t_count(dorm_async_count(DB, q)), 5);
    dorm_query_free(q);
    assert_int_equal(dorm_db_stats(DB, &s1), 0);
    assert_true(s1.reads_replica > 0);
    uint64_t reads = 0;
    int lag_known = 0;
    for (size_t n = 1; n <= s1.nreplicas; n++) {
      dorm_replica_stats r;
      assert_int_equal(dorm_db_replica_stats(DB, n, &r), 0);
      reads += r.reads;
      lag_known |= r.lag_known;
    }
    assert_int_equal(reads, s1.reads_replica);
    assert_true(lag_known);
  }
}

/* assertNumQueries: the counter counts statements, not internals. */
static void test_counter(void **state) {
  (void)state;
  dorm_query_counter qc;
  assert_int_equal(dorm_query_counter_start(&qc, DB), 0);
  seed();
  dorm_query *q = dorm_select(Author);
  run_ok(dorm_async_filter(DB, q));
  assert_int_equal(t_count(dorm_async_count(DB, q)), 5);
  dorm_query_free(q);
  assert_int_equal(dorm_query_counter_stop(&qc), 7);
  assert_int_equal(qc.by_kind[DORM_STMT_WRITE], 5);
  assert_int_equal(qc.by_kind[DORM_STMT_READ], 2);
  assert_int_equal(qc.failed, 0);
  assert_true(strstr(qc.last_sql, "COUNT") || strstr(qc.last_sql, "count"));
  /* stopped: no longer counts, and the hook is gone */
  q = dorm_select(Author);
  run_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  assert_int_equal(qc.queries, 7);
  dorm_stats s;
  dorm_db_stats(DB, &s);
  assert_int_equal(s.hooks, 0);
}

/* What the suite checked by reading PostgreSQL's statement log, on every
 * backend: prefetch_related runs one query per relation, whatever the
 * number of rows (no N+1). */
static void test_counter_prefetch(void **state) {
  (void)state;
  for (int i = 0; i < 6; i++) {
    char name[16];
    snprintf(name, sizeof name, "pf%d", i);
    int64_t a = add_author(name, 20 + i, NULL);
    add_entry(a, i % 2 ? a : 0, "e", i);
    add_entry(a, 0, "f", i);
  }
  dorm_query_counter qc;
  assert_int_equal(dorm_query_counter_start(&qc, DB), 0);
  dorm_query *q = dorm_select(Author);
  dorm_prefetch_related(q, "entries__tags");
  dorm_prefetch_related(q, "edited");
  dorm_result r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  assert_int_equal(dorm_rows_count(dorm_result_rows_of(&r)), 6);
  dorm_result_free(&r);
  /* authors, their entries, the entries' tags, the entries they edited */
  assert_int_equal(dorm_query_counter_stop(&qc), 4);
  assert_int_equal(qc.by_kind[DORM_STMT_READ], 4);
}

/* dorm_listen and dorm_unlisten are requests of kind LISTEN (on the
 * backend's listener connection); dorm_db_close ends one still out.
 * PostgreSQL only (SQLite refuses, PgBouncer cannot listen). */
static void on_notify(dorm_db *db, const dorm_notification *n, void *arg) {
  (void)db;
  (void)n;
  (void)arg;
}

static void test_listen_seen(void **state) {
  (void)state;
  hook_on();
  dorm_deferred *d = dorm_listen(DB, "obs_chan", on_notify, NULL);
  if (!d) {
    assert_int_equal(R.ustarts, 0);
    skip();
  }
  dorm_result r = t_await(d);
  int code = dorm_result_code(&r);
  dorm_result_free(&r);
  settle();
  rec_ev *e[4];
  assert_int_equal(user_events(0, e, 4), 1);
  assert_int_equal(e[0]->kind, DORM_STMT_LISTEN);
  assert_string_equal(e[0]->sql, "LISTEN \"obs_chan\"");
  assert_int_equal(e[0]->code, code);
  if (code) skip(); /* PgBouncer refuses LISTEN: seen, and failed */
  run_ok(dorm_unlisten(DB, "obs_chan", on_notify, NULL));
  settle();
  assert_int_equal(user_events(0, e, 4), 2);
  assert_int_equal(e[1]->kind, DORM_STMT_LISTEN);
  assert_string_equal(e[1]->sql, "UNLISTEN \"obs_chan\"");
  dorm_stats s;
  dorm_db_stats(DB, &s);
  assert_true(s.by_kind[DORM_STMT_LISTEN] >= 2);
  /* one still out when the database closes: ended then, never after */
  d = dorm_listen(DB, "obs_chan2", on_notify, NULL);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
  assert_int_equal(R.ustarts, 3);
  T_db_closed = 0;
  dorm_db_close(DB, t_db_closed_cb, NULL);
  R.closed = 1;
  assert_int_equal(R.uends, 3);
  assert_int_equal(user_events(0, e, 4), 3);
  assert_int_equal(e[2]->code, DORM_ECLOSED);
  while (!w.done || !T_db_closed) uv_run(&T_uv, UV_RUN_ONCE);
  dorm_result_free(&w.res);
  assert_int_equal(R.after_close, 0);
  DB = NULL;
}

/* A removed hook starts nothing new but ends what it saw start. */
static void test_remove_hook(void **state) {
  (void)state;
  dorm_hook *h = hook_on();
  dorm_deferred *d = dorm_async_execute_read(DB, slow_sql(), NULL, 0);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
  assert_int_equal(R.ustarts, 1);
  dorm_db_remove_hook(DB, h);
  dorm_db_remove_hook(DB, h); /* twice: nothing */
  run_ok(dorm_async_execute_read(DB, "SELECT 1", NULL, 0));
  while (!w.done) uv_run(&T_uv, UV_RUN_ONCE);
  dorm_result_free(&w.res);
  assert_int_equal(R.ustarts, 1);
  assert_int_equal(R.uends, 1);
  assert_int_equal(R.starts, R.ends);
  /* the slots: DORM_HOOKS_MAX at most */
  dorm_hook *hs[DORM_HOOKS_MAX + 1];
  int n = 0;
  while (n <= DORM_HOOKS_MAX &&
         (hs[n] = dorm_db_add_hook(DB, NULL, rec_end, &R, 0)) != NULL)
    n++;
  assert_int_equal(n, DORM_HOOKS_MAX);
  for (int i = 0; i < n; i++) dorm_db_remove_hook(DB, hs[i]);
  dorm_stats s;
  dorm_db_stats(DB, &s);
  assert_int_equal(s.hooks, 0);
}

/* A read whose replica stays silent past the answer deadline is sent once
 * more elsewhere: one request for the hooks, retried = 1.  Only in the
 * suite's cluster (primary + replicas). */
static void test_retried_replica_read(void **state) {
  (void)state;
  if (!T_replicas[0]) skip();
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.replicas = T_replicas;
  o.replica_check_ms = 20;
  o.replica_answer_timeout_ms = 300;
  dorm_db *db = t_open_ready(T_url, &o);
  t_run_for(300); /* the replicas are probed: reads go there */
  memset(&R, 0, sizeof R);
  assert_non_null(dorm_db_add_hook(db, rec_start, rec_end, &R, 0));
  dorm_result r =
      t_await(dorm_async_execute_read(db, "SELECT pg_sleep(1)", NULL, 0));
  dorm_result_free(&r);
  for (int i = 0; i < 200 && R.open_now; i++) uv_run(&T_uv, UV_RUN_ONCE);
  rec_ev *e[8];
  assert_int_equal(user_events(0, e, 8), 1);
  assert_int_equal(R.starts, R.ends);
  assert_true(e[0]->retried);
  dorm_stats s;
  dorm_db_stats(db, &s);
  assert_int_equal(s.retried, 1);
  T_db_closed = 0;
  dorm_db_close(db, t_db_closed_cb, NULL);
  while (!T_db_closed) uv_run(&T_uv, UV_RUN_ONCE);
  T_db_closed = 0; /* the teardown counts its own database's close */
}

/* ---- the statement log (a child process) -------------------------------- */

static char self_exe[512];

static dorm_result swallow(dorm_result *res, void *arg) {
  (void)res;
  *(int *)arg = 1;
  return dorm_result_none();
}

/* The child: open url, run a few reads, a slow one, a failing one, with a
 * secret parameter; open a second database too (the bad-value warning is
 * given once). */
static int log_child(const char *url, const char *replicas) {
  uv_loop_t uv;
  uv_loop_init(&uv);
  dorm_loop *loop = dorm_loop_new(&uv);
  dorm_db *dbs[2];
  for (int k = 0; k < 2; k++) {
    dorm_error err;
    dorm_error_clear(&err);
    dorm_db_options o;
    dorm_db_options_init(&o);
    o.replicas = replicas;
    dbs[k] = dorm_db_open(loop, url, &o, &err);
    if (!dbs[k]) return 2;
  }
  dorm_db *db = dbs[0];
  int pg = dorm_db_dialect(db) == DORM_DIALECT_POSTGRES;
  dorm_value p = dorm_str("sekrit-value");
  const char *slow = pg ? "SELECT pg_sleep(0.4)"
                        : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT "
                          "x + 1 FROM c WHERE x < 3000000) SELECT count(*) "
                          "FROM c";
  int done = 0;
  dorm_deferred_add_both(dorm_db_ready(db), swallow, &done);
  /* one at a time: a fast statement never waits behind the slow one */
  for (int step = 0; step < 5; step++) {
    while (!done) uv_run(&uv, UV_RUN_ONCE);
    done = 0;
    dorm_deferred *d;
    switch (step) {
      case 0:
        d = dorm_async_execute_read(db, "SELECT 1 AS one", NULL, 0);
        break;
      case 1:
        d = dorm_async_execute_read(
            db, pg ? "SELECT $1::text AS v" : "SELECT ? AS v", &p, 1);
        break;
      case 2: d = dorm_async_execute_read(db, slow, NULL, 0); break;
      case 3:
        d = dorm_async_execute_read(db, "SELECT * FROM no_such_table", NULL, 0);
        break;
      default: d = dorm_async_execute_read(db, "SELECT 2 AS two", NULL, 0);
    }
    /* the result is dropped (the failing one's too) */
    dorm_deferred_add_both(d, swallow, &done);
  }
  while (!done) uv_run(&uv, UV_RUN_ONCE);
  dorm_db_close(dbs[0], NULL, NULL);
  dorm_db_close(dbs[1], NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  uv_loop_close(&uv);
  return 0;
}

/* Run the child with DORM_LOG settings; its stderr, malloc'd. */
static char *run_child(const char *log, const char *format,
                       const char *values) {
  char out[] = "/tmp/dorm-test-hooks-log.XXXXXX";
  int fd = mkstemp(out);
  assert_true(fd >= 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fd, 2);
    setenv("DORM_LOG", log, 1);
    if (format)
      setenv("DORM_LOG_FORMAT", format, 1);
    else
      unsetenv("DORM_LOG_FORMAT");
    if (values)
      setenv("DORM_LOG_VALUES", values, 1);
    else
      unsetenv("DORM_LOG_VALUES");
    execl(self_exe, self_exe, "--log-child", T_url, T_replicas, (char *)NULL);
    _exit(127);
  }
  close(fd);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  char *text = dorm_test_read_file(out);
  unlink(out);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fprintf(stderr, "log child failed (%d): %s\n", st, text ? text : "");
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  assert_non_null(text);
  return text;
}

static int count_lines(const char *text) {
  int n = 0;
  for (const char *p = text; *p; p++)
    if (*p == '\n') n++;
  return n;
}

static void test_log_slow(void **state) {
  (void)state;
  char *text = run_child("slow=150ms", NULL, NULL);
  /* only the slow statement, on one line */
  assert_int_equal(count_lines(text), 1);
  assert_true(strstr(text, "pg_sleep") || strstr(text, "WITH RECURSIVE"));
  assert_true(!strncmp(text, "dorm: read ", 11));
  assert_null(strstr(text, "sekrit"));
  free(text);
}

static void test_log_all_json(void **state) {
  (void)state;
  char *text = run_child("all", "json", NULL);
  /* 5 statements of the child (the replicas' probes are not requests) */
  assert_int_equal(count_lines(text), 5);
  assert_null(strstr(text, "sekrit"));
  int errors = 0, with_param = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    json_error_t je;
    json_t *j = json_loads(line, 0, &je);
    if (!j) fprintf(stderr, "not JSON: %s\n", line);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "read");
    assert_non_null(json_object_get(j, "sql"));
    assert_true(json_is_number(json_object_get(j, "ms")));
    assert_null(json_object_get(j, "params"));
    assert_null(json_object_get(j, "message"));
    if (json_object_get(j, "error")) errors++;
    if (json_integer_value(json_object_get(j, "nparams")) == 1) with_param++;
    json_decref(j);
  }
  assert_int_equal(errors, 1);
  assert_int_equal(with_param, 1);
  free(text);
}

static void test_log_values(void **state) {
  (void)state;
  char *text = run_child("all", NULL, "1");
  assert_int_equal(count_lines(text), 5);
  assert_non_null(strstr(text, "params=[\"sekrit-value\"]"));
  assert_non_null(strstr(text, "error=DORM_EDB"));
  assert_non_null(strstr(text, "message="));
  free(text);
}

static void test_log_bad_value(void **state) {
  (void)state;
  char *text = run_child("sometimes", NULL, NULL);
  /* one warning naming the value, although two databases were opened,
   * and nothing logged */
  assert_int_equal(count_lines(text), 1);
  assert_non_null(strstr(text, "DORM_LOG='sometimes'"));
  free(text);
  text = run_child("slow=fast", NULL, NULL);
  assert_int_equal(count_lines(text), 1);
  assert_non_null(strstr(text, "DORM_LOG='slow=fast'"));
  free(text);
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "--log-child"))
    return log_child(argv[2], argc >= 4 && argv[3][0] ? argv[3] : NULL);
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n <= 0) return 1;
  self_exe[n] = '\0';
  const struct CMUnitTest tests[] = {
      T(test_each_request),
      T(test_values_on_request),
      T(test_transaction),
      T(test_cancel_and_timeout),
      T(test_close_ends_all),
      T(test_stats),
      T(test_counter),
      T(test_counter_prefetch),
      T(test_listen_seen),
      T(test_remove_hook),
      T(test_retried_replica_read),
      T(test_log_slow),
      T(test_log_all_json),
      T(test_log_values),
      T(test_log_bad_value),
  };
  return dbsuite_main(tests);
}
