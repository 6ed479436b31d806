"""The per-fold learning curves of cross-validated trials (the ``cv_fold_curves`` trial attribute)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from dashboards import _data, _figures, _html

CURVES = {0: {"0": [0.5, 0.7], "1": [0.4, 0.6], "2": [0.55, 0.65]},
          1: {"0": [0.6, 0.9], "1": [0.7, 0.8], "2": [0.65, 0.85]}}


def add(study: optuna.Study, state: TrialState, curves: dict, value: float | None = None) -> None:
    study.add_trial(create_trial(state=state, value=value, user_attrs={"cv_fold_curves": curves},
                                 intermediate_values={0: 0.5}))


@pytest.fixture
def cv_study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    add(study, TrialState.COMPLETE, CURVES[0], 0.65)
    add(study, TrialState.COMPLETE, CURVES[1], 0.85)
    add(study, TrialState.PRUNED, {"0": [0.1, float("nan")]})
    return study


def test_fold_curves_are_one_row_per_trial_fold_and_epoch(cv_study):
    df = _data.fold_curves(cv_study)
    for number, curves in CURVES.items():
        for fold, values in curves.items():
            rows = df[(df["number"] == number) & (df["fold"] == int(fold))]
            assert rows["value"].tolist() == values and rows["epoch"].tolist() == [0, 1]
    assert set(df[df["is_best"]]["number"]) == {1}
    assert df[df["number"] == 2]["value"].tolist() == [0.1]  # NaN left out


def test_the_figure_draws_each_fold_and_the_best_trials_folds(cv_study):
    fig = _figures.fold_curves_figure(cv_study, "val_acc")
    names = [t.name for t in fig.data]
    assert names == ["fold 0", "fold 0 (best trial)", "fold 1", "fold 1 (best trial)", "fold 2",
                     "fold 2 (best trial)"]
    best_fold1 = fig.data[names.index("fold 1 (best trial)")]
    assert [y for y in best_fold1.y if y is not None] == CURVES[1]["1"]


def test_the_panel_appears_only_for_a_cross_validated_study(cv_study, single_study):
    assert "fold-curves" in [p.name for p in _html.build_panels(cv_study)]
    assert "fold-curves" not in [p.name for p in _html.build_panels(single_study)]


def test_pruning_savings_count_a_cross_validated_trial_as_folds_times_max_epochs():
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("fixed", {"max_epochs": 2, "cv_folds": 3})
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.8,
                                 intermediate_values={s: 0.5 for s in range(6)}))
    study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={s: 0.1 for s in range(3)}))
    savings = _data.pruning_savings(study)
    assert savings.epochs_trained == 9
    assert savings.epochs_saved == 3  # the pruned trial's remaining fold and a half
