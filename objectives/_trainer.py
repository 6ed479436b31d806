"""One process's Lightning fit with hpo's callbacks: the Trainer of the module's own Lightning
package, precision, accumulation, clipping, DDP strategy, CPU threads; :func:`fit_local`.

``objectives._fit.fit`` resolves a :class:`FitRequest` and hands it here (one process) or to
``objectives._ddp`` (which runs this in every rank).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch

from objectives import _sparsity
from objectives._callbacks import callback_classes, combined
from objectives._config import TrainConfig
from objectives._finetune import finetune_callback, is_finetuning
from objectives._namespace import NAMESPACES, is_datamodule, namespace_of
from objectives._stack import stack_installed

if TYPE_CHECKING:
    from hpo._context import TrialContext


for _ns in NAMESPACES:
    for _name in ("utilities.rank_zero", "accelerators.cuda", "utilities.seed", "strategies.ddp"):
        logging.getLogger(f"{_ns}.{_name}").setLevel(logging.WARNING)
for _name in ("lightning_fabric.utilities.seed", "lightning_fabric.utilities.distributed",
              "lightning.fabric.utilities.seed", "lightning.fabric.utilities.distributed"):
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


def _place(loaders: list[Any], accelerator: str, world_size: int) -> None:
    """Moves index-batched device data (``DeviceBatches``) to this process's training device and
    tells it the DDP rank (set in the environment by ``objectives._ddp``)."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0)) if world_size > 1 else 0
    rank = int(os.environ.get("RANK", 0)) if world_size > 1 else 0
    device = torch.device("cuda", local_rank) if accelerator == "gpu" else torch.device("cpu")
    for loader in loaders:
        if loader is not None and hasattr(loader, "place"):
            loader.place(device, rank, world_size)


@dataclass
class FitRequest:
    """One fit: what to train, with which knobs, for which trial, and how to pick the best epoch
    (what :func:`fit` resolved; :func:`fit_local` and ``_ddp.fit_ddp`` take it as it is)."""

    module: Any
    data: Any
    cfg: TrainConfig
    ctx: TrialContext | None
    monitor: str
    mode: str
    restore_best: bool = False
    callbacks: list[Any] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    pl.seed_everything(int(seed), workers=False, verbose=False)


def _loaders(data: Any) -> tuple[dict[str, Any], list[Any]]:
    """``trainer.fit`` keyword arguments for ``data``, and the loaders to place on the device."""
    if data is None:
        return {}, []
    if is_datamodule(data):
        return {"datamodule": data}, []
    if hasattr(data, "train") and hasattr(data, "val"):
        return {"train_dataloaders": data.train, "val_dataloaders": data.val}, [data.train, data.val]
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return {"train_dataloaders": data[0], "val_dataloaders": data[1]}, list(data)
    if isinstance(data, Mapping) and "train" in data:
        loaders = [data["train"], data.get("val")]
        return {"train_dataloaders": data["train"], "val_dataloaders": data.get("val")}, loaders
    return {"train_dataloaders": data}, [data]


def fit_local(request: FitRequest, world_size: int = 1) -> dict[str, float]:
    """One process's share of :func:`fit` (the whole of it when ``world_size == 1``)."""
    ns = namespace_of(request.module, request.data)
    cfg = request.cfg
    accelerator = _accelerator()
    fit_kwargs, loaders = _loaders(request.data)
    _place(loaders, accelerator, world_size)
    callbacks, best = _callbacks(ns.__name__, request)
    own_batches = all(hasattr(ld, "place") for ld in loaders if ld is not None) and bool(loaders)
    root = Path(request.ctx.workdir) if request.ctx is not None else None
    seed_everything(cfg.effective_seed)
    with warnings.catch_warnings(), _cpu_threads(cfg.threads, world_size, accelerator):
        for pattern in _QUIET:
            warnings.filterwarnings("ignore", message=pattern)
        trainer = ns.Trainer(
            accelerator=accelerator,
            **_strategy(ns.__name__, accelerator, world_size),
            precision=_precision(cfg.precision, accelerator),
            max_epochs=cfg.max_epochs,
            accumulate_grad_batches=cfg.accumulate_grad_batches,
            gradient_clip_val=cfg.grad_clip_norm or None,
            gradient_clip_algorithm="norm",
            callbacks=callbacks,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            num_sanity_val_steps=0,
            use_distributed_sampler=not own_batches,
            default_root_dir=str(root) if root is not None else None,
        )
        with stack_installed(request.module, cfg):
            trainer.fit(request.module, **fit_kwargs)
    return dict(best.best_metrics or best.last_metrics)


def _callbacks(namespace: str, request: FitRequest) -> tuple[list[Any], Any]:
    """hpo's callbacks (in their documented order, as one) then the caller's; and the ``BestWeights``
    among them."""
    hooks = callback_classes(namespace)
    cfg = request.cfg
    best = hooks.BestWeights(request.ctx, request.monitor, request.mode, keep=cfg.keep_checkpoints,
                             restore=request.restore_best)
    out: list[Any] = [hooks.EpochMetrics()]
    if is_finetuning(cfg):  # before AGC: its setup skips the parameters frozen here
        out.append(finetune_callback(namespace, cfg))
    if cfg.agc_clip > 0:
        out.append(hooks.AdaptiveGradientClipping(cfg.agc_clip, exclude=cfg.agc_exclude))
    out += _sparsity.callbacks(namespace, cfg)  # before BestWeights: it saves the masks made permanent
    out += [best, hooks.PruningCallback(request.ctx), hooks.StudyMetricCheck(request.ctx, request.monitor)]
    return [combined(namespace, out), *request.callbacks], best


def _strategy(namespace: str, accelerator: str, world_size: int) -> dict[str, Any]:
    """The Trainer's ``strategy`` and ``devices``: DDP over an externally launched cluster (``_ddp``)."""
    if world_size <= 1:
        return {"strategy": "auto", "devices": 1}
    environments = importlib.import_module(f"{namespace}.plugins.environments")
    strategies = importlib.import_module(f"{namespace}.strategies")
    strategy = strategies.DDPStrategy(
        cluster_environment=environments.LightningEnvironment(),
        process_group_backend="nccl" if accelerator == "gpu" else "gloo",
        timeout=DDP_TIMEOUT,
    )
    return {"strategy": strategy, "devices": world_size}
