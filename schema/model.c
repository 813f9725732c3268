/* SPDX-License-Identifier: MIT */
/* schema/model.c — reading a finished schema: model and field lookups, and
 * freeing.
 *
 * Lookups are linear scans: a schema has tens of models and a model tens of
 * fields, so a scan of short strings beats building and keeping a hash
 * table, and a finished schema stays plain immutable data that any number
 * of threads can read.  Model names match exactly first, then without case
 * ("author" finds "Author"); the checks refuse two model names that differ
 * only in case, so the second rule is never ambiguous.
 */
#include <string.h>
#include <strings.h>

#include "schema/schema_int.h"

const dorm_model *dorm_schema_model(const dorm_schema *schema,
                                    const char *name) {
  if (!schema || !name) return NULL;
  for (size_t i = 0; i < schema->nmodels; i++)
    if (strcmp(schema->models[i].name, name) == 0) return &schema->models[i];
  for (size_t i = 0; i < schema->nmodels; i++)
    if (strcasecmp(schema->models[i].name, name) == 0)
      return &schema->models[i];
  return NULL;
}

const dorm_field *dorm_model_field(const dorm_model *model, const char *name) {
  if (!model || !name) return NULL;
  for (size_t i = 0; i < model->nfields; i++)
    if (strcmp(model->fields[i].name, name) == 0) return &model->fields[i];
  return NULL;
}

const dorm_field *dorm_model_field_by_column(const dorm_model *model,
                                             const char *column) {
  if (!model || !column) return NULL;
  for (size_t i = 0; i < model->nfields; i++) {
    const char *c = model->fields[i].column;
    if (c && strcmp(c, column) == 0) return &model->fields[i];
  }
  return NULL;
}

void dorm_schema_free(dorm_schema *schema) {
  if (!schema) return;
  /* pub is the first member of the owner block (schema_int.h). */
  dorm__schema *s = (dorm__schema *)schema;
  dorm__arena_free(&s->arena);
  dorm__free(s);
}
