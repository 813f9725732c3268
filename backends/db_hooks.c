/* SPDX-License-Identifier: MIT */
/* backends/db_hooks.c — observing the facade (dorm/observe.h): query
 * hooks, the counters of dorm_db_stats, and the query counter for tests.
 *
 * Two calls from the facade carry it all: dorm__db_obs_sent when a request
 * is handed to a connection (db_route.c) and dorm__db_obs_done when it is
 * answered for good, or failed by dorm_db_close (db.c).  They keep plain
 * counters, and only when hooks exist (root->nhooks) read the clock and
 * build an event, so a database without hooks pays a branch.
 *
 * Hooks live in a fixed array of the database (DORM_HOOKS_MAX).  Each op
 * remembers which hooks saw it start (hookmask) and their user data, so
 * its end goes to exactly those: a hook removed meanwhile still ends the
 * requests it saw start, and its slot is reused only once they are all
 * ended.  dorm_db_close ends every request still out and sets hooks_off,
 * after which nothing is called.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backends/db_int.h"
#include "base/base_int.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- names -------------------------------------------------------------- */

const char *dorm_stmt_kind_name(int kind) {
  switch (kind) {
    case DORM_STMT_READ: return "read";
    case DORM_STMT_WRITE: return "write";
    case DORM_STMT_DDL: return "ddl";
    case DORM_STMT_TX: return "tx";
    case DORM_STMT_LISTEN: return "listen";
    case DORM_STMT_OTHER: return "other";
    default: return "?";
  }
}

const char *dorm_conn_role_name(int role) {
  switch (role) {
    case DORM_ROLE_PRIMARY: return "primary";
    case DORM_ROLE_REPLICA: return "replica";
    case DORM_ROLE_SQLITE_WRITER: return "writer";
    case DORM_ROLE_SQLITE_READER: return "reader";
    default: return "?";
  }
}

const char *dorm_conn_state_name(int state) {
  switch (state) {
    case DORM_CONN_DOWN: return "down";
    case DORM_CONN_CONNECTING: return "connecting";
    case DORM_CONN_READY: return "ready";
    case DORM_CONN_BACKOFF: return "backoff";
    case DORM_CONN_CLOSED: return "closed";
    default: return "?";
  }
}

/* ---- what a statement does ---------------------------------------------- */

/* The first keyword of sql (blanks, comments and '(' skipped), compared
 * without case. */
static int kw_is(const char *p, size_t n, const char *kw) {
  size_t k = strlen(kw);
  if (n < k) return 0;
  for (size_t i = 0; i < k; i++) {
    char c = p[i];
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    if (c != kw[i]) return 0;
  }
  return n == k;
}

static int classify_text(const char *s, size_t len) {
  const char *p = s, *end = s + len;
  for (;;) {
    while (p < end &&
           (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '('))
      p++;
    if (p + 1 < end && p[0] == '-' && p[1] == '-') {
      while (p < end && *p != '\n') p++;
    } else if (p + 1 < end && p[0] == '/' && p[1] == '*') {
      p += 2;
      while (p + 1 < end && !(p[0] == '*' && p[1] == '/')) p++;
      p = p + 1 < end ? p + 2 : end;
    } else {
      break;
    }
  }
  const char *w = p;
  while (p < end && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) p++;
  size_t n = (size_t)(p - w);
  static const struct {
    const char *kw;
    int kind;
  } kws[] = {
      {"SELECT", DORM_STMT_READ},   {"WITH", DORM_STMT_READ},
      {"VALUES", DORM_STMT_READ},   {"SHOW", DORM_STMT_READ},
      {"EXPLAIN", DORM_STMT_READ},  {"PRAGMA", DORM_STMT_READ},
      {"TABLE", DORM_STMT_READ},    {"INSERT", DORM_STMT_WRITE},
      {"UPDATE", DORM_STMT_WRITE},  {"DELETE", DORM_STMT_WRITE},
      {"REPLACE", DORM_STMT_WRITE}, {"MERGE", DORM_STMT_WRITE},
      {"COPY", DORM_STMT_WRITE},    {"CREATE", DORM_STMT_DDL},
      {"ALTER", DORM_STMT_DDL},     {"DROP", DORM_STMT_DDL},
      {"TRUNCATE", DORM_STMT_DDL},  {"COMMENT", DORM_STMT_DDL},
      {"GRANT", DORM_STMT_DDL},     {"REVOKE", DORM_STMT_DDL},
      {"REINDEX", DORM_STMT_DDL},   {"BEGIN", DORM_STMT_TX},
      {"START", DORM_STMT_TX},      {"COMMIT", DORM_STMT_TX},
      {"END", DORM_STMT_TX},        {"ROLLBACK", DORM_STMT_TX},
      {"SAVEPOINT", DORM_STMT_TX},  {"RELEASE", DORM_STMT_TX},
      {"LISTEN", DORM_STMT_LISTEN}, {"UNLISTEN", DORM_STMT_LISTEN},
      {"NOTIFY", DORM_STMT_LISTEN},
  };
  for (size_t i = 0; i < sizeof kws / sizeof kws[0]; i++)
    if (kw_is(w, n, kws[i].kw)) return kws[i].kind;
  return DORM_STMT_OTHER;
}

