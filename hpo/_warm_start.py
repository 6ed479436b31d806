"""``warm_start:``: configurations a new study tries (or learns from) before it samples its own.

Each item of the list is one of:

- a mapping of params, e.g. ``{lr: 0.01, width: 32}``: queued as the study's first trials;
- the path of a file written by ``hpo export`` (relative to the space file): its configs' params are queued;
- ``study:NAME``: that earlier study (same storage, or ``hpo-runs/NAME`` beside this study): its complete
  trials are added as finished trials, so the sampler learns from them without training again, when
  every param fits the new space and both studies have the same objective, fixed config and
  directions; otherwise their params are queued to run again.

Params outside the new space are dropped with a warning. Warm-start trials count toward ``n_trials``.
It applies once, when the study is created.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import _keys as keys
from hpo._errors import SpecError, UsageError

if TYPE_CHECKING:
    import optuna

    from hpo._spec import StudySpec

STUDY_PREFIX = "study:"


@dataclass(frozen=True)
class WarmStart:
    """One item of ``warm_start``: queued ``params`` (one dict per config), or an earlier ``study``."""

    label: str
    params: tuple[dict[str, Any], ...] = field(default=())
    study: str | None = None


def parse_warm_start(value: Any, source: str) -> tuple[WarmStart, ...]:
    """Validates ``warm_start`` at load time (files are read now, studies are looked up at creation)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError(source, "warm_start", f"expected a list of param mappings, export files or study:NAME, "
                                              f"got {type(value).__name__}")
    return tuple(_item(item, f"warm_start[{i}]", source) for i, item in enumerate(value))


