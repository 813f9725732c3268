/* SPDX-License-Identifier: MIT */
/* dorm/iterate.h — streaming reads: a query's rows delivered in chunks
 * on the loop thread, with memory bounded by one chunk whatever the size
 * of the result (Django's QuerySet.iterator(chunk_size=), asyncpg's
 * cursors).
 *
 *     static int on_chunk(dorm_iter *it, const dorm_rows *chunk, void *a) {
 *       for (size_t i = 0; i < dorm_rows_count(chunk); i++)
 *         export_row(dorm_rows_row(chunk, i));
 *       return DORM_ITER_CONTINUE;   // fetch the next chunk
 *     }
 *     dorm_deferred *d = dorm_async_iterate(db, q, 1000, on_chunk, NULL);
 *     dorm_query_free(q);             // compiled during the call
 *     dorm_deferred_add_callbacks(d, exported, failed, NULL);
 *
 * The next chunk is fetched only once the callback for the previous one
 * has returned DORM_ITER_CONTINUE, or — for an asynchronous consumer that
 * returned DORM_ITER_PAUSE (it is writing the chunk to a slow socket,
 * say) — once it calls dorm_iter_resume.  So at most one chunk is held
 * at a time, by the consumer or on its way (docs/streaming.md says
 * exactly what each backend holds).
 *
 * Where the rows come from: on PostgreSQL a server-side cursor (DECLARE
 * ... NO SCROLL CURSOR, FETCH n) in a transaction of its own, on a
 * connection of its own opened for the stream, so a long stream never
 * holds one of the pool's connections; on a SQLite file, a read-only
 * connection of its own stepped chunk by chunk on libuv's worker threads
 * (WAL: the writer is never blocked, the readers are never taken).  A
 * SQLite memory database has one connection for everything and cannot
 * stream: it is refused (DORM_EUNSUPPORTED).
 *
 * RULES (with those of dorm/db.h)
 *   - fn runs on the loop thread, never inside dorm_async_iterate or
 *     dorm_iter_resume.  Each chunk holds 1 .. chunk_rows rows in the
 *     query's order; no chunk is empty.  select_related rows are joined
 *     as in dorm_async_filter; prefetch_related relations are read for
 *     each chunk before fn sees it (one query per relation per chunk).
 *   - The chunk is borrowed: valid until fn returns, or with
 *     DORM_ITER_PAUSE until dorm_iter_resume (or the end of the stream).
 *   - The final deferred fires exactly once: DORM_RESULT_COUNT, the rows
 *     delivered, when the rows ran out or fn returned DORM_ITER_STOP; or
 *     the error (the query's, a lost connection: DORM_ECONN, a killed
 *     backend, DORM_ECLOSED when the database is closed, DORM_ECANCELED
 *     when the deferred is cancelled, DORM_ETIMEDOUT with
 *     dorm_deferred_set_timeout).  fn is never called after it fired.
 *     Stopping (DORM_ITER_STOP, cancel, close) stops the query on the
 *     server and frees the connection; with DORM_ITER_STOP the deferred
 *     fires once that is done.
 *   - it is valid from the first call of fn until the final deferred's
 *     steps have run: do not use it afterwards.
 */
#ifndef DORM_ITERATE_H
#define DORM_ITERATE_H

#include <stddef.h>
#include <stdint.h>

#include "dorm/version.h"
#include "dorm/db.h"
#include "dorm/deferred.h"
#include "dorm/query.h"
#include "dorm/rows.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A stream in progress; owned by dorm (see RULES). */
typedef struct dorm_iter dorm_iter;

/* What fn returns. */
typedef enum dorm_iter_action {
  DORM_ITER_CONTINUE = 0, /* done with the chunk: fetch the next one */
  DORM_ITER_STOP = 1,     /* enough: stop the query, succeed with the count */
  DORM_ITER_PAUSE = 2     /* keep the chunk; dorm_iter_resume fetches on */
} dorm_iter_action;

/* Called with each chunk (borrowed, see RULES) and the arg given to
 * dorm_async_iterate.  Returns a dorm_iter_action; any other value is
 * DORM_ITER_STOP. */
typedef int (*dorm_iter_fn)(dorm_iter *it, const dorm_rows *chunk, void *arg);

/* Default rows per chunk when chunk_rows is 0 (Django's 2000). */
#define DORM_ITER_DEFAULT_CHUNK 2000

/* Stream the rows of q, a SELECT query (compiled during the call, see
 * dorm/db.h RULES), chunk_rows at a time (0: DORM_ITER_DEFAULT_CHUNK),
 * to fn(it, chunk, arg).  arg is borrowed until the final deferred has
 * fired.  Not on a transaction handle (a stream reads on a connection
 * of its own): DORM_EINVAL through the errback, as is a query that is
 * not a SELECT.  Returns the final deferred (borrowed, as every
 * dorm_async_* call's), or NULL (out of memory, db or fn NULL). */
DORM_EXTERN dorm_deferred *dorm_async_iterate(dorm_db *db, const dorm_query *q,
                                              size_t chunk_rows,
                                              dorm_iter_fn fn, void *arg);

/* After fn returned DORM_ITER_PAUSE: release the chunk it kept and fetch
 * the next one (fn runs on a later loop turn, never inside this call).
 * Does nothing when the stream is not paused (or is stopping). */
DORM_EXTERN void dorm_iter_resume(dorm_iter *it);

/* Rows delivered to fn so far (the chunk being handled included). */
DORM_EXTERN uint64_t dorm_iter_rows(const dorm_iter *it);

#ifdef __cplusplus
}
#endif
#endif /* DORM_ITERATE_H */
