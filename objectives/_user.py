"""Studies of a user's own LightningModule (``objective: {module: ..., data: ...}``).

Where a key of ``fixed``/``space`` goes, in order:

1. a reserved knob of the stack (:data:`objectives.STACK_KNOBS`): to hpo's training stack;
2. a parameter the module's constructor names: to the module (and also to the data's constructor
   or function when that names it too, e.g. ``num_classes``);
3. a parameter the data's constructor or function names: to the data (``batch_size`` lands here:
   the stack cannot batch a user's DataModule);
4. a constructor that takes ``**kwargs``: the module's first, then the data's.

Anything else is refused at ``hpo validate``. This module imports neither torch nor Lightning at
import time: the CLI validates space files with it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo._registry import did_you_mean
from objectives._config import STACK_KNOBS
from objectives._namespace import is_datamodule

if TYPE_CHECKING:
    from hpo._context import TrialContext


HYPERPARAMETER_TEACHER = ("a mapping of hyperparameters trains a built-in teacher; for your own module give a "
                          "checkpoint path, an exported best.yaml, or {module: file.py:Class, checkpoint: PATH}")


@dataclass(frozen=True)
class Accepts:
    """The keyword parameters a constructor or function takes (``var_kw``: it has ``**kwargs``)."""

    names: frozenset[str]
    var_kw: bool
    required: frozenset[str] = frozenset()

    @classmethod
    def of(cls, obj: Any) -> Accepts:
        params = list(inspect.signature(obj).parameters.values())  # a class: its constructor, less self
        named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return cls(frozenset(p.name for p in named), any(p.kind == p.VAR_KEYWORD for p in params),
                   frozenset(p.name for p in named if p.default is p.empty))

    def describe(self) -> str:
        names = sorted(self.names)
        return ", ".join(names + (["**kwargs"] if self.var_kw else [])) or "nothing"


@dataclass(frozen=True)
class Routing:
    stack: dict[str, Any]
    module: dict[str, Any]
    data: dict[str, Any]


def accepts_of(module_cls: type, data: Any) -> tuple[Accepts, Accepts | None]:
    """What the module class's and the data's constructor (or function) take."""
    return Accepts.of(module_cls), (Accepts.of(data) if data is not None else None)


def route(config: Mapping[str, Any], module: Accepts, data: Accepts | None) -> Routing:
    """Splits a trial's config between the stack, the module and the data (see the module docstring).

    Raises:
        KeyError: with ``(key, message)`` for a key nobody takes.
    """
    out = Routing({}, {}, {})
    for key, value in config.items():
        for target in _targets(key, module, data):
            getattr(out, target)[key] = value
    return out


def _targets(key: str, module: Accepts, data: Accepts | None) -> list[str]:
    if key in STACK_KNOBS:
        return ["stack"]
    named = [t for t, acc in (("module", module), ("data", data)) if acc is not None and key in acc.names]
    if named:
        return named
    for target, acc in (("module", module), ("data", data)):
        if acc is not None and acc.var_kw:
            return [target]
    where = f"the module takes {module.describe()}"
    if data is not None:
        where += f"; the data takes {data.describe()}"
    known = [*module.names, *(data.names if data is not None else ()), *STACK_KNOBS]
    raise KeyError(key, f"neither a knob of hpo's stack nor a parameter of the module or the data"
                        f"{did_you_mean(key, known)}: {where}; the stack's knobs are in docs/knobs.md")


def unknown_key(names: Iterable[str], module: Accepts, data: Accepts | None) -> tuple[str, str] | None:
    """``(key, problem)`` for the first name that no one takes, else None."""
    for name in names:
        try:
            _targets(name, module, data)
        except KeyError as exc:
            return exc.args[0], exc.args[1]
    return None


def missing_required(names: Iterable[str], module: Accepts, data: Accepts | None) -> tuple[str, str] | None:
    """``(side, problem)`` for a constructor parameter without a default that no key fills."""
    routed = route({n: None for n in names}, module, data)
    missing = {side: sorted(acc.required - set(given))
               for side, acc, given in (("module", module, routed.module), ("data", data, routed.data))
               if acc is not None and acc.required - set(given)}
    for side, names_ in missing.items():
        for name in names_:
            if name in STACK_KNOBS:
                return side, (f"the {side}'s constructor requires {name}; {name} is a reserved knob of hpo's "
                              "stack, so it never reaches the constructor: give the parameter another name or "
                              "a default")
    if not missing:
        return None
    # all of them at once: one at a time, each fix met the next refusal
    every = [name for names_ in missing.values() for name in names_]
    said = "; ".join(f"the {side}'s constructor requires {', '.join(names_)}" for side, names_ in missing.items())
    named = " and ".join(every) if len(every) < 3 else "them"
    return next(iter(missing)), f"{said}; set {named} in objective.fixed or space"


def load_data(data: Any, kwargs: Mapping[str, Any]) -> Any:
    """A LightningDataModule instance, or what the data function returns: ``(train, val)`` loaders
    (``val`` may be None) or a LightningDataModule; anything else is refused naming the function
    (a lone DataLoader trained without validation, and the study metric was then "never logged")."""
    if data is None:
        return None
    made = data(**kwargs)
    if isinstance(data, type) or is_datamodule(made):
        return made
    if isinstance(made, (tuple, list)) and len(made) == 2:
        return made
    got = f"a tuple of {len(made)}" if isinstance(made, (tuple, list)) else type(made).__name__
    raise ValueError(f"objective.data: {getattr(data, '__qualname__', data)!r} returned {got}; expected "
                     "(train_loader, val_loader), or (train_loader, None) to train without validation, or a "
                     "LightningDataModule")


class ModuleObjective:
    """The objective of a module study: builds the module and the data from the trial's config and
    trains them with the whole stack (:func:`objectives.fit`)."""

    def __init__(self, module_cls: type, data: Any = None) -> None:
        self.module_cls, self.data = module_cls, data
        self.accepts = accepts_of(module_cls, data)

    def __call__(self, params: Mapping[str, Any], ctx: TrialContext) -> dict[str, float]:
        from objectives._fit import fit
        from objectives._trainer import seed_everything

        routing = route(params, *self.accepts)
        seed = routing.stack.get("seed", ctx.seed)
        seed_everything(int(seed))  # the module's initial weights come from the trial's seed
        module = self.module_cls(**routing.module)
        data = load_data(self.data, routing.data)
        return fit(module, data, routing.stack, ctx)


def resolve_module_teacher(spec: Any, student: Any, ctx: TrialContext | None) -> Any:
    """A frozen teacher for a user's module: a ``.pt`` checkpoint of the student's architecture, an
    exported ``best.yaml`` of a module study, or ``{module: file.py:Class, checkpoint: PATH, ...kwargs}``."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        if "module" not in spec:
            raise ValueError(f"teacher: {HYPERPARAMETER_TEACHER}")
        kwargs = {k: v for k, v in spec.items() if k not in ("module", "checkpoint")}
        teacher = _load_class(str(spec["module"]))(**kwargs)
        return _load_weights(teacher, spec["checkpoint"])
    path = Path(str(spec)).expanduser()
    if path.suffix in (".yaml", ".yml"):
        return _teacher_from_export(path)
    import copy

    return _load_weights(copy.deepcopy(student), path)  # the student's architecture


