/* SPDX-License-Identifier: MIT */
/* tests/test_pg_wire.c — the PostgreSQL wire codec (backends/pg/pg_wire.c)
 * without a server: each value type's parameter encoding (type OID,
 * format, bytes), the checks that refuse a statement before it is sent,
 * text results of each column type decoded into rows (compiled and raw
 * statements, NULLs, a value its column cannot read, too few columns,
 * max_rows), and server errors mapped to dorm codes.  Cells come from
 * arrays through dorm__pg_cells, as pg_conn.c's come from a PGresult.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "backends/pg/pg_wire.h"
#include "dorm.h"
#include "support/support.h"

/* ---- parameters ---------------------------------------------------------- */

static uint64_t be(const char *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = (v << 8) | (unsigned char)p[i];
  return v;
}

static void test_param_oids(void **state) {
  (void)state;
  assert_int_equal(dorm__pg_param_oid(DORM_T_BOOL), DORM__PG_OID_BOOL);
  assert_int_equal(dorm__pg_param_oid(DORM_T_INT), DORM__PG_OID_INT8);
  assert_int_equal(dorm__pg_param_oid(DORM_T_FLOAT), DORM__PG_OID_FLOAT8);
  assert_int_equal(dorm__pg_param_oid(DORM_T_BYTES), DORM__PG_OID_BYTEA);
  assert_int_equal(dorm__pg_param_oid(DORM_T_DECIMAL), DORM__PG_OID_NUMERIC);
  assert_int_equal(dorm__pg_param_oid(DORM_T_DATE), DORM__PG_OID_DATE);
  assert_int_equal(dorm__pg_param_oid(DORM_T_TIME), DORM__PG_OID_TIME);
  assert_int_equal(dorm__pg_param_oid(DORM_T_DATETIME),
                   DORM__PG_OID_TIMESTAMPTZ);
  assert_int_equal(dorm__pg_param_oid(DORM_T_UUID), DORM__PG_OID_UUID);
  assert_int_equal(dorm__pg_param_oid(DORM_T_JSON), DORM__PG_OID_JSONB);
  /* text is "unknown": the server takes the column's own type */
  assert_int_equal(dorm__pg_param_oid(DORM_T_TEXT), 0);
  assert_int_equal(dorm__pg_param_oid(DORM_T_NULL), 0);
}

