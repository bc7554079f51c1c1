#!/usr/bin/env bash
# Checks the Kubernetes manifests of deploy/k8s/: renders the base and every
# overlay with kustomize, validates each output with kubeconform in strict mode
# against the Kubernetes API's JSON schemas and KEDA's CRD schemas, then checks
# the rules the schemas cannot express (KEDA caps at the partition count of
# deploy/topics.txt, grace periods longer than the consumers' drain time,
# non-root read-only containers with both probes, no Secret outside the dev
# overlay). Exits non-zero on the first overlay that fails.
#
# Everything comes from the Go module proxy and is cached under .stack/k8s/,
# so later runs are offline: kustomize and kubeconform are built from their
# modules; the schemas are converted from the OpenAPI document of the module
# k8s.io/kubernetes (api/openapi-spec/swagger.json) and from the CRDs of the
# module github.com/kedacore/keda/v2 (config/crd/bases), the way kubeconform's
# openapi2jsonschema does: one standalone file per kind and version, with
# additionalProperties false wherever properties are listed (strict).
#
#   scripts/check-k8s.sh            # base, overlays/dev, overlays/prod
#   scripts/check-k8s.sh prod       # the named overlays only
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORDERFLOW_ROOT"

# Pinned: kustomize v5.8.3 needs Go 1.27; Kubernetes 1.35 is the newest minor
# release but one, which KEDA 2.21 supports.
KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5@v5.8.2
KUBECONFORM_MODULE=github.com/yannh/kubeconform@v0.8.0
KUBERNETES_MODULE=k8s.io/kubernetes@v1.35.4
KEDA_MODULE=github.com/kedacore/keda/v2@v2.21.0

