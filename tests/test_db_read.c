/* SPDX-License-Identifier: MIT */
/* tests/test_db_read.c — the database facade on every backend, reading: the
 * column types a row comes back with, filter, get, count/exists/aggregate,
 * select_related with values(), integer ranges, raw execute, rows as JSON, and
 * a database ready at once.
 *
 * tests/dbsuite.h runs every test once per backend (SQLite file and
 * memory, PostgreSQL, and through replicas and PgBouncer when the run has
 * the cluster).
 */
#include "dbsuite.h"

static void test_create_types(void **state) {
  (void)state;
  dorm_query *q = dorm_insert(Author);
  static const char blob[] = {'a', 0, 'b', (char)0xff};
  dorm_set(q, "name", dorm_str("Ann"));
  dorm_set(q, "age", dorm_int(30));
  dorm_set(q, "joined", dorm_datetime("2024-05-01T13:45:00+02:00"));
  dorm_set(q, "score", dorm_decimal("12.5"));
  dorm_set(q, "uid", dorm_uuid("123E4567-E89B-12D3-A456-426614174000"));
  dorm_set(q, "data", dorm_json_text("{\"a\": [1, 2]}"));
  dorm_set(q, "wake", dorm_time("07:30:00"));
  dorm_set(q, "born", dorm_date("1990-02-03"));
  dorm_set(q, "avatar", dorm_bytes(blob, sizeof blob));
  dorm_result r = t_ok(dorm_async_create(DB, q));
  dorm_query_free(q);
  assert_int_equal(r.kind, DORM_RESULT_ROW);
  const dorm_row *row = r.u.row.row;
  assert_true(dorm_row_int(row, "id") > 0);
  assert_int_equal(dorm_row_int(row, "pk"), dorm_row_int(row, "id"));
  assert_string_equal(dorm_row_text(row, "name"), "Ann");
  assert_int_equal(dorm_row_int(row, "age"), 30);
  assert_string_equal(dorm_row_text(row, "country"), "US"); /* default */
  assert_string_equal(dorm_row_text(row, "bio"), "");
  assert_int_equal(dorm_row_bool(row, "active"), 1);
  assert_int_equal(dorm_row_value(row, "active")->type, DORM_T_BOOL);
  assert_string_equal(dorm_row_text(row, "joined"), "2024-05-01T11:45:00Z");
  assert_string_equal(dorm_row_text(row, "score"), "12.50");
  assert_int_equal(dorm_row_value(row, "score")->type, DORM_T_DECIMAL);
  assert_string_equal(dorm_row_text(row, "uid"),
                      "123e4567-e89b-12d3-a456-426614174000");
  json_t *j = dorm_row_json(row, "data");
  assert_non_null(j);
  assert_int_equal(
      json_integer_value(json_array_get(json_object_get(j, "a"), 1)), 2);
  json_decref(j);
  assert_string_equal(dorm_row_text(row, "wake"), "07:30:00");
  assert_string_equal(dorm_row_text(row, "born"), "1990-02-03");
  size_t len;
  const void *b = dorm_row_bytes(row, "avatar", &len);
  assert_int_equal(len, sizeof blob);
  assert_memory_equal(b, blob, sizeof blob);
  assert_true(dorm_row_is_null(row, "email"));
  assert_null(dorm_row_value(row, "nope"));
  assert_true(dorm_row_is_null(row, "nope"));
  assert_int_equal(dorm_row_created(row), 0);
  dorm_result_free(&r);

  /* and read back the same through a SELECT */
  q = dorm_select(Author);
  dorm_filter(q, "name", dorm_str("Ann"));
  r = t_ok(dorm_async_get(DB, q));
  dorm_query_free(q);
  row = r.u.row.row;
  assert_string_equal(dorm_row_text(row, "joined"), "2024-05-01T11:45:00Z");
  assert_string_equal(dorm_row_text(row, "score"), "12.50");
  assert_string_equal(dorm_row_text(row, "uid"),
                      "123e4567-e89b-12d3-a456-426614174000");
  assert_int_equal(dorm_row_value(row, "avatar")->type, DORM_T_BYTES);
  dorm_result_free(&r);
}

