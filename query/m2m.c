/* SPDX-License-Identifier: MIT */
/* query/m2m.c — the statements behind a many-to-many relation's add(),
 * remove(), clear() and set(), as in Django's related managers
 * (entry.tags.add(t1, t2)).
 *
 * The rows live in the field's join table (docs/ddl.md: `entry_tags` with
 * columns `entry_id` and `tag_id`, UNIQUE over the pair), so each call is
 * one statement on that table:
 *
 *   add       INSERT INTO "entry_tags" ("entry_id", "tag_id")
 *             VALUES ($1, $2), ($3, $4) ON CONFLICT ("entry_id", "tag_id")
 *             DO NOTHING                 -- a pair already there is kept
 *   remove    DELETE FROM "entry_tags" WHERE "entry_id" = $1
 *             AND "tag_id" IN ($2, $3)
 *   clear     DELETE FROM "entry_tags" WHERE "entry_id" = $1
 *   keep_only DELETE FROM "entry_tags" WHERE "entry_id" = $1
 *             AND "tag_id" NOT IN ($2, $3)   -- set()'s first half
 *
 * The row count each statement reports is the number of pairs added or
 * removed.  Keys are checked against the primary key of their model (the
 * source's for pk, the target's for the targets) exactly as a filter on
 * "pk" checks them, so a wrong type is refused before any SQL exists.
 * The relation may also be named from its other side, by its reverse
 * name (Tag's "entry" for Entry.tags, or its related_name), as Django's
 * tag.entry_set.add(e): the same table, with the columns' roles swapped.
 * Like the rest of query/, this does no I/O.
 */
#include <stdio.h>
#include <string.h>

#include "query/query_int.h"
#include "schema/schema_int.h"

/* Check v as a key of model m (as dorm_filter(q, "pk", v) would) into
 * *out; the copy's strings live in scratch.  On error err names the
 * relation and which key was wrong. */
static int check_key(dorm_query *scratch, const dorm_model *model,
                     const char *field, const char *which, dorm_value v,
                     dorm_value *out, dorm_error *err) {
  const dorm_field *pk = scratch->model->pk;
  dorm_error qerr;
  dorm_error_clear(&qerr);
  if (v.type == DORM_T_NULL || v.type == DORM_T_LIST || v.type == DORM_T_EXPR)
    return dorm_error_set(err, DORM_ETYPE,
                          "model '%s', many_to_many '%s': %s: a %s is not a "
                          "key of model '%s'",
                          model->name, field, which, dorm_type_name(v.type),
                          scratch->model->name);
  if (dorm__coerce_field_value(scratch, pk, v, out)) {
    dorm_query_error(scratch, &qerr);
    return dorm_error_set(err, qerr.code,
                          "model '%s', many_to_many '%s': %s: %s", model->name,
                          field, which, qerr.message);
  }
  return 0;
}

static int int4_key(const dorm_model *m) {
  return m->pk->type == DORM_FIELD_INTEGER || m->pk->type == DORM_FIELD_AUTO;
}

static void emit_in_list(cctx *c, const dorm_value *keys, size_t n) {
  dorm__emitl(c, " (");
  for (size_t i = 0; i < n; i++) {
    if (i) dorm__emitl(c, ", ");
    dorm__emit_param(c, keys[i]);
  }
  dorm__emitl(c, ")");
}

static void emit_sql(cctx *c, dorm_m2m_op op, const dorm_field *rel,
                     const dorm_model *model, const dorm_model *other,
                     const char *from, const char *to, dorm_value pk,
                     const dorm_value *keys, size_t n) {
  int pg = c->d == DORM_DIALECT_POSTGRES;
  if (op == DORM_M2M_ADD) {
    dorm__emitl(c, "INSERT INTO ");
    dorm__emit_ident(c, rel->through_table);
    dorm__emitl(c, " (");
    dorm__emit_ident(c, from);
    dorm__emitl(c, ", ");
    dorm__emit_ident(c, to);
    dorm__emitl(c, ") VALUES ");
    for (size_t i = 0; i < n; i++) {
      if (i) dorm__emitl(c, ", ");
      dorm__emitl(c, "(");
      dorm__emit_param(c, pk);
      dorm__emitl(c, ", ");
      dorm__emit_param(c, keys[i]);
      dorm__emitl(c, ")");
    }
    dorm__emitl(c, " ON CONFLICT (");
    dorm__emit_ident(c, from);
    dorm__emitl(c, ", ");
    dorm__emit_ident(c, to);
    dorm__emitl(c, ") DO NOTHING");
    return;
  }
  dorm__emitl(c, "DELETE FROM ");
  dorm__emit_ident(c, rel->through_table);
  dorm__emitl(c, " WHERE ");
  dorm__emit_ident(c, from);
  dorm__emitl(c, " = ");
  /* a key compared with an int4 column goes as int4 (dorm_sql.param_int4) */
  c->int4_rhs = pg && int4_key(model);
  dorm__emit_param(c, pk);
  if (op == DORM_M2M_CLEAR || (op == DORM_M2M_KEEP_ONLY && n == 0)) return;
  dorm__emitl(c, " AND ");
  dorm__emit_ident(c, to);
  if (op == DORM_M2M_KEEP_ONLY) dorm__emitl(c, " NOT");
  dorm__emitl(c, " IN");
  c->int4_rhs = pg && int4_key(other);
  emit_in_list(c, keys, n);
  c->int4_rhs = 0;
}

