# shellcheck shell=bash
# Helpers shared by the scripts in scripts/. Sourced, never run.

# Paths from this file's location, so the scripts work from any cwd and in a
# fresh clone. Used by the scripts that source this file.
# shellcheck disable=SC2034
{
  ORDERFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  STACK_DIR="$ORDERFLOW_ROOT/.stack"
  STACK_LOG_DIR="$STACK_DIR/logs"
  STACK_RUN_DIR="$STACK_DIR/run"
}

info() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Installing packages and managing the system's PostgreSQL and RabbitMQ need
# root; developers who are not root get sudo instead.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  else
    sudo "$@"
  fi
}

# True when something accepts TCP connections on 127.0.0.1:<port>. Uses bash's
# /dev/tcp so no extra tool (nc, ss) is needed; refusals on loopback are instant.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints the last lines of a log file, indented, to help explain a failure.
show_log_tail() {
  local file=$1 lines=${2:-25}
  if [[ -r $file ]]; then
    printf -- '--- last %s lines of %s ---\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" | sed 's/^/    /' >&2
  fi
}
