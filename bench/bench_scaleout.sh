#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/bench_scaleout.sh — B2's lookups (bench/bench_pg.c: dorm_async_get by
# random primary key, rows decoded, 256 in flight) on a throwaway scale-out
# cluster (tests/pg_cluster.sh), three ways in one run:
#
#   1. the primary alone
#   2. the primary and its two streaming replicas (reads go to the
#      replicas: docs/scaleout.md)
#   3. through PgBouncer in transaction pooling mode (?pgbouncer=1: unnamed
#      statements, one pipeline segment in flight per connection)
#
#   sh bench/bench_scaleout.sh [seconds]
#
# On one machine all servers share its cores, so replicas add no capacity
# here: the figures show what routing and PgBouncer cost, not what more
# machines would give.
set -u
cd "$(dirname "$0")/.."
SECS=${1:-5}
DIR=/tmp/dorm-bench-cluster.$$
trap 'sh tests/pg_cluster.sh stop "$DIR"' EXIT INT TERM
sh tests/pg_cluster.sh start "$DIR" || { echo "scaleout: no cluster" >&2; exit 1; }
eval "$(sh tests/pg_cluster.sh env "$DIR")"
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
"$BIN/pgbench" -i -s 1 -q "$DORM_CLUSTER_PRIMARY" >/dev/null 2>&1 || {
  echo "scaleout: pgbench -i failed" >&2; exit 1; }
# wait until both replicas have the table
for i in $(seq 1 100); do
  n=0
  for p in $(echo "$DORM_CLUSTER_PORTS" | tr ',' ' '); do
    c=$(psql -X -A -t -q "postgresql://dorm@127.0.0.1:$p/dorm_test" \
        -c "SELECT count(*) FROM pgbench_accounts" 2>/dev/null)
    [ "$c" = 100000 ] && n=$((n + 1))
  done
  [ $n = 3 ] && break
  sleep 0.1
done
[ -x build/bench/bench_pg ] || make --no-print-directory build/bench/bench_pg >/dev/null

echo "B2 lookups on the scale-out cluster, ${SECS}s each"
echo "primary alone:"
DORM_BENCH_POOLS=2 DORM_BENCH_PG="$DORM_CLUSTER_PRIMARY" build/bench/bench_pg "$SECS" 256
echo "primary + 2 replicas (reads on the replicas, 2 connections each):"
DORM_BENCH_POOLS=2 DORM_BENCH_REPLICAS="$DORM_CLUSTER_REPLICAS" \
  DORM_BENCH_PG="$DORM_CLUSTER_PRIMARY" build/bench/bench_pg "$SECS" 256
echo "through PgBouncer (transaction pooling):"
DORM_BENCH_POOLS=2,8 DORM_BENCH_PG="$DORM_CLUSTER_BOUNCER?pgbouncer=1" \
  build/bench/bench_pg "$SECS" 256
