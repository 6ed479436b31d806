"""The built wheel, installed into a clean venv, runs a study and load_best outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_built_wheel_installs_and_runs_a_study_outside_the_repository(tmp_path):
    # The script builds the wheel and sdist, checks the wheel's packages, installs the wheel (with
    # torch and constraints.txt) into a fresh venv, checks `hpo --version`, runs a study, load_best.
    # Its venv (torch included) lives in a temporary folder the script removes at the end.
    out = subprocess.run(["bash", str(ROOT / "scripts" / "wheel-smoke.sh")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=1500, env={**os.environ, "PYTHON": sys.executable})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    lines = out.stdout.splitlines()
    assert "wheel-smoke: ok" in lines
    installed = next(line for line in lines if line.startswith("wheel-smoke: load_best -> lr="))
    assert str(ROOT) not in installed  # hpo came from the venv, not this source tree
