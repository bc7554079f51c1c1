#!/usr/bin/env bash
# The fault-injection suite on its own: builds the service binaries it runs as processes, then
# runs tests/faults (its own Kafka broker, PostgreSQL and RabbitMQ on free loopback ports, started
# from the packages and jars scripts/stack.sh installs). Arguments select scenarios by name, e.g.
#   scripts/faults.sh kill postgres
# ORDERFLOW_FAULT_ORDERS sets the orders per scenario (default 250).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORDERFLOW_ROOT"

# The installs (Java, Kafka's jars, PostgreSQL, RabbitMQ) are the stack's; its servers are not used.
"$ORDERFLOW_ROOT/scripts/stack.sh" up
export RUST_LOG=${RUST_LOG:-warn}
cargo build --locked --bins
exec cargo test --locked -p orderflow-faults --test faults -- "$@"
