/* SPDX-License-Identifier: MIT */
/* query/compile.c — SELECT statements, and the joins and conditions every
 * statement kind shares.
 *
 * Compiling walks the query twice: a registering pass finds every join the
 * conditions, columns and ordering need and decides INNER or LEFT (a join
 * may be INNER only if no use of it could be satisfied by a missing row:
 * Django's join promotion), then the writing pass emits the statement in
 * order, so parameters are numbered in text order on both dialects.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dorm/ddl.h"
#include "query/query_int.h"

/* ---- aliases and joins -------------------------------------------------- */

/* The table a statement (or subquery) selects from: alias 0, with its
 * quoted prefix ("author".) prepared once for dorm__emit_col. */
static void set_base_table(cctx *c, const char *table) {
  size_t n = strlen(table);
  c->base_table = table;
  c->base_ref[0] = '"';
  memcpy(c->base_ref + 1, table, n);
  c->base_ref[n + 1] = '"';
  c->base_ref[n + 2] = '.';
  c->base_ref_len = n + 3;
}

void dorm__emit_alias(cctx *c, int alias) {
  if (alias == 0 && !c->sub_alias) {
    dorm__emit_ident(c, c->base_table);
    return;
  }
  if (c->sub_alias) { /* alias 0 is written through base_ref, not here */
    char tmp[16];
    int n = snprintf(tmp, sizeof tmp, "\"U%d\"", alias + c->sub_alias - 1);
    dorm__emit(c, tmp, (size_t)n);
    return;
  }
  const join *j = &c->joins[alias - 1];
  if (j->named) {
    dorm__emit_ident(c, j->table);
  } else {
    char tmp[16];
    int n = snprintf(tmp, sizeof tmp, "\"T%d\"", alias + 1);
    dorm__emit(c, tmp, (size_t)n);
  }
}

static int table_in_use(const cctx *c, const char *table) {
  if (!strcmp(c->base_table, table)) return 1;
  for (int i = 0; i < c->njoins; i++)
    if (c->joins[i].named && !strcmp(c->joins[i].table, table)) return 1;
  return 0;
}

/* The join for hop h (part of it) from alias parent, added if missing.
 * Join groups (see struct join): a multi-valued hop inside a filter() call
 * matches only its call's join; outside the filters, the most recent one
 * made before this call (Django's setup_joins reuses the last equal
 * join), else the one this call made; a single-valued hop matches the
 * one join of the same hop. */
static int add_join(cctx *c, int parent, const dorm_hop *h, int part,
                    int left) {
  int group = h->multi ? c->group : 0, found = -1, same = -1;
  for (int i = 0; i < c->njoins; i++) {
    join *j = &c->joins[i];
    if (j->parent != parent || j->part != part || j->hop->kind != h->kind ||
        j->hop->field != h->field)
      continue;
    if (group || !h->multi) {
      if (j->group != group) continue;
      found = i;
      break;
    }
    /* both passes see the same joins made before this call, so they
     * choose the same one */
    if (j->event < c->event)
      found = i;
    else if (j->event == c->event && same < 0)
      same = i;
  }
  if (found < 0) found = same;
  if (found >= 0) {
    /* a filter() call's join keeps the type its conditions chose: the
     * paths outside the filters that reuse it do not promote it (Django's
     * join() returns a reused alias as it is) */
    if (left && !(group == 0 && c->joins[found].group != 0))
      c->joins[found].left = 1;
    return found + 1;
  }
  if (c->registering == 0) {
    /* every join is found in the registering pass; reaching here means a
     * path was not registered, a compiler bug worth a clear error */
    dorm__cfail(c, DORM_EINVAL, "internal error: unregistered join");
    return 0;
  }
  if (c->njoins >= DORM_MAX_JOINS) {
    dorm__cfail(c, DORM_EINVAL, "model '%s': more than %d joins in one query",
                c->q->model->name, DORM_MAX_JOINS);
    return 0;
  }
  join *j = &c->joins[c->njoins];
  j->hop = h;
  j->parent = parent;
  j->part = part;
  j->left = left;
  j->group = group;
  j->event = c->event;
  if ((h->kind == HOP_M2M || h->kind == HOP_M2M_REVERSE) && part == 0)
    j->table = h->field->through_table;
  else
    j->table = h->to->table;
  j->named = !table_in_use(c, j->table);
  c->njoins++;
  return c->njoins;
}

int dorm__path_alias(cctx *c, const dorm_path *p, int want_left) {
  int alias = 0;
  for (int i = 0; i < p->nhops && !c->failed; i++) {
    const dorm_hop *h = &p->hops[i];
    if (c->no_joins) {
      dorm__cfail(c, DORM_EINVAL,
                  "model '%s', '%s': joined field references are not "
                  "permitted in this query",
                  c->q->model->name, p->text);
      return 0;
    }
    int left =
        (want_left && h->nullable) || (alias > 0 && c->joins[alias - 1].left);
    if (h->kind == HOP_M2M || h->kind == HOP_M2M_REVERSE) {
      alias = add_join(c, alias, h, 0, left);
      if (!alias) return 0;
      alias = add_join(c, alias, h, 1, left);
    } else {
      alias = add_join(c, alias, h, 0, left);
    }
    if (!alias) return 0;
  }
  return alias;
}

