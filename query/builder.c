/* SPDX-License-Identifier: MIT */
/* query/builder.c — recording model operations on a dorm_query.
 *
 * Each builder call checks its input against the model at once (unknown
 * field, lookup or transform, a value of the wrong type) and records the
 * resolved form in the query's arena.  The first error is kept and every
 * later call becomes a no-op returning it (sticky, as SQLite's
 * mallocFailed), so users check once, at compile time.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"

/* ---- errors ------------------------------------------------------------- */

int dorm__qerr(dorm_query *q, int code, const char *fmt, ...) {
  if (q->has_err) return q->err.code;
  q->has_err = 1;
  q->err.code = code;
  q->err.sqlstate[0] = '\0';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q->err.message, sizeof q->err.message, fmt, ap);
  va_end(ap);
  dorm__utf8_mend(q->err.message);
  return code;
}

int dorm__qoom(dorm_query *q) {
  return dorm__qerr(q, DORM_ENOMEM,
                    "model '%s': out of memory building a query",
                    q->model ? q->model->name : "?");
}

void *dorm__qalloc(dorm_query *q, size_t n) {
  void *p = dorm__arena_alloc(&q->arena, n);
  if (!p) dorm__qoom(q);
  return p;
}

const char *dorm__qstrdup(dorm_query *q, const char *s) {
  char *d = dorm__arena_strndup(&q->arena, s, strlen(s));
  if (!d) dorm__qoom(q);
  return d;
}

/* ---- life cycle --------------------------------------------------------- */

static void init_query(dorm_query *q, dorm_query_kind kind,
                       const dorm_model *model) {
  /* Everything before err is state; inline_buf is the arena's. */
  memset(q, 0, offsetof(dorm_query, err));
  q->err.code = 0;
  q->err.sqlstate[0] = '\0';
  q->err.message[0] = '\0';
  q->kind = kind;
  q->model = model;
  q->hi = -1;
  dorm__arena_init(&q->arena, q->inline_buf, sizeof q->inline_buf);
  if (!model) dorm__qerr(q, DORM_EINVAL, "query started on a NULL model");
}

static void add_default_ordering(dorm_query *q) {
  if (q->kind != DORM_QUERY_SELECT || !q->model) return;
  for (size_t i = 0; i < q->model->nordering; i++)
    dorm_order_by(q, q->model->ordering[i]);
  q->order_set = 0;
  q->order_default = q->order != NULL;
}

static dorm_query *new_query(dorm_query_kind kind, const dorm_model *model) {
  dorm_query *q = dorm__malloc(sizeof *q);
  if (!q) return NULL;
  init_query(q, kind, model);
  add_default_ordering(q);
  return q;
}

dorm_query *dorm_select(const dorm_model *m) {
  return new_query(DORM_QUERY_SELECT, m);
}
dorm_query *dorm_insert(const dorm_model *m) {
  return new_query(DORM_QUERY_INSERT, m);
}
dorm_query *dorm_update(const dorm_model *m) {
  return new_query(DORM_QUERY_UPDATE, m);
}
dorm_query *dorm_delete(const dorm_model *m) {
  return new_query(DORM_QUERY_DELETE, m);
}

void dorm_query_reset(dorm_query *q, dorm_query_kind kind,
                      const dorm_model *model) {
  dorm__arena arena = q->arena;
  dorm__arena_reset(&arena);
  init_query(q, kind, model);
  q->arena.blocks = arena.blocks; /* keep the heap block for reuse */
  add_default_ordering(q);
}

void dorm_query_free(dorm_query *q) {
  if (!q) return;
  dorm__arena_free(&q->arena);
  dorm__free(q);
}

int dorm_query_error(const dorm_query *q, dorm_error *err) {
  if (!q) return dorm_error_set(err, DORM_EINVAL, "NULL query");
  if (!q->has_err) return 0;
  return dorm_error_copy(err, &q->err);
}

