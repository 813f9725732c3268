/* SPDX-License-Identifier: MIT */
/* tools/loaddata.c — `dorm loaddata FILE ...`: load Django fixtures (a
 * JSON array or JSON lines, tools/fixture.h) all or nothing.
 *
 * Everything runs in one transaction (dorm_async_atomic), driven from
 * here one request at a time:
 *   1. foreign key checks are deferred to the commit (the tables' keys
 *      are DEFERRABLE INITIALLY DEFERRED as dorm creates them; SET
 *      CONSTRAINTS ALL DEFERRED on PostgreSQL and PRAGMA
 *      defer_foreign_keys on SQLite make sure), so rows load in the
 *      order the files give them and a row may point at one further on;
 *   2. the files are streamed object by object; consecutive objects of
 *      one model with the same fields become one dorm_async_bulk_create
 *      of up to --chunk rows, each object's primary key kept;
 *   3. a second pass over the files adds the many_to_many links, once
 *      every row is in;
 *   4. before the commit, each foreign key and join table of the loaded
 *      models is checked for keys with no row, so a dangling key is
 *      reported as the object that holds it (file, object number, line,
 *      model, field) rather than as the commit's bare constraint error;
 *   5. on PostgreSQL each loaded model's key sequence is set past the
 *      largest key (setval, as Django's loaddata does), so later inserts
 *      do not collide with the loaded keys.
 * Any refusal — a file that is not JSON, an unknown model or field, a
 * value of the wrong type, a missing pk, a database error — rolls the
 * whole transaction back: nothing is written.  Memory holds one chunk
 * of rows, whatever the files' size.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fixture.h"

static const char usage[] =
    "usage: dorm loaddata [--models FILE] [--db URL] [--format json|jsonl]\n"
    "                     [--chunk N] FILE ...\n";
static const char about[] =
    "\n"
    "Load Django fixtures ({\"model\": ..., \"pk\": ..., \"fields\": {...}}\n"
    "objects, as `dorm dumpdata` writes them: a JSON array, or one object a\n"
    "line) in one transaction: every object of every file, or nothing.\n"
    "Rows keep their primary keys; many_to_many links are added after all\n"
    "rows; on PostgreSQL key sequences are moved past the loaded keys.\n";
static const char after[] =
    "\n"
    "exit status: 0 done, 1 error (nothing loaded), 2 usage error\n";

typedef struct waiter {
  int done;
  dorm_result res;
} waiter;

static dorm_result keep(dorm_result *res, void *arg) {
  waiter *w = arg;
  w->res = dorm_result_take(res);
  w->done = 1;
  return dorm_result_none();
}

/* A chunk sent and not yet answered: the next chunk is parsed while the
 * database inserts this one (SQLite on its writer thread, PostgreSQL on
 * the server), and its answer is awaited before the next is sent, so at
 * most two chunks are in memory. */
typedef struct pending {
  int active;
  waiter w;
  const dorm_model *m;
  const char *path;
  size_t first, rows;
  long first_line, last_line;
} pending;

typedef struct load {
  cli_loop *l;
  dorm_db *tx;          /* the transaction handle, once it began */
  dorm_deferred *block; /* the block's deferred: fired here at the end */
  const dorm_schema *s;
  dorm_dialect dialect;
  int format;
  size_t chunk;
  char *loaded; /* per model (index in s->models): rows were loaded */
  int any_m2m;  /* some object lists many_to_many keys */
  size_t objects;

  /* the chunk being built */
  dorm_query *q;
  const dorm_model *qm;
  char *sig;    /* per field of qm: set in the chunk's rows */
  size_t rows;  /* rows in q */
  size_t first; /* the chunk's first object number and line */
  long first_line, last_line;
  const char *path;
  pending pend; /* the chunk sent before */

  /* scratch for values that must live until dorm_set copies them */
  char *scratch;
  size_t scratch_cap;
  char msg[1024];
} load;

/* ---- values ---------------------------------------------------------- */

