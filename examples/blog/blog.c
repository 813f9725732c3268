/* SPDX-License-Identifier: MIT */
/* examples/blog/blog.c — seed the blog and query it, asynchronously: what
 * `make demo` runs on a fresh SQLite file.
 *
 *   blog [database URL] [models.json]
 *   (defaults: $DATABASE_URL, else sqlite:///db.sqlite3;
 *    examples/blog/models.json)
 *
 * The database must be migrated first (`dorm migrate --migrations
 * examples/blog/migrations`).  Then, each step a deferred chained to the
 * next so the loop thread never waits:
 *   1. four authors and four tags, eight dorm_async_create in flight at
 *      once, gathered (dorm_gather) to learn their ids;
 *   2. forty-eight entries in one dorm_async_bulk_create, then one raw
 *      statement that tags them (the join table Entry.tags);
 *   3. four queries in flight at once — a select_related, a lookup across
 *      the many-to-many, a GROUP BY annotation, an aggregate — each timed
 *      on its own, then gathered and printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dorm.h"

#define NAUTHORS 4
#define NTAGS 4
#define PER_AUTHOR 12

static const char *const author_names[NAUTHORS] = {"Ann", "Bob", "Cid", "Dee"};
static const char *const tag_names[NTAGS] = {"async", "c", "sql", "libuv"};
static const char *const topics[PER_AUTHOR] = {
    "Deferreds",     "Event loops",  "Prepared statements",
    "WAL mode",      "Pipelining",   "Migrations",
    "Joins",         "Aggregates",   "Savepoints",
    "LISTEN/NOTIFY", "Backpressure", "Thread pools"};

static dorm_loop *loop;
static dorm_db *db;
static const dorm_model *Author, *Entry, *Tag;
static uint64_t t_start;
static int status = 1;

static double ms_since(uint64_t t) { return (double)(uv_hrtime() - t) / 1e6; }

/* A callback returns the next request's deferred: the chain waits for it. */
static dorm_result next(dorm_deferred *d) {
  return d ? dorm_result_deferred(d) : dorm_result_error(DORM_ENOMEM, NULL);
}

/* ---- 1. authors and tags: eight creates at once ------------------------- */

static dorm_deferred *create_people(void) {
  dorm_deferred *ds[NAUTHORS + NTAGS];
  int ok = 1;
  dorm_query *q = dorm_insert(Author);
  for (int i = 0; i < NAUTHORS; i++) {
    char email[64];
    snprintf(email, sizeof email, "%s@example.org", author_names[i]);
    dorm_query_reset(q, DORM_QUERY_INSERT, Author);
    dorm_set(q, "name", dorm_str(author_names[i]));
    dorm_set(q, "email", dorm_str(email)); /* values are copied */
    dorm_set(q, "joined", dorm_datetime("2024-05-01T09:00:00Z"));
    ok &= (ds[i] = dorm_async_create(db, q)) != NULL; /* returns at once */
  }
  for (int i = 0; i < NTAGS; i++) {
    dorm_query_reset(q, DORM_QUERY_INSERT, Tag);
    dorm_set(q, "name", dorm_str(tag_names[i]));
    ok &= (ds[NAUTHORS + i] = dorm_async_create(db, q)) != NULL;
  }
  dorm_query_free(q);
  /* all eight are queued now; the gather fires when every one is in */
  return ok ? dorm_gather(loop, ds, NAUTHORS + NTAGS, 0) : NULL;
}

/* ---- 2. entries in one bulk create, then their tags --------------------- */

static dorm_result create_entries(dorm_result *res, void *arg) {
  printf(
      "seeded %d authors and %d tags: %d creates in flight at once, "
      "%.1f ms\n",
      NAUTHORS, NTAGS, NAUTHORS + NTAGS, ms_since(t_start));
  t_start = uv_hrtime();
  dorm_query *q = dorm_insert(Entry);
  for (int a = 0; a < NAUTHORS; a++) {
    /* the gathered results, in the order given: the created rows */
    const dorm_row *author = dorm_result_row_of(&res->u.list.items[a]);
    for (int k = 0; k < PER_AUTHOR; k++) {
      char headline[128], when[48];
      snprintf(headline, sizeof headline, "%s, part %d", topics[k], a + 1);
      snprintf(when, sizeof when, "2024-06-%02dT%02d:00:00Z", k + 1, 8 + a);
      if (a || k) dorm_insert_next_row(q);
      dorm_set(q, "author", dorm_int(dorm_row_int(author, "id")));
      dorm_set(q, "headline", dorm_str(headline));
      dorm_set(q, "rating",
               dorm_float(1 + (double)((a * 13 + k * 7) % 41) / 10));
      dorm_set(q, "published", dorm_datetime(when));
    }
  }
  dorm_deferred *d = dorm_async_bulk_create(db, q); /* one transaction */
  dorm_query_free(q);
  return next(d);
}

static dorm_result tag_entries(dorm_result *res, void *arg) {
  printf("seeded %lld entries (one bulk create)", (long long)res->u.count);
  /* dorm_async_m2m_add tags one entry (server.c uses it); one raw
   * statement tags every entry at once: each gets one or two tags (the
   * same SQL on SQLite and PostgreSQL). */
  return next(dorm_async_execute(
      db,
      "INSERT INTO entry_tags (entry_id, tag_id) SELECT entry.id, tag.id "
      "FROM entry, tag WHERE (entry.id + tag.id) % 3 = 0",
      NULL, 0));
}

/* ---- 3. four queries at once, each timed -------------------------------- */

typedef struct timed {
  const char *what;
  uint64_t start;
  double ms;
} timed;
static timed times[4];

/* A step on one query's own deferred: note when it finished and pass the
 * result on unchanged (to the gather). */
