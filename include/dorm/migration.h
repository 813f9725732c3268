/* SPDX-License-Identifier: MIT */
/* dorm/migration.h — migration files, the model state they build, and the
 * autodetector that writes new ones (Django's makemigrations machinery).
 *
 * A migrations folder holds JSON files "NNNN_name.json" (format in
 * docs/migrations.md): a name, the migrations it depends on, and a list of
 * operations.  Loading a folder parses every file, checks every operation's
 * shape, and orders the migrations by their dependencies; a file that does
 * not parse, names an unknown operation or dependency, or takes part in a
 * dependency cycle is refused with its file name and the reason before
 * anything runs.
 *
 * Replaying operations into a dorm_mstate gives the models as the
 * migrations describe them; dorm_mstate_schema turns that into a normal
 * dorm_schema (through the models.json loader, so the same rules apply),
 * from which the DDL of include/dorm/ddl.h is generated.  dorm_autodetect
 * compares a state with the models file and returns the operations that
 * carry one to the other.
 *
 * Every operation carries what it needs to run backwards (a removed
 * field's definition, an altered field's old definition, a deleted model's
 * whole definition), so dorm_migration_op_invert can turn any operation
 * except a run_sql without reverse_sql into its inverse, which is again an
 * ordinary operation.
 *
 * Everything here is pure: no database, no event loop.  Operations are
 * jansson objects (this header includes <jansson.h>); references returned
 * as "borrowed" live as long as their owner, "new" ones are the caller's
 * to json_decref.
 */
#ifndef DORM_MIGRATION_H
#define DORM_MIGRATION_H

#include <stddef.h>

#include <jansson.h>

#include "dorm/version.h"
#include "dorm/error.h"
#include "dorm/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dorm_op_kind {
  DORM_OP_CREATE_MODEL = 0,
  DORM_OP_DELETE_MODEL,
  DORM_OP_RENAME_MODEL,
  DORM_OP_ADD_FIELD,
  DORM_OP_REMOVE_FIELD,
  DORM_OP_ALTER_FIELD,
  DORM_OP_RENAME_FIELD,
  DORM_OP_ADD_INDEX,
  DORM_OP_REMOVE_INDEX,
  DORM_OP_ADD_CONSTRAINT,
  DORM_OP_REMOVE_CONSTRAINT,
  DORM_OP_RUN_SQL,
  DORM_OP__COUNT
} dorm_op_kind;

/* "add_field" -> DORM_OP_ADD_FIELD; -1 when unknown. */
DORM_EXTERN int dorm_op_kind_parse(const char *name);
/* The name of a kind; NULL when out of range. */
DORM_EXTERN const char *dorm_op_kind_name(dorm_op_kind k);
/* The kind of an operation object (its "op"), or -1. */
DORM_EXTERN int dorm_op_kind_of(const json_t *op);

/* ---- migration files ---------------------------------------------------- */

typedef struct dorm_migration {
  char *name;  /* "0002_author_age" */
  char *file;  /* the path it was read from, or the name given */
  char **deps; /* ndeps names of migrations it depends on */
  size_t ndeps;
  json_t *ops; /* the "operations" array (checked); owned */
  int number;  /* the leading NNNN, or -1 */
} dorm_migration;

/* The migrations of a folder, in an order where every migration comes
 * after its dependencies (ties by name). */
typedef struct dorm_migration_set {
  dorm_migration *migs;
  size_t n;
  char *dir; /* the folder, or NULL */
} dorm_migration_set;

/* Parse one migration from text.  file names it in messages and is stored
 * as m->file.  Fills *m (free with dorm_migration_clear) and returns 0, or
 * returns DORM_EJSON / DORM_EMIGRATION with err naming the file, the line
 * and column where known, the operation and the reason:
 * "migrations/0002_x.json:4:5: operation 1 (add_field): missing \"model\"". */
DORM_EXTERN int dorm_migration_parse(const char *text, size_t len,
                                     const char *file, dorm_migration *m,
                                     dorm_error *err);
DORM_EXTERN void dorm_migration_clear(dorm_migration *m);

/* Load every "*.json" file of dir (a missing folder is an empty set), check
 * dependencies (every one known, no cycle) and order them.  Returns a new
 * set (dorm_migration_set_free) or NULL with err filled; nothing is
 * returned when any file is refused. */
DORM_EXTERN dorm_migration_set *dorm_migrations_load(const char *dir,
                                                     dorm_error *err);
/* The same over migrations already parsed (takes ownership of the n
 * migrations in migs and of the array, even on failure). */
DORM_EXTERN dorm_migration_set *dorm_migrations_order(dorm_migration *migs,
                                                      size_t n,
                                                      dorm_error *err);
DORM_EXTERN void dorm_migration_set_free(dorm_migration_set *set);
/* Index of a migration by full name or by a unique prefix ("0002"), or -1
 * (none) / -2 (several match). */
DORM_EXTERN long dorm_migrations_find(const dorm_migration_set *set,
                                      const char *name);
