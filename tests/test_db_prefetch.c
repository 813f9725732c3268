/* SPDX-License-Identifier: MIT */
/* tests/test_db_prefetch.c — the database facade on every backend,
 * prefetch_related: every relation kind, long key lists, one query per level,
 * and the errors.
 *
 * tests/dbsuite.h runs every test once per backend (SQLite file and
 * memory, PostgreSQL, and through replicas and PgBouncer when the run has
 * the cluster).
 */
#include "dbsuite.h"

/* ---- prefetch_related --------------------------------------------------- */

/* The headlines (or names) of a prefetched relation, joined by ','. */
static const char *pf_names(const dorm_rows *rows, const char *col) {
  static char buf[512];
  buf[0] = '\0';
  assert_non_null(rows);
  for (size_t i = 0; i < dorm_rows_count(rows); i++) {
    size_t n = strlen(buf);
    snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "",
             dorm_row_text(dorm_rows_row(rows, i), col));
  }
  return buf;
}

/* Django's prefetch_related: each relation kind, empty relations, and
 * prefetch beside a filter, a slice, select_related, get and first. */
static void test_prefetch_related(void **state) {
  (void)state;
  int64_t ann = add_author("Ann", 30, NULL), bob = add_author("Bob", 40, NULL);
  int64_t cid = add_author("Cid", 50, NULL);
  int64_t e1 = add_entry(ann, bob, "a1", 1), e2 = add_entry(ann, 0, "a2", 2);
  int64_t e3 = add_entry(bob, 0, "b1", 3);
  int64_t tx = add_tag("x"), ty = add_tag("y");
  add_tag("z"); /* on no entry */
  dorm_value both[] = {dorm_int(tx), dorm_int(ty)};
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e1), both, 2)), 2);
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e3), both + 1, 1)),
      1);

  /* reverse foreign key, and a second relation in the same call */
  dorm_query *q = dorm_select(Author);
  dorm_order_by(q, "name");
  assert_int_equal(dorm_prefetch_related(q, "entries"), 0);
  assert_int_equal(dorm_prefetch_related(q, "edited"), 0);
  assert_int_equal(dorm_prefetch_related(q, "entries"), 0); /* once */
  dorm_result r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  const dorm_rows *rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_count(rows), 3);
  const dorm_row *a = dorm_rows_row(rows, 0);
  const dorm_rows *ents = dorm_row_prefetched(a, "entries");
  assert_string_equal(pf_names(ents, "headline"), "a1,a2");
  /* typed by Entry like any rows: fields, the foreign key, pk */
  assert_int_equal(dorm_rows_ncolumns(ents), 5);
  assert_int_equal(dorm_row_int(dorm_rows_row(ents, 0), "author_id"), ann);
  assert_int_equal(dorm_row_int(dorm_rows_row(ents, 1), "pk"), e2);
  assert_true(dorm_row_float(dorm_rows_row(ents, 1), "rating") == 2.0);
  assert_int_equal(dorm_rows_count(dorm_row_prefetched(a, "edited")), 0);
  const dorm_row *b = dorm_rows_row(rows, 1);
  assert_string_equal(pf_names(dorm_row_prefetched(b, "entries"), "headline"),
                      "b1");
  assert_string_equal(pf_names(dorm_row_prefetched(b, "edited"), "headline"),
                      "a1");
  /* no entries: empty rows, not NULL; a name not prefetched: NULL */
  const dorm_row *c = dorm_rows_row(rows, 2);
  assert_int_equal(dorm_row_int(c, "id"), cid);
  assert_non_null(dorm_row_prefetched(c, "entries"));
  assert_int_equal(dorm_rows_count(dorm_row_prefetched(c, "entries")), 0);
  assert_null(dorm_row_prefetched(c, "nope"));
  assert_null(dorm_rows_row(dorm_row_prefetched(c, "entries"), 0));
  /* JSON: the relations nest as lists */
  json_t *j = dorm_row_to_json(a);
  json_t *je = json_object_get(j, "entries");
  assert_true(json_is_array(je));
  assert_int_equal(json_array_size(je), 2);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(je, 1), "headline")),
      "a2");
  assert_int_equal(json_array_size(json_object_get(j, "edited")), 0);
  json_decref(j);
  dorm_result_free(&r);

  /* many_to_many, forward: tags of each entry, a tag once per entry */
  q = dorm_select(Entry);
  dorm_order_by(q, "headline");
  dorm_prefetch_related(q, "tags");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_count(rows), 3);
  const dorm_rows *tags = dorm_row_prefetched(dorm_rows_row(rows, 0), "tags");
  assert_string_equal(pf_names(tags, "name"), "x,y");
  /* the source key the query read to match them is not a column */
  assert_int_equal(dorm_rows_ncolumns(tags), 2);
  assert_null(dorm_row_value(dorm_rows_row(tags, 0), "entry"));
  assert_int_equal(dorm_rows_column_index(tags, "entry"), -1);
  j = dorm_row_to_json(dorm_rows_row(tags, 0));
  assert_int_equal(json_object_size(j), 2);
  json_decref(j);
  assert_int_equal(
      dorm_rows_count(dorm_row_prefetched(dorm_rows_row(rows, 1), "tags")), 0);
  assert_string_equal(
      pf_names(dorm_row_prefetched(dorm_rows_row(rows, 2), "tags"), "name"),
      "y");
  dorm_result_free(&r);

  /* many_to_many, reverse: entries of each tag, by the reverse name */
  q = dorm_select(Tag);
  dorm_order_by(q, "name");
  dorm_prefetch_related(q, "entry");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_count(rows), 3);
  assert_string_equal(
      pf_names(dorm_row_prefetched(dorm_rows_row(rows, 0), "entry"),
               "headline"),
      "a1");
  assert_string_equal(
      pf_names(dorm_row_prefetched(dorm_rows_row(rows, 1), "entry"),
               "headline"),
      "a1,b1");
  assert_int_equal(
      dorm_rows_count(dorm_row_prefetched(dorm_rows_row(rows, 2), "entry")), 0);
  dorm_result_free(&r);

  /* forward foreign keys: one row each, none for a NULL key; with a
   * filter and a slice on the main query, and select_related beside */
  q = dorm_select(Entry);
  dorm_filter(q, "rating__gte", dorm_int(1));
  dorm_order_by(q, "headline");
  dorm_slice(q, 0, 2); /* a1, a2 */
  dorm_select_related(q, "author");
  dorm_prefetch_related(q, "editor");
  dorm_prefetch_related(q, "author");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_count(rows), 2);
  const dorm_row *r0 = dorm_rows_row(rows, 0), *r1 = dorm_rows_row(rows, 1);
  assert_string_equal(pf_names(dorm_row_prefetched(r0, "editor"), "name"),
                      "Bob");
  assert_int_equal(dorm_rows_count(dorm_row_prefetched(r1, "editor")), 0);
  assert_string_equal(pf_names(dorm_row_prefetched(r1, "author"), "name"),
                      "Ann");
  assert_string_equal(dorm_row_text(dorm_row_related(r0, "author"), "name"),
                      "Ann");
  /* a select_related row has no prefetched relations of its own */
  assert_null(dorm_row_prefetched(dorm_row_related(r0, "author"), "editor"));
  /* JSON: a prefetched foreign key is the object, or null */
  j = dorm_row_to_json(r1);
  assert_true(json_is_null(json_object_get(j, "editor")));
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(j, "author"), "name")),
      "Ann");
  json_decref(j);
  dorm_result_free(&r);

  /* a main query with no rows runs no related query and gives none */
  q = dorm_select(Author);
  dorm_filter(q, "name", dorm_str("nobody"));
  dorm_prefetch_related(q, "entries");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  assert_int_equal(dorm_rows_count(dorm_result_rows_of(&r)), 0);
  dorm_result_free(&r);

  /* nested: Author.entries, then the tags of those entries, then the
   * entries of those tags; each level's rows carry the next level */
  q = dorm_select(Author);
  dorm_order_by(q, "name");
  assert_int_equal(dorm_prefetch_related(q, "entries__tags__entry"), 0);
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  rows = dorm_result_rows_of(&r);
  a = dorm_rows_row(rows, 0);
  ents = dorm_row_prefetched(a, "entries");
  assert_string_equal(pf_names(ents, "headline"), "a1,a2");
  const dorm_row *a1 = dorm_rows_row(ents, 0);
  assert_string_equal(pf_names(dorm_row_prefetched(a1, "tags"), "name"), "x,y");
  assert_null(dorm_row_prefetched(a, "tags")); /* not on the authors */
  assert_int_equal(
      dorm_rows_count(dorm_row_prefetched(dorm_rows_row(ents, 1), "tags")), 0);
  const dorm_row *ty_row = dorm_rows_row(dorm_row_prefetched(a1, "tags"), 1);
  assert_string_equal(
      pf_names(dorm_row_prefetched(ty_row, "entry"), "headline"), "a1,b1");
  b = dorm_rows_row(rows, 1);
  const dorm_row *b1 = dorm_rows_row(dorm_row_prefetched(b, "entries"), 0);
  assert_string_equal(pf_names(dorm_row_prefetched(b1, "tags"), "name"), "y");
  /* JSON nests every level */
  j = dorm_row_to_json(a);
  json_t *tj =
      json_object_get(json_array_get(json_object_get(j, "entries"), 0), "tags");
  assert_int_equal(json_array_size(tj), 2);
  assert_int_equal(
      json_array_size(json_object_get(json_array_get(tj, 1), "entry")), 2);
  json_decref(j);
  dorm_result_free(&r);
  /* a forward foreign key under a reverse one, and a level under rows
   * that have none */
  q = dorm_select(Author);
  dorm_order_by(q, "name");
  dorm_prefetch_related(q, "edited__author");
  dorm_prefetch_related(q, "entries__editor");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  rows = dorm_result_rows_of(&r);
  b = dorm_rows_row(rows, 1); /* Bob edited a1, by Ann */
  const dorm_rows *ed = dorm_row_prefetched(b, "edited");
  assert_string_equal(pf_names(ed, "headline"), "a1");
  assert_string_equal(
      pf_names(dorm_row_prefetched(dorm_rows_row(ed, 0), "author"), "name"),
      "Ann");
  ents = dorm_row_prefetched(dorm_rows_row(rows, 0), "entries");
  assert_string_equal(
      pf_names(dorm_row_prefetched(dorm_rows_row(ents, 0), "editor"), "name"),
      "Bob");
  assert_int_equal(
      dorm_rows_count(dorm_row_prefetched(dorm_rows_row(ents, 1), "editor")),
      0);
  dorm_result_free(&r);

  /* get and first */
  q = dorm_select(Author);
  dorm_filter(q, "pk", dorm_int(bob));
  dorm_prefetch_related(q, "entries");
  r = t_ok(dorm_async_get(DB, q));
  assert_int_equal(r.kind, DORM_RESULT_ROW);
  assert_string_equal(
      pf_names(dorm_row_prefetched(r.u.row.row, "entries"), "headline"), "b1");
  dorm_result_free(&r);
  dorm_query_free(q);
  q = dorm_select(Entry);
  dorm_prefetch_related(q, "tags");
  r = t_ok(dorm_async_first(DB, q));
  assert_int_equal(dorm_row_int(r.u.row.row, "id"), e1);
  assert_string_equal(
      pf_names(dorm_row_prefetched(r.u.row.row, "tags"), "name"), "x,y");
  dorm_result_free(&r);
  dorm_query_free(q);
  (void)e3;
}

