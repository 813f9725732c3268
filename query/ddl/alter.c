/* SPDX-License-Identifier: MIT */
/* query/ddl/alter.c — alter_field's statements when the column can be
 * altered in place.
 *
 * PostgreSQL alters a column in place, in Django's order: drop what the
 * old field had and the new one lacks (foreign key, unique, index), rename
 * the column, change type, default and nullability, then add what the new
 * field has.  SQLite cannot alter a column: only when the column's name or
 * an index is all that changes does it stay in place; otherwise
 * dorm__ddl_sqlite_alter says so and the caller (ddl.c) rebuilds the table
 * (rebuild.c).  Statements group: built from tables.c and the emit
 * helpers, never from the rebuild.
 */
#include <string.h>

#include "query/ddl/ddl_int.h"

/* ---- alter_field -------------------------------------------------------- */

/* Render into a fresh buffer (by swapping ctx->b), for comparisons. */
typedef void (*render_fn)(ddl_ctx *c, const char *table, const dorm_field *f);

static void r_column(ddl_ctx *c, const char *table, const dorm_field *f) {
  dorm__ddl_column(c, table, f, 0);
}

static void r_type(ddl_ctx *c, const char *table, const dorm_field *f) {
  (void)table;
  dorm__ddl_type(c, f);
}

static void r_default(ddl_ctx *c, const char *table, const dorm_field *f) {
  (void)table;
  if (dorm__ddl_keeps_default(f))
    dorm__ddl_put_literal(c, dorm__ddl_value_field(f), *dorm__ddl_default(f));
}

/* 1 when fn renders a and b the same (both for table t). */
static int same(ddl_ctx *c, render_fn fn, const char *t, const dorm_field *a,
                const dorm_field *b) {
  dorm__buf keep = c->b, ra, rb;
  dorm__buf_init(&c->b);
  fn(c, t, a);
  ra = c->b;
  dorm__buf_init(&c->b);
  fn(c, t, b);
  rb = c->b;
  c->b = keep;
  if (ra.oom || rb.oom) c->oom = 1;
  int eq = strcmp(dorm__buf_cstr(&ra), dorm__buf_cstr(&rb)) == 0;
  dorm__buf_free(&ra);
  dorm__buf_free(&rb);
  return eq;
}

static void alter_prefix(ddl_ctx *c, const char *table, const char *col) {
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_ident(c, table);
  dorm__ddl_puts(c, " ALTER COLUMN ");
  dorm__ddl_ident(c, col);
}

static void drop_constraint(ddl_ctx *c, const char *table, const char *col,
                            const char *suffix) {
  char name[DORM_IDENT_MAX + 1];
  dorm__ddl_name1(name, table, col, suffix);
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_ident(c, table);
  dorm__ddl_puts(c, " DROP CONSTRAINT ");
  dorm__ddl_ident(c, name);
  dorm__ddl_emit(c);
}

