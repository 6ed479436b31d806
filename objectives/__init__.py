"""Built-in Lightning objectives and the acceleration stack they wrap.

``image_classifier`` and ``sequence_classifier`` are objectives in the driver's sense,
``fn(params, ctx) -> dict``: they build the data, a small conv net and its LightningModule from
``params`` (see :class:`TrainConfig` for every key) and train it with :func:`fit`.

They return the metrics of the best epoch by the study's metric (``ctx.metrics[0]``, e.g.
``val_acc`` maximised or ``val_loss`` minimised): ``val_acc``, ``val_loss``, ``train_loss``,
``epoch_time``, ``samples_per_sec`` and ``epoch`` (0-based). Every epoch's metrics go through
``ctx.report(metrics, step=epoch)``. The best epoch's weights are saved to
``ctx.workdir/best.pt`` for the study's best ``keep_checkpoints`` (3) trials.

Any LightningModule gets the same stack: :func:`fit` (or a space file's ``objective.module``)
applies the knobs named in :data:`STACK_KNOBS` to it; see ``objectives._stack`` for what a module
and its batches must look like for each.

Importing this package does not import torch; the functions below import it when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from objectives._config import PARAM_NAMES, STACK_KNOBS, TrainConfig  # noqa: F401 - STACK_KNOBS is public

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hpo._context import TrialContext

__all__ = ["PARAM_NAMES", "TrainConfig", "fit", "image_classifier", "resnet_classifier", "sequence_classifier"]


def image_classifier(params: Mapping[str, Any], ctx: TrialContext) -> dict[str, float]:
    """A 2-D conv net on images: ``digits`` as 1x8x8, ``mnist1d`` as 1x1x40, ``npz`` as given.

    Example (space file)::

        objective: {name: image_classifier, fixed: {dataset: digits, max_epochs: 10}}
    """
    from objectives._fit import run_objective

    return run_objective("image", params, ctx)


def sequence_classifier(params: Mapping[str, Any], ctx: TrialContext) -> dict[str, float]:
    """A 1-D conv net on sequences: ``digits`` as 1x64, ``mnist1d`` as 1x40, ``npz`` as given.

    Example (space file)::

        objective: {name: sequence_classifier, fixed: {dataset: mnist1d, max_epochs: 30}}
    """
    from objectives._fit import run_objective

    return run_objective("sequence", params, ctx)


def resnet_classifier(params: Mapping[str, Any], ctx: TrialContext) -> dict[str, float]:
    """A CIFAR-style ResNet (6n+2 layers, He et al. 2016) on images; every knob of
    ``image_classifier``, with ``arch: resnet``, ``depth: 20`` and ``width: 16`` by default and
    ``shortcut: A`` (zero-padded identity) or ``B`` (1x1 projection).

    Example (space file)::

        objective: {name: resnet_classifier, fixed: {dataset: "imagefolder:data/cifar10", depth: 20}}
    """
    from objectives._fit import run_classifier

    result, _ = run_classifier("image", TrainConfig.for_objective("resnet_classifier", params), ctx)
    return result


def fit(module: Any, data: Any = None, config: Any = None, ctx: TrialContext | None = None, **kwargs: Any):
    """Trains a LightningModule with the trial's callbacks and the knobs of ``config`` (arguments below).

    An objective that returns its module (and data) is trained by hpo with this same function; call
    it yourself to train several modules in one trial, or to use what it returns.

    Example:
        ```python
        from objectives import fit

        def objective(params, ctx):                 # objective: {name: my_objective.py:objective}
            model = MyModule(hidden=params["hidden"])
            return fit(model, (train_loader, val_loader), params, ctx)   # {"val_acc": ..., ...}
        ```
    """
    from objectives._fit import fit as _fit

    return _fit(module, data, config, ctx, **kwargs)