static void test_filter(void **state) {
  (void)state;
  seed();
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "age__gte", dorm_int(18));
  dorm_order_by(q, "name");
  expect_names(q, "Ann,Cid,ann b");

  q = dorm_select(Author);
  dorm_filter(q, "name__istartswith", dorm_str("ann"));
  dorm_order_by(q, "-age");
  expect_names(q, "Ann,ann b");

  q = dorm_select(Author);
  dorm_value cc[] = {dorm_str("GB"), dorm_str("FR")};
  dorm_exclude_q(q, dorm_q_or(q, dorm_Q(q, "country__in", dorm_list(cc, 2)),
                              dorm_Q(q, "age__isnull", dorm_bool(1))));
  expect_names(q, "Bob");

  q = dorm_select(Author);
  dorm_filter(q, "name__icontains", dorm_str("N B"));
  expect_names(q, "ann b");

  q = dorm_select(Author);
  dorm_filter(q, "name__regex", dorm_str("^[AB]"));
  dorm_order_by(q, "name");
  expect_names(q, "Ann,Bob");

  q = dorm_select(Author);
  dorm_filter(q, "name__iregex", dorm_str("^a"));
  dorm_order_by(q, "name");
  expect_names(q, "Ann,ann b");

  /* a pattern the database cannot compile: the caller's error, the same
   * code and SQLSTATE on both backends */
  static const char *const bad_regex[] = {"[", "(unclosed", "a{2,1}"};
  for (size_t i = 0; i < sizeof bad_regex / sizeof bad_regex[0]; i++) {
    q = dorm_select(Author);
    dorm_filter(q, i % 2 ? "name__iregex" : "name__regex",
                dorm_str(bad_regex[i]));
    dorm_result e = t_await(dorm_async_filter(DB, q));
    if (dorm_result_code(&e) != DORM_EINVAL)
      fail_msg("regex '%s': %s %s", bad_regex[i],
               dorm_err_name(dorm_result_code(&e)), dorm_result_message(&e));
    assert_string_equal(dorm_result_sqlstate(&e), "2201B");
    dorm_result_free(&e);
    dorm_query_free(q);
  }

  q = dorm_select(Author);
  dorm_order_by(q, "name");
  dorm_slice(q, 1, 3);
  expect_names(q, "Bob,Cid");

  q = dorm_select(Author);
  dorm_filter(q, "age__range",
              dorm_list((dorm_value[]){dorm_int(20), dorm_int(40)}, 2));
  dorm_order_by(q, "age");
  expect_names(q, "ann b,Ann");

  /* an empty result is rows, not an error */
  q = dorm_select(Author);
  dorm_filter(q, "age__gt", dorm_int(100));
  expect_names(q, "");

  /* first(); NULLs sort first on PostgreSQL and last on SQLite in a
   * descending order, so leave them out */
  q = dorm_select(Author);
  dorm_filter(q, "age__isnull", dorm_bool(0));
  dorm_order_by(q, "-age");
  dorm_result r = t_ok(dorm_async_first(DB, q));
  assert_string_equal(dorm_row_text(r.u.row.row, "name"), "Cid");
  dorm_result_free(&r);
  dorm_query_free(q);
  /* first() of no row is no row, not an error (Django's None) */
  q = dorm_select(Author);
  dorm_filter(q, "name", dorm_str("nobody"));
  r = t_ok(dorm_async_first(DB, q));
  assert_int_equal(r.kind, DORM_RESULT_NONE);
  dorm_result_free(&r);
  dorm_query_free(q);

  /* a query that does not compile fails through the errback */
  q = dorm_select(Author);
  dorm_filter(q, "agee__gte", dorm_int(1));
  char msg[256];
  assert_int_equal(t_err(dorm_async_filter(DB, q), msg, sizeof msg),
                   DORM_EFIELD);
  assert_non_null(strstr(msg, "agee"));
  dorm_query_free(q);
}