/* 1 for a value whose u.s points at text. */
static int value_is_text(const dorm_value *v) {
  return v->type != DORM_T_NULL && v->type != DORM_T_BOOL &&
         v->type != DORM_T_INT && v->type != DORM_T_FLOAT &&
         v->type != DORM_T_LIST && v->type != DORM_T_EXPR;
}

static char *scratch(load *st, size_t n) {
  if (n > st->scratch_cap) {
    char *p = realloc(st->scratch, n);
    if (!p) return NULL;
    st->scratch = p;
    st->scratch_cap = n;
  }
  return st->scratch;
}

static int b64(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Base64 text into out (at least 3 * n / 4 bytes); its length, or -1. */
static long base64_decode(const char *s, size_t n, unsigned char *out) {
  if (n % 4) return -1;
  size_t k = 0;
  for (size_t i = 0; i < n; i += 4) {
    int v[4];
    for (int j = 0; j < 4; j++) {
      v[j] = s[i + j] == '=' && i + 4 == n && j >= 2 ? 0 : b64(s[i + j]);
      if (v[j] < 0) return -1;
    }
    if (s[i + 2] == '=' && s[i + 3] != '=') return -1;
    unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 |
                 (unsigned)v[2] << 6 | (unsigned)v[3];
    out[k++] = (unsigned char)(x >> 16);
    if (s[i + 2] != '=') out[k++] = (unsigned char)(x >> 8);
    if (s[i + 3] != '=') out[k++] = (unsigned char)x;
  }
  return (long)k;
}

/* The integer range of a field's column (a foreign key: its target's). */
static void int_range(const dorm_field *f, int64_t *lo, int64_t *hi) {
  while (dorm_field_is_fk(f) && f->target && f->target->pk) f = f->target->pk;
  *lo = INT64_MIN;
  *hi = INT64_MAX;
  if (f->type == DORM_FIELD_SMALLINT) {
    *lo = -32768;
    *hi = 32767;
  } else if (f->type == DORM_FIELD_INTEGER || f->type == DORM_FIELD_AUTO) {
    *lo = INT32_MIN;
    *hi = INT32_MAX;
  }
}

/* j as the value of field f (for a many_to_many item or a foreign key,
 * key is the field whose type the value takes).  NULL, or why j is
 * refused.  Text the value points to lives in j or st->scratch until the
 * next call. */
static const char *to_value(load *st, const dorm_field *f, json_t *j,
                            dorm_value *out) {
  const dorm_field *key = f;
  if (f->type == DORM_FIELD_MANY_TO_MANY) key = f->target->pk;
  dorm_type t = dorm_field_value_type(key);
  if (json_is_null(j)) {
    if (f->type != DORM_FIELD_MANY_TO_MANY && (f->flags & DORM_FIELD_NULL)) {
      *out = dorm_null();
      return NULL;
    }
    return "null, but the field is not nullable";
  }
  switch (t) {
    case DORM_T_INT: {
      if (!json_is_integer(j)) return "expected an integer";
      int64_t lo, hi, v = json_integer_value(j);
      int_range(key, &lo, &hi);
      if (v < lo || v > hi) return "the integer is out of the field's range";
      *out = dorm_int(v);
      return NULL;
    }
    case DORM_T_FLOAT:
      if (!json_is_number(j)) return "expected a number";
      *out = dorm_float(json_number_value(j));
      return NULL;
    case DORM_T_BOOL:
      if (!json_is_boolean(j)) return "expected true or false";
      *out = dorm_bool(json_is_true(j));
      return NULL;
    case DORM_T_DECIMAL: {
      if (json_is_string(j)) {
        *out = dorm_textn(t, json_string_value(j), json_string_length(j));
        return NULL;
      }
      char *b = scratch(st, 64);
      if (!b) return "out of memory";
      if (json_is_integer(j)) {
        snprintf(b, 64, "%" PRId64, (int64_t)json_integer_value(j));
      } else if (json_is_real(j) && isfinite(json_real_value(j))) {
        /* the shortest text that reads back as the same double */
        double d = json_real_value(j);
        for (int p = 1; p <= 17; p++) {
          snprintf(b, 64, "%.*g", p, d);
          if (strtod(b, NULL) == d) break;
        }
      } else {
        return "expected a decimal (a string such as \"12.50\", or a number)";
      }
      *out = dorm_textn(t, b, strlen(b));
      return NULL;
    }
    case DORM_T_JSON: {
      char *text =
          json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
      if (!text) return "out of memory";
      size_t n = strlen(text);
      char *b = scratch(st, n + 1);
      if (b) memcpy(b, text, n + 1);
      free(text);
      if (!b) return "out of memory";
      *out = dorm_textn(t, b, n);
      return NULL;
    }
    case DORM_T_BYTES: {
      if (!json_is_string(j)) return "expected base64 text";
      size_t n = json_string_length(j);
      char *b = scratch(st, n / 4 * 3 + 3);
      if (!b) return "out of memory";
      long k = base64_decode(json_string_value(j), n, (unsigned char *)b);
      if (k < 0) return "expected base64 text";
      *out = dorm_bytes(b, (size_t)k);
      return NULL;
    }
    default: /* text, dates and times, uuids: the builder checks them */
      if (!json_is_string(j)) return "expected a string";
      *out = dorm_textn(t, json_string_value(j), json_string_length(j));
      return NULL;
  }
}

/* ---- messages -------------------------------------------------------- */

static int obj_error(load *st, const fx_reader *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int obj_error(load *st, const fx_reader *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n =
      snprintf(st->msg, sizeof st->msg, "%s: object %zu (line %ld): ", r->path,
               r->index, r->obj_line);
  vsnprintf(st->msg + n, sizeof st->msg - (size_t)n, fmt, ap);
  va_end(ap);
  return CLI_ERROR;
}

/* ---- the transaction ------------------------------------------------- */

static dorm_deferred *begin_block(dorm_db *tx, void *arg) {
  load *st = arg;
  st->tx = tx;
  st->block = dorm_deferred_new(NULL, NULL);
  return st->block;
}

/* Run one request on the transaction and wait for it: 0, or CLI_ERROR
 * with the database's message in *res (the caller's to free). */
static int run(load *st, dorm_deferred *d, dorm_result *res) {
  if (cli_wait(st->l, d, res)) return CLI_ERROR;
  return 0;
}

/* Wait for the chunk in flight: 0, or CLI_ERROR with st->msg naming its
 * objects (the database does not say which row). */
static int drain(load *st) {
  pending *p = &st->pend;
  if (!p->active) return 0;
  while (!p->w.done) uv_run(&st->l->uv, UV_RUN_ONCE);
  p->active = 0;
  int rc = 0;
  if (dorm_result_is_error(&p->w.res)) {
    rc = CLI_ERROR;
    if (p->rows == 1)
      snprintf(st->msg, sizeof st->msg,
               "%s: object %zu (line %ld), model '%s': %s", p->path, p->first,
               p->first_line, p->m->name, dorm_result_message(&p->w.res));
    else
      snprintf(st->msg, sizeof st->msg,
               "%s: objects %zu-%zu (lines %ld-%ld), model '%s': %s", p->path,
               p->first, p->first + p->rows - 1, p->first_line, p->last_line,
               p->m->name, dorm_result_message(&p->w.res));
  } else {
    st->loaded[p->m - st->s->models] = 1;
  }
  dorm_result_free(&p->w.res);
  return rc;
}

/* Send the chunk being built (after the one before it was answered). */
static int flush(load *st) {
  if (!st->rows) return 0;
  if (drain(st)) return CLI_ERROR;
  pending *p = &st->pend;
  memset(p, 0, sizeof *p);
  p->m = st->qm;
  p->path = st->path;
  p->first = st->first;
  p->rows = st->rows;
  p->first_line = st->first_line;
  p->last_line = st->last_line;
  st->rows = 0;
  /* compiled during the call: st->q is free for the next chunk */
  dorm_deferred *d = dorm_async_bulk_create(st->tx, st->q);
  if (!d || dorm_deferred_add_both(d, keep, &p->w)) {
    snprintf(st->msg, sizeof st->msg, "out of memory");
    return CLI_ERROR;
  }
  p->active = 1;
  return 0;
}

static const dorm_model *find_model(const dorm_schema *s, const char *name) {
  const dorm_model *m = dorm_schema_model(s, name);
  const char *dot = strrchr(name, '.');
  if (!m && dot) m = dorm_schema_model(s, dot + 1); /* Django's "app.model" */
  return m;
}

/* The model and pk of an object, checked. */
static int object_head(load *st, const fx_reader *r, json_t *o,
                       const dorm_model **m, json_t **pk, json_t **fields) {
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    if (strcmp(k, "model") && strcmp(k, "pk") && strcmp(k, "fields"))
      return obj_error(st, r,
                       "unknown key '%s' (an object has \"model\", \"pk\" "
                       "and \"fields\")",
                       k);
  }
  json_t *jm = json_object_get(o, "model");
  if (!json_is_string(jm))
    return obj_error(st, r, "missing \"model\" (a model name)");
  *m = find_model(st->s, json_string_value(jm));
  if (!*m) return obj_error(st, r, "unknown model '%s'", json_string_value(jm));
  *pk = json_object_get(o, "pk");
  if (!*pk || json_is_null(*pk))
    return obj_error(st, r, "model '%s': missing pk", (*m)->name);
  *fields = json_object_get(o, "fields");
  if (!json_is_object(*fields))
    return obj_error(st, r, "model '%s': missing \"fields\" (an object)",
                     (*m)->name);
  return 0;
}

/* Pass 1: one object into the chunk (the chunk is sent first when the
 * object's model or fields differ from it, or it is full). */
static int add_object(load *st, const fx_reader *r, json_t *o) {
  const dorm_model *m;
  json_t *pk, *fields;
  if (object_head(st, r, o, &m, &pk, &fields)) return CLI_ERROR;
  char sig[m->nfields ? m->nfields : 1];
  memset(sig, 0, sizeof sig);
  const char *k;
  json_t *v;
  json_object_foreach(fields, k, v) {
    const dorm_field *f = dorm_model_field(m, k);
    if (!f)
      return obj_error(st, r, "model '%s': unknown field '%s'", m->name, k);
    if (f == m->pk)
      return obj_error(st, r,
                       "model '%s', field '%s': the primary key goes in "
                       "\"pk\", not in \"fields\"",
                       m->name, k);
    if (f->type == DORM_FIELD_MANY_TO_MANY) {
      if (!json_is_array(v))
        return obj_error(st, r,
                         "model '%s', field '%s': expected a list of primary "
                         "keys",
                         m->name, k);
      size_t i;
      json_t *item;
      json_array_foreach(v, i, item) {
        dorm_value dv;
        const char *why = to_value(st, f, item, &dv);
        if (why)
          return obj_error(st, r, "model '%s', field '%s': item %zu: %s",
                           m->name, k, i + 1, why);
      }
      if (json_array_size(v)) st->any_m2m = 1;
      continue;
    }
    sig[f - m->fields] = 1;
  }
  /* a field left out takes its default; one with none must be given */
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (!sig[i] && f != m->pk && f->type != DORM_FIELD_MANY_TO_MANY &&
        !(f->flags & (DORM_FIELD_NULL | DORM_FIELD_HAS_DEFAULT)))
      return obj_error(st, r,
                       "model '%s': missing field '%s' (it is not nullable "
                       "and has no default)",
                       m->name, f->name);
  }
  if (st->rows && (st->qm != m || st->rows >= st->chunk ||
                   memcmp(st->sig, sig, m->nfields))) {
    if (flush(st)) return CLI_ERROR;
  }
  if (!st->rows) {
    char *ns = realloc(st->sig, sizeof sig);
    if (!ns) return obj_error(st, r, "out of memory");
    st->sig = ns;
    memcpy(st->sig, sig, sizeof sig);
    dorm_query_reset(st->q, DORM_QUERY_INSERT, m);
    st->qm = m;
    st->first = r->index;
    st->first_line = r->obj_line;
    st->path = r->path;
  } else {
    dorm_insert_next_row(st->q);
  }
  st->rows++;
  st->last_line = r->obj_line;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_value dv;
  const char *why = to_value(st, m->pk, pk, &dv);
  if (why) return obj_error(st, r, "model '%s', pk: %s", m->name, why);
  if (dorm_set(st->q, m->pk->name, dv)) {
    dorm_query_error(st->q, &err);
    return obj_error(st, r, "pk: %s", err.message);
  }
  for (size_t i = 0; i < m->nfields; i++) {
    if (!sig[i]) continue;
    const dorm_field *f = &m->fields[i];
    why = to_value(st, f, json_object_get(fields, f->name), &dv);
    if (why)
      return obj_error(st, r, "model '%s', field '%s': %s", m->name, f->name,
                       why);
    if (dorm_set(st->q, f->name, dv)) {
      dorm_query_error(st->q, &err);
      return obj_error(st, r, "%s", err.message);
    }
  }
  return 0;
}

