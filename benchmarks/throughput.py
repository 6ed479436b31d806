"""Training throughput under hpo's trainer (``objectives.fit``) vs a plain ``Trainer.fit`` vs a
hand-written PyTorch loop, on the same module, data, batch size and optimiser (AdamW).

Workloads (``--workloads``, comma-separated):

* ``convnet-WxDxB``: the built-in ``image_classifier`` network on digits (device-resident tensors,
  batched by index), width W, depth D, batch B;
* ``resnet``: the built-in ``resnet_classifier`` network (``--resnet-depth``, width 16) on
  synthetic 3x32x32 images, 10 classes, ``--resnet-images`` training images (384), batch
  ``--resnet-batch`` (32);
* ``user``: the example user package ``examples/my_models`` (``SmallCNN(width=64)`` written with
  ``import lightning as L``, ``DigitsDataModule(batch_size=64)`` with ordinary DataLoaders).

Sides: ``hpo`` (``objectives.fit``: hpo's callbacks and Trainer settings),
``lightning`` (the module's own Lightning package, ``Trainer.fit`` with logging, progress bar,
checkpointing and model summary off and no hpo callback; the module gets an AdamW
``configure_optimizers`` where it has none), ``raw`` (zero_grad/forward/cross-entropy/
backward/step over the same batches, under bf16 autocast with ``--precision bf16-mixed``).
``--separate`` adds ``hpo-separate``: hpo with its callbacks given to the Trainer one by one
instead of as one, to show what combining them earns (Lightning calls every hook of every
callback on every step).

Every run is its own process (no side inherits another's imports or state), with ``--threads`` torch
threads. Only the training part of each epoch is timed, by epoch hooks on the Lightning sides
(no per-step hook of the benchmark's own); warm-up epochs are dropped and a run's rate is its
fastest epoch (the least disturbed on a shared machine). Runs are interleaved over
``--repeats`` rounds; the table gives each side's median rate and spread (min-max) over the
rounds, the mean step time of the raw loop, and the ratios of the medians. ``cpu`` rates use
this process's CPU time, which other processes' load affects far less than the wall clock.

``--accelerator gpu`` runs every side on the first CUDA device: the built-ins' index-batched data
sits on the GPU on every side, a DataLoader's batches are copied to it per step (as Lightning
does), and each epoch's clock is read after ``torch.cuda.synchronize()``. Only the wall-clock
table means anything there.

    python benchmarks/throughput.py [--workloads convnet-32x2x64,convnet-64x2x256,resnet,user]
        [--epochs 6 --warmup 2 --repeats 3 --threads 1 --precision 32-true --separate]
        [--accelerator gpu --resnet-images 8192 --resnet-batch 128 --pin CORE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIDES = ("hpo", "lightning", "raw")
USER_WIDTH, USER_BATCH = 64, 64
LR = 1e-3


# -- workloads: (module, data, batches-for-the-raw-loop, samples per training epoch) ------------------


def _convnet(spec: str):
    from objectives._config import TrainConfig
    from objectives._data import load_dataset

    width, depth, batch = (int(v) for v in spec.split("x"))
    cfg = TrainConfig(dataset="digits", width=width, depth=depth, batch_size=batch, lr=LR, seed=0)
    arrays = load_dataset("digits", "image", cfg.val_fraction)
    return _builtin(cfg, arrays)


def _resnet(depth: int, images: int, batch: int):
    import numpy as np

    from objectives._config import TrainConfig
    from objectives._data import ArrayData

    rng = np.random.default_rng(0)
    n_val = images // 4
    y = rng.integers(0, 10, images + n_val)
    means = rng.normal(0, 1, (10, 3, 1, 1)).astype(np.float32)
    x = (means[y] + rng.normal(0, 1, (len(y), 3, 32, 32))).astype(np.float32)
    arrays = ArrayData(x[:images], y[:images], x[images:], y[images:], 10, "synthetic")
    cfg = TrainConfig(dataset="digits", arch="resnet", depth=depth, width=16, batch_size=batch, lr=LR, seed=0)
    return _builtin(cfg, arrays)


def _builtin(cfg, arrays):
    """The built-in ClassifierModule (AdamW, constant LR) on device-resident batches."""
    import torch

    from objectives._data import make_device_data
    from objectives._models import build_network
    from objectives._module import ClassifierModule

    torch.manual_seed(0)
    model = build_network(arrays.input_shape, arrays.num_classes, cfg)
    module = ClassifierModule(model, cfg, arrays.num_classes)
    data = make_device_data(arrays, cfg.batch_size, cfg.effective_seed)
    return module, data, data.train, len(data.train) * cfg.batch_size, cfg


def _user():
    import torch

    sys.path.insert(0, str(ROOT / "examples"))
    from my_models import DigitsDataModule, SmallCNN

    from objectives._config import TrainConfig

    torch.manual_seed(0)
    module = SmallCNN(width=USER_WIDTH, dropout=0.0)
    data = DigitsDataModule(batch_size=USER_BATCH)
    data.setup("fit")
    loader = data.train_dataloader()
    cfg = TrainConfig(lr=LR, seed=0)
    return module, data, loader, len(loader) * USER_BATCH, cfg


def build(workload: str, args: argparse.Namespace):
    if workload.startswith("convnet-"):
        return _convnet(workload[len("convnet-"):])
    if workload == "resnet":
        return _resnet(args.resnet_depth, args.resnet_images, args.resnet_batch)
    if workload == "user":
        return _user()
    raise SystemExit(f"unknown workload {workload!r}: expected convnet-WxDxB, resnet or user")


# -- one side, in a child process ----------------------------------------------------------------------


def _sync() -> None:
    """Waits for the GPU's queued work, so that a clock read after it covers that work."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _timer(ns):
    """An epoch-hooks-only callback of the module's Lightning package: per-epoch wall and CPU time."""

    class EpochTimer(ns.Callback):
        def __init__(self) -> None:
            self.epochs: list[tuple[float, float]] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            _sync()
            self._t, self._c = time.perf_counter(), time.process_time()

        def on_validation_start(self, trainer, pl_module) -> None:
            if not trainer.sanity_checking:
                _sync()
                self.epochs.append((time.perf_counter() - self._t, time.process_time() - self._c))

    return EpochTimer()


