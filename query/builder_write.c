/* SPDX-License-Identifier: MIT */
/* query/builder_write.c — recording inserts, updates, upserts and
 * RETURNING on a dorm_query (the builder's write half; see builder.c).
 *
 * Values are checked against their field when set (type, nullability,
 * max_length, choices), so a bad row is refused before any SQL exists.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"

/* ---- writes ------------------------------------------------------------- */

static const dorm_field *writable_field(dorm_query *q, const char *name,
                                        const char *what) {
  const dorm_field *f =
      name ? dorm__find_field(q->model, name, strlen(name)) : NULL;
  if (!f) {
    dorm__qerr(q, DORM_EFIELD, "model '%s', %s: unknown field '%s'",
               q->model->name, what, name ? name : "(null)");
    return NULL;
  }
  if (f->type == DORM_FIELD_MANY_TO_MANY) {
    dorm__qerr(q, DORM_EFIELD,
               "model '%s', %s: many_to_many field '%s' has no column",
               q->model->name, what, name);
    return NULL;
  }
  return f;
}

/* ---- choices ------------------------------------------------------------
 *
 * A field's choices were converted to its value type when the schema was
 * finished, and the value being set has just been converted the same way,
 * so most types compare byte for byte (datetimes and uuids are both in
 * their canonical spelling).  Decimals and times may be spelt several ways
 * for one value ("1.50" and "1.5", "10:00" and "10:00:00"): they compare
 * by what they mean. */

/* A decimal's digits without sign, leading zeros, trailing fraction zeros
 * or a point that ends it ("-001.500" -> negative, "1.5"; "0.50" -> ".5");
 * zero is the empty string and never negative. */
static void decimal_norm(const char *s, size_t n, int *neg, const char **d,
                         size_t *dn) {
  size_t i = 0;
  *neg = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) *neg = s[i++] == '-';
  while (i < n && s[i] == '0') i++;
  size_t end = n;
  if (memchr(s + i, '.', n - i)) {
    while (end > i && s[end - 1] == '0') end--;
    if (end > i && s[end - 1] == '.') end--;
  }
  *d = s + i;
  *dn = end - i;
  if (*dn == 0) *neg = 0; /* -0 is 0 */
}

static int decimal_eq(dorm_value a, dorm_value b) {
  int na, nb;
  const char *da, *db;
  size_t la, lb;
  decimal_norm(a.u.s.ptr, a.u.s.len, &na, &da, &la);
  decimal_norm(b.u.s.ptr, b.u.s.len, &nb, &db, &lb);
  return na == nb && la == lb && !memcmp(da, db, la);
}

/* HH:MM[:SS[.ffffff]] as microseconds since midnight, or -1. */
static int64_t time_us(const char *s, size_t n) {
  int64_t v[3] = {0, 0, 0}, frac = 0;
  size_t i = 0;
  for (int part = 0; part < 3 && i < n; part++) {
    if (part && s[i++] != ':') return -1;
    for (int k = 0; k < 2; k++, i++) {
      if (i >= n || s[i] < '0' || s[i] > '9') return -1;
      v[part] = v[part] * 10 + (s[i] - '0');
    }
  }
  if (i < n && s[i] == '.') {
    int64_t scale = 100000;
    for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10)
      frac += (s[i] - '0') * scale;
  }
  if (i != n) return -1;
  return ((v[0] * 60 + v[1]) * 60 + v[2]) * 1000000 + frac;
}

static int choice_eq(dorm_value a, dorm_value b) {
  if (a.type != b.type) return 0;
  switch (a.type) {
    case DORM_T_INT: return a.u.i == b.u.i;
    case DORM_T_FLOAT: return a.u.f == b.u.f;
    case DORM_T_BOOL: return !a.u.b == !b.u.b;
    case DORM_T_DECIMAL: return decimal_eq(a, b);
    case DORM_T_TIME: {
      int64_t x = time_us(a.u.s.ptr, a.u.s.len);
      if (x >= 0) return x == time_us(b.u.s.ptr, b.u.s.len);
      break;
    }
    default: break;
  }
  return a.u.s.len == b.u.s.len && !memcmp(a.u.s.ptr, b.u.s.ptr, a.u.s.len);
}

