#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/bench_migrations.sh — makemigrations and migrate --plan on a project
# of 200 models and 500 migrations (bench/gen_project.py).  Target: each
# under one second.
#
#   sh bench/bench_migrations.sh [build/dorm]
set -eu
DORM=$(cd "$(dirname "${1:-build/dorm}")" && pwd)/$(basename "${1:-build/dorm}")
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/dorm-bench-mig.XXXXXX)
trap 'rm -rf "$W"' EXIT
python3 "$HERE/gen_project.py" "$W" 200 500
cd "$W"
now() { date +%s.%N; }
t0=$(now); "$DORM" makemigrations --check >/dev/null; t1=$(now)
"$DORM" migrate --db "sqlite:///$W/db.sqlite3" --plan >/dev/null; t2=$(now)
"$DORM" migrate --db "sqlite:///$W/db.sqlite3" 2>/dev/null; t3=$(now)
"$DORM" migrate --db "sqlite:///$W/db.sqlite3" --plan >/dev/null; t4=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" 'BEGIN {
  printf "B-mig makemigrations (200 models, 500 migrations, no changes): %.3f s\n", b - a
  printf "B-mig migrate --plan (empty database, 500 to apply):            %.3f s\n", c - b
  printf "B-mig migrate (apply all 500 on SQLite):                         %.3f s\n", d - c
  printf "B-mig migrate --plan (all applied):                              %.3f s\n", e - d
  exit !((b - a) < 1 && (c - b) < 1 && (e - d) < 1)
}'
