"""Training throughput of the built-in objective (Lightning) vs a hand-written PyTorch loop.

Both train the same ``ConvNet`` on the same device-resident digits tensors, batched by index
with the same batch size, with AdamW; only the training part of each epoch is timed (the
objective's own ``samples_per_sec`` metric on the Lightning side, a wall clock around the loop
on the plain side). Warm-up epochs are discarded; runs are interleaved and repeated, and each
side's fastest epoch over all repeats is kept (the least disturbed one on a shared machine). On a shared machine wall-clock rates swing with the load of
other processes, so the table also gives samples per CPU-second of this process (``process_time``),
which other processes' load affects far less; the ``cpu ratio`` is the Lightning overhead.

    python benchmarks/throughput.py [--epochs 6 --warmup 2 --repeats 3 --models 32x2x64,64x2x256 --threads 0]
"""

from __future__ import annotations

import argparse
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
    """The objective's own samples_per_sec metric, plus samples per CPU-second of this process.

    Epoch hooks only: a per-step hook here would charge the benchmark's own cost to Lightning.
    """

    def __init__(self, samples_per_epoch: int) -> None:
        self.samples = samples_per_epoch
        self.rates: list[float] = []
        self.cpu_rates: list[float] = []
        self._c0 = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._c0 = time.process_time()

    def on_validation_start(self, trainer, pl_module) -> None:
        self.cpu_rates.append(self.samples / (time.process_time() - self._c0))

    def on_validation_end(self, trainer, pl_module) -> None:
        self.rates.append(collect_metrics(trainer)["samples_per_sec"])


def lightning_rate(cfg: TrainConfig, warmup: int) -> tuple[float, float]:
    module, data = build_classifier("image", cfg)
    rec = _PerEpoch(min(len(data.train) * cfg.batch_size, len(data.train.x)))  # the ragged last batch is dropped
    fit(module, data, cfg, None, callbacks=[rec])
    return max(rec.rates[warmup:]), max(rec.cpu_rates[warmup:])


def plain_rate(cfg: TrainConfig, warmup: int, device: torch.device) -> tuple[float, float]:
    arrays = load_dataset(cfg.dataset, "image", cfg.val_fraction)
    torch.manual_seed(cfg.effective_seed)
    model = ConvNet(arrays.input_shape, arrays.num_classes, cfg.width, cfg.depth, cfg.dropout).to(device)
    data = make_device_data(arrays, cfg.batch_size, cfg.effective_seed)
    data.train.place(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    bf16 = cfg.precision == "bf16-mixed"
    rates, cpu_rates = [], []
    for _ in range(cfg.max_epochs):
        model.train()
        n = 0
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
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
        cpu_rates.append(n / (time.process_time() - c0))
    return max(rates[warmup:]), max(cpu_rates[warmup:])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="32x2x64,64x2x256",
                    help="comma-separated WIDTHxDEPTHxBATCH_SIZE configurations")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for both sides (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = [("cpu", "32-true"), ("cpu", "bf16-mixed")]
    if torch.cuda.is_available():
        rows += [("cuda", "32-true"), ("cuda", "bf16-mixed")]
    print(f"image_classifier on digits, {args.epochs} epochs ({args.warmup} warm-up), fastest epoch of "
          f"{args.repeats} interleaved repeats; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'model WxDxB':<13}{'device':<7}{'precision':<12}{'lightning s/s':>15}{'plain s/s':>12}{'ratio':>8}"
          f"{'lightning s/cpu-s':>19}{'plain s/cpu-s':>15}{'cpu ratio':>11}")
    models = [tuple(int(v) for v in m.split("x")) for m in args.models.split(",")]
    for (width, depth, batch_size), (device_type, precision) in [(m, r) for m in models for r in rows]:
        cfg = TrainConfig(dataset="digits", width=width, depth=depth, batch_size=batch_size,
                          max_epochs=args.epochs, precision=precision, seed=0, keep_checkpoints=0)
        if device_type == "cpu" and torch.cuda.is_available():
            continue  # fit() trains on the GPU whenever one is visible
        light, plain = [], []
        for _ in range(args.repeats):  # interleaved: both sides see the same machine load
            light.append(lightning_rate(cfg, args.warmup))
            plain.append(plain_rate(cfg, args.warmup, torch.device(device_type)))
        lr, pr = max(r for r, _ in light), max(r for r, _ in plain)
        lc, pc = max(c for _, c in light), max(c for _, c in plain)
        print(f"{f'{width}x{depth}x{batch_size}':<13}{device_type:<7}{precision:<12}{lr:>15.0f}{pr:>12.0f}{lr / pr:>8.2f}"
              f"{lc:>19.0f}{pc:>15.0f}{lc / pc:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
