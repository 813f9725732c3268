/* SPDX-License-Identifier: MIT */
/* tools/dorm.c — the dorm command: dispatch to one file per command.
 *
 * Usage errors exit 2, other errors print "dorm: error: ..." and exit 1
 * (docs/cli.md, "Exit status").  `serve` lives in its own file, written by the
 * HTTP work; it is linked in when present (a weak reference), so this file does
 * not depend on it.
 */
#include <stdio.h>
#include <string.h>

#include "tools/cli.h"

/* Defined by tools/serve/serve.c when that file exists. */
int cmd_serve(int argc, char **argv) __attribute__((weak));

static void usage(FILE *out) {
  fputs(
      "usage: dorm COMMAND [options]\n"
      "\n"
      "commands:\n"
      "  makemigrations  write migrations for model changes\n"
      "  migrate         apply migrations to a database\n"
      "  sqlmigrate      print a migration's SQL\n"
      "  showmigrations  list migrations and whether they are applied\n"
      "  inspectdb       print models.json for an existing database\n"
      "  query           run a Django-style query expression\n"
      "  dumpdata        print the rows of models as a JSON fixture\n"
      "  loaddata        load JSON fixtures in one transaction\n"
      "  serve           HTTP JSON API over the models\n"
      "\n"
      "dorm --version | dorm --help | dorm COMMAND --help\n",
      out);
}

typedef int (*command_fn)(int argc, char **argv);

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_USAGE;
  }
  if (cli_is_help(argv[1])) {
    usage(stdout);
    return CLI_OK;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("dorm %s\n", dorm_version());
    return CLI_OK;
  }
  static const struct {
    const char *name;
    command_fn fn;
  } commands[] = {
      {"makemigrations", cmd_makemigrations},
      {"migrate", cmd_migrate},
      {"sqlmigrate", cmd_sqlmigrate},
      {"showmigrations", cmd_showmigrations},
      {"inspectdb", cmd_inspectdb},
      {"query", cmd_query},
      {"dumpdata", cmd_dumpdata},
      {"loaddata", cmd_loaddata},
  };
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name))
      return commands[i].fn(argc - 1, argv + 1);
  if (!strcmp(argv[1], "serve")) {
    if (cmd_serve) return cmd_serve(argc - 1, argv + 1);
    return cli_error("serve is not built into this dorm");
  }
  fprintf(stderr, "dorm: error: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return CLI_USAGE;
}
