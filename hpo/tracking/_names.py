"""Names and values as MLflow accepts them: key sanitising, flattening, truncation, final-metric names.

Pure functions, importable without MLflow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: MLflow's limits (mlflow.utils.validation), repeated here so importing this module stays cheap.
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_METRICS_PER_BATCH = 1000
TRUNCATION_MARK = "...[truncated]"

FINAL_PREFIX = "final."
FIXED_PREFIX = "fixed."

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def truncate(value: str, limit: int) -> str:
    """Cuts ``value`` to at most ``limit`` characters, marking the cut."""
    if len(value) <= limit:
        return value
    return value[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def sanitize_key(key: str) -> str:
    """Makes ``key`` a valid MLflow param/metric/tag name (bad characters become ``_``)."""
    key = _BAD_KEY_CHARS.sub("_", str(key)).strip("/") or "_"
    # MLflow rejects names that normalize to another path ("a//b", "a/./b", "..").
    key = re.sub(r"/+", "/", key)
    key = "/".join(p if p not in (".", "..") else "_" for p in key.split("/"))
    return key[:MAX_KEY_LENGTH]


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested mappings with dots: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def param_items(params: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, str]:
    """The params a trial's run records: sampled ones as is, fixed ones under ``fixed.``."""
    out: dict[str, str] = {}
    for prefix, source in (("", params), (FIXED_PREFIX, fixed)):
        for key, value in flatten(source or {}).items():
            out[sanitize_key(prefix + key)] = truncate(str(value), MAX_PARAM_VAL_LENGTH)
    return out


def final_metric_names(metrics: list[str] | tuple[str, ...] | None, n: int) -> list[str]:
    """``final.<metric>`` for each objective value (``final.value_<i>`` when names are missing)."""
    names = list(metrics or [])
    if len(names) != n:
        names = ["value"] if n == 1 else [f"value_{i}" for i in range(n)]
    return [sanitize_key(FINAL_PREFIX + m) for m in names]


def to_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
