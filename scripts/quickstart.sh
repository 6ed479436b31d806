#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, then run the quick-start study.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/hpo run search_spaces/quickstart.yaml "$@"
