"""Search efficiency: cumulative epochs (and wall time) each strategy needs to reach a good model.

For each task (a built-in objective, a dataset and a wide space: ``mnist1d``, ``digits``,
``mnist1d-warmup``, ``resnet``) and each strategy (sampler + pruner, built from a space document by
hpo's own ``spec_from_dict``/``make_sampler``/``make_pruner``, so "default" is exactly what a space
file without ``sampler``/``pruner`` gets), a study runs in-process until its trials have trained
``budget`` epochs in all. Per seed it records, for every trial in order, the epochs it trained, its
state and value; the report prints, as the median and [min-max] over seeds:

* epochs (and seconds) until the study's best value first reaches each target;
* the best value at fixed epoch budgets;

and writes anytime curves (best value against cumulative epochs, one line per seed) into an HTML
page drawn with the dashboard's figure code.

Learning curves are cached: a trial's curve is keyed by (task, config, training seed), and the
training seed is the benchmark seed's, so a config that two strategies of one seed both sample
(e.g. the random start-up trials TPE and GP share with random search under the same seed) is
trained once. A curve is trained lazily with the trial's own pruner: a replay reports the cached
epochs to the trial; only when a trial needs more epochs than are cached is the config trained again
from scratch (training is deterministic per seed, and schedules depend on ``max_epochs``, not on
when a trial stops, so the prefix is the same). Wall time is accounted, not measured: the cached
``epoch_time`` of each epoch a trial used plus the trial's set-up time (from the run that trained
it) plus the sampler's and pruner's real time in this run.

Modes (all reuse the cache):

    nice -n 10 python benchmarks/search_efficiency.py --quick             # 2 seeds, small budgets
    nice -n 10 python benchmarks/search_efficiency.py --tasks mnist1d --seeds 0-4
    python benchmarks/search_efficiency.py --report-only                  # table + HTML from results
    python benchmarks/search_efficiency.py --seeds 10-17 --processes 16   # many studies at once
    nice -n 10 python benchmarks/search_efficiency.py --strategies random --budget-scale 3   # longer studies
    nice -n 10 python benchmarks/search_efficiency.py --schedules 12      # rank correlation at rungs
    nice -n 10 python benchmarks/search_efficiency.py --jobs-compare 40   # --jobs 1 vs 4

Results go to ``--out`` (default ``hpo-runs/search-efficiency``): one JSON per (task, seed) and
``search_efficiency.html``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# -- tasks and strategies ------------------------------------------------------------------------

MNIST1D_SPACE = {
    "lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-2, "log": True},
    "width": {"type": "int", "low": 16, "high": 48, "step": 16},
    "depth": {"type": "int", "low": 2, "high": 4},
    "batch_size": {"type": "categorical", "choices": [64, 128, 256]},
    "weight_decay": {"type": "float", "low": 1.0e-5, "high": 1.0e-1, "log": True},
    "lr_schedule": {"type": "categorical", "choices": ["constant", "cosine", "onecycle"]},
    "crop_pad": {"type": "int", "low": 0, "high": 3},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "noise_std": {"type": "float", "low": 0.0, "high": 0.2},
}
DIGITS_SPACE = {
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
    "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},
    "width": {"type": "int", "low": 8, "high": 64, "step": 8},
    "depth": {"type": "int", "low": 1, "high": 3},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
    "lr_schedule": {"type": "categorical", "choices": ["constant", "step", "cosine"]},
    "gamma": {"type": "float", "low": 0.1, "high": 0.9, "when": {"lr_schedule": "step"}},
    "step_size": {"type": "int", "low": 1, "high": 3, "when": {"lr_schedule": "step"}},
}

RESNET_SPACE = {
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
    "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},
    "weight_decay": {"type": "float", "low": 1.0e-5, "high": 1.0e-1, "log": True},
    "depth": {"type": "categorical", "choices": [8, 14, 20]},
    "width": {"type": "int", "low": 8, "high": 32, "step": 8},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
    "lr_schedule": {"type": "categorical", "choices": ["constant", "cosine", "onecycle"]},
    "crop_pad": {"type": "int", "low": 0, "high": 2},
    "mixup_alpha": {"type": "float", "low": 0.0, "high": 0.4},
}


@dataclass(frozen=True)
class Task:
    """A built-in objective on a dataset, its space, and what "good" means for it."""

    objective: str
    fixed: dict[str, Any]
    space: dict[str, Any]
    targets: tuple[float, ...]
    budget: int                      # cumulative epochs each strategy gets
    checkpoints: tuple[int, ...]     # epoch budgets at which the best value is tabulated

    @property
    def max_epochs(self) -> int:
        return int(self.fixed["max_epochs"])


TASKS: dict[str, Task] = {
    "mnist1d": Task("sequence_classifier", {"threads": 1, "dataset": "mnist1d", "max_epochs": 15, "optimizer": "adamw"},
                    MNIST1D_SPACE, (0.975, 0.98, 0.985), 720, (120, 240, 720)),
    # digits' validation split has 360 images: 0.9917, 0.9944 and 0.9972 are 3, 2 and 1 errors
    "digits": Task("image_classifier", {"threads": 1, "dataset": "digits", "max_epochs": 6},
                   DIGITS_SPACE, (0.99, 0.994, 0.997), 120, (30, 60, 120)),
    # longer trials that start with LR warm-up: early epochs say less (does a per-epoch median pruner suffer?)
    "mnist1d-warmup": Task("sequence_classifier", {"threads": 1, "dataset": "mnist1d", "max_epochs": 30,
                                                   "optimizer": "adamw", "warmup_epochs": 5},
                           {**MNIST1D_SPACE, "lr_schedule": {"type": "categorical", "choices": ["constant", "cosine"]}},
                           (0.975, 0.98, 0.985), 600, (150, 300, 600)),
    # the built-in CIFAR-style ResNet (6n+2) on the same digits split (it trains on any image size)
    "resnet": Task("resnet_classifier", {"threads": 1, "dataset": "digits", "max_epochs": 10},
                   RESNET_SPACE, (0.99, 0.994, 0.997), 200, (50, 100, 200)),
}


def _pruners(max_epochs: int) -> dict[str, dict[str, Any]]:
    """Pruner name -> its ``pruner`` section: the strategies' pruners and (``--pruner-sim``) variants."""
    hb = {"min_resource": 1, "max_resource": max_epochs, "reduction_factor": 3}
    return {
        "none": {"name": "none"},
        "median": {"name": "median"},
        "successive_halving": {"name": "successive_halving", "options": {"min_resource": 1, "reduction_factor": 3}},
        "hyperband": {"name": "hyperband", "options": hb},
        "hyperband eta 4": {"name": "hyperband", "options": {**hb, "reduction_factor": 4}},
        "hyperband min 2": {"name": "hyperband", "options": {**hb, "min_resource": 2}},
        "hyperband bootstrap 2": {"name": "hyperband", "options": {**hb, "bootstrap_count": 2}},
        # Optuna's percentile P keeps the top P % of trials at each step: the median is P = 50.
        # gentler medians: the median pruner can stop a trial that would have been the best at epoch 1
        "median warmup 2": {"name": "median", "options": {"n_warmup_steps": 2}},
        "median startup 10": {"name": "median", "options": {"n_startup_trials": 10}},
        "percentile 67": {"name": "percentile", "options": {"percentile": 67.0}},   # prunes the bottom third
        "percentile 75": {"name": "percentile", "options": {"percentile": 75.0}},   # the bottom quarter
        # harsher: fewer epochs on each bad trial, more configurations tried
        "percentile 33": {"name": "percentile", "options": {"percentile": 33.0}},   # the bottom two thirds
        "median startup 3": {"name": "median", "options": {"n_startup_trials": 3}},
    }


