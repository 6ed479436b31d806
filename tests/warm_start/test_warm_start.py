"""warm_start: a new study first tries given configs, exported bests, or learns from an earlier study."""

from __future__ import annotations

import pytest

from _helpers import base_space, load_trials

STUDY = {"direction": "minimize", "metric": "loss", "seed": 0}


def run(cli, path, *args):
    code, out, err = cli("run", path, "--no-report", *args)
    assert code == 0, out + err
    return load_trials(path)


def test_param_mappings_run_first_and_unknown_params_are_dropped(write_space, cli, capsys):
    path = write_space(base_space(study={**STUDY, "n_trials": 3},
                                  warm_start=[{"x": 2.0}, {"x": -1.0, "depth": 3}]))
    code, out, err = cli("run", path, "--no-report")
    assert code == 0, out + err
    assert "depth not in this space; dropped" in err
    trials = sorted(load_trials(path), key=lambda t: t.number)
    assert [t.params["x"] for t in trials[:2]] == [2.0, -1.0]
    assert trials[0].values == [0.0] and "warm_start" in trials[0].user_attrs
    assert "warm_start" not in trials[2].user_attrs and len(trials) == 3


def test_params_an_earlier_study_had_are_warned_about_once(write_space, cli):
    first = write_space(base_space(study={**STUDY, "name": "first", "n_trials": 3},
                                   space={"x": {"type": "float", "low": -5.0, "high": 5.0},
                                          "y": {"type": "int", "low": 0, "high": 3}}), name="first")
    run(cli, first)
    second = write_space(base_space(study={**STUDY, "name": "second", "n_trials": 3}, warm_start=["study:first"]),
                         name="second")
    code, out, err = cli("run", second, "--no-report")
    assert code == 0, out + err
    assert err.count("warning: warm_start[0]: y not in this space; dropped") == 1, err


def test_an_exported_best_is_tried_first(write_space, cli, workdir):
    first = write_space(base_space(study={**STUDY, "name": "first", "n_trials": 4}), name="first")
    run(cli, first)
    assert cli("export", first, "-o", "best.yaml")[0] == 0
    best = min((t for t in load_trials(first) if t.state.name == "COMPLETE"), key=lambda t: t.values[0])
    second = write_space(base_space(study={**STUDY, "name": "second", "n_trials": 2}, warm_start=["best.yaml"]),
                         name="second")
    trials = sorted(run(cli, second), key=lambda t: t.number)
    assert trials[0].params == best.params and trials[0].values == best.values


def test_an_earlier_study_is_learned_from_without_training_again(write_space, cli, workdir):
    first = write_space(base_space(study={**STUDY, "name": "first", "n_trials": 4}), name="first")
    earlier = [t for t in run(cli, first) if t.state.name == "COMPLETE"]
    (workdir / "params.log").unlink(missing_ok=True)
    second = write_space(base_space(study={**STUDY, "name": "second", "n_trials": 6}, warm_start=["study:first"],
                                    objective={"name": "objs.py:quadratic"}), name="second")
    trials = run(cli, second)
    added = [t for t in trials if "warm_start" in t.user_attrs]
    assert sorted((t.params["x"], t.values[0]) for t in added) == sorted((t.params["x"], t.values[0]) for t in earlier)
    assert all(t.datetime_start == t.datetime_complete for t in added)  # added finished, not run
    assert len(trials) == 6  # the four learned-from trials count toward n_trials


def test_an_earlier_study_that_does_not_fit_is_run_again(write_space, cli):
    first = write_space(base_space(study={**STUDY, "name": "first", "n_trials": 3}), name="first")
    earlier = [t for t in run(cli, first) if t.state.name == "COMPLETE"]
    other = base_space(study={**STUDY, "name": "second", "n_trials": 3}, warm_start=["study:first"],
                       objective={"name": "objs.py:mixed"})  # another objective: values are not comparable
    trials = sorted(run(cli, write_space(other, name="second")), key=lambda t: t.number)
    assert [t.params["x"] for t in trials] == [t.params["x"] for t in sorted(earlier, key=lambda t: t.number)]
    assert all(t.datetime_complete > t.datetime_start for t in trials)  # trained again, not added


