"""search_spaces/finetune.yaml end to end: pre-train with the quick-start space, then fine-tune its
best trial through ``init_from: study:quickstart`` (small budgets)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from _helpers import load_trials

from hpo import load_best

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


def _backbone(path: str | Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["state_dict"]
    # Parameters only: BatchNorm's running statistics still move in frozen layers.
    return {k: v for k, v in state.items() if k.startswith("model.features.") and k.endswith(("weight", "bias"))}


@pytest.mark.slow  # ~40 s: two small studies
def test_finetune_example_starts_from_the_quickstart_study(workdir, cli):
    for name in ("quickstart", "finetune"):
        shutil.copy(SPACES / f"{name}.yaml", workdir / f"{name}.yaml")
    code, out, err = cli("validate", workdir / "finetune.yaml")
    assert code == 2 and "objective.fixed.init_from: no study 'quickstart'" in err

    code, out, err = cli("run", workdir / "quickstart.yaml", "--n-trials", "1", "--no-report",
                         "--set", "objective.fixed.max_epochs=2")
    assert code == 0, out + err
    pretrained = load_best(workdir / "quickstart.yaml")
    code, out, err = cli("validate", workdir / "finetune.yaml")
    assert code == 0, err

    # unfreeze_at_epoch=0 keeps the backbone frozen: each trial's best weights hold the pre-trained backbone.
    code, out, err = cli("run", workdir / "finetune.yaml", "--n-trials", "2", "--no-report",
                         "--set", "objective.fixed.max_epochs=2", "--set", "objective.fixed.unfreeze_at_epoch=0")
    assert code == 0, out + err
    trials = load_trials(workdir / "finetune.yaml")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    expected = _backbone(pretrained.checkpoint)
    for trial in trials:
        got = _backbone(workdir / trial.user_attrs["checkpoint"])
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
