/* SPDX-License-Identifier: MIT */
/* tests/test_blog.c — the blog example (examples/blog) end to end, on SQLite
 * and on PostgreSQL (the suite's DORM_TEST_PG, in a schema of its own).
 *
 * The steps of `make demo`, with the programs built beside this test
 * (build/dorm and build/examples/blog/{blog,server}; build-san/... in the
 * sanitizer build, so the example itself runs sanitized): `dorm migrate`
 * applies the example's migrations, blog.c seeds the database through
 * async creates and runs its concurrent queries, then server.c answers on
 * a free port: the dashboard has its three parts, POST /entries creates an
 * entry and its tags in one transaction and a failing create (unknown tag,
 * unknown author) leaves nothing behind, the feed
 * (server-sent events) receives each new entry, clients that leave the
 * feed cost nothing, and SIGTERM with a feed open ends it and exits 0.
 */
#include <arpa/inet.h>
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

#define MODELS "examples/blog/models.json"
#define MIGRATIONS "examples/blog/migrations"
#define PG_SCHEMA "dorm_blog_test"

static char g_url[PATH_MAX + 1024];
static char g_dbfile[PATH_MAX];
/* A blog server process: its pid, port and log file. */
typedef struct server_proc {
  pid_t pid;
  int port;
  char log[PATH_MAX];
} server_proc;
static server_proc g_main, g_second; /* g_second: PostgreSQL's NOTIFY test */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* build/X beside build/tests/test_blog. */
static void build_path(char *out, size_t cap, const char *rel) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  assert_true(n > 0);
  self[n] = '\0';
  snprintf(out, cap, "%s/%s", dirname(dirname(self)), rel);
}

/* Run a program of the build to the end; its output in a malloc'd
 * string (*out, may be NULL); returns its exit status. */
static int run(char **out, const char *rel, ...) {
  char exe[PATH_MAX], log[] = "/tmp/dorm-blog-out.XXXXXX";
  build_path(exe, sizeof exe, rel);
  const char *argv[16] = {exe};
  int argc = 1;
  va_list ap;
  va_start(ap, rel);
  for (const char *a; (a = va_arg(ap, const char *)) && argc < 15;)
    argv[argc++] = a;
  va_end(ap);
  int fd = mkstemp(log);
  assert_true(fd >= 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  close(fd);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  char *text = dorm_test_read_file(log);
  unlink(log);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) fprintf(stderr, "%s: %s\n", rel, text);
  if (out)
    *out = text;
  else
    free(text);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- in-process queries, to look at the database behind the server ----- */

typedef struct waiter {
  int done, code;
  int64_t n;
} waiter;

static dorm_result wait_ok(dorm_result *r, void *arg) {
  waiter *w = arg;
  w->done = 1;
  w->n = r->kind == DORM_RESULT_COUNT ? r->u.count : 0;
  return dorm_result_none();
}
static dorm_result wait_err(dorm_result *r, void *arg) {
  waiter *w = arg;
  w->done = 1;
  w->code = dorm_result_code(r);
  fprintf(stderr, "query: %s\n", dorm_result_message(r));
  return dorm_result_none();
}
static void set_flag(void *arg) { *(int *)arg = 1; }

/* Run raw statements (no models) on url. */
static void exec_sql(const char *url, const char *const *sql, size_t n) {
  uv_loop_t uv;
  assert_int_equal(uv_loop_init(&uv), 0);
  dorm_loop *loop = dorm_loop_new(&uv);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_db *db = dorm_db_open(loop, url, NULL, &err);
  if (!db) fail_msg("open %s: %s", url, err.message);
  waiter w = {0, 0, 0};
  dorm_deferred_add_callbacks(dorm_async_execute_many(db, sql, n), wait_ok,
                              wait_err, &w);
  while (!w.done) uv_run(&uv, UV_RUN_ONCE);
  int closed = 0;
  dorm_db_close(db, set_flag, &closed);
  while (!closed) uv_run(&uv, UV_RUN_ONCE);
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&uv), 0);
  assert_int_equal(w.code, 0);
}

