/* SPDX-License-Identifier: MIT */
/* backends/pg/pg_int.h — private structures of the PostgreSQL backend
 * (pg.c: the pool and the backend table; pg_conn.c: one connection;
 * pg_wire.c: the wire codec, pg_wire.h; pg_stmt_cache.c: prepared
 * statements; pg_listen.c: LISTEN/NOTIFY).
 *
 * A pool owns N connections ("slots" for the facade) to the primary, n more
 * to each read replica (pg_node.c: the servers, their health and lag) and,
 * once dorm_listen is used, one more connection to the primary for
 * notifications.  Every connection runs
 * libpq in non-blocking pipeline mode on the loop: a request's statements
 * are appended to libpq's output buffer when the request is dispatched,
 * each followed by a Sync so an error aborts only that request, and the
 * buffer is flushed once per loop turn (or when a read made room).  What
 * was sent is remembered as a FIFO of pipeline entries (prepare, execute,
 * sync) so every result libpq hands back is matched to the statement that
 * produced it.
 *
 * The pool can be used without the facade (tests/test_pg.c does): the
 * pool reports "connected" and "closed" through the callbacks given to
 * dorm__pg_pool_open, which the backend table points at the facade.
 *
 * Everything here runs on the loop thread, except the cancel job (a
 * PGcancel and nothing else crosses to a worker thread).
 */
#ifndef DORM_PG_INT_H
#define DORM_PG_INT_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend_int.h"
#include "backends/pg/pg_wire.h"
#include "base/base_int.h"

typedef struct dorm__pg_pool dorm__pg_pool;
typedef struct dorm__pg_conn dorm__pg_conn;
typedef struct dorm__pg_node dorm__pg_node;
typedef struct dorm__pg_listener dorm__pg_listener;

/* ---- configuration (pg.c) ------------------------------------------------ */

typedef struct dorm__pg_config {
  /* NULL-terminated keyword / value arrays for PQconnectStartParams: the
   * user's options as PQconninfoParse read them, plus ours
   * (client_encoding, TimeZone, fallback_application_name).  Owned. */
  const char **keys;
  const char **vals;
  size_t nkeys;
  uint64_t connect_timeout_ms; /* our own: libpq ignores it when polling */
  int pool_size;
  /* PgBouncer transaction pooling: no named prepared statements, no
   * session state (no startup options; date-times are sent with their
   * offset), one Sync in flight per connection. */
  int pgbouncer;
  /* A connection with requests in flight that hears nothing for this
   * long is dropped as silent (0: never).  The option or the URI
   * parameter answer_timeout_ms. */
  uint64_t answer_timeout_ms;
} dorm__pg_config;

/* Parse url (postgresql:// or postgres:// URI, or a keyword string) and
 * opts into cfg (the answer deadline from opts->answer_timeout_ms: the
 * caller puts a replica's there).  dorm's own URI parameters (pool_size,
 * pgbouncer, answer_timeout_ms) are
 * taken out before libpq sees the URI.  0, or DORM_EURL / DORM_ENOMEM
 * with err filled. */
int dorm__pg_config_parse(const char *url, const dorm_db_options *opts,
                          dorm__pg_config *cfg, dorm_error *err);
/* Split a comma-separated list of URIs (dorm_db_options.replicas,
 * DATABASE_REPLICA_URLS).  A comma starts a new URL only when a
 * postgresql:// or postgres:// scheme follows, so a multi-host URI
 * (postgresql://h1:5432,h2:5432/db) stays whole.  *out is an owned array
 * of owned strings (dorm__pg_urls_free).  0, DORM_EURL (a part is not a
 * URI) or DORM_ENOMEM, err filled. */
int dorm__pg_split_urls(const char *list, char ***out, size_t *n,
                        dorm_error *err);
void dorm__pg_urls_free(char **urls, size_t n);
void dorm__pg_config_free(dorm__pg_config *cfg);

/* ---- multi-host lists (pg_hosts.c) --------------------------------------- */

/* Hosts in cfg's host (or hostaddr) list: 1 for a single host. */
size_t dorm__pg_host_count(const dorm__pg_config *cfg);
/* cfg's keyword arrays with the host, hostaddr and port lists rotated to
 * start at host `first` (NULL-terminated; *owned holds the rotated
 * strings).  0 or DORM_ENOMEM.  Free with dorm__pg_hosts_free. */
