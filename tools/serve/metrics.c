/* SPDX-License-Identifier: MIT */
/* tools/serve/metrics.c — `dorm serve --metrics`: GET /metrics on the same
 * listener, in the Prometheus text exposition format (version 0.0.4).
 *
 * HTTP requests are counted by route template (/api/{model}/{pk}, never
 * the raw path, so the label set stays bounded whatever clients send),
 * method and status, with a latency histogram per route and method and a
 * gauge of requests in flight.  The database's side comes from
 * dorm_db_stats (dorm/observe.h) read at scrape time, plus a histogram of
 * query durations by kind fed by a query hook.  No value a client sent or
 * a row holds is ever exposed: only templates, codes and counts.
 *
 * serve_metrics_handle wraps serve_handle: it answers /metrics, and for
 * every other request notes the route template in req->data and counts it
 * in flight; serve_metrics_complete (the HTTP server's on_complete) counts
 * the answer.  Everything runs on the loop thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/serve/serve.h"

/* Bucket upper bounds, in seconds (Prometheus' defaults, plus 1 ms and
 * 2.5 ms: a local API answers in well under 5 ms). */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025,  0.05,  0.1,    0.25,  0.5,
                                 1,      2.5,   5,      10};
#define NB (sizeof buckets / sizeof buckets[0])

typedef struct histo {
  uint64_t n[NB]; /* per bucket (not cumulative: summed when written) */
  uint64_t count;
  double sum;
} histo;

static void histo_add(histo *h, double s) {
  size_t i = 0;
  while (i < NB && s > buckets[i]) i++;
  if (i < NB) h->n[i]++;
  h->count++;
  h->sum += s;
}

enum { R_LIST, R_COUNT, R_OBJECT, R_HEALTH, R_METRICS, R_OTHER, NROUTES };
static const char *const routes[NROUTES] = {
    "/api/{model}", "/api/{model}/count", "/api/{model}/{pk}",
    "/healthz",     "/metrics",           "other"};

static const char *const methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                      "PATCH", "DELETE", "OPTIONS", "other"};
#define NMETHODS (sizeof methods / sizeof methods[0])

typedef struct status_count {
  int route, method, status;
  uint64_t n;
} status_count;

struct serve_metrics {
  serve_state *st;
  dorm_hook *hook;
  uint64_t in_flight;
  status_count *counts; /* one per (route, method, status) seen */
  size_t ncounts, capcounts;
  histo http[NROUTES][NMETHODS];
  histo db[DORM_STMT_KINDS];
};

/* The route template of a path, as serve_handle routes it. */
static int route_of(const char *path) {
  if (!strcmp(path, "/healthz")) return R_HEALTH;
  if (!strcmp(path, "/metrics")) return R_METRICS;
  if (strncmp(path, "/api/", 5)) return R_OTHER;
  const char *p = path + 5;
  size_t len = strlen(p);
  if (len && p[len - 1] == '/') len--;
  const char *slash = memchr(p, '/', len);
  if (!len || slash == p) return R_OTHER;
  if (!slash) return R_LIST;
  const char *second = slash + 1;
  size_t n2 = len - (size_t)(second - p);
  if (!n2 || memchr(second, '/', n2)) return R_OTHER;
  if (n2 == 5 && !strncmp(second, "count", 5)) return R_COUNT;
  return R_OBJECT;
}

static int method_of(const char *m) {
  for (size_t i = 0; i + 1 < NMETHODS; i++)
    if (m && !strcmp(m, methods[i])) return (int)i;
  return (int)NMETHODS - 1;
}

/* ---- counting ----------------------------------------------------------- */

static void on_query_end(const dorm_query_event *ev, void *arg, void *user) {
  (void)user;
  serve_metrics *m = arg;
  if (ev->kind > 0 && ev->kind < DORM_STMT_KINDS)
    histo_add(&m->db[ev->kind], (double)(ev->queue_ns + ev->exec_ns) / 1e9);
}

