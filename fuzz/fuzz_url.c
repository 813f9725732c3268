/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_url.c — database URLs, parsed without connecting.
 *
 * The input is a URL or conninfo string, given to every parser that reads
 * one: the SQLite backend's (dorm__sqlite_url_parse, the check its open
 * runs first: sqlite:///path?synchronous=..&busy_timeout=..&readers=..),
 * the PostgreSQL configuration (dorm__pg_config_parse: dorm's own
 * pool_size and pgbouncer taken out of a URI, then libpq's
 * PQconninfoParse, plus dorm's additions), with and without PgBouncer
 * mode, the multi-host lists of what parses (host count, the rotated
 * lists of each attempt, a host's position), the replica list splitter
 * (dorm__pg_split_urls) with each replica parsed in turn, and the CLI's
 * dialect guess (cli_url_dialect, linked in from tools/cli.o).  Nothing
 * connects: these are the pure steps before a connection.  An error must
 * carry a message.
 */
#include "backends/backend_int.h"
#include "backends/pg/pg_int.h"
#include "fuzz/fuzz.h"
#include "tools/cli.h"

static void pg_one(const char *url, const dorm_db_options *opts) {
  dorm__pg_config cfg;
  dorm_error err;
  dorm_error_clear(&err);
  if (dorm__pg_config_parse(url, opts, &cfg, &err) != 0) {
    FUZZ_CHECK(err.code && err.message[0], "refusal without message");
    return;
  }
  FUZZ_CHECK(cfg.pool_size >= 1 && cfg.pool_size <= 1000, "pool_size %d",
             cfg.pool_size);
  for (size_t i = 0; i < cfg.nkeys; i++)
    FUZZ_CHECK(cfg.keys[i] && cfg.vals[i], "key %zu unset", i);
  FUZZ_CHECK(!cfg.keys[cfg.nkeys], "keys not NULL-terminated");
  size_t nh = dorm__pg_host_count(&cfg);
  FUZZ_CHECK(nh >= 1, "no host");
  for (size_t first = 0; first < nh && first < 4; first++) {
    const char **keys, **vals;
    char **owned;
    if (dorm__pg_hosts_rotated(&cfg, first, &keys, &vals, &owned) == 0) {
      size_t n = 0;
      while (keys[n]) {
        FUZZ_CHECK(vals[n], "rotated value %zu unset", n);
        n++;
      }
      dorm__pg_hosts_free(keys, vals, owned, n);
    }
    size_t at = dorm__pg_host_index(&cfg, first, "localhost", "5432");
    FUZZ_CHECK(at < nh || at == 0, "host index %zu of %zu", at, nh);
  }
  dorm__pg_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *url = fuzz_cstr(data, size);
  dorm_error err;

  dorm_error_clear(&err);
  char *path = NULL;
  if (dorm__sqlite_url_parse(url, &path, &err) == 0)
    FUZZ_CHECK(!err.code, "accepted with an error set");
  else
    FUZZ_CHECK(err.code && err.message[0] && !path, "bad sqlite refusal");
  dorm__free(path);

  pg_one(url, NULL);
  dorm_db_options o;
  memset(&o, 0, sizeof o);
  o.pgbouncer = 1;
  o.pool_size = 3;
  pg_one(url, &o);

  char **urls;
  size_t n;
  dorm_error_clear(&err);
  if (dorm__pg_split_urls(url, &urls, &n, &err) == 0) {
    for (size_t i = 0; i < n && i < 8; i++) pg_one(urls[i], NULL);
    dorm__pg_urls_free(urls, n);
  } else {
    FUZZ_CHECK(err.message[0], "refusal without message");
  }
  (void)cli_url_dialect(url);
  free(url);
  return 0;
}
