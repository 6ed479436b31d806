"""Fixtures for user-module tests: the tiny models of ``_models`` in either Lightning package."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for _models

from _models import NAMESPACES, load  # noqa: E402



@pytest.fixture(params=NAMESPACES)
def ns(request) -> str:
    """Each test runs once per Lightning package."""
    return request.param


@pytest.fixture
def models(ns, tmp_path):
    """The user's ``models.py`` written for ``ns`` and imported."""
    return load(tmp_path, ns)


@pytest.fixture
def spy(ns):
    """``spy(**hooks)``: a callback of package ``ns`` running the given hook functions."""
    base = importlib.import_module(ns).Callback

    def make(**hooks):
        return type("Spy", (base,), hooks)()

    return make