/* COUNT(*) of model where lookup = value (lookup NULL: every row). */
static int64_t count_of(const char *model, const char *lookup, dorm_value v) {
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_file(MODELS, &err);
  assert_non_null(s);
  uv_loop_t uv;
  assert_int_equal(uv_loop_init(&uv), 0);
  dorm_loop *loop = dorm_loop_new(&uv);
  dorm_db *db = dorm_db_open(loop, g_url, NULL, &err);
  assert_non_null(db);
  dorm_query *q = dorm_select(dorm_schema_model(s, model));
  if (lookup) dorm_filter(q, lookup, v);
  waiter w = {0, 0, 0};
  dorm_deferred_add_callbacks(dorm_async_count(db, q), wait_ok, wait_err, &w);
  dorm_query_free(q);
  while (!w.done) uv_run(&uv, UV_RUN_ONCE);
  int closed = 0;
  dorm_db_close(db, set_flag, &closed);
  while (!closed) uv_run(&uv, UV_RUN_ONCE);
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&uv), 0);
  dorm_schema_free(s);
  assert_int_equal(w.code, 0);
  return w.n;
}

/* ---- the server process ------------------------------------------------- */

static char *read_log(const server_proc *sp) {
  char *t = dorm_test_read_file(sp->log);
  return t ? t : strdup("");
}

