/* SPDX-License-Identifier: MIT */
/* dorm/db.h — databases on a libuv loop: open, run queries asynchronously,
 * transactions, close.
 *
 * A dorm_db is a long-lived handle on one database (libuv's "handle"); each
 * dorm_async_* call is a one-shot request that returns at once with a
 * deferred (dorm/deferred.h) and never blocks the loop thread.  The same
 * calls work on every backend (SQLite on worker threads, PostgreSQL
 * non-blocking on the loop) with the same behaviour: the facade in
 * backends/db*.c is written once over a table of backend functions.
 *
 *     dorm_db *db = dorm_db_open(loop, "sqlite:///blog.db", NULL, &err);
 *     dorm_query *q = dorm_select(author);
 *     dorm_filter(q, "age__gte", dorm_int(18));
 *     dorm_deferred *d = dorm_async_filter(db, q);  // borrowed deferred
 *     dorm_query_free(q);                 // the call compiled what it needs
 *     dorm_deferred_add_callbacks(d, print_rows, print_error, NULL);
 *     ...
 *     dorm_db_close(db, NULL, NULL);      // pending requests fail ECLOSED
 *
 * RULES
 *   - Every function here is called on the loop thread.
 *   - A query passed to a dorm_async_* call is compiled during the call: the
 *     query, its values and its strings may be freed as soon as the call
 *     returns.  Every call here takes `const dorm_query *`: none changes
 *     the query, even for a moment (get, first, count, exists and
 *     bulk_create compile it with dorm_compile_ex's options instead of
 *     adding a clause), so one query may be run several times and by
 *     several calls.
 *   - Each call returns a BORROWED deferred (add steps to it before you
 *     return to the loop; see dorm/deferred.h section 3), or NULL when the
 *     request could not be made at all (out of memory, NULL arguments); then
 *     nothing will run.  Every other failure — a query that does not
 *     compile, a database error, a closed database — arrives through the
 *     errback, never synchronously: the deferred never fires before the
 *     call has returned (rule R2 of dorm/deferred.h), and its steps run on
 *     the loop thread.
 *   - Errors: DORM_EINTEGRITY for a unique, foreign key, not-null or check
 *     violation (SQLSTATE 23505, 23503, 23502, 23514, on SQLite too),
 *     DORM_EINVAL for a regex / iregex pattern the database cannot
 *     compile (SQLSTATE 2201B, on SQLite too),
 *     DORM_EDB for other database errors (with the SQLSTATE when known),
 *     DORM_ECLOSED once dorm_db_close was called, DORM_EIO when a SQLite
 *     file cannot be opened or written, DORM_ECONN when a server cannot be
 *     reached, DORM_ENOTFOUND / DORM_EMULTIPLE from get, and the builder's
 *     and compiler's own codes (DORM_EFIELD, DORM_ETYPE, ...).
 *   - Results are dorm_result values (dorm/deferred.h) whose rows are read
 *     with dorm/rows.h.  The chain owns them; a step borrows them.
 */
#ifndef DORM_DB_H
#define DORM_DB_H

#include <stddef.h>
#include <stdint.h>

#include "dorm/version.h"
#include "dorm/deferred.h"
#include "dorm/error.h"
#include "dorm/loop.h"
#include "dorm/query.h"
#include "dorm/schema.h"
#include "dorm/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dorm_db dorm_db;

/* ---------------------------------------------------------------------
 * Opening and closing
 * ------------------------------------------------------------------- */

/* Options; zero means "the default", so a zeroed struct (or NULL) is
 * fine.  URL query parameters (sqlite:///x.db?synchronous=FULL) override
 * the matching field. */
