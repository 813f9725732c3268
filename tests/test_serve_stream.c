/* SPDX-License-Identifier: MIT */
/* tests/test_serve_stream.c — `dorm serve` streams large lists
 * (docs/serve.md, "Large lists"): a 100,000-row list goes out chunked as
 * its rows arrive, whole and in order; a short list keeps its
 * Content-Length; a client that stops reading pauses the stream, so the
 * server's memory stays flat (its peak RSS barely moves while 100,000
 * rows go through); a client that disconnects mid-list cancels the query
 * (on PostgreSQL the stream's session is gone from pg_stat_activity) and
 * the server serves on.
 *
 * On SQLite, and on PostgreSQL when the run has one (tests/servetest.h).
 */
#include <libpq-fe.h>

#include "servetest.h"

enum { NROWS = 100000 };

static int is_pg(void) { return strncmp(g_url, "sqlite:", 7) != 0; }

static void fill(void) {
  static const char *const sqlite_sql[] = {
      "DROP TABLE IF EXISTS srow",
      "CREATE TABLE srow (id integer PRIMARY KEY, n integer NOT NULL, "
      "label varchar(40) NOT NULL)",
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE "
      "x < 100000) INSERT INTO srow (id, n, label) SELECT x, x, 'row ' || x "
      "FROM c"};
  static const char *const pg_sql[] = {
      "DROP TABLE IF EXISTS srow",
      "CREATE TABLE srow (id integer PRIMARY KEY, n integer NOT NULL, "
      "label varchar(40) NOT NULL)",
      "INSERT INTO srow (id, n, label) SELECT x, x, 'row ' || x FROM "
      "generate_series(1, 100000) x"};
  setup_db(g_url, is_pg() ? pg_sql : sqlite_sql, 3, 0);
}

/* The server's peak resident set so far, in KiB (VmHWM). */
static long server_hwm_kb(void) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", (int)g_pid);
  char *t = dorm_test_read_file(path);
  assert_non_null(t);
  const char *p = strstr(t, "VmHWM:");
  long kb = p ? atol(p + 6) : -1;
  free(t);
  return kb;
}

/* Read one chunked answer's head and body into a new buffer (*len its
 * length); NULL when the connection ended before the last chunk.  Reads
 * slowly when pause_ms: the head, then nothing for pause_ms. */
static char *read_chunked(client *c, char *head, size_t headcap, size_t *len,
                          int pause_ms) {
  char *end;
  while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
    if (!cli_fill(c)) return NULL;
  size_t hlen = (size_t)(end - c->buf) + 4;
  snprintf(head, headcap, "%.*s", (int)hlen, c->buf);
  cli_consume(c, hlen);
  if (pause_ms) sleep_ms(pause_ms);
  size_t cap = 1 << 20, n = 0;
  char *body = malloc(cap);
  for (;;) {
    char *eol;
    while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
      if (!cli_fill(c)) goto cut;
    size_t sz = strtoul(c->buf, NULL, 16);
    size_t line = (size_t)(eol - c->buf) + 2;
    while (c->len < line + sz + 2)
      if (!cli_fill(c)) goto cut;
    if (n + sz + 1 > cap) {
      while (n + sz + 1 > cap) cap *= 2;
      body = realloc(body, cap);
    }
    memcpy(body + n, c->buf + line, sz);
    n += sz;
    cli_consume(c, line + sz + 2);
    if (!sz) break;
  }
  body[n] = '\0';
  *len = n;
  return body;
cut:
  fprintf(stderr, "cut: errno %d after %zu body bytes, kept %zu: '%.40s'\n",
          errno, n, c->len, c->buf);
  free(body);
  return NULL;
}

/* A client whose receive buffer is small from the start (set before
 * connect, so the window it advertises is small): a slow reader. */
static client *cli_new_small(void) {
  client *c = calloc(1, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)g_port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
  struct timeval tv = {20, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return c;
}

static void send_get(client *c, const char *path) {
  char req[512];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
  cli_send(c, req, (size_t)n);
}

/* Every row, in order, none twice. */
static void check_rows(const char *body, size_t len) {
  json_error_t je;
  json_t *j = json_loadb(body, len, 0, &je);
  if (!j) fail_msg("not JSON: %s", je.text);
  json_t *res = json_object_get(j, "results");
  assert_int_equal(json_array_size(res), NROWS);
  for (size_t i = 0; i < NROWS; i++) {
    json_t *o = json_array_get(res, i);
    assert_int_equal(jint(o, "n"), (json_int_t)i + 1);
  }
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(res, 41), "label")),
      "row 42");
  json_decref(j);
}

