/* SPDX-License-Identifier: MIT */
/* schema/model_json.c — a schema written back as models.json, in one
 * canonical form.
 *
 * The autodetector compares models through this form: both the state the
 * migrations build and the models file are loaded as schemas (so defaults,
 * derived columns and names are resolved the same way) and then written
 * out here; two fields are the same when their JSON is equal.  Migration
 * files carry fields in this form too, and `dorm inspectdb` prints it.
 *
 * Canonical means: keys at their default value are left out (null,
 * unique, db_index false; db_column equal to the derived column; an index
 * name equal to the derived one), except that a relation always says its
 * on_delete and a model always says its table and lists its primary key,
 * because those are what a reader looks for.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "dorm/migration.h"
#include "schema/schema_int.h"

static const char *const on_delete_names[] = {
    "cascade", "protect", "restrict", "set_null", "set_default", "do_nothing"};

/* A value of a default or a choice as JSON; NULL when out of memory. */
static json_t *value_json(dorm_value v) {
  switch (v.type) {
    case DORM_T_NULL: return json_null();
    case DORM_T_BOOL: return json_boolean(v.u.b);
    case DORM_T_INT: return json_integer(v.u.i);
    case DORM_T_FLOAT: return json_real(v.u.f);
    case DORM_T_JSON: {
      /* The text was checked as JSON when the schema was built (a JSON
       * field's default and choices are coerced, schema/fields.c), so a
       * failed parse is out of memory, even when jansson reports it as a
       * syntax error. */
      return json_loadb(v.u.s.ptr, v.u.s.len, JSON_DECODE_ANY, NULL);
    }
    case DORM_T_LIST: {
      json_t *a = json_array();
      for (size_t i = 0; a && i < v.u.list.n; i++)
        if (json_array_append_new(a, value_json(v.u.list.items[i]))) {
          json_decref(a);
          return NULL;
        }
      return a;
    }
    case DORM_T_EXPR: return json_null();
    default: {
      /* text-like: the canonical text form; bytes that are not UTF-8
       * cannot be JSON strings and are left out by the caller. */
      json_t *s = json_stringn(v.u.s.ptr, v.u.s.len);
      return s;
    }
  }
}

json_t *dorm_field_to_json(const dorm_field *f) {
  json_t *o = json_object();
  if (!o) return NULL;
  int rc = 0;
  int rel = f->type == DORM_FIELD_FOREIGN_KEY ||
            f->type == DORM_FIELD_ONE_TO_ONE ||
            f->type == DORM_FIELD_MANY_TO_MANY;
  rc |= json_object_set_new(o, "name", json_string(f->name));
  rc |= json_object_set_new(o, "type",
                            json_string(dorm_field_type_name(f->type)));
  if (f->flags & DORM_FIELD_PRIMARY_KEY)
    rc |= json_object_set_new(o, "primary_key", json_true());
  if (f->type == DORM_FIELD_VARCHAR)
    rc |= json_object_set_new(o, "max_length", json_integer(f->max_length));
  if (f->type == DORM_FIELD_DECIMAL && (f->max_digits || f->decimal_places)) {
    rc |= json_object_set_new(o, "max_digits", json_integer(f->max_digits));
    rc |= json_object_set_new(o, "decimal_places",
                              json_integer(f->decimal_places));
  }
  if (rel) {
    const char *to = f->target ? f->target->name : f->to;
    rc |= json_object_set_new(o, "to", json_string(to ? to : "?"));
    if (f->type != DORM_FIELD_MANY_TO_MANY)
      rc |= json_object_set_new(o, "on_delete",
                                json_string(on_delete_names[f->on_delete % 6]));
    if (f->related_name)
      rc |=
          json_object_set_new(o, "related_name", json_string(f->related_name));
  }
  if (f->flags & DORM_FIELD_NULL)
    rc |= json_object_set_new(o, "null", json_true());
  if ((f->flags & DORM_FIELD_UNIQUE) && !(f->flags & DORM_FIELD_PRIMARY_KEY) &&
      f->type != DORM_FIELD_ONE_TO_ONE)
    rc |= json_object_set_new(o, "unique", json_true());
  if (f->flags & DORM_FIELD_DB_INDEX)
    rc |= json_object_set_new(o, "db_index", json_true());
  if (f->column) {
    char col[DORM_IDENT_MAX + 4];
    snprintf(
        col, sizeof col, "%s%s", f->name,
        (f->type == DORM_FIELD_FOREIGN_KEY || f->type == DORM_FIELD_ONE_TO_ONE)
            ? "_id"
            : "");
    if (strcmp(col, f->column))
      rc |= json_object_set_new(o, "db_column", json_string(f->column));
  }
  /* a text default that is not UTF-8 has no JSON form: left out */
  dorm_value dv = f->default_value;
  int text_like = dv.type != DORM_T_NULL && dv.type != DORM_T_BOOL &&
                  dv.type != DORM_T_INT && dv.type != DORM_T_FLOAT &&
                  dv.type != DORM_T_JSON && dv.type != DORM_T_LIST &&
                  dv.type != DORM_T_EXPR;
  if ((f->flags & DORM_FIELD_HAS_DEFAULT) &&
      !(text_like &&
        dorm__utf8_valid(dv.u.s.ptr, dv.u.s.len) != dv.u.s.len))
    rc |= json_object_set_new(o, "default", value_json(dv));
  if (f->choices && f->nchoices) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < f->nchoices; i++) {
      json_t *v = value_json(f->choices[i]);
      if (f->choice_labels && f->choice_labels[i])
        v = json_pack("[os]", v, f->choice_labels[i]);
      rc |= json_array_append_new(a, v);
    }
    rc |= a ? json_object_set_new(o, "choices", a) : -1;
  }
  if (rc) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* The name the builder derives for an index of these fields (schema/check.c
 * derived_name): "<table>_<fields>_idx" / "_uniq", cut with a hash. */
