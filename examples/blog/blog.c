/* examples/blog/blog.c — dorm's async API on the embedded default, SQLite.
 *
 * Loads examples/blog/models.json, opens a database by URL, creates the
 * tables with the DDL compiler, inserts authors and entries, runs a few
 * filters and aggregates, prints the results and closes — every step a
 * deferred chained to the next, so the loop thread never waits.
 *
 *   blog [models.json] [database URL]
 *   (defaults: examples/blog/models.json, sqlite:///blog.db)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dorm.h"

static const dorm_schema *schema;
static const dorm_model *Author, *Entry;
static dorm_db *db;
static int status = 1;

/* Every step is a callback: it reads the previous result and returns the
 * next request's deferred, so the chain waits for it (dorm/deferred.h). */
static dorm_result next(dorm_deferred *d) {
  return d ? dorm_result_deferred(d) : dorm_result_error(DORM_ENOMEM, NULL);
}

static dorm_result insert_authors(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  static const char *const names[] = {"Ann", "Bob", "Cid"};
  static const int ages[] = {34, 27, 51};
  dorm_query *q = dorm_insert(Author);
  for (int i = 0; i < 3; i++) {
    char email[64];
    snprintf(email, sizeof email, "%s@example.org", names[i]);
    if (i) dorm_insert_next_row(q);
    dorm_set(q, "name", dorm_str(names[i]));
    dorm_set(q, "email", dorm_str(email)); /* copied: email may go */
    dorm_set(q, "age", dorm_int(ages[i]));
    dorm_set(q, "joined", dorm_datetime("2024-05-01T09:00:00+02:00"));
  }
  dorm_deferred *d = dorm_async_bulk_create(db, q);
  dorm_query_free(q); /* the call compiled what it needs */
  return next(d);
}

static dorm_result list_authors(dorm_result *res, void *arg) {
  (void)arg;
  printf("inserted %lld authors\n", (long long)res->u.count);
  dorm_query *q = dorm_select(Author); /* ordered by name (models.json) */
  dorm_deferred *d = dorm_async_filter(db, q);
  dorm_query_free(q);
  return next(d);
}

static dorm_result insert_entries(dorm_result *res, void *arg) {
  (void)arg;
  const dorm_rows *authors = dorm_result_rows_of(res);
  dorm_query *q = dorm_insert(Entry);
  for (size_t i = 0; i < dorm_rows_count(authors); i++) {
    const dorm_row *a = dorm_rows_row(authors, i);
    for (int k = 0; k < 2; k++) {
      char headline[128];
      snprintf(headline, sizeof headline, "%s's post #%d",
               dorm_row_text(a, "name"), k + 1);
      if (i || k) dorm_insert_next_row(q);
      dorm_set(q, "author", dorm_int(dorm_row_int(a, "id")));
      dorm_set(q, "headline", dorm_str(headline));
      dorm_set(q, "rating", dorm_float(1.5 + (double)i + k));
      dorm_set(q, "tags", dorm_json_text(k ? "[\"c\", \"async\"]" : "[]"));
    }
  }
  dorm_deferred *d = dorm_async_bulk_create(db, q);
  dorm_query_free(q);
  return next(d);
}

static dorm_result good_entries(dorm_result *res, void *arg) {
  (void)arg;
  printf("inserted %lld entries\n", (long long)res->u.count);
  dorm_query *q = dorm_select(Entry);
  dorm_filter(q, "rating__gte", dorm_float(3));
  dorm_filter(q, "author__age__lt", dorm_int(50));
  dorm_select_related(q, "author"); /* one query, related rows filled */
  dorm_order_by(q, "-rating");
  dorm_deferred *d = dorm_async_filter(db, q);
  dorm_query_free(q);
  return next(d);
}

static dorm_result print_entries(dorm_result *res, void *arg) {
  (void)arg;
  const dorm_rows *rows = dorm_result_rows_of(res);
  printf("entries rated 3 or more by authors under 50:\n");
  for (size_t i = 0; i < dorm_rows_count(rows); i++) {
    const dorm_row *e = dorm_rows_row(rows, i);
    const dorm_row *a = dorm_row_related(e, "author");
    printf("  %-16s by %s (joined %s), rating %.1f\n",
           dorm_row_text(e, "headline"), dorm_row_text(a, "name"),
           dorm_row_text(a, "joined"), dorm_row_float(e, "rating"));
  }
  json_t *j = dorm_row_to_json(dorm_rows_row(rows, 0));
  char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  printf("first as JSON: %s\n", s);
  free(s);
  json_decref(j);
  dorm_query *q = dorm_select(Entry);
  dorm_aggregate(q, "entries", DORM_AGG_COUNT, "*");
  dorm_aggregate(q, "avg_rating", DORM_AGG_AVG, "rating");
  dorm_aggregate(q, "best", DORM_AGG_MAX, "rating");
  dorm_deferred *d = dorm_async_aggregate(db, q);
  dorm_query_free(q);
  return next(d);
}

