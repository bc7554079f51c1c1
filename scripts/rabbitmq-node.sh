#!/usr/bin/env bash
# Runs a throwaway RabbitMQ node in the FOREGROUND, for tests that take the
# broker down and bring it back (the fault-injection suite): a test spawns
# this script in a process group of its own, kills the group to stop the node,
# then starts it again with the same arguments. Durable queues and their
# persistent messages survive the restart.
#
# Usage: scripts/rabbitmq-node.sh <data_dir> <port>
#   <data_dir>/mnesia   the node's database
#   <data_dir>/log      its logs
#
# The node is rabbit-<port>@localhost, listens on 127.0.0.1:<port> (guest/guest,
# which RabbitMQ allows on loopback) and runs no plugins. It ignores the system
# node's /etc/rabbitmq/rabbitmq-env.conf, so it can run beside it.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if (($# != 2)); then
  echo "usage: $0 <data_dir> <port>" >&2
  exit 2
fi
port=$2
if [[ ! $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 45535)); then
  die "not a usable TCP port: $port"
fi
command -v rabbitmq-server >/dev/null || die "rabbitmq-server not found: run scripts/stack.sh up"
mkdir -p "$1"
data_dir=$(cd "$1" && pwd)
echo "[]." >"$data_dir/enabled_plugins"
# Debian's rabbitmq-server drops root for the rabbitmq user, which must own the node's files.
if [[ $EUID -eq 0 ]] && id rabbitmq >/dev/null 2>&1; then
  chown -R rabbitmq:rabbitmq "$data_dir"
fi

export RABBITMQ_CONF_ENV_FILE=/dev/null
export RABBITMQ_NODENAME="rabbit-$port@localhost"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$port
# Erlang distribution (for rabbitmqctl) on a port of its own, on loopback.
export RABBITMQ_DIST_PORT=$((port + 20000))
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_MNESIA_BASE="$data_dir/mnesia"
export RABBITMQ_LOG_BASE="$data_dir/log"
export RABBITMQ_ENABLED_PLUGINS_FILE="$data_dir/enabled_plugins"
exec rabbitmq-server
