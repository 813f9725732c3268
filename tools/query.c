/* SPDX-License-Identifier: MIT */
/* tools/query.c — `dorm query EXPRESSION`: a Django-style query on one
 * model, printed as SQL (--sql, no database), as an aligned table, or as
 * the JSON of the HTTP API (--json).
 *
 * The expression is parsed into builder calls (query_expr.c); the
 * terminal method picks the async call: count() -> dorm_async_count,
 * exists() -> dorm_async_exists, first() -> dorm_async_first, get() ->
 * dorm_async_get (not found and several found are errors, exit 1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/query_expr.h"

static const char usage[] =
    "usage: dorm query [--models FILE] [--db URL] [--sql] [--json] "
    "EXPRESSION\n";

static const char help[] =
    "\n"
    "Run a Django-style query on one model, e.g.\n"
    "  dorm query 'Author.filter(age__gte=18).exclude(name__startswith=\"A\")"
    ".order_by(\"-age\")[0:10]'\n"
    "\n"
    "methods: filter, exclude (lookups and Q(...) with | & ~ and\n"
    "parentheses), order_by, values, distinct(), all(), count(), exists(),\n"
    "first(), get(...), slices [a:b] and [n].  Literals: \"strings\" (JSON\n"
    "escapes), integers, decimals, True, False, None, lists [a, b].\n";

static const char after[] =
    "\n"
    "exit status: 0 done, 1 error (get() finding no row or several\n"
    "included), 2 usage error\n";

/* Apply the terminal to the query for --sql (the async calls do this
 * themselves). */
static int finish_for_sql(qx_result *r) {
  switch (r->term) {
    case QX_COUNT: return dorm_count(r->q);
    case QX_EXISTS: return dorm_exists(r->q);
    case QX_FIRST:
      if (!r->ordered && r->model->nordering == 0) dorm_order_by(r->q, "pk");
      return dorm_slice(r->q, 0, 1);
    case QX_GET: return dorm_slice(r->q, 0, 21); /* Django reads up to 21 */
    default: return 0;
  }
}

