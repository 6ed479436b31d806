"""Each shim of hpo/_optuna_compat.py against the installed Optuna: an upgrade that moves one of
Optuna's privates fails here, naming it, instead of somewhere deep in a worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from hpo import _optuna_compat as compat

optuna.logging.set_verbosity(optuna.logging.WARNING)


def changed(private: str) -> str:
    return f"Optuna {optuna.__version__} changed {private}; update hpo/_optuna_compat.py"


@pytest.fixture
def study() -> optuna.Study:
    return optuna.create_study(storage=optuna.storages.InMemoryStorage(), study_name="s")


def test_storage_of_and_study_id(study):
    storage = compat.storage_of(study)
    assert isinstance(storage, optuna.storages.BaseStorage), changed("Study._storage")
    assert storage.get_study_id_from_name("s") == compat.study_id(study), changed("Study._study_id")


def test_queued_params_of_a_queued_trial_taken_before_it_suggested_them(study):
    study.enqueue_trial({"x": 0.25, "n": 3})
    taken = compat.pop_waiting_trial_id(study)
    frozen = compat.storage_of(study).get_trial(taken)
    assert frozen.params == {} and compat.queued_params(frozen) == {"x": 0.25, "n": 3}, \
        changed("enqueue_trial's system attr fixed_params")


def test_trial_id_of_a_trial_and_a_frozen_trial(study):
    trial = study.ask()
    frozen = study.trials[0]
    storage = compat.storage_of(study)
    assert storage.get_trial(compat.trial_id(trial)).number == trial.number, changed("Trial._trial_id")
    assert storage.get_trial(compat.trial_id(frozen)).number == frozen.number, changed("FrozenTrial._trial_id")


def test_pop_waiting_trial_id_claims_the_queued_trial_once(study):
    study.enqueue_trial({"x": 1.0})
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    popped = compat.pop_waiting_trial_id(study)
    assert popped == compat.trial_id(waiting), changed("Study._pop_waiting_trial_id")
    assert compat.storage_of(study).get_trial(popped).state == TrialState.RUNNING, changed("Study._pop_waiting_trial_id")
    assert compat.pop_waiting_trial_id(study) is None, changed("Study._pop_waiting_trial_id")


def test_reset_trial_cache_makes_samplers_read_the_trials_again(study):
    """Samplers read ``Study._get_trials(use_cache=True)``; hpo creates trials without ``ask()``."""
    study.ask()
    assert len(study._get_trials(deepcopy=False, use_cache=True)) == 1, changed("Study._get_trials(use_cache=True)")
    compat.storage_of(study).create_new_trial(compat.study_id(study))
    assert len(study._get_trials(deepcopy=False, use_cache=True)) == 1, changed("Study._thread_local.cached_all_trials")
    compat.reset_trial_cache(study)
    assert len(study._get_trials(deepcopy=False, use_cache=True)) == 2, changed("Study._thread_local.cached_all_trials")


def test_heartbeat_records_beats_that_stop_with_the_context(tmp_path):
    """A trial that beat and then stopped is found stale; without the heartbeat it never is."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/hb.db", heartbeat_interval=1, grace_period=1)
        study = optuna.create_study(storage=storage)
        beating, silent = study.ask(), study.ask()
        with compat.heartbeat(beating, study):
            time.sleep(0.2)
        time.sleep(2.5)
        optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {beating.number: TrialState.FAIL, silent.number: TrialState.RUNNING}, changed(
        "optuna.storages._heartbeat.get_heartbeat_thread")


def test_count_trials_by_state_sql_matches_optunas_counts(tmp_path):
    import sqlalchemy

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/c.db")
    study = optuna.create_study(storage=storage)
    other = optuna.create_study(storage=storage)
    other.ask()  # another study's trial: not counted
    for value in (1.0, 2.0):
        study.tell(study.ask(), value)
    study.tell(study.ask(), state=TrialState.FAIL)
    study.tell(study.ask(), state=TrialState.PRUNED)
    study.ask()
    study.enqueue_trial({})
    expected = Counter(t.state.name for t in study.get_trials())
    engine = sqlalchemy.create_engine(storage.url)
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(compat.count_trials_by_state_sql), {"id": compat.study_id(study)})
        counted = Counter({str(state): int(n) for state, n in rows})
    assert counted == expected, changed("the RDB trials table (state, study_id)")


