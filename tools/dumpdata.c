/* SPDX-License-Identifier: MIT */
/* tools/dumpdata.c — `dorm dumpdata [Model ...]`: every row of the named
 * models (all of them, in dependency order, when none is named) as
 * Django's fixture format, in constant memory.
 *
 * Each model is read in primary-key order by keyset pagination:
 * Model.filter(pk__gt=last).order_by("pk")[:chunk], each chunk written
 * out before the next is asked for, so memory holds one chunk whatever
 * the table's size.  A row becomes JSON through the library's
 * dorm_row_to_json (the object shape of `dorm serve`: decimals as
 * strings, date-times in UTC with Z, bytes as base64), so a dump is the
 * same bytes whichever database it came from; a many_to_many field is
 * prefetched per chunk and written as the list of its related primary
 * keys, ascending, as Django's serializer lists them.  On PostgreSQL the
 * whole dump reads one snapshot (dump_all).  (The keyset loop is
 * a bounded-memory path of its own; the library's streaming reads, once
 * they exist, can replace it without changing a byte of the output.)
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/fixture.h"

static const char usage[] =
    "usage: dorm dumpdata [--models FILE] [--db URL] [--format json|jsonl]\n"
    "                     [--output FILE] [--chunk N] [Model ...]\n";
static const char about[] =
    "\n"
    "Print every row of the named models (all models when none is named,\n"
    "each after the models its foreign keys point to) as a Django fixture:\n"
    "[{\"model\": \"Author\", \"pk\": 1, \"fields\": {...}}, ...], one object "
    "a\n"
    "line, rows in primary key order.  Memory stays that of one chunk of\n"
    "rows whatever the tables' size.\n";
static const char after[] =
    "\n"
    "exit status: 0 done, 1 error, 2 usage error\n";

typedef struct dump {
  cli_loop *l;
  dorm_db *db;
  FILE *out;
  int jsonl;
  size_t chunk;
  size_t written; /* objects written */
} dump;

static int cmp_pk(const void *a, const void *b) {
  json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  if (json_is_integer(x) && json_is_integer(y)) {
    json_int_t i = json_integer_value(x), j = json_integer_value(y);
    return i < j ? -1 : i > j;
  }
  if (json_is_string(x) && json_is_string(y))
    return strcmp(json_string_value(x), json_string_value(y));
  return 0;
}

/* The prefetched objects of a many_to_many as their keys, ascending: a
 * new reference, or NULL when out of memory. */