/* Pass 2: an object's many_to_many links. */
static int add_links(load *st, const fx_reader *r, json_t *o) {
  const dorm_model *m;
  json_t *pk, *fields;
  if (object_head(st, r, o, &m, &pk, &fields)) return CLI_ERROR;
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    json_t *list;
    if (f->type != DORM_FIELD_MANY_TO_MANY ||
        !(list = json_object_get(fields, f->name)) || !json_array_size(list))
      continue;
    size_t n = json_array_size(list);
    dorm_value *keys = malloc(n * sizeof *keys);
    if (!keys) return obj_error(st, r, "out of memory");
    /* keys made in st->scratch (a decimal key given as a number) each
     * get a copy of their own; the others point into the JSON */
    char **own = calloc(n, sizeof *own);
    if (!own) {
      free(keys);
      return obj_error(st, r, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
      to_value(st, f, json_array_get(list, k), &keys[k]);
      if (value_is_text(&keys[k]) && keys[k].u.s.ptr == st->scratch &&
          (own[k] = malloc(keys[k].u.s.len + 1))) {
        memcpy(own[k], keys[k].u.s.ptr, keys[k].u.s.len);
        keys[k].u.s.ptr = own[k];
      }
    }
    dorm_value pv;
    if (to_value(st, m->pk, pk, &pv)) pv = dorm_null();
    dorm_result res;
    int rc = run(st, dorm_async_m2m_add(st->tx, m, f->name, pv, keys, n), &res);
    free(keys); /* copied by the call */
    for (size_t k = 0; k < n; k++) free(own[k]);
    free(own);
    if (rc) {
      obj_error(st, r, "model '%s', field '%s': %s", m->name, f->name,
                dorm_result_message(&res));
      dorm_result_free(&res);
      return CLI_ERROR;
    }
    dorm_result_free(&res);
  }
  return 0;
}

