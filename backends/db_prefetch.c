/* SPDX-License-Identifier: MIT */
/* backends/db_prefetch.c — prefetch_related for dorm_async_filter, get
 * and first: after the main query, one query per prefetched relation for
 * the whole result, whose rows are matched to their parent rows in memory
 * and attached to the main result (rows_build.c), as Django's
 * prefetch_related_objects does.
 *
 * Everything runs as steps of the main request's deferred, so the caller
 * sees one deferred that fires once, with the main rows, after the last
 * related query (or with the first error of any of them):
 *
 *   main op ──▶ pf_main: keep the rows, start the first relation's query
 *                 ──▶ pf_chunk: keep its rows, start the next query ...
 *                 ... ──▶ the main rows, related rows attached
 *            ──▶ pf_finally: free what is left (on success or error)
 *            ──▶ the caller's steps
 *
 * A level of a nested path ("entries__tags": the tags of the prefetched
 * entries) is read the same way after the level above, its parents being
 * that level's rows, spread over the results of its queries: the first
 * of them owns the new rows, the others only point at them (rows_build.c), and
 * all are freed with the main result.
 *
 * Each related query is an ordinary dorm_async_filter on the handle the
 * call was made on, built by dorm_prefetch_select (query/prefetch.c): so
 * it routes as the main read does (a replica, or the primary after a
 * write), runs on the transaction of a transaction handle, and fails with
 * DORM_ECLOSED once the database is closed.  The keys (the parent rows'
 * distinct, non-NULL keys) go as parameters, at most PF_CHUNK per query:
 * a page with more keys takes several queries, one after the other.  The
 * query, its keys and the copies of the names are this file's: the
 * user's query may be freed as soon as the call returns.
 */
#include <stdlib.h>
#include <string.h>

#include "backends/db_int.h"
#include "base/base_int.h"

/* Keys per related query: within every backend's parameter limit, and
 * short enough that SQLite parses the IN list fast (db_compound.c caps
 * its key lists the same way). */
#define PF_CHUNK 500

/* A parent row and its key.  The parents of a relation are the rows of
 * one result (the main rows) or, for a level of a nested path, of several
 * (the level above's queries); row numbers them all, set after set. */
typedef struct pkey {
  const dorm_value *key;
  size_t row;
} pkey;

/* A related row for parent row `row`. */
typedef struct pmatch {
  size_t row;
  const dorm_row *child;
} pmatch;

/* The results that hold a relation's rows (borrowed: the main result
 * owns them once attached). */
typedef struct rowsets {
  dorm_rows **v;
  size_t n;
} rowsets;

struct dorm__prefetch {
  dorm_db *db;         /* the handle the call was made on */
  dorm_prefetch *rels; /* names copied after the array (one allocation) */
  size_t nrels, cur;   /* the relation being read */
  dorm_result main;    /* the main result, ours until it is handed on */
  dorm_rows *parent;   /* its rows */
  rowsets *held;       /* per relation: the results holding its rows */
  rowsets sets;        /* the current relation's parents */
  size_t *base;        /* row number of each parent set's first row */
  size_t nparents;
  /* the current relation */
  int started;
  pkey *keys; /* parent rows with a key, sorted by key */
  size_t nkeys;
  dorm_value *distinct; /* the distinct keys, in order */
  size_t ndistinct, sent;
  dorm_rows **children; /* the related rows of each query so far */
  size_t nchildren, cap_children;
};

static void rel_reset(dorm__prefetch *p) {
  for (size_t i = 0; i < p->nchildren; i++) dorm__rows_free(p->children[i]);
  dorm__free(p->children);
  dorm__free(p->keys);
  dorm__free(p->distinct);
  dorm__free(p->base);
  p->base = NULL;
  p->nparents = 0;
  p->children = NULL;
  p->nchildren = p->cap_children = 0;
  p->keys = NULL;
  p->distinct = NULL;
  p->nkeys = p->ndistinct = p->sent = 0;
  p->started = 0;
}

void dorm__db_prefetch_free(dorm__prefetch *p) {
  if (!p) return;
  rel_reset(p);
  for (size_t i = 0; p->held && i < p->nrels; i++) dorm__free(p->held[i].v);
  dorm__free(p->held);
  dorm_result_free(&p->main);
  dorm__free(p);
}

