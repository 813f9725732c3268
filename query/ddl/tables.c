/* SPDX-License-Identifier: MIT */
/* query/ddl/tables.c — the statements on tables: CREATE TABLE, CREATE and
 * DROP INDEX, a many_to_many's join table, DROP TABLE, and the renames
 * that keep derived names in step (tables, columns, constraints, indexes,
 * join tables).
 *
 * Statements group: each function writes whole statements, from the emit
 * helpers below it (emit.c, literal.c, columns.c); the SQLite rebuild and
 * the public operations above build on them.
 */
#include <string.h>

#include "query/ddl/ddl_int.h"
#include "schema/schema_int.h"

/* ---- CREATE TABLE and indexes ------------------------------------------- */

static void index_columns(ddl_ctx *c, const dorm_model *m,
                          const char *const *fields, size_t n,
                          const char *what) {
  if (n == 0) {
    dorm__ddl_fail(c, DORM_EINVAL, "%s names no field", what);
    return;
  }
  dorm__ddl_puts(c, "(");
  for (size_t i = 0; i < n; i++) {
    const dorm_field *f = dorm__ddl_lookup(m, fields[i]);
    if (!f || !f->column || dorm__ddl_is_m2m(f)) {
      dorm__ddl_fail(c, DORM_EFIELD, "%s: unknown field '%s'", what,
                     fields[i] ? fields[i] : "(null)");
      return;
    }
    if (i) dorm__ddl_puts(c, ", ");
    dorm__ddl_ident(c, f->column);
  }
  dorm__ddl_puts(c, ")");
}

void dorm__ddl_create_table(ddl_ctx *c, const dorm_model *m,
                            const dorm_ddl_constraint *cons, size_t ncons,
                            int tmp_name) {
  dorm__ddl_puts(c, "CREATE TABLE ");
  if (tmp_name)
    dorm__ddl_tmp_table(c, m->table);
  else
    dorm__ddl_ident(c, m->table);
  dorm__ddl_puts(c, " (");
  int first = 1;
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (dorm__ddl_is_m2m(f)) continue;
    if (!first) dorm__ddl_puts(c, ", ");
    first = 0;
    dorm__ddl_column(c, m->table, f, 0);
  }
  if (first) dorm__ddl_fail(c, DORM_ESCHEMA, "model has no column");
  for (size_t i = 0; i < m->nunique_together; i++) {
    const dorm_index *u = &m->unique_together[i];
    dorm__ddl_puts(c, ", CONSTRAINT ");
    dorm__ddl_ident(c, u->name);
    dorm__ddl_puts(c, " UNIQUE ");
    index_columns(c, m, u->fields, u->nfields, "unique_together");
  }
  for (size_t i = 0; i < ncons; i++) {
    dorm__ddl_puts(c, ", CONSTRAINT ");
    dorm__ddl_ident(c, cons[i].name);
    dorm__ddl_puts(c, " ");
    dorm__ddl_constraint_body(c, m, &cons[i]);
  }
  dorm__ddl_puts(c, ")");
  dorm__ddl_emit(c);
}

void dorm__ddl_field_index(ddl_ctx *c, const dorm_model *m,
                           const dorm_field *f) {
  char name[DORM_IDENT_MAX + 1];
  dorm__ddl_name1(name, m->table, f->column, "idx");
  dorm__ddl_puts(c, "CREATE INDEX ");
  dorm__ddl_ident(c, name);
  dorm__ddl_puts(c, " ON ");
  dorm__ddl_ident(c, m->table);
  dorm__ddl_puts(c, " (");
  dorm__ddl_ident(c, f->column);
  dorm__ddl_puts(c, ")");
  dorm__ddl_emit(c);
}

