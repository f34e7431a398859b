# Sourced by scripts/reproduce.sh and scripts/test.sh: make sure ./.venv exists.
# Debian splits `venv` into the python3-venv package; install it when we can (root + apt).
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "'$PY -m venv' failed; installing Debian's python3-venv and retrying" >&2
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
      "$PY" -m venv .venv
    else
      echo "error: '$PY -m venv' failed; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
fi
