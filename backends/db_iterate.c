/* SPDX-License-Identifier: MIT */
/* backends/db_iterate.c — dorm_async_iterate (dorm/iterate.h): a query's
 * rows streamed in chunks through the backend's stream entries
 * (backend_int.h), with the consumer's pace as the only pace.
 *
 * A dorm_iter holds the compiled statement, the backend's dorm__stream,
 * the final deferred and, while the consumer is paused, the chunk it
 * kept.  The backend fetches a chunk only after stream_more, and this
 * file calls stream_more only once the consumer is done with the last
 * one (fn returned CONTINUE, or dorm_iter_resume after PAUSE): one chunk
 * at a time, whatever the size of the result.  With prefetch_related
 * each chunk first goes through the same steps as a dorm_async_filter
 * result (db_prefetch.c, on a copy of the relations), so the related
 * rows are read per chunk, with the handle's routing.
 *
 * Lifetime: the iter is freed when both the backend has ended the stream
 * (its `end` ran: nothing of the backend refers to it) and no prefetch
 * chain of a chunk is running; the final deferred fires exactly once,
 * when the stream ends (or earlier, by the deferred's own cancel, or by
 * dorm_db_close, which fails it with DORM_ECLOSED at once).  Each iter
 * keeps its database alive (root->live) until it is freed.  Everything
 * runs on the loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include "backends/db_int.h"
#include "base/base_int.h"
#include "dorm/iterate.h"
#include "reactor_glue/reactor_int.h"

struct dorm_iter {
  dorm_db *db;   /* the handle the call was made on */
  dorm_db *root; /* its database */
  dorm__stream s;
  dorm_sql sql;
  dorm__stmt stmt;
  dorm_deferred *d; /* the final deferred (the maker's reference) */
  dorm_iter_fn fn;
  void *arg;
  dorm__prefetch *pf;  /* the relations to read per chunk, or NULL */
  dorm_deferred *pf_d; /* a chunk's prefetch chain running (retained) */
  dorm_rows *held;     /* the chunk kept by a paused consumer */
  uint64_t nrows;
  int started;    /* lent to the backend */
  int ended;      /* the backend's end ran */
  int stopping;   /* stop asked (STOP, cancel, close) */
  int stopped_ok; /* by DORM_ITER_STOP: success with the count */
  int paused;
  int fired;        /* dorm_deferred_fire was called on d */
  dorm_result fail; /* the first error while stopping (NONE: none) */
  struct dorm_iter *prev, *next; /* root->iters */
};

static void it_free(dorm_iter *it) {
  dorm_db *root = it->root;
  if (it->prev)
    it->prev->next = it->next;
  else if (root->iters == it)
    root->iters = it->next;
  if (it->next) it->next->prev = it->prev;
  dorm__rows_free(it->held);
  dorm__db_prefetch_free(it->pf);
  dorm_result_free(&it->fail);
  dorm_sql_free(&it->sql);
  dorm__free(it);
  root->live--;
  dorm__db_maybe_free_root(root);
}

static void it_fire(dorm_iter *it, dorm_result res) {
  if (it->fired) {
    dorm_result_free(&res);
    return;
  }
  it->fired = 1;
  dorm_deferred_fire(it->d, res);
}

/* Free it once nothing refers to it any more. */
static void it_maybe_free(dorm_iter *it) {
  if ((it->started && !it->ended) || it->pf_d) return;
  it_free(it);
}

/* Stop the stream: drop a kept chunk, stop a prefetch chain, tell the
 * backend.  The final deferred fires when the backend's end comes. */
static void it_stop(dorm_iter *it) {
  if (it->stopping) return;
  it->stopping = 1;
  it->paused = 0;
  dorm__rows_free(it->held);
  it->held = NULL;
  if (it->pf_d) dorm_deferred_cancel(it->pf_d);
  if (it->started && !it->ended && it->root->be->stream_stop)
    it->root->be->stream_stop(it->root->bstate, &it->s);
}