/* A compiled query's kind is its call's; raw SQL and the facade's own
 * statements are read. */
static int op_stmt_kind(const op *o) {
  if (o->internal) return DORM_STMT_READ;
  if (o->kind != OP_CTL && !o->raw) {
    if (!o->write) return DORM_STMT_READ;
    /* a compiled write's text says which (update_or_create's SELECT ...
     * FOR UPDATE is a write request that reads) */
  }
  if (!o->nstmts || !o->stmts[0].sql) return DORM_STMT_OTHER;
  return classify_text(o->stmts[0].sql, o->stmts[0].len);
}

/* ---- opening ------------------------------------------------------------ */

void dorm__db_obs_open(dorm_db *root) {
  int sqlite = root->be->dialect == DORM_DIALECT_SQLITE;
  for (size_t i = 0; i < root->nconns; i++) {
    conn_state *c = &root->conns[i];
    dorm__conn_info ci;
    memset(&ci, 0, sizeof ci);
    if (root->be->conn_info) root->be->conn_info(root->bstate, i, &ci);
    c->pgbouncer = ci.pgbouncer;
    c->replica = ci.replica;
    if (sqlite)
      c->role = c->flags & DORM__CONN_WRITE ? DORM_ROLE_SQLITE_WRITER
                                            : DORM_ROLE_SQLITE_READER;
    else
      c->role =
          c->flags & DORM__CONN_REPLICA ? DORM_ROLE_REPLICA : DORM_ROLE_PRIMARY;
    if (c->role == DORM_ROLE_REPLICA && !c->replica) c->replica = 1;
    if (c->replica > root->st.nreplicas) root->st.nreplicas = c->replica;
  }
  dorm__db_log_install(root);
}

/* ---- hooks -------------------------------------------------------------- */

dorm_hook *dorm_db_add_hook(dorm_db *db, dorm_hook_start_fn start,
                            dorm_hook_end_fn end, void *arg, unsigned flags) {
  if (!db || (!start && !end) || (flags & ~DORM_HOOK_VALUES)) return NULL;
  dorm_db *root = db->root;
  if (root->closed) return NULL;
  for (size_t i = 0; i < DORM_HOOKS_MAX; i++) {
    struct dorm_hook *h = &root->hooks[i];
    if (h->used) continue;
    memset(h, 0, sizeof *h);
    h->start = start;
    h->end = end;
    h->arg = arg;
    h->flags = flags;
    h->used = h->live = 1;
    root->nhooks++;
    return h;
  }
  return NULL;
}

void dorm_db_remove_hook(dorm_db *db, dorm_hook *h) {
  if (!db || !h) return;
  dorm_db *root = db->root;
  if (h < root->hooks || h >= root->hooks + DORM_HOOKS_MAX || !h->live) return;
  h->live = 0;
  root->nhooks--;
  if (!h->inflight) h->used = 0;
}

