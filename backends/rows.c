/* SPDX-License-Identifier: MIT */
/* backends/rows.c — reading result rows: the dorm_rows_* / dorm_row_*
 * functions of dorm/rows.h that users call on a finished result (counts,
 * column names, a row's values by name or position, typed getters that
 * convert where it makes sense, select_related and prefetch_related
 * rows).  Results are built by rows_build.c and never change once a user
 * holds them, so these only read.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/rows_int.h"

size_t dorm_rows_count(const dorm_rows *rows) { return rows ? rows->nrows : 0; }

const dorm_row *dorm_rows_row(const dorm_rows *rows, size_t i) {
  if (!rows || i >= rows->nrows || !rows->rowv) return NULL;
  return &rows->rowv[i * (1 + rows->nrelated)];
}

size_t dorm_rows_ncolumns(const dorm_rows *rows) {
  return rows ? rows->nmain : 0;
}

/* Main columns come first in every compiled statement; raw statements
 * have only main columns. */
const char *dorm_rows_column_name(const dorm_rows *rows, size_t i) {
  if (!rows || i >= rows->nmain) return NULL;
  return rows->cols[i].name;
}

int dorm_rows_column_index(const dorm_rows *rows, const char *name) {
  if (!rows || !name) return -1;
  for (size_t i = 0; i < rows->ncols; i++) {
    const rcol *c = &rows->cols[i];
    if (c->relation) continue;
    if (!strcmp(c->name, name) || (c->attname && !strcmp(c->attname, name)))
      return (int)i;
  }
  if (!strcmp(name, "pk"))
    for (size_t i = 0; i < rows->ncols; i++)
      if (!rows->cols[i].relation && rows->cols[i].is_pk) return (int)i;
  return -1;
}

const dorm_rows *dorm_result_rows_of(const dorm_result *res) {
  if (!res || res->kind != DORM_RESULT_ROWS) return NULL;
  return res->u.rows.rows;
}

const dorm_row *dorm_result_row_of(const dorm_result *res) {
  if (!res) return NULL;
  if (res->kind == DORM_RESULT_ROW) return res->u.row.row;
  if (res->kind == DORM_RESULT_ROWS) return dorm_rows_row(res->u.rows.rows, 0);
  return NULL;
}

/* The first byte is compared inline: most columns differ there, and a
 * row is read by name once per value. */
static int same_name(const char *a, const char *b) {
  return a[0] == b[0] && !strcmp(a, b);
}

static int find_col(const dorm_row *row, const char *name) {
  const dorm_rows *r = row->rows;
  for (size_t i = 0; i < r->ncols; i++) {
    const rcol *c = &r->cols[i];
    if (c->relation != row->rel) continue;
    if (same_name(c->local, name) ||
        (c->attname && same_name(c->attname, name)))
      return (int)i;
  }
  if (!strcmp(name, "pk"))
    for (size_t i = 0; i < r->ncols; i++)
      if (r->cols[i].relation == row->rel && r->cols[i].is_pk) return (int)i;
  return -1;
}

const dorm_value *dorm_row_value(const dorm_row *row, const char *name) {
  if (!row || !name) return NULL;
  int i = find_col(row, name);
  return i < 0 ? NULL : dorm__row_cell(row, (size_t)i);
}

const dorm_value *dorm_row_value_at(const dorm_row *row, size_t i) {
  if (!row || i >= row->rows->ncols) return NULL;
  return dorm__row_cell(row, i);
}

int dorm_row_is_null(const dorm_row *row, const char *name) {
  const dorm_value *v = dorm_row_value(row, name);
  return !v || v->type == DORM_T_NULL;
}

int64_t dorm_row_int(const dorm_row *row, const char *name) {
  const dorm_value *v = dorm_row_value(row, name);
  if (!v) return 0;
  switch (v->type) {
    case DORM_T_INT: return v->u.i;
    case DORM_T_BOOL: return v->u.b;
    case DORM_T_FLOAT:
      /* converting a float outside int64_t's range (or NaN) is undefined:
       * saturate as strtoll does, NaN reads 0 */
      if (isnan(v->u.f)) return 0;
      if (v->u.f >= 9223372036854775807.0) return INT64_MAX;
      if (v->u.f <= -9223372036854775808.0) return INT64_MIN;
      return (int64_t)v->u.f;
    case DORM_T_DECIMAL:
    case DORM_T_TEXT: return strtoll(v->u.s.ptr, NULL, 10);
    default: return 0;
  }
}

double dorm_row_float(const dorm_row *row, const char *name) {
  const dorm_value *v = dorm_row_value(row, name);
  if (!v) return 0.0;
  switch (v->type) {
    case DORM_T_INT: return (double)v->u.i;
    case DORM_T_BOOL: return v->u.b;
    case DORM_T_FLOAT: return v->u.f;
    case DORM_T_DECIMAL:
    case DORM_T_TEXT: return strtod(v->u.s.ptr, NULL);
    default: return 0.0;
  }
}

int dorm_row_bool(const dorm_row *row, const char *name) {
  const dorm_value *v = dorm_row_value(row, name);
  if (!v) return 0;
  switch (v->type) {
    case DORM_T_BOOL: return v->u.b;
    case DORM_T_INT: return v->u.i != 0;
    case DORM_T_FLOAT: return v->u.f != 0;
    default: return 0;
  }
}

const char *dorm_row_text(const dorm_row *row, const char *name) {
  const dorm_value *v = dorm_row_value(row, name);
  if (!v || !dorm__text_like(v->type)) return NULL;
  return v->u.s.ptr;
}

const void *dorm_row_bytes(const dorm_row *row, const char *name, size_t *len) {
  const dorm_value *v = dorm_row_value(row, name);
  if (!v || (v->type != DORM_T_BYTES && !dorm__text_like(v->type))) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = v->u.s.len;
  return v->u.s.ptr;
}

json_t *dorm_row_json(const dorm_row *row, const char *name) {
  const dorm_value *v = dorm_row_value(row, name);
  if (!v || v->type != DORM_T_JSON) return NULL;
  return json_loadb(v->u.s.ptr, v->u.s.len, JSON_DECODE_ANY, NULL);
}

const dorm_row *dorm_row_related(const dorm_row *row, const char *path) {
  if (!row || !path) return NULL;
  const dorm_rows *r = row->rows;
  for (size_t j = 0; j < r->nrelated; j++) {
    if (strcmp(r->related[j], path)) continue;
    int rel = (int)j + 1;
    int pk = r->rel_pk ? r->rel_pk[rel] : -1;
    const dorm_row *base = &r->rowv[row->index * (1 + r->nrelated)];
    if (pk >= 0) {
      if (dorm__row_cell(base, (size_t)pk)->type == DORM_T_NULL) return NULL;
    } else { /* no primary key selected: NULL when every column is */
      int any = 0;
      for (size_t i = 0; i < r->ncols && !any; i++)
        if (r->cols[i].relation == rel &&
            dorm__row_cell(base, i)->type != DORM_T_NULL)
          any = 1;
      if (!any) return NULL;
    }
    return &r->rowv[row->index * (1 + r->nrelated) + (size_t)rel];
  }
  return NULL;
}

const dorm_rows *dorm_row_prefetched(const dorm_row *row, const char *name) {
  if (!row || !name || row->rel) return NULL;
  const dorm_rows *r = row->rows;
  for (size_t i = 0; i < r->npf; i++)
    if (!strcmp(r->pf[i].name, name)) return r->pf[i].views[row->index];
  return NULL;
}

int dorm_row_created(const dorm_row *row) {
  return row ? row->rows->created : 0;
}
