"""Retrying tracking-store calls: which errors are worth a retry, and the backoff."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

_log = logging.getLogger("hpo.tracking._mlflow")  # the tracker's name, as before the split

_BUSY = (
    "database is locked",
    "database is busy",
    "database table is locked",
    "could not serialize access",
    "deadlock detected",
)
_UNREACHABLE = (
    "connection refused",
    "connection reset",
    "timed out",
    "max retries exceeded",
    "server closed the connection",
    "temporarily_unavailable",
)


def _is_busy(exc: BaseException) -> bool:
    """A database-busy error: the transaction was rolled back, so retrying cannot duplicate."""
    text = str(exc).lower()
    return any(s in text for s in _BUSY)


def _is_transient(exc: BaseException) -> bool:
    """Whether a tracking-store error is worth retrying (busy database, server hiccup)."""
    text = str(exc).lower()
    return _is_busy(exc) or any(s in text for s in _UNREACHABLE)


#: How many times a store call was retried in this process (tests and benchmarks read it).
RETRIES = {"count": 0}


def with_retries(
    fn: Callable[[], Any],
    what: str,
    attempts: int = 12,
    base: float = 0.05,
    retry_if: Callable[[BaseException], bool] = _is_transient,
) -> Any:
    """Calls ``fn`` until it succeeds, retrying transient store errors with jittered backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds
            if attempt == attempts or not retry_if(exc):
                raise
            RETRIES["count"] += 1
            delay = min(5.0, base * 2 ** (attempt - 1)) * (0.5 + random.random())
            _log.debug("%s failed (%s); retry %d in %.2fs", what, exc, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
