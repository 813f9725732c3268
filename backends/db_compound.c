/* SPDX-License-Identifier: MIT */
/* backends/db_compound.c — the operations the facade builds from several
 * statements, each inside an atomic block (db_tx.c) so it is all or
 * nothing.
 *
 * get_or_create / update_or_create: a get (for update_or_create, an
 * UPDATE ... RETURNING) and, when nothing matches, an INSERT in a nested
 * block, so that a unique violation from a writer that created the row
 * first rolls back only the INSERT and is answered by reading (or
 * updating) that row.  The statements are all compiled before the
 * transaction starts, from queries built and freed inside the call.
 *
 * bulk_create compiles a many-row INSERT in chunks that fit the backend's
 * parameter limit, through dorm_compile_ex (the query itself is never
 * changed), and sends them as one request.
 *
 * The many-to-many calls (add, remove, clear, set) compile their join-table
 * statements with dorm_compile_m2m, chunked the same way; one statement
 * runs as it is, several (a long list, or set's remove-then-add) run as
 * one request inside a transaction.
 */
#include <string.h>

#include "backends/db_int.h"
#include "base/base_int.h"

/* Run a compiled statement (borrowed: it must outlive the op) on db. */
static dorm_deferred *run_sql(dorm_db *db, const dorm_sql *sql, int kind,
                              int write, const char *model_name, int created) {
  op *o = dorm__db_op_public(db, kind);
  if (!o) return NULL;
  dorm_deferred *d = o->d;
  o->use = sql;
  o->write = write;
  o->model_name = model_name;
  o->created = created;
  dorm__db_op_stmt_from_sql(o);
  dorm__db_dispatch(o);
  return d;
}

/* A deferred that fires soon with res (R2: never inside the call). */
static dorm_deferred *fire_soon(dorm_db *db, dorm_result res) {
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  if (d)
    dorm_deferred_fire_soon(db->root->loop, d, res);
  else
    dorm_result_free(&res);
  return d;
}

typedef struct goc {
  const dorm_model *model;
  dorm_sql sel; /* get: LIMIT 2 */
  dorm_sql ins; /* insert RETURNING */
  dorm_sql upd; /* update_or_create: UPDATE ... RETURNING, len 0 if none */
  dorm_db *tx;
  /* the insert refused by the builder (a default or lookup value outside
   * the field's choices, too long, ...): given only when the get finds no
   * row, as Django's get_or_create reaches create() only then */
  dorm_error ins_err;
} goc;

static void goc_free(void *p) {
  goc *g = p;
  dorm_sql_free(&g->sel);
  dorm_sql_free(&g->ins);
  dorm_sql_free(&g->upd);
  dorm__free(g);
}

static dorm_result goc_finally(dorm_result *res, void *arg) {
  goc_free(arg);
  return *res;
}

static dorm_deferred *goc_ins_body(dorm_db *tx, void *arg) {
  goc *g = arg;
  return run_sql(tx, &g->ins, OP_ROW, 1, g->model->name, 1);
}

static dorm_result goc_race(dorm_result *res, void *arg) {
  goc *g = arg;
  if (dorm_result_code(res) != DORM_EINTEGRITY) return *res;
  /* another writer created it between our get and our insert */
  dorm_deferred *d =
      g->upd.len ? run_sql(g->tx, &g->upd, OP_GET, 1, g->model->name, 0)
                 : run_sql(g->tx, &g->sel, OP_GET, 0, g->model->name, 0);
  if (!d) return dorm_result_error(DORM_ENOMEM, NULL);
  return dorm_result_deferred(d);
}

static dorm_result goc_missing(dorm_result *res, void *arg) {
  goc *g = arg;
  if (dorm_result_code(res) != DORM_ENOTFOUND) return *res;
  if (g->ins_err.code) {
    dorm_result_free(res);
    return dorm_result_error_from(&g->ins_err);
  }
  dorm_deferred *d = dorm_async_atomic(g->tx, goc_ins_body, g);
  if (!d) return dorm_result_error(DORM_ENOMEM, NULL);
  if (dorm_deferred_add_errback(d, goc_race, g)) return *res;
  return dorm_result_deferred(d);
}

static dorm_deferred *goc_body(dorm_db *tx, void *arg) {
  goc *g = arg;
  g->tx = tx;
  dorm_deferred *d = g->upd.len
                         ? run_sql(tx, &g->upd, OP_GET, 1, g->model->name, 0)
                         : run_sql(tx, &g->sel, OP_GET, 0, g->model->name, 0);
  if (!d) return NULL;
  if (dorm_deferred_add_errback(d, goc_missing, g)) return NULL;
  return d;
}

static int has_lookup(const char *k) { return strstr(k, "__") != NULL; }

