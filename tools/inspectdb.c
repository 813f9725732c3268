/* SPDX-License-Identifier: MIT */
/* tools/inspectdb.c — `dorm inspectdb`: models.json of an existing SQLite
 * or PostgreSQL database, on stdout.
 *
 * Each table becomes a model (Author for author, BlogEntry for
 * blog_entry) with its columns, types, nullability, primary key, foreign
 * keys (a unique one as one_to_one), unique columns, unique_together and
 * indexes.  Catalog queries take the table name as a parameter (SQLite's
 * pragma table functions, PostgreSQL's catalogs), so no name read from the
 * database is ever pasted into SQL.  The result goes through the models
 * loader and is printed in the canonical form, so what is printed is a
 * models file dorm accepts; dorm's own tables (dorm_migrations) are left
 * out.  Defaults are not in the database (dorm drops them once existing
 * rows are filled, as Django does) and so not in the output.
 *
 * For a database dorm migrated the output must describe what the
 * migrations describe (makemigrations --check finds no change): decimals
 * keep their precision (numeric(M, D); decimal(M, D) as dorm declares it
 * on SQLite), a bigauto key on SQLite is told from an auto one by its
 * declared "INTEGER" (query/ddl/columns.c), a unique single-column index stays a
 * model index (only a unique constraint is "unique": true), and two
 * relations to one model get "<model>_<field>_set" reverse names, which
 * the database does not hold.  A db_index and a model index over the same
 * field alone are the same index; the autodetector takes either for the
 * other.
 *
 * A join table of the shape dorm (and Django) makes for a many_to_many
 * field -- `<table>_<field>` with an auto `id`, the two foreign keys named
 * after the models (`entry_id`, `tag_id`; `from_x_id`/`to_x_id` for a
 * model related to itself), ON DELETE CASCADE, NOT NULL, and UNIQUE over
 * the pair -- becomes that field on its model rather than a model of its
 * own, so a database dorm migrated reads back as the models it came from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/cli.h"

/* jansson's setters fail only when out of memory (a NULL value included:
 * its constructor failed).  Each failure is noted here, and nothing is
 * printed once one happened: a models file with a column or an index
 * silently missing would be worse than an error. */
static int g_oom;

static void oset(json_t *o, const char *k, json_t *v) {
  if (json_object_set_new(o, k, v)) g_oom = 1;
}

static void oset_ref(json_t *o, const char *k, json_t *v) {
  if (json_object_set(o, k, v)) g_oom = 1;
}

static void append(json_t *a, json_t *v) {
  if (json_array_append_new(a, v)) g_oom = 1;
}

static const char usage[] = "usage: dorm inspectdb [--db URL]\n";
static const char help[] =
    "\n"
    "Print a models.json for the tables of an existing database: columns,\n"
    "types, nullability, primary and foreign keys, unique columns,\n"
    "unique_together, indexes, and many_to_many fields for their join\n"
    "tables.\n";
static const char after[] = "\nexit status: 0 done, 1 error, 2 usage error\n";

typedef struct ctx {
  cli_loop *l;
  dorm_db *db;
  int pg;
} ctx;

/* Rows of one catalog query with one text parameter (or none). */
static int query(ctx *c, const char *sql, const char *param, dorm_result *res) {
  dorm_value p = dorm_str(param ? param : "");
  if (cli_wait(c->l,
               dorm_async_execute(c->db, sql, param ? &p : NULL, param ? 1 : 0),
               res)) {
    cli_error("inspectdb: %s", dorm_result_message(res));
    dorm_result_free(res);
    return -1;
  }
  return 0;
}

/* Column i of a row as text ("" for NULL) / as an integer. */
static const char *vtext(const dorm_row *r, size_t i, char *buf, size_t len) {
  const dorm_value *v = dorm_row_value_at(r, i);
  if (!v || v->type == DORM_T_NULL) return "";
  if (v->type == DORM_T_INT) {
    snprintf(buf, len, "%lld", (long long)v->u.i);
    return buf;
  }
  if (v->type == DORM_T_BOOL) return v->u.b ? "1" : "0";
  snprintf(buf, len, "%.*s", (int)v->u.s.len, v->u.s.ptr);
  return buf;
}