static dorm_result print_stats(dorm_result *res, void *arg) {
  (void)arg;
  const dorm_row *r = dorm_result_row_of(res);
  printf("%lld entries, average rating %.2f, best %.1f\n",
         (long long)dorm_row_int(r, "entries"), dorm_row_float(r, "avg_rating"),
         dorm_row_float(r, "best"));
  dorm_kv look[] = {{"email", dorm_str("dee@example.org")}};
  dorm_kv defaults[] = {{"name", dorm_str("Dee")}, {"age", dorm_int(40)}};
  return next(dorm_async_get_or_create(db, Author, look, 1, defaults, 2));
}

static dorm_result print_created(dorm_result *res, void *arg) {
  (void)arg;
  const dorm_row *r = dorm_result_row_of(res);
  printf("get_or_create: %s (id %lld, %s)\n", dorm_row_text(r, "name"),
         (long long)dorm_row_int(r, "id"),
         dorm_row_created(r) ? "created" : "found");
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "entries__rating__gt", dorm_float(4));
  dorm_distinct(q);
  dorm_deferred *d = dorm_async_count(db, q);
  dorm_query_free(q);
  return next(d);
}

static dorm_result print_count(dorm_result *res, void *arg) {
  (void)arg;
  printf("authors with an entry rated above 4: %lld\n",
         (long long)res->u.count);
  status = 0;
  return dorm_result_none();
}

static dorm_result on_error(dorm_result *res, void *arg) {
  (void)arg;
  fprintf(stderr, "blog: error: %s: %s\n", dorm_err_name(dorm_result_code(res)),
          dorm_result_message(res));
  return dorm_result_none();
}

static dorm_result close_db(dorm_result *res, void *arg) {
  (void)arg;
  dorm_db_close(db, NULL, NULL); /* the loop ends once it has closed */
  return *res;
}

/* The DDL of both models, as one list of statements. */
static dorm_deferred *create_tables(void) {
  dorm_ddl a, e;
  dorm_ddl_init(&a);
  dorm_ddl_init(&e);
  dorm_error err;
  dorm_error_clear(&err);
  if (dorm_ddl_create_model(Author, NULL, 0, dorm_db_dialect(db), &a, &err) ||
      dorm_ddl_create_model(Entry, NULL, 0, dorm_db_dialect(db), &e, &err)) {
    fprintf(stderr, "blog: %s\n", err.message);
    return NULL;
  }
  const char *stmts[32];
  size_t n = 0;
  for (size_t i = 0; i < a.n && n < 32; i++) stmts[n++] = a.stmts[i];
  for (size_t i = 0; i < e.n && n < 32; i++) stmts[n++] = e.stmts[i];
  dorm_deferred *d = dorm_async_execute_many(db, stmts, n); /* copied */
  dorm_ddl_free(&a);
  dorm_ddl_free(&e);
  return d;
}

int main(int argc, char **argv) {
  const char *models = argc > 1 ? argv[1] : "examples/blog/models.json";
  const char *url = argc > 2 ? argv[2] : "sqlite:///blog.db";
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_file(models, &err);
  if (!s) {
    fprintf(stderr, "blog: %s\n", err.message);
    return 1;
  }
  schema = s;
  Author = dorm_schema_model(schema, "Author");
  Entry = dorm_schema_model(schema, "Entry");

  uv_loop_t uv;
  uv_loop_init(&uv);
  dorm_loop *loop = dorm_loop_new(&uv);
  db = dorm_db_open(loop, url, NULL, &err);
  if (!db) {
    fprintf(stderr, "blog: %s\n", err.message);
    return 1;
  }
  printf("database: %s (%s)\n", url, dorm_db_backend_name(db));
  dorm_deferred *d = create_tables();
  if (!d) return 1;
  dorm_deferred_add_callback(d, insert_authors, NULL);
  dorm_deferred_add_callback(d, list_authors, NULL);
  dorm_deferred_add_callback(d, insert_entries, NULL);
  dorm_deferred_add_callback(d, good_entries, NULL);
  dorm_deferred_add_callback(d, print_entries, NULL);
  dorm_deferred_add_callback(d, print_stats, NULL);
  dorm_deferred_add_callback(d, print_created, NULL);
  dorm_deferred_add_callback(d, print_count, NULL);
  dorm_deferred_add_errback(d, on_error, NULL);
  dorm_deferred_add_both(d, close_db, NULL);

  uv_run(&uv, UV_RUN_DEFAULT); /* returns when the db has closed */
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  uv_loop_close(&uv);
  dorm_schema_free(s);
  return status;
}
