/* SPDX-License-Identifier: MIT */
/* query/ddl/ddl.c — the DDL compiler's operations: schema changes compiled
 * to SQL (the contract is in include/dorm/ddl.h, the SQL each operation
 * gives in docs/ddl.md).
 *
 * The top of the group (ddl_int.h gives the order): each public
 * dorm_ddl_* function checks its arguments, then writes the statements of
 * the operation (tables.c, alter.c) or, on SQLite when the table cannot be
 * changed in place, has it rebuilt (rebuild.c).
 */
#include <string.h>

#include "query/ddl/ddl_int.h"
#include "schema/schema_int.h"

/* ---- operations --------------------------------------------------------- */

int dorm_ddl_create_model(const dorm_model *m, const dorm_ddl_constraint *cons,
                          size_t ncons, dorm_dialect d, dorm_ddl *out,
                          dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m) return dorm__ddl_fail(&c, DORM_EINVAL, "no model"), dorm__ddl_end(&c);
  dorm__ddl_create_table(&c, m, cons, ncons, 0);
  dorm__ddl_create_indexes(&c, m);
  for (size_t i = 0; i < m->nfields; i++)
    if (dorm__ddl_is_m2m(&m->fields[i]))
      dorm__ddl_create_through(&c, m, &m->fields[i]);
  return dorm__ddl_end(&c);
}

int dorm_ddl_delete_model(const dorm_model *m, dorm_dialect d, dorm_ddl *out,
                          dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m) return dorm__ddl_fail(&c, DORM_EINVAL, "no model"), dorm__ddl_end(&c);
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (!dorm__ddl_is_m2m(f)) continue;
    c.f = f;
    dorm__ddl_drop_table(&c, f->through_table);
    c.f = NULL;
  }
  dorm__ddl_drop_table(&c, m->table);
  return dorm__ddl_end(&c);
}

int dorm_ddl_rename_model(const dorm_model *before, const dorm_model *after,
                          dorm_dialect d, dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, after, out, err);
  if (!before || !after)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model"), dorm__ddl_end(&c);
  dorm__ddl_rename_table(&c, before->table, after->table);
  for (size_t i = 0; i < after->nfields; i++) {
    const dorm_field *fa = &after->fields[i];
    const dorm_field *fb = dorm__ddl_find_field(before, fa->name);
    if (!fb) continue;
    c.f = fa;
    if (dorm__ddl_is_m2m(fa) && dorm__ddl_is_m2m(fb))
      dorm__ddl_rename_through(&c, fb, fa);
    else
      dorm__ddl_rename_field_names(&c, after, before->table, fb, fa, 1);
    c.f = NULL;
  }
  for (size_t i = 0; i < after->nindexes && i < before->nindexes; i++)
    dorm__ddl_rename_index(&c, after, &after->indexes[i], NULL,
                           before->indexes[i].name, after->indexes[i].name);
  for (size_t i = 0;
       i < after->nunique_together && i < before->nunique_together; i++)
    dorm__ddl_rename_constraint(&c, after->table,
                                before->unique_together[i].name,
                                after->unique_together[i].name);
  return dorm__ddl_end(&c);
}

static void add_column(ddl_ctx *c, const dorm_model *m, const dorm_field *f,
                       unsigned flags) {
  dorm__ddl_puts(c, "ALTER TABLE ");
  dorm__ddl_ident(c, m->table);
  dorm__ddl_puts(c, " ADD COLUMN ");
  dorm__ddl_column(c, m->table, f, flags);
  dorm__ddl_emit(c);
}

int dorm_ddl_add_field(const dorm_model *after, const dorm_ddl_constraint *cons,
                       size_t ncons, const dorm_field *f, dorm_dialect d,
                       dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, after, out, err);
  if (!after || !f)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or field"),
           dorm__ddl_end(&c);
  if (dorm__ddl_is_m2m(f)) {
    dorm__ddl_create_through(&c, after, f);
    return dorm__ddl_end(&c);
  }
  const dorm_value *def = dorm__ddl_default(f);
  if (d == DORM_DIALECT_POSTGRES) {
    /* The default fills the rows already there, then goes: dorm, like
     * Django, keeps defaults in the application, not the schema. */
    add_column(&c, after, f, DDL_COL_DEFAULT);
    if (def && !dorm__ddl_keeps_default(f)) {
      dorm__ddl_puts(&c, "ALTER TABLE ");
      dorm__ddl_ident(&c, after->table);
      dorm__ddl_puts(&c, " ALTER COLUMN ");
      dorm__ddl_ident(&c, f->column);
      dorm__ddl_puts(&c, " DROP DEFAULT");
      dorm__ddl_emit(&c);
    }
    if (dorm__ddl_needs_index(f)) dorm__ddl_field_index(&c, after, f);
  } else if ((f->flags & DORM_FIELD_PRIMARY_KEY) || dorm__ddl_needs_unique(f) ||
             !(f->flags & DORM_FIELD_NULL) || def) {
    /* SQLite's ADD COLUMN cannot add a key or a unique column, and a
     * default given there would stay in the schema for good. */
    ddl_rebuild r = {after, after, cons, ncons, NULL, NULL, f};
    dorm__ddl_sqlite_rebuild(&c, &r);
  } else {
    add_column(&c, after, f, 0);
    if (dorm__ddl_needs_index(f)) dorm__ddl_field_index(&c, after, f);
  }
  return dorm__ddl_end(&c);
}

