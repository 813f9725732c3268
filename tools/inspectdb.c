#include "tools/cli.h"
int cmd_inspectdb(int argc, char **argv) { return cli_error("inspectdb: not yet"); }
