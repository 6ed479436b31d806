"""Space file validation: every user mistake is exit code 2 with the file and key path named."""

from __future__ import annotations

import pytest
from _helpers import base_space

from hpo._errors import SpecError
from hpo._spec import load_spec

BAD_SPACES = {
    # name: (document or YAML text, key path the message must contain, another fragment it must contain)
    "log_with_zero_low": (base_space(space={"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}),
                          "space.lr.low", "must be > 0 when log is true, got 0.0"),
    "high_below_low": (base_space(space={"x": {"type": "float", "low": 2.0, "high": 1.0}}), "space.x.high", ">= low"),
    "unknown_top_key": (dict(base_space(), studdy={}), "studdy", "did you mean 'study'"),
    "unknown_study_key": (base_space(study={"n_trails": 3}), "study.n_trails", "did you mean 'n_trials'"),
    "unknown_param_key": (base_space(space={"x": {"type": "float", "low": 0, "high": 1, "steps": 1}}),
                          "space.x.steps", "did you mean 'step'"),
    "bad_param_type": (base_space(space={"x": {"type": "flaot", "low": 0, "high": 1}}), "space.x.type",
                       "did you mean 'float'"),
    "unknown_sampler": (base_space(sampler={"name": "tpee"}), "sampler.name", "known: grid, random, tpe"),
    "unknown_pruner": (base_space(pruner={"name": "hyperbnd"}), "pruner.name", "did you mean 'hyperband'"),
    "bad_sampler_option": (base_space(sampler={"name": "tpe", "options": {"n_startup_trails": 3}}),
                           "sampler.options.n_startup_trails", "did you mean 'n_startup_trials'"),
    "bad_direction": (base_space(study={"direction": "maximise", "metric": "loss"}), "study.direction",
                      "did you mean 'maximize'"),
    "n_trials_not_int": (base_space(study={"n_trials": "ten"}), "study.n_trials", "expected an integer"),
    "n_trials_zero": (base_space(study={"n_trials": 0}), "study.n_trials", "must be > 0"),
    "empty_choices": (base_space(space={"c": {"type": "categorical", "choices": []}}), "space.c.choices",
                      "non-empty list"),
    "when_unknown_param": (base_space(space={"x": {"type": "float", "low": 0, "high": 1, "when": {"optim": "sgd"}}}),
                           "space.x.when.optim", "refers to no param"),
    "when_impossible_value": (base_space(space={
        "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
        "m": {"type": "float", "low": 0, "high": 1, "when": {"opt": "sdg"}}}), "space.m.when.opt", "not a possible value"),
    "grid_continuous": (base_space(sampler={"name": "grid"}), "space.x", "grid search needs a finite set"),
    "categorical_duplicate_choices": (base_space(space={"c": {"type": "categorical", "choices": ["a", "b", "a"]}}),
                                      "space.c.choices", "choices must be distinct"),
    "categorical_choices_equal_in_python": (base_space(space={"c": {"type": "categorical", "choices": [1, 1.0, True]}}),
                                            "space.c.choices", "choices 1 and 1.0 are the same value to Optuna"),
    "when_an_empty_list": (base_space(space={"c": {"type": "categorical", "choices": ["a", "b"]},
                                             "x": {"type": "float", "low": 0, "high": 1, "when": {"c": []}}}),
                           "space.x.when.c", "an empty list: the param would never be sampled"),
    "when_a_continuous_param": (base_space(space={"n": {"type": "float", "low": 0, "high": 1},
                                                  "x": {"type": "float", "low": 0, "high": 1, "when": {"n": 0.5}}}),
                                "space.x.when.n", "n is a float range"),
    "storage_url_with_a_mistyped_database": (base_space(study={"direction": "minimize", "metric": "loss",
                                                               "storage": "postgress://u@localhost/db"}),
                                             "study.storage", "unknown kind of storage 'postgress' (did you mean "
                                                              "'postgresql'?)"),
    "study_name_empty": (base_space(study={"direction": "minimize", "metric": "loss", "name": ""}),
                         "study.name", "empty; leave the key out to name the study after the file"),
    "choices_on_a_float": (base_space(space={"x": {"type": "float", "choices": [0.1, 0.2]}}),
                           "space.x.choices", "lists its values with values: [...]"),
    "when_on_itself": (base_space(space={"y": {"type": "categorical", "choices": ["a", "b"], "when": {"y": "a"}}}),
                       "space.y.when.y", "refers to the param itself"),
    "int_high_off_the_step_grid": (base_space(space={"x": {"type": "int", "low": 1, "high": 6, "step": 3}}),
                                   "space.x.high", "6 is not low (1) plus whole steps of 3: the last value would "
                                                   "be 4; set high to 4 or 7"),
    "float_high_off_the_step_grid": (base_space(space={"x": {"type": "float", "low": 0.0, "high": 0.95,
                                                             "step": 0.1}}),
                                     "space.x.high", "set high to 0.9 or 1"),
    "step_with_log": (base_space(space={"x": {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}}),
                      "space.x.step", "cannot be combined with log"),
    "int_with_float_bound": (base_space(space={"n": {"type": "int", "low": 1.5, "high": 4}}), "space.n.low",
                             "expected an integer"),
    "values_and_range": (base_space(space={"x": {"type": "float", "values": [1, 2], "low": 0}}), "space.x.low",
                         "either values"),
    "missing_objective": ({k: v for k, v in base_space().items() if k != "objective"}, "objective.name",
                          "required"),
    "objective_file_missing": (base_space(objective={"name": "nowhere.py:f"}), "objective.name", "not found"),
    "unknown_builtin_objective": (base_space(objective={"name": "image_clasifier"}), "objective.name",
                                  "did you mean 'image_classifier'"),
    "builtin_unknown_param": (base_space(objective={"name": "image_classifier"},
                                         space={"lrr": {"type": "float", "low": 0.01, "high": 0.1}}),
                              "space.lrr", "did you mean 'lr'"),
    "builtin_bad_fixed_value": (base_space(objective={"name": "image_classifier", "fixed": {"dataset": "cifar"}},
                                            space={"lr": {"type": "float", "low": 0.01, "high": 0.1}}),
                                "objective.fixed.dataset", "expected one of digits, mnist1d, npz:PATH or imagefolder:PATH"),
    "builtin_bad_choice": (base_space(objective={"name": "image_classifier"},
                                      space={"optimizer": {"type": "categorical", "choices": ["sgd", "adam"]}}),
                           "space.optimizer", "did you mean 'adamw'"),
    "param_also_fixed": (base_space(objective={"name": "objs.py:quadratic", "fixed": {"x": 1}}), "space.x",
                         "also in objective.fixed"),
    "metrics_length": (base_space(study={"directions": ["minimize", "maximize"], "metrics": ["a"]}),
                       "study.metrics", "one metric per direction"),
    "storage_not_url": (base_space(study={"storage": "my.db"}), "study.storage", "database URL"),
    "duplicate_key": ("study: {n_trials: 3}\nstudy: {n_trials: 4}\nobjective: {name: objs.py:quadratic}\n",
                      "line 2", "duplicate key 'study'"),
    "not_yaml": ("study: {n_trials: 3\nobjective: [\n", "not valid YAML", "line"),
    "top_level_list": ("- a\n- b\n", "space.yaml", "expected a mapping of sections"),
}


@pytest.mark.parametrize("name", list(BAD_SPACES))
def test_bad_space_file_exits_2_naming_the_key(name, write_space, cli):
    doc, key_path, fragment = BAD_SPACES[name]
    path = write_space(doc)
    code, out, err = cli("validate", path)
    assert code == 2
    assert str(path.name) in err
    assert key_path in err
    assert fragment in err
    assert "Traceback" not in err + out


def test_bad_file_never_starts_a_study(write_space, cli, workdir):
    path = write_space(base_space(space={"x": {"type": "float", "low": 0, "high": 1, "log": True}}))
    code, _, err = cli("run", path)
    assert code == 2 and "space.x.low" in err
    assert not (workdir / "hpo-runs").exists()


def test_missing_file_is_a_usage_error(cli, workdir):
    code, _, err = cli("validate", workdir / "nope.yaml")
    assert code == 2 and "nope.yaml" in err and "file not found" in err


def test_defaults_and_resolved_values(write_space):
    doc = {k: v for k, v in base_space(study={"metric": "loss"}).items() if k not in ("sampler", "pruner")}
    spec = load_spec(write_space(doc, name="my-study"))
    assert spec.study.name == "my-study"
    assert spec.study.directions == ("minimize",)
    assert spec.study.n_trials == 20
    assert spec.sampler.name == "tpe" and spec.pruner.name == "median"  # tests/search: the options
    assert spec.study_dir.as_posix() == "hpo-runs/my-study"


def test_cli_flags_and_set_override_the_file(write_space):
    path = write_space(base_space())
    spec = load_spec(path, overrides={"study.n_trials": 9, "study.seed": None},
                     sets=["sampler.name=tpe", "sampler.options.n_startup_trials=2", "objective.fixed.a=0.5"])
    assert spec.study.n_trials == 9
    assert spec.study.seed == 0  # a None override leaves the file's value
    assert spec.sampler == type(spec.sampler)("tpe", {"n_startup_trials": 2})
    assert spec.objective.fixed == {"a": 0.5}


def test_exponent_numbers_without_a_dot_are_numbers_in_the_file_and_in_set(write_space):
    """``1e-4`` is a number (YAML 1.2, JSON, Python); PyYAML alone reads it as text."""
    text = ("objective: {name: objs.py:quadratic}\n"
            "study: {direction: minimize, metric: loss, n_trials: 2}\n"
            "space:\n  x: {type: float, low: 1e-4, high: 3E1, log: true}\n"
            "  tag: {type: categorical, choices: ['1e-4', b]}\n")
    spec = load_spec(write_space(text), sets=["objective.fixed.wd=-2e+3"])
    x, tag = spec.space
    assert (x.low, x.high) == (0.0001, 30.0) and tag.choices == ("1e-4", "b")  # quoted: text
    assert spec.objective.fixed == {"wd": -2000.0}


def test_a_set_that_makes_another_key_of_the_param_wrong_is_named(write_space):
    """--set space.x.type=int leaves low: -1.0, a float: the error blamed the file alone."""
    doc = base_space(space={"x": {"type": "float", "low": -1.0, "high": 1.0}})
    with pytest.raises(SpecError, match=r"space\.x\.low: expected an integer, got -1\.0 \(float\) "
                                        r"\(after --set space\.x\.type=int\)"):
        load_spec(write_space(doc), sets=["space.x.type=int"])


def test_a_condition_on_a_log_int_range_is_kept(write_space):
    """Only float ranges are refused as conditions: an int, log or not, takes the value exactly."""
    doc = base_space(space={"n": {"type": "int", "low": 1, "high": 64, "log": True},
                            "x": {"type": "float", "low": 0, "high": 1, "when": {"n": 8}}})
    assert load_spec(write_space(doc)).space[1].when == (("n", (8,)),)


def test_set_value_is_validated_like_the_file(write_space):
    with pytest.raises(SpecError, match=r"study\.n_trials: must be > 0"):
        load_spec(write_space(base_space()), sets=["study.n_trials=-1"])
    with pytest.raises(SpecError, match="key.path=value"):
        load_spec(write_space(base_space()), sets=["study.n_trials"])


def test_conditional_params_are_ordered_after_their_condition(write_space):
    spec = load_spec(write_space(base_space(space={
        "gamma": {"type": "float", "low": 0.1, "high": 0.9, "when": {"schedule": "step"}},
        "schedule": {"type": "categorical", "choices": ["step", "cosine"]},
    })))
    assert [p.name for p in spec.space] == ["schedule", "gamma"]
    assert spec.space[1].is_active({"schedule": "step"}) and not spec.space[1].is_active({"schedule": "cosine"})


def test_yaml_is_loaded_safely(write_space):
    path = write_space("study: !!python/object/apply:os.system ['echo pwned']\nobjective: {name: objs.py:quadratic}\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_tpe_uses_the_constant_liar_unless_told_otherwise():
    from hpo._components import make_sampler
    from hpo._optuna_compat import settings_of

    assert settings_of(make_sampler("tpe", {}, 0))["constant_liar"] is True
    assert settings_of(make_sampler("tpe", {"constant_liar": False}, 0))["constant_liar"] is False
