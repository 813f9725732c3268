/* SPDX-License-Identifier: MIT */
/* tests/test_db_write.c — the database facade on every backend, writing: update
 * and delete, integrity errors, bulk_create, get_or_create, and a field's
 * choices refused on every write.
 *
 * tests/dbsuite.h runs every test once per backend (SQLite file and
 * memory, PostgreSQL, and through replicas and PgBouncer when the run has
 * the cluster).
 */
#include "dbsuite.h"

static void test_update_delete(void **state) {
  (void)state;
  seed();
  dorm_query *q = dorm_update(Author);
  dorm_filter(q, "country", dorm_str("GB"));
  dorm_set(
      q, "age",
      dorm_fval(dorm_op(q, '+', dorm_F(q, "age"), dorm_lit(q, dorm_int(10)))));
  assert_int_equal(t_count(dorm_async_update(DB, q)), 2);
  dorm_query_free(q);
  q = dorm_select(Author);
  dorm_filter(q, "name", dorm_str("Ann"));
  dorm_result r = t_ok(dorm_async_get(DB, q));
  assert_int_equal(dorm_row_int(r.u.row.row, "age"), 40);
  dorm_result_free(&r);
  dorm_query_free(q);

  /* update ... RETURNING gives rows */
  q = dorm_update(Author);
  dorm_filter(q, "name", dorm_str("Bob"));
  dorm_set(q, "bio", dorm_str("hi"));
  dorm_returning(q, "bio");
  r = t_ok(dorm_async_update(DB, q));
  assert_int_equal(r.kind, DORM_RESULT_ROWS);
  assert_string_equal(dorm_row_text(dorm_rows_row(r.u.rows.rows, 0), "bio"),
                      "hi");
  dorm_result_free(&r);
  dorm_query_free(q);

  q = dorm_delete(Author);
  dorm_filter(q, "age__isnull", dorm_bool(1));
  assert_int_equal(t_count(dorm_async_delete(DB, q)), 1);
  dorm_query_free(q);
  q = dorm_select(Author);
  assert_int_equal(t_count(dorm_async_count(DB, q)), 4);
  dorm_query_free(q);
}

static void test_integrity_errors(void **state) {
  (void)state;
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str("A"));
  dorm_set(q, "email", dorm_str("a@x.org"));
  dorm_result r = t_ok(dorm_async_create(DB, q));
  dorm_result_free(&r);
  r = t_await(dorm_async_create(DB, q));
  assert_int_equal(dorm_result_code(&r), DORM_EINTEGRITY);
  assert_string_equal(dorm_result_sqlstate(&r), "23505");
  dorm_result_free(&r);
  dorm_query_free(q);

  q = dorm_insert(Entry);
  dorm_set(q, "author", dorm_int(999));
  dorm_set(q, "headline", dorm_str("x"));
  r = t_await(dorm_async_create(DB, q));
  assert_int_equal(dorm_result_code(&r), DORM_EINTEGRITY);
  assert_string_equal(dorm_result_sqlstate(&r), "23503");
  dorm_result_free(&r);
  dorm_query_free(q);

  r = t_await(dorm_async_execute(
      DB,
      dorm_db_dialect(DB) == DORM_DIALECT_SQLITE
          ? "INSERT INTO author (name, country, bio, active) VALUES (NULL, "
            "'US', '', 1)"
          : "INSERT INTO author (name, country, bio, active) VALUES (NULL, "
            "'US', '', true)",
      NULL, 0));
  assert_int_equal(dorm_result_code(&r), DORM_EINTEGRITY);
  assert_string_equal(dorm_result_sqlstate(&r), "23502");
  dorm_result_free(&r);
}

static void test_bulk_create(void **state) {
  (void)state;
  dorm_query *q = dorm_insert(Author);
  char name[32];
  for (int i = 0; i < 2500; i++) {
    if (i) dorm_insert_next_row(q);
    snprintf(name, sizeof name, "bulk%d", i);
    dorm_set(q, "name", dorm_str(name));
    dorm_set(q, "age", dorm_int(i % 90));
  }
  assert_int_equal(t_count(dorm_async_bulk_create(DB, q)), 2500);
  dorm_query_free(q);
  q = dorm_select(Author);
  assert_int_equal(t_count(dorm_async_count(DB, q)), 2500);
  dorm_filter(q, "name", dorm_str("bulk2499"));
  dorm_result r = t_ok(dorm_async_get(DB, q));
  assert_int_equal(dorm_row_int(r.u.row.row, "age"), 2499 % 90);
  assert_string_equal(dorm_row_text(r.u.row.row, "country"), "US");
  dorm_result_free(&r);
  dorm_query_free(q);

  /* a failing row: nothing at all is inserted */
  q = dorm_insert(Author);
  for (int i = 0; i < 1200; i++) {
    if (i) dorm_insert_next_row(q);
    snprintf(name, sizeof name, "dup%d@x", i == 1100 ? 3 : i);
    dorm_set(q, "name", dorm_str(name));
    dorm_set(q, "email", dorm_str(name));
  }
  assert_int_equal(t_err(dorm_async_bulk_create(DB, q), NULL, 0),
                   DORM_EINTEGRITY);
  dorm_query_free(q);
  q = dorm_select(Author);
  assert_int_equal(t_count(dorm_async_count(DB, q)), 2500);
  dorm_query_free(q);
}