static void test_get(void **state) {
  (void)state;
  seed();
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "name", dorm_str("Cid"));
  dorm_result r = t_ok(dorm_async_get(DB, q));
  assert_int_equal(r.kind, DORM_RESULT_ROW);
  assert_int_equal(dorm_row_int(r.u.row.row, "age"), 45);
  dorm_result_free(&r);
  /* the query is as it was: usable again, unsliced */
  r = t_ok(dorm_async_filter(DB, q));
  assert_int_equal(dorm_rows_count(r.u.rows.rows), 1);
  dorm_result_free(&r);
  dorm_query_free(q);

  q = dorm_select(Author);
  dorm_filter(q, "name", dorm_str("Zed"));
  char msg[256];
  assert_int_equal(t_err(dorm_async_get(DB, q), msg, sizeof msg),
                   DORM_ENOTFOUND);
  assert_non_null(strstr(msg, "Author"));
  dorm_query_free(q);

  q = dorm_select(Author);
  dorm_filter(q, "country", dorm_str("GB"));
  assert_int_equal(t_err(dorm_async_get(DB, q), NULL, 0), DORM_EMULTIPLE);
  /* still a plain query */
  r = t_ok(dorm_async_filter(DB, q));
  assert_int_equal(dorm_rows_count(r.u.rows.rows), 2);
  dorm_result_free(&r);
  dorm_query_free(q);
}

static void test_count_exists_aggregate(void **state) {
  (void)state;
  seed();
  dorm_query *q = dorm_select(Author);
  assert_int_equal(t_count(dorm_async_count(DB, q)), 5);
  dorm_filter(q, "age__lt", dorm_int(30));
  assert_int_equal(t_count(dorm_async_count(DB, q)), 2);
  dorm_result r = t_ok(dorm_async_exists(DB, q));
  assert_int_equal(r.kind, DORM_RESULT_VALUE);
  assert_int_equal(r.u.value.v.type, DORM_T_BOOL);
  assert_int_equal(r.u.value.v.u.b, 1);
  dorm_result_free(&r);
  dorm_filter(q, "age__lt", dorm_int(0));
  r = t_ok(dorm_async_exists(DB, q));
  assert_int_equal(r.u.value.v.u.b, 0);
  dorm_result_free(&r);
  dorm_query_free(q);

  q = dorm_select(Author);
  dorm_aggregate(q, "n", DORM_AGG_COUNT, "*");
  dorm_aggregate(q, "total", DORM_AGG_SUM, "age");
  dorm_aggregate(q, "avg_age", DORM_AGG_AVG, "age");
  dorm_aggregate(q, "oldest", DORM_AGG_MAX, "age");
  dorm_aggregate(q, "youngest", DORM_AGG_MIN, "age");
  r = t_ok(dorm_async_aggregate(DB, q));
  assert_int_equal(r.kind, DORM_RESULT_ROW);
  const dorm_row *row = r.u.row.row;
  assert_int_equal(dorm_row_int(row, "n"), 5);
  assert_int_equal(dorm_row_int(row, "total"), 114);
  assert_true(dorm_row_float(row, "avg_age") > 28.49 &&
              dorm_row_float(row, "avg_age") < 28.51);
  assert_int_equal(dorm_row_int(row, "oldest"), 45);
  assert_int_equal(dorm_row_int(row, "youngest"), 17);
  dorm_result_free(&r);
  dorm_query_free(q);

  /* over a slice: the oldest two after the first (NULL sorts first
   * descending, on both backends): Cid 45 and Ann 30 */
  q = dorm_select(Author);
  dorm_order_by(q, "-age");
  dorm_slice(q, 1, 3);
  dorm_aggregate(q, "total", DORM_AGG_SUM, "age");
  dorm_aggregate(q, "n", DORM_AGG_COUNT, "*");
  r = t_ok(dorm_async_aggregate(DB, q));
  assert_int_equal(dorm_row_int(r.u.row.row, "total"), 75);
  assert_int_equal(dorm_row_int(r.u.row.row, "n"), 2);
  dorm_result_free(&r);
  dorm_query_free(q);
  /* over a distinct set: five authors, three countries (GB twice, US
   * twice: the default) */
  q = dorm_select(Author);
  dorm_values(q, "country");
  dorm_distinct(q);
  dorm_aggregate(q, "n", DORM_AGG_COUNT, "*");
  dorm_aggregate(q, "c", DORM_AGG_COUNT, "country");
  r = t_ok(dorm_async_aggregate(DB, q));
  assert_int_equal(dorm_row_int(r.u.row.row, "n"), 3);
  assert_int_equal(dorm_row_int(r.u.row.row, "c"), 3);
  dorm_result_free(&r);
  dorm_query_free(q);

  /* annotate with values(): GROUP BY */
  q = dorm_select(Author);
  dorm_values(q, "country");
  dorm_annotate(q, "n", DORM_AGG_COUNT, "*");
  dorm_order_by(q, "country");
  r = t_ok(dorm_async_filter(DB, q));
  const dorm_rows *rows = r.u.rows.rows;
  assert_int_equal(dorm_rows_count(rows), 3);
  assert_string_equal(dorm_row_text(dorm_rows_row(rows, 1), "country"), "GB");
  assert_int_equal(dorm_row_int(dorm_rows_row(rows, 1), "n"), 2);
  dorm_result_free(&r);
  dorm_query_free(q);
}

