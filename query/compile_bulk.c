/* SPDX-License-Identifier: MIT */
/* query/compile_bulk.c — the statements of the bulk paths: the COPY ...
 * FROM STDIN header of a bulk insert (PostgreSQL), and Django's
 * bulk_update as one UPDATE per chunk of objects with a CASE per field.
 *
 * The COPY header is taken from the INSERT the compiler writes for the
 * first row, so the columns (what the first row sets, then the model's
 * defaults) and their order are exactly the INSERT's; the data rows are
 * the statement's parameters, every row's values in that order, written
 * without the INSERT's text (a third of the time of compiling the same
 * rows as INSERTs, which B4 on PostgreSQL counts).  An INSERT that is not plain
 * parameters (a value that is an expression, a conflict clause, no
 * column at all) has no COPY form: DORM_EUNSUPPORTED, and the caller
 * inserts instead.
 *
 * bulk_update reads its objects from an INSERT query used as a list of
 * rows (dorm_insert + dorm_set per object): each row sets the primary key
 * and the fields to update.  As Django's, a chunk is
 *   UPDATE t SET f = CASE WHEN pk = $1 THEN $2 WHEN ... END, ...
 *   WHERE pk IN (...)
 * with no ELSE: every row the WHERE reaches has its WHEN, and the CASE's
 * type is then the parameters' own (PostgreSQL resolves a CASE to a
 * common type; an ELSE of the column would mix, say, json and jsonb).  A
 * field that every object of the chunk sets to NULL is written "= NULL",
 * which fits any column type where a CASE of NULLs would be text.
 */
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"

/* ---- COPY ... FROM STDIN ------------------------------------------------ */

static const set_item *row_set(const insert_row *r, const dorm_field *f);

/* Every row's values as parameters, k per row, in the INSERT's column
 * order (compile_write.c: what the first row sets, then the defaults of
 * the fields it leaves out), without the INSERT's text: the data of the
 * COPY.  The rows are checked as the INSERT checks them. */
static int copy_rows(cctx *c, size_t k) {
  const dorm_query *q = c->q;
  const dorm_model *m = q->model;
  const insert_row *first = q->rows;
  const dorm_field *cols[256];
  int from_default[256];
  size_t n = 0;
  for (const set_item *s = first ? first->sets : NULL; s && n < 256;
       s = s->next) {
    from_default[n] = 0;
    cols[n++] = s->field;
  }
  for (size_t i = 0; i < m->nfields && n < 256; i++) {
    const dorm_field *f = &m->fields[i];
    if (f->type == DORM_FIELD_MANY_TO_MANY || f->type == DORM_FIELD_AUTO ||
        f->type == DORM_FIELD_BIGAUTO || !(f->flags & DORM_FIELD_HAS_DEFAULT))
      continue;
    if (first && row_set(first, f)) continue;
    from_default[n] = 1;
    cols[n++] = f;
  }
  if (n != k)
    return dorm__cfail(c, DORM_EUNSUPPORTED,
                       "model '%s': this insert has no COPY form", m->name);
  /* the placeholders dorm__emit_param writes are not part of a COPY */
  size_t text_len = c->buf.len;
  size_t r_index = 0;
  size_t nrows = dorm_query_row_count(q);
  for (const insert_row *r = q->rows; r && r_index < nrows;
       r = r->next, r_index++) {
    size_t explicit_n = 0;
    for (size_t j = 0; j < n; j++) {
      const set_item *s = row_set(r, cols[j]);
      if (!from_default[j] && !s)
        return dorm__cfail(c, DORM_EINVAL,
                           "model '%s', bulk insert row %zu: field '%s' is "
                           "not set (every row must set the same fields)",
                           m->name, r_index, cols[j]->name);
      if (s) explicit_n++;
      dorm_value v = s ? s->value : cols[j]->default_value;
      if (v.type == DORM_T_EXPR)
        return dorm__cfail(c, DORM_EUNSUPPORTED,
                           "model '%s', bulk insert row %zu: a value that is "
                           "an expression has no COPY form",
                           m->name, r_index);
      c->param_field = cols[j], c->param_write = 1;
      dorm__emit_param(c, v);
      c->buf.len = text_len;
      c->param_field = NULL, c->param_write = 0;
    }
    if (explicit_n != r->nsets)
      return dorm__cfail(c, DORM_EINVAL,
                         "model '%s', bulk insert row %zu: sets fields the "
                         "first row does not",
                         m->name, r_index);
  }
  return c->failed;
}

