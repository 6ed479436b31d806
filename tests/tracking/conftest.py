"""Fixtures for the MLflow tracker tests: a scratch SQLite store, a study description, helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> dict[str, Any]:
    """A fresh MLflow SQLite store (not yet created on disk) and its artifacts folder."""
    runs = tmp_path / "hpo-runs"
    return {
        "uri": "sqlite:///" + (runs / "mlflow.db").as_posix(),
        "artifacts": runs / "mlflow-artifacts",
        "runs_dir": runs,
    }


def make_study_info(name: str = "demo", space_file: Path | None = None, **extra: Any) -> dict[str, Any]:
    info = {
        "study_name": name,
        "experiment": None,
        "sampler": "TPESampler",
        "pruner": "MedianPruner",
        "objective": "objs:train",
        "space_file": str(space_file) if space_file else None,
        "space_sha256": "ab" * 32,
        "git_sha": "0123456789abcdef0123456789abcdef01234567",
        "hpo_version": "0.1.0",
        "metrics": ["val_acc"],
        "directions": ["maximize"],
    }
    info.update(extra)
    return info


@pytest.fixture
def study_info(tmp_path: Path) -> dict[str, Any]:
    space = tmp_path / "space.yaml"
    space.write_text("study: {name: demo}\nspace: {lr: {type: float, low: 0.001, high: 0.1}}\n")
    return make_study_info(space_file=space)


def subprocess_env() -> dict[str, str]:
    """The environment for helper processes: the repository importable, no stray MLflow settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
        cwd=str(REPO),
    )


def popen_python(code: str, *args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=str(REPO),
        **kw,
    )


@pytest.fixture(scope="session")
def tk() -> SimpleNamespace:
    """Helpers for the tracking tests (a conftest is not importable by name next to tests/conftest.py)."""
    return SimpleNamespace(
        make_study_info=make_study_info,
        run_python=run_python,
        popen_python=popen_python,
        subprocess_env=subprocess_env,
        repo=REPO,
    )
