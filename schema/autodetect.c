/* SPDX-License-Identifier: MIT */
/* schema/autodetect.c — compare the migrations' models with models.json and
 * write the operations between them (Django's MigrationAutodetector).
 *
 * Both sides are loaded schemas written out in the canonical JSON form
 * (model_json.c), so "the same field" is JSON equality and a default
 * written as 0 or 0.0 cannot look like a change.  The working copy of the
 * old side is edited as renames are decided, so every later comparison
 * sees names as they will be.
 *
 * Renames: a removal and an addition are a rename only when asked for
 * (dorm_autodetect_options) or when the pairing is unambiguous — exactly
 * one removed and one added candidate with the same definition, each the
 * other's only match — and every detected rename is reported in `notes`,
 * so nothing is guessed silently.
 *
 * A field's db_index and a model index over that field alone are one
 * index in the database; the two spellings are not a change
 * (align_index_spelling).
 *
 * Order of the operations (each must run on the state the previous ones
 * leave): renames; removed indexes and unique_together; new models, a
 * model after those it points at (a cycle is broken by creating one model
 * without its closing relation and adding that field at the end); removed,
 * added and altered fields; deleted models, a model before those it points
 * at; new indexes and unique_together.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dorm/migration.h"
#include "schema/schema_int.h"

typedef struct detector {
  json_t *F;      /* old models: name -> canonical model (edited) */
  json_t *T;      /* new models: name -> canonical model */
  json_t *torder; /* new model names in models.json order */
  json_t *ops;
  json_t *later; /* operations that must come last (cycle-breaking) */
  json_t *notes;
  dorm_error *err;
  int oom;
} detector;

