"""The best config of a study, for other projects: ``load_best``, ``export_best``, ``hpo train``.

Example:
    >>> from hpo import load_best, export_best
    >>> cfg = load_best("search_spaces/quickstart.yaml")
    >>> cfg.config["lr"], cfg.value
    (0.0123, 0.97)
    >>> export_best("search_spaces/quickstart.yaml", "best.yaml")
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hpo import _keys as keys
from hpo._errors import UsageError
from hpo._spec import StudySpec, load_spec
from hpo._report import log_study_artifact
from hpo._summary import best_trials, ranked_trials

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

EXPORT_FORMAT = 1


@dataclass(frozen=True)
class BestConfig:
    """One exported trial: what was sampled, what the objective received, what it scored.

    Attributes:
        params: the sampled hyperparameters.
        config: ``fixed`` + ``params``: exactly what the objective was called with.
        values: the trial's values, one per metric (``value`` is the first).
        seed: the seed the trial ran with (``TrialContext.seed``).
    """

    study_name: str
    objective: str
    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    trial_number: int
    values: tuple[float, ...]
    params: dict[str, Any]
    config: dict[str, Any]
    seed: int | None = None
    mlflow_run_id: str | None = None
    mlflow_parent_run_id: str | None = None
    checkpoint: str | None = None
    space_file: str | None = None
    storage: str | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    created: str = ""
    git_sha: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return self.values[0]

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["metrics"], doc["directions"], doc["values"] = list(self.metrics), list(self.directions), list(self.values)
        return {"hpo_export": EXPORT_FORMAT, "value": self.value, **doc}

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "<export>") -> BestConfig:
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("study_name", "objective", "metrics", "values", "params", "config", "trial_number")
                   if k not in doc]
        if missing:
            raise UsageError(f"{source}: not an hpo export: missing {', '.join(missing)}; write one with `hpo export`")
        kwargs = {k: v for k, v in doc.items() if k in known}
        for key in ("metrics", "directions", "values"):
            kwargs[key] = tuple(kwargs.get(key) or ())
        return cls(**kwargs)


def versions() -> dict[str, str | None]:
    out = {}
    for name in ("hpo", "optuna", "torch", "pytorch-lightning", "mlflow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def best_configs(study: optuna.Study, spec: StudySpec, top: int = 1) -> list[BestConfig]:
    """The ``top`` best trials (or the whole Pareto set for multi-objective studies), best first."""
    trials = study.get_trials(deepcopy=False)
    if spec.multi_objective:
        chosen = best_trials(study)
    else:
        chosen = ranked_trials(trials, spec.study.directions)[:top]
    return [_config_of(t, study, spec) for t in chosen]


def _config_of(trial: FrozenTrial, study: optuna.Study, spec: StudySpec) -> BestConfig:
    fixed = study.user_attrs.get(keys.STUDY_FIXED, spec.objective.fixed)
    return BestConfig(
        study_name=spec.study.name,
        objective=spec.objective.name,
        metrics=spec.study.metrics,
        directions=spec.study.directions,
        trial_number=trial.number,
        values=tuple(trial.values),
        params=dict(trial.params),
        config={**fixed, **trial.params},
        seed=trial.user_attrs.get("seed"),
        mlflow_run_id=trial.user_attrs.get(keys.MLFLOW_RUN_ID),
        mlflow_parent_run_id=study.user_attrs.get(keys.MLFLOW_PARENT_RUN_ID),
        checkpoint=trial.user_attrs.get(keys.CHECKPOINT),
        space_file=str(Path(spec.source).resolve()) if spec.space_file else None,
        storage=spec.study.storage,
        tracking_uri=spec.mlflow.tracking_uri if spec.mlflow.enabled else None,
        experiment=spec.experiment if spec.mlflow.enabled else None,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        git_sha=study.user_attrs.get(keys.STUDY_GIT_SHA),
        versions=versions(),
    )


def _study_of(space: str | Path | StudySpec | None, storage: str | None, study_name: str | None) -> tuple[Any, StudySpec]:
    from hpo._spec import spec_from_dict
    from hpo._study import open_study

    if isinstance(space, StudySpec):
        spec = space
    elif space is not None:
        spec = load_spec(space)
    else:
        if not (storage and study_name):
            raise UsageError("give a space file, or both storage= and study_name=")
        spec = _spec_from_storage(storage, study_name, spec_from_dict)
    return open_study(spec, create=False), spec


def _spec_from_storage(storage: str, study_name: str, spec_from_dict: Any) -> StudySpec:
    import optuna

    from hpo._storage import open_rdb_read_only

    try:
        study = optuna.load_study(study_name=study_name, storage=open_rdb_read_only(storage))
    except (FileNotFoundError, LookupError) as exc:
        raise UsageError(f"no study store at {exc.args[0]}; check the storage URL") from None
    except KeyError:
        raise UsageError(f"no study named {study_name!r} in {storage}") from None
    raw = dict(study.user_attrs.get(keys.STUDY_SPEC) or {})
    raw.setdefault("study", {})["storage"] = storage
    return spec_from_dict(raw, source=study.user_attrs.get(keys.STUDY_SPACE_FILE) or f"<{study_name}>")


def _is_export(path: Path) -> bool:
    return path.suffix in (".json", ".yaml", ".yml") and path.is_file() and "hpo_export" in path.read_text()[:4096]


def read_export(path: str | Path) -> list[BestConfig]:
    """Reads a file written by :func:`export_best` (YAML or JSON)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: file not found")
    text = path.read_text()
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: not a readable export: {exc}") from None
    if not isinstance(doc, dict) or "hpo_export" not in doc:
        raise UsageError(f"{path}: not an hpo export (no hpo_export key); write one with `hpo export`")
    docs = doc.get("configs", [doc])
    return [BestConfig.from_dict(d, str(path)) for d in docs]


