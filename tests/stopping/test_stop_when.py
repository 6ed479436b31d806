"""study.stop_when: a study stops starting trials once its target is reached or it stops improving."""

from __future__ import annotations

import pytest

from _helpers import base_space, load_trials
from hpo._spec import StopRule
from hpo._stopping import early_stop_reason


@pytest.mark.parametrize(("values", "direction", "rule", "stops"), [
    ([], "minimize", StopRule(target=1.0), False),
    ([3.0, 2.0], "minimize", StopRule(target=1.0), False),
    ([3.0, 0.9], "minimize", StopRule(target=1.0), True),
    ([0.9, 0.96], "maximize", StopRule(target=0.95), True),
    ([0.9, 0.94], "maximize", StopRule(target=0.95), False),
    ([1.0, 0.5, 0.6, 0.7], "minimize", StopRule(patience=2), True),       # 2 trials since the last gain
    ([1.0, 0.5, 0.6, 0.4], "minimize", StopRule(patience=2), False),      # the last trial improved
    ([1.0, 0.5, 0.49, 0.48], "minimize", StopRule(patience=2, min_delta=0.05), True),  # gains too small
    ([1.0, 0.5, 0.49, 0.48], "minimize", StopRule(patience=3, min_delta=0.05), False),
    ([0.5, 0.7, 0.71, 0.705], "maximize", StopRule(patience=2, min_delta=0.02), True),
])
def test_early_stop_reason(values, direction, rule, stops):
    assert (early_stop_reason(values, direction, rule) is not None) is stops


@pytest.mark.parametrize(("stop_when", "key", "message"), [
    ({"patience": 0}, "study.stop_when.patience", "> 0"),
    ({"min_delta": 0.1}, "study.stop_when.min_delta", "needs study.stop_when.patience"),
    ({"patience": 3, "min_delta": -1}, "study.stop_when.min_delta", ">= 0"),
    ({"target": "high"}, "study.stop_when.target", "expected a number"),
    ({"patiense": 3}, "study.stop_when", "patiense"),
    ({}, "study.stop_when", "expected target and/or patience"),
])
def test_bad_stop_when_is_exit_2_with_the_key(write_space, cli, stop_when, key, message):
    study = {"direction": "minimize", "metric": "loss", "n_trials": 6, "stop_when": stop_when}
    code, _, err = cli("validate", write_space(base_space(study=study)))
    assert code == 2 and key in err and message in err, err


def test_a_run_stops_once_the_target_is_reached(write_space, cli):
    # quadratic's loss is (x - 2)^2 with x uniform in [-5, 5]: a quarter of the trials reach 1.5 (seeded).
    study = {"direction": "minimize", "metric": "loss", "n_trials": 40, "seed": 0, "stop_when": {"target": 1.5}}
    space = write_space(base_space(study=study, sampler={"name": "random"}))
    code, out, _ = cli("run", space, "--no-report")
    assert code == 0, out
    trials = load_trials(space)
    assert "stop_when: target 1.5 reached" in out
    values = [t.values[0] for t in trials if t.state.name == "COMPLETE"]
    assert len(trials) < 40 and min(values) <= 1.5
    assert all(v > 1.5 for v in values[:-1])  # no trial started after the first one that met the target
