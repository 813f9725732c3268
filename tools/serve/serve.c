/* SPDX-License-Identifier: MIT */
/* tools/serve/serve.c — `dorm serve`: the HTTP JSON API over every model of a
 * models file (docs/models.md), on one libuv loop (docs/serve.md).
 *
 *   dorm serve [--models FILE] [--db URL] [--host 127.0.0.1] [--port 8000]
 *              [--max-body BYTES] [--max-header BYTES] [--max-connections N]
 *              [--idle-timeout MS] [--request-timeout MS]
 *              [--shutdown-timeout MS] [--pool N] [--metrics]
 *              [--access-log text|json|off]
 *
 * The command loads the models, opens the database (connecting in the
 * background), listens, and prints "listening on http://HOST:PORT/" on
 * stderr; each answered request adds an access-log line there (text, JSON
 * lines or none: --access-log), and with --metrics GET /metrics answers
 * in the Prometheus text format (tools/serve/metrics.c).  If the
 * database cannot be reached it says so and exits 1.  SIGINT or SIGTERM
 * starts a graceful shutdown: no new connections, requests in flight are
 * answered, then the database and the loop close and the process exits 0.
 * If requests are still waiting on the database after the shutdown timeout
 * the database is closed under them (their answers fail and are dropped); a
 * second signal does that at once.
 *
 * Built into the dorm command only (tools/), on the public API: the routes
 * are tools/serve_api.c, the input parsing tools/serve_input.c, the
 * many_to_many fields tools/serve_m2m.c, the HTTP server itself is
 * libdorm's http/ (dorm/http.h).
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/serve/serve.h"

int cmd_serve(int argc, char **argv);

static const char usage_text[] =
    "usage: dorm serve [--models FILE] [--db URL] [--host 127.0.0.1] "
    "[--port 8000]\n"
    "                  [--max-body BYTES] [--max-header BYTES] "
    "[--max-connections N]\n"
    "                  [--idle-timeout MS] [--request-timeout MS] "
    "[--shutdown-timeout MS]\n"
    "                  [--pool N] [--metrics] [--access-log text|json|off]\n";

static const char about_text[] =
    "\n"
    "HTTP JSON API over the models (docs/serve.md):\n"
    "  GET    /api/<model>?<lookup>=<value>&order_by=-age,name&limit=N"
    "&offset=M&fields=id,name\n"
    "  GET    /api/<model>/count?<lookup>=<value>\n"
    "         (distinct=1: each object once, when a lookup crosses a "
    "multi-valued relation)\n"
    "  GET    /api/<model>/<pk>      PATCH /api/<model>/<pk>      "
    "DELETE /api/<model>/<pk>\n"
    "  POST   /api/<model>           GET /healthz\n"
    "  GET    /metrics               (with --metrics: Prometheus text "
    "format)\n";

static const char after_text[] =
    "\n"
    "Numbers are digits only; 0 gives a limit or --pool its default.\n"
    "\n"
    "exit status: 0 stopped by SIGINT or SIGTERM, 1 error, 2 usage error\n";

typedef struct serve_run {
  serve_state st;
  uv_loop_t uv;
  dorm_loop *loop;
  uv_signal_t sigint, sigterm;
  uv_timer_t kill_timer;
  dorm_http_options opts;
  int stopping, http_closed, db_closed, db_closing, exit_code;
  unsigned shutdown_ms;
} serve_run;

static void on_handle_closed(uv_handle_t *h) { (void)h; }

/* Both the server and the database are gone: close what is left so
 * uv_run returns. */
static void maybe_finish(serve_run *r) {
  if (!r->http_closed || !r->db_closed) return;
  uv_close((uv_handle_t *)&r->sigint, on_handle_closed);
  uv_close((uv_handle_t *)&r->sigterm, on_handle_closed);
  uv_close((uv_handle_t *)&r->kill_timer, on_handle_closed);
  dorm_loop_close(r->loop, NULL, NULL);
}

static void on_db_closed(void *arg) {
  serve_run *r = arg;
  r->db_closed = 1;
  maybe_finish(r);
}

static void close_db(serve_run *r) {
  if (r->db_closing) return;
  r->db_closing = 1;
  /* pending requests fail with DORM_ECLOSED now: their handlers answer
   * (or drop) and the server's close can finish */
  dorm_db_close(r->st.db, on_db_closed, r);
}

static void on_http_closed(void *arg) {
  serve_run *r = arg;
  r->http_closed = 1;
  fprintf(stderr, "dorm serve: stopped\n");
  close_db(r);
  maybe_finish(r);
}

static void on_kill_timer(uv_timer_t *t) {
  serve_run *r = t->data;
  fprintf(stderr,
          "dorm serve: requests still waiting on the database; "
          "closing it\n");
  close_db(r);
}

