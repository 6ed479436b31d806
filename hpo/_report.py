"""``hpo report``: the study's dashboard as one offline HTML file, also attached to its MLflow run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hpo._spec import StudySpec


def write_report(spec: StudySpec, study: Any, output_dir: Path | None = None) -> Path:
    """Writes ``report.html`` into ``output_dir`` (default: the study's run folder), or to
    ``output_dir`` itself when it names an ``.html`` file that is not a folder, and logs it to MLflow."""
    from dashboards import build_report

    from hpo import _keys as keys

    if output_dir is not None and output_dir.suffix.lower() in (".html", ".htm") and not output_dir.is_dir():
        path = output_dir  # `-o rep.html` made a folder rep.html/ holding report.html
    else:
        path = (output_dir or spec.study_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    # what the trials trained with (a run's --set included), not what the space file says now
    fixed = study.user_attrs.get(keys.STUDY_FIXED) or spec.objective.fixed
    max_epochs = fixed.get("max_epochs")
    info = {
        "study_name": spec.study.name,
        "sampler": spec.sampler.name,
        "pruner": spec.pruner.name,
        "objective": spec.objective.name,
        "metrics": list(spec.study.metrics),
        "max_epochs": max_epochs if isinstance(max_epochs, int) else None,
        "space_file": spec.source,
        "mlflow_run_ids": _run_ids(study),
    }
    build_report(study, path, info=info)
    log_study_artifact(spec, study, path)
    return path


def _run_ids(study: Any) -> dict[int, str]:
    """Each finished trial's MLflow run id, also of trials that ended before MLflow had started
    (their id is kept on the study: :func:`hpo._study.run_id_of`)."""
    from hpo._study import run_ids_of

    return run_ids_of(study, [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])


def log_study_artifact(spec: StudySpec, study: Any, path: Path) -> None:
    """Attaches a file to the study's MLflow parent run, when there is one."""
    from hpo import _keys as keys

    if not spec.mlflow.enabled or study.user_attrs.get(keys.MLFLOW_PARENT_RUN_ID) is None:
        return  # checked first: MLflow takes a second to import
    from hpo._study import study_info
    from hpo.tracking import make_tracker, open_parent_run

    # Best effort: the file is written; a store this user cannot write to (a read-only copy of the
    # run folder, another user's) must not turn a reader's success into an error.
    try:
        tracker = make_tracker(spec.mlflow.tracking_uri, spec.experiment, True)
        try:
            if open_parent_run(tracker, study_info(spec), study, create=False) is not None:
                tracker.log_artifact(str(path))
        finally:
            tracker.close()
    except Exception as exc:  # noqa: BLE001 - any failure of the store: warn, keep the written file
        print(f"warning: wrote {path} but could not attach it to the study's MLflow run: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