const dorm_model *dorm_query_model(const dorm_query *q) { return q->model; }
dorm_query_kind dorm_query_kind_of(const dorm_query *q) { return q->kind; }

/* ---- conditions --------------------------------------------------------- */

static dorm_q *new_q(dorm_query *q, q_kind kind) {
  dorm_q *n = dorm__qalloc(q, sizeof *n);
  if (!n) return NULL;
  n->kind = kind;
  n->a = n->b = NULL;
  n->lhs = NULL;
  if (kind != Q_LEAF) { /* a leaf's path and value are set by make_leaf */
    memset(&n->path, 0, sizeof n->path);
    n->value = dorm_null();
  }
  return n;
}

static dorm_q *make_leaf(dorm_query *q, dorm_expr *lhs, const char *lookup,
                         dorm_value v) {
  if (q->has_err) return NULL;
  dorm_q *n = new_q(q, Q_LEAF);
  if (!n) return NULL;
  if (lhs) {
    n->lhs = lhs;
    memset(&n->path, 0, sizeof n->path);
    int lk = lookup ? dorm__lookup_parse(lookup, strlen(lookup)) : LK_EXACT;
    if (lk < 0) {
      dorm__qerr(q, DORM_ELOOKUP,
                 "model '%s', lookup '%s': unknown lookup on an expression",
                 q->model->name, lookup);
      return NULL;
    }
    n->path.text = "(expression)";
    n->path.lookup = (uint8_t)lk;
    n->path.model = q->model;
    n->path.expr_type = lhs->type;
  } else if (dorm__resolve_path(q, q->model, lookup,
                                DORM__PATH_LOOKUP | DORM__PATH_BORROW,
                                &n->path)) {
    return NULL;
  }
  /* exact=None is isnull=True, as in Django */
  if (v.type == DORM_T_NULL && n->path.lookup == LK_EXACT) {
    n->path.lookup = LK_ISNULL;
    v = dorm_bool(1);
  }
  if (dorm__coerce_lookup_value(q, &n->path, v, &n->value)) return NULL;
  /* the caller's string was borrowed for messages; keep a stable name */
  if (!n->lhs)
    n->path.text = n->path.field ? n->path.field->name : "(annotation)";
  if (n->lhs && n->path.lookup != LK_EXACT && n->path.lookup != LK_GT &&
      n->path.lookup != LK_GTE && n->path.lookup != LK_LT &&
      n->path.lookup != LK_LTE && n->path.lookup != LK_ISNULL &&
      n->path.lookup != LK_IN && n->path.lookup != LK_RANGE) {
    dorm__qerr(q, DORM_ELOOKUP,
               "model '%s': lookup '%s' does not apply to an expression",
               q->model->name, dorm__lookup_name((lookup_kind)n->path.lookup));
    return NULL;
  }
  return n;
}

dorm_q *dorm_Q(dorm_query *q, const char *lookup, dorm_value v) {
  if (!q) return NULL;
  return make_leaf(q, NULL, lookup, v);
}

dorm_q *dorm_q_expr(dorm_query *q, dorm_expr *lhs, const char *lookup,
                    dorm_value v) {
  if (!q || q->has_err) return NULL;
  if (!lhs) {
    dorm__qerr(q, DORM_EINVAL, "model '%s': NULL expression in a lookup",
               q->model->name);
    return NULL;
  }
  return make_leaf(q, lhs, lookup, v);
}

static dorm_q *combine(dorm_query *q, q_kind k, dorm_q *a, dorm_q *b) {
  if (!q || q->has_err) return NULL;
  if (!a || (k != Q_NOT && !b)) {
    dorm__qerr(q, DORM_EINVAL, "model '%s': NULL Q node combined",
               q->model->name);
    return NULL;
  }
  dorm_q *n = new_q(q, k);
  if (!n) return NULL;
  n->a = a;
  n->b = b;
  return n;
}

