#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/b4_pg.sh — B4 on PostgreSQL (docs/performance.md): 100,000 rows
# through dorm_async_bulk_create (COPY FROM STDIN, the query built inside
# the timing) beside psql's \copy of the same rows as CSV into the same
# table, in the same run, on a throwaway server (tests/pg_harness.sh:
# private socket, fsync off).  Also the same rows by multi-row INSERT (the
# path COPY replaced).
#
#   sh bench/b4_pg.sh [runs]
#
# psql's figure is its process's wall time (start, connect, \copy, exit):
# a few milliseconds more than the copy itself.  dorm's starts once it is
# connected.  Medians of the runs, interleaved.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-5}
. tests/pg_harness.sh
trap 'pg_harness_stop' EXIT INT TERM
pg_harness_start >/dev/null || { echo "b4: could not start PostgreSQL" >&2; exit 1; }
H="-h $DORM_TEST_PGSOCK -p $DORM_TEST_PGPORT -U dorm"
BIN=$DORM_TEST_PGBIN
pg_harness_run "'$BIN/createdb' $H bench" || exit 1
CONN="host=$DORM_TEST_PGSOCK port=$DORM_TEST_PGPORT user=dorm dbname=bench"
[ -x build/bench/bench_bulk ] || make --no-print-directory build/bench/bench_bulk >/dev/null
CSV="$PG_TMP/b4.csv"
build/bench/bench_bulk csv "$CSV" || exit 1
chmod 644 "$CSV"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
: >"$PG_TMP/dorm" ; : >"$PG_TMP/psql" ; : >"$PG_TMP/insert"
i=0
while [ $i -lt "$RUNS" ]; do
  i=$((i + 1))
  DORM_BENCH_PG="$CONN" build/bench/bench_bulk copy | sed -n 's/^rows\/s //p' >>"$PG_TMP/dorm"
  # psql \copy into the table bench_bulk left (emptied first)
  "$BIN/psql" $H -d bench -qc "TRUNCATE author" >/dev/null
  t0=$(date +%s.%N)
  "$BIN/psql" $H -d bench -qc "\\copy author (name, age, country) FROM '$CSV' WITH (FORMAT csv)" >/dev/null || exit 1
  t1=$(date +%s.%N)
  awk "BEGIN { printf \"%.0f\n\", 100000 / ($t1 - $t0) }" >>"$PG_TMP/psql"
  DORM_BENCH_PG="$CONN" build/bench/bench_bulk insert | sed -n 's/^rows\/s //p' >>"$PG_TMP/insert"
done
echo "B4 on PostgreSQL — 100,000 rows, $RUNS runs each, interleaved (medians; every run)"
d=$(median <"$PG_TMP/dorm"); p=$(median <"$PG_TMP/psql"); n=$(median <"$PG_TMP/insert")
# printf, not echo: dash's echo reads "\c" as an escape
printf '%s\n' "psql \\copy (CSV):                          $p rows/s   [$(tr '\n' ' ' <"$PG_TMP/psql")]"
echo "dorm_async_bulk_create (COPY, incl. build):  $d rows/s   [$(tr '\n' ' ' <"$PG_TMP/dorm")]"
echo "dorm multi-row INSERT (the old path):        $n rows/s   [$(tr '\n' ' ' <"$PG_TMP/insert")]"
awk "BEGIN { printf \"dorm COPY / psql copy: %.2f×   (target ≥ 0.8×); INSERT / psql: %.2f×\n\", $d / $p, $n / $p }"
