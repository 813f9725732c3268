/* SPDX-License-Identifier: MIT */
/* dorm/http.h — a small HTTP/1.1 server on the loop, for JSON APIs whose
 * handlers answer later, from a deferred's callback.
 *
 * The server (http/) parses requests with http-parser on libuv TCP:
 * keep-alive, pipelining, content-length and chunked bodies, many
 * connections at once, limits (body 413, headers 431, slow clients 408,
 * idle connections, maximum connections 503) and a graceful close.  For
 * each complete request it calls your handler with the request and a
 * response object; the handler may answer at once or keep the response and
 * answer later — typically from the callback of a dorm_async_* deferred.
 * Responses leave in request order even when a later request of the same
 * connection is answered first (pipelining), and a response may be
 * streamed (chunked; server-sent events) for as long as the handler likes.
 *
 *     static void handle(dorm_http_request *req, dorm_http_response *res,
 *                        void *arg) {
 *       if (strcmp(req->path, "/hello"))
 *         return (void)dorm_http_respond_error(res, 404, "not found");
 *       dorm_http_respond(res, 200, "text/plain", "hi\n", 3);
 *     }
 *     dorm_http_server *s = dorm_http_server_new(loop, NULL, handle, NULL,
 *                                                &err);
 *     dorm_http_server_listen(s, "127.0.0.1", 8000, &err);
 *     uv_run(...);   // ... later: dorm_http_server_close(s, done, NULL);
 *
 * The guide with an asynchronous handler is docs/http.md.
 *
 * RULES
 *   - Everything here runs on the loop thread, handlers included.
 *   - Every response given to a handler is completed exactly once, by
 *     dorm_http_respond*, or by dorm_http_stream_start ... _stream_end.  The
 *     response (and the request it belongs to) stays valid until then, even
 *     if the client has gone: that is what lets a handler's query finish
 *     safely.  Completing it frees both; do not touch them afterwards.
 *   - A client that disconnects costs nothing more: its responses still
 *     waiting for handlers are kept until the handler completes them, then
 *     dropped (the respond call returns DORM_ECLOSED) and freed.
 *   - A response that is never completed leaks, and keeps
 *     dorm_http_server_close from finishing.
 */
#ifndef DORM_HTTP_H
#define DORM_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dorm/version.h"
#include "dorm/error.h"
#include "dorm/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dorm_http_server dorm_http_server;
/* Opaque: the answer to one request.  Owned by the server until the
 * handler completes it (see RULES). */
typedef struct dorm_http_response dorm_http_response;

/* A header as sent (name case kept), NUL-terminated. */
typedef struct dorm_http_header {
  const char *name;
  const char *value;
} dorm_http_header;

/* One name=value of the query string, percent- and '+'-decoded and
 * NUL-terminated.  A value may hold a NUL byte (%00): value_len is its real
 * length.  "a&b=" gives ("a", "") and ("b", ""). */
typedef struct dorm_http_param {
  const char *name;
  const char *value;
  size_t name_len, value_len;
} dorm_http_param;

/* A complete request.  Read-only for the handler except `data`; every
 * pointer is valid until the response is completed. */
typedef struct dorm_http_request {
  const char *method; /* "GET", "POST", ... (static text) */
  const char *path;   /* the target's path, as sent (not decoded), e.g.
                         "/api/author/7" */
  size_t path_len;
  const char *query; /* what followed '?', not decoded; "" when none */
  const dorm_http_header *headers;
  size_t nheaders;
  const dorm_http_param *params; /* the query string, decoded */
  size_t nparams;
  const char *body; /* the body (chunked bodies joined), NUL-terminated;
                       "" when none */
  size_t body_len;
  int http_major, http_minor;
  const char *peer;  /* "127.0.0.1:53122" */
  uint64_t start_ns; /* uv_hrtime() when the first byte arrived */
  void *data;        /* yours */
} dorm_http_request;

/* Called once per complete request, in the order requests arrive.  req
 * and res are valid until res is completed (see RULES). */
typedef void (*dorm_http_handler_fn)(dorm_http_request *req,
                                     dorm_http_response *res, void *arg);

/* Limits and behaviour; zero means "the default", so a zeroed struct (or
 * NULL) is fine.  Each default is what `dorm serve` uses. */
