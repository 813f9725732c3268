/* SPDX-License-Identifier: MIT */
/* migrate/migrate.c — dorm_async_migrate: the engine behind `dorm migrate`.
 *
 * One job per call, driven by the deferreds of its own requests: read the
 * applied set (dorm_migrations), compute the plan, create the table, then
 * for each step compile the migration (all its SQL before its transaction
 * starts, so one that cannot compile never touches the database) and run
 * it in a transaction of its own, one request after another (a failed
 * statement must stop the rest: SQLite would otherwise go on after an
 * error inside a transaction):
 *
 *   [PostgreSQL] SELECT pg_advisory_xact_lock(...)   two migrates queue here
 *   [SQLite]     BEGIN IMMEDIATE (dorm_async_atomic)  ... or here
 *   is it still (un)applied?   a concurrent migrate may have done it: skip
 *   the statements of each operation, in order
 *   [SQLite]     PRAGMA foreign_key_check must return no row
 *   INSERT INTO / DELETE FROM dorm_migrations
 *   COMMIT, or ROLLBACK on any error (schema and dorm_migrations untouched)
 *
 * On SQLite, PRAGMA foreign_keys = OFF goes before the transaction (it is
 * a no-op inside one) so a table rebuild's DROP TABLE does not cascade,
 * and ON again after it; both are sent on the writer connection, which is
 * the one the transaction uses.  The job frees itself when it fires its
 * deferred, exactly once.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/db_int.h"
#include "base/base_int.h"
#include "dorm/migrate.h"
#include "dorm/rows.h"

/* ---- checks before the database ------------------------------------------
 */

int dorm_migrate_check(const dorm_migration_set *set, const char *dir,
                       const char *target, dorm_error *err) {
  /* Two histories that both end somewhere (Django's "multiple leaf
   * nodes"): which order they would run in is a guess, so refuse before
   * the database is touched, as makemigrations does. */
  size_t leaves[8];
  size_t nleaves = dorm_migrations_leaves(set, leaves, 8);
  if (nleaves > 1) {
    char names[1024];
    size_t n = 0, shown = nleaves < 8 ? nleaves : 8;
    names[0] = '\0';
    for (size_t k = 0; k < shown && n < sizeof names; k++)
      n += (size_t)snprintf(names + n, sizeof names - n, "%s%s",
                            k == 0             ? ""
                            : k + 1 == nleaves ? " and "
                                               : ", ",
                            set->migs[leaves[k]].name);
    return dorm_error_set(
        err, DORM_EMIGRATION,
        "conflicting migrations: %s%s %s end the history (make one depend "
        "on the other); nothing was applied",
        names, nleaves > shown ? " and more" : "",
        nleaves == 2 ? "both" : "all");
  }
  if (target && strcmp(target, "zero")) {
    long t = dorm_migrations_find(set, target);
    if (t == -2)
      return dorm_error_set(err, DORM_EMIGRATION,
                            "more than one migration starts with '%s'", target);
    if (t < 0)
      return dorm_error_set(err, DORM_EMIGRATION,
                            "no migration named '%s' in %s", target,
                            dir ? dir : "the migrations");
  }
  return 0;
}

/* ---- the job
 * -----------------------------------------------------------------
 */

typedef struct step {
  size_t mig;
  int backwards;
} step;

typedef struct job job;

typedef struct op_arg {
  job *j;
  size_t k;
} op_arg;

struct job {
  dorm_db *db;
  dorm_deferred *out;        /* ours until fired */
  dorm_migration_set *owned; /* loaded here, or NULL */
  const dorm_migration_set *set;
  char *dir;
  char *target_name; /* as given: NULL, a name or prefix, "zero" */
  long target;       /* -1: none */
  int zero, sqlite;
  dorm_migrate_options opt;
  dorm_error pending; /* an error found before the first request */
  char **applied;
  size_t napplied;
  step *steps;
  size_t nsteps, cur;
  dorm_mstate *st;
  char *create_error; /* CREATE TABLE failed: its message */
  /* the migration running */
  const dorm_migration *m;
  int backwards;
  dorm_ddl *ddls; /* one per operation, in running order */
  size_t nops;
  op_arg *args;
  dorm_db *tx;
  long current;        /* operation running, or -1 */
  int skipped;         /* a concurrent migrate got there first */
  dorm_result failure; /* the migration's error, until PRAGMA ON is back */
  int failed;
  int cancelled; /* out was cancelled: start no further migration */
  int body_oom;  /* the block's chain could not be built */
};

