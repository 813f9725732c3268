/* SPDX-License-Identifier: MIT */
/* dorm/query.h — the pure query builder and compiler.
 *
 * A dorm_query records model operations in Django's vocabulary (filter,
 * exclude, Q, F, order_by, slicing, values, annotate, insert, update,
 * delete, upsert, ...) and dorm_compile turns it into SQL text plus typed
 * parameters for one dialect.  Nothing here does I/O or reads global state:
 * compiling the same query twice gives the same bytes, and any number of
 * threads may compile different queries at once.
 *
 * Values never appear in SQL text: they become parameters ($1 on
 * PostgreSQL, ? on SQLite).  Identifiers come only from the model and are
 * always quoted; a field path, ordering or alias that is not a known field
 * or plain identifier is refused.
 *
 * Errors are sticky (as SQLite's mallocFailed): each builder call returns 0
 * or a negative DORM_E* code, and after the first error every later call is
 * a no-op returning that error, so a chain of calls needs one check — the
 * one dorm_compile does.  The message names the model, the field and the
 * lookup: "model 'Author': unknown field 'agee' in lookup 'agee__gte'".
 *
 * Ownership: a query owns everything built on it (Q nodes, F expressions,
 * copies of the values and strings it was given).  Q and F pointers are
 * valid until the query is freed and belong to that query only.
 *
 * Const: a function that takes `dorm_query *` changes the query (the
 * builder calls add to it; dorm_query_reset empties it; dorm_query_free
 * consumes it); one that reads it takes `const dorm_query *` (compiling,
 * the accessors, and every dorm_async_* call of dorm/db.h), so a query
 * built once can be handed around as const and run many times.
 *
 *   dorm_query *q = dorm_select(author);
 *   dorm_filter(q, "age__gte", dorm_int(18));
 *   dorm_filter(q, "name__startswith", dorm_str("A"));
 *   dorm_value cc[] = {dorm_str("US"), dorm_str("GB")};
 *   dorm_exclude_q(q, dorm_q_or(q, dorm_Q(q, "country__in", dorm_list(cc, 2)),
 *                                  dorm_Q(q, "age__isnull", dorm_bool(1))));
 *   dorm_order_by(q, "-name");
 *   dorm_slice(q, 20, 30);
 *   dorm_sql sql;  dorm_sql_init(&sql);
 *   if (dorm_compile(q, DORM_DIALECT_POSTGRES, &sql, &err) == 0) ...
 *   dorm_sql_free(&sql);  dorm_query_free(q);
 */
#ifndef DORM_QUERY_H
#define DORM_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "dorm/version.h"
#include "dorm/error.h"
#include "dorm/schema.h"
#include "dorm/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dorm_dialect {
  DORM_DIALECT_POSTGRES = 0, /* $1, $2 ...; RETURNING; ILIKE-free lower() */
  DORM_DIALECT_SQLITE = 1    /* ?; RETURNING (3.35+) */
} dorm_dialect;

typedef enum dorm_query_kind {
  DORM_QUERY_SELECT = 0,
  DORM_QUERY_INSERT,
  DORM_QUERY_UPDATE,
  DORM_QUERY_DELETE
} dorm_query_kind;

typedef struct dorm_query dorm_query;
typedef struct dorm_q dorm_q;       /* a Q node: a lookup or and/or/not */
typedef struct dorm_expr dorm_expr; /* an F expression */

/* ---- starting and ending ------------------------------------------------ */

/* A new query of the given kind on model (borrowed; must outlive the
 * query).  NULL only when out of memory. */
DORM_EXTERN dorm_query *dorm_select(const dorm_model *model);
DORM_EXTERN dorm_query *dorm_insert(const dorm_model *model);
DORM_EXTERN dorm_query *dorm_update(const dorm_model *model);
DORM_EXTERN dorm_query *dorm_delete(const dorm_model *model);
DORM_EXTERN void dorm_query_free(dorm_query *q);
/* Empty q for reuse with a new kind and model, keeping its memory (the fast
 * path for a loop that builds many queries). */
DORM_EXTERN void dorm_query_reset(dorm_query *q, dorm_query_kind kind,
                                  const dorm_model *model);
/* The sticky error: 0, or the first error's code; err may be NULL. */
DORM_EXTERN int dorm_query_error(const dorm_query *q, dorm_error *err);
DORM_EXTERN const dorm_model *dorm_query_model(const dorm_query *q);
DORM_EXTERN dorm_query_kind dorm_query_kind_of(const dorm_query *q);

/* ---- filtering (SELECT, UPDATE, DELETE) -------------------------------- */

