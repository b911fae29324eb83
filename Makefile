# accelsel — the two quick-start commands (`make run`, `make test`) and the rest.
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
  libxgboost-dev xgboost nlohmann-json3-dev \
  prometheus python3 python3-grpcio python3-protobuf curl ca-certificates \
  shellcheck yamllint

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps configure build run test bench eval clean

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing missing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

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
	cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DACCELSEL_BUILD_TESTS=OFF
	cmake --build build-release -j $(JOBS)
	./bench/run_all.sh build-release/bin

eval: build
	./model/eval/run_eval.sh $(BUILD)/bin ../shared/data

clean:
	rm -rf $(BUILD) build-release
