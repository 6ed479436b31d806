"""k-fold cross-validation of one trial (the ``cv_folds`` knob): k fits on stratified folds.

The folds split the *training* data, stratified by label and drawn from the trial's seed
(:func:`objectives.techniques.stratified_folds`). Fold ``i`` trains a fresh model on the other
folds and validates on fold ``i``; the dataset's own validation split is not used while
searching (it stays a held-out set for ``hpo train``, which retrains once on all the training data).

What the trial records:

* value: for every metric, the mean over the folds of the fold's best-epoch metrics;
* user attrs ``cv_fold_values`` (each fold's best value of the monitored metric), ``cv_std``
  (their population std) and ``cv_fold_curves`` (``{fold: [monitored metric per epoch]}``, for the
  dashboard's per-fold learning curves);
* MLflow: ``fold<i>/<metric>`` per epoch, ``cv_fold_value`` (step = fold), ``cv_std``;
* the pruner: one number per step ``fold * max_epochs + epoch``, the mean over the folds done so
  far (this one included) of the metric at that epoch. Trials with the same ``max_epochs`` are
  compared at the same fold and epoch, the number settles as folds accumulate, and the step
  counts the epochs trained (the resource Hyperband/ASHA budget). A pruned trial runs no further fold.

Fold models are not kept: each fold's ``best.pt`` is deleted once written (the final model comes
from ``hpo train``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo._keys import CV_FOLD_CURVES, CV_FOLD_VALUES, CV_STD
from objectives.techniques.folds import stratified_folds, train_indices

if TYPE_CHECKING:
    from hpo._context import TrialContext
    from objectives._config import TrainConfig
    from objectives._data import ArrayData

# build(fold, train_indices, held_out_indices) -> (module, data) for that fold's fit
BuildFold = Callable[[int, np.ndarray, np.ndarray], tuple[Any, Any]]


@dataclass
class CrossValidation:
    """The folds' per-epoch metrics of one trial, and what they make the trial report."""

    ctx: TrialContext | None
    monitor: str
    max_epochs: int
    curves: list[dict[int, dict[str, float]]] = field(default_factory=list)  # fold -> epoch -> metrics

    def report(self, fold: int, metrics: Mapping[str, float], epoch: int) -> None:
        """One epoch of one fold: logged per fold; the running mean over folds goes to the trial."""
        while len(self.curves) <= fold:
            self.curves.append({})
        self.curves[fold][epoch] = {k: float(v) for k, v in metrics.items()}
        if self.ctx is None:
            return
        self.ctx.tracker.log_metrics({f"fold{fold}/{k}": v for k, v in self.curves[fold][epoch].items()}, epoch)
        self.ctx.report(self.running_mean(epoch), step=fold * self.max_epochs + epoch)

    def running_mean(self, epoch: int) -> dict[str, float]:
        """Each metric's mean at ``epoch`` over the folds that reached it."""
        rows = [c[epoch] for c in self.curves if epoch in c]
        keys = set.intersection(*(set(r) for r in rows)) if rows else set()
        return {k: float(np.mean([r[k] for r in rows])) for k in sorted(keys)}

    def fold_curves(self) -> dict[str, list[float | None]]:
        """``{"0": [monitored metric per epoch], ...}``: JSON-able for a trial user attr."""
        out = {}
        for fold, curve in enumerate(self.curves):
            epochs = range(max(curve, default=-1) + 1)
            out[str(fold)] = [curve.get(e, {}).get(self.monitor) for e in epochs]
        return out

    def finish(self, results: list[dict[str, float]]) -> dict[str, float]:
        """The trial's metrics (each the mean over folds); records per-fold values and their std."""
        keys = set.intersection(*(set(r) for r in results))
        mean = {k: float(np.mean([r[k] for r in results])) for k in sorted(keys)}
        values = [float(r[self.monitor]) for r in results if self.monitor in r]
        if self.ctx is not None and values:
            std = float(np.std(values))
            self.ctx.set_user_attr(CV_FOLD_VALUES, values)
            self.ctx.set_user_attr(CV_STD, std)
            for fold, value in enumerate(values):
                self.ctx.tracker.log_metrics({"cv_fold_value": value}, fold)
            self.ctx.tracker.log_metrics({"cv_std": std}, 0)
        return mean