typedef dorm_result (*step_fn)(dorm_result *res, void *arg);

static void free_migration(job *j) {
  for (size_t k = 0; j->ddls && k < j->nops; k++) dorm_ddl_free(&j->ddls[k]);
  dorm__free(j->ddls);
  dorm__free(j->args);
  j->ddls = NULL;
  j->args = NULL;
  j->nops = 0;
}

static void job_free(job *j) {
  free_migration(j);
  for (size_t i = 0; i < j->napplied; i++) dorm__free(j->applied[i]);
  dorm__free(j->applied);
  dorm__free(j->steps);
  dorm__free(j->dir);
  dorm__free(j->target_name);
  dorm__free(j->create_error);
  dorm_mstate_free(j->st);
  dorm_migration_set_free(j->owned);
  if (j->failed) dorm_result_free(&j->failure);
  dorm__free(j);
}

/* Fire the job's deferred with r and free the job. */
static void finish(job *j, dorm_result r) {
  dorm_deferred *out = j->out;
  job_free(j);
  dorm_deferred_fire(out, r);
}

static int is_applied(const job *j, const char *name) {
  for (size_t i = 0; i < j->napplied; i++)
    if (!strcmp(j->applied[i], name)) return 1;
  return 0;
}

/* Send sql and continue in fn whatever its result.  0, or -1 when out of
 * memory (fn will not run). */
static int send_sql(job *j, dorm_db *db, const char *sql, const dorm_value *p,
                    size_t n, step_fn fn) {
  dorm_deferred *d = dorm_async_execute(db, sql, p, n);
  if (!d) return -1;
  if (dorm_deferred_add_both(d, fn, j)) {
    dorm_deferred_cancel(d);
    return -1;
  }
  return 0;
}

static void next_migration(job *j);
static void plan(job *j);

static dorm_result oom(job *j) {
  finish(j, dorm_result_error(DORM_ENOMEM, NULL));
  return dorm_result_none();
}

/* ---- the applied set
 * ---------------------------------------------------------
 */

static const char *exists_sql(int sqlite) {
  return sqlite ? "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name "
                  "= 'dorm_migrations'"
                : "SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = "
                  "'dorm_migrations' AND schemaname = current_schema()";
}

/* dorm_async_migrations_applied: the table's existence, then its names. */
typedef struct applied_req {
  dorm_db *db;
  dorm_deferred *out;
} applied_req;

static void names_free(void *p) {
  dorm_migration_names *n = p;
  for (size_t i = 0; n && i < n->n; i++) dorm__free(n->names[i]);
  if (n) dorm__free(n->names);
  dorm__free(n);
}

static dorm_result error_copy(const dorm_result *res) {
  return dorm_result_error_sql(dorm_result_code(res), res->u.error.sqlstate,
                               "%s", dorm_result_message(res));
}

static void applied_end(applied_req *q, dorm_result r) {
  dorm_deferred *out = q->out;
  dorm__free(q);
  dorm_deferred_fire(out, r);
}

static dorm_result applied_names(dorm_result *res, void *arg) {
  applied_req *q = arg;
  if (dorm_result_is_error(res)) {
    applied_end(q, error_copy(res));
    return dorm_result_none();
  }
  const dorm_rows *rows = dorm_result_rows_of(res);
  size_t n = rows ? dorm_rows_count(rows) : 0;
  dorm_migration_names *names = dorm__calloc(1, sizeof *names);
  if (names) names->names = dorm__calloc(n ? n : 1, sizeof *names->names);
  for (size_t i = 0; names && names->names && i < n; i++) {
    const dorm_value *v = dorm_row_value_at(dorm_rows_row(rows, i), 0);
    char *s = v && v->type != DORM_T_NULL
                  ? dorm__strndup(v->u.s.ptr, v->u.s.len)
                  : dorm__strdup("?");
    if (!s) break;
    names->names[names->n++] = s;
  }
  if (!names || !names->names || names->n != n) {
    names_free(names);
    applied_end(q, dorm_result_error(DORM_ENOMEM, NULL));
    return dorm_result_none();
  }
  applied_end(q, dorm_result_ptr(names, names_free));
  return dorm_result_none();
}

