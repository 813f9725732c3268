/* SPDX-License-Identifier: MIT */
/* tests/test_alloc.c — every allocation fails once, operation by operation.
 *
 * An allocator that fails the Nth allocation (tests/support) is installed
 * with dorm_set_allocator, which routes jansson through it too; for N = 1,
 * 2, ... until the operation succeeds, each operation must come back with a
 * clean DORM_ENOMEM (or, for HTTP, a 500 or a closed connection): no crash,
 * no leak (LSan in the SAN=1 build, valgrind), and when it succeeds, exactly
 * the result it gives with no failure (so nothing went missing silently).
 * The operations are the ones an application runs: loading a realistic
 * models.json; building and compiling queries with joins, Q objects and
 * order_by for both dialects; parsing a migration and computing its SQL,
 * and detecting the migration of a whole models file (makemigrations) and
 * computing its SQL; parsing an HTTP request and answering it; and, on a
 * real SQLite database, `dorm serve`'s multi-step many_to_many write and
 * read (tools/serve/serve_m2m.c, linked in-process) inside a transaction.  Each
 * test prints the N it reached (docs/testing.md, "Allocation failure", records
 * them).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base_int.h"
#include "dbtest.h"
#include "dorm/migration.h"
#include "support/support.h"
#include "tools/cli.h"
#include "tools/serve/serve.h"

#define MAX_N 200000

static char *read_or_fail(const char *path) {
  char *t = dorm_test_read_file(path);
  if (!t) fail_msg("cannot read %s", path);
  return t;
}

static dorm_schema *load_schema(const char *path) {
  char *text = read_or_fail(path);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_string(text, path, &err);
  if (!s) fail_msg("%s: %s", path, err.message);
  free(text);
  return s;
}

/* ---- models.json ----------------------------------------------------------
 */

static void test_load_models(void **state) {
  (void)state;
  char *text = read_or_fail("tests/data/blog_models.json");
  long n;
  for (n = 1; n < MAX_N; n++) {
    dorm_error err;
    dorm_error_clear(&err);
    dorm_test_fail_alloc_at(n);
    dorm_schema *s = dorm_schema_load_string(text, "blog_models.json", &err);
    dorm_test_alloc_reset();
    if (s) {
      assert_non_null(dorm_schema_model(s, "Comment"));
      dorm_schema_free(s);
      break;
    }
    /* jansson's own failures too: never a syntax or schema error */
    if (err.code != DORM_ENOMEM)
      fail_msg("allocation %ld: %s %s", n, dorm_err_name(err.code),
               err.message);
  }
  assert_true(n > 50 && n < MAX_N);
  printf("load blog_models.json: succeeded at N = %ld\n", n);
  free(text);
}

/* ---- queries --------------------------------------------------------------
 */

static dorm_schema *g_blog;

/* Entries with joins (a foreign key, a many_to_many, select_related), Q
 * objects and order_by through a relation. */
static dorm_query *entries_query(void) {
  const dorm_model *entry = dorm_schema_model(g_blog, "Entry");
  dorm_query *q = dorm_select(entry);
  if (!q) return NULL;
  dorm_filter(q, "author__name__icontains", dorm_str("ann"));
  dorm_filter_q(
      q,
      dorm_q_or(
          q,
          dorm_Q(q, "tags__name__in",
                 dorm_list((dorm_value[]){dorm_str("c"), dorm_str("db")}, 2)),
          dorm_q_not(q, dorm_Q(q, "rating__lt", dorm_float(2.5)))));
  dorm_exclude_q(q, dorm_q_and(q, dorm_Q(q, "status", dorm_str("draft")),
                               dorm_Q(q, "author__age__gte", dorm_int(70))));
  dorm_select_related(q, "author");
  dorm_order_by(q, "-author__name");
  dorm_order_by(q, "pub_date");
  return q;
}

/* Comments: a self relation two deep, an annotation, a slice. */
static dorm_query *comments_query(void) {
  const dorm_model *c = dorm_schema_model(g_blog, "Comment");
  dorm_query *q = dorm_select(c);
  if (!q) return NULL;
  dorm_filter(q, "parent__entry__author__country", dorm_str("NZ"));
  dorm_filter_q(q, dorm_q_or(q, dorm_Q(q, "approved", dorm_bool(1)),
                             dorm_Q(q, "parent__isnull", dorm_bool(1))));
  dorm_select_related(q, "entry__author");
  dorm_order_by(q, "-posted_at");
  dorm_slice(q, 40, 60);
  return q;
}

