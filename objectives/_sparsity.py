"""The weight-pruning callback: magnitude pruning of a LightningModule's Conv/Linear weights on the
schedule of the ``prune_*`` knobs (``objectives.techniques.sparsity`` holds the maths).

Masks go on with ``torch.nn.utils.prune`` (``custom_from_mask``): during training the module's
``weight`` is ``weight_orig * weight_mask``, so a pruned weight stays zero whatever the optimizer
does to ``weight_orig``. At the end of each epoch, before ``BestWeights`` copies the state dict
(this callback comes first in ``objectives._trainer._callbacks``), ``prune.remove`` makes the masks
permanent: the state dict, and so ``best.pt``, holds plain ``weight`` tensors with their zeros and
no ``weight_orig``/``weight_mask``. The next epoch puts the masks back on.

"Weight pruning" is unrelated to Optuna's pruning of trials (``PruningCallback``).
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.utils import prune

from objectives._callbacks import _EpochOnce
from objectives._config import TrainConfig, final_prune_epoch
from objectives.techniques import sparsity as S

if TYPE_CHECKING:
    import pytorch_lightning as pl

METRIC = "sparsity"
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def prunable_layers(module: nn.Module) -> list[nn.Module]:
    """The Conv/Linear layers of ``module`` with a weight, in registration order."""
    return [m for m in module.modules() if isinstance(m, PRUNABLE) and isinstance(m.weight, torch.Tensor)]


class _WeightPruning(_EpochOnce):
    """Sets the schedule's sparsity at the start of every training epoch and, once the epoch is
    validated, makes the masks permanent and logs the achieved sparsity as the metric ``sparsity``.

    ``weights_final`` is False until the final sparsity is reached: ``BestWeights`` does not take
    an epoch of a denser network as the trial's best.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.amount, self.structure = cfg.prune_amount, cfg.prune_structure
        self.schedule = functools.partial(S.SCHEDULES[cfg.prune_schedule], final=cfg.prune_amount,
                                          start=cfg.prune_start_epoch, end=final_prune_epoch(cfg))
        self.final_epoch = final_prune_epoch(cfg)
        self.layers: list[nn.Module] = []
        self.masks: list[torch.Tensor] | None = None
        self.target = 0.0
        self.weights_final = False

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.layers = self.layers_of(pl_module)
        if not self.layers:
            raise ValueError(f"prune_amount: {type(pl_module).__name__} has no Conv or Linear layer to prune")

    def layers_of(self, pl_module: nn.Module) -> list[nn.Module]:
        return prunable_layers(pl_module)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        target = self.schedule(epoch)
        if target > self.target or self.masks is None and target > 0:
            self.masks = self.compute_masks(target)
            self.target = target
        if self.masks is not None:
            for layer, mask in zip(self.layers, self.masks):
                prune.custom_from_mask(layer, "weight", mask.to(layer.weight.device))
        self.weights_final = epoch >= self.final_epoch

    def compute_masks(self, amount: float) -> list[torch.Tensor]:
        """Masks of ``amount`` over the layers' current (permanent) weights."""
        return S.global_magnitude_masks([layer.weight for layer in self.layers], amount)

    def on_epoch_done(self, trainer, pl_module) -> None:
        for layer in self.layers:
            if prune.is_pruned(layer):
                prune.remove(layer, "weight")
        value = S.sparsity([layer.weight for layer in self.layers])
        # Read by collect_metrics: reported to the trial and the tracker with the epoch's numbers.
        trainer.callback_metrics[METRIC] = torch.tensor(value)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        # An interrupted epoch (a pruned trial, an error) leaves no weight_orig/weight_mask behind.
        for layer in self.layers:
            if prune.is_pruned(layer):
                prune.remove(layer, "weight")


_HOOKS = {"weights": _WeightPruning}


@functools.lru_cache(maxsize=None)
def _callback_class(namespace: str, structure: str) -> type:
    base = importlib.import_module(namespace).Callback
    hooks = _HOOKS[structure]
    name = "WeightPruning"
    return type(name, (hooks, base), {"__module__": __name__, "__qualname__": name, "__doc__": hooks.__doc__})


def callbacks(namespace: str, cfg: TrainConfig) -> list[Any]:
    """The weight-pruning callback of ``cfg`` for a Trainer of ``namespace``, or none when
    ``prune_amount`` is 0."""
    if cfg.prune_amount <= 0:
        return []
    return [_callback_class(namespace, cfg.prune_structure)(cfg)]
