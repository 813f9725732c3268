/* SPDX-License-Identifier: MIT */
/* backends/pg/pg_conn.c — one PostgreSQL connection on the loop: the connect
 * state machine, pipeline mode, the FIFO that matches results to what was
 * sent, and losing the connection.  What values and results look like on
 * the wire is pg_wire.c's; which statements are prepared, and under what
 * names, is pg_stmt_cache.c's.
 *
 * Connecting uses PQconnectStartParams / PQconnectPoll driven by the
 * socket watcher, with our own timer for the connect timeout (libpq only
 * honours connect_timeout in its blocking calls).  libpq may switch
 * sockets between attempts (multi-host URLs, several addresses), so the
 * watcher is re-pointed after every PQconnectPoll.
 *
 * Once up, the connection is non-blocking and in pipeline mode.  Requests
 * wait in `wait` until the end of the loop turn, when they are written
 * out together: each statement as PQsendQueryPrepared (preceded, the
 * first time its SQL is seen on this connection, by a PQsendPrepare in a
 * segment of its own, so that a failing prepare never aborts a neighbour)
 * and each request closed by PQpipelineSync, so an error aborts only that
 * request.  The ring of entries records what was sent; results are read
 * with PQconsumeInput / PQisBusy / PQgetResult, every result until NULL,
 * and matched against the ring head.
 *
 * A lost connection fails what was in flight with DORM_ECONN (a request
 * that was sent may or may not have been applied), keeps what had not been
 * sent, and reconnects at once; a failed attempt fails what is waiting and
 * retries with a growing backoff when work arrives.  A connection with
 * requests in flight that hears nothing for the server's answer deadline
 * is dropped as silent (DORM_ETIMEDOUT for what was sent).  While the
 * last attempt failed or the server went silent, and no new connection is
 * up, requests fail at once instead of waiting (docs/postgresql.md,
 * "Silent servers").  A transaction that
 * was open when the connection went is gone: the slot then refuses every
 * request with DORM_ECONN until the facade ends the transaction (ROLLBACK
 * or COMMIT), so no later statement of it can run outside it.
 *
 * Never blocks: no PQexec, no PQconnectdb, PQgetResult only when PQisBusy
 * says it will not wait, PQcancel on a worker thread.
 */
#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/pg/pg_int.h"

/* Requests in flight per connection before the rest wait in `wait`:
 * deep enough to keep the server busy, shallow enough that a cancel of a
 * waiting request costs nothing. */
#define PG_MAX_FLY 512
#define PG_BACKOFF_MIN_MS 50
#define PG_BACKOFF_MAX_MS 2000

static void conn_start(dorm__pg_conn *c);
static void conn_lost(dorm__pg_conn *c, const char *why);
static void conn_lost_as(dorm__pg_conn *c, int code, const char *why);
static void fail_waiting(dorm__pg_conn *c, int code, const char *msg);
static void conn_dispatch(dorm__pg_conn *c);
static void conn_update_interest(dorm__pg_conn *c);
static void poll_cb(dorm_poll *p, int status, int events, void *arg);
static void timer_cb(dorm_timer *t, void *arg);
static void release_hold(dorm__pg_conn *c);

/* ---- small helpers ------------------------------------------------------- */

static uintptr_t rflags(const dorm__req *r) {
  return (uintptr_t)r->backend_data;
}
static void rflag_set(dorm__req *r, uintptr_t f) {
  r->backend_data = (void *)(rflags(r) | f);
}

/* The request is done: give it back to the facade.  Inside our own
 * callbacks done runs now; elsewhere (a submit, a cancel) on the next
 * turn, so the facade is never re-entered from its own call. */
static void complete(dorm__pg_conn *c, dorm__req *req, dorm_result res) {
  if (rflags(req) & DORM__PG_R_CANCELLED) {
    dorm_result_free(&res);
    res = dorm_result_error(DORM_ECANCELED, NULL);
  }
  dorm__pg_pool *p = c->pool;
  if (!p->in_cb || p->no_direct) {
    dorm__pg_pool_complete_later(p, req, res);
    return;
  }
  req->result = res;
  req->done(req);
}

static int ring_push(dorm__pg_conn *c, dorm__pg_entry_kind kind,
                     dorm__pg_sce *sce) {
  if (c->ring_count == c->ring_cap) {
    size_t ncap = c->ring_cap ? c->ring_cap * 2 : 64;
    dorm__pg_entry *n = dorm__malloc(ncap * sizeof *n);
    if (!n) return DORM_ENOMEM;
    for (size_t i = 0; i < c->ring_count; i++)
      n[i] = c->ring[(c->ring_head + i) % c->ring_cap];
    dorm__free(c->ring);
    c->ring = n;
    c->ring_cap = ncap;
    c->ring_head = 0;
  }
  /* the capacity is a power of two: a mask, not a division */
  dorm__pg_entry *e =
      &c->ring[(c->ring_head + c->ring_count) & (c->ring_cap - 1)];
  e->kind = kind;
  e->sce = sce;
  c->ring_count++;
  return 0;
}

static void ring_pop(dorm__pg_conn *c) {
  c->ring_head = (c->ring_head + 1) & (c->ring_cap - 1);
  c->ring_count--;
}

static void set_error_text(dorm__pg_conn *c, const char *msg) {
  /* cut to the buffer on purpose (the precision says so to the compiler) */
  snprintf(c->last_error, sizeof c->last_error, "%.*s",
           (int)sizeof c->last_error - 1, msg ? msg : "");
  /* libpq's messages end with a newline; ours are one line */
  size_t n = strlen(c->last_error);
  while (n && (c->last_error[n - 1] == '\n' || c->last_error[n - 1] == ' '))
    c->last_error[--n] = 0;
  for (char *p = c->last_error; *p; p++)
    if (*p == '\n') *p = ' ';
  /* libpq's connection messages do not quote the password today; a
   * message that ever did would still not pass it on */
  const dorm__pg_config *cfg = c->node ? c->node->cfg : NULL;
  for (size_t i = 0; cfg && i < cfg->nkeys; i++)
    if (!strcmp(cfg->keys[i], "password") && cfg->vals[i][0])
      dorm__redact_value(c->last_error, sizeof c->last_error, cfg->vals[i]);
}

