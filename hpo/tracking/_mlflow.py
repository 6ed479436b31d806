"""The MLflow tracker: one parent run per study, one nested child run per trial.

Everything goes through :class:`mlflow.tracking.MlflowClient` with explicit run ids; the
fluent API (``mlflow.start_run`` and its process-global active-run stack) is never used,
so any number of worker processes, on any number of machines, can write one store.

What lands in MLflow (see also ``CONTRACT.md``):

* **Parent run** (run name = the study name), tags ``hpo.study``, ``hpo.role=parent``,
  ``sampler``, ``pruner``, ``objective``, ``space_file``, ``space_sha256``, ``git_sha``
  (also as ``mlflow.source.git.commit``), ``hpo_version``, ``metrics``, ``directions``;
  artifacts: the space file (when the parent is created), and whatever
  :meth:`MlflowTracker.log_artifact` is given (dashboard, exported best config).
* **Child run per trial**, run name ``trial-<number>``, tag ``mlflow.parentRunId`` (so the UI
  nests it), ``hpo.study``, ``hpo.role=trial``, ``trial_number`` and ``state`` (RUNNING while it
  runs, then COMPLETE / PRUNED / FAIL / KILLED), ``pruned_at_epoch`` (pruned trials),
  ``fail_reason`` (failed / killed trials). Params: the sampled ones under their own name, the
  fixed ones prefixed ``fixed.``; nested mappings are flattened with dots; values longer than
  MLflow's limit are cut (with a ``...[truncated]`` marker). Every epoch's metrics with
  ``step=epoch``; the final objective value(s) as ``final.<metric>`` (e.g. ``final.val_acc``),
  logged at the trial's last step. MLflow status: FINISHED for COMPLETE and PRUNED, FAILED for
  FAIL, KILLED for KILLED.

Writes of per-epoch metrics never block training: :meth:`MlflowTracker.log_metrics` only queues
them; a background thread sends them, one ``log_batch`` per call (several queued calls for one
run are merged into one ``log_batch`` when the store lags behind), retrying with backoff when
the store is busy (SQLite's "database is locked") or briefly unreachable. ``end_trial`` and
``close`` wait for the queue to drain, and an ``atexit`` hook closes trackers left open, so a
normal exit loses nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import queue
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hpo.tracking._base import Tracker, TrialOutcome

_log = logging.getLogger(__name__)

#: MLflow's limits (mlflow.utils.validation), repeated here so importing this module stays cheap.
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_METRICS_PER_BATCH = 1000
TRUNCATION_MARK = "...[truncated]"

#: Trial state -> MLflow run status.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "KILLED": "KILLED"}

FINAL_PREFIX = "final."
FIXED_PREFIX = "fixed."

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


# --------------------------------------------------------------------------------------------
# helpers (pure, importable without mlflow)
# --------------------------------------------------------------------------------------------


def truncate(value: str, limit: int) -> str:
    """Cuts ``value`` to at most ``limit`` characters, marking the cut."""
    if len(value) <= limit:
        return value
    return value[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def sanitize_key(key: str) -> str:
    """Makes ``key`` a valid MLflow param/metric/tag name (bad characters become ``_``)."""
    key = _BAD_KEY_CHARS.sub("_", str(key)).strip("/") or "_"
    # MLflow rejects names that normalize to another path ("a//b", "a/./b", "..").
    key = re.sub(r"/+", "/", key)
    key = "/".join(p if p not in (".", "..") else "_" for p in key.split("/"))
    return key[:MAX_KEY_LENGTH]


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested mappings with dots: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def param_items(params: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, str]:
    """The params a trial's run records: sampled ones as is, fixed ones under ``fixed.``."""
    out: dict[str, str] = {}
    for prefix, source in (("", params), (FIXED_PREFIX, fixed)):
        for key, value in flatten(source or {}).items():
            out[sanitize_key(prefix + key)] = truncate(str(value), MAX_PARAM_VAL_LENGTH)
    return out


def final_metric_names(metrics: list[str] | tuple[str, ...] | None, n: int) -> list[str]:
    """``final.<metric>`` for each objective value (``final.value_<i>`` when names are missing)."""
    names = list(metrics or [])
    if len(names) != n:
        names = ["value"] if n == 1 else [f"value_{i}" for i in range(n)]
    return [sanitize_key(FINAL_PREFIX + m) for m in names]


