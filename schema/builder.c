/* SPDX-License-Identifier: MIT */
/* schema/builder.c — building a schema in C, one model and field at a time.
 *
 * The builder only records: it copies every string into its arena and
 * notes which options each field was given.  All the rules (names, types,
 * options that fit the type, defaults, relations, indexes) are checked
 * once, in declaration order, by dorm_schema_builder_finish (check.c), so a
 * schema built in C and one loaded from models.json (which feeds this
 * builder) are held to exactly the same rules and messages.
 *
 * Errors are sticky, as in SQLite's mallocFailed: after the first failure
 * every call returns that error and does nothing, and finish reports it, so
 * a chain of builder calls needs one check at the end.
 */
#include <stdio.h>
#include <string.h>

#include "schema/schema_int.h"

/* ---- errors ------------------------------------------------------------- */

/* "field '#3'" would read badly: a name starting with '#' is a number. */
static int put_name(char *buf, size_t len, const char *what, const char *name) {
  if (name[0] == '#') return snprintf(buf, len, "%s %s", what, name);
  return snprintf(buf, len, "%s '%s'", what, name);
}

int dorm__schema_errorv(dorm_error *err, int code, const char *source, int line,
                        int col, const char *model, const char *field,
                        const char *fmt, va_list ap) {
  if (!err || err->code) return code;
  char pre[DORM_ERROR_MSG_MAX];
  size_t n = 0;
  pre[0] = '\0';
  /* snprintf returns the length it wanted: n stops at the last byte, so
   * pre + n never points past the buffer (a long name only cuts the
   * message) */
#define ROOM (sizeof pre - n)
#define ADV(x)                                  \
  do {                                          \
    int k_ = (x);                               \
    if (k_ > 0) n += (size_t)k_;                \
    if (n > sizeof pre - 1) n = sizeof pre - 1; \
  } while (0)
  if (source) {
    ADV(snprintf(pre + n, ROOM, "%s", source));
    if (line > 0) ADV(snprintf(pre + n, ROOM, ":%d:%d", line, col));
    ADV(snprintf(pre + n, ROOM, ": "));
  }
  if (model) {
    ADV(put_name(pre + n, ROOM, "model", model));
    if (field) {
      ADV(snprintf(pre + n, ROOM, ", "));
      ADV(put_name(pre + n, ROOM, "field", field));
    }
    ADV(snprintf(pre + n, ROOM, ": "));
  }
#undef ROOM
#undef ADV
  char msg[DORM_ERROR_MSG_MAX];
  vsnprintf(msg, sizeof msg, fmt, ap);
  return dorm_error_set(err, code, "%s%s", pre, msg);
}

int dorm__builder_fail(dorm_schema_builder *b, int code, int line, int col,
                       const char *model, const char *field, const char *fmt,
                       ...) {
  va_list ap;
  va_start(ap, fmt);
  dorm__schema_errorv(&b->err, code, b->source, line, col, model, field, fmt,
                      ap);
  va_end(ap);
  return b->err.code;
}

static int oom(dorm_schema_builder *b) {
  dorm_error_set(&b->err, DORM_ENOMEM, NULL);
  return b->err.code;
}

/* ---- helpers ------------------------------------------------------------ */

/* Grow *arr (of elements of size sz) so one more fits. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz) {
  if (n < *cap) return 0;
  size_t ncap = *cap ? *cap * 2 : 8;
  void *p = dorm__realloc(*arr, ncap * sz);
  if (!p) return -1;
  *arr = p;
  *cap = ncap;
  return 0;
}

static const char *copy(dorm_schema_builder *b, const char *s) {
  return s ? dorm__arena_strndup(&b->arena, s, strlen(s)) : NULL;
}

static dorm__bmodel *cur_model(dorm_schema_builder *b) {
  return b->nmodels ? &b->models[b->nmodels - 1] : NULL;
}

dorm__bfield *dorm__builder_cur_field(dorm_schema_builder *b) {
  dorm__bmodel *m = b ? cur_model(b) : NULL;
  return m && m->nfields ? &m->fields[m->nfields - 1] : NULL;
}

/* The common prologue of the option setters: a builder that is alive, no
 * earlier error, and a field to apply the option to. */