# The strategies a plain run compares (#15's list, the multivariate-TPE and GP + median variants,
# and hpo's default); every other pruner of _pruners runs with TPE on request, as "tpe+NAME".
STRATEGIES = ("random", "tpe", "tpe+median", "tpe+sh", "tpe+hyperband", "mtpe+sh", "mtpe+hyperband", "gp",
              "gp+median", "default")
_SHORT = {"none": "tpe", "successive_halving": "tpe+sh"}   # TPE + pruner names in the tables


def _strategies(max_epochs: int) -> dict[str, dict[str, Any]]:
    """Strategy name -> the ``sampler``/``pruner`` sections of its space document ({} = hpo's default)."""
    pruners = _pruners(max_epochs)
    mtpe = {"name": "tpe", "options": {"multivariate": True, "group": True}}
    with_tpe = {_SHORT.get(name, f"tpe+{name}"): {"sampler": {"name": "tpe"}, "pruner": pruner}
                for name, pruner in pruners.items()}
    return {
        "random": {"sampler": {"name": "random"}, "pruner": pruners["none"]},
        **with_tpe,
        "mtpe+sh": {"sampler": mtpe, "pruner": pruners["successive_halving"]},
        "mtpe+hyperband": {"sampler": mtpe, "pruner": pruners["hyperband"]},
        "gp": {"sampler": {"name": "gp"}, "pruner": pruners["none"]},
        "gp+median": {"sampler": {"name": "gp"}, "pruner": pruners["median"]},
        # TPE modelling after 5 random trials instead of Optuna's 10 (the pruner stops most early ones anyway)
        "tpe5+median": {"sampler": {"name": "tpe", "options": {"n_startup_trials": 5}}, "pruner": pruners["median"]},
        "default": {},
    }


def training_seed(seed: int) -> int:
    """The seed configs of benchmark seed ``seed`` train with (the cache's key with the config)."""
    return 1000 + seed


def _doc(task: Task, strategy: dict[str, Any], seed: int) -> dict[str, Any]:
    return {"study": {"direction": "maximize", "metric": "val_acc", "seed": seed},
            "objective": {"name": task.objective, "fixed": dict(task.fixed)},
            "space": task.space, "mlflow": {"enabled": False}, **strategy}