/* Hand a chunk (owned, prefetched relations attached) to the consumer. */
static void it_deliver(dorm_iter *it, dorm_rows *rows) {
  if (it->stopping) {
    dorm__rows_free(rows);
    return;
  }
  it->nrows += dorm_rows_count(rows);
  int rc = it->fn(it, rows, it->arg);
  if (it->stopping) { /* cancelled or closed inside fn */
    dorm__rows_free(rows);
    return;
  }
  if (rc == DORM_ITER_PAUSE) {
    it->held = rows;
    it->paused = 1;
    return;
  }
  dorm__rows_free(rows);
  if (rc == DORM_ITER_CONTINUE) {
    it->root->be->stream_more(it->root->bstate, &it->s);
    return;
  }
  it->stopped_ok = 1;
  it_stop(it);
}

/* The last step of a chunk's prefetch chain. */
static dorm_result pf_done(dorm_result *res, void *arg) {
  dorm_iter *it = arg;
  dorm_deferred *d = it->pf_d;
  it->pf_d = NULL;
  if (dorm_result_is_error(res)) {
    /* the related query failed (or was cancelled by a stop): the
     * stream fails with it */
    if (!it->stopping) {
      it->fail = dorm_result_take(res);
      it_stop(it);
    }
  } else if (res->kind == DORM_RESULT_ROWS) {
    dorm_result r = dorm_result_take(res);
    /* the result's rows are ours now: detach them from r */
    dorm_rows *rows = r.u.rows.rows;
    r.kind = DORM_RESULT_NONE;
    it_deliver(it, rows);
  }
  dorm_deferred_release(d);
  it_maybe_free(it);
  return dorm_result_none();
}

static void on_chunk(dorm__stream *s, dorm_rows *rows) {
  dorm_iter *it = (dorm_iter *)((char *)s - offsetof(dorm_iter, s));
  if (it->stopping || !it->pf) {
    it_deliver(it, rows);
    return;
  }
  dorm__prefetch *p = dorm__db_prefetch_copy(it->pf);
  dorm_deferred *d = p ? dorm_deferred_new(NULL, NULL) : NULL;
  if (!d) {
    dorm__db_prefetch_free(p);
    dorm__rows_free(rows);
    it->fail = dorm_result_error(DORM_ENOMEM, NULL);
    it_stop(it);
    return;
  }
  /* a new deferred has room for its first steps */
  d = dorm__db_prefetch_after(p, d);
  dorm_deferred_add_both(d, pf_done, it);
  it->pf_d = dorm_deferred_retain(d);
  dorm_deferred_fire(d, dorm__rows_result(rows));
}

static void on_end(dorm__stream *s, dorm_result res) {
  dorm_iter *it = (dorm_iter *)((char *)s - offsetof(dorm_iter, s));
  it->ended = 1;
  if (it->fail.kind != DORM_RESULT_NONE) {
    dorm_result_free(&res);
    res = dorm_result_take(&it->fail);
  } else if (it->stopped_ok || (!dorm_result_is_error(&res) && !it->stopping)) {
    dorm_result_free(&res);
    res = dorm_result_count((int64_t)it->nrows);
  }
  it->stopping = 1; /* nothing more reaches fn */
  dorm__rows_free(it->held);
  it->held = NULL;
  it_fire(it, res);
  /* a chunk's prefetch chain still running ends now, and its last step
   * frees it (ended is set) */
  if (it->pf_d)
    dorm_deferred_cancel(it->pf_d);
  else
    it_free(it);
}

/* The final deferred was cancelled (or timed out): it fires with
 * DORM_ECANCELED right after this; the stream stops. */
static void it_cancel(dorm_deferred *d, void *arg) {
  (void)d;
  dorm_iter *it = arg;
  if (!it->started) return; /* failing soon already */
  it_stop(it);
}

void dorm_iter_resume(dorm_iter *it) {
  if (!it || !it->paused || it->stopping) return;
  it->paused = 0;
  dorm__rows_free(it->held);
  it->held = NULL;
  it->root->be->stream_more(it->root->bstate, &it->s);
}

uint64_t dorm_iter_rows(const dorm_iter *it) { return it ? it->nrows : 0; }

