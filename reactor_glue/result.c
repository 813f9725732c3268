/* SPDX-License-Identifier: MIT */
/* reactor_glue/result.c — dorm_result: constructing, inspecting and freeing
 * the typed results that travel down a deferred's chain.
 *
 * A result is a small tagged value passed by value; what it owns it frees
 * through destructors its maker supplied (rows, row, value owner, user
 * pointer) or through dorm's allocator (error messages, copied values,
 * gather lists).  Constructors never fail: when memory runs out they give
 * an error result instead, so a callback can always return what it gets.
 * An error's message lives in its own small allocation rather than inline
 * (a dorm_error is over 500 bytes), which keeps every deferred small; when
 * that allocation fails the code survives and the message falls back to
 * dorm_strerror.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base_int.h"
#include "reactor_glue/reactor_int.h"

void dorm_result_free(dorm_result *r) {
  if (!r) return;
  switch (r->kind) {
    case DORM_RESULT_ROWS:
      if (r->u.rows.free && r->u.rows.rows) r->u.rows.free(r->u.rows.rows);
      break;
    case DORM_RESULT_ROW:
      if (r->u.row.free && r->u.row.row) r->u.row.free(r->u.row.row);
      break;
    case DORM_RESULT_VALUE:
      if (r->u.value.free && r->u.value.owner)
        r->u.value.free(r->u.value.owner);
      break;
    case DORM_RESULT_PTR:
      if (r->u.ptr.free && r->u.ptr.ptr) r->u.ptr.free(r->u.ptr.ptr);
      break;
    case DORM_RESULT_LIST:
      for (size_t i = 0; i < r->u.list.n; i++)
        dorm_result_free(&r->u.list.items[i]);
      dorm__free(r->u.list.items);
      break;
    case DORM_RESULT_ERROR: dorm__free(r->u.error.message); break;
    case DORM_RESULT_NONE:
    case DORM_RESULT_COUNT:
    case DORM_RESULT_DEFERRED: /* borrowed: see dorm_result_deferred */ break;
  }
  *r = dorm_result_none();
}

int dorm__result_same_payload(const dorm_result *a, const dorm_result *b) {
  if (a->kind != b->kind) return 0;
  switch (a->kind) {
    case DORM_RESULT_ROWS: return a->u.rows.rows == b->u.rows.rows;
    case DORM_RESULT_ROW: return a->u.row.row == b->u.row.row;
    case DORM_RESULT_VALUE: return a->u.value.owner == b->u.value.owner;
    case DORM_RESULT_PTR: return a->u.ptr.ptr == b->u.ptr.ptr;
    case DORM_RESULT_LIST: return a->u.list.items == b->u.list.items;
    case DORM_RESULT_ERROR: return a->u.error.message == b->u.error.message;
    default: return 1; /* owns nothing */
  }
}

static dorm_result make_error(int code, const char *sqlstate, const char *fmt,
                              va_list ap) {
  dorm_result r = dorm_result_none();
  r.kind = DORM_RESULT_ERROR;
  r.u.error.code = code < 0 ? code : DORM_EINVAL;
  if (sqlstate && sqlstate[0]) {
    size_t n = strnlen(sqlstate, 5);
    memcpy(r.u.error.sqlstate, sqlstate, n);
    r.u.error.sqlstate[n] = '\0';
  }
  /* Out of memory is reported without allocating: its text is static. */
  if (!fmt || r.u.error.code == DORM_ENOMEM) return r;
  char small[256];
  va_list ap2;
  va_copy(ap2, ap);
  int len = vsnprintf(small, sizeof small, fmt, ap2);
  va_end(ap2);
  if (len < 0) return r;
  char *msg = dorm__malloc((size_t)len + 1);
  if (!msg) return r; /* the code survives; the text falls back */
  if ((size_t)len < sizeof small)
    memcpy(msg, small, (size_t)len + 1);
  else
    vsnprintf(msg, (size_t)len + 1, fmt, ap);
  dorm__utf8_mend(msg);
  r.u.error.message = msg;
  return r;
}

