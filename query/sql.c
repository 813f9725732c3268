/* SPDX-License-Identifier: MIT */
/* query/sql.c — the compiled statement: its buffers, parameters, result
 * columns, and the small writers the compilers use.
 *
 * A dorm_sql is reused across compiles: its text, parameter and column
 * arrays keep their capacity, so a loop that compiles into one dorm_sql
 * allocates nothing after the first few queries.  Parameter strings are
 * copied into the dorm_sql's own byte arena; because that arena may move
 * when it grows, strings are recorded as offsets while compiling and turned
 * into pointers once at the end (dorm__sql_finish).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"

void dorm_sql_init(dorm_sql *sql) { memset(sql, 0, sizeof *sql); }

void dorm_sql_free(dorm_sql *sql) {
  if (!sql) return;
  dorm__free(sql->text);
  dorm__free(sql->params);
  dorm__free(sql->param_int4);
  dorm__free(sql->columns);
  dorm__free(sql->related);
  dorm__free(sql->arena);
  memset(sql, 0, sizeof *sql);
}

void dorm__cctx_start(cctx *c, const dorm_query *q, dorm_dialect dialect,
                      dorm_sql *out, dorm_error *err) {
  out->len = 0;
  out->nparams = 0;
  out->ncolumns = 0;
  out->nrelated = 0;
  out->arena_len = 0;
  out->returns_rows = 0;
  out->row_lock = 0;
  if (out->text) out->text[0] = '\0';
  memset(c, 0, offsetof(cctx, joins));
  c->param_field = NULL;
  c->param_write = 0;
  c->q = q;
  c->d = dialect;
  c->out = out;
  c->err = err;
  c->njoins = 0;
  c->no_joins = 0;
  c->agg_inner = 0;
  c->registering = 0;
  c->int4_rhs = 0;
  /* write straight into out's text buffer, keeping its capacity */
  c->buf.data = out->text;
  c->buf.cap = out->text_cap;
  c->buf.len = 0;
  c->buf.oom = 0;
}

int dorm__cctx_end(cctx *c, int rc) {
  dorm_sql *out = c->out;
  if (!rc) rc = dorm__sql_finish(c);
  out->text = c->buf.data;
  out->text_cap = c->buf.cap;
  if (rc) {
    out->len = 0;
    out->nparams = 0;
    out->ncolumns = 0;
    out->nrelated = 0;
    if (out->text) out->text[0] = '\0';
    if (c->err && c->err->code == 0)
      dorm_error_set(c->err, rc, "%s", dorm_strerror(rc));
    return rc;
  }
  out->len = c->buf.len;
  out->text[out->len] = '\0'; /* the emitters leave room for it */
  return 0;
}

int dorm__cfail(cctx *c, int code, const char *fmt, ...) {
  if (c->failed) return c->err ? c->err->code : code;
  c->failed = code;
  if (c->err && c->err->code == 0) {
    c->err->code = code;
    c->err->sqlstate[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->message, sizeof c->err->message, fmt, ap);
    va_end(ap);
    dorm__utf8_mend(c->err->message);
  }
  return code;
}

/* Bytes into the dorm_sql's arena; returns the offset or (size_t)-1. */
static size_t arena_put(cctx *c, const char *s, size_t n) {
  dorm_sql *o = c->out;
  if (o->arena_len + n + 1 > o->arena_cap) {
    size_t cap = o->arena_cap ? o->arena_cap : 256;
    while (cap < o->arena_len + n + 1) cap *= 2;
    char *a = dorm__realloc(o->arena, cap);
    if (!a) {
      dorm__cfail(c, DORM_ENOMEM, "out of memory compiling a query");
      return (size_t)-1;
    }
    o->arena = a;
    o->arena_cap = cap;
  }
  size_t off = o->arena_len;
  if (n) memcpy(o->arena + off, s, n);
  o->arena[off + n] = '\0';
  o->arena_len += n + 1;
  return off;
}

const char *dorm__sql_strdup(cctx *c, const char *s, size_t n) {
  size_t off = arena_put(c, s, n);
  return off == (size_t)-1 ? NULL : (const char *)(uintptr_t)(off + 1);
}

static int is_textlike(dorm_type t) {
  return t >= DORM_T_TEXT && t <= DORM_T_JSON;
}

/* SQLite keeps a decimal in a column of NUMERIC affinity: as an integer
 * when it is one, else as a double, which holds 15 significant digits of
 * any decimal.  So on SQLite a decimal that a double cannot give back is
 * refused here, before anything is written (docs/sqlite.md): written to a
 * field, it must take at most 15 digits from its first non-zero digit to
 * the field's last decimal place (then Sum() can add it exactly, see
 * columns.c); compared or used in an expression, at most 15 significant
 * digits. */
