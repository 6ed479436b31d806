"""A pytest plugin that runs Optuna's own storage test suite against hpo's storages.

Loaded with ``-p hpo_peer_plugin`` by ``scripts/optuna-peer-tests.sh``: every journal file storage
the suite builds (``optuna.testing.storages.StorageSupplier``) uses hpo's journal backend, and,
when ``HPO_PEER_POSTGRES_URL`` names a PostgreSQL server, its SQLite cases run on a fresh
PostgreSQL database each instead.
"""

from __future__ import annotations

import itertools
import os
import sys
import types
from typing import Any

import pytest


def _stub_fakeredis() -> None:
    """``optuna.testing.storages`` imports fakeredis at the top; the redis cases are not run here."""
    try:
        import fakeredis  # noqa: F401
    except ImportError:
        stub = types.ModuleType("fakeredis")

        class FakeStrictRedis:  # noqa: D401 - a stand-in that fails if a redis case runs after all
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise RuntimeError("fakeredis is not installed; the journal_redis cases are not part of the peer run")

        stub.FakeStrictRedis = FakeStrictRedis
        sys.modules["fakeredis"] = stub


BUILT = {"journal": 0, "postgresql": 0}  # how many storages of each kind the suite got from hpo


def _hpo_journal_backend(file_path: str, lock_obj: Any = None) -> Any:
    """Stands in for ``JournalFileBackend(path[, lock])``: hpo's backend (with hpo's own lock)."""
    from hpo._journal import HpoJournalBackend

    BUILT["journal"] += 1
    return HpoJournalBackend(file_path)


def _postgres_databases(server_url: str) -> Any:
    """A function giving the URL of a new, empty database on the server at each call."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    counter = itertools.count()
    base = server_url.rsplit("/", 1)[0]

    def new_database() -> str:
        name = f"peer_{os.getpid()}_{next(counter)}"
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        return f"{base}/{name}"

    return new_database


def _use_postgres(supplier_class: Any, new_database: Any) -> None:
    import optuna

    enter = supplier_class.__enter__

    def postgres_enter(self: Any) -> Any:
        if "sqlite" not in self.storage_specifier or self.storage_specifier.startswith("grpc"):
            return enter(self)
        rdb = optuna.storages.RDBStorage(new_database(), **self.extra_args)
        BUILT["postgresql"] += 1
        self.storage = optuna.storages._CachedStorage(rdb) if "cached" in self.storage_specifier else rdb
        return self.storage

    supplier_class.__enter__ = postgres_enter


def pytest_configure(config: pytest.Config) -> None:
    _stub_fakeredis()
    import optuna.storages.journal
    import optuna.testing.storages as storages

    import hpo._journal  # noqa: F401 - subclasses Optuna's backend: import it before the patch below

    storages.JournalFileBackend = _hpo_journal_backend  # the "journal" cases
    optuna.storages.journal.JournalFileBackend = _hpo_journal_backend  # cases that look it up there
    url = os.environ.get("HPO_PEER_POSTGRES_URL")
    if url:
        _use_postgres(storages.StorageSupplier, _postgres_databases(url))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f"hpo storages built: journal={BUILT['journal']} postgresql={BUILT['postgresql']}")


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get("HPO_PEER_POSTGRES_URL")
    return "hpo peer run: journal cases on hpo's backend" + (f"; sqlite cases on PostgreSQL {url}" if url else "")