/* lookup is "field[__related...][__transform][__lookup]", e.g. "age__gte",
 * "entry__author__name__icontains", "joined__year__gte", "pk".  The lookup
 * defaults to exact.  Lookups: exact iexact contains icontains in gt gte lt
 * lte startswith istartswith endswith iendswith range isnull regex iregex;
 * transforms: year month day week_day hour minute date.  `in` takes a
 * non-empty DORM_T_LIST, `range` a list of two, `isnull` a bool.  A value
 * may be an F expression: dorm_fval(dorm_F(q, "age")).  Each call is one
 * Django filter() call: its conditions across a multi-valued relation
 * (reverse foreign key, many-to-many) share one join, each call its own
 * (docs/queries.md, Joins). */
DORM_EXTERN int dorm_filter(dorm_query *q, const char *lookup, dorm_value v);
DORM_EXTERN int dorm_exclude(dorm_query *q, const char *lookup, dorm_value v);
DORM_EXTERN int dorm_filter_q(dorm_query *q, dorm_q *node);
DORM_EXTERN int dorm_exclude_q(dorm_query *q, dorm_q *node);
/* Expression on the left: dorm_filter_expr(q, F(a)+F(b), "gt", v). */
DORM_EXTERN int dorm_filter_expr(dorm_query *q, dorm_expr *lhs,
                                 const char *lookup, dorm_value v);

/* Q nodes; NULL (with the sticky error set) on failure, and NULL arguments
 * propagate, so nesting needs no checks. */
DORM_EXTERN dorm_q *dorm_Q(dorm_query *q, const char *lookup, dorm_value v);
DORM_EXTERN dorm_q *dorm_q_expr(dorm_query *q, dorm_expr *lhs,
                                const char *lookup, dorm_value v);
DORM_EXTERN dorm_q *dorm_q_and(dorm_query *q, dorm_q *a, dorm_q *b);
DORM_EXTERN dorm_q *dorm_q_or(dorm_query *q, dorm_q *a, dorm_q *b);
DORM_EXTERN dorm_q *dorm_q_not(dorm_query *q, dorm_q *a);

/* F expressions: a field path, a literal, or a binary operation. */
DORM_EXTERN dorm_expr *dorm_F(dorm_query *q, const char *path);
DORM_EXTERN dorm_expr *dorm_lit(dorm_query *q, dorm_value v);
/* op is '+', '-', '*' or '/'.  Division by zero fails with DORM_ERANGE
 * (SQLSTATE 22012) on both backends; SQLite's '/' (NULL for x/0) is
 * compiled as dorm_div, which the SQLite backend registers. */
DORM_EXTERN dorm_expr *dorm_op(dorm_query *q, char op, dorm_expr *a,
                               dorm_expr *b);
/* An expression as a value, for the right-hand side of a lookup or set. */
static inline dorm_value dorm_fval(const dorm_expr *e) {
  dorm_value v = dorm_null();
  v.type = DORM_T_EXPR;
  v.u.expr = e;
  return v;
}

/* ---- shaping a SELECT --------------------------------------------------- */

/* "name", "-name", "author__name", "?" is not supported; "pk" works.
 * Called once per item; the model's default ordering applies only when
 * order_by is never called.  dorm_order_by(q, NULL) clears it (no
 * ORDER BY at all). */
DORM_EXTERN int dorm_order_by(dorm_query *q, const char *item);
/* Python's [start:stop]; stop < 0 means open-ended.  A negative start is
 * an error (DORM_ERANGE); a stop below start selects nothing, as Django's
 * qs[3:1].  Slicing twice composes like Django. */
DORM_EXTERN int dorm_slice(dorm_query *q, int64_t start, int64_t stop);
DORM_EXTERN int dorm_distinct(dorm_query *q);
/* values("id", "author__name"): rows of only these (field paths). */
DORM_EXTERN int dorm_values(dorm_query *q, const char *path);
/* only("name"): load these fields of the model (plus the primary key). */
DORM_EXTERN int dorm_only(dorm_query *q, const char *field);
/* select_related("author"): join and return the related row's columns. */
DORM_EXTERN int dorm_select_related(dorm_query *q, const char *path);
/* prefetch_related("entries"): Django's prefetch_related.  name is a
 * relation of q's model: a many_to_many field ("tags"), a reverse foreign
 * key or one-to-one by its related_name or default name ("entries"), the
 * reverse of a many_to_many ("entry" on Tag), or a forward foreign key
 * ("author"); or a path of them, "entries__tags": the entries, then the
 * tags of those entries (each level is a relation of the level above's
 * model, and the levels above are prefetched too).  dorm_async_filter, get
 * and first then run the query and, for the whole result, one more query
 * per relation and level (split in chunks of keys past the backend's
 * parameter limit); read the related rows with dorm_row_prefetched
 * (dorm/rows.h).  Naming a relation twice is the same as once.  Refused
 * (sticky, naming the model and the path): an unknown name, a field that
 * is not a relation, and values() (its rows have no objects to attach
 * to).  Other calls (count, exists, aggregate) ignore it. */
