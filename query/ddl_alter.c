/* SPDX-License-Identifier: MIT */
/* query/ddl_alter.c — alter_field / rename_field, and SQLite's table
 * rebuild.
 *
 * PostgreSQL alters a column in place, in Django's order: drop what the
 * old field had and the new one lacks (foreign key, unique, index), rename
 * the column, change type, default and nullability, then add what the new
 * field has.  SQLite cannot alter a column; unless only the column name or
 * an index changes, the table is rebuilt (Django's _remake_table): a
 * "new__<table>" is created from the after-model, the rows are copied with
 * INSERT ... SELECT (columns mapped by field, renamed ones from their old
 * name, new NOT NULL ones from their default), the old table dropped, the
 * new one renamed and its indexes created.  The caller's duties around a
 * rebuild (foreign_keys off before BEGIN, foreign_key_check before COMMIT)
 * are in include/dorm/ddl.h.
 */
#include <string.h>

#include "query/ddl_int.h"

/* ---- the rebuild -------------------------------------------------------- */

typedef enum src_kind {
  SRC_NONE = 0,
  SRC_COLUMN,
  SRC_DEFAULT,
  SRC_COALESCE
} src_kind;

/* Where column f of the rebuilt table takes its value from. */
static src_kind source(const ddl_rebuild *r, const dorm_field *f,
                       const char **col) {
  const dorm_value *def = dorm__ddl_default(f);
  *col = NULL;
  if (r->new_field && f == r->new_field) {
    *col = r->old_field->column;
    if ((r->old_field->flags & DORM_FIELD_NULL) &&
        !(f->flags & DORM_FIELD_NULL) && def)
      return SRC_COALESCE;
    return SRC_COLUMN;
  }
  if (f != r->added) {
    const dorm_field *fb = dorm__ddl_find_field(r->before, f->name);
    if (fb && fb->column && !dorm__ddl_is_m2m(fb)) {
      *col = fb->column;
      return SRC_COLUMN;
    }
  }
  /* A column the old table lacks: its default, or NULL by omission. */
  return def ? SRC_DEFAULT : SRC_NONE;
}

void dorm__ddl_sqlite_rebuild(ddl_ctx *c, const ddl_rebuild *r) {
  const dorm_model *a = r->after;
  const dorm_field *saved = c->f;
  dorm__ddl_create_table(c, a, r->cons, r->ncons, 1);

  dorm__ddl_puts(c, "INSERT INTO ");
  dorm__ddl_tmp_table(c, a->table);
  dorm__ddl_puts(c, " (");
  size_t n = 0;
  for (size_t i = 0; i < a->nfields; i++) {
    const dorm_field *f = &a->fields[i];
    const char *col;
    if (dorm__ddl_is_m2m(f) || source(r, f, &col) == SRC_NONE) continue;
    if (n++) dorm__ddl_puts(c, ", ");
    dorm__ddl_ident(c, f->column);
  }
  dorm__ddl_puts(c, ") SELECT ");
  n = 0;
  for (size_t i = 0; i < a->nfields; i++) {
    const dorm_field *f = &a->fields[i];
    const char *col;
    src_kind k = dorm__ddl_is_m2m(f) ? SRC_NONE : source(r, f, &col);
    if (k == SRC_NONE) continue;
    if (n++) dorm__ddl_puts(c, ", ");
    c->f = f;
    switch (k) {
      case SRC_COLUMN: dorm__ddl_ident(c, col); break;
      case SRC_DEFAULT:
        dorm__ddl_put_literal(c, dorm__ddl_value_field(f),
                              *dorm__ddl_default(f));
        break;
      case SRC_COALESCE:
        dorm__ddl_puts(c, "COALESCE(");
        dorm__ddl_ident(c, col);
        dorm__ddl_puts(c, ", ");
        dorm__ddl_put_literal(c, dorm__ddl_value_field(f),
                              *dorm__ddl_default(f));
        dorm__ddl_puts(c, ")");
        break;
      case SRC_NONE: break;
    }
    c->f = saved;
  }
  dorm__ddl_puts(c, " FROM ");
  dorm__ddl_ident(c, r->before->table);
  if (n)
    dorm__ddl_emit(c);
  else
    c->b.len = 0; /* nothing to copy: no INSERT at all */

  dorm__ddl_puts(c, "DROP TABLE ");
  dorm__ddl_ident(c, r->before->table);
  dorm__ddl_emit(c);
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_tmp_table(c, a->table);
  dorm__ddl_puts(c, " RENAME TO ");
  dorm__ddl_ident(c, a->table);
  dorm__ddl_emit(c);
  dorm__ddl_create_indexes(c, a);
  if (!c->rc) c->out->rebuilds++;
}

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