serve_metrics *serve_metrics_new(serve_state *st) {
  serve_metrics *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->st = st;
  m->hook = dorm_db_add_hook(st->db, NULL, on_query_end, m, 0);
  if (!m->hook) {
    free(m);
    return NULL;
  }
  return m;
}

void serve_metrics_free(serve_metrics *m) {
  if (!m) return;
  free(m->counts);
  free(m);
}

void serve_metrics_complete(const dorm_http_request *req, int status,
                            size_t bytes, int client_gone, void *arg) {
  (void)bytes;
  (void)client_gone;
  serve_metrics *m = arg;
  /* req->data: the route, when serve_metrics_handle saw the request
   * (the server answers some itself: 400, 408, 413, 431, 503) */
  int route = R_OTHER;
  if (req->data) {
    route = (int)((const char *const *)req->data - routes);
    if (m->in_flight) m->in_flight--;
  }
  int method = method_of(req->method);
  double secs = req->start_ns ? (double)(uv_hrtime() - req->start_ns) / 1e9 : 0;
  histo_add(&m->http[route][method], secs);
  for (size_t i = 0; i < m->ncounts; i++) {
    status_count *c = &m->counts[i];
    if (c->route == route && c->method == method && c->status == status) {
      c->n++;
      return;
    }
  }
  if (m->ncounts == m->capcounts) {
    size_t cap = m->capcounts ? 2 * m->capcounts : 32;
    status_count *n = realloc(m->counts, cap * sizeof *n);
    if (!n) return; /* keep serving; this answer goes uncounted */
    m->counts = n;
    m->capcounts = cap;
  }
  m->counts[m->ncounts++] = (status_count){route, method, status, 1};
}

/* ---- writing ------------------------------------------------------------ */

typedef struct out {
  char *p;
  size_t len, cap;
  int oom;
} out;

static void put(out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
  if (o->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      o->oom = 1;
      return;
    }
    if ((size_t)n < o->cap - o->len) {
      o->len += (size_t)n;
      return;
    }
    size_t cap = (o->cap + (size_t)n + 1) * 2;
    char *q = realloc(o->p, cap);
    if (!q) {
      o->oom = 1;
      return;
    }
    o->p = q;
    o->cap = cap;
  }
}

