"""`hpo run` writes MLflow as the contract says: one parent, one nested child per trial, states, metrics."""

from __future__ import annotations

import os
import signal
import time

import pytest
from _helpers import base_space, start_hpo, trials_so_far

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


def mixed_space(tmp_path, n_trials: int) -> dict:
    return base_space(
        objective={"name": "objs.py:mixed", "fixed": {"scale": 3}},
        pruner={"name": "threshold", "options": {"upper": 12.0}},
        study={"direction": "minimize", "metric": "loss", "n_trials": n_trials, "seed": 2},
        mlflow={"tracking_uri": f"sqlite:///{tmp_path}/mlruns.db", "experiment": "exp"},
    )


def runs_of(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("exp")
    return client, client.search_runs([exp.experiment_id], max_results=5000)


def check_store(path, uri):
    from hpo._spec import load_spec
    from hpo._study import open_study, run_id_of

    study = open_study(load_spec(path), create=False)
    trials = study.get_trials(deepcopy=False)
    client, runs = runs_of(uri)
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("hpo.role") == "trial"]
    assert len(parents) == 1
    assert len(children) == len(trials)
    by_number = {int(r.data.tags["trial_number"]): r for r in children}
    assert sorted(by_number) == [t.number for t in trials]
    for t in trials:
        run = by_number[t.number]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["state"] == t.state.name
        assert run.info.status == STATUS[t.state.name]
        assert run.info.run_id == run_id_of(study, t)  # the trial's attr, or the study's if it ended first
        assert float(run.data.params["x"]) == pytest.approx(t.params["x"])
        assert run.data.params["fixed.scale"] == "3"
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == sorted(t.intermediate_values)
    return trials, by_number


def test_study_with_complete_pruned_and_failed_trials(write_space, cli, tmp_path):
    path = write_space(mixed_space(tmp_path, 14))
    assert cli("run", path, "--no-report")[0] == 0
    trials, runs = check_store(path, f"sqlite:///{tmp_path}/mlruns.db")
    assert {t.state.name for t in trials} == {"COMPLETE", "PRUNED", "FAIL"}
    for t in trials:
        run = runs[t.number]
        if t.state.name == "FAIL":
            assert run.data.tags["fail_reason"] == "RuntimeError: x too large"
        if t.state.name == "PRUNED":
            assert run.data.tags["pruned_at_epoch"] == str(t.user_attrs["pruned_at_epoch"])
        if t.state.name == "COMPLETE":
            assert run.data.metrics["final.loss"] == pytest.approx(t.value)


@pytest.mark.slow  # ~10 s
def test_jobs_2_gives_one_child_per_trial(write_space, workdir, tmp_path):
    path = write_space(mixed_space(tmp_path, 12))
    proc = start_hpo("run", path, "--jobs", "2", "--no-report", cwd=workdir)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    check_store(path, f"sqlite:///{tmp_path}/mlruns.db")


def running_trials(path):
    return [t for t in trials_so_far(path) if t.state.name == "RUNNING"]


def test_killed_worker_is_reported_by_status_and_closed_by_the_next_run(write_space, workdir, tmp_path, cli):
    """`status` only reads: it names the lost trial; the next `hpo run` (its join) fails and re-queues it
    and closes its MLflow run as KILLED."""
    from hpo._spec import load_spec
    from hpo._worker import join_study
    from hpo.tracking import make_tracker

    doc = mixed_space(tmp_path, 5)
    doc["objective"] = {"name": "objs.py:slow", "fixed": {"sleep": 0.5}}
    doc["study"]["metric"] = "value"
    path = write_space(doc)
    proc = start_hpo("run", path, "--no-report", cwd=workdir)
    uri = f"sqlite:///{tmp_path}/mlruns.db"

    def running_trial_run() -> bool:  # MLflow starts in the background: wait for the trial's run
        if not (tmp_path / "mlruns.db").exists():  # an MLflow client would create it: reading must not
            return False
        try:
            return any(r.info.status == "RUNNING" and r.data.tags.get("hpo.role") == "trial" for r in runs_of(uri)[1])
        except Exception:  # noqa: BLE001 - no store or no experiment yet
            return False

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if running_trials(path) and running_trial_run():
            break
    time.sleep(1.0)
    # not between two trials, and not between a trial's start and its run's (MLflow starts in the background)
    while not (running_trials(path) and running_trial_run()):
        assert proc.poll() is None, "the study ended before a trial could be killed mid-run"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _, runs = runs_of(uri)
    assert [r for r in runs if r.info.status == "RUNNING"], "the kill should have left a RUNNING run"
    code, out, _ = cli("status", path)
    assert code == 0 and "lost" in out and "re-queued by the next `hpo run" in out
    assert [r.info.status for r in runs_of(uri)[1]] == [r.info.status for r in runs]  # status wrote nothing
    spec = load_spec(path)
    tracker = make_tracker(spec.mlflow.tracking_uri, spec.experiment, True)
    try:
        join_study(spec, tracker)  # what `hpo run` does first
    finally:
        tracker.close()
    after = {r.info.run_id: r.info.status for r in runs_of(uri)[1] if r.data.tags.get("hpo.role") == "trial"}
    before = {r.info.run_id: r.info.status for r in runs if r.data.tags.get("hpo.role") == "trial"}
    assert "RUNNING" in before.values() and "RUNNING" not in after.values()
    # the killed trial's run is KILLED; runs of trials that ended before the kill are as they were
    assert after == {run_id: "KILLED" if status == "RUNNING" else status for run_id, status in before.items()}


def test_unreachable_tracking_server_is_a_clear_usage_error(write_space, cli, tmp_path):
    from _helpers import free_port

    path = write_space(mixed_space(tmp_path, 3))
    uri = f"http://127.0.0.1:{free_port()}"
    code, out, err = cli("run", path, "--tracking-uri", uri)
    assert code == 2
    assert uri in err and "does not answer" in err and "mlflow.enabled: false" in err
    assert not (tmp_path / "hpo-runs").exists()  # nothing ran, no study was created


def test_the_database_file_alone_holds_every_run_after_hpo_run(write_space, workdir, tmp_path):
    """SQLite in WAL mode keeps recent writes in mlflow.db-wal until a checkpoint: a run folder
    copied or shared without that file showed none of the study's runs."""
    import shutil
    import sqlite3

    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0},
                                  mlflow={"enabled": True}))
    proc = start_hpo("run", path, "--no-report", cwd=workdir)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    alone = tmp_path / "copy.db"
    shutil.copyfile(workdir / "hpo-runs" / "mlflow.db", alone)   # the database, without its -wal file
    con = sqlite3.connect(alone)
    try:
        (n_runs,) = con.execute("SELECT count(*) FROM runs").fetchone()
    finally:
        con.close()
    assert n_runs == 1 + 3  # the parent and one run per trial
