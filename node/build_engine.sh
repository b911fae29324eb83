#!/usr/bin/env bash
# Builds the llama.cpp engine of the node (issue 17) from the npm package node-llama-cpp, the only registry that
# ships llama.cpp's source here: `npm pack` the pinned version, refuse it unless its sha512 is the pinned one, clone
# the llama.cpp git bundle it carries, and build the CPU backend (static libllama, llama-quantize, llama-bench).
# Cached: a rerun whose stamp, tarball hash and outputs all check out does nothing. `make node-engine` calls it.
#
# Usage: node/build_engine.sh [ENGINE_DIR]      (default build/node-engine, or $NODE_ENGINE_DIR)
# Environment:
#   NODE_ENGINE_JOBS   parallel compile jobs (default 2: the 2-vCPU machine is shared)
#   NODE_ENGINE_LOCK   flock file held around configure + build (default /tmp/accelsel-build.lock, which the
#                      project's other builds and benchmarks take too; empty for none)
set -euo pipefail

# The pinned package. PKG_SRI is what `npm view node-llama-cpp@3.21.1 dist.integrity` prints; PKG_SHA512_HEX is the
# same digest in hex, what sha512sum prints. LLAMA_COMMIT is the one commit of the bundle (`git bundle list-heads`).
readonly PKG_NAME=node-llama-cpp
readonly PKG_VERSION=3.21.1
readonly PKG_SRI='sha512-E3N0Ev2Va0wzydvXYFwM9Hvyo07PoWjt8T/9GMc43Cvt8YkV/NU/tYUgEMC1grTPv2o9PRjQi0G3Wb5P/awiMg=='
readonly PKG_SHA512_HEX=13737412fd956b4c33c9dbd7605c0cf47bf2a34ecfa168edf13ffd18c738dc2bedf18915fcd53fb5852010c0b582b4cfbf6a3d3d18d08b41b759be4ffdac2232
readonly LLAMA_COMMIT=80fb11ac73e66d89eae2c6a91d8a77428fa733ed

# CPU backend only, Release. Static libraries: the future accelsel-node binary then carries the engine itself (no
# rpath or LD_LIBRARY_PATH, and no build-local .so in the shared-library lists that deploy checks compare).
# GGML_NATIVE (the default) compiles for this host's CPU: the engine is built on the machine that runs it.
# No tests, examples, server, app, OpenSSL/HTTP download support or subprocess helpers; only the three targets
# below are compiled.
readonly CMAKE_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF
  -DGGML_NATIVE=ON
  -DLLAMA_BUILD_COMMON=ON
  -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_SERVER=OFF
  -DLLAMA_BUILD_APP=OFF
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_SUBPROCESS=OFF
)
readonly BUILD_TARGETS=(llama llama-quantize llama-bench)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
engine_dir="${1:-${NODE_ENGINE_DIR:-${repo_root}/build/node-engine}}"
jobs="${NODE_ENGINE_JOBS:-2}"
lock="${NODE_ENGINE_LOCK-/tmp/accelsel-build.lock}"

tarball="${engine_dir}/npm/${PKG_NAME}-${PKG_VERSION}.tgz"
src_dir="${engine_dir}/llama.cpp"
cmake_dir="${engine_dir}/build"
stamp="${engine_dir}/engine.stamp"
outputs=("${cmake_dir}/bin/llama-quantize" "${cmake_dir}/bin/llama-bench" "${cmake_dir}/src/libllama.a")

log() { echo "node-engine: $*"; }
die() {
  echo "node-engine: error: $*" >&2
  exit 1
}

