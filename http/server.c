/* SPDX-License-Identifier: MIT */
/* http/server.c — the HTTP server object: options, listening, the access
 * log, and the graceful close.
 *
 * The server owns a listening socket, the list of its connections
 * (http/conn.c) and a count of live exchanges (requests with their
 * responses, http/response.c).  A close stops the listener, lets each
 * connection drain, forces the stragglers after a timeout, and frees the
 * server only once the last connection is closed AND the last response a
 * handler held has been completed, so that nothing a handler touches ever
 * dangles.  The access log is collected in a buffer and written once per
 * loop turn (a uv_check handle) rather than once per request, because a
 * write(2) per request would be a noticeable share of a fast request's
 * cost.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/http_int.h"

void dorm_http_options_init(dorm_http_options *o) { memset(o, 0, sizeof *o); }

/* Fill the zeros of o with the defaults documented in dorm/http.h. */
static void options_defaults(dorm_http_options *o) {
  if (!o->max_body) o->max_body = 1024 * 1024;
  if (!o->max_header) o->max_header = 16 * 1024;
  if (!o->idle_timeout_ms) o->idle_timeout_ms = 30000;
  if (!o->request_timeout_ms) o->request_timeout_ms = 15000;
  if (!o->shutdown_timeout_ms) o->shutdown_timeout_ms = 10000;
  if (o->max_connections <= 0) o->max_connections = 1024;
  if (o->max_pipeline <= 0) o->max_pipeline = 64;
}

/* Write what the access log holds to stderr.  Blocking, but one write per
 * loop turn of short lines; a log that cannot be written is dropped
 * rather than retried (the server must not stall on its log). */
static void log_flush(dorm_http_server *s) {
  if (!s->log.len) return;
  const char *p = s->log.data;
  size_t n = s->log.len;
  while (n) {
    ssize_t w = write(STDERR_FILENO, p, n);
    if (w <= 0) break;
    p += w;
    n -= (size_t)w;
  }
  s->log.len = 0;
}

static void on_log_check(uv_check_t *h) {
  dorm_http_server *s = h->data;
  log_flush(s);
}

/* The JSON line of the access log (DORM_HTTP_LOG_JSON): the same fields,
 * strings escaped as JSON (bytes outside printable ASCII as \u00XX, so
 * a hostile path cannot make a line that is not JSON). */
static void put_json_str(dorm__buf *b, const char *p) {
  dorm__buf_putc(b, '"');
  for (; p && *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\')
      dorm__buf_printf(b, "\\%c", c);
    else if (c < 0x20 || c >= 0x7f) /* bytes, not text: always valid */
      dorm__buf_printf(b, "\\u%04x", c);
    else
      dorm__buf_putc(b, (char)c);
  }
  dorm__buf_putc(b, '"');
}

static void log_json(dorm__buf *b, const dorm__http_ex *ex, double ms) {
  const dorm_http_request *r = &ex->req;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  dorm__buf_printf(b, "{\"ts\":\"%s.%03ldZ\",\"peer\":", when,
                   ts.tv_nsec / 1000000);
  put_json_str(b, r->peer ? r->peer : "-");
  dorm__buf_puts(b, ",\"method\":");
  put_json_str(b, r->method ? r->method : "-");
  dorm__buf_puts(b, ",\"path\":");
  put_json_str(b, r->path ? r->path : "-");
  dorm__buf_puts(b, ",\"query\":");
  put_json_str(b, r->query ? r->query : "");
  dorm__buf_printf(b,
                   ",\"http\":\"%d.%d\",\"status\":%d,\"bytes\":%zu,"
                   "\"ms\":%.3f,\"client_gone\":%s}\n",
                   r->http_major, r->http_minor, ex->status, ex->bytes, ms,
                   ex->conn ? "false" : "true");
}

/* One line per answered request:
 *   127.0.0.1:53122 "GET /api/author/1 HTTP/1.1" 200 57 0.412ms
 * with " (client gone)" when the answer was dropped.  The path and query
 * are printed as received, control bytes escaped, so a hostile URL cannot
 * forge log lines.  Also where on_complete is told (metrics). */
void dorm__http_log(dorm_http_server *s, const dorm__http_ex *ex) {
  if (s->opts.on_complete)
    s->opts.on_complete(&ex->req, ex->status, ex->bytes, ex->conn == NULL,
                        s->opts.on_complete_arg);
  if (!s->opts.access_log) return;
  const dorm_http_request *r = &ex->req;
  dorm__buf *b = &s->log;
  double ms = r->start_ns ? (double)(uv_hrtime() - r->start_ns) / 1e6 : 0.0;
  if (s->opts.access_log == DORM_HTTP_LOG_JSON) {
    log_json(b, ex, ms);
    goto written;
  }
  dorm__buf_puts(b, r->peer ? r->peer : "-");
  dorm__buf_puts(b, " \"");
  dorm__buf_puts(b, r->method ? r->method : "-");
  dorm__buf_putc(b, ' ');
  const char *parts[2] = {r->path, r->query};
  for (int k = 0; k < 2; k++) {
    const char *p = parts[k];
    if (!p) continue;
    if (k == 1) {
      if (!*p) break;
      dorm__buf_putc(b, '?');
    }
    for (; *p; p++) {
      unsigned char c = (unsigned char)*p;
      if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
        dorm__buf_printf(b, "\\x%02x", c);
      else
        dorm__buf_putc(b, (char)c);
    }
  }
  if (!r->path) dorm__buf_putc(b, '-');
  dorm__buf_printf(b, " HTTP/%d.%d\" %d %zu %.3fms%s\n", r->http_major,
                   r->http_minor, ex->status, ex->bytes, ms,
                   ex->conn ? "" : " (client gone)");
written:
  if (b->oom) {
    /* keep the server going: forget the log rather than fail requests */
    dorm__buf_free(b);
    dorm__buf_init(b);
  }
  if (b->len > 64 * 1024) log_flush(s);
}