/* Case-insensitive "does the statement start with this keyword". */
static int starts_kw(const char *s, size_t n, const char *kw) {
  size_t i = 0;
  while (i < n && isspace((unsigned char)s[i])) i++;
  size_t k = strlen(kw);
  if (n - i < k || strncasecmp(s + i, kw, k)) return 0;
  return n - i == k || !isalnum((unsigned char)s[i + k]);
}

/* ---- sending ------------------------------------------------------------- */

/* ---- the answer deadline ------------------------------------------------- */

/* A connection with requests in flight must hear from its server within
 * answer_timeout_ms.  The timer (free while READY) is armed when the
 * pipeline stops being empty and is not moved on every read: when it
 * fires it looks at heard_ms and sleeps again for what is left. */
static void deadline_arm(dorm__pg_conn *c) {
  uint64_t ms = c->node->cfg->answer_timeout_ms;
  if (!ms || c->deadline_armed || !c->fly_head) return;
  c->deadline_armed = 1;
  dorm_timer_start(c->timer, ms, 0);
}

/* The timer fired while READY. */
static void deadline_check(dorm__pg_conn *c) {
  c->deadline_armed = 0;
  uint64_t ms = c->node->cfg->answer_timeout_ms;
  if (!ms || !c->fly_head) return; /* nothing owed: disarmed */
  uint64_t now = dorm__mono_ms(), quiet = now - c->heard_ms;
  if (quiet >= ms && c->fd >= 0) {
    /* the loop runs timers before it polls: after a long turn (a blocking
     * callback) an answer may be waiting unread.  Not silent then */
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) > 0) {
      c->heard_ms = now;
      quiet = 0;
    }
  }
  if (quiet < ms) {
    c->deadline_armed = 1;
    dorm_timer_start(c->timer, ms - quiet, 0);
    return;
  }
  /* silent: a stopped or hung server, or a network that drops packets
   * (TCP would take minutes to say so).  What was sent may or may not
   * have run; what waits fails at once too (the server is known silent:
   * requests fail fast until a new connection is up) */
  char msg[200];
  snprintf(msg, sizeof msg,
           "no answer from the server for %llu ms (answer_timeout_ms)",
           (unsigned long long)quiet);
  c->had_failure = 1;
  conn_lost_as(c, DORM_ETIMEDOUT, msg);
  dorm__pg_pool *p = c->pool;
  if (p->closing) return;
  fail_waiting(c, DORM_ECONN, c->last_error[0] ? c->last_error : msg);
  if (c->is_listener) return;
  /* the server is silent, not just this connection: its idle connections
   * are dropped too (nothing is lost), so that requests for it fail fast
   * until one is up again instead of each waiting out the deadline;
   * those with requests in flight keep their own deadline */
  const dorm__pg_node *node = c->node;
  char why[300];
  snprintf(why, sizeof why, "the server went silent (%s)", msg);
  for (size_t i = node->first; i < node->first + node->n && !p->closing; i++) {
    dorm__pg_conn *o = p->conns[i];
    if (o == c || o->state != DORM__PG_READY || o->fly_head || o->wait_head)
      continue;
    o->had_failure = 1;
    conn_lost(o, why);
  }
}

/* Reads that may share a Sync: one compiled SELECT (the facade's, so no
 * user function with side effects), no row lock, outside a transaction.
 * A Sync per request costs a write (PQpipelineSync flushes, libpq < 17)
 * and a server wake-up; sharing one is what pipelining is for.  The price:
 * if one read of a group fails, the reads after it in the group are
 * aborted by the server and sent again, so they may run after requests
 * that were sent later (never inside a transaction). */
#define PG_GROUP_MAX 64

static int groupable(const dorm__pg_conn *c, const dorm__req *req) {
  if (c->tx_open || req->nstmts != 1 || req->flags) return 0;
  const dorm__stmt *st = &req->stmts[0];
  if (!st->columns || !st->returns_rows || st->len < 7) return 0;
  if (memcmp(st->sql, "SELECT ", 7)) return 0;
  return !st->row_lock;
}

/* End the open group with its Sync.  0 or -1 (libpq refused). */
static int group_close(dorm__pg_conn *c) {
  if (!c->group_n) return 0;
  c->group_n = 0;
  if (!PQpipelineSync(c->pg)) return -1;
  return ring_push(c, DORM__PG_E_SYNC, NULL);
}

/* Append req's statements and its Sync to libpq's output.  0, or -1 when
 * libpq refused (the connection is broken: the caller handles the loss),
 * or 1 when the request failed locally (completed already). */
