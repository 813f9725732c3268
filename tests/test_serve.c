/* SPDX-License-Identifier: MIT */
/* tests/test_serve.c — `dorm serve` through a real socket, on SQLite and on
 * PostgreSQL (the suite's DORM_TEST_PG, in a schema of its own).
 *
 * Each group creates the tables of tests/data/contract_models.json (and of
 * serve_m2m_models.json, for the many_to_many fields, and
 * serve_tasks_models.json, for choices and distinct) with the DDL compiler
 * (in-process, through libdorm), starts the dorm binary built beside this test
 * (build/dorm, or build-san/dorm for the sanitizer build, so the server itself
 * runs sanitized) on a free port, and talks HTTP to it: every route and every
 * error status, the refused names of the query layer sent as lookup keys,
 * order_by and fields values (400, table intact), a client that disconnects
 * mid-request, the access log, and a SIGTERM with requests in flight (they are
 * answered; exit status 0 — under ASan, which also means no leak at exit).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dorm.h"
#include "support/support.h"

#define MODELS "tests/data/contract_models.json"
/* Tag, Label (a text key) and Post with two many_to_many fields */
#define M2M_MODELS "tests/data/serve_m2m_models.json"
/* Person, Project (members: many_to_many) and Task (a foreign key to
 * Project, choices) */
#define TASK_MODELS "tests/data/serve_tasks_models.json"
/* Item, with decimal fields */
#define EXACT_MODELS "tests/data/serve_exact_models.json"
#define PG_SCHEMA "dorm_serve_test"

static char g_url[PATH_MAX + 1024];
static char g_log[PATH_MAX];
static char g_dbfile[PATH_MAX];
static pid_t g_pid;
static int g_port;
static const char *g_models = MODELS; /* what the server serves */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- database set-up, in-process ------------------------------------------
 */

typedef struct waiter {
  int done;
  int code;
} waiter;

static dorm_result wait_ok(dorm_result *r, void *arg) {
  ((waiter *)arg)->done = 1;
  return dorm_result_none();
}
static dorm_result wait_err(dorm_result *r, void *arg) {
  waiter *w = arg;
  w->done = 1;
  w->code = dorm_result_code(r);
  fprintf(stderr, "setup: %s\n", dorm_result_message(r));
  return dorm_result_none();
}

static void run_until(uv_loop_t *uv, dorm_deferred *d) {
  assert_non_null(d);
  waiter w = {0, 0};
  assert_int_equal(dorm_deferred_add_callbacks(d, wait_ok, wait_err, &w), 0);
  while (!w.done) uv_run(uv, UV_RUN_ONCE);
  assert_int_equal(w.code, 0);
}

static void set_flag(void *arg) { *(int *)arg = 1; }

/* Run sql statements on url, then (when models) create every table. */
static void setup_db(const char *url, const char *const *sql, size_t nsql,
                     int create_tables) {
  uv_loop_t uv;
  assert_int_equal(uv_loop_init(&uv), 0);
  dorm_loop *loop = dorm_loop_new(&uv);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_db *db = dorm_db_open(loop, url, NULL, &err);
  if (!db) fail_msg("open %s: %s", url, err.message);
  if (nsql) run_until(&uv, dorm_async_execute_many(db, sql, nsql));
  static const char *const files[] = {MODELS, M2M_MODELS, TASK_MODELS,
                                      EXACT_MODELS};
  for (int fi = 0; create_tables && fi < 4; fi++) {
    dorm_schema *s = dorm_schema_load_file(files[fi], &err);
    assert_non_null(s);
    for (size_t i = 0; i < s->nmodels; i++) {
      dorm_ddl ddl;
      dorm_ddl_init(&ddl);
      assert_int_equal(dorm_ddl_create_model(&s->models[i], NULL, 0,
                                             dorm_db_dialect(db), &ddl, &err),
                       0);
      run_until(&uv, dorm_async_execute_many(db, (const char *const *)ddl.stmts,
                                             ddl.n));
      dorm_ddl_free(&ddl);
    }
    dorm_schema_free(s);
  }
  int closed = 0;
  dorm_db_close(db, set_flag, &closed);
  while (!closed) uv_run(&uv, UV_RUN_ONCE); /* the db first, then the loop */
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&uv), 0);
}

/* ---- the server process
 * ------------------------------------------------------ */

/* build/dorm beside build/tests/test_serve. */
static void dorm_path(char *out, size_t cap) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  assert_true(n > 0);
  self[n] = '\0';
  char *dir = dirname(dirname(self));
  snprintf(out, cap, "%s/dorm", dir);
}

static char *read_log(void) {
  char *t = dorm_test_read_file(g_log);
  return t ? t : strdup("");
}

