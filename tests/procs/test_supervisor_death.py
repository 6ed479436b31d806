"""Workers never outlive their supervisor: SIGKILL and SIGHUP of `hpo run --jobs 2`, SIGHUP of `--jobs 1`."""

from __future__ import annotations

import os
import signal
import time

import pytest
from _helpers import (
    base_space,
    load_trials,
    pid_alive,
    resume_to_the_end,
    start_hpo,
    trial_worker_pids,
    trials_so_far,
    wait_until,
)

GONE_WITHIN_S = 15  # a few seconds on an idle machine; the suite's machine is shared and loaded


def held_space(workdir, n_trials: int) -> dict:
    """Trials that run until ``workdir/hold`` is removed: a worker left behind would never finish."""
    (workdir / "hold").touch()
    return base_space(objective={"name": "objs.py:held"},
                      study={"direction": "minimize", "metric": "value", "n_trials": n_trials, "seed": 0})


def running_claimed(path, count: int) -> list:
    """The RUNNING trials, once ``count`` of them say which worker runs them."""
    trials = [t for t in trials_so_far(path) if t.state.name == "RUNNING" and "worker" in t.user_attrs]
    return trials if len(trials) >= count else []


def assert_interrupted_and_requeued(path, victims: list) -> None:
    trials = {t.number: t for t in load_trials(path)}
    assert not [t for t in trials.values() if t.state.name == "RUNNING"]
    for victim in victims:
        failed = trials[victim.number]
        assert failed.state.name == "FAIL", failed
        assert "interrupted" in failed.user_attrs["fail_reason"], failed.user_attrs
        waiting = [t for t in trials.values() if t.state.name == "WAITING" and t.system_attrs["fixed_params"] == failed.params]
        assert waiting, f"trial {failed.number} was not re-queued"


def resume(path, workdir, n_trials: int, *args: str) -> None:
    (workdir / "hold").unlink()
    resume_to_the_end(path, workdir, n_trials, *args)


def test_sigkill_of_the_supervisor_stops_its_workers(write_space, workdir):
    path = write_space(held_space(workdir, 6))
    proc = start_hpo("run", path, "--jobs", "2", "--no-report", cwd=workdir)
    victims = wait_until(lambda: running_claimed(path, 2), timeout=120)
    pids = trial_worker_pids(victims)
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    proc.kill()
    proc.communicate(timeout=30)
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=GONE_WITHIN_S)
    assert_interrupted_and_requeued(path, victims)
    log = (workdir / "hpo-runs" / "space" / "workers" / "worker-0.log").read_text()
    assert "the supervisor is gone" in log, log
    reasons = {t.number: t.user_attrs["fail_reason"] for t in load_trials(path) if t.state.name == "FAIL"}
    assert all("its hpo run (the supervisor) died" in reasons[v.number] for v in victims), reasons
    resume(path, workdir, 6, "--jobs", "2")


def test_sighup_of_the_supervisor_stops_its_workers_with_129(write_space, workdir):
    path = write_space(held_space(workdir, 6))
    proc = start_hpo("run", path, "--jobs", "2", "--no-report", cwd=workdir)
    victims = wait_until(lambda: running_claimed(path, 2), timeout=120)
    pids = trial_worker_pids(victims)
    proc.send_signal(signal.SIGHUP)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 129, out
    assert "interrupted; resume with" in out, out
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=GONE_WITHIN_S)
    assert_interrupted_and_requeued(path, victims)
    resume(path, workdir, 6, "--jobs", "2")


def test_sighup_of_a_single_worker_run(write_space, workdir):
    path = write_space(held_space(workdir, 4))
    proc = start_hpo("run", path, "--no-report", cwd=workdir)
    victims = wait_until(lambda: running_claimed(path, 1), timeout=120)
    proc.send_signal(signal.SIGHUP)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 129, out
    assert "interrupted by SIGHUP" in out and "resume with" in out, out
    assert_interrupted_and_requeued(path, victims)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_exit_codes_are_128_plus_the_signal(signum):
    from hpo._signals import SIGNAL_EXIT_CODES, Interrupted

    assert Interrupted(signum).exit_code == SIGNAL_EXIT_CODES[signum] == 128 + int(signum)


def test_nohup_keeps_a_run_going_after_sighup(write_space, workdir):
    """`nohup hpo run ...`: a SIGHUP ignored from the start stays ignored, in the workers too."""
    path = write_space(held_space(workdir, 3))
    proc = start_hpo("run", path, "--jobs", "2", "--no-report", cwd=workdir,
                     preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    victims = wait_until(lambda: running_claimed(path, 2), timeout=120)
    proc.send_signal(signal.SIGHUP)
    for pid in trial_worker_pids(victims):
        os.kill(pid, signal.SIGHUP)
    time.sleep(1.0)
    assert proc.poll() is None and all(pid_alive(p) for p in trial_worker_pids(victims))
    (workdir / "hold").unlink()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert not [t for t in load_trials(path) if t.state.name != "COMPLETE"]