DORM_EXTERN int dorm_prefetch_related(dorm_query *q, const char *name);

typedef enum dorm_agg {
  DORM_AGG_COUNT = 0,
  DORM_AGG_SUM,
  DORM_AGG_AVG,
  DORM_AGG_MIN,
  DORM_AGG_MAX
} dorm_agg;
#define DORM_AGG_DISTINCT 0x100 /* or into the function: COUNT(DISTINCT x) */

/* annotate(alias=Count("entries")): one more output column per row; with
 * values() before it the rows are grouped by those values (GROUP BY), as
 * in Django.  path "*" or "pk" counts rows. */
DORM_EXTERN int dorm_annotate(dorm_query *q, const char *alias, int agg,
                              const char *path);
/* aggregate(alias=Sum("age")): turns the query into one row of aggregates
 * over the filtered set (over the slice, or the distinct rows, as a
 * subquery when the query is sliced or distinct). */
DORM_EXTERN int dorm_aggregate(dorm_query *q, const char *alias, int agg,
                               const char *path);
/* SELECT COUNT(*) over the filtered (and sliced, distinct) set. */
DORM_EXTERN int dorm_count(dorm_query *q);
/* SELECT 1 ... LIMIT 1. */
DORM_EXTERN int dorm_exists(dorm_query *q);

#define DORM_LOCK_NOWAIT 0x1
#define DORM_LOCK_SKIP_LOCKED 0x2
#define DORM_LOCK_OF_SELF 0x4
/* FOR UPDATE [NOWAIT | SKIP LOCKED]; PostgreSQL only: compiling it for
 * SQLite gives DORM_EUNSUPPORTED. */
DORM_EXTERN int dorm_select_for_update(dorm_query *q, unsigned flags);

/* ---- writing ------------------------------------------------------------ */

/* INSERT: the value of one field of the current row (field name or
 * "author_id").  Fields not set take their default (or the database's).
 * UPDATE: SET field = value; the value may be an F expression. */
DORM_EXTERN int dorm_set(dorm_query *q, const char *field, dorm_value v);
/* INSERT: finish the current row and start another (bulk insert). Every
 * row must set the same fields. */
DORM_EXTERN int dorm_insert_next_row(dorm_query *q);
/* Upsert: ON CONFLICT (fields...) DO UPDATE SET the given fields to the
 * inserted values (EXCLUDED), or DO NOTHING when no update field is named.
 * Call dorm_on_conflict once per conflict-target field, then
 * dorm_on_conflict_update once per field to overwrite.  A row skipped by
 * DO NOTHING is no error: dorm_async_create gives DORM_RESULT_NONE. */
DORM_EXTERN int dorm_on_conflict(dorm_query *q, const char *field);
DORM_EXTERN int dorm_on_conflict_update(dorm_query *q, const char *field);
DORM_EXTERN int dorm_on_conflict_do_nothing(dorm_query *q);
/* INSERT/UPDATE/DELETE: RETURNING these fields ("*" all).  An INSERT
 * returns the primary key (and every field) by default. */
DORM_EXTERN int dorm_returning(dorm_query *q, const char *field);

/* ---- compiling ---------------------------------------------------------- */

/* What a result column holds: a field of some model (possibly reached
 * through a relation), an aggregate, or a count. */
typedef struct dorm_column {
  const char *name;        /* key in a row: "name", "author__name",
                              or an alias; owned by the dorm_sql */
  const dorm_field *field; /* the model field, or NULL for aggregates */
  const dorm_model *model; /* the model the field belongs to */
  int relation;            /* 0 = the query's model; i>0 = the i-th
                              select_related path (see related[]); -1 =
                              a prefetch query's hidden key column */
  dorm_type type;          /* the value type to decode into */
  int name_pending;        /* private to the compiler */
} dorm_column;

/* One compiled statement.  Buffers grow and are reused across compiles into
 * the same dorm_sql: keep one per loop for zero allocations per query. */