void dorm__ddl_pg_alter(ddl_ctx *c, const dorm_model *before,
                        const dorm_model *after, const dorm_field *of,
                        const dorm_field *nf) {
  const char *t = after->table, *col = nf->column;
  char name[DORM_IDENT_MAX + 1];
  int fk_old = dorm__ddl_is_rel(of), fk_new = dorm__ddl_is_rel(nf);
  const dorm_field *tpk_old = fk_old ? dorm__ddl_model_pk(of->target) : NULL;
  const dorm_field *tpk_new = fk_new ? dorm__ddl_model_pk(nf->target) : NULL;
  int fk_changed =
      fk_old != fk_new ||
      (fk_old && (!of->target || !nf->target || !tpk_old || !tpk_new ||
                  strcmp(of->target->table, nf->target->table) != 0 ||
                  strcmp(tpk_old->column, tpk_new->column) != 0 ||
                  of->on_delete != nf->on_delete));
  int u_old = dorm__ddl_needs_unique(of), u_new = dorm__ddl_needs_unique(nf);
  int i_old = dorm__ddl_needs_index(of), i_new = dorm__ddl_needs_index(nf);

  /* 1. drop what goes away, under the old names */
  if (fk_old && fk_changed) drop_constraint(c, before->table, of->column, "fk");
  if (u_old && !u_new) drop_constraint(c, before->table, of->column, "uniq");
  if (i_old && !i_new) {
    dorm__ddl_name1(name, before->table, of->column, "idx");
    dorm__ddl_drop_index(c, name);
  }
  /* 2. the column's name, and the names derived from it */
  dorm__ddl_rename_column(c, t, of->column, col);
  dorm__ddl_rename_field_names(c, after, before->table, of, nf, !fk_changed);
  /* 3. type, default, null */
  if (!same(c, r_type, t, of, nf)) {
    alter_prefix(c, t, col);
    dorm__ddl_puts(c, " TYPE ");
    dorm__ddl_type(c, nf);
    dorm__ddl_puts(c, " USING ");
    dorm__ddl_ident(c, col);
    dorm__ddl_puts(c, "::");
    dorm__ddl_type(c, nf);
    dorm__ddl_emit(c);
  }
  if (!same(c, r_default, t, of, nf)) {
    alter_prefix(c, t, col);
    if (dorm__ddl_keeps_default(nf)) {
      dorm__ddl_puts(c, " SET DEFAULT ");
      r_default(c, t, nf);
    } else {
      dorm__ddl_puts(c, " DROP DEFAULT");
    }
    dorm__ddl_emit(c);
  }
  int null_old = (of->flags & DORM_FIELD_NULL) != 0;
  int null_new = (nf->flags & DORM_FIELD_NULL) != 0;
  if (null_old && !null_new) {
    const dorm_value *def = dorm__ddl_default(nf);
    if (def) {
      /* Rows that are NULL now take the default (Django's 4-way dance
       * without the transient DEFAULT: one UPDATE does the same). */
      dorm__ddl_puts(c, "UPDATE ");
      dorm__ddl_ident(c, t);
      dorm__ddl_puts(c, " SET ");
      dorm__ddl_ident(c, col);
      dorm__ddl_puts(c, " = ");
      dorm__ddl_put_literal(c, dorm__ddl_value_field(nf), *def);
      dorm__ddl_puts(c, " WHERE ");
      dorm__ddl_ident(c, col);
      dorm__ddl_puts(c, " IS NULL");
      dorm__ddl_emit(c);
    }
    alter_prefix(c, t, col);
    dorm__ddl_puts(c, " SET NOT NULL");
    dorm__ddl_emit(c);
  } else if (!null_old && null_new) {
    alter_prefix(c, t, col);
    dorm__ddl_puts(c, " DROP NOT NULL");
    dorm__ddl_emit(c);
  }
  /* 4. add what is new */
  if (!u_old && u_new) {
    dorm__ddl_name1(name, t, col, "uniq");
    dorm__ddl_puts(c, "ALTER TABLE ");
    dorm__ddl_ident(c, t);
    dorm__ddl_puts(c, " ADD CONSTRAINT ");
    dorm__ddl_ident(c, name);
    dorm__ddl_puts(c, " UNIQUE (");
    dorm__ddl_ident(c, col);
    dorm__ddl_puts(c, ")");
    dorm__ddl_emit(c);
  }
  if (!i_old && i_new) dorm__ddl_field_index(c, after, nf);
  if (fk_new && fk_changed) {
    dorm__ddl_name1(name, t, col, "fk");
    dorm__ddl_puts(c, "ALTER TABLE ");
    dorm__ddl_ident(c, t);
    dorm__ddl_puts(c, " ADD CONSTRAINT ");
    dorm__ddl_ident(c, name);
    dorm__ddl_puts(c, " FOREIGN KEY (");
    dorm__ddl_ident(c, col);
    dorm__ddl_puts(c, ") ");
    dorm__ddl_references(c, nf);
    dorm__ddl_emit(c);
  }
}

/* SQLite: alter in place when only the column's name (or an index)
 * changes; 1, with nothing written, when the table must be rebuilt. */
int dorm__ddl_sqlite_alter(ddl_ctx *c, const dorm_model *before,
                           const dorm_model *after, const dorm_field *of,
                           const dorm_field *nf) {
  /* The old definition as if its column already had the new name: when
   * the two read the same, only the name (or an index) changes. */
  dorm_field renamed = *of;
  renamed.column = nf->column;
  if (!same(c, r_column, after->table, &renamed, nf)) return 1;
  int i_old = dorm__ddl_needs_index(of), i_new = dorm__ddl_needs_index(nf);
  if (i_old && !i_new) {
    char name[DORM_IDENT_MAX + 1];
    dorm__ddl_name1(name, before->table, of->column, "idx");
    dorm__ddl_drop_index(c, name);
  }
  dorm__ddl_rename_column(c, after->table, of->column, nf->column);
  dorm__ddl_rename_field_names(c, after, before->table, of, nf, 1);
  if (!i_old && i_new) dorm__ddl_field_index(c, after, nf);
  return 0;
}