static void derived_index_name(const char *table, const dorm_index *ix,
                               char *out) {
  char base[1024];
  size_t p = (size_t)snprintf(base, sizeof base, "%s", table);
  for (size_t i = 0; i < ix->nfields && p < sizeof base - 70; i++)
    p += (size_t)snprintf(base + p, sizeof base - p, "_%s", ix->fields[i]);
  const char *suffix = ix->unique ? "_uniq" : "_idx";
  size_t sl = strlen(suffix);
  if (p + sl <= DORM_IDENT_MAX) {
    memcpy(out, base, p);
    memcpy(out + p, suffix, sl + 1);
    return;
  }
  uint32_t h = dorm__hash32(base, p, DORM__HASH32_INIT);
  h = dorm__hash32(suffix, sl, h);
  size_t keep = DORM_IDENT_MAX - 9 - sl;
  memcpy(out, base, keep);
  snprintf(out + keep, DORM_IDENT_MAX + 1 - keep, "_%08x%s", (unsigned)h,
           suffix);
}

static json_t *names_json(const char *const *names, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++)
    if (json_array_append_new(a, json_string(names[i]))) {
      json_decref(a);
      return NULL;
    }
  return a;
}

json_t *dorm_model_to_json(const dorm_model *m) {
  json_t *o = json_object();
  json_t *fields = json_array();
  int rc = (!o || !fields) ? -1 : 0;
  if (!rc) {
    rc |= json_object_set_new(o, "name", json_string(m->name));
    rc |= json_object_set_new(o, "table", json_string(m->table));
  }
  for (size_t i = 0; !rc && i < m->nfields; i++)
    rc |= json_array_append_new(fields, dorm_field_to_json(&m->fields[i]));
  if (!rc) {
    rc |= json_object_set_new(o, "fields", fields);
    fields = NULL;
  }
  if (!rc && m->nindexes) {
    json_t *a = json_array();
    int arc = a ? 0 : -1;
    for (size_t i = 0; !arc && i < m->nindexes; i++) {
      const dorm_index *ix = &m->indexes[i];
      char dn[DORM_IDENT_MAX + 1];
      derived_index_name(m->table, ix, dn);
      json_t *jo = json_object();
      if (!jo) {
        arc = -1;
        break;
      }
      if (strcmp(dn, ix->name))
        arc |= json_object_set_new(jo, "name", json_string(ix->name));
      arc |= json_object_set_new(
          jo, "fields",
          names_json((const char *const *)ix->fields, ix->nfields));
      if (ix->unique) arc |= json_object_set_new(jo, "unique", json_true());
      if (arc)
        json_decref(jo);
      else
        arc |= json_array_append_new(a, jo);
    }
    if (arc) json_decref(a);
    rc |= arc ? -1 : json_object_set_new(o, "indexes", a);
  }
  if (!rc && m->nunique_together) {
    json_t *a = json_array();
    int arc = a ? 0 : -1;
    for (size_t i = 0; !arc && i < m->nunique_together; i++)
      arc |= json_array_append_new(
          a, names_json((const char *const *)m->unique_together[i].fields,
                        m->unique_together[i].nfields));
    if (arc) json_decref(a);
    rc |= arc ? -1 : json_object_set_new(o, "unique_together", a);
  }
  if (!rc && m->nordering)
    rc |= json_object_set_new(
        o, "ordering",
        names_json((const char *const *)m->ordering, m->nordering));
  json_decref(fields);
  if (rc) {
    json_decref(o);
    return NULL;
  }
  return o;
}

json_t *dorm_schema_to_json(const dorm_schema *s) {
  json_t *a = json_array();
  for (size_t i = 0; a && s && i < s->nmodels; i++)
    if (json_array_append_new(a, dorm_model_to_json(&s->models[i]))) {
      json_decref(a);
      return NULL;
    }
  if (!a) return NULL;
  json_t *doc = json_object();
  if (!doc) {
    json_decref(a); /* the models array, built for nothing */
    return NULL;
  }
  if (json_object_set_new(doc, "models", a)) { /* a is released */
    json_decref(doc);
    return NULL;
  }
  return doc;
}
