"""Many machines on one study: workers joined only by a PostgreSQL URL (a real server per session)."""

from __future__ import annotations

import random
import signal
import time

import pytest
from _helpers import assert_no_running_mlflow_runs, base_space, finish_exact_study, load_trials, start_hpo, trials_so_far


def fast_space(storage: str, n_trials: int, objective: str = "objs.py:quadratic", **fixed) -> dict:
    return base_space(objective={"name": objective, "fixed": fixed},
                      study={"direction": "minimize", "metric": "loss" if "quadratic" in objective else "value",
                             "n_trials": n_trials, "seed": 0, "storage": storage},
                      sampler={"name": "random"}, mlflow={"enabled": True})


@pytest.mark.slow  # 200 trials on PostgreSQL, ~75 s
def test_eight_workers_on_postgres_run_exactly_n_trials(postgres_server, write_space, workdir, tmp_path):
    from mlflow.tracking import MlflowClient

    url, tracking = postgres_server(), f"sqlite:///{tmp_path}/mlflow.db"
    path = write_space(fast_space(url, 200))
    procs = [start_hpo("run", path, "--no-report", "--tracking-uri", tracking, cwd=workdir) for _ in range(8)]
    trials = finish_exact_study(procs, path, 200, timeout=600)
    client = MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name("space").experiment_id], max_results=1000)
    children = sorted(int(r.data.tags["trial_number"]) for r in runs if r.data.tags.get("hpo.role") == "trial")
    assert children == list(range(200))


@pytest.mark.slow  # chaos on PostgreSQL, ~35 s
def test_chaos_on_postgres_kills_lose_nothing(postgres_server, write_space, workdir):
    """4 workers, one SIGKILLed every ~1 s and replaced (10 kills): exactly n_trials COMPLETE at the end."""
    url = postgres_server()
    path = write_space(fast_space(url, 40, objective="objs.py:slow", sleep=0.05))
    rng = random.Random(0)
    procs = [start_hpo("run", path, "--no-report", cwd=workdir) for _ in range(4)]
    kills = 0
    while kills < 10:
        time.sleep(1.0)
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            break
        victim = rng.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        kills += 1
        procs.append(start_hpo("run", path, "--no-report", cwd=workdir))
    for proc in procs:
        proc.communicate(timeout=300)
    trials = load_trials(path)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert kills == 10
    assert len(complete) == 40
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    for failed in (t for t in trials if t.state.name == "FAIL"):
        assert "died" in failed.user_attrs.get("fail_reason", "")
    retries = [t.user_attrs.get("retry_count", 0) for t in trials]
    assert max(retries) <= 1
    assert_no_running_mlflow_runs(workdir, trials)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # study.ask() outside Study.optimize
