/* SPDX-License-Identifier: MIT */
/* backends/pg/pg_wire.c — the PostgreSQL wire codec: what dorm values
 * become on the wire, what text results become as dorm rows, and what a
 * server error becomes as a dorm error.
 *
 * It knows the protocol's types and formats and nothing of connections:
 * parameters are encoded into reusable arrays a connection hands to
 * libpq, results are read through dorm__pg_cells (pg_conn.c points it at
 * a PGresult, tests/test_pg_wire.c at arrays), errors are built from the
 * fields of an error reply.  So each rule can be tested without a server.
 */
#include <stdio.h>
#include <string.h>

#include "backends/pg/pg_wire.h"

/* ---- types --------------------------------------------------------------- */

Oid dorm__pg_param_oid(dorm_type t) {
  switch (t) {
    case DORM_T_BOOL: return DORM__PG_OID_BOOL;
    case DORM_T_INT: return DORM__PG_OID_INT8;
    case DORM_T_FLOAT: return DORM__PG_OID_FLOAT8;
    case DORM_T_BYTES: return DORM__PG_OID_BYTEA;
    case DORM_T_DECIMAL: return DORM__PG_OID_NUMERIC;
    case DORM_T_DATE: return DORM__PG_OID_DATE;
    case DORM_T_TIME: return DORM__PG_OID_TIME;
    case DORM_T_DATETIME: return DORM__PG_OID_TIMESTAMPTZ;
    case DORM_T_UUID: return DORM__PG_OID_UUID;
    case DORM_T_JSON: return DORM__PG_OID_JSONB;
    default: return 0;
  }
}

dorm_type dorm__pg_oid_type(Oid t) {
  switch (t) {
    case DORM__PG_OID_BOOL: return DORM_T_BOOL;
    case DORM__PG_OID_INT2:
    case DORM__PG_OID_INT4:
    case DORM__PG_OID_INT8:
    case DORM__PG_OID_OID: return DORM_T_INT;
    case DORM__PG_OID_FLOAT4:
    case DORM__PG_OID_FLOAT8: return DORM_T_FLOAT;
    case DORM__PG_OID_NUMERIC: return DORM_T_DECIMAL;
    case DORM__PG_OID_BYTEA: return DORM_T_BYTES;
    case DORM__PG_OID_DATE: return DORM_T_DATE;
    case DORM__PG_OID_TIME: return DORM_T_TIME;
    case DORM__PG_OID_TIMESTAMP:
    case DORM__PG_OID_TIMESTAMPTZ: return DORM_T_DATETIME;
    case DORM__PG_OID_UUID: return DORM_T_UUID;
    case DORM__PG_OID_JSON:
    case DORM__PG_OID_JSONB: return DORM_T_JSON;
    default: return DORM_T_TEXT;
  }
}

/* ---- parameters ---------------------------------------------------------- */

void dorm__pg_params_init(dorm__pg_params *pp) {
  memset(pp, 0, sizeof *pp);
  dorm__buf_init(&pp->buf);
}

void dorm__pg_params_free(dorm__pg_params *pp) {
  dorm__buf_free(&pp->buf);
  dorm__free(pp->off);
  dorm__free((void *)pp->val);
  dorm__free(pp->len);
  dorm__free(pp->fmt);
  dorm__free(pp->types);
  memset(pp, 0, sizeof *pp);
}

static int params_reserve(dorm__pg_params *pp, size_t n) {
  if (n <= pp->cap) return 0;
  size_t cap = n < 16 ? 16 : n;
  size_t *off = dorm__realloc(pp->off, cap * sizeof *off);
  if (off) pp->off = off;
  const char **val = dorm__realloc((void *)pp->val, cap * sizeof *val);
  if (val) pp->val = val;
  int *len = dorm__realloc(pp->len, cap * sizeof *len);
  if (len) pp->len = len;
  int *fmt = dorm__realloc(pp->fmt, cap * sizeof *fmt);
  if (fmt) pp->fmt = fmt;
  Oid *types = dorm__realloc(pp->types, cap * sizeof *types);
  if (types) pp->types = types;
  if (!off || !val || !len || !fmt || !types) return DORM_ENOMEM;
  pp->cap = cap;
  return 0;
}

/* Written out byte by byte so the compiler makes one byte swap and one
 * store of it (a loop stayed a loop: 8 iterations per parameter). */
static void put_be64(dorm__buf *b, uint64_t v) {
  if (dorm__buf_reserve(b, 8)) return; /* b->oom is set */
  unsigned char *x = (unsigned char *)b->data + b->len;
  x[0] = (unsigned char)(v >> 56);
  x[1] = (unsigned char)(v >> 48);
  x[2] = (unsigned char)(v >> 40);
  x[3] = (unsigned char)(v >> 32);
  x[4] = (unsigned char)(v >> 24);
  x[5] = (unsigned char)(v >> 16);
  x[6] = (unsigned char)(v >> 8);
  x[7] = (unsigned char)v;
  b->len += 8;
}