typedef struct dorm_http_options {
  /* Largest request body in bytes (default 1 MiB); larger is answered 413
   * without reading it, then the connection closes. */
  size_t max_body;
  /* Largest request line plus headers in bytes (default 16 KiB): 431. */
  size_t max_header;
  /* A keep-alive connection with no request for this long is closed
   * (default 30000 ms). */
  unsigned idle_timeout_ms;
  /* A request must arrive in full within this time of its first byte, and
   * a response being written must make progress within it (slow clients;
   * default 15000 ms): 408, then the connection closes. */
  unsigned request_timeout_ms;
  /* dorm_http_server_close waits this long for requests in flight before
   * it closes their connections (default 10000 ms). */
  unsigned shutdown_timeout_ms;
  /* Connections open at once (default 1024); one more is answered 503 and
   * closed. */
  int max_connections;
  /* Requests of one connection received but not yet answered beyond which
   * the server stops reading from it until it catches up (default 64). */
  int max_pipeline;
  /* 1: one access-log line per request on stderr (peer, request line,
   * status, bytes, milliseconds), written once per loop turn.
   * DORM_HTTP_LOG_JSON: the same as JSON lines (docs/serve.md). */
  int access_log;
  /* Called once as each response is completed (a handler's, or one the
   * server makes itself: 400, 408, 413, ...), on the loop thread, with
   * its request (borrowed for the call; req->data is the handler's),
   * the status, the body bytes and 1 when the client had gone.  For
   * metrics; NULL: none. */
  void (*on_complete)(const dorm_http_request *req, int status, size_t bytes,
                      int client_gone, void *arg);
  void *on_complete_arg;
} dorm_http_options;

#define DORM_HTTP_LOG_JSON 2

DORM_EXTERN void dorm_http_options_init(dorm_http_options *o);

/* ---- the server --------------------------------------------------------- */

/* A server on loop (borrowed; it must outlive the server) that calls
 * handler(req, res, arg) for each request.  opts is read during the call.
 * Returns NULL with err filled when out of memory. */
DORM_EXTERN dorm_http_server *dorm_http_server_new(
    dorm_loop *loop, const dorm_http_options *opts,
    dorm_http_handler_fn handler, void *arg, dorm_error *err);
/* Listen on host (an IPv4 or IPv6 address, e.g. "127.0.0.1", "::") and
 * port (0: a free port, see dorm_http_server_port).  Returns 0, or a
 * negative code with err naming the address and libuv's reason
 * (DORM_EIO; DORM_EINVAL for a bad address or a second listen). */
DORM_EXTERN int dorm_http_server_listen(dorm_http_server *s, const char *host,
                                        int port, dorm_error *err);
/* The port listened on, or -1. */
DORM_EXTERN int dorm_http_server_port(const dorm_http_server *s);
/* Connections open now. */
DORM_EXTERN size_t dorm_http_server_connections(const dorm_http_server *s);

typedef void (*dorm_http_close_cb)(void *arg);
/* Graceful close: stop accepting; close idle connections now; let every
 * request already received be answered and written (responses made from
 * now on say "Connection: close"), then close each connection.  After
 * opts.shutdown_timeout_ms the connections still open are closed (their
 * handlers still complete; the responses are dropped).  Once every
 * connection is closed and every response completed, the server is freed
 * and cb(arg) runs (cb may be NULL).  Safe from a handler.  Twice does
 * nothing. */
DORM_EXTERN void dorm_http_server_close(dorm_http_server *s,
                                        dorm_http_close_cb cb, void *arg);

/* ---- answering ---------------------------------------------------------- */

/* Add a response header (copied).  Content-Length, Transfer-Encoding and
 * Connection are the server's: adding them is DORM_EINVAL, as is a name or
 * value holding CR or LF, or a response already started.  Returns 0,
 * DORM_EINVAL or DORM_ENOMEM. */
DORM_EXTERN int dorm_http_response_header(dorm_http_response *res,
                                          const char *name, const char *value);

/* Complete res with status (100-599 excluding 1xx: 200..599), a
 * Content-Type (NULL: none) and len bytes of body (copied; NULL with 0).
 * Always completes res, whatever it returns: 0 (queued for the client),
 * DORM_ECLOSED (the client had gone: dropped), DORM_ENOMEM (the client
 * gets a bare 500 and the connection closes), DORM_EINVAL (status out of
 * range: 500 likewise). */
DORM_EXTERN int dorm_http_respond(dorm_http_response *res, int status,
                                  const char *content_type, const void *body,
                                  size_t len);
/* The same with a JSON body ("application/json"), serialized compactly.
 * Takes the reference to body in every case (NULL: DORM_ENOMEM, as from a
 * failed json_pack, answered 500). */
DORM_EXTERN int dorm_http_respond_json(dorm_http_response *res, int status,
                                       json_t *body);
/* {"error": message} with status; message copied.  Bytes of message that
 * are not valid UTF-8 (a message echoing the client's input) are sent as
 * U+FFFD, so the answer is always the status asked for. */
