/* SPDX-License-Identifier: MIT */
/* schema/migration_parse.c — one migration file's JSON: parse it, check
 * the shape of every operation, and the names of the operation kinds.
 *
 * A file is refused as a whole, before anything runs, when it does not
 * parse, when an operation is unknown or misses a key it needs.  The
 * message always starts with the file name, and with the line and column
 * of the operation where the text tells them, because a person edits these
 * files by hand and needs to find the place.
 *
 * Only the shape of each operation is checked here (keys, JSON types,
 * known field types); whether it fits the models — the field exists, the
 * target model is known — is the model state's business
 * (migration_state.c), which sees the migrations in order.  Whether the
 * dependencies exist and form no cycle is the graph's (migration_graph.c),
 * which sees the whole folder; reading the folder is migration_files.c's.
 */
#include <jansson.h>
#include <stdarg.h>
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
