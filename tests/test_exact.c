/* SPDX-License-Identifier: MIT */
/* tests/test_exact.c — exact data on both backends: decimals, JSON,
 * upserts that do nothing, and errors with one cause and one code.
 *
 * SQLite keeps decimals as doubles and JSON as text; PostgreSQL keeps
 * numeric and jsonb.  Each test runs the same calls on a SQLite file and on
 * the suite's PostgreSQL (DORM_TEST_PG; skipped when unset) and asserts
 * the same rows, values and error codes, or, where SQLite cannot hold a
 * value exactly, that it refuses it by name before anything is written
 * (docs/sqlite.md "Decimals").
 */
#include <sys/wait.h>
#include <unistd.h>

#include "dbtest.h"
#include "support/support.h"

static const char *const MODELS =
    "{\"models\": [{\"name\": \"Novel\", \"fields\": ["
    "{\"name\": \"title\", \"type\": \"varchar\", \"max_length\": 100},"
    "{\"name\": \"isbn\", \"type\": \"varchar\", \"max_length\": 20,"
    " \"unique\": true, \"null\": true},"
    "{\"name\": \"price\", \"type\": \"decimal\", \"max_digits\": 8,"
    " \"decimal_places\": 2, \"null\": true},"
    "{\"name\": \"big\", \"type\": \"decimal\", \"max_digits\": 20,"
    " \"decimal_places\": 2, \"null\": true},"
    "{\"name\": \"pages\", \"type\": \"integer\", \"default\": 0},"
    "{\"name\": \"ratio\", \"type\": \"integer\", \"null\": true},"
    "{\"name\": \"rating\", \"type\": \"float\", \"null\": true},"
    "{\"name\": \"data\", \"type\": \"json\", \"null\": true}"
    "]}]}";

static char T_dir[256];

static int sqlite_url(char *buf, size_t cap) {
  snprintf(T_dir, sizeof T_dir, "/tmp/dorm-test-exact.XXXXXX");
  if (!mkdtemp(T_dir)) return -1;
  snprintf(buf, cap, "sqlite:///%s/t.db", T_dir);
  return 0;
}

/* The PostgreSQL backend: a fresh schema per test on the suite's server. */
static int pg_url(char *buf, size_t cap) {
  return dorm_test_pg_fresh_schema("x", buf, cap);
}

typedef struct backend_case {
  const char *name;
  int (*url)(char *buf, size_t cap);
  int sqlite;
} backend_case;

static const backend_case backends[] = {
    {"sqlite (file)", sqlite_url, 1},
    {"postgresql", pg_url, 0},
};

static const backend_case *B;
static char T_url[1024]; /* the database the test runs on */
static char T_bin[1024]; /* build/dorm beside this test program */
static dorm_schema *S;
static const dorm_model *Novel;
static dorm_db *DB;

static int setup(void **state) {
  (void)state;
  char url[512];
  t_loop_open();
  if (B->url(url, sizeof url)) return -1;
  snprintf(T_url, sizeof T_url, "%s", url);
  DB = t_open_ready(url, NULL);
  static const char *const models[] = {"Novel", NULL};
  t_create_tables(DB, S, models);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  t_loop_close(DB);
  DB = NULL;
  if (T_dir[0]) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", T_dir);
    T_dir[0] = '\0';
  }
  return 0;
}

/* Create a novel with field = v; returns the result's code (0: created). */
static int create(const char *title, const char *field, dorm_value v, char *msg,
                  size_t cap) {
  dorm_query *q = dorm_insert(Novel);
  dorm_set(q, "title", dorm_str(title));
  dorm_set(q, field, v);
  int rc;
  dorm_error e;
  dorm_error_clear(&e);
  if (dorm_query_error(q, &e)) {
    rc = e.code;
    if (msg) snprintf(msg, cap, "%s", e.message);
  } else {
    dorm_result r = t_await(dorm_async_create(DB, q));
    rc = dorm_result_code(&r);
    if (msg) snprintf(msg, cap, "%s", rc ? dorm_result_message(&r) : "");
    dorm_result_free(&r);
  }
  dorm_query_free(q);
  return rc;
}

