"""Data extraction for the study dashboard.

Everything here turns an :class:`optuna.Study` into pandas DataFrames or small dataclasses;
nothing here draws. The figures in :mod:`dashboards._figures` are built from these results, so the
numbers on the page are exactly the numbers these functions return (and the tests check).
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "STATE_ORDER",
    "UNKNOWN_WORKER",
    "ImportanceResult",
    "PruningSavings",
    "StudySummary",
    "best_so_far",
    "best_so_far_by_cost",
    "epochs_to_reach",
    "reach_targets",
    "failures",
    "fold_curves",
    "learning_curves",
    "objective_names",
    "param_importances",
    "pareto_front",
    "pruning_savings",
    "resolve_max_epochs",
    "state_counts",
    "study_summary",
    "timeline",
    "worker_summary",
]

#: Trial states in the order the header lists them.
STATE_ORDER: tuple[str, ...] = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
#: Worker label for trials without a ``worker`` user attribute.
UNKNOWN_WORKER = "unknown"


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _trials(study: optuna.Study) -> list[FrozenTrial]:
    return list(study.get_trials(deepcopy=False))


def _is_multi(study: optuna.Study) -> bool:
    return len(study.directions) > 1


def _maximize(study: optuna.Study, objective: int = 0) -> bool:
    return study.directions[objective] == StudyDirection.MAXIMIZE


def _worker(trial: FrozenTrial) -> str:
    w = trial.user_attrs.get("worker")
    if w is None or (isinstance(w, str) and not w.strip()):
        return UNKNOWN_WORKER
    return str(w)


def _objective_value(trial: FrozenTrial, objective: int) -> float | None:
    values = trial.values
    if values is None or objective >= len(values):
        return None
    return float(values[objective])


def _completion_key(trial: FrozenTrial) -> tuple:
    # Trials without a completion time (should not happen for finished ones) sort last.
    dc = trial.datetime_complete
    return (dc is None, dc or _dt.datetime.max, trial.number)


def objective_names(study: optuna.Study, info: Mapping[str, Any] | None = None) -> list[str]:
    """Names of the study's objectives: ``info['metrics']``, the study's ``metrics`` user attr,
    Optuna's metric names, or ``objective_0`` ... — in that order of preference."""
    n = len(study.directions)
    candidates: list[Any] = []
    if info:
        candidates.append(info.get("metrics"))
        candidates.append(info.get("metric"))
    candidates.append(study.user_attrs.get("metrics"))
    candidates.append(study.user_attrs.get("metric"))
    try:
        candidates.append(study.metric_names)
    except Exception:  # pragma: no cover - older/newer Optuna without metric_names
        pass
    for cand in candidates:
        if cand is None:
            continue
        if isinstance(cand, str):
            cand = [cand]
        try:
            names = [str(c) for c in cand]
        except TypeError:
            continue
        if len(names) == n:
            return names
    if n == 1:
        return ["value"]
    return [f"objective_{i}" for i in range(n)]


# --------------------------------------------------------------------------------------------
# counts, summary
# --------------------------------------------------------------------------------------------


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Number of trials per state, with every state present (zero when none)."""
    counts = {s: 0 for s in STATE_ORDER}
    for t in _trials(study):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _fmt_setting(value: Any) -> str | None:
    """Render a sampler/pruner/objective setting, which may be a string or {name, options}."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        name = value.get("name")
        opts = value.get("options")
        if name is not None:
            if opts:
                inner = ", ".join(f"{k}={v}" for k, v in dict(opts).items())
                return f"{name} ({inner})"
            return str(name)
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


@dataclass
class StudySummary:
    """What the page header shows."""

    study_name: str
    directions: list[str]
    objective_names: list[str]
    sampler: str | None
    pruner: str | None
    objective: str | None
    space_file: str | None
    max_epochs: int | None
    state_counts: dict[str, int]
    n_trials: int
    is_multi_objective: bool
    best_value: float | None = None
    best_trial_number: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_user_attrs: dict[str, Any] = field(default_factory=dict)
    pareto_size: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_complete(self) -> int:
        return self.state_counts.get("COMPLETE", 0)


