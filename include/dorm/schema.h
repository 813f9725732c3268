/* SPDX-License-Identifier: MIT */
/* dorm/schema.h — models and fields: load models.json or build them in C.
 *
 * A dorm_schema holds every model of one models.json (format in
 * docs/models.md).  Loading checks the whole file first and refuses it as a
 * whole: the error names the file, the JSON line and column where known,
 * the model and the field ("models.json:14:9: model 'Entry', field
 * 'author': unknown model 'Autor'").
 *
 * The structs below are public so that the compiler and backends can read
 * them without call overhead, but they are READ-ONLY for users: build and
 * change schemas only through the functions here.  Every string and array
 * in a schema is owned by the schema and lives until dorm_schema_free().
 * Schemas are immutable once finished, so any number of threads may read
 * one at once.
 */
#ifndef DORM_SCHEMA_H
#define DORM_SCHEMA_H

#include <stddef.h>

#include "dorm/version.h"
#include "dorm/error.h"
#include "dorm/value.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DORM_IDENT_MAX 63 /* longest identifier, in bytes (PostgreSQL's) */

typedef enum dorm_field_type {
  DORM_FIELD_AUTO = 0,
  DORM_FIELD_BIGAUTO,
  DORM_FIELD_SMALLINT,
  DORM_FIELD_INTEGER,
  DORM_FIELD_BIGINT,
  DORM_FIELD_FLOAT,
  DORM_FIELD_DECIMAL,
  DORM_FIELD_BOOLEAN,
  DORM_FIELD_VARCHAR,
  DORM_FIELD_TEXT,
  DORM_FIELD_DATE,
  DORM_FIELD_DATETIME,
  DORM_FIELD_TIME,
  DORM_FIELD_UUID,
  DORM_FIELD_JSON,
  DORM_FIELD_BINARY,
  DORM_FIELD_FOREIGN_KEY,
  DORM_FIELD_ONE_TO_ONE,
  DORM_FIELD_MANY_TO_MANY,
  DORM_FIELD__COUNT
} dorm_field_type;

typedef enum dorm_on_delete {
  DORM_ON_DELETE_CASCADE = 0,
  DORM_ON_DELETE_PROTECT,
  DORM_ON_DELETE_RESTRICT,
  DORM_ON_DELETE_SET_NULL,
  DORM_ON_DELETE_SET_DEFAULT,
  DORM_ON_DELETE_DO_NOTHING
} dorm_on_delete;

/* Field flags */
#define DORM_FIELD_NULL 0x01     /* "null": true */
#define DORM_FIELD_UNIQUE 0x02   /* "unique": true (implied by primary key) */
#define DORM_FIELD_DB_INDEX 0x04 /* "db_index": true */
#define DORM_FIELD_PRIMARY_KEY 0x08 /* "primary_key": true */
#define DORM_FIELD_HAS_DEFAULT 0x10 /* "default" given: see default_value */

struct dorm_model;
struct dorm_schema;

typedef struct dorm_field {
  const char *name;   /* field name, as in models.json */
  const char *column; /* column: db_column, else name (name_id for FKs);
                         NULL for many_to_many, which has no column */
  dorm_field_type type;
  unsigned flags;            /* DORM_FIELD_* above */
  int max_length;            /* varchar; 0 otherwise */
  int max_digits;            /* decimal */
  int decimal_places;        /* decimal */
  dorm_value default_value;  /* when flags & DORM_FIELD_HAS_DEFAULT; its
                                type follows the field (DORM_T_JSON text for
                                a json field; DORM_T_NULL for "default":
                                null on a nullable field) */
  const dorm_value *choices; /* "choices": allowed values, or NULL */
  size_t nchoices;
  /* relations (foreign_key, one_to_one, many_to_many) */
  const char *to;                  /* target model name as written */
  const struct dorm_model *target; /* resolved target model */
  dorm_on_delete on_delete;
  const char *related_name;       /* reverse accessor; NULL = lower-cased
                                     model name (Django's default query name) */
  const char *through_table;      /* many_to_many: the join table
                                     ("<table>_<field>") */
  const struct dorm_model *model; /* the model this field belongs to */
  int line, col;                  /* position in models.json, or 0 */
  /* Added after the first layout (append only): */
  const char *const *choice_labels; /* one per choice: the label of a
                                       [value, label] pair, or NULL; the
                                       array is NULL when choices is */
  dorm_type value_type; /* dorm_field_value_type(), computed once when the
                           schema is finished (0 in a hand-built struct) */
  const char *qcolumn;  /* the column double-quoted ("\"age\""), for the SQL
                           compiler; NULL in a hand-built struct and for
                           many_to_many */
  size_t qcolumn_len;
} dorm_field;

