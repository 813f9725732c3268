/* SPDX-License-Identifier: MIT */
/* backends/pg/pg_listen.c — LISTEN/NOTIFY: the backend's listen and
 * unlisten entries, behind dorm_listen and dorm_unlisten.
 *
 * A pool gets one more connection, the listener, the first time
 * dorm_listen is called.  It is an ordinary pipeline connection
 * (pg_conn.c) whose socket callback also drains PQnotifies; LISTEN and
 * UNLISTEN are internal requests on it.  Subscriptions (channel, fn, arg)
 * live here, not on the server: when the listener connection is lost it
 * reconnects by itself (with backoff, as long as the pool is open), every
 * channel is listened to again in one request, and once the server has
 * confirmed it every subscriber is told of the gap.
 *
 * A subscriber may unlisten (itself or another) or close the database
 * from its callback: removal during a delivery only marks the entry, and
 * the list is swept when the delivery is over.
 */
#include <stdio.h>
#include <string.h>

#include "backends/pg/pg_int.h"
#include "dorm/schema.h"

typedef struct sub {
  char *channel; /* owned */
  dorm_notify_fn fn;
  void *arg;
  int dead;
  struct sub *next;
} sub;

struct dorm__pg_listener {
  dorm__pg_pool *pool;
  dorm__pg_conn *conn;
  sub *subs;
  int delivering;
};

/* An internal request: one or more LISTEN / UNLISTEN statements. */
typedef struct lreq {
  dorm__req req;
  dorm__stmt *stmts;
  char *sql;        /* all statements' text, owned */
  dorm_deferred *d; /* fired with the outcome, or NULL */
  dorm__pg_listener *l;
  int gap; /* a restore: tell every subscriber of the gap when done */
} lreq;

static void sweep(dorm__pg_listener *l) {
  if (l->delivering) return;
  for (sub **pp = &l->subs; *pp;) {
    sub *s = *pp;
    if (s->dead) {
      *pp = s->next;
      dorm__free(s->channel);
      dorm__free(s);
    } else {
      pp = &s->next;
    }
  }
}

static void deliver(dorm__pg_listener *l, const dorm_notification *n, int all) {
  dorm_db *db = l->pool->db;
  l->delivering++;
  for (sub *s = l->subs; s; s = s->next) {
    if (s->dead || (!all && strcmp(s->channel, n->channel))) continue;
    dorm_notification m = *n;
    if (all) m.channel = s->channel;
    s->fn(db, &m, s->arg);
    if (l->pool->closing) break;
  }
  l->delivering--;
  sweep(l);
}

static void lreq_done(dorm__req *r) {
  lreq *q = (lreq *)r;
  dorm__pg_listener *l = q->l;
  dorm_result res = r->result;
  r->result = dorm_result_none();
  int ok = !dorm_result_is_error(&res);
  if (q->d)
    dorm_deferred_fire(q->d, res);
  else
    dorm_result_free(&res);
  if (q->gap && ok && l && !l->pool->closing) {
    dorm_notification n = {NULL, NULL, 0, 1};
    deliver(l, &n, 1);
  }
  dorm__free(q->stmts);
  dorm__free(q->sql);
  dorm__free(q);
}

/* A request of n statements "<verb> <quoted channel>".  NULL when out of
 * memory. */
static lreq *lreq_new(dorm__pg_listener *l, const char *verb,
                      const char *const *channels, size_t n) {
  lreq *q = dorm__calloc(1, sizeof *q);
  if (!q) return NULL;
  size_t cap = n * (strlen(verb) + 2 * 64 + 8);
  q->sql = dorm__malloc(cap);
  q->stmts = dorm__calloc(n, sizeof *q->stmts);
  if (!q->sql || !q->stmts) goto oom;
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    char quoted[2 * 64 + 4];
    if (dorm_quote_ident(channels[i], quoted, sizeof quoted) < 0) goto oom;
    int k = snprintf(q->sql + off, cap - off, "%s %s", verb, quoted);
    q->stmts[i].sql = q->sql + off;
    q->stmts[i].len = (size_t)k;
    off += (size_t)k + 1;
  }
  q->req.stmts = q->stmts;
  q->req.nstmts = n;
  q->req.done = lreq_done;
  q->l = l;
  return q;
oom:
  dorm__free(q->sql);
  dorm__free(q->stmts);
  dorm__free(q);
  return NULL;
}

static void lreq_submit(dorm__pg_listener *l, lreq *q) {
  l->pool->no_direct++;
  q->req.backend_data = (void *)(uintptr_t)DORM__PG_R_INTERNAL;
  dorm__pg_conn_submit(l->conn, &q->req);
  l->pool->no_direct--;
}

static dorm__pg_listener *listener_get(dorm__pg_pool *p) {
  if (p->listener) return p->listener;
  dorm__pg_listener *l = dorm__calloc(1, sizeof *l);
  if (!l) return NULL;
  l->pool = p;
  l->conn = dorm__pg_conn_new(p, &p->nodes[0], p->nconns);
  if (!l->conn) {
    dorm__free(l);
    return NULL;
  }
  l->conn->is_listener = 1;
  p->listener = l;
  return l;
}