static dorm_result applied_exists(dorm_result *res, void *arg) {
  applied_req *q = arg;
  if (dorm_result_is_error(res)) {
    applied_end(q, error_copy(res));
    return dorm_result_none();
  }
  const dorm_rows *rows = dorm_result_rows_of(res);
  if (!rows || dorm_rows_count(rows) == 0) {
    /* no table: nothing applied */
    dorm_migration_names *names = dorm__calloc(1, sizeof *names);
    applied_end(q, names ? dorm_result_ptr(names, names_free)
                         : dorm_result_error(DORM_ENOMEM, NULL));
    return dorm_result_none();
  }
  dorm_deferred *d = dorm_async_execute(
      q->db, "SELECT \"name\" FROM \"dorm_migrations\" ORDER BY \"id\"", NULL,
      0);
  if (!d || dorm_deferred_add_both(d, applied_names, q)) {
    if (d) dorm_deferred_cancel(d);
    applied_end(q, dorm_result_error(DORM_ENOMEM, NULL));
  }
  return dorm_result_none();
}

dorm_deferred *dorm_async_migrations_applied(dorm_db *db) {
  applied_req *q = dorm__calloc(1, sizeof *q);
  if (!q) return NULL;
  q->db = db;
  if (!(q->out = dorm_deferred_new(NULL, NULL))) {
    dorm__free(q);
    return NULL;
  }
  dorm_deferred *d = dorm_async_execute(
      db, exists_sql(dorm_db_dialect(db) == DORM_DIALECT_SQLITE), NULL, 0);
  if (!d || dorm_deferred_add_both(d, applied_exists, q)) {
    if (d) dorm_deferred_cancel(d);
    dorm_deferred *out = q->out;
    dorm__free(q);
    /* nobody has seen it: fire it to give our reference back */
    dorm_deferred_fire(out, dorm_result_none());
    return NULL;
  }
  return q->out;
}

static dorm_result after_applied(dorm_result *res, void *arg) {
  job *j = arg;
  if (j->pending.code) {
    finish(j, dorm_result_error(j->pending.code, "%s", j->pending.message));
    return dorm_result_none();
  }
  if (dorm_result_is_error(res)) {
    finish(j, error_copy(res));
    return dorm_result_none();
  }
  /* the names move into the job; the empty holder goes with the chain */
  dorm_migration_names *names = res->u.ptr.ptr;
  j->applied = names->names;
  j->napplied = names->n;
  names->names = NULL;
  names->n = 0;
  plan(j);
  return dorm_result_none();
}

/* ---- the plan
 * ------------------------------------------------------------------
 */

/* mark[i] = 1 for migration `t` and everything it depends on. */
static void ancestors(const dorm_migration_set *set, size_t t, char *mark) {
  if (mark[t]) return;
  mark[t] = 1;
  for (size_t d = 0; d < set->migs[t].ndeps; d++) {
    long i = dorm_migrations_find(set, set->migs[t].deps[d]);
    if (i >= 0) ancestors(set, (size_t)i, mark);
  }
}

static dorm_result after_create(dorm_result *res, void *arg);