/* v as the user would write it: 3, 2.5, true, "draft". */
static int show_value(char *buf, size_t cap, dorm_value v) {
  switch (v.type) {
    case DORM_T_INT: return snprintf(buf, cap, "%" PRId64, v.u.i);
    case DORM_T_FLOAT: return snprintf(buf, cap, "%g", v.u.f);
    case DORM_T_BOOL: return snprintf(buf, cap, v.u.b ? "true" : "false");
    default: {
      int n = v.u.s.len > 40 ? 40 : (int)v.u.s.len;
      return snprintf(buf, cap, "'%.*s%s'", n, v.u.s.ptr,
                      v.u.s.len > 40 ? "..." : "");
    }
  }
}

/* DORM_EINVAL unless v (already converted for f) is one of f's choices.
 * NULL (allowed or refused by nullability) and F expressions are not
 * values to check. */
static int check_choices(dorm_query *q, const dorm_field *f, dorm_value v) {
  if (!f->choices || !f->nchoices || v.type == DORM_T_NULL ||
      v.type == DORM_T_EXPR)
    return 0;
  for (size_t i = 0; i < f->nchoices; i++)
    if (choice_eq(v, f->choices[i])) return 0;
  char got[64], allowed[320];
  show_value(got, sizeof got, v);
  size_t n = 0;
  for (size_t i = 0; i < f->nchoices && n < sizeof allowed; i++) {
    char one[64];
    show_value(one, sizeof one, f->choices[i]);
    if (n + strlen(one) + 8 >= sizeof allowed) {
      snprintf(allowed + n, sizeof allowed - n, ", ...");
      break;
    }
    n += (size_t)snprintf(allowed + n, sizeof allowed - n, "%s%s",
                          i ? ", " : "", one);
  }
  return dorm__qerr(q, DORM_EINVAL,
                    "model '%s', field '%s': %s is not one of the choices "
                    "(%s)",
                    q->model->name, f->name, got, allowed);
}

static set_item *make_set(dorm_query *q, const char *field, dorm_value v) {
  const dorm_field *f = writable_field(q, field, "set");
  if (!f) return NULL;
  set_item *s = dorm__qalloc(q, sizeof *s);
  if (!s) return NULL;
  memset(s, 0, sizeof *s);
  s->field = f;
  if (dorm__coerce_field_value(q, f, v, &s->value)) return NULL;
  if (check_choices(q, f, s->value)) return NULL;
  return s;
}

int dorm_set(dorm_query *q, const char *field, dorm_value v) {
  if (!q) return DORM_EINVAL;
  if (q->has_err) return q->err.code;
  if (q->kind == DORM_QUERY_INSERT) {
    if (v.type == DORM_T_EXPR)
      return dorm__qerr(q, DORM_ETYPE,
                        "model '%s', field '%s': F expressions cannot be "
                        "inserted",
                        q->model->name, field ? field : "(null)");
    if (!q->rows_tail) {
      insert_row *r = dorm__qalloc(q, sizeof *r);
      if (!r) return DORM_ENOMEM;
      memset(r, 0, sizeof *r);
      q->rows = q->rows_tail = r;
      q->nrows = 1;
    }
    set_item *s = make_set(q, field, v);
    if (!s) return q->err.code;
    insert_row *r = q->rows_tail;
    for (set_item *o = r->sets; o; o = o->next)
      if (o->field == s->field)
        return dorm__qerr(q, DORM_EINVAL,
                          "model '%s', field '%s': set twice in one row",
                          q->model->name, s->field->name);
    if (r->sets_tail)
      r->sets_tail->next = s;
    else
      r->sets = s;
    r->sets_tail = s;
    r->nsets++;
    return 0;
  }
  if (q->kind == DORM_QUERY_UPDATE) {
    set_item *s = make_set(q, field, v);
    if (!s) return q->err.code;
    for (set_item *o = q->sets; o; o = o->next)
      if (o->field == s->field)
        return dorm__qerr(q, DORM_EINVAL,
                          "model '%s', field '%s': set twice in one update",
                          q->model->name, s->field->name);
    if (q->sets_tail)
      q->sets_tail->next = s;
    else
      q->sets = s;
    q->sets_tail = s;
    return 0;
  }
  return dorm__qerr(q, DORM_ESTATE,
                    "model '%s': set() applies to an insert or update",
                    q->model->name);
}

