/* SPDX-License-Identifier: MIT */
/* query/ddl.c — schema changes compiled to SQL (the contract is in
 * include/dorm/ddl.h, the SQL each operation gives in docs/ddl.md).
 *
 * This file holds the output list, the shared rendering (types, column
 * definitions, derived names, CREATE TABLE, indexes, join tables) and the
 * operations that are the same shape on both dialects.  alter_field and
 * SQLite's table rebuild are in ddl_alter.c, literals and check conditions
 * in ddl_literal.c.
 *
 * dorm cannot ask the database what its constraints are called (the
 * compiler does no I/O), so every constraint and index dorm creates gets a
 * name derived from the table and columns (dorm__ddl_name); a later
 * operation derives the same name to drop or rename it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "query/ddl_int.h"
#include "query/quote_int.h"
#include "schema/schema_int.h"

/* ---- the output list ---------------------------------------------------- */

void dorm_ddl_init(dorm_ddl *ddl) { memset(ddl, 0, sizeof *ddl); }

void dorm_ddl_free(dorm_ddl *ddl) {
  if (!ddl) return;
  for (size_t i = 0; i < ddl->n; i++) dorm__free(ddl->stmts[i]);
  dorm__free(ddl->stmts);
  memset(ddl, 0, sizeof *ddl);
}

/* ---- the compile context ------------------------------------------------ */

void dorm__ddl_begin(ddl_ctx *c, dorm_dialect d, const dorm_model *m,
                     dorm_ddl *out, dorm_error *err) {
  memset(c, 0, sizeof *c);
  c->d = d;
  c->out = out;
  c->err = err;
  c->m = m;
  dorm_ddl_free(out);
  dorm_error_clear(err);
  dorm__buf_init(&c->b);
  if (d != DORM_DIALECT_POSTGRES && d != DORM_DIALECT_SQLITE)
    dorm__ddl_fail(c, DORM_EINVAL, "unknown dialect %d", (int)d);
}

int dorm__ddl_end(ddl_ctx *c) {
  if (!c->rc && (c->oom || c->b.oom))
    c->rc = dorm_error_set(c->err, DORM_ENOMEM, "%s", "out of memory");
  dorm__buf_free(&c->b);
  if (c->rc) dorm_ddl_free(c->out);
  return c->rc;
}

static void fail_v(ddl_ctx *c, int code, const char *fmt, va_list ap) {
  char msg[DORM_ERROR_MSG_MAX];
  vsnprintf(msg, sizeof msg, fmt, ap);
  c->rc = code;
  const char *mn = c->m && c->m->name ? c->m->name : "?";
  if (c->f)
    dorm_error_set(c->err, code, "model '%s', field '%s': %s", mn,
                   c->f->name ? c->f->name : "?", msg);
  else
    dorm_error_set(c->err, code, "model '%s': %s", mn, msg);
}

int dorm__ddl_fail(ddl_ctx *c, int code, const char *fmt, ...) {
  if (c->rc) return c->rc; /* the first error is the one to report */
  va_list ap;
  va_start(ap, fmt);
  fail_v(c, code, fmt, ap);
  va_end(ap);
  return code;
}

void dorm__ddl_ident(ddl_ctx *c, const char *ident) {
  if (c->rc) return;
  dorm_error e;
  dorm_error_clear(&e);
  if (dorm__quote_ident_buf(&c->b, ident, &e))
    dorm__ddl_fail(c, DORM_EIDENT, "%s", e.message);
}

void dorm__ddl_tmp_table(ddl_ctx *c, const char *table) {
  if (c->rc) return;
  if (!table || !dorm_ident_valid(table)) {
    dorm__ddl_ident(c, table); /* records the error */
    return;
  }
  dorm__buf_puts(&c->b, "\"new__");
  dorm__buf_puts(&c->b, table);
  dorm__buf_putc(&c->b, '"');
}

void dorm__ddl_puts(ddl_ctx *c, const char *s) {
  if (!c->rc) dorm__buf_puts(&c->b, s);
}

void dorm__ddl_emit(ddl_ctx *c) {
  if (c->rc || c->b.oom || c->oom) {
    c->b.len = 0;
    return;
  }
  dorm_ddl *o = c->out;
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 8;
    char **s = dorm__realloc(o->stmts, cap * sizeof *s);
    if (!s) {
      c->oom = 1;
      return;
    }
    o->stmts = s;
    o->cap = cap;
  }
  /* The statement takes the buffer's memory; the next starts afresh. */
  o->stmts[o->n++] = c->b.data;
  dorm__buf_init(&c->b);
}

/* ---- fields ------------------------------------------------------------- */

int dorm__ddl_is_m2m(const dorm_field *f) {
  return f->type == DORM_FIELD_MANY_TO_MANY;
}

int dorm__ddl_is_rel(const dorm_field *f) {
  return f->type == DORM_FIELD_FOREIGN_KEY || f->type == DORM_FIELD_ONE_TO_ONE;
}

int dorm__ddl_is_auto(const dorm_field *f) {
  return f->type == DORM_FIELD_AUTO || f->type == DORM_FIELD_BIGAUTO;
}

