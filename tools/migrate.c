/* SPDX-License-Identifier: MIT */
/* tools/migrate.c — `dorm migrate` and `dorm showmigrations`.
 *
 * `dorm migrate` is a shell over dorm_async_migrate (include/dorm/migrate.h,
 * migrate/migrate.c), which plans and runs the migrations: this file reads
 * the options, loads and checks the folder before the database is opened
 * (an unknown target must not create a SQLite file), and prints the
 * library's progress the way the command always has.  `dorm
 * showmigrations` lists the folder against dorm_async_migrations_applied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli.h"

static const char usage_migrate[] =
    "usage: dorm migrate [--db URL] [--migrations DIR] [TARGET | zero] "
    "[--plan] [--fake]\n";
static const char help_migrate[] =
    "\n"
    "Apply the migrations to a database: all of them, up to TARGET (a\n"
    "name or unique prefix; backwards when TARGET is applied: everything\n"
    "after it is unapplied), or `zero` (unapply everything).\n";
static const char after_migrate[] =
    "\n"
    "Each migration runs in one transaction; a failing migration leaves\n"
    "the schema and dorm_migrations as they were and names the operation\n"
    "that failed.  A history with two leaves (two migrations nobody\n"
    "depends on) is refused before anything runs.  Progress goes to\n"
    "stderr.\n"
    "\n"
    "exit status: 0 done, 1 error, 2 usage error\n";

static const char usage_show[] =
    "usage: dorm showmigrations [--db URL] [--migrations DIR]\n";
static const char help_show[] =
    "\n"
    "List the migrations in running order: [X] applied, [ ] not yet.\n";
static const char after_show[] =
    "\nexit status: 0 done, 1 error, 2 usage error\n";

/* ---- the applied set
 * ---------------------------------------------------------
 */

typedef dorm_migration_names applied;

static int is_applied(const applied *a, const char *name) {
  for (size_t i = 0; i < a->n; i++)
    if (!strcmp(a->names[i], name)) return 1;
  return 0;
}

/* The library's list of applied migrations: *res holds it (the caller's
 * to dorm_result_free), *out points into it.  0 or CLI_ERROR (reported). */
static int read_applied(cli_loop *l, dorm_db *db, dorm_result *res,
                        const applied **out) {
  if (cli_wait(l, dorm_async_migrations_applied(db), res)) {
    cli_error("%s", dorm_result_message(res));
    return CLI_ERROR;
  }
  *out = res->u.ptr.ptr;
  return 0;
}

/* ---- the commands
 * ------------------------------------------------------------- */

static int open_db(cli_loop *l, const char *url, dorm_db **db) {
  dorm_error err;
  dorm_error_clear(&err);
  *db = dorm_db_open(l->loop, url, NULL, &err);
  if (!*db) return cli_error("%s", err.message);
  dorm_result res;
  if (cli_wait(l, dorm_db_ready(*db), &res)) {
    cli_error("%s", dorm_result_message(&res));
    dorm_result_free(&res);
    return CLI_ERROR;
  }
  dorm_result_free(&res);
  return 0;
}

/* What the library reports, printed as `dorm migrate` always has. */
typedef struct show {
  const dorm_migration_set *set;
  int plan;
  size_t announced; /* migrations announced so far */
} show;

static void on_progress(void *arg, const char *name,
                        dorm_migrate_direction dir) {
  show *s = arg;
  int back = dir == DORM_MIGRATE_BACKWARDS;
  if (!s->plan) {
    if (!s->announced++) fprintf(stderr, "Running migrations:\n");
    fprintf(stderr, "  %s %s...", back ? "Unapplying" : "Applying", name);
    fflush(stderr);
    return;
  }
  if (!s->announced++) printf("Planned operations:\n");
  const dorm_migration *m = &s->set->migs[dorm_migrations_find(s->set, name)];
  printf("%s%s\n", m->name, back ? " (backwards)" : "");
  size_t n = json_array_size(m->ops);
  for (size_t k = 0; k < n; k++) {
    size_t i = back ? n - 1 - k : k;
    char what[256];
    printf("    %s%s\n", back ? "Undo " : "",
           dorm_migration_op_describe(json_array_get(m->ops, i), what,
                                      sizeof what));
  }
}

static void on_finished(void *arg, const char *name, dorm_migrate_outcome o) {
  (void)arg;
  (void)name;
  fprintf(stderr, "%s\n",
          o == DORM_MIGRATE_FAILED    ? " FAILED"
          : o == DORM_MIGRATE_SKIPPED ? " skipped (done by another migrate)"
          : o == DORM_MIGRATE_FAKED   ? " FAKED"
                                      : " OK");
}

static void on_note(void *arg, const char *message) {
  (void)arg;
  cli_warn("warning: %s", message);
}

