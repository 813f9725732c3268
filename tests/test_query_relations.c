/* SPDX-License-Identifier: MIT */
/* tests/test_query_relations.c — the query compiler, queries over relations:
 * count() and exists() of a slice, lookups on relation fields,
 * dorm_compile_ex's column types, select_related, and prefetch_related (the
 * builder and the query each relation kind reads its rows with).
 *
 * Each statement is compared with its golden SQL and parameters and
 * prepared on SQLite, and on PostgreSQL when the run has one
 * (tests/querytest.h).
 */
#include "querytest.h"

/* count() and exists() over a slice, as Django's get_aggregation and
 * exists() write them: a count of a slice keeps the ordering and its
 * joins, which pick (and multiply) the rows; exists() drops the ordering
 * but keeps DISTINCT and its select list. */
static void test_count_exists_of_slice(void **state) {
  (void)state;
  /* Author.order_by("entries__rating", "id")[0:100].count() */
  dorm_query *q = dorm_select(Author);
  dorm_only(q, "name");
  dorm_order_by(q, "entries__rating");
  dorm_order_by(q, "id");
  dorm_slice(q, 0, 100);
  dorm_count(q);
  expect(q, DORM_DIALECT_POSTGRES,
         "SELECT COUNT(*) FROM (SELECT \"author\".\"id\", \"author\".\"name\" "
         "FROM \"author\" LEFT OUTER JOIN \"entry\" ON (\"author\".\"id\" = "
         "\"entry\".\"author_id\") ORDER BY \"entry\".\"rating\" ASC, "
         "\"author\".\"id\" ASC LIMIT $1) \"subquery\"",
         "100");
  expect(q, DORM_DIALECT_SQLITE,
         "SELECT COUNT(*) FROM (SELECT \"author\".\"id\", \"author\".\"name\" "
         "FROM \"author\" LEFT OUTER JOIN \"entry\" ON (\"author\".\"id\" = "
         "\"entry\".\"author_id\") ORDER BY \"entry\".\"rating\" ASC NULLS "
         "LAST, \"author\".\"id\" ASC LIMIT ?) \"subquery\"",
         "100");
  dorm_query_free(q);
  /* distinct and sliced: the ordering column is selected, so counted */
  q = dorm_select(Author);
  dorm_only(q, "name");
  dorm_distinct(q);
  dorm_order_by(q, "-entries__rating");
  dorm_slice(q, 0, 10);
  dorm_count(q);
  expect(
      q, DORM_DIALECT_POSTGRES,
      "SELECT COUNT(*) FROM (SELECT DISTINCT \"author\".\"id\", "
      "\"author\".\"name\", \"entry\".\"rating\" FROM \"author\" LEFT "
      "OUTER JOIN \"entry\" ON (\"author\".\"id\" = \"entry\".\"author_id\") "
      "ORDER BY \"entry\".\"rating\" DESC LIMIT $1) \"subquery\"",
      "10");
  dorm_query_free(q);
  /* distinct, not sliced: Django clears the ordering */
  q = dorm_select(Author);
  dorm_only(q, "name");
  dorm_distinct(q);
  dorm_order_by(q, "-entries__rating");
  dorm_count(q);
  expect_both(q,
              "SELECT COUNT(*) FROM (SELECT DISTINCT \"author\".\"id\", "
              "\"author\".\"name\" FROM \"author\") \"subquery\"",
              "");
  dorm_query_free(q);
  /* Author.filter(entries__rating__gt=3).distinct()[2:4].exists() */
  q = dorm_select(Author);
  dorm_only(q, "name");
  dorm_filter(q, "entries__rating__gt", dorm_int(3));
  dorm_distinct(q);
  dorm_order_by(q, "entries__rating");
  dorm_slice(q, 2, 4);
  dorm_exists(q);
  expect_both(
      q,
      "SELECT DISTINCT 1 AS \"a\", \"author\".\"id\", \"author\".\"name\" "
      "FROM \"author\"" J_ENTRY
      " WHERE \"entry\".\"rating\" > $1 LIMIT 1 OFFSET $2",
      "3, 2");
  dorm_query_free(q);
  /* Author.all()[2:2].exists(): an empty slice has no row (Django's
   * set_limits(high=1) keeps the high mark at 2: LIMIT 0) */
  q = dorm_select(Author);
  dorm_only(q, "name");
  dorm_slice(q, 2, 2);
  dorm_exists(q);
  expect_both(q, "SELECT 1 AS \"a\" FROM \"author\" LIMIT 0 OFFSET $1", "2");
  dorm_query_free(q);
}

