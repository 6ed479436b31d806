"""The driver's own cost per trial, with a no-op objective.

Compares, per trial:
  optuna (in-memory)   : plain `study.optimize` on Optuna's in-memory storage: the sampler's own cost
  optuna (journal)     : the same on Optuna's journal file storage
  hpo (embedded, N job): `hpo run` (spec → study → worker loop, cap lock, bookkeeping), MLflow off

    python benchmarks/overhead.py                 # 100 and 1000 trials, random and tpe
    python benchmarks/overhead.py --trials 100    # quicker
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import optuna
from rich.console import Console

from hpo._run import run_study
from hpo._spec import spec_from_dict

optuna.logging.set_verbosity(optuna.logging.WARNING)
NOOP = "def noop(params, ctx):\n    return params['x'] ** 2 + params['y']\n"


def optuna_ms(sampler: str, n: int, storage) -> float:
    samplers = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}
    study = optuna.create_study(sampler=samplers[sampler](seed=0), storage=storage)
    start = time.perf_counter()
    study.optimize(lambda t: t.suggest_float("x", -5, 5) ** 2 + t.suggest_int("y", 0, 9), n_trials=n)
    return (time.perf_counter() - start) * 1000 / n


def hpo_ms(sampler: str, n: int, jobs: int, folder: Path) -> float:
    doc = {
        "study": {"name": f"bench-{sampler}-{n}-{jobs}", "metric": "value", "n_trials": n, "seed": 0},
        "sampler": {"name": sampler},
        "pruner": {"name": "none"},
        "objective": {"name": "noop.py:noop"},
        "space": {"x": {"type": "float", "low": -5, "high": 5}, "y": {"type": "int", "low": 0, "high": 9}},
        "mlflow": {"enabled": False},
    }
    spec = spec_from_dict(doc, source=str(folder / "space.yaml"))
    start = time.perf_counter()
    result = run_study(spec, jobs, Console(file=io.StringIO()))
    assert result.exit_code == 0, result.stop_reason
    return (time.perf_counter() - start) * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--samplers", nargs="+", default=["random", "tpe"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "noop.py").write_text(NOOP)
        (folder / "space.yaml").write_text("# written by benchmarks/overhead.py\n")
        os.chdir(folder)
        for sampler in args.samplers:
            for n in args.trials:
                mem = optuna_ms(sampler, n, None)
                journal_file = folder / f"optuna-{sampler}-{n}.log"
                backend = optuna.storages.journal.JournalFileBackend(str(journal_file))
                journal = optuna_ms(sampler, n, optuna.storages.JournalStorage(backend))
                one = hpo_ms(sampler, n, 1, folder)
                two = hpo_ms(sampler, n, 2, folder)
                rows.append((sampler, n, mem, journal, one, two, one - mem))
                print(f"done {sampler} {n}", flush=True)
    print()
    print("| sampler | trials | optuna in-memory ms/trial | optuna journal ms/trial "
          "| hpo embedded 1 job ms/trial | hpo embedded 2 jobs ms/trial | hpo 1 job − sampler (in-memory) |")
    print("|---|---|---|---|---|---|---|")
    for sampler, n, mem, journal, one, two, extra in rows:
        print(f"| {sampler} | {n} | {mem:.2f} | {journal:.2f} | {one:.2f} | {two:.2f} | {extra:+.2f} |")


if __name__ == "__main__":
    main()
