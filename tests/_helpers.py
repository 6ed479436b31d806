"""Helpers shared by the tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

OBJECTIVES_PY = '''
import math, os, time

def quadratic(params, ctx):
    """(x-2)^2 (+ y when present), reported over 4 steps so pruners have something to see."""
    value = (params["x"] - 2.0) ** 2 + params.get("y", 0)
    for step in range(4):
        ctx.report({"loss": value + 1.0 / (step + 1)}, step=step)
        if ctx.should_prune():
            import optuna
            raise optuna.TrialPruned()
    return {"loss": value}

def record_params(params, ctx):
    """Appends each trial's params to params.log beside this file, returns x."""
    with open(os.path.join(os.path.dirname(__file__), "params.log"), "a") as f:
        f.write(repr(sorted(params.items())) + "\\n")
    return float(params.get("x", 0.0))

def slow(params, ctx):
    """Sleeps params['sleep'] seconds per step for 10 steps (time to be interrupted)."""
    for step in range(10):
        time.sleep(params.get("sleep", 0.2))
        ctx.report(float(step), step=step)
    return params["x"]

def held(params, ctx):
    """Runs (reporting a step every 50 ms) while a file named ``hold`` exists beside this file."""
    hold = os.path.join(os.path.dirname(__file__), "hold")
    step = 0
    while True:
        ctx.report(float(step), step=step)
        step += 1
        if not os.path.exists(hold):
            return params["x"]
        time.sleep(0.05)

def flaky(params, ctx):
    if params["x"] > 0:
        raise RuntimeError("x must not be positive")
    return params["x"]

def always_fails(params, ctx):
    raise ValueError("broken objective")

def nan_value(params, ctx):
    return float("nan")

def mixed(params, ctx):
    """Reports 3 steps of loss=(x-2)^2; fails for x > 4 after its first step (prune via a threshold)."""
    value = (params["x"] - 2.0) ** 2
    for step in range(3):
        ctx.report({"loss": value, "other": float(step)}, step=step)
        if params["x"] > 4:
            raise RuntimeError("x too large")
        if ctx.should_prune():
            import optuna
            raise optuna.TrialPruned()
    return {"loss": value}

def two_metrics(params, ctx):
    return {"a": params["x"] ** 2, "b": (params["x"] - 2) ** 2}