static void family(out *o, const char *name, const char *type,
                   const char *help) {
  put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histo_put(out *o, const char *name, const char *labels,
                      const histo *h) {
  uint64_t cum = 0;
  for (size_t i = 0; i < NB; i++) {
    cum += h->n[i];
    put(o, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, buckets[i],
        (unsigned long long)cum);
  }
  put(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
      (unsigned long long)h->count);
  put(o, "%s_sum{%s} %.9f\n", name, labels, h->sum);
  put(o, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

static void write_http(out *o, serve_metrics *m) {
  family(o, "dorm_http_requests_total", "counter",
         "HTTP requests answered, by route template, method and status.");
  for (size_t i = 0; i < m->ncounts; i++) {
    const status_count *c = &m->counts[i];
    put(o,
        "dorm_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} "
        "%llu\n",
        routes[c->route], methods[c->method], c->status,
        (unsigned long long)c->n);
  }
  family(o, "dorm_http_request_duration_seconds", "histogram",
         "Time from a request's first byte to its complete answer.");
  for (int r = 0; r < NROUTES; r++)
    for (size_t k = 0; k < NMETHODS; k++) {
      if (!m->http[r][k].count) continue;
      char labels[96];
      snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\"", routes[r],
               methods[k]);
      histo_put(o, "dorm_http_request_duration_seconds", labels,
                &m->http[r][k]);
    }
  family(o, "dorm_http_requests_in_flight", "gauge",
         "HTTP requests received and not yet answered.");
  put(o, "dorm_http_requests_in_flight %llu\n",
      (unsigned long long)m->in_flight);
  family(o, "dorm_http_connections", "gauge", "HTTP connections open.");
  put(o, "dorm_http_connections %zu\n",
      m->st->http ? dorm_http_server_connections(m->st->http) : (size_t)0);
}

static void write_db(out *o, serve_metrics *m) {
  dorm_db *db = m->st->db;
  dorm_stats s;
  if (dorm_db_stats(db, &s)) return;
  family(o, "dorm_db_queries_total", "counter",
         "Database requests sent to a connection, by kind.");
  for (int k = 1; k < DORM_STMT_KINDS; k++)
    put(o, "dorm_db_queries_total{kind=\"%s\"} %llu\n", dorm_stmt_kind_name(k),
        (unsigned long long)s.by_kind[k]);
  family(o, "dorm_db_queries_succeeded_total", "counter",
         "Database requests answered without error.");
  put(o, "dorm_db_queries_succeeded_total %llu\n",
      (unsigned long long)s.succeeded);
  family(o, "dorm_db_queries_failed_total", "counter",
         "Database requests answered with an error, by dorm error code.");
  for (int c = 0; c < DORM_STATS_CODES; c++) {
    if (!s.failed_by_code[c]) continue;
    put(o, "dorm_db_queries_failed_total{code=\"%s\"} %llu\n",
        c ? dorm_err_name(-c) : "other",
        (unsigned long long)s.failed_by_code[c]);
  }
  family(o, "dorm_db_queries_cancelled_total", "counter",
         "Database requests whose caller cancelled them.");
  put(o, "dorm_db_queries_cancelled_total %llu\n",
      (unsigned long long)s.cancelled);
  family(o, "dorm_db_queries_timed_out_total", "counter",
         "Database requests whose caller's timeout expired.");
  put(o, "dorm_db_queries_timed_out_total %llu\n",
      (unsigned long long)s.timed_out);
  family(o, "dorm_db_queries_retried_total", "counter",
         "Replica reads sent once more elsewhere after losing the replica.");
  put(o, "dorm_db_queries_retried_total %llu\n", (unsigned long long)s.retried);
  family(o, "dorm_db_reads_total", "counter", "Reads by where they were sent.");
  put(o, "dorm_db_reads_total{target=\"primary\"} %llu\n",
      (unsigned long long)s.reads_primary);
  put(o, "dorm_db_reads_total{target=\"replica\"} %llu\n",
      (unsigned long long)s.reads_replica);
  family(o, "dorm_db_queries_in_flight", "gauge",
         "Database requests on a connection, not yet answered.");
  put(o, "dorm_db_queries_in_flight %zu\n", s.in_flight);
  family(o, "dorm_db_queries_queued", "gauge",
         "Database requests waiting for a writer connection.");
  put(o, "dorm_db_queries_queued %zu\n", s.queued);
  family(o, "dorm_db_query_duration_seconds", "histogram",
         "Database request time, queue wait included, by kind.");
  for (int k = 1; k < DORM_STMT_KINDS; k++) {
    if (!m->db[k].count) continue;
    char labels[48];
    snprintf(labels, sizeof labels, "kind=\"%s\"", dorm_stmt_kind_name(k));
    histo_put(o, "dorm_db_query_duration_seconds", labels, &m->db[k]);
  }
  /* connections: how many in each role and state, and their counters */
  size_t by[DORM_ROLE_SQLITE_READER + 1][DORM_CONN_CLOSED + 1];
  memset(by, 0, sizeof by);
  uint64_t reconnects = 0;
  size_t cached = 0;
  for (size_t i = 0; i < s.nconns; i++) {
    dorm_conn_stats c;
    if (dorm_db_conn_stats(db, i, &c)) continue;
    if (c.role >= 1 && c.role <= DORM_ROLE_SQLITE_READER && c.state >= 0 &&
        c.state <= DORM_CONN_CLOSED)
      by[c.role][c.state]++;
    reconnects += c.reconnects;
    cached += c.statements_cached;
  }
  family(o, "dorm_db_connections", "gauge",
         "Database connections, by role and state.");
  for (int r = 1; r <= DORM_ROLE_SQLITE_READER; r++)
    for (int k = 0; k <= DORM_CONN_CLOSED; k++)
      if (by[r][k])
        put(o, "dorm_db_connections{role=\"%s\",state=\"%s\"} %zu\n",
            dorm_conn_role_name(r), dorm_conn_state_name(k), by[r][k]);
  family(o, "dorm_db_reconnects_total", "counter",
         "Times a database connection connected again after being up.");
  put(o, "dorm_db_reconnects_total %llu\n", (unsigned long long)reconnects);
  family(o, "dorm_db_statements_cached", "gauge",
         "Prepared statements kept by the connections.");
  put(o, "dorm_db_statements_cached %zu\n", cached);
  if (s.nreplicas) {
    family(o, "dorm_db_replica_usable", "gauge",
           "1 when the replica would take a read now.");
    for (size_t n = 1; n <= s.nreplicas; n++) {
      dorm_replica_stats r;
      if (!dorm_db_replica_stats(db, n, &r))
        put(o, "dorm_db_replica_usable{replica=\"%zu\"} %d\n", n, r.usable);
    }
    family(o, "dorm_db_replica_lag_seconds", "gauge",
           "A replica's replay lag as of its last probe.");
    for (size_t n = 1; n <= s.nreplicas; n++) {
      dorm_replica_stats r;
      if (!dorm_db_replica_stats(db, n, &r) && r.lag_known)
        put(o, "dorm_db_replica_lag_seconds{replica=\"%zu\"} %.3f\n", n,
            (double)r.lag_ms / 1e3);
    }
    family(o, "dorm_db_replica_reads_total", "counter",
           "Reads sent to each replica.");
    for (size_t n = 1; n <= s.nreplicas; n++) {
      dorm_replica_stats r;
      if (!dorm_db_replica_stats(db, n, &r))
        put(o, "dorm_db_replica_reads_total{replica=\"%zu\"} %llu\n", n,
            (unsigned long long)r.reads);
    }
    family(o, "dorm_db_replica_skipped_total", "counter",
           "Times a read passed a replica over (down, lagging, behind).");
    for (size_t n = 1; n <= s.nreplicas; n++) {
      dorm_replica_stats r;
      if (!dorm_db_replica_stats(db, n, &r))
        put(o, "dorm_db_replica_skipped_total{replica=\"%zu\"} %llu\n", n,
            (unsigned long long)r.skipped);
    }
  }
  if (!strcmp(dorm_db_backend_name(db), "sqlite")) {
    family(o, "dorm_db_sqlite_queue_depth", "gauge",
           "SQLite requests queued or running, by thread role.");
    put(o, "dorm_db_sqlite_queue_depth{role=\"writer\"} %zu\n",
        s.sqlite_writer_queue);
    put(o, "dorm_db_sqlite_queue_depth{role=\"reader\"} %zu\n",
        s.sqlite_reader_queue);
  }
}

void serve_metrics_handle(dorm_http_request *req, dorm_http_response *res,
                          void *arg) {
  serve_state *st = arg;
  serve_metrics *m = st->metrics;
  int route = route_of(req->path);
  req->data = (void *)&routes[route];
  m->in_flight++;
  if (route != R_METRICS) {
    serve_handle(req, res, st);
    return;
  }
  if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
    dorm_http_response_header(res, "Allow", "GET, HEAD");
    dorm_http_respond_error(res, 405, "method not allowed (GET, HEAD)");
    return;
  }
  out o = {NULL, 0, 0, 0};
  write_http(&o, m);
  write_db(&o, m);
  if (o.oom) {
    free(o.p);
    dorm_http_respond_error(res, 500, "out of memory");
    return;
  }
  dorm_http_respond(res, 200, "text/plain; version=0.0.4; charset=utf-8", o.p,
                    o.len);
  free(o.p);
}