int dorm__ddl_needs_unique(const dorm_field *f) {
  if (f->flags & DORM_FIELD_PRIMARY_KEY) return 0;
  return (f->flags & DORM_FIELD_UNIQUE) || f->type == DORM_FIELD_ONE_TO_ONE;
}

int dorm__ddl_needs_index(const dorm_field *f) {
  if (dorm__ddl_is_m2m(f) || (f->flags & DORM_FIELD_PRIMARY_KEY) ||
      dorm__ddl_needs_unique(f))
    return 0;
  return (f->flags & DORM_FIELD_DB_INDEX) || dorm__ddl_is_rel(f);
}

int dorm__ddl_keeps_default(const dorm_field *f) {
  return dorm__ddl_is_rel(f) && f->on_delete == DORM_ON_DELETE_SET_DEFAULT &&
         dorm__ddl_default(f) != NULL;
}

const dorm_field *dorm__ddl_model_pk(const dorm_model *m) {
  if (!m) return NULL;
  if (m->pk) return m->pk;
  for (size_t i = 0; i < m->nfields; i++)
    if (m->fields[i].flags & DORM_FIELD_PRIMARY_KEY) return &m->fields[i];
  return NULL;
}

const dorm_field *dorm__ddl_value_field(const dorm_field *f) {
  /* A key may itself be a relation (a one_to_one primary key); the depth
   * bound stops a malformed cycle. */
  for (int depth = 0; f && depth < 16; depth++) {
    if (!dorm__ddl_is_rel(f)) return f;
    f = dorm__ddl_model_pk(f->target);
  }
  return NULL;
}

const dorm_field *dorm__ddl_find_field(const dorm_model *m, const char *name) {
  if (!m || !name) return NULL;
  for (size_t i = 0; i < m->nfields; i++)
    if (m->fields[i].name && strcmp(m->fields[i].name, name) == 0)
      return &m->fields[i];
  return NULL;
}

const dorm_field *dorm__ddl_lookup(const dorm_model *m, const char *name) {
  const dorm_field *f = dorm__ddl_find_field(m, name);
  if (f || !m || !name) return f;
  for (size_t i = 0; i < m->nfields; i++)
    if (m->fields[i].column && strcmp(m->fields[i].column, name) == 0)
      return &m->fields[i];
  return NULL;
}

const dorm_value *dorm__ddl_default(const dorm_field *f) {
  if (!(f->flags & DORM_FIELD_HAS_DEFAULT)) return NULL;
  if (f->default_value.type == DORM_T_NULL) return NULL;
  return &f->default_value;
}

/* ---- names -------------------------------------------------------------- */

static uint32_t fnv1a(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h;
}

void dorm__ddl_name(char *out, const char *table, const char *const *parts,
                    size_t nparts, const char *suffix) {
  /* Build the full name first (it may be long), then cut if needed. */
  char full[(DORM_IDENT_MAX + 1) * 5 + 16];
  size_t n = 0;
  const char *items[4 + 2];
  size_t k = 0;
  items[k++] = table ? table : "";
  for (size_t i = 0; i < nparts && k < 5; i++) items[k++] = parts[i];
  items[k++] = suffix;
  for (size_t i = 0; i < k; i++) {
    size_t l = strlen(items[i]);
    if (n + l + 2 >= sizeof full) l = sizeof full - n - 2;
    if (i) full[n++] = '_';
    memcpy(full + n, items[i], l);
    n += l;
  }
  full[n] = '\0';
  if (n <= DORM_IDENT_MAX) {
    memcpy(out, full, n + 1);
    return;
  }
  /* <prefix>_<hash8>_<suffix>, 63 bytes exactly. */
  size_t sl = strlen(suffix);
  size_t keep = DORM_IDENT_MAX - 1 - 8 - 1 - sl;
  memcpy(out, full, keep);
  snprintf(out + keep, DORM_IDENT_MAX + 1 - keep, "_%08x_%s",
           (unsigned)fnv1a(full, n), suffix);
}

void dorm__ddl_name1(char *out, const char *table, const char *col,
                     const char *suffix) {
  dorm__ddl_name(out, table, &col, 1, suffix);
}

/* ---- types -------------------------------------------------------------- */

