"""Cross-validation of a LightningModule of the user's own (``objectives.fit`` with ``cv_folds``)."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from _cv_helpers import COUNTS, SeenBatches, indexed_arrays, labels
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from hpo._keys import CV_FOLD_VALUES
from objectives import fit


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(8, len(COUNTS))

    def forward(self, x):
        return self.layer(x.flatten(1))

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        self.log("val_acc", (self(batch[0]).argmax(-1) == batch[1]).float().mean())


def _loaders(y=None):
    x, labels_ = indexed_arrays()
    y = torch.from_numpy(labels_) if y is None else y
    train = DataLoader(TensorDataset(torch.from_numpy(x), y), batch_size=16)
    val = DataLoader(TensorDataset(torch.full((4, 1, 8), 1000.0), torch.zeros(4, dtype=torch.long)), batch_size=4)
    return train, val


class Pairs(Dataset):
    """A map-style dataset of (input, int label) pairs with no labels attribute."""

    def __init__(self) -> None:
        self.x, self.y = indexed_arrays()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return torch.from_numpy(self.x[i]), int(self.y[i])


class Data(pl.LightningDataModule):
    def train_dataloader(self):
        return _loaders()[0]

    def val_dataloader(self):
        return _loaders()[1]


class OwnLoaders(Net):
    def train_dataloader(self):
        return _loaders()[0]

    def val_dataloader(self):
        return _loaders()[1]


def _module_and_data(kind: str):
    """The forms of training data ``objectives.fit`` takes, all over the same indexed samples."""
    if kind == "pairs":
        return Net(), (DataLoader(Pairs(), batch_size=16), _loaders()[1])
    if kind == "datamodule":
        return Net(), Data()
    if kind == "own loaders":
        return OwnLoaders(), None
    return Net(), _loaders()


@pytest.mark.parametrize("kind", ["tensors", "pairs", "datamodule", "own loaders"])
def test_a_users_module_trains_one_copy_per_stratified_fold_of_its_training_dataset(kind, make_ctx):
    module, data = _module_and_data(kind)
    ctx, seen = make_ctx(), SeenBatches()
    result = fit(module, data, {"cv_folds": 3, "max_epochs": 2}, ctx, callbacks=[seen])

    assert len(seen.fits) == 3
    everything = set(range(sum(COUNTS)))
    held = [set(f["val"]) for f in seen.fits]
    assert set().union(*held) == everything and sum(map(len, held)) == len(everything)
    y = labels()
    for fold in seen.fits:
        assert set(fold["train"]) == everything - set(fold["val"])  # 1000: the val loader, never used
        assert np.bincount(y[sorted(set(fold["val"]))], minlength=3) == pytest.approx(np.array(COUNTS) / 3, abs=1)
    assert result["val_acc"] == pytest.approx(np.mean(ctx.trial.user_attrs[CV_FOLD_VALUES]))


def test_labels_that_are_not_integers_are_refused_with_the_contract(make_ctx):
    train, val = _loaders(y=torch.rand(sum(COUNTS)))
    with pytest.raises(ValueError, match=r"^cv_folds: cross-validation of your own module needs .* integer label"):
        fit(Net(), (train, val), {"cv_folds": 3, "max_epochs": 1}, make_ctx())
