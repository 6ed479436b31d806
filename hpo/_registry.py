"""Name → factory registries, so an unknown name can list the known ones."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def import_object(target: str) -> Any:
    """Imports ``"package.module:attribute"`` (``attribute`` may be dotted)."""
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


def did_you_mean(name: str, known: list[str]) -> str:
    """Returns `` (did you mean 'x'?)`` when ``name`` is close to one of ``known``, else ``""``."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """Maps names to factories; entries may be ``"module:attr"`` strings imported on first use.

    Lazy entries keep heavy imports (torch, Lightning) out of commands that never need them.

    Example:
        >>> SAMPLERS = Registry("sampler")
        >>> SAMPLERS.register("random", "optuna.samplers:RandomSampler")
        >>> SAMPLERS.get("random")
        <class 'optuna.samplers._random.RandomSampler'>
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T] | str] = {}

    def register(self, name: str, factory: Callable[..., T] | str) -> None:
        self._entries[name] = factory

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def unknown_message(self, name: str) -> str:
        known = ", ".join(self._entries)
        return f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}; known: {known}"

    def get(self, name: str) -> Callable[..., T]:
        """Returns the factory for ``name``; raises ``KeyError`` listing the known names."""
        if name not in self._entries:
            raise KeyError(self.unknown_message(name))
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = import_object(entry)
        return entry
