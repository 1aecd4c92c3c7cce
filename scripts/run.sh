#!/usr/bin/env bash
# Set up (if needed) and run the default comparison; extra arguments go to 'quantbench compare'.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate
quantbench compare --out quantbench-results "$@"
