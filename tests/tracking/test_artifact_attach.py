"""`hpo export` and `hpo report` attach their file to the study's MLflow parent run when they can;
a store they cannot write to leaves the file written, a warning, and exit 0."""

from __future__ import annotations

import shutil

import pytest
from _helpers import base_space, start_hpo


@pytest.fixture
def finished(write_space, cli, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0},
                                  mlflow={"tracking_uri": uri, "experiment": "exp"}))
    assert cli("run", path, "--no-report")[0] == 0
    return path, uri


def parent_artifacts(uri: str) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("exp")
    (parent,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("hpo.role") == "parent"]
    return sorted(a.path for a in client.list_artifacts(parent.info.run_id))


COMMANDS = {"export": (["export", "-o", "out/best.yaml"], "out/best.yaml"),
            "report": (["report", "-o", "out"], "out/report.html")}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_written_file_is_attached_to_the_parent_run(finished, cli, workdir, command):
    path, uri = finished
    args, written = COMMANDS[command]
    code, _, err = cli(args[0], path, *args[1:])
    assert code == 0, err
    assert (workdir / written).is_file()
    assert (workdir / written).name in parent_artifacts(uri)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_store_it_cannot_write_to_is_a_warning_not_a_failure(finished, workdir, tmp_path, command):
    path, uri = finished
    lock = tmp_path / "mlruns.db.lock"   # hpo's lock beside the database: make it unopenable
    if lock.exists():
        lock.unlink()
    lock.mkdir()
    try:
        args, written = COMMANDS[command]
        # a process of its own: this one has opened the store already and would not take the lock again
        proc = start_hpo(args[0], str(path), *args[1:], cwd=workdir)
        err, _ = proc.communicate(timeout=120)   # stdout and stderr together
        code = proc.returncode
    finally:
        shutil.rmtree(lock)
    assert code == 0, err
    assert (workdir / written).is_file()
    assert "warning: wrote" in err and "could not attach it to the study's MLflow run" in err, err
    assert (workdir / written).name not in parent_artifacts(uri)