class FoldContext:
    """The trial context one fold's fit sees: reports go through :class:`CrossValidation`, the
    fold's checkpoint is discarded, everything else is the trial's own context."""

    def __init__(self, ctx: TrialContext, fold: int, cv: CrossValidation) -> None:
        self._ctx, self.fold, self._cv = ctx, fold, cv
        self.workdir = Path(ctx.workdir) / f"fold-{fold}"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def report(self, metrics: float | Mapping[str, float], step: int) -> None:
        if not isinstance(metrics, Mapping):
            metrics = {self._ctx.metrics[0]: float(metrics)}
        self._cv.report(self.fold, metrics, step)

    def should_prune(self) -> bool:
        return self._ctx.should_prune()

    def set_checkpoint(self, path: str | Path, keep: int | None = None) -> None:
        # A fold's model saw part of the data only: not the trial's model (see the module docstring).
        Path(path).unlink(missing_ok=True)


def cross_validate(
    labels: np.ndarray, cfg: TrainConfig, ctx: TrialContext | None, build: BuildFold, **fit_kwargs: Any
) -> tuple[dict[str, float], Any]:
    """Trains one model per fold of ``labels`` (``cfg.cv_folds`` folds, seeded by ``cfg.seed``);
    returns ``(mean of the folds' best-epoch metrics, the last fold's module)``.

    Raises:
        optuna.TrialPruned: from the fold during which the pruner stopped the trial; no later fold runs.
    """
    from objectives._fit import _monitor, fit

    folds = stratified_folds(labels, cfg.cv_folds, cfg.effective_seed)
    monitor, mode = _monitor(ctx, fit_kwargs.pop("monitor", None), fit_kwargs.pop("mode", None))
    cv = CrossValidation(ctx, monitor, cfg.max_epochs)
    fold_cfg = cfg.replace(cv_folds=0)
    results, module = [], None
    try:
        for fold, held_out in enumerate(folds):
            module, data = build(fold, train_indices(len(labels), held_out), held_out)
            fold_ctx = FoldContext(ctx, fold, cv) if ctx is not None else None
            try:
                results.append(fit(module, data, fold_cfg, fold_ctx, monitor=monitor, mode=mode, **fit_kwargs))
            finally:
                if fold_ctx is not None:
                    shutil.rmtree(fold_ctx.workdir, ignore_errors=True)
    finally:
        if ctx is not None and cv.curves:  # a pruned trial's folds too: the dashboard shows where it stopped
            ctx.set_user_attr(CV_FOLD_CURVES, cv.fold_curves())
    return cv.finish(results), module


# -- the built-in objectives -----------------------------------------------------------------------


def fold_arrays(arrays: ArrayData, train: np.ndarray, held_out: np.ndarray) -> ArrayData:
    """One fold of ``arrays``' training part: trains on ``train``, validates on ``held_out``."""
    from objectives._data import ArrayData

    return ArrayData(arrays.x[train], arrays.y[train], arrays.x[held_out], arrays.y[held_out],
                     arrays.num_classes, arrays.name)


def cross_validate_classifier(
    kind: str, cfg: TrainConfig, ctx: TrialContext | None, **fit_kwargs: Any
) -> tuple[dict[str, float], Any]:
    """:func:`cross_validate` of a built-in objective over its dataset's training arrays."""
    from objectives._data import load_dataset
    from objectives._fit import build_classifier

    arrays = load_dataset(cfg.dataset, kind, cfg.val_fraction, image_size=cfg.image_size)

    def build(fold: int, train: np.ndarray, held_out: np.ndarray) -> tuple[Any, Any]:
        return build_classifier(kind, cfg, ctx, arrays=fold_arrays(arrays, train, held_out))

    return cross_validate(arrays.y, cfg, ctx, build, **fit_kwargs)



# -- any LightningModule (objectives.fit) ------------------------------------------------------------