int cmd_migrate(int argc, char **argv) {
  const char *dbo = NULL, *dir = NULL, *target = NULL;
  int dir_given = 0;
  int plan = 0, fake = 0;
  const cli_opt opts[] = {
      CLI_STR("--db", &dbo, "URL",
              "the database (default $DATABASE_URL, else\n"
              "sqlite:///db.sqlite3)"),
      CLI_STR("--migrations", &dir, "DIR",
              "the migrations folder (default migrations)"),
      CLI_FLAG("--plan", &plan, "print what would run; change nothing"),
      CLI_FLAG("--fake", &fake,
               "record (or forget) migrations as applied without\n"
               "running their SQL"),
      CLI_OPT_END};
  const cli_command cmd = {.name = "migrate",
                           .usage = usage_migrate,
                           .about = help_migrate,
                           .after = after_migrate,
                           .opts = opts,
                           .pos = &target,
                           .pos_extra = "one target only"};
  int prc = cli_parse(&cmd, argc, argv);
  if (prc != CLI_GO) return prc;
  dir_given = dir != NULL;
  if (!dir) dir = "migrations";
  dorm_migration_set *set = NULL;
  /* a folder the user named must exist; the default may not yet */
  if ((dir_given ? cli_load_existing_migrations(dir, &set)
                 : cli_load_migrations(dir, &set)))
    return CLI_ERROR;
  /* two leaves, an unknown target: refused before the database opens */
  dorm_error err;
  dorm_error_clear(&err);
  if (dorm_migrate_check(set, dir, target, &err)) {
    dorm_migration_set_free(set);
    return cli_error("%s", err.message);
  }
  cli_loop l;
  if (cli_loop_init(&l)) {
    dorm_migration_set_free(set);
    return CLI_ERROR;
  }
  dorm_db *db = NULL;
  int rc = CLI_ERROR;
  if (open_db(&l, cli_db_url(dbo), &db)) goto out;
  show s = {set, plan, 0};
  dorm_migrate_options o = {on_progress, on_finished, on_note, &s,
                            plan,        fake,        set};
  dorm_result res;
  if (cli_wait(&l, dorm_async_migrate(db, dir, target, &o), &res)) {
    cli_error("%s", dorm_result_message(&res));
    dorm_result_free(&res);
    goto out;
  }
  dorm_result_free(&res);
  if (plan && !s.announced)
    printf("Planned operations:\n  No planned migration operations.\n");
  else if (!plan && !s.announced)
    printf("No migrations to apply.\n");
  /* the default folder not made yet: say where the migrations come from */
  if (!dir_given && !s.announced && access(dir, F_OK) != 0)
    fprintf(stderr,
            "note: there is no '%s' folder here; `dorm makemigrations` "
            "writes the first migration\n",
            dir);
  rc = CLI_OK;
out:
  if (db) cli_db_close(&l, db);
  cli_loop_close(&l);
  dorm_migration_set_free(set);
  return rc;
}

int cmd_showmigrations(int argc, char **argv) {
  const char *dbo = NULL, *dir = NULL;
  int dir_given = 0;
  const cli_opt opts[] = {CLI_STR("--db", &dbo, "URL",
                                  "the database (default $DATABASE_URL, else\n"
                                  "sqlite:///db.sqlite3)"),
                          CLI_STR("--migrations", &dir, "DIR",
                                  "the migrations folder (default migrations)"),
                          CLI_OPT_END};
  const cli_command cmd = {.name = "showmigrations",
                           .usage = usage_show,
                           .about = help_show,
                           .after = after_show,
                           .opts = opts};
  int prc = cli_parse(&cmd, argc, argv);
  if (prc != CLI_GO) return prc;
  dir_given = dir != NULL;
  if (!dir) dir = "migrations";
  dorm_migration_set *set = NULL;
  /* a folder the user named must exist; the default may not yet */
  if ((dir_given ? cli_load_existing_migrations(dir, &set)
                 : cli_load_migrations(dir, &set)))
    return CLI_ERROR;
  cli_loop l;
  if (cli_loop_init(&l)) {
    dorm_migration_set_free(set);
    return CLI_ERROR;
  }
  dorm_db *db = NULL;
  applied none = {NULL, 0};
  const applied *ap = NULL;
  dorm_result res = dorm_result_none();
  int rc = CLI_ERROR;
  char path[1024];
  /* a SQLite file not made yet: nothing applied, and nothing created */
  if (!cli_sqlite_missing(cli_db_url(dbo), path, sizeof path) &&
      (open_db(&l, cli_db_url(dbo), &db) || read_applied(&l, db, &res, &ap)))
    goto out;
  const applied *a = ap ? ap : &none;
  for (size_t i = 0; i < set->n; i++)
    printf("[%c] %s\n", is_applied(a, set->migs[i].name) ? 'X' : ' ',
           set->migs[i].name);
  for (size_t i = 0; i < a->n; i++)
    if (dorm_migrations_find(set, a->names[i]) < 0)
      printf("[X] %s (no file)\n", a->names[i]);
  if (!set->n && !a->n) printf("(no migrations)\n");
  rc = CLI_OK;
out:
  if (db) cli_db_close(&l, db);
  cli_loop_close(&l);
  dorm_result_free(&res);
  dorm_migration_set_free(set);
  return rc;
}
