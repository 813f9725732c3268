/* SPDX-License-Identifier: MIT */
/* query/where.c — the conditions of WHERE and HAVING: trees of lookups
 * under AND, OR and NOT, for every statement kind.
 *
 * Each entry of the query's WHERE list is one filter() call, AND-ed with
 * the others; its place in the list is its join group (struct join in
 * query_int.h).  Registering walks a tree to find the joins its lookups
 * need and whether each may be INNER: a join a condition needs only under
 * an OR, a NOT, or an isnull=True is LEFT (Django's JoinPromoter).
 * Writing walks it again, each lookup written by query/lookups.c, or by
 * query/exclude.c when it is a negated lookup across a multi-valued
 * relation (an EXISTS subquery).
 */
#include "query/query_int.h"

static void register_expr(cctx *c, const dorm_expr *e, int left) {
  if (!e) return;
  if (e->kind == EXPR_FIELD) dorm__path_alias_of(c, &e->path, left);
  register_expr(c, e->a, left);
  register_expr(c, e->b, left);
}

static void register_q(cctx *c, const dorm_q *n, int negated, int branch,
                       int in_or) {
  switch (n->kind) {
    case Q_LEAF: {
      int isnull_true = n->path.lookup == LK_ISNULL && n->value.u.b;
      int left = negated || in_or || isnull_true;
      if (dorm__exclude_applies(n, branch)) {
        /* a subquery: the key outside it, and the F()s */
        dorm__exclude_register(c, n);
        if (n->value.type == DORM_T_EXPR) register_expr(c, n->value.u.expr, 1);
        break;
      }
      if (n->lhs)
        register_expr(c, n->lhs, left);
      else if (!n->path.annotation)
        dorm__path_alias_of(c, &n->path, left);
      if (n->value.type == DORM_T_EXPR) register_expr(c, n->value.u.expr, left);
      break;
    }
    case Q_AND:
      /* under an odd number of NOTs an AND is an OR (De Morgan): a join
       * only some of its terms need may be missing, so it is an outer
       * one (Django's JoinPromoter, effective_connector) */
      register_q(c, n->a, negated, branch, in_or || negated);
      register_q(c, n->b, negated, branch, in_or || negated);
      break;
    case Q_OR:
      register_q(c, n->a, negated, branch, 1);
      register_q(c, n->b, negated, branch, 1);
      break;
    case Q_NOT: register_q(c, n->a, !negated, 1, in_or); break;
  }
}

/* One filter() call's tree, from its top (no NOT, no OR around it). */
void dorm__register_cond(cctx *c, const dorm_q *cond) {
  register_q(c, cond, 0, 0, 0);
}

/* Each entry of the WHERE list is one filter() call: its join group is
 * its place in the list, counted the same way when writing. */
void dorm__register_where(cctx *c, const dorm_qlist *where) {
  int group = 0;
  for (const dorm_qlist *l = where; l; l = l->next) {
    c->group = ++group;
    c->event = 2 * group - 1;
    dorm__register_cond(c, l->q);
  }
  c->group = 0;
  c->event = DORM__EV_END;
}

static void emit_q(cctx *c, const dorm_q *n, int negated, int branch,
                   q_kind parent) {
  switch (n->kind) {
    case Q_LEAF:
      if (dorm__exclude_applies(n, branch))
        dorm__emit_exclude(c, n);
      else
        dorm__emit_lookup(c, n, negated, parent == Q_OR);
      break;
    case Q_AND:
    case Q_OR: {
      int paren = parent != n->kind && parent != Q_NOT && parent != Q_LEAF;
      if (paren) dorm__emitl(c, "(");
      emit_q(c, n->a, negated, branch, n->kind);
      dorm__emits(c, n->kind == Q_AND ? " AND " : " OR ");
      emit_q(c, n->b, negated, branch, n->kind);
      if (paren) dorm__emitl(c, ")");
      break;
    }
    case Q_NOT:
      dorm__emitl(c, "NOT (");
      emit_q(c, n->a, !negated, 1, Q_NOT);
      dorm__emitl(c, ")");
      break;
  }
}

int dorm__emit_conditions(cctx *c, const dorm_qlist *where, int having) {
  int n = 0;
  /* the top level is an AND: an OR in it needs parentheses when there is
   * more than one condition */
  q_kind parent = dorm__has_conditions(c->q, having) > 1 ? Q_AND : Q_LEAF;
  int group = 0; /* as dorm__register_where counts */
  for (const dorm_qlist *l = where; l; l = l->next) {
    group++;
    if (l->having != having) continue;
    if (n++) dorm__emitl(c, " AND ");
    c->group = group; /* (its multi-valued joins are found by group) */
    emit_q(c, l->q, 0, 0, parent);
  }
  c->group = 0;
  return n;
}