/* A parent that is LEFT makes its children LEFT: an INNER join after an
 * outer one would drop the rows the outer join kept. */
static void propagate_left(cctx *c) {
  for (int i = 0; i < c->njoins; i++) {
    int p = c->joins[i].parent;
    if (p > 0 && c->joins[p - 1].left) c->joins[i].left = 1;
  }
}

/* The join table's two columns for a many-to-many hop (the DDL's names);
 * -1 with the error recorded when they cannot be formed. */
static int m2m_columns(cctx *c, const dorm_hop *h, char *from, char *to) {
  if (!dorm_ddl_m2m_columns(h->field, from, to)) return 0;
  dorm__cfail(c, DORM_EIDENT,
              "model '%s', field '%s': join table column names too long",
              h->field->model->name, h->field->name);
  return -1;
}

static void emit_join(cctx *c, int idx) {
  const join *j = &c->joins[idx];
  const dorm_hop *h = j->hop;
  int self = idx + 1;
  dorm__emits(c, j->left ? " LEFT OUTER JOIN " : " INNER JOIN ");
  dorm__emit_ident(c, j->table);
  if (!j->named) {
    dorm__emit(c, " ", 1);
    dorm__emit_alias(c, self);
  }
  dorm__emitl(c, " ON (");
  char from[DORM_IDENT_MAX + 1], to[DORM_IDENT_MAX + 1];
  switch (h->kind) {
    case HOP_FORWARD: /* parent.fk = self.pk */
      dorm__emit_col(c, j->parent, h->field->column);
      dorm__emitl(c, " = ");
      dorm__emit_col(c, self, h->to->pk->column);
      break;
    case HOP_REVERSE: /* parent.pk = self.fk */
      dorm__emit_col(c, j->parent, h->from->pk->column);
      dorm__emitl(c, " = ");
      dorm__emit_col(c, self, h->field->column);
      break;
    case HOP_M2M:
    case HOP_M2M_REVERSE: {
      if (m2m_columns(c, h, from, to)) return;
      int fwd = h->kind == HOP_M2M;
      if (j->part == 0) { /* parent.pk = through.<this side>_id */
        dorm__emit_col(c, j->parent, h->from->pk->column);
        dorm__emitl(c, " = ");
        dorm__emit_col(c, self, fwd ? from : to);
      } else { /* through.<other side>_id = self.pk */
        dorm__emit_col(c, j->parent, fwd ? to : from);
        dorm__emitl(c, " = ");
        dorm__emit_col(c, self, h->to->pk->column);
      }
      break;
    }
  }
  dorm__emitl(c, ")");
}

void dorm__emit_from(cctx *c) {
  dorm__emitl(c, " FROM ");
  dorm__emit_ident(c, c->base_table);
  for (int i = 0; i < c->njoins; i++) emit_join(c, i);
}

/* ---- columns and expressions ------------------------------------------- */

static const char *const agg_names[] = {"COUNT", "SUM", "AVG", "MIN", "MAX"};

static void emit_agg_source_name(cctx *c, int i, int qualified);

/* The value an aggregate reads: the annotation's column (src < 0) or the
 * src-th source column of the subquery aggregate() runs over. */
static void emit_agg_arg(cctx *c, const annotation *a, int src) {
  if (src >= 0) {
    emit_agg_source_name(c, src, 1);
    return;
  }
  /* an annotation is no filter's, even written in HAVING: it finds the
   * join it registered with (group 0, at its call) */
  int group = c->group, event = c->event;
  c->group = 0;
  c->event = dorm__ev_call(a->after);
  int alias = dorm__path_alias_of(c, &a->path, 1);
  c->group = group;
  c->event = event;
  if (a->path.transform)
    dorm__emit_transform(c, &a->path, alias);
  else
    dorm__emit_column_of(c, &a->path, alias);
}

/* SQLite keeps decimals as doubles, whose SUM rounds.  dorm only writes
 * decimals that take at most 15 digits to the field's decimal places
 * (query/sql.c), so each value times 10^places is an integer a double
 * holds exactly: Sum() of a decimal field adds those integers, exactly
 * (SQLite reports an integer overflow instead of rounding). */
static int sqlite_decimal_sum(const cctx *c, const annotation *a) {
  return c->d == DORM_DIALECT_SQLITE && (a->agg & 0xff) == DORM_AGG_SUM &&
         !a->star && !a->path.transform && a->path.field &&
         a->path.field->type == DORM_FIELD_DECIMAL &&
         a->path.field->decimal_places >= 0 &&
         a->path.field->decimal_places <= 15;
}

