"""Processes: resume after a killed run, --jobs N sharing one study, clean Ctrl-C / SIGTERM."""

from __future__ import annotations

import os
import signal
import time

import pytest
from _helpers import base_space, child_pids, load_trials, start_hpo, trials_so_far


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(interval)


def running(path):
    return [t for t in trials_so_far(path) if t.state.name == "RUNNING"]


def slow_space(n_trials: int, sleep: float = 0.05) -> dict:
    return base_space(objective={"name": "objs.py:slow", "fixed": {"sleep": sleep}},
                      study={"direction": "minimize", "metric": "value", "n_trials": n_trials, "seed": 0})


def test_sigkilled_run_resumes_to_exactly_n_trials(write_space, workdir):
    path = write_space(slow_space(6))
    proc = start_hpo("run", path, "--no-report", cwd=workdir)
    wait_until(lambda: len(trials_so_far(path)) >= 3)
    wait_until(lambda: running(path))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = running(path)
    assert len(killed) == 1, "the killed run left its trial RUNNING (as a crash would)"

    rerun = start_hpo("run", path, "--no-report", cwd=workdir)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    trials = load_trials(path)
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(finished) == 6
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    (orphan,) = [t for t in trials if t.number == killed[0].number]
    assert orphan.state.name == "FAIL" and "died" in orphan.user_attrs["fail_reason"]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == orphan.number]
    assert retry.params == orphan.params and retry.state.name == "COMPLETE"


@pytest.mark.parametrize("max_retries", [0, 1])
def test_status_and_the_next_run_say_what_becomes_of_a_killed_runs_trial(max_retries, write_space, workdir, cli):
    """Re-queued with its params, or (max_retries 0) failed and replaced by a new sample: said as it is."""
    doc = slow_space(4)
    doc["study"]["max_retries"] = max_retries
    path = write_space(doc)
    proc = start_hpo("run", path, "--no-report", cwd=workdir)
    wait_until(lambda: len(trials_so_far(path)) >= 2 and running(path))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (killed,) = running(path)
    code, status, err = cli("status", path)
    assert code == 0, err
    rerun = start_hpo("run", path, "--no-report", cwd=workdir)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    retries = [t for t in load_trials(path) if t.user_attrs.get("retry_of") == killed.number]
    n = killed.number
    if max_retries:
        assert len(retries) == 1
        assert f"trials [{n}] lost: their worker died; re-queued by the next" in status
        assert f"re-queued trials [{n}]: their worker had died" in out
    else:
        assert not retries
        assert f"trials [{n}] lost: their worker died; not retried (study.max_retries is 0)" in status
        assert f"trials [{n}] failed: their worker had died; not retried (study.max_retries is 0)" in out
        assert "re-queued" not in status + out
    code, status, err = cli("status", path)  # the killed trial: lost, not failed (as the progress line said)
    assert code == 0 and "lost: interrupted, or their worker died" in status, status
    lines = status.splitlines()
    at = next(i for i, line in enumerate(lines) if "COMPLETE" in line)
    names = [c.strip() for c in lines[at].replace("┃", "│").split("│")]
    counts = dict(zip(names, [c.strip() for c in lines[at + 2].split("│")]))
    assert counts["FAIL"] == "0" and counts["lost"] == "1", status


def test_two_jobs_share_the_cap_exactly(write_space, workdir):
    path = write_space(slow_space(10, sleep=0.01))
    proc = start_hpo("run", path, "--jobs", "2", "--no-report", cwd=workdir)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    trials = load_trials(path)
    assert sorted(t.number for t in trials) == list(range(10))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2


def test_no_more_workers_start_than_trials_are_left(write_space, workdir):
    """--jobs 8 on a study with 2 trials left starts 2 workers (8 processes, each with its own model,
    for 2 trials; --jobs 10000 ran the machine out of memory)."""
    path = write_space(slow_space(2, sleep=0.3))  # 3 s a trial: time to count the supervisor's children
    proc = start_hpo("run", path, "--jobs", "8", "--no-report", cwd=workdir)
    most = 0
    while proc.poll() is None:
        most = max(most, len(child_pids(proc.pid)))
        time.sleep(0.1)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0 and "2 trial(s) left to start: 2 worker(s), not 8" in out, out
    assert most == 2, f"{most} worker processes at once"


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_during_a_trial_leaves_nothing_running(signum, code, write_space, workdir):
    path = write_space(slow_space(5, sleep=0.3))
    proc = start_hpo("run", path, "--no-report", cwd=workdir)
    wait_until(lambda: running(path))
    time.sleep(0.5)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    assert "Trials by state" in out and "resume with" in out
    trials = load_trials(path)
    assert not running(path)
    interrupted = [t for t in trials if t.state.name == "FAIL"]
    assert len(interrupted) == 1 and "interrupted" in interrupted[0].user_attrs["fail_reason"]
    assert [t.system_attrs["fixed_params"] for t in trials if t.state.name == "WAITING"] == [interrupted[0].params]


