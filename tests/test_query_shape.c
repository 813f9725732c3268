/* SPDX-License-Identifier: MIT */
/* tests/test_query_shape.c — the query compiler, the shape of a result:
 * order_by, slices, distinct, values() and only(), count() and exists(),
 * annotate() and aggregate(), select_for_update.
 *
 * Each statement is compared with its golden SQL and parameters and
 * prepared on SQLite, and on PostgreSQL when the run has one
 * (tests/querytest.h).
 */
#include "querytest.h"

/* ---- shaping --------------------------------------------------------------
 */

static void test_order_slice_distinct(void **state) {
  (void)state;
  dorm_query *q = dorm_select(Entry);
  dorm_order_by(q, "author__name");
  dorm_order_by(q, "-rating");
  dorm_distinct(q);
  dorm_slice(q, 5, -1);
  /* with DISTINCT, ordering columns join the select list (PostgreSQL
   * requires it) */
  expect(q, DORM_DIALECT_POSTGRES,
         "SELECT DISTINCT " E_COLS
         ", \"author\".\"name\" FROM \"entry\" INNER JOIN \"author\" ON "
         "(\"entry\".\"author_id\" = "
         "\"author\".\"id\") ORDER BY \"author\".\"name\" ASC, "
         "\"entry\".\"rating\" DESC OFFSET $1",
         "5");
  expect(q, DORM_DIALECT_SQLITE,
         "SELECT DISTINCT " E_COLS
         ", \"author\".\"name\" FROM \"entry\" INNER JOIN \"author\" ON "
         "(\"entry\".\"author_id\" = "
         "\"author\".\"id\") ORDER BY \"author\".\"name\" ASC, "
         "\"entry\".\"rating\" DESC LIMIT -1 OFFSET ?",
         "5");
  dorm_query_free(q);

  /* ordering across a nullable relation is LEFT; slices compose */
  q = dorm_select(Entry);
  dorm_order_by(q, "editor__name");
  dorm_slice(q, 0, 10);
  dorm_slice(q, 2, 5);
  expect(q, DORM_DIALECT_POSTGRES,
         E_FROM
         " LEFT OUTER JOIN \"author\" ON (\"entry\".\"editor_id\" = "
         "\"author\".\"id\") ORDER BY \"author\".\"name\" ASC LIMIT $1 "
         "OFFSET $2",
         "3, 2");
  /* SQLite is told PostgreSQL's NULL order (the editor may be missing) */
  expect(q, DORM_DIALECT_SQLITE,
         E_FROM
         " LEFT OUTER JOIN \"author\" ON (\"entry\".\"editor_id\" = "
         "\"author\".\"id\") ORDER BY \"author\".\"name\" ASC NULLS LAST "
         "LIMIT ? OFFSET ?",
         "3, 2");
  dorm_query_free(q);
}

static void test_values_only(void **state) {
  (void)state;
  dorm_query *q = dorm_select(Entry);
  dorm_values(q, "headline");
  dorm_values(q, "author__name");
  dorm_values(q, "author");
  expect_both(q,
              "SELECT \"entry\".\"headline\", \"author\".\"name\", "
              "\"entry\".\"author_id\" FROM \"entry\" INNER JOIN \"author\" ON "
              "(\"entry\".\"author_id\" = \"author\".\"id\")",
              "");
  dorm_sql out;
  dorm_sql_init(&out);
  assert_int_equal(dorm_compile(q, DORM_DIALECT_POSTGRES, &out, NULL), 0);
  assert_int_equal(out.ncolumns, 3);
  assert_string_equal(out.columns[1].name, "author__name");
  assert_int_equal(out.columns[1].type, DORM_T_TEXT);
  dorm_sql_free(&out);
  dorm_query_free(q);

  q = dorm_select(Author);
  dorm_only(q, "name");
  dorm_only(q, "age");
  expect_both_sq(
      q,
      "SELECT \"author\".\"id\", \"author\".\"name\", \"author\".\"age\" "
      "FROM \"author\"",
      "");
  dorm_query_free(q);
}