static int send_req(dorm__pg_conn *c, dorm__req *req) {
  PGconn *pg = c->pg;
  int grouped = 0;
  /* refuse what cannot be sent before anything of the request is */
  for (size_t s = 0; s < req->nstmts; s++) {
    if (!req->stmts[s].columns &&
        dorm__pg_is_copy(req->stmts[s].sql, req->stmts[s].len)) {
      /* a raw COPY in the pipeline would leave libpq in its COPY state */
      complete(c, req,
               dorm_result_error(DORM_EUNSUPPORTED,
                                 "postgresql: COPY is not supported here "
                                 "(dorm_async_bulk_create copies rows in, "
                                 "dorm_async_copy_out exports)"));
      return 1;
    }
    dorm_result bad = dorm__pg_stmt_check(&req->stmts[s]);
    if (bad.kind != DORM_RESULT_NONE) {
      complete(c, req, bad);
      return 1;
    }
  }
  for (size_t s = 0; s < req->nstmts; s++) {
    const dorm__stmt *st = &req->stmts[s];
    char why[160];
    why[0] = 0;
    if (dorm__pg_params_encode(&c->params, st, why, sizeof why)) {
      if (s == 0) {
        complete(c, req, dorm_result_error(DORM_ENOMEM, NULL));
        return 1;
      }
      /* half a request is in libpq's buffer: only a new session undoes
       * it (the server drops a segment that never got its Sync) */
      return -1;
    }
    int n = (int)st->nparams;
    dorm__pg_sce *e =
        dorm__pg_cache_get(c, st->sql, st->len, c->params.types, st->nparams);
    if (s == 0) {
      /* nothing of the request is sent yet: end the open group unless
       * this request joins it */
      grouped = groupable(c, req);
      if (!grouped && group_close(c)) return -1;
    }
    if (e && dorm__pg_sce_must_prepare(e)) {
      /* a prepare starts a segment of its own */
      if (group_close(c)) return -1;
      const char *name = dorm__pg_sce_preparing(c, e);
      if (!PQsendPrepare(pg, name, e->sql, n, n ? e->types : NULL)) return -1;
      if (!PQpipelineSync(pg)) return -1;
      if (ring_push(c, DORM__PG_E_PREPARE, e) ||
          ring_push(c, DORM__PG_E_SYNC, NULL))
        return -1;
    }
    int ok;
    if (e)
      ok = PQsendQueryPrepared(pg, e->name, n, c->params.val, c->params.len,
                               c->params.fmt, 0);
    else
      ok = PQsendQueryParams(pg, st->sql, n, c->params.types, c->params.val,
                             c->params.len, c->params.fmt, 0);
    if (!ok || ring_push(c, DORM__PG_E_EXEC, e)) return -1;
    /* transaction bookkeeping, by the statements the facade sends (raw
     * ones: a compiled query is never BEGIN or COMMIT) */
    if (st->columns) continue;
    if (starts_kw(st->sql, st->len, "BEGIN") ||
        starts_kw(st->sql, st->len, "START"))
      c->tx_open = 1;
    else if (starts_kw(st->sql, st->len, "COMMIT") ||
             starts_kw(st->sql, st->len, "END") ||
             starts_kw(st->sql, st->len, "ABORT") ||
             (starts_kw(st->sql, st->len, "ROLLBACK") &&
              !strstr(st->sql, " TO ")))
      c->tx_open = 0;
  }
  if (grouped) {
    if (ring_push(c, DORM__PG_E_END, NULL)) return -1;
    rflag_set(req, DORM__PG_R_GROUPED);
    if (++c->group_n >= PG_GROUP_MAX && group_close(c)) return -1;
  } else {
    if (!PQpipelineSync(pg)) return -1;
    /* the SYNC entry marks the request's end; the request itself is on
     * the fly list */
    if (ring_push(c, DORM__PG_E_SYNC, (dorm__pg_sce *)req)) return -1;
  }
  req->next = NULL;
  if (c->fly_tail) {
    c->fly_tail->next = req;
  } else {
    c->fly_head = req;
    /* the server owes an answer from now on */
    c->heard_ms = dorm__mono_ms();
  }
  c->fly_tail = req;
  c->nfly++;
  deadline_arm(c);
  return 0;
}

static dorm__req *wait_pop(dorm__pg_conn *c) {
  dorm__req *r = c->wait_head;
  if (!r) return NULL;
  c->wait_head = r->next;
  if (!c->wait_head) c->wait_tail = NULL;
  r->next = NULL;
  c->nwait--;
  return r;
}

/* After a lost transaction: refuse its statements until it ends. */
static int tx_broken_filter(dorm__pg_conn *c, dorm__req *r) {
  const dorm__stmt *st = r->nstmts ? &r->stmts[0] : NULL;
  if (!st) return 0;
  if (starts_kw(st->sql, st->len, "ROLLBACK") && !strstr(st->sql, " TO ")) {
    c->tx_open = 0;
    /* the server rolled back when the connection went: nothing to do */
    complete(c, r, dorm_result_count(0));
    return 1;
  }
  if (starts_kw(st->sql, st->len, "BEGIN") ||
      starts_kw(st->sql, st->len, "START")) {
    c->tx_open = 0; /* a new transaction: send it */
    return 0;
  }
  int ending = starts_kw(st->sql, st->len, "COMMIT") ||
               starts_kw(st->sql, st->len, "END");
  if (ending) c->tx_open = 0;
  complete(c, r,
           dorm_result_error(DORM_ECONN,
                             "postgresql: the connection was lost during the "
                             "transaction; it was rolled back"));
  return 1;
}

/* The COPY request at the head of the queue goes out alone
 * (pg_copy.c).  0, or 1 when the connection was lost or the request
 * refused. */
static int copy_begin(dorm__pg_conn *c) {
  dorm__req *r = wait_pop(c);
  if (c->tx_open < 0 && tx_broken_filter(c, r)) return 0;
  r->next = NULL;
  c->fly_head = c->fly_tail = r;
  c->nfly = 1;
  c->heard_ms = dorm__mono_ms();
  deadline_arm(c);
  int rc = dorm__pg_copy_start(c, r);
  if (rc == DORM_ENOMEM) {
    c->fly_head = c->fly_tail = NULL;
    c->nfly = 0;
    complete(c, r, dorm_result_error(DORM_ENOMEM, NULL));
    return 0;
  }
  if (rc) {
    char msg[300];
    snprintf(msg, sizeof msg, "COPY: %s", PQerrorMessage(c->pg));
    conn_lost(c, msg);
    return 1;
  }
  return 0;
}

void dorm__pg_conn_copy_done(dorm__pg_conn *c, dorm_result res) {
  dorm__req *req = c->fly_head;
  c->fly_head = c->fly_tail = NULL;
  c->nfly = 0;
  if (!req) {
    dorm_result_free(&res);
    return;
  }
  int was_held = (rflags(req) & DORM__PG_R_CANCELLED) && c->hold;
  complete(c, req, res);
  if (was_held) release_hold(c);
  if (c->state == DORM__PG_READY && c->wait_head)
    dorm__pg_pool_mark_dirty(c->pool, c);
}

