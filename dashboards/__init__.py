"""Plotly dashboards built from an Optuna study.

``build_report(study, path, info=...)`` writes one self-contained HTML file (plotly.js embedded
once, no CDN, works offline) with a header (study name, sampler, pruner, counts by state, best
value and config / Pareto set size) and one ``<section class="panel" id="panel-NAME">`` per
panel: ``history``, ``learning-curves``, ``savings``, ``epochs-to-reach`` (single-objective), ``importances``, ``parallel``, ``slice``,
``timeline`` and, for multi-objective studies, ``pareto``. A panel that cannot be drawn for a
study (too few trials, Optuna refusing the space, ...) says why instead of breaking the page.

The data behind the panels comes from plain functions returning DataFrames / dataclasses, so it
can be used and tested without a browser.
"""

from ._data import (
    STATE_ORDER,
    UNKNOWN_WORKER,
    ImportanceResult,
    PruningSavings,
    StudySummary,
    best_so_far,
    best_so_far_by_cost,
    epochs_to_reach,
    failures,
    learning_curves,
    objective_names,
    param_importances,
    pareto_front,
    pruning_savings,
    reach_targets,
    resolve_max_epochs,
    state_counts,
    study_summary,
    timeline,
    worker_summary,
)
from ._figures import PanelUnavailable
from ._html import Panel, build_html, build_panels, build_report

PANELS_SINGLE = ("history", "learning-curves", "savings", "epochs-to-reach", "importances", "parallel",
                 "slice", "timeline")
# Optuna's intermediate values, and so "epochs to reach a value", are single-objective.
PANELS_MULTI = ("pareto", *(p for p in PANELS_SINGLE if p != "epochs-to-reach"))

__all__ = [
    "PANELS_MULTI",
    "PANELS_SINGLE",
    "STATE_ORDER",
    "UNKNOWN_WORKER",
    "ImportanceResult",
    "Panel",
    "PanelUnavailable",
    "PruningSavings",
    "StudySummary",
    "best_so_far",
    "best_so_far_by_cost",
    "build_html",
    "build_panels",
    "build_report",
    "epochs_to_reach",
    "failures",
    "learning_curves",
    "objective_names",
    "param_importances",
    "pareto_front",
    "pruning_savings",
    "reach_targets",
    "resolve_max_epochs",
    "state_counts",
    "study_summary",
    "timeline",
    "worker_summary",
]
