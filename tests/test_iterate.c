/* SPDX-License-Identifier: MIT */
/* tests/test_iterate.c — streaming reads (dorm_async_iterate,
 * dorm/iterate.h) on a SQLite file and on PostgreSQL: 100,000 rows in
 * small chunks (count, order, no duplicates), filter/exclude/order_by/
 * values/select_related and prefetch_related per chunk, a paused consumer
 * (the rows held never exceed one chunk, and nothing more is fetched
 * while it waits), stop and cancel mid-stream (on PostgreSQL the query is
 * gone from pg_stat_activity), a backend killed mid-stream, a stream
 * beside other requests on a pool of one, SQLite's writer committing
 * during a stream, closing the database mid-stream, and the refusals.
 *
 * PostgreSQL tests follow the suite's rule (tests/support/support.h):
 * without DORM_TEST_PG they are skipped, the SQLite ones still run.
 */
#include "dbtest.h"
#include "support/support.h"

static const char *SCHEMA =
    "{\"models\": ["
    "{\"name\": \"Grp\", \"table\": \"it_grp\", \"fields\": ["
    " {\"name\": \"name\", \"type\": \"varchar\", \"max_length\": 20}]},"
    "{\"name\": \"Item\", \"table\": \"it_item\", \"fields\": ["
    " {\"name\": \"n\", \"type\": \"integer\"},"
    " {\"name\": \"label\", \"type\": \"varchar\", \"max_length\": 40},"
    " {\"name\": \"grp\", \"type\": \"foreign_key\", \"to\": \"Grp\","
    "  \"on_delete\": \"cascade\", \"null\": true, \"related_name\": "
    "\"items\"}]}]}";

enum { NROWS = 100000 };

static dorm_schema *S;
static const dorm_model *Grp, *Item;

typedef struct backend {
  const char *name;
  char url[512];
  char path[256]; /* SQLite's file */
  int pg;
} backend;

static void exec_ok(dorm_db *db, const char *sql) {
  dorm_result r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  dorm_result_free(&r);
}

/* A fresh database with NROWS items (n = 1..NROWS, label "item <n>",
 * items 1..30 in groups g1..g3 by n % 3) and three groups. */
static int setup_backend(backend *b, int pg) {
  memset(b, 0, sizeof *b);
  b->pg = pg;
  if (pg) {
    if (!dorm_test_pg_conninfo()) return -1;
    if (dorm_test_pg_fresh_schema("iter", b->url, sizeof b->url)) return -1;
    b->name = "postgresql";
  } else {
    dorm_test_sqlite_temp("iter", b->path, sizeof b->path, b->url,
                          sizeof b->url);
    b->name = "sqlite";
  }
  return 0;
}

static dorm_db *open_filled(backend *b, const dorm_db_options *o) {
  dorm_db *db = t_open_ready(b->url, o);
  const char *names[] = {"Grp", "Item", NULL};
  t_create_tables(db, S, names);
  exec_ok(db, "INSERT INTO it_grp (name) VALUES ('g1'), ('g2'), ('g3')");
  if (b->pg)
    exec_ok(db,
            "INSERT INTO it_item (n, label, grp_id) SELECT x, 'item ' || x, "
            "CASE WHEN x <= 30 THEN 1 + x % 3 END "
            "FROM generate_series(1, 100000) x");
  else
    exec_ok(db,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            "WHERE x < 100000) INSERT INTO it_item (n, label, grp_id) "
            "SELECT x, 'item ' || x, CASE WHEN x <= 30 THEN 1 + x % 3 END "
            "FROM c");
  return db;
}

static void teardown_backend(backend *b) {
  if (!b->pg) dorm_test_sqlite_remove(b->path);
}

/* ---- a consumer that checks what it gets -------------------------------- */

