"""``hpo run --cluster slurm``: the study's workers as one SLURM job array, submitted through submitit.

The command creates (or resumes) the study, submits ``--jobs N`` array tasks, each an ordinary
hpo worker (:func:`hpo._worker.main`) that runs trials until the study's cap is reached, and
follows the study with the same progress and summary as ``--jobs`` on one machine. The array's ids
are stored on the study (:data:`hpo._keys.SLURM_JOBS`), so ``hpo status`` shows them. Ctrl-C or
SIGTERM cancels the array (``scancel``): SLURM sends the tasks SIGTERM, and each worker fails and
re-queues its running trial as on one machine.

Everything the tasks read lies in the study folder (``hpo-runs/<study>/slurm``), which must be on
a file system the nodes share, and the study storage must be one the nodes reach (PostgreSQL,
MySQL, or an ``hpo proxy``). ``--slurm-local`` runs the array's tasks as processes on this
machine through submitit's local executor: a dry run of a SLURM setup, also with the embedded store.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo._errors import UsageError

if TYPE_CHECKING:

    from hpo._progress import StudyProgress
    from hpo._spec import StudySpec

POLL_S = 0.5
CANCEL_GRACE_S = 60.0  # how long a cancelled array's tasks get to fail and re-queue their trials
DEFAULT_TIME_MIN = 60


@dataclass
class SlurmOptions:
    """The ``--slurm-*`` flags: what each array task asks SLURM for."""

    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    time_min: int = DEFAULT_TIME_MIN
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: list[str] = field(default_factory=list)
    local: bool = False

    def sbatch_parameters(self, jobs: int, name: str) -> dict[str, Any]:
        """submitit's SLURM parameters for an array of ``jobs`` workers named ``name``."""
        given = {"partition": self.partition, "gpus_per_task": self.gpus_per_task,
                 "cpus_per_task": self.cpus_per_task, "mem": _mem(self.mem_gb), "account": self.account,
                 "qos": self.qos, "constraint": self.constraint, "setup": self.setup or None}
        # One task per array element; all N elements may run at once (submitit's default caps it at 256).
        params = {"job_name": name, "time": self.time_min, "ntasks_per_node": 1, "nodes": 1,
                  "array_parallelism": jobs}
        return {**params, **{k: v for k, v in given.items() if v is not None}}


def _mem(gb: float | None) -> str | None:
    return None if gb is None else f"{int(gb * 1024)}MB"


def sbatch_script(options: SlurmOptions, jobs: int, name: str, folder: Path, command: str) -> str:
    """The sbatch script submitit writes for the array (rendered without SLURM, through
    :mod:`hpo.cluster._submitit_compat`: for tests and readers)."""
    from hpo.cluster._submitit_compat import render_sbatch

    params = {**options.sbatch_parameters(jobs, name), "map_count": jobs}
    return render_sbatch(command, folder, **params)


def worker_task(spec_json: str, index: int) -> int:
    """One array task: an hpo worker on the study (what ``--jobs`` starts on one machine).

    It first writes who it is (:func:`hpo._study.worker_identity`) beside the spec, so the driver can
    take back its trial when the task ends mid-trial on another node (see :meth:`SlurmEngine._task_ended`).
    """
    from hpo._study import worker_identity
    from hpo._worker import main

    identity_file(Path(spec_json).parent, index).write_text(json.dumps(worker_identity()))
    return main([spec_json, str(index)])


def identity_file(folder: Path, index: int) -> Path:
    return folder / f"task-{index}.json"


def make_executor(options: SlurmOptions, folder: Path, jobs: int, name: str) -> Any:
    """submitit's SLURM executor (or its local one with ``options.local``), configured for the array.

    Raises:
        UsageError: SLURM is not installed here, or submitit refuses a parameter.
    """
    import submitit

    try:
        if options.local:
            executor = submitit.LocalExecutor(folder=folder)
            # The local executor's own defaults would end a task after 2 minutes.
            executor.update_parameters(timeout_min=options.time_min, gpus_per_node=options.gpus_per_task or 0,
                                       setup=options.setup)
            return executor
        executor = submitit.SlurmExecutor(folder=folder)
    except RuntimeError as exc:  # "Could not detect srun"
        raise UsageError(f"--cluster slurm: {exc}; run it on a SLURM login node, or try it here with "
                         "--slurm-local") from None
    try:
        executor.update_parameters(**options.sbatch_parameters(jobs, name))
    except ValueError as exc:
        raise UsageError(f"--slurm-*: submitit refused a parameter: {str(exc).splitlines()[0]}") from None
    return executor


