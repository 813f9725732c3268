/* SPDX-License-Identifier: MIT */
/* tools/serve/serve_m2m.c — many_to_many fields in `dorm serve`.
 *
 * An answered object carries each many_to_many field ("tags") as a JSON
 * array of the related primary keys, ascending.  They are read as
 * Django's prefetch_related reads them: for a page of objects, ONE query
 * per field on the field's join table,
 *
 *   SELECT "entry_id", "tag_id" FROM "entry_tags"
 *    WHERE "entry_id" IN ($1, ..., $n) ORDER BY "entry_id", "tag_id"
 *
 * with the page's keys as parameters (a page of more than SERVE_M2M_CHUNK
 * objects takes one query per chunk; the list is padded to a power of two
 * by repeating its last key, so the statement texts stay few).  The identifiers
 * come only from the model (the join table and its columns,
 * dorm_ddl_m2m_columns) and are quoted with dorm_quote_ident; no user text is
 * ever part of the SQL. The pairs are matched to the objects by key through a
 * sorted index.
 *
 * A POST or PATCH body sets a relation with "tags": [1, 2]: the keys are
 * checked here (a JSON array of the target's key type), kept as a JSON
 * reference, and given to dorm_async_m2m_set (dorm_async_m2m_add for a
 * row just created, which has no pairs) inside the request's transaction
 * (serve_api.c), one field after the other.
 *
 * Ownership: serve_m2m_fill and serve_m2m_apply each allocate one job that
 * their deferred's last step frees, whatever the outcome; the JSON they
 * are given is borrowed until that deferred has fired.  Each query they
 * start carries one step, added with add_both, that owns the job: it
 * either ends the job or hands it to the next query's step, so a step
 * that cannot be added (out of memory) never leaves another one holding
 * a freed job.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/serve/serve.h"

/* Keys per query: well under SQLite's (32766) and PostgreSQL's (65535)
 * parameter limits. */
#define SERVE_M2M_CHUNK 10000

void serve_m2m_want_all(const dorm_model *m, serve_m2m_want *w) {
  memset(w, 0, sizeof *w);
  for (size_t i = 0; i < m->nfields && w->n < SERVE_M2M_MAX; i++)
    if (m->fields[i].type == DORM_FIELD_MANY_TO_MANY)
      w->fields[w->n++] = &m->fields[i];
}

void serve_m2m_input_free(serve_m2m_input *in) {
  for (size_t i = 0; i < in->n; i++) json_decref(in->keys[i]);
  in->n = 0;
}

/* Whether the target's key is an integer (else it is text-like). */
static int int_key(const dorm_field *pk) {
  return dorm_field_value_type(pk) == DORM_T_INT;
}

int serve_m2m_take(const dorm_field *f, const char *key, json_t *v,
                   serve_m2m_input *in, serve_refusal *why) {
  const dorm_field *tpk = f->target ? f->target->pk : NULL;
  if (!tpk) return serve_refuse(why, "field '%s' cannot be set", key);
  int is_int = int_key(tpk);
  const char *want = is_int ? "an integer" : "a string";
  if (!json_is_array(v))
    return serve_refuse(why, "field '%s': expected a list of primary keys",
                        key);
  size_t i;
  json_t *item;
  json_array_foreach(v, i, item) {
    if (is_int ? !json_is_integer(item) : !json_is_string(item))
      return serve_refuse(why,
                          "field '%s': item %zu: expected %s (a key of '%s')",
                          key, i + 1, want, f->target->name);
    if (is_int) {
      json_int_t k = json_integer_value(item);
      int small = tpk->type == DORM_FIELD_AUTO ||
                  tpk->type == DORM_FIELD_INTEGER ||
                  tpk->type == DORM_FIELD_SMALLINT;
      if (small && (k > INT32_MAX || k < INT32_MIN))
        return serve_refuse(why,
                            "field '%s': item %zu: %" PRId64 " is out of range",
                            key, i + 1, (int64_t)k);
    }
  }
  if (in->n == SERVE_M2M_MAX)
    return serve_refuse(why, "field '%s': too many many_to_many fields", key);
  in->fields[in->n] = f;
  in->keys[in->n] = json_incref(v);
  in->n++;
  return 0;
}

/* A key in a JSON object or a result row, for matching pairs to objects:
 * an integer, or text (uuids and strings). */
typedef struct key {
  int is_int;
  int64_t i;
  const char *s;
  size_t n;
  size_t obj; /* the object's index, in the index */
} key;

