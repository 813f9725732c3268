/* SPDX-License-Identifier: MIT */
/* tests/test_metrics.c — `dorm serve --metrics` and `--access-log json`
 * through a real socket, on SQLite and on PostgreSQL when the run has one
 * (tests/servetest.h).
 *
 * GET /metrics is parsed by the Prometheus project's own text-format
 * parser (Debian's python3-prometheus-client, run with /usr/bin/python3),
 * which refuses anything that is not the exposition format; the test then
 * checks that the counters move as requests are made, that routes are
 * templates (no raw path, pk or model name reaches a label) and that the
 * database's figures are there.
 */
#include <jansson.h>

#include "servetest.h"

/* The Prometheus parser, as a filter: the exposition on stdin, a JSON
 * object on stdout mapping 'name{k="v",...}' (labels sorted) to values;
 * exits 1 when the text does not parse, or a counter sample's name does
 * not end in _total. */
static const char parser_py[] =
    "import sys, json\n"
    "from prometheus_client.parser import text_string_to_metric_families\n"
    "out = {}\n"
    "for fam in text_string_to_metric_families(sys.stdin.read()):\n"
    "    for s in fam.samples:\n"
    "        if fam.type == 'counter' and not (s.name.endswith('_total') or\n"
    "                                          s.name.endswith('_created')):\n"
    "            sys.exit('counter sample without _total: ' + s.name)\n"
    "        lab = ','.join('%s=\"%s\"' % kv for kv in "
    "sorted(s.labels.items()))\n"
    "        out[s.name + '{' + lab + '}'] = s.value\n"
    "json.dump(out, sys.stdout)\n";

static int have_parser(void) {
  return system(
             "/usr/bin/python3 -c 'import prometheus_client' "
             ">/dev/null 2>&1") == 0;
}

/* GET /metrics on c and parse it; the samples (a JSON object, owned). */
static json_t *scrape(client *c) {
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "GET", "/metrics", NULL), 200);
  assert_non_null(strstr(r.headers, "text/plain; version=0.0.4"));
  char in[] = "/tmp/dorm-test-metrics.XXXXXX";
  int fd = mkstemp(in);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, r.body, r.body_len), (ssize_t)r.body_len);
  close(fd);
  char py[] = "/tmp/dorm-test-metrics-py.XXXXXX";
  fd = mkstemp(py);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, parser_py, sizeof parser_py - 1),
                   (ssize_t)(sizeof parser_py - 1));
  close(fd);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s < %s", py, in);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  static char buf[1 << 17];
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  buf[n] = '\0';
  int st = pclose(p);
  unlink(py);
  if (st != 0) fprintf(stderr, "the exposition did not parse:\n%s\n", r.body);
  unlink(in);
  assert_int_equal(st, 0);
  json_t *j = json_loads(buf, 0, NULL);
  assert_non_null(j);
  resp_clear(&r);
  return j;
}

static double val(const json_t *m, const char *key) {
  const json_t *v = json_object_get(m, key);
  return v ? json_number_value(v) : 0.0;
}

static int has(const json_t *m, const char *key) {
  return json_object_get(m, key) != NULL;
}

#define REQS(route, method, status)                               \
  "dorm_http_requests_total{method=\"" method "\",route=\"" route \
  "\",status=\"" status "\"}"

