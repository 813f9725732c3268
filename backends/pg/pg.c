/* SPDX-License-Identifier: MIT */
/* backends/pg/pg.c — the PostgreSQL backend: the URL, the pool of
 * connections, the backend table the facade calls, and closing.
 *
 * The URL goes to libpq as it is (a postgresql:// or postgres:// URI, or a
 * "host=... dbname=..." keyword string), read with PQconninfoParse so every
 * libpq option works (multi-host lists, target_session_attrs, sslmode, ...)
 * and so we can add ours: client_encoding UTF8, TimeZone UTC (dorm sends
 * date-times as UTC text without an offset) and our own connect timeout
 * (libpq's connect_timeout is only honoured by its blocking connect; we
 * read it and run a timer), and TCP keepalives and tcp_user_timeout
 * unless the URL sets them (a dead host or network is noticed on an idle
 * connection).
 *
 * The pool is N connections (option pool_size, URI parameter pool_size,
 * default 2 per core), each a slot the facade may use for reads and writes
 * or pin for a transaction; with read replicas (option replicas), each
 * replica adds its own slots, for reads only, after the primary's
 * (pg_node.c watches the servers).  The URI parameter pgbouncer=1 (or the
 * option) selects PgBouncer's transaction-pooling mode: no named
 * statements, no startup options, one pipeline segment in flight.  Work the
 * connections cannot finish inside the call that caused it (a completion inside
 * submit or cancel, the end-of-turn flush after a submit from user code,
 * closing) runs from one zero-delay timer, `tick`, on the next loop turn.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/pg/pg_int.h"
#include "dorm/observe.h"

/* ---- configuration ------------------------------------------------------- */

static int is_uri(const char *url) {
  return !strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11);
}

static void one_line(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == ' ')) s[--n] = 0;
  for (; *s; s++)
    if (*s == '\n') *s = ' ';
}

static int default_pool_size(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  if (n > 64) n = 64;
  return (int)(2 * n);
}

static int parse_flag(const char *val, size_t n, int *out) {
  if ((n == 1 && *val == '1') || (n == 4 && !strncmp(val, "true", 4)) ||
      (n == 2 && !strncmp(val, "on", 2))) {
    *out = 1;
    return 0;
  }
  if ((n == 1 && *val == '0') || (n == 5 && !strncmp(val, "false", 5)) ||
      (n == 3 && !strncmp(val, "off", 3))) {
    *out = 0;
    return 0;
  }
  return -1;
}

static void nodes_free(dorm__pg_pool *p) {
  if (!p->nodes) return;
  for (size_t i = 1; i < p->nnodes; i++) dorm__pg_config_free(&p->nodes[i].own);
  dorm__free(p->nodes);
  p->nodes = NULL;
  p->nnodes = 0;
}

/* Take dorm's own parameters out of a URI's query string (libpq refuses
 * parameters it does not know).  u is modified in place. */
static int strip_uri_params(char *u, int *pool_size, int *pgbouncer,
                            long *answer_ms, dorm_error *err) {
  char *q = strchr(u, '?');
  if (!q) return 0;
  char *out = q + 1, *p = q + 1;
  while (*p) {
    char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    if (n >= 10 && !strncmp(p, "pool_size=", 10)) {
      /* the whole value, digits only, checked before it can overflow */
      const char *num = p + 10;
      size_t k = n - 10;
      long v = k ? 0 : -1;
      for (size_t i = 0; i < k && v >= 0; i++) {
        if (num[i] < '0' || num[i] > '9')
          v = -1;
        else if ((v = v * 10 + (num[i] - '0')) > 1000)
          v = 1001; /* stays too large, never overflows */
      }
      if (v < 1 || v > 1000)
        return dorm_error_set(err, DORM_EURL,
                              "pool_size=%.*s%s: expected 1 to 1000",
                              (int)(k > 20 ? 20 : k), num, k > 20 ? "..." : "");
      *pool_size = (int)v;
    } else if (n >= 18 && !strncmp(p, "answer_timeout_ms=", 18)) {
      char num[16];
      size_t k = n - 18 < sizeof num - 1 ? n - 18 : sizeof num - 1;
      memcpy(num, p + 18, k);
      num[k] = 0;
      char *end;
      long v = strtol(num, &end, 10);
      if (!k || n - 18 >= sizeof num || *end || v < 0 || v > 86400000)
        return dorm_error_set(err, DORM_EURL,
                              "answer_timeout_ms=%s: expected 0 (none) to "
                              "86400000 (ms)",
                              num);
      *answer_ms = v;
    } else if (n >= 10 && !strncmp(p, "pgbouncer=", 10)) {
      if (parse_flag(p + 10, n - 10, pgbouncer))
        return dorm_error_set(err, DORM_EURL,
                              "pgbouncer=%.*s: expected 1, 0, true or false",
                              (int)(n - 10 > 8 ? 8 : n - 10), p + 10);
    } else {
      if (out != q + 1) *out++ = '&';
      memmove(out, p, n);
      out += n;
    }
    p += n;
    if (*p == '&') p++;
  }
  *out = 0;
  if (out == q + 1) *q = 0; /* nothing left: drop the '?' */
  return 0;
}

