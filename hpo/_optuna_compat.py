"""The one place hpo touches Optuna's private API; everything else uses Optuna's public API.

hpo needs a few things Optuna keeps private: taking a queued trial without ``study.ask()``'s
sampling, the study's storage and ids, the heartbeat thread, and the layout of the ``trials``
table. Each is a small named function here, and ``tests/storage/test_optuna_compat.py`` checks
each against the installed Optuna, so an upgrade that changes one fails there with the name of the
private that moved, not somewhere deep in a worker.

Importing this module imports Optuna: import it inside functions from modules the CLI loads.
The supported range is checked at import (``SUPPORTED``); ``HPO_ALLOW_OPTUNA=1`` lets another
version run, with a warning.
"""

from __future__ import annotations

import os
import warnings
from contextlib import AbstractContextManager
from importlib import metadata
from typing import TYPE_CHECKING, Any

from hpo._versions import in_range, range_text

SUPPORTED = ((4, 2), (6, 0))  # >= 4.2, < 6
ALLOW_ENV = "HPO_ALLOW_OPTUNA"


class UnsupportedOptunaError(ImportError):
    """The installed Optuna is outside the range whose private API hpo was checked against."""


def check_version(version: str, allow: bool) -> None:
    """Raises :class:`UnsupportedOptunaError` for a version outside :data:`SUPPORTED` unless ``allow``."""
    if in_range(version, SUPPORTED):
        return
    message = (f"hpo supports optuna {range_text(SUPPORTED)}, but optuna {version} is installed; "
               f"install a supported version (pip install 'optuna{range_text(SUPPORTED)}'), or set "
               f"{ALLOW_ENV}=1 to try this one")
    if not allow:
        raise UnsupportedOptunaError(message)
    warnings.warn(f"{message} (trying it: {ALLOW_ENV} is set)", RuntimeWarning, stacklevel=2)


check_version(metadata.version("optuna"), os.environ.get(ALLOW_ENV) == "1")

import optuna  # noqa: E402 - only once the version is known to be supported
from optuna.storages.journal import JournalFileBackend  # noqa: E402

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = [
    "JournalFileBackend", "count_trials_by_state_sql", "first_heartbeat", "heartbeat", "make_grpc_server",
    "pop_waiting_trial_id", "queued_params", "running_trials_without_heartbeat", "settings_of",
    "reset_trial_cache", "storage_of", "study_id", "trial_id",
]


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes (``Study._storage``)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The study's id in its storage (``Study._study_id``)."""
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The trial's id in its storage (``Trial._trial_id`` / ``FrozenTrial._trial_id``)."""
    return trial._trial_id


def pop_waiting_trial_id(study: optuna.Study) -> int | None:
    """Claims a WAITING (enqueued) trial, making it RUNNING; None when none waits
    (``Study._pop_waiting_trial_id``, what ``study.ask()`` does before creating a trial)."""
    return study._pop_waiting_trial_id()


def queued_params(trial: FrozenTrial) -> dict[str, Any]:
    """The params a trial was enqueued with (``enqueue_trial``), which it holds in its system attrs
    (``fixed_params``) until each is suggested: a queued trial taken but not yet started has them
    there and none in ``trial.params``."""
    return dict(trial.system_attrs.get("fixed_params") or {})


def reset_trial_cache(study: optuna.Study) -> None:
    """Makes the study re-read its trials on the next sampler call, as ``study.ask()`` does
    (``Study._thread_local.cached_all_trials``)."""
    study._thread_local.cached_all_trials = None


def heartbeat(trial: optuna.Trial, study: optuna.Study) -> AbstractContextManager[Any]:
    """A context that beats the trial's heartbeat while it runs (a no-op on storages without one)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial_id(trial), storage_of(study))


def first_heartbeat(study: optuna.Study, trial_id_: int) -> None:
    """Records a new trial's first heartbeat now, in this thread (a no-op on storages without one).

    Optuna counts a RUNNING trial as stale only once it has a heartbeat, and its heartbeat thread
    records the first one from another thread after the trial starts: a worker killed in between
    left a trial that no other machine's heartbeat check would ever fail and re-queue.
    """
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = storage_of(study)
    if is_heartbeat_enabled(storage):
        storage.record_heartbeat(trial_id_)


# The options hpo sets on Optuna's components and checks afterwards, which Optuna keeps only as
# private attributes of the same name with a leading underscore.
_SETTINGS: dict[str, tuple[str, ...]] = {
    "TPESampler": ("constant_liar", "multivariate", "n_startup_trials"),
}


def settings_of(component: Any) -> dict[str, Any]:
    """The options a TPE sampler was built with (``TPESampler._constant_liar``, ``_multivariate``, ...)."""
    names = _SETTINGS.get(type(component).__name__)
    if names is None:
        raise TypeError(f"no settings known for {type(component).__name__}; known: {', '.join(_SETTINGS)}")
    return {name: getattr(component, f"_{name}") for name in names}


# Optuna's RDB schema: a trial's heartbeat is its one row in ``trial_heartbeats`` (none before the first beat).
running_without_heartbeat_sql = (
    "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
    "WHERE t.study_id = :id AND t.state = 'RUNNING' AND h.trial_id IS NULL")


def running_trials_without_heartbeat(study: optuna.Study) -> list[int]:
    """Ids of the study's RUNNING trials that have no heartbeat yet; [] on storages without heartbeats.

    Optuna's stale-trial check skips such trials for good, and a worker can die between creating a
    trial and recording its first heartbeat (:func:`first_heartbeat` narrows that gap, two writes
    cannot close it): the caller decides how long one may stay without a beat.
    """
    import sqlalchemy
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = storage_of(study)
    rdb = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in its _CachedStorage
    if not isinstance(rdb, optuna.storages.RDBStorage) or not is_heartbeat_enabled(storage):
        return []
    with rdb.engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(running_without_heartbeat_sql), {"id": study_id(study)})
        return [int(row[0]) for row in rows]


# Optuna's RDB schema: ``trials.state`` holds the TrialState name, ``trials.study_id`` the study.
count_trials_by_state_sql = "SELECT state, COUNT(*) FROM trials WHERE study_id = :id GROUP BY state"


def make_grpc_server(storage: optuna.storages.BaseStorage, host: str, port: int, thread_pool: Any) -> Any:
    """An unstarted ``grpc.Server`` serving Optuna's storage proxy service for ``storage``
    (``optuna.storages._grpc.server.make_server``: the public ``run_grpc_proxy_server`` starts and
    blocks, so hpo could not add its study-lock method beside Optuna's service)."""
    from optuna.storages._grpc.server import make_server

    return make_server(storage, host, port, thread_pool)