sudo_cmd=()
[[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)

# install_debs PKG... : installs the Debian packages that are missing (as apt does in the Makefile's deps target).
install_debs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q "ok installed" || missing+=("${p}")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing missing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# sri_of FILE : the file's sha512 in npm's integrity form (sha512-<base64>), from coreutils alone.
sri_of() {
  local hex escaped="" i
  hex="$(sha512sum "$1" | cut -d' ' -f1)"
  for ((i = 0; i < ${#hex}; i += 2)); do escaped+="\\x${hex:i:2}"; done
  printf 'sha512-%s' "$(printf '%b' "${escaped}" | base64 -w0)"
}

# verify_tarball : 0 when the cached tarball's sha512 is the pinned one.
verify_tarball() {
  [[ -f "${tarball}" ]] || return 1
  local hex
  hex="$(sha512sum "${tarball}" | cut -d' ' -f1)"
  [[ "${hex}" == "${PKG_SHA512_HEX}" && "$(sri_of "${tarball}")" == "${PKG_SRI}" ]]
}

expected_stamp() {
  printf '%s@%s %s llama.cpp %s\n' "${PKG_NAME}" "${PKG_VERSION}" "${PKG_SRI}" "${LLAMA_COMMIT}"
  printf 'cmake %s\n' "${CMAKE_FLAGS[*]}"
  printf 'targets %s\n' "${BUILD_TARGETS[*]}"
}

up_to_date() {
  local f
  [[ -f "${stamp}" && "$(cat "${stamp}")" == "$(expected_stamp)" ]] || return 1
  verify_tarball || return 1
  for f in "${outputs[@]}"; do [[ -f "${f}" ]] || return 1; done
}

if up_to_date; then
  log "up to date (${PKG_NAME}@${PKG_VERSION}, llama.cpp ${LLAMA_COMMIT:0:12}) in ${engine_dir}"
  exit 0
fi
rm -f "${stamp}"

# --- tools ------------------------------------------------------------------------------------------------------
install_debs git cmake ninja-build build-essential ca-certificates
if ! command -v npm >/dev/null 2>&1; then
  install_debs npm # Debian's npm (with its nodejs) when the machine has no Node.js of its own
fi

# --- the package, verified --------------------------------------------------------------------------------------
mkdir -p "${engine_dir}/npm"
if [[ -f "${tarball}" ]] && ! verify_tarball; then
  die "cached ${tarball} does not have the pinned sha512 (${PKG_SRI}); refusing it. Delete it to fetch again."
fi
if [[ ! -f "${tarball}" ]]; then
  log "npm pack ${PKG_NAME}@${PKG_VERSION}"
  (cd "${engine_dir}/npm" && npm pack --silent "${PKG_NAME}@${PKG_VERSION}" >/dev/null)
  [[ -f "${tarball}" ]] || die "npm pack did not produce ${tarball}"
  if ! verify_tarball; then
    got="$(sri_of "${tarball}")"
    rm -f "${tarball}"
    die "${PKG_NAME}@${PKG_VERSION} from the registry has integrity ${got}, pinned ${PKG_SRI}; refused and removed"
  fi
fi
log "verified ${tarball##*/}: ${PKG_SRI}"

# --- the llama.cpp source, from the package's git bundle ---------------------------------------------------------
bundle="${engine_dir}/package/llama/gitRelease.bundle"
if [[ ! -f "${bundle}" ]]; then
  tar -xzf "${tarball}" -C "${engine_dir}" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
fi
if [[ -d "${src_dir}/.git" ]] && [[ "$(git -C "${src_dir}" rev-parse HEAD 2>/dev/null)" != "${LLAMA_COMMIT}" ]]; then
  log "${src_dir} is not at ${LLAMA_COMMIT}; cloning it again"
  rm -rf "${src_dir}" "${cmake_dir}"
fi
if [[ ! -d "${src_dir}/.git" ]]; then
  rm -rf "${src_dir}"
  git -c advice.detachedHead=false clone -q "${bundle}" "${src_dir}"
fi
[[ "$(git -C "${src_dir}" rev-parse HEAD)" == "${LLAMA_COMMIT}" ]] || die "bundle HEAD is not ${LLAMA_COMMIT}"

# --- the build, niced and under the shared build lock ------------------------------------------------------------
build() {
  local generator=()
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  nice -n 19 cmake -S "${src_dir}" -B "${cmake_dir}" "${generator[@]}" "${CMAKE_FLAGS[@]}" >"${engine_dir}/cmake-configure.log"
  nice -n 19 cmake --build "${cmake_dir}" -j "${jobs}" --target "${BUILD_TARGETS[@]}"
}

start_s=${SECONDS}
if [[ -n "${lock}" ]]; then
  exec 9>"${lock}"
  if ! flock -n 9; then
    log "waiting for ${lock} (another build or benchmark holds it)"
    flock 9
  fi
  log "lock taken after $((SECONDS - start_s)) s"
fi
build_start_s=${SECONDS}
build
build_s=$((SECONDS - build_start_s))
if [[ -n "${lock}" ]]; then flock -u 9; fi

for f in "${outputs[@]}"; do [[ -f "${f}" ]] || die "build finished without ${f}"; done
expected_stamp >"${stamp}"
log "built ${BUILD_TARGETS[*]} in ${build_s} s (-j ${jobs}) under ${cmake_dir}"
