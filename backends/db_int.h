/* SPDX-License-Identifier: MIT */
/* backends/db_int.h — the private structures of the database facade and
 * the functions its files share: db.c (ops, opening and closing, the
 * reading and writing calls, raw SQL), db_route.c (routing and
 * read-your-writes), db_tx.c (transactions), db_compound.c
 * (get_or_create, update_or_create, bulk_create), db_prefetch.c
 * (prefetch_related), db_listen.c (LISTEN/NOTIFY, through the
 * backend table), db_hooks.c (query hooks and statistics) and db_log.c
 * ($DORM_LOG).  Backends never see it:
 * their side of the facade is backend_int.h.
 *
 * A dorm_db is one of three things: a database handle (root is itself; it
 * owns the backend, the connection slots, the requests the backend holds,
 * the FIFO of requests waiting for a writer and the read-your-writes
 * state), a transaction handle (made by db_tx.c for an atomic block), or
 * the primary view (dorm_db_primary).  The last two point at their
 * database through root.  An `op` is one request.
 *
 * Everything here runs on the loop thread.
 */
#ifndef DORM_DB_INT_H
#define DORM_DB_INT_H

#include <stddef.h>
#include <stdint.h>

#include "backends/backend_int.h"
#include "dorm/observe.h"

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
                    dorm__db_dispatch: a transaction handle may go first) */
  dorm_db *root; /* its database */
  dorm_deferred *d;
  size_t conn;
  int orphan;
  int created; /* mark rows as created */
  int insert;  /* OP_ROW of dorm_async_create: no row means DO NOTHING */
  op_then_fn then;
  void *then_ctx;
  op *prev, *next; /* root's pending list */
  int submitted;   /* lent to the backend (between submit and done) */
  int primary;     /* a read that must run on the primary */
  int retried;     /* a read already sent again after losing its replica */
  int counted;     /* counted in root->writes_out */
  /* a request of a transaction handle: its block (db_tx.c), from the
   * moment it is sent until it is answered */
  struct atx *atx;
  /* observing (db_hooks.c): started = counted and shown to the hooks in
   * hookmask (bit i: hooks[i]) with their user data; ended once */
  unsigned char started, ended, internal;
  unsigned char cancel_kind; /* 1 cancelled, 2 timed out */
  unsigned hookmask;
  uint64_t t_made, t_sent; /* monotonic ns, only while hooks exist */
  void *hook_user[DORM_HOOKS_MAX];
};

struct atx; /* a transaction (db_tx.c) */

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
  /* observing (db_hooks.c): fixed at open, and counters */
  int role;
  size_t replica;
  int pgbouncer;
  uint64_t requests, skipped;
} conn_state;

/* A registered hook (db_hooks.c): a slot of the database's array. */
struct dorm_hook {
  dorm_hook_start_fn start;
  dorm_hook_end_fn end;
  void *arg;
  unsigned flags;
  int used;        /* the slot is taken (live, or ending its requests) */
  int live;        /* new requests start with it */
  size_t inflight; /* requests it saw start and not end */
};

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
  struct atx *atx;   /* the block this handle belongs to */
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
  int ryw_mode; /* DORM_RYW_* */
  uint64_t ryw_window_ms;
  size_t writes_out;     /* writes and transactions not finished */
  size_t lsn_out;        /* position queries after a write not answered */
  int lsn_again;         /* a write finished while one was out: ask again */
  uint64_t ryw_lsn;      /* reads must see the primary at this position */
  uint64_t ryw_until_ms; /* reads stay on the primary until then */
  struct dorm_iter *iters; /* streams running (db_iterate.c) */
  /* observing (root, db_hooks.c): hooks, and the counters of
   * dorm_db_stats; nhooks counts the live ones (0: nothing to call) */
  struct dorm_hook hooks[DORM_HOOKS_MAX];
  unsigned nhooks;
  int hooks_off; /* dorm_db_close returned: no hook runs again */
  dorm_stats st;
};

/* ---- ops (db.c) --------------------------------------------------------- */

/* A new op for db (recycled from its database's free list when it can
 * be), or NULL when out of memory. */
op *dorm__db_op_new(dorm_db *db, int kind);
/* Give back an op made with dorm__db_op_new and never sent. */
void dorm__db_op_release(op *o);

/* dorm__db_op_new with a deferred whose cancel reaches the backend: the
 * op of a call that answers its caller. */
op *dorm__db_op_public(dorm_db *db, int kind);

/* Point the op's one statement at o->use, or at the text sql (borrowed). */
void dorm__db_op_stmt_from_sql(op *o);
void dorm__db_op_stmt_text(op *o, const char *sql);

/* Fail, then free, an op that never reached the backend. */
void dorm__db_op_fail_soon(op *o, dorm_result res);

/* Unlink o from root->pending (back from the backend, or sent again). */
void dorm__db_pending_remove(dorm_db *root, op *o);

/* Free a closed database once its backend is gone and nothing of it (ops,
 * transactions, handles) is left. */
void dorm__db_maybe_free_root(dorm_db *root);

/* ---- routing (db_route.c) ----------------------------------------------- */

/* Send o now, or queue it until a writer is free (or fail it). */
void dorm__db_dispatch(op *o);

