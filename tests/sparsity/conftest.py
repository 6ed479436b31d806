"""Fixtures for the weight-pruning tests: a trial context without the driver, recording the metrics."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hpo._context import TrialContext
from hpo.tracking._base import Tracker

optuna.logging.set_verbosity(optuna.logging.WARNING)


class RecordingTracker(Tracker):
    """Keeps every ``log_metrics`` call: ``[(step, {name: value})]``."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics, step):
        self.steps.append((step, dict(metrics)))


@pytest.fixture
def ctx(tmp_path: Path) -> TrialContext:
    """A trial of a fresh in-memory study (maximize val_acc) whose workdir is under ``tmp_path``."""
    trial = optuna.create_study(direction="maximize").ask()
    return TrialContext(trial=trial, params={}, config={}, metrics=("val_acc",), seed=0,
                        workdir=tmp_path / "trial", study_dir=tmp_path, tracker=RecordingTracker())