static dorm_result stamp(dorm_result *res, void *arg) {
  timed *t = arg;
  t->ms = ms_since(t->start);
  return *res;
}

static dorm_deferred *timed_query(int i, const char *what, dorm_deferred *d) {
  times[i].what = what;
  times[i].start = uv_hrtime();
  if (d && dorm_deferred_add_both(d, stamp, &times[i])) return NULL;
  return d;
}

static dorm_result run_queries(dorm_result *res, void *arg) {
  printf(" and tagged them (%lld links): %.1f ms\n", (long long)res->u.count,
         ms_since(t_start));
  t_start = uv_hrtime();
  dorm_deferred *ds[4];
  dorm_query *q = dorm_select(Entry);
  dorm_select_related(q, "author"); /* one JOIN, not a query per entry */
  dorm_slice(q, 0, 3);              /* ordered by -published (models) */
  ds[0] = timed_query(0, "latest entries, with their authors",
                      dorm_async_filter(db, q));

  dorm_query_reset(q, DORM_QUERY_SELECT, Entry);
  dorm_filter(q, "tags__name", dorm_str("async")); /* across entry_tags */
  ds[1] = timed_query(1, "entries tagged 'async'", dorm_async_count(db, q));

  dorm_query_reset(q, DORM_QUERY_SELECT, Author);
  dorm_annotate(q, "avg_rating", DORM_AGG_AVG, "entries__rating");
  dorm_order_by(q, "-avg_rating");
  ds[2] = timed_query(2, "authors by average rating", dorm_async_filter(db, q));

  dorm_query_reset(q, DORM_QUERY_SELECT, Entry);
  dorm_aggregate(q, "n", DORM_AGG_COUNT, "*");
  dorm_aggregate(q, "avg", DORM_AGG_AVG, "rating");
  dorm_aggregate(q, "best", DORM_AGG_MAX, "rating");
  ds[3] = timed_query(3, "all entries", dorm_async_aggregate(db, q));
  dorm_query_free(q);

  int ok = ds[0] && ds[1] && ds[2] && ds[3];
  return next(ok ? dorm_gather(loop, ds, 4, 0) : NULL);
}

static dorm_result print_results(dorm_result *res, void *arg) {
  double total = ms_since(t_start), sum = 0;
  const dorm_result *r = res->u.list.items;
  printf("4 queries in flight at once:\n");

  const dorm_rows *rows = dorm_result_rows_of(&r[0]);
  printf("  %5.2f ms  %s:\n", times[0].ms, times[0].what);
  for (size_t i = 0; i < dorm_rows_count(rows); i++) {
    const dorm_row *e = dorm_rows_row(rows, i);
    printf("             %-24s by %s, rating %.1f\n",
           dorm_row_text(e, "headline"),
           dorm_row_text(dorm_row_related(e, "author"), "name"),
           dorm_row_float(e, "rating"));
  }
  printf("  %5.2f ms  %s: %lld\n", times[1].ms, times[1].what,
         (long long)r[1].u.count);
  rows = dorm_result_rows_of(&r[2]);
  printf("  %5.2f ms  %s:", times[2].ms, times[2].what);
  for (size_t i = 0; i < dorm_rows_count(rows); i++) {
    const dorm_row *a = dorm_rows_row(rows, i);
    printf(" %s %.2f", dorm_row_text(a, "name"),
           dorm_row_float(a, "avg_rating"));
  }
  const dorm_row *agg = dorm_result_row_of(&r[3]);
  printf("\n  %5.2f ms  %s: %lld, average rating %.2f, best %.1f\n",
         times[3].ms, times[3].what, (long long)dorm_row_int(agg, "n"),
         dorm_row_float(agg, "avg"), dorm_row_float(agg, "best"));
  for (int i = 0; i < 4; i++) sum += times[i].ms;
  printf("  total %.2f ms for the four (%.2f ms added up one by one)\n", total,
         sum);
  status = 0;
  return dorm_result_none();
}

/* ---- the end of every path ---------------------------------------------- */

static dorm_result on_error(dorm_result *res, void *arg) {
  fprintf(stderr, "blog: error: %s: %s\n", dorm_err_name(dorm_result_code(res)),
          dorm_result_message(res));
  return dorm_result_none(); /* handled */
}

static dorm_result close_db(dorm_result *res, void *arg) {
  dorm_db_close(db, NULL, NULL); /* uv_run returns once it has closed */
  return *res;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : NULL; /* NULL: the default */
  const char *models = argc > 2 ? argv[2] : "examples/blog/models.json";
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *schema = dorm_schema_load_file(models, &err);
  if (!schema) {
    fprintf(stderr, "blog: %s\n", err.message);
    return 1;
  }
  Author = dorm_schema_model(schema, "Author");
  Entry = dorm_schema_model(schema, "Entry");
  Tag = dorm_schema_model(schema, "Tag");

  uv_loop_t uv;
  uv_loop_init(&uv);
  loop = dorm_loop_new(&uv);
  db = dorm_db_open(loop, url, NULL, &err); /* connects in the background */
  if (!db) {
    fprintf(stderr, "blog: %s\n", err.message);
    return 1;
  }
  t_start = uv_hrtime();
  dorm_deferred *d = create_people();
  if (!d) return 1;
  dorm_deferred_add_callback(d, create_entries, NULL);
  dorm_deferred_add_callback(d, tag_entries, NULL);
  dorm_deferred_add_callback(d, run_queries, NULL);
  dorm_deferred_add_callback(d, print_results, NULL);
  dorm_deferred_add_errback(d, on_error, NULL);
  dorm_deferred_add_both(d, close_db, NULL);

  uv_run(&uv, UV_RUN_DEFAULT); /* returns when the database has closed */
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  uv_loop_close(&uv);
  dorm_schema_free(schema);
  return status;
}
