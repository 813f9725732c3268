#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/pg_cluster.sh — a throwaway PostgreSQL cluster for the scale-out tests.
#
# tests/pg_harness.sh gives the suite one server on a Unix socket; the
# scale-out tests (read replicas, failover, a transaction pooler in front)
# need a real topology instead: one primary, two streaming replicas made with
# `pg_basebackup -R`, and a PgBouncer in transaction pooling mode in front of
# the primary.  Everything lives in one directory the caller names, listens
# on 127.0.0.1 only (TCP, no Unix sockets: the tests connect the way a
# deployment would, and the socket paths cannot outgrow sun_path), on ports
# probed free at start, so several clusters can run side by side.  The
# servers and the pooler run as the `postgres` user when we are root, since
# neither agrees to run as root.  Durability is traded for speed (fsync and
# full_page_writes off) but synchronous_commit stays on, so that
# pg_current_wal_lsn() read after a commit covers that commit: the tests
# wait for a replica to replay up to it.
#
# As a command:
#   sh tests/pg_cluster.sh start DIR          # DIR absent or empty; silent on
#                                             # success, the logs and exit 1 on failure
#   sh tests/pg_cluster.sh env DIR            # KEY='value' lines, see pg_cluster_env
#   sh tests/pg_cluster.sh stop DIR           # stop everything, rm -rf DIR
#   sh tests/pg_cluster.sh kill NODE DIR      # NODE: primary, replica1, replica2
#   sh tests/pg_cluster.sh restart NODE DIR   # same port and data; waits for it
#   sh tests/pg_cluster.sh promote NODE DIR   # pg_promote() on a replica
#   sh tests/pg_cluster.sh freeze NODE DIR    # SIGSTOP the node's processes: a
#                                             # silent server (connections stay
#                                             # open, nothing answers)
#   sh tests/pg_cluster.sh thaw NODE DIR      # SIGCONT them (`stop` thaws too)
#   sh tests/pg_cluster.sh psql NODE DIR SQL  # NODE may also be `bouncer`
#
# `env` prints, all libpq URIs to dorm_test as user dorm (URIs, since a
# comma-separated list of keyword strings would be ambiguous):
#   DORM_CLUSTER_PRIMARY   postgresql://dorm@127.0.0.1:P0/dorm_test
#   DORM_CLUSTER_REPLICAS  the URIs of replica1 and replica2, comma-separated
#   DORM_CLUSTER_PORTS     P0,P1,P2 (primary, replica1, replica2)
#   DORM_CLUSTER_BOUNCER   dorm_test through PgBouncer (always in front of
#                          the node named primary, even after a promotion)
#   DORM_CLUSTER_FAILOVER  postgresql://dorm@127.0.0.1:P0,127.0.0.1:P1/dorm_test
#                          ?target_session_attrs=read-write
#   DORM_CLUSTER_DIR       DIR, absolute, for the later commands
#
# As a library (`. tests/pg_cluster.sh`): the same as pg_cluster_start DIR,
# pg_cluster_env DIR, pg_cluster_stop DIR, pg_cluster_kill NODE DIR, ...,
# and pg_cluster_export DIR, which exports the env variables into the
# calling shell.  PG_CLUSTER_TIMEOUT (seconds, default 30) bounds each wait.
# POSIX sh plus `local` (dash, bash and busybox sh all have it): a library
# sourced into run.sh must not overwrite the caller's variables.
#
# PgBouncer 1.18 in transaction mode, as seen with this set-up: pipelining
# works (many queries each with its own Sync in flight, unnamed statements),
# but a named prepared statement lives on whichever server connection
# served the PREPARE: the next transaction may get another one ("prepared
# statement ... does not exist"), and, there being no reset between clients,
# a statement name reused by another client can meet the old one ("...
# already exists").  With one client it happens to work (the same server
# connection comes back), which hides the problem.
#
# Layout of DIR: primary/ replica1/ replica2/ (data directories), NODE.log
# (server logs), NODE.basebackup.log, pgbouncer.ini, pgbouncer.users,
# pgbouncer.log, pgbouncer.pid, and pg_cluster.state (ports and binaries:
# the later commands read it, and `stop` only deletes a DIR that holds it).

# shellcheck disable=SC3043 # `local`, see above
PG_CLUSTER_NODES="primary replica1 replica2"

