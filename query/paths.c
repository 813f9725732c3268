/* SPDX-License-Identifier: MIT */
/* query/paths.c — resolving field paths ("entry__author__name__icontains").
 *
 * A path names fields across relations (forward foreign keys, reverse
 * relations by related_name, many-to-many both ways), then optionally a
 * transform and a lookup.  It is resolved when the builder call is made,
 * against the model, so a typo is reported with the words the user typed;
 * only names found in the model ever reach SQL.
 */
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"

/* ---- field paths -------------------------------------------------------- */

/* The next "__" separator, or NULL (strstr is slower for two bytes). */
const char *dorm__find_sep(const char *s) {
  while ((s = strchr(s, '_')) != NULL) {
    if (s[1] == '_') return s;
    s++;
  }
  return NULL;
}

/* Is s[0..n) the name field f (on another model) is reached by? */
static int reverse_name_is(const dorm_field *f, const char *s, size_t n) {
  char buf[DORM_IDENT_MAX + 1];
  const char *name = dorm_field_reverse_name(f, buf, sizeof buf);
  return strlen(name) == n && !memcmp(name, s, n);
}

/* Find a relation on another model that points at `model` and is named
 * s[0..n) from this side. */
const dorm_field *dorm__find_reverse(const dorm_model *model, const char *s,
                                     size_t n) {
  const dorm_schema *sc = model->schema;
  if (!sc) return NULL;
  for (size_t i = 0; i < sc->nmodels; i++) {
    const dorm_model *m = &sc->models[i];
    for (size_t j = 0; j < m->nfields; j++) {
      const dorm_field *f = &m->fields[j];
      if (f->target == model &&
          (dorm__is_fk(f) || f->type == DORM_FIELD_MANY_TO_MANY) &&
          reverse_name_is(f, s, n))
        return f;
    }
  }
  return NULL;
}

const dorm_field *dorm__find_field(const dorm_model *m, const char *s,
                                   size_t n) {
  if (n == 2 && s[0] == 'p' && s[1] == 'k') return m->pk;
  for (size_t i = 0; i < m->nfields; i++) {
    /* compare in place: names are short, a call to strncmp costs more */
    const char *name = m->fields[i].name;
    if (name[0] != s[0]) continue;
    size_t k = 1;
    while (k < n && name[k] == s[k]) k++;
    if (k == n && name[k] == '\0') return &m->fields[i];
  }
  /* "author_id": a foreign key by its column's attribute name */
  if (n > 3 && !memcmp(s + n - 3, "_id", 3)) {
    for (size_t i = 0; i < m->nfields; i++) {
      const dorm_field *f = &m->fields[i];
      if (dorm__is_fk(f) && !strncmp(f->name, s, n - 3) &&
          f->name[n - 3] == '\0')
        return f;
    }
  }
  return NULL;
}

/* After a hop to model m: does "rest" name a lookup or transform (rather
 * than a field of m)?  "entries__isnull" compares the related key. */
static int ends_in_lookup(const dorm_model *m, const char *rest) {
  const char *e = dorm__find_sep(rest);
  size_t n = e ? (size_t)(e - rest) : strlen(rest);
  if (dorm__find_field(m, rest, n) || dorm__find_reverse(m, rest, n)) return 0;
  return dorm__lookup_parse(rest, n) >= 0 ||
         dorm__transform_parse(rest, n) >= 0;
}

static int is_date_like(const dorm_field *f) {
  return f->type == DORM_FIELD_DATE || f->type == DORM_FIELD_DATETIME ||
         f->type == DORM_FIELD_TIME;
}

static int transform_ok(const dorm_field *f, transform_kind t) {
  switch (t) {
    case TR_YEAR:
    case TR_MONTH:
    case TR_DAY:
    case TR_WEEK_DAY:
      return f->type == DORM_FIELD_DATE || f->type == DORM_FIELD_DATETIME;
    case TR_HOUR:
    case TR_MINUTE:
      return f->type == DORM_FIELD_DATETIME || f->type == DORM_FIELD_TIME;
    case TR_DATE: return f->type == DORM_FIELD_DATETIME;
    default: return 0;
  }
}

const annotation *dorm__find_annotation(const dorm_query *q, const char *s,
                                        size_t n, int *index) {
  int i = 0;
  for (const annotation *a = q->annots; a; a = a->next, i++)
    if (strlen(a->alias) == n && !memcmp(a->alias, s, n)) {
      *index = i;
      return a;
    }
  return NULL;
}

/* What the user wrote, in their words: a filter's key is a lookup; an
 * order_by, values or F() path is a field path. */
static const char *path_word(int allow_lookup) {
  return allow_lookup ? "lookup" : "field path";
}

/* " (did you mean 'name'?)" for an unknown field s[0..n) of m: its
 * fields, "pk", and the relations that point at it. */
