"""The MLflow tracker: one parent run per study, one nested child run per trial.

Everything goes through :class:`mlflow.tracking.MlflowClient` with explicit run ids; the
fluent API (``mlflow.start_run`` and its process-global active-run stack) is never used,
so any number of worker processes, on any number of machines, can write one store.

What lands in MLflow (see also ``CONTRACT.md``):

* **Experiment** tag ``mlflow.experimentKind=custom_model_development`` (so the MLflow UI opens
  it in its runs view, not the GenAI one), unless the experiment already has a kind.
* **Parent run** (run name = the study name), tags ``hpo.study``, ``hpo.study_uuid`` (the
  Optuna study's identity, on every run of the study), ``hpo.role=parent``,
  ``sampler``, ``pruner``, ``objective``, ``space_file``, ``space_sha256``, ``git_sha``
  (also as ``mlflow.source.git.commit``), ``hpo_version``, ``metrics``, ``directions``;
  description ``mlflow.note.content`` (the dashboard's path and the best trial, set again at the
  end of each ``hpo run``); artifacts: the space file (when the parent is created), and whatever
  :meth:`MlflowTracker.log_artifact` is given (dashboard, exported best config).
* **Child run per trial**, run name ``trial-<number>``, tag ``mlflow.parentRunId`` (so the UI
  nests it), ``hpo.study``, ``hpo.role=trial``, ``trial_number`` and ``state`` (RUNNING while it
  runs, then COMPLETE / PRUNED / FAIL / KILLED), ``pruned_at_epoch`` (pruned trials),
  ``fail_reason`` (failed / killed trials). Params: the sampled ones under their own name, the
  fixed ones prefixed ``fixed.``; nested mappings are flattened with dots; values longer than
  MLflow's limit are cut (with a ``...[truncated]`` marker). Every epoch's metrics with
  ``step=epoch``; the final objective value(s) as ``final.<metric>`` (e.g. ``final.val_acc``),
  logged at the trial's last step. MLflow status: FINISHED for COMPLETE and PRUNED, FAILED for
  FAIL, KILLED for KILLED. The parent is RUNNING while trials run; FINISHED when the study is
  complete or its last worker stops, KILLED when ``hpo run`` finds it RUNNING with no worker left.

``reconcile`` finds a study's runs by ``hpo.study``/``hpo.study_uuid`` across the experiment, not
by parent, so trial runs of a deleted parent are closed too.

Writes of per-epoch metrics never block training: :meth:`MlflowTracker.log_metrics` only queues
them; a background thread sends them, one ``log_batch`` per call (several queued calls for one
run are merged into one ``log_batch`` when the store lags behind), retrying with backoff when
the store is busy (SQLite's "database is locked") or briefly unreachable. ``end_trial`` and
``close`` wait for the queue to drain, and an ``atexit`` hook closes trackers left open, so a
normal exit loses nothing.

With ``background=True`` (``hpo run``) the tracker costs the first trial nothing: importing MLflow,
creating the store, the experiment and the parent run (~3 s) happen on the writer thread while
the first trial trains, and so does every later store operation, trial runs' creation included,
in the order they were made. A trial's run id then reaches the caller through ``on_created``
when its run exists. ``close`` (and exit) still writes everything queued; a worker killed before
then is reconciled as always (its runs are closed, or created, by the next ``hpo run``).

The pieces, one concern per module: ``_names`` (keys and values as MLflow accepts them),
``_retry`` (which store errors are retried, and how), ``_store`` (the store's location and
first set-up), ``_writer`` (the background writer); this module is the tracker itself.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hpo.tracking._base import Tracker, TrialOutcome
from hpo.tracking._names import (
    MAX_TAG_VAL_LENGTH,
    final_metric_names,
    param_items,
    sanitize_key,
    to_float,
    truncate,
)
from hpo.tracking._retry import _is_busy, _is_transient, with_retries
from hpo.tracking._store import checkpoint, is_remote, prepare_store, sqlite_path
from hpo.tracking._writer import RunRef, _Batch, _Writer

# Importable from here as before the split (tests, benchmarks, the UI module).
from hpo.tracking._names import MAX_PARAM_VAL_LENGTH, TRUNCATION_MARK  # noqa: E402, F401
from hpo.tracking._retry import RETRIES  # noqa: E402, F401

_log = logging.getLogger(__name__)

#: Trial state -> MLflow run status.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "KILLED": "KILLED"}

#: The tag naming the Optuna study a run belongs to (study user attr ``study_uuid``): a study's
#: name alone is not unique, since a deleted study's name can be used again in the experiment.
STUDY_UUID_TAG = "hpo.study_uuid"

#: The experiment tag the MLflow UI (3.x) reads to choose an experiment's first view, and the value
#: that opens the runs table ("model training"); without it the UI may open the GenAI (traces) view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

#: The run tag the MLflow UI shows as a run's description.
NOTE_TAG = "mlflow.note.content"


_OPEN_TRACKERS: weakref.WeakSet[MlflowTracker] = weakref.WeakSet()


@atexit.register
def _close_open_trackers() -> None:
    for tracker in list(_OPEN_TRACKERS):
        with contextlib.suppress(Exception):
            tracker.close()


class _TrialRun:
    __slots__ = ("number", "run_id", "last_step")

    def __init__(self, number: int, run_id: str | None) -> None:  # None: created by a queued call
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
        background: every store operation (MLflow's import, the store's creation, runs' creation
            included) runs on the writer thread, in call order, so that none delays training;
            methods that return an id return None (``start_trial`` passes it to ``on_created``).
            Implies ``asynchronous``. Start the study with :meth:`defer`.

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
        background: bool = False,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        if artifacts_dir is None and not is_remote(tracking_uri):
            db = sqlite_path(tracking_uri)
            artifacts_dir = (db.parent if db else Path("hpo-runs")) / "mlflow-artifacts"
        self.artifacts_dir = Path(artifacts_dir).expanduser().resolve() if artifacts_dir else None
        self.background = background
        self.asynchronous = asynchronous or background
        self.parent_run_id: str | None = None
        self._parent_status: str | None = None  # as last seen / set by this tracker
        self._ran_trials = False  # this tracker created the parent or ran trials under it
        self.experiment_id: str | None = None
        self.study_name: str | None = None
        self.study_uuid: str | None = None
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
        """Writes ``(key, value, timestamp, step)`` metrics and ``(key, value)`` params and tags.

        Records are queued as plain tuples and become MLflow's entities here, on the thread that
        writes: a training thread that imported ``mlflow.entities`` while the writer thread imports
        MLflow (``background``) would deadlock on Python's import locks.
        """
        from mlflow.entities import Metric, Param, RunTag

        # One call; MlflowClient splits it into MLflow's per-request limits itself.
        self.client.log_batch(run_id, metrics=[Metric(*m) for m in metrics], params=[Param(*p) for p in params],
                              tags=[RunTag(*t) for t in tags], synchronous=True)

    def _terminate(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status)

    def defer(self, fn: Callable[[], Any], what: str = "start the study") -> None:
        """Runs ``fn`` (which uses this tracker) on the writer thread after what is queued
        (``background``), else now. Its failure is logged and kept in :attr:`errors` (background)."""
        if self.background:
            # The client first (MLflow's import, the store's creation: seconds), so that ``fn`` holds
            # the study lock, which trials take too, only for its own few store calls.
            self._writer.put(("call", lambda: (self.client, fn()), what))
        else:
            fn()

    def _submit(self, run_id: str | RunRef, metrics: list[Any] = (), params: list[Any] = (), tags: list[Any] = ()) -> None:  # type: ignore[assignment]
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
            if EXPERIMENT_KIND_TAG not in exp.tags:  # a kind chosen in the UI is left alone
                self._set_experiment_kind(exp.experiment_id)
            return exp.experiment_id
        location = None
        if self.artifacts_dir is not None:
            safe = re.sub(r"[^\w.\-]+", "_", name).strip("._") or "experiment"
            location = (self.artifacts_dir / safe).as_uri()
        try:
            return self._call(
                "create_experiment",
                lambda: self.client.create_experiment(name, artifact_location=location,
                                                      tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}),
            )
        except MlflowException as exc:  # created by another worker in between
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS" and "already exists" not in str(exc):
                raise
            exp = self.client.get_experiment_by_name(name)
            return exp.experiment_id

    def _set_experiment_kind(self, experiment_id: str) -> None:
        self._call("set_experiment_tag",
                   lambda: self.client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND))

    # -- Tracker ----------------------------------------------------------------------------

    def start_study(self, study_info: Mapping[str, Any], parent_run_id: str | None = None) -> str | None:
        self.study_name = str(study_info.get("study_name") or "study")
        self.study_uuid = study_info.get("study_uuid")
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
            **self._identity_tags(),
            "hpo.role": "parent",
            "mlflow.runName": self.study_name,
            NOTE_TAG: study_info.get("description") or f"hpo study `{self.study_name}`; one nested run per trial.",
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
                self._log_artifact(str(space_file))
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
        self,
        number: int,
        params: Mapping[str, Any],
        fixed: Mapping[str, Any],
        role: str = "trial",
        on_created: Callable[[str], None] | None = None,
    ) -> str | None:
        previous = self._current()
        if previous is not None:  # the driver never ended it: do not leave it RUNNING
            self.end_trial("KILLED", None, reason="a new trial started before this one ended")
        trial = _TrialRun(number, None)
        items = list(param_items(params, fixed).items())
        if self.background:  # the run is created after what is queued; its params are written after that
            self._writer.put(("call", lambda: self._create_trial_run(trial, role, on_created),
                              f"create the run of trial {number}"))
        else:
            self._create_trial_run(trial, role, on_created)
        self._submit(trial, params=items)
        with self._lock:
            self._trials[threading.get_ident()] = trial
        return None if self.background else trial.run_id

    def _create_trial_run(self, trial: _TrialRun, role: str, on_created: Callable[[str], None] | None) -> None:
        """Creates a trial's run under the parent (RUNNING again if it was not)."""
        if self.parent_run_id is None:
            raise RuntimeError("MlflowTracker.start_trial called before start_study")
        if self._parent_status != "RUNNING":  # the study runs (again): show it in the UI
            parent = self.parent_run_id
            self._call("update_run", lambda: self.client.update_run(parent, status="RUNNING"))
            self._parent_status = "RUNNING"
        self._ran_trials = True
        trial.run_id = self._new_run(trial.number, role)
        if on_created is not None:
            on_created(trial.run_id)

    def _new_run(self, number: int, role: str, state: str = "RUNNING") -> str:
        """Creates the run of trial ``number`` under the parent; returns its id."""
        name = f"trial-{number}" if role == "trial" else f"{role}-trial-{number}"
        tags = {
            "mlflow.parentRunId": self.parent_run_id,
            "mlflow.runName": name,
            "hpo.study": self.study_name or "",
            **self._identity_tags(),
            "hpo.role": role,
            "trial_number": str(number),
            "state": state,
        }
        run = self._call(
            "create_run",
            lambda: self.client.create_run(self.experiment_id, tags=tags, run_name=name),
        )
        return run.info.run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        trial = self._current()
        if trial is None:
            return
        now = int(time.time() * 1000)
        batch = []
        for key, value in metrics.items():
            number = to_float(value)
            if number is None:
                _log.debug("metric %s=%r is not a number; not logged", key, value)
                continue
            batch.append((sanitize_key(key), number, now, int(step)))
        trial.last_step = step if trial.last_step is None else max(trial.last_step, step)
        if batch:
            self._submit(trial, metrics=batch)

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
        now = int(time.time() * 1000)
        status = RUN_STATUS.get(state, "FAILED")
        if self.asynchronous:
            # after what is queued for the run, in one log_batch with it, then the status; the
            # records are made there, once a queued start_study has named the study's metrics
            self._writer.put(("end", trial, lambda: self._final_record(outcome, step, now), status))
            if self.wait_on_end:
                self._writer.flush()
        else:
            batch = _Batch()
            batch.metrics, batch.tags = self._final_record(outcome, step, now)
            self._writer._write(trial, batch, status=status)

    def reconcile(self, live_trial_numbers: set[int], outcomes: Mapping[int, TrialOutcome]) -> int:
        """See :meth:`Tracker.reconcile`; ``background``: queued, returns 0."""
        if self.background:
            live, done = set(live_trial_numbers), dict(outcomes)
            self._writer.put(("call", lambda: self._reconcile(live, done), "close the runs of ended trials"))
            return 0
        return self._reconcile(live_trial_numbers, outcomes)

    def _reconcile(self, live_trial_numbers: set[int], outcomes: Mapping[int, TrialOutcome]) -> int:
        if self.parent_run_id is None or self.experiment_id is None:
            _log.warning("MlflowTracker.reconcile called before start_study; nothing done")
            return 0
        live = {int(n) for n in live_trial_numbers}
        newest = max(live | {int(n) for n in outcomes}, default=-1)
        fixed = 0
        for run in self.study_runs(running_only=True):
            try:
                number = int(run.data.tags.get("trial_number", ""))
            except ValueError:
                continue
            # A background tracker runs this later than the caller looked: trials numbered above
            # every one it saw started since (in other workers), and their runs are theirs.
            if number in live or number > newest:
                continue
            outcome = outcomes.get(number) or TrialOutcome("KILLED")
            metrics, tags = self._final_record(outcome, self._last_step(run), int(time.time() * 1000))
            if "fail_reason" not in run.data.tags and not outcome.reason and outcome.state in ("FAIL", "KILLED"):
                tags.append(("fail_reason", "worker died before the trial ended"))
            status = RUN_STATUS.get(outcome.state, "KILLED")
            run_id = run.info.run_id
            self._call("log_batch", lambda: self._send(run_id, metrics, [], tags))
            self._call("set_terminated", lambda: self.client.set_terminated(run_id, status=status))
            fixed += 1
        return fixed

    def add_missing(self, live_trial_numbers: set[int], outcomes: Mapping[int, TrialOutcome]) -> int:
        """See :meth:`Tracker.add_missing`: the run, with its params, the study metric per step
        and the outcome, of each finished trial that has none. Call it after ``start_study``."""
        if self.parent_run_id is None or not outcomes:
            return 0
        have = {run.data.tags.get("trial_number") for run in self.study_runs()}
        made = 0
        for number, outcome in sorted(outcomes.items()):
            if number in live_trial_numbers or str(number) in have:
                continue
            run_id = self._new_run(number, "trial", outcome.state)
            now = int(time.time() * 1000)
            steps = dict(outcome.steps or {})
            metrics, tags = self._final_record(outcome, max(steps, default=0), now)
            if self.metric_names:
                metrics += [(sanitize_key(self.metric_names[0]), v, now, int(s)) for s, v in steps.items()]
            if outcome.state in ("FAIL", "KILLED") and not outcome.reason:
                tags.append(("fail_reason", "worker died before the trial ended"))
            params = list(param_items(outcome.params or {}, outcome.fixed or {}).items())
            self._call("log_batch", lambda: self._send(run_id, metrics, params, tags))
            status = RUN_STATUS.get(outcome.state, "KILLED")
            self._call("set_terminated", lambda: self.client.set_terminated(run_id, status=status))
            made += 1
        return made

    def close_parent(self, status: str) -> None:
        if self.background:
            self._writer.put(("call", lambda: self._close_parent(status), "close the parent run"))
        else:
            self._close_parent(status)

    def _close_parent(self, status: str) -> None:
        parent = self.parent_run_id
        if parent is None:
            return
        run = self._existing_run(parent)
        # A complete study is FINISHED, also when an earlier look found it KILLED (its workers gone).
        if run is not None and run.info.status in ("RUNNING", "KILLED" if status == "FINISHED" else "RUNNING"):
            self._call("set_terminated", lambda: self.client.set_terminated(parent, status=status))
        self._parent_status = status  # so that this tracker's next start_trial sets it RUNNING again

    def _last_step(self, run: Any) -> int:
        """The last step the run logged its study metric at (0 if none): where final values go."""
        if not self.metric_names or self.metric_names[0] not in run.data.metrics:
            return 0
        history = self._call("get_metric_history",
                             lambda: self.client.get_metric_history(run.info.run_id, self.metric_names[0]))
        return max((m.step for m in history), default=0)

    def _final_record(self, outcome: TrialOutcome, step: int, now: int) -> tuple[list[Any], list[Any]]:
        """The final metrics and tags of a trial's run (as :meth:`_send` takes them)."""
        metrics = []
        if outcome.values is not None:
            vals = list(outcome.values) if isinstance(outcome.values, (list, tuple)) else [outcome.values]
            for name, value in zip(final_metric_names(self.metric_names, len(vals)), vals):
                number = to_float(value)
                if number is not None and not math.isnan(number):
                    metrics.append((name, number, now, int(step)))
        tags = [("state", outcome.state)]
        if outcome.pruned_at_step is not None:
            tags.append(("pruned_at_epoch", str(outcome.pruned_at_step)))
        if outcome.reason:
            tags.append(("fail_reason", truncate(str(outcome.reason), MAX_TAG_VAL_LENGTH)))
        return metrics, tags

    def child_runs(self, running_only: bool = False) -> list[Any]:
        """This study's trial runs (all pages)."""
        filt = f"tags.`mlflow.parentRunId` = '{self.parent_run_id}'"
        if running_only:
            filt += " and attributes.status = 'RUNNING'"
        return self._search(filt)

    def _search(self, filt: str) -> list[Any]:
        """The runs of the study's experiment matching ``filt`` (all pages)."""
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

    def study_runs(self, running_only: bool = False) -> list[Any]:
        """Every trial run this study ever created, under any parent (all pages).

        A parent run can go (deleted in the UI, or the store deleted while a worker still wrote
        to it); its trial runs stay, tagged with the study. Runs of another study of the same
        name (tagged with another ``hpo.study_uuid``) are not this study's; runs written before
        that tag existed count when they are children of the current parent.
        """
        name = (self.study_name or "").replace("'", "\\'")
        filt = f"tags.`hpo.study` = '{name}'" + (" and attributes.status = 'RUNNING'" if running_only else "")
        return [run for run in self._search(filt) if self._is_ours(run)]

    def _is_ours(self, run: Any) -> bool:
        tags = run.data.tags
        if tags.get("hpo.role") == "parent":
            return False
        uuid = tags.get(STUDY_UUID_TAG)
        if uuid is not None and self.study_uuid is not None:
            return uuid == self.study_uuid
        return tags.get("mlflow.parentRunId") == self.parent_run_id

    def _identity_tags(self) -> dict[str, str]:
        return {STUDY_UUID_TAG: str(self.study_uuid)} if self.study_uuid else {}

    def _running_children(self) -> list[Any]:
        return self.child_runs(running_only=True)

    def set_trial_tags(self, tags: Mapping[str, Any]) -> None:
        """Sets tags on the current trial's run (e.g. ``checkpoint``); not part of ``Tracker``."""
        trial = self._current()
        if trial is None or not tags:
            return
        items = [(sanitize_key(k), truncate(str(v), MAX_TAG_VAL_LENGTH)) for k, v in tags.items()]
        if self.background:  # the run may not exist yet: with its other queued data
            self._submit(trial, tags=items)
            return
        self._call("set_tags", lambda: self._send(trial.run_id, [], [], items))

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        if self.background:
            self._writer.put(("call", lambda: self._log_artifact(path, artifact_path), f"attach {path}"))
        else:
            self._log_artifact(path, artifact_path)

    def _log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        if self.parent_run_id is None:
            raise RuntimeError("MlflowTracker.log_artifact called before start_study")
        p = Path(path)
        if p.is_dir():
            self._call("log_artifacts", lambda: self.client.log_artifacts(self.parent_run_id, str(p), artifact_path))
        else:
            self._call("log_artifact", lambda: self.client.log_artifact(self.parent_run_id, str(p), artifact_path))

    def describe_study(self, text: str) -> None:
        """Sets the parent run's description (shown first in the MLflow UI)."""
        if self.background:
            self._writer.put(("call", lambda: self._describe_study(text), "describe the study"))
        else:
            self._describe_study(text)

    def _describe_study(self, text: str) -> None:
        if self.parent_run_id is None:
            return
        tags = [(NOTE_TAG, truncate(text, MAX_TAG_VAL_LENGTH))]
        parent = self.parent_run_id
        self._call("set_tags", lambda: self._send(parent, [], [], tags))

    def queued_writes(self) -> int:
        """How many queued records (run data, trial ends) the background writer has not written yet."""
        return self._writer.queued()

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every queued metric is written."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _OPEN_TRACKERS.discard(self)
        if self._client_obj is None and not self.background:
            return
        for ident in list(self._trials):
            self._trials[threading.get_ident()] = self._trials.pop(ident)
            with contextlib.suppress(Exception):
                self.end_trial("KILLED", None, reason="the worker stopped before the trial ended")
        self._writer.flush()
        if self._client_obj is None:  # background: the start failed (logged), or nothing was queued
            return
        if not self._ran_trials:  # trackers that only read or attach artifacts (status, report) change nothing
            return
        # The parent is FINISHED when no trial of the study runs anymore (a worker that starts
        # a trial later sets it RUNNING again).
        if self.parent_run_id is not None and self._parent_status == "RUNNING":
            with contextlib.suppress(Exception):
                if not self._running_children():
                    self._call("set_terminated", lambda: self.client.set_terminated(self.parent_run_id, "FINISHED"))
        checkpoint(self.tracking_uri)

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