static dorm__bfield *field_for(dorm_schema_builder *b, const char *what,
                               int *rc) {
  if (!b) {
    *rc = DORM_ENOMEM;
    return NULL;
  }
  if (b->err.code) {
    *rc = b->err.code;
    return NULL;
  }
  dorm__bfield *f = dorm__builder_cur_field(b);
  if (!f) {
    dorm__bmodel *m = cur_model(b);
    *rc = dorm__builder_fail(b, DORM_EINVAL, 0, 0, m ? m->name : NULL, NULL,
                             "%s: no field to apply it to", what);
    return NULL;
  }
  *rc = 0;
  return f;
}

static dorm__bmodel *model_for(dorm_schema_builder *b, const char *what,
                               int *rc) {
  if (!b) {
    *rc = DORM_ENOMEM;
    return NULL;
  }
  if (b->err.code) {
    *rc = b->err.code;
    return NULL;
  }
  dorm__bmodel *m = cur_model(b);
  if (!m) {
    *rc = dorm__builder_fail(b, DORM_EINVAL, 0, 0, NULL, NULL,
                             "%s: no model started", what);
    return NULL;
  }
  *rc = 0;
  return m;
}

/* ---- the public builder ------------------------------------------------- */

dorm_schema_builder *dorm_schema_builder_new(void) {
  dorm_schema_builder *b = dorm__calloc(1, sizeof *b);
  if (!b) return NULL;
  dorm__arena_init(&b->arena, NULL, 0);
  dorm_error_clear(&b->err);
  return b;
}

void dorm_schema_builder_free(dorm_schema_builder *b) {
  if (!b) return;
  for (size_t i = 0; i < b->nmodels; i++) {
    dorm__bmodel *m = &b->models[i];
    dorm__free(m->fields);
    dorm__free(m->indexes);
    dorm__free(m->uniques);
    dorm__free(m->ordering);
    dorm__free(m->ordering_pos);
  }
  dorm__free(b->models);
  dorm__arena_free(&b->arena);
  dorm__free(b);
}

int dorm_schema_builder_model(dorm_schema_builder *b, const char *name,
                              const char *table) {
  if (!b) return DORM_ENOMEM;
  if (b->err.code) return b->err.code;
  if (!name)
    return dorm__builder_fail(b, DORM_EINVAL, 0, 0, NULL, NULL,
                              "model #%zu: missing name", b->nmodels + 1);
  if (grow((void **)&b->models, &b->capmodels, b->nmodels, sizeof *b->models))
    return oom(b);
  dorm__bmodel *m = &b->models[b->nmodels];
  memset(m, 0, sizeof *m);
  m->name = copy(b, name);
  m->table = copy(b, table);
  if (!m->name || (table && !m->table)) return oom(b);
  b->nmodels++;
  return 0;
}

int dorm_schema_builder_field(dorm_schema_builder *b, const char *name,
                              dorm_field_type type, unsigned flags) {
  int rc;
  dorm__bmodel *m = model_for(b, "dorm_schema_builder_field", &rc);
  if (!m) return rc;
  if (!name)
    return dorm__builder_fail(b, DORM_EINVAL, 0, 0, m->name, NULL,
                              "field #%zu: missing name", m->nfields + 1);
  if ((int)type < 0 || type >= DORM_FIELD__COUNT)
    return dorm__builder_fail(b, DORM_EINVAL, 0, 0, m->name, name,
                              "unknown type %d", (int)type);
  if (grow((void **)&m->fields, &m->capfields, m->nfields, sizeof *m->fields))
    return oom(b);
  dorm__bfield *f = &m->fields[m->nfields];
  memset(f, 0, sizeof *f);
  f->f.name = copy(b, name);
  if (!f->f.name) return oom(b);
  f->f.type = type;
  /* HAS_DEFAULT follows dorm_schema_builder_default, not the caller. */
  f->f.flags = flags & (DORM_FIELD_NULL | DORM_FIELD_UNIQUE |
                        DORM_FIELD_DB_INDEX | DORM_FIELD_PRIMARY_KEY);
  f->f.on_delete = DORM_ON_DELETE_CASCADE;
  m->nfields++;
  return 0;
}

