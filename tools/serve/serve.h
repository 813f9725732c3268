/* SPDX-License-Identifier: MIT */
/* tools/serve/serve.h — what the files of `dorm serve` share.
 *
 * serve.c runs the command (options, loop, signals, graceful shutdown);
 * serve_api.c routes requests and answers them from deferred callbacks;
 * serve_input.c turns user input — query-string lookups and JSON bodies —
 * into typed values for the query builder, refusing with a message that
 * names the user's input and never any SQL; serve_m2m.c reads and writes
 * many_to_many fields (arrays of related keys); metrics.c answers
 * GET /metrics (--metrics).
 */
#ifndef DORM_TOOLS_SERVE_H
#define DORM_TOOLS_SERVE_H

#include <jansson.h>

#include "dorm.h"

typedef struct serve_metrics serve_metrics;

typedef struct serve_state {
  dorm_schema *schema;
  dorm_db *db;
  dorm_http_server *http;
  dorm_query *q; /* reused by every request: the async calls compile the
                    query during the call, so one is enough per loop */
  char **names;  /* lower-cased model names, one per model */
  int no_stream; /* the database cannot stream (a SQLite memory
                    database): lists are answered whole */
  serve_metrics *metrics; /* --metrics, else NULL */
} serve_state;

/* The handler given to dorm_http_server_new; arg is the serve_state. */
void serve_handle(dorm_http_request *req, dorm_http_response *res, void *arg);

/* ---- serve_stream.c ----------------------------------------------------- */

/* An error before the first row (r borrowed): answer it and end ctx. */
typedef void (*serve_stream_fail_fn)(dorm_result *r, void *ctx);
/* The answer is complete (streamed, or aborted half-way): end ctx. */
typedef void (*serve_stream_end_fn)(void *ctx);
/* Answer the list of q (a SELECT, compiled during the call) as its rows
 * arrive, with back-pressure; a client that goes cancels the query.
 * Exactly one of fail and end runs, later.  0, or -1 when nothing was
 * started (out of memory): the caller answers. */
int serve_list_stream(serve_state *st, dorm_http_response *res,
                      const dorm_query *q, serve_stream_fail_fn fail,
                      serve_stream_end_fn end, void *ctx);
/* ---- metrics.c (--metrics) ----------------------------------------------- */

/* The counters of st's server and database (a query hook on st->db, which
 * must be open), or NULL when out of memory.  Free it after the database
 * is closed. */
serve_metrics *serve_metrics_new(serve_state *st);
void serve_metrics_free(serve_metrics *m);
/* The handler with --metrics (arg: the serve_state): GET /metrics, and
 * every other request counted and passed to serve_handle. */
void serve_metrics_handle(dorm_http_request *req, dorm_http_response *res,
                          void *arg);
/* dorm_http_options.on_complete with --metrics (arg: the serve_metrics). */
void serve_metrics_complete(const dorm_http_request *req, int status,
                            size_t bytes, int client_gone, void *arg);

/* ---- serve_m2m.c (the types serve_input.c fills) ------------------------ */

/* many_to_many fields of one model that are served */
#define SERVE_M2M_MAX 16

/* The many_to_many fields an answer carries, each as an array of related
 * keys.  pk_key: the key of the objects' primary key (NULL: the pk's field
 * name); drop_pk: it was selected only to read the relations (fields=
 * without it) and is removed from the answer. */
typedef struct serve_m2m_want {
  const dorm_field *fields[SERVE_M2M_MAX];
  size_t n;
  const char *pk_key;
  int drop_pk;
} serve_m2m_want;

/* The relations a POST or PATCH body sets: field i gets exactly the keys
 * of the JSON array keys[i] (a reference this struct owns: release with
 * serve_m2m_input_free). */
typedef struct serve_m2m_input {
  const dorm_field *fields[SERVE_M2M_MAX];
  json_t *keys[SERVE_M2M_MAX];
  size_t n;
} serve_m2m_input;

/* ---- serve_input.c ------------------------------------------------------- */

/* A refusal: the HTTP status and a message for {"error": ...}. */
typedef struct serve_refusal {
  int status;
  char message[300];
} serve_refusal;

/* Fill *why with status 400 and the formatted message; returns -1. */
int serve_refuse(serve_refusal *why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Add every lookup of the query string (all parameters except order_by,
 * limit, offset and fields) as a filter on q, values parsed by the type
 * the lookup expects; then order_by, fields, limit and offset when
 * with_shape.  want (may be NULL) gets the many_to_many fields the answer
 * carries: every one, or those fields= names (which are not selected as
 * columns; the primary key is then selected too, to read them).  Returns
 * 0, or -1 with *why filled (400). */
int serve_apply_params(const serve_state *st, dorm_query *q,
                       const dorm_http_request *req, int with_shape,
                       serve_m2m_want *want, serve_refusal *why);

/* Parse a primary key from its (already decoded) text into *out by the
 * model's primary key type; 0 or -1 (not a valid key: 404). */
int serve_parse_pk(const dorm_model *m, const char *text, dorm_value *out);

/* Set the fields of a JSON object body on q (an INSERT or an UPDATE).
 * creating: missing required fields are refused; the primary key may be
 * given.  Otherwise (PATCH) the primary key may not change.  *nset gets
 * the number of fields set.  (The builder copies what dorm_set is given,
 * so nothing made here outlives the call.)  many_to_many keys go into
 * *m2m (not counted in *nset; refused as unknown when m2m is NULL); on
 * error the caller still frees *m2m.  Returns 0 or -1 with *why filled
 * (400). */
int serve_apply_body(const dorm_model *m, dorm_query *q, const char *body,
                     size_t len, int creating, size_t *nset,
                     serve_m2m_input *m2m, serve_refusal *why);

/* The HTTP status and fixed text for an error from the database layer:
 * never the database's own message. */
int serve_db_error(const dorm_result *err, const char **text);

/* ---- serve_m2m.c -------------------------------------------------------- */

/* *w = every many_to_many field of m. */
void serve_m2m_want_all(const dorm_model *m, serve_m2m_want *w);
/* Check v, the body's value for many_to_many f (given as key), as a list
 * of the target's primary keys, and add it to *in.  0, or -1 with *why
 * (400 naming the field). */
int serve_m2m_take(const dorm_field *f, const char *key, json_t *v,
                   serve_m2m_input *in, serve_refusal *why);
void serve_m2m_input_free(serve_m2m_input *in);

/* Set each wanted field of objs (one JSON object, or an array of them)
 * to the array of its related keys, ascending: one query per field (per
 * chunk of 10000 objects) on db, which may be a transaction (NULL: the
 * objects are new and have no pairs; nothing is read).  Returns 1
 * with *d a borrowed deferred that succeeds once the arrays are filled
 * (objs borrowed until it fires), 0 when there was nothing to read (the
 * arrays are set, empty; *d NULL), -1 out of memory. */
int serve_m2m_fill(dorm_db *db, const dorm_model *m, json_t *objs,
                   const serve_m2m_want *want, dorm_deferred **d);

/* Inside a transaction: dorm_async_m2m_set of each relation in *in for
 * the row obj (its primary key read from it), one after the other
 * (dorm_async_m2m_add when created: a new row has no pairs to remove).  A
 * borrowed deferred that fails with the first error, or NULL (out of
 * memory, no key in obj).  in borrowed until it fires. */
dorm_deferred *serve_m2m_apply(dorm_db *tx, const dorm_model *m, json_t *obj,
                               const serve_m2m_input *in, int created);

#endif /* DORM_TOOLS_SERVE_H */
