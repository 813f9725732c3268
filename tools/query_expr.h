/* SPDX-License-Identifier: MIT */
/* tools/query_expr.h — parse a `dorm query` expression into a dorm_query
 * (grammar in query_expr.c).
 */
#ifndef DORM_TOOLS_QUERY_EXPR_H
#define DORM_TOOLS_QUERY_EXPR_H

#include <stddef.h>

#include "dorm.h"

typedef enum qx_terminal {
  QX_ROWS = 0, /* the rows of the query */
  QX_COUNT,    /* count() */
  QX_EXISTS,   /* exists() */
  QX_FIRST,    /* first() */
  QX_GET       /* get(...) */
} qx_terminal;

typedef struct qx_result {
  dorm_query *q; /* owned: dorm_query_free */
  const dorm_model *model;
  qx_terminal term;
  int has_values; /* values(...) was called */
  int ordered;    /* order_by(...) was called */
  int single;     /* [n]: one row, an object as Django's qs[n] */
  long long index; /* n of [n] */
} qx_result;

/* Parse text against schema (borrowed; must outlive out->q).  0 with *out
 * filled, or -1 with a message in err ("unknown method 'filtr' at column
 * 8"; the builder's own messages for unknown fields and lookups). */
int qx_parse(const dorm_schema *schema, const char *text, qx_result *out,
             char *err, size_t errlen);

#endif
