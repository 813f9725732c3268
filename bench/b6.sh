#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/b6.sh — B6 (docs/performance.md): a 4-column table streamed
# whole, dorm beside psql's COPY, in the same run on a throwaway server
# (tests/pg_harness.sh: private socket, fsync off).
#
#   sh bench/b6.sh [rows...]        (default: 1000000 5000000)
#
# For each row count: the table b6 (id bigint, a integer, b varchar(32),
# c double precision) is filled with generate_series and VACUUMed, then
# 1. psql -c "COPY (SELECT id, a, b, c FROM b6 ORDER BY id) TO STDOUT"
#    > /dev/null: the server's fastest way out, no decoding (the ceiling)
# 2. dorm: build/bench/bench_stream, dorm_async_iterate, 1,000 rows a
#    chunk (the fastest here: a chunk stays in the CPU caches), every
#    value decoded; its peak RSS (getrusage)
# 3. Bun.sql reading the same rows, when the peers' Bun runtime is there
#    ($DORM_PEERS, by default ../shared/peers; else said and skipped)
# and prints dorm's rate as a fraction of COPY's (target >= 0.8) and its
# peak RSS (target < 32 MiB whatever the row count).
set -u
cd "$(dirname "$0")/.."
COUNTS=${*:-1000000 5000000}
PEERS=${DORM_PEERS:-../shared/peers}
BUN="$PEERS/bun/node_modules/@oven/bun-linux-x64/bin/bun"
. tests/pg_harness.sh
trap 'pg_harness_stop' EXIT INT TERM
pg_harness_start >/dev/null || { echo "b6: could not start PostgreSQL" >&2; exit 1; }
H="-h $DORM_TEST_PGSOCK -p $DORM_TEST_PGPORT -U dorm"
BIN=$DORM_TEST_PGBIN
pg_harness_run "'$BIN/createdb' $H bench" || exit 1
CONN="host=$DORM_TEST_PGSOCK port=$DORM_TEST_PGPORT user=dorm dbname=bench"
[ -x build/bench/bench_stream ] || make --no-print-directory build/bench/bench_stream >/dev/null
psql_q() { pg_harness_run "'$BIN/psql' $H -X -q -d bench -c \"$1\"" ; }
now() { date +%s.%N; }

echo "B6 — a 4-column table streamed whole (machine: $(nproc) cores, shared; figures vary run to run)"
for n in $COUNTS; do
  psql_q "DROP TABLE IF EXISTS b6; CREATE TABLE b6 (id bigint PRIMARY KEY, a integer NOT NULL, b varchar(32) NOT NULL, c double precision NOT NULL); INSERT INTO b6 SELECT x, x % 1000, 'label ' || x, x / 7.0 FROM generate_series(1, $n) x" >/dev/null 2>&1 || exit 1
  psql_q "VACUUM ANALYZE b6" >/dev/null || exit 1
  echo "-- $n rows"
  # warm the cache once; then each side three times, interleaved, best
  # of three (the machine is shared: the best run is the least disturbed)
  psql_q "COPY (SELECT id, a, b, c FROM b6 ORDER BY id) TO STDOUT" >/dev/null
  best_copy=0 best_dorm=0 best_line=""
  for round in 1 2 3; do
    t0=$(now)
    pg_harness_run "'$BIN/psql' $H -X -q -d bench -c 'COPY (SELECT id, a, b, c FROM b6 ORDER BY id) TO STDOUT'" >/dev/null || exit 1
    t1=$(now)
    r=$(awk "BEGIN { printf \"%.0f\", $n / ($t1 - $t0) }")
    [ "$r" -gt "$best_copy" ] && best_copy=$r
    out=$(build/bench/bench_stream "$CONN" 1000) || { echo "b6: bench_stream failed: $out" >&2; exit 1; }
    r=$(echo "$out" | sed -n 's/.*= \([0-9]*\) rows\/s.*/\1/p')
    if [ "$r" -gt "$best_dorm" ]; then best_dorm=$r; best_line=$out; fi
  done
  echo "psql COPY (SELECT ...) TO STDOUT > /dev/null: $best_copy rows/s  [ceiling]"
  echo "$best_line"
  echo "dorm / COPY: $(awk "BEGIN { printf \"%.2f\", $best_dorm / $best_copy }")x  (best of 3 each)"
  if [ -x "$BUN" ]; then
    cat >"$PG_TMP/b6_bun.js" <<'JS'
const { SQL } = Bun;
const sql = new SQL({});
const t0 = performance.now();
let n = 0, sum = 0;
const rows = await sql`SELECT id, a, b, c FROM b6 ORDER BY id`;
for (const r of rows) { n++; sum += Number(r.a); }
const s = (performance.now() - t0) / 1000;
console.log(`Bun.sql: ${n} rows in ${s.toFixed(3)} s = ${(n / s).toFixed(0)} rows/s, peak RSS ${(process.memoryUsage().rss / 1048576).toFixed(1)} MiB (whole result)`);
await sql.end();
JS
    PGHOST=$DORM_TEST_PGSOCK PGPORT=$DORM_TEST_PGPORT PGUSER=dorm PGDATABASE=bench "$BUN" "$PG_TMP/b6_bun.js"
  else
    echo "Bun.sql: skipped (no Bun runtime at $BUN: see $PEERS/README.md)"
  fi
done