def build_study(task: Task, strategy: dict[str, Any], seed: int):
    """The spec, and an in-memory study with the sampler and pruner hpo would build for it."""
    import optuna

    from hpo._components import make_pruner, make_sampler, worker_seed
    from hpo._spec import spec_from_dict

    spec = spec_from_dict(_doc(task, strategy, seed), "<benchmark>")
    # A fixed name: Hyperband assigns trials to brackets by a hash of the study name and trial number.
    study = optuna.create_study(direction="maximize", study_name=f"search-efficiency-seed{seed}")
    study.sampler = make_sampler(spec.sampler.name, spec.sampler.options, worker_seed(seed, 0, 0))
    study.pruner = make_pruner(spec.pruner.name, spec.pruner.options)
    return spec, study


# -- learning-curve cache --------------------------------------------------------------------------


@dataclass
class Curve:
    """What one config trained for: ``values[i]``/``epoch_times[i]`` of epoch i, and set-up seconds."""

    values: list[float] = field(default_factory=list)
    epoch_times: list[float] = field(default_factory=list)
    setup: float = 0.0


class CurveCache:
    """Curves by (config, training seed), in one JSON file per task (written after every training)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.curves: dict[str, Curve] = {}
        self.trained_epochs = 0  # epochs actually trained by this process (the benchmark's real cost)
        if path.exists():
            self.curves = {k: Curve(**v) for k, v in json.loads(path.read_text()).items()}

    @staticmethod
    def key(config: dict[str, Any], seed: int) -> str:
        return json.dumps([config, seed], sort_keys=True)

    def get(self, key: str) -> Curve:
        with self.lock:
            return self.curves.get(key, Curve())

    def put(self, key: str, curve: Curve) -> None:
        from hpo._lock import file_lock

        with self.lock:
            self._keep(key, curve)
            self.trained_epochs += len(curve.epoch_times)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Studies of one seed in parallel processes (--processes) share this file: merge what the
            # others wrote since, under the lock, or the last writer would drop their curves.
            with file_lock(self.path.with_suffix(".lock")):
                if self.path.exists():
                    for k, v in json.loads(self.path.read_text()).items():
                        self._keep(k, Curve(**v))
                tmp = self.path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
                tmp.write_text(json.dumps({k: vars(v) for k, v in self.curves.items()}))
                tmp.replace(self.path)

    def _keep(self, key: str, curve: Curve) -> None:
        if len(curve.values) > len(self.curves.get(key, Curve()).values):
            self.curves[key] = curve


class _ReplayTrial:
    """Stands for the Optuna trial inside the built-in objective: epochs already replayed from the
    cache are recorded but not reported again, later ones go to the real trial and its pruner."""

    def __init__(self, trial: Any, skip: int) -> None:
        self.trial, self.skip = trial, skip
        self.values: list[float] = []
        self.step = -1

    number = property(lambda self: self.trial.number if self.trial is not None else 0)
    study = property(lambda self: getattr(self.trial, "study", None))

    def report(self, value: float, step: int) -> None:
        self.values.append(value)
        self.step = step
        if step >= self.skip and self.trial is not None:
            self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.step >= self.skip and self.trial is not None and self.trial.should_prune()

    def set_user_attr(self, key: str, value: Any) -> None:
        pass


def _epoch_time_tracker(times: list[float]):
    from hpo.tracking._base import Tracker

    class _Times(Tracker):
        def log_metrics(self, metrics, step):  # noqa: ANN001 - Tracker's signature
            times.append(float(metrics.get("epoch_time", 0.0)))

    return _Times()


def train(task: Task, config: dict[str, Any], seed: int, trial: Any, skip: int, workdir: Path) -> tuple[Curve, bool]:
    """Trains ``config`` with the built-in objective from scratch; returns (curve, pruned)."""
    import optuna

    from hpo._context import TrialContext
    from hpo._objective import OBJECTIVES

    proxy, times = _ReplayTrial(trial, skip), []
    full = {**task.fixed, **config}
    ctx = TrialContext(proxy, dict(config), full, ("val_acc",), seed, workdir, workdir, _epoch_time_tracker(times))
    start, pruned = time.perf_counter(), False
    try:
        OBJECTIVES.get(task.objective)(full, ctx)
    except optuna.TrialPruned:
        pruned = True
    wall = time.perf_counter() - start
    return Curve(proxy.values, times, max(0.0, wall - sum(times))), pruned


@dataclass
class TrialRecord:
    epochs: int
    state: str          # COMPLETE or PRUNED
    value: float | None
    seconds: float      # accounted wall time (see the module docstring)


class Runner:
    """Runs trials of one task and training seed against the cache."""

    def __init__(self, task: Task, seed: int, cache: CurveCache, pace: float = 0.0) -> None:
        self.task, self.seed, self.cache = task, seed, cache
        self.pace = pace  # sleep this fraction of each cached epoch's time (--jobs-compare: real overlap)
        self.workdir = Path(tempfile.mkdtemp(prefix="hpo-search-eff-"))

    def run_trial(self, trial: Any, config: dict[str, Any]) -> TrialRecord:
        key = CurveCache.key(config, self.seed)
        curve = self.cache.get(key)
        for step, value in enumerate(curve.values):
            if self.pace:
                time.sleep(self.pace * curve.epoch_times[step])
            trial.report(value, step)
            if trial.should_prune():
                return self._record(curve, step + 1, "PRUNED")
        if len(curve.values) < self.task.max_epochs:
            new, pruned = train(self.task, config, self.seed, trial, len(curve.values), self.workdir)
            self.cache.put(key, new)
            curve = new
            if pruned:
                return self._record(curve, len(curve.values), "PRUNED")
        return self._record(curve, len(curve.values), "COMPLETE")

    def full_curve(self, config: dict[str, Any]) -> Curve:
        key = CurveCache.key(config, self.seed)
        curve = self.cache.get(key)
        if len(curve.values) < self.task.max_epochs:
            curve, _ = train(self.task, config, self.seed, None, 0, self.workdir)
            self.cache.put(key, curve)
        return curve

    @staticmethod
    def _record(curve: Curve, epochs: int, state: str) -> TrialRecord:
        value = max(curve.values[:epochs]) if state == "COMPLETE" else None
        return TrialRecord(epochs, state, value, curve.setup + sum(curve.epoch_times[:epochs]))


def run_strategy(task: Task, strategy: dict[str, Any], seed: int, runner: Runner,
                 budget: int | None = None, n_trials: int | None = None, jobs: int = 1) -> list[TrialRecord]:
    """One study until ``budget`` cumulative epochs (or ``n_trials`` trials); records in finish order."""
    import optuna

    from hpo._space import suggest

    spec, study = build_study(task, strategy, seed)
    records: list[TrialRecord] = []
    lock = threading.Lock()

    def objective(trial: optuna.Trial) -> float:
        sampled = time.perf_counter()
        config = suggest(trial, spec.space)
        sample_s = time.perf_counter() - sampled
        record = runner.run_trial(trial, config)
        record.seconds += sample_s
        with lock:
            records.append(record)
        if record.state == "PRUNED":
            raise optuna.TrialPruned()
        return record.value

    def stop(study: optuna.Study, _trial: Any) -> None:
        if budget is not None and sum(r.epochs for r in records) >= budget:
            study.stop()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials, n_jobs=jobs, callbacks=[stop])
    return records


# -- metrics over records -----------------------------------------------------------------------------


def anytime(records: Sequence[dict[str, Any]]) -> list[tuple[int, float, float]]:
    """(cumulative epochs, cumulative seconds, best value so far) after each COMPLETE trial."""
    from dashboards._data import best_so_far_by_cost

    return best_so_far_by_cost([(r["epochs"], r["seconds"], r["value"]) for r in records])


def first_reach(curve: list[tuple[int, float, float]], target: float) -> tuple[float, float]:
    """(epochs, seconds) when the best value first reached ``target``; (inf, inf) if never."""
    for epochs, seconds, best in curve:
        if best >= target:
            return epochs, seconds
    return math.inf, math.inf


def best_at(curve: list[tuple[int, float, float]], budget: int, trained: float = math.inf) -> float:
    """Best value among trials finished within ``budget`` cumulative epochs; NaN if none, or if the
    study trained fewer than ``budget`` epochs in all (a shorter run says nothing about that budget)."""
    values = [best for epochs, _, best in curve if epochs <= budget]
    return values[-1] if values and trained >= budget else math.nan


def _summary(xs: Sequence[float], fmt: str) -> str:
    finite = [x for x in xs if math.isfinite(x)]
    if not xs or not finite and not any(math.isinf(x) for x in xs):
        return "-"
    median = statistics.median(xs)  # inf (never reached) sorts last, so the median says "not reached" honestly
    med = "never" if math.isinf(median) else format(median, fmt)
    lo, hi = min(xs), max(xs)
    spread = "/".join("never" if math.isinf(v) else format(v, fmt) for v in (lo, hi))
    missed = sum(1 for x in xs if math.isinf(x))
    return f"{med} [{spread}]" + (f" ({missed} never)" if missed else "")


# -- the run and the report ----------------------------------------------------------------------------


def _result_path(out: Path, task: str, seed: int) -> Path:
    return out / task / f"seed{seed}.json"


def _save_results(out: Path, task: str, seed: int, by_strategy: dict[str, Any]) -> None:
    """Adds (or replaces) these strategies' records in the seed's result file."""
    path = _result_path(out, task, seed)
    done = json.loads(path.read_text()) if path.exists() else {}
    done.update(by_strategy)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(done))


def run(tasks: Sequence[str], seeds: Sequence[int], strategies: Sequence[str], out: Path, cache_dir: Path,
        budget_scale: float) -> None:
    """Every strategy on every seed (seeds inner: a run cut short has whole strategies)."""
    for name in tasks:
        task = TASKS[name]
        for sname in strategies:
            for seed in seeds:
                cache = CurveCache(cache_dir / f"{name}-seed{seed}.json")
                start = time.perf_counter()
                runner = Runner(task, training_seed(seed), cache)
                recs = run_strategy(task, _strategies(task.max_epochs)[sname], seed, runner,
                                    budget=int(task.budget * budget_scale))
                _save_results(out, name, seed, {sname: [vars(r) for r in recs]})
                print(f"{name} seed {seed} {sname:15s} {len(recs):3d} trials, "
                      f"{sum(r.epochs for r in recs):4d} epochs, best {max((r.value or 0) for r in recs):.4f}, "
                      f"{time.perf_counter() - start:6.1f} s (trained {cache.trained_epochs} epochs)", flush=True)


def run_parallel(tasks: Sequence[str], seeds: Sequence[int], strategies: Sequence[str], out: Path, cache_dir: Path,
                 budget_scale: float, processes: int) -> None:
    """As ``run``, one process per (task, strategy, seed) and ``processes`` at a time (a many-core
    machine runs many seeds at once). Each child writes its own part folder; only this process
    merges parts into ``out``, as each child ends, so a run cut short keeps every finished study."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    merge = threading.Lock()

    def one(job: tuple[str, str, int]) -> None:
        name, sname, seed = job
        part = out / ".parts" / f"{name}-{sname.replace('+', '_')}-{seed}"
        argv = [sys.executable, __file__, "--tasks", name, "--seeds", str(seed), "--strategies", sname,
                "--out", str(part), "--cache", str(cache_dir), "--budget-scale", str(budget_scale), "--no-report"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        print(proc.stdout.strip() or proc.stderr.strip()[-2000:], flush=True)
        done_part = _result_path(part, name, seed)
        if proc.returncode or not done_part.exists():
            return
        with merge:
            _save_results(out, name, seed, json.loads(done_part.read_text()))

    jobs = [(name, sname, seed) for name in tasks for sname in strategies for seed in seeds]
    with ThreadPoolExecutor(max_workers=processes) as pool:
        list(pool.map(one, jobs))


def load_results(out: Path, task: str) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """strategy -> seed -> records."""
    by_strategy: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for path in sorted((out / task).glob("seed*.json")):
        seed = int(path.stem[4:])
        for sname, recs in json.loads(path.read_text()).items():
            by_strategy.setdefault(sname, {})[seed] = recs
    return by_strategy


def table(task: Task, results: dict[str, dict[int, list[dict[str, Any]]]], scale: float) -> str:
    """A markdown table: epochs/seconds to each target and best value at each budget, median [min/max]."""
    checkpoints = [int(c * scale) for c in task.checkpoints]
    head = (["strategy", "seeds", "trials", "epochs trained"] + [f"epochs to {t}" for t in task.targets]
            + [f"seconds to {t}" for t in task.targets] + [f"best @{c} ep" for c in checkpoints])
    rows = []
    for sname, by_seed in results.items():
        curves = {s: anytime(r) for s, r in by_seed.items()}
        trained = {s: sum(r["epochs"] for r in recs) for s, recs in by_seed.items()}
        cells = [sname, str(len(by_seed)), _summary([len(r) for r in by_seed.values()], ".0f"),
                 _summary(list(trained.values()), ".0f")]
        cells += [_summary([first_reach(c, t)[0] for c in curves.values()], ".0f") for t in task.targets]
        cells += [_summary([first_reach(c, t)[1] for c in curves.values()], ".0f") for t in task.targets]
        cells += [_summary([best_at(c, b, trained[s]) for s, c in curves.items()], ".4f") for b in checkpoints]
        rows.append(cells)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def random_pooled(task: Task, by_seed: dict[int, list[dict[str, Any]]]) -> str:
    """Random search without pruning, from all its trials pooled over seeds: the chance p that one
    trial reaches each target, and the epochs to target that p implies (trials are independent, so
    the number of trials until the first hit is geometric: median ceil(log 0.5 / log(1 - p)), mean
    1/p). A check on the per-seed medians, which a handful of lucky or unlucky seeds move a lot."""
    values = [r["value"] for recs in by_seed.values() for r in recs if r["value"] is not None]
    lines = [f"random search pooled over {len(by_seed)} seeds ({len(values)} trials of {task.max_epochs} epochs):",
             "", "| target | trials reaching it | p | implied median epochs | implied mean epochs |",
             "|---|---|---|---|---|"]
    for t in task.targets:
        hits = sum(v >= t for v in values)
        p = hits / len(values) if values else 0.0
        median = task.max_epochs * math.ceil(math.log(0.5) / math.log(1 - p)) if 0 < p < 1 else math.inf
        mean = task.max_epochs / p if p else math.inf
        lines.append(f"| {t} | {hits} | {p:.4f} | {median:.0f} | {mean:.0f} |")
    return "\n".join(lines)


def top_target(task: Task, results: dict[str, dict[int, list[dict[str, Any]]]], reference: str = "tpe+median",
               resamples: int = 4000) -> str:
    """Per strategy, at the task's top target: how many seeds reach it, a bootstrap 95 % interval of
    the median epochs to it (seeds resampled with replacement), and, seed by seed against
    ``reference`` on the seeds both ran, how often it got there sooner or later. A median over seeds
    hides whether one strategy is faster in most seeds or only fails in fewer."""
    import random

    target = task.targets[-1]
    reach = {s: {seed: first_reach(anytime(recs), target)[0] for seed, recs in by_seed.items()}
             for s, by_seed in results.items()}
    rng = random.Random(0)

    def fmt(x: float) -> str:
        return "beyond" if math.isinf(x) else f"{x:.0f}"

    lines = [f"top target {target}: seeds reaching it, bootstrap 95 % interval of the median epochs to it "
             f"({resamples} resamples), seed by seed against {reference}", "",
             f"| strategy | reached | 95 % interval | sooner / later / tied than {reference} |", "|---|---|---|---|"]
    for sname, by_seed in reach.items():
        xs = list(by_seed.values())
        medians = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
        lo, hi = medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]
        shared = [(x, reach[reference][seed]) for seed, x in by_seed.items()
                  if sname != reference and seed in reach.get(reference, {})]
        paired = (f"{sum(a < b for a, b in shared)} / {sum(a > b for a, b in shared)} / "
                  f"{sum(a == b for a, b in shared)}" if shared else "-")
        lines.append(f"| {sname} | {sum(math.isfinite(x) for x in xs)} of {len(xs)} | {fmt(lo)}-{fmt(hi)} | {paired} |")
    return "\n".join(lines)