# Run a command line as the servers' owner.  `cd` first: su keeps the
# caller's working directory, and initdb/pg_ctl fail when postgres cannot
# enter it (/root, say).
pgc_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "cd / && $*"
  else
    sh -c "cd / && $*"
  fi
}

# Read KEY from DIR/pg_cluster.state (lines KEY=value, the last one wins).
pgc_get() {
  sed -n "s/^$2=//p" "$1/pg_cluster.state" 2>/dev/null | tail -n 1
}

pgc_set() {
  echo "$2=$3" >>"$1/pg_cluster.state"
}

# An absolute path, so that the state file and the servers' configuration
# stay right whatever directory later commands are run from.
pgc_abs() {
  case $1 in
    /*) echo "$1" ;;
    *) echo "$(pwd)/$1" ;;
  esac
}

# Is TCP port $1 free on 127.0.0.1?  ss where present (it sees every
# listener, whoever owns it), else a bind attempt in python3, else a connect
# attempt through bash's /dev/tcp.
pgc_port_free() {
  if command -v ss >/dev/null 2>&1; then
    ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c "import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1])))" "$1" 2>/dev/null
  else
    ! bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
  fi
}

# Print a free port at or above 25400: below Linux's ephemeral range
# (32768-60999), so no outgoing connection can take a node's port while it
# is down and `restart` can always have it back.  The scan starts at a random offset
# so that clusters started at the same moment rarely probe the same ports;
# when they do, the loser's bind fails and the callers retry with another
# port (pgc_start_server, pgc_start_bouncer), which closes the window between
# probing and binding.  Ports already given to this cluster are skipped: a
# port chosen for a node that is down is still that node's.
pgc_free_port() {
  local taken off p n
  taken=$(pgc_get "$1" PORTS_USED)
  off=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
  p=$((25400 + off % 2000))
  n=0
  while [ $n -lt 500 ]; do
    case ",$taken," in
      *",$p,"*) ;;
      *) if pgc_port_free $p; then
           pgc_set "$1" PORTS_USED "${taken:+$taken,}$p"
           echo $p
           return 0
         fi ;;
    esac
    p=$((p + 1))
    n=$((n + 1))
  done
  echo "pg_cluster: no free TCP port found from 25400" >&2
  return 1
}

# A client command with the caller's PG* variables out of the way (a
# PGOPTIONS, PGSERVICE or PGTARGETSESSIONATTRS of the caller's must not
# change what the script's own checks see).  Clients need not run as
# postgres: everything is TCP with trust.
pgc_client() {
  env -u PGOPTIONS -u PGSERVICE -u PGSERVICEFILE -u PGTARGETSESSIONATTRS \
    -u PGSSLMODE -u PGCONNECT_TIMEOUT -u PGDATABASE -u PGUSER -u PGHOST \
    -u PGHOSTADDR -u PGPORT -u PGAPPNAME "$@"
}

# pgc_sql DIR PORT DB SQL: one statement, unaligned, tuples only.
pgc_sql() {
  pgc_client "$(pgc_get "$1" BIN)/psql" -X -A -t -q -v ON_ERROR_STOP=1 \
    "host=127.0.0.1 port=$2 user=dorm dbname=$3 connect_timeout=5" -c "$4"
}

# pgc_wait DIR DESCRIPTION COMMAND...: retry COMMAND every 0.1 s until it
# succeeds or PG_CLUSTER_TIMEOUT seconds have passed.  A deadline on the
# clock, not a number of tries: one try can itself take up to psql's
# connect_timeout.
pgc_wait() {
  local wdir="$1" what="$2" deadline
  shift 2
  deadline=$(($(date +%s) + ${PG_CLUSTER_TIMEOUT:-30}))
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$(date +%s)" -lt $deadline ] || break
    sleep 0.1
  done
  echo "pg_cluster: timed out waiting for $what in $wdir" >&2
  return 1
}

pgc_node_port() {  # pgc_node_port DIR NODE
  case $2 in
    primary | replica1 | replica2) pgc_get "$1" "PORT_$2" ;;
    bouncer) pgc_get "$1" PORT_bouncer ;;
    *) return 1 ;;
  esac
}

pgc_check_node() {  # pgc_check_node NODE [bouncer-allowed]
  case $1 in
    primary | replica1 | replica2) return 0 ;;
    bouncer) [ -n "${2:-}" ] && return 0 ;;
  esac
  echo "pg_cluster: unknown node '$1' (primary, replica1, replica2${2:+, bouncer})" >&2
  return 1
}

pgc_check_dir() {
  if [ ! -f "$1/pg_cluster.state" ]; then
    echo "pg_cluster: $1 holds no cluster (no pg_cluster.state)" >&2
    return 1
  fi
}

pgc_dump_logs() {
  local f
  for f in "$1"/*.log; do
    [ -f "$f" ] || continue
    echo "==> $f <==" >&2
    tail -n 60 "$f" >&2
  done
}

# Start NODE's server on a new free port, retrying when the port was taken
# between probing and binding (by another cluster starting at the same
# time).  The port goes into the node's postgresql.conf,
# where a later line wins, so `restart` needs no options.
pgc_start_server() {
  local dir="$1" node="$2" attempt=0 port
  while [ $attempt -lt 5 ]; do
    port=$(pgc_free_port "$dir") || return 1
    printf "port = %s\t\t# chosen by pg_cluster.sh\n" "$port" >>"$dir/$node/postgresql.conf"
    # the log is truncated as the owner: the server must write to it
    if pgc_as_owner ": >'$dir/$node.log' && '$(pgc_get "$dir" BIN)/pg_ctl' -D '$dir/$node' -l '$dir/$node.log' -w -t ${PG_CLUSTER_TIMEOUT:-30} start >/dev/null 2>&1"; then
      pgc_set "$dir" "PORT_$node" "$port"
      return 0
    fi
    grep -q "could not bind\|could not create any TCP/IP sockets" "$dir/$node.log" || return 1
    attempt=$((attempt + 1))
  done
  return 1
}

# PgBouncer in front of the primary, transaction pooling.  The primary's
# port must be known.  Notes on the settings:
#   auth_type trust still needs the user listed in auth_file;
#   ignore_startup_parameters: a client that sends options (dorm does not
#     in its pgbouncer mode) or extra_float_digits (JDBC-style clients) is
#     let in rather than refused by PgBouncer 1.18, the options dropped;
#   server_reset_query empty: unused in transaction mode anyway;
#   server_login_retry 1: after a primary restart the pool reconnects within
#     a second instead of refusing clients for the default 15 s;
#   query_wait_timeout 10: when the primary is down, the first client to
#     arrive is queued while PgBouncer retries the server (later ones are
#     refused at once, see server_login_retry); by default it would wait
#     120 s before getting an error, longer than any test wants to.
#   server_idle_timeout 2, autodb_idle_timeout 10: the behavioural suite
#     makes a database per test, and by default each one's idle server
#     connections stay open for 10 minutes: a few runs of it filled the
#     primary's max_connections ("too many clients already").
pgc_write_bouncer_ini() {
  local dir="$1" port="$2" p0
  p0=$(pgc_get "$dir" PORT_primary)
  cat >"$dir/pgbouncer.ini" <<EOF
; written by tests/pg_cluster.sh
;; no timezone= here: dorm sends date-times with their offset, and the
;; scale-out test checks that with the database set to another time zone.
;; "*": any database of the primary (the behavioural suite makes one per
;; test, since the bouncer drops startup options such as search_path).
[databases]
dorm_test = host=127.0.0.1 port=$p0 dbname=dorm_test
postgres = host=127.0.0.1 port=$p0 dbname=postgres
* = host=127.0.0.1 port=$p0

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/pgbouncer.users
admin_users = dorm
pool_mode = transaction
max_client_conn = 200
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
server_login_retry = 1
query_wait_timeout = 10
server_idle_timeout = 2
autodb_idle_timeout = 10
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  echo '"dorm" ""' >"$dir/pgbouncer.users"
}

# Is process $1 alive?  Not `kill -0`: a daemon that has exited stays a
# zombie until init reaps it, which in some containers takes seconds.
pgc_alive() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' /proc/"$1"/status 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

pgc_bouncer_pid() {  # the running pgbouncer's pid, if any
  local pid
  pid=$(cat "$1/pgbouncer.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = pgbouncer ] &&
    pgc_alive "$pid" && echo "$pid"
}

# Did the PgBouncer just started get its port?  It binds after forking
# (`pgbouncer -d` exits 0 either way), then logs "listening on ADDR:PORT",
# or "cannot listen on ...: bind(): Address already in use" and "FATAL
# nowhere to listen on" and exits.  0: listening, 1: port taken, 2: other
# failure; 3: not yet known.
pgc_bouncer_bound() {
  if grep -q "listening on 127.0.0.1:$2\$" "$1/pgbouncer.log"; then return 0; fi
  if grep -q "FATAL" "$1/pgbouncer.log"; then
    if grep -q "Address already in use" "$1/pgbouncer.log"; then return 1; fi
    return 2
  fi
  return 3
}

pgc_bouncer_settled() {
  local rc=0
  pgc_bouncer_bound "$@" || rc=$?
  [ $rc != 3 ]
}

pgc_start_bouncer() {
  local dir="$1" attempt=0 port rc
  while [ $attempt -lt 5 ]; do
    port=$(pgc_free_port "$dir") || return 1
    pgc_write_bouncer_ini "$dir" "$port"
    # -d: it daemonizes, closing our stdout (a caller capturing the output
    # of `start` must not wait for the pooler to exit).
    pgc_as_owner ": >'$dir/pgbouncer.log' && /usr/sbin/pgbouncer -d -q '$dir/pgbouncer.ini' >>'$dir/pgbouncer.log' 2>&1" ||
      return 1
    # Until it has bound, a psql to the port could reach whoever took it
    # and hang there, so the log decides first.
    pgc_wait "$dir" "PgBouncer to listen" pgc_bouncer_settled "$dir" "$port" || return 1
    rc=0
    pgc_bouncer_bound "$dir" "$port" || rc=$?
    case $rc in
      0)
        pgc_set "$dir" PORT_bouncer "$port"
        pgc_wait "$dir" "PgBouncer to answer" pgc_sql "$dir" "$port" dorm_test "SELECT 1"
        return ;;
      1) attempt=$((attempt + 1)) ;;
      *) return 1 ;;
    esac
  done
  return 1
}

pgc_streaming_count() {  # prints how many replicas stream from the primary
  pgc_sql "$1" "$(pgc_get "$1" PORT_primary)" postgres \
    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
}

pgc_both_streaming() {
  [ "$(pgc_streaming_count "$1")" = 2 ]
}

pgc_replica_streaming() {  # pgc_replica_streaming DIR PORT: seen from the replica
  [ "$(pgc_sql "$1" "$2" postgres "SELECT status FROM pg_stat_wal_receiver")" = streaming ]
}

pgc_in_recovery() {  # pgc_in_recovery DIR PORT: prints t or f
  pgc_sql "$1" "$2" postgres "SELECT pg_is_in_recovery()"
}

pgc_not_in_recovery() {
  [ "$(pgc_in_recovery "$1" "$2")" = f ]
}

pg_cluster_start() {
  if [ -z "${1:-}" ]; then
    echo "pg_cluster: start needs a directory" >&2
    return 2
  fi
  local dir bin
  dir=$(pgc_abs "$1")
  case $dir in
    *"'"*) echo "pg_cluster: no quotes in the directory name, please" >&2; return 2 ;;
  esac
  if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    echo "pg_cluster: $dir exists and is not empty" >&2
    return 1
  fi
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ] || [ ! -x /usr/sbin/pgbouncer ]; then
    echo "pg_cluster: needs the postgresql and pgbouncer packages (tools/install-deps.sh)" >&2
    return 1
  fi
  mkdir -p "$dir" || return 1
  chmod 755 "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir" || return 1
    # every directory above DIR must let postgres through
    if ! su postgres -s /bin/sh -c "test -w '$dir'"; then
      echo "pg_cluster: user postgres cannot write to $dir (a parent not searchable?)" >&2
      rmdir "$dir" 2>/dev/null || :
      return 1
    fi
  fi
  # the marker `stop` looks for before it deletes anything
  echo "BIN=$bin" >"$dir/pg_cluster.state"

  if ! pgc_cluster_build "$dir"; then
    pgc_dump_logs "$dir"
    pgc_stop_processes "$dir"
    return 1
  fi
}

pgc_cluster_build() {
  local dir="$1" bin p0 n pid1 pid2 ok=0
  bin=$(pgc_get "$dir" BIN)
  # 1 MB WAL segments instead of 16: every segment is a file written in full
  # (by initdb, by the base backups' WAL streams, by each server), and on
  # a slow disk those writes were most of the start-up time.
  pgc_as_owner "'$bin/initdb' -D '$dir/primary' -U dorm -A trust -E UTF8 --no-sync --wal-segsize=1 >'$dir/initdb.log' 2>&1" ||
    return 1
  # The replicas inherit this file through the base backup; each then
  # appends its own port and cluster_name (names the processes in ps).
  cat >>"$dir/primary/postgresql.conf" <<EOF

# --- tests/pg_cluster.sh ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''	# TCP only
max_connections = 200
fsync = off			# throwaway: speed over durability
full_page_writes = off
wal_init_zero = off		# new WAL segments need not be zero-filled
# synchronous_commit stays on: after a commit, pg_current_wal_lsn() covers it
timezone = 'UTC'		# what dorm asks for, also through PgBouncer
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on	# replica queries do not get cancelled by vacuum
wal_receiver_status_interval = 1s	# replay progress reaches the primary quickly
wal_retrieve_retry_interval = 100ms	# reconnect fast after a primary restart
cluster_name = 'primary'
EOF
  pgc_start_server "$dir" primary || return 1
  p0=$(pgc_get "$dir" PORT_primary)
  # Before the base backups, so that the replicas have it.  FILE_COPY:
  # PostgreSQL 15's default strategy writes the whole new database into
  # the WAL, which the base backups would then copy as well (before 15
  # there is no STRATEGY, and FILE_COPY is what it does).
  pgc_sql "$dir" "$p0" postgres "CREATE DATABASE dorm_test STRATEGY = FILE_COPY" >/dev/null 2>&1 ||
    pgc_sql "$dir" "$p0" postgres "CREATE DATABASE dorm_test" >/dev/null || return 1

  # Each replica streams through a physical slot, so that the primary keeps
  # the WAL a killed replica needs when it is restarted.  The slots are made
  # here, reserving WAL at once, rather than by pg_basebackup -C: the two
  # base backups run at the same time, and the checkpoint one starts with
  # can recycle the segment the other's slot-to-be still needs ("requested
  # WAL segment ... has already been removed").  application_name goes into
  # primary_conninfo through -R, so that pg_stat_replication names the
  # replica.
  pgc_sql "$dir" "$p0" postgres "SELECT pg_create_physical_replication_slot('replica1', true),
      pg_create_physical_replication_slot('replica2', true)" >/dev/null || return 1
  for n in replica1 replica2; do
    pgc_as_owner "'$bin/pg_basebackup' -d 'host=127.0.0.1 port=$p0 user=dorm application_name=$n' -D '$dir/$n' -R -X stream -S $n --no-sync -c fast >'$dir/$n.basebackup.log' 2>&1" &
    if [ $n = replica1 ]; then pid1=$!; else pid2=$!; fi
  done
  wait "$pid1" || ok=1
  wait "$pid2" || ok=1
  [ $ok = 0 ] || return 1
  for n in replica1 replica2; do
    printf "cluster_name = '%s'\n" "$n" >>"$dir/$n/postgresql.conf"
    pgc_start_server "$dir" "$n" || return 1
  done
  pgc_start_bouncer "$dir" || return 1
  pgc_wait "$dir" "both replicas to stream" pgc_both_streaming "$dir"
}

pg_cluster_env() {
  [ -n "${1:-}" ] || { echo "pg_cluster: env needs a directory" >&2; return 2; }
  local dir p0 p1 p2 pb
  dir=$(pgc_abs "$1")
  pgc_check_dir "$dir" || return 1
  p0=$(pgc_get "$dir" PORT_primary)
  p1=$(pgc_get "$dir" PORT_replica1)
  p2=$(pgc_get "$dir" PORT_replica2)
  pb=$(pgc_get "$dir" PORT_bouncer)
  if [ -z "$pb" ]; then
    echo "pg_cluster: the cluster in $dir did not finish starting" >&2
    return 1
  fi
  echo "DORM_CLUSTER_PRIMARY='postgresql://dorm@127.0.0.1:$p0/dorm_test'"
  echo "DORM_CLUSTER_REPLICAS='postgresql://dorm@127.0.0.1:$p1/dorm_test,postgresql://dorm@127.0.0.1:$p2/dorm_test'"
  echo "DORM_CLUSTER_PORTS='$p0,$p1,$p2'"
  echo "DORM_CLUSTER_BOUNCER='postgresql://dorm@127.0.0.1:$pb/dorm_test'"
  echo "DORM_CLUSTER_FAILOVER='postgresql://dorm@127.0.0.1:$p0,127.0.0.1:$p1/dorm_test?target_session_attrs=read-write'"
  echo "DORM_CLUSTER_DIR='$dir'"
}

pg_cluster_export() {  # library only: the env variables, exported here
  local env
  env=$(pg_cluster_env "$@") || return 1
  eval "$env"
  export DORM_CLUSTER_PRIMARY DORM_CLUSTER_REPLICAS DORM_CLUSTER_PORTS \
    DORM_CLUSTER_BOUNCER DORM_CLUSTER_FAILOVER DORM_CLUSTER_DIR
}

# The postmaster of NODE and its children (backends, walreceiver, ...),
# postmaster first; nothing when the node is down.
pgc_node_pids() {  # pgc_node_pids DIR NODE
  local pid
  pid=$(head -n 1 "$1/$2/postmaster.pid" 2>/dev/null) || return 0
  [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = postgres ] || return 0
  echo "$pid"
  pgrep -P "$pid" 2>/dev/null || :
}

# freeze: the postmaster first (no new children), then every child;
# thaw: the children first, then the postmaster.  The kernel still
# accepts connections and acknowledges data for a stopped process: only
# a deadline in the client sees the silence.
pg_cluster_freeze() {
  pgc_check_node "${1:-}" || return 2
  local dir pids
  dir=$(pgc_abs "${2:-}")
  pgc_check_dir "$dir" || return 1
  pids=$(pgc_node_pids "$dir" "$1")
  [ -n "$pids" ] || { echo "pg_cluster: $1 is not running" >&2; return 1; }
  # shellcheck disable=SC2086 # a list of pids
  kill -STOP $pids
}

pg_cluster_thaw() {
  pgc_check_node "${1:-}" || return 2
  local dir pids
  dir=$(pgc_abs "${2:-}")
  pgc_check_dir "$dir" || return 1
  pids=$(pgc_node_pids "$dir" "$1")
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086 # a list of pids, children first
  kill -CONT $(echo "$pids" | tac) 2>/dev/null || :
}

# Stop whatever runs in DIR, quietly: servers with an immediate stop (a
# SIGKILL if pg_ctl could not), then the pooler.  A frozen node is thawed
# first: a stopped postmaster would not take pg_ctl's signal.
pgc_stop_processes() {
  local dir="$1" bin n pid tries
  bin=$(pgc_get "$dir" BIN)
  for n in $PG_CLUSTER_NODES; do
    pg_cluster_thaw "$n" "$dir" >/dev/null 2>&1 || :
  done
  for n in $PG_CLUSTER_NODES; do
    [ -f "$dir/$n/postmaster.pid" ] || continue
    if [ -n "$bin" ]; then
      pgc_as_owner "'$bin/pg_ctl' -D '$dir/$n' -m immediate -w -t 30 stop >/dev/null 2>&1" || :
    fi
    pid=$(head -n 1 "$dir/$n/postmaster.pid" 2>/dev/null) || pid=""
    if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = postgres ] && pgc_alive "$pid"; then
      kill -KILL "$pid" 2>/dev/null || :
    fi
  done
  if pid=$(pgc_bouncer_pid "$dir"); then
    kill -TERM "$pid" 2>/dev/null || : # PgBouncer's immediate shutdown
    tries=50
    while [ $tries -gt 0 ] && pgc_alive "$pid"; do
      sleep 0.1
      tries=$((tries - 1))
    done
    kill -KILL "$pid" 2>/dev/null || :
  fi
  return 0
}

pg_cluster_stop() {
  [ -n "${1:-}" ] || { echo "pg_cluster: stop needs a directory" >&2; return 2; }
  local dir
  dir=$(pgc_abs "$1")
  [ -d "$dir" ] || return 0
  if [ -f "$dir/pg_cluster.state" ]; then
    pgc_stop_processes "$dir"
    rm -rf "$dir"
  else
    # never rm -rf a directory we did not make
    rmdir "$dir" 2>/dev/null || :
  fi
  return 0
}

pg_cluster_kill() {
  pgc_check_node "${1:-}" || return 2
  local dir
  dir=$(pgc_abs "${2:-}")
  pgc_check_dir "$dir" || return 1
  pgc_as_owner "'$(pgc_get "$dir" BIN)/pg_ctl' -D '$dir/$1' -m immediate -w -t ${PG_CLUSTER_TIMEOUT:-30} stop >/dev/null 2>&1" || {
    echo "pg_cluster: $1 was not running" >&2
    return 1
  }
}

# Start NODE again on its port.  A node still in recovery then has to
# stream again — unless the primary is down, in which case there is nothing
# to stream from and accepting connections is all we wait for.  After the
# primary, PgBouncer must answer again too: it refuses clients for up to
# server_login_retry after its last failed attempt to reach the server.
pg_cluster_restart() {
  pgc_check_node "${1:-}" || return 2
  local node="$1" dir port bin
  dir=$(pgc_abs "${2:-}")
  pgc_check_dir "$dir" || return 1
  port=$(pgc_get "$dir" "PORT_$node")
  bin=$(pgc_get "$dir" BIN)
  if pgc_as_owner "'$bin/pg_ctl' -D '$dir/$node' status >/dev/null 2>&1"; then
    echo "pg_cluster: $node is already running" >&2
    return 1
  fi
  pgc_as_owner "'$bin/pg_ctl' -D '$dir/$node' -l '$dir/$node.log' -w -t ${PG_CLUSTER_TIMEOUT:-30} start >/dev/null 2>&1" || {
    tail -n 30 "$dir/$node.log" >&2
    return 1
  }
  pgc_wait "$dir" "$node to accept connections" pgc_sql "$dir" "$port" postgres "SELECT 1" || return 1
  if [ "$node" = primary ] && pgc_bouncer_pid "$dir" >/dev/null; then
    pgc_wait "$dir" "PgBouncer to reach the primary again" \
      pgc_sql "$dir" "$(pgc_get "$dir" PORT_bouncer)" dorm_test "SELECT 1" || return 1
  fi
  [ "$(pgc_in_recovery "$dir" "$port")" = t ] || return 0
  pgc_sql "$dir" "$(pgc_get "$dir" PORT_primary)" postgres "SELECT 1" >/dev/null 2>&1 || return 0
  pgc_wait "$dir" "$node to stream again" pgc_replica_streaming "$dir" "$port"
}

pg_cluster_promote() {
  pgc_check_node "${1:-}" || return 2
  local dir port
  dir=$(pgc_abs "${2:-}")
  pgc_check_dir "$dir" || return 1
  port=$(pgc_get "$dir" "PORT_$1")
  pgc_sql "$dir" "$port" postgres "SELECT pg_promote(true, 60)" >/dev/null || return 1
  pgc_wait "$dir" "$1 to leave recovery" pgc_not_in_recovery "$dir" "$port"
}

pg_cluster_psql() {
  pgc_check_node "${1:-}" bouncer || return 2
  local dir
  dir=$(pgc_abs "${2:-}")
  pgc_check_dir "$dir" || return 1
  pgc_sql "$dir" "$(pgc_node_port "$dir" "$1")" dorm_test "${3:-}"
}

pg_cluster_main() {
  local cmd="${1:-}"
  [ $# -gt 0 ] && shift
  case $cmd in
    start | env | stop)
      [ $# = 1 ] || { pg_cluster_usage; return 2; }
      "pg_cluster_$cmd" "$1" ;;
    kill | restart | promote | freeze | thaw)
      [ $# = 2 ] || { pg_cluster_usage; return 2; }
      "pg_cluster_$cmd" "$1" "$2" ;;
    psql)
      [ $# = 3 ] || { pg_cluster_usage; return 2; }
      pg_cluster_psql "$1" "$2" "$3" ;;
    *) pg_cluster_usage; return 2 ;;
  esac
}

pg_cluster_usage() {
  cat >&2 <<'EOF'
usage: sh tests/pg_cluster.sh start DIR | env DIR | stop DIR
       sh tests/pg_cluster.sh kill|restart|promote|freeze|thaw primary|replica1|replica2 DIR
       sh tests/pg_cluster.sh psql primary|replica1|replica2|bouncer DIR SQL
EOF
}

# Run as a command, not when sourced (then $0 names the sourcing shell).
case ${0##*/} in
  pg_cluster.sh)
    set -u
    pg_cluster_main "$@"
    exit $?
    ;;
esac
