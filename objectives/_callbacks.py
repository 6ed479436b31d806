"""Lightning callbacks that connect a training run to its trial; one hook, one job.

Order in ``objectives.fit``: ``EpochMetrics`` → ``AdaptiveGradientClipping`` →
``WeightPruning`` (``objectives._sparsity``) → ``BestWeights`` → ``PruningCallback``. Each is
written once as plain hooks and made a callback of the Lightning package that drives the module
(:func:`callback_classes`); the module-level names are the ``pytorch_lightning`` ones. The Trainer
gets them as one callback (:func:`combined`): Lightning calls every hook of every callback, on every
step, whether it does anything or not. The
epoch-level numbers (``val_*`` from the module's ``self.log``, ``train_loss``/``epoch_time``/
``samples_per_sec`` from ``EpochMetrics``) are complete at ``on_validation_end``, which is where
weights are kept and the pruner is asked.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import optuna
import torch
from torch import nn

from hpo._errors import MetricMissing
from objectives.techniques import adaptive_clip_grad_
from objectives.techniques.finetune import match

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from hpo._context import TrialContext

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "best.pt"


def collect_metrics(trainer: pl.Trainer) -> dict[str, float]:
    """This epoch's scalar metrics: ``trainer.callback_metrics`` plus ``EpochMetrics``' numbers."""
    out: dict[str, float] = {}
    for key, value in trainer.callback_metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    for cb in callbacks_of(trainer):
        if isinstance(cb, _EpochMetrics) and cb.epoch_metrics:
            out.update(cb.epoch_metrics)
    return out


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return len(batch)
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    return 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _EpochOnce:
    """Runs :meth:`on_epoch_done` once per training epoch: at validation end, or at the train epoch's
    end when no validation ran that epoch (a module without validation data)."""

    def __init__(self) -> None:
        self._done_epoch = -1

    def on_epoch_done(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._done_epoch = trainer.current_epoch
        self.on_epoch_done(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._done_epoch != trainer.current_epoch:
            self._done_epoch = trainer.current_epoch
            self.on_epoch_done(trainer, pl_module)


class _EpochMetrics:
    """``train_loss`` (sample-weighted mean of the training steps' losses), ``epoch_time`` (seconds,
    training and validation) and ``samples_per_sec`` (training samples over all ranks / training time).

    Per step it only appends the already-detached loss to a list: no device sync, no ``.item()``.
    """

    def __init__(self) -> None:
        self.epoch_metrics: dict[str, float] = {}
        self._losses: list[torch.Tensor] = []
        self._sizes: list[int] = []
        self._t0 = 0.0
        self._train_time: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        _sync(pl_module.device)
        self._losses, self._sizes, self._train_time = [], [], None
        self.epoch_metrics = {}
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._losses.append(loss)
            self._sizes.append(_batch_size(batch))

    def _stop_train_clock(self, pl_module) -> None:
        if self._train_time is None:
            _sync(pl_module.device)
            self._train_time = time.perf_counter() - self._t0

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._stop_train_clock(pl_module)

    def _compute(self, trainer, pl_module) -> None:
        if self.epoch_metrics or trainer.sanity_checking:
            return
        self._stop_train_clock(pl_module)
        device = pl_module.device
        if self._losses:
            losses = torch.stack([x.detach().float().reshape(()) for x in self._losses]).to(device)
            sizes = torch.tensor(self._sizes, dtype=torch.float32, device=device)
            # Lightning hands the loss divided by accumulate_grad_batches to the callbacks.
            loss_sum = (losses * sizes).sum() * trainer.accumulate_grad_batches
            sums = torch.stack([loss_sum, sizes.sum()])
        else:
            sums = torch.zeros(2, device=device)
        if trainer.world_size > 1:
            sums = trainer.strategy.reduce(sums, reduce_op="sum")
        loss_sum, count = sums.tolist()
        metrics = {
            "epoch_time": time.perf_counter() - self._t0,
            "samples_per_sec": count / self._train_time if self._train_time else 0.0,
        }
        if count > 0:
            metrics["train_loss"] = loss_sum / count
        self.epoch_metrics = metrics
        self._losses, self._sizes = [], []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit":
            self._compute(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._compute(trainer, pl_module)  # no-op when validation already computed them


class _AdaptiveGradientClipping:
    """Unit-wise adaptive gradient clipping (Brock et al. 2021) before every optimizer step.

    The output layer is left alone, as in the paper. Which parameters that is, in order:
    ``exclude`` (``fnmatch`` patterns over parameter names, the ``agc_exclude`` knob), else
    ``pl_module.agc_exclude()`` when the module defines it, else the parameters of the last module
    with parameters of its own to run in the first training batch's forward pass (found with
    forward hooks, removed before the first optimizer step: registration order says nothing about
    which layer comes last). Runs after gradients are unscaled (16-mixed) and before Lightning's
    norm clipping.
    """

    def __init__(self, clip: float, eps: float = 1e-3, exclude: Sequence[str] = ()) -> None:
        self.clip, self.eps, self.patterns = clip, eps, tuple(exclude)
        self.params: list[torch.Tensor] = []
        self.excluded: list[str] = []
        self._module: nn.Module | None = None
        self._hooks: list[Any] = []
        self._last: str | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._module, self._last = pl_module, None
        if self.patterns:
            self._use(pl_module, _matching(pl_module, self.patterns))
        elif hasattr(pl_module, "agc_exclude"):
            self._use(pl_module, set(pl_module.agc_exclude()))
        else:
            self.params, self.excluded = [], []
            self._watch(pl_module)

    def _use(self, pl_module: nn.Module, excluded: set[str]) -> None:
        self.excluded = sorted(excluded)
        self.params = [p for n, p in pl_module.named_parameters() if n not in excluded and p.requires_grad]

    def _watch(self, pl_module: nn.Module) -> None:
        """Forward hooks recording the last module with trainable parameters of its own to run."""
        def record(name: str):
            def hook(mod, args, output):
                self._last = name
            return hook

        for name, mod in pl_module.named_modules():
            if any(p.requires_grad for p in mod.parameters(recurse=False)):
                self._hooks.append(mod.register_forward_hook(record(name)))

    def _resolve(self, pl_module: nn.Module) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if self._last is None:
            raise RuntimeError(f"agc_clip: no layer of {type(pl_module).__name__} with parameters ran in the "
                               "forward pass; name the output layer's parameters with agc_exclude")
        prefix = f"{self._last}." if self._last else ""
        head = pl_module.get_submodule(self._last)
        self._use(pl_module, {prefix + n for n, _ in head.named_parameters(recurse=False)})

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self._hooks:
            self._resolve(pl_module)
        adaptive_clip_grad_(self.params, self.clip, self.eps)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []


def _matching(module: nn.Module, patterns: Sequence[str]) -> set[str]:
    """Parameter names matching any pattern; a pattern matching nothing is an error (a typo)."""
    return match([n for n, _ in module.named_parameters()], patterns, "agc_exclude", type(module).__name__)


def _weights_final(trainer: pl.Trainer) -> bool:
    """False while a callback says this epoch's weights are not the final ones (weight pruning
    before its final sparsity): such an epoch cannot be the best."""
    return all(getattr(cb, "weights_final", True) for cb in callbacks_of(trainer))


class _BestWeights(_EpochOnce):
    """Keeps the best epoch's ``state_dict`` (on the CPU, in memory) by ``monitor``; at the end of
    a completed fit saves it to ``ctx.workdir/best.pt`` and calls ``ctx.set_checkpoint(path, keep)``:
    the driver then keeps the checkpoints of the study's best ``keep`` trials only (``keep=0``
    keeps all). ``restore=True`` loads the best weights back into the module.

    The file is ``{"state_dict", "model" (architecture hparams, if known), "metrics", "epoch",
    "monitor"}`` and loads with ``torch.load(path, weights_only=True)``. A callback with
    ``export_state(pl_module, state)`` rewrites the state saved (weight pruning by channels: the
    slimmed network); one with ``weights_final = False`` keeps the epoch from being the best.
    """

    def __init__(
        self, ctx: TrialContext | None, monitor: str, mode: str = "max", *, keep: int = 3, restore: bool = False
    ) -> None:
        super().__init__()
        self.ctx, self.monitor, self.mode, self.keep, self.restore = ctx, monitor, mode, keep, restore
        self.best_value: float | None = None
        self.best_metrics: dict[str, float] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.last_metrics: dict[str, float] = {}
        self.checkpoint: Path | None = None

    def _better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.mode == "max" else value < self.best_value

    def on_epoch_done(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        metrics = collect_metrics(trainer)
        metrics["epoch"] = float(trainer.current_epoch)
        self.last_metrics = metrics
        value = metrics.get(self.monitor)
        if value is not None and _weights_final(trainer) and self._better(value):
            self.best_value = value
            self.best_metrics = dict(metrics)
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or self.best_state is None:
            return
        if self.restore:
            pl_module.load_state_dict(self.best_state)
        if self.ctx is None:
            return
        model = getattr(pl_module, "model", None)
        state = self.best_state
        for cb in callbacks_of(trainer):  # weight pruning by channels saves the slimmed network
            if hasattr(cb, "export_state"):
                state = cb.export_state(pl_module, state)
        payload = {
            "state_dict": state,
            "model": dict(getattr(model, "hparams", {}) or {}) if isinstance(getattr(model, "hparams", None), dict) else {},
            "metrics": self.best_metrics,
            "epoch": int(self.best_metrics.get("epoch", -1)),
            "monitor": self.monitor,
        }
        path = Path(self.ctx.workdir) / CHECKPOINT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".pt.tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
        self.checkpoint = path
        # The driver keeps only the study's best `keep` checkpoints once the trial is told.
        self.ctx.set_checkpoint(path, keep=self.keep)


class _PruningCallback(_EpochOnce):
    """Reports the epoch's metrics via ``ctx.report(metrics, step=epoch)`` and raises
    ``optuna.TrialPruned`` when ``ctx.should_prune()`` (the driver records ``pruned_at_epoch``: the last
    step reported, ``ctx.last_step``).

    Under DDP only rank 0 has a ``ctx``: it decides, the decision is broadcast, and every rank raises
    at the same epoch. Works with any Optuna storage (it only calls ``trial.report``/``should_prune``).
    """

    def __init__(self, ctx: TrialContext | None) -> None:
        super().__init__()
        self.ctx = ctx
        self.pruned_at: int | None = None

    def on_epoch_done(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        prune = False
        if trainer.is_global_zero and self.ctx is not None:
            metrics = {k: v for k, v in collect_metrics(trainer).items() if k != "epoch"}
            self.ctx.report(metrics, step=epoch)
            prune = bool(self.ctx.should_prune())
        if _rank_zero_decides(trainer, prune):
            self.pruned_at = epoch
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")


def _rank_zero_decides(trainer: Any, decision: bool) -> bool:
    """Rank 0's ``decision`` on every rank (under DDP only rank 0 has a ctx); every rank must call it."""
    if trainer.world_size > 1:
        return bool(trainer.strategy.broadcast(decision, src=0))
    return bool(decision)