_KNOWN_INFO_KEYS = {"study_name", "sampler", "pruner", "objective", "metrics", "metric",
                    "max_epochs", "space_file", "mlflow_run_ids"}


def resolve_max_epochs(study: optuna.Study, info: Mapping[str, Any] | None = None) -> int | None:
    """``max_epochs`` from ``info``, else the study's ``fixed.max_epochs`` / ``max_epochs`` user
    attrs; ``None`` when nowhere configured (callers then fall back to what they observe)."""
    candidates: list[Any] = []
    if info:
        candidates.append(info.get("max_epochs"))
    fixed = study.user_attrs.get("fixed")
    if isinstance(fixed, Mapping):
        candidates.append(fixed.get("max_epochs"))
    candidates.append(study.user_attrs.get("max_epochs"))
    for c in candidates:
        if c is None or isinstance(c, bool):
            continue
        try:
            v = int(c)
        except (TypeError, ValueError):
            continue
        if v > 0:
            return v
    return None


def study_summary(study: optuna.Study, info: Mapping[str, Any] | None = None) -> StudySummary:
    """Header data: names and settings (``info`` first, then study user attrs, then the live
    sampler/pruner objects), counts by state, best value and config (or Pareto set size)."""
    info = dict(info or {})
    ua = study.user_attrs

    def pick(key: str) -> Any:
        v = info.get(key)
        return v if v is not None else ua.get(key)

    sampler = _fmt_setting(pick("sampler"))
    if sampler is None:
        sampler = type(study.sampler).__name__
    pruner = _fmt_setting(pick("pruner"))
    if pruner is None:
        live = getattr(study, "pruner", None)
        pruner = type(live).__name__ if live is not None else None
    objective = _fmt_setting(pick("objective"))
    space_file = pick("space_file")
    counts = state_counts(study)
    multi = _is_multi(study)
    summary = StudySummary(
        study_name=str(info.get("study_name") or study.study_name),
        directions=[d.name.lower() for d in study.directions],
        objective_names=objective_names(study, info),
        sampler=sampler,
        pruner=pruner,
        objective=objective,
        space_file=str(space_file) if space_file is not None else None,
        max_epochs=resolve_max_epochs(study, info),
        state_counts=counts,
        n_trials=sum(counts.values()),
        is_multi_objective=multi,
        extras={k: v for k, v in info.items() if k not in _KNOWN_INFO_KEYS and v is not None},
    )
    if counts["COMPLETE"]:
        if multi:
            summary.pareto_size = len(study.best_trials)
        else:
            best = study.best_trial
            summary.best_value = best.value
            summary.best_trial_number = best.number
            summary.best_params = dict(best.params)
            summary.best_user_attrs = dict(best.user_attrs)
            run_id = (info.get("mlflow_run_ids") or {}).get(best.number)
            if run_id is not None and summary.best_user_attrs.get("mlflow_run_id") is None:
                summary.best_user_attrs["mlflow_run_id"] = run_id
    elif multi:
        summary.pareto_size = 0
    return summary


# --------------------------------------------------------------------------------------------
# optimisation history
# --------------------------------------------------------------------------------------------


def best_so_far(study: optuna.Study, objective: int = 0) -> pd.DataFrame:
    """Completed trials in trial-number order with the best value reached so far.

    Columns: ``number``, ``datetime_complete``, ``value``, ``best_so_far`` (running min or max by
    the objective's direction) and ``improved`` (the trial set a new best).
    """
    maximize = _maximize(study, objective)
    rows = []
    best: float | None = None
    for t in sorted(_trials(study), key=lambda t: t.number):
        if t.state != TrialState.COMPLETE:
            continue
        v = _objective_value(t, objective)
        if v is None or math.isnan(v):
            continue
        improved = best is None or (v > best if maximize else v < best)
        if improved:
            best = v
        rows.append({"number": t.number, "datetime_complete": t.datetime_complete, "value": v,
                     "best_so_far": best, "improved": improved})
    return pd.DataFrame(rows, columns=["number", "datetime_complete", "value", "best_so_far",
                                       "improved"])


