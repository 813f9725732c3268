/* SPDX-License-Identifier: MIT */
/* dorm/ddl.h — schema changes compiled to SQL, for PostgreSQL and SQLite.
 *
 * The DDL half of the pure compiler: each migration operation of
 * docs/migrations.md (create_model, add_field, alter_field, ...) becomes a
 * list of SQL statements for one dialect.  Like dorm_compile, nothing here
 * does I/O or reads global state: the same models give the same bytes.
 * The type mapping, the name of every derived constraint and index, and
 * what each operation compiles to are in docs/ddl.md.
 *
 * Operations take dorm_model / dorm_field structs (include/dorm/schema.h):
 * the migration layer builds the models as they are before and after the
 * operation.  Fields are matched between a before and an after model by
 * name, except the field an operation alters or renames, which is given.
 *
 * Identifiers come only from the models and are checked with
 * dorm_ident_valid and double-quoted; DDL takes no parameters, so the few
 * values it needs (a default that fills existing rows, the bounds of a
 * check constraint) are rendered as literals by one function (see
 * docs/ddl.md, "Literals") — the only place a value enters SQL text.
 * A check constraint is a conjunction of simple lookups on the model's own
 * fields, never SQL text.
 *
 * SQLite has no ALTER COLUMN and no ADD/DROP CONSTRAINT, so those changes
 * rebuild the table as Django's _remake_table does: create "new__<table>"
 * with the new definition, copy the rows, drop the old table, rename the
 * new one, recreate the indexes.  What the caller must do around that:
 *
 *   PRAGMA foreign_keys = OFF;      -- before BEGIN: it is a no-op inside a
 *   BEGIN;                          -- transaction, and with it ON the DROP
 *   ...every statement of the ops...-- TABLE would cascade into other tables
 *   PRAGMA foreign_key_check;       -- must return no rows, else ROLLBACK
 *   COMMIT;
 *   PRAGMA foreign_keys = ON;
 *
 * On PostgreSQL every statement is transactional; run a migration's
 * statements in one transaction.  dorm_ddl.rebuilds says whether a
 * SQLite rebuild is among the statements.
 *
 * Errors: each function returns 0 or a negative DORM_E* code with err
 * filled; the message names the model and the field ("model 'Author',
 * field 'age': ...").  On error `out` holds no statement and nothing
 * leaks; out-of-memory is DORM_ENOMEM, never an abort.
 */
#ifndef DORM_DDL_H
#define DORM_DDL_H

#include <stddef.h>

#include "dorm/version.h"
#include "dorm/error.h"
#include "dorm/query.h"
#include "dorm/schema.h"
#include "dorm/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- output ------------------------------------------------------------- */

/* The statements of one operation, in the order they must run.  Owned by
 * the dorm_ddl: free with dorm_ddl_free.  Each statement is one SQL
 * statement without a trailing ';'. */
typedef struct dorm_ddl {
  char **stmts; /* n NUL-terminated statements */
  size_t n;
  int rebuilds; /* SQLite: tables rebuilt (see above for the caller) */
  size_t cap;   /* private */
} dorm_ddl;

DORM_EXTERN void dorm_ddl_init(dorm_ddl *ddl);
/* Free the statements (ddl itself is the caller's) and empty it. */
DORM_EXTERN void dorm_ddl_free(dorm_ddl *ddl);

/* ---- constraints (Django's Meta.constraints) ---------------------------- */

/* Lookups a check may use: Django's names, on one of the model's own
 * fields, against a literal. */
typedef enum dorm_check_op {
  DORM_CHECK_EXACT = 0, /* = value (IS NULL for a null value) */
  DORM_CHECK_GT,
  DORM_CHECK_GTE,
  DORM_CHECK_LT,
  DORM_CHECK_LTE,
  DORM_CHECK_IN,    /* value: a non-empty DORM_T_LIST, no nulls */
  DORM_CHECK_RANGE, /* value: a DORM_T_LIST of two: BETWEEN a AND b */
  DORM_CHECK_ISNULL /* value: a bool */
} dorm_check_op;

/* "gte" -> DORM_CHECK_GTE; -1 when not a check lookup. */
DORM_EXTERN int dorm_check_op_parse(const char *name);

/* One term of a check: {"age__gte": 18} is {"age", DORM_CHECK_GTE, 18}.
 * field is a field name (or a column name); value is borrowed. */
typedef struct dorm_check_term {
  const char *field;
  dorm_check_op op;
  dorm_value value;
} dorm_check_term;

typedef enum dorm_constraint_kind {
  DORM_CONSTRAINT_UNIQUE = 0, /* UNIQUE (fields...) */
  DORM_CONSTRAINT_CHECK       /* CHECK (term AND term ...) */
} dorm_constraint_kind;

/* A named table constraint.  Everything is borrowed from the caller for
 * the duration of the call. */
typedef struct dorm_ddl_constraint {
  const char *name; /* identifier, e.g. "age_gte_18" */
  dorm_constraint_kind kind;
  const char *const *fields; /* UNIQUE: field names */
  size_t nfields;
  const dorm_check_term *terms; /* CHECK: ANDed, at least one */
  size_t nterms;
} dorm_ddl_constraint;

/* ---- operations ----------------------------------------------------------
 * Common arguments: d the dialect; out receives the statements (its old
 * contents are freed and replaced, also on error, when it is left empty);
 * err may be NULL.  `cons`/`ncons` are the model's constraints as they are
 * AFTER the operation (schema.h models do not carry them, and a SQLite
 * rebuild must recreate them); cons may be NULL when ncons is 0.
 * Every pointer is borrowed for the duration of the call.
 */