def never_logged(monitor: str, module: Any, logged: Any, when: str = "") -> str:
    """The error for a study metric the module does not log (what it did log, and the two fixes)."""
    return (f"study metric {monitor!r} was never logged by {type(module).__name__}{when}; it logged "
            f"{sorted(logged)}: log it with self.log({monitor!r}, ...) or set study.metric to one of these")


class _StudyMetricCheck:
    """Fails the trial as its second epoch starts when the study metric was not logged in the first:
    a user's module decides what it logs, and the check at the end of training (``objectives.fit``)
    came after every epoch. Not sooner: a module may log it in its own ``on_train_epoch_end``, which
    Lightning calls after the callbacks' (``callback_metrics`` keeps every key logged so far).
    Rank 0 decides; under DDP the decision is broadcast so every rank raises at the same point."""

    def __init__(self, ctx: TrialContext | None, monitor: str) -> None:
        self.ctx, self.monitor = ctx, monitor
        self._checked = False

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._checked or trainer.current_epoch < 1:
            return
        self._checked = True  # every rank comes here (only rank 0 has a ctx): the broadcast needs them all
        logged: list[str] = []
        if trainer.is_global_zero:
            logged = sorted(k for k in collect_metrics(trainer) if k != "epoch")
        missing = trainer.is_global_zero and self.ctx is not None and self.monitor not in logged
        if _rank_zero_decides(trainer, missing):
            no_validation = not any(getattr(trainer, "num_val_batches", None) or [])
            hint = ("; no validation ran: the data has no validation loader (a LightningDataModule's "
                    "val_dataloader, or a data function's (train_loader, val_loader))") if no_validation else ""
            raise MetricMissing(never_logged(self.monitor, pl_module, logged, " in its first epoch") + hint)


