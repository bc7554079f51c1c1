#!/usr/bin/env bash
# Checks the container setup without a Docker engine:
# - docker-compose.yml with the Compose CLI itself (`docker compose config`: the Compose
#   specification's schema, interpolation, references between services, depends_on), every
#   profile enabled;
# - what the specification cannot know, on compose's normalised model: each image built from
#   the Dockerfile names a binary of the workspace (`cargo metadata`) and is tagged
#   orderflow/<binary>; each service built from it that runs has a health check, serves its
#   metrics on 0.0.0.0 at the port docs/observability.md gives it, is scraped by
#   deploy/prometheus/prometheus.yml under its own name at that port, and gets more stop grace
#   than its drain time; a dependency with a health check or a one-shot is waited for by
#   condition; every host named in a URL of the services' settings is a service of the file;
#   .dockerignore keeps what the build reads;
# - the Dockerfile with BuildKit's own front end: the rules of `docker build --check`, for each
#   BIN the compose file asks for, base images pinned.
# Needs go (the Compose CLI and the linter are built once from their Go modules, under .stack/),
# cargo and python3.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORDERFLOW_ROOT"

# Compose v5 is the current line of the CLI plugin (module path /v5). 5.6.0 and later need a
# module version the Go proxy does not serve (github.com/DefangLabs/secret-detector).
COMPOSE_VERSION=5.5.1
COMPOSE="$STACK_DIR/compose/docker-compose-$COMPOSE_VERSION"
# The BuildKit release Compose 5.5.1 builds with; 0.34 needs a module the proxy does not serve.
BUILDKIT_VERSION=0.33.0
LINT_HOME="$STACK_DIR/dockerfile-lint"

# About 2.5 minutes and 800 MB of module and build caches the first time on 2 cores.
compose_fetch() {
  go_build_module "github.com/docker/compose/v5@v$COMPOSE_VERSION" ./cmd "$COMPOSE" \
    "$STACK_LOG_DIR/compose-build.log" \
    -ldflags "-w -X github.com/docker/compose/v5/internal.Version=v$COMPOSE_VERSION"
}

# The linter is a small program on BuildKit's Dockerfile front end (dockerfile2llb.DockerfileLint,
# what `docker build --check` runs), with a resolver that answers for base images offline. Its
# source is here; the binary's name carries a hash of it, so a change rebuilds it.
LINT_SOURCE=$(
  cat <<'GO'
// Lints a Dockerfile with BuildKit's own front end, as `docker build --check` does, without an
// engine or a registry: base images resolve to an empty image config. An image must name a tag
// or digest other than latest, which also catches a misspelt stage name in FROM or COPY --from
// (BuildKit would take it for an image on Docker Hub).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
)

type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", "", nil, err
	}
	tagged, isTagged := named.(reference.Tagged)
	_, isDigested := named.(reference.Digested)
	if !isDigested && (!isTagged || tagged.Tag() == "latest") {
		return "", "", nil, fmt.Errorf("image %q has no pinned tag or digest (or is a misspelt stage name)", ref)
	}
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{digest.FromString(ref).String()}},
		"config":       map[string]any{"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
	})
	return ref, "", config, err
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-lint DOCKERFILE [NAME=VALUE...]")
		os.Exit(2)
	}
	path := os.Args[1]
	dt, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	args := map[string]string{}
	for _, kv := range os.Args[2:] {
		name, value, _ := strings.Cut(kv, "=")
		args[name] = value
	}
	ctx := context.Background()
	// The source map lets the results point at lines of the file, as the front end's own does.
	src := llb.Local("dockerfile")
	definition, err := src.Marshal(ctx)
	if err != nil {
		fail(err)
	}
	sourceMap := llb.NewSourceMap(&src, path, "Dockerfile", dt)
	sourceMap.Definition = definition
	results, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{BuildArgs: args},
		SourceMap:    sourceMap,
		MetaResolver: offlineResolver{},
	})
	if err != nil {
		fail(err)
	}
	if err := results.PrintTo(os.Stdout, nil); err != nil {
		fail(err)
	}
	if results.Error != nil {
		fmt.Println()
		results.PrintErrorTo(os.Stdout, nil)
	}
	if len(results.Warnings) > 0 || results.Error != nil {
		os.Exit(1)
	}
}
GO
)
LINT="$LINT_HOME/dockerfile-lint-$BUILDKIT_VERSION-$(printf '%s' "$LINT_SOURCE" | sha256sum | cut -c1-12)"