typedef struct dorm_sql {
  char *text; /* NUL-terminated SQL; owned */
  size_t len;
  dorm_value *params; /* nparams typed parameters; strings point into
                         memory owned by this dorm_sql */
  size_t nparams;
  dorm_column *columns; /* result columns, ncolumns of them; owned */
  size_t ncolumns;
  const char **related; /* select_related paths in column order; owned */
  size_t nrelated;
  dorm_query_kind kind;
  int returns_rows; /* 1 when the statement yields rows */
  int row_lock;     /* 1 when it takes row locks (dorm_select_for_update) */
  /* private */
  /* per parameter, 1 when it is an integer compared with a 32-bit integer
   * column and fits in 32 bits: PostgreSQL gets it as int4, so the index
   * comparison is not a cross-type one (NULL until a query has one) */
  unsigned char *param_int4;
  size_t text_cap, params_cap, columns_cap, related_cap;
  char *arena;
  size_t arena_len, arena_cap;
} dorm_sql;

DORM_EXTERN void dorm_sql_init(dorm_sql *sql);
/* Free the buffers (sql itself is the caller's). */
DORM_EXTERN void dorm_sql_free(dorm_sql *sql);

/* Compile q for dialect into out (whose old contents are replaced).
 * Returns 0, or the query's sticky error or a compile error, with err
 * filled; on error out holds no statement (out->len == 0). */
DORM_EXTERN int dorm_compile(const dorm_query *q, dorm_dialect dialect,
                             dorm_sql *out, dorm_error *err);

/* Variations a caller (the database facade) compiles without changing the
 * query: the query is read, never written, so one query may be compiled
 * several ways, and by several threads. */
#define DORM_COMPILE_COUNT 0x1  /* as if dorm_count() had been called */
#define DORM_COMPILE_EXISTS 0x2 /* as if dorm_exists() had been called */
#define DORM_COMPILE_ORDER_PK                  \
  0x4 /* ORDER BY pk when there is no ordering \
         (first()) */
#define DORM_COMPILE_RETURN_PK                  \
  0x8 /* INSERT: RETURNING only the primary key \
         unless dorm_returning() was called */
typedef struct dorm_compile_opts {
  unsigned flags;   /* DORM_COMPILE_* */
  int64_t limit;    /* > 0: at most this many rows, within the query's own
                       slice (get() uses 2, first() 1); left out when the
                       query cannot yield more than one row (an exact
                       match on the primary key or a unique field, no
                       join, no slice, no grouping) */
  size_t row_first; /* INSERT: compile rows [row_first, row_first +
                       row_count) of a bulk insert; row_count 0 = to the
                       end */
  size_t row_count;
} dorm_compile_opts;

/* dorm_compile with opts (NULL: none).  Same contract as dorm_compile. */
DORM_EXTERN int dorm_compile_ex(const dorm_query *q, dorm_dialect dialect,
                                const dorm_compile_opts *opts, dorm_sql *out,
                                dorm_error *err);
/* Rows of an INSERT (1 for a plain create). */
DORM_EXTERN size_t dorm_query_row_count(const dorm_query *q);

/* ---- the bulk paths (query/compile_bulk.c) ------------------------------ */

/* The COPY form of the bulk insert q (PostgreSQL): out is
 * COPY "table" ("a", "b") FROM STDIN, with the columns of q's INSERT in
 * its order, and as its parameters the data: every row's values in that
 * order, *width (the number of columns) per row, as the INSERT would
 * send them.  DORM_EUNSUPPORTED when q has no COPY form (SQLite, a
 * conflict clause, a value that is an expression, no column set): insert
 * instead; DORM_EINVAL for rows that do not set the same fields. */
DORM_EXTERN int dorm_compile_copy(const dorm_query *q, dorm_dialect dialect,
                                  dorm_sql *out, size_t *width,
                                  dorm_error *err);
/* Django's bulk_update(objs, fields) for the objects [opts->row_first,
 * + opts->row_count) (opts NULL or row_count 0: to the end) of rows, an
 * INSERT query used as the list of objects (dorm_insert, dorm_set of the
 * primary key and of every field in fields per object,
 * dorm_insert_next_row between objects):
 *   UPDATE t SET f = CASE WHEN pk = $1 THEN $2 ... END, ... WHERE pk IN
 * (...).  fields: names (not the primary key, not many_to_many; at least
 * one).  DORM_EFIELD for an unknown field, DORM_EINVAL for an object
 * that does not set its key or a field (naming the object's index). */
DORM_EXTERN int dorm_compile_bulk_update(const dorm_query *rows,
                                         const char *const *fields,
                                         size_t nfields, dorm_dialect dialect,
                                         const dorm_compile_opts *opts,
                                         dorm_sql *out, dorm_error *err);

/* ---- many-to-many relations -------------------------------------------- */

