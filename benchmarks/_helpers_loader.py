"""tests/_helpers.py for the benchmarks (PostgreSQL starter, trial reader), without tests/ on sys.path:
there, tests/hpo/ would shadow the hpo package."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

_path = Path(__file__).resolve().parents[1] / "tests" / "_helpers.py"
_spec = importlib.util.spec_from_file_location("_hpo_test_helpers", _path)
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)

start_postgres, free_port = _helpers.start_postgres, _helpers.free_port


def load_trials_in(folder: Path, space: str) -> list[Any]:
    """The trials of the study whose space file is ``folder/space`` (read from ``folder``)."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return _helpers.load_trials(folder / space)
    finally:
        os.chdir(cwd)