typedef int (*object_fn)(load *st, const fx_reader *r, json_t *o);

/* Every object of every file through fn. */
static int each_object(load *st, char **files, size_t nfiles, object_fn fn,
                       int flush_files) {
  for (size_t i = 0; i < nfiles; i++) {
    fx_reader r;
    if (fx_open(&r, files[i], st->format, st->msg, sizeof st->msg))
      return CLI_ERROR;
    int got, rc = 0;
    json_t *o;
    while (!rc && (got = fx_next(&r, &o, st->msg, sizeof st->msg)) > 0) {
      rc = fn(st, &r, o);
      json_decref(o);
      if (flush_files == 1) st->objects++;
    }
    if (!rc && got < 0) rc = CLI_ERROR;
    if (!rc && flush_files) rc = flush(st);
    fx_close(&r);
    if (rc) return rc;
  }
  return 0;
}

/* The object of model m whose pk reads as key (the database's text of
 * it): its file, number and line in *where, by reading the files again
 * (nothing of them is kept in memory). */
static void locate(load *st, char **files, size_t nfiles, const dorm_model *m,
                   const char *key, char *where, size_t cap) {
  snprintf(where, cap, "model '%s', pk %s", m->name, key);
  for (size_t i = 0; i < nfiles; i++) {
    fx_reader r;
    char msg[256];
    if (fx_open(&r, files[i], st->format, msg, sizeof msg)) continue;
    json_t *o;
    int found = 0;
    while (!found && fx_next(&r, &o, msg, sizeof msg) > 0) {
      json_t *jm = json_object_get(o, "model"), *pk = json_object_get(o, "pk");
      if (json_is_string(jm) && find_model(st->s, json_string_value(jm)) == m) {
        char *t = json_is_string(pk) ? strdup(json_string_value(pk))
                                     : json_dumps(pk, JSON_ENCODE_ANY);
        if (t && !strcmp(t, key)) {
          snprintf(where, cap, "%s: object %zu (line %ld): model '%s'", r.path,
                   r.index, r.obj_line, m->name);
          found = 1;
        }
        free(t);
      }
      json_decref(o);
    }
    fx_close(&r);
    if (found) return;
  }
}

