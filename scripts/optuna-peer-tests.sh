#!/usr/bin/env bash
# Optuna's own storage test suite, run against hpo's storages (the "peer" suite).
#
#   bash scripts/optuna-peer-tests.sh [PYTEST ARGS...]
#
# Downloads the sdist of the Optuna version pinned in constraints.txt once (into
# .cache/optuna-peer/, which git ignores), extracts its tests/, and runs
# tests/storages_tests/test_storages.py with tests/peer/hpo_peer_plugin.py, which makes every
# journal file storage of the suite hpo's (hpo._journal.HpoJournalBackend). With
# HPO_PEER_POSTGRES_URL=postgresql://... set, the suite's cached_sqlite cases (the RDB storage as Optuna
# wraps it for a study) run on a fresh PostgreSQL database each instead.
#
# Environment: PYTHON (default .venv/bin/python, else python3).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
version="$(sed -n 's/^optuna==\([^ ;]*\).*/\1/p' constraints.txt)"
[ -n "$version" ] || { echo "optuna-peer-tests: no optuna==VERSION pin in constraints.txt" >&2; exit 2; }
cache="$root/.cache/optuna-peer"
suite="$cache/$version"
if [ ! -f "$suite/tests/storages_tests/test_storages.py" ]; then
  mkdir -p "$cache"
  if [ ! -f "$cache/optuna-$version.tar.gz" ]; then
    "$python" -m pip download --quiet --no-deps --no-binary :all: "optuna==$version" -d "$cache"
  fi
  rm -rf "$suite.tmp" && mkdir -p "$suite.tmp"
  # Only tests/: the sdist's optuna/ must not shadow the installed package.
  tar -xzf "$cache/optuna-$version.tar.gz" -C "$suite.tmp" --strip-components=1 "optuna-$version/tests"
  printf '[pytest]\nfilterwarnings =\n    ignore::optuna.exceptions.ExperimentalWarning\n' > "$suite.tmp/pytest.ini"
  rm -rf "$suite" && mv "$suite.tmp" "$suite"
fi
selection="journal and not redis and not grpc"
if [ -n "${HPO_PEER_POSTGRES_URL:-}" ]; then
  selection="($selection) or cached_sqlite"  # what hpo uses: Optuna wraps every RDBStorage in a cache
fi
cd "$suite"
export PYTHONPATH="$root:$root/tests/peer${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m pytest -p hpo_peer_plugin -p no:cacheprovider -c "$suite/pytest.ini" --rootdir "$suite" \
  tests/storages_tests/test_storages.py -k "$selection" -q "$@"