static int64_t count_all(void) {
  dorm_query *q = dorm_select(Novel);
  int64_t n = t_count(dorm_async_count(DB, q));
  dorm_query_free(q);
  return n;
}

/* The field of the novel with this title, as text ("" when NULL). */
static void field_of(const char *title, const char *field, char *out,
                     size_t cap) {
  dorm_query *q = dorm_select(Novel);
  dorm_filter(q, "title", dorm_str(title));
  dorm_result r = t_ok(dorm_async_get(DB, q));
  const char *t = dorm_row_text(r.u.row.row, field);
  snprintf(out, cap, "%s", t ? t : "");
  dorm_result_free(&r);
  dorm_query_free(q);
}

/* Titles matching q (freed), joined by ','. */
static void expect_titles(dorm_query *q, const char *want) {
  dorm_order_by(q, "title");
  dorm_result r = t_ok(dorm_async_filter(DB, q));
  char got[512] = "";
  for (size_t i = 0; i < dorm_rows_count(r.u.rows.rows); i++) {
    size_t n = strlen(got);
    snprintf(got + n, sizeof got - n, "%s%s", i ? "," : "",
             dorm_row_text(dorm_rows_row(r.u.rows.rows, i), "title"));
  }
  assert_string_equal(got, want);
  dorm_result_free(&r);
  dorm_query_free(q);
}

/* ---- decimals ----------------------------------------------------------- */

static void test_decimal_stored_exactly_or_refused(void **state) {
  (void)state;
  char msg[512], got[64];
  /* 20 significant digits: PostgreSQL keeps them; SQLite would give back
   * 123456789012345680.00, so it refuses, naming model and field, and
   * writes nothing */
  int rc = create("huge", "big", dorm_decimal("123456789012345678.12"), msg,
                  sizeof msg);
  if (B->sqlite) {
    assert_int_equal(rc, DORM_ERANGE);
    assert_non_null(strstr(msg, "model 'Novel', field 'big'"));
    assert_non_null(strstr(msg, "15 digits"));
    assert_int_equal(count_all(), 0);
  } else {
    assert_int_equal(rc, 0);
    field_of("huge", "big", got, sizeof got);
    assert_string_equal(got, "123456789012345678.12");
  }
  /* 15 digits to the field's places: exact on both */
  assert_int_equal(
      create("wide", "big", dorm_decimal("1234567890123.45"), NULL, 0), 0);
  field_of("wide", "big", got, sizeof got);
  assert_string_equal(got, "1234567890123.45");
  assert_int_equal(create("neg", "big", dorm_decimal("-0.05"), NULL, 0), 0);
  field_of("neg", "big", got, sizeof got);
  assert_string_equal(got, "-0.05");

  /* max_digits / decimal_places, on both: refused by name, not rounded */
  assert_int_equal(
      create("long", "price", dorm_decimal("123456789.123"), msg, sizeof msg),
      DORM_ERANGE);
  assert_non_null(strstr(msg, "model 'Novel', field 'price'"));
  assert_int_equal(
      create("frac", "price", dorm_decimal("1.234"), msg, sizeof msg),
      DORM_ERANGE);
  assert_non_null(strstr(msg, "more than 2 decimal places"));
  assert_int_equal(
      create("whole", "price", dorm_decimal("1234567.5"), msg, sizeof msg),
      DORM_ERANGE);
  assert_non_null(strstr(msg, "more than 6 digits before the point"));
  assert_int_equal(create("ok", "price", dorm_decimal("000123456.78"), NULL, 0),
                   0);
  field_of("ok", "price", got, sizeof got);
  assert_string_equal(got, "123456.78");

  /* a C double is the shortest decimal that reads back as it */
  assert_int_equal(create("dbl", "price", dorm_float(95.26), NULL, 0), 0);
  field_of("dbl", "price", got, sizeof got);
  assert_string_equal(got, "95.26");
  assert_int_equal(create("dbl3", "price", dorm_float(0.125), msg, sizeof msg),
                   DORM_ERANGE);

  /* the siblings: update and bulk_create check the same way */
  dorm_query *u = dorm_update(Novel);
  assert_int_equal(dorm_set(u, "price", dorm_decimal("0.001")), DORM_ERANGE);
  dorm_query_free(u);
  int64_t before = count_all();
  dorm_query *b = dorm_insert(Novel);
  dorm_set(b, "title", dorm_str("b1"));
  dorm_set(b, "price", dorm_decimal("1.50"));
  dorm_insert_next_row(b);
  dorm_set(b, "title", dorm_str("b2"));
  assert_int_equal(dorm_set(b, "price", dorm_decimal("99999999")), DORM_ERANGE);
  dorm_query_free(b);
  if (B->sqlite) {
    b = dorm_insert(Novel);
    dorm_set(b, "title", dorm_str("b1"));
    dorm_set(b, "big", dorm_decimal("1.50"));
    dorm_insert_next_row(b);
    dorm_set(b, "title", dorm_str("b2"));
    dorm_set(b, "big", dorm_decimal("99999999999999.50")); /* 16 digits */
    assert_int_equal(t_err(dorm_async_bulk_create(DB, b), msg, sizeof msg),
                     DORM_ERANGE);
    assert_non_null(strstr(msg, "field 'big'"));
    dorm_query_free(b);
  }
  assert_int_equal(count_all(), before);
}

