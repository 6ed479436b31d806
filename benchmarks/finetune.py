"""Fine-tuning vs training from scratch on a shifted MNIST-1D with few training samples.

A ``sequence_classifier`` is pre-trained on MNIST-1D (4000 training samples). The target task is
MNIST-1D made again by the mnist1d generator with other arguments: another seed, larger
translation, scale, shear and noise, and only ``--train-samples`` training samples (1000 held out).
At equal epochs and equal hyperparameters, for several seeds, it compares:

- scratch: random initialisation;
- fine-tuned: ``init_from`` the pre-trained checkpoint, all layers training;
- fine-tuned, frozen then unfrozen: ``freeze: backbone`` until ``unfreeze_at_epoch``, with
  ``head_lr_mult`` and ``layer_lr_decay``.

Prints a Markdown table (val_acc of the best epoch: mean, std and each seed's).

    nice -n 10 python benchmarks/finetune.py                   # 5 seeds, ~3 min on 2 busy cores
    python benchmarks/finetune.py --seeds 5 --epochs 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# The target task: the generator's own arguments, changed (defaults: seed 42, max_translation 48,
# scale_coeff 0.4, shear_scale 0.75, corr_noise_scale 0.25, iid_noise_scale 0.02).
SHIFT = {"seed": 7, "max_translation": 60, "scale_coeff": 0.6, "shear_scale": 1.0,
         "corr_noise_scale": 0.4, "iid_noise_scale": 0.05}
MODEL = {"width": 32, "depth": 3, "threads": 1}
TRAIN = {"lr": 3e-3, "lr_schedule": "cosine", "batch_size": 32, "weight_decay": 1e-2}
VARIANTS = {
    "scratch": {},
    "fine-tuned": {"init_from": "{ckpt}"},
    "fine-tuned, frozen then unfrozen": {"init_from": "{ckpt}", "freeze": "backbone", "unfreeze_at_epoch": 3,
                                         "head_lr_mult": 5.0, "layer_lr_decay": 0.7},
}


def shifted_npz(folder: Path, train_samples: int) -> Path:
    """The shifted MNIST-1D as ``x, y, x_val, y_val`` (``train_samples`` + 1000 held out)."""
    from objectives._data import generate_mnist1d

    total = train_samples + 1000
    d = generate_mnist1d(num_samples=total, train_split=train_samples / total, **SHIFT)
    path = folder / "mnist1d-shifted.npz"
    np.savez(path, x=d["x"], y=d["y"], x_val=d["x_test"], y_val=d["y_test"])
    return path


def pretrain(folder: Path, epochs: int) -> tuple[Path, float]:
    """Trains on MNIST-1D; saves the best epoch's weights and architecture as ``best.pt`` does."""
    from objectives._fit import run_classifier

    params = {**MODEL, **TRAIN, "dataset": "mnist1d", "max_epochs": epochs, "seed": 0}
    metrics, module = run_classifier("sequence", params, restore_best=True, monitor="val_acc", mode="max")
    path = folder / "pretrained.pt"
    torch.save({"state_dict": module.state_dict(), "model": dict(module.model.hparams)}, path)
    return path, metrics["val_acc"]


def finetune(data: Path, ckpt: Path, variant: dict, epochs: int, seed: int) -> float:
    import warnings

    from objectives._fit import run_classifier

    knobs = {k: (v.format(ckpt=ckpt) if isinstance(v, str) else v) for k, v in variant.items()}
    params = {**MODEL, **TRAIN, **knobs, "dataset": f"npz:{data}", "max_epochs": epochs, "seed": seed}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics, _ = run_classifier("sequence", params, monitor="val_acc", mode="max")
    return metrics["val_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15, help="fine-tuning and from-scratch epochs")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--train-samples", type=int, default=250)
    args = parser.parse_args()
    import logging

    logging.getLogger("objectives._finetune").setLevel(logging.ERROR)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ckpt, pre_acc = pretrain(folder, args.pretrain_epochs)
        data = shifted_npz(folder, args.train_samples)
        results = {name: [finetune(data, ckpt, variant, args.epochs, seed) for seed in range(args.seeds)]
                   for name, variant in VARIANTS.items()}
    print(f"Pre-trained on MNIST-1D (4000 samples, {args.pretrain_epochs} epochs): val_acc {pre_acc:.3f}. "
          f"Target: shifted MNIST-1D, {args.train_samples} training samples, 1000 validation; "
          f"{args.epochs} epochs each, seeds 0-{args.seeds - 1}.\n")
    print("| start | val_acc mean | std | per seed |")
    print("|---|---|---|---|")
    for name, accs in results.items():
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"| {name} | {statistics.mean(accs):.3f} | {std:.3f} | {', '.join(f'{a:.3f}' for a in accs)} |")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
