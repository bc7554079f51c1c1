#!/usr/bin/env bash
# The project's whole test suite: brings the local stack up (installing what is missing), then
# runs every test against it. This is the README's test command, and what CI runs.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORDERFLOW_ROOT"

"$ORDERFLOW_ROOT/scripts/stack.sh" up
# The analytics tests read the Parquet archive back with an independent reader (pyarrow).
if ! python3 -c "import pyarrow" 2>/dev/null; then
  info "installing the test readers from PyPI (consumers/product-analytics/tests/requirements.txt)"
  python3 -m pip install -q -r consumers/product-analytics/tests/requirements.txt
fi
# The back office's contract against the AsyncAPI specification (needs only node).
"$ORDERFLOW_ROOT/scripts/check-asyncapi.sh"
"$ORDERFLOW_ROOT/scripts/check-monitoring.sh"
# The container setup (docker-compose.yml, the Dockerfile), checked without a Docker engine.
"$ORDERFLOW_ROOT/scripts/check-compose.sh"
# The Kubernetes manifests, rendered and validated against the Kubernetes and KEDA schemas (needs go).
"$ORDERFLOW_ROOT/scripts/check-k8s.sh"
export ORDERFLOW_KAFKA_BROKERS=127.0.0.1:9092
export ORDERFLOW_DATABASE_URL=postgres://orderflow:orderflow@127.0.0.1:5432/orderflow
export ORDERFLOW_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f
# Lines of our own logs only; the tests' assertions say what went wrong.
export RUST_LOG=${RUST_LOG:-warn}
info "cargo test --workspace"
# Every test binary runs even when an earlier one fails, so one run shows every failure.
mkdir -p "$STACK_LOG_DIR"
log="$STACK_LOG_DIR/test.log"
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (the last binary alone may have no tests).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
# CI shows the end of the output: repeat what failed there, with the fault suite's table.
if [ "$status" -ne 0 ]; then
  echo "what failed:"
  grep -E '^test .* \.\.\. FAILED$|^error: test failed' "$log" || true
  grep -A3 "panicked at" "$log" | cut -c1-400 || true
  awk '/^scenario +accepted/ { table = 1 } table && /^test result:/ { table = 0 } table' "$log"
fi
exit "$status"
