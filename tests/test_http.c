/* SPDX-License-Identifier: MIT */
/* tests/test_http.c — the HTTP server (http/, dorm/http.h) through real
 * sockets.
 *
 * The server runs on its own loop in a second thread with an echo handler
 * that can answer at once, after a delay (a timer: the asynchronous case),
 * or as a stream; the test thread is a plain blocking socket client.  Each
 * test starts a fresh server with the limits it needs and stops it through
 * a uv_async, checking that the graceful close completes and that every
 * response was completed (the handler counts).  Covered: keep-alive,
 * pipelining in request order, content-length and chunked bodies, query
 * decoding, 400/408/413/431/503, idle timeout, many connections, a client
 * that disconnects mid-request (reset and half-close), streaming, HTTP/1.0,
 * Expect: 100-continue, and graceful shutdown with requests in flight.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dorm.h"

/* ---- the server side (runs on the server thread) ------------------------ */

typedef struct server {
  uv_loop_t uv;
  dorm_loop *loop;
  dorm_http_server *http;
  dorm_http_options opts;
  uv_async_t stop;
  uv_thread_t thread;
  uv_sem_t ready;
  int port;
  atomic_int handled, completed, dropped, closed;
} server;

static server g_srv;

typedef struct delayed {
  uv_timer_t timer;
  dorm_http_response *res;
  char id[32];
  int step; /* streams: chunks written so far */
} delayed;

static void delayed_closed(uv_handle_t *h) { free(h->data); }

static void finish(int rc) {
  atomic_fetch_add(&g_srv.completed, 1);
  if (rc == DORM_ECLOSED) atomic_fetch_add(&g_srv.dropped, 1);
}

static void on_delay(uv_timer_t *t) {
  delayed *d = t->data;
  char body[64];
  int n = snprintf(body, sizeof body, "id=%s", d->id);
  finish(dorm_http_respond(d->res, 200, "text/plain", body, (size_t)n));
  uv_close((uv_handle_t *)&d->timer, delayed_closed);
}

static void on_stream_tick(uv_timer_t *t) {
  delayed *d = t->data;
  static const char *const parts[] = {"a\n", "b\n", "c\n"};
  if (d->step < 3) {
    int rc = dorm_http_stream_write(d->res, parts[d->step], 2);
    d->step++;
    if (rc == 0) return; /* repeating timer: next chunk later */
  }
  finish(dorm_http_stream_end(d->res));
  uv_close((uv_handle_t *)&d->timer, delayed_closed);
}

static const char *param(dorm_http_request *req, const char *name,
                         const char *dflt) {
  const dorm_http_param *p = dorm_http_request_param(req, name);
  return p ? p->value : dflt;
}

static void on_closed_server(void *arg) {
  (void)arg;
  atomic_store(&g_srv.closed, 1);
  uv_close((uv_handle_t *)&g_srv.stop, NULL);
  dorm_loop_close(g_srv.loop, NULL, NULL);
}