int dorm__pg_hosts_rotated(const dorm__pg_config *cfg, size_t first,
                           const char ***keys, const char ***vals,
                           char ***owned);
void dorm__pg_hosts_free(const char **keys, const char **vals, char **owned,
                         size_t nkeys);
/* The position, in an attempt that started at host `first`, of the host
 * libpq reports (PQhost, PQport); 0 when it cannot be told. */
size_t dorm__pg_host_index(const dorm__pg_config *cfg, size_t first,
                           const char *host, const char *port);

/* ---- one connection (pg_conn.c) ------------------------------------------ */

typedef enum dorm__pg_state {
  DORM__PG_DOWN = 0,   /* no connection; one starts when work arrives */
  DORM__PG_CONNECTING, /* PQconnectPoll running */
  DORM__PG_READY,      /* pipeline mode, requests flow */
  DORM__PG_BACKOFF,    /* waiting before the next attempt */
  DORM__PG_CLOSED      /* pool closing: nothing more */
} dorm__pg_state;

/* What was sent, in order.  Results come back in this order. */
typedef enum dorm__pg_entry_kind {
  DORM__PG_E_PREPARE, /* PQsendPrepare of a cached statement */
  DORM__PG_E_EXEC,    /* one statement of the head request */
  DORM__PG_E_SYNC,    /* a Sync: the head request's end (sce = the request),
                         or a prepare's or a group's (sce NULL) */
  DORM__PG_E_END      /* no message: a grouped request ends here */
} dorm__pg_entry_kind;

/* A prepared statement of one connection (pg_stmt_cache.c). */
typedef struct dorm__pg_stmt_cache_entry {
  uint64_t hash;
  char *sql; /* owned; the key, with types */
  size_t len;
  Oid *types; /* owned, ntypes */
  size_t ntypes;
  char name[24]; /* the name it is prepared under */
  enum {
    DORM__PG_SCE_NEW,     /* never prepared (or forgotten by the server) */
    DORM__PG_SCE_PENDING, /* its prepare is sent */
    DORM__PG_SCE_READY,
    DORM__PG_SCE_FAILED
  } state;
  /* why the last prepare failed: given to executions that relied on it */
  char fail_state[6];
  char *fail_msg; /* owned or NULL */
} dorm__pg_sce;

typedef struct dorm__pg_entry {
  dorm__pg_entry_kind kind;
  dorm__pg_sce *sce; /* PREPARE: the statement being prepared */
} dorm__pg_entry;

/* Per-request flags kept in req->backend_data (no allocation per query). */
enum dorm__pg_req_flags {
  DORM__PG_R_CANCELLED = 1u, /* give DORM_ECANCELED whatever comes back */
  DORM__PG_R_INTERNAL = 2u,  /* the backend's own (LISTEN): not counted */
  DORM__PG_R_GROUPED = 4u    /* shares a Sync with its neighbours */
};

struct dorm__pg_conn {
  dorm__pg_pool *pool;
  dorm__pg_node *node; /* the server it connects to */
  size_t index;        /* slot number; the listener is pool->nconns */
  dorm__pg_state state;
  PGconn *pg;
  dorm_poll *poll;
  int fd;            /* the socket poll watches (-1 none) */
  int interest;      /* DORM_READABLE / DORM_WRITABLE asked of poll */
  dorm_timer *timer; /* connect timeout, or backoff */
  /* multi-host URLs: the host this attempt starts at, and how many hosts
   * timed out since the last success or failure (pg_hosts.c) */
  size_t host_first, hosts_timed_out;
  uint64_t backoff_ms;
  int ever_ready;  /* reached READY at least once */
  int had_failure; /* the last attempt failed: fail queued work at once */
  char last_error[256];

  /* requests not sent yet, in order (linked through req->next) */
  dorm__req *wait_head, *wait_tail;
  size_t nwait;
  /* requests sent, in order; the head is the one results belong to */
  dorm__req *fly_head, *fly_tail;
  size_t nfly;
  /* pipeline entries, a ring */
  dorm__pg_entry *ring;
  size_t ring_cap, ring_head, ring_count; /* ring_cap: 0 or a power of 2 */

  /* the head request's progress */
  size_t cur_stmt;      /* statements of the head finished */
  dorm_result cur;      /* its result so far (NONE, rows, count, error) */
  int64_t cur_sum;      /* DORM__REQ_SUM_COUNTS */
  int cur_failed;       /* cur holds an error */
  int cur_done_reading; /* every EXEC of the head has been read */

