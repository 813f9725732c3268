/* SPDX-License-Identifier: MIT */
/* backends/backend_int.h — the private contract between the database
 * facade (backends/db*.c) and each backend (sqlite/sqlite.c, pg/pg*.c), and the
 * row builder they share (rows_build.c).
 *
 * The facade does everything that is the same for every database: it
 * compiles queries, routes reads and writes to connections, pins one
 * connection for a transaction, implements get / get_or_create /
 * update_or_create / bulk_create on top of plain statements, maps errors,
 * and fires deferreds.  A backend only runs statements: it is a table of
 * functions (dorm__backend) that opens connections, runs a request (one or
 * more statements, in order, on one connection) and hands the request back
 * on the loop thread with its result.
 *
 * A backend exposes its connections as numbered slots with flags
 * (DORM__CONN_READ / DORM__CONN_WRITE).  The facade sends reads to a slot
 * with READ, writes to a slot with WRITE, and a transaction pins one WRITE
 * slot: while it is pinned only that transaction's requests are sent to it
 * (BEGIN/COMMIT/ROLLBACK/SAVEPOINT are ordinary statements of those
 * requests).  Requests sent to one slot run in the order they were sent.
 *
 * Threads: every function in the table is called on the loop thread;
 * req->done must be called on the loop thread, exactly once per submitted
 * request, and never inside submit (rule R2 of dorm/deferred.h then holds
 * without the facade having to defer).  rows_build.c functions may be called on
 * any thread (one thread per dorm_rows at a time); they allocate through
 * dorm__malloc.
 */
#ifndef DORM_BACKEND_INT_H
#define DORM_BACKEND_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dorm/db.h"
#include "dorm/deferred.h"
#include "dorm/error.h"
#include "dorm/loop.h"
#include "dorm/query.h"
#include "dorm/rows.h"
#include "dorm/value.h"

/* Milliseconds on the monotonic clock (read-your-writes windows, replica
 * probes and lag). */
static inline uint64_t dorm__mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- requests ----------------------------------------------------------- */

/* One statement.  Everything is borrowed from the request's owner (the
 * facade) and stays valid until req->done has run. */
typedef struct dorm__stmt {
  const char *sql; /* NUL-terminated, in the backend's dialect */
  size_t len;
  const dorm_value *params; /* nparams; never DORM_T_LIST / DORM_T_EXPR */
  size_t nparams;
  /* per parameter, 1: an integer the database may take as 32-bit
   * (dorm_sql.param_int4); NULL: none */
  const unsigned char *param_int4;
  /* The result columns, typed (a compiled query's dorm_sql columns).
   * NULL: a raw statement — the backend describes the columns from the
   * database (names and the types the values come back as). */
  const dorm_column *columns;
  size_t ncolumns;
  const char *const *related; /* select_related paths (dorm_sql.related) */
  size_t nrelated;
  /* 1: the statement yields rows (SELECT, or RETURNING): the result is
   * DORM_RESULT_ROWS.  0: DORM_RESULT_COUNT, the rows changed.  With
   * columns NULL the backend decides (rows when the statement has result
   * columns). */
  int returns_rows;
  /* 1: it takes row locks (dorm_sql.row_lock): it must run on the primary,
   * and never shares a pipeline Sync with other reads */
  int row_lock;
} dorm__stmt;

enum dorm__req_flags {
  /* several statements: the result is the sum of their changes (bulk
   * insert) rather than the last statement's result */
  DORM__REQ_SUM_COUNTS = 1,
  /* COPY FROM STDIN (only to a backend with copy_in): stmts[0] is the
   * COPY statement; the data rows are its parameters, then those of
   * stmts[1..nstmts), copy_width values per row, in order (the
   * parameters are not bound: only stmts[0]'s SQL is run).  The result is
   * DORM_RESULT_COUNT, the rows copied, or the error, naming the row when the
   * server says it. */
  DORM__REQ_COPY = 2,
  /* COPY ... TO STDOUT (only to a backend with copy_in): stmts[0] is the
   * statement (no parameters); each data message the server sends (a row)
   * is handed to copy_out(data, len, copy_arg) on the loop thread as it
   * arrives; copy_out returning nonzero stops the COPY (the request then
   * completes with DORM_ECANCELED).  The result is DORM_RESULT_COUNT, the
   * rows sent, or the error. */
  DORM__REQ_COPY_OUT = 4
};