void dorm__db_iters_close(dorm_db *root) {
  /* stop them all first (no end runs inside a stop, so none is freed),
   * then fail them: an errback may use the handles */
  for (dorm_iter *it = root->iters; it; it = it->next) it_stop(it);
  for (dorm_iter *it = root->iters; it; it = it->next) {
    if (it->fired) continue;
    it->fired = 1;
    dorm_deferred_fire(it->d, dorm_result_error(DORM_ECLOSED, NULL));
  }
}

/* Fail the call on a later turn (R2) and free it. */
static dorm_deferred *it_refuse(dorm_iter *it, dorm_result err) {
  dorm_deferred *d = it->d;
  it->fired = 1;
  dorm__deferred_forget_canceller(d);
  dorm_deferred_fire_soon(it->root->loop, d, err);
  it_free(it);
  return d;
}

dorm_deferred *dorm_async_iterate(dorm_db *db, const dorm_query *q,
                                  size_t chunk_rows, dorm_iter_fn fn,
                                  void *arg) {
  if (!db || !fn) return NULL;
  dorm_db *root = db->root;
  dorm_iter *it = dorm__calloc(1, sizeof *it);
  if (!it) return NULL;
  it->d = dorm_deferred_new(it_cancel, it);
  if (!it->d) {
    dorm__free(it);
    return NULL;
  }
  it->db = db;
  it->root = root;
  it->fn = fn;
  it->arg = arg;
  dorm_sql_init(&it->sql);
  root->live++;
  it->next = root->iters;
  if (it->next) it->next->prev = it;
  root->iters = it;
  if (q && dorm_query_prefetch_count(q)) {
    it->pf = dorm__db_prefetch_new(db, q);
    if (!it->pf) {
      dorm_deferred *d = it->d;
      dorm__deferred_forget_canceller(d);
      dorm_deferred_release(d);
      it_free(it);
      return NULL;
    }
  }
  dorm_error err;
  dorm_error_clear(&err);
  if (root->closed) return it_refuse(it, dorm_result_error(DORM_ECLOSED, NULL));
  if (!q) {
    dorm_error_set(&err, DORM_EINVAL, "iterate: no query");
  } else if (dorm_query_kind_of(q) != DORM_QUERY_SELECT) {
    dorm_error_set(&err, DORM_EINVAL, "iterate: not a SELECT query");
  } else if (db != root && !db->is_view) {
    dorm_error_set(&err, DORM_EINVAL,
                   "iterate: not on a transaction handle (a stream reads on "
                   "a connection of its own; use dorm_async_filter inside "
                   "the transaction)");
  } else if (!root->be->stream_start) {
    dorm_error_set(&err, DORM_EUNSUPPORTED,
                   "iterate: the %s backend cannot stream", root->be->name);
  }
  if (err.code) return it_refuse(it, dorm_result_error_from(&err));
  if (dorm_compile_ex(q, root->be->dialect, NULL, &it->sql, &err))
    return it_refuse(it, dorm_result_error_from(&err));
  const dorm_sql *s = &it->sql;
  it->stmt.sql = s->text;
  it->stmt.len = s->len;
  it->stmt.params = s->params;
  it->stmt.nparams = s->nparams;
  it->stmt.param_int4 = s->param_int4;
  it->stmt.columns = s->columns;
  it->stmt.ncolumns = s->ncolumns;
  it->stmt.related = s->related;
  it->stmt.nrelated = s->nrelated;
  it->stmt.returns_rows = 1;
  it->stmt.row_lock = s->row_lock;
  it->s.stmt = &it->stmt;
  it->s.chunk_rows = chunk_rows ? chunk_rows : DORM_ITER_DEFAULT_CHUNK;
  it->s.chunk = on_chunk;
  it->s.end = on_end;
  if (root->be->stream_start(root->bstate, &it->s, &err))
    return it_refuse(it, dorm_result_error_from(&err));
  it->started = 1;
  /* counted and shown to the query hooks as one request, from here to
   * the final deferred (its rows: the count) */
  const dorm_model *m = dorm_query_model(q);
  return dorm__db_obs_aside(root, it->d, it->sql.text, m ? m->name : NULL);
}

size_t dorm__db_streams(const dorm_db *root) {
  size_t n = 0;
  for (const dorm_iter *it = root->iters; it; it = it->next) n++;
  return n;
}
