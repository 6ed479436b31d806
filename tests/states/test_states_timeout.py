"""study.trial_timeout: a trial past its limit fails with the reason; the study goes on."""

from __future__ import annotations

import os
import time

import pytest
from _helpers import load_trials, start_hpo

from hpo._deadline import TrialDeadline, TrialTimeout

REASON = "trial exceeded trial_timeout of 1.5 s"


@pytest.mark.parametrize("objective", ["spins", "sleeps"])
def test_an_interruptible_trial_past_its_limit_fails_and_the_study_goes_on(objective, state_space, cli):
    path = state_space(objective, n_trials=3, fixed={"bad": [1]}, trial_timeout=1.5)
    started = time.monotonic()
    code, out, _ = cli("run", path, "--no-report")
    assert code == 0, out
    assert time.monotonic() - started < 60
    trials = load_trials(path)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[1].user_attrs["fail_reason"] == REASON
    assert 1.5 <= (trials[1].datetime_complete - trials[1].datetime_start).total_seconds() < 30


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_trial_that_ignores_the_alarm_is_failed_by_the_watchdog(jobs, state_space, workdir):
    path = state_space("deaf", n_trials=4, fixed={"bad": [1]}, trial_timeout=1.5)
    env = {**os.environ, "HPO_TRIAL_KILL_GRACE_S": "1"}
    proc = start_hpo("run", path, "--jobs", jobs, "--no-report", cwd=workdir, env=env)
    out, _ = proc.communicate(timeout=120)
    if jobs == 1:  # the process ends itself, with the reason; the next run resumes
        assert proc.returncode == 1, out
        assert f"trial 1 failed: {REASON} and did not stop within 1 s" in out
        rerun = start_hpo("run", path, "--no-report", cwd=workdir)
        out, _ = rerun.communicate(timeout=120)
    assert "study complete" in out
    trials = load_trials(path)
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 3 + ["FAIL"]
    (failed,) = [t for t in trials if t.state.name == "FAIL"]
    assert failed.number == 1 and failed.user_attrs["fail_reason"].startswith(REASON)
    assert not [t for t in trials if "retry_of" in t.user_attrs], "the stuck trial was re-queued"


def test_the_deadline_cannot_fire_after_the_block_ended():
    stuck = []
    with TrialDeadline(0.2, stuck.append, grace=0.1):
        pass
    time.sleep(0.5)  # past both the alarm and the watchdog: neither acts
    assert stuck == []


def test_the_alarm_interrupts_the_block_and_the_previous_handler_comes_back():
    import signal

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(TrialTimeout, match="trial_timeout of 0.2 s"):
        with TrialDeadline(0.2, lambda reason: None, grace=30):
            time.sleep(5)
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_the_limit_stops_lightning_training_mid_epoch(state_space, cli, workdir):
    """Lightning re-raises TrialTimeout (it only swallows KeyboardInterrupt): the hung trial's
    training stopped at its second step, and the next trial trained in full."""
    import pytorch_lightning  # noqa: F401 - imported here, not inside the first trial's time limit

    path = state_space("lightning_sleeps", n_trials=3, fixed={"bad": [1]}, trial_timeout=3)
    code, out, _ = cli("run", path, "--no-report")
    assert code == 0, out
    trials = load_trials(path)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[1].user_attrs["fail_reason"] == "trial exceeded trial_timeout of 3 s"
    steps = {n: (workdir / f"hpo-runs/space/trials/{n:05d}/steps.log").read_text().split() for n in range(3)}
    assert steps == {0: ["0", "1", "2", "3"], 1: ["0", "1"], 2: ["0", "1", "2", "3"]}
