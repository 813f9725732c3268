/* SPDX-License-Identifier: MIT */
/* tests/test_query_errors.c — the query compiler, refusals and resources: every
 * bad input gives its error and no SQL, a field's choices refused in dorm_set,
 * allocation failure at every step of a compile, and dorm_sql_describe and
 * dorm_query_reset.
 *
 * Each statement is compared with its golden SQL and parameters and
 * prepared on SQLite, and on PostgreSQL when the run has one
 * (tests/querytest.h).
 */
#include "querytest.h"

/* ---- bad input ------------------------------------------------------------
 */

static void test_bad_input(void **state) {
  (void)state;
  struct {
    const char *lookup;
    dorm_value v;
    int code;
    const char *frag1, *frag2;
  } cases[] = {
      {"agee__gte", dorm_int(1), DORM_EFIELD, "model 'Author'",
       "unknown field 'agee'"},
      {"age__foo", dorm_int(1), DORM_ELOOKUP, "field 'age'",
       "lookup 'age__foo'"},
      {"age__year", dorm_int(1), DORM_ELOOKUP, "field 'age'",
       "transform 'year'"},
      {"name__hour", dorm_int(1), DORM_ELOOKUP, "field 'name'",
       "does not apply"},
      {"age", dorm_str("12"), DORM_ETYPE, "field 'age'",
       "expected integer, got text"},
      {"age", dorm_json_text("{\"a\":1}"), DORM_ETYPE, "field 'age'",
       "got json"},
      {"age__in", dorm_list(NULL, 0), DORM_EINVAL, "field 'age'", "empty list"},
      {"age__in", dorm_int(3), DORM_ETYPE, "lookup 'age__in'", "takes a list"},
      {"age__range", dorm_list((dorm_value[]){dorm_int(1)}, 1), DORM_EINVAL,
       "lookup 'age__range'", "two values"},
      {"age__gt", dorm_null(), DORM_ETYPE, "lookup 'age__gt'", "None"},
      {"age__contains", dorm_str("1"), DORM_ELOOKUP, "field 'age'",
       "text fields"},
      {"joined", dorm_str("yesterday"), DORM_ETYPE, "field 'joined'",
       "ISO 8601"},
      {"born", dorm_str("2023-02-29"), DORM_ETYPE, "field 'born'", "date"},
      {"uid", dorm_str("not-a-uuid"), DORM_ETYPE, "field 'uid'", "uuid"},
      {"age__isnull", dorm_int(1), DORM_ETYPE, "lookup 'age__isnull'",
       "true or false"},
      {"name\"; DROP TABLE author; --", dorm_int(1), DORM_EFIELD,
       "model 'Author'", "unknown field"},
      {"entries__nope", dorm_int(1), DORM_EFIELD, "model 'Entry' has no field",
       "'nope'"},
      {"age__", dorm_int(1), DORM_EFIELD, "trailing", "age__"},
      {"", dorm_int(1), DORM_EFIELD, "model 'Author'", "empty"},
      {"data__gt", dorm_json_text("1"), DORM_ELOOKUP, "field 'data'",
       "only exact"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dorm_query *q = dorm_select(Author);
    assert_int_equal(dorm_filter(q, cases[i].lookup, cases[i].v),
                     cases[i].code);
    /* sticky: later calls are no-ops returning the first error */
    assert_int_equal(dorm_filter(q, "age", dorm_int(1)), cases[i].code);
    assert_int_equal(dorm_order_by(q, "name"), cases[i].code);
    expect_error(q, DORM_DIALECT_POSTGRES, cases[i].code, cases[i].frag1,
                 cases[i].frag2, NULL);
    expect_error(q, DORM_DIALECT_SQLITE, cases[i].code, cases[i].frag1,
                 cases[i].frag2, NULL);
    dorm_query_free(q);
  }

  /* identifiers in every other position */
  static const char *const evil[] = {"name\"; DROP TABLE author; --",
                                     "-name);select 1--",
                                     "a.b",
                                     "$1",
                                     "?",
                                     "na\tme",
                                     "na\nme",
                                     "x\x01"};
  for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
    const char *bad = evil[i];
    dorm_query *q;
    q = dorm_select(Author);
    assert_true(dorm_order_by(q, bad) < 0);
    expect_error(q, DORM_DIALECT_POSTGRES, q ? dorm_query_error(q, NULL) : 0,
                 "model 'Author'", NULL);
    dorm_query_free(q);
    q = dorm_select(Author);
    assert_true(dorm_values(q, bad) < 0);
    expect_error(q, DORM_DIALECT_SQLITE, dorm_query_error(q, NULL),
                 "model 'Author'", NULL);
    dorm_query_free(q);
    q = dorm_select(Author);
    assert_int_equal(dorm_annotate(q, bad, DORM_AGG_COUNT, "id"), DORM_EIDENT);
    expect_error(q, DORM_DIALECT_POSTGRES, DORM_EIDENT, "alias", NULL);
    dorm_query_free(q);
    q = dorm_select(Author);
    assert_int_equal(dorm_aggregate(q, bad, DORM_AGG_SUM, "age"), DORM_EIDENT);
    dorm_query_free(q);
    q = dorm_select(Author);
    assert_true(dorm_select_related(q, bad) < 0);
    dorm_query_free(q);
    q = dorm_select(Author);
    assert_true(dorm_only(q, bad) < 0);
    dorm_query_free(q);
    q = dorm_insert(Author);
    assert_int_equal(dorm_set(q, bad, dorm_int(1)), DORM_EFIELD);
    expect_error(q, DORM_DIALECT_SQLITE, DORM_EFIELD, "unknown field", NULL);
    dorm_query_free(q);
    q = dorm_update(Author);
    assert_true(dorm_set(q, "age", dorm_fval(dorm_F(q, bad))) < 0);
    dorm_query_free(q);
  }

  /* slices */
  dorm_query *q = dorm_select(Author);
  assert_int_equal(dorm_slice(q, -1, 5), DORM_ERANGE);
  expect_error(q, DORM_DIALECT_POSTGRES, DORM_ERANGE, "model 'Author'",
               "negative", NULL);
  dorm_query_free(q);
  /* a stop below start is no error but nothing, as Django's qs[5:2] */
  q = dorm_select(Author);
  assert_int_equal(dorm_slice(q, 5, 2), 0);
  {
    dorm_sql sql;
    dorm_sql_init(&sql);
    dorm_error e;
    dorm_error_clear(&e);
    assert_int_equal(dorm_compile(q, DORM_DIALECT_SQLITE, &sql, &e), 0);
    /* LIMIT ? OFFSET ?: the limit parameter is 0 */
    assert_non_null(strstr(sql.text, "LIMIT ?"));
    assert_int_equal(sql.params[0].type, DORM_T_INT);
    assert_int_equal(sql.params[0].u.i, 0);
    dorm_sql_free(&sql);
  }
  dorm_query_free(q);
  /* a second slice whose offset would pass INT64_MAX (signed overflow) */
  q = dorm_select(Author);
  assert_int_equal(dorm_slice(q, 5, -1), 0);
  assert_int_equal(dorm_slice(q, INT64_MAX - 1, -1), DORM_ERANGE);
  expect_error(q, DORM_DIALECT_POSTGRES, DORM_ERANGE, "model 'Author'",
               "largest offset", NULL);
  dorm_query_free(q);
  q = dorm_select(Author);
  assert_int_equal(dorm_slice(q, 5, -1), 0);
  assert_int_equal(dorm_slice(q, 0, INT64_MAX - 1), DORM_ERANGE);
  dorm_query_free(q);
  q = dorm_select(Author);
  assert_int_equal(dorm_order_by(q, "?"), DORM_EUNSUPPORTED);
  dorm_query_free(q);

  /* writes */
  q = dorm_insert(Author);
  assert_int_equal(dorm_set(q, "age", dorm_str("x")), DORM_ETYPE);
  dorm_query_free(q);
  q = dorm_insert(Author);
  assert_int_equal(dorm_set(q, "name", dorm_null()), DORM_ETYPE);
  dorm_query_free(q);
  q = dorm_insert(Tag);
  char longname[80];
  memset(longname, 'x', 60);
  longname[60] = '\0';
  assert_int_equal(dorm_set(q, "name", dorm_str(longname)), DORM_ERANGE);
  dorm_query_free(q);
  q = dorm_insert(Entry);
  assert_int_equal(dorm_set(q, "tags", dorm_int(1)), DORM_EFIELD);
  dorm_query_free(q);
  q = dorm_insert(Entry);
  dorm_set(q, "author", dorm_int(1));
  dorm_set(q, "headline", dorm_str("a"));
  dorm_insert_next_row(q);
  dorm_set(q, "headline", dorm_str("b"));
  expect_error(q, DORM_DIALECT_POSTGRES, DORM_EINVAL, "row 1", "author", NULL);
  dorm_query_free(q);
  q = dorm_update(Author);
  expect_error(q, DORM_DIALECT_POSTGRES, DORM_EINVAL, "no fields set", NULL);
  dorm_query_free(q);
  q = dorm_insert(Author);
  assert_int_equal(dorm_filter(q, "age", dorm_int(1)), DORM_ESTATE);
  dorm_query_free(q);
}

