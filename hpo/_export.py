"""The best config of a study, for other projects: ``load_best``, ``export_best``, ``hpo train``.

Both work from any folder, given a space file or a study folder (see :mod:`hpo._locate`).

Example:
    >>> from hpo import load_best, export_best
    >>> cfg = load_best("search_spaces/quickstart.yaml")
    >>> cfg.config["lr"], cfg.value
    (0.0123, 0.97)
    >>> export_best("search_spaces/quickstart.yaml", "best.yaml")
    PosixPath('best.yaml')
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hpo import _keys as keys
from hpo import _study
from hpo._errors import UsageError
from hpo._spec import StudySpec
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
        checkpoint: the absolute path of the trial's best weights, or None when it kept none, or when
            ``keep_checkpoints`` has deleted them (``checkpoint_note`` then says so).

    For a study of your own LightningModule (``objective: {module: ..., data: ...}``),
    ``to_lightning_kwargs()`` splits the config into constructor keyword arguments and
    ``instantiate()`` builds the module and the data with them.

    Example:
        >>> cfg = load_best("hpo-runs/digits")          # or the space file, from any folder
        >>> kwargs = cfg.to_lightning_kwargs()
        >>> kwargs["module"], kwargs["data"]
        ({'width': 12, 'dropout': 0.1}, {'batch_size': 64})
        >>> model, data = cfg.instantiate()            # my_models.SmallCNN(width=12, dropout=0.1), ...
        >>> lightning.Trainer(**kwargs["trainer"]).fit(model, data)
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
    checkpoint_note: str | None = None
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

    def to_lightning_kwargs(self) -> dict[str, dict[str, Any]]:
        """The config of a module study as keyword arguments, by the rules its trials were trained with.

        Returns:
            ``{"module": ..., "data": ..., "trainer": ..., "stack": ...}``: the module's and the data's
            constructor arguments; the knobs of hpo's stack that ``lightning.Trainer`` takes
            (``max_epochs``, ...); and the other knobs of hpo's stack, which hpo applies itself
            (``optimizer``, ``lr``, ``threads``, ...; ``hpo train`` applies them all).

        Raises:
            UsageError: the study's objective is not ``{module: ..., data: ...}``, or the classes
                cannot be imported.
        """
        from objectives._user import accepts_of, route

        module_cls, data = self._module_and_data()
        routing = route(self.config, *accepts_of(module_cls, data))
        trainer_args = _trainer_parameters()
        return {"module": routing.module, "data": routing.data,
                "trainer": {k: v for k, v in routing.stack.items() if k in trainer_args},
                "stack": {k: v for k, v in routing.stack.items() if k not in trainer_args}}

    def instantiate(self) -> tuple[Any, Any]:
        """``(module, data)``: the user's LightningModule and data built with the best config.

        The module's initial weights come from the trial's seed, as in the trial; ``data`` is None
        for a study without ``objective.data``. The weights are not loaded: ``checkpoint`` holds them.
        """
        from objectives._trainer import seed_everything
        from objectives._user import load_data

        module_cls, data = self._module_and_data()
        kwargs = self.to_lightning_kwargs()
        seed = {**kwargs["trainer"], **kwargs["stack"]}.get("seed", self.seed)
        seed_everything(int(seed or 0))
        return module_cls(**kwargs["module"]), load_data(data, kwargs["data"])

    def _module_and_data(self) -> tuple[type, Any]:
        from hpo._errors import SpecError
        from hpo._objective import load_module_study, parse_module_study

        refs = parse_module_study(self.objective)
        if refs is None:
            raise UsageError(f"study {self.study_name!r} trains the objective {self.objective!r}, not a "
                             "LightningModule of yours (objective: {module: ..., data: ...}): use .config")
        base = Path(self.space_file).parent if self.space_file else Path.cwd()
        try:
            return load_module_study(refs[0], refs[1], base, self.space_file or f"<{self.study_name}>")
        except SpecError as exc:
            raise UsageError(f"{exc}; is the package importable here (installed, or on PYTHONPATH)?") from None


def _trainer_parameters() -> frozenset[str]:
    """The keyword parameters of the Lightning ``Trainer`` (of whichever package is installed)."""
    import inspect

    try:
        from lightning.pytorch import Trainer
    except ImportError:  # pragma: no cover - pytorch_lightning alone
        from pytorch_lightning import Trainer
    return frozenset(inspect.signature(Trainer).parameters)


def versions() -> dict[str, str | None]:
    from hpo import DIST_NAME

    out = {}
    for name in ("hpo", "optuna", "torch", "pytorch-lightning", "mlflow"):
        try:  # hpo's distribution is named DIST_NAME ("hpo" found nothing on a fresh install)
            out[name] = metadata.version(DIST_NAME if name == "hpo" else name)
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
    from hpo.tracking import default_tracking_uri

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
        mlflow_run_id=_study.run_id_of(study, trial),
        mlflow_parent_run_id=study.user_attrs.get(keys.MLFLOW_PARENT_RUN_ID),
        **_checkpoint_of(trial.user_attrs.get(keys.CHECKPOINT), spec),
        space_file=str(Path(spec.source).resolve()) if spec.space_file else None,
        storage=spec.study.storage,
        # the store the study used (the default one is beside its folder): `hpo train` from any folder finds it
        tracking_uri=(spec.mlflow.tracking_uri or default_tracking_uri(spec.runs_dir)) if spec.mlflow.enabled else None,
        experiment=spec.experiment if spec.mlflow.enabled else None,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        git_sha=study.user_attrs.get(keys.STUDY_GIT_SHA),
        versions=versions(),
    )


def _checkpoint_of(recorded: str | None, spec: StudySpec) -> dict[str, str | None]:
    """``checkpoint`` (absolute) and ``checkpoint_note`` for a trial's recorded checkpoint path.

    Trials record it relative to the folder ``hpo run`` ran in (the parent of ``hpo-runs``); a
    file that ``keep_checkpoints`` deleted is not exported as if it were there.
    """
    if not recorded:
        return {"checkpoint": None}
    path = Path(recorded)
    if not path.is_absolute():
        path = spec.runs_dir.parent / path
    path = path.resolve()
    if not path.is_file():
        return {"checkpoint": None, "checkpoint_note": f"{path} no longer exists: keep_checkpoints keeps only "
                                                      "the best trials' weights; retrain with `hpo train`"}
    return {"checkpoint": str(path)}


def _study_of(space: str | Path | StudySpec | None, storage: str | None, study_name: str | None) -> tuple[Any, StudySpec]:
    """The study (opened read-only) and its located spec, from any of the forms :func:`load_best` takes."""
    from hpo._locate import locate, reader_spec
    from hpo._study import open_study

    if isinstance(space, StudySpec):
        spec = locate(space)
    elif space is not None:
        spec = reader_spec(space)
    else:
        if not (storage and study_name):
            raise UsageError("give a space file, a study folder (hpo-runs/<study>), or both storage= and study_name=")
        spec = _spec_from_storage(storage, study_name)
    return open_study(spec, create=False), spec


def _spec_from_storage(storage: str, study_name: str) -> StudySpec:
    import optuna

    from hpo._locate import locate, spec_from_study
    from hpo._storage import open_rdb_read_only

    try:
        study = optuna.load_study(study_name=study_name, storage=open_rdb_read_only(storage))
    except (FileNotFoundError, LookupError) as exc:
        raise UsageError(f"no study store at {exc.args[0]}; check the storage URL") from None
    except KeyError:
        raise UsageError(f"no study named {study_name!r} in {storage}") from None
    return locate(spec_from_study(study, storage, f"<{study_name}>"))


def _is_export(path: Path) -> bool:
    return path.suffix in (".json", ".yaml", ".yml") and path.is_file() and "hpo_export" in path.read_text()[:4096]


def read_export(path: str | Path) -> list[BestConfig]:
    """Reads a file written by :func:`export_best` (YAML or JSON)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: file not found")
    try:
        text = path.read_text()
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        problem = _parse_problem(exc)
        raise UsageError(f"{path}: not a readable export ({problem}); write one with `hpo export`") from None
    if not isinstance(doc, dict) or "hpo_export" not in doc:
        raise UsageError(f"{path}: not an hpo export (no hpo_export key); write one with `hpo export`")
    docs = doc.get("configs", [doc])
    return [_anchored(BestConfig.from_dict(d, str(path)), path.parent) for d in docs]