/* Start `dorm serve` with extra options (NULL-terminated). */
static void start_server(const char *extra, ...) {
  if (g_pid > 0) { /* left over from a failed test */
    kill(g_pid, SIGKILL);
    waitpid(g_pid, NULL, 0);
    g_pid = 0;
  }
  char exe[PATH_MAX];
  dorm_path(exe, sizeof exe);
  snprintf(g_log, sizeof g_log, "/tmp/dorm-serve-log.XXXXXX");
  int fd = mkstemp(g_log);
  assert_true(fd >= 0);
  const char *argv[32] = {exe,    "serve", "--models", g_models,
                          "--db", g_url,   "--port",   "0"};
  int argc = 8;
  va_list ap;
  va_start(ap, extra);
  for (const char *a = extra; a && argc < 30; a = va_arg(ap, const char *))
    argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  g_pid = fork();
  assert_true(g_pid >= 0);
  if (g_pid == 0) {
    dup2(fd, 2);
    int nul = open("/dev/null", O_RDWR);
    dup2(nul, 0);
    dup2(nul, 1);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  close(fd);
  g_port = 0;
  for (int i = 0; i < 1000 && !g_port; i++) {
    char *log = read_log();
    const char *p = strstr(log, "listening on http://127.0.0.1:");
    if (p) g_port = atoi(p + strlen("listening on http://127.0.0.1:"));
    free(log);
    if (!g_port) {
      int st;
      if (waitpid(g_pid, &st, WNOHANG) == g_pid) {
        static char l[4096];
        char *t = read_log();
        snprintf(l, sizeof l, "%s", t);
        free(t);
        fail_msg("dorm serve exited: %s", l);
      }
      sleep_ms(10);
    }
  }
  assert_true(g_port > 0);
}

/* SIGTERM and wait: returns the exit status. */
static int stop_server(void) {
  kill(g_pid, SIGTERM);
  int st = 0;
  assert_int_equal(waitpid(g_pid, &st, 0), g_pid);
  g_pid = 0;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    char *l = read_log();
    fprintf(stderr, "--- server log ---\n%s\n", l);
    free(l);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- a small HTTP client
 * ------------------------------------------------------- */

typedef struct client {
  int fd;
  char buf[1 << 17];
  size_t len;
  int head; /* the answer being read is to a HEAD: no body follows */
} client;

typedef struct response {
  int status;
  char headers[4096];
  char body[1 << 16];
  size_t body_len;
  json_t *json;
} response;

static client *cli_new(void) {
  client *c = calloc(1, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
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

static void cli_free(client *c) {
  close(c->fd);
  free(c);
}

static void cli_send(client *c, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static int cli_fill(client *c) {
  ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
  if (r <= 0) return 0;
  c->len += (size_t)r;
  return 1;
}

static void cli_consume(client *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

static void resp_clear(response *r) {
  if (r->json) json_decref(r->json);
  r->json = NULL;
}

/* One response with a Content-Length (every answer of dorm serve has
 * one); 0 when the connection closed first. */
static int cli_read(client *c, response *r) {
  resp_clear(r);
  memset(r, 0, sizeof *r);
  char *end;
  while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
    if (!cli_fill(c)) return 0;
  size_t hlen = (size_t)(end - c->buf) + 4;
  memcpy(r->headers, c->buf, hlen);
  r->headers[hlen] = '\0';
  cli_consume(c, hlen);
  assert_int_equal(sscanf(r->headers, "HTTP/1.1 %d", &r->status), 1);
  const char *cl = strcasestr(r->headers, "\r\ncontent-length:");
  size_t n = cl && !c->head ? (size_t)atol(cl + 17) : 0;
  while (c->len < n)
    if (!cli_fill(c)) fail_msg("short body");
  memcpy(r->body, c->buf, n);
  r->body[n] = '\0';
  r->body_len = n;
  cli_consume(c, n);
  if (n) r->json = json_loads(r->body, 0, NULL);
  return 1;
}

/* Send one request on c and read its answer into r; returns the status.
 * Checks the rules every answer obeys: JSON error bodies that carry no
 * SQL and no database message. */
static int call(client *c, response *r, const char *method, const char *path,
                const char *body) {
  char head[8192];
  int n = snprintf(head, sizeof head,
                   "%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n"
                   "Content-Type: application/json\r\n\r\n",
                   method, path, body ? strlen(body) : 0);
  cli_send(c, head, (size_t)n);
  if (body) cli_send(c, body, strlen(body));
  c->head = !strcmp(method, "HEAD");
  int got = cli_read(c, r);
  c->head = 0;
  if (!got) fail_msg("%s %s: connection closed", method, path);
  if (r->status >= 400 && strcmp(method, "HEAD")) {
    if (!r->json || !json_is_string(json_object_get(r->json, "error")))
      fail_msg("%s %s: %d without a JSON error: %s", method, path, r->status,
               r->body);
    /* SQL as dorm writes it (upper case; the user's own input echoed in
     * a message may contain anything), and the databases' phrases */
    static const char *const sql[] = {"SELECT ",     "INSERT INTO", "UPDATE \"",
                                      "DELETE FROM", " WHERE ",     NULL};
    for (int i = 0; sql[i]; i++)
      if (strstr(r->body, sql[i]))
        fail_msg("%s %s: answer leaks '%s': %s", method, path, sql[i], r->body);
    static const char *const leaks[] = {
        "constraint failed", "duplicate key", "violates", "SQLSTATE", "sqlite",
        "syntax error",      "relation \"",   NULL};
    for (int i = 0; leaks[i]; i++)
      if (strcasestr(r->body, leaks[i]))
        fail_msg("%s %s: answer leaks '%s': %s", method, path, leaks[i],
                 r->body);
  }
  return r->status;
}

static const char *err_text(const response *r) {
  return json_string_value(json_object_get(r->json, "error"));
}

static json_int_t jint(const json_t *o, const char *k) {
  return json_integer_value(json_object_get(o, k));
}

static size_t nresults(const response *r) {
  return json_array_size(json_object_get(r->json, "results"));
}

/* ---- groups: one per database
 * ------------------------------------------------ */

static int setup_sqlite(void **state) {
  dorm_test_sqlite_temp("dorm-serve-db", g_dbfile, sizeof g_dbfile, g_url,
                        sizeof g_url);
  setup_db(g_url, NULL, 0, 1);
  return 0;
}

static int teardown_sqlite(void **state) {
  (void)state;
  dorm_test_sqlite_remove(g_dbfile);
  return 0;
}

static int setup_pg(void **state) {
  const char *pg = dorm_test_pg_conninfo();
  if (!pg) {
    fprintf(stderr, "DORM_TEST_PG is not set (run tests/run.sh)\n");
    return -1;
  }
  static const char *const reset[] = {"DROP SCHEMA IF EXISTS " PG_SCHEMA
                                      " CASCADE",
                                      "CREATE SCHEMA " PG_SCHEMA};
  setup_db(pg, reset, 2, 0);
  snprintf(g_url, sizeof g_url, "%s options=-csearch_path=%s", pg, PG_SCHEMA);
  setup_db(g_url, NULL, 0, 1);
  return 0;
}

static int teardown_pg(void **state) {
  if (!dorm_test_pg_conninfo()) return 0;
  static const char *const drop[] = {"DROP SCHEMA IF EXISTS " PG_SCHEMA
                                     " CASCADE"};
  setup_db(dorm_test_pg_conninfo(), drop, 1, 0);
  return 0;
}

/* ---- tests
 * ---------------------------------------------------------------------- */

static void test_routes(void **state) {
  start_server(NULL);
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "GET", "/healthz", NULL), 200);
  assert_string_equal(r.body, "{\"ok\":true}");

  /* POST: 201 with the key and defaults */
  assert_int_equal(
      call(c, &r, "POST", "/api/author",
           "{\"name\":\"Ann\",\"email\":\"ann@example.org\",\"age\":30,"
           "\"joined\":\"2024-05-01T10:00:00Z\"}"),
      201);
  json_int_t ann = jint(r.json, "id");
  assert_true(ann > 0);
  assert_string_equal(json_string_value(json_object_get(r.json, "bio")), "");
  assert_string_equal(json_string_value(json_object_get(r.json, "joined")),
                      "2024-05-01T10:00:00Z");
  assert_int_equal(
      call(c, &r, "POST", "/api/author",
           "{\"name\":\"Bob\",\"email\":\"bob@example.org\",\"age\":null,"
           "\"bio\":\"b\",\"joined\":\"2023-01-02 03:04:05\"}"),
      201);
  json_int_t bob = jint(r.json, "id");
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"Cy\",\"email\":\"cy@example.org\",\"age\":"
                        "17,\"joined\":\"2024-07-01T00:00:00Z\"}"),
                   201);
  char body[256], path[256];
  /* a foreign key as "author" and as "author_id" */
  snprintf(body, sizeof body,
           "{\"author\":%lld,\"headline\":\"First\",\"tags\":[\"a\",1]}",
           (long long)ann);
  assert_int_equal(call(c, &r, "POST", "/api/entry", body), 201);
  assert_int_equal(jint(r.json, "author"), ann);
  assert_true(json_is_array(json_object_get(r.json, "tags")));
  json_int_t entry = jint(r.json, "id");
  snprintf(body, sizeof body,
           "{\"author_id\":%lld,\"headline\":\"Second\",\"rating\":4.5}",
           (long long)bob);
  assert_int_equal(call(c, &r, "POST", "/api/entry", body), 201);
  assert_int_equal(jint(r.json, "author"), bob);

  /* GET lists: lookups parsed by type, ordering, slicing, fields */
  assert_int_equal(call(c, &r, "GET", "/api/author", NULL), 200);
  assert_int_equal(nresults(&r), 3);
  /* default ordering -joined: Cy, Ann, Bob */
  json_t *res = json_object_get(r.json, "results");
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(res, 0), "name")), "Cy");
  assert_int_equal(call(c, &r, "GET", "/api/author?age__gte=18", NULL), 200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(call(c, &r, "GET", "/api/author?name__icontains=AN", NULL),
                   200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(call(c, &r, "GET", "/api/author?age__isnull=true", NULL),
                   200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(call(c, &r, "GET", "/api/author?age__isnull=0", NULL), 200);
  assert_int_equal(nresults(&r), 2);
  assert_int_equal(
      call(c, &r, "GET", "/api/author?email__in=ann@example.org,cy@example.org",
           NULL),
      200);
  assert_int_equal(nresults(&r), 2);
  assert_int_equal(call(c, &r, "GET", "/api/author?joined__year=2024", NULL),
                   200);
  assert_int_equal(nresults(&r), 2);
  assert_int_equal(
      call(c, &r, "GET", "/api/author?joined__gte=2024-06-01T00:00:00Z", NULL),
      200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(call(c, &r, "GET", "/api/author?age__range=10,20", NULL),
                   200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(call(c, &r, "GET", "/api/entry?author__name=Ann", NULL),
                   200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(call(c, &r, "GET", "/api/entry?rating__gt=1.5", NULL), 200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(
      call(c, &r, "GET", "/api/author?entries__headline=Second", NULL), 200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(
      call(c, &r, "GET", "/api/author?order_by=-age,name&fields=id,name,age",
           NULL),
      200);
  res = json_object_get(r.json, "results");
  assert_int_equal(json_array_size(res), 3);
  assert_int_equal(json_object_size(json_array_get(res, 0)), 3);
  assert_null(json_object_get(json_array_get(res, 0), "email"));
  assert_int_equal(
      call(c, &r, "GET", "/api/author?order_by=name&limit=1&offset=1", NULL),
      200);
  assert_int_equal(nresults(&r), 1);
  assert_string_equal(
      json_string_value(json_object_get(
          json_array_get(json_object_get(r.json, "results"), 0), "name")),
      "Bob");
  assert_int_equal(call(c, &r, "GET", "/api/author?limit=0", NULL), 200);
  assert_int_equal(nresults(&r), 0);

  /* count */
  assert_int_equal(call(c, &r, "GET", "/api/author/count", NULL), 200);
  assert_int_equal(jint(r.json, "count"), 3);
  assert_int_equal(call(c, &r, "GET", "/api/author/count?age__lt=20", NULL),
                   200);
  assert_int_equal(jint(r.json, "count"), 1);

  /* one object */
  snprintf(path, sizeof path, "/api/author/%lld", (long long)ann);
  assert_int_equal(call(c, &r, "GET", path, NULL), 200);
  assert_string_equal(json_string_value(json_object_get(r.json, "name")),
                      "Ann");
  assert_int_equal(call(c, &r, "GET", "/api/author/999999", NULL), 404);
  assert_int_equal(call(c, &r, "GET", "/api/author/abc", NULL), 404);
  assert_int_equal(call(c, &r, "GET", "/api/author/", NULL), 200); /* list */

  /* PATCH */
  assert_int_equal(call(c, &r, "PATCH", path, "{\"age\":31,\"bio\":\"x\"}"),
                   200);
  assert_int_equal(jint(r.json, "age"), 31);
  assert_string_equal(json_string_value(json_object_get(r.json, "bio")), "x");
  assert_int_equal(call(c, &r, "PATCH", path, "{}"), 200);
  assert_int_equal(jint(r.json, "age"), 31);
  assert_int_equal(call(c, &r, "PATCH", "/api/author/999999", "{\"age\":1}"),
                   404);
  snprintf(body, sizeof body, "{\"author\":%lld}", (long long)bob);
  snprintf(path, sizeof path, "/api/entry/%lld", (long long)entry);
  assert_int_equal(call(c, &r, "PATCH", path, body), 200);
  assert_int_equal(jint(r.json, "author"), bob);

  /* DELETE */
  assert_int_equal(call(c, &r, "DELETE", path, NULL), 204);
  assert_int_equal(r.body_len, 0);
  assert_int_equal(call(c, &r, "DELETE", path, NULL), 404);
  assert_int_equal(call(c, &r, "GET", path, NULL), 404);

  /* HEAD: GET's status and Content-Length, no body bytes (the next answer
   * on the connection starts right after the head) */
  assert_int_equal(call(c, &r, "GET", "/api/author?order_by=id", NULL), 200);
  size_t list_len = r.body_len;
  assert_int_equal(call(c, &r, "HEAD", "/api/author?order_by=id", NULL), 200);
  assert_int_equal(r.body_len, 0);
  char want[64];
  snprintf(want, sizeof want, "Content-Length: %zu\r\n", list_len);
  assert_non_null(strcasestr(r.headers, want));
  assert_int_equal(call(c, &r, "HEAD", "/api/author/count", NULL), 200);
  assert_int_equal(call(c, &r, "HEAD", path, NULL), 404);
  assert_int_equal(call(c, &r, "HEAD", "/healthz", NULL), 200);
  assert_int_equal(call(c, &r, "GET", "/healthz", NULL), 200);
  assert_true(json_is_true(json_object_get(r.json, "ok")));

  /* 404 and 405 */
  assert_int_equal(call(c, &r, "GET", "/api/nomodel", NULL), 404);
  assert_non_null(strstr(err_text(&r), "nomodel"));
  assert_int_equal(call(c, &r, "GET", "/nothing", NULL), 404);
  assert_int_equal(call(c, &r, "GET", "/api/author/1/extra", NULL), 404);
  assert_int_equal(call(c, &r, "PUT", "/api/author/1", "{}"), 405);
  assert_non_null(strstr(r.headers, "Allow: GET, HEAD, PATCH, DELETE"));
  assert_int_equal(call(c, &r, "DELETE", "/api/author", NULL), 405);
  assert_int_equal(call(c, &r, "POST", "/api/author/count", "{}"), 405);
  assert_int_equal(call(c, &r, "POST", "/healthz", "{}"), 405);

  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  /* one access-log line per request */
  char *log = read_log();
  int ok = strstr(log, "\"GET /healthz HTTP/1.1\" 200 ") &&
           strstr(log, "\"POST /api/author HTTP/1.1\" 201 ") &&
           strstr(log, "\"PUT /api/author/1 HTTP/1.1\" 405 ") &&
           strstr(log, "dorm serve: stopped");
  free(log);
  assert_true(ok);
  unlink(g_log);
}

static void test_errors(void **state) {
  start_server("--max-body", "2048", "--max-header", "4096", NULL);
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"Dee\",\"email\":\"dee@example.org\","
                        "\"joined\":\"2024-01-01T00:00:00Z\"}"),
                   201);
  json_int_t dee = jint(r.json, "id");
  /* bodies */
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"E\",\"email\":\"e@x.org\",\"joined\":"
                        "\"2024-01-01\",\"nickname\":\"e\"}"),
                   400);
  assert_non_null(strstr(err_text(&r), "'nickname'"));
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"E\",\"email\":\"e@x.org\",\"joined\":"
                        "\"2024-01-01\",\"age\":\"ten\"}"),
                   400);
  assert_non_null(strstr(err_text(&r), "'age'"));
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"E\",\"joined\":\"2024-01-01\"}"),
                   400);
  assert_non_null(strstr(err_text(&r), "'email'"));
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":null,\"email\":\"e@x.org\",\"joined\":"
                        "\"2024-01-01\"}"),
                   400);
  assert_non_null(strstr(err_text(&r), "'name'"));
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"E\",\"email\":\"e@x.org\",\"joined\":"
                        "\"yesterday\"}"),
                   400);
  assert_non_null(strstr(err_text(&r), "joined"));
  char longname[300] = "{\"name\":\"";
  memset(longname + 9, 'n', 101);
  strcpy(longname + 110, "\",\"email\":\"l@x.org\",\"joined\":\"2024-01-01\"}");
  assert_int_equal(call(c, &r, "POST", "/api/author", longname), 400);
  assert_non_null(strstr(err_text(&r), "name"));
  assert_int_equal(call(c, &r, "POST", "/api/author", "{\"name\": "), 400);
  assert_non_null(strstr(err_text(&r), "malformed JSON"));
  assert_int_equal(call(c, &r, "POST", "/api/author", "[1,2]"), 400);
  assert_int_equal(call(c, &r, "POST", "/api/author", ""), 400);
  assert_int_equal(call(c, &r, "POST", "/api/entry",
                        "{\"author\":1,\"author_id\":1,\"headline\":\"h\"}"),
                   400);
  assert_int_equal(call(c, &r, "POST", "/api/entry",
                        "{\"author\":\"one\",\"headline\":\"h\"}"),
                   400);
  assert_non_null(strstr(err_text(&r), "'author'"));
  char path[64];
  snprintf(path, sizeof path, "/api/author/%lld", (long long)dee);
  assert_int_equal(call(c, &r, "PATCH", path, "{\"id\":5}"), 400);
  assert_int_equal(call(c, &r, "PATCH", path, "{\"age\":true}"), 400);
  assert_int_equal(call(c, &r, "PATCH", path, "{\"age\":99999999999}"), 400);
  /* 409: unique, unique_together, foreign key */
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"Dee2\",\"email\":\"dee@example.org\","
                        "\"joined\":\"2024-01-01\"}"),
                   409);
  assert_int_equal(call(c, &r, "POST", "/api/entry",
                        "{\"author\":424242,\"headline\":\"h\"}"),
                   409);
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"Eve\",\"email\":\"eve@example.org\","
                        "\"joined\":\"2024-01-01\"}"),
                   201);
  json_int_t eve = jint(r.json, "id");
  snprintf(path, sizeof path, "/api/author/%lld", (long long)eve);
  assert_int_equal(
      call(c, &r, "PATCH", path, "{\"email\":\"dee@example.org\"}"), 409);
  /* query strings */
  assert_int_equal(call(c, &r, "GET", "/api/author?agee=1", NULL), 400);
  assert_non_null(strstr(err_text(&r), "agee"));
  assert_int_equal(call(c, &r, "GET", "/api/author?age__foo=1", NULL), 400);
  assert_int_equal(call(c, &r, "GET", "/api/author?age=abc", NULL), 400);
  assert_non_null(strstr(err_text(&r), "'age'"));
  assert_int_equal(call(c, &r, "GET", "/api/author?age__in=1,x", NULL), 400);
  assert_int_equal(call(c, &r, "GET", "/api/author?age__isnull=maybe", NULL),
                   400);
  assert_int_equal(call(c, &r, "GET", "/api/author?joined=notadate", NULL),
                   400);
  assert_int_equal(call(c, &r, "GET", "/api/author?limit=-1", NULL), 400);
  assert_int_equal(call(c, &r, "GET", "/api/author?offset=x", NULL), 400);
  assert_int_equal(call(c, &r, "GET", "/api/author?order_by=nope", NULL), 400);
  assert_int_equal(call(c, &r, "GET", "/api/author?fields=id,nope", NULL), 400);
  assert_int_equal(call(c, &r, "GET", "/api/author?order_by=", NULL), 400);
  /* 413 and 431 come from the HTTP layer and close the connection */
  static char big[3000];
  memset(big, ' ', sizeof big - 1);
  big[0] = '{';
  big[sizeof big - 2] = '}';
  assert_int_equal(call(c, &r, "POST", "/api/author", big), 413);
  cli_free(c);
  c = cli_new();
  static char longpath[5000];
  memcpy(longpath, "/api/author?name=", 17);
  memset(longpath + 17, 'a', sizeof longpath - 18);
  assert_int_equal(call(c, &r, "GET", longpath, NULL), 431);
  cli_free(c);
  resp_clear(&r);
  assert_int_equal(stop_server(), 0);
  unlink(g_log);
}