static long long vint(const dorm_row *r, size_t i) {
  char buf[64];
  const char *s = vtext(r, i, buf, sizeof buf);
  if (!strcmp(s, "t") || !strcmp(s, "true")) return 1;
  return strtoll(s, NULL, 10);
}

static void camel(const char *table, char *out, size_t cap) {
  size_t o = 0;
  int up = 1;
  for (const char *p = table; *p && o + 1 < cap; p++) {
    if (*p == '_') {
      up = 1;
      continue;
    }
    out[o++] = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
    up = 0;
  }
  out[o] = '\0';
  if (!o) snprintf(out, cap, "%s", table);
}

/* A table's facts, as JSON for convenience:
 *   columns: [{name, type, notnull, pk, maxlen, digits, places, auto, json}]
 *   fks: {column: [table, on_delete]}
 *   uniques: [[columns]] (pk excluded); indexes: [{name, columns, unique}] */
typedef struct table {
  char name[256];
  json_t *columns, *fks, *uniques, *indexes;
} table;

static void table_free(table *t) {
  json_decref(t->columns);
  json_decref(t->fks);
  json_decref(t->uniques);
  json_decref(t->indexes);
}

static json_t *split(const char *csv) {
  json_t *a = json_array();
  const char *p = csv;
  while (a && *p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    append(a, json_stringn(p, n));
    p += n + (e ? 1 : 0);
  }
  return a;
}

static const char *on_delete_name(const char *db) {
  if (!strcasecmp(db, "CASCADE") || !strcmp(db, "c")) return "cascade";
  if (!strcasecmp(db, "SET NULL") || !strcmp(db, "n")) return "set_null";
  if (!strcasecmp(db, "SET DEFAULT") || !strcmp(db, "d")) return "set_default";
  if (!strcasecmp(db, "RESTRICT") || !strcmp(db, "r")) return "restrict";
  return "do_nothing";
}

/* ---- SQLite ------------------------------------------------------------- */

static int sqlite_type(const char *decl, json_t *col) {
  char t[64];
  size_t i = 0;
  for (; decl[i] && i + 1 < sizeof t; i++)
    t[i] = (decl[i] >= 'A' && decl[i] <= 'Z') ? (char)(decl[i] + 32) : decl[i];
  t[i] = '\0';
  int n = 0, d = 0;
  const char *type = "text";
  if (!strcmp(t, "integer") || !strcmp(t, "int"))
    type = "integer";
  else if (!strcmp(t, "bigint"))
    type = "bigint";
  else if (!strcmp(t, "smallint"))
    type = "smallint";
  else if (!strcmp(t, "real") || !strcmp(t, "double") || !strcmp(t, "float"))
    type = "float";
  else if (!strncmp(t, "decimal", 7) || !strncmp(t, "numeric", 7)) {
    type = "decimal";
    /* dorm declares decimal(M, D); the precision is all SQLite keeps */
    if (sscanf(t + 7, " (%d ,%d )", &n, &d) == 2 && n > 0 && d >= 0 && d <= n) {
      oset(col, "digits", json_integer(n));
      oset(col, "places", json_integer(d));
    }
  } else if (!strcmp(t, "bool") || !strcmp(t, "boolean"))
    type = "boolean";
  else if (!strcmp(t, "char(36)"))
    type = "uuid";
  else if (sscanf(t, "varchar(%d)", &n) == 1 ||
           sscanf(t, "char(%d)", &n) == 1) {
    type = "varchar";
    oset(col, "maxlen", json_integer(n));
  } else if (!strcmp(t, "date"))
    type = "date";
  else if (!strcmp(t, "datetime") || !strcmp(t, "timestamp"))
    type = "datetime";
  else if (!strcmp(t, "time"))
    type = "time";
  else if (!strcmp(t, "blob"))
    type = "binary";
  oset(col, "type", json_string(type));
  return 0;
}

