"""Samplers and pruners by name: thin registries over Optuna's own classes."""

from __future__ import annotations

import hashlib
import inspect
import math
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from hpo._errors import SpecError
from hpo._option_types import value_problem
from hpo._registry import Registry, did_you_mean

SAMPLERS: Registry[Any] = Registry("sampler")
# Grid trials are enqueued by the study (see hpo._study); the sampler only fills in nothing.
# Optuna's GridSampler is not used: it cannot express conditional (`when:`) params and may
# repeat grid points when several workers ask at once.
SAMPLERS.register("grid", "optuna.samplers:RandomSampler")
SAMPLERS.register("random", "optuna.samplers:RandomSampler")
SAMPLERS.register("tpe", "optuna.samplers:TPESampler")
SAMPLERS.register("cmaes", "optuna.samplers:CmaEsSampler")
SAMPLERS.register("gp", "optuna.samplers:GPSampler")
SAMPLERS.register("nsga2", "optuna.samplers:NSGAIISampler")
SAMPLERS.register("qmc", "optuna.samplers:QMCSampler")

PRUNERS: Registry[Any] = Registry("pruner")
PRUNERS.register("none", "optuna.pruners:NopPruner")
PRUNERS.register("median", "optuna.pruners:MedianPruner")
PRUNERS.register("percentile", "optuna.pruners:PercentilePruner")
PRUNERS.register("successive_halving", "optuna.pruners:SuccessiveHalvingPruner")
PRUNERS.register("hyperband", "optuna.pruners:HyperbandPruner")
PRUNERS.register("threshold", "optuna.pruners:ThresholdPruner")

# Options hpo sets unless the space file says otherwise. TPE's constant liar treats the trials other
# workers are still running as if they had a bad value, so parallel workers (`--jobs`, shared storage)
# do not all sample the same promising region; with one worker no other trial runs while it samples,
# so it changes nothing there.
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {"tpe": {"constant_liar": True}}

# What a space file without `sampler:` / `pruner:` gets: the combination benchmarks/search_efficiency.py
# measured best (docs/space-file.md has the numbers): TPE (with constant_liar, SAMPLER_DEFAULTS) modelling
# after 5 random trials instead of Optuna's 10, and the median pruner (Optuna's defaults: after 5 trials,
# a trial whose best value so far is worse than the median of earlier trials at the same epoch stops).
# With the median pruner most start-up trials stop after an epoch or two, so 10 of them were spent
# learning little: 5 reached MNIST-1D's top target sooner in 16 of 26 seeds (later in 6), at a median of
# 0.30 of random search's epochs against 0.42 with 10; on digits sooner too; on the ResNet sooner to
# its lower targets, later to its top one (11 of 18 seeds against 14). The median pruner beat Hyperband
# on the ResNet and digits, was about as good on MNIST-1D, and replayed on random search it saved more
# epochs to the top target than Hyperband on every task, 5-epoch LR warm-up included. It takes no
# resources, so nothing about the objective's epochs is needed. Optuna 5's TPE is already
# multivariate for a single objective (``multivariate=None``); ``group: true`` adds nothing on a space
# without `when:` conditions (the benchmark's "mtpe" and "tpe" sampled the same trials there).
# Options a space file gives without a name are merged over these.
DEFAULT_SAMPLER = "tpe"
DEFAULT_SAMPLER_OPTIONS: dict[str, Any] = {"n_startup_trials": 5}
DEFAULT_PRUNER = "median"
# Multi-objective studies cannot prune (Optuna's intermediate values are single-objective); with no
# pruner to stop the start-up trials early, TPE keeps Optuna's 10 (5 was measured with the median pruner).
DEFAULT_MULTI_OBJECTIVE_PRUNER = "none"
DEFAULT_MULTI_OBJECTIVE_SAMPLER_OPTIONS: dict[str, Any] = {}


# Samplers that pickle their state into the study's storage (unpickling runs code).
PICKLING_SAMPLERS = {"cmaes"}