def _item(item: Any, key: str, source: str) -> WarmStart:
    if isinstance(item, Mapping):
        if not all(isinstance(k, str) for k in item):
            raise SpecError(source, key, "param names must be text")
        return WarmStart(key, (dict(item),))
    if isinstance(item, str) and item.startswith(STUDY_PREFIX):
        name = item[len(STUDY_PREFIX):].strip()
        if not name:
            raise SpecError(source, key, "expected study:NAME with the name of an earlier study, got 'study:'")
        return WarmStart(key, study=name)
    if isinstance(item, str) and item.strip():
        from hpo._export import read_export

        path = Path(item).expanduser()
        if not path.is_absolute():
            path = Path(source).parent / path
        try:
            return WarmStart(f"{key} ({item})", tuple(dict(c.params) for c in read_export(path)))
        except UsageError as exc:
            raise SpecError(source, key, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any file the user names: binary, a folder, a broken export
            raise SpecError(source, key, f"{item}: not a readable hpo export ({type(exc).__name__}: {exc}); "
                                         "write one with `hpo export`") from None
    raise SpecError(source, key, f"expected a mapping of params, an export file or study:NAME, got {item!r}")


def check_values(items: tuple[WarmStart, ...], space: Any, source: str) -> None:
    """Refuses a queued config whose value lies outside its param's range or choices: Optuna would
    train it all the same, with only a warning (an ``lr`` of 5.0 in a search over [1e-3, 3e-2])."""
    from hpo._compat_space import distribution

    distributions = {p.name: distribution(p) for p in space}
    for item in items:
        key = item.label.split(" ")[0]
        for params in item.params:
            for name, value in params.items():
                dist = distributions.get(name)
                if dist is None or _inside(dist, value):
                    continue
                where = f" ({item.label.partition(' ')[2].strip('()')})" if " " in item.label else ""
                if _numeric(dist) and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    unquote = f" (write {value}, without quotes)" if _number_text(value) else ""
                    raise SpecError(source, f"{key}.{name}", f"{value!r}{where} is not a number; space.{name} "
                                    f"is {_describe(dist)}{unquote}")
                raise SpecError(source, f"{key}.{name}", f"{value!r}{where} is outside space.{name} "
                                f"({_describe(dist)}); change the value or widen the space")


def _number_text(value: Any) -> bool:
    try:
        return isinstance(value, str) and math.isfinite(float(value))
    except ValueError:
        return False


def _numeric(dist: Any) -> bool:
    from optuna.distributions import FloatDistribution, IntDistribution

    return isinstance(dist, (FloatDistribution, IntDistribution))


def _describe(dist: Any) -> str:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return "choices " + ", ".join(map(repr, dist.choices))
    return f"[{dist.low}, {dist.high}]"


def earlier_studies(spec: StudySpec) -> dict[str, optuna.Study]:
    """The earlier studies ``warm_start`` names, read-only; call it before creating the new study, so
    that a missing one leaves no study behind (created without its warm start, it would never get it).

    Raises:
        UsageError: an earlier study that does not exist.
    """
    return {item.study: _load_earlier(spec, item.study, item.label)
            for item in spec.warm_start if item.study is not None}


def apply_warm_start(study: optuna.Study, spec: StudySpec, earlier: Mapping[str, optuna.Study]) -> None:
    """Queues (or adds as finished) the warm-start configurations of a study being created;
    ``earlier``: :func:`earlier_studies`."""
    names = {p.name for p in spec.space}
    for item in spec.warm_start:
        dropped: set[str] = set()
        if item.study is not None:
            _from_study(study, spec, item, names, dropped, earlier[item.study])
        else:
            for params in item.params:
                study.enqueue_trial(_within(params, names, dropped), user_attrs={keys.WARM_START: item.label})
        if dropped:  # once per item, not once per queued config
            print(f"warning: {item.label}: {', '.join(sorted(dropped))} not in this space; dropped", file=sys.stderr)


def _within(params: Mapping[str, Any], names: set[str], dropped: set[str]) -> dict[str, Any]:
    """``params`` without the names this space lacks, which go into ``dropped``."""
    dropped.update(set(params) - names)
    return {k: v for k, v in params.items() if k in names}


def _from_study(study: optuna.Study, spec: StudySpec, item: WarmStart, names: set[str], dropped: set[str],
                earlier: optuna.Study) -> None:
    import optuna
    from optuna.trial import TrialState

    from hpo._compat_space import compatible, distribution

    # Its values stand for this study's only if the same objective trained with the same fixed
    # config (another max_epochs, say, gives other values): else its configs are trained again.
    same_goal = [d.name for d in earlier.directions] == [d.name for d in study.directions] and \
        earlier.user_attrs.get("objective") == spec.objective.name and \
        earlier.user_attrs.get(keys.STUDY_FIXED) == study.user_attrs.get(keys.STUDY_FIXED)
    distributions = {p.name: distribution(p) for p in spec.space}
    for t in earlier.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        fits = same_goal and set(t.params) <= set(distributions) and all(
            compatible(t.distributions[k], distributions[k]) and _inside(distributions[k], v)
            for k, v in t.params.items())
        if fits:
            study.add_trial(optuna.trial.create_trial(
                params=dict(t.params), distributions={k: distributions[k] for k in t.params}, values=t.values,
                user_attrs={keys.WARM_START: f"{item.label} trial {t.number}"}))
        else:
            study.enqueue_trial(_within(t.params, names, dropped),
                                user_attrs={keys.WARM_START: f"{item.label} trial {t.number}"})


def _inside(dist: Any, value: Any) -> bool:
    """Whether ``value`` lies in the new distribution (a narrower range may exclude it)."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return dist.low <= value <= dist.high


def _load_earlier(spec: StudySpec, name: str, label: str) -> optuna.Study:
    """The earlier study, read-only: the same database, or ``hpo-runs/NAME`` beside this study."""
    from dataclasses import replace

    from hpo._study import open_study

    raw_study = {**spec.raw["study"], "name": name}
    earlier_spec = replace(spec, study=replace(spec.study, name=name), raw={**spec.raw, "study": raw_study})
    try:
        return open_study(earlier_spec, create=False, check_space=False)
    except UsageError:
        from hpo._storage import describe_storage

        raise UsageError(f"{spec.source}: {label}: no earlier study {name!r} in {describe_storage(earlier_spec)}; "
                         "run that study first, or remove this item") from None