static void test_large_list_streams(void **state) {
  fill();
  g_models = "tests/data/serve_stream_models.json";
  start_server(NULL);
  client *c = cli_new();
  /* a short list: answered whole, with its Content-Length, as ever */
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "GET", "/api/srow?order_by=n&limit=10", NULL),
                   200);
  assert_int_equal(nresults(&r), 10);
  assert_non_null(strcasestr(r.headers, "content-length:"));
  assert_int_equal(call(c, &r, "GET", "/api/srow?n__gt=99990", NULL), 200);
  assert_int_equal(nresults(&r), 10);
  assert_int_equal(call(c, &r, "GET", "/api/srow?n__lt=0", NULL), 200);
  assert_int_equal(nresults(&r), 0);
  /* an error before the first row is still a plain error answer */
  assert_int_equal(call(c, &r, "GET", "/api/srow?n=abc", NULL), 400);
  resp_clear(&r);

  /* 100,000 rows: chunked, whole, in order; the same connection goes on */
  send_get(c, "/api/srow?order_by=n&limit=100000");
  char head[4096];
  size_t len = 0;
  char *body = read_chunked(c, head, sizeof head, &len, 0);
  assert_non_null(body);
  assert_non_null(strstr(head, "HTTP/1.1 200"));
  assert_non_null(strcasestr(head, "transfer-encoding: chunked"));
  check_rows(body, len);
  free(body);
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "GET", "/api/srow/count", NULL), 200);
  assert_int_equal(jint(r.json, "count"), NROWS);
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
}

/* A client that reads nothing for a second: the stream waits for it
 * (back-pressure), so the whole list never sits in the server's memory:
 * its peak RSS grows by far less than the list's size (about 4 MB of
 * JSON; read whole, the rows and their JSON would take several times
 * that). */
static void test_slow_reader(void **state) {
  fill();
  g_models = "tests/data/serve_stream_models.json";
  start_server(NULL);
  client *c = cli_new_small();
  /* warm up: a streamed list of 2,000 rows */
  send_get(c, "/api/srow?order_by=n&limit=2000");
  char head[4096];
  size_t len = 0;
  char *body = read_chunked(c, head, sizeof head, &len, 0);
  assert_non_null(body);
  free(body);
  long before = server_hwm_kb();
  send_get(c, "/api/srow?order_by=n");
  body = read_chunked(c, head, sizeof head, &len, 1000);
  if (!body) {
    char *log = read_log();
    fail_msg("cut short (%zu bytes kept); server log:\n%s", c->len, log);
  }
  check_rows(body, len);
  free(body);
  long grown = server_hwm_kb() - before;
  fprintf(stderr, "server peak RSS grew by %ld KiB over the list\n", grown);
  assert_true(grown < 3 * 1024);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
}

/* Sessions of the stream's cursor on the server, from another session:
 * 0 once the stream is gone (asked for up to 3 s). */
static int pg_stream_sessions(void) {
  PGconn *pg = PQconnectdb(dorm_test_pg_conninfo());
  assert_int_equal(PQstatus(pg), CONNECTION_OK);
  int n = -1;
  for (int i = 0; i < 300; i++) {
    PGresult *res = PQexec(
        pg,
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
        "AND (query LIKE 'FETCH FORWARD % FROM dorm_stream' OR query LIKE "
        "'DECLARE dorm_stream %')");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    n = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (n == 0) break;
    sleep_ms(10);
  }
  PQfinish(pg);
  return n;
}

/* A client that goes away mid-list: the query is cancelled, and the
 * server serves on. */
static void test_disconnect_cancels(void **state) {
  fill();
  g_models = "tests/data/serve_stream_models.json";
  start_server(NULL);
  for (int round = 0; round < 3; round++) {
    client *c = cli_new_small();
    send_get(c, "/api/srow?order_by=n");
    while (!memmem(c->buf, c->len, "\r\n\r\n", 4))
      if (!cli_fill(c)) fail_msg("no answer");
    if (is_pg() && round == 0) {
      sleep_ms(200); /* the stream is paused on the slow client */
      PGconn *pg = PQconnectdb(dorm_test_pg_conninfo());
      PGresult *res = PQexec(pg,
                             "SELECT count(*) FROM pg_stat_activity WHERE "
                             "query LIKE 'FETCH FORWARD % FROM dorm_stream'");
      assert_int_equal(atoi(PQgetvalue(res, 0, 0)), 1);
      PQclear(res);
      PQfinish(pg);
    }
    struct linger lg = {1, 0}; /* reset */
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cli_free(c);
  }
  if (is_pg()) assert_int_equal(pg_stream_sessions(), 0);
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "GET", "/api/srow/count", NULL), 200);
  assert_int_equal(jint(r.json, "count"), NROWS);
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  char *log = read_log();
  assert_null(strstr(log, "failed after"));
  free(log);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_large_list_streams),
      cmocka_unit_test(test_slow_reader),
      cmocka_unit_test(test_disconnect_cancels),
  };
  return servetest_main(tests);
}