static void pg_alter(ddl_ctx *c, const dorm_model *before,
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

static void sqlite_alter(ddl_ctx *c, const dorm_model *before,
                         const dorm_model *after,
                         const dorm_ddl_constraint *cons, size_t ncons,
                         const dorm_field *of, const dorm_field *nf) {
  /* The old definition as if its column already had the new name: when
   * the two read the same, only the name (or an index) changes. */
  dorm_field renamed = *of;
  renamed.column = nf->column;
  if (!same(c, r_column, after->table, &renamed, nf)) {
    ddl_rebuild r = {before, after, cons, ncons, of, nf, NULL};
    dorm__ddl_sqlite_rebuild(c, &r);
    return;
  }
  int i_old = dorm__ddl_needs_index(of), i_new = dorm__ddl_needs_index(nf);
  if (i_old && !i_new) {
    char name[DORM_IDENT_MAX + 1];
    dorm__ddl_name1(name, before->table, of->column, "idx");
    dorm__ddl_drop_index(c, name);
  }
  dorm__ddl_rename_column(c, after->table, of->column, nf->column);
  dorm__ddl_rename_field_names(c, after, before->table, of, nf, 1);
  if (!i_old && i_new) dorm__ddl_field_index(c, after, nf);
}

int dorm_ddl_alter_field(const dorm_model *before, const dorm_model *after,
                         const dorm_ddl_constraint *cons, size_t ncons,
                         const dorm_field *of, const dorm_field *nf,
                         dorm_dialect d, dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, after, out, err);
  if (!before || !after || !of || !nf)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or field"),
           dorm__ddl_end(&c);
  c.f = nf;
  int m_old = dorm__ddl_is_m2m(of), m_new = dorm__ddl_is_m2m(nf);
  if (m_old || m_new) {
    if (!(m_old && m_new))
      dorm__ddl_fail(&c, DORM_EUNSUPPORTED,
                     "cannot change a many_to_many to or from another type");
    else if (!of->target || !nf->target || !of->target->name ||
             !nf->target->name ||
             strcmp(of->target->name, nf->target->name) != 0)
      dorm__ddl_fail(&c, DORM_EUNSUPPORTED,
                     "cannot change the target of a many_to_many");
    else
      dorm__ddl_rename_through(&c, of, nf);
    return dorm__ddl_end(&c);
  }
  if ((of->flags ^ nf->flags) & DORM_FIELD_PRIMARY_KEY)
    dorm__ddl_fail(&c, DORM_EUNSUPPORTED, "cannot change primary_key");
  else if (dorm__ddl_is_auto(of) != dorm__ddl_is_auto(nf))
    dorm__ddl_fail(&c, DORM_EUNSUPPORTED,
                   "cannot change an auto field to or from another type");
  else if (!of->column || !nf->column)
    dorm__ddl_fail(&c, DORM_ESCHEMA, "field has no column");
  if (c.rc) return dorm__ddl_end(&c);
  if (d == DORM_DIALECT_SQLITE)
    sqlite_alter(&c, before, after, cons, ncons, of, nf);
  else
    pg_alter(&c, before, after, of, nf);
  return dorm__ddl_end(&c);
}

int dorm_ddl_rename_field(const dorm_model *before, const dorm_model *after,
                          const dorm_ddl_constraint *cons, size_t ncons,
                          const dorm_field *of, const dorm_field *nf,
                          dorm_dialect d, dorm_ddl *out, dorm_error *err) {
  /* A rename is an alteration that changes only the name; sharing the
   * code keeps the derived names in step the same way. */
  return dorm_ddl_alter_field(before, after, cons, ncons, of, nf, d, out, err);
}
