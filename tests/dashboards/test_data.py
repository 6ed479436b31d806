"""The dashboard's data functions on hand-built studies (no browser)."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

import dashboards
from dashboards import (
    best_so_far,
    failures,
    learning_curves,
    param_importances,
    pareto_front,
    pruning_savings,
    state_counts,
    study_summary,
    timeline,
    worker_summary,
)



def test_state_counts(single_study):
    assert state_counts(single_study) == {"COMPLETE": 3, "PRUNED": 2, "FAIL": 1, "RUNNING": 1,
                                          "WAITING": 1}


def test_best_so_far_monotone_and_correct(single_study):
    df = best_so_far(single_study)
    assert df["number"].tolist() == [0, 2, 5]  # COMPLETE only, trial-number order
    assert df["value"].tolist() == [0.72, 0.80, 0.75]
    assert df["best_so_far"].tolist() == [0.72, 0.80, 0.80]
    assert df["improved"].tolist() == [True, True, False]
    assert df["best_so_far"].is_monotonic_increasing  # maximise
    assert df["best_so_far"].iloc[-1] == single_study.best_value


def test_best_so_far_minimise_is_monotone_decreasing(synth):
    s = optuna.create_study(direction="minimize")
    vals = [5.0, 3.0, 4.0, 1.0, 2.0, 1.0]
    for i, v in enumerate(vals):
        synth.add(s, state=TrialState.COMPLETE, value=v, start=synth.at(i), end=synth.at(i + 1))
    df = best_so_far(s)
    assert df["best_so_far"].tolist() == [5.0, 3.0, 3.0, 1.0, 1.0, 1.0]
    assert df["best_so_far"].is_monotonic_decreasing
    assert df["improved"].tolist() == [True, True, False, True, False, False]


def test_pruning_savings_by_hand(single_study, synth):
    sav = pruning_savings(single_study)
    assert sav.max_epochs == synth.MAX_EPOCHS == 4
    assert sav.max_epochs_source == "configured"  # from the study's fixed.max_epochs
    # epochs trained: 4 + 2 + 4 + 1 + 1 + 4 + 1 (running) + 0 (waiting)
    assert sav.epochs_trained == 17
    # finished (COMPLETE + PRUNED) trials: 0, 1, 2, 4, 5
    assert sav.n_finished == 5
    assert sav.n_pruned == 2
    # no pruning: 5 finished trials x 4 epochs, plus the failed and running trials' own epochs
    assert sav.epochs_without_pruning == 5 * 4 + 1 + 1 == 22
    assert sav.epochs_saved == 5
    assert sav.saved_fraction == pytest.approx(5 / 22)

    c = sav.curve
    # finished trials in completion-time order (trial 1 finished before trial 0)
    assert c["number"].tolist() == [1, 0, 3, 4, 2, 5]
    assert c["state"].tolist() == ["PRUNED", "COMPLETE", "FAIL", "PRUNED", "COMPLETE",
                                   "COMPLETE"]
    assert c["epochs"].tolist() == [2, 4, 1, 1, 4, 4]
    assert c["cum_epochs"].tolist() == [2, 6, 7, 8, 12, 16]
    assert c["cum_epochs_without_pruning"].tolist() == [4, 8, 9, 13, 17, 21]
    best = c["best_so_far"].tolist()
    assert math.isnan(best[0])
    assert best[1:] == [0.72, 0.72, 0.72, 0.80, 0.80]


def test_pruning_savings_max_epochs_from_info_and_observed(single_study):
    assert pruning_savings(single_study, info={"max_epochs": 10}).epochs_without_pruning \
        == 5 * 10 + 2
    assert pruning_savings(single_study, max_epochs=6).epochs_without_pruning == 5 * 6 + 2
    # no configuration anywhere: the largest observed number of epochs (4)
    s = optuna.create_study(direction="maximize")
    for t in single_study.trials:
        s.add_trial(t)
    sav = pruning_savings(s)
    assert (sav.max_epochs, sav.max_epochs_source) == (4, "observed")
    assert sav.epochs_without_pruning == 22


def test_learning_curves_mark_pruned(single_study):
    df = learning_curves(single_study)
    assert set(df["number"]) == {0, 1, 2, 3, 4, 5, 6}  # every trial that reported
    assert len(df) == 17
    pruned = df[df["pruned"]]
    assert set(pruned["number"]) == {1, 4}
    assert (pruned["state"] == "PRUNED").all()
    assert not df[~df["number"].isin([1, 4])]["pruned"].any()
    stops = df[df["pruned"] & df["last"]]
    assert sorted(zip(stops["number"], stops["step"])) == [(1, 1), (4, 0)]
    assert set(df[df["is_best"]]["number"]) == {2}
    t1 = df[df["number"] == 1]
    assert t1["step"].tolist() == [0, 1] and t1["value"].tolist() == [0.3, 0.35]


def test_timeline_groups_by_worker(single_study, synth):
    tl = timeline(single_study)
    assert 7 not in set(tl["number"])  # WAITING never started
    groups = {w: g["number"].tolist() for w, g in tl.groupby("worker", sort=True)}
    assert groups == {"a:1": [0, 4, 5], "b:2": [1, 2, 6], "unknown": [3]}
    # rows come grouped by worker, each group in start order
    assert tl["worker"].tolist() == ["a:1"] * 3 + ["b:2"] * 3 + ["unknown"]
    row0 = tl[tl["number"] == 0].iloc[0]
    assert row0["duration_s"] == 240.0 and not row0["running"]
    running = tl[tl["number"] == 6].iloc[0]
    assert running["running"] and running["state"] == "RUNNING"
    # drawn up to the last recorded event (trial 5 completed at 10:10)
    assert running["end"] == synth.at(10)

    ws = worker_summary(single_study).set_index("worker")
    assert ws.loc["a:1", "n_trials"] == 3
    assert ws.loc["a:1", "n_complete"] == 2 and ws.loc["a:1", "n_pruned"] == 1
    assert ws.loc["a:1", "busy_s"] == 240 + 30 + 240
    assert ws.loc["unknown", "n_fail"] == 1


def test_failures(single_study):
    f = failures(single_study)
    assert f.to_dict("records") == [{"number": 3, "worker": "unknown",
                                     "fail_reason": "CUDA out of memory", "epochs": 1}]


def _dominates(a, b, signs):
    a = [x * s for x, s in zip(a, signs)]
    b = [x * s for x, s in zip(b, signs)]
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def test_pareto_front_is_non_dominated_set(multi_study, synth):
    df = pareto_front(multi_study)
    assert list(df.columns) == ["number", "val_loss", "val_acc", "params"]
    signs = (1, -1)  # minimise loss, maximise acc
    complete = [t for t in multi_study.trials if t.state == TrialState.COMPLETE]
    expected = sorted(t.number for t in complete
                      if not any(_dominates(o.values, t.values, signs) for o in complete))
    assert expected == [0, 1, 3, 4]  # by hand: 2 dominated by 1, 5 by 3; 1 and 4 tie
    assert df["number"].tolist() == expected
    for _, row in df.iterrows():
        assert (row["val_loss"], row["val_acc"]) == synth.MULTI_POINTS[row["number"]]
    # the pruned trial at (0.1) and the failed one are never on the front
    assert 6 not in df["number"].tolist() and 7 not in df["number"].tolist()


def test_summary_single(single_study):
    s = study_summary(single_study, info={"objective": "image_classifier", "metrics": ["val_acc"],
                                          "space_file": "spaces/x.yaml", "git_sha": "deadbee"})
    assert s.study_name == "synthetic-single"
    assert s.sampler == "tpe"
    assert s.pruner == "median (n_warmup_steps=1)"
    assert s.objective == "image_classifier"
    assert s.objective_names == ["val_acc"]
    assert s.max_epochs == 4
    assert s.best_value == 0.80 and s.best_trial_number == 2
    assert s.best_params == {"lr": 0.005, "width": 128, "schedule": "cosine"}
    assert s.extras == {"git_sha": "deadbee"}
    assert s.n_trials == 8
    # info wins over user attrs
    assert study_summary(single_study, info={"sampler": "random", "study_name": "x"}).sampler \
        == "random"


def test_summary_multi_and_empty(multi_study, empty_study, failed_study):
    m = study_summary(multi_study)
    assert m.is_multi_objective and m.pareto_size == 4 and m.best_value is None
    assert m.objective_names == ["val_loss", "val_acc"]
    e = study_summary(empty_study)
    assert e.n_trials == 0 and e.best_value is None
    f = study_summary(failed_study)
    assert f.state_counts["FAIL"] == 3 and f.best_value is None


def test_importances_ok_and_degrading(single_study, multi_study, empty_study, synth):
    imp = param_importances(single_study)
    assert imp.ok, imp.error
    assert set(imp.table["param"]) == {"lr", "width", "schedule"}
    assert imp.table["importance"].sum() == pytest.approx(1.0)
    assert imp.ranked_params()[0] == imp.table.iloc[0]["param"]

    mi = param_importances(multi_study)
    assert mi.ok and set(mi.table["objective"]) == {"val_loss", "val_acc"}

    # fewer than two completed trials
    assert "at least 2" in param_importances(empty_study).error
    # a parameter that never varies: Optuna's fANOVA raises, we degrade
    s = optuna.create_study()
    for i in range(3):
        synth.add(s, state=TrialState.COMPLETE, value=float(i), params={"lr": 0.01},
            start=synth.at(i), end=synth.at(i + 1))
    bad = param_importances(s)
    assert not bad.ok and bad.error
    # conditional params: none present in every completed trial
    s2 = optuna.create_study()
    for i in range(4):
        params = {"lr": 0.001 * (i + 1)} if i % 2 else {"width": 16 * (i + 1)}
        synth.add(s2, state=TrialState.COMPLETE, value=float(i), params=params, start=synth.at(i),
            end=synth.at(i + 1))
    assert not param_importances(s2).ok


def test_public_api_exports():
    for name in ("build_report", "build_html", "best_so_far", "learning_curves", "timeline",
                 "worker_summary", "pruning_savings", "pareto_front", "param_importances",
                 "study_summary", "state_counts", "failures"):
        assert callable(getattr(dashboards, name)), name


def test_real_optimisation_with_pruner_is_consistent():
    """A study run by Optuna itself (pruner, failures, worker attrs), not hand-built."""
    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.RandomSampler(seed=1),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    reported: dict[int, int] = {}

    def objective(trial):
        x = trial.suggest_float("x", -3, 3)
        trial.set_user_attr("worker", f"host:{trial.number % 2}")
        if trial.number == 3:
            raise RuntimeError("boom")
        loss = 0.0
        for epoch in range(5):
            loss = x * x + 1.0 / (epoch + 1)
            trial.report(loss, epoch)
            reported[trial.number] = epoch + 1
            if trial.should_prune():
                raise optuna.TrialPruned()
        return loss

    study.optimize(objective, n_trials=15, catch=(RuntimeError,))
    counts = state_counts(study)
    assert counts["FAIL"] == 1 and counts["COMPLETE"] + counts["PRUNED"] == 14

    sav = pruning_savings(study, max_epochs=5)
    assert sav.epochs_trained == sum(reported.values())
    assert sav.epochs_without_pruning == 14 * 5
    assert sav.curve["cum_epochs"].iloc[-1] == sav.epochs_trained

    hist = best_so_far(study)
    assert hist["best_so_far"].is_monotonic_decreasing
    assert hist["best_so_far"].iloc[-1] == study.best_value
    lc = learning_curves(study)
    pruned_numbers = {t.number for t in study.trials if t.state == TrialState.PRUNED}
    assert set(lc[lc["pruned"]]["number"]) == pruned_numbers
    assert set(timeline(study)["worker"]) == {"host:0", "host:1"}
