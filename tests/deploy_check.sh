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
  # The kube-prometheus overlay as kustomize builds it (kubectl kustomize needs no cluster); the contracts then also
  # check the built objects. Without kubectl, check_contracts.py applies the overlay's patches itself.
  if have kubectl; then
    kustomize_build() {
      kubectl kustomize deploy/kubernetes >/dev/null &&
        kubectl kustomize deploy/kube-prometheus >"${tmp}/kube-prometheus-rendered.yaml" &&
        kubectl kustomize deploy/kubernetes/cluster >"${tmp}/cluster-rendered.yaml"
    }
    run "kubectl kustomize deploy/kubernetes, deploy/kube-prometheus and deploy/kubernetes/cluster" kustomize_build
  else
    skip "kubectl kustomize" "kubectl not installed"
  fi
  run "contracts: Dockerfile, kubernetes, kube-prometheus, kubernetes/cluster, alerts, dashboard, OPERATIONS.md" \
    "${python}" tests/deploy/check_contracts.py "${src}" "${tmp}"
  if have promtool && [[ -f "${tmp}/dashboard_rules.yml" ]]; then
    run "promtool parses every dashboard query" promtool check rules "${tmp}/dashboard_rules.yml"
  fi
  if have promtool && [[ -f "${tmp}/prometheusrule_spec.yml" ]]; then
    run "promtool check rules on the PrometheusRule's spec" promtool check rules "${tmp}/prometheusrule_spec.yml"
  fi
else
  skip "contracts and dashboard queries" "python3 with yaml not installed (Debian package python3-yaml)"
fi

# --- Generated files: the Grafana dashboard and the PrometheusRule are what their scripts write --------------------
if [[ -n "${python}" ]]; then
  dashboard_fresh() {
    "${python}" deploy/make-grafana-dashboard.py "${tmp}/dashboard.json" &&
      diff -u deploy/grafana-dashboard.json "${tmp}/dashboard.json"
  }
  run "deploy/grafana-dashboard.json is up to date with deploy/make-grafana-dashboard.py" dashboard_fresh
  prometheus_rule_fresh() {
    "${python}" deploy/make-prometheus-rule.py "${tmp}/prometheusrule.yaml" &&
      diff -u deploy/kube-prometheus/prometheusrule.yaml "${tmp}/prometheusrule.yaml"
  }
  run "deploy/kube-prometheus/prometheusrule.yaml is up to date with deploy/alerts.yml (make-prometheus-rule.py)" \
    prometheus_rule_fresh
fi

# --- The proto documents itself (a comment on every element); docs/API.md: status rows, JSON examples parse ---
if have protoc && /usr/bin/python3 -c 'import google.protobuf' 2>/dev/null; then
  run "the proto comments every element; docs/API.md lists every RPC's status codes; its JSON examples parse" \
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
print(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f))]))' deploy/kubernetes/*.yaml \
      deploy/kubernetes/cluster/*.yaml | NODE_PATH="${node_path}" node tests/deploy/validate_k8s.js
  }
  run "kubernetes-models schema validation of deploy/kubernetes and deploy/kubernetes/cluster" k8s_validate
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

# --- Against the real server: exported metric names, and the Dockerfile's HEALTHCHECK command --------------------
live_pid=""
live_grpc_port=""
live_metrics_port=""
# Set to (env ... deploy/docker/entrypoint.sh) to start the server the way the image does.
live_launcher=()
# start_live_server NAME [FLAGS...]: starts build/bin/accelsel-server on free loopback ports, trainer off, with an
# empty store unless FLAGS say otherwise (later flags win).
start_live_server() {
  local out="${tmp}/$1.out" name="$1"
  shift
  "${live_launcher[@]}" "${bin_dir}/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="${tmp}/${name}-data" \
    --trainer=false --seed_csv= "$@" >"${out}" 2>&1 &
  live_pid=$!
  live_grpc_port=""
  live_metrics_port=""
  for _ in $(seq 200); do
    live_grpc_port="$(sed -n 's#.*listening on [0-9.]*:\([0-9]*\) (gRPC).*#\1#p' "${out}" | head -n1)"
    live_metrics_port="$(sed -n 's#.*metrics on [0-9.]*:\([0-9]*\)/metrics.*#\1#p' "${out}" | head -n1)"
    [[ -n "${live_grpc_port}" && -n "${live_metrics_port}" ]] && return 0
    kill -0 "${live_pid}" 2>/dev/null || break
    sleep 0.05
  done
  echo "server did not report its ports:"
  cat "${out}"
  kill -TERM "${live_pid}" 2>/dev/null
  return 1
}
stop_live_server() {
  kill -TERM "${live_pid}"
  wait "${live_pid}" || { echo "server exit code $? after SIGTERM"; return 1; }
}

