"""MLflow's fixed cost per ``hpo run``: the same study with MLflow on and off, and when its first trial starts.

Runs ``hpo run`` (a fresh folder and a fresh SQLite MLflow store each time) on a study of
``--trials`` trials whose objective works ``--trial-time`` seconds in ``--epochs`` reported steps,
alternating MLflow on / off ``--repeat`` times so that machine noise hits both alike. The work is
a pure-Python loop by default (it holds the GIL, as a Python-heavy training step does: the worst
case for work done on a background thread); ``--work sleep`` releases it (as a GPU-bound step).
Trials are equal in both modes (same seed, same work), so the difference is MLflow's own cost.

Columns (medians over the repeats):

* ``first trial s`` — from the command's start to the first trial's first line of code,
* ``total s``       — from the command's start to its exit,
* ``fixed cost``    — ``total`` with MLflow on minus off.

Run it from the repository root; ``--hpo-root`` times another checkout's ``hpo`` (e.g. the
state before a change: ``git archive main hpo | tar -x -C /tmp/base``)::

    python benchmarks/mlflow_fixed_cost.py --repeat 3
    python benchmarks/mlflow_fixed_cost.py --repeat 3 --hpo-root /tmp/base
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OBJECTIVE = '''
import time


def work(params, ctx):
    with open("first-trial.txt", "a") as f:
        f.write(f"{{time.time()}}\\n")
    per_epoch = {trial_time} / {epochs}
    for step in range({epochs}):
        end = time.perf_counter() + per_epoch
        if "{work}" == "sleep":
            time.sleep(per_epoch)
        while time.perf_counter() < end:  # pure Python: holds the GIL
            sum(i * i for i in range(1000))
        ctx.report({{"loss": params["x"] ** 2 + 1.0 / (step + 1)}}, step=step)
    return {{"loss": params["x"] ** 2}}
'''

SPACE = """
study: {{direction: minimize, metric: loss, n_trials: {trials}, seed: 0}}
sampler: {{name: random}}
pruner: {{name: none}}
objective: {{name: "objs.py:work"}}
space: {{x: {{type: float, low: -5.0, high: 5.0}}}}
mlflow: {{enabled: {mlflow}}}
"""


def run_once(args: argparse.Namespace, mlflow: bool) -> tuple[float, float]:
    """(seconds to the first trial's start, seconds to the exit) of one ``hpo run``."""
    folder = Path(tempfile.mkdtemp(prefix="hpo-fixed-"))
    (folder / "objs.py").write_text(OBJECTIVE.format(trial_time=args.trial_time, epochs=args.epochs, work=args.work))
    (folder / "space.yaml").write_text(SPACE.format(trials=args.trials, mlflow=str(mlflow).lower()))
    env = {**os.environ, "PYTHONPATH": str(args.hpo_root), "PYTHONUNBUFFERED": "1"}
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "hpo", "run", "space.yaml", "--no-report"], cwd=folder, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"hpo run failed with exit {proc.returncode} in {folder}:\n{proc.stdout[-2000:]}")
    first = float((folder / "first-trial.txt").read_text().split()[0])
    return first - start, end - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--trial-time", type=float, default=0.5, help="seconds of work per trial")
    parser.add_argument("--work", choices=("python", "sleep"), default="python")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hpo-root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(args.repeat):
        for mlflow in (False, True):
            runs[mlflow].append(run_once(args, mlflow))
    print(f"hpo from {args.hpo_root}; {args.trials} trials x {args.trial_time:g} s of {args.work} work; "
          f"medians of {args.repeat} runs per mode, alternated\n")
    print("| MLflow | first trial s | total s | fixed cost s |")
    print("|--------|---------------|---------|--------------|")
    off_total = statistics.median(t for _, t in runs[False])
    for mlflow in (False, True):
        first = statistics.median(f for f, _ in runs[mlflow])
        total = statistics.median(t for _, t in runs[mlflow])
        cost = f"{total - off_total:+.2f}" if mlflow else "-"
        print(f"| {'on' if mlflow else 'off':6} | {first:13.2f} | {total:7.2f} | {cost:>12} |")


if __name__ == "__main__":
    main()
