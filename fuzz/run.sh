#!/bin/sh
# SPDX-License-Identifier: MIT
# fuzz/run.sh — run the libFuzzer harnesses built by `make fuzz`.
#
#   sh fuzz/run.sh SECONDS NAME...
#
# Each harness runs alone (one process: the machine may be shared) for
# SECONDS, from the committed seeds (fuzz/corpus/<name>, read only) plus
# its working corpus build-fuzz/corpus/<name>, where new inputs go, with
# the dictionary fuzz/<name>.dict.  A crash, leak, timeout or sanitizer
# report stops that harness and leaves the input in
# build-fuzz/crashes/<name>/; once the bug is fixed, copy it into
# fuzz/crashes/<name>/ so `make test` replays it from then on.
# FUZZ_ARGS adds libFuzzer flags (e.g. "-fork=1 -ignore_crashes=1" to go
# on past crashes).  Exits 1 when any harness found something.
set -u
cd "$(dirname "$0")/.."
secs=$1; shift
status=0
for n in "$@"; do
  bin=build-fuzz/fuzz/fuzz_$n
  mkdir -p "build-fuzz/corpus/$n" "build-fuzz/crashes/$n"
  dict=""
  [ -f "fuzz/$n.dict" ] && dict="-dict=fuzz/$n.dict"
  # the saved crash inputs run first, under clang's sanitizers too
  crashes=""
  [ -d "fuzz/crashes/$n" ] && crashes="fuzz/crashes/$n"
  echo "== fuzz_$n: $secs s"
  # shellcheck disable=SC2086
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 $dict -artifact_prefix="build-fuzz/crashes/$n/" \
      ${FUZZ_ARGS:-} "build-fuzz/corpus/$n" "fuzz/corpus/$n" $crashes; then
    echo "!! fuzz_$n found a problem: build-fuzz/crashes/$n/" >&2
    status=1
  fi
done
exit $status