static void test_params_encode(void **state) {
  (void)state;
  static const char raw[] = {'a', 0, 'b'};
  dorm_value v[] = {
      dorm_null(),
      dorm_bool(1),
      dorm_int(-2),
      dorm_int(70000),
      dorm_float(1.5),
      dorm_bytes(raw, 3),
      dorm_str("hé"),
      dorm_decimal("12.50"),
      dorm_date("2024-05-01"),
      dorm_time("13:45:00"),
      dorm_datetime("2024-05-01T13:45:00"),
      dorm_datetime("2024-05-01T13:45:00-02:00"),
      dorm_uuid("123e4567-e89b-12d3-a456-426614174000"),
      dorm_textn(DORM_T_JSON, "{\"a\":1}", 7),
  };
  size_t n = sizeof v / sizeof v[0];
  unsigned char int4[sizeof v / sizeof v[0]] = {0};
  int4[3] = 1; /* compared with an int4 column */
  dorm__stmt st = {
      .sql = "x", .len = 1, .params = v, .nparams = n, .param_int4 = int4};
  dorm__pg_params pp;
  dorm__pg_params_init(&pp);
  char why[160] = "";
  assert_int_equal(dorm__pg_params_encode(&pp, &st, why, sizeof why), 0);

  assert_null(pp.val[0]); /* SQL NULL */
  assert_int_equal(pp.types[0], 0);

  assert_int_equal(pp.types[1], DORM__PG_OID_BOOL);
  assert_int_equal(pp.fmt[1], 1);
  assert_int_equal(pp.len[1], 1);
  assert_int_equal(pp.val[1][0], 1);

  assert_int_equal(pp.types[2], DORM__PG_OID_INT8);
  assert_int_equal(pp.fmt[2], 1);
  assert_int_equal(pp.len[2], 8);
  assert_true(be(pp.val[2], 8) == (uint64_t)(int64_t)-2);

  assert_int_equal(pp.types[3], DORM__PG_OID_INT4);
  assert_int_equal(pp.len[3], 4);
  assert_true(be(pp.val[3], 4) == 70000);

  double f = 1.5;
  uint64_t fu;
  memcpy(&fu, &f, 8);
  assert_int_equal(pp.types[4], DORM__PG_OID_FLOAT8);
  assert_int_equal(pp.fmt[4], 1);
  assert_true(be(pp.val[4], 8) == fu);

  assert_int_equal(pp.types[5], DORM__PG_OID_BYTEA);
  assert_int_equal(pp.fmt[5], 1);
  assert_int_equal(pp.len[5], 3);
  assert_memory_equal(pp.val[5], raw, 3);

  /* text forms: NUL-terminated, format 0 */
  assert_int_equal(pp.types[6], 0);
  assert_int_equal(pp.fmt[6], 0);
  assert_string_equal(pp.val[6], "hé");
  assert_int_equal(pp.types[7], DORM__PG_OID_NUMERIC);
  assert_string_equal(pp.val[7], "12.50");
  assert_int_equal(pp.types[8], DORM__PG_OID_DATE);
  assert_string_equal(pp.val[8], "2024-05-01");
  assert_int_equal(pp.types[9], DORM__PG_OID_TIME);
  assert_string_equal(pp.val[9], "13:45:00");
  /* a date-time without an offset is UTC, and says so */
  assert_int_equal(pp.types[10], DORM__PG_OID_TIMESTAMPTZ);
  assert_string_equal(pp.val[10], "2024-05-01T13:45:00+00");
  assert_string_equal(pp.val[11], "2024-05-01T13:45:00-02:00");
  assert_int_equal(pp.types[12], DORM__PG_OID_UUID);
  assert_string_equal(pp.val[12], "123e4567-e89b-12d3-a456-426614174000");
  assert_int_equal(pp.types[13], DORM__PG_OID_JSONB);
  assert_string_equal(pp.val[13], "{\"a\":1}");

  /* the arrays are reused: a second, shorter statement */
  dorm_value w[] = {dorm_int(7)};
  dorm__stmt st2 = {.sql = "y", .len = 1, .params = w, .nparams = 1};
  assert_int_equal(dorm__pg_params_encode(&pp, &st2, why, sizeof why), 0);
  assert_int_equal(pp.types[0], DORM__PG_OID_INT8);
  assert_true(be(pp.val[0], 8) == 7);

  /* refused while encoding: NUL in text, a list */
  dorm_value bad[] = {dorm_strn("a\0b", 3)};
  dorm__stmt st3 = {.sql = "z", .len = 1, .params = bad, .nparams = 1};
  assert_int_equal(dorm__pg_params_encode(&pp, &st3, why, sizeof why),
                   DORM_ETYPE);
  assert_string_equal(why, "parameter $1: PostgreSQL text cannot contain NUL");
  dorm__pg_params_free(&pp);
}

static void test_stmt_check(void **state) {
  (void)state;
  dorm_value ok[] = {dorm_str("fine"), dorm_bytes("a\0b", 3)};
  dorm__stmt st = {.sql = "x", .len = 1, .params = ok, .nparams = 2};
  dorm_result r = dorm__pg_stmt_check(&st);
  assert_int_equal(r.kind, DORM_RESULT_NONE);

  dorm_value nul[] = {dorm_int(1), dorm_strn("a\0b", 3)};
  st.params = nul;
  r = dorm__pg_stmt_check(&st);
  assert_int_equal(dorm_result_code(&r), DORM_ETYPE);
  assert_string_equal(dorm_result_message(&r),
                      "postgresql: parameter $2 contains a NUL byte, which "
                      "PostgreSQL text cannot hold");
  dorm_result_free(&r);

  dorm_value list;
  memset(&list, 0, sizeof list);
  list.type = DORM_T_LIST;
  st.params = &list;
  st.nparams = 1;
  r = dorm__pg_stmt_check(&st);
  assert_int_equal(dorm_result_code(&r), DORM_ETYPE);
  assert_string_equal(dorm_result_message(&r),
                      "postgresql: parameter $1 cannot be sent as a parameter");
  dorm_result_free(&r);

  st.nparams = 70000; /* refused before any parameter is looked at */
  r = dorm__pg_stmt_check(&st);
  assert_int_equal(dorm_result_code(&r), DORM_ETYPE);
  assert_string_equal(dorm_result_message(&r),
                      "postgresql: 70000 parameters (at most 65535)");
  dorm_result_free(&r);
}

