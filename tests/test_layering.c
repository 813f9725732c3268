/* SPDX-License-Identifier: MIT */
/* tests/test_layering.c — the pure layers stay pure, and each layer uses
 * only the layers below it.
 *
 * docs/architecture.md: schema/ and query/ (and base/, below them) include no
 * libuv, libpq or sqlite3 header and call nothing from those libraries.  Two
 * checks: no such #include in their sources or in the public headers they use,
 * and no undefined reference to uv_*, PQ* or sqlite3_* in their compiled
 * objects (so an indirect include cannot sneak one in).
 *
 * The layers (from the bottom): base/; schema/ and query/ (pure); reactor_glue/
 * (deferreds on libuv); backends/ and http/; migrate/ (the migration engine,
 * which runs SQL through backends/); tools/ (the dorm command), which sees
 * the library only through its public headers (include/).  The table
 * `layers` below is that rule: the folders each one's quoted #includes may
 * name.  The pure layers also include none of the public headers of the
 * I/O layers (dorm.h, dorm/db.h, dorm/migrate.h, ...).  Inside query/, the
 * DDL compiler's files (query/ddl/) call only the files below them, in
 * the order its ddl_int.h gives (`ddl_order`).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "support/support.h"

static const char *const pure_dirs[] = {"base", "schema", "query", NULL};
static const char *const pure_headers[] = {"include/dorm/error.h",
                                           "include/dorm/value.h",
                                           "include/dorm/schema.h",
                                           "include/dorm/query.h",
                                           "include/dorm/ddl.h",
                                           "include/dorm/migration.h",
                                           NULL};
static const char *const forbidden[] = {"uv.h", "libpq-fe.h", "sqlite3.h",
                                        "uv/", NULL};

/* 1 when text has an #include naming a forbidden header. */
static const char *bad_include(const char *text) {
  const char *p = text;
  while ((p = strstr(p, "#")) != NULL) {
    const char *q = p + 1;
    while (*q == ' ' || *q == '\t') q++;
    if (!strncmp(q, "include", 7)) {
      const char *eol = strchr(q, '\n');
      size_t len = eol ? (size_t)(eol - q) : strlen(q);
      for (int i = 0; forbidden[i]; i++) {
        const char *hit = strstr(q, forbidden[i]);
        if (hit && hit < q + len) return forbidden[i];
      }
    }
    p = q;
  }
  return NULL;
}

static void check_file(const char *path) {
  char *text = dorm_test_read_file(path);
  if (!text) fail_msg("cannot read %s", path);
  const char *bad = bad_include(text);
  if (bad) fail_msg("%s includes %s", path, bad);
  free(text);
}

/* Calls fn on every .c and .h file under dir, sub-folders included (a
 * layer's drivers and file groups live in folders of their own); returns
 * how many files it visited. */
static int walk_sources(const char *dir, void (*fn)(const char *, void *),
                        void *arg) {
  DIR *d = opendir(dir);
  if (!d) fail_msg("cannot open %s", dir);
  int files = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    DIR *sub = opendir(path);
    if (sub) {
      closedir(sub);
      files += walk_sources(path, fn, arg);
      continue;
    }
    size_t n = strlen(e->d_name);
    if (n < 3 ||
        (strcmp(e->d_name + n - 2, ".c") && strcmp(e->d_name + n - 2, ".h")))
      continue;
    fn(path, arg);
    files++;
  }
  closedir(d);
  return files;
}

static void check_source(const char *path, void *arg) {
  (void)arg;
  check_file(path);
}

static void test_no_io_headers(void **state) {
  (void)state;
  int files = 0;
  for (int d = 0; pure_dirs[d]; d++)
    files += walk_sources(pure_dirs[d], check_source, NULL);
  for (int i = 0; pure_headers[i]; i++) {
    FILE *f = fopen(pure_headers[i], "r");
    if (!f) continue; /* a header not written yet */
    fclose(f);
    check_file(pure_headers[i]);
  }
  assert_true(files > 5);
}

/* The checker itself must catch a violation. */
static void test_checker_catches(void **state) {
  (void)state;
  assert_string_equal(bad_include("#include <uv.h>\n"), "uv.h");
  assert_string_equal(bad_include("# include \"libpq-fe.h\"\n"), "libpq-fe.h");
  assert_null(bad_include("#include <stdio.h>\n/* sqlite3.h */\n"));
}

