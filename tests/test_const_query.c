/* SPDX-License-Identifier: MIT */
/* tests/test_const_query.c — every call that reads a query takes
 * `const dorm_query *`, and none of them changes the query.
 *
 * Two proofs.  At compile time: the table `read_calls` holds each
 * dorm_async_* call that runs a query as a pointer of the exact type
 * `dorm_deferred *(*)(dorm_db *, const dorm_query *)`, and the compiler's
 * accessors are called through a const pointer; a signature that lost its
 * const would be an incompatible pointer (an error under -Werror) and
 * this file would not build.  At run time, on SQLite: each call runs
 * through a const pointer with the answer it should give, and the query
 * compiles to the same SQL and parameters before and after, so "const"
 * is not only a cast away.
 */
#include "dbtest.h"

/* The read calls and the writes that take a finished query. */
typedef dorm_deferred *(*read_call)(dorm_db *, const dorm_query *);
static const read_call read_calls[] = {
    dorm_async_filter, dorm_async_get,         dorm_async_first,
    dorm_async_count,  dorm_async_exists,      dorm_async_aggregate,
    dorm_async_create, dorm_async_bulk_create, dorm_async_update,
    dorm_async_delete,
};

/* The compiler's side: the same rule for what the facade calls. */
typedef int (*compile_call)(const dorm_query *, dorm_dialect, dorm_sql *,
                            dorm_error *);
typedef int (*compile_ex_call)(const dorm_query *, dorm_dialect,
                               const dorm_compile_opts *, dorm_sql *,
                               dorm_error *);
typedef size_t (*count_call)(const dorm_query *);
typedef int (*prefetch_call)(const dorm_query *, size_t, dorm_prefetch *);
typedef int (*error_call)(const dorm_query *, dorm_error *);
typedef const dorm_model *(*model_call)(const dorm_query *);
typedef dorm_query_kind (*kind_call)(const dorm_query *);
static const compile_call C1 = dorm_compile;
static const compile_ex_call C2 = dorm_compile_ex;
static const count_call C3[] = {dorm_query_row_count,
                                dorm_query_prefetch_count};
static const prefetch_call C4 = dorm_query_prefetch;
static const error_call C5 = dorm_query_error;
static const model_call C6 = dorm_query_model;
static const kind_call C7 = dorm_query_kind_of;

static const char models[] =
    "{\"models\": ["
    " {\"name\": \"Author\", \"fields\": ["
    "   {\"name\": \"name\", \"type\": \"varchar\", \"max_length\": 50},"
    "   {\"name\": \"age\", \"type\": \"integer\"}]},"
    " {\"name\": \"Book\", \"fields\": ["
    "   {\"name\": \"author\", \"type\": \"foreign_key\", \"to\": \"Author\","
    "    \"on_delete\": \"cascade\", \"related_name\": \"books\"},"
    "   {\"name\": \"title\", \"type\": \"varchar\", \"max_length\": 50}]}]}";

static dorm_schema *S;
static const dorm_model *Author, *Book;

/* The query as SQLite SQL, its parameter count appended: what "the
 * query did not change" is checked against. */
static char *sql_of(const dorm_query *q) {
  dorm_sql sql;
  dorm_sql_init(&sql);
  dorm_error err;
  dorm_error_clear(&err);
  assert_int_equal(C1(q, DORM_DIALECT_SQLITE, &sql, &err), 0);
  size_t n = sql.len + 32;
  char *s = malloc(n);
  assert_non_null(s);
  snprintf(s, n, "%s [%zu]", sql.text, sql.nparams);
  dorm_sql_free(&sql);
  return s;
}

/* Run call on q and check q compiles as it did before. */
static dorm_result run_same(dorm_db *db, read_call call, const dorm_query *q) {
  char *before = sql_of(q);
  dorm_result r = t_ok(call(db, q));
  char *after = sql_of(q);
  assert_string_equal(before, after);
  free(before);
  free(after);
  return r;
}

static void test_compiler_reads_const(void **state) {
  (void)state;
  dorm_query *mq = dorm_select(Author);
  dorm_filter(mq, "age__gte", dorm_int(30));
  dorm_prefetch_related(mq, "books");
  const dorm_query *q = mq;
  assert_int_equal(C5(q, NULL), 0);
  assert_ptr_equal(C6(q), Author);
  assert_int_equal(C7(q), DORM_QUERY_SELECT);
  assert_int_equal(C3[1](q), 1);
  dorm_prefetch p;
  assert_int_equal(C4(q, 0, &p), 0);
  assert_string_equal(p.name, "books");
  dorm_compile_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.flags = DORM_COMPILE_COUNT;
  dorm_sql sql;
  dorm_sql_init(&sql);
  assert_int_equal(C2(q, DORM_DIALECT_SQLITE, &opts, &sql, NULL), 0);
  assert_non_null(strstr(sql.text, "COUNT("));
  dorm_sql_free(&sql);
  char *s = sql_of(q); /* the COUNT was an option, not a change */
  assert_null(strstr(s, "COUNT("));
  free(s);
  dorm_query_free(mq);

  dorm_query *ins = dorm_insert(Author);
  dorm_set(ins, "name", dorm_str("a"));
  dorm_set(ins, "age", dorm_int(1));
  dorm_insert_next_row(ins);
  dorm_set(ins, "name", dorm_str("b"));
  dorm_set(ins, "age", dorm_int(2));
  assert_int_equal(C3[0](ins), 2);
  dorm_query_free(ins);
}

