"""The one inter-process lock of hpo: an exclusive ``fcntl.flock`` on a file next to what it guards.

Used for the embedded study store (journal appends, "count then create a trial"), the MLflow
SQLite store's first set-up, and the study-wide teacher cache. The kernel releases an flock
when its holder dies, so a SIGKILLed worker never leaves a stale lock behind (Optuna's default
journal lock is a symlink that survives its holder and makes every other worker wait out a grace
period).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, single worker only
    fcntl = None  # type: ignore[assignment]


class FileLock:
    """An exclusive lock on ``path`` (created if missing), reusable, with Optuna's lock interface.

    ``acquire``/``release`` match ``optuna.storages.journal.BaseJournalFileLock``, so one object
    serves both as a context manager and as a journal backend's ``lock_obj``.

    Example:
        >>> import tempfile
        >>> with FileLock(Path(tempfile.mkdtemp()) / "x.lock"):
        ...     pass
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path, "_fd": None}  # a held descriptor never travels to another process


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """``with file_lock(path):`` holds :class:`FileLock` on ``path`` for the block."""
    with FileLock(path):
        yield
