/* tools/migrate.c — placeholder, replaced by the database commands. */
#include "tools/cli.h"
int cmd_migrate(int argc, char **argv) { return cli_error("migrate: not yet"); }
int cmd_showmigrations(int argc, char **argv) {
  return cli_error("showmigrations: not yet");
}
int cmd_inspectdb(int argc, char **argv) {
  return cli_error("inspectdb: not yet");
}
