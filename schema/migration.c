/* SPDX-License-Identifier: MIT */
/* schema/migration.c — migration files: parse, check, load a folder, order
 * by dependencies; the inverse and a description of each operation.
 *
 * A file is refused as a whole, before anything runs, when it does not
 * parse, when an operation is unknown or misses a key it needs, or when
 * the folder's dependencies name a migration that does not exist or form a
 * cycle.  The message always starts with the file name, and with the line
 * and column of the operation where the text tells them, because a person
 * edits these files by hand and needs to find the place.
 *
 * Only the shape of each operation is checked here (keys, JSON types,
 * known field types); whether it fits the models — the field exists, the
 * target model is known — is the model state's business
 * (migration_state.c), which sees the migrations in order.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dorm/migration.h"
#include "schema/schema_int.h"

static const char *const op_names[DORM_OP__COUNT] = {
    [DORM_OP_CREATE_MODEL] = "create_model",
    [DORM_OP_DELETE_MODEL] = "delete_model",
    [DORM_OP_RENAME_MODEL] = "rename_model",
    [DORM_OP_ADD_FIELD] = "add_field",
    [DORM_OP_REMOVE_FIELD] = "remove_field",
    [DORM_OP_ALTER_FIELD] = "alter_field",
    [DORM_OP_RENAME_FIELD] = "rename_field",
    [DORM_OP_ADD_INDEX] = "add_index",
    [DORM_OP_REMOVE_INDEX] = "remove_index",
    [DORM_OP_ADD_CONSTRAINT] = "add_constraint",
    [DORM_OP_REMOVE_CONSTRAINT] = "remove_constraint",
    [DORM_OP_RUN_SQL] = "run_sql",
};

int dorm_op_kind_parse(const char *name) {
  if (!name) return -1;
  for (int k = 0; k < DORM_OP__COUNT; k++)
    if (strcmp(op_names[k], name) == 0) return k;
  return -1;
}

const char *dorm_op_kind_name(dorm_op_kind k) {
  if ((int)k < 0 || k >= DORM_OP__COUNT) return NULL;
  return op_names[k];
}

int dorm_op_kind_of(const json_t *op) {
  return dorm_op_kind_parse(json_string_value(json_object_get(op, "op")));
}

/* ---- checking one operation ---------------------------------------------
 * Each check returns NULL when fine or a static/formatted reason in why. */

typedef struct opcheck {
  char why[256];
} opcheck;

static int failf(opcheck *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int failf(opcheck *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->why, sizeof c->why, fmt, ap);
  va_end(ap);
  return -1;
}

static int need_ident(opcheck *c, const json_t *o, const char *key,
                      int optional) {
  const json_t *v = json_object_get(o, key);
  if (!v) return optional ? 0 : failf(c, "missing \"%s\"", key);
  if (!json_is_string(v)) return failf(c, "\"%s\" must be a string", key);
  if (!dorm_ident_valid(json_string_value(v)))
    return failf(c, "\"%s\": invalid name '%.64s'", key, json_string_value(v));
  return 0;
}

static int names_array(opcheck *c, const json_t *a, const char *what) {
  if (!json_is_array(a) || json_array_size(a) == 0)
    return failf(c, "%s must be a non-empty array of field names", what);
  for (size_t i = 0; i < json_array_size(a); i++)
    if (!json_is_string(json_array_get(a, i)))
      return failf(c, "%s must be a non-empty array of field names", what);
  return 0;
}

static int check_field(opcheck *c, const json_t *f, const char *key) {
  if (!json_is_object(f)) return failf(c, "\"%s\" must be an object", key);
  const json_t *n = json_object_get(f, "name");
  if (!json_is_string(n))
    return failf(c, "\"%s\" needs a \"name\" string", key);
  if (!dorm_ident_valid(json_string_value(n)))
    return failf(c, "\"%s\": invalid field name '%.64s'", key,
                 json_string_value(n));
  const json_t *t = json_object_get(f, "type");
  if (!json_is_string(t))
    return failf(c, "field '%s': missing \"type\"", json_string_value(n));
  if (dorm_field_type_parse(json_string_value(t)) < 0)
    return failf(c, "field '%s': unknown type '%.40s'", json_string_value(n),
                 json_string_value(t));
  return 0;
}

static int check_index(opcheck *c, const json_t *ix) {
  if (!json_is_object(ix)) return failf(c, "\"index\" must be an object");
  if (names_array(c, json_object_get(ix, "fields"), "\"index\".\"fields\""))
    return -1;
  if (need_ident(c, ix, "name", 1)) return -1;
  const json_t *u = json_object_get(ix, "unique");
  if (u && !json_is_boolean(u))
    return failf(c, "\"index\".\"unique\" must be true or false");
  return 0;
}

