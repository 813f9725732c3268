/* SPDX-License-Identifier: MIT */
/* tools/serve/serve_api.c — the routes of `dorm serve` (docs/serve.md,
 * "Routes") and their answers.
 *
 * A request is routed, its input turned into a query (tools/serve_input.c)
 * on the one reusable dorm_query, and the query sent with a dorm_async_*
 * call; the answer is written from the deferred's callback or errback —
 * exactly one of them runs, and it always completes the response, even
 * when the client has gone (the server then drops it).  Nothing blocks the
 * loop.  Database errors become fixed texts (serve_db_error) so no answer
 * ever carries SQL or the database's message; the operator sees the real
 * message on stderr for 5xx answers.
 *
 * On a model with many_to_many fields an answer waits for their arrays
 * (serve_m2m_fill, one query per field for the whole page), and a POST or
 * PATCH whose body sets a relation runs as one transaction: the row, then
 * the relation (serve_m2m_apply), then the arrays read back; the request
 * then owns its query (call.q) since the block runs after the handler has
 * returned and st->q has been reused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/serve/serve.h"

enum op {
  OP_LIST,
  OP_COUNT,
  OP_GET,
  OP_CREATE,
  OP_UPDATE,
  OP_DELETE,
  OP_HEALTH
};

/* What a deferred's step needs to answer: one small allocation per
 * request, freed (call_free) by whichever of callback and errback ends
 * it. */
typedef struct call {
  dorm_http_response *res;
  dorm_http_request *req;
  serve_state *st;
  const dorm_model *model;
  enum op op;
  char pk[96]; /* the key as the user wrote it, for a 404's message */
  /* many_to_many (serve_m2m.c) */
  dorm_db *db;         /* borrowed: where the relations are read */
  serve_m2m_want want; /* the fields the answer carries */
  serve_m2m_input in;  /* the relations a body sets (owned) */
  dorm_query *q;       /* owned: a write run later, inside a transaction */
  size_t nset;         /* fields the write sets (0: read the row only) */
  dorm_db *tx;         /* borrowed: the transaction, while it runs */
  json_t *out;         /* owned: the answer being completed */
  int status;          /* the answer's status once the arrays are in */
} call;

static void call_free(call *c) {
  serve_m2m_input_free(&c->in);
  dorm_query_free(c->q);
  json_decref(c->out);
  free(c);
}

static void answer_error(dorm_http_response *res, int status, const char *msg) {
  dorm_http_respond_error(res, status, msg);
}

static const char *model_label(const call *c) {
  /* the name the user used in the URL: the lower-cased model name */
  return c->req->path + 5;
}

static void not_found(call *c) {
  char msg[256];
  const char *name = model_label(c);
  const char *slash = strchr(name, '/');
  int n = slash ? (int)(slash - name) : (int)strlen(name);
  snprintf(msg, sizeof msg, "no %.*s with primary key '%s'", n > 64 ? 64 : n,
           name, c->pk);
  answer_error(c->res, 404, msg);
}

static dorm_result on_failed(dorm_result *r, void *arg);

/* The many_to_many arrays are in c->out: answer it. */
static dorm_result on_filled(dorm_result *r, void *arg) {
  call *c = arg;
  json_t *body = c->out;
  c->out = NULL;
  if (c->op == OP_LIST) body = json_pack("{s:o}", "results", body);
  dorm_http_respond_json(c->res, c->status, body);
  call_free(c);
  return dorm_result_none();
}

/* Answer obj (an object, or a list's array) with status, once its
 * many_to_many arrays are read from c->db (or at once when the model has
 * none).  Takes obj.  Ends c. */
static void answer_objects(call *c, int status, json_t *obj) {
  c->out = obj;
  c->status = status;
  if (!obj) {
    answer_error(c->res, 503, "out of memory");
    call_free(c);
    return;
  }
  dorm_deferred *d = NULL;
  int rc = c->want.n ? serve_m2m_fill(c->db, c->model, obj, &c->want, &d) : 0;
  if (rc < 0 ||
      (rc > 0 && dorm_deferred_add_callbacks(d, on_filled, on_failed, c))) {
    answer_error(c->res, 503, "out of memory");
    call_free(c);
    return;
  }
  if (rc == 0) on_filled(NULL, c);
}