def write_html(out: Path, results_by_task: dict[str, dict[str, dict[int, list[dict[str, Any]]]]],
               tables: dict[str, str]) -> Path:
    """Anytime curves per task (one figure, a line per strategy and seed) with the dashboard's code."""
    from dashboards._figures import anytime_figure
    from dashboards._html import figure_page

    sections = []
    for tname, results in results_by_task.items():
        series = {f"{s} (seed {seed})": [(e, b) for e, _, b in anytime(recs)]
                  for s, by_seed in results.items() for seed, recs in sorted(by_seed.items())}
        fig = anytime_figure(series, TASKS[tname].targets, "val_acc", group=lambda label: label.split(" (")[0])
        sections.append((f"{tname}: best val_acc against cumulative epochs", tables[tname], fig))
    path = out / "search_efficiency.html"
    path.write_text(figure_page("hpo search efficiency", sections))
    return path


def report(tasks: Sequence[str], out: Path, scale: float) -> None:
    results, tables = {}, {}
    for name in tasks:
        results[name] = load_results(out, name)
        if not results[name]:
            continue
        tables[name] = table(TASKS[name], results[name], scale)
        print(f"\n### {name} ({TASKS[name].objective}, max_epochs {TASKS[name].max_epochs}, "
              f"budget {int(TASKS[name].budget * scale)} epochs per study unless 'epochs trained' says more)\n")
        print(tables[name])
        if "random" in results[name]:
            print("\n" + random_pooled(TASKS[name], results[name]["random"]))
        # against hpo's default when it ran, else the default before 5 start-up trials (the tables of
        # benchmarks/results/search_efficiency.md)
        reference = "default" if "default" in results[name] else "tpe+median"
        print("\n" + top_target(TASKS[name], results[name], reference))
    results = {k: v for k, v in results.items() if v}
    if results:
        print(f"\nanytime curves: {write_html(out, results, tables)}")


