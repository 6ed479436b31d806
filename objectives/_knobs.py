"""The one table of the training stack's knobs: name, type, default, allowed values, docs, scope.

Everything else is derived from :data:`KNOBS`: ``TrainConfig``'s fields, defaults and checks, the
stack's reserved names (``STACK_KNOBS``), the keys read only with one architecture or dataset, and
``docs/knobs.md`` (``python -m objectives.knobs --markdown``). Adding a knob is one ``Knob(...)``
line here, plus the code that applies it in training.

A constraint both checks a value (:meth:`problem` returns the words after ``"<key>: "`` of the
error, or None) and describes itself (:meth:`describe`, for messages and docs), after
scikit-learn's ``_param_validation``.

This module imports neither torch nor Lightning: the CLI validates space files with it.

Example:
    >>> Interval(0.0, 1.0, closed="left").problem(1.0)
    'expected a value < 1.0, got 1.0'
    >>> Options(("adamw", "sgd")).describe()
    'one of adamw, sgd'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hpo._registry import did_you_mean

STACK = "stack"  # the stack applies it to any LightningModule, built-in or the user's
BUILTIN = "builtin"  # only the built-in objectives read it (they build the data and the network)
APPLIES_TO = (STACK, BUILTIN)


def found(value: Any) -> str:
    """``'x' (str)``: a value and its type, for ``got ...`` in messages."""
    return f"{value!r} ({type(value).__name__})"


# -- constraints ----------------------------------------------------------------------------------


class Constraint(Protocol):
    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (``"expected ..., got ..."``), or None when allowed."""

    def describe(self) -> str:
        """The allowed values in words."""


_OPS = {"low": (">", ">="), "high": ("<", "<=")}


@dataclass(frozen=True)
class Interval:
    """Numbers between ``low`` and ``high`` (None: unbounded); ``closed`` says which ends are allowed."""

    low: float | None
    high: float | None
    closed: Literal["left", "right", "both", "neither"] = "both"

    def _bounds(self) -> list[tuple[str, float, Callable[[float], bool]]]:
        """``(op, bound, is_outside)`` for each finite end."""
        out = []
        if self.low is not None:
            incl = self.closed in ("left", "both")
            op = _OPS["low"][incl]
            out.append((op, self.low, (lambda v, b=self.low, i=incl: v < b or (v == b and not i))))
        if self.high is not None:
            incl = self.closed in ("right", "both")
            op = _OPS["high"][incl]
            out.append((op, self.high, (lambda v, b=self.high, i=incl: v > b or (v == b and not i))))
        return out

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {found(value)}"
        for op, bound, outside in self._bounds():
            if outside(value):
                return f"expected a value {op} {bound}, got {value!r}"
        return None

    def describe(self) -> str:
        return " and ".join(f"{op} {bound}" for op, bound, _ in self._bounds()) or "any value"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    choices: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        if value in self.choices:
            return None
        hint = did_you_mean(value, [str(c) for c in self.choices]) if isinstance(value, str) else ""
        return f"expected {self.describe()}, got {found(value)}{hint}"

    def describe(self) -> str:
        return "one of " + ", ".join(str(c) for c in self.choices)


BUILTIN_DATASETS = ("digits", "mnist1d")
DATASET_PREFIXES = ("npz:", "imagefolder:")


@dataclass(frozen=True)
class DatasetName:
    """A built-in dataset's name, or ``npz:PATH`` / ``imagefolder:PATH``."""

    names: tuple[str, ...] = BUILTIN_DATASETS
    prefixes: tuple[str, ...] = DATASET_PREFIXES

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or not (value in self.names or value.startswith(self.prefixes)):
            hint = did_you_mean(value, list(self.names)) if isinstance(value, str) else ""
            return f"expected {self.describe()}, got {found(value)}{hint}"
        if value in self.prefixes:
            return f"expected {value}PATH with a path after {value!r}, got {value!r}"
        return None

    def describe(self) -> str:
        forms = [*self.names, *(p + "PATH" for p in self.prefixes)]
        return f"one of {', '.join(forms[:-1])} or {forms[-1]}"


@dataclass(frozen=True)
class AnyOf:
    """A value that one of ``constraints`` allows; the message is the first constraint's."""

    constraints: tuple[Constraint, ...]

    def problem(self, value: Any) -> str | None:
        problems = [c.problem(value) for c in self.constraints]
        return None if None in problems else problems[0]

    def describe(self) -> str:
        return " or ".join(c.describe() for c in self.constraints)


