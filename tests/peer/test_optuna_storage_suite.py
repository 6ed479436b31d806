"""Optuna's own storage tests (from its sdist), run on hpo's journal backend and on PostgreSQL:
``scripts/optuna-peer-tests.sh`` in a subprocess. Needs the package registry once, to download the
pinned Optuna sdist into .cache/optuna-peer/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # Optuna's suite, ~30 s
def test_optuna_storage_suite_passes_on_hpo_storages(postgres_server):
    env = {**os.environ, "PYTHON": sys.executable, "HPO_PEER_POSTGRES_URL": postgres_server()}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "optuna-peer-tests.sh"), "-rfE"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    failing = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert done.returncode == 0 and not failing, "Optuna's storage tests failed on hpo's storages:\n" + (
        "\n".join(failing) or output[-3000:])
    built = re.search(r"hpo storages built: journal=(\d+) postgresql=(\d+)", output)
    assert built and int(built[1]) >= 59 and int(built[2]) >= 59, output[-2000:]
    assert int(re.search(r"(\d+) passed", output)[1]) >= 118, output[-2000:]