static void test_get_or_create(void **state) {
  (void)state;
  add_author("Ann", 30, NULL);
  dorm_kv look[] = {{"name", dorm_str("Ann")}};
  dorm_kv defs[] = {{"age", dorm_int(99)}};
  dorm_result r = t_ok(dorm_async_get_or_create(DB, Author, look, 1, defs, 1));
  assert_int_equal(r.kind, DORM_RESULT_ROW);
  assert_int_equal(dorm_row_created(r.u.row.row), 0);
  assert_int_equal(dorm_row_int(r.u.row.row, "age"), 30);
  dorm_result_free(&r);

  dorm_kv look2[] = {{"name", dorm_str("Zoe")}, {"country", dorm_str("NZ")}};
  r = t_ok(dorm_async_get_or_create(DB, Author, look2, 2, defs, 1));
  assert_int_equal(dorm_row_created(r.u.row.row), 1);
  assert_int_equal(dorm_row_int(r.u.row.row, "age"), 99);
  assert_string_equal(dorm_row_text(r.u.row.row, "country"), "NZ");
  int64_t zoe = dorm_row_int(r.u.row.row, "id");
  dorm_result_free(&r);
  r = t_ok(dorm_async_get_or_create(DB, Author, look2, 2, defs, 1));
  assert_int_equal(dorm_row_created(r.u.row.row), 0);
  assert_int_equal(dorm_row_int(r.u.row.row, "id"), zoe);
  dorm_result_free(&r);

  /* update_or_create: updates the match, or creates */
  dorm_kv defs2[] = {{"age", dorm_int(31)}, {"bio", dorm_str("new")}};
  r = t_ok(dorm_async_update_or_create(DB, Author, look, 1, defs2, 2));
  assert_int_equal(dorm_row_created(r.u.row.row), 0);
  assert_int_equal(dorm_row_int(r.u.row.row, "age"), 31);
  assert_string_equal(dorm_row_text(r.u.row.row, "bio"), "new");
  dorm_result_free(&r);
  dorm_kv look3[] = {{"name", dorm_str("Yan")}};
  r = t_ok(dorm_async_update_or_create(DB, Author, look3, 1, defs2, 2));
  assert_int_equal(dorm_row_created(r.u.row.row), 1);
  assert_int_equal(dorm_row_int(r.u.row.row, "age"), 31);
  dorm_result_free(&r);

  /* several matches: EMULTIPLE and nothing changed */
  add_author("Ann", 50, NULL);
  assert_int_equal(
      t_err(dorm_async_update_or_create(DB, Author, look, 1, defs, 1), NULL, 0),
      DORM_EMULTIPLE);
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "age", dorm_int(99));
  dorm_filter(q, "name", dorm_str("Ann"));
  assert_int_equal(t_count(dorm_async_count(DB, q)), 0);
  dorm_query_free(q);
  assert_int_equal(
      t_err(dorm_async_get_or_create(DB, Author, look, 1, NULL, 0), NULL, 0),
      DORM_EMULTIPLE);
}

/* choices hold on every write path (models.md): a value outside them is
 * refused before any SQL, with DORM_EINVAL through the errback, and
 * nothing is written. */
static const char choices_models[] =
    "{\"models\": [{\"name\": \"Task\", \"fields\": ["
    "{\"name\": \"title\", \"type\": \"varchar\", \"max_length\": 50},"
    "{\"name\": \"status\", \"type\": \"varchar\", \"max_length\": 10,"
    " \"default\": \"todo\","
    " \"choices\": [[\"todo\", \"To do\"], [\"done\", \"Done\"]]},"
    "{\"name\": \"price\", \"type\": \"decimal\", \"max_digits\": 6,"
    " \"decimal_places\": 2, \"null\": true, \"choices\": [\"0.50\", \"10\"]}"
    "]}]}";

static int64_t count_tasks(const dorm_model *task, const char *status) {
  dorm_query *q = dorm_select(task);
  if (status) dorm_filter(q, "status", dorm_str(status));
  int64_t n = t_count(dorm_async_count(DB, q));
  dorm_query_free(q);
  return n;
}

