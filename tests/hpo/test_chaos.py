"""Chaos on the embedded store: `--jobs 4` while workers are SIGKILLed; the supervisor recovers."""

from __future__ import annotations

import os
import random
import signal
import time

from _helpers import assert_no_running_mlflow_runs, base_space, load_trials, start_hpo


def live_worker_pids(path) -> list[int]:
    try:
        trials = load_trials(path)
    except Exception:  # noqa: BLE001 - the study may not exist yet
        return []
    pids = {int(t.user_attrs["worker"].rpartition(":")[2]) for t in trials
            if t.state.name == "RUNNING" and "worker" in t.user_attrs}
    return [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


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
