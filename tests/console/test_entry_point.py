"""The `hpo` process entry: main's exit code, then a fast exit (the objects it loaded frozen, so the
interpreter's last garbage collections skip them; benchmarks/mlflow_fixed_cost.py measures it)."""

import gc
import tomllib
from pathlib import Path

import hpo.cli

ROOT = Path(__file__).resolve().parents[2]


def test_entry_point_returns_mains_code_and_freezes_the_heap(monkeypatch):
    monkeypatch.setattr(hpo.cli, "main", lambda argv=None: 3)
    assert gc.get_freeze_count() == 0
    try:
        assert hpo.cli.entry_point() == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_console_script_and_python_m_hpo_use_the_entry_point():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["hpo"] == "hpo.cli:entry_point"
    assert "sys.exit(entry_point())" in (ROOT / "hpo" / "__main__.py").read_text()