typedef struct consumer {
  size_t chunk;
  int64_t next;    /* the n expected next (ascending streams) */
  int64_t step;    /* 1 ascending, -1 descending, 0 unchecked */
  uint64_t rows;   /* rows seen */
  size_t chunks;   /* calls */
  size_t max_seen; /* largest chunk */
  size_t stop_after, cancel_after, pause_after; /* chunks; 0: never */
  dorm_deferred *d;
  dorm_iter *paused; /* the handle while paused */
  const dorm_rows *held;
  size_t held_rows;
  int check_grp; /* select_related grp: grp's name of each row */
  int check_prefetch;
} consumer;

static int consume(dorm_iter *it, const dorm_rows *chunk, void *arg) {
  consumer *c = arg;
  t_on_loop_thread();
  assert_null(c->paused); /* nothing arrives while paused */
  size_t n = dorm_rows_count(chunk);
  assert_true(n >= 1 && n <= c->chunk);
  if (n > c->max_seen) c->max_seen = n;
  c->chunks++;
  for (size_t i = 0; i < n; i++) {
    const dorm_row *r = dorm_rows_row(chunk, i);
    if (c->step) {
      assert_int_equal(dorm_row_int(r, "n"), c->next);
      c->next += c->step;
    }
    if (c->check_prefetch) {
      const dorm_rows *items = dorm_row_prefetched(r, "items");
      assert_non_null(items);
      assert_int_equal(dorm_rows_count(items), 10);
    }
  }
  c->rows += n;
  assert_int_equal(dorm_iter_rows(it), c->rows);
  if (c->stop_after && c->chunks == c->stop_after) return DORM_ITER_STOP;
  if (c->cancel_after && c->chunks == c->cancel_after) {
    dorm_deferred_cancel(c->d);
    return DORM_ITER_CONTINUE; /* ignored: the stream is stopping */
  }
  if (c->pause_after && c->chunks >= c->pause_after) {
    c->paused = it;
    c->held = chunk;
    c->held_rows = n;
    return DORM_ITER_PAUSE;
  }
  return DORM_ITER_CONTINUE;
}

static void consumer_init(consumer *c, size_t chunk, int64_t first,
                          int64_t step) {
  memset(c, 0, sizeof *c);
  c->chunk = chunk;
  c->next = first;
  c->step = step;
}

/* Rows of the table's query visible in pg_stat_activity from other
 * sessions whose text names the stream's cursor: 0 once the stream's
 * server side is gone (a backend exits shortly after its socket closes:
 * asked again for up to 2 s). */
static int64_t pg_stream_sessions(dorm_db *db) {
  int64_t n = -1;
  for (int i = 0; i < 200; i++) {
    dorm_result r = t_ok(dorm_async_execute_read(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> "
        "pg_backend_pid() AND (query LIKE 'FETCH FORWARD % FROM dorm_stream' "
        "OR query LIKE 'DECLARE dorm_stream %') "
        "AND datname = current_database()",
        NULL, 0));
    n = dorm_row_int(dorm_rows_row(dorm_result_rows_of(&r), 0), "count");
    dorm_result_free(&r);
    if (n == 0) break;
    t_run_for(10);
  }
  return n;
}

/* ---- the tests, on one backend ------------------------------------------ */

