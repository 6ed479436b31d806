#!/usr/bin/env bash
# The test suite (CPU, offline). Extra arguments go to pytest.
#
#   bash scripts/test.sh                   # everything, as CI runs it (.ci/run)
#   bash scripts/test.sh -m "not slow"     # the quick run: a few minutes; leaves out the tests marked slow
#   bash scripts/test.sh -m slow           # only the long tests: chaos, 200-trial PostgreSQL, browser and
#                                          # MLflow UI tests, whole Lightning studies, the built-wheel install
#   HPO_TEST_WORKERS=0 bash scripts/test.sh  # in this one process (default: one per core, at most 4,
#                                          # with pytest-xdist). Each process has its own session fixtures
#                                          # (PostgreSQL, Chromium) and its own end-of-session check for
#                                          # processes left running.
#
# A test is marked slow (@pytest.mark.slow) when it takes about 10 s or more on a 2-core machine
# (find them with --durations=40). The built-wheel install (tests/package/test_wheel_smoke.py, which
# runs scripts/wheel-smoke.sh) needs the package registry for the build's setuptools and the venv's
# packages unless pip's cache already holds them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
# One pytest process per core, at most 4 (each starts its own PostgreSQL and Chromium).
workers="${HPO_TEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}"
exec .venv/bin/python -m pytest -n "$workers" --dist worksteal "$@"
