#!/usr/bin/env bash
# podman with the options this project's container scripts need, so `make image`, `make image-test` and CI's
# minimal-machine stage run the same way. Defaults suit a root shell on a Debian 12 host or VM where crun and the
# systemd cgroup manager are refused (runc, cgroupfs); ACCELSEL_PODMAN_GLOBAL replaces them where the defaults work.
#
# Usage: deploy/docker/podman.sh run|build|... ARGS   (for `run`, host networking and ulimits within the host's are
#        added: a container may not raise a limit above its host's)
set -euo pipefail
global=${ACCELSEL_PODMAN_GLOBAL-"--runtime runc --cgroup-manager=cgroupfs"}
if [ "${1:-}" = run ]; then
  shift
  nofile=$(ulimit -Hn)
  [ "${nofile}" = unlimited ] && nofile=1048576
  nproc=$(ulimit -Hu)
  # Some hosts refuse even the host's own process limit inside the container; 32768 is ample for the server and
  # the test suite and has been accepted wherever the host's limit is higher.
  if [[ "${nproc}" == unlimited || "${nproc}" -gt 32768 ]]; then nproc=32768; fi
  # shellcheck disable=SC2086 # $global is a list of options
  exec podman ${global} run --network host --ulimit "nofile=${nofile}:${nofile}" --ulimit "nproc=${nproc}:${nproc}" "$@"
fi
# shellcheck disable=SC2086
exec podman ${global} "$@"
