/* SPDX-License-Identifier: MIT */
/* query/ddl/rebuild.c — SQLite's table rebuild (Django's _remake_table).
 *
 * SQLite cannot alter a column, add a key or a unique column, or add and
 * drop constraints, so those operations rebuild the table: a
 * "new__<table>" is created from the after-model, the rows are copied with
 * INSERT ... SELECT (columns mapped by field, renamed ones from their old
 * name, new NOT NULL ones from their default), the old table dropped, the
 * new one renamed and its indexes created.  The caller's duties around a
 * rebuild (foreign_keys off before BEGIN, foreign_key_check before COMMIT)
 * are in include/dorm/ddl.h.  Rebuild group: built from the statements of
 * tables.c and the emit helpers; the operations of ddl.c call it.
 */
#include <string.h>

#include "query/ddl/ddl_int.h"

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
