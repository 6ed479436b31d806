"""A user's ``lightning.pytorch`` module under two-process DDP on CPU, with a stack knob that
rewrites its batches (the built-ins cover ``pytorch_lightning`` DDP in tests/objectives)."""

from __future__ import annotations

import optuna
import torch

import objectives
from _models import load
from hpo._context import TrialContext
from hpo.tracking._base import Tracker


def test_user_module_trains_under_ddp_with_the_stack(tmp_path):
    models = load(tmp_path, "lightning.pytorch")
    study = optuna.create_study(direction="maximize")
    config = {"max_epochs": 1, "devices": 2, "strategy": "ddp", "hflip": 1.0, "threads": 1, "lr": 0.01}
    ctx = TrialContext(study.ask(), config, config, ("val_acc",), 0, tmp_path / "trial", tmp_path, Tracker())
    net = models.Net()
    result = objectives.fit(net, models.Data(16), config, ctx)
    assert 0 <= result["val_acc"] <= 1
    (rank1,) = ctx.trial.user_attrs["ddp_ranks"]
    assert rank1["status"] == "complete" and rank1["returncode"] == 0
    seen = torch.cat(net.seen)
    assert len(seen) == 48  # rank 0's half of the 96 samples
    x, _ = models.make_arrays()
    flipped = {tuple(r.tolist()) for r in x.flip(-1).flatten(1)}
    assert all(tuple(r.tolist()) in flipped for r in seen.flatten(1))
