/* SPDX-License-Identifier: MIT */
/* backends/pg/pg_stream.c — streaming reads on PostgreSQL (the backend
 * table's stream entries, backend_int.h): a server-side cursor on a
 * connection of the stream's own.
 *
 * Each stream opens one more connection to the primary (the pool's
 * configuration: same URL, options, PgBouncer mode) and runs, in libpq's
 * non-blocking pipeline mode on the loop,
 *
 *     BEGIN; DECLARE dorm_stream NO SCROLL CURSOR FOR <query>;
 *     FETCH FORWARD n FROM dorm_stream         -- one Sync: one round trip
 *     FETCH FORWARD n FROM dorm_stream         -- after stream_more only
 *     ...
 *     COMMIT                                   -- a short FETCH: the end
 *
 * and closes the connection.  The first FETCH comes back as text; when
 * its columns are all integers, doubles, booleans and text, the others
 * come back in binary (below: no parse per value).  Why a cursor rather
 * than libpq's single-row mode, and why a connection of its own:
 * docs/postgresql.md, "Streaming reads".  In short: FETCH n gives n rows
 * per result (libpq 15 has no chunked mode; single-row mode pays a
 * PGresult per row), the server holds the rest, so memory on our side
 * is one chunk whatever the consumer's pace, nothing runs on the server
 * between chunks, and the whole stream is one transaction, so
 * PgBouncer's transaction pooling keeps it on one server connection.  A
 * pool connection is never taken:
 * a stream that lasts minutes cannot stall the pool, even a pool of one.
 *
 * Stopping: while a FETCH runs the server is asked to cancel it (PQcancel
 * on a worker thread, as pg_conn.c does) and the connection is closed;
 * between chunks closing it is enough (the server rolls back and the
 * backend exits).  The stream's `end` runs once the cancel has been
 * delivered, on a later turn, never inside stream_stop.  A lost
 * connection (a backend killed, a server restart) ends the stream with
 * DORM_ECONN; it is never retried (rows already delivered cannot be
 * taken back).  Each live stream counts as a job of the pool
 * (dorm__pg_pool_job), so closing the pool waits for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/pg/pg_int.h"

enum st_state {
  ST_CONNECTING,
  ST_BUSY,     /* a batch is out, its Sync not back */
  ST_IDLE,     /* a full chunk delivered: FETCH again on stream_more */
  ST_LAST,     /* the last (short) chunk delivered: COMMIT on stream_more */
  ST_STOPPING, /* a cancel job is running */
  ST_DONE
};

enum st_batch { B_OPEN, B_FETCH, B_COMMIT };

typedef struct pg_stream {
  dorm__pg_pool *pool;
  dorm__stream *s;
  PGconn *pg;
  dorm_poll *poll;
  dorm_timer *timer; /* connect timeout, or the end on a later turn */
  int fd;
  int interest;
  enum st_state state;
  enum st_batch batch;
  int queries_left;    /* queries of the batch whose results have not ended */
  dorm_rows *rows;     /* the batch's FETCH result */
  dorm_result err;     /* the batch's first error */
  dorm_result end_res; /* for an end on a later turn */
  int end_armed;
  dorm__pg_params params;
  int binary;    /* FETCH in binary: every column's type allows it */
  char *declare; /* "DECLARE ... FOR <sql>" */
  char fetch[64];
} pg_stream;

static void st_poll_cb(dorm_poll *p, int status, int events, void *arg);

/* A PGresult read as the codec's cells (pg_wire.h). */
static const char *res_name(const void *src, int col) {
  return PQfname((const PGresult *)src, col);
}

static Oid res_type(const void *src, int col) {
  return PQftype((const PGresult *)src, col);
}

static int res_cell(const void *src, int row, int col, const char **text,
                    size_t *len) {
  const PGresult *res = src;
  *text = PQgetvalue(res, row, col);
  *len = (size_t)PQgetlength(res, row, col);
  return PQgetisnull(res, row, col);
}

static void conn_close(pg_stream *st) {
  if (st->poll) dorm_poll_set_fd(st->poll, -1);
  st->fd = -1;
  if (st->pg) PQfinish(st->pg);
  st->pg = NULL;
}

