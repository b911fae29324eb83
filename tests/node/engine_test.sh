#!/usr/bin/env bash
# make node-test: accelsel-node with the real llama.cpp engine against a spawned accelsel-server that checks tokens.
# The catalogue is registered with an operator token; six jobs on llama-30m run with a node token: five must run OK
# with every timing > 0 and a decision_id, one on a corrupt model file must be reported as a failed run (CRASH);
# all six reports must be stored and joined with their decisions. Then, with the server stopped, a job still runs
# (llama.cpp's defaults) and its report stays queued.
# Usage: tests/node/engine_test.sh BIN_DIR MODELS_DIR (BIN_DIR holds accelsel-server, accelsel-node and accelsel).
set -euo pipefail
BIN="${1:?usage: engine_test.sh BIN_DIR MODELS_DIR}"
MODELS="${2:?usage: engine_test.sh BIN_DIR MODELS_DIR}"
WORK="$(mktemp -d)"
# shellcheck source=bench/servers.sh disable=SC1091  # checked on its own; not followed here (no -x)
. "$(dirname "$0")/../../bench/servers.sh"

fail() {
  echo "node-test: FAIL: $*" >&2
  exit 1
}

OPERATOR_TOKEN=operator-token-node-test-0123456789
NODE_TOKEN=node-token-node-test-0123456789ab
printf '%s operator ops\n%s node node-test\n' "$OPERATOR_TOKEN" "$NODE_TOKEN" >"$WORK/tokens"
echo "$OPERATOR_TOKEN" >"$WORK/operator.token"
echo "$NODE_TOKEN" >"$WORK/node.token"

# The models this test may use: llama-30m's four files, and a "broken" model whose F16 file is not a model.
mkdir "$WORK/models"
for f in "$MODELS"/llama-30m.*.gguf; do ln -s "$(realpath "$f")" "$WORK/models/"; done
[ -e "$WORK/models/llama-30m.F16.gguf" ] || fail "no $MODELS/llama-30m.F16.gguf (make node-models NODE_MODELS_ARGS=\"--models llama-30m\")"
printf 'GGUF\003\000\000\000not a model' >"$WORK/models/broken.F16.gguf"

start_server S "$WORK/server.log" "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen= \
  --data_dir="$WORK/data" --auth_tokens="$WORK/tokens" --trainer=false
"$BIN/accelsel-node" catalogue --register --server "$ADDR_S" --token_file "$WORK/operator.token"

cat >"$WORK/jobs.jsonl" <<'JOBS'
{"id":"t1","model":"llama-30m","prompt_tokens":64,"output_tokens":16}
{"id":"t2","model":"llama-30m","prompt_tokens":128,"output_tokens":32,"parallel":2}
{"id":"t3","model":"llama-30m","prompt_tokens":32,"output_tokens":8,"parallel":4}
{"id":"t4","model":"llama-30m","prompt_tokens":64,"output_tokens":16}
{"id":"t5","model":"llama-30m","prompt_tokens":256,"output_tokens":16}
{"id":"bad","model":"broken","prompt_tokens":16,"output_tokens":4}
JOBS
start_ms=$(($(date +%s%N) / 1000000))
"$BIN/accelsel-node" run --server "$ADDR_S" --token_file "$WORK/node.token" --jobs "$WORK/jobs.jsonl" \
  --models "$WORK/models" --node_id node-test >"$WORK/run.jsonl"
echo "node-test: 6 jobs in $(($(date +%s%N) / 1000000 - start_ms)) ms (model loads included):"
cat "$WORK/run.jsonl"

python3 - "$WORK/run.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
jobs, summary = lines[:-1], lines[-1]["summary"]
assert len(jobs) == 6, f"{len(jobs)} job lines"
for j in jobs:
    assert j["decision_id"].startswith("d1-"), j
    if j["job"] == "bad":
        assert j["status"] == "RUN_STATUS_CRASH" and "cannot load" in j["message"], j
        assert j["strategy"].startswith("llamacpp:"), j
        continue
    assert j["status"] == "RUN_STATUS_OK", j
    assert j["strategy"].startswith("llamacpp:"), j
    for k in ("ttft_ms", "tpot_ms", "e2e_latency_ms", "throughput_tokens_per_s", "peak_memory_gb", "context_ms"):
        assert j[k] > 0, (k, j)
    assert j["ttft_ms"] < j["e2e_latency_ms"], j
assert summary["reports_durable"] == 6 and summary["reports_rejected"] == 0, summary
assert summary["default_fallbacks"] == 0, summary
PY

# Stored and joined: the decision log joins off the request path, so poll (bounded).
joined=0
for _ in $(seq 1 100); do
  joined="$("$BIN/accelsel" quality --server "$ADDR_S" --token "$OPERATOR_TOKEN" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("overall", {}).get("joined_reports", 0))')"
  [ "$joined" -ge 6 ] && break
  sleep 0.2
done
[ "$joined" -eq 6 ] || fail "$joined of 6 runs joined with their decisions"

# The server gone: the job runs the default and its report waits in the sender's buffer.
kill -TERM "$PID_S"
wait "$PID_S" || true
head -1 "$WORK/jobs.jsonl" >"$WORK/one.jsonl"
"$BIN/accelsel-node" run --server "$ADDR_S" --token_file "$WORK/node.token" --jobs "$WORK/one.jsonl" \
  --models "$WORK/models" --node_id node-test --select_deadline_ms 1000 --flush_timeout 2s >"$WORK/down.jsonl"
cat "$WORK/down.jsonl"
python3 - "$WORK/down.jsonl" <<'PY'
import json, sys
job, summary = [json.loads(l) for l in open(sys.argv[1])]
summary = summary["summary"]
assert job["strategy"] == "llamacpp:default" and job["status"] == "RUN_STATUS_OK" and job["select_error"], job
assert job["decision_id"] == "" and job["e2e_latency_ms"] > 0, job
assert summary["reports_unacknowledged"] == 1 and summary["reports_durable"] == 0, summary
PY
echo "node-test: PASS"