static void run_all_rows(backend *b) {
  dorm_db *db = open_filled(b, NULL);
  /* 100,000 rows by 997 (a chunk size that does not divide them) */
  dorm_query *q = dorm_select(Item);
  dorm_order_by(q, "n");
  consumer c;
  consumer_init(&c, 997, 1, 1);
  c.d = dorm_async_iterate(db, q, 997, consume, &c);
  dorm_query_free(q);
  assert_int_equal(t_count(c.d), NROWS);
  assert_int_equal(c.rows, NROWS);
  assert_int_equal(c.next, NROWS + 1); /* in order, none twice, none lost */
  assert_int_equal(c.chunks, (NROWS + 996) / 997);
  assert_int_equal(c.max_seen, 997);

  /* filter / exclude / order_by descending / values / select_related */
  q = dorm_select(Item);
  dorm_filter(q, "n__lte", dorm_int(500));
  dorm_exclude(q, "n__gt", dorm_int(400));
  dorm_order_by(q, "-n");
  dorm_values(q, "n");
  dorm_values(q, "label");
  consumer_init(&c, 7, 400, -1);
  c.d = dorm_async_iterate(db, q, 7, consume, &c);
  dorm_query_free(q);
  assert_int_equal(t_count(c.d), 400);
  assert_int_equal(c.next, 0);

  q = dorm_select(Item);
  dorm_filter(q, "grp__name", dorm_str("g2"));
  dorm_select_related(q, "grp");
  dorm_order_by(q, "n");
  consumer_init(&c, 4, 0, 0);
  c.d = dorm_async_iterate(db, q, 4, consume, &c);
  dorm_query_free(q);
  assert_int_equal(t_count(c.d), 10);
  assert_int_equal(c.chunks, 3);

  /* prefetch_related per chunk: groups two at a time, each with its 10
   * items */
  q = dorm_select(Grp);
  dorm_order_by(q, "name");
  assert_int_equal(dorm_prefetch_related(q, "items"), 0);
  consumer_init(&c, 2, 0, 0);
  c.check_prefetch = 1;
  c.d = dorm_async_iterate(db, q, 2, consume, &c);
  dorm_query_free(q);
  assert_int_equal(t_count(c.d), 3);
  assert_int_equal(c.chunks, 2);

  /* an empty result: no chunk, count 0 */
  q = dorm_select(Item);
  dorm_filter(q, "n__lt", dorm_int(0));
  consumer_init(&c, 10, 0, 0);
  c.d = dorm_async_iterate(db, q, 10, consume, &c);
  dorm_query_free(q);
  assert_int_equal(t_count(c.d), 0);
  assert_int_equal(c.chunks, 0);

  /* the default chunk */
  q = dorm_select(Item);
  dorm_order_by(q, "n");
  consumer_init(&c, DORM_ITER_DEFAULT_CHUNK, 1, 1);
  c.d = dorm_async_iterate(db, q, 0, consume, &c);
  dorm_query_free(q);
  assert_int_equal(t_count(c.d), NROWS);
  assert_int_equal(c.max_seen, DORM_ITER_DEFAULT_CHUNK);
  t_loop_close(db);
}

/* A query hook counting what it sees of a stream. */
typedef struct seen_hooks {
  int starts, ends;
  int64_t rows;
  int kind;
  char model[32];
} seen_hooks;

static void hook_start(const dorm_query_event *ev, void *arg, void **user) {
  seen_hooks *h = arg;
  h->starts++;
  h->kind = ev->kind;
  snprintf(h->model, sizeof h->model, "%s", ev->model ? ev->model : "");
  *user = h;
}

static void hook_end(const dorm_query_event *ev, void *arg, void *user) {
  seen_hooks *h = arg;
  assert_ptr_equal(user, h); /* user data from start to end */
  h->ends++;
  h->rows = ev->rows;
}

/* A paused consumer: while it holds a chunk nothing more is fetched or
 * delivered, whatever the time (the rows held by dorm for the stream are
 * the one chunk); resuming goes on where it stopped. */
