#!/usr/bin/env bash
# One command for the load balancer benchmark: bash benchmarks/lb/run.sh [--seconds N]
# Installs what it needs if missing (nginx and wrk from Debian, SkyPilot in its own venv under
# benchmarks/lb/.venv, the project env via `make env`), then runs bench.py.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"

[ -x "$REPO/.venv/bin/python" ] || make -C "$REPO" env
if ! "$HERE/.venv/bin/python" -c "import sky.serve.load_balancer" 2>/dev/null; then
  python3 -m venv "$HERE/.venv"
  "$HERE/.venv/bin/pip" install -q skypilot
fi
exec "$REPO/.venv/bin/python" "$HERE/bench.py" --sky-python "$HERE/.venv/bin/python" "$@"