typedef struct dorm_db_options {
  /* SQLite: reader threads, each with its own read-only connection
   * (default 2; a memory database has none: one connection serves all). */
  int readers;
  /* SQLite: busy timeout in milliseconds (default 5000). */
  int busy_timeout_ms;
  /* SQLite: "OFF", "NORMAL" (default), "FULL" or "EXTRA". */
  const char *synchronous;
  /* PostgreSQL: connections in the pool (default 2 per online core, at
   * most 128; the URI parameter pool_size=N also sets it). */
  int pool_size;
  /* Requests accepted but not finished, beyond which calls fail with
   * DORM_EQUEUEFULL through their errback (default 0: no limit). */
  size_t max_pending;

  /* ---- PostgreSQL scale-out (docs/scaleout.md) ---- */
  /* Read replicas: postgresql:// URIs separated by commas, the format of
   * $DATABASE_REPLICA_URLS (a comma starts the next URL only when a
   * postgresql:// or postgres:// scheme follows, so a multi-host URI stays
   * whole).  Reads (filter, get, count, exists, aggregate,
   * dorm_async_execute_read) go to the replicas, least outstanding
   * requests first; writes, transactions, select_for_update and LISTEN go
   * to the primary (the url).  NULL or "": no replicas. */
  const char *replicas;
  /* Connections per replica (default: the pool size). */
  int replica_pool_size;
  /* How often each server's WAL position is read, in ms (default 100). */
  int replica_check_ms;
  /* Replicas further behind the primary than this, in ms, are skipped
   * (default 0: no bound). */
  int replica_max_lag_ms;
  /* Read-your-writes after a write through a handle: DORM_RYW_LSN (the
   * default: reads go to the primary until a replica has replayed past
   * the write's commit), DORM_RYW_WINDOW (reads go to the primary for
   * read_your_writes_ms after each write), DORM_RYW_OFF. */
  int read_your_writes;
  /* The window of DORM_RYW_WINDOW, and the fallback when the commit
   * position could not be read (default 1000 ms). */
  int read_your_writes_ms;
  /* PostgreSQL behind PgBouncer in transaction pooling mode (also the URI
   * parameter pgbouncer=1): no named prepared statements, no session
   * state, one pipeline Sync in flight per connection; LISTEN is refused
   * (it needs a session: give dorm_listen a direct database). */
  int pgbouncer;

  /* ---- PostgreSQL silent servers (docs/postgresql.md) ---- */
  /* A connection with requests in flight that hears nothing from its
   * server for this long, in ms, is deemed silent (a stopped or hung
   * server, packets dropped): it is dropped and reopened, and what was in
   * flight on it fails with DORM_ETIMEDOUT (a read on a replica is first
   * sent once more elsewhere, as when a replica dies).  The deadline
   * cannot tell a silent server from a statement that runs longer than
   * it, so it also bounds every statement's time on that server: set it
   * above your longest query.  For the primary (answer_timeout_ms) the
   * default is none, since a write cut off may or may not have been
   * applied and long statements (migrations, lock waits) are normal
   * there; for replicas (replica_answer_timeout_ms) 10000.  -1: none.
   * The URI parameter answer_timeout_ms=N (0: none) sets it for the
   * server of that URI.  Every TCP connection also gets keepalives
   * (keepalives_idle=15, keepalives_interval=5, keepalives_count=3) and
   * tcp_user_timeout=30000 unless the URI sets them (libpq's parameters),
   * so a dead host or network is noticed on idle connections too. */
  int answer_timeout_ms;
  int replica_answer_timeout_ms;
} dorm_db_options;

#define DORM_RYW_LSN 0
#define DORM_RYW_WINDOW 1
#define DORM_RYW_OFF 2

/* Fill o with the defaults (all zero). */
DORM_EXTERN void dorm_db_options_init(dorm_db_options *o);

/* Open a database by URL (docs/sqlite.md and docs/postgresql.md, "URLs"):
 *   sqlite:///relative/path.db   sqlite:////abs/path.db
 *   sqlite://   sqlite::memory:  (in memory; also sqlite:///:memory:)
 *   postgresql://... postgres://... "host=... dbname=..."
 * url NULL means $DATABASE_URL, else "sqlite:///db.sqlite3".
 * The URL is checked now; connecting happens in the background (on worker
 * threads for SQLite, on the loop for PostgreSQL), so this never blocks.
 * Requests may be made at once: they wait for the connection, and if it
 * cannot be made they fail with that error (DORM_EIO naming the file for
 * SQLite, DORM_ECONN for a server).  dorm_db_ready tells when it is up.
 * loop and opts are borrowed (opts for the call only; loop until the close
 * callback).  Returns a new handle, closed with dorm_db_close, or NULL with
 * err filled (DORM_EURL: bad URL or option; DORM_EUNSUPPORTED: backend not
 * compiled in; DORM_ENOMEM; DORM_EIO: threads could not be started). */
