/* SPDX-License-Identifier: MIT */
/* http/conn.c — one HTTP connection: accept, parse, queue, write, time out,
 * close.
 *
 * Bytes read land in the server's one read buffer and are parsed at once
 * by http-parser; each request becomes an exchange appended to the
 * connection's queue, and the handler is called as soon as the request is
 * complete — so several pipelined requests can be in their handlers at
 * once.  Answers may come in any order, but bytes leave only from the head
 * of the queue: an answer waits until every earlier one has been handed to
 * the socket (HTTP/1.1 pipelining requires request order).  Ready answers
 * are gathered into one write; uv_try_write first, so the common case
 * needs no write request at all.
 *
 * One timer per connection, re-aimed as the state changes: idle (no
 * request), request (the first byte of a request arrived and the rest must
 * follow in time: slow clients get 408), write (an answer must make
 * progress), linger (after a final answer, read and discard what the
 * client still sends so our close does not reset the connection before it
 * has read the answer — the "lingering close" of Apache and nginx).
 *
 * Closing is immediate for errors and timeouts (conn_close: handler-held
 * exchanges are orphaned, the rest freed) and graceful for the server's
 * close (drain: no new requests; close once the queue is empty).
 */
#include <stdio.h>
#include <string.h>

#include "http/http_int.h"

#define DORM__HTTP_LINGER_MS 2000
#define DORM__HTTP_MAX_WRITE_QUEUE (1024 * 1024)
#define DORM__HTTP_GATHER 16

typedef struct dorm__http_write {
  uv_write_t req;
  dorm__http_conn *conn;
  size_t n;
  char *owned[DORM__HTTP_GATHER];
  uv_buf_t bufs[DORM__HTTP_GATHER];
} dorm__http_write;

static int on_message_begin(http_parser *p);
static int on_url(http_parser *p, const char *at, size_t len);
static int on_header_field(http_parser *p, const char *at, size_t len);
static int on_header_value(http_parser *p, const char *at, size_t len);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_message_complete(http_parser *p);

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_update(dorm__http_conn *c);
static void conn_linger(dorm__http_conn *c);

/* ---- exchanges ---------------------------------------------------------- */

/* A new exchange at the tail of c's queue; NULL when out of memory. */
static dorm__http_ex *ex_new(dorm__http_conn *c) {
  dorm__http_ex *ex = dorm__calloc(1, sizeof *ex);
  if (!ex) return NULL;
  ex->conn = c;
  ex->srv = c->srv;
  ex->state = DORM__EX_PARSING;
  ex->keep_alive = 1;
  dorm__buf_init(&ex->raw);
  dorm__buf_init(&ex->extra);
  dorm__buf_init(&ex->out);
  memcpy(ex->peer, c->peer, sizeof ex->peer);
  ex->req.peer = ex->peer;
  ex->req.start_ns = uv_hrtime();
  ex->req.http_major = 1;
  ex->req.http_minor = 1;
  if (c->tail)
    c->tail->next = ex;
  else
    c->head = ex;
  c->tail = ex;
  c->nqueued++;
  c->srv->nlive++;
  return ex;
}

/* Remove the exchange being parsed (the tail) and free it: a partial
 * request of a connection that is going away. */
static void drop_partial(dorm__http_conn *c) {
  dorm__http_ex *ex = c->cur;
  if (!ex) return;
  c->cur = NULL;
  dorm__http_ex *prev = NULL;
  for (dorm__http_ex *e = c->head; e && e != ex; e = e->next) prev = e;
  if (prev)
    prev->next = NULL;
  else
    c->head = NULL;
  c->tail = prev;
  c->nqueued--;
  dorm__http_ex_free(ex);
}

/* The request being parsed cannot be served: answer status and stop
 * reading requests from this connection. */
static void early_fail(dorm__http_conn *c, int status) {
  dorm__http_ex *ex = c->cur;
  if (!ex) ex = ex_new(c);
  c->cur = NULL;
  c->no_more = 1;
  c->early_status = 0;
  if (!ex) {
    /* not even memory for the answer: give up on the connection */
    dorm__http_conn_close(c);
    return;
  }
  if (!ex->req.method && c->header_bytes)
    ex->req.method = http_method_str((enum http_method)c->parser.method);
  dorm__http_ex_fail(ex, status);
}

/* Turn the raw text of a complete request into the public fields: path,
 * query, headers, decoded parameters, body.  Returns 0 or DORM_ENOMEM. */
