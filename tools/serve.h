/* tools/serve.h — what the files of `dorm serve` share.
 *
 * serve.c runs the command (options, loop, signals, graceful shutdown);
 * serve_api.c routes requests and answers them from deferred callbacks;
 * serve_input.c turns user input — query-string lookups and JSON bodies —
 * into typed values for the query builder, refusing with a message that
 * names the user's input and never any SQL.
 */
#ifndef DORM_TOOLS_SERVE_H
#define DORM_TOOLS_SERVE_H

#include <jansson.h>

#include "dorm.h"

typedef struct serve_state {
  dorm_schema *schema;
  dorm_db *db;
  dorm_http_server *http;
  dorm_query *q; /* reused by every request: the async calls compile the
                    query during the call, so one is enough per loop */
  char **names;  /* lower-cased model names, one per model */
} serve_state;

/* The handler given to dorm_http_server_new; arg is the serve_state. */
void serve_handle(dorm_http_request *req, dorm_http_response *res, void *arg);

/* ---- serve_input.c ------------------------------------------------------- */

/* A refusal: the HTTP status and a message for {"error": ...}. */
typedef struct serve_refusal {
  int status;
  char message[300];
} serve_refusal;

/* Add every lookup of the query string (all parameters except order_by,
 * limit, offset and fields) as a filter on q, values parsed by the type
 * the lookup expects; then order_by, fields, limit and offset when
 * with_shape.  Returns 0, or -1 with *why filled (400). */
int serve_apply_params(const serve_state *st, dorm_query *q,
                       const dorm_http_request *req, int with_shape,
                       serve_refusal *why);

/* Parse a primary key from its (already decoded) text into *out by the
 * model's primary key type; 0 or -1 (not a valid key: 404). */
int serve_parse_pk(const dorm_model *m, const char *text, dorm_value *out);

/* Set the fields of a JSON object body on q (an INSERT or an UPDATE).
 * creating: missing required fields are refused; the primary key may be
 * given.  Otherwise (PATCH) the primary key may not change.  *nset gets
 * the number of fields set.  (The builder copies what dorm_set is given,
 * so nothing made here outlives the call.)  Returns 0 or -1 with *why
 * filled (400). */
int serve_apply_body(const dorm_model *m, dorm_query *q, const char *body,
                     size_t len, int creating, size_t *nset,
                     serve_refusal *why);

/* The HTTP status and fixed text for an error from the database layer:
 * never the database's own message. */
int serve_db_error(const dorm_result *err, const char **text);

#endif /* DORM_TOOLS_SERVE_H */