/* a lookup right after a multi-valued hop compares the related key */
static void test_relation_lookups(void **state) {
  (void)state;
  dorm_query *q = dorm_select(Author);
  dorm_only(q, "name");
  dorm_filter(q, "entries__isnull", dorm_bool(1));
  expect_both(q,
              "SELECT \"author\".\"id\", \"author\".\"name\" FROM "
              "\"author\" LEFT OUTER JOIN \"entry\" ON (\"author\".\"id\" "
              "= \"entry\".\"author_id\") WHERE \"entry\".\"id\" IS NULL",
              "");
  dorm_query_free(q);
  q = dorm_select(Entry);
  dorm_only(q, "headline");
  dorm_filter(q, "tags__in",
              dorm_list((dorm_value[]){dorm_int(1), dorm_int(2)}, 2));
  expect_both(q,
              "SELECT \"entry\".\"id\", \"entry\".\"headline\" FROM "
              "\"entry\" INNER JOIN \"entry_tags\" ON (\"entry\".\"id\" = "
              "\"entry_tags\".\"entry_id\") INNER JOIN \"tag\" ON "
              "(\"entry_tags\".\"tag_id\" = \"tag\".\"id\") WHERE "
              "\"tag\".\"id\" IN ($1, $2)",
              "1, 2");
  dorm_query_free(q);
  /* values() of a transform is named by its path */
  q = dorm_select(Author);
  dorm_values(q, "joined__year");
  dorm_annotate(q, "n", DORM_AGG_COUNT, "*");
  expect(q, DORM_DIALECT_POSTGRES,
         "SELECT EXTRACT(YEAR FROM \"author\".\"joined\")::integer AS "
         "\"joined__year\", COUNT(*) AS \"n\" FROM \"author\" GROUP BY "
         "EXTRACT(YEAR FROM \"author\".\"joined\")::integer",
         "");
  expect(q, DORM_DIALECT_SQLITE,
         "SELECT CAST(strftime('%Y', \"author\".\"joined\") AS INTEGER) AS "
         "\"joined__year\", COUNT(*) AS \"n\" FROM \"author\" GROUP BY "
         "CAST(strftime('%Y', \"author\".\"joined\") AS INTEGER)",
         "");
  dorm_query_free(q);
}

