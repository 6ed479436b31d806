"""Finding the objective a space file names, and turning what it returns into trial values."""

from __future__ import annotations

import importlib.util
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo._errors import MetricMissing, SpecError
from hpo._registry import Registry, did_you_mean, import_object

OBJECTIVES: Registry[Any] = Registry("objective")
OBJECTIVES.register("image_classifier", "objectives:image_classifier")
OBJECTIVES.register("sequence_classifier", "objectives:sequence_classifier")
OBJECTIVES.register("resnet_classifier", "objectives:resnet_classifier")

# Parameter names and checks of the built-ins, from a module that does not import torch (fast validation).
_BUILTIN_PARAMS = "objectives._config:PARAM_NAMES"
_BUILTIN_CONFIG = "objectives._config:TrainConfig"
_STACK_KNOBS = "objectives._config:STACK_KNOBS"
_WORKER_RESOURCES = "objectives._config:worker_resources"
# What the built-ins report each epoch (and return for the best one): the study metric is one of these.
BUILTIN_METRICS = ("val_acc", "val_loss", "train_loss", "epoch_time", "samples_per_sec")
# A module study's objective name, as exports record it: "module=models.py:Net;data=models.py:Data".
_MODULE_STUDY = re.compile(r"^module=(?P<module>[^;]+)(;data=(?P<data>.+))?$")

_FILE_REF = re.compile(r"^(?P<file>.+\.py):(?P<attr>[A-Za-z_][\w.]*)$")
_MODULE_REF = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_][\w.]*)$")


def module_study_name(module: str, data: str | None) -> str:
    """The objective name of a module study (``objective: {module: ..., data: ...}``)."""
    return f"module={module}" + (f";data={data}" if data else "")


def parse_module_study(name: str) -> tuple[str, str | None] | None:
    """``(module reference, data reference or None)`` of a module study's name, else None."""
    match = _MODULE_STUDY.match(name)
    return (match["module"], match["data"]) if match else None


def check_reference(name: str, base_dir: Path) -> str | None:
    """Returns what is wrong with an objective reference, without importing it; None if plausible."""
    if name in OBJECTIVES:
        return None
    if match := _FILE_REF.match(name):
        if _find_file(match["file"], base_dir) is None:
            return (f"file {match['file']!r} not found (looked in {base_dir.resolve()}, the space file's folder, "
                    f"and in {Path.cwd()})")
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


def check_builtin_values(
    name: str, fixed: Mapping[str, Any], choices: Mapping[str, tuple], ends: Mapping[str, tuple] | None = None
) -> tuple[str, str] | None:
    """Checks the values of the stack's knobs where the stack applies them: every key of a built-in
    objective, the reserved knobs (``objectives.STACK_KNOBS``) of a module study; each finite
    choice of a searched param too, and both ends (``(low, high)`` in ``ends``) of a searched range:
    the table's intervals are convex, so a range whose ends pass holds no bad value. A custom
    objective function's params are their own.

    Returns ``(key path, problem)`` for the first bad value, so a typo fails validation instead
    of every trial.
    """
    if name not in OBJECTIVES:
        if parse_module_study(name) is None:
            return None
        stack = frozenset(import_object(_STACK_KNOBS))
        fixed = {k: v for k, v in fixed.items() if k in stack}
        choices = {k: v for k, v in choices.items() if k in stack}
        ends = {k: v for k, v in (ends or {}).items() if k in stack}
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
                return f"space.{param}", _problem_with(param, value, exc)
    for param, pair in (ends or {}).items():
        for end, value in zip(("low", "high"), pair):
            try:
                config.for_objective(name, {**fixed, param: value})
            except ValueError as exc:
                return f"space.{param}.{end}", _problem_with(param, value, exc)
    return None


def _problem_with(param: str, value: Any, exc: ValueError) -> str:
    """The problem a searched value causes; when another key is the one refused (``warmup_epochs``
    longer than a searched ``max_epochs``), it is named with the value that makes it wrong."""
    key, _, problem = str(exc).partition(": ")
    return problem if key == param else f"with {param} = {value!r}, {key} {problem}"


@dataclass(frozen=True)
class Resources:
    """What one trial needs from the machine it runs on (see :func:`resource_needs`)."""

    devices: int  # GPUs it trains on; on a machine without GPUs, training processes (CPU DDP)
    threads: int  # CPU threads per training process; 0: torch's default


