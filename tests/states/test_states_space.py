"""Same study name, changed space: what Optuna refuses stops before any trial; the rest warns."""

from __future__ import annotations

import pytest
from _helpers import base_space, load_trials

FLOAT_X = {"type": "float", "low": 0.5, "high": 5.0}
INT_X = {"type": "int", "low": 1, "high": 5}
COLOR = {"type": "categorical", "choices": ["red", "blue"]}

# (what changes, space at creation, space of the rerun, refused?, words the message must hold)
CASES = [
    ("type float -> categorical", {"x": FLOAT_X}, {"x": {"type": "categorical", "choices": [1, 2]}}, True,
     ["x (trials so far: float in [0.5, 5.0]; now: one of [1, 2])"]),
    ("categorical choices changed", {"x": FLOAT_X, "c": COLOR},
     {"x": FLOAT_X, "c": {"type": "categorical", "choices": ["red", "blue", "green"]}}, True,
     ["c (trials so far: one of ['red', 'blue']; now: one of ['red', 'blue', 'green'])"]),
    ("categorical choices reordered", {"x": FLOAT_X, "c": COLOR},
     {"x": FLOAT_X, "c": {"type": "categorical", "choices": ["blue", "red"]}}, True, ["c (trials so far"]),
    ("int -> float", {"x": INT_X}, {"x": {"type": "float", "low": 1, "high": 5}}, True,
     ["x (trials so far: int in [1, 5]; now: float in [1, 5])"]),
    ("int values changed", {"x": {"type": "int", "values": [1, 2]}}, {"x": {"type": "int", "values": [1, 3]}},
     True, ["x (trials so far: one of [1, 2]; now: int in [1, 3])"]),
    ("log flag changed", {"x": {**FLOAT_X, "log": True}}, {"x": FLOAT_X}, True,
     ["x (trials so far: float in [0.5, 5.0] log; now: float in [0.5, 5.0])"]),
    ("narrower range", {"x": FLOAT_X}, {"x": {**FLOAT_X, "high": 2.0}}, False,
     ["x: was float in [0.5, 5.0], now float in [0.5, 2.0]"]),
    ("wider range", {"x": FLOAT_X}, {"x": {**FLOAT_X, "high": 9.0}}, False, ["x: was float in [0.5, 5.0]"]),
    ("new param", {"x": FLOAT_X}, {"x": FLOAT_X, "c": COLOR}, False, ["c: new param (one of ['red', 'blue'])"]),
    ("new conditional param", {"x": FLOAT_X, "c": COLOR},
     {"x": FLOAT_X, "c": COLOR, "k": {"type": "int", "low": 1, "high": 3, "when": {"c": "red"}}}, False,
     ["k: new param (int in [1, 3] when c in ['red'])"]),
    ("removed param", {"x": FLOAT_X, "c": COLOR}, {"x": FLOAT_X}, False,
     ["c: no longer searched (was one of ['red', 'blue'])"]),
]


def space_doc(space: dict) -> dict:
    return base_space(objective={"name": "objs.py:record_params"}, space=space,
                      study={"direction": "minimize", "metric": "value", "n_trials": 2, "seed": 0})


@pytest.mark.parametrize("what,before,after,refused,words", CASES, ids=[c[0] for c in CASES])
def test_a_changed_space(what, before, after, refused, words, write_space, cli, workdir):
    path = write_space(space_doc(before))
    assert cli("run", path, "--no-report")[0] == 0
    write_space(space_doc(after))
    code, out, err = cli("run", path, "--n-trials", "3", "--no-report")
    if refused:
        assert code == 2, out + err
        line = " ".join(err.split())  # one message, however the console wrapped it
        assert f"{path}: space: study 'space' already exists with another definition of" in line
        assert "--set study.name=space-2" in line
        for word in words:
            assert word in line
        write_space(space_doc(before))  # reading the study checks the space too
        assert [t.state.name for t in load_trials(path)] == ["COMPLETE", "COMPLETE"], "a trial started"
    else:
        assert code == 0, out + err
        line = " ".join(err.split())
        assert "warning: study 'space' goes on with a changed space:" in line
        for word in words:
            assert word in line
        assert len(load_trials(path)) == 3


def test_an_unchanged_space_says_nothing(write_space, cli):
    path = write_space(space_doc({"x": FLOAT_X, "c": COLOR}))
    assert cli("run", path, "--no-report")[0] == 0
    code, _, err = cli("run", path, "--n-trials", "3", "--no-report")
    assert code == 0 and "changed space" not in err


def test_a_param_added_then_changed_again_is_refused(write_space, cli):
    """Optuna checks against what earlier trials used, not only the space of the study's creation."""
    path = write_space(space_doc({"x": FLOAT_X}))
    assert cli("run", path, "--no-report")[0] == 0
    write_space(space_doc({"x": FLOAT_X, "c": COLOR}))
    assert cli("run", path, "--n-trials", "3", "--no-report")[0] == 0
    write_space(space_doc({"x": FLOAT_X, "c": {"type": "float", "low": 0, "high": 1}}))
    code, _, err = cli("run", path, "--n-trials", "4", "--no-report")
    assert code == 2 and "c (trials so far: one of ['red', 'blue']; now: float in [0, 1])" in " ".join(err.split())
