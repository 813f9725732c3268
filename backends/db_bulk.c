/* SPDX-License-Identifier: MIT */
/* backends/db_bulk.c — the bulk writes beyond a plain bulk_create: COPY
 * for big inserts on PostgreSQL, bulk_create that hands back the rows it
 * created, and Django's bulk_update.  Each runs inside an atomic block
 * (db_tx.c), so it is all or nothing, and the block also keeps the
 * compiled statements alive until every request on them is answered (a
 * cancel fails the block's deferred only once its requests are back).
 *
 * COPY: dorm_async_bulk_create hands a bulk insert to dorm__db_bulk_copy
 * first.  It takes it when the backend runs COPY (backend_int.h,
 * copy_in), the insert has a COPY form (dorm_compile_copy: no conflict
 * clause, every value a parameter) and it is bigger than one INSERT
 * statement: below that a multi-row INSERT is one round trip, where COPY
 * costs a second one (and on PostgreSQL the connection leaves pipeline
 * mode for it).  The request is the one COPY statement, whose parameters
 * are the data rows (dorm_compile_copy); the driver encodes them as COPY
 * text (backends/pg/pg_copy.c).
 *
 * bulk_create_returning compiles the chunks with RETURNING every column
 * and runs them one after the other in the block; their rows are put
 * together, in input order, into one result.
 *
 * dorm_async_copy_out sends one COPY ... TO STDOUT (raw SQL, no
 * parameters: COPY takes none) whose rows the driver hands to the
 * caller's function as they arrive.
 *
 * bulk_update compiles a chunk per parameter budget
 * (dorm_compile_bulk_update: two parameters per object and field, one
 * per object for the WHERE) and runs them as one request whose result is
 * the sum of the rows matched, as Django's returns.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "backends/db_int.h"
#include "base/base_int.h"

/* Inserts smaller than this many rows per INSERT statement never COPY. */
#define BULK_INSERT_CHUNK 500

typedef struct bset {
  dorm_sql *chunks;  /* n */
  dorm__stmt *stmts; /* n */
  size_t n;
  size_t width; /* COPY: values per row */
  /* returning: each chunk's rows, then put together */
  dorm_result *parts;
  size_t nparts, next;
  dorm_db *tx;
} bset;

static void bset_free(void *p) {
  bset *b = p;
  for (size_t i = 0; i < b->n; i++) dorm_sql_free(&b->chunks[i]);
  for (size_t i = 0; i < b->nparts; i++) dorm_result_free(&b->parts[i]);
  dorm__free(b->parts);
  dorm__free(b->chunks);
  dorm__free(b->stmts);
  dorm__free(b);
}

static dorm_result bset_finally(dorm_result *res, void *arg) {
  bset_free(arg);
  return *res;
}

static int bset_alloc(bset *b, size_t n, dorm_error *err) {
  b->chunks = dorm__calloc(n ? n : 1, sizeof *b->chunks);
  b->stmts = dorm__calloc(n ? n : 1, sizeof *b->stmts);
  if (!b->chunks || !b->stmts)
    return dorm_error_set(err, DORM_ENOMEM, "out of memory");
  return 0;
}