def check_storage(spec: StudySpec, options: SlurmOptions) -> None:
    """Refuses a study storage the cluster's nodes cannot share (the embedded journal file)."""
    from hpo._storage import is_embedded

    if is_embedded(spec) and not options.local:
        raise UsageError(f"{spec.source}: study.storage: --cluster slurm needs a storage every node reaches "
                         "(postgresql://…, or grpc://HOST:PORT of an `hpo proxy`), found the embedded store; "
                         "set study.storage or pass --storage")


def record_jobs(study: Any, job_ids: list[str]) -> None:
    """Adds this submission's job ids to the study's record of SLURM jobs (``hpo status`` shows them)."""
    from hpo._keys import SLURM_JOBS
    from hpo._optuna_compat import storage_of, study_id

    storage = storage_of(study)
    earlier = storage.get_study_system_attrs(study_id(study)).get(SLURM_JOBS, [])
    entry = {"jobs": job_ids, "submitted": datetime.datetime.now().isoformat(timespec="seconds")}
    storage.set_study_system_attr(study_id(study), SLURM_JOBS, [*earlier, entry])


def describe_jobs(study: Any) -> str | None:
    """``SLURM jobs: 123_0 … 123_3 (submitted …)`` for ``hpo status``; None for a study never run on SLURM."""
    from hpo._keys import SLURM_JOBS
    from hpo._optuna_compat import storage_of, study_id

    entries = storage_of(study).get_study_system_attrs(study_id(study)).get(SLURM_JOBS)
    if not entries:
        return None
    lines = [f"{', '.join(e['jobs'])} (submitted {e['submitted']})" for e in entries]
    return "SLURM jobs: " + "; ".join(lines)


class SlurmEngine:
    """Submits the array and follows it: the engine (:mod:`hpo.cluster`) :func:`hpo._run.run_study` calls."""

    def __init__(self, options: Mapping[str, Any] | SlurmOptions) -> None:
        self.options = options if isinstance(options, SlurmOptions) else options_from_args(options)

    def prepare(self, spec: StudySpec) -> None:
        """Refuses, before the study is opened, a store the nodes cannot share and flags submitit refuses."""
        check_storage(spec, self.options)
        make_executor(self.options, spec.study_dir / "slurm" / "%j", 1, f"hpo-{spec.study.name}")

    def describe(self) -> str:
        return "local processes (--slurm-local)" if self.options.local else "a SLURM job array"

    def close(self) -> None:
        """Nothing to disconnect: the array's tasks end with the study or were cancelled."""

    def run(self, spec: StudySpec, jobs: int, study: Any, progress: StudyProgress, tracker: Any) -> tuple[int, str]:
        from hpo._signals import Interrupted

        folder = spec.study_dir / "slurm"
        folder.mkdir(parents=True, exist_ok=True)
        spec_json = (folder / "spec.json").resolve()  # tasks may start in another folder
        spec_json.write_text(json.dumps({"source": spec.source, "raw": spec.raw}, default=str))
        for stale in folder.glob("task-*.json"):  # identities of an earlier array's tasks
            stale.unlink()
        executor = make_executor(self.options, folder / "%j", jobs, f"hpo-{spec.study.name}")
        array = executor.map_array(worker_task, [str(spec_json)] * jobs, list(range(jobs)))
        record_jobs(study, [job.job_id for job in array])
        progress.console.print(f"submitted {jobs} worker(s) as {'local processes' if self.options.local else 'SLURM'} "
                               f"job(s) {', '.join(job.job_id for job in array)}; logs in {folder}", markup=False)
        try:
            return self._follow(spec, study, progress, array)
        except Interrupted:
            from hpo._study import recover_orphans

            cancel(array)
            wait_for(array, CANCEL_GRACE_S)
            # Tasks killed before they could re-queue their trials (SLURM's KillWait, or a slow node):
            for index, job in enumerate(array):
                if job.done():
                    self._task_ended(spec, study, index, job.job_id)
            recover_orphans(study, spec)
            raise

    def _follow(self, spec: StudySpec, study: Any, progress: StudyProgress, array: list[Any]) -> tuple[int, str]:
        from hpo._run import study_is_complete
        from hpo._study import recover_orphans
        from hpo._worker import STUDY_COMPLETE

        ended: set[int] = set()
        while len(ended) < len(array):
            time.sleep(POLL_S)
            progress.update(study)
            for index, job in enumerate(array):
                if index not in ended and job.done():
                    ended.add(index)
                    self._task_ended(spec, study, index, job.job_id)
        recover_orphans(study, spec)  # a task killed by SLURM (time limit, node lost) left its trial RUNNING
        if study_is_complete(study, spec):
            return 0, STUDY_COMPLETE
        states = ", ".join(sorted({job.state for job in array}))
        return 1, (f"the SLURM workers ended before the study did (job states: {states}); see their logs in "
                   f"{array[0].paths.folder}; run the same command again to go on")

    @staticmethod
    def _task_ended(spec: StudySpec, study: Any, index: int, job_id: str) -> None:
        """Fails and re-queues the trial a task left RUNNING (killed by SLURM: time limit, node lost).

        Needed where no heartbeat notices it: through an ``hpo proxy`` there is none, and
        :func:`hpo._study.recover_orphans` only judges workers on this host.
        """
        from optuna.trial import TrialState

        from hpo._keys import WORKER, WORKER_START
        from hpo._storage import study_lock
        from hpo._study import fail_running_trial, requeue

        path = identity_file(spec.study_dir / "slurm", index)
        if not path.exists():  # the task never started
            return
        who = json.loads(path.read_text())
        reason = f"SLURM task {job_id} ended during the trial"
        with study_lock(spec):
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                mine = (trial.user_attrs.get(WORKER), trial.user_attrs.get(WORKER_START)) == (who[WORKER],
                                                                                             who[WORKER_START])
                if mine and fail_running_trial(study, trial, reason):
                    requeue(study, trial, spec, reason)


