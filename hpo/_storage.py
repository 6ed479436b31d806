"""Where a study lives: an embedded journal file by default, or any Optuna RDB URL.

The embedded store is Optuna's journal file storage with an fcntl lock: several worker
processes on one machine append to one file, with no server and no "database is locked".
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo._spec import StudySpec

if TYPE_CHECKING:
    import optuna


def journal_path(spec: StudySpec) -> Path:
    return spec.study_dir / "journal.log"


def is_embedded(spec: StudySpec) -> bool:
    return spec.study.storage is None


def describe_storage(spec: StudySpec) -> str:
    """The storage location for humans, without any password."""
    if is_embedded(spec):
        return str(journal_path(spec))
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", spec.study.storage)


class _FcntlLock:
    """A journal lock the kernel releases when its holder dies.

    Optuna's default symlink lock survives a SIGKILLed holder, so every other worker then
    waits out a 30 s grace period; an fcntl lock cannot go stale on a local disk.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        self._fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _journal_backend(path: Path) -> Any:
    """Optuna's journal file backend with an fcntl lock, writing without fsync.

    Optuna fsyncs every append (~1-2 ms each, several per trial). A flushed write already
    survives the death of the process, which is the crash that matters here; fsync only adds
    protection against the whole machine losing power.
    """
    from optuna.storages.journal import JournalFileBackend

    class _Backend(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
            with _locked(self._lock), open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))

    lock = _FcntlLock(path.with_name(path.name + ".lock"))
    return _Backend(str(path), lock_obj=lock)


@contextlib.contextmanager
def _locked(lock: _FcntlLock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def open_storage(
    spec: StudySpec, on_stale_trial: Callable[[optuna.Study, Any], None] | None = None
) -> optuna.storages.BaseStorage:
    """Opens the study's storage; RDB storages get Optuna's heartbeat so dead workers are noticed.

    Args:
        on_stale_trial: called by Optuna for a trial whose heartbeat stopped (RDB only).
    """
    import optuna
    from optuna.storages.journal import JournalStorage

    if is_embedded(spec):
        path = journal_path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(_journal_backend(path))
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            spec.study.storage,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=spec.study.heartbeat_interval,
            grace_period=spec.study.heartbeat_grace,
            heartbeat_stale_trial_callback=on_stale_trial,
        )


@contextlib.contextmanager
def study_lock(spec: StudySpec) -> Iterator[None]:
    """Serialises study creation and trial creation across processes (and machines, on PostgreSQL).

    Needed to keep ``n_trials`` an exact cap: "count the trials, then create one" must not
    interleave between workers.
    """
    url = spec.study.storage
    if url is not None and url.startswith(("postgresql", "postgres")):
        with _pg_advisory_lock(url, spec.study.name):
            yield
        return
    if url is None:
        path = spec.study_dir / "study.lock"
    elif url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///") + ".hpo-lock")
    else:  # e.g. MySQL: rely on the database; the cap may then be exceeded by a trial per worker.
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(_FcntlLock(path)):
        yield


_PG_CONNECTIONS: dict[str, Any] = {}


def trial_state_counts(spec: StudySpec, study: optuna.Study) -> Counter[str]:
    """How many trials the study has in each state (by name); call it under :func:`study_lock`.

    On PostgreSQL this is one ``GROUP BY`` on the lock's own connection, reading Optuna's ``trials``
    table: Optuna has no count query (``get_n_trials`` loads every unfinished trial, seven queries
    and an ORM object each), and this runs while the lock serialises every worker's next trial.
    """
    conn = _PG_CONNECTIONS.get(spec.study.storage) if spec.study.storage else None
    if conn is None or conn.closed:
        return Counter(t.state.name for t in study.get_trials(deepcopy=False))
    import sqlalchemy

    rows = conn.execute(sqlalchemy.text("SELECT state, COUNT(*) FROM trials WHERE study_id = :id GROUP BY state"),
                        {"id": study._study_id})
    return Counter({str(state): int(n) for state, n in rows})


@contextlib.contextmanager
def _pg_advisory_lock(url: str, name: str) -> Iterator[None]:
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(f"hpo:{name}".encode()).digest()[:8], "big", signed=True)
    conn = _PG_CONNECTIONS.get(url)
    if conn is None or conn.closed:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        conn = _PG_CONNECTIONS[url] = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
    try:
        yield
    finally:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
