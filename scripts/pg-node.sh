#!/usr/bin/env bash
# Runs a throwaway PostgreSQL server in the FOREGROUND, for tests that take the
# database down and bring it back (the fault-injection suite): a test spawns
# this script in a process group of its own, kills the group to stop the
# server, then starts it again with the same arguments and finds its data
# where it left it.
#
# Usage: scripts/pg-node.sh <data_dir> <port>
#   <data_dir>/pgdata   the cluster, created by initdb on first use
#   <data_dir>/pg.log   the server's log
#
# The cluster has one role, `orderflow` (trust authentication on loopback),
# owning the database `orderflow`: the URL is
# postgres://orderflow@127.0.0.1:<port>/orderflow. fsync is off because the
# data is thrown away and only processes are killed, never the machine: the OS
# keeps what was written, so a killed server recovers every commit from its
# WAL. synchronous_commit stays on: without it a killed server loses the last
# commits, which checkout has already confirmed to its callers.
# PostgreSQL refuses to run as root, so as root the server runs as `postgres`.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if (($# != 2)); then
  echo "usage: $0 <data_dir> <port>" >&2
  exit 2
fi
port=$2
if [[ ! $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
  die "not a TCP port: $port"
fi
mkdir -p "$1"
data_dir=$(cd "$1" && pwd)

# Debian installs the server binaries outside PATH, one folder per major version.
bindir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
[[ -x $bindir/postgres ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql: run scripts/stack.sh up"

run=()
if [[ $EUID -eq 0 ]]; then
  chown postgres:postgres "$data_dir"
  # setpriv execs (runuser forks), so killing this process group stops the server.
  run=(setpriv --reuid postgres --regid postgres --init-groups --)
fi

if [[ ! -f $data_dir/pgdata/PG_VERSION ]]; then
  "${run[@]}" "$bindir/initdb" -D "$data_dir/pgdata" -U orderflow --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$data_dir/initdb.log" 2>&1 ||
    die "initdb failed, see $data_dir/initdb.log"
fi

# The `orderflow` database is created once the server answers, in the background.
(
  for _ in $(seq 1 100); do
    if "$bindir/pg_isready" -q -U orderflow -h 127.0.0.1 -p "$port"; then
      "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U orderflow -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'orderflow'" | grep -q 1 ||
        "$bindir/createdb" -h 127.0.0.1 -p "$port" -U orderflow orderflow
      exit 0
    fi
    sleep 0.1
  done
) &

exec "${run[@]}" "$bindir/postgres" -D "$data_dir/pgdata" -p "$port" \
  -c listen_addresses=127.0.0.1 -c unix_socket_directories="$data_dir" \
  -c max_connections=300 -c fsync=off -c full_page_writes=off \
  -c logging_collector=off >>"$data_dir/pg.log" 2>&1