static void test_decimal_compare_and_sum(void **state) {
  (void)state;
  char msg[512];
  assert_int_equal(create("a", "price", dorm_decimal("95.26"), NULL, 0), 0);
  assert_int_equal(create("b", "price", dorm_decimal("95.27"), NULL, 0), 0);
  assert_int_equal(create("c", "price", dorm_decimal("10.10"), NULL, 0), 0);

  /* a double given for a decimal compares as the decimal it reads as:
   * 95.26 >= 95.26 (not 95.260000000000005) */
  dorm_query *q = dorm_select(Novel);
  dorm_exclude(q, "price__gte", dorm_float(95.26));
  expect_titles(q, "c");
  q = dorm_select(Novel);
  dorm_filter(q, "price", dorm_decimal("95.26"));
  expect_titles(q, "a");
  dorm_value in[] = {dorm_float(95.26), dorm_decimal("10.1")};
  q = dorm_select(Novel);
  dorm_filter(q, "price__in", dorm_list(in, 2));
  expect_titles(q, "a,c");
  q = dorm_select(Novel);
  dorm_filter(q, "price__gt", dorm_decimal("95.2600000000001"));
  expect_titles(q, "b");

  /* more digits than a double compares exactly: refused on SQLite */
  q = dorm_select(Novel);
  dorm_filter(q, "price__gt", dorm_decimal("95.26000000000000001"));
  if (B->sqlite) {
    assert_int_equal(t_err(dorm_async_filter(DB, q), msg, sizeof msg),
                     DORM_ERANGE);
    assert_non_null(strstr(msg, "field 'price'"));
    dorm_query_free(q);
  } else {
    expect_titles(q, "b");
  }

  /* Sum() adds exactly: 13 x 9876543210987.65 needs 17 digits, more than
   * a double's sum keeps */
  for (int i = 0; i < 13; i++) {
    char t[16];
    snprintf(t, sizeof t, "s%02d", i);
    assert_int_equal(
        create(t, "big", dorm_decimal("9876543210987.65"), NULL, 0), 0);
  }
  assert_int_equal(create("s-neg", "big", dorm_decimal("-0.07"), NULL, 0), 0);
  q = dorm_select(Novel);
  dorm_aggregate(q, "total", DORM_AGG_SUM, "big");
  dorm_result r = t_ok(dorm_async_aggregate(DB, q));
  assert_string_equal(dorm_row_text(r.u.row.row, "total"),
                      "128395061742839.38");
  dorm_result_free(&r);
  dorm_query_free(q);
  /* over a slice (a subquery), and per group with HAVING and ORDER BY
   * on the sum */
  q = dorm_select(Novel);
  dorm_filter(q, "title__startswith", dorm_str("s"));
  dorm_order_by(q, "title");
  dorm_slice(q, 1, 14); /* "s-neg" sorts first */
  dorm_aggregate(q, "total", DORM_AGG_SUM, "big");
  r = t_ok(dorm_async_aggregate(DB, q));
  assert_string_equal(dorm_row_text(r.u.row.row, "total"),
                      "128395061742839.45");
  dorm_result_free(&r);
  dorm_query_free(q);
  q = dorm_select(Novel);
  dorm_values(q, "pages");
  dorm_annotate(q, "total", DORM_AGG_SUM, "big");
  dorm_filter(q, "total__gt", dorm_decimal("-1"));
  dorm_order_by(q, "-total");
  r = t_ok(dorm_async_filter(DB, q));
  assert_int_equal(dorm_rows_count(r.u.rows.rows), 1);
  assert_string_equal(dorm_row_text(dorm_rows_row(r.u.rows.rows, 0), "total"),
                      "128395061742839.38");
  dorm_result_free(&r);
  dorm_query_free(q);
  /* small sums, negative sums, no rows */
  q = dorm_select(Novel);
  dorm_filter(q, "title__in", dorm_list((dorm_value[]){dorm_str("s-neg")}, 1));
  dorm_aggregate(q, "total", DORM_AGG_SUM, "big");
  r = t_ok(dorm_async_aggregate(DB, q));
  assert_string_equal(dorm_row_text(r.u.row.row, "total"), "-0.07");
  dorm_result_free(&r);
  dorm_query_free(q);
  q = dorm_select(Novel);
  dorm_aggregate(q, "total", DORM_AGG_SUM, "price");
  r = t_ok(dorm_async_aggregate(DB, q));
  assert_string_equal(dorm_row_text(r.u.row.row, "total"), "200.63");
  dorm_result_free(&r);
  dorm_query_free(q);
  q = dorm_select(Novel);
  dorm_filter(q, "title", dorm_str("nobody"));
  dorm_aggregate(q, "total", DORM_AGG_SUM, "price");
  r = t_ok(dorm_async_aggregate(DB, q));
  assert_null(dorm_row_text(r.u.row.row, "total"));
  dorm_result_free(&r);
  dorm_query_free(q);
}