void dorm__pg_conn_lost(dorm__pg_conn *c, const char *why) {
  conn_lost(c, why);
}

/* Send what waits, if the connection can take it. */
static void conn_dispatch(dorm__pg_conn *c) {
  if (c->state != DORM__PG_READY || c->hold) return;
  int sent = 0;
  /* PgBouncer (1.18, transaction pooling) may hand the server connection
   * to another client at the first ReadyForQuery outside a transaction,
   * while later segments of our pipeline are still on it: one segment
   * (one Sync, a group of reads or one request) in flight at a time */
  int one_segment = c->node->cfg->pgbouncer;
  while (c->wait_head && c->nfly < PG_MAX_FLY && !c->hold && !c->copy) {
    if (c->wait_head->flags & (DORM__REQ_COPY | DORM__REQ_COPY_OUT)) {
      /* COPY runs out of pipeline mode: once nothing is in flight */
      if (c->ring_count || c->nfly || c->group_n) break;
      if (copy_begin(c)) return;
      continue;
    }
    if (one_segment && c->ring_count &&
        !(c->group_n && groupable(c, c->wait_head)))
      break; /* only reads join the open group; the rest wait */
    dorm__req *r = wait_pop(c);
    if (c->tx_open < 0 && tx_broken_filter(c, r)) continue;
    int rc = send_req(c, r);
    if (rc < 0) {
      /* put it back first: it was not sent, it runs after the reconnect */
      r->next = c->wait_head;
      c->wait_head = r;
      if (!c->wait_tail) c->wait_tail = r;
      c->nwait++;
      char msg[300];
      snprintf(msg, sizeof msg, "sending failed: %s", PQerrorMessage(c->pg));
      conn_lost(c, msg);
      return;
    }
    if (rc == 0) sent = 1;
    if (c->state != DORM__PG_READY) return; /* a completion closed us */
  }
  if (group_close(c)) {
    char msg[300];
    snprintf(msg, sizeof msg, "sending failed: %s", PQerrorMessage(c->pg));
    conn_lost(c, msg);
    return;
  }
  if (sent) dorm__pg_pool_mark_dirty(c->pool, c);
}

/* ---- results ------------------------------------------------------------- */

static dorm_result error_from_res(dorm__pg_conn *c, const PGresult *res) {
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *prim = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  if (!prim) {
    /* no server message: libpq's own (a protocol or connection problem),
     * else at least say what kind of result it was */
    set_error_text(c, PQresultErrorMessage(res));
    if (!c->last_error[0] && c->pg) set_error_text(c, PQerrorMessage(c->pg));
    if (!c->last_error[0])
      snprintf(c->last_error, sizeof c->last_error,
               "%s without a message from the server",
               PQresStatus(PQresultStatus(res)));
    prim = c->last_error;
  }
  return dorm__pg_error(state, prim, detail);
}

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

/* Rows of a PGresult decoded by st's columns (or described from res for
 * a raw statement), at most max_rows (> 0). */
static dorm_result rows_from_res(const dorm__stmt *st, const PGresult *res,
                                 int64_t max_rows) {
  dorm__pg_cells in = {PQnfields(res), PQntuples(res), res,
                       res_name,       res_type,       res_cell};
  return dorm__pg_decode_rows(st, &in, max_rows);
}

static void head_fail(dorm__pg_conn *c, dorm_result err) {
  if (c->cur_failed) {
    dorm_result_free(&err);
    return;
  }
  dorm_result_free(&c->cur);
  c->cur = err;
  c->cur_failed = 1;
}

/* A result of the head request's statement number c->cur_stmt. */
static void on_exec_result(dorm__pg_conn *c, dorm__pg_sce *e, PGresult *res) {
  dorm__req *req = c->fly_head;
  if (!req || c->cur_stmt >= req->nstmts) return;
  const dorm__stmt *st = &req->stmts[c->cur_stmt];
  int last = c->cur_stmt + 1 == req->nstmts;
  switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
      if (c->cur_failed) break;
      if (st->returns_rows || (!st->columns && PQnfields(res) > 0)) {
        if (req->flags & DORM__REQ_SUM_COUNTS) c->cur_sum += PQntuples(res);
        if (last && !(req->flags & DORM__REQ_SUM_COUNTS)) {
          dorm_result r = rows_from_res(st, res, req->max_rows);
          if (r.kind == DORM_RESULT_ERROR) {
            head_fail(c, r);
          } else {
            dorm_result_free(&c->cur);
            c->cur = r;
          }
        }
        break;
      }
      /* not rows: a count */
      __attribute__((fallthrough));
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY: {
      if (c->cur_failed) break;
      const char *t = PQcmdTuples(res);
      int64_t n = t && *t ? strtoll(t, NULL, 10) : 0;
      c->cur_sum += n;
      if (last) {
        dorm_result_free(&c->cur);
        c->cur = dorm_result_count(
            (req->flags & DORM__REQ_SUM_COUNTS) ? c->cur_sum : n);
      }
      break;
    }
    case PGRES_PIPELINE_ABORTED:
      if (rflags(req) & DORM__PG_R_GROUPED) {
        /* a neighbour in the group failed; this never ran */
        c->cur_retry = 1;
        break;
      }
      /* an earlier statement of this request failed: its error stands */
      head_fail(c, dorm_result_error(DORM_EDB, "postgresql: pipeline aborted"));
      break;
    case PGRES_FATAL_ERROR:
    case PGRES_NONFATAL_ERROR:
    default: {
      const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      dorm_result why;
      if (e && dorm__pg_sce_exec_failed(e, state, &why)) {
        /* its prepare failed: that is the real error */
        head_fail(c, why);
      } else if (PQresultStatus(res) == PGRES_COPY_IN ||
                 PQresultStatus(res) == PGRES_COPY_OUT ||
                 PQresultStatus(res) == PGRES_COPY_BOTH) {
        head_fail(c, dorm_result_error(DORM_EUNSUPPORTED,
                                       "postgresql: COPY is not supported"));
      } else {
        head_fail(c, error_from_res(c, res));
      }
      break;
    }
  }
}

