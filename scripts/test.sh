#!/usr/bin/env bash
# Add the test extras to .venv (creating it if needed) and run the whole suite.
# Extra arguments go to pytest (e.g. -k expr, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
.venv/bin/python -m pip install --progress-bar off -e '.[all,test]'
# The report's browser test needs Chromium. In CI (CI set, running as root) install Debian's
# package when it is missing; elsewhere never change the machine: the test skips and says why.
if ! command -v chromium >/dev/null 2>&1 && [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the report's browser test (CI)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
        || echo "warning: could not install chromium; the browser test will be skipped"
fi
# One BLAS/OpenMP thread per pytest worker: -n auto already runs a process per core,
# and multi-threaded BLAS inside each one oversubscribes the cores.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
exec .venv/bin/python -m pytest -n auto "$@"
