"""``benchmarks/scaling.py --many``: up to hundreds of light workers, direct PostgreSQL vs ``hpo proxy``.

A light worker is the storage half of an hpo worker and nothing else: it opens the study with
hpo's own code (:func:`hpo._study.open_study`), then takes trials with :func:`hpo._study.next_trial`
(the exact cap, under :func:`hpo._storage.study_lock`), sleeps 0.2 s as the objective, and tells
the result. No MLflow, no Lightning, no objective import: what is measured is what hundreds of
workers cost the study's storage. Workers wait at a barrier once started, so the machine's
start-up of N Python processes is not counted.

Measured per run: trials/s between the first trial's start and the last trial's end, parallel
efficiency against the ideal N / 0.2 s, the most PostgreSQL connections open (pg_stat_activity,
sampled every 0.2 s), the lock's wait and hold per trial (timed around hpo's study_lock), and CPU
seconds per trial of the workers, the proxy and the PostgreSQL server (from /proc).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

SLEEP_S = 0.2

WORKER = r'''
import contextlib, json, os, sys, time
from pathlib import Path
import hpo._study as study_mod
from hpo._spec import load_spec

folder, index = Path(sys.argv[1]), sys.argv[2]
spec = load_spec(str(folder / "space.yaml"))
waits, holds = [], []
real_lock = study_mod.study_lock

@contextlib.contextmanager
def timed_lock(s):
    asked = time.perf_counter()
    with real_lock(s):
        got = time.perf_counter()
        waits.append(got - asked)
        try:
            yield
        finally:
            holds.append(time.perf_counter() - got)

study_mod.study_lock = timed_lock
study = study_mod.open_study(spec, int(index))
(folder / f"ready-{index}").write_text("")
while not (folder / "go").exists():
    time.sleep(0.01)
waits.clear(); holds.clear()
cpu0 = time.process_time()
n = 0
while (trial := study_mod.next_trial(study, spec)) is not None:
    x = trial.suggest_float("x", 0, 1)
    time.sleep(%(sleep)r)
    study.tell(trial, x)
    n += 1
(folder / f"stats-{index}.json").write_text(json.dumps(
    {"trials": n, "waits": waits, "holds": holds, "cpu": time.process_time() - cpu0}))
'''


def _stat(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(pids: list[int], reaped: bool = False) -> float:
    """CPU time of ``pids`` (utime + stime; with ``reaped``, also of their exited children)."""
    total = 0
    for pid in pids:
        try:
            fields = _stat(pid)
            total += int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_cpu(port: int) -> float:
    """CPU seconds of the benchmark's PostgreSQL server: its postmaster, the backends that exited
    (the postmaster's reaped children) and those still running. Other servers on the machine are left out."""
    postmaster = None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"postgres") and f"-p {port}".encode() in b" ".join(cmd):
                postmaster = int(entry.name)
                break
    if postmaster is None:
        return 0.0
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(entry.name)[1]) == postmaster:
                    children.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return _cpu_seconds([postmaster], reaped=True) + _cpu_seconds(children)


def _connections(url: str, db: str) -> int:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:  # this sampling connection is not counted
        return int(conn.execute(sqlalchemy.text(
            "SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = :d"), {"d": db}).scalar())


def _new_database(url: str, name: str) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    return f"{url.rsplit('/', 1)[0]}/{name}"


