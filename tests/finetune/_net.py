"""A user's LightningModule for the fine-tuning tests (``{ns}``: the Lightning package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

NAMESPACES = ("pytorch_lightning", "lightning.pytorch")

NET_PY = '''
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import {ns} as L

NS = "{ns}"


def loaders(n=64, batch_size=16, num_classes=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = torch.arange(n) % num_classes
    return DataLoader(TensorDataset(x, y), batch_size=batch_size), DataLoader(TensorDataset(x, y), batch_size=n)


class Net(L.LightningModule):
    """body -> mid -> classifier; the classifier is registered first: only a forward pass says it is last."""

    def __init__(self, hidden=8, num_classes=3):
        super().__init__()
        self.classifier = nn.Linear(hidden, num_classes)
        self.body = nn.Linear(8, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.mid = nn.Linear(hidden, hidden)
        self.example_input_array = torch.zeros(2, 8)

    def forward(self, x):
        return self.classifier(torch.relu(self.mid(self.norm(torch.relu(self.body(x))))))

    def _loss_and_accuracy(self, batch):
        logits = self(batch[0])
        return F.cross_entropy(logits, batch[1]), (logits.argmax(-1) == batch[1]).float().mean()

    def training_step(self, batch, batch_idx):
        return self._loss_and_accuracy(batch)[0]

    def validation_step(self, batch, batch_idx):
        loss, accuracy = self._loss_and_accuracy(batch)
        self.log_dict({{"val_loss": loss, "val_acc": accuracy}})


class OwnOptimizer(Net):
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class TrainableOnly(Net):
    """Gives hpo's optimizer only the parameters trainable when it is built."""

    def configure_optimizers(self, optimizer_factory):
        return optimizer_factory([p for p in self.parameters() if p.requires_grad])
'''


def load(folder: Path, ns: str) -> ModuleType:
    name = "ftnet_" + ns.replace(".", "_")
    path = folder / f"{name}.py"
    path.write_text(NET_PY.format(ns=ns))
    spec = importlib.util.spec_from_file_location(f"{name}_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
