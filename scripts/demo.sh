#!/usr/bin/env bash
# The main job, end to end on this machine: the stack up, the services started (payment
# simulator, checkout, order-tail), a batch of sample orders placed through the checkout API,
# and each order seen flowing through Kafka. `scripts/demo.sh [COUNT]` (default 20).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORDERFLOW_ROOT"
count=${1:-20}
[[ $count =~ ^[0-9]+$ ]] || die "usage: $0 [COUNT]"

"$ORDERFLOW_ROOT/scripts/stack.sh" up
info "building the services"
cargo build --locked -p checkout -p order-tail -p orderflow-simulators

export ORDERFLOW_KAFKA_BROKERS=127.0.0.1:9092
export ORDERFLOW_DATABASE_URL=postgres://orderflow:orderflow@127.0.0.1:5432/orderflow
export ORDERFLOW_PAYMENT_API_URL=http://127.0.0.1:8091
export RUST_LOG=${RUST_LOG:-info}
mkdir -p "$STACK_LOG_DIR"
pids=()
stop_services() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_services EXIT

start() { # name, then the command; logs to .stack/logs/demo-<name>.log
  local name=$1 log="$STACK_LOG_DIR/demo-$1.log"
  shift
  "$@" >"$log" 2>&1 &
  pids+=($!)
  info "$name started (pid $!, log $log)"
}
wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
  die "nothing listens on 127.0.0.1:$1; see $STACK_LOG_DIR"
}

start payment-sim target/debug/payment-sim
wait_port 8091
start checkout target/debug/checkout
wait_port 8080
tail_log="$STACK_LOG_DIR/demo-order-tail.log"
start order-tail target/debug/order-tail

info "placing $count sample orders through POST /v1/orders"
target/debug/storefront-sim "$count" | tee "$STACK_LOG_DIR/demo-storefront.log"
first=$(awk 'NR==1 {print $2}' "$STACK_LOG_DIR/demo-storefront.log")
run=${first%-*}

info "waiting for order-tail to see them on orders.placed"
for _ in $(seq 1 600); do
  seen=$(grep -c "order placed.*order_id=$run-" "$tail_log" || true)
  ((seen >= count)) && break
  sleep 0.1
done
grep "order placed.*order_id=$run-" "$tail_log" | sed 's/^.*order placed/order placed/' | head -n "$count"
((seen >= count)) || die "order-tail saw $seen of $count orders; see $tail_log"
info "GET /v1/orders/$first"
curl -fsS "http://127.0.0.1:8080/v1/orders/$first"
echo
info "all $count orders were accepted, published to orders.placed and consumed"
