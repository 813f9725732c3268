/* SPDX-License-Identifier: MIT */
/* query/query_int.h — the query's internal representation, shared by the
 * builder (which records and resolves), the lookup table and the compilers.
 *
 * Everything a query builds lives in its arena and dies with it.  Field
 * paths are resolved when the builder call is made, so an unknown field or
 * lookup is reported (sticky) at that call with the words the user typed;
 * joins are assigned at compile time, because whether a join may be INNER
 * depends on every condition that uses it.
 */
#ifndef DORM_QUERY_INT_H
#define DORM_QUERY_INT_H

#include <stdint.h>
#include <string.h>

#include "base/base_int.h"
#include "dorm/query.h"

/* Field facts asked on every lookup and column, without a call: the value
 * type is cached in the field when a schema is finished. */
#define dorm__vt(f) \
  ((f)->value_type ? (f)->value_type : dorm_field_value_type(f))
#define dorm__is_fk(f) \
  ((f)->type == DORM_FIELD_FOREIGN_KEY || (f)->type == DORM_FIELD_ONE_TO_ONE)

/* ---- lookups and transforms --------------------------------------------- */

typedef enum lookup_kind {
  LK_EXACT = 0,
  LK_IEXACT,
  LK_CONTAINS,
  LK_ICONTAINS,
  LK_IN,
  LK_GT,
  LK_GTE,
  LK_LT,
  LK_LTE,
  LK_STARTSWITH,
  LK_ISTARTSWITH,
  LK_ENDSWITH,
  LK_IENDSWITH,
  LK_RANGE,
  LK_ISNULL,
  LK_REGEX,
  LK_IREGEX,
  LK__COUNT
} lookup_kind;

typedef enum transform_kind {
  TR_NONE = 0,
  TR_YEAR,
  TR_MONTH,
  TR_DAY,
  TR_WEEK_DAY,
  TR_HOUR,
  TR_MINUTE,
  TR_DATE,
  TR__COUNT
} transform_kind;

/* Name -> kind; -1 when not a lookup / transform. */
int dorm__lookup_parse(const char *s, size_t n);
int dorm__transform_parse(const char *s, size_t n);
const char *dorm__lookup_name(lookup_kind k);
const char *dorm__transform_name(transform_kind k);

/* ---- resolved field paths ----------------------------------------------- */

typedef enum hop_kind {
  HOP_FORWARD = 0, /* foreign_key / one_to_one on the source model */
  HOP_REVERSE,     /* a foreign_key / one_to_one on the target pointing back */
  HOP_M2M,         /* many_to_many on the source model */
  HOP_M2M_REVERSE  /* many_to_many on the target model pointing back */
} hop_kind;

/* One step across a relation. */
typedef struct dorm_hop {
  hop_kind kind;
  const dorm_field *field; /* the relation field that defines the hop */
  const dorm_model *from, *to;
  uint8_t multi;    /* may yield several rows (reverse, m2m) */
  uint8_t nullable; /* the join may find no row (null fk, reverse, m2m) */
} dorm_hop;

#define DORM__MAX_HOPS 8 /* relations in one path */

/* "entry__author__name__year__gte" resolved. */
typedef struct dorm_path {
  const char *text;     /* the path as typed (arena copy) */
  const dorm_hop *hops; /* relation steps, nhops of them */
  uint8_t nhops;
  uint8_t transform;  /* transform_kind */
  uint8_t lookup;     /* lookup_kind (LK_EXACT when not given) */
  uint8_t annotation; /* 1: refers to an annotation alias (HAVING) */
  int annotation_index;
  const dorm_field *field; /* the final field (never many_to_many) */
  const dorm_model *model; /* the model field belongs to */
  dorm_type expr_type;     /* with an expression on the left: its type */
} dorm_path;

/* ---- expressions and conditions ----------------------------------------- */

typedef enum expr_kind { EXPR_FIELD = 0, EXPR_VALUE, EXPR_OP } expr_kind;

struct dorm_expr {
  expr_kind kind;
  char op;          /* EXPR_OP: + - * / */
  dorm_path path;   /* EXPR_FIELD */
  dorm_value value; /* EXPR_VALUE (copied into the arena) */
  dorm_expr *a, *b; /* EXPR_OP */
  dorm_type type;   /* result type, for checks */
};

typedef enum q_kind { Q_LEAF = 0, Q_AND, Q_OR, Q_NOT } q_kind;