typedef struct dorm_index {
  const char *name;    /* index name (given or derived, always set) */
  const char **fields; /* field names */
  size_t nfields;
  int unique;
} dorm_index;

typedef struct dorm_model {
  const char *name;         /* "Author" */
  const char *table;        /* "author" */
  const dorm_field *fields; /* in declaration order; the implicit id first */
  size_t nfields;
  const dorm_field *pk; /* the primary key field */
  const dorm_index *indexes;
  size_t nindexes;
  const dorm_index *unique_together; /* each with unique = 1 */
  size_t nunique_together;
  const char **ordering; /* default ordering ("-joined"), may be empty */
  size_t nordering;
  const struct dorm_schema *schema;
  int line, col;
  const char *qtable; /* the table double-quoted and followed by a dot
                         ("\"author\"."), for the SQL compiler; NULL in a
                         hand-built struct */
  size_t qtable_len;
} dorm_model;

typedef struct dorm_schema {
  const dorm_model *models;
  size_t nmodels;
  const char *source; /* file name it was loaded from, or "<memory>" */
} dorm_schema;

/* Load a models file.  Returns a new schema (free with dorm_schema_free),
 * or NULL with err filled ("models.json:14:9: model 'Entry', field
 * 'author': unknown model 'Autor'"). */
DORM_EXTERN dorm_schema *dorm_schema_load_file(const char *path,
                                               dorm_error *err);
/* The same from a string in memory; name is used in messages and as
 * schema->source (NULL means "<memory>"). */
DORM_EXTERN dorm_schema *dorm_schema_load_string(const char *json,
                                                 const char *name,
                                                 dorm_error *err);
DORM_EXTERN void dorm_schema_free(dorm_schema *schema);

/* Lookups: NULL when absent.  Model names match exactly or by lower-cased
 * name ("author" finds "Author").  Borrowed from the schema. */
DORM_EXTERN const dorm_model *dorm_schema_model(const dorm_schema *schema,
                                                const char *name);
DORM_EXTERN const dorm_field *dorm_model_field(const dorm_model *model,
                                               const char *name);
/* A field by column name ("author_id"), or NULL. */
DORM_EXTERN const dorm_field *dorm_model_field_by_column(
    const dorm_model *model, const char *column);

/* Building a schema in C.  The builder copies every string it is given.
 * Errors are sticky: the first one is kept and reported by
 * dorm_schema_builder_finish, which runs the same checks as the loader
 * (the rules and messages of docs/models.md, without file positions).
 * Each call returns 0 or the first error; options apply to the field added
 * last.  A NULL builder (dorm_schema_builder_new out of memory) is accepted
 * everywhere and reads as DORM_ENOMEM, so calls need no check until
 * finish.
 *
 *   dorm_schema_builder *b = dorm_schema_builder_new();
 *   dorm_schema_builder_model(b, "Author", NULL);           // table default
 *   dorm_schema_builder_field(b, "name", DORM_FIELD_VARCHAR, 0);
 *   dorm_schema_builder_max_length(b, 100);
 *   dorm_schema_builder_field(b, "age", DORM_FIELD_INTEGER, DORM_FIELD_NULL);
 *   dorm_schema *s = dorm_schema_builder_finish(b, &err); // frees b
 */
typedef struct dorm_schema_builder dorm_schema_builder;
DORM_EXTERN dorm_schema_builder *dorm_schema_builder_new(void);
/* Start a model; table NULL means the lower-cased name. */
DORM_EXTERN int dorm_schema_builder_model(dorm_schema_builder *b,
                                          const char *name, const char *table);
/* Add a field to the current model; options below apply to it. */
DORM_EXTERN int dorm_schema_builder_field(dorm_schema_builder *b,
                                          const char *name,
                                          dorm_field_type type, unsigned flags);
