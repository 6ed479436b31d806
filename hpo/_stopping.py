"""``study.stop_when``: when a study has found what it needs, no new trial starts.

Example:
    >>> from hpo._spec import StopRule
    >>> early_stop_reason([0.5, 0.7, 0.71, 0.705], "maximize", StopRule(patience=2, min_delta=0.02))
    'no improvement above 0.02 in the last 2 trials (best 0.71)'
    >>> early_stop_reason([0.5, 0.97], "maximize", StopRule(target=0.95))
    'target 0.95 reached (best 0.97)'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from hpo._spec import StopRule


def early_stop_reason(values: Sequence[float], direction: str, rule: StopRule) -> str | None:
    """Why the study should stop, given its complete trials' values in the order they finished; else None.

    ``patience`` counts complete trials since the last improvement by more than ``min_delta``.
    """
    if not values:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    best = last_improvement = None
    for i, value in enumerate(values):
        if best is None or sign * (value - best) > rule.min_delta:
            last_improvement = i
        if best is None or sign * (value - best) > 0:
            best = value
    if rule.target is not None and sign * (best - rule.target) >= 0:
        return f"target {rule.target:g} reached (best {best:g})"
    if rule.patience is not None and len(values) - 1 - last_improvement >= rule.patience:
        return f"no improvement above {rule.min_delta:g} in the last {rule.patience} trials (best {best:g})"
    return None


def study_stop_reason(study: optuna.Study, rule: StopRule | None) -> str | None:
    """:func:`early_stop_reason` over the study's complete trials (single objective only)."""
    from optuna.trial import TrialState

    if rule is None:
        return None
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.datetime_complete]
    done.sort(key=lambda t: t.datetime_complete)
    return early_stop_reason([t.values[0] for t in done], study.directions[0].name.lower(), rule)