static dorm_deferred *goc_start(dorm_db *db, const dorm_model *model,
                                const dorm_kv *lookups, size_t nl,
                                const dorm_kv *defaults, size_t nd,
                                int update) {
  if (!db || !model || (nl && !lookups) || (nd && !defaults)) return NULL;
  goc *g = dorm__calloc(1, sizeof *g);
  if (!g) return NULL;
  g->model = model;
  dorm_sql_init(&g->sel);
  dorm_sql_init(&g->ins);
  dorm_sql_init(&g->upd);
  dorm_error_clear(&g->ins_err);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_dialect dl = db->root->be->dialect;
  dorm_query *s = dorm_select(model), *i = dorm_insert(model);
  dorm_query *u = update && nd ? dorm_update(model) : NULL;
  int rc = (!s || !i || (update && nd && !u)) ? DORM_ENOMEM : 0;
  /* the lookups are one filter() call, as Django's get_or_create(**kw):
   * across a multi-valued relation they are about the same related row */
  dorm_q *sq = NULL, *uq = NULL;
  for (size_t k = 0; !rc && k < nl; k++) {
    dorm_q *c = dorm_Q(s, lookups[k].field, lookups[k].value);
    sq = sq ? dorm_q_and(s, sq, c) : c;
    if (u) {
      c = dorm_Q(u, lookups[k].field, lookups[k].value);
      uq = uq ? dorm_q_and(u, uq, c) : c;
    }
    if (!has_lookup(lookups[k].field) && strcmp(lookups[k].field, "pk"))
      dorm_set(i, lookups[k].field, lookups[k].value);
    else if (!strcmp(lookups[k].field, "pk"))
      dorm_set(i, model->pk->name, lookups[k].value);
  }
  if (!rc && sq) dorm_filter_q(s, sq);
  if (!rc && uq) dorm_filter_q(u, uq);
  for (size_t k = 0; !rc && k < nd; k++) {
    dorm_set(i, defaults[k].field, defaults[k].value);
    if (u) dorm_set(u, defaults[k].field, defaults[k].value);
  }
  if (!rc && s) dorm_slice(s, 0, 2);
  if (!rc && u) dorm_returning(u, "*");
  if (!rc) rc = dorm_compile(s, dl, &g->sel, &err);
  if (!rc && dorm_compile(i, dl, &g->ins, &g->ins_err)) {
    /* kept for goc_missing: the row may exist */
    if (g->ins_err.code == DORM_ENOMEM) rc = DORM_ENOMEM;
  }
  if (!rc && u) rc = dorm_compile(u, dl, &g->upd, &err);
  dorm_query_free(s);
  dorm_query_free(i);
  dorm_query_free(u);
  if (rc) {
    /* report through the deferred (R2), as every other call */
    goc_free(g);
    return fire_soon(db, err.code ? dorm_result_error_from(&err)
                                  : dorm_result_error(rc, NULL));
  }
  dorm_deferred *d = dorm_async_atomic(db, goc_body, g);
  if (!d) {
    goc_free(g);
    return NULL;
  }
  if (dorm_deferred_add_both(d, goc_finally, g)) {
    /* cannot happen with an empty chain; keep g rather than free it under
     * the running transaction */
  }
  return d;
}

dorm_deferred *dorm_async_get_or_create(dorm_db *db, const dorm_model *model,
                                        const dorm_kv *lookups, size_t nlookups,
                                        const dorm_kv *defaults,
                                        size_t ndefaults) {
  return goc_start(db, model, lookups, nlookups, defaults, ndefaults, 0);
}

dorm_deferred *dorm_async_update_or_create(dorm_db *db, const dorm_model *model,
                                           const dorm_kv *lookups,
                                           size_t nlookups,
                                           const dorm_kv *defaults,
                                           size_t ndefaults) {
  return goc_start(db, model, lookups, nlookups, defaults, ndefaults, 1);
}

/* bulk_create: the INSERT compiled in chunks that fit the backend's
 * parameter limit, all sent as one request inside a transaction. */
typedef struct bulk {
  dorm_sql *chunks;
  size_t n;
  dorm__stmt *stmts;
} bulk;

static void bulk_free(void *p) {
  bulk *b = p;
  for (size_t i = 0; i < b->n; i++) dorm_sql_free(&b->chunks[i]);
  dorm__free(b->chunks);
  dorm__free(b->stmts);
  dorm__free(b);
}

static dorm_result bulk_finally(dorm_result *res, void *arg) {
  bulk_free(arg);
  return *res;
}

static dorm_deferred *bulk_body(dorm_db *tx, void *arg) {
  bulk *b = arg;
  op *o = dorm__db_op_public(tx, OP_PLAIN);
  if (!o) return NULL;
  dorm_deferred *d = o->d;
  o->write = 1;
  o->stmts = b->stmts;
  o->nstmts = b->n;
  o->req.flags = DORM__REQ_SUM_COUNTS;
  dorm__db_dispatch(o);
  return d;
}