/* Has s the bytes of U+FFFD (what a cut or an invalid byte became)? */
static int has_replacement(const char *s) {
  return s && strstr(s, "\xef\xbf\xbd") != NULL;
}

/* Input that is not UTF-8 once %-decoded, valid UTF-8 that a message
 * would cut mid-character, a pattern the database cannot compile, and the
 * messages a newcomer reads: each a 400 (or 409) in the caller's words,
 * never a bare 500. */
static void test_hostile_input(void **state) {
  start_server(NULL);
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"Hostile\",\"email\":\"h@example.org\","
                        "\"joined\":\"2024-01-01T00:00:00Z\"}"),
                   201);
  /* invalid UTF-8 in the path, a key, a parameter's name or value */
  assert_int_equal(call(c, &r, "GET", "/api/%ff", NULL), 400);
  assert_non_null(strstr(err_text(&r), "model name in the path"));
  assert_int_equal(call(c, &r, "GET", "/api/author/%ff", NULL), 400);
  assert_non_null(strstr(err_text(&r), "primary key in the path"));
  assert_int_equal(call(c, &r, "GET", "/api/author?age=%ff", NULL), 400);
  assert_string_equal(err_text(&r),
                      "'age': the value is not valid UTF-8 once %-decoded");
  assert_int_equal(call(c, &r, "GET", "/api/author?name=a%c3", NULL), 400);
  assert_int_equal(call(c, &r, "GET", "/api/author?%ff=1", NULL), 400);
  assert_non_null(strstr(err_text(&r), "parameter name is not valid UTF-8"));
  assert_int_equal(call(c, &r, "GET", "/api/author/count?%ed%a0%80=1", NULL),
                   400); /* a surrogate */
  /* valid UTF-8 longer than a message quotes: cut between characters */
  char path[2048], *p = path;
  p += sprintf(p, "/api/author?a");
  for (int i = 0; i < 60; i++) p += sprintf(p, "%%C3%%A9");
  sprintf(p, "=1");
  assert_int_equal(call(c, &r, "GET", path, NULL), 400);
  assert_false(has_replacement(err_text(&r)));
  assert_non_null(strstr(err_text(&r), "unknown field"));
  p = path + sprintf(path, "/api/author?age=a");
  for (int i = 0; i < 60; i++) p += sprintf(p, "%%C3%%A9");
  assert_int_equal(call(c, &r, "GET", path, NULL), 400);
  assert_false(has_replacement(err_text(&r)));
  p = path + sprintf(path, "/api/author?age__in=1,a");
  for (int i = 0; i < 60; i++) p += sprintf(p, "%%C3%%A9");
  assert_int_equal(call(c, &r, "GET", path, NULL), 400);
  assert_false(has_replacement(err_text(&r)));
  p = path + sprintf(path, "/api/author/");
  for (int i = 0; i < 60; i++) p += sprintf(p, "%%C3%%A9");
  assert_int_equal(call(c, &r, "GET", path, NULL), 404);
  assert_false(has_replacement(err_text(&r)));
  p = path + sprintf(path, "/api/");
  for (int i = 0; i < 60; i++) p += sprintf(p, "%%C3%%A9");
  assert_int_equal(call(c, &r, "GET", path, NULL), 404);
  assert_false(has_replacement(err_text(&r)));
  char body[512];
  p = body + sprintf(body, "{\"a");
  for (int i = 0; i < 60; i++) p += sprintf(p, "\xc3\xa9");
  sprintf(p, "\": 1}");
  assert_int_equal(call(c, &r, "POST", "/api/author", body), 400);
  assert_false(has_replacement(err_text(&r)));
  /* a regular expression the database cannot compile: the user's 400 */
  assert_int_equal(call(c, &r, "GET", "/api/author?name__regex=%5B", NULL),
                   400);
  assert_non_null(strstr(err_text(&r), "invalid regular expression"));
  assert_int_equal(
      call(c, &r, "GET", "/api/author/count?name__iregex=a%7B2,1%7D", NULL),
      400);
  /* the caller's words: a body sets fields, it has no lookups */
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"E\",\"email\":\"e@x.org\",\"joined\":"
                        "\"yesterday\"}"),
                   400);
  assert_non_null(strstr(err_text(&r), "field 'joined'"));
  assert_null(strstr(err_text(&r), "lookup"));
  /* order_by and fields name fields, not lookups */
  assert_int_equal(call(c, &r, "GET", "/api/author?order_by=nmae", NULL), 400);
  assert_null(strstr(err_text(&r), "lookup"));
  assert_non_null(strstr(err_text(&r), "did you mean 'name'?"));
  assert_int_equal(call(c, &r, "GET", "/api/author?fields=id,emial", NULL),
                   400);
  assert_null(strstr(err_text(&r), "lookup"));
  assert_non_null(strstr(err_text(&r), "did you mean 'email'?"));
  /* query lookups get a suggestion too */
  assert_int_equal(call(c, &r, "GET", "/api/author?nmae=Ann", NULL), 400);
  assert_non_null(strstr(err_text(&r), "did you mean 'name'?"));
  assert_int_equal(call(c, &r, "GET", "/api/author?name__icontans=A", NULL),
                   400);
  assert_non_null(strstr(err_text(&r), "did you mean 'icontains'?"));
  assert_int_equal(call(c, &r, "GET", "/api/entry?author__nmae=A", NULL), 400);
  assert_non_null(strstr(err_text(&r), "did you mean 'name'?"));
  /* a related key that does not exist names the field */
  assert_int_equal(call(c, &r, "POST", "/api/entry",
                        "{\"author\":424242,\"headline\":\"h\"}"),
                   409);
  assert_non_null(strstr(err_text(&r), "field 'author'"));
  assert_int_equal(call(c, &r, "POST", "/api/entry",
                        "{\"author_id\":424242,\"headline\":\"h\"}"),
                   409);
  assert_non_null(strstr(err_text(&r), "field 'author_id'"));
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  unlink(g_log);
}

