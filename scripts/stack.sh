#!/usr/bin/env bash
# Local infrastructure for orderflow without Docker: one Kafka broker (KRaft),
# PostgreSQL 15, RabbitMQ, Jaeger (traces) and Apicurio Registry (the optional
# Confluent framing), all on loopback, for development and the integration
# tests. docker-compose.yml and deploy/k8s/ describe the same
# services for machines that have Docker or Kubernetes.
#
# Usage: scripts/stack.sh up|down|status|env
#   up      install what is missing, start everything, create the topics of
#           deploy/topics.txt; a no-op (plus status) when all is running
#   down    stop the five services
#   status  one line per service; exit status 1 when any is down
#   env     the ORDERFLOW_* variables, as export lines for eval
#
# State lives in .stack/ at the repository root: Kafka's jars and data, logs
# (.stack/logs, with links to the system logs of PostgreSQL and RabbitMQ) and
# pid files (.stack/run). PostgreSQL and RabbitMQ are Debian's system services,
# driven without systemd, so their data stays in /var/lib.
set -euo pipefail

# shellcheck source=scripts/lib/kafka.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka.sh"
# shellcheck source=scripts/lib/jaeger.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/jaeger.sh"
# shellcheck source=scripts/lib/apicurio.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apicurio.sh"

KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
KAFKA_HEAP=1g
KAFKA_PROPS="$KAFKA_HOME/server.properties"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_LOG="$STACK_LOG_DIR/kafka.log"
# JVM output that bypasses log4j (crashes, OutOfMemoryError).
KAFKA_OUT="$STACK_LOG_DIR/kafka.out"
KAFKA_TOOLS_LOG="$STACK_LOG_DIR/kafka-tools.log"
KAFKA_PID_FILE="$STACK_RUN_DIR/kafka.pid"

PG_VERSION=15
PG_CLUSTER=main
PG_PORT=5432
PG_LOG="/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log"
# Integration tests run in parallel, each with its own connection pool.
PG_MAX_CONNECTIONS=300

AMQP_PORT=5672
RABBITMQ_NODE=rabbit@localhost
RABBITMQ_ENV_CONF=/etc/rabbitmq/rabbitmq-env.conf
RABBITMQ_LOG="/var/log/rabbitmq/$RABBITMQ_NODE.log"

TOPICS_FILE="$ORDERFLOW_ROOT/deploy/topics.txt"

# Seconds each service may take to answer before `up` gives up on it.
START_TIMEOUT=${ORDERFLOW_STACK_TIMEOUT:-90}

KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
DATABASE_URL="postgres://orderflow:orderflow@127.0.0.1:$PG_PORT/orderflow"
AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"

# The servers, plus the native build dependencies of the rdkafka crate
# (librdkafka is built from source by its cmake-build feature; without
# libcurl's headers that build stops at curl/curl.h).
APT_PACKAGES=(postgresql rabbitmq-server curl
  cmake libcurl4-openssl-dev libssl-dev zlib1g-dev libzstd-dev pkg-config)

# ---------------------------------------------------------------- packages --

pkg_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