# -- --schedules: does an LR schedule tied to max_epochs hurt ranking at rungs? ------------------------


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return num / den if den else math.nan


def schedules(task_name: str, n_configs: int, seed: int, cache_dir: Path) -> None:
    """Spearman rank correlation between each config's value at a Hyperband rung (steps 1, 3, 9: after
    epochs 2, 4, 10) and its final (best-epoch) value, per LR schedule.

    ``n_configs`` > 0 trains the same ``n_configs`` random configs with each schedule (paired); 0
    uses every full-length curve already in the task's caches (free, but each schedule's configs differ).
    """
    task = TASKS[task_name]
    by_schedule = _paired_curves(task, n_configs, seed, cache_dir) if n_configs else _cached_curves(task, cache_dir)
    # Hyperband's (min_resource 1, reduction_factor 3) rungs: steps 1, 3, 9 = after epochs 2, 4, 10
    rungs = [r for r in (1, 3, 9, 27) if r < task.max_epochs - 1]
    kind = f"the same {n_configs} configs per schedule" if n_configs else "every full-length cached curve"
    print(f"\n{task_name}: Spearman rank correlation of the value at a rung with the final best ({kind}; "
          "1.0 = the rung ranks configs exactly as full training does)\n")
    print("| schedule | curves | " + " | ".join(f"after epoch {r + 1}" for r in rungs) + " | median final best |")
    print("|---|---|" + "---|" * (len(rungs) + 1))
    for schedule, curves in sorted(by_schedule.items()):
        final = [max(v) for v in curves]
        cells = [f"{spearman([v[r] for v in curves], final):.3f}" for r in rungs]
        print(f"| {schedule} | {len(curves)} | " + " | ".join(cells) + f" | {statistics.median(final):.4f} |")