int dorm_schema_builder_max_length(dorm_schema_builder *b, int max_length) {
  int rc;
  dorm__bfield *f = field_for(b, "max_length", &rc);
  if (!f) return rc;
  f->f.max_length = max_length;
  f->opts |= DORM__OPT_MAX_LENGTH;
  return 0;
}

int dorm_schema_builder_decimal(dorm_schema_builder *b, int max_digits,
                                int decimal_places) {
  int rc;
  dorm__bfield *f = field_for(b, "decimal", &rc);
  if (!f) return rc;
  f->f.max_digits = max_digits;
  f->f.decimal_places = decimal_places;
  f->opts |=
      DORM__OPT_DECIMAL | DORM__OPT_MAX_DIGITS | DORM__OPT_DECIMAL_PLACES;
  return 0;
}

/* Copy a value's bytes into the arena so the caller's may go away. */
static int copy_value(dorm_schema_builder *b, dorm_value v, dorm_value *out) {
  *out = v;
  switch (v.type) {
    case DORM_T_TEXT:
    case DORM_T_BYTES:
    case DORM_T_DECIMAL:
    case DORM_T_DATE:
    case DORM_T_TIME:
    case DORM_T_DATETIME:
    case DORM_T_UUID:
    case DORM_T_JSON: {
      char *p = dorm__arena_strndup(&b->arena, v.u.s.ptr ? v.u.s.ptr : "",
                                    v.u.s.ptr ? v.u.s.len : 0);
      if (!p) return DORM_ENOMEM;
      out->u.s.ptr = p;
      return 0;
    }
    case DORM_T_LIST:
    case DORM_T_EXPR:
      /* Not storable; the checks refuse it with the field's name. */
      out->u.s.ptr = NULL;
      return 0;
    default: return 0;
  }
}

int dorm_schema_builder_default(dorm_schema_builder *b, dorm_value v) {
  int rc;
  dorm__bfield *f = field_for(b, "default", &rc);
  if (!f) return rc;
  if (copy_value(b, v, &f->def)) return oom(b);
  f->opts |= DORM__OPT_DEFAULT;
  return 0;
}

int dorm_schema_builder_db_column(dorm_schema_builder *b, const char *column) {
  int rc;
  dorm__bfield *f = field_for(b, "db_column", &rc);
  if (!f) return rc;
  f->db_column = copy(b, column);
  if (column && !f->db_column) return oom(b);
  f->opts |= DORM__OPT_DB_COLUMN;
  return 0;
}

int dorm_schema_builder_relation(dorm_schema_builder *b, const char *to,
                                 dorm_on_delete on_delete,
                                 const char *related_name) {
  int rc;
  dorm__bfield *f = field_for(b, "relation", &rc);
  if (!f) return rc;
  f->f.to = copy(b, to);
  f->f.related_name = copy(b, related_name);
  if ((to && !f->f.to) || (related_name && !f->f.related_name)) return oom(b);
  f->f.on_delete = on_delete;
  /* on_delete is the C API's positional argument, not a choice the user
   * made, so it does not count as "given" (the loader marks that). */
  f->opts |= DORM__OPT_RELATION;
  return 0;
}

int dorm_schema_builder_choices(dorm_schema_builder *b,
                                const dorm_value *values,
                                const char *const *labels, size_t n) {
  int rc;
  dorm__bfield *f = field_for(b, "choices", &rc);
  if (!f) return rc;
  dorm_value *vals = n ? dorm__arena_alloc(&b->arena, n * sizeof *vals) : NULL;
  const char **labs = n ? dorm__arena_alloc(&b->arena, n * sizeof *labs) : NULL;
  if (n && (!vals || !labs)) return oom(b);
  for (size_t i = 0; i < n; i++) {
    if (copy_value(b, values[i], &vals[i])) return oom(b);
    labs[i] = labels && labels[i] ? copy(b, labels[i]) : NULL;
    if (labels && labels[i] && !labs[i]) return oom(b);
  }
  f->choices = vals;
  f->labels = labs;
  f->nchoices = n;
  f->opts |= DORM__OPT_CHOICES;
  return 0;
}