static void on_prepare_result(dorm__pg_conn *c, dorm__pg_sce *e,
                              PGresult *res) {
  if (PQresultStatus(res) == PGRES_COMMAND_OK) {
    dorm__pg_sce_prepared(e, NULL);
    return;
  }
  dorm_result r = error_from_res(c, res);
  dorm__pg_sce_prepared(e, &r);
  dorm_result_free(&r);
}

static void release_hold(dorm__pg_conn *c) {
  if (c->hold && !c->cancel_running) {
    c->hold = 0;
    conn_dispatch(c);
  }
}

/* The head request's Sync arrived: it is done. */
static void finish_head(dorm__pg_conn *c) {
  dorm__req *req = c->fly_head;
  if (!req) return;
  c->fly_head = req->next;
  if (!c->fly_head) c->fly_tail = NULL;
  c->nfly--;
  req->next = NULL;
  dorm_result r = c->cur;
  if (r.kind == DORM_RESULT_NONE) {
    r = dorm_result_count(0);
  }
  c->cur = dorm_result_none();
  c->cur_failed = 0;
  c->cur_stmt = 0;
  c->cur_sum = 0;
  if (c->cur_retry) {
    c->cur_retry = 0;
    dorm_result_free(&r);
    if (!(rflags(req) & DORM__PG_R_CANCELLED)) {
      req->backend_data =
          (void *)(rflags(req) & ~(uintptr_t)DORM__PG_R_GROUPED);
      if (c->retry_tail)
        c->retry_tail->next = req;
      else
        c->retry_head = req;
      c->retry_tail = req;
      return;
    }
    r = dorm_result_error(DORM_ECANCELED, NULL);
  }
  int was_held = (rflags(req) & DORM__PG_R_CANCELLED) && c->hold;
  complete(c, req, r);
  if (was_held) release_hold(c);
}

/* Reads a failed neighbour aborted go first in the queue again, in
 * order. */
static void requeue_retries(dorm__pg_conn *c) {
  c->retry_tail->next = c->wait_head;
  if (!c->wait_head) c->wait_tail = c->retry_tail;
  c->wait_head = c->retry_head;
  for (dorm__req *r = c->retry_head; r && r != c->retry_tail->next; r = r->next)
    c->nwait++;
  c->retry_head = c->retry_tail = NULL;
  dorm__pg_pool_mark_dirty(c->pool, c);
}

/* Read every result that is ready.  Returns -1 if the connection broke. */
static int read_results(dorm__pg_conn *c) {
  PGconn *pg = c->pg;
  while (c->pg == pg && c->ring_count > 0) {
    if (c->ring[c->ring_head].kind == DORM__PG_E_END) {
      ring_pop(c); /* nothing on the wire: the grouped request is done */
      finish_head(c);
      continue;
    }
    if (PQisBusy(pg)) break;
    PGresult *res = PQgetResult(pg);
    dorm__pg_entry e = c->ring[c->ring_head];
    if (e.kind == DORM__PG_E_SYNC) {
      if (!res) {
        if (PQstatus(pg) == CONNECTION_BAD) return -1;
        continue; /* a stray NULL between entries */
      }
      ExecStatusType s = PQresultStatus(res);
      if (s != PGRES_PIPELINE_SYNC) {
        /* an error outside any statement (the server is terminating us) */
        if (e.sce) head_fail(c, error_from_res(c, res));
        PQclear(res);
        if (PQstatus(pg) == CONNECTION_BAD) return -1;
        continue;
      }
      PQclear(res);
      ring_pop(c);
      if (e.sce)
        finish_head(c); /* a request's Sync, not a prepare's */
      else if (c->retry_head)
        requeue_retries(c);
      continue;
    }
    if (!res) {
      /* this entry's results are complete */
      ring_pop(c);
      if (e.kind == DORM__PG_E_EXEC) c->cur_stmt++;
      continue;
    }
    if (e.kind == DORM__PG_E_PREPARE)
      on_prepare_result(c, e.sce, res);
    else
      on_exec_result(c, e.sce, res);
    PQclear(res);
  }
  if (c->pg == pg && PQstatus(pg) == CONNECTION_BAD) return -1;
  /* room in the pipeline again: send what waits at the end of the turn */
  if (c->wait_head && c->nfly < PG_MAX_FLY)
    dorm__pg_pool_mark_dirty(c->pool, c);
  return 0;
}

/* ---- the socket ---------------------------------------------------------- */

static void conn_update_interest(dorm__pg_conn *c) {
  if (!c->poll) return;
  dorm_poll_set(c->poll, c->interest);
}

static void watch_fd(dorm__pg_conn *c) {
  int fd = c->pg ? PQsocket(c->pg) : -1;
  /* always re-point during connect: libpq may have closed the old socket
   * and opened a new one with the same number */
  if (dorm_poll_set_fd(c->poll, fd) == 0) {
    c->fd = fd;
  } else {
    c->fd = -1;
  }
  conn_update_interest(c);
}

void dorm__pg_conn_flush(dorm__pg_conn *c) {
  c->dirty = 0;
  if (c->state != DORM__PG_READY || !c->pg) return;
  if (c->copy) {
    dorm__pg_copy_io(c); /* it flushes and watches for itself */
    return;
  }
  conn_dispatch(c);
  if (c->state != DORM__PG_READY) return;
  int rc = PQflush(c->pg);
  if (rc < 0) {
    char msg[300];
    snprintf(msg, sizeof msg, "sending failed: %s", PQerrorMessage(c->pg));
    conn_lost(c, msg);
    return;
  }
  c->interest = DORM_READABLE | (rc == 1 ? DORM_WRITABLE : 0);
  conn_update_interest(c);
}

/* ---- connecting ---------------------------------------------------------- */

static void fail_waiting(dorm__pg_conn *c, int code, const char *msg) {
  dorm__req *r;
  while ((r = wait_pop(c)))
    complete(c, r, dorm_result_error(code, "postgresql: %s", msg));
}

