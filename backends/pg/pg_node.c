/* SPDX-License-Identifier: MIT */
/* backends/pg/pg_node.c — the servers of a PostgreSQL pool: the primary and
 * its read replicas, whether each may serve reads, and how far behind the
 * primary each replica is.
 *
 * Every check interval (replica_check_ms) each server gets a probe, one
 * small query on its first connection:
 *
 *   primary:  where its WAL is now (pg_current_wal_lsn)
 *   replica:  where its replay is (pg_last_wal_replay_lsn)
 *
 * The primary's positions are kept as samples (position, when first
 * seen), so a replica's lag in time is the age of the oldest sample it
 * has not replayed: "the primary had data at that time which this replica
 * still lacks".  That is exact to one check interval, and unlike
 * now() - pg_last_xact_replay_timestamp() it stays right when the primary
 * is idle, when the replica's replay is paused, and when a replica keeps
 * following a primary that was replaced (it never catches up).
 *
 * A replica serves reads once a probe has answered, while none of its
 * connections has failed since (a failure marks it down at once, before
 * the requests that were on it are failed, so the facade's retry goes
 * elsewhere), while its last probe is recent, and while its lag is within
 * replica_max_lag_ms.  A down replica keeps being probed; its probe makes
 * its connection try again (after that connection's backoff), and the
 * first connection that comes up brings the others up with it.
 *
 * The probes are the backend's own requests (DORM__PG_R_INTERNAL): they
 * never reach the facade, and the pool completes them at close like any
 * other request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/pg/pg_int.h"

static const char PROBE_SQL[] =
    "SELECT pg_is_in_recovery(), (CASE WHEN pg_is_in_recovery() THEN "
    "pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text";

uint64_t dorm__pg_parse_lsn(const char *s) {
  if (!s) return 0;
  char *end;
  unsigned long long hi = strtoull(s, &end, 16);
  if (end == s || *end != '/') return 0;
  const char *lo_s = end + 1;
  unsigned long long lo = strtoull(lo_s, &end, 16);
  if (end == lo_s || *end || hi > 0xffffffffull || lo > 0xffffffffull)
    return 0;
  return (uint64_t)hi << 32 | (uint64_t)lo;
}

/* ---- the primary's samples ----------------------------------------------- */

static void sample_add(dorm__pg_pool *p, uint64_t lsn, uint64_t at) {
  if (p->samples_count) {
    size_t last = (p->samples_head + p->samples_count - 1) % p->samples_cap;
    if (lsn <= p->samples[last].lsn) return; /* nothing new was written */
  }
  if (p->samples_count == p->samples_cap) {
    p->samples_head = (p->samples_head + 1) % p->samples_cap;
    p->samples_count--;
  }
  size_t i = (p->samples_head + p->samples_count) % p->samples_cap;
  p->samples[i].lsn = lsn;
  p->samples[i].at_ms = at;
  p->samples_count++;
}

/* How long the primary has had data beyond lsn, as of at. */
static uint64_t lag_of(const dorm__pg_pool *p, uint64_t lsn, uint64_t at) {
  for (size_t k = 0; k < p->samples_count; k++) {
    const struct dorm__pg_lsn_sample *s =
        &p->samples[(p->samples_head + k) % p->samples_cap];
    if (s->lsn > lsn) return at > s->at_ms ? at - s->at_ms : 0;
  }
  return 0;
}

/* ---- probes -------------------------------------------------------------- */

static dorm__pg_node *node_of_probe(dorm__req *req) {
  return (dorm__pg_node *)((char *)req - offsetof(dorm__pg_node, probe));
}

static void probe_done(dorm__req *req) {
  dorm__pg_node *node = node_of_probe(req);
  dorm__pg_pool *p = node->pool;
  node->probing = 0;
  dorm_result res = req->result;
  req->result = dorm_result_none();
  if (res.kind == DORM_RESULT_ROWS && !p->closing) {
    const dorm_row *row = dorm_rows_row(res.u.rows.rows, 0);
    const dorm_value *rec = row ? dorm_row_value_at(row, 0) : NULL;
    const dorm_value *pos = row ? dorm_row_value_at(row, 1) : NULL;
    uint64_t lsn = pos && pos->type == DORM_T_TEXT
                       ? dorm__pg_parse_lsn(pos->u.s.ptr)
                       : 0;
    uint64_t at = dorm__mono_ms();
    node->in_recovery = rec && rec->type == DORM_T_BOOL && rec->u.b;
    if (lsn) {
      node->lsn = lsn;
      node->probed_at = at;
      if (node->index == 0)
        sample_add(p, lsn, at);
      else
        node->lag_ms = lag_of(p, lsn, at);
      if (!node->down) node->probed = 1;
    }
  }
  /* an error: the connection's failure has marked the node down, or the
   * server answered oddly; either way the next probe asks again */
  dorm_result_free(&res);
}

