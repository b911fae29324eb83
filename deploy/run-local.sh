#!/usr/bin/env bash
# Starts accelsel-server in the foreground for `make run`: creates the data folder, prints the commands to try
# next, then execs the server so Ctrl-C / SIGTERM reach it directly (it drains and exits 0).
#
# Usage: deploy/run-local.sh [--bin DIR] [--data_dir DIR] [--listen HOST:PORT] [--metrics_listen HOST:PORT]
#                            [--seed_csv CSV] [--descriptors_dir DIR] [-- extra server flags...]
# The server imports --seed_csv itself when its store is empty, so a second start reuses the stored runs.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bin_dir="build/bin"
data_dir="./var/accelsel"
listen="127.0.0.1:50051"
metrics_listen="127.0.0.1:9464"
seed_csv="${repo_root}/data/llm-inference-bench/throughput_all_results.csv"
descriptors_dir=""
extra_flags=()

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
  echo "run-local.sh: $*" >&2
  exit 1
}

# Accepts both "--flag value" and "--flag=value".
while [[ $# -gt 0 ]]; do
  arg="$1"
  value=""
  case "${arg}" in
    --*=*)
      value="${arg#*=}"
      arg="${arg%%=*}"
      shift
      ;;
    --bin | --data_dir | --listen | --metrics_listen | --seed_csv | --descriptors_dir)
      [[ $# -ge 2 ]] || die "${arg} needs a value"
      value="$2"
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    --)
      shift
      extra_flags+=("$@")
      break
      ;;
    *)
      die "unknown argument '${arg}' (server flags go after --)"
      ;;
  esac
  case "${arg}" in
    --bin) bin_dir="${value}" ;;
    --data_dir) data_dir="${value}" ;;
    --listen) listen="${value}" ;;
    --metrics_listen) metrics_listen="${value}" ;;
    --seed_csv) seed_csv="${value}" ;;
    --descriptors_dir) descriptors_dir="${value}" ;;
    *) die "unknown argument '${arg}' (server flags go after --)" ;;
  esac
done

server="${bin_dir}/accelsel-server"
cli="${bin_dir}/accelsel"
[[ -x "${server}" ]] || die "${server} not found or not executable: build first (make build)"
[[ -n "${data_dir}" ]] || die "--data_dir must not be empty"

server_flags=(
  "--listen=${listen}"
  "--metrics_listen=${metrics_listen}"
  "--data_dir=${data_dir}"
)
if [[ -n "${seed_csv}" ]]; then
  [[ -r "${seed_csv}" ]] || die "seed CSV ${seed_csv} not readable (pass --seed_csv= to start with an empty store)"
  server_flags+=("--seed_csv=${seed_csv}")
fi
# The server resolves its default descriptor folder against its working directory; pin it to this checkout so
# `make run` works from any directory.
if [[ -z "${descriptors_dir}" && -d "${repo_root}/data/descriptors" ]]; then
  descriptors_dir="${repo_root}/data/descriptors"
fi
if [[ -n "${descriptors_dir}" ]]; then
  server_flags+=("--descriptors_dir=${descriptors_dir}")
fi
server_flags+=("${extra_flags[@]+"${extra_flags[@]}"}")

mkdir -p "${data_dir}"

# Clients reach a wildcard listener through loopback.
client_addr="${listen}"
case "${client_addr}" in
  0.0.0.0:*) client_addr="127.0.0.1:${client_addr#0.0.0.0:}" ;;
  \[::\]:*) client_addr="[::1]:${client_addr#\[::\]:}" ;;
esac
metrics_addr="${metrics_listen}"
case "${metrics_addr}" in
  0.0.0.0:*) metrics_addr="127.0.0.1:${metrics_addr#0.0.0.0:}" ;;
esac

example_context="data/examples/llama3-8b-h100.json"
if [[ ! -f "${repo_root}/${example_context}" ]]; then
  first_example="$(find "${repo_root}/data/examples" -maxdepth 1 -name '*.json' -print -quit 2>/dev/null || true)"
  [[ -n "${first_example}" ]] && example_context="${first_example#"${repo_root}"/}"
fi

if [[ -n "${seed_csv}" && -z "$(ls -A "${data_dir}")" ]]; then
  store_note="empty store: the server imports ${seed_csv} before it reports SERVING"
else
  store_note="existing store in ${data_dir} is reused (the seed CSV is imported only into an empty store)"
fi

cat <<MSG
accelsel-server: gRPC on ${listen}, metrics on http://${metrics_listen}/metrics, data in ${data_dir}
  ${store_note}

Try, from another terminal in this checkout:
  ${cli} health --server ${client_addr}
  ${cli} select --server ${client_addr} --context ${example_context}
  ${cli} select --server ${client_addr} --context ${example_context} --objective throughput --json
  ${cli} strategies list --server ${client_addr}
  ${cli} model info --server ${client_addr}
  curl -s ${metrics_addr}/metrics | grep accelsel_

Stop with Ctrl-C (the server drains in-flight calls and exits 0).

MSG

exec "${server}" "${server_flags[@]}"