/* ---- JSON --------------------------------------------------------------- */

static void test_json_equality(void **state) {
  (void)state;
  assert_int_equal(
      create("j1", "data",
             dorm_json_text("{\"b\": 1, \"a\": [2.50, \"x\\u0041\"],"
                            " \"n\": 0.1}"),
             NULL, 0),
      0);
  assert_int_equal(create("j2", "data", dorm_json_text("{\"a\": 2}"), NULL, 0),
                   0);
  /* the same document, written differently, finds the row on both */
  dorm_query *q = dorm_select(Novel);
  dorm_filter(q, "data",
              dorm_json_text("{\"n\":1e-1,\"a\":[2.5,\"xA\"],\"b\":1.0}"));
  expect_titles(q, "j1");
  q = dorm_select(Novel);
  dorm_exclude(q, "data", dorm_json_text("{ \"a\" : 2 }"));
  expect_titles(q, "j1");
  /* numbers are kept as written, not through a double */
  dorm_query *g = dorm_select(Novel);
  dorm_filter(g, "title", dorm_str("j1"));
  dorm_result r = t_ok(dorm_async_get(DB, g));
  json_t *j = dorm_row_json(r.u.row.row, "data");
  assert_non_null(j);
  char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  assert_string_equal(text,
                      "{\"a\":[2.5,\"xA\"],\"b\":1,\"n\":0.10000000000000001}");
  free(text);
  json_decref(j);
  const char *raw = dorm_row_text(r.u.row.row, "data");
  assert_non_null(strstr(raw, "0.1"));
  assert_null(strstr(raw, "0.10000"));
  dorm_result_free(&r);
  dorm_query_free(g);
  /* not JSON: refused by name */
  q = dorm_select(Novel);
  assert_int_equal(dorm_filter(q, "data", dorm_json_text("{\"a\":}")),
                   DORM_ETYPE);
  dorm_query_free(q);
}

/* ---- upsert that does nothing ------------------------------------------- */

