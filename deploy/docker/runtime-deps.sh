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
mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)

# dpkg records a library under the path its package shipped it at; on merged-/usr systems ldd may report the
# other spelling (/lib vs /usr/lib), or a symlink. All spellings go to one dpkg-query call (one per library would
# take a minute: each call reads every package's file list).
declare -A spellings_of=()
all_spellings=()
for lib in "${libs[@]}"; do
  s=("${lib}" "/usr${lib}" "${lib#/usr}" "$(readlink -f "${lib}")")
  spellings_of["${lib}"]="${s[*]}"
  all_spellings+=("${s[@]}")
done
declare -A owner_of=()
while IFS= read -r line; do
  # "libfoo1:amd64: /usr/lib/x86_64-linux-gnu/libfoo.so.1" ("diversion by ..." lines are skipped)
  [[ "${line}" == diversion* ]] && continue
  owner_of["${line##*: }"]="${line%%:*}"
done < <(dpkg-query -S "${all_spellings[@]}" 2>/dev/null || true)

needed_list=()
for lib in "${libs[@]}"; do
  owner=""
  for spelling in ${spellings_of["${lib}"]}; do
    if [[ -n "${owner_of["${spelling}"]:-}" ]]; then
      owner="${owner_of["${spelling}"]}"
      break
    fi
  done
  if [[ -z "${owner}" ]]; then
    echo "runtime-deps.sh: no Debian package owns ${lib}" >&2
    exit 1
  fi
  needed_list+=("${owner}")
done
needed="$(printf '%s\n' "${needed_list[@]}" | sort -u)"

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
