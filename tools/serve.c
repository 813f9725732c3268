/* tools/serve.c — `dorm serve`: the HTTP JSON API over every model of a
 * models file (docs/models.md), on one libuv loop (docs/serve.md).
 *
 *   dorm serve [--models FILE] [--db URL] [--host 127.0.0.1] [--port 8000]
 *              [--max-body BYTES] [--max-header BYTES] [--max-connections N]
 *              [--idle-timeout MS] [--request-timeout MS]
 *              [--shutdown-timeout MS] [--pool N]
 *
 * The command loads the models, opens the database (connecting in the
 * background), listens, and prints "listening on http://HOST:PORT/" on
 * stderr; each answered request adds an access-log line there.  If the
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
#include "tools/serve.h"

int cmd_serve(int argc, char **argv);

static const char usage_text[] =
    "usage: dorm serve [--models FILE] [--db URL] [--host 127.0.0.1] "
    "[--port 8000]\n"
    "                  [--max-body BYTES] [--max-header BYTES] "
    "[--max-connections N]\n"
    "                  [--idle-timeout MS] [--request-timeout MS] "
    "[--shutdown-timeout MS]\n"
    "                  [--pool N]\n"
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
    "\n"
    "--db defaults to $DATABASE_URL, else sqlite:///db.sqlite3; --models to "
    "models.json.\n"
    "Reads go to $DATABASE_REPLICA_URLS when set (PostgreSQL read replicas, "
    "comma-separated URIs).\n"
    "Limits: --max-body 1048576 (413), --max-header 16384 (431), "
    "--max-connections 1024 (503),\n"
    "--idle-timeout 30000, --request-timeout 15000 (408), --shutdown-timeout "
    "10000.\n"
    "--pool: PostgreSQL connections (default 2 per core).\n";

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

/* Parse a positive integer option value. */
static int parse_num(const char *name, const char *v, unsigned long long max,
                     unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  /* digits only: strtoull would skip spaces and wrap a '-' */
  if (errno || *end || !isdigit((unsigned char)v[0]) || n > max) {
    fprintf(stderr, "dorm serve: %s: invalid number '%s'\n%s", name, v,
            usage_text);
    return -1;
  }
  *out = n;
  return 0;
}

int cmd_serve(int argc, char **argv) {
  const char *models = "models.json", *url = NULL, *host = "127.0.0.1";
  unsigned long long port = 8000, pool = 0;
  serve_run *r = calloc(1, sizeof *r);
  if (!r) {
    fprintf(stderr, "dorm: error: out of memory\n");
    return 1;
  }
  dorm_http_options_init(&r->opts);
  r->opts.access_log = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(usage_text, stdout);
      free(r);
      return 0;
    }
    const char *eq = strchr(a, '=');
    char name[64];
    const char *val = NULL;
    if (eq && eq - a < (long)sizeof name) {
      memcpy(name, a, (size_t)(eq - a));
      name[eq - a] = '\0';
      val = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", a);
      if (i + 1 < argc) val = argv[i + 1];
    }
    static const char *const known[] = {"--models",
                                        "--db",
                                        "--host",
                                        "--port",
                                        "--max-body",
                                        "--max-header",
                                        "--max-connections",
                                        "--idle-timeout",
                                        "--request-timeout",
                                        "--shutdown-timeout",
                                        "--pool",
                                        NULL};
    int k = -1;
    for (int j = 0; known[j]; j++)
      if (!strcmp(name, known[j])) k = j;
    if (k < 0) {
      fprintf(stderr, "dorm serve: unknown option '%s'\n%s", a, usage_text);
      free(r);
      return 2;
    }
    if (!val) {
      fprintf(stderr, "dorm serve: %s needs a value\n%s", name, usage_text);
      free(r);
      return 2;
    }
    if (!eq) i++;
    unsigned long long n = 0;
    int bad = 0;
    switch (k) {
      case 0: models = val; break;
      case 1: url = val; break;
      case 2: host = val; break;
      case 3: bad = parse_num(name, val, 65535, &port); break;
      case 4:
        bad = parse_num(name, val, (unsigned long long)1 << 40, &n);
        r->opts.max_body = (size_t)n;
        break;
      case 5:
        bad = parse_num(name, val, 1 << 24, &n);
        r->opts.max_header = (size_t)n;
        break;
      case 6:
        bad = parse_num(name, val, 1000000, &n);
        r->opts.max_connections = (int)n;
        break;
      case 7:
        bad = parse_num(name, val, 86400000, &n);
        r->opts.idle_timeout_ms = (unsigned)n;
        break;
      case 8:
        bad = parse_num(name, val, 86400000, &n);
        r->opts.request_timeout_ms = (unsigned)n;
        break;
      case 9:
        bad = parse_num(name, val, 86400000, &n);
        r->opts.shutdown_timeout_ms = (unsigned)n;
        break;
      case 10: bad = parse_num(name, val, 1000, &pool); break;
    }
    if (bad) {
      free(r);
      return 2;
    }
  }
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
  st->http = dorm_http_server_new(r->loop, &r->opts, serve_handle, st, &err);
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
