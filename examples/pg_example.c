/* SPDX-License-Identifier: MIT */
/* examples/pg_example.c — non-blocking PostgreSQL from a libuv program.
 *
 *   make build/examples/pg_example
 *   DATABASE_URL="postgresql://user@localhost/db" build/examples/pg_example
 *
 * One loop, one database handle, nothing blocks: the program subscribes to
 * a channel, creates a table, runs a transaction of inserts, then fires a
 * hundred lookups at once (they share the pool's pipelined connections),
 * gathers them, notifies itself, and once the notification has come back
 * gives a slow query a timeout, and closes.  Each step is a callback on
 * the loop thread; errors end the chain through one errback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dorm.h"

static dorm_loop *loop;
static dorm_db *db;

static void closed(void *arg);

static dorm_result fail(dorm_result *res, void *arg) {
  (void)arg;
  fprintf(stderr, "error: %s: %s\n", dorm_err_name(dorm_result_code(res)),
          dorm_result_message(res));
  dorm_db_close(db, closed, NULL);
  return dorm_result_none();
}

/* The transaction's body: every request made on tx runs on its one
 * connection, in order; the block commits when the returned deferred
 * succeeds. */
static dorm_deferred *insert_all(dorm_db *tx, void *arg) {
  (void)arg;
  dorm_deferred *last = NULL;
  for (int i = 1; i <= 100; i++) {
    char name[32];
    snprintf(name, sizeof name, "item %d", i);
    dorm_value v[] = {dorm_int(i), dorm_str(name)}; /* copied by the call */
    last = dorm_async_execute(
        tx, "INSERT INTO pg_example (id, name) VALUES ($1, $2)", v, 2);
  }
  return last;
}

static void closed(void *arg) {
  (void)arg;
  dorm_loop_close(loop, NULL, NULL);
}

static dorm_result step_close(dorm_result *res, void *arg) {
  (void)arg;
  printf("slow query: %s\n", dorm_err_name(dorm_result_code(res)));
  dorm_db_close(db, closed, NULL);
  return dorm_result_none();
}

/* a per-query timeout: the deferred fails with DORM_ETIMEDOUT */
static void step_slow(void) {
  dorm_deferred *d = dorm_async_execute(db, "SELECT pg_sleep(5)", NULL, 0);
  dorm_deferred_set_timeout(d, loop, 200);
  dorm_deferred_add_both(d, step_close, NULL);
}

/* Notifications come on the loop thread, on the listening connection;
 * ours comes back after the lookups, and the program goes on. */
static void on_notify(dorm_db *d, const dorm_notification *n, void *arg) {
  (void)d;
  (void)arg;
  if (n->gap) {
    printf("notify: reconnected, re-read state\n");
    return;
  }
  printf("notify on %s: %s\n", n->channel, n->payload);
  if (!strcmp(n->payload, "all done")) step_slow();
}

static dorm_result step_notify(dorm_result *res, void *arg) {
  (void)arg;
  size_t n = res->u.list.n, found = 0;
  for (size_t i = 0; i < n; i++) {
    const dorm_row *row = dorm_result_row_of(&res->u.list.items[i]);
    if (row) found++;
  }
  printf("%zu lookups in flight at once, %zu rows\n", n, found);
  dorm_value v[] = {dorm_str("pg_example"), dorm_str("all done")};
  /* on_notify goes on when it comes back */
  return dorm_result_deferred(
      dorm_async_execute(db, "SELECT pg_notify($1, $2)", v, 2));
}

static dorm_result step_lookups(dorm_result *res, void *arg) {
  (void)arg;
  printf("transaction committed\n");
  (void)res;
  enum { N = 100 };
  dorm_deferred *ds[N];
  for (int i = 0; i < N; i++) {
    dorm_value v = dorm_int(i + 1);
    ds[i] = dorm_async_execute(
        db, "SELECT id, name FROM pg_example WHERE id = $1", &v, 1);
  }
  dorm_deferred *all = dorm_gather(loop, ds, N, DORM_GATHER_FIRST_ERROR);
  return dorm_result_deferred(all); /* the chain waits for the gather */
}

static dorm_result step_ddl(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  static const char *const ddl[] = {"DROP TABLE IF EXISTS pg_example",
                                    "CREATE TABLE pg_example (id int PRIMARY "
                                    "KEY, name text NOT NULL)"};
  return dorm_result_deferred(dorm_async_execute_many(db, ddl, 2));
}

static dorm_result step_tx(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  return dorm_result_deferred(dorm_async_atomic(db, insert_all, NULL));
}

int main(void) {
  uv_loop_t uv;
  uv_loop_init(&uv);
  loop = dorm_loop_new(&uv);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.pool_size = 4;
  db = dorm_db_open(loop, getenv("DATABASE_URL"), &o, &err);
  if (!db) {
    fprintf(stderr, "open: %s\n", err.message);
    return 1;
  }
  /* listening first: a NOTIFY committed after this deferred has fired is
   * delivered */
  dorm_deferred *d = dorm_listen(db, "pg_example", on_notify, NULL);
  dorm_deferred_add_callback(d, step_ddl, NULL);
  dorm_deferred_add_callback(d, step_tx, NULL);
  dorm_deferred_add_callback(d, step_lookups, NULL);
  dorm_deferred_add_callback(d, step_notify, NULL);
  dorm_deferred_add_errback(d, fail, NULL);
  uv_run(&uv, UV_RUN_DEFAULT); /* returns once the db and loop are closed */
  return uv_loop_close(&uv) == 0 ? 0 : 1;
}