static void on_server_handle_closed(uv_handle_t *h) {
  dorm_http_server *s = h->data;
  if (--s->handles > 0) return;
  log_flush(s);
  dorm__buf_free(&s->log);
  dorm_http_close_cb cb = s->close_cb;
  void *arg = s->close_arg;
  dorm__free(s);
  if (cb) cb(arg);
}

static void on_spare_closed(uv_handle_t *h) {
  dorm_http_server *s = h->data;
  s->spare_busy = 0;
  int again = s->accept_pending && !s->closing;
  s->accept_pending = 0;
  /* the connection that waited: memory may be back, else refuse it too */
  if (again) dorm__http_on_connection((uv_stream_t *)&s->listener, 0);
  on_server_handle_closed(h); /* last: it may free s */
}

void dorm__http_server_refuse(dorm_http_server *s) {
  if (s->spare_busy) { /* one refusal at a time: this one waits for it */
    s->accept_pending = 1;
    return;
  }
  uv_tcp_init(s->uv, &s->spare);
  s->spare.data = s;
  s->spare_busy = 1;
  s->handles++;
  uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&s->spare);
  uv_close((uv_handle_t *)&s->spare, on_spare_closed);
}

/* The close is finished when nothing of the server is left in use: then
 * its two remaining handles close (the listener closed when the close
 * began) and the last close callback frees it. */
void dorm__http_server_maybe_done(dorm_http_server *s) {
  if (!s->closing || s->finishing || s->nconns || s->nlive) return;
  s->finishing = 1;
  uv_close((uv_handle_t *)&s->shutdown_timer, on_server_handle_closed);
  uv_close((uv_handle_t *)&s->log_check, on_server_handle_closed);
}

dorm_http_server *dorm_http_server_new(dorm_loop *loop,
                                       const dorm_http_options *opts,
                                       dorm_http_handler_fn handler, void *arg,
                                       dorm_error *err) {
  if (!loop || !handler) {
    dorm_error_set(err, DORM_EINVAL, "http server: loop and handler needed");
    return NULL;
  }
  dorm_http_server *s = dorm__calloc(1, sizeof *s);
  if (!s) {
    dorm_error_set(err, DORM_ENOMEM, "http server: out of memory");
    return NULL;
  }
  s->loop = loop;
  s->uv = dorm_loop_uv(loop);
  if (opts) s->opts = *opts;
  options_defaults(&s->opts);
  s->handler = handler;
  s->arg = arg;
  s->port = -1;
  dorm__buf_init(&s->log);
  /* These cannot fail for a valid loop (libuv only initialises fields). */
  uv_tcp_init(s->uv, &s->listener);
  uv_timer_init(s->uv, &s->shutdown_timer);
  uv_check_init(s->uv, &s->log_check);
  s->listener.data = s->shutdown_timer.data = s->log_check.data = s;
  s->handles = 3;
  if (s->opts.access_log) {
    uv_check_start(&s->log_check, on_log_check);
    uv_unref((uv_handle_t *)&s->log_check);
  }
  return s;
}

int dorm_http_server_listen(dorm_http_server *s, const char *host, int port,
                            dorm_error *err) {
  if (!s || !host || port < 0 || port > 65535 || s->listening || s->closing)
    return dorm_error_set(err, DORM_EINVAL,
                          "http server: bad address or already listening");
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
    return dorm_error_set(err, DORM_EINVAL,
                          "http server: '%s' is not an IP address", host);
  int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&s->listener, 1024, dorm__http_on_connection);
  if (rc != 0)
    return dorm_error_set(err, DORM_EIO,
                          "http server: cannot listen on %s:%d: %s", host, port,
                          uv_strerror(rc));
  struct sockaddr_storage bound;
  int len = sizeof bound;
  if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len) == 0)
    s->port = ntohs(bound.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&bound)->sin6_port
                        : ((struct sockaddr_in *)&bound)->sin_port);
  s->listening = 1;
  return 0;
}

int dorm_http_server_port(const dorm_http_server *s) {
  return s && s->listening ? s->port : -1;
}

size_t dorm_http_server_connections(const dorm_http_server *s) {
  return s ? s->nconns : 0;
}

/* The grace period is over: close whatever is still open.  Handlers that
 * still hold responses complete them later; the answers are dropped. */
static void on_shutdown_timeout(uv_timer_t *t) {
  dorm_http_server *s = t->data;
  dorm__http_conn *c = s->conns;
  while (c) {
    dorm__http_conn *next = c->next;
    dorm__http_conn_close(c);
    c = next;
  }
}

void dorm_http_server_close(dorm_http_server *s, dorm_http_close_cb cb,
                            void *arg) {
  if (!s || s->closing) return;
  s->closing = 1;
  s->close_cb = cb;
  s->close_arg = arg;
  /* Stop accepting now: closing the listener is libuv's way; from here
   * on connection attempts are refused by the kernel. */
  uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
  s->listening = 0;
  dorm__http_conn *c = s->conns;
  while (c) {
    dorm__http_conn *next = c->next;
    dorm__http_conn_drain(c);
    c = next;
  }
  if (s->nconns)
    uv_timer_start(&s->shutdown_timer, on_shutdown_timeout,
                   s->opts.shutdown_timeout_ms, 0);
  dorm__http_server_maybe_done(s);
}
