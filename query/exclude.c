/* SPDX-License-Identifier: MIT */
/* query/exclude.c — a negated lookup across a multi-valued relation,
 * written as an EXISTS subquery (Django's split_exclude).
 *
 * query/where.c asks dorm__exclude_applies of each lookup of a condition
 * tree; when it applies, the joins to the lookup's outer key are
 * registered here, and the lookup is written here as a subquery with
 * joins of its own instead of through the statement's.  The rules, and
 * Django's that they follow, are below.
 */
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"

/* The first multi-valued hop (reverse foreign key, many-to-many) of p,
 * or -1. */
static int first_multi_hop(const dorm_path *p) {
  for (int i = 0; i < p->nhops; i++)
    if (p->hops[i].multi) return i;
  return -1;
}

/* ---- negated lookups across multi-valued relations ---------------------
 *
 * Django's split_exclude.  A lookup under a NOT -- under any number of
 * them: Django asks whether the branch is negated, not whether the
 * negations cancel -- whose path crosses a multi-valued relation speaks of
 * "some related row", which a join cannot say under a NOT (it would say
 * "some related row does not match", and repeat rows).  It becomes
 * EXISTS over the related rows, with the NOTs around it as written:
 *
 *   Author.exclude(entries__rating__gt=3)
 *   NOT (EXISTS(SELECT 1 FROM "entry" "U1" WHERE "U1"."rating" > $1 AND
 *        "U1"."author_id" = "author"."id"))
 *
 *  - The subquery starts at the multi-valued hop (its table, or the join
 *    table of a many-to-many) and is correlated on the key it hangs off:
 *    the outer row's key or, for a foreign key followed just before, that
 *    foreign key's column (no join for it).  A NULL key matches no row,
 *    so the NOT keeps the row, as Django's does.
 *  - An isnull=True lookup is true of a missing related row, so that
 *    subquery starts one step earlier, at the row the relation hangs off,
 *    with LEFT joins (Django leaves its first join untrimmed); when a
 *    nullable hop came before, "OR key IS NULL" joins the EXISTS (Django's
 *    contains_louter).
 *  - The subquery's aliases are its own, "U<n>" numbered as Django's, so a
 *    path that visits a table twice, or the outer table, stays valid.
 *  - An F() on the right names the outer row (Django's OuterRef); its
 *    joins are the outer query's, LEFT.
 *  - In one filter() call, a negated lookup after a positive one across
 *    the same relation (or whose own F() crosses it) is about that
 *    lookup's related row: the subquery is tied to the outer join's row.
 *    One before it is not (Django's order dependence).  Django ties on a
 *    coincidence of alias names: only when the outer join's alias is the
 *    one its fresh inner query gives the same table (so a later call's
 *    "T4" is not tied), and also to another relation's join to the same
 *    table; dorm follows the first rule, not the second
 *    (docs/queries.md). */

/* Django's split_exclude applies: see above.  An expression on the left
 * and annotations keep their join. */
int dorm__exclude_applies(const dorm_q *n, int branch_negated) {
  return branch_negated && !n->lhs && !n->path.annotation &&
         first_multi_hop(&n->path) >= 0;
}

typedef struct neg_plan {
  int k;               /* the first multi-valued hop */
  int from_source;     /* isnull=True: start at the row before hop k */
  int key_hops;        /* hops of the outer path the key's alias needs */
  const char *key_col; /* the outer key's column */
} neg_plan;

static void plan_negated(const dorm_q *n, neg_plan *pl) {
  const dorm_path *p = &n->path;
  int k = first_multi_hop(p);
  pl->k = k;
  pl->from_source =
      p->lookup == LK_ISNULL && n->value.type == DORM_T_BOOL && n->value.u.b;
  if (k > 0 && p->hops[k - 1].kind == HOP_FORWARD) { /* Django's trim */
    pl->key_hops = k - 1;
    pl->key_col = p->hops[k - 1].field->column;
  } else {
    pl->key_hops = k;
    pl->key_col = p->hops[k].from->pk->column;
  }
}

/* The outer key's alias; its joins are LEFT (a missing row makes the key
 * NULL, which the EXISTS handles). */
static int key_alias(cctx *c, const dorm_path *p, const neg_plan *pl) {
  dorm_path prefix = *p;
  prefix.nhops = (uint8_t)pl->key_hops;
  return dorm__path_alias_of(c, &prefix, 1);
}

/* Register what the statement around a negated lookup's subquery needs:
 * the joins to its outer key (the F()s are where.c's). */
void dorm__exclude_register(cctx *c, const dorm_q *n) {
  neg_plan pl;
  plan_negated(n, &pl);
  key_alias(c, &n->path, &pl);
}

