/* query/builder_write.c — recording inserts, updates, upserts and
 * RETURNING on a dorm_query (the builder's write half; see builder.c).
 *
 * Values are checked against their field when set (type, nullability,
 * max_length), so a bad row is refused before any SQL exists.
 */
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

static set_item *make_set(dorm_query *q, const char *field, dorm_value v) {
  const dorm_field *f = writable_field(q, field, "set");
  if (!f) return NULL;
  set_item *s = dorm__qalloc(q, sizeof *s);
  if (!s) return NULL;
  memset(s, 0, sizeof *s);
  s->field = f;
  if (dorm__coerce_field_value(q, f, v, &s->value)) return NULL;
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