static void run_paused(backend *b) {
  dorm_db *db = open_filled(b, NULL);
  dorm_query *q = dorm_select(Item);
  dorm_order_by(q, "n");
  consumer c;
  consumer_init(&c, 100, 1, 1);
  c.pause_after = 1;
  /* the stream is one request to the query hooks and the statistics */
  seen_hooks h;
  memset(&h, 0, sizeof h);
  dorm_hook *hook = dorm_db_add_hook(db, hook_start, hook_end, &h, 0);
  assert_non_null(hook);
  dorm_stats st0, st;
  assert_int_equal(dorm_db_stats(db, &st0), 0);
  c.d = dorm_async_iterate(db, q, 100, consume, &c);
  dorm_query_free(q);
  assert_int_equal(h.starts, 1);
  assert_int_equal(h.kind, DORM_STMT_READ);
  assert_string_equal(h.model, "Item");
  assert_int_equal(dorm_db_stats(db, &st), 0);
  assert_int_equal(st.streams, 1);
  assert_int_equal(st.started, st0.started + 1);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(c.d, t_keep, &w), 0);
  size_t pauses = 0;
  while (!w.done) {
    if (!c.paused) {
      uv_run(&T_uv, UV_RUN_ONCE);
      continue;
    }
    /* paused: many loop turns, and no chunk arrives */
    uint64_t before = dorm_iter_rows(c.paused);
    if (pauses < 3) t_run_for(30);
    assert_int_equal(dorm_iter_rows(c.paused), before);
    assert_true(before - (c.rows - c.held_rows) <= c.chunk);
    assert_int_equal(dorm_rows_count(c.held), c.held_rows); /* still valid */
    pauses++;
    dorm_iter *it = c.paused;
    c.paused = NULL;
    if (c.chunks == 50) c.pause_after = 0; /* then at full speed */
    dorm_iter_resume(it);
    dorm_iter_resume(it); /* twice: nothing more */
  }
  assert_int_equal(w.res.kind, DORM_RESULT_COUNT);
  assert_int_equal(w.res.u.count, NROWS);
  assert_int_equal(c.next, NROWS + 1);
  assert_int_equal(pauses, 50);
  assert_int_equal(h.starts, 1);
  assert_int_equal(h.ends, 1);
  assert_int_equal(h.rows, NROWS);
  assert_int_equal(dorm_db_stats(db, &st), 0);
  assert_int_equal(st.succeeded, st0.succeeded + 1);
  dorm_db_remove_hook(db, hook);
  t_loop_close(db);
}

/* Stop (fn returns STOP) and cancel mid-stream: the final deferred once,
 * the server-side query gone. */
static void run_stop_cancel(backend *b) {
  dorm_db *db = open_filled(b, NULL);
  dorm_query *q = dorm_select(Item);
  dorm_order_by(q, "n");
  consumer c;
  consumer_init(&c, 50, 1, 1);
  c.stop_after = 3;
  c.d = dorm_async_iterate(db, q, 50, consume, &c);
  assert_int_equal(t_count(c.d), 150);
  assert_int_equal(c.chunks, 3);
  if (b->pg) assert_int_equal(pg_stream_sessions(db), 0);

  consumer_init(&c, 50, 1, 1);
  c.cancel_after = 2;
  c.d = dorm_async_iterate(db, q, 50, consume, &c);
  assert_int_equal(t_err(c.d, NULL, 0), DORM_ECANCELED);
  assert_int_equal(c.chunks, 2);
  t_run_for(50);
  assert_int_equal(c.chunks, 2); /* nothing after the cancel */
  if (b->pg) assert_int_equal(pg_stream_sessions(db), 0);

  /* cancel while paused (the cursor idle in its transaction) */
  consumer_init(&c, 50, 1, 1);
  c.pause_after = 1;
  c.d = dorm_async_iterate(db, q, 50, consume, &c);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(c.d, t_keep, &w), 0);
  dorm_deferred_retain(c.d);
  while (!c.paused) uv_run(&T_uv, UV_RUN_ONCE);
  if (b->pg) {
    /* the stream's session is there, idle in its transaction */
    dorm_result r = t_ok(dorm_async_execute_read(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in "
        "transaction' AND query LIKE 'FETCH FORWARD 50 FROM dorm_stream'",
        NULL, 0));
    assert_int_equal(
        dorm_row_int(dorm_rows_row(dorm_result_rows_of(&r), 0), "count"), 1);
    dorm_result_free(&r);
  }
  dorm_deferred_cancel(c.d);
  assert_true(dorm_deferred_fired(c.d));
  assert_int_equal(w.done, 1);
  assert_int_equal(dorm_result_code(&w.res), DORM_ECANCELED);
  dorm_result_free(&w.res);
  dorm_deferred_release(c.d);
  t_run_for(20);
  if (b->pg) assert_int_equal(pg_stream_sessions(db), 0);

  /* a timeout is a cancel that says so */
  consumer_init(&c, 50, 1, 1);
  c.pause_after = 1;
  c.d = dorm_async_iterate(db, q, 50, consume, &c);
  assert_int_equal(dorm_deferred_set_timeout(c.d, T_loop, 50), 0);
  assert_int_equal(t_err(c.d, NULL, 0), DORM_ETIMEDOUT);
  dorm_query_free(q);
  t_run_for(20);
  if (b->pg) assert_int_equal(pg_stream_sessions(db), 0);
  t_loop_close(db);
}

