/* SPDX-License-Identifier: MIT */
/* schema/check.c — dorm_schema_builder_finish: every rule a models file
 * must follow, the resolution of relations, and the final layout.
 *
 * The checks run in passes because later rules need earlier results:
 *   1. each model on its own: names, table, fields and their options, the
 *      primary key (adding the implicit "id"), columns;
 *   2. layout: the public arrays are written once into the arena, so every
 *      pointer (field->model, field->target, model->pk) is final;
 *   3. relations: "to" resolved against all models (later ones and the
 *      model itself included), primary-key relation cycles refused;
 *   4. defaults and choices, converted to the field's value type (a
 *      foreign key's follows its target's primary key, known only now);
 *   5. indexes, unique_together, ordering, and one namespace for tables,
 *      join tables and index names (PostgreSQL and SQLite share it).
 * The first error wins and the whole schema is refused: nothing built so
 * far survives, and every byte goes with the builder's arena.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schema/schema_int.h"

#define IDENT_RULE \
  "identifiers must match ^[A-Za-z_][A-Za-z0-9_]*$ and be at most 63 bytes"

typedef struct ctx {
  dorm_schema_builder *b;
  dorm__schema *s;
  dorm_model *models; /* final, in the arena */
} ctx;

/* Shorthands for errors about a model or one of its fields. */
#define FAIL_M(c, bm, ...)                                                    \
  dorm__builder_fail((c)->b, DORM_ESCHEMA, (bm)->line, (bm)->col, (bm)->name, \
                     NULL, __VA_ARGS__)
#define FAIL_F(c, bm, ff, ...)                                                \
  dorm__builder_fail((c)->b, DORM_ESCHEMA, (ff)->line, (ff)->col, (bm)->name, \
                     (ff)->name, __VA_ARGS__)

static int is_relation(dorm_field_type t) {
  return t == DORM_FIELD_FOREIGN_KEY || t == DORM_FIELD_ONE_TO_ONE ||
         t == DORM_FIELD_MANY_TO_MANY;
}

static char *lower_copy(dorm__arena *a, const char *s) {
  size_t n = strlen(s);
  char *d = dorm__arena_strndup(a, s, n);
  if (d)
    for (size_t i = 0; i < n; i++)
      if (d[i] >= 'A' && d[i] <= 'Z') d[i] = (char)(d[i] - 'A' + 'a');
  return d;
}

/* prefix + suffix, cut to DORM_IDENT_MAX with an 8-digit hash of the whole
 * name when longer, so long derived names stay distinct and stable. */
static char *derived_name(dorm__arena *a, const char *base, size_t n,
                          const char *suffix) {
  size_t sl = strlen(suffix);
  char tmp[DORM_IDENT_MAX + 1];
  size_t len;
  if (n + sl <= DORM_IDENT_MAX) {
    memcpy(tmp, base, n);
    memcpy(tmp + n, suffix, sl);
    len = n + sl;
  } else {
    uint32_t h = dorm__hash32(base, n, DORM__HASH32_INIT);
    h = dorm__hash32(suffix, sl, h);
    size_t keep = DORM_IDENT_MAX - 9 - sl;
    memcpy(tmp, base, keep);
    snprintf(tmp + keep, sizeof tmp - keep, "_%08x%s", (unsigned)h, suffix);
    len = keep + 9 + sl;
  }
  return dorm__arena_strndup(a, tmp, len);
}

/* ---- pass 1: one model at a time ---------------------------------------- */