  /* prepared statements of this connection, by SQL text + parameter types */
  dorm__pg_sce **cache;
  size_t cache_cap, cache_count;
  dorm__pg_sce *mru; /* the entry found last (NULL after cache_clear) */
  unsigned long next_name;

  /* parameters, encoded (pg_wire.c; reused, grows to the largest
   * statement) */
  dorm__pg_params params;

  /* cancel: a PQcancel job is running on a worker thread; hold: nothing
   * new is sent until the cancelled request has its answer */
  int cancel_running;
  int hold;
  int tx_open; /* a transaction is open (BEGIN seen at the last sync) */
  /* pure reads sent since the last Sync, and the ones a neighbour's error
   * aborted (sent again, in order, once that Sync is back) */
  size_t group_n;
  int cur_retry;
  dorm__req *retry_head, *retry_tail;

  int dirty; /* output waiting for the end-of-turn flush */
  dorm__pg_conn *dirty_next;
  int counted_fail; /* its first failure was counted for readiness */
  /* the answer deadline (READY: `timer` is free for it): when the server
   * was last heard from, or when the pipeline stopped being empty */
  uint64_t heard_ms;
  int deadline_armed;
  int is_listener;
  uint64_t reconnects; /* READY again after having been (dorm/observe.h) */
  /* a COPY running (pg_copy.c): the connection is out of pipeline mode,
   * the COPY request alone in flight */
  struct dorm__pg_copy *copy;
};

dorm__pg_conn *dorm__pg_conn_new(dorm__pg_pool *pool, dorm__pg_node *node,
                                 size_t index);
/* Queue req (the pool's submit); dispatched now or when connected. */
void dorm__pg_conn_submit(dorm__pg_conn *c, dorm__req *req);
/* Cancel req if it is queued or in flight on c (the facade's canceller).
 * A queued request completes with DORM_ECANCELED on the next turn; one in
 * flight completes with DORM_ECANCELED when the server has answered, and
 * if it is the only request in flight the server is asked to stop it. */
void dorm__pg_conn_cancel(dorm__pg_conn *c, dorm__req *req);
/* Start connecting if down (used at open). */
void dorm__pg_conn_kick(dorm__pg_conn *c);
/* Flush libpq's output (the end-of-turn flush). */
void dorm__pg_conn_flush(dorm__pg_conn *c);
/* Closing: fail everything with DORM_ECLOSED (through the pool's
 * completion queue), PQfinish, close the watcher and timer.  Frees c. */
void dorm__pg_conn_destroy(dorm__pg_conn *c);
/* Requests waiting or in flight. */
size_t dorm__pg_conn_load(const dorm__pg_conn *c);

/* A COPY request's end (pg_copy.c): back in pipeline mode, complete it
 * with res and send what waits. */
void dorm__pg_conn_copy_done(dorm__pg_conn *c, dorm_result res);
/* The connection broke (pg_copy.c): as any loss. */
void dorm__pg_conn_lost(dorm__pg_conn *c, const char *why);

/* ---- COPY FROM STDIN (pg_copy.c) ------------------------------------------
 */

typedef struct dorm__pg_copy dorm__pg_copy;
/* Start req (DORM__REQ_COPY), already on c's fly list with nothing else
 * in flight: leave pipeline mode and send the COPY.  0, or -1 when libpq
 * refused (the caller drops the connection). */
int dorm__pg_copy_start(dorm__pg_conn *c, dorm__req *req);
/* Move the COPY on: send rows, read the answer; at the end
 * dorm__pg_conn_copy_done (or dorm__pg_conn_lost). */
void dorm__pg_copy_io(dorm__pg_conn *c);
/* Free the COPY's state (the connection is lost or closing). */
void dorm__pg_copy_drop(dorm__pg_conn *c);
/* 1 when the statement s[0..n) is a COPY (after blanks and comments):
 * such a statement never goes through the pipeline, where libpq would
 * be stuck in its COPY state. */
int dorm__pg_is_copy(const char *s, size_t n);
/* One value in COPY's text format, appended to b.  0, DORM_ENOMEM, or
 * DORM_ETYPE with why filled (text with a NUL byte, a list). */
int dorm__pg_copy_encode(dorm__buf *b, const dorm_value *v, char *why,
                         size_t whylen);