static void start_server_proc(server_proc *sp) {
  char exe[PATH_MAX];
  build_path(exe, sizeof exe, "examples/blog/server");
  snprintf(sp->log, sizeof sp->log, "/tmp/dorm-blog-log.XXXXXX");
  int fd = mkstemp(sp->log);
  assert_true(fd >= 0);
  const char *argv[] = {exe, "--db",     g_url,  "--port",
                        "0", "--models", MODELS, NULL};
  sp->pid = fork();
  assert_true(sp->pid >= 0);
  if (sp->pid == 0) {
    dup2(fd, 2);
    int nul = open("/dev/null", O_RDWR);
    dup2(nul, 0);
    dup2(nul, 1);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  close(fd);
  static const char tag[] = "listening on http://127.0.0.1:";
  sp->port = 0;
  for (int i = 0; i < 2000 && !sp->port; i++) {
    char *log = read_log(sp);
    const char *p = strstr(log, tag);
    if (p) sp->port = atoi(p + strlen(tag));
    free(log);
    int st;
    if (!sp->port && waitpid(sp->pid, &st, WNOHANG) == sp->pid) {
      char *l = read_log(sp);
      fprintf(stderr, "%s\n", l);
      free(l);
      sp->pid = 0;
      fail_msg("the blog server exited");
    }
    if (!sp->port) sleep_ms(10);
  }
  assert_true(sp->port > 0);
}

/* SIGTERM and wait: the exit status. */
static int stop_server_proc(server_proc *sp) {
  kill(sp->pid, SIGTERM);
  int st = 0;
  assert_int_equal(waitpid(sp->pid, &st, 0), sp->pid);
  sp->pid = 0;
  char *l = read_log(sp);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fprintf(stderr, "--- server log ---\n%s\n", l);
  free(l);
  unlink(sp->log);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void start_server(void) { start_server_proc(&g_main); }
static int stop_server(void) { return stop_server_proc(&g_main); }

/* ---- a small HTTP client ------------------------------------------------ */

typedef struct client {
  int fd;
  char buf[1 << 16];
  size_t len;
} client;

typedef struct response {
  int status;
  json_t *json;
} response;

static client *cli_new(int port) {
  client *c = calloc(1, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
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

static void cli_send(client *c, const char *s) {
  size_t n = strlen(s);
  while (n) {
    ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static int cli_fill(client *c) {
  if (c->len + 1 >= sizeof c->buf) return 0;
  ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len - 1, 0);
  if (r <= 0) return 0;
  c->len += (size_t)r;
  c->buf[c->len] = '\0';
  return 1;
}

/* Wait until text arrives on c (a stream); 0 if the connection ends. */
static int cli_wait_for(client *c, const char *text) {
  while (!strstr(c->buf, text))
    if (!cli_fill(c)) return 0;
  return 1;
}

/* One request and its answer (with a Content-Length) on a new connection;
 * the status, and the body's JSON in r->json. */
static int call(response *r, const char *method, const char *path,
                const char *body) {
  if (r->json) json_decref(r->json);
  r->json = NULL;
  client *c = cli_new(g_main.port);
  char head[1024];
  snprintf(head, sizeof head,
           "%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n"
           "Content-Type: application/json\r\n\r\n",
           method, path, body ? strlen(body) : 0);
  cli_send(c, head);
  if (body) cli_send(c, body);
  if (!cli_wait_for(c, "\r\n\r\n")) fail_msg("%s %s: no answer", method, path);
  char *start = strstr(c->buf, "\r\n\r\n") + 4;
  assert_int_equal(sscanf(c->buf, "HTTP/1.1 %d", &r->status), 1);
  const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
  assert_non_null(cl);
  size_t n = (size_t)atol(cl + 17);
  while (c->len - (size_t)(start - c->buf) < n)
    if (!cli_fill(c)) fail_msg("%s %s: short body", method, path);
  r->json = json_loadb(start, n, 0, NULL);
  if (!r->json) fail_msg("%s %s: not JSON: %.*s", method, path, (int)n, start);
  if (r->status >= 400) { /* fixed texts: no SQL, no database message */
    assert_true(json_is_string(json_object_get(r->json, "error")));
    static const char *const leaks[] = {"INSERT",   "SELECT", "constraint",
                                        "violates", "sqlite", NULL};
    for (int i = 0; leaks[i]; i++)
      if (strcasestr(start, leaks[i]))
        fail_msg("leaks '%s': %s", leaks[i], start);
  }
  cli_free(c);
  return r->status;
}

/* A feed client of the server on port, once subscribed. */
static client *feed_open_port(int port) {
  client *c = cli_new(port);
  cli_send(c, "GET /feed HTTP/1.1\r\nHost: t\r\n\r\n");
  assert_true(cli_wait_for(c, ": connected"));
  assert_non_null(strstr(c->buf, "HTTP/1.1 200"));
  assert_non_null(strcasestr(c->buf, "content-type: text/event-stream"));
  return c;
}
static client *feed_open(void) { return feed_open_port(g_main.port); }

/* ---- groups: one per database ------------------------------------------ */

/* The demo's steps before the server: migrate, then seed and query. */
static void migrate_and_seed(void) {
  char *out = NULL;
  assert_int_equal(run(&out, "dorm", "migrate", "--migrations", MIGRATIONS,
                       "--db", g_url, (char *)NULL),
                   0);
  assert_non_null(strstr(out, "Applying 0001_initial... OK"));
  free(out);
  assert_int_equal(run(&out, "examples/blog/blog", g_url, MODELS, (char *)NULL),
                   0);
  /* what it printed, and what it stored */
  assert_non_null(strstr(out, "8 creates in flight at once"));
  assert_non_null(strstr(out, "seeded 48 entries"));
  assert_non_null(strstr(out, "entries tagged 'async': 16"));
  assert_non_null(strstr(out, "all entries: 48, average rating"));
  assert_non_null(strstr(out, "total "));
  free(out);
  assert_int_equal(count_of("Author", NULL, dorm_null()), 4);
  assert_int_equal(count_of("Tag", NULL, dorm_null()), 4);
  assert_int_equal(count_of("Entry", NULL, dorm_null()), 48);
}

static int setup_sqlite(void **state) {
  dorm_test_sqlite_temp("dorm-blog-db", g_dbfile, sizeof g_dbfile, g_url,
                        sizeof g_url);
  static int pg = 0;
  *state = &pg;
  migrate_and_seed();
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
  exec_sql(pg, reset, 2);
  snprintf(g_url, sizeof g_url, "%s options=-csearch_path=%s", pg, PG_SCHEMA);
  static int is_pg = 1;
  *state = &is_pg;
  migrate_and_seed();
  return 0;
}

static int teardown_pg(void **state) {
  if (!dorm_test_pg_conninfo()) return 0;
  static const char *const drop[] = {"DROP SCHEMA IF EXISTS " PG_SCHEMA
                                     " CASCADE"};
  exec_sql(dorm_test_pg_conninfo(), drop, 1);
  return 0;
}

/* ---- tests -------------------------------------------------------------- */

/* GET /: the three gathered parts. */
static void test_dashboard(void **state) {
  start_server();
  response r = {0, NULL};
  assert_int_equal(call(&r, "GET", "/", NULL), 200);
  json_t *latest = json_object_get(r.json, "latest");
  assert_int_equal(json_array_size(latest), 5);
  json_t *first = json_array_get(latest, 0);
  /* the newest entry (ordered by -published), its author nested */
  assert_string_equal(json_string_value(json_object_get(first, "headline")),
                      "Thread pools, part 4");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(first, "author"), "name")),
                      "Dee");
  assert_int_equal(json_integer_value(json_object_get(r.json, "authors")), 4);
  json_t *top = json_object_get(r.json, "top_authors");
  assert_int_equal(json_array_size(top), 3);
  double prev = 1e9;
  for (size_t i = 0; i < 3; i++) {
    json_t *a = json_array_get(top, i);
    double avg = json_number_value(json_object_get(a, "avg_rating"));
    assert_true(avg <= prev && avg > 0);
    prev = avg;
    assert_int_equal(json_integer_value(json_object_get(a, "n_entries")), 12);
  }
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(top, 0), "name")),
      "Dee");

  assert_int_equal(call(&r, "POST", "/", "{}"), 405);
  assert_int_equal(call(&r, "GET", "/nope", NULL), 404);
  json_decref(r.json);
  assert_int_equal(stop_server(), 0);
}