/* 10^places as SQL text */
static void emit_scale(cctx *c, int places) {
  char n[24] = "1";
  for (int i = 0; i < places; i++) n[i + 1] = '0';
  n[places + 1] = '\0';
  dorm__emits(c, n);
}

/* SUM(CAST(ROUND(x * 10^p) AS INTEGER)): the exact sum, scaled */
static void emit_scaled_sum(cctx *c, const annotation *a, int src) {
  dorm__emitl(c, "SUM(");
  if (a->agg & DORM_AGG_DISTINCT) dorm__emitl(c, "DISTINCT ");
  dorm__emitl(c, "CAST(ROUND(");
  emit_agg_arg(c, a, src);
  dorm__emitl(c, " * ");
  emit_scale(c, a->path.field->decimal_places);
  dorm__emitl(c, ") AS INTEGER))");
}

/* The aggregate as a number (what HAVING and ORDER BY compare). */
static void emit_aggregate_src(cctx *c, const annotation *a, int src) {
  int fn = a->agg & 0xff;
  if (sqlite_decimal_sum(c, a)) {
    /* the double nearest the exact sum */
    dorm__emitl(c, "(CAST(");
    emit_scaled_sum(c, a, src);
    dorm__emitl(c, " AS REAL) / ");
    emit_scale(c, a->path.field->decimal_places);
    dorm__emitl(c, ")");
    return;
  }
  dorm__emits(c, agg_names[fn]);
  dorm__emitl(c, "(");
  if (a->star) {
    dorm__emitl(c, "*");
  } else {
    if (a->agg & DORM_AGG_DISTINCT) dorm__emitl(c, "DISTINCT ");
    emit_agg_arg(c, a, src);
  }
  dorm__emitl(c, ")");
}

static void emit_aggregate(cctx *c, const annotation *a) {
  emit_aggregate_src(c, a, -1);
}

/* The aggregate as the value a row gives: on SQLite a Sum of decimals is
 * its exact text, written from the scaled integer sum (SQLite computes
 * the identical SUMs once). */
static void emit_aggregate_value(cctx *c, const annotation *a, int src) {
  if (!sqlite_decimal_sum(c, a)) {
    emit_aggregate_src(c, a, src);
    return;
  }
  int places = a->path.field->decimal_places;
  if (places == 0) {
    emit_scaled_sum(c, a, src);
    return;
  }
  dorm__emitl(c, "(CASE WHEN ");
  emit_scaled_sum(c, a, src);
  dorm__emitl(c, " < 0 THEN '-' ELSE '' END || (abs(");
  emit_scaled_sum(c, a, src);
  dorm__emitl(c, ") / ");
  emit_scale(c, places);
  dorm__emitl(c, ") || '.' || substr('");
  for (int i = 0; i < places; i++) dorm__emitl(c, "0");
  dorm__emitl(c, "' || (abs(");
  emit_scaled_sum(c, a, src);
  dorm__emitl(c, ") % ");
  emit_scale(c, places);
  dorm__emitl(c, "), -");
  char n[8];
  snprintf(n, sizeof n, "%d", places);
  dorm__emits(c, n);
  dorm__emitl(c, "))");
}

static const annotation *annotation_at(const dorm_query *q, int idx) {
  const annotation *a = q->annots;
  while (a && idx-- > 0) a = a->next;
  return a;
}

void dorm__emit_column_of(cctx *c, const dorm_path *p, int alias) {
  if (p->annotation) {
    const annotation *a = annotation_at(c->q, p->annotation_index);
    if (a) emit_aggregate(c, a);
    return;
  }
  dorm__emit_fcol(c, alias, p->field);
}

/* p's column in the statement around subquery c, written into c. */
static void emit_outer_field(cctx *c, const dorm_path *p) {
  cctx *o = c->outer;
  o->buf = c->buf; /* o writes where c was writing, then c takes it back */
  int alias = dorm__path_alias_of(o, p, 0);
  if (p->transform)
    dorm__emit_transform(o, p, alias);
  else
    dorm__emit_column_of(o, p, alias);
  c->buf = o->buf;
  if (o->failed && !c->failed) c->failed = o->failed;
}

