/* SPDX-License-Identifier: MIT */
/* backends/db_tx.c — transactions: dorm_async_atomic.
 *
 * An atomic block (an `atx`) takes a free WRITE slot, or waits for one in
 * the database's FIFO of writers (db_route.c), and pins it: BEGIN, then the
 * block is called with a transaction handle (a dorm_db whose requests all
 * go to the pinned slot) and the deferred it returns is watched.  On a
 * transaction handle the block is nested: SAVEPOINT "dorm_spN" on the same
 * slot, then RELEASE, or ROLLBACK TO and RELEASE.  BEGIN, COMMIT and the
 * rest are internal ops (OP_CTL) whose answer goes to a `then`.
 *
 * Atomic means atomic: the block commits only if every request made on its
 * handle succeeded.  The first request that fails (db.c tells us, whether
 * its deferred was chained, gathered or dropped) or is cancelled "dooms"
 * the block: its error is kept, later requests on the handle are refused
 * with DORM_ETXABORTED (and those already sent are answered so, the same
 * on every backend), and when the block is over the transaction rolls
 * back and the atomic deferred fails with that first error.  Without this,
 * SQLite would commit the requests around a failed one and PostgreSQL
 * would report "current transaction is aborted" instead of the cause.  A
 * get's DORM_ENOTFOUND / DORM_EMULTIPLE are answers, not failures.
 *
 * A nested block is, for its enclosing block, one request: the deferred
 * dorm_async_atomic returned.  Its failure dooms the enclosing block only
 * if nobody handled it (Django's rule: an exception caught around an inner
 * atomic block rolls back that savepoint only).  So when a nested block
 * ends we fire its deferred and then append a step at the end of its chain
 * (after the user's): an error that reaches it was not recovered by any
 * errback and dooms the enclosing block (the step consumes it, so it is
 * reported once, by the enclosing block).
 *
 * A block is over when its deferred has fired, every request made on its
 * handle has been answered (so a failure among them is known before COMMIT
 * is decided) and its nested blocks are settled.  When the outermost block
 * ends, its slot is released and the requests and transactions that
 * waited for a writer are sent, in order.  With read replicas a
 * transaction counts as a write for read-your-writes while it runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backends/db_int.h"
#include "base/base_int.h"

#define NO_CONN SIZE_MAX

typedef struct atx {
  dorm_db *parent; /* where dorm_async_atomic was called */
  struct atx *up;  /* the enclosing block of a nested one, else NULL */
  dorm_db *tx;     /* the handle given to fn */
  dorm_atomic_fn fn;
  void *arg;
  dorm_deferred *d;  /* the atomic call's deferred, until fired */
  dorm_deferred *ud; /* the block's deferred while it runs (retained) */
  int sp;            /* savepoint number (nested), 0 for the outermost */
  size_t conn;       /* NO_CONN until the transaction began */
  int ending;        /* the block's deferred fired (or fn never ran) */
  size_t children;   /* nested blocks begun and not settled yet */
  size_t inflight;   /* requests of the handle sent and not answered */
  dorm_result block; /* the block's result, kept until the end */
  dorm_result doom;  /* the first failure (DORM_RESULT_NONE: none) */
  char sql[64];
  char sql2[64];
  dorm__stmt two[2];
  /* The ops for the beginning (BEGIN, SAVEPOINT) and the end (COMMIT,
   * ROLLBACK, RELEASE, ROLLBACK TO), taken when the block is made.  An end
   * that could not be sent for want of memory would leave the transaction
   * open on a connection that goes back to the pool (the next BEGIN
   * fails, other writes never commit); a beginning that failed so would
   * fire the atomic deferred inside dorm_async_atomic (R2) and free it
   * before the caller has it. */
  op *begin_op, *end_op;
} atx;

static void atx_begin(atx *a, size_t conn);
static void atx_end(atx *a);

/* ---- dooming ------------------------------------------------------------ */

static int is_doomed(const atx *a) { return a->doom.kind == DORM_RESULT_ERROR; }

