#!/usr/bin/env bash
# Run HERE (a machine that reaches the package registries) before a GPU check on a machine that reaches
# nothing: downloads the wheels the cuda runtime needs beyond torch (torchao) into .whl/ (git-ignored),
# for the GPU machine's Python (default 3.12; torchao 0.18 needs torch >= 2.11 there).
# Usage: benchmarks/gpu_wheels.sh [python-version]      Then carry .whl to the GPU machine and run
# benchmarks/gpu_check.sh there: it installs .whl/*.whl into a private folder first.
set -euo pipefail
cd "$(dirname "$0")/.."
python_version=${1:-3.12}
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$p")
done
mkdir -p .whl
python -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
    "${platforms[@]}" -d .whl "torchao==0.18.0"
ls -l .whl