void dorm__emit_expr(cctx *c, const dorm_expr *e) {
  switch (e->kind) {
    case EXPR_FIELD: {
      if (c->outer) { /* an F() in a subquery names the outer row */
        emit_outer_field(c, &e->path);
        break;
      }
      int alias = dorm__path_alias_of(c, &e->path, 0);
      if (e->path.transform)
        dorm__emit_transform(c, &e->path, alias);
      else
        dorm__emit_column_of(c, &e->path, alias);
      break;
    }
    case EXPR_VALUE: dorm__emit_param(c, e->value); break;
    case EXPR_OP: {
      if (e->op == '/' && c->d == DORM_DIALECT_SQLITE) {
        /* SQLite's x / 0 is NULL; dorm_div (backends/sqlite/sqlite.c) fails
         * as PostgreSQL does, so neither backend writes a NULL nobody
         * asked for */
        dorm__emitl(c, "dorm_div(");
        dorm__emit_expr(c, e->a);
        dorm__emitl(c, ", ");
        dorm__emit_expr(c, e->b);
        dorm__emitl(c, ")");
        break;
      }
      char op[4] = {' ', e->op, ' ', 0};
      dorm__emitl(c, "(");
      dorm__emit_expr(c, e->a);
      dorm__emits(c, op);
      dorm__emit_expr(c, e->b);
      dorm__emitl(c, ")");
      break;
    }
  }
}

/* ---- conditions --------------------------------------------------------- */