ensure_packages() {
  local wanted=("${APT_PACKAGES[@]}") missing=() pkg
  command -v java >/dev/null || wanted+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || wanted+=(maven)
  for pkg in "${wanted[@]}"; do
    pkg_installed "$pkg" || missing+=("$pkg")
  done
  ((${#missing[@]} > 0)) || return 0

  local log="$STACK_LOG_DIR/apt.log" added_policy=0 rc=0
  info "installing ${missing[*]} with apt-get (log: $log)"
  # Keep the packages' install scripts from starting the services: without
  # systemd they would start with Debian's defaults (node name, addresses),
  # and this script starts them itself with its own settings.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}"
  } >>"$log" 2>&1 || rc=$?
  if ((added_policy)); then
    as_root rm -f /usr/sbin/policy-rc.d
  fi
  if ((rc != 0)); then
    show_log_tail "$log"
    die "apt-get failed, see $log"
  fi
}

# ------------------------------------------------------------------- kafka --

# Prints the pid of the broker this script started, if it is still running.
kafka_pid() {
  running_pid "$KAFKA_PID_FILE" 'kafka\.Kafka'
}

kafka_start() {
  kafka_pid >/dev/null && return 0
  kafka_require_java
  kafka_fetch_libs
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$port"; then
      die "127.0.0.1:$port is taken by a process other than the broker of $KAFKA_PID_FILE"
    fi
  done
  mkdir -p "$KAFKA_DATA" "$STACK_RUN_DIR"
  kafka_render_properties "$KAFKA_PROPS" "$KAFKA_DATA" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  kafka_format_if_needed "$KAFKA_PROPS" "$KAFKA_DATA" "$KAFKA_LOG"

  info "starting Kafka $KAFKA_VERSION on $KAFKA_BROKERS (log: $KAFKA_LOG)"
  kafka_broker_cmd "$KAFKA_PROPS" "$KAFKA_HEAP" "$KAFKA_LOG"
  start_detached "$KAFKA_PID_FILE" "$KAFKA_OUT" "${KAFKA_CMD[@]}"
}

kafka_fail() {
  show_log_tail "$KAFKA_LOG"
  show_log_tail "$KAFKA_OUT" 10
  die "$* (see $KAFKA_LOG and $KAFKA_OUT)"
}

# Waits until the broker answers a metadata request, and leaves its topic
# description (non-internal topics) in KAFKA_DESCRIBE for ensure_topics.
kafka_wait() {
  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$KAFKA_PORT"; do
    kafka_pid >/dev/null || kafka_fail "Kafka exited during start-up"
    ((SECONDS < deadline)) || kafka_fail "Kafka did not listen on $KAFKA_BROKERS within ${START_TIMEOUT}s"
    sleep 0.5
  done
  # The port opens a little before the broker has registered with its
  # controller and can serve metadata.
  # shellcheck disable=SC2094 # the tool appends to its log; nothing reads it
  until KAFKA_DESCRIBE=$(kafka_topics "$KAFKA_PORT" "$KAFKA_TOOLS_LOG" \
    --describe --exclude-internal 2>>"$KAFKA_TOOLS_LOG" </dev/null); do
    kafka_pid >/dev/null || kafka_fail "Kafka exited during start-up"
    ((SECONDS < deadline)) || kafka_fail "Kafka did not answer on $KAFKA_BROKERS within ${START_TIMEOUT}s"
    sleep 1
  done
}

kafka_stop() {
  local pid
  # SIGTERM makes the broker shut down cleanly, so the next start skips log
  # recovery; that can take a while.
  if pid=$(kafka_pid); then
    stop_pid Kafka "$pid" 60
  fi
  rm -f "$KAFKA_PID_FILE"
}

# Creates the topics of deploy/topics.txt that do not exist yet. Existing
# topics are never altered (partitions cannot shrink, and retention may have
# been tuned by hand); a difference from the file is only reported, and
# `orderflowctl topics apply` is what applies it.
ensure_topics() {
  local -a names=() partitions=() retentions=() policies=()
  local -A declared=() have_partitions=() have_retention=()
  local line lineno=0 name parts retention policy extra i

  [[ -r $TOPICS_FILE ]] || die "topic list $TOPICS_FILE not found"
  while IFS= read -r line || [[ -n $line ]]; do
    lineno=$((lineno + 1))
    line=${line%%#*}
    name='' parts='' retention='' policy='' extra=''
    read -r name parts retention policy extra <<<"$line" || true
    [[ -n $name ]] || continue
    policy=${policy:-delete}
    if [[ ! $parts =~ ^[1-9][0-9]*$ || ! $retention =~ ^(-1|[0-9]+)$ ||
      ! $policy =~ ^(delete|compact|compact,delete|delete,compact)$ || -n $extra ]]; then
      die "$TOPICS_FILE:$lineno: expected '<name> <partitions> <retention_ms> [<cleanup_policy>]'"
    fi
    [[ -z ${declared[$name]:-} ]] || die "$TOPICS_FILE:$lineno: topic $name is declared twice"
    declared[$name]=1
    names+=("$name") partitions+=("$parts") retentions+=("$retention") policies+=("$policy")
  done <"$TOPICS_FILE"

  # Summary lines look like:
  # Topic: orders.placed<TAB>TopicId: ...<TAB>PartitionCount: 12<TAB>...<TAB>Configs: retention.ms=604800000
  while IFS= read -r line; do
    [[ $line =~ ^Topic:\ ([^[:space:]]+).*PartitionCount:\ ([0-9]+) ]] || continue
    name=${BASH_REMATCH[1]}
    have_partitions[$name]=${BASH_REMATCH[2]}
    if [[ $line =~ retention\.ms=(-?[0-9]+) ]]; then
      have_retention[$name]=${BASH_REMATCH[1]}
    else
      have_retention[$name]=default
    fi
  done <<<"$KAFKA_DESCRIBE"

  for i in "${!names[@]}"; do
    name=${names[i]} parts=${partitions[i]} retention=${retentions[i]} policy=${policies[i]}
    if [[ -n ${have_partitions[$name]:-} ]]; then
      if [[ ${have_partitions[$name]} != "$parts" ]]; then
        warn "topic $name has ${have_partitions[$name]} partitions, $TOPICS_FILE says $parts (left as is; orderflowctl topics apply applies the file)"
      fi
      if [[ ${have_retention[$name]} != "$retention" ]]; then
        warn "topic $name has retention.ms=${have_retention[$name]}, $TOPICS_FILE says $retention (left as is; orderflowctl topics apply applies the file)"
      fi
      continue
    fi
    info "creating topic $name ($parts partitions, retention.ms=$retention, cleanup.policy=$policy)"
    # shellcheck disable=SC2094 # as in kafka_wait
    kafka_topics "$KAFKA_PORT" "$KAFKA_TOOLS_LOG" --create --if-not-exists \
      --topic "$name" --partitions "$parts" --replication-factor 1 \
      --config "retention.ms=$retention" --config "cleanup.policy=$policy" \
      >/dev/null 2>>"$KAFKA_TOOLS_LOG" </dev/null ||
      die "could not create topic $name, see $KAFKA_TOOLS_LOG"
  done
}

# -------------------------------------------------------------- postgresql --

pg_cluster_field() { # prints column <n> of pg_lsclusters for our cluster
  pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" -v n="$1" \
    '$1 == v && $2 == c { print $n }'
}

pg_running() {
  [[ $(pg_cluster_field 4) == online* ]]
}

# psql as the postgres superuser over the Unix socket (peer authentication).
# From / because psql complains when the postgres user cannot enter the cwd.
pg_admin_psql() {
  (cd / && as_root runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@")
}

pg_ctl() {
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" "$@"
}

pg_start() {
  command -v pg_ctlcluster >/dev/null || die "pg_ctlcluster not found: is postgresql installed?"
  if [[ -z $(pg_cluster_field 1) ]]; then
    # Debian's package creates this cluster on install; recreate it if it was dropped.
    info "creating PostgreSQL cluster $PG_VERSION/$PG_CLUSTER"
    as_root pg_createcluster --port "$PG_PORT" "$PG_VERSION" "$PG_CLUSTER" >/dev/null
  fi
  local port
  port=$(pg_cluster_field 3)
  [[ $port == "$PG_PORT" ]] ||
    die "PostgreSQL cluster $PG_VERSION/$PG_CLUSTER is set to port $port, not $PG_PORT (/etc/postgresql/$PG_VERSION/$PG_CLUSTER/postgresql.conf)"
  mkdir -p "$STACK_LOG_DIR"
  ln -sfn "$PG_LOG" "$STACK_LOG_DIR/postgresql.log"
  pg_running && return 0
  if port_open "$PG_PORT"; then
    die "127.0.0.1:$PG_PORT is taken by a process other than PostgreSQL cluster $PG_VERSION/$PG_CLUSTER"
  fi
  info "starting PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
  if ! pg_ctl start; then
    show_log_tail "$PG_LOG"
    die "PostgreSQL did not start, see $PG_LOG"
  fi
}

pg_wait() {
  local deadline=$((SECONDS + START_TIMEOUT))
  until pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2; do
    if ((SECONDS >= deadline)); then
      show_log_tail "$PG_LOG"
      die "PostgreSQL did not answer on 127.0.0.1:$PG_PORT within ${START_TIMEOUT}s, see $PG_LOG"
    fi
    sleep 0.5
  done
}

# True when the application's role can log in with its password over TCP,
# may create databases (sqlx test harnesses create one per test) and owns the
# orderflow database.
pg_app_ready() {
  [[ $(PGCONNECT_TIMEOUT=5 psql -X -At "$DATABASE_URL" -c \
    "SELECT r.rolcreatedb AND d.datdba = r.oid FROM pg_roles r, pg_database d
     WHERE r.rolname = current_user AND d.datname = current_database()" 2>/dev/null) == t ]]
}

pg_configure() {
  local want="$PG_MAX_CONNECTIONS|127.0.0.1" have
  have=$(pg_admin_psql -c "SELECT current_setting('max_connections') || '|' || current_setting('listen_addresses')")
  if [[ $have != "$want" ]]; then
    # Both settings only take effect at server start.
    info "PostgreSQL: max_connections=$PG_MAX_CONNECTIONS, listen_addresses=127.0.0.1 (restarting)"
    pg_admin_psql -c "ALTER SYSTEM SET max_connections = $PG_MAX_CONNECTIONS" \
      -c "ALTER SYSTEM SET listen_addresses = '127.0.0.1'"
    pg_ctl restart || {
      show_log_tail "$PG_LOG"
      die "PostgreSQL did not restart, see $PG_LOG"
    }
    pg_wait
  fi

  pg_app_ready && return 0
  info "PostgreSQL: creating role and database orderflow"
  pg_admin_psql <<'SQL'
SELECT 'CREATE ROLE orderflow' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orderflow')
\gexec
ALTER ROLE orderflow LOGIN CREATEDB PASSWORD 'orderflow';
SELECT 'CREATE DATABASE orderflow OWNER orderflow' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'orderflow')
\gexec
ALTER DATABASE orderflow OWNER TO orderflow;
SQL
  pg_app_ready || die "cannot log in as $DATABASE_URL; check /etc/postgresql/$PG_VERSION/$PG_CLUSTER/pg_hba.conf"
}

pg_stop() {
  if pg_running; then
    info "stopping PostgreSQL"
    pg_ctl stop
  fi
}

# ---------------------------------------------------------------- rabbitmq --

# The node's settings, kept in Debian's env file so that a plain `rabbitmqctl`
# reaches the same node. The fixed node name avoids depending on the machine's
# hostname (which changes, or does not resolve, on VMs and containers).
rabbitmq_env_conf() {
  cat <<EOF
# Written by orderflow's scripts/stack.sh (and rewritten by \`stack.sh up\`):
# a loopback-only RabbitMQ node for local development.
NODENAME=$RABBITMQ_NODE
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$AMQP_PORT
# Erlang distribution (used by rabbitmqctl) on loopback only as well.
export ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
}

rabbitmq_configure() {
  local want
  want=$(rabbitmq_env_conf)
  if [[ ! -f $RABBITMQ_ENV_CONF || $(<"$RABBITMQ_ENV_CONF") != "$want" ]]; then
    as_root mkdir -p "$(dirname "$RABBITMQ_ENV_CONF")"
    printf '%s\n' "$want" | as_root tee "$RABBITMQ_ENV_CONF" >/dev/null
  fi
}

# The Erlang node runs and answers the CLI (the broker may still be booting).
rabbitmq_node_up() {
  as_root rabbitmq-diagnostics -q ping >/dev/null 2>&1
}

rabbitmq_start() {
  command -v rabbitmq-server >/dev/null || as_root test -x /usr/sbin/rabbitmq-server ||
    die "rabbitmq-server not found: is it installed?"
  rabbitmq_configure
  mkdir -p "$STACK_LOG_DIR"
  ln -sfn "$RABBITMQ_LOG" "$STACK_LOG_DIR/rabbitmq.log"
  # The AMQP port opens only once the broker has booted, so it is a fast
  # check that skips the CLI's second-long start-up on the common path.
  port_open "$AMQP_PORT" && return 0
  rabbitmq_node_up && return 0
  info "starting RabbitMQ on 127.0.0.1:$AMQP_PORT (log: $RABBITMQ_LOG)"
  as_root rabbitmq-server -detached >>"$STACK_LOG_DIR/rabbitmq-start.log" 2>&1 ||
    die "RabbitMQ did not start, see $STACK_LOG_DIR/rabbitmq-start.log and $RABBITMQ_LOG"
}

rabbitmq_fail() {
  show_log_tail "$RABBITMQ_LOG"
  die "$* (see $RABBITMQ_LOG and /var/log/rabbitmq/)"
}

rabbitmq_wait() {
  port_open "$AMQP_PORT" && return 0
  local deadline=$((SECONDS + START_TIMEOUT)) left
  # `await_startup` needs a node to talk to: wait for the detached node to
  # register first.
  until rabbitmq_node_up; do
    ((SECONDS < deadline)) || rabbitmq_fail "RabbitMQ's node did not come up within ${START_TIMEOUT}s"
    sleep 1
  done
  left=$((deadline - SECONDS > 5 ? deadline - SECONDS : 5))
  as_root rabbitmqctl -q await_startup --timeout "$left" >/dev/null 2>&1 ||
    rabbitmq_fail "RabbitMQ did not finish booting within ${START_TIMEOUT}s"
  port_open "$AMQP_PORT" || rabbitmq_fail "RabbitMQ booted but does not listen on 127.0.0.1:$AMQP_PORT"
}

rabbitmq_stop() {
  if port_open "$AMQP_PORT" || rabbitmq_node_up; then
    info "stopping RabbitMQ"
    # `shutdown` is `stop` that also waits for the node's OS process to exit.
    as_root rabbitmqctl -q shutdown >/dev/null
  fi
}

# ---------------------------------------------------------------- commands --

print_env() {
  printf 'export ORDERFLOW_KAFKA_BROKERS=%s\n' "$KAFKA_BROKERS"
  printf 'export ORDERFLOW_DATABASE_URL=%s\n' "$DATABASE_URL"
  printf 'export ORDERFLOW_AMQP_URL=%s\n' "$AMQP_URL"
  printf 'export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:%s\n' "$JAEGER_OTLP_PORT"
}

cmd_status() {
  local down=0 pid state detail
  if pid=$(kafka_pid) && port_open "$KAFKA_PORT"; then
    state=up detail="pid $pid, log $KAFKA_LOG"
  else
    state=down detail="log $KAFKA_LOG" down=$((down + 1))
  fi
  printf '%-9s %-5s %-16s %s\n' kafka "$state" "$KAFKA_BROKERS" \
    "(controller 127.0.0.1:$KAFKA_CONTROLLER_PORT; $detail)"

  if pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2 2>/dev/null; then state=up; else
    state=down down=$((down + 1))
  fi
  printf '%-9s %-5s %-16s %s\n' postgres "$state" "127.0.0.1:$PG_PORT" \
    "(cluster $PG_VERSION/$PG_CLUSTER; log $PG_LOG)"

  if port_open "$AMQP_PORT"; then state=up; else
    state=down down=$((down + 1))
  fi
  printf '%-9s %-5s %-16s %s\n' rabbitmq "$state" "127.0.0.1:$AMQP_PORT" \
    "(node $RABBITMQ_NODE; log $RABBITMQ_LOG)"

  if pid=$(jaeger_pid) && port_open "$JAEGER_OTLP_PORT"; then
    state=up detail="pid $pid, log $JAEGER_LOG"
  else
    state=down detail="log $JAEGER_LOG" down=$((down + 1))
  fi
  printf '%-9s %-5s %-16s %s\n' jaeger "$state" "127.0.0.1:$JAEGER_OTLP_PORT" \
    "(OTLP/HTTP; UI http://127.0.0.1:$JAEGER_UI_PORT; $detail)"

  if pid=$(apicurio_pid) && port_open "$APICURIO_PORT"; then
    state=up detail="pid $pid, log $APICURIO_LOG"
  else
    state=down detail="log $APICURIO_LOG" down=$((down + 1))
  fi
  printf '%-9s %-5s %-16s %s\n' registry "$state" "127.0.0.1:$APICURIO_PORT" \
    "(Apicurio $APICURIO_VERSION; $SCHEMA_REGISTRY_URL; $detail)"
  ((down == 0))
}

cmd_up() {
  local started=$SECONDS
  mkdir -p "$STACK_LOG_DIR" "$STACK_RUN_DIR" "$KAFKA_HOME"
  ensure_packages
  # Jaeger's first build takes minutes: it runs while the others start.
  local jaeger_build
  jaeger_fetch >/dev/null 2>>"$JAEGER_BUILD_LOG" &
  jaeger_build=$!
  # Everything is started before anything is waited for, so PostgreSQL and
  # RabbitMQ boot while Maven fetches jars and the broker's JVM starts.
  pg_start
  rabbitmq_start
  kafka_start
  apicurio_start
  pg_wait
  pg_configure
  rabbitmq_wait
  kafka_wait
  apicurio_wait
  ensure_topics
  wait "$jaeger_build" || {
    show_log_tail "$JAEGER_BUILD_LOG"
    die "building Jaeger failed (see $JAEGER_BUILD_LOG)"
  }
  jaeger_start
  jaeger_wait
  cmd_status
  echo
  echo "# Use with: eval \"\$(scripts/stack.sh env)\""
  print_env
  info "stack ready in $((SECONDS - started))s"
}

cmd_down() {
  apicurio_stop
  jaeger_stop
  kafka_stop
  pg_stop
  rabbitmq_stop
  cmd_status || true
}

main() {
  case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) print_env ;;
    *)
      echo "usage: $0 up|down|status|env" >&2
      exit 2
      ;;
  esac
}

main "$@"
