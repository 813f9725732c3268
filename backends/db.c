/* backends/db.c — the database facade: dorm_db_open, the dorm_async_*
 * calls, routing, transactions, and what get / get_or_create /
 * update_or_create / bulk_create mean, written once over the backend table
 * of backend_int.h so every backend behaves the same.
 *
 * A request is an `op`: the compiled statement(s) it owns, the deferred it
 * will fire, and the backend request lent to a connection.  Every op the
 * backend holds is on the database's pending list, so closing can fail
 * each one with DORM_ECLOSED at once (the op is then an orphan: when the
 * backend hands it back, it is freed unseen).
 *
 * Routing: reads go to the least busy READ slot; writes to a WRITE slot
 * that no transaction holds.  With read replicas (REPLICA slots), reads go
 * to the least busy usable replica slot and fall back to the primary's;
 * after a write through the database its reads stay on the primary until
 * a replica has replayed past that write (read-your-writes: the backend's
 * lsn_sql read after the write, compared with each replica's position by
 * slot_usable), and a read that loses its replica is sent once more,
 * elsewhere.  dorm_db_primary gives a handle whose requests all go to the
 * primary.  A transaction pins a WRITE slot from BEGIN to
 * COMMIT/ROLLBACK; writes (and transactions) of the database that arrive
 * meanwhile wait in a FIFO and are sent, in order, when it is released.  A
 * transaction handle (given to the atomic block) is a dorm_db whose
 * requests all go to the pinned slot; a nested atomic on it is a
 * SAVEPOINT.
 *
 * The async calls compile during the call (so the caller may free the
 * query at once) and report every failure through the deferred, fired on
 * a later loop turn (dorm_deferred_fire_soon) when it is known inside the
 * call.  Ops are recycled with their compile buffers (a free list), so a
 * steady stream of queries does few allocations.
 *
 * count, exists, get and first compile the user's query with one clause
 * changed, and bulk_create compiles a many-row INSERT in chunks, through
 * dorm_compile_ex: the query itself is never changed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/backend_int.h"
#include "base/base_int.h"

/* Backends compiled in; a new one adds a line here. */
static const dorm__backend *const backends[] = {
    &dorm__sqlite_backend,
    &dorm__pg_backend,
};

enum op_kind {
  OP_ROWS,   /* DORM_RESULT_ROWS */
  OP_GET,    /* exactly one row */
  OP_FIRST,  /* first row or ENOTFOUND */
  OP_ROW,    /* first row of a RETURNING / aggregate */
  OP_COUNT,  /* rows -> first column as a count */
  OP_EXISTS, /* rows -> bool */
  OP_PLAIN,  /* the backend's result as it is (count or rows) */
  OP_CTL     /* internal: BEGIN/COMMIT/...; result goes to `then` */
};

typedef struct op op;
typedef void (*op_then_fn)(op *o, dorm_result *res, void *ctx);

struct op {
  dorm__req req;
  dorm__stmt stmt; /* the single-statement case */
  dorm__stmt *stmts;
  size_t nstmts;
  int own_stmts;       /* stmts is an array this op allocated */
  dorm_sql sql;        /* compiled, owned (buffers kept when recycled) */
  const dorm_sql *use; /* the statement to run: &sql or borrowed */
  char *raw;           /* raw SQL text and parameter copies, owned */
  dorm_value *raw_params;
  int kind;
  int write;
  const char *model_name;
  dorm_db *db;   /* the handle the request was made on (only valid until
                    dispatch: a transaction handle may go first) */
  dorm_db *root; /* its database */
  dorm_deferred *d;
  size_t conn;
  int orphan;
  int created; /* mark rows as created */
  op_then_fn then;
  void *then_ctx;
  op *prev, *next; /* root's pending list */
  int submitted;   /* lent to the backend (between submit and done) */
  int primary;     /* a read that must run on the primary */
  int retried;     /* a read already sent again after losing its replica */
  int counted;     /* counted in root->writes_out */
};

/* Something waiting for a writer: an op or a transaction to begin. */
typedef struct waiter {
  op *o;
  struct atx *a;
  struct waiter *next;
} waiter;

typedef struct conn_state {
  unsigned flags;
  int pinned;
  size_t inflight;
} conn_state;

typedef struct ready_wait {
  dorm_deferred *d;
  struct ready_wait *next;
} ready_wait;