DORM_EXTERN dorm_db *dorm_db_open(dorm_loop *loop, const char *url,
                                  const dorm_db_options *opts, dorm_error *err);

/* A deferred that succeeds (DORM_RESULT_NONE) once the database is
 * connected and usable, or fails with the reason it is not.  Borrowed. */
DORM_EXTERN dorm_deferred *dorm_db_ready(dorm_db *db);

/* The SQL dialect of db's backend (what dorm_async_execute's SQL must be
 * written in). */
DORM_EXTERN dorm_dialect dorm_db_dialect(const dorm_db *db);
/* "sqlite" or "postgresql". */
DORM_EXTERN const char *dorm_db_backend_name(const dorm_db *db);

/* A handle on the same database whose requests all go to the primary,
 * never to a read replica (Django's using()): for a read that must see
 * the latest data whatever the replicas' state.  Owned by db, valid until
 * db is closed; not closed itself.  Without replicas it behaves exactly
 * as db.  A transaction handle is returned as it is (it is on the
 * primary).  NULL when out of memory. */
DORM_EXTERN dorm_db *dorm_db_primary(dorm_db *db);

typedef void (*dorm_db_close_cb)(void *arg);
/* Close db.  Every request not yet finished fails with DORM_ECLOSED before
 * this returns (its errbacks run inside this call): a statement that was
 * already running may have been applied, as with a lost connection, but a
 * transaction that had not committed is rolled back.  New requests fail
 * with DORM_ECLOSED.  Connections and threads are then closed in the
 * background; cb(arg) runs on the loop thread once they are all gone (cb
 * may be NULL), after which the loop holds nothing of db.  Close every db
 * before dorm_loop_close.  Calling it twice does nothing.  A transaction
 * handle (see dorm_async_atomic) is not closed this way. */
DORM_EXTERN void dorm_db_close(dorm_db *db, dorm_db_close_cb cb, void *arg);

/* ---------------------------------------------------------------------
 * Reading.  q is a SELECT query (dorm_select); see RULES for ownership.
 * ------------------------------------------------------------------- */

/* Every row: DORM_RESULT_ROWS. */
DORM_EXTERN dorm_deferred *dorm_async_filter(dorm_db *db, const dorm_query *q);
/* Exactly one row: DORM_RESULT_ROW; DORM_ENOTFOUND when none matches,
 * DORM_EMULTIPLE when more than one does (at most two are read). */
DORM_EXTERN dorm_deferred *dorm_async_get(dorm_db *db, const dorm_query *q);
/* The first row in the query's order (by primary key when the query and
 * its model have no ordering): DORM_RESULT_ROW; DORM_RESULT_NONE when no
 * row matches (Django's first() returns None). */
DORM_EXTERN dorm_deferred *dorm_async_first(dorm_db *db, const dorm_query *q);
/* SELECT COUNT(*) of the filtered set: DORM_RESULT_COUNT. */
DORM_EXTERN dorm_deferred *dorm_async_count(dorm_db *db, const dorm_query *q);
/* Whether any row matches: DORM_RESULT_VALUE holding dorm_bool(0 or 1). */
DORM_EXTERN dorm_deferred *dorm_async_exists(dorm_db *db, const dorm_query *q);
/* A query on which dorm_aggregate was called: DORM_RESULT_ROW with one
 * column per alias (dorm_row_int / dorm_row_float / dorm_row_value by the
 * alias; SUM and AVG of integers come back as numbers, NULL over no
 * rows). */
DORM_EXTERN dorm_deferred *dorm_async_aggregate(dorm_db *db,
                                                const dorm_query *q);

/* ---------------------------------------------------------------------
 * Writing.  Writes go to the writer connection (SQLite) or any pooled
 * connection (PostgreSQL); each runs in its own transaction unless made on
 * a transaction handle.
 * ------------------------------------------------------------------- */

/* q is an INSERT of one row (dorm_insert + dorm_set): DORM_RESULT_ROW, the
 * created row as stored (primary key and defaults included; RETURNING).
 * An upsert with DO NOTHING (dorm_on_conflict without an update field, or
 * dorm_on_conflict_do_nothing) whose row conflicts gives DORM_RESULT_NONE:
 * success, nothing created (as Django's ignore_conflicts). */
