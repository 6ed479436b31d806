"""The embedded study store: Optuna's journal file, made safe against crashes and full disks.

- Appends hold :class:`hpo._lock.FileLock` on ``journal.log.lock`` (released by the kernel when a
  worker dies), so under that lock nobody is half-way through a write.
- A torn tail (bytes after the last newline that are not a whole record: a process died, or the
  disk filled, in the middle of an append) is found under the lock, when the store is opened for
  writing and before every append, and moved aside into ``journal.log.torn-<UTC time>``. Without
  this the next append would land after the half line, and Optuna could never read the journal
  again (the two glued records are not JSON).
- An append that fails (disk full) is cut back to where it started, and this process writes
  nothing more to the store (:class:`hpo._errors.StoreFullError`): a later, smaller append could
  fit and record the running trial as failed by its config instead of lost.
- Read-only opens (:class:`ReadOnlyJournalBackend`) take no lock and create nothing: they read up
  to the last complete line, as Optuna's own reader does while another process appends.
- Journals damaged before this repair existed (a cut-off record with the next whole record glued
  to it on one line) are read past: the whole record is kept (:func:`_salvage`).

Durability: a flushed write survives a killed process (the kernel has it), not a power loss;
``study.fsync: true`` adds ``os.fsync`` to every append for that.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpo._errors import DISK_FULL_ERRNOS, StoreFullError
from hpo._lock import FileLock
from hpo._optuna_compat import JournalFileBackend

TORN_INFIX = ".torn-"
_CHUNK = 1 << 16


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class _SalvagingReader(JournalFileBackend):
    """Optuna's reader, plus: a line that is a cut-off record glued to a whole one yields the whole one.

    Journals damaged before hpo repaired torn tails hold such lines (the next append landed after
    the half line); Optuna stops at them, losing every later record. The same reader as Optuna's
    ``read_logs`` otherwise: an unfinished last line is left for later (another process may be
    appending it).
    """

    _warned_glued = False

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        offsets = self._log_number_offset
        with open(self._file_path, "rb") as f:
            remaining = os.fstat(f.fileno()).st_size  # lines appended while reading wait for the next call
            first = 0
            if log_number_from in offsets:
                f.seek(offsets[log_number_from])
                first, remaining = log_number_from, remaining - offsets[log_number_from]
            error: Exception | None = None
            for number, line in enumerate(f, start=first):
                remaining -= len(line)
                if remaining < 0:
                    break
                if error is not None:
                    raise error
                if not line.endswith(b"\n"):
                    error = ValueError(f"{self._file_path}: line {number + 1} has no end")
                    continue
                offsets.setdefault(number + 1, offsets[number] + len(line))
                if number < log_number_from:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    record = _salvage(line)
                    if record is None:
                        error = exc
                        del offsets[number + 1]
                        continue
                    self._warn_glued(number)
                    yield record

    def _warn_glued(self, number: int) -> None:
        if self._warned_glued:  # once per process: every reader of the journal finds the same line
            return
        self._warned_glued = True
        print(f"warning: {self._file_path}: line {number + 1} holds a record cut off by an earlier crash, glued to "
              "the next record; read the whole record and ignored the cut-off one", file=sys.stderr, flush=True)


class HpoJournalBackend(_SalvagingReader):
    """Optuna's journal file backend with hpo's lock, torn-tail repair and clean disk-full errors.

    Picklable (Optuna pickles storages, e.g. for ``n_jobs``): the lock reopens its file in the new
    process. Writes are flushed, not fsynced, unless ``fsync``.

    Example:
        >>> import tempfile
        >>> from optuna.storages import JournalStorage
        >>> path = Path(tempfile.mkdtemp()) / "journal.log"
        >>> storage = JournalStorage(HpoJournalBackend(path))
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        path = Path(path)
        super().__init__(str(path), lock_obj=FileLock(lock_path(path)))
        self._fsync = fsync
        self._full: str | None = None  # the disk-full message, once an append failed for lack of space
        with self._lock:
            fd = os.open(self._file_path, os.O_RDWR)
            try:
                repair_tail(fd, path, fsync)
            finally:
                os.close(fd)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self._full is not None:
            raise StoreFullError(self._full)
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        path = Path(self._file_path)
        with self._lock:
            fd = os.open(path, os.O_RDWR)
            try:
                end = repair_tail(fd, path, self._fsync)
                write_at(fd, data, end, path, self._fsync)
            except StoreFullError as exc:
                self._full = str(exc)
                raise
            finally:
                os.close(fd)