static int ex_finish_request(dorm__http_ex *ex) {
  char *raw = ex->raw.data;
  dorm_http_request *r = &ex->req;
  char *url = raw;
  char *q = memchr(url, '?', ex->url_end);
  if (q) {
    *q = '\0';
    r->query = q + 1;
  } else {
    r->query = url + ex->url_end; /* the NUL after the url */
  }
  r->path = url;
  r->path_len = q ? (size_t)(q - url) : ex->url_end;
  size_t qlen = strlen(r->query);
  size_t np = 0;
  for (const char *p = r->query; *p;) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    if (n) np++;
    p += n + (amp ? 1 : 0);
  }
  size_t need = ex->nh * sizeof(dorm_http_header) +
                np * sizeof(dorm_http_param) + qlen + 2 * np + 1;
  if (need) {
    ex->meta = dorm__malloc(need);
    if (!ex->meta) return DORM_ENOMEM;
  }
  dorm_http_header *hs = ex->meta;
  for (size_t i = 0; i < ex->nh; i++) {
    hs[i].name = raw + ex->hoff[2 * i];
    hs[i].value = raw + ex->hoff[2 * i + 1];
  }
  dorm_http_param *ps = (dorm_http_param *)(hs + ex->nh);
  char *strs = (char *)(ps + np);
  size_t k = 0;
  for (const char *p = r->query; *p;) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    if (n) {
      const char *eq = memchr(p, '=', n);
      size_t kl = eq ? (size_t)(eq - p) : n;
      size_t vl = eq ? n - kl - 1 : 0;
      char *name = strs;
      memcpy(name, p, kl);
      for (size_t j = 0; j < kl; j++)
        if (name[j] == '+') name[j] = ' ';
      size_t nl = dorm_http_url_decode(name, kl);
      strs += kl + 1;
      char *val = strs;
      if (vl) memcpy(val, eq + 1, vl);
      for (size_t j = 0; j < vl; j++)
        if (val[j] == '+') val[j] = ' ';
      size_t dl = dorm_http_url_decode(val, vl);
      strs += vl + 1;
      ps[k].name = name;
      ps[k].name_len = nl;
      ps[k].value = val;
      ps[k].value_len = dl;
      k++;
    }
    p += n + (amp ? 1 : 0);
  }
  r->headers = hs;
  r->nheaders = ex->nh;
  r->params = ps;
  r->nparams = np;
  r->body = raw + ex->body_off;
  r->body_len = ex->raw.len - ex->body_off - 1; /* without our NUL */
  return 0;
}

/* ---- parser callbacks --------------------------------------------------- */

/* Record an early error and stop the parser (a non-zero return makes
 * http_parser_execute return with an error; the read callback then reads
 * early_status). */
static int stop(dorm__http_conn *c, int status) {
  if (!c->early_status) c->early_status = status;
  return 1;
}

static int on_message_begin(http_parser *p) {
  dorm__http_conn *c = p->data;
  if (c->closing || c->no_more) return 1;
  c->header_bytes = 0;
  c->cur = ex_new(c);
  if (!c->cur) return stop(c, 500);
  return 0;
}

/* Count header bytes against the limit (431). */
static int header_budget(dorm__http_conn *c, size_t len) {
  c->header_bytes += len;
  return c->header_bytes > c->srv->opts.max_header;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  dorm__http_conn *c = p->data;
  if (!c->cur || c->closing) return 1;
  if (header_budget(c, len)) return stop(c, 431);
  dorm__buf_append(&c->cur->raw, at, len);
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  dorm__http_conn *c = p->data;
  dorm__http_ex *ex = c->cur;
  if (!ex || c->closing) return 1;
  if (header_budget(c, len + 4)) return stop(c, 431);
  if (ex->hstate != 1) {
    if (ex->hstate == 0) ex->url_end = ex->raw.len;
    dorm__buf_putc(&ex->raw, '\0'); /* ends the url or the last value */
    if (ex->nh == ex->hcap) {
      size_t cap = ex->hcap ? ex->hcap * 2 : 16;
      size_t *h = dorm__realloc(ex->hoff, cap * 2 * sizeof *h);
      if (!h) return stop(c, 500);
      ex->hoff = h;
      ex->hcap = cap;
    }
    ex->hoff[2 * ex->nh] = ex->raw.len;
    ex->hoff[2 * ex->nh + 1] = ex->raw.len;
    ex->nh++;
    ex->hstate = 1;
  }
  dorm__buf_append(&ex->raw, at, len);
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  dorm__http_conn *c = p->data;
  dorm__http_ex *ex = c->cur;
  if (!ex || c->closing) return 1;
  if (header_budget(c, len)) return stop(c, 431);
  if (ex->hstate != 2) {
    dorm__buf_putc(&ex->raw, '\0'); /* ends the name */
    ex->hoff[2 * ex->nh - 1] = ex->raw.len;
    ex->hstate = 2;
  }
  dorm__buf_append(&ex->raw, at, len);
  return 0;
}

