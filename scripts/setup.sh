#!/usr/bin/env bash
# Create .venv with a CPU build of PyTorch and quantbench installed (editable), plus test tools.
# Usage: scripts/setup.sh            (idempotent; reuses .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# Pin the CPU build (an unpinned 'torch' pulls a multi-GB CUDA build); users may use any torch in range.
python -m pip install -q "torch==${QUANTBENCH_TORCH:-2.13.0}" 2>&1 | grep -v "^WARNING: Location" || true
python -m pip install -q -e ".[test]" 2>&1 | grep -vE "^WARNING: Location|BuildBackendWarning" || true
python -c "import quantbench, torch; print(f'quantbench ready: torch {torch.__version__}')"
