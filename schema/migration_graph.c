/* SPDX-License-Identifier: MIT */
/* schema/migration_graph.c — the migrations of a folder as a dependency
 * graph: put them in running order, find one by name, list the leaves.
 *
 * dorm_migrations_order takes migrations already parsed
 * (migration_parse.c) and refuses the set, naming the file, when two
 * share a name, when a dependency names no migration, or when the
 * dependencies form a cycle (the message shows the cycle).  Otherwise the
 * set is in an order where every migration comes after its dependencies;
 * visiting by name keeps that order stable, so the plan `dorm migrate`
 * shows does not change from one run to the next.  The leaves (migrations
 * nothing depends on) are how the engine spots two histories that both
 * end somewhere (Django's "multiple leaf nodes").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base_int.h"
#include "dorm/migration.h"

void dorm_migration_set_free(dorm_migration_set *set) {
  if (!set) return;
  for (size_t i = 0; i < set->n; i++) dorm_migration_clear(&set->migs[i]);
  dorm__free(set->migs);
  dorm__free(set->dir);
  dorm__free(set);
}

static int cmp_mig_name(const void *a, const void *b) {
  return strcmp(((const dorm_migration *)a)->name,
                ((const dorm_migration *)b)->name);
}

/* Binary search in migrations sorted by name. */
static long find_sorted(const dorm_migration *migs, size_t n,
                        const char *name) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(migs[mid].name, name);
    if (c == 0) return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

typedef struct orderer {
  dorm_migration *migs; /* sorted by name */
  size_t n;
  long *dep_idx; /* flattened: each migration's deps as indexes */
  size_t *dep_off;
  unsigned char *color; /* 0 new, 1 on the stack, 2 done */
  size_t *order;
  size_t norder;
  long *stack; /* the DFS path, for the cycle message */
  size_t depth;
  dorm_error *err;
} orderer;

/* Depth-first, dependencies first: post-order is a valid running order,
 * and visiting roots and dependencies by name keeps it stable. Iterative
 * would avoid deep recursion, but a chain of 500 migrations is only 500
 * frames of a few words. */
static int visit(orderer *o, size_t i) {
  if (o->color[i] == 2) return 0;
  if (o->color[i] == 1) {
    char path[400] = "";
    size_t start = o->depth;
    while (start > 0 && o->stack[start - 1] != (long)i) start--;
    if (start > 0) start--;
    size_t p = 0;
    for (size_t k = start; k < o->depth && p < sizeof path - 80; k++)
      p += (size_t)snprintf(path + p, sizeof path - p, "%s -> ",
                            o->migs[o->stack[k]].name);
    snprintf(path + p, sizeof path - p, "%s", o->migs[i].name);
    return dorm_error_set(o->err, DORM_EMIGRATION, "%s: dependency cycle: %s",
                          o->migs[i].file, path);
  }
  o->color[i] = 1;
  o->stack[o->depth++] = (long)i;
  for (size_t k = o->dep_off[i]; k < o->dep_off[i + 1]; k++) {
    int rc = visit(o, (size_t)o->dep_idx[k]);
    if (rc) return rc;
  }
  o->depth--;
  o->color[i] = 2;
  o->order[o->norder++] = i;
  return 0;
}

dorm_migration_set *dorm_migrations_order(dorm_migration *migs, size_t n,
                                          dorm_error *err) {
  dorm_migration_set *set = dorm__calloc(1, sizeof *set);
  orderer o;
  memset(&o, 0, sizeof o);
  int rc = 0;
  if (!set) {
    for (size_t i = 0; i < n; i++) dorm_migration_clear(&migs[i]);
    dorm__free(migs);
    dorm_error_set(err, DORM_ENOMEM, NULL);
    return NULL;
  }
  set->migs = migs;
  set->n = n;
  if (n == 0) return set;
  qsort(migs, n, sizeof *migs, cmp_mig_name);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(migs[i].name, migs[i - 1].name)) {
      dorm_error_set(err, DORM_EMIGRATION,
                     "%s: migration name '%s' is also used by %s", migs[i].file,
                     migs[i].name, migs[i - 1].file);
      goto fail;
    }
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += migs[i].ndeps;
  o.migs = migs;
  o.n = n;
  o.err = err;
  o.dep_idx = dorm__calloc(total ? total : 1, sizeof *o.dep_idx);
  o.dep_off = dorm__calloc(n + 1, sizeof *o.dep_off);
  o.color = dorm__calloc(n, 1);
  o.order = dorm__calloc(n, sizeof *o.order);
  o.stack = dorm__calloc(n + 1, sizeof *o.stack);
  if (!o.dep_idx || !o.dep_off || !o.color || !o.order || !o.stack) {
    dorm_error_set(err, DORM_ENOMEM, NULL);
    goto fail;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    o.dep_off[i] = k;
    for (size_t d = 0; d < migs[i].ndeps; d++) {
      long j = find_sorted(migs, n, migs[i].deps[d]);
      if (j < 0) {
        dorm_error_set(err, DORM_EMIGRATION,
                       "%s: unknown dependency '%s' (no such migration)",
                       migs[i].file, migs[i].deps[d]);
        goto fail;
      }
      o.dep_idx[k++] = j;
    }
  }
  o.dep_off[n] = k;
  for (size_t i = 0; i < n && !rc; i++) rc = visit(&o, i);
  if (rc) goto fail;
  /* Permute into running order. */
  dorm_migration *ordered = dorm__calloc(n, sizeof *ordered);
  if (!ordered) {
    dorm_error_set(err, DORM_ENOMEM, NULL);
    goto fail;
  }
  for (size_t i = 0; i < n; i++) ordered[i] = migs[o.order[i]];
  dorm__free(migs);
  set->migs = ordered;
  dorm__free(o.dep_idx);
  dorm__free(o.dep_off);
  dorm__free(o.color);
  dorm__free(o.order);
  dorm__free(o.stack);
  return set;
fail:
  dorm__free(o.dep_idx);
  dorm__free(o.dep_off);
  dorm__free(o.color);
  dorm__free(o.order);
  dorm__free(o.stack);
  dorm_migration_set_free(set);
  return NULL;
}

long dorm_migrations_find(const dorm_migration_set *set, const char *name) {
  if (!set || !name) return -1;
  long found = -1;
  size_t nl = strlen(name);
  for (size_t i = 0; i < set->n; i++) {
    if (!strcmp(set->migs[i].name, name)) return (long)i;
    if (!strncmp(set->migs[i].name, name, nl)) {
      if (found >= 0) return -2;
      found = (long)i;
    }
  }
  return found;
}

size_t dorm_migrations_leaves(const dorm_migration_set *set, size_t *out,
                              size_t cap) {
  size_t count = 0;
  if (!set) return 0;
  for (size_t i = 0; i < set->n; i++) {
    int needed = 0;
    /* Dependents come after i in running order. */
    for (size_t j = i + 1; j < set->n && !needed; j++)
      for (size_t d = 0; d < set->migs[j].ndeps && !needed; d++)
        if (!strcmp(set->migs[j].deps[d], set->migs[i].name)) needed = 1;
    if (needed) continue;
    if (count < cap) out[count] = i;
    count++;
  }
  return count;
}
