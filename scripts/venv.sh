#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and install mlsensors
# into it with the extras named in $1 (comma-separated). Re-installs only when
# pyproject.toml or the extras change. Used by run.sh and test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-}"
py=""
for cand in python3.11 python3 python; do
  if command -v "$cand" >/dev/null 2>&1 &&
     "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    py="$cand"; break
  fi
done
[ -n "$py" ] || { echo "mlsensors: Python 3.11 or newer is needed" >&2; exit 1; }
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "mlsensors: creating $venv" >&2
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
fi
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-$extras"
stamp="$venv/.setup-stamp"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "mlsensors: installing into $venv" >&2
  spec="$root"
  [ -z "$extras" ] || spec="$root[$extras]"
  # pip's output goes to stderr: `./run.sh --json` prints results only on stdout
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" >&2
  echo "$want" > "$stamp"
fi
