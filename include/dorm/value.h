/* SPDX-License-Identifier: MIT */
/* dorm/value.h — the typed value that crosses every layer.
 *
 * A dorm_value is a small tagged union passed by value: what a user gives
 * the query builder (the right-hand side of a lookup, a column to insert),
 * what the compiler hands a backend as a parameter, and a field's default in
 * a model.  Text-like types (decimal, dates and times, uuid, json) carry
 * their canonical text form, tagged so a backend can pick the wire type.
 *
 * A decimal is text so it stays exact: a C double given where a decimal is
 * expected becomes the shortest text that reads back as it (0.1 -> "0.1"),
 * and a decimal written to a field must fit its max_digits/decimal_places
 * (DORM_ERANGE otherwise; on SQLite also at most 15 digits, see
 * docs/sqlite.md "Decimals").
 *
 * Ownership: a dorm_value never owns memory.  Its pointers are borrowed from
 * whoever made it; the query builder copies what it is given, so a caller's
 * strings need to live only for the duration of the builder call.
 */
#ifndef DORM_VALUE_H
#define DORM_VALUE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dorm/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dorm_type {
  DORM_T_NULL = 0,
  DORM_T_BOOL,     /* u.b: 0 or 1 */
  DORM_T_INT,      /* u.i */
  DORM_T_FLOAT,    /* u.f */
  DORM_T_TEXT,     /* u.s: UTF-8, not necessarily NUL-terminated */
  DORM_T_BYTES,    /* u.s: raw bytes */
  DORM_T_DECIMAL,  /* u.s: "-12.50", sent as exactly this text */
  DORM_T_DATE,     /* u.s: "2024-05-01" */
  DORM_T_TIME,     /* u.s: "13:45:00" or "13:45:00.123456" */
  DORM_T_DATETIME, /* u.s: "2024-05-01T13:45:00Z" (ISO 8601; offset or Z) */
  DORM_T_UUID,     /* u.s: "123e4567-e89b-12d3-a456-426614174000" */
  DORM_T_JSON,     /* u.s: a JSON document as text (the builder sends it
                      in a canonical form: docs/queries.md "Values") */
  DORM_T_LIST,     /* u.list: for `in` and `range` */
  DORM_T_EXPR      /* u.expr: an F expression (see dorm/query.h) */
} dorm_type;

struct dorm_expr;

typedef struct dorm_value {
  dorm_type type;
  union {
    int b;
    int64_t i;
    double f;
    struct {
      const char *ptr;
      size_t len;
    } s;
    struct {
      const struct dorm_value *items;
      size_t n;
    } list;
    const struct dorm_expr *expr;
  } u;
} dorm_value;

/* Name of a type ("integer", "text", ...); never NULL. */
DORM_EXTERN const char *dorm_type_name(dorm_type t);

/* Constructors.  Strings are borrowed (see above). */
static inline dorm_value dorm_null(void) {
  dorm_value v;
  memset(&v, 0, sizeof v);
  return v;
}
static inline dorm_value dorm_bool(int b) {
  dorm_value v = dorm_null();
  v.type = DORM_T_BOOL;
  v.u.b = b ? 1 : 0;
  return v;
}
static inline dorm_value dorm_int(int64_t i) {
  dorm_value v = dorm_null();
  v.type = DORM_T_INT;
  v.u.i = i;
  return v;
}
static inline dorm_value dorm_float(double f) {
  dorm_value v = dorm_null();
  v.type = DORM_T_FLOAT;
  v.u.f = f;
  return v;
}
/* A value of a text-like type t (TEXT, BYTES, DECIMAL, DATE, TIME,
 * DATETIME, UUID, JSON) from len bytes at p. */
static inline dorm_value dorm_textn(dorm_type t, const char *p, size_t len) {
  dorm_value v = dorm_null();
  v.type = t;
  v.u.s.ptr = p;
  v.u.s.len = len;
  return v;
}
static inline dorm_value dorm_str(const char *s) {
  return dorm_textn(DORM_T_TEXT, s, s ? strlen(s) : 0);
}
static inline dorm_value dorm_strn(const char *s, size_t len) {
  return dorm_textn(DORM_T_TEXT, s, len);
}
static inline dorm_value dorm_bytes(const void *p, size_t len) {
  return dorm_textn(DORM_T_BYTES, (const char *)p, len);
}
static inline dorm_value dorm_decimal(const char *s) {
  return dorm_textn(DORM_T_DECIMAL, s, strlen(s));
}
static inline dorm_value dorm_date(const char *s) {
  return dorm_textn(DORM_T_DATE, s, strlen(s));
}
static inline dorm_value dorm_time(const char *s) {
  return dorm_textn(DORM_T_TIME, s, strlen(s));
}
static inline dorm_value dorm_datetime(const char *s) {
  return dorm_textn(DORM_T_DATETIME, s, strlen(s));
}
static inline dorm_value dorm_uuid(const char *s) {
  return dorm_textn(DORM_T_UUID, s, strlen(s));
}
static inline dorm_value dorm_json_text(const char *s) {
  return dorm_textn(DORM_T_JSON, s, strlen(s));
}
/* A list of n values (borrowed array) for `in` and `range`. */
static inline dorm_value dorm_list(const dorm_value *items, size_t n) {
  dorm_value v = dorm_null();
  v.type = DORM_T_LIST;
  v.u.list.items = items;
  v.u.list.n = n;
  return v;
}

#ifdef __cplusplus
}
#endif
#endif /* DORM_VALUE_H */
