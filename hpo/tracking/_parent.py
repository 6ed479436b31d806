"""The study's parent record (MLflow parent run): found by the id the study stores, or created.

One function for every command that writes under a study's parent run: ``hpo run`` workers
(which create it), ``hpo report`` (attaches the dashboard) and ``hpo train`` (logs the retrain
under it). Importing this module does not import MLflow.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from hpo import _keys as keys
from hpo.tracking._base import Tracker


def study_uuid(study: Any, create: bool = False) -> str | None:
    """The Optuna study's own identity (study user attr ``study_uuid``), made on first need.

    A study name is not unique over time: a deleted study's name can be used again in the same
    MLflow experiment. Runs are tagged with this id, so reconciliation never touches another
    study's runs. ``create`` writes it when missing (call under the study lock).
    """
    value = study.user_attrs.get(keys.STUDY_UUID)
    if value is None and create:
        value = uuid.uuid4().hex
        study.set_user_attr(keys.STUDY_UUID, value)
    return value


def open_parent_run(
    tracker: Tracker,
    info: Mapping[str, Any],
    study: Any = None,
    parent_run_id: str | None = None,
    create: bool = True,
) -> str | None:
    """Connects ``tracker`` to the study's parent record; returns its id (None: nothing recorded).

    Args:
        tracker: the tracker to connect (its ``start_study``).
        info: the study description (``hpo._study.study_info``).
        study: the Optuna study, whose user attrs hold the parent's id and the study's identity;
            a parent created here is stored there (hold the study lock when ``create``).
        parent_run_id: the parent's id when there is no study at hand (``hpo train``).
        create: False leaves a study that has no parent yet without one (readers: ``hpo report``)
            and writes nothing to the study. A parent that was deleted is created again either way.
    """
    if study is not None:
        parent_run_id = study.user_attrs.get(keys.MLFLOW_PARENT_RUN_ID)
        info = {**info, "study_uuid": study_uuid(study, create=create)}
    if parent_run_id is None and not create:
        return None
    opened = tracker.start_study(info, parent_run_id)
    if create and study is not None and opened is not None and opened != parent_run_id:
        study.set_user_attr(keys.MLFLOW_PARENT_RUN_ID, opened)  # new, or the old parent was deleted
    return opened


def study_description(study_name: str, dashboard: str, best: str | None) -> str:
    """The parent run's description: what it holds, where the study's dashboard is, the best trial.

    Args:
        study_name: the study's name.
        dashboard: the dashboard's path (``hpo run`` writes it at the end, ``hpo report`` on demand).
        best: the best trial in words (``trial 12: loss=0.0031``), None before any trial completed.
    """
    best_text = f"Best {best}." if best else "No trial has completed yet."
    return (f"hpo study `{study_name}`; one nested run per trial. {best_text} "
            f"Dashboard: `{dashboard}` (written at the end of `hpo run`, or by `hpo report`).")