static int names_field(const char *const *names, size_t n,
                       const dorm_field *f) {
  for (size_t i = 0; i < n; i++)
    if (names[i] && ((f->name && strcmp(names[i], f->name) == 0) ||
                     (f->column && strcmp(names[i], f->column) == 0)))
      return 1;
  return 0;
}

/* Whether SQLite can DROP COLUMN f: not a key, not unique, not indexed,
 * no reference, not named by any index or table constraint (Django's
 * rule, plus the model-level indexes SQLite also refuses). */
static int sqlite_can_drop(const dorm_model *m, const dorm_ddl_constraint *cons,
                           size_t ncons, const dorm_field *f) {
  if ((f->flags &
       (DORM_FIELD_PRIMARY_KEY | DORM_FIELD_UNIQUE | DORM_FIELD_DB_INDEX)) ||
      dorm__ddl_is_rel(f) || dorm__ddl_needs_unique(f))
    return 0;
  for (size_t i = 0; i < m->nindexes; i++)
    if (names_field(m->indexes[i].fields, m->indexes[i].nfields, f)) return 0;
  for (size_t i = 0; i < m->nunique_together; i++)
    if (names_field(m->unique_together[i].fields, m->unique_together[i].nfields,
                    f))
      return 0;
  for (size_t i = 0; i < ncons; i++) {
    if (names_field(cons[i].fields, cons[i].nfields, f)) return 0;
    for (size_t j = 0; j < cons[i].nterms; j++)
      if (names_field(&cons[i].terms[j].field, 1, f)) return 0;
  }
  return 1;
}

int dorm_ddl_remove_field(const dorm_model *before, const dorm_model *after,
                          const dorm_ddl_constraint *cons, size_t ncons,
                          const dorm_field *f, dorm_dialect d, dorm_ddl *out,
                          dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, before, out, err);
  if (!before || !after || !f)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or field"),
           dorm__ddl_end(&c);
  c.f = f;
  if (dorm__ddl_is_m2m(f)) {
    dorm__ddl_drop_table(&c, f->through_table);
    return dorm__ddl_end(&c);
  }
  if (!f->column) dorm__ddl_fail(&c, DORM_ESCHEMA, "field has no column");
  if (d == DORM_DIALECT_SQLITE && !sqlite_can_drop(before, cons, ncons, f)) {
    c.f = NULL;
    ddl_rebuild r = {before, after, cons, ncons, NULL, NULL, NULL};
    dorm__ddl_sqlite_rebuild(&c, &r);
    return dorm__ddl_end(&c);
  }
  dorm__ddl_puts(&c, "ALTER TABLE ");
  dorm__ddl_ident(&c, before->table);
  dorm__ddl_puts(&c, " DROP COLUMN ");
  dorm__ddl_ident(&c, f->column);
  /* PostgreSQL: indexes and constraints on the column go with it. */
  if (d == DORM_DIALECT_POSTGRES) dorm__ddl_puts(&c, " CASCADE");
  dorm__ddl_emit(&c);
  return dorm__ddl_end(&c);
}

int dorm_ddl_add_index(const dorm_model *m, const dorm_index *index,
                       dorm_dialect d, dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m || !index)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or index"),
           dorm__ddl_end(&c);
  dorm__ddl_model_index(&c, m, index);
  return dorm__ddl_end(&c);
}

int dorm_ddl_remove_index(const dorm_model *m, const dorm_index *index,
                          dorm_dialect d, dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m || !index)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or index"),
           dorm__ddl_end(&c);
  dorm__ddl_drop_index(&c, index->name);
  return dorm__ddl_end(&c);
}

/* SQLite: rebuild with cons, plus c (add) or minus c (remove), so the
 * result does not depend on whether the caller listed c. */
static void sqlite_constraint_rebuild(ddl_ctx *c, const dorm_model *m,
                                      const dorm_ddl_constraint *cons,
                                      size_t ncons,
                                      const dorm_ddl_constraint *k, int add) {
  /* The name is checked even though SQLite never uses it, so both
   * dialects refuse the same operations. */
  if (!k->name || !dorm_ident_valid(k->name)) {
    dorm__ddl_ident(c, k->name);
    return;
  }
  dorm_ddl_constraint *list = dorm__calloc(ncons + 1, sizeof *list);
  if (!list) {
    c->oom = 1;
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < ncons; i++)
    if (!cons[i].name || !k->name || strcmp(cons[i].name, k->name) != 0)
      list[n++] = cons[i];
  if (add) list[n++] = *k;
  ddl_rebuild r = {m, m, list, n, NULL, NULL, NULL};
  dorm__ddl_sqlite_rebuild(c, &r);
  dorm__free(list);
}