/* Closing the database mid-stream fails the stream with DORM_ECLOSED,
 * once, and the close completes. */
static void run_close(backend *b) {
  dorm_db *db = open_filled(b, NULL);
  dorm_query *q = dorm_select(Item);
  consumer c;
  consumer_init(&c, 10, 0, 0);
  c.pause_after = 1;
  c.d = dorm_async_iterate(db, q, 10, consume, &c);
  dorm_query_free(q);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(c.d, t_keep, &w), 0);
  while (!c.paused) uv_run(&T_uv, UV_RUN_ONCE);
  dorm_db_close(db, t_db_closed_cb, NULL);
  assert_int_equal(w.done, 1);
  assert_int_equal(dorm_result_code(&w.res), DORM_ECLOSED);
  dorm_result_free(&w.res);
  uv_run(&T_uv, UV_RUN_DEFAULT);
  assert_int_equal(T_db_closed, 1);
  t_loop_close(NULL);
}

/* The refusals: through the errback, never synchronously. */
static void run_refusals(backend *b) {
  dorm_db *db = open_filled(b, NULL);
  dorm_query *q = dorm_update(Item);
  dorm_set(q, "n", dorm_int(1));
  consumer c;
  consumer_init(&c, 10, 0, 0);
  char msg[256];
  assert_int_equal(
      t_err(dorm_async_iterate(db, q, 10, consume, &c), msg, sizeof msg),
      DORM_EINVAL);
  assert_string_equal(msg, "iterate: not a SELECT query");
  dorm_query_free(q);
  assert_null(dorm_async_iterate(NULL, NULL, 10, consume, &c));
  assert_null(dorm_async_iterate(db, NULL, 10, NULL, &c));
  q = dorm_select(Item);
  dorm_filter(q, "nope", dorm_int(1));
  assert_int_equal(t_err(dorm_async_iterate(db, q, 10, consume, &c), NULL, 0),
                   DORM_EFIELD);
  dorm_query_free(q);
  assert_int_equal(c.chunks, 0);
  t_loop_close(db);
}

static dorm_deferred *in_tx(dorm_db *tx, void *arg) {
  int *code = arg;
  dorm_query *q = dorm_select(Item);
  dorm_deferred *d = dorm_async_iterate(tx, q, 10, consume, NULL);
  dorm_query_free(q);
  *code = -1;
  return d;
}

static void run_tx_refused(backend *b) {
  dorm_db *db = open_filled(b, NULL);
  int code = 0;
  char msg[256];
  assert_int_equal(t_err(dorm_async_atomic(db, in_tx, &code), msg, sizeof msg),
                   DORM_EINVAL);
  assert_int_equal(code, -1);
  assert_non_null(strstr(msg, "not on a transaction handle"));
  t_loop_close(db);
}

/* ---- SQLite ------------------------------------------------------------- */

static void test_sqlite_all_rows(void **state) {
  backend b;
  setup_backend(&b, 0);
  t_loop_open();
  run_all_rows(&b);
  teardown_backend(&b);
}

static void test_sqlite_paused(void **state) {
  backend b;
  setup_backend(&b, 0);
  t_loop_open();
  run_paused(&b);
  teardown_backend(&b);
}

static void test_sqlite_stop_cancel(void **state) {
  backend b;
  setup_backend(&b, 0);
  t_loop_open();
  run_stop_cancel(&b);
  teardown_backend(&b);
}

static void test_sqlite_close(void **state) {
  backend b;
  setup_backend(&b, 0);
  t_loop_open();
  run_close(&b);
  teardown_backend(&b);
}

