/* SPDX-License-Identifier: MIT */
/* tests/test_serve_input.c — `dorm serve` through a real socket, hostile input
 * (cut or invalid UTF-8 comes back as U+FFFD) and the names the query layer
 * refuses, sent as lookup keys, order_by and fields values: 400, and the table
 * intact.
 *
 * On SQLite, and on PostgreSQL when the run has one (tests/servetest.h).
 */
#include "servetest.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hostile_input),
      cmocka_unit_test(test_refused_names),
  };
  return servetest_main(tests);
}
