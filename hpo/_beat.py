"""A worker's heartbeat through any storage: a counter in the running trial's system attributes.

Optuna's heartbeat lives in the RDB storage's own table, so a worker that reaches the database
through hpo's gRPC proxy (``grpc://``) had none: a worker that died on another machine kept its
trial RUNNING until ``hpo run`` ran again there. Through the proxy the worker now counts
(:data:`hpo._keys.BEAT`) every ``study.heartbeat_interval`` seconds while its trial runs, and
anyone who recovers orphans fails and re-queues a RUNNING trial whose count it has seen standing
still (or absent) for longer than ``study.heartbeat_grace``, by its own monotonic clock: the
machines' clocks need not agree.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from hpo import _keys as keys

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo._spec import StudySpec


def counts_beats(spec: StudySpec) -> bool:
    """Whether workers of this study beat through trial attributes (storages without Optuna's heartbeat)."""
    from hpo._storage import is_proxy

    return is_proxy(spec.study.storage)


def first_beat(study: optuna.Study, spec: StudySpec, trial_id: int) -> None:
    """Records a new trial's first beat now (through the proxy; nothing on other storages), as
    :func:`hpo._optuna_compat.first_heartbeat` does for Optuna's heartbeat."""
    if counts_beats(spec):
        _beat(study, trial_id, 1)


def _beat(study: optuna.Study, trial_id: int, count: int) -> None:
    from hpo._optuna_compat import storage_of

    storage_of(study).set_trial_system_attr(trial_id, keys.BEAT, count)


@contextlib.contextmanager
def beating(study: optuna.Study, spec: StudySpec, trial_id: int) -> Iterator[None]:
    """Counts the trial's beats in a daemon thread while the block runs (nothing on other storages)."""
    if not counts_beats(spec):
        yield
        return
    stop = threading.Event()

    def run() -> None:
        count = 1  # first_beat recorded the first
        while not stop.wait(spec.study.heartbeat_interval):
            count += 1
            with contextlib.suppress(Exception):  # a missed beat is judged by the grace, not here
                _beat(study, trial_id, count)

    thread = threading.Thread(target=run, name="hpo-beat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def beats_stopped(study: optuna.Study, spec: StudySpec) -> list[FrozenTrial]:
    """RUNNING trials whose beat count this process has seen stand still (or absent) for longer
    than the grace; [] on storages where Optuna's heartbeat does this."""
    from optuna.trial import TrialState

    from hpo._optuna_compat import trial_id

    if not counts_beats(spec):
        return []
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    silent = unchanged_past_grace("beat count", study, spec,
                                  {trial_id(t): t.system_attrs.get(keys.BEAT) for t in running})
    return [t for t in running if trial_id(t) in silent]


# Per watch (what is watched, the study's storage and id: one process may watch several studies),
# each trial's last token this process saw and when (its monotonic clock) it first saw that token.
_CLOCKS: dict[tuple[str, str, int], dict[int, tuple[Any, float]]] = {}


def unchanged_past_grace(what: str, study: optuna.Study, spec: StudySpec, tokens: Mapping[int, Any]) -> set[int]:
    """The trial ids among ``tokens`` (trial id -> what this process sees of its liveness now: a
    beat count, or None for "no heartbeat yet") whose token it has seen unchanged for longer than
    ``study.heartbeat_grace``, by its own clock: the machines' clocks need not agree. Trials not in
    ``tokens`` are forgotten; ``what`` keeps two kinds of watch on one study apart."""
    from hpo._optuna_compat import study_id
    from hpo._storage import describe_storage

    now = time.monotonic()
    seen = _CLOCKS.setdefault((what, describe_storage(spec), study_id(study)), {})
    for gone in set(seen) - set(tokens):
        del seen[gone]
    silent = set()
    for tid, token in tokens.items():
        last = seen.get(tid)
        if last is None or last[0] != token:
            seen[tid] = (token, now)
        elif now - last[1] > spec.study.heartbeat_grace:
            silent.add(tid)
    return silent