static void handler(dorm_http_request *req, dorm_http_response *res,
                    void *arg) {
  (void)arg;
  atomic_fetch_add(&g_srv.handled, 1);
  if (!strcmp(req->path, "/echo")) {
    json_t *params = json_object();
    for (size_t i = 0; i < req->nparams; i++)
      json_object_set_new(
          params, req->params[i].name,
          json_stringn(req->params[i].value, req->params[i].value_len));
    const char *ua = dorm_http_request_header(req, "x-test");
    dorm_http_response_header(res, "X-Echo", "yes");
    finish(dorm_http_respond_json(
        res, 200,
        json_pack("{s:s, s:s, s:o, s:s%, s:s?}", "method", req->method, "path",
                  req->path, "params", params, "body", req->body, req->body_len,
                  "x-test", ua)));
  } else if (!strcmp(req->path, "/delay") || !strcmp(req->path, "/stream")) {
    delayed *d = calloc(1, sizeof *d);
    d->res = res;
    snprintf(d->id, sizeof d->id, "%s", param(req, "id", "?"));
    uv_timer_init(&g_srv.uv, &d->timer);
    d->timer.data = d;
    if (req->path[1] == 'd') {
      uv_timer_start(&d->timer, on_delay, (uint64_t)atoi(param(req, "ms", "0")),
                     0);
    } else {
      if (dorm_http_stream_start(res, 200, "text/plain") != 0) abort();
      uv_timer_start(&d->timer, on_stream_tick, 10, 10);
    }
  } else if (!strcmp(req->path, "/sync")) {
    char body[64];
    int n = snprintf(body, sizeof body, "id=%s", param(req, "id", "?"));
    finish(dorm_http_respond(res, 200, "text/plain", body, (size_t)n));
  } else if (!strcmp(req->path, "/echo-error")) {
    /* a message that echoes the client's (decoded) bytes as they are */
    char msg[256];
    snprintf(msg, sizeof msg, "bad '%s'", param(req, "x", ""));
    finish(dorm_http_respond_error(res, 400, msg));
  } else if (!strcmp(req->path, "/nocontent")) {
    finish(dorm_http_respond(res, 204, NULL, NULL, 0));
  } else if (!strcmp(req->path, "/shutdown")) {
    finish(dorm_http_respond(res, 200, "text/plain", "bye", 3));
    dorm_http_server_close(g_srv.http, on_closed_server, NULL);
  } else {
    finish(dorm_http_respond_error(res, 404, "not found"));
  }
}

static void on_stop(uv_async_t *a) {
  (void)a;
  dorm_http_server_close(g_srv.http, on_closed_server, NULL);
}

static void server_thread(void *arg) {
  (void)arg;
  assert_int_equal(uv_loop_init(&g_srv.uv), 0);
  g_srv.loop = dorm_loop_new(&g_srv.uv);
  dorm_error err;
  dorm_error_clear(&err);
  g_srv.http =
      dorm_http_server_new(g_srv.loop, &g_srv.opts, handler, NULL, &err);
  assert_non_null(g_srv.http);
  assert_int_equal(dorm_http_server_listen(g_srv.http, "127.0.0.1", 0, &err),
                   0);
  g_srv.port = dorm_http_server_port(g_srv.http);
  uv_async_init(&g_srv.uv, &g_srv.stop, on_stop);
  uv_sem_post(&g_srv.ready);
  uv_run(&g_srv.uv, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&g_srv.uv), 0);
}

static void start(const dorm_http_options *o) {
  memset(&g_srv, 0, sizeof g_srv);
  if (o) g_srv.opts = *o;
  if (!g_srv.opts.idle_timeout_ms) g_srv.opts.idle_timeout_ms = 5000;
  if (!g_srv.opts.request_timeout_ms) g_srv.opts.request_timeout_ms = 3000;
  if (!g_srv.opts.shutdown_timeout_ms) g_srv.opts.shutdown_timeout_ms = 3000;
  uv_sem_init(&g_srv.ready, 0);
  assert_int_equal(uv_thread_create(&g_srv.thread, server_thread, NULL), 0);
  uv_sem_wait(&g_srv.ready);
  uv_sem_destroy(&g_srv.ready);
}

/* Stop gracefully and wait; every response handed out was completed. */
static void stop(void) {
  if (!atomic_load(&g_srv.closed)) uv_async_send(&g_srv.stop);
  uv_thread_join(&g_srv.thread);
  assert_int_equal(atomic_load(&g_srv.closed), 1);
  assert_int_equal(atomic_load(&g_srv.handled), atomic_load(&g_srv.completed));
}

/* ---- the client side ------------------------------------------------------
 */

typedef struct client {
  int fd;
  char buf[1 << 18];
  size_t len;
} client;

typedef struct response {
  int status;
  char headers[4096];
  char body[1 << 16];
  size_t body_len;
} response;

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static client *cli_new(void) {
  client *c = calloc(1, sizeof *c);
  c->fd = connect_to(g_srv.port);
  assert_true(c->fd >= 0);
  return c;
}

static void cli_free(client *c) {
  if (c->fd >= 0) close(c->fd);
  free(c);
}

static void cli_send(client *c, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return; /* the server may have closed: reads will tell */
    s += w;
    n -= (size_t)w;
  }
}
static void cli_puts(client *c, const char *s) { cli_send(c, s, strlen(s)); }

