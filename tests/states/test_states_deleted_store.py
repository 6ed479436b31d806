"""A study's MLflow parent run or whole store deleted mid-study: the next run closes every run
the study ever created, whatever parent it points at."""

from __future__ import annotations

import time

import pytest

from _helpers import start_hpo, trials_so_far


def running(runs) -> list[str]:
    return sorted(r.data.tags.get("mlflow.runName") for r in runs if r.info.status == "RUNNING"
                  and r.info.lifecycle_stage == "active")


@pytest.mark.slow  # ~12 s
def test_deleting_mlflow_db_mid_study_leaves_no_run_running(write_space, workdir, runs_in_mlflow):
    from _helpers import base_space

    path = write_space(base_space(objective={"name": "objs.py:slow", "fixed": {"sleep": 0.05}}, mlflow={},
                                  study={"direction": "minimize", "metric": "value", "n_trials": 8, "seed": 0}))
    proc = start_hpo("run", path, "--no-report", cwd=workdir)
    deadline = time.monotonic() + 60
    db = workdir / "hpo-runs" / "mlflow.db"  # made in the background while the first trials run
    while len([t for t in _trials(path) if t.state.name == "COMPLETE"]) < 2 or not db.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the study did not get going"
        time.sleep(0.1)
    (workdir / "hpo-runs" / "mlflow.db").unlink()  # as `rm hpo-runs/mlflow.db` does: -wal and -shm stay
    out, _ = proc.communicate(timeout=120)
    rerun = start_hpo("run", path, "--no-report", cwd=workdir)
    out += rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0, out
    assert running(runs_in_mlflow()) == []


def test_trial_runs_of_a_deleted_parent_are_closed_too(state_space, workdir, runs_in_mlflow):
    """The parent deleted (in the UI) after a crash: its RUNNING trial run points at a parent that
    no longer exists, and the next run creates a new parent; it still closes that trial run."""
    from mlflow.tracking import MlflowClient

    path = state_space("hard_exit", n_trials=3, mlflow=True)
    assert start_hpo("run", path, "--no-report", cwd=workdir).wait(timeout=120) == 3
    (parent,) = [r for r in runs_in_mlflow() if r.data.tags.get("hpo.role") == "parent"]
    MlflowClient(f"sqlite:///{workdir}/hpo-runs/mlflow.db").delete_run(parent.info.run_id)
    assert "trial-1" in running(runs_in_mlflow())

    rerun = start_hpo("run", path, "--no-report", cwd=workdir)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    runs = runs_in_mlflow()
    assert running(runs) == []
    (orphan,) = [r for r in runs if r.data.tags.get("mlflow.runName") == "trial-1"]
    assert orphan.info.status == "KILLED" and orphan.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {r.data.tags.get("hpo.study_uuid") for r in runs} == {load_study_uuid(path)}


def test_runs_of_another_study_of_the_same_name_are_left_alone(state_space, workdir, runs_in_mlflow):
    """A study deleted and started again under its name: the old study's runs are not the new one's."""
    import shutil

    path = state_space("hard_exit", n_trials=3, mlflow=True)
    assert start_hpo("run", path, "--no-report", cwd=workdir).wait(timeout=120) == 3
    shutil.rmtree(workdir / "hpo-runs" / "space")  # the Optuna study only; the MLflow store stays
    path = state_space("exits", n_trials=2, fixed={"bad": []}, mlflow=True)
    rerun = start_hpo("run", path, "--no-report", cwd=workdir)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    old = [r for r in runs_in_mlflow() if r.data.tags.get("hpo.study_uuid") != load_study_uuid(path)]
    assert "trial-1" in running(old), "the new study closed a run of the old one as its own trial 1"


def load_study_uuid(path) -> str:
    from hpo._spec import load_spec
    from hpo._study import open_study

    return open_study(load_spec(path), create=False).user_attrs["study_uuid"]


_trials = trials_so_far
