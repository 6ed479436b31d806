"""Chaos on the embedded store: workers SIGKILLed (the supervisor recovers), the supervisor itself
SIGKILLed and SIGHUPed (its workers stop, a new `hpo run` resumes), a torn journal tail."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import time

import pytest
from _helpers import (
    assert_no_running_mlflow_runs,
    base_space,
    load_trials,
    pid_alive,
    resume_to_the_end,
    start_hpo,
    trial_worker_pids,
    trials_so_far,
    wait_until,
)


def live_worker_pids(path) -> list[int]:
    pids = {int(t.user_attrs["worker"].rpartition(":")[2]) for t in trials_so_far(path)
            if t.state.name == "RUNNING" and "worker" in t.user_attrs}
    return [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


@pytest.mark.slow  # chaos, ~100 s
def test_chaos_with_jobs_4_on_the_embedded_store(write_space, workdir):
    path = write_space(base_space(objective={"name": "objs.py:slow", "fixed": {"sleep": 0.05}},
                                  study={"direction": "minimize", "metric": "value", "n_trials": 80, "seed": 0},
                                  mlflow={"enabled": True}))
    proc = start_hpo("run", path, "--jobs", "4", "--no-report", cwd=workdir)
    rng = random.Random(1)
    killed: list[int] = []
    deadline = time.monotonic() + 120
    while len(killed) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.7)
        pids = [p for p in live_worker_pids(path) if p not in killed]
        if pids:
            victim = rng.choice(pids)
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert len(killed) == 10
    trials = load_trials(path)
    assert len([t for t in trials if t.state.name == "COMPLETE"]) == 80
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) >= 10 and all("died" in t.user_attrs["fail_reason"] for t in failed)
    assert all(t.user_attrs.get("retry_count", 0) <= 1 for t in trials)
    assert_no_running_mlflow_runs(workdir, trials)


def chaos_space(n_trials: int) -> dict:
    return base_space(objective={"name": "objs.py:slow", "fixed": {"sleep": 0.05}},
                      study={"direction": "minimize", "metric": "value", "n_trials": n_trials, "seed": 0},
                      mlflow={"enabled": True})


def completed(path) -> int:
    return len([t for t in trials_so_far(path) if t.state.name == "COMPLETE"])


def kill_workers(path, proc, count: int, rng: random.Random) -> list[int]:
    """SIGKILLs ``count`` running workers of ``proc``'s study, one at a time."""
    killed: list[int] = []
    deadline = time.monotonic() + 120
    while len(killed) < count and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
        pids = [p for p in live_worker_pids(path) if p not in killed]
        if pids:
            killed.append(rng.choice(pids))
            os.kill(killed[-1], signal.SIGKILL)
    assert len(killed) == count, "the run ended before the chaos did"
    return killed


def stop_supervisor_mid_study(path, workdir, signum: int, rng: random.Random) -> None:
    """Starts `hpo run --jobs 3`, kills a worker, lets trials finish, then sends ``signum`` to the
    supervisor; checks that every worker the study has seen is gone soon after."""
    proc = start_hpo("run", path, "--jobs", "3", "--no-report", cwd=workdir)
    kill_workers(path, proc, 1, rng)
    target = completed(path) + 4
    wait_until(lambda: completed(path) >= target or proc.poll() is not None, timeout=180)
    assert proc.poll() is None, "the study ended before the supervisor could be stopped"
    wait_until(lambda: live_worker_pids(path), timeout=60)  # mid-trial
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    if signum != signal.SIGKILL:
        assert proc.returncode == 128 + signum, out
    wait_until(lambda: not [p for p in trial_worker_pids(load_trials(path)) if pid_alive(p)], timeout=30)


@pytest.mark.slow
def test_chaos_supervisor_killed_and_hung_up_mid_study(write_space, workdir):
    n_trials = 30
    path = write_space(chaos_space(n_trials))
    rng = random.Random(2)
    stop_supervisor_mid_study(path, workdir, signal.SIGKILL, rng)
    stop_supervisor_mid_study(path, workdir, signal.SIGHUP, rng)
    trials = resume_to_the_end(path, workdir, n_trials, "--jobs", "3")
    reasons = [t.user_attrs["fail_reason"] for t in trials if t.state.name == "FAIL"]
    assert any("died" in r for r in reasons) and any("interrupted" in r for r in reasons), reasons
    assert_no_running_mlflow_runs(workdir, trials)
    assert not [p for p in trial_worker_pids(trials) if pid_alive(p)]


@pytest.mark.slow
def test_chaos_torn_journal_tail_after_a_supervisor_kill(write_space, workdir):
    n_trials = 12
    path = write_space(chaos_space(n_trials))
    stop_supervisor_mid_study(path, workdir, signal.SIGKILL, random.Random(3))
    journal = workdir / "hpo-runs" / "space" / "journal.log"
    record = journal.read_bytes().splitlines()[-1]
    with journal.open("ab") as f:  # a writer died half-way through its append; nobody writes now
        f.write(record[: len(record) // 2])
    trials = resume_to_the_end(path, workdir, n_trials, "--jobs", "2")
    assert_no_running_mlflow_runs(workdir, trials)


@pytest.fixture
def small_disk(workdir):
    """``workdir/hpo-runs`` on a 16 MiB tmpfs of its own (mounting needs root); unmounted afterwards."""
    disk = workdir / "hpo-runs"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk) -> None:
    """Writes a file until the disk is full."""
    with (disk / "filler").open("wb", buffering=0) as f:  # unbuffered: closing flushes nothing
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


@pytest.mark.slow
def test_chaos_full_disk_mid_study(small_disk, write_space, workdir):
    n_trials = 16
    path = write_space(chaos_space(n_trials))
    proc = start_hpo("run", path, "--jobs", "2", "--no-report", cwd=workdir)
    wait_until(lambda: completed(path) >= 3, timeout=180)
    fill(small_disk)
    try:
        proc.communicate(timeout=120)  # how it ends is up to the store; that it ends and leaves nothing is not
        wait_until(lambda: not [p for p in trial_worker_pids(load_trials(path)) if pid_alive(p)], timeout=30)
    finally:
        (small_disk / "filler").unlink()
    trials = resume_to_the_end(path, workdir, n_trials, "--jobs", "2")
    assert_no_running_mlflow_runs(workdir, trials)