DORM_EXTERN dorm_deferred *dorm_async_create(dorm_db *db, const dorm_query *q);
/* q is an INSERT of any number of rows (dorm_insert_next_row between
 * rows).  All rows go in one transaction, split into statements as the
 * backend's parameter limit requires; DORM_RESULT_COUNT, the rows
 * inserted.  Nothing is inserted when any row fails.  The chunks are
 * compiled from q (dorm_compile_opts.row_first / row_count); q itself is
 * not changed.  On PostgreSQL an insert of more rows than one INSERT
 * statement takes (500) goes by COPY ... FROM STDIN unless it has a
 * conflict clause or a value that is an expression (docs/postgresql.md,
 * "COPY"); the answer is the same. */
DORM_EXTERN dorm_deferred *dorm_async_bulk_create(dorm_db *db,
                                                  const dorm_query *q);
/* The same, answering DORM_RESULT_ROWS: the rows created, as stored
 * (primary keys and every default the database or the model filled in;
 * RETURNING on both databases), one per row of q and in q's order across
 * the chunks, as Django's bulk_create sets the primary keys on PostgreSQL
 * and SQLite.  Never by COPY (COPY returns no rows).  With a conflict
 * clause the rows that were not inserted are left out (DO NOTHING) and
 * the order of the rest is kept. */
DORM_EXTERN dorm_deferred *dorm_async_bulk_create_returning(
    dorm_db *db, const dorm_query *q);
/* Django's bulk_update(objs, fields): rows is an INSERT query used as the
 * list of objects (dorm_insert, then per object dorm_set of its primary
 * key and of every field named in fields, dorm_insert_next_row between
 * objects); fields are field names (not the primary key, not
 * many_to_many).  One UPDATE per chunk (a CASE per field,
 * dorm_compile_bulk_update), all in one transaction: nothing is changed
 * when any chunk fails.  DORM_RESULT_COUNT: the rows matched (an object
 * whose row is gone counts nothing).  rows and fields are read during
 * the call only. */
DORM_EXTERN dorm_deferred *dorm_async_bulk_update(dorm_db *db,
                                                  const dorm_query *rows,
                                                  const char *const *fields,
                                                  size_t nfields);
/* q is an UPDATE (dorm_update + dorm_set, values may be F expressions):
 * DORM_RESULT_COUNT, the rows changed; DORM_RESULT_ROWS when q asked for
 * dorm_returning. */
DORM_EXTERN dorm_deferred *dorm_async_update(dorm_db *db, const dorm_query *q);
/* q is a DELETE: DORM_RESULT_COUNT, or DORM_RESULT_ROWS with
 * dorm_returning. */
DORM_EXTERN dorm_deferred *dorm_async_delete(dorm_db *db, const dorm_query *q);

/* A field name (or "pk", or a lookup "age__gte" where only filtering uses
 * it) and a value; strings borrowed for the call. */
typedef struct dorm_kv {
  const char *field;
  dorm_value value;
} dorm_kv;

/* Django's get_or_create(defaults, **lookups), in one transaction: get the
 * row matching every lookup (AND of exact matches unless the key names a
 * lookup; together they are one filter() call, so across a multi-valued
 * relation they are about the same related row); if none, insert one from
 * the lookups that are plain field names plus the defaults; if that
 * insert hits a unique violation (another writer won the race), get
 * again.  DORM_RESULT_ROW; dorm_row_created() tells which branch ran.
 * DORM_EMULTIPLE when several rows match. */
DORM_EXTERN dorm_deferred *dorm_async_get_or_create(
    dorm_db *db, const dorm_model *model, const dorm_kv *lookups,
    size_t nlookups, const dorm_kv *defaults, size_t ndefaults);
/* Django's update_or_create: in one transaction, set the defaults on the
 * row matching the lookups, or create it as get_or_create does.
 * DORM_RESULT_ROW (the row after the update), dorm_row_created() 1 when
 * inserted.  DORM_EMULTIPLE (and nothing changed) when several match. */
DORM_EXTERN dorm_deferred *dorm_async_update_or_create(
    dorm_db *db, const dorm_model *model, const dorm_kv *lookups,
    size_t nlookups, const dorm_kv *defaults, size_t ndefaults);