static void test_queries(void **state) {
  (void)state;
  g_blog = load_schema("tests/data/blog_models.json");
  dorm_query *(*builders[])(void) = {entries_query, comments_query};
  const char *names[] = {"entries", "comments"};
  for (size_t b = 0; b < 2; b++) {
    for (int dl = 0; dl < 2; dl++) {
      dorm_dialect d = dl ? DORM_DIALECT_SQLITE : DORM_DIALECT_POSTGRES;
      /* the reference, with no failure */
      dorm_query *q = builders[b]();
      dorm_sql ref;
      dorm_sql_init(&ref);
      assert_int_equal(dorm_compile(q, d, &ref, NULL), 0);
      dorm_query_free(q);
      long n;
      for (n = 1; n < MAX_N; n++) {
        dorm_test_fail_alloc_at(n);
        q = builders[b]();
        dorm_sql out;
        dorm_sql_init(&out);
        dorm_error err;
        dorm_error_clear(&err);
        int rc = q ? dorm_compile(q, d, &out, &err) : DORM_ENOMEM;
        dorm_test_alloc_reset();
        if (rc == 0) {
          assert_string_equal(out.text, ref.text);
          assert_int_equal(out.nparams, ref.nparams);
        } else {
          if (rc != DORM_ENOMEM)
            fail_msg("%s, allocation %ld: %s %s", names[b], n,
                     dorm_err_name(rc), err.message);
          assert_int_equal(out.len, 0);
        }
        dorm_sql_free(&out);
        dorm_query_free(q);
        if (rc == 0) break;
      }
      assert_true(n < MAX_N);
      printf("query %s (%s): succeeded at N = %ld\n", names[b],
             dl ? "sqlite" : "postgresql", n);
      dorm_sql_free(&ref);
    }
  }
  dorm_schema_free(g_blog);
}

/* ---- migrations -----------------------------------------------------------
 */

/* Every statement of the operations ops, run through state st (advanced),
 * joined with ";\n"; the error code otherwise. */
static int ops_sql(dorm_mstate *st, const json_t *ops, dorm_dialect d,
                   dorm__buf *out, dorm_error *err) {
  for (size_t i = 0; i < json_array_size(ops); i++) {
    dorm_ddl ddl;
    dorm_ddl_init(&ddl);
    int rc = dorm_migration_op_sql(st, json_array_get(ops, i), d, &ddl, err);
    for (size_t s = 0; !rc && s < ddl.n; s++) {
      dorm__buf_puts(out, ddl.stmts[s]);
      dorm__buf_puts(out, ";\n");
    }
    dorm_ddl_free(&ddl);
    if (rc) return rc;
  }
  return out->oom ? dorm_error_set(err, DORM_ENOMEM, NULL) : 0;
}

/* op 0: parse examples/blog's first migration and compute its SQL.
 * op 1: detect the migration of tests/data/blog_models.json from nothing
 * (makemigrations: autodetector, canonical JSON) and compute its SQL. */
static int migration_op(int op, const char *text, const dorm_schema *to,
                        dorm_dialect d, char **sql, dorm_error *err) {
  dorm_mstate *st = dorm_mstate_new();
  if (!st) return dorm_error_set(err, DORM_ENOMEM, NULL);
  dorm__buf out;
  dorm__buf_init(&out);
  int rc;
  if (op == 0) {
    dorm_migration m;
    rc = dorm_migration_parse(text, strlen(text), "0001_initial.json", &m, err);
    if (!rc) {
      rc = ops_sql(st, m.ops, d, &out, err);
      dorm_migration_clear(&m);
    }
  } else {
    json_t *notes = NULL;
    json_t *ops = dorm_autodetect(NULL, to, NULL, &notes, err);
    rc = ops ? ops_sql(st, ops, d, &out, err) : err->code;
    json_decref(ops);
    json_decref(notes);
  }
  dorm_mstate_free(st);
  if (!rc) {
    *sql = strdup(dorm__buf_cstr(&out));
    if (!*sql) rc = DORM_ENOMEM;
  }
  dorm__buf_free(&out);
  return rc;
}