/* An attempt failed: report it, fail what waits, back off. */
static void attempt_failed(dorm__pg_conn *c, const char *why) {
  set_error_text(c, why);
  if (c->pg) {
    dorm_poll_set_fd(c->poll, -1);
    c->fd = -1;
    PQfinish(c->pg);
    c->pg = NULL;
  }
  dorm_timer_stop(c->timer);
  c->state = DORM__PG_DOWN;
  c->had_failure = 1;
  c->host_first = c->hosts_timed_out = 0; /* the next attempt: in order */
  if (c->backoff_ms < PG_BACKOFF_MIN_MS)
    c->backoff_ms = PG_BACKOFF_MIN_MS;
  else if (c->backoff_ms < PG_BACKOFF_MAX_MS)
    c->backoff_ms *= 2;
  if (c->backoff_ms > PG_BACKOFF_MAX_MS) c->backoff_ms = PG_BACKOFF_MAX_MS;
  char msg[300];
  snprintf(msg, sizeof msg, "%s", c->last_error);
  dorm__pg_pool_conn_event(c->pool, c, msg);
  if (c->pool->closing) return;
  fail_waiting(c, DORM_ECONN, msg);
  /* next attempt after the backoff, only if work arrives meanwhile */
  c->state = DORM__PG_BACKOFF;
  dorm_timer_start(c->timer, c->backoff_ms, 0);
}

static void connected(dorm__pg_conn *c) {
  dorm_timer_stop(c->timer);
  c->deadline_armed = 0;
  if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
    attempt_failed(c, PQerrorMessage(c->pg));
    return;
  }
  int reconnect = c->ever_ready;
  if (reconnect) c->reconnects++;
  c->host_first = c->hosts_timed_out = 0; /* a reconnect: hosts in order */
  c->state = DORM__PG_READY;
  c->ever_ready = 1;
  c->had_failure = 0;
  c->backoff_ms = 0;
  c->interest = DORM_READABLE;
  watch_fd(c);
  dorm__pg_pool_conn_event(c->pool, c, NULL);
  if (c->is_listener) dorm__pg_listen_connected(c->pool, reconnect);
  if (c->state == DORM__PG_READY && c->wait_head)
    dorm__pg_pool_mark_dirty(c->pool, c);
}

static void connect_step(dorm__pg_conn *c) {
  PostgresPollingStatusType st = PQconnectPoll(c->pg);
  switch (st) {
    case PGRES_POLLING_OK: connected(c); return;
    case PGRES_POLLING_FAILED: attempt_failed(c, PQerrorMessage(c->pg)); return;
    case PGRES_POLLING_READING: c->interest = DORM_READABLE; break;
    default: c->interest = DORM_WRITABLE; break;
  }
  watch_fd(c);
}

static void quiet_notices(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static void conn_start(dorm__pg_conn *c) {
  dorm__pg_pool *p = c->pool;
  if (p->closing) return;
  c->state = DORM__PG_CONNECTING;
  const dorm__pg_config *cfg = c->node->cfg;
  if (c->host_first) {
    /* a host timed out: this attempt starts at the one after it */
    const char **keys, **vals;
    char **owned;
    if (dorm__pg_hosts_rotated(cfg, c->host_first, &keys, &vals, &owned)) {
      attempt_failed(c, "out of memory");
      return;
    }
    c->pg = PQconnectStartParams(keys, vals, 0);
    dorm__pg_hosts_free(keys, vals, owned, cfg->nkeys);
  } else {
    c->pg = PQconnectStartParams(cfg->keys, cfg->vals, 0);
  }
  if (!c->pg) {
    attempt_failed(c, "out of memory");
    return;
  }
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    attempt_failed(c, PQerrorMessage(c->pg));
    return;
  }
  /* a library does not print the server's notices on stderr */
  PQsetNoticeProcessor(c->pg, quiet_notices, NULL);
  if (cfg->connect_timeout_ms)
    dorm_timer_start(c->timer, cfg->connect_timeout_ms, 0);
  /* libpq: before the first PQconnectPoll, behave as if it asked to
   * write */
  c->interest = DORM_WRITABLE;
  watch_fd(c);
}

/* The connect timer fired on a multi-host URL: if some host has not had
 * its turn, start again at the host after the one libpq was stuck on
 * (libpq applies connect_timeout per host only when it blocks).  1 when a
 * new attempt started. */
static int next_host(dorm__pg_conn *c) {
  const dorm__pg_config *cfg = c->node->cfg;
  size_t n = dorm__pg_host_count(cfg);
  if (n < 2 || !c->pg) return 0;
  size_t at =
      dorm__pg_host_index(cfg, c->host_first, PQhost(c->pg), PQport(c->pg));
  c->hosts_timed_out += at + 1;
  if (c->hosts_timed_out >= n) return 0; /* every host had its turn */
  c->host_first = (c->host_first + at + 1) % n;
  dorm_poll_set_fd(c->poll, -1);
  c->fd = -1;
  PQfinish(c->pg);
  c->pg = NULL;
  c->state = DORM__PG_DOWN;
  conn_start(c);
  return 1;
}

static void timer_cb(dorm_timer *t, void *arg) {
  dorm__pg_conn *c = arg;
  (void)t;
  c->pool->in_cb++;
  if (c->state == DORM__PG_CONNECTING && !next_host(c)) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "connection timed out after %llu ms (connect_timeout)",
             (unsigned long long)c->node->cfg->connect_timeout_ms);
    attempt_failed(c, msg);
  } else if (c->state == DORM__PG_BACKOFF) {
    c->state = DORM__PG_DOWN;
    if (c->wait_head || c->is_listener) conn_start(c);
  } else if (c->state == DORM__PG_READY && c->deadline_armed) {
    deadline_check(c);
  }
  c->pool->in_cb--;
  dorm__pg_pool_flush_dirty(c->pool);
}

