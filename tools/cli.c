/* tools/cli.c — helpers shared by the dorm command's files: messages and
 * exit statuses, options, the database URL, loading and replaying
 * migrations, one migration operation as SQL, and a loop that runs until a
 * deferred fires.
 *
 * cli_op_sql is where the pure pieces meet: the model state before and
 * after an operation (schema/migration_state.c) become dorm_model structs
 * that include/dorm/ddl.h compiles.  Only the models the operation touches
 * (and those they point at) are built, so a migration costs the same on a
 * project of 5 models or 500.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/cli.h"

int cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("dorm: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_ERROR;
}

int cli_usage_error(const char *usage, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("dorm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fprintf(stderr, "%s", usage);
  return CLI_USAGE;
}

void cli_warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("dorm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int cli_is_help(const char *arg) {
  return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

const char *cli_db_url(const char *opt) {
  if (opt) return opt;
  const char *env = getenv("DATABASE_URL");
  if (env && *env) return env;
  return "sqlite:///db.sqlite3";
}

const char *cli_db_replicas(const char *url) {
  const char *env = getenv("DATABASE_REPLICA_URLS");
  if (!env || !*env || cli_url_dialect(url) != DORM_DIALECT_POSTGRES)
    return NULL;
  return env;
}

dorm_dialect cli_url_dialect(const char *url) {
  if (!strncmp(url, "postgresql:", 11) || !strncmp(url, "postgres:", 9))
    return DORM_DIALECT_POSTGRES;
  if (!strncmp(url, "sqlite:", 7)) return DORM_DIALECT_SQLITE;
  if (strchr(url, '=')) return DORM_DIALECT_POSTGRES;
  return DORM_DIALECT_SQLITE;
}

/* ---- migrations ---------------------------------------------------------- */

int cli_load_migrations(const char *dir, dorm_migration_set **set) {
  dorm_error err;
  dorm_error_clear(&err);
  *set = dorm_migrations_load(dir, &err);
  if (!*set) return cli_error("%s", err.message);
  return 0;
}

int cli_sqlite_missing(const char *url, char *path, size_t cap) {
  if (strncmp(url, "sqlite:///", 10)) return 0;
  const char *p = url + 10, *q = strchr(p, '?');
  size_t n = q ? (size_t)(q - p) : strlen(p);
  if (!n || n >= cap || (n == 8 && !strncmp(p, ":memory:", 8))) return 0;
  memcpy(path, p, n);
  dorm_http_url_decode(path, n); /* as the SQLite backend reads it */
  struct stat sb;
  return stat(path, &sb) != 0 && errno == ENOENT;
}

int cli_load_existing_migrations(const char *dir, dorm_migration_set **set) {
  struct stat sb;
  if (stat(dir, &sb) != 0) {
    if (errno == ENOENT)
      return cli_error(
          "migrations folder '%s' does not exist (run `dorm makemigrations` "
          "first, or name the folder with --migrations DIR)",
          dir);
    return cli_error("migrations folder '%s': %s", dir, strerror(errno));
  }
  if (!S_ISDIR(sb.st_mode))
    return cli_error("migrations folder '%s' is not a folder", dir);
  return cli_load_migrations(dir, set);
}

int cli_replay(const dorm_migration_set *set, size_t upto, dorm_mstate **st) {
  dorm_error err;
  dorm_error_clear(&err);
  *st = dorm_mstate_new();
  if (!*st) return cli_error("out of memory");
  for (size_t i = 0; i < upto && i < set->n; i++)
    if (dorm_mstate_apply_migration(*st, &set->migs[i], &err)) {
      dorm_mstate_free(*st);
      *st = NULL;
      return cli_error("%s", err.message);
    }
  return 0;
}

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
  for (size_t i = 0; i < s->nblocks; i++) free(s->blocks[i]);
  free(s->blocks);
  free(s->c);
  memset(s, 0, sizeof *s);
}

