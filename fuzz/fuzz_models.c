/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_models.c — models.json loading, then the DDL and queries of
 * whatever loads.
 *
 * The input is a models.json text.  When it loads, every model (up to 8)
 * gets its CREATE TABLE for both dialects, a round trip through
 * dorm_schema_to_json (the canonical form must load again), and a handful
 * of queries built from its own fields: a filter per field with a lookup
 * that fits its type, order_by, values, joins across each forward
 * relation (filter, order_by, values, select_related, prefetch_related on
 * a field of the target) and each reverse one (filter, annotate Count),
 * an insert setting every field, an update and a delete, each compiled
 * for both dialects.  Builder refusals are expected; crashes, leaks,
 * undefined behaviour and a refusal without a message are findings.
 */
#include "fuzz/fuzz.h"

#define MAX_MODELS 8
#define MAX_FIELDS 12

static const char *lookup_for(const dorm_field *f, int k) {
  switch (dorm_field_value_type(f)) {
    case DORM_T_TEXT: return k ? "icontains" : "startswith";
    case DORM_T_INT:
    case DORM_T_FLOAT:
    case DORM_T_DECIMAL: return k ? "lte" : "gt";
    case DORM_T_DATE:
    case DORM_T_DATETIME: return k ? "year__gte" : "lt";
    default: return "exact";
  }
}

/* A field of m that is not a relation (its name), or "pk". */
static const char *plain_field(const dorm_model *m, size_t skip) {
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (f->type == DORM_FIELD_MANY_TO_MANY || dorm_field_is_fk(f)) continue;
    if (skip--) continue;
    return f->name;
  }
  return "pk";
}

static void query_fields(const dorm_model *m) {
  dorm_query *q = dorm_select(m);
  char buf[3 * (DORM_IDENT_MAX + 1) + 32];
  size_t nf = m->nfields < MAX_FIELDS ? m->nfields : MAX_FIELDS;
  for (size_t i = 0; i < nf; i++) {
    const dorm_field *f = &m->fields[i];
    if (f->type == DORM_FIELD_MANY_TO_MANY) {
      snprintf(buf, sizeof buf, "%s__isnull", f->name);
      dorm_filter(q, buf, dorm_bool(0));
      continue;
    }
    snprintf(buf, sizeof buf, "%s__%s", f->name, lookup_for(f, (int)i & 1));
    const char *lk = strrchr(buf, '_') + 1;
    dorm_type t = dorm_field_value_type(f);
    dorm_value v = fuzz_value(
        !strcmp(lk, "gte") && t != DORM_T_INT ? DORM_T_INT : t, (int)i);
    if (i % 3 == 2)
      dorm_exclude(q, buf, v);
    else
      dorm_filter(q, buf, v);
    if (i == 1 && f->choices && f->nchoices) {
      dorm_value in[2] = {f->choices[0], f->choices[f->nchoices - 1]};
      snprintf(buf, sizeof buf, "%s__in", f->name);
      dorm_filter(q, buf, dorm_list(in, 2));
    }
    snprintf(buf, sizeof buf, "%s%s", i & 1 ? "-" : "", f->name);
    dorm_order_by(q, buf);
  }
  dorm_slice(q, 1, 10);
  fuzz_compile_all(q);

  /* values() and distinct over every plain field */
  q = dorm_select(m);
  for (size_t i = 0; i < nf; i++)
    if (m->fields[i].type != DORM_FIELD_MANY_TO_MANY)
      dorm_values(q, m->fields[i].name);
  dorm_distinct(q);
  fuzz_compile_all(q);
}

