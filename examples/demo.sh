#!/bin/sh
# examples/demo.sh — build the blog example against libdorm.a and run it on
# the embedded default, SQLite (a database file in a fresh temporary
# directory: no server needed).  `make demo` runs this.
set -eu
cd "$(dirname "$0")/.."
make --no-print-directory build/examples/blog/blog >/dev/null
dir=$(mktemp -d /tmp/dorm-demo.XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
./build/examples/blog/blog examples/blog/models.json "sqlite:///$dir/blog.db"