static int sqlite_decimal_ok(cctx *c, dorm_value v) {
  dorm__decdigits d;
  dorm__decimal_digits(v.u.s.ptr, v.u.s.len, &d);
  const dorm_field *f = c->param_field;
  const char *model = c->q && c->q->model ? c->q->model->name : "?";
  if (c->param_write && f && f->type == DORM_FIELD_DECIMAL) {
    if (!d.sig || d.lead + f->decimal_places <= 15) return 1;
    dorm__cfail(c, DORM_ERANGE,
                "model '%s', field '%s': decimal '%.*s' needs %ld digits to "
                "%d decimal places; SQLite stores a decimal as a double, "
                "exact to 15 digits",
                model, f->name, (int)v.u.s.len, v.u.s.ptr,
                d.lead + f->decimal_places, f->decimal_places);
    return 0;
  }
  if (d.sig <= 15) return 1;
  if (f)
    dorm__cfail(c, DORM_ERANGE,
                "model '%s', field '%s': decimal '%.*s' has %zu significant "
                "digits; SQLite compares decimals as doubles, exact to 15",
                model, f->name, (int)v.u.s.len, v.u.s.ptr, d.sig);
  else
    dorm__cfail(c, DORM_ERANGE,
                "model '%s': decimal '%.*s' has %zu significant digits; "
                "SQLite computes with decimals as doubles, exact to 15",
                model, (int)v.u.s.len, v.u.s.ptr, d.sig);
  return 0;
}

void dorm__emit_param(cctx *c, dorm_value v) {
  dorm_sql *o = c->out;
  if (c->failed) return;
  if (v.type == DORM_T_DECIMAL && c->d == DORM_DIALECT_SQLITE &&
      !sqlite_decimal_ok(c, v))
    return;
  if (o->nparams == o->params_cap) {
    size_t cap = o->params_cap ? o->params_cap * 2 : 16;
    dorm_value *p = dorm__realloc(o->params, cap * sizeof *p);
    if (!p) {
      dorm__cfail(c, DORM_ENOMEM, "out of memory compiling a query");
      return;
    }
    o->params = p;
    /* the hints grow with the parameters (they are allocated once the
     * first hint is set) */
    if (o->param_int4) {
      unsigned char *h = dorm__realloc(o->param_int4, cap);
      if (!h) {
        dorm__cfail(c, DORM_ENOMEM, "out of memory compiling a query");
        return;
      }
      o->param_int4 = h;
    }
    o->params_cap = cap;
  }
  dorm_value *slot = &o->params[o->nparams];
  *slot = v;
  int int4 = c->int4_rhs && v.type == DORM_T_INT && v.u.i >= INT32_MIN &&
             v.u.i <= INT32_MAX;
  if (int4 && !o->param_int4) {
    o->param_int4 = dorm__calloc(o->params_cap, 1);
    if (!o->param_int4) {
      dorm__cfail(c, DORM_ENOMEM, "out of memory compiling a query");
      return;
    }
  }
  if (o->param_int4) o->param_int4[o->nparams] = (unsigned char)int4;
  if (is_textlike(v.type)) {
    size_t off = arena_put(c, v.u.s.ptr, v.u.s.len);
    if (off == (size_t)-1) return;
    slot->u.s.ptr = (const char *)(uintptr_t)off; /* fixed up at the end */
  }
  size_t n = ++o->nparams;
  dorm__buf *b = &c->buf;
  if (b->len + 24 > b->cap && dorm__buf_reserve(b, 24)) return;
  char *p = b->data + b->len;
  if (c->d != DORM_DIALECT_POSTGRES) {
    *p = '?';
    b->len++;
    return;
  }
  /* "$n" written straight into the buffer: going through a small local
   * array costs a store-forwarding stall on every parameter */
  size_t digits = 1;
  for (size_t t = n; t >= 10; t /= 10) digits++;
  p[0] = '$';
  for (size_t i = digits; i > 0; i--) {
    p[i] = (char)('0' + n % 10);
    n /= 10;
  }
  b->len += digits + 1;
}

static dorm_column *new_column(cctx *c) {
  dorm_sql *o = c->out;
  if (o->ncolumns == o->columns_cap) {
    size_t cap = o->columns_cap ? o->columns_cap * 2 : 16;
    dorm_column *p = dorm__realloc(o->columns, cap * sizeof *p);
    if (!p) {
      dorm__cfail(c, DORM_ENOMEM, "out of memory compiling a query");
      return NULL;
    }
    o->columns = p;
    o->columns_cap = cap;
  }
  return &o->columns[o->ncolumns++];
}

