"""Weight pruning on the built-in objectives: accuracy vs sparsity, the exported model's size and
CPU latency, alone and with dynamic int8 quantization.

For each workload (``image``: ``image_classifier`` on digits; ``sequence``: ``sequence_classifier``
on mnist1d), each ``prune_structure`` (``weights``, ``channels``) and each ``prune_amount``
(``--amounts``, 0 = the dense baseline, trained once per workload) one trial is trained through
hpo's own trainer (``objectives.fit``, gradual cubic schedule, ``--seeds`` seeds) and its
``best.pt`` is loaded back the way a user would (``objectives._sparsity.load_slimmed``). Columns:

* ``sparsity``: the achieved share of zero Conv/Linear weights (the per-epoch metric) of the
  best epoch; ``params``: parameters of the exported network (fewer only for ``channels``);
* ``val_acc``: accuracy of the exported network on the validation split (mean over seeds);
  ``int8 acc``: the same after dynamic int8 quantization of its Linear layers;
* ``ms/batch`` and ``int8 ms``: CPU latency of one forward pass over ``--batch`` samples, one
  torch thread, the fastest of ``--repeats`` passes after warm-up in CPU time (first seed's model).

Quantization is torchao's ``Int8DynamicActivationInt8WeightConfig`` through ``quantize_``: torch
2.13 deprecates ``torch.ao.quantization.quantize_dynamic`` in favour of torchao. Convolutions stay
float (dynamic quantization covers Linear layers), so int8 changes little in these conv nets.

    nice -n 10 python benchmarks/weight_pruning.py [--amounts 0,0.5,0.8,0.9] [--seeds 0,1]
        [--epochs 12] [--workloads image,sequence]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKLOADS = {
    "image": ("image", {"dataset": "digits", "width": 32, "depth": 3}),
    "sequence": ("sequence", {"dataset": "mnist1d", "width": 32, "depth": 3}),
}
STRUCTURES = ("weights", "channels")


def _config(workload: str, structure: str, amount: float, seed: int, epochs: int) -> dict[str, Any]:
    base = {**WORKLOADS[workload][1], "max_epochs": epochs, "lr": 3e-3, "lr_schedule": "cosine",
            "threads": 1, "seed": seed, "batch_size": 64}
    if amount <= 0:
        return base
    # Prune from a third of the way to two thirds, then fine-tune at the final sparsity.
    return {**base, "prune_amount": amount, "prune_schedule": "gradual", "prune_structure": structure,
            "prune_start_epoch": epochs // 3, "prune_end_epoch": 2 * epochs // 3}


def _ctx(workdir: Path) -> Any:
    import optuna

    from hpo._context import TrialContext
    from hpo.tracking._base import Tracker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study(direction="maximize").ask()
    return TrialContext(trial=trial, params={}, config={}, metrics=("val_acc",), seed=0, workdir=workdir,
                        study_dir=workdir, tracker=Tracker())


def _train(kind: str, params: dict[str, Any], workdir: Path) -> tuple[Any, Any, dict[str, float]]:
    """Trains one trial; returns (the exported network, the validation batches, best metrics)."""
    import torch

    from objectives._config import TrainConfig
    from objectives._fit import build_classifier, fit
    from objectives._models import build_model
    from objectives._sparsity import load_slimmed

    cfg = TrainConfig.from_params(params)
    module, data = build_classifier(kind, cfg)
    result = fit(module, data, cfg, _ctx(workdir))
    ckpt = torch.load(workdir / "best.pt", weights_only=True)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    net = load_slimmed(build_model(ckpt["model"]), state).eval()
    return net, data.val, result


def _accuracy(net: Any, batches: Any) -> float:
    import torch

    correct = total = 0
    with torch.no_grad():
        for x, y in batches:
            correct += int((net(x).argmax(-1) == y).sum())
            total += len(y)
    return correct / total


def _int8(net: Any) -> Any:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantized = copy.deepcopy(net)
    quantize_(quantized, Int8DynamicActivationInt8WeightConfig())
    return quantized


def _latency_ms(net: Any, x: Any, repeats: int) -> float:
    """The fastest of ``repeats`` forward passes in this process's CPU time: on a shared machine other
    processes' load stretches the wall clock far more than it does the CPU time."""
    import torch

    times = []
    with torch.no_grad():
        for i in range(repeats + 3):
            t0 = time.process_time()
            net(x)
            if i >= 3:  # warm-up passes dropped
                times.append((time.process_time() - t0) * 1e3)
    return min(times)


def _row(workload: str, structure: str, amount: float, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    kind = WORKLOADS[workload][0]
    accs, int8_accs, sparsities = [], [], []
    net = batches = None
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            trained, val, result = _train(kind, _config(workload, structure, amount, seed, args.epochs), Path(tmp))
        net, batches = (trained, val) if net is None else (net, batches)
        accs.append(_accuracy(trained, val))
        int8_accs.append(_accuracy(_int8(trained), val))
        sparsities.append(result.get("sparsity", 0.0))
    x = next(iter(batches))[0][: args.batch]
    x = x.repeat(-(-args.batch // len(x)), *([1] * (x.ndim - 1)))[: args.batch]
    torch.set_num_threads(1)
    return {
        "workload": workload, "structure": structure if amount > 0 else "dense", "amount": amount,
        "sparsity": statistics.mean(sparsities), "params": sum(p.numel() for p in net.parameters()),
        "val_acc": statistics.mean(accs), "int8_acc": statistics.mean(int8_accs),
        "ms": _latency_ms(net, x, args.repeats), "int8_ms": _latency_ms(_int8(net), x, args.repeats),
    }


def _print(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nweight pruning: {args.epochs} epochs, gradual cubic schedule from epoch {args.epochs // 3} to "
          f"{2 * args.epochs // 3}, seeds {args.seeds}; latency: batch {args.batch}, 1 thread, CPU time\n")
    head = ("| workload | structure | prune_amount | sparsity | params | val_acc | int8 acc | ms/batch | int8 ms |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        print(f"| {r['workload']} | {r['structure']} | {r['amount']:.2f} | {r['sparsity']:.3f} | {r['params']:,} | "
              f"{r['val_acc']:.4f} | {r['int8_acc']:.4f} | {r['ms']:.2f} | {r['int8_ms']:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="image,sequence")
    parser.add_argument("--amounts", default="0,0.5,0.8,0.9")
    parser.add_argument("--structures", default=",".join(STRUCTURES))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("torchao").setLevel(logging.ERROR)
    rows = []
    for workload in args.workloads.split(","):
        for amount in (float(a) for a in args.amounts.split(",")):
            for structure in args.structures.split(",") if amount > 0 else ["weights"]:
                rows.append(_row(workload, structure, amount, args))
                print(f"done: {workload} {rows[-1]['structure']} {amount}", file=sys.stderr, flush=True)
    _print(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