static void probe_send(dorm__pg_node *node) {
  dorm__pg_pool *p = node->pool;
  if (node->probing || p->closing || !node->n) return;
  node->probing = 1;
  memset(&node->probe_stmt, 0, sizeof node->probe_stmt);
  node->probe_stmt.sql = PROBE_SQL;
  node->probe_stmt.len = sizeof PROBE_SQL - 1;
  memset(&node->probe, 0, sizeof node->probe);
  node->probe.stmts = &node->probe_stmt;
  node->probe.nstmts = 1;
  node->probe.done = probe_done;
  node->probe.backend_data = (void *)(uintptr_t)DORM__PG_R_INTERNAL;
  p->no_direct++;
  dorm__pg_conn_submit(p->conns[node->first], &node->probe);
  p->no_direct--;
}

static void probe_tick(dorm_timer *t, void *arg) {
  dorm__pg_pool *p = arg;
  (void)t;
  /* a server that stopped answering probes (hung, not closed) is not used
   * until one answers again: judged here, once per interval, so choosing
   * a replica for a read reads no clock */
  uint64_t now = dorm__mono_ms();
  uint64_t stale = 10 * p->check_ms < 2000 ? 2000 : 10 * p->check_ms;
  for (size_t i = 1; i < p->nnodes; i++)
    if (p->nodes[i].probed && now - p->nodes[i].probed_at > stale)
      p->nodes[i].probed = 0;
  p->in_cb++;
  for (size_t i = 0; i < p->nnodes; i++) probe_send(&p->nodes[i]);
  p->in_cb--;
  dorm__pg_pool_flush_dirty(p);
}

int dorm__pg_nodes_start(dorm__pg_pool *p) {
  if (p->nnodes < 2) return 0; /* no replicas: nothing to watch */
  /* enough samples to see a lag of max_lag_ms at one per interval */
  size_t cap = 64;
  if (p->max_lag_ms / p->check_ms + 4 > cap)
    cap = (size_t)(p->max_lag_ms / p->check_ms + 4);
  p->samples = dorm__calloc(cap, sizeof *p->samples);
  p->probe_timer = dorm_timer_new(p->loop, probe_tick, p);
  if (!p->samples || !p->probe_timer) {
    dorm__pg_nodes_stop(p);
    return DORM_ENOMEM;
  }
  p->samples_cap = cap;
  /* the first probes go out on the first turn: replicas are used as soon
   * as they have answered */
  dorm_timer_start(p->probe_timer, 0, p->check_ms);
  return 0;
}

void dorm__pg_nodes_stop(dorm__pg_pool *p) {
  if (p->probe_timer) dorm_timer_close(p->probe_timer);
  p->probe_timer = NULL;
  dorm__free(p->samples);
  p->samples = NULL;
  p->samples_cap = p->samples_count = p->samples_head = 0;
}

/* ---- health -------------------------------------------------------------- */

void dorm__pg_node_conn_state(dorm__pg_node *node, int up) {
  dorm__pg_pool *p = node->pool;
  if (!up) {
    node->down = 1;
    node->probed = 0; /* its position is unknown until a probe answers */
    return;
  }
  if (!node->down) return;
  node->down = 0;
  if (p->closing || node->index == 0) return;
  /* back: bring its other connections up, and learn its position now */
  for (size_t i = node->first; i < node->first + node->n; i++)
    dorm__pg_conn_kick(p->conns[i]);
  probe_send(node);
}

int dorm__pg_slot_usable(dorm__pg_pool *p, size_t conn, uint64_t min_lsn) {
  if (conn < p->nprimary) return 1;
  if (conn >= p->nconns) return 0;
  const dorm__pg_node *node = p->conns[conn]->node;
  if (node->down || !node->probed || node->lsn < min_lsn) return 0;
  return !p->max_lag_ms || node->lag_ms <= p->max_lag_ms;
}