dorm_result dorm_result_error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dorm_result r = make_error(code, NULL, fmt, ap);
  va_end(ap);
  return r;
}

dorm_result dorm_result_error_sql(int code, const char *sqlstate,
                                  const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dorm_result r = make_error(code, sqlstate, fmt, ap);
  va_end(ap);
  return r;
}

dorm_result dorm_result_error_from(const dorm_error *err) {
  if (!err) return dorm_result_error(DORM_EINVAL, "no error given");
  if (err->message[0])
    return dorm_result_error_sql(err->code, err->sqlstate, "%s", err->message);
  return dorm_result_error_sql(err->code, err->sqlstate, NULL);
}

const char *dorm_result_message(const dorm_result *r) {
  if (!r || r->kind != DORM_RESULT_ERROR) return "";
  return r->u.error.message ? r->u.error.message
                            : dorm_strerror(r->u.error.code);
}

const char *dorm_result_sqlstate(const dorm_result *r) {
  if (!r || r->kind != DORM_RESULT_ERROR) return "";
  return r->u.error.sqlstate;
}

int dorm_result_to_error(const dorm_result *r, dorm_error *out) {
  dorm_error_clear(out);
  if (!r || r->kind != DORM_RESULT_ERROR) return 0;
  dorm_error_set(out, r->u.error.code, "%s", dorm_result_message(r));
  if (out) memcpy(out->sqlstate, r->u.error.sqlstate, sizeof out->sqlstate);
  return r->u.error.code;
}

/* ---- copying a dorm_value into memory the result owns ---- */

#define VALUE_MAX_DEPTH 32

static int is_texty(dorm_type t) {
  return t >= DORM_T_TEXT && t <= DORM_T_JSON;
}

/* Bytes needed for v's strings and list arrays, with room to align each
 * array; DORM_EINVAL for what cannot be copied. */
static int value_size(const dorm_value *v, size_t *sz, int depth) {
  if (depth > VALUE_MAX_DEPTH) return DORM_EINVAL;
  if (is_texty(v->type)) {
    *sz += v->u.s.len + 1;
  } else if (v->type == DORM_T_LIST) {
    *sz += v->u.list.n * sizeof(dorm_value) + sizeof(dorm_value);
    for (size_t i = 0; i < v->u.list.n; i++) {
      int rc = value_size(&v->u.list.items[i], sz, depth + 1);
      if (rc) return rc;
    }
  } else if (v->type == DORM_T_EXPR) {
    return DORM_EINVAL;
  }
  return 0;
}

static dorm_value value_copy_into(const dorm_value *v, char **cur) {
  dorm_value c = *v;
  if (is_texty(v->type)) {
    char *p = *cur;
    if (v->u.s.len) memcpy(p, v->u.s.ptr, v->u.s.len);
    p[v->u.s.len] = '\0'; /* so text can be printed with %s */
    c.u.s.ptr = p;
    *cur = p + v->u.s.len + 1;
  } else if (v->type == DORM_T_LIST) {
    uintptr_t a = (uintptr_t)*cur;
    a = (a + _Alignof(dorm_value) - 1) & ~(uintptr_t)(_Alignof(dorm_value) - 1);
    dorm_value *items = (dorm_value *)a;
    *cur = (char *)(items + v->u.list.n);
    for (size_t i = 0; i < v->u.list.n; i++)
      items[i] = value_copy_into(&v->u.list.items[i], cur);
    c.u.list.items = items;
  }
  return c;
}

static void free_owner(void *p) { dorm__free(p); }

dorm_result dorm_result_value_copy(dorm_value v) {
  size_t sz = 0;
  if (value_size(&v, &sz, 0))
    return dorm_result_error(DORM_EINVAL, "cannot copy a value of type %s",
                             dorm_type_name(v.type));
  if (sz == 0) return dorm_result_value(v); /* nothing borrowed */
  char *mem = dorm__malloc(sz);
  if (!mem) return dorm_result_error(DORM_ENOMEM, NULL);
  char *cur = mem;
  dorm_value c = value_copy_into(&v, &cur);
  return dorm_result_value_owned(c, mem, free_owner);
}