def _load_class(ref: str, base_dir: Path | None = None) -> Callable[..., Any]:
    from hpo._objective import load_reference

    return load_reference(ref, base_dir or Path.cwd())


def _load_weights(model: Any, path: str | Path) -> Any:
    from objectives._teacher import read_checkpoint

    path = Path(path).expanduser()
    ckpt = read_checkpoint(path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise ValueError(f"teacher: {path} holds a {type(ckpt).__name__}, expected a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"teacher: {path} does not fit {type(model).__name__}: {exc}") from None
    return model.eval().requires_grad_(False)


def _teacher_from_export(path: Path) -> Any:
    from hpo._export import read_export
    from hpo._objective import parse_module_study

    best = read_export(path)[0]
    refs = parse_module_study(best.objective)
    if refs is None or not best.checkpoint:
        raise ValueError(f"teacher: {path} is not the export of a module study with a kept checkpoint "
                         f"(objective {best.objective!r}, checkpoint {best.checkpoint!r})")
    base = Path(best.space_file).parent if best.space_file else Path.cwd()
    module_cls = _load_class(refs[0], base)
    data = _load_class(refs[1], base) if refs[1] else None
    routing = route(best.config, *accepts_of(module_cls, data))
    return _load_weights(module_cls(**routing.module), best.checkpoint)