static void field_hint(const dorm_model *m, const char *s, size_t n, char *buf,
                       size_t len) {
  char rev[8][DORM_IDENT_MAX + 1];
  size_t nrev = 0;
  dorm__suggest sg;
  dorm__suggest_init(&sg, s, n);
  dorm__suggest_add(&sg, "pk");
  for (size_t i = 0; i < m->nfields; i++)
    dorm__suggest_add(&sg, m->fields[i].name);
  const dorm_schema *sc = m->schema;
  for (size_t i = 0; sc && i < sc->nmodels; i++)
    for (size_t j = 0; j < sc->models[i].nfields && nrev < 8; j++) {
      const dorm_field *f = &sc->models[i].fields[j];
      if (f->target != m ||
          !(dorm__is_fk(f) || f->type == DORM_FIELD_MANY_TO_MANY))
        continue;
      const char *name = dorm_field_reverse_name(f, rev[nrev], sizeof rev[0]);
      if (name != rev[nrev]) {
        dorm__suggest_add(&sg, name);
      } else {
        dorm__suggest_add(&sg, rev[nrev++]);
      }
    }
  if (sg.best)
    snprintf(buf, len, " (did you mean '%s'?)", sg.best);
  else
    buf[0] = '\0';
}

/* The same for an unknown lookup or transform. */
static void lookup_hint(const char *s, char *buf, size_t len) {
  dorm__suggest sg;
  dorm__suggest_init(&sg, s, strlen(s));
  for (int k = 0; k < LK__COUNT; k++)
    dorm__suggest_add(&sg, dorm__lookup_name((lookup_kind)k));
  for (int k = 1; k < TR__COUNT; k++)
    dorm__suggest_add(&sg, dorm__transform_name((transform_kind)k));
  if (sg.best)
    snprintf(buf, len, " (did you mean '%s'?)", sg.best);
  else
    buf[0] = '\0';
}

/* The lookup at the end of a path (s, its first part of length n ending
 * at e): set out->lookup or record why it is refused. */
static int lookup_tail(dorm_query *q, const dorm_model *model, const char *text,
                       dorm_path *out, const char *s, const char *e, size_t n,
                       int allow_lookup) {
  int lk = dorm__lookup_parse(s, n);
  const char *fname = out->annotation ? "(annotation)" : out->field->name;
  if (lk < 0 || e) {
    if (dorm__transform_parse(s, n) > 0 && out->field &&
        !is_date_like(out->field))
      return dorm__qerr(q, DORM_ELOOKUP,
                        "model '%s', field '%s', %s '%s': transform "
                        "'%.*s' does not apply to a %s field",
                        model->name, fname, path_word(allow_lookup), text,
                        (int)n, s, dorm_field_type_name(out->field->type));
    char hint[80];
    lookup_hint(s, hint, sizeof hint);
    return dorm__qerr(q, DORM_ELOOKUP,
                      "model '%s', field '%s', %s '%s': unknown lookup "
                      "or transform '%s'%s",
                      model->name, fname, path_word(allow_lookup), text, s,
                      hint);
  }
  if (!allow_lookup)
    return dorm__qerr(q, DORM_ELOOKUP,
                      "model '%s', field '%s': '%s' names a lookup ('%.*s') "
                      "where a field was expected",
                      model->name, fname, text, (int)n, s);
  out->lookup = (uint8_t)lk;
  return 0;
}