struct dorm_db {
  dorm_db *root; /* self for a database handle */
  /* transaction handles */
  int tx_active;
  size_t tx_conn;
  dorm_db *tx_outer; /* the outermost transaction handle (savepoint ids) */
  int sp_next;
  /* database handles */
  const dorm__backend *be;
  void *bstate;
  dorm_loop *loop;
  int closed, backend_gone, freed_cb_done;
  dorm_db_close_cb close_cb;
  void *close_arg;
  conn_state *conns;
  size_t nconns;
  size_t rr;
  op *pending;
  size_t npending, max_pending;
  waiter *wait_head, *wait_tail;
  size_t live;     /* ops, transactions and their handles not yet freed */
  int ready_state; /* 0 unknown, 1 up, -1 failed */
  dorm_error ready_err;
  ready_wait *ready_waits;
  op *free_ops;
  size_t nfree_ops;
  /* dorm_db_primary: a view of the root whose requests all go to the
   * primary (is_view set; made on first use, freed with the root) */
  int is_view;
  dorm_db *view;
  /* replicas (root): REPLICA slots exist; read-your-writes state */
  int has_replicas;
  int ryw_mode;          /* DORM_RYW_* */
  uint64_t ryw_window_ms;
  size_t writes_out;     /* writes and transactions not finished */
  size_t lsn_out;        /* position queries after a write not answered */
  int lsn_again;         /* a write finished while one was out: ask again */
  uint64_t ryw_lsn;      /* reads must see the primary at this position */
  uint64_t ryw_until_ms; /* reads stay on the primary until then */
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void maybe_free_root(dorm_db *root);
struct atx;
static void atx_begin(struct atx *a, size_t conn);

/* ---- errors ------------------------------------------------------------- */

int dorm__sqlstate_code(const char *s) {
  if (!s || !s[0]) return DORM_EDB;
  if (s[0] == '2' && s[1] == '3') return DORM_EINTEGRITY;
  if (s[0] == '0' && s[1] == '8') return DORM_ECONN;
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

static op *op_new(dorm_db *db, int kind) {
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
  maybe_free_root(root);
}

/* Fill o->stmt from the dorm_sql it runs. */
static void op_stmt_from_sql(op *o) {
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
  o->stmts = &o->stmt;
  o->nstmts = 1;
}

static void op_stmt_text(op *o, const char *sql) {
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
 * next loop turn (rule R2); `then` ops are told at once (they are internal
 * and never inside a user's call). */
static void op_fail_soon(op *o, dorm_result res) {
  if (o->then) {
    op_deliver(o, res);
  } else {
    dorm_deferred *d = o->d;
    o->d = NULL;
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

static void pending_remove(dorm_db *root, op *o) {
  if (o->prev)
    o->prev->next = o->next;
  else if (root->pending == o)
    root->pending = o->next;
  if (o->next) o->next->prev = o->prev;
  o->prev = o->next = NULL;
  root->npending--;
}

/* The backend gives o back (loop thread). */
static void ryw_after_write(dorm_db *root);
static void dispatch(op *o);

/* A read whose replica went away while it ran is sent once more (to
 * another replica or the primary): it changed nothing, so running it again
 * is safe.  Writes never are: they may have been applied. */
static int retry_elsewhere(dorm_db *root, op *o) {
  if (o->write || o->retried || root->closed || o->conn >= root->nconns ||
      !(root->conns[o->conn].flags & DORM__CONN_REPLICA) ||
      dorm_result_code(&o->req.result) != DORM_ECONN)
    return 0;
  o->retried = 1;
  dorm_result_free(&o->req.result);
  pending_remove(root, o);
  dispatch(o);
  return 1;
}

static void op_done(dorm__req *req) {
  op *o = (op *)req;
  dorm_db *root = o->root;
  o->submitted = 0;
  if (o->conn < root->nconns) root->conns[o->conn].inflight--;
  if (o->counted) {
    o->counted = 0;
    root->writes_out--;
    if (!o->orphan) ryw_after_write(root);
  }
  if (o->orphan) {
    op_free(o);
    return;
  }
  if (retry_elsewhere(root, o)) return;
  pending_remove(root, o);
  dorm_result res = o->req.result;
  o->req.result = dorm_result_none();
  op_deliver(o, shape(o, res));
  op_free(o);
}

static void send_to(dorm_db *root, op *o, size_t conn) {
  o->conn = conn;
  if (o->write && root->has_replicas && (o->db == root || o->db->is_view)) {
    /* reads stay on the primary until this write is done and replayed */
    o->counted = 1;
    root->writes_out++;
  }
  o->req.stmts = o->stmts;
  o->req.nstmts = o->nstmts;
  o->req.result = dorm_result_none();
  root->conns[conn].inflight++;
  o->next = root->pending;
  o->prev = NULL;
  if (root->pending) root->pending->prev = o;
  root->pending = o;
  root->npending++;
  o->submitted = 1;
  root->be->submit(root->bstate, conn, &o->req);
}

/* A free WRITE slot (no transaction holds it), or -1. */
static long free_writer(dorm_db *root) {
  long best = -1;
  for (size_t i = 0; i < root->nconns; i++) {
    conn_state *c = &root->conns[i];
    if (!(c->flags & DORM__CONN_WRITE) || c->pinned) continue;
    if (best < 0 || c->inflight < root->conns[best].inflight) best = (long)i;
  }
  return best;
}

/* The least busy READ slot that no transaction holds, or -1: among the
 * usable replica slots that have replayed min_lsn (replica 1), or among
 * the primary's (replica 0). */
static long free_reader(dorm_db *root, int replica, uint64_t min_lsn) {
  long best = -1;
  size_t n = root->nconns;
  for (size_t k = 0; k < n; k++) {
    size_t i = (root->rr + k) % n;
    conn_state *c = &root->conns[i];
    if (!(c->flags & DORM__CONN_READ) || c->pinned) continue;
    if (!(c->flags & DORM__CONN_REPLICA) != !replica) continue;
    if (best >= 0 && c->inflight >= root->conns[best].inflight) continue;
    if (replica && !root->be->slot_usable(root->bstate, i, min_lsn)) continue;
    best = (long)i;
  }
  if (best >= 0) root->rr = (size_t)best + 1;
  return best;
}

/* Where a read of the database goes: a replica slot when one may serve
 * it (read-your-writes allowing), else a primary slot, else -1. */
static long pick_reader(dorm_db *root, op *o) {
  if (root->has_replicas && !o->primary) {
    uint64_t need = 0;
    int primary = 0;
    if (root->ryw_mode != DORM_RYW_OFF) {
      primary = root->writes_out > 0 || root->lsn_out > 0 || root->lsn_again ||
                (root->ryw_until_ms && now_ms() < root->ryw_until_ms);
      if (root->ryw_mode == DORM_RYW_LSN) need = root->ryw_lsn;
    }
    long c = primary ? -1 : free_reader(root, 1, need);
    if (c >= 0) return c;
  }
  return free_reader(root, 0, 0);
}

/* A row lock (select_for_update) must be taken on the primary.  Compiled
 * SQL only: its identifiers are checked names, so the text " FOR UPDATE"
 * can only be the lock clause. */
static int takes_row_lock(const dorm__stmt *st) {
  if (!st->columns || !st->returns_rows) return 0;
  const char *kw[] = {" FOR UPDATE", " FOR NO KEY UPDATE", " FOR SHARE",
                      " FOR KEY SHARE"};
  for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
    if (strstr(st->sql, kw[i])) return 1;
  return 0;
}

/* ---- read-your-writes --------------------------------------------------- */

/* The primary's position after a write came back: reads need a replica
 * that has replayed it.  Unknown (an error): keep reads on the primary
 * for the window instead. */
static void ryw_ask_lsn(dorm_db *root);

static void ryw_lsn_then(op *o, dorm_result *res, void *ctx) {
  (void)o;
  dorm_db *root = ctx;
  root->lsn_out--;
  uint64_t lsn = 0;
  if (res->kind == DORM_RESULT_ROWS) {
    const dorm_row *row = dorm_rows_row(res->u.rows.rows, 0);
    const dorm_value *v = row ? dorm_row_value_at(row, 0) : NULL;
    if (v && v->type == DORM_T_TEXT) lsn = root->be->parse_lsn(v->u.s.ptr);
  }
  if (lsn) {
    if (lsn > root->ryw_lsn) root->ryw_lsn = lsn;
  } else if (!root->closed) {
    root->ryw_until_ms = now_ms() + root->ryw_window_ms;
  }
  if (root->lsn_again && !root->closed) {
    root->lsn_again = 0;
    ryw_ask_lsn(root);
  }
}

/* A write (or a transaction) of the database finished: note where the
 * primary is now, so later reads see the write. */
static void ryw_after_write(dorm_db *root) {
  if (!root->has_replicas || root->closed) return;
  if (root->ryw_mode == DORM_RYW_WINDOW) {
    root->ryw_until_ms = now_ms() + root->ryw_window_ms;
    return;
  }
  if (root->ryw_mode != DORM_RYW_LSN || !root->be->lsn_sql) return;
  /* one question at a time: writes that finish while it is out are
   * covered by one more, asked when it is answered (a steady stream of
   * writes costs at most two position reads in flight) */
  if (root->lsn_out) {
    root->lsn_again = 1;
    return;
  }
  ryw_ask_lsn(root);
}

static void ryw_ask_lsn(dorm_db *root) {
  op *o = op_new(root, OP_CTL);
  if (!o) {
    root->ryw_until_ms = now_ms() + root->ryw_window_ms;
    return;
  }
  /* asked after the write's commit, so the answer covers it */
  root->lsn_out++;
  o->then = ryw_lsn_then;
  o->then_ctx = root;
  o->primary = 1;
  op_stmt_text(o, root->be->lsn_sql);
  dispatch(o);
}

/* 0, or DORM_ENOMEM (an op is then failed; for a transaction the caller
 * fails it) */
static int wait_push(dorm_db *root, op *o, struct atx *a) {
  waiter *w = dorm__malloc(sizeof *w);
  if (!w) {
    if (o) op_fail_soon(o, dorm_result_error(DORM_ENOMEM, NULL));
    return DORM_ENOMEM;
  }
  w->o = o;
  w->a = a;
  w->next = NULL;
  if (root->wait_tail)
    root->wait_tail->next = w;
  else
    root->wait_head = w;
  root->wait_tail = w;
  return 0;
}

/* Send o where it belongs, now or when a writer is free. */
static void dispatch(op *o) {
  dorm_db *db = o->db, *root = db->root;
  if (root->closed) {
    op_fail_soon(o, dorm_result_error(DORM_ECLOSED, NULL));
    return;
  }
  if (root->max_pending && root->npending >= root->max_pending) {
    op_fail_soon(o, dorm_result_error(DORM_EQUEUEFULL,
                                      "%zu requests pending (max_pending)",
                                      root->npending));
    return;
  }
  o->req.max_rows = 0;
  if (db->is_view) o->primary = 1;
  if (db != root && !db->is_view) {
    if (!db->tx_active) {
      op_fail_soon(o,
                   dorm_result_error(DORM_ESTATE, "the transaction has ended"));
      return;
    }
    send_to(root, o, db->tx_conn);
    return;
  }
  if (!o->write && root->has_replicas && o->nstmts == 1 &&
      takes_row_lock(&o->stmts[0]))
    o->primary = 1;
  if (!o->write) {
    long c = pick_reader(root, o);
    /* a memory database: reads share the one connection, and wait like
     * writes while a transaction holds it */
    if (c >= 0 &&
        !(root->conns[c].flags & DORM__CONN_WRITE && root->wait_head)) {
      send_to(root, o, (size_t)c);
      return;
    }
  }
  long c = root->wait_head ? -1 : free_writer(root);
  if (c >= 0)
    send_to(root, o, (size_t)c);
  else
    wait_push(root, o, NULL);
}

/* The deferred of o was cancelled (dorm_deferred_cancel, or a timeout):
 * if the backend has o, ask it to stop the query.  o still completes
 * through op_done, which fires the (already failed) deferred: the maker's
 * exactly-once rule.  An op still waiting for a writer runs when its turn
 * comes and its result is dropped. */
static void op_cancel(dorm_deferred *d, void *arg) {
  op *o = arg;
  (void)d;
  dorm_db *root = o->root;
  if (o->submitted && root->be->cancel && !root->closed)
    root->be->cancel(root->bstate, o->conn, &o->req);
}

/* A new op with a deferred, for the public calls. */
static op *op_public(dorm_db *db, int kind) {
  if (!db) return NULL;
  op *o = op_new(db, kind);
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
  op_fail_soon(o, dorm_result_error_from(err));
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
    op_fail_soon(o, dorm_result_error(DORM_ECLOSED, NULL));
    return d;
  }
  if ((select_what && check_select_q(q, select_what, &err)) ||
      dorm_compile_ex(q, o->db->root->be->dialect, opts, &o->sql, &err))
    return op_fail_err(o, &err);
  o->model_name = dorm_query_model(q) ? dorm_query_model(q)->name : NULL;
  op_stmt_from_sql(o);
  dispatch(o);
  return d;
}

/* ---- opening and closing ------------------------------------------------ */

void dorm_db_options_init(dorm_db_options *o) {
  if (o) memset(o, 0, sizeof *o);
}

dorm_db *dorm_db_open(dorm_loop *loop, const char *url,
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
  db->ryw_window_ms =
      opts && opts->read_your_writes_ms > 0 ? (uint64_t)opts->read_your_writes_ms
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

static void atx_fail_waiting(struct atx *a);

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
      op_deliver(o, dorm_result_error(DORM_ECLOSED, NULL));
      op_free(o);
    } else {
      atx_fail_waiting(w->a);
    }
    dorm__free(w);
    w = next;
  }
  /* requests the backend holds: fail now, free when they come back */
  while (db->pending) {
    op *o = db->pending;
    pending_remove(db, o);
    o->orphan = 1;
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
  }
  while (db->free_ops) {
    op *o = db->free_ops;
    db->free_ops = o->next;
    dorm_sql_free(&o->sql);
    dorm__free(o);
  }
  db->nfree_ops = 0;
  db->be->close(db->bstate);
  db->live--;
  maybe_free_root(db);
}

void dorm__db_backend_closed(dorm_db *db) {
  db->backend_gone = 1;
  if (db->close_cb) {
    dorm_db_close_cb cb = db->close_cb;
    db->close_cb = NULL;
    cb(db->close_arg);
  }
  maybe_free_root(db);
}

static void maybe_free_root(dorm_db *root) {
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

dorm_deferred *dorm_async_filter(dorm_db *db, const dorm_query *q) {
  op *o = op_public(db, OP_ROWS);
  if (!o) return NULL;
  return run_query(o, q, NULL, NULL);
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
static dorm_deferred *get_like(dorm_db *db, dorm_query *q, int kind) {
  op *o = op_public(db, kind);
  if (!o) return NULL;
  dorm_compile_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.limit = kind == OP_GET ? 2 : 1;
  if (kind == OP_FIRST && q && !dorm_query_model(q)->nordering)
    opts.flags |= DORM_COMPILE_ORDER_PK;
  return run_query(o, q, &opts, kind == OP_GET ? "get" : "first");
}

dorm_deferred *dorm_async_get(dorm_db *db, dorm_query *q) {
  return get_like(db, q, OP_GET);
}

dorm_deferred *dorm_async_first(dorm_db *db, dorm_query *q) {
  return get_like(db, q, OP_FIRST);
}

static dorm_deferred *count_like(dorm_db *db, dorm_query *q, int kind) {
  op *o = op_public(db, kind);
  if (!o) return NULL;
  dorm_compile_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.flags = kind == OP_COUNT ? DORM_COMPILE_COUNT : DORM_COMPILE_EXISTS;
  return run_query(o, q, &opts, kind == OP_COUNT ? "count" : "exists");
}

dorm_deferred *dorm_async_count(dorm_db *db, dorm_query *q) {
  return count_like(db, q, OP_COUNT);
}

dorm_deferred *dorm_async_exists(dorm_db *db, dorm_query *q) {
  return count_like(db, q, OP_EXISTS);
}

dorm_deferred *dorm_async_aggregate(dorm_db *db, const dorm_query *q) {
  op *o = op_public(db, OP_ROW);
  if (!o) return NULL;
  return run_query(o, q, NULL, NULL);
}

/* ---- writing ------------------------------------------------------------ */

static dorm_deferred *write_query(dorm_db *db, const dorm_query *q, int kind,
                                  dorm_query_kind want, const char *what) {
  op *o = op_public(db, kind);
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
  return write_query(db, q, OP_ROW, DORM_QUERY_INSERT, "create");
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

static dorm_deferred *execute(dorm_db *db, const char *sql,
                              const dorm_value *params, size_t n, int write) {
  op *o = op_public(db, OP_PLAIN);
  if (!o) return NULL;
  dorm_deferred *d = o->d;
  o->write = write;
  dorm_error err;
  dorm_error_clear(&err);
  if (!sql || (n && !params)) {
    dorm_error_set(&err, DORM_EINVAL, "execute: no SQL or no parameters");
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
  op_stmt_text(o, o->raw);
  o->stmt.params = o->raw_params;
  o->stmt.nparams = n;
  if (db->root->closed) {
    op_fail_soon(o, dorm_result_error(DORM_ECLOSED, NULL));
    return d;
  }
  dispatch(o);
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
  op *o = op_public(db, OP_PLAIN);
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
    op_fail_soon(o, dorm_result_count(0));
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
  dispatch(o);
  return d;
}

/* ---- transactions ------------------------------------------------------- */

typedef struct atx {
  dorm_db *parent; /* where dorm_async_atomic was called */
  dorm_db *tx;     /* the handle given to fn */
  dorm_atomic_fn fn;
  void *arg;
  dorm_deferred *d;
  int sp; /* savepoint number (nested), 0 for the outermost */
  size_t conn;
  dorm_result block; /* the block's result, kept until COMMIT is done */
  char sql[64];
  char sql2[64];
  dorm__stmt two[2];
} atx;

static void atx_finish(atx *a, dorm_result res) {
  dorm_db *root = a->parent->root;
  dorm_deferred *d = a->d;
  a->d = NULL;
  if (a->tx) {
    a->tx->tx_active = 0;
    dorm__free(a->tx);
    root->live--;
  }
  if (!a->sp && a->conn < root->nconns && root->conns[a->conn].pinned) {
    root->conns[a->conn].pinned = 0;
    if (root->has_replicas) {
      root->writes_out--;
      ryw_after_write(root);
    }
  }
  dorm_result_free(&a->block);
  dorm__free(a);
  root->live--;
  if (d) dorm_deferred_fire(d, res);
  /* the writer is free again: send what waited for it, in order */
  if (!root->closed) {
    while (root->wait_head) {
      waiter *w = root->wait_head;
      long c = free_writer(root);
      if (c < 0) break;
      root->wait_head = w->next;
      if (!root->wait_head) root->wait_tail = NULL;
      op *o = w->o;
      struct atx *wa = w->a;
      dorm__free(w);
      if (o)
        send_to(root, o, (size_t)c);
      else
        atx_begin(wa, (size_t)c);
    }
  }
  maybe_free_root(root);
}

static void atx_fail_waiting(atx *a) {
  atx_finish(a, dorm_result_error(DORM_ECLOSED, NULL));
}

/* An internal op on the transaction's connection (loop thread). */
static void atx_ctl(atx *a, const char *sql, const char *sql2,
                    op_then_fn then) {
  dorm_db *root = a->parent->root;
  op *o = op_new(a->parent, OP_CTL);
  if (!o) {
    dorm_result r = dorm_result_error(DORM_ENOMEM, NULL);
    then(NULL, &r, a);
    dorm_result_free(&r);
    return;
  }
  o->then = then;
  o->then_ctx = a;
  if (sql2) {
    memset(a->two, 0, sizeof a->two);
    a->two[0].sql = sql;
    a->two[0].len = strlen(sql);
    a->two[1].sql = sql2;
    a->two[1].len = strlen(sql2);
    o->stmts = a->two;
    o->nstmts = 2;
    o->stmt.sql = NULL;
  } else {
    op_stmt_text(o, sql);
  }
  if (root->closed) {
    op_fail_soon(o, dorm_result_error(DORM_ECLOSED, NULL));
    return;
  }
  send_to(root, o, a->conn);
}

static void atx_after_end(op *o, dorm_result *res, void *ctx) {
  (void)o;
  atx *a = ctx;
  /* the block failed: its error wins over a failed ROLLBACK (the
   * connection rolls back anyway when it closes) */
  dorm_result r = dorm_result_take(&a->block);
  (void)res;
  atx_finish(a, r);
}

static void atx_after_commit(op *o, dorm_result *res, void *ctx) {
  (void)o;
  atx *a = ctx;
  if (dorm_result_is_error(res)) {
    dorm_result_free(&a->block);
    a->block = dorm_result_take(res);
    /* COMMIT failed (e.g. a deferred constraint): the transaction may
     * still be open */
    if (a->parent->root->closed) {
      atx_finish(a, dorm_result_take(&a->block));
      return;
    }
    atx_ctl(a, a->sp ? a->sql2 : "ROLLBACK", NULL, atx_after_end);
    return;
  }
  atx_finish(a, dorm_result_take(&a->block));
}

static dorm_result block_ok(dorm_result *res, void *arg) {
  atx *a = arg;
  a->block = dorm_result_take(res);
  if (a->tx) a->tx->tx_active = 0;
  if (a->parent->root->closed) {
    dorm_result_free(&a->block);
    atx_finish(a, dorm_result_error(DORM_ECLOSED, NULL));
    return dorm_result_none();
  }
  if (a->sp)
    snprintf(a->sql, sizeof a->sql, "RELEASE SAVEPOINT \"dorm_sp%d\"", a->sp);
  atx_ctl(a, a->sp ? a->sql : "COMMIT", NULL, atx_after_commit);
  return dorm_result_none();
}

static dorm_result block_err(dorm_result *res, void *arg) {
  atx *a = arg;
  a->block = dorm_result_take(res);
  if (a->tx) a->tx->tx_active = 0;
  if (a->parent->root->closed) {
    atx_finish(a, dorm_result_take(&a->block));
    return dorm_result_none();
  }
  if (a->sp) {
    snprintf(a->sql, sizeof a->sql, "ROLLBACK TO SAVEPOINT \"dorm_sp%d\"",
             a->sp);
    snprintf(a->sql2, sizeof a->sql2, "RELEASE SAVEPOINT \"dorm_sp%d\"", a->sp);
    atx_ctl(a, a->sql, a->sql2, atx_after_end);
  } else {
    atx_ctl(a, "ROLLBACK", NULL, atx_after_end);
  }
  return dorm_result_none();
}

static void atx_after_begin(op *o, dorm_result *res, void *ctx) {
  (void)o;
  atx *a = ctx;
  if (dorm_result_is_error(res)) {
    atx_finish(a, dorm_result_take(res));
    return;
  }
  dorm_db *root = a->parent->root;
  dorm_db *tx = dorm__calloc(1, sizeof *tx);
  if (!tx) {
    a->block = dorm_result_error(DORM_ENOMEM, NULL);
    atx_ctl(a, a->sp ? a->sql2 : "ROLLBACK", NULL, atx_after_end);
    return;
  }
  root->live++;
  tx->root = root;
  tx->tx_active = 1;
  tx->tx_conn = a->conn;
  tx->tx_outer = a->sp ? a->parent->tx_outer : tx;
  a->tx = tx;
  dorm_deferred *ud = a->fn(tx, a->arg);
  if (!ud) {
    dorm_result r =
        dorm_result_error(DORM_EINVAL, "the atomic block returned no deferred");
    block_err(&r, a);
    return;
  }
  if (dorm_deferred_add_callbacks(ud, block_ok, block_err, a)) {
    /* cannot watch the block: roll back; its deferred goes on alone */
    dorm_result r = dorm_result_error(DORM_ENOMEM, NULL);
    block_err(&r, a);
  }
}

static void atx_begin(atx *a, size_t conn) {
  dorm_db *root = a->parent->root;
  a->conn = conn;
  if (!a->sp) {
    root->conns[conn].pinned = 1;
    if (root->has_replicas) root->writes_out++;
  }
  if (a->sp) {
    snprintf(a->sql, sizeof a->sql, "SAVEPOINT \"dorm_sp%d\"", a->sp);
    snprintf(a->sql2, sizeof a->sql2, "ROLLBACK TO SAVEPOINT \"dorm_sp%d\"",
             a->sp);
    atx_ctl(a, a->sql, NULL, atx_after_begin);
  } else {
    atx_ctl(a, root->be->begin_sql, NULL, atx_after_begin);
  }
}

dorm_deferred *dorm_async_atomic(dorm_db *db, dorm_atomic_fn fn, void *arg) {
  if (!db || !fn) return NULL;
  dorm_db *root = db->root;
  atx *a = dorm__calloc(1, sizeof *a);
  if (!a) return NULL;
  a->d = dorm_deferred_new(NULL, NULL);
  if (!a->d) {
    dorm__free(a);
    return NULL;
  }
  dorm_deferred *d = a->d;
  if (db->is_view) db = root; /* a transaction runs on the primary anyway */
  a->parent = db;
  a->fn = fn;
  a->arg = arg;
  root->live++;
  if (root->closed || (db != root && !db->tx_active)) {
    a->d = NULL;
    dorm_deferred_fire_soon(root->loop, d,
                            root->closed
                                ? dorm_result_error(DORM_ECLOSED, NULL)
                                : dorm_result_error(DORM_ESTATE,
                                                    "the transaction has "
                                                    "ended"));
    dorm__free(a);
    root->live--;
    return d;
  }
  if (db != root) {
    a->sp = ++db->tx_outer->sp_next;
    atx_begin(a, db->tx_conn);
    return d;
  }
  long c = root->wait_head ? -1 : free_writer(root);
  if (c >= 0) {
    atx_begin(a, (size_t)c);
  } else if (wait_push(root, NULL, a)) {
    {
      /* out of memory queueing it */
      a->d = NULL;
      dorm_deferred_fire_soon(root->loop, d,
                              dorm_result_error(DORM_ENOMEM, NULL));
      dorm__free(a);
      root->live--;
    }
  }
  return d;
}

/* ---- compound operations ------------------------------------------------ */

/* Run a compiled statement (borrowed: it must outlive the op) on db. */
static dorm_deferred *run_sql(dorm_db *db, const dorm_sql *sql, int kind,
                              int write, const char *model_name, int created) {
  op *o = op_public(db, kind);
  if (!o) return NULL;
  dorm_deferred *d = o->d;
  o->use = sql;
  o->write = write;
  o->model_name = model_name;
  o->created = created;
  op_stmt_from_sql(o);
  dispatch(o);
  return d;
}

typedef struct goc {
  const dorm_model *model;
  dorm_sql sel; /* get: LIMIT 2 */
  dorm_sql ins; /* insert RETURNING */
  dorm_sql upd; /* update_or_create: UPDATE ... RETURNING, len 0 if none */
  dorm_db *tx;
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
  dorm_error err;
  dorm_error_clear(&err);
  dorm_dialect dl = db->root->be->dialect;
  dorm_query *s = dorm_select(model), *i = dorm_insert(model);
  dorm_query *u = update && nd ? dorm_update(model) : NULL;
  int rc = (!s || !i || (update && nd && !u)) ? DORM_ENOMEM : 0;
  for (size_t k = 0; !rc && k < nl; k++) {
    dorm_filter(s, lookups[k].field, lookups[k].value);
    if (u) dorm_filter(u, lookups[k].field, lookups[k].value);
    if (!has_lookup(lookups[k].field) && strcmp(lookups[k].field, "pk"))
      dorm_set(i, lookups[k].field, lookups[k].value);
    else if (!strcmp(lookups[k].field, "pk"))
      dorm_set(i, model->pk->name, lookups[k].value);
  }
  for (size_t k = 0; !rc && k < nd; k++) {
    dorm_set(i, defaults[k].field, defaults[k].value);
    if (u) dorm_set(u, defaults[k].field, defaults[k].value);
  }
  if (!rc && s) dorm_slice(s, 0, 2);
  if (!rc && u) dorm_returning(u, "*");
  if (!rc) rc = dorm_compile(s, dl, &g->sel, &err);
  if (!rc) rc = dorm_compile(i, dl, &g->ins, &err);
  if (!rc && u) rc = dorm_compile(u, dl, &g->upd, &err);
  dorm_query_free(s);
  dorm_query_free(i);
  dorm_query_free(u);
  if (rc) {
    /* report through the deferred (R2), as every other call */
    dorm_deferred *d = dorm_deferred_new(NULL, NULL);
    if (d)
      dorm_deferred_fire_soon(db->root->loop, d,
                              err.code ? dorm_result_error_from(&err)
                                       : dorm_result_error(rc, NULL));
    goc_free(g);
    return d;
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
  op *o = op_public(tx, OP_PLAIN);
  if (!o) return NULL;
  dorm_deferred *d = o->d;
  o->write = 1;
  o->stmts = b->stmts;
  o->nstmts = b->n;
  o->req.flags = DORM__REQ_SUM_COUNTS;
  dispatch(o);
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

dorm_deferred *dorm_async_bulk_create(dorm_db *db, dorm_query *q) {
  if (!db) return NULL;
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
    dorm_deferred *d = dorm_deferred_new(NULL, NULL);
    if (d) dorm_deferred_fire_soon(db->root->loop, d, dorm_result_count(0));
    return d;
  }
  if (rc) {
    bulk_free(b);
    dorm_deferred *d = dorm_deferred_new(NULL, NULL);
    if (d)
      dorm_deferred_fire_soon(db->root->loop, d, dorm_result_error_from(&err));
    return d;
  }
  dorm_deferred *d = dorm_async_atomic(db, bulk_body, b);
  if (!d) {
    bulk_free(b);
    return NULL;
  }
  dorm_deferred_add_both(d, bulk_finally, b);
  return d;
}