static int check_model_body(opcheck *c, const json_t *op) {
  if (need_ident(c, op, "name", 0) || need_ident(c, op, "table", 1)) return -1;
  const json_t *fs = json_object_get(op, "fields");
  if (!json_is_array(fs)) return failf(c, "\"fields\" must be an array");
  for (size_t i = 0; i < json_array_size(fs); i++) {
    if (check_field(c, json_array_get(fs, i), "fields[]")) return -1;
    const char *n =
        json_string_value(json_object_get(json_array_get(fs, i), "name"));
    for (size_t j = 0; j < i; j++)
      if (!strcmp(n, json_string_value(
                         json_object_get(json_array_get(fs, j), "name"))))
        return failf(c, "field '%s' appears twice", n);
  }
  const json_t *ix = json_object_get(op, "indexes");
  if (ix && !json_is_array(ix)) return failf(c, "\"indexes\" must be an array");
  for (size_t i = 0; i < json_array_size(ix); i++)
    if (check_index(c, json_array_get(ix, i))) return -1;
  const json_t *ut = json_object_get(op, "unique_together");
  if (ut && !json_is_array(ut))
    return failf(c, "\"unique_together\" must be an array of arrays");
  for (size_t i = 0; i < json_array_size(ut); i++)
    if (names_array(c, json_array_get(ut, i), "each \"unique_together\" entry"))
      return -1;
  const json_t *ord = json_object_get(op, "ordering");
  if (ord && !json_is_array(ord))
    return failf(c, "\"ordering\" must be an array");
  const json_t *cons = json_object_get(op, "constraints");
  if (cons && !json_is_array(cons))
    return failf(c, "\"constraints\" must be an array");
  return 0;
}

static int check_constraint(opcheck *c, const json_t *op) {
  const json_t *ut = json_object_get(op, "unique_together");
  const json_t *k = json_object_get(op, "constraint");
  if (!!ut == !!k)
    return failf(c,
                 "needs exactly one of \"unique_together\" and "
                 "\"constraint\"");
  if (ut) return names_array(c, ut, "\"unique_together\"");
  if (!json_is_object(k)) return failf(c, "\"constraint\" must be an object");
  if (need_ident(c, k, "name", 0)) return -1;
  const json_t *chk = json_object_get(k, "check");
  const json_t *fs = json_object_get(k, "fields");
  if (!!chk == !!fs)
    return failf(c,
                 "\"constraint\" needs exactly one of \"check\" and "
                 "\"fields\"");
  if (fs) return names_array(c, fs, "\"constraint\".\"fields\"");
  if (!json_is_object(chk) || json_object_size(chk) == 0)
    return failf(c,
                 "\"check\" must be an object of lookups, like "
                 "{\"age__gte\": 18}");
  return 0;
}

static int sql_value(opcheck *c, const json_t *v, const char *key) {
  if (json_is_string(v)) return 0;
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      if (!json_is_string(json_array_get(v, i)))
        return failf(c, "\"%s\" must be a string or an array of strings", key);
    return 0;
  }
  return failf(c, "\"%s\" must be a string or an array of strings", key);
}

/* Keys each operation may carry, beyond "op". */
static const char *const op_keys[DORM_OP__COUNT][10] = {
    [DORM_OP_CREATE_MODEL] = {"name", "table", "fields", "indexes",
                              "unique_together", "ordering", "constraints"},
    [DORM_OP_DELETE_MODEL] = {"name", "table", "fields", "indexes",
                              "unique_together", "ordering", "constraints"},
    [DORM_OP_RENAME_MODEL] = {"old_name", "new_name", "old_table", "new_table"},
    [DORM_OP_ADD_FIELD] = {"model", "field"},
    [DORM_OP_REMOVE_FIELD] = {"model", "field"},
    [DORM_OP_ALTER_FIELD] = {"model", "field", "old_field"},
    [DORM_OP_RENAME_FIELD] = {"model", "old_name", "new_name"},
    [DORM_OP_ADD_INDEX] = {"model", "index"},
    [DORM_OP_REMOVE_INDEX] = {"model", "index"},
    [DORM_OP_ADD_CONSTRAINT] = {"model", "unique_together", "constraint"},
    [DORM_OP_REMOVE_CONSTRAINT] = {"model", "unique_together", "constraint"},
    [DORM_OP_RUN_SQL] = {"sql", "reverse_sql"},
};