/* Answer "100 Continue" to a client that waits for it before sending its
 * body — only when nothing else of the connection is waiting to go out,
 * since the interim answer must not overtake earlier answers. */
static void maybe_continue(dorm__http_conn *c, dorm__http_ex *ex) {
  const char *v = NULL;
  for (size_t i = 0; i < ex->nh; i++)
    if (!strcasecmp(ex->raw.data + ex->hoff[2 * i], "expect"))
      v = ex->raw.data + ex->hoff[2 * i + 1];
  if (!v || strcasecmp(v, "100-continue")) return;
  ex->expect = 1;
  if (c->head != ex || c->writes) return;
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
  /* best effort: a client that does not get it sends the body anyway
   * after its own short wait */
  (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

static int on_headers_complete(http_parser *p) {
  dorm__http_conn *c = p->data;
  dorm__http_ex *ex = c->cur;
  if (!ex || c->closing) return 1;
  if (ex->hstate == 0) ex->url_end = ex->raw.len;
  dorm__buf_putc(&ex->raw, '\0');
  if (ex->raw.oom) return stop(c, 500);
  ex->hstate = 3;
  ex->req.method = http_method_str((enum http_method)p->method);
  ex->req.http_major = p->http_major;
  ex->req.http_minor = p->http_minor;
  ex->head = p->method == HTTP_HEAD;
  ex->body_off = ex->raw.len;
  if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
      p->content_length > c->srv->opts.max_body) {
    /* refuse before reading: the rest of the body is discarded by the
     * lingering close */
    c->early_status = 413;
    http_parser_pause(p, 1);
    return 0;
  }
  maybe_continue(c, ex);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  dorm__http_conn *c = p->data;
  dorm__http_ex *ex = c->cur;
  if (!ex || c->closing) return 1;
  if (ex->raw.len - ex->body_off + len > c->srv->opts.max_body)
    return stop(c, 413);
  dorm__buf_append(&ex->raw, at, len);
  return 0;
}

static int on_message_complete(http_parser *p) {
  dorm__http_conn *c = p->data;
  dorm__http_ex *ex = c->cur;
  if (!ex || c->closing) return 1;
  dorm__buf_putc(&ex->raw, '\0');
  if (ex->raw.oom || ex_finish_request(ex) != 0) return stop(c, 500);
  c->cur = NULL;
  ex->keep_alive = http_should_keep_alive(p) ? 1 : 0;
  if (!ex->keep_alive) c->no_more = 1;
  ex->state = DORM__EX_HANDLING;
  dorm_http_server *s = c->srv;
  s->handler(&ex->req, ex, s->arg);
  /* The handler may have closed the server or answered; either way no
   * byte after a "Connection: close" request is a request. */
  if (c->closing || c->no_more) http_parser_pause(p, 1);
  return 0;
}

/* ---- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  dorm__http_conn *c = h->data;
  /* one buffer for the whole server: every read is parsed (and copied
   * into its exchange) before the next read can land */
  buf->base = c->srv->readbuf;
  buf->len = sizeof c->srv->readbuf;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  dorm__http_conn *c = stream->data;
  if (c->closing) return;
  if (nread == 0) return;
  if (nread < 0) {
    if (nread != UV_EOF || c->lingering) {
      dorm__http_conn_close(c);
      return;
    }
    /* The client half-closed.  Requests it finished still get their
     * answers (a client like `nc` may close its side early); a partial
     * one is dropped. */
    c->eof = 1;
    c->no_more = 1;
    drop_partial(c);
    conn_update(c);
    return;
  }
  if (c->no_more) return; /* lingering or after a final request: discard */
  c->in_read = 1;
  size_t n =
      http_parser_execute(&c->parser, &settings, buf->base, (size_t)nread);
  c->in_read = 0;
  if (c->closing) return;
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (c->early_status) {
    early_fail(c, c->early_status);
  } else if (e != HPE_OK && e != HPE_PAUSED) {
    early_fail(c, e == HPE_HEADER_OVERFLOW ? 431 : 400);
  } else if (e == HPE_OK && n != (size_t)nread) {
    early_fail(c, 400);
  }
  if (c->closing) return;
  dorm__http_conn_flush(c);
  if (c->closing) return;
  conn_update(c);
}

