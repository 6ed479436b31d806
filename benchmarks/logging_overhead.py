"""How much MLflow logging slows a trial: none vs hpo's MlflowTracker vs the naive way.

Each trial runs the same objective in every mode, interleaved (trial i: none, hpo, hpo-wait,
fluent, naive, ...) so that machine noise hits all modes alike:

* ``none``   — :class:`hpo.tracking.Tracker` (records nothing): the baseline.
* ``hpo``    — :class:`hpo.tracking.MlflowTracker` as ``hpo run`` uses it, on a SQLite store: one
  child run per trial, one queued ``log_batch`` per epoch written by a background thread, and
  ``end_trial`` queues the trial's last write (``close()``, exit and ``reconcile`` see it lands).
* ``hpo-wait`` — the same with ``wait_on_end=True``: ``end_trial`` waits for that last write.
* ``fluent`` — MLflow's fluent API as commonly written: one run per trial (a child of the
  study's run: ``mlflow.parentRunId`` tag) and ``mlflow.log_metric(key, value, step=epoch)`` per
  metric per epoch, synchronous.
* ``naive``  — the usual Lightning + Optuna recipe: a ``pytorch_lightning.loggers.MLFlowLogger``
  per trial, on the Lightning ``Trainer`` that trains the objective (Lightning logs the epoch
  metrics itself, one synchronous ``log_batch`` per epoch, and terminates the run at the end of
  ``fit``), and ``optuna_integration.MLflowCallback`` on ``study.optimize`` (after each trial it
  opens another run and logs the trial's params, value and tags). ``objectives.fit`` builds its
  ``Trainer`` with ``logger=False`` and takes no logger, so the logger is put on the Trainer by
  a callback's ``setup`` hook (Lightning's ``Trainer.loggers`` setter), which leaves everything
  else about the Trainer as in the other modes. The hpo tracker of this mode records nothing
  (as in ``none``). With the simulated objective (no Trainer) the per-epoch metrics go to
  ``MLFlowLogger.log_metrics`` directly, as Lightning would send them.

The objective is the quick-start ``objectives.image_classifier`` (digits) when importable, else
(or with ``--objective simulated``) a loop of ``--epochs`` epochs that sleep ``--epoch-time``
seconds and report 5 metrics each. Trial wall time = from ``start_trial`` to the end of
``end_trial`` (everything the tracker does for the trial included); for ``naive``, from just
after the trial's params are sampled to the end of ``MLflowCallback`` (Optuna's ``tell``, which
runs before the callbacks, is included: well under a millisecond on the in-memory storage).

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
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402
import yaml  # noqa: E402

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


class FluentTracker(Tracker):
    """MLflow's fluent API: a run per trial, a synchronous ``log_metric`` per metric per step.

    The trial runs are children of the study's run through the ``mlflow.parentRunId`` tag (what
    ``start_run(nested=True)`` writes) rather than by keeping the study's run active: an active
    fluent run would make ``MLflowCallback``'s ``start_run`` of the interleaved ``naive`` mode
    fail."""

    def __init__(self, tracking_uri: str, experiment_id: str) -> None:
        import mlflow

        self.mlflow = mlflow
        self.experiment_id = experiment_id
        self.parent_id: str | None = None
        mlflow.set_tracking_uri(tracking_uri)

    def start_study(self, study_info, parent_run_id=None):
        with self.mlflow.start_run(run_name=study_info["study_name"], experiment_id=self.experiment_id) as run:
            self.parent_id = run.info.run_id
        return self.parent_id

    def start_trial(self, number, params, fixed):
        run = self.mlflow.start_run(run_name=f"trial-{number}", experiment_id=self.experiment_id,
                                    tags={"mlflow.parentRunId": self.parent_id})
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


def timed_mlflow_logger_class(stats: Timed) -> type:
    """``MLFlowLogger`` that adds the time of its calls to ``stats`` (metrics: ``in_log``/``n_log``;
    run creation, hyper-parameters and ``finalize``: ``in_start_end``)."""
    from pytorch_lightning.loggers import MLFlowLogger

    class TimedMLFlowLogger(MLFlowLogger):
        @property
        def experiment(self):
            if self._initialized:
                return super().experiment
            t0 = time.perf_counter()  # first use: get/create the experiment, create the run
            try:
                return super().experiment
            finally:
                stats.in_start_end += time.perf_counter() - t0

        def log_metrics(self, metrics, step=None):
            t0 = time.perf_counter()
            super().log_metrics(metrics, step)
            stats.in_log += time.perf_counter() - t0
            stats.n_log += 1

        def log_hyperparams(self, params):
            t0 = time.perf_counter()
            super().log_hyperparams(params)
            stats.in_start_end += time.perf_counter() - t0

        def finalize(self, status="success"):
            t0 = time.perf_counter()
            super().finalize(status)
            stats.in_start_end += time.perf_counter() - t0

    return TimedMLFlowLogger


def use_logger(logger: Any) -> Any:
    """A Lightning callback that puts ``logger`` on the Trainer (``objectives.fit`` makes its
    Trainer with ``logger=False``). ``setup`` runs before Lightning first logs (hyper-parameters,
    then the epoch metrics) and before it finalizes the loggers at the end of ``fit``."""
    import pytorch_lightning as pl

    class UseLogger(pl.Callback):
        def setup(self, trainer, pl_module, stage):
            trainer.loggers = [logger]
            _ = logger.experiment  # as the Trainer does for its loggers before the setup hooks

    return UseLogger()


class LoggerAsTracker(Tracker):
    """For the simulated objective (no Trainer): its per-epoch reports go to the Lightning
    logger as Lightning would send them, and the trial's end finalizes the logger."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        _ = logger.experiment

    def log_metrics(self, metrics, step):
        self.logger.log_metrics(dict(metrics), step)

    def end_trial(self, state, values, reason=None, pruned_at_step=None):
        self.logger.finalize("success" if state in ("COMPLETE", "PRUNED") else "failed")


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

            # The quick-start space's fixed settings (threads: 1 among them), a mid-range width/batch.
            quickstart = Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart.yaml"
            fixed = {**yaml.safe_load(quickstart.read_text())["objective"]["fixed"],
                     "max_epochs": epochs, "width": 16, "batch_size": 64}
            return f"objectives.image_classifier (quickstart.yaml's fixed, {epochs} epochs)", image_classifier, fixed
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


