/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_http.c — raw request bytes through the HTTP server's
 * connection parser, without a socket.
 *
 * The seam: this file includes http/conn.c, so its static read callback
 * (on_read) can be fed directly, and builds the connection the way
 * dorm__http_on_connection does, minus uv_accept — the TCP handle is
 * initialised but never gets a socket.  Everything above the socket runs
 * as in `dorm serve`: http-parser and conn.c's callbacks, the request
 * split into path, query, headers, decoded parameters and body, early
 * answers (400, 413, 431), pipelining, and the handler's answers
 * (response.c), whose write then fails for want of a socket and closes
 * the connection as a broken peer would.  (Linking: this file defines
 * everything http/conn.o would, so the linker never takes conn.o from
 * libdorm.a.)
 *
 * Input: byte 0 picks how the rest is cut into reads (1 to 64 bytes, or
 * all at once) and whether the client half-closes at the end; byte 1
 * picks how the handler answers each request (at once, later, JSON, an
 * error, a stream).  The rest is what the client sends.  The handler
 * reads every byte the request claims to have, so a length that
 * overstates its buffer is an ASan finding.
 */
#include "http/conn.c"

#include "fuzz/fuzz.h"

#define MAX_HELD 16

typedef struct ctx {
  unsigned mode;
  unsigned n;
  dorm_http_response *held[MAX_HELD];
  size_t nheld;
} ctx;

static uv_loop_t uv;
static dorm_loop *loop;

static unsigned touch(const char *s, size_t n) {
  unsigned h = 0;
  for (size_t i = 0; i < n; i++) h = h * 31 + (unsigned char)s[i];
  return h;
}

static void answer(dorm_http_response *res, unsigned how, unsigned h) {
  switch (how % 5) {
    case 0: dorm_http_respond(res, 200, "text/plain", "ok\n", 3); break;
    case 1:
      dorm_http_response_header(res, "X-Fuzz", "1");
      dorm_http_respond_json(res, 201,
                             json_pack("{s:i}", "h", (int)(h & 0xff)));
      break;
    case 2: dorm_http_respond_error(res, 404, "not found"); break;
    case 3:
      /* open until stream_end whatever start returns (dorm/http.h) */
      if (dorm_http_stream_start(res, 200, "text/event-stream") == 0)
        dorm_http_stream_write(res, "data: x\n\n", 9);
      dorm_http_stream_end(res);
      break;
    default: dorm_http_respond(res, 204, NULL, NULL, 0); break;
  }
}

static void handler(dorm_http_request *req, dorm_http_response *res,
                    void *arg) {
  ctx *c = arg;
  FUZZ_CHECK(req->method && req->path && req->query && req->body,
             "request field missing");
  FUZZ_CHECK(req->path_len == strlen(req->path), "path_len is not the path");
  unsigned h = touch(req->path, req->path_len + 1);
  h += touch(req->query, strlen(req->query) + 1);
  for (size_t i = 0; i < req->nheaders; i++)
    h += touch(req->headers[i].name, strlen(req->headers[i].name) + 1) +
         touch(req->headers[i].value, strlen(req->headers[i].value) + 1);
  for (size_t i = 0; i < req->nparams; i++) {
    const dorm_http_param *p = &req->params[i];
    h += touch(p->name, p->name_len + 1) + touch(p->value, p->value_len + 1);
    FUZZ_CHECK(p->name[p->name_len] == '\0' && p->value[p->value_len] == '\0',
               "parameter not NUL-terminated at its length");
  }
  FUZZ_CHECK(req->body[req->body_len] == '\0', "body not NUL-terminated");
  h += touch(req->body, req->body_len);
  (void)dorm_http_request_header(req, "content-length");
  (void)dorm_http_request_param(req, "limit");
  unsigned how = (c->mode >> (2 * (c->n++ % 4))) & 3;
  if (how == 0 || c->nheld == MAX_HELD)
    answer(res, h, h); /* at once, inside the read */
  else
    c->held[c->nheld++] = res; /* later, after the reads */
}

static void closed(void *arg) { *(int *)arg = 1; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 || size > 65536) return 0;
  if (!loop) {
    uv_loop_init(&uv);
    loop = dorm_loop_new(&uv);
    if (!loop) abort();
  }
  unsigned cut = data[0] & 0x3f, eof = data[0] & 0x40, whole = data[0] & 0x80;
  ctx cx = {.mode = data[1]};
  data += 2;
  size -= 2;

  dorm_http_options o;
  dorm_http_options_init(&o);
  o.max_body = 4096;
  o.max_header = 1024;
  o.max_pipeline = 8;
  dorm_http_server *s = dorm_http_server_new(loop, &o, handler, &cx, NULL);
  if (!s) abort();

  /* dorm__http_on_connection without the accept */
  dorm__http_conn *c = dorm__calloc(1, sizeof *c);
  if (!c) abort();
  c->srv = s;
  uv_tcp_init(s->uv, &c->tcp);
  uv_timer_init(s->uv, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  s->conns = c;
  s->nconns = 1;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  snprintf(c->peer, sizeof c->peer, "fuzz");
  conn_update(c);

  size_t off = 0;
  while (off < size && !c->closing) {
    size_t n = whole ? size : cut + 1;
    if (n > size - off) n = size - off;
    /* an exact-size copy: reading past the read is an ASan finding */
    char *chunk = malloc(n);
    if (!chunk) abort();
    memcpy(chunk, data + off, n);
    uv_buf_t b = uv_buf_init(chunk, (unsigned)n);
    on_read((uv_stream_t *)&c->tcp, (ssize_t)n, &b);
    free(chunk);
    off += n;
  }
  /* s->conns is NULL once the connection has closed (and c is freed) */
  if (eof && s->conns == c && !c->closing)
    on_read((uv_stream_t *)&c->tcp, UV_EOF, &(uv_buf_t){0});
  for (size_t i = 0; i < cx.nheld; i++) answer(cx.held[i], i + 1, (unsigned)i);

  int done = 0;
  dorm_http_server_close(s, closed, &done);
  for (int i = 0; !done && i < 100; i++) uv_run(&uv, UV_RUN_NOWAIT);
  FUZZ_CHECK(done, "the server did not close (%zu connections, %zu exchanges)",
             s->nconns, s->nlive);
  return 0;
}