def best_so_far_by_cost(
    trials: Sequence[tuple[float, float, float | None]], maximize: bool = True
) -> list[tuple[float, float, float]]:
    """Anytime curve of a search: ``(cumulative epochs, cumulative seconds, best value so far)`` after
    each trial that has a value.

    ``trials`` are ``(epochs, seconds, value)`` in the order the trials finished; a pruned trial
    (value None or NaN) adds its cost but no value.
    """
    out: list[tuple[float, float, float]] = []
    epochs = seconds = 0.0
    best: float | None = None
    for n_epochs, n_seconds, value in trials:
        epochs += n_epochs
        seconds += n_seconds
        if value is None or math.isnan(value):
            continue
        if best is None or (value > best if maximize else value < best):
            best = value
        out.append((epochs, seconds, best))
    return out


#: Targets of the "epochs to reach" panel: these fractions of the way from the study's first best value
#: to its final best.
REACH_FRACTIONS: tuple[float, ...] = (0.5, 0.9, 0.99, 1.0)


def reach_targets(curve: pd.DataFrame, fractions: Sequence[float] = REACH_FRACTIONS) -> list[float]:
    """Values between the first and the final ``best_so_far`` of ``curve`` (distinct, in order)."""
    best = curve["best_so_far"].dropna()
    if best.empty:
        return []
    first, final = float(best.iloc[0]), float(best.iloc[-1])
    return list(dict.fromkeys(first + f * (final - first) for f in fractions))


def epochs_to_reach(curve: pd.DataFrame, targets: Sequence[float], maximize: bool = True) -> pd.DataFrame:
    """For each target, the first finished trial after which ``best_so_far`` reached it.

    ``curve`` is :attr:`PruningSavings.curve`. Columns: ``target``, ``number`` (that trial),
    ``cum_epochs`` (epochs trained by then) and ``cum_epochs_without_pruning`` (what the same trials
    would have trained without pruning); NaN where the target was never reached.
    """
    rows = []
    done = curve[curve["best_so_far"].notna()]
    for target in targets:
        hit = done[done["best_so_far"] >= target] if maximize else done[done["best_so_far"] <= target]
        first = hit.iloc[0] if len(hit) else None
        rows.append({"target": target,
                     "number": math.nan if first is None else first["number"],
                     "cum_epochs": math.nan if first is None else first["cum_epochs"],
                     "cum_epochs_without_pruning": math.nan if first is None else first["cum_epochs_without_pruning"]})
    return pd.DataFrame(rows, columns=["target", "number", "cum_epochs", "cum_epochs_without_pruning"])


# --------------------------------------------------------------------------------------------
# learning curves
# --------------------------------------------------------------------------------------------


def learning_curves(study: optuna.Study) -> pd.DataFrame:
    """Intermediate values of every trial, one row per (trial, step).

    Columns: ``number``, ``state`` (name), ``worker``, ``step``, ``value``, ``pruned`` (the trial
    was pruned), ``last`` (this is the trial's last reported step — for a pruned trial, where it
    was stopped), ``is_best`` (the study's best trial; single-objective only).
    """
    best_number = None
    if not _is_multi(study):
        try:
            best_number = study.best_trial.number
        except ValueError:
            best_number = None
    rows = []
    for t in sorted(_trials(study), key=lambda t: t.number):
        iv = t.intermediate_values
        if not iv:
            continue
        steps = sorted(iv)
        last_step = steps[-1]
        for s in steps:
            rows.append({
                "number": t.number,
                "state": t.state.name,
                "worker": _worker(t),
                "step": int(s),
                "value": float(iv[s]),
                "pruned": t.state == TrialState.PRUNED,
                "last": s == last_step,
                "is_best": t.number == best_number,
            })
    return pd.DataFrame(rows, columns=["number", "state", "worker", "step", "value", "pruned",
                                       "last", "is_best"])