/* The end: tell the facade, release everything. */
static void st_finish(pg_stream *st, dorm_result res) {
  dorm__pg_pool *pool = st->pool;
  dorm__stream *s = st->s;
  conn_close(st);
  if (st->poll) dorm_poll_close(st->poll);
  if (st->timer) dorm_timer_close(st->timer);
  dorm__rows_free(st->rows);
  dorm_result_free(&st->err);
  dorm_result_free(&st->end_res);
  dorm__pg_params_free(&st->params);
  dorm__free(st->declare);
  dorm__free(st);
  s->backend_data = NULL;
  s->end(s, res);
  dorm__pg_pool_job(pool, -1);
}

/* End on a later turn (not inside the facade's call). */
static void st_finish_later(pg_stream *st, dorm_result res) {
  conn_close(st);
  st->state = ST_DONE;
  dorm_result_free(&st->end_res);
  st->end_res = res;
  st->end_armed = 1;
  dorm_timer_start(st->timer, 0, 0);
}

static void st_timer_cb(dorm_timer *t, void *arg) {
  (void)t;
  pg_stream *st = arg;
  if (st->end_armed) {
    st_finish(st, dorm_result_take(&st->end_res));
    return;
  }
  if (st->state == ST_CONNECTING)
    st_finish(st, dorm_result_error(DORM_ECONN,
                                    "postgresql: stream: timeout while "
                                    "connecting"));
}

static void set_interest(pg_stream *st, int ev) {
  st->interest = ev;
  dorm_poll_set(st->poll, ev);
}

static int watch(pg_stream *st) {
  int fd = st->pg ? PQsocket(st->pg) : -1;
  if (fd != st->fd) {
    if (dorm_poll_set_fd(st->poll, fd)) return -1;
    st->fd = fd;
  }
  dorm_poll_set(st->poll, st->interest);
  return 0;
}

static dorm_result conn_error(pg_stream *st, const char *what) {
  const char *m = st->pg ? PQerrorMessage(st->pg) : "";
  char msg[300];
  snprintf(msg, sizeof msg, "%s", m && *m ? m : what);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
  return dorm_result_error(DORM_ECONN, "postgresql: stream: %s", msg);
}

static void flush_out(pg_stream *st) {
  int f = PQflush(st->pg);
  if (f < 0) {
    st_finish(st, conn_error(st, "cannot send"));
    return;
  }
  set_interest(st, DORM_READABLE | (f ? DORM_WRITABLE : 0));
}