static void *cons_keep(cons_set *s, void *p) {
  if (!p) return NULL;
  void **nb = realloc(s->blocks, (s->nblocks + 1) * sizeof *nb);
  if (!nb) {
    free(p);
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
      dorm_value *items = cons_keep(s, calloc(n ? n : 1, sizeof *items));
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
    const char **names = cons_keep(s, calloc(c->nfields + 1, sizeof *names));
    if (!names) return dorm_error_set(err, DORM_ENOMEM, NULL);
    for (size_t i = 0; i < c->nfields; i++)
      names[i] = json_string_value(json_array_get(fs, i));
    c->fields = names;
    return 0;
  }
  const json_t *chk = json_object_get(k, "check");
  c->kind = DORM_CONSTRAINT_CHECK;
  c->nterms = json_object_size(chk);
  dorm_check_term *t = cons_keep(s, calloc(c->nterms + 1, sizeof *t));
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
    char *field =
        cons_keep(s, strndup(key, op >= 0 ? (size_t)(sep - key) : strlen(key)));
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
  s->c = calloc(n ? n : 1, sizeof *s->c);
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
  out->stmts = calloc(n ? n : 1, sizeof *out->stmts);
  if (!out->stmts) return dorm_error_set(err, DORM_ENOMEM, NULL);
  out->cap = n ? n : 1;
  for (size_t i = 0; i < n; i++) {
    const char *s = json_is_array(v) ? json_string_value(json_array_get(v, i))
                                     : json_string_value(v);
    if (!(out->stmts[i] = strdup(s)))
      return dorm_error_set(err, DORM_ENOMEM, NULL);
    out->n++;
  }
  return 0;
}

int cli_op_sql(dorm_mstate *st, const json_t *op, dorm_dialect d, dorm_ddl *out,
               dorm_error *err) {
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

/* Write j for people: a value that fits on one line of about 100
 * characters stays on one line ({"name": "age", "type": "integer"}),
 * anything longer is opened up one level at a time, so a field reads as
 * in models.json and the file diffs well. */
void cli_print_json(FILE *f, json_t *j, int indent) {
  size_t flags = JSON_PRESERVE_ORDER | JSON_ENCODE_ANY;
  char *one = json_dumps(j, flags);
  if (one &&
      (strlen(one) <= 100 || !(json_is_object(j) || json_is_array(j)) ||
       (json_is_object(j) ? json_object_size(j) : json_array_size(j)) == 0)) {
    fputs(one, f);
    free(one);
    return;
  }
  free(one);
  if (json_is_array(j)) {
    fputs("[\n", f);
    for (size_t i = 0; i < json_array_size(j); i++) {
      fprintf(f, "%*s", indent + 2, "");
      cli_print_json(f, json_array_get(j, i), indent + 2);
      fputs(i + 1 < json_array_size(j) ? ",\n" : "\n", f);
    }
    fprintf(f, "%*s]", indent, "");
    return;
  }
  fputs("{\n", f);
  size_t n = json_object_size(j), i = 0;
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    json_t *key = json_string(k);
    char *ks = key ? json_dumps(key, JSON_ENCODE_ANY) : NULL;
    fprintf(f, "%*s%s: ", indent + 2, "", ks ? ks : "\"?\"");
    free(ks);
    json_decref(key);
    cli_print_json(f, v, indent + 2);
    fputs(++i < n ? ",\n" : "\n", f);
  }
  fprintf(f, "%*s}", indent, "");
}

/* ---- loop -------------------------------------------------------------------
 */

int cli_loop_init(cli_loop *l) {
  if (uv_loop_init(&l->uv)) return cli_error("cannot start the event loop");
  l->loop = dorm_loop_new(&l->uv);
  if (!l->loop) {
    uv_loop_close(&l->uv);
    return cli_error("out of memory");
  }
  return 0;
}

void cli_loop_close(cli_loop *l) {
  dorm_loop_close(l->loop, NULL, NULL);
  uv_run(&l->uv, UV_RUN_DEFAULT);
  uv_loop_close(&l->uv);
}

typedef struct waiter {
  int done;
  dorm_result res;
} waiter;

static dorm_result keep_result(dorm_result *res, void *arg) {
  waiter *w = arg;
  w->res = dorm_result_take(res);
  w->done = 1;
  return dorm_result_none();
}

int cli_wait(cli_loop *l, dorm_deferred *d, dorm_result *out) {
  waiter w;
  memset(&w, 0, sizeof w);
  if (!d) {
    *out = dorm_result_error(DORM_ENOMEM, NULL);
    return DORM_ENOMEM;
  }
  if (dorm_deferred_add_both(d, keep_result, &w)) {
    *out = dorm_result_error(DORM_ENOMEM, NULL);
    return DORM_ENOMEM;
  }
  while (!w.done) uv_run(&l->uv, UV_RUN_ONCE);
  *out = w.res;
  return dorm_result_code(out);
}

static void closed_cb(void *arg) { *(int *)arg = 1; }

void cli_db_close(cli_loop *l, dorm_db *db) {
  if (!db) return;
  int closed = 0;
  dorm_db_close(db, closed_cb, &closed);
  while (!closed) uv_run(&l->uv, UV_RUN_ONCE);
}