def _parse_problem(exc: Exception) -> str:
    """One line for why a file did not parse (PyYAML's message spans several, with a caret)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON at line {exc.lineno}: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    return f"not YAML{where}: {getattr(exc, 'problem', None) or str(exc).splitlines()[0]}"


def _anchored(cfg: BestConfig, folder: Path) -> BestConfig:
    """A relative ``checkpoint`` (an export edited or moved by hand) is relative to the export file."""
    if cfg.checkpoint and not Path(cfg.checkpoint).is_absolute():
        return replace(cfg, checkpoint=str((folder / cfg.checkpoint).resolve()))
    return cfg


def load_best(
    space_or_storage: str | Path | None = None,
    study_name: str | None = None,
    *,
    storage: str | None = None,
) -> BestConfig:
    """The best trial's config, from any folder; reads only (creates no file or folder).

    Args:
        space_or_storage: a space file (its study is found in ``./hpo-runs``, else in ``hpo-runs``
            beside the space file or in a folder above it), a study folder
            (``.../hpo-runs/<study>``), a file written by ``export_best``, or a storage URL.
        study_name: the study, when the first argument is a storage URL.

    Raises:
        UsageError: no such study (the message names every path looked at), or no complete trial.

    Example:
        A finished study ``demo`` (space file ``demo.yaml``, minimising ``loss = (x - 2)**2``):

        >>> from hpo import load_best
        >>> cfg = load_best("demo.yaml")               # the space file, from any folder
        >>> cfg.params, cfg.value
        ({'x': 2.0}, 0.0)
        >>> cfg.config                                 # fixed + params: what the objective got
        {'x': 2.0}
        >>> load_best("hpo-runs/demo").params          # the study folder
        {'x': 2.0}
        >>> cfg = load_best("postgresql://hpo@db/hpo", study_name="demo")  # doctest: +SKIP
        >>> model, data = cfg.instantiate()  # doctest: +SKIP

        The last two lines need a database server, and a study of your own LightningModule
        (``instantiate`` builds your classes with the best params).
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

    ``space`` takes what ``load_best`` takes (a space file or a study folder, from any
    folder). Each config's ``checkpoint`` is an absolute path to a file that exists at export
    time; one that ``keep_checkpoints`` deleted is exported as ``checkpoint: null`` with a
    ``checkpoint_note``. The file is valid input to ``hpo train`` and to ``load_best``.

    Example:
        >>> from hpo import export_best, load_best
        >>> export_best("demo.yaml", "best.yaml", top=2)   # the 2 best trials of the study demo
        PosixPath('best.yaml')
        >>> load_best("best.yaml").params                  # the first one is the best
        {'x': 2.0}
    """
    study, spec = _study_of(space, storage, study_name)
    configs = best_configs(study, spec, top)
    if not configs:
        raise UsageError(f"study {spec.study.name!r} has no complete trial yet; nothing to export")
    docs = [c.to_dict() for c in configs]
    doc = docs[0] if len(docs) == 1 else {"hpo_export": EXPORT_FORMAT, "configs": docs}
    output = Path(output)
    if output.is_dir():
        raise UsageError(f"{output} is a folder; give the export a file name, e.g. {output / 'best.yaml'}")
    text = json.dumps(doc, indent=2) if output.suffix == ".json" else yaml.safe_dump(doc, sort_keys=False)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None
    log_study_artifact(spec, study, output)
    return output