static void test_select_related_values(void **state) {
  (void)state;
  int64_t ann = add_author("Ann", 30, NULL);
  int64_t bob = add_author("Bob", 40, NULL);
  add_entry(ann, bob, "first", 4.5);
  add_entry(bob, 0, "second", 3);
  dorm_query *q = dorm_select(Entry);
  dorm_select_related(q, "author");
  dorm_select_related(q, "editor");
  dorm_order_by(q, "headline");
  dorm_result r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  const dorm_rows *rows = r.u.rows.rows;
  assert_int_equal(dorm_rows_count(rows), 2);
  const dorm_row *e0 = dorm_rows_row(rows, 0);
  assert_string_equal(dorm_row_text(e0, "headline"), "first");
  assert_int_equal(dorm_row_int(e0, "author"), ann);
  assert_int_equal(dorm_row_int(e0, "author_id"), ann);
  assert_true(dorm_row_float(e0, "rating") == 4.5);
  const dorm_row *a0 = dorm_row_related(e0, "author");
  assert_non_null(a0);
  assert_string_equal(dorm_row_text(a0, "name"), "Ann");
  assert_int_equal(dorm_row_int(a0, "age"), 30);
  const dorm_row *ed0 = dorm_row_related(e0, "editor");
  assert_non_null(ed0);
  assert_string_equal(dorm_row_text(ed0, "name"), "Bob");
  const dorm_row *e1 = dorm_rows_row(rows, 1);
  assert_null(dorm_row_related(e1, "editor")); /* NULL foreign key */
  assert_string_equal(dorm_row_text(dorm_row_related(e1, "author"), "name"),
                      "Bob");
  assert_null(dorm_row_related(e1, "nope"));
  /* the main row's JSON has the foreign key as its pk, no related columns */
  json_t *j = dorm_row_to_json(e0);
  assert_int_equal(json_integer_value(json_object_get(j, "author")), ann);
  assert_null(json_object_get(j, "author__name"));
  json_decref(j);
  dorm_result_free(&r);

  /* values() across the relation */
  q = dorm_select(Entry);
  dorm_values(q, "headline");
  dorm_values(q, "author__name");
  dorm_order_by(q, "-headline");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  rows = r.u.rows.rows;
  assert_int_equal(dorm_rows_ncolumns(rows), 2);
  assert_string_equal(dorm_row_text(dorm_rows_row(rows, 0), "author__name"),
                      "Bob");
  assert_null(dorm_row_value(dorm_rows_row(rows, 0), "rating"));
  dorm_result_free(&r);

  /* a join in a filter */
  q = dorm_select(Entry);
  dorm_filter(q, "author__name", dorm_str("Ann"));
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  assert_int_equal(dorm_rows_count(r.u.rows.rows), 1);
  dorm_result_free(&r);

  /* cascade delete: removing Bob removes his entry, and NULLs the editor */
  q = dorm_delete(Author);
  dorm_filter(q, "pk", dorm_int(bob));
  dorm_result dr = t_await(dorm_async_delete(DB, q));
  dorm_query_free(q);
  if (!dorm_result_is_error(&dr)) {
    dorm_result_free(&dr);
    q = dorm_select(Entry);
    assert_int_equal(t_count(dorm_async_count(DB, q)), 1);
    dorm_query_free(q);
  } else {
    /* the DDL does not emit ON DELETE: cascades are the ORM's job (as in
     * Django); the database refuses with a foreign key error */
    assert_int_equal(dorm_result_code(&dr), DORM_EINTEGRITY);
    dorm_result_free(&dr);
  }
}