static void test_choices(void **state) {
  (void)state;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *cs =
      dorm_schema_load_string(choices_models, "models.json", &err);
  if (!cs) fail_msg("schema: %s", err.message);
  const dorm_model *task = dorm_schema_model(cs, "Task");
  static const char *const names[] = {"Task", NULL};
  t_create_tables(DB, cs, names);
  char msg[DORM_ERROR_MSG_MAX];

  /* create: a choice (decimal by value) is stored, another value refused */
  dorm_query *q = dorm_insert(task);
  dorm_set(q, "title", dorm_str("a"));
  dorm_set(q, "status", dorm_str("done"));
  dorm_set(q, "price", dorm_decimal("0.5"));
  dorm_result r = t_ok(dorm_async_create(DB, q));
  int64_t id = dorm_row_int(r.u.row.row, "id");
  dorm_result_free(&r);
  dorm_query_free(q);
  q = dorm_insert(task);
  dorm_set(q, "title", dorm_str("b"));
  dorm_set(q, "status", dorm_str("bogus"));
  assert_int_equal(t_err(dorm_async_create(DB, q), msg, sizeof msg),
                   DORM_EINVAL);
  assert_string_equal(msg,
                      "model 'Task', field 'status': 'bogus' is not one of "
                      "the choices ('todo', 'done')");
  dorm_query_free(q);
  q = dorm_insert(task);
  dorm_set(q, "title", dorm_str("c"));
  dorm_set(q, "price", dorm_decimal("0.51"));
  assert_int_equal(t_err(dorm_async_create(DB, q), msg, sizeof msg),
                   DORM_EINVAL);
  assert_non_null(strstr(msg, "field 'price': '0.51'"));
  dorm_query_free(q);
  assert_int_equal(count_tasks(task, NULL), 1);

  /* update: refused, the row keeps its value */
  q = dorm_update(task);
  dorm_filter(q, "pk", dorm_int(id));
  dorm_set(q, "status", dorm_str("doing"));
  assert_int_equal(t_err(dorm_async_update(DB, q), msg, sizeof msg),
                   DORM_EINVAL);
  assert_non_null(strstr(msg, "'doing' is not one of the choices"));
  dorm_query_free(q);
  assert_int_equal(count_tasks(task, "done"), 1);

  /* bulk_create: one bad row and nothing is inserted */
  q = dorm_insert(task);
  dorm_set(q, "title", dorm_str("d"));
  dorm_set(q, "status", dorm_str("todo"));
  dorm_insert_next_row(q);
  dorm_set(q, "title", dorm_str("e"));
  dorm_set(q, "status", dorm_str("later"));
  assert_int_equal(t_err(dorm_async_bulk_create(DB, q), msg, sizeof msg),
                   DORM_EINVAL);
  assert_non_null(strstr(msg, "'later'"));
  dorm_query_free(q);
  assert_int_equal(count_tasks(task, NULL), 1);

  /* get_or_create and update_or_create: their defaults are held too */
  dorm_kv look[] = {{"title", dorm_str("f")}};
  dorm_kv bad[] = {{"status", dorm_str("nope")}};
  dorm_kv good[] = {{"status", dorm_str("done")}};
  assert_int_equal(t_err(dorm_async_get_or_create(DB, task, look, 1, bad, 1),
                         msg, sizeof msg),
                   DORM_EINVAL);
  assert_non_null(strstr(msg, "model 'Task', field 'status': 'nope'"));
  assert_int_equal(count_tasks(task, NULL), 1);
  r = t_ok(dorm_async_get_or_create(DB, task, look, 1, good, 1));
  assert_int_equal(dorm_row_created(r.u.row.row), 1);
  dorm_result_free(&r);
  /* the row exists now: get_or_create returns it and its defaults are
   * never used, so they are not held against it (Django calls create()
   * only when get() finds nothing) */
  r = t_ok(dorm_async_get_or_create(DB, task, look, 1, bad, 1));
  assert_int_equal(dorm_row_created(r.u.row.row), 0);
  dorm_result_free(&r);
  assert_int_equal(t_err(dorm_async_update_or_create(DB, task, look, 1, bad, 1),
                         msg, sizeof msg),
                   DORM_EINVAL);
  assert_non_null(strstr(msg, "'nope'"));
  assert_int_equal(count_tasks(task, "done"), 2);
  assert_int_equal(count_tasks(task, "nope"), 0);
  dorm_schema_free(cs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_update_delete), T(test_integrity_errors), T(test_bulk_create),
      T(test_get_or_create), T(test_choices),
  };
  return dbsuite_main(tests);
}
