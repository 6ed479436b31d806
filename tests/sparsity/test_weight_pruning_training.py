"""Weight pruning observed in training: the per-epoch sparsity follows the schedule, masks hold
pruned weights at zero, and best.pt holds the sparse weights made permanent."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from sparsity._mlp import TwoLayers, loaders

from objectives._fit import fit, run_classifier
from objectives._sparsity import prunable_layers
from objectives.techniques import cubic_sparsity

TINY = {"dataset": "digits", "width": 8, "depth": 2, "batch_size": 128, "threads": 1}


def _conv_linear_weights(state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The weights of the built-in ConvNet's Conv and Linear layers (not BatchNorm's) in a state dict."""
    return [v for k, v in state.items() if k.endswith(".weight") and v.ndim >= 2]


def test_sparsity_each_epoch_follows_the_cubic_schedule_and_best_pt_has_it(ctx):
    params = {**TINY, "max_epochs": 6, "prune_amount": 0.8, "prune_schedule": "gradual",
              "prune_start_epoch": 1, "prune_end_epoch": 4}
    result, module = run_classifier("image", params, ctx)

    n = sum(layer.weight.numel() for layer in prunable_layers(module))
    reported = {step: m["sparsity"] for step, m in ctx.tracker.steps}
    assert sorted(reported) == list(range(6))
    for epoch, value in reported.items():
        assert value == pytest.approx(cubic_sparsity(epoch, 0.8, 1, 4), abs=1 / n), epoch
    assert reported[2] < reported[3] < reported[4] == pytest.approx(0.8, abs=1 / n)
    assert result["epoch"] >= 4  # a denser epoch is never the trial's best

    ckpt = torch.load(ctx.workdir / "best.pt", weights_only=True)
    assert not [k for k in ckpt["state_dict"] if k.endswith(("_orig", "_mask"))]
    weights = _conv_linear_weights(ckpt["state_dict"])
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert sum(w.numel() for w in weights) == n
    assert zeros / n == pytest.approx(ckpt["metrics"]["sparsity"]) == pytest.approx(0.8, abs=1 / n)


class ForwardWeights(pl.Callback):
    """Records, for every training forward of ``layer``, the epoch and which weights it ran with as zero."""

    def __init__(self, name: str) -> None:
        self.name, self.seen = name, []

    def on_train_start(self, trainer, pl_module):
        layer = pl_module.get_submodule(self.name)

        def hook(mod, args, output):
            if mod.training and trainer.training:
                self.seen.append((trainer.current_epoch, mod.weight.detach() == 0))
        # After the forward (and so after prune's forward pre-hook): the weight the forward used.
        self.handle = layer.register_forward_hook(hook)

    def on_train_end(self, trainer, pl_module):
        self.handle.remove()


def test_masks_keep_pruned_weights_at_zero_while_training(ctx):
    probe = ForwardWeights("model.classifier")
    params = {**TINY, "max_epochs": 3, "prune_amount": 0.6, "prune_start_epoch": 1, "lr": 0.05}
    run_classifier("image", params, ctx, callbacks=[probe])

    by_epoch = {e: [z for ep, z in probe.seen if ep == e] for e in range(3)}
    assert all(len(v) > 3 for v in by_epoch.values())
    assert not any(bool(z.any()) for z in by_epoch[0])  # dense before prune_start_epoch
    pruned = by_epoch[1][0]
    assert 0 < int(pruned.sum()) < pruned.numel()
    # Every later forward, through optimizer steps with a large LR and an epoch boundary, runs
    # with at least those weights at zero (and, oneshot, with exactly those).
    for zeros in by_epoch[1] + by_epoch[2]:
        assert torch.equal(zeros, pruned)


def test_a_users_module_is_pruned_and_reports_sparsity(ctx):
    module = TwoLayers()
    result = fit(module, loaders(), {"max_epochs": 2, "prune_amount": 0.5}, ctx)
    assert [m["sparsity"] for _, m in ctx.tracker.steps] == [0.5, 0.5]
    assert result["sparsity"] == 0.5
    weights = [module.body[0].weight, module.body[2].weight]
    assert sum(int((w == 0).sum()) for w in weights) == (8 * 32 + 32 * 3) // 2
    assert not [k for k in module.state_dict() if k.endswith(("_orig", "_mask"))]