_HOOKS = {
    "EpochMetrics": _EpochMetrics,
    "StudyMetricCheck": _StudyMetricCheck,
    "AdaptiveGradientClipping": _AdaptiveGradientClipping,
    "BestWeights": _BestWeights,
    "PruningCallback": _PruningCallback,
}


@functools.lru_cache(maxsize=None)
def callback_classes(namespace: str) -> SimpleNamespace:
    """hpo's callbacks as subclasses of ``<namespace>.Callback`` (``pytorch_lightning`` or
    ``lightning.pytorch``): a Trainer only drives callbacks of its own package."""
    base = importlib.import_module(namespace).Callback
    return SimpleNamespace(**{
        name: type(name, (hooks, base), {"__module__": __name__, "__qualname__": name, "__doc__": hooks.__doc__})
        for name, hooks in _HOOKS.items()
    })


class _Combined:
    """hpo's callbacks registered as one: each hook reaches, in order, only the parts that define it.

    Why: Lightning dispatches every hook (six of them each training step) to every callback, defined
    or not, each call inside a profiler context: three callbacks took 18 such calls a step, one
    takes 6. What that is worth is a few percent of a 1-2 ms step at most
    (``benchmarks/throughput.py --separate``).
    """

    _base: type  # the Lightning package's Callback (:func:`_combined_class`)

    def __init__(self, parts: Sequence[Any]) -> None:
        self.parts = list(parts)
        self._calls = {hook: [getattr(part, hook) for part in self.parts if _defines(part, hook, self._base)]
                       for hook in _hook_names(self._base)}


