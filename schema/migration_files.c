/* SPDX-License-Identifier: MIT */
/* schema/migration_files.c — dorm_migrations_load: read the "*.json" files
 * of a migrations folder, parse each (migration_parse.c) and order them
 * (migration_graph.c).
 *
 * The only file of the migration code that touches the file system, and
 * the exception to schema/ doing no I/O, kept here alone so the rest stays
 * a function of its input.  It lives in schema/ rather than migrate/
 * because dorm_migrations_load belongs to the pure public header
 * dorm/migration.h, which tools and harnesses use without a database (as
 * dorm_schema_load_file belongs to dorm/schema.h); migrate/ would make a
 * pure header declare a function of a higher layer.  The reads are plain
 * blocking reads of small files, made once before anything runs; nothing
 * here waits on a socket, a thread or the loop.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base_int.h"
#include "dorm/migration.h"

static char *read_all(const char *path, size_t *len, dorm_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    dorm_error_set(err, DORM_EIO, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  dorm__buf buf;
  dorm__buf_init(&buf);
  char chunk[16384];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    dorm__buf_append(&buf, chunk, n);
  int bad = ferror(f);
  fclose(f);
  if (bad || buf.oom) {
    dorm__buf_free(&buf);
    dorm_error_set(err, bad ? DORM_EIO : DORM_ENOMEM, "%s: cannot read", path);
    return NULL;
  }
  dorm__buf_cstr(&buf);
  if (buf.oom) {
    dorm__buf_free(&buf);
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  *len = buf.len;
  return buf.data; /* dorm__malloc'd by the buffer */
}

dorm_migration_set *dorm_migrations_load(const char *dir, dorm_error *err) {
  if (!dir) dir = "migrations";
  DIR *d = opendir(dir);
  if (!d) {
    if (errno != ENOENT) {
      dorm_error_set(err, DORM_EIO, "%s: cannot open: %s", dir,
                     strerror(errno));
      return NULL;
    }
    dorm_migration_set *set = dorm_migrations_order(NULL, 0, err);
    if (set && !(set->dir = dorm__strdup(dir))) {
      dorm_migration_set_free(set);
      dorm_error_set(err, DORM_ENOMEM, NULL);
      return NULL;
    }
    return set;
  }
  dorm_migration *migs = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int rc = 0;
  while (!rc && (e = readdir(d)) != NULL) {
    size_t nl = strlen(e->d_name);
    if (e->d_name[0] == '.' || nl <= 5 || strcmp(e->d_name + nl - 5, ".json"))
      continue;
    size_t plen = strlen(dir) + 1 + nl + 1;
    char *path = dorm__malloc(plen);
    if (!path) {
      rc = dorm_error_set(err, DORM_ENOMEM, NULL);
      break;
    }
    snprintf(path, plen, "%s/%s", dir, e->d_name);
    size_t len = 0;
    char *text = read_all(path, &len, err);
    if (!text) {
      dorm__free(path);
      rc = err ? err->code : DORM_EIO;
      break;
    }
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 64;
      dorm_migration *nm = dorm__realloc(migs, nc * sizeof *nm);
      if (!nm) {
        dorm__free(text);
        dorm__free(path);
        rc = dorm_error_set(err, DORM_ENOMEM, NULL);
        break;
      }
      migs = nm;
      cap = nc;
    }
    rc = dorm_migration_parse(text, len, path, &migs[n], err);
    dorm__free(text);
    dorm__free(path);
    if (!rc) n++;
  }
  closedir(d);
  if (rc) {
    for (size_t i = 0; i < n; i++) dorm_migration_clear(&migs[i]);
    dorm__free(migs);
    return NULL;
  }
  dorm_migration_set *set = dorm_migrations_order(migs, n, err);
  if (set && !(set->dir = dorm__strdup(dir))) {
    dorm_migration_set_free(set);
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  return set;
}