int dorm__pg_config_parse(const char *url, const dorm_db_options *opts,
                          dorm__pg_config *cfg, dorm_error *err) {
  memset(cfg, 0, sizeof *cfg);
  cfg->pool_size =
      opts && opts->pool_size > 0 ? opts->pool_size : default_pool_size();
  cfg->pgbouncer = opts && opts->pgbouncer;
  cfg->answer_timeout_ms = opts && opts->answer_timeout_ms > 0
                               ? (uint64_t)opts->answer_timeout_ms
                               : 0;
  char *u = dorm__strdup(url);
  if (!u) return dorm_error_set(err, DORM_ENOMEM, "out of memory");
  long answer_ms = -1;
  if (is_uri(u) &&
      strip_uri_params(u, &cfg->pool_size, &cfg->pgbouncer, &answer_ms, err)) {
    dorm__free(u);
    return err ? err->code : DORM_EURL;
  }
  if (answer_ms >= 0) cfg->answer_timeout_ms = (uint64_t)answer_ms;
  char *msg = NULL;
  PQconninfoOption *o = PQconninfoParse(u, &msg);
  dorm__free(u);
  if (!o) {
    if (!msg) return dorm_error_set(err, DORM_ENOMEM, "out of memory");
    char m[DORM_ERROR_MSG_MAX];
    snprintf(m, sizeof m, "%s", msg);
    PQfreemem(msg);
    one_line(m);
    /* the URL is not repeated: it may hold a password */
    return dorm_error_set(err, DORM_EURL, "postgresql URL: %s", m);
  }
  size_t n = 0, k = 0;
  for (PQconninfoOption *x = o; x->keyword; x++)
    if (x->val) n++;
  cfg->keys = dorm__calloc(n + 10, sizeof *cfg->keys);
  cfg->vals = dorm__calloc(n + 10, sizeof *cfg->vals);
  if (!cfg->keys || !cfg->vals) goto oom;
  int have_app = 0, have_opts = 0;
  cfg->connect_timeout_ms = 10000;
  /* TCP keepalives and user timeout, unless the URL sets them (or this
   * libpq is too old to know tcp_user_timeout): libpq applies them to TCP
   * connections only, never to a Unix socket */
  struct {
    const char *key, *val;
    int skip;
  } tcp[] = {{"keepalives", "1", 0},
             {"keepalives_idle", "15", 0},
             {"keepalives_interval", "5", 0},
             {"keepalives_count", "3", 0},
             {"tcp_user_timeout", "30000", 1}};
  size_t ntcp = sizeof tcp / sizeof tcp[0];
  for (PQconninfoOption *x = o; x->keyword; x++)
    for (size_t i = 0; i < ntcp; i++)
      if (!strcmp(x->keyword, tcp[i].key))
        tcp[i].skip = x->val != NULL; /* known; set by the user? */
  for (PQconninfoOption *x = o; x->keyword; x++) {
    if (!x->val) continue;
    const char *val = x->val;
    char *own = NULL;
    if (!strcmp(x->keyword, "client_encoding")) continue; /* ours: UTF8 */
    if (!strcmp(x->keyword, "fallback_application_name")) have_app = 1;
    if (!strcmp(x->keyword, "connect_timeout")) {
      char *end;
      errno = 0;
      long s = strtol(val, &end, 10);
      if (*end || errno == ERANGE || s > INT_MAX) {
        /* libpq reads an int: a longer number would wrap there */
        dorm_error_set(err, DORM_EURL,
                       "postgresql URL: connect_timeout=%.20s is not a "
                       "number of seconds up to %d",
                       val, INT_MAX);
        goto fail;
      }
      /* libpq: 0 or less waits for ever, 1 means 2 */
      cfg->connect_timeout_ms = s <= 0 ? 0 : (uint64_t)(s < 2 ? 2 : s) * 1000u;
    }
    if (!strcmp(x->keyword, "options") && !cfg->pgbouncer) {
      /* appended last so it wins over a TimeZone the user set */
      have_opts = 1;
      size_t len = strlen(val) + 32;
      own = dorm__malloc(len);
      if (!own) goto oom;
      snprintf(own, len, "%s -c TimeZone=UTC", val);
    }
    cfg->keys[k] = dorm__strdup(x->keyword);
    cfg->vals[k] = own ? own : dorm__strdup(val);
    if (!cfg->keys[k] || !cfg->vals[k]) {
      k++;
      goto oom;
    }
    k++;
  }
  struct {
    const char *key, *val;
    int skip;
  } add[] = {{"client_encoding", "UTF8", 0},
             /* PgBouncer refuses startup options; dorm's date-time
              * parameters carry their offset, so the session's time zone
              * only changes how the server prints them, which dorm
              * reads whatever the offset */
             {"options", "-c TimeZone=UTC", have_opts || cfg->pgbouncer},
             {"fallback_application_name", "dorm", have_app}};
  for (size_t i = 0; i < sizeof add / sizeof add[0]; i++) {
    if (add[i].skip) continue;
    cfg->keys[k] = dorm__strdup(add[i].key);
    cfg->vals[k] = dorm__strdup(add[i].val);
    k++;
    if (!cfg->keys[k - 1] || !cfg->vals[k - 1]) goto oom;
  }
  for (size_t i = 0; i < ntcp; i++) {
    if (tcp[i].skip) continue;
    cfg->keys[k] = dorm__strdup(tcp[i].key);
    cfg->vals[k] = dorm__strdup(tcp[i].val);
    k++;
    if (!cfg->keys[k - 1] || !cfg->vals[k - 1]) goto oom;
  }
  cfg->nkeys = k;
  PQconninfoFree(o);
  return 0;
oom:
  dorm_error_set(err, DORM_ENOMEM, "out of memory");
fail:
  cfg->nkeys = k;
  PQconninfoFree(o);
  dorm__pg_config_free(cfg);
  return err ? err->code : DORM_ENOMEM;
}