#: Trial user attribute of a cross-validated trial: ``{fold: [metric per epoch]}`` (hpo's
#: ``hpo._keys.CV_FOLD_CURVES``; spelled here because this library does not import hpo).
FOLD_CURVES_ATTR = "cv_fold_curves"


def fold_curves(study: optuna.Study) -> pd.DataFrame:
    """Per-fold learning curves of cross-validated trials, one row per (trial, fold, epoch).

    Columns: ``number``, ``state``, ``fold``, ``epoch``, ``value``, ``is_best``. Empty when no
    trial has the ``cv_fold_curves`` user attribute (the study did not cross-validate).
    """
    best_number = None
    if not _is_multi(study):
        try:
            best_number = study.best_trial.number
        except ValueError:
            pass
    rows = []
    for t in sorted(_trials(study), key=lambda t: t.number):
        curves = t.user_attrs.get(FOLD_CURVES_ATTR)
        if not isinstance(curves, Mapping):
            continue
        for fold in sorted(curves, key=lambda f: int(f)):
            for epoch, value in enumerate(curves[fold] or []):
                if isinstance(value, (int, float)) and math.isfinite(value):
                    rows.append({"number": t.number, "state": t.state.name, "fold": int(fold), "epoch": epoch,
                                 "value": float(value), "is_best": t.number == best_number})
    return pd.DataFrame(rows, columns=["number", "state", "fold", "epoch", "value", "is_best"])


# --------------------------------------------------------------------------------------------
# timeline / workers
# --------------------------------------------------------------------------------------------


def timeline(study: optuna.Study, now: _dt.datetime | None = None) -> pd.DataFrame:
    """One row per started trial: ``number``, ``worker``, ``state``, ``start``, ``end``,
    ``duration_s``, ``running``.

    For unfinished (RUNNING) trials ``end`` is the last event recorded in the study (latest start
    or completion time of any trial), or ``now`` when given: a report drawn long after a worker
    died does not stretch the time axis to today. Sorted by worker, then start time, so rows are
    grouped by worker.
    """
    trials = _trials(study)
    if now is None:
        events = [d for t in trials for d in (t.datetime_start, t.datetime_complete)
                  if d is not None]
        now = max(events) if events else _dt.datetime.now()
    rows = []
    for t in trials:
        if t.datetime_start is None:  # WAITING trials never started
            continue
        end = t.datetime_complete
        running = end is None
        if running:
            end = max(now, t.datetime_start)
        rows.append({
            "number": t.number,
            "worker": _worker(t),
            "state": t.state.name,
            "start": t.datetime_start,
            "end": end,
            "duration_s": (end - t.datetime_start).total_seconds(),
            "running": running,
        })
    df = pd.DataFrame(rows, columns=["number", "worker", "state", "start", "end", "duration_s",
                                     "running"])
    if not df.empty:
        df = df.sort_values(["worker", "start", "number"], kind="stable").reset_index(drop=True)
    return df


def worker_summary(study: optuna.Study, now: _dt.datetime | None = None) -> pd.DataFrame:
    """Per worker: ``worker``, ``n_trials``, one ``n_<state>`` column per state, ``busy_s``
    (sum of trial durations), ``mean_s``, ``first_start``, ``last_end``."""
    tl = timeline(study, now=now)
    cols = (["worker", "n_trials"] + [f"n_{s.lower()}" for s in STATE_ORDER]
            + ["busy_s", "mean_s", "first_start", "last_end"])
    if tl.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for worker, g in tl.groupby("worker", sort=True):
        row: dict[str, Any] = {"worker": worker, "n_trials": len(g)}
        for s in STATE_ORDER:
            row[f"n_{s.lower()}"] = int((g["state"] == s).sum())
        row["busy_s"] = float(g["duration_s"].sum())
        row["mean_s"] = float(g["duration_s"].mean())
        row["first_start"] = g["start"].min()
        row["last_end"] = g["end"].max()
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def failures(study: optuna.Study) -> pd.DataFrame:
    """Failed trials: ``number``, ``worker``, ``fail_reason`` (user attr, else Optuna's
    ``fail_reason`` system attr, else empty), ``epochs`` (intermediate values reported)."""
    rows = []
    for t in sorted(_trials(study), key=lambda t: t.number):
        if t.state != TrialState.FAIL:
            continue
        reason = t.user_attrs.get("fail_reason") or t.system_attrs.get("fail_reason") or ""
        rows.append({"number": t.number, "worker": _worker(t), "fail_reason": str(reason),
                     "epochs": len(t.intermediate_values)})
    return pd.DataFrame(rows, columns=["number", "worker", "fail_reason", "epochs"])


