#!/usr/bin/env bash
# Validates the back office's contract, docs/asyncapi.yaml, with the official AsyncAPI CLI from
# the npm registry: the document against the AsyncAPI 3.0 schema, its $refs (the Avro files of
# schemas/), the Kafka bindings and the header schemas. Fails on any error or warning. Needs
# only node and npm; crates/core/tests/contract.rs checks the same document against the repo.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORDERFLOW_ROOT"

# 4.1.1 is the newest release that runs on node 20; 5.x and later require node 24.
ASYNCAPI_CLI_VERSION=4.1.1

command -v npx >/dev/null || die "npx not found: install node (20 or later) and npm"

# The CLI sends usage metrics unless its settings file says not to; it keeps that file in the
# home directory by default, so give it one of its own that turns them off.
settings=$(mktemp)
trap 'rm -f "$settings"' EXIT
printf '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"orderflow"}' >"$settings"
export ASYNCAPI_METRICS_CONFIG_PATH=$settings

info "asyncapi validate docs/asyncapi.yaml (@asyncapi/cli@$ASYNCAPI_CLI_VERSION)"
npx --yes "@asyncapi/cli@$ASYNCAPI_CLI_VERSION" validate docs/asyncapi.yaml --fail-severity warn