static int bulk_compile(const dorm_query *q, dorm_dialect dl, size_t max_params,
                        bulk *b, dorm_error *err) {
  /* the inserted rows are not read back: RETURNING only the key keeps
   * the statement cheap */
  dorm_compile_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.flags = DORM_COMPILE_RETURN_PK;
  size_t nrows = dorm_query_row_count(q);
  /* parameters per row: compile the first row alone */
  dorm_sql one;
  dorm_sql_init(&one);
  opts.row_count = 1;
  int rc = dorm_compile_ex(q, dl, &opts, &one, err);
  size_t per = one.nparams ? one.nparams : 1;
  dorm_sql_free(&one);
  size_t chunk = max_params / per;
  if (chunk > 500) chunk = 500; /* SQLite parses big VALUES lists slowly */
  if (chunk == 0) chunk = 1;
  size_t nchunks = nrows ? (nrows + chunk - 1) / chunk : 0;
  if (!rc && nchunks) {
    b->chunks = dorm__calloc(nchunks, sizeof *b->chunks);
    b->stmts = dorm__calloc(nchunks, sizeof *b->stmts);
    if (!b->chunks || !b->stmts)
      rc = dorm_error_set(err, DORM_ENOMEM, "out of memory");
  }
  for (size_t c = 0; !rc && c < nchunks; c++) {
    opts.row_first = c * chunk;
    opts.row_count = chunk;
    dorm_sql_init(&b->chunks[c]);
    b->n = c + 1;
    rc = dorm_compile_ex(q, dl, &opts, &b->chunks[c], err);
    dorm__stmt *st = &b->stmts[c];
    st->sql = b->chunks[c].text;
    st->len = b->chunks[c].len;
    st->params = b->chunks[c].params;
    st->nparams = b->chunks[c].nparams;
    st->columns = b->chunks[c].columns;
    st->ncolumns = b->chunks[c].ncolumns;
    st->returns_rows = 0;
  }
  return rc;
}

dorm_deferred *dorm_async_bulk_create(dorm_db *db, const dorm_query *q) {
  if (!db) return NULL;
  dorm_deferred *copy; /* PostgreSQL's COPY when it wins (db_bulk.c) */
  if (dorm__db_bulk_copy(db, q, &copy)) return copy;
  dorm_error err;
  dorm_error_clear(&err);
  bulk *b = dorm__calloc(1, sizeof *b);
  if (!b) return NULL;
  int rc = 0;
  if (!q || dorm_query_kind_of(q) != DORM_QUERY_INSERT)
    rc = dorm_error_set(&err, DORM_EINVAL, "bulk_create: not an INSERT query");
  else if (dorm_query_error(q, NULL))
    rc = dorm_query_error(q, &err);
  else
    rc = bulk_compile(q, db->root->be->dialect, db->root->be->max_params, b,
                      &err);
  if (!rc && b->n == 0) {
    bulk_free(b);
    return fire_soon(db, dorm_result_count(0));
  }
  if (rc) {
    bulk_free(b);
    return fire_soon(db, dorm_result_error_from(&err));
  }
  dorm_deferred *d = dorm_async_atomic(db, bulk_body, b);
  if (!d) {
    bulk_free(b);
    return NULL;
  }
  dorm_deferred_add_both(d, bulk_finally, b);
  return d;
}

/* ---- many-to-many: add, remove, clear, set ------------------------------ */

/* Compile mop over targets[0..n) into b, in chunks of at most `chunk`
 * targets (one statement for CLEAR, and for KEEP_ONLY, which needs every
 * target in one NOT IN list). */
static int m2m_compile(dorm_db *db, const dorm_model *model, const char *field,
                       dorm_m2m_op mop, dorm_value pk, const dorm_value *targets,
                       size_t n, bulk *b, dorm_error *err) {
  size_t max = db->root->be->max_params;
  size_t chunk = mop == DORM_M2M_ADD ? max / 2 : max - 1;
  if (chunk > 500) chunk = 500; /* SQLite parses long lists slowly */
  if (mop == DORM_M2M_CLEAR || mop == DORM_M2M_KEEP_ONLY || n == 0) chunk = n;
  size_t nst = chunk ? (n + chunk - 1) / chunk : 1;
  size_t at = b->n;
  dorm_sql *c = dorm__realloc(b->chunks, (at + nst) * sizeof *c);
  if (c) b->chunks = c;
  dorm__stmt *s = c ? dorm__realloc(b->stmts, (at + nst) * sizeof *s) : NULL;
  if (!s) return dorm_error_set(err, DORM_ENOMEM, "out of memory");
  b->stmts = s;
  for (size_t k = 0; k < nst; k++) {
    size_t first = k * chunk, cnt = n - first < chunk ? n - first : chunk;
    dorm_sql *sql = &b->chunks[at + k];
    dorm_sql_init(sql);
    b->n = at + k + 1;
    int rc = dorm_compile_m2m(model, field, mop, pk, targets + first, cnt,
                              db->root->be->dialect, sql, err);
    if (rc) return rc;
    dorm__stmt *st = &b->stmts[at + k];
    memset(st, 0, sizeof *st);
    st->sql = sql->text;
    st->len = sql->len;
    st->params = sql->params;
    st->nparams = sql->nparams;
    st->param_int4 = sql->param_int4;
  }
  return 0;
}

