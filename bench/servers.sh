# Sourced by the bench scripts: the servers a script starts, stopped (by PID) on exit, and their start-up.
# The sourcing script sets WORK (a scratch folder, removed on exit) before any server starts.

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME LOG CMD...: starts a server with its output in LOG, waits for its "listening on HOST:PORT"
# line, sets ADDR_<NAME> and PID_<NAME>.
start_server() {
  local name="$1" log="$2"; shift 2
  "$@" >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  local addr=""
  for _ in $(seq 1 600); do
    addr="$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | head -1 | awk '{print $3}')" || true
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "$(basename "$0"): $name exited:"; cat "$log"; exit 1; }
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "$(basename "$0"): $name did not start"; exit 1; }
  printf -v "ADDR_$name" '%s' "$addr"
  printf -v "PID_$name" '%s' "$pid"
}