live_metrics_check() {
  start_live_server metrics || return 1
  # One invalid report, so that the labelled family accelsel_runs_rejected_total has a child to export.
  if [[ -x "${bin_dir}/accelsel" ]]; then
    echo '{"run_id": "deploy-check-1", "node_id": "deploy-check", "strategy_id": "none", "status": "RUN_STATUS_OK"}' \
      >"${tmp}/bad.jsonl"
    "${bin_dir}/accelsel" report --server "127.0.0.1:${live_grpc_port}" --jsonl "${tmp}/bad.jsonl" \
      >"${tmp}/report.out" 2>&1
  fi
  curl -fsS "http://127.0.0.1:${live_metrics_port}/metrics" >"${tmp}/metrics.txt"
  local curl_rc=$?
  stop_live_server || return 1
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

# The Dockerfile's HEALTHCHECK command, with the image's paths mapped to bin_dir, must pass against a server started
# as the image starts it: through deploy/docker/entrypoint.sh with a tokens file, so every other call needs a token.
live_healthcheck_check() {
  local -a cmd=()
  local arg
  while read -r arg; do
    cmd+=("${arg}")
  done < <("${python}" -c 'import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
for a in json.loads(re.search(r"^HEALTHCHECK .*? CMD (\[.*\])", text, re.M).group(1)):
    print(a)' Dockerfile)
  [[ ${#cmd[@]} -gt 0 ]] || { echo "no exec-form HEALTHCHECK CMD in the Dockerfile"; return 1; }
  cmd[0]="${bin_dir}/$(basename "${cmd[0]}")"
  local tokens="${tmp}/health-tokens"
  (umask 077 && echo "deploy-check-operator-token-0123456789 operator deploy-check" >"${tokens}")
  live_launcher=(env -u ACCELSEL_INSECURE "ACCELSEL_TOKENS_FILE=${tokens}" deploy/docker/entrypoint.sh)
  start_live_server health
  local started=$?
  live_launcher=()
  [[ ${started} == 0 ]] || return 1
  local i rc=0 anon_rc=0 authed_rc=0
  for i in "${!cmd[@]}"; do
    cmd[i]="${cmd[i]//127.0.0.1:50051/127.0.0.1:${live_grpc_port}}"
  done
  "${cmd[@]}" || rc=$?
  env -u ACCELSEL_TOKEN "${bin_dir}/accelsel" strategies list --server "127.0.0.1:${live_grpc_port}" \
    >"${tmp}/anon.out" 2>&1 || anon_rc=$?
  env -u ACCELSEL_TOKEN "${bin_dir}/accelsel" strategies list --server "127.0.0.1:${live_grpc_port}" \
    --token deploy-check-operator-token-0123456789 >"${tmp}/authed.out" 2>&1 || authed_rc=$?
  stop_live_server || return 1
  [[ ${rc} == 0 ]] || { echo "HEALTHCHECK command '${cmd[*]}' exited ${rc} against a serving server"; return 1; }
  if [[ ${anon_rc} == 0 ]] || ! grep -q UNAUTHENTICATED "${tmp}/anon.out"; then
    echo "a call without a token was not refused UNAUTHENTICATED by the server the entrypoint started:"
    cat "${tmp}/anon.out"
    return 1
  fi
  [[ ${authed_rc} == 0 ]] || { echo "a call with the file's token failed:"; cat "${tmp}/authed.out"; return 1; }
}

# The examples of docs/API.md, replayed against a server seeded as by `make run`, get the documented answers.
live_api_examples_check() {
  start_live_server api --seed_csv=data/llm-inference-bench/throughput_all_results.csv \
    --descriptors_dir=data/descriptors || return 1
  local rc=0
  /usr/bin/python3 tests/deploy/check_api_examples.py "${src}" "${tmp}" "${live_grpc_port}" || rc=$?
  stop_live_server || return 1
  return "${rc}"
}

if [[ -n "${bin_dir}" && -x "${bin_dir}/accelsel-server" ]] && have protoc &&
  /usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null; then
  run "docs/API.md examples get the documented answers from the real server" live_api_examples_check
else
  skip "docs/API.md examples against the real server" \
    "no built accelsel-server in '${bin_dir}', or no protoc / python3-grpcio under /usr/bin/python3"
fi
if [[ -n "${bin_dir}" && -x "${bin_dir}/accelsel-server" && -f "${tmp}/used_metrics.txt" ]] && have curl; then
  run "the server exports every metric used by alerts.yml and the dashboard" live_metrics_check
else
  skip "metric names against the real server" "no built accelsel-server in '${bin_dir}', or no curl"
fi
if [[ -n "${bin_dir}" && -x "${bin_dir}/accelsel-server" && -x "${bin_dir}/accelsel" && -n "${python}" ]]; then
  run "the Dockerfile's HEALTHCHECK command passes against a serving server" live_healthcheck_check
else
  skip "HEALTHCHECK command against the real server" "no built accelsel-server and accelsel in '${bin_dir}'"
fi

# --- deploy/docker/entrypoint.sh: no tokens file and no ACCELSEL_INSECURE=1 -> no server ------------------------
# The image's ENTRYPOINT (script, server, fixed flags) is run with the server replaced by a stand-in that records
# its arguments, in each of the script's cases. Then the real server behind the script, with a tokens file that
# everyone may write, must refuse to start.
entrypoint_check() {
  local fake="${tmp}/entrypoint-fake-server" args="${tmp}/entrypoint-args" err="${tmp}/entrypoint-err"
  local -a entry=()
  local arg rc entry_pid=""
  while read -r arg; do
    entry+=("${arg}")
  done < <("${python}" -c 'import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
for a in json.loads(re.search(r"^ENTRYPOINT (\[.*\])", text, re.M).group(1)):
    print(a)' Dockerfile)
  [[ ${#entry[@]} -ge 2 && "$(basename "${entry[0]}")" == accelsel-entrypoint ]] ||
    { echo "ENTRYPOINT does not start with the entrypoint script: ${entry[*]}"; return 1; }
  entry[0]=deploy/docker/entrypoint.sh
  entry[1]="${fake}"
  printf '#!/bin/sh\necho "$$" >"%s.pid"\nprintf "%%s\\n" "$@" >"%s"\n' "${args}" "${args}" >"${fake}"
  chmod +x "${fake}"
  # run_entrypoint TOKENS_FILE INSECURE [EXTRA_FLAGS...]: INSECURE "-" leaves ACCELSEL_INSECURE unset.
  run_entrypoint() {
    local file="$1" insecure="$2"
    shift 2
    rm -f "${args}" "${args}.pid"
    local -a envs=(env -u ACCELSEL_INSECURE "ACCELSEL_TOKENS_FILE=${file}")
    [[ "${insecure}" == - ]] || envs+=("ACCELSEL_INSECURE=${insecure}")
    "${envs[@]}" "${entry[@]}" "$@" 2>"${err}" &
    entry_pid=$!
    wait "${entry_pid}"
  }
  local missing="${tmp}/no-such-dir/tokens"

  # Refused: no tokens file, insecure mode not chosen (unset, or a value other than 1).
  for insecure in - 0 true; do
    rc=0
    run_entrypoint "${missing}" "${insecure}" || rc=$?
    if [[ ${rc} == 0 || -e "${args}" ]]; then
      echo "ACCELSEL_INSECURE=${insecure}, no tokens file: exit ${rc}, server started: $([[ -e "${args}" ]] && echo yes)"
      return 1
    fi
    if ! [[ "$(wc -l <"${err}")" == 1 ]] || ! grep -q "refusing to start: no tokens file at ${missing}" "${err}" ||
      ! grep -q "ACCELSEL_INSECURE=1" "${err}"; then
      echo "ACCELSEL_INSECURE=${insecure}: not one line that names the file and ACCELSEL_INSECURE=1:"
      cat "${err}"
      return 1
    fi
  done

  # A tokens file: --auth_tokens added after the image's flags, the script replaced by the server (exec).
  echo "deploy-check-node-token-0123456789 node n1" >"${tmp}/entry-tokens"
  run_entrypoint "${tmp}/entry-tokens" - --exploration_rate=0 ||
    { echo "with a tokens file: exit $?"; cat "${err}"; return 1; }
  if ! grep -qxF -- "--auth_tokens=${tmp}/entry-tokens" "${args}" || ! grep -qxF -- --exploration_rate=0 "${args}" ||
    ! grep -qxF -- "${entry[2]}" "${args}" || grep -q allow_insecure "${args}"; then
    echo "with a tokens file the server got:"
    cat "${args}"
    return 1
  fi
  [[ "$(cat "${args}.pid")" == "${entry_pid}" ]] || { echo "the entrypoint did not exec the server"; return 1; }

  # Explicit insecure mode: --allow_insecure=true and a warning.
  run_entrypoint "${missing}" 1 || { echo "ACCELSEL_INSECURE=1: exit $?"; cat "${err}"; return 1; }
  if ! grep -qxF -- --allow_insecure=true "${args}" || ! grep -q WARNING "${err}"; then
    echo "ACCELSEL_INSECURE=1: server got:"
    cat "${args}" "${err}"
    return 1
  fi

  # --auth_tokens among the caller's flags: passed on as given, nothing added.
  run_entrypoint "${missing}" - "--auth_tokens=${tmp}/entry-tokens" ||
    { echo "explicit --auth_tokens: exit $?"; cat "${err}"; return 1; }
  [[ "$(grep -c -- --auth_tokens "${args}")" == 1 ]] ||
    { echo "explicit --auth_tokens: server got:"; cat "${args}"; return 1; }

  # The real server behind the script refuses a tokens file that everyone may write.
  if [[ -n "${bin_dir}" && -x "${bin_dir}/accelsel-server" ]]; then
    chmod 0666 "${tmp}/entry-tokens"
    rc=0
    env -u ACCELSEL_INSECURE "ACCELSEL_TOKENS_FILE=${tmp}/entry-tokens" timeout 20 deploy/docker/entrypoint.sh \
      "${bin_dir}/accelsel-server" --listen=127.0.0.1:0 --metrics_listen= --data_dir="${tmp}/entry-data" \
      --trainer=false --seed_csv= >"${err}" 2>&1 || rc=$?
    if [[ ${rc} != 1 ]] || ! grep -q "writable by everyone" "${err}"; then
      echo "server with a world-writable tokens file: exit ${rc}:"
      cat "${err}"
      return 1
    fi
  fi
}
if [[ -n "${python}" ]]; then
  run "deploy/docker/entrypoint.sh refuses to start without tokens unless ACCELSEL_INSECURE=1" entrypoint_check
else
  skip "entrypoint script" "python3 with yaml not installed (Debian package python3-yaml)"
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
  printf '#!/bin/sh\necho "commands:"\necho "  health      probe"\n' >"${fake}/accelsel"
  chmod +x "${fake}/accelsel-server" "${fake}/accelsel"
  export ACCELSEL_FAKE_ARGS="${tmp}/args" ACCELSEL_FAKE_PID="${tmp}/server.pid"
  deploy/run-local.sh --bin "${fake}" --data_dir "${tmp}/data" --listen 127.0.0.1:1 --metrics_listen=127.0.0.1:2 \
    --seed_csv data/llm-inference-bench/throughput_all_results.csv -- --exploration_rate=0 >"${tmp}/banner" &
  local script_pid=$!
  run_local_pid="${script_pid}"
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
  grep -q "accelsel health --server 127.0.0.1:1" "${tmp}/banner" ||
    { echo "banner lacks the health example although the CLI has it"; return 1; }
  # A missing binary is a clear error, not a hang.
  if deploy/run-local.sh --bin "${tmp}/nowhere" --data_dir "${tmp}/data2" >/dev/null 2>"${tmp}/err"; then
    echo "run-local.sh succeeded without a server binary"; return 1
  fi
  grep -q "not found" "${tmp}/err" || { echo "unclear error:"; cat "${tmp}/err"; return 1; }
}
run_local_pid=""
run "deploy/run-local.sh passes flags, execs the server, exits 0 on SIGTERM" run_local_check
# A failed check may leave the stand-in running; never leave a process behind.
if [[ -n "${run_local_pid}" ]] && kill -0 "${run_local_pid}" 2>/dev/null; then
  kill -KILL "${run_local_pid}" 2>/dev/null
fi

echo "deploy checks: ${passed} passed, ${failed} failed, ${skipped} skipped"
[[ ${failed} -eq 0 ]]
