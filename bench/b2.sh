#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/b2.sh — B2 (docs/performance.md): PostgreSQL primary-key
# lookups, many in flight, dorm beside its ceiling and peers, all in the same run on a
# throwaway server (tests/pg_harness.sh: private socket, fsync off).
#
#   sh bench/b2.sh [seconds]
#
# 1. pgbench -i -s 1 (100,000 accounts)
# 2. the ceiling: pgbench with the peers' pipe.sql (10 point selects
#    per \startpipeline), 2 clients, -M prepared
#    and the same pipeline with B2's own query (aid, bid, abalance,
#    filler; a new random key per select), the server work dorm asks for
# 3. pgbench -S -M prepared, 4 clients (no pipelining), for reference
# 4. dorm: build/bench/bench_pg, dorm_async_get with rows decoded, 256 in
#    flight, pools of 2 and 4, each without and then with a counting query
#    hook (dorm/observe.h)
# 5. postgres.js and node-postgres (the peers' node/pg_pk.js) when
#    their packages are in build/peers/node/node_modules
# and prints dorm's ratio to the ceiling.
#
# The peers are not part of this repository: they are read from
# $DORM_PEERS, by default ../shared/peers beside it.  Without them the
# pipe.sql ceiling and the Node peers are skipped, and the script says so.
set -u
cd "$(dirname "$0")/.."
SECS=${1:-10}
PEERS=${DORM_PEERS:-../shared/peers}
if [ ! -f "$PEERS/pipe.sql" ]; then
  echo "b2: no peers at $PEERS (set DORM_PEERS): the pipe.sql ceiling and the Node peers are skipped"
  PEERS=""
fi
. tests/pg_harness.sh
trap 'pg_harness_stop' EXIT INT TERM
pg_harness_start >/dev/null || { echo "b2: could not start PostgreSQL" >&2; exit 1; }
H="-h $DORM_TEST_PGSOCK -p $DORM_TEST_PGPORT -U dorm"
BIN=$DORM_TEST_PGBIN
pg_harness_run "'$BIN/createdb' $H bench" || exit 1
pg_harness_run "'$BIN/pgbench' $H -i -s 1 -q bench >/dev/null 2>&1" || {
  echo "b2: pgbench -i failed" >&2; exit 1; }
CONN="host=$DORM_TEST_PGSOCK port=$DORM_TEST_PGPORT user=dorm dbname=bench"
[ -x build/bench/bench_pg ] || make --no-print-directory build/bench/bench_pg >/dev/null

pgb() {  # label, pgbench arguments; prints queries/s
  out=$(pg_harness_run "'$BIN/pgbench' $H -n -T $SECS $* bench 2>&1")
  echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1
}
echo "B2 — primary-key lookups on pgbench_accounts (scale 1), ${SECS}s each"
ceiling=0
if [ -n "$PEERS" ]; then
  cp "$PEERS/pipe.sql" "$PG_TMP/pipe.sql"
  chmod 644 "$PG_TMP/pipe.sql"
  tps=$(pgb -M prepared -c 2 -j 2 -f "$PG_TMP/pipe.sql")
  ceiling=$(awk "BEGIN { printf \"%.0f\", ${tps:-0} * 10 }")
  echo "pgbench pipeline (10 selects per pipeline, 2 clients): $ceiling queries/s  [ceiling]"
fi
# the ceiling with B2's query: pipe.sql selects one int column of the same
# key ten times; B2 reads the whole row (84-byte filler included) of a new
# key each time, which costs the server more per query
{ # printf, not echo: dash's echo reads "\e" as an escape
  for i in 1 2 3 4 5 6 7 8 9 10; do printf '\\set a%s random(1, 100000)\n' $i; done
  printf '%s\n' '\startpipeline'
  for i in 1 2 3 4 5 6 7 8 9 10; do
    printf 'SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid = :a%s;\n' $i
  done
  printf '%s\n' '\endpipeline'
} >"$PG_TMP/pipe_b2.sql"
chmod 644 "$PG_TMP/pipe_b2.sql"
tps=$(pgb -M prepared -c 2 -j 2 -f "$PG_TMP/pipe_b2.sql")
same=$(awk "BEGIN { printf \"%.0f\", ${tps:-0} * 10 }")
echo "pgbench pipeline with B2's query (whole row, new key each): $same queries/s"
tps=$(pgb -M prepared -S -c 4 -j 2)
echo "pgbench -S -M prepared, 4 clients: $(awk "BEGIN { printf \"%.0f\", ${tps:-0} }") queries/s"

out=$(DORM_BENCH_PG="$CONN" build/bench/bench_pg "$SECS" 256 both)
echo "$out"
echo "$out" | while IFS= read -r line; do
  q=$(echo "$line" | sed -n 's/.*: \([0-9]*\) queries\/s.*/\1/p')
  pool=$(echo "$line" | sed -n 's/.*pool \([0-9]*\),.*/\1/p')
  case "$line" in *"counting hook"*) pool="$pool (counting hook)" ;; esac
  [ -z "$q" ] && continue
  if [ "$ceiling" != 0 ]; then
    awk "BEGIN { printf \"  pool %s: %.1f%% of the pgbench pipeline ceiling, %.1f%% of the same pipeline with B2's query\n\", \"$pool\", 100 * $q / $ceiling, 100 * $q / $same }"
  else
    awk "BEGIN { printf \"  pool %s: %.1f%% of the pgbench pipeline with B2's query (no pipe.sql ceiling: no peers)\n\", \"$pool\", 100 * $q / $same }"
  fi
done

if [ -z "$PEERS" ]; then
  echo "peer: no peers directory (set DORM_PEERS): postgres.js and node-postgres skipped"
elif [ -d build/peers/node/node_modules/postgres ] && command -v node >/dev/null; then
  sed -e "s|database: 'bench'|database: 'bench', port: $DORM_TEST_PGPORT, username: 'dorm', user: 'dorm'|g" \
      -e "s|host: '/var/run/postgresql'|host: '$DORM_TEST_PGSOCK'|g" \
      -e "s|user: 'root', ||" \
      "$PEERS/node/pg_pk.js" > build/peers/node/pg_pk_b2.js
  (cd build/peers/node && node pg_pk_b2.js) 2>&1 | sed 's/^/peer: /'
else
  echo "peer: postgres.js not installed (cd build/peers/node && npm install postgres pg)"
fi
