#!/usr/bin/env bash
# Rehearses the Dockerfile's runtime stage without a Docker engine: a debootstrap'ed minimal Debian 12 root
# (what debian:bookworm-slim is made from) gets the Dockerfile's RUNTIME_PACKAGES, its user, the binaries and
# data/; then the ENTRYPOINT (deploy/docker/entrypoint.sh, given a tokens file at /etc/accelsel/tokens) runs inside it
# as that user (chroot, host network), the HEALTHCHECK command must pass, and SIGTERM must end the server with exit 0. Needs root, debootstrap and access to the Debian archive; not part
# of ctest. Results: docs/OPERATIONS.md, "Docker".
#
# Usage: deploy/docker/rehearse-runtime.sh BIN_DIR [ROOTFS_DIR]
#   ROOTFS_DIR is created with debootstrap unless it already holds a Debian root (then it is reused).
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="$(cd "${1:?usage: $0 BIN_DIR [ROOTFS_DIR]}" && pwd)"
rootfs="${2:-/tmp/accelsel-rehearse-rootfs}"
grpc_port="${ACCELSEL_REHEARSE_PORT:-50151}"
metrics_port="${ACCELSEL_REHEARSE_METRICS_PORT:-9564}"

[[ "$(id -u)" == 0 ]] || { echo "rehearse-runtime.sh: needs root (debootstrap, chroot)" >&2; exit 2; }
for f in accelsel-server accelsel; do
  [[ -x "${bin_dir}/${f}" ]] || { echo "rehearse-runtime.sh: ${bin_dir}/${f} missing" >&2; exit 2; }
done

# The Dockerfile is the single source of truth: package list, user, ENTRYPOINT and HEALTHCHECK come from it.
runtime_packages=""
user_setup=""
image_user=""
entrypoint=()
healthcheck=()
eval "$(/usr/bin/python3 - "${src}/Dockerfile" <<'PY'
import json, re, shlex, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
pkgs = re.search(r'^ARG RUNTIME_PACKAGES="([^"]*)"', text, re.M).group(1).split()
entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])", text, re.M).group(1))
health = json.loads(re.search(r"^HEALTHCHECK .*? CMD (\[.*\])", text, re.M).group(1))
user_run = re.search(r"^RUN (groupadd .*?chmod \S+ \S+)", text, re.M | re.S).group(1)
user = re.findall(r"^USER (\S+)", text, re.M)[-1]
print("runtime_packages=" + shlex.quote(" ".join(pkgs)))
print("entrypoint=(" + " ".join(shlex.quote(a) for a in entry) + ")")
print("healthcheck=(" + " ".join(shlex.quote(a) for a in health) + ")")
print("user_setup=" + shlex.quote(" ".join(user_run.split())))
print("image_user=" + shlex.quote(user))
PY
)"

if [[ ! -x "${rootfs}/usr/bin/apt-get" ]]; then
  echo "== debootstrap --variant=minbase bookworm ${rootfs}"
  debootstrap --variant=minbase bookworm "${rootfs}" http://deb.debian.org/debian >"${rootfs}.debootstrap.log" 2>&1
  cat >"${rootfs}/etc/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
fi

echo "== apt-get install RUNTIME_PACKAGES (${runtime_packages})"
chroot "${rootfs}" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends ${runtime_packages}" >"${rootfs}.apt.log" 2>&1

# A container has /proc; so must the chroot (unmounted again on exit if mounted here).
if ! mountpoint -q "${rootfs}/proc"; then
  mount -t proc proc "${rootfs}/proc"
  trap 'umount "${rootfs}/proc"' EXIT
fi

echo "== user setup: ${user_setup}"
chroot "${rootfs}" /bin/sh -c "id -u accelsel >/dev/null 2>&1 || (${user_setup})"

echo "== copy binaries, entrypoint script and data"
install -m 0755 "${bin_dir}/accelsel-server" "${bin_dir}/accelsel" "${rootfs}/usr/local/bin/"
install -m 0755 "${src}/deploy/docker/entrypoint.sh" "${rootfs}${entrypoint[0]}"
# The image refuses to start without a tokens file; mount one as an operator would (owned by the image's user, 0600).
rehearse_token="rehearse-operator-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "${rootfs}/etc/accelsel"
(umask 077 && echo "${rehearse_token} operator rehearse" >"${rootfs}/etc/accelsel/tokens")
chown "${image_user}" "${rootfs}/etc/accelsel/tokens"
rm -rf "${rootfs}/opt/accelsel/data" "${rootfs}/var/lib/accelsel/"*
mkdir -p "${rootfs}/opt/accelsel"
cp -r "${src}/data" "${rootfs}/opt/accelsel/data"
for f in accelsel-server accelsel; do
  if chroot "${rootfs}" ldd "/usr/local/bin/${f}" | grep 'not found'; then
    echo "FAIL: ${f} misses libraries in the runtime root"
    exit 1
  fi
done

# The image listens on 0.0.0.0:50051 / :9464; the rehearsal shares the host's network, so it moves to loopback
# ports that are unlikely to be taken. Every other ENTRYPOINT flag is used as written.
args=()
for a in "${entrypoint[@]:1}"; do
  case "${a}" in
    --listen=*) args+=("--listen=127.0.0.1:${grpc_port}") ;;
    --metrics_listen=*) args+=("--metrics_listen=127.0.0.1:${metrics_port}") ;;
    *) args+=("${a}") ;;
  esac
done
health=()
for a in "${healthcheck[@]}"; do
  health+=("${a//127.0.0.1:50051/127.0.0.1:${grpc_port}}")
done

echo "== run ${entrypoint[0]} ${args[*]} as ${image_user} (cwd /var/lib/accelsel)"
log="${rootfs}.server.log"
chroot --userspec="${image_user}" "${rootfs}" /bin/sh -c 'cd /var/lib/accelsel && exec "$@"' sh \
  "${entrypoint[0]}" "${args[@]}" >"${log}" 2>&1 &
server_pid=$!
healthy=0
start=$(date +%s)
for _ in $(seq 240); do
  if chroot --userspec="${image_user}" "${rootfs}" "${health[@]}" >/dev/null 2>&1; then
    healthy=1
    break
  fi
  kill -0 "${server_pid}" 2>/dev/null || break
  sleep 0.5
done
if [[ ${healthy} != 1 ]]; then
  echo "FAIL: HEALTHCHECK (${health[*]}) never passed; server log:"
  cat "${log}"
  kill -TERM "${server_pid}" 2>/dev/null || true
  exit 1
fi
echo "PASS: HEALTHCHECK passed after $(($(date +%s) - start)) s"
chroot --userspec="${image_user}" "${rootfs}" /usr/local/bin/accelsel strategies list \
  --server "127.0.0.1:${grpc_port}" --token "${rehearse_token}" | head -n 5
if command -v curl >/dev/null; then
  echo "metrics: $(curl -s "127.0.0.1:${metrics_port}/metrics" | grep -c '^accelsel_') accelsel_ samples"
fi
echo "store owned by: $(stat -c '%u:%g' "${rootfs}/var/lib/accelsel/CURRENT" 2>/dev/null || echo '?')"

kill -TERM "${server_pid}"
rc=0
wait "${server_pid}" || rc=$?
if [[ ${rc} != 0 ]]; then
  echo "FAIL: exit code ${rc} after SIGTERM; server log:"
  cat "${log}"
  exit 1
fi
echo "PASS: SIGTERM -> exit 0"
echo "rehearsal passed"