static int same_hops(const dorm_path *a, const dorm_path *b, int n) {
  if (a->nhops < n || b->nhops < n) return 0;
  for (int i = 0; i < n; i++)
    if (a->hops[i].kind != b->hops[i].kind ||
        a->hops[i].field != b->hops[i].field)
      return 0;
  return 1;
}

/* Walk a filter() call in order up to leaf: *tie becomes the path of the
 * first positive lookup (under no NOT) crossing p's first n hops.
 * Returns 1 once leaf is reached. */
static int find_tie(const dorm_q *n, const dorm_q *leaf, int neg,
                    const dorm_path *p, int hops, const dorm_path **tie) {
  switch (n->kind) {
    case Q_LEAF:
      if (n == leaf) return 1;
      if (!neg && !*tie && !n->lhs && !n->path.annotation &&
          same_hops(&n->path, p, hops))
        *tie = &n->path;
      return 0;
    case Q_NOT: return find_tie(n->a, leaf, 1, p, hops, tie);
    default:
      return find_tie(n->a, leaf, neg, p, hops, tie) ||
             find_tie(n->b, leaf, neg, p, hops, tie);
  }
}

static void expr_tie(const dorm_expr *e, const dorm_path *p, int hops,
                     const dorm_path **tie) {
  if (!e || *tie) return;
  if (e->kind == EXPR_FIELD && same_hops(&e->path, p, hops)) *tie = &e->path;
  expr_tie(e->a, p, hops, tie);
  expr_tie(e->b, p, hops, tie);
}

/* The filter() call being written (its group's entry). */
static const dorm_q *call_root(const cctx *c) {
  int g = 0;
  for (const dorm_qlist *l = c->q->where; l; l = l->next)
    if (++g == c->group) return l->q;
  return NULL;
}

/* The alias Django's split_exclude gives the table its subquery starts
 * at (hop k's join table, or its related table), in a fresh query of the
 * model with the lookup's joins added in order: 0 for the table's name
 * (the path has not visited it), else n for "T<n>", n being its place
 * among the aliases plus one (Query.table_alias). */
static int inner_alias_number(const cctx *c, const dorm_path *p, int k) {
  const char *seen[2 * DORM__MAX_HOPS + 1];
  int n = 0;
  seen[n++] = c->q->model->table;
  for (int i = 0; i <= k; i++) {
    const dorm_hop *h = &p->hops[i];
    int m2m = h->kind == HOP_M2M || h->kind == HOP_M2M_REVERSE;
    for (int part = 0; part < (m2m ? 2 : 1); part++) {
      const char *t = m2m && part == 0 ? h->field->through_table : h->to->table;
      int repeat = 0;
      for (int j = 0; j < n; j++)
        if (!strcmp(seen[j], t)) repeat = 1;
      if (i == k) return repeat ? n + 1 : 0;
      seen[n++] = t;
    }
  }
  return 0;
}

/* The outer alias of the related row leaf's subquery is tied to (the row
 * of hop k, or its join table row for a many-to-many), or 0. */
static int tie_alias(cctx *c, const dorm_q *leaf, int k) {
  const dorm_path *tp = NULL;
  const dorm_q *root = call_root(c);
  if (root) find_tie(root, leaf, 0, &leaf->path, k + 1, &tp);
  if (!tp && leaf->value.type == DORM_T_EXPR)
    expr_tie(leaf->value.u.expr, &leaf->path, k + 1, &tp);
  if (!tp) return 0;
  dorm_path t = *tp;
  t.nhops = (uint8_t)(k + 1);
  int a = dorm__path_alias_of(c, &t, 0);
  const dorm_hop *h = &leaf->path.hops[k];
  if (a > 0 && (h->kind == HOP_M2M || h->kind == HOP_M2M_REVERSE))
    a = c->joins[a - 1].parent;
  /* Django ties when the alias its inner query gives that table is the
   * name of a join this call used: the outer join's own alias, or not */
  if (a <= 0) return 0;
  int n = inner_alias_number(c, &leaf->path, k);
  if (c->joins[a - 1].named ? n != 0 : n != a + 1) return 0;
  return a;
}

static void emit_u(cctx *c, int n) {
  char tmp[16];
  int len = snprintf(tmp, sizeof tmp, "\"U%d\"", n);
  dorm__emit(c, tmp, (size_t)len);
}

/* "U<n>"."column" */
static void emit_u_col(cctx *c, int n, const char *column) {
  emit_u(c, n);
  dorm__emit(c, ".", 1);
  dorm__emit_ident(c, column);
}