static void plan(job *j) {
  const dorm_migration_set *set = j->set;
  for (size_t i = 0; i < j->napplied; i++) {
    long k = dorm_migrations_find(set, j->applied[i]);
    if ((k < 0 || strcmp(set->migs[k].name, j->applied[i])) && j->opt.note) {
      char msg[768];
      snprintf(msg, sizeof msg,
               "%s is recorded as applied but has no file in %s", j->applied[i],
               j->dir);
      j->opt.note(j->opt.arg, msg);
    }
  }
  j->steps = dorm__calloc(set->n ? set->n : 1, sizeof *j->steps);
  char *mark = dorm__calloc(set->n ? set->n : 1, 1);
  if (!j->steps || !mark) {
    dorm__free(mark);
    oom(j);
    return;
  }
  long t = j->target;
  if (j->zero || (t >= 0 && is_applied(j, set->migs[t].name))) {
    /* Backwards: everything applied that depends on the target (or all). */
    for (size_t k = set->n; k-- > 0;) {
      if (!is_applied(j, set->migs[k].name)) continue;
      if (!j->zero) {
        memset(mark, 0, set->n);
        ancestors(set, k, mark);
        if (!mark[t] || k == (size_t)t) continue;
      }
      j->steps[j->nsteps++] = (step){k, 1};
    }
  } else {
    if (t >= 0) ancestors(set, (size_t)t, mark);
    for (size_t k = 0; k < set->n; k++) {
      if (t >= 0 && !mark[k]) continue;
      if (is_applied(j, set->migs[k].name)) continue;
      j->steps[j->nsteps++] = (step){k, 0};
    }
  }
  dorm__free(mark);
  if (j->opt.plan || !j->nsteps) {
    for (size_t s = 0; j->opt.plan && s < j->nsteps; s++)
      if (j->opt.progress)
        j->opt.progress(j->opt.arg, set->migs[j->steps[s].mig].name,
                        j->steps[s].backwards ? DORM_MIGRATE_BACKWARDS
                                              : DORM_MIGRATE_FORWARDS);
    finish(j, dorm_result_count((int64_t)j->nsteps));
    return;
  }
  const char *sql =
      j->sqlite
          ? "CREATE TABLE IF NOT EXISTS \"dorm_migrations\" (\"id\" integer "
            "NOT NULL PRIMARY KEY AUTOINCREMENT, \"name\" varchar(255) NOT "
            "NULL UNIQUE, \"applied_at\" datetime NOT NULL DEFAULT "
            "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
          : "CREATE TABLE IF NOT EXISTS \"dorm_migrations\" (\"id\" bigint "
            "NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, \"name\" "
            "varchar(255) NOT NULL UNIQUE, \"applied_at\" timestamp with "
            "time zone NOT NULL DEFAULT now())";
  if (send_sql(j, j->db, sql, NULL, 0, after_create)) oom(j);
}

/* The state of the database: the applied migrations, in order; then the
 * first step. */
static void start_running(job *j) {
  if (!(j->st = dorm_mstate_new())) {
    oom(j);
    return;
  }
  for (size_t k = 0; k < j->set->n; k++) {
    if (!is_applied(j, j->set->migs[k].name)) continue;
    dorm_error err;
    dorm_error_clear(&err);
    if (dorm_mstate_apply_migration(j->st, &j->set->migs[k], &err)) {
      finish(j, dorm_result_error(err.code, "%s", err.message));
      return;
    }
  }
  next_migration(j);
}

static dorm_result after_create_check(dorm_result *res, void *arg) {
  job *j = arg;
  const dorm_rows *rows =
      dorm_result_is_error(res) ? NULL : dorm_result_rows_of(res);
  if (!rows || dorm_rows_count(rows) == 0) {
    finish(j, dorm_result_error(DORM_EMIGRATION,
                                "cannot create dorm_migrations: %s",
                                j->create_error ? j->create_error : "?"));
    return dorm_result_none();
  }
  start_running(j);
  return dorm_result_none();
}

static dorm_result after_create(dorm_result *res, void *arg) {
  job *j = arg;
  if (dorm_result_is_error(res)) {
    /* Two migrates racing on PostgreSQL may both try to create it. */
    j->create_error = dorm__strdup(dorm_result_message(res));
    if (send_sql(j, j->db, exists_sql(j->sqlite), NULL, 0, after_create_check))
      return oom(j);
    return dorm_result_none();
  }
  start_running(j);
  return dorm_result_none();
}

/* ---- one migration
 * -------------------------------------------------------------
 */

static dorm_result step_lock(dorm_result *res, void *arg);

static dorm_result after_check(dorm_result *res, void *arg) {
  job *j = arg;
  const dorm_rows *rows = dorm_result_rows_of(res);
  int there = rows && dorm_rows_count(rows) > 0;
  /* Forwards it must be absent, backwards present; otherwise another
   * migrate did it meanwhile: nothing to do. */
  if (there != j->backwards) j->skipped = 1;
  return dorm_result_none();
}

static dorm_result step_op(dorm_result *res, void *arg) {
  op_arg *oa = arg;
  job *j = oa->j;
  if (j->skipped || j->opt.fake || j->ddls[oa->k].n == 0)
    return dorm_result_none();
  j->current = (long)oa->k;
  dorm_deferred *d = dorm_async_execute_many(
      j->tx, (const char *const *)j->ddls[oa->k].stmts, j->ddls[oa->k].n);
  if (!d) return dorm_result_error(DORM_ENOMEM, NULL);
  return dorm_result_deferred(d);
}

