#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/pg_harness.sh — a throwaway PostgreSQL for the test suite.
#
#   . tests/pg_harness.sh; pg_harness_start; ...; pg_harness_stop
#
# initdb into a temp dir, its own socket dir, Unix socket only (so no port
# can clash with anything), fsync off; run as the `postgres` user when we
# are root, since PostgreSQL refuses to run as root.  Exports:
#   DORM_TEST_PG        libpq conninfo of a fresh database dorm_test
#   DORM_TEST_PGDATA    the data directory; DORM_TEST_PGBIN its binaries
#   DORM_TEST_PGSOCK    the socket directory; DORM_TEST_PGPORT the port
# and DORM_TEST_PGCTL, a command prefix to run pg_ctl as the right user
# (tests that restart the server use it).

pg_harness_run() {  # run a command as the database's owner
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

pg_harness_start() {
  DORM_TEST_PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$DORM_TEST_PGBIN" ]; then
    echo "pg_harness: no PostgreSQL server installed" >&2
    return 1
  fi
  PG_TMP=$(mktemp -d /tmp/dorm-pg.XXXXXX)
  chmod 755 "$PG_TMP"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_TMP"
  DORM_TEST_PGDATA="$PG_TMP/data"
  DORM_TEST_PGSOCK="$PG_TMP"
  DORM_TEST_PGPORT=54329
  pg_harness_run "'$DORM_TEST_PGBIN/initdb' -D '$DORM_TEST_PGDATA' -A trust -U dorm -E UTF8 --no-sync >'$PG_TMP/initdb.log' 2>&1" || {
    cat "$PG_TMP/initdb.log" >&2; return 1; }
  pg_harness_run "'$DORM_TEST_PGBIN/pg_ctl' -D '$DORM_TEST_PGDATA' -l '$PG_TMP/server.log' -w -t 60 \
      -o \"-k '$PG_TMP' -p $DORM_TEST_PGPORT -c listen_addresses='' -c fsync=off \
          -c synchronous_commit=off -c full_page_writes=off -c max_connections=200\" start >/dev/null" || {
    cat "$PG_TMP/server.log" >&2; return 1; }
  pg_harness_run "'$DORM_TEST_PGBIN/createdb' -h '$PG_TMP' -p $DORM_TEST_PGPORT -U dorm dorm_test" || return 1
  DORM_TEST_PG="host=$PG_TMP port=$DORM_TEST_PGPORT user=dorm dbname=dorm_test"
  export DORM_TEST_PG DORM_TEST_PGDATA DORM_TEST_PGBIN DORM_TEST_PGSOCK DORM_TEST_PGPORT
}

pg_harness_stop() {
  [ -n "${PG_TMP:-}" ] || return 0
  pg_harness_run "'$DORM_TEST_PGBIN/pg_ctl' -D '$DORM_TEST_PGDATA' -m immediate -w stop >/dev/null 2>&1" || true
  rm -rf "$PG_TMP"
  PG_TMP=""
}
