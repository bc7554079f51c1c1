# shellcheck shell=bash
# Kafka without Docker or a distribution tarball: the broker and its admin
# tools run straight from the jars Maven Central serves. Shared by
# scripts/stack.sh (the long-running dev broker) and scripts/kafka-node.sh
# (throwaway brokers that integration tests start, kill and restart).
# Sourced, never run.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_VERSION=4.1.1
KAFKA_CONF_DIR="$ORDERFLOW_ROOT/scripts/kafka"
KAFKA_POM="$KAFKA_CONF_DIR/pom.xml"
KAFKA_TEMPLATE="$KAFKA_CONF_DIR/server.properties.tmpl"
KAFKA_LOG4J="$KAFKA_CONF_DIR/log4j2.xml"
KAFKA_ADMIN_PROPS="$KAFKA_CONF_DIR/admin.properties"
KAFKA_HOME="$STACK_DIR/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs"
# Records which pom.xml the jars in KAFKA_LIBS came from, so editing the pom
# (say, a version bump) refetches instead of running stale jars.
KAFKA_LIBS_STAMP="$KAFKA_LIBS/.pom.sha256"

kafka_require_java() {
  command -v java >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
  local version
  version=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')
  [[ ${version%%.*} -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17+, found java $version"
}

kafka_libs_ready() {
  [[ -f $KAFKA_LIBS_STAMP ]] && [[ $(<"$KAFKA_LIBS_STAMP") == "$(sha256sum <"$KAFKA_POM" | cut -d' ' -f1)" ]]
}

# Downloads the broker, the admin tools and the log4j binding into KAFKA_LIBS,
# unless they are already there. Several test processes may call this at once
# on a fresh clone: a lock serialises them, and the jars land in a temporary
# folder that is renamed into place only when complete.
kafka_fetch_libs() {
  kafka_libs_ready && return 0
  command -v mvn >/dev/null || die "mvn not found: install maven (apt-get install maven)"
  mkdir -p "$KAFKA_HOME" "$STACK_LOG_DIR"
  local lock_fd
  exec {lock_fd}>"$KAFKA_HOME/.libs.lock"
  flock "$lock_fd"
  if ! kafka_libs_ready; then
    local tmp log="$STACK_LOG_DIR/mvn-kafka.log"
    tmp=$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")
    info "fetching Kafka $KAFKA_VERSION jars from Maven Central (about a minute the first time; log: $log)"
    if ! mvn -B -ntp -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1; then
      rm -rf "$tmp"
      show_log_tail "$log"
      die "could not fetch the Kafka jars with Maven, see $log"
    fi
    sha256sum <"$KAFKA_POM" | cut -d' ' -f1 >"$tmp/.pom.sha256"
    chmod 755 "$tmp" # mktemp made it private
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
  fi
  exec {lock_fd}>&-
}

# A KRaft cluster id: 16 random bytes, URL-safe base64 without padding, as
# Kafka's Uuid.randomUuid() makes them (it also avoids a leading '-', which
# command lines would take for an option). Saves a JVM start per format.
kafka_new_cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    [[ $id != -* ]] && break
  done
  printf '%s\n' "$id"
}

# kafka_render_properties <out> <log_dirs> <broker_port> <controller_port> [key=value...]
# Fills the template; extra key=value lines come last and so win.
kafka_render_properties() {
  local out=$1 log_dirs=$2 port=$3 cport=$4
  shift 4
  local tmp="$out.tmp.$$"
  # Escape what sed's replacement text treats specially (|, & and \).
  local esc_dirs
  esc_dirs=$(printf '%s' "$log_dirs" | sed 's/[|&\\]/\\&/g')
  sed -e "s|@LOG_DIRS@|$esc_dirs|g" \
    -e "s|@BROKER_PORT@|$port|g" \
    -e "s|@CONTROLLER_PORT@|$cport|g" \
    "$KAFKA_TEMPLATE" >"$tmp"
  if (($# > 0)); then
    printf '\n# Overrides for this broker\n' >>"$tmp"
    printf '%s\n' "$@" >>"$tmp"
  fi
  mv -f "$tmp" "$out"
}

# Sets the global array KAFKA_CMD to a java command line running <class> with
# the Kafka jars, logging to <log_file> at <level>. Callers add JVM options
# before the class through KAFKA_JVM_OPTS (an array).
# kafka_java_cmd <log_file> <level> <class> [args...]
kafka_java_cmd() {
  local log_file=$1 level=$2 class=$3
  shift 3
  KAFKA_CMD=(java "${KAFKA_JVM_OPTS[@]}"
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$KAFKA_LOG4J"
    "-Dorderflow.kafka.logFile=$log_file"
    "-Dorderflow.kafka.logLevel=$level"
    -cp "$KAFKA_LIBS/*"
    "$class" "$@")
}

# Sets KAFKA_CMD to run a broker with <props>.
# kafka_broker_cmd <props> <heap> <log_file>
kafka_broker_cmd() {
  local props=$1 heap=$2 log_file=$3
  # Kafka's own launcher defaults (kafka-run-class.sh), heap fixed to avoid resizing.
  KAFKA_JVM_OPTS=("-Xms$heap" "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent)
  kafka_java_cmd "$log_file" INFO kafka.Kafka "$props"
}

# Runs a Kafka command-line tool (TopicCommand, StorageTool, ...) in the
# foreground; its own log lines go to <log_file> at WARN. The JVM flags favour
# start-up time: these tools live for a second or two.
# kafka_tool <log_file> <class> [args...]
kafka_tool() {
  local log_file=$1 class=$2
  shift 2
  KAFKA_JVM_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1)
  kafka_java_cmd "$log_file" WARN "$class" "$@"
  "${KAFKA_CMD[@]}"
}

# Formats <log_dirs> for a new single-node cluster unless it already holds one.
# kafka_format_if_needed <props> <log_dirs> <log_file>
kafka_format_if_needed() {
  local props=$1 log_dirs=$2 log_file=$3
  [[ -f $log_dirs/meta.properties ]] && return 0
  mkdir -p "$log_dirs"
  # shellcheck disable=SC2094 # log4j appends to the file too; both only append
  if ! kafka_tool "$log_file" kafka.tools.StorageTool format --ignore-formatted \
    --cluster-id "$(kafka_new_cluster_id)" --config "$props" >>"$log_file" 2>&1; then
    show_log_tail "$log_file"
    die "formatting Kafka storage in $log_dirs failed, see $log_file"
  fi
}

# Runs TopicCommand against 127.0.0.1:<port> with short client timeouts, so a
# broker that is down fails fast instead of hanging for a minute.
# kafka_topics <port> <log_file> [TopicCommand args...]
kafka_topics() {
  local port=$1 log_file=$2
  shift 2
  kafka_tool "$log_file" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$port" --command-config "$KAFKA_ADMIN_PROPS" "$@"
}