/* ---- results ------------------------------------------------------------- */

/* A result held in arrays: cells[row * nf + col], NULL for SQL NULL. */
typedef struct table {
  int nf, nt;
  const char *const *names;
  const Oid *types;
  const char *const *cells;
} table;

static const char *t_name(const void *src, int col) {
  return ((const table *)src)->names[col];
}

static Oid t_type(const void *src, int col) {
  return ((const table *)src)->types[col];
}

static int t_cell(const void *src, int row, int col, const char **text,
                  size_t *len) {
  const table *t = src;
  const char *s = t->cells[row * t->nf + col];
  *text = s ? s : "";
  *len = s ? strlen(s) : 0;
  return s == NULL;
}

static dorm_result decode(const dorm__stmt *st, const table *t,
                          int64_t max_rows) {
  dorm__pg_cells in = {t->nf, t->nt, t, t_name, t_type, t_cell};
  return dorm__pg_decode_rows(st, &in, max_rows);
}

static void test_oid_types(void **state) {
  (void)state;
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_BOOL), DORM_T_BOOL);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_INT2), DORM_T_INT);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_INT4), DORM_T_INT);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_INT8), DORM_T_INT);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_OID), DORM_T_INT);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_FLOAT4), DORM_T_FLOAT);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_FLOAT8), DORM_T_FLOAT);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_NUMERIC), DORM_T_DECIMAL);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_BYTEA), DORM_T_BYTES);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_DATE), DORM_T_DATE);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_TIME), DORM_T_TIME);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_TIMESTAMP), DORM_T_DATETIME);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_TIMESTAMPTZ),
                   DORM_T_DATETIME);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_UUID), DORM_T_UUID);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_JSON), DORM_T_JSON);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_JSONB), DORM_T_JSON);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_VARCHAR), DORM_T_TEXT);
  assert_int_equal(dorm__pg_oid_type(DORM__PG_OID_TEXT), DORM_T_TEXT);
  assert_int_equal(dorm__pg_oid_type(600 /* point */), DORM_T_TEXT);
}

/* A raw statement: columns described from the result's names and OIDs,
 * each value decoded by its column's type. */
