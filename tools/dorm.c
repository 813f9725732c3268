/* tools/dorm.c — the dorm command: dispatch to one file per command.
 *
 * Usage errors exit 2, other errors print "dorm: error: ..." and exit 1.
 */
#include <stdio.h>
#include <string.h>

#include "dorm.h"

static void usage(FILE *out) {
  fputs("usage: dorm COMMAND [options]\n"
        "\n"
        "commands:\n"
        "  makemigrations  write migrations for model changes\n"
        "  migrate         apply migrations to a database\n"
        "  sqlmigrate      print a migration's SQL\n"
        "  showmigrations  list migrations and whether they are applied\n"
        "  inspectdb       print models.json for an existing database\n"
        "  query           run a Django-style query expression\n"
        "  serve           HTTP JSON API over the models\n"
        "\n"
        "dorm --version | dorm --help | dorm COMMAND --help\n",
        out);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("dorm %s\n", DORM_VERSION);
    return 0;
  }
  fprintf(stderr, "dorm: error: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
