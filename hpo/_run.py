"""``hpo run``: one worker in this process, or a supervisor over ``--jobs N`` worker processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from hpo import _keys as keys
from hpo._lifeline import Lifeline
from hpo._progress import StudyProgress, tail_status
from hpo._spec import StudySpec
from hpo._study import recover_orphans, recovered_lines, trials_left, trials_used
from hpo._signals import Interrupted, install_signal_handlers
from hpo._worker import (
    EXIT_STUCK_TRIAL,
    EXIT_TOO_MANY_FAILURES,
    STUDY_COMPLETE,
    join_study,
    no_complete_trial,
    run_worker,
    settle_parent,
)

POLL_S = 0.5
CRASH_RESTARTS = 3  # restarts for workers that exit with an error (killed workers always restart)
SHUTDOWN_GRACE_S = 60


@dataclass
class RunResult:
    exit_code: int
    stop_reason: str
    wall_seconds: float
    study: Any = None  # the opened study, when it got that far


def run_study(spec: StudySpec, jobs: int, console: Console, engine: Any = None) -> RunResult:
    """Creates or resumes the study and runs it to its end, an interrupt, or too many failures.

    ``engine``: a cluster engine (:mod:`hpo.cluster`) that runs the ``jobs`` workers, else they
    run on this machine.
    """
    from hpo._preflight import preflight

    preflight(spec)  # before anything is created: the objective imports, the folders and stores are writable
    install_signal_handlers()
    if engine is None:
        return _run_study(spec, jobs, console, None)
    try:
        engine.prepare(spec)  # connects; refuses a store or a trial the cluster cannot hold
        return _run_study(spec, jobs, console, engine)
    finally:
        engine.close()


def _run_study(spec: StudySpec, jobs: int, console: Console, engine: Any) -> RunResult:
    from hpo._summary import state_counts
    from hpo.tracking import check_reachable, make_tracker

    started = time.monotonic()
    study = None
    if spec.mlflow.enabled:
        check_reachable(spec.mlflow.tracking_uri)
    # MLflow starts on the tracker's thread while the first trial trains (~3 s off the critical path)
    tracker = make_tracker(spec.mlflow.tracking_uri, spec.experiment, spec.mlflow.enabled, background=True)
    try:
        study, recovered = join_study(spec, tracker)
        if study.user_attrs.get(keys.STUDY_N_TRIALS) != spec.study.n_trials:  # for `hpo status`
            study.set_user_attr(keys.STUDY_N_TRIALS, spec.study.n_trials)
        settle_parent(study, tracker, complete=False)  # a crashed run left it RUNNING; our trials reopen it
        for line in recovered_lines(study, spec, recovered, "their worker had died"):
            console.print(line, markup=False)
        counts = state_counts(study.get_trials(deepcopy=False))  # read once for the three questions below
        ran_nothing = study_is_complete(study, spec, counts)
        used = trials_used(study, counts)
        if ran_nothing:  # nothing to do: no worker (starting one costs seconds)
            code, reason = 0, _complete(used, spec)
        else:
            workers = _workers_for(trials_left(study, spec, counts), jobs, console)
            code, reason = _run_trials(spec, workers, study, tracker, console, engine)
        if code != 0 or reason.startswith(STUDY_COMPLETE):
            recover_orphans(study, spec, tracker)
        if reason.startswith(STUDY_COMPLETE):
            settle_parent(study, tracker, complete=True)
        if code == 0 and (why := no_complete_trial(study)):
            code, reason = 1, why
        if code in (0, 1) and ran_nothing and used >= spec.study.n_trials:  # not an exhausted grid
            # the file may have been fixed since: say how to go on
            reason = reason.rstrip(".") + (f"; nothing ran: raise --n-trials (now {spec.study.n_trials}) to run "
                                           "more, or give the study a new name (--set study.name=NEW)")
    except Interrupted as exc:
        code, reason = exc.exit_code, f"interrupted by {signal.Signals(exc.signum).name}"
    finally:
        _close_tracker(tracker, study, spec, console)
    if code == EXIT_TOO_MANY_FAILURES:
        code = 1
    return RunResult(code, reason, time.monotonic() - started, study)


def _run_trials(spec: StudySpec, jobs: int, study: Any, tracker: Any, console: Console,
                engine: Any = None) -> tuple[int, str]:
    """Runs the study's trials in this process (``jobs == 1``), in ``jobs`` workers, or in
    ``jobs`` workers of a cluster ``engine``, with progress."""
    with StudyProgress(spec, console) as progress:
        progress.mark_seen(study.get_trials(deepcopy=False))
        progress.update(study, force=True)
        if engine is not None:
            code, reason = engine.run(spec, jobs, study, progress, tracker)
        elif jobs == 1:
            outcome = run_worker(spec, tracker, study, lambda s, t: progress.update(s), stuck_exit_code=1)
            code, reason = outcome.exit_code, outcome.stop_reason
        else:
            code, reason = Supervisor(spec, jobs, study, progress, tracker).run()
        progress.update(study, force=True)
    return code, reason


def _complete(used: int, spec: StudySpec) -> str:
    """Why a run found nothing to do (``used``: :func:`hpo._study.trials_used`): the study's cap
    reached, or its grid run through."""
    if used < spec.study.n_trials:  # a grid with no point left
        return f"{STUDY_COMPLETE}: every grid point has run ({used} trials)"
    return f"{STUDY_COMPLETE}: it has {used} trials, n_trials is {spec.study.n_trials}"


def _workers_for(left: int, jobs: int, console: Console) -> int:
    """``jobs``, but no more workers than the ``left`` trials to start (each worker is a process with
    its own model: ``--jobs 10000`` on a 3-trial study started 10000 and ran the machine out of memory)."""
    if 0 < left < jobs:
        console.print(f"{left} trial(s) left to start: {left} worker(s), not {jobs}", markup=False)
        return left
    return jobs


def study_is_complete(study: Any, spec: StudySpec, counts: Mapping[str, int] | None = None) -> bool:
    """Whether no trial is left to run: none RUNNING, and the study's cap reached
    (:func:`hpo._study.cap_reached`, the rule :func:`hpo._study.next_trial` applies). Trials still
    queued past the cap (a grid larger than ``n_trials``) wait for a later run with a larger cap."""
    from hpo._study import cap_reached
    from hpo._summary import state_counts

    if counts is None:
        counts = state_counts(study.get_trials(deepcopy=False))
    return not counts["RUNNING"] and cap_reached(study, spec, counts)


def _close_tracker(tracker: Any, study: Any, spec: StudySpec, console: Console) -> None:
    """Describes the study on its parent record, then writes what is still queued, saying so."""
    if study is not None:
        with contextlib.suppress(Exception):  # a description is not worth failing a finished run
            tracker.describe_study(describe(study, spec))
    queued = tracker.queued_writes()
    if not queued:
        tracker.close()
        return
    with tail_status(console, f"writing {queued} queued MLflow records…"):
        tracker.close()


def describe(study: Any, spec: StudySpec) -> str:
    """The parent record's description: the dashboard's path and the best trial."""
    from hpo._summary import best_trials, format_values
    from hpo.tracking import study_description

    best = best_trials(study)
    text = None
    if len(best) == 1:
        values = format_values(best[0].values)
        text = f"trial {best[0].number}: {', '.join(spec.study.metrics)}={values}"
    elif best:
        text = f"trials (Pareto front): {', '.join(str(t.number) for t in best)}"
    return study_description(spec.study.name, str((spec.study_dir / "report.html").resolve()), text)


def gpu_ids() -> list[str]:
    """Visible GPU ids, found without importing torch (nvidia-smi or CUDA_VISIBLE_DEVICES)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=10)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def gpu_assignment(jobs: int, gpus: list[str], per_trial: int) -> list[str | None]:
    """Which GPUs each worker sees: ``per_trial`` GPUs each, round-robin when there are too few."""
    if not gpus:
        return [None] * jobs
    per_trial = max(1, min(per_trial, len(gpus)))
    return [",".join(gpus[(i * per_trial + k) % len(gpus)] for k in range(per_trial)) for i in range(jobs)]