@dataclass(frozen=True)
class Teacher:
    """A checkpoint path, an exported ``best.yaml``, a ``{module: ..., checkpoint: ...}`` reference,
    or a mapping of teacher hyperparameters (checked as a config of its own by ``TrainConfig``)."""

    def problem(self, value: Any) -> str | None:
        if value is not None and not isinstance(value, (str, Mapping)) and not hasattr(value, "__fspath__"):
            return f"expected a checkpoint path or a mapping of teacher hyperparameters, got {found(value)}"
        return None

    def describe(self) -> str:
        return ("null, a checkpoint path, an exported best.yaml, {module: file.py:Class, checkpoint: PATH, ...} "
                "or a mapping of teacher hyperparameters")


@dataclass(frozen=True)
class FoldCount:
    """0 (off) or a number of folds >= 2: one fold would leave nothing to train on."""

    def problem(self, value: Any) -> str | None:
        if value == 0 or value >= 2:
            return None
        return f"must be >= 2 (0 turns cross-validation off), got {value!r}"

    def describe(self) -> str:
        return "0 (off) or >= 2"


@dataclass(frozen=True)
class Patterns:
    """A list of non-empty ``fnmatch`` patterns (a lone string is a one-item list)."""

    def problem(self, value: Any) -> str | None:
        if all(isinstance(v, str) and v for v in value):
            return None
        return f"expected a list of parameter-name patterns, got {found(list(value))}"

    def describe(self) -> str:
        return "a list of parameter-name patterns (fnmatch style, e.g. head.*)"


