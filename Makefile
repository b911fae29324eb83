# accelsel — the two quick-start commands (`./make run`, `./make test`: ./make installs GNU make if missing) and the rest.
# Each target installs any missing Debian 12 package first (apt-get, as root or through sudo).

BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)
DATA_DIR   ?= ./var/accelsel
LISTEN     ?= 127.0.0.1:50051
METRICS    ?= 127.0.0.1:9464
SEED_CSV   ?= data/llm-inference-bench/throughput_all_results.csv

DEB_PACKAGES := build-essential cmake ninja-build pkg-config \
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev \
  librocksdb-dev prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev \
  libxgboost-dev xgboost nlohmann-json3-dev libspdlog-dev \
  prometheus python3 python3-grpcio python3-protobuf python3-venv python3-setuptools python3-wheel \
  curl ca-certificates openssl \
  shellcheck yamllint nats-server libnats-dev

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The sanitizer and fuzz builds go through ccache when it is installed, so repeated runs reuse objects.
CCACHE_LAUNCHER := $(shell command -v ccache >/dev/null 2>&1 && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# Sanitizer builds at -O1 with line tables only: several times faster to compile than -O2 -g with UBSan, and -O1
# is what the sanitizers' own documentation suggests for readable reports.
SAN_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" $(CCACHE_LAUNCHER)

FUZZ_SECONDS ?= 600
FUZZ_TARGETS := fuzz_validate fuzz_csv fuzz_arff fuzz_llm_bench fuzz_json
# Tests whose code runs on several threads at once (RPC threads, ingest group commit, trainer, store, logger).
TSAN_TESTS ?= model_lifecycle_test server_integration_test security_test fault_test telemetry_store_test \
  client_telemetry_sender_test util_log_test decision_log_test retention_test backup_test cluster_reports_test \
  cluster_models_test cluster_settings_test cluster_decisions_test training_set_test

.PHONY: deps configure build run test cluster-test bench eval eval-smoke eval-robustness sim clean fuzz fuzz-build test-asan test-tsan mutants \
  build-clang tidy format format-check

# $(call install_missing,PACKAGES): a recipe line that installs those of PACKAGES that are not installed yet.
define install_missing
@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing missing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PACKAGES))

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./deploy/run-local.sh --bin $(BUILD)/bin --data_dir $(DATA_DIR) --listen $(LISTEN) \
	  --metrics_listen $(METRICS) --seed_csv $(SEED_CSV)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

bench: deps
	cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DACCELSEL_BUILD_TESTS=OFF -DACCELSEL_BUILD_BENCH=ON
	cmake --build build-release -j $(JOBS)
	./bench/run_all.sh build-release/bin

eval: build
	./eval/run_eval.sh $(BUILD)/bin ../shared/data

eval-smoke: build
	./eval/smoke.sh $(BUILD)/bin ../shared/data

# Generated tables of odd shapes (eval/robustness.py; its quick mode is the ctest eval_robustness_quick): exit 0,
# complete JSON, accelsel no worse than SBS beyond the seeds' noise. ROBUSTNESS_ARGS="--out DIR" keeps the tables.
ROBUSTNESS_ARGS ?=
eval-robustness: build
	/usr/bin/python3 eval/robustness.py --bin $(BUILD)/bin $(ROBUSTNESS_ARGS)

# The closed-loop network simulator's default scenario (docs/SIMULATION.md): a spawned server, cold start, 1,000
# nodes, 20,000 jobs of the bundled table. The table goes to the terminal; netsim.jsonl and the PNG plots to SIM_DIR.
SIM_DIR ?= $(BUILD)/sim
SIM_ARGS ?=
sim: configure
	@dpkg-query -W -f='$${Status}' python3-matplotlib 2>/dev/null | grep -q "ok installed" || { \
	  echo "Installing missing Debian package: python3-matplotlib"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends python3-matplotlib; }
	cmake --build $(BUILD) -j $(JOBS) --target accelsel-netsim
	$(BUILD)/bin/accelsel-netsim --llm-inference-bench $(SEED_CSV) --descriptors data/descriptors --spawn-server \
	  --plots $(SIM_DIR) $(SIM_ARGS)

# libFuzzer targets (clang): each runs FUZZ_SECONDS on its corpus in fuzz/corpus/<target>/, adding what it finds.
fuzz-build: deps
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	  -DACCELSEL_FUZZ=ON -DACCELSEL_BUILD_TESTS=OFF -DACCELSEL_BUILD_BENCH=OFF $(CCACHE_LAUNCHER)
	cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t build-fuzz/fuzz/artifacts/$$t; \
	  echo "== $$t for $(FUZZ_SECONDS) s"; \
	  build-fuzz/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/fuzz/artifacts/$$t/ fuzz/corpus/$$t || exit 1; \
	done

