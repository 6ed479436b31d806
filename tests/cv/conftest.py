"""Fixtures for the cross-validation tests: a tiny npz dataset whose samples carry their index and
a trial context without the driver (recorders in ``_cv_helpers``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from hpo._context import TrialContext

sys.path.insert(0, str(Path(__file__).parent))  # for _cv_helpers
from _cv_helpers import COUNTS, N_VAL, VAL_OFFSET, RecordingTracker, indexed_arrays  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def indexed_npz(tmp_path: Path) -> str:
    """``npz:PATH`` of (N, 1, 8) sequences whose first value is the sample's index."""
    x, y = indexed_arrays()
    x_val = np.random.default_rng(1).normal(size=(N_VAL, 1, 8)).astype(np.float32)
    x_val[:, 0, 0] = VAL_OFFSET + np.arange(N_VAL)
    path = tmp_path / "indexed.npz"
    np.savez(path, x=x, y=y, x_val=x_val, y_val=np.arange(N_VAL) % len(COUNTS))
    return f"npz:{path}"


@pytest.fixture
def params(indexed_npz: str) -> dict:
    """A tiny sequence_classifier config with 3 folds (one batch per epoch: batch_size > fold size)."""
    return {"dataset": indexed_npz, "cv_folds": 3, "max_epochs": 2, "width": 4, "depth": 1,
            "batch_size": 64, "lr": 0.01}


@pytest.fixture
def make_ctx(tmp_path: Path):
    """``make_ctx(pruner=None, seed=0)``: a context on a fresh in-memory study maximising val_acc."""

    def make(*, pruner=None, seed=0) -> TrialContext:
        study = optuna.create_study(direction="maximize", pruner=pruner or optuna.pruners.NopPruner())
        trial = study.ask()
        return TrialContext(trial=trial, params={}, config={}, metrics=("val_acc",), seed=seed,
                            workdir=tmp_path / f"trial-{trial.number}", study_dir=tmp_path,
                            tracker=RecordingTracker())

    return make
