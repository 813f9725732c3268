/* SPDX-License-Identifier: MIT */
/* schema/models_json.c — loading models.json (format in docs/models.md).
 *
 * jansson parses the text (duplicate keys refused, so a repeated "null"
 * cannot silently override the first); this file checks the JSON shape —
 * object keys it knows, JSON types of options — and feeds everything to the
 * schema builder, whose finish step holds the one set of model rules.  So a
 * file and a schema built in C are refused for the same reasons with the
 * same words.
 *
 * Positions: jansson gives line and column only for syntax errors, so
 * before feeding the builder one scan of the text (json_pos.c) records
 * where each model, field, index and ordering item starts; semantic
 * messages then read "models.json:14:9: model 'Entry', field 'author':
 * unknown model 'Autor'".  An unknown key or a wrongly typed option is
 * located precisely, by a second scan that runs only when reporting it.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "schema/schema_int.h"

/* Where each model's parts start: one block of (line, col) pairs per model:
 * the model, then its fields, indexes, unique_together and ordering. */
enum { PART_FIELDS, PART_INDEXES, PART_UNIQUES, PART_ORDERING, PART__N };
static const char *const part_keys[PART__N] = {"fields", "indexes",
                                               "unique_together", "ordering"};

typedef struct mpos {
  size_t off;            /* index of the model's pair in loader.pos */
  size_t n[PART__N];     /* entries of each part */
  size_t first[PART__N]; /* index of each part's first pair */
} mpos;

typedef struct loader {
  const char *text;
  size_t len;
  dorm_schema_builder *b;
  mpos *mp;
  size_t nmodels;
  int *pos; /* line, col pairs; 0 when unknown */
  /* context for messages */
  size_t mi;         /* current model index */
  const char *model; /* its name, or "#n" */
  char model_num[24];
} loader;

/* ---- positions ---------------------------------------------------------- */

static int key_is(const dorm__jstep *st, const char *key) {
  return st->key && st->keylen == strlen(key) &&
         memcmp(st->key, key, st->keylen) == 0;
}

static int record_visit(void *ud, const dorm__jstep *path, size_t depth,
                        int line, int col, int kl, int kc) {
  loader *L = ud;
  (void)kl;
  (void)kc;
  if (depth == 0) return 0;
  if (!key_is(&path[0], "models")) return 2;
  if (depth == 1) return 0;
  size_t i = path[1].index;
  if (i >= L->nmodels) return 2;
  mpos *m = &L->mp[i];
  if (depth == 2) {
    L->pos[2 * m->off] = line;
    L->pos[2 * m->off + 1] = col;
    return 0;
  }
  for (int p = 0; p < PART__N; p++) {
    if (!key_is(&path[2], part_keys[p])) continue;
    if (depth == 3) return 0;
    size_t j = path[3].index;
    if (j < m->n[p]) {
      L->pos[2 * (m->first[p] + j)] = line;
      L->pos[2 * (m->first[p] + j) + 1] = col;
    }
    return 2;
  }
  return 2;
}

/* Count the entries of every part, allocate the pairs, scan the text. */
static int record_positions(loader *L, json_t *models) {
  L->nmodels = json_array_size(models);
  if (!L->nmodels) return 0;
  L->mp = dorm__calloc(L->nmodels, sizeof *L->mp);
  if (!L->mp) return DORM_ENOMEM;
  size_t total = 0;
  for (size_t i = 0; i < L->nmodels; i++) {
    json_t *m = json_array_get(models, i);
    mpos *mp = &L->mp[i];
    mp->off = total++;
    for (int p = 0; p < PART__N; p++) {
      json_t *a = json_object_get(m, part_keys[p]);
      mp->n[p] = json_is_array(a) ? json_array_size(a) : 0;
      mp->first[p] = total;
      total += mp->n[p];
    }
  }
  L->pos = dorm__calloc(2 * total, sizeof *L->pos);
  if (!L->pos) return DORM_ENOMEM;
  dorm__json_walk(L->text, L->len, 4, record_visit, L);
  return 0;
}