# --------------------------------------------------------------------------------------------
# pruning savings
# --------------------------------------------------------------------------------------------


@dataclass
class PruningSavings:
    """Epoch budget actually spent versus what a search without pruning would have spent.

    * ``epochs_trained``: sum of intermediate-value counts over all trials (any state).
    * ``n_finished``: trials that ended COMPLETE or PRUNED — the ones whose length pruning decides.
    * ``epochs_without_pruning``: ``n_finished * max_epochs`` plus the epochs of the remaining
      (FAIL / RUNNING / WAITING) trials, which pruning did not shorten; a trial that somehow
      reported more than ``max_epochs`` values counts with what it reported.
    * ``epochs_saved`` = ``epochs_without_pruning - epochs_trained``.
    * ``curve``: finished trials (any finished state: COMPLETE, PRUNED, FAIL) in completion-time
      order with ``epochs``, ``cum_epochs`` (actual), ``cum_epochs_without_pruning``, the trial's
      ``value`` (COMPLETE only) and ``best_so_far`` (best COMPLETE value after that trial; NaN
      before the first, and for multi-objective studies the first objective).
    """

    max_epochs: int | None
    max_epochs_source: str  # "configured" | "observed" | "none"
    epochs_trained: int
    epochs_without_pruning: int
    n_finished: int
    n_pruned: int
    curve: pd.DataFrame

    @property
    def epochs_saved(self) -> int:
        return self.epochs_without_pruning - self.epochs_trained

    @property
    def saved_fraction(self) -> float:
        if self.epochs_without_pruning <= 0:
            return 0.0
        return self.epochs_saved / self.epochs_without_pruning


def _folds(study: optuna.Study, trial: FrozenTrial) -> int:
    """How many times a trial runs max_epochs: its ``cv_folds`` (searched or fixed) when it
    cross-validates (one reported step per fold and epoch), else 1."""
    fixed = study.user_attrs.get("fixed")
    folds = trial.params.get("cv_folds", fixed.get("cv_folds") if isinstance(fixed, Mapping) else None)
    return folds if isinstance(folds, int) and not isinstance(folds, bool) and folds >= 2 else 1


def pruning_savings(study: optuna.Study, max_epochs: int | None = None, *,
                    info: Mapping[str, Any] | None = None) -> PruningSavings:
    """Compute :class:`PruningSavings`. ``max_epochs``: explicit, else from ``info`` / study user
    attrs (see :func:`resolve_max_epochs`), else the largest number of intermediate values any
    trial reported."""
    trials = _trials(study)
    source = "configured"
    if max_epochs is None:
        max_epochs = resolve_max_epochs(study, info)
    if max_epochs is None:
        observed = max((len(t.intermediate_values) for t in trials), default=0)
        max_epochs = observed or None
        source = "observed" if observed else "none"
    me = max_epochs or 0

    def hypothetical(t: FrozenTrial) -> int:
        n = len(t.intermediate_values)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            return max(me * (_folds(study, t) if source == "configured" else 1), n)
        return n

    epochs_trained = sum(len(t.intermediate_values) for t in trials)
    epochs_without = sum(hypothetical(t) for t in trials)
    n_finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)

    maximize = _maximize(study, 0)
    rows = []
    cum = cum_wo = 0
    best = math.nan
    finished = [t for t in trials if t.state.is_finished()]
    for order, t in enumerate(sorted(finished, key=_completion_key)):
        n = len(t.intermediate_values)
        cum += n
        cum_wo += hypothetical(t)
        value = math.nan
        if t.state == TrialState.COMPLETE:
            v = _objective_value(t, 0)
            if v is not None and not math.isnan(v):
                value = v
                if math.isnan(best) or (v > best if maximize else v < best):
                    best = v
        rows.append({"order": order, "number": t.number, "state": t.state.name, "epochs": n,
                     "cum_epochs": cum, "cum_epochs_without_pruning": cum_wo, "value": value,
                     "best_so_far": best, "datetime_complete": t.datetime_complete})
    curve = pd.DataFrame(rows, columns=["order", "number", "state", "epochs", "cum_epochs",
                                        "cum_epochs_without_pruning", "value", "best_so_far",
                                        "datetime_complete"])
    return PruningSavings(max_epochs=max_epochs, max_epochs_source=source,
                          epochs_trained=epochs_trained, epochs_without_pruning=epochs_without,
                          n_finished=n_finished, n_pruned=n_pruned, curve=curve)


