"""scikit-learn's 8x8 digits as a LightningDataModule (bundled data: no download)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset


class DigitsDataModule(L.LightningDataModule):
    """1797 digits as ``(1, 8, 8)`` float images; ``val_fraction`` of them held out (fixed seed).

    Example:
        >>> dm = DigitsDataModule(batch_size=32)
        >>> dm.setup("fit")
        >>> next(iter(dm.train_dataloader()))[0].shape
        torch.Size([32, 1, 8, 8])
    """

    def __init__(self, batch_size: int = 64, val_fraction: float = 0.2, seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.val_fraction, self.seed = batch_size, val_fraction, seed
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.from_numpy((digits.images.astype(np.float32) / 16.0 - 0.3) / 0.4).unsqueeze(1)
        y = torch.from_numpy(digits.target.astype(np.int64))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        n_val = int(round(len(x) * self.val_fraction))
        val, train = order[:n_val], order[n_val:]
        self.train_set, self.val_set = TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])

    def train_dataloader(self) -> DataLoader:
        # drop_last: BatchNorm cannot train on a last batch of one sample.
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=512)