/* A column of the statement around subquery sub, written into sub. */
static void emit_outer_col(cctx *sub, int alias, const char *column) {
  cctx *o = sub->outer;
  o->buf = sub->buf;
  dorm__emit_col(o, alias, column);
  sub->buf = o->buf;
}

void dorm__emit_exclude(cctx *c, const dorm_q *leaf) {
  const dorm_path *p = &leaf->path;
  neg_plan pl;
  plan_negated(leaf, &pl);
  int k = pl.k;
  const dorm_hop *h = &p->hops[k];
  int m2m = h->kind == HOP_M2M || h->kind == HOP_M2M_REVERSE;
  int fwd = h->kind == HOP_M2M;
  char from[DORM_IDENT_MAX + 1], to[DORM_IDENT_MAX + 1];
  if (m2m && dorm__m2m_join_columns(c, h, from, to)) return;
  int key = key_alias(c, p, &pl);
  int tie = pl.from_source ? 0 : tie_alias(c, leaf, k);
  int or_null = 0;
  for (int i = 0; pl.from_source && i < k; i++)
    if (p->hops[i].nullable) or_null = 1;
  if (or_null) dorm__emitl(c, "(");
  dorm__emitl(c, "EXISTS(SELECT 1 FROM ");

  /* the subquery: alias 0 is its first table after the join table (or
   * the row before the hop), walked with the rest of the path */
  cctx sub = *c;
  sub.njoins = 0;
  sub.no_joins = 0;
  sub.group = 0;
  sub.outer = c;
  dorm_q inner = *leaf;
  int skip = pl.from_source ? k : k + 1; /* hops the subquery starts after */
  const dorm_model *base = pl.from_source ? h->from : h->to;
  int first = pl.from_source ? k : m2m ? k + 2 : k + 1; /* Django's U<n> */
  inner.path.hops = p->hops + skip;
  inner.path.nhops = (uint8_t)(p->nhops - skip);
  dorm__set_base_table(&sub, base->table);
  int n = snprintf(sub.base_ref, sizeof sub.base_ref, "\"U%d\".", first);
  sub.base_ref_len = (size_t)n;
  sub.sub_alias = first + 1;
  sub.registering = 1;
  dorm__path_alias_of(&sub, &inner.path, pl.from_source);
  sub.registering = 0;
  dorm__propagate_left(&sub);
  for (int i = 0; i < sub.njoins; i++) sub.joins[i].named = 0; /* U<n> */

  if (m2m && !pl.from_source) {
    dorm__emit_ident(&sub, h->field->through_table);
    dorm__emit(&sub, " ", 1);
    emit_u(&sub, k + 1);
    dorm__emitl(&sub, " INNER JOIN ");
    dorm__emit_ident(&sub, base->table);
    dorm__emit(&sub, " ", 1);
    emit_u(&sub, first);
    dorm__emitl(&sub, " ON (");
    emit_u_col(&sub, k + 1, fwd ? to : from);
    dorm__emitl(&sub, " = ");
    dorm__emit_col(&sub, 0, base->pk->column);
    dorm__emitl(&sub, ")");
  } else {
    dorm__emit_ident(&sub, base->table);
    dorm__emit(&sub, " ", 1);
    emit_u(&sub, first);
  }
  for (int i = 0; i < sub.njoins; i++) dorm__emit_join(&sub, i);
  dorm__emitl(&sub, " WHERE ");
  dorm__emit_lookup(&sub, &inner, 0, 0);
  if (tie) { /* the same related row as the outer join's */
    dorm__emitl(&sub, " AND ");
    if (m2m) {
      emit_u_col(&sub, k + 1, fwd ? to : from);
      dorm__emitl(&sub, " = ");
      emit_outer_col(&sub, tie, fwd ? to : from);
    } else {
      dorm__emit_col(&sub, 0, h->to->pk->column);
      dorm__emitl(&sub, " = ");
      emit_outer_col(&sub, tie, h->to->pk->column);
    }
  }
  dorm__emitl(&sub, " AND ");
  if (pl.from_source)
    dorm__emit_col(&sub, 0, h->from->pk->column);
  else if (m2m)
    emit_u_col(&sub, k + 1, fwd ? from : to);
  else
    dorm__emit_col(&sub, 0, h->field->column);
  dorm__emitl(&sub, " = ");
  emit_outer_col(&sub, key, pl.key_col);
  dorm__emitl(&sub, ")");
  c->buf = sub.buf;
  if (sub.failed) c->failed = sub.failed;
  if (or_null) {
    dorm__emitl(c, " OR ");
    dorm__emit_col(c, key, pl.key_col);
    dorm__emitl(c, " IS NULL)");
  }
}