_LABEL_ATTRS = ("targets", "labels")  # torchvision's datasets and others keep their labels here
_LABEL_KEYS = ("label", "labels", "target", "y")
CONTRACT = ("cross-validation of your own module needs a training DataLoader (from the data's (train, val) "
            "pair, its LightningDataModule's train_dataloader() or the module's) over a map-style Dataset "
            "whose samples are (input, integer label) or that has a targets/labels attribute, and an "
            "integer batch_size")


def training_loader(module: Any, data: Any) -> Any:
    """The training DataLoader of ``data`` (as ``objectives.fit`` takes it) or of the module itself."""
    from objectives._namespace import is_datamodule

    if data is None:
        return module.train_dataloader()
    if is_datamodule(data):
        data.setup("fit")
        return data.train_dataloader()
    if hasattr(data, "train") and hasattr(data, "val"):
        return data.train
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0]
    if isinstance(data, Mapping) and "train" in data:
        return data["train"]
    return data


def _label(sample: Any) -> Any:
    if isinstance(sample, (tuple, list)) and len(sample) >= 2:
        return sample[1]
    if isinstance(sample, Mapping):
        return next((sample[k] for k in _LABEL_KEYS if k in sample), None)
    return None


def dataset_labels(loader: Any) -> np.ndarray:
    """The integer labels of a DataLoader's map-style dataset, for stratified folds.

    Raises:
        ValueError: ``cv_folds: ...`` saying what of :data:`CONTRACT` is missing.
    """
    import torch
    from torch.utils.data import DataLoader, IterableDataset, TensorDataset

    dataset = getattr(loader, "dataset", None)
    if not isinstance(loader, DataLoader) or isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        raise ValueError(f"cv_folds: {CONTRACT}; got a training loader {type(loader).__name__} over "
                         f"{type(dataset).__name__}")
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        labels = dataset.tensors[1]
    else:
        attr = next((a for a in _LABEL_ATTRS if hasattr(dataset, a)), None)
        labels = getattr(dataset, attr) if attr else [_label(dataset[i]) for i in range(len(dataset))]
    try:
        array = np.asarray(torch.as_tensor(labels).cpu())
    except (TypeError, ValueError, RuntimeError):
        array = np.asarray([], dtype=np.float32)
    if array.shape != (len(dataset),) or not np.issubdtype(array.dtype, np.integer):
        first = labels[0] if len(labels) else None
        raise ValueError(f"cv_folds: {CONTRACT}; the labels of {type(dataset).__name__} are not one integer per "
                         f"sample (the first: {first!r})")
    return array


def fold_loader(loader: Any, indices: np.ndarray, *, train: bool) -> Any:
    """A DataLoader like ``loader`` over ``indices`` of its dataset (shuffled for training)."""
    from torch.utils.data import DataLoader, Subset

    if loader.batch_size is None:  # a batch_sampler of the user's: its indices cannot be restricted
        raise ValueError(f"cv_folds: {CONTRACT}; the training loader has a batch_sampler")
    return DataLoader(Subset(loader.dataset, indices.tolist()), batch_size=loader.batch_size, shuffle=train,
                      drop_last=loader.drop_last and train, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      persistent_workers=loader.persistent_workers)


def cross_validate_module(
    module: Any, data: Any, cfg: TrainConfig, ctx: TrialContext | None, **fit_kwargs: Any
) -> dict[str, float]:
    """:func:`cross_validate` of a user's module: each fold trains a copy of the untrained ``module``
    on folds of its training DataLoader's dataset (see :data:`CONTRACT`); ``data``'s validation
    loader is not used. Returns the mean of the folds' best-epoch metrics."""
    import copy

    if cfg.seed is None and ctx is not None:
        cfg = cfg.replace(seed=int(ctx.seed))
    initial = copy.deepcopy(module)  # every fold starts from the same weights
    loader = training_loader(initial, data)
    labels = dataset_labels(loader)

    def build(fold: int, train: np.ndarray, held_out: np.ndarray) -> tuple[Any, Any]:
        return copy.deepcopy(initial), (fold_loader(loader, train, train=True),
                                        fold_loader(loader, held_out, train=False))

    return cross_validate(labels, cfg, ctx, build, **fit_kwargs)[0]
