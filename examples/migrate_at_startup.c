/* SPDX-License-Identifier: MIT */
/* examples/migrate_at_startup.c — an embedded program that brings its own
 * SQLite file up to date at startup, without the dorm command.
 *
 *   make build/examples/migrate_at_startup
 *   build/examples/migrate_at_startup app.sqlite3 examples/blog/migrations
 *
 * It opens the file (created when missing), runs dorm_async_migrate over
 * the migrations folder (what `dorm migrate` would do: each migration in
 * its own BEGIN IMMEDIATE transaction, a history with two leaves refused),
 * then uses the tables: adds a tag and counts them.  Run it twice: the
 * second run has nothing to migrate.  Each step is a callback on the loop
 * thread; any error ends the chain in one errback and the program exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dorm.h"

static dorm_loop *loop;
static dorm_db *db;
static const char *migrations = "examples/blog/migrations";
static int status = 0;

static void closed(void *arg) {
  (void)arg;
  dorm_loop_close(loop, NULL, NULL);
}

static dorm_result fail(dorm_result *res, void *arg) {
  (void)arg;
  fprintf(stderr, "error: %s\n", dorm_result_message(res));
  status = 1;
  dorm_db_close(db, closed, NULL);
  return dorm_result_none();
}

/* What the migrations do, as they happen. */
static void on_progress(void *arg, const char *name,
                        dorm_migrate_direction dir) {
  (void)arg;
  printf("%s %s\n", dir == DORM_MIGRATE_FORWARDS ? "applying" : "unapplying",
         name);
}

static dorm_result step_migrate(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  dorm_migrate_options o;
  memset(&o, 0, sizeof o);
  o.progress = on_progress;
  /* NULL target: every migration; o is read during the call, the folder
   * name too */
  return dorm_result_deferred(dorm_async_migrate(db, migrations, NULL, &o));
}

static dorm_result step_insert(dorm_result *res, void *arg) {
  (void)arg;
  printf("migrated: %lld applied\n", (long long)res->u.count);
  dorm_value name = dorm_str("started");
  return dorm_result_deferred(dorm_async_execute(
      db, "INSERT INTO tag (name) SELECT ? || (count(*) + 1) FROM tag", &name,
      1));
}

static dorm_result step_count(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  return dorm_result_deferred(
      dorm_async_execute(db, "SELECT count(*) FROM tag", NULL, 0));
}

static dorm_result step_print(dorm_result *res, void *arg) {
  (void)arg;
  const dorm_rows *rows = dorm_result_rows_of(res);
  const dorm_value *n = dorm_row_value_at(dorm_rows_row(rows, 0), 0);
  printf("tags: %lld\n", (long long)n->u.i);
  dorm_db_close(db, closed, NULL);
  return dorm_result_none();
}

int main(int argc, char **argv) {
  const char *file = argc > 1 ? argv[1] : "app.sqlite3";
  if (argc > 2) migrations = argv[2];
  char url[1024];
  snprintf(url, sizeof url, "sqlite:///%s", file);
  uv_loop_t uv;
  uv_loop_init(&uv);
  loop = dorm_loop_new(&uv);
  dorm_error err;
  dorm_error_clear(&err);
  db = dorm_db_open(loop, url, NULL, &err);
  if (!db) {
    fprintf(stderr, "open: %s\n", err.message);
    return 1;
  }
  dorm_deferred *d = dorm_db_ready(db);
  dorm_deferred_add_callback(d, step_migrate, NULL);
  dorm_deferred_add_callback(d, step_insert, NULL);
  dorm_deferred_add_callback(d, step_count, NULL);
  dorm_deferred_add_callback(d, step_print, NULL);
  dorm_deferred_add_errback(d, fail, NULL);
  uv_run(&uv, UV_RUN_DEFAULT); /* returns once the db and loop are closed */
  if (uv_loop_close(&uv) != 0) return 1;
  return status;
}