static void cell_text(const dorm_value *v, char *buf, size_t cap) {
  if (!v || v->type == DORM_T_NULL)
    snprintf(buf, cap, "null");
  else if (v->type == DORM_T_INT)
    snprintf(buf, cap, "%" PRId64, v->u.i);
  else if (v->type == DORM_T_FLOAT)
    snprintf(buf, cap, "%.17g", v->u.f);
  else if (v->type == DORM_T_BOOL)
    snprintf(buf, cap, "%d", v->u.b);
  else
    snprintf(buf, cap, "%.*s", (int)v->u.s.len, v->u.s.ptr);
}

/* A dangling key of one column: "SELECT child key, column FROM table
 * WHERE column has no row in target". 0 (none), 1 (st->msg says which),
 * or CLI_ERROR. */
static int check_refs(load *st, char **files, size_t nfiles,
                      const dorm_model *m, const char *table,
                      const char *key_col, const char *col,
                      const dorm_model *target, const char *what) {
  char qt[80], qk[80], qc[80], tt[80], tk[80];
  if (dorm_quote_ident(table, qt, sizeof qt) ||
      dorm_quote_ident(key_col, qk, sizeof qk) ||
      dorm_quote_ident(col, qc, sizeof qc) ||
      dorm_quote_ident(target->table, tt, sizeof tt) ||
      dorm_quote_ident(target->pk->column, tk, sizeof tk))
    return 0; /* a checked schema's names always quote */
  char sql[1024];
  snprintf(sql, sizeof sql,
           "SELECT c.%s, c.%s FROM %s AS c WHERE c.%s IS NOT NULL AND NOT "
           "EXISTS (SELECT 1 FROM %s AS t WHERE t.%s = c.%s) LIMIT 1",
           qk, qc, qt, qc, tt, tk, qc);
  dorm_result res;
  if (run(st, dorm_async_execute(st->tx, sql, NULL, 0), &res)) {
    snprintf(st->msg, sizeof st->msg, "checking %s: %s", what,
             dorm_result_message(&res));
    dorm_result_free(&res);
    return CLI_ERROR;
  }
  const dorm_row *row = dorm_result_row_of(&res);
  int found = 0;
  if (row) {
    char key[128], val[128], where[512];
    cell_text(dorm_row_value_at(row, 0), key, sizeof key);
    cell_text(dorm_row_value_at(row, 1), val, sizeof val);
    locate(st, files, nfiles, m, key, where, sizeof where);
    snprintf(st->msg, sizeof st->msg,
             "%s, %s: no '%s' has pk %s (a foreign key to a missing row)",
             where, what, target->name, val);
    found = 1;
  }
  dorm_result_free(&res);
  return found;
}