dorm__prefetch *dorm__db_prefetch_new(dorm_db *db, const dorm_query *q) {
  size_t n = dorm_query_prefetch_count(q), names = 0;
  dorm_prefetch tmp;
  for (size_t i = 0; i < n; i++)
    if (!dorm_query_prefetch(q, i, &tmp)) names += strlen(tmp.path) + 1;
  dorm__prefetch *p =
      dorm__calloc(1, sizeof *p + n * sizeof(dorm_prefetch) + names);
  if (!p) return NULL;
  p->held = dorm__calloc(n ? n : 1, sizeof *p->held);
  if (!p->held) {
    dorm__free(p);
    return NULL;
  }
  p->db = db;
  p->rels = (dorm_prefetch *)(p + 1);
  char *s = (char *)(p->rels + n);
  for (size_t i = 0; i < n; i++) {
    /* every index is valid: i < the count */
    if (dorm_query_prefetch(q, i, &p->rels[i])) continue;
    dorm_prefetch *r = &p->rels[i];
    size_t len = strlen(r->path) + 1;
    memcpy(s, r->path, len);
    r->name = s + (r->name - r->path);
    r->path = s;
    s += len;
    p->nrels++;
  }
  return p;
}

dorm__prefetch *dorm__db_prefetch_copy(const dorm__prefetch *from) {
  size_t n = from->nrels, names = 0;
  for (size_t i = 0; i < n; i++) names += strlen(from->rels[i].path) + 1;
  dorm__prefetch *p =
      dorm__calloc(1, sizeof *p + n * sizeof(dorm_prefetch) + names);
  if (!p) return NULL;
  p->held = dorm__calloc(n ? n : 1, sizeof *p->held);
  if (!p->held) {
    dorm__free(p);
    return NULL;
  }
  p->db = from->db;
  p->rels = (dorm_prefetch *)(p + 1);
  p->nrels = n;
  char *s = (char *)(p->rels + n);
  for (size_t i = 0; i < n; i++) {
    const dorm_prefetch *r = &from->rels[i];
    size_t len = strlen(r->path) + 1;
    p->rels[i] = *r;
    memcpy(s, r->path, len);
    p->rels[i].name = s + (r->name - r->path);
    p->rels[i].path = s;
    s += len;
  }
  return p;
}

/* ---- keys --------------------------------------------------------------- */

static int is_text(dorm_type t) {
  return t == DORM_T_TEXT || t == DORM_T_DECIMAL || t == DORM_T_DATE ||
         t == DORM_T_TIME || t == DORM_T_DATETIME || t == DORM_T_UUID ||
         t == DORM_T_JSON || t == DORM_T_BYTES;
}

/* Keys of one relation have one type (the key field's, on both sides);
 * the type is compared first all the same. */
static int key_cmp(const dorm_value *a, const dorm_value *b) {
  if (a->type != b->type) return a->type < b->type ? -1 : 1;
  switch (a->type) {
    case DORM_T_INT: return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    case DORM_T_BOOL: return a->u.b < b->u.b ? -1 : a->u.b > b->u.b;
    case DORM_T_FLOAT: return a->u.f < b->u.f ? -1 : a->u.f > b->u.f;
    default:
      if (is_text(a->type)) {
        size_t n = a->u.s.len < b->u.s.len ? a->u.s.len : b->u.s.len;
        int c = n ? memcmp(a->u.s.ptr, b->u.s.ptr, n) : 0;
        if (c) return c;
        return a->u.s.len < b->u.s.len ? -1 : a->u.s.len > b->u.s.len;
      }
      return 0;
  }
}

static int pkey_cmp(const void *x, const void *y) {
  const pkey *a = x, *b = y;
  int c = key_cmp(a->key, b->key);
  if (c) return c;
  return a->row < b->row ? -1 : a->row > b->row; /* stable */
}

/* The parent rows' keys of relation p->cur, sorted, and the distinct ones
 * (the IN lists).  0 or an error result's code with *err filled. */