int dorm_ddl_add_constraint(const dorm_model *m,
                            const dorm_ddl_constraint *cons, size_t ncons,
                            const dorm_ddl_constraint *k, dorm_dialect d,
                            dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m || !k)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or constraint"),
           dorm__ddl_end(&c);
  if (d == DORM_DIALECT_SQLITE) {
    sqlite_constraint_rebuild(&c, m, cons, ncons, k, 1);
    return dorm__ddl_end(&c);
  }
  dorm__ddl_puts(&c, "ALTER TABLE ");
  dorm__ddl_ident(&c, m->table);
  dorm__ddl_puts(&c, " ADD CONSTRAINT ");
  dorm__ddl_ident(&c, k->name);
  dorm__ddl_puts(&c, " ");
  dorm__ddl_constraint_body(&c, m, k);
  dorm__ddl_emit(&c);
  return dorm__ddl_end(&c);
}

int dorm_ddl_remove_constraint(const dorm_model *m,
                               const dorm_ddl_constraint *cons, size_t ncons,
                               const dorm_ddl_constraint *k, dorm_dialect d,
                               dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, m, out, err);
  if (!m || !k)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or constraint"),
           dorm__ddl_end(&c);
  if (d == DORM_DIALECT_SQLITE) {
    sqlite_constraint_rebuild(&c, m, cons, ncons, k, 0);
    return dorm__ddl_end(&c);
  }
  dorm__ddl_puts(&c, "ALTER TABLE ");
  dorm__ddl_ident(&c, m->table);
  dorm__ddl_puts(&c, " DROP CONSTRAINT ");
  dorm__ddl_ident(&c, k->name);
  dorm__ddl_emit(&c);
  return dorm__ddl_end(&c);
}

int dorm_ddl_alter_field(const dorm_model *before, const dorm_model *after,
                         const dorm_ddl_constraint *cons, size_t ncons,
                         const dorm_field *of, const dorm_field *nf,
                         dorm_dialect d, dorm_ddl *out, dorm_error *err) {
  ddl_ctx c;
  dorm__ddl_begin(&c, d, after, out, err);
  if (!before || !after || !of || !nf)
    return dorm__ddl_fail(&c, DORM_EINVAL, "no model or field"),
           dorm__ddl_end(&c);
  c.f = nf;
  int m_old = dorm__ddl_is_m2m(of), m_new = dorm__ddl_is_m2m(nf);
  if (m_old || m_new) {
    if (!(m_old && m_new))
      dorm__ddl_fail(&c, DORM_EUNSUPPORTED,
                     "cannot change a many_to_many to or from another type");
    else if (!of->target || !nf->target || !of->target->name ||
             !nf->target->name ||
             strcmp(of->target->name, nf->target->name) != 0)
      dorm__ddl_fail(&c, DORM_EUNSUPPORTED,
                     "cannot change the target of a many_to_many");
    else
      dorm__ddl_rename_through(&c, of, nf);
    return dorm__ddl_end(&c);
  }
  if ((of->flags ^ nf->flags) & DORM_FIELD_PRIMARY_KEY)
    dorm__ddl_fail(&c, DORM_EUNSUPPORTED, "cannot change primary_key");
  else if (dorm__ddl_is_auto(of) != dorm__ddl_is_auto(nf))
    dorm__ddl_fail(&c, DORM_EUNSUPPORTED,
                   "cannot change an auto field to or from another type");
  else if (!of->column || !nf->column)
    dorm__ddl_fail(&c, DORM_ESCHEMA, "field has no column");
  if (c.rc) return dorm__ddl_end(&c);
  if (d != DORM_DIALECT_SQLITE) {
    dorm__ddl_pg_alter(&c, before, after, of, nf);
  } else if (dorm__ddl_sqlite_alter(&c, before, after, of, nf)) {
    ddl_rebuild r = {before, after, cons, ncons, of, nf, NULL};
    dorm__ddl_sqlite_rebuild(&c, &r);
  }
  return dorm__ddl_end(&c);
}

int dorm_ddl_rename_field(const dorm_model *before, const dorm_model *after,
                          const dorm_ddl_constraint *cons, size_t ncons,
                          const dorm_field *of, const dorm_field *nf,
                          dorm_dialect d, dorm_ddl *out, dorm_error *err) {
  /* A rename is an alteration that changes only the name; sharing the
   * code keeps the derived names in step the same way. */
  return dorm_ddl_alter_field(before, after, cons, ncons, of, nf, d, out, err);
}

/* ---- join table names --------------------------------------------------- */

int dorm_ddl_m2m_columns(const dorm_field *f, char *from_col, char *to_col) {
  return dorm__m2m_columns(f, from_col, to_col);
}
