/* SPDX-License-Identifier: MIT */
/* http/response.c — answers: serializing a response, streaming, the
 * orphan rule, and the small helpers of dorm/http.h.
 *
 * An answer is serialized at once into the exchange's `out` buffer (status
 * line, headers, body), so the handler's body may be freed as soon as the
 * respond call returns, and the connection only ever moves finished bytes.
 * A response whose client has gone (an orphan: conn == NULL) is logged,
 * freed, and reported as DORM_ECLOSED; that is the whole cost of a vanished
 * client.  Errors the server decides itself (400, 408, 413, 431, 500, 503)
 * have fixed texts and always close the connection.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"

const char *dorm_http_status_text(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

void dorm__http_ex_free(dorm__http_ex *ex) {
  dorm_http_server *s = ex->srv;
  dorm__buf_free(&ex->raw);
  dorm__buf_free(&ex->extra);
  dorm__buf_free(&ex->out);
  dorm__free(ex->hoff);
  dorm__free(ex->meta);
  dorm__free(ex);
  s->nlive--;
  dorm__http_server_maybe_done(s);
}

/* Whether the connection closes after this answer. */
static int must_close(const dorm__http_ex *ex) {
  /* while the server closes, the last answer queued says so (an earlier
   * one must not: the connection would be closed under the later ones) */
  return !ex->keep_alive || ex->close ||
         (ex->srv->closing && !ex->next && ex->conn && !ex->conn->cur);
}

/* Status line and the server's headers into ex->out.  body_len < 0: no
 * Content-Length (streams, 204). */
static void put_head(dorm__http_ex *ex, int status, const char *ctype,
                     long long body_len, const char *te) {
  dorm__buf *b = &ex->out;
  dorm__buf_puts(b, "HTTP/1.1 ");
  dorm__buf_put_int(b, status);
  dorm__buf_putc(b, ' ');
  dorm__buf_puts(b, dorm_http_status_text(status));
  dorm__buf_puts(b, "\r\n");
  if (ctype) {
    dorm__buf_puts(b, "Content-Type: ");
    dorm__buf_puts(b, ctype);
    dorm__buf_puts(b, "\r\n");
  }
  if (body_len >= 0) {
    dorm__buf_puts(b, "Content-Length: ");
    dorm__buf_put_int(b, body_len);
    dorm__buf_puts(b, "\r\n");
  }
  if (te) {
    dorm__buf_puts(b, "Transfer-Encoding: ");
    dorm__buf_puts(b, te);
    dorm__buf_puts(b, "\r\n");
  }
  if (must_close(ex)) {
    ex->close = 1;
    dorm__buf_puts(b, "Connection: close\r\n");
  } else if (ex->req.http_minor == 0) {
    dorm__buf_puts(b, "Connection: keep-alive\r\n");
  }
  if (ex->extra.len) dorm__buf_append(b, ex->extra.data, ex->extra.len);
  dorm__buf_puts(b, "\r\n");
}

/* The bare answer when even building an answer failed: static text, then
 * the connection closes. */
static void put_bare_500(dorm__http_ex *ex) {
  static const char msg[] =
      "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
      "Connection: close\r\n\r\n";
  dorm__buf_free(&ex->out);
  dorm__buf_init(&ex->out);
  dorm__buf_append(&ex->out, msg, sizeof msg - 1);
  ex->status = 500;
  ex->bytes = 0;
  ex->close = 1;
  /* if even this failed, close without an answer */
  if (ex->out.oom && ex->conn) ex->conn->no_more = 1;
}

int dorm__http_ex_completed(dorm__http_ex *ex) {
  ex->state = DORM__EX_DONE;
  dorm__http_log(ex->srv, ex);
  dorm__http_conn *c = ex->conn;
  if (!c) {
    dorm__http_ex_free(ex);
    return DORM_ECLOSED;
  }
  dorm__http_conn_flush(c);
  return 0;
}

