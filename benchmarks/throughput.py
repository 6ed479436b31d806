"""Training throughput of the built-in objective (Lightning) vs a hand-written PyTorch loop.

Both train the same ``ConvNet`` on the same device-resident digits tensors, batched by index
with the same batch size, with AdamW; only the training part of each epoch is timed (the
objective's own ``samples_per_sec`` metric on the Lightning side, a wall clock around the loop
on the plain side). Warm-up epochs are discarded; runs are interleaved and repeated, and the
best repeat of each side is kept (the machine may be shared).

    python benchmarks/throughput.py [--epochs 6 --warmup 2 --repeats 3 --width 32 --depth 2 --batch-size 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from objectives._callbacks import collect_metrics  # noqa: E402
from objectives._config import TrainConfig  # noqa: E402
from objectives._data import load_dataset, make_device_data  # noqa: E402
from objectives._fit import build_classifier, fit  # noqa: E402
from objectives._models import ConvNet  # noqa: E402


class _PerEpoch(pl.Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        self.rates.append(collect_metrics(trainer)["samples_per_sec"])


def lightning_rate(cfg: TrainConfig, warmup: int) -> float:
    module, data = build_classifier("image", cfg)
    rec = _PerEpoch()
    fit(module, data, cfg, None, callbacks=[rec])
    return statistics.median(rec.rates[warmup:])


def plain_rate(cfg: TrainConfig, warmup: int, device: torch.device) -> float:
    arrays = load_dataset(cfg.dataset, "image", cfg.val_fraction)
    torch.manual_seed(cfg.effective_seed)
    model = ConvNet(arrays.input_shape, arrays.num_classes, cfg.width, cfg.depth, cfg.dropout).to(device)
    data = make_device_data(arrays, cfg.batch_size, cfg.effective_seed)
    data.train.place(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    bf16 = cfg.precision == "bf16-mixed"
    rates = []
    for _ in range(cfg.max_epochs):
        model.train()
        n = 0
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for x, y in data.train:
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            opt.step()
            n += len(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates[warmup:])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)

    rows = [("cpu", "32-true"), ("cpu", "bf16-mixed")]
    if torch.cuda.is_available():
        rows += [("cuda", "32-true"), ("cuda", "bf16-mixed")]
    print(f"image_classifier on digits: width={args.width} depth={args.depth} batch_size={args.batch_size}, "
          f"{args.epochs} epochs ({args.warmup} warm-up), best of {args.repeats}; torch threads "
          f"{torch.get_num_threads()}")
    print(f"{'device':<7}{'precision':<12}{'lightning s/s':>15}{'plain s/s':>12}{'ratio':>8}")
    for device_type, precision in rows:
        cfg = TrainConfig(dataset="digits", width=args.width, depth=args.depth, batch_size=args.batch_size,
                          max_epochs=args.epochs, precision=precision, seed=0, keep_checkpoints=0)
        if device_type == "cpu" and torch.cuda.is_available():
            continue  # fit() trains on the GPU whenever one is visible
        light, plain = [], []
        for _ in range(args.repeats):  # interleaved: both sides see the same machine load
            light.append(lightning_rate(cfg, args.warmup))
            plain.append(plain_rate(cfg, args.warmup, torch.device(device_type)))
        lr, pr = max(light), max(plain)
        print(f"{device_type:<7}{precision:<12}{lr:>15.0f}{pr:>12.0f}{lr / pr:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
