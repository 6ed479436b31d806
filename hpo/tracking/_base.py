"""The tracker interface the driver talks to; the default records nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple


class TrialOutcome(NamedTuple):
    """How a trial ended, as the study's storage knows it (for :meth:`Tracker.reconcile`)."""

    state: str  # COMPLETE, PRUNED, FAIL or KILLED
    values: list[float] | None = None
    reason: str | None = None
    pruned_at_step: int | None = None
    params: Mapping[str, Any] | None = None  # sampled, then fixed: for a record made afterwards
    fixed: Mapping[str, Any] | None = None
    steps: Mapping[int, float] | None = None  # the study metric per reported step



class Tracker:
    """Receives a study's events. Subclasses override what they record.

    One instance lives in each worker process. The driver calls, in order:
    ``start_study`` once per process, then for every trial ``start_trial`` →
    ``log_metrics``* → ``end_trial``, and ``close`` at exit. ``reconcile`` is
    called (``hpo run`` start, ``hpo status``) to close records of trials whose process died.
    """

    def start_study(self, study_info: Mapping[str, Any], parent_run_id: str | None = None) -> str | None:
        """Creates the study-level record (MLflow parent run), or reuses ``parent_run_id``.

        Returns the id of the record in use (a new one when ``parent_run_id`` is None, or
        when the given one no longer exists), or None when nothing is recorded. The driver
        calls it with None under its study lock once, stores the id, and passes it afterwards.
        """
        return None

    def defer(self, fn: Callable[[], Any], what: str = "start the study") -> None:
        """Runs ``fn``, which calls this tracker (``start_study``...): now here; a tracker that
        starts in the background runs it there, in order with its other writes."""
        fn()

    def start_trial(
        self,
        number: int,
        params: Mapping[str, Any],
        fixed: Mapping[str, Any],
        role: str = "trial",
        on_created: Callable[[str], None] | None = None,
    ) -> str | None:
        """Opens the trial's record; returns its id (the MLflow run id) or None.

        ``role`` is ``trial`` for a study's trials and ``retrain`` for ``hpo train`` runs, which
        are not counted among the study's trial records. ``on_created`` gets the id once the
        record exists, maybe later and from another thread (a tracker that starts in the background).
        """
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Records one step (epoch) of the current trial's metrics."""

    def end_trial(
        self,
        state: str,
        values: list[float] | None,
        reason: str | None = None,
        pruned_at_step: int | None = None,
    ) -> None:
        """Closes the current trial's record with its final state: COMPLETE, PRUNED, FAIL or KILLED."""

    def reconcile(self, live_trial_numbers: set[int], outcomes: Mapping[int, TrialOutcome]) -> int:
        """Ends every still-running trial record of this study whose number is not live.

        A record whose trial finished gets that trial's outcome (state, final values, reason),
        e.g. when its worker was killed before the final write reached the store; any other
        gets state and status KILLED. Returns how many records were fixed.
        """
        return 0

    def add_missing(self, live_trial_numbers: set[int], outcomes: Mapping[int, TrialOutcome]) -> int:
        """Makes the record of each finished trial that has none and is not live: its worker died
        before its tracker, starting in the background, had made it. Returns how many."""
        return 0

    def close_parent(self, status: str) -> None:
        """Ends the study-level record with ``status`` (FINISHED or KILLED) if it is still running
        (FINISHED also replaces KILLED).

        Called when no process of the study runs a trial anymore (its workers died, or the study
        is complete); the next ``start_trial`` marks the record running again.
        """

    def log_artifact(self, path: str) -> None:
        """Attaches a file (dashboard, exported config) to the study-level record."""

    def describe_study(self, text: str) -> None:
        """Sets the study-level record's description (where the dashboard is, the best trial)."""

    def queued_writes(self) -> int:
        """How many records are queued and not written yet (``close`` writes them)."""
        return 0

    def close(self) -> None:
        """Flushes anything pending."""