static int collect_keys(dorm__prefetch *p, dorm_result *err) {
  const dorm_prefetch *r = &p->rels[p->cur];
  if (r->parent < 0) {
    p->sets.v = &p->parent;
    p->sets.n = 1;
  } else {
    p->sets = p->held[r->parent];
  }
  p->base = dorm__malloc((p->sets.n + 1) * sizeof *p->base);
  if (!p->base) goto oom;
  for (size_t k = 0; k < p->sets.n; k++) {
    p->base[k] = p->nparents;
    p->nparents += dorm_rows_count(p->sets.v[k]);
  }
  p->base[p->sets.n] = p->nparents;
  size_t n = p->nparents;
  p->keys = dorm__malloc((n ? n : 1) * sizeof *p->keys);
  p->distinct = dorm__malloc((n ? n : 1) * sizeof *p->distinct);
  if (!p->keys || !p->distinct) goto oom;
  for (size_t k = 0; k < p->sets.n; k++) {
    const dorm_rows *set = p->sets.v[k];
    if (!dorm_rows_count(set)) continue;
    int col = dorm_rows_column_index(set, r->parent_key);
    if (col < 0) {
      *err = dorm_result_error(DORM_ESTATE,
                               "prefetch_related('%s'): the rows have no "
                               "column '%s' (left out by only()?)",
                               r->path, r->parent_key);
      return DORM_ESTATE;
    }
    for (size_t i = 0; i < dorm_rows_count(set); i++) {
      const dorm_value *v =
          dorm_row_value_at(dorm_rows_row(set, i), (size_t)col);
      if (!v || v->type == DORM_T_NULL) continue; /* a null foreign key */
      p->keys[p->nkeys].key = v;
      p->keys[p->nkeys].row = p->base[k] + i;
      p->nkeys++;
    }
  }
  qsort(p->keys, p->nkeys, sizeof *p->keys, pkey_cmp);
  for (size_t i = 0; i < p->nkeys; i++)
    if (!i || key_cmp(p->keys[i - 1].key, p->keys[i].key))
      p->distinct[p->ndistinct++] = *p->keys[i].key;
  return 0;
oom:
  *err = dorm_result_error(DORM_ENOMEM, NULL);
  return DORM_ENOMEM;
}

