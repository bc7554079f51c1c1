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

# Prints the pid written in <pid file> while that process runs and its command
# line contains <pattern>: after a reboot the pid may be another program's.
running_pid() {
  local file=$1 pattern=$2 pid
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  grep -qa -- "$pattern" "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# Starts <command...> in a session of its own, so it outlives the script and
# ignores the terminal's Ctrl-C, with its output appended to <log>, and writes
# its pid to <pid file>. setsid may fork, so $! is not the server's pid: the
# inner shell writes its own pid, which exec hands on to the server.
start_detached() {
  local pid_file=$1 log=$2
  shift 2
  rm -f "$pid_file"
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0" && exec "$@"' "$pid_file" "$@" >>"$log" 2>&1 </dev/null &
  local deadline=$((SECONDS + 10))
  until [[ -s $pid_file ]]; do
    ((SECONDS < deadline)) || die "$1 did not start, see $log"
    sleep 0.1
  done
}

# Stops <pid> with SIGTERM, and SIGKILL after <seconds> (default 20).
stop_pid() {
  local name=$1 pid=$2 patience=${3:-20}
  info "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + patience))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      warn "$name did not stop within ${patience}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
}

# Prints the directory of the Go module <module@version> in the module cache,
# downloading it (through the Go module proxy) if it is missing; errors go to <log>.
go_module_dir() {
  local module=$1 log=$2 dir
  # Under `set -o pipefail` a failed download would end the script here without a word.
  dir=$(go mod download -json "$module" 2>>"$log" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || true
  [[ -n $dir ]] || die "could not download $module (see $log)"
  printf '%s\n' "$dir"
}

# Waits until <check...> succeeds, for at most START_TIMEOUT seconds (default
# 90), while the server whose pid <pid function> prints still runs; when it
# exits, or time is up, shows the end of <log> and stops the script.
await_server() {
  local name=$1 pid_function=$2 log=$3
  shift 3
  local deadline=$((SECONDS + ${START_TIMEOUT:-90}))
  until "$@"; do
    if ! "$pid_function" >/dev/null; then
      show_log_tail "$log"
      die "$name exited during start-up (see $log)"
    fi
    if ((SECONDS >= deadline)); then
      show_log_tail "$log"
      die "$name did not answer within ${START_TIMEOUT:-90}s (see $log)"
    fi
    sleep 0.5
  done
}

# Builds <package> of the Go module <module@version> into <output>, logging to
# <log>; further arguments go to `go build`. The registries this machine reaches
# serve such tools as Go source only, and `go install module@version` refuses a
# module whose go.mod has replace directives, so the module is downloaded and
# built in its own directory (without a go.work it may ship for folders the
# module zip leaves out). Concurrent callers wait for one build.
go_build_module() {
  local module=$1 package=$2 output=$3 log=$4
  shift 4
  [[ -x $output ]] && return 0
  command -v go >/dev/null || die "go not found: $output is built from the Go module $module"
  mkdir -p "$(dirname "$output")" "$(dirname "$log")"
  local lock_fd dir
  exec {lock_fd}>"$output.lock"
  flock "$lock_fd"
  if [[ ! -x $output ]]; then
    info "building $(basename "$output") from $module on the Go module proxy (log: $log)"
    dir=$(go_module_dir "$module" "$log")
    (cd "$dir" && GOWORK=off go build -trimpath "$@" -o "$output.tmp" "$package") >>"$log" 2>&1 ||
      die "building $package of $module failed (see $log)"
    mv "$output.tmp" "$output"
  fi
  exec {lock_fd}>&-
}