void dorm__ddl_type(ddl_ctx *c, const dorm_field *f) {
  if (c->rc) return;
  int pg = c->d == DORM_DIALECT_POSTGRES;
  const dorm_field *vf = f;
  if (dorm__ddl_is_rel(f)) {
    vf = dorm__ddl_value_field(f);
    if (!vf) {
      dorm__ddl_fail(c, DORM_ESCHEMA, "relation to '%s' is not resolved",
                     f->to ? f->to : "?");
      return;
    }
  }
  dorm__buf *b = &c->b;
  switch (vf->type) {
    case DORM_FIELD_AUTO: dorm__buf_puts(b, "integer"); break;
    case DORM_FIELD_BIGAUTO:
      /* SQLite's AUTOINCREMENT needs exactly "integer" (the rowid alias,
       * 64-bit anyway); a reference to it is a bigint, as in Django.  The
       * type name is case-insensitive, and SQLite keeps it as declared: the
       * upper case is what tells inspectdb this was a bigauto. */
      dorm__buf_puts(b, !pg && vf == f ? "INTEGER" : "bigint");
      break;
    case DORM_FIELD_SMALLINT: dorm__buf_puts(b, "smallint"); break;
    case DORM_FIELD_INTEGER: dorm__buf_puts(b, "integer"); break;
    case DORM_FIELD_BIGINT: dorm__buf_puts(b, "bigint"); break;
    case DORM_FIELD_FLOAT:
      dorm__buf_puts(b, pg ? "double precision" : "real");
      break;
    case DORM_FIELD_DECIMAL:
      /* SQLite ignores the precision (NUMERIC affinity either way) but
       * keeps the declared type, so inspectdb can read it back. */
      if (vf->max_digits > 0)
        dorm__buf_printf(b, pg ? "numeric(%d, %d)" : "decimal(%d, %d)",
                         vf->max_digits, vf->decimal_places);
      else
        dorm__buf_puts(b, pg ? "numeric" : "decimal");
      break;
    case DORM_FIELD_BOOLEAN: dorm__buf_puts(b, pg ? "boolean" : "bool"); break;
    case DORM_FIELD_VARCHAR:
      if (vf->max_length > 0)
        dorm__buf_printf(b, "varchar(%d)", vf->max_length);
      else
        dorm__buf_puts(b, "varchar");
      break;
    case DORM_FIELD_TEXT: dorm__buf_puts(b, "text"); break;
    case DORM_FIELD_DATE: dorm__buf_puts(b, "date"); break;
    case DORM_FIELD_DATETIME:
      dorm__buf_puts(b, pg ? "timestamp with time zone" : "datetime");
      break;
    case DORM_FIELD_TIME: dorm__buf_puts(b, "time"); break;
    case DORM_FIELD_UUID: dorm__buf_puts(b, pg ? "uuid" : "char(36)"); break;
    case DORM_FIELD_JSON: dorm__buf_puts(b, pg ? "jsonb" : "text"); break;
    case DORM_FIELD_BINARY: dorm__buf_puts(b, pg ? "bytea" : "BLOB"); break;
    default:
      dorm__ddl_fail(c, DORM_ESCHEMA, "field type %d has no column",
                     (int)vf->type);
  }
}

void dorm__ddl_references(ddl_ctx *c, const dorm_field *f) {
  const dorm_field *tpk = dorm__ddl_model_pk(f->target);
  if (!f->target || !tpk) {
    dorm__ddl_fail(c, DORM_ESCHEMA, "relation to '%s' is not resolved",
                   f->to ? f->to : "?");
    return;
  }
  dorm__ddl_puts(c, "REFERENCES ");
  dorm__ddl_ident(c, f->target->table);
  dorm__ddl_puts(c, " (");
  dorm__ddl_ident(c, tpk->column);
  dorm__ddl_puts(c, ")");
  switch (f->on_delete) {
    case DORM_ON_DELETE_CASCADE: dorm__ddl_puts(c, " ON DELETE CASCADE"); break;
    /* protect and restrict both refuse at once, not at commit: RESTRICT
     * is checked immediately even in a deferred constraint. */
    case DORM_ON_DELETE_PROTECT:
    case DORM_ON_DELETE_RESTRICT:
      dorm__ddl_puts(c, " ON DELETE RESTRICT");
      break;
    case DORM_ON_DELETE_SET_NULL:
      dorm__ddl_puts(c, " ON DELETE SET NULL");
      break;
    case DORM_ON_DELETE_SET_DEFAULT:
      dorm__ddl_puts(c, " ON DELETE SET DEFAULT");
      break;
    case DORM_ON_DELETE_DO_NOTHING: break;
  }
  dorm__ddl_puts(c, " DEFERRABLE INITIALLY DEFERRED");
}

void dorm__ddl_column(ddl_ctx *c, const char *table, const dorm_field *f,
                      unsigned flags) {
  const dorm_field *saved = c->f;
  c->f = f;
  int pg = c->d == DORM_DIALECT_POSTGRES;
  char name[DORM_IDENT_MAX + 1];
  if (!f->column) {
    dorm__ddl_fail(c, DORM_ESCHEMA, "field has no column");
    c->f = saved;
    return;
  }
  dorm__ddl_ident(c, f->column);
  dorm__ddl_puts(c, " ");
  dorm__ddl_type(c, f);
  const dorm_value *def = dorm__ddl_default(f);
  if (def && ((flags & DDL_COL_DEFAULT) || dorm__ddl_keeps_default(f))) {
    dorm__ddl_puts(c, " DEFAULT ");
    dorm__ddl_put_literal(c, dorm__ddl_value_field(f), *def);
  }
  int pk = (f->flags & DORM_FIELD_PRIMARY_KEY) != 0;
  dorm__ddl_puts(c,
                 (f->flags & DORM_FIELD_NULL) && !pk ? " NULL" : " NOT NULL");
  if (pk) {
    dorm__ddl_puts(c, " PRIMARY KEY");
    if (dorm__ddl_is_auto(f))
      dorm__ddl_puts(
          c, pg ? " GENERATED BY DEFAULT AS IDENTITY" : " AUTOINCREMENT");
  } else if (dorm__ddl_is_auto(f)) {
    dorm__ddl_fail(c, DORM_ESCHEMA, "an auto field must be the primary key");
  }
  if (dorm__ddl_needs_unique(f)) {
    dorm__ddl_name1(name, table, f->column, "uniq");
    dorm__ddl_puts(c, " CONSTRAINT ");
    dorm__ddl_ident(c, name);
    dorm__ddl_puts(c, " UNIQUE");
  }
  if (!pg && f->type == DORM_FIELD_JSON) {
    /* SQLite has no json type: keep the text valid JSON, as Django. */
    dorm__ddl_puts(c, " CHECK ((JSON_VALID(");
    dorm__ddl_ident(c, f->column);
    dorm__ddl_puts(c, ") OR ");
    dorm__ddl_ident(c, f->column);
    dorm__ddl_puts(c, " IS NULL))");
  }
  if (dorm__ddl_is_rel(f)) {
    dorm__ddl_name1(name, table, f->column, "fk");
    dorm__ddl_puts(c, " CONSTRAINT ");
    dorm__ddl_ident(c, name);
    dorm__ddl_puts(c, " ");
    dorm__ddl_references(c, f);
  }
  c->f = saved;
}