# Samplers that learn only from completed trials (sampler -> the option that makes it learn from pruned
# ones too, or None): a trial the pruner stopped teaches them nothing, so they may propose it again. In
# benchmarks/search_efficiency.py, GP + the median pruner repeated an earlier configuration in 79 of
# 159 and 373 of 496 trials of two seeds.
IGNORES_PRUNED: dict[str, str | None] = {"gp": None, "cmaes": "consider_pruned_trials"}


def sampler_warnings(sampler: Any, pruner: Any, storage: str | None) -> list[str]:
    """What ``hpo validate``/``run`` warn about a sampler in this study (``ComponentSpec``s): nothing is
    refused, each combination works, but these cost the user something they may not expect."""
    lines = []
    if sampler.name in PICKLING_SAMPLERS and storage is not None:
        lines.append(f"the {sampler.name} sampler keeps pickled state in the study's storage; every worker "
                     "unpickles it, which runs code from the shared database. Use it only with a database that "
                     "only trusted people can write to, or choose tpe/gp.")
    option = IGNORES_PRUNED.get(sampler.name)
    learns_from_pruned = sampler.name not in IGNORES_PRUNED or bool(option and sampler.options.get(option))
    if pruner.name != "none" and not learns_from_pruned:
        fix = f", set the sampler's `{option}: true`," if option else ""
        lines.append(f"the {sampler.name} sampler learns only from completed trials: the trials the {pruner.name} "
                     f"pruner stops teach it nothing, and it may propose them again. Use `pruner: {{name: none}}`"
                     f"{fix} or a sampler that learns from pruned trials (tpe, the default).")
    return lines


def check_options(registry: Registry[Any], name: str, options: Mapping[str, Any]) -> tuple[str, str] | None:
    """Returns ``(option, problem)`` when ``options`` do not fit the constructor, else None (``option``
    is "" when the problem is the options together, such as a threshold pruner with no bound).

    In order: each name is a parameter of the constructor; each value fits the parameter's type
    annotation (:func:`hpo._option_types.value_problem`); then the component is built, as ``hpo run`` would build it,
    so that what its constructor refuses is refused now, before a study exists in its storage.
    """
    cls = registry.get(name)
    params = inspect.signature(cls).parameters
    accepted = [p for p in params if p not in ("self", "seed")]
    for key in options:
        if key == "seed":
            return key, "set the seed with study.seed, not here"
        if key not in accepted:
            return key, (f"not an option of the {name} {registry.kind}{did_you_mean(key, accepted)}; "
                         f"known: {', '.join(accepted)}{_taken_by_others(registry, name, key)}")
    for key, value in options.items():
        if isinstance(value, float) and math.isnan(value):  # compares false with everything: a no-op bound
            return key, "got .nan, which is no number to compare with: give a number or leave the option out"
        problem = value_problem(value, params[key].annotation)
        if problem:
            return key, problem
    for key, least in _AT_LEAST.get((registry.kind, name), {}).items():
        if isinstance(options.get(key), (int, float)) and options[key] < least:
            return key, f"must be >= {least}, got {options[key]!r}"
    for check in _EXTRA_CHECKS.get((registry.kind, name), ()):
        problem_at = check(options)
        if problem_at:
            return problem_at
    kwargs = sampler_kwargs(name, options) if registry is SAMPLERS else dict(options)
    if "seed" in params:
        kwargs["seed"] = None  # any seed builds the same way; the study's own is checked as study.seed
    try:
        _new(cls, kwargs)
    except (TypeError, ValueError) as exc:
        return _refused(cls.__name__, options, exc)
    return None


