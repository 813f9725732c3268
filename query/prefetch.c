/* SPDX-License-Identifier: MIT */
/* query/prefetch.c — the pure half of prefetch_related: which relation
 * each level of a path means, and the SELECT that reads a relation's rows
 * for a set of parent keys.
 *
 * Django's prefetch_related runs the main query, then one query per
 * relation for the whole result, and matches the related rows to their
 * parents in memory.  The database facade (backends/db_prefetch.c) does
 * the running and the matching; this file gives it, per relation, the key
 * columns to match on and a query built with the ordinary builder, so the
 * SQL is the compiler's (identifiers from the model, keys as parameters):
 *
 *   Author "entries" (reverse fk)  Entry.filter(author__in=keys)
 *   Entry "author" (forward fk)    Author.filter(pk__in=keys)
 *   Entry "tags" (many_to_many)    Tag.filter(entry__in=keys), plus the
 *                                  entry key of each pair as a hidden
 *                                  last column (a tag comes once per
 *                                  entry it is on)
 *   Tag "entry" (its reverse)      Entry.filter(tags__in=keys), likewise
 *
 * A nested path ("entries__tags") is one relation per level, each with the
 * index of the level above, whose rows are its parents; the levels are
 * recorded parents first, so the facade reads them in order.
 *
 * The hidden column is the same path as the filter's, so it reads the
 * join the filter made (join groups: a path resolved when compiling
 * reuses the most recent join of its path), and it is described with
 * relation -1:
 * rows.c counts it in no row's columns, so the related rows look exactly
 * like the target model's rows.
 */
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"

/* The relation called s[0..n) of model m (one level of path) into it. */
static int resolve_level(dorm_query *q, const dorm_model *m, const char *path,
                         const char *s, size_t n, prefetch_item *it) {
  const dorm_field *f = dorm__find_field(m, s, n);
  /* "author_id" and "pk" are columns, not the relation's name */
  if (f && (strlen(f->name) != n || memcmp(f->name, s, n))) f = NULL;
  if (f) {
    if (dorm__is_fk(f))
      it->kind = DORM_PREFETCH_FORWARD;
    else if (f->type == DORM_FIELD_MANY_TO_MANY)
      it->kind = DORM_PREFETCH_M2M;
    else
      return dorm__qerr(q, DORM_EFIELD,
                        "model '%s', prefetch_related '%s': field '%.*s' is "
                        "not a relation (foreign key, one-to-one, "
                        "many_to_many or reverse relation) of '%s'",
                        q->model->name, path, (int)n, s, m->name);
    it->field = f;
    it->from = m;
    return 0;
  }
  const dorm_field *rev = n ? dorm__find_reverse(m, s, n) : NULL;
  if (!rev)
    return dorm__qerr(q, DORM_EFIELD,
                      "model '%s', prefetch_related '%s': unknown field or "
                      "relation '%.*s' of '%s'",
                      q->model->name, path, (int)n, s, m->name);
  it->kind = rev->type == DORM_FIELD_MANY_TO_MANY ? DORM_PREFETCH_M2M_REVERSE
                                                  : DORM_PREFETCH_REVERSE;
  it->field = rev;
  it->from = m;
  return 0;
}

static const dorm_model *target_of(const prefetch_item *it) {
  return it->kind == DORM_PREFETCH_FORWARD || it->kind == DORM_PREFETCH_M2M
             ? it->field->target
             : it->field->model;
}

