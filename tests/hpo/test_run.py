"""`hpo run` end to end on plain-Python objectives: samplers, pruners, grid, failures, multi-objective."""

from __future__ import annotations

import ast

import pytest
from _helpers import base_space, load_trials


def states(trials):
    return [t.state.name for t in trials]


@pytest.mark.parametrize("sampler,options", [
    ("random", {}),
    ("tpe", {"n_startup_trials": 3, "multivariate": True}),
    ("cmaes", {"n_startup_trials": 2}),
    ("gp", {"n_startup_trials": 3}),
    ("nsga2", {"population_size": 4}),
    ("qmc", {}),
])
def test_every_sampler_with_a_pruner_runs_a_study(sampler, options, write_space, cli):
    pruner = {"name": "hyperband", "options": {"min_resource": 1, "max_resource": 4, "reduction_factor": 2}}
    path = write_space(base_space(sampler={"name": sampler, "options": options}, pruner=pruner,
                                  study={"direction": "minimize", "metric": "loss", "n_trials": 8, "seed": 1}))
    code, out, err = cli("run", path, "--no-report")
    assert code == 0, err
    trials = load_trials(path)
    assert len(trials) == 8
    assert set(states(trials)) <= {"COMPLETE", "PRUNED"} and "COMPLETE" in states(trials)
    assert all(-5 <= t.params["x"] <= 5 for t in trials)


