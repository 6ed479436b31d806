"""How long ``hpo run`` takes after its last trial ends (the "tail"), with MLflow on.

Runs ``hpo run`` (piped, so one line per trial) on a fresh study of ``--trials`` trials of a
trivial objective that reports ``--epochs`` steps, and times each output line from the start:

* ``trials``  — start to the last per-trial line,
* ``tail``    — the last per-trial line to the process's exit (queued MLflow writes, summary,
  dashboard),
* ``mlflow``  — the last per-trial line to the summary (the queued MLflow writes, the parent),
* ``report``  — from ``writing the dashboard…`` to the exit,
* ``total``   — start to exit.

Run it from the repository root::

    python benchmarks/run_tail.py --trials 300 --jobs 1
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OBJECTIVE = '''
def trivial(params, ctx):
    for step in range({epochs}):
        ctx.report({{"loss": params["x"] ** 2 + 1.0 / (step + 1), "other": float(step)}}, step=step)
    return {{"loss": params["x"] ** 2}}
'''

SPACE = """
study: {{direction: minimize, metric: loss, n_trials: {trials}, seed: 0}}
sampler: {{name: random}}
pruner: {{name: none}}
objective: {{name: "objs.py:trivial"}}
space: {{x: {{type: float, low: -5.0, high: 5.0}}}}
mlflow: {{enabled: true}}
"""


def run_once(trials: int, epochs: int, jobs: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="hpo-tail-"))
    (folder / "objs.py").write_text(OBJECTIVE.format(epochs=epochs))
    (folder / "space.yaml").write_text(SPACE.format(trials=trials))
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "hpo", "run", "space.yaml", "--jobs", str(jobs)], cwd=folder,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last_trial = summary = report = start
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.monotonic()
        if re.match(r"trial +\d+ ", line):
            last_trial = now
        elif "Trials by state" in line and summary == start:
            summary = now
        elif "writing the dashboard" in line or "this run took" in line:
            report = now  # old versions say nothing before the dashboard: from "this run took"
    proc.wait()
    end = time.monotonic()
    if proc.returncode != 0:
        raise SystemExit(f"hpo run failed with exit {proc.returncode} in {folder}")
    return {"trials": last_trial - start, "tail": end - last_trial, "mlflow": summary - last_trial,
            "report": end - report, "total": end - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"{'run':>4} {'trials s':>9} {'tail s':>8} {'mlflow s':>9} {'report s':>9} {'total s':>8}")
    for i in range(args.repeat):
        r = run_once(args.trials, args.epochs, args.jobs)
        print(f"{i:>4} {r['trials']:>9.1f} {r['tail']:>8.1f} {r['mlflow']:>9.1f} {r['report']:>9.1f} "
              f"{r['total']:>8.1f}")


if __name__ == "__main__":
    main()