/* The names the query layer refuses, as lookup keys, order_by and fields
 * values: 400 every time, and the table as it was. */
static void test_refused_names(void **state) {
  start_server(NULL);
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"Kim\",\"email\":\"kim@example.org\","
                        "\"joined\":\"2024-01-01\"}"),
                   201);
  assert_int_equal(call(c, &r, "GET", "/api/author/count", NULL), 200);
  json_int_t before = jint(r.json, "count");
  /* percent-encoded: name"; DROP TABLE author; --   -name);select 1--
   * a.b  $1  ?  tab  newline  \x01  ""  1abc  café  64 bytes */
  static const char *const bad[] = {
      "name%22%3B%20DROP%20TABLE%20author%3B%20--",
      "-name)%3Bselect%201--",
      "a.b",
      "%241",
      "%3F",
      "na%09me",
      "na%0Ame",
      "x%01",
      "1abc",
      "caf%C3%A9",
      "name%00",
      "0123456789012345678901234567890123456789012345678901234567890123",
      "name__%22%3B%20DROP%20TABLE%20author%3B%20--",
      "author%22.%22name",
  };
  char path[512];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(path, sizeof path, "/api/author?%s=1", bad[i]);
    assert_int_equal(call(c, &r, "GET", path, NULL), 400);
    snprintf(path, sizeof path, "/api/author/count?%s=1", bad[i]);
    assert_int_equal(call(c, &r, "GET", path, NULL), 400);
    snprintf(path, sizeof path, "/api/author?order_by=%s", bad[i]);
    assert_int_equal(call(c, &r, "GET", path, NULL), 400);
    snprintf(path, sizeof path, "/api/author?order_by=name,%s", bad[i]);
    assert_int_equal(call(c, &r, "GET", path, NULL), 400);
    snprintf(path, sizeof path, "/api/author?fields=%s", bad[i]);
    assert_int_equal(call(c, &r, "GET", path, NULL), 400);
    snprintf(path, sizeof path, "/api/author/%s", bad[i]);
    assert_int_equal(call(c, &r, "GET", path, NULL), 404);
  }
  /* empty key */
  assert_int_equal(call(c, &r, "GET", "/api/author?=1", NULL), 400);
  /* the table is intact */
  assert_int_equal(call(c, &r, "GET", "/api/author/count", NULL), 200);
  assert_int_equal(jint(r.json, "count"), before);
  assert_int_equal(call(c, &r, "GET", "/api/author?name=Kim", NULL), 200);
  assert_int_equal(nresults(&r), 1);
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  unlink(g_log);
}