int dorm_compile_copy(const dorm_query *q, dorm_dialect dialect, dorm_sql *out,
                      size_t *width, dorm_error *err) {
  if (!q || !out || !width)
    return dorm_error_set(err, DORM_EINVAL, "NULL query or output");
  *width = 0;
  if (q->has_err) return dorm_error_copy(err, &q->err);
  if (q->kind != DORM_QUERY_INSERT)
    return dorm_error_set(err, DORM_EINVAL, "COPY: not an INSERT query");
  if (dialect != DORM_DIALECT_POSTGRES)
    return dorm_error_set(err, DORM_EUNSUPPORTED, "COPY: PostgreSQL only");
  if (q->conflict || q->conflict_update || q->conflict_nothing)
    return dorm_error_set(err, DORM_EUNSUPPORTED,
                          "model '%s': COPY has no conflict clause",
                          q->model->name);
  dorm_sql one;
  dorm_sql_init(&one);
  dorm_compile_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.row_count = 1;
  int rc = dorm_compile_ex(q, dialect, &opts, &one, err);
  /* INSERT INTO "t" ("a", "b") VALUES ($1, $2) RETURNING ... */
  const char *v = rc ? NULL : strstr(one.text, ") VALUES (");
  size_t k = one.nparams;
  if (!rc && v && strncmp(one.text, "INSERT INTO ", 12) == 0 && k > 0) {
    /* the values must be the parameters $1..$k and nothing else */
    char want[32];
    const char *p = v + 10;
    for (size_t i = 1; p && i <= k; i++) {
      int n = snprintf(want, sizeof want, i < k ? "$%zu, " : "$%zu)", i);
      p = strncmp(p, want, (size_t)n) ? NULL : p + n;
    }
    if (!p) v = NULL;
  } else if (!rc) {
    v = NULL;
  }
  if (!rc && !v)
    rc = dorm_error_set(err, DORM_EUNSUPPORTED,
                        "model '%s': this insert has no COPY form (a value "
                        "that is an expression, or no column)",
                        q->model->name);
  if (!rc) {
    cctx c;
    dorm__cctx_start(&c, q, dialect, out, err);
    out->kind = DORM_QUERY_INSERT;
    dorm__emitl(&c, "COPY ");
    dorm__emit(&c, one.text + 12, (size_t)(v + 1 - (one.text + 12)));
    dorm__emitl(&c, " FROM STDIN");
    rc = copy_rows(&c, k);
    rc = dorm__cctx_end(&c, rc);
    if (!rc) *width = k;
  }
  dorm_sql_free(&one);
  return rc;
}

/* ---- bulk_update ----------------------------------------------------------
 */

static const set_item *row_set(const insert_row *r, const dorm_field *f) {
  for (const set_item *s = r->sets; s; s = s->next)
    if (s->field == f) return s;
  return NULL;
}

static void emit_value(cctx *c, const dorm_field *f, const set_item *s) {
  if (s->value.type == DORM_T_EXPR) {
    dorm__emit_expr(c, s->value.u.expr);
    return;
  }
  c->param_field = f, c->param_write = 1;
  dorm__emit_param(c, s->value);
  c->param_field = NULL, c->param_write = 0;
}