static int check_field_options(ctx *c, dorm__bmodel *m, dorm__bfield *bf) {
  dorm_field *f = &bf->f;
  const char *tn = dorm_field_type_name(f->type);
  unsigned o = bf->opts;

  if (!dorm_ident_valid(f->name))
    return FAIL_F(c, m, f, "invalid field name '%s': " IDENT_RULE, f->name);
  if (strstr(f->name, "__"))
    return FAIL_F(c, m, f,
                  "field names must not contain \"__\" (it separates "
                  "lookups)");
  if (strcmp(f->name, "pk") == 0)
    return FAIL_F(c, m, f,
                  "\"pk\" is reserved (it always means the primary key); "
                  "choose another name");

  /* max_length: varchar only, and required there. */
  if (f->type == DORM_FIELD_VARCHAR) {
    if (!(o & DORM__OPT_MAX_LENGTH))
      return FAIL_F(c, m, f, "varchar needs \"max_length\"");
    if (f->max_length <= 0)
      return FAIL_F(c, m, f, "\"max_length\" must be positive, not %d",
                    f->max_length);
  } else if (o & DORM__OPT_MAX_LENGTH) {
    return FAIL_F(c, m, f, "\"max_length\" does not apply to %s fields", tn);
  }

  if (f->type == DORM_FIELD_DECIMAL) {
    if ((o & (DORM__OPT_MAX_DIGITS | DORM__OPT_DECIMAL_PLACES)) !=
        (DORM__OPT_MAX_DIGITS | DORM__OPT_DECIMAL_PLACES))
      return FAIL_F(c, m, f,
                    "decimal needs \"max_digits\" and \"decimal_places\"");
    if (f->max_digits <= 0)
      return FAIL_F(c, m, f, "\"max_digits\" must be positive, not %d",
                    f->max_digits);
    if (f->decimal_places < 0)
      return FAIL_F(c, m, f, "\"decimal_places\" must not be negative, not %d",
                    f->decimal_places);
    if (f->decimal_places > f->max_digits)
      return FAIL_F(c, m, f,
                    "\"decimal_places\" (%d) must not exceed \"max_digits\" "
                    "(%d)",
                    f->decimal_places, f->max_digits);
  } else if (o & (DORM__OPT_MAX_DIGITS | DORM__OPT_DECIMAL_PLACES)) {
    return FAIL_F(c, m, f, "\"%s\" does not apply to %s fields",
                  o & DORM__OPT_MAX_DIGITS ? "max_digits" : "decimal_places",
                  tn);
  }

  if (is_relation(f->type)) {
    if (!f->to) return FAIL_F(c, m, f, "%s needs \"to\"", tn);
    if (f->related_name && !dorm_ident_valid(f->related_name))
      return FAIL_F(c, m, f, "invalid related_name '%s': " IDENT_RULE,
                    f->related_name);
  } else if (o & (DORM__OPT_RELATION | DORM__OPT_ON_DELETE)) {
    const char *key = f->to             ? "to"
                      : f->related_name ? "related_name"
                                        : "on_delete";
    return FAIL_F(c, m, f, "\"%s\" does not apply to %s fields", key, tn);
  }

  if (f->type == DORM_FIELD_MANY_TO_MANY) {
    /* A join table, not a column: column options have nothing to act on. */
    const char *key = (o & DORM__OPT_ON_DELETE)             ? "on_delete"
                      : (f->flags & DORM_FIELD_NULL)        ? "null"
                      : (f->flags & DORM_FIELD_UNIQUE)      ? "unique"
                      : (f->flags & DORM_FIELD_DB_INDEX)    ? "db_index"
                      : (f->flags & DORM_FIELD_PRIMARY_KEY) ? "primary_key"
                      : (o & DORM__OPT_DEFAULT)             ? "default"
                      : (o & DORM__OPT_DB_COLUMN)           ? "db_column"
                      : (o & DORM__OPT_CHOICES)             ? "choices"
                                                            : NULL;
    if (key)
      return FAIL_F(c, m, f,
                    "\"%s\" does not apply to many_to_many fields (they "
                    "have a join table, not a column)",
                    key);
  }

  if (dorm_field_is_fk(f)) {
    if ((int)f->on_delete < DORM_ON_DELETE_CASCADE ||
        f->on_delete > DORM_ON_DELETE_DO_NOTHING)
      return FAIL_F(c, m, f, "unknown on_delete %d", (int)f->on_delete);
    if (f->on_delete == DORM_ON_DELETE_SET_NULL &&
        !(f->flags & DORM_FIELD_NULL))
      return FAIL_F(c, m, f, "on_delete set_null needs \"null\": true");
    if (f->on_delete == DORM_ON_DELETE_SET_DEFAULT && !(o & DORM__OPT_DEFAULT))
      return FAIL_F(c, m, f, "on_delete set_default needs a \"default\"");
  }

  if ((o & DORM__OPT_CHOICES) &&
      (f->type == DORM_FIELD_JSON || f->type == DORM_FIELD_BINARY))
    return FAIL_F(c, m, f, "\"choices\" does not apply to %s fields", tn);
  if ((o & DORM__OPT_CHOICES) && bf->nchoices == 0)
    return FAIL_F(c, m, f, "\"choices\" must not be empty");

  if (f->type == DORM_FIELD_AUTO || f->type == DORM_FIELD_BIGAUTO) {
    if (!(f->flags & DORM_FIELD_PRIMARY_KEY))
      return FAIL_F(c, m, f,
                    "%s fields must be the primary key (\"primary_key\": "
                    "true)",
                    tn);
    if (o & DORM__OPT_DEFAULT)
      return FAIL_F(
          c, m, f, "%s fields take no default (the database numbers rows)", tn);
  }
  if (f->flags & DORM_FIELD_PRIMARY_KEY) {
    if (f->flags & DORM_FIELD_NULL)
      return FAIL_F(c, m, f, "a primary key cannot be null");
    f->flags |= DORM_FIELD_UNIQUE;
  }
  if (f->type == DORM_FIELD_ONE_TO_ONE) f->flags |= DORM_FIELD_UNIQUE;

  if (o & DORM__OPT_DB_COLUMN) {
    if (!bf->db_column || !dorm_ident_valid(bf->db_column))
      return FAIL_F(c, m, f, "invalid db_column '%s': " IDENT_RULE,
                    bf->db_column ? bf->db_column : "");
  }
  return 0;
}

