#!/usr/bin/env bash
# Checks the monitoring configuration: deploy/prometheus (scrape config and alert rules) with
# Prometheus' own promtool, the rules' unit tests (deploy/prometheus/alerts.test.yml: each alert
# fires on the input series it should and stays quiet on the others), and the Grafana dashboards
# of deploy/grafana/dashboards (valid JSON, unique panel ids, the provisioned datasource, queries
# that promtool parses). Every metric name the dashboards and rules use must be one that
# docs/observability.md documents. Needs go (to build promtool once) and python3.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORDERFLOW_ROOT"

# The same release as the prom/prometheus image of docker-compose.yml. Prometheus 3.x is tagged
# v0.3XX.Y as a Go module.
PROMETHEUS_VERSION=3.15.0
PROMETHEUS_MODULE=github.com/prometheus/prometheus@v0.315.0
PROMTOOL_HOME="$STACK_DIR/promtool"
PROMTOOL="$PROMTOOL_HOME/promtool-$PROMETHEUS_VERSION"
PROMTOOL_BUILD_LOG="$STACK_LOG_DIR/promtool-build.log"

# Builds promtool unless it is there (about 4 minutes and 1.8 GB of module and build caches the
# first time on 2 cores). remove_all_sd leaves out the cloud service discoveries (half the build);
# our scrape config uses static targets only.
promtool_fetch() {
  go_build_module "$PROMETHEUS_MODULE" ./cmd/promtool "$PROMTOOL" "$PROMTOOL_BUILD_LOG" \
    -tags remove_all_sd \
    -ldflags "-X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION"
}

command -v python3 >/dev/null || die "python3 not found"
promtool_fetch

info "promtool $PROMETHEUS_VERSION check config deploy/prometheus/prometheus.yml (and its rule file)"
"$PROMTOOL" check config deploy/prometheus/prometheus.yml
info "promtool check rules deploy/prometheus/alerts.yml"
"$PROMTOOL" check rules deploy/prometheus/alerts.yml
info "promtool test rules deploy/prometheus/alerts.test.yml"
"$PROMTOOL" test rules deploy/prometheus/alerts.test.yml

info "dashboards and rules against docs/observability.md"
dashboard_rules=$(mktemp --suffix=.yml)
trap 'rm -f "$dashboard_rules"' EXIT
python3 - "$dashboard_rules" deploy/grafana/dashboards/*.json <<'PY'
"""Checks the Grafana dashboards named after the first argument, and the alert rules: valid JSON,
unique panel ids, the provisioned datasource, and only metrics that docs/observability.md
documents. Writes the dashboards' queries to the first argument as recording rules, with Grafana's
variables replaced, for promtool to parse."""
import json
import re
import sys

# A documented name is the first cell of a metrics table row: | `orderflow_...` | type | ...
DOC_ROW = re.compile(r"^\|\s*`(orderflow_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|", re.M)
# Every orderflow_ token in an expression is a metric name: no label of ours has the prefix.
METRIC = re.compile(r"\borderflow_[a-zA-Z0-9_:]+")
# A name right before a brace is a selector; ours are covered above, and these are Prometheus'.
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
BUILTIN = {"up"}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
# What Grafana puts in for its variables, close enough for the parser.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$group": ".+"}

rules_out, dashboards = sys.argv[1], sys.argv[2:]
documented = dict(DOC_ROW.findall(open("docs/observability.md").read()))
datasource_uid = re.search(
    r"^\s*uid:\s*(\S+)", open("deploy/grafana/provisioning/datasources/prometheus.yaml").read(), re.M
).group(1)
errors = []
queries = []


def check_expr(where, expr):
    for token in METRIC.findall(expr):
        base = token
        for suffix in HISTOGRAM_SERIES:
            if token.endswith(suffix) and documented.get(token[: -len(suffix)]) == "histogram":
                base = token[: -len(suffix)]
        if base not in documented:
            errors.append(f"{where}: {token} is not in docs/observability.md's metric tables")
    for name in SELECTOR.findall(expr):
        if not name.startswith("orderflow_") and name not in BUILTIN and name not in ("by", "without", "on", "ignoring"):
            errors.append(f"{where}: {name} is neither one of our metrics nor {sorted(BUILTIN)}")


def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


for path in dashboards:
    try:
        dashboard = json.load(open(path))
    except ValueError as e:
        errors.append(f"{path}: not valid JSON: {e}")
        continue
    if not dashboard.get("uid") or not dashboard.get("title"):
        errors.append(f"{path}: a dashboard needs a uid and a title")
    titles = {}
    for panel in panels(dashboard.get("panels", [])):
        where = f"{path}: panel {panel.get('id')} ({panel.get('title')!r})"
        if not isinstance(panel.get("id"), int):
            errors.append(f"{where}: no numeric id")
        elif panel["id"] in titles:
            errors.append(f"{where}: id also used by {titles[panel['id']]!r}")
        else:
            titles[panel["id"]] = panel.get("title")
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != datasource_uid:
            errors.append(f"{where}: datasource is not the provisioned one (uid {datasource_uid})")
        if not panel.get("targets"):
            errors.append(f"{where}: no query")
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            check_expr(where, expr)
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            if "$" in expr:
                errors.append(f"{where}: a Grafana variable this check does not know: {expr}")
            queries.append(expr)
    for variable in dashboard.get("templating", {}).get("list", []):
        check_expr(f"{path}: variable {variable.get('name')}", variable.get("definition", ""))

# The rules file is YAML; its expressions are the `expr:` values (block scalars indented below).
rules = open("deploy/prometheus/alerts.yml").read()
exprs = re.findall(r"^\s*- alert: (\S+)\n\s*expr: (\|\n(?:\s{10}.*\n)+|.*\n)", rules, re.M)
if len(exprs) != len(re.findall(r"^\s*- alert:", rules, re.M)):
    errors.append("alerts.yml: could not read the expression of every rule")
for name, expr in exprs:
    check_expr(f"alerts.yml: {name}", expr)

with open(rules_out, "w") as out:
    out.write("groups:\n  - name: dashboards\n    rules:\n")
    for i, expr in enumerate(queries):
        # A JSON string is a valid YAML scalar.
        out.write(f"      - record: dashboard:query:{i}\n        expr: {json.dumps(expr)}\n")
for error in errors:
    print(f"error: {error}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"{len(dashboards)} dashboards ({len(queries)} queries) and {len(exprs)} alert rules use only documented metrics")
PY
info "promtool check rules: the dashboards' queries parse"
"$PROMTOOL" check rules "$dashboard_rules"