def cancel(array: list[Any]) -> None:
    """Cancels every task of the array that still runs (``scancel``; SIGINT for local tasks)."""
    import contextlib

    for job in array:
        if not job.done():
            with contextlib.suppress(Exception):  # already gone between the check and the cancel
                job.cancel(check=False)


def wait_for(array: list[Any], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(job.done() for job in array):
        time.sleep(POLL_S)


def options_from_args(args: Any) -> SlurmOptions:
    """The ``--slurm-*`` flags of ``hpo run`` (see :func:`add_slurm_arguments`), from the parsed
    arguments or a mapping of them (what :func:`hpo.cluster.make_engine` passes)."""
    get = args.get if isinstance(args, Mapping) else (lambda name, default=None: getattr(args, name, default))
    return SlurmOptions(partition=get("slurm_partition"), gpus_per_task=get("slurm_gpus_per_task"),
                        cpus_per_task=get("slurm_cpus_per_task"), mem_gb=get("slurm_mem_gb"),
                        time_min=get("slurm_time") or DEFAULT_TIME_MIN, account=get("slurm_account"),
                        qos=get("slurm_qos"), constraint=get("slurm_constraint"),
                        setup=list(get("slurm_setup") or []), local=bool(get("slurm_local")))


SLURM_FLAGS = ("slurm_partition", "slurm_gpus_per_task", "slurm_cpus_per_task", "slurm_mem_gb", "slurm_time",
               "slurm_account", "slurm_qos", "slurm_constraint", "slurm_setup", "slurm_local")


def add_slurm_arguments(parser: Any, positive_int: Any, positive_float: Any) -> None:
    """``hpo run``'s ``--slurm-*`` flags (used with ``--cluster slurm``)."""
    group = parser.add_argument_group("SLURM (with --cluster slurm: --jobs N workers as one job array)")
    group.add_argument("--slurm-partition", metavar="P", help="partition of the array's tasks")
    group.add_argument("--slurm-gpus-per-task", type=positive_int, metavar="G", help="GPUs per worker")
    group.add_argument("--slurm-cpus-per-task", type=positive_int, metavar="C", help="CPUs per worker")
    group.add_argument("--slurm-mem-gb", type=positive_float, metavar="GB", help="memory per worker")
    group.add_argument("--slurm-time", type=positive_int, metavar="MINUTES",
                       help=f"time limit of each worker in minutes (default {DEFAULT_TIME_MIN}); a worker "
                            "stopped by it fails and re-queues its trial")
    group.add_argument("--slurm-account", metavar="A", help="account to charge")
    group.add_argument("--slurm-qos", metavar="Q", help="quality of service")
    group.add_argument("--slurm-constraint", metavar="C", help="node features the tasks need")
    group.add_argument("--slurm-setup", action="append", default=[], metavar="LINE",
                       help="a shell line run before each worker, e.g. 'module load cuda' (repeatable)")
    group.add_argument("--slurm-local", action="store_true",
                       help="run the array's tasks as processes on this machine (submitit's local executor): "
                            "try a SLURM setup without a cluster")


def check_slurm_flags(args: Any) -> None:
    """Refuses ``--slurm-*`` flags without ``--cluster slurm`` (they would reach nothing)."""
    given = [f"--{name.replace('_', '-')}" for name in SLURM_FLAGS if getattr(args, name, None) not in (None, [], False)]
    if given and getattr(args, "cluster", None) != "slurm":
        raise UsageError(f"{', '.join(given)}: only used with --cluster slurm, which was not given")
