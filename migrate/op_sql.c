/* SPDX-License-Identifier: MIT */
/* migrate/op_sql.c — one migration operation as SQL for a dialect.
 *
 * This is where the pure pieces meet: the model state before and after an
 * operation (schema/migration_state.c) become dorm_model structs that
 * include/dorm/ddl.h compiles.  Only the models the operation touches (and
 * those they point at) are built, so a migration costs the same on a
 * project of 5 models or 500.  dorm_async_migrate (migrate/migrate.c) and
 * `dorm sqlmigrate` both compile through here, so what sqlmigrate prints
 * is what migrate runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base_int.h"
#include "dorm/migrate.h"

/* ---- constraints from JSON ------------------------------------------------
 */

/* The add_constraint "constraint" objects of a model as dorm_ddl
 * constraints.  Everything points into one block (or into the JSON, which
 * outlives the call) and is freed with cons_free. */
typedef struct cons_set {
  dorm_ddl_constraint *c;
  size_t n;
  void **blocks; /* allocations to free */
  size_t nblocks;
} cons_set;

static void cons_free(cons_set *s) {
  for (size_t i = 0; i < s->nblocks; i++) dorm__free(s->blocks[i]);
  dorm__free(s->blocks);
  dorm__free(s->c);
  memset(s, 0, sizeof *s);
}

static void *cons_keep(cons_set *s, void *p) {
  if (!p) return NULL;
  void **nb = dorm__realloc(s->blocks, (s->nblocks + 1) * sizeof *nb);
  if (!nb) {
    dorm__free(p);
    return NULL;
  }
  s->blocks = nb;
  s->blocks[s->nblocks++] = p;
  return p;
}

static int json_to_value(cons_set *s, const json_t *j, dorm_value *out) {
  switch (json_typeof(j)) {
    case JSON_NULL: *out = dorm_null(); return 0;
    case JSON_TRUE: *out = dorm_bool(1); return 0;
    case JSON_FALSE: *out = dorm_bool(0); return 0;
    case JSON_INTEGER: *out = dorm_int(json_integer_value(j)); return 0;
    case JSON_REAL: *out = dorm_float(json_real_value(j)); return 0;
    case JSON_STRING:
      *out = dorm_strn(json_string_value(j), json_string_length(j));
      return 0;
    case JSON_ARRAY: {
      size_t n = json_array_size(j);
      dorm_value *items = cons_keep(s, dorm__calloc(n ? n : 1, sizeof *items));
      if (!items) return DORM_ENOMEM;
      for (size_t i = 0; i < n; i++)
        if (json_to_value(s, json_array_get(j, i), &items[i]))
          return DORM_EINVAL;
      *out = dorm_list(items, n);
      return 0;
    }
    default: return DORM_EINVAL;
  }
}

/* One constraint object; name/fields borrowed from the JSON. */
static int cons_one(cons_set *s, const json_t *k, dorm_ddl_constraint *c,
                    dorm_error *err) {
  memset(c, 0, sizeof *c);
  c->name = json_string_value(json_object_get(k, "name"));
  const json_t *fs = json_object_get(k, "fields");
  if (fs) {
    c->kind = DORM_CONSTRAINT_UNIQUE;
    c->nfields = json_array_size(fs);
    const char **names =
        cons_keep(s, dorm__calloc(c->nfields + 1, sizeof *names));
    if (!names) return dorm_error_set(err, DORM_ENOMEM, NULL);
    for (size_t i = 0; i < c->nfields; i++)
      names[i] = json_string_value(json_array_get(fs, i));
    c->fields = names;
    return 0;
  }
  const json_t *chk = json_object_get(k, "check");
  c->kind = DORM_CONSTRAINT_CHECK;
  c->nterms = json_object_size(chk);
  dorm_check_term *t = cons_keep(s, dorm__calloc(c->nterms + 1, sizeof *t));
  if (!t) return dorm_error_set(err, DORM_ENOMEM, NULL);
  size_t i = 0;
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)chk, key, val) {
    /* "age__gte": the part after the last "__" when it is a check lookup,
     * else the whole key is the field and the lookup is exact. */
    const char *sep = NULL;
    for (const char *p = strstr(key, "__"); p; p = strstr(p + 1, "__")) sep = p;
    int op = sep ? dorm_check_op_parse(sep + 2) : -1;
    char *field = cons_keep(
        s, dorm__strndup(key, op >= 0 ? (size_t)(sep - key) : strlen(key)));
    if (!field) return dorm_error_set(err, DORM_ENOMEM, NULL);
    t[i].field = field;
    t[i].op = op >= 0 ? (dorm_check_op)op : DORM_CHECK_EXACT;
    if (json_to_value(s, val, &t[i].value))
      return dorm_error_set(err, DORM_EMIGRATION,
                            "constraint '%s': the value of '%s' must be a "
                            "JSON scalar or a list",
                            c->name, key);
    i++;
  }
  c->terms = t;
  return 0;
}