/* ---------------------------------------------------------------------
 * Many-to-many relations
 *
 * Django's related manager on a many_to_many field of model, or on its
 * other side by the reverse name (Tag's "entry", or the field's
 * related_name: tag.entry_set.add(e)): entry.tags.add(t1, t2) is
 *
 *     dorm_value tags[] = {dorm_int(t1), dorm_int(t2)};
 *     dorm_async_m2m_add(db, Entry, "tags", dorm_int(entry_id), tags, 2);
 *
 * pk is the row's primary key, targets the related rows' primary keys
 * (copied during the call).  Each answers DORM_RESULT_COUNT: the pairs
 * added or removed.  Keys of the wrong type, NULL, or a field that is not
 * many_to_many fail with DORM_ETYPE / DORM_EFIELD naming the model, the
 * field and the key; a key with no row is DORM_EINTEGRITY (the join
 * table's foreign keys), and then nothing was changed.  Read the relation
 * with a filter across it: Tag.filter(entry=pk) (the reverse name) or
 * Entry.filter(tags__name=...).  Writes: they go to the primary.
 * ------------------------------------------------------------------- */

/* Add the pairs (pk, target); pairs already there stay as they are, so
 * adding twice is harmless.  Any number of targets: past the backend's
 * parameter limit they go in several statements inside one transaction.
 * No targets: nothing happens (count 0). */
DORM_EXTERN dorm_deferred *dorm_async_m2m_add(dorm_db *db,
                                              const dorm_model *model,
                                              const char *field, dorm_value pk,
                                              const dorm_value *targets,
                                              size_t n);
/* Remove the pairs (pk, target) that exist. */
DORM_EXTERN dorm_deferred *dorm_async_m2m_remove(
    dorm_db *db, const dorm_model *model, const char *field, dorm_value pk,
    const dorm_value *targets, size_t n);
/* Remove every pair of pk. */
DORM_EXTERN dorm_deferred *dorm_async_m2m_clear(dorm_db *db,
                                                const dorm_model *model,
                                                const char *field,
                                                dorm_value pk);
/* Make pk's pairs exactly targets, in one transaction: pairs not listed
 * are removed, missing ones added, kept ones untouched (their join rows
 * stay).  The count is removed + added.  n == 0 clears. */
DORM_EXTERN dorm_deferred *dorm_async_m2m_set(dorm_db *db,
                                              const dorm_model *model,
                                              const char *field, dorm_value pk,
                                              const dorm_value *targets,
                                              size_t n);

/* ---------------------------------------------------------------------
 * Raw SQL
 * ------------------------------------------------------------------- */

/* One SQL statement in db's dialect (placeholders ? on SQLite, $1 on
 * PostgreSQL) with n parameters (copied during the call).  Runs on the
 * writer.  DORM_RESULT_ROWS when the statement yields columns (values
 * typed by what the database returns: integers, floats, text, bytes,
 * NULL; column names as the database names them), else DORM_RESULT_COUNT
 * (rows changed).  More than one statement in sql (anything but blanks and
 * comments after a ';' outside quotes) is DORM_EINVAL on both backends,
 * before anything runs.  On SQLite a DORM_T_DECIMAL parameter is bound as
 * a number (an integer when its text is one, else a double). */
DORM_EXTERN dorm_deferred *dorm_async_execute(dorm_db *db, const char *sql,
                                              const dorm_value *params,
                                              size_t n);
/* The same for a statement that only reads (sql and params copied during
 * the call, the deferred borrowed as in RULES): with read replicas it may
 * run on one (docs/scaleout.md); on a SQLite file it runs on a read-only
 * reader connection, so a write in it fails there (a memory database has
 * one connection for everything). */
DORM_EXTERN dorm_deferred *dorm_async_execute_read(dorm_db *db, const char *sql,
                                                   const dorm_value *params,
                                                   size_t n);