/* The innermost doomed block among a and those enclosing it, or NULL. */
static atx *doomed_of(atx *a) {
  for (; a; a = a->up)
    if (is_doomed(a)) return a;
  return NULL;
}

static dorm_result copy_error(const dorm_result *res) {
  const char *ss = dorm_result_sqlstate(res);
  return dorm_result_error_sql(dorm_result_code(res), ss[0] ? ss : NULL, "%s",
                               dorm_result_message(res));
}

/* Record res (an error, borrowed) as a's first failure. */
static void doom(atx *a, const dorm_result *res) {
  if (is_doomed(a) || !dorm_result_is_error(res)) return;
  a->doom = copy_error(res);
}

/* A cancel (of a request, or of the block): its error, as the cancelled
 * deferred's chain will see it. */
static void doom_cancelled(atx *a, const char *what) {
  int t = dorm_deferred_cancel_is_timeout();
  dorm_result r =
      dorm_result_error(t ? DORM_ETIMEDOUT : DORM_ECANCELED, "%s %s", what,
                        t ? "timed out" : "was cancelled");
  doom(a, &r);
  dorm_result_free(&r);
}

/* What a request of a doomed block gets: DORM_ETXABORTED naming the first
 * error, with PostgreSQL's SQLSTATE for it on every backend. */
static dorm_result aborted(const atx *by) {
  const dorm_result *e = &by->doom;
  const char *ss = dorm_result_sqlstate(e);
  return dorm_result_error_sql(
      DORM_ETXABORTED, "25P02",
      "an earlier request of the atomic block failed, so it rolls back: %s: "
      "%s%s%s%s",
      dorm_err_name(dorm_result_code(e)), dorm_result_message(e),
      ss[0] ? " (SQLSTATE " : "", ss, ss[0] ? ")" : "");
}

/* Answers, not failures: the statement ran and the transaction is fine. */
static int is_answer(int code) {
  return code == DORM_ENOTFOUND || code == DORM_EMULTIPLE;
}

int dorm__db_tx_refuse(dorm_db *tx, dorm_result *out) {
  atx *by = tx && tx->atx ? doomed_of(tx->atx) : NULL;
  if (!by) return 0;
  *out = aborted(by);
  return 1;
}

void dorm__db_tx_failed(dorm_db *tx, const dorm_result *res) {
  if (!tx || !tx->atx || !tx->tx_active || !dorm_result_is_error(res)) return;
  if (is_answer(dorm_result_code(res))) return;
  if (dorm_result_code(res) == DORM_ECLOSED) return; /* ends with ECLOSED */
  doom(tx->atx, res);
}

void dorm__db_tx_sent(op *o) {
  o->atx = o->db->atx;
  o->atx->inflight++;
}

void dorm__db_tx_op_done(op *o, dorm_result *res) {
  atx *a = o->atx;
  if (!a) return;
  atx *by = doomed_of(a);
  if (by) {
    /* sent before the failure was known: it ran in a transaction that
     * rolls back (SQLite) or was refused (PostgreSQL, 25P02) */
    dorm_result_free(res);
    *res = aborted(by);
    return;
  }
  if (dorm_result_is_error(res) && !is_answer(dorm_result_code(res)) &&
      dorm_result_code(res) != DORM_ECLOSED)
    doom(a, res);
}

void dorm__db_tx_op_cancelled(op *o) {
  if (o->atx) doom_cancelled(o->atx, "a request of the atomic block");
}

/* ---- the end ------------------------------------------------------------ */

static void maybe_end(atx *a) {
  if (a->ending && !a->children && !a->inflight) atx_end(a);
}

void dorm__db_tx_op_gone(struct atx *a) {
  a->inflight--;
  maybe_end(a);
}

static void child_settled(atx *up) {
  up->children--;
  maybe_end(up);
}

/* The end of a nested block's chain: an error here was not handled. */
static dorm_result settled_ok(dorm_result *res, void *arg) {
  child_settled(arg);
  return *res;
}