def run_once(base_url: str, workers: int, per_worker: int, via_proxy: bool, repo: Path) -> dict:
    from _helpers_loader import free_port, load_trials_in

    label = "proxy" if via_proxy else "direct"
    db = f"many_{label}_{workers}"
    url = _new_database(base_url, db)
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proxy = None
    storage = url
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if via_proxy:
            port = free_port()
            proxy = subprocess.Popen([sys.executable, "-m", "hpo", "proxy", "--storage", url, "--host", "127.0.0.1",
                                      "--port", str(port), "--threads", str(workers + 16)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            storage = f"grpc://127.0.0.1:{port}"
        doc = {"study": {"name": db, "metric": "value", "n_trials": workers * per_worker, "seed": 0,
                         "storage": storage},
               "sampler": {"name": "random"}, "pruner": {"name": "none"}, "objective": {"name": "sleep.py:sleep"},
               "space": {"x": {"type": "float", "low": 0, "high": 1}}, "mlflow": {"enabled": False}}
        (folder / "space.yaml").write_text(yaml.safe_dump(doc))
        (folder / "sleep.py").write_text("def sleep(params, ctx):\n    return 0.0\n")
        script = WORKER % {"sleep": SLEEP_S}
        procs = [subprocess.Popen([sys.executable, "-c", script, str(folder), str(i)], cwd=folder, env=env,
                                  stderr=open(folder / f"err-{i}.log", "w")) for i in range(workers)]
        while len(list(folder.glob("ready-*"))) < workers:
            failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if failed:  # e.g. PostgreSQL's max_connections reached: that is the result of this run
                for p in procs:
                    p.kill()
                    p.wait()
                if proxy:
                    proxy.terminate()
                    proxy.wait(timeout=60)
                last = (folder / f"err-{failed[0]}.log").read_text().strip().splitlines()[-1:]
                return {"storage": label, "workers": workers, "error": f"{len(failed)}+ workers failed to start: "
                        f"{last[0][:200] if last else '?'}"}
            time.sleep(0.2)
        pg_port = int(base_url.rsplit(':', 1)[1].split('/')[0])
        pg_before = _postgres_cpu(pg_port)
        proxy_before = _cpu_seconds([proxy.pid]) if proxy else 0.0
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _connections(base_url, db))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        (folder / "go").write_text("")
        for p in procs:
            assert p.wait() == 0
        done.set()
        sampler.join()
        pg_cpu = _postgres_cpu(pg_port) - pg_before
        proxy_cpu = (_cpu_seconds([proxy.pid]) - proxy_before) if proxy else 0.0
        stats = [json.loads((folder / f"stats-{i}.json").read_text()) for i in range(workers)]
        trials = load_trials_in(folder, "space.yaml")
        if proxy:
            proxy.terminate()
            proxy.wait(timeout=60)
    finished = [t for t in trials if t.datetime_complete]
    assert len(finished) == workers * per_worker, f"{len(finished)} trials, expected {workers * per_worker}"
    span = (max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)).total_seconds()
    waits = [w for s in stats for w in s["waits"]]
    holds = [h for s in stats for h in s["holds"]]
    n = len(finished)
    return {"storage": label, "workers": workers, "trials": n, "tps": n / span,
            "efficiency": n / span / (workers / SLEEP_S), "connections": peak[0],
            "wait_ms": 1000 * statistics.mean(waits), "hold_ms": 1000 * statistics.mean(holds),
            "worker_cpu_ms": 1000 * sum(s["cpu"] for s in stats) / n, "proxy_cpu_ms": 1000 * proxy_cpu / n,
            "pg_cpu_ms": 1000 * pg_cpu / n}


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--many", required=True, help="worker counts, e.g. 8,32,64,128")
    parser.add_argument("--trials-per-worker", type=int, default=10)
    parser.add_argument("--only", choices=["direct", "proxy"], help="one storage path only")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.many.split(",")]
    repo = Path(__file__).resolve().parents[1]
    from _helpers_loader import start_postgres

    url, stop = start_postgres()
    rows = []
    try:
        for workers in counts:
            for via_proxy in (False, True):
                if args.only and args.only != ("proxy" if via_proxy else "direct"):
                    continue
                row = run_once(url, workers, args.trials_per_worker, via_proxy, repo)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        stop()
    print()
    print("| storage | workers | trials/s | efficiency | PG connections | lock wait ms/trial | lock hold ms/trial "
          "| worker CPU ms/trial | proxy CPU ms/trial | PostgreSQL CPU ms/trial |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['storage']} | {r['workers']} | failed: {r['error']} |")
            continue
        print(f"| {r['storage']} | {r['workers']} | {r['tps']:.1f} | {r['efficiency']:.2f} | {r['connections']} | "
              f"{r['wait_ms']:.1f} | {r['hold_ms']:.1f} | {r['worker_cpu_ms']:.1f} | {r['proxy_cpu_ms']:.1f} | "
              f"{r['pg_cpu_ms']:.1f} |")