/* Statement i points at chunk i. */
static void bset_stmt(bset *b, size_t i, int returns_rows) {
  dorm__stmt *st = &b->stmts[i];
  const dorm_sql *s = &b->chunks[i];
  memset(st, 0, sizeof *st);
  st->sql = s->text;
  st->len = s->len;
  st->params = s->params;
  st->nparams = s->nparams;
  st->param_int4 = s->param_int4;
  st->columns = s->columns;
  st->ncolumns = s->ncolumns;
  st->returns_rows = returns_rows;
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

/* Run fn on b in an atomic block of db; b is freed when it is over. */
static dorm_deferred *bset_atomic(dorm_db *db, bset *b, dorm_atomic_fn fn) {
  dorm_deferred *d = dorm_async_atomic(db, fn, b);
  if (!d) {
    bset_free(b);
    return NULL;
  }
  dorm_deferred_add_both(d, bset_finally, b);
  return d;
}

/* One request of every statement of b on tx. */
static dorm_deferred *bset_request(dorm_db *tx, bset *b, unsigned flags) {
  op *o = dorm__db_op_public(tx, OP_PLAIN);
  if (!o) return NULL;
  dorm_deferred *d = o->d;
  o->write = 1;
  o->stmts = b->stmts;
  o->nstmts = b->n;
  o->req.flags = flags;
  o->req.copy_width = b->width;
  dorm__db_dispatch(o);
  return d;
}

/* ---- COPY ------------------------------------------------------------------
 */

static dorm_deferred *copy_body(dorm_db *tx, void *arg) {
  return bset_request(tx, arg, DORM__REQ_COPY);
}

int dorm__db_bulk_copy(dorm_db *db, const dorm_query *q, dorm_deferred **out) {
  *out = NULL;
  const dorm__backend *be = db->root->be;
  if (!be->copy_in || !q || dorm_query_kind_of(q) != DORM_QUERY_INSERT ||
      dorm_query_error(q, NULL))
    return 0;
  if (dorm_query_row_count(q) <= BULK_INSERT_CHUNK) return 0;
  bset *b = dorm__calloc(1, sizeof *b);
  if (!b) return 0; /* the INSERT path reports the lack of memory */
  dorm_error err;
  dorm_error_clear(&err);
  int rc = bset_alloc(b, 1, &err);
  if (!rc) {
    b->n = 1;
    rc = dorm_compile_copy(q, be->dialect, &b->chunks[0], &b->width, &err);
  }
  if (rc == DORM_EUNSUPPORTED) {
    /* no COPY form (a conflict clause, an expression): INSERT it is */
    bset_free(b);
    return 0;
  }
  if (rc) {
    bset_free(b);
    *out = fire_soon(db, dorm_result_error_from(&err));
    return 1;
  }
  bset_stmt(b, 0, 0);
  *out = bset_atomic(db, b, copy_body);
  return 1;
}

/* ---- bulk_create returning the rows ----------------------------------------
 */

/* The rows of every part, in order, as one result (columns of the first
 * chunk's statement: the same for all). */
static dorm_result join_parts(bset *b) {
  if (b->nparts == 1) {
    dorm_result r = b->parts[0];
    b->parts[0] = dorm_result_none();
    return r;
  }
  size_t total = 0;
  for (size_t i = 0; i < b->nparts; i++)
    total += dorm_rows_count(dorm_result_rows_of(&b->parts[i]));
  dorm_rows *all = dorm__rows_new_sized(&b->stmts[0], 0, total, 0);
  if (!all) return dorm_result_error(DORM_ENOMEM, NULL);
  int rc = 0;
  for (size_t i = 0; !rc && i < b->nparts; i++) {
    const dorm_rows *part = dorm_result_rows_of(&b->parts[i]);
    size_t nc = dorm_rows_ncolumns(part);
    for (size_t r = 0; !rc && r < dorm_rows_count(part); r++) {
      const dorm_row *row = dorm_rows_row(part, r);
      rc = dorm__rows_add_row(all);
      for (size_t c = 0; !rc && c < nc; c++) {
        const dorm_value *v = dorm_row_value_at(row, c);
        switch (v->type) {
          case DORM_T_NULL: break;
          case DORM_T_BOOL: rc = dorm__rows_put_int(all, c, v->u.b); break;
          case DORM_T_INT: rc = dorm__rows_put_int(all, c, v->u.i); break;
          case DORM_T_FLOAT: rc = dorm__rows_put_float(all, c, v->u.f); break;
          case DORM_T_BYTES:
            rc = dorm__rows_put_bytes(all, c, v->u.s.ptr, v->u.s.len);
            break;
          default:
            rc = dorm__rows_put_text(all, c, v->u.s.ptr, v->u.s.len);
            break;
        }
      }
    }
  }
  if (!rc) rc = dorm__rows_finish(all);
  if (rc) {
    dorm_result e = rc == DORM_ETYPE ? dorm_result_error(DORM_ETYPE, "%s",
                                                         dorm__rows_error(all))
                                     : dorm_result_error(rc, NULL);
    dorm__rows_free(all);
    return e;
  }
  return dorm__rows_result(all);
}

static dorm_deferred *ret_next(bset *b);

static dorm_result ret_step(dorm_result *res, void *arg) {
  bset *b = arg;
  if (dorm_result_is_error(res)) return *res;
  b->parts[b->nparts++] = dorm_result_take(res);
  if (b->next < b->n) {
    dorm_deferred *d = ret_next(b);
    if (!d) return dorm_result_error(DORM_ENOMEM, NULL);
    return dorm_result_deferred(d);
  }
  return join_parts(b);
}

/* Send the next chunk; its rows go to parts. */
static dorm_deferred *ret_next(bset *b) {
  size_t i = b->next++;
  op *o = dorm__db_op_public(b->tx, OP_PLAIN);
  if (!o) return NULL;
  dorm_deferred *d = o->d;
  o->write = 1;
  o->stmt = b->stmts[i];
  o->stmts = &o->stmt;
  o->nstmts = 1;
  dorm__db_dispatch(o);
  if (dorm_deferred_add_both(d, ret_step, b)) return NULL;
  return d;
}

static dorm_deferred *ret_body(dorm_db *tx, void *arg) {
  bset *b = arg;
  b->tx = tx;
  return ret_next(b);
}

dorm_deferred *dorm_async_bulk_create_returning(dorm_db *db,
                                                const dorm_query *q) {
  if (!db) return NULL;
  dorm_error err;
  dorm_error_clear(&err);
  int rc = 0;
  if (!q || dorm_query_kind_of(q) != DORM_QUERY_INSERT)
    rc = dorm_error_set(&err, DORM_EINVAL,
                        "bulk_create_returning: not an INSERT query");
  else if (dorm_query_error(q, NULL))
    rc = dorm_query_error(q, &err);
  if (rc) return fire_soon(db, dorm_result_error_from(&err));
  size_t nrows = dorm_query_row_count(q);
  const dorm__backend *be = db->root->be;
  /* parameters per row: the first row alone */
  dorm_sql one;
  dorm_sql_init(&one);
  dorm_compile_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.row_count = 1;
  rc = dorm_compile_ex(q, be->dialect, &opts, &one, &err);
  size_t per = one.nparams ? one.nparams : 1;
  dorm_sql_free(&one);
  if (rc) return fire_soon(db, dorm_result_error_from(&err));
  size_t chunk = be->max_params / per;
  if (chunk > BULK_INSERT_CHUNK) chunk = BULK_INSERT_CHUNK;
  if (chunk == 0) chunk = 1;
  size_t nchunks = (nrows + chunk - 1) / chunk;
  bset *b = dorm__calloc(1, sizeof *b);
  if (!b) return NULL;
  rc = bset_alloc(b, nchunks, &err);
  if (!rc) {
    b->parts = dorm__calloc(nchunks, sizeof *b->parts);
    if (!b->parts) rc = dorm_error_set(&err, DORM_ENOMEM, "out of memory");
  }
  for (size_t c = 0; !rc && c < nchunks; c++) {
    /* RETURNING every column (the query's own RETURNING, if any, wins) */
    opts.row_first = c * chunk;
    opts.row_count = chunk;
    dorm_sql_init(&b->chunks[c]);
    b->n = c + 1;
    rc = dorm_compile_ex(q, be->dialect, &opts, &b->chunks[c], &err);
    if (!rc) bset_stmt(b, c, 1);
  }
  if (rc) {
    bset_free(b);
    return fire_soon(db, dorm_result_error_from(&err));
  }
  return bset_atomic(db, b, ret_body);
}

/* ---- bulk_update
 * ------------------------------------------------------------- */

static dorm_deferred *update_body(dorm_db *tx, void *arg) {
  return bset_request(tx, arg, DORM__REQ_SUM_COUNTS);
}

dorm_deferred *dorm_async_bulk_update(dorm_db *db, const dorm_query *rows,
                                      const char *const *fields,
                                      size_t nfields) {
  if (!db) return NULL;
  const dorm__backend *be = db->root->be;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_sql probe;
  dorm_sql_init(&probe);
  dorm_compile_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.row_count = 1;
  /* checks the query, the fields and the first object */
  int rc = dorm_compile_bulk_update(rows, fields, nfields, be->dialect, &opts,
                                    &probe, &err);
  dorm_sql_free(&probe);
  if (rc) return fire_soon(db, dorm_result_error_from(&err));
  size_t nrows = dorm_query_row_count(rows);
  size_t chunk = be->max_params / (2 * nfields + 1);
  if (chunk > BULK_INSERT_CHUNK) chunk = BULK_INSERT_CHUNK;
  if (chunk == 0) chunk = 1;
  size_t nchunks = (nrows + chunk - 1) / chunk;
  bset *b = dorm__calloc(1, sizeof *b);
  if (!b) return NULL;
  rc = bset_alloc(b, nchunks, &err);
  for (size_t c = 0; !rc && c < nchunks; c++) {
    opts.row_first = c * chunk;
    opts.row_count = chunk;
    dorm_sql_init(&b->chunks[c]);
    b->n = c + 1;
    rc = dorm_compile_bulk_update(rows, fields, nfields, be->dialect, &opts,
                                  &b->chunks[c], &err);
    if (!rc) bset_stmt(b, c, 0);
  }
  if (rc) {
    bset_free(b);
    return fire_soon(db, dorm_result_error_from(&err));
  }
  return bset_atomic(db, b, update_body);
}

/* ---- COPY ... TO STDOUT
 * ------------------------------------------------------ */

static dorm_deferred *copy_out_fail(dorm_db *db, int code, const char *msg) {
  return fire_soon(db, dorm_result_error(code, "%s", msg));
}

dorm_deferred *dorm_async_copy_out(dorm_db *db, const char *sql,
                                   dorm_copy_out_fn fn, void *arg) {
  if (!db || !sql || !fn) return NULL;
  if (!db->root->be->copy_in)
    return copy_out_fail(db, DORM_EUNSUPPORTED,
                         "copy_out: COPY is PostgreSQL's");
  const char *p = sql;
  while (isspace((unsigned char)*p)) p++;
  if (strncasecmp(p, "COPY", 4) || isalnum((unsigned char)p[4]) || p[4] == '_')
    return copy_out_fail(db, DORM_EINVAL,
                         "copy_out: not a COPY ... TO STDOUT statement");
  op *o = dorm__db_op_public(db, OP_PLAIN);
  if (!o) return NULL;
  dorm_deferred *d = o->d;
  size_t len = strlen(sql);
  o->raw = dorm__malloc(len + 1);
  if (!o->raw) {
    dorm__db_op_fail_soon(o, dorm_result_error(DORM_ENOMEM, NULL));
    return d;
  }
  memcpy(o->raw, sql, len + 1);
  dorm__db_op_stmt_text(o, o->raw);
  /* on the primary, as a write: an export of what was just written sees
   * it, whatever the replicas' lag */
  o->write = 1;
  o->req.flags = DORM__REQ_COPY_OUT;
  o->req.copy_out = fn;
  o->req.copy_arg = arg;
  if (db->root->closed) {
    dorm__db_op_fail_soon(o, dorm_result_error(DORM_ECLOSED, NULL));
    return d;
  }
  dorm__db_dispatch(o);
  return d;
}
