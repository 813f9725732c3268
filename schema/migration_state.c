/* SPDX-License-Identifier: MIT */
/* schema/migration_state.c — the models as the migrations describe them.
 *
 * The state is a JSON object of models keyed by name, each in the
 * models.json shape (name, table, fields, indexes, unique_together,
 * ordering) plus its table constraints.  Replaying an operation edits that
 * JSON; turning the state into a dorm_schema writes it out as a
 * models.json document and runs the ordinary loader, so migrations obey
 * exactly the rules of models.json and no second set of checks can drift
 * from the first.
 *
 * Why JSON and not the builder's structs: operations arrive as JSON, leave
 * as JSON, and most of them touch one model; editing a JSON object is
 * cheap, and a schema is only built when DDL needs one — then only for the
 * models the operation touches and those they point at, which keeps
 * `migrate` linear on a project of hundreds of models.
 *
 * Each apply checks that the operation fits (the model exists, the field
 * does not yet exist, ...) before changing anything, so a failed apply
 * leaves the state as it was.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dorm/migration.h"
#include "schema/schema_int.h"

struct dorm_mstate {
  json_t *models; /* name -> model object */
};

dorm_mstate *dorm_mstate_new(void) {
  dorm_mstate *st = dorm__calloc(1, sizeof *st);
  if (!st) return NULL;
  if (!(st->models = json_object())) {
    dorm__free(st);
    return NULL;
  }
  return st;
}

dorm_mstate *dorm_mstate_copy(const dorm_mstate *src) {
  dorm_mstate *st = dorm__calloc(1, sizeof *st);
  if (!st) return NULL;
  if (!(st->models = json_deep_copy(src->models))) {
    dorm__free(st);
    return NULL;
  }
  return st;
}

void dorm_mstate_free(dorm_mstate *st) {
  if (!st) return;
  json_decref(st->models);
  dorm__free(st);
}

size_t dorm_mstate_nmodels(const dorm_mstate *st) {
  return st ? json_object_size(st->models) : 0;
}

/* ---- lookups ------------------------------------------------------------- */

/* A model by exact name, then by name in any case (as the loader resolves
 * "to"). */
static json_t *find_model(const dorm_mstate *st, const char *name,
                          const char **key_out) {
  json_t *m = json_object_get(st->models, name);
  if (m) {
    if (key_out) *key_out = json_string_value(json_object_get(m, "name"));
    return m;
  }
  const char *key;
  json_t *v;
  json_object_foreach(st->models, key, v) {
    if (!strcasecmp(key, name)) {
      if (key_out) *key_out = key;
      return v;
    }
  }
  return NULL;
}

static long field_index(const json_t *model, const char *name) {
  const json_t *fs = json_object_get(model, "fields");
  for (size_t i = 0; i < json_array_size(fs); i++)
    if (!strcmp(
            json_string_value(json_object_get(json_array_get(fs, i), "name")),
            name))
      return (long)i;
  return -1;
}

