/* SPDX-License-Identifier: MIT */
/* backends/db.c — the database facade: dorm_db_open and dorm_db_close,
 * the dorm_async_* calls that read and write, and raw SQL, written once
 * over the backend table of backend_int.h so every backend behaves the
 * same.  Its siblings share db_int.h: db_route.c sends each request to a
 * connection, db_tx.c runs transactions (dorm_async_atomic),
 * db_compound.c builds get_or_create, update_or_create and bulk_create,
 * and db_prefetch.c runs the related queries of prefetch_related after a
 * read.
 *
 * A request is an `op`: the compiled statement(s) it owns, the deferred it
 * will fire, and the backend request lent to a connection.  Every op the
 * backend holds is on the database's pending list, so closing can fail
 * each one with DORM_ECLOSED at once (the op is then an orphan: when the
 * backend hands it back, it is freed unseen).
 *
 * The async calls compile during the call (so the caller may free the
 * query at once) and report every failure through the deferred, fired on
 * a later loop turn (dorm_deferred_fire_soon) when it is known inside the
 * call.  Ops are recycled with their compile buffers (a free list), so a
 * steady stream of queries does few allocations.
 *
 * count, exists, get and first compile the user's query with one clause
 * changed, through dorm_compile_ex: the query itself is never changed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/db_int.h"
#include "base/base_int.h"
#include "reactor_glue/reactor_int.h"

/* Backends compiled in; a new one adds a line here. */
static const dorm__backend *const backends[] = {
    &dorm__sqlite_backend,
    &dorm__pg_backend,
};

/* ---- errors ------------------------------------------------------------- */

int dorm__sqlstate_code(const char *s) {
  if (!s || !s[0]) return DORM_EDB;
  if (s[0] == '2' && s[1] == '3') return DORM_EINTEGRITY;
  if (s[0] == '0' && s[1] == '8') return DORM_ECONN;
  /* division by zero, a number out of its type's range */
  if (!strcmp(s, "22012") || !strcmp(s, "22003")) return DORM_ERANGE;
  if (!strcmp(s, "2201B")) return DORM_EINVAL; /* the caller's bad regex */
  return DORM_EDB;
}

