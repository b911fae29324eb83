#!/bin/sh
# The README's quick start on any Debian 12 machine, a minimal one without GNU make included: installs make when it
# is missing (as root, or through sudo), then hands every argument over to it, so `./make run` is `make run` and
# `./make test` is `make test`. Everything else the targets need is installed by the Makefile itself.
set -eu
cd "$(dirname "$0")"
if ! command -v make >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1; then
    sudo=sudo
  else
    echo "./make: GNU make is not installed, and installing it needs root or sudo (apt-get install make)" >&2
    exit 1
  fi
  echo "./make: installing GNU make (Debian package make)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends make
fi
exec make "$@"