static dorm_result step_fk_check(dorm_result *res, void *arg) {
  job *j = arg;
  j->current = -1;
  if (j->skipped || !j->sqlite || j->opt.fake) return dorm_result_none();
  dorm_deferred *d =
      dorm_async_execute(j->tx, "PRAGMA foreign_key_check", NULL, 0);
  if (!d) return dorm_result_error(DORM_ENOMEM, NULL);
  return dorm_result_deferred(d);
}

static dorm_result after_fk_check(dorm_result *res, void *arg) {
  const dorm_rows *rows = dorm_result_rows_of(res);
  if (rows && dorm_rows_count(rows) > 0) {
    const dorm_row *row = dorm_rows_row(rows, 0);
    const dorm_value *t = dorm_row_value_at(row, 0);
    return dorm_result_error(
        DORM_EINTEGRITY,
        "PRAGMA foreign_key_check: %zu row(s) point at rows that do not "
        "exist (first in table %.*s)",
        dorm_rows_count(rows),
        t && t->type == DORM_T_TEXT ? (int)t->u.s.len : 1,
        t && t->type == DORM_T_TEXT ? t->u.s.ptr : "?");
  }
  (void)arg;
  return dorm_result_none();
}

static dorm_result step_record(dorm_result *res, void *arg) {
  job *j = arg;
  if (j->skipped) return dorm_result_none();
  dorm_value p = dorm_str(j->m->name);
  const char *sql =
      j->backwards
          ? (j->sqlite ? "DELETE FROM \"dorm_migrations\" WHERE \"name\" = ?"
                       : "DELETE FROM \"dorm_migrations\" WHERE \"name\" = $1")
          : (j->sqlite
                 ? "INSERT INTO \"dorm_migrations\" (\"name\") VALUES (?)"
                 : "INSERT INTO \"dorm_migrations\" (\"name\") VALUES ($1)");
  dorm_deferred *d = dorm_async_execute(j->tx, sql, &p, 1);
  if (!d) return dorm_result_error(DORM_ENOMEM, NULL);
  return dorm_result_deferred(d);
}

static dorm_deferred *body(dorm_db *tx, void *arg) {
  job *j = arg;
  j->tx = tx;
  dorm_deferred *d;
  int rc = 0;
  dorm_value p = dorm_str(j->m->name);
  if (!j->sqlite) {
    /* The key is "dorm" in ASCII (0x646f726d), recognisable in pg_locks. */
    d = dorm_async_execute(tx, "SELECT pg_advisory_xact_lock(1684107885)", NULL,
                           0);
    if (!d) return NULL;
    rc |= dorm_deferred_add_callback(d, step_lock, j);
  } else {
    d = dorm_async_execute(
        tx, "SELECT 1 FROM \"dorm_migrations\" WHERE \"name\" = ?", &p, 1);
    if (!d) return NULL;
  }
  rc |= dorm_deferred_add_callback(d, after_check, j);
  for (size_t k = 0; k < j->nops; k++)
    rc |= dorm_deferred_add_callback(d, step_op, &j->args[k]);
  rc |= dorm_deferred_add_callback(d, step_fk_check, j);
  rc |= dorm_deferred_add_callback(d, after_fk_check, j);
  rc |= dorm_deferred_add_callback(d, step_record, j);
  if (rc) {
    /* a step missing (out of memory): the chain must not run without it
     * (an operation unapplied, or applied and not recorded); the steps
     * added are callbacks, skipped on the cancel's error, which
     * after_atomic reports as the DORM_ENOMEM it is */
    j->body_oom = 1;
    dorm_deferred_cancel(d);
    return NULL;
  }
  return d;
}

/* PostgreSQL: once the lock is held, look at the applied set again. */
static dorm_result step_lock(dorm_result *res, void *arg) {
  job *j = arg;
  dorm_value p = dorm_str(j->m->name);
  dorm_deferred *d = dorm_async_execute(
      j->tx, "SELECT 1 FROM \"dorm_migrations\" WHERE \"name\" = $1", &p, 1);
  if (!d) return dorm_result_error(DORM_ENOMEM, NULL);
  return dorm_result_deferred(d);
}

static void finished(job *j, dorm_migrate_outcome o) {
  if (j->opt.finished) j->opt.finished(j->opt.arg, j->m->name, o);
}

/* After the migration and (SQLite) PRAGMA foreign_keys = ON. */
static void migration_over(job *j) {
  free_migration(j);
  if (j->failed) {
    dorm_result f = j->failure;
    j->failed = 0;
    finish(j, f);
    return;
  }
  j->cur++;
  next_migration(j);
}