/* More parent keys than one related query takes: the keys go in chunks,
 * and every parent still gets its rows, in order. */
static void test_prefetch_related_long(void **state) {
  (void)state;
  enum { N = 1300 };
  dorm_query *q = dorm_insert(Author);
  for (int i = 0; i < N; i++) {
    char name[16];
    if (i) dorm_insert_next_row(q);
    snprintf(name, sizeof name, "au%04d", i);
    dorm_set(q, "name", dorm_str(name));
  }
  assert_int_equal(t_count(dorm_async_bulk_create(DB, q)), N);
  dorm_query_free(q);
  q = dorm_select(Author);
  dorm_order_by(q, "name");
  int64_t *ids = calloc(N, sizeof *ids);
  assert_non_null(ids);
  dorm_result r = t_ok(dorm_async_filter(DB, q));
  for (size_t i = 0; i < N; i++)
    ids[i] = dorm_row_int(dorm_rows_row(dorm_result_rows_of(&r), i), "id");
  dorm_result_free(&r);
  /* every 7th author gets two entries, headed by the author's place */
  dorm_query *ins = dorm_insert(Entry);
  int first = 1, nentries = 0;
  for (int i = 0; i < N; i += 7)
    for (int k = 0; k < 2; k++) {
      char h[32];
      if (!first) dorm_insert_next_row(ins);
      first = 0;
      snprintf(h, sizeof h, "%d.%d", i, k);
      dorm_set(ins, "author", dorm_int(ids[i]));
      dorm_set(ins, "headline", dorm_str(h));
      nentries++;
    }
  assert_int_equal(t_count(dorm_async_bulk_create(DB, ins)), nentries);
  dorm_query_free(ins);
  dorm_prefetch_related(q, "entries");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  const dorm_rows *rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_count(rows), N);
  size_t seen = 0;
  for (int i = 0; i < N; i++) {
    const dorm_rows *e =
        dorm_row_prefetched(dorm_rows_row(rows, (size_t)i), "entries");
    assert_non_null(e);
    if (i % 7) {
      assert_int_equal(dorm_rows_count(e), 0);
      continue;
    }
    char want[64];
    snprintf(want, sizeof want, "%d.0,%d.1", i, i);
    assert_string_equal(pf_names(e, "headline"), want);
    seen += dorm_rows_count(e);
  }
  assert_int_equal(seen, (size_t)nentries);
  dorm_result_free(&r);

  /* many_to_many: every tag on one entry (1,300 keys on the Tag side) */
  int64_t e = add_entry(ids[0], 0, "all", 1);
  int64_t odd = add_entry(ids[1], 0, "odd", 1);
  q = dorm_insert(Tag);
  for (int i = 0; i < N; i++) {
    char name[16];
    if (i) dorm_insert_next_row(q);
    snprintf(name, sizeof name, "tag%04d", i);
    dorm_set(q, "name", dorm_str(name));
  }
  assert_int_equal(t_count(dorm_async_bulk_create(DB, q)), N);
  dorm_query_free(q);
  q = dorm_select(Tag);
  dorm_order_by(q, "name");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_value *tv = calloc(N, sizeof *tv);
  assert_non_null(tv);
  for (size_t i = 0; i < N; i++)
    tv[i] =
        dorm_int(dorm_row_int(dorm_rows_row(dorm_result_rows_of(&r), i), "id"));
  dorm_result_free(&r);
  assert_int_equal(
      t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(e), tv, N)), N);
  dorm_value odds[N / 2];
  for (int i = 0; i < N / 2; i++) odds[i] = tv[2 * i + 1];
  assert_int_equal(t_count(dorm_async_m2m_add(DB, Entry, "tags", dorm_int(odd),
                                              odds, N / 2)),
                   N / 2);
  /* with a level under it: the entries' authors, whose parents (1,950
   * entry rows) come from several related queries */
  dorm_prefetch_related(q, "entry__author");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_count(rows), N);
  for (size_t i = 0; i < N; i++) {
    const dorm_rows *es = dorm_row_prefetched(dorm_rows_row(rows, i), "entry");
    assert_string_equal(pf_names(es, "headline"), i % 2 ? "all,odd" : "all");
    for (size_t k = 0; k < dorm_rows_count(es); k++)
      assert_string_equal(
          pf_names(dorm_row_prefetched(dorm_rows_row(es, k), "author"), "name"),
          k ? "au0001" : "au0000");
  }
  dorm_result_free(&r);
  /* and the other way: one entry, 1,300 related rows in name order */
  q = dorm_select(Entry);
  dorm_filter(q, "pk", dorm_int(e));
  dorm_prefetch_related(q, "tags");
  r = t_ok(dorm_async_get(DB, q));
  dorm_query_free(q);
  const dorm_rows *tags = dorm_row_prefetched(r.u.row.row, "tags");
  assert_int_equal(dorm_rows_count(tags), N);
  assert_string_equal(dorm_row_text(dorm_rows_row(tags, N - 1), "name"),
                      "tag1299");
  dorm_result_free(&r);
  free(tv);
  free(ids);
}