@pytest.mark.slow  # ~15 s
def test_tpe_with_hyperband_prunes(write_space, cli):
    path = write_space(base_space(
        sampler={"name": "tpe", "options": {"n_startup_trials": 4}},
        pruner={"name": "hyperband", "options": {"min_resource": 1, "max_resource": 4, "reduction_factor": 3}},
        study={"direction": "minimize", "metric": "loss", "n_trials": 30, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    trials = load_trials(path)
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, "hyperband pruned nothing in 30 trials"
    assert sum(len(t.intermediate_values) for t in trials) < 30 * 4
    assert all(t.user_attrs["pruned_at_epoch"] == max(t.intermediate_values) for t in pruned)


def test_grid_covers_each_point_exactly_once_and_stops(write_space, cli, workdir):
    space = {
        "x": {"type": "float", "values": [-1.0, 0.5, 2.0]},
        "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
        "y": {"type": "int", "values": [0, 1], "when": {"opt": "sgd"}},
    }
    path = write_space(base_space(sampler={"name": "grid"}, space=space,
                                  objective={"name": "objs.py:record_params"},
                                  study={"direction": "minimize", "metric": "value", "n_trials": 100}))
    assert cli("run", path, "--no-report")[0] == 0
    seen = [tuple(ast.literal_eval(line)) for line in (workdir / "params.log").read_text().splitlines()]
    expected = {(("opt", o), ("x", x)) + ((("y", y),) if o == "sgd" else ())
                for x in (-1.0, 0.5, 2.0) for o in ("adam", "sgd") for y in (0, 1)}
    expected = {tuple(sorted(e)) for e in expected}
    assert len(seen) == len(expected) == 9
    assert set(seen) == expected
    assert len(load_trials(path)) == 9
    code, out, _ = cli("run", path, "--no-report")
    assert code == 0 and "study complete: every grid point has run (9 trials)" in out and "--n-trials" not in out


def test_grid_takes_the_points_of_a_stepped_float_range(write_space, cli, workdir):
    """A float range with a step is finite: the grid refused it as "continuous"."""
    space = {"x": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1}}
    path = write_space(base_space(sampler={"name": "grid"}, space=space, objective={"name": "objs.py:record_params"},
                                  study={"direction": "minimize", "metric": "value", "n_trials": 100}))
    code, out, err = cli("run", path, "--no-report")
    assert code == 0, out + err
    seen = sorted(dict(ast.literal_eval(line))["x"] for line in (workdir / "params.log").read_text().splitlines())
    assert seen == [0.0, 0.1, 0.2, 0.3]  # as written, not 0.30000000000000004


def test_grid_with_two_jobs_still_covers_each_point_once(write_space, cli, workdir):
    path = write_space(base_space(sampler={"name": "grid"}, space={"x": {"type": "int", "low": 0, "high": 7}},
                                  objective={"name": "objs.py:record_params"},
                                  study={"direction": "minimize", "metric": "value", "n_trials": 50}))
    assert cli("run", path, "--jobs", "2", "--no-report")[0] == 0
    xs = sorted(dict(ast.literal_eval(line))["x"] for line in (workdir / "params.log").read_text().splitlines())
    assert xs == list(range(8))


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_grid_larger_than_n_trials_stops_at_the_cap_and_a_larger_run_finishes_it(write_space, workdir, jobs):
    """The grid's other points stay queued: they kept `hpo run` waiting for ever, as if running."""
    import subprocess

    from _helpers import start_hpo

    doc = base_space(sampler={"name": "grid"}, space={"x": {"type": "int", "low": 0, "high": 7}},
                     objective={"name": "objs.py:record_params"},
                     study={"direction": "minimize", "metric": "value", "n_trials": 3})
    path = write_space(doc)
    for n_trials in ("3", "8"):
        proc = start_hpo("run", path, "--jobs", jobs, "--n-trials", n_trials, "--no-report", cwd=workdir)
        try:
            out, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"hpo run --n-trials {n_trials} did not end: {proc.communicate()[0][-2000:]}")
        assert proc.returncode == 0, out
        complete = [t for t in load_trials(path) if t.state.name == "COMPLETE"]
        assert len(complete) == int(n_trials)
    xs = sorted(dict(ast.literal_eval(line))["x"] for line in (workdir / "params.log").read_text().splitlines())
    assert xs == list(range(8))


def test_conditional_params_absent_when_condition_false(write_space, cli):
    space = {
        "schedule": {"type": "categorical", "choices": ["step", "cosine"]},
        "gamma": {"type": "float", "low": 0.1, "high": 0.9, "when": {"schedule": "step"}},
        "x": {"type": "float", "low": -1, "high": 1},
    }
    path = write_space(base_space(space=space, objective={"name": "objs.py:record_params"},
                                  study={"direction": "minimize", "metric": "value", "n_trials": 16, "seed": 3}))
    assert cli("run", path, "--no-report")[0] == 0
    trials = load_trials(path)
    kinds = {t.params["schedule"] for t in trials}
    assert kinds == {"step", "cosine"}
    for t in trials:
        assert ("gamma" in t.params) == (t.params["schedule"] == "step")


def test_failing_trials_are_recorded_and_the_study_goes_on(write_space, cli):
    path = write_space(base_space(objective={"name": "objs.py:flaky"},
                                  study={"direction": "minimize", "metric": "value", "n_trials": 12, "seed": 0,
                                         "max_consecutive_failures": 50}))
    assert cli("run", path, "--no-report")[0] == 0
    trials = load_trials(path)
    assert len(trials) == 12
    for t in trials:
        if t.params["x"] > 0:
            assert t.state.name == "FAIL"
            assert t.user_attrs["fail_reason"] == "RuntimeError: x must not be positive"
        else:
            assert t.state.name == "COMPLETE"


def test_nan_result_fails_the_trial(write_space, cli):
    path = write_space(base_space(objective={"name": "objs.py:nan_value"},
                                  study={"direction": "minimize", "metric": "value", "n_trials": 2}))
    cli("run", path, "--no-report")
    trials = load_trials(path)
    assert states(trials) == ["FAIL", "FAIL"]
    assert "nan" in trials[0].user_attrs["fail_reason"]


def test_consecutive_failures_stop_the_study_with_a_clear_message(write_space, cli):
    path = write_space(base_space(objective={"name": "objs.py:always_fails"},
                                  study={"direction": "minimize", "metric": "value", "n_trials": 20,
                                         "max_consecutive_failures": 3}))
    code, out, _ = cli("run", path, "--no-report")
    assert code == 1
    assert "stopped after 3 failed trials in a row" in out and "ValueError: broken objective" in out
    assert len(load_trials(path)) == 3


def test_a_missing_study_metric_stops_the_study_at_its_first_trial_and_the_fix_goes_on(write_space, cli):
    """Every trial would fail the same way: it ran max_consecutive_failures (5) of them. Once the
    metric is fixed, the study goes on (only failed trials: nothing to compare with)."""
    path = write_space(base_space(objective={"name": "objs.py:two_metrics"},
                                  study={"direction": "minimize", "metric": "loss", "n_trials": 6}))
    code, out, _ = cli("run", path, "--no-report")
    assert code == 1 and "every trial would fail the same way" in out, out
    (trial,) = load_trials(path)
    assert trial.state.name == "FAIL"
    assert "returned no 'loss'" in trial.user_attrs["fail_reason"] and "['a', 'b']" in trial.user_attrs["fail_reason"]
    code, out, err = cli("run", path, "--no-report", "--set", "study.metric=a")
    assert code == 0, out + err
    assert [t.state.name for t in load_trials(path)] == ["FAIL"] + ["COMPLETE"] * 5


def test_multi_objective_study_best_prints_the_pareto_set(write_space, cli):
    path = write_space(base_space(objective={"name": "objs.py:two_metrics"}, sampler={"name": "nsga2"},
                                  pruner={"name": "none"},
                                  study={"directions": ["minimize", "minimize"], "metrics": ["a", "b"],
                                         "n_trials": 10, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    code, out, _ = cli("best", path)
    assert code == 0
    trials = [t for t in load_trials(path) if t.state.name == "COMPLETE"]
    pareto = [t for t in trials if not any(
        o.values[0] <= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values for o in trials)]
    assert out.count("trial_number:") == len(pareto) >= 2
    for t in pareto:
        assert f"trial_number: {t.number}\n" in out


def test_a_run_with_nothing_left_to_do_says_how_to_go_on(write_space, cli):
    """It said only "study complete"; after failed trials, the last (earlier) error as if new."""
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    code, out, _ = cli("run", path, "--no-report")
    assert code == 0 and "study complete: it has 2 trials, n_trials is 2; nothing ran: raise --n-trials (now 2)" in out
    code, out, _ = cli("run", path, "--no-report", "--n-trials", "1")
    assert code == 0 and "it has 2 trials, n_trials is 1; nothing ran" in out
    assert len(load_trials(path)) == 2


def test_resume_continues_to_n_trials(write_space, cli):
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 4, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    assert cli("run", path, "--no-report", "--n-trials", "7")[0] == 0
    trials = load_trials(path)
    assert [t.number for t in trials] == list(range(7))
    assert len({t.params["x"] for t in trials}) == 7  # the resumed sampler does not replay old samples
    assert cli("run", path, "--no-report", "--n-trials", "7")[0] == 0
    assert len(load_trials(path)) == 7


@pytest.mark.parametrize("change, refused", [
    ("objective.name=objs.py:record_params", "objective 'objs.py:quadratic', but the space file asks for "
                                             "'objs.py:record_params'"),
    ("study.metric=value", "metrics ['loss'], but the space file asks for ['value']"),
])
def test_resuming_with_another_objective_or_metric_is_refused_and_readers_warn(write_space, cli, change,
                                                                             refused):
    """Their values would not compare with the study's trials (best, export and train mixed them)."""
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    code, out, err = cli("run", path, "--no-report", "--n-trials", "4", "--set", change)
    assert code == 2 and refused in err and "--set study.name=NEW" in err, out + err
    assert len(load_trials(path)) == 2
    code, out, err = cli("status", path, "--set", change)
    assert code == 0 and "warning:" in err and "what follows is the study's" in err, out + err


def test_status_reports_counts_and_best(write_space, cli):
    path = write_space(base_space())
    cli("run", path, "--no-report")
    code, out, _ = cli("status", path)
    assert code == 0
    assert "COMPLETE" in out and "workers seen: 1" in out
    best = min((t for t in load_trials(path)), key=lambda t: t.value)
    assert f"│ {best.number} " in out or f"{best.number} │" in out


def test_status_plans_the_cap_the_latest_run_used(write_space, cli):
    """After `hpo run --n-trials 3` on a file that says 6, status said '6 trials planned'."""
    path = write_space(base_space())   # n_trials: 6
    assert cli("run", path, "--no-report", "--n-trials", "3")[0] == 0
    code, out, _ = cli("status", path)
    assert code == 0 and "(3 trials planned)" in out, out
    assert cli("run", path, "--no-report")[0] == 0
    assert "(6 trials planned)" in cli("status", path)[1]


def test_status_of_unknown_study_says_what_to_do(write_space, cli):
    path = write_space(base_space())
    code, _, err = cli("status", path)
    assert code == 2 and "hpo run" in err


def test_report_counts_the_epochs_the_trials_were_given_not_the_files(write_space, cli, workdir):
    """Run with --set objective.fixed.max_epochs=4, reported without it: the savings panel claimed
    epochs saved by pruning against the file's 10 epochs a trial, with nothing pruned."""
    import re

    doc = base_space(objective={"name": "objs.py:quadratic", "fixed": {"max_epochs": 10}},
                     study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0})
    path = write_space(doc)
    assert cli("run", path, "--no-report", "--set", "objective.fixed.max_epochs=4")[0] == 0
    assert cli("report", path, "-o", workdir / "out")[0] == 0
    html = (workdir / "out" / "report.html").read_text()
    card = dict(re.findall(r'id="stat-([a-z-]+)"><div class="stat-label">[^<]*</div><div class="stat-value">([^<]*)<',
                           html))
    assert card["max-epochs"] == "4 (configured)" and card["epochs-without-pruning"] == "12", card


def test_report_to_an_html_file_name_writes_that_file(write_space, cli, workdir):
    """`-o rep.html` made a folder rep.html/ holding report.html."""
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    code, out, err = cli("report", path, "-o", workdir / "rep.html")
    assert code == 0, out + err
    assert (workdir / "rep.html").is_file() and "<html" in (workdir / "rep.html").read_text().lower()