/* A request: statements run in order on one connection, stopping at the
 * first error.  The result is the last statement's (rows or count) unless
 * DORM__REQ_SUM_COUNTS, or the first error.  Owned by the facade; lent to
 * the backend from submit until done. */
typedef struct dorm__req {
  struct dorm__req *next; /* free for the backend's queues while lent */
  const dorm__stmt *stmts;
  size_t nstmts;
  int64_t max_rows; /* > 0: read at most this many rows of the last
                       statement (get reads 2), the rest is discarded */
  unsigned flags;   /* dorm__req_flags */
  size_t copy_width; /* DORM__REQ_COPY: values per data row */
  int (*copy_out)(const char *data, size_t len, void *arg); /* COPY_OUT */
  void *copy_arg;
  /* Set by the backend before done: DORM_RESULT_ROWS (dorm__rows_result),
   * DORM_RESULT_COUNT, or an error (dorm__db_error, with its SQLSTATE).
   * The facade owns it once done runs. */
  dorm_result result;
  /* The facade's completion: on the loop thread, exactly once. */
  void (*done)(struct dorm__req *req);
  void *backend_data; /* the backend's */
} dorm__req;

/* ---- streaming reads (db_iterate.c, dorm/iterate.h) --------------------- */

/* One streamed statement, owned by the facade and lent to the backend
 * from stream_start until its `end` has run.  The backend reads it on a
 * connection of its own (never one of the slots), chunk_rows rows at a
 * time: it hands each chunk to `chunk` and fetches the next one only
 * after stream_more, so it holds at most one chunk. */
typedef struct dorm__stream {
  const dorm__stmt *stmt; /* borrowed until end */
  size_t chunk_rows;      /* > 0 */
  /* loop thread, never inside stream_start / _more / _stop: */
  /* 1 .. chunk_rows rows (finished; the facade's from now on) */
  void (*chunk)(struct dorm__stream *s, dorm_rows *rows);
  /* exactly once, last: DORM_RESULT_NONE when the rows ran out, else the
   * error (DORM_ECANCELED after stream_stop); s is the facade's again */
  void (*end)(struct dorm__stream *s, dorm_result res);
  void *backend_data; /* the backend's */
} dorm__stream;

/* ---- the backend table -------------------------------------------------- */

struct dorm__conn_info;

#define DORM__CONN_READ 1u
#define DORM__CONN_WRITE 2u
/* a read replica's slot: READ too, but it may lag behind the primary and
 * may be unusable for a while (slot_usable says) */
#define DORM__CONN_REPLICA 4u