/* Read more into the buffer; 0 on EOF or error. */
static int cli_fill(client *c) {
  if (c->len == sizeof c->buf) return 0;
  ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
  if (r <= 0) return 0;
  c->len += (size_t)r;
  return 1;
}

static void cli_consume(client *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

/* Read one response (Content-Length, chunked, or to EOF).  Returns 0 when
 * the connection closed before a response. */
static int cli_read(client *c, response *r) {
  memset(r, 0, sizeof *r);
  char *end;
  while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
    if (!cli_fill(c)) return 0;
  size_t hlen = (size_t)(end - c->buf) + 4;
  assert_true(hlen < sizeof r->headers);
  memcpy(r->headers, c->buf, hlen);
  r->headers[hlen] = '\0';
  cli_consume(c, hlen);
  assert_int_equal(sscanf(r->headers, "HTTP/1.1 %d", &r->status), 1);
  if (r->status == 100) return cli_read(c, r);
  const char *cl = strcasestr(r->headers, "\r\ncontent-length:");
  if (cl) {
    size_t n = (size_t)atol(cl + 17);
    while (c->len < n)
      if (!cli_fill(c)) fail_msg("short body");
    memcpy(r->body, c->buf, n);
    r->body_len = n;
    cli_consume(c, n);
  } else if (strcasestr(r->headers, "transfer-encoding: chunked")) {
    for (;;) {
      char *eol;
      while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
        if (!cli_fill(c)) fail_msg("short chunk");
      size_t n = strtoul(c->buf, NULL, 16);
      size_t skip = (size_t)(eol - c->buf) + 2;
      while (c->len < skip + n + 2)
        if (!cli_fill(c)) fail_msg("short chunk");
      memcpy(r->body + r->body_len, c->buf + skip, n);
      r->body_len += n;
      cli_consume(c, skip + n + 2);
      if (!n) break;
    }
  } else if (r->status != 204 && r->status != 304) {
    while (cli_fill(c)) {
    }
    memcpy(r->body, c->buf, c->len);
    r->body_len = c->len;
    c->len = 0;
  }
  r->body[r->body_len] = '\0';
  return 1;
}

/* 1 when the server closed the connection (EOF) with nothing more. */
static int cli_eof(client *c) {
  char b[64];
  ssize_t r = recv(c->fd, b, sizeof b, 0);
  return r == 0 || (r < 0 && errno == ECONNRESET);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* ---- tests ----------------------------------------------------------------
 */

static void test_keep_alive_and_query(void **state) {
  (void)state;
  start(NULL);
  client *c = cli_new();
  response r;
  for (int i = 0; i < 3; i++) {
    cli_puts(c,
             "GET /echo?a=1&b=hello+world%21&empty=&flag&enc%5Fkey=%E2%82%AC"
             " HTTP/1.1\r\nHost: t\r\nX-Test: v1\r\n\r\n");
    assert_true(cli_read(c, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "X-Echo: yes\r\n"));
    assert_non_null(strstr(r.headers, "Content-Type: application/json\r\n"));
    assert_null(strcasestr(r.headers, "connection: close"));
    assert_non_null(strstr(r.body, "\"a\":\"1\""));
    assert_non_null(strstr(r.body, "\"b\":\"hello world!\""));
    assert_non_null(strstr(r.body, "\"empty\":\"\""));
    assert_non_null(strstr(r.body, "\"flag\":\"\""));
    assert_non_null(strstr(r.body, "\"enc_key\":\"\xe2\x82\xac\""));
    assert_non_null(strstr(r.body, "\"x-test\":\"v1\""));
    assert_non_null(strstr(r.body, "\"path\":\"/echo\""));
  }
  cli_puts(c, GET("/nope"));
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 404);
  assert_string_equal(r.body, "{\"error\":\"not found\"}");
  cli_puts(c, GET("/nocontent"));
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 204);
  assert_null(strcasestr(r.headers, "content-length"));
  cli_puts(c, GET("/sync?id=after204"));
  assert_true(cli_read(c, &r));
  assert_string_equal(r.body, "id=after204");
  cli_free(c);
  stop();
}

