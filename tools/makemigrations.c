/* SPDX-License-Identifier: MIT */
/* tools/makemigrations.c — `dorm makemigrations`: compare the models file
 * with what the migrations build and write the next migration file.
 *
 * Like Django's: "No changes detected" when nothing differs; --check exits
 * 1 (writing nothing) when a migration is missing; --empty writes a
 * migration with no operations, for hand-written run_sql.  Renames are
 * never guessed silently: --rename-model Old=New and --rename
 * Model.old=new ask for them, an unambiguous pairing is detected and
 * reported on stderr, and --no-detect-renames turns detection off.
 *
 * The new migration is replayed onto the state and the result loaded as a
 * schema before the file is written, so a migration that would not apply
 * is never written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tools/cli.h"

static const char usage[] =
    "usage: dorm makemigrations [--models FILE] [--migrations DIR] "
    "[--name NAME]\n"
    "                           [--empty] [--check] [--dry-run]\n"
    "                           [--rename-model OLD=NEW]... "
    "[--rename MODEL.OLD=NEW]...\n"
    "                           [--no-detect-renames]\n";

static const char help[] =
    "\n"
    "Write the next migration: the operations that carry the models the\n"
    "migrations describe to the models file.\n";

static const char after[] =
    "\n"
    "exit status: 0 done (or no changes), 1 error (or --check found\n"
    "changes), 2 usage error\n";

static int name_ok(const char *s) {
  if (!*s || strlen(s) > 100) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_'))
      return 0;
  return 1;
}

static int mkdir_p(const char *dir) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", dir);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0777) && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0777) && errno != EEXIST) return -1;
  return 0;
}

/* The renames the options name, and the strings they own. */
typedef struct renames {
  dorm_rename models[64], fields[64];
  size_t nm, nf;
  char *owned[128];
  size_t nowned;
} renames;

static const char *opt_name(void *dest, const char *v) {
  if (!name_ok(v)) return "use letters, digits and _ only";
  *(const char **)dest = v;
  return NULL;
}

static const char *opt_rename_model(void *dest, const char *v) {
  renames *rn = dest;
  const char *eq = strchr(v, '=');
  if (!eq || eq == v || !eq[1]) return "expected OLD=NEW";
  if (rn->nm == 64) return "at most 64 model renames";
  char *o = strndup(v, (size_t)(eq - v));
  if (!o) return "out of memory";
  rn->owned[rn->nowned++] = o;
  rn->models[rn->nm++] = (dorm_rename){NULL, o, eq + 1};
  return NULL;
}

static const char *opt_rename(void *dest, const char *v) {
  renames *rn = dest;
  const char *dot = strchr(v, '.');
  const char *eq = dot ? strchr(dot, '=') : NULL;
  if (!eq || dot == v || eq == dot + 1 || !eq[1])
    return "expected MODEL.OLD=NEW";
  if (rn->nf == 64) return "at most 64 field renames";
  char *m = strndup(v, (size_t)(dot - v));
  char *o = strndup(dot + 1, (size_t)(eq - dot - 1));
  if (!m || !o) {
    free(m);
    free(o);
    return "out of memory";
  }
  rn->owned[rn->nowned++] = m;
  rn->owned[rn->nowned++] = o;
  rn->fields[rn->nf++] = (dorm_rename){m, o, eq + 1};
  return NULL;
}

