/* SPDX-License-Identifier: MIT */
/* query/columns.c — the values a statement reads: a path's column, an F()
 * expression, an aggregate.
 *
 * Conditions (query/where.c, query/lookups.c), select lists and orderings
 * (query/select.c) and UPDATE's SET (query/compile_write.c) all write
 * their values through these, so a field, an annotation or an arithmetic
 * expression reads the same wherever it appears.  An annotation named in
 * a condition or an ordering is its aggregate (HAVING, ORDER BY), written
 * here too, with SQLite's exact sum of decimals.  Inside an EXISTS
 * subquery an F() names the outer row (Django's OuterRef).
 */
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"

static const char *const agg_names[] = {"COUNT", "SUM", "AVG", "MIN", "MAX"};

/* "subquery"."__col<i>" or "__col<i>": the source column of the i-th
 * aggregate when it runs over a subquery. */
void dorm__emit_agg_source_name(cctx *c, int i, int qualified) {
  char name[32];
  int n = snprintf(name, sizeof name, "%s\"__col%d\"",
                   qualified ? "\"subquery\"." : "", i);
  dorm__emit(c, name, (size_t)n);
}

/* The value an aggregate reads: the annotation's column (src < 0) or the
 * src-th source column of the subquery aggregate() runs over. */
static void emit_agg_arg(cctx *c, const annotation *a, int src) {
  if (src >= 0) {
    dorm__emit_agg_source_name(c, src, 1);
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
int dorm__sqlite_decimal_sum(const cctx *c, const annotation *a) {
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
  if (dorm__sqlite_decimal_sum(c, a)) {
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

void dorm__emit_aggregate(cctx *c, const annotation *a) {
  emit_aggregate_src(c, a, -1);
}

/* The aggregate as the value a row gives: on SQLite a Sum of decimals is
 * its exact text, written from the scaled integer sum (SQLite computes
 * the identical SUMs once). */
void dorm__emit_aggregate_value(cctx *c, const annotation *a, int src) {
  if (!dorm__sqlite_decimal_sum(c, a)) {
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

const annotation *dorm__annotation_at(const dorm_query *q, int idx) {
  const annotation *a = q->annots;
  while (a && idx-- > 0) a = a->next;
  return a;
}

void dorm__emit_column_of(cctx *c, const dorm_path *p, int alias) {
  if (p->annotation) {
    const annotation *a = dorm__annotation_at(c->q, p->annotation_index);
    if (a) dorm__emit_aggregate(c, a);
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
