"""Reading a finished or running study for people: counts, best trials, tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from hpo import _keys as keys

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def state_counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    counts = Counter(t.state.name for t in trials)
    return {state: counts.get(state, 0) for state in STATES}


def format_values(values: Sequence[float] | None) -> str:
    if not values:
        return "-"
    return ", ".join(f"{v:.6g}" for v in values)


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best complete trial, or the Pareto-optimal ones for a multi-objective study (Optuna's)."""
    if len(study.directions) > 1:
        return sorted(study.best_trials, key=lambda t: t.number)
    try:
        return [study.best_trial]
    except ValueError:  # no complete trial yet
        return []


def ranked_trials(trials: Sequence[FrozenTrial], directions: Sequence[str]) -> list[FrozenTrial]:
    """Complete trials, best first (by the first objective for multi-objective studies)."""
    sign = 1.0 if directions[0] == "minimize" else -1.0
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.values]
    return sorted(complete, key=lambda t: (sign * t.values[0], t.number))


def duration(trials: Sequence[FrozenTrial]) -> tuple[timedelta, timedelta]:
    """(wall time from first start to last end, sum of trial durations)."""
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    wall = (max(ends) - min(starts)) if starts and ends else timedelta(0)
    busy = sum((t.duration for t in trials if t.duration), timedelta(0))
    return wall, busy


def workers(trials: Sequence[FrozenTrial]) -> list[str]:
    return sorted({str(t.user_attrs[keys.WORKER]) for t in trials if keys.WORKER in t.user_attrs})


def counts_table(trials: Sequence[FrozenTrial], lost: Collection[int] = ()) -> Table:
    """Trials by state; the FAIL trials in ``lost`` (trial numbers: interrupted, or their worker died;
    run again or replaced, not counted in n_trials) in a column of their own, as the run's progress
    line counts them, not among the failures."""
    counts = dict(state_counts(trials))
    columns = list(STATES)
    n_lost = sum(1 for t in trials if t.number in lost and t.state.name == "FAIL")
    if n_lost:
        counts["FAIL"] -= n_lost
        counts["lost"] = n_lost
        columns.insert(columns.index("FAIL") + 1, "lost")
    table = Table(title="Trials by state")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(*(str(counts[c]) for c in columns))
    if n_lost:
        table.caption = "lost: interrupted, or their worker died; run again or replaced, not counted in n_trials"
    return table


def best_table(best: Sequence[FrozenTrial], metrics: Sequence[str]) -> Table:
    title = "Best trial" if len(best) <= 1 else f"Pareto front ({len(best)} trials)"
    table = Table(title=title)
    table.add_column("trial", justify="right")
    for metric in metrics:
        table.add_column(escape(metric), justify="right")
    table.add_column("params")
    for t in best:
        # Table cells are Rich markup: a param value like "[a]" would vanish without escaping.
        table.add_row(str(t.number), *(f"{v:.6g}" for v in t.values), escape(_params_text(t.params)))
    return table


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in params.items()) or "(none)"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
