/* SPDX-License-Identifier: MIT */
/* tests/test_db_paths.c — the database facade on every backend, paths outside
 * filter() across multi-valued relations (values, annotate, order_by,
 * select_related): the join Django 3.2 picks, checked by the rows it gives.
 *
 * tests/dbsuite.h runs every test once per backend (SQLite file and
 * memory, PostgreSQL, and through replicas and PgBouncer when the run has
 * the cluster).
 */
#include "dbsuite.h"

/* ---- paths outside filter() across multi-valued relations --------------- */

/* tests/data/novel_models.json: Writer; Novel.writer (related_name
 * "novels"), Novel.editor (nullable, "edited"), Novel.tags (many-to-many,
 * reverse "novel"). */
static dorm_schema *JS;
static const dorm_model *JWriter, *JNovel, *JTag;

/* Writers Ann, Bob, Cid, Dee (ids 1-4), tags a, b, c (1-3) and novels
 * (id: writer, editor, pages, tags):
 *   1: Ann, Bob, 900, a b     2: Ann, -, 50, a      3: Ann, Cid, 300, c
 *   4: Bob, Ann, 850, b c     5: Bob, -, 80, a b c  6: Cid, Ann, 120, -
 *   7: Cid, Bob, 95, a */
static void seed_joined_novels(void) {
  static const char *const models[] = {"Writer", "Tag", "Novel", NULL};
  t_create_tables(DB, JS, models);
  static const char *const writers[] = {"Ann", "Bob", "Cid", "Dee"};
  static const char *const tags[] = {"a", "b", "c"};
  static const struct {
    int writer, editor, pages, in_print;
    const char *price, *tags;
  } novels[] = {{1, 2, 900, 1, "10.00", "ab"}, {1, 0, 50, 0, "5.00", "a"},
                {1, 3, 300, 1, "7.50", "c"},   {2, 1, 850, 1, "12.00", "bc"},
                {2, 0, 80, 0, "3.00", "abc"},  {3, 1, 120, 1, "9.00", ""},
                {3, 2, 95, 1, "4.00", "a"}};
  for (int i = 0; i < 4; i++) {
    dorm_query *q = dorm_insert(JWriter);
    dorm_set(q, "name", dorm_str(writers[i]));
    dorm_result r = t_ok(dorm_async_create(DB, q));
    assert_int_equal(dorm_row_int(r.u.row.row, "id"), i + 1);
    dorm_result_free(&r);
    dorm_query_free(q);
  }
  for (int i = 0; i < 3; i++) {
    dorm_query *q = dorm_insert(JTag);
    dorm_set(q, "name", dorm_str(tags[i]));
    dorm_result r = t_ok(dorm_async_create(DB, q));
    assert_int_equal(dorm_row_int(r.u.row.row, "id"), i + 1);
    dorm_result_free(&r);
    dorm_query_free(q);
  }
  for (int i = 0; i < 7; i++) {
    dorm_query *q = dorm_insert(JNovel);
    dorm_set(q, "writer", dorm_int(novels[i].writer));
    dorm_set(q, "editor",
             novels[i].editor ? dorm_int(novels[i].editor) : dorm_null());
    dorm_set(q, "pages", dorm_int(novels[i].pages));
    dorm_set(q, "in_print", dorm_bool(novels[i].in_print));
    dorm_set(q, "price", dorm_decimal(novels[i].price));
    dorm_result r = t_ok(dorm_async_create(DB, q));
    assert_int_equal(dorm_row_int(r.u.row.row, "id"), i + 1);
    dorm_result_free(&r);
    dorm_query_free(q);
    dorm_value t[3];
    size_t n = 0;
    for (const char *c = novels[i].tags; *c; c++)
      t[n++] = dorm_int(*c - 'a' + 1);
    if (n)
      assert_int_equal(t_count(dorm_async_m2m_add(DB, JNovel, "tags",
                                                  dorm_int(i + 1), t, n)),
                       (int64_t)n);
  }
}