static void test_metrics_move(void **state) {
  if (!have_parser()) {
    printf(
        "python3-prometheus-client is not installed "
        "(tools/install-deps.sh)\n");
    skip();
  }
  start_server("--metrics", NULL);
  client *c = cli_new();
  json_t *m0 = scrape(c);
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "GET", "/api/author", NULL), 200);
  assert_int_equal(call(c, &r, "GET", "/api/author", NULL), 200);
  assert_int_equal(call(c, &r, "GET", "/api/author/count", NULL), 200);
  assert_int_equal(call(c, &r, "GET", "/api/author/987654", NULL), 404);
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"M\",\"email\":\"m@x\",\"joined\":"
                        "\"2024-01-01T00:00:00Z\"}"),
                   201);
  assert_int_equal(call(c, &r, "GET", "/api/secretmodel", NULL), 404);
  assert_int_equal(call(c, &r, "GET", "/no/such/place", NULL), 404);
  assert_int_equal(call(c, &r, "DELETE", "/metrics", NULL), 405);
  resp_clear(&r);
  json_t *m1 = scrape(c);
  /* the counters moved by what was done */
  assert_true(val(m1, REQS("/api/{model}", "GET", "200")) -
                  val(m0, REQS("/api/{model}", "GET", "200")) ==
              2);
  assert_true(val(m1, REQS("/api/{model}/count", "GET", "200")) == 1);
  assert_true(val(m1, REQS("/api/{model}/{pk}", "GET", "404")) == 1);
  assert_true(val(m1, REQS("/api/{model}", "POST", "201")) == 1);
  assert_true(val(m1, REQS("/api/{model}", "GET", "404")) == 1);
  assert_true(val(m1, REQS("other", "GET", "404")) == 1);
  assert_true(val(m1, REQS("/metrics", "DELETE", "405")) == 1);
  assert_true(val(m1, REQS("/metrics", "GET", "200")) -
                  val(m0, REQS("/metrics", "GET", "200")) ==
              1);
  /* a latency histogram per route and method (404s included) */
  assert_true(val(m1,
                  "dorm_http_request_duration_seconds_count{method="
                  "\"GET\",route=\"/api/{model}\"}") == 3);
  assert_true(val(m1,
                  "dorm_http_request_duration_seconds_bucket{le=\"+Inf\","
                  "method=\"GET\",route=\"/api/{model}\"}") == 3);
  /* the scrape itself is in flight; this connection is open */
  assert_true(val(m1, "dorm_http_requests_in_flight{}") == 1);
  assert_true(val(m1, "dorm_http_connections{}") >= 1);
  /* the database: reads and a write, no failure */
  assert_true(val(m1, "dorm_db_queries_total{kind=\"read\"}") -
                  val(m0, "dorm_db_queries_total{kind=\"read\"}") >=
              4);
  assert_true(val(m1, "dorm_db_queries_total{kind=\"write\"}") -
                  val(m0, "dorm_db_queries_total{kind=\"write\"}") ==
              1);
  assert_true(val(m1, "dorm_db_queries_succeeded_total{}") >
              val(m0, "dorm_db_queries_succeeded_total{}"));
  assert_true(val(m1, "dorm_db_queries_in_flight{}") == 0);
  assert_true(has(m1, "dorm_db_query_duration_seconds_count{kind=\"read\"}"));
  assert_true(has(m1, "dorm_db_reconnects_total{}"));
  assert_true(has(m1, "dorm_db_statements_cached{}"));
  if (strstr(g_url, "sqlite"))
    assert_true(has(m1, "dorm_db_sqlite_queue_depth{role=\"writer\"}"));
  /* bounded labels: no raw path, key, model name or value in any */
  const char *key;
  json_t *v;
  json_object_foreach(m1, key, v) {
    assert_null(strstr(key, "987654"));
    assert_null(strstr(key, "secretmodel"));
    assert_null(strstr(key, "no/such"));
    assert_null(strstr(key, "m@x"));
  }
  json_decref(m0);
  json_decref(m1);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  unlink(g_log);
}

/* Without --metrics, /metrics is an unknown route like any other. */
static void test_metrics_off(void **state) {
  start_server(NULL);
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "GET", "/metrics", NULL), 404);
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  unlink(g_log);
}

/* --access-log json: one JSON object per request; off: none. */
static void test_access_log_json(void **state) {
  start_server("--access-log", "json", NULL);
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "GET", "/api/author?name=a%22b", NULL), 200);
  assert_int_equal(call(c, &r, "GET", "/healthz", NULL), 200);
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  char *log = read_log();
  int lines = 0;
  for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] != '{') continue; /* the server's own messages */
    json_t *j = json_loads(line, 0, NULL);
    if (!j) fail_msg("not JSON: %s", line);
    assert_int_equal(jint(j, "status"), 200);
    assert_non_null(json_string_value(json_object_get(j, "path")));
    assert_true(json_is_number(json_object_get(j, "ms")));
    if (!lines)
      assert_string_equal(json_string_value(json_object_get(j, "query")),
                          "name=a%22b");
    json_decref(j);
    lines++;
  }
  assert_int_equal(lines, 2);
  free(log);
  unlink(g_log);
  start_server("--access-log", "off", NULL);
  c = cli_new();
  assert_int_equal(call(c, &r, "GET", "/healthz", NULL), 200);
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  log = read_log();
  assert_null(strstr(log, "/healthz"));
  free(log);
  unlink(g_log);
  /* a format it does not know: a usage error naming it */
  char exe[PATH_MAX], cmd[PATH_MAX + 128];
  dorm_path(exe, sizeof exe);
  snprintf(cmd, sizeof cmd,
           "%s serve --access-log xml 2>&1 | grep -q \"'xml'\"", exe);
  assert_int_equal(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s serve --access-log xml 2>/dev/null", exe);
  int st = system(cmd);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

/* $DORM_LOG reaches the server's database (the library's own hook): each
 * statement on stderr, beside the access log. */
static void test_statement_log(void **state) {
  setenv("DORM_LOG", "all", 1);
  start_server(NULL);
  unsetenv("DORM_LOG");
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "GET", "/api/author?name=zed", NULL), 200);
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  char *log = read_log();
  const char *line = strstr(log, "dorm: read ");
  if (!line) fail_msg("no statement line: %s", log);
  assert_non_null(strstr(line, "FROM \"author\""));
  assert_null(strstr(log, "'zed'")); /* the value is a parameter: unseen */
  assert_null(strstr(log, "params="));
  free(log);
  unlink(g_log);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_metrics_move),
      cmocka_unit_test(test_metrics_off),
      cmocka_unit_test(test_access_log_json),
      cmocka_unit_test(test_statement_log),
  };
  return servetest_main(tests);
}
