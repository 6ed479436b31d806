"""Memory of one worker across 50 trials of the built-in image objective (half of them pruned).

A trial that is pruned or fails must leave nothing behind for the next trial in the same worker.
Prints the worker's resident memory (and GPU memory when CUDA is there) every 5 trials.

    python benchmarks/memory.py            # 50 trials
    python benchmarks/memory.py --trials 20
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


from hpo._spec import spec_from_dict
from hpo._worker import join_study, run_worker
from hpo.tracking import Tracker


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def gpu_mb() -> float | None:
    import torch

    return torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()
    doc = {
        "study": {"name": "memory", "direction": "maximize", "metric": "val_acc", "n_trials": args.trials, "seed": 0},
        "sampler": {"name": "random"},
        # prunes a trial as soon as an epoch ends below 0.93 val_acc: about half of them here
        "pruner": {"name": "threshold", "options": {"lower": 0.93}},
        "objective": {"name": "image_classifier", "fixed": {"dataset": "digits", "max_epochs": 3}},
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
                  "width": {"type": "int", "low": 8, "high": 64, "step": 8}},
        "mlflow": {"enabled": False},
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        spec = spec_from_dict(doc, source=str(Path(tmp) / "memory.yaml"))

        def record(study, trial) -> None:
            if trial.number % 5 == 4 or trial.number == 0:
                rows.append((trial.number + 1, trial.state.name, rss_mb(), gpu_mb()))

        tracker = Tracker()
        run_worker(spec, tracker, join_study(spec, tracker)[0], record)
    print("| trials done | last state | worker RSS MB | GPU allocated MB |")
    print("|---|---|---|---|")
    for n, state, rss, gpu in rows:
        print(f"| {n} | {state} | {rss:.0f} | {'-' if gpu is None else f'{gpu:.1f}'} |")
    growth = rows[-1][2] - rows[1][2] if len(rows) > 2 else float("nan")
    print(f"\nRSS growth from trial {rows[1][0]} to trial {rows[-1][0]}: {growth:+.0f} MB")


if __name__ == "__main__":
    main()