/* COPY ... TO STDOUT for exports (PostgreSQL): sql is one COPY statement
 * writing to STDOUT, in db's dialect, without parameters (COPY takes
 * none: put values in the statement only from trusted text, or export a
 * view); copied during the call.  Each row the server sends (one data
 * message: a line of text or CSV with its newline, or a binary tuple) is
 * handed to fn(data, len, arg) on the loop thread as it arrives, data
 * borrowed for the call; fn returning nonzero stops the COPY on the
 * server, and the deferred then fails with DORM_ECANCELED.  fn must not
 * close db.  The deferred: DORM_RESULT_COUNT, the rows sent, or the
 * error (DORM_EINVAL for a statement that is not a COPY TO, DORM_EDB for
 * the server's).  Runs on the primary; it holds its connection for the
 * time of the COPY (requests queued behind it on that connection wait).
 * SQLite: DORM_EUNSUPPORTED.  A raw COPY through dorm_async_execute is
 * refused (DORM_EUNSUPPORTED). */
typedef int (*dorm_copy_out_fn)(const char *data, size_t len, void *arg);
DORM_EXTERN dorm_deferred *dorm_async_copy_out(dorm_db *db, const char *sql,
                                               dorm_copy_out_fn fn, void *arg);
/* n statements without parameters, run in order on the writer; stops at
 * the first error (earlier ones stay applied unless inside a transaction).
 * For DDL: dorm_ddl's stmts fit as they are.  DORM_RESULT_COUNT, the sum
 * of rows changed.  The strings are copied during the call. */
DORM_EXTERN dorm_deferred *dorm_async_execute_many(dorm_db *db,
                                                   const char *const *sqls,
                                                   size_t n);

/* ---------------------------------------------------------------------
 * Transactions
 * ------------------------------------------------------------------- */

/* The body of a transaction.  tx is a transaction handle: use it exactly
 * like a dorm_db for every request that belongs to the transaction (they
 * all run on the one connection the transaction holds, in order).  Return
 * the deferred whose result ends the block (usually the last request's,
 * or a chain or dorm_gather of them); NULL fails the block with
 * DORM_ENOMEM (an async call returns NULL when out of memory, and a block
 * passes that on).  tx is valid until dorm_async_atomic's deferred fires:
 * requests made on it once the block's deferred has fired fail with
 * DORM_ESTATE, and after that it must not be used.  Runs on the loop
 * thread. */
typedef dorm_deferred *(*dorm_atomic_fn)(dorm_db *tx, void *arg);

/* Run fn inside a transaction: all of it or nothing.
 *
 * On a database handle: wait for a writer connection (SQLite: the one
 * writer; other writes of the db queue behind the transaction, reads go on
 * on the readers), BEGIN (IMMEDIATE on SQLite), call fn(tx, arg), and once
 * the block is over, COMMIT or ROLLBACK.  The block is over when the
 * deferred fn returned has fired AND every request made on tx has been
 * answered AND every nested block has ended (requests still running when
 * the returned deferred fires are waited for, never committed blind).
 *
 * THE RULE (the same on every backend):
 *   - The transaction commits, and the atomic deferred succeeds with the
 *     block's result, only if the block's deferred succeeded and every
 *     request made on tx succeeded.
 *   - A request made on tx that fails — a constraint (DORM_EINTEGRITY), a
 *     value that does not compile (DORM_ETYPE, ...), a database error, a
 *     lost connection, a cancel (DORM_ECANCELED) or a timeout
 *     (DORM_ETIMEDOUT) — fails the whole block, whatever was done with its
 *     deferred: returned, chained, gathered, recovered by an errback, or
 *     dropped.  The transaction rolls back and the atomic deferred fails
 *     with that first error, its code and SQLSTATE (not with a later
 *     "transaction aborted").  A get's DORM_ENOTFOUND and DORM_EMULTIPLE
 *     are answers, not failures: they do not fail the block unless they
 *     reach the block's deferred.
 *   - From the failure on, requests on tx fail with DORM_ETXABORTED
 *     (SQLSTATE 25P02, the message naming the first error): those made
 *     afterwards without reaching the database, those already sent as
 *     their answers come back (on SQLite too, where they ran and are
 *     rolled back).  A nested dorm_async_atomic on tx fails so too, and
 *     its fn never runs.
 *   - Nested blocks (dorm_async_atomic on a transaction handle) are
 *     SAVEPOINTs, and Django's rule applies: a failure inside the nested
 *     block rolls back to its savepoint and fails the nested deferred with
 *     the first error.  If an errback on that deferred recovers it (returns
 *     a success: "try: with atomic(): ... except IntegrityError: ..."),
 *     the enclosing block goes on.  If the error is not recovered by the
 *     end of the nested deferred's chain (no errback, an errback that
 *     passes it on, or the deferred dropped), it fails the enclosing block
 *     as a request would: it then rolls back too, with that error.  The
 *     error is taken off the nested chain then (reported once, by the
 *     enclosing block).  Steps added to it after it fired do not count.
 *   - dorm_deferred_cancel on the atomic deferred (or its timeout) fails
 *     the block: what it waits for is cancelled and it rolls back; a block
 *     cancelled before it began never runs fn.  (A COMMIT already sent
 *     cannot be undone: the deferred still fails with the cancel.)
 *
 * A failed COMMIT (a deferred constraint) fails the atomic deferred with
 * its error, after a ROLLBACK.  fn runs exactly once unless this returns
 * NULL, the database closes before the transaction began (the deferred
 * then fails with DORM_ECLOSED), the block was cancelled before it began,
 * or tx's block already failed (DORM_ETXABORTED).  arg is borrowed until
 * fn has run.  Returns a borrowed deferred, or NULL (out of memory). */
