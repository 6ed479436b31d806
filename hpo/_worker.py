"""One worker: asks trials while the study's cap allows, runs the objective, tells the result.

Run in-process for ``--jobs 1`` and as ``python -m hpo._worker`` for each of ``--jobs N``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo._context import TrialContext
from hpo._errors import HpoError, disk_full_error
from hpo._objective import resolve_objective, run_objective
from hpo._space import suggest
from hpo._spec import StudySpec, spec_from_dict
from hpo._study import (
    consecutive_failures,
    fail_running_trial,
    lost_trials,
    next_trial,
    open_study,
    recover_orphans,
    requeue,
    study_info,
)
from hpo._storage import study_lock

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo.tracking import Tracker

EXIT_TOO_MANY_FAILURES = 3
WAIT_FOR_OTHERS_S = 1.0
SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGINT/SIGTERM; remembers which signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def install_signal_handlers() -> None:
    """Turns the first SIGINT/SIGTERM into :class:`Interrupted`; later ones wait for the cleanup."""

    def handle(signum: int, frame: Any) -> None:
        for sig in SIGNAL_EXIT_CODES:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    for sig in SIGNAL_EXIT_CODES:
        signal.signal(sig, handle)


@dataclass
class WorkerOutcome:
    trials_run: int
    stop_reason: str
    exit_code: int = 0


def trial_seed(study_seed: int | None, number: int) -> int:
    digest = hashlib.sha256(f"{study_seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def connect_tracker(study: optuna.Study, spec: StudySpec, tracker: Tracker) -> None:
    """Finds the study's parent record, creating it once under the study lock."""
    with study_lock(spec):
        parent = study.user_attrs.get("mlflow_parent_run_id")
        created = tracker.start_study(study_info(spec), parent)
        if created is not None and created != parent:  # new, or the old parent run was deleted
            study.set_user_attr("mlflow_parent_run_id", created)


def join_study(spec: StudySpec, tracker: Tracker, worker_index: int = 0) -> tuple[optuna.Study, list[int]]:
    """Opens (or creates) the study, finds its tracker record, and recovers trials of dead workers.

    Returns the study and the numbers of the trials it recovered.
    """
    study = open_study(spec, worker_index)
    connect_tracker(study, spec, tracker)
    return study, recover_orphans(study, spec, tracker)


def run_worker(
    spec: StudySpec,
    tracker: Tracker,
    study: optuna.Study,
    on_trial_end: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> WorkerOutcome:
    """Runs trials of a joined study (:func:`join_study`) until it is done, the timeout passes or
    too many trials fail in a row.

    Raises:
        Interrupted: on SIGINT/SIGTERM, after the running trial was failed and re-queued.
    """
    objective = resolve_objective(spec.objective.name, Path(spec.source).parent, spec.source)
    started = time.monotonic()
    count = 0
    while True:
        if spec.study.timeout is not None and time.monotonic() - started > spec.study.timeout:
            return WorkerOutcome(count, f"timeout of {spec.study.timeout:g} s reached")
        trial = next_trial(study, spec)
        if trial is None:
            if not others_running(study):
                return WorkerOutcome(count, "study complete")
            # Another worker's trial may still fail and be re-queued: stay to take it.
            recover_orphans(study, spec, tracker)
            time.sleep(WAIT_FOR_OTHERS_S)
            continue
        frozen = run_trial(study, trial, spec, objective, tracker)
        count += 1
        if on_trial_end is not None:
            on_trial_end(study, frozen)
        if frozen.state.name != "FAIL":
            continue
        failures = consecutive_failures(study.get_trials(deepcopy=False), lost_trials(study))
        if failures >= spec.study.max_consecutive_failures:
            reason = frozen.user_attrs.get("fail_reason", "")
            return WorkerOutcome(count, f"stopped after {failures} failed trials in a row; last error: {reason}",
                                 EXIT_TOO_MANY_FAILURES)


def others_running(study: optuna.Study) -> bool:
    from optuna.trial import TrialState

    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)))


def run_trial(
    study: optuna.Study, trial: optuna.Trial, spec: StudySpec, objective: Callable[..., Any], tracker: Tracker
) -> FrozenTrial:
    """Runs one trial to a final state; on interrupt, fails and re-queues it, then re-raises.

    A trial another process already ended (it took this worker for dead, failed and re-queued the
    trial) is left as that process left it: ``skip_if_finished``.
    """
    import optuna
    from optuna.trial import TrialState

    from hpo._optuna_compat import heartbeat

    params = suggest(trial, spec.space)
    config = {**spec.objective.fixed, **params}
    seed = trial_seed(spec.study.seed, trial.number)
    trial.set_user_attr("seed", seed)
    workdir = spec.study_dir / "trials" / f"{trial.number:05d}"
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = TrialContext(trial, params, config, spec.study.metrics, seed, workdir, spec.study_dir, tracker)
    run_id = tracker.start_trial(trial.number, params, spec.objective.fixed)
    if run_id:
        trial.set_user_attr("mlflow_run_id", run_id)
    try:
        with heartbeat(trial, study):
            values = run_objective(objective, ctx)
    except optuna.TrialPruned:
        if "pruned_at_epoch" not in trial.user_attrs and ctx.last_step is not None:
            trial.set_user_attr("pruned_at_epoch", ctx.last_step)
        frozen = study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        tracker.end_trial("PRUNED", None, pruned_at_step=trial.user_attrs.get("pruned_at_epoch"))
    except (KeyboardInterrupt, SystemExit) as exc:
        reason = f"interrupted ({type(exc).__name__}: {exc})"
        running = study._storage.get_trial(trial._trial_id)
        if fail_running_trial(study, running, reason):
            requeue(study, running, spec, reason, counts=False)
        tracker.end_trial("KILLED", None, reason=reason)
        raise
    except Exception as exc:  # noqa: BLE001 - any objective error fails only this trial
        reason = f"{type(exc).__name__}: {exc}"
        (workdir / "error.txt").write_text(traceback.format_exc())
        trial.set_user_attr("fail_reason", reason[:4000])
        frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        tracker.end_trial("FAIL", None, reason=reason)
    else:
        frozen = study.tell(trial, values, skip_if_finished=True)
        tracker.end_trial("COMPLETE", values)
    finally:
        del ctx
        release_memory()
    return frozen


def release_memory() -> None:
    """Frees what a finished (often pruned or failed) trial left: cycles, cached GPU blocks.

    Only after objectives that use torch: a full collection costs ~10 ms, more than the whole
    driver's cost per trial of a cheap objective, and only tensors make leftovers expensive.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    """Entry of a ``--jobs`` worker process: ``python -m hpo._worker SPEC_JSON INDEX``."""
    from hpo.tracking import make_tracker

    install_signal_handlers()
    spec_json, index = (argv or sys.argv[1:])[:2]
    payload = json.loads(Path(spec_json).read_text())
    spec = spec_from_dict(payload["raw"], source=payload["source"])
    tracker = make_tracker(spec.mlflow.tracking_uri, spec.experiment, spec.mlflow.enabled)
    try:
        outcome = run_worker(spec, tracker, join_study(spec, tracker, int(index))[0])
        print(outcome.stop_reason, flush=True)
        return outcome.exit_code
    except Interrupted as exc:
        return SIGNAL_EXIT_CODES[exc.signum]
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
