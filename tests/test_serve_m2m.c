/* SPDX-License-Identifier: MIT */
/* tests/test_serve_m2m.c — `dorm serve` through a real socket, many_to_many
 * fields over HTTP, and one query per page for their keys (read from
 * PostgreSQL's statement log).
 *
 * On SQLite, and on PostgreSQL when the run has one (tests/servetest.h).
 */
#include "servetest.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_many_to_many),
      cmocka_unit_test(test_m2m_one_query_per_page),
  };
  return servetest_main(tests);
}