static int check_op(opcheck *c, const json_t *op, int *kind_out) {
  if (!json_is_object(op)) return failf(c, "must be an object");
  const json_t *o = json_object_get(op, "op");
  if (!json_is_string(o)) return failf(c, "missing \"op\"");
  int k = dorm_op_kind_parse(json_string_value(o));
  if (k < 0) return failf(c, "unknown operation '%.60s'", json_string_value(o));
  *kind_out = k;
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)op, key, val) {
    (void)val;
    if (!strcmp(key, "op")) continue;
    int ok = 0;
    for (int i = 0; i < 10 && op_keys[k][i]; i++)
      if (!strcmp(op_keys[k][i], key)) ok = 1;
    if (!ok) return failf(c, "unknown key '%.60s'", key);
  }
  switch ((dorm_op_kind)k) {
    case DORM_OP_CREATE_MODEL:
    case DORM_OP_DELETE_MODEL: return check_model_body(c, op);
    case DORM_OP_RENAME_MODEL:
      return need_ident(c, op, "old_name", 0) ||
                     need_ident(c, op, "new_name", 0) ||
                     need_ident(c, op, "old_table", 1) ||
                     need_ident(c, op, "new_table", 1)
                 ? -1
                 : 0;
    case DORM_OP_ADD_FIELD:
    case DORM_OP_REMOVE_FIELD:
      if (need_ident(c, op, "model", 0)) return -1;
      if (!json_object_get(op, "field")) return failf(c, "missing \"field\"");
      return check_field(c, json_object_get(op, "field"), "field");
    case DORM_OP_ALTER_FIELD:
      if (need_ident(c, op, "model", 0)) return -1;
      if (!json_object_get(op, "field")) return failf(c, "missing \"field\"");
      if (!json_object_get(op, "old_field"))
        return failf(c,
                     "missing \"old_field\" (the definition before, to "
                     "run backwards)");
      if (check_field(c, json_object_get(op, "field"), "field") ||
          check_field(c, json_object_get(op, "old_field"), "old_field"))
        return -1;
      if (strcmp(json_string_value(
                     json_object_get(json_object_get(op, "field"), "name")),
                 json_string_value(json_object_get(
                     json_object_get(op, "old_field"), "name"))))
        return failf(c,
                     "\"field\" and \"old_field\" must have the same name "
                     "(use rename_field to rename)");
      return 0;
    case DORM_OP_RENAME_FIELD:
      return need_ident(c, op, "model", 0) ||
                     need_ident(c, op, "old_name", 0) ||
                     need_ident(c, op, "new_name", 0)
                 ? -1
                 : 0;
    case DORM_OP_ADD_INDEX:
    case DORM_OP_REMOVE_INDEX:
      if (need_ident(c, op, "model", 0)) return -1;
      if (!json_object_get(op, "index")) return failf(c, "missing \"index\"");
      return check_index(c, json_object_get(op, "index"));
    case DORM_OP_ADD_CONSTRAINT:
    case DORM_OP_REMOVE_CONSTRAINT:
      if (need_ident(c, op, "model", 0)) return -1;
      return check_constraint(c, op);
    case DORM_OP_RUN_SQL: {
      const json_t *s = json_object_get(op, "sql");
      if (!s) return failf(c, "missing \"sql\"");
      if (sql_value(c, s, "sql")) return -1;
      const json_t *r = json_object_get(op, "reverse_sql");
      return r ? sql_value(c, r, "reverse_sql") : 0;
    }
    case DORM_OP__COUNT: break;
  }
  return failf(c, "unknown operation");
}

/* ---- one file ------------------------------------------------------------ */

void dorm_migration_clear(dorm_migration *m) {
  if (!m) return;
  dorm__free(m->name);
  dorm__free(m->file);
  for (size_t i = 0; i < m->ndeps; i++) dorm__free(m->deps[i]);
  dorm__free(m->deps);
  json_decref(m->ops);
  memset(m, 0, sizeof *m);
}

/* The file's base name without ".json": what the migration is called. */
static char *base_name(const char *file) {
  const char *b = strrchr(file, '/');
  b = b ? b + 1 : file;
  size_t n = strlen(b);
  if (n > 5 && !strcmp(b + n - 5, ".json")) n -= 5;
  return dorm__strndup(b, n);
}

static int leading_number(const char *name) {
  int n = 0, digits = 0;
  while (name[digits] >= '0' && name[digits] <= '9' && digits < 9)
    n = n * 10 + (name[digits++] - '0');
  return digits ? n : -1;
}

static int fail_at(dorm_error *err, const char *text, size_t len,
                   const char *file, long opi, const char *opname,
                   const char *why) {
  int line = 0, col = 0;
  if (text && opi >= 0) {
    dorm__jstep path[2] = {{"operations", 0, 0}, {NULL, 0, (size_t)opi}};
    dorm__json_locate(text, len, path, 2, 0, &line, &col);
  }
  char pos[32] = "";
  if (line) snprintf(pos, sizeof pos, ":%d:%d", line, col);
  if (opi >= 0)
    return dorm_error_set(err, DORM_EMIGRATION, "%s%s: operation %ld (%s): %s",
                          file, pos, opi + 1, opname ? opname : "?", why);
  return dorm_error_set(err, DORM_EMIGRATION, "%s: %s", file, why);
}