static dorm_result on_done(dorm_result *r, void *arg) {
  call *c = arg;
  switch (c->op) {
    case OP_LIST:
      answer_objects(c, 200, dorm_rows_to_json(dorm_result_rows_of(r)));
      return dorm_result_none();
    case OP_COUNT:
      dorm_http_respond_json(
          c->res, 200,
          json_pack(
              "{s:I}", "count",
              (json_int_t)(r->kind == DORM_RESULT_COUNT ? r->u.count : 0)));
      break;
    case OP_GET:
    case OP_CREATE: {
      const dorm_row *row = dorm_result_row_of(r);
      if (!row) {
        not_found(c);
        break;
      }
      if (c->op == OP_CREATE) /* a new row has no pairs yet */
        c->db = NULL;
      answer_objects(c, c->op == OP_CREATE ? 201 : 200, dorm_row_to_json(row));
      return dorm_result_none();
    }
    case OP_UPDATE: {
      const dorm_row *row = dorm_result_row_of(r);
      if (!row) {
        not_found(c);
        break;
      }
      answer_objects(c, 200, dorm_row_to_json(row));
      return dorm_result_none();
    }
    case OP_DELETE:
      if (r->kind == DORM_RESULT_COUNT && r->u.count == 0)
        not_found(c);
      else
        dorm_http_respond(c->res, 204, NULL, NULL, 0);
      break;
    case OP_HEALTH:
      dorm_http_respond_json(c->res, 200, json_pack("{s:b}", "ok", 1));
      break;
  }
  call_free(c);
  return dorm_result_none();
}

/* A foreign key the database refused (23503) on a create or update: the
 * body's relation fields, named as the client wrote them, since the body
 * is the only place a missing related key can come from (SQLite does not
 * say which constraint failed, and a constraint's name is no word of the
 * client's).  0 when the body sets none. */
static int fk_conflict(const call *c, char *msg, size_t cap) {
  if ((c->op != OP_CREATE && c->op != OP_UPDATE) || !c->req->body_len) return 0;
  json_t *obj = json_loadb(c->req->body, c->req->body_len, 0, NULL);
  if (!json_is_object(obj)) {
    json_decref(obj);
    return 0;
  }
  char fields[256];
  size_t n = 0, len = 0;
  const char *key;
  json_t *v;
  fields[0] = '\0';
  json_object_foreach(obj, key, v) {
    const dorm_field *f = NULL;
    for (size_t i = 0; i < c->model->nfields && !f; i++) {
      const dorm_field *g = &c->model->fields[i];
      if (g->target &&
          (!strcmp(key, g->name) || (g->column && !strcmp(key, g->column))))
        f = g;
    }
    if (!f || json_is_null(v)) continue;
    int w = snprintf(fields + len, sizeof fields - len, "%s'%s'", n ? ", " : "",
                     key);
    if (w < 0 || (size_t)w >= sizeof fields - len) break;
    len += (size_t)w;
    n++;
  }
  json_decref(obj);
  if (!n) return 0;
  snprintf(msg, cap,
           n == 1 ? "conflict: field %s: no related object has that key"
                  : "conflict: fields %s: a related object with one of those "
                    "keys does not exist",
           fields);
  return 1;
}

static dorm_result on_failed(dorm_result *r, void *arg) {
  call *c = arg;
  const char *text;
  int status = serve_db_error(r, &text);
  char fkmsg[320];
  if (status == 409 && !strcmp(dorm_result_sqlstate(r), "23503")) {
    if (fk_conflict(c, fkmsg, sizeof fkmsg))
      text = fkmsg;
    else if (c->op == OP_DELETE)
      text = "conflict: other objects still refer to this one";
  }
  if (c->op == OP_HEALTH) {
    dorm_http_respond_json(
        c->res, 503,
        json_pack("{s:b, s:s}", "ok", 0, "error", "database unavailable"));
  } else if (status == 404) {
    not_found(c);
  } else {
    if (status >= 500)
      fprintf(stderr, "dorm serve: %s %s: %s: %s\n", c->req->method,
              c->req->path, dorm_err_name(dorm_result_code(r)),
              dorm_result_message(r));
    answer_error(c->res, status, text);
  }
  call_free(c);
  return dorm_result_none(); /* handled: not an unhandled error */
}