# The test suite under ASan + UBSan, without ASAN_EXCLUDE: deploy_static_checks (it checks the Docker runtime package
# list against the binaries, which here link the sanitizer runtimes), and the end-to-end scripts whose time goes to
# what ASan does not look at: kill -9 loops (a killed process reports nothing), a pip install into a fresh venv, the
# installed-package build (it skips itself in a sanitizer build), the node demo's script and the evaluator's
# robustness run (pure computation that the evaluator's unit tests cover under ASan). They all run in `make test`.
ASAN_EXCLUDE ?= ^(deploy_static_checks|e2e_crash_loop_test|e2e_kill9_e2e_test|e2e_python_client_test|client_install_test|node_demo_test|eval_robustness_quick)$$
test-asan: deps
	cmake -S . -B build-asan -G Ninja -DACCELSEL_SANITIZE=address -DACCELSEL_BUILD_BENCH=OFF $(SAN_FLAGS)
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  ctest --output-on-failure -j $(JOBS) --timeout 1200 -E '$(ASAN_EXCLUDE)'

# The concurrency-relevant tests under TSan. Debian's Abseil, gRPC and RocksDB are not TSan builds, so their
# locks are invisible to TSan; tests/tsan.supp silences what that causes (see fuzz/README.md).
test-tsan: deps
	cmake -S . -B build-tsan -G Ninja -DACCELSEL_SANITIZE=thread -DACCELSEL_BUILD_BENCH=OFF $(SAN_FLAGS)
	cmake --build build-tsan -j $(JOBS) --target $(TSAN_TESTS)
	@mkdir -p build-tsan/tests/tmp; for t in $(TSAN_TESTS); do echo "== $$t (TSan)"; \
	  TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
	  ACCELSEL_TEST_TMPDIR=$(CURDIR)/build-tsan/tests/tmp ACCELSEL_SOURCE_DIR=$(CURDIR) \
	  ACCELSEL_BIN_DIR=$(CURDIR)/build-tsan/bin build-tsan/tests/bin/$$t || exit 1; done

# Mutation check of the decision policies (tools/mutants/README.md): each fault of tools/mutants/mutants.txt applied
# to a private copy in MUTANTS_WORK, the affected tests rebuilt (-O1 -g0, through ccache when it installs) and run;
# fails if any fault survives. Takes tens of minutes from cold; MUTANTS="id pattern ..." runs a subset.
MUTANTS ?=
MUTANTS_WORK ?= /tmp/accelsel-mutants
mutants: deps
	@command -v ccache >/dev/null 2>&1 || { echo "Installing ccache (optional: faster rebuilds)"; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends ccache || true; }
	MUTANTS_WORK=$(MUTANTS_WORK) ./tools/mutants/run.sh --jobs $(JOBS) $(MUTANTS)

# The whole tree (tests and benchmarks too) compiled by Debian's clang with -Werror. It is the one build that checks
# the lock annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED, ...: -Wthread-safety, which GCC ignores), so
# CI runs it. A compile check, nothing is run: -O0 -g0 keeps it fast, and ccache (installed here when apt can) makes
# a rerun cheap. Its compile_commands.json is what `make tidy` reads.
CLANG_BUILD ?= build-clang
build-clang: deps
	@for p in clang ccache; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" && continue; \
	  echo "Installing missing Debian package: $$p"; \
	  { $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$p; } || \
	  [ $$p = ccache ] || exit 1; \
	done
	cmake -S . -B $(CLANG_BUILD) -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g0" -DACCELSEL_WERROR=ON -DACCELSEL_BUILD_BENCH=ON \
	  $$(command -v ccache >/dev/null 2>&1 && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
	cmake --build $(CLANG_BUILD) -j $(JOBS)

# clang-tidy with the checks in .clang-tidy over the sources that are not tests (tests/, fuzz/ and the generated
# protobuf code are left out), findings in our own headers included; any finding fails. Several minutes on two
# cores, so not a CI stage.
TIDY_SOURCES = $(shell git ls-files '*.cc' | grep -Ev '^(tests|fuzz)/')
tidy: build-clang
	@command -v run-clang-tidy >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends clang-tidy; }
	run-clang-tidy -p $(CLANG_BUILD) -j $(JOBS) -quiet \
	  -header-filter='^$(CURDIR)/(bench|client|datasets|eval|model|proto|server|sim|storage|util)/' \
	  $(addprefix ^$(CURDIR)/,$(TIDY_SOURCES:=$$))

# clang-format (.clang-format: Google style at 120 columns) over every C++ file git knows: `format` rewrites them,
# `format-check` names each line it would change and fails if there is one.
FORMAT_SOURCES = $(shell git ls-files '*.cc' '*.h')
format format-check:
	@command -v clang-format >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends clang-format; }
	clang-format $(if $(filter format,$@),-i,--dry-run -Werror) $(FORMAT_SOURCES)

clean:
	rm -rf $(BUILD) build-release build-fuzz build-asan build-tsan $(CLANG_BUILD)

