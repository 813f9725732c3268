/* SPDX-License-Identifier: MIT */
/* query/compile_write.c — INSERT (single, bulk, upsert), UPDATE, DELETE.
 *
 * Both dialects get RETURNING (SQLite has had it since 3.35), so an insert
 * hands back the primary key and every column the database filled in.
 * Fields a row does not set take the model's default, sent as a parameter:
 * like Django, dorm keeps defaults in the model, not in the table.
 * An UPDATE or DELETE whose conditions need joins becomes
 * "WHERE pk IN (SELECT pk ... joins ...)", as Django does, because neither
 * dialect has a portable UPDATE ... JOIN.
 */
#include <string.h>

#include "query/query_int.h"

/* ---- RETURNING ---------------------------------------------------------- */

static void emit_returning(cctx *c) {
  const dorm_query *q = c->q;
  const dorm_model *m = q->model;
  int all = q->returning_all || (q->kind == DORM_QUERY_INSERT && !q->returning);
  if (!all && !q->returning) return;
  dorm__emitl(c, " RETURNING ");
  int first = 1;
  if (all) {
    for (size_t i = 0; i < m->nfields; i++) {
      const dorm_field *f = &m->fields[i];
      if (f->type == DORM_FIELD_MANY_TO_MANY) continue;
      if (!first) dorm__emitl(c, ", ");
      first = 0;
      dorm__emit_ident(c, m->table);
      dorm__emit(c, ".", 1);
      dorm__emit_ident(c, f->column);
      dorm__add_column_static(c, f->name, f, m, 0, dorm__vt(f));
    }
  } else {
    for (const field_item *it = q->returning; it; it = it->next) {
      if (!first) dorm__emitl(c, ", ");
      first = 0;
      dorm__emit_ident(c, m->table);
      dorm__emit(c, ".", 1);
      dorm__emit_ident(c, it->field->column);
      dorm__add_column_static(c, it->field->name, it->field, m, 0,
                              dorm__vt(it->field));
    }
  }
  c->out->returns_rows = 1;
}

/* ---- INSERT ------------------------------------------------------------- */

static const set_item *row_value(const insert_row *r, const dorm_field *f) {
  for (const set_item *s = r->sets; s; s = s->next)
    if (s->field == f) return s;
  return NULL;
}

static int is_auto(const dorm_field *f) {
  return f->type == DORM_FIELD_AUTO || f->type == DORM_FIELD_BIGAUTO;
}

static int compile_insert(cctx *c) {
  const dorm_query *q = c->q;
  const dorm_model *m = q->model;
  const insert_row *first = q->rows;
  const dorm_field *cols[256];
  int from_default[256];
  size_t ncols = 0;

  /* columns: what the first row sets, then defaults of the rest */
  if (first)
    for (const set_item *s = first->sets; s; s = s->next) {
      if (ncols == 256)
        return dorm__cfail(c, DORM_EINVAL, "model '%s': too many columns",
                           m->name);
      from_default[ncols] = 0;
      cols[ncols++] = s->field;
    }
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (f->type == DORM_FIELD_MANY_TO_MANY || is_auto(f)) continue;
    if (!(f->flags & DORM_FIELD_HAS_DEFAULT)) continue;
    if (first && row_value(first, f)) continue;
    if (ncols == 256)
      return dorm__cfail(c, DORM_EINVAL, "model '%s': too many columns",
                         m->name);
    from_default[ncols] = 1;
    cols[ncols++] = f;
  }
  /* every row sets the same fields */
  size_t r_index = 0;
  /* q->nrows bounds the walk: a compile window (dorm_compile_ex) may
   * start in the middle of the row list */
  for (const insert_row *r = q->rows; r && r_index < q->nrows;
       r = r->next, r_index++) {
    size_t explicit_n = 0;
    for (size_t k = 0; k < ncols; k++) {
      const set_item *s = row_value(r, cols[k]);
      if (!from_default[k] && !s)
        return dorm__cfail(c, DORM_EINVAL,
                           "model '%s', bulk insert row %zu: field '%s' is "
                           "not set (every row must set the same fields)",
                           m->name, r_index, cols[k]->name);
      if (s) explicit_n++;
    }
    if (explicit_n != r->nsets)
      return dorm__cfail(c, DORM_EINVAL,
                         "model '%s', bulk insert row %zu: sets fields the "
                         "first row does not",
                         m->name, r_index);
  }

  dorm__emitl(c, "INSERT INTO ");
  dorm__emit_ident(c, m->table);
  size_t nrows = q->nrows ? q->nrows : 1;
  if (ncols == 0) {
    if (nrows > 1) {
      if (c->d == DORM_DIALECT_SQLITE)
        return dorm__cfail(c, DORM_EUNSUPPORTED,
                           "model '%s': a bulk insert of rows with no values "
                           "is not supported on SQLite",
                           m->name);
      dorm__emitl(c, " (");
      dorm__emit_ident(c, m->pk->column);
      dorm__emitl(c, ") VALUES ");
      for (size_t r = 0; r < nrows; r++)
        dorm__emits(c, r ? ", (DEFAULT)" : "(DEFAULT)");
    } else {
      dorm__emitl(c, " DEFAULT VALUES");
    }
  } else {
    dorm__emitl(c, " (");
    for (size_t k = 0; k < ncols; k++) {
      if (k) dorm__emitl(c, ", ");
      dorm__emit_ident(c, cols[k]->column);
    }
    dorm__emitl(c, ") VALUES ");
    const insert_row *r = q->rows;
    for (size_t ri = 0; ri < nrows; ri++) {
      dorm__emits(c, ri ? ", (" : "(");
      for (size_t k = 0; k < ncols; k++) {
        if (k) dorm__emitl(c, ", ");
        const set_item *s = r ? row_value(r, cols[k]) : NULL;
        c->param_field = cols[k], c->param_write = 1;
        dorm__emit_param(c, s ? s->value : cols[k]->default_value);
        c->param_field = NULL, c->param_write = 0;
      }
      dorm__emitl(c, ")");
      if (r) r = r->next;
    }
  }

  /* upsert */
  if (q->conflict || q->conflict_update || q->conflict_nothing) {
    if (q->conflict_update && !q->conflict)
      return dorm__cfail(c, DORM_EINVAL,
                         "model '%s': on_conflict_update needs the conflict "
                         "fields (on_conflict)",
                         m->name);
    if (q->conflict_update && q->conflict_nothing)
      return dorm__cfail(c, DORM_EINVAL,
                         "model '%s': on_conflict_update and "
                         "on_conflict_do_nothing together",
                         m->name);
    dorm__emitl(c, " ON CONFLICT");
    if (q->conflict) {
      dorm__emitl(c, " (");
      for (const field_item *it = q->conflict; it; it = it->next) {
        if (it != q->conflict) dorm__emitl(c, ", ");
        dorm__emit_ident(c, it->field->column);
      }
      dorm__emitl(c, ")");
    }
    if (q->conflict_update) {
      dorm__emitl(c, " DO UPDATE SET ");
      for (const field_item *it = q->conflict_update; it; it = it->next) {
        if (it != q->conflict_update) dorm__emitl(c, ", ");
        dorm__emit_ident(c, it->field->column);
        dorm__emitl(c, " = EXCLUDED.");
        dorm__emit_ident(c, it->field->column);
      }
    } else {
      dorm__emitl(c, " DO NOTHING");
    }
  }
  emit_returning(c);
  return c->failed;
}