/* ---- prepared statements (pg_stmt_cache.c) ------------------------------- */

/* c's entry for (sql, types), added (DORM__PG_SCE_NEW) if new.  NULL when
 * the statement goes unnamed: the cache is full, out of memory, or the
 * server is PgBouncer (a statement prepared on one server connection is
 * unknown on the next).  The entry is c's, valid until a reset. */
dorm__pg_sce *dorm__pg_cache_get(dorm__pg_conn *c, const char *sql, size_t len,
                                 const Oid *types, size_t n);
/* The session ended: every entry goes, names start again. */
void dorm__pg_cache_reset(dorm__pg_conn *c);
/* The connection is freed: the entries and the table go. */
void dorm__pg_cache_free(dorm__pg_conn *c);
/* 1 when e must be prepared before it runs (new, or its prepare failed). */
int dorm__pg_sce_must_prepare(const dorm__pg_sce *e);
/* e's prepare is about to be sent: its new name (e's), and it is
 * pending. */
const char *dorm__pg_sce_preparing(dorm__pg_conn *c, dorm__pg_sce *e);
/* e's prepare answered: err NULL when it succeeded, else its error
 * (borrowed; kept for the executions that relied on the prepare). */
void dorm__pg_sce_prepared(dorm__pg_sce *e, const dorm_result *err);
/* An execution of e failed with SQLSTATE state (NULL: none).  1 with *out
 * (the caller's) the real error when the cause was e's failed prepare;
 * else 0.  A statement the server no longer has, or whose plan went
 * stale, is prepared again next time. */
int dorm__pg_sce_exec_failed(dorm__pg_sce *e, const char *state,
                             dorm_result *out);

/* ---- servers (pg_node.c) ------------------------------------------------- */

/* One server: the primary (node 0, the URL given to dorm_db_open) or a
 * read replica.  Its connections are the slots first .. first + n - 1.
 * A node's health and replay position are read by a probe, one small
 * query sent every check interval on the node's first connection; a
 * replica is used for reads only once a probe has answered, while none of
 * its connections has failed since, and while it is not lagging beyond
 * the configured bound. */
struct dorm__pg_node {
  dorm__pg_pool *pool;
  size_t index;                /* 0: the primary */
  dorm__pg_config own;         /* a replica's configuration */
  const dorm__pg_config *cfg;  /* &pool->cfg (primary) or &own */
  size_t first, n;             /* its slots */
  int down;                    /* a connection failed, none came up since */
  int probing;                 /* a probe is in flight */
  int probed;                  /* a probe answered since it came up, and
                                  recently (probe_tick clears it) */
  int in_recovery;             /* the last probe said so */
  uint64_t lsn;                /* replay (replica) or current (primary) */
  uint64_t lag_ms;             /* a replica's, as of its last probe */
  uint64_t probed_at;          /* when the last probe answered (ms) */
  dorm__req probe;             /* internal request, reused */
  dorm__stmt probe_stmt;
};

/* Start the probes (a repeating timer) when there are replicas. */
int dorm__pg_nodes_start(dorm__pg_pool *p);
/* A connection of node went down (failed attempt or loss) or came up. */
void dorm__pg_node_conn_state(dorm__pg_node *node, int up);
/* May slot conn serve a read that must see min_lsn (0: any)?  The
 * primary's slots always may. */
int dorm__pg_slot_usable(dorm__pg_pool *p, size_t conn, uint64_t min_lsn);
/* "16/B374D848" -> 0x16B374D848; 0 when s is not an LSN. */
uint64_t dorm__pg_parse_lsn(const char *s);
/* Stop the probes (closing). */
void dorm__pg_nodes_stop(dorm__pg_pool *p);

/* ---- the pool (pg.c) ----------------------------------------------------- */

typedef void (*dorm__pg_ready_fn)(void *arg, const dorm_error *err);
typedef void (*dorm__pg_closed_fn)(void *arg);

struct dorm__pg_pool {
  dorm_loop *loop;
  dorm__pg_config cfg;
  dorm__pg_ready_fn on_ready;
  dorm__pg_closed_fn on_closed;
  void *cb_arg;
  dorm_db *db; /* the facade's handle (NULL when used directly): what
                  notifications are delivered with */