# The llama.cpp engine and test models of the node (issue 17; node/README.md). Not part of `build` or `test`.
# node-engine: `npm pack node-llama-cpp@3.21.1`, refused unless its sha512 is the one pinned in
# node/build_engine.sh, then llama.cpp from the package's git bundle, built (CPU, Release, static, niced, -j2 under
# /tmp/accelsel-build.lock) into NODE_ENGINE_DIR/build: 8 CPU-minutes here once, nothing on a rerun.
# node-models: seeded random-weight llama GGUF models (F16, Q8_0, Q4_0, Q4_K_M) into NODE_ENGINE_DIR/models, by
# node/make_models.py with Debian's /usr/bin/python3 (NODE_MODELS_ARGS="--models llama-30m" makes one).
NODE_ENGINE_DIR ?= $(BUILD)/node-engine
NODE_MODELS_ARGS ?=
.PHONY: node-engine node-models node node-test node-demo
node-engine:
	./node/build_engine.sh $(NODE_ENGINE_DIR)

node-models: node-engine
	@for p in python3 python3-numpy python3-yaml; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" && continue; \
	  echo "Installing missing Debian package: $$p"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$p || exit 1; \
	done
	/usr/bin/python3 node/make_models.py --engine-dir $(NODE_ENGINE_DIR) $(NODE_MODELS_ARGS)

# node: the agent binary build/bin/accelsel-node, linked with the static engine above. Configures BUILD with
# ACCELSEL_NODE_ENGINE_DIR (kept in its cache: later builds of BUILD include accelsel-node) and builds that one target.
node: node-engine configure
	cmake -S . -B $(BUILD) -DACCELSEL_NODE_ENGINE_DIR=$(abspath $(NODE_ENGINE_DIR))
	cmake --build $(BUILD) -j $(JOBS) --target accelsel-node

# node-test: the real-engine test (tests/node/engine_test.sh): llama-30m only, a spawned server with tokens, a few
# jobs through `accelsel-node run`. A few minutes from a built engine; .ci/run calls it after `test`.
# cluster-test (docs/SCALE.md): three NATS servers clustered and three replicas as processes on 127.0.0.1, load
# through the balancing client while one NATS server, one replica and the trainer are killed with SIGKILL; about a
# minute. Needs nats-server (installed by deps).
cluster-test: build
	cmake --build $(BUILD) -j $(JOBS) --target cluster_faults_test accelsel-server
	ACCELSEL_TEST_TMPDIR=$(CURDIR)/$(BUILD)/tests/tmp $(BUILD)/tests/bin/cluster_faults_test

node-test: node
	$(MAKE) node-models NODE_MODELS_ARGS="--models llama-30m"
	cmake --build $(BUILD) -j $(JOBS) --target accelsel-server accelsel_cli
	./tests/node/engine_test.sh $(BUILD)/bin $(NODE_ENGINE_DIR)/models

# node-demo: node/demo.py (docs/NODE.md): a server seeded with the sweep rows of some jobs, then NODE_DEMO_JOBS runs
# of the other sweep jobs through `accelsel-node run`, once seeded and once from an empty store; regret against the
# sweep's best, llama.cpp's default and the single best strategy into NODE_DEMO_DIR. Needs all five models and the
# sweep table; it holds the build lock (a measurement: no nice) while it runs, tens of minutes on 2 cores.
NODE_DEMO_SWEEP ?= data/llama-cpp/sweep.csv
NODE_DEMO_DIR ?= $(BUILD)/node-demo
NODE_DEMO_JOBS ?= 240
NODE_DEMO_ARGS ?=
node-demo: node
	$(MAKE) node-models
	cmake --build $(BUILD) -j $(JOBS) --target accelsel-server accelsel_cli
	flock /tmp/accelsel-build.lock /usr/bin/python3 node/demo.py --sweep $(NODE_DEMO_SWEEP) \
	  --bin $(BUILD)/bin --models $(NODE_ENGINE_DIR)/models --out $(NODE_DEMO_DIR) --jobs $(NODE_DEMO_JOBS) \
	  $(NODE_DEMO_ARGS)

# image: the Dockerfile built with Debian's podman (runc, cgroupfs: see deploy/docker/podman.sh), in Docker's image format
# (the OCI format has no HEALTHCHECK). Base images missing
# from podman's store are made from Debian's archive (deploy/docker/bases.sh). Tagged accelsel:VERSION; prints the
# base's Debian version and the image size. image-test runs it (deploy/docker/smoke-test.sh).
IMAGE_PACKAGES := podman runc mmdebstrap uidmap
VERSION := $(shell awk '/^project.accelsel VERSION/ {print $$3}' CMakeLists.txt)
IMAGE ?= localhost/accelsel:$(VERSION)
.PHONY: image image-test
image:
	$(call install_missing,$(IMAGE_PACKAGES))
	$(SUDO) ./deploy/docker/bases.sh
	$(SUDO) ./deploy/docker/podman.sh build --layers --format docker -t $(IMAGE) \
	  --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
	  --build-arg DEBIAN_VERSION=$$($(SUDO) ./deploy/docker/podman.sh run --rm docker.io/library/debian:bookworm-slim \
	    cat /etc/debian_version) .
	@$(SUDO) ./deploy/docker/podman.sh image inspect -f \
	  '{{.RepoTags}}: {{index .Labels "org.opencontainers.image.revision"}}, base Debian {{index .Labels "io.accelsel.base.debian-version"}}, {{.Size}} bytes' \
	  $(IMAGE)

image-test:
	$(SUDO) ./deploy/docker/smoke-test.sh $(IMAGE)