# About 30 s the first time after the Compose CLI's build, whose caches it shares (1.5 minutes
# from empty Go caches).
lint_fetch() {
  [[ -x $LINT ]] && return 0
  command -v go >/dev/null || die "go not found: the Dockerfile linter is built from BuildKit's Go module"
  local src="$LINT_HOME/src" log="$STACK_LOG_DIR/dockerfile-lint-build.log"
  info "building the Dockerfile linter on github.com/moby/buildkit v$BUILDKIT_VERSION (log: $log)"
  rm -rf "$src"
  mkdir -p "$src" "$STACK_LOG_DIR"
  printf '%s\n' "$LINT_SOURCE" >"$src/main.go"
  printf 'module orderflow.local/dockerfile-lint\n\ngo 1.26\n\nrequire github.com/moby/buildkit v%s\n' \
    "$BUILDKIT_VERSION" >"$src/go.mod"
  (cd "$src" && GOWORK=off GOFLAGS=-mod=mod go mod tidy && GOWORK=off go build -trimpath -o "$LINT.tmp" .) \
    >"$log" 2>&1 || die "building the Dockerfile linter failed (see $log)"
  mv "$LINT.tmp" "$LINT"
}

command -v python3 >/dev/null || die "python3 not found"
command -v cargo >/dev/null || die "cargo not found"
compose_fetch
lint_fetch

info "docker compose $COMPOSE_VERSION config --quiet (docker-compose.yml, every profile)"
"$COMPOSE" --project-directory . -f docker-compose.yml --profile '*' config --quiet

