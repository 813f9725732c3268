#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/demo.sh — the blog example on the embedded default, SQLite (a
# database file in a fresh temporary directory: no server needed).
# `make demo` runs this after building dorm:
#   1. dorm migrate: the example's migrations on a new SQLite file;
#   2. examples/blog/blog.c: seed it through async creates, then run four
#      queries at once, printing their results and timings;
#   3. examples/blog/server.c on a free port: the dashboard, a feed client
#      (server-sent events), a create that commits and one that rolls back,
#      the event the feed receives; then SIGTERM, and the server exits 0.
set -eu
cd "$(dirname "$0")/.."
start=$(date +%s%N)
make --no-print-directory build/dorm build/examples/blog/blog \
  build/examples/blog/server build/examples/blog/client >/dev/null
dir=$(mktemp -d /tmp/dorm-demo.XXXXXX)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
db="sqlite:///$dir/blog.db"
client=build/examples/blog/client

echo "== dorm migrate --db $db"
build/dorm migrate --migrations examples/blog/migrations --db "$db" 2>&1

echo "== examples/blog/blog: seed through async creates, then query"
build/examples/blog/blog "$db"

echo "== examples/blog/server (dorm/http.h), on a free port"
build/examples/blog/server --db "$db" --port 0 2>"$dir/server.log" &
server=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\)\/.*/\1/p' "$dir/server.log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { cat "$dir/server.log"; exit 1; }
sed -n 's/^server: //p' "$dir/server.log"

# a feed client, waiting for one event
$client "$port" --events 1 /feed >"$dir/feed" &
feed=$!
for _ in $(seq 100); do
  grep -q subscribed "$dir/feed" && break
  sleep 0.05
done

short() { cut -c1-150 | sed 's/^\(.\{149\}\).$/\1.../'; }
echo "GET /            -> $($client "$port" GET / | short)"
echo "GET /feed        -> $(cat "$dir/feed"), waiting for an event"
body='{"author": 1, "headline": "Hello from make demo", "rating": 5, "tags": [1, 2]}'
echo "POST /entries    -> $($client "$port" POST /entries "$body" | short)"
body='{"author": 1, "headline": "Never stored", "tags": [1, 99]}'
echo "POST /entries    -> $($client "$port" POST /entries "$body")  (tag 99 does not exist: rolled back)"
wait "$feed"
echo "the feed got     -> $(tail -n 1 "$dir/feed" | short)"
kill -TERM "$server"
wait "$server"
server=""
echo "server stopped (SIGTERM): exit 0"
echo "== demo done in $(( ($(date +%s%N) - start) / 1000000 )) ms"