static int key_of_json(const json_t *v, key *k) {
  memset(k, 0, sizeof *k);
  if (json_is_integer(v)) {
    k->is_int = 1;
    k->i = json_integer_value(v);
    return 0;
  }
  if (json_is_string(v)) {
    k->s = json_string_value(v);
    k->n = json_string_length(v);
    return 0;
  }
  return -1;
}

static int key_of_value(const dorm_value *v, key *k) {
  memset(k, 0, sizeof *k);
  if (!v) return -1;
  if (v->type == DORM_T_INT) {
    k->is_int = 1;
    k->i = v->u.i;
    return 0;
  }
  if (v->type >= DORM_T_TEXT && v->type <= DORM_T_JSON) {
    k->s = v->u.s.ptr;
    k->n = v->u.s.len;
    return 0;
  }
  return -1;
}

static int key_cmp(const key *a, const key *b) {
  if (a->is_int != b->is_int) return a->is_int ? -1 : 1;
  if (a->is_int) return a->i < b->i ? -1 : a->i > b->i;
  size_t n = a->n < b->n ? a->n : b->n;
  int c = memcmp(a->s, b->s, n);
  if (c) return c;
  return a->n < b->n ? -1 : a->n > b->n;
}

static int key_qsort(const void *a, const void *b) { return key_cmp(a, b); }

/* The value a key parameter is sent as: the model's key type. */
static dorm_value key_param(const dorm_field *pk, const key *k) {
  if (k->is_int) return dorm_int(k->i);
  dorm_type t = dorm_field_value_type(pk);
  if (t == DORM_T_INT || t == DORM_T_NULL) t = DORM_T_TEXT;
  return dorm_textn(t, k->s, k->n);
}

/* A related key from the join table as JSON. */
static json_t *key_json(const dorm_value *v) {
  if (!v) return NULL;
  switch (v->type) {
    case DORM_T_INT: return json_integer(v->u.i);
    case DORM_T_FLOAT: return json_real(v->u.f);
    case DORM_T_NULL:
    case DORM_T_BOOL:
    case DORM_T_LIST:
    case DORM_T_EXPR: return NULL;
    default: return json_stringn(v->u.s.ptr, v->u.s.len);
  }
}

/* ---- reading: serve_m2m_fill ------------------------------------------- */

typedef struct fill_job {
  dorm_db *db; /* borrowed: the database, or the transaction */
  const dorm_model *model;
  json_t *objs; /* borrowed: an object, or an array of objects */
  serve_m2m_want want;
  key *index; /* owned: the objects' keys, sorted */
  size_t nindex;
  size_t *uniq; /* owned: where each distinct key starts in index (a row
                   may come twice in a page: its key is asked once) */
  size_t nuniq;
  size_t field;       /* the field being read (into want.fields) */
  size_t start;       /* first uniq entry of the chunk being read */
  char *sql;          /* owned: the statement of the chunk in flight */
  dorm_value *params; /* owned: its parameters */
} fill_job;

static void fill_job_free(fill_job *j) {
  free(j->index);
  free(j->uniq);
  free(j->sql);
  free(j->params);
  free(j);
}

static json_t *obj_at(const fill_job *j, size_t i) {
  return json_is_array(j->objs) ? json_array_get(j->objs, i) : j->objs;
}

static dorm_result fill_step(dorm_result *r, void *arg);

/* Start the query for the current field and chunk: a borrowed deferred,
 * or NULL (out of memory, or a name that cannot be quoted). */
