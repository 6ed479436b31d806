"""What an objective gets besides its params: reporting, pruning, a work folder."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo._keys import CHECKPOINT

if TYPE_CHECKING:
    import optuna

    from hpo.tracking import Tracker


@dataclass
class TrialContext:
    """Handed to every objective as its second argument.

    Example:
        An objective that reports its metric every epoch and stops when the pruner says so
        (space file: ``objective: {name: my_objective.py:objective}``, ``study.metric: loss``):

        >>> import hpo
        >>> def objective(params, ctx):
        ...     for epoch in range(4):
        ...         loss = (params["x"] - 2.0) ** 2 + 1.0 / (epoch + 1)   # one epoch of training
        ...         ctx.report({"loss": loss}, step=epoch)
        ...         if ctx.should_prune():
        ...             raise hpo.TrialPruned()
        ...     return {"loss": loss}
        >>> trials = run_demo_study(objective)   # stands for `hpo run`: 3 trials, x = 1, 2, 3
        >>> trials[1].intermediate_values        # what ctx.report gave the pruner, per epoch
        {0: 1.0, 1: 0.5, 2: 0.3333333333333333, 3: 0.25}

    Attributes:
        trial: the Optuna trial (for ``trial.number``, user attrs, ...).
        params: the sampled hyperparameters.
        config: ``fixed`` merged with ``params``: what the objective is called with.
        metrics: the study's metric names, one per direction.
        seed: a per-trial seed derived from the study seed and the trial number.
        workdir: a folder of this trial's own under the study's run folder.
        study_dir: the study's run folder (``./hpo-runs/<study>/``), for study-wide caches.
        tracker: where metrics go besides Optuna (MLflow, or nothing).
    """

    trial: optuna.Trial
    params: dict[str, Any]
    config: dict[str, Any]
    metrics: tuple[str, ...]
    seed: int
    workdir: Path
    study_dir: Path
    tracker: Tracker
    checkpoint: str | None = None
    last_step: int | None = field(default=None, init=False)
    keep_checkpoints: int | None = field(default=None, init=False)
    # ``(module, data)`` of the trial's last ``objectives.fit``: what ``hpo train --quantize`` quantizes
    # and measures (an objective's own return value is only its metrics).
    fitted: tuple[Any, Any] | None = field(default=None, init=False, repr=False)

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    def report(self, metrics: float | Mapping[str, float], step: int) -> None:
        """Reports one step's metrics: the study metric to the pruner, all of them to the tracker.

        A bare float is taken as the study metric.
        """
        from hpo._signals import raise_if_signalled

        raise_if_signalled()  # a SIGTERM whose exception something swallowed still stops the trial
        if not isinstance(metrics, Mapping):
            metrics = {self.metrics[0]: float(metrics)}
        metrics = {k: float(v) for k, v in metrics.items()}
        self.last_step = step
        self.tracker.log_metrics(metrics, step)
        value = metrics.get(self.metrics[0])
        # Optuna supports intermediate values (and so pruning) only for single-objective studies.
        if not self.multi_objective and value is not None and math.isfinite(value):
            self.trial.report(value, step)

    def should_prune(self) -> bool:
        """Whether the study's pruner wants this trial stopped (always False for multi-objective)."""
        return not self.multi_objective and self.trial.should_prune()

    @property
    def directions(self) -> tuple[str, ...]:
        """``"maximize"``/``"minimize"``, one per metric; empty when the trial has no study behind it."""
        study = getattr(self.trial, "study", None)
        return tuple(d.name.lower() for d in study.directions) if study is not None else ()

    def set_user_attr(self, key: str, value: Any) -> None:
        """Records ``key: value`` on the trial (shown by ``hpo status``/``best`` and exported)."""
        self.trial.set_user_attr(key, value)

    def completed_trials(self) -> list[optuna.trial.FrozenTrial]:
        """The study's finished trials (empty when the trial has no study behind it)."""
        from optuna.trial import TrialState

        study = getattr(self.trial, "study", None)
        return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if study is not None else []

    def set_checkpoint(self, path: str | Path, keep: int | None = None) -> None:
        """Records where this trial's best weights are (kept on the trial and in the tracker).

        ``keep``: the driver then deletes the checkpoints of complete trials outside the study's best
        ``keep`` once this trial is told (``0`` or None keeps every file); a trial that does not end
        COMPLETE has its file deleted.
        """
        self.checkpoint = str(path)
        self.keep_checkpoints = keep
        self.set_user_attr(CHECKPOINT, self.checkpoint)