def _cached_curves(task: Task, cache_dir: Path) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    task_name = next(k for k, v in TASKS.items() if v is task)
    for path in sorted(cache_dir.glob(f"{task_name}-seed*.json")):
        for key, curve in CurveCache(path).curves.items():
            if len(curve.values) == task.max_epochs:
                config = json.loads(key)[0]
                out.setdefault(config.get("lr_schedule", "constant"), []).append(curve.values)
    return out


def _paired_curves(task: Task, n_configs: int, seed: int, cache_dir: Path) -> dict[str, list[list[float]]]:
    import optuna

    from hpo._space import suggest

    spec, _ = build_study(task, _strategies(task.max_epochs)["random"], seed)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    configs = [{k: v for k, v in suggest(study.ask(), spec.space).items() if k != "lr_schedule"}
               for _ in range(n_configs)]
    task_name = next(k for k, v in TASKS.items() if v is task)
    runner = Runner(task, training_seed(seed), CurveCache(cache_dir / f"{task_name}-seed{seed}.json"))
    return {schedule: [runner.full_curve({**c, "lr_schedule": schedule}).values for c in configs]
            for schedule in ("constant", "cosine", "onecycle")}


# -- --pruner-sim: each pruner on random search, replayed over the cached curves ----------------------


def _random_configs(task: Task, seed: int, n: int) -> list[dict[str, Any]]:
    """The first ``n`` configs random search samples for ``seed`` (the same sampler and seed as ``run``)."""
    from hpo._space import suggest

    spec, study = build_study(task, _strategies(task.max_epochs)["random"], seed)
    return [suggest(study.ask(), spec.space) for _ in range(n)]