static char *cell(json_t *v) {
  if (json_is_string(v)) return strdup(json_string_value(v));
  if (json_is_null(v)) return strdup("NULL");
  return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* An aligned table of JSON objects (keys of the first one as columns). */
static void print_table(json_t *arr) {
  size_t nrows = json_array_size(arr);
  json_t *first = json_array_get(arr, 0);
  size_t ncols = json_object_size(first);
  if (!nrows) {
    printf("(0 rows)\n");
    return;
  }
  const char **names = calloc(ncols + 1, sizeof *names);
  size_t *w = calloc(ncols + 1, sizeof *w);
  char **cells = calloc(nrows * ncols + 1, sizeof *cells);
  if (!names || !w || !cells) goto out;
  size_t c = 0;
  const char *k;
  json_t *v;
  json_object_foreach(first, k, v) {
    names[c] = k;
    w[c] = strlen(k);
    c++;
  }
  for (size_t r = 0; r < nrows; r++)
    for (c = 0; c < ncols; c++) {
      char *s = cell(json_object_get(json_array_get(arr, r), names[c]));
      cells[r * ncols + c] = s;
      if (s && strlen(s) > w[c]) w[c] = strlen(s);
    }
  for (c = 0; c < ncols; c++)
    printf("%s%-*s", c ? " | " : "", (int)w[c], names[c]);
  printf("\n");
  for (c = 0; c < ncols; c++) {
    printf("%s", c ? "-+-" : "");
    for (size_t i = 0; i < w[c]; i++) putchar('-');
  }
  printf("\n");
  for (size_t r = 0; r < nrows; r++) {
    for (c = 0; c < ncols; c++) {
      const char *s = cells[r * ncols + c] ? cells[r * ncols + c] : "";
      json_t *jv = json_object_get(json_array_get(arr, r), names[c]);
      int right = json_is_number(jv);
      printf("%s%*s", c ? " | " : "", right ? (int)w[c] : -(int)w[c], s);
    }
    printf("\n");
  }
  printf("(%zu row%s)\n", nrows, nrows == 1 ? "" : "s");
out:
  if (cells)
    for (size_t i = 0; i < nrows * ncols; i++) free(cells[i]);
  free(cells);
  free(names);
  free(w);
}

static int run_on_db(const char *url, qx_result *r, int as_json) {
  char path[1024];
  if (cli_sqlite_missing(url, path, sizeof path))
    return cli_error(
        "SQLite database '%s' does not exist (did you run `dorm migrate`?)",
        path);
  cli_loop l;
  if (cli_loop_init(&l)) return CLI_ERROR;
  dorm_error err;
  dorm_error_clear(&err);
  int rc = CLI_ERROR;
  dorm_db_options o;
  dorm_db_options_init(&o);
  o.replicas = cli_db_replicas(url);
  dorm_db *db = dorm_db_open(l.loop, url, &o, &err);
  if (!db) {
    cli_error("%s", err.message);
    cli_loop_close(&l);
    return CLI_ERROR;
  }
  dorm_deferred *d = NULL;
  switch (r->term) {
    case QX_ROWS: d = dorm_async_filter(db, r->q); break;
    case QX_COUNT: d = dorm_async_count(db, r->q); break;
    case QX_EXISTS: d = dorm_async_exists(db, r->q); break;
    case QX_FIRST: d = dorm_async_first(db, r->q); break;
    case QX_GET: d = dorm_async_get(db, r->q); break;
  }
  dorm_result res;
  if (cli_wait(&l, d, &res)) {
    /* SQLite's "no such table", PostgreSQL's undefined_table */
    const char *m = dorm_result_message(&res);
    int no_table = strstr(m, "no such table") ||
                   !strcmp(dorm_result_sqlstate(&res), "42P01");
    cli_error("%s%s", m, no_table ? " (did you run `dorm migrate`?)" : "");
    dorm_result_free(&res);
    goto out;
  }
  if (res.kind == DORM_RESULT_COUNT) {
    printf("%lld\n", (long long)res.u.count);
  } else if (res.kind == DORM_RESULT_VALUE) {
    printf("%s\n", res.u.value.v.u.b ? "True" : "False");
  } else if (res.kind == DORM_RESULT_NONE) {
    printf("%s\n", as_json ? "null" : "None"); /* first() of no row */
  } else {
    const dorm_rows *rows = dorm_result_rows_of(&res);
    /* qs[n] is one object, as Django's; no row there is its IndexError */
    if (r->single && rows && dorm_rows_count(rows) == 0) {
      cli_error("%s[%lld]: no row at index %lld (the query has fewer rows)",
                dorm_query_model(r->q)->name, r->index, r->index);
      dorm_result_free(&res);
      goto out;
    }
    int one = r->single && rows;
    json_t *arr;
    if (rows) {
      arr = dorm_rows_to_json(rows);
    } else {
      arr = json_array();
      const dorm_row *row = dorm_result_row_of(&res);
      if (row && arr && json_array_append_new(arr, dorm_row_to_json(row))) {
        json_decref(arr);
        arr = NULL; /* not a row short: out of memory */
      }
    }
    if (!arr) {
      cli_error("out of memory");
      dorm_result_free(&res);
      goto out;
    }
    if (as_json) {
      json_t *doc = rows && !one ? json_pack("{sO}", "results", arr)
                                 : json_incref(json_array_get(arr, 0));
      char *text =
          doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
      json_decref(doc);
      if (!text) {
        cli_error("out of memory");
        json_decref(arr);
        dorm_result_free(&res);
        goto out;
      }
      printf("%s\n", text);
      free(text);
    } else {
      print_table(arr);
    }
    json_decref(arr);
  }
  dorm_result_free(&res);
  rc = CLI_OK;
out:
  cli_db_close(&l, db);
  cli_loop_close(&l);
  return rc;
}

int cmd_query(int argc, char **argv) {
  const char *models = "models.json", *db = NULL, *expr = NULL;
  int sql = 0, as_json = 0;
  const cli_opt opts[] = {
      CLI_STR("--models", &models, "FILE",
              "the models file (default models.json)"),
      CLI_STR("--db", &db, "URL",
              "the database (default $DATABASE_URL, else\n"
              "sqlite:///db.sqlite3); with --sql, only its dialect\n"
              "is used; reads go to $DATABASE_REPLICA_URLS when set\n"
              "(PostgreSQL read replicas, comma-separated URIs)"),
      CLI_FLAG("--sql", &sql, "print the SQL and its parameters; no database"),
      CLI_FLAG("--json", &as_json,
               "print {\"results\": [...]} (an object for first() and\n"
               "get(); a number for count())"),
      CLI_OPT_END};
  const cli_command cmd = {
      .name = "query",
      .usage = usage,
      .about = help,
      .after = after,
      .opts = opts,
      .pos = &expr,
      .pos_missing = "which expression?",
      .pos_extra = "one expression only (quote it for the shell)"};
  int prc = cli_parse(&cmd, argc, argv);
  if (prc != CLI_GO) return prc;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_file(models, &err);
  if (!s) return cli_error("%s", err.message);
  qx_result r;
  char msg[600];
  if (qx_parse(s, expr, &r, msg, sizeof msg)) {
    dorm_schema_free(s);
    return cli_error("query: %s", msg);
  }
  int rc = CLI_OK;
  const char *url = cli_db_url(db);
  if (sql) {
    dorm_dialect d = cli_url_dialect(url);
    dorm_sql out;
    dorm_sql_init(&out);
    finish_for_sql(&r);
    if (dorm_compile(r.q, d, &out, &err)) {
      rc = cli_error("query: %s", err.message);
    } else {
      char *text = dorm_sql_describe(&out, d);
      if (text) {
        size_t n = strlen(text);
        printf("%s%s", text, n && text[n - 1] == '\n' ? "" : "\n");
      }
      free(text);
    }
    dorm_sql_free(&out);
  } else {
    rc = run_on_db(url, &r, as_json);
  }
  dorm_query_free(r.q);
  dorm_schema_free(s);
  return rc;
}