int dorm_migration_parse(const char *text, size_t len, const char *file,
                         dorm_migration *m, dorm_error *err) {
  memset(m, 0, sizeof *m);
  if (!file) file = "<migration>";
  json_error_t jerr;
  memset(&jerr, 0, sizeof jerr);
  dorm__json_begin();
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    if (dorm__json_oom(&jerr)) return dorm_error_set(err, DORM_ENOMEM, NULL);
    if (jerr.line > 0)
      return dorm_error_set(err, DORM_EJSON, "%s:%d:%d: malformed JSON: %s",
                            file, jerr.line, jerr.column, jerr.text);
    return dorm_error_set(err, DORM_EJSON, "%s: malformed JSON: %s", file,
                          jerr.text[0] ? jerr.text : "out of memory");
  }
  int rc = 0;
  char why[300];
  if (!json_is_object(root)) {
    rc = fail_at(err, NULL, 0, file, -1, NULL,
                 "the top level must be an object with \"name\", "
                 "\"dependencies\" and \"operations\"");
    goto out;
  }
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    (void)val;
    if (strcmp(key, "name") && strcmp(key, "dependencies") &&
        strcmp(key, "operations")) {
      snprintf(why, sizeof why, "unknown key '%.60s' at the top level", key);
      rc = fail_at(err, NULL, 0, file, -1, NULL, why);
      goto out;
    }
  }
  m->file = dorm__strdup(file);
  char *base = base_name(file);
  if (!m->file || !base) {
    dorm__free(base);
    rc = dorm_error_set(err, DORM_ENOMEM, NULL);
    goto out;
  }
  json_t *jn = json_object_get(root, "name");
  if (jn && !json_is_string(jn)) {
    dorm__free(base);
    rc = fail_at(err, NULL, 0, file, -1, NULL, "\"name\" must be a string");
    goto out;
  }
  if (jn && strcmp(json_string_value(jn), base) && strchr(file, '/')) {
    snprintf(why, sizeof why,
             "\"name\" is '%.60s' but the file is called '%.60s.json'",
             json_string_value(jn), base);
    dorm__free(base);
    rc = fail_at(err, NULL, 0, file, -1, NULL, why);
    goto out;
  }
  if (jn) {
    dorm__free(base);
    base = dorm__strdup(json_string_value(jn));
    if (!base) {
      rc = dorm_error_set(err, DORM_ENOMEM, NULL);
      goto out;
    }
  }
  m->name = base;
  m->number = leading_number(base);
  json_t *deps = json_object_get(root, "dependencies");
  if (deps && !json_is_array(deps)) {
    rc = fail_at(err, NULL, 0, file, -1, NULL,
                 "\"dependencies\" must be an array of migration names");
    goto out;
  }
  m->ndeps = json_array_size(deps);
  m->deps = dorm__calloc(m->ndeps ? m->ndeps : 1, sizeof *m->deps);
  if (!m->deps) {
    m->ndeps = 0;
    rc = dorm_error_set(err, DORM_ENOMEM, NULL);
    goto out;
  }
  for (size_t i = 0; i < m->ndeps; i++) {
    json_t *d = json_array_get(deps, i);
    if (!json_is_string(d)) {
      m->ndeps = i;
      rc = fail_at(err, NULL, 0, file, -1, NULL,
                   "\"dependencies\" must be an array of migration names");
      goto out;
    }
    if (!(m->deps[i] = dorm__strdup(json_string_value(d)))) {
      m->ndeps = i;
      rc = dorm_error_set(err, DORM_ENOMEM, NULL);
      goto out;
    }
  }
  json_t *ops = json_object_get(root, "operations");
  if (!json_is_array(ops)) {
    rc = fail_at(
        err, NULL, 0, file, -1, NULL,
        ops ? "\"operations\" must be an array" : "missing \"operations\"");
    goto out;
  }
  for (size_t i = 0; i < json_array_size(ops); i++) {
    opcheck c;
    int kind = -1;
    json_t *op = json_array_get(ops, i);
    if (check_op(&c, op, &kind)) {
      rc = fail_at(err, text, len, file, (long)i,
                   json_string_value(json_object_get(op, "op")), c.why);
      goto out;
    }
  }
  m->ops = json_incref(ops);
out:
  json_decref(root);
  if (rc) dorm_migration_clear(m);
  return rc;
}

/* ---- a folder ------------------------------------------------------------ */

void dorm_migration_set_free(dorm_migration_set *set) {
  if (!set) return;
  for (size_t i = 0; i < set->n; i++) dorm_migration_clear(&set->migs[i]);
  dorm__free(set->migs);
  dorm__free(set->dir);
  dorm__free(set);
}

static int cmp_mig_name(const void *a, const void *b) {
  return strcmp(((const dorm_migration *)a)->name,
                ((const dorm_migration *)b)->name);
}

