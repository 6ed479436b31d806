#!/usr/bin/env bash
# Creates .venv and installs hpo with the exact versions CI uses (constraints.txt).
# torch is installed first, alone, pinned to the CPU build, so nothing pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt "torch==$(grep -E '^torch==' constraints.txt | cut -d= -f3)"
# A .venv from before the rename to hpo-lightning still holds "hpo" (same package, old name).
.venv/bin/python -m pip uninstall --quiet --yes hpo 2>/dev/null || true
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test,bench,docs,quantize,sparsity,grpc,slurm,ray]"
echo "hpo installed in .venv: activate it with  . .venv/bin/activate"
