/* SPDX-License-Identifier: MIT */
/* backends/rows_build.c — building result rows: what a driver calls to
 * turn what its database answered into a dorm_rows, cell by cell, each
 * value decoded by its column's type (backend_int.h, "building rows").
 *
 * Every backend fills rows through the same few calls (put an integer, a
 * float, a text form, bytes), so decoding rules live here once: SQLite
 * hands over its storage classes, PostgreSQL its text format, and both
 * come out as the same dorm_values (date-times in UTC ISO 8601, uuids
 * dashed and lower-case, decimals with the field's decimal places).
 *
 * A backend that knows the result's size before building it (PostgreSQL:
 * the rows and their text lengths are all in the PGresult) asks for an
 * inline block of that size (dorm__rows_new_sized), so a point lookup is
 * one small allocation that malloc serves from its per-thread cache
 * rather than a fixed 1 KiB block that bypasses it.  Finished results are
 * also put together here: prefetched relations attached, handed out as a
 * dorm_result.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/rows_int.h"

/* The inline block when the size is not known in advance (SQLite). */
#define ROWS_INLINE 1024

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

static dorm_rows *rows_alloc(const dorm__stmt *st, size_t nraw,
                             size_t inline_cap, size_t hint_rows) {
  inline_cap = ALIGN8(inline_cap);
  dorm_rows *r = dorm__malloc(sizeof *r + inline_cap);
  if (!r) return NULL;
  memset(r, 0, offsetof(dorm_rows, inline_buf));
  dorm__arena_init(&r->arena, r->inline_buf, inline_cap);
  r->hint_rows = hint_rows;
  size_t n = st->columns ? st->ncolumns : nraw;
  r->ncols = n;
  r->cols = dorm__arena_alloc(&r->arena, (n ? n : 1) * sizeof *r->cols);
  if (!r->cols) goto oom;
  memset(r->cols, 0, (n ? n : 1) * sizeof *r->cols);
  if (st->columns) {
    r->nrelated = st->nrelated;
    if (st->nrelated) {
      r->related =
          dorm__arena_alloc(&r->arena, st->nrelated * sizeof *r->related);
      r->rel_pk =
          dorm__arena_alloc(&r->arena, (st->nrelated + 1) * sizeof *r->rel_pk);
      if (!r->related || !r->rel_pk) goto oom;
      for (size_t j = 0; j < st->nrelated; j++) {
        r->related[j] = dorm__arena_strndup(&r->arena, st->related[j],
                                            strlen(st->related[j]));
        if (!r->related[j]) goto oom;
        r->rel_pk[j + 1] = -1;
      }
      r->rel_pk[0] = -1;
    }
    for (size_t i = 0; i < n; i++) {
      const dorm_column *c = &st->columns[i];
      rcol *rc = &r->cols[i];
      const dorm_field *f = c->field;
      /* the schema's strings outlive the rows; anything else is copied */
      if (f && c->name == f->name)
        rc->name = c->name;
      else if (!(rc->name =
                     dorm__arena_strndup(&r->arena, c->name, strlen(c->name))))
        goto oom;
      rc->local = rc->name;
      rc->relation = c->relation;
      if (c->relation > 0 && (size_t)c->relation <= r->nrelated) {
        size_t plen = strlen(r->related[c->relation - 1]);
        if (strlen(rc->name) > plen + 2 && rc->name[plen] == '_')
          rc->local = rc->name + plen + 2;
      }
      rc->type = c->type;
      rc->decimal_places = -1;
      if (f && f->type == DORM_FIELD_DECIMAL)
        rc->decimal_places = f->decimal_places;
      if (f && dorm_field_is_fk(f) && f->column && rc->local == f->name)
        rc->attname = f->column;
      rc->is_pk =
          f && (f->flags & DORM_FIELD_PRIMARY_KEY) && rc->local == f->name;
      if (c->relation == 0) r->nmain++;
      if (rc->is_pk && c->relation > 0 && (size_t)c->relation <= r->nrelated)
        r->rel_pk[c->relation] = (int)i;
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      r->cols[i].name = r->cols[i].local = "";
      r->cols[i].decimal_places = -1;
    }
    r->nmain = n;
  }
  return r;
oom:
  dorm__rows_free(r);
  return NULL;
}

dorm_rows *dorm__rows_new(const dorm__stmt *st, size_t nraw) {
  return rows_alloc(st, nraw, ROWS_INLINE, 0);
}

