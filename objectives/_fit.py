"""The driver-side trainer (``objectives.fit``) and the built-in objectives built on it."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.profilers import PassThroughProfiler

from objectives._callbacks import (
    AdaptiveGradientClipping,
    BestWeights,
    EpochMetrics,
    PruningCallback,
)
from objectives._config import TrainConfig

if TYPE_CHECKING:
    from hpo._context import TrialContext

log = logging.getLogger(__name__)

# Lightning's "GPU available: ..." / tips banners: not wanted once per trial.
for _name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda",
              "lightning_fabric.utilities.seed", "pytorch_lightning.utilities.seed",
              "lightning_fabric.utilities.distributed", "pytorch_lightning.strategies.ddp"):
    logging.getLogger(_name).setLevel(logging.WARNING)

_QUIET = (
    r".*does not have many workers.*",
    r".*LightningModule.*has parameters that were not used.*",
    r".*You defined a `validation_step` but have no `val_dataloader`.*",
    r".*The number of training batches.*is smaller than the logging interval.*",
    r".*`training_step` returned `None`.*",
    r".*Total length of .* across ranks is zero.*",
    r".*It is recommended to use `self.log\(.*sync_dist=True\)`.*",
    r".*isn't a DataLoader.*",
    r".*Your `IterableDataset` has `__len__` defined.*",
    r".*Grad strides do not match bucket view strides.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)

DDP_TIMEOUT = timedelta(seconds=300)


def _as_config(config: TrainConfig | Mapping[str, Any] | None) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    # A user's module may be configured with keys of its own: only ours are read here.
    return TrainConfig.from_params(dict(config or {}), strict=False)


def _monitor(ctx: TrialContext | None, monitor: str | None, mode: str | None) -> tuple[str, str]:
    if monitor is None:
        monitor = ctx.metrics[0] if ctx is not None and ctx.metrics else "val_acc"
    if mode is None:
        mode = "min" if "loss" in monitor or "error" in monitor else "max"
        if ctx is not None and ctx.metrics and monitor == ctx.metrics[0]:
            with contextlib.suppress(Exception):
                direction = ctx.trial.study.directions[0]
                mode = "max" if direction.name == "MAXIMIZE" else "min"
    return monitor, mode


def _accelerator() -> str:
    return "gpu" if torch.cuda.is_available() else "cpu"


def _precision(requested: str, accelerator: str) -> str:
    if requested == "16-mixed" and accelerator == "cpu":
        warnings.warn(
            "precision '16-mixed' is not supported on the CPU (torch autocast runs fp16 poorly there); "
            "training with 'bf16-mixed' instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return "bf16-mixed"
    return requested


@contextlib.contextmanager
def _cpu_threads(threads: int, world_size: int, accelerator: str):
    """Sets torch's intra-op threads for the fit (CPU only) and restores them after."""
    if accelerator != "cpu":
        yield
        return
    if threads <= 0 and world_size > 1:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        threads = max(1, cores // world_size)
    before = torch.get_num_threads()
    if threads > 0 and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _cache_hook_signature_checks() -> None:
    """Lightning inspects ``training_step``'s signature (``inspect.getfullargspec``) on every
    step to decide whether to pass ``batch_idx``; a function's signature does not change, so the
    answer is cached per function."""
    from pytorch_lightning.loops import evaluation_loop, training_epoch_loop
    from pytorch_lightning.utilities import signature_utils

    original = signature_utils.is_param_in_hook_signature
    if getattr(original, "_hpo_cached", False):
        return

    @functools.lru_cache(maxsize=512)
    def cached(fn, param, explicit, min_args):
        return original(fn, param, explicit, min_args)

    def is_param_in_hook_signature(hook_fx, param, explicit=False, min_args=None):
        fn = getattr(hook_fx, "__func__", hook_fx)  # bound method -> its (hashable, stable) function
        try:
            return cached(fn, param, explicit, min_args)
        except TypeError:  # unhashable callable
            return original(hook_fx, param, explicit, min_args)

    is_param_in_hook_signature._hpo_cached = True  # type: ignore[attr-defined]
    for module in (training_epoch_loop, evaluation_loop):
        if getattr(module, "is_param_in_hook_signature", None) is original:
            module.is_param_in_hook_signature = is_param_in_hook_signature


_cache_hook_signature_checks()


class _NoProfiler(PassThroughProfiler):
    """Lightning wraps every hook call in ``profiler.profile(name)``; the default pass-through
    profiler builds a generator-based context manager each time (~100 per training step). This
    one hands back one shared no-op context."""

    _null = contextlib.nullcontext()

    def profile(self, action_name: str):  # type: ignore[override]
        return self._null


def _place(loaders: list[Any], accelerator: str, world_size: int) -> None:
    """Moves index-batched device data (``DeviceBatches``) to this process's training device and
    tells it the DDP rank (set in the environment by ``objectives._ddp``)."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0)) if world_size > 1 else 0
    rank = int(os.environ.get("RANK", 0)) if world_size > 1 else 0
    device = torch.device("cuda", local_rank) if accelerator == "gpu" else torch.device("cpu")
    for loader in loaders:
        if loader is not None and hasattr(loader, "place"):
            loader.place(device, rank, world_size)


def seed_everything(seed: int) -> None:
    pl.seed_everything(int(seed), workers=False, verbose=False)


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
        module: any LightningModule that logs its validation metrics with ``self.log`` (the
            built-in ``ClassifierModule`` logs ``val_loss`` and ``val_acc``).
        data: ``None`` (the module's own dataloaders), a ``LightningDataModule``, a
            ``(train_loader, val_loader)`` pair, or a ``DeviceData`` (the built-ins' tensors).
        config: a ``TrainConfig`` or a mapping (keys not of ``TrainConfig`` are ignored here).
            Read: ``max_epochs``, ``precision``, ``devices``, ``strategy``,
            ``accumulate_grad_batches``, ``grad_clip_norm``, ``agc_clip``, ``seed``,
            ``keep_checkpoints``.
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

    Raises:
        optuna.TrialPruned: when the study's pruner stops the trial (``pruned_at_epoch`` is set).
    """
    cfg = _as_config(config)
    if cfg.seed is None and ctx is not None:
        cfg = cfg.replace(seed=int(ctx.seed))
    monitor, mode = _monitor(ctx, monitor, mode)
    if cfg.devices > 1:
        from objectives import _ddp

        return _ddp.fit_ddp(module, data, cfg, ctx, monitor=monitor, mode=mode,
                            restore_best=restore_best, callbacks=callbacks)
    return fit_local(module, data, cfg, ctx, monitor=monitor, mode=mode,
                     restore_best=restore_best, callbacks=callbacks, world_size=1)


def _loaders(data: Any) -> tuple[dict[str, Any], list[Any]]:
    """``trainer.fit`` keyword arguments for ``data``, and the loaders to place on the device."""
    if data is None:
        return {}, []
    if isinstance(data, pl.LightningDataModule):
        return {"datamodule": data}, []
    if hasattr(data, "train") and hasattr(data, "val"):
        return {"train_dataloaders": data.train, "val_dataloaders": data.val}, [data.train, data.val]
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return {"train_dataloaders": data[0], "val_dataloaders": data[1]}, list(data)
    if isinstance(data, Mapping) and "train" in data:
        loaders = [data["train"], data.get("val")]
        return {"train_dataloaders": data["train"], "val_dataloaders": data.get("val")}, loaders
    return {"train_dataloaders": data}, [data]


def fit_local(
    module: pl.LightningModule,
    data: Any,
    cfg: TrainConfig,
    ctx: TrialContext | None,
    *,
    monitor: str,
    mode: str,
    restore_best: bool = False,
    callbacks: list[pl.Callback] | None = None,
    world_size: int = 1,
) -> dict[str, float]:
    """One process's share of :func:`fit` (the whole of it when ``world_size == 1``)."""
    accelerator = _accelerator()
    precision = _precision(cfg.precision, accelerator)
    fit_kwargs, loaders = _loaders(data)
    best = BestWeights(ctx, monitor, mode, keep=cfg.keep_checkpoints, restore=restore_best)
    _place(loaders, accelerator, world_size)
    cbs: list[pl.Callback] = [EpochMetrics()]
    if cfg.agc_clip > 0:
        cbs.append(AdaptiveGradientClipping(cfg.agc_clip))
    cbs += [best, PruningCallback(ctx)]
    cbs += list(callbacks or [])
    own_batches = all(hasattr(ld, "place") for ld in loaders if ld is not None) and bool(loaders)
    if world_size > 1:
        from lightning_fabric.plugins.environments import LightningEnvironment
        from pytorch_lightning.strategies import DDPStrategy

        strategy: Any = DDPStrategy(
            cluster_environment=LightningEnvironment(),
            process_group_backend="nccl" if accelerator == "gpu" else "gloo",
            timeout=DDP_TIMEOUT,
        )
        devices: Any = world_size
    else:
        strategy, devices = "auto", 1
    root = Path(ctx.workdir) if ctx is not None else None
    seed_everything(cfg.effective_seed)
    with warnings.catch_warnings(), _cpu_threads(cfg.threads, world_size, accelerator):
        for pattern in _QUIET:
            warnings.filterwarnings("ignore", message=pattern)
        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            precision=precision,
            max_epochs=cfg.max_epochs,
            accumulate_grad_batches=cfg.accumulate_grad_batches,
            gradient_clip_val=cfg.grad_clip_norm or None,
            gradient_clip_algorithm="norm",
            callbacks=cbs,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            num_sanity_val_steps=0,
            use_distributed_sampler=not own_batches,
            default_root_dir=str(root) if root is not None else None,
            profiler=_NoProfiler(),
        )
        trainer.fit(module, **fit_kwargs)
    result = best.best_metrics or best.last_metrics
    return dict(result)


# -- built-in objectives -----------------------------------------------------------------------


def build_classifier(kind: str, cfg: TrainConfig, ctx: TrialContext | None = None):
    """Data + model (+ teacher) + module for a built-in objective; returns ``(module, data)``."""
    from objectives._data import load_dataset, make_device_data
    from objectives._models import build_network
    from objectives._module import ClassifierModule
    from objectives._teacher import resolve_teacher

    arrays = load_dataset(cfg.dataset, kind, cfg.val_fraction, image_size=cfg.image_size)
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
    module, data = build_classifier(kind, cfg, ctx)
    return fit(module, data, cfg, ctx, **fit_kwargs), module


def run_objective(kind: str, params: Mapping[str, Any], ctx: TrialContext) -> dict[str, float]:
    result, _ = run_classifier(kind, params, ctx)
    return result
