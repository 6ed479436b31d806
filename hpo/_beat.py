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
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hpo import _keys as keys

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo._spec import StudySpec


def counts_beats(spec: StudySpec) -> bool:
    """Whether workers of this study beat through trial attributes (storages without Optuna's heartbeat)."""
    from hpo._storage import is_proxy

    return is_proxy(spec.study.storage)


def beat(study: optuna.Study, trial_id: int, count: int) -> None:
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
        count = 1  # next_trial recorded the first
        while not stop.wait(spec.study.heartbeat_interval):
            count += 1
            with contextlib.suppress(Exception):  # a missed beat is judged by the grace, not here
                beat(study, trial_id, count)

    thread = threading.Thread(target=run, name="hpo-beat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# Per study (its storage and id), the last count this process saw for each RUNNING trial and when
# (monotonic) it first saw that count.
_SEEN: dict[tuple[str, int], dict[int, tuple[int | None, float]]] = {}


def beats_stopped(study: optuna.Study, spec: StudySpec) -> list[FrozenTrial]:
    """RUNNING trials whose beat count this process has seen stand still (or absent) for longer
    than the grace; [] on storages where Optuna's heartbeat does this."""
    from optuna.trial import TrialState

    from hpo._optuna_compat import study_id, trial_id
    from hpo._storage import describe_storage

    if not counts_beats(spec):
        return []
    now, grace = time.monotonic(), spec.study.heartbeat_grace
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    seen = _SEEN.setdefault((describe_storage(spec), study_id(study)), {})
    for gone in set(seen) - {trial_id(t) for t in running}:
        del seen[gone]
    silent = []
    for t in running:
        count = t.system_attrs.get(keys.BEAT)
        last, since = seen.get(trial_id(t), (None, None))
        if since is None or count != last:
            seen[trial_id(t)] = (count, now)
        elif now - since > grace:
            silent.append(t)
    return silent
