/* SPDX-License-Identifier: MIT */
/* query/ddl/emit.c — the bottom of the DDL compiler: the output list, the
 * compile context (errors, identifiers, one statement at a time), the
 * facts about fields every operation asks, and the names dorm derives.
 *
 * dorm cannot ask the database what its constraints are called (the
 * compiler does no I/O), so every constraint and index dorm creates gets a
 * name derived from the table and columns (dorm__ddl_name); a later
 * operation derives the same name to drop or rename it.  Calls nothing of
 * the files above it (ddl_int.h gives the order).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "query/ddl/ddl_int.h"
#include "query/quote_int.h"
#include "schema/schema_int.h"

/* ---- the output list ---------------------------------------------------- */

void dorm_ddl_init(dorm_ddl *ddl) { memset(ddl, 0, sizeof *ddl); }

void dorm_ddl_free(dorm_ddl *ddl) {
  if (!ddl) return;
  for (size_t i = 0; i < ddl->n; i++) dorm__free(ddl->stmts[i]);
  dorm__free(ddl->stmts);
  memset(ddl, 0, sizeof *ddl);
}

/* ---- the compile context ------------------------------------------------ */

void dorm__ddl_begin(ddl_ctx *c, dorm_dialect d, const dorm_model *m,
                     dorm_ddl *out, dorm_error *err) {
  memset(c, 0, sizeof *c);
  c->d = d;
  c->out = out;
  c->err = err;
  c->m = m;
  dorm_ddl_free(out);
  dorm_error_clear(err);
  dorm__buf_init(&c->b);
  if (d != DORM_DIALECT_POSTGRES && d != DORM_DIALECT_SQLITE)
    dorm__ddl_fail(c, DORM_EINVAL, "unknown dialect %d", (int)d);
}

int dorm__ddl_end(ddl_ctx *c) {
  if (!c->rc && (c->oom || c->b.oom))
    c->rc = dorm_error_set(c->err, DORM_ENOMEM, "%s", "out of memory");
  dorm__buf_free(&c->b);
  if (c->rc) dorm_ddl_free(c->out);
  return c->rc;
}

static void fail_v(ddl_ctx *c, int code, const char *fmt, va_list ap) {
  char msg[DORM_ERROR_MSG_MAX];
  vsnprintf(msg, sizeof msg, fmt, ap);
  c->rc = code;
  const char *mn = c->m && c->m->name ? c->m->name : "?";
  if (c->f)
    dorm_error_set(c->err, code, "model '%s', field '%s': %s", mn,
                   c->f->name ? c->f->name : "?", msg);
  else
    dorm_error_set(c->err, code, "model '%s': %s", mn, msg);
}

int dorm__ddl_fail(ddl_ctx *c, int code, const char *fmt, ...) {
  if (c->rc) return c->rc; /* the first error is the one to report */
  va_list ap;
  va_start(ap, fmt);
  fail_v(c, code, fmt, ap);
  va_end(ap);
  return code;
}

void dorm__ddl_ident(ddl_ctx *c, const char *ident) {
  if (c->rc) return;
  dorm_error e;
  dorm_error_clear(&e);
  if (dorm__quote_ident_buf(&c->b, ident, &e))
    dorm__ddl_fail(c, DORM_EIDENT, "%s", e.message);
}

void dorm__ddl_tmp_table(ddl_ctx *c, const char *table) {
  if (c->rc) return;
  if (!table || !dorm_ident_valid(table)) {
    dorm__ddl_ident(c, table); /* records the error */
    return;
  }
  dorm__buf_puts(&c->b, "\"new__");
  dorm__buf_puts(&c->b, table);
  dorm__buf_putc(&c->b, '"');
}

void dorm__ddl_puts(ddl_ctx *c, const char *s) {
  if (!c->rc) dorm__buf_puts(&c->b, s);
}

void dorm__ddl_emit(ddl_ctx *c) {
  if (c->rc || c->b.oom || c->oom) {
    c->b.len = 0;
    return;
  }
  dorm_ddl *o = c->out;
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 8;
    char **s = dorm__realloc(o->stmts, cap * sizeof *s);
    if (!s) {
      c->oom = 1;
      return;
    }
    o->stmts = s;
    o->cap = cap;
  }
  /* The statement takes the buffer's memory; the next starts afresh. */
  o->stmts[o->n++] = c->b.data;
  dorm__buf_init(&c->b);
}

/* ---- fields ------------------------------------------------------------- */

int dorm__ddl_is_m2m(const dorm_field *f) {
  return f->type == DORM_FIELD_MANY_TO_MANY;
}

int dorm__ddl_is_rel(const dorm_field *f) {
  return f->type == DORM_FIELD_FOREIGN_KEY || f->type == DORM_FIELD_ONE_TO_ONE;
}

int dorm__ddl_is_auto(const dorm_field *f) {
  return f->type == DORM_FIELD_AUTO || f->type == DORM_FIELD_BIGAUTO;
}

int dorm__ddl_needs_unique(const dorm_field *f) {
  return dorm__field_needs_unique(f);
}

int dorm__ddl_needs_index(const dorm_field *f) {
  return dorm__field_needs_index(f);
}

int dorm__ddl_keeps_default(const dorm_field *f) {
  return dorm__ddl_is_rel(f) && f->on_delete == DORM_ON_DELETE_SET_DEFAULT &&
         dorm__ddl_default(f) != NULL;
}

const dorm_field *dorm__ddl_model_pk(const dorm_model *m) {
  if (!m) return NULL;
  if (m->pk) return m->pk;
  for (size_t i = 0; i < m->nfields; i++)
    if (m->fields[i].flags & DORM_FIELD_PRIMARY_KEY) return &m->fields[i];
  return NULL;
}

const dorm_field *dorm__ddl_value_field(const dorm_field *f) {
  /* A key may itself be a relation (a one_to_one primary key); the depth
   * bound stops a malformed cycle. */
  for (int depth = 0; f && depth < 16; depth++) {
    if (!dorm__ddl_is_rel(f)) return f;
    f = dorm__ddl_model_pk(f->target);
  }
  return NULL;
}

const dorm_field *dorm__ddl_find_field(const dorm_model *m, const char *name) {
  if (!m || !name) return NULL;
  for (size_t i = 0; i < m->nfields; i++)
    if (m->fields[i].name && strcmp(m->fields[i].name, name) == 0)
      return &m->fields[i];
  return NULL;
}

const dorm_field *dorm__ddl_lookup(const dorm_model *m, const char *name) {
  const dorm_field *f = dorm__ddl_find_field(m, name);
  if (f || !m || !name) return f;
  for (size_t i = 0; i < m->nfields; i++)
    if (m->fields[i].column && strcmp(m->fields[i].column, name) == 0)
      return &m->fields[i];
  return NULL;
}

const dorm_value *dorm__ddl_default(const dorm_field *f) {
  if (!(f->flags & DORM_FIELD_HAS_DEFAULT)) return NULL;
  if (f->default_value.type == DORM_T_NULL) return NULL;
  return &f->default_value;
}

/* ---- names -------------------------------------------------------------- */

void dorm__ddl_name(char *out, const char *table, const char *const *parts,
                    size_t nparts, const char *suffix) {
  dorm__derived_name(out, table, parts, nparts, suffix);
}

void dorm__ddl_name1(char *out, const char *table, const char *col,
                     const char *suffix) {
  dorm__ddl_name(out, table, &col, 1, suffix);
}