/* dorm_compile_ex: variations of one query without changing it */
static void test_compile_ex(void **state) {
  (void)state;
  dorm_query *q = dorm_select(Tag);
  dorm_filter(q, "name__startswith", dorm_str("a"));
  dorm_slice(q, 5, 7);
  dorm_sql out;
  dorm_sql_init(&out);
  dorm_compile_opts o;
  memset(&o, 0, sizeof o);
  o.flags = DORM_COMPILE_COUNT;
  assert_int_equal(dorm_compile_ex(q, DORM_DIALECT_POSTGRES, &o, &out, NULL),
                   0);
  assert_string_equal(out.text,
                      "SELECT COUNT(*) FROM (SELECT \"tag\".\"id\", "
                      "\"tag\".\"name\" FROM \"tag\" WHERE \"tag\".\"name\" "
                      "LIKE $1 LIMIT $2 OFFSET $3) \"subquery\"");
  o.flags = DORM_COMPILE_ORDER_PK;
  o.limit = 1; /* first(): within the slice [5:7] */
  assert_int_equal(dorm_compile_ex(q, DORM_DIALECT_SQLITE, &o, &out, NULL), 0);
  assert_string_equal(out.text,
                      "SELECT \"tag\".\"id\", \"tag\".\"name\" FROM \"tag\" "
                      "WHERE \"tag\".\"name\" GLOB ? ORDER BY \"tag\".\"id\" "
                      "ASC LIMIT ? OFFSET ?");
  assert_int_equal(out.params[1].u.i, 1);
  assert_int_equal(out.params[2].u.i, 5);
  /* the query itself is unchanged */
  expect(q, DORM_DIALECT_POSTGRES,
         "SELECT \"tag\".\"id\", \"tag\".\"name\" FROM \"tag\" WHERE "
         "\"tag\".\"name\" LIKE $1 LIMIT $2 OFFSET $3",
         "'a%', 2, 5");
  dorm_query_free(q);

  /* get() on a query that pins one row needs no LIMIT (a LIMIT costs a
   * PostgreSQL lookup a node and a parameter) */
  memset(&o, 0, sizeof o);
  o.limit = 2;
  q = dorm_select(Author);
  dorm_filter(q, "pk", dorm_int(7));
  dorm_filter(q, "age__gte", dorm_int(18));
  assert_int_equal(dorm_compile_ex(q, DORM_DIALECT_POSTGRES, &o, &out, NULL),
                   0);
  assert_null(strstr(out.text, "LIMIT"));
  assert_int_equal(out.nparams, 2);
  dorm_query_free(q);
  q = dorm_select(Author);
  dorm_filter(q, "email", dorm_str("a@x.org")); /* unique */
  assert_int_equal(dorm_compile_ex(q, DORM_DIALECT_SQLITE, &o, &out, NULL), 0);
  assert_null(strstr(out.text, "LIMIT"));
  dorm_query_free(q);
  /* ... but every other shape keeps it: a NULL (several rows may be
   * NULL), a transform, another lookup, a join that may multiply rows, an
   * expression, an OR, a non-unique field, a slice */
  for (int k = 0; k < 8; k++) {
    q = dorm_select(Author);
    switch (k) {
      case 0: dorm_filter(q, "email", dorm_null()); break;
      case 1: dorm_filter(q, "email__iexact", dorm_str("a@x.org")); break;
      case 2: dorm_filter(q, "pk__gte", dorm_int(7)); break;
      case 3:
        dorm_filter(q, "pk", dorm_int(7));
        dorm_filter(q, "entries__headline", dorm_str("x"));
        break;
      case 4: dorm_filter(q, "pk", dorm_fval(dorm_F(q, "age"))); break;
      case 5:
        dorm_filter_q(q, dorm_q_or(q, dorm_Q(q, "pk", dorm_int(1)),
                                   dorm_Q(q, "pk", dorm_int(2))));
        break;
      case 6: dorm_filter(q, "name", dorm_str("Ann")); break;
      case 7:
        dorm_filter(q, "pk", dorm_int(7));
        dorm_slice(q, 0, 5);
        break;
    }
    assert_int_equal(dorm_compile_ex(q, DORM_DIALECT_POSTGRES, &o, &out, NULL),
                     0);
    if (!strstr(out.text, "LIMIT")) fail_msg("case %d: %s", k, out.text);
    dorm_query_free(q);
  }

  /* integers compared with an int4 column are marked for PostgreSQL to
   * take as int4 (when they fit); the others stay int8 */
  q = dorm_select(Author);
  dorm_filter(q, "pk", dorm_int(7));
  dorm_filter(q, "age__gte", dorm_int(5000000000)); /* does not fit */
  dorm_filter(
      q, "age__lt",
      dorm_fval(dorm_op(q, '*', dorm_F(q, "age"), dorm_lit(q, dorm_int(3)))));
  dorm_value two[] = {dorm_int(1), dorm_int(2)};
  dorm_filter(q, "age__in", dorm_list(two, 2));
  dorm_slice(q, 0, 10);
  assert_int_equal(dorm_compile(q, DORM_DIALECT_POSTGRES, &out, NULL), 0);
  assert_int_equal(out.nparams, 6); /* pk, age, 3, 1, 2, LIMIT */
  assert_non_null(out.param_int4);
  static const unsigned char want[] = {1, 0, 0, 1, 1, 0};
  assert_memory_equal(out.param_int4, want, 6);
  /* SQLite has one integer type: nothing is marked */
  dorm_sql lite;
  dorm_sql_init(&lite);
  assert_int_equal(dorm_compile(q, DORM_DIALECT_SQLITE, &lite, NULL), 0);
  assert_null(lite.param_int4);
  dorm_sql_free(&lite);
  dorm_query_free(q);

  /* a window of a bulk insert, returning only the key */
  q = dorm_insert(Tag);
  const char *names[] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 5; i++) {
    if (i) dorm_insert_next_row(q);
    dorm_set(q, "name", dorm_str(names[i]));
  }
  assert_int_equal(dorm_query_row_count(q), 5);
  memset(&o, 0, sizeof o);
  o.flags = DORM_COMPILE_RETURN_PK;
  o.row_first = 3;
  o.row_count = 10;
  assert_int_equal(dorm_compile_ex(q, DORM_DIALECT_POSTGRES, &o, &out, NULL),
                   0);
  assert_string_equal(out.text,
                      "INSERT INTO \"tag\" (\"name\") VALUES ($1), ($2) "
                      "RETURNING \"tag\".\"id\"");
  assert_int_equal(out.nparams, 2);
  assert_memory_equal(out.params[0].u.s.ptr, "d", 1);
  o.row_first = 5;
  assert_int_equal(dorm_compile_ex(q, DORM_DIALECT_POSTGRES, &o, &out, NULL),
                   DORM_ERANGE);
  dorm_sql_free(&out);
  dorm_query_free(q);
}