/* Django's related manager on a many_to_many field (entry.tags.add(...)):
 * one statement on the field's join table.  The row count it reports is
 * the number of pairs added or removed. */
typedef enum dorm_m2m_op {
  DORM_M2M_ADD = 0,  /* add these pairs; pairs already there are kept
                        (ON CONFLICT DO NOTHING), so adding is idempotent */
  DORM_M2M_REMOVE,   /* remove these pairs */
  DORM_M2M_CLEAR,    /* remove every pair of pk (targets ignored) */
  DORM_M2M_KEEP_ONLY /* remove pk's pairs whose target is not listed (set()
                        is KEEP_ONLY then ADD; with no targets, CLEAR) */
} dorm_m2m_op;

/* Compile op on model's many_to_many `field` (or, by its reverse name, a
 * many_to_many of another model that points here) for the row whose
 * primary key is pk, with the other model's primary keys
 * targets[0..ntargets) (at least one for ADD and REMOVE).  Keys are checked
 * like a filter on "pk" (a wrong type or NULL is DORM_ETYPE, naming the model,
 * the field and which key); a field that is not many_to_many is DORM_EFIELD.
 * Each target costs two parameters for ADD and one otherwise: the caller keeps
 * ntargets within its backend's parameter limit.  Same contract as
 * dorm_compile otherwise; nothing is borrowed after it returns. */
DORM_EXTERN int dorm_compile_m2m(const dorm_model *model, const char *field,
                                 dorm_m2m_op op, dorm_value pk,
                                 const dorm_value *targets, size_t ntargets,
                                 dorm_dialect dialect, dorm_sql *out,
                                 dorm_error *err);

/* ---- prefetch_related: the facade's side ------------------------------- */

/* How a prefetched relation joins its rows to the parent rows, for the
 * database facade: the parent rows' column `parent_key` holds the key
 * that the related rows hold in `child_key`.  Everything points into the
 * schema except path and name, which the query owns. */
typedef enum dorm_prefetch_kind {
  DORM_PREFETCH_FORWARD = 0, /* a foreign key of the parent: one row */
  DORM_PREFETCH_REVERSE,     /* a foreign key on the related model */
  DORM_PREFETCH_M2M,         /* a many_to_many of the parent */
  DORM_PREFETCH_M2M_REVERSE  /* a many_to_many of the related model */
} dorm_prefetch_kind;

typedef struct dorm_prefetch {
  const char *path; /* "entries__tags": as given, or the part of a nested
                       path up to this level */
  const char *name; /* its last part, "tags": the name on the parent rows */
  int parent;       /* -1: the parents are the query's rows; i: they are
                       the rows of the i-th relation (a nested path) */
  dorm_prefetch_kind kind;
  const dorm_field *field;  /* the relation field, on either model */
  const dorm_model *target; /* the related rows' model */
  const char *parent_key;   /* "id" (the parent's pk), "author" (forward) */
  const char *child_key;    /* "author", "id" (forward); NULL for a
                               many_to_many: the key is the related rows'
                               hidden last column (index ncolumns of the
                               statement, not counted in ncolumns of the
                               rows) */
} dorm_prefetch;

/* The relations q prefetches, each level of a nested path counted once. */
DORM_EXTERN size_t dorm_query_prefetch_count(const dorm_query *q);
/* The i-th (in the order first named, a level always after the level
 * above it) into out; 0, or DORM_EINVAL when out of range. */
DORM_EXTERN int dorm_query_prefetch(const dorm_query *q, size_t i,
                                    dorm_prefetch *out);
/* A new SELECT of p's related rows whose key is one of keys[0..n) (n >
 * 0; one parameter each), in the target's default ordering, else by pk;
 * for a many_to_many a row comes once per parent it belongs to, with that
 * parent's key in the hidden column.  p is borrowed for the call only
 * (name is not used); the query is the caller's (dorm_query_free).  NULL
 * when out of memory; a bad key is the new query's sticky error. */
DORM_EXTERN dorm_query *dorm_prefetch_select(const dorm_prefetch *p,
                                             const dorm_value *keys, size_t n);

/* Render a compiled statement with its parameters for people (dorm query
 * --sql): the SQL, then one line per parameter "$1 = 18 (integer)".
 * Returns a malloc'd string (free with free()) or NULL. */
DORM_EXTERN char *dorm_sql_describe(const dorm_sql *sql, dorm_dialect dialect);

/* Quote an identifier for dialect into buf ("name" -> "\"name\"").
 * Refuses (returns DORM_EIDENT) anything dorm_ident_valid refuses. */
DORM_EXTERN int dorm_quote_ident(const char *ident, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* DORM_QUERY_H */
