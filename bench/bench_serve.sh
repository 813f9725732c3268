#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/bench_serve.sh — B5 (docs/performance.md): `dorm serve` against
# express 5 + postgres.js on the same primary-key endpoint, same session.
#
#   sh bench/bench_serve.sh            (after `make`; needs wrk, node)
#
# Starts a throwaway PostgreSQL (its own data directory; sockets in its
# temp dir and in /var/run/postgresql, where the Node peer looks), fills it
# with `pgbench -i -s 1` (pgbench_accounts: 100,000 rows), then runs
#   wrk -t2 -c64 -d10s -s rand.lua --latency
# against `dorm serve` (GET /api/account/<aid>) and against the unchanged
# peer node/express_pk.js of the peers (GET /api/account/:id, pool of 4
# like dorm's default), and prints requests/s, p99 and the ratio.  Then it
# keeps wrk on dorm until at least 1,000,000 requests have been answered
# and prints the server's RSS before and after (memory must stay flat).
# Tunables: DURATION (10s), LONG (30s per memory round), CONNS (64).
#
# The peers are not part of this repository: they are read from
# $DORM_PEERS, by default ../shared/peers beside it.  B5 needs them (wrk's
# rand.lua and the express peer): without them the script says so and
# stops.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PEERS=${DORM_PEERS:-$ROOT/../shared/peers}/node
[ -f "$PEERS/rand.lua" ] || {
  echo "bench_serve: no peers at $PEERS (set DORM_PEERS to the peers directory): B5 needs their rand.lua and express_pk.js" >&2
  exit 1
}
DURATION=${DURATION:-10s}
LONG=${LONG:-30s}
CONNS=${CONNS:-64}
DORM_PORT=${DORM_PORT:-18000}
NODE_PORT=${NODE_PORT:-18001}
PGPORT_B=${PGPORT_B:-54331}

command -v wrk >/dev/null || { echo "bench_serve: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x build/dorm ] || { echo "bench_serve: build/dorm missing: run make" >&2; exit 1; }

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
TMP=$(mktemp -d /tmp/dorm-b5.XXXXXX)
chmod 755 "$TMP"
asdb() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$TMP"
DPID=""; NPID=""
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null || true
  [ -n "$NPID" ] && kill "$NPID" 2>/dev/null || true
  asdb "'$PGBIN/pg_ctl' -D '$TMP/data' -m immediate -w stop" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

SOCKS="$TMP"
[ -w /var/run/postgresql ] || [ "$(id -u)" = 0 ] && SOCKS="$TMP,/var/run/postgresql"
asdb "'$PGBIN/initdb' -D '$TMP/data' -A trust -U dorm -E UTF8 --no-sync" >"$TMP/initdb.log" 2>&1
asdb "'$PGBIN/pg_ctl' -D '$TMP/data' -l '$TMP/server.log' -w -o \"-k '$SOCKS' -p $PGPORT_B -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c max_connections=100\" start" >/dev/null
asdb "'$PGBIN/createdb' -h '$TMP' -p $PGPORT_B -U dorm bench"
asdb "'$PGBIN/pgbench' -i -s 1 -q -h '$TMP' -p $PGPORT_B -U dorm bench" >/dev/null 2>&1

cat >"$TMP/models.json" <<'EOF'
{"models": [{"name": "Account", "table": "pgbench_accounts", "fields": [
  {"name": "aid", "type": "integer", "primary_key": true},
  {"name": "bid", "type": "integer", "null": true},
  {"name": "abalance", "type": "integer", "null": true},
  {"name": "filler", "type": "varchar", "max_length": 84, "null": true}]}]}
EOF

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
run_wrk() { # url duration -> wrk output
  wrk -t2 -c"$CONNS" -d"$2" -s "$PEERS/rand.lua" --latency "$1"
}
req_s() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1 == "99%" {print $2}'; }
total() { awk '/requests in/ {print $1}'; }

# --- dorm serve ---
build/dorm serve --models "$TMP/models.json" \
  --db "host=$TMP port=$PGPORT_B user=dorm dbname=bench" \
  --port "$DORM_PORT" 2>"$TMP/serve.log" &
DPID=$!
for i in $(seq 100); do
  curl -fs "http://127.0.0.1:$DORM_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$DORM_PORT/api/account/1" >/dev/null
run_wrk "http://127.0.0.1:$DORM_PORT" 3s >/dev/null # warm-up
RSS0=$(rss $DPID)
run_wrk "http://127.0.0.1:$DORM_PORT" "$DURATION" >"$TMP/dorm.txt"

# --- express + postgres.js ---
(cd build/peers/node && NODE_PATH="$ROOT/build/peers/node/node_modules" \
  PGPORT=$PGPORT_B PGUSER=dorm PORT=$NODE_PORT exec node "$PEERS/express_pk.js") \
  >"$TMP/node.log" 2>&1 &
NPID=$!
for i in $(seq 100); do
  curl -fs "http://127.0.0.1:$NODE_PORT/api/account/1" >/dev/null 2>&1 && break
  sleep 0.1
done
run_wrk "http://127.0.0.1:$NODE_PORT" 3s >/dev/null # warm-up
run_wrk "http://127.0.0.1:$NODE_PORT" "$DURATION" >"$TMP/node.txt"
kill "$NPID"; wait "$NPID" 2>/dev/null || true; NPID=""

# --- dorm again, until a million requests: memory ---
N=0
while [ "$N" -lt 1000000 ]; do
  run_wrk "http://127.0.0.1:$DORM_PORT" "$LONG" >"$TMP/long.txt"
  N=$((N + $(total <"$TMP/long.txt")))
done
RSS1=$(rss $DPID)
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; STATUS=$?; DPID=""

D=$(req_s <"$TMP/dorm.txt"); DP=$(p99 <"$TMP/dorm.txt")
E=$(req_s <"$TMP/node.txt"); EP=$(p99 <"$TMP/node.txt")
echo "B5 — wrk -t2 -c$CONNS -d$DURATION, GET /api/account/<random aid>, PostgreSQL over a Unix socket"
printf '  %-30s %12s req/s   p99 %s\n' "dorm serve" "$D" "$DP"
printf '  %-30s %12s req/s   p99 %s\n' "express 5 + postgres.js" "$E" "$EP"
awk -v d="$D" -v e="$E" 'BEGIN { printf "  ratio dorm / node: %.1fx (target >= 5x)\n", d / e }'
echo "  dorm RSS: ${RSS0} kB after warm-up, ${RSS1} kB after $N more requests; exit status $STATUS after SIGTERM"
grep -c '" 200 ' "$TMP/serve.log" | awk '{print "  access-log lines with 200:", $1}'
