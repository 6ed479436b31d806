"""How k-fold cross-validation (``cv_folds``) changes the ranking of configurations on digits.

A handful of configurations (learning rates of ``image_classifier`` on digits) are scored three ways,
for each of ``--seeds`` seeds:

* ``holdout``: one 80/20 split of the training data (fold 0 of the cross-validation: the same
  model and data a plain study with that split would score);
* ``cv``: the mean over the ``--folds`` folds (``cv_folds``: what the trial's value is);
* ``truth``: the reference. Each configuration retrained on all the training data, scored on
  digits' validation split (360 samples no fold ever sees), averaged over the seeds.

For each seed, the ranking of the configurations by ``holdout`` and by ``cv`` is compared with the
ranking by ``truth`` (Kendall's tau; 1 = same order) and whether it picks the same best one. The
table gives the mean and std over seeds, how much a configuration's score moves between seeds
(its std over seeds, averaged over configurations: the noise a sampler has to rank through), and
the training time of one configuration.

Usage::

    python benchmarks/cv.py                      # 6 learning rates, 5 folds, 3 seeds
    python benchmarks/cv.py --folds 3 --seeds 1 2 --epochs 2
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def _ctx(tmp: Path, seed: int) -> Any:
    """A trial context on an in-memory study (the per-fold values land on its trial)."""
    import optuna

    from hpo._context import TrialContext
    from hpo.tracking._base import Tracker

    study = optuna.create_study(direction="maximize")
    return TrialContext(study.ask(), {}, {}, ("val_acc",), seed, tmp / f"t{seed}", tmp, Tracker())


def score(params: dict[str, Any], seed: int, tmp: Path) -> tuple[float, float, float]:
    """``(holdout, cv mean, seconds)`` of one configuration for one seed."""
    from hpo._keys import CV_FOLD_VALUES
    from objectives._fit import run_classifier

    ctx = _ctx(tmp, seed)
    start = time.perf_counter()
    result, _ = run_classifier("image", {**params, "seed": seed}, ctx)
    folds = ctx.trial.user_attrs[CV_FOLD_VALUES]
    return folds[0], result["val_acc"], time.perf_counter() - start


def truth(params: dict[str, Any], seeds: list[int]) -> float:
    """Mean over seeds of val_acc on digits' validation split after training on all training data."""
    from objectives._fit import run_classifier

    return statistics.mean(run_classifier("image", {**params, "cv_folds": 0, "seed": s})[0]["val_acc"]
                           for s in seeds)


def agreement(scores: list[float], reference: list[float]) -> tuple[float, bool]:
    """Kendall's tau between two rankings, and whether both pick the same best configuration."""
    from scipy.stats import kendalltau

    tau = kendalltau(scores, reference).statistic
    return float(tau), int(np.argmax(scores)) == int(np.argmax(reference))


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    _quiet()
    base = {"dataset": "digits", "width": 8, "depth": 2, "batch_size": 64, "threads": 1,
            "max_epochs": args.epochs, "cv_folds": args.folds}
    configs = [{**base, "lr": lr} for lr in args.lrs]
    rows: dict[str, list[tuple[float, bool]]] = {"holdout": [], "cv": []}
    by_seed: dict[str, list[list[float]]] = {"holdout": [], "cv": []}  # [seed][config]
    seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        reference = [truth(c, args.seeds) for c in configs]
        for seed in args.seeds:
            scored = [score(c, seed, Path(tmp)) for c in configs]
            seconds += [s[2] for s in scored]
            for i, name in enumerate(("holdout", "cv")):
                by_seed[name].append([s[i] for s in scored])
                rows[name].append(agreement(by_seed[name][-1], reference))
            print(f"seed {seed}: holdout " + " ".join(f"{s[0]:.3f}" for s in scored)
                  + " | cv " + " ".join(f"{s[1]:.3f}" for s in scored), flush=True)
    print("truth (val split, all training data): " + " ".join(f"{r:.3f}" for r in reference))
    print()
    print(f"digits, image_classifier width 8, {args.epochs} epochs, lr in {args.lrs}, seeds {args.seeds}")
    print()
    print("| ranking by | Kendall tau vs truth (mean ± std over seeds) | same best config "
          "| score std over seeds | fits per config | seconds per config |")
    print("|---|---|---|---|---|---|")
    per_fit = statistics.mean(seconds) / args.folds
    for key, name, fits in (("holdout", "holdout (1 split)", 1), ("cv", f"cv ({args.folds} folds)", args.folds)):
        taus = [t for t, _ in rows[key]]
        same = sum(b for _, b in rows[key])
        spread = statistics.stdev(taus) if len(taus) > 1 else 0.0
        noise = float(np.mean(np.std(np.array(by_seed[key]), axis=0)))
        print(f"| {name} | {statistics.mean(taus):.2f} ± {spread:.2f} | {same}/{len(taus)} | {noise:.4f} | {fits} "
              f"| {per_fit * fits:.1f} |")


if __name__ == "__main__":
    main()
