#!/bin/sh
# SPDX-License-Identifier: MIT
# tools/install-deps.sh — install what dorm needs on a Debian machine.
#
# Checked with pkg-config (and a header or binary where a package ships no
# .pc file) first, so a machine that has everything pays nothing.  Runs
# apt-get as root, or through sudo.
set -eu

missing=""
need_pc() { pkg-config --exists "$1" 2>/dev/null || missing="$missing $2"; }
need_pc libuv libuv1-dev
need_pc jansson libjansson-dev
need_pc cmocka libcmocka-dev
need_pc sqlite3 libsqlite3-dev
need_pc libpq libpq-dev
[ -f /usr/include/http_parser.h ] || missing="$missing libhttp-parser-dev"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
# tests/pg_cluster.sh runs its own /usr/sbin/pgbouncer with its own ini on a
# free port; the package's system service (localhost:6432, started where
# systemd runs) is never used and does not get in the way.
[ -x /usr/sbin/pgbouncer ] || missing="$missing pgbouncer"
command -v valgrind >/dev/null 2>&1 || missing="$missing valgrind"
command -v sqlite3 >/dev/null 2>&1 || missing="$missing sqlite3"
# the differential test (tests/oracle/) runs the same queries through
# Django 3.2 on the suite's PostgreSQL: Debian's packages, for Debian's
# python3 (a python3 earlier on PATH may not see them)
/usr/bin/python3 -c 'import django' >/dev/null 2>&1 || missing="$missing python3-django"
/usr/bin/python3 -c 'import psycopg2' >/dev/null 2>&1 || missing="$missing python3-psycopg2"
# tests/test_metrics.c parses `dorm serve --metrics` with the Prometheus
# project's own text-format parser
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || missing="$missing python3-prometheus-client"

[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: need root or sudo to install:$missing" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing pkg-config >/dev/null