static dorm_result settled_err(dorm_result *res, void *arg) {
  atx *up = arg;
  doom(up, res);
  child_settled(up);
  return dorm_result_none(); /* reported by the enclosing block */
}

static void atx_finish(atx *a, dorm_result res) {
  dorm_db *root = a->parent->root;
  dorm_deferred *d = a->d;
  atx *up = a->up;
  a->d = NULL;
  if (a->ud) {
    dorm_deferred *ud = a->ud;
    a->ud = NULL;
    dorm_deferred_release(ud);
  }
  if (a->tx) {
    a->tx->tx_active = 0;
    a->tx->atx = NULL;
    dorm__free(a->tx);
    root->live--;
  }
  if (!a->sp && a->conn < root->nconns && root->conns[a->conn].pinned) {
    root->conns[a->conn].pinned = 0;
    if (root->has_replicas) {
      root->writes_out--;
      dorm__db_ryw_after_write(root);
    }
  }
  if (a->begin_op) dorm__db_op_release(a->begin_op);
  if (a->end_op) dorm__db_op_release(a->end_op);
  dorm_result_free(&a->block);
  dorm_result_free(&a->doom);
  dorm__free(a);
  root->live--;
  if (up) {
    /* the user's steps first, then ours at the end of the chain */
    if (d) {
      dorm_deferred_retain(d);
      dorm_deferred_fire(d, res);
      if (dorm_deferred_add_callbacks(d, settled_ok, settled_err, up)) {
        dorm_result r = dorm_result_error(DORM_ENOMEM, NULL);
        doom(up, &r);
        dorm_result_free(&r);
        child_settled(up);
      }
      dorm_deferred_release(d);
    } else {
      dorm_result_free(&res);
      child_settled(up);
    }
  } else if (d) {
    dorm_deferred_fire(d, res);
  } else {
    dorm_result_free(&res);
  }
  /* the writer is free again: send what waited for it, in order */
  if (!root->closed) {
    while (root->wait_head) {
      waiter *w = root->wait_head;
      long c = dorm__db_free_writer(root);
      if (c < 0) break;
      root->wait_head = w->next;
      if (!root->wait_head) root->wait_tail = NULL;
      op *o = w->o;
      struct atx *wa = w->a;
      dorm__free(w);
      if (o)
        dorm__db_send_to(root, o, (size_t)c);
      else
        atx_begin(wa, (size_t)c);
    }
  }
  dorm__db_maybe_free_root(root);
}

void dorm__db_atx_fail_waiting(atx *a) {
  atx_finish(a, dorm_result_error(DORM_ECLOSED, NULL));
}

/* The atomic deferred's result: the first failure, else the block's. */
static dorm_result final_result(atx *a) {
  if (is_doomed(a)) return dorm_result_take(&a->doom);
  if (dorm_result_is_error(&a->block)) return dorm_result_take(&a->block);
  atx *by = doomed_of(a->up);
  if (by) return aborted(by);
  return dorm_result_take(&a->block);
}

static void atx_after_begin(op *o, dorm_result *res, void *ctx);

/* An internal op on the transaction's connection (loop thread). */
static void atx_ctl(atx *a, const char *sql, const char *sql2,
                    op_then_fn then) {
  dorm_db *root = a->parent->root;
  op *o = NULL;
  op **reserved = then == atx_after_begin ? &a->begin_op : &a->end_op;
  o = *reserved;
  *reserved = NULL;
  if (!o) o = dorm__db_op_new(a->parent, OP_CTL);
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
    dorm__db_op_stmt_text(o, sql);
  }
  if (root->closed) {
    dorm__db_op_fail_soon(o, dorm_result_error(DORM_ECLOSED, NULL));
    return;
  }
  dorm__db_send_to(root, o, a->conn);
}

static void atx_after_end(op *o, dorm_result *res, void *ctx) {
  (void)o;
  (void)res; /* the block's error wins over a failed ROLLBACK (the
                connection rolls back anyway when it closes) */
  atx *a = ctx;
  atx_finish(a, final_result(a));
}

