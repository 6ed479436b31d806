"""The exporter: load_best / export_best round trips, exported files validate and retrain."""

from __future__ import annotations

import json

import pytest
import yaml
from _helpers import base_space, load_trials

from hpo import BestConfig, export_best, load_best
from hpo._export import read_export


@pytest.fixture
def finished_study(write_space, cli):
    path = write_space(base_space(objective={"name": "objs.py:quadratic", "fixed": {"scale": 2}},
                                  study={"direction": "minimize", "metric": "loss", "n_trials": 8, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    return path


def test_load_best_is_the_best_trial_with_fixed_merged(finished_study):
    cfg = load_best(finished_study)
    best = min((t for t in load_trials(finished_study) if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert cfg.trial_number == best.number and cfg.value == best.value
    assert cfg.params == best.params
    assert cfg.config == {"scale": 2, **best.params}
    assert cfg.seed == best.user_attrs["seed"]
    assert cfg.versions["optuna"] and cfg.created


def test_the_exported_versions_name_hpos_own_release(monkeypatch):
    """hpo's distribution is hpo-lightning: on a fresh install (no distribution named "hpo") the
    exported file said `hpo: null`."""
    from importlib import metadata

    from hpo._export import versions

    real = metadata.version

    def version(name: str) -> str:
        if name == "hpo":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    assert versions()["hpo"] == real("hpo-lightning")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_through_the_exported_file(finished_study, workdir, suffix):
    cfg = load_best(finished_study)
    path = export_best(finished_study, workdir / f"best{suffix}")
    if suffix == ".json":
        json.loads(path.read_text())
    else:
        yaml.safe_load(path.read_text())
    again = load_best(path)
    assert again == BestConfig(**{**again.__dict__, "created": again.created})
    assert {**again.__dict__, "created": ""} == {**cfg.__dict__, "created": ""}


def test_load_best_from_storage_and_study_name(finished_study, workdir):
    storage = "sqlite:///" + str(workdir / "s.db")
    doc = base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0, "storage": storage})
    path = workdir / "rdb.yaml"
    path.write_text(yaml.safe_dump(doc))
    from hpo.cli import main

    assert main(["run", str(path), "--no-report"]) == 0
    by_storage = load_best(storage, study_name="rdb")
    assert by_storage == load_best(path).__class__(**{**load_best(path).__dict__, "created": by_storage.created})


def test_top_k_export(finished_study, workdir, cli):
    code, out, _ = cli("export", finished_study, "-o", workdir / "top.yaml", "--top", "3")
    assert code == 0
    configs = read_export(workdir / "top.yaml")
    values = [c.value for c in configs]
    assert len(configs) == 3 and values == sorted(values)


def test_an_export_to_a_folder_or_an_unwritable_place_is_one_line(finished_study, workdir, cli):
    (workdir / "out").mkdir()
    code, _, err = cli("export", finished_study, "-o", workdir / "out")
    assert code == 2 and "is a folder; give the export a file name" in err and "Traceback" not in err, err
    (workdir / "file").write_text("")
    code, _, err = cli("export", finished_study, "-o", workdir / "file" / "best.yaml")
    assert code == 2 and "cannot write" in err and "Traceback" not in err, err


def test_train_reproduces_the_exported_value(finished_study, workdir, cli):
    assert cli("export", finished_study, "-o", workdir / "best.yaml")[0] == 0
    code, out, _ = cli("train", workdir / "best.yaml")
    assert code == 0
    exported = read_export(workdir / "best.yaml")[0]
    assert f"loss: {exported.value:.6g} (exported {exported.value:.6g}" in out


def test_not_an_export_is_a_usage_error(workdir, cli):
    (workdir / "x.yaml").write_text("a: 1\n")
    code, _, err = cli("train", workdir / "x.yaml")
    assert code == 2 and "not an hpo export" in err
    (workdir / "objs2.py").write_text('def f(params, ctx): return {"loss": params["x"]}\n')
    code, _, err = cli("train", workdir / "objs2.py")  # PyYAML's message: four lines and a caret
    assert code == 2 and "not a readable export (not YAML at line 1: mapping values are not allowed" in err, err
    assert len(err.strip().splitlines()) == 1 and "\\n" not in err, err


def test_multi_objective_export_is_the_pareto_set(write_space, cli, workdir):
    path = write_space(base_space(objective={"name": "objs.py:two_metrics"}, sampler={"name": "nsga2"},
                                  study={"directions": ["minimize", "minimize"], "metrics": ["a", "b"],
                                         "n_trials": 10, "seed": 0}))
    assert cli("run", path)[0] == 0
    assert (workdir / "hpo-runs" / "space" / "report.html").exists()
    assert cli("export", path, "-o", workdir / "pareto.yaml")[0] == 0
    configs = read_export(workdir / "pareto.yaml")
    complete = [t for t in load_trials(path) if t.state.name == "COMPLETE"]
    pareto = {t.number for t in complete if not any(
        o.values[0] <= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values for o in complete)}
    assert {c.trial_number for c in configs} == pareto
    assert all(len(c.values) == 2 and c.metrics == ("a", "b") for c in configs)


def test_train_from_another_folder_logs_to_the_studys_mlflow_store(write_space, cli, workdir, tmp_path_factory,
                                                                    monkeypatch):
    """The export names the store the study used (here the default one beside its folder), so a
    retrain started anywhere lands under the study's parent run, and no store appears elsewhere."""
    from mlflow.tracking import MlflowClient

    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0},
                                  mlflow={"enabled": True}))
    assert cli("run", path, "--no-report")[0] == 0
    assert cli("export", path, "-o", workdir / "best.yaml")[0] == 0
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    code, out, err = cli("train", workdir / "best.yaml")
    assert code == 0, err
    assert "is gone" not in out + err
    assert not (elsewhere / "hpo-runs" / "mlflow.db").exists()
    client = MlflowClient(f"sqlite:///{workdir}/hpo-runs/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if r.data.tags.get("hpo.role") == "parent"]
    retrains = [r for r in runs if r.data.tags.get("hpo.role") == "retrain"]
    assert len(retrains) == 1 and retrains[0].data.tags["mlflow.parentRunId"] == parent.info.run_id