void dorm__ddl_constraint_body(ddl_ctx *c, const dorm_model *m,
                               const dorm_ddl_constraint *k) {
  if (k->kind == DORM_CONSTRAINT_UNIQUE) {
    if (k->nfields == 0) {
      dorm__ddl_fail(c, DORM_EINVAL, "constraint '%s' names no field",
                     k->name ? k->name : "?");
      return;
    }
    dorm__ddl_puts(c, "UNIQUE (");
    for (size_t i = 0; i < k->nfields; i++) {
      const dorm_field *f = dorm__ddl_lookup(m, k->fields[i]);
      if (!f || !f->column || dorm__ddl_is_m2m(f)) {
        dorm__ddl_fail(c, DORM_EFIELD, "constraint '%s': unknown field '%s'",
                       k->name ? k->name : "?", k->fields[i]);
        return;
      }
      if (i) dorm__ddl_puts(c, ", ");
      dorm__ddl_ident(c, f->column);
    }
    dorm__ddl_puts(c, ")");
  } else if (k->kind == DORM_CONSTRAINT_CHECK) {
    dorm__ddl_puts(c, "CHECK (");
    dorm__ddl_check_condition(c, m, k);
    dorm__ddl_puts(c, ")");
  } else {
    dorm__ddl_fail(c, DORM_EINVAL, "constraint '%s' has an unknown kind",
                   k->name ? k->name : "?");
  }
}

/* ---- CREATE TABLE and indexes ------------------------------------------- */

static void index_columns(ddl_ctx *c, const dorm_model *m,
                          const char *const *fields, size_t n,
                          const char *what) {
  if (n == 0) {
    dorm__ddl_fail(c, DORM_EINVAL, "%s names no field", what);
    return;
  }
  dorm__ddl_puts(c, "(");
  for (size_t i = 0; i < n; i++) {
    const dorm_field *f = dorm__ddl_lookup(m, fields[i]);
    if (!f || !f->column || dorm__ddl_is_m2m(f)) {
      dorm__ddl_fail(c, DORM_EFIELD, "%s: unknown field '%s'", what,
                     fields[i] ? fields[i] : "(null)");
      return;
    }
    if (i) dorm__ddl_puts(c, ", ");
    dorm__ddl_ident(c, f->column);
  }
  dorm__ddl_puts(c, ")");
}

void dorm__ddl_create_table(ddl_ctx *c, const dorm_model *m,
                            const dorm_ddl_constraint *cons, size_t ncons,
                            int tmp_name) {
  dorm__ddl_puts(c, "CREATE TABLE ");
  if (tmp_name)
    dorm__ddl_tmp_table(c, m->table);
  else
    dorm__ddl_ident(c, m->table);
  dorm__ddl_puts(c, " (");
  int first = 1;
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (dorm__ddl_is_m2m(f)) continue;
    if (!first) dorm__ddl_puts(c, ", ");
    first = 0;
    dorm__ddl_column(c, m->table, f, 0);
  }
  if (first) dorm__ddl_fail(c, DORM_ESCHEMA, "model has no column");
  for (size_t i = 0; i < m->nunique_together; i++) {
    const dorm_index *u = &m->unique_together[i];
    dorm__ddl_puts(c, ", CONSTRAINT ");
    dorm__ddl_ident(c, u->name);
    dorm__ddl_puts(c, " UNIQUE ");
    index_columns(c, m, u->fields, u->nfields, "unique_together");
  }
  for (size_t i = 0; i < ncons; i++) {
    dorm__ddl_puts(c, ", CONSTRAINT ");
    dorm__ddl_ident(c, cons[i].name);
    dorm__ddl_puts(c, " ");
    dorm__ddl_constraint_body(c, m, &cons[i]);
  }
  dorm__ddl_puts(c, ")");
  dorm__ddl_emit(c);
}