static json_t *m2m_keys(json_t *objs, const dorm_field *f) {
  size_t n = json_array_size(objs);
  json_t **keys = malloc((n ? n : 1) * sizeof *keys);
  json_t *out = json_array();
  if (!keys || !out) {
    free(keys);
    json_decref(out);
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    keys[i] = json_object_get(json_array_get(objs, i), f->target->pk->name);
  qsort(keys, n, sizeof *keys, cmp_pk);
  for (size_t i = 0; i < n; i++)
    if (json_array_append(out, keys[i] ? keys[i] : json_null())) {
      json_decref(out);
      out = NULL;
      break;
    }
  free(keys);
  return out;
}

/* One row as {"model": ..., "pk": ..., "fields": {...}}; NULL when out of
 * memory. */
static json_t *fixture_object(const dorm_model *m, const dorm_row *row) {
  json_t *fields = dorm_row_to_json(row);
  if (!fields) return NULL;
  json_t *pk = json_incref(json_object_get(fields, m->pk->name));
  json_object_del(fields, m->pk->name);
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (f->type != DORM_FIELD_MANY_TO_MANY) continue;
    json_t *keys = m2m_keys(json_object_get(fields, f->name), f);
    if (!keys || json_object_set_new(fields, f->name, keys)) {
      json_decref(pk);
      json_decref(fields);
      return NULL;
    }
  }
  json_t *o = json_object();
  if (!o || json_object_set_new(o, "model", json_string(m->name)) ||
      json_object_set_new(o, "pk", pk ? pk : json_null()) ||
      json_object_set_new(o, "fields", fields)) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static int write_object(dump *d, json_t *o) {
  if (!d->jsonl) fputs(d->written ? ",\n" : "[\n", d->out);
  int rc = json_dumpf(o, d->out, 0);
  if (d->jsonl) fputc('\n', d->out);
  d->written++;
  return rc;
}

/* A copy of a key value that outlives its result (text in *buf). */
static dorm_value keep_key(const dorm_value *v, char **buf) {
  free(*buf);
  *buf = NULL;
  if (v->type == DORM_T_NULL || v->type == DORM_T_BOOL ||
      v->type == DORM_T_INT || v->type == DORM_T_FLOAT)
    return *v;
  *buf = malloc(v->u.s.len + 1);
  if (!*buf) return dorm_null();
  memcpy(*buf, v->u.s.ptr, v->u.s.len);
  (*buf)[v->u.s.len] = '\0';
  return dorm_textn(v->type, *buf, v->u.s.len);
}

static int dump_model(dump *d, const dorm_model *m) {
  dorm_value last = dorm_null();
  char *last_buf = NULL;
  int have_last = 0, rc = CLI_ERROR;
  dorm_query *q = dorm_select(m);
  for (;;) {
    if (!q) {
      cli_error("out of memory");
      break;
    }
    dorm_query_reset(q, DORM_QUERY_SELECT, m);
    for (size_t i = 0; i < m->nfields; i++)
      if (m->fields[i].type == DORM_FIELD_MANY_TO_MANY)
        dorm_prefetch_related(q, m->fields[i].name);
    if (have_last) dorm_filter(q, "pk__gt", last);
    dorm_order_by(q, "pk");
    dorm_slice(q, 0, (int64_t)d->chunk);
    dorm_result res;
    if (cli_wait(d->l, dorm_async_filter(d->db, q), &res)) {
      const char *msg = dorm_result_message(&res);
      int no_table = strstr(msg, "no such table") ||
                     !strcmp(dorm_result_sqlstate(&res), "42P01");
      cli_error("model '%s': %s%s", m->name, msg,
                no_table ? " (did you run `dorm migrate`?)" : "");
      dorm_result_free(&res);
      break;
    }
    const dorm_rows *rows = dorm_result_rows_of(&res);
    size_t n = dorm_rows_count(rows);
    int failed = 0;
    for (size_t i = 0; i < n && !failed; i++) {
      json_t *o = fixture_object(m, dorm_rows_row(rows, i));
      if (!o || write_object(d, o)) failed = 1;
      json_decref(o);
    }
    if (n) {
      const dorm_value *k = dorm_row_value(dorm_rows_row(rows, n - 1), "pk");
      if (!k) k = dorm_row_value(dorm_rows_row(rows, n - 1), m->pk->name);
      last = keep_key(k, &last_buf);
      have_last = 1;
      if (last.type == DORM_T_NULL) failed = 1;
    }
    dorm_result_free(&res);
    if (failed) {
      cli_error("out of memory, or the output cannot be written");
      break;
    }
    if (n < d->chunk) {
      rc = CLI_OK;
      break;
    }
  }
  dorm_query_free(q);
  free(last_buf);
  return rc;
}

typedef struct snapshot {
  dorm_db *tx;
  dorm_deferred *block; /* fired by dump_all once the dump is written */
  int done;             /* the atomic deferred fired */
  dorm_result res;
} snapshot;

static dorm_deferred *begin_snapshot(dorm_db *tx, void *arg) {
  snapshot *sn = arg;
  sn->tx = tx;
  sn->block = dorm_deferred_new(NULL, NULL);
  return sn->block;
}

static dorm_result snapshot_over(dorm_result *res, void *arg) {
  snapshot *sn = arg;
  sn->res = dorm_result_take(res);
  sn->done = 1;
  return dorm_result_none();
}

static int dump_models(dump *d, const dorm_model **list, size_t n) {
  int rc = CLI_OK;
  for (size_t i = 0; i < n && rc == CLI_OK; i++) rc = dump_model(d, list[i]);
  return rc;
}

/* On PostgreSQL every model is read in one REPEATABLE READ, READ ONLY
 * transaction, as pg_dump reads: one snapshot, so rows written while
 * the dump runs are in none of it or all of it, and a foreign key in
 * the dump always finds its row.  SQLite's transactions take the one
 * writer (BEGIN IMMEDIATE) and would stop the application's writes for
 * the whole dump, so there the models are read by separate queries, as
 * Django's dumpdata reads them. */
static int dump_all(dump *d, const dorm_model **list, size_t n) {
  if (dorm_db_dialect(d->db) != DORM_DIALECT_POSTGRES)
    return dump_models(d, list, n);
  snapshot sn;
  memset(&sn, 0, sizeof sn);
  dorm_deferred *a = dorm_async_atomic(d->db, begin_snapshot, &sn);
  if (!a || dorm_deferred_add_both(a, snapshot_over, &sn))
    return cli_error("out of memory");
  while (!sn.tx && !sn.done) uv_run(&d->l->uv, UV_RUN_ONCE);
  int rc = CLI_ERROR;
  if (sn.tx && sn.block) {
    dorm_db *db = d->db;
    dorm_result res;
    if (cli_wait(d->l,
                 dorm_async_execute(sn.tx,
                                    "SET TRANSACTION ISOLATION LEVEL "
                                    "REPEATABLE READ, READ ONLY",
                                    NULL, 0),
                 &res)) {
      cli_error("%s", dorm_result_message(&res));
    } else {
      d->db = sn.tx;
      rc = dump_models(d, list, n);
      d->db = db;
    }
    dorm_result_free(&res);
    dorm_deferred_fire(
        sn.block, rc == CLI_OK ? dorm_result_none()
                               : dorm_result_error(DORM_EINVAL, "dump failed"));
  } else if (sn.tx) {
    cli_error("out of memory");
  }
  while (!sn.done) uv_run(&d->l->uv, UV_RUN_ONCE);
  if (rc == CLI_OK && dorm_result_is_error(&sn.res))
    rc = cli_error("%s", dorm_result_message(&sn.res));
  else if (!sn.tx && dorm_result_is_error(&sn.res))
    cli_error("%s", dorm_result_message(&sn.res));
  dorm_result_free(&sn.res);
  return rc;
}

static const char *parse_format(void *dest, const char *v) {
  if (!strcmp(v, "json"))
    *(int *)dest = FX_JSON;
  else if (!strcmp(v, "jsonl"))
    *(int *)dest = FX_JSONL;
  else
    return "expected json or jsonl";
  return NULL;
}

int cmd_dumpdata(int argc, char **argv) {
  const char *models = "models.json", *dbo = NULL, *output = NULL;
  int format = FX_JSON;
  unsigned long long chunk = 2000;
  const char **names = calloc((size_t)argc + 1, sizeof *names);
  size_t nnames = 0;
  if (!names) return cli_error("out of memory");
  const cli_opt opts[] = {
      CLI_STR("--models", &models, "FILE",
              "the models file (default models.json)"),
      CLI_STR("--db", &dbo, "URL",
              "the database (default $DATABASE_URL, else\n"
              "sqlite:///db.sqlite3)"),
      CLI_FN("--format", parse_format, &format, "FORMAT",
             "json (an array, the default) or jsonl (one\n"
             "object a line, no brackets)"),
      CLI_STR("--output", &output, "FILE",
              "write to FILE instead of stdout (removed again\n"
              "when the dump fails)"),
      CLI_NUM("--chunk", &chunk, "N", 1, 1000000,
              "rows read per query (default 2000)"),
      CLI_OPT_END};
  const cli_command cmd = {.name = "dumpdata",
                           .usage = usage,
                           .about = about,
                           .after = after,
                           .opts = opts,
                           .many = names,
                           .nmany = &nnames};
  int rc = cli_parse(&cmd, argc, argv);
  if (rc != CLI_GO) {
    free(names);
    return rc;
  }
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_file(models, &err);
  if (!s) {
    free(names);
    return cli_error("%s", err.message);
  }
  /* the models to dump, all checked before the database opens */
  size_t n = nnames ? nnames : s->nmodels;
  const dorm_model **list = calloc(n ? n : 1, sizeof *list);
  rc = CLI_ERROR;
  if (!list) {
    cli_error("out of memory");
    goto out_schema;
  }
  if (!nnames) fx_dependency_order(s, list);
  for (size_t i = 0; i < nnames; i++) {
    list[i] = dorm_schema_model(s, names[i]);
    if (!list[i]) {
      cli_error("unknown model '%s' (the models of %s are named there)",
                names[i], models);
      goto out_schema;
    }
  }
  const char *url = cli_db_url(dbo);
  char path[1024];
  if (cli_sqlite_missing(url, path, sizeof path)) {
    cli_error(
        "SQLite database '%s' does not exist (did you run `dorm migrate`?)",
        path);
    goto out_schema;
  }
  FILE *out = stdout;
  if (output && !(out = fopen(output, "w"))) {
    cli_error("cannot write '%s': %m", output);
    goto out_schema;
  }
  cli_loop l;
  if (cli_loop_init(&l)) {
    if (output) {
      fclose(out);
      unlink(output);
    }
    goto out_schema;
  }
  dorm_db *db = dorm_db_open(l.loop, url, NULL, &err);
  if (!db) {
    cli_error("%s", err.message);
  } else {
    dump d = {&l, db, out, format == FX_JSONL, (size_t)chunk, 0};
    rc = dump_all(&d, list, n);
    if (rc == CLI_OK && !d.jsonl) fputs(d.written ? "\n]\n" : "[]\n", out);
    cli_db_close(&l, db);
  }
  cli_loop_close(&l);
  if (fflush(out) || ferror(out)) {
    if (rc == CLI_OK) cli_error("cannot write the output: %m");
    rc = CLI_ERROR;
  }
  if (output) {
    if (fclose(out) && rc == CLI_OK)
      rc = cli_error("cannot write '%s': %m", output);
    if (rc != CLI_OK) unlink(output);
  }
out_schema:
  free(list);
  dorm_schema_free(s);
  free(names);
  return rc;
}