/* Step 4: every foreign key and join table of the loaded models. */
static int check_all(load *st, char **files, size_t nfiles) {
  for (size_t i = 0; i < st->s->nmodels; i++) {
    if (!st->loaded[i]) continue;
    const dorm_model *m = &st->s->models[i];
    for (size_t j = 0; j < m->nfields; j++) {
      const dorm_field *f = &m->fields[j];
      char what[160];
      int rc = 0;
      if (dorm_field_is_fk(f) && f->target && f->target->pk) {
        snprintf(what, sizeof what, "field '%s'", f->name);
        rc = check_refs(st, files, nfiles, m, m->table, m->pk->column,
                        f->column, f->target, what);
      } else if (f->type == DORM_FIELD_MANY_TO_MANY && st->any_m2m &&
                 f->through_table && f->target && f->target->pk) {
        char from[DORM_IDENT_MAX + 1], to[DORM_IDENT_MAX + 1];
        if (dorm_ddl_m2m_columns(f, from, to)) continue;
        snprintf(what, sizeof what, "field '%s' (many_to_many)", f->name);
        rc = check_refs(st, files, nfiles, m, f->through_table, from, to,
                        f->target, what);
      }
      if (rc) return CLI_ERROR;
    }
  }
  return 0;
}

/* Step 5 (PostgreSQL): each loaded model's key sequence past its largest
 * key, or back to 1 for an empty table (Django's sequence_reset_sql). */
