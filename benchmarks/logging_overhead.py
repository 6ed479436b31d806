"""How much MLflow logging slows a trial: none vs hpo's MlflowTracker vs the naive way.

Each trial runs the same objective three ways, interleaved (trial i: none, hpo, naive, ...) so
that machine noise hits all modes alike:

* ``none``  — :class:`hpo.tracking.Tracker` (records nothing): the baseline.
* ``hpo``   — :class:`hpo.tracking.MlflowTracker` on a SQLite store: one child run per trial,
  one queued ``log_batch`` per epoch, written by a background thread.
* ``hpo-q`` — the same with ``wait_on_end=False``: ``end_trial`` queues the trial's last write
  instead of waiting for it (``close()`` and interpreter exit still flush).
* ``naive`` — the fluent API as commonly written: ``mlflow.start_run(nested=True)`` per trial and
  ``mlflow.log_metric(key, value, step=epoch)`` per metric per epoch, synchronous. (The brief's
  naive baseline is Lightning's ``MLFlowLogger`` + ``optuna_integration.MLflowCallback``;
  optuna-integration is not installed here, so plain ``mlflow.start_run``/``log_metric`` it is.)

The objective is the quick-start ``objectives.image_classifier`` (digits) when importable, else
(or with ``--objective simulated``) a loop of ``--epochs`` epochs that sleep ``--epoch-time``
seconds and report 5 metrics each. Trial wall time = from ``start_trial`` to the end of
``end_trial`` (everything the tracker does for the trial included).

Usage::

    python benchmarks/logging_overhead.py                    # image_classifier if importable
    python benchmarks/logging_overhead.py --objective simulated --trials 8 --epochs 10
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402

from hpo.tracking import Tracker  # noqa: E402
from hpo.tracking._mlflow import MlflowTracker  # noqa: E402

METRICS = ("val_acc",)


class Timed(Tracker):
    """Wraps a tracker and adds up the time spent inside its calls."""

    def __init__(self, inner: Tracker) -> None:
        self.inner = inner
        self.in_log = 0.0
        self.n_log = 0
        self.in_start_end = 0.0

    def start_study(self, study_info, parent_run_id=None):
        return self.inner.start_study(study_info, parent_run_id)

    def start_trial(self, number, params, fixed):
        t0 = time.perf_counter()
        try:
            return self.inner.start_trial(number, params, fixed)
        finally:
            self.in_start_end += time.perf_counter() - t0

    def log_metrics(self, metrics, step):
        t0 = time.perf_counter()
        self.inner.log_metrics(metrics, step)
        self.in_log += time.perf_counter() - t0
        self.n_log += 1

    def end_trial(self, state, values, reason=None, pruned_at_step=None):
        t0 = time.perf_counter()
        self.inner.end_trial(state, values, reason, pruned_at_step)
        self.in_start_end += time.perf_counter() - t0

    def close(self):
        self.inner.close()


class NaiveFluentTracker(Tracker):
    """The naive way: fluent API, a synchronous ``log_metric`` per metric per step."""

    def __init__(self, tracking_uri: str) -> None:
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri)

    def start_study(self, study_info, parent_run_id=None):
        self.mlflow.set_experiment(study_info["study_name"] + "-naive")
        run = self.mlflow.start_run(run_name=study_info["study_name"])
        return run.info.run_id

    def start_trial(self, number, params, fixed):
        run = self.mlflow.start_run(run_name=f"trial-{number}", nested=True)
        self.mlflow.log_params({**params, **{f"fixed.{k}": v for k, v in fixed.items()}})
        return run.info.run_id

    def log_metrics(self, metrics, step):
        for key, value in metrics.items():
            self.mlflow.log_metric(key, value, step=step)

    def end_trial(self, state, values, reason=None, pruned_at_step=None):
        self.mlflow.set_tag("state", state)
        if values:
            self.mlflow.log_metric("final.val_acc", values[0])
        self.mlflow.end_run("FINISHED" if state in ("COMPLETE", "PRUNED") else "FAILED")

    def close(self):
        while self.mlflow.active_run() is not None:
            self.mlflow.end_run()


def simulated_objective(epochs: int, epoch_time: float) -> Callable[[Mapping[str, Any], Any], dict[str, float]]:
    def objective(params: Mapping[str, Any], ctx: Any) -> dict[str, float]:
        acc = 0.0
        for epoch in range(epochs):
            time.sleep(epoch_time)  # "training"
            acc = 1 - 0.5 / (epoch + 1)
            ctx.report(
                {"val_acc": acc, "val_loss": 1 - acc, "train_loss": 1.1 - acc, "epoch_time": epoch_time,
                 "samples_per_sec": 1000.0},
                step=epoch,
            )
        return {"val_acc": acc}

    return objective


def pick_objective(name: str, epochs: int, epoch_time: float) -> tuple[str, Callable, dict[str, Any]]:
    if name in ("auto", "image_classifier"):
        try:
            from objectives import image_classifier

            fixed = {"dataset": "digits", "max_epochs": epochs, "width": 16, "depth": 2, "batch_size": 64}
            return f"objectives.image_classifier (digits, {epochs} epochs)", image_classifier, fixed
        except Exception as exc:  # noqa: BLE001
            if name == "image_classifier":
                raise
            print(f"objectives.image_classifier not importable ({exc}); using the simulated objective")
    fixed = {"max_epochs": epochs}
    return f"simulated ({epochs} epochs x {epoch_time * 1000:.0f} ms sleep)", simulated_objective(epochs, epoch_time), fixed


def run_trial(study: optuna.Study, tracker: Timed, objective: Callable, fixed: dict[str, Any], workdir: Path) -> float:
    from hpo._context import TrialContext

    trial = study.ask()
    params = {"lr": trial.suggest_float("lr", 1e-3, 3e-2, log=True)}
    config = {**fixed, **params}
    ctx = TrialContext(
        trial=trial, params=params, config=config, metrics=METRICS, seed=trial.number,
        workdir=workdir / f"trial-{trial.number}", study_dir=workdir, tracker=tracker,
    )
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tracker.start_trial(trial.number, params, fixed)
    result = objective(config, ctx)
    value = float(result["val_acc"] if isinstance(result, Mapping) else result)
    tracker.end_trial("COMPLETE", [value])
    wall = time.perf_counter() - t0
    study.tell(trial, value)
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objective", choices=["auto", "image_classifier", "simulated"], default="auto")
    ap.add_argument("--trials", type=int, default=5, help="trials per mode")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--epoch-time", type=float, default=0.2, help="seconds per simulated epoch")
    ap.add_argument("--warmup", type=int, default=1, help="untimed trials per mode first")
    args = ap.parse_args(argv)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    label, objective, fixed = pick_objective(args.objective, args.epochs, args.epoch_time)
    tmp = Path(tempfile.mkdtemp(prefix="hpo-bench-"))
    uri = "sqlite:///" + (tmp / "mlflow.db").as_posix()
    info = {"study_name": "bench", "metrics": list(METRICS), "directions": ["maximize"], "sampler": "RandomSampler"}

    modes: dict[str, Timed] = {
        "none": Timed(Tracker()),
        "hpo": Timed(MlflowTracker(uri, artifacts_dir=tmp / "mlflow-artifacts")),
        "hpo-q": Timed(MlflowTracker(uri, artifacts_dir=tmp / "mlflow-artifacts", wait_on_end=False)),
        "naive": Timed(NaiveFluentTracker(uri)),
    }
    studies = {
        m: optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                               pruner=optuna.pruners.NopPruner())
        for m in modes
    }
    for m, t in modes.items():
        t.start_study({**info, "study_name": f"bench-{m}"}, None)

    walls: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(args.warmup + args.trials):
        for m, t in modes.items():
            if i == args.warmup:
                t.in_log = t.in_start_end = 0.0
                t.n_log = 0
            wall = run_trial(studies[m], t, objective, fixed, tmp / m)
            if i >= args.warmup:
                walls[m].append(wall)
    for t in modes.values():
        t.close()

    base = statistics.median(walls["none"])
    print(f"\nobjective: {label}; {args.trials} timed trials per mode (+{args.warmup} warm-up), "
          f"interleaved; store: SQLite ({tmp})\n")
    header = f"| {'mode':<6} | {'trial wall (median s)':>21} | {'overhead':>9} | {'in log_metrics / epoch':>22} | {'start+end / trial':>17} |"
    print(header)
    print("|" + "|".join("-" * (len(c) ) for c in header.split("|")[1:-1]) + "|")
    for m, t in modes.items():
        med = statistics.median(walls[m])
        per_epoch = t.in_log / max(1, t.n_log) * 1000
        per_trial = t.in_start_end / max(1, args.trials) * 1000
        over = "-" if m == "none" else f"{(med - base) / base * 100:+.1f} %"
        print(f"| {m:<6} | {med:>21.3f} | {over:>9} | {per_epoch:>19.2f} ms | {per_trial:>14.1f} ms |")
    print("\nhpo = MlflowTracker (queued metrics, background writer, end_trial waits); hpo-q = same, end_trial "
          "queued; naive = fluent mlflow.start_run + synchronous log_metric per metric per epoch "
          "(optuna-integration is not installed, so not Lightning MLFlowLogger + MLflowCallback).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