dorm_result dorm__db_error(const char *sqlstate, const char *fmt, ...) {
  char msg[DORM_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return dorm_result_error_sql(dorm__sqlstate_code(sqlstate), sqlstate, "%s",
                               msg);
}

/* ---- ops ---------------------------------------------------------------- */

static void op_done(dorm__req *req);

op *dorm__db_op_new(dorm_db *db, int kind) {
  dorm_db *root = db->root;
  op *o = root->free_ops;
  if (o) {
    root->free_ops = o->next;
    root->nfree_ops--;
    dorm_sql keep = o->sql;
    memset(o, 0, sizeof *o);
    o->sql = keep;
  } else {
    o = dorm__calloc(1, sizeof *o);
    if (!o) return NULL;
    dorm_sql_init(&o->sql);
  }
  o->kind = kind;
  o->db = db;
  o->root = root;
  o->use = &o->sql;
  o->req.done = op_done;
  root->live++;
  return o;
}

static void op_free(op *o) {
  dorm_db *root = o->root;
  dorm__free(o->raw);
  dorm__free(o->raw_params);
  if (o->own_stmts) dorm__free(o->stmts);
  dorm_result_free(&o->req.result);
  root->live--;
  if (root->nfree_ops < 256 && !root->closed) {
    o->raw = NULL;
    o->raw_params = NULL;
    o->stmts = NULL;
    o->next = root->free_ops;
    root->free_ops = o;
    root->nfree_ops++;
  } else {
    dorm_sql_free(&o->sql);
    dorm__free(o);
  }
  dorm__db_maybe_free_root(root);
}

void dorm__db_op_release(op *o) { op_free(o); }

/* Fill o->stmt from the dorm_sql it runs. */
void dorm__db_op_stmt_from_sql(op *o) {
  const dorm_sql *s = o->use;
  o->stmt.sql = s->text;
  o->stmt.len = s->len;
  o->stmt.params = s->params;
  o->stmt.nparams = s->nparams;
  o->stmt.param_int4 = s->param_int4;
  o->stmt.columns = s->columns;
  o->stmt.ncolumns = s->ncolumns;
  o->stmt.related = s->related;
  o->stmt.nrelated = s->nrelated;
  o->stmt.returns_rows = s->returns_rows;
  o->stmt.row_lock = s->row_lock;
  o->stmts = &o->stmt;
  o->nstmts = 1;
}

void dorm__db_op_stmt_text(op *o, const char *sql) {
  memset(&o->stmt, 0, sizeof o->stmt);
  o->stmt.sql = sql;
  o->stmt.len = strlen(sql);
  o->stmt.columns = NULL;
  o->stmts = &o->stmt;
  o->nstmts = 1;
}

/* Deliver res (owned) to whoever waits for o: its `then` or its deferred.
 * The op is freed after. */
static void op_deliver(op *o, dorm_result res) {
  if (o->then) {
    o->then(o, &res, o->then_ctx);
    dorm_result_free(&res);
  } else if (o->d) {
    dorm_deferred *d = o->d;
    o->d = NULL;
    dorm_deferred_fire(d, res);
  } else {
    dorm_result_free(&res);
  }
}

/* Fail a request that never reached a backend: the deferred fires on the
 * next loop turn (rule R2 of dorm/deferred.h); `then` ops are told at once
 * (they are internal and never inside a user's call). */
void dorm__db_op_fail_soon(op *o, dorm_result res) {
  if (o->started) dorm__db_obs_done(o->root, o, &res);
  /* a request of a transaction handle that cannot even be sent (it does
   * not compile, the queue is full, ...) fails its block too */
  if (o->kind != OP_CTL && o->db != o->root && !o->db->is_view)
    dorm__db_tx_failed(o->db, &res);
  if (o->then) {
    op_deliver(o, res);
  } else {
    dorm_deferred *d = o->d;
    o->d = NULL;
    /* o is freed below (or serves another request): a cancel of d in this
     * turn must not reach it */
    if (d) dorm__deferred_forget_canceller(d);
    if (d) dorm_deferred_fire_soon(o->root->loop, d, res);
  }
  op_free(o);
}

/* Shape the backend's result as the op's kind asks. */
static dorm_result shape(op *o, dorm_result res) {
  if (dorm_result_is_error(&res) || o->kind == OP_PLAIN || o->kind == OP_CTL)
    return res;
  if (res.kind != DORM_RESULT_ROWS) {
    if (o->kind == OP_ROWS && res.kind == DORM_RESULT_COUNT) return res;
    dorm_result_free(&res);
    return dorm_result_error(DORM_EDB, "unexpected result from the database");
  }
  dorm_rows *rows = res.u.rows.rows;
  size_t n = dorm_rows_count(rows);
  if (o->created) dorm__rows_set_created(rows, 1);
  switch (o->kind) {
    case OP_ROWS: return res;
    case OP_GET:
      if (n == 1) break;
      dorm_result_free(&res);
      if (n == 0)
        return dorm_result_error(DORM_ENOTFOUND,
                                 "%s matching query does not exist",
                                 o->model_name ? o->model_name : "object");
      return dorm_result_error(DORM_EMULTIPLE,
                               "get() returned more than one %s",
                               o->model_name ? o->model_name : "object");
    case OP_FIRST:
    case OP_ROW:
      if (n >= 1) break;
      dorm_result_free(&res);
      /* an INSERT ... RETURNING gives no row only when ON CONFLICT DO
       * NOTHING skipped it: success, nothing created; first() of nothing
       * is no row, as Django's first() is None */
      if (o->insert || o->kind == OP_FIRST) return dorm_result_none();
      return dorm_result_error(DORM_ENOTFOUND,
                               "%s matching query does not exist",
                               o->model_name ? o->model_name : "object");
    case OP_COUNT:
    case OP_EXISTS: {
      const dorm_row *row = dorm_rows_row(rows, 0);
      const dorm_value *v = row ? dorm_row_value_at(row, 0) : NULL;
      int64_t c = 0;
      if (v && v->type == DORM_T_INT) c = v->u.i;
      if (v && v->type == DORM_T_BOOL) c = v->u.b;
      dorm_result_free(&res);
      if (o->kind == OP_EXISTS) return dorm_result_value(dorm_bool(n > 0));
      return dorm_result_count(c);
    }
    default: return res;
  }
  /* one row out of the rows: the row result owns the rows */
  res.u.rows.rows = NULL;
  return dorm__row_result(rows, 0);
}

void dorm__db_pending_remove(dorm_db *root, op *o) {
  if (o->prev)
    o->prev->next = o->next;
  else if (root->pending == o)
    root->pending = o->next;
  if (o->next) o->next->prev = o->prev;
  o->prev = o->next = NULL;
  root->npending--;
}

/* The backend gives o back (loop thread). */
static void op_done(dorm__req *req) {
  op *o = (op *)req;
  dorm_db *root = o->root;
  o->submitted = 0;
  if (o->conn < root->nconns) root->conns[o->conn].inflight--;
  if (o->counted) {
    o->counted = 0;
    root->writes_out--;
    if (!o->orphan) dorm__db_ryw_after_write(root);
  }
  if (o->orphan) {
    op_free(o);
    return;
  }
  if (dorm__db_retry_elsewhere(root, o)) return;
  dorm__db_pending_remove(root, o);
  dorm__db_obs_done(root, o, &o->req.result);
  dorm_result res = o->req.result;
  o->req.result = dorm_result_none();
  res = shape(o, res);
  struct atx *a = o->atx;
  if (a) dorm__db_tx_op_done(o, &res);
  o->atx = NULL;
  op_deliver(o, res);
  /* after the caller's steps: the block may end now (they may have made
   * more requests on it) */
  if (a) dorm__db_tx_op_gone(a);
  op_free(o);
}

/* The deferred of o was cancelled (dorm_deferred_cancel, or a timeout):
 * if the backend has o, ask it to stop the query.  o still completes
 * through op_done, which fires the (already failed) deferred: the maker's
 * exactly-once rule.  An op still waiting for a writer runs when its turn
 * comes and its result is dropped. */
static void op_cancel(dorm_deferred *d, void *arg) {
  op *o = arg;
  /* a request failed before it was sent gives its deferred up and forgets
   * this canceller (dorm__db_op_fail_soon); any other op still owns d */
  if (o->d != d) return;
  dorm_db *root = o->root;
  if (!o->cancel_kind)
    o->cancel_kind = dorm_deferred_cancel_is_timeout() ? 2 : 1;
  /* a cancelled request of a transaction fails its block */
  if (o->atx && !root->closed) dorm__db_tx_op_cancelled(o);
  if (o->submitted && root->be->cancel && !root->closed)
    root->be->cancel(root->bstate, o->conn, &o->req);
}

/* A new op with a deferred, for the public calls. */
op *dorm__db_op_public(dorm_db *db, int kind) {
  if (!db) return NULL;
  op *o = dorm__db_op_new(db, kind);
  if (!o) return NULL;
  o->d = dorm_deferred_new(op_cancel, o);
  if (!o->d) {
    op_free(o);
    return NULL;
  }
  return o;
}

/* Return the op's deferred after failing it with err (R2: on a later
 * turn). */
static dorm_deferred *op_fail_err(op *o, const dorm_error *err) {
  dorm_deferred *d = o->d;
  dorm__db_op_fail_soon(o, dorm_result_error_from(err));
  return d;
}

static int check_select_q(const dorm_query *q, const char *what,
                          dorm_error *err);

/* Compile q (with opts, NULL for none) into o and send it.  select_what:
 * the call's name when q must be a SELECT (checked after "closed", so a
 * closed database answers DORM_ECLOSED first). */
static dorm_deferred *run_query(op *o, const dorm_query *q,
                                const dorm_compile_opts *opts,
                                const char *select_what) {
  dorm_error err;
  dorm_error_clear(&err);
  dorm_deferred *d = o->d;
  if (o->db->root->closed) {
    dorm__db_op_fail_soon(o, dorm_result_error(DORM_ECLOSED, NULL));
    return d;
  }
  if ((select_what && check_select_q(q, select_what, &err)) ||
      dorm_compile_ex(q, o->db->root->be->dialect, opts, &o->sql, &err))
    return op_fail_err(o, &err);
  o->model_name = dorm_query_model(q) ? dorm_query_model(q)->name : NULL;
  dorm__db_op_stmt_from_sql(o);
  dorm__db_dispatch(o);
  return d;
}

/* ---- opening and closing ------------------------------------------------ */

void dorm_db_options_init(dorm_db_options *o) {
  if (o) memset(o, 0, sizeof *o);
}

static dorm_db *db_open(dorm_loop *loop, const char *url,
                        const dorm_db_options *opts, dorm_error *err) {
  if (!loop) {
    dorm_error_set(err, DORM_EINVAL, "dorm_db_open: no loop");
    return NULL;
  }
  if (!url) url = getenv("DATABASE_URL");
  if (!url || !*url) url = "sqlite:///db.sqlite3";
  const dorm__backend *be = NULL;
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
    if (backends[i]->accepts(url)) be = backends[i];
  if (!be) {
    if (!strncmp(url, "postgres", 8) || strchr(url, '='))
      dorm_error_set(err, DORM_EUNSUPPORTED,
                     "'%.40s...': the PostgreSQL backend is not compiled in",
                     url);
    else
      dorm_error_set(err, DORM_EURL,
                     "'%s': not a database URL (sqlite:///path.db, "
                     "sqlite://, postgresql://...)",
                     url);
    return NULL;
  }
  dorm_db *db = dorm__calloc(1, sizeof *db);
  if (!db) {
    dorm_error_set(err, DORM_ENOMEM, "out of memory");
    return NULL;
  }
  db->root = db;
  db->be = be;
  db->loop = loop;
  db->max_pending = opts ? opts->max_pending : 0;
  if (opts && opts->replicas && *opts->replicas && !be->slot_usable) {
    dorm_error_set(err, DORM_EURL, "replicas: the %s backend has none",
                   be->name);
    dorm__free(db);
    return NULL;
  }
  db->ryw_mode = opts ? opts->read_your_writes : DORM_RYW_LSN;
  db->ryw_window_ms = opts && opts->read_your_writes_ms > 0
                          ? (uint64_t)opts->read_your_writes_ms
                          : 1000;
  if (db->ryw_mode < DORM_RYW_LSN || db->ryw_mode > DORM_RYW_OFF) {
    dorm_error_set(err, DORM_EURL,
                   "read_your_writes: %d is not DORM_RYW_LSN, _WINDOW or _OFF",
                   db->ryw_mode);
    dorm__free(db);
    return NULL;
  }
  dorm_error tmp;
  dorm_error_clear(&tmp);
  if (be->open(db, loop, url, opts, &db->bstate, &tmp)) {
    dorm_error_copy(err, &tmp);
    dorm__free(db);
    return NULL;
  }
  db->nconns = be->nconns(db->bstate);
  db->conns = dorm__calloc(db->nconns ? db->nconns : 1, sizeof *db->conns);
  if (!db->conns) {
    /* the backend is running: close it; db is freed when it is gone */
    db->nconns = 0;
    db->closed = 1;
    be->close(db->bstate);
    dorm_error_set(err, DORM_ENOMEM, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < db->nconns; i++) {
    db->conns[i].flags = be->conn_flags(db->bstate, i);
    if (db->conns[i].flags & DORM__CONN_REPLICA) db->has_replicas = 1;
  }
  dorm__db_obs_open(db);
  return db;
}

/* Every message about a URL is redacted here, once for all backends: a
 * password in the URL, the replicas or DATABASE_URL never reaches the
 * caller's error (libpq's parse errors quote the whole URI). */
dorm_db *dorm_db_open(dorm_loop *loop, const char *url,
                      const dorm_db_options *opts, dorm_error *err) {
  dorm_error tmp;
  dorm_error_clear(&tmp);
  dorm_db *db = db_open(loop, url, opts, &tmp);
  if (!db) {
    dorm__redact(tmp.message, sizeof tmp.message, url);
    if (!url)
      dorm__redact(tmp.message, sizeof tmp.message, getenv("DATABASE_URL"));
    if (opts) dorm__redact(tmp.message, sizeof tmp.message, opts->replicas);
    dorm_error_copy(err, &tmp);
  }
  return db;
}

static void ready_fire_all(dorm_db *root, int closing) {
  ready_wait *w = root->ready_waits;
  root->ready_waits = NULL;
  while (w) {
    ready_wait *next = w->next;
    dorm_result r = closing ? dorm_result_error(DORM_ECLOSED, NULL)
                    : root->ready_state > 0
                        ? dorm_result_none()
                        : dorm_result_error_from(&root->ready_err);
    dorm_deferred_fire(w->d, r);
    dorm__free(w);
    w = next;
  }
}

void dorm__db_backend_ready(dorm_db *db, const dorm_error *err) {
  if (err) {
    db->ready_state = -1;
    db->ready_err = *err;
  } else {
    db->ready_state = 1;
  }
  if (!db->closed) ready_fire_all(db, 0);
}

dorm_deferred *dorm_db_ready(dorm_db *db) {
  if (!db) return NULL;
  dorm_db *root = db->root;
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  if (!d) return NULL;
  if (root->closed) {
    dorm_deferred_fire_soon(root->loop, d,
                            dorm_result_error(DORM_ECLOSED, NULL));
  } else if (root->ready_state) {
    dorm_deferred_fire_soon(root->loop, d,
                            root->ready_state > 0
                                ? dorm_result_none()
                                : dorm_result_error_from(&root->ready_err));
  } else {
    ready_wait *w = dorm__malloc(sizeof *w);
    if (!w) {
      dorm_deferred_fire_soon(root->loop, d,
                              dorm_result_error(DORM_ENOMEM, NULL));
      return d;
    }
    w->d = d;
    w->next = root->ready_waits;
    root->ready_waits = w;
  }
  return d;
}

dorm_dialect dorm_db_dialect(const dorm_db *db) {
  return db->root->be->dialect;
}

const char *dorm_db_backend_name(const dorm_db *db) {
  return db->root->be->name;
}

int dorm_db_in_transaction(const dorm_db *db) {
  return db && db != db->root && !db->is_view;
}

dorm_db *dorm__db_root(dorm_db *db) { return db ? db->root : NULL; }

dorm_db *dorm_db_primary(dorm_db *db) {
  if (!db || db->is_view) return db;
  if (db != db->root) return db; /* a transaction is on the primary */
  if (!db->view) {
    dorm_db *v = dorm__calloc(1, sizeof *v);
    if (!v) return NULL;
    v->root = db;
    v->is_view = 1;
    db->view = v;
  }
  return db->view;
}

void dorm_db_close(dorm_db *db, dorm_db_close_cb cb, void *arg) {
  if (!db || db->root != db || db->closed) return;
  db->closed = 1;
  db->close_cb = cb;
  db->close_arg = arg;
  db->live++; /* hold db while errbacks run (they may make requests) */
  ready_fire_all(db, 1);
  /* waiters: fail them in order */
  waiter *w = db->wait_head;
  db->wait_head = db->wait_tail = NULL;
  while (w) {
    waiter *next = w->next;
    if (w->o) {
      op *o = w->o;
      /* a replica read sent once more may wait here: its hooks end now */
      if (o->started) {
        dorm_result closed = dorm_result_error(DORM_ECLOSED, NULL);
        dorm__db_obs_done(db, o, &closed);
        dorm_result_free(&closed);
      }
      op_deliver(o, dorm_result_error(DORM_ECLOSED, NULL));
      op_free(o);
    } else {
      dorm__db_atx_fail_waiting(w->a);
    }
    dorm__free(w);
    w = next;
  }
  dorm__db_iters_close(db);
  /* requests the backend holds: fail now, free when they come back */
  while (db->pending) {
    op *o = db->pending;
    dorm__db_pending_remove(db, o);
    o->orphan = 1;
    dorm_result closed = dorm_result_error(DORM_ECLOSED, NULL);
    dorm__db_obs_done(db, o, &closed);
    dorm_result_free(&closed);
    op_then_fn then = o->then;
    dorm_deferred *d = o->d;
    o->d = NULL;
    o->then = NULL;
    if (then) {
      dorm_result r = dorm_result_error(DORM_ECLOSED, NULL);
      then(o, &r, o->then_ctx);
      dorm_result_free(&r);
    } else if (d) {
      dorm_deferred_fire(d, dorm_result_error(DORM_ECLOSED, NULL));
    }
    if (o->atx) {
      struct atx *a = o->atx;
      o->atx = NULL;
      dorm__db_tx_op_gone(a);
    }
  }
  while (db->free_ops) {
    op *o = db->free_ops;
    db->free_ops = o->next;
    dorm_sql_free(&o->sql);
    dorm__free(o);
  }
  db->nfree_ops = 0;
  db->hooks_off = 1; /* no hook runs for this database again */
  db->nhooks = 0;
  db->be->close(db->bstate);
  db->live--;
  dorm__db_maybe_free_root(db);
}

void dorm__db_backend_closed(dorm_db *db) {
  db->backend_gone = 1;
  if (db->close_cb) {
    dorm_db_close_cb cb = db->close_cb;
    db->close_cb = NULL;
    cb(db->close_arg);
  }
  dorm__db_maybe_free_root(db);
}

void dorm__db_maybe_free_root(dorm_db *root) {
  if (!root->closed || !root->backend_gone || root->live) return;
  while (root->free_ops) {
    op *o = root->free_ops;
    root->free_ops = o->next;
    dorm_sql_free(&o->sql);
    dorm__free(o);
  }
  dorm__free(root->conns);
  dorm__free(root->view);
  dorm__free(root);
}

/* ---- reading ------------------------------------------------------------ */

/* A read with prefetch_related: the context is made first, so running
 * out of memory returns NULL before any request exists. */
static dorm__prefetch *prefetch_of(dorm_db *db, const dorm_query *q, int *oom) {
  *oom = 0;
  if (!db || !q || !dorm_query_prefetch_count(q)) return NULL;
  dorm__prefetch *p = dorm__db_prefetch_new(db, q);
  *oom = p == NULL;
  return p;
}

dorm_deferred *dorm_async_filter(dorm_db *db, const dorm_query *q) {
  int oom;
  dorm__prefetch *p = prefetch_of(db, q, &oom);
  if (oom) return NULL;
  op *o = dorm__db_op_public(db, OP_ROWS);
  if (!o) {
    dorm__db_prefetch_free(p);
    return NULL;
  }
  return dorm__db_prefetch_after(p, run_query(o, q, NULL, NULL));
}

static int check_select_q(const dorm_query *q, const char *what,
                          dorm_error *err) {
  if (!q) return dorm_error_set(err, DORM_EINVAL, "%s: no query", what);
  if (dorm_query_kind_of(q) != DORM_QUERY_SELECT)
    return dorm_error_set(err, DORM_EINVAL, "%s: not a SELECT query", what);
  return 0;
}

/* get() reads at most two rows (to tell one from several), first() one,
 * ordered by pk when the query has no ordering; q itself is not changed. */
static dorm_deferred *get_like(dorm_db *db, const dorm_query *q, int kind) {
  int oom;
  dorm__prefetch *p = prefetch_of(db, q, &oom);
  if (oom) return NULL;
  op *o = dorm__db_op_public(db, kind);
  if (!o) {
    dorm__db_prefetch_free(p);
    return NULL;
  }
  dorm_compile_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.limit = kind == OP_GET ? 2 : 1;
  if (kind == OP_FIRST && q && !dorm_query_model(q)->nordering)
    opts.flags |= DORM_COMPILE_ORDER_PK;
  return dorm__db_prefetch_after(
      p, run_query(o, q, &opts, kind == OP_GET ? "get" : "first"));
}

dorm_deferred *dorm_async_get(dorm_db *db, const dorm_query *q) {
  return get_like(db, q, OP_GET);
}

dorm_deferred *dorm_async_first(dorm_db *db, const dorm_query *q) {
  return get_like(db, q, OP_FIRST);
}

static dorm_deferred *count_like(dorm_db *db, const dorm_query *q, int kind) {
  op *o = dorm__db_op_public(db, kind);
  if (!o) return NULL;
  dorm_compile_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.flags = kind == OP_COUNT ? DORM_COMPILE_COUNT : DORM_COMPILE_EXISTS;
  return run_query(o, q, &opts, kind == OP_COUNT ? "count" : "exists");
}

dorm_deferred *dorm_async_count(dorm_db *db, const dorm_query *q) {
  return count_like(db, q, OP_COUNT);
}

dorm_deferred *dorm_async_exists(dorm_db *db, const dorm_query *q) {
  return count_like(db, q, OP_EXISTS);
}

dorm_deferred *dorm_async_aggregate(dorm_db *db, const dorm_query *q) {
  op *o = dorm__db_op_public(db, OP_ROW);
  if (!o) return NULL;
  return run_query(o, q, NULL, NULL);
}

/* ---- writing ------------------------------------------------------------ */

static dorm_deferred *write_query(dorm_db *db, const dorm_query *q, int kind,
                                  dorm_query_kind want, const char *what) {
  op *o = dorm__db_op_public(db, kind);
  if (!o) return NULL;
  o->write = 1;
  if (!q || dorm_query_kind_of(q) != want) {
    dorm_error err;
    dorm_error_clear(&err);
    dorm_error_set(&err, DORM_EINVAL, "%s: wrong kind of query", what);
    return op_fail_err(o, &err);
  }
  return run_query(o, q, NULL, NULL);
}

dorm_deferred *dorm_async_create(dorm_db *db, const dorm_query *q) {
  op *o = dorm__db_op_public(db, OP_ROW);
  if (!o) return NULL;
  o->write = 1;
  o->insert = 1;
  if (!q || dorm_query_kind_of(q) != DORM_QUERY_INSERT) {
    dorm_error err;
    dorm_error_clear(&err);
    dorm_error_set(&err, DORM_EINVAL, "create: wrong kind of query");
    return op_fail_err(o, &err);
  }
  return run_query(o, q, NULL, NULL);
}

dorm_deferred *dorm_async_update(dorm_db *db, const dorm_query *q) {
  return write_query(db, q, OP_PLAIN, DORM_QUERY_UPDATE, "update");
}

dorm_deferred *dorm_async_delete(dorm_db *db, const dorm_query *q) {
  return write_query(db, q, OP_PLAIN, DORM_QUERY_DELETE, "delete");
}

/* ---- raw SQL ------------------------------------------------------------ */

static size_t value_bytes(const dorm_value *v) {
  switch (v->type) {
    case DORM_T_TEXT:
    case DORM_T_BYTES:
    case DORM_T_DECIMAL:
    case DORM_T_DATE:
    case DORM_T_TIME:
    case DORM_T_DATETIME:
    case DORM_T_UUID:
    case DORM_T_JSON: return v->u.s.len + 1;
    default: return 0;
  }
}

/* Whether sql holds a statement after its first ';' (quotes, quoted
 * identifiers, dollar quotes and comments skipped).  Raw SQL is one
 * statement on both backends: SQLite's prepare would run the first and
 * drop the rest, PostgreSQL's extended protocol refuses with a syntax
 * error; both become DORM_EINVAL here, before anything runs. */
static int is_ident_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '_' || (unsigned char)ch >= 0x80;
}

static const char *skip_comment(const char *p) {
  if (p[0] == '-' && p[1] == '-') {
    while (*p && *p != '\n') p++;
    return p;
  }
  if (p[0] == '/' && p[1] == '*') {
    int depth = 0; /* PostgreSQL's block comments nest */
    while (*p) {
      if (p[0] == '/' && p[1] == '*') {
        depth++, p += 2;
      } else if (p[0] == '*' && p[1] == '/') {
        p += 2;
        if (--depth == 0) return p;
      } else {
        p++;
      }
    }
    return p;
  }
  return NULL;
}

static int more_than_one_statement(const char *sql) {
  const char *p = sql;
  while (*p) {
    const char *after = skip_comment(p);
    if (after) {
      p = after;
      continue;
    }
    char ch = *p;
    if (ch == '\'' || ch == '"' || ch == '`') {
      /* E'...' takes backslash escapes */
      int backslash = ch == '\'' && p > sql && (p[-1] == 'E' || p[-1] == 'e') &&
                      (p - 1 == sql || !is_ident_char(p[-2]));
      p++;
      while (*p) {
        if (backslash && *p == '\\' && p[1]) {
          p += 2;
        } else if (*p == ch) {
          if (p[1] != ch) break;
          p += 2; /* a doubled quote */
        } else {
          p++;
        }
      }
      if (*p) p++;
      continue;
    }
    if (ch == '$' && (p == sql || !is_ident_char(p[-1]))) {
      /* $tag$ ... $tag$ (not $1, a parameter) */
      const char *t = p + 1;
      while (is_ident_char(*t) && !(*t >= '0' && *t <= '9' && t == p + 1)) t++;
      if (*t == '$' && !(p[1] >= '0' && p[1] <= '9')) {
        size_t taglen = (size_t)(t - p) + 1;
        const char *end;
        for (end = t + 1; *end; end++)
          if (*end == '$' && !strncmp(end, p, taglen)) break;
        p = *end ? end + taglen : end;
        continue;
      }
    }
    if (ch == ';') {
      /* only blanks, semicolons and comments may follow */
      const char *q = p + 1;
      for (;;) {
        const char *c = skip_comment(q);
        if (c) {
          q = c;
        } else if (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' ||
                   *q == ';') {
          q++;
        } else {
          break;
        }
      }
      return *q != '\0';
    }
    p++;
  }
  return 0;
}

static dorm_deferred *execute(dorm_db *db, const char *sql,
                              const dorm_value *params, size_t n, int write) {
  op *o = dorm__db_op_public(db, OP_PLAIN);
  if (!o) return NULL;
  dorm_deferred *d = o->d;
  o->write = write;
  dorm_error err;
  dorm_error_clear(&err);
  if (!sql || (n && !params)) {
    dorm_error_set(&err, DORM_EINVAL, "execute: no SQL or no parameters");
    return op_fail_err(o, &err);
  }
  if (more_than_one_statement(sql)) {
    dorm_error_set(&err, DORM_EINVAL,
                   "execute: more than one statement in '%.200s' (send "
                   "them one by one, or with dorm_async_execute_many)",
                   sql);
    return op_fail_err(o, &err);
  }
  size_t len = strlen(sql), total = len + 1;
  for (size_t i = 0; i < n; i++) {
    if (params[i].type == DORM_T_LIST || params[i].type == DORM_T_EXPR) {
      dorm_error_set(&err, DORM_ETYPE,
                     "execute: parameter %zu: a %s cannot be bound", i + 1,
                     dorm_type_name(params[i].type));
      return op_fail_err(o, &err);
    }
    total += value_bytes(&params[i]);
  }
  o->raw = dorm__malloc(total);
  o->raw_params = n ? dorm__malloc(n * sizeof *o->raw_params) : NULL;
  if (!o->raw || (n && !o->raw_params)) {
    dorm_error_set(&err, DORM_ENOMEM, "out of memory");
    return op_fail_err(o, &err);
  }
  memcpy(o->raw, sql, len + 1);
  char *p = o->raw + len + 1;
  for (size_t i = 0; i < n; i++) {
    o->raw_params[i] = params[i];
    size_t b = value_bytes(&params[i]);
    if (b) {
      if (params[i].u.s.len) memcpy(p, params[i].u.s.ptr, params[i].u.s.len);
      p[params[i].u.s.len] = '\0';
      o->raw_params[i].u.s.ptr = p;
      p += b;
    }
  }
  dorm__db_op_stmt_text(o, o->raw);
  o->stmt.params = o->raw_params;
  o->stmt.nparams = n;
  if (db->root->closed) {
    dorm__db_op_fail_soon(o, dorm_result_error(DORM_ECLOSED, NULL));
    return d;
  }
  dorm__db_dispatch(o);
  return d;
}

dorm_deferred *dorm_async_execute(dorm_db *db, const char *sql,
                                  const dorm_value *params, size_t n) {
  return execute(db, sql, params, n, 1);
}

dorm_deferred *dorm_async_execute_read(dorm_db *db, const char *sql,
                                       const dorm_value *params, size_t n) {
  return execute(db, sql, params, n, 0);
}

dorm_deferred *dorm_async_execute_many(dorm_db *db, const char *const *sqls,
                                       size_t n) {
  op *o = dorm__db_op_public(db, OP_PLAIN);
  if (!o) return NULL;
  dorm_deferred *d = o->d;
  o->write = 1;
  dorm_error err;
  dorm_error_clear(&err);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (!sqls[i]) {
      dorm_error_set(&err, DORM_EINVAL, "execute_many: statement %zu is NULL",
                     i);
      return op_fail_err(o, &err);
    }
    total += strlen(sqls[i]) + 1;
  }
  if (n == 0) {
    dorm__db_op_fail_soon(o, dorm_result_count(0));
    return d;
  }
  o->raw = dorm__malloc(total);
  o->stmts = dorm__calloc(n, sizeof *o->stmts);
  o->own_stmts = 1;
  if (!o->raw || !o->stmts) {
    dorm_error_set(&err, DORM_ENOMEM, "out of memory");
    return op_fail_err(o, &err);
  }
  char *p = o->raw;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(sqls[i]);
    memcpy(p, sqls[i], len + 1);
    o->stmts[i].sql = p;
    o->stmts[i].len = len;
    p += len + 1;
  }
  o->nstmts = n;
  o->req.flags = DORM__REQ_SUM_COUNTS;
  dorm__db_dispatch(o);
  return d;
}