static void test_select_related(void **state) {
  (void)state;
  dorm_query *q = dorm_select(Entry);
  dorm_select_related(q, "author");
  dorm_select_related(q, "editor");
  dorm_filter(q, "pk", dorm_int(1));
  expect(
      q, DORM_DIALECT_POSTGRES,
      "SELECT " E_COLS
      ", \"author\".\"id\", \"author\".\"name\", \"author\".\"age\", "
      "\"author\".\"country\", \"author\".\"email\", \"author\".\"joined\", "
      "\"author\".\"bio\", \"author\".\"score\", \"author\".\"active\", "
      "\"author\".\"uid\", \"author\".\"data\", \"author\".\"wake\", "
      "\"author\".\"born\", \"author\".\"avatar\", \"T3\".\"id\", "
      "\"T3\".\"name\", \"T3\".\"age\", \"T3\".\"country\", "
      "\"T3\".\"email\", \"T3\".\"joined\", \"T3\".\"bio\", "
      "\"T3\".\"score\", \"T3\".\"active\", \"T3\".\"uid\", "
      "\"T3\".\"data\", \"T3\".\"wake\", \"T3\".\"born\", \"T3\".\"avatar\" "
      "FROM \"entry\" INNER JOIN \"author\" ON (\"entry\".\"author_id\" = "
      "\"author\".\"id\") LEFT OUTER JOIN \"author\" \"T3\" ON "
      "(\"entry\".\"editor_id\" = \"T3\".\"id\") WHERE \"entry\".\"id\" = $1",
      "1");
  dorm_sql out;
  dorm_sql_init(&out);
  assert_int_equal(dorm_compile(q, DORM_DIALECT_SQLITE, &out, NULL), 0);
  assert_int_equal(out.ncolumns, 5 + 14 + 14);
  assert_string_equal(out.columns[5].name, "author__id");
  assert_int_equal(out.columns[5].relation, 1);
  assert_ptr_equal(out.columns[5].model, Author);
  assert_string_equal(out.columns[19].name, "editor__id");
  assert_int_equal(out.columns[19].relation, 2);
  assert_int_equal(out.nrelated, 2);
  assert_string_equal(out.related[1], "editor");
  assert_int_equal(out.columns[1].type, DORM_T_INT); /* author -> its pk */
  dorm_sql_free(&out);
  dorm_query_free(q);
}

/* prefetch_related: what the builder accepts and refuses, and the query
 * each relation kind reads its rows with (prepared on both databases). */
static void expect_prefetch(const dorm_model *m, const char *name,
                            const char *parent_key, const char *child_key,
                            const char *pg_sql, const char *sqlite_sql) {
  dorm_query *q = dorm_select(m);
  assert_int_equal(dorm_prefetch_related(q, name), 0);
  assert_int_equal(dorm_query_prefetch_count(q), 1);
  dorm_prefetch p;
  assert_int_equal(dorm_query_prefetch(q, 0, &p), 0);
  assert_int_equal(dorm_query_prefetch(q, 1, &p), DORM_EINVAL);
  assert_int_equal(dorm_query_prefetch(q, 0, &p), 0);
  assert_string_equal(p.name, name);
  assert_string_equal(p.parent_key, parent_key);
  if (child_key)
    assert_string_equal(p.child_key, child_key);
  else
    assert_null(p.child_key);
  /* the main query itself compiles as it would without the prefetch */
  dorm_sql out;
  dorm_sql_init(&out);
  assert_int_equal(dorm_compile(q, DORM_DIALECT_SQLITE, &out, NULL), 0);
  assert_null(strstr(out.text, "JOIN"));
  dorm_sql_free(&out);
  dorm_value keys[] = {dorm_int(3), dorm_int(4)};
  dorm_query *s = dorm_prefetch_select(&p, keys, 2);
  dorm_query_free(q); /* p points into the schema, name aside */
  assert_non_null(s);
  expect(s, DORM_DIALECT_POSTGRES, pg_sql, "3, 4");
  expect(s, DORM_DIALECT_SQLITE, sqlite_sql, "3, 4");
  /* a many_to_many's source key: a described column no row shows */
  dorm_sql_init(&out);
  assert_int_equal(dorm_compile(s, DORM_DIALECT_SQLITE, &out, NULL), 0);
  assert_int_equal(out.columns[out.ncolumns - 1].relation, child_key ? 0 : -1);
  dorm_sql_free(&out);
  dorm_query_free(s);
}