def _pool(task_name: str, seeds: Sequence[int], cache_dir: Path, n: int) -> list[list[float]]:
    """Full learning curves of the configs random search sampled (an unbiased sample of the space)."""
    task = TASKS[task_name]
    pool = []
    for seed in seeds:
        cache = CurveCache(cache_dir / f"{task_name}-seed{seed}.json")
        for config in _random_configs(task, seed, n):
            curve = cache.curves.get(CurveCache.key(config, training_seed(seed)))
            if curve is not None and len(curve.values) == task.max_epochs:
                pool.append(curve.values)
    return pool


def pruner_sim(task_name: str, seeds: Sequence[int], cache_dir: Path, n_configs: int, reps: int,
               scale: float = 1.0, only: Sequence[str] | None = None) -> None:
    """Random search with each pruner, replayed: each simulated study draws configs (with replacement)
    from the pooled full curves of random search's own configs and lets Optuna's pruner stop them
    (no training, so hundreds of studies are cheap). Isolates what the pruner saves; a model-based
    sampler's gain comes on top and needs real runs."""
    import optuna

    from hpo._components import make_pruner

    task = TASKS[task_name]
    budget = int(task.budget * scale)
    pool = _pool(task_name, seeds, cache_dir, n_configs)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"\n{task_name}: random search + each pruner, {reps} studies of {budget} epochs replayed over "
          f"{len(pool)} cached full curves; epochs until the best reaches each target, median [min/max]\n")
    print("| pruner | " + " | ".join(f"epochs to {t}" for t in task.targets) + f" | best @{task.budget} ep |")
    print("|---|" + "---|" * (len(task.targets) + 1))
    for name, spec in _pruners(task.max_epochs).items():
        if only and name not in only:
            continue
        reached: dict[float, list[float]] = {t: [] for t in task.targets}
        finals = []
        for rep in range(reps):
            pruner = make_pruner(spec["name"], spec.get("options", {}))
            curve_best = anytime(_replayed_study(pool, pruner, rep, budget))
            for t in task.targets:
                reached[t].append(first_reach(curve_best, t)[0])
            finals.append(best_at(curve_best, task.budget, budget))
        print(f"| {name} | " + " | ".join(_summary(reached[t], ".0f") for t in task.targets)
              + f" | {_summary(finals, '.4f')} |", flush=True)


def _replayed_study(pool: list[list[float]], pruner: Any, rep: int, budget: int) -> list[dict[str, Any]]:
    """One random-search study over ``pool``'s curves with ``pruner``; records in finish order."""
    import random as pyrandom

    import optuna

    rng = pyrandom.Random(rep)
    study = optuna.create_study(direction="maximize", study_name=f"sim-{rep}", pruner=pruner,
                                sampler=optuna.samplers.RandomSampler(seed=rep))
    records: list[dict[str, Any]] = []
    spent = 0
    while spent < budget:
        curve, trial = rng.choice(pool), study.ask()
        epochs = len(curve)
        for step, value in enumerate(curve[:-1]):
            trial.report(value, step)
            if trial.should_prune():
                epochs = step + 1
                break
        else:
            trial.report(curve[-1], len(curve) - 1)
        value = max(curve) if epochs == len(curve) else None
        study.tell(trial, value, state=optuna.trial.TrialState.COMPLETE if value is not None
                   else optuna.trial.TrialState.PRUNED)
        records.append({"epochs": epochs, "seconds": 0.0, "value": value})
        spent += epochs
    return records


# -- --jobs-compare: trials to target at 1 vs 4 workers --------------------------------------------


