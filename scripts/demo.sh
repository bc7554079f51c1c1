#!/usr/bin/env bash
# The main job, end to end on this machine: the stack up, the simulators (payment, supplier,
# SMTP sink), checkout and every consumer started, a batch of sample orders placed through the
# checkout API, and each consumer's outcome shown: print jobs at the supplier, e-mails at the
# SMTP sink, journal entries, the monthly report and the Parquet archive.
# `scripts/demo.sh [COUNT]` (default 20).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORDERFLOW_ROOT"
count=${1:-20}
[[ $count =~ ^[0-9]+$ ]] || die "usage: $0 [COUNT]"

"$ORDERFLOW_ROOT/scripts/stack.sh" up
info "building the services"
cargo build --locked -p checkout -p order-tail -p orderflow-simulators -p supplier-dispatch \
  -p notifications -p accounting -p sales-reporting -p product-analytics

export ORDERFLOW_KAFKA_BROKERS=127.0.0.1:9092
export ORDERFLOW_DATABASE_URL=postgres://orderflow:orderflow@127.0.0.1:5432/orderflow
export ORDERFLOW_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f
export ORDERFLOW_PAYMENT_API_URL=http://127.0.0.1:8091
export ORDERFLOW_SUPPLIER_API_URL=http://127.0.0.1:8092
export ORDERFLOW_SMTP_URL=smtp://127.0.0.1:2525
# The sink answers message lookups like a mail provider, so an interrupted send is not repeated.
export ORDERFLOW_MAIL_LOOKUP_URL=http://127.0.0.1:8025/messages
export ORDERFLOW_ANALYTICS_ARCHIVE_URL=$ORDERFLOW_ROOT/.stack/analytics-archive
export ORDERFLOW_ANALYTICS_FLUSH_INTERVAL_MS=2000
# A supplier that is slow and sometimes busy, to show retries doing their job.
export ORDERFLOW_SUPPLIER_SIM_LATENCY_MS=${ORDERFLOW_SUPPLIER_SIM_LATENCY_MS:-50}
export ORDERFLOW_SUPPLIER_SIM_RATE_LIMIT_RATE=${ORDERFLOW_SUPPLIER_SIM_RATE_LIMIT_RATE:-0.1}
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
start supplier-sim target/debug/supplier-sim
start smtp-sink target/debug/smtp-sink
wait_port 8091
wait_port 8092
wait_port 2525
start checkout target/debug/checkout
wait_port 8080
tail_log="$STACK_LOG_DIR/demo-order-tail.log"
start order-tail target/debug/order-tail
for consumer in supplier-dispatch notifications mailer accounting sales-reporting product-analytics; do
  start "$consumer" "target/debug/$consumer"
done
wait_port 8093

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
grep "order placed.*order_id=$run-" "$tail_log" | sed 's/^.*order placed/order placed/' | head -n 5
((seen >= count)) || die "order-tail saw $seen of $count orders; see $tail_log"
info "GET /v1/orders/$first"
curl -fsS "http://127.0.0.1:8080/v1/orders/$first"
echo

psql_in() { # schema, then SQL; one value
  PGOPTIONS="-c search_path=$1" psql -qtAX "$ORDERFLOW_DATABASE_URL" -c "$2"
}
wait_for() { # what, expected, command printing a number
  local what=$1 expected=$2 got=0
  shift 2
  for _ in $(seq 1 300); do
    got=$("$@" 2>/dev/null || echo 0)
    ((got >= expected)) && break
    sleep 0.2
  done
  printf '  %-40s %s of %s\n' "$what" "$got" "$expected"
  ((got >= expected)) || die "$what: $got of $expected; see $STACK_LOG_DIR/demo-*.log"
}
jobs_expected=$(psql_in checkout "SELECT count(DISTINCT (order_id, l->>'supplier_id')) FROM orders, jsonb_array_elements(request->'lines') l WHERE order_id LIKE '$run-%'" 2>/dev/null || echo "$count")
info "each consumer's outcome for run $run"
wait_for "print jobs at the supplier" "$jobs_expected" \
  psql_in supplier_dispatch "SELECT count(*) FROM dispatches WHERE status = 'accepted' AND order_id LIKE '$run-%'"
agents=$(( (count + 1) / 2 ))
wait_for "e-mails sent (customers + agents)" $((count + agents)) \
  psql_in notifications "SELECT count(*) FROM sent_emails WHERE state = 'sent' AND message_id LIKE '<order-$run-%'"
wait_for "balanced journal entries" "$count" \
  psql_in accounting "SELECT count(*) FROM journal_entries WHERE order_id LIKE '$run-%'"
lines=$(psql_in checkout "SELECT count(*) FROM orders, jsonb_array_elements(request->'lines') WHERE order_id LIKE '$run-%'" 2>/dev/null || echo "$count")
wait_for "order lines archived in Parquet" "$lines" \
  psql_in product_analytics "SELECT count(*) FROM staged_lines l JOIN batches b ON b.id = l.batch_id WHERE b.written_at IS NOT NULL AND l.order_id LIKE '$run-%'"
month=$(date -u +%Y-%m)
info "GET http://127.0.0.1:8093/v1/reports/monthly/$month?format=csv (dimension total)"
curl -fsS "http://127.0.0.1:8093/v1/reports/monthly/$month?format=csv" | awk -F, 'NR == 1 || $3 == "total"'
info "e-mails at the SMTP sink: http://127.0.0.1:8025/messages; print jobs: http://127.0.0.1:8092/v1/print-jobs"
info "Parquet archive: $ORDERFLOW_ANALYTICS_ARCHIVE_URL"
find "$ORDERFLOW_ANALYTICS_ARCHIVE_URL" -name '*.parquet' | sort | tail -n 3
info "all $count orders were accepted, published to orders.placed and processed by all five consumers"