'''


def base_space(**sections: Any) -> dict[str, Any]:
    """A small valid space document; keyword sections replace the defaults."""
    doc: dict[str, Any] = {
        "study": {"direction": "minimize", "metric": "loss", "n_trials": 6, "seed": 0},
        "sampler": {"name": "random"},
        "pruner": {"name": "none"},
        "objective": {"name": "objs.py:quadratic"},
        "space": {"x": {"type": "float", "low": -5.0, "high": 5.0}},
        "mlflow": {"enabled": False},
    }
    doc.update(sections)
    return doc


def start_hpo(*args: str, cwd: Path, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
    """Starts ``python -m hpo ARGS`` as a separate process (for kill and signal tests)."""
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "hpo", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def load_trials(space: Path) -> list[Any]:
    """The study's trials, read straight from its storage."""
    from hpo._spec import load_spec
    from hpo._study import open_study

    return open_study(load_spec(space), create=False).get_trials(deepcopy=False)


def trials_so_far(space: Path) -> list[Any]:
    """:func:`load_trials`, or [] while the study does not exist yet (a run just started: its
    folder may exist before its journal)."""
    try:
        return load_trials(space)
    except Exception:  # noqa: BLE001 - not there yet: no store, no study, no tables
        return []


def finish_exact_study(workers: list[subprocess.Popen], space: Path, n_trials: int, timeout: float) -> list[Any]:
    """Waits for every worker to exit 0, then checks the study holds exactly ``n_trials`` trials,
    all COMPLETE, taken by at least two workers; returns them."""
    for worker in workers:
        out, _ = worker.communicate(timeout=timeout)
        assert worker.returncode == 0, out
    trials = load_trials(space)
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) >= 2
    return trials


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres() -> tuple[str, Any]:
    """Starts a throwaway PostgreSQL server (initdb + pg_ctl) on a free port; returns (url, stop).

    As root, the server runs as the ``postgres`` user (initdb refuses root) in a folder of its own
    directly under /tmp (pytest's temp folders are not reachable by other users).
    """
    import shutil
    import tempfile

    bindir = next((str(p.parent) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    initdb = shutil.which("initdb") or (bindir and f"{bindir}/initdb")
    pg_ctl = shutil.which("pg_ctl") or (bindir and f"{bindir}/pg_ctl")
    if not initdb:
        raise RuntimeError("PostgreSQL's initdb is not installed: run `bash scripts/system-deps.sh`")
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="hpo-pg-"))
    data, sock = folder / "pgdata", folder / "pgsock"
    sock.mkdir()
    if prefix:
        shutil.chown(folder, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    run(pg_ctl, "-D", str(data), "-l", str(folder / "pg.log"), "-w", "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off", "start")
    subprocess.run([*prefix, "psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                    "CREATE DATABASE hpo"], check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/hpo", stop


def assert_no_running_mlflow_runs(workdir: Path, trials: list[Any]) -> None:
    """The default MLflow store under ``workdir/hpo-runs``: no run left RUNNING, no trial with two
    runs, and one run for every finished trial (a worker killed before its trial's run was
    created leaves that lost trial without one)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir}/hpo-runs/mlflow.db")
    experiment = client.get_experiment_by_name("space")
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    numbers = [int(r.data.tags["trial_number"]) for r in runs if r.data.tags.get("hpo.role") == "trial"]
    assert len(numbers) == len(set(numbers)), "a trial has two MLflow runs"
    assert {t.number for t in trials if t.state.name in ("COMPLETE", "PRUNED")} <= set(numbers)
    assert not [r for r in runs if r.info.status == "RUNNING" and r.data.tags.get("hpo.role") == "trial"]


CHROMIUM = os.environ.get("HPO_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying (and failing) to reach Google's
# services from this offline machine.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def wait_until(predicate: Any, timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Polls ``predicate`` until it returns something truthy (returned); TimeoutError after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not reached within {timeout:g} s")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def trial_worker_pids(trials: list[Any]) -> set[int]:
    """The pids recorded in the trials' ``worker`` user attr ("<host>:<pid>")."""
    return {int(t.user_attrs["worker"].rpartition(":")[2]) for t in trials if "worker" in t.user_attrs}


def process_group(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid`` (Linux /proc)."""
    members = []
    for pid in _pids():
        try:
            state, _, pgrp = _stat_fields(pid)[:3]
        except OSError:
            continue
        if state != "Z" and int(pgrp) == pgid:
            members.append(int(pid))
    return members


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    children = []
    for child in _pids():
        try:
            if int(_stat_fields(child)[1]) == pid:
                children.append(int(child))
        except OSError:
            continue
    return children


def _stat_fields(pid: int | str) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, ...]; OSError when gone."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _pids() -> list[str]:
    return [e.name for e in Path("/proc").iterdir() if e.name.isdigit()] if Path("/proc").is_dir() else []


def marked_processes(name: str, value: str) -> dict[int, str]:
    """Live processes whose environment (as they started) holds ``name=value``: pid -> command line.

    Linux /proc only (elsewhere: none). Processes of other users that this one cannot read are skipped.
    """
    needle = f"{name}={value}".encode()
    found: dict[int, str] = {}
    for pid in _pids():
        entry = Path("/proc") / pid
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0") or _stat_fields(pid)[0] == "Z":
                continue
            found[int(pid)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def ancestors(pid: int) -> set[int]:
    """``pid`` and every process above it (Linux /proc)."""
    chain = set()
    while pid > 0 and pid not in chain:
        chain.add(pid)
        try:
            pid = int(_stat_fields(pid)[1])
        except OSError:
            break
    return chain


def resume_to_the_end(space: Path, workdir: Path, n_trials: int, *args: str) -> list[Any]:
    """Runs ``hpo run SPACE ARGS`` to its end; checks it ends with exactly ``n_trials`` COMPLETE and
    nothing RUNNING or WAITING; returns the trials."""
    proc = start_hpo("run", space, *args, "--no-report", cwd=workdir)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    trials = load_trials(space)
    assert len([t for t in trials if t.state.name == "COMPLETE"]) == n_trials
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    return trials