/* ---- choices ----------------------------------------------------------------
 *
 * models.md: a field's choices are the values it may hold.  Every write
 * sets its values with dorm_set, so refusing there refuses create, update,
 * bulk_create and the defaults of get_or_create/update_or_create alike;
 * the message names the model, the field, the value and the choices. */

static const char choices_models[] =
    "{\"models\": [{\"name\": \"Task\", \"fields\": ["
    "{\"name\": \"status\", \"type\": \"varchar\", \"max_length\": 10,"
    " \"choices\": [[\"todo\", \"To do\"], [\"done\", \"Done\"]]},"
    "{\"name\": \"prio\", \"type\": \"smallint\", \"null\": true,"
    " \"choices\": [1, 2, 3]},"
    "{\"name\": \"price\", \"type\": \"decimal\", \"max_digits\": 6,"
    " \"decimal_places\": 2, \"null\": true, \"choices\": [\"0.50\", \"10\"]},"
    "{\"name\": \"at\", \"type\": \"time\", \"null\": true,"
    " \"choices\": [\"09:00\", \"17:30:00\"]},"
    "{\"name\": \"ref\", \"type\": \"uuid\", \"null\": true,"
    " \"choices\": [\"12345678-1234-5678-1234-567812345678\"]},"
    "{\"name\": \"when\", \"type\": \"datetime\", \"null\": true,"
    " \"choices\": [\"2024-05-01T10:00:00Z\"]},"
    "{\"name\": \"ok\", \"type\": \"boolean\", \"default\": true,"
    " \"choices\": [true]},"
    "{\"name\": \"note\", \"type\": \"text\", \"default\": \"\"}]}]}";