/* Attach the answer to d (or answer 503 when the request could not be
 * made at all). */
static void await(call *c, dorm_deferred *d) {
  if (!d || dorm_deferred_add_callbacks(d, on_done, on_failed, c) != 0) {
    /* no step will run: answer now (a NULL deferred means nothing was
     * started) */
    answer_error(c->res, 503, "database unavailable");
    call_free(c);
  }
}

/* ---- routes -----------------------------------------------------------------
 */

static void method_not_allowed(dorm_http_response *res, const char *method,
                               const char *allow) {
  char msg[128];
  snprintf(msg, sizeof msg, "method %s not allowed here", method);
  dorm_http_response_header(res, "Allow", allow);
  answer_error(res, 405, msg);
}

/* HEAD is GET without the body (the HTTP layer drops the body bytes and
 * keeps the head, Content-Length included), as RFC 9110 asks. */
static int is_get(const dorm_http_request *req) {
  return !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
}

static call *call_new(serve_state *st, dorm_http_request *req,
                      dorm_http_response *res, const dorm_model *m,
                      enum op op) {
  call *c = calloc(1, sizeof *c);
  if (!c) {
    answer_error(res, 503, "out of memory");
    return NULL;
  }
  c->res = res;
  c->req = req;
  c->st = st;
  c->model = m;
  c->op = op;
  c->db = st->db;
  if (m) serve_m2m_want_all(m, &c->want);
  return c;
}

/* ---- a write with many_to_many keys: one transaction -----------------------
 *
 * The row is written (or, for a PATCH of relations only, read) on the
 * transaction, then each relation is set (Django's set()), then the
 * arrays are read back on the transaction; COMMIT answers.  Any error —
 * a key with no row fails the join table's foreign key, at the latest
 * at COMMIT — rolls everything back, the created row included.
 */

static dorm_result tx_fill(dorm_result *r, void *arg) {
  call *c = arg;
  dorm_deferred *d = NULL;
  int rc = serve_m2m_fill(c->tx, c->model, c->out, &c->want, &d);
  if (rc < 0) return dorm_result_error(DORM_ENOMEM, "out of memory");
  return rc ? dorm_result_deferred(d) : dorm_result_none();
}

static dorm_result tx_row(dorm_result *r, void *arg) {
  call *c = arg;
  const dorm_row *row = dorm_result_row_of(r);
  if (!row) return dorm_result_error(DORM_ENOTFOUND, "no such row");
  c->out = dorm_row_to_json(row);
  dorm_deferred *d = c->out ? serve_m2m_apply(c->tx, c->model, c->out, &c->in,
                                              c->op == OP_CREATE)
                            : NULL;
  if (!d) return dorm_result_error(DORM_ENOMEM, "out of memory");
  if (dorm_deferred_add_callback(d, tx_fill, c) != 0) {
    dorm_deferred_cancel(d); /* its own step frees its job */
    return dorm_result_error(DORM_ENOMEM, "out of memory");
  }
  return dorm_result_deferred(d);
}

static dorm_deferred *tx_block(dorm_db *tx, void *arg) {
  call *c = arg;
  c->tx = tx;
  dorm_deferred *d = c->op == OP_CREATE ? dorm_async_create(tx, c->q)
                     : c->nset          ? dorm_async_update(tx, c->q)
                                        : dorm_async_get(tx, c->q);
  dorm_query_free(c->q); /* compiled during the call */
  c->q = NULL;
  if (d && dorm_deferred_add_callback(d, tx_row, c) != 0) {
    dorm_deferred_cancel(d);
    return NULL;
  }
  return d;
}

static dorm_result on_tx_done(dorm_result *r, void *arg) {
  call *c = arg;
  dorm_http_respond_json(c->res, c->op == OP_CREATE ? 201 : 200, c->out);
  c->out = NULL;
  call_free(c);
  return dorm_result_none();
}