  dorm__pg_conn **conns; /* the primary's slots, then each replica's */
  size_t nconns;
  dorm__pg_node *nodes; /* nodes[0] is the primary (its cfg is cfg) */
  size_t nnodes;
  size_t nprimary; /* the primary's slots: 0 .. nprimary - 1 */
  /* probes and lag (pg_node.c) */
  dorm_timer *probe_timer;
  uint64_t check_ms, max_lag_ms;
  struct dorm__pg_lsn_sample {
    uint64_t lsn, at_ms;
  } *samples; /* the primary's positions as probes saw them, a ring */
  size_t samples_cap, samples_head, samples_count;
  int ready_reported;
  size_t first_failures;

  /* completions that must not run inside the call that caused them
   * (a cancel, close) run from `tick` on the next turn */
  dorm__req *done_head, *done_tail;
  dorm_wakeup *tick;
  int tick_armed;
  dorm__pg_conn *dirty_head; /* connections with output to flush */

  int in_cb;     /* inside one of our loop callbacks: done may run now */
  int no_direct; /* inside submit / cancel: done must wait a turn */
  int closing;
  int close_step; /* teardown has run */
  size_t jobs;    /* cancel jobs on worker threads */

  dorm__pg_listener *listener; /* pg_listen.c, NULL until used */
  size_t rr;                   /* round robin for dorm__pg_pool_pick */
};

/* Open a pool (never blocks).  on_ready runs once, on a later turn: err
 * NULL when the first connection is up, else why none could be made.
 * on_closed runs after dorm__pg_pool_close once everything is released
 * (pool freed).  0, or an error code with err filled. */
int dorm__pg_pool_open(dorm_loop *loop, const char *url,
                       const dorm_db_options *opts, dorm__pg_ready_fn on_ready,
                       dorm__pg_closed_fn on_closed, void *cb_arg,
                       dorm__pg_pool **out, dorm_error *err);
void dorm__pg_pool_submit(dorm__pg_pool *p, size_t conn, dorm__req *req);
void dorm__pg_pool_cancel(dorm__pg_pool *p, size_t conn, dorm__req *req);
/* The least loaded slot (ties: round robin). */
size_t dorm__pg_pool_pick(dorm__pg_pool *p);
void dorm__pg_pool_close(dorm__pg_pool *p);

/* Called by connections. */
/* Complete req with res on the next turn (not now). */
void dorm__pg_pool_complete_later(dorm__pg_pool *p, dorm__req *req,
                                  dorm_result res);
/* c has output for the end-of-turn flush. */
void dorm__pg_pool_mark_dirty(dorm__pg_pool *p, dorm__pg_conn *c);
/* Flush every dirty connection now (end of an I/O callback). */
void dorm__pg_pool_flush_dirty(dorm__pg_pool *p);
/* A connection attempt ended (err NULL: up). */
void dorm__pg_pool_conn_event(dorm__pg_pool *p, dorm__pg_conn *c,
                              const char *err);
/* A cancel job started / ended. */
void dorm__pg_pool_job(dorm__pg_pool *p, int delta);

/* ---- streaming reads (pg_stream.c) -------------------------------------- */

/* The backend table's stream entries (backend_int.h): a cursor on a
 * connection of the stream's own. */
int dorm__pg_stream_start(dorm__pg_pool *p, dorm__stream *s, dorm_error *err);
void dorm__pg_stream_more(dorm__pg_pool *p, dorm__stream *s);
void dorm__pg_stream_stop(dorm__pg_pool *p, dorm__stream *s);

/* ---- LISTEN / NOTIFY (pg_listen.c) --------------------------------------- */

/* The backend table's listen and unlisten entries (backend_int.h). */
dorm_deferred *dorm__pg_listen(dorm__pg_pool *p, const char *channel,
                               dorm_notify_fn fn, void *arg);
dorm_deferred *dorm__pg_unlisten(dorm__pg_pool *p, const char *channel,
                                 dorm_notify_fn fn, void *arg);

/* The listener connection (re)connected: LISTEN again, tell of the gap. */
void dorm__pg_listen_connected(dorm__pg_pool *p, int reconnect);
/* Deliver what PQnotifies has for the listener connection. */
void dorm__pg_listen_drain(dorm__pg_pool *p, PGconn *pg);
/* Pool closing: drop subscriptions (no callback runs afterwards). */
void dorm__pg_listen_free(dorm__pg_pool *p);

#endif /* DORM_PG_INT_H */