def resource_needs(spec: Any) -> Resources:
    """The resources one trial of ``spec`` needs, as the training stack reads ``objective.fixed``.

    Any objective may train through the stack (a built-in, a module study, a function returning a
    LightningModule), so the stack, which owns the ``devices``/``threads`` knobs and their
    defaults, answers; schedulers (``--jobs``, cluster engines) never read knobs by name.

    Raises:
        SpecError: a resource knob with a bad value (a custom objective's fixed values are not
            checked by ``hpo validate``).
    """
    try:
        devices, threads = import_object(_WORKER_RESOURCES)(spec.objective.fixed)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise SpecError(spec.source, f"objective.fixed.{key}", problem) from None
    return Resources(devices, threads)


def load_reference(ref: str, base_dir: Path) -> Any:
    """Imports the object named by ``package.module:attr`` or ``path/to/file.py:attr``: a file is
    looked up in ``base_dir`` (the space file's folder), then the current folder; a package
    module in ``base_dir``, the current folder and the Python path."""
    return _attribute(_load_module(ref, base_dir), ref.rpartition(":")[2])


class UnloadableReference(Exception):
    """A reference that could not be loaded; the message says what failed and where, in one line."""


def load_checked(ref: str, base_dir: Path, hint: str = "") -> Any:
    """:func:`load_reference`, with every failure (a missing file or module, a missing attribute,
    the user's file raising as it is imported, a syntax error in it) raised as
    :class:`UnloadableReference` with a one-line message; ``hint`` ends the missing-attribute one."""
    target = _FILE_REF.match(ref)
    what = f"file {target['file']!r}" if target else f"module {ref.partition(':')[0]!r}"
    try:
        module = _load_module(ref, base_dir)
    except _NotFound as missing:
        folders = " and ".join(dict.fromkeys(str(f) for f in (base_dir.resolve(), Path.cwd())))
        where = f"looked in {folders}" if target else f"searched {folders} and the Python path"
        raise UnloadableReference(f"cannot import {what}: {missing} ({where})") from None
    except Exception as exc:  # noqa: BLE001 - the user's code failed at import: report it, no traceback
        message = exc.msg if isinstance(exc, SyntaxError) else exc
        raise UnloadableReference(f"importing {what} raised {type(exc).__name__}: {message}"
                                  f"{_user_frame(exc)}") from None
    attr = ref.rpartition(":")[2]
    try:
        return _attribute(module, attr)
    except AttributeError:
        defined = sorted(name for name, value in vars(module).items()
                         if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__)
        listed = f"; it defines {', '.join(defined)}" if defined else ""
        raise UnloadableReference(f"{what} has no attribute {attr!r}{did_you_mean(attr, defined)}{listed}"
                                  f"{hint}") from None


class _NotFound(Exception):
    """The file or module a reference names does not exist (as opposed to failing when imported)."""


def _load_module(ref: str, base_dir: Path) -> Any:
    if match := _FILE_REF.match(ref):
        path = _find_file(match["file"], base_dir)
        if path is None:
            raise _NotFound("not found")
        if str(path.parent) not in sys.path:  # as `python file.py` does: the files beside it import
            sys.path.insert(0, str(path.parent))
        return _module_from_file(path)
    name = ref.partition(":")[0]
    for folder in (str(Path.cwd()), str(base_dir.resolve())):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise _NotFound(str(exc)) from None
        raise  # the module exists, and something it imports does not


def _attribute(module: Any, attr: str) -> Any:
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_objective(name: str, base_dir: Path, source: str = "<spec>") -> Callable[..., Any]:
    """Imports the objective callable named by a built-in name, ``module:attr``, ``file.py:attr``,
    or a module study's name (:func:`module_study_name`)."""
    if refs := parse_module_study(name):
        from objectives._user import ModuleObjective

        module_cls, data = load_module_study(refs[0], refs[1], base_dir, source)
        return ModuleObjective(module_cls, data)
    if name in OBJECTIVES:
        return OBJECTIVES.get(name)
    try:
        return load_checked(name, base_dir)
    except UnloadableReference as exc:
        raise SpecError(source, "objective.name", str(exc)) from None