/* ---- losing the connection ----------------------------------------------- */

static void conn_lost(dorm__pg_conn *c, const char *why) {
  conn_lost_as(c, DORM_ECONN, why);
}

/* code: what the requests in flight fail with (DORM_ECONN, or
 * DORM_ETIMEDOUT when the answer deadline passed). */
static void conn_lost_as(dorm__pg_conn *c, int code, const char *why) {
  /* first: a read that fails below is retried elsewhere, not here */
  if (!c->is_listener) dorm__pg_node_conn_state(c->node, 0);
  char msg[300];
  snprintf(msg, sizeof msg, "connection lost: %s", why);
  set_error_text(c, msg);
  snprintf(msg, sizeof msg, "%s", c->last_error);
  /* the answer deadline's timer, if armed, is no longer owed anything */
  dorm_timer_stop(c->timer);
  c->deadline_armed = 0;
  /* libpq closes the socket on EOF: stop watching before the loop polls */
  dorm_poll_set_fd(c->poll, -1);
  c->fd = -1;
  if (c->pg) {
    PQfinish(c->pg);
    c->pg = NULL;
  }
  c->state = DORM__PG_DOWN;
  c->interest = 0;
  dorm__pg_copy_drop(c); /* its request is in flight: failed below */
  /* what was in flight may or may not have run: fail it */
  dorm__req *fly = c->fly_head;
  c->fly_head = c->fly_tail = NULL;
  c->nfly = 0;
  c->ring_count = c->ring_head = 0;
  dorm_result_free(&c->cur);
  c->cur_failed = 0;
  c->cur_stmt = 0;
  c->cur_sum = 0;
  dorm__pg_cache_reset(c);
  c->hold = 0;
  c->group_n = 0;
  c->cur_retry = 0;
  if (c->retry_head) {
    /* they never ran: they go first after the reconnect */
    c->retry_tail->next = c->wait_head;
    if (!c->wait_head) c->wait_tail = c->retry_tail;
    for (dorm__req *r = c->retry_head; r != c->retry_tail->next; r = r->next)
      c->nwait++;
    c->wait_head = c->retry_head;
    c->retry_head = c->retry_tail = NULL;
  }
  if (c->tx_open) c->tx_open = -1; /* broken until the facade ends it */
  int busy = fly != NULL || c->wait_head != NULL;
  while (fly) {
    dorm__req *next = fly->next;
    fly->next = NULL;
    dorm_result_free(&fly->result);
    complete(c, fly, dorm_result_error(code, "postgresql: %s", msg));
    fly = next;
  }
  if (c->pool->closing || c->state != DORM__PG_DOWN) return;
  /* reconnect at once: a connection killed while idle is replaced before
   * the next query needs it */
  (void)busy;
  conn_start(c);
}

/* ---- the watcher --------------------------------------------------------- */

static void poll_cb(dorm_poll *p, int status, int events, void *arg) {
  dorm__pg_conn *c = arg;
  (void)p;
  c->pool->in_cb++;
  if (status < 0 && c->state == DORM__PG_CONNECTING) {
    /* libpq reads the socket's error itself and, with a multi-host URL,
     * goes on to the next host (a refused TCP connection shows here) */
    connect_step(c);
  } else if (status < 0) {
    if (c->state == DORM__PG_READY) conn_lost(c, "socket error");
  } else if (c->state == DORM__PG_CONNECTING) {
    connect_step(c);
  } else if (c->state == DORM__PG_READY) {
    if (events & DORM_READABLE) {
      if (!PQconsumeInput(c->pg)) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c->pg));
        conn_lost(c, msg);
      } else {
        c->heard_ms = dorm__mono_ms(); /* the answer deadline */
        if (c->is_listener) {
          dorm__pg_listen_drain(c->pool, c->pg);
        } else {
          /* a LISTEN run through dorm_async_execute: not ours to deliver,
           * but libpq keeps them until read */
          PGnotify *n;
          while ((n = PQnotifies(c->pg))) PQfreemem(n);
        }
        if (c->state == DORM__PG_READY && c->copy) {
          dorm__pg_copy_io(c);
        } else if (c->state == DORM__PG_READY && read_results(c) < 0) {
          char msg[300];
          snprintf(msg, sizeof msg, "%s",
                   c->pg ? PQerrorMessage(c->pg) : "closed");
          conn_lost(c, msg);
        }
      }
    }
    if (c->state == DORM__PG_READY && (events & DORM_WRITABLE))
      dorm__pg_pool_mark_dirty(c->pool, c);
  }
  c->pool->in_cb--;
  /* the end-of-turn flush for whatever the callbacks above submitted */
  dorm__pg_pool_flush_dirty(c->pool);
}

/* ---- the cancel job ------------------------------------------------------ */

typedef struct cancel_job {
  PGcancel *pc;
  dorm__pg_conn *c;
  char err[256];
} cancel_job;

/* Worker thread: PQcancel blocks until the postmaster has taken the
 * request (it opens its own connection). */
static dorm_result cancel_work(void *arg) {
  cancel_job *j = arg;
  if (!PQcancel(j->pc, j->err, sizeof j->err))
    return dorm_result_error(DORM_ECONN, "%s", j->err);
  return dorm_result_none();
}

static dorm_result cancel_done(dorm_result *res, void *arg) {
  cancel_job *j = arg;
  dorm__pg_conn *c = j->c;
  (void)res;
  PQfreeCancel(j->pc);
  dorm__free(j);
  c->cancel_running = 0;
  dorm__pg_pool_job(c->pool, -1);
  if (!c->pool->closing) {
    c->pool->in_cb++;
    /* the server has the cancel; hold until the request answered */
    int answered = 1;
    for (dorm__req *r = c->fly_head; r; r = r->next)
      if (rflags(r) & DORM__PG_R_CANCELLED) answered = 0;
    if (answered) release_hold(c);
    c->pool->in_cb--;
    dorm__pg_pool_flush_dirty(c->pool);
  }
  return dorm_result_none();
}

