/* SPDX-License-Identifier: MIT */
/* tests/test_query_writes.c — the query compiler, the writes: INSERT (defaults
 * as parameters, RETURNING), UPDATE and DELETE, and many_to_many
 * add/remove/clear/keep_only on the join table.
 *
 * Each statement is compared with its golden SQL and parameters and
 * prepared on SQLite, and on PostgreSQL when the run has one
 * (tests/querytest.h).
 */
#include "querytest.h"

/* ---- writes ---------------------------------------------------------------
 */

#define A_RET                                                               \
  " RETURNING \"author\".\"id\", \"author\".\"name\", \"author\".\"age\", " \
  "\"author\".\"country\", \"author\".\"email\", \"author\".\"joined\", "   \
  "\"author\".\"bio\", \"author\".\"score\", \"author\".\"active\", "       \
  "\"author\".\"uid\", \"author\".\"data\", \"author\".\"wake\", "          \
  "\"author\".\"born\", \"author\".\"avatar\""

static void test_insert(void **state) {
  (void)state;
  /* defaults of unset fields travel as parameters */
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str("Ann"));
  dorm_set(q, "age", dorm_int(30));
  expect(q, DORM_DIALECT_POSTGRES,
         "INSERT INTO \"author\" (\"name\", \"age\", \"country\", \"bio\", "
         "\"active\") VALUES ($1, $2, $3, $4, $5)" A_RET,
         "'Ann', 30, 'US', '', true");
  expect(q, DORM_DIALECT_SQLITE,
         "INSERT INTO \"author\" (\"name\", \"age\", \"country\", \"bio\", "
         "\"active\") VALUES (?, ?, ?, ?, ?)" A_RET,
         "'Ann', 30, 'US', '', true");
  dorm_sql out;
  dorm_sql_init(&out);
  assert_int_equal(dorm_compile(q, DORM_DIALECT_SQLITE, &out, NULL), 0);
  assert_true(out.returns_rows);
  assert_int_equal(out.ncolumns, 14);
  assert_string_equal(out.columns[0].name, "id");
  dorm_sql_free(&out);
  dorm_query_free(q);

  /* bulk, with a foreign key by attribute name */
  q = dorm_insert(Entry);
  dorm_set(q, "author_id", dorm_int(1));
  dorm_set(q, "headline", dorm_str("a"));
  dorm_insert_next_row(q);
  dorm_set(q, "headline", dorm_str("b"));
  dorm_set(q, "author", dorm_int(2));
  dorm_returning(q, "id");
  expect_both(q,
              "INSERT INTO \"entry\" (\"author_id\", \"headline\", \"rating\") "
              "VALUES ($1, $2, $3), ($4, $5, $6) RETURNING \"entry\".\"id\"",
              "1, 'a', 0, 2, 'b', 0");
  dorm_query_free(q);

  /* upsert */
  q = dorm_insert(Tag);
  dorm_set(q, "name", dorm_str("c"));
  dorm_on_conflict(q, "name");
  dorm_on_conflict_update(q, "name");
  expect(q, DORM_DIALECT_SQLITE,
         "INSERT INTO \"tag\" (\"name\") VALUES (?) ON CONFLICT (\"name\") DO "
         "UPDATE SET \"name\" = EXCLUDED.\"name\" RETURNING \"tag\".\"id\", "
         "\"tag\".\"name\"",
         "'c'");
  expect(q, DORM_DIALECT_POSTGRES,
         "INSERT INTO \"tag\" (\"name\") VALUES ($1) ON CONFLICT (\"name\") DO "
         "UPDATE SET \"name\" = EXCLUDED.\"name\" RETURNING \"tag\".\"id\", "
         "\"tag\".\"name\"",
         "'c'");
  dorm_query_free(q);
  q = dorm_insert(Tag);
  dorm_set(q, "name", dorm_str("c"));
  dorm_on_conflict_do_nothing(q);
  expect_both(
      q,
      "INSERT INTO \"tag\" (\"name\") VALUES ($1) ON CONFLICT DO NOTHING "
      "RETURNING \"tag\".\"id\", \"tag\".\"name\"",
      "'c'");
  dorm_query_free(q);

  /* nothing set: every column from defaults */
  q = dorm_insert(Tag);
  expect_both_sq(q,
                 "INSERT INTO \"tag\" DEFAULT VALUES RETURNING \"tag\".\"id\", "
                 "\"tag\".\"name\"",
                 "");
  dorm_query_free(q);
}