static int add_index(dorm_schema_builder *b, const char *what, const char *name,
                     const char *const *fields, size_t n, int unique,
                     int to_uniques) {
  int rc;
  dorm__bmodel *m = model_for(b, what, &rc);
  if (!m) return rc;
  dorm__bindex **arr = to_uniques ? &m->uniques : &m->indexes;
  size_t *cnt = to_uniques ? &m->nuniques : &m->nindexes;
  size_t *cap = to_uniques ? &m->capuniques : &m->capindexes;
  if (grow((void **)arr, cap, *cnt, sizeof **arr)) return oom(b);
  dorm__bindex *ix = &(*arr)[*cnt];
  memset(ix, 0, sizeof *ix);
  ix->name = copy(b, name);
  ix->unique = unique ? 1 : 0;
  ix->fields = n ? dorm__arena_alloc(&b->arena, n * sizeof *ix->fields) : NULL;
  if ((name && !ix->name) || (n && !ix->fields)) return oom(b);
  for (size_t i = 0; i < n; i++) {
    /* A NULL name is kept and refused by the checks with the model's. */
    ix->fields[i] = fields[i] ? copy(b, fields[i]) : NULL;
    if (fields[i] && !ix->fields[i]) return oom(b);
  }
  ix->nfields = n;
  (*cnt)++;
  return 0;
}

int dorm_schema_builder_index(dorm_schema_builder *b, const char *name,
                              const char *const *fields, size_t n, int unique) {
  return add_index(b, "index", name, fields, n, unique, unique != 0);
}

int dorm_schema_builder_unique_index(dorm_schema_builder *b, const char *name,
                                     const char *const *fields, size_t n) {
  return add_index(b, "index", name, fields, n, 1, 0);
}

int dorm_schema_builder_ordering(dorm_schema_builder *b, const char *item) {
  int rc;
  dorm__bmodel *m = model_for(b, "ordering", &rc);
  if (!m) return rc;
  if (!item)
    return dorm__builder_fail(b, DORM_EINVAL, m->line, m->col, m->name, NULL,
                              "ordering: missing item");
  size_t cap = m->capordering;
  if (grow((void **)&m->ordering, &cap, m->nordering, sizeof *m->ordering))
    return oom(b);
  /* Positions grow in step: two ints per item. */
  if (cap != m->capordering) {
    int *p = dorm__realloc(m->ordering_pos, cap * 2 * sizeof *p);
    if (!p) return oom(b);
    m->ordering_pos = p;
    m->capordering = cap;
  }
  m->ordering[m->nordering] = copy(b, item);
  if (!m->ordering[m->nordering]) return oom(b);
  m->ordering_pos[2 * m->nordering] = m->line;
  m->ordering_pos[2 * m->nordering + 1] = m->col;
  m->nordering++;
  return 0;
}

dorm_schema *dorm_schema_builder_finish(dorm_schema_builder *b,
                                        dorm_error *err) {
  if (!b) {
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  dorm_schema *s = dorm__builder_finish(b, err);
  dorm_schema_builder_free(b);
  return s;
}

/* ---- positions and context, for the loader ------------------------------ */

void dorm__builder_set_source(dorm_schema_builder *b, const char *source) {
  if (b) b->source = source;
}

void dorm__builder_model_pos(dorm_schema_builder *b, int line, int col) {
  dorm__bmodel *m = b ? cur_model(b) : NULL;
  if (!m) return;
  m->line = line;
  m->col = col;
}

void dorm__builder_field_pos(dorm_schema_builder *b, int line, int col) {
  dorm__bfield *f = dorm__builder_cur_field(b);
  if (!f) return;
  f->f.line = line;
  f->f.col = col;
}

void dorm__builder_index_pos(dorm_schema_builder *b, int in_uniques, int line,
                             int col) {
  dorm__bmodel *m = b ? cur_model(b) : NULL;
  if (!m) return;
  size_t n = in_uniques ? m->nuniques : m->nindexes;
  dorm__bindex *ix = n ? &(in_uniques ? m->uniques : m->indexes)[n - 1] : NULL;
  if (!ix) return;
  ix->line = line;
  ix->col = col;
}

void dorm__builder_ordering_pos(dorm_schema_builder *b, int line, int col) {
  dorm__bmodel *m = b ? cur_model(b) : NULL;
  if (!m || !m->nordering) return;
  m->ordering_pos[2 * (m->nordering - 1)] = line;
  m->ordering_pos[2 * (m->nordering - 1) + 1] = col;
}
