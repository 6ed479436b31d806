"""A module study (``objective: {module: ..., data: ...}``) with ``cv_folds``: run through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import base_space, load_trials

from hpo._keys import CV_FOLD_VALUES, FAIL_REASON

MODELS_PY = '''
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset
import pytorch_lightning as L

X = torch.randn(48, 8, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


class Net(L.LightningModule):
    def __init__(self, hidden=4):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self.net(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        self.log("val_acc", (self.net(batch[0]).argmax(-1) == batch[1]).float().mean())


def tensors(batch_size=16):
    data = TensorDataset(X, Y)
    return DataLoader(data, batch_size=batch_size), DataLoader(data, batch_size=48)


class Stream(IterableDataset):
    def __iter__(self):
        return iter(zip(X, Y))


def stream(batch_size=16):
    return DataLoader(Stream(), batch_size=batch_size), DataLoader(TensorDataset(X, Y), batch_size=48)
'''


def _space(data: str) -> dict:
    return base_space(
        study={"direction": "maximize", "metric": "val_acc", "n_trials": 2, "seed": 0},
        objective={"module": "models.py:Net", "data": f"models.py:{data}",
                   "fixed": {"max_epochs": 1, "threads": 1, "cv_folds": 2}},
        space={"hidden": {"type": "categorical", "choices": [4, 8]}},
    )


def test_a_module_study_cross_validates_its_training_loader(workdir, write_space, cli):
    (workdir / "models.py").write_text(MODELS_PY)
    path = write_space(_space("tensors"))
    code, out, err = cli("run", path)
    assert code == 0, out + err
    trials = load_trials(path)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        assert len(trial.user_attrs[CV_FOLD_VALUES]) == 2
        assert trial.value == pytest.approx(np.mean(trial.user_attrs[CV_FOLD_VALUES]))


def test_a_training_loader_hpo_cannot_split_fails_the_trial_with_the_contract(workdir, write_space, cli):
    (workdir / "models.py").write_text(MODELS_PY)
    path = write_space(_space("stream"))
    cli("run", path, "--n-trials", "1")
    (trial,) = load_trials(path)
    assert trial.state.name == "FAIL"
    assert "cv_folds: cross-validation of your own module needs a training DataLoader" in trial.user_attrs[FAIL_REASON]
    assert "over Stream" in trial.user_attrs[FAIL_REASON]


def test_one_fold_in_a_module_study_is_exit_2_at_validate(workdir, write_space, cli):
    (workdir / "models.py").write_text(MODELS_PY)
    doc = _space("tensors")
    doc["objective"]["fixed"]["cv_folds"] = 1
    code, out, err = cli("validate", write_space(doc))
    assert code == 2
    assert "objective.fixed.cv_folds: must be >= 2 (0 turns cross-validation off), got 1" in err
