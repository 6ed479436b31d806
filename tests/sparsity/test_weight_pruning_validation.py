"""Bad weight-pruning values fail `hpo validate` with exit 2 and one line naming the key path;
the example space file runs end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from _helpers import base_space, load_trials

from hpo import _keys as keys

EXAMPLE = Path(__file__).resolve().parents[2] / "search_spaces" / "weight_pruning.yaml"


def _space(fixed: dict, space: dict | None = None) -> dict:
    return base_space(
        study={"direction": "maximize", "metric": "val_acc", "n_trials": 1, "seed": 0},
        objective={"name": "image_classifier", "fixed": {"dataset": "digits", "max_epochs": 5, **fixed}},
        space=space or {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
    )


@pytest.mark.parametrize(("fixed", "space", "line"), [
    ({}, {"prune_amount": {"type": "float", "low": 0.5, "high": 1.2}},
     "space.prune_amount.high: expected a value <= 0.95, got 1.2"),
    ({}, {"prune_amount": {"type": "float", "low": -0.1, "high": 0.5}},
     "space.prune_amount.low: expected a value >= 0.0, got -0.1"),
    ({"prune_amount": 1}, None, "objective.fixed.prune_amount: expected a value <= 0.95, got 1.0"),
    ({"prune_schedule": "cubic"}, None,
     "objective.fixed.prune_schedule: expected one of oneshot, gradual, got 'cubic' (str)"),
    ({"prune_structure": "filters"}, None,
     "objective.fixed.prune_structure: expected one of weights, channels, got 'filters' (str)"),
    ({"prune_schedule": "gradual", "prune_start_epoch": 3, "prune_end_epoch": 2}, None,
     "objective.fixed.prune_end_epoch: must be > prune_start_epoch (3) for prune_schedule: gradual, got 2"),
    ({"prune_schedule": "gradual", "prune_end_epoch": 5}, None,
     "objective.fixed.prune_end_epoch: must be < max_epochs (5): the final sparsity is set at the start of "
     "epoch prune_end_epoch, counted from 0, got 5"),
    ({"prune_schedule": "gradual", "prune_start_epoch": 4}, None,
     "objective.fixed.prune_start_epoch: must be < max_epochs - 1 (4) for prune_schedule: gradual: the sparsity "
     "grows until the start of the last epoch (prune_end_epoch 0), got 4"),
    ({"prune_schedule": "gradual"}, {"prune_start_epoch": {"type": "int", "low": 0, "high": 4}},
     "space.prune_start_epoch.high: must be < max_epochs - 1 (4) for prune_schedule: gradual"),
    ({"prune_start_epoch": 5}, None, "objective.fixed.prune_start_epoch: must be < max_epochs (5)"),
    ({"prune_schedule": "gradual"}, {"prune_end_epoch": {"type": "int", "low": 2, "high": 6}},
     "space.prune_end_epoch.high: must be < max_epochs (5)"),
    ({"prune_end_epoch": 3}, None,
     "objective.fixed.prune_end_epoch: only read with prune_schedule: gradual; remove it here"),
])
def test_bad_weight_pruning_values_exit_2_naming_the_key_path(write_space, cli, fixed, space, line):
    code, out, err = cli("validate", write_space(_space(fixed, space)))
    assert code == 2, out + err
    assert f": {line}" in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.mark.slow  # ~15 s: a whole study
def test_the_example_space_file_runs_end_to_end(workdir, cli):
    path = workdir / EXAMPLE.name
    shutil.copy(EXAMPLE, path)
    code, out, err = cli("run", path, "--n-trials", "2", "--set", "objective.fixed.max_epochs=4",
                         "--set", "space.prune_end_epoch.high=3", "--set", "objective.fixed.width=8", "--no-report")
    assert code == 0, out + err
    trials = [t for t in load_trials(path) if t.state.name == "COMPLETE"]
    assert trials
    for trial in trials:
        end = trial.params["prune_end_epoch"]
        assert end <= 3 and trial.params["prune_start_epoch"] < end
    kept = [t.user_attrs[keys.CHECKPOINT] for t in trials if t.user_attrs.get(keys.CHECKPOINT)]
    assert kept
    state = torch.load(kept[0], weights_only=True)["state_dict"]
    weights = [v for k, v in state.items() if k.endswith(".weight") and v.ndim >= 2]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.8, abs=1e-3)