/* ---- UPDATE / DELETE ---------------------------------------------------- */

/* WHERE for a write: direct when no joins are needed, else pk IN (...). */
static void emit_write_where(cctx *c) {
  const dorm_query *q = c->q;
  if (!dorm__has_conditions(q, 0)) {
    if (dorm__has_conditions(q, 1))
      dorm__cfail(c, DORM_EINVAL,
                  "model '%s': annotation filters in an update or delete",
                  q->model->name);
    return;
  }
  dorm__emitl(c, " WHERE ");
  if (c->njoins == 0) {
    dorm__emit_conditions(c, q->where, 0);
    return;
  }
  const char *pk = q->model->pk->column;
  dorm__emit_ident(c, q->model->table);
  dorm__emit(c, ".", 1);
  dorm__emit_ident(c, pk);
  dorm__emitl(c, " IN (SELECT ");
  dorm__emit_ident(c, q->model->table);
  dorm__emit(c, ".", 1);
  dorm__emit_ident(c, pk);
  dorm__emit_from(c);
  dorm__emitl(c, " WHERE ");
  dorm__emit_conditions(c, q->where, 0);
  dorm__emitl(c, ")");
}

static int compile_update(cctx *c) {
  const dorm_query *q = c->q;
  if (!q->sets)
    return dorm__cfail(c, DORM_EINVAL, "model '%s': update with no fields set",
                       q->model->name);
  /* joins are for the WHERE subquery only; SET may not reference them */
  c->registering = 1;
  dorm__register_where(c, q->where);
  c->registering = 0;
  if (c->failed) return c->failed;

  dorm__emitl(c, "UPDATE ");
  dorm__emit_ident(c, q->model->table);
  dorm__emitl(c, " SET ");
  c->no_joins = 1;
  for (const set_item *s = q->sets; s; s = s->next) {
    if (s != q->sets) dorm__emitl(c, ", ");
    dorm__emit_ident(c, s->field->column);
    dorm__emitl(c, " = ");
    if (s->value.type == DORM_T_EXPR)
      dorm__emit_expr(c, s->value.u.expr);
    else {
      c->param_field = s->field, c->param_write = 1;
      dorm__emit_param(c, s->value);
      c->param_field = NULL, c->param_write = 0;
    }
  }
  c->no_joins = 0;
  emit_write_where(c);
  emit_returning(c);
  return c->failed;
}

static int compile_delete(cctx *c) {
  const dorm_query *q = c->q;
  c->registering = 1;
  dorm__register_where(c, q->where);
  c->registering = 0;
  if (c->failed) return c->failed;
  dorm__emitl(c, "DELETE FROM ");
  dorm__emit_ident(c, q->model->table);
  emit_write_where(c);
  emit_returning(c);
  return c->failed;
}

int dorm__compile_write(cctx *c) {
  switch (c->q->kind) {
    case DORM_QUERY_INSERT: return compile_insert(c);
    case DORM_QUERY_UPDATE: return compile_update(c);
    case DORM_QUERY_DELETE: return compile_delete(c);
    default: break;
  }
  return dorm__cfail(c, DORM_EINVAL, "unknown query kind");
}