/* CREATE TABLE with its columns, primary key, unique, foreign key and
 * check constraints and unique_together; then CREATE INDEX for db_index
 * and foreign key fields and for the model's indexes; then the join table
 * of every many_to_many field. */
DORM_EXTERN int dorm_ddl_create_model(const dorm_model *m,
                                      const dorm_ddl_constraint *cons,
                                      size_t ncons, dorm_dialect d,
                                      dorm_ddl *out, dorm_error *err);
/* DROP TABLE of the join tables, then of the table (CASCADE on
 * PostgreSQL, as Django). */
DORM_EXTERN int dorm_ddl_delete_model(const dorm_model *m, dorm_dialect d,
                                      dorm_ddl *out, dorm_error *err);
/* ALTER TABLE ... RENAME TO after->table, and rename what dorm derived
 * from the old table name: constraints and indexes dorm named, join tables
 * and their model column.  Empty when nothing changes. */
DORM_EXTERN int dorm_ddl_rename_model(const dorm_model *before,
                                      const dorm_model *after, dorm_dialect d,
                                      dorm_ddl *out, dorm_error *err);
/* Add field f of model `after` (f points into after->fields).  A default
 * fills existing rows and is then dropped from the schema (Django's rule);
 * many_to_many creates the join table.  SQLite rebuilds unless the field
 * is nullable, without default, not unique. */
DORM_EXTERN int dorm_ddl_add_field(const dorm_model *after,
                                   const dorm_ddl_constraint *cons,
                                   size_t ncons, const dorm_field *f,
                                   dorm_dialect d, dorm_ddl *out,
                                   dorm_error *err);
/* Remove field f (a field of `before`).  SQLite uses DROP COLUMN when the
 * column has no index, unique, key or reference, else rebuilds. */
DORM_EXTERN int dorm_ddl_remove_field(const dorm_model *before,
                                      const dorm_model *after,
                                      const dorm_ddl_constraint *cons,
                                      size_t ncons, const dorm_field *f,
                                      dorm_dialect d, dorm_ddl *out,
                                      dorm_error *err);
/* Change old_field (of `before`) into new_field (of `after`): column name,
 * type, null, unique, db_index, relation target and on_delete.  Refused
 * (DORM_EUNSUPPORTED): changing primary_key, auto <-> non-auto (auto <->
 * bigauto is fine), many_to_many <-> other types, a many_to_many's
 * target.  Becoming NOT NULL with a default first fills the NULLs with
 * it.  SQLite rebuilds unless only the column name or an index changes. */
DORM_EXTERN int dorm_ddl_alter_field(const dorm_model *before,
                                     const dorm_model *after,
                                     const dorm_ddl_constraint *cons,
                                     size_t ncons, const dorm_field *old_field,
                                     const dorm_field *new_field,
                                     dorm_dialect d, dorm_ddl *out,
                                     dorm_error *err);
/* Rename a field: RENAME COLUMN when the column changes (and the derived
 * names that contain it); the join table for a many_to_many.  The same as
 * dorm_ddl_alter_field with fields that differ only in name. */
DORM_EXTERN int dorm_ddl_rename_field(const dorm_model *before,
                                      const dorm_model *after,
                                      const dorm_ddl_constraint *cons,
                                      size_t ncons, const dorm_field *old_field,
                                      const dorm_field *new_field,
                                      dorm_dialect d, dorm_ddl *out,
                                      dorm_error *err);
/* CREATE [UNIQUE] INDEX "index->name" ON the model's table; DROP INDEX. */
DORM_EXTERN int dorm_ddl_add_index(const dorm_model *m, const dorm_index *index,
                                   dorm_dialect d, dorm_ddl *out,
                                   dorm_error *err);
DORM_EXTERN int dorm_ddl_remove_index(const dorm_model *m,
                                      const dorm_index *index, dorm_dialect d,
                                      dorm_ddl *out, dorm_error *err);
/* PostgreSQL: ALTER TABLE ADD/DROP CONSTRAINT.  SQLite: a rebuild with
 * `cons` (the constraints after: including c for add, without it for
 * remove). */
DORM_EXTERN int dorm_ddl_add_constraint(const dorm_model *m,
                                        const dorm_ddl_constraint *cons,
                                        size_t ncons,
                                        const dorm_ddl_constraint *c,
                                        dorm_dialect d, dorm_ddl *out,
                                        dorm_error *err);
DORM_EXTERN int dorm_ddl_remove_constraint(const dorm_model *m,
                                           const dorm_ddl_constraint *cons,
                                           size_t ncons,
                                           const dorm_ddl_constraint *c,
                                           dorm_dialect d, dorm_ddl *out,
                                           dorm_error *err);

/* ---- join table names --------------------------------------------------- */

/* The two columns of a many_to_many's join table (Django's names, the
 * same the DDL and query compilers use):
 * "<source model, lower-cased>_id" and "<target model, lower-cased>_id",
 * or "from_<m>_id" / "to_<m>_id" when the field points at its own model.
 * Each buffer needs DORM_IDENT_MAX + 1 bytes.  DORM_EIDENT when a name
 * would be longer than DORM_IDENT_MAX; DORM_EINVAL for a field that is not
 * a resolved many_to_many. */
DORM_EXTERN int dorm_ddl_m2m_columns(const dorm_field *f, char *from_col,
                                     char *to_col);

#ifdef __cplusplus
}
#endif
#endif /* DORM_DDL_H */
