"""Checks ``hpo run`` makes before it creates anything: the objective imports, and every folder and
file the run writes to can be written.

Without them a read-only ``./hpo-runs``, a read-only ``mlflow.db`` or a full disk surfaces as a
traceback from deep inside Optuna or MLflow, possibly after the study was half created.

Example:
    >>> preflight(load_spec("space.yaml"))   # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hpo._errors import SpecError, UsageError, os_error_message
from hpo._spec import StudySpec

PROBE_BYTES = 4096  # one page: on a full disk even this small write fails with ENOSPC


def preflight(spec: StudySpec) -> None:
    """Raises a one-line error (exit 2) before a run that could not import its objective or save its results."""
    check_objective_imports(spec)
    for path, what, is_folder in writable_paths(spec):
        check_writable(path, what, is_folder)


def check_objective_imports(spec: StudySpec) -> None:
    """Imports a user objective (runs user code: for ``validate`` and ``run`` only, never the readers)."""
    from hpo._objective import import_problem

    problem = import_problem(spec.objective.name, Path(spec.source).parent)
    if problem:
        raise SpecError(spec.source, "objective.name", problem)


def writable_paths(spec: StudySpec) -> list[tuple[Path, str, bool]]:
    """``(path, what it is, is a folder)`` for everything a run of ``spec`` writes on this machine."""
    from hpo._storage import is_embedded, journal_path
    from hpo.tracking import default_artifacts_dir, default_tracking_uri
    from hpo.tracking._mlflow import sqlite_path

    paths = [(spec.study_dir, "the study folder", True)]
    if is_embedded(spec):
        paths.append((journal_path(spec), "the study journal", False))
    else:
        paths += _database_paths(sqlite_path(spec.study.storage), "the study database")
    if spec.mlflow.enabled:
        uri = spec.mlflow.tracking_uri or default_tracking_uri()
        db = sqlite_path(uri)
        paths += _database_paths(db, "the MLflow store")
        if db is not None:
            artifacts = db.parent / "mlflow-artifacts" if spec.mlflow.tracking_uri else default_artifacts_dir()
            paths.append((artifacts, "the MLflow artifacts folder", True))
    return paths


def _database_paths(db: Path | None, what: str) -> list[tuple[Path, str, bool]]:
    """A SQLite file and its folder (SQLite writes its journal and WAL files beside the database)."""
    if db is None:
        return []
    return [(db.parent, f"the folder of {what}", True), (db, what, False)]


def check_writable(path: Path, what: str, is_folder: bool) -> None:
    """Proves ``path`` writable without creating anything: a missing folder is probed at its nearest
    existing ancestor (where the run would create it); an existing file is opened for writing.

    Raises:
        UsageError: naming the path, what it is for, the cause and what to do.
    """
    try:
        if is_folder:
            _write_probe(_nearest_existing(path))
        elif path.exists():
            with open(path, "r+b"):  # opening for update needs write access and changes nothing
                pass
    except OSError as exc:
        kind = "folder" if is_folder else "file"
        problem = os_error_message(exc) or f"{exc.filename or path}: {exc.strerror or exc}; expected a writable {kind}"
        raise UsageError(f"cannot write {what} {path}: {problem}; nothing was run") from None


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists; a file there is the error mkdir would give."""
    for candidate in (path, *path.absolute().parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise NotADirectoryError(20, "Not a directory", str(candidate))
            return candidate
    return path


def _write_probe(folder: Path) -> None:
    """Writes and removes a page in ``folder``: permission bits alone say nothing for root or a full disk."""
    fd, name = tempfile.mkstemp(prefix=".hpo-write-check-", dir=folder)
    try:
        os.write(fd, b"\0" * PROBE_BYTES)
        os.fsync(fd)  # some file systems report a full disk only when the data is flushed
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(folder)) from None  # os.write names no file
    finally:
        os.close(fd)
        os.unlink(name)
