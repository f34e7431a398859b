#!/usr/bin/env bash
# Add the test extras to .venv (creating it if needed) and run the whole suite.
# Extra arguments go to pytest (e.g. -k expr, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
.venv/bin/python -m pip install --progress-bar off -e '.[all,test]'
# One BLAS/OpenMP thread per pytest worker: -n auto already runs a process per core,
# and multi-threaded BLAS inside each one oversubscribes the cores.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
exec .venv/bin/python -m pytest -n auto "$@"
