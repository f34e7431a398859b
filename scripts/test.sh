#!/usr/bin/env bash
# Add the test extras to .venv (creating it if needed) and run the whole suite.
# Extra arguments go to pytest (e.g. -k expr, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
.venv/bin/python -m pip install --progress-bar off -e '.[all,test]'
exec .venv/bin/python -m pytest -n auto "$@"