/* Clients that vanish with queries in flight cost nothing: the server goes
 * on, and exits 0 (clean under ASan) at the end. */
static void test_disconnect_mid_request(void **state) {
  start_server(NULL);
  static char burst[200 * 64];
  size_t n = 0;
  for (int k = 0; k < 200; k++)
    n += (size_t)snprintf(
        burst + n, sizeof burst - n, "%s",
        k % 2 ? "GET /api/author/count HTTP/1.1\r\n\r\n"
              : "GET /api/author?order_by=name HTTP/1.1\r\n\r\n");
  /* and a request cut in the middle of its body */
  static const char cut[] =
      "POST /api/entry HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"author\":";
  int gone = 0;
  for (int round = 0; round < 20 && !gone; round++) {
    for (int i = 0; i < 5; i++) {
      client *c = cli_new();
      cli_send(c, burst, n);
      cli_send(c, cut, sizeof cut - 1);
      struct linger lg = {1, 0}; /* reset: the rudest goodbye */
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      cli_free(c);
    }
    sleep_ms(100);
    char *log = read_log();
    gone = strstr(log, "(client gone)") != NULL;
    free(log);
  }
  /* some answers were dropped because their client had gone */
  assert_true(gone);
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "GET", "/healthz", NULL), 200);
  assert_int_equal(call(c, &r, "GET", "/api/author/count", NULL), 200);
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  unlink(g_log);
}

/* SIGTERM while a pipelined burst is being answered: every answer that
 * comes is whole and in order, the connection then closes, exit 0. */
static void test_shutdown_in_flight(void **state) {
  start_server(NULL);
  client *c = cli_new();
  static char burst[64 * 64];
  size_t n = 0;
  for (int i = 0; i < 60; i++)
    n += (size_t)snprintf(
        burst + n, sizeof burst - n,
        "GET /api/author?limit=%d HTTP/1.1\r\nHost: t\r\n\r\n", i + 1);
  cli_send(c, burst, n);
  response r;
  memset(&r, 0, sizeof r);
  assert_true(cli_read(c, &r)); /* the server is at work */
  assert_int_equal(r.status, 200);
  kill(g_pid, SIGTERM);
  int got = 1;
  while (cli_read(c, &r)) {
    assert_int_equal(r.status, 200);
    got++;
  }
  assert_true(got >= 1 && got <= 60);
  resp_clear(&r);
  cli_free(c);
  int st = 0;
  assert_int_equal(waitpid(g_pid, &st, 0), g_pid);
  g_pid = 0;
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  char *log = read_log();
  int ok = strstr(log, "shutting down") != NULL;
  free(log);
  assert_true(ok);
  unlink(g_log);
}

/* The key list of field k of object o, as text: "[1,2]". */
static char *keys_text(const json_t *o, const char *k) {
  static char buf[8][256];
  static int i;
  char *b = buf[i++ % 8];
  json_t *v = json_object_get(o, k);
  char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  snprintf(b, 256, "%s", t ? t : "(none)");
  free(t);
  return b;
}

static json_t *result_at(const response *r, size_t i) {
  return json_array_get(json_object_get(r->json, "results"), i);
}

/* many_to_many fields: arrays of related keys out, lists of keys in (a
 * POST or PATCH sets them in one transaction with the row), filters
 * across them, DELETE with pairs. */