static int json_body(int status, const char *msg, dorm__buf *out) {
  json_t *o = json_pack("{s:s}", "error", msg);
  if (!o) return DORM_ENOMEM;
  dorm__json_begin(); /* a dump that lost a key to a failed allocation */
  size_t n = json_dumpb(o, NULL, 0, JSON_COMPACT);
  if (dorm__json_oom(NULL)) n = 0;
  int rc = DORM_ENOMEM;
  /* jansson allocates while it writes (its loop check): the second call
   * can fail too, and then the buffer holds no text */
  dorm__json_begin();
  if (n && dorm__buf_reserve(out, n) == 0 &&
      json_dumpb(o, out->data + out->len, n, JSON_COMPACT) == n &&
      !dorm__json_oom(NULL)) {
    out->len += n;
    rc = 0;
  }
  json_decref(o);
  return rc;
}

void dorm__http_ex_fail(dorm__http_ex *ex, int status) {
  const char *msg;
  switch (status) {
    case 400: msg = "malformed HTTP request"; break;
    case 408: msg = "request timed out"; break;
    case 413: msg = "request body too large"; break;
    case 431: msg = "request headers too large"; break;
    case 503: msg = "too many connections"; break;
    default:
      status = 500;
      msg = "internal error";
      break;
  }
  ex->keep_alive = 0;
  ex->close = 1;
  ex->status = status;
  dorm__buf body;
  dorm__buf_init(&body);
  dorm__buf_free(&ex->out);
  dorm__buf_init(&ex->out);
  if (json_body(status, msg, &body) == 0) {
    put_head(ex, status, "application/json", (long long)body.len, NULL);
    dorm__buf_append(&ex->out, body.data, body.len);
    ex->bytes = body.len;
  }
  if (body.oom || ex->out.oom || !ex->out.len) put_bare_500(ex);
  dorm__buf_free(&body);
  ex->state = DORM__EX_DONE;
  dorm__http_log(ex->srv, ex);
}

int dorm_http_response_header(dorm_http_response *res, const char *name,
                              const char *value) {
  if (!res || !name || !value || res->state != DORM__EX_HANDLING || !*name)
    return DORM_EINVAL;
  if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n") ||
      !strcasecmp(name, "content-length") ||
      !strcasecmp(name, "transfer-encoding") || !strcasecmp(name, "connection"))
    return DORM_EINVAL;
  size_t before = res->extra.len;
  dorm__buf_puts(&res->extra, name);
  dorm__buf_puts(&res->extra, ": ");
  dorm__buf_puts(&res->extra, value);
  dorm__buf_puts(&res->extra, "\r\n");
  if (res->extra.oom) {
    res->extra.oom = 0;
    res->extra.len = before;
    return DORM_ENOMEM;
  }
  return 0;
}

int dorm_http_respond(dorm_http_response *res, int status,
                      const char *content_type, const void *body, size_t len) {
  if (!res || res->state != DORM__EX_HANDLING) return DORM_ESTATE;
  int rc = 0;
  if (status < 200 || status > 599) {
    put_bare_500(res);
    rc = DORM_EINVAL;
  } else {
    res->status = status;
    int bodyless = status == 204 || status == 304;
    put_head(res, status, content_type, bodyless ? -1 : (long long)len, NULL);
    if (!bodyless && !res->head && len) dorm__buf_append(&res->out, body, len);
    res->bytes = bodyless ? 0 : len;
    if (res->out.oom) {
      put_bare_500(res);
      rc = DORM_ENOMEM;
    }
  }
  int c = dorm__http_ex_completed(res);
  return rc ? rc : c;
}