def _namespace(module):
    import importlib

    for cls in type(module).__mro__:
        if cls.__name__ == "LightningModule":
            return importlib.import_module(cls.__module__.split(".core")[0])
    raise TypeError(f"{type(module).__name__} is not a LightningModule")


def _register_separately() -> None:
    """For ``hpo-separate``: hpo's callbacks given to the Trainer one by one instead of as one
    combined callback (``objectives._callbacks.combined``), to show what combining them earns."""
    import objectives._trainer as trainer_mod
    from objectives._callbacks import separated

    combined_callbacks = trainer_mod._callbacks

    def separate(namespace, request):
        callbacks, best = combined_callbacks(namespace, request)
        return separated(callbacks), best

    trainer_mod._callbacks = separate


def _fit_hpo(module, data, cfg, epochs: int, separate: bool):
    from objectives._fit import fit

    if separate:
        _register_separately()
    timer = _timer(_namespace(module))
    fit(module, data, cfg.replace(max_epochs=epochs, keep_checkpoints=0), None, callbacks=[timer])
    return timer.epochs


def _device(accelerator: str):
    import torch

    return torch.device("cuda", 0) if accelerator == "gpu" else torch.device("cpu")


def _fit_lightning(module, data, cfg, epochs: int, accelerator: str):
    import torch

    assert "objectives._fit" not in sys.modules, "plain Lightning must run without hpo imported"
    ns = _namespace(module)
    if type(module).configure_optimizers is ns.LightningModule.configure_optimizers:  # none of its own
        module.configure_optimizers = lambda: torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=0.0)
    timer = _timer(ns)
    for loader in (getattr(data, "train", None), getattr(data, "val", None)):
        if hasattr(loader, "place"):  # the built-ins' index-batched data: on the training device, as hpo does
            loader.place(_device(accelerator))
    trainer = ns.Trainer(accelerator=accelerator, devices=1, max_epochs=epochs, precision=cfg.precision,
                         logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[timer])
    if hasattr(data, "train") and hasattr(data, "val"):
        trainer.fit(module, data.train, data.val)
    else:
        trainer.fit(module, datamodule=data)
    return timer.epochs


def _fit_raw(module, batches, cfg, epochs: int, accelerator: str):
    import torch
    import torch.nn.functional as F

    device = _device(accelerator)
    model = getattr(module, "model", module).to(device)  # the built-ins' network, or the user module itself
    if hasattr(batches, "place"):
        batches.place(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    bf16 = cfg.precision == "bf16-mixed"
    out = []
    for _ in range(epochs):
        model.train()
        _sync()
        t, c = time.perf_counter(), time.process_time()
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # no-ops for device data
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            opt.step()
        _sync()
        out.append((time.perf_counter() - t, time.process_time() - c))
    return out


def child(args: argparse.Namespace) -> None:
    import torch

    if args.pin is not None:  # every side on the same core: a process's core and its clock move rates by 10 %+
        os.sched_setaffinity(0, {args.pin})
    torch.set_num_threads(args.threads)
    workload, side = args.child
    module, data, batches, samples, cfg = build(workload, args)
    cfg = cfg.replace(threads=args.threads, precision=args.precision)
    try:
        if side == "raw":
            epochs = _fit_raw(module, batches, cfg, args.epochs, args.accelerator)
        elif side == "lightning":
            epochs = _fit_lightning(module, data, cfg, args.epochs, args.accelerator)
        else:
            epochs = _fit_hpo(module, data, cfg, args.epochs, separate=side == "hpo-separate")
    except TypeError as exc:  # e.g. a lightning.pytorch module before hpo drives that package
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return
    kept = epochs[args.warmup:]
    wall, cpu = min(t for t, _ in kept), min(c for _, c in kept)
    step = wall if args.accelerator == "gpu" else cpu  # the GPU's time is wall time
    print(json.dumps({"rate": samples / wall, "cpu_rate": samples / cpu, "ms_step": 1000 * step / len(batches)}))


# -- the table ---------------------------------------------------------------------------------------------


def _run_child(argv: list[str], workload: str, side: str, accelerator: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, *argv, "--child", workload, side]
    env = dict(os.environ)
    if accelerator == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # CPU figures: fit() would take a visible GPU
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


def _cell(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):.0f} [{min(values):.0f}-{max(values):.0f}]"