static void atx_rollback(atx *a) {
  if (a->sp) {
    snprintf(a->sql, sizeof a->sql, "ROLLBACK TO SAVEPOINT \"dorm_sp%d\"",
             a->sp);
    snprintf(a->sql2, sizeof a->sql2, "RELEASE SAVEPOINT \"dorm_sp%d\"", a->sp);
    atx_ctl(a, a->sql, a->sql2, atx_after_end);
  } else {
    atx_ctl(a, "ROLLBACK", NULL, atx_after_end);
  }
}

static void atx_after_commit(op *o, dorm_result *res, void *ctx) {
  (void)o;
  atx *a = ctx;
  if (dorm_result_is_error(res)) {
    /* COMMIT failed (e.g. a deferred constraint): the transaction may
     * still be open */
    dorm_result_free(&a->block);
    a->block = dorm_result_take(res);
    if (a->parent->root->closed) {
      atx_finish(a, final_result(a));
      return;
    }
    atx_rollback(a);
    return;
  }
  atx_finish(a, final_result(a));
}

/* The block is over: COMMIT (RELEASE) when nothing failed, else ROLLBACK
 * (ROLLBACK TO). */
static void atx_end(atx *a) {
  if (a->parent->root->closed) {
    if (!dorm_result_is_error(&a->block)) {
      dorm_result_free(&a->block);
      a->block = dorm_result_error(DORM_ECLOSED, NULL);
    }
    atx_finish(a, final_result(a));
    return;
  }
  if (is_doomed(a) || dorm_result_is_error(&a->block) || doomed_of(a->up)) {
    atx_rollback(a);
    return;
  }
  if (a->sp)
    snprintf(a->sql, sizeof a->sql, "RELEASE SAVEPOINT \"dorm_sp%d\"", a->sp);
  atx_ctl(a, a->sp ? a->sql : "COMMIT", NULL, atx_after_commit);
}

/* The block's deferred fired with res (or fn never ran): end once what it
 * started is over. */
static void block_done(atx *a, dorm_result *res) {
  dorm_result_free(&a->block);
  a->block = dorm_result_take(res);
  a->ending = 1;
  if (a->tx) a->tx->tx_active = 0;
  if (a->ud) {
    dorm_deferred *ud = a->ud;
    a->ud = NULL;
    dorm_deferred_release(ud); /* safe inside its own chain */
  }
  maybe_end(a);
}

static dorm_result block_ok(dorm_result *res, void *arg) {
  block_done(arg, res);
  return dorm_result_none();
}

static dorm_result block_err(dorm_result *res, void *arg) {
  block_done(arg, res);
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
  dorm_result r;
  atx *by = doomed_of(a);
  if (by) {
    /* cancelled, or the enclosing block failed, before fn could run */
    r = by == a ? dorm_result_none() : aborted(by);
    block_done(a, &r);
    return;
  }
  dorm_db *tx = dorm__calloc(1, sizeof *tx);
  if (!tx) {
    r = dorm_result_error(DORM_ENOMEM, NULL);
    block_done(a, &r);
    return;
  }
  root->live++;
  tx->root = root;
  tx->tx_active = 1;
  tx->tx_conn = a->conn;
  tx->tx_outer = a->sp ? a->parent->tx_outer : tx;
  tx->atx = a;
  a->tx = tx;
  dorm_deferred *ud = a->fn(tx, a->arg);
  if (!ud) {
    /* an async call returns NULL only when out of memory (or given
     * NULLs): the block passes that on */
    r = dorm_result_error(DORM_ENOMEM,
                          "the atomic block returned no deferred (out of "
                          "memory)");
    block_done(a, &r);
    return;
  }
  a->ud = dorm_deferred_retain(ud);
  if (dorm_deferred_add_callbacks(ud, block_ok, block_err, a)) {
    /* cannot watch the block: roll back; its deferred goes on alone */
    r = dorm_result_error(DORM_ENOMEM, NULL);
    block_done(a, &r);
  }
}

