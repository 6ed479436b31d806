"""Where a study lives: an embedded journal file by default, or any Optuna RDB URL.

The embedded store is Optuna's journal file storage with an fcntl lock (:mod:`hpo._journal`):
several worker processes on one machine append to one file, with no server and no "database is
locked".
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo._errors import UsageError
from hpo._lock import file_lock
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
    return redact(spec.study.storage)


def redact(url: str) -> str:
    """``url`` without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def open_storage(
    spec: StudySpec,
    on_stale_trial: Callable[[optuna.Study, Any], None] | None = None,
    *,
    read_only: bool = False,
) -> optuna.storages.BaseStorage:
    """Opens the study's storage; RDB storages get Optuna's heartbeat so dead workers are noticed.

    Args:
        on_stale_trial: called by Optuna for a trial whose heartbeat stopped (RDB only).
        read_only: create no folder, file or table and never write (for ``status``, ``best``, ...).

    Raises:
        UsageError: ``read_only`` and the store does not exist.
    """
    import optuna
    from optuna.storages.journal import JournalStorage

    from hpo._journal import open_journal

    if is_embedded(spec):
        try:
            return JournalStorage(open_journal(journal_path(spec), read_only=read_only, fsync=spec.study.fsync))
        except FileNotFoundError:
            raise UsageError(_no_store_message(spec, str(journal_path(spec)))) from None
    if is_proxy(spec.study.storage):  # reading through the proxy writes nothing: no read-only variant needed
        return _open_proxy(spec.study.storage)
    if read_only:
        try:
            return open_rdb_read_only(spec.study.storage)
        except FileNotFoundError as exc:
            raise UsageError(_no_store_message(spec, str(exc))) from None
        except LookupError as exc:
            raise UsageError(f"no study {spec.study.name!r}: the database {exc.args[0]} holds no study yet; "
                             f"start it with `hpo run {spec.source}`") from None
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            spec.study.storage,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=spec.study.heartbeat_interval,
            grace_period=spec.study.heartbeat_grace,
            heartbeat_stale_trial_callback=on_stale_trial,
        )


def is_proxy(url: str | None) -> bool:
    """Whether ``url`` names an ``hpo proxy`` (``grpc://host:port``)."""
    return url is not None and url.startswith("grpc://")


def _open_proxy(url: str) -> optuna.storages.BaseStorage:
    from hpo._proxy import open_proxy_storage

    return _reach_proxy(open_proxy_storage, url)


def _reach_proxy(connect: Callable[[str], Any], url: str) -> Any:
    """``connect(url)``, with a bad URL or a proxy that does not answer as one clear line."""
    try:
        return connect(url)
    except ValueError as exc:
        raise UsageError(f"study.storage: {exc}") from None
    except ConnectionError:
        raise UsageError(f"no hpo proxy answers at {url}; start it with `hpo proxy --storage URL --port PORT` "
                         "and check the host and port") from None


def open_rdb_read_only(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage that creates no file, table or row and runs no heartbeat (which writes).

    Optuna's RDBStorage writes its schema version rows when they are missing, so a database whose
    first worker is still setting it up counts as missing here, rather than being written to
    while that worker writes the same rows.

    Raises:
        FileNotFoundError: a SQLite URL whose file does not exist (connecting would create it).
        LookupError: a database without Optuna's tables and version rows.
    """
    import optuna

    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.is_file():
        raise FileNotFoundError(str(sqlite_file))
    if not _schema_is_set_up(url):
        raise LookupError(redact(url))
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, skip_table_creation=True)


def _schema_is_set_up(url: str) -> bool:
    """Whether Optuna's tables and its version rows exist (read without writing)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = sqlalchemy.inspect(conn)
            for table in ("version_info", "alembic_version", "studies"):
                if not inspector.has_table(table):
                    return False
            return all(conn.execute(sqlalchemy.text(f"SELECT COUNT(*) FROM {table}")).scalar()
                       for table in ("version_info", "alembic_version"))
    finally:
        engine.dispose()


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def _no_store_message(spec: StudySpec, place: str) -> str:
    """Where a reader looked for a study file that is not there, and what to do."""
    where = place if Path(place).is_absolute() else Path.cwd() / place
    hint = ("; studies are found relative to the folder where `hpo run` ran: run this there" if is_embedded(spec)
            else "")
    return (f"no study {spec.study.name!r}: {where} does not exist{hint}, or start the study with "
            f"`hpo run {spec.source}`")


@contextlib.contextmanager
def study_lock(spec: StudySpec) -> Iterator[None]:
    """Serialises study creation and trial creation across processes (and machines, on PostgreSQL).

    Needed to keep ``n_trials`` an exact cap: "count the trials, then create one" must not
    interleave between workers.
    """
    url = spec.study.storage
    if is_proxy(url):  # the proxy holds the lock for its workers (hpo._proxy)
        from hpo._proxy import channel, proxy_study_lock

        _reach_proxy(channel, url)
        with proxy_study_lock(url, spec.study.name):
            yield
        return
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
    with file_lock(path):
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

    from hpo._optuna_compat import count_trials_by_state_sql, study_id

    rows = conn.execute(sqlalchemy.text(count_trials_by_state_sql),
                        {"id": study_id(study)})
    return Counter({str(state): int(n) for state, n in rows})


@contextlib.contextmanager
def _pg_advisory_lock(url: str, name: str) -> Iterator[None]:
    import sqlalchemy

    from hpo._proxy import advisory_key

    key = advisory_key(name)
    conn = _PG_CONNECTIONS.get(url)
    if conn is None or conn.closed:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        conn = _PG_CONNECTIONS[url] = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
    try:
        yield
    finally:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