static void test_count_exists(void **state) {
  (void)state;
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "age__gt", dorm_int(3));
  dorm_order_by(q, "name"); /* ignored by count */
  dorm_count(q);
  expect(q, DORM_DIALECT_POSTGRES,
         "SELECT COUNT(*) AS \"count\" FROM \"author\" WHERE "
         "\"author\".\"age\" > $1",
         "3");
  expect(q, DORM_DIALECT_SQLITE,
         "SELECT COUNT(*) AS \"count\" FROM \"author\" WHERE "
         "\"author\".\"age\" > ?",
         "3");
  dorm_query_free(q);

  q = dorm_select(Author);
  dorm_slice(q, 0, 5);
  dorm_count(q);
  expect_both(q, "SELECT COUNT(*) FROM (" A_FROM " LIMIT $1) \"subquery\"",
              "5");
  dorm_query_free(q);

  q = dorm_select(Author);
  dorm_filter(q, "name", dorm_str("x"));
  dorm_exists(q);
  expect_both_sq(
      q,
      "SELECT 1 AS \"a\" FROM \"author\" WHERE \"author\".\"name\" = ? "
      "LIMIT 1",
      "'x'");
  dorm_query_free(q);
}

static void test_annotate_aggregate(void **state) {
  (void)state;
  /* Author.annotate(n=Count("entries")).filter(n__gt=1).order_by("-n") */
  dorm_query *q = dorm_select(Author);
  dorm_only(q, "name");
  dorm_annotate(q, "n", DORM_AGG_COUNT, "entries");
  dorm_filter(q, "n__gt", dorm_int(1));
  dorm_order_by(q, "-n");
  expect_both(
      q,
      "SELECT \"author\".\"id\", \"author\".\"name\", "
      "COUNT(\"entry\".\"id\") AS \"n\" FROM \"author\" LEFT OUTER JOIN "
      "\"entry\" ON (\"author\".\"id\" = \"entry\".\"author_id\") GROUP BY "
      "\"author\".\"id\", \"author\".\"name\" HAVING "
      "COUNT(\"entry\".\"id\") > $1 ORDER BY \"n\" DESC",
      "1");
  dorm_query_free(q);

  /* values("country").annotate(n=Count("*"), avg=Avg("age")) */
  q = dorm_select(Author);
  dorm_values(q, "country");
  dorm_annotate(q, "n", DORM_AGG_COUNT, "*");
  dorm_annotate(q, "avg_age", DORM_AGG_AVG, "age");
  dorm_order_by(q, "country");
  expect_both_sq(
      q,
      "SELECT \"author\".\"country\", COUNT(*) AS \"n\", "
      "AVG(\"author\".\"age\") AS \"avg_age\" FROM \"author\" GROUP BY "
      "\"author\".\"country\" ORDER BY \"author\".\"country\" ASC",
      "");
  dorm_query_free(q);

  /* aggregate(total=Sum("age"), lo=Min("age"), hi=Max("age"),
   *           c=Count("country", distinct=True)) */
  q = dorm_select(Author);
  dorm_filter(q, "active", dorm_bool(1));
  dorm_aggregate(q, "total", DORM_AGG_SUM, "age");
  dorm_aggregate(q, "lo", DORM_AGG_MIN, "age");
  dorm_aggregate(q, "hi", DORM_AGG_MAX, "age");
  dorm_aggregate(q, "c", DORM_AGG_COUNT | DORM_AGG_DISTINCT, "country");
  expect_both(
      q,
      "SELECT SUM(\"author\".\"age\") AS \"total\", MIN(\"author\".\"age\") "
      "AS \"lo\", MAX(\"author\".\"age\") AS \"hi\", COUNT(DISTINCT "
      "\"author\".\"country\") AS \"c\" FROM \"author\" WHERE "
      "\"author\".\"active\" = $1",
      "true");
  dorm_query_free(q);

  /* order_by("-age")[1:3].aggregate(total=Sum("age"), n=Count("*")): the
   * slice is a subquery, the aggregates run over its columns (Django's
   * get_aggregation) */
  q = dorm_select(Author);
  dorm_order_by(q, "-age");
  dorm_slice(q, 1, 3);
  dorm_aggregate(q, "total", DORM_AGG_SUM, "age");
  dorm_aggregate(q, "n", DORM_AGG_COUNT, "*");
  expect(q, DORM_DIALECT_POSTGRES,
         "SELECT SUM(\"subquery\".\"__col0\") AS \"total\", COUNT(*) AS "
         "\"n\" FROM (SELECT " A_COLS_PG
         ", \"author\".\"age\" AS "
         "\"__col0\" FROM \"author\" ORDER BY \"author\".\"age\" DESC "
         "LIMIT $1 OFFSET $2) \"subquery\"",
         "2, 1");
  expect(q, DORM_DIALECT_SQLITE,
         "SELECT SUM(\"subquery\".\"__col0\") AS \"total\", COUNT(*) AS "
         "\"n\" FROM (SELECT " A_COLS_PG
         ", \"author\".\"age\" AS "
         "\"__col0\" FROM \"author\" ORDER BY \"author\".\"age\" DESC "
         "NULLS FIRST LIMIT ? OFFSET ?) \"subquery\"",
         "2, 1");
  dorm_query_free(q);

  /* values("country").distinct().aggregate(n=Count("*"),
   * c=Count("country")); an ordering without a slice is dropped inside */
  q = dorm_select(Author);
  dorm_values(q, "country");
  dorm_distinct(q);
  dorm_order_by(q, "name");
  dorm_aggregate(q, "n", DORM_AGG_COUNT, "*");
  dorm_aggregate(q, "c", DORM_AGG_COUNT, "country");
  expect_both(q,
              "SELECT COUNT(*) AS \"n\", COUNT(\"subquery\".\"__col1\") AS "
              "\"c\" FROM (SELECT DISTINCT \"author\".\"country\", "
              "\"author\".\"country\" AS \"__col1\" FROM \"author\") "
              "\"subquery\"",
              "");
  dorm_query_free(q);

  /* across a relation: authors with an entry rated 4+, each once */
  q = dorm_select(Author);
  dorm_filter(q, "entries__rating__gte", dorm_int(4));
  dorm_distinct(q);
  dorm_aggregate(q, "avg_age", DORM_AGG_AVG, "age");
  expect_both(q,
              "SELECT AVG(\"subquery\".\"__col0\") AS \"avg_age\" FROM "
              "(SELECT DISTINCT " A_COLS_PG
              ", \"author\".\"age\" AS "
              "\"__col0\" FROM \"author\" INNER JOIN \"entry\" ON "
              "(\"author\".\"id\" = \"entry\".\"author_id\") WHERE "
              "\"entry\".\"rating\" >= $1) \"subquery\"",
              "4");
  dorm_query_free(q);
}