int dorm_insert_next_row(dorm_query *q) {
  if (!q) return DORM_EINVAL;
  if (q->has_err) return q->err.code;
  if (q->kind != DORM_QUERY_INSERT)
    return dorm__qerr(q, DORM_ESTATE,
                      "model '%s': insert_next_row() applies to an insert",
                      q->model->name);
  insert_row *r = dorm__qalloc(q, sizeof *r);
  if (!r) return DORM_ENOMEM;
  memset(r, 0, sizeof *r);
  if (!q->rows_tail) {
    /* an empty first row: all defaults */
    insert_row *first = dorm__qalloc(q, sizeof *first);
    if (!first) return DORM_ENOMEM;
    memset(first, 0, sizeof *first);
    q->rows = q->rows_tail = first;
    q->nrows = 1;
  }
  q->rows_tail->next = r;
  q->rows_tail = r;
  q->nrows++;
  return 0;
}

static int add_field_item(dorm_query *q, const char *name, const char *what,
                          field_item **head, field_item **tail) {
  if (q->has_err) return q->err.code;
  const dorm_field *f = writable_field(q, name, what);
  if (!f) return q->err.code;
  field_item *it = dorm__qalloc(q, sizeof *it);
  if (!it) return DORM_ENOMEM;
  it->field = f;
  it->next = NULL;
  if (*tail)
    (*tail)->next = it;
  else
    *head = it;
  *tail = it;
  return 0;
}

static int check_insert(dorm_query *q, const char *what) {
  if (q->has_err) return q->err.code;
  if (q->kind != DORM_QUERY_INSERT)
    return dorm__qerr(q, DORM_ESTATE, "model '%s': %s() applies to an insert",
                      q->model->name, what);
  return 0;
}

int dorm_on_conflict(dorm_query *q, const char *field) {
  if (!q) return DORM_EINVAL;
  if (check_insert(q, "on_conflict")) return q->err.code;
  return add_field_item(q, field, "on_conflict", &q->conflict,
                        &q->conflict_tail);
}

int dorm_on_conflict_update(dorm_query *q, const char *field) {
  if (!q) return DORM_EINVAL;
  if (check_insert(q, "on_conflict_update")) return q->err.code;
  return add_field_item(q, field, "on_conflict_update", &q->conflict_update,
                        &q->conflict_update_tail);
}

int dorm_on_conflict_do_nothing(dorm_query *q) {
  if (!q) return DORM_EINVAL;
  if (check_insert(q, "on_conflict_do_nothing")) return q->err.code;
  q->conflict_nothing = 1;
  return 0;
}

int dorm_returning(dorm_query *q, const char *field) {
  if (!q) return DORM_EINVAL;
  if (q->has_err) return q->err.code;
  if (q->kind == DORM_QUERY_SELECT)
    return dorm__qerr(q, DORM_ESTATE,
                      "model '%s': returning() applies to writes",
                      q->model->name);
  if (field && !strcmp(field, "*")) {
    q->returning_all = 1;
    return 0;
  }
  return add_field_item(q, field, "returning", &q->returning,
                        &q->returning_tail);
}
