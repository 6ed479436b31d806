"""Errors that reach the user as a message and an exit code, never as a traceback."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

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


class MetricMissing(ValueError):
    """The objective gave no value for the study metric (a module that does not log it, a function
    that does not return it). Every trial would fail the same way, so a worker stops at the first
    one while no trial of the study has completed (:func:`hpo._worker.run_worker`)."""


class UsageError(HpoError):
    """Bad input that is not a space file: a missing study, a bad export file, a bad flag value."""

    exit_code = 2


def one_line(text: str) -> str:
    """``text`` with control characters escaped (``\\n`` → ``\\\\n``), so an error stays one line.

    Example:
        >>> one_line("study.name: got 'a\\nb'")
        "study.name: got 'a\\\\nb'"
    """
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


# errno → what the user can do. OSErrors with these codes come from the user's files and disks
# (not from a bug in hpo), so the CLI reports them as bad input instead of a traceback.
_OS_ERROR_ADVICE = {
    errno.EACCES: "check its permissions, or run from a folder you can write to",
    errno.EPERM: "check its permissions, or run from a folder you can write to",
    errno.EROFS: "mount it writable, or run from a writable folder",
    errno.ENOSPC: "the disk is full; free some space",
    errno.EDQUOT: "the disk quota is used up; free some space",
    errno.EFBIG: "the file reached a size limit (ulimit -f) or the disk is full; free some space",
    errno.ENAMETOOLONG: "a file name may have at most 255 bytes; shorten the name",
}


def os_error_message(exc: OSError) -> str | None:
    """One line naming the path, the cause and what to do; None if ``exc`` is not the user's to fix."""
    advice = _OS_ERROR_ADVICE.get(exc.errno)
    if advice is None:
        return None
    filename = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else None
    if filename is None:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.ENAMETOOLONG):
            return None  # without a path these may be sockets or hpo's own doing: keep the traceback
        where = f"writing under {Path.cwd()}"  # a write() names no file; the run writes below here
    else:
        where = filename
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice += f" on {disk_of(Path(filename or Path.cwd()))}"
    return f"{where}: {exc.strerror or os.strerror(exc.errno)}; {advice}"


def disk_of(path: Path) -> str:
    """``the disk mounted at /x (12.0 MB free)``: the mount point holding ``path``, for disk-full errors."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    mount = path
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    try:
        free = shutil.disk_usage(mount).free
    except OSError:
        return f"the disk mounted at {mount}"
    return f"the disk mounted at {mount} ({free / 1e6:.1f} MB free)"


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
        where = os_error_message(exc) or f"{exc.filename or 'a file'}: {exc.strerror}; free some space"
        return StoreFullError(f"cannot write {where}; then rerun `hpo run` to resume")
    return None