static void test_migrations(void **state) {
  (void)state;
  char *text = read_or_fail("examples/blog/migrations/0001_initial.json");
  dorm_schema *to = load_schema("tests/data/blog_models.json");
  const char *names[] = {"parse 0001_initial.json + SQL",
                         "autodetect blog_models.json + SQL"};
  for (int op = 0; op < 2; op++) {
    for (int dl = 0; dl < 2; dl++) {
      dorm_dialect d = dl ? DORM_DIALECT_SQLITE : DORM_DIALECT_POSTGRES;
      char *ref = NULL;
      dorm_error err;
      dorm_error_clear(&err);
      if (migration_op(op, text, to, d, &ref, &err))
        fail_msg("%s: %s", names[op], err.message);
      assert_non_null(strstr(ref, "CREATE INDEX")); /* indexes are there */
      for (int once = 0; once < 2; once++) {
        long n, recovered = 0;
        for (n = 1; n < MAX_N; n++) {
          char *sql = NULL;
          dorm_error_clear(&err);
          if (once)
            dorm_test_fail_alloc_once(n);
          else
            dorm_test_fail_alloc_at(n);
          int rc = migration_op(op, text, to, d, &sql, &err);
          long used = dorm_test_alloc_count();
          dorm_test_alloc_reset();
          if (!rc) {
            /* nothing left out: the same statements as without failure */
            if (strcmp(sql, ref))
              fail_msg(
                  "%s, allocation %ld%s: succeeded with\n%s\ninstead "
                  "of\n%s",
                  names[op], n, once ? " alone" : "", sql, ref);
            free(sql);
            if (used >= n) recovered++;
          } else {
            if (rc != DORM_ENOMEM)
              fail_msg("%s, allocation %ld: %s %s", names[op], n,
                       dorm_err_name(rc), err.message);
            assert_null(sql);
          }
          if (once ? used < n : !rc) break;
        }
        assert_true(n < MAX_N);
        printf("migration %s (%s), %s: done at N = %ld (%ld recovered)\n",
               names[op], dl ? "sqlite" : "postgresql",
               once ? "only allocation N fails" : "allocations N.. fail", n,
               recovered);
      }
      free(ref);
    }
  }
  dorm_schema_free(to);
  free(text);
}

/* ---- jansson's builders, one failure -------------------------------------
 *
 * The sweeps above fail every allocation from N on, jansson's included;
 * jansson's parser does not survive a single failure followed by
 * successes (tests/support), but its builders (json_object_set_new,
 * json_array_append_new, json_pack, json_deep_copy) must: this fails only
 * jansson's Nth allocation while dorm writes a schema as JSON and detects
 * the migration of a whole models file — no parsing in either — and the
 * result must be a clean DORM_ENOMEM or exactly the reference (no index
 * or operation left out). */

static long g_jfail_at, g_jcount;

static void *json_fail_once(size_t n) {
  return ++g_jcount == g_jfail_at ? NULL : malloc(n);
}

static void test_jansson_builders_once(void **state) {
  (void)state;
  dorm_schema *to = load_schema("tests/data/blog_models.json");
  json_t *ref_doc = dorm_schema_to_json(to);
  json_t *ref_ops = dorm_autodetect(NULL, to, NULL, NULL, NULL);
  assert_non_null(ref_doc);
  assert_non_null(ref_ops);
  for (int what = 0; what < 2; what++) {
    long n;
    for (n = 1; n < MAX_N; n++) {
      dorm_error err;
      dorm_error_clear(&err);
      g_jfail_at = n;
      g_jcount = 0;
      json_set_alloc_funcs(json_fail_once, free);
      json_t *got = what ? dorm_autodetect(NULL, to, NULL, NULL, &err)
                         : dorm_schema_to_json(to);
      json_set_alloc_funcs(malloc, free);
      long used = g_jcount;
      if (got) {
        if (!json_equal(got, what ? ref_ops : ref_doc)) {
          FILE *f = fopen("/tmp/dorm-test-alloc-got.json", "w");
          json_dumpf(got, f, JSON_INDENT(1));
          fclose(f);
          f = fopen("/tmp/dorm-test-alloc-want.json", "w");
          json_dumpf(what ? ref_ops : ref_doc, f, JSON_INDENT(1));
          fclose(f);
          fail_msg(
              "jansson allocation %ld: succeeded with another result "
              "(/tmp/dorm-test-alloc-{got,want}.json)",
              n);
        }
        json_decref(got);
      } else if (what && err.code != DORM_ENOMEM) {
        fail_msg("jansson allocation %ld: %s %s", n, dorm_err_name(err.code),
                 err.message);
      }
      if (used < n) break; /* past the last one */
    }
    printf("%s, only jansson's allocation N fails: done at N = %ld\n",
           what ? "autodetect blog_models.json" : "blog_models.json as JSON",
           n);
  }
  json_decref(ref_doc);
  json_decref(ref_ops);
  dorm_schema_free(to);
}