static int reset_sequences(load *st) {
  for (size_t i = 0; i < st->s->nmodels; i++) {
    const dorm_model *m = &st->s->models[i];
    if (!st->loaded[i] ||
        (m->pk->type != DORM_FIELD_AUTO && m->pk->type != DORM_FIELD_BIGAUTO))
      continue;
    char qt[80], qc[80], sql[512];
    if (dorm_quote_ident(m->table, qt, sizeof qt) ||
        dorm_quote_ident(m->pk->column, qc, sizeof qc))
      continue;
    snprintf(sql, sizeof sql,
             "SELECT setval(pg_get_serial_sequence($1, $2), "
             "COALESCE(MAX(%s), 1), MAX(%s) IS NOT NULL) FROM %s",
             qc, qc, qt);
    dorm_value p[2] = {dorm_str(qt), dorm_str(m->pk->column)};
    dorm_result res;
    if (run(st, dorm_async_execute(st->tx, sql, p, 2), &res)) {
      snprintf(st->msg, sizeof st->msg,
               "model '%s': resetting the key sequence: %s", m->name,
               dorm_result_message(&res));
      dorm_result_free(&res);
      return CLI_ERROR;
    }
    dorm_result_free(&res);
  }
  return 0;
}

static int load_all(load *st, char **files, size_t nfiles) {
  dorm_result res;
  const char *defer = st->dialect == DORM_DIALECT_POSTGRES
                          ? "SET CONSTRAINTS ALL DEFERRED"
                          : "PRAGMA defer_foreign_keys = ON";
  if (run(st, dorm_async_execute(st->tx, defer, NULL, 0), &res)) {
    snprintf(st->msg, sizeof st->msg, "%s", dorm_result_message(&res));
    dorm_result_free(&res);
    return CLI_ERROR;
  }
  dorm_result_free(&res);
  if (each_object(st, files, nfiles, add_object, 1) || drain(st))
    return CLI_ERROR;
  if (st->any_m2m && each_object(st, files, nfiles, add_links, 0))
    return CLI_ERROR;
  if (check_all(st, files, nfiles)) return CLI_ERROR;
  if (st->dialect == DORM_DIALECT_POSTGRES && reset_sequences(st))
    return CLI_ERROR;
  return 0;
}

static const char *parse_format(void *dest, const char *v) {
  if (!strcmp(v, "json"))
    *(int *)dest = FX_JSON;
  else if (!strcmp(v, "jsonl"))
    *(int *)dest = FX_JSONL;
  else
    return "expected json or jsonl";
  return NULL;
}