static void atx_begin(atx *a, size_t conn) {
  dorm_db *root = a->parent->root;
  if (!a->sp && is_doomed(a)) {
    /* cancelled while it waited for a writer: it never begins */
    atx_finish(a, dorm_result_take(&a->doom));
    return;
  }
  a->conn = conn;
  if (!a->sp) {
    root->conns[conn].pinned = 1;
    if (root->has_replicas) root->writes_out++;
  }
  if (a->sp) {
    snprintf(a->sql, sizeof a->sql, "SAVEPOINT \"dorm_sp%d\"", a->sp);
    atx_ctl(a, a->sql, NULL, atx_after_begin);
  } else {
    atx_ctl(a, root->be->begin_sql, NULL, atx_after_begin);
  }
}

/* dorm_deferred_cancel on the atomic deferred (a timeout included): the
 * block is doomed and what it waits for is cancelled; it rolls back. */
static void atx_cancel(dorm_deferred *d, void *arg) {
  (void)d;
  atx *a = arg;
  doom_cancelled(a, "the atomic block");
  /* last: its steps may end the block */
  if (a->ud) dorm_deferred_cancel(a->ud);
}

/* A deferred that fails soon with res (R2), for a block refused at once. */
static dorm_deferred *refuse_soon(dorm_db *root, dorm_result res) {
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  if (d)
    dorm_deferred_fire_soon(root->loop, d, res);
  else
    dorm_result_free(&res);
  return d;
}

static dorm_result swallow(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  return dorm_result_none();
}

dorm_deferred *dorm_async_atomic(dorm_db *db, dorm_atomic_fn fn, void *arg) {
  if (!db || !fn) return NULL;
  dorm_db *root = db->root;
  if (db->is_view) db = root; /* a transaction runs on the primary anyway */
  dorm_result refused = dorm_result_none();
  if (root->closed)
    return refuse_soon(root, dorm_result_error(DORM_ECLOSED, NULL));
  if (db != root && !db->tx_active)
    return refuse_soon(
        root, dorm_result_error(DORM_ESTATE, "the transaction has ended"));
  if (db != root && dorm__db_tx_refuse(db, &refused))
    return refuse_soon(root, refused);
  atx *a = dorm__calloc(1, sizeof *a);
  if (!a) return NULL;
  /* the canceller's a lives until the deferred has fired */
  a->d = dorm_deferred_new(atx_cancel, a);
  if (!a->d) {
    dorm__free(a);
    return NULL;
  }
  if (!(a->begin_op = dorm__db_op_new(db, OP_CTL)) ||
      !(a->end_op = dorm__db_op_new(db, OP_CTL))) {
    /* nothing was started: give the unfired deferred up quietly, as
     * below */
    dorm_deferred *d0 = a->d;
    if (a->begin_op) dorm__db_op_release(a->begin_op);
    dorm__free(a);
    if (dorm_deferred_add_errback(d0, swallow, NULL) == 0)
      dorm_deferred_release(d0);
    return NULL;
  }
  dorm_deferred *d = a->d;
  a->parent = db;
  a->fn = fn;
  a->arg = arg;
  a->conn = NO_CONN;
  root->live++;
  if (db != root) {
    a->sp = ++db->tx_outer->sp_next;
    a->up = db->atx;
    a->up->children++;
    atx_begin(a, db->tx_conn);
    return d;
  }
  long c = root->wait_head ? -1 : dorm__db_free_writer(root);
  if (c >= 0) {
    atx_begin(a, (size_t)c);
  } else if (dorm__db_wait_push(root, NULL, a)) {
    /* out of memory queueing it: nothing was started; give the unfired
     * deferred up quietly (it has no step of the caller's yet) */
    dorm__free(a);
    root->live--;
    if (dorm_deferred_add_errback(d, swallow, NULL) == 0)
      dorm_deferred_release(d);
    return NULL;
  }
  return d;
}
