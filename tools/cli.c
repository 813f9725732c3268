/* SPDX-License-Identifier: MIT */
/* tools/cli.c — helpers shared by the dorm command's files: messages and
 * exit statuses, options, the database URL, loading and replaying
 * migrations (with the messages the commands print), and a loop that runs
 * until a deferred fires.  Migration operations become SQL in the library
 * (migrate/op_sql.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/cli.h"

int cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("dorm: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_ERROR;
}

int cli_usage_error(const char *usage, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("dorm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fprintf(stderr, "%s", usage);
  return CLI_USAGE;
}

void cli_warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("dorm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int cli_is_help(const char *arg) {
  return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

const char *cli_db_url(const char *opt) {
  if (opt) return opt;
  const char *env = getenv("DATABASE_URL");
  if (env && *env) return env;
  return "sqlite:///db.sqlite3";
}

const char *cli_db_replicas(const char *url) {
  const char *env = getenv("DATABASE_REPLICA_URLS");
  if (!env || !*env || cli_url_dialect(url) != DORM_DIALECT_POSTGRES)
    return NULL;
  return env;
}

dorm_dialect cli_url_dialect(const char *url) {
  if (!strncmp(url, "postgresql:", 11) || !strncmp(url, "postgres:", 9))
    return DORM_DIALECT_POSTGRES;
  if (!strncmp(url, "sqlite:", 7)) return DORM_DIALECT_SQLITE;
  if (strchr(url, '=')) return DORM_DIALECT_POSTGRES;
  return DORM_DIALECT_SQLITE;
}

/* ---- migrations ---------------------------------------------------------- */

int cli_load_migrations(const char *dir, dorm_migration_set **set) {
  dorm_error err;
  dorm_error_clear(&err);
  *set = dorm_migrations_load(dir, &err);
  if (!*set) return cli_error("%s", err.message);
  return 0;
}

int cli_sqlite_missing(const char *url, char *path, size_t cap) {
  if (strncmp(url, "sqlite:///", 10)) return 0;
  const char *p = url + 10, *q = strchr(p, '?');
  size_t n = q ? (size_t)(q - p) : strlen(p);
  if (!n || n >= cap || (n == 8 && !strncmp(p, ":memory:", 8))) return 0;
  memcpy(path, p, n);
  dorm_http_url_decode(path, n); /* as the SQLite backend reads it */
  struct stat sb;
  return stat(path, &sb) != 0 && errno == ENOENT;
}

int cli_load_existing_migrations(const char *dir, dorm_migration_set **set) {
  struct stat sb;
  if (stat(dir, &sb) != 0) {
    if (errno == ENOENT)
      return cli_error(
          "migrations folder '%s' does not exist (run `dorm makemigrations` "
          "first, or name the folder with --migrations DIR)",
          dir);
    return cli_error("migrations folder '%s': %s", dir, strerror(errno));
  }
  if (!S_ISDIR(sb.st_mode))
    return cli_error("migrations folder '%s' is not a folder", dir);
  return cli_load_migrations(dir, set);
}

int cli_replay(const dorm_migration_set *set, size_t upto, dorm_mstate **st) {
  dorm_error err;
  dorm_error_clear(&err);
  *st = dorm_migrations_replay(set, upto, &err);
  if (!*st)
    return cli_error("%s",
                     err.code == DORM_ENOMEM ? "out of memory" : err.message);
  return 0;
}

/* Write j for people: a value that fits on one line of about 100
 * characters stays on one line ({"name": "age", "type": "integer"}),
 * anything longer is opened up one level at a time, so a field reads as
 * in models.json and the file diffs well. */
void cli_print_json(FILE *f, json_t *j, int indent) {
  size_t flags = JSON_PRESERVE_ORDER | JSON_ENCODE_ANY;
  char *one = json_dumps(j, flags);
  if (one &&
      (strlen(one) <= 100 || !(json_is_object(j) || json_is_array(j)) ||
       (json_is_object(j) ? json_object_size(j) : json_array_size(j)) == 0)) {
    fputs(one, f);
    free(one);
    return;
  }
  free(one);
  if (json_is_array(j)) {
    fputs("[\n", f);
    for (size_t i = 0; i < json_array_size(j); i++) {
      fprintf(f, "%*s", indent + 2, "");
      cli_print_json(f, json_array_get(j, i), indent + 2);
      fputs(i + 1 < json_array_size(j) ? ",\n" : "\n", f);
    }
    fprintf(f, "%*s]", indent, "");
    return;
  }
  fputs("{\n", f);
  size_t n = json_object_size(j), i = 0;
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    json_t *key = json_string(k);
    char *ks = key ? json_dumps(key, JSON_ENCODE_ANY) : NULL;
    fprintf(f, "%*s%s: ", indent + 2, "", ks ? ks : "\"?\"");
    free(ks);
    json_decref(key);
    cli_print_json(f, v, indent + 2);
    fputs(++i < n ? ",\n" : "\n", f);
  }
  fprintf(f, "%*s}", indent, "");
}

/* ---- loop -------------------------------------------------------------------
 */

int cli_loop_init(cli_loop *l) {
  if (uv_loop_init(&l->uv)) return cli_error("cannot start the event loop");
  l->loop = dorm_loop_new(&l->uv);
  if (!l->loop) {
    uv_loop_close(&l->uv);
    return cli_error("out of memory");
  }
  return 0;
}

void cli_loop_close(cli_loop *l) {
  dorm_loop_close(l->loop, NULL, NULL);
  uv_run(&l->uv, UV_RUN_DEFAULT);
  uv_loop_close(&l->uv);
}

typedef struct waiter {
  int done;
  dorm_result res;
} waiter;

static dorm_result keep_result(dorm_result *res, void *arg) {
  waiter *w = arg;
  w->res = dorm_result_take(res);
  w->done = 1;
  return dorm_result_none();
}

int cli_wait(cli_loop *l, dorm_deferred *d, dorm_result *out) {
  waiter w;
  memset(&w, 0, sizeof w);
  if (!d) {
    *out = dorm_result_error(DORM_ENOMEM, NULL);
    return DORM_ENOMEM;
  }
  if (dorm_deferred_add_both(d, keep_result, &w)) {
    *out = dorm_result_error(DORM_ENOMEM, NULL);
    return DORM_ENOMEM;
  }
  while (!w.done) uv_run(&l->uv, UV_RUN_ONCE);
  *out = w.res;
  return dorm_result_code(out);
}

static void closed_cb(void *arg) { *(int *)arg = 1; }

void cli_db_close(cli_loop *l, dorm_db *db) {
  if (!db) return;
  int closed = 0;
  dorm_db_close(db, closed_cb, &closed);
  while (!closed) uv_run(&l->uv, UV_RUN_ONCE);
}
