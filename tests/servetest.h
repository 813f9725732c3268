/* SPDX-License-Identifier: MIT */
/* tests/servetest.h — what the tests of `dorm serve` share
 * (tests/test_serve_*.c, one program per feature): `dorm serve` through a
 * real socket, on SQLite and on PostgreSQL (the suite's DORM_TEST_PG, in a
 * schema of its own).
 *
 * Each group creates the tables of tests/data/contract_models.json (and of
 * serve_m2m_models.json, for the many_to_many fields, and
 * serve_tasks_models.json, for choices and distinct) with the DDL compiler
 * (in-process, through libdorm), and each test starts the dorm binary built
 * beside it (build/dorm, or build-san/dorm for the sanitizer build, so the
 * server itself runs sanitized) on a free port and talks HTTP to it with
 * the small client below.  servetest_main runs a program's tests in the
 * sqlite group and, when the run has a server, the postgresql group.
 *
 * Header-only (static inline functions) so each program has its own copy.
 */
#ifndef DORM_TEST_SERVETEST_H
#define DORM_TEST_SERVETEST_H

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

static inline void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- database set-up, in-process ------------------------------------------
 */

typedef struct waiter {
  int done;
  int code;
} waiter;

static inline dorm_result wait_ok(dorm_result *r, void *arg) {
  ((waiter *)arg)->done = 1;
  return dorm_result_none();
}
static inline dorm_result wait_err(dorm_result *r, void *arg) {
  waiter *w = arg;
  w->done = 1;
  w->code = dorm_result_code(r);
  fprintf(stderr, "setup: %s\n", dorm_result_message(r));
  return dorm_result_none();
}

static inline void run_until(uv_loop_t *uv, dorm_deferred *d) {
  assert_non_null(d);
  waiter w = {0, 0};
  assert_int_equal(dorm_deferred_add_callbacks(d, wait_ok, wait_err, &w), 0);
  while (!w.done) uv_run(uv, UV_RUN_ONCE);
  assert_int_equal(w.code, 0);
}

static inline void set_flag(void *arg) { *(int *)arg = 1; }

/* Run sql statements on url, then (when models) create every table. */
static inline void setup_db(const char *url, const char *const *sql,
                            size_t nsql, int create_tables) {
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

/* build/dorm beside build/tests/test_serve_*. */
static inline void dorm_path(char *out, size_t cap) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  assert_true(n > 0);
  self[n] = '\0';
  char *dir = dirname(dirname(self));
  snprintf(out, cap, "%s/dorm", dir);
}

static inline char *read_log(void) {
  char *t = dorm_test_read_file(g_log);
  return t ? t : strdup("");
}

/* Start `dorm serve` with extra options (NULL-terminated). */
static inline void start_server(const char *extra, ...) {
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
static inline int stop_server(void) {
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

static inline client *cli_new(void) {
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

static inline void cli_free(client *c) {
  close(c->fd);
  free(c);
}

static inline void cli_send(client *c, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static inline int cli_fill(client *c) {
  ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
  if (r <= 0) return 0;
  c->len += (size_t)r;
  return 1;
}

static inline void cli_consume(client *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

static inline void resp_clear(response *r) {
  if (r->json) json_decref(r->json);
  r->json = NULL;
}

/* One response with a Content-Length (every answer of dorm serve has
 * one); 0 when the connection closed first. */
static inline int cli_read(client *c, response *r) {
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
static inline int call(client *c, response *r, const char *method,
                       const char *path, const char *body) {
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

static inline const char *err_text(const response *r) {
  return json_string_value(json_object_get(r->json, "error"));
}

static inline json_int_t jint(const json_t *o, const char *k) {
  return json_integer_value(json_object_get(o, k));
}

static inline size_t nresults(const response *r) {
  return json_array_size(json_object_get(r->json, "results"));
}

/* ---- groups: one per database
 * ------------------------------------------------ */

static inline int setup_sqlite(void **state) {
  dorm_test_sqlite_temp("dorm-serve-db", g_dbfile, sizeof g_dbfile, g_url,
                        sizeof g_url);
  setup_db(g_url, NULL, 0, 1);
  return 0;
}

static inline int teardown_sqlite(void **state) {
  (void)state;
  dorm_test_sqlite_remove(g_dbfile);
  return 0;
}

static inline int setup_pg(void **state) {
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

static inline int teardown_pg(void **state) {
  if (!dorm_test_pg_conninfo()) return 0;
  static const char *const drop[] = {"DROP SCHEMA IF EXISTS " PG_SCHEMA
                                     " CASCADE"};
  setup_db(dorm_test_pg_conninfo(), drop, 1, 0);
  return 0;
}

/* ---- main ---------------------------------------------------------------- */

/* Run the n tests on SQLite, then on PostgreSQL when the run has one
 * (docs/testing.md); the number of failures. */
static inline int servetest_run(const struct CMUnitTest *tests, size_t n) {
  signal(SIGPIPE, SIG_IGN);
  int failed = _cmocka_run_group_tests("sqlite", tests, n, setup_sqlite,
                                       teardown_sqlite);
  if (dorm_test_pg_conninfo())
    failed +=
        _cmocka_run_group_tests("postgresql", tests, n, setup_pg, teardown_pg);
  else
    printf(
        "[ SKIPPED  ] group postgresql: DORM_TEST_PG is not set "
        "(docs/testing.md)\n");
  return failed;
}

#define servetest_main(tests) \
  servetest_run(tests, sizeof tests / sizeof tests[0])

#endif /* DORM_TEST_SERVETEST_H */