/* dorm_set on a fresh insert and update of Task: want is 0 or an error
 * code; frags must all be in the message. */
static void expect_set(const dorm_model *task, const char *field, dorm_value v,
                       int want, ...) {
  dorm_query *qs[2] = {dorm_insert(task), dorm_update(task)};
  for (int k = 0; k < 2; k++) {
    dorm_query *q = qs[k];
    int rc = dorm_set(q, field, v);
    dorm_error err;
    dorm_error_clear(&err);
    dorm_query_error(q, &err);
    if (rc != want)
      fail_msg("%s %s: want %s, got %s: %s", k ? "update" : "insert", field,
               dorm_err_name(want), dorm_err_name(rc), err.message);
    va_list ap;
    va_start(ap, want);
    const char *frag;
    while ((frag = va_arg(ap, const char *)) != NULL)
      if (!strstr(err.message, frag))
        fail_msg("message '%s' lacks '%s'", err.message, frag);
    va_end(ap);
    if (want) {
      /* the error is sticky: the query does not compile on either side */
      expect_error(q, DORM_DIALECT_POSTGRES, want, "choices", NULL);
      expect_error(q, DORM_DIALECT_SQLITE, want, "choices", NULL);
    }
    dorm_query_free(q);
  }
}

static void test_choices(void **state) {
  (void)state;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *sc =
      dorm_schema_load_string(choices_models, "models.json", &err);
  if (!sc) fail_msg("schema: %s", err.message);
  const dorm_model *task = dorm_schema_model(sc, "Task");

  expect_set(task, "status", dorm_str("todo"), 0, NULL);
  expect_set(task, "status", dorm_str("bogus"), DORM_EINVAL,
             "model 'Task', field 'status': 'bogus' is not one of the "
             "choices ('todo', 'done')",
             NULL);
  expect_set(task, "status", dorm_str("Todo"), DORM_EINVAL, NULL);
  expect_set(task, "prio", dorm_int(3), 0, NULL);
  expect_set(task, "prio", dorm_null(), 0, NULL); /* null: nullable */
  expect_set(task, "prio", dorm_int(4), DORM_EINVAL,
             "field 'prio': 4 is not one of the choices (1, 2, 3)", NULL);
  /* decimals by value: 0.5 is the choice "0.50", 10.00 is "10" */
  expect_set(task, "price", dorm_decimal("0.5"), 0, NULL);
  expect_set(task, "price", dorm_decimal("10.00"), 0, NULL);
  expect_set(task, "price", dorm_int(10), 0, NULL);
  expect_set(task, "price", dorm_decimal("-0.50"), DORM_EINVAL,
             "field 'price': '-0.50' is not one of the choices ('0.50', "
             "'10')",
             NULL);
  expect_set(task, "price", dorm_decimal("1.0"), DORM_EINVAL, NULL);
  expect_set(task, "price", dorm_decimal("100"), DORM_EINVAL, NULL);
  /* times by value: 09:00 is 09:00:00.000 */
  expect_set(task, "at", dorm_time("09:00:00.000"), 0, NULL);
  expect_set(task, "at", dorm_time("17:30"), 0, NULL);
  expect_set(task, "at", dorm_time("17:31"), DORM_EINVAL, "field 'at'", NULL);
  /* uuids and datetimes in their canonical spelling */
  expect_set(task, "ref", dorm_uuid("12345678123456781234567812345678"), 0,
             NULL);
  expect_set(task, "ref", dorm_uuid("12345678-1234-5678-1234-567812345679"),
             DORM_EINVAL, "field 'ref'", NULL);
  expect_set(task, "when", dorm_datetime("2024-05-01 12:00:00+02:00"), 0, NULL);
  expect_set(task, "when", dorm_datetime("2024-05-01T10:00:01Z"), DORM_EINVAL,
             "field 'when'", NULL);
  expect_set(task, "ok", dorm_bool(1), 0, NULL);
  expect_set(task, "ok", dorm_bool(0), DORM_EINVAL,
             "field 'ok': false is not one of the choices (true)", NULL);
  expect_set(task, "note", dorm_str("anything"), 0, NULL);

  /* an F expression is not a value to check */
  dorm_query *q = dorm_update(task);
  assert_int_equal(dorm_set(q, "prio", dorm_fval(dorm_F(q, "prio"))), 0);
  dorm_query_free(q);

  /* a bad value in the second row of a bulk insert refuses the insert */
  q = dorm_insert(task);
  assert_int_equal(dorm_set(q, "status", dorm_str("done")), 0);
  assert_int_equal(dorm_insert_next_row(q), 0);
  assert_int_equal(dorm_set(q, "status", dorm_str("later")), DORM_EINVAL);
  expect_error(q, DORM_DIALECT_SQLITE, DORM_EINVAL, "'later'", NULL);
  dorm_query_free(q);
  dorm_schema_free(sc);
}
/* ---- allocation failure -----------------------------------------------------
 */

