#!/usr/bin/env bash
# Run the sensor on its default source: the camera if there is one, else the built-in
# demo. Sets up .venv and fetches the pinned models on first use. Extra arguments go to
# `mlsensors person run` (e.g. ./run.sh --frames 50 --json).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/venv.sh" all
exec "$root/.venv/bin/mlsensors" person run "$@"