def load_best(
    space_or_storage: str | Path | None = None,
    study_name: str | None = None,
    *,
    storage: str | None = None,
) -> BestConfig:
    """The best trial's config, from a space file, an exported file, or a storage URL + study name.

    Args:
        space_or_storage: a space file, a file written by :func:`export_best`, or a storage URL.
        study_name: the study, when the first argument is a storage URL.

    Example:
        >>> cfg = load_best("postgresql://hpo@db/hpo", study_name="digits-cnn")
    """
    if space_or_storage is not None and "://" in str(space_or_storage):
        storage, space_or_storage = str(space_or_storage), None
    if space_or_storage is not None and _is_export(Path(space_or_storage)):
        return read_export(space_or_storage)[0]
    study, spec = _study_of(space_or_storage, storage, study_name)
    configs = best_configs(study, spec)
    if not configs:
        raise UsageError(f"study {spec.study.name!r} has no complete trial yet")
    return configs[0]


def export_best(
    space: str | Path | StudySpec,
    output: str | Path = "best.yaml",
    *,
    top: int = 1,
    study_name: str | None = None,
    storage: str | None = None,
) -> Path:
    """Writes the best config (``top`` best, or the Pareto set) as YAML, or JSON for a ``.json`` path.

    The file is valid input to ``hpo train`` and to :func:`load_best`.
    """
    study, spec = _study_of(space, storage, study_name)
    configs = best_configs(study, spec, top)
    if not configs:
        raise UsageError(f"study {spec.study.name!r} has no complete trial yet; nothing to export")
    docs = [c.to_dict() for c in configs]
    doc = docs[0] if len(docs) == 1 else {"hpo_export": EXPORT_FORMAT, "configs": docs}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2) if output.suffix == ".json" else yaml.safe_dump(doc, sort_keys=False)
    output.write_text(text)
    log_study_artifact(spec, study, output)
    return output