/* The event of o as known when it is handed over. */
static void event_fill(dorm_db *root, const op *o, dorm_query_event *ev) {
  memset(ev, 0, sizeof *ev);
  const dorm__stmt *st = o->nstmts ? &o->stmts[0] : NULL;
  ev->sql = st && st->sql ? st->sql : "";
  ev->sql_len = st && st->sql ? st->len : 0;
  ev->nstatements = o->nstmts;
  ev->nparams = st ? st->nparams : 0;
  ev->kind = op_stmt_kind(o);
  ev->model = o->model_name;
  ev->backend = root->be->name;
  if (o->conn < root->nconns) {
    const conn_state *c = &root->conns[o->conn];
    ev->role = c->role;
    ev->replica = c->role == DORM_ROLE_REPLICA ? c->replica : 0;
    ev->pgbouncer = c->pgbouncer;
  } else {
    /* a connection of its own: PostgreSQL's listener or a stream's
     * (the primary's), SQLite's stream reader */
    ev->role = root->be->dialect == DORM_DIALECT_SQLITE
                   ? DORM_ROLE_SQLITE_READER
                   : DORM_ROLE_PRIMARY;
  }
  ev->conn = o->conn;
  ev->in_transaction = o->kind == OP_CTL ? !o->internal : o->atx != NULL;
  ev->internal = o->internal;
  ev->start_ns = o->t_made;
  ev->queue_ns = o->t_sent - o->t_made;
  ev->rows = -1;
  ev->sqlstate = "";
  ev->retried = o->retried;
}

static void hooks_start(dorm_db *root, op *o) {
  o->t_sent = now_ns();
  if (!o->t_made || o->t_made > o->t_sent) o->t_made = o->t_sent;
  dorm_query_event ev;
  event_fill(root, o, &ev);
  ev.rows = 0; /* an end field */
  const dorm_value *params = o->nstmts ? o->stmts[0].params : NULL;
  for (unsigned i = 0; i < DORM_HOOKS_MAX; i++) {
    struct dorm_hook *h = &root->hooks[i];
    if (!h->live) continue;
    o->hookmask |= 1u << i;
    h->inflight++;
    o->hook_user[i] = NULL;
    if (!h->start) continue;
    ev.params = h->flags & DORM_HOOK_VALUES ? params : NULL;
    h->start(&ev, h->arg, &o->hook_user[i]);
    /* a start may remove hooks or close the database: re-read */
    if (root->hooks_off) return;
  }
}

static void hooks_end(dorm_db *root, op *o, const dorm_result *res, int code) {
  dorm_query_event ev;
  event_fill(root, o, &ev);
  ev.exec_ns = now_ns() - o->t_sent;
  ev.code = code;
  if (res) {
    switch (res->kind) {
      case DORM_RESULT_ROWS:
        ev.rows =
            res->u.rows.rows ? (int64_t)dorm_rows_count(res->u.rows.rows) : 0;
        break;
      case DORM_RESULT_COUNT: ev.rows = res->u.count; break;
      case DORM_RESULT_ROW: ev.rows = 1; break;
      case DORM_RESULT_ERROR: ev.sqlstate = dorm_result_sqlstate(res); break;
      default: break;
    }
  }
  const dorm_value *params = o->nstmts ? o->stmts[0].params : NULL;
  const char *msg = res && dorm_result_is_error(res)
                        ? dorm_result_message(res)
                        : (code ? dorm_strerror(code) : NULL);
  unsigned mask = o->hookmask;
  o->hookmask = 0;
  for (unsigned i = 0; i < DORM_HOOKS_MAX; i++) {
    if (!(mask & (1u << i))) continue;
    struct dorm_hook *h = &root->hooks[i];
    void *user = o->hook_user[i];
    o->hook_user[i] = NULL;
    int values = (h->flags & DORM_HOOK_VALUES) != 0;
    ev.params = values ? params : NULL;
    ev.message = values ? msg : NULL;
    if (h->end && !root->hooks_off) h->end(&ev, h->arg, user);
    if (--h->inflight == 0 && !h->live) h->used = 0;
  }
}

/* ---- the facade's two calls --------------------------------------------- */