int dorm__pg_split_urls(const char *list, char ***out, size_t *n,
                        dorm_error *err) {
  *out = NULL;
  *n = 0;
  if (!list) return 0;
  size_t cap = 1;
  for (const char *q = list; *q; q++)
    if (*q == ',') cap++;
  char **urls = dorm__calloc(cap, sizeof *urls);
  if (!urls) return dorm_error_set(err, DORM_ENOMEM, "out of memory");
  const char *start = list;
  size_t k = 0;
  for (const char *q = list;; q++) {
    int end = !*q || (*q == ',' && is_uri(q + 1));
    if (!end) continue;
    const char *a = start, *b = q;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    if (b > a) {
      char *u = dorm__malloc((size_t)(b - a) + 1);
      if (!u) {
        dorm__pg_urls_free(urls, k);
        return dorm_error_set(err, DORM_ENOMEM, "out of memory");
      }
      memcpy(u, a, (size_t)(b - a));
      u[b - a] = 0;
      urls[k++] = u;
      if (!is_uri(u)) {
        /* not echoed whole: it may hold a password */
        dorm_error_set(err, DORM_EURL,
                       "replica %zu: not a postgresql:// URI (replicas are "
                       "URIs separated by commas)",
                       k);
        dorm__pg_urls_free(urls, k);
        return DORM_EURL;
      }
    }
    if (!*q) break;
    start = q + 1;
  }
  *out = urls;
  *n = k;
  return 0;
}