def run_naive_trial(
    study: optuna.Study, stats: Timed, objective: Callable, fixed: dict[str, Any], workdir: Path,
    uri: str, artifacts: Path, simulated: bool, mlflc: Callable,
) -> float:
    """One trial of the ``naive`` mode: ``study.optimize`` with ``MLflowCallback``, the objective
    trained with a per-trial ``MLFlowLogger`` on its Trainer."""
    from hpo._context import TrialContext

    logger_cls = timed_mlflow_logger_class(stats)
    stamps: dict[str, float] = {}

    def naive_objective(trial: optuna.Trial) -> float:
        params = {"lr": trial.suggest_float("lr", 1e-3, 3e-2, log=True)}
        config = {**fixed, **params}
        stamps["t0"] = time.perf_counter()
        logger = logger_cls(experiment_name=study.study_name, run_name=f"trial-{trial.number}",
                            tracking_uri=uri, artifact_location=artifacts.as_uri())
        ctx = TrialContext(
            trial=trial, params=params, config=config, metrics=METRICS, seed=trial.number,
            workdir=workdir / f"trial-{trial.number}", study_dir=workdir,
            tracker=LoggerAsTracker(logger) if simulated else Tracker(),
        )
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        if simulated:
            result = objective(config, ctx)
            ctx.tracker.end_trial("COMPLETE", None)
        else:
            from objectives._fit import run_classifier

            result, _ = run_classifier("image", config, ctx, callbacks=[use_logger(logger)])
        return float(result["val_acc"] if isinstance(result, Mapping) else result)

    def timed_mlflc(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        t0 = time.perf_counter()
        mlflc(study, trial)
        stamps["t1"] = time.perf_counter()
        stats.in_start_end += stamps["t1"] - t0

    study.optimize(naive_objective, n_trials=1, callbacks=[timed_mlflc], catch=())
    return stamps["t1"] - stamps["t0"]


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

    # Experiments made here so that the fluent and Lightning runs' artifact roots are under tmp too
    # (not ./mlruns in the working directory); MLFlowLogger and MLflowCallback find them by name.
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    fluent_exp = client.create_experiment("bench-fluent", artifact_location=(tmp / "mlflow-artifacts").as_uri())
    client.create_experiment("bench-naive", artifact_location=(tmp / "mlflow-artifacts").as_uri())

    modes: dict[str, Timed] = {
        "none": Timed(Tracker()),
        "hpo": Timed(MlflowTracker(uri, artifacts_dir=tmp / "mlflow-artifacts", wait_on_end=False)),
        "hpo-wait": Timed(MlflowTracker(uri, artifacts_dir=tmp / "mlflow-artifacts", wait_on_end=True)),
        "fluent": Timed(FluentTracker(uri, fluent_exp)),
        "naive": Timed(Tracker()),  # only adds up the time in MLFlowLogger and MLflowCallback
    }
    studies = {
        m: optuna.create_study(study_name=f"bench-{m}", direction="maximize",
                               sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.NopPruner())
        for m in modes
    }
    for m, t in modes.items():
        if m != "naive":
            t.start_study({**info, "study_name": f"bench-{m}"}, None)

    from optuna_integration import MLflowCallback

    with warnings.catch_warnings():  # "MLflowCallback has been deprecated in v4.9.0" (still the recipe)
        warnings.simplefilter("ignore", FutureWarning)
        mlflc = MLflowCallback(tracking_uri=uri, metric_name="val_acc")

    walls: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(args.warmup + args.trials):
        for m, t in modes.items():
            if i == args.warmup:
                t.in_log = t.in_start_end = 0.0
                t.n_log = 0
            if m == "naive":
                wall = run_naive_trial(studies[m], t, objective, fixed, tmp / m, uri, tmp / "mlflow-artifacts",
                                       simulated=label.startswith("simulated"), mlflc=mlflc)
            else:
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
    print("\nhpo = MlflowTracker as `hpo run` uses it (queued metrics, background writer, end_trial queued); "
          "hpo-wait = same, end_trial waits for its write; fluent = mlflow.start_run + synchronous mlflow.log_metric per metric per epoch; naive = "
          "Lightning MLFlowLogger on the Trainer (synchronous log_batch per epoch) + optuna_integration."
          "MLflowCallback on study.optimize (a second run per trial with params and value).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
