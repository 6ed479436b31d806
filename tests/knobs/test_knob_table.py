"""The knob table drives TrainConfig: its fields, defaults, checks, messages and the stack's names."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from objectives import _config
from objectives._config import TrainConfig
from objectives._knobs import (
    APPLIES_TO,
    BUILTIN,
    GROUPS,
    KNOBS,
    STACK,
    AnyOf,
    DatasetName,
    FoldCount,
    Interval,
    Knob,
    Options,
    Patterns,
    Teacher,
)

CONSTRAINED = [k for k in KNOBS if k.constraint is not None]


def test_train_config_fields_are_exactly_the_table():
    fields = dataclasses.fields(TrainConfig)
    assert [f.name for f in fields] == [k.name for k in KNOBS]
    assert {f.name: f.default for f in fields} == {k.name: k.default for k in KNOBS}
    assert _config.PARAM_NAMES == tuple(k.name for k in KNOBS)


def test_stack_and_builtin_names_come_from_applies_to():
    assert _config.STACK_KNOBS == tuple(k.name for k in KNOBS if k.applies_to == STACK)
    assert _config.BUILTIN_ONLY == tuple(k.name for k in KNOBS if k.applies_to == BUILTIN)
    assert {k.applies_to for k in KNOBS} <= set(APPLIES_TO)
    assert {k.group for k in KNOBS} <= set(GROUPS)
    assert len({k.name for k in KNOBS}) == len(KNOBS)
    assert all(k.doc.strip() for k in KNOBS)


@pytest.mark.parametrize("knob", KNOBS, ids=lambda k: k.name)
def test_every_default_is_accepted(knob: Knob):
    cfg = TrainConfig.from_params({knob.name: knob.default})
    assert getattr(cfg, knob.name) == knob.default
    assert knob.problem(knob.default) is None


def _outside(interval: Interval, kind: str) -> list[tuple[Any, str]]:
    """Values just outside each end of ``interval``, with the words the message must hold."""
    step = 1 if kind == "int" else 0.5
    out = []
    if interval.low is not None:
        closed = interval.closed in ("left", "both")
        out.append((interval.low - step if closed else interval.low, f"{'>=' if closed else '>'} {interval.low}"))
    if interval.high is not None:
        closed = interval.closed in ("right", "both")
        out.append((interval.high + step if closed else interval.high, f"{'<=' if closed else '<'} {interval.high}"))
    return out


# One bad value per constraint kind and what its message must say (a new kind of constraint fails
# test_every_constraint_has_a_bad_value until it gets a case here).
def _bad_values(knob: Knob) -> list[tuple[Any, str]]:
    cases = {
        Interval: lambda: [(v, f"expected a value {words}, got {v!r}") for v, words in _outside(knob.constraint,
                                                                                                knob.type)],
        Options: lambda: [("no-such-choice", f"expected {knob.allowed()}, got 'no-such-choice' (str)")],
        DatasetName: lambda: [("no-such-data", f"expected {knob.allowed()}, got 'no-such-data' (str)")],
        Teacher: lambda: [(3, "expected a checkpoint path or a mapping of teacher hyperparameters, got 3 (int)")],
        Patterns: lambda: [([""], "expected a list of parameter-name patterns, got [''] (list)")],
        FoldCount: lambda: [(v, f"must be >= 2 (0 turns cross-validation off), got {v}") for v in (1, -2)],
    }
    return cases[type(knob.constraint)]()


def test_every_constraint_has_a_bad_value():
    for knob in CONSTRAINED:
        assert _bad_values(knob), knob.name


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [(k.name, v, w) for k in CONSTRAINED for v, w in _bad_values(k)],
    ids=lambda x: x if isinstance(x, str) and len(x) < 25 else "",
)
def test_a_value_outside_the_constraint_names_key_and_constraint(name: str, value: Any, words: str):
    with pytest.raises(ValueError) as err:
        TrainConfig.from_params({name: value})
    assert str(err.value).startswith(f"{name}: {words}")


@pytest.mark.parametrize("knob", [k for k in KNOBS if isinstance(k.constraint, Interval)], ids=lambda k: k.name)
def test_interval_descriptions_name_the_bounds_the_messages_use(knob: Knob):
    for _, words in _outside(knob.constraint, knob.type):
        assert words in knob.allowed()


@pytest.mark.parametrize(("kind", "expected"), [("int", "an integer"), ("float", "a number")])
def test_a_value_of_the_wrong_type_names_the_type(kind: str, expected: str):
    for knob in (k for k in KNOBS if k.type == kind):
        with pytest.raises(ValueError, match=rf"^{knob.name}: expected {expected}, got 'x' \(str\)"):
            TrainConfig.from_params({knob.name: "x"})


@pytest.mark.parametrize("value", [3, {"head.*": 1}, None])
def test_agc_exclude_that_is_not_a_list_is_a_value_error(value):
    # Used to escape as a TypeError (an int is not iterable) or pass (a dict iterates its keys).
    with pytest.raises(ValueError, match=r"^agc_exclude: expected a list of strings, got "):
        TrainConfig.from_params({"agc_exclude": value})
    assert TrainConfig.from_params({"agc_exclude": "head.*"}).agc_exclude == ("head.*",)


def _another_value(knob: Knob) -> Any:
    if isinstance(knob.constraint, Options):
        return next(c for c in knob.constraint.choices if c != knob.default)
    return knob.default + 1


@pytest.mark.parametrize("knob", [k for k in KNOBS if k.only_with], ids=lambda k: k.name)
def test_a_knob_read_only_with_another_is_refused_without_it(knob: Knob):
    value = _another_value(knob)
    with pytest.raises(ValueError, match=rf"^{knob.name}: only read with {knob.only_with.text}; remove it here"):
        TrainConfig.from_params({knob.name: value})
    assert TrainConfig.from_params({knob.name: knob.default})  # the default changes nothing


def test_only_with_relations_hold_when_met():
    assert TrainConfig.from_params({"arch": "resnet", "depth": 8, "shortcut": "B"}).shortcut == "B"
    assert TrainConfig.from_params({"dataset": "imagefolder:x", "image_size": 16}).image_size == 16


def test_any_of_accepts_what_one_constraint_accepts():
    either = AnyOf((Interval(0, 1), Options(("auto",))))
    assert either.problem(0.5) is None and either.problem("auto") is None
    assert either.problem(2) == "expected a value <= 1, got 2"
    assert either.describe() == ">= 0 and <= 1 or one of auto"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_float_knob_refuses_what_is_not_finite(value: float):
    for knob in (k for k in KNOBS if k.type == "float"):
        with pytest.raises(ValueError, match=rf"^{knob.name}: expected a finite number, got {value!r}$"):
            TrainConfig.from_params({knob.name: value})


@pytest.mark.parametrize(("fixed", "space", "line"), [
    ({"max_epochs": 1, "warmup_epochs": 2.5}, None, "objective.fixed.warmup_epochs: must be <= max_epochs (1)"),
    ({"max_epochs": 2}, {"warmup_epochs": {"type": "float", "low": 0.0, "high": 5.0}},
     "space.warmup_epochs.high: must be <= max_epochs (2): the LR would still be warming up when training ends"),
    # the searched max_epochs makes the fixed warm-up too long: both are named
    ({"warmup_epochs": 3}, {"max_epochs": {"type": "int", "low": 2, "high": 6}},
     "space.max_epochs.low: with max_epochs = 2, warmup_epochs must be <= max_epochs (2)"),
])
def test_a_warm_up_longer_than_the_training_is_refused(write_space, cli, fixed, space, line):
    doc = {"study": {"direction": "maximize", "metric": "val_acc", "n_trials": 1},
           "objective": {"name": "image_classifier", "fixed": {"dataset": "digits", **fixed}},
           "space": space or {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}}, "mlflow": {"enabled": False}}
    code, out, err = cli("validate", write_space(doc))
    assert code == 2 and line in err and len(err.strip().splitlines()) == 1, out + err