void dorm__pg_urls_free(char **urls, size_t n) {
  if (!urls) return;
  for (size_t i = 0; i < n; i++) dorm__free(urls[i]);
  dorm__free(urls);
}

void dorm__pg_config_free(dorm__pg_config *cfg) {
  if (cfg->keys)
    for (size_t i = 0; i < cfg->nkeys; i++) dorm__free((void *)cfg->keys[i]);
  if (cfg->vals)
    for (size_t i = 0; i < cfg->nkeys; i++) dorm__free((void *)cfg->vals[i]);
  dorm__free((void *)cfg->keys);
  dorm__free((void *)cfg->vals);
  memset(cfg, 0, sizeof *cfg);
}

/* ---- the pool ------------------------------------------------------------ */

static void tick_cb(dorm_wakeup *w, void *arg);

/* The primary (node 0, p->cfg) and the replicas of opts->replicas, each
 * with its slots: the primary's first, then each replica's in order. */
static int nodes_open(dorm__pg_pool *p, const dorm_db_options *opts,
                      dorm_error *err) {
  char **urls;
  size_t nurls;
  int rc =
      dorm__pg_split_urls(opts ? opts->replicas : NULL, &urls, &nurls, err);
  if (rc) return rc;
  p->nodes = dorm__calloc(1 + nurls, sizeof *p->nodes);
  if (!p->nodes) {
    dorm__pg_urls_free(urls, nurls);
    return dorm_error_set(err, DORM_ENOMEM, "out of memory");
  }
  p->nnodes = 1;
  p->nodes[0].pool = p;
  p->nodes[0].cfg = &p->cfg;
  p->nodes[0].n = (size_t)p->cfg.pool_size;
  p->nconns = p->nprimary = p->nodes[0].n;
  dorm_db_options ro;
  if (opts)
    ro = *opts;
  else
    dorm_db_options_init(&ro);
  ro.pool_size =
      ro.replica_pool_size > 0 ? ro.replica_pool_size : p->cfg.pool_size;
  /* a replica's reads may be sent elsewhere: a deadline by default */
  ro.answer_timeout_ms = ro.replica_answer_timeout_ms < 0 ? 0
                         : ro.replica_answer_timeout_ms == 0
                             ? 10000
                             : ro.replica_answer_timeout_ms;
  for (size_t i = 0; i < nurls; i++) {
    dorm__pg_node *node = &p->nodes[1 + i];
    dorm_error e;
    dorm_error_clear(&e);
    if (dorm__pg_config_parse(urls[i], &ro, &node->own, &e)) {
      dorm_error_set(err, e.code, "replica %zu: %s", i + 1, e.message);
      nodes_free(p);
      dorm__pg_urls_free(urls, nurls);
      return err ? err->code : DORM_EURL;
    }
    p->nnodes++;
    node->pool = p;
    node->index = 1 + i;
    node->cfg = &node->own;
    node->first = p->nconns;
    node->n = (size_t)node->own.pool_size;
    p->nconns += node->n;
  }
  dorm__pg_urls_free(urls, nurls);
  p->check_ms = opts && opts->replica_check_ms > 0
                    ? (uint64_t)opts->replica_check_ms
                    : 100;
  p->max_lag_ms = opts && opts->replica_max_lag_ms > 0
                      ? (uint64_t)opts->replica_max_lag_ms
                      : 0;
  return 0;
}

/* The tick is a wake-up (an async handle), not a zero timer: it runs in
 * the loop's poll phase, so a uv_run(UV_RUN_ONCE) that waits for a
 * completion returns right after it (timers run before the poll, which
 * would then block). */
