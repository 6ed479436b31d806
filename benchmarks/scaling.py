"""Trials per second with a 0.2 s sleep objective at 1, 2, 4, 8 workers; parallel efficiency.

Embedded store: `hpo run --jobs N`. PostgreSQL: N separate `hpo run --storage postgresql://...`
processes (as on N machines), against a throwaway server started with initdb/pg_ctl.
Throughput is measured between the first trial's start and the last trial's end (from the study's
own timestamps), so process start-up is not counted. MLflow is off: this measures the study.

    python benchmarks/scaling.py

Many workers (``--many 8,32,64,128``): direct PostgreSQL against an ``hpo proxy`` (see
benchmarks/_many_workers.py for what each light worker does), with PostgreSQL connections in use
(pg_stat_activity, sampled), the study lock's wait and hold per trial, and CPU per trial of the
workers, the proxy and PostgreSQL; the table feeds the model in benchmarks/results/scaling.md.

    nice -n 10 python benchmarks/scaling.py --many 8,32,64,128 --trials-per-worker 10
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from _helpers_loader import load_trials_in, start_postgres  # benchmarks/ is on sys.path when run as a script

SLEEP = "import time\ndef sleep(params, ctx):\n    time.sleep(0.2)\n    return params['x']\n"


def throughput(folder: Path, workers: int, storage: str | None) -> float:
    name = f"scale-{workers}-{'pg' if storage else 'embedded'}"
    study = {"name": name, "metric": "value", "n_trials": 20 * workers, "seed": 0}
    if storage:
        study["storage"] = storage
    doc = {"study": study, "sampler": {"name": "random"}, "pruner": {"name": "none"},
           "objective": {"name": "sleep.py:sleep"}, "space": {"x": {"type": "float", "low": 0, "high": 1}},
           "mlflow": {"enabled": False}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    cmd = [sys.executable, "-m", "hpo", "run", str(path), "--no-report"]
    if storage:
        procs = [subprocess.Popen(cmd, cwd=folder, stdout=subprocess.DEVNULL) for _ in range(workers)]
    else:
        procs = [subprocess.Popen([*cmd, "--jobs", str(workers)], cwd=folder, stdout=subprocess.DEVNULL)]
    for p in procs:
        assert p.wait() == 0
    trials = load_trials_in(folder, path.name)
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    return len(trials) / (end - start).total_seconds()


def main() -> None:
    counts = [1, 2, 4, 8]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "sleep.py").write_text(SLEEP)
        url, stop = start_postgres()
        try:
            rows = []
            for label, storage in (("embedded", None), ("postgresql", url)):
                base = None
                for n in counts:
                    tps = throughput(folder, n, storage)
                    base = base or tps
                    rows.append((label, n, tps, tps / (n * base)))
                    print(f"done {label} {n}", flush=True)
        finally:
            stop()
    print()
    print("| storage | workers | trials/s | parallel efficiency |")
    print("|---|---|---|---|")
    for label, n, tps, eff in rows:
        print(f"| {label} | {n} | {tps:.2f} | {eff:.2f} |")


if __name__ == "__main__":
    if "--many" in sys.argv:
        from _many_workers import main as many_main

        many_main(sys.argv[1:])
    else:
        main()