static void test_sqlite_refusals(void **state) {
  backend b;
  setup_backend(&b, 0);
  t_loop_open();
  run_refusals(&b);
  teardown_backend(&b);
  setup_backend(&b, 0);
  t_loop_open();
  run_tx_refused(&b);
  teardown_backend(&b);
  /* a memory database has one connection: it cannot stream */
  t_loop_open();
  dorm_db *db = t_open_ready("sqlite://", NULL);
  dorm_query *q = dorm_select(Item);
  char msg[256];
  assert_int_equal(
      t_err(dorm_async_iterate(db, q, 10, consume, NULL), msg, sizeof msg),
      DORM_EUNSUPPORTED);
  assert_non_null(strstr(msg, "memory database"));
  dorm_query_free(q);
  t_loop_close(db);
}

/* WAL: the writer commits while a stream is paused mid-way (and a read
 * on the readers sees the commit), the stream reads on in its snapshot;
 * with one reader, reads are not held up by the stream either. */
static void test_sqlite_writer_not_blocked(void **state) {
  backend b;
  setup_backend(&b, 0);
  t_loop_open();
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.readers = 1;
  dorm_db *db = open_filled(&b, &o);
  dorm_query *q = dorm_select(Item);
  dorm_order_by(q, "n");
  consumer c;
  consumer_init(&c, 1000, 1, 1);
  c.pause_after = 1;
  c.d = dorm_async_iterate(db, q, 1000, consume, &c);
  dorm_deferred_retain(c.d);
  while (!c.paused) uv_run(&T_uv, UV_RUN_ONCE);
  exec_ok(db, "INSERT INTO it_item (n, label) VALUES (100001, 'late')");
  dorm_query *all = dorm_select(Item);
  assert_int_equal(t_count(dorm_async_count(db, all)), NROWS + 1);
  dorm_query_free(all);
  c.pause_after = 0;
  dorm_iter *it = c.paused;
  c.paused = NULL;
  dorm_iter_resume(it);
  while (!dorm_deferred_fired(c.d)) uv_run(&T_uv, UV_RUN_ONCE);
  const dorm_result *r = dorm_deferred_result(c.d);
  assert_int_equal(r->kind, DORM_RESULT_COUNT);
  assert_int_equal(r->u.count, NROWS); /* the snapshot of its start */
  dorm_deferred_release(c.d);
  dorm_query_free(q);
  t_loop_close(db);
  teardown_backend(&b);
}

/* ---- PostgreSQL --------------------------------------------------------- */

#define PG_TEST(name, fn)             \
  static void name(void **state) {    \
    dorm_test_skip_without_pg();      \
    backend b;                        \
    if (setup_backend(&b, 1)) fail(); \
    t_loop_open();                    \
    fn(&b);                           \
  }

PG_TEST(test_pg_all_rows, run_all_rows)
PG_TEST(test_pg_paused, run_paused)
PG_TEST(test_pg_stop_cancel, run_stop_cancel)
PG_TEST(test_pg_close, run_close)
PG_TEST(test_pg_refusals, run_refusals)
PG_TEST(test_pg_tx_refused, run_tx_refused)

/* A pool of one connection: a paused stream holds a connection of its
 * own, so the pool's one connection still serves other requests. */
static void test_pg_beside_pool_of_one(void **state) {
  dorm_test_skip_without_pg();
  backend b;
  if (setup_backend(&b, 1)) fail();
  t_loop_open();
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.pool_size = 1;
  dorm_db *db = open_filled(&b, &o);
  dorm_query *q = dorm_select(Item);
  dorm_order_by(q, "n");
  consumer c;
  consumer_init(&c, 500, 1, 1);
  c.pause_after = 1;
  c.d = dorm_async_iterate(db, q, 500, consume, &c);
  dorm_deferred_retain(c.d);
  while (!c.paused) uv_run(&T_uv, UV_RUN_ONCE);
  for (int i = 0; i < 5; i++) {
    dorm_query *f = dorm_select(Item);
    dorm_filter(f, "n__lte", dorm_int(10 * (i + 1)));
    assert_int_equal(t_count(dorm_async_count(db, f)), 10 * (i + 1));
    dorm_query_free(f);
  }
  exec_ok(db, "UPDATE it_item SET label = 'changed' WHERE n = 1");
  c.pause_after = 0;
  dorm_iter *it = c.paused;
  c.paused = NULL;
  dorm_iter_resume(it);
  while (!dorm_deferred_fired(c.d)) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(dorm_deferred_result(c.d)->u.count, NROWS);
  dorm_deferred_release(c.d);
  dorm_query_free(q);
  t_loop_close(db);
}