/* ---- HTTP -----------------------------------------------------------------
 */

static int g_handled;
static long g_n; /* the failing allocation, for messages */

static void echo_handler(dorm_http_request *req, dorm_http_response *res,
                         void *arg) {
  (void)arg;
  g_handled++;
  const dorm_http_param *p = dorm_http_request_param(req, "q");
  const char *h = dorm_http_request_header(req, "x-test");
  dorm_http_response_header(res, "X-Echo", "yes");
  dorm_http_respond_json(res, 200,
                         json_pack("{s:s, s:s?, s:s?, s:s%}", "path", req->path,
                                   "q", p ? p->value : NULL, "x-test", h,
                                   "body", req->body, req->body_len));
}

static int connect_port(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}

/* Run the loop until the client has a whole response or EOF.  Returns the
 * status, or 0 when the connection closed without one. */
static int exchange(int fd, const char *req, char *buf, size_t cap) {
  size_t len = strlen(req), got = 0;
  assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
  uint64_t start = uv_hrtime();
  for (;;) {
    uv_run(&T_uv, UV_RUN_NOWAIT);
    ssize_t r = recv(fd, buf + got, cap - 1 - got, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;
    if (r > 0) {
      got += (size_t)r;
      buf[got] = '\0';
      char *end = strstr(buf, "\r\n\r\n");
      const char *cl = strcasestr(buf, "content-length:");
      if (end && cl && got >= (size_t)(end + 4 - buf) + (size_t)atol(cl + 15))
        break;
    } else {
      usleep(100);
    }
    if (uv_hrtime() - start > 5000000000ull)
      fail_msg("no answer in 5 s (allocation %ld)", g_n);
  }
  buf[got] = '\0';
  int status = 0;
  if (got > 12) sscanf(buf, "HTTP/1.1 %d", &status);
  return status;
}

static void test_http_request(void **state) {
  (void)state;
  t_loop_open();
  dorm_http_options o;
  dorm_http_options_init(&o);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_http_server *s =
      dorm_http_server_new(T_loop, &o, echo_handler, NULL, &err);
  assert_non_null(s);
  assert_int_equal(dorm_http_server_listen(s, "127.0.0.1", 0, &err), 0);
  int port = dorm_http_server_port(s);
  static const char req[] =
      "POST /api/entry/7?q=a%20b&x=1&y= HTTP/1.1\r\n"
      "Host: localhost\r\n"
      "X-Test: hello\r\n"
      "Content-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n"
      "\r\n"
      "6\r\n{\"a\": \r\n3\r\n12}\r\n0\r\n\r\n";
  static const char want[] =
      "{\"path\":\"/api/entry/7\",\"q\":\"a b\","
      "\"x-test\":\"hello\",\"body\":\"{\\\"a\\\": 12}\"}";
  char buf[8192];
  long n;
  int statuses[600] = {0};
  for (n = 1; n < MAX_N; n++) {
    g_n = n;
    int fd = connect_port(port);
    dorm_test_fail_alloc_at(n);
    int st = exchange(fd, req, buf, sizeof buf);
    dorm_test_alloc_reset();
    close(fd);
    /* let the server see the close and free the connection */
    for (int i = 0; i < 50 && dorm_http_server_connections(s); i++) {
      uv_run(&T_uv, UV_RUN_NOWAIT);
      usleep(200);
    }
    assert_int_equal(dorm_http_server_connections(s), 0);
    if (st >= 0 && st < 600) statuses[st]++;
    if (st == 200) {
      const char *body = strstr(buf, "\r\n\r\n");
      assert_non_null(body);
      if (strcmp(body + 4, want))
        fail_msg("allocation %ld: the answer was\n%s", n, buf);
      assert_non_null(strcasestr(buf, "X-Echo: yes"));
      break;
    }
    /* out of memory: the connection closed, or a bare 500 */
    if (st != 0 && st != 500) fail_msg("allocation %ld: status %d", n, st);
  }
  assert_true(n > 5 && n < MAX_N);
  printf("http request: succeeded at N = %ld (%d closed, %d answered 500)\n", n,
         statuses[0], statuses[500]);
  dorm_http_server_close(s, NULL, NULL);
  uv_run(&T_uv, UV_RUN_DEFAULT);
  t_loop_close(NULL);
}

/* ---- serve's many_to_many steps on SQLite ---------------------------------
 */

static int g_unhandled;

static void count_unhandled(const dorm_result *r, void *arg) {
  (void)r;
  (void)arg;
  g_unhandled++;
}

typedef struct m2m_ctx {
  const dorm_model *post;
  json_t *obj; /* {"id": 1}: gets "tags" and "labels" */
  serve_m2m_input in;
  serve_m2m_want want;
} m2m_ctx;

static dorm_db *g_tx;

/* tx_fill in tools/serve/serve_api.c: read back what was set, on the
 * transaction. */
static dorm_result fill_on_tx(dorm_result *r, void *arg) {
  m2m_ctx *c = arg;
  dorm_deferred *d = NULL;
  (void)r;
  int rc = serve_m2m_fill(g_tx, c->post, c->obj, &c->want, &d);
  if (rc < 0) return dorm_result_error(DORM_ENOMEM, "out of memory");
  return rc ? dorm_result_deferred(d) : dorm_result_none();
}

/* tx_row in tools/serve/serve_api.c: set both relations, then read them. */
static dorm_deferred *m2m_block(dorm_db *tx, void *arg) {
  m2m_ctx *c = arg;
  g_tx = tx;
  dorm_deferred *d = serve_m2m_apply(tx, c->post, c->obj, &c->in, 0);
  if (d && dorm_deferred_add_callback(d, fill_on_tx, c) != 0) {
    dorm_deferred_cancel(d);
    return NULL;
  }
  return d;
}

static void m2m_exec(dorm_db *db, const char *sql) {
  dorm_result r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  dorm_result_free(&r);
}

static long m2m_scalar(dorm_db *db, const char *sql) {
  dorm_result r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  const dorm_row *row = dorm_result_row_of(&r);
  assert_non_null(row);
  long v = (long)dorm_row_value_at(row, 0)->u.i;
  dorm_result_free(&r);
  return v;
}

static void test_serve_m2m_sqlite(void **state) {
  (void)state;
  t_loop_open();
  dorm_set_unhandled_error_hook(count_unhandled, NULL);
  char path[256], url[300];
  dorm_test_sqlite_temp("dorm-test-alloc", path, sizeof path, url, sizeof url);
  dorm_schema *s = load_schema("tests/data/serve_m2m_models.json");
  dorm_db *db = t_open_ready(url, NULL);
  static const char *const models[] = {"Tag", "Label", "Post", NULL};
  t_create_tables(db, s, models);
  m2m_exec(db,
           "INSERT INTO tag (id, name) VALUES (1, 'a'), (2, 'b'), "
           "(3, 'c')");
  m2m_exec(db, "INSERT INTO label (code) VALUES ('x'), ('y')");
  m2m_exec(db, "INSERT INTO post (id, title) VALUES (1, 'p')");
  m2m_ctx c;
  memset(&c, 0, sizeof c);
  c.post = dorm_schema_model(s, "Post");
  c.in.fields[0] = dorm_model_field(c.post, "tags");
  c.in.fields[1] = dorm_model_field(c.post, "labels");
  c.in.keys[0] = json_pack("[iii]", 3, 1, 2);
  c.in.keys[1] = json_pack("[ss]", "y", "x");
  c.in.n = 2;
  serve_m2m_want_all(c.post, &c.want);
  assert_int_equal(c.want.n, 2);
  for (int once = 0; once < 2; once++) {
    long n, enomem = 0, recovered = 0;
    for (n = 1; n < MAX_N; n++) {
      /* each try starts from no pairs */
      m2m_exec(db, "DELETE FROM post_tags");
      m2m_exec(db, "DELETE FROM post_labels");
      c.obj = json_pack("{si}", "id", 1);
      t_wait w = {0, dorm_result_none()};
      if (once)
        dorm_test_fail_alloc_once(n);
      else
        dorm_test_fail_alloc_at(n);
      dorm_deferred *d = dorm_async_atomic(db, m2m_block, &c);
      /* the test's own step must be accepted to see the end */
      dorm_test_alloc_pause(1);
      if (d) assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
      dorm_test_alloc_pause(0);
      while (d && !w.done) uv_run(&T_uv, UV_RUN_ONCE);
      long used = dorm_test_alloc_count();
      dorm_test_alloc_reset();
      int ok = d && !dorm_result_is_error(&w.res);
      long pairs = m2m_scalar(db,
                              "SELECT (SELECT count(*) FROM post_tags) * 10 "
                              "+ (SELECT count(*) FROM post_labels)");
      if (ok) {
        if (pairs != 32) {
          char *j = json_dumps(c.obj, JSON_COMPACT);
          fail_msg("allocation %ld: success (kind %d) with pairs %ld, %s", n,
                   w.res.kind, pairs, j);
        }
        char *got = json_dumps(c.obj, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(
            got, "{\"id\":1,\"labels\":[\"x\",\"y\"],\"tags\":[1,2,3]}");
        free(got);
        if (used >= n) recovered++; /* a failure, and yet all of it done */
      } else {
        int code = d ? dorm_result_code(&w.res) : DORM_ENOMEM;
        if (code != DORM_ENOMEM)
          fail_msg("allocation %ld: %s %s", n, dorm_err_name(code),
                   dorm_result_message(&w.res));
        assert_int_equal(pairs, 0); /* rolled back */
        enomem++;
      }
      dorm_result_free(&w.res);
      json_decref(c.obj);
      /* every allocation from N on fails: done at the first success; only
       * the Nth fails: done once N is past the run's allocations */
      if (once ? used < n : ok) break;
    }
    assert_true(n > 10 && n < MAX_N);
    printf(
        "serve many_to_many set+read (sqlite), %s: done at N = %ld "
        "(%ld DORM_ENOMEM, %ld recovered, %d unhandled errors reported)\n",
        once ? "only allocation N fails" : "allocations N.. fail", n, enomem,
        recovered, g_unhandled);
  }
  serve_m2m_input_free(&c.in);
  dorm_set_unhandled_error_hook(NULL, NULL);
  t_loop_close(db);
  dorm_schema_free(s);
  dorm_test_sqlite_remove(path);
}

/* ---- the facade's multi-step paths on SQLite -----------------------------
 *
 * get_or_create (a transaction, a get, an insert in a nested block),
 * bulk_create (chunked in a transaction), many_to_many set (a transaction
 * of a delete and an insert) and a select with prefetch_related (a query
 * per relation, chained): each is a chain of steps the backend adds to
 * deferreds it made, and a failed add must neither leak nor free what a
 * step still uses. */

static const dorm_schema *g_fs;

static dorm_deferred *facade_start(dorm_db *db, int op) {
  const dorm_model *tag = dorm_schema_model(g_fs, "Tag");
  const dorm_model *post = dorm_schema_model(g_fs, "Post");
  switch (op) {
    case 0: {
      dorm_kv look = {"name", dorm_str("new")};
      return dorm_async_get_or_create(db, tag, &look, 1, NULL, 0);
    }
    case 1: {
      dorm_query *q = dorm_insert(post);
      if (!q) return NULL;
      for (int i = 0; i < 3; i++) {
        if (i) dorm_insert_next_row(q);
        dorm_set(q, "title", dorm_str("bulk"));
      }
      dorm_deferred *d = dorm_async_bulk_create(db, q);
      dorm_query_free(q);
      return d;
    }
    case 2: {
      dorm_value keys[] = {dorm_int(2), dorm_int(3)};
      return dorm_async_m2m_set(db, post, "tags", dorm_int(1), keys, 2);
    }
    default: {
      dorm_query *q = dorm_select(post);
      if (!q) return NULL;
      dorm_prefetch_related(q, "tags");
      dorm_prefetch_related(q, "labels");
      dorm_deferred *d = dorm_async_filter(db, q);
      dorm_query_free(q);
      return d;
    }
  }
}

/* What the database holds that op changes, as one number. */
static long facade_state(dorm_db *db, int op) {
  switch (op) {
    case 0:
      return m2m_scalar(db, "SELECT count(*) FROM tag WHERE name = 'new'");
    case 1:
      return m2m_scalar(db, "SELECT count(*) FROM post WHERE title = 'bulk'");
    case 2:
      return m2m_scalar(db,
                        "SELECT count(*) * 100 + sum(tag_id) FROM post_tags");
    default: return 0;
  }
}

static void facade_reset(dorm_db *db) {
  m2m_exec(db, "DELETE FROM tag WHERE name = 'new'");
  m2m_exec(db, "DELETE FROM post WHERE title = 'bulk'");
  m2m_exec(db, "DELETE FROM post_tags");
  m2m_exec(db, "INSERT INTO post_tags (post_id, tag_id) VALUES (1, 1)");
}

static void test_facade_sqlite(void **state) {
  (void)state;
  static const char *const names[] = {"get_or_create", "bulk_create", "m2m set",
                                      "filter + prefetch_related"};
  t_loop_open();
  dorm_set_unhandled_error_hook(count_unhandled, NULL);
  char path[256], url[300];
  dorm_test_sqlite_temp("dorm-test-alloc-f", path, sizeof path, url,
                        sizeof url);
  dorm_schema *s = load_schema("tests/data/serve_m2m_models.json");
  g_fs = s;
  dorm_db *db = t_open_ready(url, NULL);
  static const char *const models[] = {"Tag", "Label", "Post", NULL};
  t_create_tables(db, s, models);
  m2m_exec(db,
           "INSERT INTO tag (id, name) VALUES (1, 'a'), (2, 'b'), "
           "(3, 'c')");
  m2m_exec(db, "INSERT INTO label (code) VALUES ('x')");
  m2m_exec(db, "INSERT INTO post (id, title) VALUES (1, 'p')");
  m2m_exec(db, "INSERT INTO post_labels (post_id, label_id) VALUES (1, 'x')");
  /* before and after a successful run */
  static const long before[] = {0, 0, 101, 0}, after[] = {1, 3, 205, 0};
  for (int op = 0; op < 4; op++) {
    for (int once = 0; once < 2; once++) {
      long n, enomem = 0, recovered = 0;
      for (n = 1; n < MAX_N; n++) {
        facade_reset(db);
        t_wait w = {0, dorm_result_none()};
        if (once)
          dorm_test_fail_alloc_once(n);
        else
          dorm_test_fail_alloc_at(n);
        dorm_deferred *d = facade_start(db, op);
        dorm_test_alloc_pause(1);
        if (d) assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
        dorm_test_alloc_pause(0);
        while (d && !w.done) uv_run(&T_uv, UV_RUN_ONCE);
        long used = dorm_test_alloc_count();
        dorm_test_alloc_reset();
        int ok = d && !dorm_result_is_error(&w.res);
        long st = facade_state(db, op);
        if (ok) {
          if (st != after[op])
            fail_msg("%s, allocation %ld: success, and the state is %ld",
                     names[op], n, st);
          if (op == 3) { /* both relations read for the one post */
            const dorm_rows *rows = dorm_result_rows_of(&w.res);
            assert_non_null(rows);
            assert_int_equal(dorm_rows_count(rows), 1);
            const dorm_row *row = dorm_rows_row(rows, 0);
            assert_int_equal(dorm_rows_count(dorm_row_prefetched(row, "tags")),
                             1);
            assert_int_equal(
                dorm_rows_count(dorm_row_prefetched(row, "labels")), 1);
          }
          if (used >= n) recovered++;
        } else {
          int code = d ? dorm_result_code(&w.res) : DORM_ENOMEM;
          if (code != DORM_ENOMEM)
            fail_msg("%s, allocation %ld: %s %s", names[op], n,
                     dorm_err_name(code), dorm_result_message(&w.res));
          if (st != before[op])
            fail_msg("%s, allocation %ld: failed, and the state is %ld",
                     names[op], n, st);
          enomem++;
        }
        dorm_result_free(&w.res);
        if (once ? used < n : ok) break;
      }
      assert_true(n < MAX_N);
      printf(
          "%s (sqlite), %s: done at N = %ld (%ld DORM_ENOMEM, %ld "
          "recovered)\n",
          names[op], once ? "only allocation N fails" : "allocations N.. fail",
          n, enomem, recovered);
    }
  }
  dorm_set_unhandled_error_hook(NULL, NULL);
  t_loop_close(db);
  dorm_schema_free(s);
  dorm_test_sqlite_remove(path);
}

/* ---- dorm_async_migrate on SQLite ------------------------------------------
 */

static long mig_applied(dorm_db *db) {
  dorm_result r = t_ok(
      dorm_async_execute(db, "SELECT count(*) FROM dorm_migrations", NULL, 0));
  const dorm_rows *rows = dorm_result_rows_of(&r);
  assert_non_null(rows);
  long v = (long)dorm_row_value_at(dorm_rows_row(rows, 0), 0)->u.i;
  dorm_result_free(&r);
  return v;
}

/* Every allocation of a migrate (loading the folder, the plan, the SQL,
 * the transaction) fails in turn: the deferred fires once, with
 * DORM_ENOMEM or with the migration done, and nothing leaks. */
static void test_migrate_sqlite(void **state) {
  (void)state;
  char path[256], url[300], dir[256], file[300];
  dorm_test_sqlite_temp("dorm-test-alloc-migrate", path, sizeof path, url,
                        sizeof url);
  snprintf(dir, sizeof dir, "/tmp/dorm-test-alloc-mig.%ld", (long)getpid());
  mkdir(dir, 0700);
  snprintf(file, sizeof file, "%s/0001_initial.json", dir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fputs(
      "{\"name\": \"0001_initial\", \"dependencies\": [], "
      "\"operations\": [{\"op\": \"create_model\", \"name\": \"A\", "
      "\"table\": \"a\", \"fields\": [{\"name\": \"id\", \"type\": "
      "\"auto\", \"primary_key\": true}, {\"name\": \"n\", \"type\": "
      "\"integer\", \"default\": 0}]}]}\n",
      f);
  fclose(f);
  t_loop_open();
  dorm_set_unhandled_error_hook(count_unhandled, NULL);
  dorm_db *db = t_open_ready(url, NULL);
  for (int once = 0; once < 2; once++) {
    long n, enomem = 0;
    for (n = 1; n < MAX_N; n++) {
      /* each try starts from nothing applied */
      dorm_result z = t_ok(dorm_async_migrate(db, dir, "zero", NULL));
      dorm_result_free(&z);
      t_wait w = {0, dorm_result_none()};
      if (once)
        dorm_test_fail_alloc_once(n);
      else
        dorm_test_fail_alloc_at(n);
      dorm_deferred *d = dorm_async_migrate(db, dir, NULL, NULL);
      dorm_test_alloc_pause(1);
      if (d) assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
      dorm_test_alloc_pause(0);
      while (d && !w.done) uv_run(&T_uv, UV_RUN_ONCE);
      long used = dorm_test_alloc_count();
      dorm_test_alloc_reset();
      int ok = d && !dorm_result_is_error(&w.res);
      if (ok) {
        assert_int_equal(w.res.kind, DORM_RESULT_COUNT);
        assert_int_equal(w.res.u.count, 1);
        assert_int_equal(mig_applied(db), 1);
      } else {
        int code = d ? dorm_result_code(&w.res) : DORM_ENOMEM;
        if (code != DORM_ENOMEM)
          fail_msg("allocation %ld: %s %s", n, dorm_err_name(code),
                   dorm_result_message(&w.res));
        enomem++;
      }
      dorm_result_free(&w.res);
      if (once ? used < n : ok) break;
    }
    assert_true(n > 10 && n < MAX_N);
    printf(
        "dorm_async_migrate (sqlite), %s: done at N = %ld (%ld "
        "DORM_ENOMEM)\n",
        once ? "only allocation N fails" : "allocations N.. fail", n, enomem);
  }
  dorm_set_unhandled_error_hook(NULL, NULL);
  t_loop_close(db);
  unlink(file);
  rmdir(dir);
  dorm_test_sqlite_remove(path);
}

int main(void) {
  (void)t_count; /* dbtest.h's, unused here */
  (void)t_err;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_models),
      cmocka_unit_test(test_queries),
      cmocka_unit_test(test_migrations),
      cmocka_unit_test(test_jansson_builders_once),
      cmocka_unit_test(test_http_request),
      cmocka_unit_test(test_serve_m2m_sqlite),
      cmocka_unit_test(test_facade_sqlite),
      cmocka_unit_test(test_migrate_sqlite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
