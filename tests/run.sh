#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/run.sh — run every test program: the plain build, the ASan+UBSan
# build, and valgrind over the plain build, against a throwaway PostgreSQL
# and a throwaway scale-out cluster that this script starts and removes.  Ends with "N passed, N failed".
#
#   sh tests/run.sh          the full suite (make test)
#   sh tests/run.sh quick    the edit loop (make test-quick): the plain build
#                            only, no PostgreSQL, no sanitizers, no valgrind
#
# The rule that makes quick work for any program (docs/testing.md): with
# DORM_TEST_PG unset the run has no PostgreSQL, and a program runs what it
# can without one and skips the rest, saying so; a program that can do
# nothing without a server exits 77 (tests/support/support.h).  Quick
# mode unsets DORM_TEST_PG and reports 77 as "skip"; the full suite always
# sets it, so there a 77 is a failure: make test skips nothing.
# The fuzz replayers (build/tests/test_fuzz_*, fuzz/replay.c) are among the
# programs: run from here without arguments they replay fuzz/corpus/<name>
# and fuzz/crashes/<name> (docs/testing.md).
set -u
cd "$(dirname "$0")/.."
mode=full
case "${1:-}" in
  quick) mode=quick ;;
  "") ;;
  *) echo "usage: sh tests/run.sh [quick]" >&2; exit 2 ;;
esac
. tests/pg_harness.sh

# the scale-out cluster (primary, two replicas, PgBouncer) for test_db's
# replica and PgBouncer runs; test_scaleout starts its own, since it kills
# and promotes servers
if [ "$mode" = full ]; then
  CLUSTER_DIR=/tmp/dorm-run-cluster.$$
  trap 'pg_harness_stop; sh tests/pg_cluster.sh stop "$CLUSTER_DIR"' EXIT INT TERM
  pg_harness_start || { echo "run.sh: could not start PostgreSQL" >&2; exit 1; }
  sh tests/pg_cluster.sh start "$CLUSTER_DIR" || {
    echo "run.sh: could not start the scale-out cluster" >&2; exit 1; }
  eval "$(sh tests/pg_cluster.sh env "$CLUSTER_DIR")"
  export DORM_CLUSTER_PRIMARY DORM_CLUSTER_REPLICAS DORM_CLUSTER_BOUNCER
else
  # no server in this run: every program sees the same (docs/testing.md)
  unset DORM_TEST_PG DORM_CLUSTER_PRIMARY DORM_CLUSTER_REPLICAS \
    DORM_CLUSTER_BOUNCER
fi

run_start=$(date +%s)
passed=0
failed=0
skipped=0
failures=""

run_one() {  # label, command...
  label=$1; shift
  log=$(mktemp /tmp/dorm-test.XXXXXX)
  t0=$(date +%s%N)
  "$@" >"$log" 2>&1
  rc=$?
  # the seconds it took, so the slow programs of the suite are known
  secs=$(awk "BEGIN { printf \"%.1f\", ($(date +%s%N) - $t0) / 1e9 }")
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1))
    if grep -q '^\[ SKIPPED  \]' "$log"; then
      echo "ok    $label (parts skipped) ${secs}s"
    else
      echo "ok    $label ${secs}s"
    fi
  elif [ "$rc" = 77 ] && [ "$mode" = quick ]; then
    skipped=$((skipped + 1))
    echo "skip  $label (needs PostgreSQL)"
  else
    failed=$((failed + 1))
    failures="$failures $label"
    echo "FAIL  $label ${secs}s"
    [ "$rc" = 77 ] && echo "  (exit 77: skipped, which the full suite never may)"
    tail -n 60 "$log"
  fi
  rm -f "$log"
}

VG="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect"

for t in build/tests/test_*; do
  [ -x "$t" ] || continue
  case "$t" in *.o|*.d) continue ;; esac
  name=$(basename "$t")
  # a program whose source is gone (a split or renamed test) is stale
  case "$name" in
    test_fuzz_*) ;;
    *) [ -f "tests/$name.c" ] || continue ;;
  esac
  run_one "$name" "$t"
  [ "$mode" = quick ] && continue
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
echo "in $(( $(date +%s) - run_start )) s"
if [ "$mode" = quick ]; then
  echo "$passed passed, $failed failed, $skipped skipped (quick: no PostgreSQL, no sanitizers)"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" = 0 ]