static dorm_result after_fk_on(dorm_result *res, void *arg) {
  migration_over(arg);
  return dorm_result_none();
}

/* The migration's error as `dorm migrate` words it, with the code and
 * SQLSTATE of the statement that failed. */
static dorm_result failure_of(job *j, const dorm_result *res) {
  const char *msg = dorm_result_message(res);
  if (j->current >= 0) {
    size_t n = json_array_size(j->m->ops);
    size_t i = j->backwards ? n - 1 - (size_t)j->current : (size_t)j->current;
    char what[256];
    return dorm_result_error_sql(
        dorm_result_code(res), res->u.error.sqlstate,
        "migration %s failed at operation %zu (%s): %s; nothing of it was "
        "applied",
        j->m->name, i + 1,
        dorm_migration_op_describe(json_array_get(j->m->ops, i), what,
                                   sizeof what),
        msg);
  }
  return dorm_result_error_sql(
      dorm_result_code(res), res->u.error.sqlstate,
      "migration %s failed: %s; nothing of it was applied", j->m->name, msg);
}

static void after_body(job *j) {
  if (j->sqlite && !j->opt.fake) {
    if (send_sql(j, j->db, "PRAGMA foreign_keys = ON", NULL, 0, after_fk_on)) {
      /* the migration's own error says more than this one */
      if (j->failed)
        migration_over(j);
      else
        oom(j);
    }
    return;
  }
  migration_over(j);
}

static dorm_result after_atomic(dorm_result *res, void *arg) {
  job *j = arg;
  if (dorm_result_is_error(res)) {
    finished(j, DORM_MIGRATE_FAILED);
    dorm_result oom_res = dorm_result_error(DORM_ENOMEM, NULL);
    j->failure = failure_of(j, j->body_oom ? &oom_res : res);
    dorm_result_free(&oom_res);
    j->failed = 1;
  } else {
    finished(j, j->skipped    ? DORM_MIGRATE_SKIPPED
                : j->opt.fake ? DORM_MIGRATE_FAKED
                              : DORM_MIGRATE_OK);
  }
  after_body(j);
  return dorm_result_none();
}

static void start_atomic(job *j) {
  dorm_deferred *d = dorm_async_atomic(j->db, body, j);
  if (!d || dorm_deferred_add_both(d, after_atomic, j)) {
    if (d) dorm_deferred_cancel(d);
    finished(j, DORM_MIGRATE_FAILED);
    j->failure = dorm_result_error(DORM_ENOMEM, NULL);
    j->failed = 1;
    after_body(j);
  }
}

static dorm_result after_fk_off(dorm_result *res, void *arg) {
  job *j = arg;
  if (dorm_result_is_error(res)) {
    finished(j, DORM_MIGRATE_FAILED);
    finish(j,
           dorm_result_error_sql(dorm_result_code(res), res->u.error.sqlstate,
                                 "%s", dorm_result_message(res)));
    return dorm_result_none();
  }
  start_atomic(j);
  return dorm_result_none();
}

static void next_migration(job *j) {
  if (j->cancelled) {
    /* out has already fired with DORM_ECANCELED; this gives it back */
    finish(j, dorm_result_error(DORM_ECANCELED, NULL));
    return;
  }
  if (j->cur == j->nsteps) {
    finish(j, dorm_result_count((int64_t)j->nsteps));
    return;
  }
  const step *s = &j->steps[j->cur];
  j->m = &j->set->migs[s->mig];
  j->backwards = s->backwards;
  j->nops = json_array_size(j->m->ops);
  j->current = -1;
  j->skipped = 0;
  j->body_oom = 0;
  j->ddls = dorm__calloc(j->nops ? j->nops : 1, sizeof *j->ddls);
  j->args = dorm__calloc(j->nops ? j->nops : 1, sizeof *j->args);
  if (!j->ddls || !j->args) {
    oom(j);
    return;
  }
  for (size_t k = 0; k < j->nops; k++) {
    dorm_ddl_init(&j->ddls[k]);
    j->args[k] = (op_arg){j, k};
  }
  dorm_error err;
  dorm_error_clear(&err);
  if (dorm_migration_compile(j->st, j->m, j->backwards, dorm_db_dialect(j->db),
                             j->ddls, &err)) {
    finish(j, dorm_result_error(err.code, "%s", err.message));
    return;
  }
  if (j->opt.progress)
    j->opt.progress(
        j->opt.arg, j->m->name,
        j->backwards ? DORM_MIGRATE_BACKWARDS : DORM_MIGRATE_FORWARDS);
  if (j->sqlite && !j->opt.fake) {
    if (send_sql(j, j->db, "PRAGMA foreign_keys = OFF", NULL, 0, after_fk_off))
      oom(j);
    return;
  }
  start_atomic(j);
}

