/* SPDX-License-Identifier: MIT */
/* backends/sqlite/sqlite_int.h — what the SQLite backend's files share:
 * sqlite.c (the worker threads, the backend table) lends its connection
 * set-up, parameter binding and row decoding to sqlite_stream.c (streaming
 * reads), which keeps the stream entries of the table.
 *
 * The sqlite3 functions here run on a worker thread (never the loop's);
 * the stream entries run on the loop thread.
 */
#ifndef DORM_SQLITE_INT_H
#define DORM_SQLITE_INT_H

#include <sqlite3.h>

#include "backends/backend_int.h"

/* A connection to file (NULL: memory) set up as the backend's are
 * (busy timeout, synchronous, foreign keys, dorm_div and REGEXP; a
 * reader is query_only), or NULL with err filled (DORM_EIO). */
sqlite3 *dorm__sq_open(const char *file, const char *sync, int busy_ms,
                       int writer, dorm_error *err);
/* Bind st's parameters to s.  0, or -1 with *res the error. */
int dorm__sq_bind(sqlite3_stmt *s, const dorm__stmt *st, dorm_result *res);
/* An error result for rc on conn, with SQLite's extended code as a
 * SQLSTATE where one fits; what: the step that failed, or NULL. */
dorm_result dorm__sq_error(sqlite3 *conn, int rc, const char *what);
/* A result set for the rows of s run for st, or NULL with *res the
 * error. */
dorm_rows *dorm__sq_rows_new(sqlite3_stmt *s, const dorm__stmt *st,
                             dorm_result *res);
/* Add the row s stands on.  0, or -1 with *res the error. */
int dorm__sq_put_row(dorm_rows *rows, sqlite3_stmt *s, dorm_result *res);

/* ---- streaming reads (sqlite_stream.c) ----------------------------------- */

/* The table's stream entries (backend_int.h); start gets what it needs
 * of the backend's state (copied: a stream may outlive the backend's
 * threads). */
int dorm__sq_stream_start(dorm_loop *loop, const char *path, const char *sync,
                          int busy_ms, dorm__stream *s, dorm_error *err);
void dorm__sq_stream_more(void *state, dorm__stream *s);
void dorm__sq_stream_stop(void *state, dorm__stream *s);

#endif /* DORM_SQLITE_INT_H */
