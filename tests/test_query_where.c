/* SPDX-License-Identifier: MIT */
/* tests/test_query_where.c — the query compiler, the WHERE clause: the
 * representative query (B1), every lookup and transform, exclude() over
 * nullable columns, nested Q objects and F() expressions, golden on both
 * dialects.
 *
 * Each statement is compared with its golden SQL and parameters and
 * prepared on SQLite, and on PostgreSQL when the run has one
 * (tests/querytest.h).
 */
#include "querytest.h"

static void test_representative(void **state) {
  (void)state;
  dorm_query *q = b1_query();
  expect(q, DORM_DIALECT_POSTGRES,
         A_FROM
         " WHERE \"author\".\"age\" >= $1 AND \"author\".\"name\" LIKE $2 AND "
         "NOT (\"author\".\"country\" IN ($3, $4) OR \"author\".\"age\" IS "
         "NULL) ORDER BY \"author\".\"name\" DESC LIMIT $5 OFFSET $6",
         "18, 'A%', 'US', 'GB', 10, 20");
  expect(q, DORM_DIALECT_SQLITE,
         A_FROM
         " WHERE \"author\".\"age\" >= ? AND \"author\".\"name\" GLOB ? AND "
         "NOT (\"author\".\"country\" IN (?, ?) OR \"author\".\"age\" IS NULL) "
         "ORDER BY \"author\".\"name\" DESC LIMIT ? OFFSET ?",
         "18, 'A*', 'US', 'GB', 10, 20");
  dorm_query_free(q);
}

/* ---- every lookup -------------------------------------------------------- */

typedef struct lookup_case {
  const char *lookup;
  dorm_value value;
  const char *pg_where, *pg_params;
  const char *sq_where, *sq_params;
} lookup_case;

static void run_where_case(const dorm_model *m, const char *from,
                           const lookup_case *lc, int exclude) {
  dorm_query *q = dorm_select(m);
  if (exclude)
    dorm_exclude(q, lc->lookup, lc->value);
  else
    dorm_filter(q, lc->lookup, lc->value);
  char want[2048];
  snprintf(want, sizeof want, "%s WHERE %s", from, lc->pg_where);
  expect(q, DORM_DIALECT_POSTGRES, want, lc->pg_params);
  snprintf(want, sizeof want, "%s WHERE %s", from, lc->sq_where);
  expect(q, DORM_DIALECT_SQLITE, want, lc->sq_params);
  dorm_query_free(q);
}

