"""A ``file.py:Name`` reference loads the file once, as the module the user imports by name when
that name finds the same file: classes hpo builds (``load_best(...).instantiate()``) are the user's
own classes, whichever of the two imports came first."""

from __future__ import annotations

import sys

import pytest

from hpo._objective import load_checked

SOURCE = "class Net:\n    pass\n"


@pytest.fixture
def models(tmp_path, monkeypatch):
    """``<tmp>/idmodels_<test>.py`` with its folder on sys.path; the module's name."""
    name = f"idmodels_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path, name
    sys.modules.pop(name, None)


def test_the_users_import_first_then_hpos_gives_one_class(models):
    import importlib

    folder, name = models
    users = importlib.import_module(name)
    assert load_checked(f"{name}.py:Net", folder) is users.Net


def test_hpos_load_first_then_the_users_import_gives_one_class(models):
    import importlib

    folder, name = models
    loaded = load_checked(f"{name}.py:Net", folder)
    assert importlib.import_module(name).Net is loaded


def test_a_file_whose_name_finds_another_module_is_loaded_on_its_own(tmp_path, monkeypatch):
    """``json.py`` of the user's is not the standard library's json (nor replaces it)."""
    import json

    (tmp_path / "json.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_checked("json.py:Net", tmp_path).__module__ != "json"
    assert sys.modules["json"] is json and not hasattr(json, "Net")


def test_a_file_imports_the_files_beside_it_from_any_folder(tmp_path, monkeypatch):
    """``models.py`` doing ``from helpers import mlp`` loads as ``python models.py`` would."""
    project = tmp_path / "project"
    project.mkdir()
    name = f"sibmodels_{abs(hash(str(tmp_path)))}"
    helper = f"sibhelpers_{abs(hash(str(tmp_path)))}"
    (project / f"{helper}.py").write_text("WIDTH = 7\n")
    (project / f"{name}.py").write_text(f"from {helper} import WIDTH\n\nclass Net:\n    width = WIDTH\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        net = load_checked(f"../project/{name}.py:Net", elsewhere)
        assert net.width == 7 and net.__module__ == name  # its own name: picklable, the user's class
    finally:
        for module in (name, helper):
            sys.modules.pop(module, None)
