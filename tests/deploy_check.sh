#!/usr/bin/env bash
# Static checks of the deployment artefacts (Dockerfile, deploy/, docs/OPERATIONS.md, docs/API.md), registered with ctest as
# deploy_static_checks. A check is skipped only when its tool is not installed, and says so; any failure makes the
# script exit 1. No Docker engine or cluster is needed: nothing here builds an image or talks to Kubernetes.
#
# Usage: tests/deploy_check.sh [SOURCE_DIR] [BIN_DIR]
#   BIN_DIR (optional, e.g. build/bin): when it holds accelsel-server and accelsel, their shared libraries are
#   checked against the Dockerfile's runtime package list.
set -uo pipefail

src="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)"
bin_dir="${2:-}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/accelsel-deploy-check.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT

passed=0
failed=0
skipped=0

# run NAME COMMAND... : runs one check, shows its output only when it fails.
run() {
  local name="$1"
  shift
  if "$@" >"${tmp}/out" 2>&1; then
    echo "PASS  ${name}"
    passed=$((passed + 1))
  else
    echo "FAIL  ${name}"
    sed 's/^/      /' "${tmp}/out"
    failed=$((failed + 1))
  fi
}

skip() {
  echo "SKIP  $1 ($2)"
  skipped=$((skipped + 1))
}

have() { command -v "$1" >/dev/null 2>&1; }

cd "${src}" || exit 1

# --- shell scripts ---------------------------------------------------------------------------------------------
mapfile -t scripts < <(find deploy tests -name '*.sh' -type f | sort)
if have shellcheck; then
  run "shellcheck ${scripts[*]}" shellcheck "${scripts[@]}"
else
  skip "shellcheck" "shellcheck not installed (Debian package shellcheck)"
fi

# --- YAML ------------------------------------------------------------------------------------------------------
if have yamllint; then
  run "yamllint deploy/" yamllint -s -c deploy/.yamllint deploy/
else
  skip "yamllint deploy/" "yamllint not installed (Debian package yamllint)"
fi

# --- Prometheus ------------------------------------------------------------------------------------------------
if have promtool; then
  run "promtool check config deploy/prometheus.yml" promtool check config deploy/prometheus.yml
  run "promtool check rules deploy/alerts.yml" promtool check rules deploy/alerts.yml
  run "promtool test rules deploy/alerts_test.yml" promtool test rules deploy/alerts_test.yml
else
  skip "promtool config/rules/unit tests" "promtool not installed (Debian package prometheus)"
fi

# --- Cross-file contracts (ports, paths, uid, probes, metric names) ---------------------------------------------
# Debian's python3-yaml lives under /usr/bin/python3 (a pyenv python3 on PATH may lack it).
python=""
for candidate in /usr/bin/python3 python3; do
  if have "${candidate}" && "${candidate}" -c 'import yaml' 2>/dev/null; then
    python="${candidate}"
    break
  fi
done
if [[ -n "${python}" ]]; then
  run "contracts: Dockerfile, kubernetes, alerts, dashboard, OPERATIONS.md" \
    "${python}" tests/deploy/check_contracts.py "${src}" "${tmp}"
  if have promtool && [[ -f "${tmp}/dashboard_rules.yml" ]]; then
    run "promtool parses every dashboard query" promtool check rules "${tmp}/dashboard_rules.yml"
  fi
else
  skip "contracts and dashboard queries" "python3 with yaml not installed (Debian package python3-yaml)"
fi

# --- docs/API.md against the proto: every field documented, every labelled JSON example parses ---------------------
if have protoc && /usr/bin/python3 -c 'import google.protobuf' 2>/dev/null; then
  run "docs/API.md documents every proto field; its JSON examples parse" \
    /usr/bin/python3 tests/deploy/check_api_doc.py "${src}" "${tmp}"
else
  skip "docs/API.md vs proto" "protoc or /usr/bin/python3 with python3-protobuf not installed"
fi

