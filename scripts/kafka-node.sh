#!/usr/bin/env bash
# Runs a throwaway single-node Kafka broker (KRaft, broker + controller) in the
# FOREGROUND, for integration tests that take Kafka down and bring it back:
# a test spawns this script, kills it to simulate an outage (the JVM replaces
# this shell, so the child's pid is the broker's own), then starts it again
# with the same arguments and finds its topics and offsets where it left them.
#
# Usage: scripts/kafka-node.sh <data_dir> <port> <controller_port>
#   <data_dir>/data               the broker's storage, formatted on first use
#   <data_dir>/server.properties  rendered from scripts/kafka/server.properties.tmpl
#   <data_dir>/kafka.log          the broker's log
#
# Same settings as the broker of scripts/stack.sh (no topic auto-creation,
# replication factor 1), with a smaller heap and fewer threads so that it
# starts fast and several can run side by side. Clients connect to
# 127.0.0.1:<port>; the port answers about 3 s after start (also after a kill -9).
set -euo pipefail

# shellcheck source=scripts/lib/kafka.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka.sh"

if (($# != 3)); then
  echo "usage: $0 <data_dir> <port> <controller_port>" >&2
  exit 2
fi
port=$2 controller_port=$3
for p in "$port" "$controller_port"; do
  if [[ ! $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
    die "not a TCP port: $p"
  fi
done
[[ $port != "$controller_port" ]] || die "the client and controller ports must differ"

mkdir -p "$1"
# Absolute, because the paths end up in the broker's configuration.
data_dir=$(cd "$1" && pwd)
props="$data_dir/server.properties"
log="$data_dir/kafka.log"

kafka_require_java
kafka_fetch_libs
# After a kill -9 the restarted controller keeps the dead broker's registration
# until its session times out (9 s by default) and only then lets the new
# broker in: a short session brings a killed node back in ~3 s instead of ~12.
kafka_render_properties "$props" "$data_dir/data" "$port" "$controller_port" \
  num.network.threads=1 \
  num.io.threads=2 \
  background.threads=2 \
  log.cleaner.dedupe.buffer.size=16777216 \
  broker.heartbeat.interval.ms=500 \
  broker.session.timeout.ms=2500
kafka_format_if_needed "$props" "$data_dir/data" "$log"
kafka_broker_cmd "$props" 512m "$log"
exec "${KAFKA_CMD[@]}"