/* Decoded text may hold any byte: an error message echoing it is still
 * the status asked for, its invalid bytes as U+FFFD (a json_pack of them
 * used to fail, and the answer was a bare 500). */
static void test_error_echo_utf8(void **state) {
  (void)state;
  assert_int_equal(dorm_http_utf8_valid("a\xc3\xa9"
                                        "b",
                                        4),
                   4);
  assert_int_equal(dorm_http_utf8_valid("a\xc3", 2), 1);
  assert_int_equal(dorm_http_utf8_valid("a\xff", 2), 1);
  assert_int_equal(dorm_http_utf8_valid("\xc0\xaf", 2), 0);     /* overlong */
  assert_int_equal(dorm_http_utf8_valid("\xed\xa0\x80", 3), 0); /* surrogate */
  assert_int_equal(dorm_http_utf8_valid("\xf4\x90\x80\x80", 4), 0);
  assert_int_equal(dorm_http_utf8_valid("\xf0\x9f\x98\x80", 4), 4);
  assert_int_equal(dorm_http_utf8_clip("ab\xc3\xa9", 4, 3), 2);
  assert_int_equal(dorm_http_utf8_clip("ab\xc3\xa9", 4, 4), 4);
  assert_int_equal(dorm_http_utf8_clip("\xf0\x9f\x98\x80x", 5, 3), 0);
  assert_int_equal(dorm_http_utf8_clip("abc", 3, 2), 2);
  start(NULL);
  client *c = cli_new();
  response r;
  cli_puts(c, GET("/echo-error?x=%ff%c3a"));
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 400);
  assert_string_equal(r.body,
                      "{\"error\":\"bad '\xef\xbf\xbd\xef\xbf\xbd"
                      "a'\"}");
  cli_puts(c, GET("/echo-error?x=%e2%82%ac"));
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 400);
  assert_string_equal(r.body, "{\"error\":\"bad '\xe2\x82\xac'\"}");
  cli_free(c);
  stop();
}

/* Three requests in one packet: the slow first one is answered last by its
 * handler, yet the answers arrive in request order. */
static void test_pipelining_order(void **state) {
  (void)state;
  start(NULL);
  client *c = cli_new();
  cli_puts(c, GET("/delay?ms=150&id=1") GET("/delay?ms=20&id=2")
                  GET("/sync?id=3") GET("/delay?ms=0&id=4"));
  response r;
  for (int i = 1; i <= 4; i++) {
    char want[16];
    snprintf(want, sizeof want, "id=%d", i);
    assert_true(cli_read(c, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, want);
  }
  cli_free(c);
  stop();
}

static void test_bodies(void **state) {
  (void)state;
  start(NULL);
  client *c = cli_new();
  response r;
  cli_puts(c,
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
           "Content-Length: 11\r\n\r\nhello world");
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "\"body\":\"hello world\""));
  assert_non_null(strstr(r.body, "\"method\":\"POST\""));
  /* chunked, sent in pieces with pauses so the parser sees it split */
  cli_puts(c,
           "PATCH /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked"
           "\r\n\r\n5\r\nhel");
  sleep_ms(20);
  cli_puts(c, "lo\r\n6\r\n wo");
  sleep_ms(20);
  cli_puts(c, "rld\r\n0\r\n\r\n");
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "\"body\":\"hello world\""));
  assert_non_null(strstr(r.body, "\"method\":\"PATCH\""));
  /* a request split inside its headers */
  cli_puts(c, "GET /echo?x=");
  sleep_ms(20);
  cli_puts(c, "1 HTTP/1.1\r\nX-Te");
  sleep_ms(20);
  cli_puts(c, "st: split\r\n\r\n");
  assert_true(cli_read(c, &r));
  assert_non_null(strstr(r.body, "\"x-test\":\"split\""));
  assert_non_null(strstr(r.body, "\"x\":\"1\""));
  cli_free(c);
  stop();
}