static void test_update_delete(void **state) {
  (void)state;
  dorm_query *q = dorm_update(Author);
  dorm_set(
      q, "age",
      dorm_fval(dorm_op(q, '+', dorm_F(q, "age"), dorm_lit(q, dorm_int(1)))));
  dorm_set(q, "name", dorm_str("x"));
  dorm_filter(q, "country", dorm_str("US"));
  expect(q, DORM_DIALECT_POSTGRES,
         "UPDATE \"author\" SET \"age\" = (\"author\".\"age\" + $1), "
         "\"name\" = $2 WHERE \"author\".\"country\" = $3",
         "1, 'x', 'US'");
  expect(q, DORM_DIALECT_SQLITE,
         "UPDATE \"author\" SET \"age\" = (\"author\".\"age\" + ?), \"name\" "
         "= ? WHERE \"author\".\"country\" = ?",
         "1, 'x', 'US'");
  dorm_query_free(q);

  /* a filter across a relation: pk IN (subquery) */
  q = dorm_update(Entry);
  dorm_set(q, "rating", dorm_float(5));
  dorm_filter(q, "author__name", dorm_str("a"));
  expect_both(
      q,
      "UPDATE \"entry\" SET \"rating\" = $1 WHERE \"entry\".\"id\" IN "
      "(SELECT \"entry\".\"id\" FROM \"entry\" INNER JOIN \"author\" ON "
      "(\"entry\".\"author_id\" = \"author\".\"id\") WHERE "
      "\"author\".\"name\" = $2)",
      "5, 'a'");
  dorm_query_free(q);

  q = dorm_delete(Entry);
  dorm_filter(q, "rating__lt", dorm_int(1));
  expect_both_sq(q, "DELETE FROM \"entry\" WHERE \"entry\".\"rating\" < ?",
                 "1");
  dorm_query_free(q);
  q = dorm_delete(Tag);
  expect_both(q, "DELETE FROM \"tag\"", "");
  dorm_query_free(q);

  /* joined references in SET are refused */
  q = dorm_update(Entry);
  dorm_set(q, "rating", dorm_fval(dorm_F(q, "author__age")));
  expect_error(q, DORM_DIALECT_POSTGRES, DORM_EINVAL, "joined field", NULL);
  dorm_query_free(q);
}

/* many_to_many add/remove/clear/keep_only: one statement on the join
 * table, keys checked like a filter on pk. */
static void expect_m2m_on(const dorm_model *m, const char *field,
                          dorm_m2m_op op, const dorm_value *keys, size_t n,
                          const char *pg_sql, const char *params,
                          const unsigned char *int4) {
  for (int d = 0; d < 2; d++) {
    dorm_dialect dl = d ? DORM_DIALECT_SQLITE : DORM_DIALECT_POSTGRES;
    dorm_sql out;
    dorm_sql_init(&out);
    dorm_error err;
    dorm_error_clear(&err);
    if (dorm_compile_m2m(m, field, op, dorm_int(7), keys, n, dl, &out, &err))
      fail_msg("m2m compile failed: %s", err.message);
    char want[1024];
    size_t w = 0;
    for (const char *p = pg_sql; *p; p++) {
      if (d && *p == '$') {
        want[w++] = '?';
        while (p[1] >= '0' && p[1] <= '9') p++;
      } else {
        want[w++] = *p;
      }
    }
    want[w] = '\0';
    assert_string_equal(out.text, want);
    char got[512];
    render_params(&out, got, sizeof got);
    assert_string_equal(got, params);
    assert_int_equal(out.returns_rows, 0);
    if (d) {
      assert_null(out.param_int4);
      qt_accepted(DORM_DIALECT_SQLITE, &out);
    } else {
      if (int4)
        assert_memory_equal(out.param_int4, int4, out.nparams);
      else
        assert_true(!out.param_int4 || !memchr(out.param_int4, 1, out.nparams));
      qt_accepted(DORM_DIALECT_POSTGRES, &out);
    }
    dorm_sql_free(&out);
  }
}

static void expect_m2m(dorm_m2m_op op, const dorm_value *keys, size_t n,
                       const char *pg_sql, const char *params,
                       const unsigned char *int4) {
  expect_m2m_on(Entry, "tags", op, keys, n, pg_sql, params, int4);
}

