"""The driver-side trainer (``objectives.fit``) and the built-in objectives built on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl

from hpo._errors import MetricMissing
from objectives import _ddp
from objectives._callbacks import never_logged
from objectives._config import STACK_KNOBS, TrainConfig
from objectives._namespace import namespace_of
from objectives._stack import set_teacher
from objectives._trainer import FitRequest, fit_local, seed_everything

if TYPE_CHECKING:
    from hpo._context import TrialContext


__all__ = ["FitRequest", "build_classifier", "fit", "fit_local", "run_classifier", "run_objective", "seed_everything"]


def _as_config(config: TrainConfig | Mapping[str, Any] | None) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    # A user's module may be configured with keys of its own: only the stack's reserved knobs are
    # read here (``width: wide`` or ``dataset: cifar10`` belong to the user's objective).
    params = {k: v for k, v in dict(config or {}).items() if k in STACK_KNOBS}
    try:
        return TrainConfig.from_params(params)
    except ValueError as exc:
        key = str(exc).partition(":")[0]
        raise ValueError(f"{exc} ({key} is a reserved knob of hpo's training stack, applied to the "
                         "LightningModule the objective returned; rename your own parameter)") from None


def _monitor(ctx: TrialContext | None, monitor: str | None, mode: str | None) -> tuple[str, str]:
    if monitor is None:
        monitor = ctx.metrics[0] if ctx is not None and ctx.metrics else "val_acc"
    if mode is None:
        mode = "min" if "loss" in monitor or "error" in monitor else "max"
        if ctx is not None and ctx.metrics and monitor == ctx.metrics[0] and ctx.directions:
            mode = "max" if ctx.directions[0] == "maximize" else "min"
    return monitor, mode


def fit(
    module: pl.LightningModule,
    data: Any = None,
    config: TrainConfig | Mapping[str, Any] | None = None,
    ctx: TrialContext | None = None,
    *,
    monitor: str | None = None,
    mode: str | None = None,
    restore_best: bool = False,
    callbacks: list[pl.Callback] | None = None,
) -> dict[str, float]:
    """Trains ``module`` with the knobs of ``config`` and reports every epoch to the trial.

    Args:
        module: any LightningModule, of ``pytorch_lightning`` or ``lightning.pytorch`` (the Trainer
            and hpo's callbacks come from the same package), that logs its validation metrics with
            ``self.log`` (the built-in ``ClassifierModule`` logs ``val_loss`` and ``val_acc``).
        data: ``None`` (the module's own dataloaders), a ``LightningDataModule``, a
            ``(train_loader, val_loader)`` pair, or a ``DeviceData`` (the built-ins' tensors).
        config: a ``TrainConfig`` or a mapping, of which only the stack's reserved knobs
            (``objectives.STACK_KNOBS``) are read: every one reaches training or is refused with
            the reason (see ``objectives._stack`` for what a module and its batches must offer).
        ctx: the trial context; ``None`` trains without reporting, pruning or saving.
        monitor: the metric that picks the best epoch; default the study's metric
            (``ctx.metrics[0]``), else ``val_acc``.
        mode: ``"max"``/``"min"``; default the study's direction for the study metric, else
            ``min`` for names containing ``loss``/``error`` and ``max`` otherwise.
        restore_best: load the best epoch's weights into ``module`` at the end.
        callbacks: extra Lightning callbacks.

    Returns:
        The metrics of the best epoch by ``monitor`` (``val_acc``, ``val_loss``, ``train_loss``,
        ``epoch_time``, ``samples_per_sec``, ... and ``epoch``); the last epoch's if ``monitor``
        was never logged.

    With ``cv_folds: k`` it trains k copies of the untrained ``module``, one per stratified fold of
    the training DataLoader's dataset (``objectives._cv``), and returns the folds' mean metrics.

    Raises:
        optuna.TrialPruned: when the study's pruner stops the trial (``pruned_at_epoch`` is set).
    """
    cfg = _as_config(config)
    if cfg.cv_folds:
        from objectives._cv import cross_validate_module

        return cross_validate_module(module, data, cfg, ctx, monitor=monitor, mode=mode, restore_best=restore_best,
                                     callbacks=callbacks)
    if cfg.seed is None and ctx is not None:
        cfg = cfg.replace(seed=int(ctx.seed))
    namespace_of(module, data)  # a clear error for a non-Lightning module or mixed packages
    monitor, mode = _monitor(ctx, monitor, mode)
    if not getattr(module, "applies_stack", False):
        from objectives._user import resolve_module_teacher

        set_teacher(module, resolve_module_teacher(cfg.teacher, module, ctx))
    request = FitRequest(module, data, cfg, ctx, monitor, mode, restore_best, list(callbacks or []))
    if cfg.devices > 1:
        result = _ddp.fit_ddp(request)
    else:
        result = fit_local(request)
    if ctx is not None:
        ctx.fitted = (module, data)
    if ctx is not None and monitor not in result:
        # A user's module decides what it logs: say so at the first trial rather than return nothing.
        raise MetricMissing(never_logged(monitor, module, result))
    return result


# -- built-in objectives -----------------------------------------------------------------------


def build_classifier(kind: str, cfg: TrainConfig, ctx: TrialContext | None = None, arrays: Any = None):
    """Data + model (+ teacher) + module for a built-in objective; returns ``(module, data)``.

    ``arrays``: the ``ArrayData`` to train on instead of ``cfg.dataset``'s (a cross-validation fold)."""
    from objectives._data import load_dataset, make_device_data
    from objectives._finetune import checkpoint_architecture
    from objectives._models import build_network
    from objectives._module import ClassifierModule
    from objectives._teacher import resolve_teacher

    if arrays is None:
        arrays = load_dataset(cfg.dataset, kind, cfg.val_fraction, image_size=cfg.image_size)
    cfg = checkpoint_architecture(cfg)  # init_from: the checkpoint's network (its width, depth, ...)
    teacher = resolve_teacher(cfg.teacher, cfg, kind, ctx, arrays)
    seed_everything(cfg.effective_seed)
    model = build_network(arrays.input_shape, arrays.num_classes, cfg)
    module = ClassifierModule(model, cfg, arrays.num_classes, teacher=teacher)
    data = make_device_data(arrays, cfg.batch_size, cfg.effective_seed)
    return module, data


def run_classifier(
    kind: str, params: Mapping[str, Any] | TrainConfig, ctx: TrialContext | None = None, **fit_kwargs: Any
) -> tuple[dict[str, float], pl.LightningModule]:
    """Builds and trains a built-in classifier; returns ``(best-epoch metrics, module)``."""
    cfg = params if isinstance(params, TrainConfig) else TrainConfig.from_params(params)
    if cfg.seed is None:
        cfg = cfg.replace(seed=int(ctx.seed) if ctx is not None else 0)
    if cfg.cv_folds:
        from objectives._cv import cross_validate_classifier

        return cross_validate_classifier(kind, cfg, ctx, **fit_kwargs)
    module, data = build_classifier(kind, cfg, ctx)
    return fit(module, data, cfg, ctx, **fit_kwargs), module


def run_objective(kind: str, params: Mapping[str, Any], ctx: TrialContext) -> dict[str, float]:
    result, _ = run_classifier(kind, params, ctx)
    return result