static const char *sget(const json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static void lower_into(const char *s, char *out, size_t cap) {
  size_t i = 0;
  for (; s[i] && i + 1 < cap; i++)
    out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
  out[i] = '\0';
}

static void emit(detector *d, json_t *op) {
  if (!op || json_array_append_new(d->ops, op)) d->oom = 1;
}

/* jansson's setters fail only when out of memory (a NULL value included:
 * its constructor failed); each failure marks the detector, whose result
 * is then thrown away, so no operation goes missing silently. */
static void oset(detector *d, json_t *o, const char *k, json_t *v) {
  if (json_object_set_new(o, k, v)) d->oom = 1;
}

static void oset_ref(detector *d, json_t *o, const char *k, json_t *v) {
  if (json_object_set(o, k, v)) d->oom = 1;
}

static void append(detector *d, json_t *a, json_t *v) {
  if (json_array_append_new(a, v)) d->oom = 1;
}

static void note(detector *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void note(detector *d, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  dorm__utf8_mend(buf); /* json_string refuses what is not UTF-8 */
  if (json_array_append_new(d->notes, json_string(buf))) d->oom = 1;
}

/* NULL when out of memory (a model missing from the map would read as
 * deleted). */
static json_t *by_name(json_t *models_doc, json_t **order) {
  json_t *o = json_object();
  int rc = o ? 0 : -1;
  if (order && !(*order = json_array())) rc = -1;
  json_t *arr = json_object_get(models_doc, "models");
  for (size_t i = 0; !rc && i < json_array_size(arr); i++) {
    json_t *m = json_array_get(arr, i);
    rc |= json_object_set(o, sget(m, "name"), m);
    if (order)
      rc |= json_array_append_new(*order, json_string(sget(m, "name")));
  }
  if (rc) {
    json_decref(o);
    if (order) {
      json_decref(*order);
      *order = NULL;
    }
    return NULL;
  }
  return o;
}

static json_t *fields_of(const json_t *m) {
  return json_object_get(m, "fields");
}

static json_t *field_named(const json_t *m, const char *name, size_t *at) {
  json_t *fs = fields_of(m);
  for (size_t i = 0; i < json_array_size(fs); i++)
    if (!strcmp(sget(json_array_get(fs, i), "name"), name)) {
      if (at) *at = i;
      return json_array_get(fs, i);
    }
  return NULL;
}

/* Point every relation of the old side at `newn` instead of `oldn`. */
static void retarget(detector *d, const char *oldn, const char *newn) {
  const char *k;
  json_t *m;
  json_object_foreach(d->F, k, m) {
    json_t *fs = fields_of(m);
    for (size_t i = 0; i < json_array_size(fs); i++) {
      json_t *f = json_array_get(fs, i);
      const char *to = sget(f, "to");
      if (to && !strcmp(to, oldn) &&
          json_object_set_new(f, "to", json_string(newn)))
        d->oom = 1;
    }
  }
}

/* ---- model renames ------------------------------------------------------- */

static void do_rename_model(detector *d, const char *oldn, const char *newn) {
  if (d->oom) return;
  json_t *fm = json_object_get(d->F, oldn);
  json_t *tm = json_object_get(d->T, newn);
  json_t *op = json_pack("{ssssss}", "op", "rename_model", "old_name", oldn,
                         "new_name", newn);
  if (!op) {
    d->oom = 1;
    return;
  }
  /* The table: say it only where the default rule (the table follows the
   * name when it was the default one) would not give it. */
  char lo[DORM_IDENT_MAX + 1], ln[DORM_IDENT_MAX + 1];
  lower_into(oldn, lo, sizeof lo);
  lower_into(newn, ln, sizeof ln);
  const char *ft = sget(fm, "table"), *tt = sget(tm, "table");
  const char *fwd = strcmp(ft, lo) ? ft : ln;
  if (strcmp(fwd, tt)) oset(d, op, "new_table", json_string(tt));
  const char *back = strcmp(tt, ln) ? tt : lo;
  if (strcmp(back, ft)) oset(d, op, "old_table", json_string(ft));
  emit(d, op);
  json_t *copy = json_deep_copy(fm);
  if (!copy) {
    d->oom = 1;
    return;
  }
  oset(d, copy, "name", json_string(newn));
  oset(d, copy, "table", json_string(tt));
  json_object_del(d->F, oldn);
  oset(d, d->F, newn, copy);
  if (strcmp(oldn, newn)) retarget(d, oldn, newn);
}

/* Same model apart from its name and table, with relations to itself
 * compared as such. */
static int models_equivalent(detector *d, const json_t *fm, const json_t *tm) {
  json_t *a = json_deep_copy(fields_of(fm));
  if (!a) {
    d->oom = 1;
    return 0;
  }
  const char *fn = sget(fm, "name"), *tn = sget(tm, "name");
  for (size_t i = 0; i < json_array_size(a); i++) {
    json_t *f = json_array_get(a, i);
    if (sget(f, "to") && !strcmp(sget(f, "to"), fn))
      oset(d, f, "to", json_string(tn));
  }
  int eq = json_equal(a, fields_of(tm)) &&
           json_equal(json_object_get(fm, "indexes"),
                      json_object_get(tm, "indexes")) &&
           json_equal(json_object_get(fm, "unique_together"),
                      json_object_get(tm, "unique_together"));
  json_decref(a);
  return eq;
}

static int rename_models(detector *d, const dorm_autodetect_options *o) {
  for (size_t i = 0; o && i < o->nmodel_renames; i++) {
    if (d->oom) return 0; /* the caller reports it */
    const char *oldn = o->model_renames[i].old_name;
    const char *newn = o->model_renames[i].new_name;
    if (!json_object_get(d->F, oldn))
      return dorm_error_set(d->err, DORM_EINVAL,
                            "rename %s=%s: the migrations have no model '%s'",
                            oldn, newn, oldn);
    if (!json_object_get(d->T, newn))
      return dorm_error_set(d->err, DORM_EINVAL,
                            "rename %s=%s: the models file has no model '%s'",
                            oldn, newn, newn);
    if (strcmp(oldn, newn) && json_object_get(d->F, newn))
      return dorm_error_set(d->err, DORM_EINVAL,
                            "rename %s=%s: the migrations already have a "
                            "model '%s'",
                            oldn, newn, newn);
    if (strcmp(oldn, newn) && json_object_get(d->T, oldn))
      return dorm_error_set(d->err, DORM_EINVAL,
                            "rename %s=%s: the models file still has a "
                            "model '%s'",
                            oldn, newn, oldn);
    do_rename_model(d, oldn, newn);
  }
  /* A removed and an added model whose names differ only in case are one
   * model renamed: the two could not live side by side (model names are
   * unique regardless of case, and so are their default tables), so a
   * delete and a create would not even apply.  inspectdb output meets
   * this: it reads "BlogEntry" back from table blogentry as "Blogentry". */
  json_t *cased = json_array();
  if (!cased) return dorm_error_set(d->err, DORM_ENOMEM, NULL);
  const char *ck;
  json_t *cm;
  json_object_foreach(d->F, ck, cm) {
    if (json_object_get(d->T, ck)) continue;
    const char *ak;
    json_t *am;
    json_object_foreach(d->T, ak, am) {
      if (!json_object_get(d->F, ak) && !strcasecmp(ak, ck))
        append(d, cased, json_pack("[ss]", ck, ak));
    }
  }
  for (size_t i = 0; !d->oom && i < json_array_size(cased); i++) {
    json_t *p = json_array_get(cased, i);
    const char *oldn = json_string_value(json_array_get(p, 0));
    const char *newn = json_string_value(json_array_get(p, 1));
    note(d, "Renamed model %s to %s (the names differ only in case)", oldn,
         newn);
    do_rename_model(d, oldn, newn);
  }
  json_decref(cased);
  if (o && o->no_detect_renames) return 0;
  /* Unambiguous pairs of a removed and an added model. */
  const char *rk;
  json_t *rm;
  json_t *pairs = json_array();
  if (!pairs) return dorm_error_set(d->err, DORM_ENOMEM, NULL);
  json_object_foreach(d->F, rk, rm) {
    if (json_object_get(d->T, rk)) continue;
    const char *match = NULL;
    int n = 0;
    const char *ak;
    json_t *am;
    json_object_foreach(d->T, ak, am) {
      if (json_object_get(d->F, ak)) continue;
      if (models_equivalent(d, rm, am)) {
        match = ak;
        n++;
      }
    }
    if (n != 1) continue;
    /* and rk is the only removed model matching it */
    int back = 0;
    const char *k2;
    json_t *m2;
    json_object_foreach(d->F, k2, m2) {
      if (json_object_get(d->T, k2)) continue;
      if (models_equivalent(d, m2, json_object_get(d->T, match))) back++;
    }
    if (back == 1) append(d, pairs, json_pack("[ss]", rk, match));
  }
  for (size_t i = 0; !d->oom && i < json_array_size(pairs); i++) {
    json_t *p = json_array_get(pairs, i);
    const char *oldn = json_string_value(json_array_get(p, 0));
    const char *newn = json_string_value(json_array_get(p, 1));
    note(d,
         "Renamed model %s to %s (detected: no other model has the same "
         "fields; use --no-detect-renames to delete and create instead)",
         oldn, newn);
    do_rename_model(d, oldn, newn);
  }
  json_decref(pairs);
  /* Same name, another table: a rename of the table alone. */
  const char *k;
  json_t *fm;
  json_object_foreach(d->F, k, fm) {
    json_t *tm = json_object_get(d->T, k);
    if (tm && strcmp(sget(fm, "table"), sget(tm, "table"))) {
      json_t *op = json_pack("{ssssssssss}", "op", "rename_model", "old_name",
                             k, "new_name", k, "old_table", sget(fm, "table"),
                             "new_table", sget(tm, "table"));
      emit(d, op);
      oset(d, fm, "table", json_string(sget(tm, "table")));
    }
  }
  return 0;
}

/* ---- field renames ------------------------------------------------------- */

static int same_but_name(detector *d, const json_t *a, const json_t *b) {
  json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
  int eq = 0;
  if (x && y) {
    json_object_del(x, "name");
    json_object_del(y, "name");
    eq = json_equal(x, y);
  } else {
    d->oom = 1;
  }
  json_decref(x);
  json_decref(y);
  return eq;
}

static void rename_names(detector *d, json_t *arr, const char *oldn,
                         const char *newn, int signed_ok) {
  for (size_t i = 0; i < json_array_size(arr); i++) {
    const char *s = json_string_value(json_array_get(arr, i));
    if (!s) continue;
    int neg = signed_ok && s[0] == '-';
    if (!strcmp(s + neg, oldn)) {
      char buf[DORM_IDENT_MAX + 2];
      snprintf(buf, sizeof buf, "%s%s", neg ? "-" : "", newn);
      if (json_array_set_new(arr, i, json_string(buf))) d->oom = 1;
    }
  }
}

static int names_has(const json_t *arr, const char *name) {
  for (size_t i = 0; i < json_array_size(arr); i++)
    if (!strcmp(json_string_value(json_array_get(arr, i)), name)) return 1;
  return 0;
}

static void do_rename_field(detector *d, const char *model, const char *oldn,
                            const char *newn) {
  if (d->oom) return;
  json_t *fm = json_object_get(d->F, model);
  /* Indexes and unique_together over the field have names derived from
   * the field names, which the database keeps when the column is renamed:
   * drop them first (under their old names) and let the additions at the
   * end create them under the new ones. */
  json_t *ixs = json_object_get(fm, "indexes");
  for (size_t k = 0; k < json_array_size(ixs);) {
    json_t *x = json_array_get(ixs, k);
    if (!json_object_get(x, "name") &&
        names_has(json_object_get(x, "fields"), oldn)) {
      emit(d, json_pack("{sssssO}", "op", "remove_index", "model", model,
                        "index", x));
      json_array_remove(ixs, k);
    } else {
      k++;
    }
  }
  json_t *uts = json_object_get(fm, "unique_together");
  for (size_t k = 0; k < json_array_size(uts);) {
    json_t *g = json_array_get(uts, k);
    if (names_has(g, oldn)) {
      emit(d, json_pack("{sssssO}", "op", "remove_constraint", "model", model,
                        "unique_together", g));
      json_array_remove(uts, k);
    } else {
      k++;
    }
  }
  emit(d, json_pack("{ssssssss}", "op", "rename_field", "model", model,
                    "old_name", oldn, "new_name", newn));
  json_t *f = field_named(fm, oldn, NULL);
  oset(d, f, "name", json_string(newn));
  json_t *ix = json_object_get(fm, "indexes");
  for (size_t k = 0; k < json_array_size(ix); k++)
    rename_names(d, json_object_get(json_array_get(ix, k), "fields"), oldn,
                 newn, 0);
  json_t *ut = json_object_get(fm, "unique_together");
  for (size_t k = 0; k < json_array_size(ut); k++)
    rename_names(d, json_array_get(ut, k), oldn, newn, 0);
  rename_names(d, json_object_get(fm, "ordering"), oldn, newn, 1);
}

static int rename_fields(detector *d, const dorm_autodetect_options *o) {
  for (size_t i = 0; o && i < o->nfield_renames; i++) {
    if (d->oom) return 0;
    const dorm_rename *r = &o->field_renames[i];
    json_t *fm = json_object_get(d->F, r->model);
    json_t *tm = json_object_get(d->T, r->model);
    if (!fm || !tm)
      return dorm_error_set(d->err, DORM_EINVAL,
                            "rename %s.%s=%s: no model '%s' on both sides",
                            r->model, r->old_name, r->new_name, r->model);
    if (!field_named(fm, r->old_name, NULL))
      return dorm_error_set(d->err, DORM_EINVAL,
                            "rename %s.%s=%s: the migrations have no field "
                            "'%s' on %s",
                            r->model, r->old_name, r->new_name, r->old_name,
                            r->model);
    if (!field_named(tm, r->new_name, NULL))
      return dorm_error_set(d->err, DORM_EINVAL,
                            "rename %s.%s=%s: the models file has no field "
                            "'%s' on %s",
                            r->model, r->old_name, r->new_name, r->new_name,
                            r->model);
    if (field_named(fm, r->new_name, NULL) ||
        field_named(tm, r->old_name, NULL))
      return dorm_error_set(d->err, DORM_EINVAL,
                            "rename %s.%s=%s: both names exist on one side",
                            r->model, r->old_name, r->new_name);
    do_rename_field(d, r->model, r->old_name, r->new_name);
  }
  if (o && o->no_detect_renames) return 0;
  const char *mk;
  json_t *fm;
  json_object_foreach(d->F, mk, fm) {
    json_t *tm = json_object_get(d->T, mk);
    if (!tm) continue;
    json_t *pairs = json_array();
    if (!pairs) d->oom = 1;
    json_t *ffs = fields_of(fm), *tfs = fields_of(tm);
    for (size_t i = 0; pairs && i < json_array_size(ffs); i++) {
      json_t *rf = json_array_get(ffs, i);
      if (field_named(tm, sget(rf, "name"), NULL)) continue;
      json_t *match = NULL;
      int n = 0;
      for (size_t j = 0; j < json_array_size(tfs); j++) {
        json_t *af = json_array_get(tfs, j);
        if (field_named(fm, sget(af, "name"), NULL)) continue;
        if (same_but_name(d, rf, af)) {
          match = af;
          n++;
        }
      }
      if (n != 1) continue;
      int back = 0;
      for (size_t j = 0; j < json_array_size(ffs); j++) {
        json_t *rf2 = json_array_get(ffs, j);
        if (!field_named(tm, sget(rf2, "name"), NULL) &&
            same_but_name(d, rf2, match))
          back++;
      }
      if (back == 1)
        append(d, pairs,
               json_pack("[ss]", sget(rf, "name"), sget(match, "name")));
    }
    for (size_t i = 0; !d->oom && i < json_array_size(pairs); i++) {
      const char *oldn =
          json_string_value(json_array_get(json_array_get(pairs, i), 0));
      const char *newn =
          json_string_value(json_array_get(json_array_get(pairs, i), 1));
      note(d,
           "Renamed field %s.%s to %s (detected: the only removed and added "
           "fields with the same definition; use --no-detect-renames to "
           "remove and add instead)",
           mk, oldn, newn);
      do_rename_field(d, mk, oldn, newn);
    }
    json_decref(pairs);
  }
  return 0;
}

/* ---- indexes and unique_together ------------------------------------------
 */

static int in_array(const json_t *arr, const json_t *item) {
  for (size_t i = 0; i < json_array_size(arr); i++)
    if (json_equal(json_array_get(arr, i), item)) return 1;
  return 0;
}

/* add = 0: what the old side has and the new does not; 1: the reverse. */
static void index_ops(detector *d, int add) {
  const char *mk;
  json_t *fm;
  json_object_foreach(d->F, mk, fm) {
    json_t *tm = json_object_get(d->T, mk);
    if (!tm) continue;
    const json_t *from = add ? tm : fm, *to = add ? fm : tm;
    json_t *ix = json_object_get(from, "indexes");
    for (size_t i = 0; i < json_array_size(ix); i++) {
      json_t *x = json_array_get(ix, i);
      if (in_array(json_object_get(to, "indexes"), x)) continue;
      emit(d, json_pack("{sssssO}", "op", add ? "add_index" : "remove_index",
                        "model", mk, "index", x));
    }
    json_t *ut = json_object_get(from, "unique_together");
    for (size_t i = 0; i < json_array_size(ut); i++) {
      json_t *g = json_array_get(ut, i);
      if (in_array(json_object_get(to, "unique_together"), g)) continue;
      emit(d, json_pack("{sssssO}", "op",
                        add ? "add_constraint" : "remove_constraint", "model",
                        mk, "unique_together", g));
    }
  }
}

/* ---- db_index and single-field indexes --------------------------------------
 *
 * "db_index": true on a field and a model index over that field alone
 * ({"fields": ["age"]}, its name derived) are one and the same in the
 * database: CREATE INDEX "author_age_idx" ON "author" ("age") — the
 * field's index is named after its column, the model index after its
 * field, and for a column named as its field (no db_column, not a
 * relation) the two names are equal.  So inspectdb cannot tell which was
 * written, and a models file that switches from one to the other changes
 * nothing in the database.  Where the two sides spell one index the two
 * ways, the new side is rewritten to the old side's spelling before the
 * comparison: no operation is written, and the migrations' state keeps
 * describing the index the way its later operations expect. */

static int plain_column(const json_t *f) {
  const char *type = sget(f, "type");
  const char *col = sget(f, "db_column");
  return type && strcmp(type, "foreign_key") && strcmp(type, "one_to_one") &&
         strcmp(type, "many_to_many") &&
         (!col || !strcmp(col, sget(f, "name")));
}

/* The position of {"fields": [name]} (no name, not unique) in m's indexes,
 * or -1. */
static long single_index(const json_t *m, const char *name) {
  json_t *ix = json_object_get(m, "indexes");
  for (size_t i = 0; i < json_array_size(ix); i++) {
    json_t *x = json_array_get(ix, i);
    json_t *fs = json_object_get(x, "fields");
    if (json_object_size(x) == 1 && json_array_size(fs) == 1 &&
        !strcmp(json_string_value(json_array_get(fs, 0)), name))
      return (long)i;
  }
  return -1;
}

static void align_index_spelling(detector *d) {
  const char *mk;
  json_t *fm;
  json_object_foreach(d->F, mk, fm) {
    json_t *tm = json_object_get(d->T, mk);
    if (!tm) continue;
    json_t *tfs = fields_of(tm);
    for (size_t i = 0; i < json_array_size(tfs); i++) {
      json_t *tf = json_array_get(tfs, i);
      const char *name = sget(tf, "name");
      json_t *ff = field_named(fm, name, NULL);
      if (!ff || !plain_column(tf) || !plain_column(ff)) continue;
      int t_flag = json_is_true(json_object_get(tf, "db_index"));
      int f_flag = json_is_true(json_object_get(ff, "db_index"));
      long t_ix = single_index(tm, name), f_ix = single_index(fm, name);
      if (t_flag && !f_flag && f_ix >= 0 && t_ix < 0) {
        /* old: a model index; new: db_index */
        json_t *ix = json_object_get(tm, "indexes");
        if (!ix) {
          ix = json_array();
          if (!ix || json_object_set_new(tm, "indexes", ix)) {
            d->oom = 1;
            return;
          }
        }
        json_object_del(tf, "db_index");
        append(d, ix, json_pack("{s[s]}", "fields", name));
      } else if (!t_flag && f_flag && t_ix >= 0 && f_ix < 0) {
        /* old: db_index; new: a model index */
        json_array_remove(json_object_get(tm, "indexes"), (size_t)t_ix);
        if (json_object_set_new(tf, "db_index", json_true())) d->oom = 1;
      }
    }
  }
}

/* ---- new models ------------------------------------------------------------
 */

static int names_mention(const json_t *names, const json_t *deferred_fields) {
  for (size_t i = 0; i < json_array_size(names); i++)
    if (json_object_get(deferred_fields,
                        json_string_value(json_array_get(names, i))))
      return 1;
  return 0;
}

static void create_models(detector *d) {
  json_t *todo = json_array(); /* names, models.json order */
  json_t *created = json_object();
  if (!todo || !created) {
    d->oom = 1;
    goto out;
  }
  for (size_t i = 0; i < json_array_size(d->torder); i++) {
    const char *n = json_string_value(json_array_get(d->torder, i));
    if (!json_object_get(d->F, n)) append(d, todo, json_string(n));
  }
  while (!d->oom && json_array_size(todo)) {
    size_t pick = (size_t)-1;
    for (size_t i = 0; i < json_array_size(todo) && pick == (size_t)-1; i++) {
      json_t *m =
          json_object_get(d->T, json_string_value(json_array_get(todo, i)));
      int ready = 1;
      json_t *fs = fields_of(m);
      for (size_t j = 0; j < json_array_size(fs) && ready; j++) {
        const char *to = sget(json_array_get(fs, j), "to");
        if (to && strcmp(to, sget(m, "name")) && !json_object_get(d->F, to) &&
            !json_object_get(created, to))
          ready = 0;
      }
      if (ready) pick = i;
    }
    int cycle = pick == (size_t)-1;
    if (cycle) pick = 0;
    const char *n = json_string_value(json_array_get(todo, pick));
    json_t *m = json_deep_copy(json_object_get(d->T, n));
    if (!m) {
      d->oom = 1;
      break;
    }
    if (cycle) {
      /* Leave out the relations to models not created yet; add them (and
       * the indexes that name them) once every model exists. */
      json_t *fs = fields_of(m);
      json_t *deferred = json_object();
      if (!deferred) d->oom = 1;
      for (size_t j = 0; deferred && j < json_array_size(fs);) {
        json_t *f = json_array_get(fs, j);
        const char *to = sget(f, "to");
        if (to && strcmp(to, n) && !json_object_get(d->F, to) &&
            !json_object_get(created, to)) {
          append(
              d, d->later,
              json_pack("{sssssO}", "op", "add_field", "model", n, "field", f));
          oset(d, deferred, sget(f, "name"), json_true());
          note(d,
               "Model %s is created without field %s, added afterwards: "
               "the models point at each other",
               n, sget(f, "name"));
          json_array_remove(fs, j);
        } else {
          j++;
        }
      }
      json_t *ix = json_object_get(m, "indexes");
      for (size_t j = 0; j < json_array_size(ix);) {
        json_t *x = json_array_get(ix, j);
        if (names_mention(json_object_get(x, "fields"), deferred)) {
          append(
              d, d->later,
              json_pack("{sssssO}", "op", "add_index", "model", n, "index", x));
          json_array_remove(ix, j);
        } else {
          j++;
        }
      }
      json_t *ut = json_object_get(m, "unique_together");
      for (size_t j = 0; j < json_array_size(ut);) {
        json_t *g = json_array_get(ut, j);
        if (names_mention(g, deferred)) {
          append(d, d->later,
                 json_pack("{sssssO}", "op", "add_constraint", "model", n,
                           "unique_together", g));
          json_array_remove(ut, j);
        } else {
          j++;
        }
      }
      json_decref(deferred);
    }
    json_t *op = json_object();
    if (op) {
      oset(d, op, "op", json_string("create_model"));
      const char *k;
      json_t *v;
      json_object_foreach(m, k, v) {
        if (json_is_array(v) && !json_array_size(v)) continue;
        oset_ref(d, op, k, v);
      }
    }
    emit(d, op);
    json_decref(m);
    oset(d, created, n, json_true());
    json_array_remove(todo, pick);
  }
out:
  json_decref(todo);
  json_decref(created);
}

static int differs_in_db(detector *d, const json_t *f, const json_t *t);

/* ---- fields of models on both sides
 * ------------------------------------------ */

static int is_m2m(const json_t *f) {
  return !strcmp(sget(f, "type"), "many_to_many");
}

static void field_ops(detector *d, int phase) {
  const char *mk;
  json_t *fm;
  json_object_foreach(d->F, mk, fm) {
    json_t *tm = json_object_get(d->T, mk);
    if (!tm) continue;
    json_t *ffs = fields_of(fm), *tfs = fields_of(tm);
    if (phase == 0) { /* removals */
      for (size_t i = 0; i < json_array_size(ffs); i++) {
        json_t *f = json_array_get(ffs, i);
        json_t *t = field_named(tm, sget(f, "name"), NULL);
        /* A many_to_many that changes kind or target cannot be altered. */
        int replace = t && !json_equal(f, t) && (is_m2m(f) || is_m2m(t)) &&
                      (strcmp(sget(f, "type"), sget(t, "type")) ||
                       strcmp(sget(f, "to") ? sget(f, "to") : "",
                              sget(t, "to") ? sget(t, "to") : ""));
        if (!t || replace)
          emit(d, json_pack("{sssssO}", "op", "remove_field", "model", mk,
                            "field", f));
      }
    } else if (phase == 1) { /* additions */
      for (size_t i = 0; i < json_array_size(tfs); i++) {
        json_t *t = json_array_get(tfs, i);
        json_t *f = field_named(fm, sget(t, "name"), NULL);
        int replace = f && !json_equal(f, t) && (is_m2m(f) || is_m2m(t)) &&
                      (strcmp(sget(f, "type"), sget(t, "type")) ||
                       strcmp(sget(f, "to") ? sget(f, "to") : "",
                              sget(t, "to") ? sget(t, "to") : ""));
        if (f && !replace) continue;
        emit(d,
             json_pack("{sssssO}", "op", "add_field", "model", mk, "field", t));
        if (!is_m2m(t) && !json_is_true(json_object_get(t, "null")) &&
            !json_object_get(t, "default"))
          note(d,
               "Field %s.%s is NOT NULL without a default: migrating a "
               "table that has rows will fail (give it a default or make "
               "it nullable)",
               mk, sget(t, "name"));
      }
    } else { /* alterations */
      for (size_t i = 0; i < json_array_size(tfs); i++) {
        json_t *t = json_array_get(tfs, i);
        json_t *f = field_named(fm, sget(t, "name"), NULL);
        if (!f || !differs_in_db(d, f, t)) continue;
        if ((is_m2m(f) || is_m2m(t)) &&
            (strcmp(sget(f, "type"), sget(t, "type")) ||
             strcmp(sget(f, "to") ? sget(f, "to") : "",
                    sget(t, "to") ? sget(t, "to") : "")))
          continue; /* replaced above */
        emit(d, json_pack("{sssssOsO}", "op", "alter_field", "model", mk,
                          "field", t, "old_field", f));
      }
    }
  }
}

/* 1 when two definitions of a field differ in what the database sees.
 * A default is dropped from the schema once it has filled the existing
 * rows (Django's rule, docs/ddl.md), and choices and related_name live
 * only in the models, so a change of those alone needs no migration; the
 * next operation on the field carries the new definition anyway.  (A
 * set_default foreign key keeps its default in the database, so there it
 * counts.) */
static int differs_in_db(detector *d, const json_t *f, const json_t *t) {
  if (json_equal(f, t)) return 0;
  json_t *x = json_deep_copy(f), *y = json_deep_copy(t);
  int differ = 1;
  if (x && y) {
    static const char *const model_only[] = {"choices", "related_name"};
    for (size_t i = 0; i < 2; i++) {
      json_object_del(x, model_only[i]);
      json_object_del(y, model_only[i]);
    }
    const char *od = sget(y, "on_delete");
    if (!od || strcmp(od, "set_default")) {
      json_object_del(x, "default");
      json_object_del(y, "default");
    }
    differ = !json_equal(x, y);
  } else {
    d->oom = 1;
  }
  json_decref(x);
  json_decref(y);
  return differ;
}

/* ---- deleted models ---------------------------------------------------------
 */

static void delete_models(detector *d) {
  json_t *todo = json_object(); /* name -> model (a copy we may trim) */
  if (!todo) d->oom = 1;
  const char *k;
  json_t *m;
  json_object_foreach(d->F, k, m) {
    if (todo && !json_object_get(d->T, k)) oset(d, todo, k, json_deep_copy(m));
  }
  while (!d->oom && json_object_size(todo)) {
    /* A model nobody left in todo points at (itself aside). */
    const char *pick = NULL;
    json_object_foreach(todo, k, m) {
      int pointed = 0;
      const char *k2;
      json_t *m2;
      json_object_foreach(todo, k2, m2) {
        if (!strcmp(k2, k)) continue;
        json_t *fs = fields_of(m2);
        for (size_t j = 0; j < json_array_size(fs) && !pointed; j++) {
          const char *to = sget(json_array_get(fs, j), "to");
          if (to && !strcmp(to, k)) pointed = 1;
        }
      }
      if (!pointed) {
        pick = k;
        break;
      }
    }
    if (!pick) {
      /* A cycle: drop the relations of the first model into the others
       * first, then it can go. */
      json_t *fs = NULL;
      json_object_foreach(todo, k, m) {
        json_t *cand = fields_of(m);
        for (size_t j = 0; j < json_array_size(cand) && !fs; j++) {
          const char *to = sget(json_array_get(cand, j), "to");
          if (to && strcmp(to, k) && json_object_get(todo, to)) fs = cand;
        }
        if (fs) break;
      }
      for (size_t j = 0; j < json_array_size(fs);) {
        json_t *f = json_array_get(fs, j);
        const char *to = sget(f, "to");
        if (to && strcmp(to, k) && json_object_get(todo, to)) {
          emit(d, json_pack("{sssssO}", "op", "remove_field", "model", k,
                            "field", f));
          json_array_remove(fs, j);
        } else {
          j++;
        }
      }
      continue;
    }
    json_t *dm = json_object_get(todo, pick);
    json_t *op = json_object();
    if (op) {
      oset(d, op, "op", json_string("delete_model"));
      const char *kk;
      json_t *v;
      json_object_foreach(dm, kk, v) {
        if (json_is_array(v) && !json_array_size(v)) continue;
        oset_ref(d, op, kk, v);
      }
    }
    emit(d, op);
    json_object_del(todo, pick);
  }
  json_decref(todo);
}

json_t *dorm_autodetect(const dorm_schema *from, const dorm_schema *to,
                        const dorm_autodetect_options *opts, json_t **notes,
                        dorm_error *err) {
  detector d;
  memset(&d, 0, sizeof d);
  d.err = err;
  if (notes) *notes = NULL;
  json_t *fdoc = dorm_schema_to_json(from);
  json_t *tdoc = dorm_schema_to_json(to);
  d.F = fdoc ? by_name(fdoc, NULL) : NULL;
  d.T = tdoc ? by_name(tdoc, &d.torder) : NULL;
  d.ops = json_array();
  d.later = json_array();
  d.notes = json_array();
  int rc = 0;
  if (!d.F || !d.T || !d.torder || !d.ops || !d.later || !d.notes) {
    rc = dorm_error_set(err, DORM_ENOMEM, NULL);
    goto out;
  }
  /* The working copy of the old side must not share objects with fdoc's
   * array (it is edited): deep-copy each model. */
  {
    const char *k;
    json_t *m;
    json_object_foreach(d.F, k, m) {
      json_t *c = json_deep_copy(m);
      if (!c || json_object_set_new(d.F, k, c)) d.oom = 1;
    }
  }
  /* each step reads what the one before left: stop at the first failure */
  if (!d.oom && (rc = rename_models(&d, opts))) goto out;
  if (!d.oom && (rc = rename_fields(&d, opts))) goto out;
  if (!d.oom) align_index_spelling(&d);
  if (!d.oom) index_ops(&d, 0);
  if (!d.oom) create_models(&d);
  for (int phase = 0; phase < 3; phase++)
    if (!d.oom) field_ops(&d, phase);
  if (!d.oom) delete_models(&d);
  if (!d.oom) index_ops(&d, 1);
  for (size_t i = 0; !d.oom && i < json_array_size(d.later); i++)
    emit(&d, json_incref(json_array_get(d.later, i)));
  if (d.oom) rc = dorm_error_set(err, DORM_ENOMEM, NULL);
out:
  json_decref(fdoc);
  json_decref(tdoc);
  json_decref(d.F);
  json_decref(d.T);
  json_decref(d.torder);
  json_decref(d.later);
  if (rc) {
    json_decref(d.ops);
    json_decref(d.notes);
    return NULL;
  }
  if (notes)
    *notes = d.notes;
  else
    json_decref(d.notes);
  return d.ops;
}
