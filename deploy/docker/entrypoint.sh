#!/bin/sh
# The container image's ENTRYPOINT. The image listens on 0.0.0.0, and a server there without --auth_tokens lets any
# client claim any node id and call the operator RPCs, so this script starts the server with a tokens file or not
# at all, unless insecure mode is asked for by name. It execs the server, so SIGTERM (docker stop, the kubelet)
# reaches the server directly.
#
# Usage: accelsel-entrypoint SERVER [FLAGS...]
#   The Dockerfile's ENTRYPOINT passes SERVER and the image's fixed flags; `docker run IMAGE FLAGS...` and a
#   Kubernetes container's args are appended to them. Decided in this order:
#   1. FLAGS name --auth_tokens: started unchanged (the server checks that file).
#   2. $ACCELSEL_TOKENS_FILE (default /etc/accelsel/tokens) exists: --auth_tokens=FILE is added. The server refuses
#      a file that group or others may write, or that does not parse (exit 1 with the reason).
#   3. ACCELSEL_INSECURE=1: --allow_insecure=true is added, with a warning on stderr. Any other value is refused,
#      so that ACCELSEL_INSECURE=0 or =false cannot open the server.
#   4. Otherwise: one line on stderr, exit 78 (EX_CONFIG); the server is not started.
# Operations notes: docs/OPERATIONS.md, "Deploying securely".
set -eu

if [ $# -lt 1 ]; then
  echo "accelsel-entrypoint: usage: accelsel-entrypoint SERVER [FLAGS...]" >&2
  exit 64
fi

tokens="${ACCELSEL_TOKENS_FILE:-/etc/accelsel/tokens}"

for arg in "$@"; do
  case "${arg}" in
    --auth_tokens | --auth_tokens=*) exec "$@" ;;
  esac
done

# -e, not -f: a directory or an unreadable file goes to the server, whose error names the problem.
if [ -e "${tokens}" ]; then
  exec "$@" "--auth_tokens=${tokens}"
fi

insecure="${ACCELSEL_INSECURE:-}"
if [ "${insecure}" = 1 ]; then
  echo "accelsel-entrypoint: WARNING: ACCELSEL_INSECURE=1 and no tokens file at ${tokens}: serving without" \
    "authentication; any client can claim any node id and call the operator RPCs" >&2
  exec "$@" --allow_insecure=true
fi

if [ -n "${insecure}" ]; then
  hint="; ACCELSEL_INSECURE is '${insecure}', but only ACCELSEL_INSECURE=1 serves without authentication"
else
  hint=", or set ACCELSEL_INSECURE=1 to serve without authentication"
fi
echo "accelsel-entrypoint: refusing to start: no tokens file at ${tokens}; mount one there (or set" \
  "ACCELSEL_TOKENS_FILE to its path)${hint} (docs/OPERATIONS.md, \"Deploying securely\")" >&2
exit 78