static void test_many_to_many(void **state) {
  g_models = M2M_MODELS;
  start_server(NULL);
  g_models = MODELS;
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  json_int_t t[3];
  static const char *const names[] = {"a", "b", "c"};
  char body[512], path[128], want[128];
  for (int i = 0; i < 3; i++) {
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", names[i]);
    assert_int_equal(call(c, &r, "POST", "/api/tag", body), 201);
    t[i] = jint(r.json, "id");
  }
  assert_int_equal(call(c, &r, "POST", "/api/label", "{\"code\":\"red\"}"),
                   201);
  assert_int_equal(call(c, &r, "POST", "/api/label", "{\"code\":\"blue\"}"),
                   201);

  /* POST with keys: the pairs, in ascending order in the answer */
  snprintf(body, sizeof body,
           "{\"title\":\"P1\",\"tags\":[%lld,%lld,%lld],"
           "\"labels\":[\"red\",\"blue\"]}",
           (long long)t[1], (long long)t[0], (long long)t[1]);
  assert_int_equal(call(c, &r, "POST", "/api/post", body), 201);
  json_int_t p1 = jint(r.json, "id");
  snprintf(want, sizeof want, "[%lld,%lld]", (long long)t[0], (long long)t[1]);
  assert_string_equal(keys_text(r.json, "tags"), want);
  assert_string_equal(keys_text(r.json, "labels"), "[\"blue\",\"red\"]");
  assert_string_equal(json_string_value(json_object_get(r.json, "title")),
                      "P1");
  /* POST without: empty arrays */
  assert_int_equal(call(c, &r, "POST", "/api/post", "{\"title\":\"P2\"}"), 201);
  json_int_t p2 = jint(r.json, "id");
  assert_string_equal(keys_text(r.json, "tags"), "[]");
  assert_string_equal(keys_text(r.json, "labels"), "[]");

  /* list and detail */
  assert_int_equal(call(c, &r, "GET", "/api/post", NULL), 200);
  assert_int_equal(nresults(&r), 2);
  assert_string_equal(keys_text(result_at(&r, 0), "tags"), want);
  assert_string_equal(keys_text(result_at(&r, 0), "labels"),
                      "[\"blue\",\"red\"]");
  assert_string_equal(keys_text(result_at(&r, 1), "tags"), "[]");
  snprintf(path, sizeof path, "/api/post/%lld", (long long)p1);
  assert_int_equal(call(c, &r, "GET", path, NULL), 200);
  assert_string_equal(keys_text(r.json, "tags"), want);
  assert_int_equal(call(c, &r, "HEAD", path, NULL), 200);
  /* fields=: a relation named alone (no key), or left out (not read) */
  assert_int_equal(call(c, &r, "GET", "/api/post?fields=title,tags", NULL),
                   200);
  assert_int_equal(json_object_size(result_at(&r, 0)), 2);
  assert_string_equal(keys_text(result_at(&r, 0), "tags"), want);
  assert_int_equal(call(c, &r, "GET", "/api/post?fields=id,title", NULL), 200);
  assert_int_equal(json_object_size(result_at(&r, 0)), 2);
  assert_null(json_object_get(result_at(&r, 0), "tags"));
  assert_int_equal(call(c, &r, "GET", "/api/post?fields=pk,labels", NULL), 200);
  assert_int_equal(json_object_size(result_at(&r, 0)), 2);
  assert_string_equal(keys_text(result_at(&r, 0), "labels"),
                      "[\"blue\",\"red\"]");
  assert_int_equal(call(c, &r, "GET", "/api/post?limit=0", NULL), 200);
  assert_int_equal(nresults(&r), 0);

  /* a key with no row: 409, and no row left behind */
  snprintf(body, sizeof body, "{\"title\":\"P3\",\"tags\":[%lld,999999]}",
           (long long)t[0]);
  assert_int_equal(call(c, &r, "POST", "/api/post", body), 409);
  assert_non_null(strstr(err_text(&r), "conflict"));
  assert_int_equal(call(c, &r, "POST", "/api/post",
                        "{\"title\":\"P3\",\"labels\":[\"green\"]}"),
                   409);
  assert_int_equal(call(c, &r, "GET", "/api/post/count", NULL), 200);
  assert_int_equal(jint(r.json, "count"), 2);
  assert_int_equal(call(c, &r, "GET", "/api/post?title=P3", NULL), 200);
  assert_int_equal(nresults(&r), 0);

  /* bad shapes: 400 naming the field */
  static const char *const bad[] = {
      "{\"title\":\"P4\",\"tags\":1}",
      "{\"title\":\"P4\",\"tags\":null}",
      "{\"title\":\"P4\",\"tags\":{\"a\":1}}",
      "{\"title\":\"P4\",\"tags\":[1,\"x\"]}",
      "{\"title\":\"P4\",\"tags\":[1.5]}",
      "{\"title\":\"P4\",\"tags\":[99999999999]}",
      "{\"title\":\"P4\",\"labels\":[1]}",
      "{\"title\":\"P4\",\"labels\":\"red\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(call(c, &r, "POST", "/api/post", bad[i]), 400);
    assert_non_null(
        strstr(err_text(&r), strstr(bad[i], "labels") ? "'labels'" : "'tags'"));
    assert_int_equal(call(c, &r, "PATCH", path, bad[i]), 400);
  }
  assert_int_equal(call(c, &r, "GET", "/api/post/count", NULL), 200);
  assert_int_equal(jint(r.json, "count"), 2);

  /* PATCH replaces the set (Django's set()) */
  snprintf(body, sizeof body, "{\"tags\":[%lld]}", (long long)t[2]);
  assert_int_equal(call(c, &r, "PATCH", path, body), 200);
  snprintf(want, sizeof want, "[%lld]", (long long)t[2]);
  assert_string_equal(keys_text(r.json, "tags"), want);
  assert_string_equal(keys_text(r.json, "labels"), "[\"blue\",\"red\"]");
  assert_string_equal(json_string_value(json_object_get(r.json, "title")),
                      "P1");
  /* PATCH without the field leaves it */
  assert_int_equal(call(c, &r, "PATCH", path, "{\"title\":\"P1b\"}"), 200);
  assert_string_equal(keys_text(r.json, "tags"), want);
  assert_int_equal(call(c, &r, "PATCH", path, "{}"), 200);
  assert_string_equal(keys_text(r.json, "tags"), want);
  /* a failing PATCH changes nothing, the row's own fields included */
  snprintf(body, sizeof body, "{\"title\":\"X\",\"tags\":[%lld,999999]}",
           (long long)t[0]);
  assert_int_equal(call(c, &r, "PATCH", path, body), 409);
  assert_int_equal(call(c, &r, "GET", path, NULL), 200);
  assert_string_equal(keys_text(r.json, "tags"), want);
  assert_string_equal(json_string_value(json_object_get(r.json, "title")),
                      "P1b");
  assert_int_equal(call(c, &r, "PATCH", "/api/post/999999", "{\"tags\":[]}"),
                   404);
  assert_int_equal(
      call(c, &r, "PATCH", "/api/post/999999", "{\"title\":\"Z\",\"tags\":[]}"),
      404);
  /* title and relations together; then an empty list clears */
  snprintf(body, sizeof body, "{\"title\":\"P1\",\"tags\":[%lld,%lld]}",
           (long long)t[1], (long long)t[0]);
  assert_int_equal(call(c, &r, "PATCH", path, body), 200);
  snprintf(want, sizeof want, "[%lld,%lld]", (long long)t[0], (long long)t[1]);
  assert_string_equal(keys_text(r.json, "tags"), want);
  assert_string_equal(json_string_value(json_object_get(r.json, "title")),
                      "P1");
  assert_int_equal(call(c, &r, "PATCH", path, "{\"labels\":[]}"), 200);
  assert_string_equal(keys_text(r.json, "labels"), "[]");
  assert_string_equal(keys_text(r.json, "tags"), want);
  snprintf(path, sizeof path, "/api/post/%lld", (long long)p2);
  snprintf(body, sizeof body, "{\"tags\":[%lld],\"labels\":[\"red\"]}",
           (long long)t[1]);
  assert_int_equal(call(c, &r, "PATCH", path, body), 200);

  /* filters across the relation: P1 has a and b, P2 has b */
  char q[128];
  snprintf(q, sizeof q, "/api/post?tags=%lld", (long long)t[0]);
  assert_int_equal(call(c, &r, "GET", q, NULL), 200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(jint(result_at(&r, 0), "id"), p1);
  snprintf(q, sizeof q, "/api/post/count?tags=%lld", (long long)t[1]);
  assert_int_equal(call(c, &r, "GET", q, NULL), 200);
  assert_int_equal(jint(r.json, "count"), 2);
  assert_int_equal(call(c, &r, "GET", "/api/post?tags__name=a", NULL), 200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(call(c, &r, "GET", "/api/post?tags__name=b", NULL), 200);
  assert_int_equal(nresults(&r), 2);
  assert_int_equal(call(c, &r, "GET", "/api/post?labels=red", NULL), 200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(jint(result_at(&r, 0), "id"), p2);
  snprintf(q, sizeof q, "/api/post?tags__in=%lld,%lld&order_by=-id",
           (long long)t[0], (long long)t[2]);
  assert_int_equal(call(c, &r, "GET", q, NULL), 200);
  assert_int_equal(nresults(&r), 1);
  /* a row matching through two pairs comes twice, as in Django; each
   * copy carries its keys */
  snprintf(q, sizeof q, "/api/post?tags__in=%lld,%lld", (long long)t[0],
           (long long)t[1]);
  assert_int_equal(call(c, &r, "GET", q, NULL), 200);
  assert_int_equal(nresults(&r), 3);
  snprintf(want, sizeof want, "[%lld,%lld]", (long long)t[0], (long long)t[1]);
  for (size_t i = 0; i < 3; i++)
    if (jint(result_at(&r, i), "id") == p1)
      assert_string_equal(keys_text(result_at(&r, i), "tags"), want);
  assert_int_equal(call(c, &r, "GET", "/api/tag?posts__title=P2", NULL), 200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(call(c, &r, "GET", "/api/post?tags=abc", NULL), 400);
  assert_non_null(strstr(err_text(&r), "'tags'"));

  /* a page of many rows: every row's own keys */
  for (int i = 0; i < 30; i++) {
    snprintf(body, sizeof body, "{\"title\":\"m%d\",\"tags\":[%lld]}", i,
             (long long)t[i % 3]);
    assert_int_equal(call(c, &r, "POST", "/api/post", body), 201);
  }
  assert_int_equal(
      call(c, &r, "GET", "/api/post?title__startswith=m&limit=25&offset=2",
           NULL),
      200);
  assert_int_equal(nresults(&r), 25);
  for (size_t i = 0; i < 25; i++) {
    json_t *o = result_at(&r, i);
    int k = atoi(json_string_value(json_object_get(o, "title")) + 1);
    snprintf(want, sizeof want, "[%lld]", (long long)t[k % 3]);
    assert_string_equal(keys_text(o, "tags"), want);
  }

  /* DELETE a row with pairs; then a tag with pairs (ON DELETE CASCADE on
   * the join table) */
  snprintf(path, sizeof path, "/api/post/%lld", (long long)p1);
  assert_int_equal(call(c, &r, "DELETE", path, NULL), 204);
  assert_int_equal(call(c, &r, "GET", path, NULL), 404);
  snprintf(q, sizeof q, "/api/post?tags=%lld", (long long)t[0]);
  assert_int_equal(call(c, &r, "GET", q, NULL), 200);
  assert_int_equal(nresults(&r), 10); /* the m<i> rows only */
  snprintf(path, sizeof path, "/api/tag/%lld", (long long)t[1]);
  assert_int_equal(call(c, &r, "DELETE", path, NULL), 204);
  snprintf(path, sizeof path, "/api/post/%lld", (long long)p2);
  assert_int_equal(call(c, &r, "GET", path, NULL), 200);
  assert_string_equal(keys_text(r.json, "tags"), "[]");
  assert_string_equal(keys_text(r.json, "labels"), "[\"red\"]");
  assert_int_equal(call(c, &r, "DELETE", "/api/label/red", NULL), 204);
  assert_int_equal(call(c, &r, "GET", path, NULL), 200);
  assert_string_equal(keys_text(r.json, "labels"), "[]");

  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  unlink(g_log);
}

/* A list page of N rows reads each many_to_many relation with ONE query,
 * not N: seen in PostgreSQL's own statement log (log_statement=all for
 * the server's connections; the log is the one tests/pg_harness.sh
 * writes).  SQLite has no log to look at: skipped there. */
static void test_m2m_one_query_per_page(void **state) {
  const char *sock = getenv("DORM_TEST_PGSOCK");
  char logpath[PATH_MAX];
  snprintf(logpath, sizeof logpath, "%s/server.log", sock ? sock : "");
  char *pglog =
      strncmp(g_url, "sqlite", 6) && sock ? dorm_test_read_file(logpath) : NULL;
  if (!pglog) {
    fprintf(stderr, "(no PostgreSQL statement log here: skipped)\n");
    return;
  }
  free(pglog);
  char saved[sizeof g_url];
  snprintf(saved, sizeof saved, "%s", g_url);
  snprintf(g_url, sizeof g_url,
           "%s options='-csearch_path=%s -clog_statement=all'",
           dorm_test_pg_conninfo(), PG_SCHEMA);
  g_models = M2M_MODELS;
  start_server(NULL);
  g_models = MODELS;
  snprintf(g_url, sizeof g_url, "%s", saved);
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "POST", "/api/tag", "{\"name\":\"q1\"}"), 201);
  json_int_t tag = jint(r.json, "id");
  char body[128];
  for (int i = 0; i < 20; i++) {
    snprintf(body, sizeof body, "{\"title\":\"q%d\",\"tags\":[%lld]}", i,
             (long long)tag);
    assert_int_equal(call(c, &r, "POST", "/api/post", body), 201);
  }
  char *log = dorm_test_read_file(logpath);
  size_t from = strlen(log);
  free(log);
  assert_int_equal(call(c, &r, "GET", "/api/post?title__startswith=q", NULL),
                   200);
  assert_int_equal(nresults(&r), 20);
  /* the log is written by the server's processes: wait for the lines */
  int tags = 0, labels = 0;
  for (int i = 0; i < 200 && !(tags && labels); i++) {
    log = dorm_test_read_file(logpath);
    tags = dorm_test_count_from(log, from, "FROM \"post_tags\" WHERE");
    labels = dorm_test_count_from(log, from, "FROM \"post_labels\" WHERE");
    free(log);
    if (!(tags && labels)) sleep_ms(10);
  }
  sleep_ms(100); /* and for any that would come late */
  log = dorm_test_read_file(logpath);
  tags = dorm_test_count_from(log, from, "FROM \"post_tags\" WHERE");
  labels = dorm_test_count_from(log, from, "FROM \"post_labels\" WHERE");
  free(log);
  assert_int_equal(tags, 1);
  assert_int_equal(labels, 1);
  /* fields= without a relation: its query is not made */
  log = dorm_test_read_file(logpath);
  from = strlen(log);
  free(log);
  assert_int_equal(
      call(c, &r, "GET", "/api/post?title__startswith=q&fields=id,tags", NULL),
      200);
  assert_int_equal(nresults(&r), 20);
  tags = 0;
  for (int i = 0; i < 200 && !tags; i++) {
    log = dorm_test_read_file(logpath);
    tags = dorm_test_count_from(log, from, "FROM \"post_tags\" WHERE");
    free(log);
    if (!tags) sleep_ms(10);
  }
  sleep_ms(100);
  log = dorm_test_read_file(logpath);
  assert_int_equal(dorm_test_count_from(log, from, "FROM \"post_tags\" WHERE"),
                   1);
  assert_int_equal(
      dorm_test_count_from(log, from, "FROM \"post_labels\" WHERE"), 0);
  free(log);
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  unlink(g_log);
}

/* choices: a POST or PATCH of a value outside them is a 400 naming the
 * model, the field and the choices, and nothing is written. */
static void test_choices(void **state) {
  g_models = TASK_MODELS;
  start_server(NULL);
  g_models = MODELS;
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "POST", "/api/project", "{\"name\":\"ch\"}"),
                   201);
  json_int_t p = jint(r.json, "id");
  char body[256], path[128];
  snprintf(body, sizeof body,
           "{\"project\":%lld,\"title\":\"t\",\"status\":\"bogus\"}",
           (long long)p);
  assert_int_equal(call(c, &r, "POST", "/api/task", body), 400);
  assert_string_equal(err_text(&r),
                      "model 'Task', field 'status': 'bogus' is not one of "
                      "the choices ('todo', 'doing', 'done')");
  snprintf(body, sizeof body, "{\"project\":%lld,\"title\":\"t\",\"points\":4}",
           (long long)p);
  assert_int_equal(call(c, &r, "POST", "/api/task", body), 400);
  assert_string_equal(err_text(&r),
                      "model 'Task', field 'points': 4 is not one of the "
                      "choices (1, 2, 3, 5, 8)");
  assert_int_equal(call(c, &r, "GET", "/api/task/count?project__name=ch", NULL),
                   200);
  assert_int_equal(jint(r.json, "count"), 0);
  snprintf(body, sizeof body,
           "{\"project\":%lld,\"title\":\"t\",\"status\":\"doing\","
           "\"points\":5}",
           (long long)p);
  assert_int_equal(call(c, &r, "POST", "/api/task", body), 201);
  assert_string_equal(json_string_value(json_object_get(r.json, "status")),
                      "doing");
  snprintf(path, sizeof path, "/api/task/%lld", (long long)jint(r.json, "id"));
  assert_int_equal(call(c, &r, "PATCH", path, "{\"status\":\"Done\"}"), 400);
  assert_non_null(strstr(err_text(&r), "'Done' is not one of the choices"));
  assert_int_equal(call(c, &r, "GET", path, NULL), 200);
  assert_string_equal(json_string_value(json_object_get(r.json, "status")),
                      "doing");
  assert_int_equal(call(c, &r, "PATCH", path, "{\"status\":\"done\"}"), 200);
  assert_string_equal(json_string_value(json_object_get(r.json, "status")),
                      "done");
  snprintf(path, sizeof path, "/api/project/%lld", (long long)p);
  assert_int_equal(call(c, &r, "DELETE", path, NULL), 204); /* and its task */
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  unlink(g_log);
}

