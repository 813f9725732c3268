/* SPDX-License-Identifier: MIT */
/* tests/test_db_m2m.c — the database facade on every backend, many-to-many:
 * add/remove/clear/keep_only through the join table, long key lists, and
 * filters across multi-valued relations.
 *
 * tests/dbsuite.h runs every test once per backend (SQLite file and
 * memory, PostgreSQL, and through replicas and PgBouncer when the run has
 * the cluster).
 */
#include "dbsuite.h"

/* Tags of entry e, read across the relation from the Tag side. */
static int64_t tags_of(int64_t e) {
  dorm_query *q = dorm_select(Tag);
  dorm_filter(q, "entry__id", dorm_int(e));
  int64_t n = t_count(dorm_async_count(DB, q));
  dorm_query_free(q);
  return n;
}

/* The join row's id for (e, t), or 0. */
static int64_t pair_id(int64_t e, int64_t t) {
  char sql[160];
  snprintf(sql, sizeof sql,
           "SELECT id FROM entry_tags WHERE entry_id = %lld AND tag_id = %lld",
           (long long)e, (long long)t);
  dorm_result r = t_ok(dorm_async_execute(DB, sql, NULL, 0));
  const dorm_rows *rows = dorm_result_rows_of(&r);
  int64_t id =
      dorm_rows_count(rows) ? dorm_row_int(dorm_rows_row(rows, 0), "id") : 0;
  dorm_result_free(&r);
  return id;
}

static void test_many_to_many(void **state) {
  (void)state;
  int64_t a = add_author("Ann", 30, NULL);
  int64_t e1 = add_entry(a, 0, "one", 1), e2 = add_entry(a, 0, "two", 2);
  int64_t t[5];
  for (int i = 0; i < 5; i++) {
    char name[16];
    snprintf(name, sizeof name, "t%d", i);
    t[i] = add_tag(name);
  }
  dorm_value v[3] = {dorm_int(t[0]), dorm_int(t[1])};
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e1), v, 2)), 2);
  /* adding again keeps the pair (and its row): only t2 is new */
  int64_t kept = pair_id(e1, t[1]);
  assert_true(kept > 0);
  v[0] = dorm_int(t[1]);
  v[1] = dorm_int(t[2]);
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e1), v, 2)), 1);
  assert_int_equal(pair_id(e1, t[1]), kept);
  assert_int_equal(tags_of(e1), 3);
  assert_int_equal(tags_of(e2), 0);
  /* and from the Entry side */
  dorm_query *q = dorm_select(Entry);
  dorm_filter(q, "tags__name", dorm_str("t2"));
  dorm_result r = t_ok(dorm_async_get(DB, q));
  assert_int_equal(dorm_row_int(r.u.row.row, "id"), e1);
  dorm_result_free(&r);
  dorm_query_free(q);

  /* remove: only the pairs that exist count */
  v[0] = dorm_int(t[0]);
  v[1] = dorm_int(t[4]);
  assert_int_equal(
      t_count(dorm_async_m2m_remove(DB, Entry, "tags", dorm_int(e1), v, 2)), 1);
  assert_int_equal(tags_of(e1), 2); /* t1, t2 */

  /* set: t1 goes, t3 comes, t2 stays with its row */
  int64_t t2_row = pair_id(e1, t[2]);
  v[0] = dorm_int(t[2]);
  v[1] = dorm_int(t[3]);
  assert_int_equal(
      t_count(dorm_async_m2m_set(DB, Entry, "tags", dorm_int(e1), v, 2)), 2);
  assert_int_equal(pair_id(e1, t[1]), 0);
  assert_int_equal(pair_id(e1, t[2]), t2_row);
  assert_true(pair_id(e1, t[3]) > 0);
  assert_int_equal(tags_of(e1), 2);

  /* a key with no row: an integrity error, and nothing of the call stays */
  v[0] = dorm_int(t[4]);
  v[1] = dorm_int(987654);
  assert_int_equal(
      t_err(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e2), v, 2), NULL, 0),
      DORM_EINTEGRITY);
  assert_int_equal(tags_of(e2), 0);
  assert_int_equal(
      t_err(dorm_async_m2m_set(DB, Entry, "tags", dorm_int(e1), v, 2), NULL, 0),
      DORM_EINTEGRITY);
  assert_int_equal(tags_of(e1), 2); /* set's removal was rolled back */

  /* from Tag's side, by the reverse name (tag.entry_set.add in Django) */
  dorm_value es[] = {dorm_int(e1), dorm_int(e2)};
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Tag, "entry", dorm_int(t[4]), es, 2)), 2);
  assert_int_equal(tags_of(e1), 3);
  assert_int_equal(tags_of(e2), 1);
  assert_int_equal(
      t_count(dorm_async_m2m_clear(DB, Tag, "entry", dorm_int(t[4]))), 2);
  assert_int_equal(tags_of(e1), 2);
  assert_int_equal(tags_of(e2), 0);

  /* clear, and set to nothing */
  v[0] = dorm_int(t[0]);
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e2), v, 1)), 1);
  assert_int_equal(
      t_count(dorm_async_m2m_clear(DB, Entry, "tags", dorm_int(e2))), 1);
  assert_int_equal(
      t_count(dorm_async_m2m_set(DB, Entry, "tags", dorm_int(e1), NULL, 0)), 2);
  assert_int_equal(tags_of(e1), 0);
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e1), NULL, 0)), 0);

  /* deleting an entry takes its pairs with it (ON DELETE CASCADE) */
  v[0] = dorm_int(t[0]);
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e2), v, 1)), 1);
  q = dorm_delete(Entry);
  dorm_filter(q, "pk", dorm_int(e2));
  r = t_ok(dorm_async_delete(DB, q));
  dorm_result_free(&r);
  dorm_query_free(q);
  assert_int_equal(pair_id(e2, t[0]), 0);

  /* refusals arrive through the errback, naming what was wrong */
  char msg[256];
  v[0] = dorm_str("t0");
  assert_int_equal(
      t_err(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e1), v, 1), msg,
            sizeof msg),
      DORM_ETYPE);
  assert_non_null(strstr(msg, "many_to_many 'tags': key 1 of 1"));
  assert_int_equal(
      t_err(dorm_async_m2m_clear(DB, Entry, "author", dorm_int(e1)), msg,
            sizeof msg),
      DORM_EFIELD);
  assert_non_null(strstr(msg, "field 'author'"));
  assert_int_equal(
      t_err(dorm_async_m2m_add(DB, Entry, "tags", dorm_null(), NULL, 0), msg,
            sizeof msg),
      DORM_ETYPE);
}

