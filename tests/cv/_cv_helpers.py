"""What the cross-validation tests share: a dataset whose samples carry their index, and recorders."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl

from hpo.tracking._base import Tracker

# 60 training samples of 3 unbalanced classes (30/20/10) and 9 validation samples of the dataset's own.
COUNTS = (30, 20, 10)
N_VAL = 9
VAL_OFFSET = 1000  # validation samples carry index 1000 + i: never to be seen while cross-validating


class RecordingTracker(Tracker):
    """Keeps every ``log_metrics`` call: ``[(step, {name: value})]``."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics, step):
        self.steps.append((step, dict(metrics)))


def _indices(batch) -> list[int]:
    """The sample indices a batch carries in each input's first value."""
    x = batch[0]
    return x.reshape(len(x), -1)[:, 0].round().long().tolist()


class SeenBatches(pl.Callback):
    """Per fit (fold): the sample indices of the training and validation batches the model saw."""

    def __init__(self) -> None:
        self.fits: list[dict[str, list[int]]] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        self.fits.append({"train": [], "val": []})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.fits[-1]["train"] += _indices(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.fits[-1]["val"] += _indices(batch)


def labels() -> np.ndarray:
    return np.repeat(np.arange(len(COUNTS)), COUNTS)


def indexed_arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, 8) inputs whose first value is the sample's index, and their :func:`labels`."""
    y = labels()
    x = np.random.default_rng(seed).normal(size=(len(y), 1, 8)).astype(np.float32)
    x[:, 0, 0] = np.arange(len(y))
    return x, y
