"""`hpo run` starts MLflow off the trials' path: the first trial trains while the store is still being made."""

from __future__ import annotations

import time

import pytest
from _helpers import base_space

from hpo.tracking import _mlflow

STORE_DELAY_S = 1.5  # an instrumented store that takes this long to create (MLflow's import + migrations: ~3 s)


@pytest.fixture
def slow_store(monkeypatch):
    """Makes creating the tracking store slow; records when it was done."""
    done: list[float] = []
    real = _mlflow.prepare_store

    def slow(uri: str) -> None:
        time.sleep(STORE_DELAY_S)
        real(uri)
        done.append(time.time())

    monkeypatch.setattr(_mlflow, "prepare_store", slow)
    return done


STAMPED = '''
import time


def stamped(params, ctx):
    with open("starts.txt", "a") as f:
        f.write(f"{time.time()}\\n")
    ctx.report({"loss": params["x"] ** 2}, step=0)
    return params["x"] ** 2
'''


def test_first_trial_trains_while_the_store_is_made_and_nothing_is_lost(write_space, workdir, cli, slow_store):
    from mlflow.tracking import MlflowClient

    from hpo._spec import load_spec
    from hpo._study import open_study, run_id_of

    (workdir / "stamped.py").write_text(STAMPED)
    uri = f"sqlite:///{workdir}/mlruns.db"
    path = write_space(base_space(objective={"name": "stamped.py:stamped", "fixed": {"k": 1}},
                                  study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0},
                                  mlflow={"tracking_uri": uri, "experiment": "exp"}))
    assert cli("run", path, "--no-report")[0] == 0
    starts = [float(line) for line in (workdir / "starts.txt").read_text().split()]
    assert len(slow_store) == 1 and len(starts) == 3
    assert starts[0] < slow_store[0]  # the store was not on the critical path of the first trial

    # Everything queued while the store was made landed: the parent, each trial's run with its
    # params, metrics and end, and the run ids on the study's record.
    study = open_study(load_spec(path), create=False)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("exp")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if r.data.tags.get("hpo.role") == "parent"]
    assert len(parent) == 1 and study.user_attrs["mlflow_parent_run_id"] == parent[0].info.run_id
    children = {int(r.data.tags["trial_number"]): r for r in runs if r.data.tags.get("hpo.role") == "trial"}
    for trial in study.get_trials():
        run = children[trial.number]
        assert run_id_of(study, trial) == run.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["state"] == "COMPLETE"
        assert run.data.params["fixed.k"] == "1" and float(run.data.params["x"]) == pytest.approx(trial.params["x"])
        assert run.data.metrics["final.loss"] == pytest.approx(trial.value)
        assert run.data.tags["mlflow.parentRunId"] == parent[0].info.run_id


def test_a_run_id_goes_on_the_trial_while_it_runs_else_on_the_study():
    import optuna

    from hpo._study import record_run_id, run_id_of

    study = optuna.create_study()
    running, ended = study.ask(), study.ask()
    study.tell(ended, 1.0)
    record_run_id(study, running, "a" * 32)
    record_run_id(study, ended, "b" * 32)  # its run was created after it ended: Optuna refuses trial attrs
    first, second = study.get_trials()
    assert first.user_attrs == {"mlflow_run_id": "a" * 32} and second.user_attrs == {}
    assert run_id_of(study, first) == "a" * 32 and run_id_of(study, second) == "b" * 32


def test_a_new_store_is_a_copy_of_a_migrated_template_not_migrated_again(tmp_path, monkeypatch):
    import sqlite3

    import mlflow.store.db.utils as db_utils

    from hpo.tracking._store import prepare_store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    migrations: list[object] = []
    real = db_utils._initialize_tables
    monkeypatch.setattr(db_utils, "_initialize_tables", lambda engine: (migrations.append(engine), real(engine)))
    for name in ("first", "second", "third"):
        prepare_store(f"sqlite:///{tmp_path}/{name}/mlflow.db")
    assert len(migrations) == 1  # the template's, once per MLflow version; the stores are copies
    assert list((tmp_path / "cache" / "hpo").glob("mlflow-*-empty.db"))
    con = sqlite3.connect(tmp_path / "third" / "mlflow.db")
    (location,) = con.execute("SELECT artifact_location FROM experiments WHERE experiment_id = 0").fetchone()
    assert location.endswith("/third/mlflow-artifacts/0")  # MLflow's Default experiment, made for this store


def test_the_dashboard_names_the_mlflow_run_of_a_best_trial_that_ended_before_mlflow_started(tmp_path):
    """The best trial's run id was read from its user attrs only: a trial that ended while MLflow
    was still starting (its id kept on the study) showed no MLflow run on the dashboard."""
    import optuna
    from _helpers import base_space

    from hpo._report import write_report
    from hpo._spec import spec_from_dict
    from hpo._study import record_run_id

    (tmp_path / "objs.py").write_text("def quadratic(params, ctx):\n    return {\"loss\": 0.0}\n")
    spec = spec_from_dict(base_space(), source=str(tmp_path / "space.yaml"))
    study = optuna.create_study()
    best, other = study.ask(), study.ask()
    study.tell(best, 0.5)
    study.tell(other, 2.0)
    record_run_id(study, best, "b" * 32)  # created after the trial ended: kept on the study
    text = write_report(spec, study, tmp_path).read_text()
    best_section = text[text.index('id="best"'):text.index('id="best"') + 3000]
    assert "mlflow_run_id" in best_section and "b" * 32 in best_section