static void test_decode_raw(void **state) {
  (void)state;
  static const char *const names[] = {"b", "i",  "f", "n", "by", "d",
                                      "t", "ts", "u", "j", "s"};
  static const Oid types[] = {
      DORM__PG_OID_BOOL,    DORM__PG_OID_INT4,        DORM__PG_OID_FLOAT8,
      DORM__PG_OID_NUMERIC, DORM__PG_OID_BYTEA,       DORM__PG_OID_DATE,
      DORM__PG_OID_TIME,    DORM__PG_OID_TIMESTAMPTZ, DORM__PG_OID_UUID,
      DORM__PG_OID_JSONB,   DORM__PG_OID_VARCHAR};
  static const char *const cells[] = {
      /* row 0 */
      "t", "42", "2.5", "12.50", "\\x00ff41", "2024-05-01", "13:45:00",
      "2024-05-01 13:45:00+02", "123E4567-E89B-12D3-A456-426614174000",
      "{\"a\": 1}", "hello",
      /* row 1: every value NULL */
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  table t = {11, 2, names, types, cells};
  dorm__stmt st = {.sql = "SELECT ...", .len = 10};
  dorm_result r = decode(&st, &t, 0);
  assert_int_equal(r.kind, DORM_RESULT_ROWS);
  const dorm_rows *rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_count(rows), 2);
  assert_int_equal(dorm_rows_ncolumns(rows), 11);
  assert_string_equal(dorm_rows_column_name(rows, 7), "ts");
  const dorm_row *row = dorm_rows_row(rows, 0);
  assert_int_equal(dorm_row_value(row, "b")->type, DORM_T_BOOL);
  assert_true(dorm_row_bool(row, "b"));
  assert_int_equal(dorm_row_value(row, "i")->type, DORM_T_INT);
  assert_int_equal(dorm_row_int(row, "i"), 42);
  assert_int_equal(dorm_row_value(row, "f")->type, DORM_T_FLOAT);
  assert_true(dorm_row_float(row, "f") == 2.5);
  assert_int_equal(dorm_row_value(row, "n")->type, DORM_T_DECIMAL);
  assert_string_equal(dorm_row_text(row, "n"), "12.50");
  size_t len = 0;
  const char *by = dorm_row_bytes(row, "by", &len);
  assert_int_equal(dorm_row_value(row, "by")->type, DORM_T_BYTES);
  assert_int_equal(len, 3);
  assert_memory_equal(by,
                      "\x00\xff"
                      "A",
                      3);
  assert_string_equal(dorm_row_text(row, "d"), "2024-05-01");
  assert_string_equal(dorm_row_text(row, "t"), "13:45:00");
  /* normalised to UTC ISO 8601 */
  assert_int_equal(dorm_row_value(row, "ts")->type, DORM_T_DATETIME);
  assert_string_equal(dorm_row_text(row, "ts"), "2024-05-01T11:45:00Z");
  /* dashed, lower-case */
  assert_string_equal(dorm_row_text(row, "u"),
                      "123e4567-e89b-12d3-a456-426614174000");
  assert_int_equal(dorm_row_value(row, "j")->type, DORM_T_JSON);
  assert_string_equal(dorm_row_text(row, "j"), "{\"a\": 1}");
  assert_int_equal(dorm_row_value(row, "s")->type, DORM_T_TEXT);
  assert_string_equal(dorm_row_text(row, "s"), "hello");
  row = dorm_rows_row(rows, 1);
  for (size_t i = 0; i < 11; i++) assert_true(dorm_row_is_null(row, names[i]));
  dorm_result_free(&r);

  /* max_rows: the rest is not read */
  r = decode(&st, &t, 1);
  assert_int_equal(dorm_rows_count(dorm_result_rows_of(&r)), 1);
  dorm_result_free(&r);
}

/* A compiled statement: the columns' own types decide, not the OIDs;
 * extra columns (SELECT DISTINCT's ORDER BY) are no part of the row. */
static void test_decode_compiled(void **state) {
  (void)state;
  dorm_field price = {
      .name = "price", .type = DORM_FIELD_DECIMAL, .decimal_places = 2};
  dorm_column cols[] = {
      {.name = "id", .type = DORM_T_INT},
      {.name = "price", .field = &price, .type = DORM_T_DECIMAL},
      {.name = "active", .type = DORM_T_BOOL},
  };
  static const char *const names[] = {"id", "price", "active", "extra"};
  static const Oid types[] = {DORM__PG_OID_INT8, DORM__PG_OID_NUMERIC,
                              DORM__PG_OID_BOOL, DORM__PG_OID_TEXT};
  static const char *const cells[] = {"7", "12.5", "f", "ignored"};
  table t = {4, 1, names, types, cells};
  dorm__stmt st = {.sql = "SELECT ...",
                   .len = 10,
                   .columns = cols,
                   .ncolumns = 3,
                   .returns_rows = 1};
  dorm_result r = decode(&st, &t, 0);
  assert_int_equal(r.kind, DORM_RESULT_ROWS);
  const dorm_rows *rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_ncolumns(rows), 3);
  const dorm_row *row = dorm_rows_row(rows, 0);
  assert_int_equal(dorm_row_int(row, "id"), 7);
  /* padded to the field's decimal places */
  assert_string_equal(dorm_row_text(row, "price"), "12.50");
  assert_int_equal(dorm_row_value(row, "active")->type, DORM_T_BOOL);
  assert_false(dorm_row_bool(row, "active"));
  assert_null(dorm_row_value(row, "extra"));
  dorm_result_free(&r);

  /* a value its column's type cannot read */
  static const char *const bad[] = {"seven", "1", "t", "x"};
  t.cells = bad;
  r = decode(&st, &t, 0);
  assert_int_equal(dorm_result_code(&r), DORM_ETYPE);
  assert_string_equal(dorm_result_message(&r),
                      "postgresql: column 'id': 'seven' is not an integer");
  dorm_result_free(&r);

  /* fewer columns than the statement describes */
  t.cells = cells;
  t.nf = 2;
  r = decode(&st, &t, 0);
  assert_int_equal(dorm_result_code(&r), DORM_EDB);
  assert_string_equal(dorm_result_message(&r),
                      "postgresql: the statement returned 2 columns, 3 "
                      "expected");
  dorm_result_free(&r);

  /* no rows */
  t.nf = 4;
  t.nt = 0;
  r = decode(&st, &t, 0);
  assert_int_equal(r.kind, DORM_RESULT_ROWS);
  assert_int_equal(dorm_rows_count(dorm_result_rows_of(&r)), 0);
  dorm_result_free(&r);
}

