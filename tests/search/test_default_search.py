"""A space file without `sampler:`/`pruner:` gets TPE + Hyperband, with Hyperband's
resources taken from the most epochs a trial trains; every part of it can be overridden."""

from __future__ import annotations

import pytest
from _helpers import base_space

from hpo._spec import ComponentSpec, load_spec
from hpo._study import open_study

DEFAULT_SAMPLER = ComponentSpec("tpe", {})


def builtin_space(fixed=None, space=None, **sections):
    """A built-in objective's space document with no sampler or pruner section."""
    sections.setdefault("study", {"direction": "maximize", "metric": "val_acc", "n_trials": 4, "seed": 0})
    doc = base_space(objective={"name": "sequence_classifier", "fixed": {"dataset": "digits", **(fixed or {})}},
                     space=space or {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}, **sections)
    for section in ("sampler", "pruner"):
        if section not in sections:
            del doc[section]
    return doc


def hyperband(max_resource, reduction_factor=3):
    return ComponentSpec("hyperband", {"min_resource": 1, "max_resource": max_resource,
                                       "reduction_factor": reduction_factor})


@pytest.mark.parametrize("fixed, space, max_resource", [
    ({"max_epochs": 15}, None, 15),                                                            # fixed
    ({}, {"max_epochs": {"type": "int", "low": 5, "high": 40}}, 40),                           # searched range
    ({}, {"max_epochs": {"type": "categorical", "choices": [30, 12]}}, 30),                    # searched choices
    ({}, None, 10),                                                                            # the knob's default
    ({"max_epochs": 4, "cv_folds": 3}, None, 12),                # cross-validation: steps run on across folds
    ({"max_epochs": 4}, {"cv_folds": {"type": "int", "low": 2, "high": 5}}, 20),
])
def test_defaults_for_a_builtin_objective(write_space, fixed, space, max_resource):
    spec = load_spec(write_space(builtin_space(fixed, space)))
    assert spec.sampler == DEFAULT_SAMPLER
    assert spec.pruner == hyperband(max_resource)
    assert spec.raw["pruner"] == {"name": "hyperband", "options": dict(spec.pruner.options)}


def test_the_study_runs_with_exactly_that_sampler_and_pruner(write_space):
    import optuna

    from hpo._optuna_compat import settings_of

    study = open_study(load_spec(write_space(builtin_space({"max_epochs": 15}))))
    sampler, pruner = study.sampler, study.pruner
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert settings_of(sampler)["constant_liar"] is True and not settings_of(sampler)["multivariate"]
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert settings_of(pruner) == {"min_resource": 1, "max_resource": 15, "reduction_factor": 3}


def test_a_function_objective_lets_hyperband_learn_its_steps(write_space):
    doc = {k: v for k, v in base_space().items() if k not in ("sampler", "pruner")}
    spec = load_spec(write_space(doc))
    assert spec.pruner == hyperband("auto")  # from the first trial that completes: hpo cannot know its steps


def test_a_module_study_uses_the_stacks_max_epochs():
    from hpo._objective import declared_budget, module_study_name

    # (loading a LightningModule for a whole space file takes long: the budget rule is what matters)
    assert declared_budget(module_study_name("net.py:Net", None), {"max_epochs": 7, "hidden": 3}, {}) == 7
    assert declared_budget(module_study_name("net.py:Net", None), {}, {"max_epochs": 20}) == 20


def test_multi_objective_studies_get_no_pruner(write_space):
    doc = builtin_space({"max_epochs": 5}, study={"directions": ["maximize", "minimize"],
                                                  "metrics": ["val_acc", "val_loss"]})
    assert load_spec(write_space(doc)).pruner == ComponentSpec("none", {})


@pytest.mark.parametrize("sections, sampler, pruner", [
    # options without a name are merged over the defaults' (resources kept)
    ({"pruner": {"options": {"reduction_factor": 2}}}, DEFAULT_SAMPLER, hyperband(12, 2)),
    ({"pruner": {"options": {"max_resource": 6}}}, DEFAULT_SAMPLER, hyperband(6)),
    ({"sampler": {"options": {"n_startup_trials": 4}}}, ComponentSpec("tpe", {"n_startup_trials": 4}), hyperband(12)),
    # a name is taken as given, with exactly the options the file gives
    ({"pruner": {"name": "median"}}, DEFAULT_SAMPLER, ComponentSpec("median", {})),
    ({"sampler": {"name": "tpe"}, "pruner": {"name": "hyperband"}}, ComponentSpec("tpe", {}),
     ComponentSpec("hyperband", {})),
    ({"sampler": {"name": "random"}, "pruner": {"name": "none"}}, ComponentSpec("random", {}), ComponentSpec("none", {})),
])
def test_every_part_of_the_default_can_be_overridden(write_space, sections, sampler, pruner):
    spec = load_spec(write_space(builtin_space({"max_epochs": 12}, **sections)))
    assert (spec.sampler, spec.pruner) == (sampler, pruner)


def test_set_overrides_the_default_too(write_space):
    spec = load_spec(write_space(builtin_space({"max_epochs": 12})), sets=["pruner.name=successive_halving"])
    assert spec.pruner == ComponentSpec("successive_halving", {})


def test_validate_shows_the_resolved_default(cli, write_space):
    code, out, _ = cli("validate", write_space(builtin_space({"max_epochs": 15})))
    assert code == 0
    out = " ".join(out.split())  # the console wraps long lines
    assert "sampler tpe ; pruner hyperband {'min_resource': 1, 'max_resource': 15, 'reduction_factor': 3}" in out