def test_trial_counts_on_postgres_match_the_studys_own_trials(postgres_server, write_space, workdir):
    """The cap's one-query count sees every state, and only its own study's trials."""
    from optuna.trial import TrialState

    from hpo._spec import load_spec
    from hpo._storage import study_lock, trial_state_counts
    from hpo._study import open_study

    url = postgres_server()
    other = open_study(load_spec(write_space(fast_space(url, 9), name="other")))
    other.tell(other.ask(), 1.0)
    spec = load_spec(write_space(fast_space(url, 9)))
    study = open_study(spec)
    for state in (TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
        study.tell(study.ask(), 1.0 if state == TrialState.COMPLETE else None, state=state)
    study.ask()
    study.enqueue_trial({"x": 0.5})
    with study_lock(spec):
        counts = trial_state_counts(spec, study)
    assert counts == {"COMPLETE": 2, "PRUNED": 1, "FAIL": 1, "RUNNING": 1, "WAITING": 1}
    assert counts == {s: sum(t.state.name == s for t in study.get_trials()) for s in counts}


def test_cmaes_on_shared_storage_is_warned_about(postgres_server, write_space, cli):
    path = write_space(base_space(sampler={"name": "cmaes"},
                                  study={"direction": "minimize", "metric": "loss", "n_trials": 2,
                                         "storage": postgres_server()}))
    code, out, err = cli("run", path, "--no-report")
    assert code == 0
    assert "pickled" in (out + err)


@pytest.mark.slow  # PostgreSQL + MLflow server, ~35 s
def test_recipe_postgres_study_and_mlflow_server_two_workers(postgres_server, write_space, workdir, tmp_path):
    """The README's multi-machine recipe: PostgreSQL for the study, an MLflow server backed by
    PostgreSQL for the runs, and workers that know only the two URLs."""
    from mlflow.tracking import MlflowClient

    from hpo.tracking._ui import UiServer

    study_db, mlflow_db = postgres_server(), postgres_server()
    with UiServer(mlflow_db, artifacts_dir=tmp_path / "artifacts").start() as server:
        doc = fast_space(study_db, 30)
        doc.pop("mlflow")
        path = write_space(doc)
        procs = [start_hpo("run", path, "--no-report", "--tracking-uri", server.url, cwd=workdir) for _ in range(2)]
        for proc in procs:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, out
        trials = load_trials(path)
        assert sorted(t.number for t in trials) == list(range(30))
        client = MlflowClient(server.url)
        exp = client.get_experiment_by_name("space")
        runs = client.search_runs([exp.experiment_id], max_results=1000)
        parents = [r for r in runs if r.data.tags.get("hpo.role") == "parent"]
        children = [r for r in runs if r.data.tags.get("hpo.role") == "trial"]
        assert len(parents) == 1
        assert sorted(int(r.data.tags["trial_number"]) for r in children) == list(range(30))
        assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
        assert all(r.info.status == "FINISHED" for r in children), sorted(
            (int(r.data.tags["trial_number"]), r.info.status, r.data.tags.get("state")) for r in children
            if r.info.status != "FINISHED")


@pytest.mark.slow  # waits out a heartbeat, ~35 s
def test_heartbeat_recovers_a_trial_whose_machine_went_silent(postgres_server, write_space, workdir):
    """A worker on "machine A" is SIGKILLed mid-trial; a worker on "machine B" cannot see A's
    processes, so only the stopped heartbeat tells it: the trial is failed and retried with the
    same params, linked to the failed one."""
    import os

    doc = fast_space(postgres_server(), 4, objective="objs.py:slow", sleep=0.3)
    doc["study"].update(heartbeat_interval=1, heartbeat_grace=3)
    path = write_space(doc)
    env_a = {**os.environ, "HPO_WORKER_HOST": "machine-a"}
    worker_a = start_hpo("run", path, "--no-report", cwd=workdir, env=env_a)
    deadline = time.monotonic() + 60
    running = []
    while not running and time.monotonic() < deadline:  # a trial mid-way: its params sampled
        time.sleep(0.3)
        running = [t for t in trials_so_far(path) if t.state.name == "RUNNING" and t.params]
    worker_a.send_signal(signal.SIGKILL)
    worker_a.wait()
    (lost,) = running
    env_b = {**os.environ, "HPO_WORKER_HOST": "machine-b"}
    worker_b = start_hpo("run", path, "--no-report", cwd=workdir, env=env_b)
    out, _ = worker_b.communicate(timeout=180)
    assert worker_b.returncode == 0, out
    trials = load_trials(path)
    assert len([t for t in trials if t.state.name == "COMPLETE"]) == 4
    assert [t.state.name for t in trials if t.number == lost.number] == ["FAIL"]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == lost.number]
    assert retry.params == lost.params and retry.user_attrs["retry_reason"] == "heartbeat stopped"
    assert retry.user_attrs["worker"].startswith("machine-b:")


def test_unreachable_database_is_a_clear_usage_error(write_space, cli):
    from _helpers import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/hpo"
    code, out, err = cli("run", write_space(fast_space(url, 2)), "--no-report")
    assert code == 2
    assert "cannot open the study storage" in err and "Connection refused" in err and "Traceback" not in err
