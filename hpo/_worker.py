"""One worker: asks trials while the study's cap allows, runs the objective, tells the result.

Run in-process for ``--jobs 1`` and as ``python -m hpo._worker`` for each of ``--jobs N``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import _keys as keys
from hpo._context import TrialContext
from hpo._deadline import TrialDeadline, TrialTimeout
from hpo._errors import HpoError, MetricMissing, disk_full_error
from hpo._lifeline import interrupt_self, watch_parent
from hpo._objective import resolve_objective, run_objective
from hpo._signals import (  # also imported from here
    SIGNAL_EXIT_CODES,
    Interrupted,
    install_signal_handlers,
    note_cause,
    raise_if_signalled,
)
from hpo._space import suggest
from hpo._spec import StudySpec, spec_from_dict
from hpo._stopping import study_stop_reason
from hpo._study import (
    consecutive_failures,
    fail_running_trial,
    has_trials,
    lost_trials,
    next_trial,
    open_study,
    record_run_id,
    recover_orphans,
    release_interrupted,
    released_on_interrupt,
    study_info,
    tracker_view,
)
from hpo._storage import study_lock

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo.tracking import Tracker

EXIT_TOO_MANY_FAILURES = 3
STUDY_COMPLETE = "study complete"  # a stop reason that starts so ends the study normally
EXIT_STUCK_TRIAL = 4  # a trial ignored its trial_timeout: the worker ended itself (always restarted)
STUCK_RECORD_TIMEOUT_S = 30.0
WAIT_FOR_OTHERS_S = 1.0
ORPHAN_GRACE_S = 30.0  # a worker whose supervisor died exits hard if its cleanup takes longer


@dataclass
class WorkerOutcome:
    trials_run: int
    stop_reason: str
    exit_code: int = 0


def trial_seed(study_seed: int | None, number: int) -> int:
    digest = hashlib.sha256(f"{study_seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def connect_tracker(study: optuna.Study, spec: StudySpec, tracker: Tracker) -> None:
    """Finds the study's parent record, creating it once under the study lock.

    A tracker that starts in the background does this on its own thread while trials run; then
    it also makes the records of finished trials that have none (their worker died before its
    tracker had made them), under the same lock, so that two processes never both make one.
    """
    from hpo.tracking import open_parent_run

    def connect() -> None:
        with study_lock(spec):
            open_parent_run(tracker, study_info(spec), study)
            tracker.add_missing(*tracker_view(study))

    tracker.defer(connect)


def settle_parent(study: optuna.Study, tracker: Tracker, complete: bool) -> None:
    """Closes the study's tracker record when no trial of the study runs: FINISHED when the study
    is ``complete``, else KILLED.

    A worker that dies (``os._exit``, SIGKILL, a stuck trial) never closes the record itself;
    ``hpo run`` calls this once it has recovered such workers' trials, and again at the end.
    """
    if not has_trials(study, "RUNNING"):
        tracker.close_parent("FINISHED" if complete else "KILLED")


def join_study(spec: StudySpec, tracker: Tracker, worker_index: int = 0) -> tuple[optuna.Study, list[int]]:
    """Opens (or creates) the study, finds its tracker record, and recovers trials of dead workers.

    Returns the study and the numbers of the trials it recovered.
    """
    study = open_study(spec, worker_index)
    recovered = recover_orphans(study, spec)  # first, so that connecting sees those trials ended
    connect_tracker(study, spec, tracker)
    tracker.reconcile(*tracker_view(study))
    return study, recovered


def run_worker(
    spec: StudySpec,
    tracker: Tracker,
    study: optuna.Study,
    on_trial_end: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    stuck_exit_code: int = EXIT_STUCK_TRIAL,
) -> WorkerOutcome:
    """Runs trials of a joined study (:func:`join_study`) until it is done, the timeout passes or
    too many trials fail in a row.

    ``stuck_exit_code`` is the exit status of this process when a trial ignores its time limit
    (:func:`run_trial`): a supervised worker's tells the supervisor to start another one.

    Raises:
        Interrupted: on SIGINT/SIGTERM/SIGHUP, after the running trial was failed and re-queued.
    """
    objective = resolve_objective(spec.objective.name, Path(spec.source).parent, spec.source)
    started = time.monotonic()
    count = 0
    while True:
        if spec.study.timeout is not None and time.monotonic() - started > spec.study.timeout:
            return WorkerOutcome(count, f"timeout of {spec.study.timeout:g} s reached")
        if why := study_stop_reason(study, spec.study.stop_when):
            return WorkerOutcome(count, f"{STUDY_COMPLETE} (stop_when: {why})")
        raise_if_signalled()  # a SIGTERM whose exception something swallowed still ends the run
        trial = next_trial(study, spec)
        if trial is None:
            if not others_running(study):
                return WorkerOutcome(count, STUDY_COMPLETE)
            # Another worker's trial may still fail and be re-queued: stay to take it.
            recover_orphans(study, spec, tracker)
            time.sleep(WAIT_FOR_OTHERS_S)
            continue
        frozen = run_trial(study, trial, spec, objective, tracker, stuck_exit_code)
        count += 1
        if on_trial_end is not None:
            on_trial_end(study, frozen)
        if frozen.state.name != "FAIL":
            continue
        if frozen.user_attrs.get(keys.METRIC_MISSING) and not has_trials(study, "COMPLETE"):
            reason = frozen.user_attrs.get(keys.FAIL_REASON, "").rstrip(".")
            return WorkerOutcome(count, f"stopped: {reason}; every trial would fail the same way",
                                 EXIT_TOO_MANY_FAILURES)
        failures = consecutive_failures(study.get_trials(deepcopy=False), lost_trials(study))
        if failures >= spec.study.max_consecutive_failures:
            reason = frozen.user_attrs.get(keys.FAIL_REASON, "")
            return WorkerOutcome(count, f"stopped after {failures} failed trials in a row; last error: {reason}",
                                 EXIT_TOO_MANY_FAILURES)


def no_complete_trial(study: optuna.Study) -> str | None:
    """Why a run that ended normally must still not exit 0: no trial of the study completed.

    Returns None when some trial completed.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.COMPLETE for t in trials):
        return None
    failed = [t for t in trials if t.state == TrialState.FAIL]
    last = max(failed, key=lambda t: t.datetime_complete or t.datetime_start, default=None)
    detail = f"; last error: {last.user_attrs.get(keys.FAIL_REASON, '')}" if last is not None else ""
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    return f"no trial completed ({len(failed)} failed, {pruned} pruned){detail}"


