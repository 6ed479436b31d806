"""Space file → validated, frozen spec objects. Everything downstream trusts these.

Example:
    >>> spec = load_spec("search_spaces/quickstart.yaml", sets=["study.n_trials=5"])
    >>> spec.study.n_trials
    5
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo._errors import SpecError
from hpo._registry import did_you_mean
from hpo._warm_start import WarmStart, parse_warm_start
from hpo._warm_start import check_values as check_warm_start_values
from hpo._yaml import apply_override, parse_set, read_yaml, remove_key

RUNS_DIR = Path("hpo-runs")
DIRECTIONS = ("minimize", "maximize")
PARAM_TYPES = ("float", "int", "categorical")
_MISSING = object()


@dataclass(frozen=True)
class ParamSpec:
    """One searchable hyperparameter.

    Attributes:
        name: the key the objective receives.
        type: ``float``, ``int`` or ``categorical``.
        low, high, log, step: the range of a float/int param.
        choices: the options of a categorical param.
        values: an explicit finite set for a float/int param (needed by grid search).
        when: ``((other_param, (allowed values...)), ...)``: the param exists only when all hold.
    """

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    values: tuple[Any, ...] | None = None
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def is_active(self, params: Mapping[str, Any]) -> bool:
        """Whether this param exists given the params sampled so far."""
        return all(name in params and params[name] in allowed for name, allowed in self.when)

    def finite_values(self) -> Sequence[Any] | None:
        """The param's values when the set is finite (choices, values, an int range, a stepped float range).

        An int range comes back as a ``range``: it may hold billions of values, of which a grid
        uses all (see :data:`MAX_GRID_POINTS`) and a ``when`` check only tests membership.
        """
        if self.choices is not None:
            return self.choices
        if self.values is not None:
            return self.values
        if self.type == "int" and not self.log:
            return range(int(self.low), int(self.high) + 1, int(self.step or 1))
        if self.type == "float" and self.step:
            return FloatSteps(self.low, self.high, self.step)
        return None

    def describe(self) -> str:
        if self.choices is not None:
            text = f"one of {list(self.choices)}"
        elif self.values is not None:
            text = f"{self.type} in {list(self.values)}"
        else:
            text = f"{self.type} in [{self.low}, {self.high}]"
            text += " log" if self.log else ""
            text += f" step {self.step}" if self.step else ""
        if self.when:
            text += " when " + ", ".join(f"{n} in {list(v)}" for n, v in self.when)
        return text


@dataclass(frozen=True)
class StudySettings:
    name: str
    directions: tuple[str, ...]
    metrics: tuple[str, ...]
    n_trials: int
    timeout: float | None
    seed: int | None
    storage: str | None
    max_consecutive_failures: int
    max_retries: int
    heartbeat_interval: int = 10
    heartbeat_grace: int = 30
    fsync: bool = False                 # embedded store: fsync every append (power-loss durability)
    trial_timeout: float | None = None  # seconds one trial may run before it is failed
    stop_when: StopRule | None = None   # stop the study early (no improvement, or a target reached)


@dataclass(frozen=True)
class StopRule:
    """``study.stop_when``: no new trial starts once ``target`` is reached, or once the best value has not
    improved by more than ``min_delta`` over the last ``patience`` finished trials."""

    target: float | None = None
    patience: int | None = None
    min_delta: float = 0.0


@dataclass(frozen=True)
class ComponentSpec:
    """A sampler or pruner: a registry name and the options for its constructor."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectiveSpec:
    """``name``: a built-in, ``file.py:function`` or ``package.module:function``; for a study of a
    user's LightningModule (``module``, optional ``data``) it is ``module=...;data=...``, the form
    exports record and :func:`hpo._objective.resolve_objective` loads."""

    name: str
    fixed: dict[str, Any] = field(default_factory=dict)
    module: str | None = None
    data: str | None = None


@dataclass(frozen=True)
class MlflowSpec:
    tracking_uri: str | None = None
    experiment: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class StudySpec:
    """A validated space file. ``raw`` is the resolved document (overrides applied, defaults filled).

    ``runs_dir`` is the ``hpo-runs`` folder that holds the study's folder: ``./hpo-runs`` for
    ``hpo run``; readers set it to where the study was found (:func:`hpo._locate.locate`).
    """

    source: str
    study: StudySettings
    sampler: ComponentSpec
    pruner: ComponentSpec
    objective: ObjectiveSpec
    space: tuple[ParamSpec, ...]
    mlflow: MlflowSpec
    raw: dict[str, Any]
    runs_dir: Path = RUNS_DIR
    warm_start: tuple[WarmStart, ...] = ()

    @property
    def study_dir(self) -> Path:
        return self.runs_dir / self.study.name

    @property
    def multi_objective(self) -> bool:
        return len(self.study.directions) > 1

    @property
    def experiment(self) -> str:
        return self.mlflow.experiment or self.study.name

    @property
    def space_file(self) -> Path | None:
        path = Path(self.source)
        return path if path.is_file() else None