/* Binary search in migrations sorted by name. */
static long find_sorted(const dorm_migration *migs, size_t n,
                        const char *name) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(migs[mid].name, name);
    if (c == 0) return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

typedef struct orderer {
  dorm_migration *migs; /* sorted by name */
  size_t n;
  long *dep_idx; /* flattened: each migration's deps as indexes */
  size_t *dep_off;
  unsigned char *color; /* 0 new, 1 on the stack, 2 done */
  size_t *order;
  size_t norder;
  long *stack; /* the DFS path, for the cycle message */
  size_t depth;
  dorm_error *err;
} orderer;

/* Depth-first, dependencies first: post-order is a valid running order,
 * and visiting roots and dependencies by name keeps it stable. Iterative
 * would avoid deep recursion, but a chain of 500 migrations is only 500
 * frames of a few words. */
static int visit(orderer *o, size_t i) {
  if (o->color[i] == 2) return 0;
  if (o->color[i] == 1) {
    char path[400] = "";
    size_t start = o->depth;
    while (start > 0 && o->stack[start - 1] != (long)i) start--;
    if (start > 0) start--;
    size_t p = 0;
    for (size_t k = start; k < o->depth && p < sizeof path - 80; k++)
      p += (size_t)snprintf(path + p, sizeof path - p, "%s -> ",
                            o->migs[o->stack[k]].name);
    snprintf(path + p, sizeof path - p, "%s", o->migs[i].name);
    return dorm_error_set(o->err, DORM_EMIGRATION, "%s: dependency cycle: %s",
                          o->migs[i].file, path);
  }
  o->color[i] = 1;
  o->stack[o->depth++] = (long)i;
  for (size_t k = o->dep_off[i]; k < o->dep_off[i + 1]; k++) {
    int rc = visit(o, (size_t)o->dep_idx[k]);
    if (rc) return rc;
  }
  o->depth--;
  o->color[i] = 2;
  o->order[o->norder++] = i;
  return 0;
}

dorm_migration_set *dorm_migrations_order(dorm_migration *migs, size_t n,
                                          dorm_error *err) {
  dorm_migration_set *set = dorm__calloc(1, sizeof *set);
  orderer o;
  memset(&o, 0, sizeof o);
  int rc = 0;
  if (!set) {
    for (size_t i = 0; i < n; i++) dorm_migration_clear(&migs[i]);
    dorm__free(migs);
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  set->migs = migs;
  set->n = n;
  if (n == 0) return set;
  qsort(migs, n, sizeof *migs, cmp_mig_name);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(migs[i].name, migs[i - 1].name)) {
      dorm_error_set(err, DORM_EMIGRATION,
                     "%s: migration name '%s' is also used by %s", migs[i].file,
                     migs[i].name, migs[i - 1].file);
      goto fail;
    }
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += migs[i].ndeps;
  o.migs = migs;
  o.n = n;
  o.err = err;
  o.dep_idx = dorm__calloc(total ? total : 1, sizeof *o.dep_idx);
  o.dep_off = dorm__calloc(n + 1, sizeof *o.dep_off);
  o.color = dorm__calloc(n, 1);
  o.order = dorm__calloc(n, sizeof *o.order);
  o.stack = dorm__calloc(n + 1, sizeof *o.stack);
  if (!o.dep_idx || !o.dep_off || !o.color || !o.order || !o.stack) {
    dorm_error_set(err, DORM_ENOMEM, NULL);
    goto fail;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    o.dep_off[i] = k;
    for (size_t d = 0; d < migs[i].ndeps; d++) {
      long j = find_sorted(migs, n, migs[i].deps[d]);
      if (j < 0) {
        dorm_error_set(err, DORM_EMIGRATION,
                       "%s: unknown dependency '%s' (no such migration)",
                       migs[i].file, migs[i].deps[d]);
        goto fail;
      }
      o.dep_idx[k++] = j;
    }
  }
  o.dep_off[n] = k;
  for (size_t i = 0; i < n && !rc; i++) rc = visit(&o, i);
  if (rc) goto fail;
  /* Permute into running order. */
  dorm_migration *ordered = dorm__calloc(n, sizeof *ordered);
  if (!ordered) {
    dorm_error_set(err, DORM_ENOMEM, NULL);
    goto fail;
  }
  for (size_t i = 0; i < n; i++) ordered[i] = migs[o.order[i]];
  dorm__free(migs);
  set->migs = ordered;
  dorm__free(o.dep_idx);
  dorm__free(o.dep_off);
  dorm__free(o.color);
  dorm__free(o.order);
  dorm__free(o.stack);
  return set;
fail:
  dorm__free(o.dep_idx);
  dorm__free(o.dep_off);
  dorm__free(o.color);
  dorm__free(o.order);
  dorm__free(o.stack);
  dorm_migration_set_free(set);
  return NULL;
}