static void put_be32(dorm__buf *b, uint32_t v) {
  if (dorm__buf_reserve(b, 4)) return; /* b->oom is set */
  unsigned char *x = (unsigned char *)b->data + b->len;
  x[0] = (unsigned char)(v >> 24);
  x[1] = (unsigned char)(v >> 16);
  x[2] = (unsigned char)(v >> 8);
  x[3] = (unsigned char)v;
  b->len += 4;
}

/* A date-time text ends with an offset: Z, +HH[:MM] or -HH[:MM] after
 * the time (a '-' before position 10 is the date's). */
static int has_utc_offset(const char *s, size_t n) {
  for (size_t i = n; i > 10; i--) {
    char ch = s[i - 1];
    if (ch == 'Z' || ch == 'z' || ch == '+' || ch == '-') return 1;
    if (ch == ' ' || ch == 'T') return 0; /* reached the time's start */
  }
  return 0;
}

int dorm__pg_params_encode(dorm__pg_params *pp, const dorm__stmt *st, char *why,
                           size_t whylen) {
  size_t n = st->nparams;
  if (params_reserve(pp, n)) return DORM_ENOMEM;
  dorm__buf *b = &pp->buf;
  b->len = 0;
  for (size_t i = 0; i < n; i++) {
    const dorm_value *v = &st->params[i];
    pp->types[i] = dorm__pg_param_oid(v->type);
    pp->off[i] = b->len;
    pp->fmt[i] = 0;
    pp->len[i] = 0;
    switch (v->type) {
      case DORM_T_NULL: pp->off[i] = (size_t)-1; break;
      case DORM_T_BOOL:
        dorm__buf_putc(b, v->u.b ? 1 : 0);
        pp->fmt[i] = 1;
        pp->len[i] = 1;
        break;
      case DORM_T_INT:
        pp->fmt[i] = 1;
        if (st->param_int4 && st->param_int4[i]) {
          /* compared with an int4 column: an int8 would make every index
           * comparison a cross-type one */
          put_be32(b, (uint32_t)(int32_t)v->u.i);
          pp->types[i] = DORM__PG_OID_INT4;
          pp->len[i] = 4;
        } else {
          put_be64(b, (uint64_t)v->u.i);
          pp->len[i] = 8;
        }
        break;
      case DORM_T_FLOAT: {
        uint64_t u;
        double f = v->u.f;
        memcpy(&u, &f, 8);
        put_be64(b, u);
        pp->fmt[i] = 1;
        pp->len[i] = 8;
        break;
      }
      case DORM_T_BYTES:
        if (v->u.s.len > 0x7fffffff) {
          snprintf(why, whylen, "parameter $%zu: too large", i + 1);
          return DORM_ETYPE;
        }
        dorm__buf_append(b, v->u.s.ptr, v->u.s.len);
        pp->fmt[i] = 1;
        pp->len[i] = (int)v->u.s.len;
        break;
      case DORM_T_LIST:
      case DORM_T_EXPR:
        snprintf(why, whylen, "parameter $%zu: a %s cannot be sent", i + 1,
                 dorm_type_name(v->type));
        return DORM_ETYPE;
      default:
        if (memchr(v->u.s.ptr, 0, v->u.s.len)) {
          snprintf(why, whylen,
                   "parameter $%zu: PostgreSQL text cannot contain NUL", i + 1);
          return DORM_ETYPE;
        }
        dorm__buf_append(b, v->u.s.ptr, v->u.s.len);
        /* dorm's date-times are UTC: say so, so the session's TimeZone
         * (not set behind PgBouncer) cannot shift them */
        if (v->type == DORM_T_DATETIME &&
            !has_utc_offset(v->u.s.ptr, v->u.s.len))
          dorm__buf_append(b, "+00", 3);
        dorm__buf_putc(b, 0);
        break;
    }
  }
  if (b->oom) {
    b->oom = 0;
    return DORM_ENOMEM;
  }
  for (size_t i = 0; i < n; i++)
    pp->val[i] = pp->off[i] == (size_t)-1 ? NULL : b->data + pp->off[i];
  return 0;
}