class ReadOnlyJournalBackend(_SalvagingReader):
    """Reads a journal without creating, locking or writing anything; appending raises."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not Path(path).is_file():
            raise FileNotFoundError(str(path))  # the base class would create it
        super().__init__(str(path), lock_obj=FileLock(lock_path(Path(path))))  # never acquired

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise PermissionError(f"{self._file_path} was opened read-only; this is a bug in hpo (a reader tried to write)")


def repair_tail(fd: int, path: Path, fsync: bool = False) -> int:
    """Makes the journal open on ``fd`` end in a newline; call it holding the journal's lock.

    A last line that is a whole record only lacks its newline: it gets one. Anything else after
    the last newline is torn: it is copied into ``<journal>.torn-<UTC time>``, the journal is
    truncated to its last complete line, and one warning line on stderr names both files.

    Returns:
        the journal's size afterwards: where the next append starts.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    start = _last_line_start(fd, size)
    tail = os.pread(fd, size - start, start)
    if _parse_record(tail) is not None:
        write_at(fd, b"\n", size, path, fsync)
        return size + 1
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = path.with_name(f"{path.name}{TORN_INFIX}{stamp}")
    try:
        aside.write_bytes(tail)
        os.ftruncate(fd, start)
        if fsync:
            os.fsync(fd)
    except OSError as exc:
        raise _store_error(exc, path) from None
    print(f"warning: {path}: the last record was cut off mid-write ({len(tail)} bytes); kept every complete "
          f"record and moved the partial one to {aside}", file=sys.stderr, flush=True)
    return start


def write_at(fd: int, data: bytes, offset: int, path: Path, fsync: bool = False) -> None:
    """Writes all of ``data`` at ``offset`` (retrying short writes); on failure cuts the file back
    to ``offset`` (best effort) and raises :class:`StoreFullError` for a full disk."""
    done = 0
    try:
        while done < len(data):
            done += os.pwrite(fd, data[done:], offset + done)
        if fsync:
            os.fsync(fd)
    except OSError as exc:
        try:
            os.ftruncate(fd, offset)
        except OSError:
            pass  # the next opener quarantines what is left (repair_tail)
        raise _store_error(exc, path) from None


def _store_error(exc: OSError, path: Path) -> OSError | StoreFullError:
    if exc.errno not in DISK_FULL_ERRNOS:
        return exc
    return StoreFullError(f"cannot append to the study store {path}: {os.strerror(exc.errno)} (the disk is full or "
                          "a file-size limit was reached); nothing recorded so far is lost: free some space and "
                          "rerun `hpo run` to resume")


def _last_line_start(fd: int, size: int) -> int:
    """The offset just after the last newline before ``size`` (0 when there is none)."""
    end = size
    while end > 0:
        begin = max(0, end - _CHUNK)
        newline = os.pread(fd, end - begin, begin).rfind(b"\n")
        if newline >= 0:
            return begin + newline + 1
        end = begin
    return 0


_RECORD_START = b'{"op_code"'


def _salvage(line: bytes) -> dict[str, Any] | None:
    """The whole record at the end of ``line`` when a cut-off record precedes it, else None.

    Every record starts with ``{"op_code"`` (a key can only appear raw outside strings, where
    quotes are escaped); trying starts from the right, only a start whose rest parses to the end of
    the line is a whole record (a nested dict is followed by its parent's closing braces).
    """
    start = line.rfind(_RECORD_START)
    while start > 0:
        record = _parse_record(line[start:])
        if record is not None:
            return record
        start = line.rfind(_RECORD_START, 0, start)
    return None


def _parse_record(line: bytes) -> dict[str, Any] | None:
    """The record ``line`` holds whole, else None."""
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    return record if isinstance(record, dict) else None


def open_journal(path: Path, *, read_only: bool, fsync: bool = False) -> JournalFileBackend:
    """The backend for ``path``.

    Raises:
        FileNotFoundError: ``read_only`` and there is no journal at ``path`` (nothing is created).
    """
    if read_only:
        return ReadOnlyJournalBackend(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return HpoJournalBackend(path, fsync=fsync)