/* POST /entries commits the entry and its tags; the feed hears of it. */
static void test_create_and_feed(void **state) {
  start_server();
  client *f1 = feed_open(), *f2 = feed_open();
  response r = {0, NULL};
  assert_int_equal(call(&r, "POST", "/entries",
                        "{\"author\": 2, \"headline\": \"Fresh news\", "
                        "\"body\": \"text\", \"rating\": 4.5, "
                        "\"tags\": [1, 3]}"),
                   201);
  json_int_t id = json_integer_value(json_object_get(r.json, "id"));
  assert_true(id > 48);
  assert_int_equal(json_integer_value(json_object_get(r.json, "author")), 2);
  assert_int_equal(json_array_size(json_object_get(r.json, "tags")), 2);
  /* both feed clients get the event, with the author's row */
  assert_true(cli_wait_for(f1, "Fresh news"));
  assert_true(cli_wait_for(f2, "Fresh news"));
  assert_non_null(strstr(f1->buf, "event: entry\ndata: {"));
  char want[64];
  snprintf(want, sizeof want,
           "{\"id\":%lld,\"author\":{\"id\":2,\"name\":", (long long)id);
  assert_non_null(strstr(f1->buf, want));
  /* stored: the entry and its two tags */
  assert_int_equal(count_of("Entry", "headline", dorm_str("Fresh news")), 1);
  assert_int_equal(count_of("Tag", "entries__headline", dorm_str("Fresh news")),
                   2);
  /* and it is the dashboard's newest */
  assert_int_equal(call(&r, "GET", "/", NULL), 200);
  assert_string_equal(
      json_string_value(json_object_get(
          json_array_get(json_object_get(r.json, "latest"), 0), "headline")),
      "Fresh news");
  /* a tag given twice is one pair, as Django's add() */
  assert_int_equal(call(&r, "POST", "/entries",
                        "{\"author\": 1, \"headline\": \"Twice\", "
                        "\"tags\": [2, 2]}"),
                   201);
  assert_true(cli_wait_for(f1, "Twice"));
  assert_int_equal(count_of("Tag", "entries__headline", dorm_str("Twice")), 1);
  /* an entry without tags */
  assert_int_equal(
      call(&r, "POST", "/entries", "{\"author\": 1, \"headline\": \"Bare\"}"),
      201);
  assert_true(cli_wait_for(f1, "Bare"));
  assert_int_equal(json_array_size(json_object_get(r.json, "tags")), 0);
  json_decref(r.json);
  cli_free(f1);
  cli_free(f2);
  assert_int_equal(stop_server(), 0);
}

/* A failing create rolls back: nothing of it is stored, the feed stays
 * quiet.  Bodies of the wrong shape are 400 before any query. */
static void test_create_rolls_back(void **state) {
  start_server();
  client *f = feed_open();
  response r = {0, NULL};
  int64_t entries = count_of("Entry", NULL, dorm_null());
  static const char *const failing[] = {
      /* tag 99 does not exist: the deferred foreign key fails at COMMIT */
      "{\"author\": 1, \"headline\": \"Doomed 1\", \"tags\": [1, 99]}",
      /* no such author */
      "{\"author\": 999, \"headline\": \"Doomed 3\"}",
  };
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(call(&r, "POST", "/entries", failing[i]), 409);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")),
                        "unknown author or tag");
  }
  static const char *const bad[] = {
      "not json",
      "[1]",
      "{\"headline\": \"x\"}",
      "{\"author\": 1, \"headline\": \"\"}",
      "{\"author\": \"1\", \"headline\": \"x\"}",
      "{\"author\": 1, \"headline\": \"x\", \"tags\": [\"a\"]}",
      "{\"author\": 1, \"headline\": \"x\", \"rating\": \"high\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(call(&r, "POST", "/entries", bad[i]), 400);
  assert_int_equal(call(&r, "GET", "/entries", NULL), 405);
  assert_int_equal(count_of("Entry", NULL, dorm_null()), entries);
  assert_int_equal(
      count_of("Entry", "headline__startswith", dorm_str("Doomed")), 0);
  /* the server still works, and the feed saw none of the failures */
  assert_int_equal(
      call(&r, "POST", "/entries", "{\"author\": 3, \"headline\": \"After\"}"),
      201);
  assert_true(cli_wait_for(f, "After"));
  assert_null(strstr(f->buf, "Doomed"));
  json_decref(r.json);
  cli_free(f);
  assert_int_equal(stop_server(), 0);
}

