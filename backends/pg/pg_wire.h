/* SPDX-License-Identifier: MIT */
/* backends/pg/pg_wire.h — the PostgreSQL wire codec (pg_wire.c): type
 * OIDs, parameters encoded for PQsendQueryParams, text results decoded
 * into dorm rows, and a server error mapped to a dorm error.
 *
 * Nothing here needs a connection or a server: the codec takes values and
 * gives bytes, takes cells and gives rows, takes a SQLSTATE and messages
 * and gives a dorm_result.  pg_conn.c feeds it from libpq; tests/
 * test_pg_wire.c feeds it plain arrays.  Pure functions, any thread.
 */
#ifndef DORM_PG_WIRE_H
#define DORM_PG_WIRE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend_int.h"
#include "base/base_int.h"

/* ---- type OIDs (pg_type.h, stable since forever) ------------------------- */

#define DORM__PG_OID_BOOL 16
#define DORM__PG_OID_BYTEA 17
#define DORM__PG_OID_INT8 20
#define DORM__PG_OID_INT2 21
#define DORM__PG_OID_INT4 23
#define DORM__PG_OID_TEXT 25
#define DORM__PG_OID_OID 26
#define DORM__PG_OID_JSON 114
#define DORM__PG_OID_FLOAT4 700
#define DORM__PG_OID_FLOAT8 701
#define DORM__PG_OID_VARCHAR 1043
#define DORM__PG_OID_DATE 1082
#define DORM__PG_OID_TIME 1083
#define DORM__PG_OID_TIMESTAMP 1114
#define DORM__PG_OID_TIMESTAMPTZ 1184
#define DORM__PG_OID_NUMERIC 1700
#define DORM__PG_OID_UUID 2950
#define DORM__PG_OID_JSONB 3802

/* The wire type a dorm value is sent as (0, "unknown", for text: the
 * server infers the column's own type: varchar, text, citext, an enum). */
Oid dorm__pg_param_oid(dorm_type t);
/* The dorm type a result column of type oid is decoded into (a raw
 * statement's columns): DORM_T_TEXT for any type dorm has no own for. */
dorm_type dorm__pg_oid_type(Oid oid);

/* ---- parameters ---------------------------------------------------------- */

/* A statement's parameters as PQsendQueryParams / PQsendQueryPrepared
 * take them: per parameter its type, value (NULL for SQL NULL), length and
 * format (1 binary, 0 text).  The arrays and the bytes the values point
 * into are reused from statement to statement (they grow to the largest).
 * Owned by whoever holds it (a connection); values are valid until the
 * next encode or free. */
typedef struct dorm__pg_params {
  dorm__buf buf; /* the encoded values */
  size_t *off;   /* each value's offset in buf ((size_t)-1: NULL) */
  const char **val;
  int *len, *fmt;
  Oid *types;
  size_t cap;
} dorm__pg_params;

void dorm__pg_params_init(dorm__pg_params *pp);
void dorm__pg_params_free(dorm__pg_params *pp);
/* Encode st's parameters into pp: integers, floats, booleans and bytes in
 * binary (no formatting, no escaping: an integer is int8, or int4 where
 * st->param_int4 says so), the rest as NUL-terminated text (a date-time
 * without an offset gets "+00": dorm's are UTC).  0, or DORM_ENOMEM, or
 * DORM_ETYPE with the reason in why ("parameter $2: ..."). */
int dorm__pg_params_encode(dorm__pg_params *pp, const dorm__stmt *st, char *why,
                           size_t whylen);
/* Can st be sent at all?  DORM_RESULT_NONE, or the DORM_ETYPE error to
 * complete its request with (more than 65535 parameters, a list or an
 * expression as a parameter, NUL in text, bytes over 2 GiB), decided
 * before anything of the request is sent. */
dorm_result dorm__pg_stmt_check(const dorm__stmt *st);

/* ---- results ------------------------------------------------------------- */

/* A result as the decoder reads it: nfields columns by ntuples rows of
 * cells in PostgreSQL's text format.  src is the caller's (a PGresult, or
 * a test's arrays); the functions read it. */
typedef struct dorm__pg_cells {
  int nfields, ntuples;
  const void *src;
  /* column col's name and type */
  const char *(*name)(const void *src, int col);
  Oid (*type)(const void *src, int col);
  /* cell (row, col): 1 when it is NULL (*len 0 then), else 0 with its
   * text and length (the text need not be NUL-terminated) */
  int (*cell)(const void *src, int row, int col, const char **text,
              size_t *len);
} dorm__pg_cells;

/* The rows of st's result in (decoded by st's columns, or described from
 * the cells' names and types for a raw statement), at most max_rows
 * (> 0; 0: all).  DORM_RESULT_ROWS, or an error: DORM_ENOMEM, DORM_EDB
 * (fewer columns than st describes), DORM_ETYPE (a value its column's
 * type cannot read, "postgresql: column 'age': ..."). */
dorm_result dorm__pg_decode_rows(const dorm__stmt *st, const dorm__pg_cells *in,
                                 int64_t max_rows);

/* ---- errors -------------------------------------------------------------- */

/* The error a server reply stands for: "postgresql: primary (detail)",
 * the code from the SQLSTATE (dorm__sqlstate_code) except 25P02 (a
 * statement in a failed transaction) DORM_ETXABORTED and 57014 (query
 * canceled) DORM_ETIMEDOUT when the primary message says it was a
 * timeout.  detail may be NULL; primary may not. */
dorm_result dorm__pg_error(const char *sqlstate, const char *primary,
                           const char *detail);

#endif /* DORM_PG_WIRE_H */
