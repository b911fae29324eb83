#!/usr/bin/env bash
# Each named binary answers --version with exactly one line on stdout, "NAME VERSION (git REVISION)", where
# REVISION is a short commit or "unknown", and exits 0. Empty names are skipped (binaries not built in this tree).
# Usage: tests/util/version_test.sh BIN_DIR VERSION NAME...
set -euo pipefail
BIN="${1:?usage: version_test.sh BIN_DIR VERSION NAME...}"
VERSION="${2:?usage: version_test.sh BIN_DIR VERSION NAME...}"
shift 2
checked=0
failed=0
for name in "$@"; do
  [ -n "$name" ] || continue
  rc=0
  out="$("$BIN/$name" --version)" || rc=$?
  pattern="^${name} ${VERSION//./\\.} \(git ([0-9a-f]{4,40}|unknown)\)\$"
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: $name --version exited $rc" >&2
    failed=1
  elif ! [[ "$out" =~ $pattern ]]; then
    echo "FAIL: $name --version printed '$out', not one line matching $pattern" >&2
    failed=1
  else
    echo "ok: $out"
  fi
  checked=$((checked + 1))
done
[ "$checked" -gt 0 ] || { echo "FAIL: no binaries named" >&2; exit 1; }
exit "$failed"
