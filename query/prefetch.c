/* query/prefetch.c — the pure half of prefetch_related: which relation a
 * name means, and the SELECT that reads a relation's rows for a set of
 * parent keys.
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
 * The hidden column is the same path as the filter's, so it reads the
 * join the filter made (join groups: a path outside the filters reuses
 * the first join of its path), and it is described with relation -1:
 * rows.c counts it in no row's columns, so the related rows look exactly
 * like the target model's rows.
 */
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"

int dorm__prefetch_resolve(dorm_query *q, const char *name, prefetch_item *it) {
  const dorm_model *m = q->model;
  memset(it, 0, sizeof *it);
  if (!name || !*name)
    return dorm__qerr(q, DORM_EFIELD, "model '%s': empty prefetch_related name",
                      m->name);
  if (dorm__find_sep(name))
    return dorm__qerr(q, DORM_EUNSUPPORTED,
                      "model '%s', prefetch_related '%s': nested paths are "
                      "not supported (one relation of '%s')",
                      m->name, name, m->name);
  size_t n = strlen(name);
  const dorm_field *f = dorm__find_field(m, name, n);
  /* "author_id" and "pk" are columns, not the relation's name */
  if (f && strcmp(f->name, name)) f = NULL;
  if (f) {
    if (dorm__is_fk(f))
      it->kind = DORM_PREFETCH_FORWARD;
    else if (f->type == DORM_FIELD_MANY_TO_MANY)
      it->kind = DORM_PREFETCH_M2M;
    else
      return dorm__qerr(q, DORM_EFIELD,
                        "model '%s', prefetch_related '%s': field '%s' is "
                        "not a relation (foreign key, one-to-one, "
                        "many_to_many or reverse relation) of '%s'",
                        m->name, name, name, m->name);
    it->field = f;
    return 0;
  }
  const dorm_field *rev = dorm__find_reverse(m, name, n);
  if (!rev)
    return dorm__qerr(q, DORM_EFIELD,
                      "model '%s', prefetch_related '%s': unknown field or "
                      "relation '%s' of '%s'",
                      m->name, name, name, m->name);
  it->kind = rev->type == DORM_FIELD_MANY_TO_MANY ? DORM_PREFETCH_M2M_REVERSE
                                                  : DORM_PREFETCH_REVERSE;
  it->field = rev;
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
  out->kind = (dorm_prefetch_kind)it->kind;
  out->field = f;
  switch (out->kind) {
    case DORM_PREFETCH_FORWARD:
      out->target = f->target;
      out->parent_key = f->name;
      out->child_key = f->target->pk->name;
      break;
    case DORM_PREFETCH_REVERSE:
      out->target = f->model;
      out->parent_key = q->model->pk->name;
      out->child_key = f->name;
      break;
    case DORM_PREFETCH_M2M:
      out->target = f->target;
      out->parent_key = q->model->pk->name;
      break;
    case DORM_PREFETCH_M2M_REVERSE:
      out->target = f->model;
      out->parent_key = q->model->pk->name;
      break;
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
    case DORM_PREFETCH_M2M:
      if (f->related_name) {
        snprintf(buf, cap, "%s", f->related_name);
        return;
      }
      /* Django's default query name: the lower-cased model name, as
       * paths.c's reverse_name_is reads it */
      snprintf(buf, cap, "%s", f->model->name);
      for (char *s = buf; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
      return;
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