int cmd_loaddata(int argc, char **argv) {
  const char *models = "models.json", *dbo = NULL;
  int format = FX_DETECT;
  unsigned long long chunk = 2000;
  char **files = calloc((size_t)argc + 1, sizeof *files);
  size_t nfiles = 0;
  if (!files) return cli_error("out of memory");
  const cli_opt opts[] = {
      CLI_STR("--models", &models, "FILE",
              "the models file (default models.json)"),
      CLI_STR("--db", &dbo, "URL",
              "the database (default $DATABASE_URL, else\n"
              "sqlite:///db.sqlite3)"),
      CLI_FN("--format", parse_format, &format, "FORMAT",
             "json or jsonl (default: read from each file's\n"
             "first character, '[' for json)"),
      CLI_NUM("--chunk", &chunk, "N", 1, 1000000,
              "rows per bulk insert (default 2000)"),
      CLI_OPT_END};
  const cli_command cmd = {.name = "loaddata",
                           .usage = usage,
                           .about = about,
                           .after = after,
                           .opts = opts,
                           .many = (const char **)files,
                           .nmany = &nfiles,
                           .pos_missing = "which fixture files?"};
  int rc = cli_parse(&cmd, argc, argv);
  if (rc != CLI_GO) {
    free(files);
    return rc;
  }
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_file(models, &err);
  if (!s) {
    free(files);
    return cli_error("%s", err.message);
  }
  const char *url = cli_db_url(dbo);
  load st;
  memset(&st, 0, sizeof st);
  st.s = s;
  st.format = format;
  st.chunk = (size_t)chunk;
  st.dialect = cli_url_dialect(url);
  st.loaded = calloc(s->nmodels + 1, 1);
  st.q = s->nmodels ? dorm_insert(&s->models[0]) : NULL;
  rc = CLI_ERROR;
  char path[1024];
  if (!s->nmodels) {
    cli_error("%s has no models: nothing can be loaded", models);
    goto out;
  }
  if (!st.loaded || !st.q) {
    cli_error("out of memory");
    goto out;
  }
  /* every file must open before the database does */
  for (size_t i = 0; i < nfiles; i++) {
    FILE *f = fopen(files[i], "rb");
    if (!f) {
      cli_error("%s: %m", files[i]);
      goto out;
    }
    fclose(f);
  }
  if (cli_sqlite_missing(url, path, sizeof path)) {
    cli_error(
        "SQLite database '%s' does not exist (did you run `dorm migrate`?)",
        path);
    goto out;
  }
  cli_loop l;
  if (cli_loop_init(&l)) goto out;
  st.l = &l;
  dorm_db *db = dorm_db_open(l.loop, url, NULL, &err);
  if (!db) {
    cli_error("%s", err.message);
    cli_loop_close(&l);
    goto out;
  }
  st.dialect = dorm_db_dialect(db);
  waiter w;
  memset(&w, 0, sizeof w);
  dorm_deferred *atomic = dorm_async_atomic(db, begin_block, &st);
  if (!atomic || dorm_deferred_add_both(atomic, keep, &w)) {
    cli_error("out of memory");
  } else {
    while (!st.tx && !w.done) uv_run(&l.uv, UV_RUN_ONCE);
    int failed = 0;
    if (st.tx) {
      failed = load_all(&st, files, nfiles);
      if (!st.block) {
        failed = 1;
        snprintf(st.msg, sizeof st.msg, "out of memory");
      } else {
        dorm_deferred_fire(st.block,
                           failed ? dorm_result_error(DORM_EINVAL, "%s", st.msg)
                                  : dorm_result_count(0));
      }
    }
    while (!w.done) uv_run(&l.uv, UV_RUN_ONCE);
    /* a chunk still in flight when a later object was refused */
    while (st.pend.active && !st.pend.w.done) uv_run(&l.uv, UV_RUN_ONCE);
    if (st.pend.active) dorm_result_free(&st.pend.w.res);
    if (failed) {
      cli_error("%s (nothing was loaded)", st.msg);
    } else if (dorm_result_is_error(&w.res)) {
      const char *m = dorm_result_message(&w.res);
      int no_table = strstr(m, "no such table") ||
                     !strcmp(dorm_result_sqlstate(&w.res), "42P01");
      cli_error("%s%s (nothing was loaded)", m,
                no_table ? " (did you run `dorm migrate`?)" : "");
    } else {
      printf("Installed %zu object%s from %zu fixture%s\n", st.objects,
             st.objects == 1 ? "" : "s", nfiles, nfiles == 1 ? "" : "s");
      rc = CLI_OK;
    }
    dorm_result_free(&w.res);
  }
  cli_db_close(&l, db);
  cli_loop_close(&l);
out:
  dorm_query_free(st.q);
  free(st.loaded);
  free(st.sig);
  free(st.scratch);
  dorm_schema_free(s);
  free(files);
  return rc;
}