dorm_q *dorm_q_and(dorm_query *q, dorm_q *a, dorm_q *b) {
  return combine(q, Q_AND, a, b);
}
dorm_q *dorm_q_or(dorm_query *q, dorm_q *a, dorm_q *b) {
  return combine(q, Q_OR, a, b);
}
dorm_q *dorm_q_not(dorm_query *q, dorm_q *a) {
  return combine(q, Q_NOT, a, NULL);
}

static int check_filterable(dorm_query *q) {
  if (q->has_err) return q->err.code;
  if (q->kind == DORM_QUERY_INSERT)
    return dorm__qerr(q, DORM_ESTATE,
                      "model '%s': an insert cannot be filtered",
                      q->model->name);
  return 0;
}

static int q_has_annotation(const dorm_q *n) {
  if (!n) return 0;
  if (n->kind == Q_LEAF) return n->path.annotation;
  return q_has_annotation(n->a) || q_has_annotation(n->b);
}

static int add_where(dorm_query *q, dorm_q *node) {
  dorm_qlist *l = dorm__qalloc(q, sizeof *l);
  if (!l) return DORM_ENOMEM;
  l->q = node;
  l->next = NULL;
  l->having = q->nannots ? q_has_annotation(node) : 0;
  if (l->having)
    q->nhaving++;
  else
    q->nwhere++;
  if (q->where_tail)
    q->where_tail->next = l;
  else
    q->where = l;
  q->where_tail = l;
  return 0;
}

int dorm_filter_q(dorm_query *q, dorm_q *node) {
  if (!q) return DORM_EINVAL;
  if (check_filterable(q)) return q->err.code;
  if (!node)
    return dorm__qerr(q, DORM_EINVAL, "model '%s': filter with a NULL Q",
                      q->model->name);
  return add_where(q, node);
}

int dorm_exclude_q(dorm_query *q, dorm_q *node) {
  if (!q) return DORM_EINVAL;
  if (check_filterable(q)) return q->err.code;
  return dorm_filter_q(q, dorm_q_not(q, node));
}

int dorm_filter(dorm_query *q, const char *lookup, dorm_value v) {
  if (!q) return DORM_EINVAL;
  if (check_filterable(q)) return q->err.code;
  dorm_q *n = make_leaf(q, NULL, lookup, v);
  return n ? add_where(q, n) : q->err.code;
}

int dorm_exclude(dorm_query *q, const char *lookup, dorm_value v) {
  if (!q) return DORM_EINVAL;
  if (check_filterable(q)) return q->err.code;
  dorm_q *n = make_leaf(q, NULL, lookup, v);
  return n ? dorm_filter_q(q, dorm_q_not(q, n)) : q->err.code;
}

int dorm_filter_expr(dorm_query *q, dorm_expr *lhs, const char *lookup,
                     dorm_value v) {
  if (!q) return DORM_EINVAL;
  if (check_filterable(q)) return q->err.code;
  dorm_q *n = dorm_q_expr(q, lhs, lookup, v);
  return n ? add_where(q, n) : q->err.code;
}

/* ---- F expressions ------------------------------------------------------ */

dorm_expr *dorm_F(dorm_query *q, const char *path) {
  if (!q || q->has_err) return NULL;
  dorm_expr *e = dorm__qalloc(q, sizeof *e);
  if (!e) return NULL;
  memset(e, 0, sizeof *e);
  e->kind = EXPR_FIELD;
  if (dorm__resolve_path(q, q->model, path, 0, &e->path)) return NULL;
  if (e->path.annotation) {
    dorm__qerr(q, DORM_EFIELD,
               "model '%s': F('%s') names an annotation; use a field",
               q->model->name, path);
    return NULL;
  }
  e->type = dorm__path_type(&e->path);
  return e;
}