void dorm__ddl_field_index(ddl_ctx *c, const dorm_model *m,
                           const dorm_field *f) {
  char name[DORM_IDENT_MAX + 1];
  dorm__ddl_name1(name, m->table, f->column, "idx");
  dorm__ddl_puts(c, "CREATE INDEX ");
  dorm__ddl_ident(c, name);
  dorm__ddl_puts(c, " ON ");
  dorm__ddl_ident(c, m->table);
  dorm__ddl_puts(c, " (");
  dorm__ddl_ident(c, f->column);
  dorm__ddl_puts(c, ")");
  dorm__ddl_emit(c);
}

static void model_index(ddl_ctx *c, const dorm_model *m, const dorm_index *ix) {
  dorm__ddl_puts(c, ix->unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ");
  dorm__ddl_ident(c, ix->name);
  dorm__ddl_puts(c, " ON ");
  dorm__ddl_ident(c, m->table);
  dorm__ddl_puts(c, " ");
  index_columns(c, m, ix->fields, ix->nfields, "index");
  dorm__ddl_emit(c);
}

void dorm__ddl_drop_index(ddl_ctx *c, const char *name) {
  dorm__ddl_puts(c, "DROP INDEX ");
  dorm__ddl_ident(c, name);
  dorm__ddl_emit(c);
}

void dorm__ddl_create_indexes(ddl_ctx *c, const dorm_model *m) {
  for (size_t i = 0; i < m->nfields; i++)
    if (dorm__ddl_needs_index(&m->fields[i]))
      dorm__ddl_field_index(c, m, &m->fields[i]);
  for (size_t i = 0; i < m->nindexes; i++) model_index(c, m, &m->indexes[i]);
}

/* ---- many_to_many join tables -------------------------------------------
 * The join table is described as a model of its own (id, two foreign keys
 * with ON DELETE CASCADE, unique together), so CREATE TABLE, the indexes
 * and the renames reuse the code written for models. */

typedef struct through {
  dorm_field fields[3];
  const char *ut_fields[2];
  dorm_index ut;
  dorm_model m;
  char from[DORM_IDENT_MAX + 1], to[DORM_IDENT_MAX + 1];
  char ut_name[DORM_IDENT_MAX + 1];
} through;

int dorm_ddl_m2m_columns(const dorm_field *f, char *from_col, char *to_col) {
  return dorm__m2m_columns(f, from_col, to_col);
}

static int through_model(ddl_ctx *c, const dorm_field *f, through *t) {
  memset(t, 0, sizeof *t);
  const dorm_field *saved = c->f;
  c->f = f;
  int rc = dorm__m2m_columns(f, t->from, t->to);
  if (rc == DORM_EIDENT)
    dorm__ddl_fail(c, rc, "a join table column name would be longer than %d",
                   DORM_IDENT_MAX);
  else if (rc)
    dorm__ddl_fail(c, rc, "many_to_many to '%s' is not resolved",
                   f->to ? f->to : "?");
  else if (!f->through_table)
    rc = dorm__ddl_fail(c, DORM_ESCHEMA, "many_to_many has no join table");
  c->f = saved;
  if (rc || c->rc) return c->rc ? c->rc : rc;
  dorm_field *id = &t->fields[0], *a = &t->fields[1], *b = &t->fields[2];
  id->name = id->column = "id";
  id->type = DORM_FIELD_AUTO;
  id->flags = DORM_FIELD_PRIMARY_KEY;
  a->name = a->column = t->from;
  a->type = DORM_FIELD_FOREIGN_KEY;
  a->target = f->model;
  a->to = f->model->name;
  a->on_delete = DORM_ON_DELETE_CASCADE;
  b->name = b->column = t->to;
  b->type = DORM_FIELD_FOREIGN_KEY;
  b->target = f->target;
  b->to = f->target->name;
  b->on_delete = DORM_ON_DELETE_CASCADE;
  const char *parts[2] = {t->from, t->to};
  dorm__ddl_name(t->ut_name, f->through_table, parts, 2, "uniq");
  t->ut_fields[0] = t->from;
  t->ut_fields[1] = t->to;
  t->ut.name = t->ut_name;
  t->ut.fields = t->ut_fields;
  t->ut.nfields = 2;
  t->ut.unique = 1;
  t->m.name = f->model->name; /* messages name the model the user wrote */
  t->m.table = f->through_table;
  t->m.fields = t->fields;
  t->m.nfields = 3;
  t->m.pk = id;
  t->m.unique_together = &t->ut;
  t->m.nunique_together = 1;
  for (int i = 0; i < 3; i++) t->fields[i].model = &t->m;
  return 0;
}

void dorm__ddl_create_through(ddl_ctx *c, const dorm_model *m,
                              const dorm_field *f) {
  (void)m;
  through t;
  if (through_model(c, f, &t)) return;
  dorm__ddl_create_table(c, &t.m, NULL, 0, 0);
  dorm__ddl_create_indexes(c, &t.m);
}

static void drop_table(ddl_ctx *c, const char *table) {
  dorm__ddl_puts(c, "DROP TABLE ");
  dorm__ddl_ident(c, table);
  /* PostgreSQL: also drop foreign keys of other tables that point here,
   * as Django does; SQLite has nothing to cascade in DDL. */
  if (c->d == DORM_DIALECT_POSTGRES) dorm__ddl_puts(c, " CASCADE");
  dorm__ddl_emit(c);
}

/* ---- renaming derived names --------------------------------------------- */

void dorm__ddl_rename_constraint(ddl_ctx *c, const char *table,
                                 const char *from, const char *to) {
  /* SQLite never refers to a constraint by name (changes rebuild the
   * table), so only PostgreSQL needs its names kept in step. */
  if (c->d != DORM_DIALECT_POSTGRES || strcmp(from, to) == 0) return;
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_ident(c, table);
  dorm__ddl_puts(c, " RENAME CONSTRAINT ");
  dorm__ddl_ident(c, from);
  dorm__ddl_puts(c, " TO ");
  dorm__ddl_ident(c, to);
  dorm__ddl_emit(c);
}

/* An index that keeps its columns but changes its name.  SQLite cannot
 * rename an index: drop it and create it again under the new name. */
static void rename_index(ddl_ctx *c, const dorm_model *after,
                         const dorm_index *ix_after, const dorm_field *f_after,
                         const char *from, const char *to) {
  if (strcmp(from, to) == 0) return;
  if (c->d == DORM_DIALECT_POSTGRES) {
    dorm__ddl_puts(c, "ALTER INDEX ");
    dorm__ddl_ident(c, from);
    dorm__ddl_puts(c, " RENAME TO ");
    dorm__ddl_ident(c, to);
    dorm__ddl_emit(c);
    return;
  }
  dorm__ddl_drop_index(c, from);
  if (ix_after)
    model_index(c, after, ix_after);
  else
    dorm__ddl_field_index(c, after, f_after);
}

/* Keep the names dorm derived for field fb of table tb in step with fa of
 * table ta (the table or the column was renamed).  Only what both have is
 * renamed; what appears or disappears is the caller's business. */
void dorm__ddl_rename_field_names(ddl_ctx *c, const dorm_model *after,
                                  const char *tb, const dorm_field *fb,
                                  const dorm_field *fa, int with_fk) {
  char from[DORM_IDENT_MAX + 1], to[DORM_IDENT_MAX + 1];
  const char *ta = after->table;
  if (!fb->column || !fa->column) return;
  if (dorm__ddl_needs_unique(fb) && dorm__ddl_needs_unique(fa)) {
    dorm__ddl_name1(from, tb, fb->column, "uniq");
    dorm__ddl_name1(to, ta, fa->column, "uniq");
    dorm__ddl_rename_constraint(c, ta, from, to);
  }
  if (with_fk && dorm__ddl_is_rel(fb) && dorm__ddl_is_rel(fa)) {
    dorm__ddl_name1(from, tb, fb->column, "fk");
    dorm__ddl_name1(to, ta, fa->column, "fk");
    dorm__ddl_rename_constraint(c, ta, from, to);
  }
  if (dorm__ddl_needs_index(fb) && dorm__ddl_needs_index(fa)) {
    dorm__ddl_name1(from, tb, fb->column, "idx");
    dorm__ddl_name1(to, ta, fa->column, "idx");
    rename_index(c, after, NULL, fa, from, to);
  }
}

static void rename_table(ddl_ctx *c, const char *from, const char *to) {
  if (strcmp(from, to) == 0) return;
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_ident(c, from);
  dorm__ddl_puts(c, " RENAME TO ");
  dorm__ddl_ident(c, to);
  dorm__ddl_emit(c);
}

static void rename_column(ddl_ctx *c, const char *table, const char *from,
                          const char *to) {
  if (strcmp(from, to) == 0) return;
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_ident(c, table);
  dorm__ddl_puts(c, " RENAME COLUMN ");
  dorm__ddl_ident(c, from);
  dorm__ddl_puts(c, " TO ");
  dorm__ddl_ident(c, to);
  dorm__ddl_emit(c);
}

void dorm__ddl_rename_column(ddl_ctx *c, const char *table, const char *from,
                             const char *to) {
  rename_column(c, table, from, to);
}

void dorm__ddl_rename_through(ddl_ctx *c, const dorm_field *old_f,
                              const dorm_field *new_f) {
  through tb, ta;
  if (through_model(c, old_f, &tb) || through_model(c, new_f, &ta)) return;
  rename_table(c, tb.m.table, ta.m.table);
  rename_column(c, ta.m.table, tb.from, ta.from);
  rename_column(c, ta.m.table, tb.to, ta.to);
  for (int i = 0; i < 3; i++)
    dorm__ddl_rename_field_names(c, &ta.m, tb.m.table, &tb.fields[i],
                                 &ta.fields[i], 1);
  dorm__ddl_rename_constraint(c, ta.m.table, tb.ut_name, ta.ut_name);
}

/* ---- operations --------------------------------------------------------- */

int dorm_ddl_create_model(const dorm_model *m, const dorm_ddl_constraint *cons,
                          size_t ncons, dorm_dialect d, dorm_ddl *out,
                          dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m) return dorm__ddl_fail(&c, DORM_EINVAL, "no model"), dorm__ddl_end(&c);
  dorm__ddl_create_table(&c, m, cons, ncons, 0);
  dorm__ddl_create_indexes(&c, m);
  for (size_t i = 0; i < m->nfields; i++)
    if (dorm__ddl_is_m2m(&m->fields[i]))
      dorm__ddl_create_through(&c, m, &m->fields[i]);
  return dorm__ddl_end(&c);
}