/* pg_terminate_backend on the stream's session while it is paused: the
 * next FETCH fails, the final deferred fails once with DORM_ECONN, and
 * the database goes on serving. */
static void test_pg_backend_killed(void **state) {
  dorm_test_skip_without_pg();
  backend b;
  if (setup_backend(&b, 1)) fail();
  t_loop_open();
  dorm_db *db = open_filled(&b, NULL);
  dorm_query *q = dorm_select(Item);
  dorm_order_by(q, "n");
  consumer c;
  consumer_init(&c, 100, 1, 1);
  c.pause_after = 2;
  c.d = dorm_async_iterate(db, q, 100, consume, &c);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(c.d, t_keep, &w), 0);
  while (!c.paused) uv_run(&T_uv, UV_RUN_ONCE);
  dorm_result r = t_ok(dorm_async_execute(
      db,
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
      "query LIKE 'FETCH FORWARD 100 FROM dorm_stream' AND pid <> "
      "pg_backend_pid()",
      NULL, 0));
  assert_int_equal(
      dorm_row_int(dorm_rows_row(dorm_result_rows_of(&r), 0), "count"), 1);
  dorm_result_free(&r);
  t_run_for(50); /* the server's goodbye reaches the stream's socket */
  dorm_iter *it = c.paused;
  c.paused = NULL;
  c.pause_after = 0;
  if (!w.done) dorm_iter_resume(it);
  while (!w.done) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(dorm_result_code(&w.res), DORM_ECONN);
  dorm_result_free(&w.res);
  assert_int_equal(c.chunks, 2);
  t_run_for(30);

  /* the pool serves on */
  dorm_query *f = dorm_select(Item);
  assert_int_equal(t_count(dorm_async_count(db, f)), NROWS);
  dorm_query_free(f);
  dorm_query_free(q);
  t_loop_close(db);
}

/* Chunks after the first are fetched in binary when every column's type
 * allows it (pg_stream.c): each value must read exactly as in text (the
 * first chunk, and dorm_async_filter): extremes, negatives, NULLs. */
static const char *KINDS =
    "{\"models\": [{\"name\": \"Kinds\", \"table\": \"it_kinds\", "
    "\"fields\": ["
    " {\"name\": \"id\", \"type\": \"integer\", \"primary_key\": true},"
    " {\"name\": \"s\", \"type\": \"smallint\", \"null\": true},"
    " {\"name\": \"b\", \"type\": \"bigint\", \"null\": true},"
    " {\"name\": \"f\", \"type\": \"float\", \"null\": true},"
    " {\"name\": \"ok\", \"type\": \"boolean\", \"null\": true},"
    " {\"name\": \"t\", \"type\": \"text\", \"null\": true}]}]}";

typedef struct kinds_seen {
  const dorm_rows *all; /* dorm_async_filter's rows, the reference */
  size_t at;
} kinds_seen;