static void test_limits_413_431_400(void **state) {
  (void)state;
  dorm_http_options o;
  dorm_http_options_init(&o);
  o.max_body = 1024;
  o.max_header = 4096;
  start(&o);
  response r;
  /* declared too large: refused before the body is read */
  client *c = cli_new();
  cli_puts(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n");
  char big[5000];
  memset(big, 'x', sizeof big);
  cli_send(c, big, sizeof big);
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 413);
  assert_non_null(strstr(r.headers, "Connection: close"));
  assert_string_equal(r.body, "{\"error\":\"request body too large\"}");
  assert_true(cli_eof(c));
  cli_free(c);
  /* chunked, growing past the limit */
  c = cli_new();
  cli_puts(
      c,
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 3; i++) {
    cli_puts(c, "200\r\n");
    cli_send(c, big, 512);
    cli_puts(c, "\r\n");
  }
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 413);
  assert_true(cli_eof(c));
  cli_free(c);
  /* headers too large */
  c = cli_new();
  cli_puts(c, "GET /echo HTTP/1.1\r\nX-Big: ");
  cli_send(c, big, 4500);
  cli_puts(c, "\r\n\r\n");
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 431);
  assert_true(cli_eof(c));
  cli_free(c);
  /* a URL too long counts as headers too */
  c = cli_new();
  char url[6000];
  memset(url, 'a', sizeof url);
  memcpy(url, "GET /", 5);
  url[sizeof url - 1] = '\0';
  cli_puts(c, url);
  cli_puts(c, " HTTP/1.1\r\n\r\n");
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 431);
  cli_free(c);
  /* garbage */
  c = cli_new();
  cli_puts(c, "HELLO\x01 WORLD\r\n\r\n");
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 400);
  assert_true(cli_eof(c));
  cli_free(c);
  /* a good request, then garbage: the good one is answered first */
  c = cli_new();
  cli_puts(c, GET("/delay?ms=30&id=ok") "BLAH\r\n\r\n");
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "id=ok");
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 400);
  cli_free(c);
  stop();
}

static void test_timeouts(void **state) {
  (void)state;
  dorm_http_options o;
  dorm_http_options_init(&o);
  o.idle_timeout_ms = 200;
  o.request_timeout_ms = 300;
  start(&o);
  /* idle: closed without a word */
  client *c = cli_new();
  double t0 = now_ms();
  assert_true(cli_eof(c));
  double dt = now_ms() - t0;
  assert_true(dt >= 150 && dt < 3000);
  cli_free(c);
  /* idle again after a request */
  c = cli_new();
  response r;
  cli_puts(c, GET("/sync?id=1"));
  assert_true(cli_read(c, &r));
  assert_true(cli_eof(c));
  cli_free(c);
  /* slow client: half a request, then nothing (and trickling does not
   * help: the clock runs from the first byte) */
  c = cli_new();
  t0 = now_ms();
  cli_puts(c, "GET /echo HTTP/1.1\r\n");
  sleep_ms(100);
  cli_puts(c, "X-A: 1\r\n");
  sleep_ms(100);
  cli_puts(c, "X-B: 1\r\n");
  assert_true(cli_read(c, &r));
  dt = now_ms() - t0;
  assert_int_equal(r.status, 408);
  assert_true(dt >= 250 && dt < 3000);
  assert_true(cli_eof(c));
  cli_free(c);
  /* a handler slower than every timeout is not cut off */
  c = cli_new();
  cli_puts(c, GET("/delay?ms=500&id=slow"));
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "id=slow");
  cli_free(c);
  stop();
}

static void test_max_connections(void **state) {
  (void)state;
  dorm_http_options o;
  dorm_http_options_init(&o);
  o.max_connections = 3;
  start(&o);
  client *cs[3];
  response r;
  for (int i = 0; i < 3; i++) {
    cs[i] = cli_new();
    cli_puts(cs[i], GET("/sync?id=x"));
    assert_true(cli_read(cs[i], &r));
    assert_int_equal(r.status, 200);
  }
  client *extra = cli_new();
  assert_true(cli_read(extra, &r));
  assert_int_equal(r.status, 503);
  assert_true(cli_eof(extra));
  cli_free(extra);
  cli_free(cs[0]);
  /* a place is free again once the server saw the close */
  int ok = 0;
  for (int tries = 0; tries < 50 && !ok; tries++) {
    sleep_ms(20);
    client *again = cli_new();
    cli_puts(again, GET("/sync?id=y"));
    if (cli_read(again, &r) && r.status == 200) ok = 1;
    cli_free(again);
  }
  assert_true(ok);
  cli_free(cs[1]);
  cli_free(cs[2]);
  stop();
}

