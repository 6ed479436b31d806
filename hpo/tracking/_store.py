"""The tracking store's location and first set-up (tables, WAL journaling), once per process."""

from __future__ import annotations

import logging
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
            import sqlite3

            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            SqlAlchemyStore(tracking_uri, (db.parent / "mlflow-artifacts").as_uri())
            con = sqlite3.connect(db, timeout=60)
            try:
                con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
        _PREPARED.add(tracking_uri)