def _refused(cls_name: str, options: Mapping[str, Any], exc: Exception) -> tuple[str, str]:
    """``(option, problem)`` for a constructor's refusal: the option its message names (or the only
    one given), else "" for the options together."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
    named = [k for k in options if re.search(rf"(?<![A-Za-z0-9_]){re.escape(k)}(?![A-Za-z0-9_])", reason)]
    key = named[0] if len(named) == 1 else next(iter(options)) if len(options) == 1 else ""
    if key:
        return key, f"Optuna's {cls_name} refused {options[key]!r}: {reason}"
    given = ", ".join(f"{k}: {v!r}" for k, v in options.items()) or "none"
    return "", f"Optuna's {cls_name} refused these options ({given}): {reason}"


def _hyperband_resources(options: Mapping[str, Any]) -> tuple[str, str] | None:
    """Hyperband checks nothing of min_resource/reduction_factor/bootstrap_count itself: it hands
    them to one SuccessiveHalvingPruner per bracket, built at the first pruning decision, mid-run
    (min_resource 0 divided by zero there). Building one now checks them; and a fixed max_resource
    below min_resource leaves no bracket at all."""
    shared = {k: options[k] for k in ("min_resource", "reduction_factor", "bootstrap_count") if k in options}
    cls = PRUNERS.get("successive_halving")
    try:
        _new(cls, shared)
    except (TypeError, ValueError) as exc:
        return _refused(f"HyperbandPruner (through its {cls.__name__})", shared, exc)
    low, high = options.get("min_resource", 1), options.get("max_resource", "auto")
    if isinstance(high, int) and not isinstance(high, bool) and high < low:
        return "max_resource", f"must be >= min_resource ({low}), got {high}"
    return None


# Numeric options Optuna takes unchecked, by (registry kind, name): option -> its least useful value.
# TPE with n_ei_candidates 0 fails at its first modelled sample, mid-study; a negative start-up count
# is taken as 0 without a word.
_AT_LEAST: dict[tuple[str, str], dict[str, int]] = {
    ("sampler", "tpe"): {"n_startup_trials": 0, "n_ei_candidates": 1},
    ("sampler", "gp"): {"n_startup_trials": 0},
    ("sampler", "cmaes"): {"n_startup_trials": 0},
}


# Checks a constructor does not make at construction, by (registry kind, name): each returns
# ``(option, problem)`` or None.
_EXTRA_CHECKS: dict[tuple[str, str], tuple[Callable[[Mapping[str, Any]], tuple[str, str] | None], ...]] = {
    ("pruner", "hyperband"): (_hyperband_resources,),
}


def _taken_by_others(registry: Registry[Any], name: str, key: str) -> str:
    """Which other components take option ``key`` (a file written for another default, say, gives
    Hyperband's ``reduction_factor`` without naming Hyperband)."""
    others = [n for n in registry.names() if n != name and key in inspect.signature(registry.get(n)).parameters]
    if not others:
        return ""
    return (f". {key} is an option of {', '.join(others)}: name one, e.g. "
            f"{registry.kind}: {{name: {others[0]}, options: {{{key}: ...}}}}")


def worker_seed(study_seed: int | None, n_existing: int, worker_index: int) -> int | None:
    """A seed per worker and restart, so workers and resumed runs do not replay the same samples."""
    if study_seed is None:
        return None
    digest = hashlib.sha256(f"{study_seed}:{n_existing}:{worker_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def sampler_kwargs(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options a sampler is built with: hpo's defaults for it (SAMPLER_DEFAULTS), then the file's."""
    return {**SAMPLER_DEFAULTS.get(name, {}), **options}


def make_sampler(name: str, options: Mapping[str, Any], seed: int | None, source: str = "<spec>") -> Any:
    cls = SAMPLERS.get(name)
    kwargs = sampler_kwargs(name, options)
    if "seed" in inspect.signature(cls).parameters:
        kwargs["seed"] = seed
    return _construct(cls, kwargs, "sampler.options", source)


def make_pruner(name: str, options: Mapping[str, Any], source: str = "<spec>") -> Any:
    return _construct(PRUNERS.get(name), dict(options), "pruner.options", source)


def _construct(cls: Any, kwargs: dict[str, Any], key_path: str, source: str) -> Any:
    try:
        return _new(cls, kwargs)
    except (TypeError, ValueError) as exc:  # check_options refuses these at validation; kept as a net
        raise SpecError(source, key_path, f"{cls.__name__} refused them: {exc}") from None


def _new(cls: Any, kwargs: dict[str, Any]) -> Any:
    import optuna

    with warnings.catch_warnings():  # Optuna marks several samplers "experimental"; chosen on purpose
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(**kwargs)
