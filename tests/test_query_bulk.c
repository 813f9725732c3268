/* SPDX-License-Identifier: MIT */
/* tests/test_query_bulk.c — the compiler's bulk statements, no server
 * needed: the COPY ... FROM STDIN header of a bulk insert (columns as the
 * INSERT's, the refusals that send the facade back to INSERT) and Django's
 * bulk_update (a CASE per field, chunks by object range, NULL columns,
 * the errors that name the object and field).
 *
 * Golden SQL and parameters; the UPDATEs are prepared on SQLite, and on
 * PostgreSQL when the run has one (tests/querytest.h).
 */
#include "querytest.h"

static void test_copy(void **state) {
  (void)state;
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str("Ann"));
  dorm_set(q, "age", dorm_int(30));
  dorm_insert_next_row(q);
  dorm_set(q, "name", dorm_str("Bob"));
  dorm_set(q, "age", dorm_int(40));
  dorm_sql out;
  dorm_sql_init(&out);
  dorm_error err;
  dorm_error_clear(&err);
  size_t width = 0;
  assert_int_equal(
      dorm_compile_copy(q, DORM_DIALECT_POSTGRES, &out, &width, &err), 0);
  /* the INSERT's columns: what the first row sets, then the defaults */
  assert_string_equal(out.text,
                      "COPY \"author\" (\"name\", \"age\", \"country\", "
                      "\"bio\", \"active\") FROM STDIN");
  assert_int_equal(width, 5);
  /* the data: every row's values as the INSERT sends them, width per row */
  char got[256];
  render_params(&out, got, sizeof got);
  assert_string_equal(got,
                      "'Ann', 30, 'US', '', true, 'Bob', 40, 'US', '', true");
  /* the rows must set the same fields, as for the INSERT */
  dorm_insert_next_row(q);
  dorm_set(q, "name", dorm_str("Cy"));
  dorm_error_clear(&err);
  assert_int_equal(
      dorm_compile_copy(q, DORM_DIALECT_POSTGRES, &out, &width, &err),
      DORM_EINVAL);
  assert_non_null(strstr(err.message, "row 2: field 'age' is not set"));

  /* SQLite has no COPY */
  dorm_error_clear(&err);
  assert_int_equal(
      dorm_compile_copy(q, DORM_DIALECT_SQLITE, &out, &width, &err),
      DORM_EUNSUPPORTED);
  dorm_query_free(q);

  /* a conflict clause, or a row with nothing set: no COPY form */
  q = dorm_insert(Tag);
  dorm_set(q, "name", dorm_str("c"));
  dorm_on_conflict_do_nothing(q);
  dorm_error_clear(&err);
  assert_int_equal(
      dorm_compile_copy(q, DORM_DIALECT_POSTGRES, &out, &width, &err),
      DORM_EUNSUPPORTED);
  assert_non_null(strstr(err.message, "conflict"));
  dorm_query_free(q);
  q = dorm_insert(Tag);
  dorm_error_clear(&err);
  assert_int_equal(
      dorm_compile_copy(q, DORM_DIALECT_POSTGRES, &out, &width, &err),
      DORM_EUNSUPPORTED);
  dorm_query_free(q);
  /* not an insert */
  q = dorm_select(Tag);
  dorm_error_clear(&err);
  assert_int_equal(
      dorm_compile_copy(q, DORM_DIALECT_POSTGRES, &out, &width, &err),
      DORM_EINVAL);
  dorm_query_free(q);
  dorm_sql_free(&out);
}

/* Compile a bulk_update of fields over objects [first, first + n). */
static void expect_bu(dorm_query *rows, const char *const *fields, size_t nf,
                      size_t first, size_t n, dorm_dialect d, const char *sql,
                      const char *params) {
  dorm_sql out;
  dorm_sql_init(&out);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_compile_opts o;
  memset(&o, 0, sizeof o);
  o.row_first = first;
  o.row_count = n;
  int rc = dorm_compile_bulk_update(rows, fields, nf, d, &o, &out, &err);
  if (rc) fail_msg("compile failed: %s", err.message);
  if (strcmp(out.text, sql))
    fprintf(stderr, "got:  %s\nwant: %s\n", out.text, sql);
  assert_string_equal(out.text, sql);
  assert_int_equal(out.kind, DORM_QUERY_UPDATE);
  assert_false(out.returns_rows);
  char got[1024];
  render_params(&out, got, sizeof got);
  if (strcmp(got, params)) fprintf(stderr, "params: %s\n", got);
  assert_string_equal(got, params);
  qt_accepted(d, &out);
  dorm_sql_free(&out);
}