int dorm_ddl_delete_model(const dorm_model *m, dorm_dialect d, dorm_ddl *out,
                          dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m) return dorm__ddl_fail(&c, DORM_EINVAL, "no model"), dorm__ddl_end(&c);
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (!dorm__ddl_is_m2m(f)) continue;
    c.f = f;
    drop_table(&c, f->through_table);
    c.f = NULL;
  }
  drop_table(&c, m->table);
  return dorm__ddl_end(&c);
}

int dorm_ddl_rename_model(const dorm_model *before, const dorm_model *after,
                          dorm_dialect d, dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, after, out, err);
  if (!before || !after)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model"), dorm__ddl_end(&c);
  rename_table(&c, before->table, after->table);
  for (size_t i = 0; i < after->nfields; i++) {
    const dorm_field *fa = &after->fields[i];
    const dorm_field *fb = dorm__ddl_find_field(before, fa->name);
    if (!fb) continue;
    c.f = fa;
    if (dorm__ddl_is_m2m(fa) && dorm__ddl_is_m2m(fb))
      dorm__ddl_rename_through(&c, fb, fa);
    else
      dorm__ddl_rename_field_names(&c, after, before->table, fb, fa, 1);
    c.f = NULL;
  }
  for (size_t i = 0; i < after->nindexes && i < before->nindexes; i++)
    rename_index(&c, after, &after->indexes[i], NULL, before->indexes[i].name,
                 after->indexes[i].name);
  for (size_t i = 0;
       i < after->nunique_together && i < before->nunique_together; i++)
    dorm__ddl_rename_constraint(&c, after->table,
                                before->unique_together[i].name,
                                after->unique_together[i].name);
  return dorm__ddl_end(&c);
}