/* Run c's write (c->q, owned) with c->in's relations in one transaction
 * and answer from its outcome. */
static void write_in_tx(serve_state *st, call *c) {
  dorm_deferred *d = dorm_async_atomic(st->db, tx_block, c);
  if (!d || dorm_deferred_add_callbacks(d, on_tx_done, on_failed, c) != 0) {
    /* nothing will run (a NULL deferred: tx_block never runs) */
    answer_error(c->res, 503, "database unavailable");
    call_free(c);
  }
}

static void refused(dorm_http_response *res, call *c, const serve_refusal *w) {
  answer_error(res, w->status, w->message);
  call_free(c);
}

/* A streamed list (serve_stream.c) that failed before its first row:
 * the usual error answer, or, when the database cannot stream, the
 * answer read whole. */
static void list_failed(dorm_result *r, void *ctx) {
  call *c = ctx;
  if (dorm_result_code(r) != DORM_EUNSUPPORTED) {
    on_failed(r, c);
    return;
  }
  serve_state *st = c->st;
  serve_refusal why;
  st->no_stream = 1;
  dorm_query_reset(st->q, DORM_QUERY_SELECT, c->model);
  if (serve_apply_params(st, st->q, c->req, 1, &c->want, &why))
    return refused(c->res, c, &why);
  await(c, dorm_async_filter(st->db, st->q));
}

static void list_end(void *ctx) { call_free(ctx); }

static void route_collection(serve_state *st, dorm_http_request *req,
                             dorm_http_response *res, const dorm_model *m,
                             int is_count) {
  int get = is_get(req);
  int post = !strcmp(req->method, "POST");
  if (is_count ? !get : !(get || post))
    return method_not_allowed(res, req->method,
                              is_count ? "GET, HEAD" : "GET, HEAD, POST");
  serve_refusal why;
  dorm_query *q = st->q;
  if (post) {
    call *c = call_new(st, req, res, m, OP_CREATE);
    if (!c) return;
    int m2m = c->want.n > 0;            /* every many_to_many field, call_new */
    if (m2m) q = c->q = dorm_insert(m); /* may run later, in a transaction */
    if (!q) return refused(res, c, &(serve_refusal){503, "out of memory"});
    dorm_query_reset(q, DORM_QUERY_INSERT, m);
    if (serve_apply_body(m, q, req->body, req->body_len, 1, &c->nset,
                         m2m ? &c->in : NULL, &why))
      return refused(res, c, &why);
    if (c->in.n) return write_in_tx(st, c);
    return await(c, dorm_async_create(st->db, q));
  }
  call *c = call_new(st, req, res, m, is_count ? OP_COUNT : OP_LIST);
  if (!c) return;
  dorm_query_reset(q, DORM_QUERY_SELECT, m);
  if (serve_apply_params(st, q, req, !is_count, &c->want, &why))
    return refused(res, c, &why);
  /* a list is streamed as its rows arrive (not for HEAD, which has no
   * body, nor with many_to_many arrays, filled per page) */
  if (!is_count && !strcmp(req->method, "GET") && !c->want.n &&
      !st->no_stream) {
    if (serve_list_stream(st, res, q, list_failed, list_end, c))
      refused(res, c, &(serve_refusal){503, "out of memory"});
    return;
  }
  await(c,
        is_count ? dorm_async_count(st->db, q) : dorm_async_filter(st->db, q));
}

