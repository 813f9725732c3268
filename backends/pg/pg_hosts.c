/* SPDX-License-Identifier: MIT */
/* backends/pg/pg_hosts.c — the host list of a multi-host URL, for dorm's own
 * connect timeout.
 *
 * libpq tries the hosts of "host=h1,h2 port=p1,p2" in order and applies
 * connect_timeout to each host, but only in its blocking connect; polling
 * (PQconnectPoll), it never gives up on a host that does not answer.
 * dorm's timer therefore sees one attempt, and without help every attempt
 * would start at h1 again: a primary that went silent (a cloud failover
 * that drops packets rather than refusing them) would keep dorm from ever
 * reaching h2.  So when the timer fires, the connection asks which host
 * libpq was on (PQhost, PQport) and starts the next attempt at the host
 * after it, with the lists rotated: host, hostaddr and port when they list
 * one entry per host (a single port applies to every host and stays).
 */
#include <stdlib.h>
#include <string.h>

#include "backends/pg/pg_int.h"

static const char *const LIST_KEYS[] = {"host", "hostaddr", "port"};

/* Entries of a comma-separated list ("a,b,,c" has 4). */
static size_t list_len(const char *v) {
  size_t n = 1;
  for (; *v; v++)
    if (*v == ',') n++;
  return n;
}

/* Entry i of list v into out (cap bytes); 0, or -1 when it does not fit. */
static int list_item(const char *v, size_t i, char *out, size_t cap) {
  for (; i && *v; v++)
    if (*v == ',') i--;
  const char *end = strchr(v, ',');
  size_t n = end ? (size_t)(end - v) : strlen(v);
  if (n >= cap) return -1;
  memcpy(out, v, n);
  out[n] = 0;
  return 0;
}

static const char *value_of(const dorm__pg_config *cfg, const char *key) {
  for (size_t i = 0; i < cfg->nkeys; i++)
    if (!strcmp(cfg->keys[i], key)) return cfg->vals[i];
  return NULL;
}

size_t dorm__pg_host_count(const dorm__pg_config *cfg) {
  size_t n = 1;
  for (size_t k = 0; k < 2; k++) { /* host, hostaddr: ports follow them */
    const char *v = value_of(cfg, LIST_KEYS[k]);
    if (v && list_len(v) > n) n = list_len(v);
  }
  return n;
}

/* v rotated to start at entry first (n entries), into a new string. */
static char *rotate(const char *v, size_t n, size_t first) {
  size_t len = strlen(v);
  char *out = dorm__malloc(len + 2);
  if (!out) return NULL;
  size_t off = 0;
  for (size_t k = 0; k < n; k++) {
    const char *p = v;
    for (size_t i = (first + k) % n; i && *p; p++)
      if (*p == ',') i--;
    const char *end = strchr(p, ',');
    size_t m = end ? (size_t)(end - p) : strlen(p);
    if (k) out[off++] = ',';
    memcpy(out + off, p, m);
    off += m;
  }
  out[off] = 0;
  return out;
}

int dorm__pg_hosts_rotated(const dorm__pg_config *cfg, size_t first,
                           const char ***keys, const char ***vals,
                           char ***owned) {
  size_t n = dorm__pg_host_count(cfg);
  *keys = dorm__calloc(cfg->nkeys + 1, sizeof **keys);
  *vals = dorm__calloc(cfg->nkeys + 1, sizeof **vals);
  *owned = dorm__calloc(cfg->nkeys + 1, sizeof **owned);
  if (!*keys || !*vals || !*owned) goto oom;
  for (size_t i = 0; i < cfg->nkeys; i++) {
    (*keys)[i] = cfg->keys[i];
    (*vals)[i] = cfg->vals[i];
    for (size_t k = 0; k < 3; k++) {
      if (strcmp(cfg->keys[i], LIST_KEYS[k]) || list_len(cfg->vals[i]) != n)
        continue;
      (*owned)[i] = rotate(cfg->vals[i], n, first);
      if (!(*owned)[i]) goto oom;
      (*vals)[i] = (*owned)[i];
    }
  }
  return 0;
oom:
  dorm__pg_hosts_free(*keys, *vals, *owned, cfg->nkeys);
  *keys = *vals = NULL;
  *owned = NULL;
  return DORM_ENOMEM;
}

void dorm__pg_hosts_free(const char **keys, const char **vals, char **owned,
                         size_t nkeys) {
  if (owned)
    for (size_t i = 0; i < nkeys; i++) dorm__free(owned[i]);
  dorm__free(owned);
  dorm__free((void *)keys);
  dorm__free((void *)vals);
}

size_t dorm__pg_host_index(const dorm__pg_config *cfg, size_t first,
                           const char *host, const char *port) {
  size_t n = dorm__pg_host_count(cfg);
  const char *hosts = value_of(cfg, "host");
  const char *addrs = value_of(cfg, "hostaddr");
  const char *ports = value_of(cfg, "port");
  char h[256], a[256], p[32];
  for (size_t k = 0; k < n; k++) {
    size_t i = (first + k) % n;
    /* PQhost gives the host name, else the address */
    int hit = 0;
    if (hosts && list_len(hosts) == n && !list_item(hosts, i, h, sizeof h))
      hit = host && !strcmp(h, host);
    if (!hit && addrs && list_len(addrs) == n &&
        !list_item(addrs, i, a, sizeof a))
      hit = host && !strcmp(a, host);
    if (!hit) continue;
    if (ports && port && list_len(ports) == n &&
        !list_item(ports, i, p, sizeof p) && p[0] && strcmp(p, port))
      continue;
    return k;
  }
  return 0; /* not known: take it as the attempt's first host */
}
