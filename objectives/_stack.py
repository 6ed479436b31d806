"""The acceleration stack on a user's LightningModule: hpo's optimizer and LR schedule, batch
augmentation, mixup/cutmix and distillation.

The contract (documented in the README, checked here at the first training step at the latest):

- **Optimizer and schedule** (``optimizer``, ``lr``, ``weight_decay``, ``momentum``, ``lr_schedule``,
  ``warmup_epochs``, ``step_size``, ``gamma``, ``min_lr_ratio``): a module without its own
  ``configure_optimizers`` gets hpo's. A module with one gets hpo's only through the hook
  ``configure_optimizers(self, optimizer_factory)``: ``optimizer_factory(params=None)`` returns
  Lightning's ``{"optimizer": ..., "lr_scheduler": ...}`` (or a bare optimizer for a constant LR
  without warm-up) built from the knobs over ``params`` (default: every trainable parameter). A
  module whose ``configure_optimizers`` takes no ``optimizer_factory`` while an optimizer knob is set
  is refused: its optimizer would silently ignore the knob.
- **Batch techniques** (``hflip``, ``crop_pad``, ``noise_std``, ``mixup_alpha``, ``cutmix_alpha``)
  and **distillation** (``teacher``, ``distill_alpha``, ``distill_temperature``) need a classifier:
  training batches ``(x, y)`` with ``y`` integer class labels of shape ``(N,)``, and ``forward(x)``
  returning logits ``(N, classes)``. ``hflip``/``crop_pad``/``cutmix_alpha`` also need ``x`` shaped
  ``(N, C, L)`` or ``(N, C, H, W)``. ``hflip``/``crop_pad``/``noise_std`` alone rewrite ``x`` and
  then run the module's own ``training_step``. With mixing or a teacher, hpo computes the loss:
  ``module.criterion(logits, soft_targets)`` when the module has a ``criterion`` attribute, else
  soft-target cross-entropy, plus the distillation term.
"""

from __future__ import annotations

import contextlib
import inspect
import random
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F

from objectives import techniques as T
from objectives._config import AUGMENT_KNOBS, MIXING_KNOBS, OPTIMIZER_KNOBS, TrainConfig
from objectives._namespace import NAMESPACES

FACTORY_PARAM = "optimizer_factory"
_DEFAULTS = TrainConfig()
# An extra attribute on the module (a list, so torch registers no submodule): rank 0 resolves the
# teacher once and DDP ranks receive it pickled with the module.
TEACHER_ATTR = "_hpo_teacher"


class StackContractError(ValueError):
    """A knob that the user's module or batches cannot take; the message says what is missing."""


# -- optimizer ------------------------------------------------------------------------------------


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig, trainer: Any) -> Any:
    """The optimizer of ``cfg`` over ``params``, with its per-optimizer-step LR schedule."""
    from objectives._finetune import optimizer_params

    params = optimizer_params(params, cfg, trainer)  # trainable ones; with fine-tuning, LR groups
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)
    if cfg.lr_schedule == "constant" and cfg.warmup_epochs == 0:
        return opt
    total = max(1, int(trainer.estimated_stepping_batches))
    per_epoch = total / max(1, trainer.max_epochs)
    fn = T.lr_multiplier(
        cfg.lr_schedule,
        total_steps=total,
        warmup_steps=int(round(cfg.warmup_epochs * per_epoch)),
        step_size=max(1, int(round(cfg.step_size * per_epoch))),
        gamma=cfg.gamma,
        min_lr_ratio=cfg.min_lr_ratio,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}


def own_configure_optimizers(cls: type) -> Callable[..., Any] | None:
    """The ``configure_optimizers`` a user's class defines, or None when only Lightning's exists."""
    for base in cls.__mro__:
        if "configure_optimizers" in vars(base):
            root = base.__module__ or ""
            if any(root == ns or root.startswith(ns + ".") for ns in NAMESPACES):
                return None
            return vars(base)["configure_optimizers"]
    return None


