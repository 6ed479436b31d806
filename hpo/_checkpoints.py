"""Checkpoint retention: after a trial is told, only the study's best ``keep`` trials keep their weights.

The driver does this, not the objective: it runs once the trial's value is in the study (so the
trial ranks with its final value), and an objective never needs to read other trials.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

from hpo import _keys as keys

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


def retain_best(study: optuna.Study, keep: int) -> list[int]:
    """Deletes the checkpoint files of complete trials outside the study's best ``keep``.

    Ranks by the first objective (ties: the earlier trial wins); ``keep <= 0`` keeps everything.
    A deleted trial's ``checkpoint`` attr stays (a finished trial's attrs are final); the exporter
    reports such a file as gone. Safe with concurrent workers: a trial that left the best ``keep``
    never comes back, so deleting twice is harmless. Returns the numbers of the trials whose file
    was deleted.
    """
    from optuna.trial import TrialState

    if keep <= 0:
        return []
    maximize = study.directions[0].name == "MAXIMIZE"
    ranked = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        path = t.user_attrs.get(keys.CHECKPOINT)
        if path and t.values and t.values[0] is not None and math.isfinite(t.values[0]):
            ranked.append((-t.values[0] if maximize else t.values[0], t.number, Path(path)))
    ranked.sort()
    deleted = []
    for _, number, path in ranked[keep:]:
        if discard(path):
            deleted.append(number)
    return deleted


def discard(path: str | Path) -> bool:
    """Deletes a checkpoint file; True if it was there. A file that cannot be deleted is logged, not raised."""
    path = Path(path)
    try:
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed
    except OSError as exc:
        log.warning("could not delete checkpoint %s: %s", path, exc)
        return False
