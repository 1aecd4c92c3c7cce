#!/usr/bin/env bash
# The GPU check in one command, for a session that has an NVIDIA GPU (see docs/kernels.md, "CUDA"):
# quantbench from this checkout (src/ on PYTHONPATH, no install needed); torchao from .whl/ when
# benchmarks/gpu_wheels.sh put wheels there (for a machine without network), else pip install
# '.[cuda]' if it can; then benchmarks/gpu_check.py and the tests marked cuda, each under a timeout.
# Usage: benchmarks/gpu_check.sh [gpu_check.py options]     With $OUT set: $OUT/gpu_check.json.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=$(command -v python3 || command -v python)  # GPU images often have python3 only
log=$(mktemp)
if ls .whl/*.whl >/dev/null 2>&1; then
    site=$(mktemp -d)
    if "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl >"$log" 2>&1; then
        export PYTHONPATH="$PYTHONPATH:$site"
    else
        echo "gpu_check.sh: installing .whl/*.whl failed:" >&2; tail -n 3 "$log" >&2
    fi
elif ! "$python" -m pip install -q -e '.[cuda]' >"$log" 2>&1; then
    echo "gpu_check.sh: pip install -e '.[cuda]' failed (offline?); running with what is installed:" >&2
    tail -n 3 "$log" >&2
fi
rm -f "$log"
timeout 290 "$python" benchmarks/gpu_check.py "$@"
check=$?
timeout 200 "$python" -m pytest tests/runtimes/test_cuda.py -q -m cuda -p no:cacheprovider
tests=$?
echo "gpu_check.sh: gpu_check.py exit $check, cuda tests exit $tests"
exit $(( check != 0 ? check : tests ))