DORM_EXTERN dorm_deferred *dorm_async_atomic(dorm_db *db, dorm_atomic_fn fn,
                                             void *arg);

/* 1 when db is a transaction handle given to a dorm_atomic_fn. */
DORM_EXTERN int dorm_db_in_transaction(const dorm_db *db);

/* ---------------------------------------------------------------------
 * LISTEN / NOTIFY (PostgreSQL only)
 *
 * Notifications arrive on one connection of the database's own, opened
 * the first time dorm_listen is called, and are delivered on the loop
 * thread.  If that connection is lost it is re-opened (with backoff, for
 * as long as the database is open), every channel is listened to again,
 * and then each subscriber is called once with gap = 1: notifications
 * sent while the connection was down are lost, so re-read whatever they
 * stood for.
 * ------------------------------------------------------------------- */

typedef struct dorm_notification {
  const char *channel; /* the channel, as given to dorm_listen */
  const char *payload; /* the NOTIFY payload ("" when none); NULL for a gap */
  int pid;             /* the notifying server process (0 for a gap) */
  int gap;             /* 1: the connection was lost and restored; anything
                          sent meanwhile was missed */
} dorm_notification;

/* n and its strings are borrowed for the call.  May call dorm_unlisten
 * (even for itself) and dorm_db_close. */
typedef void (*dorm_notify_fn)(dorm_db *db, const dorm_notification *n,
                               void *arg);

/* Subscribe fn(db, n, arg) to `channel`, an identifier
 * (^[A-Za-z_][A-Za-z0-9_]*$, at most 63 bytes), quoted so it is exact:
 * NOTIFY "Jobs" or pg_notify('Jobs', ...) reach "Jobs", an unquoted
 * NOTIFY Jobs reaches "jobs".  The payload is not interpreted.  The
 * deferred succeeds (DORM_RESULT_NONE) once the server listens, so a
 * NOTIFY committed after that is delivered; it fails with DORM_EIDENT
 * (bad channel), DORM_ECLOSED, or DORM_ECONN (the subscription stays and
 * is restored, with a gap, when the connection comes back).  Several
 * subscribers may share a channel; each is called.  arg is borrowed until
 * dorm_unlisten or the database is closed.  Returns a borrowed deferred,
 * or NULL (out of memory, NULL arguments, or db is not a PostgreSQL
 * database: see dorm_db_backend_name). */
DORM_EXTERN dorm_deferred *dorm_listen(dorm_db *db, const char *channel,
                                       dorm_notify_fn fn, void *arg);
/* Remove the subscription (channel, fn, arg): fn is not called for it
 * after this returns.  The channel is UNLISTENed when its last subscriber
 * goes; the deferred succeeds once that is done, or fails with
 * DORM_EINVAL when there was no such subscription.  Returns a borrowed
 * deferred or NULL (as dorm_listen). */
DORM_EXTERN dorm_deferred *dorm_unlisten(dorm_db *db, const char *channel,
                                         dorm_notify_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* DORM_DB_H */