_SCHEMA: dict[str, dict[str, Any]] = {
    "study": {
        "name": None, "direction": None, "directions": None, "metric": None, "metrics": None,
        "n_trials": 20, "timeout": None, "seed": None, "storage": None,
        "max_consecutive_failures": 5, "max_retries": 1, "heartbeat_interval": 10, "heartbeat_grace": 30,
        "fsync": False, "trial_timeout": None, "stop_when": None,
    },
    # None: hpo's default (hpo._components.DEFAULT_SAMPLER / DEFAULT_PRUNER), its options under the file's.
    "sampler": {"name": None, "options": {}},
    "pruner": {"name": None, "options": {}},
    "objective": {"name": None, "module": None, "data": None, "fixed": {}},
    "space": {},
    "mlflow": {"tracking_uri": None, "experiment": None, "enabled": True},
}
_PARAM_KEYS = {
    "float": ("type", "low", "high", "log", "step", "values", "when"),
    "int": ("type", "low", "high", "log", "step", "values", "when"),
    "categorical": ("type", "choices", "when"),
}


MAX_SPACE_ITEMS = 10_000    # params plus all their choices/values
# What a study.storage URL may name before "://" (and any "+driver"): SQLAlchemy's own dialects
# (mariadb is mysql's), and grpc, an `hpo proxy`.
_DATABASES = ("postgresql", "sqlite", "mysql", "mariadb", "oracle", "mssql", "grpc")
MAX_GRID_POINTS = 100_000   # every grid point becomes a queued trial in the study's storage


def load_spec(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    sets: Sequence[str] = (),
    *,
    import_objective: bool = True,
) -> StudySpec:
    """Reads, overrides and validates a space file.

    Args:
        path: the space file.
        overrides: ``{"study.n_trials": 10, ...}`` from CLI flags; ``None`` values are ignored.
        sets: ``key.path=value`` strings from ``--set``, applied after ``overrides``.
        import_objective: find and import the objective (and a module study's classes) to check
            them; readers of a finished study pass False (they run nothing, from any folder).

    Raises:
        SpecError: the file is missing, not YAML, or not a valid space; the message names
            the file and the key path.
    """
    doc = read_yaml(path)
    return spec_from_dict(doc, source=str(path), overrides=overrides, sets=sets, import_objective=import_objective)


def spec_from_dict(
    doc: Any,
    source: str = "<dict>",
    overrides: Mapping[str, Any] | None = None,
    sets: Sequence[str] = (),
    *,
    import_objective: bool = True,
) -> StudySpec:
    """Validates an already-loaded space document (see :func:`load_spec`)."""
    if doc is None:
        raise SpecError(source, "", "the file is empty; expected sections study, sampler, objective, space")
    if not isinstance(doc, dict):
        raise SpecError(source, "", f"expected a mapping of sections at the top, got {_kind(doc)}")
    doc = copy.deepcopy(doc)
    for key, value in (overrides or {}).items():
        if value is not None:
            apply_override(doc, key, value)
    set_keys = []
    for assignment in sets:
        key, value = parse_set(assignment)
        if value is None:
            remove_key(doc, key)
        else:
            apply_override(doc, key, value)
        set_keys.append(key)
    try:
        return _Validator(source, import_objective).spec(doc)
    except SpecError as exc:
        if any(_overlaps(exc.key_path, key) for key in set_keys):
            raise SpecError("--set", exc.key_path, exc.message) from None  # the bad value is the flag's, not the file's
        if changed := [a for key, a in zip(set_keys, sets) if _same_param(exc.key_path, key)]:  # space.x.type=int
            raise SpecError(source, exc.key_path, f"{exc.message} (after --set {changed[0]})") from None
        raise


def _same_param(key_path: str, set_key: str) -> bool:
    """Whether both name keys of one param (``space.x.low``, ``space.x.type``)."""
    a, b = key_path.split("."), set_key.split(".")
    return len(a) > 2 and len(b) > 2 and a[0] == b[0] == "space" and a[1] == b[1]


def _overlaps(key_path: str, set_key: str) -> bool:
    """Whether ``key_path`` is ``set_key``, inside it, or holds it."""
    return any(a == b or a.startswith(b + ".") for a, b in ((key_path, set_key), (set_key, key_path)) if b)