void dorm__pg_conn_cancel(dorm__pg_conn *c, dorm__req *req) {
  /* still waiting: take it out, it never reaches the server */
  dorm__req *prev = NULL;
  for (dorm__req *r = c->wait_head; r; prev = r, r = r->next) {
    if (r != req) continue;
    if (prev)
      prev->next = r->next;
    else
      c->wait_head = r->next;
    if (c->wait_tail == r) c->wait_tail = prev;
    c->nwait--;
    r->next = NULL;
    rflag_set(r, DORM__PG_R_CANCELLED);
    dorm__pg_pool_complete_later(c->pool, r,
                                 dorm_result_error(DORM_ECANCELED, NULL));
    return;
  }
  int found = 0;
  for (dorm__req *r = c->fly_head; r; r = r->next)
    if (r == req) found = 1;
  if (!found) return;
  rflag_set(req, DORM__PG_R_CANCELLED);
  /* Interrupt the server only when this is the one request on the wire
   * and it is still running: a cancel reaches whatever the backend runs
   * when it arrives, so with neighbours in the pipeline it could hit
   * one of them.  Otherwise the request runs and its result is dropped. */
  if (req != c->fly_head || c->nfly != 1 || c->cancel_running ||
      c->state != DORM__PG_READY || c->cur_stmt >= req->nstmts)
    return;
  cancel_job *j = dorm__calloc(1, sizeof *j);
  if (!j) return;
  j->pc = PQgetCancel(c->pg);
  j->c = c;
  if (!j->pc) {
    dorm__free(j);
    return;
  }
  dorm_deferred *d = dorm_run_in_thread(c->pool->loop, cancel_work, j);
  if (!d) {
    PQfreeCancel(j->pc);
    dorm__free(j);
    return;
  }
  c->cancel_running = 1;
  c->hold = 1; /* nothing new on this connection until the server answered */
  dorm__pg_pool_job(c->pool, +1);
  if (dorm_deferred_add_both(d, cancel_done, j)) {
    /* cannot happen with the first step; keep the books straight */
    c->cancel_running = 0;
    c->hold = 0;
    dorm__pg_pool_job(c->pool, -1);
  }
}

/* ---- life cycle ---------------------------------------------------------- */

dorm__pg_conn *dorm__pg_conn_new(dorm__pg_pool *pool, dorm__pg_node *node,
                                 size_t index) {
  dorm__pg_conn *c = dorm__calloc(1, sizeof *c);
  if (!c) return NULL;
  c->pool = pool;
  c->node = node;
  c->index = index;
  c->fd = -1;
  dorm__pg_params_init(&c->params);
  c->poll = dorm_poll_new(pool->loop, -1, poll_cb, c);
  c->timer = dorm_timer_new(pool->loop, timer_cb, c);
  if (!c->poll || !c->timer) {
    if (c->poll) dorm_poll_close(c->poll);
    if (c->timer) dorm_timer_close(c->timer);
    dorm__free(c);
    return NULL;
  }
  return c;
}

void dorm__pg_conn_kick(dorm__pg_conn *c) {
  if (c->state == DORM__PG_DOWN) conn_start(c);
}

/* Fail req (just submitted, not queued) with the last error. */
static void fail_fast(dorm__pg_conn *c, dorm__req *req) {
  /* a transaction the loss broke still ends the way it must */
  if (c->tx_open < 0 && tx_broken_filter(c, req)) return;
  complete(c, req,
           dorm_result_error(
               DORM_ECONN, "postgresql: %s (reconnecting)",
               c->last_error[0] ? c->last_error : "the server is unreachable"));
}

void dorm__pg_conn_submit(dorm__pg_conn *c, dorm__req *req) {
  req->next = NULL;
  req->backend_data = (void *)(rflags(req) & DORM__PG_R_INTERNAL);
  if (c->had_failure &&
      (c->state == DORM__PG_BACKOFF || c->state == DORM__PG_CONNECTING)) {
    /* the server is known unreachable or silent (the last attempt
     * failed, or the answer deadline passed) and no new connection is up
     * yet: fail now rather than after the backoff and a connect timeout.
     * The request that finds the slot DOWN after the backoff starts the
     * next attempt and waits for it. */
    fail_fast(c, req);
    return;
  }
  if (c->wait_tail)
    c->wait_tail->next = req;
  else
    c->wait_head = req;
  c->wait_tail = req;
  c->nwait++;
  switch (c->state) {
    case DORM__PG_READY: dorm__pg_pool_mark_dirty(c->pool, c); break;
    case DORM__PG_DOWN: conn_start(c); break;
    default: break; /* sent when connected / after the backoff */
  }
}

size_t dorm__pg_conn_load(const dorm__pg_conn *c) { return c->nwait + c->nfly; }

void dorm__pg_conn_destroy(dorm__pg_conn *c) {
  /* every request gets DORM_ECLOSED; the facade has failed their
   * deferreds already */
  dorm__req *r;
  while ((r = wait_pop(c)))
    complete(c, r, dorm_result_error(DORM_ECLOSED, NULL));
  while ((r = c->fly_head)) {
    c->fly_head = r->next;
    r->next = NULL;
    dorm_result_free(&r->result);
    complete(c, r, dorm_result_error(DORM_ECLOSED, NULL));
  }
  c->fly_tail = NULL;
  while ((r = c->retry_head)) {
    c->retry_head = r->next;
    r->next = NULL;
    complete(c, r, dorm_result_error(DORM_ECLOSED, NULL));
  }
  dorm_result_free(&c->cur);
  dorm__pg_copy_drop(c);
  if (c->poll) dorm_poll_close(c->poll);
  if (c->timer) dorm_timer_close(c->timer);
  /* PQfinish sends Terminate without waiting (non-blocking socket); the
   * server rolls back an open transaction when the session ends */
  if (c->pg) PQfinish(c->pg);
  dorm__pg_cache_free(c);
  dorm__free(c->ring);
  dorm__pg_params_free(&c->params);
  dorm__free(c);
}