static void test_select_for_update(void **state) {
  (void)state;
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "pk", dorm_int(1));
  dorm_select_for_update(q, DORM_LOCK_SKIP_LOCKED);
  expect(q, DORM_DIALECT_POSTGRES,
         A_FROM " WHERE \"author\".\"id\" = $1 FOR UPDATE SKIP LOCKED", "1");
  expect_error(q, DORM_DIALECT_SQLITE, DORM_EUNSUPPORTED, "select_for_update",
               "SQLite", NULL);
  /* a dorm_sql compiled again for a query without the lock drops the flag */
  dorm_sql out;
  dorm_sql_init(&out);
  assert_int_equal(dorm_compile(q, DORM_DIALECT_POSTGRES, &out, NULL), 0);
  assert_int_equal(out.row_lock, 1);
  dorm_query *plain = dorm_select(Author);
  assert_int_equal(dorm_compile(plain, DORM_DIALECT_POSTGRES, &out, NULL), 0);
  assert_int_equal(out.row_lock, 0);
  dorm_query_free(plain);
  dorm_sql_free(&out);
  dorm_query_free(q);

  q = dorm_select(Entry);
  dorm_select_related(q, "editor");
  dorm_only(q, "headline");
  dorm_select_for_update(q, DORM_LOCK_NOWAIT);
  expect(q, DORM_DIALECT_POSTGRES,
         "SELECT \"entry\".\"id\", \"entry\".\"headline\", \"author\".\"id\", "
         "\"author\".\"name\", \"author\".\"age\", \"author\".\"country\", "
         "\"author\".\"email\", \"author\".\"joined\", \"author\".\"bio\", "
         "\"author\".\"score\", \"author\".\"active\", \"author\".\"uid\", "
         "\"author\".\"data\", \"author\".\"wake\", \"author\".\"born\", "
         "\"author\".\"avatar\" FROM \"entry\" LEFT OUTER JOIN \"author\" ON "
         "(\"entry\".\"editor_id\" = \"author\".\"id\") FOR UPDATE OF "
         "\"entry\" NOWAIT",
         "");
  expect_error(q, DORM_DIALECT_SQLITE, DORM_EUNSUPPORTED, "select_for_update",
               NULL);
  dorm_query_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_slice_distinct),
      cmocka_unit_test(test_values_only),
      cmocka_unit_test(test_count_exists),
      cmocka_unit_test(test_annotate_aggregate),
      cmocka_unit_test(test_select_for_update),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
