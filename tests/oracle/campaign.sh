#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/oracle/campaign.sh — `make oracle N=...`: the differential test with
# fresh random seeds on a throwaway PostgreSQL of its own.
#
#   sh tests/oracle/campaign.sh N [oracle.py options...]
#
# Prints each disagreement class once (shrunk, with the answers and the SQL)
# and the figures: queries run, agreements, disagreements by shape.
set -u
cd "$(dirname "$0")/../.."
N=${1:-2000}
[ $# -gt 0 ] && shift
. tests/pg_harness.sh
trap 'pg_harness_stop' EXIT INT TERM
pg_harness_start || { echo "campaign: could not start PostgreSQL" >&2; exit 1; }
/usr/bin/python3 tests/oracle/oracle.py --campaign "$N" "$@"
