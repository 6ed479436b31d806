"""Errors that reach the user as a message and an exit code, never as a traceback."""

from __future__ import annotations

import errno

# A write failed for lack of space: the disk is full, a quota or a file-size limit was reached.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class HpoError(Exception):
    """A failure the user can act on; the CLI prints the message and exits with ``exit_code``."""

    exit_code = 1


class SpecError(HpoError):
    """A bad space file or override: names the file, the key path, what was expected and found.

    Example:
        >>> str(SpecError("space.yaml", "space.lr.low", "must be > 0 when log is true, got 0.0"))
        'space.yaml: space.lr.low: must be > 0 when log is true, got 0.0'
    """

    exit_code = 2

    def __init__(self, source: str, key_path: str, message: str) -> None:
        self.source, self.key_path, self.message = source, key_path, message
        where = f"{source}: {key_path}: " if key_path else f"{source}: "
        super().__init__(where + message)


class UsageError(HpoError):
    """Bad input that is not a space file: a missing study, a bad export file, a bad flag value."""

    exit_code = 2


class StoreFullError(HpoError):
    """The disk holding the study store is full (or the file hit a size limit): the append was cut
    back, nothing recorded before it is lost, and the next ``hpo run`` with space resumes."""

    exit_code = 1


def disk_full_error(exc: BaseException) -> HpoError | None:
    """The one-line error for a write that failed on a full disk, or None for any other error.

    A :class:`StoreFullError` anywhere in the chain wins: code that handled it (a trial's error
    handler writing its traceback to the same full disk) may have raised a plain ``OSError``.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StoreFullError):
            return seen
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return StoreFullError(f"cannot write {exc.filename or 'a file'}: {exc.strerror}; free some space and "
                              "rerun `hpo run` to resume")
    return None