def jobs_compare(task_name: str, n_trials: int, seeds: Sequence[int], cache_dir: Path, pace: float) -> None:
    """hpo's default strategy with ``n_trials`` trials at 1 and at 4 in-process workers (Optuna threads
    sharing one study; cached epochs replay at ``pace`` x their real time so trials overlap)."""
    task = TASKS[task_name]
    print(f"\n{task_name}: hpo's default, {n_trials} trials, in-process threads; "
          "trials (in finish order) until the best reaches each target, median [min/max]\n")
    print("| jobs | seeds | " + " | ".join(f"trials to {t}" for t in task.targets)
          + " | " + " | ".join(f"epochs to {t}" for t in task.targets) + " | final best |")
    print("|---|---|" + "---|" * (2 * len(task.targets) + 1))
    for jobs in (1, 4):
        per_seed = []
        for seed in seeds:
            runner = Runner(task, training_seed(seed), CurveCache(cache_dir / f"{task_name}-seed{seed}.json"), pace)
            per_seed.append([vars(r) for r in run_strategy(task, {}, seed, runner, n_trials=n_trials, jobs=jobs)])
        trials_to = [[_trials_to(recs, t) for recs in per_seed] for t in task.targets]
        epochs_to = [[first_reach(anytime(recs), t)[0] for recs in per_seed] for t in task.targets]
        final = [max((r["value"] or 0) for r in recs) for recs in per_seed]
        print(f"| {jobs} | {len(seeds)} | " + " | ".join(_summary(x, ".0f") for x in trials_to) + " | "
              + " | ".join(_summary(x, ".0f") for x in epochs_to) + f" | {_summary(final, '.4f')} |", flush=True)


def _trials_to(records: Sequence[dict[str, Any]], target: float) -> float:
    for i, r in enumerate(records, 1):
        if r["value"] is not None and r["value"] >= target:
            return i
    return math.inf


# -- command line ---------------------------------------------------------------------------------------


def _seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=_seeds, default=_seeds("0-4"), help="e.g. 0-4")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), metavar="NAME",
                        help=f"default: {' '.join(STRATEGIES)}; also tpe+NAME for any pruner of --pruner-sim")
    parser.add_argument("--out", type=Path, default=Path("hpo-runs/search-efficiency"))
    parser.add_argument("--cache", type=Path, default=None, help="curve cache folder (default OUT/cache)")
    parser.add_argument("--quick", action="store_true", help="seeds 0-1 and half the epoch budget")
    parser.add_argument("--budget-scale", type=float, default=None, metavar="X",
                        help="train X times the task's epoch budget per study (e.g. random search long enough "
                             "to reach the top targets); the table still reports at the task's budgets")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-report", action="store_true", help="run only (no table or HTML)")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="run N studies at once, one process per (task, strategy, seed)")
    parser.add_argument("--schedules", type=int, metavar="N", nargs="?", const=0,
                        help="rank correlation at rungs per LR schedule: of N new paired configs, or (no N) "
                             "of the cached curves")
    parser.add_argument("--jobs-compare", type=int, metavar="N", help="--jobs 1 vs 4 with N trials")
    parser.add_argument("--pace", type=float, default=0.2, help="--jobs-compare: replay speed of cached epochs")
    parser.add_argument("--pruner-sim", type=int, metavar="REPS",
                        help="random search + each pruner, REPS studies replayed over random search's cached curves")
    parser.add_argument("--pruners", nargs="+", metavar="NAME", help="--pruner-sim: only these pruners")
    parser.add_argument("--pool-trials", type=int, default=144,
                        help="--pruner-sim: random search's first N configs per seed form the pool")
    args = parser.parse_args(argv)
    unknown = [s for s in args.strategies if s not in _strategies(1)]
    if unknown:
        parser.error(f"unknown strategy {', '.join(map(repr, unknown))}; known: {', '.join(_strategies(1))}")
    unknown = [s for s in args.pruners or () if s not in _pruners(1)]
    if unknown:
        parser.error(f"unknown pruner {', '.join(map(repr, unknown))}; known: {', '.join(_pruners(1))}")
    cache = args.cache or args.out / "cache"
    scale = 0.5 if args.quick else 1.0
    seeds = args.seeds[:2] if args.quick else args.seeds
    if args.schedules is not None:
        for name in args.tasks:
            schedules(name, args.schedules, seeds[0], cache)
        return
    if args.pruner_sim:
        for name in args.tasks:
            pruner_sim(name, seeds, cache, args.pool_trials, args.pruner_sim, args.budget_scale or 1.0, args.pruners)
        return
    if args.jobs_compare:
        for name in args.tasks:
            jobs_compare(name, args.jobs_compare, seeds, cache, args.pace)
        return
    if not args.report_only and args.processes > 1:
        run_parallel(args.tasks, seeds, args.strategies, args.out, cache, args.budget_scale or scale, args.processes)
    elif not args.report_only:
        run(args.tasks, seeds, args.strategies, args.out, cache, args.budget_scale or scale)
    if not args.no_report:
        report(args.tasks, args.out, scale)


if __name__ == "__main__":
    main()