def test_journal_backend_base_has_what_hpo_builds_on(tmp_path):
    """hpo's backend uses the base's ``_file_path``, ``_lock`` and ``_log_number_offset`` (its reader
    replaces Optuna's, which must also ignore an unfinished last line: another process may be appending)."""
    path = tmp_path / "j.log"
    path.write_bytes(b'{"op_code": 0}\n{"op_co')
    lock = object()
    backend = compat.JournalFileBackend(str(path), lock_obj=lock)
    assert backend._file_path == str(path) and backend._lock is lock, changed("JournalFileBackend attributes")
    assert backend._log_number_offset == {0: 0}, changed("JournalFileBackend._log_number_offset")
    assert list(backend.read_logs(0)) == [{"op_code": 0}], changed("JournalFileBackend.read_logs")


@pytest.mark.parametrize("version,supported", [("4.2.0", True), ("5.0.0", True), ("5.9.1", True),
                                               ("4.1.0", False), ("6.0.0", False), ("6.0.0rc1", False)])
def test_check_version_accepts_the_supported_range_only(version, supported):
    if supported:
        compat.check_version(version, allow=False)
        return
    with pytest.raises(compat.UnsupportedOptunaError, match=f"optuna {version} is installed.*HPO_ALLOW_OPTUNA=1"):
        compat.check_version(version, allow=False)
    with pytest.warns(RuntimeWarning, match=version):
        compat.check_version(version, allow=True)


IMPORT_WITH_VERSION = """
import importlib.metadata as metadata
real = metadata.version
metadata.version = lambda name: "6.1.0" if name == "optuna" else real(name)
import hpo._optuna_compat
print("imported")
"""


@pytest.mark.parametrize("allow", [False, True])
def test_importing_with_an_unsupported_optuna_fails_unless_allowed(allow):
    env = {k: v for k, v in os.environ.items() if k != compat.ALLOW_ENV}
    if allow:
        env[compat.ALLOW_ENV] = "1"
    done = subprocess.run([sys.executable, "-c", IMPORT_WITH_VERSION], capture_output=True, text=True, env=env,
                          timeout=120)
    if allow:
        assert done.returncode == 0 and "imported" in done.stdout and "optuna 6.1.0" in done.stderr, done.stderr
    else:
        assert done.returncode != 0 and "UnsupportedOptunaError" in done.stderr and ">=4.2,<6.0" in done.stderr