/* Column of a field: db_column, else name ("<name>_id" for a relation);
 * many_to_many has none. */
static int set_column(ctx *c, dorm__bmodel *m, dorm__bfield *bf) {
  dorm_field *f = &bf->f;
  if (f->type == DORM_FIELD_MANY_TO_MANY) {
    f->column = NULL;
    return 0;
  }
  if (bf->db_column) {
    f->column = bf->db_column;
    return 0;
  }
  if (!dorm_field_is_fk(f)) {
    f->column = f->name;
    return 0;
  }
  size_t n = strlen(f->name);
  char *col = dorm__arena_alloc(&c->b->arena, n + 4);
  if (!col) return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
  memcpy(col, f->name, n);
  memcpy(col + n, "_id", 4);
  f->column = col;
  if (!dorm_ident_valid(col))
    return FAIL_F(
        c, m, f, "column '%s' is longer than 63 bytes; set \"db_column\"", col);
  return 0;
}

static int check_model(ctx *c, dorm__bmodel *m) {
  if (!dorm_ident_valid(m->name))
    return FAIL_M(c, m, "invalid model name '%s': " IDENT_RULE, m->name);
  if (m->table && !dorm_ident_valid(m->table))
    return FAIL_M(c, m, "invalid table name '%s': " IDENT_RULE, m->table);
  if (!m->table) {
    m->table = lower_copy(&c->b->arena, m->name);
    if (!m->table) return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
  }

  const dorm_field *pk = NULL;
  for (size_t i = 0; i < m->nfields; i++) {
    dorm__bfield *bf = &m->fields[i];
    if (check_field_options(c, m, bf)) return c->b->err.code;
    for (size_t j = 0; j < i; j++)
      if (strcmp(m->fields[j].f.name, bf->f.name) == 0)
        return FAIL_F(c, m, &bf->f, "duplicate field name");
    if (bf->f.flags & DORM_FIELD_PRIMARY_KEY) {
      if (pk)
        return FAIL_F(c, m, &bf->f, "a second primary key (the first is '%s')",
                      pk->name);
      pk = &bf->f;
    }
    if (set_column(c, m, bf)) return c->b->err.code;
  }

  /* Columns are compared without case: SQLite ignores it, and a
   * PostgreSQL user expects "Name" and "name" to be one column. */
  for (size_t i = 0; i < m->nfields; i++) {
    dorm_field *f = &m->fields[i].f;
    if (!f->column) continue;
    for (size_t j = 0; j < i; j++) {
      const dorm_field *g = &m->fields[j].f;
      if (g->column && strcasecmp(g->column, f->column) == 0)
        return FAIL_F(c, m, f, "column '%s' is already used by field '%s'",
                      f->column, g->name);
    }
  }

  if (!pk) {
    /* Django's implicit AutoField: "id" must be free, as name and
     * column. */
    for (size_t i = 0; i < m->nfields; i++) {
      const dorm_field *f = &m->fields[i].f;
      if (strcmp(f->name, "id") == 0)
        return FAIL_F(c, m, f,
                      "a field named 'id' must be the primary key "
                      "(\"primary_key\": true): a model without one gets "
                      "an automatic 'id'");
      if (f->column && strcasecmp(f->column, "id") == 0)
        return FAIL_F(c, m, f,
                      "column 'id' is needed by the automatic primary key "
                      "'id'");
    }
  }
  return 0;
}

/* ---- name clashes, found by sorting -------------------------------------- */

/* NM_FIELDIX: the index or unique constraint a field gets of its own
 * (index_names.c), before the model indexes, so a model index that takes
 * its name is the one reported */
enum { NM_MODEL, NM_TABLE, NM_JOIN, NM_FIELDIX, NM_INDEX };

typedef struct nm {
  const char *name;
  int kind;
  size_t seq; /* declaration order */
  const dorm_model *model;
  const char *field; /* join tables: the many_to_many field; NM_FIELDIX:
                        the field */
  int line, col;
} nm;

