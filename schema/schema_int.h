/* SPDX-License-Identifier: MIT */
/* schema/schema_int.h — private to schema/: the builder's working state,
 * the schema's hidden owner block, and helpers shared by the builder, the
 * final checks and the models.json loader; and the few schema facts the
 * compilers of query/ ask (the join table's column names).
 *
 * A schema is one allocation (dorm__schema) whose public part is the first
 * member, plus an arena that holds every string and array the public
 * structs point to; dorm_schema_free frees the arena and the block.  The
 * builder copies everything it is given into an arena that becomes the
 * schema's at dorm_schema_builder_finish, so strings are copied once.
 */
#ifndef DORM_SCHEMA_INT_H
#define DORM_SCHEMA_INT_H

#include <stdarg.h>
#include <stddef.h>

#include "base/base_int.h"
#include "dorm/schema.h"

/* The allocation behind a dorm_schema *: pub must stay first so the public
 * pointer and the block are the same address. */
typedef struct dorm__schema {
  dorm_schema pub;
  dorm__arena arena;
} dorm__schema;

/* Which options a field was given, so the checks can refuse options that
 * do not apply to its type instead of ignoring them silently. */
enum {
  DORM__OPT_MAX_LENGTH = 1u << 0,
  DORM__OPT_DECIMAL = 1u << 1, /* max_digits and decimal_places */
  DORM__OPT_DEFAULT = 1u << 2,
  DORM__OPT_DB_COLUMN = 1u << 3,
  DORM__OPT_RELATION = 1u << 4, /* to / related_name */
  DORM__OPT_ON_DELETE = 1u << 5,
  DORM__OPT_CHOICES = 1u << 6,
  DORM__OPT_MAX_DIGITS = 1u << 7,     /* loader: which half was given */
  DORM__OPT_DECIMAL_PLACES = 1u << 8, /* loader: which half was given */
  DORM__OPT_IMPLICIT = 1u << 9,       /* the automatic "id" */
  DORM__OPT_JSON_CANON = 1u << 10     /* default is json_dumpb output (the
                                         loader's): no need to re-parse */
};

/* A field while building: the public struct plus what was given. */
typedef struct dorm__bfield {
  dorm_field f; /* name, type, flags, options; strings in the arena */
  unsigned opts;
  const char *db_column; /* as given, or NULL */
  dorm_value def;        /* raw default as given (strings in the arena) */
  dorm_value *choices;   /* raw choices, in the arena */
  const char **labels;   /* one per choice, NULL entries when none */
  size_t nchoices;
} dorm__bfield;

typedef struct dorm__bindex {
  const char *name; /* as given, or NULL to derive */
  const char **fields;
  size_t nfields;
  int unique;
  int line, col;
} dorm__bindex;

typedef struct dorm__bmodel {
  const char *name;
  const char *table; /* as given, or NULL for the lower-cased name */
  dorm__bfield *fields;
  size_t nfields, capfields;
  dorm__bindex *indexes; /* "indexes" */
  size_t nindexes, capindexes;
  dorm__bindex *uniques; /* "unique_together" */
  size_t nuniques, capuniques;
  const char **ordering;
  int *ordering_pos; /* line, col pairs, for messages */
  size_t nordering, capordering;
  int line, col;
} dorm__bmodel;

struct dorm_schema_builder {
  dorm__arena arena; /* becomes the schema's */
  dorm__bmodel *models;
  size_t nmodels, capmodels;
  const char *source; /* name used in messages, or NULL (built in C) */
  dorm_error err;     /* first error; sticky */
};

/* ---- builder internals used by the loader -------------------------------
 * The loader feeds the builder through the public functions, and uses
 * these to attach positions and what the public API cannot express. */
void dorm__builder_set_source(dorm_schema_builder *b, const char *source);
/* Position of the current model / field / last index (in_uniques: of
 * unique_together) / last ordering item. */
void dorm__builder_model_pos(dorm_schema_builder *b, int line, int col);
void dorm__builder_field_pos(dorm_schema_builder *b, int line, int col);
void dorm__builder_index_pos(dorm_schema_builder *b, int in_uniques, int line,
                             int col);
void dorm__builder_ordering_pos(dorm_schema_builder *b, int line, int col);
/* The field being built, or NULL. */
dorm__bfield *dorm__builder_cur_field(dorm_schema_builder *b);
/* Record an error at a position, with model and field (either may be NULL;
 * field_index >= 0 names a field by number when it has no name yet).
 * First error wins; returns code. */