/* The first parent key equal to k, or nkeys. */
static size_t find_key(const dorm__prefetch *p, const dorm_value *k) {
  size_t lo = 0, hi = p->nkeys;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (key_cmp(p->keys[mid].key, k) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < p->nkeys && !key_cmp(p->keys[lo].key, k) ? lo : p->nkeys;
}

/* Match every related row to its parents and attach them to the parent
 * rows: the first parent result takes the children, and they are kept
 * (borrowed) as the results holding this relation's rows, the parents of
 * a nested level below it. */
static int attach(dorm__prefetch *p, dorm_result *err) {
  const dorm_prefetch *r = &p->rels[p->cur];
  size_t nparent = p->nparents, nm = 0, cap = 0;
  pmatch *m = NULL;
  size_t *off = dorm__calloc(nparent + 1, sizeof *off);
  int rc = off ? 0 : DORM_ENOMEM;
  for (size_t c = 0; !rc && c < p->nchildren; c++) {
    dorm_rows *ch = p->children[c];
    int col = r->child_key ? dorm_rows_column_index(ch, r->child_key)
                           : (int)dorm__rows_width(ch) - 1;
    for (size_t i = 0; col >= 0 && !rc && i < dorm_rows_count(ch); i++) {
      const dorm_row *row = dorm_rows_row(ch, i);
      const dorm_value *k = dorm_row_value_at(row, (size_t)col);
      for (size_t at = find_key(p, k);
           !rc && at < p->nkeys && !key_cmp(p->keys[at].key, k); at++) {
        if (nm == cap) {
          size_t ncap = cap ? cap * 2 : 64;
          pmatch *g = dorm__realloc(m, ncap * sizeof *m);
          if (!g) {
            rc = DORM_ENOMEM;
            break;
          }
          m = g;
          cap = ncap;
        }
        m[nm].row = p->keys[at].row;
        m[nm].child = row;
        nm++;
      }
    }
  }
  const dorm_row **refs = NULL;
  /* with no parent result there are no keys, so no queries, no rows */
  rowsets hold = {NULL, p->sets.n ? p->nchildren : 0};
  if (!rc) {
    /* grouped by parent row by a counting sort, which keeps each
     * parent's rows in the related query's order */
    for (size_t i = 0; i < nm; i++) off[m[i].row + 1]++;
    for (size_t i = 0; i < nparent; i++) off[i + 1] += off[i];
    refs = dorm__malloc((nm ? nm : 1) * sizeof *refs);
    size_t *fill = dorm__malloc((nparent ? nparent : 1) * sizeof *fill);
    hold.v = dorm__malloc((hold.n ? hold.n : 1) * sizeof *hold.v);
    if (!refs || !fill || !hold.v) {
      rc = DORM_ENOMEM;
    } else {
      memcpy(fill, off, nparent * sizeof *fill);
      for (size_t i = 0; i < nm; i++) refs[fill[m[i].row]++] = m[i].child;
      if (hold.n) memcpy(hold.v, p->children, hold.n * sizeof *hold.v);
    }
    dorm__free(fill);
  }
  /* parents spread over no result (a level under an empty one): there is
   * nobody to attach to, and the children go with rel_reset */
  for (size_t k = 0; !rc && k < p->sets.n; k++) {
    rc = dorm__rows_attach_prefetch(
        p->sets.v[k], r->name, r->kind == DORM_PREFETCH_FORWARD, k == 0,
        p->children, p->nchildren, refs, off + p->base[k]);
    if (k == 0) { /* attached or freed: no longer ours */
      dorm__free(p->children);
      p->children = NULL;
      p->nchildren = p->cap_children = 0;
    }
  }
  if (!rc) {
    p->held[p->cur] = hold;
    hold.v = NULL;
  }
  dorm__free(hold.v);
  dorm__free(refs);
  dorm__free(m);
  dorm__free(off);
  if (rc) *err = dorm_result_error(rc, NULL);
  return rc;
}

/* ---- the chain ---------------------------------------------------------- */

static dorm_result pf_chunk(dorm_result *res, void *arg);

/* Go on: the next related query, the next relation, or — all read — the
 * main result with everything attached. */
static dorm_result pf_next(dorm__prefetch *p) {
  dorm_result err = dorm_result_none();
  while (p->cur < p->nrels) {
    if (!p->started) {
      p->started = 1;
      if (collect_keys(p, &err)) return err;
    }
    if (p->sent < p->ndistinct) {
      size_t n = p->ndistinct - p->sent;
      if (n > PF_CHUNK) n = PF_CHUNK;
      dorm_query *q =
          dorm_prefetch_select(&p->rels[p->cur], p->distinct + p->sent, n);
      if (!q) return dorm_result_error(DORM_ENOMEM, NULL);
      p->sent += n;
      /* q has no prefetch of its own: a plain read */
      dorm_deferred *d = dorm_async_filter(p->db, q);
      dorm_query_free(q);
      if (!d) return dorm_result_error(DORM_ENOMEM, NULL);
      /* a new deferred has room for its first step: this cannot fail */
      dorm_deferred_add_callback(d, pf_chunk, p);
      return dorm_result_deferred(d);
    }
    if (attach(p, &err)) return err;
    rel_reset(p);
    p->cur++;
  }
  return dorm_result_take(&p->main);
}

static dorm_result pf_chunk(dorm_result *res, void *arg) {
  dorm__prefetch *p = arg;
  if (res->kind != DORM_RESULT_ROWS)
    return dorm_result_error(DORM_EDB, "prefetch_related: no rows");
  if (p->nchildren == p->cap_children) {
    size_t cap = p->cap_children ? p->cap_children * 2 : 4;
    dorm_rows **c = dorm__realloc(p->children, cap * sizeof *c);
    if (!c) return dorm_result_error(DORM_ENOMEM, NULL);
    p->children = c;
    p->cap_children = cap;
  }
  dorm_result rows = dorm_result_take(res);
  p->children[p->nchildren++] = rows.u.rows.rows; /* freed by us now */
  return pf_next(p);
}

static dorm_result pf_main(dorm_result *res, void *arg) {
  dorm__prefetch *p = arg;
  if (res->kind == DORM_RESULT_ROWS)
    p->parent = res->u.rows.rows;
  else if (res->kind == DORM_RESULT_ROW)
    p->parent = dorm__row_rows(res->u.row.row);
  else
    return *res; /* nothing to attach to */
  p->main = dorm_result_take(res);
  return pf_next(p);
}

static dorm_result pf_finally(dorm_result *res, void *arg) {
  dorm__db_prefetch_free(arg);
  return *res;
}

dorm_deferred *dorm__db_prefetch_after(dorm__prefetch *p, dorm_deferred *d) {
  if (!p) return d;
  if (!d) {
    dorm__db_prefetch_free(p);
    return NULL;
  }
  /* d is new, its chain empty: both steps are accepted */
  dorm_deferred_add_callback(d, pf_main, p);
  dorm_deferred_add_both(d, pf_finally, p);
  return d;
}