int dorm__resolve_path(dorm_query *q, const dorm_model *model, const char *text,
                       int flags, dorm_path *out) {
  if (q->has_err) return q->err.code;
  int allow_lookup = flags & DORM__PATH_LOOKUP;
  memset(out, 0, sizeof *out);
  if (!text || !*text)
    return dorm__qerr(q, DORM_EFIELD, "model '%s': empty field path",
                      model->name);
  out->text = (flags & DORM__PATH_BORROW) ? text : dorm__qstrdup(q, text);
  if (!out->text) return DORM_ENOMEM;
  out->lookup = LK_EXACT;

  dorm_hop hops[DORM__MAX_HOPS];
  int nhops = 0;
  const dorm_model *m = model;
  const dorm_field *final = NULL;
  const char *s = text;

  /* An annotation alias as the first part (filter on annotate()). */
  if (q->nannots) {
    const char *e = dorm__find_sep(s);
    size_t n = e ? (size_t)(e - s) : strlen(s);
    int idx;
    if (!dorm__find_field(m, s, n) && dorm__find_annotation(q, s, n, &idx)) {
      out->annotation = 1;
      out->annotation_index = idx;
      out->model = m;
      s = e ? e + 2 : s + n;
      goto tail;
    }
  }

  for (;;) {
    const char *e = dorm__find_sep(s);
    size_t n = e ? (size_t)(e - s) : strlen(s);
    const dorm_field *f = dorm__find_field(m, s, n);
    const dorm_field *rev = f ? NULL : dorm__find_reverse(m, s, n);
    if (!f && !rev) {
      char hint[DORM_IDENT_MAX + 32];
      field_hint(m, s, n, hint, sizeof hint);
      if (final == NULL && nhops == 0)
        return dorm__qerr(
            q, DORM_EFIELD, "model '%s', %s '%s': unknown field '%.*s'%s",
            model->name, path_word(allow_lookup), text, (int)n, s, hint);
      return dorm__qerr(q, DORM_EFIELD,
                        "model '%s', %s '%s': model '%s' has no field "
                        "'%.*s'%s",
                        model->name, path_word(allow_lookup), text, m->name,
                        (int)n, s, hint);
    }
    const char *next = e ? e + 2 : NULL;
    if (e && !*next)
      return dorm__qerr(q, DORM_EFIELD, "model '%s', %s '%s': trailing '__'",
                        model->name, path_word(allow_lookup), text);
    if (nhops >= DORM__MAX_HOPS)
      return dorm__qerr(
          q, DORM_EFIELD, "model '%s', %s '%s': more than %d relations",
          model->name, path_word(allow_lookup), text, DORM__MAX_HOPS);
    dorm_hop *h = &hops[nhops];
    if (rev) {
      h->kind =
          rev->type == DORM_FIELD_MANY_TO_MANY ? HOP_M2M_REVERSE : HOP_REVERSE;
      h->field = rev;
      h->from = m;
      h->to = rev->model;
      h->multi = rev->type != DORM_FIELD_ONE_TO_ONE;
      h->nullable = 1;
      nhops++;
      m = rev->model;
      if (!next || ends_in_lookup(m, next)) { /* entries, entries__isnull */
        final = m->pk;
        s = next;
        break;
      }
      s = next;
      continue;
    }
    if (f->type == DORM_FIELD_MANY_TO_MANY) {
      h->kind = HOP_M2M;
      h->field = f;
      h->from = m;
      h->to = f->target;
      h->multi = 1;
      h->nullable = 1;
      nhops++;
      m = f->target;
      if (!next || ends_in_lookup(m, next)) { /* tags, tags__in */
        final = m->pk;
        s = next;
        break;
      }
      s = next;
      continue;
    }
    if (dorm__is_fk(f) && next) {
      /* author__id / author__pk: the foreign key column itself, no join
       * (as Django does).  Anything else continues on the target. */
      const char *e2 = dorm__find_sep(next);
      size_t n2 = e2 ? (size_t)(e2 - next) : strlen(next);
      const dorm_field *tf = dorm__find_field(f->target, next, n2);
      int is_lookup_next = !tf && (dorm__lookup_parse(next, n2) >= 0 ||
                                   dorm__transform_parse(next, n2) >= 0);
      if (is_lookup_next) {
        final = f;
        s = next;
        break;
      }
      if (tf == f->target->pk) {
        const char *after = e2 ? e2 + 2 : NULL;
        int more_fields = 0;
        if (after) {
          const char *e3 = dorm__find_sep(after);
          size_t n3 = e3 ? (size_t)(e3 - after) : strlen(after);
          more_fields =
              dorm__find_field(f->target->pk->model, after, n3) != NULL;
        }
        if (!more_fields) {
          final = f;
          s = after;
          break;
        }
      }
      h->kind = HOP_FORWARD;
      h->field = f;
      h->from = m;
      h->to = f->target;
      h->multi = 0;
      h->nullable = (f->flags & DORM_FIELD_NULL) != 0;
      nhops++;
      m = f->target;
      s = next;
      continue;
    }
    final = f;
    s = next;
    break;
  }
  out->field = final;
  out->model = final->model ? final->model : m;

tail:
  /* s: NULL or "[transform__]lookup"; e and n delimit its first part */
  if (s && *s) {
    const char *e = dorm__find_sep(s);
    size_t n = e ? (size_t)(e - s) : strlen(s);
    int t = !out->annotation && is_date_like(out->field)
                ? dorm__transform_parse(s, n)
                : -1;
    if (t > 0) {
      if (!transform_ok(out->field, (transform_kind)t))
        return dorm__qerr(q, DORM_ELOOKUP,
                          "model '%s', field '%s', %s '%s': transform "
                          "'%.*s' does not apply to a %s field",
                          model->name, out->field->name,
                          path_word(allow_lookup), text, (int)n, s,
                          dorm_field_type_name(out->field->type));
      out->transform = (uint8_t)t;
      s = e ? e + 2 : NULL;
      if (s) {
        e = dorm__find_sep(s);
        n = e ? (size_t)(e - s) : strlen(s);
      }
    }
    if (s && *s && lookup_tail(q, model, text, out, s, e, n, allow_lookup))
      return q->err.code;
  }

  if (nhops) {
    dorm_hop *hp = dorm__qalloc(q, sizeof(dorm_hop) * (size_t)nhops);
    if (!hp) return DORM_ENOMEM;
    memcpy(hp, hops, sizeof(dorm_hop) * (size_t)nhops);
    out->hops = hp;
    out->nhops = (uint8_t)nhops;
    q->has_hops = 1; /* the compiler's join pass is needed */
  }
  return 0;
}
