"""The LightningModule of the built-in objectives: batched augmentation, mixup/cutmix,
distillation, the optimiser and a per-optimizer-step LR schedule."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import pytorch_lightning as pl
from torch import nn

from objectives import techniques as T
from objectives._config import TrainConfig
from objectives._stack import augment_inputs, augment_rngs, build_optimizer, mix_inputs


class ClassifierModule(pl.LightningModule):
    """Trains ``model`` (its last layer is ``model.classifier``) on ``(x, y)`` batches.

    Validation accumulates summed loss and correct counts on the device and logs ``val_loss`` and
    ``val_acc`` once per epoch (summed over DDP ranks, so the numbers are exact).

    Args:
        model: the network; ``model.classifier`` is skipped by adaptive gradient clipping.
        config: the training knobs.
        num_classes: for one-hot targets under mixup/cutmix.
        teacher: an optional frozen network for distillation; kept out of ``state_dict`` and of
            the optimiser.
    """

    applies_stack = True  # the knobs are applied here, not by objectives._stack on top

    def __init__(
        self, model: nn.Module, config: TrainConfig, num_classes: int, teacher: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.num_classes = num_classes
        self._teacher = [teacher.eval().requires_grad_(False)] if teacher is not None else []
        self._gen: torch.Generator | None = None
        self._val_sums: torch.Tensor | None = None

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets this plain string around every hook call (~50 times a step);
        # nn.Module.__setattr__'s parameter/buffer/module checks are pure overhead for it.
        if name == "_current_fx_name":
            self.__dict__[name] = value
            return
        super().__setattr__(name, value)

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def agc_exclude(self) -> list[str]:
        """Names of the parameters adaptive gradient clipping must not touch (the classifier)."""
        return [f"model.classifier.{n}" for n, _ in self.model.classifier.named_parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # -- training -----------------------------------------------------------------------------

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)
        self._gen, self._coin = augment_rngs(self.config, self.device, self.global_rank)

    def _augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        x = augment_inputs(x, c, self._gen)
        if c.mixup_alpha > 0 or c.cutmix_alpha > 0:
            x, y = mix_inputs(x, T.one_hot(y, self.num_classes, dtype=x.dtype), c, self._gen, self._coin)
        return x, y

    def training_step(self, batch, batch_idx):
        x, y = batch
        x, target = self._augment(x, y)
        logits = self.model(x)
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(x)
            return T.distillation_loss(
                logits.float(), teacher_logits.float(), target,
                self.config.distill_alpha, self.config.distill_temperature,
            )
        if target.is_floating_point():
            return T.soft_cross_entropy(logits.float(), target)
        return F.cross_entropy(logits.float(), target)

    # -- validation ---------------------------------------------------------------------------

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(3, device=self.device, dtype=torch.float64)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x).float()
        loss = F.cross_entropy(logits, y, reduction="sum")
        correct = (logits.argmax(-1) == y).sum()
        self._val_sums += torch.stack([loss.double(), correct.double(), y.new_tensor(len(y)).double()])

    def on_validation_epoch_end(self) -> None:
        sums = self._val_sums
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums.float(), reduce_op="sum").double()
        count = sums[2].clamp(min=1)
        # Already reduced over ranks: no sync_dist.
        self.log("val_loss", (sums[0] / count).float())
        self.log("val_acc", (sums[1] / count).float())

    # -- optimiser ----------------------------------------------------------------------------

    def configure_optimizers(self):
        return build_optimizer(self.model.parameters(), self.config, self.trainer)