def test_an_earlier_study_with_another_fixed_config_is_run_again(write_space, cli):
    """Its values came from another config (here another `scale`): added as finished, the export of
    one of them would hold a config that did not earn its value."""
    first = write_space(base_space(study={**STUDY, "name": "first", "n_trials": 3},
                                   objective={"name": "objs.py:mixed", "fixed": {"scale": 1}}), name="first")
    earlier = sorted((t for t in run(cli, first) if t.state.name == "COMPLETE"), key=lambda t: t.number)
    second = base_space(study={**STUDY, "name": "second", "n_trials": 3}, warm_start=["study:first"],
                        objective={"name": "objs.py:mixed", "fixed": {"scale": 3}},
                        space={"x": {"type": "float", "low": -5.0, "high": 5.0}, "y": {"type": "int", "low": 0,
                                                                                        "high": 3}})
    code, out, err = cli("run", write_space(second, name="second"), "--no-report")
    assert code == 0, out + err
    assert "study 'first'" not in err, err   # the earlier study is read, not checked against this file
    trials = sorted(load_trials(write_space(second, name="second")), key=lambda t: t.number)
    assert [t.params["x"] for t in trials[:len(earlier)]] == [t.params["x"] for t in earlier]
    assert all(t.datetime_complete > t.datetime_start for t in trials)  # trained again, not added


@pytest.mark.parametrize(("warm_start", "key", "message"), [
    ({"x": 1}, "warm_start", "expected a list"),
    ([3], "warm_start[0]", "expected a mapping of params, an export file or study:NAME"),
    (["missing.yaml"], "warm_start[0]", "file not found"),
    (["study:"], "warm_start[0]", "expected study:NAME"),
    # Optuna would queue and train these with only a warning
    ([{"x": 1.0}, {"x": 50.0}], "warm_start[1].x", "50.0 is outside space.x ([-5.0, 5.0]); change the value"),
    ([{"x": "big"}], "warm_start[0].x", "'big' is not a number; space.x is [-5.0, 5.0]"),
    ([{"x": "0.5"}], "warm_start[0].x", "'0.5' is not a number; space.x is [-5.0, 5.0] (write 0.5, without quotes)"),
    ([{"x": True}], "warm_start[0].x", "True is not a number"),
])
def test_bad_warm_start_is_exit_2_with_the_key(write_space, cli, warm_start, key, message):
    code, _, err = cli("validate", write_space(base_space(warm_start=warm_start)))
    assert code == 2 and key in err and message in err, err


def test_a_missing_earlier_study_is_exit_2_and_leaves_no_study_without_its_warm_start(write_space, cli, workdir):
    """The study used to be created first: once the earlier study existed, the rerun found the new
    one created, and a warm start applies only at creation, so it never got it."""
    later = base_space(study={**STUDY, "name": "later", "n_trials": 3}, warm_start=["study:first"])
    path = write_space(later, name="later")
    code, _, err = cli("run", path, "--no-report")
    assert code == 2 and "warm_start[0]: no earlier study 'first' in hpo-runs/first/journal.log" in err, err
    assert "run that study first" in err and "hpo run" not in err
    assert not (workdir / "hpo-runs" / "later").exists()  # no folder, journal or lock files left either
    run(cli, write_space(base_space(study={**STUDY, "name": "first", "n_trials": 3}), name="first"))
    trials = run(cli, path)
    assert sum("warm_start" in t.user_attrs for t in trials) == 3  # learnt from all three: no trial trained


@pytest.mark.parametrize("name", ["/etc", "/bin/sh", "bad\0name"])
def test_an_unreadable_warm_start_file_is_exit_2(write_space, cli, name):
    code, _, err = cli("validate", write_space(base_space(warm_start=[name])))
    assert code == 2 and "warm_start[0]" in err and "Traceback" not in err, err
