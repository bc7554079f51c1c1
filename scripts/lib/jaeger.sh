# shellcheck shell=bash
# Jaeger without Docker: the all-in-one binary (Jaeger v2, in-memory storage) built from its Go
# module, for the traces of scripts/stack.sh and the trace test. Jaeger publishes no binaries to
# the registries this machine reaches, but the Go module proxy serves its source. Sourced by
# scripts/stack.sh, never run.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

JAEGER_VERSION=2.13.0
# Jaeger v2's Go module path has no /v2 suffix, so each v2 release is tagged with its v1 twin.
JAEGER_MODULE=github.com/jaegertracing/jaeger@v1.76.0
JAEGER_HOME="$STACK_DIR/jaeger"
JAEGER_BIN="$JAEGER_HOME/jaeger-$JAEGER_VERSION"
JAEGER_LOG="$STACK_LOG_DIR/jaeger.log"
JAEGER_BUILD_LOG="$STACK_LOG_DIR/jaeger-build.log"
JAEGER_PID_FILE="$STACK_RUN_DIR/jaeger.pid"
# The all-in-one's defaults: OTLP over HTTP (what the services export), the UI and query API.
JAEGER_OTLP_PORT=4318
JAEGER_UI_PORT=16686

# Builds the binary unless it is there (about 5 minutes and 300 MB of modules the first time).
jaeger_fetch() {
  go_build_module "$JAEGER_MODULE" ./cmd/jaeger "$JAEGER_BIN" "$JAEGER_BUILD_LOG"
}

jaeger_pid() {
  running_pid "$JAEGER_PID_FILE" "jaeger-$JAEGER_VERSION"
}

jaeger_start() {
  jaeger_pid >/dev/null && return 0
  jaeger_fetch
  local port
  for port in "$JAEGER_OTLP_PORT" "$JAEGER_UI_PORT"; do
    if port_open "$port"; then
      die "127.0.0.1:$port is taken by a process other than the Jaeger of $JAEGER_PID_FILE"
    fi
  done
  mkdir -p "$STACK_RUN_DIR"
  info "starting Jaeger $JAEGER_VERSION (OTLP http://127.0.0.1:$JAEGER_OTLP_PORT, UI http://127.0.0.1:$JAEGER_UI_PORT)"
  start_detached "$JAEGER_PID_FILE" "$JAEGER_LOG" "$JAEGER_BIN"
}

jaeger_listening() {
  port_open "$JAEGER_OTLP_PORT" && port_open "$JAEGER_UI_PORT"
}

jaeger_wait() {
  await_server Jaeger jaeger_pid "$JAEGER_LOG" jaeger_listening
}

jaeger_stop() {
  local pid
  pid=$(jaeger_pid) || return 0
  stop_pid Jaeger "$pid"
  rm -f "$JAEGER_PID_FILE"
}
