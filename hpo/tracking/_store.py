"""The tracking store's location and first set-up (tables, WAL journaling), once per process."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from pathlib import Path

from hpo._lock import file_lock


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///...`` URI (None for other URIs or in-memory DBs)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    raw = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw)


def is_remote(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://", "databricks"))


_PREPARED: set[str] = set()
_PREPARED_LOCK = threading.Lock()


def prepare_store(tracking_uri: str) -> None:
    """Creates the tracking store's tables once, safely when many processes start together.

    For SQLite, MLflow runs its schema migrations in whatever process first opens a fresh
    database; several workers doing so at once collide. This holds a file lock next to the
    database while one process creates it, and switches the file to WAL journaling, which lets
    readers (the UI, ``hpo status``) and one writer work at the same time.
    """
    for name in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..." is noise in `hpo run`
        logging.getLogger(name).setLevel(logging.WARNING)
    db = sqlite_path(tracking_uri)
    if db is None:
        return
    with _PREPARED_LOCK:
        if tracking_uri in _PREPARED:
            return
        db = db.expanduser().resolve()
        with file_lock(db.with_name(db.name + ".lock")):
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            if not db.exists() or db.stat().st_size == 0:
                _copy_empty_store(db)
            SqlAlchemyStore(tracking_uri, (db.parent / "mlflow-artifacts").as_uri())
            _pragma(db, "journal_mode=WAL", timeout=60)
        _PREPARED.add(tracking_uri)


def checkpoint(tracking_uri: str) -> None:
    """Folds a SQLite store's write-ahead log back into the database file, so that ``mlflow.db``
    alone holds every run (copied or shared without its ``-wal`` file, it showed none of the
    study's runs). Best effort: a reader holding the log open only delays this to the next writer.
    """
    import sqlite3

    db = sqlite_path(tracking_uri)
    if db is None or not db.expanduser().is_file():
        return
    with contextlib.suppress(sqlite3.Error):
        _pragma(db.expanduser(), "wal_checkpoint(TRUNCATE)", timeout=5)


def _pragma(db: Path, pragma: str, timeout: float) -> None:
    import sqlite3

    con = sqlite3.connect(db, timeout=timeout)
    try:
        con.execute(f"PRAGMA {pragma}")
    finally:
        con.close()


def template_path() -> Path:
    """The empty, migrated SQLite store of this MLflow version that new stores start as a copy of."""
    import mlflow

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "hpo" / f"mlflow-{mlflow.__version__}-empty.db"


def _copy_empty_store(db: Path) -> None:
    """Starts a new SQLite store as a copy of :func:`template_path`, made once per MLflow version.

    MLflow creates a fresh database by running its whole history of schema migrations (~1 s of
    CPU, in every new runs folder); a copy takes milliseconds, and MLflow then finds its schema
    current. The template has no "Default" experiment: MLflow adds it on opening, with this
    store's artifact folder. Where the cache cannot be written, MLflow migrates as before.
    """
    import sqlite3

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    template = template_path()
    try:
        if not template.exists():
            with file_lock(template.with_name(template.name + ".lock")):
                if not template.exists():
                    tmp = template.with_name(f"{template.name}.{os.getpid()}.tmp")
                    tmp.unlink(missing_ok=True)
                    SqlAlchemyStore("sqlite:///" + tmp.as_posix(), (tmp.parent / "unused-artifacts").as_uri())
                    con = sqlite3.connect(tmp)
                    try:
                        with con:
                            con.execute("DELETE FROM experiments WHERE experiment_id = 0")
                    finally:
                        con.close()
                    os.replace(tmp, template)
        db.parent.mkdir(parents=True, exist_ok=True)
        # Copy beside it, then link into place: the store appears whole or not at all, and a store
        # another process (not holding hpo's lock: an MLflow client) created meanwhile is kept.
        tmp = db.with_name(f"{db.name}.{os.getpid()}.tmp")
        shutil.copyfile(template, tmp)
        try:
            os.link(tmp, db)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    except (OSError, sqlite3.Error) as exc:
        logging.getLogger(__name__).debug("no MLflow store template (%s); MLflow migrates the new store", exc)
