/* SPDX-License-Identifier: MIT */
/* backends/db_route.c — routing: which connection slot of the database
 * each request of the facade goes to, and when.
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
 */
#include <stdint.h>
#include <string.h>

#include "backends/db_int.h"
#include "base/base_int.h"

/* ---- slots -------------------------------------------------------------- */

void dorm__db_send_to(dorm_db *root, op *o, size_t conn) {
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
  dorm__db_obs_sent(root, o);
  root->be->submit(root->bstate, conn, &o->req);
}

/* A free WRITE slot (no transaction holds it), or -1. */
long dorm__db_free_writer(dorm_db *root) {
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
    if (replica && !root->be->slot_usable(root->bstate, i, min_lsn)) {
      c->skipped++;
      continue;
    }
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
                (root->ryw_until_ms && dorm__mono_ms() < root->ryw_until_ms);
      if (root->ryw_mode == DORM_RYW_LSN) need = root->ryw_lsn;
    }
    long c = primary ? -1 : free_reader(root, 1, need);
    if (c >= 0) return c;
  }
  return free_reader(root, 0, 0);
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
    root->ryw_until_ms = dorm__mono_ms() + root->ryw_window_ms;
  }
  if (root->lsn_again && !root->closed) {
    root->lsn_again = 0;
    ryw_ask_lsn(root);
  }
}

/* A write (or a transaction) of the database finished: note where the
 * primary is now, so later reads see the write. */
void dorm__db_ryw_after_write(dorm_db *root) {
  if (!root->has_replicas || root->closed) return;
  if (root->ryw_mode == DORM_RYW_WINDOW) {
    root->ryw_until_ms = dorm__mono_ms() + root->ryw_window_ms;
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
  op *o = dorm__db_op_new(root, OP_CTL);
  if (!o) {
    root->ryw_until_ms = dorm__mono_ms() + root->ryw_window_ms;
    return;
  }
  /* asked after the write's commit, so the answer covers it */
  root->lsn_out++;
  o->then = ryw_lsn_then;
  o->then_ctx = root;
  o->primary = 1;
  o->internal = 1;
  dorm__db_op_stmt_text(o, root->be->lsn_sql);
  dorm__db_dispatch(o);
}

/* 0, or DORM_ENOMEM (an op is then failed; for a transaction the caller
 * fails it) */
int dorm__db_wait_push(dorm_db *root, op *o, struct atx *a) {
  waiter *w = dorm__malloc(sizeof *w);
  if (!w) {
    if (o) dorm__db_op_fail_soon(o, dorm_result_error(DORM_ENOMEM, NULL));
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
void dorm__db_dispatch(op *o) {
  dorm_db *db = o->db, *root = db->root;
  if (root->closed) {
    dorm__db_op_fail_soon(o, dorm_result_error(DORM_ECLOSED, NULL));
    return;
  }
  if (root->max_pending && root->npending >= root->max_pending) {
    dorm__db_op_fail_soon(
        o,
        dorm_result_error(DORM_EQUEUEFULL, "%zu requests pending (max_pending)",
                          root->npending));
    return;
  }
  o->req.max_rows = 0;
  dorm__db_obs_made(root, o);
  if (db->is_view) o->primary = 1;
  if (db != root && !db->is_view) {
    if (!db->tx_active) {
      dorm__db_op_fail_soon(
          o, dorm_result_error(DORM_ESTATE, "the transaction has ended"));
      return;
    }
    dorm_result refused;
    if (o->kind != OP_CTL && dorm__db_tx_refuse(db, &refused)) {
      dorm__db_op_fail_soon(o, refused);
      return;
    }
    if (o->kind != OP_CTL) dorm__db_tx_sent(o);
    dorm__db_send_to(root, o, db->tx_conn);
    return;
  }
  /* a row lock (select_for_update) can only be taken on the primary */
  if (!o->write && root->has_replicas && o->nstmts == 1 &&
      o->stmts[0].row_lock)
    o->primary = 1;
  if (!o->write) {
    long c = pick_reader(root, o);
    /* a memory database: reads share the one connection, and wait like
     * writes while a transaction holds it */
    if (c >= 0 &&
        !(root->conns[c].flags & DORM__CONN_WRITE && root->wait_head)) {
      dorm__db_send_to(root, o, (size_t)c);
      return;
    }
  }
  long c = root->wait_head ? -1 : dorm__db_free_writer(root);
  if (c >= 0)
    dorm__db_send_to(root, o, (size_t)c);
  else
    dorm__db_wait_push(root, o, NULL);
}

/* A read whose replica went away while it ran is sent once more (to
 * another replica or the primary): it changed nothing, so running it again
 * is safe.  Writes never are: they may have been applied.  Went away: the
 * connection broke (DORM_ECONN) or the server stayed silent past the
 * answer deadline (DORM_ETIMEDOUT from the backend, without a SQLSTATE: a
 * server's statement_timeout has one, 57014, and is not retried). */
int dorm__db_retry_elsewhere(dorm_db *root, op *o) {
  int code = dorm_result_code(&o->req.result);
  if (o->write || o->retried || root->closed || o->conn >= root->nconns ||
      !(root->conns[o->conn].flags & DORM__CONN_REPLICA) ||
      !(code == DORM_ECONN ||
        (code == DORM_ETIMEDOUT && !dorm_result_sqlstate(&o->req.result)[0])))
    return 0;
  o->retried = 1;
  dorm_result_free(&o->req.result);
  dorm__db_pending_remove(root, o);
  dorm__db_dispatch(o);
  return 1;
}