struct dorm_q {
  q_kind kind;
  dorm_q *a, *b; /* AND/OR: both; NOT: a */
  /* leaf */
  dorm_path path;   /* the lookup (path.field may be NULL with lhs) */
  dorm_expr *lhs;   /* expression on the left instead of a field */
  dorm_value value; /* the right-hand side, coerced to the field's type */
};

/* A list node in the arena. */
typedef struct dorm_qlist {
  dorm_q *q;
  int having; /* refers to an annotation: goes to HAVING */
  struct dorm_qlist *next;
} dorm_qlist;

typedef struct order_item {
  dorm_path path;
  int desc;
  struct order_item *next;
} order_item;

typedef struct path_item {
  dorm_path path;
  const char *name; /* output name */
  int after;        /* values(): filter() calls made before it (joins) */
  struct path_item *next;
} path_item;

typedef struct annotation {
  const char *alias;
  int agg;   /* dorm_agg, | DORM_AGG_DISTINCT */
  int star;  /* COUNT(*) */
  int after; /* filter() calls made before it (joins) */
  dorm_path path;
  struct annotation *next;
} annotation;

typedef struct set_item {
  const dorm_field *field;
  dorm_value value; /* coerced; may be an EXPR */
  struct set_item *next;
} set_item;

typedef struct insert_row {
  set_item *sets, *sets_tail;
  size_t nsets;
  struct insert_row *next;
} insert_row;

typedef struct field_item {
  const dorm_field *field;
  struct field_item *next;
} field_item;

/* One prefetch_related relation (prefetch.c resolves it): "entries", or
 * one level of a nested path ("entries__tags" is "entries", then "tags"
 * of the entries). */
typedef struct prefetch_item {
  const char *path;        /* "entries__tags" (arena copy) */
  const char *name;        /* its last part, within path: "tags" */
  const dorm_field *field; /* the relation field, on either model */
  const dorm_model *from;  /* the parent rows' model */
  int kind;                /* DORM_PREFETCH_* */
  int parent;              /* index of the level above, -1 for the top */
  struct prefetch_item *next;
} prefetch_item;

#define DORM_QUERY_INLINE 1536

struct dorm_query {
  dorm_query_kind kind;
  const dorm_model *model;
  int has_err;
  dorm__arena arena;

  /* conditions: top-level AND of these */
  dorm_qlist *where, *where_tail;
  int nwhere, nhaving; /* how many entries go to WHERE / HAVING */
  int has_hops;        /* some path crosses a relation: joins to find */
  /* select shape */
  order_item *order, *order_tail;
  int order_set;     /* order_by was called (default ordering off) */
  int order_default; /* order holds the model's default ordering */
  int64_t lo, hi;    /* slice: OFFSET lo, LIMIT hi-lo; hi < 0: none */
  int sliced;
  int distinct;
  path_item *values, *values_tail;
  size_t nvalues;
  field_item *only, *only_tail;
  path_item *related, *related_tail;
  size_t nrelated;
  prefetch_item *prefetch, *prefetch_tail; /* prefetch_related */
  size_t nprefetch;
  /* a prefetch query's source key, selected last as a hidden column
   * (relation -1) so related rows can be matched to their parents */
  const path_item *prefetch_key;
  annotation *annots, *annots_tail;
  size_t nannots;
  int annots_after_values; /* values() came before annotate(): GROUP BY */
  int aggregate;           /* aggregate(): one row of aggregates */
  int count, exists;
  int lock; /* select_for_update */
  unsigned lock_flags;
  /* writes */
  insert_row *rows, *rows_tail;
  size_t nrows;
  set_item *sets, *sets_tail; /* UPDATE */
  field_item *conflict, *conflict_tail;
  field_item *conflict_update, *conflict_update_tail;
  int conflict_nothing;
  field_item *returning, *returning_tail;
  int returning_all;

  /* the sticky error, last among the state: init clears its code, not its
   * 512-byte message, which is written only when an error happens */
  dorm_error err;
  _Alignas(16) char inline_buf[DORM_QUERY_INLINE];
};

/* builder.c: arena helpers that record DORM_ENOMEM on the query */
int dorm__qoom(dorm_query *q);
void *dorm__qalloc(dorm_query *q, size_t n);
const char *dorm__qstrdup(dorm_query *q, const char *s);

/* paths.c: names in a model */
/* The next "__" separator in s, or NULL. */
const char *dorm__find_sep(const char *s);
/* A field of m by name, "pk", or a foreign key's "<name>_id"; NULL. */
const dorm_field *dorm__find_field(const dorm_model *m, const char *s,
                                   size_t n);