/* The rows of q as "a:b,c:d" from columns c1 (and c2 if not NULL); q is
 * freed. */
static void expect_pairs(dorm_query *q, const char *c1, const char *c2,
                         const char *want) {
  dorm_result r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  const dorm_rows *rows = dorm_result_rows_of(&r);
  char got[512] = "";
  size_t len = 0;
  for (size_t i = 0; i < dorm_rows_count(rows); i++) {
    const dorm_row *row = dorm_rows_row(rows, i);
    const dorm_value *v1 = dorm_row_value(row, c1);
    assert_non_null(v1);
    len += (size_t)snprintf(got + len, sizeof got - len, "%s", i ? "," : "");
    if (v1->type == DORM_T_TEXT)
      len += (size_t)snprintf(got + len, sizeof got - len, "%s",
                              dorm_row_text(row, c1));
    else
      len += (size_t)snprintf(got + len, sizeof got - len, "%lld",
                              (long long)dorm_row_int(row, c1));
    if (c2)
      len += (size_t)snprintf(got + len, sizeof got - len, ":%lld",
                              (long long)dorm_row_int(row, c2));
  }
  assert_string_equal(got, want);
  dorm_result_free(&r);
}

/* Django 3.2's answers for the same calls: every expected value below
 * was computed by running the same QuerySet with Django 3.2 (its own SQL)
 * on the same rows in PostgreSQL, and is hard-coded here. */
