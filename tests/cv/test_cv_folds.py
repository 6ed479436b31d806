"""Cross-validation of the built-in objectives, observed in training: the batches each fold's
model saw, the values reported to the pruner, the trial's attributes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import optuna
import pytest
from _cv_helpers import COUNTS, N_VAL, VAL_OFFSET, SeenBatches, labels

from hpo._keys import CV_FOLD_CURVES, CV_FOLD_VALUES, CV_STD
from objectives._fit import run_classifier


def _train(params, ctx, **kwargs):
    seen = SeenBatches()
    result, _ = run_classifier("sequence", params, ctx, callbacks=[seen], **kwargs)
    return result, seen


def test_each_fold_trains_on_the_others_and_validates_on_its_own_stratified_fold(params, make_ctx):
    _, seen = _train(params, make_ctx())

    assert len(seen.fits) == 3
    everything = set(range(sum(COUNTS)))
    held = [set(f["val"]) for f in seen.fits]
    assert set().union(*held) == everything and sum(map(len, held)) == len(everything)  # a partition
    y = labels()
    for fold in seen.fits:
        assert set(fold["train"]) == everything - set(fold["val"])  # the other folds, all of them
        counts = Counter(int(y[i]) for i in set(fold["val"]))
        for cls, total in enumerate(COUNTS):  # stratified: a third of each class, +-1
            assert abs(counts[cls] - total / 3) < 1
    assert not any(i >= sum(COUNTS) for f in seen.fits for i in f["train"] + f["val"])  # no x_val


def test_folds_follow_the_trial_seed(params, make_ctx):
    first = [sorted(f["val"]) for f in _train(params, make_ctx(seed=3))[1].fits]
    again = [sorted(f["val"]) for f in _train(params, make_ctx(seed=3))[1].fits]
    other = [sorted(f["val"]) for f in _train(params, make_ctx(seed=4))[1].fits]
    assert first == again
    assert first != other


def test_trial_value_is_the_mean_of_the_folds_best_and_each_fold_is_recorded(params, make_ctx):
    ctx = make_ctx()
    result, _ = _train(params, ctx)

    per_fold = {}
    for step, metrics in ctx.tracker.steps:  # what MLflow gets: fold<i>/val_acc per epoch
        for key, value in metrics.items():
            if key.startswith("fold") and key.endswith("/val_acc"):
                per_fold.setdefault(int(key[4:-8]), []).append(value)
    best = [max(per_fold[f]) for f in range(3)]
    attrs = ctx.trial.user_attrs  # an in-memory trial: its attrs as set
    assert attrs[CV_FOLD_VALUES] == pytest.approx(best)
    assert attrs[CV_STD] == pytest.approx(float(np.std(best)))
    assert result["val_acc"] == pytest.approx(float(np.mean(best)))
    assert [v for s, m in ctx.tracker.steps for k, v in m.items() if k == "cv_fold_value"] == pytest.approx(best)
    assert attrs[CV_FOLD_CURVES] == {str(f): pytest.approx(per_fold[f]) for f in range(3)}


class PruneFromStep(optuna.pruners.BasePruner):
    """Prunes once the trial has reported ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def prune(self, study, trial) -> bool:
        return trial.last_step is not None and trial.last_step >= self.step


def test_pruner_sees_the_running_mean_over_folds_and_a_pruned_trial_runs_no_further_fold(params, make_ctx):
    epochs = params["max_epochs"]
    ctx = make_ctx(pruner=PruneFromStep(epochs + 1))  # the last epoch of fold 1
    seen = SeenBatches()
    with pytest.raises(optuna.TrialPruned):
        run_classifier("sequence", params, ctx, callbacks=[seen])

    assert len(seen.fits) == 2  # fold 2 never started
    reported = ctx.trial.storage.get_trial(ctx.trial._trial_id).intermediate_values
    assert sorted(reported) == list(range(2 * epochs))  # step = fold * max_epochs + epoch
    curves = ctx.trial.user_attrs[CV_FOLD_CURVES]
    for epoch in range(epochs):
        assert reported[epoch] == pytest.approx(curves["0"][epoch])
        assert reported[epochs + epoch] == pytest.approx((curves["0"][epoch] + curves["1"][epoch]) / 2)
    assert CV_FOLD_VALUES not in ctx.trial.user_attrs


def test_without_cv_folds_one_model_trains_on_the_training_split(params, make_ctx):
    _, seen = _train({**params, "cv_folds": 0}, make_ctx())
    assert len(seen.fits) == 1
    assert set(seen.fits[0]["train"]) == set(range(sum(COUNTS)))
    assert set(seen.fits[0]["val"]) == {VAL_OFFSET + i for i in range(N_VAL)}