static void test_many_connections(void **state) {
  (void)state;
  start(NULL);
  enum { N = 200 };
  static client *cs[N];
  for (int i = 0; i < N; i++) {
    cs[i] = cli_new();
    char req[128];
    snprintf(req, sizeof req, GET("/delay?ms=%d&id=%d"), i % 7 * 5, i);
    cli_puts(cs[i], req);
  }
  response r;
  for (int i = 0; i < N; i++) {
    char want[32];
    snprintf(want, sizeof want, "id=%d", i);
    assert_true(cli_read(cs[i], &r));
    assert_string_equal(r.body, want);
    cli_free(cs[i]);
  }
  stop();
}

/* The client vanishes while its handler is at work: the handler still
 * completes (its answer is dropped), nothing leaks, the server goes on. */
static void test_disconnect_mid_request(void **state) {
  (void)state;
  start(NULL);
  client *c = cli_new();
  cli_puts(c, GET("/delay?ms=100&id=1") GET("/delay?ms=50&id=2")
                  "GET /sync HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
  sleep_ms(20);
  struct linger lg = {1, 0}; /* close with a reset */
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  cli_free(c);
  sleep_ms(300);
  assert_int_equal(atomic_load(&g_srv.handled), 2);
  assert_int_equal(atomic_load(&g_srv.completed), 2);
  assert_int_equal(atomic_load(&g_srv.dropped), 2);
  /* a stream whose client goes away: writes see DORM_ECLOSED, it ends */
  c = cli_new();
  cli_puts(c, GET("/stream"));
  sleep_ms(5);
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  cli_free(c);
  sleep_ms(200);
  assert_int_equal(atomic_load(&g_srv.completed), 3);
  /* half-close after the request: the answer still comes */
  c = cli_new();
  cli_puts(c, GET("/delay?ms=50&id=half"));
  shutdown(c->fd, SHUT_WR);
  response r;
  assert_true(cli_read(c, &r));
  assert_string_equal(r.body, "id=half");
  assert_true(cli_eof(c));
  cli_free(c);
  /* and the server still serves */
  c = cli_new();
  cli_puts(c, GET("/sync?id=alive"));
  assert_true(cli_read(c, &r));
  assert_string_equal(r.body, "id=alive");
  cli_free(c);
  stop();
}

static void test_streaming(void **state) {
  (void)state;
  start(NULL);
  client *c = cli_new();
  response r;
  cli_puts(c, GET("/stream") GET("/sync?id=next"));
  assert_true(cli_read(c, &r));
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.headers, "Transfer-Encoding: chunked"));
  assert_string_equal(r.body, "a\nb\nc\n");
  assert_true(cli_read(c, &r));
  assert_string_equal(r.body, "id=next");
  cli_free(c);
  /* HTTP/1.0: raw body, closed at the end */
  c = cli_new();
  cli_puts(c, "GET /stream HTTP/1.0\r\n\r\n");
  assert_true(cli_fill(c));
  while (cli_fill(c)) {
  }
  c->buf[c->len] = '\0';
  assert_non_null(strstr(c->buf, "\r\n\r\na\nb\nc\n"));
  assert_null(strstr(c->buf, "chunked"));
  cli_free(c);
  stop();
}