void dorm__ddl_model_index(ddl_ctx *c, const dorm_model *m,
                           const dorm_index *ix) {
  dorm__ddl_puts(c, ix->unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ");
  dorm__ddl_ident(c, ix->name);
  dorm__ddl_puts(c, " ON ");
  dorm__ddl_ident(c, m->table);
  dorm__ddl_puts(c, " ");
  index_columns(c, m, ix->fields, ix->nfields, "index");
  dorm__ddl_emit(c);
}

void dorm__ddl_drop_index(ddl_ctx *c, const char *name) {
  dorm__ddl_puts(c, "DROP INDEX ");
  dorm__ddl_ident(c, name);
  dorm__ddl_emit(c);
}

void dorm__ddl_create_indexes(ddl_ctx *c, const dorm_model *m) {
  for (size_t i = 0; i < m->nfields; i++)
    if (dorm__ddl_needs_index(&m->fields[i]))
      dorm__ddl_field_index(c, m, &m->fields[i]);
  for (size_t i = 0; i < m->nindexes; i++)
    dorm__ddl_model_index(c, m, &m->indexes[i]);
}

/* ---- many_to_many join tables -------------------------------------------
 * The join table is described as a model of its own (id, two foreign keys
 * with ON DELETE CASCADE, unique together), so CREATE TABLE, the indexes
 * and the renames reuse the code written for models. */

typedef struct through {
  dorm_field fields[3];
  const char *ut_fields[2];
  dorm_index ut;
  dorm_model m;
  char from[DORM_IDENT_MAX + 1], to[DORM_IDENT_MAX + 1];
  char ut_name[DORM_IDENT_MAX + 1];
} through;

static int through_model(ddl_ctx *c, const dorm_field *f, through *t) {
  memset(t, 0, sizeof *t);
  const dorm_field *saved = c->f;
  c->f = f;
  int rc = dorm__m2m_columns(f, t->from, t->to);
  if (rc == DORM_EIDENT)
    dorm__ddl_fail(c, rc, "a join table column name would be longer than %d",
                   DORM_IDENT_MAX);
  else if (rc)
    dorm__ddl_fail(c, rc, "many_to_many to '%s' is not resolved",
                   f->to ? f->to : "?");
  else if (!f->through_table)
    rc = dorm__ddl_fail(c, DORM_ESCHEMA, "many_to_many has no join table");
  c->f = saved;
  if (rc || c->rc) return c->rc ? c->rc : rc;
  dorm_field *id = &t->fields[0], *a = &t->fields[1], *b = &t->fields[2];
  id->name = id->column = "id";
  id->type = DORM_FIELD_AUTO;
  id->flags = DORM_FIELD_PRIMARY_KEY;
  a->name = a->column = t->from;
  a->type = DORM_FIELD_FOREIGN_KEY;
  a->target = f->model;
  a->to = f->model->name;
  a->on_delete = DORM_ON_DELETE_CASCADE;
  b->name = b->column = t->to;
  b->type = DORM_FIELD_FOREIGN_KEY;
  b->target = f->target;
  b->to = f->target->name;
  b->on_delete = DORM_ON_DELETE_CASCADE;
  const char *parts[2] = {t->from, t->to};
  dorm__ddl_name(t->ut_name, f->through_table, parts, 2, "uniq");
  t->ut_fields[0] = t->from;
  t->ut_fields[1] = t->to;
  t->ut.name = t->ut_name;
  t->ut.fields = t->ut_fields;
  t->ut.nfields = 2;
  t->ut.unique = 1;
  t->m.name = f->model->name; /* messages name the model the user wrote */
  t->m.table = f->through_table;
  t->m.fields = t->fields;
  t->m.nfields = 3;
  t->m.pk = id;
  t->m.unique_together = &t->ut;
  t->m.nunique_together = 1;
  for (int i = 0; i < 3; i++) t->fields[i].model = &t->m;
  return 0;
}

void dorm__ddl_create_through(ddl_ctx *c, const dorm_model *m,
                              const dorm_field *f) {
  (void)m;
  through t;
  if (through_model(c, f, &t)) return;
  dorm__ddl_create_table(c, &t.m, NULL, 0, 0);
  dorm__ddl_create_indexes(c, &t.m);
}

void dorm__ddl_drop_table(ddl_ctx *c, const char *table) {
  dorm__ddl_puts(c, "DROP TABLE ");
  dorm__ddl_ident(c, table);
  /* PostgreSQL: also drop foreign keys of other tables that point here,
   * as Django does; SQLite has nothing to cascade in DDL. */
  if (c->d == DORM_DIALECT_POSTGRES) dorm__ddl_puts(c, " CASCADE");
  dorm__ddl_emit(c);
}

/* ---- renaming derived names --------------------------------------------- */

void dorm__ddl_rename_constraint(ddl_ctx *c, const char *table,
                                 const char *from, const char *to) {
  /* SQLite never refers to a constraint by name (changes rebuild the
   * table), so only PostgreSQL needs its names kept in step. */
  if (c->d != DORM_DIALECT_POSTGRES || strcmp(from, to) == 0) return;
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_ident(c, table);
  dorm__ddl_puts(c, " RENAME CONSTRAINT ");
  dorm__ddl_ident(c, from);
  dorm__ddl_puts(c, " TO ");
  dorm__ddl_ident(c, to);
  dorm__ddl_emit(c);
}

/* An index that keeps its columns but changes its name.  SQLite cannot
 * rename an index: drop it and create it again under the new name. */
void dorm__ddl_rename_index(ddl_ctx *c, const dorm_model *after,
                            const dorm_index *ix_after,
                            const dorm_field *f_after, const char *from,
                            const char *to) {
  if (strcmp(from, to) == 0) return;
  if (c->d == DORM_DIALECT_POSTGRES) {
    dorm__ddl_puts(c, "ALTER INDEX ");
    dorm__ddl_ident(c, from);
    dorm__ddl_puts(c, " RENAME TO ");
    dorm__ddl_ident(c, to);
    dorm__ddl_emit(c);
    return;
  }
  dorm__ddl_drop_index(c, from);
  if (ix_after)
    dorm__ddl_model_index(c, after, ix_after);
  else
    dorm__ddl_field_index(c, after, f_after);
}

/* Keep the names dorm derived for field fb of table tb in step with fa of
 * table ta (the table or the column was renamed).  Only what both have is
 * renamed; what appears or disappears is the caller's business. */
void dorm__ddl_rename_field_names(ddl_ctx *c, const dorm_model *after,
                                  const char *tb, const dorm_field *fb,
                                  const dorm_field *fa, int with_fk) {
  char from[DORM_IDENT_MAX + 1], to[DORM_IDENT_MAX + 1];
  const char *ta = after->table;
  if (!fb->column || !fa->column) return;
  if (dorm__ddl_needs_unique(fb) && dorm__ddl_needs_unique(fa)) {
    dorm__ddl_name1(from, tb, fb->column, "uniq");
    dorm__ddl_name1(to, ta, fa->column, "uniq");
    dorm__ddl_rename_constraint(c, ta, from, to);
  }
  if (with_fk && dorm__ddl_is_rel(fb) && dorm__ddl_is_rel(fa)) {
    dorm__ddl_name1(from, tb, fb->column, "fk");
    dorm__ddl_name1(to, ta, fa->column, "fk");
    dorm__ddl_rename_constraint(c, ta, from, to);
  }
  if (dorm__ddl_needs_index(fb) && dorm__ddl_needs_index(fa)) {
    dorm__ddl_name1(from, tb, fb->column, "idx");
    dorm__ddl_name1(to, ta, fa->column, "idx");
    dorm__ddl_rename_index(c, after, NULL, fa, from, to);
  }
}

void dorm__ddl_rename_table(ddl_ctx *c, const char *from, const char *to) {
  if (strcmp(from, to) == 0) return;
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_ident(c, from);
  dorm__ddl_puts(c, " RENAME TO ");
  dorm__ddl_ident(c, to);
  dorm__ddl_emit(c);
}

static void rename_column(ddl_ctx *c, const char *table, const char *from,
                          const char *to) {
  if (strcmp(from, to) == 0) return;
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_ident(c, table);
  dorm__ddl_puts(c, " RENAME COLUMN ");
  dorm__ddl_ident(c, from);
  dorm__ddl_puts(c, " TO ");
  dorm__ddl_ident(c, to);
  dorm__ddl_emit(c);
}

void dorm__ddl_rename_column(ddl_ctx *c, const char *table, const char *from,
                             const char *to) {
  rename_column(c, table, from, to);
}

void dorm__ddl_rename_through(ddl_ctx *c, const dorm_field *old_f,
                              const dorm_field *new_f) {
  through tb, ta;
  if (through_model(c, old_f, &tb) || through_model(c, new_f, &ta)) return;
  dorm__ddl_rename_table(c, tb.m.table, ta.m.table);
  rename_column(c, ta.m.table, tb.from, ta.from);
  rename_column(c, ta.m.table, tb.to, ta.to);
  for (int i = 0; i < 3; i++)
    dorm__ddl_rename_field_names(c, &ta.m, tb.m.table, &tb.fields[i],
                                 &ta.fields[i], 1);
  dorm__ddl_rename_constraint(c, ta.m.table, tb.ut_name, ta.ut_name);
}