static void route_object(serve_state *st, dorm_http_request *req,
                         dorm_http_response *res, const dorm_model *m,
                         char *pktext) {
  enum op op;
  if (is_get(req))
    op = OP_GET;
  else if (!strcmp(req->method, "PATCH"))
    op = OP_UPDATE;
  else if (!strcmp(req->method, "DELETE"))
    op = OP_DELETE;
  else
    return method_not_allowed(res, req->method, "GET, HEAD, PATCH, DELETE");
  call *c = call_new(st, req, res, m, op);
  if (!c) return;
  size_t n = dorm_http_url_decode(pktext, strlen(pktext));
  if (dorm_http_utf8_valid(pktext, n) != n) {
    answer_error(res, 400,
                 "the primary key in the path is not valid UTF-8 once "
                 "%-decoded");
    call_free(c);
    return;
  }
  snprintf(c->pk, sizeof c->pk, "%.*s", (int)dorm_http_utf8_clip(pktext, n, 80),
           pktext);
  dorm_value pk;
  if (n != strlen(pktext) || serve_parse_pk(m, pktext, &pk) != 0) {
    not_found(c); /* not even a key of the right type */
    call_free(c);
    return;
  }
  dorm_query *q = st->q;
  serve_refusal why;
  if (op == OP_UPDATE) {
    int m2m = c->want.n > 0;            /* every many_to_many field, call_new */
    if (m2m) q = c->q = dorm_update(m); /* may run later, in a transaction */
    if (!q) return refused(res, c, &(serve_refusal){503, "out of memory"});
    dorm_query_reset(q, DORM_QUERY_UPDATE, m);
    if (serve_apply_body(m, q, req->body, req->body_len, 0, &c->nset,
                         m2m ? &c->in : NULL, &why))
      return refused(res, c, &why);
    if (c->nset) {
      dorm_filter(q, "pk", pk);
      dorm_returning(q, "*");
    } else if (c->in.n) { /* relations only: the transaction reads the row */
      dorm_query_reset(q, DORM_QUERY_SELECT, m);
      dorm_filter(q, "pk", pk);
    }
    if (dorm_query_error(q, NULL)) {
      not_found(c);
      call_free(c);
      return;
    }
    if (c->in.n) return write_in_tx(st, c);
    if (c->nset) return await(c, dorm_async_update(st->db, q));
    op = c->op = OP_GET; /* nothing to change: answer the object */
  }
  if (op == OP_DELETE) {
    dorm_query_reset(q, DORM_QUERY_DELETE, m);
    dorm_filter(q, "pk", pk);
    return await(c, dorm_async_delete(st->db, q));
  }
  dorm_query_reset(q, DORM_QUERY_SELECT, m);
  dorm_filter(q, "pk", pk);
  await(c, dorm_async_get(st->db, q));
}

void serve_handle(dorm_http_request *req, dorm_http_response *res, void *arg) {
  serve_state *st = arg;
  const char *path = req->path;
  if (!strcmp(path, "/healthz")) {
    if (!is_get(req)) return method_not_allowed(res, req->method, "GET, HEAD");
    call *c = call_new(st, req, res, NULL, OP_HEALTH);
    if (c) await(c, dorm_async_execute(st->db, "SELECT 1", NULL, 0));
    return;
  }
  if (strncmp(path, "/api/", 5)) return answer_error(res, 404, "not found");
  /* /api/<model>[/count | /<pk>][/] */
  char buf[512];
  size_t len = strlen(path + 5);
  if (len >= sizeof buf) return answer_error(res, 404, "not found");
  memcpy(buf, path + 5, len + 1);
  if (len && buf[len - 1] == '/') buf[--len] = '\0';
  char *second = strchr(buf, '/');
  if (second) {
    *second++ = '\0';
    if (!*second || strchr(second, '/'))
      return answer_error(res, 404, "not found");
  }
  const dorm_model *m = NULL;
  for (size_t i = 0; i < st->schema->nmodels; i++)
    if (!strcmp(st->names[i], buf)) m = &st->schema->models[i];
  if (!m) {
    char msg[160];
    size_t n = dorm_http_url_decode(buf, strlen(buf));
    if (dorm_http_utf8_valid(buf, n) != n)
      return answer_error(res, 400,
                          "the model name in the path is not valid UTF-8 "
                          "once %-decoded");
    snprintf(msg, sizeof msg, "unknown model '%.*s'",
             (int)dorm_http_utf8_clip(buf, n, 100), buf);
    return answer_error(res, 404, msg);
  }
  if (!second) return route_collection(st, req, res, m, 0);
  if (!strcmp(second, "count")) return route_collection(st, req, res, m, 1);
  route_object(st, req, res, m, second);
}
