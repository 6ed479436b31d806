"""The MLflow parent run of a study whose processes are all gone is not left RUNNING."""

from __future__ import annotations

from _helpers import load_trials, start_hpo


def running(runs) -> list[str]:
    return sorted(f"{r.data.tags.get('hpo.role')} {r.data.tags.get('mlflow.runName')}" for r in runs
            if r.info.status == "RUNNING")


def parent_of(runs):
    (parent,) = [r for r in runs if r.data.tags.get("hpo.role") == "parent"]
    return parent


def test_os_exit_in_an_objective_then_one_more_run_leaves_nothing_running(state_space, workdir, runs_in_mlflow):
    path = state_space("hard_exit", n_trials=3, mlflow=True)
    crash = start_hpo("run", path, "--no-report", cwd=workdir)
    out, _ = crash.communicate(timeout=120)
    assert crash.returncode == 3, out
    assert {"parent space", "trial trial-1"} <= set(running(runs_in_mlflow()))  # what the crash left

    rerun = start_hpo("run", path, "--no-report", cwd=workdir)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    runs = runs_in_mlflow()
    assert running(runs) == []
    assert parent_of(runs).info.status == "FINISHED"
    assert sorted(t.state.name for t in load_trials(path)) == ["COMPLETE"] * 3 + ["FAIL"]


def test_a_run_of_a_complete_study_closes_its_parent(state_space, cli, runs_in_mlflow):
    from mlflow.tracking import MlflowClient

    path = state_space("exits", n_trials=2, fixed={"bad": []}, mlflow=True)
    assert cli("run", path, "--no-report")[0] == 0
    parent = parent_of(runs_in_mlflow())
    # As a worker killed after the study's last trial but before it closed the parent leaves it:
    MlflowClient(f"sqlite:///{path.parent}/hpo-runs/mlflow.db").update_run(parent.info.run_id, status="RUNNING")
    code, out, _ = cli("run", path, "--no-report")
    assert code == 0 and "study complete" in out
    assert parent_of(runs_in_mlflow()).info.status == "FINISHED"


def test_the_trials_of_the_next_run_see_the_parent_running_again(state_space, workdir, runs_in_mlflow):
    """The stale parent is closed when the next run starts, and set RUNNING again by its first trial."""
    path = state_space("hard_exit", n_trials=2, mlflow=True)
    assert start_hpo("run", path, "--no-report", cwd=workdir).wait(timeout=120) == 3
    assert parent_of(runs_in_mlflow()).info.status == "RUNNING"
    with open(workdir / "stateobjs.py", "a") as f:  # the user's code changed; the study's objective did not
        f.write("\nhard_exit = parent_status\n")
    rerun = start_hpo("run", path, "--no-report", cwd=workdir)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    (retry,) = [t for t in load_trials(path) if t.number == 2]
    assert retry.values == [1.0], "the parent was not RUNNING while the trial ran"
    assert parent_of(runs_in_mlflow()).info.status == "FINISHED"


def test_open_parent_run_creates_once_and_a_reader_writes_nothing():
    import optuna

    from hpo.tracking import Tracker, open_parent_run

    class Recording(Tracker):
        def __init__(self) -> None:
            self.calls: list[tuple[dict, str | None]] = []

        def start_study(self, study_info, parent_run_id=None):
            self.calls.append((dict(study_info), parent_run_id))
            return parent_run_id or "new-parent"

    study = optuna.create_study()
    reader = Recording()
    assert open_parent_run(reader, {"study_name": "s"}, study, create=False) is None
    assert reader.calls == [] and study.user_attrs == {}

    writer = Recording()
    assert open_parent_run(writer, {"study_name": "s"}, study) == "new-parent"
    uuid = study.user_attrs["study_uuid"]
    assert study.user_attrs["mlflow_parent_run_id"] == "new-parent"
    assert writer.calls == [({"study_name": "s", "study_uuid": uuid}, None)]
    assert open_parent_run(writer, {"study_name": "s"}, study) == "new-parent"
    assert writer.calls[-1] == ({"study_name": "s", "study_uuid": uuid}, "new-parent")
    assert open_parent_run(reader, {"study_name": "s"}, study, create=False) == "new-parent"


def test_a_crash_before_mlflow_started_loses_no_run(state_space, workdir, runs_in_mlflow):
    """MLflow starts in the background: a worker that dies first leaves its trials without runs;
    the next run makes them, with each trial's params, steps and outcome."""
    path = state_space("hard_exit_now", n_trials=3, mlflow=True)
    assert start_hpo("run", path, "--no-report", cwd=workdir).wait(timeout=120) == 3
    rerun = start_hpo("run", path, "--no-report", cwd=workdir)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    runs = runs_in_mlflow()
    assert running(runs) == [] and parent_of(runs).info.status == "FINISHED"
    by_number = {int(r.data.tags["trial_number"]): r for r in runs if r.data.tags.get("hpo.role") == "trial"}
    trials = load_trials(path)
    assert sorted(by_number) == sorted(t.number for t in trials)  # one run per trial, none twice
    for trial in trials:
        run = by_number[trial.number]
        state = "KILLED" if trial.number == 1 else trial.state.name
        assert run.data.tags["state"] == state
        assert float(run.data.params["x"]) == trial.params["x"]
        if state == "COMPLETE":
            assert run.data.metrics["final.value"] == trial.value
    assert by_number[1].info.status == "KILLED"