/* 1 + one query per relation, whatever the number of rows: counted in
 * PostgreSQL's own statement log (log_statement=all on a second handle
 * on the test's schema; the log is the one tests/pg_harness.sh writes).
 * Only on the suite's own server: skipped elsewhere. */
static void test_prefetch_related_queries(void **state) {
  (void)state;
  const char *sock = getenv("DORM_TEST_PGSOCK");
  char *opt = strstr(T_url, "options='-csearch_path=");
  if (!sock || !opt || B->url != pg_url) {
    fprintf(stderr, "(no PostgreSQL statement log here: skipped)\n");
    return;
  }
  char logpath[PATH_MAX], url[1200];
  snprintf(logpath, sizeof logpath, "%s/server.log", sock);
  /* the same URL, its options quote closed after -clog_statement=all */
  size_t quote = strlen(T_url) - 1;
  assert_int_equal(T_url[quote], '\'');
  snprintf(url, sizeof url, "%.*s -clog_statement=all'", (int)quote, T_url);
  for (int i = 0; i < 30; i++) {
    char name[16];
    snprintf(name, sizeof name, "log%02d", i);
    int64_t a = add_author(name, 20 + i, NULL);
    add_entry(a, i % 2 ? a : 0, "logged", i);
  }
  dorm_db *db = t_open_ready(url, NULL);
  char *log = dorm_test_read_file(logpath);
  assert_non_null(log);
  size_t from = strlen(log);
  free(log);
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "name__startswith", dorm_str("log"));
  dorm_prefetch_related(q, "entries__tags");
  dorm_prefetch_related(q, "edited");
  dorm_result r = t_await(dorm_async_filter(db, q));
  dorm_query_free(q);
  size_t nrows = dorm_rows_count(dorm_result_rows_of(&r));
  dorm_result_free(&r);
  /* the log is written by the server's processes: wait for the lines */
  int n = 0;
  for (int i = 0; i < 200 && n < 4; i++) {
    log = dorm_test_read_file(logpath);
    n = dorm_test_count_from(log, from, "SELECT ");
    free(log);
    if (n < 4) usleep(10000);
  }
  usleep(100000); /* and for any that would come late */
  /* close the second handle before checking: a failed check must not
   * leave it open under teardown's loop */
  dorm_db_close(db, t_db_closed_cb, NULL);
  while (!T_db_closed) uv_run(&T_uv, UV_RUN_ONCE);
  T_db_closed = 0; /* teardown counts DB's */
  log = dorm_test_read_file(logpath);
  assert_int_equal(nrows, 30);
  /* authors, their entries, the entries' tags, the entries they edited */
  assert_int_equal(dorm_test_count_from(log, from, "SELECT "), 4);
  assert_int_equal(dorm_test_count_from(log, from, "FROM \"author\""), 1);
  assert_int_equal(
      dorm_test_count_from(log, from, "\"entry\".\"author_id\" IN ("), 1);
  assert_int_equal(dorm_test_count_from(log, from, "FROM \"tag\" INNER JOIN"),
                   1);
  assert_int_equal(
      dorm_test_count_from(log, from, "\"entry\".\"editor_id\" IN ("), 1);
  free(log);
}