static const char *sget(const json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

/* The model a relation field of `owner` points at ("self" resolved), or
 * NULL for a field that is not a relation. */
static const char *relation_target(const json_t *owner, const json_t *f) {
  const char *to = sget(f, "to");
  if (!to) return NULL;
  if (!strcmp(to, "self")) return sget(owner, "name");
  return to;
}

const json_t *dorm_mstate_constraints(const dorm_mstate *st,
                                      const char *model) {
  json_t *m = find_model(st, model, NULL);
  return m ? json_object_get(m, "constraints") : NULL;
}

/* ---- applying ------------------------------------------------------------ */

static int nope(dorm_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int nope(dorm_error *err, const char *fmt, ...) {
  char msg[DORM_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return dorm_error_set(err, DORM_EMIGRATION, "%s", msg);
}

static void lower_into(const char *s, char *out, size_t cap) {
  size_t i = 0;
  for (; s[i] && i + 1 < cap; i++)
    out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
  out[i] = '\0';
}

/* Arrays an index or constraint matches by: name when both have one,
 * otherwise fields (and uniqueness). */
static int same_index(const json_t *a, const json_t *b) {
  const char *na = sget(a, "name"), *nb = sget(b, "name");
  if (na && nb) return !strcmp(na, nb);
  return json_equal(json_object_get(a, "fields"),
                    json_object_get(b, "fields")) &&
         json_is_true(json_object_get(a, "unique")) ==
             json_is_true(json_object_get(b, "unique"));
}

static long find_in(const json_t *arr, const json_t *item,
                    int (*eq)(const json_t *, const json_t *)) {
  for (size_t i = 0; i < json_array_size(arr); i++)
    if (eq(json_array_get(arr, i), item)) return (long)i;
  return -1;
}

static int eq_json(const json_t *a, const json_t *b) {
  return json_equal(a, b);
}

static int same_constraint(const json_t *a, const json_t *b) {
  return !strcmp(sget(a, "name"), sget(b, "name"));
}

/* Arrays the model object always has, so edits need no existence checks. */
static int ensure_arrays(json_t *m) {
  static const char *const keys[] = {"fields", "indexes", "unique_together",
                                     "ordering", "constraints"};
  for (size_t i = 0; i < 5; i++)
    if (!json_is_array(json_object_get(m, keys[i])) &&
        json_object_set_new(m, keys[i], json_array()))
      return DORM_ENOMEM;
  return 0;
}

static int apply_create(dorm_mstate *st, const json_t *op, dorm_error *err) {
  const char *name = sget(op, "name");
  if (!name) return nope(err, "a create_model without a name");
  const char *existing;
  if (find_model(st, name, &existing))
    return nope(err, "model '%s' already exists", existing);
  json_t *m = json_object();
  if (!m) return dorm_error_set(err, DORM_ENOMEM, NULL);
  char table[DORM_IDENT_MAX + 1];
  lower_into(name, table, sizeof table);
  int rc = json_object_set_new(m, "name", json_string(name));
  rc |= json_object_set_new(
      m, "table", json_string(sget(op, "table") ? sget(op, "table") : table));
  static const char *const keys[] = {"fields", "indexes", "unique_together",
                                     "ordering", "constraints"};
  for (size_t i = 0; i < 5; i++) {
    json_t *v = json_object_get(op, keys[i]);
    rc |= json_object_set_new(m, keys[i], v ? json_deep_copy(v) : json_array());
  }
  rc |= ensure_arrays(m);
  if (rc) {
    json_decref(m);
    return dorm_error_set(err, DORM_ENOMEM, NULL);
  }
  if (json_object_set_new(st->models, name, m)) /* m is released */
    return dorm_error_set(err, DORM_ENOMEM, NULL);
  return 0;
}

/* Some other model's relation that points at `name`, for the refusal
 * message; 1 when found. */
static int pointed_at(const dorm_mstate *st, const char *name,
                      const char **by_model, const char **by_field) {
  const char *key;
  json_t *m;
  json_object_foreach(st->models, key, m) {
    if (!strcmp(key, name)) continue;
    json_t *fs = json_object_get(m, "fields");
    for (size_t i = 0; i < json_array_size(fs); i++) {
      const char *t = relation_target(m, json_array_get(fs, i));
      if (t && !strcasecmp(t, name)) {
        *by_model = key;
        *by_field = sget(json_array_get(fs, i), "name");
        return 1;
      }
    }
  }
  return 0;
}

static int apply_delete(dorm_mstate *st, const json_t *op, dorm_error *err) {
  const char *key;
  if (!find_model(st, sget(op, "name"), &key))
    return nope(err, "no model '%s' to delete", sget(op, "name"));
  const char *bm, *bf;
  if (pointed_at(st, key, &bm, &bf))
    return nope(err,
                "model '%s' cannot be deleted: field '%s' of model '%s' "
                "still points at it",
                key, bf, bm);
  json_object_del(st->models, key);
  return 0;
}

static int apply_rename_model(dorm_mstate *st, const json_t *op,
                              dorm_error *err) {
  const char *oldn = sget(op, "old_name"), *newn = sget(op, "new_name");
  const char *key;
  json_t *m = find_model(st, oldn, &key);
  if (!m) return nope(err, "no model '%s' to rename", oldn);
  const char *other;
  json_t *clash = find_model(st, newn, &other);
  if (clash && clash != m)
    return nope(err, "cannot rename '%s' to '%s': that model exists", key,
                other);
  char oldkey[DORM_IDENT_MAX + 1], deflt[DORM_IDENT_MAX + 1];
  snprintf(oldkey, sizeof oldkey, "%s", key);
  json_t *copy = json_deep_copy(m);
  if (!copy) return dorm_error_set(err, DORM_ENOMEM, NULL);
  /* The table follows the name when it was the default one, as in
   * Django's RenameModel; new_table says otherwise. */
  const char *table = sget(copy, "table");
  lower_into(oldkey, deflt, sizeof deflt);
  char newtable[DORM_IDENT_MAX + 1];
  if (sget(op, "new_table"))
    snprintf(newtable, sizeof newtable, "%s", sget(op, "new_table"));
  else if (table && strcmp(table, deflt))
    snprintf(newtable, sizeof newtable, "%s", table);
  else
    lower_into(newn, newtable, sizeof newtable);
  int rc = json_object_set_new(copy, "name", json_string(newn));
  rc |= json_object_set_new(copy, "table", json_string(newtable));
  if (rc) {
    json_decref(copy);
    return dorm_error_set(err, DORM_ENOMEM, NULL);
  }
  /* Every relation that pointed at the old name now says the new one. */
  const char *k;
  json_t *om;
  json_object_foreach(st->models, k, om) {
    json_t *fs = json_object_get(om == m ? copy : om, "fields");
    for (size_t i = 0; i < json_array_size(fs); i++) {
      json_t *f = json_array_get(fs, i);
      const char *to = sget(f, "to");
      if (to && strcmp(to, "self") && !strcasecmp(to, oldkey) &&
          json_object_set_new(f, "to", json_string(newn))) {
        json_decref(copy);
        return dorm_error_set(err, DORM_ENOMEM, NULL);
      }
    }
  }
  json_object_del(st->models, oldkey);
  if (json_object_set_new(st->models, newn, copy))
    return dorm_error_set(err, DORM_ENOMEM, NULL);
  return 0;
}

static json_t *model_for(dorm_mstate *st, const json_t *op, dorm_error *err) {
  json_t *m = find_model(st, sget(op, "model"), NULL);
  if (!m) nope(err, "no model '%s'", sget(op, "model"));
  return m;
}

/* Rename field references inside a list of names ("name" / "-name"). */
static int rename_in_names(json_t *arr, const char *oldn, const char *newn,
                           int signed_ok) {
  for (size_t i = 0; i < json_array_size(arr); i++) {
    const char *s = json_string_value(json_array_get(arr, i));
    if (!s) continue;
    int neg = signed_ok && s[0] == '-';
    if (!strcmp(s + neg, oldn)) {
      char buf[DORM_IDENT_MAX + 2];
      snprintf(buf, sizeof buf, "%s%s", neg ? "-" : "", newn);
      if (json_array_set_new(arr, i, json_string(buf))) return DORM_ENOMEM;
    }
  }
  return 0;
}

static int apply_field_op(dorm_mstate *st, const json_t *op, int kind,
                          dorm_error *err) {
  json_t *m = model_for(st, op, err);
  if (!m) return DORM_EMIGRATION;
  json_t *fs = json_object_get(m, "fields");
  const json_t *f = json_object_get(op, "field");
  const char *mn = sget(m, "name");
  switch (kind) {
    case DORM_OP_ADD_FIELD: {
      const char *fname = sget(f, "name");
      if (field_index(m, fname) >= 0)
        return nope(err, "model '%s' already has a field '%s'", mn, fname);
      if (json_array_append_new(fs, json_deep_copy(f)))
        return dorm_error_set(err, DORM_ENOMEM, NULL);
      return 0;
    }
    case DORM_OP_REMOVE_FIELD: {
      long i = field_index(m, sget(f, "name"));
      if (i < 0)
        return nope(err, "model '%s' has no field '%s'", mn, sget(f, "name"));
      json_array_remove(fs, (size_t)i);
      return 0;
    }
    case DORM_OP_ALTER_FIELD: {
      long i = field_index(m, sget(f, "name"));
      if (i < 0)
        return nope(err, "model '%s' has no field '%s'", mn, sget(f, "name"));
      if (json_array_set_new(fs, (size_t)i, json_deep_copy(f)))
        return dorm_error_set(err, DORM_ENOMEM, NULL);
      return 0;
    }
    case DORM_OP_RENAME_FIELD: {
      const char *oldn = sget(op, "old_name"), *newn = sget(op, "new_name");
      long i = field_index(m, oldn);
      if (i < 0) return nope(err, "model '%s' has no field '%s'", mn, oldn);
      if (field_index(m, newn) >= 0)
        return nope(err, "model '%s' already has a field '%s'", mn, newn);
      int rc = json_object_set_new(json_array_get(fs, (size_t)i), "name",
                                   json_string(newn));
      json_t *ix = json_object_get(m, "indexes");
      for (size_t k = 0; k < json_array_size(ix); k++)
        rc |= rename_in_names(json_object_get(json_array_get(ix, k), "fields"),
                              oldn, newn, 0);
      json_t *ut = json_object_get(m, "unique_together");
      for (size_t k = 0; k < json_array_size(ut); k++)
        rc |= rename_in_names(json_array_get(ut, k), oldn, newn, 0);
      json_t *cons = json_object_get(m, "constraints");
      for (size_t k = 0; k < json_array_size(cons); k++)
        rc |= rename_in_names(
            json_object_get(json_array_get(cons, k), "fields"), oldn, newn, 0);
      rc |= rename_in_names(json_object_get(m, "ordering"), oldn, newn, 1);
      if (rc) return dorm_error_set(err, DORM_ENOMEM, NULL);
      return 0;
    }
    default: return nope(err, "not a field operation");
  }
}

static int apply_index_op(dorm_mstate *st, const json_t *op, int add,
                          dorm_error *err) {
  json_t *m = model_for(st, op, err);
  if (!m) return DORM_EMIGRATION;
  json_t *arr = json_object_get(m, "indexes");
  const json_t *ix = json_object_get(op, "index");
  long i = find_in(arr, ix, same_index);
  char label[200];
  const char *n = sget(ix, "name");
  snprintf(label, sizeof label, "%s%s%s", n ? "'" : "",
           n ? n : "on those fields", n ? "'" : "");
  if (add) {
    if (i >= 0)
      return nope(err, "model '%s' already has the index %s", sget(m, "name"),
                  label);
    if (json_array_append_new(arr, json_deep_copy(ix)))
      return dorm_error_set(err, DORM_ENOMEM, NULL);
    return 0;
  }
  if (i < 0)
    return nope(err, "model '%s' has no index %s", sget(m, "name"), label);
  json_array_remove(arr, (size_t)i);
  return 0;
}

static int apply_constraint_op(dorm_mstate *st, const json_t *op, int add,
                               dorm_error *err) {
  json_t *m = model_for(st, op, err);
  if (!m) return DORM_EMIGRATION;
  const json_t *ut = json_object_get(op, "unique_together");
  json_t *arr = json_object_get(m, ut ? "unique_together" : "constraints");
  const json_t *item = ut ? ut : json_object_get(op, "constraint");
  long i = find_in(arr, item, ut ? eq_json : same_constraint);
  if (add) {
    if (i >= 0)
      return nope(err, "model '%s' already has that %s", sget(m, "name"),
                  ut ? "unique_together" : "constraint");
    if (json_array_append_new(arr, json_deep_copy(item)))
      return dorm_error_set(err, DORM_ENOMEM, NULL);
    return 0;
  }
  if (i < 0)
    return nope(err, "model '%s' has no such %s", sget(m, "name"),
                ut ? "unique_together" : "constraint");
  json_array_remove(arr, (size_t)i);
  return 0;
}

int dorm_mstate_apply(dorm_mstate *st, const json_t *op, dorm_error *err) {
  int k = dorm_op_kind_of(op);
  switch (k) {
    case DORM_OP_CREATE_MODEL: return apply_create(st, op, err);
    case DORM_OP_DELETE_MODEL: return apply_delete(st, op, err);
    case DORM_OP_RENAME_MODEL: return apply_rename_model(st, op, err);
    case DORM_OP_ADD_FIELD:
    case DORM_OP_REMOVE_FIELD:
    case DORM_OP_ALTER_FIELD:
    case DORM_OP_RENAME_FIELD: return apply_field_op(st, op, k, err);
    case DORM_OP_ADD_INDEX: return apply_index_op(st, op, 1, err);
    case DORM_OP_REMOVE_INDEX: return apply_index_op(st, op, 0, err);
    case DORM_OP_ADD_CONSTRAINT: return apply_constraint_op(st, op, 1, err);
    case DORM_OP_REMOVE_CONSTRAINT: return apply_constraint_op(st, op, 0, err);
    case DORM_OP_RUN_SQL: return 0;
    default: return nope(err, "unknown operation");
  }
}

int dorm_mstate_apply_migration(dorm_mstate *st, const dorm_migration *m,
                                dorm_error *err) {
  for (size_t i = 0; i < json_array_size(m->ops); i++) {
    dorm_error e;
    dorm_error_clear(&e);
    const json_t *op = json_array_get(m->ops, i);
    int rc = dorm_mstate_apply(st, op, &e);
    if (rc) {
      char what[200];
      dorm_migration_op_describe(op, what, sizeof what);
      if (rc == DORM_ENOMEM) return dorm_error_set(err, rc, NULL);
      return dorm_error_set(err, rc, "%s: operation %zu (%s): %s", m->file,
                            i + 1, what, e.message);
    }
  }
  return 0;
}

/* ---- to a schema ----------------------------------------------------------
 * Only the named models and what their relations reach (transitively:
 * a foreign key's type is its target's key, which may itself be a
 * relation). */

static int add_closure(const dorm_mstate *st, json_t *seen, json_t *out,
                       const char *name) {
  const char *key;
  json_t *m = find_model(st, name, &key);
  if (!m || json_object_get(seen, key)) return 0;
  if (json_object_set_new(seen, key, json_true())) return DORM_ENOMEM;
  json_t *fs = json_object_get(m, "fields");
  for (size_t i = 0; i < json_array_size(fs); i++) {
    const char *t = relation_target(m, json_array_get(fs, i));
    if (t && add_closure(st, seen, out, t)) return DORM_ENOMEM;
  }
  return 0;
}

dorm_schema *dorm_mstate_schema(const dorm_mstate *st, const char *const *names,
                                size_t n, dorm_error *err) {
  json_t *arr = json_array();
  json_t *seen = names ? json_object() : NULL;
  json_t *doc = NULL;
  int rc = (!arr || (names && !seen)) ? DORM_ENOMEM : 0;
  for (size_t i = 0; names && !rc && i < n; i++)
    rc = add_closure(st, seen, arr, names[i]);
  const char *key;
  json_t *m;
  /* Declaration order: the state's order, filtered. */
  json_object_foreach(st->models, key, m) {
    if (rc) break;
    if (seen && !json_object_get(seen, key)) continue;
    json_t *copy = json_object();
    if (!copy) {
      rc = DORM_ENOMEM;
      break;
    }
    static const char *const keys[] = {
        "name", "table", "fields", "indexes", "unique_together", "ordering"};
    for (size_t k = 0; k < 6; k++) {
      json_t *v = json_object_get(m, keys[k]);
      if (!v || (json_is_array(v) && !json_array_size(v) && k > 2)) continue;
      rc |= json_object_set(copy, keys[k], v);
    }
    rc |= json_array_append_new(arr, copy);
  }
  if (!rc && !(doc = json_pack("{sO}", "models", arr))) rc = DORM_ENOMEM;
  json_decref(arr);
  json_decref(seen);
  if (rc) {
    json_decref(doc);
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  /* jansson's dump leaves out an object key whose copy it could not
   * allocate and carries on: the allocator's note catches it */
  dorm__json_begin();
  char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(doc);
  if (text && dorm__json_oom(NULL)) {
    dorm__json_free(text);
    text = NULL;
  }
  if (!text) {
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  dorm_schema *s = dorm_schema_load_string(text, "migration state", err);
  dorm__json_free(text); /* jansson's allocator */
  return s;
}
