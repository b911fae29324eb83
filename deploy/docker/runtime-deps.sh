#!/usr/bin/env bash
# Lists the Debian packages that own the shared libraries the given binaries load (ldd, transitively), and with
# --require checks that a declared package list covers them. The Dockerfile's builder stage runs it so the runtime
# image cannot silently miss a library; tests/deploy_check.sh runs it on locally built binaries.
#
# Usage: runtime-deps.sh BINARY...                         print the packages, one per line
#        runtime-deps.sh --require "pkg1 pkg2 ..." BINARY...  exit 1 naming any needed package not in the list
set -euo pipefail

declared=""
if [[ "${1:-}" == "--require" ]]; then
  [[ $# -ge 3 ]] || { echo "usage: $0 --require 'PACKAGES' BINARY..." >&2; exit 2; }
  declared="$2"
  shift 2
fi
[[ $# -ge 1 ]] || { echo "usage: $0 [--require 'PACKAGES'] BINARY..." >&2; exit 2; }

# dpkg records a library under the path its package shipped it at; on merged-/usr systems ldd may report the
# other spelling (/lib vs /usr/lib), so both are tried.
owner_of() {
  local path="$1" candidate owner
  for candidate in "${path}" "/usr${path}" "${path#/usr}" "$(readlink -f "${path}")"; do
    if owner="$(dpkg-query -S "${candidate}" 2>/dev/null)"; then
      # "libfoo1:amd64: /usr/lib/..." -> libfoo1 (diversions are reported as "diversion by ...": skipped)
      owner="$(grep -v '^diversion' <<<"${owner}" | head -n1 | cut -d: -f1)"
      if [[ -n "${owner}" ]]; then
        echo "${owner}"
        return 0
      fi
    fi
  done
  echo "runtime-deps.sh: no Debian package owns ${path}" >&2
  return 1
}

libs=()
for binary in "$@"; do
  [[ -f "${binary}" ]] || { echo "runtime-deps.sh: ${binary} not found" >&2; exit 2; }
  ldd_out="$(ldd "${binary}")"
  if grep -q 'not found' <<<"${ldd_out}"; then
    echo "runtime-deps.sh: ${binary} has unresolved libraries:" >&2
    grep 'not found' <<<"${ldd_out}" >&2
    exit 1
  fi
  while read -r lib; do
    libs+=("${lib}")
  done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"${ldd_out}")
done

needed="$(for lib in "${libs[@]}"; do owner_of "${lib}"; done | sort -u)"

if [[ -z "${declared}" ]]; then
  echo "${needed}"
  exit 0
fi

missing=()
for pkg in ${needed}; do
  if ! grep -qxF "${pkg}" < <(tr -s '[:space:]' '\n' <<<"${declared}"); then
    missing+=("${pkg}")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "runtime-deps.sh: the runtime package list lacks: ${missing[*]}" >&2
  exit 1
fi
echo "runtime-deps.sh: all $(wc -w <<<"${needed}") packages the binaries need are in the runtime list"
