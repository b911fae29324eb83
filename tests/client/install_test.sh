#!/usr/bin/env bash
# The installed client package (client/README.md, "Using the library from your CMake project"): installs the
# `client` component of BUILD_DIR into a fresh prefix, configures and builds tests/client/consumer/ against that
# prefix alone with Ninja (extra arguments go to that cmake configure: compiler, launcher), checks that none of its
# include paths and libraries come from the source or build tree, and runs it. Exits 77 (skipped) when
# ACCELSEL_INSTALL_TEST_SKIP gives a reason (sanitizer builds: see tests/client/CMakeLists.txt).
# Usage: tests/client/install_test.sh BUILD_DIR [CMAKE_ARG...]
set -euo pipefail
BUILD="$(cd "${1:?usage: install_test.sh BUILD_DIR [CMAKE_ARG...]}" && pwd)"
shift
if [ -n "${ACCELSEL_INSTALL_TEST_SKIP:-}" ]; then
  echo "SKIP: ${ACCELSEL_INSTALL_TEST_SKIP}"
  exit 77
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
CONSUMER="$HERE/consumer"
mkdir -p "$BUILD/tests/tmp"
WORK="$(mktemp -d "$BUILD/tests/tmp/client_install_test.XXXXXX")"
PREFIX="$WORK/prefix"
# Kept after a failure, for its logs.
cleanup() {
  if [ "$1" -eq 0 ]; then rm -rf "$WORK"; else echo "logs kept in $WORK" >&2; fi
}
trap 'cleanup $?' EXIT

# step NAME COMMAND...: runs COMMAND with its output in WORK/NAME.log, shown only when it fails.
step() {
  local name=$1
  shift
  if ! "$@" >"$WORK/$name.log" 2>&1; then
    echo "FAIL: $name: $*" >&2
    tail -n 60 "$WORK/$name.log" >&2
    exit 1
  fi
}

# Paths in the FILEs inside the source or build tree, other than the consumer's own sources and WORK.
tree_paths() {
  grep -ohE '[^ "]+' "$@" | sed -E 's/^-(I|L|isystem)//' | while IFS= read -r token; do
    case "$token" in
      "$WORK" | "$WORK"/* | "$CONSUMER" | "$CONSUMER"/*) ;;
      "$SRC" | "$SRC"/* | "$BUILD" | "$BUILD"/*) echo "$token" ;;
    esac
  done | sort -u
}

step install cmake --install "$BUILD" --prefix "$PREFIX" --component client
for header in client/client.h client/telemetry_sender.h accelsel/v1/accelsel.grpc.pb.h \
  grpc/health/v1/health.grpc.pb.h google/rpc/error_details.pb.h; do
  [ -f "$PREFIX/include/accelsel/$header" ] || { echo "FAIL: include/accelsel/$header not installed" >&2; exit 1; }
done
[ ! -e "$PREFIX/bin" ] || { echo "FAIL: the client component installed bin/: $(ls "$PREFIX/bin")" >&2; exit 1; }

# The prefix differs per run: with it as ccache's base_dir a rerun reuses the consumer's object.
export CCACHE_BASEDIR="$WORK"
step configure cmake -S "$CONSUMER" -B "$WORK/build" -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@"
grep -q "accelsel .* from $PREFIX/" "$WORK/configure.log" ||
  { echo "FAIL: accelsel was not found in $PREFIX:" >&2; grep accelsel "$WORK/configure.log" >&2; exit 1; }
leaks="$(tree_paths "$WORK/build/compile_commands.json" "$WORK/build/build.ninja")"
[ -z "$leaks" ] || { echo "FAIL: the consumer uses the source or build tree:" >&2; echo "$leaks" >&2; exit 1; }
step build cmake --build "$WORK/build"

out="$("$WORK/build/consumer")" || { echo "FAIL: consumer exited $?: $out" >&2; exit 1; }
echo "$out"
[[ "$out" == "accelsel consumer ok: "* ]] || { echo "FAIL: unexpected output" >&2; exit 1; }