static int sqlite_table(ctx *c, table *t, const char *create_sql) {
  dorm_result res;
  char b1[512], b2[512];
  if (query(c,
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?) "
            "ORDER BY cid",
            t->name, &res))
    return -1;
  const dorm_rows *rows = dorm_result_rows_of(&res);
  for (size_t i = 0; rows && i < dorm_rows_count(rows); i++) {
    const dorm_row *r = dorm_rows_row(rows, i);
    json_t *col = json_object();
    const char *name = vtext(r, 0, b1, sizeof b1);
    oset(col, "name", json_string(name));
    sqlite_type(vtext(r, 1, b2, sizeof b2), col);
    oset(col, "notnull", json_boolean(vint(r, 2)));
    oset(col, "pk", json_boolean(vint(r, 3)));
    if (vint(r, 3) && strstr(create_sql, "AUTOINCREMENT")) {
      oset(col, "auto", json_true());
      /* dorm declares a bigauto key "INTEGER", an auto one "integer"
       * (query/ddl/columns.c): both are SQLite's 64-bit rowid, and the pragma
       * says INTEGER for either, so the declaration is read */
      char decl[600];
      snprintf(decl, sizeof decl, "\"%s\" INTEGER NOT NULL PRIMARY KEY", name);
      if (strstr(create_sql, decl)) oset(col, "type", json_string("bigint"));
    }
    char needle[600];
    snprintf(needle, sizeof needle, "JSON_VALID(\"%s\")", name);
    if (strstr(create_sql, needle)) oset(col, "type", json_string("json"));
    append(t->columns, col);
  }
  dorm_result_free(&res);
  if (query(c,
            "SELECT \"from\", \"table\", on_delete FROM "
            "pragma_foreign_key_list(?)",
            t->name, &res))
    return -1;
  rows = dorm_result_rows_of(&res);
  for (size_t i = 0; rows && i < dorm_rows_count(rows); i++) {
    const dorm_row *r = dorm_rows_row(rows, i);
    char b3[64];
    oset(t->fks, vtext(r, 0, b1, sizeof b1),
         json_pack("[ss]", vtext(r, 1, b2, sizeof b2),
                   on_delete_name(vtext(r, 2, b3, sizeof b3))));
  }
  dorm_result_free(&res);
  if (query(c, "SELECT name, \"unique\", origin FROM pragma_index_list(?)",
            t->name, &res))
    return -1;
  rows = dorm_result_rows_of(&res);
  for (size_t i = 0; rows && i < dorm_rows_count(rows); i++) {
    const dorm_row *r = dorm_rows_row(rows, i);
    char iname[512], origin[8];
    vtext(r, 0, iname, sizeof iname);
    vtext(r, 2, origin, sizeof origin);
    int unique = (int)vint(r, 1);
    if (!strcmp(origin, "pk")) continue;
    dorm_result ir;
    if (query(c, "SELECT name FROM pragma_index_info(?) ORDER BY seqno", iname,
              &ir)) {
      dorm_result_free(&res);
      return -1;
    }
    const dorm_rows *irows = dorm_result_rows_of(&ir);
    json_t *cols = json_array();
    for (size_t k = 0; irows && k < dorm_rows_count(irows); k++)
      append(cols,
             json_string(vtext(dorm_rows_row(irows, k), 0, b1, sizeof b1)));
    dorm_result_free(&ir);
    if (!strcmp(origin, "u"))
      append(t->uniques, cols);
    else
      append(t->indexes, json_pack("{sssosb}", "name", iname, "columns", cols,
                                   "unique", unique));
  }
  dorm_result_free(&res);
  return 0;
}

/* ---- PostgreSQL -------------------------------------------------------------
 */

#define PG_REL \
  "(quote_ident(current_schema()) || '.' || quote_ident($1))::regclass"