static dorm_deferred *fill_query(fill_job *j) {
  const dorm_field *f = j->want.fields[j->field];
  char from[DORM_IDENT_MAX + 1], to[DORM_IDENT_MAX + 1];
  char qfrom[2 * DORM_IDENT_MAX + 3], qto[2 * DORM_IDENT_MAX + 3],
      qtable[2 * DORM_IDENT_MAX + 3];
  if (!f->through_table || dorm_ddl_m2m_columns(f, from, to) != 0 ||
      dorm_quote_ident(from, qfrom, sizeof qfrom) != 0 ||
      dorm_quote_ident(to, qto, sizeof qto) != 0 ||
      dorm_quote_ident(f->through_table, qtable, sizeof qtable) != 0)
    return NULL;
  size_t have = j->nuniq - j->start;
  if (have > SERVE_M2M_CHUNK) have = SERVE_M2M_CHUNK;
  /* the list padded to a power of two with its last key, so pages of any
   * size make a few distinct statements (PostgreSQL prepares each one it
   * sees on a connection) */
  size_t n = 1;
  while (n < have) n *= 2;
  if (n > SERVE_M2M_CHUNK) n = SERVE_M2M_CHUNK;
  int pg = dorm_db_dialect(j->db) == DORM_DIALECT_POSTGRES;
  /* six identifiers, the keywords, and up to "$10000, " per key */
  size_t cap = 6 * sizeof qtable + 64 + n * 9;
  free(j->sql);
  free(j->params);
  j->sql = malloc(cap);
  j->params = malloc(n * sizeof *j->params);
  if (!j->sql || !j->params) return NULL;
  size_t len =
      (size_t)snprintf(j->sql, cap, "SELECT %s, %s FROM %s WHERE %s IN (",
                       qfrom, qto, qtable, qfrom);
  for (size_t i = 0; i < n; i++) {
    size_t u = j->uniq[j->start + (i < have ? i : have - 1)];
    j->params[i] = key_param(j->model->pk, &j->index[u]);
    if (pg)
      len += (size_t)snprintf(j->sql + len, cap - len, "%s$%zu", i ? ", " : "",
                              i + 1);
    else
      len += (size_t)snprintf(j->sql + len, cap - len, "%s?", i ? ", " : "");
  }
  snprintf(j->sql + len, cap - len, ") ORDER BY %s, %s", qfrom, qto);
  /* inside a transaction the pairs it just wrote; else a read (a replica
   * or a SQLite reader may answer) */
  dorm_deferred *d = dorm_db_in_transaction(j->db)
                         ? dorm_async_execute(j->db, j->sql, j->params, n)
                         : dorm_async_execute_read(j->db, j->sql, j->params, n);
  if (d && dorm_deferred_add_both(d, fill_step, j) != 0) {
    dorm_deferred_cancel(d); /* nobody would read it */
    return NULL;
  }
  return d;
}

/* The end of a fill, whatever the outcome: the job is freed here and
 * nowhere else once a query was started. */
static void fill_finish(fill_job *j, int ok) {
  if (ok && j->want.drop_pk)
    for (size_t i = 0; i < j->nindex; i++)
      json_object_del(obj_at(j, j->index[i].obj),
                      j->want.pk_key ? j->want.pk_key : j->model->pk->name);
  fill_job_free(j);
}

/* The pairs of one chunk arrived: append each target to its object's
 * array (they come in ascending order), then read the next chunk or
 * field. */
static dorm_result fill_step(dorm_result *r, void *arg) {
  fill_job *j = arg;
  if (dorm_result_is_error(r)) {
    fill_finish(j, 0);
    return *r;
  }
  const dorm_field *f = j->want.fields[j->field];
  const dorm_rows *rows = dorm_result_rows_of(r);
  size_t n = rows ? dorm_rows_count(rows) : 0;
  for (size_t i = 0; i < n; i++) {
    const dorm_row *row = dorm_rows_row(rows, i);
    key k;
    if (key_of_value(dorm_row_value_at(row, 0), &k) != 0) continue;
    key *hit = bsearch(&k, j->index, j->nindex, sizeof *j->index, key_qsort);
    if (!hit) continue;
    while (hit > j->index && !key_cmp(hit - 1, &k)) hit--;
    for (; hit < j->index + j->nindex && !key_cmp(hit, &k); hit++) {
      json_t *arr = json_object_get(obj_at(j, hit->obj), f->name);
      json_t *t = key_json(dorm_row_value_at(row, 1));
      if (!arr || !t || json_array_append_new(arr, t) != 0) {
        fill_finish(j, 0);
        return dorm_result_error(DORM_ENOMEM, "out of memory");
      }
    }
  }
  j->start += SERVE_M2M_CHUNK;
  if (j->start >= j->nuniq) {
    j->start = 0;
    if (++j->field == j->want.n) { /* all read */
      fill_finish(j, 1);
      return dorm_result_none();
    }
  }
  /* the next chunk's step owns the job from here; without one, this does */
  dorm_deferred *d = fill_query(j);
  if (!d) {
    fill_finish(j, 0);
    return dorm_result_error(DORM_ENOMEM, "out of memory");
  }
  return dorm_result_deferred(d);
}