static int nm_cmp(const void *pa, const void *pb) {
  const nm *a = pa, *b = pb;
  int r = strcasecmp(a->name, b->name);
  if (r) return r;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sort the names and report the clash whose later name was declared
 * first, so the message points at the first offending line. */
static int report_clash(ctx *c, nm *v, size_t n) {
  if (n < 2) return 0;
  qsort(v, n, sizeof *v, nm_cmp);
  const nm *first = NULL, *later = NULL;
  for (size_t i = 1; i < n; i++) {
    if (strcasecmp(v[i - 1].name, v[i].name) != 0) continue;
    /* v[i-1] is earlier than v[i]; the run's head is the original. */
    size_t h = i - 1;
    while (h > 0 && strcasecmp(v[h - 1].name, v[i].name) == 0) h--;
    if (!later || v[i].seq < later->seq) {
      later = &v[i];
      first = &v[h];
    }
  }
  if (!later) return 0;
  const char *what = later->kind == NM_MODEL   ? "model name"
                     : later->kind == NM_TABLE ? "table"
                     : later->kind == NM_JOIN  ? "join table"
                                               : "index name";
  const dorm_field *ff = first->kind == NM_FIELDIX && first->field
                             ? dorm_model_field(first->model, first->field)
                             : NULL;
  char other[DORM_ERROR_MSG_MAX];
  switch (first->kind) {
    case NM_MODEL:
      snprintf(other, sizeof other, "model '%s'%s", first->model->name,
               strcmp(first->name, later->name) == 0
                   ? ""
                   : " (model names are matched without case)");
      break;
    case NM_TABLE:
      snprintf(other, sizeof other, "the table of model '%s'",
               first->model->name);
      break;
    case NM_JOIN:
      snprintf(other, sizeof other, "the join table of model '%s', field '%s'",
               first->model->name, first->field);
      break;
    case NM_FIELDIX:
      snprintf(
          other, sizeof other,
          "the %s of model '%s', field '%s' (%s; keep one of the two)",
          ff && dorm__field_needs_unique(ff) ? "unique constraint" : "index",
          first->model->name, first->field,
          !ff                                 ? "its own"
          : dorm__field_needs_unique(ff)      ? "unique"
          : (ff->flags & DORM_FIELD_DB_INDEX) ? "db_index"
                                              : "a foreign key's index");
      break;
    default:
      snprintf(other, sizeof other, "an index of model '%s'",
               first->model->name);
      break;
  }
  if (later->kind == NM_MODEL)
    return dorm__builder_fail(
        c->b, DORM_ESCHEMA, later->line, later->col, later->model->name, NULL,
        "duplicate model name: already used by %s", other);
  return dorm__builder_fail(
      c->b, DORM_ESCHEMA, later->line, later->col, later->model->name,
      later->field, "%s '%s' clashes with %s", what, later->name, other);
}

static int check_model_names(ctx *c) {
  dorm_schema_builder *b = c->b;
  nm *v = dorm__calloc(b->nmodels ? b->nmodels : 1, sizeof *v);
  if (!v) return dorm_error_set(&b->err, DORM_ENOMEM, NULL);
  for (size_t i = 0; i < b->nmodels; i++) {
    v[i].name = c->models[i].name;
    v[i].kind = NM_MODEL;
    v[i].seq = i;
    v[i].model = &c->models[i];
    v[i].line = c->models[i].line;
    v[i].col = c->models[i].col;
  }
  int rc = report_clash(c, v, b->nmodels);
  dorm__free(v);
  return rc;
}

/* ---- pass 2: layout ------------------------------------------------------ */

static int layout(ctx *c) {
  dorm_schema_builder *b = c->b;
  dorm__arena *a = &b->arena;
  c->models =
      b->nmodels ? dorm__arena_alloc(a, b->nmodels * sizeof(dorm_model)) : NULL;
  if (b->nmodels && !c->models)
    return dorm_error_set(&b->err, DORM_ENOMEM, NULL);
  if (b->nmodels) memset(c->models, 0, b->nmodels * sizeof(dorm_model));
  for (size_t i = 0; i < b->nmodels; i++) {
    dorm__bmodel *bm = &b->models[i];
    dorm_model *m = &c->models[i];
    int has_pk = 0;
    for (size_t j = 0; j < bm->nfields; j++)
      if (bm->fields[j].f.flags & DORM_FIELD_PRIMARY_KEY) has_pk = 1;
    size_t nf = bm->nfields + (has_pk ? 0 : 1);
    dorm_field *fields = dorm__arena_alloc(a, nf * sizeof *fields);
    if (!fields) return dorm_error_set(&b->err, DORM_ENOMEM, NULL);
    memset(fields, 0, nf * sizeof *fields);
    size_t k = 0;
    if (!has_pk) {
      dorm_field *id = &fields[k++];
      id->name = "id"; /* static strings live as long as any schema */
      id->column = "id";
      id->type = DORM_FIELD_AUTO;
      id->flags = DORM_FIELD_PRIMARY_KEY | DORM_FIELD_UNIQUE;
      id->line = bm->line;
      id->col = bm->col;
    }
    for (size_t j = 0; j < bm->nfields; j++) fields[k++] = bm->fields[j].f;
    for (size_t j = 0; j < nf; j++) {
      fields[j].model = m;
      if (fields[j].flags & DORM_FIELD_PRIMARY_KEY) m->pk = &fields[j];
    }
    m->name = bm->name;
    m->table = bm->table;
    m->fields = fields;
    m->nfields = nf;
    m->schema = &c->s->pub;
    m->line = bm->line;
    m->col = bm->col;
  }
  return 0;
}

/* The builder field behind final field j of model i. */
static dorm__bfield *bfield_of(ctx *c, size_t i, size_t j) {
  dorm__bmodel *bm = &c->b->models[i];
  size_t implicit = c->models[i].nfields - bm->nfields;
  return j < implicit ? NULL : &bm->fields[j - implicit];
}

/* ---- pass 3: relations --------------------------------------------------- */

static const dorm_model *find_model(ctx *c, const char *name,
                                    const dorm_model *self) {
  if (strcmp(name, "self") == 0) return self;
  dorm_schema tmp = {c->models, c->b->nmodels, NULL};
  return dorm_schema_model(&tmp, name);
}

static int resolve(ctx *c) {
  for (size_t i = 0; i < c->b->nmodels; i++) {
    dorm_model *m = &c->models[i];
    dorm__bmodel *bm = &c->b->models[i];
    for (size_t j = 0; j < m->nfields; j++) {
      dorm_field *f = (dorm_field *)&m->fields[j];
      if (!is_relation(f->type)) continue;
      f->target = find_model(c, f->to, m);
      if (!f->target) return FAIL_F(c, bm, f, "unknown model '%s'", f->to);
      if (f->type == DORM_FIELD_MANY_TO_MANY) {
        size_t tl = strlen(m->table), fl = strlen(f->name);
        char *base = dorm__arena_alloc(&c->b->arena, tl + 1 + fl + 1);
        if (!base) return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
        memcpy(base, m->table, tl);
        base[tl] = '_';
        memcpy(base + tl + 1, f->name, fl + 1);
        f->through_table = derived_name(&c->b->arena, base, tl + 1 + fl, "");
        if (!f->through_table)
          return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
      }
    }
  }
  /* A primary key that is a relation takes its type from the target's
   * primary key; a loop of those would have no type at all. */
  for (size_t i = 0; i < c->b->nmodels; i++) {
    const dorm_field *pk = c->models[i].pk;
    size_t hops = 0;
    while (dorm_field_is_fk(pk) && hops <= c->b->nmodels) {
      pk = pk->target->pk;
      hops++;
    }
    if (hops > c->b->nmodels)
      return FAIL_F(c, &c->b->models[i], c->models[i].pk,
                    "primary key relations form a cycle");
  }
  return 0;
}

/* Django's fields.E302-E305: a reverse name must not hide a field of the
 * target, nor be shared by two relations to the same target, or a lookup
 * through it would silently pick one. */
static int check_reverse_names(ctx *c) {
  char b1[DORM_IDENT_MAX + 1], b2[DORM_IDENT_MAX + 1];
  for (size_t i = 0; i < c->b->nmodels; i++) {
    const dorm_model *m = &c->models[i];
    for (size_t j = 0; j < m->nfields; j++) {
      const dorm_field *f = &m->fields[j];
      if (!is_relation(f->type)) continue;
      const char *rn = dorm_field_reverse_name(f, b1, sizeof b1);
      const dorm_field *hidden = dorm_model_field(f->target, rn);
      if (hidden)
        return FAIL_F(c, &c->b->models[i], f,
                      "reverse name '%s' clashes with field '%s' of model "
                      "'%s' (set \"related_name\")",
                      rn, hidden->name, f->target->name);
      for (size_t i2 = 0; i2 <= i; i2++) {
        const dorm_model *m2 = &c->models[i2];
        size_t end = i2 == i ? j : m2->nfields;
        for (size_t j2 = 0; j2 < end; j2++) {
          const dorm_field *g = &m2->fields[j2];
          if (!is_relation(g->type) || g->target != f->target) continue;
          if (strcmp(dorm_field_reverse_name(g, b2, sizeof b2), rn) != 0)
            continue;
          return FAIL_F(c, &c->b->models[i], f,
                        "reverse name '%s' on model '%s' is already used by "
                        "model '%s', field '%s' (set \"related_name\")",
                        rn, f->target->name, m2->name, g->name);
        }
      }
    }
  }
  return 0;
}

/* ---- pass 4: defaults and choices --------------------------------------- */

static int values(ctx *c) {
  char why[160], shown[96];
  dorm__arena *a = &c->b->arena;
  for (size_t i = 0; i < c->b->nmodels; i++) {
    dorm_model *m = &c->models[i];
    dorm__bmodel *bm = &c->b->models[i];
    for (size_t j = 0; j < m->nfields; j++) {
      dorm__bfield *bf = bfield_of(c, i, j);
      dorm_field *f = (dorm_field *)&m->fields[j];
      if (!bf) continue;
      if (bf->opts & DORM__OPT_DEFAULT) {
        int rc = (bf->opts & DORM__OPT_JSON_CANON)
                     ? dorm__value_coerce_canon(
                           f, bf->def, a, &f->default_value, why, sizeof why)
                     : dorm__value_coerce(f, bf->def, a, &f->default_value, why,
                                          sizeof why);
        if (rc == DORM_ENOMEM)
          return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
        if (rc) {
          dorm__value_describe(bf->def, shown, sizeof shown);
          return FAIL_F(c, bm, f, "invalid default %s: %s", shown, why);
        }
        f->flags |= DORM_FIELD_HAS_DEFAULT;
      }
      if (bf->opts & DORM__OPT_CHOICES) {
        dorm_value *out = dorm__arena_alloc(a, bf->nchoices * sizeof *out);
        if (!out) return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
        for (size_t k = 0; k < bf->nchoices; k++) {
          int rc = dorm__value_coerce(f, bf->choices[k], a, &out[k], why,
                                      sizeof why);
          if (rc == DORM_ENOMEM)
            return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
          if (rc) {
            dorm__value_describe(bf->choices[k], shown, sizeof shown);
            return FAIL_F(c, bm, f, "invalid choice %s: %s", shown, why);
          }
        }
        f->choices = out;
        f->nchoices = bf->nchoices;
        f->choice_labels = bf->labels;
      }
    }
  }
  return 0;
}

/* ---- pass 5: indexes, ordering, names ----------------------------------- */

static int check_index_list(ctx *c, size_t mi, dorm__bindex *src, size_t n,
                            int uniques, const dorm_index **out, size_t *nout) {
  dorm_model *m = &c->models[mi];
  dorm__bmodel *bm = &c->b->models[mi];
  dorm__arena *a = &c->b->arena;
  const char *what = uniques ? "unique_together" : "index";
  *out = NULL;
  *nout = 0;
  if (!n) return 0;
  dorm_index *ix = dorm__arena_alloc(a, n * sizeof *ix);
  if (!ix) return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
  for (size_t k = 0; k < n; k++) {
    dorm__bindex *s = &src[k];
    int line = s->line ? s->line : bm->line, col = s->line ? s->col : bm->col;
#define FAIL_I(...) \
  dorm__builder_fail(c->b, DORM_ESCHEMA, line, col, bm->name, NULL, __VA_ARGS__)
    if (s->nfields == 0) return FAIL_I("%s needs at least one field", what);
    size_t len = strlen(m->table);
    for (size_t q = 0; q < s->nfields; q++) {
      const char *fn = s->fields[q];
      const dorm_field *f = fn ? dorm_model_field(m, fn) : NULL;
      if (!f) return FAIL_I("%s names unknown field '%s'", what, fn ? fn : "");
      if (!f->column)
        return FAIL_I("%s names many_to_many field '%s', which has no column",
                      what, fn);
      for (size_t r = 0; r < q; r++)
        if (strcmp(s->fields[r], fn) == 0)
          return FAIL_I("%s names field '%s' twice", what, fn);
      len += 1 + strlen(fn);
    }
    if (s->name && !dorm_ident_valid(s->name))
      return FAIL_I("invalid index name '%s': " IDENT_RULE, s->name);
    ix[k].name = s->name;
    if (!ix[k].name) {
      char *base = dorm__arena_alloc(a, len + 1);
      if (!base) return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
      size_t p = strlen(m->table);
      memcpy(base, m->table, p);
      for (size_t q = 0; q < s->nfields; q++) {
        size_t fl = strlen(s->fields[q]);
        base[p++] = '_';
        memcpy(base + p, s->fields[q], fl);
        p += fl;
      }
      base[p] = '\0';
      ix[k].name = derived_name(a, base, p, s->unique ? "_uniq" : "_idx");
      if (!ix[k].name) return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
    }
#undef FAIL_I
    ix[k].fields = s->fields;
    ix[k].nfields = s->nfields;
    ix[k].unique = uniques ? 1 : s->unique;
  }
  *out = ix;
  *nout = n;
  return 0;
}

/* "-joined", "name", "author__name", "pk": fields, possibly across
 * foreign keys. */
static int check_ordering(ctx *c, size_t mi) {
  dorm_model *m = &c->models[mi];
  dorm__bmodel *bm = &c->b->models[mi];
  for (size_t k = 0; k < bm->nordering; k++) {
    const char *item = bm->ordering[k];
    const char *p = item[0] == '-' ? item + 1 : item;
    const dorm_model *cur = m;
    const dorm_field *f = NULL;
    int ok = *p != '\0';
    while (ok) {
      const char *sep = strstr(p, "__");
      size_t n = sep ? (size_t)(sep - p) : strlen(p);
      char part[DORM_IDENT_MAX + 1];
      if (n == 0 || n > DORM_IDENT_MAX || !cur) {
        ok = 0;
        break;
      }
      memcpy(part, p, n);
      part[n] = '\0';
      f = strcmp(part, "pk") == 0 ? cur->pk : dorm_model_field(cur, part);
      if (!f || !f->column) {
        ok = 0;
        break;
      }
      if (!sep) break;
      cur = dorm_field_is_fk(f) ? f->target : NULL;
      p = sep + 2;
    }
    if (!ok)
      return dorm__builder_fail(c->b, DORM_ESCHEMA, bm->ordering_pos[2 * k],
                                bm->ordering_pos[2 * k + 1], bm->name, NULL,
                                "ordering names unknown field '%s'", item);
  }
  /* bm->ordering is the builder's growable array, freed with it. */
  if (bm->nordering) {
    const char **items =
        dorm__arena_alloc(&c->b->arena, bm->nordering * sizeof *items);
    if (!items) return dorm_error_set(&c->b->err, DORM_ENOMEM, NULL);
    memcpy(items, bm->ordering, bm->nordering * sizeof *items);
    m->ordering = items;
  }
  m->nordering = bm->nordering;
  return 0;
}

static int check_relation_names(ctx *c) {
  dorm_schema_builder *b = c->b;
  size_t n = 0;
  for (size_t i = 0; i < b->nmodels; i++) {
    const dorm_model *m = &c->models[i];
    n += 1 + m->nindexes + m->nunique_together;
    for (size_t j = 0; j < m->nfields; j++)
      if (m->fields[j].through_table ||
          dorm__field_needs_unique(&m->fields[j]) ||
          dorm__field_needs_index(&m->fields[j]))
        n++;
  }
  nm *v = dorm__calloc(n ? n : 1, sizeof *v);
  /* the derived names of NM_FIELDIX entries, one buffer each */
  char(*names)[DORM_IDENT_MAX + 1] = dorm__calloc(n ? n : 1, sizeof *names);
  if (!v || !names) {
    dorm__free(v);
    dorm__free(names);
    return dorm_error_set(&b->err, DORM_ENOMEM, NULL);
  }
  size_t k = 0;
  /* Sequence: all tables, then join tables, then indexes, so the later
   * name of a clash is the derived one and the message reads naturally. */
  for (int kind = NM_TABLE; kind <= NM_INDEX; kind++) {
    for (size_t i = 0; i < b->nmodels; i++) {
      const dorm_model *m = &c->models[i];
      nm base = {NULL, kind, 0, m, NULL, m->line, m->col};
      if (kind == NM_TABLE) {
        v[k] = base;
        v[k].name = m->table;
        v[k].seq = k;
        k++;
      } else if (kind == NM_JOIN) {
        for (size_t j = 0; j < m->nfields; j++) {
          if (!m->fields[j].through_table) continue;
          v[k] = base;
          v[k].name = m->fields[j].through_table;
          v[k].field = m->fields[j].name;
          v[k].line = m->fields[j].line;
          v[k].col = m->fields[j].col;
          v[k].seq = k;
          k++;
        }
      } else if (kind == NM_FIELDIX) {
        for (size_t j = 0; j < m->nfields; j++) {
          const dorm_field *f = &m->fields[j];
          int uniq = dorm__field_needs_unique(f);
          if (!f->column || (!uniq && !dorm__field_needs_index(f))) continue;
          dorm__derived_name(names[k], m->table, &f->column, 1,
                             uniq ? "uniq" : "idx");
          v[k] = base;
          v[k].name = names[k];
          v[k].field = f->name;
          v[k].line = f->line;
          v[k].col = f->col;
          v[k].seq = k;
          k++;
        }
      } else {
        dorm__bmodel *bm = &b->models[i];
        for (size_t j = 0; j < m->nindexes; j++) {
          v[k] = base;
          v[k].name = m->indexes[j].name;
          if (bm->indexes[j].line) {
            v[k].line = bm->indexes[j].line;
            v[k].col = bm->indexes[j].col;
          }
          v[k].seq = k;
          k++;
        }
        for (size_t j = 0; j < m->nunique_together; j++) {
          v[k] = base;
          v[k].name = m->unique_together[j].name;
          if (bm->uniques[j].line) {
            v[k].line = bm->uniques[j].line;
            v[k].col = bm->uniques[j].col;
          }
          v[k].seq = k;
          k++;
        }
      }
    }
  }
  int rc = report_clash(c, v, k);
  dorm__free(v);
  dorm__free(names);
  return rc;
}

/* ---- finish -------------------------------------------------------------- */

/* "name" + suffix, in the schema's arena.  Names were checked against the
 * identifier rule, so they hold no quote to escape. */
static int quoted(dorm__arena *a, const char *name, const char *suffix,
                  const char **out, size_t *len) {
  size_t n = strlen(name), sn = strlen(suffix);
  char *q = dorm__arena_alloc(a, n + sn + 3);
  if (!q) return -1;
  q[0] = '"';
  memcpy(q + 1, name, n);
  q[n + 1] = '"';
  memcpy(q + n + 2, suffix, sn + 1);
  *out = q;
  *len = n + 2 + sn;
  return 0;
}

static int run(ctx *c) {
  dorm_schema_builder *b = c->b;
  for (size_t i = 0; i < b->nmodels; i++)
    if (check_model(c, &b->models[i])) return b->err.code;
  if (layout(c) || check_model_names(c) || resolve(c) ||
      check_reverse_names(c) || values(c))
    return b->err.code;
  for (size_t i = 0; i < b->nmodels; i++) {
    dorm_model *m = &c->models[i];
    dorm__bmodel *bm = &b->models[i];
    if (check_index_list(c, i, bm->indexes, bm->nindexes, 0, &m->indexes,
                         &m->nindexes) ||
        check_index_list(c, i, bm->uniques, bm->nuniques, 1,
                         &m->unique_together, &m->nunique_together) ||
        check_ordering(c, i))
      return b->err.code;
  }
  if (check_relation_names(c)) return b->err.code;
  /* the compiler asks for every column's value type and writes quoted
   * names into every statement; prepare both once */
  dorm__arena *a = &b->arena;
  for (size_t i = 0; i < b->nmodels; i++) {
    dorm_model *m = &c->models[i];
    if (quoted(a, m->table, ".", &m->qtable, &m->qtable_len))
      return dorm_error_set(&b->err, DORM_ENOMEM, NULL);
    for (size_t j = 0; j < m->nfields; j++) {
      dorm_field *f = (dorm_field *)&m->fields[j];
      f->value_type = dorm_field_value_type(f);
      if (f->column && quoted(a, f->column, "", &f->qcolumn, &f->qcolumn_len))
        return dorm_error_set(&b->err, DORM_ENOMEM, NULL);
    }
  }
  return 0;
}

dorm_schema *dorm__builder_finish(dorm_schema_builder *b, dorm_error *err) {
  if (b->err.code) {
    dorm_error_copy(err, &b->err);
    return NULL;
  }
  ctx c = {b, NULL, NULL};
  /* The owner block comes first: models point back at its public part. */
  c.s = dorm__calloc(1, sizeof *c.s);
  if (!c.s) {
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  const char *src = b->source ? b->source : "<memory>";
  char *source = dorm__arena_strndup(&b->arena, src, strlen(src));
  if (!source) dorm_error_set(&b->err, DORM_ENOMEM, NULL);
  if (b->err.code || run(&c)) {
    dorm_error_copy(err, &b->err);
    dorm__free(c.s);
    return NULL;
  }
  c.s->pub.models = c.models;
  c.s->pub.nmodels = b->nmodels;
  c.s->pub.source = source;
  /* Hand the arena over: the builder is freed next and must not free it. */
  c.s->arena = b->arena;
  dorm__arena_init(&b->arena, NULL, 0);
  return &c.s->pub;
}