static void arm_tick(dorm__pg_pool *p) {
  if (p->tick_armed) return;
  p->tick_armed = 1;
  dorm_wakeup_send(p->tick);
}

int dorm__pg_pool_open(dorm_loop *loop, const char *url,
                       const dorm_db_options *opts, dorm__pg_ready_fn on_ready,
                       dorm__pg_closed_fn on_closed, void *cb_arg,
                       dorm__pg_pool **out, dorm_error *err) {
  *out = NULL;
  dorm__pg_pool *p = dorm__calloc(1, sizeof *p);
  if (!p) return dorm_error_set(err, DORM_ENOMEM, "out of memory");
  p->loop = loop;
  p->on_ready = on_ready;
  p->on_closed = on_closed;
  p->cb_arg = cb_arg;
  int rc = dorm__pg_config_parse(url, opts, &p->cfg, err);
  if (rc) {
    dorm__free(p);
    return rc;
  }
  rc = nodes_open(p, opts, err);
  if (rc) {
    dorm__pg_config_free(&p->cfg);
    dorm__free(p);
    return rc;
  }
  p->conns = dorm__calloc(p->nconns, sizeof *p->conns);
  p->tick = dorm_wakeup_new(loop, tick_cb, p);
  if (!p->conns || !p->tick) goto oom;
  for (size_t k = 0; k < p->nnodes; k++) {
    dorm__pg_node *node = &p->nodes[k];
    for (size_t i = node->first; i < node->first + node->n; i++) {
      p->conns[i] = dorm__pg_conn_new(p, node, i);
      if (!p->conns[i]) goto oom;
    }
  }
  if (dorm__pg_nodes_start(p)) goto oom;
  /* connect every slot now: the pool is warm for the first burst, and
   * readiness is known early */
  p->no_direct++;
  for (size_t i = 0; i < p->nconns; i++) dorm__pg_conn_kick(p->conns[i]);
  p->no_direct--;
  *out = p;
  return 0;
oom:
  if (p->conns)
    for (size_t i = 0; i < p->nconns; i++)
      if (p->conns[i]) dorm__pg_conn_destroy(p->conns[i]);
  if (p->tick) dorm_wakeup_close(p->tick);
  dorm__pg_nodes_stop(p);
  dorm__free(p->conns);
  nodes_free(p);
  dorm__pg_config_free(&p->cfg);
  dorm__free(p);
  return dorm_error_set(err, DORM_ENOMEM, "out of memory");
}

void dorm__pg_pool_submit(dorm__pg_pool *p, size_t conn, dorm__req *req) {
  req->backend_data = NULL;
  if (p->closing || conn >= p->nconns) {
    dorm__pg_pool_complete_later(
        p, req,
        dorm_result_error(p->closing ? DORM_ECLOSED : DORM_EINVAL, NULL));
    return;
  }
  p->no_direct++;
  dorm__pg_conn_submit(p->conns[conn], req);
  p->no_direct--;
}

void dorm__pg_pool_cancel(dorm__pg_pool *p, size_t conn, dorm__req *req) {
  if (p->closing || conn >= p->nconns) return;
  p->no_direct++;
  dorm__pg_conn_cancel(p->conns[conn], req);
  p->no_direct--;
}

size_t dorm__pg_pool_pick(dorm__pg_pool *p) {
  size_t best = p->rr % p->nconns, load = (size_t)-1;
  for (size_t k = 0; k < p->nconns; k++) {
    size_t i = (p->rr + k) % p->nconns;
    size_t l = dorm__pg_conn_load(p->conns[i]);
    if (l < load) {
      load = l;
      best = i;
    }
  }
  p->rr = best + 1;
  return best;
}

void dorm__pg_pool_complete_later(dorm__pg_pool *p, dorm__req *req,
                                  dorm_result res) {
  req->result = res;
  req->next = NULL;
  if (p->done_tail)
    p->done_tail->next = req;
  else
    p->done_head = req;
  p->done_tail = req;
  arm_tick(p);
}