static void test_many_to_many(void **state) {
  (void)state;
  dorm_value two[] = {dorm_int(3), dorm_int(4)};
  expect_m2m(DORM_M2M_ADD, two, 2,
             "INSERT INTO \"entry_tags\" (\"entry_id\", \"tag_id\") VALUES "
             "($1, $2), ($3, $4) ON CONFLICT (\"entry_id\", \"tag_id\") DO "
             "NOTHING",
             "7, 3, 7, 4", NULL);
  static const unsigned char rm4[] = {1, 1, 1};
  expect_m2m(DORM_M2M_REMOVE, two, 2,
             "DELETE FROM \"entry_tags\" WHERE \"entry_id\" = $1 AND "
             "\"tag_id\" IN ($2, $3)",
             "7, 3, 4", rm4);
  expect_m2m(DORM_M2M_KEEP_ONLY, two, 2,
             "DELETE FROM \"entry_tags\" WHERE \"entry_id\" = $1 AND "
             "\"tag_id\" NOT IN ($2, $3)",
             "7, 3, 4", rm4);
  static const unsigned char clear4[] = {1};
  expect_m2m(DORM_M2M_CLEAR, two, 2,
             "DELETE FROM \"entry_tags\" WHERE \"entry_id\" = $1", "7", clear4);
  expect_m2m(DORM_M2M_KEEP_ONLY, NULL, 0,
             "DELETE FROM \"entry_tags\" WHERE \"entry_id\" = $1", "7", clear4);
  /* a key beyond int4 stays int8 */
  dorm_value big[] = {dorm_int(5000000000LL)};
  static const unsigned char big4[] = {1, 0};
  expect_m2m(DORM_M2M_REMOVE, big, 1,
             "DELETE FROM \"entry_tags\" WHERE \"entry_id\" = $1 AND "
             "\"tag_id\" IN ($2)",
             "7, 5000000000", big4);

  /* from the other side, by the reverse name (tag.entry_set in Django):
   * the same table, the columns' roles swapped */
  expect_m2m_on(Tag, "entry", DORM_M2M_ADD, two, 2,
                "INSERT INTO \"entry_tags\" (\"tag_id\", \"entry_id\") VALUES "
                "($1, $2), ($3, $4) ON CONFLICT (\"tag_id\", \"entry_id\") DO "
                "NOTHING",
                "7, 3, 7, 4", NULL);
  expect_m2m_on(Tag, "entry", DORM_M2M_REMOVE, two, 2,
                "DELETE FROM \"entry_tags\" WHERE \"tag_id\" = $1 AND "
                "\"entry_id\" IN ($2, $3)",
                "7, 3, 4", rm4);

  /* refusals name the model, the field and the key */
  dorm_sql out;
  dorm_sql_init(&out);
  dorm_error err;
  struct {
    const dorm_model *m;
    const char *field;
    dorm_m2m_op op;
    dorm_value pk;
    dorm_value key;
    size_t n;
    int code;
    const char *msg;
  } bad[] = {
      {Entry, "tagz", DORM_M2M_ADD, dorm_int(1), dorm_int(1), 1, DORM_EFIELD,
       "model 'Entry': unknown field 'tagz'"},
      {Entry, "author", DORM_M2M_ADD, dorm_int(1), dorm_int(1), 1, DORM_EFIELD,
       "model 'Entry', field 'author': add needs a many_to_many field"},
      {Entry, "tags", DORM_M2M_ADD, dorm_str("x"), dorm_int(1), 1, DORM_ETYPE,
       "model 'Entry', many_to_many 'tags': the key: model 'Entry', field "
       "'id'"},
      {Entry, "tags", DORM_M2M_REMOVE, dorm_int(1), dorm_str("x"), 1,
       DORM_ETYPE,
       "model 'Entry', many_to_many 'tags': key 1 of 1: model 'Tag', field "
       "'id'"},
      {Entry, "tags", DORM_M2M_ADD, dorm_int(1), dorm_null(), 1, DORM_ETYPE,
       "key 1 of 1: a null is not a key of model 'Tag'"},
      {Entry, "tags", DORM_M2M_CLEAR, dorm_null(), dorm_int(1), 0, DORM_ETYPE,
       "the key: a null is not a key of model 'Entry'"},
      {Entry, "tags", DORM_M2M_ADD, dorm_int(1), dorm_int(1), 0, DORM_EINVAL,
       "add needs at least one key"},
      {Author, "entries", DORM_M2M_ADD, dorm_int(1), dorm_int(1), 1,
       DORM_EFIELD,
       "model 'Author': 'entries' is the reverse of Entry.author, a "
       "foreign_key; add needs a many_to_many relation"},
      {Tag, "entry", DORM_M2M_REMOVE, dorm_int(1), dorm_str("x"), 1, DORM_ETYPE,
       "model 'Tag', many_to_many 'entry': key 1 of 1: model 'Entry', field "
       "'id'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dorm_error_clear(&err);
    int rc = dorm_compile_m2m(bad[i].m, bad[i].field, bad[i].op, bad[i].pk,
                              &bad[i].key, bad[i].n, DORM_DIALECT_POSTGRES,
                              &out, &err);
    if (rc != bad[i].code || !strstr(err.message, bad[i].msg))
      fail_msg("case %zu: %d %s (want %d, '%s')", i, rc, err.message,
               bad[i].code, bad[i].msg);
    assert_int_equal(out.len, 0);
  }
  dorm_sql_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_insert),
      cmocka_unit_test(test_update_delete),
      cmocka_unit_test(test_many_to_many),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
