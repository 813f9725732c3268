/* SPDX-License-Identifier: MIT */
/* tests/test_serve_routes.c — `dorm serve` through a real socket, every route
 * and every error status, and the access log (one line per request).
 *
 * On SQLite, and on PostgreSQL when the run has one (tests/servetest.h).
 */
#include "servetest.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_routes),
      cmocka_unit_test(test_errors),
  };
  return servetest_main(tests);
}