static void part_pos(loader *L, int part, size_t j, int *line, int *col) {
  *line = *col = 0;
  if (L->mi >= L->nmodels || j >= L->mp[L->mi].n[part]) return;
  size_t k = L->mp[L->mi].first[part] + j;
  *line = L->pos[2 * k];
  *col = L->pos[2 * k + 1];
}

static void model_pos(loader *L, int *line, int *col) {
  *line = *col = 0;
  if (L->mi >= L->nmodels) return;
  *line = L->pos[2 * L->mp[L->mi].off];
  *col = L->pos[2 * L->mp[L->mi].off + 1];
}

/* ---- errors ------------------------------------------------------------- */

/* Fail at the key `key` of the current model (fj < 0) or of its field fj,
 * falling back to the object's own position when the key is not found
 * (escaped key text, say). */
static int fail_at_key(loader *L, long fj, const char *field, const char *key,
                       const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static int fail_at_key(loader *L, long fj, const char *field, const char *key,
                       const char *fmt, ...) {
  int line, col;
  dorm__jstep path[5] = {{"models", 0, 0}, {NULL, 0, L->mi}};
  size_t depth = 2;
  if (fj >= 0) {
    path[2] = (dorm__jstep){"fields", 0, 0};
    path[3] = (dorm__jstep){NULL, 0, (size_t)fj};
    depth = 4;
    part_pos(L, PART_FIELDS, (size_t)fj, &line, &col);
  } else {
    model_pos(L, &line, &col);
  }
  if (key) {
    path[depth++] = (dorm__jstep){key, 0, 0};
    dorm__json_locate(L->text, L->len, path, depth, 1, &line, &col);
  }
  char msg[DORM_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return dorm__builder_fail(L->b, DORM_ESCHEMA, line, col, L->model, field,
                            "%s", msg);
}

/* " (did you mean 'null'?)" when a candidate is close, else "". */
static void suggest(const char *word, const char *const *cands, char *buf,
                    size_t len) {
  dorm__suggest sg;
  dorm__suggest_init(&sg, word, strlen(word));
  for (size_t i = 0; cands[i]; i++) dorm__suggest_add(&sg, cands[i]);
  if (sg.best)
    snprintf(buf, len, " (did you mean '%s'?)", sg.best);
  else
    buf[0] = '\0';
}

static const char *const model_keys[] = {
    "name", "table", "fields", "indexes", "unique_together", "ordering", NULL};
static const char *const field_keys[] = {
    "name",    "type",       "null",         "default",
    "unique",  "db_index",   "db_column",    "primary_key",
    "choices", "max_length", "max_digits",   "decimal_places",
    "to",      "on_delete",  "related_name", NULL};
static const char *const index_keys[] = {"fields", "name", "unique", NULL};
static const char *const on_delete_names[] = {
    "cascade",     "protect",    "restrict", "set_null",
    "set_default", "do_nothing", NULL};

static int known(const char *key, const char *const *keys) {
  for (size_t i = 0; keys[i]; i++)
    if (strcmp(keys[i], key) == 0) return 1;
  return 0;
}

/* The first key of obj not in keys, reported at its position. */
static int check_keys(loader *L, json_t *obj, const char *const *keys, long fj,
                      const char *field) {
  const char *key;
  json_t *val;
  json_object_foreach(obj, key, val) {
    (void)val;
    if (known(key, keys)) continue;
    char hint[64];
    suggest(key, keys, hint, sizeof hint);
    return fail_at_key(L, fj, field, key, "unknown key '%s'%s", key, hint);
  }
  return 0;
}

/* ---- values ------------------------------------------------------------- */

/* A JSON value as a dorm_value for the builder.  For a json field (and for
 * arrays and objects anywhere, which the checks then refuse with the
 * field's name) the value is its compact text, in *tmp (dorm__free it). */
static int to_value(json_t *j, int as_json, dorm_value *out, char **tmp) {
  *tmp = NULL;
  if (!as_json) {
    switch (json_typeof(j)) {
      case JSON_NULL: *out = dorm_null(); return 0;
      case JSON_TRUE: *out = dorm_bool(1); return 0;
      case JSON_FALSE: *out = dorm_bool(0); return 0;
      case JSON_INTEGER: *out = dorm_int(json_integer_value(j)); return 0;
      case JSON_REAL: *out = dorm_float(json_real_value(j)); return 0;
      case JSON_STRING:
        *out = dorm_strn(json_string_value(j), json_string_length(j));
        return 0;
      default: break;
    }
  }
  size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
  /* jansson's dump can leave a key out when an allocation fails: the
   * allocator's note catches it */
  dorm__json_begin();
  size_t n = json_dumpb(j, NULL, 0, flags);
  if (n == 0 || dorm__json_oom(NULL)) return DORM_ENOMEM;
  char *p = dorm__malloc(n + 1);
  if (!p) return DORM_ENOMEM;
  dorm__json_begin();
  if (json_dumpb(j, p, n, flags) != n || dorm__json_oom(NULL)) {
    dorm__free(p);
    return DORM_ENOMEM;
  }
  p[n] = '\0';
  *tmp = p;
  *out = dorm_textn(DORM_T_JSON, p, n);
  return 0;
}

static int get_bool(loader *L, json_t *obj, const char *key, long fj,
                    const char *field, int *out) {
  json_t *v = json_object_get(obj, key);
  if (!v) return 0;
  if (!json_is_boolean(v))
    return fail_at_key(L, fj, field, key, "\"%s\" must be true or false", key);
  *out = json_is_true(v);
  return 0;
}

/* 1 when present (and valid), 0 when absent, <0 on error. */
static int get_int(loader *L, json_t *obj, const char *key, long fj,
                   const char *field, int *out) {
  json_t *v = json_object_get(obj, key);
  if (!v) return 0;
  if (!json_is_integer(v))
    return fail_at_key(L, fj, field, key, "\"%s\" must be an integer", key);
  json_int_t i = json_integer_value(v);
  if (i < -2147483647 || i > 2147483647)
    return fail_at_key(L, fj, field, key, "\"%s\" is out of range", key);
  *out = (int)i;
  return 1;
}

/* 1 when present, 0 when absent, <0 on error. */
static int get_str(loader *L, json_t *obj, const char *key, long fj,
                   const char *field, const char **out) {
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  if (!v) return 0;
  if (!json_is_string(v))
    return fail_at_key(L, fj, field, key, "\"%s\" must be a string", key);
  *out = json_string_value(v);
  return 1;
}

/* ---- fields ------------------------------------------------------------- */

static int load_choices(loader *L, json_t *arr, size_t fj, const char *fname) {
  if (!json_is_array(arr))
    return fail_at_key(L, (long)fj, fname, "choices",
                       "\"choices\" must be an array");
  size_t n = json_array_size(arr);
  dorm_value *vals = dorm__calloc(n ? n : 1, sizeof *vals);
  const char **labels = dorm__calloc(n ? n : 1, sizeof *labels);
  int rc = 0;
  if (!vals || !labels) rc = DORM_ENOMEM;
  for (size_t k = 0; !rc && k < n; k++) {
    json_t *c = json_array_get(arr, k);
    if (json_is_array(c) && json_array_size(c) == 2 &&
        json_is_string(json_array_get(c, 1))) {
      labels[k] = json_string_value(json_array_get(c, 1));
      c = json_array_get(c, 0);
    }
    char *tmp;
    if (json_is_array(c) || json_is_object(c)) {
      rc = fail_at_key(L, (long)fj, fname, "choices",
                       "\"choices\" entries must be values or [value, "
                       "label] pairs");
    } else {
      rc = to_value(c, 0, &vals[k], &tmp); /* scalars: no tmp */
    }
  }
  if (!rc) rc = dorm_schema_builder_choices(L->b, vals, labels, n);
  dorm__free(vals);
  dorm__free(labels);
  return rc;
}

static int load_field(loader *L, json_t *jf, size_t fj) {
  dorm_schema_builder *b = L->b;
  char num[24];
  snprintf(num, sizeof num, "#%zu", fj + 1);
  if (!json_is_object(jf))
    return fail_at_key(L, (long)fj, num, NULL, "must be an object");
  const char *name, *type_name;
  int rc = get_str(L, jf, "name", (long)fj, num, &name);
  if (rc < 0) return rc;
  if (!name) return fail_at_key(L, (long)fj, num, NULL, "missing \"name\"");
  if (check_keys(L, jf, field_keys, (long)fj, name)) return b->err.code;
  rc = get_str(L, jf, "type", (long)fj, name, &type_name);
  if (rc < 0) return rc;
  if (!type_name)
    return fail_at_key(L, (long)fj, name, NULL, "missing \"type\"");
  int type = dorm_field_type_parse(type_name);
  if (type < 0) {
    static const char *const names[] = {
        "auto",   "bigauto",     "smallint",   "integer",      "bigint",
        "float",  "decimal",     "boolean",    "varchar",      "text",
        "date",   "datetime",    "time",       "uuid",         "json",
        "binary", "foreign_key", "one_to_one", "many_to_many", NULL};
    char hint[64];
    suggest(type_name, names, hint, sizeof hint);
    return fail_at_key(L, (long)fj, name, "type", "unknown type '%s'%s",
                       type_name, hint);
  }

  int isnull = 0, unique = 0, db_index = 0, pk = 0;
  if (get_bool(L, jf, "null", (long)fj, name, &isnull) ||
      get_bool(L, jf, "unique", (long)fj, name, &unique) ||
      get_bool(L, jf, "db_index", (long)fj, name, &db_index) ||
      get_bool(L, jf, "primary_key", (long)fj, name, &pk))
    return b->err.code;
  int max_length = 0, max_digits = 0, places = 0;
  int has_ml, has_md, has_dp;
  if ((has_ml = get_int(L, jf, "max_length", (long)fj, name, &max_length)) <
          0 ||
      (has_md = get_int(L, jf, "max_digits", (long)fj, name, &max_digits)) <
          0 ||
      (has_dp = get_int(L, jf, "decimal_places", (long)fj, name, &places)) < 0)
    return b->err.code;
  const char *db_column, *to, *on_delete, *related_name;
  if (get_str(L, jf, "db_column", (long)fj, name, &db_column) < 0 ||
      get_str(L, jf, "to", (long)fj, name, &to) < 0 ||
      get_str(L, jf, "on_delete", (long)fj, name, &on_delete) < 0 ||
      get_str(L, jf, "related_name", (long)fj, name, &related_name) < 0)
    return b->err.code;
  dorm_on_delete od = DORM_ON_DELETE_CASCADE;
  if (on_delete) {
    int k = 0;
    while (on_delete_names[k] && strcmp(on_delete_names[k], on_delete) != 0)
      k++;
    if (!on_delete_names[k])
      return fail_at_key(L, (long)fj, name, "on_delete",
                         "unknown on_delete '%s' (expected cascade, protect, "
                         "restrict, set_null, set_default or do_nothing)",
                         on_delete);
    od = (dorm_on_delete)k;
  }

  unsigned flags =
      (isnull ? DORM_FIELD_NULL : 0) | (unique ? DORM_FIELD_UNIQUE : 0) |
      (db_index ? DORM_FIELD_DB_INDEX : 0) | (pk ? DORM_FIELD_PRIMARY_KEY : 0);
  if ((rc = dorm_schema_builder_field(b, name, (dorm_field_type)type, flags)))
    return rc;
  int line, col;
  part_pos(L, PART_FIELDS, fj, &line, &col);
  dorm__builder_field_pos(b, line, col);

  if (has_ml && (rc = dorm_schema_builder_max_length(b, max_length))) return rc;
  if (has_md || has_dp) {
    if ((rc = dorm_schema_builder_decimal(b, max_digits, places))) return rc;
    /* Say which half was given, so "needs both" can be reported. */
    dorm__bfield *bf = dorm__builder_cur_field(b);
    bf->opts &= ~(unsigned)(DORM__OPT_MAX_DIGITS | DORM__OPT_DECIMAL_PLACES);
    if (has_md) bf->opts |= DORM__OPT_MAX_DIGITS;
    if (has_dp) bf->opts |= DORM__OPT_DECIMAL_PLACES;
  }
  if (db_column && (rc = dorm_schema_builder_db_column(b, db_column)))
    return rc;
  if ((to || related_name) &&
      (rc = dorm_schema_builder_relation(b, to, od, related_name)))
    return rc;
  if (on_delete) {
    dorm__bfield *bf = dorm__builder_cur_field(b);
    bf->f.on_delete = od;
    bf->opts |= DORM__OPT_ON_DELETE;
  }
  json_t *def = json_object_get(jf, "default");
  if (def) {
    dorm_value v;
    char *tmp;
    if ((rc = to_value(def, type == DORM_FIELD_JSON, &v, &tmp)))
      return dorm_error_set(&b->err, rc, NULL);
    int canon = tmp != NULL; /* text from json_dumpb */
    rc = dorm_schema_builder_default(b, v);
    dorm__free(tmp);
    if (rc) return rc;
    if (canon) dorm__builder_cur_field(b)->opts |= DORM__OPT_JSON_CANON;
  }
  json_t *choices = json_object_get(jf, "choices");
  if (choices && (rc = load_choices(L, choices, fj, name))) {
    if (rc == DORM_ENOMEM) dorm_error_set(&b->err, rc, NULL);
    return rc;
  }
  return 0;
}

/* ---- models ------------------------------------------------------------- */

static int load_names(loader *L, json_t *arr, size_t k, int part,
                      const char *what, const char ***out, size_t *n) {
  int line, col;
  part_pos(L, part, k, &line, &col);
  *out = NULL;
  *n = 0;
  int ok = json_is_array(arr);
  for (size_t q = 0; ok && q < json_array_size(arr); q++)
    ok = json_is_string(json_array_get(arr, q));
  if (!ok)
    return dorm__builder_fail(L->b, DORM_ESCHEMA, line, col, L->model, NULL,
                              "%s must be an array of field names", what);
  *n = json_array_size(arr);
  *out = dorm__calloc(*n ? *n : 1, sizeof **out);
  if (!*out) return dorm_error_set(&L->b->err, DORM_ENOMEM, NULL);
  for (size_t q = 0; q < *n; q++)
    (*out)[q] = json_string_value(json_array_get(arr, q));
  return 0;
}

static int load_indexes(loader *L, json_t *jm) {
  dorm_schema_builder *b = L->b;
  json_t *arr = json_object_get(jm, "indexes");
  if (!arr) return 0;
  if (!json_is_array(arr))
    return fail_at_key(L, -1, NULL, "indexes",
                       "\"indexes\" must be an array of objects");
  for (size_t k = 0; k < json_array_size(arr); k++) {
    json_t *ji = json_array_get(arr, k);
    int line, col;
    part_pos(L, PART_INDEXES, k, &line, &col);
    if (!json_is_object(ji))
      return dorm__builder_fail(b, DORM_ESCHEMA, line, col, L->model, NULL,
                                "\"indexes\" must be an array of objects");
    const char *key;
    json_t *val;
    json_object_foreach(ji, key, val) {
      (void)val;
      if (known(key, index_keys)) continue;
      char hint[64];
      suggest(key, index_keys, hint, sizeof hint);
      return dorm__builder_fail(b, DORM_ESCHEMA, line, col, L->model, NULL,
                                "unknown key '%s' in index #%zu%s", key, k + 1,
                                hint);
    }
    json_t *jn = json_object_get(ji, "name");
    json_t *ju = json_object_get(ji, "unique");
    if (jn && !json_is_string(jn))
      return dorm__builder_fail(b, DORM_ESCHEMA, line, col, L->model, NULL,
                                "index #%zu: \"name\" must be a string", k + 1);
    if (ju && !json_is_boolean(ju))
      return dorm__builder_fail(b, DORM_ESCHEMA, line, col, L->model, NULL,
                                "index #%zu: \"unique\" must be true or false",
                                k + 1);
    json_t *jfields = json_object_get(ji, "fields");
    if (!jfields)
      return dorm__builder_fail(b, DORM_ESCHEMA, line, col, L->model, NULL,
                                "index #%zu: missing \"fields\"", k + 1);
    const char **names;
    size_t n;
    char what[48];
    snprintf(what, sizeof what, "index #%zu: \"fields\"", k + 1);
    if (load_names(L, jfields, k, PART_INDEXES, what, &names, &n))
      return b->err.code;
    const char *iname = jn ? json_string_value(jn) : NULL;
    int rc = json_is_true(ju)
                 ? dorm_schema_builder_unique_index(b, iname, names, n)
                 : dorm_schema_builder_index(b, iname, names, n, 0);
    dorm__free(names);
    if (rc) return rc;
    dorm__builder_index_pos(b, 0, line, col);
  }
  return 0;
}

static int load_uniques(loader *L, json_t *jm) {
  dorm_schema_builder *b = L->b;
  json_t *arr = json_object_get(jm, "unique_together");
  if (!arr) return 0;
  if (!json_is_array(arr))
    return fail_at_key(L, -1, NULL, "unique_together",
                       "\"unique_together\" must be an array of arrays of "
                       "field names");
  /* Django also takes one flat group: ["name", "email"]. */
  int flat = json_array_size(arr) > 0;
  for (size_t k = 0; flat && k < json_array_size(arr); k++)
    flat = json_is_string(json_array_get(arr, k));
  size_t groups = flat ? 1 : json_array_size(arr);
  for (size_t k = 0; k < groups; k++) {
    json_t *g = flat ? arr : json_array_get(arr, k);
    const char **names;
    size_t n;
    if (load_names(L, g, flat ? (size_t)-1 : k, PART_UNIQUES,
                   "each \"unique_together\" entry", &names, &n))
      return b->err.code;
    int rc = dorm_schema_builder_index(b, NULL, names, n, 1);
    dorm__free(names);
    if (rc) return rc;
    int line, col;
    part_pos(L, PART_UNIQUES, flat ? (size_t)-1 : k, &line, &col);
    if (!line) model_pos(L, &line, &col);
    dorm__builder_index_pos(b, 1, line, col);
  }
  return 0;
}

static int load_ordering(loader *L, json_t *jm) {
  dorm_schema_builder *b = L->b;
  json_t *arr = json_object_get(jm, "ordering");
  if (!arr) return 0;
  if (!json_is_array(arr))
    return fail_at_key(L, -1, NULL, "ordering",
                       "\"ordering\" must be an array of field names");
  for (size_t k = 0; k < json_array_size(arr); k++) {
    json_t *it = json_array_get(arr, k);
    int line, col;
    part_pos(L, PART_ORDERING, k, &line, &col);
    if (!json_is_string(it))
      return dorm__builder_fail(b, DORM_ESCHEMA, line, col, L->model, NULL,
                                "\"ordering\" must be an array of field "
                                "names");
    int rc = dorm_schema_builder_ordering(b, json_string_value(it));
    if (rc) return rc;
    if (line) dorm__builder_ordering_pos(b, line, col);
  }
  return 0;
}

static int load_model(loader *L, json_t *jm) {
  dorm_schema_builder *b = L->b;
  snprintf(L->model_num, sizeof L->model_num, "#%zu", L->mi + 1);
  L->model = L->model_num;
  if (!json_is_object(jm))
    return fail_at_key(L, -1, NULL, NULL, "must be an object");
  const char *name, *table;
  int rc = get_str(L, jm, "name", -1, NULL, &name);
  if (rc < 0) return rc;
  if (!name) return fail_at_key(L, -1, NULL, NULL, "missing \"name\"");
  L->model = name;
  if (check_keys(L, jm, model_keys, -1, NULL)) return b->err.code;
  if (get_str(L, jm, "table", -1, NULL, &table) < 0) return b->err.code;
  if ((rc = dorm_schema_builder_model(b, name, table))) return rc;
  int line, col;
  model_pos(L, &line, &col);
  dorm__builder_model_pos(b, line, col);

  json_t *fields = json_object_get(jm, "fields");
  if (fields && !json_is_array(fields))
    return fail_at_key(L, -1, NULL, "fields",
                       "\"fields\" must be an array of objects");
  for (size_t j = 0; j < json_array_size(fields); j++)
    if ((rc = load_field(L, json_array_get(fields, j), j))) return rc;
  if ((rc = load_indexes(L, jm)) || (rc = load_uniques(L, jm)) ||
      (rc = load_ordering(L, jm)))
    return rc;
  return 0;
}

static int load_root(loader *L, json_t *root) {
  dorm_schema_builder *b = L->b;
  if (!json_is_object(root))
    return dorm__builder_fail(b, DORM_ESCHEMA, 1, 1, NULL, NULL,
                              "the top level must be an object with a "
                              "\"models\" array");
  static const char *const top_keys[] = {"models", NULL};
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    (void)val;
    if (known(key, top_keys)) continue;
    int line = 0, col = 0;
    dorm__jstep path[1] = {{key, 0, 0}};
    dorm__json_locate(L->text, L->len, path, 1, 1, &line, &col);
    char hint[64];
    suggest(key, top_keys, hint, sizeof hint);
    return dorm__builder_fail(b, DORM_ESCHEMA, line, col, NULL, NULL,
                              "unknown key '%s' at the top level%s", key, hint);
  }
  json_t *models = json_object_get(root, "models");
  if (!models)
    return dorm__builder_fail(b, DORM_ESCHEMA, 0, 0, NULL, NULL,
                              "missing \"models\"");
  if (!json_is_array(models)) {
    int line = 0, col = 0;
    dorm__jstep path[1] = {{"models", 0, 0}};
    dorm__json_locate(L->text, L->len, path, 1, 0, &line, &col);
    return dorm__builder_fail(b, DORM_ESCHEMA, line, col, NULL, NULL,
                              "\"models\" must be an array");
  }
  if (record_positions(L, models))
    return dorm_error_set(&b->err, DORM_ENOMEM, NULL);
  for (L->mi = 0; L->mi < json_array_size(models); L->mi++) {
    int rc = load_model(L, json_array_get(models, L->mi));
    if (rc) return rc;
  }
  return 0;
}

static dorm_schema *load_text(const char *text, size_t len, const char *source,
                              dorm_error *err) {
  json_error_t jerr;
  /* json_error_code reads a byte jansson leaves unset when it fails early. */
  memset(&jerr, 0, sizeof jerr);
  dorm__json_begin();
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    /* jansson fails some allocations (its lexer's buffer) without saying
     * why; every real syntax error comes with a text. */
    if (dorm__json_oom(&jerr)) {
      dorm_error_set(err, DORM_ENOMEM, NULL);
    } else if (jerr.line > 0) {
      dorm_error_set(err, DORM_EJSON, "%s:%d:%d: malformed JSON: %s", source,
                     jerr.line, jerr.column, jerr.text);
    } else {
      dorm_error_set(err, DORM_EJSON, "%s: malformed JSON: %s", source,
                     jerr.text);
    }
    return NULL;
  }
  loader L;
  memset(&L, 0, sizeof L);
  L.text = text;
  L.len = len;
  L.b = dorm_schema_builder_new();
  if (L.b) {
    dorm__builder_set_source(L.b, source);
    load_root(&L, root);
  }
  json_decref(root);
  dorm__free(L.mp);
  dorm__free(L.pos);
  /* finish reports a loading error as well as its own, and frees b. */
  return dorm_schema_builder_finish(L.b, err);
}

dorm_schema *dorm_schema_load_string(const char *json, const char *name,
                                     dorm_error *err) {
  if (!json) {
    dorm_error_set(err, DORM_EINVAL, "dorm_schema_load_string: no text");
    return NULL;
  }
  return load_text(json, strlen(json), name ? name : "<memory>", err);
}

dorm_schema *dorm_schema_load_file(const char *path, dorm_error *err) {
  if (!path) {
    dorm_error_set(err, DORM_EINVAL, "dorm_schema_load_file: no path");
    return NULL;
  }
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
  int read_error = ferror(f);
  int saved = errno;
  fclose(f);
  if (read_error) {
    dorm__buf_free(&buf);
    dorm_error_set(err, DORM_EIO, "%s: cannot read: %s", path, strerror(saved));
    return NULL;
  }
  if (buf.oom) {
    dorm__buf_free(&buf);
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  dorm_schema *s = load_text(dorm__buf_cstr(&buf), buf.len, path, err);
  dorm__buf_free(&buf);
  return s;
}