def others_running(study: optuna.Study) -> bool:
    """Whether another worker's trial is still running (it may fail, be re-queued and be ours to run).

    Queued (WAITING) trials are no reason to stay: once the cap is reached nobody takes them (a
    grid or warm start larger than ``n_trials`` leaves some queued for a later, larger run)."""
    from optuna.trial import TrialState

    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    spec: StudySpec,
    objective: Callable[..., Any],
    tracker: Tracker,
    stuck_exit_code: int = EXIT_STUCK_TRIAL,
) -> FrozenTrial:
    """Runs one trial to a final state; on interrupt, fails and re-queues it, then re-raises.

    An objective that raises (``sys.exit`` included) or runs past ``study.trial_timeout`` fails
    this trial only, for good (not re-queued). One that cannot be interrupted at its time limit
    ends the process with ``stuck_exit_code`` after recording the failure (:func:`_end_stuck_trial`).
    A trial another process already ended (it took this worker for dead, failed and re-queued the
    trial) is left as that process left it: ``skip_if_finished``.
    """
    import optuna
    from optuna.trial import TrialState

    from hpo._beat import beating
    from hpo._optuna_compat import heartbeat, trial_id

    with released_on_interrupt(study, spec, trial_id(trial)):  # a signal before the objective runs
        params = suggest(trial, spec.space)
        config = {**spec.objective.fixed, **params}
        seed = trial_seed(spec.study.seed, trial.number)
        trial.set_user_attr(keys.SEED, seed)
        workdir = spec.study_dir / "trials" / f"{trial.number:05d}"
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = TrialContext(trial, params, config, spec.study.metrics, seed, workdir, spec.study_dir, tracker)
        deadline = TrialDeadline(spec.study.trial_timeout,
                                 lambda reason: _end_stuck_trial(study, trial, reason, stuck_exit_code))
    try:
        tracker.start_trial(trial.number, params, spec.objective.fixed,
                            on_created=lambda run_id: record_run_id(study, trial, run_id))
        with heartbeat(trial, study), beating(study, spec, trial_id(trial)), deadline:
            values = run_objective(objective, ctx)
    except optuna.TrialPruned:
        if keys.PRUNED_AT_EPOCH not in trial.user_attrs and ctx.last_step is not None:
            trial.set_user_attr(keys.PRUNED_AT_EPOCH, ctx.last_step)
        frozen = study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        tracker.end_trial("PRUNED", None, pruned_at_step=trial.user_attrs.get(keys.PRUNED_AT_EPOCH))
    except (Exception, KeyboardInterrupt, SystemExit, TrialTimeout) as exc:  # noqa: BLE001
        interrupt = interrupt_behind(exc)
        if interrupt is not None:  # our Interrupted (SIGINT/SIGTERM) or a real Ctrl-C
            reason = release_interrupted(study, spec, trial_id(trial), interrupt)
            tracker.end_trial("KILLED", None, reason=reason)
            raise interrupt from None
        reason = failure_reason(exc)  # anything else fails this trial only
        (workdir / "error.txt").write_text(traceback.format_exc())
        trial.set_user_attr(keys.FAIL_REASON, reason[:4000])
        if isinstance(exc, MetricMissing):
            trial.set_user_attr(keys.METRIC_MISSING, True)
        frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        tracker.end_trial("FAIL", None, reason=reason)
        retain_checkpoints(study, ctx, frozen)
    else:
        frozen = study.tell(trial, values, skip_if_finished=True)
        tracker.end_trial("COMPLETE", values)
        retain_checkpoints(study, ctx, frozen)
    finally:
        del ctx
        release_memory()
    return frozen


