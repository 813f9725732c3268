/* SPDX-License-Identifier: MIT */
/* query/ddl/columns.c — the parts of a statement that describe a column or
 * a table constraint: the column's type for the dialect, its full
 * definition (NOT NULL, PRIMARY KEY, UNIQUE, REFERENCES ... ON DELETE),
 * and the bodies of UNIQUE and CHECK constraints.
 *
 * Emit helpers: written with emit.c and literal.c, used by the statements
 * above (tables.c, alter.c).  CREATE TABLE and ALTER TABLE ADD COLUMN
 * render a field through the same dorm__ddl_column, so a column reads the
 * same wherever it is created.
 */
#include <stdio.h>
#include <string.h>

#include "query/ddl/ddl_int.h"

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
