/* SPDX-License-Identifier: MIT */
/* tools/serve/serve_stream.c — a list answer written as its rows arrive:
 * dorm_async_iterate feeds chunks of rows, each chunk goes out at once as
 * part of a chunked HTTP body, so `GET /api/item?limit=100000` never sits
 * whole in memory (docs/serve.md, "Large lists").
 *
 * The body is byte for byte what the buffered answer would have been:
 * {"results":[ row, row, ... ]} in compact JSON.  Back-pressure: when the
 * bytes handed to the connection but not yet written pass SS_HIGH (a
 * client reading slowly, or not at all), the chunk callback pauses the
 * stream and asks the HTTP layer to call back once they are down to
 * SS_LOW (dorm_http_stream_on_drain); only then is the next chunk
 * fetched from the database.  A client that goes away cancels the final
 * deferred, which stops the query on the server.
 *
 * Errors: one that comes before the first chunk (a bad value the
 * database refuses, the database down) is a normal error answer, given
 * by the caller's fail function, as for every other route; the status
 * line is only sent with the first full chunk: an answer of fewer than
 * SS_CHUNK_ROWS rows (the first chunk short, nothing after it) is kept
 * and answered whole, with a Content-Length, exactly as before
 * streaming; only longer lists go out chunked.  One that comes after the status
 * line was sent cannot change it any more: the answer is aborted (the
 * connection closes without the terminating chunk, so the client sees an
 * incomplete body) and the error goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/serve/serve.h"

#define SS_CHUNK_ROWS 500
#define SS_HIGH (256u * 1024u)
#define SS_LOW (64u * 1024u)

typedef struct sstream {
  dorm_http_response *res;
  dorm_deferred *d; /* the final deferred (retained while it runs) */
  dorm_iter *paused;
  int started; /* the status line and "{"results":[" went out */
  int held;    /* buf holds a first chunk not sent yet */
  int gone;
  uint64_t rows;
  serve_stream_fail_fn fail;
  serve_stream_end_fn end;
  void *ctx;
  char *buf; /* one chunk's JSON, reused */
  size_t len, cap;
} sstream;

/* Room for n more bytes in s->buf.  0 or -1 (out of memory). */
static int reserve(sstream *s, size_t n) {
  if (s->len + n <= s->cap) return 0;
  size_t cap = s->cap ? s->cap : 65536;
  while (cap < s->len + n) cap *= 2;
  char *b = realloc(s->buf, cap);
  if (!b) return -1;
  s->buf = b;
  s->cap = cap;
  return 0;
}

static int put(sstream *s, const char *p, size_t n) {
  if (reserve(s, n)) return -1;
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  return 0;
}

static int put_json(sstream *s, json_t *o) {
  size_t n = json_dumpb(o, NULL, 0, JSON_COMPACT);
  if (!n || reserve(s, n)) return -1;
  if (json_dumpb(o, s->buf + s->len, n, JSON_COMPACT) != n) return -1;
  s->len += n;
  return 0;
}

static void on_drain(dorm_http_response *res, void *arg) {
  (void)res;
  sstream *s = arg;
  dorm_iter *it = s->paused;
  s->paused = NULL;
  if (it) dorm_iter_resume(it);
}

static void on_gone(dorm_http_response *res, void *arg) {
  (void)res;
  sstream *s = arg;
  s->gone = 1;
  s->paused = NULL;
  /* stops the query on the server; the errback completes res */
  dorm_deferred_cancel(s->d);
}

static int put_rows(sstream *s, const dorm_rows *chunk) {
  for (size_t i = 0; i < dorm_rows_count(chunk); i++) {
    json_t *o = dorm_row_to_json(dorm_rows_row(chunk, i));
    int bad = !o || (s->rows && put(s, ",", 1)) || put_json(s, o);
    json_decref(o);
    if (bad) return -1;
    s->rows++;
  }
  return 0;
}

