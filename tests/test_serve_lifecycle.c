/* SPDX-License-Identifier: MIT */
/* tests/test_serve_lifecycle.c — `dorm serve` through a real socket, clients
 * that vanish with queries in flight, and a SIGTERM while a pipelined burst is
 * answered (every answer whole and in order; exit status 0 — under ASan, which
 * also means no leak at exit).
 *
 * On SQLite, and on PostgreSQL when the run has one (tests/servetest.h).
 */
#include "servetest.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_disconnect_mid_request),
      cmocka_unit_test(test_shutdown_in_flight),
  };
  return servetest_main(tests);
}
