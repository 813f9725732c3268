/* SPDX-License-Identifier: MIT */
/* query/ddl/ddl_int.h — private to the DDL compiler (query/ddl/).
 *
 * One ddl_ctx carries a compile: the dialect, the output, the first error
 * and the statement being written.  Helpers append to ctx->b and record
 * errors in the context (first error wins), so the operation code reads as
 * a straight sequence of appends and checks once, in dorm__ddl_end, which
 * also turns a sticky out-of-memory into DORM_ENOMEM and empties `out` on
 * any failure.
 *
 * The files form groups, each calling only the groups below it, and
 * within a group only the files listed before it (tests/test_layering.c
 * checks the calls in the compiled objects):
 *
 *   1. emit helpers: emit.c (output list, context, identifiers, field
 *      facts, derived names), literal.c (values as SQL literals, check
 *      conditions), columns.c (types, column definitions, constraint
 *      bodies): pieces of one statement;
 *   2. statements: tables.c (CREATE TABLE, indexes, join tables, DROP,
 *      renames), alter.c (alter_field in place: PostgreSQL's, and SQLite's
 *      rename-only case);
 *   3. the SQLite table rebuild: rebuild.c, made of those statements;
 *   4. operations: ddl.c, the public dorm_ddl_* functions, each writing
 *      statements or, on SQLite, having the table rebuilt.
 *
 * The declarations below follow the same order.  A schema fact the query
 * compiler needs too (the join table's column names) is schema/'s
 * (dorm__m2m_columns), not this group's.
 */
#ifndef DORM_DDL_INT_H
#define DORM_DDL_INT_H

#include "base/base_int.h"
#include "dorm/ddl.h"

typedef struct ddl_ctx {
  dorm_dialect d;
  dorm_ddl *out;
  dorm_error *err;
  int rc;              /* first error, 0 while fine */
  int oom;             /* an allocation failed outside ctx->b */
  dorm__buf b;         /* the statement being written */
  const dorm_model *m; /* named in messages */
  const dorm_field *f; /* named in messages, or NULL */
} ddl_ctx;

/* ==== 1. emit helpers ==================================================== */

/* ---- the context (emit.c) ----------------------------------------------- */

/* Start a compile: empty out, clear err's code. */
void dorm__ddl_begin(ddl_ctx *c, dorm_dialect d, const dorm_model *m,
                     dorm_ddl *out, dorm_error *err);
/* Finish: on error (or OOM) free out's statements; returns 0 or the code. */
int dorm__ddl_end(ddl_ctx *c);
/* Record an error prefixed "model 'M', field 'f': " (field part when c->f
 * is set).  Returns code. */
