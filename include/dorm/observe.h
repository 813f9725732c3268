/* SPDX-License-Identifier: MIT */
/* dorm/observe.h — seeing what a database does: query hooks (a callback
 * when each request starts and ends, with its statement, kind, model,
 * connection, timings, rows and error), cheap statistics read at any
 * time (dorm_db_stats), a query counter for assertNumQueries-style tests,
 * and the statement log driven by $DORM_LOG (docs/observability.md).
 *
 *     static void on_end(const dorm_query_event *ev, void *arg, void *user) {
 *       if (ev->exec_ns > 100 * 1000000ull)
 *         fprintf(stderr, "slow (%.1f ms): %.*s\n", ev->exec_ns / 1e6,
 *                 (int)ev->sql_len, ev->sql);
 *     }
 *     dorm_hook *h = dorm_db_add_hook(db, NULL, on_end, NULL, 0);
 *     ...
 *     dorm_db_remove_hook(db, h);
 *
 * RULES
 *   - Every function here, and every hook, runs on the loop thread.
 *   - A request is what one connection runs for one call (one or more
 *     statements: a bulk insert in chunks, dorm_async_execute_many); the
 *     facade's own statements count too: BEGIN / COMMIT / SAVEPOINT of
 *     dorm_async_atomic (kind DORM_STMT_TX) and the position read after a
 *     write when there are replicas (internal = 1).  dorm_listen and
 *     dorm_unlisten are requests too (kind DORM_STMT_LISTEN, on
 *     PostgreSQL's listener connection: conn is dorm_stats.nconns).
 *   - A hook's start runs when the request is handed to a connection (its
 *     queue wait is then over), its end when the answer is back, exactly
 *     once each for every request, in that order.  A read on a replica
 *     that lost its server and is sent once more elsewhere is one request
 *     (retried = 1; the end names where it finally ran).  A request the
 *     database never received (it did not compile, the queue was full, the
 *     database was closed) fires no hook.
 *   - dorm_db_close ends every request still out (code DORM_ECLOSED) and
 *     from the moment it returns no hook of that database runs again; the
 *     hooks are freed with the database.
 *   - A hook must be quick and must not make requests on the database or
 *     close it (it runs inside the facade's bookkeeping): count, copy,
 *     or schedule work for later (a dorm_wakeup, a timer).
 *   - Parameter values are secrets until you ask: ev->params and
 *     ev->message (a database's error text may quote a value) are NULL
 *     unless the hook was added with DORM_HOOK_VALUES.
 *   - Cost: with no hook a request costs one untaken branch more; with
 *     hooks, two clock reads and the calls (docs/performance.md, B2).
 */
#ifndef DORM_OBSERVE_H
#define DORM_OBSERVE_H

#include <stddef.h>
#include <stdint.h>

#include "dorm/db.h"
#include "dorm/value.h"
#include "dorm/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------
 * Query hooks
 * ------------------------------------------------------------------- */

/* What a request does, from its first statement's first keyword (a
 * compiled query: from the call). */
typedef enum dorm_stmt_kind {
  DORM_STMT_READ = 1, /* SELECT, WITH, VALUES, SHOW, EXPLAIN, PRAGMA */
  DORM_STMT_WRITE,    /* INSERT, UPDATE, DELETE, REPLACE, MERGE, COPY */
  DORM_STMT_DDL,      /* CREATE, ALTER, DROP, TRUNCATE, COMMENT, ... */
  DORM_STMT_TX,       /* BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE */
  DORM_STMT_LISTEN,   /* LISTEN, UNLISTEN, NOTIFY */
  DORM_STMT_OTHER     /* anything else (SET, VACUUM, ANALYZE, ...) */
} dorm_stmt_kind;
#define DORM_STMT_KINDS 7 /* array size for counts indexed by kind */

/* "read", "write", "ddl", "tx", "listen", "other"; "?" otherwise. */
DORM_EXTERN const char *dorm_stmt_kind_name(int kind);

/* Which connection a request ran on. */
typedef enum dorm_conn_role {
  DORM_ROLE_PRIMARY = 1,   /* PostgreSQL: the primary's pool */
  DORM_ROLE_REPLICA,       /* PostgreSQL: a read replica's pool */
  DORM_ROLE_SQLITE_WRITER, /* SQLite: the writer thread (or the only one) */
  DORM_ROLE_SQLITE_READER  /* SQLite: a reader thread */
} dorm_conn_role;

/* "primary", "replica", "writer", "reader"; "?" otherwise. */
DORM_EXTERN const char *dorm_conn_role_name(int role);

/* One request, as a hook sees it.  Everything is borrowed for the call
 * only.  Fields marked "end" are 0 / NULL in the start call. */