static dorm_query *join_query(void) {
  dorm_query *q = dorm_select(Entry);
  dorm_filter(q, "author__name__icontains", dorm_str("ann"));
  dorm_filter(q, "tags__name__in",
              dorm_list((dorm_value[]){dorm_str("a"), dorm_str("b")}, 2));
  dorm_select_related(q, "editor");
  dorm_annotate(q, "n", DORM_AGG_COUNT, "tags");
  dorm_order_by(q, "-n");
  return q;
}

static void test_alloc_failure(void **state) {
  (void)state;
  dorm_query *(*builders[])(void) = {b1_query, join_query};
  for (size_t b = 0; b < 2; b++) {
    int succeeded = 0;
    for (long n = 1; n < 1000 && !succeeded; n++) {
      dorm_test_fail_alloc_at(n);
      dorm_query *q = builders[b]();
      dorm_sql out;
      dorm_sql_init(&out);
      dorm_error err;
      dorm_error_clear(&err);
      int rc =
          q ? dorm_compile(q, DORM_DIALECT_POSTGRES, &out, &err) : DORM_ENOMEM;
      dorm_test_alloc_reset();
      if (rc == 0) {
        succeeded = 1;
        assert_true(out.len > 0);
      } else {
        assert_int_equal(rc, DORM_ENOMEM);
        if (q) assert_int_equal(err.code, DORM_ENOMEM);
        assert_int_equal(out.len, 0);
      }
      dorm_sql_free(&out);
      dorm_query_free(q);
    }
    assert_true(succeeded);
  }
}

static void test_describe_and_reset(void **state) {
  (void)state;
  dorm_query *q = b1_query();
  dorm_sql out;
  dorm_sql_init(&out);
  assert_int_equal(dorm_compile(q, DORM_DIALECT_POSTGRES, &out, NULL), 0);
  char *d = dorm_sql_describe(&out, DORM_DIALECT_POSTGRES);
  assert_non_null(strstr(d, "$2 = 'A%' (text)"));
  assert_non_null(strstr(d, "$1 = 18 (integer)"));
  free(d);
  /* reset keeps memory and starts over */
  dorm_query_reset(q, DORM_QUERY_SELECT, Tag);
  dorm_filter(q, "name", dorm_str("t"));
  assert_int_equal(dorm_compile(q, DORM_DIALECT_SQLITE, &out, NULL), 0);
  assert_string_equal(out.text,
                      "SELECT \"tag\".\"id\", \"tag\".\"name\" FROM \"tag\" "
                      "WHERE \"tag\".\"name\" = ?");
  dorm_sql_free(&out);
  dorm_query_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_choices),
      cmocka_unit_test(test_alloc_failure),
      cmocka_unit_test(test_describe_and_reset),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
