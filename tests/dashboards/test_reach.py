"""The "epochs to reach" panel: when the study's best value first reached each target, in epochs
trained (and what the same trials would have trained without pruning)."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from dashboards import best_so_far_by_cost, build_panels, epochs_to_reach, pruning_savings, reach_targets


def _nan_list(xs):
    return [None if isinstance(x, float) and math.isnan(x) else x for x in xs]


def test_epochs_to_reach_by_hand(single_study):
    # Finished in completion order (see conftest): 1 P (2 ep), 0 C 0.72 (4), 3 F (1), 4 P (1), 2 C 0.80 (4),
    # 5 C 0.75 (4): epochs 2, 6, 7, 8, 12, 16; without pruning every COMPLETE/PRUNED trial counts 4: 4, 8, 9, 13, 17, 21.
    reach = epochs_to_reach(pruning_savings(single_study).curve, [0.70, 0.75, 0.80, 0.81])
    assert _nan_list(reach["cum_epochs"].tolist()) == [6, 12, 12, None]
    assert _nan_list(reach["cum_epochs_without_pruning"].tolist()) == [8, 17, 17, None]
    assert _nan_list(reach["number"].tolist()) == [0, 2, 2, None]


def test_reach_targets_span_first_to_final_best(single_study):
    targets = reach_targets(pruning_savings(single_study).curve)
    assert targets == pytest.approx([0.76, 0.792, 0.7992, 0.80])  # 50/90/99/100% of 0.72 -> 0.80


def test_minimising_studies_reach_downwards(synth):
    s = optuna.create_study(direction="minimize")
    for i, (value, epochs) in enumerate([(5.0, 3), (None, 1), (2.0, 3), (3.0, 3), (1.0, 3)]):
        state = TrialState.COMPLETE if value is not None else TrialState.PRUNED
        synth.add(s, state=state, value=value, iv={e: 9.0 for e in range(epochs)},
                  start=synth.at(i), end=synth.at(i + 1))
    curve = pruning_savings(s, max_epochs=3).curve
    reach = epochs_to_reach(curve, reach_targets(curve), maximize=False)  # targets 3.0, 1.4, 1.04, 1.0
    assert reach["target"].tolist() == pytest.approx([3.0, 1.4, 1.04, 1.0])
    assert reach["cum_epochs"].tolist() == [7, 13, 13, 13]
    assert reach["cum_epochs_without_pruning"].tolist() == [9, 15, 15, 15]


def test_the_panel_draws_the_study_curve_and_where_each_target_was_reached(single_study):
    panel = next(p for p in build_panels(single_study) if p.name == "epochs-to-reach")
    assert panel.unavailable is None
    line, marks = panel.figures[0].data
    assert list(line.x) == [6, 7, 8, 12, 16] and list(line.y) == [0.72, 0.72, 0.72, 0.80, 0.80]
    assert list(marks.y) == pytest.approx([0.76, 0.792, 0.7992, 0.80])
    assert list(marks.x) == [12, 12, 12, 12]
    assert "reach-table" in panel.extra_html and ">17<" in panel.extra_html  # without pruning


def test_a_target_never_reached_is_said_so(synth):
    s = optuna.create_study(direction="maximize")
    synth.add(s, state=TrialState.PRUNED, iv={0: 0.1}, start=synth.at(0), end=synth.at(1))
    panel = next(p for p in build_panels(s) if p.name == "epochs-to-reach")
    assert panel.unavailable == "no trial completed yet, so no best value was reached"


def test_multi_objective_studies_have_no_such_panel(multi_study):
    assert "epochs-to-reach" not in [p.name for p in build_panels(multi_study)]


def test_best_so_far_by_cost():
    trials = [(3, 1.5, 0.5), (1, 0.5, None), (3, 1.0, 0.4), (2, 2.0, math.nan), (3, 1.0, 0.9)]
    assert best_so_far_by_cost(trials) == [(3, 1.5, 0.5), (7, 3.0, 0.5), (12, 6.0, 0.9)]
    assert best_so_far_by_cost(trials, maximize=False)[-1] == (12, 6.0, 0.4)
