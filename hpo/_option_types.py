"""Does an option's value, as YAML gives it, fit the type annotation of an Optuna constructor's
parameter? ``hpo validate`` asks this of every sampler and pruner option, so that a string where
Optuna wants an integer fails at validation rather than at the first ``sample`` of a running study.

Optuna writes its annotations as strings and imports many of the names they use only for type
checkers, so ``typing.get_type_hints`` fails on them; they are evaluated here against builtins,
``typing`` and Optuna's public names, and anything still unknown is judged "can't tell" (accepted).
tests/search/test_component_options.py fails if an Optuna upgrade leaves the annotations unreadable.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


class _OpaqueMeta(type):
    """A name an annotation uses that cannot be resolved here: anything built from it stays opaque."""

    def __getattr__(cls, name: str) -> Any:
        return cls

    def __getitem__(cls, item: Any) -> Any:
        return cls


class _Opaque(metaclass=_OpaqueMeta):
    pass


class _Names(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> Any:
        return _Opaque


@functools.cache
def _annotation_names() -> dict[str, Any]:
    """What Optuna's constructor annotations may name: builtins, typing's names, and the public
    names of Optuna's packages (their modules import much of it only for type checkers)."""
    import builtins
    import collections.abc
    import typing

    import optuna

    names: dict[str, Any] = {}
    for module in (optuna.trial, optuna.study, optuna.distributions, optuna.samplers, optuna.pruners,
                   optuna.samplers.nsgaii, collections.abc, typing):
        names.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
    names.update({k: getattr(builtins, k) for k in ("int", "float", "str", "bool", "bytes", "list",
                                                     "tuple", "dict", "set", "frozenset", "object", "type")})
    names["None"] = None
    return names


def _resolve(annotation: Any) -> Any:
    """The annotation as an object; a string (``from __future__ import annotations``) is evaluated
    with names it cannot resolve left opaque (judged as anything goes)."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, {"__builtins__": {}}, _Names(_annotation_names()))  # noqa: S307 - Optuna's own source
    except Exception:  # noqa: BLE001 - an annotation this cannot read is not the user's problem
        return _Opaque


def value_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` (from YAML) does not fit the parameter's annotation, or None (also when the
    annotation cannot be judged)."""
    tp = _resolve(annotation)
    if _accepts(value, tp) is not False:
        return None
    from hpo._spec import _kind

    code = _only_code(tp)
    note = f"; a space file cannot give {code}: leave the option out" if code else ""
    return f"expected {_describe(tp)}, got {_kind(value)}{note}"


def _only_code(tp: Any) -> str:
    """What ``tp`` asks for when no YAML value but null fits it (``a function``, ...), else ""."""
    import typing

    alternatives = [a for a in (typing.get_args(tp) if _is_union(tp) else (tp,)) if a not in (None, type(None))]
    texts = [_describe(a) for a in alternatives]
    return " or ".join(texts) if texts and all(t.startswith(("a function", "an object")) for t in texts) else ""


def _is_union(tp: Any) -> bool:
    import types
    import typing

    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _accepts(value: Any, tp: Any) -> bool | None:
    """Whether ``value`` fits type ``tp``; None when that cannot be judged."""
    import collections.abc
    import types
    import typing

    if tp is inspect.Parameter.empty or tp is typing.Any or tp is _Opaque:
        return None
    if tp is None or tp is type(None):
        return value is None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        verdicts = [_accepts(value, arg) for arg in args]
        return True if True in verdicts else None if None in verdicts else False
    if origin is typing.Literal:
        return value in args
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is collections.abc.Callable or origin is collections.abc.Callable:
        return callable(value)
    if isinstance(origin, type) and issubclass(origin, (list, tuple, collections.abc.Sequence)) \
            and not issubclass(origin, str):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple or len(args) != 1:
            return None
        verdicts = [_accepts(item, args[0]) for item in value]
        return False if False in verdicts else None if None in verdicts else True
    if isinstance(origin, type) and issubclass(origin, collections.abc.Mapping):
        return isinstance(value, dict)  # its keys and values: left to the constructor
    if isinstance(tp, type) and tp.__module__ != "typing":
        return isinstance(value, tp)
    return None


def _describe(tp: Any) -> str:
    """``an integer``, ``a number or null``, ...: what a type annotation asks of a YAML value."""
    import collections.abc
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if tp is None or tp is type(None):
        return "null"
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if tp in simple:
        return simple[tp]
    if tp is collections.abc.Callable or origin is collections.abc.Callable:
        return "a function"
    if isinstance(origin, type) and issubclass(origin, collections.abc.Mapping):
        return "a mapping"
    if isinstance(origin, type):
        return f"a list (each item {_describe(args[0])})" if origin is not tuple and len(args) == 1 else "a list"
    name = getattr(tp, "__name__", str(tp))
    return f"an object ({name})"
