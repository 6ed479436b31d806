"""hpo: hyperparameter search for PyTorch Lightning objectives, on Optuna and MLflow.

Example (a finished study ``demo`` of ``demo.yaml``, minimising ``loss = (x - 2)**2``):
    >>> from hpo import load_best
    >>> cfg = load_best("demo.yaml")            # the space file, or the study folder hpo-runs/demo
    >>> cfg.config["x"], cfg.value
    (2.0, 0.0)

From any folder, by space file or study folder; for a study of your own LightningModule
(``objective: {module: my_models:SmallCNN, data: my_models:DigitsDataModule}``), the last
lines build your classes with the best params:

    >>> cfg = load_best("/home/me/project/hpo-runs/digits")        # doctest: +SKIP
    >>> cfg.to_lightning_kwargs()["module"]                        # doctest: +SKIP
    {'width': 16, 'dropout': 0.1}
    >>> model, data = cfg.instantiate()  # SmallCNN(width=16, dropout=0.1), ...  # doctest: +SKIP

Public names are imported lazily so that ``import hpo`` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

# The name pip installs hpo under (pyproject.toml [project] name); "hpo" there is someone else's.
DIST_NAME = "hpo-lightning"

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


def _version() -> str:
    """The installed distribution's version, so ``hpo --version`` says what pip installed.

    A source tree put on ``sys.path`` without being installed has no metadata: "0+unknown".
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DIST_NAME)
    except PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":  # lazily: reading metadata costs a scan of sys.path
        return _version()
    if name == "TrialPruned":
        from optuna import TrialPruned

        return TrialPruned
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hpo' has no attribute {name!r}")
