"""`hpo run` checks, before it creates anything, that it can import the objective and write the
study folder, the journal and the MLflow store: a read-only or full disk is exit 2 and one line."""

from __future__ import annotations

import sqlite3

from _helpers import base_space

MLFLOW_ON = {"enabled": True}


def test_read_only_runs_folder(workdir, write_space, cli, read_only, one_line_error):
    """A read-only bind mount on ./hpo-runs (chmod 555 would not stop root)."""
    (workdir / "hpo-runs").mkdir()
    read_only(workdir / "hpo-runs")
    one_line_error(cli("run", write_space(base_space())), "cannot write the study folder", "hpo-runs/space",
                          "Read-only file system", "nothing was run")


def test_runs_folder_is_a_file(workdir, write_space, cli, one_line_error):
    """Simulated unwritable folder (works without mount rights): a file where ./hpo-runs should be."""
    (workdir / "hpo-runs").write_text("not a folder")
    one_line_error(cli("run", write_space(base_space())), "cannot write the study folder", "hpo-runs/space",
                          "Not a directory", "expected a writable folder")


def test_read_only_mlflow_db(workdir, write_space, cli, read_only, one_line_error):
    """A read-only bind mount on an existing mlflow.db: refused before the study is created."""
    db = workdir / "hpo-runs" / "mlflow.db"
    db.parent.mkdir()
    sqlite3.connect(db).close()
    read_only(db)
    one_line_error(cli("run", write_space(base_space(mlflow=MLFLOW_ON))), "cannot write the MLflow store",
                          str(db), "Read-only file system")
    assert not (workdir / "hpo-runs" / "space" / "journal.log").exists()


def test_mlflow_store_folder_cannot_be_made(workdir, write_space, cli, one_line_error):
    """mlflow.tracking_uri under a file (a folder that was deleted and replaced, a typo)."""
    (workdir / "afile").write_text("")
    uri = f"sqlite:///{workdir}/afile/mlflow.db"
    one_line_error(cli("run", write_space(base_space(mlflow={"tracking_uri": uri}))),
                          "cannot write the folder of the MLflow store", f"{workdir}/afile")


def test_disk_full_at_start(workdir, write_space, cli, full_disk, one_line_error):
    full_disk(workdir / "hpo-runs")
    line = one_line_error(cli("run", write_space(base_space())), "cannot write the study folder",
                                 "hpo-runs/space", "No space left on device", "the disk is full")
    assert f"the disk mounted at {workdir / 'hpo-runs'} (0.0 MB free)" in line


def test_objective_that_does_not_import_creates_no_study(workdir, write_space, cli, one_line_error):
    path = write_space(base_space(objective={"name": "objs.py:missing"}))
    one_line_error(cli("run", path), "objective.name", "file 'objs.py' has no attribute 'missing'")
    assert not (workdir / "hpo-runs").exists()


def test_mlflow_file_store_is_refused_before_anything_is_written(workdir, write_space, cli, one_line_error):
    """A plain-folder tracking URI is MLflow's file store, which MLflow 3 no longer opens: refused
    with the SQLite URI to use instead, and nothing created."""
    for uri, db in ((f"{workdir}/mlruns", f"sqlite:///{workdir}/mlruns/mlflow.db"),
                    (f"file://{workdir}/mlruns", f"sqlite:///{workdir}/mlruns/mlflow.db"),
                    ("file:./mlruns", "sqlite:///./mlruns/mlflow.db")):
        one_line_error(cli("run", write_space(base_space(mlflow={"tracking_uri": uri}))),
                       "mlflow.tracking_uri", "is a folder", db)
    assert not (workdir / "hpo-runs").exists() and not (workdir / "mlruns").exists()


def test_a_reader_writing_into_a_read_only_study_folder_suggests_o(workdir, write_space, cli, read_only,
                                                                   one_line_error):
    """`hpo report` writes report.html into the study folder by default: running it from another
    folder does not help, -o does."""
    path = write_space(base_space())
    assert cli("run", path, "--no-report")[0] == 0
    read_only(workdir / "hpo-runs")
    one_line_error(cli("report", path), "Read-only file system", "or write the output elsewhere with -o")
    code, _, err = cli("report", path, "-o", workdir / "out")
    assert code == 0 and (workdir / "out" / "report.html").is_file(), err