dorm_result dorm__pg_stmt_check(const dorm__stmt *st) {
  if (st->nparams > 65535)
    return dorm_result_error(
        DORM_ETYPE, "postgresql: %zu parameters (at most 65535)", st->nparams);
  for (size_t i = 0; i < st->nparams; i++) {
    const dorm_value *v = &st->params[i];
    const char *bad = NULL;
    if (v->type == DORM_T_LIST || v->type == DORM_T_EXPR)
      bad = "cannot be sent as a parameter";
    else if (v->type >= DORM_T_TEXT && v->type != DORM_T_BYTES &&
             memchr(v->u.s.ptr, 0, v->u.s.len))
      bad = "contains a NUL byte, which PostgreSQL text cannot hold";
    else if (v->type == DORM_T_BYTES && v->u.s.len > 0x7fffffff)
      bad = "is too large";
    if (bad)
      return dorm_result_error(DORM_ETYPE, "postgresql: parameter $%zu %s",
                               i + 1, bad);
  }
  return dorm_result_none();
}

/* ---- results ------------------------------------------------------------- */

dorm_result dorm__pg_decode_rows(const dorm__stmt *st, const dorm__pg_cells *in,
                                 int64_t max_rows) {
  int nf = in->nfields;
  int nt = in->ntuples;
  if (max_rows > 0 && nt > max_rows) nt = (int)max_rows;
  const char *text;
  size_t len;
  /* the result's size is known: a small one is a single allocation
   * (what each value and name takes is the rows unit's rule; a big
   * result is not worth the pass over its lengths) */
  size_t bytes = 0;
  if (!st->columns)
    for (int col = 0; col < nf; col++)
      bytes += dorm__rows_name_bytes(in->name(in->src, col));
  if (nt <= 64)
    for (int col = 0; col < nf; col++) {
      dorm_type t =
          st->columns
              ? (size_t)col < st->ncolumns ? st->columns[col].type : DORM_T_TEXT
              : dorm__pg_oid_type(in->type(in->src, col));
      if (!dorm__rows_value_bytes(t, 0)) continue; /* kept as a number */
      for (int row = 0; row < nt; row++) {
        in->cell(in->src, row, col, &text, &len);
        bytes += dorm__rows_value_bytes(t, len);
      }
    }
  dorm_rows *r =
      dorm__rows_new_sized(st, st->columns ? 0 : (size_t)nf, (size_t)nt, bytes);
  if (!r) return dorm_result_error(DORM_ENOMEM, NULL);
  if (!st->columns) {
    for (int i = 0; i < nf; i++)
      if (dorm__rows_raw_column(r, (size_t)i, in->name(in->src, i),
                                dorm__pg_oid_type(in->type(in->src, i)))) {
        dorm__rows_free(r);
        return dorm_result_error(DORM_ENOMEM, NULL);
      }
  } else if (dorm__rows_width(r) > (size_t)nf) {
    size_t w = dorm__rows_width(r);
    dorm__rows_free(r);
    return dorm_result_error(DORM_EDB,
                             "postgresql: the statement returned %d columns, "
                             "%zu expected",
                             nf, w);
  }
  /* SELECT DISTINCT selects its ORDER BY columns too (PostgreSQL wants
   * them there, as Django does): they come after the described ones and
   * are no part of the row */
  if (st->columns && (size_t)nf > dorm__rows_width(r))
    nf = (int)dorm__rows_width(r);
  for (int row = 0; row < nt; row++) {
    if (dorm__rows_add_row(r)) goto oom;
    for (int col = 0; col < nf; col++) {
      if (in->cell(in->src, row, col, &text, &len)) continue;
      int rc = dorm__rows_put_text(r, (size_t)col, text, len);
      if (rc == DORM_ENOMEM) goto oom;
      if (rc) {
        dorm_result e = dorm_result_error(DORM_ETYPE, "postgresql: %s",
                                          dorm__rows_error(r));
        dorm__rows_free(r);
        return e;
      }
    }
  }
  if (dorm__rows_finish(r)) goto oom;
  return dorm__rows_result(r);
oom:
  dorm__rows_free(r);
  return dorm_result_error(DORM_ENOMEM, NULL);
}

/* ---- errors -------------------------------------------------------------- */

dorm_result dorm__pg_error(const char *state, const char *prim,
                           const char *detail) {
  dorm_result r = dorm__db_error(state, "postgresql: %s%s%s", prim,
                                 detail ? " (" : "", detail ? detail : "");
  if (detail && r.kind == DORM_RESULT_ERROR && r.u.error.message) {
    size_t n = strlen(r.u.error.message);
    if (n + 2 < DORM_ERROR_MSG_MAX) {
      /* close the parenthesis dorm__db_error's format left open */
      char *m = dorm__realloc(r.u.error.message, n + 2);
      if (m) {
        m[n] = ')';
        m[n + 1] = 0;
        r.u.error.message = m;
      }
    }
  }
  if (state && !strcmp(state, "25P02")) r.u.error.code = DORM_ETXABORTED;
  if (state && !strcmp(state, "57014")) {
    /* query_canceled: ours (the request was cancelled) or the server's
     * statement_timeout */
    if (prim && strstr(prim, "timeout")) r.u.error.code = DORM_ETIMEDOUT;
  }
  return r;
}
