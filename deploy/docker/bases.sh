#!/usr/bin/env bash
# Makes sure podman has the Dockerfile's base images, debian:bookworm and debian:bookworm-slim. Where they are
# already there (pulled from a registry, or made by an earlier run) nothing is done. Otherwise both are made from
# Debian's own archive with `mmdebstrap --variant=minbase bookworm` (what the official bookworm-slim is built from,
# and a machine that reaches only Debian's archive can make it) and tagged as both names, so the Dockerfile builds
# unchanged. Prints the Debian version of the base.
#
# Usage: deploy/docker/bases.sh            (root; installs mmdebstrap when it is missing)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
podman=("${here}/podman.sh")
mirror="${ACCELSEL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
bases=(docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim)

missing=()
for b in "${bases[@]}"; do
  "${podman[@]}" image exists "${b}" || missing+=("${b}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  command -v mmdebstrap >/dev/null 2>&1 || {
    echo "bases.sh: installing mmdebstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap
  }
  tar="$(mktemp /tmp/accelsel-bookworm-minbase.XXXXXX.tar)"
  trap 'rm -f "${tar}"' EXIT
  echo "bases.sh: mmdebstrap --variant=minbase bookworm (${mirror}) for ${missing[*]}"
  # The security and updates suites too, as the official images carry them.
  mmdebstrap --quiet --variant=minbase \
    bookworm "${tar}" \
    "deb ${mirror} bookworm main" "deb ${mirror} bookworm-updates main" \
    "deb ${mirror%/debian}/debian-security bookworm-security main"
  id="$("${podman[@]}" import --quiet "${tar}")"
  for b in "${missing[@]}"; do
    "${podman[@]}" tag "${id}" "${b}"
  done
fi
echo "bases.sh: debian:bookworm is Debian $("${podman[@]}" run --rm docker.io/library/debian:bookworm cat /etc/debian_version)"