static void test_lookups(void **state) {
  (void)state;
  static dorm_value in3[3];
  in3[0] = dorm_int(1);
  in3[1] = dorm_int(2);
  in3[2] = dorm_int(3);
  static dorm_value rng[2];
  rng[0] = dorm_int(18);
  rng[1] = dorm_int(65);
  const lookup_case cases[] = {
      {"name", dorm_str("Ann"), "\"author\".\"name\" = $1", "'Ann'",
       "\"author\".\"name\" = ?", "'Ann'"},
      {"name__exact", dorm_str("Ann"), "\"author\".\"name\" = $1", "'Ann'",
       "\"author\".\"name\" = ?", "'Ann'"},
      {"name__iexact", dorm_str("a_n%"),
       "UPPER(\"author\".\"name\") = UPPER($1)", "'a_n%'",
       "\"author\".\"name\" LIKE ? ESCAPE '\\'", "'a\\_n\\%'"},
      {"name__contains", dorm_str("n%_*?[x"), "\"author\".\"name\" LIKE $1",
       "'%n\\%\\_*?[x%'", "\"author\".\"name\" GLOB ?", "'*n%_[*][?][[]x*'"},
      {"name__icontains", dorm_str("an"),
       "UPPER(\"author\".\"name\") LIKE UPPER($1)", "'%an%'",
       "\"author\".\"name\" LIKE ? ESCAPE '\\'", "'%an%'"},
      {"age__in", dorm_list(in3, 3), "\"author\".\"age\" IN ($1, $2, $3)",
       "1, 2, 3", "\"author\".\"age\" IN (?, ?, ?)", "1, 2, 3"},
      {"age__gt", dorm_int(5), "\"author\".\"age\" > $1", "5",
       "\"author\".\"age\" > ?", "5"},
      {"age__gte", dorm_int(5), "\"author\".\"age\" >= $1", "5",
       "\"author\".\"age\" >= ?", "5"},
      {"age__lt", dorm_int(5), "\"author\".\"age\" < $1", "5",
       "\"author\".\"age\" < ?", "5"},
      {"age__lte", dorm_int(5), "\"author\".\"age\" <= $1", "5",
       "\"author\".\"age\" <= ?", "5"},
      {"name__startswith", dorm_str("A\\"), "\"author\".\"name\" LIKE $1",
       "'A\\\\%'", "\"author\".\"name\" GLOB ?", "'A\\*'"},
      {"name__istartswith", dorm_str("a"),
       "UPPER(\"author\".\"name\") LIKE UPPER($1)", "'a%'",
       "\"author\".\"name\" LIKE ? ESCAPE '\\'", "'a%'"},
      {"name__endswith", dorm_str("n"), "\"author\".\"name\" LIKE $1", "'%n'",
       "\"author\".\"name\" GLOB ?", "'*n'"},
      {"name__iendswith", dorm_str("N"),
       "UPPER(\"author\".\"name\") LIKE UPPER($1)", "'%N'",
       "\"author\".\"name\" LIKE ? ESCAPE '\\'", "'%N'"},
      {"age__range", dorm_list(rng, 2), "\"author\".\"age\" BETWEEN $1 AND $2",
       "18, 65", "\"author\".\"age\" BETWEEN ? AND ?", "18, 65"},
      {"age__isnull", dorm_bool(1), "\"author\".\"age\" IS NULL", "",
       "\"author\".\"age\" IS NULL", ""},
      {"age__isnull", dorm_bool(0), "\"author\".\"age\" IS NOT NULL", "",
       "\"author\".\"age\" IS NOT NULL", ""},
      {"age", dorm_null(), "\"author\".\"age\" IS NULL", "",
       "\"author\".\"age\" IS NULL", ""},
      {"name__regex", dorm_str("^A.*n$"), "\"author\".\"name\" ~ $1",
       "'^A.*n$'", "\"author\".\"name\" REGEXP ?", "'^A.*n$'"},
      {"name__iregex", dorm_str("^a"), "\"author\".\"name\" ~* $1", "'^a'",
       "\"author\".\"name\" REGEXP '(?i)' || ?", "'^a'"},
      {"pk", dorm_int(7), "\"author\".\"id\" = $1", "7",
       "\"author\".\"id\" = ?", "7"},
      {"active", dorm_bool(0), "\"author\".\"active\" = $1", "false",
       "\"author\".\"active\" = ?", "false"},
      {"score__gte", dorm_decimal("10.50"), "\"author\".\"score\" >= $1",
       "decimal:'10.50'", "\"author\".\"score\" >= ?", "decimal:'10.50'"},
      {"score__lt", dorm_int(3), "\"author\".\"score\" < $1", "decimal:'3'",
       "\"author\".\"score\" < ?", "decimal:'3'"},
      {"joined__gte", dorm_str("2024-05-01T12:00:00+02:00"),
       "\"author\".\"joined\" >= $1", "datetime:'2024-05-01 10:00:00'",
       "\"author\".\"joined\" >= ?", "datetime:'2024-05-01 10:00:00'"},
      {"born", dorm_date("2000-02-29"), "\"author\".\"born\" = $1",
       "date:'2000-02-29'", "\"author\".\"born\" = ?", "date:'2000-02-29'"},
      {"wake__lt", dorm_str("07:30"), "\"author\".\"wake\" < $1",
       "time:'07:30'", "\"author\".\"wake\" < ?", "time:'07:30'"},
      {"uid", dorm_str("123e4567-e89b-12d3-a456-426614174000"),
       "\"author\".\"uid\" = $1", "uuid:'123e4567-e89b-12d3-a456-426614174000'",
       "\"author\".\"uid\" = ?", "uuid:'123e4567-e89b-12d3-a456-426614174000'"},
      {"uid__startswith", dorm_str("123e"), "\"author\".\"uid\"::text LIKE $1",
       "'123e%'", "\"author\".\"uid\" GLOB ?", "'123e*'"},
      {"data", dorm_json_text("{\"b\": [1.0, \"x\"], \"a\": 1}"),
       "\"author\".\"data\" = $1", "json:'{\"a\":1,\"b\":[1,\"x\"]}'",
       "\"author\".\"data\" = ?", "json:'{\"a\":1,\"b\":[1,\"x\"]}'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_where_case(Author, A_FROM, &cases[i], 0);
}

static void test_transforms(void **state) {
  (void)state;
  const lookup_case cases[] = {
      {"joined__year__gte", dorm_int(2020),
       "EXTRACT(YEAR FROM \"author\".\"joined\")::integer >= $1", "2020",
       "CAST(strftime('%Y', \"author\".\"joined\") AS INTEGER) >= ?", "2020"},
      {"joined__year", dorm_int(2020),
       "EXTRACT(YEAR FROM \"author\".\"joined\")::integer = $1", "2020",
       "CAST(strftime('%Y', \"author\".\"joined\") AS INTEGER) = ?", "2020"},
      {"joined__month", dorm_int(5),
       "EXTRACT(MONTH FROM \"author\".\"joined\")::integer = $1", "5",
       "CAST(strftime('%m', \"author\".\"joined\") AS INTEGER) = ?", "5"},
      {"born__day__lt", dorm_int(15),
       "EXTRACT(DAY FROM \"author\".\"born\")::integer < $1", "15",
       "CAST(strftime('%d', \"author\".\"born\") AS INTEGER) < ?", "15"},
      {"joined__week_day", dorm_int(1),
       "EXTRACT(DOW FROM \"author\".\"joined\")::integer + 1 = $1", "1",
       "CAST(strftime('%w', \"author\".\"joined\") AS INTEGER) + 1 = ?", "1"},
      {"joined__hour__in", dorm_null(), NULL, NULL, NULL, NULL},
      {"wake__minute", dorm_int(30),
       "EXTRACT(MINUTE FROM \"author\".\"wake\")::integer = $1", "30",
       "CAST(strftime('%M', \"author\".\"wake\") AS INTEGER) = ?", "30"},
      {"joined__date", dorm_str("2024-01-02"),
       "(\"author\".\"joined\")::date = $1", "date:'2024-01-02'",
       "date(\"author\".\"joined\") = ?", "date:'2024-01-02'"},
      {"joined__date__gte", dorm_date("2024-01-02"),
       "(\"author\".\"joined\")::date >= $1", "date:'2024-01-02'",
       "date(\"author\".\"joined\") >= ?", "date:'2024-01-02'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (!cases[i].pg_where) continue;
    run_where_case(Author, A_FROM, &cases[i], 0);
  }
  /* hour with a list */
  dorm_value hours[] = {dorm_int(9), dorm_int(17)};
  lookup_case hc = {
      "joined__hour__in",
      dorm_list(hours, 2),
      "EXTRACT(HOUR FROM \"author\".\"joined\")::integer IN ($1, $2)",
      "9, 17",
      "CAST(strftime('%H', \"author\".\"joined\") AS INTEGER) IN (?, ?)",
      "9, 17"};
  run_where_case(Author, A_FROM, &hc, 0);
}

/* exclude on a nullable column keeps the NULL rows, as in Django */
static void test_exclude_nullable(void **state) {
  (void)state;
  lookup_case c1 = {
      "age__gte",
      dorm_int(18),
      "NOT (\"author\".\"age\" >= $1 AND \"author\".\"age\" IS "
      "NOT NULL)",
      "18",
      "NOT (\"author\".\"age\" >= ? AND \"author\".\"age\" IS NOT "
      "NULL)",
      "18"};
  run_where_case(Author, A_FROM, &c1, 1);
  lookup_case c2 = {"name",
                    dorm_str("x"),
                    "NOT (\"author\".\"name\" = $1)",
                    "'x'",
                    "NOT (\"author\".\"name\" = ?)",
                    "'x'"};
  run_where_case(Author, A_FROM, &c2, 1);
  lookup_case c3 = {"age__isnull",
                    dorm_bool(1),
                    "NOT (\"author\".\"age\" IS NULL)",
                    "",
                    "NOT (\"author\".\"age\" IS NULL)",
                    ""};
  run_where_case(Author, A_FROM, &c3, 1);
}

static void test_q_nesting(void **state) {
  (void)state;
  dorm_query *q = dorm_select(Author);
  /* (name = a OR (age > 1 AND NOT country = x)) AND bio = '' */
  dorm_filter_q(
      q, dorm_q_or(
             q, dorm_Q(q, "name", dorm_str("a")),
             dorm_q_and(q, dorm_Q(q, "age__gt", dorm_int(1)),
                        dorm_q_not(q, dorm_Q(q, "country", dorm_str("x"))))));
  dorm_filter(q, "bio", dorm_str(""));
  expect(q, DORM_DIALECT_POSTGRES,
         A_FROM
         " WHERE (\"author\".\"name\" = $1 OR (\"author\".\"age\" > $2 AND NOT "
         "(\"author\".\"country\" = $3))) AND \"author\".\"bio\" = $4",
         "'a', 1, 'x', ''");
  expect(q, DORM_DIALECT_SQLITE,
         A_FROM
         " WHERE (\"author\".\"name\" = ? OR (\"author\".\"age\" > ? AND NOT "
         "(\"author\".\"country\" = ?))) AND \"author\".\"bio\" = ?",
         "'a', 1, 'x', ''");
  dorm_query_free(q);

  /* a single OR at the top needs no parentheses; ~(a | b) with a nullable
   * column keeps NULL rows */
  q = dorm_select(Author);
  dorm_filter_q(q, dorm_q_not(q, dorm_q_or(q, dorm_Q(q, "age", dorm_int(1)),
                                           dorm_Q(q, "name", dorm_str("b")))));
  expect_both(
      q,
      A_FROM
      " WHERE NOT ((\"author\".\"age\" = $1 AND \"author\".\"age\" IS NOT "
      "NULL) OR \"author\".\"name\" = $2)",
      "1, 'b'");
  dorm_query_free(q);
}

static void test_f_expressions(void **state) {
  (void)state;
  dorm_query *q = dorm_select(Author);
  /* age > F(age) * 2 - 1 ; (age + age) >= 10 */
  dorm_filter(
      q, "age__gt",
      dorm_fval(dorm_op(
          q, '-', dorm_op(q, '*', dorm_F(q, "age"), dorm_lit(q, dorm_int(2))),
          dorm_lit(q, dorm_int(1)))));
  dorm_filter_expr(q, dorm_op(q, '+', dorm_F(q, "age"), dorm_F(q, "id")), "gte",
                   dorm_int(10));
  expect(q, DORM_DIALECT_POSTGRES,
         A_FROM
         " WHERE \"author\".\"age\" > ((\"author\".\"age\" * $1) - $2) AND "
         "(\"author\".\"age\" + \"author\".\"id\") >= $3",
         "2, 1, 10");
  expect(q, DORM_DIALECT_SQLITE,
         A_FROM
         " WHERE \"author\".\"age\" > ((\"author\".\"age\" * ?) - ?) AND "
         "(\"author\".\"age\" + \"author\".\"id\") >= ?",
         "2, 1, 10");
  dorm_query_free(q);

  /* F across a relation joins */
  q = dorm_select(Entry);
  dorm_filter(q, "rating__gt", dorm_fval(dorm_F(q, "author__age")));
  expect_both(
      q,
      E_FROM
      " INNER JOIN \"author\" ON (\"entry\".\"author_id\" = "
      "\"author\".\"id\") WHERE \"entry\".\"rating\" > \"author\".\"age\"",
      "");
  dorm_query_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_representative),
      cmocka_unit_test(test_lookups),
      cmocka_unit_test(test_transforms),
      cmocka_unit_test(test_exclude_nullable),
      cmocka_unit_test(test_q_nesting),
      cmocka_unit_test(test_f_expressions),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