# -- types ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeRule:
    """How a knob's type is checked (``expected``: its words) and converted from YAML / Optuna forms."""

    accepts: Callable[[Any], bool]
    expected: str
    label: str  # the type in a space file's words, for docs
    coerce: Callable[[Any], Any] = lambda v: v
    refine: Callable[[Any], str | None] = lambda v: None  # a further check of an accepted value

    def problem(self, value: Any) -> str | None:
        if not self.accepts(value):
            return f"expected {self.expected}, got {found(value)}"
        return self.refine(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integral_to_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _int_to_float(value: Any) -> Any:
    return float(value) if _is_int(value) else value


def _as_patterns(value: Any) -> Any:
    # YAML gives lists (and a lone pattern may come as a string); TrainConfig is frozen: keep a tuple.
    return (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list) else value


FREEZE_MODES = ("none", "backbone")


FREEZE_FORMS = "none, backbone or a list of parameter-name patterns"
INIT_FROM_FORMS = "a checkpoint path, an exported best.yaml, study:NAME or null"


def _freeze_problem(value: Any) -> str | None:
    if isinstance(value, str):
        if value in FREEZE_MODES:
            return None
        return f"expected {FREEZE_FORMS}, got {found(value)}{did_you_mean(value, list(FREEZE_MODES))}"
    return Patterns().problem(value)


def _init_from_problem(value: Any) -> str | None:
    if value is None or (value.strip() and value.strip() != "study:"):
        return None
    return f"expected {INIT_FROM_FORMS}, got {found(value)}"


def _freeze_value(value: Any) -> Any:
    # A string stays a string (a mode, or a typo of one: a lone pattern must be a list); a list becomes a
    # tuple (TrainConfig is frozen).
    return tuple(value) if isinstance(value, list) else value


# Keyed by the annotation TrainConfig's field gets. Value checks (choices, datasets) are constraints.
TYPES: dict[str, TypeRule] = {
    "int": TypeRule(_is_int, "an integer", "integer", _integral_to_int),
    "float": TypeRule(lambda v: _is_int(v) or isinstance(v, float), "a number", "number", _int_to_float,
                      lambda v: None if math.isfinite(v) else f"expected a finite number, got {v!r}"),
    "int | None": TypeRule(lambda v: v is None or _is_int(v), "an integer or null", "integer or null",
                           _integral_to_int),
    "str": TypeRule(lambda v: True, "a string", "string"),  # its constraint names the allowed strings
    "tuple[str, ...]": TypeRule(lambda v: isinstance(v, tuple), "a list of strings", "list of strings", _as_patterns),
    "str | None": TypeRule(lambda v: v is None or isinstance(v, str), INIT_FROM_FORMS, "path or null",
                           refine=_init_from_problem),
    "str | tuple[str, ...]": TypeRule(lambda v: isinstance(v, (str, tuple)), FREEZE_FORMS,
                                      "string or list of strings", _freeze_value, _freeze_problem),
    "Any": TypeRule(lambda v: True, "any value", "path or mapping"),
}


# -- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlyWith:
    """A knob read only when another knob says so (``text``: the condition in words)."""

    test: Callable[[Any], bool]  # called with the whole config
    text: str


@dataclass(frozen=True)
class Knob:
    name: str
    type: str  # a key of TYPES
    default: Any
    constraint: Constraint | None
    doc: str
    group: str
    applies_to: str = STACK  # STACK or BUILTIN
    only_with: OnlyWith | None = None

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this knob (after :meth:`coerce`), or None."""
        problem = TYPES[self.type].problem(value)
        if problem or self.constraint is None:
            return problem
        return self.constraint.problem(value)

    def coerce(self, value: Any) -> Any:
        return TYPES[self.type].coerce(value)

    def allowed(self) -> str:
        """The allowed values in words (the type's when there is no constraint)."""
        rule = TYPES[self.type]
        return self.constraint.describe() if self.constraint else rule.expected


def _ge0(kind: type = float) -> Interval:
    return Interval(kind(0), None, closed="left")


def _gt0(kind: type = float) -> Interval:
    return Interval(kind(0), None, closed="neither")


def _ge1() -> Interval:
    return Interval(1, None, closed="left")


def _unit(closed: Literal["left", "right", "both", "neither"] = "both") -> Interval:
    return Interval(0.0, 1.0, closed=closed)


OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("constant", "step", "exponential", "cosine", "onecycle")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
STRATEGIES = ("auto", "ddp")
ARCHS = ("convnet", "resnet")
SHORTCUTS = ("A", "B")
PRUNE_SCHEDULES = ("oneshot", "gradual")
PRUNE_STRUCTURES = ("weights", "channels")

_RESNET = OnlyWith(lambda c: c.arch == "resnet", "arch: resnet")
_FROZEN = OnlyWith(lambda c: c.freeze != "none", "freeze: backbone or a list of patterns")
_GRADUAL = OnlyWith(lambda c: c.prune_schedule == "gradual", "prune_schedule: gradual")
_IMAGEFOLDER = OnlyWith(lambda c: c.dataset.startswith("imagefolder:"), "an imagefolder:PATH dataset")

# Groups, in the docs' order. "optimizer" and "lr schedule" reach training through hpo's optimizer,
# "augmentation" by rewriting batches, "mixing" by replacing the loss (see objectives._stack).
GROUPS = ("data", "model", "optimizer", "training", "lr schedule", "augmentation", "mixing", "precision",
          "parallelism", "clipping", "distillation", "fine-tuning", "cross-validation", "weight pruning", "other")

KNOBS: tuple[Knob, ...] = (
    # data
    Knob("dataset", "str", "digits", DatasetName(),
         "digits (scikit-learn 8x8 digits), mnist1d (generated locally, cached under $XDG_CACHE_HOME/hpo "
         "or ~/.cache/hpo), npz:PATH, or imagefolder:PATH (one subfolder of images per class).",
         "data", BUILTIN),
    Knob("val_fraction", "float", 0.2, _unit("neither"),
         "Share of the training arrays held out for validation when the dataset has no validation split "
         "of its own (digits; npz without x_val).", "data", BUILTIN),
    Knob("batch_size", "int", 64, _ge1(), "Training batch size per device.", "data", BUILTIN),
    Knob("image_size", "int", 0, _ge0(int),
         "Images are resized to image_size squared (0: the first image's size).", "data", BUILTIN, _IMAGEFOLDER),
    # model
    Knob("arch", "str", "convnet", Options(ARCHS),
         "convnet: the small conv net; resnet: a CIFAR ResNet, as in resnet_classifier.", "model", BUILTIN),
    Knob("shortcut", "str", "A", Options(SHORTCUTS),
         "ResNet shortcut: A zero-padded identity or B 1x1 projection.", "model", BUILTIN, _RESNET),
    Knob("width", "int", 32, _ge1(), "Channels of the first block.", "model", BUILTIN),
    Knob("depth", "int", 2, _ge1(),
         "Conv blocks; for resnet the layer count 6n+2 (8, 14, 20, 32, 44, 56, 110).", "model", BUILTIN),
    Knob("dropout", "float", 0.0, _unit("left"), "Dropout before the classifier.", "model", BUILTIN),
    # optimizer
    Knob("optimizer", "str", "adamw", Options(OPTIMIZERS), "The optimizer hpo builds.", "optimizer"),
    Knob("lr", "float", 1e-3, _gt0(), "Learning rate (the schedules' base value).", "optimizer"),
    Knob("weight_decay", "float", 0.0, _ge0(), "Decoupled (AdamW) or L2 (SGD) weight decay.", "optimizer"),
    Knob("momentum", "float", 0.9, _unit("left"), "SGD momentum; AdamW's beta1.", "optimizer"),
    Knob("max_epochs", "int", 10, _ge1(), "Epochs to train.", "training"),
    # lr schedule
    Knob("lr_schedule", "str", "constant", Options(LR_SCHEDULES),
         "LR decay, stepped every optimizer step.", "lr schedule"),
    Knob("warmup_epochs", "float", 0.0, _ge0(), "Linear warm-up length in epochs (may be fractional); at most max_epochs.",
         "lr schedule"),
    Knob("step_size", "int", 1, _ge1(), "Epochs between decays of the step schedule.", "lr schedule"),
    Knob("gamma", "float", 0.1, _gt0(), "Decay factor of the step and exponential schedules.", "lr schedule"),
    Knob("min_lr_ratio", "float", 0.0, _unit(), "Floor of the cosine and onecycle schedules, as a share of lr.",
         "lr schedule"),
    # augmentation (0 disables each)
    Knob("hflip", "float", 0.0, _unit(), "Probability of flipping the last axis (0 disables).", "augmentation"),
    Knob("crop_pad", "int", 0, _ge0(int), "Pad-and-random-crop, in pixels or samples (0 disables).",
         "augmentation"),
    Knob("noise_std", "float", 0.0, _ge0(), "Std of Gaussian noise added to inputs (0 disables).", "augmentation"),
    # mixing
    Knob("mixup_alpha", "float", 0.0, _ge0(),
         "Mixup: each sample mixed with a random partner, weight ~ Beta(alpha, alpha) (0 disables).", "mixing"),
    Knob("cutmix_alpha", "float", 0.0, _ge0(),
         "CutMix: a box pasted from a random partner, area about 1 - lam, lam ~ Beta(alpha, alpha); with "
         "mixup_alpha too, each batch uses one of the two at random (0 disables).", "mixing"),
    # precision
    Knob("precision", "str", "32-true", Options(PRECISIONS),
         "Training precision; 16-mixed on a CPU falls back to bf16-mixed with a warning.", "precision"),
    # parallelism
    Knob("devices", "int", 1, _ge1(), "Devices (processes) to train on.", "parallelism"),
    Knob("strategy", "str", "auto", Options(STRATEGIES), "devices > 1 always trains with DDP.", "parallelism"),
    Knob("accumulate_grad_batches", "int", 1, _ge1(), "Batches per optimizer step.", "parallelism"),
    Knob("threads", "int", 0, _ge0(int),
         "CPU training: torch intra-op threads per process during the fit (0: torch's default, or the CPU "
         "cores split between DDP ranks); threads: 1 avoids OpenMP oversubscription on a busy machine.",
         "parallelism"),
    # clipping
    Knob("agc_clip", "float", 0.0, _ge0(),
         "Adaptive gradient clipping lambda, not applied to the output layer (the last layer with parameters "
         "to run in a forward pass; 0 disables).", "clipping"),
    Knob("agc_exclude", "tuple[str, ...]", (), Patterns(),
         "Parameter-name patterns that AGC leaves alone instead of the output layer it finds.", "clipping"),
    Knob("grad_clip_norm", "float", 0.0, _ge0(), "Global gradient-norm clipping (0 disables).", "clipping"),
    # distillation
    Knob("teacher", "Any", None, Teacher(),
         "Distillation teacher; for the built-ins a mapping of hyperparameters is trained once per study "
         "and cached.", "distillation"),
    Knob("distill_alpha", "float", 0.5, _unit(), "Weight of the soft-target loss.", "distillation"),
    Knob("distill_temperature", "float", 4.0, _gt0(), "Softmax temperature of the distillation loss.",
         "distillation"),
    # fine-tuning (objectives._finetune loads, freezes and unfreezes; build_optimizer makes the LR groups)
    Knob("init_from", "str | None", None, None,
         "Start from trained weights: a checkpoint (.pt, relative to the space file), an exported best.yaml, "
         "or study:NAME (that study's best trial's checkpoint). Another number of classes re-initialises the "
         "output layer.", "fine-tuning"),
    Knob("freeze", "str | tuple[str, ...]", "none", None,
         "Parameters that do not train: none, backbone (all but the output layer), or a list of "
         "parameter-name patterns (fnmatch style, e.g. model.features.*).", "fine-tuning"),
    Knob("unfreeze_at_epoch", "int", 0, _ge0(int),
         "Epoch from which the frozen parameters train too, at their layer's LR (0: never).", "fine-tuning",
         only_with=_FROZEN),
    Knob("head_lr_mult", "float", 1.0, _gt0(), "The output layer's LR is lr * head_lr_mult.", "fine-tuning"),
    Knob("layer_lr_decay", "float", 1.0, _unit("right"),
         "Layer-wise LR decay: the k-th layer below the output layer trains at lr * layer_lr_decay**k "
         "(1: one LR for all).", "fine-tuning"),
    # cross-validation
    Knob("cv_folds", "int", 0, FoldCount(),
         "Stratified k-fold cross-validation over the training data (0: off). The trial trains k models, "
         "each validated on one fold (folds drawn from the trial's seed) and trained on the others; its value "
         "is the mean of the folds' best-epoch metrics (each fold's value and their std: trial attributes "
         "cv_fold_values, cv_std). The validation split (the dataset's own, or val_fraction's) is not used "
         "while searching. The pruner sees step fold * max_epochs + epoch with the mean over the folds so far "
         "at that epoch (pruned_at_epoch counts the same way); a pruned trial skips its remaining folds. hpo "
         "train retrains one model on all the training data. Your own module: its training DataLoader must "
         "have a batch_size and a map-style dataset with integer labels.",
         "cross-validation"),
    # weight pruning (zeroing weights; not Optuna's pruning of trials)
    Knob("prune_amount", "float", 0.0, Interval(0.0, 0.95),
         "Weight pruning: the final sparsity, the share of Conv/Linear weights (weights) or of output "
         "channels and neurons (channels) removed by magnitude (0 disables). Each epoch reports the metric "
         "sparsity; only epochs at the final sparsity can be the trial's best.", "weight pruning"),
    Knob("prune_schedule", "str", "oneshot", Options(PRUNE_SCHEDULES),
         "oneshot: prune to prune_amount at the start of epoch prune_start_epoch; gradual: the cubic "
         "schedule of Zhu & Gupta (2017), raised at the start of every epoch from prune_start_epoch "
         "(sparsity 0) to prune_end_epoch (prune_amount).", "weight pruning"),
    Knob("prune_start_epoch", "int", 0, _ge0(int),
         "First epoch of weight pruning, counted from 0 (oneshot at 0 prunes the untrained weights); "
         "must be < max_epochs.", "weight pruning"),
    Knob("prune_end_epoch", "int", 0, _ge0(int),
         "Epoch from whose start the sparsity is prune_amount (0: the last epoch, max_epochs - 1); must be "
         "> prune_start_epoch and < max_epochs.",
         "weight pruning", only_with=_GRADUAL),
    Knob("prune_structure", "str", "weights", Options(PRUNE_STRUCTURES),
         "weights: global unstructured L1 magnitude over all Conv/Linear weights; channels: the output "
         "channels (neurons) of smallest L2 norm in each Conv/Linear layer but the output layer, and "
         "best.pt holds the physically slimmed network (needs the sparsity extra: torch-pruning).",
         "weight pruning"),
    # other
    Knob("seed", "int | None", None, None, "Seed of the run (null: the trial's seed).", "other"),
    Knob("keep_checkpoints", "int", 3, _ge0(int), "best.pt files kept for the best K trials (0 keeps all).",
         "other"),
)

BY_NAME: dict[str, Knob] = {k.name: k for k in KNOBS}


def names(*, applies_to: str | None = None, groups: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The knobs' names in table order, optionally only those of one scope and of some groups."""
    return tuple(k.name for k in KNOBS
                 if (applies_to is None or k.applies_to == applies_to) and (groups is None or k.group in groups))
