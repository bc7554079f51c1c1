# shellcheck shell=bash
# Apicurio Registry (in-memory) for the optional Confluent framing: its Confluent-compatible API
# (/apis/ccompat/v7) is what ORDERFLOW_SCHEMA_REGISTRY_URL points at. The 2.6 line is the last
# whose runnable distribution is on Maven Central (a Quarkus app zip); it runs on Java 17.
# Sourced by scripts/stack.sh, never run.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

APICURIO_VERSION=2.6.13.Final
APICURIO_ARTIFACT="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:zip:all"
APICURIO_HOME="$STACK_DIR/apicurio"
APICURIO_APP="$APICURIO_HOME/$APICURIO_VERSION"
APICURIO_JAR="$APICURIO_APP/apicurio-registry-app-$APICURIO_VERSION-runner.jar"
APICURIO_LOG="$STACK_LOG_DIR/apicurio.log"
APICURIO_PID_FILE="$STACK_RUN_DIR/apicurio.pid"
APICURIO_PORT=8081
SCHEMA_REGISTRY_URL="http://127.0.0.1:$APICURIO_PORT/apis/ccompat/v7"

# Fetches the distribution from Maven Central with mvn (about 140 MB, once).
apicurio_fetch() {
  [[ -f $APICURIO_JAR ]] && return 0
  command -v mvn >/dev/null || die "mvn not found: install maven (apt-get install maven)"
  mkdir -p "$APICURIO_HOME" "$STACK_LOG_DIR"
  local lock_fd tmp log="$STACK_LOG_DIR/mvn-apicurio.log"
  exec {lock_fd}>"$APICURIO_HOME/.fetch.lock"
  flock "$lock_fd"
  if [[ ! -f $APICURIO_JAR ]]; then
    info "fetching Apicurio Registry $APICURIO_VERSION from Maven Central (log: $log)"
    tmp=$(mktemp -d "$APICURIO_HOME/fetch.tmp.XXXXXX")
    mvn -B -ntp -Dstyle.color=never dependency:copy -Dartifact="$APICURIO_ARTIFACT" \
      -DoutputDirectory="$tmp" >"$log" 2>&1 ||
      die "fetching $APICURIO_ARTIFACT failed (see $log)"
    python3 -m zipfile -e "$tmp"/apicurio-registry-app-*.zip "$tmp/app" ||
      die "unpacking Apicurio Registry failed"
    rm -rf "$APICURIO_APP"
    mv "$tmp/app" "$APICURIO_APP"
    rm -rf "$tmp"
  fi
  exec {lock_fd}>&-
}

apicurio_pid() {
  running_pid "$APICURIO_PID_FILE" apicurio-registry-app
}

apicurio_start() {
  apicurio_pid >/dev/null && return 0
  apicurio_fetch
  if port_open "$APICURIO_PORT"; then
    die "127.0.0.1:$APICURIO_PORT is taken by a process other than the registry of $APICURIO_PID_FILE"
  fi
  mkdir -p "$STACK_RUN_DIR"
  info "starting Apicurio Registry $APICURIO_VERSION ($SCHEMA_REGISTRY_URL)"
  start_detached "$APICURIO_PID_FILE" "$APICURIO_LOG" \
    java -Xmx384m -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$APICURIO_PORT" \
    -jar "$APICURIO_JAR"
}

apicurio_wait() {
  await_server "Apicurio Registry" apicurio_pid "$APICURIO_LOG" \
    curl -sf -o /dev/null "$SCHEMA_REGISTRY_URL/subjects"
}

apicurio_stop() {
  local pid
  pid=$(apicurio_pid) || return 0
  stop_pid "Apicurio Registry" "$pid"
  rm -f "$APICURIO_PID_FILE"
}