# --- Kubernetes schemas ----------------------------------------------------------------------------------------
node_path=""
if have npm; then
  node_path="$(npm root -g 2>/dev/null)"
fi
if have node && [[ -n "${python}" ]] &&
  NODE_PATH="${node_path}" node -e "require.resolve('kubernetes-models/package.json')" 2>/dev/null; then
  k8s_validate() {
    "${python}" -c 'import json, sys, yaml
print(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f))]))' deploy/kubernetes/*.yaml |
      NODE_PATH="${node_path}" node tests/deploy/validate_k8s.js
  }
  run "kubernetes-models schema validation of deploy/kubernetes" k8s_validate
else
  skip "kubernetes schema validation" "node + npm package kubernetes-models not installed (npm install -g kubernetes-models)"
fi

# --- Dockerfile lint (no Docker engine here: static checks only) ------------------------------------------------
if have dockerfile-utils; then
  run "dockerfile-utils lint Dockerfile" dockerfile-utils lint Dockerfile
else
  skip "dockerfile-utils lint" "npm package dockerfile-utils not installed (npm install -g dockerfile-utils)"
fi
if have dockerfilelint && [[ -n "${python}" ]]; then
  # dockerfilelint 1.8 reads HEALTHCHECK options with /--\w+/, which stops at the hyphen of --start-period and so
  # reports a valid option as invalid. That one finding is dropped, by name; every other finding fails the check.
  dockerfilelint_filtered() {
    dockerfilelint -o json Dockerfile >"${tmp}/dfl.json"
    "${python}" - "${tmp}/dfl.json" <<'PY'
import json, sys
issues = json.load(open(sys.argv[1]))["files"][0]["issues"]
real = [i for i in issues if not (i["title"] == "Invalid Argument Format"
                                  and i["content"].startswith("HEALTHCHECK") and "--start-period" in i["content"])]
for i in issues:
    print(("ignored (known false positive) " if i not in real else "") + f"line {i['line']}: {i['title']}: {i['content']}")
sys.exit(1 if real else 0)
PY
  }
  run "dockerfilelint Dockerfile" dockerfilelint_filtered
else
  skip "dockerfilelint" "npm package dockerfilelint not installed (npm install -g dockerfilelint)"
fi

# --- Runtime packages of the image vs the libraries the built binaries load ------------------------------------
if [[ -n "${bin_dir}" && -x "${bin_dir}/accelsel-server" && -x "${bin_dir}/accelsel" && -f "${tmp}/runtime_packages.txt" ]]; then
  if have ldd && have dpkg-query; then
    run "runtime-deps.sh: Dockerfile RUNTIME_PACKAGES cover the binaries' libraries" \
      deploy/docker/runtime-deps.sh --require "$(cat "${tmp}/runtime_packages.txt")" \
      "${bin_dir}/accelsel-server" "${bin_dir}/accelsel"
  else
    skip "runtime library coverage" "ldd/dpkg-query not available"
  fi
else
  skip "runtime library coverage" "no built accelsel-server and accelsel in '${bin_dir}'"
fi

# --- The real server exports every metric the alerts and the dashboard read --------------------------------------
live_metrics_check() {
  local out="${tmp}/server.out" data="${tmp}/live-data" port="" pid
  "${bin_dir}/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="${data}" \
    --trainer=false --seed_csv= >"${out}" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    port="$(sed -n 's#.*metrics on [0-9.]*:\([0-9]*\)/metrics.*#\1#p' "${out}" | head -n1)"
    [[ -n "${port}" ]] && break
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.05
  done
  if [[ -z "${port}" ]]; then
    echo "server did not report its metrics port:"; cat "${out}"; kill -TERM "${pid}" 2>/dev/null; return 1
  fi
  curl -fsS "http://127.0.0.1:${port}/metrics" >"${tmp}/metrics.txt"
  local curl_rc=$?
  kill -TERM "${pid}"
  wait "${pid}" || { echo "server exit code $? after SIGTERM"; return 1; }
  [[ ${curl_rc} == 0 ]] || { echo "scrape failed"; return 1; }
  local name missing=0
  while read -r name; do
    # A family counts as exported when its TYPE line is there (labelled families may have no samples yet).
    if ! grep -q "^# TYPE ${name} " "${tmp}/metrics.txt"; then
      echo "alerts/dashboard use ${name}, which the server does not export"
      missing=1
    fi
  done <"${tmp}/used_metrics.txt"
  return "${missing}"
}
if [[ -n "${bin_dir}" && -x "${bin_dir}/accelsel-server" && -f "${tmp}/used_metrics.txt" ]] && have curl; then
  run "the server exports every metric used by alerts.yml and the dashboard" live_metrics_check