def test_make_grpc_server_serves_optunas_storage_service(tmp_path):
    """hpo's proxy adds its lock method beside the service this server carries."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from _helpers import free_port

    storage = optuna.storages.get_storage(f"sqlite:///{tmp_path}/s.db")
    port = free_port()
    server = compat.make_grpc_server(storage, "127.0.0.1", port, ThreadPoolExecutor(max_workers=4))
    server.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            client = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        client.wait_server_ready(timeout=30)
        study = optuna.create_study(storage=client, study_name="through-grpc")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        assert len(storage.get_all_trials(storage.get_study_id_from_name("through-grpc"))) == 2, \
            changed("optuna.storages._grpc.server.make_server")
        client.close()
    finally:
        server.stop(grace=None)


def test_a_trial_is_found_stale_even_if_its_worker_died_before_its_heartbeat_thread_beat(write_space, tmp_path):
    """next_trial records the first heartbeat itself: a worker killed right after taking a trial
    (before the heartbeat thread's first beat) leaves a trial other machines can still recover."""
    import warnings

    from _helpers import base_space

    from hpo._spec import load_spec
    from hpo._study import next_trial, open_study

    doc = base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0,
                            "storage": f"sqlite:///{tmp_path}/hb.db", "heartbeat_interval": 1, "heartbeat_grace": 2})
    spec = load_spec(write_space(doc))
    study = open_study(spec)
    taken = next_trial(study, spec)  # and no heartbeat thread: the worker "died" here
    time.sleep(3.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    assert study.get_trials()[taken.number].state == TrialState.FAIL, changed(
        "optuna.storages._heartbeat.is_heartbeat_enabled / RDBStorage.record_heartbeat")


def test_running_trials_without_heartbeat_are_those_not_beaten_yet(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/nb.db", heartbeat_interval=60)
    study = optuna.create_study(storage=storage, study_name="nb")
    quiet, beaten, done = (study.ask() for _ in range(3))
    compat.first_heartbeat(study, compat.trial_id(beaten))
    study.tell(done, 1.0)
    assert compat.running_trials_without_heartbeat(study) == [compat.trial_id(quiet)], changed(
        "the trials / trial_heartbeats tables (hpo._optuna_compat.running_without_heartbeat_sql)")
    no_beats = optuna.create_study(storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/x.db"))
    no_beats.ask()
    assert compat.running_trials_without_heartbeat(no_beats) == []  # no heartbeat: nothing to judge


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_recovered_after_the_grace(write_space, tmp_path):
    """A worker on another machine created a trial and died before recording its first heartbeat:
    Optuna's stale check never fails such a trial; hpo does once it has stayed silent for the grace."""
    import warnings

    from _helpers import base_space

    from hpo._spec import load_spec
    from hpo._study import open_study, recover_orphans

    doc = base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0,
                            "storage": f"sqlite:///{tmp_path}/hb.db", "heartbeat_interval": 1, "heartbeat_grace": 2})
    spec = load_spec(write_space(doc))
    study = open_study(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        created = optuna.trial.create_trial(state=TrialState.RUNNING, params={"x": 1.5},
                                            distributions={"x": optuna.distributions.FloatDistribution(-5, 5)},
                                            user_attrs={"worker": "elsewhere:123", "worker_start": "1"})
    compat.storage_of(study).create_new_trial(compat.study_id(study), template_trial=created)
    assert recover_orphans(study, spec) == []  # first seen now, without a heartbeat
    time.sleep(1.0)
    assert recover_orphans(study, spec) == []  # a live worker would have beaten by now; not yet the grace
    time.sleep(1.5)
    assert recover_orphans(study, spec) == [0]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].system_attrs["fixed_params"] == {"x": 1.5}  # enqueue_trial: the same params again
    assert trials[1].user_attrs["retry_reason"] == "heartbeat stopped"


def test_settings_of_a_tpe_sampler():
    sampler = optuna.samplers.TPESampler(constant_liar=True, multivariate=False, n_startup_trials=5)
    assert compat.settings_of(sampler) == {"constant_liar": True, "multivariate": False, "n_startup_trials": 5}, \
        changed("TPESampler._constant_liar / _multivariate / _n_startup_trials")
    with pytest.raises(TypeError, match="known: TPESampler"):
        compat.settings_of(optuna.samplers.RandomSampler())


def test_two_studies_watched_in_one_process_keep_their_own_silence_clocks(write_space, tmp_path):
    """A process that watches two studies of one database in turn (a Python user's loop): looking
    at one must not reset the other's clock, or neither silent trial is ever recovered."""
    import warnings

    from _helpers import base_space

    from hpo._spec import load_spec
    from hpo._study import never_beat, open_study

    studies = []
    for name in ("first", "second"):
        doc = base_space(study={"name": name, "direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0,
                                "storage": f"sqlite:///{tmp_path}/two.db", "heartbeat_interval": 1,
                                "heartbeat_grace": 2})
        spec = load_spec(write_space(doc, name=name))
        study = open_study(spec)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            compat.first_heartbeat(study, compat.trial_id(study.ask()))  # heartbeats on: something to judge
            silent = study.ask()  # created by a worker that died before its first beat
        studies.append((spec, study, silent.number))
    deadline, found = time.monotonic() + 6, {}
    while time.monotonic() < deadline and len(found) < 2:
        for spec, study, number in studies:
            if [t.number for t in never_beat(study, spec)] == [number]:
                found[spec.study.name] = number
        time.sleep(0.1)
    assert found == {"first": 1, "second": 1}