/* Queue the queries of a batch and its Sync.  0, or -1 (st finished). */
static int send_batch(pg_stream *st, enum st_batch b) {
  PGconn *pg = st->pg;
  int ok = 1, nq = 0;
  if (b == B_OPEN) {
    const dorm__pg_params *pp = &st->params;
    ok = PQsendQueryParams(pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
         PQsendQueryParams(pg, st->declare, (int)st->s->stmt->nparams,
                           pp->types, pp->val, pp->len, pp->fmt, 0);
    nq = 2;
  }
  if (ok && b != B_COMMIT) {
    ok = PQsendQueryParams(pg, st->fetch, 0, NULL, NULL, NULL, NULL,
                           b == B_FETCH && st->binary);
    nq++;
  }
  if (ok && b == B_COMMIT) {
    ok = PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    nq++;
  }
  if (!ok || !PQpipelineSync(pg)) {
    st_finish(st, conn_error(st, "cannot send"));
    return -1;
  }
  st->batch = b;
  st->queries_left = nq;
  st->state = ST_BUSY;
  flush_out(st);
  return 0;
}

/* ---- binary results ------------------------------------------------------
 *
 * Text results cost a parse per value (strtod for a double is most of a
 * stream's decoding time).  After the first FETCH (text, so its column
 * types are known) the rest are fetched in binary when every column is
 * one whose binary form is trivial and whose dorm type takes it as is:
 * integers, doubles, booleans, text.  Anything else (numeric, dates,
 * uuid, json, bytea; select_related columns, whose types the statement
 * does not list) stays in text, decoded by pg_wire.c as everywhere. */

static int binary_fits(Oid oid, dorm_type t) {
  switch (oid) {
    case DORM__PG_OID_INT2:
    case DORM__PG_OID_INT4:
    case DORM__PG_OID_INT8: return t == DORM_T_INT;
    case DORM__PG_OID_FLOAT4:
    case DORM__PG_OID_FLOAT8: return t == DORM_T_FLOAT;
    case DORM__PG_OID_BOOL: return t == DORM_T_BOOL;
    case DORM__PG_OID_TEXT:
    case DORM__PG_OID_VARCHAR: return t == DORM_T_TEXT;
    default: return 0;
  }
}

static int binary_all(const dorm__stmt *st, const PGresult *r) {
  int nf = PQnfields(r);
  if (!st->columns || st->nrelated || (size_t)nf != st->ncolumns) return 0;
  for (int c = 0; c < nf; c++)
    if (!binary_fits(PQftype(r, c), st->columns[c].type)) return 0;
  return 1;
}

static uint64_t be_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static uint32_t be_u32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static dorm_result decode_binary(const dorm__stmt *st, const PGresult *r) {
  int nf = PQnfields(r), nt = PQntuples(r);
  dorm_rows *rows = dorm__rows_new(st, 0);
  if (!rows) return dorm_result_error(DORM_ENOMEM, NULL);
  for (int row = 0; row < nt; row++) {
    if (dorm__rows_add_row(rows)) goto oom;
    for (int col = 0; col < nf; col++) {
      if (PQgetisnull(r, row, col)) continue;
      const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
      int len = PQgetlength(r, row, col), rc = 0, bad = 0;
      switch (PQftype(r, col)) {
        case DORM__PG_OID_INT8:
          bad = len != 8;
          if (!bad)
            rc = dorm__rows_put_int(rows, (size_t)col, (int64_t)be_u64(v));
          break;
        case DORM__PG_OID_INT4:
          bad = len != 4;
          if (!bad)
            rc = dorm__rows_put_int(rows, (size_t)col, (int32_t)be_u32(v));
          break;
        case DORM__PG_OID_INT2:
          bad = len != 2;
          if (!bad)
            rc = dorm__rows_put_int(rows, (size_t)col,
                                    (int16_t)(uint16_t)(v[0] << 8 | v[1]));
          break;
        case DORM__PG_OID_FLOAT8: {
          bad = len != 8;
          uint64_t bits = bad ? 0 : be_u64(v);
          double d;
          memcpy(&d, &bits, sizeof d);
          if (!bad) rc = dorm__rows_put_float(rows, (size_t)col, d);
          break;
        }
        case DORM__PG_OID_FLOAT4: {
          bad = len != 4;
          uint32_t bits = bad ? 0 : be_u32(v);
          float f;
          memcpy(&f, &bits, sizeof f);
          if (!bad) rc = dorm__rows_put_float(rows, (size_t)col, (double)f);
          break;
        }
        case DORM__PG_OID_BOOL:
          bad = len != 1;
          if (!bad) rc = dorm__rows_put_int(rows, (size_t)col, v[0] != 0);
          break;
        default: /* text, varchar: the same bytes as in text */
          rc = dorm__rows_put_text(rows, (size_t)col, (const char *)v,
                                   (size_t)len);
          break;
      }
      if (rc == DORM_ENOMEM) goto oom;
      if (bad || rc) {
        dorm__rows_free(rows);
        return dorm_result_error(DORM_ETYPE,
                                 "postgresql: column %d: a binary value of "
                                 "%d bytes that does not fit its type",
                                 col + 1, len);
      }
    }
  }
  if (dorm__rows_finish(rows)) goto oom;
  return dorm__rows_result(rows);
oom:
  dorm__rows_free(rows);
  return dorm_result_error(DORM_ENOMEM, NULL);
}

static void keep_error(pg_stream *st, const PGresult *r) {
  if (st->err.kind != DORM_RESULT_NONE) return;
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char *prim = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
  if (!prim) {
    st->err = conn_error(st, PQresStatus(PQresultStatus(r)));
    return;
  }
  st->err = dorm__pg_error(state, prim, detail);
  /* a backend terminated by the administrator, a server shutting down:
   * the connection is gone (SQLSTATE class 57P0x) */
  if (state && !strncmp(state, "57P0", 4)) st->err.u.error.code = DORM_ECONN;
}

/* The batch's Sync came back. */
static void batch_done(pg_stream *st) {
  if (st->err.kind != DORM_RESULT_NONE) {
    st_finish(st, dorm_result_take(&st->err));
    return;
  }
  if (st->batch == B_COMMIT) {
    st_finish(st, dorm_result_none());
    return;
  }
  dorm_rows *rows = st->rows;
  st->rows = NULL;
  size_t n = rows ? dorm_rows_count(rows) : 0;
  if (n == 0) {
    dorm__rows_free(rows);
    send_batch(st, B_COMMIT);
    return;
  }
  st->state = n < st->s->chunk_rows ? ST_LAST : ST_IDLE;
  st->s->chunk(st->s, rows); /* may call stream_more / stream_stop */
}

/* Read what the server sent.  st may be finished on return (-1). */
static int read_results(pg_stream *st) {
  if (!PQconsumeInput(st->pg)) {
    st_finish(st, conn_error(st, "connection lost"));
    return -1;
  }
  while (st->state == ST_BUSY && !PQisBusy(st->pg)) {
    PGresult *r = PQgetResult(st->pg);
    if (!r) {
      if (st->queries_left > 0) {
        st->queries_left--;
        continue;
      }
      break;
    }
    ExecStatusType t = PQresultStatus(r);
    if (t == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      batch_done(st);
      return 0; /* st may be gone, or busy with the next batch */
    }
    if (t == PGRES_TUPLES_OK && st->err.kind == DORM_RESULT_NONE) {
      dorm__pg_cells in = {PQnfields(r), PQntuples(r), r,
                           res_name,     res_type,     res_cell};
      dorm_result rr = PQbinaryTuples(r)
                           ? decode_binary(st->s->stmt, r)
                           : dorm__pg_decode_rows(st->s->stmt, &in, 0);
      if (st->batch == B_OPEN) st->binary = binary_all(st->s->stmt, r);
      if (dorm_result_is_error(&rr)) {
        st->err = rr;
      } else {
        dorm__rows_free(st->rows);
        st->rows = rr.u.rows.rows;
      }
    } else if (t == PGRES_FATAL_ERROR || t == PGRES_BAD_RESPONSE ||
               t == PGRES_NONFATAL_ERROR) {
      keep_error(st, r);
    }
    PQclear(r);
  }
  if (PQstatus(st->pg) == CONNECTION_BAD) {
    dorm_result e = st->err.kind != DORM_RESULT_NONE
                        ? dorm_result_take(&st->err)
                        : conn_error(st, "connection lost");
    st_finish(st, e);
    return -1;
  }
  return 0;
}

static void connected(pg_stream *st) {
  dorm_timer_stop(st->timer);
  if (PQsetnonblocking(st->pg, 1) != 0 || PQenterPipelineMode(st->pg) != 1) {
    st_finish(st, conn_error(st, "cannot enter pipeline mode"));
    return;
  }
  set_interest(st, DORM_READABLE);
  if (watch(st)) {
    st_finish(st, dorm_result_error(DORM_ENOMEM, NULL));
    return;
  }
  send_batch(st, B_OPEN);
}

static void connect_step(pg_stream *st) {
  switch (PQconnectPoll(st->pg)) {
    case PGRES_POLLING_OK: connected(st); return;
    case PGRES_POLLING_FAILED:
      st_finish(st, conn_error(st, "cannot connect"));
      return;
    case PGRES_POLLING_READING: st->interest = DORM_READABLE; break;
    default: st->interest = DORM_WRITABLE; break;
  }
  if (watch(st)) st_finish(st, dorm_result_error(DORM_ENOMEM, NULL));
}

static void st_poll_cb(dorm_poll *p, int status, int events, void *arg) {
  (void)p;
  pg_stream *st = arg;
  if (st->state == ST_DONE || st->state == ST_STOPPING || !st->pg) return;
  if (st->state == ST_CONNECTING) {
    connect_step(st);
    return;
  }
  if (status < 0) {
    st_finish(st, conn_error(st, "socket error"));
    return;
  }
  if (events & DORM_WRITABLE) {
    flush_out(st);
    if (!st->pg) return;
  }
  if (events & DORM_READABLE) {
    /* between chunks nothing is expected: a read here is the server
     * closing the connection (it is then noticed), or a notice */
    read_results(st);
  }
}

static void quiet_notices(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

/* ---- cancel ------------------------------------------------------------- */

typedef struct cancel_job {
  PGcancel *pc;
  pg_stream *st;
  char err[256];
} cancel_job;

/* Worker thread: PQcancel blocks until the postmaster took it. */
static dorm_result cancel_work(void *arg) {
  cancel_job *j = arg;
  PQcancel(j->pc, j->err, sizeof j->err);
  return dorm_result_none();
}

static dorm_result cancel_done(dorm_result *res, void *arg) {
  (void)res;
  cancel_job *j = arg;
  pg_stream *st = j->st;
  PQfreeCancel(j->pc);
  dorm__free(j);
  st_finish(st, dorm_result_error(DORM_ECANCELED, NULL));
  return dorm_result_none();
}

/* ---- the backend table's entries ---------------------------------------- */

int dorm__pg_stream_start(dorm__pg_pool *p, dorm__stream *s, dorm_error *err) {
  if (p->closing) return dorm_error_set(err, DORM_ECLOSED, NULL);
  dorm_result chk = dorm__pg_stmt_check(s->stmt);
  if (dorm_result_is_error(&chk)) {
    int code = chk.u.error.code;
    dorm_error_set(err, code, "%s", dorm_result_message(&chk));
    dorm_result_free(&chk);
    return code;
  }
  pg_stream *st = dorm__calloc(1, sizeof *st);
  if (!st) return dorm_error_set(err, DORM_ENOMEM, "out of memory");
  st->pool = p;
  st->s = s;
  st->fd = -1;
  dorm__pg_params_init(&st->params);
  static const char pre[] = "DECLARE dorm_stream NO SCROLL CURSOR FOR ";
  st->declare = dorm__malloc(sizeof pre + s->stmt->len);
  st->poll = dorm_poll_new(p->loop, -1, st_poll_cb, st);
  st->timer = dorm_timer_new(p->loop, st_timer_cb, st);
  int rc = 0;
  char why[200] = "";
  if (!st->declare || !st->poll || !st->timer) {
    rc = dorm_error_set(err, DORM_ENOMEM, "out of memory");
  } else if ((rc = dorm__pg_params_encode(&st->params, s->stmt, why,
                                          sizeof why))) {
    dorm_error_set(err, rc, "postgresql: %s", why[0] ? why : "out of memory");
  }
  if (!rc) {
    memcpy(st->declare, pre, sizeof pre - 1);
    memcpy(st->declare + sizeof pre - 1, s->stmt->sql, s->stmt->len);
    st->declare[sizeof pre - 1 + s->stmt->len] = '\0';
    snprintf(st->fetch, sizeof st->fetch, "FETCH FORWARD %zu FROM dorm_stream",
             s->chunk_rows);
    st->pg = PQconnectStartParams(p->cfg.keys, p->cfg.vals, 0);
    if (!st->pg) rc = dorm_error_set(err, DORM_ENOMEM, "out of memory");
  }
  if (rc) {
    if (st->pg) PQfinish(st->pg);
    if (st->poll) dorm_poll_close(st->poll);
    if (st->timer) dorm_timer_close(st->timer);
    dorm__pg_params_free(&st->params);
    dorm__free(st->declare);
    dorm__free(st);
    return rc;
  }
  s->backend_data = st;
  dorm__pg_pool_job(p, 1);
  st->state = ST_CONNECTING;
  if (PQstatus(st->pg) == CONNECTION_BAD) {
    st_finish_later(st, conn_error(st, "cannot connect"));
    return 0;
  }
  PQsetNoticeProcessor(st->pg, quiet_notices, NULL);
  if (p->cfg.connect_timeout_ms)
    dorm_timer_start(st->timer, p->cfg.connect_timeout_ms, 0);
  /* libpq: before the first PQconnectPoll, wait until writable */
  st->interest = DORM_WRITABLE;
  if (watch(st)) st_finish_later(st, dorm_result_error(DORM_ENOMEM, NULL));
  return 0;
}

void dorm__pg_stream_more(dorm__pg_pool *p, dorm__stream *s) {
  (void)p;
  pg_stream *st = s->backend_data;
  if (!st) return;
  if (st->state == ST_IDLE)
    send_batch(st, B_FETCH);
  else if (st->state == ST_LAST)
    send_batch(st, B_COMMIT);
}

void dorm__pg_stream_stop(dorm__pg_pool *p, dorm__stream *s) {
  pg_stream *st = s->backend_data;
  if (!st || st->state == ST_DONE || st->state == ST_STOPPING) return;
  if (st->state == ST_BUSY && st->pg) {
    /* a FETCH (or the DECLARE) may be running: ask the server to stop
     * it, so the query is gone when the stream ends */
    cancel_job *j = dorm__calloc(1, sizeof *j);
    PGcancel *pc = j ? PQgetCancel(st->pg) : NULL;
    dorm_deferred *d = NULL;
    if (pc) {
      j->pc = pc;
      j->st = st;
      d = dorm_run_in_thread(p->loop, cancel_work, j);
    }
    if (d) {
      conn_close(st);
      st->state = ST_STOPPING;
      /* a new deferred has room for its first step */
      dorm_deferred_add_both(d, cancel_done, j);
      return;
    }
    if (pc) PQfreeCancel(pc);
    dorm__free(j);
  }
  st_finish_later(st, dorm_result_error(DORM_ECANCELED, NULL));
}