/* Integers beyond 32 bits against 32-bit columns: no error, no match
 * (PostgreSQL gets small ones as int4, the others as int8), and an
 * expression's literal keeps 64-bit arithmetic. */
static void test_integer_ranges(void **state) {
  (void)state;
  seed();
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "age__gte", dorm_int(5000000000));
  assert_int_equal(t_count(dorm_async_count(DB, q)), 0);
  dorm_query_free(q);
  q = dorm_select(Author);
  dorm_filter(q, "pk", dorm_int(-5000000000));
  assert_int_equal(t_err(dorm_async_get(DB, q), NULL, 0), DORM_ENOTFOUND);
  dorm_query_free(q);
  q = dorm_select(Author);
  dorm_filter(q, "age__lt",
              dorm_fval(dorm_op(q, '*', dorm_F(q, "age"),
                                dorm_lit(q, dorm_int(3000000000)))));
  assert_int_equal(t_count(dorm_async_count(DB, q)), 4); /* age > 0 */
  dorm_query_free(q);
  q = dorm_select(Author);
  dorm_filter(q, "age", dorm_int(30));
  assert_int_equal(t_count(dorm_async_count(DB, q)), 1);
  dorm_query_free(q);
}

static void test_raw_execute(void **state) {
  (void)state;
  seed();
  int sq = dorm_db_dialect(DB) == DORM_DIALECT_SQLITE;
  dorm_value p[] = {dorm_int(20), dorm_str("GB")};
  dorm_result r = t_ok(dorm_async_execute(
      DB,
      sq ? "SELECT name, age, 1.5 AS f, NULL AS n FROM author WHERE age > ? "
           "AND country = ? ORDER BY name"
         : "SELECT name, age, 1.5::float8 AS f, NULL AS n FROM author WHERE "
           "age > $1 AND country = $2 ORDER BY name",
      p, 2));
  assert_int_equal(r.kind, DORM_RESULT_ROWS);
  const dorm_rows *rows = r.u.rows.rows;
  assert_int_equal(dorm_rows_count(rows), 2);
  assert_string_equal(dorm_rows_column_name(rows, 1), "age");
  const dorm_row *row = dorm_rows_row(rows, 0);
  assert_string_equal(dorm_row_text(row, "name"), "Ann");
  assert_int_equal(dorm_row_int(row, "age"), 30);
  assert_true(dorm_row_float(row, "f") == 1.5);
  assert_true(dorm_row_is_null(row, "n"));
  dorm_result_free(&r);

  /* the same as a read (a reader, a replica): the seed is visible */
  r = t_ok(dorm_async_execute_read(
      DB,
      sq ? "SELECT count(*) AS n FROM author WHERE age > ?"
         : "SELECT count(*) AS n FROM author WHERE age > $1",
      p, 1));
  assert_int_equal(r.kind, DORM_RESULT_ROWS);
  assert_int_equal(dorm_row_int(dorm_rows_row(r.u.rows.rows, 0), "n"), 3);
  dorm_result_free(&r);

  dorm_value p2[] = {dorm_str("x")};
  assert_int_equal(
      t_count(dorm_async_execute(
          DB, sq ? "UPDATE author SET bio = ?" : "UPDATE author SET bio = $1",
          p2, 1)),
      5);
  /* a syntax error is a database error */
  assert_int_equal(t_err(dorm_async_execute(DB, "SELEC 1", NULL, 0), NULL, 0),
                   DORM_EDB);
  /* two statements in one call: DORM_EINVAL on both backends, and
   * nothing ran (not even the first) */
  char msg[256];
  assert_int_equal(t_err(dorm_async_execute(DB, "SELECT 1; SELECT 2", NULL, 0),
                         msg, sizeof msg),
                   DORM_EINVAL);
  assert_non_null(strstr(msg, "more than one statement"));
  assert_int_equal(
      t_err(dorm_async_execute(DB,
                               "UPDATE author SET bio = 'y'; -- note\n"
                               "DELETE FROM author",
                               NULL, 0),
            NULL, 0),
      DORM_EINVAL);
  dorm_query *cq = dorm_select(Author);
  dorm_filter(cq, "bio", dorm_str("y"));
  assert_int_equal(t_count(dorm_async_count(DB, cq)), 0);
  dorm_query_free(cq);
  /* a ';' in a string, a quoted name or a comment, and trailing ones,
   * are one statement */
  assert_int_equal(
      t_count(dorm_async_execute(DB,
                                 "UPDATE author SET bio = 'a;b' /* ; */ "
                                 "WHERE \"name\" <> 'x;y' ; ;  -- done",
                                 NULL, 0)),
      5);
}

