/* SPDX-License-Identifier: MIT */
/* tools/sqlmigrate.c — `dorm sqlmigrate NAME`: the SQL a migration runs,
 * forwards or (--backwards) backwards, for PostgreSQL or SQLite, without a
 * database.
 *
 * The state before the migration is replayed from the migrations that
 * come before it; each operation is then compiled on the state it meets,
 * exactly as `dorm migrate` does, so what is printed is what would run
 * (wrapped in BEGIN/COMMIT, and on SQLite in the PRAGMA foreign_keys
 * dance that a table rebuild needs).  It prints a plain BEGIN where
 * `dorm migrate` sends BEGIN IMMEDIATE on SQLite, and leaves out migrate's
 * bookkeeping (lock, applied check, dorm_migrations row): the output is a
 * script for one session, where no other migrate competes for the lock
 * (docs/migrations.md, "SQLite: the table rebuild").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

static const char usage[] =
    "usage: dorm sqlmigrate [--migrations DIR] [--dialect postgresql|sqlite]"
    " [--backwards] NAME\n";

static const char help[] =
    "\n"
    "Print the SQL of migration NAME (a full name or a unique prefix such\n"
    "as 0002) without touching a database.\n";
static const char after[] = "\nexit status: 0 done, 1 error, 2 usage error\n";

/* One migration's statements, forwards or backwards, from state st (the
 * state before it when forwards, after it when backwards; advanced).
 * Prints SQL to out; errors name the operation. */
int cli_print_migration_sql(FILE *out, dorm_mstate *st, const dorm_migration *m,
                            int backwards, dorm_dialect d);

int cli_print_migration_sql(FILE *out, dorm_mstate *st, const dorm_migration *m,
                            int backwards, dorm_dialect d) {
  size_t n = json_array_size(m->ops);
  dorm_ddl *ddls = calloc(n ? n : 1, sizeof *ddls);
  if (!ddls) return cli_error("out of memory");
  int rc = 0;
  for (size_t k = 0; k < n; k++) dorm_ddl_init(&ddls[k]);
  dorm_error err;
  dorm_error_clear(&err);
  /* the library's compiler: the SQL `dorm migrate` would run */
  if (dorm_migration_compile(st, m, backwards, d, ddls, &err))
    rc = cli_error("%s",
                   err.code == DORM_ENOMEM ? "out of memory" : err.message);
  if (!rc) {
    int sqlite = d == DORM_DIALECT_SQLITE;
    if (sqlite) fprintf(out, "PRAGMA foreign_keys = OFF;\n");
    fprintf(out, "BEGIN;\n");
    for (size_t k = 0; k < n; k++) {
      size_t i = backwards ? n - 1 - k : k;
      char what[256];
      const json_t *op = json_array_get(m->ops, i);
      json_t *inv = backwards ? dorm_migration_op_invert(op, NULL) : NULL;
      fprintf(out, "--\n-- %s\n--\n",
              dorm_migration_op_describe(inv ? inv : op, what, sizeof what));
      json_decref(inv);
      if (ddls[k].n == 0) fprintf(out, "-- (no SQL to run)\n");
      for (size_t s = 0; s < ddls[k].n; s++)
        fprintf(out, "%s;\n", ddls[k].stmts[s]);
    }
    if (sqlite) fprintf(out, "PRAGMA foreign_key_check;\n");
    fprintf(out, "COMMIT;\n");
    if (sqlite) fprintf(out, "PRAGMA foreign_keys = ON;\n");
  }
  for (size_t i = 0; i < n; i++) dorm_ddl_free(&ddls[i]);
  free(ddls);
  return rc;
}

int cmd_sqlmigrate(int argc, char **argv) {
  const char *dir = "migrations", *dialect = NULL, *name = NULL;
  int backwards = 0;
  const cli_opt opts[] = {
      CLI_STR("--migrations", &dir, "DIR",
              "the migrations folder (default migrations)"),
      CLI_STR("--dialect", &dialect, "D",
              "postgresql or sqlite (default: the dialect of\n"
              "$DATABASE_URL, else sqlite)"),
      CLI_FLAG("--backwards", &backwards,
               "the SQL that unapplies the migration"),
      CLI_OPT_END};
  const cli_command cmd = {.name = "sqlmigrate",
                           .usage = usage,
                           .about = help,
                           .after = after,
                           .opts = opts,
                           .pos = &name,
                           .pos_missing = "which migration?",
                           .pos_extra = "one migration name only"};
  int prc = cli_parse(&cmd, argc, argv);
  if (prc != CLI_GO) return prc;
  dorm_dialect d;
  if (!dialect)
    d = cli_url_dialect(cli_db_url(NULL));
  else if (!strcmp(dialect, "postgresql") || !strcmp(dialect, "postgres"))
    d = DORM_DIALECT_POSTGRES;
  else if (!strcmp(dialect, "sqlite"))
    d = DORM_DIALECT_SQLITE;
  else
    return cli_usage_error(usage, "--dialect '%s': use postgresql or sqlite",
                           dialect);
  dorm_migration_set *set = NULL;
  dorm_mstate *st = NULL;
  int rc = CLI_ERROR;
  if (cli_load_migrations(dir, &set)) goto out;
  long idx = dorm_migrations_find(set, name);
  if (idx == -2) {
    cli_error("more than one migration starts with '%s'", name);
    goto out;
  }
  if (idx < 0) {
    cli_error("no migration named '%s' in %s", name, dir);
    goto out;
  }
  if (cli_replay(set, (size_t)idx + (backwards ? 1 : 0), &st)) goto out;
  if (cli_print_migration_sql(stdout, st, &set->migs[idx], backwards, d))
    goto out;
  rc = CLI_OK;
out:
  dorm_mstate_free(st);
  dorm_migration_set_free(set);
  return rc;
}
