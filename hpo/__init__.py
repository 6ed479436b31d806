"""hpo: hyperparameter search for PyTorch Lightning objectives, on Optuna and MLflow.

Example:
    >>> from hpo import load_best
    >>> cfg = load_best("search_spaces/quickstart.yaml")
    >>> cfg.config["lr"]
    0.0123

From any folder, by space file or study folder; for a study of your own LightningModule
(``objective: {module: my_models:SmallCNN, data: my_models:DigitsDataModule}``):

    >>> cfg = load_best("/home/me/project/hpo-runs/digits")
    >>> cfg.to_lightning_kwargs()["module"]
    {'width': 16, 'dropout': 0.1}
    >>> model, data = cfg.instantiate()        # SmallCNN(width=16, dropout=0.1), DigitsDataModule(...)

Public names are imported lazily so that ``import hpo`` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_spec": "hpo._spec",
    "spec_from_dict": "hpo._spec",
    "StudySpec": "hpo._spec",
    "ParamSpec": "hpo._spec",
    "TrialContext": "hpo._context",
    "SpecError": "hpo._errors",
    "HpoError": "hpo._errors",
    "UsageError": "hpo._errors",
    "run_study": "hpo._run",
    "load_best": "hpo._export",
    "export_best": "hpo._export",
    "BestConfig": "hpo._export",
}

__all__ = [*_EXPORTS, "TrialPruned", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "TrialPruned":
        from optuna import TrialPruned

        return TrialPruned
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hpo' has no attribute {name!r}")