dorm_rows *dorm__rows_new_sized(const dorm__stmt *st, size_t nraw, size_t nrows,
                                size_t text_bytes) {
  size_t n = st->columns ? st->ncolumns : nraw;
  size_t per = 1 + (st->columns ? st->nrelated : 0);
  /* what rows_alloc, add_row, the puts and finish will take from the
   * arena, each piece 8-aligned as the arena rounds it */
  size_t need = ALIGN8((n ? n : 1) * sizeof(rcol));
  if (st->columns && st->nrelated) {
    need += ALIGN8(st->nrelated * sizeof(const char *));
    need += ALIGN8((st->nrelated + 1) * sizeof(int));
    for (size_t j = 0; j < st->nrelated; j++)
      need += ALIGN8(strlen(st->related[j]) + 1);
  }
  size_t rows = nrows ? nrows : 1;
  need += ALIGN8((n ? n : 1) * rows * sizeof(dorm_value));
  need += ALIGN8(rows * per * sizeof(struct dorm_row));
  need += text_bytes;
  if (need > 64 * 1024) need = ROWS_INLINE; /* big: arena blocks grow */
  return rows_alloc(st, nraw, need, nrows);
}

size_t dorm__rows_value_bytes(dorm_type t, size_t len) {
  if (t == DORM_T_INT || t == DORM_T_BOOL || t == DORM_T_FLOAT) return 0;
  /* its copy, NUL-terminated and 8-aligned as the arena rounds it, and
   * slack for the forms put_text rewrites (padded decimals, dashed uuids,
   * a date-time's 'T' and 'Z') */
  return ALIGN8(len + 1) + 8;
}

size_t dorm__rows_name_bytes(const char *name) {
  return ALIGN8(strlen(name) + 1);
}

int dorm__rows_raw_column(dorm_rows *r, size_t i, const char *name,
                          dorm_type type) {
  if (i >= r->ncols) return DORM_EINVAL;
  const char *s = dorm__arena_strndup(&r->arena, name, strlen(name));
  if (!s) return DORM_ENOMEM;
  r->cols[i].name = r->cols[i].local = s;
  r->cols[i].type = type;
  return 0;
}

size_t dorm__rows_width(const dorm_rows *r) { return r->ncols; }

int dorm__rows_add_row(dorm_rows *r) {
  size_t w = r->ncols;
  if (r->nrows == r->cap_rows) {
    size_t cap = r->cap_rows    ? r->cap_rows * 2
                 : r->hint_rows ? r->hint_rows
                                : 4;
    dorm_value *c;
    if (!r->cap_rows && (r->hint_rows || w * cap * sizeof *c <= 512)) {
      c = dorm__arena_alloc(&r->arena, (w ? w : 1) * cap * sizeof *c);
      if (!c) return DORM_ENOMEM;
      r->cells_in_arena = 1;
    } else if (r->cells_in_arena) {
      c = dorm__malloc((w ? w : 1) * cap * sizeof *c);
      if (!c) return DORM_ENOMEM;
      memcpy(c, r->cells, w * r->nrows * sizeof *c);
      r->cells_in_arena = 0;
    } else {
      c = dorm__realloc(r->cells, (w ? w : 1) * cap * sizeof *c);
      if (!c) return DORM_ENOMEM;
    }
    r->cells = c;
    r->cap_rows = cap;
  }
  dorm_value *row = r->cells + w * r->nrows;
  memset(row, 0, w * sizeof *row); /* DORM_T_NULL is 0 */
  r->nrows++;
  return 0;
}

static dorm_value *cell(dorm_rows *r, size_t col) {
  if (!r->nrows || col >= r->ncols) return NULL;
  return &r->cells[(r->nrows - 1) * r->ncols + col];
}

static int bad(dorm_rows *r, size_t col, const char *what, const char *s,
               size_t n) {
  snprintf(r->err, sizeof r->err, "column '%s': '%.*s' is not %s",
           r->cols[col].name, (int)(n > 40 ? 40 : n), s, what);
  return DORM_ETYPE;
}

/* Copy n bytes (NUL-terminated) into the arena as a value of type t. */
static int put_str(dorm_rows *r, dorm_value *v, dorm_type t, const char *s,
                   size_t n) {
  char *p = dorm__arena_alloc(&r->arena, n + 1);
  if (!p) return DORM_ENOMEM;
  if (n) memcpy(p, s, n);
  p[n] = '\0';
  *v = dorm_textn(t, p, n);
  return 0;
}

static int put_decimal_int(dorm_rows *r, dorm_value *v, int64_t x, int dp) {
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%" PRId64, x);
  if (dp > 0 && dp < 30) {
    buf[n++] = '.';
    for (int i = 0; i < dp; i++) buf[n++] = '0';
    buf[n] = '\0';
  }
  return put_str(r, v, DORM_T_DECIMAL, buf, (size_t)n);
}