/* ---- timers ------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  dorm__http_conn *c = t->data;
  if (c->closing) return;
  switch (c->timer_kind) {
    case DORM__T_REQUEST:
      /* too slow to send its request: answer 408, close */
      c->timer_kind = DORM__T_NONE;
      early_fail(c, 408);
      if (!c->closing) dorm__http_conn_flush(c);
      if (!c->closing) conn_update(c);
      break;
    default: /* idle, write stalled, linger over */
      dorm__http_conn_close(c);
      break;
  }
}

static void timer_set(dorm__http_conn *c, int kind, unsigned ms) {
  c->timer_kind = kind;
  if (kind == DORM__T_NONE)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Re-aim the timer, start or stop reading, and close when there is
 * nothing left to do; called after anything changed the connection. */
static void conn_update(dorm__http_conn *c) {
  if (c->closing) return;
  dorm_http_server *s = c->srv;
  if (c->lingering) return; /* its timer and reads are set */
  if (!c->writes && !c->head && (c->eof || c->no_more)) {
    if (c->eof)
      dorm__http_conn_close(c);
    else
      conn_linger(c); /* a final answer went out */
    return;
  }
  int want = !c->eof && !c->no_more &&
             c->nqueued < (unsigned)s->opts.max_pipeline &&
             c->tcp.write_queue_size < DORM__HTTP_MAX_WRITE_QUEUE;
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
      c->reading = 1;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
  if (c->writes) {
    timer_set(c, DORM__T_WRITE, s->opts.request_timeout_ms);
  } else if (c->cur) {
    /* measured from the request's first byte: trickling bytes does not
     * buy a slow client more time */
    if (c->timer_kind != DORM__T_REQUEST) {
      uint64_t spent = (uv_hrtime() - c->cur->req.start_ns) / 1000000;
      unsigned left = spent >= s->opts.request_timeout_ms
                          ? 1
                          : s->opts.request_timeout_ms - (unsigned)spent;
      timer_set(c, DORM__T_REQUEST, left);
    }
  } else if (!c->head) {
    timer_set(c, DORM__T_IDLE, s->opts.idle_timeout_ms);
  } else {
    timer_set(c, DORM__T_NONE, 0); /* handlers at work: their business */
  }
}

/* ---- writing ------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status) {
  dorm__http_write *w = (dorm__http_write *)req;
  dorm__http_conn *c = w->conn;
  for (size_t i = 0; i < w->n; i++) dorm__free(w->owned[i]);
  dorm__free(w);
  c->writes--;
  if (c->closing) return;
  if (status < 0) {
    dorm__http_conn_close(c);
    return;
  }
  conn_update(c);
  if (!c->closing) dorm__http_conn_drained(c);
}

void dorm__http_conn_flush(dorm__http_conn *c) {
  if (c->closing || c->in_read) return;
  for (;;) {
    uv_buf_t bufs[DORM__HTTP_GATHER];
    char *owned[DORM__HTTP_GATHER];
    size_t n = 0, total = 0;
    dorm__http_ex *ex = c->head;
    while (ex && n < DORM__HTTP_GATHER) {
      if (ex->state == DORM__EX_PARSING || ex->state == DORM__EX_HANDLING)
        break;
      if (ex->out.len) {
        bufs[n] = uv_buf_init(ex->out.data, (unsigned)ex->out.len);
        owned[n] = ex->out.data;
        total += ex->out.len;
        n++;
        dorm__buf_init(&ex->out); /* the bytes now belong to this write */
      }
      if (ex->state == DORM__EX_STREAMING) break;
      /* DONE and handed over: the exchange is finished */
      c->head = ex->next;
      if (!c->head) c->tail = NULL;
      c->nqueued--;
      int last = ex->close;
      dorm__http_ex_free(ex);
      if (last) {
        /* nothing after a final answer is sent: drop what is queued */
        c->no_more = 1;
        while (c->head) {
          dorm__http_ex *e = c->head;
          c->head = e->next;
          c->nqueued--;
          if (e->state == DORM__EX_HANDLING || e->state == DORM__EX_STREAMING) {
            e->conn = NULL; /* its handler completes it later */
            e->next = NULL;
          } else {
            dorm__http_ex_free(e);
          }
        }
        c->tail = NULL;
        c->cur = NULL;
        break;
      }
      ex = c->head;
    }
    if (!n) return;
    size_t done = 0;
    if (!c->writes) {
      int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)n);
      if (w > 0) done = (size_t)w;
    }
    size_t i = 0;
    while (i < n && done >= bufs[i].len) {
      done -= bufs[i].len;
      dorm__free(owned[i]);
      i++;
    }
    if (i < n) {
      dorm__http_write *w = dorm__malloc(sizeof *w);
      if (!w) {
        for (; i < n; i++) dorm__free(owned[i]);
        dorm__http_conn_close(c);
        return;
      }
      w->conn = c;
      w->n = 0;
      for (; i < n; i++) {
        w->owned[w->n] = owned[i];
        w->bufs[w->n] =
            uv_buf_init(bufs[i].base + done, (unsigned)(bufs[i].len - done));
        done = 0;
        w->n++;
      }
      int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs,
                        (unsigned)w->n, on_write);
      if (rc != 0) {
        for (size_t j = 0; j < w->n; j++) dorm__free(w->owned[j]);
        dorm__free(w);
        dorm__http_conn_close(c);
        return;
      }
      c->writes++;
    }
    (void)total;
    if (!c->head || n < DORM__HTTP_GATHER) break;
  }
  conn_update(c);
}