static void test_no_io_symbols(void **state) {
  (void)state;
  /* objects of the build this test belongs to: its own directory's
   * sibling folders (build/ or build-san/) */
  const char *build = getenv("DORM_BUILD_DIR");
  char cmd[1024];
  int found = 0;
  static const char *const builds[] = {"build", "build-san", NULL};
  for (int b = 0; builds[b]; b++) {
    if (build && strcmp(build, builds[b])) continue;
    snprintf(cmd, sizeof cmd,
             "find %s/base %s/schema %s/query -name '*.o' 2>/dev/null | "
             "xargs -r nm -u 2>/dev/null",
             builds[b], builds[b], builds[b]);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512];
    while (fgets(line, sizeof line, p)) {
      char *sym = strrchr(line, ' ');
      sym = sym ? sym + 1 : line;
      if (!strncmp(sym, "uv_", 3) || !strncmp(sym, "PQ", 2) ||
          !strncmp(sym, "sqlite3_", 8))
        fail_msg("a pure layer references %s", sym);
      found++;
    }
    pclose(p);
  }
  assert_true(found > 0); /* nm ran and listed something */
}

/* Who may include whom: a folder and the prefixes its quoted #includes may
 * start with ("dorm/" and "dorm.h" are the public headers). */
typedef struct layer {
  const char *dir;
  const char *may[9];
  const char *never[3]; /* prefixes refused even when `may` allows them */
} layer;

static const layer layers[] = {
    {"base", {"base/", "dorm/", NULL}, {NULL}},
    {"schema", {"base/", "schema/", "dorm/", NULL}, {NULL}},
    {"query", {"base/", "schema/", "query/", "dorm/", NULL}, {NULL}},
    {"reactor_glue", {"base/", "reactor_glue/", "dorm/", NULL}, {NULL}},
    /* the facade talks to a driver only through backend_int.h's table */
    {"backends",
     {"base/", "schema/", "query/", "reactor_glue/", "backends/", "dorm/",
      NULL},
     {"backends/pg/", "backends/sqlite/", NULL}},
    /* a driver sees the contract, not the facade nor the other driver */
    {"backends/pg",
     {"base/", "schema/", "query/", "reactor_glue/", "backends/backend_int.h",
      "backends/pg/", "dorm/", NULL},
     {NULL}},
    {"backends/sqlite",
     {"base/", "schema/", "query/", "reactor_glue/", "backends/backend_int.h",
      "backends/sqlite/", "dorm/", NULL},
     {NULL}},
    {"http", {"base/", "reactor_glue/", "http/", "dorm/", NULL}, {NULL}},
    {"migrate",
     {"base/", "schema/", "query/", "reactor_glue/", "backends/", "migrate/",
      "dorm/", NULL},
     {"backends/pg/", "backends/sqlite/", NULL}},
    {"tools", {"tools/", "dorm/", "dorm.h", NULL}, {NULL}},
    {NULL, {NULL}, {NULL}},
};

/* Public headers of the I/O layers: never included by a pure layer. */
static const char *const io_public[] = {
    "dorm.h",         "dorm/db.h",      "dorm/deferred.h",
    "dorm/loop.h",    "dorm/rows.h",    "dorm/http.h",
    "dorm/migrate.h", "dorm/observe.h", NULL};

/* The first quoted #include of text that l may not name, or NULL; the
 * name is copied into out (cap bytes). */
static const char *bad_layer_include(const layer *l, int pure, const char *text,
                                     char *out, size_t cap) {
  const char *p = text;
  while ((p = strstr(p, "#")) != NULL) {
    const char *q = p + 1;
    while (*q == ' ' || *q == '\t') q++;
    p = q;
    if (strncmp(q, "include", 7)) continue;
    q += 7;
    while (*q == ' ' || *q == '\t') q++;
    if (*q != '"') continue;
    q++;
    const char *end = strchr(q, '"');
    if (!end || (size_t)(end - q) >= cap) continue;
    memcpy(out, q, (size_t)(end - q));
    out[end - q] = '\0';
    int ok = 0;
    for (int i = 0; l->may[i]; i++)
      if (!strncmp(out, l->may[i], strlen(l->may[i]))) ok = 1;
    for (int i = 0; l->never[i]; i++)
      if (!strncmp(out, l->never[i], strlen(l->never[i]))) ok = 0;
    for (int i = 0; pure && io_public[i]; i++)
      if (!strcmp(out, io_public[i])) ok = 0;
    if (!ok) return out;
  }
  return NULL;
}

static int is_pure(const char *dir) {
  for (int d = 0; pure_dirs[d]; d++)
    if (!strcmp(pure_dirs[d], dir)) return 1;
  return 0;
}

/* The layer a file belongs to: the entry of `layers` whose folder is the
 * longest prefix of its path (backends/pg/pg.c is "backends/pg"). */
static const layer *layer_of(const char *path) {
  const layer *best = NULL;
  for (const layer *l = layers; l->dir; l++) {
    size_t n = strlen(l->dir);
    if (!strncmp(path, l->dir, n) && path[n] == '/' &&
        (!best || n > strlen(best->dir)))
      best = l;
  }
  return best;
}

