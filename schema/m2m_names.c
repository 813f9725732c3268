/* SPDX-License-Identifier: MIT */
/* schema/m2m_names.c — the column names of a many_to_many's join table.
 *
 * The join table (its name is derived in check.c, "<table>_<field>") has
 * two key columns named after the models, as Django names them:
 * "<source model, lower-cased>_id" and "<target model, lower-cased>_id",
 * or "from_<m>_id" / "to_<m>_id" when the field points at its own model.
 * They are a fact of the schema, so the DDL compiler that creates the
 * table, the query compiler that joins it and the many-to-many statements
 * all ask here, and the public dorm_ddl_m2m_columns answers with it.
 */
#include <string.h>

#include "schema/schema_int.h"

/* out = lower(a b c); the caller has checked the length. */
static void join3(char *out, const char *a, const char *b, const char *c) {
  size_t n = 0;
  const char *parts[3] = {a, b, c};
  for (int i = 0; i < 3; i++)
    for (const char *p = parts[i]; *p; p++)
      out[n++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
  out[n] = '\0';
}

int dorm__m2m_columns(const dorm_field *f, char *from_col, char *to_col) {
  if (!f || f->type != DORM_FIELD_MANY_TO_MANY || !f->model || !f->target ||
      !f->model->name || !f->target->name)
    return DORM_EINVAL;
  const char *a = f->model->name, *b = f->target->name;
  const char *pa = "", *pb = "";
  if (f->target == f->model || strcmp(a, b) == 0) {
    pa = "from_";
    pb = "to_";
  }
  size_t la = strlen(pa) + strlen(a) + 3, lb = strlen(pb) + strlen(b) + 3;
  if (la > DORM_IDENT_MAX || lb > DORM_IDENT_MAX) return DORM_EIDENT;
  join3(from_col, pa, a, "_id");
  join3(to_col, pb, b, "_id");
  return 0;
}