int dorm__rows_put_int(dorm_rows *r, size_t col, int64_t x) {
  dorm_value *v = cell(r, col);
  if (!v) return DORM_EINVAL;
  switch (r->cols[col].type) {
    case DORM_T_BOOL: *v = dorm_bool(x != 0); return 0;
    case DORM_T_FLOAT: *v = dorm_float((double)x); return 0;
    case DORM_T_DECIMAL:
      return put_decimal_int(r, v, x, r->cols[col].decimal_places);
    case DORM_T_TEXT: {
      char buf[32];
      int n = snprintf(buf, sizeof buf, "%" PRId64, x);
      return put_str(r, v, DORM_T_TEXT, buf, (size_t)n);
    }
    case DORM_T_NULL:
    case DORM_T_INT: *v = dorm_int(x); return 0;
    default: {
      char buf[32];
      int n = snprintf(buf, sizeof buf, "%" PRId64, x);
      return bad(r, col, dorm_type_name(r->cols[col].type), buf, (size_t)n);
    }
  }
}

int dorm__rows_put_float(dorm_rows *r, size_t col, double x) {
  dorm_value *v = cell(r, col);
  if (!v) return DORM_EINVAL;
  /* "%.29f" of the largest double is 340 bytes: a row another program
   * stored (1e300 in a decimal column) must read back whole */
  char buf[384];
  int n;
  switch (r->cols[col].type) {
    case DORM_T_NULL:
    case DORM_T_FLOAT: *v = dorm_float(x); return 0;
    case DORM_T_INT:
      if (x != floor(x) || fabs(x) > 9.2e18)
        return bad(r, col, "an integer", "(a float)", 9);
      *v = dorm_int((int64_t)x);
      return 0;
    case DORM_T_BOOL: *v = dorm_bool(x != 0); return 0;
    case DORM_T_DECIMAL: {
      int dp = r->cols[col].decimal_places;
      /* SQLite's NUMERIC affinity turned "12.50" into 12.5: the 15
       * significant digits a double holds of a decimal, written to the
       * field's decimal places, give the text back (dorm refuses to write
       * a decimal SQLite cannot give back, see query/sql.c) */
      char dbuf[400];
      n = dorm__double_decimal15(x, dp >= 0 && dp < 64 ? dp : -1, dbuf,
                                 sizeof dbuf);
      if (n < 0) return bad(r, col, "a decimal", "(not finite)", 12);
      return put_str(r, v, DORM_T_DECIMAL, dbuf, (size_t)n);
    }
    case DORM_T_TEXT:
      n = snprintf(buf, sizeof buf, "%.17g", x);
      return put_str(r, v, DORM_T_TEXT, buf, (size_t)n);
    default:
      n = snprintf(buf, sizeof buf, "%.17g", x);
      return bad(r, col, dorm_type_name(r->cols[col].type), buf, (size_t)n);
  }
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* "2024-05-01 13:45:00" (canonical UTC) -> "2024-05-01T13:45:00Z". */
static int put_datetime(dorm_rows *r, size_t col, dorm_value *v, const char *s,
                        size_t n) {
  char canon[40];
  int m = dorm__canon_datetime(s, n, canon);
  if (m < 0 || m > 36) return bad(r, col, "a date-time", s, n);
  canon[10] = 'T';
  canon[m++] = 'Z';
  canon[m] = '\0';
  return put_str(r, v, DORM_T_DATETIME, canon, (size_t)m);
}

static int put_uuid(dorm_rows *r, size_t col, dorm_value *v, const char *s,
                    size_t n) {
  char hex[32], out[37];
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '-') continue;
    int h = hexval((unsigned char)s[i]);
    if (h < 0 || k >= 32) return bad(r, col, "a uuid", s, n);
    hex[k++] = "0123456789abcdef"[h];
  }
  if (k != 32) return bad(r, col, "a uuid", s, n);
  size_t o = 0;
  for (size_t i = 0; i < 32; i++) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out[o++] = '-';
    out[o++] = hex[i];
  }
  return put_str(r, v, DORM_T_UUID, out, 36);
}