static void register_expr(cctx *c, const dorm_expr *e, int left) {
  if (!e) return;
  if (e->kind == EXPR_FIELD) dorm__path_alias_of(c, &e->path, left);
  register_expr(c, e->a, left);
  register_expr(c, e->b, left);
}

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
static int use_subquery(const dorm_q *n, int branch_negated) {
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

static void emit_negated_exists(cctx *c, const dorm_q *leaf) {
  const dorm_path *p = &leaf->path;
  neg_plan pl;
  plan_negated(leaf, &pl);
  int k = pl.k;
  const dorm_hop *h = &p->hops[k];
  int m2m = h->kind == HOP_M2M || h->kind == HOP_M2M_REVERSE;
  int fwd = h->kind == HOP_M2M;
  char from[DORM_IDENT_MAX + 1], to[DORM_IDENT_MAX + 1];
  if (m2m && m2m_columns(c, h, from, to)) return;
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
  set_base_table(&sub, base->table);
  int n = snprintf(sub.base_ref, sizeof sub.base_ref, "\"U%d\".", first);
  sub.base_ref_len = (size_t)n;
  sub.sub_alias = first + 1;
  sub.registering = 1;
  dorm__path_alias_of(&sub, &inner.path, pl.from_source);
  sub.registering = 0;
  propagate_left(&sub);
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
  for (int i = 0; i < sub.njoins; i++) emit_join(&sub, i);
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

/* negated: under an odd number of NOTs; branch: under any NOT */
static void register_q(cctx *c, const dorm_q *n, int negated, int branch,
                       int in_or) {
  switch (n->kind) {
    case Q_LEAF: {
      int isnull_true = n->path.lookup == LK_ISNULL && n->value.u.b;
      int left = negated || in_or || isnull_true;
      if (use_subquery(n, branch)) { /* the key outside, and the F()s */
        neg_plan pl;
        plan_negated(n, &pl);
        key_alias(c, &n->path, &pl);
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

/* Each entry of the WHERE list is one filter() call: its join group is
 * its place in the list, counted the same way when writing. */
void dorm__register_where(cctx *c, const dorm_qlist *where) {
  int group = 0;
  for (const dorm_qlist *l = where; l; l = l->next) {
    c->group = ++group;
    c->event = 2 * group - 1;
    register_q(c, l->q, 0, 0, 0);
  }
  c->group = 0;
  c->event = DORM__EV_END;
}

static void emit_q(cctx *c, const dorm_q *n, int negated, int branch,
                   q_kind parent) {
  switch (n->kind) {
    case Q_LEAF:
      if (use_subquery(n, branch))
        emit_negated_exists(c, n);
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

/* ---- SELECT ------------------------------------------------------------- */

/* Every concrete field of m (or of only()), in declaration order. */
static int field_selected(const dorm_query *q, const dorm_field *f) {
  if (f->type == DORM_FIELD_MANY_TO_MANY) return 0;
  if (!q->only) return 1;
  if (f == q->model->pk) return 1;
  for (const field_item *it = q->only; it; it = it->next)
    if (it->field == f) return 1;
  return 0;
}

/* The values() and annotate() paths made after `after` filter() calls. */
static void register_calls(cctx *c, int after) {
  const dorm_query *q = c->q;
  c->group = 0;
  c->event = dorm__ev_call(after);
  for (const path_item *it = q->values; it; it = it->next)
    if (it->after == after) dorm__path_alias_of(c, &it->path, 1);
  for (const annotation *a = q->annots; a; a = a->next)
    if (!a->star && a->after == after) dorm__path_alias_of(c, &a->path, 1);
}

/* Is the ordering part of the statement?  count() keeps it only over a
 * slice (Django's get_aggregation clears it otherwise), exists() never;
 * aggregate(): see aggregate_of_rows. */
static int keeps_order(const dorm_query *q) {
  if (q->exists) return 0;
  if (q->count || q->aggregate) return q->sliced;
  return 1;
}

/* In Django's call order (see struct join), so each path finds the
 * joins it would find in Django. */
static void register_select(cctx *c) {
  const dorm_query *q = c->q;
  int calls = q->nvalues || q->nannots, group = 0;
  if (calls) register_calls(c, 0);
  for (const dorm_qlist *l = q->where; l; l = l->next) {
    c->group = ++group;
    c->event = 2 * group - 1;
    register_q(c, l->q, 0, 0, 0);
    if (calls) register_calls(c, group);
  }
  c->group = 0;
  c->event = DORM__EV_END;
  for (const path_item *it = q->related; it; it = it->next)
    dorm__path_alias_of(c, &it->path, 1);
  /* after the filter, and not asking for an outer join: the key reads
   * the filter's own (inner) join */
  if (q->prefetch_key) dorm__path_alias_of(c, &q->prefetch_key->path, 0);
  if (keeps_order(q))
    for (const order_item *o = q->order; o; o = o->next)
      if (!o->path.annotation) dorm__path_alias_of(c, &o->path, 1);
}

/* The common case of emit_model_columns: every column of the base model,
 * named by the schema's quoted names, written with one reservation.
 * Returns 0 when it does not apply (a field without a prepared name). */
static int emit_base_columns_fast(cctx *c, const dorm_model *m, int record,
                                  int *first) {
  size_t total = 0, n = 0;
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (f->type == DORM_FIELD_MANY_TO_MANY) continue;
    if (!f->qcolumn) return 0;
    total += c->base_ref_len + f->qcolumn_len + 2;
    n++;
  }
  dorm__buf *b = &c->buf;
  if (b->len + total + 1 > b->cap && dorm__buf_reserve(b, total)) return 1;
  dorm_sql *o = c->out;
  if (record && o->ncolumns + n > o->columns_cap) {
    size_t cap = o->columns_cap ? o->columns_cap : 16;
    while (cap < o->ncolumns + n) cap *= 2;
    dorm_column *p = dorm__realloc(o->columns, cap * sizeof *p);
    if (!p) {
      dorm__cfail(c, DORM_ENOMEM, "out of memory compiling a query");
      return 1;
    }
    o->columns = p;
    o->columns_cap = cap;
  }
  char *p = b->data + b->len;
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (f->type == DORM_FIELD_MANY_TO_MANY) continue;
    if (!*first) {
      p[0] = ',';
      p[1] = ' ';
      p += 2;
    }
    *first = 0;
    memcpy(p, c->base_ref, c->base_ref_len);
    p += c->base_ref_len;
    memcpy(p, f->qcolumn, f->qcolumn_len);
    p += f->qcolumn_len;
    if (record) {
      dorm_column *col = &o->columns[o->ncolumns++];
      col->name = f->name; /* the schema's: it outlives the statement */
      col->name_pending = 0;
      col->field = f;
      col->model = m;
      col->relation = 0;
      col->type = dorm__vt(f);
    }
  }
  b->len = (size_t)(p - b->data);
  return 1;
}

static void emit_model_columns(cctx *c, const dorm_model *m, int alias,
                               int relation, const char *prefix, int record,
                               int *first) {
  char name[256];
  if (alias == 0 && relation == 0 && !prefix && !c->q->only &&
      emit_base_columns_fast(c, m, record, first))
    return;
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (relation == 0 ? !field_selected(c->q, f)
                      : f->type == DORM_FIELD_MANY_TO_MANY)
      continue;
    if (!*first) dorm__emitl(c, ", ");
    *first = 0;
    dorm__emit_fcol(c, alias, f);
    if (record) {
      if (prefix) {
        snprintf(name, sizeof name, "%s__%s", prefix, f->name);
        dorm__add_column(c, name, f, m, relation, dorm__vt(f));
      } else {
        /* the schema's own string: it outlives the statement */
        dorm__add_column_static(c, f->name, f, m, relation, dorm__vt(f));
      }
    }
  }
}

static dorm_type agg_type(const annotation *a) {
  int fn = a->agg & 0xff;
  if (fn == DORM_AGG_COUNT) return DORM_T_INT;
  dorm_type t = dorm__path_type(&a->path);
  if (fn == DORM_AGG_AVG)
    return t == DORM_T_DECIMAL ? DORM_T_DECIMAL : DORM_T_FLOAT;
  return t;
}

static void emit_path_value(cctx *c, const dorm_path *p) {
  int alias = dorm__path_alias_of(c, p, 1);
  if (p->transform)
    dorm__emit_transform(c, p, alias);
  else
    dorm__emit_column_of(c, p, alias);
}

/* "subquery"."__col<i>" or "__col<i>": the source column of the i-th
 * aggregate when it runs over a subquery. */
static void emit_agg_source_name(cctx *c, int i, int qualified) {
  char name[32];
  int n = snprintf(name, sizeof name, "%s\"__col%d\"",
                   qualified ? "\"subquery\"." : "", i);
  dorm__emit(c, name, (size_t)n);
}

/* Inside the subquery of aggregate() over a slice or a distinct set: the
 * value each aggregate reads, named for the outer query (COUNT(*) reads
 * none). */
static void emit_agg_sources(cctx *c, int *first) {
  int i = 0;
  for (const annotation *a = c->q->annots; a; a = a->next, i++) {
    if (a->star) continue;
    if (!*first) dorm__emitl(c, ", ");
    *first = 0;
    c->event = dorm__ev_call(a->after);
    emit_path_value(c, &a->path);
    c->event = DORM__EV_END;
    dorm__emitl(c, " AS ");
    emit_agg_source_name(c, i, 0);
  }
}

static void emit_annotations(cctx *c, int record, int *first) {
  if (c->agg_inner) {
    emit_agg_sources(c, first);
    return;
  }
  for (const annotation *a = c->q->annots; a; a = a->next) {
    if (!*first) dorm__emitl(c, ", ");
    *first = 0;
    emit_aggregate_value(c, a, -1);
    dorm__emitl(c, " AS ");
    dorm__emit_ident(c, a->alias);
    if (record)
      dorm__add_column(c, a->alias, a->star ? NULL : a->path.field,
                       a->star ? c->q->model : a->path.model, 0, agg_type(a));
  }
}

/* The select list; record: describe the columns in out. */
static void emit_select_list(cctx *c, int record) {
  const dorm_query *q = c->q;
  int first = 1;
  if (q->aggregate && !c->agg_inner) {
    emit_annotations(c, record, &first);
    return;
  }
  if (q->nvalues) {
    for (const path_item *it = q->values; it; it = it->next) {
      if (!first) dorm__emitl(c, ", ");
      first = 0;
      c->event = dorm__ev_call(it->after);
      emit_path_value(c, &it->path);
      c->event = DORM__EV_END;
      /* a computed column gets its path as name ("joined__year": field
       * and transform names, so a plain identifier) */
      if (it->path.transform) {
        dorm__emitl(c, " AS ");
        dorm__emit_ident(c, it->name);
      }
      if (record)
        dorm__add_column(c, it->name, it->path.field, it->path.model, 0,
                         dorm__path_type(&it->path));
    }
  } else {
    emit_model_columns(c, q->model, 0, 0, NULL, record, &first);
    int rel = 1;
    for (const path_item *it = q->related; it; it = it->next, rel++) {
      int alias = dorm__path_alias_of(c, &it->path, 1);
      emit_model_columns(c, it->path.model, alias, rel, it->name, record,
                         &first);
    }
  }
  emit_annotations(c, record, &first);
  /* a prefetch query's source key (prefetch.c): described, but as no
   * row's column (relation -1) */
  if (q->prefetch_key && !q->nvalues) {
    if (!first) dorm__emitl(c, ", ");
    first = 0;
    const dorm_path *kp = &q->prefetch_key->path;
    dorm__emit_column_of(c, kp, dorm__path_alias_of(c, kp, 0));
    if (record)
      dorm__add_column(c, q->prefetch_key->name, q->prefetch_key->path.field,
                       q->prefetch_key->path.model, -1,
                       dorm__path_type(&q->prefetch_key->path));
  }
  /* PostgreSQL: with DISTINCT, ORDER BY expressions must be selected.
   * Django adds them too; they come after the described columns, so row
   * decoding (which reads ncolumns) never sees them. */
  if (q->distinct && keeps_order(q)) { /* no ORDER BY: nothing to add */
    for (const order_item *o = q->order; o; o = o->next) {
      if (o->path.annotation) continue;
      if (!o->path.nhops && q->nvalues == 0 && !o->path.transform &&
          field_selected(q, o->path.field))
        continue;
      /* selected already when a values() path names the same column of
       * the same join (values() called before a filter() crossing the
       * relation reads another join than the ordering: Django compares
       * the SQL of the two) */
      int selected = 0;
      for (const path_item *it = q->values; it && !selected; it = it->next) {
        if (strcmp(it->path.text, o->path.text)) continue;
        c->event = dorm__ev_call(it->after);
        int alias = dorm__path_alias_of(c, &it->path, 1);
        c->event = DORM__EV_END;
        selected = alias == dorm__path_alias_of(c, &o->path, 1);
      }
      if (selected) continue;
      dorm__emitl(c, ", ");
      emit_path_value(c, &o->path);
    }
  }
}

static void emit_group_by(cctx *c) {
  const dorm_query *q = c->q;
  if (!q->nannots || q->aggregate) return;
  dorm__emitl(c, " GROUP BY ");
  if (q->nvalues) {
    int first = 1;
    for (const path_item *it = q->values; it; it = it->next) {
      if (!first) dorm__emitl(c, ", ");
      first = 0;
      c->event = dorm__ev_call(it->after);
      emit_path_value(c, &it->path);
      c->event = DORM__EV_END;
    }
  } else {
    int first = 1;
    emit_model_columns(c, q->model, 0, 0, NULL, 0, &first);
    for (const path_item *it = q->related; it; it = it->next) {
      int alias = dorm__path_alias_of(c, &it->path, 1);
      emit_model_columns(c, it->path.model, alias, 1, it->name, 0, &first);
    }
  }
}

/* May the value of p be NULL (a nullable field, or one reached through a
 * relation that may find no row, or an aggregate)? */
static int path_nullable(const dorm_query *q, const dorm_path *p) {
  if (p->annotation) { /* COUNT is never NULL; SUM of no rows is */
    const annotation *a = annotation_at(q, p->annotation_index);
    return !a || (a->agg & 0xff) != DORM_AGG_COUNT;
  }
  if (!p->field) return 1;
  if (p->field->flags & DORM_FIELD_NULL) return 1;
  for (int i = 0; i < p->nhops; i++)
    if (p->hops[i].nullable) return 1;
  return 0;
}

static void emit_order_by(cctx *c) {
  const dorm_query *q = c->q;
  if (!q->order) return;
  dorm__emitl(c, " ORDER BY ");
  int first = 1;
  for (const order_item *o = q->order; o; o = o->next) {
    if (!first) dorm__emitl(c, ", ");
    first = 0;
    if (o->path.annotation) {
      const annotation *a = annotation_at(q, o->path.annotation_index);
      if (sqlite_decimal_sum(c, a))
        emit_aggregate(c, a); /* the number, not its text */
      else
        dorm__emit_ident(c, a->alias);
    } else {
      emit_path_value(c, &o->path);
    }
    if (o->desc)
      dorm__emitl(c, " DESC");
    else
      dorm__emitl(c, " ASC");
    /* PostgreSQL sorts NULLs as larger than any value (last ascending,
     * first descending), SQLite as smaller: say PostgreSQL's order on
     * SQLite so both backends return rows in the same order */
    if (c->d == DORM_DIALECT_SQLITE && path_nullable(q, &o->path))
      dorm__emits(c, o->desc ? " NULLS FIRST" : " NULLS LAST");
  }
}

static void emit_limit(cctx *c) {
  const dorm_query *q = c->q;
  if (!q->sliced) return;
  if (q->hi >= 0) {
    dorm__emitl(c, " LIMIT ");
    dorm__emit_param(c, dorm_int(q->hi - q->lo));
  } else if (q->lo > 0 && c->d == DORM_DIALECT_SQLITE) {
    dorm__emitl(c, " LIMIT -1"); /* SQLite needs LIMIT before OFFSET */
  }
  if (q->lo > 0) {
    dorm__emitl(c, " OFFSET ");
    dorm__emit_param(c, dorm_int(q->lo));
  }
}

/* SELECT ... FROM ... WHERE ... GROUP BY ... HAVING ... ORDER BY ... LIMIT
 * with flags for the forms that wrap it. */
static void emit_plain_select(cctx *c, int record, int with_order) {
  const dorm_query *q = c->q;
  dorm__emitl(c, "SELECT ");
  if (q->distinct) dorm__emitl(c, "DISTINCT ");
  emit_select_list(c, record);
  dorm__emit_from(c);
  if (dorm__has_conditions(q, 0)) {
    dorm__emitl(c, " WHERE ");
    dorm__emit_conditions(c, q->where, 0);
  }
  emit_group_by(c);
  if (dorm__has_conditions(q, 1)) {
    if (!q->nannots || q->aggregate) {
      dorm__cfail(c, DORM_EINVAL,
                  "model '%s': filter on an annotation needs "
                  "annotate()",
                  q->model->name);
      return;
    }
    dorm__emitl(c, " HAVING ");
    dorm__emit_conditions(c, q->where, 1);
  }
  if (with_order) emit_order_by(c);
  emit_limit(c);
}

/* aggregate() over a slice or a distinct set: the slice (or the distinct
 * rows) is a subquery selecting what the query selects plus each
 * aggregate's source value, and the aggregates run over its columns, as
 * Django's get_aggregation does:
 *   SELECT AVG("subquery"."__col0") AS "avg" FROM (SELECT "entry"."id",
 *   ..., "entry"."rating" AS "__col0" FROM "entry" ORDER BY ... LIMIT $1)
 *   "subquery" */
static void aggregate_of_rows(cctx *c) {
  const dorm_query *q = c->q;
  dorm__emitl(c, "SELECT ");
  int i = 0;
  for (const annotation *a = q->annots; a; a = a->next, i++) {
    if (i) dorm__emitl(c, ", ");
    emit_aggregate_value(c, a, i);
    dorm__emitl(c, " AS ");
    dorm__emit_ident(c, a->alias);
    dorm__add_column(c, a->alias, a->star ? NULL : a->path.field,
                     a->star ? q->model : a->path.model, 0, agg_type(a));
  }
  dorm__emitl(c, " FROM (");
  c->agg_inner = 1;
  emit_plain_select(c, 0, q->sliced);
  c->agg_inner = 0;
  dorm__emitl(c, ") \"subquery\"");
}

int dorm__compile_select(cctx *c) {
  const dorm_query *q = c->q;
  c->event = DORM__EV_END;
  if (q->has_hops) { /* no relation anywhere: no joins to find */
    c->registering = 1;
    register_select(c);
    c->registering = 0;
    propagate_left(c);
  }
  if (c->failed) return c->failed;

  if (q->lock && c->d == DORM_DIALECT_SQLITE)
    return dorm__cfail(c, DORM_EUNSUPPORTED,
                       "model '%s': select_for_update is not supported on "
                       "SQLite (writes are serialised; use a transaction)",
                       q->model->name);
  if (q->lock &&
      (q->count || q->exists || q->aggregate || q->distinct || q->nannots))
    return dorm__cfail(c, DORM_EINVAL,
                       "model '%s': select_for_update cannot be combined with "
                       "count, exists, aggregates or distinct",
                       q->model->name);

  c->out->returns_rows = 1;
  if (q->exists) {
    /* Django's exists() drops the ordering but keeps DISTINCT and its
     * select list: over a slice, the distinct rows are what is skipped */
    if (q->distinct && !q->nannots) {
      dorm__emitl(c, "SELECT DISTINCT 1 AS \"a\", ");
      emit_select_list(c, 0);
    } else {
      dorm__emitl(c, "SELECT 1 AS \"a\"");
    }
    dorm__emit_from(c);
    if (dorm__has_conditions(q, 0)) {
      dorm__emitl(c, " WHERE ");
      dorm__emit_conditions(c, q->where, 0);
    }
    /* exists() on a slice: is there a row at offset lo?  An empty slice
     * ([2:2]) has none, as Django's set_limits(high=1) makes it LIMIT 0 */
    if (q->sliced && q->hi >= 0 && q->hi <= q->lo)
      dorm__emitl(c, " LIMIT 0");
    else
      dorm__emitl(c, " LIMIT 1");
    if (q->sliced && q->lo > 0) {
      dorm__emitl(c, " OFFSET ");
      dorm__emit_param(c, dorm_int(q->lo));
    }
    dorm__add_column(c, "a", NULL, q->model, 0, DORM_T_INT);
    return c->failed;
  }
  if (q->count) {
    if (q->sliced || q->distinct || q->nannots) {
      /* count what the inner query returns, as Django does: over a slice
       * its ordering (and the joins that takes) picks the rows */
      dorm__emitl(c, "SELECT COUNT(*) FROM (");
      emit_plain_select(c, 0, q->sliced);
      dorm__emitl(c, ") \"subquery\"");
    } else {
      dorm__emitl(c, "SELECT COUNT(*) AS \"count\"");
      dorm__emit_from(c);
      if (dorm__has_conditions(q, 0)) {
        dorm__emitl(c, " WHERE ");
        dorm__emit_conditions(c, q->where, 0);
      }
    }
    dorm__add_column(c, "count", NULL, q->model, 0, DORM_T_INT);
    return c->failed;
  }
  if (q->aggregate && (q->sliced || q->distinct)) {
    aggregate_of_rows(c);
    return c->failed;
  }
  emit_plain_select(c, 1, !q->aggregate);
  if (q->lock) {
    c->out->row_lock = 1;
    dorm__emitl(c, " FOR UPDATE");
    int any_left = 0;
    for (int i = 0; i < c->njoins; i++) any_left |= c->joins[i].left;
    /* PostgreSQL refuses to lock the nullable side of an outer join */
    if ((q->lock_flags & DORM_LOCK_OF_SELF) || any_left) {
      dorm__emitl(c, " OF ");
      dorm__emit_ident(c, c->base_table);
    }
    if (q->lock_flags & DORM_LOCK_NOWAIT) dorm__emitl(c, " NOWAIT");
    if (q->lock_flags & DORM_LOCK_SKIP_LOCKED) dorm__emitl(c, " SKIP LOCKED");
  }
  /* select_related paths, for decoding related objects */
  if (q->nrelated && !c->failed) {
    dorm_sql *o = c->out;
    if (o->related_cap < q->nrelated) {
      const char **r = dorm__realloc(o->related, q->nrelated * sizeof *r);
      if (!r) return dorm__cfail(c, DORM_ENOMEM, "out of memory");
      o->related = r;
      o->related_cap = q->nrelated;
    }
    for (const path_item *it = q->related; it; it = it->next)
      o->related[o->nrelated++] =
          dorm__sql_strdup(c, it->name, strlen(it->name));
  }
  return c->failed;
}

/* ---- entry point -------------------------------------------------------- */

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
  set_base_table(&c, q->model->table);
  int rc = q->kind == DORM_QUERY_SELECT ? dorm__compile_select(&c)
                                        : dorm__compile_write(&c);
  return dorm__cctx_end(&c, rc);
}
