/* SPDX-License-Identifier: MIT */
/* backends/pg/pg_stmt_cache.c — a connection's prepared statements: the
 * cache that finds a statement's entry by its SQL text and parameter
 * types, the names they are prepared under, and what their prepares and
 * executions teach about them.
 *
 * The first time a statement is sent on a connection it is prepared
 * under a name of its own ("dorm_N", N counting per session) and then
 * executed by name; later sends only execute.  The cache is an
 * open-addressed table, at most half full, of at most PG_CACHE_MAX
 * entries: beyond that (or out of memory, or behind PgBouncer) a
 * statement goes unnamed.  Nothing is evicted one by one: the server
 * forgets every name when the session ends, and so does the cache
 * (dorm__pg_cache_reset); an entry whose statement the server no longer
 * has (DEALLOCATE, DISCARD) or whose plan went stale is prepared again.
 */
#include <stdio.h>
#include <string.h>

#include "backends/pg/pg_int.h"

/* Prepared statements per connection; beyond that, unnamed statements. */
#define PG_CACHE_MAX 1024

/* A hash of the SQL text, 8 bytes at a time: this runs for every
 * statement sent. */
static uint64_t hash_bytes(const void *p, size_t n, uint64_t h) {
  const unsigned char *s = p;
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, s, n);
  h = (h ^ w ^ n) * 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 32);
}

static void sce_free(dorm__pg_sce *e) {
  if (!e) return;
  dorm__free(e->sql);
  dorm__free(e->types);
  dorm__free(e->fail_msg);
  dorm__free(e);
}

static void cache_clear(dorm__pg_conn *c) {
  c->mru = NULL;
  for (size_t i = 0; i < c->cache_cap; i++) {
    sce_free(c->cache[i]);
    c->cache[i] = NULL;
  }
  c->cache_count = 0;
}

/* The entry found last is tried first with two memcmp, cheaper than
 * hashing the text: a stream of queries often repeats one statement. */
dorm__pg_sce *dorm__pg_cache_get(dorm__pg_conn *c, const char *sql, size_t len,
                                 const Oid *types, size_t n) {
  /* PgBouncer's transaction pooling gives each transaction whichever
   * server connection is free: a statement prepared on one is unknown on
   * the next, so every statement goes unnamed (Parse/Bind/Execute) */
  if (c->node->cfg->pgbouncer) return NULL;
  dorm__pg_sce *m = c->mru;
  if (m && m->len == len && m->ntypes == n && !memcmp(m->sql, sql, len) &&
      (!n || !memcmp(m->types, types, n * sizeof *types)))
    return m;
  uint64_t h = hash_bytes(sql, len, 1469598103934665603ull);
  if (n) h = hash_bytes(types, n * sizeof *types, h);
  if (!c->cache_cap) {
    c->cache = dorm__calloc(64, sizeof *c->cache);
    if (!c->cache) return NULL;
    c->cache_cap = 64;
  }
  size_t mask = c->cache_cap - 1, i = (size_t)h & mask;
  for (; c->cache[i]; i = (i + 1) & mask) {
    dorm__pg_sce *e = c->cache[i];
    if (e->hash == h && e->len == len && e->ntypes == n &&
        !memcmp(e->sql, sql, len) &&
        (!n || !memcmp(e->types, types, n * sizeof *types)))
      return c->mru = e;
  }
  if (c->cache_count >= PG_CACHE_MAX) return NULL;
  if ((c->cache_count + 1) * 2 > c->cache_cap) {
    /* grow (open addressing, half full at most) */
    size_t ncap = c->cache_cap * 2;
    dorm__pg_sce **nt = dorm__calloc(ncap, sizeof *nt);
    if (!nt) return NULL;
    for (size_t j = 0; j < c->cache_cap; j++) {
      dorm__pg_sce *e = c->cache[j];
      if (!e) continue;
      size_t k = (size_t)e->hash & (ncap - 1);
      while (nt[k]) k = (k + 1) & (ncap - 1);
      nt[k] = e;
    }
    dorm__free(c->cache);
    c->cache = nt;
    c->cache_cap = ncap;
    mask = ncap - 1;
    for (i = (size_t)h & mask; c->cache[i]; i = (i + 1) & mask) {
    }
  }
  dorm__pg_sce *e = dorm__calloc(1, sizeof *e);
  if (!e) return NULL;
  e->sql = dorm__strndup(sql, len);
  e->types = n ? dorm__malloc(n * sizeof *types) : NULL;
  if (!e->sql || (n && !e->types)) {
    sce_free(e);
    return NULL;
  }
  if (n) memcpy(e->types, types, n * sizeof *types);
  e->hash = h;
  e->len = len;
  e->ntypes = n;
  e->state = DORM__PG_SCE_NEW;
  c->cache[i] = e;
  c->cache_count++;
  return c->mru = e;
}

void dorm__pg_cache_reset(dorm__pg_conn *c) {
  cache_clear(c);
  c->next_name = 0;
}

void dorm__pg_cache_free(dorm__pg_conn *c) {
  cache_clear(c);
  dorm__free(c->cache);
  c->cache = NULL;
  c->cache_cap = 0;
}

int dorm__pg_sce_must_prepare(const dorm__pg_sce *e) {
  return e->state == DORM__PG_SCE_NEW || e->state == DORM__PG_SCE_FAILED;
}

const char *dorm__pg_sce_preparing(dorm__pg_conn *c, dorm__pg_sce *e) {
  snprintf(e->name, sizeof e->name, "dorm_%lu", c->next_name++);
  e->state = DORM__PG_SCE_PENDING;
  return e->name;
}

void dorm__pg_sce_prepared(dorm__pg_sce *e, const dorm_result *err) {
  if (!err) {
    e->state = DORM__PG_SCE_READY;
    return;
  }
  e->state = DORM__PG_SCE_FAILED;
  const char *st = dorm_result_sqlstate(err);
  snprintf(e->fail_state, sizeof e->fail_state, "%s", st);
  dorm__free(e->fail_msg);
  e->fail_msg = dorm__strdup(dorm_result_message(err));
}

int dorm__pg_sce_exec_failed(dorm__pg_sce *e, const char *state,
                             dorm_result *out) {
  int from_prepare = 0;
  if (state && !strcmp(state, "26000") && e->fail_msg) {
    /* "prepared statement does not exist" because its prepare failed */
    *out = dorm__db_error(e->fail_state, "%s", e->fail_msg);
    if (out->kind == DORM_RESULT_ERROR && !strcmp(e->fail_state, "25P02"))
      out->u.error.code = DORM_ETXABORTED;
    from_prepare = 1;
  }
  /* a statement that no longer exists on the server (DEALLOCATE,
   * DISCARD) or whose plan went stale is prepared again next time */
  if (state && (!strcmp(state, "26000") || !strcmp(state, "0A000")) &&
      e->state == DORM__PG_SCE_READY)
    e->state = DORM__PG_SCE_NEW;
  return from_prepare;
}