static void test_upsert_do_nothing(void **state) {
  (void)state;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 2; i++) {
      dorm_query *q = dorm_insert(Novel);
      dorm_set(q, "title", dorm_str(i ? "second" : "first"));
      dorm_set(q, "isbn", dorm_str("978-3"));
      if (round == 0)
        dorm_on_conflict(q, "isbn");
      else
        dorm_on_conflict_do_nothing(q);
      dorm_result r = t_ok(dorm_async_create(DB, q));
      if (i == 0 && round == 0) {
        assert_int_equal(r.kind, DORM_RESULT_ROW);
        assert_string_equal(dorm_row_text(r.u.row.row, "title"), "first");
      } else {
        /* the conflict: success, no row (Django's ignore_conflicts) */
        assert_int_equal(r.kind, DORM_RESULT_NONE);
      }
      dorm_result_free(&r);
      dorm_query_free(q);
    }
  }
  assert_int_equal(count_all(), 1);
  char got[64];
  field_of("first", "isbn", got, sizeof got);
  assert_string_equal(got, "978-3");
  /* bulk_create counts the rows inserted, not the ones skipped */
  dorm_query *b = dorm_insert(Novel);
  dorm_set(b, "title", dorm_str("third"));
  dorm_set(b, "isbn", dorm_str("978-3"));
  dorm_insert_next_row(b);
  dorm_set(b, "title", dorm_str("fourth"));
  dorm_set(b, "isbn", dorm_str("978-4"));
  dorm_on_conflict_do_nothing(b);
  assert_int_equal(t_count(dorm_async_bulk_create(DB, b)), 1);
  dorm_query_free(b);
  assert_int_equal(count_all(), 2);
}

/* ---- errors: one cause, one code ---------------------------------------- */

static void test_division_by_zero(void **state) {
  (void)state;
  dorm_query *c = dorm_insert(Novel);
  dorm_set(c, "title", dorm_str("p"));
  dorm_set(c, "pages", dorm_int(7));
  dorm_set(c, "ratio", dorm_int(5));
  dorm_result r = t_ok(dorm_async_create(DB, c));
  dorm_result_free(&r);
  dorm_query_free(c);
  static const char *const fields[] = {"pages", "ratio"};
  for (int i = 0; i < 2; i++) {
    /* pages is NOT NULL, ratio nullable: both fail, nothing is written
     * (SQLite alone would write NULL, or fail the NOT NULL constraint) */
    dorm_query *u = dorm_update(Novel);
    dorm_set(u, fields[i],
             dorm_fval(dorm_op(u, '/', dorm_F(u, "pages"),
                               dorm_lit(u, dorm_int(0)))));
    char msg[512];
    assert_int_equal(t_err(dorm_async_update(DB, u), msg, sizeof msg),
                     DORM_ERANGE);
    dorm_query_free(u);
  }
  char got[32];
  dorm_query *q = dorm_select(Novel);
  dorm_filter(q, "ratio", dorm_int(5));
  dorm_filter(q, "pages", dorm_int(7));
  assert_int_equal(t_count(dorm_async_count(DB, q)), 1);
  dorm_query_free(q);
  /* integer division truncates on both */
  dorm_query *u = dorm_update(Novel);
  dorm_set(u, "ratio",
           dorm_fval(
               dorm_op(u, '/', dorm_F(u, "pages"), dorm_lit(u, dorm_int(-2)))));
  assert_int_equal(t_count(dorm_async_update(DB, u)), 1);
  dorm_query_free(u);
  q = dorm_select(Novel);
  dorm_filter(q, "ratio", dorm_int(-3));
  assert_int_equal(t_count(dorm_async_count(DB, q)), 1);
  dorm_query_free(q);
  (void)got;
}

/* ---- `dorm query`: decimal literals as written ----------------------------
 */

/* Run `dorm query --db <this test's database> --models F <expr>`; the
 * first line of its output (stdout and stderr) into out; the status. */