def default_sampler_section(section: dict[str, Any], n_objectives: int) -> dict[str, Any]:
    """``sampler:`` with hpo's default sampler filled in when the file names none."""
    from hpo._components import DEFAULT_MULTI_OBJECTIVE_SAMPLER_OPTIONS, DEFAULT_SAMPLER, DEFAULT_SAMPLER_OPTIONS

    if section["name"] is not None:
        return section
    defaults = DEFAULT_MULTI_OBJECTIVE_SAMPLER_OPTIONS if n_objectives > 1 else DEFAULT_SAMPLER_OPTIONS
    return {"name": DEFAULT_SAMPLER, "options": _over_defaults(defaults, section["options"])}


def _over_defaults(defaults: Mapping[str, Any], options: Any) -> Any:
    """The file's ``options`` over the default component's; anything but a mapping is left as
    written, for the section's check to refuse by its key."""
    if options is None:
        return dict(defaults)
    return {**defaults, **options} if isinstance(options, dict) else options


def default_pruner_section(section: dict[str, Any], n_objectives: int) -> dict[str, Any]:
    """``pruner:`` with hpo's default pruner filled in when the file names none."""
    from hpo._components import DEFAULT_MULTI_OBJECTIVE_PRUNER, DEFAULT_PRUNER

    if section["name"] is not None:
        return section
    name = DEFAULT_MULTI_OBJECTIVE_PRUNER if n_objectives > 1 else DEFAULT_PRUNER
    return {"name": name, "options": _over_defaults({}, section["options"])}


_MAX_INT = 2**63 - 1
MAX_NAME_BYTES = 255  # one path component on Linux and macOS file systems


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a folder name on every system hpo runs on, or None."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"must be at most {MAX_NAME_BYTES} bytes (it names a folder), has {size}"
    if any(ch in name for ch in "/\\"):
        return "must not contain path separators"
    if not name.isprintable():
        return "must not contain control characters (newlines, tabs, ...)"
    if name.startswith(("-", ".")):
        return "must not start with '-' or '.' (it would read as a command-line flag or a hidden folder)"
    if name != name.strip():
        return "must not start or end with spaces"
    return None