typedef struct dorm_query_event {
  const char *sql; /* the first statement, in the backend's dialect */
  size_t sql_len;
  size_t nstatements; /* statements in the request (usually 1) */
  size_t nparams;     /* parameters of the first statement */
  /* the first statement's parameters (nparams): NULL unless the hook was
   * added with DORM_HOOK_VALUES */
  const dorm_value *params;
  int kind;            /* dorm_stmt_kind */
  const char *model;   /* the model's name when a query made it, or NULL */
  const char *backend; /* "postgresql", "sqlite" */
  int role;            /* dorm_conn_role */
  size_t replica;      /* DORM_ROLE_REPLICA: which one, from 1 (the order
                          of the replicas option); else 0 */
  size_t conn;         /* the connection slot (dorm_db_conn_stats) */
  int pgbouncer;       /* 1: the server is reached through PgBouncer */
  int in_transaction;  /* made inside dorm_async_atomic */
  int internal;        /* the facade's own (read-your-writes position) */
  uint64_t start_ns;   /* CLOCK_MONOTONIC when the request was made */
  uint64_t queue_ns;   /* made -> handed to its connection */
  /* ---- end ---- */
  uint64_t exec_ns;     /* handed to its connection -> answered */
  int64_t rows;         /* rows returned (reads, RETURNING) or affected; -1:
                           none (an error, a statement without a count) */
  int code;             /* 0, or the DORM_E* code the request failed with
                           (DORM_ECANCELED / DORM_ETIMEDOUT when its deferred
                           was cancelled or timed out, whatever the server
                           answered) */
  const char *sqlstate; /* "" or the SQLSTATE */
  const char *message;  /* the error text: NULL unless DORM_HOOK_VALUES */
  int retried;          /* a replica read sent once more elsewhere */
} dorm_query_event;

/* Called when a request is handed to its connection.  *user starts
 * NULL; what you store there is given to the end call of the same
 * request (a tracing span, a start time). */
typedef void (*dorm_hook_start_fn)(const dorm_query_event *ev, void *arg,
                                   void **user);
/* Called once when the same request is answered (or failed by close). */
typedef void (*dorm_hook_end_fn)(const dorm_query_event *ev, void *arg,
                                 void *user);

typedef struct dorm_hook dorm_hook;

/* Flags of dorm_db_add_hook. */
#define DORM_HOOK_VALUES 1u /* give params and message (may be secrets) */

/* At most this many hooks per database (the $DORM_LOG one included). */
#define DORM_HOOKS_MAX 8

/* Register start and end (either may be NULL) with arg on db's database
 * (a transaction handle or dorm_db_primary view means its database).
 * Requests handed to a connection from now on are seen.  Returns the
 * hook (the database's; pass it to dorm_db_remove_hook), or NULL: db
 * NULL or closed, both functions NULL, unknown flags, or DORM_HOOKS_MAX
 * hooks already. */
DORM_EXTERN dorm_hook *dorm_db_add_hook(dorm_db *db, dorm_hook_start_fn start,
                                        dorm_hook_end_fn end, void *arg,
                                        unsigned flags);
/* Stop h: no request starts with it from now on; the requests it saw
 * start still get their end call (so spans close), then it is gone.
 * Removing a hook twice, or one of another database, does nothing. */
DORM_EXTERN void dorm_db_remove_hook(dorm_db *db, dorm_hook *h);

/* ---------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------- */

/* failed_by_code is indexed by -code (DORM_EDB, -15, at 15); codes
 * beyond it are counted at 0. */
#define DORM_STATS_CODES 32

/* Counters of a database since it was opened; requests as for hooks. */
typedef struct dorm_stats {
  uint64_t started;   /* requests handed to a connection */
  uint64_t succeeded; /* answered without error */
  uint64_t failed;    /* answered with an error (cancelled ones included) */
  uint64_t cancelled; /* their deferred was cancelled */
  uint64_t timed_out; /* their deferred timed out (dorm_deferred_timeout) */
  uint64_t retried;   /* replica reads sent once more elsewhere */
  uint64_t failed_by_code[DORM_STATS_CODES];
  uint64_t by_kind[DORM_STMT_KINDS]; /* started, by dorm_stmt_kind */
  uint64_t reads_primary; /* reads sent to the primary (PostgreSQL, with
                             replicas: read-your-writes, none usable) */
  uint64_t reads_replica; /* reads sent to a replica */
  size_t in_flight;       /* handed to a connection, not answered */
  size_t queued;          /* waiting for a writer (a transaction holds it) */
  size_t nconns;          /* connection slots: dorm_conn_stats */
  size_t nreplicas;       /* replicas: dorm_replica_stats */
  /* SQLite: requests queued or running on the writer thread, and on the
   * reader threads together (both 0 for PostgreSQL) */
  size_t sqlite_writer_queue, sqlite_reader_queue;
  size_t hooks; /* hooks registered */
  /* dorm_async_iterate streams running, each on a connection of its own
   * beside the slots (dorm/iterate.h) */
  size_t streams;
} dorm_stats;

