#!/usr/bin/env bash
# Create .venv, install nablab with everything the full report uses (the `all` extra, and
# the pinned PyTorch it cross-checks against: the `torch` extra), and write report/.
# Extra arguments go to `nablab reproduce` (e.g. --quick, --only ID).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
.venv/bin/python -m pip install --progress-bar off -e '.[all,torch]'
.venv/bin/nablab reproduce --out report/ "$@"