void dorm__db_obs_sent(dorm_db *root, op *o) {
  conn_state *c = &root->conns[o->conn];
  c->requests++;
  if (!o->write && o->kind != OP_CTL) {
    if (c->flags & DORM__CONN_REPLICA)
      root->st.reads_replica++;
    else
      root->st.reads_primary++;
  }
  if (o->started) {
    root->st.retried++;
    return;
  }
  o->started = 1;
  root->st.started++;
  if (root->nhooks && !root->closed) {
    hooks_start(root, o);
    root->st.by_kind[op_stmt_kind(o)]++;
  } else if (o->kind != OP_CTL && !o->raw) {
    /* the kind without reading the text, in the common case */
    root->st.by_kind[o->write ? op_stmt_kind(o) : DORM_STMT_READ]++;
  } else {
    root->st.by_kind[op_stmt_kind(o)]++;
  }
}

void dorm__db_obs_done(dorm_db *root, op *o, const dorm_result *res) {
  if (!o->started || o->ended) return;
  o->ended = 1;
  int code = o->cancel_kind == 2   ? DORM_ETIMEDOUT
             : o->cancel_kind == 1 ? DORM_ECANCELED
             : res                 ? dorm_result_code(res)
                                   : 0;
  if (code) {
    root->st.failed++;
    size_t k = code < 0 && -code < DORM_STATS_CODES ? (size_t)-code : 0;
    root->st.failed_by_code[k]++;
    if (o->cancel_kind == 1) root->st.cancelled++;
    if (o->cancel_kind == 2) root->st.timed_out++;
  } else {
    root->st.succeeded++;
  }
  if (o->hookmask) hooks_end(root, o, res, code);
}

/* ---- LISTEN / UNLISTEN --------------------------------------------------- */

/* dorm_listen and dorm_unlisten run on the backend's listener connection,
 * not through a slot; for the hooks they are requests of kind LISTEN all
 * the same.  An op carries them (it holds the database until freed, and
 * sits on the pending list so dorm_db_close ends its hooks); a first
 * step on the call's deferred ends it and passes the result on. */
static dorm_result listen_step(dorm_result *res, void *arg) {
  op *o = arg;
  dorm_db *root = o->root;
  if (!o->orphan) dorm__db_pending_remove(root, o);
  dorm__db_obs_done(root, o, res);
  dorm__db_op_release(o);
  return *res;
}

dorm_deferred *dorm__db_obs_aside(dorm_db *root, dorm_deferred *d,
                                  const char *text, const char *model) {
  if (!d || root->closed || dorm_deferred_fired(d)) return d;
  op *o = dorm__db_op_new(root, OP_PLAIN);
  if (!o) return d;
  o->raw = dorm__strdup(text);
  if (!o->raw || dorm_deferred_add_both(d, listen_step, o)) {
    dorm__db_op_release(o); /* unseen, rather than fail the call */
    return d;
  }
  dorm__db_op_stmt_text(o, o->raw);
  o->model_name = model;
  o->conn = root->nconns; /* no slot of the facade */
  o->next = root->pending;
  o->prev = NULL;
  if (root->pending) root->pending->prev = o;
  root->pending = o;
  root->npending++;
  o->started = 1;
  root->st.started++;
  root->st.by_kind[op_stmt_kind(o)]++;
  if (root->nhooks) hooks_start(root, o);
  return d;
}

dorm_deferred *dorm__db_obs_listen(dorm_db *root, dorm_deferred *d,
                                   const char *verb, const char *channel) {
  if (!d) return d;
  char text[DORM_IDENT_MAX * 2 + 16];
  snprintf(text, sizeof text, "%s \"%s\"", verb, channel);
  return dorm__db_obs_aside(root, d, text, NULL);
}

/* ---- statistics --------------------------------------------------------- */

int dorm_db_stats(dorm_db *db, dorm_stats *s) {
  if (!db || !s) return DORM_EINVAL;
  dorm_db *root = db->root;
  *s = root->st;
  s->in_flight = root->npending;
  size_t q = 0;
  for (const waiter *w = root->wait_head; w; w = w->next) q++;
  s->queued = q;
  s->nconns = root->nconns;
  s->hooks = root->nhooks;
  s->streams = dorm__db_streams(root);
  s->sqlite_writer_queue = s->sqlite_reader_queue = 0;
  for (size_t i = 0; i < root->nconns; i++) {
    const conn_state *c = &root->conns[i];
    if (c->role == DORM_ROLE_SQLITE_WRITER)
      s->sqlite_writer_queue += c->inflight;
    else if (c->role == DORM_ROLE_SQLITE_READER)
      s->sqlite_reader_queue += c->inflight;
  }
  return 0;
}

