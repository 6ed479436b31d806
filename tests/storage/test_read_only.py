"""Reading never writes: status, best, export, report, load_best and export_best leave the study
folder byte-identical, and run from a folder without the study they create nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from _helpers import base_space


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name -> sha256 of its bytes)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def readers(path: Path, out: Path):
    """Each reader as (name, call returning (exit code, error text)): the CLI's and the Python API's."""
    from hpo import export_best, load_best
    from hpo._errors import HpoError

    def command(*args):
        def call(cli):
            code, _, err = cli(*args)
            return code, err
        return call

    def api(fn, *args):
        def call(cli):
            try:
                fn(*args)
            except HpoError as exc:
                return exc.exit_code, str(exc)
            return 0, ""
        return call

    return [
        ("status", command("status", path)),
        ("best", command("best", path)),
        ("export", command("export", path, "-o", out / "best.yaml")),
        ("report", command("report", path, "-o", out)),
        ("load_best", api(load_best, path)),
        ("export_best", api(export_best, path, out / "best2.yaml")),
    ]


@pytest.fixture
def finished(write_space, cli, workdir):
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    return path


@pytest.mark.parametrize("torn_tail", [False, True], ids=["clean", "torn-tail"])
def test_readers_leave_the_study_folder_byte_identical(finished, cli, workdir, tmp_path_factory, torn_tail):
    """With a torn tail too: readers read past it and leave its repair to the next writer."""
    out = tmp_path_factory.mktemp("out")
    if torn_tail:
        with (workdir / "hpo-runs" / "space" / "journal.log").open("ab") as f:
            f.write(b'{"op_code": 5, "worker_id": "x", "stat')
    before = snapshot(workdir / "hpo-runs")
    for name, read in readers(finished, out):
        assert read(cli) == (0, ""), name
        assert snapshot(workdir / "hpo-runs") == before, f"{name} wrote to the study folder"


def test_readers_in_a_folder_without_the_study_create_nothing(finished, cli, tmp_path_factory, monkeypatch):
    """A copy of the space file, in a folder with no study at or above it, run from elsewhere:
    exit 2 naming where it looked (./hpo-runs first)."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    out = tmp_path_factory.mktemp("out")
    spaces = tmp_path_factory.mktemp("spaces")
    for name in (finished.name, "objs.py"):
        (spaces / name).write_bytes((finished.parent / name).read_bytes())
    looked = str(elsewhere / "hpo-runs" / "space" / "journal.log")
    for name, read in readers(spaces / finished.name, out):
        code, message = read(cli)
        assert code == 2, name
        assert looked in " ".join(message.split()) and "hpo run" in message, (name, message)
        assert list(elsewhere.iterdir()) == [], f"{name} created {list(elsewhere.iterdir())}"


def test_status_of_an_unknown_study_in_an_existing_store_names_it(finished, cli, write_space):
    other = write_space(base_space(study={"name": "other", "direction": "minimize", "metric": "loss",
                                          "n_trials": 3, "seed": 0}), name="other")
    code, _, err = cli("status", other)
    assert code == 2 and "other" in err and f"hpo run {other}" in " ".join(err.split())


def test_readers_of_a_sqlite_url_neither_change_nor_create_the_database(write_space, cli, workdir, tmp_path_factory):
    from hpo import load_best
    from hpo._errors import UsageError

    db = workdir / "study.db"
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0}))
    assert cli("run", path, "--no-report", "--storage", f"sqlite:///{db}")[0] == 0
    before = snapshot(workdir)
    assert load_best(f"sqlite:///{db}", study_name="space").trial_number in range(3)
    assert cli("status", path, "--storage", f"sqlite:///{db}")[0] == 0
    assert cli("best", path, "--storage", f"sqlite:///{db}")[0] == 0
    assert snapshot(workdir) == before
    missing = workdir / "missing.db"
    with pytest.raises(UsageError, match="missing.db"):
        load_best(f"sqlite:///{missing}", study_name="space")
    code, _, err = cli("status", path, "--storage", f"sqlite:///{missing}")
    assert code == 2 and "missing.db" in err
    assert not missing.exists()


def test_resuming_a_study_appends_no_second_create_study_record(finished, cli, workdir):
    import json

    assert cli("run", finished, "--no-report", "--n-trials", "4")[0] == 0
    lines = (workdir / "hpo-runs" / "space" / "journal.log").read_bytes().splitlines()
    assert [json.loads(line)["op_code"] for line in lines].count(0) == 1  # JournalOperation.CREATE_STUDY


def test_readers_of_a_database_being_set_up_write_nothing(postgres_server, write_space, cli):
    """A first worker is creating Optuna's tables: a reader finds no study and writes no row
    (Optuna's RDBStorage would insert the schema-version row the worker is about to insert)."""
    import sqlalchemy
    from optuna.storages._rdb import models

    url = postgres_server()
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "storage": url}))
    for tables in (False, True):
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        if tables:
            models.BaseModel.metadata.create_all(engine)  # tables, but no version rows yet
        code, _, err = cli("status", path)
        assert code == 2 and "holds no study yet" in err and f"hpo run {path}" in " ".join(err.split()), err
        with engine.connect() as conn:
            names = set(sqlalchemy.inspect(conn).get_table_names())
            assert bool(names) == tables
            if tables:
                assert conn.execute(sqlalchemy.text("SELECT COUNT(*) FROM version_info")).scalar() == 0
        engine.dispose()
    assert cli("run", path, "--no-report")[0] == 0  # the worker finishes setting it up
    assert cli("status", path)[0] == 0
