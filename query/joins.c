/* SPDX-License-Identifier: MIT */
/* query/joins.c — table aliases and JOINs, shared by every statement kind
 * (and by the EXISTS subqueries of query/exclude.c).
 *
 * A path that crosses relations gets its joins here: dorm__path_alias finds
 * or adds one join per hop (two for a many-to-many: the join table, then
 * the target), keyed by the join groups described at struct join in
 * query_int.h.  Compiling runs twice (see query/select.c): the
 * registering pass adds the joins and marks each LEFT when some use of it
 * may find no row; dorm__propagate_left then makes the joins under a LEFT
 * one LEFT too (Django's join promotion), and the writing pass only finds
 * them and writes them in the order they were made.
 */
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"
#include "schema/schema_int.h"

/* The table a statement (or subquery) selects from: alias 0, with its
 * quoted prefix ("author".) prepared once for dorm__emit_col. */
void dorm__set_base_table(cctx *c, const char *table) {
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
void dorm__propagate_left(cctx *c) {
  for (int i = 0; i < c->njoins; i++) {
    int p = c->joins[i].parent;
    if (p > 0 && c->joins[p - 1].left) c->joins[i].left = 1;
  }
}

/* The join table's two columns for a many-to-many hop (schema/m2m_names.c);
 * -1 with the error recorded when they cannot be formed. */
int dorm__m2m_join_columns(cctx *c, const dorm_hop *h, char *from, char *to) {
  if (!dorm__m2m_columns(h->field, from, to)) return 0;
  dorm__cfail(c, DORM_EIDENT,
              "model '%s', field '%s': join table column names too long",
              h->field->model->name, h->field->name);
  return -1;
}

void dorm__emit_join(cctx *c, int idx) {
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
      if (dorm__m2m_join_columns(c, h, from, to)) return;
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
  for (int i = 0; i < c->njoins; i++) dorm__emit_join(c, i);
}
