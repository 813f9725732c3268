#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/run.sh — run every test program: the plain build, the ASan+UBSan
# build, and valgrind over the plain build, against a throwaway PostgreSQL
# and a throwaway scale-out cluster that this script starts and removes.  Ends with "N passed, N failed".
# The fuzz replayers (build/tests/test_fuzz_*, fuzz/replay.c) are among the
# programs: run from here without arguments they replay fuzz/corpus/<name>
# and fuzz/crashes/<name> (docs/testing.md).
set -u
cd "$(dirname "$0")/.."
. tests/pg_harness.sh

# the scale-out cluster (primary, two replicas, PgBouncer) for test_db's
# replica and PgBouncer runs; test_scaleout starts its own, since it kills
# and promotes servers
CLUSTER_DIR=/tmp/dorm-run-cluster.$$
trap 'pg_harness_stop; sh tests/pg_cluster.sh stop "$CLUSTER_DIR"' EXIT INT TERM
pg_harness_start || { echo "run.sh: could not start PostgreSQL" >&2; exit 1; }
sh tests/pg_cluster.sh start "$CLUSTER_DIR" || {
  echo "run.sh: could not start the scale-out cluster" >&2; exit 1; }
eval "$(sh tests/pg_cluster.sh env "$CLUSTER_DIR")"
export DORM_CLUSTER_PRIMARY DORM_CLUSTER_REPLICAS DORM_CLUSTER_BOUNCER

passed=0
failed=0
failures=""

run_one() {  # label, command...
  label=$1; shift
  log=$(mktemp /tmp/dorm-test.XXXXXX)
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "ok    $label"
  else
    failed=$((failed + 1))
    failures="$failures $label"
    echo "FAIL  $label"
    tail -n 60 "$log"
  fi
  rm -f "$log"
}

VG="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect"

for t in build/tests/test_*; do
  [ -x "$t" ] || continue
  case "$t" in *.o|*.d) continue ;; esac
  name=$(basename "$t")
  run_one "$name" "$t"
  [ -x "build-san/tests/$name" ] && run_one "$name [asan+ubsan]" \
    env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "build-san/tests/$name"
  if [ "${DORM_SKIP_VALGRIND:-0}" != 1 ] && command -v valgrind >/dev/null 2>&1; then
    run_one "$name [valgrind]" env DORM_UNDER_VALGRIND=1 $VG "$t"
  fi
  if [ -x "build-tsan/tests/$name" ]; then
    run_one "$name [tsan]" "build-tsan/tests/$name"
  fi
done

echo
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
