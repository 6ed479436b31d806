"""Many machines on one study: workers joined only by a PostgreSQL URL (a real server per session)."""

from __future__ import annotations

import random
import signal
import time

import pytest
from _helpers import base_space, load_trials, start_hpo


def fast_space(storage: str, n_trials: int, objective: str = "objs.py:quadratic", **fixed) -> dict:
    return base_space(objective={"name": objective, "fixed": fixed},
                      study={"direction": "minimize", "metric": "loss" if "quadratic" in objective else "value",
                             "n_trials": n_trials, "seed": 0, "storage": storage},
                      sampler={"name": "random"})


def test_eight_workers_on_postgres_run_exactly_n_trials(postgres_server, write_space, workdir):
    url = postgres_server()
    path = write_space(fast_space(url, 200))
    procs = [start_hpo("run", path, "--no-report", cwd=workdir) for _ in range(8)]
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
    trials = load_trials(path)
    assert sorted(t.number for t in trials) == list(range(200))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) >= 2


def test_chaos_on_postgres_kills_lose_nothing(postgres_server, write_space, workdir):
    """4 workers, one SIGKILLed every ~1 s and replaced (10 kills): exactly n_trials COMPLETE at the end."""
    url = postgres_server()
    path = write_space(fast_space(url, 40, objective="objs.py:slow", sleep=0.05))
    rng = random.Random(0)
    procs = [start_hpo("run", path, "--no-report", cwd=workdir) for _ in range(4)]
    kills = 0
    while kills < 10:
        time.sleep(1.0)
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            break
        victim = rng.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        kills += 1
        procs.append(start_hpo("run", path, "--no-report", cwd=workdir))
    for proc in procs:
        proc.communicate(timeout=300)
    trials = load_trials(path)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert kills == 10
    assert len(complete) == 40
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    for failed in (t for t in trials if t.state.name == "FAIL"):
        assert "died" in failed.user_attrs.get("fail_reason", "")
    retries = [t.user_attrs.get("retry_count", 0) for t in trials]
    assert max(retries) <= 1


def test_cmaes_on_shared_storage_is_warned_about(postgres_server, write_space, cli):
    path = write_space(base_space(sampler={"name": "cmaes"},
                                  study={"direction": "minimize", "metric": "loss", "n_trials": 2,
                                         "storage": postgres_server()}))
    code, out, err = cli("run", path, "--no-report")
    assert code == 0
    assert "pickled" in (out + err)
