/* SPDX-License-Identifier: MIT */
/* schema/index_names.c — which fields get an index or a UNIQUE constraint
 * of their own, and the names dorm gives them.
 *
 * A unique (or one_to_one) field gets the constraint "<table>_<column>_uniq";
 * a db_index field or a foreign key gets the index "<table>_<column>_idx".
 * Those names share one namespace with tables and model indexes (on
 * PostgreSQL a unique constraint is an index of that name), so they are a
 * fact of the schema: the checker refuses a model index that takes one of
 * them (schema/check.c), and the DDL compiler (query/ddl/) creates them
 * under these names.
 */
#include <stdio.h>
#include <string.h>

#include "schema/schema_int.h"

int dorm__field_needs_unique(const dorm_field *f) {
  if (f->flags & DORM_FIELD_PRIMARY_KEY) return 0;
  return (f->flags & DORM_FIELD_UNIQUE) || f->type == DORM_FIELD_ONE_TO_ONE;
}

int dorm__field_needs_index(const dorm_field *f) {
  if (f->type == DORM_FIELD_MANY_TO_MANY ||
      (f->flags & DORM_FIELD_PRIMARY_KEY) || dorm__field_needs_unique(f))
    return 0;
  return (f->flags & DORM_FIELD_DB_INDEX) ||
         f->type == DORM_FIELD_FOREIGN_KEY || f->type == DORM_FIELD_ONE_TO_ONE;
}

void dorm__derived_name(char *out, const char *table, const char *const *parts,
                        size_t nparts, const char *suffix) {
  /* Build the full name first (it may be long), then cut if needed. */
  char full[(DORM_IDENT_MAX + 1) * 5 + 16];
  size_t n = 0;
  const char *items[4 + 2];
  size_t k = 0;
  items[k++] = table ? table : "";
  for (size_t i = 0; i < nparts && k < 5; i++) items[k++] = parts[i];
  items[k++] = suffix;
  for (size_t i = 0; i < k; i++) {
    size_t l = strlen(items[i]);
    if (n + l + 2 >= sizeof full) l = sizeof full - n - 2;
    if (i) full[n++] = '_';
    memcpy(full + n, items[i], l);
    n += l;
  }
  full[n] = '\0';
  if (n <= DORM_IDENT_MAX) {
    memcpy(out, full, n + 1);
    return;
  }
  /* <prefix>_<hash8>_<suffix>, 63 bytes exactly. */
  size_t sl = strlen(suffix);
  size_t keep = DORM_IDENT_MAX - 1 - 8 - 1 - sl;
  memcpy(out, full, keep);
  snprintf(out + keep, DORM_IDENT_MAX + 1 - keep, "_%08x_%s",
           (unsigned)dorm__hash32(full, n, DORM__HASH32_INIT), suffix);
}