def load_module_study(module: str, data: str | None, base_dir: Path, source: str) -> tuple[type, Any]:
    """The module class and the data class or function of a module study; SpecError if unusable."""
    from objectives._namespace import is_datamodule, is_lightning_module, namespace_name

    loaded = []
    for key, ref in (("objective.module", module), ("objective.data", data)):
        if ref is None:
            loaded.append(None)
            continue
        if not (_FILE_REF.match(ref) or _MODULE_REF.match(ref)):
            raise SpecError(source, key, f"expected 'file.py:Class' or 'package.module:Class', got {ref!r}")
        try:
            loaded.append(load_checked(ref, base_dir))
        except UnloadableReference as exc:
            raise SpecError(source, key, str(exc)) from None
    module_cls, data_obj = loaded
    if not (isinstance(module_cls, type) and is_lightning_module(module_cls)):
        raise SpecError(source, "objective.module", f"expected a LightningModule class (pytorch_lightning or "
                        f"lightning.pytorch), got {module_cls!r}")
    if data_obj is not None:
        if isinstance(data_obj, type) and not is_datamodule(data_obj):
            raise SpecError(source, "objective.data", f"expected a LightningDataModule class or a function "
                            f"returning (train_loader, val_loader), got the class {data_obj.__name__}")
        if not callable(data_obj):
            raise SpecError(source, "objective.data", f"expected a LightningDataModule class or a function, "
                            f"got {type(data_obj).__name__}")
        if is_datamodule(data_obj) and namespace_name(data_obj) != namespace_name(module_cls):
            raise SpecError(source, "objective.data", f"{data_obj.__name__} is a {namespace_name(data_obj)} "
                            f"LightningDataModule but {module_cls.__name__} is a {namespace_name(module_cls)} "
                            "LightningModule; import both from one package")
    return module_cls, data_obj


def check_module_study(
    module_cls: type, data: Any, fixed: Mapping[str, Any], space_names: list[str]
) -> tuple[str, str] | None:
    """``(key path, problem)`` for the first key of a module study that nothing takes, or for
    optimizer knobs the module's own ``configure_optimizers`` would ignore."""
    from objectives._config import OPTIMIZER_KNOBS
    from objectives._stack import optimizer_problem
    from objectives._user import HYPERPARAMETER_TEACHER, accepts_of, missing_required, unknown_key

    accepts = accepts_of(module_cls, data)
    for section, names in (("objective.fixed", list(fixed)), ("space", space_names)):
        problem = unknown_key(names, *accepts)
        if problem:
            return f"{section}.{problem[0]}", problem[1]
    names = list(fixed) + space_names
    missing = missing_required(names, *accepts)
    if missing:
        return f"objective.{missing[0]}", missing[1]
    teacher = fixed.get("teacher")
    if isinstance(teacher, Mapping) and "module" not in teacher:
        return "objective.fixed.teacher", HYPERPARAMETER_TEACHER
    problem = optimizer_problem(module_cls, names)
    if problem:
        knob = next(n for n in names if n in OPTIMIZER_KNOBS)
        section = "objective.fixed" if knob in fixed else "space"
        return f"{section}.{knob}", problem
    return None


def import_problem(name: str, base_dir: Path) -> str | None:
    """Imports a user objective (``module:attr`` / ``file.py:attr``) and says what is wrong, or None.

    Importing runs the user's code, so only ``hpo validate`` and ``hpo run`` call this; built-in
    objectives ship with hpo and are not imported here (that would load torch).
    """
    if name in OBJECTIVES or parse_module_study(name):
        return None  # a module study's classes are imported and checked by the spec validator
    attr = name.rpartition(":")[2].rpartition(".")[2]
    try:
        obj = load_checked(name, base_dir, hint=f"; define `def {attr}(params, ctx)` there")
    except UnloadableReference as exc:
        return str(exc)
    if not callable(obj):
        return f"{name!r} is {type(obj).__name__}, not a function; expected `def fn(params, ctx)`"
    return None


def _user_frame(exc: BaseException) -> str:
    """`` (at path.py, line 3)``: where in the user's code an import failed."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" (at {exc.filename}, line {exc.lineno})"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" (at {tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno})" if tb else ""


def _find_file(file: str, base_dir: Path) -> Path | None:
    for candidate in (base_dir / file, Path(file)):
        try:
            if candidate.is_file():
                return candidate.resolve()
        except (OSError, ValueError):  # a name too long for the file system, or with a NUL
            continue
    return None


def _module_from_file(path: Path) -> Any:
    """The module of the file ``path``, loaded once: the one already imported from that file (the
    user's own ``import models``), else imported by its own name when that name finds this very file,
    so that a later ``import models`` gets the same classes (``isinstance`` against the user's class
    holds for what ``load_best(...).instantiate()`` builds); else under a private name (a file whose
    name is taken by another module, or not on ``sys.path``)."""
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.basename(file) == path.name and _same_file(file, path):
            return module
    if path.stem.isidentifier() and path.stem not in sys.modules:
        try:
            spec = importlib.util.find_spec(path.stem)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and _same_file(spec.origin, path):
            return importlib.import_module(path.stem)
    module_name = f"hpo_user_objective_{abs(hash(str(path)))}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]  # a half-run module must not be found by the next attempt
            raise
    return module


def _same_file(file: str, path: Path) -> bool:
    try:
        return Path(file).resolve() == path
    except (OSError, ValueError):
        return False


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
            raise MetricMissing(f"the objective returned no {missing[0]!r}; it returned {sorted(result)}. "
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