static int run_query(const char *args, const char *expr, char *out,
                     size_t cap) {
  char models[] = "/tmp/dorm-exact-models.XXXXXX";
  int fd = mkstemp(models);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, MODELS, strlen(MODELS)), (ssize_t)strlen(MODELS));
  close(fd);
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "'%s' query --db \"%s\" --models %s %s '%s' 2>&1",
           T_bin, T_url, models, args, expr);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  out[0] = '\0';
  if (!fgets(out, (int)cap, p)) out[0] = '\0';
  char rest[512];
  while (fgets(rest, sizeof rest, p)) {
  }
  int st = pclose(p);
  unlink(models);
  out[strcspn(out, "\n")] = '\0';
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli_decimal_literals(void **state) {
  (void)state;
  assert_int_equal(create("a", "price", dorm_decimal("95.26"), NULL, 0), 0);
  assert_int_equal(create("b", "price", dorm_decimal("95.27"), NULL, 0), 0);
  assert_int_equal(create("c", "price", dorm_decimal("10.10"), NULL, 0), 0);
  char out[1024];
  /* the literal reaches the database as written: 95.26 is excluded */
  assert_int_equal(
      run_query("", "Novel.exclude(price__gte=95.26).count()", out, sizeof out),
      0);
  assert_string_equal(out, "1");
  assert_int_equal(
      run_query("", "Novel.filter(price__in=[95.26, 10.1]).count()", out,
                sizeof out),
      0);
  assert_string_equal(out, "2");
  /* a float field compares with the nearest double */
  assert_int_equal(
      run_query("", "Novel.filter(rating__lt=0.5).count()", out, sizeof out),
      0);
  assert_string_equal(out, "0");
  /* the SQL's parameter is the literal's text */
  char all[4096] = "";
  snprintf(all, sizeof all,
           "'%s' query --sql --db \"%s\" --models /dev/stdin "
           "'Novel.filter(price=95.26)' 2>&1 <<'EOF'\n%s\nEOF\n",
           T_bin, T_url, MODELS);
  FILE *p = popen(all, "r");
  assert_non_null(p);
  size_t n = fread(all, 1, sizeof all - 1, p);
  all[n] = '\0';
  pclose(p);
  assert_non_null(strstr(all, "'95.26'"));
  assert_null(strstr(all, "95.260000"));
  /* an integer beyond 64 bits is not clamped: refused for an integer
   * field, exact for a decimal one */
  assert_int_equal(run_query("",
                             "Novel.filter(pages=99999999999999999999)."
                             "count()",
                             out, sizeof out),
                   1);
  assert_non_null(strstr(out, "expected integer, got decimal"));
  assert_int_equal(run_query("",
                             "Novel.filter(big__lt=99999999999999999999)."
                             "count()",
                             out, sizeof out),
                   B->sqlite ? 1 : 0);
  if (!B->sqlite) assert_string_equal(out, "0"); /* big is NULL */
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv) {
  /* build/tests/test_exact -> build/dorm */
  const char *self = argc > 0 ? argv[0] : "build/tests/test_exact";
  const char *slash = strstr(self, "/tests/");
  if (slash)
    snprintf(T_bin, sizeof T_bin, "%.*s/dorm", (int)(slash - self), self);
  else
    snprintf(T_bin, sizeof T_bin, "build/dorm");
  const struct CMUnitTest tests[] = {
      T(test_decimal_stored_exactly_or_refused),
      T(test_decimal_compare_and_sum),
      T(test_json_equality),
      T(test_upsert_do_nothing),
      T(test_division_by_zero),
      T(test_cli_decimal_literals),
  };
  dorm_error err;
  dorm_error_clear(&err);
  S = dorm_schema_load_string(MODELS, "exact_models", &err);
  if (!S) {
    fprintf(stderr, "models: %s\n", err.message);
    return 1;
  }
  Novel = dorm_schema_model(S, "Novel");
  int failed = 0;
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
    B = &backends[i];
    char url[512];
    if (!B->sqlite && (!getenv("DORM_TEST_PG") || !*getenv("DORM_TEST_PG"))) {
      printf("[ SKIPPED  ] backend %s: DORM_TEST_PG is not set\n", B->name);
      continue;
    }
    (void)url;
    failed += _cmocka_run_group_tests(
        B->name, tests, sizeof tests / sizeof tests[0], NULL, NULL);
  }
  dorm_schema_free(S);
  return failed ? 1 : 0;
}
