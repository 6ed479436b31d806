"""The Optuna study behind a spec: creating or resuming it, the global trial cap, dead workers."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import _keys as keys
from hpo._components import make_pruner, make_sampler, worker_seed
from hpo._errors import UsageError
from hpo._keys import FAIL_REASON, WORKER
from hpo._space import grid_points
from hpo._warm_start import apply_warm_start, earlier_studies
from hpo._spec import StudySpec
from hpo._storage import describe_storage, is_embedded, journal_path, open_storage, study_lock, trial_state_counts

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo.tracking import Tracker, TrialOutcome

# Which machine a worker is on. Override with HPO_WORKER_HOST where hostnames are not unique
# (containers): trials of a worker on *this* host whose process is gone are recovered at once,
# others only when their heartbeat stops (RDB storage).
HOST = os.environ.get("HPO_WORKER_HOST") or socket.gethostname()


def process_start_ticks(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a live process from a reused pid), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


# Extra user attrs of every trial this process claims, set by a cluster engine's worker (its node,
# its task id): :func:`label_worker`.
_WORKER_LABELS: dict[str, str] = {}


def label_worker(labels: Mapping[str, str]) -> None:
    """Every trial this process claims from now on carries ``labels`` as user attrs (replacing
    earlier labels: a cluster engine may reuse the process for another worker)."""
    _WORKER_LABELS.clear()
    _WORKER_LABELS.update(labels)


def worker_identity() -> dict[str, str]:
    """User attrs that let any process on this host tell whether a trial's worker still lives,
    and the labels of :func:`label_worker`.

    In this order: a trial with ``worker`` already has ``worker_start`` (see :func:`worker_is_dead`).
    """
    return {**_WORKER_LABELS, keys.WORKER_START: process_start_ticks(os.getpid()) or "",
            keys.WORKER: f"{HOST}:{os.getpid()}"}


UNCLAIMED_GRACE = datetime.timedelta(seconds=60)


def worker_is_dead(trial: FrozenTrial) -> bool:
    """True when the trial's worker ran on this host and that process is gone, or when no worker
    ever claimed the running trial (its process died between creating it and saying whose it is)."""
    if keys.WORKER not in trial.user_attrs or keys.WORKER_START not in trial.user_attrs:
        start = trial.datetime_start
        return start is not None and datetime.datetime.now() - start > UNCLAIMED_GRACE
    host, _, pid = str(trial.user_attrs[keys.WORKER]).rpartition(":")
    if host != HOST or not pid.isdigit():
        return False
    return process_start_ticks(int(pid)) != trial.user_attrs.get(keys.WORKER_START)


def study_info(spec: StudySpec) -> dict[str, Any]:
    """What describes a study in its user attrs and in the tracker's parent run."""
    from hpo import __version__

    space_file = spec.space_file
    digest = hashlib.sha256(space_file.read_bytes()).hexdigest() if space_file else None
    return {
        "study_name": spec.study.name,
        "experiment": spec.experiment,
        "sampler": spec.sampler.name,
        "pruner": spec.pruner.name,
        keys.STUDY_OBJECTIVE: spec.objective.name,
        keys.STUDY_SPACE_FILE: str(space_file.resolve()) if space_file else None,
        "space_sha256": digest,
        keys.STUDY_GIT_SHA: git_sha(space_file.parent if space_file else Path.cwd()),
        "hpo_version": __version__,
        keys.STUDY_METRICS: list(spec.study.metrics),
        keys.STUDY_DIRECTIONS: list(spec.study.directions),
    }


