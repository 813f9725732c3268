/* SPDX-License-Identifier: MIT */
/* query/compile.c — the compiler's entry points: dorm_compile,
 * dorm_compile_ex and dorm_query_row_count.
 *
 * dorm_compile checks the query and the dialect and hands the statement to
 * query/select.c or query/compile_write.c; the joins and conditions they
 * share are in query/joins.c, query/where.c, query/exclude.c and
 * query/columns.c.  dorm_compile_ex compiles a view of the query, changed
 * as the options ask (count, exists, a LIMIT, an ordering by pk, RETURNING
 * pk, a range of insert rows), without touching the query itself.
 */
#include <stddef.h>
#include <string.h>

#include "query/query_int.h"

size_t dorm_query_row_count(const dorm_query *q) {
  return q->kind != DORM_QUERY_INSERT ? 0 : q->nrows ? q->nrows : 1;
}

/* A condition that one row at most can meet: an exact match, on a
 * non-NULL value, of the model's own primary key or a unique field (no
 * relation, no transform, no expression on either side); or an AND with
 * such a condition on one side. */
static int pins_one_row(const dorm_q *c) {
  if (c->kind == Q_AND) return pins_one_row(c->a) || pins_one_row(c->b);
  if (c->kind != Q_LEAF || c->lhs || !c->path.field) return 0;
  const dorm_field *f = c->path.field;
  return c->path.nhops == 0 && c->path.transform == TR_NONE &&
         c->path.lookup == LK_EXACT && !c->path.annotation &&
         (f->flags & (DORM_FIELD_PRIMARY_KEY | DORM_FIELD_UNIQUE)) &&
         c->value.type != DORM_T_NULL && c->value.type != DORM_T_EXPR &&
         c->value.type != DORM_T_LIST;
}

/* The query can yield one row at most: a plain SELECT of its model, no
 * join that could multiply rows (no path crosses a relation), no
 * grouping, and a WHERE entry that pins one row.  get() and first() then
 * need no LIMIT: on PostgreSQL a LIMIT parameter cost about 9% of a
 * primary-key lookup's server time (a Limit node and one more parameter
 * on every execution). */
static int yields_one_row(const dorm_query *q) {
  if (q->kind != DORM_QUERY_SELECT || q->has_hops || q->sliced || q->nannots ||
      q->aggregate || q->count || q->exists)
    return 0;
  for (const dorm_qlist *w = q->where; w; w = w->next)
    if (!w->having && pins_one_row(w->q)) return 1;
  return 0;
}

int dorm_compile_ex(const dorm_query *q, dorm_dialect dialect,
                    const dorm_compile_opts *opts, dorm_sql *out,
                    dorm_error *err) {
  if (!opts || !q || q->has_err) return dorm_compile(q, dialect, out, err);
  /* a view of q: its state copied (not the arena, which the view's
   * pointers still reach in q), then changed as asked */
  dorm_query view;
  memcpy(&view, q, offsetof(dorm_query, err)); /* q has no error here */
  order_item by_pk;
  field_item ret_pk;
  if (opts->flags & DORM_COMPILE_COUNT) view.count = 1;
  if (opts->flags & DORM_COMPILE_EXISTS) view.exists = 1;
  if (opts->limit > 0 && !yields_one_row(q)) {
    int64_t hi = view.lo > INT64_MAX - opts->limit ? INT64_MAX
                                                    : view.lo + opts->limit;
    if (view.sliced && view.hi >= 0 && view.hi < hi) hi = view.hi;
    view.hi = hi;
    view.sliced = 1;
  }
  if ((opts->flags & DORM_COMPILE_ORDER_PK) && !view.order && !view.aggregate &&
      view.kind == DORM_QUERY_SELECT) {
    memset(&by_pk, 0, sizeof by_pk);
    by_pk.path.field = q->model->pk;
    by_pk.path.model = q->model;
    by_pk.path.text = q->model->pk->name;
    view.order = view.order_tail = &by_pk;
  }
  if ((opts->flags & DORM_COMPILE_RETURN_PK) && !view.returning &&
      !view.returning_all && view.kind == DORM_QUERY_INSERT) {
    ret_pk.field = q->model->pk;
    ret_pk.next = NULL;
    view.returning = view.returning_tail = &ret_pk;
  }
  if (view.kind == DORM_QUERY_INSERT && (opts->row_first || opts->row_count)) {
    size_t total = dorm_query_row_count(q);
    if (opts->row_first >= total)
      return dorm_error_set(err, DORM_ERANGE,
                            "model '%s': insert rows from %zu of %zu",
                            q->model->name, opts->row_first, total);
    insert_row *r = view.rows;
    for (size_t i = 0; r && i < opts->row_first; i++) r = r->next;
    size_t left = total - opts->row_first;
    view.rows = r;
    view.nrows =
        opts->row_count && opts->row_count < left ? opts->row_count : left;
  }
  return dorm_compile(&view, dialect, out, err);
}

int dorm_compile(const dorm_query *q, dorm_dialect dialect, dorm_sql *out,
                 dorm_error *err) {
  if (!q || !out)
    return dorm_error_set(err, DORM_EINVAL, "NULL query or output");
  cctx c;
  dorm__cctx_start(&c, q, dialect, out, err);
  out->kind = q->kind;
  if (q->has_err) return dorm_error_copy(err, &q->err);
  if (dialect != DORM_DIALECT_POSTGRES && dialect != DORM_DIALECT_SQLITE)
    return dorm_error_set(err, DORM_EINVAL, "unknown dialect %d", (int)dialect);
  dorm__set_base_table(&c, q->model->table);
  int rc = q->kind == DORM_QUERY_SELECT ? dorm__compile_select(&c)
                                        : dorm__compile_write(&c);
  return dorm__cctx_end(&c, rc);
}
