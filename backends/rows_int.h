/* SPDX-License-Identifier: MIT */
/* backends/rows_int.h — what a result set is inside, shared by the files
 * of the rows unit: rows_build.c (drivers build results: the functions
 * backend_int.h declares), rows.c (users read them: dorm/rows.h) and
 * rows_json.c (rows as JSON).  Nothing outside those three includes it:
 * drivers and the facade see a dorm_rows only through backend_int.h and
 * dorm/rows.h.
 *
 * Memory: one dorm_rows is one allocation for a small result (header,
 * columns, cells and strings share an arena whose first block is inline);
 * bigger results add arena blocks and one growing cell array.  Column
 * names that are the schema's own strings are borrowed, not copied: a
 * result must not outlive the schema its query was built on (documented
 * in rows.h's ownership rules through the schema's lifetime).  A dorm_row
 * is a small handle (rows, index, relation) in an array built by finish.
 */
#ifndef DORM_ROWS_INT_H
#define DORM_ROWS_INT_H

#include <stddef.h>

#include "backends/backend_int.h"
#include "base/base_int.h"

typedef struct rcol {
  const char *name;    /* full name: "age", "author__name", an alias */
  const char *local;   /* within its relation: "name" */
  const char *attname; /* a foreign key's column ("author_id"), or NULL */
  dorm_type type;      /* DORM_T_NULL: raw column, typed per value */
  int relation;        /* 0 main, i: related[i - 1] */
  int decimal_places;  /* decimal fields; -1 otherwise */
  int is_pk;
} rcol;

struct dorm_row {
  struct dorm_rows *rows;
  size_t index;
  int rel;
};

/* A prefetch_related relation attached to a result: the related rows
 * (one dorm_rows per chunk query, owned) and, per parent row, a view: a
 * dorm_rows header whose row handles point into the children. */
typedef struct prefetched {
  const char *name;
  int single; /* a forward foreign key: one object in JSON */
  int own;    /* the children are this result's to free (a nested level
                 whose parents span several results: the first owns) */
  struct dorm_rows **children;
  size_t nchildren;
  struct dorm_rows **views; /* one per parent row */
} prefetched;

struct dorm_rows {
  dorm__arena arena;
  rcol *cols;
  size_t ncols, nmain;
  const char **related;
  size_t nrelated;
  int *rel_pk; /* per relation 1..nrelated: its pk column, or -1 */
  dorm_value *cells;
  size_t nrows, cap_rows;
  size_t hint_rows; /* rows the first cell array is sized for (0: 4) */
  int cells_in_arena;
  struct dorm_row *rowv; /* nrows * (1 + nrelated) */
  prefetched *pf;        /* prefetch_related relations, npf of them */
  size_t npf;
  int created;
  char err[160];
  _Alignas(16) char inline_buf[]; /* the arena's first block */
};

/* The value of column col of row (col < the result's width). */
static inline const dorm_value *dorm__row_cell(const dorm_row *row,
                                               size_t col) {
  return &row->rows->cells[row->index * row->rows->ncols + col];
}

/* Types whose value is text (u.s, NUL-terminated). */
static inline int dorm__text_like(dorm_type t) {
  return t == DORM_T_TEXT || t == DORM_T_DECIMAL || t == DORM_T_DATE ||
         t == DORM_T_TIME || t == DORM_T_DATETIME || t == DORM_T_UUID ||
         t == DORM_T_JSON;
}

#endif /* DORM_ROWS_INT_H */