int dorm__add_column_static(cctx *c, const char *name, const dorm_field *f,
                            const dorm_model *m, int relation, dorm_type t) {
  if (c->failed) return c->failed;
  dorm_column *col = new_column(c);
  if (!col) return c->failed;
  col->name = name;
  col->name_pending = 0;
  col->field = f;
  col->model = m;
  col->relation = relation;
  col->type = t;
  return 0;
}

int dorm__add_column(cctx *c, const char *name, const dorm_field *f,
                     const dorm_model *m, int relation, dorm_type t) {
  dorm_sql *o = c->out;
  if (c->failed) return c->failed;
  if (o->ncolumns == o->columns_cap) {
    size_t cap = o->columns_cap ? o->columns_cap * 2 : 16;
    dorm_column *p = dorm__realloc(o->columns, cap * sizeof *p);
    if (!p)
      return dorm__cfail(c, DORM_ENOMEM, "out of memory compiling a query");
    o->columns = p;
    o->columns_cap = cap;
  }
  const char *nm = dorm__sql_strdup(c, name, strlen(name));
  if (!nm) return c->failed;
  dorm_column *col = &o->columns[o->ncolumns++];
  col->name = nm;
  col->name_pending = 1;
  col->field = f;
  col->model = m;
  col->relation = relation;
  col->type = t;
  return 0;
}

/* Turn the recorded offsets into pointers; called once, at the end of a
 * successful compile. */
int dorm__sql_finish(cctx *c) {
  dorm_sql *o = c->out;
  if (c->buf.oom)
    return dorm__cfail(c, DORM_ENOMEM, "out of memory compiling a query");
  if (c->failed) return c->failed;
  for (size_t i = 0; i < o->nparams; i++)
    if (is_textlike(o->params[i].type))
      o->params[i].u.s.ptr = o->arena + (uintptr_t)o->params[i].u.s.ptr;
  for (size_t i = 0; i < o->ncolumns; i++)
    if (o->columns[i].name_pending) {
      o->columns[i].name = o->arena + ((uintptr_t)o->columns[i].name - 1);
      o->columns[i].name_pending = 0;
    }
  for (size_t i = 0; i < o->nrelated; i++)
    o->related[i] = o->arena + ((uintptr_t)o->related[i] - 1);
  return 0;
}

char *dorm_sql_describe(const dorm_sql *sql, dorm_dialect dialect) {
  dorm__buf b;
  dorm__buf_init(&b);
  dorm__buf_append(&b, sql->text ? sql->text : "", sql->len);
  dorm__buf_putc(&b, '\n');
  for (size_t i = 0; i < sql->nparams; i++) {
    const dorm_value *v = &sql->params[i];
    if (dialect == DORM_DIALECT_POSTGRES)
      dorm__buf_printf(&b, "  $%zu = ", i + 1);
    else
      dorm__buf_printf(&b, "  ?%zu = ", i + 1);
    switch (v->type) {
      case DORM_T_NULL: dorm__buf_puts(&b, "NULL"); break;
      case DORM_T_BOOL: dorm__buf_puts(&b, v->u.b ? "true" : "false"); break;
      case DORM_T_INT: dorm__buf_put_int(&b, v->u.i); break;
      case DORM_T_FLOAT: dorm__buf_printf(&b, "%.17g", v->u.f); break;
      case DORM_T_BYTES: dorm__buf_printf(&b, "<%zu bytes>", v->u.s.len); break;
      default:
        if (is_textlike(v->type)) {
          dorm__buf_putc(&b, '\'');
          for (size_t k = 0; k < v->u.s.len; k++) {
            char ch = v->u.s.ptr[k];
            if (ch == '\'') dorm__buf_putc(&b, '\'');
            if ((unsigned char)ch < 0x20)
              dorm__buf_printf(&b, "\\x%02x", (unsigned char)ch);
            else
              dorm__buf_putc(&b, ch);
          }
          dorm__buf_putc(&b, '\'');
        }
        break;
    }
    dorm__buf_printf(&b, " (%s)\n", dorm_type_name(v->type));
  }
  if (b.oom) {
    dorm__buf_free(&b);
    return NULL;
  }
  /* hand back a malloc'd copy so callers can use free() */
  char *s = strdup(dorm__buf_cstr(&b));
  dorm__buf_free(&b);
  return s;
}