static void test_multi_valued_outside_filters(void **state) {
  (void)state;
  seed_joined_novels();

  /* distinct() ordered by a column it does not select:
   * Novel.distinct().order_by("writer__name", "id")[0:5] -> 1..5 */
  dorm_query *q = dorm_select(JNovel);
  dorm_distinct(q);
  dorm_order_by(q, "writer__name");
  dorm_order_by(q, "id");
  dorm_slice(q, 0, 5);
  expect_pairs(q, "id", NULL, "1,2,3,4,5");
  /* Tag.distinct().values("name").order_by("-id")[0:3] -> c, b, a, and
   * rows of the one selected column */
  q = dorm_select(JTag);
  dorm_distinct(q);
  dorm_values(q, "name");
  dorm_order_by(q, "-id");
  dorm_slice(q, 0, 3);
  dorm_result r = t_ok(dorm_async_filter(DB, q));
  assert_int_equal(dorm_rows_ncolumns(dorm_result_rows_of(&r)), 1);
  dorm_result_free(&r);
  expect_pairs(q, "name", NULL, "c,b,a");
  /* Novel.distinct().order_by("-editor__name", "id"): NULL editors first */
  q = dorm_select(JNovel);
  dorm_distinct(q);
  dorm_order_by(q, "-editor__name");
  dorm_order_by(q, "id");
  expect_pairs(q, "id", NULL, "2,5,3,1,7,4,6");
  /* Writer.values("name").distinct().order_by("novels__pages"): distinct
   * over name and pages, one row per novel, Dee (no novel) last */
  q = dorm_select(JWriter);
  dorm_values(q, "name");
  dorm_distinct(q);
  dorm_order_by(q, "novels__pages");
  expect_pairs(q, "name", NULL, "Ann,Bob,Cid,Cid,Ann,Bob,Ann,Dee");

  /* values() before a filter() crossing the relation reads its own join,
   * the ordering the filter's, so the ordering column is selected too:
   * Writer.values("novels__pages").filter(novels__pages__gt=800)
   *   .distinct().order_by("novels__pages") -> 80, 850, 50, 300, 900
   * (pairs of Ann's and Bob's novels' pages with their >800 novel's; the
   * order within a writer is not defined: only the count is checked) */
  q = dorm_select(JWriter);
  dorm_values(q, "novels__pages");
  dorm_filter(q, "novels__pages__gt", dorm_int(800));
  dorm_distinct(q);
  dorm_order_by(q, "novels__pages");
  r = t_ok(dorm_async_filter(DB, q));
  assert_int_equal(dorm_rows_count(dorm_result_rows_of(&r)), 5);
  dorm_result_free(&r);
  dorm_query_free(q);

  /* values() and order_by() after two filter() calls read the second:
   * Writer.filter(novels__pages__gt=800).filter(novels__pages__lt=100)
   *   .values("id", "novels__pages").order_by("id", "novels__pages") */
  q = dorm_select(JWriter);
  dorm_filter(q, "novels__pages__gt", dorm_int(800));
  dorm_filter(q, "novels__pages__lt", dorm_int(100));
  dorm_values(q, "id");
  dorm_values(q, "novels__pages");
  dorm_order_by(q, "id");
  dorm_order_by(q, "novels__pages");
  expect_pairs(q, "id", "novels__pages", "1:50,2:80");
  /* ...and ordering across a further relation hangs off that join:
   * .order_by("novels__tags__name", "id") -> [1, 2, 2, 2] */
  q = dorm_select(JWriter);
  dorm_filter(q, "novels__pages__gt", dorm_int(800));
  dorm_filter(q, "novels__pages__lt", dorm_int(100));
  dorm_order_by(q, "novels__tags__name");
  dorm_order_by(q, "id");
  expect_pairs(q, "id", NULL, "1,2,2,2");
  /* .order_by("-novels__tags__name", "id").first() -> Bob (2) */
  q = dorm_select(JWriter);
  dorm_filter(q, "novels__pages__gt", dorm_int(800));
  dorm_filter(q, "novels__pages__lt", dorm_int(100));
  dorm_order_by(q, "-novels__tags__name");
  dorm_order_by(q, "id");
  r = t_ok(dorm_async_first(DB, q));
  assert_int_equal(dorm_row_int(r.u.row.row, "id"), 2);
  dorm_result_free(&r);
  dorm_query_free(q);
  /* the reverse many-to-many: Tag.filter(novel__pages__gt=800)
   * .filter(novel__pages__lt=100).values("name", "novel__pages")
   * .order_by("name", "novel__pages") */
  q = dorm_select(JTag);
  dorm_filter(q, "novel__pages__gt", dorm_int(800));
  dorm_filter(q, "novel__pages__lt", dorm_int(100));
  dorm_values(q, "name");
  dorm_values(q, "novel__pages");
  dorm_order_by(q, "name");
  dorm_order_by(q, "novel__pages");
  expect_pairs(q, "name", "novel__pages", "a:50,a:80,a:95,b:80,b:80,c:80");

  /* annotate() before filter() counts every novel, after it the
   * filter's: Writer.annotate(n=Count("novels")).filter(novels__pages__gt
   * =800) -> (1, 3), (2, 2); .filter(...).annotate(...) -> (1, 1), (2, 1) */
  q = dorm_select(JWriter);
  dorm_annotate(q, "n", DORM_AGG_COUNT, "novels");
  dorm_filter(q, "novels__pages__gt", dorm_int(800));
  dorm_order_by(q, "id");
  expect_pairs(q, "id", "n", "1:3,2:2");
  q = dorm_select(JWriter);
  dorm_filter(q, "novels__pages__gt", dorm_int(800));
  dorm_annotate(q, "n", DORM_AGG_COUNT, "novels");
  dorm_order_by(q, "id");
  expect_pairs(q, "id", "n", "1:1,2:1");
  /* with HAVING: .annotate(n=Count("novels")).filter(novels__pages__gt=
   * 800).filter(n__gt=2) -> (1, 3) */
  q = dorm_select(JWriter);
  dorm_annotate(q, "n", DORM_AGG_COUNT, "novels");
  dorm_filter(q, "novels__pages__gt", dorm_int(800));
  dorm_filter(q, "n__gt", dorm_int(2));
  dorm_order_by(q, "id");
  expect_pairs(q, "id", "n", "1:3");
  /* after two calls, the second's: .annotate(n=Sum("novels__pages"))
   * -> (1, 50), (2, 80); values("id") first, then filter, then annotate
   * -> (1, 1), (2, 1) */
  q = dorm_select(JWriter);
  dorm_filter(q, "novels__pages__gt", dorm_int(800));
  dorm_filter(q, "novels__pages__lt", dorm_int(100));
  dorm_annotate(q, "n", DORM_AGG_SUM, "novels__pages");
  dorm_order_by(q, "id");
  expect_pairs(q, "id", "n", "1:50,2:80");
  q = dorm_select(JWriter);
  dorm_values(q, "id");
  dorm_filter(q, "novels__pages__gt", dorm_int(800));
  dorm_annotate(q, "n", DORM_AGG_COUNT, "novels");
  dorm_order_by(q, "id");
  expect_pairs(q, "id", "n", "1:1,2:1");
  /* annotate() on both sides of a filter(): two joins,
   * Writer.values("name").annotate(n=Sum("novels__pages"))
   *   .filter(novels__in_print=True).annotate(m=Sum("novels__pages"))
   *   .order_by("name") -> Ann 2500 3600, Bob 930 1700, Cid 430 430 */
  q = dorm_select(JWriter);
  dorm_values(q, "name");
  dorm_annotate(q, "n", DORM_AGG_SUM, "novels__pages");
  dorm_filter(q, "novels__in_print", dorm_bool(1));
  dorm_annotate(q, "m", DORM_AGG_SUM, "novels__pages");
  dorm_order_by(q, "name");
  expect_pairs(q, "n", "m", "2500:3600,930:1700,430:430");
  /* many-to-many both ways, after two calls:
   * Novel.filter(tags__name="a").filter(tags__name="b")
   *   .annotate(n=Count("tags")).order_by("id") -> (1, 1), (5, 1);
   * Tag.filter(novel__pages__gt=800).annotate(n=Count("novel"))
   *   .filter(novel__pages__lt=100).order_by("id") -> (1, 3), (2, 2),
   *   (3, 1) */
  q = dorm_select(JNovel);
  dorm_filter(q, "tags__name", dorm_str("a"));
  dorm_filter(q, "tags__name", dorm_str("b"));
  dorm_annotate(q, "n", DORM_AGG_COUNT, "tags");
  dorm_order_by(q, "id");
  expect_pairs(q, "id", "n", "1:1,5:1");
  q = dorm_select(JTag);
  dorm_filter(q, "novel__pages__gt", dorm_int(800));
  dorm_annotate(q, "n", DORM_AGG_COUNT, "novel");
  dorm_filter(q, "novel__pages__lt", dorm_int(100));
  dorm_order_by(q, "id");
  expect_pairs(q, "id", "n", "1:3,2:2,3:1");
  /* aggregate(s=Sum("novels__pages")) after the two calls -> 130 */
  q = dorm_select(JWriter);
  dorm_filter(q, "novels__pages__gt", dorm_int(800));
  dorm_filter(q, "novels__pages__lt", dorm_int(100));
  dorm_aggregate(q, "s", DORM_AGG_SUM, "novels__pages");
  r = t_ok(dorm_async_aggregate(DB, q));
  assert_int_equal(dorm_row_int(r.u.row.row, "s"), 130);
  dorm_result_free(&r);
  dorm_query_free(q);

  /* count() of a slice ordered across the relation counts the joined
   * rows: Writer.order_by("novels__pages", "id")[0:100].count() -> 8,
   * .order_by("-novels__pages", "id")[2:6].count() -> 4 */
  q = dorm_select(JWriter);
  dorm_order_by(q, "novels__pages");
  dorm_order_by(q, "id");
  dorm_slice(q, 0, 100);
  assert_int_equal(t_count(dorm_async_count(DB, q)), 8);
  /* ...aggregate() over it too: [1:100].aggregate(n=Count("id"),
   * m=Max("id")) -> 7, 4 */
  dorm_slice(q, 1, 100);
  dorm_aggregate(q, "n", DORM_AGG_COUNT, "id");
  dorm_aggregate(q, "m", DORM_AGG_MAX, "id");
  r = t_ok(dorm_async_aggregate(DB, q));
  assert_int_equal(dorm_row_int(r.u.row.row, "n"), 7);
  assert_int_equal(dorm_row_int(r.u.row.row, "m"), 4);
  dorm_result_free(&r);
  dorm_query_free(q);
  q = dorm_select(JWriter);
  dorm_order_by(q, "-novels__pages");
  dorm_order_by(q, "id");
  dorm_slice(q, 2, 6);
  assert_int_equal(t_count(dorm_async_count(DB, q)), 4);
  dorm_query_free(q);
  /* [0:] limits nothing (Django's is_sliced is false), so count() drops
   * the ordering and its join: Writer.order_by("novels__pages")[0:]
   * .count() -> 4 */
  q = dorm_select(JWriter);
  dorm_order_by(q, "novels__pages");
  dorm_slice(q, 0, -1);
  assert_int_equal(t_count(dorm_async_count(DB, q)), 4);
  dorm_query_free(q);
  /* distinct: Writer.distinct().order_by("novels__pages")[0:10].count()
   * -> 8 (the ordering column is selected); without the slice Django
   * drops the ordering -> 4 */
  q = dorm_select(JWriter);
  dorm_distinct(q);
  dorm_order_by(q, "novels__pages");
  dorm_slice(q, 0, 10);
  assert_int_equal(t_count(dorm_async_count(DB, q)), 8);
  dorm_query_free(q);
  q = dorm_select(JWriter);
  dorm_distinct(q);
  dorm_order_by(q, "novels__pages");
  assert_int_equal(t_count(dorm_async_count(DB, q)), 4);
  dorm_query_free(q);
  /* exists() keeps DISTINCT: Writer.filter(novels__pages__gt=0)
   * .distinct()[3:4].exists() -> False, [2:4] -> True; and drops the
   * ordering: Writer.order_by("novels__pages")[5:].exists() -> False */
  q = dorm_select(JWriter);
  dorm_filter(q, "novels__pages__gt", dorm_int(0));
  dorm_distinct(q);
  dorm_slice(q, 3, 4);
  r = t_ok(dorm_async_exists(DB, q));
  assert_int_equal(r.u.value.v.u.b, 0);
  dorm_result_free(&r);
  dorm_query_free(q);
  q = dorm_select(JWriter);
  dorm_filter(q, "novels__pages__gt", dorm_int(0));
  dorm_distinct(q);
  dorm_slice(q, 2, 4);
  r = t_ok(dorm_async_exists(DB, q));
  assert_int_equal(r.u.value.v.u.b, 1);
  dorm_result_free(&r);
  dorm_query_free(q);
  q = dorm_select(JWriter);
  dorm_order_by(q, "novels__pages");
  dorm_slice(q, 5, -1);
  r = t_ok(dorm_async_exists(DB, q));
  assert_int_equal(r.u.value.v.u.b, 0);
  dorm_result_free(&r);
  dorm_query_free(q);
  /* an empty slice has no row: Writer.all()[1:1].exists() -> False */
  q = dorm_select(JWriter);
  dorm_slice(q, 1, 1);
  r = t_ok(dorm_async_exists(DB, q));
  assert_int_equal(r.u.value.v.u.b, 0);
  dorm_result_free(&r);
  dorm_query_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_multi_valued_outside_filters),
  };
  JS = dorm_schema_load_file("tests/data/novel_models.json", NULL);
  if (!JS) {
    fprintf(stderr, "cannot load tests/data/novel_models.json\n");
    return 1;
  }
  JWriter = dorm_schema_model(JS, "Writer");
  JNovel = dorm_schema_model(JS, "Novel");
  JTag = dorm_schema_model(JS, "Tag");
  int rc = dbsuite_main(tests);
  dorm_schema_free(JS);
  return rc;
}