static void check_layer(const char *path, void *arg) {
  (void)arg;
  const layer *l = layer_of(path);
  assert_non_null(l);
  char name[256];
  char *text = dorm_test_read_file(path);
  if (!text) fail_msg("cannot read %s", path);
  const char *top = l->dir;
  char first[64];
  snprintf(first, sizeof first, "%.*s", (int)strcspn(top, "/"), top);
  const char *bad =
      bad_layer_include(l, is_pure(first), text, name, sizeof name);
  /* every source file says its license on its first line (LICENSE) */
  static const char spdx[] = "/* SPDX-License-Identifier: MIT */\n";
  int licensed = !strncmp(text, spdx, sizeof spdx - 1);
  free(text);
  if (!licensed) fail_msg("%s: the first line is not \"%.34s\"", path, spdx);
  if (bad) fail_msg("%s includes \"%s\": not a layer below it", path, bad);
}

static void test_layers(void **state) {
  (void)state;
  int files = 0;
  for (const layer *l = layers; l->dir; l++)
    if (!strchr(l->dir, '/')) files += walk_sources(l->dir, check_layer, NULL);
  assert_true(files > 20);
}

/* The layer checker must catch what it is there for. */
static void test_layer_checker_catches(void **state) {
  (void)state;
  char name[256];
  const layer *schema = layer_of("schema/x.c"),
              *migrate = layer_of("migrate/x.c"),
              *tools = layer_of("tools/serve/x.c"),
              *facade = layer_of("backends/db.c"),
              *pg = layer_of("backends/pg/pg.c");
  assert_string_equal(schema->dir, "schema");
  assert_string_equal(migrate->dir, "migrate");
  assert_string_equal(tools->dir, "tools");
  assert_non_null(bad_layer_include(schema, 1, "#include \"migrate/x.h\"\n",
                                    name, sizeof name));
  assert_non_null(bad_layer_include(schema, 1, "#include \"dorm/migrate.h\"\n",
                                    name, sizeof name));
  assert_non_null(bad_layer_include(
      schema, 1, "#include \"backends/db_int.h\"\n", name, sizeof name));
  assert_non_null(bad_layer_include(
      tools, 0, "#include \"backends/db_int.h\"\n", name, sizeof name));
  assert_non_null(bad_layer_include(tools, 0, "#include \"migrate/x.h\"\n",
                                    name, sizeof name));
  assert_null(
      bad_layer_include(migrate, 0,
                        "#include \"backends/db_int.h\"\n"
                        "#include \"dorm/migrate.h\"\n#include <stdio.h>\n",
                        name, sizeof name));
  assert_null(
      bad_layer_include(tools, 0, "#include \"dorm.h\"\n", name, sizeof name));
  /* the facade and the drivers meet only in backend_int.h */
  assert_string_equal(pg->dir, "backends/pg");
  assert_non_null(bad_layer_include(
      facade, 0, "#include \"backends/pg/pg_int.h\"\n", name, sizeof name));
  assert_non_null(bad_layer_include(pg, 0, "#include \"backends/db_int.h\"\n",
                                    name, sizeof name));
  assert_non_null(bad_layer_include(pg, 0, "#include \"backends/sqlite/x.h\"\n",
                                    name, sizeof name));
  assert_null(bad_layer_include(pg, 0,
                                "#include \"backends/backend_int.h\"\n"
                                "#include \"backends/pg/pg_int.h\"\n",
                                name, sizeof name));
}

/* The DDL compiler's files, in the order query/ddl/ddl_int.h gives them:
 * emit helpers, statements, the SQLite rebuild, operations.  A file calls
 * only functions of the files before it (or its own), so no lower file
 * depends on a higher one; every file of query/ddl/ must be listed. */
static const char *const ddl_order[] = {"emit",  "literal", "columns", "tables",
                                        "alter", "rebuild", "ddl",     NULL};

static int ddl_rank(const char *name) {
  for (int i = 0; ddl_order[i]; i++)
    if (!strcmp(ddl_order[i], name)) return i;
  return -1;
}

/* A call from file `user` to a function of file `callee`: NULL when the
 * order allows it, else a reason. */
static const char *ddl_bad_call(const char *user, const char *callee) {
  int u = ddl_rank(user), c = ddl_rank(callee);
  if (u < 0 || c < 0) return "a file not in ddl_order";
  return c > u ? "a call upwards" : NULL;
}

/* name -> the ddl file that defines it (as "emit"), from nm output */
typedef struct ddl_sym {
  char name[96];
  int file;
} ddl_sym;

