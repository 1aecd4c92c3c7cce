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
# gptqmodel (transformers' GPTQ loader, used by the export tests on CPU) pins torch>=2.14.1: install it without its
# dependencies (those it imports come with the [export] extra), so the CPU torch above stays.
python -m pip install -q --no-deps "gptqmodel==${QUANTBENCH_GPTQMODEL:-7.7.0}" 2>&1 | grep -vE "^WARNING: Location" || true
python -c "import torch; v = torch.__version__; assert v.startswith('${QUANTBENCH_TORCH:-2.13.0}'), f'torch became {v}'"
log=$(python -c "import gptqmodel, optimum.gptq, compressed_tensors, lm_eval, pandas" 2>&1) \
    || { echo "$log" | tail -5; echo "setup: the export/lm-eval test dependencies do not import" >&2; exit 1; }
python -c "import quantbench, torch; print(f'quantbench ready: torch {torch.__version__}')"
