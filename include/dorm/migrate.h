/* SPDX-License-Identifier: MIT */
/* dorm/migrate.h — running migrations from a program: what `dorm migrate`
 * does, as a library call, so an application (on SQLite, typically) can
 * bring its own database up to date at startup without the dorm command.
 *
 *   dorm_deferred *d = dorm_async_migrate(db, "migrations", NULL, NULL);
 *   dorm_deferred_add_callbacks(d, migrated, failed, app);
 *
 * The plan is computed from the folder and the table dorm_migrations (id,
 * name, applied_at) before anything runs: forwards to the latest, forwards
 * to a target (it and its ancestors), backwards to a target (everything
 * applied that depends on it, newest first), or "zero" (unapply all).  A
 * history with two leaves (two migrations nobody depends on) is refused
 * before the database is touched, naming both.  Each migration runs in its
 * own transaction, compiled before the transaction begins:
 *
 *   [PostgreSQL] SELECT pg_advisory_xact_lock(...)    two migrates queue
 *   [SQLite]     BEGIN IMMEDIATE                      ... or here
 *   skip it when a concurrent migrate has done it meanwhile
 *   the statements of each operation, in order
 *   [SQLite]     PRAGMA foreign_key_check must return no row
 *   INSERT INTO / DELETE FROM dorm_migrations, COMMIT (or ROLLBACK)
 *
 * On SQLite, PRAGMA foreign_keys = OFF goes before each transaction (a
 * table rebuild must not cascade) and ON after it.  A failing migration is
 * rolled back alone (those before it stay applied) and the deferred fails
 * with a message naming the migration and the operation.
 *
 * Pointers: everything passed in is borrowed for the call only, except
 * options->set and the progress arguments, which are borrowed until the
 * deferred has fired.  Names handed to the callbacks are borrowed for the
 * call.  Everything here runs on the loop thread.
 */
#ifndef DORM_MIGRATE_H
#define DORM_MIGRATE_H

#include <stddef.h>

#include "dorm/db.h"
#include "dorm/ddl.h"
#include "dorm/deferred.h"
#include "dorm/migration.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dorm_migrate_direction {
  DORM_MIGRATE_FORWARDS = 0, /* applying */
  DORM_MIGRATE_BACKWARDS     /* unapplying */
} dorm_migrate_direction;

/* How one migration ended (the finished callback). */
typedef enum dorm_migrate_outcome {
  DORM_MIGRATE_OK = 0,
  DORM_MIGRATE_FAKED,   /* recorded (or forgotten) without its SQL */
  DORM_MIGRATE_SKIPPED, /* a concurrent migrate did it meanwhile */
  DORM_MIGRATE_FAILED   /* rolled back; the deferred fails next */
} dorm_migrate_outcome;

/* Called before each migration runs (with plan set: once per planned
 * migration, and nothing runs).  migration_name is borrowed for the call. */
typedef void (*dorm_migrate_progress_fn)(void *arg, const char *migration_name,
                                         dorm_migrate_direction direction);
/* Called after each migration that progress announced. */
typedef void (*dorm_migrate_finished_fn)(void *arg, const char *migration_name,
                                         dorm_migrate_outcome outcome);
/* A warning that does not stop anything ("0003_x is recorded as applied
 * but has no file in migrations"); message borrowed for the call. */
typedef void (*dorm_migrate_note_fn)(void *arg, const char *message);

typedef struct dorm_migrate_options {
  dorm_migrate_progress_fn progress; /* may be NULL */
  dorm_migrate_finished_fn finished; /* may be NULL */
  dorm_migrate_note_fn note;         /* may be NULL */
  void *arg;                         /* passed to the three callbacks */
  int plan; /* 1: compute the plan, announce it through progress, change
               nothing (`dorm migrate --plan`) */
  int fake; /* 1: record (or forget) the migrations without running their
               SQL (`dorm migrate --fake`) */
  /* Migrations already loaded (dorm_migrations_load), used instead of
   * reading dir; borrowed until the deferred fires.  NULL: read dir. */
  const dorm_migration_set *set;
} dorm_migrate_options;

/* Bring db to target: NULL for every migration, a migration name or a
 * unique prefix ("0002"), or "zero" for none.  dir is the migrations
 * folder (a missing folder has no migrations); options may be NULL.
 * Returns a borrowed deferred (NULL when out of memory) that succeeds with
 * a count (dorm_result_count): the migrations applied or unapplied (with
 * plan, those planned), or fails with DORM_EMIGRATION and the message
 * `dorm migrate` prints (a file refused, two leaves, an unknown target, a
 * migration that does not compile) or with the error of the statement
 * that failed (its code and SQLSTATE; the message names the migration and
 * the operation).  db is a database handle (not a transaction handle of
 * dorm_async_atomic: each migration is a transaction of its own) and must
 * not be closed before the deferred fires.
 * dorm_deferred_cancel on it: the migration running ends as it would (its
 * transaction commits or rolls back), no further one starts, and the
 * deferred fails with DORM_ECANCELED. */
DORM_EXTERN dorm_deferred *dorm_async_migrate(
    dorm_db *db, const char *dir, const char *target,
    const dorm_migrate_options *options);

/* The names recorded in dorm_migrations, in the order they were applied. */
typedef struct dorm_migration_names {
  char **names; /* n names; the struct, the array and the names belong to
                   the result that carries them (dorm_result_free) */
  size_t n;
} dorm_migration_names;

/* The applied migrations of db (none when dorm_migrations does not exist;
 * nothing is created).  Returns a borrowed deferred (NULL when out of
 * memory) that succeeds with a pointer result: res->u.ptr.ptr is a
 * dorm_migration_names *, owned by the chain (dorm_result_take it to keep
 * it past the callback, then dorm_result_free), or fails with the
 * database's error. */
DORM_EXTERN dorm_deferred *dorm_async_migrations_applied(dorm_db *db);

/* The checks dorm_async_migrate makes before it touches the database: a
 * single leaf, and a target (NULL, "zero", a name or unique prefix) that
 * names one migration.  dir only names the folder in messages.  0, or
 * DORM_EMIGRATION with err filled. */
DORM_EXTERN int dorm_migrate_check(const dorm_migration_set *set,
                                   const char *dir, const char *target,
                                   dorm_error *err);

/* The SQL of one operation for a dialect, on the model state st before
 * it; st is advanced past the operation.  out (initialised with
 * dorm_ddl_init, the caller's to dorm_ddl_free) receives the statements.
 * 0, or an error code with err filled. */
DORM_EXTERN int dorm_migration_op_sql(dorm_mstate *st, const json_t *op,
                                      dorm_dialect d, dorm_ddl *out,
                                      dorm_error *err);

/* The SQL of every operation of m, forwards (st: the state before m) or
 * backwards (st: the state after m), in running order: ddls[k] (n =
 * json_array_size(m->ops) of them, the caller's: dorm_ddl_init'ed before,
 * dorm_ddl_free'd after) is the k-th operation to run, which is operation
 * n-1-k of the file when backwards.  st is advanced.  0, or an error code
 * with err naming the file and the operation. */
DORM_EXTERN int dorm_migration_compile(dorm_mstate *st, const dorm_migration *m,
                                       int backwards, dorm_dialect d,
                                       dorm_ddl *ddls, dorm_error *err);

/* A new state with migrations [0, upto) of set applied (the caller's to
 * dorm_mstate_free), or NULL with err filled. */
DORM_EXTERN dorm_mstate *dorm_migrations_replay(const dorm_migration_set *set,
                                                size_t upto, dorm_error *err);

#ifdef __cplusplus
}
#endif
#endif /* DORM_MIGRATE_H */