dorm_expr *dorm_lit(dorm_query *q, dorm_value v) {
  if (!q || q->has_err) return NULL;
  if (v.type != DORM_T_INT && v.type != DORM_T_FLOAT &&
      v.type != DORM_T_DECIMAL && v.type != DORM_T_TEXT &&
      v.type != DORM_T_NULL && v.type != DORM_T_BOOL && v.type != DORM_T_DATE &&
      v.type != DORM_T_DATETIME && v.type != DORM_T_TIME) {
    dorm__qerr(q, DORM_ETYPE,
               "model '%s': a %s value cannot be used in an expression",
               q->model->name, dorm_type_name(v.type));
    return NULL;
  }
  dorm_expr *e = dorm__qalloc(q, sizeof *e);
  if (!e) return NULL;
  memset(e, 0, sizeof *e);
  e->kind = EXPR_VALUE;
  e->type = v.type;
  e->value = v;
  if (v.type >= DORM_T_TEXT && v.type <= DORM_T_JSON) {
    char *s = dorm__arena_strndup(&q->arena, v.u.s.ptr, v.u.s.len);
    if (!s) {
      dorm__qoom(q);
      return NULL;
    }
    e->value.u.s.ptr = s;
  }
  return e;
}

dorm_expr *dorm_op(dorm_query *q, char op, dorm_expr *a, dorm_expr *b) {
  if (!q || q->has_err) return NULL;
  if (op != '+' && op != '-' && op != '*' && op != '/') {
    dorm__qerr(q, DORM_EINVAL,
               "model '%s': unknown operator '%c' (use + - * /)",
               q->model->name, op >= 32 && op < 127 ? op : '?');
    return NULL;
  }
  if (!a || !b) {
    dorm__qerr(q, DORM_EINVAL, "model '%s': NULL operand to '%c'",
               q->model->name, op);
    return NULL;
  }
  dorm_expr *e = dorm__qalloc(q, sizeof *e);
  if (!e) return NULL;
  memset(e, 0, sizeof *e);
  e->kind = EXPR_OP;
  e->op = op;
  e->a = a;
  e->b = b;
  e->type =
      (a->type == DORM_T_FLOAT || b->type == DORM_T_FLOAT || op == '/')
          ? (a->type == DORM_T_INT && b->type == DORM_T_INT ? DORM_T_INT
                                                            : DORM_T_FLOAT)
          : a->type;
  return e;
}

/* ---- shaping ------------------------------------------------------------ */

static int check_select(dorm_query *q, const char *what) {
  if (q->has_err) return q->err.code;
  if (q->kind != DORM_QUERY_SELECT)
    return dorm__qerr(q, DORM_ESTATE, "model '%s': %s() applies to a select",
                      q->model->name, what);
  return 0;
}

int dorm_order_by(dorm_query *q, const char *item) {
  if (!q) return DORM_EINVAL;
  if (check_select(q, "order_by")) return q->err.code;
  q->order_set = 1;
  if (q->order_default) { /* an explicit order_by replaces the default */
    q->order = q->order_tail = NULL;
    q->order_default = 0;
  }
  if (!item) {
    q->order = q->order_tail = NULL;
    return 0;
  }
  order_item *o = dorm__qalloc(q, sizeof *o);
  if (!o) return DORM_ENOMEM;
  memset(o, 0, sizeof *o);
  const char *p = item;
  if (*p == '-') {
    o->desc = 1;
    p++;
  } else if (*p == '?') {
    return dorm__qerr(q, DORM_EUNSUPPORTED,
                      "model '%s': order_by('?') (random order) is not "
                      "supported",
                      q->model->name);
  }
  if (dorm__resolve_path(q, q->model, p, 0, &o->path)) return q->err.code;
  if (o->path.transform)
    return dorm__qerr(q, DORM_EFIELD,
                      "model '%s', order_by '%s': transforms cannot be "
                      "ordered on",
                      q->model->name, item);
  if (q->order_tail)
    q->order_tail->next = o;
  else
    q->order = o;
  q->order_tail = o;
  return 0;
}