static void add_column(ddl_ctx *c, const dorm_model *m, const dorm_field *f,
                       unsigned flags) {
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_ident(c, m->table);
  dorm__ddl_puts(c, " ADD COLUMN ");
  dorm__ddl_column(c, m->table, f, flags);
  dorm__ddl_emit(c);
}

int dorm_ddl_add_field(const dorm_model *after, const dorm_ddl_constraint *cons,
                       size_t ncons, const dorm_field *f, dorm_dialect d,
                       dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, after, out, err);
  if (!after || !f)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or field"),
           dorm__ddl_end(&c);
  if (dorm__ddl_is_m2m(f)) {
    dorm__ddl_create_through(&c, after, f);
    return dorm__ddl_end(&c);
  }
  const dorm_value *def = dorm__ddl_default(f);
  if (d == DORM_DIALECT_POSTGRES) {
    /* The default fills the rows already there, then goes: dorm, like
     * Django, keeps defaults in the application, not the schema. */
    add_column(&c, after, f, DDL_COL_DEFAULT);
    if (def && !dorm__ddl_keeps_default(f)) {
      dorm__ddl_puts(&c, "ALTER TABLE ");
      dorm__ddl_ident(&c, after->table);
      dorm__ddl_puts(&c, " ALTER COLUMN ");
      dorm__ddl_ident(&c, f->column);
      dorm__ddl_puts(&c, " DROP DEFAULT");
      dorm__ddl_emit(&c);
    }
    if (dorm__ddl_needs_index(f)) dorm__ddl_field_index(&c, after, f);
  } else if ((f->flags & DORM_FIELD_PRIMARY_KEY) || dorm__ddl_needs_unique(f) ||
             !(f->flags & DORM_FIELD_NULL) || def) {
    /* SQLite's ADD COLUMN cannot add a key or a unique column, and a
     * default given there would stay in the schema for good. */
    ddl_rebuild r = {after, after, cons, ncons, NULL, NULL, f};
    dorm__ddl_sqlite_rebuild(&c, &r);
  } else {
    add_column(&c, after, f, 0);
    if (dorm__ddl_needs_index(f)) dorm__ddl_field_index(&c, after, f);
  }
  return dorm__ddl_end(&c);
}

static int names_field(const char *const *names, size_t n,
                       const dorm_field *f) {
  for (size_t i = 0; i < n; i++)
    if (names[i] && ((f->name && strcmp(names[i], f->name) == 0) ||
                     (f->column && strcmp(names[i], f->column) == 0)))
      return 1;
  return 0;
}

/* Whether SQLite can DROP COLUMN f: not a key, not unique, not indexed,
 * no reference, not named by any index or table constraint (Django's
 * rule, plus the model-level indexes SQLite also refuses). */
static int sqlite_can_drop(const dorm_model *m, const dorm_ddl_constraint *cons,
                           size_t ncons, const dorm_field *f) {
  if ((f->flags &
       (DORM_FIELD_PRIMARY_KEY | DORM_FIELD_UNIQUE | DORM_FIELD_DB_INDEX)) ||
      dorm__ddl_is_rel(f) || dorm__ddl_needs_unique(f))
    return 0;
  for (size_t i = 0; i < m->nindexes; i++)
    if (names_field(m->indexes[i].fields, m->indexes[i].nfields, f)) return 0;
  for (size_t i = 0; i < m->nunique_together; i++)
    if (names_field(m->unique_together[i].fields, m->unique_together[i].nfields,
                    f))
      return 0;
  for (size_t i = 0; i < ncons; i++) {
    if (names_field(cons[i].fields, cons[i].nfields, f)) return 0;
    for (size_t j = 0; j < cons[i].nterms; j++)
      if (names_field(&cons[i].terms[j].field, 1, f)) return 0;
  }
  return 1;
}