/* A deferred that fires with res on the next turn (R2). */
static dorm_deferred *soon(dorm__pg_pool *p, dorm_result res) {
  dorm_deferred *d = dorm_deferred_new(NULL, NULL);
  if (!d) {
    dorm_result_free(&res);
    return NULL;
  }
  dorm_deferred_fire_soon(p->loop, d, res);
  return d;
}

dorm_deferred *dorm__pg_listen(dorm__pg_pool *p, const char *channel,
                               dorm_notify_fn fn, void *arg) {
  if (p->closing) return soon(p, dorm_result_error(DORM_ECLOSED, NULL));
  if (!dorm_ident_valid(channel))
    return soon(p, dorm_result_error(DORM_EIDENT,
                                     "dorm_listen: '%.80s' is not a valid "
                                     "channel name",
                                     channel));
  if (p->cfg.pgbouncer)
    /* transaction pooling hands the session to others between
     * transactions: a LISTEN there would hear nothing, or another
     * client's channels */
    return soon(p, dorm_result_error(DORM_EUNSUPPORTED,
                                     "dorm_listen: LISTEN needs a session of "
                                     "its own, which PgBouncer's transaction "
                                     "pooling does not give; open a database "
                                     "on the server itself for it"));
  dorm__pg_listener *l = listener_get(p);
  if (!l) return NULL;
  sub *s = dorm__calloc(1, sizeof *s);
  if (!s) return NULL;
  s->channel = dorm__strdup(channel);
  lreq *q = s->channel ? lreq_new(l, "LISTEN", &channel, 1) : NULL;
  dorm_deferred *d = q ? dorm_deferred_new(NULL, NULL) : NULL;
  if (!d) {
    if (q) {
      dorm__free(q->stmts);
      dorm__free(q->sql);
      dorm__free(q);
    }
    dorm__free(s->channel);
    dorm__free(s);
    return NULL;
  }
  s->fn = fn;
  s->arg = arg;
  s->next = l->subs;
  l->subs = s;
  q->d = d;
  lreq_submit(l, q);
  return d;
}

dorm_deferred *dorm__pg_unlisten(dorm__pg_pool *p, const char *channel,
                                 dorm_notify_fn fn, void *arg) {
  if (p->closing) return soon(p, dorm_result_error(DORM_ECLOSED, NULL));
  dorm__pg_listener *l = p->listener;
  sub *found = NULL;
  int others = 0;
  for (sub *s = l ? l->subs : NULL; s; s = s->next) {
    if (s->dead || strcmp(s->channel, channel)) continue;
    if (!found && s->fn == fn && s->arg == arg)
      found = s;
    else
      others = 1;
  }
  if (!found)
    return soon(p, dorm_result_error(DORM_EINVAL,
                                     "dorm_unlisten: no such subscription"));
  found->dead = 1; /* never called again, even during a delivery */
  if (others) {
    sweep(l);
    return soon(p, dorm_result_none());
  }
  lreq *q = lreq_new(l, "UNLISTEN", &channel, 1);
  dorm_deferred *d = q ? dorm_deferred_new(NULL, NULL) : NULL;
  sweep(l);
  if (!d) {
    if (q) {
      dorm__free(q->stmts);
      dorm__free(q->sql);
      dorm__free(q);
    }
    return NULL;
  }
  q->d = d;
  lreq_submit(l, q);
  return d;
}

/* ---- called by the connection and the pool ------------------------------- */

void dorm__pg_listen_connected(dorm__pg_pool *p, int reconnect) {
  dorm__pg_listener *l = p->listener;
  if (!l || !reconnect) return;
  /* listen again to every channel (once each), then tell of the gap */
  size_t n = 0;
  for (sub *s = l->subs; s; s = s->next)
    if (!s->dead) n++;
  if (!n) return;
  const char **ch = dorm__calloc(n, sizeof *ch);
  if (!ch) return;
  size_t k = 0;
  for (sub *s = l->subs; s; s = s->next) {
    if (s->dead) continue;
    int dup = 0;
    for (size_t i = 0; i < k; i++)
      if (!strcmp(ch[i], s->channel)) dup = 1;
    if (!dup) ch[k++] = s->channel;
  }
  lreq *q = lreq_new(l, "LISTEN", ch, k);
  dorm__free(ch);
  if (!q) return;
  q->gap = 1;
  lreq_submit(l, q);
}

void dorm__pg_listen_drain(dorm__pg_pool *p, PGconn *pg) {
  dorm__pg_listener *l = p->listener;
  PGnotify *n;
  while ((n = PQnotifies(pg))) {
    if (l && !p->closing) {
      dorm_notification m = {n->relname, n->extra ? n->extra : "", n->be_pid,
                             0};
      deliver(l, &m, 0);
    }
    PQfreemem(n);
  }
}

void dorm__pg_listen_free(dorm__pg_pool *p) {
  dorm__pg_listener *l = p->listener;
  if (!l) return;
  /* its requests complete with DORM_ECLOSED (their deferreds fire) */
  dorm__pg_conn_destroy(l->conn);
  for (sub *s = l->subs; s; s->dead = 1, s = s->next) {
  }
  l->delivering = 0;
  sweep(l);
  dorm__free(l);
  p->listener = NULL;
}