def _to_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_BUSY = (
    "database is locked",
    "database is busy",
    "database table is locked",
    "could not serialize access",
    "deadlock detected",
)
_UNREACHABLE = (
    "connection refused",
    "connection reset",
    "timed out",
    "max retries exceeded",
    "server closed the connection",
    "temporarily_unavailable",
)


def _is_busy(exc: BaseException) -> bool:
    """A database-busy error: the transaction was rolled back, so retrying cannot duplicate."""
    text = str(exc).lower()
    return any(s in text for s in _BUSY)


def _is_transient(exc: BaseException) -> bool:
    """Whether a tracking-store error is worth retrying (busy database, server hiccup)."""
    text = str(exc).lower()
    return _is_busy(exc) or any(s in text for s in _UNREACHABLE)


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


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
        with _file_lock(db.with_name(db.name + ".lock")):
            import sqlite3

            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            SqlAlchemyStore(tracking_uri, (db.parent / "mlflow-artifacts").as_uri())
            con = sqlite3.connect(db, timeout=60)
            try:
                con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
        _PREPARED.add(tracking_uri)


#: How many times a store call was retried in this process (tests and benchmarks read it).
RETRIES = {"count": 0}


def with_retries(
    fn: Callable[[], Any],
    what: str,
    attempts: int = 12,
    base: float = 0.05,
    retry_if: Callable[[BaseException], bool] = _is_transient,
) -> Any:
    """Calls ``fn`` until it succeeds, retrying transient store errors with jittered backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds
            if attempt == attempts or not retry_if(exc):
                raise
            RETRIES["count"] += 1
            delay = min(5.0, base * 2 ** (attempt - 1)) * (0.5 + random.random())
            _log.debug("%s failed (%s); retry %d in %.2fs", what, exc, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# the background writer
# --------------------------------------------------------------------------------------------


class _Batch:
    __slots__ = ("metrics", "params", "tags", "last_write")

    def __init__(self) -> None:
        self.metrics: list[Any] = []
        self.params: list[Any] = []
        self.tags: list[Any] = []
        self.last_write = 0.0


class _Writer:
    """One daemon thread that writes queued run data, in order, with retries.

    Metrics/params of a run are coalesced: a run is written at most once per ``interval``
    seconds (counted from its first queued item), so fast epochs cost one ``log_batch`` per
    interval instead of one per epoch, and a trial shorter than the interval one in all. An
    ``end`` item writes what is pending for the run together with its final metrics and tags
    in one ``log_batch``, then sets its status.
    """

    def __init__(
        self,
        send: Callable[[str, list[Any], list[Any], list[Any]], None],
        terminate: Callable[[str, str], None],
        interval: float,
    ) -> None:
        self._send = send
        self._terminate = terminate
        self.interval = interval
        self._queue: queue.Queue[Any] = queue.Queue()
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread and queue are not ours
                self._queue, self._pid, self._thread = queue.Queue(), os.getpid(), None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="hpo-mlflow-writer", daemon=True)
                self._thread.start()

    def put(self, item: tuple[Any, ...]) -> None:
        self._ensure_thread()
        self._queue.put(item)

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until everything queued so far is written (or given up on)."""
        if self._thread is None or self._pid != os.getpid():
            return True
        done = threading.Event()
        self._ensure_thread()
        self._queue.put(("flush", done))
        return done.wait(timeout)

    def _loop(self) -> None:
        q = self._queue
        pending: dict[str, _Batch] = {}
        while True:
            now = time.monotonic()
            due = [
                b.last_write + self.interval - now
                for b in pending.values()
                if b.metrics or b.params or b.tags
            ]
            try:
                item = q.get(timeout=max(0.0, min(due)) if due else None)
            except queue.Empty:
                item = None
            if item is not None:
                kind = item[0]
                if kind == "flush":
                    for run_id in list(pending):
                        self._write(run_id, pending.pop(run_id))
                    item[1].set()
                    continue
                run_id = item[1]
                batch = pending.get(run_id)
                if batch is None:  # a new run: its first write waits an interval too
                    batch = pending[run_id] = _Batch()
                    batch.last_write = time.monotonic()
                if kind == "data":
                    batch.metrics += item[2]
                    batch.params += item[3]
                    batch.tags += item[4]
                elif kind == "end":
                    batch.metrics += item[2]
                    batch.tags += item[3]
                    self._write(run_id, pending.pop(run_id), status=item[4])
                    continue
            now = time.monotonic()
            for run_id, batch in list(pending.items()):
                if (batch.metrics or batch.params or batch.tags) and now - batch.last_write >= self.interval:
                    self._write(run_id, batch)
                    batch.last_write = time.monotonic()
                    batch.metrics, batch.params, batch.tags = [], [], []

    def _write(self, run_id: str, batch: _Batch, status: str | None = None) -> None:
        try:
            if batch.metrics or batch.params or batch.tags:
                with_retries(
                    lambda: self._send(run_id, batch.metrics, batch.params, batch.tags), "log_batch", attempts=15
                )
            if status is not None:
                with_retries(lambda: self._terminate(run_id, status), "set_terminated", attempts=15)
        except Exception as exc:  # noqa: BLE001 - never let tracking kill training
            msg = (
                f"could not write {len(batch.metrics)} metric values, {len(batch.params)} params, "
                f"{len(batch.tags)} tags{' and the end' if status else ''} of MLflow run {run_id}: {exc}"
            )
            self.errors.append(msg)
            _log.warning(msg)