# --------------------------------------------------------------------------------------------
# Pareto front
# --------------------------------------------------------------------------------------------


def pareto_front(study: optuna.Study, info: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Non-dominated completed trials (Optuna's ``study.best_trials``), sorted by number.

    Columns: ``number``, one column per objective (named as :func:`objective_names`), ``params``
    (dict). For a single-objective study this is the best trial (or trials tied with it)."""
    names = objective_names(study, info)
    try:
        best = list(study.best_trials)
    except Exception:
        best = []
    rows = []
    for t in sorted(best, key=lambda t: t.number):
        row: dict[str, Any] = {"number": t.number}
        for i, name in enumerate(names):
            row[name] = _objective_value(t, i)
        row["params"] = dict(t.params)
        rows.append(row)
    return pd.DataFrame(rows, columns=["number", *names, "params"])


# --------------------------------------------------------------------------------------------
# importances
# --------------------------------------------------------------------------------------------


@dataclass
class ImportanceResult:
    """Hyperparameter importances (``table``: ``objective``, ``param``, ``importance``; objectives
    in study order, decreasing importance within each) or why they could not be computed (``error``)."""

    table: pd.DataFrame
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.table.empty

    def ranked_params(self, objective: str | None = None) -> list[str]:
        if self.table.empty:
            return []
        t = self.table
        if objective is not None:
            t = t[t["objective"] == objective]
        return list(t.groupby("param", sort=False)["importance"].max()
                    .sort_values(ascending=False, kind="stable").index)


def param_importances(study: optuna.Study, *, info: Mapping[str, Any] | None = None,
                      evaluator: Any = None, seed: int = 0) -> ImportanceResult:
    """Optuna's :func:`optuna.importance.get_param_importances` for every objective.

    Never raises: fewer than two completed trials, no parameter shared by all completed trials,
    or any error inside Optuna yields an empty table with ``error`` saying why."""
    names = objective_names(study, info)
    empty = pd.DataFrame(columns=["objective", "param", "importance"])
    complete = [t for t in _trials(study) if t.state == TrialState.COMPLETE]
    if len(complete) < 2:
        return ImportanceResult(empty, f"needs at least 2 completed trials, the study has "
                                       f"{len(complete)}")
    if not any(t.params for t in complete):
        return ImportanceResult(empty, "the completed trials have no hyperparameters")
    rows = []
    for i, name in enumerate(names):
        if evaluator is None:
            ev = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        else:
            ev = evaluator
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(
                    study, evaluator=ev, target=(lambda t, i=i: t.values[i]))
        except Exception as exc:  # Optuna rejects some spaces / degenerate studies
            return ImportanceResult(empty, f"{type(exc).__name__}: {exc}")
        for p, v in imp.items():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            rows.append({"objective": name, "param": p, "importance": float(v)})
    if not rows:
        return ImportanceResult(empty, "no parameter is present in every completed trial with "
                                       "more than one distinct value")
    # Optuna returns each objective's importances already sorted, most important first.
    table = pd.DataFrame(rows, columns=["objective", "param", "importance"])
    return ImportanceResult(table, None)
