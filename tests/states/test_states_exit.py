"""An objective that calls sys.exit fails its trial; a run without a complete trial never exits 0."""

from __future__ import annotations

import pytest
from _helpers import load_trials, start_hpo


@pytest.mark.parametrize("jobs", [1, 2])
def test_sys_exit_fails_the_trial_and_the_run_exits_1(jobs, state_space, workdir):
    path = state_space("exits", n_trials=3)
    proc = start_hpo("run", path, "--jobs", jobs, "--no-report", cwd=workdir)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "no trial completed" in out and "objective called sys.exit(0)" in out
    trials = load_trials(path)
    assert len(trials) == 3, "a trial was re-queued"
    assert [t.state.name for t in trials] == ["FAIL"] * 3
    assert {t.user_attrs["fail_reason"] for t in trials} == {"objective called sys.exit(0)"}
    assert not [t for t in trials if "retry_of" in t.user_attrs]


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_worker_goes_on_after_a_sys_exit(jobs, state_space, workdir):
    path = state_space("exits", n_trials=4, fixed={"bad": [1]})
    proc = start_hpo("run", path, "--jobs", jobs, "--no-report", cwd=workdir)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "study complete" in out
    states = {t.number: t.state.name for t in load_trials(path)}
    assert states == {0: "COMPLETE", 1: "FAIL", 2: "COMPLETE", 3: "COMPLETE"}


def test_sys_exit_counts_toward_max_consecutive_failures(state_space, cli):
    path = state_space("exits", n_trials=6, max_consecutive_failures=2)
    code, out, _ = cli("run", path, "--no-report")
    assert code == 1
    assert "stopped after 2 failed trials in a row" in out and "sys.exit(0)" in out
    assert [t.state.name for t in load_trials(path)] == ["FAIL", "FAIL"]


def test_a_rerun_of_a_study_without_a_complete_trial_exits_1(state_space, cli):
    path = state_space("exits", n_trials=2)
    assert cli("run", path, "--no-report")[0] == 1
    code, out, _ = cli("run", path, "--no-report")
    assert code == 1 and "no trial completed (2 failed" in out


def test_an_interrupt_turned_into_sys_exit_by_the_framework_still_stops_the_study(state_space, workdir):
    """Lightning catches KeyboardInterrupt and calls sys.exit(1): that is the user's signal, not
    the objective's own exit, so the trial is re-queued and hpo run ends as interrupted."""
    path = state_space("lightning_like", n_trials=4)
    proc = start_hpo("run", path, "--no-report", cwd=workdir)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    trials = {t.number: t for t in load_trials(path)}
    assert trials[0].state.name == "COMPLETE" and trials[1].state.name == "FAIL"
    assert trials[1].user_attrs["fail_reason"] == "interrupted (Interrupted: SIGTERM)"
    assert [t.user_attrs.get("retry_of") for t in trials.values() if t.state.name == "WAITING"] == [1]