def git_sha(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def open_study(spec: StudySpec, worker_index: int = 0, create: bool = True, check_space: bool = True) -> optuna.Study:
    """Loads the spec's study, creating it (and enqueueing a grid) on first use.

    With ``create=False`` the study is opened read-only: nothing is created or written, not even
    a lock file, so ``status``, ``best`` and ``export`` leave the store byte-identical.
    ``check_space=False`` skips comparing the study with the spec (a warm start's earlier study,
    read under the new study's spec, is not expected to match it).

    Raises:
        UsageError: ``create`` is False and no such study exists.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if not create:
            study = _load_read_only(spec)
            if check_space:
                _check_compatible(study, spec, reading=True)
            return study
        if spec.warm_start and is_embedded(spec) and not journal_path(spec).exists():
            earlier_studies(spec)  # a new study: a missing earlier one is refused before its folder exists
        # One process at a time: the first RDB connection creates the tables, the first worker the study.
        with study_lock(spec):
            storage = open_storage(spec, on_stale_trial=lambda study, trial: requeue(study, trial, spec, HEARTBEAT_STOPPED))
            existed = spec.study.name in {s.study_name for s in storage.get_all_studies()}
            if existed:  # create_study(load_if_exists=True) would append a "create study" record each time
                study = optuna.load_study(study_name=spec.study.name, storage=storage)
            else:
                earlier = earlier_studies(spec)  # first: a missing one must not leave a half-made study
                study = optuna.create_study(storage=storage, study_name=spec.study.name,
                                            directions=list(spec.study.directions))
                _initialise(study, spec, earlier)
            _check_compatible(study, spec)
    except Exception as exc:  # noqa: BLE001 - a database that cannot be reached is the user's to fix
        if isinstance(exc, ImportError) and spec.study.storage is not None:
            # the URL's database driver is not installed: SQLAlchemy's ModuleNotFoundError, or
            # Optuna's "Failed to import DB access module" wrapping it
            inner = exc.__cause__ or exc.__context__
            missing = inner if isinstance(inner, ImportError) else exc
            raise UsageError(f"cannot open the study storage {describe_storage(spec)}: its database driver is "
                             f"not installed ({missing}); install it (pip) or use postgresql:// or "
                             "sqlite:///") from None
        if not type(exc).__module__.startswith(("sqlalchemy", "optuna.exceptions", "psycopg")):
            raise
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise UsageError(f"cannot open the study storage {describe_storage(spec)}: {reason}; check the URL "
                         "and that the database server runs") from None
    n_existing = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec.sampler.name, spec.sampler.options,
                                 worker_seed(spec.study.seed, n_existing, worker_index), spec.source)
    study.pruner = make_pruner(spec.pruner.name, spec.pruner.options, spec.source)
    return study


def _load_read_only(spec: StudySpec) -> optuna.Study:
    """The existing study, through a storage that cannot write; no sampler (readers do not sample)."""
    import optuna

    storage = open_storage(spec, read_only=True)
    try:
        return optuna.load_study(study_name=spec.study.name, storage=storage)
    except KeyError:
        raise UsageError(f"no study named {spec.study.name!r} in {describe_storage(spec)}; "
                         f"run `hpo run {spec.source}` first") from None


def _initialise(study: optuna.Study, spec: StudySpec, earlier: Mapping[str, optuna.Study]) -> None:
    for key, value in study_info(spec).items():
        study.set_user_attr(key, value)
    study.set_user_attr(keys.STUDY_FIXED, json.loads(json.dumps(spec.objective.fixed, default=str)))
    study.set_user_attr(keys.STUDY_SEED, spec.study.seed)
    study.set_user_attr(keys.STUDY_SPEC, json.loads(json.dumps(spec.raw, default=str)))
    apply_warm_start(study, spec, earlier)  # first: warm-start configs run (or count) before anything sampled
    if spec.sampler.name == "grid":
        for point in grid_points(spec.space):
            study.enqueue_trial(point, user_attrs={keys.GRID_POINT: True})


def _check_compatible(study: optuna.Study, spec: StudySpec, reading: bool = False) -> None:
    """Refuses a spec the existing study cannot go on with (directions, objective, metrics, space;
    see hpo._compat_space). Readers are only warned of a changed objective or metric: what they
    read is the study's own."""
    stored = [d.name.lower() for d in study.directions]
    if stored != list(spec.study.directions):
        raise UsageError(f"study {spec.study.name!r} already exists with directions {stored}, but the space "
                         f"file asks for {list(spec.study.directions)}; rename the study or delete "
                         f"{spec.study_dir}")
    for what, key, asked in (("objective", keys.STUDY_OBJECTIVE, spec.objective.name),
                             ("metrics", keys.STUDY_METRICS, list(spec.study.metrics))):
        was = study.user_attrs.get(key)
        if was is None or was == asked:  # None: a study from before hpo recorded it
            continue
        if reading:
            print(f"warning: study {spec.study.name!r} was made with {what} {was!r}; the space file now says "
                  f"{asked!r}: what follows is the study's", file=sys.stderr, flush=True)
            continue
        if not has_trials(study, "COMPLETE", "PRUNED"):  # only failed ones (a misnamed metric): no values
            study.set_user_attr(key, asked)
            continue
        raise UsageError(f"study {spec.study.name!r} already exists with {what} {was!r}, but the space file "
                         f"asks for {asked!r}: the new values would not compare with its trials'. Give the "
                         f"study a new name (study.name, or --set study.name=NEW) or delete {spec.study_dir}")
    from hpo._compat_space import check_space

    accepted = check_space(study, spec)
    if accepted:  # Optuna goes on with these; say so, since the study now mixes two spaces
        what = "differs from the space file's" if reading else "goes on with a changed space"
        print(f"warning: study {spec.study.name!r} {what}: {'; '.join(accepted)}", file=sys.stderr, flush=True)


def has_trials(study: optuna.Study, *states: str) -> bool:
    """Whether the study has a trial in one of ``states`` (names: ``"COMPLETE"``, ``"RUNNING"``, ...)."""
    from optuna.trial import TrialState

    return bool(study.get_trials(deepcopy=False, states=tuple(TrialState[s] for s in states)))


LOST_PREFIX = keys.LOST_PREFIX


def lost_trials(study: optuna.Study) -> set[int]:
    """Trials that failed because their worker died or was interrupted, not because of their config.

    They do not count against ``n_trials``: a retry with the same params, or a new trial once
    ``max_retries`` is used up, takes their place.
    """
    from hpo._optuna_compat import storage_of, study_id

    attrs = storage_of(study).get_study_system_attrs(study_id(study))
    return {int(key.removeprefix(LOST_PREFIX)) for key in attrs if key.startswith(LOST_PREFIX)}


def record_run_id(study: optuna.Study, trial: optuna.Trial, run_id: str) -> None:
    """Keys the trial's tracker run on its record: the trial's user attr ``mlflow_run_id``, or, when
    the run was created after the trial ended (the tracker was still starting; Optuna refuses
    attrs of finished trials), the study system attr ``hpo:mlflow_run:<number>`` (:func:`run_id_of`)."""
    import optuna

    from hpo._optuna_compat import storage_of, study_id, trial_id

    storage = storage_of(study)
    if not storage.get_trial(trial_id(trial)).state.is_finished():
        try:
            trial.set_user_attr(keys.MLFLOW_RUN_ID, run_id)
            return
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # it ended meanwhile
    storage.set_study_system_attr(study_id(study), f"{keys.MLFLOW_RUN_PREFIX}{trial.number}", run_id)


def run_id_of(study: optuna.Study, trial: FrozenTrial) -> str | None:
    """The trial's tracker run id, wherever :func:`record_run_id` put it (None: no run)."""
    return run_ids_of(study, [trial]).get(trial.number)


def run_ids_of(study: optuna.Study, trials: Sequence[FrozenTrial]) -> dict[int, str]:
    """:func:`run_id_of` for many trials (one read of the study's attrs): number -> run id, for
    those that have a run."""
    from hpo._optuna_compat import storage_of, study_id

    ids = {t.number: t.user_attrs[keys.MLFLOW_RUN_ID] for t in trials if keys.MLFLOW_RUN_ID in t.user_attrs}
    if len(ids) < len(trials):
        attrs = storage_of(study).get_study_system_attrs(study_id(study))
        ids.update({t.number: attrs[f"{keys.MLFLOW_RUN_PREFIX}{t.number}"] for t in trials
                    if t.number not in ids and f"{keys.MLFLOW_RUN_PREFIX}{t.number}" in attrs})
    return {number: run_id for number, run_id in ids.items() if run_id is not None}


def cap_reached(study: optuna.Study, spec: StudySpec, counts: Mapping[str, int]) -> bool:
    """Whether the study may start no more trials (:func:`trials_left` is 0)."""
    return trials_left(study, spec, counts) == 0


def trials_used(study: optuna.Study, counts: Mapping[str, int]) -> int:
    """The trials that count toward ``n_trials``: all but the queued ones and those lost to dead or
    interrupted workers (:func:`lost_trials`)."""
    lost = lost_trials(study) if counts["FAIL"] else set()
    return sum(counts.values()) - counts["WAITING"] - len(lost)


def trials_left(study: optuna.Study, spec: StudySpec, counts: Mapping[str, int]) -> int:
    """How many more trials the study may start: ``n_trials`` less the trials that exist besides the
    queued ones, not counting trials lost to dead workers; a grid also no more than its points still
    queued (WAITING).

    ``counts``: trials by state name (:func:`hpo._storage.trial_state_counts`).
    """
    left = spec.study.n_trials - trials_used(study, counts)
    if spec.sampler.name == "grid":
        left = min(left, counts["WAITING"])
    return max(left, 0)


def next_trial(study: optuna.Study, spec: StudySpec) -> optuna.Trial | None:
    """Creates (or takes a queued) trial while the study's cap allows; None when the study is done.

    Counting and creating run under the study lock, so concurrent workers never exceed ``n_trials``
    together; the lock covers only that (what ``study.ask()`` does after it, reading the trial back
    and the sampler's ``before_trial``, runs outside, since the lock serialises all workers).
    Trials lost to dead or interrupted workers do not count (:func:`lost_trials`).
    """
    import optuna

    from hpo._beat import first_beat
    from hpo._optuna_compat import first_heartbeat, pop_waiting_trial_id, reset_trial_cache, storage_of, study_id

    with study_lock(spec):
        counts = trial_state_counts(spec, study)
        if cap_reached(study, spec, counts):
            return None
        trial_id = pop_waiting_trial_id(study) if counts["WAITING"] else None
        queued = trial_id is not None
        if not queued:
            trial_id = storage_of(study).create_new_trial(study_id(study), template_trial=_claimed_trial())
    with released_on_interrupt(study, spec, trial_id):
        first_heartbeat(study, trial_id)  # from now on a silent worker's trial is found on any machine
        first_beat(study, spec, trial_id)  # the same through the proxy
        reset_trial_cache(study)  # as study.ask(): samplers re-read the trials once per trial
        trial = optuna.Trial(study, trial_id)
        if queued:  # until these land, recovery leaves the trial alone (see worker_is_dead)
            for key, value in worker_identity().items():
                trial.set_user_attr(key, value)
    return trial


@contextlib.contextmanager
def released_on_interrupt(study: optuna.Study, spec: StudySpec, trial_id: int):
    """An interrupt (SIGINT/SIGTERM/SIGHUP, Ctrl-C) inside fails and re-queues the RUNNING trial
    ``trial_id`` that this process claimed, then goes on up.

    For the steps between claiming a trial and running its objective: a signal landing there would
    otherwise leave the trial RUNNING under a live-looking worker until a later run recovered it.
    """
    try:
        yield
    except KeyboardInterrupt as interrupt:
        release_interrupted(study, spec, trial_id, interrupt)
        raise


def release_interrupted(study: optuna.Study, spec: StudySpec, trial_id: int, interrupt: BaseException) -> str:
    """Fails and re-queues (not counting as a retry) the trial an interrupt stopped, unless another
    process ended it first; returns the reason recorded."""
    from hpo._optuna_compat import storage_of

    reason = f"interrupted ({type(interrupt).__name__}: {interrupt})"
    running = storage_of(study).get_trial(trial_id)
    if fail_running_trial(study, running, reason):
        requeue(study, running, spec, reason, counts=False)
    return reason


def _claimed_trial() -> FrozenTrial:
    """A new RUNNING trial that already says whose it is: created and claimed in one record, so a
    worker killed (or a disk filled) right after creating it never leaves a trial of unknown worker,
    which recovery would only take back after :data:`UNCLAIMED_GRACE`."""
    from optuna.trial import FrozenTrial, TrialState

    return FrozenTrial(number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.datetime.now(),
                       datetime_complete=None, params={}, distributions={}, user_attrs=worker_identity(),
                       system_attrs={}, intermediate_values={}, trial_id=-1)


def requeue(study: optuna.Study, trial: FrozenTrial, spec: StudySpec, reason: str, *, counts: bool = True) -> bool:
    """Marks a trial lost (its worker died or was interrupted) and queues its params again.

    The params are queued at most ``study.max_retries`` times; after that the lost trial's slot
    goes to a newly sampled trial. Returns True if the params were queued.

    Args:
        counts: whether this retry uses up one of ``study.max_retries`` (an interrupt does not).
    """
    from hpo._optuna_compat import queued_params, storage_of, study_id

    storage_of(study).set_study_system_attr(study_id(study), f"{LOST_PREFIX}{trial.number}", reason[:500])
    retries = _retries_after(trial, counts)
    if retries > spec.study.max_retries:
        return False
    origin = trial.user_attrs.get(keys.RETRY_ORIGIN, trial.number)
    study.enqueue_trial(
        {**queued_params(trial), **trial.params},  # a queued trial lost before it suggested them
        user_attrs={keys.RETRY_OF: trial.number, keys.RETRY_ORIGIN: origin, keys.RETRY_COUNT: retries,
                    keys.RETRY_REASON: reason},
    )
    return True


def fail_running_trial(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Marks a RUNNING trial FAIL with its reason; False if another process finished it first."""
    import optuna
    from optuna.trial import TrialState

    from hpo._optuna_compat import storage_of, trial_id

    storage = storage_of(study)  # the public Study API can only tell trials this process asked
    try:
        storage.set_trial_user_attr(trial_id(trial), FAIL_REASON, reason)
        return storage.set_trial_state_values(trial_id(trial), state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def recover_orphans(study: optuna.Study, spec: StudySpec, tracker: Tracker | None = None) -> list[int]:
    """Fails and re-queues trials whose worker died; closes their tracker runs. Returns their numbers."""
    import optuna

    from hpo._beat import beats_stopped
    from hpo._optuna_compat import storage_of

    silent: list[FrozenTrial] = []
    if not isinstance(storage_of(study), optuna.storages.JournalStorage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # RDB heartbeat; re-queues via open_study's callback
        silent = never_beat(study, spec) + beats_stopped(study, spec)
    with study_lock(spec):
        recovered = _fail_and_requeue(study, spec, orphaned_trials(study),
                                      lambda t: f"worker {t.user_attrs.get(WORKER)} died during the trial")
        recovered += _fail_and_requeue(study, spec, silent, lambda t: HEARTBEAT_STOPPED)
    _reconcile_tracker(study, tracker)
    return recovered


HEARTBEAT_STOPPED = "heartbeat stopped"  # the retry reason of a trial whose heartbeat stopped (or never began)


def never_beat(study: optuna.Study, spec: StudySpec) -> list[FrozenTrial]:
    """RUNNING trials that this process has seen without any heartbeat for longer than the grace.

    Their worker died after creating the trial and before recording its first heartbeat, which
    Optuna's stale check never fails (it skips trials without one); a live worker records it
    within milliseconds (:func:`next_trial`).
    """
    from hpo._beat import unchanged_past_grace
    from hpo._optuna_compat import running_trials_without_heartbeat, trial_id

    without = dict.fromkeys(running_trials_without_heartbeat(study))  # trial id -> None: nothing to change
    silent = unchanged_past_grace("no heartbeat", study, spec, without)
    return [t for t in study.get_trials(deepcopy=False) if trial_id(t) in silent] if silent else []


def recover_trials_of(study: optuna.Study, spec: StudySpec, tracker: Tracker | None, label: tuple[str, str],
                      reason: str, *, counts: bool = True) -> list[int]:
    """Fails and re-queues the RUNNING trials whose user attr ``label[0]`` is ``label[1]``: those of
    one worker that a cluster engine reports dead (lost with its node) or that it stopped.

    Unlike :func:`recover_orphans` this needs no heartbeat grace and no process on this host: the
    engine knows the worker is gone. Returns the trials' numbers.

    Args:
        counts: whether the retry uses up one of ``study.max_retries`` (an interrupt does not).
    """
    from optuna.trial import TrialState

    key, value = label
    with study_lock(spec):
        mine = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.user_attrs.get(key) == value]
        recovered = _fail_and_requeue(study, spec, mine, lambda t: reason, counts=counts)
    _reconcile_tracker(study, tracker)
    return recovered


def recovered_lines(study: optuna.Study, spec: StudySpec, recovered: Sequence[int], cause: str) -> list[str]:
    """What became of the trials just failed for ``cause``: re-queued with their params, or, their
    ``study.max_retries`` used up, left for newly sampled trials to take their places."""
    if not recovered:  # the usual case at every start: no need to read the trials
        return []
    retried = {t.user_attrs.get(keys.RETRY_OF) for t in study.get_trials(deepcopy=False)}
    again = [n for n in recovered if n in retried]
    replaced = [n for n in recovered if n not in retried]
    lines = [f"re-queued trials {again}: {cause}"] if again else []
    if replaced:
        lines.append(f"trials {replaced} failed: {cause}; not retried (study.max_retries is "
                     f"{spec.study.max_retries}), new trials take their places")
    return lines


def will_be_retried(trial: FrozenTrial, spec: StudySpec) -> bool:
    """Whether recovering this lost trial re-queues its params (the rule of :func:`requeue`)."""
    return _retries_after(trial, counts=True) <= spec.study.max_retries


def _retries_after(trial: FrozenTrial, counts: bool) -> int:
    """How many retries of its origin a retry of ``trial`` would be (``counts``: see :func:`requeue`)."""
    return int(trial.user_attrs.get(keys.RETRY_COUNT, 0)) + (1 if counts else 0)


def _fail_and_requeue(study: optuna.Study, spec: StudySpec, trials: Sequence[FrozenTrial],
                      reason_of: Any, *, counts: bool = True) -> list[int]:
    """Fails each trial still RUNNING and queues its params again; call it under the study lock."""
    recovered = []
    for trial in trials:
        reason = reason_of(trial)
        if fail_running_trial(study, trial, reason):
            requeue(study, trial, spec, reason, counts=counts)
            recovered.append(trial.number)
    return recovered


def _reconcile_tracker(study: optuna.Study, tracker: Tracker | None) -> None:
    """Closes the tracker runs of trials that ended without their worker (see ``Tracker.reconcile``)."""
    if tracker is not None:
        tracker.reconcile(*tracker_view(study))


def tracker_view(study: optuna.Study) -> tuple[set[int], dict[int, TrialOutcome]]:
    """What a tracker's reconciliation needs: the trials whose own worker may still write their
    records (running, or just finished in a live worker), and how each finished trial ended."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    live = {t.number for t in trials if t.state == TrialState.RUNNING or _may_still_write(t)}
    lost = lost_trials(study)
    fixed = study.user_attrs.get(keys.STUDY_FIXED)
    return live, {t.number: trial_outcome(t, lost, fixed) for t in trials if t.state.is_finished()}


def orphaned_trials(study: optuna.Study) -> list[FrozenTrial]:
    """RUNNING trials whose worker is dead (:func:`worker_is_dead`); reading only."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if worker_is_dead(t)]


FINAL_WRITE_GRACE = datetime.timedelta(seconds=60)


def _may_still_write(trial: FrozenTrial) -> bool:
    """A trial that just finished in a live worker whose tracker may not have written its end yet."""
    done = trial.datetime_complete
    return done is not None and datetime.datetime.now() - done < FINAL_WRITE_GRACE and not worker_is_dead(trial)


def trial_outcome(trial: FrozenTrial, lost: set[int], fixed: Mapping[str, Any] | None = None) -> TrialOutcome:
    """How a finished trial ended, for its tracker record (``fixed``: the study's fixed params)."""
    from hpo.tracking import TrialOutcome

    state = "KILLED" if trial.number in lost else trial.state.name
    return TrialOutcome(state, trial.values, trial.user_attrs.get(keys.FAIL_REASON),
                        trial.user_attrs.get(keys.PRUNED_AT_EPOCH), trial.params, fixed, trial.intermediate_values)


def consecutive_failures(trials: Sequence[FrozenTrial], lost: set[int]) -> int:
    """How many of the most recently finished trials failed in a row (lost trials aside)."""
    from optuna.trial import TrialState

    finished = sorted(
        (t for t in trials if t.state.is_finished() and t.number not in lost and t.datetime_complete),
        key=lambda t: t.datetime_complete,
    )
    count = 0
    for t in reversed(finished):
        if t.state != TrialState.FAIL:
            break
        count += 1
    return count
