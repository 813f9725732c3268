/* SPDX-License-Identifier: MIT */
/* schema/migration_ops.c — what one operation means beyond its shape: its
 * inverse, a description for people, and a name for a new migration.
 *
 * dorm_migration_op_invert turns an operation into the one that undoes it
 * (create <-> delete, add <-> remove, the two sides of an alter or a
 * rename swapped), which works because every operation carries what it
 * needs to run backwards; only a run_sql without reverse_sql cannot be
 * inverted.  dorm_migration_op_describe gives the line `dorm migrate`
 * prints ("Add field age to Author"), and dorm_migration_auto_name the
 * name fragment makemigrations puts in a file name ("author_age"), both in
 * Django's words so a project moving over recognises them.  The
 * operations are already checked (migration_parse.c); a key that is
 * missing anyway reads "?" rather than crashing.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "dorm/migration.h"

/* ---- inverse ------------------------------------------------------------- */

static json_t *obj_with_op(const json_t *op, const char *newop) {
  json_t *r = json_deep_copy(op);
  if (!r) return NULL;
  if (json_object_set_new(r, "op", json_string(newop))) {
    json_decref(r);
    return NULL;
  }
  return r;
}

static int swap_keys(json_t *o, const char *a, const char *b) {
  json_t *va = json_incref(json_object_get(o, a));
  json_t *vb = json_incref(json_object_get(o, b));
  json_object_del(o, a);
  json_object_del(o, b);
  int rc = 0;
  if (vb) rc |= json_object_set(o, a, vb);
  if (va) rc |= json_object_set(o, b, va);
  json_decref(va);
  json_decref(vb);
  return rc;
}

json_t *dorm_migration_op_invert(const json_t *op, dorm_error *err) {
  int k = dorm_op_kind_of(op);
  json_t *r = NULL;
  switch (k) {
    case DORM_OP_CREATE_MODEL: r = obj_with_op(op, "delete_model"); break;
    case DORM_OP_DELETE_MODEL: r = obj_with_op(op, "create_model"); break;
    case DORM_OP_ADD_FIELD: r = obj_with_op(op, "remove_field"); break;
    case DORM_OP_REMOVE_FIELD: r = obj_with_op(op, "add_field"); break;
    case DORM_OP_ADD_INDEX: r = obj_with_op(op, "remove_index"); break;
    case DORM_OP_REMOVE_INDEX: r = obj_with_op(op, "add_index"); break;
    case DORM_OP_ADD_CONSTRAINT:
      r = obj_with_op(op, "remove_constraint");
      break;
    case DORM_OP_REMOVE_CONSTRAINT:
      r = obj_with_op(op, "add_constraint");
      break;
    case DORM_OP_ALTER_FIELD:
      r = obj_with_op(op, "alter_field");
      if (r && swap_keys(r, "field", "old_field")) goto oom;
      break;
    case DORM_OP_RENAME_FIELD:
      r = obj_with_op(op, "rename_field");
      if (r && swap_keys(r, "old_name", "new_name")) goto oom;
      break;
    case DORM_OP_RENAME_MODEL:
      r = obj_with_op(op, "rename_model");
      if (r && (swap_keys(r, "old_name", "new_name") ||
                swap_keys(r, "old_table", "new_table")))
        goto oom;
      break;
    case DORM_OP_RUN_SQL:
      if (!json_object_get(op, "reverse_sql")) {
        dorm_error_set(err, DORM_EMIGRATION,
                       "run_sql has no \"reverse_sql\": it cannot be run "
                       "backwards");
        return NULL;
      }
      r = obj_with_op(op, "run_sql");
      if (r && swap_keys(r, "sql", "reverse_sql")) goto oom;
      break;
    default:
      dorm_error_set(err, DORM_EMIGRATION, "unknown operation");
      return NULL;
  }
  if (!r) dorm_error_set(err, DORM_ENOMEM, NULL);
  return r;
oom:
  json_decref(r);
  dorm_error_set(err, DORM_ENOMEM, NULL);
  return NULL;
}

/* ---- words --------------------------------------------------------------- */

static const char *sget(const json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "?";
}

static const char *index_label(const json_t *ix, char *buf, size_t len) {
  const char *n = json_string_value(json_object_get(ix, "name"));
  if (n) return n;
  const json_t *fs = json_object_get(ix, "fields");
  size_t p = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < json_array_size(fs) && p + 2 < len; i++)
    p += (size_t)snprintf(buf + p, len - p, "%s%s", i ? "_" : "",
                          json_string_value(json_array_get(fs, i)));
  return buf;
}

