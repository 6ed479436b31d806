"""Version ranges for the modules that use a dependency's privates (``hpo._optuna_compat``,
``hpo.cluster._submitit_compat``): each checks the installed version against the range its
privates were checked with. No imports beyond the standard library: the check runs before the
dependency is imported."""

from __future__ import annotations

import re

Range = tuple[tuple[int, int], tuple[int, int]]  # (lowest supported MAJOR.MINOR, first unsupported)


def major_minor(text: str) -> tuple[int, int]:
    """``"5.0.0"`` -> ``(5, 0)``; ``(0, 0)`` for text that does not start with ``MAJOR.MINOR``."""
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def in_range(version: str, supported: Range) -> bool:
    low, high = supported
    return low <= major_minor(version) < high


def range_text(supported: Range) -> str:
    """``((4, 2), (6, 0))`` -> ``">=4.2,<6.0"``."""
    (lo_major, lo_minor), (hi_major, hi_minor) = supported
    return f">={lo_major}.{lo_minor},<{hi_major}.{hi_minor}"