int dorm_slice(dorm_query *q, int64_t start, int64_t stop) {
  if (!q) return DORM_EINVAL;
  if (check_select(q, "slice")) return q->err.code;
  /* a stop below start is an empty slice, as Django's set_limits makes
   * it ([3:1] is [1:1]); only negative bounds are refused */
  if (start < 0)
    return dorm__qerr(q, DORM_ERANGE,
                      "model '%s': invalid slice [%lld:%lld] (negative "
                      "indexing is not supported)",
                      q->model->name, (long long)start, (long long)stop);
  if (stop < -1)
    return dorm__qerr(q, DORM_ERANGE, "model '%s': invalid slice stop %lld",
                      q->model->name, (long long)stop);
  /* compose with an earlier slice, as Django's set_limits does; offsets
   * past INT64_MAX are no offsets a database takes */
  if (start > INT64_MAX - q->lo || (stop >= 0 && stop > INT64_MAX - q->lo))
    return dorm__qerr(q, DORM_ERANGE,
                      "model '%s': slice [%lld:%lld] goes past the largest "
                      "offset (%lld)",
                      q->model->name, (long long)start, (long long)stop,
                      (long long)INT64_MAX);
  int64_t lo = q->lo + start;
  int64_t hi;
  if (stop < 0)
    hi = q->hi;
  else {
    hi = q->lo + stop;
    if (q->hi >= 0 && hi > q->hi) hi = q->hi;
  }
  if (hi >= 0 && lo > hi) lo = hi;
  q->lo = lo;
  q->hi = hi;
  /* Django's is_sliced: [0:] limits nothing, so count() and exists() treat
   * the query as unsliced (count() then drops its ordering and joins) */
  q->sliced = lo > 0 || hi >= 0;
  return 0;
}

int dorm_distinct(dorm_query *q) {
  if (!q) return DORM_EINVAL;
  if (check_select(q, "distinct")) return q->err.code;
  q->distinct = 1;
  return 0;
}

static int add_path_item(dorm_query *q, const char *path, path_item **head,
                         path_item **tail, size_t *count) {
  path_item *it = dorm__qalloc(q, sizeof *it);
  if (!it) return DORM_ENOMEM;
  memset(it, 0, sizeof *it);
  if (dorm__resolve_path(q, q->model, path, 0, &it->path)) return q->err.code;
  it->name = it->path.text;
  if (*tail)
    (*tail)->next = it;
  else
    *head = it;
  *tail = it;
  (*count)++;
  return 0;
}

int dorm_values(dorm_query *q, const char *path) {
  if (!q) return DORM_EINVAL;
  if (check_select(q, "values")) return q->err.code;
  if (q->nannots && !q->annots_after_values)
    return dorm__qerr(q, DORM_ESTATE,
                      "model '%s': values('%s') after annotate() is not "
                      "supported; call values() first to group",
                      q->model->name, path ? path : "");
  if (q->nprefetch)
    return dorm__qerr(q, DORM_ESTATE,
                      "model '%s': values('%s') after prefetch_related('%s'): "
                      "values() rows have no objects to attach related rows "
                      "to",
                      q->model->name, path ? path : "", q->prefetch->path);
  if (add_path_item(q, path, &q->values, &q->values_tail, &q->nvalues))
    return q->err.code;
  q->values_tail->after = q->nwhere + q->nhaving;
  if (q->values_tail->path.annotation)
    return dorm__qerr(q, DORM_EFIELD,
                      "model '%s': values('%s') names an annotation",
                      q->model->name, path);
  return 0;
}

int dorm_only(dorm_query *q, const char *field) {
  if (!q) return DORM_EINVAL;
  if (check_select(q, "only")) return q->err.code;
  const dorm_field *f = field ? dorm_model_field(q->model, field) : NULL;
  if (field && !f && !strcmp(field, "pk")) f = q->model->pk;
  if (!f)
    return dorm__qerr(q, DORM_EFIELD, "model '%s', only: unknown field '%s'",
                      q->model->name, field ? field : "(null)");
  if (f->type == DORM_FIELD_MANY_TO_MANY)
    return dorm__qerr(q, DORM_EFIELD,
                      "model '%s', only: '%s' is a many_to_many field",
                      q->model->name, field);
  field_item *it = dorm__qalloc(q, sizeof *it);
  if (!it) return DORM_ENOMEM;
  it->field = f;
  it->next = NULL;
  if (q->only_tail)
    q->only_tail->next = it;
  else
    q->only = it;
  q->only_tail = it;
  return 0;
}

