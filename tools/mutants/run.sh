#!/usr/bin/env bash
# Mutation check of the decision policies: applies each fault of tools/mutants/mutants.txt, one at a time, to a
# private copy of this tree (never to the checkout), rebuilds the affected tests and runs them; exits non-zero when
# any fault survives. Usage: tools/mutants/run.sh [--list] [ID|PATTERN ...]  (see tools/mutants/README.md)
# Environment: MUTANTS_WORK (copy + build, default /tmp/accelsel-mutants), MUTANTS_JOBS (default nproc),
# MUTANTS_LOCK (flock file held around each build, default /tmp/accelsel-build.lock; empty for none).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for tool in python3 cmake ninja ctest git; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required (make deps installs it)" >&2; exit 2; }
done
exec python3 "$here/mutants.py" "$@"
