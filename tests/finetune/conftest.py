"""Fixtures for the fine-tuning tests: a tiny user module in either Lightning package, a spy callback."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for _net

from _net import NAMESPACES, load  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep generated datasets out of the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.fixture(params=NAMESPACES)
def net(request, tmp_path):
    """The module ``_net.NET_PY`` written for each Lightning package (``net.NS``) and imported."""
    return load(tmp_path, request.param)


@pytest.fixture
def pl_net(tmp_path):
    """``_net.NET_PY`` for pytorch_lightning only (tests that need one package)."""
    return load(tmp_path, "pytorch_lightning")


@pytest.fixture
def spy():
    """``spy(ns, **hooks)``: a callback of package ``ns`` running the given hook functions."""
    def make(ns: str = "pytorch_lightning", **hooks):
        return type("Spy", (importlib.import_module(ns).Callback,), hooks)()

    return make