static int nm_lines(const char *cmd, void (*fn)(const char *, void *),
                    void *arg) {
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, p)) {
    line[strcspn(line, "\n")] = '\0';
    char *sym = strrchr(line, ' ');
    fn(sym ? sym + 1 : line, arg);
    n++;
  }
  pclose(p);
  return n;
}

typedef struct ddl_syms {
  ddl_sym s[512];
  int n, file;
  const char *user; /* checking: the file whose calls are read */
} ddl_syms;

static void ddl_add_def(const char *sym, void *arg) {
  ddl_syms *t = arg;
  if (t->n >= (int)(sizeof t->s / sizeof t->s[0])) fail_msg("too many");
  snprintf(t->s[t->n].name, sizeof t->s[t->n].name, "%s", sym);
  t->s[t->n++].file = t->file;
}

static void ddl_check_use(const char *sym, void *arg) {
  ddl_syms *t = arg;
  for (int i = 0; i < t->n; i++) {
    if (strcmp(t->s[i].name, sym)) continue;
    const char *bad = ddl_bad_call(t->user, ddl_order[t->s[i].file]);
    if (bad)
      fail_msg("query/ddl/%s.c calls %s of query/ddl/%s.c: %s", t->user, sym,
               ddl_order[t->s[i].file], bad);
  }
}

static void ddl_listed(const char *path, void *arg) {
  (void)arg;
  const char *base = strrchr(path, '/') + 1;
  size_t n = strlen(base);
  if (n < 3 || strcmp(base + n - 2, ".c")) return;
  char name[64];
  snprintf(name, sizeof name, "%.*s", (int)(n - 2), base);
  if (ddl_rank(name) < 0)
    fail_msg("%s is not in ddl_order (tests/test_layering.c)", path);
}

static void test_ddl_order(void **state) {
  (void)state;
  walk_sources("query/ddl", ddl_listed, NULL);
  const char *build = getenv("DORM_BUILD_DIR");
  static const char *const builds[] = {"build", "build-san", NULL};
  char obj[256], cmd[512];
  const char *dir = NULL;
  for (int b = 0; builds[b] && !dir; b++) {
    if (build && strcmp(build, builds[b])) continue;
    snprintf(obj, sizeof obj, "%s/query/ddl/emit.o", builds[b]);
    FILE *f = fopen(obj, "r");
    if (f) {
      fclose(f);
      dir = builds[b];
    }
  }
  assert_non_null(dir);
  static ddl_syms t;
  t.n = 0;
  for (t.file = 0; ddl_order[t.file]; t.file++) {
    snprintf(cmd, sizeof cmd,
             "nm -g --defined-only %s/query/ddl/%s.o 2>/dev/null", dir,
             ddl_order[t.file]);
    nm_lines(cmd, ddl_add_def, &t);
  }
  assert_true(t.n > 20);
  int uses = 0;
  for (int i = 0; ddl_order[i]; i++) {
    t.user = ddl_order[i];
    snprintf(cmd, sizeof cmd, "nm -u %s/query/ddl/%s.o 2>/dev/null", dir,
             ddl_order[i]);
    uses += nm_lines(cmd, ddl_check_use, &t);
  }
  assert_true(uses > 0);
  /* the rule itself */
  assert_non_null(ddl_bad_call("emit", "rebuild"));
  assert_non_null(ddl_bad_call("tables", "alter"));
  assert_non_null(ddl_bad_call("new_file", "emit"));
  assert_null(ddl_bad_call("ddl", "rebuild"));
  assert_null(ddl_bad_call("columns", "literal"));
}

/* dorm.h lists every public header (its comment says what each is for)
 * and includes it: a new header in include/dorm/ cannot be left out. */
static void test_umbrella_header(void **state) {
  (void)state;
  char *umbrella = dorm_test_read_file("include/dorm.h");
  assert_non_null(umbrella);
  DIR *d = opendir("include/dorm");
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len < 3 || strcmp(e->d_name + len - 2, ".h")) continue;
    char inc[300], listed[300];
    snprintf(inc, sizeof inc, "#include \"dorm/%s\"", e->d_name);
    snprintf(listed, sizeof listed, " *   dorm/%s ", e->d_name);
    if (!strstr(umbrella, inc))
      fail_msg("dorm.h does not include dorm/%s", e->d_name);
    if (!strstr(umbrella, listed))
      fail_msg("dorm.h's list of headers does not name dorm/%s", e->d_name);
    n++;
  }
  closedir(d);
  free(umbrella);
  assert_true(n >= 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_io_headers),
      cmocka_unit_test(test_checker_catches),
      cmocka_unit_test(test_no_io_symbols),
      cmocka_unit_test(test_layers),
      cmocka_unit_test(test_layer_checker_catches),
      cmocka_unit_test(test_umbrella_header),
      cmocka_unit_test(test_ddl_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