int dorm_select_related(dorm_query *q, const char *path) {
  if (!q) return DORM_EINVAL;
  if (check_select(q, "select_related")) return q->err.code;
  /* Every step must be a forward single-valued relation. */
  if (!path || !*path)
    return dorm__qerr(q, DORM_EFIELD, "model '%s': empty select_related path",
                      q->model->name);
  path_item *it = dorm__qalloc(q, sizeof *it);
  if (!it) return DORM_ENOMEM;
  memset(it, 0, sizeof *it);
  /* resolve "author" as a path that ends on the related model */
  const dorm_model *m = q->model;
  const char *s = path;
  dorm_hop hops[DORM__MAX_HOPS];
  int nh = 0;
  while (s && *s) {
    const char *e = dorm__find_sep(s);
    size_t len = e ? (size_t)(e - s) : strlen(s);
    const dorm_field *f = dorm__find_field(m, s, len);
    if (!f || !dorm__is_fk(f))
      return dorm__qerr(q, DORM_EFIELD,
                        "model '%s', select_related '%s': '%.*s' is not a "
                        "foreign key or one-to-one field of '%s'",
                        q->model->name, path, (int)len, s, m->name);
    if (nh >= DORM__MAX_HOPS)
      return dorm__qerr(q, DORM_EFIELD,
                        "model '%s', select_related '%s': too deep",
                        q->model->name, path);
    hops[nh].kind = HOP_FORWARD;
    hops[nh].field = f;
    hops[nh].from = m;
    hops[nh].to = f->target;
    hops[nh].multi = 0;
    hops[nh].nullable = (f->flags & DORM_FIELD_NULL) != 0;
    nh++;
    m = f->target;
    s = e ? e + 2 : NULL;
  }
  dorm_hop *hp = dorm__qalloc(q, sizeof(dorm_hop) * (size_t)nh);
  if (!hp) return DORM_ENOMEM;
  memcpy(hp, hops, sizeof(dorm_hop) * (size_t)nh);
  it->path.hops = hp;
  it->path.nhops = (uint8_t)nh;
  q->has_hops = 1;
  it->path.field = m->pk;
  it->path.model = m;
  it->path.text = dorm__qstrdup(q, path);
  it->name = it->path.text;
  if (!it->name) return DORM_ENOMEM;
  if (q->related_tail)
    q->related_tail->next = it;
  else
    q->related = it;
  q->related_tail = it;
  q->nrelated++;
  return 0;
}

int dorm_prefetch_related(dorm_query *q, const char *name) {
  if (!q) return DORM_EINVAL;
  if (check_select(q, "prefetch_related")) return q->err.code;
  if (q->nvalues)
    return dorm__qerr(q, DORM_ESTATE,
                      "model '%s': prefetch_related('%s') after values(): "
                      "values() rows have no objects to attach related rows "
                      "to",
                      q->model->name, name ? name : "");
  return dorm__prefetch_add(q, name);
}

