"""A space file without `sampler:`/`pruner:` gets TPE (modelling after 5 start-up trials) + the median
pruner (the search-efficiency benchmark's choice); every part of it can be overridden."""

from __future__ import annotations

import pytest
from _helpers import base_space

from hpo._spec import ComponentSpec, load_spec
from hpo._study import open_study

DEFAULT_SAMPLER = ComponentSpec("tpe", {"n_startup_trials": 5})
DEFAULT_PRUNER = ComponentSpec("median", {})


def builtin_space(fixed=None, space=None, **sections):
    """A built-in objective's space document with no sampler or pruner section."""
    sections.setdefault("study", {"direction": "maximize", "metric": "val_acc", "n_trials": 4, "seed": 0})
    doc = base_space(objective={"name": "sequence_classifier", "fixed": {"dataset": "digits", **(fixed or {})}},
                     space=space or {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}, **sections)
    for section in ("sampler", "pruner"):
        if section not in sections:
            del doc[section]
    return doc


@pytest.mark.parametrize("fixed, space", [
    ({"max_epochs": 15}, None),                                                            # fixed
    ({}, {"max_epochs": {"type": "int", "low": 5, "high": 40}}),                           # searched range
    ({"max_epochs": 4}, {"cv_folds": {"type": "int", "low": 2, "high": 5}}),               # cross-validation
])
def test_defaults_for_a_builtin_objective(write_space, fixed, space):
    spec = load_spec(write_space(builtin_space(fixed, space)))
    assert (spec.sampler, spec.pruner) == (DEFAULT_SAMPLER, DEFAULT_PRUNER)
    assert spec.raw["pruner"] == {"name": "median", "options": {}}


def test_the_study_runs_with_exactly_that_sampler_and_pruner(write_space):
    import optuna

    from hpo._optuna_compat import settings_of

    study = open_study(load_spec(write_space(builtin_space({"max_epochs": 15}))))
    sampler, pruner = study.sampler, study.pruner
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert settings_of(sampler)["constant_liar"] is True and not settings_of(sampler)["multivariate"]
    assert settings_of(sampler)["n_startup_trials"] == 5
    assert type(pruner) is optuna.pruners.MedianPruner


def test_a_function_objective_gets_the_same_pruner(write_space):
    doc = {k: v for k, v in base_space().items() if k not in ("sampler", "pruner")}
    assert load_spec(write_space(doc)).pruner == DEFAULT_PRUNER


def test_multi_objective_studies_get_no_pruner(write_space):
    doc = builtin_space({"max_epochs": 5}, study={"directions": ["maximize", "minimize"],
                                                  "metrics": ["val_acc", "val_loss"]})
    spec = load_spec(write_space(doc))
    assert spec.pruner == ComponentSpec("none", {})
    assert spec.sampler == ComponentSpec("tpe", {})  # Optuna's 10 start-up trials: none is pruned early


@pytest.mark.parametrize("sections, sampler, pruner", [
    # options without a name are merged over the defaults'
    ({"pruner": {"options": {"n_warmup_steps": 3}}}, DEFAULT_SAMPLER, ComponentSpec("median", {"n_warmup_steps": 3})),
    ({"sampler": {"options": {"n_startup_trials": 4}}}, ComponentSpec("tpe", {"n_startup_trials": 4}), DEFAULT_PRUNER),
    # a name is taken as given, with exactly the options the file gives
    ({"pruner": {"name": "percentile", "options": {"percentile": 25.0}}}, DEFAULT_SAMPLER,
     ComponentSpec("percentile", {"percentile": 25.0})),
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
    assert "sampler tpe {'constant_liar': True, 'n_startup_trials': 5}; pruner median" in out