/* Run ops[0..nops) (each over targets) as one request: a lone statement
 * as it is, several inside a transaction so they are all or nothing.  The
 * result is the number of pairs added or removed. */
static dorm_deferred *m2m_run(dorm_db *db, const dorm_model *model,
                              const char *field, const dorm_m2m_op *ops,
                              size_t nops, dorm_value pk,
                              const dorm_value *targets, size_t n) {
  if (!db) return NULL;
  bulk *b = dorm__calloc(1, sizeof *b);
  if (!b) return NULL;
  dorm_error err;
  dorm_error_clear(&err);
  int rc = 0;
  for (size_t i = 0; !rc && i < nops; i++)
    rc = m2m_compile(db, model, field, ops[i], pk, targets, n, b, &err);
  if (rc) {
    bulk_free(b);
    return fire_soon(db, dorm_result_error_from(&err));
  }
  dorm_deferred *d;
  if (b->n == 1) {
    d = run_sql(db, &b->chunks[0], OP_PLAIN, 1, model->name, 0);
  } else {
    d = dorm_async_atomic(db, bulk_body, b);
  }
  if (!d) {
    bulk_free(b);
    return NULL;
  }
  dorm_deferred_add_both(d, bulk_finally, b);
  return d;
}

/* add() or remove() of no keys changes nothing, as in Django; the field
 * and the key are still checked. */
static dorm_deferred *m2m_nothing(dorm_db *db, const dorm_model *model,
                                  const char *field, dorm_value pk) {
  if (!db) return NULL;
  dorm_sql sql;
  dorm_sql_init(&sql);
  dorm_error err;
  dorm_error_clear(&err);
  int rc = dorm_compile_m2m(model, field, DORM_M2M_CLEAR, pk, NULL, 0,
                            db->root->be->dialect, &sql, &err);
  dorm_sql_free(&sql);
  return fire_soon(db, rc ? dorm_result_error_from(&err) : dorm_result_count(0));
}

/* add() or remove(): one operation over the keys. */
static dorm_deferred *m2m_one(dorm_db *db, const dorm_model *model,
                              const char *field, dorm_m2m_op mop,
                              dorm_value pk, const dorm_value *targets,
                              size_t n) {
  if (!n) return m2m_nothing(db, model, field, pk);
  return m2m_run(db, model, field, &mop, 1, pk, targets, n);
}

dorm_deferred *dorm_async_m2m_add(dorm_db *db, const dorm_model *model,
                                  const char *field, dorm_value pk,
                                  const dorm_value *targets, size_t n) {
  return m2m_one(db, model, field, DORM_M2M_ADD, pk, targets, n);
}

dorm_deferred *dorm_async_m2m_remove(dorm_db *db, const dorm_model *model,
                                     const char *field, dorm_value pk,
                                     const dorm_value *targets, size_t n) {
  return m2m_one(db, model, field, DORM_M2M_REMOVE, pk, targets, n);
}

dorm_deferred *dorm_async_m2m_clear(dorm_db *db, const dorm_model *model,
                                    const char *field, dorm_value pk) {
  static const dorm_m2m_op ops[] = {DORM_M2M_CLEAR};
  return m2m_run(db, model, field, ops, 1, pk, NULL, 0);
}

dorm_deferred *dorm_async_m2m_set(dorm_db *db, const dorm_model *model,
                                  const char *field, dorm_value pk,
                                  const dorm_value *targets, size_t n) {
  /* Django's set(): the pairs not listed go, the missing ones come, and
   * the pairs kept keep their rows.  A list too long for one NOT IN
   * statement clears and adds instead: the same pairs in the end. */
  static const dorm_m2m_op keep_then_add[] = {DORM_M2M_KEEP_ONLY, DORM_M2M_ADD};
  static const dorm_m2m_op clear_then_add[] = {DORM_M2M_CLEAR, DORM_M2M_ADD};
  if (!db) return NULL;
  if (!n) return m2m_run(db, model, field, clear_then_add, 1, pk, NULL, 0);
  const dorm_m2m_op *ops =
      n + 1 <= db->root->be->max_params ? keep_then_add : clear_then_add;
  return m2m_run(db, model, field, ops, 2, pk, targets, n);
}