def test_interrupt_with_jobs_stops_every_worker(write_space, workdir):
    path = write_space(slow_space(8, sleep=0.3))
    proc = start_hpo("run", path, "--jobs", "2", "--no-report", cwd=workdir)
    wait_until(lambda: len(running(path)) == 2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, out
    assert not running(path)
    workers = {t.user_attrs["worker"].rpartition(":")[2] for t in load_trials(path) if "worker" in t.user_attrs}
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} still alive"


def test_supervisor_replaces_a_killed_worker(write_space, workdir):
    path = write_space(slow_space(8, sleep=0.1))
    proc = start_hpo("run", path, "--jobs", "2", "--no-report", cwd=workdir)
    wait_until(lambda: len(running(path)) == 2)
    wait_until(lambda: any("worker" in t.user_attrs for t in running(path)))  # claimed just after creation
    victim = next(t for t in running(path) if "worker" in t.user_attrs)
    os.kill(int(victim.user_attrs["worker"].rpartition(":")[2]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    trials = load_trials(path)
    assert len([t for t in trials if t.state.name == "COMPLETE"]) == 8
    assert not running(path)
    (failed,) = [t for t in trials if t.state.name == "FAIL"]
    assert failed.number == victim.number
    assert len({t.user_attrs["worker"] for t in trials}) >= 3  # two workers plus the replacement


def test_each_worker_gets_its_own_gpus():
    from hpo._run import gpu_assignment

    assert gpu_assignment(2, [], 1) == [None, None]
    assert gpu_assignment(4, ["0", "1", "2", "3"], 1) == ["0", "1", "2", "3"]
    assert gpu_assignment(2, ["0", "1", "2", "3"], 2) == ["0,1", "2,3"]
    assert gpu_assignment(3, ["0", "1"], 1) == ["0", "1", "0"]  # more workers than GPUs: shared round-robin


def test_jobs_workers_see_their_cuda_visible_devices(write_space, workdir, monkeypatch):
    """With (pretend) GPUs 0 and 1 visible, worker i of --jobs 2 sees only GPU i."""
    (workdir / "objs.py").write_text((workdir / "objs.py").read_text() + '''
def which_gpu(params, ctx):
    time.sleep(0.3)
    return float(os.environ["CUDA_VISIBLE_DEVICES"])
''')
    path = write_space(base_space(objective={"name": "objs.py:which_gpu", "fixed": {"sleep": 0}},
                                  study={"direction": "minimize", "metric": "value", "n_trials": 8, "seed": 0}))
    proc = start_hpo("run", path, "--jobs", "2", "--no-report", cwd=workdir,
                     env={**os.environ, "CUDA_VISIBLE_DEVICES": "0,1"})
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    by_worker: dict[str, set[float]] = {}
    for t in load_trials(path):
        by_worker.setdefault(t.user_attrs["worker"], set()).add(t.value)
    assert sorted(v for values in by_worker.values() for v in values) == [0.0, 1.0]
    assert all(len(values) == 1 for values in by_worker.values())


def test_a_running_trial_no_worker_ever_claimed_is_recovered(write_space, cli, monkeypatch):
    """A worker killed between creating a trial and recording its identity leaves an anonymous
    RUNNING trial; once the grace period is over, the next run fails and re-queues it."""
    import datetime

    import hpo._study
    from hpo._spec import load_spec

    doc = slow_space(3, sleep=0.01)
    doc["study"]["timeout"] = 20  # without recovery the run would wait for the trial: fail, not hang
    path = write_space(doc)
    hpo._study.open_study(load_spec(path)).ask()  # created, never claimed: the "worker" died here
    (anonymous,) = load_trials(path)
    assert anonymous.state.name == "RUNNING" and "worker" not in anonymous.user_attrs
    monkeypatch.setattr(hpo._study, "UNCLAIMED_GRACE", datetime.timedelta(0))
    assert cli("run", path, "--no-report")[0] == 0
    trials = load_trials(path)
    assert trials[0].state.name == "FAIL" and "died" in trials[0].user_attrs["fail_reason"]
    assert len([t for t in trials if t.state.name == "COMPLETE"]) == 3


@pytest.mark.parametrize("cuda_in_use", [False, True])
def test_a_full_collection_after_each_trial_only_once_cuda_is_in_use(write_space, cli, monkeypatch, cuda_in_use):
    """With torch imported a full collection costs 0.2-0.5 s: on the CPU it made a study of short
    trials several times slower; on a GPU it frees the device memory a failed trial's cycles hold."""
    import gc

    import torch

    collections, emptied = [], []
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(a) or 0)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: cuda_in_use)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    code, out, err = cli("run", write_space(base_space(study={"direction": "minimize", "metric": "loss",
                                                              "n_trials": 3, "seed": 0})), "--no-report")
    assert code == 0, out + err
    assert (len(collections), len(emptied)) == ((3, 3) if cuda_in_use else (0, 0))