/* A connection's state (PostgreSQL; SQLite's threads are READY). */
typedef enum dorm_conn_state {
  DORM_CONN_DOWN = 0,   /* not connected (connects when work arrives) */
  DORM_CONN_CONNECTING, /* connecting */
  DORM_CONN_READY,      /* connected */
  DORM_CONN_BACKOFF,    /* failed; waiting before trying again */
  DORM_CONN_CLOSED      /* closing */
} dorm_conn_state;

/* "down", "connecting", "ready", "backoff", "closed"; "?" otherwise. */
DORM_EXTERN const char *dorm_conn_state_name(int state);

typedef struct dorm_conn_stats {
  int role;                 /* dorm_conn_role */
  size_t replica;           /* DORM_ROLE_REPLICA: which one, from 1; else 0 */
  int state;                /* dorm_conn_state */
  int pgbouncer;            /* 1: through PgBouncer */
  int pinned;               /* a transaction holds it now */
  size_t in_flight;         /* requests on it, queued or running */
  size_t statements_cached; /* prepared statements it keeps */
  uint64_t reconnects;      /* times it connected again after being up */
  uint64_t requests;        /* requests handed to it */
} dorm_conn_stats;

typedef struct dorm_replica_stats {
  int usable;       /* it would take a read now (up, and within the lag
                       bound) */
  int lag_known;    /* a probe has measured its lag */
  uint64_t lag_ms;  /* as of its last probe */
  uint64_t reads;   /* reads sent to it */
  uint64_t skipped; /* times a read passed it over (down, lagging, or not
                       yet replayed the caller's write) */
} dorm_replica_stats;

/* Fill *s (db: any handle of the database).  0, or DORM_EINVAL for NULL
 * arguments.  A closing database (dorm_db_close called, its callback not
 * yet run) still answers, with its last figures. */
DORM_EXTERN int dorm_db_stats(dorm_db *db, dorm_stats *s);
/* Connection slot i (0 <= i < s.nconns).  0 or DORM_EINVAL. */
DORM_EXTERN int dorm_db_conn_stats(dorm_db *db, size_t i, dorm_conn_stats *c);
/* Replica n (1 <= n <= s.nreplicas).  0 or DORM_EINVAL. */
DORM_EXTERN int dorm_db_replica_stats(dorm_db *db, size_t n,
                                      dorm_replica_stats *r);

/* ---------------------------------------------------------------------
 * Counting queries in tests (Django's assertNumQueries)
 * ------------------------------------------------------------------- */

/* How many statements the code under test ran:
 *
 *     dorm_query_counter qc;
 *     dorm_query_counter_start(&qc, db);
 *     ... run the code, spin the loop until it is done ...
 *     dorm_query_counter_stop(&qc);
 *     assert(qc.queries == 2);  // qc.last_sql says what ran last
 *
 * Counts requests that ended while it ran, the facade's internal ones
 * excluded; a request of several statements counts each one (a chunked
 * bulk insert is as many queries as chunks), as Django counts them.
 * The counter is the caller's (a stack variable is fine) and must stay
 * valid until stop. */
typedef struct dorm_query_counter {
  dorm_db *db;
  dorm_hook *hook;
  uint64_t queries;                  /* statements ended */
  uint64_t by_kind[DORM_STMT_KINDS]; /* the same, by dorm_stmt_kind */
  uint64_t failed;                   /* requests that ended with an error */
  char last_sql[256];                /* the last one's text, cut */
} dorm_query_counter;

/* Zero c and start counting on db.  0, DORM_EINVAL, or DORM_ENOMEM when
 * DORM_HOOKS_MAX hooks are registered already. */
DORM_EXTERN int dorm_query_counter_start(dorm_query_counter *c, dorm_db *db);
/* Stop counting (the figures stay); returns c->queries.  Call it before
 * the database is closed, or not at all after. */
DORM_EXTERN uint64_t dorm_query_counter_stop(dorm_query_counter *c);

/* ---------------------------------------------------------------------
 * The statement log ($DORM_LOG)
 * ------------------------------------------------------------------- */

/* Every dorm_db_open reads the environment (once per process) and, when
 * DORM_LOG is set, adds a hook that writes one line per request on
 * stderr:
 *   DORM_LOG=all          every request
 *   DORM_LOG=slow=100ms   only those that took longer (queue wait and
 *                         execution); units us, ms, s
 *   DORM_LOG_FORMAT=json  JSON lines instead of text
 *   DORM_LOG_VALUES=1     with the parameter values and error texts
 * An unreadable DORM_LOG is reported once on stderr, naming the value,
 * and nothing is logged.  The line formats: docs/observability.md. */

#ifdef __cplusplus
}
#endif

#endif /* DORM_OBSERVE_H */