char *dorm_migration_op_describe(const json_t *op, char *buf, size_t len) {
  char tmp[200];
  const json_t *f = json_object_get(op, "field");
  const char *m = sget(op, "model");
  switch (dorm_op_kind_of(op)) {
    case DORM_OP_CREATE_MODEL:
      snprintf(buf, len, "Create model %s", sget(op, "name"));
      break;
    case DORM_OP_DELETE_MODEL:
      snprintf(buf, len, "Delete model %s", sget(op, "name"));
      break;
    case DORM_OP_RENAME_MODEL:
      snprintf(buf, len, "Rename model %s to %s", sget(op, "old_name"),
               sget(op, "new_name"));
      break;
    case DORM_OP_ADD_FIELD:
      snprintf(buf, len, "Add field %s to %s", sget(f, "name"), m);
      break;
    case DORM_OP_REMOVE_FIELD:
      snprintf(buf, len, "Remove field %s from %s", sget(f, "name"), m);
      break;
    case DORM_OP_ALTER_FIELD:
      snprintf(buf, len, "Alter field %s on %s", sget(f, "name"), m);
      break;
    case DORM_OP_RENAME_FIELD:
      snprintf(buf, len, "Rename field %s on %s to %s", sget(op, "old_name"), m,
               sget(op, "new_name"));
      break;
    case DORM_OP_ADD_INDEX:
      snprintf(buf, len, "Create index %s on %s",
               index_label(json_object_get(op, "index"), tmp, sizeof tmp), m);
      break;
    case DORM_OP_REMOVE_INDEX:
      snprintf(buf, len, "Remove index %s from %s",
               index_label(json_object_get(op, "index"), tmp, sizeof tmp), m);
      break;
    case DORM_OP_ADD_CONSTRAINT:
    case DORM_OP_REMOVE_CONSTRAINT: {
      int add = dorm_op_kind_of(op) == DORM_OP_ADD_CONSTRAINT;
      const json_t *ut = json_object_get(op, "unique_together");
      if (ut) {
        json_t *tmpix = json_pack("{sO}", "fields", (json_t *)ut);
        snprintf(buf, len, "%s unique_together (%s) %s %s",
                 add ? "Add" : "Remove",
                 tmpix ? index_label(tmpix, tmp, sizeof tmp) : "?",
                 add ? "on" : "from", m);
        json_decref(tmpix);
      } else {
        snprintf(buf, len, "%s constraint %s %s %s", add ? "Add" : "Remove",
                 sget(json_object_get(op, "constraint"), "name"),
                 add ? "on" : "from", m);
      }
      break;
    }
    case DORM_OP_RUN_SQL: snprintf(buf, len, "Raw SQL operation"); break;
    default: snprintf(buf, len, "Unknown operation"); break;
  }
  return buf;
}

/* Lower-cased copy of s into out (cap bytes). */
static void lower(const char *s, char *out, size_t cap) {
  size_t i = 0;
  for (; s[i] && i + 1 < cap; i++)
    out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
  out[i] = '\0';
}

/* Django's migration_name_fragment of each operation. */
static void fragment(const json_t *op, char *buf, size_t len) {
  char m[DORM_IDENT_MAX + 1], a[DORM_IDENT_MAX + 1], b[DORM_IDENT_MAX + 1];
  char tmp[200];
  lower(sget(op, "model"), m, sizeof m);
  const json_t *f = json_object_get(op, "field");
  switch (dorm_op_kind_of(op)) {
    case DORM_OP_CREATE_MODEL:
      lower(sget(op, "name"), a, sizeof a);
      snprintf(buf, len, "%s", a);
      break;
    case DORM_OP_DELETE_MODEL:
      lower(sget(op, "name"), a, sizeof a);
      snprintf(buf, len, "delete_%s", a);
      break;
    case DORM_OP_RENAME_MODEL:
      lower(sget(op, "old_name"), a, sizeof a);
      lower(sget(op, "new_name"), b, sizeof b);
      snprintf(buf, len, "rename_%s_%s", a, b);
      break;
    case DORM_OP_ADD_FIELD:
      lower(sget(f, "name"), a, sizeof a);
      snprintf(buf, len, "%s_%s", m, a);
      break;
    case DORM_OP_REMOVE_FIELD:
      lower(sget(f, "name"), a, sizeof a);
      snprintf(buf, len, "remove_%s_%s", m, a);
      break;
    case DORM_OP_ALTER_FIELD:
      lower(sget(f, "name"), a, sizeof a);
      snprintf(buf, len, "alter_%s_%s", m, a);
      break;
    case DORM_OP_RENAME_FIELD:
      lower(sget(op, "old_name"), a, sizeof a);
      lower(sget(op, "new_name"), b, sizeof b);
      snprintf(buf, len, "rename_%s_%s_%s", a, m, b);
      break;
    case DORM_OP_ADD_INDEX:
      lower(index_label(json_object_get(op, "index"), tmp, sizeof tmp), a,
            sizeof a);
      snprintf(buf, len, "%s_%s", m, a);
      break;
    case DORM_OP_REMOVE_INDEX:
      lower(index_label(json_object_get(op, "index"), tmp, sizeof tmp), a,
            sizeof a);
      snprintf(buf, len, "remove_%s_%s", m, a);
      break;
    case DORM_OP_ADD_CONSTRAINT:
    case DORM_OP_REMOVE_CONSTRAINT: {
      const char *pre =
          dorm_op_kind_of(op) == DORM_OP_ADD_CONSTRAINT ? "" : "remove_";
      if (json_object_get(op, "unique_together"))
        snprintf(buf, len, "%salter_%s_unique_together", pre, m);
      else {
        lower(sget(json_object_get(op, "constraint"), "name"), a, sizeof a);
        snprintf(buf, len, "%s%s_%s", pre, m, a);
      }
      break;
    }
    default: buf[0] = '\0'; break;
  }
}

int dorm_migration_auto_name(const json_t *ops, int initial, char *buf,
                             size_t len) {
  if (initial) {
    snprintf(buf, len, "initial");
    return 0;
  }
  char out[256] = "";
  size_t p = 0;
  int too_long = json_array_size(ops) == 0;
  for (size_t i = 0; i < json_array_size(ops) && !too_long; i++) {
    char frag[200];
    fragment(json_array_get(ops, i), frag, sizeof frag);
    if (!frag[0] || p + 1 + strlen(frag) > 52) {
      too_long = 1;
      break;
    }
    p += (size_t)snprintf(out + p, sizeof out - p, "%s%s", p ? "_" : "", frag);
  }
  if (too_long) {
    /* The caller picks a name (Django's auto_<timestamp>): a clock has no
     * place in the pure layer. */
    buf[0] = '\0';
    return -1;
  }
  snprintf(buf, len, "%s", out);
  return 0;
}
