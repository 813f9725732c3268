#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/peers.sh — run the peers beside dorm's own benchmarks, in one
# run, so the figures can be compared as ratios (docs/performance.md).
# The peers are not part of this repository: they are read from
# $DORM_PEERS, by default ../shared/peers beside it; without them the
# script says so and runs dorm's side only.
#
#   sh bench/peers.sh b1     Knex, Kysely and Django compile the B1 query
#
# Peers are installed on first use into build/peers (Node packages from
# the npm registry, Django from Debian); nothing of theirs is committed.
set -eu
cd "$(dirname "$0")/.."
PEERS=${DORM_PEERS:-${DORM_PEERS_DIR:-../shared/peers}}
what=${1:-b1}

setup_node() {
  [ -d build/peers/node/node_modules/knex ] && return 0
  mkdir -p build/peers/node
  cp "$PEERS/node/package.json" build/peers/node/
  (cd build/peers/node && npm install --no-audit --no-fund knex kysely >/dev/null 2>&1)
}
setup_django() {
  /usr/bin/python3 -c "import django, psycopg2" 2>/dev/null && return 0
  apt-get install -y -qq python3-django python3-psycopg2 >/dev/null 2>&1 || true
}

case "$what" in
b1)
  make --no-print-directory OPT="-O2 -g -DNDEBUG" build/bench/bench_compile >/dev/null
  dorm=$(./build/bench/bench_compile | sed -n 's/.*fresh query each time): \([0-9.]*\) ns.*/\1/p')
  echo "dorm:   $dorm ns/query"
  if [ ! -d "$PEERS/node" ]; then
    echo "peers: none at $PEERS (set DORM_PEERS): Knex, Kysely and Django skipped"
    exit 0
  fi
  setup_node || true
  knex=""
  if [ -d build/peers/node/node_modules/knex ]; then
    cp "$PEERS/node/knex_compile.js" build/peers/node/
    out=$(cd build/peers/node && node knex_compile.js 2>/dev/null | grep 'build+compile')
    echo "$out"
    knex=$(echo "$out" | sed -n 's/^knex build+compile: \([0-9.]*\) us.*/\1/p')
  fi
  setup_django
  django=""
  if /usr/bin/python3 -c 'import django, psycopg2' 2>/dev/null; then
    out=$(/usr/bin/python3 "$PEERS/django_compile.py" | tail -n 1)
    echo "$out"
    django=$(echo "$out" | sed -n 's/.*build+compile: \([0-9.]*\) us.*/\1/p')
  fi
  [ -n "$knex" ] && awk -v d="$dorm" -v k="$knex" 'BEGIN{printf "B1: dorm is %.0fx faster than Knex (target >= 45x)\n", k*1000/d}'
  [ -n "$django" ] && awk -v d="$dorm" -v k="$django" 'BEGIN{printf "B1: dorm is %.0fx faster than Django\n", k*1000/d}'
  ;;
*)
  echo "usage: sh bench/peers.sh b1" >&2
  exit 2
  ;;
esac