int dorm__prefetch_add(dorm_query *q, const char *path) {
  if (!path || !*path)
    return dorm__qerr(q, DORM_EFIELD, "model '%s': empty prefetch_related name",
                      q->model->name);
  /* Each level is recorded once, in the order first named, so a level's
   * parent always comes before it: "entries__tags" records "entries" (as
   * Django does) unless it is there already.  Nothing is recorded unless
   * the whole path resolves. */
  prefetch_item lv[DORM__MAX_HOPS];
  size_t end[DORM__MAX_HOPS];
  int nl = 0;
  const dorm_model *m = q->model;
  for (const char *s = path; s;) {
    const char *e = dorm__find_sep(s);
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (nl == DORM__MAX_HOPS)
      return dorm__qerr(q, DORM_EFIELD,
                        "model '%s', prefetch_related '%s': more than %d "
                        "relations",
                        q->model->name, path, DORM__MAX_HOPS);
    memset(&lv[nl], 0, sizeof lv[nl]);
    if (resolve_level(q, m, path, s, n, &lv[nl])) return q->err.code;
    m = target_of(&lv[nl]);
    end[nl] = (size_t)(s - path) + n;
    nl++;
    s = e ? e + 2 : NULL;
  }
  int parent = -1;
  for (int l = 0; l < nl; l++) {
    int idx = 0, found = -1;
    for (const prefetch_item *it = q->prefetch; it; it = it->next, idx++)
      if (strlen(it->path) == end[l] && !memcmp(it->path, path, end[l]))
        found = idx;
    if (found >= 0) {
      parent = found;
      continue;
    }
    prefetch_item *it = dorm__qalloc(q, sizeof *it);
    char *copy = dorm__qalloc(q, end[l] + 1);
    if (!it || !copy) return DORM_ENOMEM;
    *it = lv[l];
    memcpy(copy, path, end[l]);
    copy[end[l]] = '\0';
    it->path = copy;
    it->name = copy + (l ? end[l - 1] + 2 : 0);
    it->parent = parent;
    it->next = NULL;
    if (q->prefetch_tail)
      q->prefetch_tail->next = it;
    else
      q->prefetch = it;
    q->prefetch_tail = it;
    parent = (int)q->nprefetch++;
  }
  return 0;
}

size_t dorm_query_prefetch_count(const dorm_query *q) {
  return q ? q->nprefetch : 0;
}

int dorm_query_prefetch(const dorm_query *q, size_t i, dorm_prefetch *out) {
  if (!q || !out) return DORM_EINVAL;
  const prefetch_item *it = q->prefetch;
  while (it && i--) it = it->next;
  if (!it) return DORM_EINVAL;
  const dorm_field *f = it->field;
  memset(out, 0, sizeof *out);
  out->name = it->name;
  out->path = it->path;
  out->parent = it->parent;
  out->kind = (dorm_prefetch_kind)it->kind;
  out->field = f;
  out->target = target_of(it);
  out->parent_key = it->from->pk->name;
  if (out->kind == DORM_PREFETCH_FORWARD) {
    out->parent_key = f->name;
    out->child_key = f->target->pk->name;
  } else if (out->kind == DORM_PREFETCH_REVERSE) {
    out->child_key = f->name;
  }
  return 0;
}

/* The path from p's target back to the parent, as a filter would write
 * it: "pk", "author", "entry" (the m2m's reverse name), "tags". */
static void back_path(const dorm_prefetch *p, char *buf, size_t cap) {
  const dorm_field *f = p->field;
  switch (p->kind) {
    case DORM_PREFETCH_FORWARD: snprintf(buf, cap, "pk"); return;
    case DORM_PREFETCH_REVERSE:
    case DORM_PREFETCH_M2M_REVERSE: snprintf(buf, cap, "%s", f->name); return;
    case DORM_PREFETCH_M2M: {
      char name[DORM_IDENT_MAX + 1];
      snprintf(buf, cap, "%s", dorm_field_reverse_name(f, name, sizeof name));
      return;
    }
  }
}

dorm_query *dorm_prefetch_select(const dorm_prefetch *p, const dorm_value *keys,
                                 size_t n) {
  if (!p || !p->target) return NULL;
  dorm_query *q = dorm_select(p->target);
  if (!q) return NULL;
  /* the related rows of one parent in the target's order, as Django's
   * related manager gives them; pk order when the model has none, so the
   * result does not depend on the plan the database picks */
  if (!p->target->nordering) dorm_order_by(q, "pk");
  char path[DORM_IDENT_MAX + 8];
  back_path(p, path, sizeof path - 4);
  if (p->kind == DORM_PREFETCH_M2M || p->kind == DORM_PREFETCH_M2M_REVERSE) {
    path_item *it = dorm__qalloc(q, sizeof *it);
    if (it) {
      memset(it, 0, sizeof *it);
      if (!dorm__resolve_path(q, q->model, path, 0, &it->path)) {
        it->name = it->path.text;
        q->prefetch_key = it;
      }
    }
  }
  strcat(path, "__in");
  if (!keys || !n)
    dorm__qerr(q, DORM_EINVAL, "model '%s', prefetch '%s': no keys",
               p->target->name, path);
  else
    dorm_filter(q, path, dorm_list(keys, n));
  return q;
}