int dorm_http_respond_json(dorm_http_response *res, int status, json_t *body) {
  if (!res || res->state != DORM__EX_HANDLING) {
    json_decref(body);
    return DORM_ESTATE;
  }
  if (!body) {
    put_bare_500(res);
    dorm__http_ex_completed(res);
    return DORM_ENOMEM;
  }
  if (!res->conn) { /* nobody will read it: skip the serialization */
    json_decref(body);
    res->status = status;
    return dorm__http_ex_completed(res);
  }
  /* serialize straight after the head: size first, then into place */
  dorm__json_begin(); /* a dump that lost a key to a failed allocation */
  size_t n = json_dumpb(body, NULL, 0, JSON_COMPACT);
  if (dorm__json_oom(NULL)) n = 0;
  int rc = 0;
  if (!n) {
    put_bare_500(res);
    rc = DORM_ENOMEM;
  } else {
    res->status = status;
    put_head(res, status, "application/json", (long long)n, NULL);
    int written = 1;
    if (!res->head && dorm__buf_reserve(&res->out, n) == 0) {
      /* jansson allocates while it writes (its loop check): this call can
       * fail too, and the bytes reserved would go out unwritten */
      dorm__json_begin();
      written = json_dumpb(body, res->out.data + res->out.len, n,
                           JSON_COMPACT) == n &&
                !dorm__json_oom(NULL);
      if (written) res->out.len += n;
    }
    res->bytes = n;
    if (res->out.oom || !written) {
      put_bare_500(res);
      rc = DORM_ENOMEM;
    }
  }
  json_decref(body);
  int c = dorm__http_ex_completed(res);
  return rc ? rc : c;
}

static json_t *utf8_string(const char *msg);

int dorm_http_respond_error(dorm_http_response *res, int status,
                            const char *message) {
  /* a message may echo the client's bytes: invalid UTF-8 becomes U+FFFD
   * rather than a JSON encoding failure (and a bare 500) */
  json_t *text = utf8_string(message ? message : "");
  return dorm_http_respond_json(
      res, status, text ? json_pack("{s:o}", "error", text) : NULL);
}

int dorm_http_response_alive(const dorm_http_response *res) {
  return res && res->conn && !res->conn->closing;
}

void dorm_http_response_on_gone(dorm_http_response *res, dorm_http_gone_fn fn,
                                void *arg) {
  if (!res) return;
  res->gone = fn;
  res->gone_arg = arg;
}

/* ---- streaming ---------------------------------------------------------- */

int dorm_http_stream_start(dorm_http_response *res, int status,
                           const char *content_type) {
  if (!res || res->state != DORM__EX_HANDLING) return DORM_ESTATE;
  if (status < 200 || status > 599) status = 500;
  res->status = status;
  res->state = DORM__EX_STREAMING;
  if (!res->conn) return DORM_ECLOSED;
  /* HTTP/1.0 has no chunked encoding: the end of the body is the close */
  res->chunked = res->req.http_minor >= 1;
  if (!res->chunked) res->keep_alive = 0;
  put_head(res, status, content_type, -1, res->chunked ? "chunked" : NULL);
  if (res->out.oom) {
    put_bare_500(res);
    res->state = DORM__EX_STREAMING;
    return DORM_ENOMEM;
  }
  dorm__http_conn_flush(res->conn);
  return 0;
}

int dorm_http_stream_write(dorm_http_response *res, const void *data,
                           size_t len) {
  if (!res || res->state != DORM__EX_STREAMING) return DORM_ESTATE;
  if (!res->conn || res->conn->closing) return DORM_ECLOSED;
  if (!len) return 0;
  size_t before = res->out.len;
  if (res->chunked) {
    dorm__buf_printf(&res->out, "%zx\r\n", len);
    dorm__buf_append(&res->out, data, len);
    dorm__buf_puts(&res->out, "\r\n");
  } else {
    dorm__buf_append(&res->out, data, len);
  }
  if (res->out.oom) {
    res->out.oom = 0;
    res->out.len = before;
    return DORM_ENOMEM;
  }
  res->bytes += len;
  dorm__http_conn_flush(res->conn);
  return 0;
}