/* Names of a list answer's objects, joined by ','. */
static void result_names(const response *r, char *buf, size_t cap) {
  json_t *res = json_object_get(r->json, "results");
  buf[0] = '\0';
  for (size_t i = 0; i < json_array_size(res); i++) {
    size_t n = strlen(buf);
    snprintf(
        buf + n, cap - n, "%s%s", i ? "," : "",
        json_string_value(json_object_get(json_array_get(res, i), "name")));
  }
}

/* A filter across a multi-valued relation (a reverse foreign key, a
 * many_to_many) answers an object once per matching related row, as
 * Django does; distinct=1 (or true) answers it once, in lists and
 * counts alike.  Other values are a 400. */
static void test_distinct(void **state) {
  g_models = TASK_MODELS;
  start_server(NULL);
  g_models = MODELS;
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  char body[256], got[256];
  json_int_t person[2];
  for (int i = 0; i < 2; i++) {
    snprintf(body, sizeof body, "{\"name\":\"p%d\"}", i);
    assert_int_equal(call(c, &r, "POST", "/api/person", body), 201);
    person[i] = jint(r.json, "id");
  }
  /* alpha: three open tasks; beta: one open, one done; gamma: two done */
  static const char *const projects[] = {"alpha", "beta", "gamma"};
  static const int open[] = {3, 1, 0}, done[] = {0, 1, 2};
  for (int i = 0; i < 3; i++) {
    /* members: alpha both people, beta p0, gamma p1 */
    char members[64];
    if (i == 0)
      snprintf(members, sizeof members, "%lld,%lld", (long long)person[0],
               (long long)person[1]);
    else
      snprintf(members, sizeof members, "%lld", (long long)person[i - 1]);
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"members\":[%s]}",
             projects[i], members);
    assert_int_equal(call(c, &r, "POST", "/api/project", body), 201);
    json_int_t p = jint(r.json, "id");
    for (int k = 0; k < open[i] + done[i]; k++) {
      snprintf(body, sizeof body,
               "{\"project\":%lld,\"title\":\"t%d\",\"done\":%s}", (long long)p,
               k, k < open[i] ? "false" : "true");
      assert_int_equal(call(c, &r, "POST", "/api/task", body), 201);
    }
  }

  /* without distinct: once per matching task (the model orders by name) */
  assert_int_equal(
      call(c, &r, "GET", "/api/project?tasks__done=false&fields=name", NULL),
      200);
  result_names(&r, got, sizeof got);
  assert_string_equal(got, "alpha,alpha,alpha,beta");
  assert_int_equal(
      call(c, &r, "GET", "/api/project/count?tasks__done=false", NULL), 200);
  assert_int_equal(jint(r.json, "count"), 4);
  /* with it: once each, whole objects (many_to_many arrays included) too */
  assert_int_equal(
      call(c, &r, "GET", "/api/project?tasks__done=false&distinct=1", NULL),
      200);
  result_names(&r, got, sizeof got);
  assert_string_equal(got, "alpha,beta");
  assert_int_equal(
      json_array_size(json_object_get(
          json_array_get(json_object_get(r.json, "results"), 0), "members")),
      2);
  assert_int_equal(
      call(c, &r, "GET",
           "/api/project?distinct=true&tasks__done=false&fields=name", NULL),
      200);
  result_names(&r, got, sizeof got);
  assert_string_equal(got, "alpha,beta");
  assert_int_equal(
      call(c, &r, "GET", "/api/project/count?tasks__done=false&distinct=TRUE",
           NULL),
      200);
  assert_int_equal(jint(r.json, "count"), 2);
  /* a page of the distinct objects */
  assert_int_equal(call(c, &r, "GET",
                        "/api/project?tasks__done=false&distinct=1&limit=1"
                        "&offset=1&order_by=-name",
                        NULL),
                   200);
  result_names(&r, got, sizeof got);
  assert_string_equal(got, "alpha");
  /* across a many_to_many and its reverse */
  assert_int_equal(
      call(c, &r, "GET", "/api/person/count?projects__tasks__done=false", NULL),
      200);
  assert_int_equal(jint(r.json, "count"), 7); /* p0: 3 + 1, p1: 3 */
  assert_int_equal(
      call(c, &r, "GET",
           "/api/person/count?projects__tasks__done=false&distinct=1", NULL),
      200);
  assert_int_equal(jint(r.json, "count"), 2);
  snprintf(body, sizeof body,
           "/api/project?members__in=%lld,%lld&distinct=1&fields=name",
           (long long)person[0], (long long)person[1]);
  assert_int_equal(call(c, &r, "GET", body, NULL), 200);
  result_names(&r, got, sizeof got);
  assert_string_equal(got, "alpha,beta,gamma");
  /* anything else is refused */
  static const char *const bad[] = {"0", "false", "yes", "", "2", "true1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(body, sizeof body, "/api/project?distinct=%s", bad[i]);
    assert_int_equal(call(c, &r, "GET", body, NULL), 400);
    snprintf(got, sizeof got, "'distinct': expected 1 or true, got '%s'",
             bad[i]);
    assert_string_equal(err_text(&r), got);
    snprintf(body, sizeof body, "/api/project/count?distinct=%s", bad[i]);
    assert_int_equal(call(c, &r, "GET", body, NULL), 400);
  }
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);
  unlink(g_log);
}