static void query_relations(const dorm_schema *s, const dorm_model *m) {
  char buf[3 * (DORM_IDENT_MAX + 1) + 32];
  for (size_t i = 0; i < m->nfields && i < MAX_FIELDS; i++) {
    const dorm_field *f = &m->fields[i];
    if (!f->target) continue;
    const dorm_model *t = f->target;
    const char *tf = plain_field(t, 1);
    dorm_query *q = dorm_select(m);
    snprintf(buf, sizeof buf, "%s__%s", f->name, tf);
    dorm_filter(q, buf, dorm_null());
    dorm_values(q, buf);
    dorm_values(q, "pk");
    snprintf(buf, sizeof buf, "-%s__%s", f->name, tf);
    dorm_order_by(q, buf);
    fuzz_compile_all(q);

    q = dorm_select(m);
    if (dorm_field_is_fk(f)) dorm_select_related(q, f->name);
    dorm_prefetch_related(q, f->name);
    snprintf(buf, sizeof buf, "%s__pk__in", f->name);
    dorm_value keys[2] = {dorm_int(1), dorm_int(2)};
    dorm_exclude(q, buf, dorm_list(keys, 2));
    fuzz_compile_all(q);

    /* the reverse direction, from the target */
    char rev[DORM_IDENT_MAX + 1];
    const char *rn = dorm_field_reverse_name(f, rev, sizeof rev);
    q = dorm_select(t);
    snprintf(buf, sizeof buf, "%s__%s__isnull", rn, plain_field(m, 0));
    dorm_filter(q, buf, dorm_bool(1));
    dorm_values(q, plain_field(t, 0));
    dorm_annotate(q, "n", DORM_AGG_COUNT | DORM_AGG_DISTINCT, rn);
    fuzz_compile_all(q);

    q = dorm_select(t);
    dorm_prefetch_related(q, rn);
    dorm_aggregate(q, "m", DORM_AGG_MAX, buf);
    fuzz_compile_all(q);
  }
  (void)s;
}

static void query_writes(const dorm_model *m) {
  dorm_query *q = dorm_insert(m);
  for (int row = 0; row < 2; row++) {
    if (row) dorm_insert_next_row(q);
    for (size_t i = 0; i < m->nfields && i < MAX_FIELDS; i++) {
      const dorm_field *f = &m->fields[i];
      if (f->type == DORM_FIELD_MANY_TO_MANY) continue;
      if (f->type == DORM_FIELD_AUTO || f->type == DORM_FIELD_BIGAUTO) continue;
      dorm_set(q, f->name,
               f->nchoices ? f->choices[0]
                           : fuzz_value(dorm_field_value_type(f), (int)i));
    }
  }
  dorm_on_conflict(q, m->pk ? m->pk->name : "pk");
  fuzz_compile_all(q);

  q = dorm_update(m);
  for (size_t i = 0; i < m->nfields && i < MAX_FIELDS; i++) {
    const dorm_field *f = &m->fields[i];
    if (f->type == DORM_FIELD_MANY_TO_MANY || f == m->pk) continue;
    if (dorm_field_value_type(f) == DORM_T_INT)
      dorm_set(q, f->name,
               dorm_fval(dorm_op(q, '+', dorm_F(q, f->name),
                                 dorm_lit(q, dorm_int(1)))));
    else if (f->flags & DORM_FIELD_NULL)
      dorm_set(q, f->name, dorm_null());
  }
  dorm_filter(q, "pk__gt", dorm_int(3));
  dorm_returning(q, "*");
  fuzz_compile_all(q);

  q = dorm_delete(m);
  dorm_filter(q, "pk", dorm_int(3));
  fuzz_compile_all(q);
}

static void ddl(const dorm_model *m) {
  for (int d = 0; d < 2; d++) {
    dorm_ddl out;
    dorm_ddl_init(&out);
    dorm_error err;
    dorm_error_clear(&err);
    if (dorm_ddl_create_model(m, NULL, 0, (dorm_dialect)d, &out, &err) == 0)
      FUZZ_CHECK(out.n > 0, "model '%s': CREATE without statements", m->name);
    dorm_ddl_free(&out);
    dorm_error_clear(&err);
    dorm_ddl_delete_model(m, (dorm_dialect)d, &out, &err);
    dorm_ddl_free(&out);
    for (size_t i = 0; i < m->nindexes; i++) {
      dorm_ddl_add_index(m, &m->indexes[i], (dorm_dialect)d, &out, NULL);
      dorm_ddl_free(&out);
    }
  }
}

static void round_trip(const dorm_schema *s) {
  json_t *j = dorm_schema_to_json(s);
  if (!j) return;
  char *text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!text) return;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *again = dorm_schema_load_string(text, "round-trip", &err);
  FUZZ_CHECK(again, "the canonical form does not load: %s\n%s", err.message,
             text);
  FUZZ_CHECK(again->nmodels == s->nmodels, "models lost in the round trip");
  dorm_schema_free(again);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  char *text = fuzz_cstr(data, size);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_string(text, "models.json", &err);
  free(text);
  if (!s) {
    FUZZ_CHECK(err.code != 0 && err.message[0], "refusal without message");
    return 0;
  }
  round_trip(s);
  for (size_t i = 0; i < s->nmodels && i < MAX_MODELS; i++) {
    const dorm_model *m = &s->models[i];
    ddl(m);
    query_fields(m);
    query_relations(s, m);
    query_writes(m);
  }
  dorm_schema_free(s);
  return 0;
}
