/* SPDX-License-Identifier: MIT */
/* tools/cli.h — what the dorm command's files share: option parsing,
 * messages and exit statuses, reading files, running a loop until a
 * deferred fires.  (Migration operations become SQL in the library:
 * include/dorm/migrate.h.)
 *
 * Exit statuses (docs/cli.md, "Exit status"): 0 success, 1 an error ("dorm:
 * error: ..." on stderr), 2 a usage error.  Tools may use malloc; everything
 * returned here is malloc'd unless said otherwise.
 */
#ifndef DORM_TOOLS_CLI_H
#define DORM_TOOLS_CLI_H

#include <stdio.h>

#include "dorm.h"
#include "dorm/migrate.h"
#include "dorm/migration.h"

enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

/* "dorm: error: <message>\n" on stderr; returns CLI_ERROR. */
int cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* "dorm <cmd>: <message>\n" and the command's usage line on stderr;
 * returns CLI_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* "dorm: warning: ..." / "dorm: note: ..." on stderr. */
void cli_warn(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* ---- options (tools/cli_opts.c) ------------------------------------------
 *
 * A command lists its options in a table ended by CLI_OPT_END and parses
 * argv with cli_parse.  Values stored are borrowed from argv; the table
 * and its strings are the caller's (cli_parse keeps nothing); the
 * messages fn returns are static. */
typedef enum cli_opt_kind {
  CLI_OPT_FLAG, /* no value: *(int *)dest = 1 */
  CLI_OPT_STR,  /* *(const char **)dest = the value (the last one wins) */
  CLI_OPT_NUM,  /* *(unsigned long long *)dest = the value: digits only,
                   from min to max */
  CLI_OPT_FN    /* fn(dest, value) at each occurrence (repeatable or
                   checked options): NULL, or why the value is refused */
} cli_opt_kind;

typedef struct cli_opt {
  const char *name; /* "--db"; NULL ends the table */
  cli_opt_kind kind;
  void *dest;      /* where the value goes (see the kinds) */
  const char *arg; /* the value in help and messages: "URL" */
  /* the --help text; '\n' continues it on the next line; NULL: the
   * option is not listed */
  const char *help;
  unsigned long long min, max;                      /* CLI_OPT_NUM */
  const char *(*fn)(void *dest, const char *value); /* CLI_OPT_FN */
} cli_opt;

#define CLI_FLAG(name, dest, help) \
  { name, CLI_OPT_FLAG, dest, NULL, help, 0, 0, NULL }
#define CLI_STR(name, dest, arg, help) \
  { name, CLI_OPT_STR, dest, arg, help, 0, 0, NULL }
#define CLI_NUM(name, dest, arg, min, max, help) \
  { name, CLI_OPT_NUM, dest, arg, help, min, max, NULL }
#define CLI_FN(name, fn, dest, arg, help) \
  { name, CLI_OPT_FN, dest, arg, help, 0, 0, fn }
#define CLI_OPT_END \
  { NULL, CLI_OPT_FLAG, NULL, NULL, NULL, 0, 0, NULL }

typedef struct cli_command {
  const char *name;  /* "migrate": messages read "dorm migrate: ..." */
  const char *usage; /* "usage: dorm migrate ...\n" (--help, usage errors) */
  const char *about; /* --help: after the usage, before the options */
  const char *after; /* --help: after the options (the exit statuses) */
  const cli_opt *opts;
  /* The one positional argument (NULL: the command takes none; an
   * argument starting with '-' is always an option). */
  const char **pos;
  const char *pos_missing; /* the error when it is absent; NULL: optional */
  const char *pos_extra;   /* the error when a second one comes */
  /* Commands taking any number of positional arguments (dumpdata's
   * models, loaddata's files) set many instead of pos: each one is stored
   * in many[(*nmany)++]; the caller's array holds argc entries.  With
   * pos_missing set, at least one is required. */
  const char **many;
  size_t *nmany;
} cli_command;

/* cli_parse's "go on": the options are stored. */
enum { CLI_GO = -1 };
/* Parse argv[1..argc) against c.  CLI_GO when the command should run;
 * otherwise its exit status: CLI_OK after --help (printed on stdout),
 * CLI_USAGE after a usage error (reported with c->usage on stderr). */
int cli_parse(const cli_command *c, int argc, char **argv);
/* 1 when argv[i] is --help or -h. */
int cli_is_help(const char *arg);

/* The database URL: the option, else $DATABASE_URL, else the default. */
const char *cli_db_url(const char *opt);
/* $DATABASE_REPLICA_URLS when url is a PostgreSQL database (read-only
 * commands send their reads to the replicas), else NULL. */
const char *cli_db_replicas(const char *url);
/* The dialect a URL names (postgresql:// postgres:// or a conninfo with
 * '=' : PostgreSQL; anything else SQLite). */
dorm_dialect cli_url_dialect(const char *url);

/* Print JSON for people: values that fit on a line of 100 characters stay
 * on one line, longer ones open one level at a time (indent: the current
 * column).  No newline at the end. */
void cli_print_json(FILE *f, json_t *j, int indent);

/* ---- migrations ---------------------------------------------------------- */

/* Load the folder and replay migrations [0, upto) into a new state;
 * *set and *st are the caller's (free both).  0 or CLI_ERROR (reported). */
int cli_load_migrations(const char *dir, dorm_migration_set **set);
/* The same for a folder the user named (--migrations): one that does not
 * exist is an error naming it (a typo must not look like "nothing to
 * apply", nor create the database). */
int cli_load_existing_migrations(const char *dir, dorm_migration_set **set);
/* 1 when url names a SQLite file (sqlite:///path) that does not exist,
 * its path decoded into path (cap bytes); else 0.  A command that only
 * reads checks this first: opening would create an empty database. */
int cli_sqlite_missing(const char *url, char *path, size_t cap);
int cli_replay(const dorm_migration_set *set, size_t upto, dorm_mstate **st);

/* ---- running on a loop ----------------------------------------------------
 */

/* A loop for one command: init, run until done, close. */
typedef struct cli_loop {
  uv_loop_t uv;
  dorm_loop *loop;
} cli_loop;
int cli_loop_init(cli_loop *l);
void cli_loop_close(cli_loop *l);
/* Run the loop until d has fired; the result is moved into *out (free
 * with dorm_result_free).  d is borrowed (as dorm_async_* return it). */
int cli_wait(cli_loop *l, dorm_deferred *d, dorm_result *out);
/* Close db and run the loop until it is closed. */
void cli_db_close(cli_loop *l, dorm_db *db);

/* Commands (one file each). */
int cmd_makemigrations(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_showmigrations(int argc, char **argv);
int cmd_sqlmigrate(int argc, char **argv);
int cmd_inspectdb(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_dumpdata(int argc, char **argv);
int cmd_loaddata(int argc, char **argv);

#endif /* DORM_TOOLS_CLI_H */
