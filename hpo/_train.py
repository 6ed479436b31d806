"""``hpo train best.yaml``: retrain once from an exported config (reproduction, final model)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from hpo._context import TrialContext
from hpo._errors import UsageError
from hpo._export import read_export
from hpo._objective import resolve_objective, run_objective
from hpo._spec import RUNS_DIR

# ``hpo train --quantize`` modes (``objectives._quantize.MODES`` implements them; named here so the
# CLI parser does not import torch).
QUANTIZE_MODES = ("dynamic", "static")
CV_FOLDS_KNOB = "cv_folds"  # objectives._knobs; not imported: it is the objectives package's


def train_from_export(
    path: str | Path,
    output: str | Path | None = None,
    tracking_uri: str | None = None,
    console: Console | None = None,
    quantize: str | None = None,
) -> dict[str, Any]:
    """Runs the exported trial's objective once with its config and seed; saves the final model.

    ``quantize`` (``dynamic``/``static``): also writes an int8 copy beside the model and prints and
    logs (metrics ``float_*``/``int8_*`` of the retrain's MLflow run) the accuracy on the validation
    split, the file size and the CPU latency per batch of both.

    Returns:
        ``{"values": [...], "exported": [...], "model": path or None, "mlflow_run_id": id or None,
        "quantized": int8 path or None, "quantize_metrics": {...}}``.
    """
    console = console or Console(soft_wrap=True)
    if quantize is not None:
        _check_quantize(quantize)
    cfg = read_export(path)[0]
    base_dir = Path(cfg.space_file).parent if cfg.space_file else Path.cwd()
    objective = resolve_objective(cfg.objective, base_dir, str(path))
    study = _memory_study(cfg.directions)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = RUNS_DIR / cfg.study_name / "retrain" / f"trial-{cfg.trial_number}-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    tracker = _tracker(cfg, tracking_uri)
    params, config = _one_model(cfg.params), _one_model(cfg.config)
    if cfg.config.get(CV_FOLDS_KNOB):
        console.print(f"the trial cross-validated {cfg.config[CV_FOLDS_KNOB]} folds: retraining one model on "
                      "all the training data", markup=False)
    ctx = TrialContext(study.ask(), params, config, tuple(cfg.metrics),
                       cfg.seed if cfg.seed is not None else 0, workdir, RUNS_DIR / cfg.study_name, tracker)
    run_id = tracker.start_trial(cfg.trial_number, cfg.params, _fixed(cfg), role="retrain")
    console.print(f"retraining trial {cfg.trial_number} of {cfg.study_name!r} with {cfg.objective}", markup=False)
    comparison = None
    try:
        values = run_objective(objective, ctx)
        model = _save_model(ctx.checkpoint, Path(output) if output else workdir / "model.pt")
        if quantize is not None:
            comparison = _quantize(ctx, quantize, model, cfg.objective)
            tracker.log_metrics(comparison.metrics(), step=ctx.last_step or 0)
    except BaseException as exc:
        tracker.end_trial("FAIL", None, reason=f"{type(exc).__name__}: {exc}")
        raise
    else:
        tracker.end_trial("COMPLETE", values)
    finally:
        tracker.close()
    for metric, new, old in zip(cfg.metrics, values, cfg.values):
        console.print(f"{metric}: {new:.6g} (exported {old:.6g}, difference {new - old:+.3g})", markup=False)
    if model:
        console.print(f"final model: {model}", markup=False)
    if comparison is not None:
        _print_comparison(console, comparison)
    return {"values": values, "exported": list(cfg.values), "model": model, "mlflow_run_id": run_id,
            "quantized": comparison.int8_file if comparison else None,
            "quantize_metrics": comparison.metrics() if comparison else {}}


def _check_quantize(mode: str) -> None:
    """Refuses an unknown mode or a missing torchao before anything trains."""
    if mode not in QUANTIZE_MODES:
        raise UsageError(f"--quantize: expected one of {', '.join(QUANTIZE_MODES)}, got {mode!r}")
    from objectives._quantize import torchao_quantization

    torchao_quantization()


def _quantize(ctx: TrialContext, mode: str, model: str | None, objective: str) -> Any:
    """Quantizes the retrained module (best epoch's weights) and measures both; see ``objectives._quantize``."""
    from objectives._quantize import quantize_trained

    if ctx.fitted is None or model is None:
        raise UsageError(f"--quantize needs the trained model, and {objective} left no checkpoint: quantization "
                         "works on objectives that train a LightningModule through hpo (the built-in objectives, "
                         "objective.module, or a function calling objectives.fit)")
    module, data = ctx.fitted
    int8_file = Path(model).with_name(f"{Path(model).stem}-int8{Path(model).suffix}")
    try:
        return quantize_trained(module, data, model, mode, model, int8_file)
    except ValueError as exc:
        raise UsageError(f"--quantize {mode}: {exc}") from None


def _print_comparison(console: Console, c: Any) -> None:
    calibrated = f", calibrated on {c.calibration_batches} training batches" if c.mode == "static" else ""
    console.print(f"int8 model: {c.int8_file}", markup=False)
    console.print(f"quantization: {c.mode}{calibrated}", markup=False)
    rows = (("val_acc", f"{c.float.accuracy:.4f}", f"{c.int8.accuracy:.4f}",
             f"{c.int8.accuracy - c.float.accuracy:+.4f}"),
            ("file size", _kib(c.float.size_bytes), _kib(c.int8.size_bytes), f"x{c.int8.size_bytes / c.float.size_bytes:.2f}"),
            ("CPU ms/batch", f"{c.float.latency_ms:.3f}", f"{c.int8.latency_ms:.3f}",
             f"x{c.int8.latency_ms / c.float.latency_ms:.2f}"),
            ("Conv/Linear weights", "", "", f"x{c.weight_ratio:.2f}"))
    console.print(f"{'':<20}{'float':>12}{'int8':>12}{'change':>10}", markup=False)
    for name, before, after, change in rows:
        console.print(f"{name:<20}{before:>12}{after:>12}{change:>10}", markup=False)


def _kib(size: int) -> str:
    return f"{size / 1024:.1f} KiB"


def _memory_study(directions: Any) -> Any:
    """An in-memory study (no pruning, no cap) to hand the objective a trial, created silently:
    Optuna's "A new study created in memory" is noise in the output of a retrain."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.create_study(directions=list(directions) or None)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _one_model(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with cross-validation off: a cross-validated trial trained a model per fold on part
    of the training data; its retrain trains one model on all of it (and validates on the dataset's
    own validation split)."""
    return {**values, CV_FOLDS_KNOB: 0} if values.get(CV_FOLDS_KNOB) else dict(values)


def _fixed(cfg: Any) -> dict[str, Any]:
    return {k: v for k, v in cfg.config.items() if k not in cfg.params}


def _tracker(cfg: Any, tracking_uri: str | None) -> Any:
    """Logs the retrain as a run under the study's MLflow parent (a new parent if that is gone)."""
    from hpo import __version__
    from hpo.tracking import make_tracker, open_parent_run

    enabled = cfg.experiment is not None or tracking_uri is not None
    tracker = make_tracker(tracking_uri or cfg.tracking_uri, cfg.experiment or cfg.study_name, enabled)
    info = {"study_name": cfg.study_name, "experiment": cfg.experiment or cfg.study_name,
            "objective": cfg.objective, "metrics": list(cfg.metrics), "directions": list(cfg.directions),
            "git_sha": cfg.git_sha, "hpo_version": __version__}
    open_parent_run(tracker, info, parent_run_id=cfg.mlflow_parent_run_id)
    return tracker


def _save_model(checkpoint: str | None, output: Path) -> str | None:
    if not checkpoint or not Path(checkpoint).is_file():
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, output)
    return str(output)
