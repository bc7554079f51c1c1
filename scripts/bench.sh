#!/usr/bin/env bash
# The benchmark (issue 7): builds the service binaries and orderflow-bench in release mode,
# starts the local stack, and measures checkout, the outbox relay, each consumer against its
# ceiling, the whole pipeline end to end and every process's memory in one run. Results go to
# bench/results/, the report and chart to bench/report.md and bench/report.svg, compared with
# bench/baseline.json. Arguments go to orderflow-bench, e.g.
#   scripts/bench.sh --save-baseline
#   scripts/bench.sh --phases consumers --events 1000000
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORDERFLOW_ROOT"

"$ORDERFLOW_ROOT/scripts/stack.sh" up
# shellcheck disable=SC1090
source <("$ORDERFLOW_ROOT/scripts/stack.sh" env)
cargo build --release --locked \
    -p checkout -p supplier-dispatch -p notifications -p accounting \
    -p sales-reporting -p product-analytics -p orderflow-bench
# 10,000 connections need as many descriptors on both sides; children inherit the limit.
ulimit -n "$(ulimit -Hn)"
exec target/release/orderflow-bench "$@"