static char *read_all(const char *path, size_t *len, dorm_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    dorm_error_set(err, DORM_EIO, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  dorm__buf buf;
  dorm__buf_init(&buf);
  char chunk[16384];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    dorm__buf_append(&buf, chunk, n);
  int bad = ferror(f);
  fclose(f);
  if (bad || buf.oom) {
    dorm__buf_free(&buf);
    dorm_error_set(err, bad ? DORM_EIO : DORM_ENOMEM, "%s: cannot read", path);
    return NULL;
  }
  dorm__buf_cstr(&buf);
  if (buf.oom) {
    dorm__buf_free(&buf);
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  *len = buf.len;
  return buf.data; /* dorm__malloc'd by the buffer */
}

dorm_migration_set *dorm_migrations_load(const char *dir, dorm_error *err) {
  if (!dir) dir = "migrations";
  DIR *d = opendir(dir);
  if (!d) {
    if (errno != ENOENT) {
      dorm_error_set(err, DORM_EIO, "%s: cannot open: %s", dir,
                     strerror(errno));
      return NULL;
    }
    dorm_migration_set *set = dorm_migrations_order(NULL, 0, err);
    if (set && !(set->dir = dorm__strdup(dir))) {
      dorm_migration_set_free(set);
      dorm_error_set(err, DORM_ENOMEM, NULL);
      return NULL;
    }
    return set;
  }
  dorm_migration *migs = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int rc = 0;
  while (!rc && (e = readdir(d)) != NULL) {
    size_t nl = strlen(e->d_name);
    if (e->d_name[0] == '.' || nl <= 5 || strcmp(e->d_name + nl - 5, ".json"))
      continue;
    size_t plen = strlen(dir) + 1 + nl + 1;
    char *path = dorm__malloc(plen);
    if (!path) {
      rc = dorm_error_set(err, DORM_ENOMEM, NULL);
      break;
    }
    snprintf(path, plen, "%s/%s", dir, e->d_name);
    size_t len = 0;
    char *text = read_all(path, &len, err);
    if (!text) {
      dorm__free(path);
      rc = err ? err->code : DORM_EIO;
      break;
    }
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 64;
      dorm_migration *nm = dorm__realloc(migs, nc * sizeof *nm);
      if (!nm) {
        dorm__free(text);
        dorm__free(path);
        rc = dorm_error_set(err, DORM_ENOMEM, NULL);
        break;
      }
      migs = nm;
      cap = nc;
    }
    rc = dorm_migration_parse(text, len, path, &migs[n], err);
    dorm__free(text);
    dorm__free(path);
    if (!rc) n++;
  }
  closedir(d);
  if (rc) {
    for (size_t i = 0; i < n; i++) dorm_migration_clear(&migs[i]);
    dorm__free(migs);
    return NULL;
  }
  dorm_migration_set *set = dorm_migrations_order(migs, n, err);
  if (set && !(set->dir = dorm__strdup(dir))) {
    dorm_migration_set_free(set);
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  return set;
}

long dorm_migrations_find(const dorm_migration_set *set, const char *name) {
  if (!set || !name) return -1;
  long found = -1;
  size_t nl = strlen(name);
  for (size_t i = 0; i < set->n; i++) {
    if (!strcmp(set->migs[i].name, name)) return (long)i;
    if (!strncmp(set->migs[i].name, name, nl)) {
      if (found >= 0) return -2;
      found = (long)i;
    }
  }
  return found;
}

size_t dorm_migrations_leaves(const dorm_migration_set *set, size_t *out,
                              size_t cap) {
  size_t count = 0;
  if (!set) return 0;
  for (size_t i = 0; i < set->n; i++) {
    int needed = 0;
    /* Dependents come after i in running order. */
    for (size_t j = i + 1; j < set->n && !needed; j++)
      for (size_t d = 0; d < set->migs[j].ndeps && !needed; d++)
        if (!strcmp(set->migs[j].deps[d], set->migs[i].name)) needed = 1;
    if (needed) continue;
    if (count < cap) out[count] = i;
    count++;
  }
  return count;
}

/* ---- inverse ------------------------------------------------------------- */

static json_t *obj_with_op(const json_t *op, const char *newop) {
  json_t *r = json_deep_copy(op);
  if (!r) return NULL;
  if (json_object_set_new(r, "op", json_string(newop))) {
    json_decref(r);
    return NULL;
  }
  return r;
}

static int swap_keys(json_t *o, const char *a, const char *b) {
  json_t *va = json_incref(json_object_get(o, a));
  json_t *vb = json_incref(json_object_get(o, b));
  json_object_del(o, a);
  json_object_del(o, b);
  int rc = 0;
  if (vb) rc |= json_object_set(o, a, vb);
  if (va) rc |= json_object_set(o, b, va);
  json_decref(va);
  json_decref(vb);
  return rc;
}

json_t *dorm_migration_op_invert(const json_t *op, dorm_error *err) {
  int k = dorm_op_kind_of(op);
  json_t *r = NULL;
  switch (k) {
    case DORM_OP_CREATE_MODEL: r = obj_with_op(op, "delete_model"); break;
    case DORM_OP_DELETE_MODEL: r = obj_with_op(op, "create_model"); break;
    case DORM_OP_ADD_FIELD: r = obj_with_op(op, "remove_field"); break;
    case DORM_OP_REMOVE_FIELD: r = obj_with_op(op, "add_field"); break;
    case DORM_OP_ADD_INDEX: r = obj_with_op(op, "remove_index"); break;
    case DORM_OP_REMOVE_INDEX: r = obj_with_op(op, "add_index"); break;
    case DORM_OP_ADD_CONSTRAINT:
      r = obj_with_op(op, "remove_constraint");
      break;
    case DORM_OP_REMOVE_CONSTRAINT:
      r = obj_with_op(op, "add_constraint");
      break;
    case DORM_OP_ALTER_FIELD:
      r = obj_with_op(op, "alter_field");
      if (r && swap_keys(r, "field", "old_field")) goto oom;
      break;
    case DORM_OP_RENAME_FIELD:
      r = obj_with_op(op, "rename_field");
      if (r && swap_keys(r, "old_name", "new_name")) goto oom;
      break;
    case DORM_OP_RENAME_MODEL:
      r = obj_with_op(op, "rename_model");
      if (r && (swap_keys(r, "old_name", "new_name") ||
                swap_keys(r, "old_table", "new_table")))
        goto oom;
      break;
    case DORM_OP_RUN_SQL:
      if (!json_object_get(op, "reverse_sql")) {
        dorm_error_set(err, DORM_EMIGRATION,
                       "run_sql has no \"reverse_sql\": it cannot be run "
                       "backwards");
        return NULL;
      }
      r = obj_with_op(op, "run_sql");
      if (r && swap_keys(r, "sql", "reverse_sql")) goto oom;
      break;
    default:
      dorm_error_set(err, DORM_EMIGRATION, "unknown operation");
      return NULL;
  }
  if (!r) dorm_error_set(err, DORM_ENOMEM, NULL);
  return r;
oom:
  json_decref(r);
  dorm_error_set(err, DORM_ENOMEM, NULL);
  return NULL;
}

/* ---- words --------------------------------------------------------------- */

static const char *sget(const json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "?";
}

static const char *index_label(const json_t *ix, char *buf, size_t len) {
  const char *n = json_string_value(json_object_get(ix, "name"));
  if (n) return n;
  const json_t *fs = json_object_get(ix, "fields");
  size_t p = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < json_array_size(fs) && p + 2 < len; i++)
    p += (size_t)snprintf(buf + p, len - p, "%s%s", i ? "_" : "",
                          json_string_value(json_array_get(fs, i)));
  return buf;
}

char *dorm_migration_op_describe(const json_t *op, char *buf, size_t len) {
  char tmp[200];
  const json_t *f = json_object_get(op, "field");
  const char *m = sget(op, "model");
  switch (dorm_op_kind_of(op)) {
    case DORM_OP_CREATE_MODEL:
      snprintf(buf, len, "Create model %s", sget(op, "name"));
      break;
    case DORM_OP_DELETE_MODEL:
      snprintf(buf, len, "Delete model %s", sget(op, "name"));
      break;
    case DORM_OP_RENAME_MODEL:
      snprintf(buf, len, "Rename model %s to %s", sget(op, "old_name"),
               sget(op, "new_name"));
      break;
    case DORM_OP_ADD_FIELD:
      snprintf(buf, len, "Add field %s to %s", sget(f, "name"), m);
      break;
    case DORM_OP_REMOVE_FIELD:
      snprintf(buf, len, "Remove field %s from %s", sget(f, "name"), m);
      break;
    case DORM_OP_ALTER_FIELD:
      snprintf(buf, len, "Alter field %s on %s", sget(f, "name"), m);
      break;
    case DORM_OP_RENAME_FIELD:
      snprintf(buf, len, "Rename field %s on %s to %s", sget(op, "old_name"), m,
               sget(op, "new_name"));
      break;
    case DORM_OP_ADD_INDEX:
      snprintf(buf, len, "Create index %s on %s",
               index_label(json_object_get(op, "index"), tmp, sizeof tmp), m);
      break;
    case DORM_OP_REMOVE_INDEX:
      snprintf(buf, len, "Remove index %s from %s",
               index_label(json_object_get(op, "index"), tmp, sizeof tmp), m);
      break;
    case DORM_OP_ADD_CONSTRAINT:
    case DORM_OP_REMOVE_CONSTRAINT: {
      int add = dorm_op_kind_of(op) == DORM_OP_ADD_CONSTRAINT;
      const json_t *ut = json_object_get(op, "unique_together");
      if (ut) {
        json_t *tmpix = json_pack("{sO}", "fields", (json_t *)ut);
        snprintf(buf, len, "%s unique_together (%s) %s %s",
                 add ? "Add" : "Remove",
                 tmpix ? index_label(tmpix, tmp, sizeof tmp) : "?",
                 add ? "on" : "from", m);
        json_decref(tmpix);
      } else {
        snprintf(buf, len, "%s constraint %s %s %s", add ? "Add" : "Remove",
                 sget(json_object_get(op, "constraint"), "name"),
                 add ? "on" : "from", m);
      }
      break;
    }
    case DORM_OP_RUN_SQL: snprintf(buf, len, "Raw SQL operation"); break;
    default: snprintf(buf, len, "Unknown operation"); break;
  }
  return buf;
}

/* Lower-cased copy of s into out (cap bytes). */
static void lower(const char *s, char *out, size_t cap) {
  size_t i = 0;
  for (; s[i] && i + 1 < cap; i++)
    out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
  out[i] = '\0';
}

/* Django's migration_name_fragment of each operation. */
static void fragment(const json_t *op, char *buf, size_t len) {
  char m[DORM_IDENT_MAX + 1], a[DORM_IDENT_MAX + 1], b[DORM_IDENT_MAX + 1];
  char tmp[200];
  lower(sget(op, "model"), m, sizeof m);
  const json_t *f = json_object_get(op, "field");
  switch (dorm_op_kind_of(op)) {
    case DORM_OP_CREATE_MODEL:
      lower(sget(op, "name"), a, sizeof a);
      snprintf(buf, len, "%s", a);
      break;
    case DORM_OP_DELETE_MODEL:
      lower(sget(op, "name"), a, sizeof a);
      snprintf(buf, len, "delete_%s", a);
      break;
    case DORM_OP_RENAME_MODEL:
      lower(sget(op, "old_name"), a, sizeof a);
      lower(sget(op, "new_name"), b, sizeof b);
      snprintf(buf, len, "rename_%s_%s", a, b);
      break;
    case DORM_OP_ADD_FIELD:
      lower(sget(f, "name"), a, sizeof a);
      snprintf(buf, len, "%s_%s", m, a);
      break;
    case DORM_OP_REMOVE_FIELD:
      lower(sget(f, "name"), a, sizeof a);
      snprintf(buf, len, "remove_%s_%s", m, a);
      break;
    case DORM_OP_ALTER_FIELD:
      lower(sget(f, "name"), a, sizeof a);
      snprintf(buf, len, "alter_%s_%s", m, a);
      break;
    case DORM_OP_RENAME_FIELD:
      lower(sget(op, "old_name"), a, sizeof a);
      lower(sget(op, "new_name"), b, sizeof b);
      snprintf(buf, len, "rename_%s_%s_%s", a, m, b);
      break;
    case DORM_OP_ADD_INDEX:
      lower(index_label(json_object_get(op, "index"), tmp, sizeof tmp), a,
            sizeof a);
      snprintf(buf, len, "%s_%s", m, a);
      break;
    case DORM_OP_REMOVE_INDEX:
      lower(index_label(json_object_get(op, "index"), tmp, sizeof tmp), a,
            sizeof a);
      snprintf(buf, len, "remove_%s_%s", m, a);
      break;
    case DORM_OP_ADD_CONSTRAINT:
    case DORM_OP_REMOVE_CONSTRAINT: {
      const char *pre =
          dorm_op_kind_of(op) == DORM_OP_ADD_CONSTRAINT ? "" : "remove_";
      if (json_object_get(op, "unique_together"))
        snprintf(buf, len, "%salter_%s_unique_together", pre, m);
      else {
        lower(sget(json_object_get(op, "constraint"), "name"), a, sizeof a);
        snprintf(buf, len, "%s%s_%s", pre, m, a);
      }
      break;
    }
    default: buf[0] = '\0'; break;
  }
}

int dorm_migration_auto_name(const json_t *ops, int initial, char *buf,
                             size_t len) {
  if (initial) {
    snprintf(buf, len, "initial");
    return 0;
  }
  char out[256] = "";
  size_t p = 0;
  int too_long = json_array_size(ops) == 0;
  for (size_t i = 0; i < json_array_size(ops) && !too_long; i++) {
    char frag[200];
    fragment(json_array_get(ops, i), frag, sizeof frag);
    if (!frag[0] || p + 1 + strlen(frag) > 52) {
      too_long = 1;
      break;
    }
    p += (size_t)snprintf(out + p, sizeof out - p, "%s%s", p ? "_" : "", frag);
  }
  if (too_long) {
    /* The caller picks a name (Django's auto_<timestamp>): a clock has no
     * place in the pure layer. */
    buf[0] = '\0';
    return -1;
  }
  snprintf(buf, len, "%s", out);
  return 0;
}