class Supervisor:
    """Starts ``jobs`` worker processes, replaces dead ones, forwards Ctrl-C/SIGTERM/SIGHUP, shows progress.

    Workers run in sessions of their own (a Ctrl-C in the terminal reaches only the supervisor,
    which forwards it), so nothing the kernel does ends them with the supervisor: they watch its
    :class:`~hpo._lifeline.Lifeline` and stop (failing and re-queuing their trials) when it dies.
    """

    def __init__(self, spec: StudySpec, jobs: int, study: object, progress: StudyProgress, tracker: object) -> None:
        self.spec, self.jobs, self.study, self.progress, self.tracker = spec, jobs, study, progress, tracker
        self.logs_dir = spec.study_dir / "workers"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.spec_file = self.logs_dir / "spec.json"
        self.spec_file.write_text(json.dumps({"source": spec.source, "raw": spec.raw}, default=str))
        from hpo._objective import resource_needs

        self.gpus = gpu_assignment(jobs, gpu_ids(), resource_needs(spec).devices)
        self.crash_restarts = 0
        self.lifeline: Lifeline | None = None

    def start(self, index: int) -> subprocess.Popen:
        assert self.lifeline is not None, "start workers inside run()"
        env = dict(os.environ)
        if self.gpus[index] is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[index]
        with open(self.logs_dir / f"worker-{index}.log", "a") as log:  # the child keeps its own copy
            return subprocess.Popen(
                [sys.executable, "-m", "hpo._worker", str(self.spec_file), str(index)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self.lifeline.popen_kwargs(env),
            )

    def run(self) -> tuple[int, str]:
        with Lifeline() as self.lifeline:
            procs = {i: self.start(i) for i in range(self.jobs)}
            try:
                return self._watch(procs)
            except Interrupted as exc:
                self._stop(procs, exc.signum)
                raise

    def _watch(self, procs: dict[int, subprocess.Popen]) -> tuple[int, str]:
        done: set[int] = set()
        while len(done) < self.jobs:
            time.sleep(POLL_S)
            self.progress.update(self.study)
            for index, proc in procs.items():
                if index in done or proc.poll() is None:
                    continue
                if proc.returncode == 0:
                    done.add(index)
                elif proc.returncode == EXIT_TOO_MANY_FAILURES:
                    self._stop(procs, signal.SIGTERM)
                    return EXIT_TOO_MANY_FAILURES, self._last_line(index)
                elif self._may_restart(proc.returncode):
                    recover_orphans(self.study, self.spec, self.tracker)
                    procs[index] = self.start(index)
                else:
                    self._stop(procs, signal.SIGTERM)
                    return 1, f"worker {index} failed (exit {proc.returncode}); see {self.logs_dir / f'worker-{index}.log'}"
        return 0, STUDY_COMPLETE

    def _may_restart(self, returncode: int) -> bool:
        if returncode < 0 or returncode == EXIT_STUCK_TRIAL:  # killed, or ended itself over a stuck
            return True  # trial (already failed): a new worker takes over
        self.crash_restarts += 1
        return self.crash_restarts <= CRASH_RESTARTS

    def _last_line(self, index: int) -> str:
        lines = (self.logs_dir / f"worker-{index}.log").read_text().strip().splitlines()
        return lines[-1] if lines else "worker stopped"

    def _stop(self, procs: dict[int, subprocess.Popen], signum: int) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        recover_orphans(self.study, self.spec, self.tracker)