/* More targets than one statement takes: several statements in one
 * transaction, all or nothing. */
static void test_many_to_many_long(void **state) {
  (void)state;
  int64_t a = add_author("Ann", 30, NULL);
  int64_t e = add_entry(a, 0, "long", 1);
  enum { N = 1300 };
  dorm_query *q = dorm_insert(Tag);
  for (int i = 0; i < N; i++) {
    char name[16];
    if (i) dorm_insert_next_row(q);
    snprintf(name, sizeof name, "tag%d", i);
    dorm_set(q, "name", dorm_str(name));
  }
  assert_int_equal(t_count(dorm_async_bulk_create(DB, q)), N);
  dorm_query_free(q);
  q = dorm_select(Tag);
  dorm_order_by(q, "id");
  dorm_values(q, "id");
  dorm_result r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  const dorm_rows *rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_count(rows), N);
  static dorm_value ids[N + 1];
  for (int i = 0; i < N; i++)
    ids[i] = dorm_int(dorm_row_int(dorm_rows_row(rows, (size_t)i), "id"));
  dorm_result_free(&r);
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e), ids, N)), N);
  assert_int_equal(tags_of(e), N);
  /* the last chunk fails: the earlier chunks are rolled back too */
  assert_int_equal(
      t_count(dorm_async_m2m_clear(DB, Entry, "tags", dorm_int(e))), N);
  ids[N] = dorm_int(987654);
  assert_int_equal(
      t_err(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e), ids, N + 1),
            NULL, 0),
      DORM_EINTEGRITY);
  assert_int_equal(tags_of(e), 0);
  /* set to the first half, from all of them: removes the second half */
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e), ids, N)), N);
  assert_int_equal(
      t_count(dorm_async_m2m_set(DB, Entry, "tags", dorm_int(e), ids, N / 2)),
      N - N / 2);
  assert_int_equal(tags_of(e), N / 2);
  assert_int_equal(
      t_count(dorm_async_m2m_remove(DB, Entry, "tags", dorm_int(e), ids, N)),
      N / 2);
}

/* The ids of q's rows, ordered by id, into ids; returns how many. */
static size_t ids_of(dorm_query *q, int64_t *ids, size_t cap) {
  dorm_order_by(q, "id");
  dorm_values(q, "id");
  dorm_result r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  const dorm_rows *rows = dorm_result_rows_of(&r);
  size_t n = dorm_rows_count(rows);
  for (size_t i = 0; i < n && i < cap; i++)
    ids[i] = dorm_row_int(dorm_rows_row(rows, i), "id");
  dorm_result_free(&r);
  return n;
}

/* Django's "spanning multi-valued relationships": the conditions of one
 * filter() call are about the same related row, each call's about its
 * own row (a join per call). */
