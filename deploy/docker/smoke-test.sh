#!/usr/bin/env bash
# Smoke test of the built container image, run as an operator would run it (tokens file mounted, a named data
# volume): the health check reports SERVING once the bundled table is seeded, a select is answered, a report is
# stored, SIGTERM stops the server cleanly (exit 0), and a second container on the same volume finds every run
# again without seeding anew. Host networking on free loopback ports; everything it creates is removed on exit.
#
# Usage: deploy/docker/smoke-test.sh [IMAGE]     (root; default image accelsel:VERSION as `make image` tags it)
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
podman=("${src}/deploy/docker/podman.sh")
version="$(sed -n 's/^project(accelsel VERSION \([0-9.]*\).*/\1/p' "${src}/CMakeLists.txt")"
image="${1:-localhost/accelsel:${version}}"
tag="smoke-$$"
work="$(mktemp -d /tmp/accelsel-smoke.XXXXXX)"
ctr=""
cleanup() {
  [[ -n "${ctr}" ]] && "${podman[@]}" rm -f -t 0 "${ctr}" >/dev/null 2>&1
  "${podman[@]}" volume rm -f "accelsel-${tag}" >/dev/null 2>&1
  rm -rf "${work}"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  [[ -n "${ctr}" ]] && { echo "--- container log"; "${podman[@]}" logs "${ctr}" 2>&1 | tail -n 40; }
  exit 1
}

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc_port="$(free_port)"
metrics_port="$(free_port)"
server="127.0.0.1:${grpc_port}"

# The tokens file as docs/OPERATIONS.md tells operators to mount it: owned by the image's user, mode 0600.
op_token="smoke-operator-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
node_token="smoke-node-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077 && printf '%s operator smoke-op\n%s node smoke-node\n' "${op_token}" "${node_token}" >"${work}/tokens")
chown 10001:10001 "${work}/tokens"
# One run of the bundled examples, reported as this test's node.
head -n 1 "${src}/data/examples/reports.jsonl" |
  sed 's/"runId":"[^"]*"/"runId":"smoke-run-1"/; s/"nodeId":"[^"]*"/"nodeId":"smoke-node"/' >"${work}/report.jsonl"
chmod 0644 "${work}/report.jsonl"
"${podman[@]}" volume create "accelsel-${tag}" >/dev/null
# The Dockerfile's HEALTHCHECK survives only in Docker's image format (make image builds with --format docker).
healthcheck="$("${podman[@]}" image inspect -f '{{json .HealthCheck}}' "${image}")"
[[ "${healthcheck}" == *'"health"'* ]] || fail "the image has no HEALTHCHECK (built in the OCI format?): ${healthcheck}"

start() {
  ctr="accelsel-${tag}-$1"
  "${podman[@]}" run -d --name "${ctr}" -v "accelsel-${tag}:/var/lib/accelsel" \
    -v "${work}/tokens:/etc/accelsel/tokens:ro" -v "${work}/report.jsonl:/tmp/report.jsonl:ro" \
    "${image}" "--listen=${server}" "--metrics_listen=127.0.0.1:${metrics_port}" >/dev/null
  local t0
  t0=$(date +%s)
  # The Dockerfile's HEALTHCHECK command, inside the container, polled with a bound (seeding takes ~30 s on 2 cores).
  until "${podman[@]}" exec "${ctr}" /usr/local/bin/accelsel health --server "${server}" >/dev/null 2>&1; do
    [[ "$("${podman[@]}" inspect -f '{{.State.Running}}' "${ctr}")" == true ]] || fail "container $1 exited before SERVING"
    (($(date +%s) - t0 < 300)) || fail "container $1 not SERVING after 300 s"
    sleep 1
  done
  echo "PASS: container $1 SERVING after $(($(date +%s) - t0)) s"
}
cli() { "${podman[@]}" exec "${ctr}" /usr/local/bin/accelsel "$@" --server "${server}"; }
runs_stored() {
  cli model info --json --token "${op_token}" | /usr/bin/python3 -c 'import json, sys; print(int(json.load(sys.stdin).get("runs_stored", 0)))'
}

start 1
seeded="$(runs_stored)"
((seeded > 1000)) || fail "the first start seeded ${seeded} runs, expected the bundled table"
echo "PASS: seeded ${seeded} runs"
cli select --context /opt/accelsel/data/examples/llama3-8b_h100x1_io512_b16.json --token "${node_token}" \
  >"${work}/select.txt" || fail "select failed"
grep -Eq '^1 +[a-z]' "${work}/select.txt" || fail "select answered no ranked strategy: $(cat "${work}/select.txt")"
echo "PASS: select answered: $(grep -E "^1 " "${work}/select.txt")"
cli report --jsonl /tmp/report.jsonl --json --token "${node_token}" >"${work}/report.json" || fail "report failed"
grep -q '"stored": *1' "${work}/report.json" || fail "the report was not stored: $(cat "${work}/report.json")"
after="$(runs_stored)"
((after == seeded + 1)) || fail "runs stored ${after} after one report, expected $((seeded + 1))"
echo "PASS: one report stored (${after} runs)"
# Into files first, then grep: with pipefail, `curl | grep -q` fails whenever grep exits before curl has written all.
curl -sf "127.0.0.1:${metrics_port}/metrics" >"${work}/metrics.txt" || fail "GET /metrics failed"
grep -q '^accelsel_build_info' "${work}/metrics.txt" || fail "no accelsel_build_info on /metrics"
echo "PASS: metrics scraped"

# SIGTERM as `podman stop` sends it (the Dockerfile's STOPSIGNAL); the server must drain and exit 0 well within
# the stop timeout, not be killed.
"${podman[@]}" stop -t 60 "${ctr}" >/dev/null
code="$("${podman[@]}" inspect -f '{{.State.ExitCode}}' "${ctr}")"
[[ "${code}" == 0 ]] || fail "exit code ${code} after SIGTERM"
echo "PASS: SIGTERM -> exit 0"
"${podman[@]}" rm "${ctr}" >/dev/null
ctr=""

start 2
restarted="$(runs_stored)"
((restarted == after)) || fail "after a restart on the same volume ${restarted} runs stored, expected ${after}"
"${podman[@]}" logs "${ctr}" >"${work}/log2.txt" 2>&1
grep -q 'seed_start' "${work}/log2.txt" && fail "the restarted container seeded again"
echo "PASS: the volume kept all ${restarted} runs across a restart"
"${podman[@]}" stop -t 60 "${ctr}" >/dev/null
echo "image smoke test passed: ${image} ($("${podman[@]}" image inspect -f '{{.Size}}' "${image}" | awk '{printf "%.0f MB", $1 / 1e6}'))"
