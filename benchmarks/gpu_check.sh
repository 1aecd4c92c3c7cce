#!/usr/bin/env bash
# The GPU check in one command, for a session that has an NVIDIA GPU (see docs/kernels.md, "CUDA"):
# installs the cuda extra (torchao) if it can, then runs benchmarks/gpu_check.py under a timeout.
# Usage: benchmarks/gpu_check.sh [gpu_check.py options]     With $OUT set: $OUT/gpu_check.json.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
if ! python -m pip install -q -e '.[cuda]' >"$log" 2>&1; then
    echo "gpu_check.sh: pip install -e '.[cuda]' failed (offline?); running with what is installed:" >&2
    tail -n 3 "$log" >&2
fi
rm -f "$log"
exec timeout 290 python benchmarks/gpu_check.py "$@"