/* JSON bodies and query strings reach the database as written: a JSON
 * field's numbers are not passed through a double (0.1 stays 0.1), and a
 * document filters by value, whatever its key order or spacing, on both
 * backends. */
static void test_json_exact(void **state) {
  (void)state;
  start_server(NULL);
  client *c = cli_new();
  response r;
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "POST", "/api/author",
                        "{\"name\":\"Jo\",\"email\":\"jo@example.org\","
                        "\"joined\":\"2024-05-01T10:00:00Z\"}"),
                   201);
  char body[256];
  snprintf(body, sizeof body,
           "{\"author\":%lld,\"headline\":\"J\",\"tags\":"
           "{\"b\": 1, \"a\": 0.1}}",
           (long long)jint(r.json, "id"));
  assert_int_equal(call(c, &r, "POST", "/api/entry", body), 201);
  /* tags={"a":0.1,"b":1} */
  assert_int_equal(
      call(c, &r, "GET", "/api/entry?tags=%7B%22a%22%3A0.1%2C%22b%22%3A1%7D",
           NULL),
      200);
  assert_int_equal(nresults(&r), 1);
  /* tags={ "b" : 1.0 , "a" : 1e-1 } */
  assert_int_equal(
      call(c, &r, "GET",
           "/api/entry?tags=%7B%20%22b%22%20%3A%201.0%20%2C%20%22a%22%20%3A%20"
           "1e-1%20%7D",
           NULL),
      200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(
      call(c, &r, "GET",
           "/api/entry?tags=%7B%22a%22%3A0.10000000000000001%2C%22b%22%3A1%7D",
           NULL),
      200);
  assert_int_equal(nresults(&r), 0);
  resp_clear(&r);
  cli_free(c);
  assert_int_equal(stop_server(), 0);

  /* a decimal member is the number as written, checked against the
   * field's max_digits and decimal_places, not a double rounded by the
   * database */
  g_models = EXACT_MODELS;
  start_server(NULL);
  c = cli_new();
  memset(&r, 0, sizeof r);
  assert_int_equal(call(c, &r, "POST", "/api/item",
                        "{\"price\": 95.26, \"big\": 1234567890123.45}"),
                   201);
  assert_string_equal(json_string_value(json_object_get(r.json, "price")),
                      "95.26");
  assert_string_equal(json_string_value(json_object_get(r.json, "big")),
                      "1234567890123.45");
  json_int_t item = jint(r.json, "id");
  assert_int_equal(call(c, &r, "GET", "/api/item?price=95.26", NULL), 200);
  assert_int_equal(nresults(&r), 1);
  assert_int_equal(call(c, &r, "POST", "/api/item", "{\"price\": 1.234}"), 400);
  assert_non_null(strstr(r.body, "field 'price'"));
  assert_int_equal(call(c, &r, "POST", "/api/item", "{\"price\": 9.526e1}"),
                   400);
  assert_non_null(strstr(r.body, "exponent"));
  char path[64];
  snprintf(path, sizeof path, "/api/item/%lld", (long long)item);
  assert_int_equal(call(c, &r, "PATCH", path, "{\"price\": 0.1}"), 200);
  assert_string_equal(json_string_value(json_object_get(r.json, "price")),
                      "0.10");
  assert_int_equal(call(c, &r, "PATCH", path, "{\"price\": 123456.789}"), 400);
  resp_clear(&r);
  cli_free(c);
  g_models = MODELS;
  assert_int_equal(stop_server(), 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_routes),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_hostile_input),
      cmocka_unit_test(test_refused_names),
      cmocka_unit_test(test_disconnect_mid_request),
      cmocka_unit_test(test_shutdown_in_flight),
      cmocka_unit_test(test_many_to_many),
      cmocka_unit_test(test_m2m_one_query_per_page),
      cmocka_unit_test(test_choices),
      cmocka_unit_test(test_distinct),
      cmocka_unit_test(test_json_exact),
  };
  int failed = cmocka_run_group_tests_name("sqlite", tests, setup_sqlite,
                                           teardown_sqlite);
  /* the postgresql group needs the run's server (docs/testing.md) */
  if (dorm_test_pg_conninfo())
    failed +=
        cmocka_run_group_tests_name("postgresql", tests, setup_pg, teardown_pg);
  else
    printf(
        "[ SKIPPED  ] group postgresql: DORM_TEST_PG is not set "
        "(docs/testing.md)\n");
  return failed;
}
