"""Sampling a space on an Optuna trial, and enumerating it for grid search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hpo._spec import ParamSpec

if TYPE_CHECKING:
    import optuna


def suggest(trial: optuna.Trial, space: Sequence[ParamSpec]) -> dict[str, Any]:
    """Asks the trial for every active param, in dependency order; inactive params are absent.

    Example:
        >>> params = suggest(study.ask(), spec.space)
    """
    params: dict[str, Any] = {}
    for p in space:
        if p.is_active(params):
            params[p.name] = _suggest_one(trial, p)
    return params


def _suggest_one(trial: optuna.Trial, p: ParamSpec) -> Any:
    finite = p.choices if p.choices is not None else p.values
    if finite is not None:
        return trial.suggest_categorical(p.name, list(finite))
    if p.type == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, float(p.low), float(p.high), step=p.step, log=p.log)


def grid_points(space: Sequence[ParamSpec]) -> list[dict[str, Any]]:
    """Every combination of the space's finite values, branching a conditional param only where active.

    Example:
        >>> [ParamSpec("a", "categorical", choices=("x", "y")),
        ...  ParamSpec("b", "int", values=(1, 2), when=(("a", ("y",)),))]
        gives [{"a": "x"}, {"a": "y", "b": 1}, {"a": "y", "b": 2}]
    """
    points: list[dict[str, Any]] = [{}]
    for p in space:
        grown = []
        for point in points:
            if p.is_active(point):
                grown.extend({**point, p.name: v} for v in p.finite_values())
            else:
                grown.append(point)
        points = grown
    return points