class FloatSteps(Sequence[float]):
    """``low, low + step, ..., high`` of a stepped float range, computed when asked (like ``range``:
    a grid takes them all, a ``when`` check only tests membership), each in decimal as the file
    wrote it (the third of ``0, 0.1, ...`` is 0.2, not 0.2000000000000000111)."""

    def __init__(self, low: float, high: float, step: float) -> None:
        from decimal import Decimal

        self.low, self.high, self.step = low, high, step
        self._first, self._size = Decimal(repr(low)), Decimal(repr(step))
        self._n = int((Decimal(repr(high)) - self._first) // self._size) + 1

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return float(self._first + (i % self._n) * self._size)

    def __contains__(self, value: object) -> bool:
        from decimal import Decimal

        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        k = (Decimal(repr(float(value))) - self._first) / self._size
        return k == k.to_integral_value() and 0 <= k < self._n


def _is_among(value: Any, values: Sequence[Any]) -> bool:
    """``value in values``, without the scan of every value that ``range`` makes for a non-int."""
    if isinstance(values, range):
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a sampled int 5 satisfies `when: {n: 5.0}`
        return isinstance(value, int) and value in values
    return value in values


def _describe_values(values: Sequence[Any]) -> str:
    if isinstance(values, range):
        return f"(integers {values.start} to {values.stop - 1}, step {values.step})"
    if isinstance(values, FloatSteps):
        return f"(numbers {values.low} to {values.high}, step {values.step})"
    return str(list(values))


def _kind(value: Any, limit: int = 80) -> str:
    """``'abc' (str)``, cut to ``limit`` characters: an error message stays one readable line."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 5] + " ...."
    return f"{text} ({type(value).__name__})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Validator:
    """Turns a document into a StudySpec, raising SpecError at the first problem."""

    def __init__(self, source: str, import_objective: bool = True) -> None:
        self.source, self.import_objective = source, import_objective

    def fail(self, key_path: str, message: str) -> None:
        raise SpecError(self.source, key_path, message)

    def mapping(self, value: Any, key_path: str, allowed: Sequence[str] | None = None) -> dict[str, Any]:
        """``value`` as a mapping with text keys, from ``allowed`` only (any name when None)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key_path, f"expected a mapping, got {_kind(value)}")
        for key in value:
            where = f"{key_path}.{key}" if key_path else str(key)
            if allowed is not None and key not in allowed:
                hint = did_you_mean(str(key), list(allowed))
                if key == "choices" and "values" in allowed:  # choices: is categorical's; numbers take values:
                    hint = " (a float or int param lists its values with values: [...], choices: is categorical's)"
                self.fail(where, f"unknown key{hint}; known keys: {', '.join(allowed)}")
            if not isinstance(key, str) or not key.strip():
                self.fail(where, f"expected a key name (text), got {_kind(key)}; quote it in the file")
        return value

    def section(self, doc: dict[str, Any], name: str) -> dict[str, Any]:
        schema = _SCHEMA[name]
        given = self.mapping(doc.get(name), name, list(schema)) if name != "space" else {}
        out = {}
        for key, default in schema.items():
            if key in given and given[key] is not None:
                out[key] = given[key]
            elif default is _MISSING:
                self.fail(f"{name}.{key}", "missing; this key is required")
            else:
                out[key] = copy.deepcopy(default)
        return out

    def number(self, value: Any, key_path: str, *, integer: bool = False, positive: bool = False) -> Any:
        ok = isinstance(value, int) if integer else _is_number(value)
        if isinstance(value, bool) or not ok:
            self.fail(key_path, f"expected {'an integer' if integer else 'a number'}, got {_kind(value)}")
        if isinstance(value, int) and abs(value) > _MAX_INT:  # beyond a float and the stores' 64-bit ints
            self.fail(key_path, f"expected a number between {-_MAX_INT} and {_MAX_INT}, got {_kind(value)}")
        if not math.isfinite(value):
            self.fail(key_path, f"expected a finite number, got {value}")
        if positive and value <= 0:
            self.fail(key_path, f"must be > 0, got {value}")
        return value

    def text(self, value: Any, key_path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key_path, f"expected a non-empty string, got {_kind(value)}")
        return value

    def boolean(self, value: Any, key_path: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key_path, f"expected true or false, got {_kind(value)}")
        return value

    def spec(self, doc: dict[str, Any]) -> StudySpec:
        self.mapping(doc, "", [*_SCHEMA, "warm_start"])
        if isinstance(doc.get("space"), dict):
            self.check_space_size(doc["space"])  # first: the checks after it take time per value
        sections = {name: self.section(doc, name) for name in _SCHEMA}
        space = self.space(doc.get("space"))
        study = self.study(sections["study"])
        objective = self.objective(sections["objective"], space, study.metrics)
        sections["sampler"] = default_sampler_section(sections["sampler"], len(study.directions))
        sections["pruner"] = default_pruner_section(sections["pruner"], len(study.directions))
        sampler = self.component(sections["sampler"], "sampler")
        pruner = self.component(sections["pruner"], "pruner")
        self.check_sampler_fits(sampler, study, space)
        mlflow = self.mlflow(sections["mlflow"])
        warm_start = parse_warm_start(doc.get("warm_start"), self.source)
        check_warm_start_values(warm_start, space, self.source)
        raw = {**sections, "space": doc.get("space") or {}}
        if doc.get("warm_start") is not None:
            raw["warm_start"] = doc["warm_start"]
        raw["study"]["name"] = study.name
        return StudySpec(self.source, study, sampler, pruner, objective, space, mlflow, raw, warm_start=warm_start)

    def study(self, s: dict[str, Any]) -> StudySettings:
        if s["name"] == "":  # "" would have quietly meant the file's name
            self.fail("study.name", "empty; leave the key out to name the study after the file")
        name = s["name"] or Path(self.source).stem
        self.study_name(name, from_file=not s["name"])
        directions, metrics = self.objectives_of(s)
        n_trials = self.number(s["n_trials"], "study.n_trials", integer=True, positive=True)
        timeout = s["timeout"]
        if timeout is not None:
            timeout = self.number(timeout, "study.timeout", positive=True)
        seed = s["seed"]
        if seed is not None:
            self.number(seed, "study.seed", integer=True)
        storage = s["storage"]
        if storage is not None:
            self.text(storage, "study.storage")
            if "://" not in storage:
                self.fail("study.storage", "expected a database URL such as postgresql://user@host/db "
                          f"or sqlite:///path.db (leave it out for the embedded store), got {storage!r}")
            dialect = storage.partition("://")[0].partition("+")[0].lower()
            if dialect not in _DATABASES:  # SQLAlchemy's message ("Can't load plugin") came at the run
                hint = did_you_mean(dialect, list(_DATABASES))
                self.fail("study.storage", f"unknown kind of storage {dialect!r}{hint}; known: {', '.join(_DATABASES)}")
        failures = self.number(s["max_consecutive_failures"], "study.max_consecutive_failures",
                               integer=True, positive=True)
        retries = self.number(s["max_retries"], "study.max_retries", integer=True)
        if retries < 0:
            self.fail("study.max_retries", f"must be >= 0, got {retries}")
        interval = self.number(s["heartbeat_interval"], "study.heartbeat_interval", integer=True, positive=True)
        grace = self.number(s["heartbeat_grace"], "study.heartbeat_grace", integer=True, positive=True)
        if grace <= interval:
            self.fail("study.heartbeat_grace", f"must be longer than heartbeat_interval ({interval} s), got {grace}")
        fsync = s["fsync"]
        if not isinstance(fsync, bool):
            self.fail("study.fsync", f"expected true or false, got {fsync!r}")
        trial_timeout = s["trial_timeout"]
        if trial_timeout is not None:
            trial_timeout = self.number(trial_timeout, "study.trial_timeout", positive=True)
        stop_when = self.stop_rule(s["stop_when"], len(directions))
        return StudySettings(name, directions, metrics, n_trials, timeout, seed, storage, failures, retries,
                             interval, grace, fsync, trial_timeout, stop_when)

    def stop_rule(self, value: Any, n_objectives: int) -> StopRule | None:
        if value is None:
            return None
        rule = self.mapping(value, "study.stop_when", ("target", "patience", "min_delta"))
        if not rule:
            self.fail("study.stop_when", "expected target and/or patience (with an optional min_delta)")
        if n_objectives > 1:
            self.fail("study.stop_when", "applies to single-objective studies only (a Pareto front has no best value)")
        target = rule.get("target")
        if target is not None:
            target = float(self.number(target, "study.stop_when.target"))
        patience = rule.get("patience")
        if patience is not None:
            patience = self.number(patience, "study.stop_when.patience", integer=True, positive=True)
        min_delta = float(self.number(rule.get("min_delta", 0.0), "study.stop_when.min_delta"))
        if min_delta < 0:
            self.fail("study.stop_when.min_delta", f"must be >= 0, got {min_delta}")
        if "min_delta" in rule and patience is None:
            self.fail("study.stop_when.min_delta", "needs study.stop_when.patience (improvement over how many trials)")
        return StopRule(target, patience, min_delta)

    def study_name(self, name: Any, from_file: bool) -> None:
        """The name becomes a folder under hpo-runs/ and the MLflow experiment: one safe path component."""
        self.text(name, "study.name")
        problem = _name_problem(name)
        if problem:
            origin = f" (taken from the file name {Path(self.source).name!r})" if from_file else ""
            self.fail("study.name", f"{problem}, got {_kind(name)}{origin}; set study.name to a plain name such as "
                      "'mnist-lr'")

    def objectives_of(self, s: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if s["directions"] is not None or s["metrics"] is not None:
            for single, multi in (("direction", "directions"), ("metric", "metrics")):
                if s[single] is not None:
                    self.fail(f"study.{single}", f"use either {single} or {multi}, not both")
            directions = self.str_list(s["directions"] or ["minimize"], "study.directions")
            metrics = self.str_list(s["metrics"] or [], "study.metrics")
            if len(metrics) != len(directions):
                self.fail("study.metrics", f"expected one metric per direction ({len(directions)}), "
                          f"got {len(metrics)}")
        else:
            directions = (s["direction"] or "minimize",)
            metrics = (self.text(s["metric"] or "value", "study.metric"),)
        for i, direction in enumerate(directions):
            if direction not in DIRECTIONS:
                key = "study.direction" if len(directions) == 1 and s["directions"] is None else f"study.directions[{i}]"
                self.fail(key, f"expected minimize or maximize, got {direction!r}{did_you_mean(str(direction), list(DIRECTIONS))}")
        if len(set(metrics)) != len(metrics):
            self.fail("study.metrics", f"metric names must be distinct, got {list(metrics)}")
        return tuple(directions), tuple(metrics)

    def str_list(self, value: Any, key_path: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.fail(key_path, f"expected a non-empty list, got {_kind(value)}")
        return tuple(self.text(v, f"{key_path}[{i}]") for i, v in enumerate(value))

    def component(self, s: dict[str, Any], kind: str) -> ComponentSpec:
        from hpo._components import PRUNERS, SAMPLERS, check_options

        registry = SAMPLERS if kind == "sampler" else PRUNERS
        name = self.text(s["name"], f"{kind}.name")
        if name not in registry:
            self.fail(f"{kind}.name", registry.unknown_message(name))
        options = self.mapping(s["options"], f"{kind}.options")
        problem = check_options(registry, name, options)
        if problem:
            self.fail(f"{kind}.options.{problem[0]}" if problem[0] else f"{kind}.options", problem[1])
        return ComponentSpec(name, dict(options))

    def check_sampler_fits(self, sampler: ComponentSpec, study: StudySettings, space: tuple[ParamSpec, ...]) -> None:
        if sampler.name == "grid":
            points = 1
            for p in space:
                finite = p.finite_values()
                if finite is None:
                    self.fail(f"space.{p.name}", "grid search needs a finite set: give `values: [...]` "
                              f"(or `choices:`), got a continuous {p.type} range")
                points *= len(finite)
                if points > MAX_GRID_POINTS:
                    self.fail(f"space.{p.name}", f"the grid reaches {points:,} points at this param; the "
                              f"limit is {MAX_GRID_POINTS:,} (use fewer values or another sampler)")
        if sampler.name in ("cmaes", "gp") and len(study.directions) > 1:
            self.fail("sampler.name", f"{sampler.name} supports a single objective; use nsga2 or tpe "
                      "with `directions:`")
        if sampler.name == "nsga2" and len(study.directions) == 1:
            pass  # NSGA-II also runs single-objective studies.

    def objective(self, s: dict[str, Any], space: tuple[ParamSpec, ...], metrics: tuple[str, ...]) -> ObjectiveSpec:
        from hpo._objective import check_builtin_values, check_reference, known_param_names, module_study_name

        name, module, data = self.objective_refs(s)
        if module is None and self.import_objective:
            problem = check_reference(name, base_dir=Path(self.source).parent)
            if problem:
                self.fail("objective.name", problem)
        fixed = self.mapping(s["fixed"], "objective.fixed")
        for p in space:
            if p.name in fixed:
                self.fail(f"space.{p.name}", "is also in objective.fixed; keep it in one place")
        if module is not None:
            name = module_study_name(module, data)
            if self.import_objective:
                self.check_module_study(module, data, fixed, space)
        known = known_param_names(name)
        if known is not None:
            for key in fixed:
                if key not in known:
                    self.fail(f"objective.fixed.{key}", f"not a parameter of {name}{did_you_mean(key, sorted(known))}")
            for p in space:
                if p.name not in known:
                    self.fail(f"space.{p.name}", f"not a parameter of {name}{did_you_mean(p.name, sorted(known))}")
        if known is not None or module is not None:
            self.check_stack_space(space)
        finite = {p.name: p.finite_values() for p in space if p.choices is not None or p.values is not None}
        ends = {p.name: (p.low, p.high) for p in space if p.choices is None and p.values is None}  # high: on the grid
        problem = check_builtin_values(name, fixed, finite, ends)
        if problem:
            self.fail(*problem)
        if known is not None:
            self.check_builtin_metrics(name, metrics)
        if (known is not None or module is not None) and fixed.get("init_from") is not None:
            fixed = {**fixed, "init_from": self.init_from(fixed["init_from"])}
        return ObjectiveSpec(name, dict(fixed), module, data)

    def init_from(self, value: str) -> str | None:
        """``init_from`` as the trials get it: relative to the space file; checked (the file, the
        study, its checkpoint) only when the objective is imported: readers must not fail on it."""
        from objectives._finetune import resolve_init_from

        try:
            return resolve_init_from(value, Path(self.source).parent, check=self.import_objective)
        except ValueError as exc:
            self.fail("objective.fixed.init_from", str(exc))

    def objective_refs(self, s: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
        """``(name, module, data)``: exactly one of ``name`` and ``module``; ``data`` only with ``module``."""
        name, module, data = s["name"], s["module"], s["data"]
        if name is not None and module is not None:
            self.fail("objective.module", "give either objective.name (an objective function) or objective.module "
                      "(a LightningModule class), not both")
        if name is None and module is None:
            self.fail("objective.name", "missing; this key is required: an objective function or a built-in, "
                      "unless objective.module names a LightningModule class (file.py:Class)")
        if data is not None and module is None:
            self.fail("objective.data", "needs objective.module: the data feeds your LightningModule class")
        if module is None:
            return self.text(name, "objective.name"), None, None
        return None, self.text(module, "objective.module"), data and self.text(data, "objective.data")

    def check_module_study(self, module: str, data: str | None, fixed: dict[str, Any],
                           space: tuple[ParamSpec, ...]) -> None:
        from hpo._objective import check_module_study, load_module_study

        module_cls, data_obj = load_module_study(module, data, Path(self.source).parent, self.source)
        problem = check_module_study(module_cls, data_obj, fixed, [p.name for p in space])
        if problem:
            self.fail(*problem)

    def check_builtin_metrics(self, name: str, metrics: tuple[str, ...]) -> None:
        from hpo._objective import BUILTIN_METRICS

        for i, metric in enumerate(metrics):
            if metric not in BUILTIN_METRICS:
                key = "study.metric" if len(metrics) == 1 else f"study.metrics[{i}]"
                self.fail(key, f"{name} reports {', '.join(BUILTIN_METRICS)}; got {metric!r}"
                          f"{did_you_mean(metric, list(BUILTIN_METRICS))}")

    def check_stack_space(self, space: tuple[ParamSpec, ...]) -> None:
        for p in space:
            if p.name == "devices":
                # The run's supervisor hands GPUs to each worker before any trial samples its params.
                self.fail("space.devices", "cannot be searched: GPUs are assigned to each worker before a trial "
                          "samples its parameters; set devices in objective.fixed")
            if p.name == "init_from":
                self.fail("space.init_from", "cannot be searched: the trials of a study fine-tune one starting "
                          "checkpoint; set init_from in objective.fixed")

    def mlflow(self, s: dict[str, Any]) -> MlflowSpec:
        uri = s["tracking_uri"]
        if uri is not None:
            self.text(uri, "mlflow.tracking_uri")
            from hpo.tracking import tracking_uri_problem

            if problem := tracking_uri_problem(uri):
                self.fail("mlflow.tracking_uri", problem)
        experiment = s["experiment"]
        if experiment is not None:
            self.text(experiment, "mlflow.experiment")
        return MlflowSpec(uri, experiment, self.boolean(s["enabled"], "mlflow.enabled"))

    def space(self, value: Any) -> tuple[ParamSpec, ...]:
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.fail("space", f"expected a mapping of parameter names to specs, got {_kind(value)}")
        for name in value:
            if not str(name).strip() or not str(name).isprintable():
                self.fail(f"space.{name}", f"a param name must be printable, non-empty text, got {name!r}")
        params = {str(name): self.param(str(name), spec) for name, spec in value.items()}
        self.check_conditions(params)
        return tuple(_dependency_order(params))

    def check_space_size(self, space: dict[Any, Any]) -> None:
        items = len(space) + sum(len(spec.get(key) or ()) for spec in space.values() if isinstance(spec, dict)
                                 for key in ("choices", "values") if isinstance(spec.get(key), list))
        if items > MAX_SPACE_ITEMS:
            self.fail("space", f"has {items:,} params and choices/values in total; the limit is "
                      f"{MAX_SPACE_ITEMS:,} (search a range with low/high instead of listing values)")

    def param(self, name: str, spec: Any) -> ParamSpec:
        key = f"space.{name}"
        if not isinstance(spec, dict):
            self.fail(key, f"expected a mapping like {{type: float, low: 0.001, high: 0.1}}, got {_kind(spec)}")
        ptype = spec.get("type", "categorical" if "choices" in spec else None)
        if ptype is None:
            self.fail(f"{key}.type", f"missing; expected one of {', '.join(PARAM_TYPES)}")
        if ptype not in PARAM_TYPES:
            self.fail(f"{key}.type", f"expected one of {', '.join(PARAM_TYPES)}, got {_kind(ptype)}"
                      f"{did_you_mean(str(ptype), list(PARAM_TYPES))}")
        self.mapping(spec, key, _PARAM_KEYS[ptype])
        when = self.when(spec.get("when"), f"{key}.when")
        if ptype == "categorical":
            return ParamSpec(name, ptype, choices=self.choices(spec.get("choices"), f"{key}.choices"), when=when)
        return self.numeric(name, ptype, spec, when)

    def choices(self, value: Any, key_path: str) -> tuple[Any, ...]:
        if not isinstance(value, list) or not value:
            self.fail(key_path, f"expected a non-empty list, got {_kind(value)}")
        for i, choice in enumerate(value):
            if not (choice is None or isinstance(choice, (bool, int, float, str))):
                self.fail(f"{key_path}[{i}]", f"choices must be strings, numbers, booleans or null, got {_kind(choice)}")
        if len({repr(c) for c in value}) != len(value):
            self.fail(key_path, f"choices must be distinct, got {_kind(value, 200)}")
        seen: dict[Any, Any] = {}
        for choice in value:  # 1, 1.0 and true are equal in Python: Optuna stores, and hpo exports, the first
            if choice in seen:
                self.fail(key_path, f"choices {seen[choice]!r} and {choice!r} are the same value to Optuna "
                                    "(1, 1.0 and true are equal); keep one")
            seen[choice] = choice
        return tuple(value)

    def numeric(self, name: str, ptype: str, spec: dict[str, Any], when: tuple) -> ParamSpec:
        key = f"space.{name}"
        integer = ptype == "int"
        if "values" in spec:
            for other in ("low", "high", "step", "log"):
                if other in spec:
                    self.fail(f"{key}.{other}", "give either values: [...] or a low/high range, not both")
            values = self.choices(spec["values"], f"{key}.values")
            for i, v in enumerate(values):
                self.number(v, f"{key}.values[{i}]", integer=integer)
            return ParamSpec(name, ptype, values=values, when=when)
        for bound in ("low", "high"):
            if bound not in spec:
                self.fail(f"{key}.{bound}", f"missing; a {ptype} param needs low and high (or values: [...])")
        low = self.number(spec["low"], f"{key}.low", integer=integer)
        high = self.number(spec["high"], f"{key}.high", integer=integer)
        if high < low:
            self.fail(f"{key}.high", f"must be >= low ({low}), got {high}")
        if not math.isfinite(float(high) - float(low)):
            self.fail(f"{key}.high", f"the range from {low} to {high} is too wide for a float")
        log = self.boolean(spec.get("log", False), f"{key}.log")
        step = spec.get("step")
        if log and low <= 0:
            self.fail(f"{key}.low", f"must be > 0 when log is true, got {low}")
        if step is not None:
            step = self.number(step, f"{key}.step", integer=integer, positive=True)
            if log:
                self.fail(f"{key}.step", "cannot be combined with log: true")
            off_grid = _off_grid(low, high, step)
            if off_grid:
                self.fail(f"{key}.high", off_grid)
        return ParamSpec(name, ptype, low=low, high=high, log=log, step=step, when=when)

    def when(self, value: Any, key_path: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        if value is None:
            return ()
        if not isinstance(value, dict) or not value:
            self.fail(key_path, f"expected a mapping like {{other_param: value}}, got {_kind(value)}")
        return tuple((str(k), tuple(v) if isinstance(v, list) else (v,)) for k, v in value.items())

    def check_conditions(self, params: dict[str, ParamSpec]) -> None:
        for p in params.values():
            for other, allowed in p.when:
                key = f"space.{p.name}.when.{other}"
                if other not in params:
                    self.fail(key, f"refers to no param of the space{did_you_mean(other, list(params))}; "
                              f"known: {', '.join(params)}")
                possible = params[other].finite_values()
                if not allowed:
                    self.fail(key, "an empty list: the param would never be sampled; list the values it needs")
                if params[other].type == "float" and params[other].values is None:  # sampled floats carry rounding
                    self.fail(key, f"{other} is a float range: a sampled float almost never equals a given "
                                   "value, so the param would never be sampled; make the condition a "
                                   "categorical, an int or a values: [...] param")
                for v in allowed:
                    if possible is not None and not _is_among(v, possible):
                        self.fail(key, f"{v!r} is not a possible value of {other} {_describe_values(possible)}")
        for p in params.values():
            if p.name in dict(p.when):
                self.fail(f"space.{p.name}.when.{p.name}", "refers to the param itself; name another param")
        try:
            _dependency_order(params)
        except ValueError as exc:
            self.fail(f"space.{exc.args[0]}.when", "conditions form a cycle")


def _off_grid(low: Any, high: Any, step: Any) -> str | None:
    """Why ``high`` is not ``low`` plus whole steps (Optuna would lower it, with a warning at every
    command), or None. In decimal, as written: 0.1 + 0.2 is 0.3 here."""
    from decimal import Decimal

    first, last, size = (Decimal(repr(v)) for v in (low, high, step))
    below = first + (last - first) // size * size
    if below == last:
        return None
    above = below + size
    return (f"{high} is not low ({low}) plus whole steps of {step}: the last value would be {_plain(below)}; "
            f"set high to {_plain(below)} or {_plain(above)}")


def _plain(value: Any) -> str:
    """A Decimal as the file would write it (4, 0.9; not 4.0 or 9E-1)."""
    return format(value.normalize(), "f")


def _dependency_order(params: dict[str, ParamSpec]) -> list[ParamSpec]:
    """Orders params so each comes after the params its ``when`` refers to (file order otherwise)."""
    ordered: list[ParamSpec] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def place(p: ParamSpec) -> None:
        if p.name in placed:
            return
        if p.name in visiting:
            raise ValueError(p.name)
        visiting.add(p.name)
        for other, _ in p.when:
            if other in params:
                place(params[other])
        visiting.discard(p.name)
        placed.add(p.name)
        ordered.append(p)

    for p in params.values():
        place(p)
    return ordered