int dorm_db_conn_stats(dorm_db *db, size_t i, dorm_conn_stats *out) {
  if (!db || !out) return DORM_EINVAL;
  dorm_db *root = db->root;
  if (i >= root->nconns) return DORM_EINVAL;
  const conn_state *c = &root->conns[i];
  dorm__conn_info ci;
  memset(&ci, 0, sizeof ci);
  ci.state = DORM_CONN_READY;
  if (root->be->conn_info && !root->backend_gone)
    root->be->conn_info(root->bstate, i, &ci);
  if (root->backend_gone || root->closed) ci.state = DORM_CONN_CLOSED;
  memset(out, 0, sizeof *out);
  out->role = c->role;
  out->replica = c->role == DORM_ROLE_REPLICA ? c->replica : 0;
  out->state = ci.state;
  out->pgbouncer = c->pgbouncer;
  out->pinned = c->pinned;
  out->in_flight = c->inflight;
  out->statements_cached = ci.statements_cached;
  out->reconnects = ci.reconnects;
  out->requests = c->requests;
  return 0;
}

int dorm_db_replica_stats(dorm_db *db, size_t n, dorm_replica_stats *r) {
  if (!db || !r) return DORM_EINVAL;
  dorm_db *root = db->root;
  if (n < 1 || n > root->st.nreplicas) return DORM_EINVAL;
  memset(r, 0, sizeof *r);
  for (size_t i = 0; i < root->nconns; i++) {
    const conn_state *c = &root->conns[i];
    if (c->role != DORM_ROLE_REPLICA || c->replica != n) continue;
    r->reads += c->requests;
    r->skipped += c->skipped;
    if (root->closed || root->backend_gone) continue;
    if (root->be->slot_usable && root->be->slot_usable(root->bstate, i, 0))
      r->usable = 1;
    dorm__conn_info ci;
    memset(&ci, 0, sizeof ci);
    if (root->be->conn_info) root->be->conn_info(root->bstate, i, &ci);
    if (ci.lag_known) {
      r->lag_known = 1;
      r->lag_ms = ci.lag_ms;
    }
  }
  return 0;
}

/* ---- the query counter -------------------------------------------------- */

static void counter_end(const dorm_query_event *ev, void *arg, void *user) {
  (void)user;
  dorm_query_counter *c = arg;
  if (ev->internal) return;
  size_t n = ev->nstatements ? ev->nstatements : 1;
  c->queries += n;
  if (ev->kind > 0 && ev->kind < DORM_STMT_KINDS) c->by_kind[ev->kind] += n;
  if (ev->code) c->failed++;
  size_t len = ev->sql_len < sizeof c->last_sql - 1 ? ev->sql_len
                                                    : sizeof c->last_sql - 1;
  memcpy(c->last_sql, ev->sql, len);
  c->last_sql[len] = '\0';
}

int dorm_query_counter_start(dorm_query_counter *c, dorm_db *db) {
  if (!c || !db) return DORM_EINVAL;
  memset(c, 0, sizeof *c);
  c->db = db;
  c->hook = dorm_db_add_hook(db, NULL, counter_end, c, 0);
  return c->hook ? 0 : DORM_ENOMEM;
}

uint64_t dorm_query_counter_stop(dorm_query_counter *c) {
  if (!c) return 0;
  if (c->hook && c->db && !c->db->root->hooks_off) {
    /* requests still out would end into c after it is gone: forget
     * them here (they were not counted) */
    dorm_db *root = c->db->root;
    struct dorm_hook *h = c->hook;
    size_t idx = (size_t)(h - root->hooks);
    for (op *o = root->pending; o; o = o->next)
      if (o->hookmask & (1u << idx)) {
        o->hookmask &= ~(1u << idx);
        h->inflight--;
      }
    dorm_db_remove_hook(c->db, h);
    if (!h->inflight) h->used = 0;
  }
  c->hook = NULL;
  return c->queries;
}
