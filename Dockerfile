# accelsel container image: a Debian 12 builder compiles the Release binaries, a bookworm-slim runtime carries
# only the shared libraries they load, the bundled data and a non-root user. Operations notes: docs/OPERATIONS.md.
#
#   make image          # podman build with the revision, base images made from Debian's archive if missing
#   make image-test     # runs the image: SERVING, select, report, SIGTERM, the volume across a restart
#   docker build --build-arg REVISION="$(git rev-parse --short HEAD)" -t accelsel:0.1.0 .
#   docker run -p 50051:50051 -p 9464:9464 -v accelsel-data:/var/lib/accelsel \
#     -v "$PWD/tokens:/etc/accelsel/tokens:ro" accelsel:0.1.0
#
# The container does not start without a tokens file at /etc/accelsel/tokens (one "TOKEN ROLE NODE_ID" per line,
# readable by uid 10001, writable by its owner only) unless ACCELSEL_INSECURE=1 is set: deploy/docker/entrypoint.sh.
# Extra server flags go after the image name (they are appended to the ENTRYPOINT's).

# Runtime libraries of accelsel-server and accelsel (Debian 12 package names). The builder stage checks with ldd
# that this list covers every library the binaries load, so a missing one fails the build, not the container.
ARG RUNTIME_PACKAGES="libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 librocksdb7.8 \
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1 libxgboost0 libdmlc0 libgomp1 \
  libc-ares2 libre2-9 libssl3 libgflags2.2 libsnappy1v5 liblz4-1 libzstd1 libbz2-1.0 zlib1g \
  libspdlog1.10 libfmt9 libnats3.4 libprotobuf-c1 libstdc++6 libgcc-s1 libc6"

FROM debian:bookworm AS builder
ARG RUNTIME_PACKAGES
# The commit shown by --version and accelsel_build_info (.git is not in the build context).
ARG REVISION=unknown
# The -dev packages of BUILD.md without the test and benchmark ones (tests and benchmarks are not built here), and
# ccache, whose cache mount makes a rebuild after a small change take seconds.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ccache \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev \
      librocksdb-dev prometheus-cpp-dev libxgboost-dev xgboost nlohmann-json3-dev libspdlog-dev libnats-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
      -DACCELSEL_BUILD_TESTS=OFF -DACCELSEL_BUILD_BENCH=OFF "-DACCELSEL_REVISION=${REVISION}" \
 && cmake --build build --target accelsel-server accelsel_cli \
 && strip --strip-unneeded build/bin/accelsel-server build/bin/accelsel \
 && ./deploy/docker/runtime-deps.sh --require "${RUNTIME_PACKAGES}" build/bin/accelsel-server build/bin/accelsel

FROM debian:bookworm-slim AS runtime
ARG RUNTIME_PACKAGES
ARG REVISION=unknown
ARG VERSION=0.1.0
# The point release of the base (/etc/debian_version of the base image); `make image` passes it.
ARG DEBIAN_VERSION=12
LABEL org.opencontainers.image.title="accelsel" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      io.accelsel.base.debian-version="${DEBIAN_VERSION}"
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it (deploy/kubernetes/statefulset.yaml uses 10001).
RUN groupadd --gid 10001 accelsel \
 && useradd --uid 10001 --gid accelsel --home-dir /var/lib/accelsel --no-create-home \
      --shell /usr/sbin/nologin accelsel \
 && mkdir -p /var/lib/accelsel \
 && chown accelsel:accelsel /var/lib/accelsel \
 && chmod 0750 /var/lib/accelsel

COPY --from=builder /src/build/bin/accelsel-server /src/build/bin/accelsel /usr/local/bin/
COPY deploy/docker/entrypoint.sh /usr/local/bin/accelsel-entrypoint
# Descriptor tables, examples and the LLM-Inference-Bench table (with its licence) imported into an empty store.
COPY data /opt/accelsel/data

USER 10001:10001
WORKDIR /var/lib/accelsel
VOLUME ["/var/lib/accelsel"]
EXPOSE 50051 9464

# The gRPC health service (grpc.health.v1, which needs no token) answers SERVING once the store is open and the seed import is done;
# the first start imports the bundled table, hence the start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/accelsel", "health", "--server", "127.0.0.1:50051"]

# The entrypoint script adds --auth_tokens=/etc/accelsel/tokens, or refuses to start when that file is missing
# (exit 78, one line naming the path), because the image listens on 0.0.0.0 and a server there without tokens lets
# any client claim any node id. ACCELSEL_INSECURE=1 starts it with --allow_insecure instead (local trials only).
# Add --tls_cert/--tls_key for TLS (docs/OPERATIONS.md, "Deploying securely"). Arguments after the image name are
# appended to these. The script execs the server, so SIGTERM (docker stop) reaches it: the server stops accepting,
# drains in-flight calls, flushes and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/accelsel-entrypoint", \
  "/usr/local/bin/accelsel-server", \
  "--listen=0.0.0.0:50051", \
  "--metrics_listen=0.0.0.0:9464", \
  "--data_dir=/var/lib/accelsel", \
  "--seed_csv=/opt/accelsel/data/llm-inference-bench/throughput_all_results.csv", \
  "--descriptors_dir=/opt/accelsel/data/descriptors"]
CMD []