/* Lend o to the backend on slot conn. */
void dorm__db_send_to(dorm_db *root, op *o, size_t conn);

/* The least busy WRITE slot no transaction holds, or -1. */
long dorm__db_free_writer(dorm_db *root);

/* Queue o, or a transaction to begin (a), for a writer. */
int dorm__db_wait_push(dorm_db *root, op *o, struct atx *a);

/* 1 when o, a read that lost its replica, was sent again. */
int dorm__db_retry_elsewhere(dorm_db *root, op *o);

/* A write or a transaction of the database finished: later reads must
 * see it. */
void dorm__db_ryw_after_write(dorm_db *root);

/* ---- observing (db_hooks.c, db_log.c) ---------------------------------- */

/* o is handed to slot o->conn (each time: a retried read twice): counts
 * it, and the first time starts the hooks. */
void dorm__db_obs_sent(dorm_db *root, op *o);
/* o is answered for good with res (the backend's, borrowed), or failed
 * by close: counts it and ends the hooks, once. */
void dorm__db_obs_done(dorm_db *root, op *o, const dorm_result *res);
static inline void dorm__db_obs_made(dorm_db *root, op *o) {
  if (root->nhooks && !o->t_made) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    o->t_made = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  }
}
/* d, the deferred of a request that runs outside the facade's slots (a
 * stream on a connection of its own), counted and shown to the hooks as
 * a request with the statement text (copied) and model (static, or
 * NULL), ended when d fires; returns d. */
dorm_deferred *dorm__db_obs_aside(dorm_db *root, dorm_deferred *d,
                                  const char *text, const char *model);
/* The streams running (db_iterate.c), for dorm_db_stats. */
size_t dorm__db_streams(const dorm_db *root);
/* d, the deferred of dorm_listen / dorm_unlisten (verb "LISTEN" or
 * "UNLISTEN"), shown to the hooks as a request; returns d. */
dorm_deferred *dorm__db_obs_listen(dorm_db *root, dorm_deferred *d,
                                   const char *verb, const char *channel);
/* The slots' roles, from the backend (dorm_db_open). */
void dorm__db_obs_open(dorm_db *root);
/* The $DORM_LOG hook, added by dorm_db_open when the variable is set. */
void dorm__db_log_install(dorm_db *root);
/* ---- bulk writes (db_bulk.c) --------------------------------------------- */

/* bulk_create by COPY: 1 when it takes the call (*out its deferred, NULL
 * when out of memory), 0 when the insert goes the INSERT way (a backend
 * without COPY, a small insert, no COPY form). */
int dorm__db_bulk_copy(dorm_db *db, const dorm_query *q, dorm_deferred **out);

/* ---- prefetch_related (db_prefetch.c) ----------------------------------- */

typedef struct dorm__prefetch dorm__prefetch;

/* What a read needs to prefetch q's relations once it has its rows (a
 * copy: q may be freed when the call returns), or NULL when out of
 * memory. */
dorm__prefetch *dorm__db_prefetch_new(dorm_db *db, const dorm_query *q);
void dorm__db_prefetch_free(dorm__prefetch *p);
/* Add the prefetch steps to d, the main read's new deferred, and return
 * it; p is d's from now on (freed when d's chain is done).  p NULL:
 * returns d as it is; d NULL: frees p, returns NULL. */
dorm_deferred *dorm__db_prefetch_after(dorm__prefetch *p, dorm_deferred *d);

/* A copy of p for another read of the same relations (one per chunk of
 * a stream), or NULL when out of memory. */
dorm__prefetch *dorm__db_prefetch_copy(const dorm__prefetch *p);

/* ---- streaming reads (db_iterate.c) ------------------------------------- */

/* dorm_db_close: fail every stream of root with DORM_ECLOSED and stop
 * it (before the backend is closed). */
void dorm__db_iters_close(dorm_db *root);

/* ---- transactions (db_tx.c) --------------------------------------------- */

/* Fail a transaction that waited for a writer (the database is closing). */
void dorm__db_atx_fail_waiting(struct atx *a);

/* Atomic means atomic: the first request of a transaction handle that
 * fails dooms its block (it will roll back and fail with that error).
 *
 * 1 when a request on tx must be refused because its block (or one
 * enclosing it) is doomed; *out is then the DORM_ETXABORTED to fail it
 * with. */
int dorm__db_tx_refuse(dorm_db *tx, dorm_result *out);
/* A request made on tx failed before it was sent (res borrowed). */
void dorm__db_tx_failed(dorm_db *tx, const dorm_result *res);
/* o, a request of transaction handle o->db, is sent: it belongs to its
 * block until dorm__db_tx_op_gone. */
void dorm__db_tx_sent(op *o);
/* o came back with *res (shaped, owned by the caller): a failure dooms
 * the block; in a doomed block the result becomes DORM_ETXABORTED. */
void dorm__db_tx_op_done(op *o, dorm_result *res);
/* o's deferred was cancelled (or timed out): that dooms its block. */
void dorm__db_tx_op_cancelled(op *o);
/* A request of block a is over (answered, or failed by dorm_db_close): the
 * block may end now. */
void dorm__db_tx_op_gone(struct atx *a);

#endif