def retain_checkpoints(study: optuna.Study, ctx: TrialContext, frozen: FrozenTrial) -> None:
    """Once the trial is told: only the study's best ``keep`` trials keep their checkpoint files.

    The objective says how many to keep (``ctx.set_checkpoint(path, keep=K)``); a trial that did not
    end COMPLETE can never be the best, so its file goes at once.
    """
    from hpo._checkpoints import discard, retain_best

    if not ctx.checkpoint or not ctx.keep_checkpoints:
        return
    if frozen.state.name != "COMPLETE":
        discard(ctx.checkpoint)
        return
    retain_best(study, ctx.keep_checkpoints)


def interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt that ``exc`` is, or that a framework turned into ``SystemExit``, else None.

    Lightning answers a KeyboardInterrupt (our :class:`Interrupted` included) with a graceful
    shutdown and ``sys.exit(1)``; that exit is still the user's Ctrl-C/SIGTERM, not the
    objective's own ``sys.exit``, so the trial is re-queued and the study stops.
    """
    seen: BaseException | None = exc
    while isinstance(seen, SystemExit):
        seen = seen.__cause__ or seen.__context__
    return seen if isinstance(seen, KeyboardInterrupt) else None


def failure_reason(exc: BaseException) -> str:
    """One line saying why the objective failed its trial.

    ``sys.exit`` in an objective fails the trial like any error: treating it as a request to
    stop the study would end ``hpo run`` with success while no trial completed.
    """
    if isinstance(exc, SystemExit):
        return f"objective called sys.exit({'' if exc.code is None else repr(exc.code)})"
    if isinstance(exc, (TrialTimeout, MetricMissing)):  # their own words say it all
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _end_stuck_trial(study: optuna.Study, trial: optuna.Trial, reason: str, exit_code: int) -> None:
    """From the watchdog thread: fails the trial that ignored its time limit, then ends the process.

    The trial is not re-queued (its params would hang again). With ``--jobs N`` the supervisor
    starts a new worker; with ``--jobs 1`` the next ``hpo run`` resumes the study and closes the
    trial's MLflow run from this record.
    """
    from hpo._optuna_compat import storage_of, trial_id

    def record() -> None:
        running = storage_of(study).get_trial(trial_id(trial))
        fail_running_trial(study, running, reason)

    # The stuck main thread may hold a storage lock: record from a thread of its own and give up
    # waiting for it after a while, so the process ends in any case.
    writer = threading.Thread(target=record, daemon=True)
    writer.start()
    writer.join(STUCK_RECORD_TIMEOUT_S)
    print(f"trial {trial.number} failed: {reason}; stopping this worker", file=sys.stderr, flush=True)
    os._exit(exit_code)


def release_memory() -> None:
    """Frees what a finished (often pruned or failed) trial left on a GPU: cycles holding device
    tensors, and the allocator's cached blocks, which the next trial would otherwise not get.

    Only once CUDA is in use: with torch and Lightning imported a full collection costs 0.2-0.5 s,
    more than a short trial, and on the CPU Python's own collector frees such cycles as memory grows.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    gc.collect()
    torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    """Entry of a ``--jobs`` worker process: ``python -m hpo._worker SPEC_JSON INDEX``.

    The worker stops as on SIGTERM (its running trial failed and re-queued) when its supervisor
    dies, however it dies: the supervisor's :class:`hpo._lifeline.Lifeline` closes.
    """
    from hpo.tracking import make_tracker

    install_signal_handlers()
    stop = interrupt_self(ORPHAN_GRACE_S, SIGNAL_EXIT_CODES[signal.SIGTERM],
                          "the supervisor is gone; stopping this worker")

    def on_loss() -> None:
        note_cause(signal.SIGTERM, "its hpo run (the supervisor) died")
        stop()

    watch_parent(on_loss)
    spec_json, index = (argv or sys.argv[1:])[:2]
    payload = json.loads(Path(spec_json).read_text())
    spec = spec_from_dict(payload["raw"], source=payload["source"])
    tracker = make_tracker(spec.mlflow.tracking_uri, spec.experiment, spec.mlflow.enabled, background=True)
    try:
        outcome = run_worker(spec, tracker, join_study(spec, tracker, int(index))[0])
        print(outcome.stop_reason, flush=True)
        return outcome.exit_code
    except Interrupted as exc:
        return exc.exit_code
    except (HpoError, OSError) as exc:  # e.g. the disk filled: one line in the worker's log, no traceback
        error = disk_full_error(exc) or (exc if isinstance(exc, HpoError) else None)
        if error is None:
            raise
        print(f"error: {error}", flush=True)
        return error.exit_code
    finally:
        tracker.close()


if __name__ == "__main__":
    sys.exit(main())
