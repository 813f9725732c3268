/* SPDX-License-Identifier: MIT */
/* backends/rows_json.c — result rows as JSON (dorm_row_to_json,
 * dorm_rows_to_json): one object per row keyed by column, select_related
 * columns under their own names, prefetched relations nested as Django
 * REST's nested serializers show them, bytes as base64, JSON columns as
 * the documents they hold, text that is not UTF-8 with U+FFFD.
 */
#include <math.h>
#include <string.h>

#include "backends/rows_int.h"

static json_t *base64(const char *p, size_t n) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t m = 4 * ((n + 2) / 3);
  char *out = dorm__malloc(m + 1);
  if (!out) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned a = (unsigned char)p[i];
    unsigned b = i + 1 < n ? (unsigned char)p[i + 1] : 0;
    unsigned c = i + 2 < n ? (unsigned char)p[i + 2] : 0;
    unsigned x = (a << 16) | (b << 8) | c;
    out[k++] = tab[(x >> 18) & 63];
    out[k++] = tab[(x >> 12) & 63];
    out[k++] = i + 1 < n ? tab[(x >> 6) & 63] : '=';
    out[k++] = i + 2 < n ? tab[x & 63] : '=';
  }
  json_t *j = json_stringn(out, k);
  dorm__free(out);
  return j;
}

/* Text as a JSON string.  A SQLite column another program wrote may hold
 * bytes that are not UTF-8, which jansson refuses: those go out as U+FFFD
 * rather than failing the whole answer (NULL only for out of memory). */
static json_t *text_json(const char *p, size_t n) {
  json_t *j = json_stringn(p, n);
  if (j || dorm__utf8_valid(p, n) == n) return j;
  dorm__buf b;
  dorm__buf_init(&b);
  dorm__buf_put_utf8(&b, p, n);
  j = b.oom ? NULL : json_stringn(dorm__buf_cstr(&b), b.len);
  dorm__buf_free(&b);
  return j;
}

static json_t *value_json(const dorm_value *v) {
  switch (v->type) {
    case DORM_T_NULL: return json_null();
    case DORM_T_BOOL: return json_boolean(v->u.b);
    case DORM_T_INT: return json_integer(v->u.i);
    case DORM_T_FLOAT:
      return isfinite(v->u.f) ? json_real(v->u.f) : json_null();
    case DORM_T_BYTES: return base64(v->u.s.ptr, v->u.s.len);
    case DORM_T_JSON: {
      json_error_t e;
      memset(&e, 0, sizeof e);
      dorm__json_begin();
      json_t *j = json_loadb(v->u.s.ptr, v->u.s.len, JSON_DECODE_ANY, &e);
      if (!j && dorm__json_oom(&e)) return NULL; /* not a string: no memory */
      return j ? j : text_json(v->u.s.ptr, v->u.s.len);
    }
    default:
      if (dorm__text_like(v->type)) return text_json(v->u.s.ptr, v->u.s.len);
      return json_null();
  }
}

json_t *dorm_row_to_json(const dorm_row *row) {
  if (!row) return NULL;
  json_t *o = json_object();
  if (!o) return NULL;
  const dorm_rows *r = row->rows;
  for (size_t i = 0; i < r->ncols; i++) {
    if (r->cols[i].relation != row->rel) continue;
    json_t *j = value_json(dorm__row_cell(row, i));
    if (!j || json_object_set_new(o, r->cols[i].local, j)) {
      json_decref(o);
      return NULL;
    }
  }
  /* prefetched relations nest, as Django REST's nested serializers show
   * them: a list of objects, or for a foreign key the object (or null)
   * in place of its key */
  for (size_t i = 0; row->rel == 0 && i < r->npf; i++) {
    const dorm_rows *v = r->pf[i].views[row->index];
    json_t *j = !r->pf[i].single ? dorm_rows_to_json(v)
                : v->nrows       ? dorm_row_to_json(dorm_rows_row(v, 0))
                                 : json_null();
    if (!j || json_object_set_new(o, r->pf[i].name, j)) {
      json_decref(o);
      return NULL;
    }
  }
  return o;
}

json_t *dorm_rows_to_json(const dorm_rows *rows) {
  json_t *a = json_array();
  if (!a || !rows) return a;
  for (size_t i = 0; i < rows->nrows; i++) {
    json_t *o = dorm_row_to_json(dorm_rows_row(rows, i));
    if (!o || json_array_append_new(a, o)) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}