def optimizer_problem(cls: type, knobs: Iterable[str]) -> str | None:
    """Why ``cls`` cannot take the optimizer knobs ``knobs``, or None when it can."""
    set_knobs = [k for k in knobs if k in OPTIMIZER_KNOBS]
    own = own_configure_optimizers(cls)
    if not set_knobs or own is None or FACTORY_PARAM in inspect.signature(own).parameters:
        return None
    return (f"{', '.join(set_knobs)} cannot reach {cls.__name__}: it defines configure_optimizers(self) and so "
            f"builds its own optimizer; remove that method to let hpo build it, or define "
            f"configure_optimizers(self, {FACTORY_PARAM}) and return {FACTORY_PARAM}() (or use it for "
            "your parameter groups)")


def _set_knobs(cfg: TrainConfig, names: Iterable[str]) -> list[str]:
    return [n for n in names if getattr(cfg, n) != getattr(_DEFAULTS, n)]


def _configure_optimizers(module: Any, cfg: TrainConfig) -> Callable[[], Any] | None:
    """The ``configure_optimizers`` to install on ``module``, or None to keep the module's own."""
    own = own_configure_optimizers(type(module))

    def factory(params: Iterable[torch.nn.Parameter] | None = None) -> Any:
        return build_optimizer(module.parameters() if params is None else params, cfg, module.trainer)

    if own is None:
        return factory
    if FACTORY_PARAM in inspect.signature(own).parameters:
        return lambda: own(module, **{FACTORY_PARAM: factory})
    problem = optimizer_problem(type(module), _set_knobs(cfg, OPTIMIZER_KNOBS))
    if problem:
        raise StackContractError(problem)
    return None


# -- batches --------------------------------------------------------------------------------------


def _describe(obj: Any) -> str:
    if isinstance(obj, torch.Tensor):
        return f"a {obj.dtype} tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)}: ({', '.join(_describe(o) for o in obj)})"
    return f"a {type(obj).__name__}"


def _classification_batch(batch: Any, knobs: list[str], name: str) -> tuple[torch.Tensor, torch.Tensor]:
    ok = (isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], torch.Tensor)
          and isinstance(batch[1], torch.Tensor) and not batch[1].is_floating_point()
          and batch[1].ndim == 1 and len(batch[1]) == len(batch[0]))
    if not ok:
        raise StackContractError(
            f"{', '.join(knobs)} need training batches (x, y) with y integer class labels of shape (N,); "
            f"{name}'s training batch is {_describe(batch)}")
    return batch[0], batch[1]


def _needs_channels(x: torch.Tensor, knobs: list[str], name: str) -> None:
    spatial = [k for k in knobs if k in ("hflip", "crop_pad", "cutmix_alpha")]
    if spatial and x.ndim < 3:
        raise StackContractError(
            f"{', '.join(spatial)} need inputs shaped (N, C, L) or (N, C, H, W); {name}'s x is "
            f"{_describe(x)}: reshape in forward() instead of in the data")