/* ---- closing ------------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h) {
  dorm__http_conn *c = h->data;
  if (--c->handles > 0) return;
  dorm_http_server *s = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  dorm__free(c);
  dorm__http_server_maybe_done(s);
}

void dorm__http_conn_close(dorm__http_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  c->cur = NULL;
  /* Orphan the exchanges a handler holds (they are freed when completed),
   * free the others; tell the holders that asked to know. */
  dorm__http_ex *gone = NULL, *ex = c->head;
  c->head = c->tail = NULL;
  c->nqueued = 0;
  while (ex) {
    dorm__http_ex *next = ex->next;
    ex->next = NULL;
    if (ex->state == DORM__EX_HANDLING || ex->state == DORM__EX_STREAMING) {
      ex->conn = NULL;
      if (ex->gone) {
        ex->next = gone;
        gone = ex;
      }
    } else {
      dorm__http_ex_free(ex);
    }
    ex = next;
  }
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
  while (gone) {
    dorm__http_ex *next = gone->next;
    gone->next = NULL;
    dorm_http_gone_fn fn = gone->gone;
    gone->gone = NULL;
    fn(gone, gone->gone_arg); /* may complete (free) gone */
    gone = next;
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) { dorm__free(req); }

/* Send FIN after the final answer, then read and discard until the client
 * closes too or the linger time is over. */
static void conn_linger(dorm__http_conn *c) {
  c->lingering = 1;
  uv_shutdown_t *req = dorm__malloc(sizeof *req);
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    dorm__free(req);
    dorm__http_conn_close(c);
    return;
  }
  if (!c->reading &&
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
    c->reading = 1;
  unsigned ms = c->srv->opts.request_timeout_ms < DORM__HTTP_LINGER_MS
                    ? c->srv->opts.request_timeout_ms
                    : DORM__HTTP_LINGER_MS;
  timer_set(c, DORM__T_LINGER, ms);
}

void dorm__http_conn_drain(dorm__http_conn *c) {
  if (c->closing) return;
  c->no_more = 1;
  drop_partial(c);
  if (!c->head && !c->writes) {
    dorm__http_conn_close(c);
    return;
  }
  conn_update(c);
}

/* ---- accepting ---------------------------------------------------------- */

void dorm__http_on_connection(uv_stream_t *listener, int status) {
  dorm_http_server *s = listener->data;
  if (status < 0 || s->closing) return;
  dorm__http_conn *c = dorm__calloc(1, sizeof *c);
  if (!c) { /* refused, or libuv would stop listening until it is taken */
    dorm__http_server_refuse(s);
    return;
  }
  c->srv = s;
  uv_tcp_init(s->uv, &c->tcp);
  uv_timer_init(s->uv, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    dorm__http_conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  snprintf(c->peer, sizeof c->peer, "-");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    char ip[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip,
               ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
      snprintf(c->peer, sizeof c->peer, "%s:%d", ip,
               ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
  }
  if (s->nconns > (size_t)s->opts.max_connections) {
    /* one too many: a short 503 through the normal path (so it lingers
     * and the client reads it), then the connection closes */
    early_fail(c, 503);
    if (!c->closing) dorm__http_conn_flush(c);
    return;
  }
  conn_update(c);
}
