"""Tiny user modules for the module-study tests, in either Lightning package.

``MODELS_PY`` is a user's ``models.py`` with ``{ns}`` standing for the package
(``pytorch_lightning`` or ``lightning.pytorch``); :func:`load` writes and imports it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

NAMESPACES = ("pytorch_lightning", "lightning.pytorch")

MODELS_PY = '''
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import {ns} as L


def make_arrays(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, generator=g)
    y = (x[:, 0, :4].sum(-1) > 0).long() + (x[:, 0, 4:].sum(-1) > 1).long()
    return x, y


class Net(L.LightningModule):
    """(N, 1, 8) -> 3 logits; records what training saw (inputs, autocast) for the tests."""

    def __init__(self, hidden=8, num_classes=3):
        super().__init__()
        self.body = nn.Linear(8, hidden)
        self.classifier = nn.Linear(hidden, num_classes)
        self.seen = []
        self.autocast = []
        self.steps_run = 0

    def forward(self, x):
        if self.training:
            self.seen.append(x.detach().clone())
            self.autocast.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return self.classifier(torch.relu(self.body(x.flatten(1))))

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.steps_run += 1
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())


class OwnOptimizer(Net):
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class FactoryHook(Net):
    def configure_optimizers(self, optimizer_factory):
        return optimizer_factory()


class HeadFirst(Net):
    """The output layer is registered before the hidden one: registration order misleads."""

    def __init__(self, hidden=8, num_classes=3):
        L.LightningModule.__init__(self)
        self.head = nn.Linear(hidden, num_classes)
        self.encoder = nn.Linear(8, hidden)
        self.seen, self.autocast, self.steps_run = [], [], 0

    def forward(self, x):
        return self.head(torch.relu(self.encoder(x.flatten(1))))


class ConvHead(Net):
    """A 1x1 conv is the output layer; a Linear runs first."""

    def __init__(self, hidden=8, num_classes=3):
        L.LightningModule.__init__(self)
        self.stem = nn.Linear(8, 8)
        self.out = nn.Conv1d(1, num_classes, 1)
        self.seen, self.autocast, self.steps_run = [], [], 0

    def forward(self, x):
        return self.out(torch.relu(self.stem(x))).mean(-1)


class WithCriterion(Net):
    def __init__(self, hidden=8, num_classes=3, smoothing=0.0):
        super().__init__(hidden, num_classes)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=smoothing)
        self.criterion_calls = []

    def on_fit_start(self):
        crit = self.criterion
        def spy(logits, target):
            self.criterion_calls.append(target.detach().clone())
            return nn.CrossEntropyLoss.forward(crit, logits, target)
        crit.forward = spy


class NeedsWidth(Net):
    def __init__(self, width, num_classes=3):
        super().__init__(width, num_classes)


class NeedsLr(Net):
    def __init__(self, lr, hidden=8):
        super().__init__(hidden)
        self.lr = lr


class DictBatches(Net):
    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self(batch["x"]), batch["y"])


class Data(L.LightningDataModule):
    def __init__(self, batch_size=32, n=96):
        super().__init__()
        self.batch_size, self.n = batch_size, n

    def setup(self, stage=None):
        self.x, self.y = make_arrays(self.n)

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=len(self.x))


def loaders(batch_size=32, n=96):
    x, y = make_arrays(n)
    return (DataLoader(TensorDataset(x, y), batch_size=batch_size),
            DataLoader(TensorDataset(x, y), batch_size=len(x)))


class _DictSet(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        return {{"x": self.x[i], "y": self.y[i]}}


def dict_loaders(batch_size=32):
    x, y = make_arrays()
    return DataLoader(_DictSet(x, y), batch_size=batch_size), None


def function_objective(params, ctx):
    return Net(hidden=params["hidden"]), loaders(params["batch_size"])
'''


def write(folder: Path, ns: str, name: str = "models") -> Path:
    path = folder / f"{name}.py"
    path.write_text(MODELS_PY.format(ns=ns))
    return path


def load(folder: Path, ns: str) -> ModuleType:
    """Writes ``models_<ns>.py`` into ``folder`` and imports it."""
    import importlib.util
    import sys

    name = "models_" + ns.replace(".", "_")
    path = write(folder, ns, name)
    spec = importlib.util.spec_from_file_location(f"{name}_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
