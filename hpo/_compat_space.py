"""Whether a changed space file may go on with the study of the same name.

The study stores the whole space file it was created with (study user attr ``spec``). Before any
trial starts, each param of the new space is compared with its stored definition, as Optuna
sees both: the distribution ``hpo`` asks Optuna for (see ``hpo._space``), checked with
``optuna.distributions.check_distribution_compatibility``, which is what Optuna applies when a
trial suggests a param that earlier trials have.

=====================================  ============  ===========================================
change                                 verdict       why
=====================================  ============  ===========================================
float -> categorical (any kind swap)   refused       Optuna: different distribution kind
int -> float, float -> int             refused       Optuna: different distribution kind
categorical choices changed/reordered  refused       Optuna: no dynamic categorical space
int/float ``values`` changed           refused       these are categorical for Optuna
``log`` switched                       refused       Optuna: different log configuration
wider or narrower range, other step    warning       Optuna accepts; past trials outside the new
                                                     range still inform the sampler
new param, or a param made conditional warning       earlier trials simply lack it
param removed                          warning       earlier trials keep it; new ones lack it
=====================================  ============  ===========================================

Optuna compares with the distributions earlier *trials* used, so that is what decides (a param
added later and changed again is caught too); the stored space describes the accepted changes.
A refused change raises :class:`~hpo._errors.UsageError` (exit 2) naming each such param, old and
new, and suggesting a new study name; nothing has started then. Without this check the first
trial would die in Optuna with "Cannot set different distribution kind", left RUNNING.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from hpo import _keys as keys
from hpo._errors import HpoError, UsageError
from hpo._spec import ParamSpec, StudySpec

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial


class SpaceChanges(NamedTuple):
    """How a new space differs from the stored one: one line per param."""

    refused: list[str]
    accepted: list[str]


class _DistributionOf:
    """Stands in for an Optuna trial: answers each ``suggest_*`` call with the distribution asked for."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> BaseDistribution:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(choices)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> BaseDistribution:
        from optuna.distributions import IntDistribution

        return IntDistribution(low, high, log=log, step=step)

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None,
                      log: bool = False) -> BaseDistribution:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(low, high, log=log, step=step)


def distribution(param: ParamSpec) -> BaseDistribution:
    """The Optuna distribution trials ask for ``param`` (the same call as ``hpo._space.suggest``)."""
    from hpo._space import _suggest_one

    return _suggest_one(_DistributionOf(), param)  # type: ignore[arg-type]


def compatible(old: BaseDistribution, new: BaseDistribution) -> bool:
    """Whether Optuna lets trials sampled from ``old`` share a study with ``new`` (same kind, same choices)."""
    from optuna.distributions import check_distribution_compatibility

    try:
        check_distribution_compatibility(old, new)
    except ValueError:
        return False
    return True


def describe_distribution(dist: BaseDistribution) -> str:
    """A recorded distribution in the words of ``ParamSpec.describe``."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return f"one of {list(dist.choices)}"
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    step = getattr(dist, "step", None)
    return (f"{kind} in [{dist.low}, {dist.high}]" + (" log" if dist.log else "")
            + (f" step {step}" if step and not (kind == "int" and step == 1) else ""))


def recorded_distributions(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
    """The distribution each param was sampled from in the study's trials (what Optuna checks against)."""
    recorded: dict[str, BaseDistribution] = {}
    for trial in trials:
        recorded.update(trial.distributions)
    return recorded


def compare_spaces(
    stored: Sequence[ParamSpec], recorded: Mapping[str, BaseDistribution], new: Sequence[ParamSpec]
) -> SpaceChanges:
    """Sorts the differences of a new space into what Optuna refuses and what it accepts.

    Args:
        stored: the space the study was created with (describes accepted changes).
        recorded: the distributions its trials used (decides what Optuna refuses).
        new: the space of this run.
    """
    before = {p.name: p for p in stored}
    changes = SpaceChanges([], [])
    for p in new:
        was, seen = before.pop(p.name, None), recorded.get(p.name)
        if seen is not None and not compatible(seen, distribution(p)):
            changes.refused.append(f"{p.name} (trials so far: {describe_distribution(seen)}; now: {p.describe()})")
            continue
        if was is None and seen is None:
            changes.accepted.append(f"{p.name}: new param ({p.describe()})")
        elif was is not None and was.describe() != p.describe():
            changes.accepted.append(f"{p.name}: was {was.describe()}, now {p.describe()}")
    changes.accepted.extend(f"{name}: no longer searched (was {p.describe()})" for name, p in before.items())
    return changes


def stored_space(study_attrs: Mapping[str, Any]) -> tuple[ParamSpec, ...]:
    """The space the study was created with; empty when it stored none hpo can read."""
    from hpo._spec import _Validator

    raw = study_attrs.get(keys.STUDY_SPEC)
    if not isinstance(raw, Mapping) or "space" not in raw:
        return ()
    try:
        return _Validator("<stored space>").space(raw["space"])
    except HpoError:  # written by another hpo version: only the trials' record is compared
        return ()


def check_space(study: optuna.Study, spec: StudySpec) -> list[str]:
    """Refuses a space Optuna cannot continue the study with; returns the accepted changes.

    Raises:
        UsageError: some param's definition changed in a way Optuna refuses.
    """
    recorded = recorded_distributions(study.get_trials(deepcopy=False))
    changes = compare_spaces(stored_space(study.user_attrs), recorded, spec.space)
    if changes.refused:
        name = spec.study.name
        raise UsageError(
            f"{spec.source}: space: study {name!r} already exists with another definition of "
            f"{'; '.join(changes.refused)}. Optuna cannot mix these in one study: give the study a new "
            f"name (study.name, or --set study.name={name}-2), or change the space back")
    return changes.accepted
