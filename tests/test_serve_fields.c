/* SPDX-License-Identifier: MIT */
/* tests/test_serve_fields.c — `dorm serve` through a real socket, choices (a
 * value outside them is a 400 and nothing is written), distinct, and JSON
 * bodies and query strings that reach the database exactly as written.
 *
 * On SQLite, and on PostgreSQL when the run has one (tests/servetest.h).
 */
#include "servetest.h"

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
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_choices),
      cmocka_unit_test(test_distinct),
      cmocka_unit_test(test_json_exact),
  };
  return servetest_main(tests);
}