static int on_chunk(dorm_iter *it, const dorm_rows *chunk, void *arg) {
  sstream *s = arg;
  if (!s->started && !s->held && dorm_rows_count(chunk) < SS_CHUNK_ROWS) {
    /* a short first chunk is most likely the whole answer: kept, it is
     * answered whole (with a Content-Length) if nothing follows */
    s->len = 0;
    if (put(s, "{\"results\":[", 12) || put_rows(s, chunk))
      return DORM_ITER_STOP;
    s->held = 1;
    return DORM_ITER_CONTINUE;
  }
  if (!s->started) {
    if (dorm_http_stream_start(s->res, 200, "application/json"))
      return DORM_ITER_STOP; /* the client is gone (or no memory) */
    s->started = 1;
    if (!s->held) {
      s->len = 0;
      if (put(s, "{\"results\":[", 12)) return DORM_ITER_STOP;
    }
  } else {
    s->len = 0;
  }
  s->held = 0;
  if (put_rows(s, chunk)) return DORM_ITER_STOP;
  if (dorm_http_stream_write(s->res, s->buf, s->len)) return DORM_ITER_STOP;
  int rc = dorm_http_stream_pending(s->res) > SS_HIGH
               ? dorm_http_stream_on_drain(s->res, SS_LOW, on_drain, s)
               : 1;
  if (rc == 0) {
    s->paused = it;
    return DORM_ITER_PAUSE;
  }
  return rc == 1 ? DORM_ITER_CONTINUE : DORM_ITER_STOP;
}

static void ss_free(sstream *s) {
  dorm_deferred_release(s->d);
  free(s->buf);
  free(s);
}

static dorm_result on_done(dorm_result *r, void *arg) {
  (void)r;
  sstream *s = arg;
  dorm_http_response_on_gone(s->res, NULL, NULL);
  if (!s->started && s->held && !put(s, "]}", 2)) {
    /* one short chunk: the plain answer, with a Content-Length */
    dorm_http_respond(s->res, 200, "application/json", s->buf, s->len);
  } else if (!s->started) {
    /* no row (or no memory for the kept one's end) */
    dorm_http_respond_json(s->res, s->held ? 503 : 200,
                           s->held
                               ? json_pack("{s:s}", "error", "out of memory")
                               : json_pack("{s:[]}", "results"));
  } else if (s->gone || dorm_http_stream_write(s->res, "]}", 2) != 0) {
    dorm_http_stream_abort(s->res);
  } else {
    dorm_http_stream_end(s->res);
  }
  s->end(s->ctx);
  ss_free(s);
  return dorm_result_none();
}

static dorm_result on_failed(dorm_result *r, void *arg) {
  sstream *s = arg;
  dorm_http_response_on_gone(s->res, NULL, NULL);
  if (!s->started) {
    s->fail(r, s->ctx); /* answers and ends ctx */
  } else {
    if (!s->gone)
      fprintf(stderr,
              "dorm serve: a streamed list failed after %llu rows (the "
              "answer is cut short): %s: %s\n",
              (unsigned long long)s->rows, dorm_err_name(dorm_result_code(r)),
              dorm_result_message(r));
    dorm_http_stream_abort(s->res);
    s->end(s->ctx);
  }
  ss_free(s);
  return dorm_result_none();
}

int serve_list_stream(serve_state *st, dorm_http_response *res,
                      const dorm_query *q, serve_stream_fail_fn fail,
                      serve_stream_end_fn end, void *ctx) {
  sstream *s = calloc(1, sizeof *s);
  if (!s) return -1;
  s->res = res;
  s->fail = fail;
  s->end = end;
  s->ctx = ctx;
  dorm_deferred *d = dorm_async_iterate(st->db, q, SS_CHUNK_ROWS, on_chunk, s);
  if (!d) {
    free(s);
    return -1;
  }
  s->d = dorm_deferred_retain(d);
  /* a new deferred has room for its first steps */
  dorm_deferred_add_callbacks(d, on_done, on_failed, s);
  dorm_http_response_on_gone(res, on_gone, s);
  return 0;
}
