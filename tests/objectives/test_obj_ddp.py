"""Two-process DDP on CPU (gloo): one Optuna trial, consistent pruning, no process left behind."""

from __future__ import annotations

import os

import optuna
import pytest

import objectives


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie would still answer; ours are waited for, so alive means alive.
    return False


def test_ddp_trial_is_pruned_on_every_rank_at_the_same_epoch(make_ctx, tiny):
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=1))
    params = dict(tiny, max_epochs=6, devices=2, strategy="ddp")
    ctx = make_ctx(params, study=study)
    with pytest.raises(optuna.TrialPruned):
        objectives.image_classifier(params, ctx)
    study.tell(ctx.trial, state=optuna.trial.TrialState.PRUNED)

    assert len(study.trials) == 1
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    assert ctx.last_step == 1  # what the driver records as pruned_at_epoch
    ranks = ctx.trial.user_attrs["ddp_ranks"]
    assert [(r["rank"], r["status"], r["epoch"], r["returncode"]) for r in ranks] == [(1, "pruned", 1, 0)]
    assert all(_gone(r["pid"]) for r in ranks)
    assert [s for s, _ in ctx.tracker.steps] == [0, 1]  # only rank 0 reports


def test_ddp_trial_completes_with_one_trial(make_ctx, tiny):
    study = optuna.create_study(direction="maximize")
    params = dict(tiny, max_epochs=2, devices=2, strategy="ddp")
    ctx = make_ctx(params, study=study)
    result = objectives.image_classifier(params, ctx)
    study.tell(ctx.trial, result["val_acc"])
    assert len(study.trials) == 1 and study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert result["val_acc"] > 0.3
    # Both ranks' training samples are counted.
    assert [s for s, _ in ctx.tracker.steps] == [0, 1]
    (rank1,) = ctx.trial.user_attrs["ddp_ranks"]
    assert rank1["status"] == "complete" and rank1["returncode"] == 0 and _gone(rank1["pid"])
    assert (ctx.workdir / "best.pt").is_file()
    for key in ("MASTER_PORT", "WORLD_SIZE", "LOCAL_RANK", "RANK"):
        assert key not in os.environ