size_t dorm_http_stream_pending(const dorm_http_response *res) {
  if (!res || !res->conn || res->conn->closing) return 0;
  return res->out.len + res->conn->tcp.write_queue_size;
}

int dorm_http_stream_end(dorm_http_response *res) {
  if (!res || res->state != DORM__EX_STREAMING) return DORM_ESTATE;
  if (res->chunked && res->conn) dorm__buf_puts(&res->out, "0\r\n\r\n");
  if (res->out.oom) {
    /* the terminating chunk could not be queued: closing the connection
     * is the only way left to end the body */
    res->out.oom = 0;
    res->close = 1;
  }
  return dorm__http_ex_completed(res);
}

int dorm_http_stream_on_drain(dorm_http_response *res, size_t below,
                              dorm_http_drain_fn fn, void *arg) {
  if (!res || res->state != DORM__EX_STREAMING) return DORM_ESTATE;
  if (!res->conn || res->conn->closing) return DORM_ECLOSED;
  res->drain = NULL;
  if (dorm_http_stream_pending(res) <= below) return 1;
  res->drain = fn;
  res->drain_arg = arg;
  res->drain_below = below;
  return 0;
}

void dorm__http_conn_drained(dorm__http_conn *c) {
  /* one callback at a time: each may write, end its stream (freeing the
   * exchange) or close the connection */
  while (!c->closing) {
    dorm__http_ex *hit = NULL;
    for (dorm__http_ex *ex = c->head; ex; ex = ex->next)
      if (ex->drain && dorm_http_stream_pending(ex) <= ex->drain_below) {
        hit = ex;
        break;
      }
    if (!hit) return;
    dorm_http_drain_fn fn = hit->drain;
    hit->drain = NULL;
    fn(hit, hit->drain_arg);
  }
}

int dorm_http_stream_abort(dorm_http_response *res) {
  if (!res || res->state != DORM__EX_STREAMING) return DORM_ESTATE;
  res->drain = NULL;
  res->close = 1; /* no terminating chunk: the close ends the body */
  res->keep_alive = 0;
  return dorm__http_ex_completed(res);
}

/* ---- helpers ------------------------------------------------------------ */

const char *dorm_http_request_header(const dorm_http_request *req,
                                     const char *name) {
  if (!req || !name) return NULL;
  for (size_t i = 0; i < req->nheaders; i++)
    if (!strcasecmp(req->headers[i].name, name)) return req->headers[i].value;
  return NULL;
}

const dorm_http_param *dorm_http_request_param(const dorm_http_request *req,
                                               const char *name) {
  if (!req || !name) return NULL;
  for (size_t i = 0; i < req->nparams; i++)
    if (!strcmp(req->params[i].name, name)) return &req->params[i];
  return NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t dorm_http_url_decode(char *s, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 &&
        (lo = hexval(s[i + 2])) >= 0) {
      s[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      s[o++] = s[i];
    }
  }
  s[o] = '\0';
  return o;
}

/* ---- UTF-8 -------------------------------------------------------------- */

size_t dorm_http_utf8_valid(const char *s, size_t len) {
  return dorm__utf8_valid(s, len);
}

size_t dorm_http_utf8_clip(const char *s, size_t len, size_t max) {
  if (len <= max) return len;
  size_t n = max;
  /* step back over continuation bytes to the start of the cut character */
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80 && max - n < 4) n--;
  return n;
}

/* msg with every byte that is not part of valid UTF-8 as U+FFFD, in a
 * new json string (NULL: out of memory). */
static json_t *utf8_string(const char *msg) {
  size_t len = strlen(msg);
  if (dorm__utf8_valid(msg, len) == len) return json_string(msg);
  dorm__buf b;
  dorm__buf_init(&b);
  dorm__buf_put_utf8(&b, msg, len);
  json_t *j = b.oom ? NULL : json_stringn(dorm__buf_cstr(&b), b.len);
  dorm__buf_free(&b);
  return j;
}