info "docker-compose.yml and .dockerignore against the workspace, docs/observability.md and prometheus.yml"
model=$(mktemp)
metadata=$(mktemp)
trap 'rm -f "$model" "$metadata"' EXIT
"$COMPOSE" --project-directory . -f docker-compose.yml --profile '*' config --format json >"$model"
cargo metadata --no-deps --locked --format-version 1 >"$metadata"
bins=$(python3 - "$model" "$metadata" <<'PY'
"""Checks compose's normalised model (first argument) against the workspace's binaries (cargo
metadata, second argument), docs/observability.md, deploy/prometheus/prometheus.yml and
.dockerignore. Prints the BINs the file builds, one a line."""
import fnmatch
import json
import os
import re
import sys

model = json.load(open(sys.argv[1]))
metadata = json.load(open(sys.argv[2]))
services = model["services"]
errors = []

binaries = {t["name"] for p in metadata["packages"] for t in p["targets"] if "bin" in t["kind"]}
# | `checkout` | 127.0.0.1:9101 | ...: each service's metrics port.
metrics_ports = {
    name: int(port)
    for name, port in re.findall(
        r"^\|\s*`([a-z-]+)`\s*\|\s*127\.0\.0\.1:(\d+)", open("docs/observability.md").read(), re.M
    )
}
# job_name lines each followed by their targets, as deploy/prometheus/prometheus.yml writes them.
scrape_jobs = {
    job: targets.replace('"', "").replace(" ", "").split(",")
    for job, targets in re.findall(
        r"-\s*job_name:\s*(\S+)\s*\n\s*static_configs:\s*\n\s*-\s*targets:\s*\[([^\]]*)\]",
        open("deploy/prometheus/prometheus.yml").read(),
    )
}
DEFAULT_DRAIN_MS = 30000
DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
UNITS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def seconds(duration):
    return sum(float(n) * UNITS[u] for n, u in DURATION.findall(duration or "0s"))


built = {}
for name, service in sorted(services.items()):
    build = service.get("build")
    if not build:
        continue
    where = f"docker-compose.yml: service {name}"
    bin_ = (build.get("args") or {}).get("BIN")
    if os.path.basename(build.get("dockerfile", "")) != "Dockerfile" or build.get("context") != os.getcwd():
        errors.append(f"{where}: build from the repository root with its Dockerfile")
    if bin_ not in binaries:
        errors.append(f"{where}: BIN {bin_!r} is not a binary of the workspace ({', '.join(sorted(binaries))})")
        continue
    built[name] = bin_
    if not service.get("image", "").startswith(f"orderflow/{bin_}:"):
        errors.append(f"{where}: image {service.get('image')!r} is not orderflow/{bin_}:<tag> (deploy/k8s uses those names)")
    if service.get("profiles"):
        continue
    if not service.get("healthcheck", {}).get("test"):
        errors.append(f"{where}: no health check")
    if not service.get("restart"):
        errors.append(f"{where}: no restart policy")
    environment = service.get("environment") or {}
    listen = environment.get("ORDERFLOW_METRICS_LISTEN")
    if name in metrics_ports:
        expected = f"0.0.0.0:{metrics_ports[name]}"
        if listen != expected:
            errors.append(f"{where}: ORDERFLOW_METRICS_LISTEN is {listen!r}, not {expected} (docs/observability.md's port, reachable from other containers)")
        if scrape_jobs.get(name) != [f"{name}:{metrics_ports[name]}"]:
            errors.append(f"{where}: deploy/prometheus/prometheus.yml has no job {name} scraping {name}:{metrics_ports[name]} (it has {scrape_jobs.get(name)})")
        drain = int(environment.get("ORDERFLOW_CONSUMER_DRAIN_TIMEOUT_MS") or DEFAULT_DRAIN_MS) / 1000
        if seconds(service.get("stop_grace_period")) <= drain:
            errors.append(f"{where}: stop_grace_period {service.get('stop_grace_period')} is not longer than the drain time ({drain:g} s)")
    elif listen:
        errors.append(f"{where}: serves metrics but docs/observability.md gives {name} no port")
    for variable, value in environment.items():
        for host in re.findall(r"(?:^|://|,)(?:[^@/,]*@)?([A-Za-z][A-Za-z0-9.-]*):\d+", value or ""):
            if host not in services and host not in ("0.0.0.0", "localhost"):
                errors.append(f"{where}: {variable} names host {host}, which is not a service of the file")

for job in scrape_jobs:
    if job not in services:
        errors.append(f"deploy/prometheus/prometheus.yml: job {job} is not a service of docker-compose.yml")

for name, service in sorted(services.items()):
    for dependency, how in (service.get("depends_on") or {}).items():
        target = services.get(dependency, {})
        condition = how.get("condition")
        if target.get("restart") == "no" and condition != "service_completed_successfully":
            errors.append(f"docker-compose.yml: {name} must wait for the one-shot {dependency} with service_completed_successfully, not {condition}")
        elif target.get("restart") != "no" and target.get("healthcheck", {}).get("test") and condition != "service_healthy":
            errors.append(f"docker-compose.yml: {name} must wait for {dependency} with service_healthy (it has a health check), not {condition}")

# What the image build reads: the workspace's manifests and sources, and schemas/ (compiled in).
needed = ["Cargo.toml", "Cargo.lock", "schemas"] + [
    os.path.relpath(os.path.dirname(p["manifest_path"])) for p in metadata["packages"]
]
for line in open(".dockerignore"):
    pattern = line.strip()
    if not pattern or pattern.startswith("#"):
        continue
    if pattern.startswith("!"):
        errors.append(f".dockerignore: this check does not handle exceptions ({pattern})")
        continue
    for path in needed:
        parts = path.split("/")
        if any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern.strip("/")) for i in range(len(parts))):
            errors.append(f".dockerignore: {pattern} leaves out {path}, which the build needs")

for error in errors:
    print(f"error: {error}", file=sys.stderr)
if errors:
    sys.exit(1)
for bin_ in sorted(set(built.values())):
    print(bin_)
print(f"{len(built)} services built from the Dockerfile, {len(scrape_jobs)} scrape jobs: consistent", file=sys.stderr)
PY
)

info "the Dockerfile with BuildKit v$BUILDKIT_VERSION's front end (docker build --check), for each BIN"
for bin in $bins; do
  "$LINT" Dockerfile "BIN=$bin" || die "Dockerfile (BIN=$bin): see above"
done
info "Dockerfile: no findings for $(wc -w <<<"$bins") binaries"
