"""`hpo validate` (and so `hpo run`, before it creates anything) refuses sampler and pruner options
Optuna would refuse or choke on later: a value of the wrong type for the constructor's parameter,
or one the constructor rejects. One line, exit 2, naming the file, the key path, the value and what
is expected; the same file used to pass validate, then crash mid-run or fail after the study existed.

Table-driven like tests/errors/test_input_errors.py, with the same ``one_line_error`` check.
"""

from __future__ import annotations

import pytest
from _helpers import base_space


# name: (sampler section or None, pruner section or None, key path, fragments the line must contain)
BAD = {
    "sampler_int_option_given_text": ({"name": "tpe", "options": {"n_startup_trials": "x"}}, None,
                                      "sampler.options.n_startup_trials", ["expected an integer", "'x' (str)"]),
    "sampler_bool_for_int": ({"name": "tpe", "options": {"n_startup_trials": True}}, None,
                             "sampler.options.n_startup_trials", ["expected an integer", "True (bool)"]),
    "sampler_float_for_int": ({"name": "tpe", "options": {"n_ei_candidates": 2.5}}, None,
                              "sampler.options.n_ei_candidates", ["expected an integer", "2.5 (float)"]),
    "sampler_function_option_given_a_number": ({"name": "tpe", "options": {"gamma": 0.5}}, None,
                                               "sampler.options.gamma", ["expected a function", "0.5 (float)"]),
    "sampler_bool_given_text": ({"name": "tpe", "options": {"multivariate": "yes please"}}, None,
                                "sampler.options.multivariate", ["expected true or false", "'yes please' (str)"]),
    "tpe_no_expected_improvement_candidates": ({"name": "tpe", "options": {"n_ei_candidates": 0}}, None,
                                               "sampler.options.n_ei_candidates", ["must be >= 1", "got 0"]),
    "tpe_negative_startup_trials": ({"name": "tpe", "options": {"n_startup_trials": -3}}, None,
                                    "sampler.options.n_startup_trials", ["must be >= 0", "got -3"]),
    "gp_negative_startup_trials": ({"name": "gp", "options": {"n_startup_trials": -1}}, None,
                                   "sampler.options.n_startup_trials", ["must be >= 0", "got -1"]),
    "sampler_constructor_refuses": ({"name": "nsga2", "options": {"population_size": 1}}, None,
                                    "sampler.options.population_size", ["NSGAIISampler refused", "1"]),
    "pruner_int_option_given_text": (None, {"name": "median", "options": {"n_warmup_steps": "two"}},
                                     "pruner.options.n_warmup_steps", ["expected an integer", "'two' (str)"]),
    "pruner_percentile_out_of_range": (None, {"name": "percentile", "options": {"percentile": 150}},
                                       "pruner.options.percentile", ["PercentilePruner refused 150",
                                                                     "between 0 and 100"]),
    "pruner_threshold_without_bounds": (None, {"name": "threshold"}, "pruner.options",
                                        ["ThresholdPruner refused", "lower or upper"]),
    "pruner_threshold_bound_given_text": (None, {"name": "threshold", "options": {"lower": "a"}},
                                          "pruner.options.lower", ["expected a number or null", "'a' (str)"]),
    "pruner_threshold_nan": (None, {"name": "threshold", "options": {"lower": float("nan")}},
                             "pruner.options.lower", ["got .nan, which is no number"]),
    "pruner_negative_warmup": (None, {"name": "median", "options": {"n_warmup_steps": -1}},
                               "pruner.options.n_warmup_steps", ["MedianPruner refused -1", "cannot be negative"]),
    "pruner_hyperband_min_resource_zero": (None, {"name": "hyperband", "options": {"min_resource": 0}},
                                           "pruner.options.min_resource", ["refused 0", "min_resource"]),
    "pruner_hyperband_max_resource_text": (None, {"name": "hyperband", "options": {"max_resource": "all"}},
                                           "pruner.options.max_resource", ["HyperbandPruner refused 'all'",
                                                                           "integer or 'auto'"]),
    "pruner_hyperband_max_below_min": (None, {"name": "hyperband", "options": {"min_resource": 4,
                                                                               "max_resource": 2}},
                                       "pruner.options.max_resource", ["must be >= min_resource (4)", "got 2"]),
}

# Options that must stay valid: (sampler section or None, pruner section or None)
GOOD = {
    "tpe_startup_trials": ({"name": "tpe", "options": {"n_startup_trials": 5}}, None),
    "tpe_multivariate": ({"name": "tpe", "options": {"multivariate": True, "group": True}}, None),
    "tpe_multivariate_null": ({"name": "tpe", "options": {"multivariate": None}}, None),
    "default_sampler_with_options": ({"options": {"n_startup_trials": 3}}, None),
    "cmaes_bools_and_ints": ({"name": "cmaes", "options": {"n_startup_trials": 2, "consider_pruned_trials": True}},
                             None),
    "qmc_type": ({"name": "qmc", "options": {"qmc_type": "halton", "scramble": True}}, None),
    "percentile_float": (None, {"name": "percentile", "options": {"percentile": 25.0}}),
    "percentile_int_for_float": (None, {"name": "percentile", "options": {"percentile": 25}}),
    "threshold_upper": (None, {"name": "threshold", "options": {"upper": 10}}),
    "hyperband_auto": (None, {"name": "hyperband", "options": {"max_resource": "auto"}}),
    "hyperband_ints": (None, {"name": "hyperband", "options": {"min_resource": 1, "max_resource": 9,
                                                               "reduction_factor": 3}}),
    "successive_halving_auto": (None, {"name": "successive_halving", "options": {"min_resource": "auto"}}),
    "median_warmup": (None, {"name": "median", "options": {"n_warmup_steps": 2, "n_startup_trials": 0}}),
}


def _doc(sampler, pruner, **study):
    sections = {}
    if sampler is not None:
        sections["sampler"] = sampler
    if pruner is not None:
        sections["pruner"] = pruner
    if study:
        sections["study"] = {"direction": "minimize", "metric": "loss", "n_trials": 6, "seed": 0, **study}
    return base_space(**sections)


@pytest.mark.parametrize("name", list(BAD))
def test_bad_option_is_one_line_exit_2(name, write_space, cli, one_line_error):
    sampler, pruner, key_path, fragments = BAD[name]
    line = one_line_error(cli("validate", write_space(_doc(sampler, pruner))), "space.yaml", *fragments)
    assert f": {key_path}: " in line, line


@pytest.mark.parametrize("name", list(GOOD))
def test_good_options_stay_valid(name, write_space, cli):
    code, out, err = cli("validate", write_space(_doc(*GOOD[name])))
    assert code == 0, err
    assert "valid" in out


@pytest.mark.parametrize("pruner", [{"name": "median", "options": {"n_warmup_steps": "two"}},
                                    {"name": "percentile", "options": {"percentile": 150}}])
def test_run_with_a_bad_pruner_option_creates_no_study(pruner, workdir, write_space, cli, one_line_error):
    """The study used to be created before the pruner was built: the corrected file, with another
    direction, was then refused because a study of that name already existed."""
    path = write_space(_doc(None, pruner, n_trials=1))
    one_line_error(cli("run", path, "--no-report"), "space.yaml", "pruner.options.")
    assert not (workdir / "hpo-runs" / "space" / "journal.log").exists()
    fixed = _doc(None, {"name": "median"}, n_trials=1, direction="maximize")
    code, _, err = cli("run", write_space(fixed), "--no-report")
    assert code == 0, err