static int cons_build(cons_set *s, const json_t *arr, const char *skip,
                      dorm_error *err) {
  memset(s, 0, sizeof *s);
  size_t n = json_array_size(arr);
  s->c = dorm__calloc(n ? n : 1, sizeof *s->c);
  if (!s->c) return dorm_error_set(err, DORM_ENOMEM, NULL);
  for (size_t i = 0; i < n; i++) {
    const json_t *k = json_array_get(arr, i);
    if (skip && !strcmp(json_string_value(json_object_get(k, "name")), skip))
      continue;
    int rc = cons_one(s, k, &s->c[s->n], err);
    if (rc) return rc;
    s->n++;
  }
  return 0;
}

/* ---- one operation as SQL ---------------------------------------------------
 */

static const char *sget(const json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static int model_of(const dorm_schema *s, const char *name,
                    const dorm_model **m, dorm_error *err) {
  *m = s ? dorm_schema_model(s, name) : NULL;
  if (!*m)
    return dorm_error_set(err, DORM_EMIGRATION, "no model '%s' in the state",
                          name);
  return 0;
}

static int field_of(const dorm_model *m, const char *name, const dorm_field **f,
                    dorm_error *err) {
  *f = dorm_model_field(m, name);
  if (!*f)
    return dorm_error_set(err, DORM_EMIGRATION, "model '%s' has no field '%s'",
                          m->name, name);
  return 0;
}

/* The index of m an add_index/remove_index names: by name when it has one,
 * else by its fields (and uniqueness). */
static const dorm_index *find_index(const dorm_model *m, const json_t *ix) {
  const char *name = sget(ix, "name");
  const json_t *fs = json_object_get(ix, "fields");
  int unique = json_is_true(json_object_get(ix, "unique"));
  for (size_t i = 0; i < m->nindexes; i++) {
    const dorm_index *x = &m->indexes[i];
    if (name) {
      if (!strcmp(x->name, name)) return x;
      continue;
    }
    if (x->nfields != json_array_size(fs) || !!x->unique != unique) continue;
    size_t k = 0;
    while (k < x->nfields &&
           !strcmp(x->fields[k], json_string_value(json_array_get(fs, k))))
      k++;
    if (k == x->nfields) return x;
  }
  return NULL;
}

static const dorm_index *find_unique_together(const dorm_model *m,
                                              const json_t *fs) {
  for (size_t i = 0; i < m->nunique_together; i++) {
    const dorm_index *x = &m->unique_together[i];
    if (x->nfields != json_array_size(fs)) continue;
    size_t k = 0;
    while (k < x->nfields &&
           !strcmp(x->fields[k], json_string_value(json_array_get(fs, k))))
      k++;
    if (k == x->nfields) return x;
  }
  return NULL;
}

static int run_sql_stmts(const json_t *v, dorm_ddl *out, dorm_error *err) {
  dorm_ddl_free(out);
  size_t n = json_is_array(v) ? json_array_size(v) : 1;
  out->stmts = dorm__calloc(n ? n : 1, sizeof *out->stmts);
  if (!out->stmts) return dorm_error_set(err, DORM_ENOMEM, NULL);
  out->cap = n ? n : 1;
  for (size_t i = 0; i < n; i++) {
    const char *s = json_is_array(v) ? json_string_value(json_array_get(v, i))
                                     : json_string_value(v);
    if (!(out->stmts[i] = dorm__strdup(s)))
      return dorm_error_set(err, DORM_ENOMEM, NULL);
    out->n++;
  }
  return 0;
}

int dorm_migration_op_sql(dorm_mstate *st, const json_t *op, dorm_dialect d,
                          dorm_ddl *out, dorm_error *err) {
  int kind = dorm_op_kind_of(op);
  const char *names[2] = {NULL, NULL};
  size_t nn = 1;
  switch (kind) {
    case DORM_OP_CREATE_MODEL:
    case DORM_OP_DELETE_MODEL: names[0] = sget(op, "name"); break;
    case DORM_OP_RENAME_MODEL:
      names[0] = sget(op, "old_name");
      names[1] = sget(op, "new_name");
      nn = 2;
      break;
    case DORM_OP_RUN_SQL: nn = 0; break;
    default: names[0] = sget(op, "model"); break;
  }
  dorm_schema *before = NULL, *after = NULL;
  cons_set cons;
  memset(&cons, 0, sizeof cons);
  int rc = 0;
  /* The state before, for the operations that drop or change something. */
  if (kind != DORM_OP_CREATE_MODEL && kind != DORM_OP_ADD_FIELD &&
      kind != DORM_OP_ADD_INDEX && kind != DORM_OP_RUN_SQL &&
      kind != DORM_OP_ADD_CONSTRAINT) {
    before = dorm_mstate_schema(st, names,
                                kind == DORM_OP_RENAME_MODEL ? 1 : nn, err);
    if (!before) return err ? err->code : DORM_EMIGRATION;
  }
  if ((rc = dorm_mstate_apply(st, op, err))) goto out;
  if (kind != DORM_OP_DELETE_MODEL && kind != DORM_OP_RUN_SQL) {
    const char *an[1] = {kind == DORM_OP_RENAME_MODEL ? names[1] : names[0]};
    if (!(after = dorm_mstate_schema(st, an, 1, err))) {
      rc = err ? err->code : DORM_EMIGRATION;
      goto out;
    }
  }
  const dorm_model *bm = NULL, *am = NULL;
  const dorm_field *bf = NULL, *af = NULL;
  if (before && (rc = model_of(before, names[0], &bm, err))) goto out;
  if (after &&
      (rc = model_of(after, kind == DORM_OP_RENAME_MODEL ? names[1] : names[0],
                     &am, err)))
    goto out;
  const json_t *cj = NULL;
  if (am) {
    const json_t *ck = json_object_get(op, "constraint");
    /* The constraints as they are after the operation; for add_constraint
     * the new one is among them. */
    cj = dorm_mstate_constraints(st, am->name);
    if ((rc = cons_build(&cons, cj, NULL, err))) goto out;
    (void)ck;
  }
  const json_t *f = json_object_get(op, "field");
  switch (kind) {
    case DORM_OP_CREATE_MODEL:
      rc = dorm_ddl_create_model(am, cons.c, cons.n, d, out, err);
      break;
    case DORM_OP_DELETE_MODEL:
      rc = dorm_ddl_delete_model(bm, d, out, err);
      break;
    case DORM_OP_RENAME_MODEL:
      rc = dorm_ddl_rename_model(bm, am, d, out, err);
      break;
    case DORM_OP_ADD_FIELD:
      if (!(rc = field_of(am, sget(f, "name"), &af, err)))
        rc = dorm_ddl_add_field(am, cons.c, cons.n, af, d, out, err);
      break;
    case DORM_OP_REMOVE_FIELD:
      if (!(rc = field_of(bm, sget(f, "name"), &bf, err)))
        rc = dorm_ddl_remove_field(bm, am, cons.c, cons.n, bf, d, out, err);
      break;
    case DORM_OP_ALTER_FIELD:
      if (!(rc = field_of(bm, sget(f, "name"), &bf, err)) &&
          !(rc = field_of(am, sget(f, "name"), &af, err)))
        rc = dorm_ddl_alter_field(bm, am, cons.c, cons.n, bf, af, d, out, err);
      break;
    case DORM_OP_RENAME_FIELD:
      if (!(rc = field_of(bm, sget(op, "old_name"), &bf, err)) &&
          !(rc = field_of(am, sget(op, "new_name"), &af, err)))
        rc = dorm_ddl_rename_field(bm, am, cons.c, cons.n, bf, af, d, out, err);
      break;
    case DORM_OP_ADD_INDEX:
    case DORM_OP_REMOVE_INDEX: {
      const dorm_model *m = kind == DORM_OP_ADD_INDEX ? am : bm;
      const dorm_index *ix = find_index(m, json_object_get(op, "index"));
      if (!ix) {
        rc = dorm_error_set(err, DORM_EMIGRATION, "model '%s': no such index",
                            m->name);
        break;
      }
      rc = kind == DORM_OP_ADD_INDEX
               ? dorm_ddl_add_index(m, ix, d, out, err)
               : dorm_ddl_remove_index(m, ix, d, out, err);
      break;
    }
    case DORM_OP_ADD_CONSTRAINT:
    case DORM_OP_REMOVE_CONSTRAINT: {
      int add = kind == DORM_OP_ADD_CONSTRAINT;
      const json_t *ut = json_object_get(op, "unique_together");
      dorm_ddl_constraint c;
      cons_set one;
      memset(&one, 0, sizeof one);
      if (ut) {
        /* unique_together lives in the model (its derived name comes from
         * there); the rebuild creates it from the model, so it is not
         * among the extra constraints. */
        const dorm_index *x = find_unique_together(add ? am : bm, ut);
        if (!x) {
          rc = dorm_error_set(err, DORM_EMIGRATION,
                              "model '%s': no such unique_together", am->name);
          break;
        }
        memset(&c, 0, sizeof c);
        c.name = x->name;
        c.kind = DORM_CONSTRAINT_UNIQUE;
        c.fields = (const char *const *)x->fields;
        c.nfields = x->nfields;
      } else if ((rc = cons_one(&one, json_object_get(op, "constraint"), &c,
                                err))) {
        cons_free(&one);
        break;
      }
      rc =
          add ? dorm_ddl_add_constraint(am, cons.c, cons.n, &c, d, out, err)
              : dorm_ddl_remove_constraint(am, cons.c, cons.n, &c, d, out, err);
      cons_free(&one);
      break;
    }
    case DORM_OP_RUN_SQL:
      rc = run_sql_stmts(json_object_get(op, "sql"), out, err);
      break;
    default: rc = dorm_error_set(err, DORM_EMIGRATION, "unknown operation");
  }
out:
  cons_free(&cons);
  dorm_schema_free(before);
  dorm_schema_free(after);
  return rc;
}

int dorm_migration_compile(dorm_mstate *st, const dorm_migration *m,
                           int backwards, dorm_dialect d, dorm_ddl *ddls,
                           dorm_error *err) {
  size_t n = json_array_size(m->ops);
  for (size_t k = 0; k < n; k++) {
    size_t i = backwards ? n - 1 - k : k;
    const json_t *op = json_array_get(m->ops, i);
    dorm_error e;
    dorm_error_clear(&e);
    json_t *inv = NULL;
    if (backwards && !(inv = dorm_migration_op_invert(op, &e)))
      return dorm_error_set(err, e.code ? e.code : DORM_EMIGRATION,
                            "%s: operation %zu: %s", m->file, i + 1, e.message);
    int rc = dorm_migration_op_sql(st, inv ? inv : op, d, &ddls[k], &e);
    json_decref(inv);
    if (rc) {
      char what[256];
      return dorm_error_set(
          err, rc, "%s: operation %zu (%s): %s", m->file, i + 1,
          dorm_migration_op_describe(op, what, sizeof what), e.message);
    }
  }
  return 0;
}

dorm_mstate *dorm_migrations_replay(const dorm_migration_set *set, size_t upto,
                                    dorm_error *err) {
  dorm_mstate *st = dorm_mstate_new();
  if (!st) {
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  for (size_t i = 0; i < upto && i < set->n; i++)
    if (dorm_mstate_apply_migration(st, &set->migs[i], err)) {
      dorm_mstate_free(st);
      return NULL;
    }
  return st;
}