else
  skip "metric names against the real server" "no built accelsel-server in '${bin_dir}', or no curl"
fi

# --- deploy/run-local.sh with a stand-in server: flags passed through, exec'd, SIGTERM reaches it ---------------
run_local_check() {
  local fake="${tmp}/fakebin"
  mkdir -p "${fake}"
  cat >"${fake}/accelsel-server" <<'SH'
#!/usr/bin/env bash
printf '%s\n' "$@" >"${ACCELSEL_FAKE_ARGS}"
echo "$$" >"${ACCELSEL_FAKE_PID}"
trap 'exit 0' TERM
while :; do sleep 0.05; done
SH
  chmod +x "${fake}/accelsel-server"
  cp "${fake}/accelsel-server" "${fake}/accelsel"
  export ACCELSEL_FAKE_ARGS="${tmp}/args" ACCELSEL_FAKE_PID="${tmp}/server.pid"
  deploy/run-local.sh --bin "${fake}" --data_dir "${tmp}/data" --listen 127.0.0.1:1 --metrics_listen=127.0.0.1:2 \
    --seed_csv data/llm-inference-bench/throughput_all_results.csv -- --exploration_rate=0 >"${tmp}/banner" &
  local script_pid=$!
  for _ in $(seq 100); do [[ -s "${ACCELSEL_FAKE_PID}" ]] && break; sleep 0.05; done
  [[ -s "${ACCELSEL_FAKE_PID}" ]] || { echo "server never started"; return 1; }
  # exec: the script's process is the server's process, so Ctrl-C / SIGTERM go straight to it.
  [[ "$(cat "${ACCELSEL_FAKE_PID}")" == "${script_pid}" ]] || { echo "run-local.sh did not exec the server"; return 1; }
  kill -TERM "${script_pid}"
  wait "${script_pid}" || { echo "server exit code $? after SIGTERM"; return 1; }
  [[ -d "${tmp}/data" ]] || { echo "data dir not created"; return 1; }
  local expected
  for expected in --listen=127.0.0.1:1 --metrics_listen=127.0.0.1:2 "--data_dir=${tmp}/data" \
    --seed_csv=data/llm-inference-bench/throughput_all_results.csv --exploration_rate=0; do
    grep -qxF -- "${expected}" "${tmp}/args" || { echo "server did not get ${expected}:"; cat "${tmp}/args"; return 1; }
  done
  grep -q "select --server 127.0.0.1:1 --context data/examples/" "${tmp}/banner" ||
    { echo "banner lacks the select example:"; cat "${tmp}/banner"; return 1; }
  grep -q "curl -s 127.0.0.1:2/metrics" "${tmp}/banner" || { echo "banner lacks the metrics example"; return 1; }
  # A missing binary is a clear error, not a hang.
  if deploy/run-local.sh --bin "${tmp}/nowhere" --data_dir "${tmp}/data2" >/dev/null 2>"${tmp}/err"; then
    echo "run-local.sh succeeded without a server binary"; return 1
  fi
  grep -q "not found" "${tmp}/err" || { echo "unclear error:"; cat "${tmp}/err"; return 1; }
}
run "deploy/run-local.sh passes flags, execs the server, exits 0 on SIGTERM" run_local_check

echo "deploy checks: ${passed} passed, ${failed} failed, ${skipped} skipped"
[[ ${failed} -eq 0 ]]