static void test_prefetch_related(void **state) {
  (void)state;
  expect_prefetch(Author, "entries", "id", "author",
                  E_FROM
                  " WHERE \"entry\".\"author_id\" IN ($1, $2) ORDER BY "
                  "\"entry\".\"id\" ASC",
                  E_FROM
                  " WHERE \"entry\".\"author_id\" IN (?, ?) ORDER BY "
                  "\"entry\".\"id\" ASC");
  expect_prefetch(Entry, "editor", "editor", "id",
                  "SELECT " A_COLS_PG
                  " FROM \"author\" WHERE \"author\".\"id\" IN ($1, $2) "
                  "ORDER BY \"author\".\"id\" ASC",
                  "SELECT " A_COLS_PG
                  " FROM \"author\" WHERE \"author\".\"id\" IN (?, ?) "
                  "ORDER BY \"author\".\"id\" ASC");
  expect_prefetch(
      Entry, "tags", "id", NULL,
      "SELECT \"tag\".\"id\", \"tag\".\"name\", \"entry\".\"id\" FROM \"tag\" "
      "INNER JOIN \"entry_tags\" ON (\"tag\".\"id\" = "
      "\"entry_tags\".\"tag_id\") "
      "INNER JOIN \"entry\" ON (\"entry_tags\".\"entry_id\" = "
      "\"entry\".\"id\") WHERE \"entry\".\"id\" IN ($1, $2) ORDER BY "
      "\"tag\".\"id\" ASC",
      "SELECT \"tag\".\"id\", \"tag\".\"name\", \"entry\".\"id\" FROM \"tag\" "
      "INNER JOIN \"entry_tags\" ON (\"tag\".\"id\" = "
      "\"entry_tags\".\"tag_id\") "
      "INNER JOIN \"entry\" ON (\"entry_tags\".\"entry_id\" = "
      "\"entry\".\"id\") WHERE \"entry\".\"id\" IN (?, ?) ORDER BY "
      "\"tag\".\"id\" ASC");
  expect_prefetch(
      Tag, "entry", "id", NULL,
      "SELECT " E_COLS
      ", \"tag\".\"id\" FROM \"entry\" INNER JOIN "
      "\"entry_tags\" ON (\"entry\".\"id\" = \"entry_tags\".\"entry_id\") "
      "INNER JOIN \"tag\" ON (\"entry_tags\".\"tag_id\" = \"tag\".\"id\") "
      "WHERE \"tag\".\"id\" IN ($1, $2) ORDER BY \"entry\".\"id\" ASC",
      "SELECT " E_COLS
      ", \"tag\".\"id\" FROM \"entry\" INNER JOIN "
      "\"entry_tags\" ON (\"entry\".\"id\" = \"entry_tags\".\"entry_id\") "
      "INNER JOIN \"tag\" ON (\"entry_tags\".\"tag_id\" = \"tag\".\"id\") "
      "WHERE \"tag\".\"id\" IN (?, ?) ORDER BY \"entry\".\"id\" ASC");

  /* refusals: sticky, naming the model and the name */
  static const struct {
    const dorm_model **m;
    const char *name;
    int code;
    const char *frag;
  } bad[] = {
      {&Author, "entriez", DORM_EFIELD,
       "model 'Author', prefetch_related 'entriez': unknown field or relation "
       "'entriez' of 'Author'"},
      {&Author, "name", DORM_EFIELD,
       "model 'Author', prefetch_related 'name': field 'name' is not a "
       "relation"},
      {&Entry, "author_id", DORM_EFIELD,
       "model 'Entry', prefetch_related "
       "'author_id': unknown field"},
      {&Entry, "pk", DORM_EFIELD, "model 'Entry', prefetch_related 'pk'"},
      {&Author, "entries__tagz", DORM_EFIELD,
       "model 'Author', prefetch_related 'entries__tagz': unknown field or "
       "relation 'tagz' of 'Entry'"},
      {&Author, "entries__headline", DORM_EFIELD,
       "model 'Author', prefetch_related 'entries__headline': field "
       "'headline' is not a relation"},
      {&Author, "entries__", DORM_EFIELD, "relation '' of 'Entry'"},
      {&Author, "", DORM_EFIELD, "model 'Author': empty prefetch_related"},
      {&Author, NULL, DORM_EFIELD, "model 'Author': empty prefetch_related"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dorm_query *q = dorm_select(*bad[i].m);
    assert_int_equal(dorm_prefetch_related(q, bad[i].name), bad[i].code);
    /* sticky: later calls are no-ops returning it */
    assert_int_equal(dorm_prefetch_related(q, "entries"), bad[i].code);
    assert_int_equal(dorm_query_prefetch_count(q), 0);
    expect_error(q, DORM_DIALECT_SQLITE, bad[i].code, bad[i].frag, NULL);
    dorm_query_free(q);
  }
  /* on a query that is not a SELECT */
  dorm_query *q = dorm_update(Author);
  assert_int_equal(dorm_prefetch_related(q, "entries"), DORM_ESTATE);
  expect_error(q, DORM_DIALECT_POSTGRES, DORM_ESTATE,
               "model 'Author': prefetch_related() applies to a select", NULL);
  dorm_query_free(q);
  /* with values(), either way round */
  q = dorm_select(Author);
  dorm_values(q, "name");
  assert_int_equal(dorm_prefetch_related(q, "entries"), DORM_ESTATE);
  expect_error(q, DORM_DIALECT_SQLITE, DORM_ESTATE,
               "model 'Author': prefetch_related('entries') after values()",
               NULL);
  dorm_query_free(q);
  q = dorm_select(Author);
  dorm_prefetch_related(q, "entries");
  assert_int_equal(dorm_values(q, "name"), DORM_ESTATE);
  expect_error(q, DORM_DIALECT_SQLITE, DORM_ESTATE,
               "values('name') after prefetch_related('entries')", NULL);
  dorm_query_free(q);
  /* the same relation twice is one */
  q = dorm_select(Entry);
  assert_int_equal(dorm_prefetch_related(q, "tags"), 0);
  assert_int_equal(dorm_prefetch_related(q, "tags"), 0);
  assert_int_equal(dorm_prefetch_related(q, "author"), 0);
  assert_int_equal(dorm_query_prefetch_count(q), 2);
  dorm_query_free(q);
  /* a nested path: each level once, parents first, the level above added
   * as Django does; nothing recorded when a level does not resolve */
  q = dorm_select(Author);
  assert_int_equal(dorm_prefetch_related(q, "entries__tags"), 0);
  assert_int_equal(dorm_prefetch_related(q, "entries"), 0);
  assert_int_equal(dorm_prefetch_related(q, "entries__tags__entry"), 0);
  assert_int_equal(dorm_prefetch_related(q, "edited__author"), 0);
  assert_int_equal(dorm_query_prefetch_count(q), 5);
  static const struct {
    const char *path, *name;
    int parent;
    const char *parent_key, *child_key;
  } lv[] = {{"entries", "entries", -1, "id", "author"},
            {"entries__tags", "tags", 0, "id", NULL},
            {"entries__tags__entry", "entry", 1, "id", NULL},
            {"edited", "edited", -1, "id", "editor"},
            {"edited__author", "author", 3, "author", "id"}};
  for (size_t i = 0; i < 5; i++) {
    dorm_prefetch p;
    assert_int_equal(dorm_query_prefetch(q, i, &p), 0);
    assert_string_equal(p.path, lv[i].path);
    assert_string_equal(p.name, lv[i].name);
    assert_int_equal(p.parent, lv[i].parent);
    assert_string_equal(p.parent_key, lv[i].parent_key);
    if (lv[i].child_key)
      assert_string_equal(p.child_key, lv[i].child_key);
    else
      assert_null(p.child_key);
  }
  dorm_query_free(q);
  /* no keys: refused on the related query, not compiled into IN () */
  dorm_prefetch p;
  memset(&p, 0, sizeof p);
  q = dorm_select(Author);
  dorm_prefetch_related(q, "entries");
  dorm_query_prefetch(q, 0, &p);
  dorm_query *s = dorm_prefetch_select(&p, NULL, 0);
  expect_error(s, DORM_DIALECT_SQLITE, DORM_EINVAL, "no keys", NULL);
  dorm_query_free(s);
  dorm_query_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_count_exists_of_slice),
      cmocka_unit_test(test_relation_lookups),
      cmocka_unit_test(test_compile_ex),
      cmocka_unit_test(test_select_related),
      cmocka_unit_test(test_prefetch_related),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