/* Feed clients that leave cost nothing; SIGTERM ends the open feeds and
 * the server exits 0. */
static void test_feed_clients_leave(void **state) {
  start_server();
  for (int i = 0; i < 5; i++) cli_free(feed_open()); /* gone at once */
  client *f = feed_open();
  response r = {0, NULL};
  assert_int_equal(
      call(&r, "POST", "/entries", "{\"author\": 4, \"headline\": \"Still\"}"),
      201);
  assert_true(cli_wait_for(f, "Still"));
  assert_int_equal(call(&r, "GET", "/", NULL), 200);
  json_decref(r.json);
  assert_int_equal(stop_server(), 0); /* with f still subscribed */
  while (cli_fill(f)) {
  }
  /* the stream was ended properly: the last chunk, then the close */
  assert_true(f->len >= 5);
  assert_memory_equal(f->buf + f->len - 5, "0\r\n\r\n", 5);
  cli_free(f);
}

/* PostgreSQL: the feed is LISTEN/NOTIFY, so it crosses processes: an
 * entry posted to one server reaches the feed of another, and a NOTIFY
 * sent by anyone (here a plain SQL client) is announced too. */
static void test_notify_across_servers(void **state) {
  if (!*(int *)*state) skip(); /* SQLite: no LISTEN */
  start_server();
  start_server_proc(&g_second);
  client *mine = feed_open(), *other = feed_open_port(g_second.port);
  response r = {0, NULL};
  assert_int_equal(call(&r, "POST", "/entries",
                        "{\"author\": 1, \"headline\": \"Cross talk\"}"),
                   201);
  assert_true(cli_wait_for(other, "Cross talk")); /* through NOTIFY only */
  assert_true(cli_wait_for(mine, "Cross talk"));
  /* exactly once each: NOTIFY, and no in-process announcement besides */
  assert_null(strstr(strstr(mine->buf, "Cross talk") + 1, "Cross talk"));
  /* a NOTIFY from outside the servers, with an existing entry's id */
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT pg_notify('blog_entries', '%lld')",
           (long long)json_integer_value(json_object_get(r.json, "id")) - 1);
  const char *const notify[] = {sql};
  exec_sql(g_url, notify, 1);
  assert_true(cli_wait_for(other, "event: entry\ndata: {\"id\":"));
  assert_true(cli_wait_for(other, "Still")); /* the previous test's entry */
  json_decref(r.json);
  cli_free(mine);
  cli_free(other);
  assert_int_equal(stop_server_proc(&g_second), 0);
  assert_int_equal(stop_server(), 0);
}

/* PostgreSQL: the listening connection is killed; dorm restores it and the
 * feed is told of the gap, then hears new entries again. */
static void test_notify_gap(void **state) {
  if (!*(int *)*state) skip();
  start_server();
  client *f = feed_open();
  static const char *const kill_listener[] = {
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE query LIKE 'LISTEN %blog_entries%' AND pid <> pg_backend_pid()"};
  exec_sql(g_url, kill_listener, 1);
  assert_true(cli_wait_for(f, "event: gap\n"));
  response r = {0, NULL};
  assert_int_equal(
      call(&r, "POST", "/entries", "{\"author\": 2, \"headline\": \"Back\"}"),
      201);
  assert_true(cli_wait_for(f, "Back"));
  json_decref(r.json);
  cli_free(f);
  assert_int_equal(stop_server(), 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dashboard),
      cmocka_unit_test(test_create_and_feed),
      cmocka_unit_test(test_create_rolls_back),
      cmocka_unit_test(test_feed_clients_leave),
      cmocka_unit_test(test_notify_across_servers),
      cmocka_unit_test(test_notify_gap),
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
