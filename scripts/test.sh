#!/usr/bin/env bash
# The test suite (CPU, offline). Extra arguments go to pytest.
#
#   bash scripts/test.sh                   # everything, as CI runs it (.ci/run)
#   bash scripts/test.sh -m "not slow"     # the quick run: a few minutes; leaves out the tests marked slow
#   bash scripts/test.sh -m slow           # only the long tests: chaos, 200-trial PostgreSQL, browser and
#                                          # MLflow UI tests, whole Lightning studies, the built-wheel install
#   HPO_TEST_WORKERS=2 bash scripts/test.sh  # in 2 processes (pytest-xdist's -n 2; "auto": one per core).
#                                          # Each has its own session fixtures (PostgreSQL, Chromium) and
#                                          # its own end-of-session check for processes left running.
#
# A test is marked slow (@pytest.mark.slow) when it takes about 10 s or more on a 2-core machine
# (find them with --durations=40). The built-wheel install (tests/package/test_wheel_smoke.py, which
# runs scripts/wheel-smoke.sh) needs the package registry for the build's setuptools and the venv's
# packages unless pip's cache already holds them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
workers=()
[ -z "${HPO_TEST_WORKERS:-}" ] || workers=(-n "$HPO_TEST_WORKERS" --dist worksteal)
exec .venv/bin/python -m pytest "${workers[@]}" "$@"
