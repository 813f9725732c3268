/* SPDX-License-Identifier: MIT */
/* query/select.c — SELECT statements: select lists (fields, values(),
 * select_related, annotations), GROUP BY, HAVING, ORDER BY, slices,
 * count(), exists(), aggregate() and select_for_update.
 *
 * Compiling walks the query twice: a registering pass finds every join the
 * conditions, columns and ordering need, in Django's call order, and
 * decides INNER or LEFT (query/joins.c, query/where.c), then the writing
 * pass emits the statement in order, so parameters are numbered in text
 * order on both dialects.
 */
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"

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
    dorm__register_cond(c, l->q);
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
    dorm__emit_agg_source_name(c, i, 0);
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
    dorm__emit_aggregate_value(c, a, -1);
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
    const annotation *a = dorm__annotation_at(q, p->annotation_index);
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
      const annotation *a = dorm__annotation_at(q, o->path.annotation_index);
      if (dorm__sqlite_decimal_sum(c, a))
        dorm__emit_aggregate(c, a); /* the number, not its text */
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
    dorm__emit_aggregate_value(c, a, i);
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
    dorm__propagate_left(c);
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