static void begin_shutdown(serve_run *r) {
  if (r->stopping) {
    close_db(r); /* second signal: stop waiting */
    return;
  }
  r->stopping = 1;
  fprintf(stderr, "dorm serve: shutting down (in-flight requests finish)\n");
  dorm_http_server_close(r->st.http, on_http_closed, r);
  uv_timer_start(&r->kill_timer, on_kill_timer, r->shutdown_ms + 1000, 0);
  uv_unref((uv_handle_t *)&r->kill_timer);
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)signum;
  begin_shutdown(s->data);
}

static dorm_result on_ready(dorm_result *res, void *arg) {
  (void)arg;
  (void)res;
  return dorm_result_none();
}

static dorm_result on_not_ready(dorm_result *res, void *arg) {
  serve_run *r = arg;
  /* a signal that came before the first answer closes the database under
   * this check: that is a clean stop, not a database that is unreachable */
  if (r->stopping && dorm_result_code(res) == DORM_ECLOSED)
    return dorm_result_none();
  fprintf(stderr, "dorm: error: database: %s\n", dorm_result_message(res));
  r->exit_code = 1;
  begin_shutdown(r);
  return dorm_result_none();
}

int cmd_serve(int argc, char **argv) {
  const char *models = "models.json", *url = NULL, *host = "127.0.0.1";
  const char *access_log = "text";
  int metrics = 0;
  unsigned long long port = 8000, pool = 0, max_body = 0, max_header = 0,
                     max_conn = 0, idle_ms = 0, request_ms = 0, shutdown_ms = 0;
  const cli_opt opts[] = {
      CLI_STR("--models", &models, "FILE",
              "the models file (default models.json)"),
      CLI_STR("--db", &url, "URL",
              "the database (default $DATABASE_URL, else\n"
              "sqlite:///db.sqlite3); reads go to\n"
              "$DATABASE_REPLICA_URLS when set (PostgreSQL\n"
              "read replicas, comma-separated URIs)"),
      CLI_STR("--host", &host, "HOST", "the address to listen on (127.0.0.1)"),
      CLI_NUM("--port", &port, "PORT", 0, 65535,
              "the port (default 8000; 0: any free port)"),
      CLI_NUM("--max-body", &max_body, "BYTES", 0, (unsigned long long)1 << 40,
              "largest request body (default 1048576;\n"
              "over it: 413)"),
      CLI_NUM("--max-header", &max_header, "BYTES", 0, 1 << 24,
              "largest request head (default 16384; over: 431)"),
      CLI_NUM("--max-connections", &max_conn, "N", 0, 1000000,
              "connections at once (default 1024; over: 503)"),
      CLI_NUM("--idle-timeout", &idle_ms, "MS", 0, 86400000,
              "close an idle connection (default 30000)"),
      CLI_NUM("--request-timeout", &request_ms, "MS", 0, 86400000,
              "time to receive a request (default 15000;\n"
              "late: 408)"),
      CLI_NUM("--shutdown-timeout", &shutdown_ms, "MS", 0, 86400000,
              "time in-flight requests get on shutdown\n"
              "(default 10000)"),
      CLI_NUM("--pool", &pool, "N", 0, 1000,
              "PostgreSQL connections (default 2 per core)"),
      CLI_FLAG("--metrics", &metrics,
               "answer GET /metrics (Prometheus text format)"),
      CLI_STR("--access-log", &access_log, "FORMAT",
              "one line per request on stderr: text\n"
              "(default), json (JSON lines) or off"),
      CLI_OPT_END};
  const cli_command cmd = {.name = "serve",
                           .usage = usage_text,
                           .about = about_text,
                           .after = after_text,
                           .opts = opts};
  int prc = cli_parse(&cmd, argc, argv);
  if (prc != CLI_GO) return prc;
  int log_mode = !strcmp(access_log, "text")   ? 1
                 : !strcmp(access_log, "json") ? DORM_HTTP_LOG_JSON
                 : !strcmp(access_log, "off")  ? 0
                                               : -1;
  if (log_mode < 0) {
    fprintf(stderr,
            "dorm: error: --access-log '%s': expected text, json or off\n",
            access_log);
    return 2;
  }
  serve_run *r = calloc(1, sizeof *r);
  if (!r) {
    fprintf(stderr, "dorm: error: out of memory\n");
    return 1;
  }
  dorm_http_options_init(&r->opts);
  r->opts.access_log = log_mode;
  r->opts.max_body = (size_t)max_body;
  r->opts.max_header = (size_t)max_header;
  r->opts.max_connections = (int)max_conn;
  r->opts.idle_timeout_ms = (unsigned)idle_ms;
  r->opts.request_timeout_ms = (unsigned)request_ms;
  r->opts.shutdown_timeout_ms = (unsigned)shutdown_ms;
  r->shutdown_ms =
      r->opts.shutdown_timeout_ms ? r->opts.shutdown_timeout_ms : 10000;

  dorm_error err;
  dorm_error_clear(&err);
  serve_state *st = &r->st;
  st->schema = dorm_schema_load_file(models, &err);
  if (!st->schema) {
    fprintf(stderr, "dorm: error: %s\n", err.message);
    free(r);
    return 1;
  }
  st->names = calloc(st->schema->nmodels + 1, sizeof *st->names);
  for (size_t i = 0; st->names && i < st->schema->nmodels; i++) {
    st->names[i] = strdup(st->schema->models[i].name);
    if (!st->names[i]) break;
    for (char *p = st->names[i]; *p; p++) *p = (char)tolower((unsigned char)*p);
  }
  int rc = 1;
  if (uv_loop_init(&r->uv) != 0) goto out_schema;
  r->loop = dorm_loop_new(&r->uv);
  st->q = st->schema->nmodels ? dorm_select(&st->schema->models[0]) : NULL;
  if (!r->loop || !st->q || !st->names) {
    fprintf(stderr, "dorm: error: out of memory or no models in %s\n", models);
    goto out_loop;
  }
  dorm_db_options dbo;
  dorm_db_options_init(&dbo);
  dbo.pool_size = (int)pool;
  /* reads to the read replicas ($DATABASE_URL too may name PostgreSQL) */
  dbo.replicas = cli_db_replicas(cli_db_url(url));
  st->db = dorm_db_open(r->loop, url, &dbo, &err);
  if (!st->db) {
    fprintf(stderr, "dorm: error: %s\n", err.message);
    goto out_loop;
  }
  if (metrics) {
    st->metrics = serve_metrics_new(st);
    if (!st->metrics) {
      fprintf(stderr, "dorm: error: --metrics: out of memory\n");
      r->http_closed = 1;
      r->exit_code = 1;
      uv_signal_init(&r->uv, &r->sigint);
      uv_signal_init(&r->uv, &r->sigterm);
      uv_timer_init(&r->uv, &r->kill_timer);
      close_db(r);
      uv_run(&r->uv, UV_RUN_DEFAULT);
      goto out_closed;
    }
    r->opts.on_complete = serve_metrics_complete;
    r->opts.on_complete_arg = st->metrics;
  }
  st->http = dorm_http_server_new(r->loop, &r->opts,
                                  metrics ? serve_metrics_handle : serve_handle,
                                  st, &err);
  if (!st->http ||
      dorm_http_server_listen(st->http, host, (int)port, &err) != 0) {
    fprintf(stderr, "dorm: error: %s\n", err.message);
    if (st->http) {
      dorm_http_server_close(st->http, NULL, NULL);
      st->http = NULL;
    }
    r->http_closed = 1;
    r->exit_code = 1;
    uv_signal_init(&r->uv, &r->sigint);
    uv_signal_init(&r->uv, &r->sigterm);
    uv_timer_init(&r->uv, &r->kill_timer);
    close_db(r);
    uv_run(&r->uv, UV_RUN_DEFAULT);
    goto out_closed;
  }
  uv_signal_init(&r->uv, &r->sigint);
  uv_signal_init(&r->uv, &r->sigterm);
  uv_timer_init(&r->uv, &r->kill_timer);
  r->sigint.data = r->sigterm.data = r->kill_timer.data = r;
  uv_signal_start(&r->sigint, on_signal, SIGINT);
  uv_signal_start(&r->sigterm, on_signal, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  dorm_deferred *ready = dorm_db_ready(st->db);
  if (ready) dorm_deferred_add_callbacks(ready, on_ready, on_not_ready, r);
  fprintf(stderr, "dorm serve: listening on http://%s:%d/ (%s, %zu models)\n",
          host, dorm_http_server_port(st->http), dorm_db_backend_name(st->db),
          st->schema->nmodels);
  uv_run(&r->uv, UV_RUN_DEFAULT);
out_closed:
  rc = r->exit_code;
  if (uv_loop_close(&r->uv) != 0) {
    /* something is still open: finish it and try again */
    uv_run(&r->uv, UV_RUN_DEFAULT);
    uv_loop_close(&r->uv);
  }
  dorm_query_free(st->q);
  serve_metrics_free(st->metrics);
  goto out_schema;
out_loop:
  dorm_query_free(st->q);
  if (r->loop) {
    dorm_loop_close(r->loop, NULL, NULL);
    uv_run(&r->uv, UV_RUN_DEFAULT);
  }
  uv_loop_close(&r->uv);
out_schema:
  if (st->names)
    for (size_t i = 0; i < st->schema->nmodels; i++) free(st->names[i]);
  free(st->names);
  dorm_schema_free(st->schema);
  free(r);
  return rc;
}