typedef struct dorm__backend {
  const char *name;      /* "sqlite", "postgresql" */
  dorm_dialect dialect;  /* what the facade compiles for */
  size_t max_params;     /* parameters per statement (bulk insert chunks) */
  const char *begin_sql; /* "BEGIN IMMEDIATE" (SQLite), "BEGIN" */
  /* 1 when url is this backend's. */
  int (*accepts)(const char *url);
  /* Check url and opts and start connecting in the background (never
   * block).  On success *state is the backend's and the connection slots
   * are known (nconns/conn_flags); the backend later calls
   * dorm__db_backend_ready(db, err) exactly once, on the loop thread and
   * not inside open.  Requests may be submitted at once; if connecting
   * fails they complete with that error.  Returns 0 or an error code with
   * err filled (DORM_EURL for a bad URL or option). */
  int (*open)(dorm_db *db, dorm_loop *loop, const char *url,
              const dorm_db_options *opts, void **state, dorm_error *err);
  size_t (*nconns)(void *state);
  unsigned (*conn_flags)(void *state, size_t conn);
  /* Queue req on slot conn (0 <= conn < nconns).  Never fails: problems
   * arrive as req->result. */
  void (*submit)(void *state, size_t conn, dorm__req *req);
  /* Stop: every submitted request still completes (done runs, with any
   * result: the facade has already failed their deferreds with
   * DORM_ECLOSED, so the backend may skip statements not started and give
   * DORM_ECLOSED), an open transaction is rolled back, connections and
   * threads are closed without blocking the loop, and finally
   * dorm__db_backend_closed(db) runs on the loop thread (not inside
   * close).  Nothing may be submitted afterwards. */
  void (*close)(void *state);
  /* Optional (NULL: queries run to the end).  The deferred of req was
   * cancelled while req is submitted on slot conn: stop it if it has not
   * finished (a request not yet sent is never sent; a running one is
   * cancelled on the server).  req still completes through done, exactly
   * once, with whatever result it got (DORM_ECANCELED when stopped); the
   * facade has already failed its deferred. */
  void (*cancel)(void *state, size_t conn, dorm__req *req);
  /* Optional, for backends with read replicas (NULL: none).  May replica
   * slot conn take a read that must see the primary's position min_lsn
   * (0: any position)?  0 when its server is down, not yet checked, or
   * lagging beyond the configured bound. */
  int (*slot_usable)(void *state, size_t conn, uint64_t min_lsn);
  /* The statement that reads the primary's current position after a
   * write (one row, one text column), and how to read that text. */
  const char *lsn_sql;
  uint64_t (*parse_lsn)(const char *text);
  /* LISTEN / NOTIFY: dorm_listen and dorm_unlisten of dorm/db.h, with
   * their arguments checked (none NULL), for the database whose state
   * this is.  The subscriptions are the backend's, kept in that state;
   * fn is called with the database handle (the db given to open).  A
   * deferred as dorm/db.h documents, or NULL: out of memory, or a backend
   * without notifications (SQLite) refusing. */
  dorm_deferred *(*listen)(void *state, const char *channel, dorm_notify_fn fn,
                           void *arg);
  dorm_deferred *(*unlisten)(void *state, const char *channel,
                             dorm_notify_fn fn, void *arg);
  /* Streaming reads (optional, NULL: refused).  stream_start: begin s
   * (0), or refuse it at once (an error code, err filled; end never
   * runs).  stream_more: the last chunk was consumed, fetch the next.
   * stream_stop: stop (the query stops on the server), then end runs
   * with DORM_ECANCELED on a later turn.  A backend's close waits for
   * its streams' ends (the facade stops them first). */
  int (*stream_start)(void *state, dorm__stream *s, dorm_error *err);
  void (*stream_more)(void *state, dorm__stream *s);
  void (*stream_stop)(void *state, dorm__stream *s);
  /* Optional (NULL: the facade's defaults): what dorm_db_conn_stats and
   * the query hooks show of slot conn (dorm/observe.h).  Cheap; fills
   * every field of *out. */
  void (*conn_info)(void *state, size_t conn, struct dorm__conn_info *out);
  /* 1: the backend runs DORM__REQ_COPY requests (bulk_create's COPY) */
  int copy_in;
} dorm__backend;

/* A slot as dorm/observe.h shows it. */
typedef struct dorm__conn_info {
  int state;      /* dorm_conn_state */
  size_t replica; /* 0: the primary (or SQLite), n: the n-th replica */
  int pgbouncer;  /* through PgBouncer */
  size_t statements_cached;
  uint64_t reconnects;
  int lag_known; /* a replica's lag, as of its last probe */
  uint64_t lag_ms;
} dorm__conn_info;

extern const dorm__backend dorm__sqlite_backend;
extern const dorm__backend dorm__pg_backend;

/* The sqlite URL as sqlite/sqlite.c's open reads it, without opening anything
 * (for fuzz/): 0 with *path the decoded file name (NULL for a memory
 * database; the caller's, dorm__free), or DORM_EURL / DORM_ENOMEM with
 * err filled and *path NULL.  A URL not starting "sqlite:" is DORM_EURL. */
int dorm__sqlite_url_parse(const char *url, char **path, dorm_error *err);

/* ---- calls from a backend into the facade (loop thread) ----------------- */

/* Connecting finished: err NULL on success, else why it failed (copied). */
void dorm__db_backend_ready(dorm_db *db, const dorm_error *err);
/* Everything the backend had is released; the facade may free db. */
void dorm__db_backend_closed(dorm_db *db);
/* The database handle behind db: itself, or the database a primary view
 * (dorm_db_primary) or a transaction handle belongs to. */
dorm_db *dorm__db_root(dorm_db *db);

/* ---- errors ------------------------------------------------------------- */

/* The dorm code of a SQLSTATE: class 23 (integrity) is DORM_EINTEGRITY,
 * 08 (connection) DORM_ECONN, 2201B (invalid regular expression, from
 * either backend) DORM_EINVAL, 40P01/40001 and the rest DORM_EDB. */