int serve_m2m_fill(dorm_db *db, const dorm_model *m, json_t *objs,
                   const serve_m2m_want *want, dorm_deferred **out) {
  *out = NULL;
  fill_job *j = calloc(1, sizeof *j);
  if (!j) return -1;
  j->db = db;
  j->model = m;
  j->objs = objs;
  j->want = *want;
  const char *pk_key = want->pk_key ? want->pk_key : m->pk->name;
  size_t nobj = json_is_array(objs) ? json_array_size(objs) : 1;
  j->index = malloc((nobj ? nobj : 1) * sizeof *j->index);
  if (!j->index) goto fail;
  for (size_t i = 0; i < nobj; i++) {
    json_t *o = obj_at(j, i);
    for (size_t k = 0; k < want->n; k++) {
      json_t *empty = json_array();
      if (!empty || json_object_set_new(o, want->fields[k]->name, empty) != 0)
        goto fail;
    }
    if (key_of_json(json_object_get(o, pk_key), &j->index[j->nindex]) == 0)
      j->index[j->nindex++].obj = i;
  }
  if (!db || !want->n || !j->nindex) { /* nothing to read: empty arrays */
    j->want.n = 0;
    fill_finish(j, 1);
    return 0;
  }
  qsort(j->index, j->nindex, sizeof *j->index, key_qsort);
  j->uniq = malloc(j->nindex * sizeof *j->uniq);
  if (!j->uniq) goto fail;
  for (size_t i = 0; i < j->nindex; i++)
    if (!i || key_cmp(&j->index[i - 1], &j->index[i])) j->uniq[j->nuniq++] = i;
  dorm_deferred *d = fill_query(j); /* its step owns j from now on */
  if (!d) goto fail;
  *out = d;
  return 1;
fail:
  fill_job_free(j);
  return -1;
}

/* ---- writing: serve_m2m_apply ------------------------------------------ */

typedef struct apply_job {
  dorm_db *tx; /* borrowed: the transaction */
  const dorm_model *model;
  const serve_m2m_input *in; /* borrowed */
  json_t *pk;                /* a reference on the row's key */
  size_t next;               /* the field to set next */
  int created;               /* the row is new: add (it has no pairs) */
} apply_job;

static void apply_job_free(apply_job *j) {
  json_decref(j->pk);
  free(j);
}

static dorm_result apply_step(dorm_result *r, void *arg);

/* dorm_async_m2m_set for field j->next, with apply_step as its one step;
 * the keys are copied during the call, so the array lives on this frame
 * (or the heap when large).  NULL when out of memory: then nothing refers
 * to j (a request already started is cancelled, its step never added). */
static dorm_deferred *apply_one(apply_job *j) {
  size_t i = j->next++;
  const dorm_field *f = j->in->fields[i];
  json_t *arr = j->in->keys[i];
  size_t n = json_array_size(arr);
  dorm_value stack[64], *keys = n <= 64 ? stack : malloc(n * sizeof *keys);
  if (!keys) return NULL;
  for (size_t k = 0; k < n; k++) {
    key kk;
    key_of_json(json_array_get(arr, k), &kk);
    keys[k] = key_param(f->target->pk, &kk);
  }
  key pk;
  dorm_deferred *d = NULL;
  if (key_of_json(j->pk, &pk) == 0)
    d = (j->created ? dorm_async_m2m_add : dorm_async_m2m_set)(
        j->tx, j->model, f->name, key_param(j->model->pk, &pk), keys, n);
  if (keys != stack) free(keys);
  if (d && dorm_deferred_add_both(d, apply_step, j) != 0) {
    dorm_deferred_cancel(d); /* nobody would see how it ends */
    return NULL;
  }
  return d;
}

/* The one step of each field's deferred, whatever the outcome: the job
 * ends at the first error or after the last field, else the next field's
 * deferred carries it on.  So the job always has exactly one owner, the
 * step that will run next, and a step that cannot be added never leaves
 * another one pointing at a freed job. */
static dorm_result apply_step(dorm_result *r, void *arg) {
  apply_job *j = arg;
  if (dorm_result_is_error(r) || j->next >= j->in->n) {
    apply_job_free(j);
    return *r;
  }
  dorm_deferred *d = apply_one(j);
  if (!d) {
    apply_job_free(j);
    return dorm_result_error(DORM_ENOMEM, "out of memory");
  }
  return dorm_result_deferred(d);
}

dorm_deferred *serve_m2m_apply(dorm_db *tx, const dorm_model *m, json_t *obj,
                               const serve_m2m_input *in, int created) {
  json_t *pk = json_object_get(obj, m->pk->name);
  if (!pk || !in->n) return NULL;
  apply_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->tx = tx;
  j->model = m;
  j->in = in;
  j->pk = json_incref(pk);
  j->created = created;
  dorm_deferred *d = apply_one(j);
  if (!d) apply_job_free(j);
  return d;
}