static int kinds_check(dorm_iter *it, const dorm_rows *chunk, void *arg) {
  (void)it;
  kinds_seen *k = arg;
  static const char *const cols[] = {"id", "s", "b", "f", "ok", "t"};
  for (size_t i = 0; i < dorm_rows_count(chunk); i++, k->at++) {
    const dorm_row *got = dorm_rows_row(chunk, i);
    const dorm_row *want = dorm_rows_row(k->all, k->at);
    for (size_t c = 0; c < 6; c++) {
      const dorm_value *g = dorm_row_value(got, cols[c]);
      const dorm_value *w = dorm_row_value(want, cols[c]);
      if (!g || !w) { /* NULL on both sides */
        assert_true(!g && !w);
        continue;
      }
      assert_int_equal(g->type, w->type);
      switch (g->type) {
        case DORM_T_INT: assert_true(g->u.i == w->u.i); break;
        case DORM_T_BOOL: assert_int_equal(g->u.b, w->u.b); break;
        case DORM_T_FLOAT:
          assert_memory_equal(&g->u.f, &w->u.f, sizeof g->u.f);
          break;
        case DORM_T_TEXT:
          assert_int_equal(g->u.s.len, w->u.s.len);
          assert_memory_equal(g->u.s.ptr, w->u.s.ptr, g->u.s.len);
          break;
        default: break;
      }
    }
  }
  return DORM_ITER_CONTINUE;
}

static void test_pg_binary_chunks(void **state) {
  dorm_test_skip_without_pg();
  backend b;
  if (setup_backend(&b, 1)) fail();
  t_loop_open();
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *ks = dorm_schema_load_string(KINDS, NULL, &err);
  assert_non_null(ks);
  dorm_db *db = t_open_ready(b.url, NULL);
  const char *names[] = {"Kinds", NULL};
  t_create_tables(db, ks, names);
  exec_ok(db,
          "INSERT INTO it_kinds VALUES "
          "(1, 1, 1, 1.5, true, 'one'),"
          "(2, -32768, -9223372036854775808, -0.0, false, ''),"
          "(3, 32767, 9223372036854775807, 1e308, NULL, 'caf\xc3\xa9 ''x'''),"
          "(4, NULL, NULL, NULL, NULL, NULL),"
          "(5, -1, -1, 0.1, true, E'tab\\tline\\nend'),"
          "(6, 0, 4294967296, -2.5e-310, false, repeat('y', 5000)),"
          "(7, 7, 7, 'NaN', true, 'seven'),"
          "(8, 8, 8, '-Infinity', false, 'eight')");
  const dorm_model *K = dorm_schema_model(ks, "Kinds");
  dorm_query *q = dorm_select(K);
  dorm_order_by(q, "id");
  dorm_result all = t_ok(dorm_async_filter(db, q));
  kinds_seen k = {dorm_result_rows_of(&all), 0};
  assert_int_equal(dorm_rows_count(k.all), 8);
  assert_int_equal(t_count(dorm_async_iterate(db, q, 2, kinds_check, &k)), 8);
  assert_int_equal(k.at, 8);
  dorm_query_free(q);
  dorm_result_free(&all);
  t_loop_close(db);
  dorm_schema_free(ks);
}

static int group_setup(void **state) {
  dorm_error err;
  dorm_error_clear(&err);
  S = dorm_schema_load_string(SCHEMA, NULL, &err);
  if (!S) {
    fprintf(stderr, "schema: %s\n", err.message);
    return -1;
  }
  Grp = dorm_schema_model(S, "Grp");
  Item = dorm_schema_model(S, "Item");
  return 0;
}

static int group_teardown(void **state) {
  dorm_schema_free(S);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sqlite_all_rows),
      cmocka_unit_test(test_sqlite_paused),
      cmocka_unit_test(test_sqlite_stop_cancel),
      cmocka_unit_test(test_sqlite_close),
      cmocka_unit_test(test_sqlite_refusals),
      cmocka_unit_test(test_sqlite_writer_not_blocked),
      cmocka_unit_test(test_pg_all_rows),
      cmocka_unit_test(test_pg_paused),
      cmocka_unit_test(test_pg_stop_cancel),
      cmocka_unit_test(test_pg_close),
      cmocka_unit_test(test_pg_refusals),
      cmocka_unit_test(test_pg_tx_refused),
      cmocka_unit_test(test_pg_beside_pool_of_one),
      cmocka_unit_test(test_pg_backend_killed),
      cmocka_unit_test(test_pg_binary_chunks),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