/* Migrations no other migration depends on (Django's leaf nodes): their
 * indexes written into out (capacity cap); returns how many there are. */
DORM_EXTERN size_t dorm_migrations_leaves(const dorm_migration_set *set,
                                          size_t *out, size_t cap);

/* The inverse of an operation (new reference), or NULL with err filled
 * (DORM_EMIGRATION for a run_sql without reverse_sql). */
DORM_EXTERN json_t *dorm_migration_op_invert(const json_t *op, dorm_error *err);
/* A short description for people: "Add field age to Author". Writes into
 * buf (len bytes) and returns buf. */
DORM_EXTERN char *dorm_migration_op_describe(const json_t *op, char *buf,
                                             size_t len);

/* ---- model state --------------------------------------------------------- */

typedef struct dorm_mstate dorm_mstate;

/* An empty state (no models); NULL when out of memory. */
DORM_EXTERN dorm_mstate *dorm_mstate_new(void);
/* A deep copy; NULL when out of memory. */
DORM_EXTERN dorm_mstate *dorm_mstate_copy(const dorm_mstate *st);
DORM_EXTERN void dorm_mstate_free(dorm_mstate *st);
/* Apply one (checked) operation.  Returns 0, or DORM_EMIGRATION when the
 * operation does not fit the state ("model 'Author' has no field 'age'"),
 * with the state unchanged. */
DORM_EXTERN int dorm_mstate_apply(dorm_mstate *st, const json_t *op,
                                  dorm_error *err);
/* Apply every operation of the migration; the message of an error starts
 * with the migration's file and the operation's number. */
DORM_EXTERN int dorm_mstate_apply_migration(dorm_mstate *st,
                                            const dorm_migration *m,
                                            dorm_error *err);
/* The state as a schema: every model (names NULL), or only the named ones
 * and the models their relations reach (enough for one operation's DDL,
 * and much cheaper on a large project).  New schema, or NULL with err. */
DORM_EXTERN dorm_schema *dorm_mstate_schema(const dorm_mstate *st,
                                            const char *const *names, size_t n,
                                            dorm_error *err);
/* The table constraints of a model that are not unique_together (the
 * add_constraint "constraint" objects: {"name", "check"} or {"name",
 * "fields"}), borrowed; NULL when the model is unknown. */
DORM_EXTERN const json_t *dorm_mstate_constraints(const dorm_mstate *st,
                                                  const char *model);
/* Number of models in the state. */
DORM_EXTERN size_t dorm_mstate_nmodels(const dorm_mstate *st);

/* ---- models as JSON (the shape of models.json) --------------------------- */

/* One field / one model / a whole schema in the canonical models.json
 * form: every key with its default value left out, except that relations
 * always say on_delete and models always say table and list their primary
 * key.  New references, or NULL when out of memory. */
DORM_EXTERN json_t *dorm_field_to_json(const dorm_field *f);
DORM_EXTERN json_t *dorm_model_to_json(const dorm_model *m);
DORM_EXTERN json_t *dorm_schema_to_json(const dorm_schema *s);

/* ---- the autodetector ---------------------------------------------------- */

typedef struct dorm_rename {
  const char *model;    /* field renames: the model (its new name) */
  const char *old_name; /* model or field */
  const char *new_name;
} dorm_rename;

typedef struct dorm_autodetect_options {
  const dorm_rename *model_renames; /* asked for explicitly */
  size_t nmodel_renames;
  const dorm_rename *field_renames;
  size_t nfield_renames;
  int no_detect_renames; /* 1: never pair a removal with an addition */
} dorm_autodetect_options;

/* The operations that carry the state `from` (dorm_mstate_schema of all
 * models; NULL = empty) to the models file `to`, in an order that runs:
 * renames; removal of indexes and unique_together going away; new models
 * (a model after the models it points at; a cycle broken by adding the
 * closing foreign key afterwards); field removals, additions and
 * alterations; deleted models (a model before those it points at); new
 * indexes and unique_together.  A removed and an added model (or field)
 * with the same definition are paired as a rename only when the pairing is
 * unambiguous; each detected rename is described in notes (a new array of
 * strings, may be NULL).  Returns a new array (empty when nothing changed)
 * or NULL with err filled (an explicit rename that does not fit). */
DORM_EXTERN json_t *dorm_autodetect(const dorm_schema *from,
                                    const dorm_schema *to,
                                    const dorm_autodetect_options *opts,
                                    json_t **notes, dorm_error *err);
/* A migration name fragment for the operations, Django style:
 * "author_age", "remove_author_age", "initial" (first migration).  Writes
 * into buf (len bytes) and returns 0; returns -1 with buf "" when the
 * fragments would be longer than 52 bytes (the caller then uses Django's
 * "auto_YYYYMMDD_HHMM"). */
DORM_EXTERN int dorm_migration_auto_name(const json_t *ops, int initial,
                                         char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* DORM_MIGRATION_H */