int dorm__sqlstate_code(const char *sqlstate);
/* An error result from a database: code from the SQLSTATE (or DORM_EDB
 * when sqlstate is NULL/""), the message as given ("sqlite: UNIQUE
 * constraint failed: author.email"). */
dorm_result dorm__db_error(const char *sqlstate, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- building rows (rows_build.c) --------------------------------------- */

/* A new empty result set for statement st (its columns and related paths
 * are copied: the rows outlive the statement).  For a raw statement
 * (st->columns NULL) give the column count in nraw and describe each with
 * dorm__rows_raw_column.  NULL when out of memory. */
dorm_rows *dorm__rows_new(const dorm__stmt *st, size_t nraw);
/* The same, sized for nrows rows whose values and, for a raw statement,
 * column names take text_bytes: the sum of dorm__rows_value_bytes over
 * the values and of dorm__rows_name_bytes over the names.  A small result
 * is then one allocation.  Only a hint: more rows or bytes still fit, in
 * more allocations. */
dorm_rows *dorm__rows_new_sized(const dorm__stmt *st, size_t nraw, size_t nrows,
                                size_t text_bytes);
/* What one value of a column of type t, given as len bytes of text, adds
 * to text_bytes (0 for the types kept as numbers). */
size_t dorm__rows_value_bytes(dorm_type t, size_t len);
/* What a raw column's name adds to text_bytes. */
size_t dorm__rows_name_bytes(const char *name);
/* Raw column i: name (copied) and the type its values are decoded into
 * (DORM_T_NULL: as each value comes).  0 or DORM_ENOMEM. */
int dorm__rows_raw_column(dorm_rows *r, size_t i, const char *name,
                          dorm_type type);
/* Total columns (main and related) values are put into. */
size_t dorm__rows_width(const dorm_rows *r);
/* Start a new row, every column NULL.  0 or DORM_ENOMEM. */
int dorm__rows_add_row(dorm_rows *r);
/* Put column col of the row being built.  Conversions follow the column's
 * type: an integer into a boolean, float or decimal column; a float into
 * a decimal column (formatted with the field's decimal places); text is
 * parsed as the column's type (PostgreSQL text format included: "t"/"f",
 * "\\x..." bytea, "2024-05-01 13:45:00+02" timestamps), date-times are
 * normalised to UTC ISO 8601.  Returns 0, DORM_ENOMEM, or DORM_ETYPE when
 * the value cannot be read as the column's type (the value is then NULL
 * and dorm__rows_error describes it). */
int dorm__rows_put_int(dorm_rows *r, size_t col, int64_t v);
int dorm__rows_put_float(dorm_rows *r, size_t col, double v);
int dorm__rows_put_text(dorm_rows *r, size_t col, const char *s, size_t n);
int dorm__rows_put_bytes(dorm_rows *r, size_t col, const void *p, size_t n);
/* The last DORM_ETYPE's message ("column 'age': 'x' is not an integer"). */
const char *dorm__rows_error(const dorm_rows *r);
/* Done adding rows: builds the row handles.  0 or DORM_ENOMEM. */
int dorm__rows_finish(dorm_rows *r);
void dorm__rows_free(dorm_rows *r);
/* Attach prefetch_related relation `name` (copied) to the parent rows r:
 * parent row i gets the related rows refs[off[i] .. off[i + 1]) (handles
 * of rows of children[0..nchildren), each a finished result; off has r's
 * row count + 1 entries, off[0] need not be 0).  own: r takes the
 * children (freed with it, also when this fails); else they belong to
 * another result freed with r (a nested level's parents in several
 * results).  single: a forward foreign key (one object in JSON).  0 or
 * DORM_ENOMEM. */
int dorm__rows_attach_prefetch(dorm_rows *r, const char *name, int single,
                               int own, dorm_rows **children, size_t nchildren,
                               const dorm_row *const *refs, const size_t *off);
/* Mark every row as created (get_or_create). */
void dorm__rows_set_created(dorm_rows *r, int created);
/* A DORM_RESULT_ROWS result that owns r (finished). */
dorm_result dorm__rows_result(dorm_rows *r);
/* A DORM_RESULT_ROW result for row i of r that owns all of r. */
dorm_result dorm__row_result(dorm_rows *r, size_t i);
/* The rows a dorm_row belongs to. */
dorm_rows *dorm__row_rows(const dorm_row *row);

#endif /* DORM_BACKEND_INT_H */