static void test_connection_close_and_http10(void **state) {
  (void)state;
  start(NULL);
  response r;
  client *c = cli_new();
  cli_puts(c, "GET /sync?id=1 HTTP/1.1\r\nConnection: close\r\n\r\n" GET(
                  "/sync?id=ignored"));
  assert_true(cli_read(c, &r));
  assert_non_null(strstr(r.headers, "Connection: close"));
  assert_true(cli_eof(c));
  cli_free(c);
  c = cli_new();
  cli_puts(c, "GET /sync?id=10 HTTP/1.0\r\n\r\n");
  assert_true(cli_read(c, &r));
  assert_string_equal(r.body, "id=10");
  assert_true(cli_eof(c));
  cli_free(c);
  c = cli_new();
  cli_puts(c,
           "GET /sync?id=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
           "GET /sync?id=2 HTTP/1.0\r\n\r\n");
  assert_true(cli_read(c, &r));
  assert_non_null(strstr(r.headers, "Connection: keep-alive"));
  assert_true(cli_read(c, &r));
  assert_string_equal(r.body, "id=2");
  assert_true(cli_eof(c));
  cli_free(c);
  stop();
}

static void test_expect_continue(void **state) {
  (void)state;
  start(NULL);
  client *c = cli_new();
  cli_puts(c,
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
           "Expect: 100-continue\r\n\r\n");
  while (!memmem(c->buf, c->len, "\r\n\r\n", 4)) assert_true(cli_fill(c));
  assert_memory_equal(c->buf, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  cli_consume(c, 25);
  cli_puts(c, "ping");
  response r;
  assert_true(cli_read(c, &r));
  assert_non_null(strstr(r.body, "\"body\":\"ping\""));
  cli_free(c);
  stop();
}

/* SIGTERM's path: requests in flight finish and are written, with
 * "Connection: close"; idle connections close at once; new connections
 * are refused; then the server is freed and its loop ends. */
static void test_graceful_shutdown(void **state) {
  (void)state;
  start(NULL);
  client *busy = cli_new();
  client *idle = cli_new();
  cli_puts(busy,
           GET("/delay?ms=300&id=inflight") GET("/delay?ms=320&id=second"));
  sleep_ms(50);
  double t0 = now_ms();
  uv_async_send(&g_srv.stop);
  assert_true(cli_eof(idle)); /* idle: closed at once */
  assert_true(now_ms() - t0 < 200);
  response r;
  assert_true(cli_read(busy, &r));
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "id=inflight");
  assert_null(strstr(r.headers, "Connection: close"));
  assert_true(cli_read(busy, &r));
  assert_string_equal(r.body, "id=second"); /* the last says it */
  assert_non_null(strstr(r.headers, "Connection: close"));
  assert_true(cli_eof(busy));
  sleep_ms(50);
  int fd = connect_to(g_srv.port);
  assert_int_equal(fd, -1);
  stop();
  assert_int_equal(atomic_load(&g_srv.dropped), 0);
  cli_free(busy);
  cli_free(idle);
}

/* A handler that closes the server; and a close whose grace period runs
 * out: the connection is cut, the handler completes later (dropped). */
static void test_shutdown_timeout(void **state) {
  (void)state;
  dorm_http_options o;
  dorm_http_options_init(&o);
  o.shutdown_timeout_ms = 100;
  start(&o);
  client *c = cli_new();
  cli_puts(c, GET("/delay?ms=400&id=late"));
  sleep_ms(30);
  client *d = cli_new();
  cli_puts(d, GET("/shutdown"));
  response r;
  assert_true(cli_read(d, &r));
  assert_string_equal(r.body, "bye");
  assert_true(cli_eof(c)); /* cut after 100 ms */
  stop();                  /* returns only after the handler completed */
  assert_int_equal(atomic_load(&g_srv.dropped), 1);
  cli_free(c);
  cli_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keep_alive_and_query),
      cmocka_unit_test(test_error_echo_utf8),
      cmocka_unit_test(test_pipelining_order),
      cmocka_unit_test(test_bodies),
      cmocka_unit_test(test_limits_413_431_400),
      cmocka_unit_test(test_timeouts),
      cmocka_unit_test(test_max_connections),
      cmocka_unit_test(test_many_connections),
      cmocka_unit_test(test_disconnect_mid_request),
      cmocka_unit_test(test_streaming),
      cmocka_unit_test(test_connection_close_and_http10),
      cmocka_unit_test(test_expect_continue),
      cmocka_unit_test(test_graceful_shutdown),
      cmocka_unit_test(test_shutdown_timeout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
