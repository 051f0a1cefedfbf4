# The ECS worker: `bottlesync work` (the task definition's command is
# ["bottlesync", "work", "--concurrency", "N"]). Build from the repository root:
#   docker build --platform linux/amd64 -t bottlesync .   # linux/arm64 for ARM64 tasks
# Multi-stage: a Rust toolchain builds the binary, a distroless image (glibc,
# CA certificates, no shell) runs it as a non-root user.

FROM rust:1.94-bookworm AS build
WORKDIR /src
# Only what the build needs: the workspace manifests and every member crate
# (scripts/check-dockerfile.sh, run by scripts/test.sh, builds exactly this).
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY core core
COPY adapters adapters
COPY planner planner
COPY worker worker
COPY loadtest loadtest
RUN cargo build --release --locked --bin bottlesync \
 && cp target/release/bottlesync /bottlesync

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /bottlesync /usr/local/bin/bottlesync
# distroless's "nonroot" user (65532); the task's root file system is read-only
# and only /tmp is writable.
USER nonroot:nonroot
ENV BOTTLESYNC_LOG_FORMAT=json
CMD ["bottlesync", "work"]
