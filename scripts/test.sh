#!/usr/bin/env bash
# The test suite (CPU, offline). Extra arguments go to pytest, e.g. `-m slow` for the long tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
exec .venv/bin/python -m pytest "$@"
