# syntax=docker/dockerfile:1
#
# The container image of one orderflow binary: `docker build --build-arg BIN=<binary> -t
# orderflow/<binary> .`, where <binary> is any binary of the workspace (checkout,
# supplier-dispatch, notifications, mailer, accounting, sales-reporting, product-analytics,
# order-tail, orderflowctl, payment-sim, supplier-sim, smtp-sink, storefront-sim). The entrypoint
# is that binary; arguments are its command (`migrate`, `accounting export ...`). It reads the
# same environment variables as when run locally (README, "Configuration"). docs/containers.md
# says how to build and run the images; docker-compose.yml builds one per service.
#
# One image per binary, from one build: the builder stage compiles every binary of the workspace
# and does not depend on BIN, so BuildKit builds it once and every image reuses it; only the last
# stage, which copies one binary, differs. Each image then holds one program (a small image, and
# one name per binary for deploy/k8s), without one cargo build per service.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# The Rust toolchain on the same Debian release as the runtime image, so the binaries link the
# glibc and libssl3 the runtime has. cmake builds librdkafka (rdkafka's cmake-build feature);
# libssl-dev and zlib1g-dev come with the image.
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
# cargo-chef splits the build in two: the dependencies, from a recipe of the manifests and
# Cargo.lock only, and then our own crates. The dependencies' layer (most of the build time)
# stays cached until a manifest or the lock file changes.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# Debug info of the standard library out of the binaries; symbol names stay for backtraces.
ENV CARGO_PROFILE_RELEASE_STRIP=debuginfo
COPY --from=planner /src/recipe.json recipe.json
# The build settings of the dependencies (jemalloc's) come before them.
COPY .cargo .cargo
RUN cargo chef cook --release --locked --workspace --bins --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --workspace --bins \
    && mkdir /out \
    && find target/release -maxdepth 1 -type f -executable -exec install -m 0755 -t /out {} +

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# Shared libraries the binaries link besides glibc, libgcc_s and zlib (already in the base):
# libssl3 (rdkafka's ssl feature, reqwest's native-tls); ca-certificates for TLS to Kafka, S3,
# the registry and SMTP. busybox (800 KB, needs only libc) gives the compose health checks an
# HTTP client, `busybox wget`; curl would bring a dozen libraries. Kubernetes probes need none.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates busybox \
    && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it. The working directory is the
# one place the user may write (product-analytics' default archive folder); a named volume
# mounted there takes its ownership.
RUN groupadd --system --gid 10001 orderflow \
    && useradd --system --uid 10001 --gid orderflow --home-dir /var/lib/orderflow --no-create-home \
       --shell /usr/sbin/nologin orderflow \
    && install -d -o orderflow -g orderflow /var/lib/orderflow
WORKDIR /var/lib/orderflow
ARG BIN
RUN test -n "$BIN" || { echo "set --build-arg BIN=<binary>" >&2; exit 1; }
COPY --from=builder /out/${BIN} /usr/local/bin/${BIN}
# ENTRYPOINT cannot expand a build argument, so a shell expands the binary's name and execs it:
# the binary is then PID 1 under its own name and receives SIGTERM itself.
ENV ORDERFLOW_BINARY=${BIN}
USER 10001:10001
ENTRYPOINT ["/bin/sh", "-c", "exec \"/usr/local/bin/$ORDERFLOW_BINARY\" \"$@\"", "orderflow"]