static int add_annotation(dorm_query *q, const char *alias, int agg,
                          const char *path, const char *what) {
  if (check_select(q, what)) return q->err.code;
  if (!alias || !dorm_ident_valid(alias))
    return dorm__qerr(q, DORM_EIDENT,
                      "model '%s', %s: alias '%s' is not a plain identifier",
                      q->model->name, what, alias ? alias : "(null)");
  if (dorm__find_field(q->model, alias, strlen(alias)))
    return dorm__qerr(q, DORM_EIDENT,
                      "model '%s', %s: alias '%s' conflicts with a field",
                      q->model->name, what, alias);
  int idx;
  if (dorm__find_annotation(q, alias, strlen(alias), &idx))
    return dorm__qerr(q, DORM_EIDENT, "model '%s', %s: alias '%s' used twice",
                      q->model->name, what, alias);
  int fn = agg & 0xff;
  if (fn < DORM_AGG_COUNT || fn > DORM_AGG_MAX || (agg & ~0x1ff))
    return dorm__qerr(q, DORM_EINVAL, "model '%s', %s '%s': unknown aggregate",
                      q->model->name, what, alias);
  annotation *a = dorm__qalloc(q, sizeof *a);
  if (!a) return DORM_ENOMEM;
  memset(a, 0, sizeof *a);
  a->alias = dorm__qstrdup(q, alias);
  if (!a->alias) return DORM_ENOMEM;
  a->agg = agg;
  a->after = q->nwhere + q->nhaving;
  if (path && !strcmp(path, "*")) {
    if (fn != DORM_AGG_COUNT)
      return dorm__qerr(q, DORM_EINVAL,
                        "model '%s', %s '%s': '*' only works with count",
                        q->model->name, what, alias);
    a->star = 1;
  } else {
    if (dorm__resolve_path(q, q->model, path, 0, &a->path)) return q->err.code;
    if (a->path.annotation)
      return dorm__qerr(q, DORM_EFIELD,
                        "model '%s', %s '%s': aggregates of annotations are "
                        "not supported",
                        q->model->name, what, alias);
    dorm_type t = dorm__path_type(&a->path);
    if ((fn == DORM_AGG_SUM || fn == DORM_AGG_AVG) && t != DORM_T_INT &&
        t != DORM_T_FLOAT && t != DORM_T_DECIMAL)
      return dorm__qerr(
          q, DORM_ETYPE, "model '%s', %s '%s': %s of a %s field '%s'",
          q->model->name, what, alias, fn == DORM_AGG_SUM ? "sum" : "avg",
          dorm_type_name(t), path);
  }
  if (q->annots_tail)
    q->annots_tail->next = a;
  else
    q->annots = a;
  q->annots_tail = a;
  q->nannots++;
  return 0;
}

int dorm_annotate(dorm_query *q, const char *alias, int agg, const char *path) {
  if (!q) return DORM_EINVAL;
  if (q->aggregate && !q->has_err)
    return dorm__qerr(q, DORM_ESTATE,
                      "model '%s': annotate() after aggregate()",
                      q->model->name);
  if (q->nannots == 0) q->annots_after_values = q->nvalues > 0;
  return add_annotation(q, alias, agg, path, "annotate");
}

int dorm_aggregate(dorm_query *q, const char *alias, int agg,
                   const char *path) {
  if (!q) return DORM_EINVAL;
  if (q->nannots && !q->aggregate && !q->has_err)
    return dorm__qerr(q, DORM_ESTATE,
                      "model '%s': aggregate() after annotate() is not "
                      "supported",
                      q->model->name);
  q->aggregate = 1;
  return add_annotation(q, alias, agg, path, "aggregate");
}

int dorm_count(dorm_query *q) {
  if (!q) return DORM_EINVAL;
  if (check_select(q, "count")) return q->err.code;
  q->count = 1;
  return 0;
}

int dorm_exists(dorm_query *q) {
  if (!q) return DORM_EINVAL;
  if (check_select(q, "exists")) return q->err.code;
  q->exists = 1;
  return 0;
}

int dorm_select_for_update(dorm_query *q, unsigned flags) {
  if (!q) return DORM_EINVAL;
  if (check_select(q, "select_for_update")) return q->err.code;
  if ((flags & DORM_LOCK_NOWAIT) && (flags & DORM_LOCK_SKIP_LOCKED))
    return dorm__qerr(q, DORM_EINVAL,
                      "model '%s': select_for_update with both nowait and "
                      "skip_locked",
                      q->model->name);
  q->lock = 1;
  q->lock_flags = flags;
  return 0;
}