int cmd_makemigrations(int argc, char **argv) {
  const char *models = "models.json", *dir = "migrations", *name = NULL;
  int empty = 0, check = 0, dry = 0, no_detect = 0;
  renames rn = {0};
  int rc = CLI_ERROR;
  const cli_opt opts[] = {
      CLI_STR("--models", &models, "FILE",
              "the models file (default models.json)"),
      CLI_STR("--migrations", &dir, "DIR",
              "the migrations folder (default migrations)"),
      CLI_FN("--name", opt_name, &name, "NAME",
             "name the migration NNNN_NAME (default: from\n"
             "its operations, as Django does)"),
      CLI_FLAG("--empty", &empty, "write a migration with no operations"),
      CLI_FLAG("--check", &check,
               "write nothing; exit 1 when a migration is\n"
               "missing, 0 when the models match"),
      CLI_FLAG("--dry-run", &dry, "print what would be written, write nothing"),
      CLI_FN("--rename-model", opt_rename_model, &rn, "OLD=NEW",
             "the model OLD was renamed NEW (repeatable)"),
      CLI_FN("--rename", opt_rename, &rn, "MODEL.OLD=NEW",
             "field OLD of MODEL was renamed NEW (repeatable)"),
      CLI_FLAG("--no-detect-renames", &no_detect,
               "never pair a removal with an addition"),
      CLI_OPT_END};
  const cli_command cmd = {.name = "makemigrations",
                           .usage = usage,
                           .about = help,
                           .after = after,
                           .opts = opts};
  int prc = cli_parse(&cmd, argc, argv);
  if (prc != CLI_GO) {
    rc = prc;
    goto done_args;
  }
  dorm_migration_set *set = NULL;
  dorm_mstate *st = NULL;
  dorm_schema *from = NULL, *to = NULL;
  json_t *ops = NULL, *notes = NULL, *doc = NULL;
  dorm_error err;
  dorm_error_clear(&err);
  if (cli_load_migrations(dir, &set)) goto out;
  size_t leaves[4];
  size_t nleaves = dorm_migrations_leaves(set, leaves, 4);
  if (nleaves > 1) {
    cli_error(
        "conflicting migrations: %s and %s both end the history "
        "(make one depend on the other)",
        set->migs[leaves[0]].name, set->migs[leaves[1]].name);
    goto out;
  }
  if (cli_replay(set, set->n, &st)) goto out;
  /* No models yet: no schema (loading an empty one trips UBSan in
   * schema/check.c's layout, memset(NULL, 0, 0); reported). */
  if (dorm_mstate_nmodels(st) &&
      !(from = dorm_mstate_schema(st, NULL, 0, &err))) {
    cli_error("the migrations do not describe valid models: %s", err.message);
    goto out;
  }
  if (!(to = dorm_schema_load_file(models, &err))) {
    cli_error("%s", err.message);
    goto out;
  }
  if (empty) {
    ops = json_array();
  } else {
    dorm_autodetect_options o = {rn.models, rn.nm, rn.fields, rn.nf, no_detect};
    ops = dorm_autodetect(from, to, &o, &notes, &err);
    if (!ops) {
      cli_error("%s", err.message);
      goto out;
    }
  }
  for (size_t i = 0; i < json_array_size(notes); i++)
    cli_warn("note: %s", json_string_value(json_array_get(notes, i)));
  if (!empty && json_array_size(ops) == 0) {
    printf("No changes detected\n");
    rc = CLI_OK;
    goto out;
  }
  /* The new migration must apply to the state and give valid models. */
  for (size_t i = 0; i < json_array_size(ops); i++)
    if (dorm_mstate_apply(st, json_array_get(ops, i), &err)) {
      cli_error("internal: operation %zu does not apply: %s", i + 1,
                err.message);
      goto out;
    }
  if (dorm_mstate_nmodels(st)) {
    dorm_schema *check_s = dorm_mstate_schema(st, NULL, 0, &err);
    if (!check_s) {
      cli_error("internal: the new migration gives invalid models: %s",
                err.message);
      goto out;
    }
    dorm_schema_free(check_s);
  }

  int number = 0;
  for (size_t i = 0; i < set->n; i++)
    if (set->migs[i].number > number) number = set->migs[i].number;
  number++;
  char frag[128];
  if (name)
    snprintf(frag, sizeof frag, "%s", name);
  else if (dorm_migration_auto_name(ops, set->n == 0, frag, sizeof frag)) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(frag, sizeof frag, "auto_%04d%02d%02d_%02d%02d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
  }
  char mname[160], path[4300];
  snprintf(mname, sizeof mname, "%04d_%s", number, frag);
  snprintf(path, sizeof path, "%s/%s.json", dir, mname);
  json_t *deps = json_array();
  /* a migration written without its dependency would apply out of order */
  if (deps && nleaves == 1 &&
      json_array_append_new(deps, json_string(set->migs[leaves[0]].name))) {
    json_decref(deps);
    deps = NULL;
  }
  doc = !deps ? NULL
              : json_pack("{sssoso}", "name", mname, "dependencies", deps,
                          "operations", json_incref(ops));
  if (!doc) {
    cli_error("out of memory");
    goto out;
  }
  printf("Migrations for '%s':\n  %s\n", models, path);
  for (size_t i = 0; i < json_array_size(ops); i++) {
    char what[256];
    printf("    - %s\n", dorm_migration_op_describe(json_array_get(ops, i),
                                                    what, sizeof what));
  }
  if (check) {
    rc = CLI_ERROR; /* Django: a missing migration is a failure */
    goto out;
  }
  if (dry) {
    cli_print_json(stdout, doc, 0);
    printf("\n");
    rc = CLI_OK;
    goto out;
  }
  if (mkdir_p(dir)) {
    cli_error("%s: cannot create: %s", dir, strerror(errno));
    goto out;
  }
  char tmp[4400];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f) {
    cli_print_json(f, doc, 0);
    fputc('\n', f);
  }
  if (!f || fclose(f)) {
    cli_error("%s: cannot write: %s", path, strerror(errno));
    remove(tmp);
    goto out;
  }
  if (rename(tmp, path)) {
    cli_error("%s: cannot write: %s", path, strerror(errno));
    remove(tmp);
    goto out;
  }
  rc = CLI_OK;
out:
  json_decref(doc);
  json_decref(ops);
  json_decref(notes);
  dorm_schema_free(from);
  dorm_schema_free(to);
  dorm_mstate_free(st);
  dorm_migration_set_free(set);
done_args:
  for (size_t i = 0; i < rn.nowned; i++) free(rn.owned[i]);
  return rc;
}
