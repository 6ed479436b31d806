"""Fixtures for the built-in objectives' tests: a trial context without the driver."""

from __future__ import annotations

import itertools
from pathlib import Path

import optuna
import pytest

from hpo._context import TrialContext
from hpo.tracking._base import Tracker

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Small enough for a few seconds per trial on 2 CPU cores.
TINY = {"dataset": "digits", "max_epochs": 2, "width": 8, "depth": 2, "batch_size": 64}


class RecordingTracker(Tracker):
    """Keeps every ``log_metrics`` call: ``[(step, {name: value})]``."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics, step):
        self.steps.append((step, dict(metrics)))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep the mnist1d cache and teacher fallbacks out of the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.fixture
def make_ctx(tmp_path: Path):
    """``make_ctx(params, study=None, metric="val_acc", direction="maximize", pruner=None)``."""
    counter = itertools.count()

    def make(params, study=None, *, metric="val_acc", direction="maximize", pruner=None, seed=0):
        if study is None:
            study = optuna.create_study(direction=direction, pruner=pruner or optuna.pruners.NopPruner())
        trial = study.ask()
        workdir = tmp_path / f"trial-{trial.number}-{next(counter)}"
        return TrialContext(
            trial=trial,
            params=dict(params),
            config=dict(params),
            metrics=(metric,),
            seed=seed,
            workdir=workdir,
            study_dir=tmp_path,
            tracker=RecordingTracker(),
        )

    return make


@pytest.fixture
def tiny() -> dict:
    """A copy of ``TINY``: digits, 2 epochs, width 8."""
    return dict(TINY)