static const char *op_name(dorm_m2m_op op) {
  switch (op) {
    case DORM_M2M_ADD: return "add";
    case DORM_M2M_REMOVE: return "remove";
    case DORM_M2M_CLEAR: return "clear";
    case DORM_M2M_KEEP_ONLY: return "keep_only";
  }
  return "?";
}

int dorm_compile_m2m(const dorm_model *model, const char *field,
                     dorm_m2m_op op, dorm_value pk, const dorm_value *targets,
                     size_t ntargets, dorm_dialect dialect, dorm_sql *out,
                     dorm_error *err) {
  if (!model || !field || !out || (ntargets && !targets))
    return dorm_error_set(err, DORM_EINVAL,
                          "many_to_many: NULL model, field, targets or output");
  if (dialect != DORM_DIALECT_POSTGRES && dialect != DORM_DIALECT_SQLITE)
    return dorm_error_set(err, DORM_EINVAL, "unknown dialect %d", (int)dialect);
  if (op < DORM_M2M_ADD || op > DORM_M2M_KEEP_ONLY)
    return dorm_error_set(err, DORM_EINVAL, "many_to_many: unknown operation %d",
                          (int)op);
  const dorm_field *rel = dorm_model_field(model, field);
  /* the other side, by its reverse name: tag.entry_set.add(e) in Django */
  int reverse = 0;
  if (!rel) {
    rel = dorm__find_reverse(model, field, strlen(field));
    if (rel && rel->type != DORM_FIELD_MANY_TO_MANY)
      return dorm_error_set(err, DORM_EFIELD,
                            "model '%s': '%s' is the reverse of %s.%s, a %s; "
                            "%s needs a many_to_many relation",
                            model->name, field, rel->model->name, rel->name,
                            dorm_field_type_name(rel->type), op_name(op));
    reverse = rel != NULL;
  }
  if (!rel)
    return dorm_error_set(err, DORM_EFIELD, "model '%s': unknown field '%s'",
                          model->name, field);
  if (rel->type != DORM_FIELD_MANY_TO_MANY || !rel->target ||
      !rel->through_table)
    return dorm_error_set(err, DORM_EFIELD,
                          "model '%s', field '%s': %s needs a many_to_many "
                          "field, not a %s",
                          model->name, field, op_name(op),
                          dorm_field_type_name(rel->type));
  if (!ntargets && (op == DORM_M2M_ADD || op == DORM_M2M_REMOVE))
    return dorm_error_set(err, DORM_EINVAL,
                          "model '%s', many_to_many '%s': %s needs at least "
                          "one key",
                          model->name, field, op_name(op));
  if (op == DORM_M2M_CLEAR) ntargets = 0;
  char from[DORM_IDENT_MAX + 1], to[DORM_IDENT_MAX + 1];
  if (reverse ? dorm__m2m_columns(rel, to, from)
              : dorm__m2m_columns(rel, from, to))
    return dorm_error_set(err, DORM_EIDENT,
                          "model '%s', many_to_many '%s': no join table "
                          "column names",
                          model->name, field);

  /* check the keys; their checked copies live in the scratch queries
   * until the statement has copied them */
  const dorm_model *other = reverse ? rel->model : rel->target;
  dorm_query *src = dorm_select(model), *dst = dorm_select(other);
  dorm_value *keys = ntargets ? dorm__malloc(ntargets * sizeof *keys) : NULL;
  int rc = 0;
  dorm_value from_key;
  if (!src || !dst || (ntargets && !keys))
    rc = dorm_error_set(err, DORM_ENOMEM, "out of memory");
  if (!rc) rc = check_key(src, model, field, "the key", pk, &from_key, err);
  for (size_t i = 0; !rc && i < ntargets; i++) {
    char which[64];
    snprintf(which, sizeof which, "key %zu of %zu", i + 1, ntargets);
    rc = check_key(dst, model, field, which, targets[i], &keys[i], err);
  }
  if (!rc) {
    cctx c;
    dorm__cctx_start(&c, src, dialect, out, err);
    out->kind = op == DORM_M2M_ADD ? DORM_QUERY_INSERT : DORM_QUERY_DELETE;
    emit_sql(&c, op, rel, model, other, from, to, from_key, keys, ntargets);
    rc = dorm__cctx_end(&c, 0);
  } else {
    out->len = 0;
    out->nparams = 0;
  }
  dorm__free(keys);
  dorm_query_free(src);
  dorm_query_free(dst);
  return rc;
}
