"""The distribution name and `hpo --version`: the version pip installed, read from its metadata."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

import hpo
from hpo.cli import build_parser

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_distribution_name_is_the_one_pyproject_declares_and_not_the_taken_hpo():
    name = tomllib.loads(PYPROJECT.read_text())["project"]["name"]
    assert name == hpo.DIST_NAME
    assert name != "hpo"  # "hpo" on the package registry is an unrelated project


def test_version_reports_the_installed_distributions_metadata(monkeypatch, capsys):
    asked = []

    def fake_version(name: str) -> str:
        asked.append(name)
        return "7.8.9"

    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    assert hpo.__version__ == "7.8.9"
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == "hpo 7.8.9"
    assert set(asked) == {"hpo-lightning"}


def test_a_source_tree_that_is_not_installed_says_so(monkeypatch):
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert hpo.__version__ == "0+unknown"
