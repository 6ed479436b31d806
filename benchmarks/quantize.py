"""Post-training int8 quantization (``hpo train --quantize``) on the built-in objectives and the ResNet.

Trains each model once (CPU, fixed seed), then quantizes a copy with each mode the way ``hpo train
--quantize`` does (``objectives._quantize.quantize_trained``) and prints, per model and mode: the
validation accuracy of both and the drop in points (target <= 1), the file size of both and their
ratio, the ratio of the Conv/Linear weights' bytes alone (int8 + scales over float32; target <= 0.3),
the CPU latency per validation batch of both (one thread, each batch's fastest of 7 passes) and their ratio.

    nice -n 10 python benchmarks/quantize.py                 # all three, ~5 min on 2 busy cores
    nice -n 10 python benchmarks/quantize.py --only resnet --epochs 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

# name → (objective, fixed config); small enough to train in about a minute each on a CPU core.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "image digits": ("image_classifier", {"dataset": "digits", "width": 32, "depth": 2, "batch_size": 64,
                                          "lr": 0.01, "max_epochs": 10}),
    "sequence mnist1d": ("sequence_classifier", {"dataset": "mnist1d", "width": 32, "depth": 3, "batch_size": 64,
                                                 "lr": 0.01, "max_epochs": 15}),
    "resnet-8 digits": ("resnet_classifier", {"dataset": "digits", "depth": 8, "width": 16, "batch_size": 64,
                                              "lr": 0.05, "max_epochs": 6}),
}
MODES = ("dynamic", "static")


def _context(config: dict[str, Any], workdir: Path) -> Any:
    import optuna

    from hpo._context import TrialContext
    from hpo.tracking import Tracker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study(direction="maximize").ask()
    return TrialContext(trial, dict(config), dict(config), ("val_acc",), 0, workdir, workdir, Tracker())


def train(objective: str, config: dict[str, Any], workdir: Path) -> tuple[Any, Any, str, float]:
    """Trains one model; returns ``(module, data, best checkpoint, seconds)``."""
    from hpo._objective import resolve_objective, run_objective

    ctx = _context({**config, "threads": 1, "seed": 0}, workdir)
    start = time.perf_counter()
    run_objective(resolve_objective(objective, Path.cwd()), ctx)
    module, data = ctx.fitted
    return module, data, ctx.checkpoint, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="models whose name contains this")
    parser.add_argument("--epochs", type=int, help="max_epochs of every model (default: each model's own)")
    args = parser.parse_args()
    from objectives._quantize import float_copy, quantize_trained

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for name, (objective, config) in MODELS.items():
            if args.only and args.only not in name:
                continue
            config = {**config, **({"max_epochs": args.epochs} if args.epochs else {})}
            module, data, checkpoint, seconds = train(objective, config, Path(tmp) / name.replace(" ", "-"))
            print(f"trained {name} ({objective}) in {seconds:.0f} s", flush=True)
            for mode in MODES:
                c = quantize_trained(float_copy(module), data, checkpoint, mode, checkpoint,
                                     Path(checkpoint).with_name(f"int8-{mode}.pt"))
                rows.append((name, c))
    print()
    print("| model | mode | float acc | int8 acc | drop (points) | float KiB | int8 KiB | file ratio "
          "| weight ratio | float ms/batch | int8 ms/batch | latency ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, c in rows:
        f, q = c.float, c.int8
        print(f"| {name} | {c.mode} | {f.accuracy:.4f} | {q.accuracy:.4f} | {100 * (f.accuracy - q.accuracy):.2f} "
              f"| {f.size_bytes / 1024:.1f} | {q.size_bytes / 1024:.1f} | {q.size_bytes / f.size_bytes:.2f} | {c.weight_ratio:.2f} "
              f"| {f.latency_ms:.2f} | {q.latency_ms:.2f} | {q.latency_ms / f.latency_ms:.2f} |")


if __name__ == "__main__":
    main()