DORM_EXTERN int dorm_http_respond_error(dorm_http_response *res, int status,
                                        const char *message);

/* 0 once the client that asked is gone (the response will be dropped),
 * else 1.  Lets a long handler give up early; it must still complete. */
DORM_EXTERN int dorm_http_response_alive(const dorm_http_response *res);

/* Called once if the client goes away before res is completed (for
 * streams that would otherwise run forever: stop the feed and end the
 * stream).  Runs on the loop thread, never from inside a respond or stream
 * call on res.  A second call replaces the first; fn NULL removes it. */
typedef void (*dorm_http_gone_fn)(dorm_http_response *res, void *arg);
DORM_EXTERN void dorm_http_response_on_gone(dorm_http_response *res,
                                            dorm_http_gone_fn fn, void *arg);

/* ---- streaming ---------------------------------------------------------- */

/* Start a streamed answer: the status line and headers go out (as soon as
 * the earlier responses of the connection have), the body follows in
 * pieces with dorm_http_stream_write, chunked (to HTTP/1.0 clients: raw,
 * and the connection closes at the end).  For server-sent events use
 * content type "text/event-stream" and write "data: ...\n\n" pieces.
 * Returns 0, DORM_ECLOSED (client gone), DORM_ENOMEM or DORM_EINVAL; in
 * every case res stays open until dorm_http_stream_end. */
DORM_EXTERN int dorm_http_stream_start(dorm_http_response *res, int status,
                                       const char *content_type);
/* Send len bytes (copied; 0 does nothing).  Returns 0, DORM_ECLOSED when
 * the client has gone (stop producing and end the stream), DORM_ENOMEM, or
 * DORM_ESTATE when the stream was not started. */
DORM_EXTERN int dorm_http_stream_write(dorm_http_response *res,
                                       const void *data, size_t len);
/* Bytes of this stream handed to the connection but not yet written to
 * the socket: a producer should wait when this grows (slow reader). */
DORM_EXTERN size_t dorm_http_stream_pending(const dorm_http_response *res);
/* End the stream and complete res (freed).  Returns 0 or DORM_ECLOSED. */
DORM_EXTERN int dorm_http_stream_end(dorm_http_response *res);
/* Back-pressure for a producer that can wait (a dorm_async_iterate
 * consumer): ask for fn(res, arg) once the stream's pending bytes
 * (dorm_http_stream_pending) have dropped to `below` or less.  Returns 0
 * when fn is registered (it runs once, on the loop thread, never inside
 * a call on res; not at all if the client goes first: the gone callback
 * runs instead, see dorm_http_response_on_gone), 1 when pending is
 * already at or under `below` (nothing registered: go on at once),
 * DORM_ECLOSED when the client has gone, DORM_ESTATE when res is not
 * streaming.  A second call replaces the first. */
typedef void (*dorm_http_drain_fn)(dorm_http_response *res, void *arg);
DORM_EXTERN int dorm_http_stream_on_drain(dorm_http_response *res, size_t below,
                                          dorm_http_drain_fn fn, void *arg);
/* End a stream that failed half-way: what was written goes out, then the
 * connection closes without the terminating chunk, so the client sees an
 * incomplete body (not a complete one that is wrong).  Completes res
 * (freed).  Returns 0 or DORM_ECLOSED (DORM_ESTATE: not streaming). */
DORM_EXTERN int dorm_http_stream_abort(dorm_http_response *res);

/* ---- helpers ------------------------------------------------------------ */

/* The value of the first header named name (case-insensitive), or NULL. */
DORM_EXTERN const char *dorm_http_request_header(const dorm_http_request *req,
                                                 const char *name);
/* The first query parameter named name, or NULL. */
DORM_EXTERN const dorm_http_param *dorm_http_request_param(
    const dorm_http_request *req, const char *name);
/* Percent-decode len bytes of s in place ('+' stays '+'; a bad escape is
 * kept as is); returns the new length and NUL-terminates. */
DORM_EXTERN size_t dorm_http_url_decode(char *s, size_t len);
/* How many bytes of s, from the start, are valid UTF-8 (len when all of
 * it is): a decoded path or parameter may hold any byte. */
DORM_EXTERN size_t dorm_http_utf8_valid(const char *s, size_t len);
/* Where to cut s (len bytes, valid UTF-8) to at most max bytes without
 * splitting a character: len when it fits, else max or a little less. */
DORM_EXTERN size_t dorm_http_utf8_clip(const char *s, size_t len, size_t max);
/* "OK", "Not Found", ...; "Unknown" for others. */
DORM_EXTERN const char *dorm_http_status_text(int status);

#ifdef __cplusplus
}
#endif
#endif /* DORM_HTTP_H */
