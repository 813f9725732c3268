/* SPDX-License-Identifier: MIT */
/* backends/sqlite/sqlite_stream.c — streaming reads on SQLite (the backend
 * table's stream entries, backend_int.h): a read-only connection of the
 * stream's own, stepped chunk by chunk on libuv's worker threads.
 *
 * Why not a reader thread of the backend: a statement left open between
 * chunks holds its connection's read transaction, so every other read
 * on that reader would see the snapshot of the stream's start for as long
 * as the stream lasts, and a paused stream would hold a reader the pool
 * needs.  A connection of its own keeps the readers free and fresh; WAL
 * lets the writer commit meanwhile (the stream keeps reading its
 * snapshot; the WAL cannot be checkpointed past it until it ends).
 *
 * Each chunk is one job (dorm_run_in_thread): the first opens the
 * connection (dorm__sq_open, as a reader: query_only, REGEXP, ...),
 * prepares and binds the statement; every job steps at most chunk_rows
 * rows into a new result.  A job runs only after stream_more, so the
 * statement waits, holding no rows of ours, while the consumer is busy.
 * The connection and the statement are used by one thread at a time
 * (the jobs are sequential), closed by the job that reads the last row
 * or fails, or by a closing job after a stop; stream_stop interrupts a
 * running step (sqlite3_interrupt, under the mutex that guards conn).
 * A memory database is one connection's: it cannot stream (refused).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "backends/sqlite/sqlite_int.h"
#include "base/base_int.h"

typedef struct sq_stream {
  dorm_loop *loop;
  dorm__stream *s;
  char *path;
  char sync[8];
  int busy_ms;
  pthread_mutex_t mu; /* guards conn against stream_stop's interrupt */
  sqlite3 *conn;      /* the jobs' (one at a time) */
  sqlite3_stmt *stmt;
  int stop; /* under mu: a stop was asked */
  int job;  /* a job is running (loop thread) */
  int last; /* the statement is done: the last chunk went out */
  int ending;
} sq_stream;

static void st_free(sq_stream *st) {
  pthread_mutex_destroy(&st->mu);
  dorm__free(st->path);
  dorm__free(st);
}

/* Worker thread: finalize and close (with mu: the interrupt reads conn). */
static void close_conn(sq_stream *st) {
  if (st->stmt) sqlite3_finalize(st->stmt);
  st->stmt = NULL;
  pthread_mutex_lock(&st->mu);
  sqlite3 *c = st->conn;
  st->conn = NULL;
  pthread_mutex_unlock(&st->mu);
  if (c) sqlite3_close(c);
}

/* Worker thread: the next chunk. */
static dorm_result chunk_work(void *arg) {
  sq_stream *st = arg;
  const dorm__stmt *ps = st->s->stmt;
  dorm_result res = dorm_result_none();
  if (!st->conn) {
    dorm_error err;
    dorm_error_clear(&err);
    sqlite3 *c = dorm__sq_open(st->path, st->sync, st->busy_ms, 0, &err);
    if (!c) return dorm_result_error_from(&err);
    pthread_mutex_lock(&st->mu);
    st->conn = c;
    int stop = st->stop;
    pthread_mutex_unlock(&st->mu);
    if (stop) {
      close_conn(st);
      return dorm_result_error(DORM_ECANCELED, NULL);
    }
    int rc = sqlite3_prepare_v2(c, ps->sql, (int)ps->len, &st->stmt, NULL);
    if (rc != SQLITE_OK) {
      res = dorm__sq_error(c, rc, "prepare");
      close_conn(st);
      return res;
    }
    if (dorm__sq_bind(st->stmt, ps, &res)) {
      close_conn(st);
      return res;
    }
  }
  dorm_rows *rows = dorm__sq_rows_new(st->stmt, ps, &res);
  if (!rows) {
    close_conn(st);
    return res;
  }
  size_t n = 0;
  int rc = SQLITE_ROW;
  while (n < st->s->chunk_rows && (rc = sqlite3_step(st->stmt)) == SQLITE_ROW) {
    if (dorm__sq_put_row(rows, st->stmt, &res)) {
      dorm__rows_free(rows);
      close_conn(st);
      return res;
    }
    n++;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    res = dorm__sq_error(st->conn, rc, NULL);
    dorm__rows_free(rows);
    close_conn(st);
    return res;
  }
  if (rc == SQLITE_DONE) {
    st->last = 1;
    close_conn(st);
  }
  if (dorm__rows_finish(rows)) {
    dorm__rows_free(rows);
    close_conn(st);
    return dorm_result_error(DORM_ENOMEM, NULL);
  }
  return dorm__rows_result(rows);
}

/* Worker thread: close after a stop. */
static dorm_result close_work(void *arg) {
  close_conn(arg);
  return dorm_result_none();
}