void dorm__pg_pool_mark_dirty(dorm__pg_pool *p, dorm__pg_conn *c) {
  if (!c->dirty) {
    c->dirty = 1;
    c->dirty_next = p->dirty_head;
    p->dirty_head = c;
  }
  /* inside our own callbacks the flush happens on the way out */
  if (!p->in_cb) arm_tick(p);
}

void dorm__pg_pool_flush_dirty(dorm__pg_pool *p) {
  if (p->in_cb) return; /* the outermost callback flushes */
  p->in_cb++;
  while (p->dirty_head) {
    dorm__pg_conn *c = p->dirty_head;
    p->dirty_head = c->dirty_next;
    c->dirty_next = NULL;
    dorm__pg_conn_flush(c);
  }
  p->in_cb--;
}

static void report_ready(dorm__pg_pool *p, const char *msg) {
  if (p->ready_reported) return;
  p->ready_reported = 1;
  if (!p->on_ready) return;
  if (!msg) {
    p->on_ready(p->cb_arg, NULL);
    return;
  }
  dorm_error e;
  dorm_error_clear(&e);
  dorm_error_set(&e, DORM_ECONN, "postgresql: %s", msg);
  p->on_ready(p->cb_arg, &e);
}

void dorm__pg_pool_conn_event(dorm__pg_pool *p, dorm__pg_conn *c,
                              const char *err) {
  if (!c->is_listener) dorm__pg_node_conn_state(c->node, err == NULL);
  /* readiness is the primary's: replicas only serve reads when they can */
  if (p->closing || c->is_listener || p->ready_reported) return;
  if (c->node->index != 0) return;
  if (!err) {
    report_ready(p, NULL);
    return;
  }
  if (c->counted_fail) return;
  c->counted_fail = 1;
  if (++p->first_failures == p->nprimary) report_ready(p, err);
}

void dorm__pg_pool_job(dorm__pg_pool *p, int delta) {
  p->jobs = (size_t)((long)p->jobs + delta);
  if (p->closing && !p->jobs) arm_tick(p);
}

static void run_done_queue(dorm__pg_pool *p) {
  while (p->done_head) {
    dorm__req *r = p->done_head;
    p->done_head = r->next;
    if (!p->done_head) p->done_tail = NULL;
    r->next = NULL;
    r->done(r);
  }
}

/* Close step: once no cancel job is out, shut every connection (their
 * requests complete with DORM_ECLOSED) and free the pool. */
static void teardown(dorm__pg_pool *p) {
  p->close_step = 1;
  dorm__pg_listen_free(p);
  dorm__pg_nodes_stop(p);
  for (size_t i = 0; i < p->nconns; i++) dorm__pg_conn_destroy(p->conns[i]);
  run_done_queue(p);
  dorm_wakeup_close(p->tick);
  dorm__pg_closed_fn cb = p->on_closed;
  void *arg = p->cb_arg;
  dorm__free(p->conns);
  nodes_free(p);
  dorm__pg_config_free(&p->cfg);
  dorm__free(p);
  if (cb) cb(arg);
}

static void tick_cb(dorm_wakeup *w, void *arg) {
  dorm__pg_pool *p = arg;
  (void)w;
  p->tick_armed = 0;
  p->in_cb++;
  run_done_queue(p);
  p->in_cb--;
  dorm__pg_pool_flush_dirty(p);
  p->in_cb++;
  run_done_queue(p);
  p->in_cb--;
  if (p->closing && !p->close_step && !p->jobs) {
    p->in_cb++;
    teardown(p); /* frees p */
    return;
  }
}

void dorm__pg_pool_close(dorm__pg_pool *p) {
  if (p->closing) return;
  p->closing = 1;
  arm_tick(p);
}

/* ---- the backend table --------------------------------------------------- */

static int pg_accepts(const char *url) {
  if (is_uri(url)) return 1;
  /* a keyword string: "host=... dbname=..." */
  return strncmp(url, "sqlite:", 7) != 0 && strchr(url, '=') != NULL;
}

static void be_ready(void *arg, const dorm_error *err) {
  dorm__db_backend_ready((dorm_db *)arg, err);
}