int dorm__builder_fail(dorm_schema_builder *b, int code, int line, int col,
                       const char *model, const char *field, const char *fmt,
                       ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;

/* Format "source:line:col: model 'M', field 'f': message" into err (parts
 * left out when NULL/0).  First error wins; returns code. */
int dorm__schema_errorv(dorm_error *err, int code, const char *source, int line,
                        int col, const char *model, const char *field,
                        const char *fmt, va_list ap);

/* The final checks, resolution and layout: schema/check.c. */
dorm_schema *dorm__builder_finish(dorm_schema_builder *b, dorm_error *err);

/* ---- fields.c ----------------------------------------------------------- */

/* The field whose type a field's values really have: itself, or for a
 * relation the (transitive) primary key of its target.  NULL when a
 * relation is unresolved. */
const dorm_field *dorm__value_field(const dorm_field *f);

/* Check v as a value (default or choice) of field f and convert it to the
 * field's value type (dorm_field_value_type).  Strings of *out live in a
 * (or are v's own when no conversion is needed).  On refusal returns
 * DORM_ESCHEMA and writes a reason into why ("expected an integer").
 * DORM_ENOMEM when the arena fails. */
int dorm__value_coerce(const dorm_field *f, dorm_value v, dorm__arena *a,
                       dorm_value *out, char *why, size_t whylen);
/* The same, for DORM_T_JSON text known to be canonical already (written by
 * json_dumpb with the flags above): kept as is, not parsed again. */
int dorm__value_coerce_canon(const dorm_field *f, dorm_value v, dorm__arena *a,
                             dorm_value *out, char *why, size_t whylen);
/* A short printable form of v for messages ("\"abc\"", "12", "true"). */
void dorm__value_describe(dorm_value v, char *buf, size_t len);

/* Light format checks of the text forms (1 = valid). */

/* 32-bit FNV-1a, for short stable suffixes of derived names. */
uint32_t dorm__hash32(const char *s, size_t n, uint32_t h);
#define DORM__HASH32_INIT 2166136261u

/* ---- m2m_names.c -------------------------------------------------------- */

/* The two columns of a many_to_many's join table (the public
 * dorm_ddl_m2m_columns, include/dorm/ddl.h, says the names): each buffer
 * needs DORM_IDENT_MAX + 1 bytes.  0; DORM_EIDENT when a name would be
 * longer than DORM_IDENT_MAX; DORM_EINVAL for a field that is not a
 * resolved many_to_many.  The compilers in query/ ask this too. */
int dorm__m2m_columns(const dorm_field *f, char *from_col, char *to_col);

/* ---- index_names.c ----------------------------------------------------- */

/* Needs a UNIQUE constraint of its own (unique or one_to_one, not pk). */
int dorm__field_needs_unique(const dorm_field *f);
/* Gets a plain index (db_index or a foreign key; not pk/unique/m2m). */
int dorm__field_needs_index(const dorm_field *f);
/* "<table>_<part>_..._<suffix>" into out[DORM_IDENT_MAX + 1]: the name of a
 * field's index ("_idx"), unique constraint ("_uniq"), foreign key ("_fk"),
 * ... Names longer than DORM_IDENT_MAX are cut and given an 8-hex-digit
 * hash of the full name, so they stay unique and deterministic. */
void dorm__derived_name(char *out, const char *table, const char *const *parts,
                        size_t nparts, const char *suffix);

/* ---- json_pos.c --------------------------------------------------------- */

/* One step of a path into a JSON document: an object key (key != NULL) or
 * an array index. */
typedef struct dorm__jstep {
  const char *key; /* raw key text (escapes not decoded), or NULL */
  size_t keylen;
  size_t index;
} dorm__jstep;

/* Called for every value in document order with its path, the position of
 * its first character and, for object members, of its key (else 0).
 * Return 0 to go on, 1 to stop the walk. */
typedef int (*dorm__jvisit_fn)(void *ud, const dorm__jstep *path, size_t depth,
                               int line, int col, int key_line, int key_col);

/* Walk the (already validated) JSON text; columns count characters as
 * jansson does, both 1-based.  Stops quietly at anything malformed. */
void dorm__json_walk(const char *text, size_t len, size_t max_depth,
                     dorm__jvisit_fn visit, void *ud);
/* Position of the value at path (keys NUL-terminated; keylen unused), or
 * of its key when want_key and the last step is a key.  0 when found, -1
 * otherwise (line/col left as they are). */
int dorm__json_locate(const char *text, size_t len, const dorm__jstep *path,
                      size_t depth, int want_key, int *line, int *col);

#endif /* DORM_SCHEMA_INT_H */