int dorm_ddl_remove_field(const dorm_model *before, const dorm_model *after,
                          const dorm_ddl_constraint *cons, size_t ncons,
                          const dorm_field *f, dorm_dialect d, dorm_ddl *out,
                          dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, before, out, err);
  if (!before || !after || !f)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or field"),
           dorm__ddl_end(&c);
  c.f = f;
  if (dorm__ddl_is_m2m(f)) {
    drop_table(&c, f->through_table);
    return dorm__ddl_end(&c);
  }
  if (!f->column) dorm__ddl_fail(&c, DORM_ESCHEMA, "field has no column");
  if (d == DORM_DIALECT_SQLITE && !sqlite_can_drop(before, cons, ncons, f)) {
    c.f = NULL;
    ddl_rebuild r = {before, after, cons, ncons, NULL, NULL, NULL};
    dorm__ddl_sqlite_rebuild(&c, &r);
    return dorm__ddl_end(&c);
  }
  dorm__ddl_puts(&c, "ALTER TABLE ");
  dorm__ddl_ident(&c, before->table);
  dorm__ddl_puts(&c, " DROP COLUMN ");
  dorm__ddl_ident(&c, f->column);
  /* PostgreSQL: indexes and constraints on the column go with it. */
  if (d == DORM_DIALECT_POSTGRES) dorm__ddl_puts(&c, " CASCADE");
  dorm__ddl_emit(&c);
  return dorm__ddl_end(&c);
}

int dorm_ddl_add_index(const dorm_model *m, const dorm_index *index,
                       dorm_dialect d, dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m || !index)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or index"),
           dorm__ddl_end(&c);
  model_index(&c, m, index);
  return dorm__ddl_end(&c);
}

int dorm_ddl_remove_index(const dorm_model *m, const dorm_index *index,
                          dorm_dialect d, dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m || !index)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or index"),
           dorm__ddl_end(&c);
  dorm__ddl_drop_index(&c, index->name);
  return dorm__ddl_end(&c);
}

/* SQLite: rebuild with cons, plus c (add) or minus c (remove), so the
 * result does not depend on whether the caller listed c. */
static void sqlite_constraint_rebuild(ddl_ctx *c, const dorm_model *m,
                                      const dorm_ddl_constraint *cons,
                                      size_t ncons,
                                      const dorm_ddl_constraint *k, int add) {
  /* The name is checked even though SQLite never uses it, so both
   * dialects refuse the same operations. */
  if (!k->name || !dorm_ident_valid(k->name)) {
    dorm__ddl_ident(c, k->name);
    return;
  }
  dorm_ddl_constraint *list = dorm__calloc(ncons + 1, sizeof *list);
  if (!list) {
    c->oom = 1;
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < ncons; i++)
    if (!cons[i].name || !k->name || strcmp(cons[i].name, k->name) != 0)
      list[n++] = cons[i];
  if (add) list[n++] = *k;
  ddl_rebuild r = {m, m, list, n, NULL, NULL, NULL};
  dorm__ddl_sqlite_rebuild(c, &r);
  dorm__free(list);
}

int dorm_ddl_add_constraint(const dorm_model *m,
                            const dorm_ddl_constraint *cons, size_t ncons,
                            const dorm_ddl_constraint *k, dorm_dialect d,
                            dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m || !k)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or constraint"),
           dorm__ddl_end(&c);
  if (d == DORM_DIALECT_SQLITE) {
    sqlite_constraint_rebuild(&c, m, cons, ncons, k, 1);
    return dorm__ddl_end(&c);
  }
  dorm__ddl_puts(&c, "ALTER TABLE ");
  dorm__ddl_ident(&c, m->table);
  dorm__ddl_puts(&c, " ADD CONSTRAINT ");
  dorm__ddl_ident(&c, k->name);
  dorm__ddl_puts(&c, " ");
  dorm__ddl_constraint_body(&c, m, k);
  dorm__ddl_emit(&c);
  return dorm__ddl_end(&c);
}

int dorm_ddl_remove_constraint(const dorm_model *m,
                               const dorm_ddl_constraint *cons, size_t ncons,
                               const dorm_ddl_constraint *k, dorm_dialect d,
                               dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m || !k)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or constraint"),
           dorm__ddl_end(&c);
  if (d == DORM_DIALECT_SQLITE) {
    sqlite_constraint_rebuild(&c, m, cons, ncons, k, 0);
    return dorm__ddl_end(&c);
  }
  dorm__ddl_puts(&c, "ALTER TABLE ");
  dorm__ddl_ident(&c, m->table);
  dorm__ddl_puts(&c, " DROP CONSTRAINT ");
  dorm__ddl_ident(&c, k->name);
  dorm__ddl_emit(&c);
  return dorm__ddl_end(&c);
}