static void be_closed(void *arg) { dorm__db_backend_closed((dorm_db *)arg); }

static int pg_open(dorm_db *db, dorm_loop *loop, const char *url,
                   const dorm_db_options *opts, void **state, dorm_error *err) {
  dorm__pg_pool *p;
  int rc =
      dorm__pg_pool_open(loop, url, opts, be_ready, be_closed, db, &p, err);
  if (rc) return rc;
  p->db = db;
  *state = p;
  return 0;
}

static size_t pg_nconns(void *state) {
  return ((dorm__pg_pool *)state)->nconns;
}

static unsigned pg_conn_flags(void *state, size_t conn) {
  dorm__pg_pool *p = state;
  if (conn >= p->nprimary) return DORM__CONN_READ | DORM__CONN_REPLICA;
  return DORM__CONN_READ | DORM__CONN_WRITE;
}

static int pg_slot_usable(void *state, size_t conn, uint64_t min_lsn) {
  return dorm__pg_slot_usable(state, conn, min_lsn);
}

static void pg_submit(void *state, size_t conn, dorm__req *req) {
  dorm__pg_pool_submit(state, conn, req);
}

static void pg_close(void *state) { dorm__pg_pool_close(state); }

static void pg_cancel(void *state, size_t conn, dorm__req *req) {
  dorm__pg_pool_cancel(state, conn, req);
}

static dorm_deferred *pg_listen(void *state, const char *channel,
                                dorm_notify_fn fn, void *arg) {
  return dorm__pg_listen(state, channel, fn, arg);
}

/* What dorm_db_conn_stats shows of a slot (dorm/observe.h). */
static void pg_conn_info(void *state, size_t conn, dorm__conn_info *out) {
  dorm__pg_pool *p = state;
  memset(out, 0, sizeof *out);
  if (conn >= p->nconns) return;
  const dorm__pg_conn *c = p->conns[conn];
  static const int states[] = {DORM_CONN_DOWN, DORM_CONN_CONNECTING,
                               DORM_CONN_READY, DORM_CONN_BACKOFF,
                               DORM_CONN_CLOSED};
  out->state = (size_t)c->state < 5 ? states[c->state] : DORM_CONN_DOWN;
  out->replica = c->node ? c->node->index : 0;
  out->pgbouncer = c->node ? c->node->cfg->pgbouncer : p->cfg.pgbouncer;
  out->statements_cached = c->cache_count;
  out->reconnects = c->reconnects;
  if (c->node && c->node->index && c->node->probed_at) {
    out->lag_known = 1;
    out->lag_ms = c->node->lag_ms;
  }
}

static dorm_deferred *pg_unlisten(void *state, const char *channel,
                                  dorm_notify_fn fn, void *arg) {
  return dorm__pg_unlisten(state, channel, fn, arg);
}

static int pg_stream_start(void *state, dorm__stream *s, dorm_error *err) {
  return dorm__pg_stream_start(state, s, err);
}

static void pg_stream_more(void *state, dorm__stream *s) {
  dorm__pg_stream_more(state, s);
}

static void pg_stream_stop(void *state, dorm__stream *s) {
  dorm__pg_stream_stop(state, s);
}

const dorm__backend dorm__pg_backend = {
    .name = "postgresql",
    .dialect = DORM_DIALECT_POSTGRES,
    .max_params = 65535,
    .begin_sql = "BEGIN",
    .accepts = pg_accepts,
    .open = pg_open,
    .nconns = pg_nconns,
    .conn_flags = pg_conn_flags,
    .submit = pg_submit,
    .close = pg_close,
    .cancel = pg_cancel,
    .slot_usable = pg_slot_usable,
    /* after the write's commit, so the position covers it */
    .lsn_sql = "SELECT pg_current_wal_lsn()::text",
    .parse_lsn = dorm__pg_parse_lsn,
    .listen = pg_listen,
    .unlisten = pg_unlisten,
    .stream_start = pg_stream_start,
    .stream_more = pg_stream_more,
    .stream_stop = pg_stream_stop,
    .conn_info = pg_conn_info,
    .copy_in = 1,
};