static void test_multi_valued_filters(void **state) {
  (void)state;
  int64_t ann = add_author("Ann", 30, NULL), bob = add_author("Bob", 40, NULL);
  int64_t ab = add_entry(ann, 0, "ab", 5), a_only = add_entry(ann, 0, "a", 1);
  int64_t b_only = add_entry(bob, 0, "b", 3);
  int64_t ta = add_tag("a"), tb = add_tag("b");
  dorm_value both[] = {dorm_int(ta), dorm_int(tb)};
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(ab), both, 2)), 2);
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(a_only), both, 1)),
      1);
  assert_int_equal(t_count(dorm_async_m2m_add(DB, Entry, "tags",
                                              dorm_int(b_only), both + 1, 1)),
                   1);
  int64_t ids[8];

  /* filter(tags__name="a").filter(tags__name="b"): tagged a and b */
  dorm_query *q = dorm_select(Entry);
  dorm_filter(q, "tags__name", dorm_str("a"));
  dorm_filter(q, "tags__name", dorm_str("b"));
  assert_int_equal(ids_of(q, ids, 8), 1);
  assert_int_equal(ids[0], ab);

  /* filter(Q(tags__name="a") & Q(tags__name="b")): one tag named both */
  q = dorm_select(Entry);
  dorm_filter_q(q, dorm_q_and(q, dorm_Q(q, "tags__name", dorm_str("a")),
                              dorm_Q(q, "tags__name", dorm_str("b"))));
  assert_int_equal(ids_of(q, ids, 8), 0);

  /* one call, one tag: either name */
  q = dorm_select(Entry);
  dorm_filter_q(q, dorm_q_or(q, dorm_Q(q, "tags__name", dorm_str("a")),
                             dorm_Q(q, "tags__name", dorm_str("b"))));
  assert_int_equal(ids_of(q, ids, 8), 4); /* ab twice, no DISTINCT */
  assert_int_equal(ids[0], ab);
  assert_int_equal(ids[1], ab);
  assert_int_equal(ids[2], a_only);
  assert_int_equal(ids[3], b_only);

  /* the other way round: tags on an entry both of Ann's and rated 3+ */
  q = dorm_select(Tag);
  dorm_filter_q(q,
                dorm_q_and(q, dorm_Q(q, "entry__author__name", dorm_str("Ann")),
                           dorm_Q(q, "entry__rating__gte", dorm_int(3))));
  assert_int_equal(ids_of(q, ids, 8), 2); /* a and b, through "ab" */
  assert_int_equal(ids[0], ta);
  assert_int_equal(ids[1], tb);
  /* tag b is on Bob's "b" and on "ab": two entries, two calls */
  q = dorm_select(Tag);
  dorm_filter(q, "entry__author__name", dorm_str("Bob"));
  dorm_filter(q, "entry__headline", dorm_str("ab"));
  assert_int_equal(ids_of(q, ids, 8), 1);
  assert_int_equal(ids[0], tb);
  q = dorm_select(Tag);
  dorm_filter_q(q,
                dorm_q_and(q, dorm_Q(q, "entry__author__name", dorm_str("Bob")),
                           dorm_Q(q, "entry__headline", dorm_str("ab"))));
  assert_int_equal(ids_of(q, ids, 8), 0);

  /* reverse foreign key: one entry of Ann's rated 5 and headed "a", or
   * one rated 5 and another headed "a" */
  q = dorm_select(Author);
  dorm_filter_q(q, dorm_q_and(q, dorm_Q(q, "entries__rating", dorm_int(5)),
                              dorm_Q(q, "entries__headline", dorm_str("a"))));
  assert_int_equal(ids_of(q, ids, 8), 0);
  q = dorm_select(Author);
  dorm_filter(q, "entries__rating", dorm_int(5));
  dorm_filter(q, "entries__headline", dorm_str("a"));
  assert_int_equal(ids_of(q, ids, 8), 1);
  assert_int_equal(ids[0], ann);
  /* get_or_create's lookups are one filter() call (Django's **kwargs),
   * about one entry: Ann's "ab" is rated 5... */
  dorm_kv look[] = {{"name", dorm_str("Ann")},
                    {"entries__rating", dorm_int(5)},
                    {"entries__headline", dorm_str("ab")}};
  dorm_result r = t_ok(dorm_async_get_or_create(DB, Author, look, 3, NULL, 0));
  assert_int_equal(dorm_row_created(r.u.row.row), 0);
  assert_int_equal(dorm_row_int(r.u.row.row, "id"), ann);
  dorm_result_free(&r);
  /* ...but none of her entries is both rated 5 and headed "a": a new Ann */
  look[2].value = dorm_str("a");
  r = t_ok(dorm_async_get_or_create(DB, Author, look, 3, NULL, 0));
  assert_int_equal(dorm_row_created(r.u.row.row), 1);
  assert_true(dorm_row_int(r.u.row.row, "id") != ann);
  dorm_result_free(&r);

  /* exclude beside a filter: tagged a, and no tag b */
  q = dorm_select(Entry);
  dorm_filter(q, "tags__name", dorm_str("a"));
  dorm_exclude(q, "tags__name", dorm_str("b"));
  assert_int_equal(ids_of(q, ids, 8), 1);
  assert_int_equal(ids[0], a_only);

  /* a delete with two calls removes only the entry tagged both */
  q = dorm_delete(Entry);
  dorm_filter(q, "tags__name", dorm_str("a"));
  dorm_filter(q, "tags__name", dorm_str("b"));
  assert_int_equal(t_count(dorm_async_delete(DB, q)), 1);
  dorm_query_free(q);
  q = dorm_select(Entry);
  assert_int_equal(ids_of(q, ids, 8), 2);
  assert_int_equal(ids[0], a_only);
  assert_int_equal(ids[1], b_only);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_many_to_many),
      T(test_many_to_many_long),
      T(test_multi_valued_filters),
  };
  return dbsuite_main(tests);
}