k8s_dir=$STACK_DIR/k8s
log=$STACK_LOG_DIR/check-k8s.log
mkdir -p "$k8s_dir/rendered" "$STACK_LOG_DIR"
kustomize=$k8s_dir/bin/kustomize-${KUSTOMIZE_MODULE##*@}
kubeconform=$k8s_dir/bin/kubeconform-${KUBECONFORM_MODULE##*@}
go_build_module "$KUSTOMIZE_MODULE" . "$kustomize" "$log" -ldflags=-s
go_build_module "$KUBECONFORM_MODULE" ./cmd/kubeconform "$kubeconform" "$log" -ldflags=-s

python3 -c 'import yaml' 2>/dev/null || {
  info "installing PyYAML from PyPI (reads the CRDs and the rendered manifests)"
  python3 -m pip install --quiet 'pyyaml==6.0.3' >>"$log" 2>&1 || die "pip install pyyaml failed (see $log)"
}

schemas=$k8s_dir/schemas/kubernetes-${KUBERNETES_MODULE##*@}-keda-${KEDA_MODULE##*@}
if [[ ! -f $schemas/.complete ]]; then
  info "converting the Kubernetes ${KUBERNETES_MODULE##*@} and KEDA ${KEDA_MODULE##*@} schemas into $schemas"
  kubernetes_dir=$(go_module_dir "$KUBERNETES_MODULE" "$log")
  keda_dir=$(go_module_dir "$KEDA_MODULE" "$log")
  rm -rf "$schemas"
  mkdir -p "$schemas"
  python3 - "$schemas" "$kubernetes_dir/api/openapi-spec/swagger.json" "$keda_dir"/config/crd/bases/*.yaml <<'EOF'
"""Writes one JSON schema per kind and version, named as kubeconform's
{{ .ResourceKind }}{{ .KindSuffix }}.json expects (deployment-apps-v1.json,
scaledobject-keda-v1alpha1.json), each standalone and strict."""
import copy, json, os, sys
import yaml

out, swagger_path, crd_paths = sys.argv[1], sys.argv[2], sys.argv[3:]


def file_name(group, version, kind):
    prefix = group.split(".")[0]
    return f"{kind.lower()}-{prefix + '-' if prefix else ''}{version}.json".lower()


def strict(schema):
    """additionalProperties false wherever properties are listed, as kubeconform's
    -strict schemas do, unless the API keeps unknown fields. Walks schemas only,
    not the maps of property names (a property may be called "properties")."""
    if not isinstance(schema, dict):
        return schema
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        schema["additionalProperties"] = False
    for key in ("properties", "patternProperties", "definitions"):
        for value in schema.get(key, {}).values():
            strict(value)
    for key in ("items", "additionalProperties", "not"):
        strict(schema.get(key))
    for key in ("allOf", "anyOf", "oneOf"):
        for value in schema.get(key, []):
            strict(value)
    return schema


def write(name, schema):
    with open(os.path.join(out, name), "w") as f:
        json.dump(schema, f)


definitions = json.load(open(swagger_path))["definitions"]
# YAML writes these as numbers as often as strings; the OpenAPI document says
# only "string" and leaves the rest to the API server's own decoding.
definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
    "oneOf": [{"type": "string"}, {"type": "integer"}]}
definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {
    "oneOf": [{"type": "string"}, {"type": "number"}]}
for definition in definitions.values():
    strict(definition)


def references(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            name = ref[len("#/definitions/"):]
            if name not in found:
                found.add(name)
                references(definitions[name], found)
        for value in node.values():
            references(value, found)
    elif isinstance(node, list):
        for value in node:
            references(value, found)
    return found


count = 0
for name, definition in definitions.items():
    for gvk in definition.get("x-kubernetes-group-version-kind", []):
        schema = copy.deepcopy(definition)
        # Standalone: the definitions it refers to travel with it, at the
        # place its "#/definitions/..." references point to.
        schema["definitions"] = {n: definitions[n] for n in references(definition, set())}
        write(file_name(gvk["group"], gvk["version"], gvk["kind"]), schema)
        count += 1

for path in crd_paths:
    crd = yaml.safe_load(open(path))
    spec = crd["spec"]
    for version in spec["versions"]:
        schema = strict(version["schema"]["openAPIV3Schema"])
        write(file_name(spec["group"], version["name"], spec["names"]["kind"]), schema)
        count += 1

print(f"{count} schemas", file=sys.stderr)
EOF
  touch "$schemas/.complete"
fi

# The rules no schema says: checked on the rendered output of one overlay.
check_rules() { # overlay name, rendered file
  python3 - "$1" "$2" deploy/topics.txt <<'EOF'
import sys
import yaml

overlay, rendered, topics_path = sys.argv[1:]
objects = [o for o in yaml.safe_load_all(open(rendered)) if o]
problems = []

partitions = {}
for line in open(topics_path):
    fields = line.split("#")[0].split()
    if fields:
        partitions[fields[0]] = int(fields[1])

def named(kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}

deployments = named("Deployment")
common = next((o for o in objects if o["kind"] == "ConfigMap"
               and o["metadata"]["name"].startswith("orderflow-common")), None)
drain_ms = int((common or {}).get("data", {}).get("ORDERFLOW_CONSUMER_DRAIN_TIMEOUT_MS", 30000))

for name, scaled in named("ScaledObject").items():
    target = scaled["spec"]["scaleTargetRef"]["name"]
    if target not in deployments:
        problems.append(f"ScaledObject {name} scales {target}, which is not a Deployment here")
    for trigger in scaled["spec"]["triggers"]:
        if trigger["type"] != "kafka":
            continue
        topic = trigger["metadata"].get("topic")
        if topic not in partitions:
            problems.append(f"ScaledObject {name}: topic {topic} is not in {topics_path}")
            continue
        maximum = scaled["spec"].get("maxReplicaCount", 100)
        if maximum > partitions[topic]:
            problems.append(f"ScaledObject {name}: maxReplicaCount {maximum} exceeds the "
                            f"{partitions[topic]} partitions of {topic} ({topics_path}); "
                            "the extra replicas would sit idle in the group")
        grace = deployments.get(target, {}).get("spec", {}).get("template", {}).get(
            "spec", {}).get("terminationGracePeriodSeconds", 30)
        if grace * 1000 <= drain_ms:
            problems.append(f"Deployment {target}: terminationGracePeriodSeconds {grace} is not "
                            f"longer than the consumer's drain time ({drain_ms} ms)")

for kind in ("Deployment", "Job"):
    for name, workload in named(kind).items():
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            if not container["image"].startswith("orderflow/"):
                continue  # the development infrastructure's own images
            where = f"{kind} {name}, container {container['name']}"
            if not pod.get("securityContext", {}).get("runAsNonRoot"):
                problems.append(f"{where}: the pod lacks securityContext.runAsNonRoot: true")
            security = container.get("securityContext", {})
            if not security.get("readOnlyRootFilesystem"):
                problems.append(f"{where}: lacks readOnlyRootFilesystem: true")
            if security.get("allowPrivilegeEscalation", True):
                problems.append(f"{where}: lacks allowPrivilegeEscalation: false")
            if kind == "Deployment" and workload["metadata"].get("labels", {}).get(
                    "app.kubernetes.io/component") == "service":
                for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                    got = container.get(probe, {}).get("httpGet", {}).get("path")
                    if got != path:
                        problems.append(f"{where}: {probe} should GET {path}, not {got}")

if overlay != "dev":
    for name in named("Secret"):
        problems.append(f"Secret {name}: only overlays/dev may carry a Secret; "
                        "elsewhere the operator creates it")

for problem in problems:
    print(f"  {overlay}: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
}

targets=("$@")
((${#targets[@]})) || targets=(base dev prod)
failed=0
for target in "${targets[@]}"; do
  case $target in
    base) dir=deploy/k8s/base ;;
    *) dir=deploy/k8s/overlays/$target ;;
  esac
  [[ -f $dir/kustomization.yaml ]] || die "no kustomization at $dir"
  rendered=$k8s_dir/rendered/$target.yaml
  # The topics ConfigMap reads deploy/topics.txt, outside every kustomization.
  if ! "$kustomize" build --load-restrictor LoadRestrictionsNone "$dir" >"$rendered"; then
    warn "$target: kustomize build $dir failed"
    failed=1
    continue
  fi
  info "$target: $(grep -c '^kind:' "$rendered") objects rendered from $dir, validating"
  if ! "$kubeconform" -strict -summary -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$rendered"; then
    warn "$target: the rendered manifests do not match the schemas ($rendered)"
    failed=1
  fi
  if ! check_rules "$target" "$rendered"; then
    warn "$target: the rendered manifests break the rules above ($rendered)"
    failed=1
  fi
done
((failed == 0)) || die "Kubernetes manifests: see the messages above"
info "Kubernetes manifests valid: ${targets[*]}"