def _ratio(a: list[float], b: list[float]) -> str:
    return f"{statistics.median(a) / statistics.median(b):.3f}" if a and b else "n/a"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="convnet-32x2x64,convnet-64x2x256,resnet,user")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads on every side")
    ap.add_argument("--resnet-depth", type=int, default=20)
    ap.add_argument("--resnet-images", type=int, default=384, help="training images of the resnet workload")
    ap.add_argument("--resnet-batch", type=int, default=32, help="batch size of the resnet workload")
    ap.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"))
    ap.add_argument("--precision", default="32-true", choices=("32-true", "bf16-mixed"))
    ap.add_argument("--separate", action="store_true", help="add the hpo-separate side")
    ap.add_argument("--pin", type=int, metavar="CORE", help="run every side on this CPU core (Linux)")
    ap.add_argument("--child", nargs=2, metavar=("WORKLOAD", "SIDE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return
    passed = ["--epochs", str(args.epochs), "--warmup", str(args.warmup), "--threads", str(args.threads),
              "--resnet-depth", str(args.resnet_depth), "--resnet-images", str(args.resnet_images),
              "--resnet-batch", str(args.resnet_batch), "--precision", args.precision, "--accelerator", args.accelerator]
    passed += ["--pin", str(args.pin)] if args.pin is not None else []
    sides = SIDES + (("hpo-separate",) if args.separate else ())
    workloads = args.workloads.split(",")
    results: dict[tuple[str, str], list[dict[str, Any]]] = {(w, s): [] for w in workloads for s in sides}
    for done in range(1, args.repeats + 1):  # interleaved: every side sees the same spread of machine load
        for workload in workloads:
            for side in sides:
                began = time.perf_counter()
                results[workload, side].append(_run_child(passed, workload, side, args.accelerator))
                print(f"# round {done}, {workload}/{side}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
        if done < args.repeats:  # what a run cut short still leaves
            print(f"## after round {done} of {args.repeats}", file=sys.stderr)
            _table(args, workloads, sides, results, done, sys.stderr)
    _table(args, workloads, sides, results, args.repeats, sys.stdout)


def _table(args, workloads, sides, results, rounds: int, out) -> None:
    print(f"{_device_name(args.accelerator)}, {args.precision}, {args.epochs} epochs ({args.warmup} warm-up), fastest epoch per run, median [min-max] of "
          f"{rounds} interleaved runs; torch threads {args.threads}; load average before/after: "
          f"{_LOAD_BEFORE} / {' '.join(f'{v:.2f}' for v in os.getloadavg())}", file=out)
    tables = (("rate", "samples/s (wall)"), ("cpu_rate", "samples per CPU-second"))
    for key, unit in tables[:1] if args.accelerator == "gpu" else tables:
        print(f"\n{unit}", file=out)
        head = f"{'workload':<18}{'raw ms/step':>12}" + "".join(f"{s:>22}" for s in sides)
        head += f"{'hpo/lightning':>15}{'hpo/raw':>9}" + (f"{'hpo/separate':>14}" if args.separate else "")
        print(head, file=out)
        for workload in workloads:
            vals = {s: [r[key] for r in results[workload, s] if key in r] for s in sides}
            steps = [r["ms_step"] for r in results[workload, "raw"] if "ms_step" in r]
            row = f"{workload:<18}{(f'{statistics.median(steps):.2f}' if steps else 'n/a'):>12}"
            row += "".join(f"{_cell(vals[s]):>22}" for s in sides)
            row += f"{_ratio(vals['hpo'], vals['lightning']):>15}{_ratio(vals['hpo'], vals['raw']):>9}"
            if args.separate:
                row += f"{_ratio(vals['hpo'], vals['hpo-separate']):>14}"
            print(row, file=out, flush=True)
    errors = {f"{w}/{s}": r["error"] for (w, s), rs in results.items() for r in rs if "error" in r}
    for where, error in sorted(errors.items()):
        print(f"{where}: {error}", file=out)


def _device_name(accelerator: str) -> str:
    if accelerator == "cpu":
        return "CPU"
    import torch

    return f"GPU {torch.cuda.get_device_name(0)} (torch {torch.__version__})"


_LOAD_BEFORE = " ".join(f"{v:.2f}" for v in os.getloadavg())

if __name__ == "__main__":
    main()
