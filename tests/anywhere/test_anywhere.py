"""Opening a study from anywhere: readers find a study from any folder (by its space file or its
study folder) and create nothing; exports name checkpoints that exist, by absolute path; a module
study's best config builds the user's own classes (``examples/my_models``)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPACE = {
    "study": {"name": "digits", "direction": "maximize", "metric": "val_acc", "n_trials": 2, "seed": 0},
    "sampler": {"name": "random"},
    "pruner": {"name": "none"},
    "objective": {"module": "my_models:SmallCNN", "data": "my_models:DigitsDataModule",
                  "fixed": {"max_epochs": 1, "threads": 1, "keep_checkpoints": 1}},
    "space": {"width": {"type": "int", "low": 4, "high": 8, "step": 4},
              "dropout": {"type": "float", "low": 0.0, "high": 0.2},
              "batch_size": {"type": "categorical", "choices": [64, 128]},
              "lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    "mlflow": {"enabled": False},
}


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file and folder under ``folders`` (path -> sha256 of its bytes, or 'dir')."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for folder in folders for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """``project/search_spaces/digits.yaml``, run from ``project`` (so ``project/hpo-runs/digits``)."""
    root = tmp_path_factory.mktemp("project")
    (root / "search_spaces").mkdir()
    (root / "search_spaces" / "digits.yaml").write_text(yaml.safe_dump(SPACE, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", "hpo", "run", "search_spaces/digits.yaml", "--no-report"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture
def elsewhere(tmp_path_factory, monkeypatch) -> Path:
    """An empty current folder, unrelated to the project, where the example package is not importable."""
    folder = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    for name in [m for m in sys.modules if m == "my_models" or m.startswith("my_models.")]:
        monkeypatch.delitem(sys.modules, name)
    return folder


@pytest.fixture
def importable(monkeypatch) -> None:
    """The example package importable (as a user's installed package would be)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_readers_find_the_study_from_another_folder_and_create_nothing(project, elsewhere, cli):
    """Without the user's package importable, too: readers run nothing, so they import nothing."""
    import importlib.util

    from hpo import load_best

    assert importlib.util.find_spec("my_models") is None

    space, study_dir = project / "search_spaces" / "digits.yaml", project / "hpo-runs" / "digits"
    before = snapshot(project, elsewhere)
    by_space, by_folder = load_best(space), load_best(study_dir)
    assert by_space.study_name == by_folder.study_name == "digits"
    assert by_space.trial_number == by_folder.trial_number and by_space.params == by_folder.params
    for target in (space, study_dir):
        code, out, err = cli("best", target)
        assert code == 0, err
        assert yaml.safe_load(out)["trial_number"] == by_space.trial_number
        code, out, err = cli("status", target)
        assert code == 0 and "study 'digits'" in out, err
    assert snapshot(project, elsewhere) == before
    assert list(elsewhere.iterdir()) == []


def test_a_missing_study_is_exit_2_naming_every_path_looked_at(project, elsewhere, cli, tmp_path_factory):
    from hpo import load_best
    from hpo._errors import UsageError

    nested = tmp_path_factory.mktemp("spaces") / "a" / "b"
    nested.mkdir(parents=True)
    copy = nested / "digits.yaml"
    copy.write_bytes((project / "search_spaces" / "digits.yaml").read_bytes())
    looked = [elsewhere / "hpo-runs", nested / "hpo-runs", nested.parent / "hpo-runs", nested.parent.parent / "hpo-runs"]
    with pytest.raises(UsageError) as caught:
        load_best(copy)
    for runs in looked:
        assert str(runs / "digits" / "journal.log") in str(caught.value)
    code, out, err = cli("status", copy)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert all(str(runs / "digits" / "journal.log") in " ".join(err.split()) for runs in looked), err
    code, _, err = cli("best", nested)  # a folder that is no study folder
    assert code == 2 and "not a study folder" in err and "journal.log" in err
    code, _, err = cli("status", project / "hpo-runs")  # the runs folder: name the studies it holds
    assert code == 2 and f"a runs folder holding the studies digits; give one of them, e.g. " \
        f"{project / 'hpo-runs' / 'digits'}" in " ".join(err.split()), err
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in nested.iterdir()) == ["digits.yaml"]