def augment_inputs(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """``hflip``, ``crop_pad``, ``noise_std`` on a batch of inputs (each the identity at 0)."""
    if cfg.hflip > 0:
        x = T.random_hflip(x, cfg.hflip, generator=gen)
    if cfg.crop_pad > 0:
        x = T.random_crop(x, cfg.crop_pad, generator=gen)
    if cfg.noise_std > 0:
        x = T.gaussian_noise(x, cfg.noise_std, generator=gen)
    return x


def mix_inputs(
    x: torch.Tensor, y_soft: torch.Tensor, cfg: TrainConfig, gen: torch.Generator, coin: random.Random
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix (both enabled: one or the other per batch, as in timm; the coin comes from a
    host RNG, so there is no device sync)."""
    use_cutmix = cfg.cutmix_alpha > 0 and (cfg.mixup_alpha <= 0 or coin.random() < 0.5)
    if use_cutmix:
        return T.cutmix(x, y_soft, cfg.cutmix_alpha, generator=gen)
    return T.mixup(x, y_soft, cfg.mixup_alpha, generator=gen)


def augment_rngs(cfg: TrainConfig, device: torch.device, rank: int) -> tuple[torch.Generator, random.Random]:
    """Augmentation randomness: per rank, reproducible from the config seed."""
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.effective_seed * 7919 + 17 + rank)
    return gen, random.Random(cfg.effective_seed * 31 + rank)


class _StackStep:
    """Builds the ``training_step`` that applies the batch techniques and distillation."""

    def __init__(self, module: Any, cfg: TrainConfig, teacher: torch.nn.Module | None) -> None:
        self.module, self.cfg, self.teacher = module, cfg, teacher
        self.original = module.training_step
        self.knobs = _set_knobs(cfg, AUGMENT_KNOBS + MIXING_KNOBS) + (["teacher"] if teacher is not None else [])
        self.mixing = bool(_set_knobs(cfg, MIXING_KNOBS))
        self.rngs: tuple[torch.Generator, random.Random] | None = None
        self.name = type(module).__name__

    def function(self) -> Callable[..., Any]:
        # A plain function, not a callable object: Lightning inspects its signature for batch_idx.
        def training_step(batch, batch_idx):
            return self.step(batch, batch_idx)
        return training_step

    def step(self, batch: Any, batch_idx: int) -> Any:
        m, cfg = self.module, self.cfg
        x, y = _classification_batch(batch, self.knobs, self.name)
        _needs_channels(x, self.knobs, self.name)
        if self.rngs is None:
            self.rngs = augment_rngs(cfg, m.device, m.global_rank)
            if self.teacher is not None:
                self.teacher.to(x.device)
        gen, coin = self.rngs
        x = augment_inputs(x, cfg, gen)
        if not self.mixing and self.teacher is None:
            return self.original(type(batch)((x, y)), batch_idx)
        mixing = None
        if self.mixing:
            # The mixing matrix M (targets' = M @ one_hot(y)): mixup and cutmix are linear in the
            # targets, and the class count is known only once the logits are.
            x, mixing = mix_inputs(x, torch.eye(len(x), device=x.device, dtype=torch.float32), cfg, gen, coin)
        logits = self._logits(x)
        target: torch.Tensor = y
        if mixing is not None:
            target = mixing @ T.one_hot(y, logits.shape[-1], dtype=torch.float32)
        return self._loss(logits.float(), target, x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.module(x)
        if not (isinstance(logits, torch.Tensor) and logits.ndim == 2 and len(logits) == len(x)
                and logits.is_floating_point()):
            raise StackContractError(
                f"{', '.join(self.knobs)} need {self.name}.forward(x) to return logits of shape (N, classes); "
                f"it returned {_describe(logits)}")
        return logits

    def _loss(self, logits: torch.Tensor, target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        criterion = getattr(self.module, "criterion", None)
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(x).float()
            return T.distillation_loss(logits, teacher_logits, target, self.cfg.distill_alpha,
                                       self.cfg.distill_temperature, criterion=criterion)
        if criterion is not None:
            return criterion(logits, target)
        if target.is_floating_point():
            return T.soft_cross_entropy(logits, target)
        return F.cross_entropy(logits, target)


def teacher_of(module: Any) -> torch.nn.Module | None:
    held = getattr(module, TEACHER_ATTR, None)
    return held[0] if held else None


def set_teacher(module: Any, teacher: torch.nn.Module | None) -> None:
    """Attaches a frozen teacher to a user's module (outside its state dict and optimizer)."""
    module.__dict__[TEACHER_ATTR] = [teacher.eval().requires_grad_(False)] if teacher is not None else []


@contextlib.contextmanager
def stack_installed(module: Any, cfg: TrainConfig):
    """Installs hpo's ``configure_optimizers`` and ``training_step`` on a user's module for one fit
    (instance attributes, removed afterwards); the built-in ``ClassifierModule`` applies the stack
    itself (``applies_stack``)."""
    if getattr(module, "applies_stack", False):
        yield
        return
    patches: dict[str, Any] = {}
    configure = _configure_optimizers(module, cfg)
    if configure is not None:
        patches["configure_optimizers"] = configure
    teacher = teacher_of(module)
    if _set_knobs(cfg, AUGMENT_KNOBS + MIXING_KNOBS) or teacher is not None:
        if (_set_knobs(cfg, MIXING_KNOBS) or teacher is not None) and not module.automatic_optimization:
            # hpo's loss is returned to Lightning's optimizer loop, which manual optimization skips.
            raise StackContractError(
                f"{', '.join(_set_knobs(cfg, MIXING_KNOBS) + (['teacher'] if teacher is not None else []))} "
                f"replace the loss of {type(module).__name__}'s training_step, which uses manual optimization "
                "(automatic_optimization = False); use automatic optimization or leave these knobs out")
        patches["training_step"] = _StackStep(module, cfg, teacher).function()
    for name, value in patches.items():
        module.__dict__[name] = value
    try:
        yield
    finally:
        for name in patches:
            module.__dict__.pop(name, None)
