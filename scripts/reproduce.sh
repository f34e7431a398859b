#!/usr/bin/env bash
# Create .venv, install nablab with the extras the report needs, and write report/.
# Extra arguments go to `nablab reproduce` (e.g. --quick, --only ID).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
.venv/bin/python -m pip install --progress-bar off -e '.[all]'
.venv/bin/nablab reproduce --out report/ "$@"