static dorm_result end_step(dorm_result *r, void *arg) {
  (void)r;
  sq_stream *st = arg;
  dorm__stream *s = st->s;
  int stopped = st->stop;
  dorm_result res =
      stopped ? dorm_result_error(DORM_ECANCELED, NULL) : dorm_result_none();
  close_conn(st); /* nothing left normally; a fallback closes inline */
  st_free(st);
  s->backend_data = NULL;
  s->end(s, res);
  return dorm_result_none();
}

/* End the stream on a later turn: close the connection on a worker thread
 * first if it is open (inline when the loop refuses jobs: a read-only
 * connection with nothing pending closes at once). */
static void end_later(sq_stream *st) {
  st->ending = 1;
  dorm_deferred *d =
      st->conn ? dorm_run_in_thread(st->loop, close_work, st) : NULL;
  if (!d) {
    d = dorm_deferred_new(NULL, NULL);
    if (!d) { /* out of memory: end now rather than never */
      close_conn(st);
      dorm__stream *s = st->s;
      int stopped = st->stop;
      st_free(st);
      s->backend_data = NULL;
      s->end(s, stopped ? dorm_result_error(DORM_ECANCELED, NULL)
                        : dorm_result_none());
      return;
    }
    dorm_deferred_fire_soon(st->loop, d, dorm_result_none());
  }
  /* a new deferred has room for its first step */
  dorm_deferred_add_both(d, end_step, st);
}

static dorm_result chunk_done(dorm_result *r, void *arg) {
  sq_stream *st = arg;
  st->job = 0;
  dorm__stream *s = st->s;
  dorm_result res = dorm_result_take(r);
  pthread_mutex_lock(&st->mu);
  int stop = st->stop;
  pthread_mutex_unlock(&st->mu);
  if (stop) {
    dorm_result_free(&res);
    end_later(st);
    return dorm_result_none();
  }
  if (dorm_result_is_error(&res)) {
    /* the job closed the connection */
    close_conn(st);
    st_free(st);
    s->backend_data = NULL;
    s->end(s, res);
    return dorm_result_none();
  }
  dorm_rows *rows = res.u.rows.rows;
  if (dorm_rows_count(rows) == 0) {
    dorm__rows_free(rows);
    close_conn(st);
    st_free(st);
    s->backend_data = NULL;
    s->end(s, dorm_result_none());
    return dorm_result_none();
  }
  s->chunk(s, rows); /* may call stream_more or stream_stop */
  return dorm_result_none();
}

/* Start the next chunk's job.  0, or -1 (the loop refused it). */
static int run_chunk(sq_stream *st) {
  dorm_deferred *d = dorm_run_in_thread(st->loop, chunk_work, st);
  if (!d) return -1;
  st->job = 1;
  /* a new deferred has room for its first step */
  dorm_deferred_add_both(d, chunk_done, st);
  return 0;
}

int dorm__sq_stream_start(dorm_loop *loop, const char *path, const char *sync,
                          int busy_ms, dorm__stream *s, dorm_error *err) {
  if (!path)
    return dorm_error_set(err, DORM_EUNSUPPORTED,
                          "iterate: a SQLite memory database has one "
                          "connection and cannot stream (use a file "
                          "database, or dorm_async_filter)");
  sq_stream *st = dorm__calloc(1, sizeof *st);
  size_t n = strlen(path) + 1;
  char *p = st ? dorm__malloc(n) : NULL;
  if (!p) {
    dorm__free(st);
    return dorm_error_set(err, DORM_ENOMEM, "out of memory");
  }
  memcpy(p, path, n);
  st->path = p;
  snprintf(st->sync, sizeof st->sync, "%s", sync ? sync : "NORMAL");
  st->busy_ms = busy_ms;
  st->loop = loop;
  st->s = s;
  pthread_mutex_init(&st->mu, NULL);
  if (run_chunk(st)) {
    st_free(st);
    return dorm_error_set(err, DORM_ECLOSED, "iterate: the loop is closing");
  }
  s->backend_data = st;
  return 0;
}

void dorm__sq_stream_more(void *state, dorm__stream *s) {
  (void)state;
  sq_stream *st = s->backend_data;
  if (!st || st->job || st->ending) return;
  if (st->last || run_chunk(st)) end_later(st);
}

void dorm__sq_stream_stop(void *state, dorm__stream *s) {
  (void)state;
  sq_stream *st = s->backend_data;
  if (!st || st->ending) return;
  pthread_mutex_lock(&st->mu);
  if (st->stop) {
    pthread_mutex_unlock(&st->mu);
    return;
  }
  st->stop = 1;
  if (st->conn) sqlite3_interrupt(st->conn);
  pthread_mutex_unlock(&st->mu);
  if (!st->job) end_later(st); /* a running job ends it when it is back */
}