static void test_reads_on_sqlite(void **state) {
  (void)state;
  t_loop_open();
  dorm_db *db = t_open_ready("sqlite::memory:", NULL);
  static const char *const names[] = {"Author", "Book", NULL};
  t_create_tables(db, S, names);

  /* bulk_create: three authors */
  dorm_query *mi = dorm_insert(Author);
  static const char *const who[] = {"Ann", "Bob", "Cy"};
  for (int i = 0; i < 3; i++) {
    if (i) dorm_insert_next_row(mi);
    dorm_set(mi, "name", dorm_str(who[i]));
    dorm_set(mi, "age", dorm_int(30 + 10 * i));
  }
  const dorm_query *ins = mi;
  dorm_result r = run_same(db, dorm_async_bulk_create, ins);
  assert_int_equal(r.u.count, 3);
  dorm_result_free(&r);
  dorm_query_free(mi);

  /* create: one book of Ann's */
  dorm_query *mb = dorm_insert(Book);
  dorm_set(mb, "author", dorm_int(1));
  dorm_set(mb, "title", dorm_str("Tale"));
  const dorm_query *book = mb;
  r = run_same(db, dorm_async_create, book);
  assert_string_equal(dorm_row_text(dorm_result_row_of(&r), "title"), "Tale");
  dorm_result_free(&r);
  dorm_query_free(mb);

  /* filter (with a prefetch), get, first, count, exists */
  dorm_query *ms = dorm_select(Author);
  dorm_filter(ms, "age__gte", dorm_int(40));
  dorm_order_by(ms, "name");
  const dorm_query *sel = ms;
  r = run_same(db, dorm_async_filter, sel);
  assert_int_equal(dorm_rows_count(dorm_result_rows_of(&r)), 2);
  dorm_result_free(&r);
  r = run_same(db, dorm_async_first, sel);
  assert_string_equal(dorm_row_text(dorm_result_row_of(&r), "name"), "Bob");
  dorm_result_free(&r);
  r = run_same(db, dorm_async_count, sel);
  assert_int_equal(r.u.count, 2);
  dorm_result_free(&r);
  r = run_same(db, dorm_async_exists, sel);
  assert_int_equal(r.kind, DORM_RESULT_VALUE);
  assert_true(r.u.value.v.u.b);
  dorm_result_free(&r);
  /* get of two rows: DORM_EMULTIPLE, and the query is still as it was */
  char *before = sql_of(sel);
  assert_int_equal(t_err(dorm_async_get(db, sel), NULL, 0), DORM_EMULTIPLE);
  char *after = sql_of(sel);
  assert_string_equal(before, after);
  free(before);
  free(after);
  dorm_query_free(ms);

  dorm_query *mp = dorm_select(Author);
  dorm_filter(mp, "name", dorm_str("Ann"));
  dorm_prefetch_related(mp, "books");
  const dorm_query *pre = mp;
  r = run_same(db, dorm_async_get, pre);
  const dorm_rows *books = dorm_row_prefetched(dorm_result_row_of(&r), "books");
  assert_non_null(books);
  assert_int_equal(dorm_rows_count(books), 1);
  dorm_result_free(&r);
  dorm_query_free(mp);

  /* aggregate */
  dorm_query *ma = dorm_select(Author);
  dorm_aggregate(ma, "oldest", DORM_AGG_MAX, "age");
  const dorm_query *agg = ma;
  r = run_same(db, dorm_async_aggregate, agg);
  assert_int_equal(dorm_row_int(dorm_result_row_of(&r), "oldest"), 50);
  dorm_result_free(&r);
  dorm_query_free(ma);

  /* update, delete */
  dorm_query *mu = dorm_update(Author);
  dorm_filter(mu, "name", dorm_str("Cy"));
  dorm_set(mu, "age", dorm_int(51));
  const dorm_query *upd = mu;
  r = run_same(db, dorm_async_update, upd);
  assert_int_equal(r.u.count, 1);
  dorm_result_free(&r);
  dorm_query_free(mu);
  dorm_query *md = dorm_delete(Author);
  dorm_filter(md, "age__gt", dorm_int(50));
  const dorm_query *del = md;
  r = run_same(db, dorm_async_delete, del);
  assert_int_equal(r.u.count, 1);
  dorm_result_free(&r);
  dorm_query_free(md);
  dorm_query *mall = dorm_select(Author);
  const dorm_query *all = mall;
  assert_int_equal(t_count(dorm_async_count(db, all)), 2);
  dorm_query_free(mall);

  assert_int_equal(sizeof read_calls / sizeof *read_calls, 10);
  t_loop_close(db);
}

int main(void) {
  dorm_error err;
  dorm_error_clear(&err);
  S = dorm_schema_load_string(models, "const_query.json", &err);
  if (!S) {
    fprintf(stderr, "%s\n", err.message);
    return 1;
  }
  Author = dorm_schema_model(S, "Author");
  Book = dorm_schema_model(S, "Book");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compiler_reads_const),
      cmocka_unit_test(test_reads_on_sqlite),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  dorm_schema_free(S);
  return rc;
}
