"""Space file text → a YAML document: reading the file safely, parsing it strictly, ``--set`` overrides.

Everything here fails with a :class:`SpecError` naming the file (or ``--set``), never a traceback:
binary or non-UTF-8 files, oversized files or alias bombs, duplicate keys (also ``1`` and ``"1"``).
Validation of the document's meaning is :mod:`hpo._spec`'s.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from hpo._errors import SpecError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (it keeps the last one silently).

    Keys are compared by value and by text: ``1`` and ``"1"`` (or ``true`` and ``"true"``) are
    different Python keys but the same name once they reach a param, an option or a --set path.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, str] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *defaults`: keys given beside it override the merged ones on purpose
            key = self.construct_object(key_node, deep=deep)
            forms = [("text", str(key))]
            if isinstance(key_node, yaml.ScalarNode):
                forms.append(("text", key_node.value))
            if isinstance(key, Hashable):  # an unhashable key is refused by PyYAML just below
                forms.append(("value", key))
            clash = next((seen[f] for f in forms if f in seen), None)
            if clash is not None:
                same = "" if clash == _key_text(key_node, key) else f" (the same key as {clash})"
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_key_text(key_node, key)}{same}", key_node.start_mark
                )
            seen.update(dict.fromkeys(forms, _key_text(key_node, key)))
        return super().construct_mapping(node, deep=deep)


# Numbers in exponent form without a dot (``1e-4``, ``3E5``): PyYAML follows YAML 1.1, which reads
# them as text, so ``lr: {low: 1e-4}`` was refused as "expected a number, got '1e-4' (str)". YAML 1.2,
# JSON and Python read them as numbers, and so does hpo. A quoted "1e-4" stays text.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _key_text(node: yaml.Node, key: Any) -> str:
    """How a key was written: ``'1'`` for ``1``, ``'"1"'`` for a quoted ``"1"``."""
    if isinstance(node, yaml.ScalarNode):
        return repr(f"{node.style}{node.value}{node.style}" if node.style in ("'", '"') else node.value)
    return repr(str(key))


MAX_FILE_BYTES = 1_000_000  # a space file is a page of settings; data belongs elsewhere
MAX_VALUES = 100_000        # values in the whole document after YAML aliases are expanded

# Exceptions PyYAML lets through for well-formed but unconstructible text (``2020-13-45`` is a
# date with month 13, ``!!int 0b``, 10,000 nested brackets).
_YAML_VALUE_ERRORS = (ValueError, OverflowError, RecursionError)


def read_yaml(path: str | Path) -> Any:
    """Loads a YAML space file with the safe loader; errors name the file and what is wrong.

    Refuses what is not a regular file, files over :data:`MAX_FILE_BYTES`, binary and non-UTF-8
    files (naming the byte offset) and YAML that cannot be constructed.
    """
    path = Path(path)
    source = str(path)
    data = _read_bytes(path)
    if b"\0" in data:
        raise SpecError(source, "", f"looks like a binary file (a NUL byte at byte offset {data.index(0)}); "
                        "expected a YAML text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(source, "", f"not UTF-8 text: byte {data[exc.start]:#04x} at byte offset {exc.start} "
                        "cannot be decoded; save the file as UTF-8") from None
    return parse_yaml(text, source, "")


def _read_bytes(path: Path) -> bytes:
    source = str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SpecError(source, "", "file not found; check the path") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise SpecError(source, "", f"cannot read the file: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError(source, "", "is a folder; expected a YAML space file")
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(source, "", "is not a regular file (a device or pipe?); expected a YAML space file")
    if info.st_size > MAX_FILE_BYTES:
        raise SpecError(source, "", f"is {info.st_size:,} bytes; a space file may have at most "
                        f"{MAX_FILE_BYTES:,} bytes (keep data in the objective, not the space file)")
    try:
        with path.open("rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(source, "", f"cannot read the file: {exc.strerror}") from None


def parse_yaml(text: str, source: str, key_path: str) -> Any:
    """Parses YAML text (a file or a --set value); any failure is a SpecError naming ``source``."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(source, key_path, f"not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise SpecError(source, key_path, "not a usable YAML document: nested too deeply") from None
    except _YAML_VALUE_ERRORS as exc:
        raise SpecError(source, key_path, f"not a usable YAML value: {exc} (quote it to keep it as text)") from None
    _check_value_count(doc, source, key_path)
    return doc


def _check_value_count(doc: Any, source: str, key_path: str) -> None:
    """Refuses documents that expand to over :data:`MAX_VALUES` values or refer to themselves.

    YAML aliases (``*name``) let a few lines stand for an exponentially large or cyclic tree,
    which would later hang or crash whatever copies or serialises it.
    """
    count = 0
    on_path: set[int] = set()  # ids of the containers from the root down to the current node
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        count += 1
        if count > MAX_VALUES:
            raise SpecError(source, key_path, f"the document has more than {MAX_VALUES:,} values "
                            "(YAML aliases included); simplify it")
        if isinstance(node, (dict, list)):
            if id(node) in on_path:
                raise SpecError(source, key_path, "a YAML alias refers to a mapping or list that contains it; "
                                "expected a tree")
            on_path.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in ([*node, *node.values()] if isinstance(node, dict) else node))


def parse_set(assignment: str) -> tuple[str, Any]:
    """Splits ``key.path=value``; the value is parsed as YAML (``0.1`` → float, ``[a, b]`` → list)."""
    key, sep, value = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError("--set", assignment, "expected key.path=value, e.g. --set study.seed=1")
    if any(not part.strip() for part in key.split(".")):
        raise SpecError("--set", key, "expected dot-separated key names, e.g. study.seed; found an empty name")
    if not value.strip():  # an empty shell variable, most likely: it would silently reset the key to its default
        raise SpecError("--set", key, f"empty value; write {key}=null to reset the key to its default")
    try:
        return key, parse_yaml(value, "--set", key)
    except SpecError:
        return key, value  # not usable YAML (`a: b: c`, `2020-13-45`): taken as the plain string


def remove_key(doc: dict[str, Any], key_path: str) -> None:
    """Removes ``doc[a][b][c]`` for ``key_path="a.b.c"`` if it is there (``--set KEY=null``: the key's
    default applies, also for a key, like ``objective.fixed.max_epochs``, that refuses null itself)."""
    *parents, last = key_path.split(".")
    node: Any = doc
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def apply_override(doc: dict[str, Any], key_path: str, value: Any) -> None:
    """Sets ``doc[a][b][c] = value`` for ``key_path="a.b.c"``, creating mappings on the way."""
    *parents, last = key_path.split(".")
    node = doc
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parents[: i + 1])
            raise SpecError("--set", key_path, f"'{where}' is {child!r}, not a mapping")
        node = child
    node[last] = value
