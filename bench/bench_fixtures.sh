#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/bench_fixtures.sh — dumpdata and loaddata of N rows (default
# 1,000,000) of a 5-column model on SQLite and, with DORM_TEST_PG set
# (tests/pg_harness.sh), on PostgreSQL: wall time and peak RSS of each
# run, from /usr/bin/time -v.  The table is filled by the database itself
# (a recursive CTE, generate_series); each dump is loaded into an empty
# database of the same dialect, dumped back and compared byte for byte,
# and the two dialects' dumps are compared with each other.
#
#   sh bench/bench_fixtures.sh [build/dorm] [ROWS]
#   sh -c '. tests/pg_harness.sh; pg_harness_start; sh bench/bench_fixtures.sh; pg_harness_stop'
set -eu
DORM=$(cd "$(dirname "${1:-build/dorm}")" && pwd)/$(basename "${1:-build/dorm}")
N=${2:-1000000}
W=$(mktemp -d /tmp/dorm-bench-fx.XXXXXX)
PG=${DORM_TEST_PG:-}
SCHEMA="bench_fx_$$"
cleanup() {
  [ -n "$PG" ] && psql "$PG" -qAt -c "DROP SCHEMA IF EXISTS ${SCHEMA}_a CASCADE; DROP SCHEMA IF EXISTS ${SCHEMA}_b CASCADE" >/dev/null 2>&1
  rm -rf "$W"
}
trap cleanup EXIT
cd "$W"
cat > models.json <<'EOF'
{"models": [{"name": "Row", "table": "bench_row", "fields": [
  {"name": "name", "type": "varchar", "max_length": 40},
  {"name": "n", "type": "integer"},
  {"name": "price", "type": "decimal", "max_digits": 12, "decimal_places": 2},
  {"name": "at", "type": "datetime"}]}]}
EOF
"$DORM" makemigrations >/dev/null

# measure LABEL command...: one line "LABEL  wall s  CPU s  peak RSS kB"
# (CPU: user + system of the dorm process, SQLite's worker threads
# included, PostgreSQL's server not; steadier than wall time on a shared
# machine)
measure() {
  label=$1; shift
  /usr/bin/time -v "$@" 2>"$W/time" >"$W/stdout" || { cat "$W/time"; exit 1; }
  awk -v l="$label" -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0;
                                for (i = 1; i <= n; i++) s = s * 60 + p[i] }
    /User time/ { cpu += $2 }
    /System time/ { cpu += $2 }
    /Maximum resident/ { rss = $2 }
    END { printf "%-24s %7.2f s wall %7.2f s CPU %8d kB peak RSS\n", l, s, cpu, rss }' "$W/time"
}

echo "dumpdata / loaddata of $N rows (5 columns); the machine is shared"

# SQLite: fill, dump, load into an empty file, dump back
"$DORM" migrate --db "sqlite:///$W/a.db" >/dev/null 2>&1
sqlite3 "$W/a.db" "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $N)
  INSERT INTO bench_row (id, name, n, price, at)
  SELECT i, 'row ' || i, i % 1000, (i % 100000) || '.' || substr('0' || (i % 100), -2),
         strftime('%Y-%m-%d %H:%M:%f', 1700000000 + i, 'unixepoch')
  FROM s"
measure "SQLite dumpdata" "$DORM" dumpdata --db "sqlite:///$W/a.db" --output "$W/sqlite.json"
"$DORM" migrate --db "sqlite:///$W/b.db" >/dev/null 2>&1
measure "SQLite loaddata" "$DORM" loaddata --db "sqlite:///$W/b.db" "$W/sqlite.json"
"$DORM" dumpdata --db "sqlite:///$W/b.db" --output "$W/sqlite2.json"
cmp -s "$W/sqlite.json" "$W/sqlite2.json" || { echo "SQLite: the dump of the load differs"; exit 1; }
ls -l "$W/sqlite.json" | awk '{printf "  (dump: %d bytes; loaded and dumped back: identical)\n", $5}'

[ -n "$PG" ] || { echo "PostgreSQL: skipped (no DORM_TEST_PG)"; exit 0; }
psql "$PG" -qAt -c "CREATE SCHEMA ${SCHEMA}_a; CREATE SCHEMA ${SCHEMA}_b" >/dev/null
A="$PG options='-csearch_path=${SCHEMA}_a'"
B="$PG options='-csearch_path=${SCHEMA}_b'"
"$DORM" migrate --db "$A" >/dev/null 2>&1
psql "$A" -qAt -v ON_ERROR_STOP=1 -c "INSERT INTO bench_row (id, name, n, price, at)
  SELECT i, 'row ' || i, i % 1000, ((i % 100000) || '.' || lpad((i % 100)::text, 2, '0'))::numeric,
         to_timestamp(1700000000 + i) FROM generate_series(1, $N) AS i" >/dev/null
measure "PostgreSQL dumpdata" "$DORM" dumpdata --db "$A" --output "$W/pg.json"
"$DORM" migrate --db "$B" >/dev/null 2>&1
measure "PostgreSQL loaddata" "$DORM" loaddata --db "$B" "$W/pg.json"
"$DORM" dumpdata --db "$B" --output "$W/pg2.json"
cmp -s "$W/pg.json" "$W/pg2.json" || { echo "PostgreSQL: the dump of the load differs"; exit 1; }
cmp -s "$W/pg.json" "$W/sqlite.json" || { echo "the two dialects' dumps differ"; exit 1; }
echo "  (PostgreSQL's dump is byte-identical to SQLite's; loaded and dumped back: identical)"