static void test_rows_json(void **state) {
  (void)state;
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str("Ann"));
  dorm_set(q, "joined", dorm_datetime("2024-05-01 10:00:00.250000"));
  dorm_set(q, "score", dorm_decimal("3.10"));
  dorm_set(q, "data", dorm_json_text("{\"k\":[true,null]}"));
  dorm_set(q, "avatar", dorm_bytes("hi!", 3));
  dorm_result r = t_ok(dorm_async_create(DB, q));
  dorm_result_free(&r);
  dorm_query_free(q);
  q = dorm_select(Author);
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  json_t *a = dorm_rows_to_json(r.u.rows.rows);
  assert_non_null(a);
  assert_int_equal(json_array_size(a), 1);
  json_t *o = json_array_get(a, 0);
  assert_string_equal(json_string_value(json_object_get(o, "name")), "Ann");
  assert_string_equal(json_string_value(json_object_get(o, "joined")),
                      "2024-05-01T10:00:00.250000Z");
  assert_string_equal(json_string_value(json_object_get(o, "score")), "3.10");
  assert_true(json_is_true(json_object_get(o, "active")));
  assert_true(json_is_null(json_object_get(o, "age")));
  assert_true(json_is_array(json_object_get(json_object_get(o, "data"), "k")));
  assert_string_equal(json_string_value(json_object_get(o, "avatar")), "aGkh");
  assert_true(json_is_integer(json_object_get(o, "id")));
  json_decref(a);
  dorm_result_free(&r);
}

static void test_ready(void **state) {
  (void)state;
  dorm_result r = t_ok(dorm_db_ready(DB));
  assert_int_equal(r.kind, DORM_RESULT_NONE);
  const char *name = dorm_db_backend_name(DB);
  assert_true(!strcmp(name, "sqlite") || !strcmp(name, "postgresql"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_ready),
      T(test_create_types),
      T(test_filter),
      T(test_get),
      T(test_count_exists_aggregate),
      T(test_select_related_values),
      T(test_integer_ranges),
      T(test_raw_execute),
      T(test_rows_json),
  };
  return dbsuite_main(tests);
}