/* More rows than are sized in advance (64): still decoded, all. */
static void test_decode_many(void **state) {
  (void)state;
  enum { N = 200 };
  static const char *names[] = {"s"};
  static const Oid types[] = {DORM__PG_OID_TEXT};
  static char buf[N][16];
  static const char *cells[N];
  for (int i = 0; i < N; i++) {
    snprintf(buf[i], sizeof buf[i], "v%d", i);
    cells[i] = buf[i];
  }
  table t = {1, N, names, types, cells};
  dorm__stmt st = {.sql = "SELECT s", .len = 8};
  dorm_result r = decode(&st, &t, 0);
  const dorm_rows *rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_count(rows), N);
  assert_string_equal(dorm_row_text(dorm_rows_row(rows, 199), "s"), "v199");
  dorm_result_free(&r);
}

/* ---- errors -------------------------------------------------------------- */

static void expect_error(const char *state, const char *prim,
                         const char *detail, int code, const char *msg) {
  dorm_result r = dorm__pg_error(state, prim, detail);
  assert_int_equal(r.kind, DORM_RESULT_ERROR);
  assert_int_equal(dorm_result_code(&r), code);
  assert_string_equal(dorm_result_message(&r), msg);
  if (state) assert_string_equal(dorm_result_sqlstate(&r), state);
  dorm_result_free(&r);
}

static void test_errors(void **state) {
  (void)state;
  expect_error("23505", "duplicate key value violates unique constraint",
               "Key (email)=(a@b) already exists.", DORM_EINTEGRITY,
               "postgresql: duplicate key value violates unique constraint "
               "(Key (email)=(a@b) already exists.)");
  expect_error("23503", "fk", NULL, DORM_EINTEGRITY, "postgresql: fk");
  expect_error("08006", "connection failure", NULL, DORM_ECONN,
               "postgresql: connection failure");
  expect_error("22012", "division by zero", NULL, DORM_ERANGE,
               "postgresql: division by zero");
  expect_error("22003", "integer out of range", NULL, DORM_ERANGE,
               "postgresql: integer out of range");
  expect_error("2201B", "invalid regular expression", NULL, DORM_EINVAL,
               "postgresql: invalid regular expression");
  expect_error("25P02", "current transaction is aborted", NULL, DORM_ETXABORTED,
               "postgresql: current transaction is aborted");
  expect_error("57014", "canceling statement due to statement timeout", NULL,
               DORM_ETIMEDOUT,
               "postgresql: canceling statement due to statement timeout");
  /* cancelled by the user: not a timeout */
  expect_error("57014", "canceling statement due to user request", NULL,
               DORM_EDB, "postgresql: canceling statement due to user request");
  expect_error("40P01", "deadlock detected", NULL, DORM_EDB,
               "postgresql: deadlock detected");
  expect_error("42P01", "relation \"x\" does not exist", NULL, DORM_EDB,
               "postgresql: relation \"x\" does not exist");
  expect_error(NULL, "no SQLSTATE", NULL, DORM_EDB, "postgresql: no SQLSTATE");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_param_oids),
      cmocka_unit_test(test_params_encode),
      cmocka_unit_test(test_stmt_check),
      cmocka_unit_test(test_oid_types),
      cmocka_unit_test(test_decode_raw),
      cmocka_unit_test(test_decode_compiled),
      cmocka_unit_test(test_decode_many),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
