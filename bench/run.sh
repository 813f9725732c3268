#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/run.sh — run every benchmark program in build/bench/ in turn.
# Each prints its medians and its ratio to a peer or ceiling measured in
# the same run (docs/performance.md).  Peers that need Node.js or
# Python packages are run by bench/peers.sh when those are installed.
set -u
cd "$(dirname "$0")/.."
status=0
for b in build/bench/bench_*; do
  case "$b" in *.o|*.d) continue ;; esac
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b" || status=1
done
# benchmarks that are scripts (they drive the dorm command)
for b in bench/bench_*.sh; do
  [ -f "$b" ] || continue
  case "$b" in *serve*) continue ;; esac  # B5 needs wrk and Node: run it by hand
  echo "== $(basename "$b")"
  sh "$b" || status=1
done
exit $status
