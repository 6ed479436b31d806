"""Where trial results go besides Optuna: MLflow (default) or nowhere.

Importing this package does not import MLflow (the CLI must start fast); :func:`make_tracker`
and the MLflow classes load it on first use.

Example:
    >>> from hpo.tracking import make_tracker
    >>> tracker = make_tracker(None, None, enabled=False)
    >>> type(tracker).__name__
    'Tracker'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.tracking._base import Tracker, TrialOutcome
from hpo.tracking._parent import open_parent_run, study_description, study_uuid

if TYPE_CHECKING:
    from hpo.tracking._mlflow import MlflowTracker

__all__ = [
    "MlflowTracker",
    "check_reachable",
    "Tracker",
    "TrialOutcome",
    "default_artifacts_dir",
    "default_tracking_uri",
    "tracking_uri_problem",
    "find_free_port",
    "make_tracker",
    "open_parent_run",
    "serve_ui",
    "study_description",
    "study_uuid",
]


def default_tracking_uri(runs_dir: Path | str = Path("hpo-runs")) -> str:
    """``sqlite:///<absolute runs_dir>/mlflow.db``: MLflow's SQLite backend under the runs folder."""
    return "sqlite:///" + (Path(runs_dir).expanduser().resolve() / "mlflow.db").as_posix()


def default_artifacts_dir(runs_dir: Path | str = Path("hpo-runs")) -> Path:
    """Where run artifacts go when the tracking store is a database: ``<runs_dir>/mlflow-artifacts``."""
    return Path(runs_dir).expanduser().resolve() / "mlflow-artifacts"


# Tracking stores this MLflow can write to (a scheme may carry a driver: postgresql+psycopg2://).
TRACKING_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "http", "https", "databricks")


def tracking_uri_problem(uri: str) -> str | None:
    """What is wrong with an MLflow tracking URI, without importing MLflow; None if usable.

    A folder (``./mlruns``, ``file://``) is MLflow's filesystem store, which MLflow 3 refuses to
    open ("maintenance mode"): a run would train every trial and log nothing.
    """
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in ("", "file"):
        folder = uri.removeprefix("file://").removeprefix("file:").rstrip("/") or "."
        return (f"{uri!r} is a folder: MLflow no longer writes its folder store; give a database such as "
                f"sqlite:///{folder}/mlflow.db, or a tracking server http://host:5000")
    if scheme not in TRACKING_SCHEMES:
        return (f"unknown scheme {scheme!r} in {uri!r}; expected sqlite:///path/mlflow.db, postgresql://…, "
                "mysql://… or a tracking server http(s)://host:port")
    return None


def check_reachable(tracking_uri: str | None, timeout: float = 5.0) -> None:
    """Fails fast, with what to do, when an MLflow tracking *server* does not answer.

    MLflow's client would otherwise retry a refused connection for minutes before every call.

    Raises:
        UsageError: the server at an http(s) URI does not answer ``/health``.
    """
    import urllib.error
    import urllib.request

    from hpo._errors import UsageError

    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered (some proxies have no /health): let MLflow talk to it
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UsageError(
            f"the MLflow tracking server {tracking_uri} does not answer ({reason}); start it, pass another "
            "--tracking-uri, or set mlflow.enabled: false"
        ) from None


def make_tracker(
    tracking_uri: str | None,
    experiment: str | None,
    enabled: bool = True,
    runs_dir: Path = Path("hpo-runs"),
    background: bool = False,
) -> Tracker:
    """The tracker for a worker process: an :class:`MlflowTracker`, or a no-op when disabled.

    Args:
        tracking_uri: MLflow tracking URI; None means ``sqlite:///<abs runs_dir>/mlflow.db``.
        experiment: MLflow experiment name; None means the study name.
        enabled: False gives a :class:`Tracker` that records nothing.
        runs_dir: the runs folder (``./hpo-runs``); artifacts of database-backed stores go to
            ``<runs_dir>/mlflow-artifacts``.
        background: start MLflow (import, store, parent run) and make every write on the
            tracker's writer thread, off the trials' path (``hpo run``; see ``MlflowTracker``).
    """
    if not enabled:
        return Tracker()
    from hpo.tracking._mlflow import MlflowTracker, is_remote, sqlite_path

    uri = tracking_uri or default_tracking_uri(runs_dir)
    artifacts: Path | None = None
    if not is_remote(uri):
        db = sqlite_path(uri)
        if tracking_uri and db is not None:
            artifacts = db.expanduser().resolve().parent / "mlflow-artifacts"
        else:
            artifacts = default_artifacts_dir(runs_dir)
    # The final write of a trial is queued, not awaited: if the worker dies before it lands, the
    # next `hpo run`/`hpo status` writes it from the study's record (MlflowTracker.reconcile).
    return MlflowTracker(uri, experiment, artifacts_dir=artifacts, wait_on_end=False, background=background)


def __getattr__(name: str) -> Any:
    if name == "MlflowTracker":
        from hpo.tracking._mlflow import MlflowTracker

        return MlflowTracker
    if name in ("serve_ui", "find_free_port"):
        from hpo.tracking import _ui

        return getattr(_ui, name)
    raise AttributeError(f"module 'hpo.tracking' has no attribute {name!r}")