static int pg_table(ctx *c, table *t) {
  dorm_result res;
  char b1[512], b2[512];
  if (query(c,
            "SELECT a.attname::text, t.typname::text, a.attnotnull::int, "
            "a.attidentity::text, CASE WHEN t.typname IN ('varchar', "
            "'bpchar') AND a.atttypmod > 0 THEN a.atttypmod - 4 ELSE 0 END, "
            "CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0 THEN "
            "((a.atttypmod - 4) >> 16) & 65535 ELSE 0 END, CASE WHEN "
            "t.typname = 'numeric' AND a.atttypmod > 0 THEN (a.atttypmod - 4) "
            "& 65535 ELSE 0 END FROM pg_catalog.pg_attribute a JOIN "
            "pg_catalog.pg_type t ON t.oid = a.atttypid WHERE a.attrelid "
            "= " PG_REL
            " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            t->name, &res))
    return -1;
  const dorm_rows *rows = dorm_result_rows_of(&res);
  for (size_t i = 0; rows && i < dorm_rows_count(rows); i++) {
    const dorm_row *r = dorm_rows_row(rows, i);
    json_t *col = json_object();
    oset(col, "name", json_string(vtext(r, 0, b1, sizeof b1)));
    const char *tn = vtext(r, 1, b2, sizeof b2);
    const char *type = "text";
    if (!strcmp(tn, "int4"))
      type = "integer";
    else if (!strcmp(tn, "int8"))
      type = "bigint";
    else if (!strcmp(tn, "int2"))
      type = "smallint";
    else if (!strcmp(tn, "float8") || !strcmp(tn, "float4"))
      type = "float";
    else if (!strcmp(tn, "numeric"))
      type = "decimal";
    else if (!strcmp(tn, "bool"))
      type = "boolean";
    else if (!strcmp(tn, "varchar") || !strcmp(tn, "bpchar"))
      type = vint(r, 4) > 0 ? "varchar" : "text";
    else if (!strcmp(tn, "date"))
      type = "date";
    else if (!strcmp(tn, "time"))
      type = "time";
    else if (!strcmp(tn, "timestamptz") || !strcmp(tn, "timestamp"))
      type = "datetime";
    else if (!strcmp(tn, "uuid"))
      type = "uuid";
    else if (!strcmp(tn, "jsonb") || !strcmp(tn, "json"))
      type = "json";
    else if (!strcmp(tn, "bytea"))
      type = "binary";
    oset(col, "type", json_string(type));
    if (!strcmp(type, "varchar")) oset(col, "maxlen", json_integer(vint(r, 4)));
    if (!strcmp(type, "decimal") && vint(r, 5)) {
      oset(col, "digits", json_integer(vint(r, 5)));
      oset(col, "places", json_integer(vint(r, 6)));
    }
    oset(col, "notnull", json_boolean(vint(r, 2)));
    char idb[8];
    if (vtext(r, 3, idb, sizeof idb)[0]) oset(col, "auto", json_true());
    append(t->columns, col);
  }
  dorm_result_free(&res);
  if (query(c,
            "SELECT con.contype::text, array_to_string(ARRAY(SELECT "
            "a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND "
            "a.attnum = k.n ORDER BY k.o), ','), COALESCE(fc.relname::text, "
            "''), con.confdeltype::text FROM pg_catalog.pg_constraint con LEFT "
            "JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid WHERE "
            "con.conrelid = " PG_REL " AND con.contype IN ('p', 'u', 'f') "
            "ORDER BY con.conname",
            t->name, &res))
    return -1;
  rows = dorm_result_rows_of(&res);
  for (size_t i = 0; rows && i < dorm_rows_count(rows); i++) {
    const dorm_row *r = dorm_rows_row(rows, i);
    char kind[8], cols[2048], target[512], od[8];
    vtext(r, 0, kind, sizeof kind);
    vtext(r, 1, cols, sizeof cols);
    vtext(r, 2, target, sizeof target);
    vtext(r, 3, od, sizeof od);
    if (kind[0] == 'p') {
      json_t *pk = split(cols);
      for (size_t k = 0; k < json_array_size(t->columns); k++) {
        json_t *col = json_array_get(t->columns, k);
        if (json_array_size(pk) == 1 &&
            !strcmp(json_string_value(json_object_get(col, "name")),
                    json_string_value(json_array_get(pk, 0))))
          oset(col, "pk", json_true());
      }
      json_decref(pk);
    } else if (kind[0] == 'u') {
      append(t->uniques, split(cols));
    } else if (kind[0] == 'f' && !strchr(cols, ',')) {
      oset(t->fks, cols, json_pack("[ss]", target, on_delete_name(od)));
    }
  }
  dorm_result_free(&res);
  if (query(c,
            "SELECT i.relname::text, ix.indisunique::int, "
            "array_to_string(ARRAY(SELECT a.attname::text FROM "
            "unnest(ix.indkey::int2[]) WITH ORDINALITY k(n, o) JOIN "
            "pg_catalog.pg_attribute a ON a.attrelid = ix.indrelid AND "
            "a.attnum = k.n ORDER BY k.o), ',') FROM pg_catalog.pg_index ix "
            "JOIN pg_catalog.pg_class i ON i.oid = ix.indexrelid WHERE "
            "ix.indrelid = " PG_REL " AND NOT EXISTS (SELECT 1 FROM "
            "pg_catalog.pg_constraint c WHERE c.conindid = ix.indexrelid) "
            "ORDER BY i.relname",
            t->name, &res))
    return -1;
  rows = dorm_result_rows_of(&res);
  for (size_t i = 0; rows && i < dorm_rows_count(rows); i++) {
    const dorm_row *r = dorm_rows_row(rows, i);
    char cols[2048];
    vtext(r, 2, cols, sizeof cols);
    append(t->indexes,
           json_pack("{sssosb}", "name", vtext(r, 0, b1, sizeof b1), "columns",
                     split(cols), "unique", (int)vint(r, 1)));
  }
  dorm_result_free(&res);
  return 0;
}

/* ---- the model --------------------------------------------------------------
 */

static const char *sget(const json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

/* The field name of a column: a foreign key's "<name>_id" loses "_id". */
static void field_name(const table *t, const char *col, char *out, size_t cap) {
  size_t n = strlen(col);
  if (json_object_get(t->fks, col) && n > 3 && !strcmp(col + n - 3, "_id"))
    snprintf(out, cap, "%.*s", (int)(n - 3), col);
  else
    snprintf(out, cap, "%s", col);
}

/* A unique constraint on col alone ("unique": true, or what makes a
 * foreign key a one_to_one).  A unique index on it is not one: that is a
 * model index with "unique": true, which dorm creates as such. */
static int unique_single(const table *t, const char *col) {
  for (size_t i = 0; i < json_array_size(t->uniques); i++) {
    json_t *u = json_array_get(t->uniques, i);
    if (json_array_size(u) == 1 &&
        !strcmp(json_string_value(json_array_get(u, 0)), col))
      return 1;
  }
  return 0;
}

static json_t *model_of(const table *t) {
  char mname[256];
  camel(t->name, mname, sizeof mname);
  json_t *fields = json_array();
  for (size_t i = 0; i < json_array_size(t->columns); i++) {
    json_t *col = json_array_get(t->columns, i);
    const char *cn = sget(col, "name");
    char fname[300];
    field_name(t, cn, fname, sizeof fname);
    json_t *f = json_object();
    oset(f, "name", json_string(fname));
    int pk = json_is_true(json_object_get(col, "pk"));
    json_t *fk = json_object_get(t->fks, cn);
    const char *type = sget(col, "type");
    if (pk && json_is_true(json_object_get(col, "auto")))
      type = !strcmp(type, "bigint") ? "bigauto" : "auto";
    int uniq = unique_single(t, cn);
    if (fk) type = uniq && !pk ? "one_to_one" : "foreign_key";
    oset(f, "type", json_string(type));
    if (pk) oset(f, "primary_key", json_true());
    if (!strcmp(type, "varchar"))
      oset_ref(f, "max_length", json_object_get(col, "maxlen"));
    if (!strcmp(type, "decimal") && json_object_get(col, "digits")) {
      oset_ref(f, "max_digits", json_object_get(col, "digits"));
      oset_ref(f, "decimal_places", json_object_get(col, "places"));
    } else if (!strcmp(type, "decimal")) {
      /* a column declared without precision (bare decimal or numeric, as
       * older dorm wrote on SQLite): a model needs one, so guess Django's */
      oset(f, "max_digits", json_integer(10));
      oset(f, "decimal_places", json_integer(5));
      cli_warn(
          "warning: %s.%s: a decimal column without precision; "
          "max_digits 10 and decimal_places 5 are a guess",
          t->name, cn);
    }
    if (fk) {
      char target[256];
      camel(json_string_value(json_array_get(fk, 0)), target, sizeof target);
      oset(f, "to", json_string(target));
      oset_ref(f, "on_delete", json_array_get(fk, 1));
      char derived[320];
      snprintf(derived, sizeof derived, "%s_id", fname);
      if (strcmp(derived, cn)) oset(f, "db_column", json_string(cn));
    }
    if (!json_is_true(json_object_get(col, "notnull")) && !pk)
      oset(f, "null", json_true());
    if (uniq && !pk && !fk) oset(f, "unique", json_true());
    /* dorm's own index of a db_index column: <table>_<column>_idx */
    char idx[600];
    snprintf(idx, sizeof idx, "%s_%s_idx", t->name, cn);
    for (size_t k = 0; k < json_array_size(t->indexes); k++) {
      json_t *x = json_array_get(t->indexes, k);
      if (!strcmp(sget(x, "name"), idx) && !fk &&
          !json_is_true(json_object_get(x, "unique")))
        oset(f, "db_index", json_true());
    }
    append(fields, f);
  }
  json_t *m =
      json_pack("{sssssO}", "name", mname, "table", t->name, "fields", fields);
  json_decref(fields);
  /* Model indexes: every other index, by field names. */
  json_t *ixs = json_array();
  for (size_t k = 0; k < json_array_size(t->indexes); k++) {
    json_t *x = json_array_get(t->indexes, k);
    json_t *cols = json_object_get(x, "columns");
    char own[600];
    snprintf(own, sizeof own, "%s_%s_idx", t->name,
             json_string_value(json_array_get(cols, 0)));
    if (json_array_size(cols) == 1 && !strcmp(sget(x, "name"), own) &&
        !json_is_true(json_object_get(x, "unique")))
      continue; /* the field's db_index (or a foreign key's index) */
    json_t *names = json_array();
    for (size_t q = 0; q < json_array_size(cols); q++) {
      char fname[300];
      field_name(t, json_string_value(json_array_get(cols, q)), fname,
                 sizeof fname);
      append(names, json_string(fname));
    }
    json_t *ix = json_pack("{sssO}", "name", sget(x, "name"), "fields", names);
    if (json_is_true(json_object_get(x, "unique")))
      oset(ix, "unique", json_true());
    json_decref(names);
    append(ixs, ix);
  }
  if (json_array_size(ixs)) oset_ref(m, "indexes", ixs);
  json_decref(ixs);
  json_t *ut = json_array();
  for (size_t k = 0; k < json_array_size(t->uniques); k++) {
    json_t *u = json_array_get(t->uniques, k);
    if (json_array_size(u) < 2) continue;
    json_t *names = json_array();
    for (size_t q = 0; q < json_array_size(u); q++) {
      char fname[300];
      field_name(t, json_string_value(json_array_get(u, q)), fname,
                 sizeof fname);
      append(names, json_string(fname));
    }
    append(ut, names);
  }
  if (json_array_size(ut)) oset_ref(m, "unique_together", ut);
  json_decref(ut);
  return m;
}

/* ---- many_to_many join tables ------------------------------------------- */

/* "<model name, lower-cased>_id" for the model of table, with a prefix. */
static void m2m_column(const char *prefix, const char *tname, char *out,
                       size_t cap) {
  char model[256];
  camel(tname, model, sizeof model);
  size_t o = (size_t)snprintf(out, cap, "%s", prefix);
  for (const char *p = model; *p && o + 4 < cap; p++)
    out[o++] = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
  snprintf(out + o, cap - o, "_id");
}

static int unique_pair(const table *t, const char *a, const char *b) {
  for (size_t i = 0; i < json_array_size(t->uniques); i++) {
    json_t *u = json_array_get(t->uniques, i);
    if (json_array_size(u) != 2) continue;
    const char *x = json_string_value(json_array_get(u, 0));
    const char *y = json_string_value(json_array_get(u, 1));
    if (x && y &&
        ((!strcmp(x, a) && !strcmp(y, b)) || (!strcmp(x, b) && !strcmp(y, a))))
      return 1;
  }
  return 0;
}

/* The foreign key of t's column col if it is a NOT NULL, ON DELETE
 * CASCADE reference, else NULL (its target table in *target). */
static int cascade_fk(const table *t, const char *col, const char **target) {
  json_t *fk = json_object_get(t->fks, col);
  if (!fk || strcmp(json_string_value(json_array_get(fk, 1)), "cascade"))
    return 0;
  for (size_t i = 0; i < json_array_size(t->columns); i++) {
    json_t *c = json_array_get(t->columns, i);
    if (strcmp(sget(c, "name"), col)) continue;
    *target = json_string_value(json_array_get(fk, 0));
    return json_is_true(json_object_get(c, "notnull"));
  }
  return 0;
}

/* If t is the join table of a many_to_many field, say whose (the source
 * table, the field name, the target table) and return 1. */
static int join_table_of(const table *t, const char **src, char *field,
                         size_t cap, const char **dst) {
  if (json_array_size(t->columns) != 3) return 0;
  const char *cols[2];
  int n = 0, has_id = 0;
  for (size_t i = 0; i < 3; i++) {
    json_t *c = json_array_get(t->columns, i);
    if (!strcmp(sget(c, "name"), "id") &&
        json_is_true(json_object_get(c, "pk")) &&
        json_is_true(json_object_get(c, "auto")))
      has_id = 1;
    else if (n < 2)
      cols[n++] = sget(c, "name");
  }
  if (!has_id || n != 2 || !unique_pair(t, cols[0], cols[1])) return 0;
  for (int order = 0; order < 2; order++) {
    const char *from = cols[order], *to = cols[1 - order];
    const char *a = NULL, *b = NULL;
    if (!cascade_fk(t, from, &a) || !cascade_fk(t, to, &b) || !a || !b)
      return 0;
    char want_from[300], want_to[300];
    int self = !strcmp(a, b);
    m2m_column(self ? "from_" : "", a, want_from, sizeof want_from);
    m2m_column(self ? "to_" : "", b, want_to, sizeof want_to);
    size_t la = strlen(a);
    if (strcmp(from, want_from) || strcmp(to, want_to) ||
        strncmp(t->name, a, la) || t->name[la] != '_' || !t->name[la + 1])
      continue;
    const char *rest = t->name + la + 1;
    if (!dorm_ident_valid(rest) || strlen(rest) >= cap) continue;
    snprintf(field, cap, "%s", rest);
    *src = a;
    *dst = b;
    return 1;
  }
  return 0;
}

/* The database does not hold related_name, and a model with two
 * relations to one model (two foreign keys, or a foreign key and a
 * many_to_many) would give both the same reverse name, which the loader
 * refuses: name each of those as Django's inspectdb does,
 * "<model>_<field>_set".  The autodetector ignores related_name, so this
 * costs no migration. */
static void name_reverse_relations(json_t *model) {
  json_t *fields = json_object_get(model, "fields");
  char lower[256];
  snprintf(lower, sizeof lower, "%s", sget(model, "name"));
  for (char *p = lower; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  for (size_t i = 0; i < json_array_size(fields); i++) {
    json_t *f = json_array_get(fields, i);
    const char *to = json_string_value(json_object_get(f, "to"));
    if (!to) continue;
    size_t same = 0;
    for (size_t k = 0; k < json_array_size(fields); k++) {
      const char *o =
          json_string_value(json_object_get(json_array_get(fields, k), "to"));
      if (o && !strcmp(o, to)) same++;
    }
    if (same < 2) continue;
    char rn[600];
    snprintf(rn, sizeof rn, "%s_%s_set", lower, sget(f, "name"));
    if (dorm_ident_valid(rn)) oset(f, "related_name", json_string(rn));
  }
}

/* Models for tables[0..n): join tables become many_to_many fields of
 * their source models (appended after its columns). */
static void add_models(json_t *models, table *tables, size_t n) {
  json_t *m2m = json_object(); /* source table -> [fields] */
  char *is_join = calloc(n ? n : 1, 1);
  for (size_t i = 0; m2m && is_join && i < n; i++) {
    const char *src, *dst;
    char field[256];
    if (!join_table_of(&tables[i], &src, field, sizeof field, &dst)) continue;
    int known = 0; /* the source must be a table being printed */
    for (size_t k = 0; k < n; k++) known |= !strcmp(tables[k].name, src);
    if (!known) continue;
    char target[256];
    camel(dst, target, sizeof target);
    json_t *list = json_object_get(m2m, src);
    if (!list) {
      list = json_array();
      oset(m2m, src, list);
    }
    append(list, json_pack("{ssssss}", "name", field, "type", "many_to_many",
                           "to", target));
    is_join[i] = 1;
  }
  for (size_t i = 0; i < n; i++) {
    if (is_join && is_join[i]) continue;
    json_t *m = model_of(&tables[i]);
    json_t *extra = m2m ? json_object_get(m2m, tables[i].name) : NULL;
    if (m && extra) json_array_extend(json_object_get(m, "fields"), extra);
    if (m) name_reverse_relations(m);
    append(models, m);
  }
  free(is_join);
  json_decref(m2m);
}

int cmd_inspectdb(int argc, char **argv) {
  const char *dbo = NULL;
  const cli_opt opts[] = {CLI_STR("--db", &dbo, "URL",
                                  "the database (default $DATABASE_URL, else\n"
                                  "sqlite:///db.sqlite3)"),
                          CLI_OPT_END};
  const cli_command cmd = {.name = "inspectdb",
                           .usage = usage,
                           .about = help,
                           .after = after,
                           .opts = opts};
  int prc = cli_parse(&cmd, argc, argv);
  if (prc != CLI_GO) return prc;
  cli_loop l;
  if (cli_loop_init(&l)) return CLI_ERROR;
  dorm_error err;
  dorm_error_clear(&err);
  int rc = CLI_ERROR;
  ctx c = {&l, NULL, 0};
  json_t *models = json_array();
  table *tables = NULL;
  size_t ntables = 0;
  dorm_result res = dorm_result_none();
  char path[1024];
  /* reading a database must not create one (SQLite opens a missing file
   * as a new, empty database) */
  if (cli_sqlite_missing(cli_db_url(dbo), path, sizeof path)) {
    cli_error("SQLite database '%s' does not exist", path);
    goto out;
  }
  c.db = dorm_db_open(l.loop, cli_db_url(dbo), NULL, &err);
  if (!c.db) {
    cli_error("%s", err.message);
    goto out;
  }
  c.pg = dorm_db_dialect(c.db) == DORM_DIALECT_POSTGRES;
  if (query(c.pg ? &c : &c,
            c.pg ? "SELECT c.relname::text, '' FROM pg_catalog.pg_class c JOIN "
                   "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE "
                   "c.relkind IN ('r', 'p') AND n.nspname = current_schema() "
                   "AND c.relname <> 'dorm_migrations' ORDER BY 1"
                 : "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                   "AND name NOT LIKE 'sqlite_%' AND name <> "
                   "'dorm_migrations' ORDER BY name",
            NULL, &res))
    goto out;
  const dorm_rows *rows = dorm_result_rows_of(&res);
  ntables = rows ? dorm_rows_count(rows) : 0;
  tables = calloc(ntables ? ntables : 1, sizeof *tables);
  if (!tables) {
    cli_error("inspectdb: out of memory");
    goto out;
  }
  for (size_t i = 0; i < ntables; i++) {
    const dorm_row *r = dorm_rows_row(rows, i);
    table *t = &tables[i];
    vtext(r, 0, t->name, sizeof t->name);
    char *sql = NULL;
    const dorm_value *sv = dorm_row_value_at(r, 1);
    if (sv && sv->type == DORM_T_TEXT) sql = strndup(sv->u.s.ptr, sv->u.s.len);
    t->columns = json_array();
    t->fks = json_object();
    t->uniques = json_array();
    t->indexes = json_array();
    int bad = c.pg ? pg_table(&c, t) : sqlite_table(&c, t, sql ? sql : "");
    free(sql);
    if (bad) goto out;
  }
  /* what was read is incomplete after a failure: no model is built */
  if (!g_oom) add_models(models, tables, ntables);
  if (g_oom || !models) {
    cli_error("out of memory");
    goto out;
  }
  /* Through the loader: only a models file dorm accepts is printed, in its
   * canonical form. */
  if (!json_array_size(models)) { /* an empty database */
    printf("{\"models\": []}\n");
    rc = CLI_OK;
    goto out;
  }
  json_t *doc = json_pack("{sO}", "models", models);
  char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(doc);
  if (!text) {
    cli_error("out of memory");
    goto out;
  }
  dorm_schema *s =
      text ? dorm_schema_load_string(text, "inspectdb", &err) : NULL;
  if (!s && err.code == DORM_ENOMEM) {
    cli_error("out of memory");
    free(text);
    goto out;
  }
  if (!s) {
    cli_warn(
        "warning: the database does not map onto valid models (%s); "
        "printing it as read",
        err.message);
    if (text) printf("%s\n", text);
  } else {
    json_t *canon = dorm_schema_to_json(s);
    if (canon) {
      cli_print_json(stdout, canon, 0);
      printf("\n");
    }
    json_decref(canon);
    dorm_schema_free(s);
    if (!canon) {
      cli_error("out of memory");
      free(text);
      goto out;
    }
  }
  free(text);
  rc = CLI_OK;
out:
  for (size_t i = 0; tables && i < ntables; i++) table_free(&tables[i]);
  free(tables);
  dorm_result_free(&res);
  json_decref(models);
  if (c.db) cli_db_close(&l, c.db);
  cli_loop_close(&l);
  return rc;
}