static void expect_bu_error(dorm_query *rows, const char *const *fields,
                            size_t nf, int code, const char *part) {
  dorm_sql out;
  dorm_sql_init(&out);
  dorm_error err;
  dorm_error_clear(&err);
  int rc = dorm_compile_bulk_update(rows, fields, nf, DORM_DIALECT_POSTGRES,
                                    NULL, &out, &err);
  if (rc != code || !strstr(err.message, part))
    fail_msg("want %s (%s), got %s: %s", dorm_err_name(code), part,
             dorm_err_name(rc), err.message);
  assert_int_equal(out.len, 0);
  dorm_sql_free(&out);
}

static void test_bulk_update(void **state) {
  (void)state;
  dorm_query *q = dorm_insert(Author);
  const char *names[] = {"Ann", "Bob", "Cy"};
  for (int i = 0; i < 3; i++) {
    if (i) dorm_insert_next_row(q);
    dorm_set(q, "id", dorm_int(i + 1));
    dorm_set(q, "name", dorm_str(names[i]));
    dorm_set(q, "email", i == 1 ? dorm_null() : dorm_str("e@x"));
  }
  const char *f2[] = {"name", "email"};
  expect_bu(
      q, f2, 2, 0, 0, DORM_DIALECT_POSTGRES,
      "UPDATE \"author\" SET \"name\" = CASE WHEN \"id\" = $1 THEN $2 "
      "WHEN \"id\" = $3 THEN $4 WHEN \"id\" = $5 THEN $6 END, \"email\" = "
      "CASE WHEN \"id\" = $7 THEN $8 WHEN \"id\" = $9 THEN $10 WHEN "
      "\"id\" = $11 THEN $12 END WHERE \"id\" IN ($13, $14, $15)",
      "1, 'Ann', 2, 'Bob', 3, 'Cy', 1, 'e@x', 2, NULL, 3, 'e@x', 1, 2, 3");
  /* a chunk: objects 1..2 */
  expect_bu(q, f2, 1, 1, 2, DORM_DIALECT_SQLITE,
            "UPDATE \"author\" SET \"name\" = CASE WHEN \"id\" = ? THEN ? "
            "WHEN \"id\" = ? THEN ? END WHERE \"id\" IN (?, ?)",
            "2, 'Bob', 3, 'Cy', 2, 3");
  /* every object of the chunk sets email to NULL: a plain NULL fits any
   * column type */
  const char *fe[] = {"email", "name"};
  expect_bu(q, fe, 2, 1, 1, DORM_DIALECT_POSTGRES,
            "UPDATE \"author\" SET \"email\" = NULL, \"name\" = CASE WHEN "
            "\"id\" = $1 THEN $2 END WHERE \"id\" IN ($3)",
            "2, 'Bob', 2");

  /* refusals, each naming what was wrong */
  const char *bad[] = {"nope"};
  expect_bu_error(q, bad, 1, DORM_EFIELD, "no field 'nope'");
  const char *pk[] = {"pk"};
  expect_bu_error(q, pk, 1, DORM_EINVAL, "primary key");
  const char *twice[] = {"name", "name"};
  expect_bu_error(q, twice, 2, DORM_EINVAL, "twice");
  expect_bu_error(q, NULL, 0, DORM_EINVAL, "needs the fields");
  const char *age[] = {"age"};
  expect_bu_error(q, age, 1, DORM_EINVAL, "object 0: field 'age' is not set");
  dorm_query_free(q);

  /* an object without its key */
  q = dorm_insert(Author);
  dorm_set(q, "id", dorm_int(1));
  dorm_set(q, "name", dorm_str("a"));
  dorm_insert_next_row(q);
  dorm_set(q, "name", dorm_str("b"));
  const char *f1[] = {"name"};
  expect_bu_error(q, f1, 1, DORM_EINVAL,
                  "object 1: the primary key 'id' is not set");
  dorm_query_free(q);
  /* not a list of objects */
  q = dorm_select(Author);
  expect_bu_error(q, f1, 1, DORM_EINVAL, "rows of an insert");
  dorm_query_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_copy),
      cmocka_unit_test(test_bulk_update),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