int dorm__ddl_fail(ddl_ctx *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Append a quoted, validated identifier; an invalid one records
 * DORM_EIDENT and nothing reaches the statement. */
void dorm__ddl_ident(ddl_ctx *c, const char *ident);
/* Append "new__<table>" quoted (the rebuild's temporary table; the table
 * is validated, the prefix is a constant). */
void dorm__ddl_tmp_table(ddl_ctx *c, const char *table);
void dorm__ddl_puts(ddl_ctx *c, const char *s);
/* The statement written so far becomes the next one of out. */
void dorm__ddl_emit(ddl_ctx *c);

/* ---- fields (emit.c) ---------------------------------------------------- */

int dorm__ddl_is_m2m(const dorm_field *f);
int dorm__ddl_is_auto(const dorm_field *f);
/* foreign_key or one_to_one */
int dorm__ddl_is_rel(const dorm_field *f);
/* Needs a UNIQUE constraint of its own (unique or one_to_one, not pk). */
int dorm__ddl_needs_unique(const dorm_field *f);
/* Gets a plain index (db_index or a foreign key; not pk/unique). */
int dorm__ddl_needs_index(const dorm_field *f);
/* Keeps its default in the schema: a foreign key with on_delete
 * set_default, which the database needs to act. */
int dorm__ddl_keeps_default(const dorm_field *f);
/* The field whose type the field's values have: itself, or a relation's
 * (transitive) target primary key; NULL when unresolved. */
const dorm_field *dorm__ddl_value_field(const dorm_field *f);
const dorm_field *dorm__ddl_find_field(const dorm_model *m, const char *name);
/* By field name, else by column name ("author_id"). */
const dorm_field *dorm__ddl_lookup(const dorm_model *m, const char *name);
const dorm_field *dorm__ddl_model_pk(const dorm_model *m);
/* The field's default when it has a non-null one, else NULL. */
const dorm_value *dorm__ddl_default(const dorm_field *f);

/* ---- derived names (emit.c; the rule is schema's, index_names.c)
 * --------------------------------------------- */

/* "<table>_<part>_..._<suffix>" into out[DORM_IDENT_MAX + 1]; names longer
 * than DORM_IDENT_MAX are cut and given an 8-hex-digit hash of the full
 * name, so they stay unique and deterministic. */
void dorm__ddl_name(char *out, const char *table, const char *const *parts,
                    size_t nparts, const char *suffix);
/* One-column form of dorm__ddl_name. */
void dorm__ddl_name1(char *out, const char *table, const char *col,
                     const char *suffix);

/* ---- literals (literal.c) ------------------------------------------------
 * The only place a value enters SQL text.  v must fit the type t (a
 * field's value type, see dorm__ddl_value_field).  Returns 0, or
 * DORM_ETYPE / DORM_ERANGE with a reason in why. */
int dorm__ddl_literal(dorm__buf *b, dorm_dialect d, const dorm_field *vf,
                      dorm_value v, char *why, size_t whylen);
/* The literal into c->b, errors recorded with model and field. */
void dorm__ddl_put_literal(ddl_ctx *c, const dorm_field *vf, dorm_value v);
/* The condition of a check constraint: "a" >= 18 AND "b" IS NULL. */
void dorm__ddl_check_condition(ddl_ctx *c, const dorm_model *m,
                               const dorm_ddl_constraint *k);

/* ---- columns (columns.c) ------------------------------------------------ */

/* The column's type for the dialect ("integer", "varchar(100)", ...); a
 * relation gets its target key's type, auto keys their plain integer. */
void dorm__ddl_type(ddl_ctx *c, const dorm_field *f);
/* A full column definition for table (used for derived names).  flags:
 * DDL_COL_DEFAULT adds DEFAULT <the field's default> (the transient
 * default of add_field). */
#define DDL_COL_DEFAULT 0x1
void dorm__ddl_column(ddl_ctx *c, const char *table, const dorm_field *f,
                      unsigned flags);
/* REFERENCES "t" ("pk") [ON DELETE ...] DEFERRABLE INITIALLY DEFERRED */
void dorm__ddl_references(ddl_ctx *c, const dorm_field *f);
/* Table constraint bodies: UNIQUE ("a", "b") or CHECK (...). */
void dorm__ddl_constraint_body(ddl_ctx *c, const dorm_model *m,
                               const dorm_ddl_constraint *k);

/* ==== 2. statements ====================================================== */

/* ---- tables, indexes, join tables, renames (tables.c) ------------------- */

/* The whole CREATE TABLE for m; tmp_name: under the rebuild's temporary
 * name ("new__<table>") instead of m->table. */
void dorm__ddl_create_table(ddl_ctx *c, const dorm_model *m,
                            const dorm_ddl_constraint *cons, size_t ncons,
                            int tmp_name);
/* CREATE INDEX for every field and model index of m; one statement each. */
void dorm__ddl_create_indexes(ddl_ctx *c, const dorm_model *m);
void dorm__ddl_field_index(ddl_ctx *c, const dorm_model *m,
                           const dorm_field *f);
/* CREATE [UNIQUE] INDEX for one of m's model indexes. */
void dorm__ddl_model_index(ddl_ctx *c, const dorm_model *m,
                           const dorm_index *ix);
void dorm__ddl_drop_index(ddl_ctx *c, const char *name);
/* Join table of a many_to_many: create, with its indexes. */
void dorm__ddl_create_through(ddl_ctx *c, const dorm_model *m,
                              const dorm_field *f);
/* DROP TABLE (CASCADE on PostgreSQL). */
void dorm__ddl_drop_table(ddl_ctx *c, const char *table);
/* ALTER TABLE a RENAME TO b (nothing when a == b). */
void dorm__ddl_rename_table(ddl_ctx *c, const char *from, const char *to);
/* ALTER TABLE t RENAME COLUMN a TO b (nothing when a == b). */
void dorm__ddl_rename_column(ddl_ctx *c, const char *table, const char *from,
                             const char *to);
/* An index that keeps its columns but changes its name (ix_after, one of
 * after's model indexes, or else f_after's field index); SQLite drops and
 * recreates it. */
void dorm__ddl_rename_index(ddl_ctx *c, const dorm_model *after,
                            const dorm_index *ix_after,
                            const dorm_field *f_after, const char *from,
                            const char *to);
/* Keep the names dorm derived for field fb of table tb in step with field
 * fa of `after` (the table or the column was renamed): PostgreSQL renames
 * the unique and foreign key constraints and the index, SQLite drops and
 * recreates the index. */
void dorm__ddl_rename_field_names(ddl_ctx *c, const dorm_model *after,
                                  const char *tb, const dorm_field *fb,
                                  const dorm_field *fa, int with_fk);
/* PostgreSQL: ALTER TABLE t RENAME CONSTRAINT a TO b (nothing on SQLite,
 * which never refers to constraints by name, or when a == b). */
void dorm__ddl_rename_constraint(ddl_ctx *c, const char *table,
                                 const char *from, const char *to);
/* Rename a join table and what was derived from its names (rename_model,
 * rename_field); nothing when old and new names agree. */
void dorm__ddl_rename_through(ddl_ctx *c, const dorm_field *old_f,
                              const dorm_field *new_f);

/* ---- alter_field in place (alter.c) ------------------------------------- */

/* PostgreSQL: field of becomes nf, column altered in place. */
void dorm__ddl_pg_alter(ddl_ctx *c, const dorm_model *before,
                        const dorm_model *after, const dorm_field *of,
                        const dorm_field *nf);
/* SQLite: the same when only the column's name (or an index) changes;
 * returns 1, having written nothing, when the table must be rebuilt. */
int dorm__ddl_sqlite_alter(ddl_ctx *c, const dorm_model *before,
                           const dorm_model *after, const dorm_field *of,
                           const dorm_field *nf);

/* ==== 3. the SQLite rebuild (rebuild.c) ================================== */

/* How the rebuilt table gets its rows: every column of `after` comes from
 * the column of the same-named field of `before`, except new_field (from
 * old_field's column, COALESCEd with new_field's default when it becomes
 * NOT NULL) and fields without a match (their default, else NULL). */
typedef struct ddl_rebuild {
  const dorm_model *before, *after;
  const dorm_ddl_constraint *cons;
  size_t ncons;
  const dorm_field *old_field, *new_field; /* or NULL */
  const dorm_field *added; /* a field of after that is not in the old
                              table (add_field with before == after) */
} ddl_rebuild;
void dorm__ddl_sqlite_rebuild(ddl_ctx *c, const ddl_rebuild *r);

/* ==== 4. operations (ddl.c) ==============================================
 * The public dorm_ddl_* functions (include/dorm/ddl.h); nothing below
 * calls them, so nothing is declared here. */

#endif /* DORM_DDL_INT_H */