static int g_pf_fired;
static dorm_result pf_count_fired(dorm_result *res, void *arg) {
  (void)arg;
  g_pf_fired++;
  return *res;
}

/* In a transaction: add an entry to Ann (arg: her id), then read her
 * with her entries; requests on tx run in order, so the related query
 * sees the new entry. */
static dorm_deferred *pf_in_tx(dorm_db *tx, void *arg) {
  dorm_query *q = dorm_insert(Entry);
  dorm_set(q, "author", dorm_int(*(int64_t *)arg));
  dorm_set(q, "headline", dorm_str("in tx"));
  dorm_deferred *d = dorm_async_create(tx, q);
  dorm_query_free(q);
  if (!d) return NULL;
  q = dorm_select(Author);
  dorm_filter(q, "pk", dorm_int(*(int64_t *)arg));
  dorm_prefetch_related(q, "entries");
  d = dorm_async_get(tx, q);
  dorm_query_free(q);
  return d;
}

/* prefetch_related's failures: a refused relation, a related query that
 * fails, a database closed while the related query runs; each fires the
 * deferred's errback once.  And inside a transaction it sees the
 * transaction's rows. */
static void test_prefetch_related_errors(void **state) {
  (void)state;
  int64_t ann = add_author("Ann", 30, NULL);
  add_entry(ann, 0, "a1", 1);
  char msg[256];
  /* the builder's refusal arrives through the errback */
  dorm_query *q = dorm_select(Author);
  assert_int_equal(dorm_prefetch_related(q, "entriez"), DORM_EFIELD);
  assert_int_equal(t_err(dorm_async_filter(DB, q), msg, sizeof msg),
                   DORM_EFIELD);
  assert_non_null(strstr(msg, "'entriez'"));
  dorm_query_free(q);

  /* in a transaction: the related query runs on it and sees its rows */
  dorm_result r = t_ok(dorm_async_atomic(DB, pf_in_tx, &ann));
  assert_string_equal(
      pf_names(dorm_row_prefetched(r.u.row.row, "entries"), "headline"),
      "a1,in tx");
  dorm_result_free(&r);

  /* the related query fails (its table is gone): the call fails with its
   * error, once */
  r = t_ok(dorm_async_execute(DB, "DROP TABLE entry_tags", NULL, 0));
  dorm_result_free(&r);
  r = t_ok(dorm_async_execute(DB, "DROP TABLE entry", NULL, 0));
  dorm_result_free(&r);
  q = dorm_select(Author);
  dorm_prefetch_related(q, "entries");
  g_pf_fired = 0;
  dorm_deferred *d = dorm_async_filter(DB, q);
  dorm_deferred_add_both(d, pf_count_fired, NULL);
  assert_int_equal(t_err(d, msg, sizeof msg), DORM_EDB);
  assert_int_equal(g_pf_fired, 1);

  /* closed while the related query is out: ECLOSED, once */
  g_pf_fired = 0;
  dorm_query_free(q);
  q = dorm_select(Author);
  dorm_prefetch_related(q, "edited"); /* on Entry: the table is gone, so
                                         an answer would be an error too */
  d = dorm_async_filter(DB, q);
  dorm_query_free(q);
  dorm_deferred_retain(d);
  dorm_deferred_add_both(d, pf_count_fired, NULL);
  t_wait w = {0, dorm_result_none()};
  dorm_deferred_add_both(d, t_keep, &w);
  while (!dorm_deferred_fired(d)) uv_run(&T_uv, UV_RUN_ONCE);
  /* the main rows are in; the related query was sent from its step */
  assert_int_equal(w.done, 0);
  dorm_db_close(DB, t_db_closed_cb, NULL);
  assert_int_equal(w.done, 1);
  assert_int_equal(dorm_result_code(&w.res), DORM_ECLOSED);
  dorm_result_free(&w.res);
  dorm_deferred_release(d);
  uv_run(&T_uv, UV_RUN_DEFAULT);
  assert_int_equal(T_db_closed, 1);
  assert_int_equal(g_pf_fired, 1);
  DB = NULL;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_prefetch_related),
      T(test_prefetch_related_long),
      T(test_prefetch_related_errors),
      T(test_prefetch_related_queries),
  };
  return dbsuite_main(tests);
}