static int parse_int(const char *s, size_t n, int64_t *out) {
  /* the common form, an optional '-' and up to 18 digits (cannot
   * overflow), without strtoll's copy and locale machinery; anything
   * else (a '+', spaces, 19 digits) goes through strtoll as before */
  size_t i = n && s[0] == '-';
  if (n > i && n - i <= 18) {
    int64_t x = 0;
    size_t k = i;
    for (; k < n && (unsigned)(s[k] - '0') <= 9; k++) x = x * 10 + (s[k] - '0');
    if (k == n) {
      *out = i ? -x : x;
      return 0;
    }
  }
  char buf[32];
  if (n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  char *end;
  long long x = strtoll(buf, &end, 10);
  if (*end) return -1;
  *out = x;
  return 0;
}

int dorm__rows_put_text(dorm_rows *r, size_t col, const char *s, size_t n) {
  dorm_value *v = cell(r, col);
  if (!v) return DORM_EINVAL;
  dorm_type t = r->cols[col].type;
  switch (t) {
    case DORM_T_NULL:
    case DORM_T_TEXT:
    case DORM_T_DATE:
    case DORM_T_TIME:
    case DORM_T_JSON:
      return put_str(r, v, t == DORM_T_NULL ? DORM_T_TEXT : t, s, n);
    case DORM_T_DECIMAL: {
      int dp = r->cols[col].decimal_places;
      /* a decimal stored as text keeps its digits; pad to the declared
       * places so SQLite and PostgreSQL read the same ("12.5" -> "12.50") */
      const char *dot = memchr(s, '.', n);
      size_t have = dot ? n - (size_t)(dot - s) - 1 : 0;
      if (dp > 0 && dp < 30 && (size_t)dp > have && dorm__valid_decimal(s, n) &&
          !memchr(s, 'e', n) && !memchr(s, 'E', n)) {
        char buf[96];
        if (n + 32 < sizeof buf) {
          memcpy(buf, s, n);
          size_t m = n;
          if (!dot) buf[m++] = '.';
          while (have < (size_t)dp) buf[m++] = '0', have++;
          return put_str(r, v, t, buf, m);
        }
      }
      return put_str(r, v, t, s, n);
    }
    case DORM_T_UUID: return put_uuid(r, col, v, s, n);
    case DORM_T_DATETIME: return put_datetime(r, col, v, s, n);
    case DORM_T_INT: {
      int64_t x;
      if (parse_int(s, n, &x)) return bad(r, col, "an integer", s, n);
      *v = dorm_int(x);
      return 0;
    }
    case DORM_T_BOOL:
      if ((n == 1 && (s[0] == 't' || s[0] == '1')) ||
          (n == 4 && !memcmp(s, "true", 4))) {
        *v = dorm_bool(1);
        return 0;
      }
      if ((n == 1 && (s[0] == 'f' || s[0] == '0')) ||
          (n == 5 && !memcmp(s, "false", 5))) {
        *v = dorm_bool(0);
        return 0;
      }
      return bad(r, col, "a boolean", s, n);
    case DORM_T_FLOAT: {
      char buf[64];
      if (n == 0 || n >= sizeof buf) return bad(r, col, "a float", s, n);
      memcpy(buf, s, n);
      buf[n] = '\0';
      char *end;
      double x = strtod(buf, &end);
      if (*end) return bad(r, col, "a float", s, n);
      *v = dorm_float(x);
      return 0;
    }
    case DORM_T_BYTES:
      if (n >= 2 && s[0] == '\\' && s[1] == 'x') { /* PostgreSQL bytea */
        if ((n - 2) % 2) return bad(r, col, "bytea hex", s, n);
        size_t m = (n - 2) / 2;
        char *p = dorm__arena_alloc(&r->arena, m + 1);
        if (!p) return DORM_ENOMEM;
        for (size_t i = 0; i < m; i++) {
          int hi = hexval((unsigned char)s[2 + 2 * i]);
          int lo = hexval((unsigned char)s[3 + 2 * i]);
          if (hi < 0 || lo < 0) return bad(r, col, "bytea hex", s, n);
          p[i] = (char)(hi * 16 + lo);
        }
        p[m] = '\0';
        *v = dorm_textn(DORM_T_BYTES, p, m);
        return 0;
      }
      return put_str(r, v, DORM_T_BYTES, s, n);
    default: return bad(r, col, dorm_type_name(t), s, n);
  }
}

int dorm__rows_put_bytes(dorm_rows *r, size_t col, const void *p, size_t n) {
  dorm_value *v = cell(r, col);
  if (!v) return DORM_EINVAL;
  dorm_type t = r->cols[col].type;
  if (t == DORM_T_NULL || t == DORM_T_BYTES)
    return put_str(r, v, DORM_T_BYTES, p, n);
  return dorm__rows_put_text(r, col, p, n);
}

const char *dorm__rows_error(const dorm_rows *r) { return r->err; }

int dorm__rows_finish(dorm_rows *r) {
  size_t per = 1 + r->nrelated;
  size_t n = r->nrows * per;
  if (n == 0) return 0;
  r->rowv = dorm__arena_alloc(&r->arena, n * sizeof *r->rowv);
  if (!r->rowv) return DORM_ENOMEM;
  for (size_t i = 0; i < r->nrows; i++)
    for (size_t j = 0; j < per; j++) {
      struct dorm_row *w = &r->rowv[i * per + j];
      w->rows = r;
      w->index = i;
      w->rel = (int)j;
    }
  return 0;
}

void dorm__rows_free(dorm_rows *r) {
  if (!r) return;
  for (size_t i = 0; i < r->npf; i++)
    for (size_t k = 0; r->pf[i].own && k < r->pf[i].nchildren; k++)
      dorm__rows_free(r->pf[i].children[k]);
  if (!r->cells_in_arena) dorm__free(r->cells);
  dorm__arena_free(&r->arena);
  dorm__free(r);
}

int dorm__rows_attach_prefetch(dorm_rows *r, const char *name, int single,
                               int own, dorm_rows **children, size_t nchildren,
                               const dorm_row *const *refs, const size_t *off) {
  /* everything but the children lives in the parent's arena: freed with
   * it, and the parent is only read once handed to the user */
  prefetched *pf = dorm__arena_alloc(&r->arena, (r->npf + 1) * sizeof *pf);
  dorm_rows **kids =
      dorm__arena_alloc(&r->arena, (nchildren ? nchildren : 1) * sizeof *kids);
  dorm_rows **views =
      dorm__arena_alloc(&r->arena, (r->nrows ? r->nrows : 1) * sizeof *views);
  size_t nrefs = off[r->nrows] - off[0];
  struct dorm_row *handles =
      dorm__arena_alloc(&r->arena, (nrefs ? nrefs : 1) * sizeof *handles);
  const char *nm = dorm__arena_strndup(&r->arena, name, strlen(name));
  int ok = pf && kids && views && handles && nm;
  for (size_t i = 0; ok && i < r->nrows; i++) {
    /* the arena aligns to 8, a dorm_rows (its inline block) to 16 */
    char *raw = dorm__arena_alloc(&r->arena, sizeof(dorm_rows) + 8);
    if (!raw) {
      ok = 0;
      break;
    }
    dorm_rows *v = (dorm_rows *)(void *)(raw + ((uintptr_t)raw & 8));
    /* a header only: never freed on its own (dorm__rows_free is for the
     * parent), its rows are the children's */
    memset(v, 0, sizeof *v);
    if (nchildren) {
      v->cols = children[0]->cols;
      v->ncols = children[0]->ncols;
      v->nmain = children[0]->nmain;
    }
    v->cells_in_arena = 1;
    v->nrows = off[i + 1] - off[i];
    v->rowv = handles + (off[i] - off[0]);
    views[i] = v;
  }
  if (!ok) {
    for (size_t k = 0; own && k < nchildren; k++) dorm__rows_free(children[k]);
    return DORM_ENOMEM;
  }
  for (size_t k = 0; k < nrefs; k++) handles[k] = *refs[off[0] + k];
  if (r->npf) memcpy(pf, r->pf, r->npf * sizeof *pf);
  if (nchildren) memcpy(kids, children, nchildren * sizeof *kids);
  pf[r->npf].name = nm;
  pf[r->npf].single = single;
  pf[r->npf].own = own;
  pf[r->npf].children = kids;
  pf[r->npf].nchildren = nchildren;
  pf[r->npf].views = views;
  r->pf = pf;
  r->npf++;
  return 0;
}

void dorm__rows_set_created(dorm_rows *r, int created) {
  r->created = created ? 1 : 0;
}

static void rows_free_cb(struct dorm_rows *r) { dorm__rows_free(r); }
static void row_free_cb(struct dorm_row *row) { dorm__rows_free(row->rows); }

dorm_result dorm__rows_result(dorm_rows *r) {
  return dorm_result_rows(r, rows_free_cb);
}

dorm_result dorm__row_result(dorm_rows *r, size_t i) {
  if (i >= r->nrows || !r->rowv) {
    dorm__rows_free(r);
    return dorm_result_error(DORM_EINVAL, "row %zu out of range", i);
  }
  return dorm_result_row(&r->rowv[i * (1 + r->nrelated)], row_free_cb);
}

dorm_rows *dorm__row_rows(const dorm_row *row) { return row->rows; }
