"""`hpo validate` (and `run`) warn when the sampler learns only from completed trials and a pruner
stops some: those trials teach it nothing and it may propose them again (GP + median repeated a
configuration in half to three quarters of its trials in the search-efficiency benchmark)."""

from __future__ import annotations

import pytest
from _helpers import base_space

WARNS = "learns only from completed trials"


@pytest.mark.parametrize("sampler, pruner, warns", [
    ({"name": "gp"}, {"name": "median"}, True),
    ({"name": "gp"}, {"name": "hyperband"}, True),
    ({"name": "cmaes"}, {"name": "median"}, True),
    ({"name": "gp"}, {"name": "none"}, False),                                               # nothing is pruned
    ({"name": "cmaes", "options": {"consider_pruned_trials": True}}, {"name": "median"}, False),
    ({"name": "tpe"}, {"name": "median"}, False),                                            # TPE ranks pruned trials
    ({"name": "random"}, {"name": "hyperband"}, False),
])
def test_validate_warns_when_pruned_trials_teach_the_sampler_nothing(write_space, cli, sampler, pruner, warns):
    code, out, err = cli("validate", write_space(base_space(sampler=sampler, pruner=pruner)))
    assert code == 0, err
    assert (WARNS in err) is warns, err
    if warns:
        assert sampler["name"] in err and "pruner: {name: none}" in err


def test_the_warning_names_cmaes_own_option(write_space, cli):
    _, _, err = cli("validate", write_space(base_space(sampler={"name": "cmaes"}, pruner={"name": "median"})))
    assert "consider_pruned_trials: true" in err


def test_run_warns_too(write_space, cli):
    doc = base_space(sampler={"name": "gp"}, pruner={"name": "median"},
                     study={"direction": "minimize", "metric": "loss", "n_trials": 1, "seed": 0})
    code, _, err = cli("run", write_space(doc), "--no-report")
    assert code == 0 and WARNS in err