DORM_EXTERN int dorm_schema_builder_max_length(dorm_schema_builder *b,
                                               int max_length);
DORM_EXTERN int dorm_schema_builder_decimal(dorm_schema_builder *b,
                                            int max_digits, int decimal_places);
/* v is checked and converted at finish to the field's value type: e.g.
 * dorm_int(0) for a float, dorm_str("2024-05-01") for a date, dorm_int(10)
 * for a decimal; a json field takes dorm_json_text (stored re-serialized,
 * compact with sorted keys) or a scalar (stored as that JSON scalar). */
DORM_EXTERN int dorm_schema_builder_default(dorm_schema_builder *b,
                                            dorm_value v);
DORM_EXTERN int dorm_schema_builder_db_column(dorm_schema_builder *b,
                                              const char *column);
/* foreign_key / one_to_one / many_to_many: to is a model name (exact or
 * any case, declared before or after) or "self"; related_name may be NULL.
 * on_delete is ignored for many_to_many. */
DORM_EXTERN int dorm_schema_builder_relation(dorm_schema_builder *b,
                                             const char *to,
                                             dorm_on_delete on_delete,
                                             const char *related_name);
/* Index or unique_together on the current model; name NULL derives one
 * ("<table>_<fields joined by _>_idx", or "_uniq"; cut to 63 bytes with a
 * stable hash when longer).  unique = 0 adds to model->indexes, unique != 0
 * adds a unique_together entry (model->unique_together). */
DORM_EXTERN int dorm_schema_builder_index(dorm_schema_builder *b,
                                          const char *name,
                                          const char *const *fields, size_t n,
                                          int unique);
/* A unique index in model->indexes (models.json: an "indexes" entry with
 * "unique": true), as opposed to a unique_together constraint. */
DORM_EXTERN int dorm_schema_builder_unique_index(dorm_schema_builder *b,
                                                 const char *name,
                                                 const char *const *fields,
                                                 size_t n);
/* "choices" of the current field: n values (converted at finish to the
 * field's value type) and their labels (labels may be NULL, or hold NULL
 * entries, for choices without one).  Everything is copied. */
DORM_EXTERN int dorm_schema_builder_choices(dorm_schema_builder *b,
                                            const dorm_value *values,
                                            const char *const *labels,
                                            size_t n);
DORM_EXTERN int dorm_schema_builder_ordering(dorm_schema_builder *b,
                                             const char *item);
/* Check and resolve everything; frees b in every case. */
DORM_EXTERN dorm_schema *dorm_schema_builder_finish(dorm_schema_builder *b,
                                                    dorm_error *err);
DORM_EXTERN void dorm_schema_builder_free(dorm_schema_builder *b);

/* Helpers shared by every layer. */
/* 1 when s matches ^[A-Za-z_][A-Za-z0-9_]*$ and is at most 63 bytes. */
DORM_EXTERN int dorm_ident_valid(const char *s);
/* "integer", "foreign_key", ...; NULL for an unknown value. */
DORM_EXTERN const char *dorm_field_type_name(dorm_field_type t);
/* Parse a type name; -1 when unknown. */
DORM_EXTERN int dorm_field_type_parse(const char *name);
/* 1 for foreign_key and one_to_one (fields with a column to another
 * model). */
DORM_EXTERN int dorm_field_is_fk(const dorm_field *f);
/* The value type a field's values travel as (DORM_T_INT for integers and
 * foreign keys to integer keys, DORM_T_DATETIME for datetime, ...). */
DORM_EXTERN dorm_type dorm_field_value_type(const dorm_field *f);
/* The name relation f (foreign key, one-to-one or many_to_many) is reached
 * by from its target, as "entries" in Author.filter(entries__rating=5):
 * its related_name, or Django's default, the lower-cased model name,
 * written into buf (cap bytes; DORM_IDENT_MAX + 1 hold any name of a
 * checked schema, a longer one is cut).  Returns f->related_name (owned by
 * the schema) or buf (the caller's). */
DORM_EXTERN const char *dorm_field_reverse_name(const dorm_field *f, char *buf,
                                                size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* DORM_SCHEMA_H */