@functools.lru_cache(maxsize=None)
def _hook_names(base: type) -> tuple[str, ...]:
    """The hooks Lightning calls on a callback of ``base``'s package: ``setup``, ``teardown`` and ``on_*``."""
    return tuple(n for n in dir(base) if n in ("setup", "teardown") or n.startswith("on_"))


def _defines(part: Any, hook: str, base: type) -> bool:
    own = getattr(type(part), hook, None)
    return own is not None and own is not getattr(base, hook, None)


def _forward(hook: str):
    def forward(self, *args: Any, **kwargs: Any) -> None:
        for call in self._calls[hook]:
            call(*args, **kwargs)
    forward.__name__ = forward.__qualname__ = hook
    return forward


@functools.lru_cache(maxsize=None)
def _combined_class(namespace: str) -> type:
    base = importlib.import_module(namespace).Callback
    body = {hook: _forward(hook) for hook in _hook_names(base)}
    body.update(_base=base, __module__=__name__, __qualname__="HpoCallbacks", __doc__=_Combined.__doc__)
    return type("HpoCallbacks", (_Combined, base), body)


def combined(namespace: str, parts: Sequence[Any]) -> Any:
    """``parts`` (hpo's callbacks, in order) as one callback of the Lightning package ``namespace``."""
    return _combined_class(namespace)(parts)


def separated(callbacks: Sequence[Any]) -> list[Any]:
    """``callbacks`` with hpo's combined one replaced by its parts."""
    out: list[Any] = []
    for cb in callbacks:
        out += cb.parts if isinstance(cb, _Combined) else [cb]
    return out


def callbacks_of(trainer: pl.Trainer) -> list[Any]:
    """The trainer's callbacks, hpo's combined one as its parts."""
    return separated(getattr(trainer, "callbacks", None) or [])


_PL = callback_classes("pytorch_lightning")
EpochMetrics = _PL.EpochMetrics
AdaptiveGradientClipping = _PL.AdaptiveGradientClipping
BestWeights = _PL.BestWeights
PruningCallback = _PL.PruningCallback