static int compile_bulk_update(cctx *c, const dorm_field *const *fs, size_t nf,
                               const insert_row *first, size_t nrows,
                               size_t base) {
  const dorm_model *m = c->q->model;
  const dorm_field *pk = m->pk;
  /* every object sets its key and every field named */
  const insert_row *r = first;
  for (size_t i = 0; i < nrows; i++, r = r->next) {
    const set_item *k = row_set(r, pk);
    if (!k || k->value.type == DORM_T_NULL || k->value.type == DORM_T_EXPR)
      return dorm__cfail(c, DORM_EINVAL,
                         "model '%s', bulk_update object %zu: the primary "
                         "key '%s' is not set",
                         m->name, base + i, pk->name);
    for (size_t j = 0; j < nf; j++)
      if (!row_set(r, fs[j]))
        return dorm__cfail(c, DORM_EINVAL,
                           "model '%s', bulk_update object %zu: field '%s' "
                           "is not set",
                           m->name, base + i, fs[j]->name);
  }
  dorm__emitl(c, "UPDATE ");
  dorm__emit_ident(c, m->table);
  dorm__emitl(c, " SET ");
  c->no_joins = 1;
  for (size_t j = 0; j < nf; j++) {
    if (j) dorm__emitl(c, ", ");
    dorm__emit_ident(c, fs[j]->column);
    dorm__emitl(c, " = ");
    int all_null = 1;
    r = first;
    for (size_t i = 0; i < nrows && all_null; i++, r = r->next)
      if (row_set(r, fs[j])->value.type != DORM_T_NULL) all_null = 0;
    if (all_null) {
      dorm__emitl(c, "NULL");
      continue;
    }
    dorm__emitl(c, "CASE");
    r = first;
    for (size_t i = 0; i < nrows; i++, r = r->next) {
      dorm__emitl(c, " WHEN ");
      dorm__emit_ident(c, pk->column);
      dorm__emitl(c, " = ");
      emit_value(c, pk, row_set(r, pk));
      dorm__emitl(c, " THEN ");
      emit_value(c, fs[j], row_set(r, fs[j]));
    }
    dorm__emitl(c, " END");
  }
  c->no_joins = 0;
  dorm__emitl(c, " WHERE ");
  dorm__emit_ident(c, pk->column);
  dorm__emitl(c, " IN (");
  r = first;
  for (size_t i = 0; i < nrows; i++, r = r->next) {
    if (i) dorm__emitl(c, ", ");
    emit_value(c, pk, row_set(r, pk));
  }
  dorm__emitl(c, ")");
  return c->failed;
}

int dorm_compile_bulk_update(const dorm_query *rows, const char *const *fields,
                             size_t nfields, dorm_dialect dialect,
                             const dorm_compile_opts *opts, dorm_sql *out,
                             dorm_error *err) {
  if (!rows || !out || (nfields && !fields))
    return dorm_error_set(err, DORM_EINVAL, "NULL query, fields or output");
  if (rows->has_err) return dorm_error_copy(err, &rows->err);
  const dorm_model *m = rows->model;
  if (rows->kind != DORM_QUERY_INSERT)
    return dorm_error_set(err, DORM_EINVAL,
                          "model '%s': bulk_update takes its objects as the "
                          "rows of an insert query",
                          m->name);
  if (dialect != DORM_DIALECT_POSTGRES && dialect != DORM_DIALECT_SQLITE)
    return dorm_error_set(err, DORM_EINVAL, "unknown dialect %d", (int)dialect);
  if (nfields == 0)
    return dorm_error_set(err, DORM_EINVAL,
                          "model '%s': bulk_update needs the fields to update",
                          m->name);
  if (nfields > 256)
    return dorm_error_set(err, DORM_EINVAL, "model '%s': too many fields",
                          m->name);
  const dorm_field *fs[256];
  for (size_t j = 0; j < nfields; j++) {
    const char *name = fields[j] ? fields[j] : "";
    const dorm_field *f = dorm__find_field(m, name, strlen(name));
    if (!f)
      return dorm_error_set(err, DORM_EFIELD,
                            "model '%s' has no field '%s' (bulk_update)",
                            m->name, name);
    if (f == m->pk || (f->flags & DORM_FIELD_PRIMARY_KEY))
      return dorm_error_set(err, DORM_EINVAL,
                            "model '%s': bulk_update cannot be used with the "
                            "primary key '%s'",
                            m->name, f->name);
    if (f->type == DORM_FIELD_MANY_TO_MANY)
      return dorm_error_set(err, DORM_EINVAL,
                            "model '%s': bulk_update can only be used with "
                            "concrete fields ('%s' is many_to_many)",
                            m->name, f->name);
    for (size_t i = 0; i < j; i++)
      if (fs[i] == f)
        return dorm_error_set(err, DORM_EINVAL,
                              "model '%s': bulk_update names field '%s' twice",
                              m->name, f->name);
    fs[j] = f;
  }
  size_t total = dorm_query_row_count(rows);
  size_t first = opts ? opts->row_first : 0;
  size_t count = opts ? opts->row_count : 0;
  if (!rows->rows || first >= total)
    return dorm_error_set(err, DORM_ERANGE,
                          "model '%s': bulk_update objects from %zu of %zu",
                          m->name, first, rows->rows ? total : 0);
  const insert_row *r = rows->rows;
  for (size_t i = 0; r && i < first; i++) r = r->next;
  size_t left = total - first;
  size_t n = count && count < left ? count : left;
  cctx c;
  dorm__cctx_start(&c, rows, dialect, out, err);
  out->kind = DORM_QUERY_UPDATE;
  int rc = compile_bulk_update(&c, fs, nfields, r, n, first);
  return dorm__cctx_end(&c, rc);
}
