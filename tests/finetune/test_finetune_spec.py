"""Fine-tuning knobs at ``hpo validate``: bad values are exit 2 with one line naming the file, the
key path, what was expected and what was found; ``init_from`` is resolved relative to the space
file, and readers do not check it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from hpo._spec import load_spec

BUILTIN = {"name": "sequence_classifier", "fixed": {"dataset": "digits", "max_epochs": 4}}


def _space(fixed: dict[str, Any] | None = None, space: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "study": {"direction": "maximize", "metric": "val_acc", "n_trials": 1, "seed": 0},
        "objective": {**BUILTIN, "fixed": {**BUILTIN["fixed"], **(fixed or {})}},
        "space": space or {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
        "mlflow": {"enabled": False},
    }


def _export(path: Path, checkpoint: str | None) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"hpo_export": 1, "study_name": "pre", "objective": "sequence_classifier",
                                    "metrics": ["val_acc"], "values": [0.9], "params": {}, "config": {},
                                    "trial_number": 3, "checkpoint": checkpoint}))
    return path


CASES = [
    ({"freeze": "backbon"}, None, "objective.fixed.freeze",
     "expected none, backbone or a list of parameter-name patterns, got 'backbon' (str) (did you mean 'backbone'?)"),
    ({"freeze": ["model.*", ""]}, None, "objective.fixed.freeze",
     "expected a list of parameter-name patterns, got ['model.*', ''] (list)"),
    ({"freeze": {"model": 1}}, None, "objective.fixed.freeze",
     "expected none, backbone or a list of parameter-name patterns, got {"),
    ({"unfreeze_at_epoch": 2}, None, "objective.fixed.unfreeze_at_epoch",
     "only read with freeze: backbone or a list of patterns; remove it here (got 2)"),
    ({"freeze": "backbone", "unfreeze_at_epoch": 4}, None, "objective.fixed.unfreeze_at_epoch",
     "expected a value < max_epochs (4): the frozen parameters would never train, got 4"),
    ({"freeze": "backbone", "unfreeze_at_epoch": 1, "devices": 2}, None, "objective.fixed.unfreeze_at_epoch",
     "expected 0 with devices > 1 (DDP fixes the trainable parameters when it starts), got 1"),
    ({"freeze": "backbone", "unfreeze_at_epoch": -1}, None, "objective.fixed.unfreeze_at_epoch",
     "expected a value >= 0, got -1"),
    ({"layer_lr_decay": 1.5}, None, "objective.fixed.layer_lr_decay", "expected a value <= 1.0, got 1.5"),
    ({}, {"head_lr_mult": {"type": "categorical", "choices": [2.0, 0.0]}}, "space.head_lr_mult",
     "expected a value > 0.0, got 0.0"),
    ({"init_from": 3}, None, "objective.fixed.init_from", "expected a checkpoint path, an exported best.yaml, study:NAME or null, got 3 (int)"),
    ({"init_from": "study:"}, None, "objective.fixed.init_from",
     "expected a checkpoint path, an exported best.yaml, study:NAME or null, got 'study:' (str)"),
    ({"init_from": "missing.pt"}, None, "objective.fixed.init_from",
     "/missing.pt does not exist (a relative path is relative to the space file)"),
    ({"init_from": "study:nope"}, None, "objective.fixed.init_from", "no study 'nope': looked for "),
    ({"init_from": "gone.yaml"}, None, "objective.fixed.init_from",
     "(trial 3 of study 'pre') has no checkpoint to start from: it kept no checkpoint"),
    ({}, {"init_from": {"type": "categorical", "choices": ["a.pt", "b.pt"]}}, "space.init_from",
     "cannot be searched: the trials of a study fine-tune one starting checkpoint; set init_from in objective.fixed"),
]


@pytest.mark.parametrize(("fixed", "space", "key", "words"), CASES, ids=[c[2] + ":" + str(i) for i, c in enumerate(CASES)])
def test_a_bad_fine_tuning_value_is_one_line_exit_2(workdir, write_space, cli, fixed, space, key, words):
    _export(workdir / "gone.yaml", None)
    path = write_space(_space(fixed, space))
    code, out, err = cli("validate", path)
    assert code == 2 and "Traceback" not in out + err, (code, out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith(f"error: {path}: {key}: ") and words in err, err


def test_init_from_is_relative_to_the_space_file_and_readers_do_not_check_it(workdir, write_space, cli):
    folder = workdir / "spaces"
    folder.mkdir()
    torch.save({"w": torch.zeros(1)}, folder / "pre.pt")
    path = folder / "space.yaml"
    path.write_text(write_space(_space({"init_from": "pre.pt"})).read_text())
    code, out, err = cli("validate", path)  # run from workdir, not from spaces/
    assert code == 0, err
    assert load_spec(path).objective.fixed["init_from"] == str(folder / "pre.pt")
    (folder / "pre.pt").unlink()
    assert cli("validate", path)[0] == 2
    spec = load_spec(path, import_objective=False)  # what status, best, export read with
    assert spec.objective.fixed["init_from"] == str(folder / "pre.pt")


def test_an_export_and_a_study_resolve_to_their_checkpoint(workdir, write_space):
    from objectives._finetune import checkpoint_path, resolve_init_from

    torch.save({"w": torch.zeros(1)}, workdir / "best.pt")
    _export(workdir / "best.yaml", str(workdir / "best.pt"))
    assert checkpoint_path(resolve_init_from("best.yaml", workdir)) == workdir / "best.pt"
    spaces = workdir / "project" / "spaces"
    spaces.mkdir(parents=True)
    (workdir / "project" / "hpo-runs" / "pre").mkdir(parents=True)
    (workdir / "project" / "hpo-runs" / "pre" / "journal.log").write_text("")
    # Found in hpo-runs/ of a folder above the space file, as the readers find a study.
    assert resolve_init_from("study:pre", spaces, check=False) == f"study:{workdir / 'project' / 'hpo-runs' / 'pre'}"


def test_a_module_study_checks_init_from_too(workdir, cli, write_space):
    (workdir / "mods.py").write_text(
        "import torch, pytorch_lightning as pl\n"
        "class M(pl.LightningModule):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.layer = torch.nn.Linear(2, 2)\n")
    doc = _space({})
    doc["objective"] = {"module": "mods.py:M", "fixed": {"init_from": "nothing.pt", "freeze": ["layer.*"]}}
    code, out, err = cli("validate", write_space(doc))
    assert code == 2 and "objective.fixed.init_from: checkpoint " in err and "nothing.pt does not exist" in err