def test_export_names_kept_checkpoints_by_absolute_path_and_marks_deleted_ones(project, elsewhere, tmp_path_factory,
                                                                               cli):
    """keep_checkpoints: 1 of 2 trials; then, in a copy of the project, the kept best.pt deleted
    (as keep_checkpoints does when a later trial beats it): the export never points at it."""
    import shutil

    from hpo import export_best
    from hpo._export import read_export

    best = read_export(export_best(project / "hpo-runs" / "digits", elsewhere / "out" / "best.yaml"))[0]
    kept = project / "hpo-runs" / "digits" / "trials" / f"{best.trial_number:05d}" / "best.pt"
    assert best.checkpoint == str(kept) and kept.is_file() and best.checkpoint_note is None
    assert cli("export", project / "hpo-runs" / "digits", "-o", elsewhere / "out" / "cli.yaml")[0] == 0
    assert yaml.safe_load((elsewhere / "out" / "cli.yaml").read_text())["checkpoint"] == str(kept)

    copy = tmp_path_factory.mktemp("copy") / "project"
    shutil.copytree(project, copy)
    (copy / "hpo-runs" / "digits" / "trials" / f"{best.trial_number:05d}" / "best.pt").unlink()
    path = export_best(copy / "search_spaces" / "digits.yaml", elsewhere / "out" / "copy.yaml")
    gone = read_export(path)[0]
    assert gone.trial_number == best.trial_number and gone.checkpoint is None
    assert "keep_checkpoints" in gone.checkpoint_note and "no longer exists" in gone.checkpoint_note
    assert yaml.safe_load(path.read_text())["checkpoint"] is None


def test_a_relative_checkpoint_in_an_export_is_relative_to_the_export_file(elsewhere, tmp_path_factory):
    from hpo._export import read_export

    folder = tmp_path_factory.mktemp("moved")
    (folder / "weights").mkdir()
    doc = {"hpo_export": 1, "study_name": "s", "objective": "objs.py:f", "metrics": ["loss"], "values": [1.0],
           "params": {}, "config": {}, "trial_number": 0, "checkpoint": "weights/best.pt"}
    (folder / "best.yaml").write_text(yaml.safe_dump(doc))
    assert read_export(folder / "best.yaml")[0].checkpoint == str(folder / "weights" / "best.pt")


def test_best_config_of_a_module_study_builds_the_users_classes(project, elsewhere, importable):
    import lightning as L
    import my_models
    import torch

    from hpo import load_best

    cfg = load_best(project / "search_spaces" / "digits.yaml")
    kwargs = cfg.to_lightning_kwargs()
    assert kwargs["module"] == {"width": cfg.params["width"], "dropout": cfg.params["dropout"]}
    assert kwargs["data"] == {"batch_size": cfg.params["batch_size"]}
    assert kwargs["trainer"] == {"max_epochs": 1}
    assert kwargs["stack"]["lr"] == cfg.params["lr"] and kwargs["stack"]["threads"] == 1
    model, data = cfg.instantiate()
    assert type(model) is my_models.SmallCNN and type(data) is my_models.DigitsDataModule
    assert model.classifier.in_features == 2 * cfg.params["width"] * 4
    assert model.dropout.p == cfg.params["dropout"] and data.batch_size == cfg.params["batch_size"]
    again, _ = cfg.instantiate()  # seeded from the trial: the same initial weights each time
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert L.Trainer(**kwargs["trainer"], logger=False, enable_checkpointing=False).max_epochs == 1
    assert list(elsewhere.iterdir()) == []


def test_to_lightning_kwargs_of_a_function_study_says_to_use_config():
    from hpo._errors import UsageError
    from hpo._export import BestConfig

    cfg = BestConfig("s", "objs.py:quadratic", ("loss",), ("minimize",), 0, (1.0,), {"x": 1.0}, {"x": 1.0})
    with pytest.raises(UsageError, match="not a LightningModule of yours.*use .config"):
        cfg.to_lightning_kwargs()


def test_a_study_found_elsewhere_keeps_its_folder_and_its_default_mlflow_store(tmp_path_factory, monkeypatch):
    """Report, export and trial folders go to the study's hpo-runs, not to the current folder."""
    from hpo._locate import reader_spec
    from hpo.tracking import default_tracking_uri

    project = tmp_path_factory.mktemp("proj")
    (project / "spaces").mkdir()
    (project / "spaces" / "objs.py").write_text("def f(params, ctx):\n    return params['x']\n")
    doc = {"study": {"name": "s", "direction": "minimize", "metric": "loss"}, "objective": {"name": "objs.py:f"},
           "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}}
    (project / "spaces" / "s.yaml").write_text(yaml.safe_dump(doc))
    (project / "hpo-runs" / "s").mkdir(parents=True)
    (project / "hpo-runs" / "s" / "journal.log").write_text("")
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    spec = reader_spec(project / "spaces" / "s.yaml")
    assert spec.study_dir == project / "hpo-runs" / "s"
    assert spec.mlflow.tracking_uri == default_tracking_uri(project / "hpo-runs")
