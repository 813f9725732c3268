/* SPDX-License-Identifier: MIT */
/* query/ddl_int.h — private to the DDL compiler (query/ddl*.c).
 *
 * One ddl_ctx carries a compile: the dialect, the output, the first error
 * and the statement being written.  Helpers append to ctx->b and record
 * errors in the context (first error wins), so the operation code reads as
 * a straight sequence of appends and checks once, in dorm__ddl_end, which
 * also turns a sticky out-of-memory into DORM_ENOMEM and empties `out` on
 * any failure.
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

/* ---- fields ------------------------------------------------------------- */

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

/* ---- rendering ---------------------------------------------------------- */

/* "<table>_<part>_..._<suffix>" into out[DORM_IDENT_MAX + 1]; names longer
 * than DORM_IDENT_MAX are cut and given an 8-hex-digit hash of the full
 * name, so they stay unique and deterministic. */
void dorm__ddl_name(char *out, const char *table, const char *const *parts,
                    size_t nparts, const char *suffix);
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
/* The whole CREATE TABLE for m under name `as` (NULL: m->table; the
 * rebuild passes its temporary name). */
void dorm__ddl_create_table(ddl_ctx *c, const dorm_model *m,
                            const dorm_ddl_constraint *cons, size_t ncons,
                            int tmp_name);
/* CREATE INDEX for every field and model index of m; one statement each. */
void dorm__ddl_create_indexes(ddl_ctx *c, const dorm_model *m);
void dorm__ddl_field_index(ddl_ctx *c, const dorm_model *m,
                           const dorm_field *f);
/* Join table of a many_to_many: create, with its indexes. */
void dorm__ddl_create_through(ddl_ctx *c, const dorm_model *m,
                              const dorm_field *f);
/* Rename a join table and what was derived from its names (rename_model,
 * rename_field); nothing when old and new names agree. */
void dorm__ddl_rename_through(ddl_ctx *c, const dorm_field *old_f,
                              const dorm_field *new_f);

/* One-column form of dorm__ddl_name. */
void dorm__ddl_name1(char *out, const char *table, const char *col,
                     const char *suffix);
void dorm__ddl_drop_index(ddl_ctx *c, const char *name);
/* ALTER TABLE t RENAME COLUMN a TO b (nothing when a == b). */
void dorm__ddl_rename_column(ddl_ctx *c, const char *table, const char *from,
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

/* ---- literals (query/ddl_literal.c) -------------------------------------
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

/* ---- SQLite rebuild and alter_field (query/ddl_alter.c) ----------------- */

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

#endif /* DORM_DDL_INT_H */
