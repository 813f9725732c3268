/* backends/db_tx.c — transactions: dorm_async_atomic.
 *
 * An atomic block (an `atx`) takes a free WRITE slot, or waits for one in
 * the database's FIFO of writers (db_route.c), and pins it: BEGIN, then the
 * block is called with a transaction handle (a dorm_db whose requests all
 * go to the pinned slot) and the deferred it returns is watched.  Success
 * sends COMMIT, failure ROLLBACK; the atomic call's deferred fires once
 * that statement is done, with the block's result (or COMMIT's error).
 * On a transaction handle the block is nested: SAVEPOINT "dorm_spN" on the
 * same slot, then RELEASE, or ROLLBACK TO and RELEASE.  BEGIN, COMMIT and
 * the rest are internal ops (OP_CTL) whose answer goes to a `then`.
 *
 * When the outermost block ends, its slot is released and the requests
 * and transactions that waited for a writer are sent, in order.  With read
 * replicas a transaction counts as a write for read-your-writes while it
 * runs.
 */
#include <stdio.h>
#include <string.h>

#include "backends/db_int.h"
#include "base/base_int.h"

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

static void atx_begin(atx *a, size_t conn);

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
      dorm__db_ryw_after_write(root);
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

/* An internal op on the transaction's connection (loop thread). */
static void atx_ctl(atx *a, const char *sql, const char *sql2,
                    op_then_fn then) {
  dorm_db *root = a->parent->root;
  op *o = dorm__db_op_new(a->parent, OP_CTL);
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
  long c = root->wait_head ? -1 : dorm__db_free_writer(root);
  if (c >= 0) {
    atx_begin(a, (size_t)c);
  } else if (dorm__db_wait_push(root, NULL, a)) {
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