/* ---- the call
 * ------------------------------------------------------------------
 */

/* Cancelling the deferred: the migration running ends as it would (its
 * transaction commits or rolls back), and no further one starts. */
static void cancel_job(dorm_deferred *d, void *arg) {
  (void)d;
  ((job *)arg)->cancelled = 1;
}

/* Once the set is known (given, or read by load_dir): check it and the
 * target.  Errors found here are kept in j->pending and given by the first
 * request's callback (after_applied), so the deferred never fires before
 * dorm_async_migrate returns, and the order of events is the same
 * whichever way the set came. */
static void check_target(job *j) {
  if (j->set &&
      !dorm_migrate_check(j->set, j->dir, j->target_name, &j->pending) &&
      j->target_name) {
    if (!strcmp(j->target_name, "zero"))
      j->zero = 1;
    else
      j->target = dorm_migrations_find(j->set, j->target_name);
  }
}

/* Read what is applied, then after_applied.  0, or -1 when out of memory
 * (after_applied will not run). */
static int read_applied(job *j) {
  dorm_deferred *first = dorm_async_migrations_applied(j->db);
  if (!first || dorm_deferred_add_both(first, after_applied, j)) {
    if (first) dorm_deferred_cancel(first);
    return -1;
  }
  return 0;
}

/* On a worker thread: read the migrations folder (file I/O never runs on
 * the loop thread).  Only j->dir, j->owned and j->pending are touched
 * here; the loop thread reads them after the thread's deferred fires. */
static dorm_result load_dir(void *arg) {
  job *j = arg;
  j->owned = dorm_migrations_load(j->dir, &j->pending);
  return dorm_result_none();
}

static dorm_result after_load(dorm_result *res, void *arg) {
  job *j = arg;
  if (dorm_result_is_error(res)) { /* the thread job was cancelled */
    finish(j, j->cancelled ? dorm_result_error(DORM_ECANCELED, NULL)
                           : error_copy(res));
    return dorm_result_none();
  }
  if (j->cancelled) {
    finish(j, dorm_result_error(DORM_ECANCELED, NULL));
    return dorm_result_none();
  }
  j->set = j->owned;
  check_target(j);
  if (read_applied(j)) return oom(j);
  return dorm_result_none();
}

dorm_deferred *dorm_async_migrate(dorm_db *db, const char *dir,
                                  const char *target,
                                  const dorm_migrate_options *options) {
  if (!db) return NULL;
  job *j = dorm__calloc(1, sizeof *j);
  if (!j) return NULL;
  j->db = db;
  j->target = -1;
  j->sqlite = dorm_db_dialect(db) == DORM_DIALECT_SQLITE;
  if (options) j->opt = *options;
  dorm_error_clear(&j->pending);
  if (!dir) dir = "migrations";
  if (!(j->dir = dorm__strdup(dir)) ||
      (target && !(j->target_name = dorm__strdup(target)))) {
    job_free(j);
    return NULL;
  }
  if (!(j->out = dorm_deferred_new(cancel_job, j))) {
    job_free(j);
    return NULL;
  }
  int failed;
  if (j->opt.set) {
    j->set = j->opt.set;
    check_target(j);
    failed = read_applied(j);
  } else {
    /* the folder is read on a worker thread, then the plan goes on */
    dorm_deferred *load =
        dorm_run_in_thread(dorm__db_root(db)->loop, load_dir, j);
    failed = !load;
    /* the first step of a new deferred has room inline: this cannot fail
     * (and j could not be freed under the running thread if it did) */
    if (load) (void)dorm_deferred_add_both(load, after_load, j);
  }
  if (failed) {
    dorm_deferred *out = j->out;
    job_free(j);
    /* nobody has seen it: fire it to give our reference back */
    dorm_deferred_fire(out, dorm_result_none());
    return NULL;
  }
  return j->out;
}