/* The relation on another model (foreign key, one_to_one, many_to_many)
 * that points at `model` and is called s[0..n) from its side (its
 * related_name, or the lower-cased name of its model); NULL. */
const dorm_field *dorm__find_reverse(const dorm_model *model, const char *s,
                                     size_t n);
/* prefetch.c: record prefetch_related(path): each level, a relation of
 * the level above's model (a forward foreign key or one-to-one, a
 * many_to_many, or a reverse relation by its reverse name), not recorded
 * yet; errors recorded on q, as select_related's. */
int dorm__prefetch_add(dorm_query *q, const char *path);
/* The annotation called s[0..n) and its index, or NULL. */
const struct annotation *dorm__find_annotation(const dorm_query *q,
                                               const char *s, size_t n,
                                               int *index);

/* Record the sticky error (first wins).  Returns code. */
int dorm__qerr(dorm_query *q, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Resolve "a__b__c[__transform][__lookup]" from model.  flags:
 * DORM__PATH_LOOKUP, the tail may name a lookup (filters; not order_by,
 * values, F); DORM__PATH_BORROW, keep the caller's text instead of a copy
 * (the caller replaces it before returning to the user).  Errors are
 * recorded on q.  Returns 0 or the error. */
#define DORM__PATH_LOOKUP 1
#define DORM__PATH_BORROW 2
int dorm__resolve_path(dorm_query *q, const dorm_model *model, const char *text,
                       int allow_lookup, dorm_path *out);

/* Check and copy a right-hand-side value for lookup on path; the copy lives
 * in q's arena and is tagged with the field's value type. */
int dorm__coerce_lookup_value(dorm_query *q, const dorm_path *path,
                              dorm_value in, dorm_value *out);
/* The same for a value stored into field (insert / update). */
int dorm__coerce_field_value(dorm_query *q, const dorm_field *f, dorm_value in,
                             dorm_value *out);

/* Value type of an expression / of a path's output (after transform). */
#define dorm__path_alias_of(c, p, left) \
  ((p)->nhops ? dorm__path_alias((c), (p), (left)) : 0)
dorm_type dorm__path_type(const dorm_path *p);

/* ---- compile context ---------------------------------------------------- */

/* One JOIN.  A many-to-many hop takes two: the join table (part 0) and
 * the target (part 1).  Aliases are numbers: 0 is the base table, j+1 is
 * joins[j]; a join uses its table's name as alias when that table is not
 * already in the statement (as Django does), else "T<n>".
 *
 * Join groups (Django's "spanning multi-valued relationships"): the
 * conditions of one filter() call talk about the same related row, each
 * call about its own, so a multi-valued hop (reverse foreign key,
 * many-to-many) taken by a condition is keyed by its call's group, the
 * call's place in the query's WHERE list (1, 2, ...).  Everything after
 * that hop hangs off a join of the group, so it needs no key of its own;
 * single-valued hops are shared by all.  A path outside the filters
 * (values, annotate, select_related, order_by) is in group 0 and does as
 * Django's setup_joins(can_reuse=None): it reuses the most recent join of
 * its multi-valued hop made before it, else makes one that no filter()
 * call shares.  "Before" is Django's call order, kept as events: filter()
 * call g is event 2g-1; values() and annotate() made after k filter()
 * calls are event 2k (Django resolves them when called); order_by,
 * select_related and the prefetch key are DORM__EV_END (resolved when the
 * statement is compiled).  Joins are registered in that order, so they
 * are written, and numbered, in Django's. */
#define DORM__EV_END 0x7fffffff
#define dorm__ev_call(after) (2 * (after))
typedef struct join {
  const dorm_hop *hop;
  int parent;        /* alias of the row this join hangs off */
  int part;          /* m2m: 0 = join table, 1 = target */
  int left;          /* LEFT OUTER rather than INNER */
  int named;         /* alias is the table name */
  int group;         /* multi-valued hop: the filter() call's group; 0 */
  int event;         /* the call that made it (see above) */
  const char *table; /* the table joined */
} join;

#define DORM_MAX_JOINS 32

typedef struct cctx {
  const dorm_query *q;
  dorm_dialect d;
  dorm_sql *out;
  dorm_error *err;
  int failed;
  int group;     /* the filter() call being walked (join groups); 0 */
  int event;     /* the call being walked, in call order (see join) */
  dorm__buf buf; /* the statement being written */
  /* Inside a negated lookup's EXISTS subquery (exclude.c): every alias is
   * "U<n>" (Django's), alias a being n = a + sub_alias - 1, so nothing in
   * it clashes with the statement around it; 0 outside one. */
  int sub_alias;
  /* In such a subquery: the statement around it, where a right-hand F()
   * is resolved (Django's OuterRef); NULL outside one. */
  struct cctx *outer;
  join joins[DORM_MAX_JOINS];
  int njoins;
  int no_joins;    /* UPDATE SET: joined references not allowed */
  int agg_inner;   /* writing the rows under aggregate() over a slice or a
                      distinct set: aggregates become their source columns */
  int registering; /* pre-pass: record joins, write nothing */
  const char *base_table;            /* the base table's name (alias 0) */
  char base_ref[DORM_IDENT_MAX + 4]; /* "base_table". */
  size_t base_ref_len;
  int int4_rhs; /* the parameters being written are compared with an int4
                   column (dorm_sql.param_int4) */
  /* the field the next parameter is written to (param_write) or compared
   * with, for SQLite's decimal check in dorm__emit_param; may be NULL */
  const dorm_field *param_field;
  int param_write;
} cctx;

/* sql.c: parameters, identifiers, output buffers */
/* Append n bytes; the common case (room in the buffer) is inline, since a
 * statement is written in many small pieces. */
static inline void dorm__emit(cctx *c, const char *s, size_t n) {
  dorm__buf *b = &c->buf;
  if (b->len + n + 1 <= b->cap) { /* NUL is written once, at the end */
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return;
  }
  dorm__buf_append(b, s, n);
}

/* "ident": identifiers come from a checked schema or were checked by the
 * builder (dorm_ident_valid), so they cannot contain a quote; quoting is
 * for reserved words and case. */
static inline void dorm__emit_ident(cctx *c, const char *ident) {
  size_t n = strlen(ident);
  dorm__buf *b = &c->buf;
  if (b->len + n + 3 > b->cap && dorm__buf_reserve(b, n + 2)) return;
  char *p = b->data + b->len;
  p[0] = '"';
  memcpy(p + 1, ident, n);
  p[n + 1] = '"';
  b->len += n + 2;
}

/* alias."column"; the base table's prefix is prepared once per compile */
void dorm__emit_alias(cctx *c, int alias);
static inline void dorm__emit_col(cctx *c, int alias, const char *column) {
  if (alias != 0) {
    dorm__emit_alias(c, alias);
    dorm__emit(c, ".", 1);
    dorm__emit_ident(c, column);
    return;
  }
  size_t n = strlen(column), pre = c->base_ref_len;
  dorm__buf *b = &c->buf;
  if (b->len + pre + n + 3 > b->cap && dorm__buf_reserve(b, pre + n + 2))
    return;
  char *p = b->data + b->len;
  memcpy(p, c->base_ref, pre);
  p[pre] = '"';
  memcpy(p + pre + 1, column, n);
  p[pre + n + 1] = '"';
  b->len += pre + n + 2;
}

/* The same for a model field, using the quoted name the schema prepared
 * (one copy instead of a strlen, two copies and two quotes). */
static inline void dorm__emit_fcol(cctx *c, int alias, const dorm_field *f) {
  if (alias != 0 || !f->qcolumn) {
    dorm__emit_col(c, alias, f->column);
    return;
  }
  size_t n = f->qcolumn_len, pre = c->base_ref_len;
  dorm__buf *b = &c->buf;
  if (b->len + pre + n + 1 > b->cap && dorm__buf_reserve(b, pre + n)) return;
  char *p = b->data + b->len;
  memcpy(p, c->base_ref, pre);
  memcpy(p + pre, f->qcolumn, n);
  b->len += pre + n;
}
static inline void dorm__emits(cctx *c, const char *s) {
  dorm__emit(c, s, strlen(s));
}
/* a string literal, its length known at compile time */
#define dorm__emitl(c, lit) dorm__emit((c), "" lit, sizeof(lit) - 1)
void dorm__emit_ident(cctx *c, const char *ident);
void dorm__emit_alias(cctx *c, int alias);
/* Add a parameter (its strings copied into out's arena) and write its
 * placeholder. */
void dorm__emit_param(cctx *c, dorm_value v);
/* Copy text into out's arena; NULL on OOM (c->failed set). */
const char *dorm__sql_strdup(cctx *c, const char *s, size_t n);
int dorm__add_column(cctx *c, const char *name, const dorm_field *f,
                     const dorm_model *m, int relation, dorm_type t);
/* The same for a name that outlives the statement (a schema string): no
 * copy. */
int dorm__add_column_static(cctx *c, const char *name, const dorm_field *f,
                            const dorm_model *m, int relation, dorm_type t);
/* Begin writing a statement into out (emptied, its buffers kept). */
void dorm__cctx_start(cctx *c, const dorm_query *q, dorm_dialect dialect,
                      dorm_sql *out, dorm_error *err);
/* End it: rc 0 finishes the statement (dorm__sql_finish); otherwise out
 * holds none and err says why.  Returns 0 or the error code. */
int dorm__cctx_end(cctx *c, int rc);
/* Offsets recorded while compiling -> pointers, once at the end. */
int dorm__sql_finish(cctx *c);
int dorm__cfail(cctx *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* joins.c: aliases and joins, shared by every statement kind */
/* The table the statement (or subquery) selects from: alias 0. */
void dorm__set_base_table(cctx *c, const char *table);
/* The alias that holds p's final field, adding joins as needed. */
int dorm__path_alias(cctx *c, const dorm_path *p, int want_left);
/* After registering: the joins under a LEFT one become LEFT. */
void dorm__propagate_left(cctx *c);
/* The join table's two columns for a many-to-many hop; -1 with the error
 * recorded when they cannot be formed.  Each buffer: DORM_IDENT_MAX + 1. */
int dorm__m2m_join_columns(cctx *c, const dorm_hop *h, char *from, char *to);
/* " LEFT OUTER JOIN t ON (...)" / " INNER JOIN ..." for joins[idx] */
void dorm__emit_join(cctx *c, int idx);
/* " FROM base [JOIN ...]" */
void dorm__emit_from(cctx *c);

/* columns.c: the values a statement reads */
/* "alias"."column" of p's final field (or the aggregate of an annotation). */
void dorm__emit_column_of(cctx *c, const dorm_path *p, int alias);
void dorm__emit_expr(cctx *c, const dorm_expr *e);
/* The annotation at position idx, or NULL. */
const struct annotation *dorm__annotation_at(const dorm_query *q, int idx);
/* An annotation's aggregate as a number (what HAVING and ORDER BY
 * compare). */
void dorm__emit_aggregate(cctx *c, const struct annotation *a);
/* The aggregate as the value a row gives; src >= 0: over the src-th source
 * column of aggregate()'s subquery (dorm__emit_agg_source_name). */
void dorm__emit_aggregate_value(cctx *c, const struct annotation *a, int src);
/* "subquery"."__col<i>" (qualified) or "__col<i>" */
void dorm__emit_agg_source_name(cctx *c, int i, int qualified);
/* SQLite's exact Sum() of decimals applies to a. */
int dorm__sqlite_decimal_sum(const cctx *c, const struct annotation *a);

/* where.c: conditions (WHERE, HAVING), shared by every statement kind */
/* Register the joins of one filter() call's conditions (no output);
 * c->group and c->event name the call. */
void dorm__register_cond(cctx *c, const dorm_q *cond);
/* Walk conditions, registering the joins they need (no output). */
void dorm__register_where(cctx *c, const dorm_qlist *where);
/* the AND of the top-level conditions (no "WHERE"); having selects the
 * conditions on annotations (1) or on fields (0); returns how many */
int dorm__emit_conditions(cctx *c, const dorm_qlist *where, int having);
#define dorm__has_conditions(q, having) ((having) ? (q)->nhaving : (q)->nwhere)

/* exclude.c: a negated lookup across a multi-valued relation, as EXISTS */
/* Does leaf n, under a NOT when branch_negated, become a subquery? */
int dorm__exclude_applies(const dorm_q *n, int branch_negated);
/* Register the joins of its outer key. */
void dorm__exclude_register(cctx *c, const dorm_q *n);
/* Write it: [NOT is the caller's] EXISTS(SELECT 1 FROM ...) */
void dorm__emit_exclude(cctx *c, const dorm_q *leaf);

/* select.c and compile_write.c: one statement */
int dorm__compile_select(cctx *c);
int dorm__compile_write(cctx *c);

/* lookups.c: one condition */
/* wrap: parenthesise when the condition grows an "AND col IS NOT NULL"
 * (needed under OR for readability; NOT and AND parents need none) */
void dorm__emit_lookup(cctx *c, const dorm_q *leaf, int negated, int wrap);
void dorm__emit_transform(cctx *c, const dorm_path *p, int alias);

#endif /* DORM_QUERY_INT_H */
