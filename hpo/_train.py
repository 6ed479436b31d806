"""``hpo train best.yaml``: retrain once from an exported config (reproduction, final model)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from hpo._context import TrialContext
from hpo._export import read_export
from hpo._objective import resolve_objective, run_objective
from hpo._spec import RUNS_DIR

CV_FOLDS_KNOB = "cv_folds"  # objectives._knobs; not imported: it is the objectives package's


def train_from_export(
    path: str | Path,
    output: str | Path | None = None,
    tracking_uri: str | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Runs the exported trial's objective once with its config and seed; saves the final model.

    Returns:
        ``{"values": [...], "exported": [...], "model": path or None, "mlflow_run_id": id or None}``.
    """
    console = console or Console()
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
    try:
        values = run_objective(objective, ctx)
    except BaseException as exc:
        tracker.end_trial("FAIL", None, reason=f"{type(exc).__name__}: {exc}")
        raise
    else:
        tracker.end_trial("COMPLETE", values)
    finally:
        tracker.close()
    model = _save_model(ctx.checkpoint, Path(output) if output else workdir / "model.pt")
    for metric, new, old in zip(cfg.metrics, values, cfg.values):
        console.print(f"{metric}: {new:.6g} (exported {old:.6g}, difference {new - old:+.3g})", markup=False)
    if model:
        console.print(f"final model: {model}", markup=False)
    return {"values": values, "exported": list(cfg.values), "model": model, "mlflow_run_id": run_id}


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
