"""Finding the objective a space file names, and turning what it returns into trial values."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hpo._errors import SpecError
from hpo._registry import Registry, import_object

OBJECTIVES: Registry[Any] = Registry("objective")
OBJECTIVES.register("image_classifier", "objectives:image_classifier")
OBJECTIVES.register("sequence_classifier", "objectives:sequence_classifier")
OBJECTIVES.register("resnet_classifier", "objectives:resnet_classifier")

# Parameter names and checks of the built-ins, from a module that does not import torch (fast validation).
_BUILTIN_PARAMS = "objectives._config:PARAM_NAMES"
_BUILTIN_CONFIG = "objectives._config:TrainConfig"

_FILE_REF = re.compile(r"^(?P<file>.+\.py):(?P<attr>[A-Za-z_][\w.]*)$")
_MODULE_REF = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_][\w.]*)$")


def check_reference(name: str, base_dir: Path) -> str | None:
    """Returns what is wrong with an objective reference, without importing it; None if plausible."""
    if name in OBJECTIVES:
        return None
    if match := _FILE_REF.match(name):
        if _find_file(match["file"], base_dir) is None:
            return f"file {match['file']!r} not found (looked beside the space file and in the current folder)"
        return None
    if match := _MODULE_REF.match(name):
        return None
    return (OBJECTIVES.unknown_message(name)
            + "; or give 'package.module:function' or 'path/to/file.py:function'")


def known_param_names(name: str) -> frozenset[str] | None:
    """The parameter names a built-in objective accepts, or None when any name may be passed."""
    if name not in OBJECTIVES:
        return None
    try:
        return frozenset(import_object(_BUILTIN_PARAMS))
    except ImportError:  # pragma: no cover - the objectives package ships with hpo
        return None


def check_builtin_values(name: str, fixed: Mapping[str, Any], choices: Mapping[str, tuple]) -> tuple[str, str] | None:
    """Checks a built-in objective's fixed values, and each finite choice of a searched param.

    Returns ``(key path, problem)`` for the first bad value, so a typo fails validation instead
    of every trial.
    """
    if name not in OBJECTIVES:
        return None
    config = import_object(_BUILTIN_CONFIG)
    try:
        config.for_objective(name, dict(fixed))
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        return f"objective.fixed.{key}", problem
    for param, values in choices.items():
        for value in values:
            try:
                config.for_objective(name, {**fixed, param: value})
            except ValueError as exc:
                return f"space.{param}", str(exc).partition(": ")[2]
    return None


def resolve_objective(name: str, base_dir: Path, source: str = "<spec>") -> Callable[..., Any]:
    """Imports the objective callable named by a built-in name, ``module:attr`` or ``file.py:attr``."""
    try:
        if name in OBJECTIVES:
            return OBJECTIVES.get(name)
        if match := _FILE_REF.match(name):
            return _load_from_file(_find_file(match["file"], base_dir), match["attr"])
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        return import_object(name)
    except (ImportError, AttributeError, TypeError) as exc:
        raise SpecError(source, "objective.name", f"cannot load {name!r}: {type(exc).__name__}: {exc}") from None


def _find_file(file: str, base_dir: Path) -> Path | None:
    for candidate in (base_dir / file, Path(file)):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _load_from_file(path: Path | None, attr: str) -> Callable[..., Any]:
    if path is None:
        raise ImportError("file not found")
    module_name = f"hpo_user_objective_{abs(hash(str(path)))}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def run_objective(fn: Callable[..., Any], ctx: Any) -> list[float]:
    """Calls ``fn(config, ctx)``; a returned LightningModule (+ data) is trained with the standard stack.

    Returns the study's values, one per metric. Raises ``ValueError`` for a result that names
    no study metric or is not a finite number.
    """
    result = fn(dict(ctx.config), ctx)
    if _is_lightning_result(result):
        from objectives import fit

        module, data = result if isinstance(result, tuple) else (result, None)
        result = fit(module, data, ctx.config, ctx)
    return values_of(result, ctx.metrics)


def _is_lightning_result(result: Any) -> bool:
    candidate = result[0] if isinstance(result, tuple) and result else result
    return any(cls.__name__ == "LightningModule" for cls in type(candidate).__mro__)


def values_of(result: Any, metrics: tuple[str, ...]) -> list[float]:
    """Picks the study metrics out of an objective's result (a number, a sequence or a mapping)."""
    if isinstance(result, Mapping):
        missing = [m for m in metrics if m not in result]
        if missing:
            raise ValueError(f"the objective returned no {missing[0]!r}; it returned {sorted(result)}. "
                             "Set study.metric to one of these.")
        raw = [result[m] for m in metrics]
    elif isinstance(result, (list, tuple)):
        raw = list(result)
    else:
        raw = [result]
    if len(raw) != len(metrics):
        raise ValueError(f"the objective returned {len(raw)} values for {len(metrics)} metrics {list(metrics)}")
    try:
        values = [float(v) for v in raw]
    except (TypeError, ValueError):
        raise ValueError(f"the objective returned {raw!r}; expected numbers") from None
    for metric, value in zip(metrics, values):
        if not math.isfinite(value):
            raise ValueError(f"the objective returned {metric}={value}; a trial needs a finite value")
    return values