# --------------------------------------------------------------------------------------------
# the tracker
# --------------------------------------------------------------------------------------------

_OPEN_TRACKERS: weakref.WeakSet[MlflowTracker] = weakref.WeakSet()


@atexit.register
def _close_open_trackers() -> None:
    for tracker in list(_OPEN_TRACKERS):
        with contextlib.suppress(Exception):
            tracker.close()


class _TrialRun:
    __slots__ = ("number", "run_id", "last_step")

    def __init__(self, number: int, run_id: str) -> None:
        self.number, self.run_id, self.last_step = number, run_id, None


class MlflowTracker(Tracker):
    """Records a study in MLflow: a parent run, and a nested child run per trial.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///abs/path/mlflow.db``,
            ``postgresql://...``, ``http://host:5000``).
        experiment: experiment name; default: ``study_info["experiment"]``, else the study name.
        artifacts_dir: where runs' artifacts go for a database URI (default: a
            ``mlflow-artifacts`` folder next to a SQLite file, else ``./hpo-runs/mlflow-artifacts``).
            Ignored for a tracking server, which decides itself.
        asynchronous: queue params and per-epoch metrics for a background thread (default)
            instead of writing them in the calling thread.
        flush_interval: the background thread writes a trial's queued metrics at most once per
            this many seconds (at once when its last write is older): fast epochs are merged
            into one ``log_batch``; slow ones are written as they come.
        wait_on_end: ``end_trial`` waits until the trial's run is completely written (default).
            False queues the end too (``close``/exit still flush), saving ~15-30 ms per trial; a
            worker killed before that write is reconciled from the study's own record of the trial
            (:meth:`reconcile`), so ``hpo run`` uses False.

    Example:
        >>> t = MlflowTracker("sqlite:////tmp/x/mlflow.db")            # doctest: +SKIP
        >>> parent = t.start_study({"study_name": "s", "metrics": ["val_acc"]})  # doctest: +SKIP
        >>> t.start_trial(0, {"lr": 0.1}, {"max_epochs": 3})           # doctest: +SKIP
        >>> t.log_metrics({"val_acc": 0.5}, step=0)                    # doctest: +SKIP
        >>> t.end_trial("COMPLETE", [0.5])                             # doctest: +SKIP
        >>> t.close()                                                  # doctest: +SKIP
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str | None = None,
        artifacts_dir: str | Path | None = None,
        asynchronous: bool = True,
        flush_interval: float = 1.0,
        wait_on_end: bool = True,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        if artifacts_dir is None and not is_remote(tracking_uri):
            db = sqlite_path(tracking_uri)
            artifacts_dir = (db.parent if db else Path("hpo-runs")) / "mlflow-artifacts"
        self.artifacts_dir = Path(artifacts_dir).expanduser().resolve() if artifacts_dir else None
        self.asynchronous = asynchronous
        self.parent_run_id: str | None = None
        self._parent_status: str | None = None  # as last seen / set by this tracker
        self._ran_trials = False  # this tracker created the parent or ran trials under it
        self.experiment_id: str | None = None
        self.study_name: str | None = None
        self.metric_names: list[str] = []
        self._client_obj: Any = None
        self._trials: dict[int, _TrialRun] = {}  # thread id -> open trial
        self._lock = threading.Lock()
        self.wait_on_end = wait_on_end
        self._writer = _Writer(self._send, self._terminate, flush_interval)
        self._closed = False
        _OPEN_TRACKERS.add(self)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client_obj is None:
            from mlflow.tracking import MlflowClient

            prepare_store(self.tracking_uri)
            self._client_obj = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client_obj

    @property
    def errors(self) -> list[str]:
        """Messages of metric batches that could not be written even after retries."""
        return list(self._writer.errors)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        # Creating runs/experiments is not idempotent: retry only where nothing was committed.
        retry_if = _is_busy if what.startswith("create_") else _is_transient
        return with_retries(fn, what, retry_if=retry_if)

    def _send(self, run_id: str, metrics: list[Any], params: list[Any], tags: list[Any]) -> None:
        # One call; MlflowClient splits it into MLflow's per-request limits itself.
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags, synchronous=True)

    def _terminate(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status)

    def _submit(self, run_id: str, metrics: list[Any] = (), params: list[Any] = (), tags: list[Any] = ()) -> None:  # type: ignore[assignment]
        if self.asynchronous:
            self._writer.put(("data", run_id, list(metrics), list(params), list(tags)))
        else:
            batch = _Batch()
            batch.metrics, batch.params, batch.tags = list(metrics), list(params), list(tags)
            self._writer._write(run_id, batch)

    def _current(self) -> _TrialRun | None:
        return self._trials.get(threading.get_ident())

    def _get_or_create_experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        exp = self._call("get_experiment_by_name", lambda: self.client.get_experiment_by_name(name))
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self._call("restore_experiment", lambda: self.client.restore_experiment(exp.experiment_id))
            return exp.experiment_id
        location = None
        if self.artifacts_dir is not None:
            safe = re.sub(r"[^\w.\-]+", "_", name).strip("._") or "experiment"
            location = (self.artifacts_dir / safe).as_uri()
        try:
            return self._call(
                "create_experiment",
                lambda: self.client.create_experiment(name, artifact_location=location),
            )
        except MlflowException as exc:  # created by another worker in between
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS" and "already exists" not in str(exc):
                raise
            exp = self.client.get_experiment_by_name(name)
            return exp.experiment_id

    # -- Tracker ----------------------------------------------------------------------------

    def start_study(self, study_info: Mapping[str, Any], parent_run_id: str | None = None) -> str | None:
        self.study_name = str(study_info.get("study_name") or "study")
        self.metric_names = [str(m) for m in (study_info.get("metrics") or [])]
        if parent_run_id:
            run = self._existing_run(parent_run_id)
            if run is not None:
                self.parent_run_id = parent_run_id
                self.experiment_id = run.info.experiment_id
                self._parent_status = run.info.status  # set RUNNING by the first start_trial only
                return parent_run_id
            _log.warning("MLflow parent run %s is gone; creating a new one", parent_run_id)
        name = study_info.get("experiment") or self.experiment or self.study_name
        self.experiment_id = self._get_or_create_experiment(str(name))
        tags = {
            "hpo.study": self.study_name,
            "hpo.role": "parent",
            "mlflow.runName": self.study_name,
            "mlflow.note.content": f"hpo study `{self.study_name}`; one nested run per trial.",
        }
        for key in ("sampler", "pruner", "objective", "space_file", "space_sha256", "git_sha", "hpo_version"):
            value = study_info.get(key)
            if value is not None:
                tags[key] = truncate(str(value), MAX_TAG_VAL_LENGTH)
        for key in ("metrics", "directions"):
            if study_info.get(key):
                tags[key] = truncate(",".join(str(v) for v in study_info[key]), MAX_TAG_VAL_LENGTH)
        if study_info.get("git_sha"):
            tags["mlflow.source.git.commit"] = str(study_info["git_sha"])
        run = self._call(
            "create_run",
            lambda: self.client.create_run(self.experiment_id, tags=tags, run_name=self.study_name),
        )
        self.parent_run_id = run.info.run_id
        self._parent_status = "RUNNING"
        self._ran_trials = True
        space_file = study_info.get("space_file")
        if space_file and Path(space_file).is_file():
            try:
                self.log_artifact(str(space_file))
            except Exception as exc:  # noqa: BLE001
                _log.warning("could not log the space file to MLflow: %s", exc)
        return self.parent_run_id

    def _existing_run(self, run_id: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            run = self._call("get_run", lambda: self.client.get_run(run_id))
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
                return None
            raise
        return None if run.info.lifecycle_stage == "deleted" else run

    def start_trial(
        self, number: int, params: Mapping[str, Any], fixed: Mapping[str, Any], role: str = "trial"
    ) -> str | None:
        from mlflow.entities import Param

        if self.parent_run_id is None:
            raise RuntimeError("MlflowTracker.start_trial called before start_study")
        if self._parent_status != "RUNNING":  # the study runs (again): show it in the UI
            parent = self.parent_run_id
            self._call("update_run", lambda: self.client.update_run(parent, status="RUNNING"))
            self._parent_status = "RUNNING"
        self._ran_trials = True
        previous = self._current()
        if previous is not None:  # the driver never ended it: do not leave it RUNNING
            self.end_trial("KILLED", None, reason="a new trial started before this one ended")
        name = f"trial-{number}" if role == "trial" else f"{role}-trial-{number}"
        tags = {
            "mlflow.parentRunId": self.parent_run_id,
            "mlflow.runName": name,
            "hpo.study": self.study_name or "",
            "hpo.role": role,
            "trial_number": str(number),
            "state": "RUNNING",
        }
        run = self._call(
            "create_run",
            lambda: self.client.create_run(self.experiment_id, tags=tags, run_name=name),
        )
        run_id = run.info.run_id
        self._submit(run_id, params=[Param(k, v) for k, v in param_items(params, fixed).items()])
        with self._lock:
            self._trials[threading.get_ident()] = _TrialRun(number, run_id)
        return run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        trial = self._current()
        if trial is None:
            return
        now = int(time.time() * 1000)
        batch = []
        for key, value in metrics.items():
            number = _to_float(value)
            if number is None:
                _log.debug("metric %s=%r is not a number; not logged", key, value)
                continue
            batch.append(Metric(sanitize_key(key), number, now, int(step)))
        trial.last_step = step if trial.last_step is None else max(trial.last_step, step)
        if batch:
            self._submit(trial.run_id, metrics=batch)

    def end_trial(
        self,
        state: str,
        values: list[float] | None,
        reason: str | None = None,
        pruned_at_step: int | None = None,
    ) -> None:
        with self._lock:
            trial = self._trials.pop(threading.get_ident(), None)
        if trial is None:
            return
        state = str(state).upper()
        step = pruned_at_step if pruned_at_step is not None else (trial.last_step or 0)
        outcome = TrialOutcome(state, list(values) if isinstance(values, (list, tuple)) else values,
                               reason, pruned_at_step)
        metrics, tags = self._final_record(outcome, step, int(time.time() * 1000))
        status = RUN_STATUS.get(state, "FAILED")
        if self.asynchronous:
            # after what is queued for the run, in one log_batch with it, then the status
            self._writer.put(("end", trial.run_id, metrics, tags, status))
            if self.wait_on_end:
                self._writer.flush()
        else:
            batch = _Batch()
            batch.metrics, batch.tags = metrics, tags
            self._writer._write(trial.run_id, batch, status=status)

    def reconcile(self, live_trial_numbers: set[int], outcomes: Mapping[int, TrialOutcome]) -> int:
        from mlflow.entities import RunTag

        if self.parent_run_id is None or self.experiment_id is None:
            _log.warning("MlflowTracker.reconcile called before start_study; nothing done")
            return 0
        live = {int(n) for n in live_trial_numbers}
        fixed = 0
        for run in self._running_children():
            try:
                number = int(run.data.tags.get("trial_number", ""))
            except ValueError:
                continue
            if number in live:
                continue
            outcome = outcomes.get(number) or TrialOutcome("KILLED")
            metrics, tags = self._final_record(outcome, self._last_step(run), int(time.time() * 1000))
            if "fail_reason" not in run.data.tags and not outcome.reason and outcome.state in ("FAIL", "KILLED"):
                tags.append(RunTag("fail_reason", "worker died before the trial ended"))
            status = RUN_STATUS.get(outcome.state, "KILLED")
            run_id = run.info.run_id
            self._call("log_batch", lambda: self.client.log_batch(run_id, metrics=metrics, tags=tags, synchronous=True))
            self._call("set_terminated", lambda: self.client.set_terminated(run_id, status=status))
            fixed += 1
        return fixed

    def _last_step(self, run: Any) -> int:
        """The last step the run logged its study metric at (0 if none): where final values go."""
        if not self.metric_names or self.metric_names[0] not in run.data.metrics:
            return 0
        history = self._call("get_metric_history",
                             lambda: self.client.get_metric_history(run.info.run_id, self.metric_names[0]))
        return max((m.step for m in history), default=0)

    def _final_record(self, outcome: TrialOutcome, step: int, now: int) -> tuple[list[Any], list[Any]]:
        """The final metrics and tags of a trial's run."""
        from mlflow.entities import Metric, RunTag

        metrics = []
        if outcome.values is not None:
            vals = list(outcome.values) if isinstance(outcome.values, (list, tuple)) else [outcome.values]
            for name, value in zip(final_metric_names(self.metric_names, len(vals)), vals):
                number = _to_float(value)
                if number is not None and not math.isnan(number):
                    metrics.append(Metric(name, number, now, int(step)))
        tags = [RunTag("state", outcome.state)]
        if outcome.pruned_at_step is not None:
            tags.append(RunTag("pruned_at_epoch", str(outcome.pruned_at_step)))
        if outcome.reason:
            tags.append(RunTag("fail_reason", truncate(str(outcome.reason), MAX_TAG_VAL_LENGTH)))
        return metrics, tags

    def child_runs(self, running_only: bool = False) -> list[Any]:
        """This study's trial runs (all pages)."""
        filt = f"tags.`mlflow.parentRunId` = '{self.parent_run_id}'"
        if running_only:
            filt += " and attributes.status = 'RUNNING'"
        runs: list[Any] = []
        token = None
        while True:
            page = self._call(
                "search_runs",
                lambda: self.client.search_runs([self.experiment_id], filt, max_results=1000, page_token=token),
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _running_children(self) -> list[Any]:
        return self.child_runs(running_only=True)

    def set_trial_tags(self, tags: Mapping[str, Any]) -> None:
        """Sets tags on the current trial's run (e.g. ``checkpoint``); not part of ``Tracker``."""
        from mlflow.entities import RunTag

        trial = self._current()
        if trial is None or not tags:
            return
        items = [RunTag(sanitize_key(k), truncate(str(v), MAX_TAG_VAL_LENGTH)) for k, v in tags.items()]
        self._call("set_tags", lambda: self.client.log_batch(trial.run_id, tags=items, synchronous=True))

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        if self.parent_run_id is None:
            raise RuntimeError("MlflowTracker.log_artifact called before start_study")
        p = Path(path)
        if p.is_dir():
            self._call("log_artifacts", lambda: self.client.log_artifacts(self.parent_run_id, str(p), artifact_path))
        else:
            self._call("log_artifact", lambda: self.client.log_artifact(self.parent_run_id, str(p), artifact_path))

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every queued metric is written."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _OPEN_TRACKERS.discard(self)
        if self._client_obj is None:
            return
        for ident in list(self._trials):
            self._trials[threading.get_ident()] = self._trials.pop(ident)
            with contextlib.suppress(Exception):
                self.end_trial("KILLED", None, reason="the worker stopped before the trial ended")
        self._writer.flush()
        if self.parent_run_id is None or self._parent_status != "RUNNING" or not self._ran_trials:
            return
        # The parent is FINISHED when no trial of the study runs anymore (a worker that starts
        # a trial later sets it RUNNING again). Trackers that only read or attach artifacts
        # (status, report) never change it.
        with contextlib.suppress(Exception):
            if not self._running_children():
                self._call("set_terminated", lambda: self.client.set_terminated(self.parent_run_id, "FINISHED"))

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
